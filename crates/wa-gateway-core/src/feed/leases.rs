//! Who follows which gateway when several replicas share one database
//! (cluster mode): a lease row per gateway, taken when free or expired and
//! renewed by its holder, with the holder's report beside it so that any
//! replica can answer the gateways view. The PostgreSQL backend implements
//! it; a single-process store has none (its one process follows them all).

use std::time::Duration;

use async_trait::async_trait;

use super::report::{GatewayReport, HoldId};
use crate::store::error::StoreError;

/// What taking or renewing a gateway's lease found.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Hold {
    /// This replica holds the gateway until the lease runs out.
    pub held: bool,
    /// The held snapshot an operator accepted on some replica, by its
    /// number; the follower applies it only if it still holds that one.
    pub accepted: Option<HoldId>,
    /// The lease's number: it stays while one replica keeps renewing the
    /// gateway and changes whenever another takes it, so a follower's
    /// writes name the lease they were begun under.
    pub tenure: i64,
}

/// A gateway's lease as the view shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Following {
    pub follower: String,
    pub report: GatewayReport,
}

#[async_trait]
pub trait FeedLeases: Send + Sync + 'static {
    /// This replica's name.
    fn replica(&self) -> &str;
    /// Marks this replica alive for `ttl`; how many replicas are alive.
    async fn heartbeat(&self, ttl: Duration) -> Result<usize, StoreError>;
    /// Takes `gateway` when it is free or its lease ran out, or renews this
    /// replica's lease, for `lease`, storing `report`.
    async fn hold(&self, gateway: &str, lease: Duration, report: &GatewayReport) -> Result<Hold, StoreError>;
    /// Gives `gateway` up (another replica may take it at once).
    async fn release(&self, gateway: &str) -> Result<(), StoreError>;
    /// Marks this replica gone (a clean stop).
    async fn leave(&self) -> Result<(), StoreError>;
    /// Publishes the snapshot `gateway`'s follower holds now (its number,
    /// how many sessions it would remove, and the gateway's `lastError`
    /// saying so), or that it holds none, while `tenure` is the gateway's
    /// current lease.
    async fn publish_hold(
        &self,
        gateway: &str,
        tenure: i64,
        hold: Option<(HoldId, usize, &str)>,
    ) -> Result<(), StoreError>;
    /// Records an operator's accept of the snapshot `gateway`'s follower
    /// holds now, for the follower to apply; false when none is held.
    async fn request_accept(&self, gateway: &str) -> Result<bool, StoreError>;
    /// Every gateway whose lease is current, with its follower's report.
    async fn followers(&self) -> Result<Vec<Following>, StoreError>;
}
