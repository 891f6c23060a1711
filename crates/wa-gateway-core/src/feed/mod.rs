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
mod catch_up;
mod cluster;
mod fence;
mod follower;
pub mod gateways;
pub mod leases;
pub mod message;
pub mod metrics;
pub mod report;
#[cfg(test)]
mod tests;

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
    /// A snapshot that names more sessions than this ends the stream: the
    /// ids it names are held until it completes.
    pub snapshot_max: usize,
    pub backoff_min: Duration,
    pub backoff_max: Duration,
    /// How long a host that has no feed is left alone.
    pub unsupported_retry: Duration,
}

impl Default for FeedConfig {
    fn default() -> Self {
        Self {
            snapshot_stall: Duration::from_secs(120),
            snapshot_max: 2_000_000,
            backoff_min: Duration::from_millis(500),
            backoff_max: Duration::from_secs(30),
            unsupported_retry: Duration::from_secs(600),
        }
    }
}

/// What following the gateways' feeds needs.
pub struct Followers<'a> {
    pub hosts: &'a Arc<dyn SessionHosts>,
    pub store: &'a Store,
    /// Stops the jobs of removed sessions.
    pub backfills: Option<Backfills>,
    pub gateways: &'a Gateways,
    pub config: FeedConfig,
    /// How long a replica holds a gateway without renewing (cluster mode).
    pub lease: Duration,
}

/// Follows the configured gateways on `tasks` until `stop`: every one of
/// them, or in cluster mode (`gateways` has leases) this replica's share.
pub fn follow_all(followers: Followers<'_>, tasks: &TaskTracker, stop: &CancellationToken) {
    let Followers { hosts, store, backfills, gateways, config, lease } = followers;
    for gateway in hosts.gateways() {
        let Some(host) = hosts.host(&gateway) else { continue };
        gateways.register(&gateway, host.url());
        metrics::register(&gateway);
        if gateways.leases().is_some() {
            metrics::not_followed(&gateway);
            continue;
        }
        let follower = follower::Follower {
            gateway,
            host,
            store: store.clone(),
            backfills: backfills.clone(),
            gateways: gateways.clone(),
            config,
            fence: None,
            tenure: None,
        };
        tasks.spawn(follower.run(stop.clone()));
    }
    if let Some(leases) = gateways.leases() {
        let coordinator = cluster::Coordinator {
            leases: leases.clone(),
            lease,
            hosts: hosts.clone(),
            store: store.clone(),
            backfills,
            gateways: gateways.clone(),
            config,
            tasks: tasks.clone(),
        };
        tasks.spawn(coordinator.run(stop.clone()));
    }
}

impl ServiceError for AcceptError {
    fn error_code(&self) -> ErrorCode {
        match self {
            Self::UnknownGateway(_) => ErrorCode::NotFound,
            Self::NothingHeld(_) => ErrorCode::Aborted,
            Self::Store(_) => ErrorCode::Unavailable,
        }
    }
    fn reason(&self) -> &'static str {
        match self {
            Self::UnknownGateway(_) => "GATEWAY_NOT_FOUND",
            Self::NothingHeld(_) => "NOTHING_HELD",
            Self::Store(_) => "STORE_UNAVAILABLE",
        }
    }
}

/// A gateway as the gateways view shows it: its follower's report and its
/// sessions by status (every status present).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GatewayView {
    pub report: GatewayReport,
    /// The replica that follows the gateway (cluster mode).
    pub follower: Option<String>,
    pub status_counts: Vec<(SessionStatus, u64)>,
}

impl GatewayView {
    /// Sessions stored with the gateway.
    pub fn sessions(&self) -> u64 {
        self.status_counts.iter().map(|(_, n)| n).sum()
    }
}

/// Every configured gateway, by id. In cluster mode a gateway another
/// replica follows is shown as its follower reports it.
pub async fn list(_admin: &SuperAdmin, store: &Store, gateways: &Gateways) -> Result<Vec<GatewayView>, StoreError> {
    let leases = gateways.leases();
    let counts = store.status_counts().await?;
    let followed = match leases {
        Some(leases) => leases.followers().await?,
        None => Vec::new(),
    };
    Ok(gateways
        .reports()
        .into_iter()
        .map(|local| {
            let (report, follower) = match (leases, followed.iter().find(|f| f.report.id == local.id)) {
                // This replica follows it: its own report is the freshest.
                (Some(leases), Some(following)) if following.follower == leases.replica() => {
                    (local, Some(following.follower.clone()))
                }
                (Some(_), Some(following)) => {
                    let mut report = following.report.clone();
                    report.host_url = local.host_url;
                    (report, Some(following.follower.clone()))
                }
                (Some(_), None) => {
                    let waiting = "no replica follows this gateway yet".to_owned();
                    (GatewayReport { feed: FeedState::Connecting, last_error: Some(waiting), ..local }, None)
                }
                (None, _) => (local, None),
            };
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
            GatewayView { report, follower, status_counts }
        })
        .collect())
}

/// Accepts `gateway`'s held snapshot; its follower (here, or on another
/// replica in cluster mode) removes the sessions. In cluster mode the
/// accept is recorded in the database, whichever replica answers.
pub async fn accept(admin: &SuperAdmin, gateways: &Gateways, gateway: &str) -> Result<(), AcceptError> {
    match gateways.leases() {
        None => gateways.accept(gateway)?,
        Some(leases) => {
            if !gateways.reports().iter().any(|r| r.id == gateway) {
                return Err(AcceptError::UnknownGateway(gateway.to_owned()));
            }
            if !leases.request_accept(gateway).await.map_err(|e| AcceptError::Store(e.to_string()))? {
                return Err(AcceptError::NothingHeld(gateway.to_owned()));
            }
        }
    }
    tracing::info!(gateway, by = admin.subject(), "held snapshot accepted");
    Ok(())
}
