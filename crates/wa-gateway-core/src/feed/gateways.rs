//! What every follower reports about its gateway, for the gateways view:
//! the feed's state, the last snapshot and event, the last error, and a
//! held snapshot waiting for an operator.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, PoisonError};

use tokio::sync::{Notify, watch};

use super::leases::FeedLeases;
pub use super::report::{FeedState, GatewayReport, HoldId};

#[derive(Debug)]
struct Entry {
    report: GatewayReport,
    /// The hold of the gateway's current feed stream, if any (here, when
    /// this process follows the gateway).
    hold: Option<HoldId>,
    /// The last hold an operator accepted; its follower applies it only if
    /// it is still the hold it has.
    accepted: watch::Sender<Option<HoldId>>,
}

/// The configured gateways' reports, and in cluster mode who follows
/// which; cheap to clone. A held snapshot's removals belong to the feed
/// stream that found them (the follower's own memory); what other
/// replicas must see of it (that it exists, its size, an accept) is
/// published through [`FeedLeases`] in cluster mode.
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
        let entry = Entry { report, hold: None, accepted: watch::channel(None).0 };
        self.lock().insert(id.to_owned(), entry);
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

    /// The follower of `id` holds a snapshot that would remove `removals`
    /// sessions (`hold` and `message`), or none (`None`).
    pub(crate) fn set_hold(&self, id: &str, hold: Option<(HoldId, usize, String)>) {
        if let Some(entry) = self.lock().get_mut(id) {
            match hold {
                Some((hold, removals, message)) => {
                    entry.hold = Some(hold);
                    entry.report.held_removals = removals;
                    entry.report.last_error = Some(message);
                }
                None => {
                    if entry.hold.take().is_some() {
                        entry.report.last_error = None;
                    }
                    entry.report.held_removals = 0;
                }
            }
        }
        self.changed.notify_one();
    }

    /// Accepts the snapshot `id`'s follower in this process holds now.
    pub fn accept(&self, id: &str) -> Result<(), AcceptError> {
        let entries = self.lock();
        let entry = entries.get(id).ok_or_else(|| AcceptError::UnknownGateway(id.to_owned()))?;
        let hold = entry.hold.ok_or_else(|| AcceptError::NothingHeld(id.to_owned()))?;
        entry.accepted.send_replace(Some(hold));
        Ok(())
    }

    /// Hands an accept of `hold`, recorded elsewhere (cluster mode), to
    /// `id`'s follower here; it applies it only if `hold` is its own.
    pub(crate) fn deliver_accept(&self, id: &str, hold: HoldId) {
        if let Some(entry) = self.lock().get(id) {
            entry.accepted.send_if_modified(|accepted| {
                let fresh = *accepted != Some(hold);
                *accepted = Some(hold);
                fresh
            });
        }
    }

    /// The accepts of `id`'s held snapshots, as they come.
    pub(crate) fn accepts(&self, id: &str) -> Option<watch::Receiver<Option<HoldId>>> {
        self.lock().get(id).map(|e| e.accepted.subscribe())
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, BTreeMap<String, Entry>> {
        self.entries.lock().unwrap_or_else(PoisonError::into_inner)
    }
}
