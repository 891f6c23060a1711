//! What every follower reports about its gateway, for the gateways view:
//! the feed's state, the last snapshot and event, the last error, and a
//! held snapshot waiting for an operator.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex, PoisonError};

use tokio::sync::Notify;

use super::leases::FeedLeases;
pub use super::report::{FeedState, GatewayReport};
use crate::sessions::model::SessionId;

#[derive(Debug)]
struct Entry {
    report: GatewayReport,
    held: BTreeSet<SessionId>,
    accepted: Arc<Notify>,
}

/// The configured gateways' reports, and in cluster mode who follows
/// which; cheap to clone.
#[derive(Clone, Default)]
pub struct Gateways {
    entries: Arc<Mutex<BTreeMap<String, Entry>>>,
    leases: Option<Arc<dyn FeedLeases>>,
    /// Woken when a report changes, so cluster mode shares it soon.
    changed: Arc<Notify>,
}

/// Why a held snapshot could not be accepted.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AcceptError {
    #[error("no gateway {0} is configured")]
    UnknownGateway(String),
    #[error("gateway {0} has no held snapshot")]
    NothingHeld(String),
    #[error("the database did not answer: {0}")]
    Store(String),
}

impl Gateways {
    /// Gateways whose followers are chosen through `leases` (cluster mode).
    pub fn with_leases(leases: Option<Arc<dyn FeedLeases>>) -> Self {
        Self { entries: Arc::default(), leases, changed: Arc::default() }
    }

    pub fn leases(&self) -> Option<&Arc<dyn FeedLeases>> {
        self.leases.as_ref()
    }

    /// Registers `id`, reached at `host_url`, as connecting.
    pub fn register(&self, id: &str, host_url: String) {
        let report = GatewayReport {
            id: id.to_owned(),
            host_url,
            feed: FeedState::Connecting,
            last_snapshot_at: None,
            last_event_at: None,
            last_error: None,
            held_removals: 0,
        };
        self.lock().insert(id.to_owned(), Entry { report, held: BTreeSet::new(), accepted: Arc::new(Notify::new()) });
    }

    /// Every registered gateway, by id.
    pub fn reports(&self) -> Vec<GatewayReport> {
        self.lock().values().map(|e| e.report.clone()).collect()
    }

    pub(crate) fn update(&self, id: &str, change: impl FnOnce(&mut GatewayReport)) {
        if let Some(entry) = self.lock().get_mut(id) {
            change(&mut entry.report);
        }
        self.changed.notify_one();
    }

    /// Resolves after some report changed.
    pub(crate) async fn changed(&self) {
        self.changed.notified().await;
    }

    /// Holds `removals` until an operator accepts them.
    pub(crate) fn hold(&self, id: &str, removals: BTreeSet<SessionId>, message: String) {
        if let Some(entry) = self.lock().get_mut(id) {
            entry.report.held_removals = removals.len();
            entry.report.last_error = Some(message);
            entry.held = removals;
        }
    }

    /// A record seen since the hold is present after all.
    pub(crate) fn seen(&self, id: &str, sessions: &[&SessionId]) {
        if let Some(entry) = self.lock().get_mut(id)
            && !entry.held.is_empty()
        {
            for session in sessions {
                entry.held.remove(*session);
            }
            entry.report.held_removals = entry.held.len();
        }
    }

    /// Drops a held snapshot (a new snapshot replaces it).
    pub(crate) fn release(&self, id: &str) {
        if let Some(entry) = self.lock().get_mut(id) {
            if entry.report.held_removals > 0 {
                entry.report.last_error = None;
            }
            entry.held.clear();
            entry.report.held_removals = 0;
        }
    }

    /// Takes the held removals of `id` to apply them; wakes its follower.
    pub fn accept(&self, id: &str) -> Result<(), AcceptError> {
        let mut entries = self.lock();
        let entry = entries.get_mut(id).ok_or_else(|| AcceptError::UnknownGateway(id.to_owned()))?;
        if entry.report.held_removals == 0 {
            return Err(AcceptError::NothingHeld(id.to_owned()));
        }
        entry.accepted.notify_one();
        Ok(())
    }

    /// Resolves once an operator accepted `id`'s held snapshot.
    pub(crate) fn accepted(&self, id: &str) -> Option<Arc<Notify>> {
        self.lock().get(id).map(|e| e.accepted.clone())
    }

    /// The held removals of `id`, emptied.
    pub(crate) fn take_held(&self, id: &str) -> BTreeSet<SessionId> {
        let mut entries = self.lock();
        let Some(entry) = entries.get_mut(id) else { return BTreeSet::new() };
        entry.report.held_removals = 0;
        entry.report.last_error = None;
        std::mem::take(&mut entry.held)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, BTreeMap<String, Entry>> {
        self.entries.lock().unwrap_or_else(PoisonError::into_inner)
    }
}
