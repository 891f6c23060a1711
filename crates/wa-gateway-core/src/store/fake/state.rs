//! The fake store's data, under one lock: what every fake write reads and
//! changes at once, as a real store's transaction would.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Mutex, MutexGuard, PoisonError};

use tokio::time::Instant;

use crate::directory::{Contact, Group};
use crate::feed::report::{GatewayReport, HoldId};
use crate::sessions::model::{Session, SessionId};
use crate::sessions::writes::FeedWriter;
use crate::store::error::StoreError;
use crate::store::port::{ApiKeyRow, Staging};

#[derive(Default)]
pub(super) struct State {
    pub sessions: BTreeMap<String, Session>,
    /// Feed leases by gateway (cluster mode, [`FakeLeases`]).
    pub leases: BTreeMap<String, Lease>,
    pub revision: u64,
    pub api_keys: Vec<ApiKeyRow>,
    /// Rows by (session, generation).
    pub generations: HashMap<(String, String), Rows>,
    /// The visible generation of each session.
    pub current: HashMap<String, String>,
    /// Session history, oldest first (`events.rs`).
    pub events: Vec<crate::events::model::SessionEvent>,
    /// The newest position pruned.
    pub pruned: crate::events::model::Position,
}

#[derive(Default)]
pub(super) struct Rows {
    pub contacts: BTreeMap<String, Contact>,
    pub groups: BTreeMap<String, Group>,
}

pub(super) fn lock(state: &Mutex<State>) -> MutexGuard<'_, State> {
    state.lock().unwrap_or_else(PoisonError::into_inner)
}

impl State {
    pub fn staged(&mut self, to: Staging<'_>) -> &mut Rows {
        self.generations.entry((to.session.as_str().to_owned(), to.generation.to_owned())).or_default()
    }

    /// The visible rows of a session and their generation.
    pub fn visible(&self, session: &SessionId) -> Option<(&String, &Rows)> {
        let generation = self.current.get(session.as_str())?;
        Some((generation, self.generations.get(&(session.as_str().to_owned(), generation.clone()))?))
    }
}

#[derive(Debug, Clone)]
pub(super) struct Lease {
    pub follower: String,
    pub expires: Instant,
    pub tenure: i64,
    pub report: GatewayReport,
    pub hold: Option<HoldId>,
    pub held_removals: usize,
    pub accepted: Option<HoldId>,
}

impl Lease {
    pub fn current(&self) -> bool {
        Instant::now() <= self.expires
    }
}

/// Fails a feed write whose tenure is not its gateway's current lease, as
/// both real stores do inside the write's transaction (here: under the
/// store's one lock, which the write holds to its end).
pub(super) fn check_tenure(state: &State, writer: FeedWriter<'_>) -> Result<(), StoreError> {
    let Some(tenure) = writer.tenure else { return Ok(()) };
    match state.leases.get(writer.gateway) {
        Some(lease) if lease.tenure == tenure && lease.current() => Ok(()),
        _ => Err(StoreError::NotFollowing(writer.gateway.to_owned())),
    }
}
