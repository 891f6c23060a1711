//! Who follows which gateway when several replicas share one database
//! (cluster mode): a lease row per gateway, taken when free or expired and
//! renewed by its holder, with the holder's report beside it so that any
//! replica can answer the gateways view. The PostgreSQL backend implements
//! it; a single-process store has none (its one process follows them all).

use std::time::Duration;

use async_trait::async_trait;

use super::report::GatewayReport;
use crate::store::error::StoreError;

/// What taking or renewing a gateway's lease found.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Hold {
    /// This replica holds the gateway until the lease runs out.
    pub held: bool,
    /// An operator accepted the gateway's held snapshot on some replica.
    pub accept_requested: bool,
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
    /// Asks `gateway`'s follower to apply its held snapshot; false when no
    /// follower holds one.
    async fn request_accept(&self, gateway: &str) -> Result<bool, StoreError>;
    /// Every gateway whose lease is current, with its follower's report.
    async fn followers(&self) -> Result<Vec<Following>, StoreError>;
}
