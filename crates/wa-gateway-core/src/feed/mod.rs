//! The live session directory: each configured gateway's session host
//! streams the sessions it holds (a snapshot, then changes), and a follower
//! per gateway applies them to the store, so the listing shows every
//! session as it is. Semantics are CONTRACT §4, "The session feed".
//!
//! Invariants: a record is stored with the gateway whose feed sent it
//! (never a gateway the host names); nothing is removed before a snapshot
//! completes, nor from another gateway; a snapshot that would remove most of
//! a gateway is held for an operator ([`Gateways::accept`]).

mod apply;
mod follower;
pub mod gateways;
pub mod message;
pub mod metrics;

use std::sync::Arc;
use std::time::Duration;

use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

pub use apply::MAX_FUTURE_MS;
pub use gateways::{AcceptError, FeedState, GatewayReport, Gateways};
pub use message::{FeedMessage, Refusal, Refused};

use crate::auth::SuperAdmin;
use crate::backfill::Backfills;
use crate::error::{ErrorCode, ServiceError};
use crate::hosts::SessionHosts;
use crate::sessions::model::SessionStatus;
use crate::store::error::StoreError;
use crate::store::port::Store;

/// How followers wait.
#[derive(Debug, Clone, Copy)]
pub struct FeedConfig {
    /// A snapshot that does not complete within this ends the stream.
    pub snapshot_stall: Duration,
    pub backoff_min: Duration,
    pub backoff_max: Duration,
    /// How long a host that has no feed is left alone.
    pub unsupported_retry: Duration,
}

impl Default for FeedConfig {
    fn default() -> Self {
        Self {
            snapshot_stall: Duration::from_secs(120),
            backoff_min: Duration::from_millis(500),
            backoff_max: Duration::from_secs(30),
            unsupported_retry: Duration::from_secs(600),
        }
    }
}

/// Starts one follower per configured gateway on `tasks`; they stop with `stop`.
pub fn follow_all(
    hosts: &Arc<dyn SessionHosts>,
    store: &Store,
    backfills: Option<Backfills>,
    gateways: &Gateways,
    config: FeedConfig,
    tasks: &TaskTracker,
    stop: &CancellationToken,
) {
    for gateway in hosts.gateways() {
        let Some(host) = hosts.host(&gateway) else { continue };
        gateways.register(&gateway, host.url());
        metrics::register(&gateway);
        let follower = follower::Follower {
            gateway,
            host,
            store: store.clone(),
            backfills: backfills.clone(),
            gateways: gateways.clone(),
            config,
        };
        tasks.spawn(follower.run(stop.clone()));
    }
}

impl ServiceError for AcceptError {
    fn error_code(&self) -> ErrorCode {
        match self {
            Self::UnknownGateway(_) => ErrorCode::NotFound,
            Self::NothingHeld(_) => ErrorCode::Aborted,
        }
    }
    fn reason(&self) -> &'static str {
        match self {
            Self::UnknownGateway(_) => "GATEWAY_NOT_FOUND",
            Self::NothingHeld(_) => "NOTHING_HELD",
        }
    }
}

/// A gateway as the gateways view shows it: its follower's report and its
/// sessions by status (every status present).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GatewayView {
    pub report: GatewayReport,
    pub status_counts: Vec<(SessionStatus, u64)>,
}

impl GatewayView {
    /// Sessions stored with the gateway.
    pub fn sessions(&self) -> u64 {
        self.status_counts.iter().map(|(_, n)| n).sum()
    }
}

/// Every configured gateway, by id.
pub async fn list(_admin: &SuperAdmin, store: &Store, gateways: &Gateways) -> Result<Vec<GatewayView>, StoreError> {
    let counts = store.status_counts().await?;
    Ok(gateways
        .reports()
        .into_iter()
        .map(|report| {
            let status_counts = SessionStatus::ALL
                .into_iter()
                .map(|status| {
                    let n = counts
                        .iter()
                        .find(|c| c.gateway_id == report.id && c.status == status)
                        .map_or(0, |c| c.sessions);
                    (status, n)
                })
                .collect();
            GatewayView { report, status_counts }
        })
        .collect())
}

/// Accepts `gateway`'s held snapshot; its follower removes the sessions.
pub fn accept(admin: &SuperAdmin, gateways: &Gateways, gateway: &str) -> Result<(), AcceptError> {
    gateways.accept(gateway)?;
    tracing::info!(gateway, by = admin.subject(), "held snapshot accepted");
    Ok(())
}
