//! Feed leases over the fake store's lease rows, with the semantics of the
//! PostgreSQL backend's: a row per gateway, taken when free or expired with
//! a tenure no lease had before, renewed by its holder, a held snapshot
//! published under the tenure, and an accept that names the hold. Times
//! are tokio's clock, so a test that pauses time moves leases on.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use tokio::time::Instant;

use super::state::{Lease, State, lock};
use crate::feed::leases::{FeedLeases, Following, Hold};
use crate::feed::report::{GatewayReport, HoldId};
use crate::store::error::StoreError;

/// One replica's view of the lease rows.
pub struct FakeLeases {
    state: Arc<Mutex<State>>,
    replica: String,
    /// Replicas alive, shared by the [`FakeLeases`] made [`Self::alongside`].
    replicas: Arc<Mutex<BTreeMap<String, Instant>>>,
}

/// Tenures are never reused, across every fake store of the test binary.
static NEXT_TENURE: std::sync::atomic::AtomicI64 = std::sync::atomic::AtomicI64::new(1);

impl FakeLeases {
    pub(super) fn new(state: Arc<Mutex<State>>, replica: &str) -> Self {
        Self { state, replica: replica.to_owned(), replicas: Arc::default() }
    }

    /// Every replica of one test shares who is alive.
    pub fn alongside(&self, replica: &str) -> Self {
        Self { state: self.state.clone(), replica: replica.to_owned(), replicas: self.replicas.clone() }
    }

    /// The current tenure of `gateway`'s lease and its follower, if any.
    pub fn current(&self, gateway: &str) -> Option<(String, i64)> {
        let state = lock(&self.state);
        state.leases.get(gateway).filter(|l| l.current()).map(|l| (l.follower.clone(), l.tenure))
    }
}

#[async_trait]
impl FeedLeases for FakeLeases {
    fn replica(&self) -> &str {
        &self.replica
    }

    async fn heartbeat(&self, ttl: Duration) -> Result<usize, StoreError> {
        let mut replicas = self.replicas.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        let now = Instant::now();
        replicas.insert(self.replica.clone(), now + ttl);
        replicas.retain(|_, until| *until >= now);
        Ok(replicas.len().max(1))
    }

    async fn hold(&self, gateway: &str, lease: Duration, report: &GatewayReport) -> Result<Hold, StoreError> {
        let mut state = lock(&self.state);
        let expires = Instant::now() + lease;
        match state.leases.get_mut(gateway) {
            Some(row) if row.follower == self.replica => {
                row.expires = expires;
                let held_removals = row.held_removals;
                row.report = GatewayReport { held_removals, ..report.clone() };
                Ok(Hold { held: true, accepted: row.accepted, tenure: row.tenure })
            }
            Some(row) if row.current() => Ok(Hold::default()),
            _ => {
                let tenure = NEXT_TENURE.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                let row = Lease {
                    follower: self.replica.clone(),
                    expires,
                    tenure,
                    report: GatewayReport { held_removals: 0, ..report.clone() },
                    hold: None,
                    held_removals: 0,
                    accepted: None,
                };
                state.leases.insert(gateway.to_owned(), row);
                Ok(Hold { held: true, accepted: None, tenure })
            }
        }
    }

    async fn release(&self, gateway: &str) -> Result<(), StoreError> {
        let mut state = lock(&self.state);
        if state.leases.get(gateway).is_some_and(|l| l.follower == self.replica) {
            state.leases.remove(gateway);
        }
        Ok(())
    }

    async fn leave(&self) -> Result<(), StoreError> {
        self.replicas.lock().unwrap_or_else(std::sync::PoisonError::into_inner).remove(&self.replica);
        Ok(())
    }

    async fn publish_hold(
        &self,
        gateway: &str,
        tenure: i64,
        hold: Option<(HoldId, usize, &str)>,
    ) -> Result<(), StoreError> {
        let mut state = lock(&self.state);
        if let Some(row) = state.leases.get_mut(gateway).filter(|l| l.tenure == tenure) {
            if row.hold != hold.map(|(id, ..)| id) {
                row.accepted = None;
            }
            row.hold = hold.map(|(id, ..)| id);
            row.held_removals = hold.map_or(0, |(_, n, _)| n);
            row.report.held_removals = row.held_removals;
            if let Some((.., message)) = hold {
                row.report.last_error = Some(message.to_owned());
            }
        }
        Ok(())
    }

    async fn request_accept(&self, gateway: &str) -> Result<bool, StoreError> {
        let mut state = lock(&self.state);
        match state.leases.get_mut(gateway).filter(|l| l.current()) {
            Some(row) if row.hold.is_some() => {
                row.accepted = row.hold;
                Ok(true)
            }
            _ => Ok(false),
        }
    }

    async fn followers(&self) -> Result<Vec<Following>, StoreError> {
        let state = lock(&self.state);
        Ok(state
            .leases
            .values()
            .filter(|l| l.current())
            .map(|l| Following { follower: l.follower.clone(), report: l.report.clone() })
            .collect())
    }
}
