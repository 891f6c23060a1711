//! An in-memory [`Database`] for tests about the domain (the job board, the
//! runner, the listings): the port's documented behaviour over maps, nothing
//! of SQL. Tests about the store itself run against both real backends.

use std::collections::{BTreeMap, HashSet};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use async_trait::async_trait;

mod events;
mod leases;
mod state;

pub use leases::FakeLeases;
use state::{State, lock};

use super::error::StoreError;
use super::port::{
    ApiKeyRow, ApiKeyStore, Database, DirectoryStore, GatewayRemoval, Replaced, SessionImport, SessionStore, Slice,
    Staging, StatusCount, Store,
};
use crate::backfill::board::JobBoard;
use crate::directory::{Contact, Group, GroupSummary, Participant};
use crate::events::model::EventSource;
use crate::paging::PageRequest;
use crate::sessions::model::{Session, SessionFilter, SessionId};
use crate::sessions::writes::{FeedWriter, Inspection, SessionWrite, StoredVersion};
use crate::time::UnixMillis;

#[derive(Default)]
pub struct FakeDatabase {
    state: Arc<Mutex<State>>,
    /// When set, every contacts write waits at it ([`WriteGate`]).
    gate: Option<Arc<WriteGate>>,
}

/// Holds a store's contacts writes in flight until the test lets them end,
/// and tells whether one was abandoned (its future dropped) before it did.
pub struct WriteGate {
    pub began: tokio::sync::Notify,
    release: tokio::sync::Semaphore,
    pub begun: std::sync::atomic::AtomicUsize,
    pub ended: std::sync::atomic::AtomicUsize,
    pub abandoned: std::sync::atomic::AtomicUsize,
}

impl Default for WriteGate {
    fn default() -> Self {
        Self {
            began: tokio::sync::Notify::new(),
            release: tokio::sync::Semaphore::new(0),
            begun: Default::default(),
            ended: Default::default(),
            abandoned: Default::default(),
        }
    }
}

impl WriteGate {
    /// Lets `n` held writes (or later ones) end.
    pub fn release(&self, n: usize) {
        self.release.add_permits(n);
    }

    async fn pass(&self) {
        use std::sync::atomic::Ordering::SeqCst;
        struct InFlight<'a>(&'a WriteGate, bool);
        impl Drop for InFlight<'_> {
            fn drop(&mut self) {
                if !self.1 {
                    self.0.abandoned.fetch_add(1, SeqCst);
                }
            }
        }
        self.begun.fetch_add(1, SeqCst);
        let mut in_flight = InFlight(self, false);
        self.began.notify_one();
        if let Ok(permit) = self.release.acquire().await {
            permit.forget();
        }
        in_flight.1 = true;
        self.ended.fetch_add(1, SeqCst);
    }
}

impl FakeDatabase {
    /// A store over a new, empty fake.
    pub fn store() -> Store {
        Store::new(Arc::new(Self::default()))
    }

    /// Replica `replica`'s feed leases over this store's lease rows: every
    /// feed write with a tenure is checked against them, as both real
    /// stores check it in the write's own transaction.
    pub fn leases(&self, replica: &str) -> FakeLeases {
        FakeLeases::new(self.state.clone(), replica)
    }

    /// Another handle to the same data.
    pub fn handle(&self) -> Self {
        Self { state: self.state.clone(), gate: self.gate.clone() }
    }

    /// This store with its contacts writes held at `gate`.
    pub fn gated(mut self, gate: Arc<WriteGate>) -> Self {
        self.gate = Some(gate);
        self
    }

    fn state(&self) -> MutexGuard<'_, State> {
        lock(&self.state)
    }
}

/// Up to `limit + 1` values after `after`, in key order.
fn after<'a, T: 'a>(
    rows: impl Iterator<Item = (&'a String, &'a T)>,
    after: Option<&str>,
    limit: u32,
) -> impl Iterator<Item = &'a T> {
    rows.filter(move |(key, _)| after.is_none_or(|a| key.as_str() > a)).take(limit as usize + 1).map(|(_, v)| v)
}

#[async_trait]
impl Database for FakeDatabase {
    async fn migrate(&self) -> Result<(), StoreError> {
        Ok(())
    }

    async fn cursor_key(&self) -> Result<[u8; 32], StoreError> {
        Ok([7; 32])
    }

    async fn ping(&self) -> bool {
        true
    }

    fn pool_use(&self) -> super::port::PoolUse {
        super::port::PoolUse::default()
    }

    async fn close(&self) {}

    fn hold_serving_lock(&self) -> Result<(), StoreError> {
        Ok(())
    }

    fn shared_job_board(&self, _lease: Duration) -> Option<Arc<dyn JobBoard>> {
        None
    }

    fn feed_leases(&self) -> Option<Arc<dyn crate::feed::leases::FeedLeases>> {
        None
    }
}

#[async_trait]
impl SessionStore for FakeDatabase {
    async fn upsert_sessions(&self, sessions: &[Session]) -> Result<(), StoreError> {
        let mut state = self.state();
        for session in sessions {
            state.put(session.clone(), EventSource::Import);
        }
        state.revision += 1;
        Ok(())
    }

    async fn begin_import(&self) -> Result<Box<dyn SessionImport>, StoreError> {
        Ok(Box::new(FakeImport { state: self.state.clone(), seen: HashSet::new(), pending: Vec::new() }))
    }

    async fn list_sessions(&self, filter: &SessionFilter, page: &PageRequest) -> Result<Vec<Session>, StoreError> {
        let state = self.state();
        let matches = |s: &&Session| {
            filter.organization_id.as_ref().is_none_or(|o| *o == s.organization_id)
                && filter.status.is_none_or(|status| status == s.status)
                && filter.gateway_id.as_ref().is_none_or(|g| Some(g) == s.gateway_id.as_ref())
        };
        let listed = state.sessions.iter().filter(|(_, s)| matches(s));
        Ok(after(listed, page.after.as_deref(), page.limit.get()).cloned().collect())
    }

    async fn get_session(&self, id: &SessionId) -> Result<Option<Session>, StoreError> {
        Ok(self.state().sessions.get(id.as_str()).cloned())
    }

    async fn sessions_revision(&self) -> Result<String, StoreError> {
        Ok(self.state().revision.to_string())
    }

    async fn upsert_newer(
        &self,
        writer: FeedWriter<'_>,
        sessions: &[Session],
    ) -> Result<Vec<crate::sessions::writes::Upsert>, StoreError> {
        let mut state = self.state();
        state::check_tenure(&state, writer)?;
        let mut outcomes = Vec::with_capacity(sessions.len());
        for session in sessions {
            let stored = state.sessions.get(session.id.as_str()).map(StoredVersion::of);
            let outcome = crate::sessions::writes::decide(stored.as_ref(), session);
            if matches!(outcome, crate::sessions::writes::Upsert::Written { .. }) {
                state.put(session.clone(), EventSource::Feed);
            }
            outcomes.push(outcome);
        }
        state.revision += 1;
        Ok(outcomes)
    }

    async fn gateway_session_ids(&self, gateway: &str) -> Result<Vec<SessionId>, StoreError> {
        let state = self.state();
        let held = state.sessions.values().filter(|s| s.gateway_id.as_deref() == Some(gateway));
        Ok(held.map(|s| s.id.clone()).collect())
    }

    async fn remove_gateway_sessions(
        &self,
        writer: FeedWriter<'_>,
        ids: &[SessionId],
    ) -> Result<GatewayRemoval, StoreError> {
        let gateway = writer.gateway;
        let mut state = self.state();
        state::check_tenure(&state, writer)?;
        let mut removal = GatewayRemoval::default();
        for id in ids {
            match state.sessions.get(id.as_str()).map(|s| s.gateway_id.as_deref() == Some(gateway)) {
                Some(true) => {
                    state.take(id.as_str());
                    state.current.remove(id.as_str());
                    state.generations.retain(|(session, _), _| session != id.as_str());
                    removal.removed.push(id.clone());
                }
                Some(false) => removal.elsewhere += 1,
                None => {}
            }
        }
        if !removal.removed.is_empty() {
            state.revision += 1;
        }
        Ok(removal)
    }

    async fn status_counts(&self) -> Result<Vec<StatusCount>, StoreError> {
        let mut counts: BTreeMap<(String, &'static str), StatusCount> = BTreeMap::new();
        for s in self.state().sessions.values() {
            let gateway = s.gateway_id.clone().unwrap_or_default();
            let entry = counts.entry((gateway.clone(), s.status.as_str())).or_insert(StatusCount {
                gateway_id: gateway,
                status: s.status,
                sessions: 0,
            });
            entry.sessions += 1;
        }
        Ok(counts.into_values().collect())
    }
}

/// Writes buffered until commit; dropped, it writes nothing.
struct FakeImport {
    state: Arc<Mutex<State>>,
    seen: HashSet<String>,
    pending: Vec<SessionWrite>,
}

#[async_trait]
impl SessionImport for FakeImport {
    async fn inspect(&mut self, ids: &[&SessionId]) -> Result<Vec<Inspection>, StoreError> {
        let state = lock(&self.state);
        Ok(ids
            .iter()
            .map(|id| Inspection {
                repeated: !self.seen.insert(id.as_str().to_owned()),
                stored: state.sessions.get(id.as_str()).map(StoredVersion::of),
            })
            .collect())
    }

    /// Written at the commit, under the store's one lock, each over a row
    /// no newer only (the rule both real stores hold in the statement); a
    /// row stored newer before the commit is left, and not reported.
    async fn write(&mut self, sessions: &[SessionWrite]) -> Result<Vec<String>, StoreError> {
        self.pending.extend_from_slice(sessions);
        Ok(Vec::new())
    }

    async fn commit(self: Box<Self>) -> Result<(), StoreError> {
        let mut state = lock(&self.state);
        for write in self.pending {
            let mut session = write.session;
            if let Some(stored) = state.sessions.get(session.id.as_str()) {
                if stored.updated_at > session.updated_at {
                    continue;
                }
                if write.keep_stored_created_at {
                    session.created_at = stored.created_at;
                }
            }
            state.put(session, EventSource::Import);
        }
        state.revision += 1;
        Ok(())
    }
}

#[async_trait]
impl ApiKeyStore for FakeDatabase {
    async fn insert_api_key(&self, key: &ApiKeyRow) -> Result<(), StoreError> {
        self.state().api_keys.push(key.clone());
        Ok(())
    }

    async fn list_api_keys(&self) -> Result<Vec<ApiKeyRow>, StoreError> {
        Ok(self.state().api_keys.clone())
    }

    async fn find_api_key_by_hash(&self, hash: &[u8]) -> Result<Option<ApiKeyRow>, StoreError> {
        Ok(self.state().api_keys.iter().find(|k| k.secret_hash == hash).cloned())
    }

    async fn revoke_api_key(&self, id: &str, at: UnixMillis) -> Result<bool, StoreError> {
        let mut state = self.state();
        let Some(key) = state.api_keys.iter_mut().find(|k| k.id == id) else { return Ok(false) };
        key.revoked_at.get_or_insert(at);
        Ok(true)
    }

    async fn touch_api_key(&self, id: &str, at: UnixMillis) -> Result<(), StoreError> {
        if let Some(key) = self.state().api_keys.iter_mut().find(|k| k.id == id) {
            key.last_used_at = Some(at);
        }
        Ok(())
    }
}

/// A page's slice: the generation is named only when rows were read.
fn slice<T>(generation: Option<&String>, rows: Vec<T>) -> Slice<T> {
    Slice { generation: generation.filter(|_| !rows.is_empty()).cloned(), rows }
}

#[async_trait]
impl DirectoryStore for FakeDatabase {
    async fn stage_contacts(
        &self,
        to: Staging<'_>,
        contacts: &[Contact],
        maybe_staged: &[&str],
    ) -> Result<u64, StoreError> {
        if let Some(gate) = &self.gate {
            gate.pass().await;
        }
        let mut state = self.state();
        let rows = state.staged(to);
        let replaced = maybe_staged.iter().filter(|jid| rows.contacts.contains_key(**jid)).count() as u64;
        for contact in contacts {
            rows.contacts.insert(contact.jid.clone(), contact.clone());
        }
        Ok(replaced)
    }

    async fn stage_groups(
        &self,
        to: Staging<'_>,
        groups: &[Group],
        maybe_staged: &[&str],
    ) -> Result<Replaced, StoreError> {
        let mut state = self.state();
        let rows = state.staged(to);
        let mut replaced = Replaced::default();
        for jid in maybe_staged {
            if let Some(old) = rows.groups.get(*jid) {
                replaced.groups += 1;
                replaced.members += old.participants.len() as u64;
            }
        }
        for group in groups {
            rows.groups.insert(group.info.jid.clone(), group.clone());
        }
        Ok(replaced)
    }

    async fn publish_generation(&self, session: &SessionId, generation: &str) -> Result<(), StoreError> {
        let mut state = self.state();
        if !state.sessions.contains_key(session.as_str()) {
            return Err(StoreError::SessionRemoved(session.to_string()));
        }
        if let Some(old) = state.current.insert(session.as_str().to_owned(), generation.to_owned()) {
            if old != generation {
                state.generations.remove(&(session.as_str().to_owned(), old));
            }
        }
        Ok(())
    }

    async fn discard_generation(&self, session: &SessionId, generation: &str) -> Result<(), StoreError> {
        self.state().generations.remove(&(session.as_str().to_owned(), generation.to_owned()));
        Ok(())
    }

    async fn sweep_unpublished_generations(&self) -> Result<u64, StoreError> {
        let mut state = self.state();
        let State { generations, current, .. } = &mut *state;
        let mut swept = 0;
        generations.retain(|(session, generation), rows| {
            let keep = current.get(session) == Some(generation);
            if !keep {
                swept += (rows.contacts.len() + rows.groups.len()) as u64;
            }
            keep
        });
        Ok(swept)
    }

    async fn current_generation(&self, session: &SessionId) -> Result<Option<String>, StoreError> {
        Ok(self.state().current.get(session.as_str()).cloned())
    }

    async fn contacts_page(
        &self,
        session: &SessionId,
        after_jid: Option<&str>,
        limit: u32,
    ) -> Result<Slice<Contact>, StoreError> {
        let state = self.state();
        let Some((generation, rows)) = state.visible(session) else { return Ok(slice(None, Vec::new())) };
        Ok(slice(Some(generation), after(rows.contacts.iter(), after_jid, limit).cloned().collect()))
    }

    async fn groups_page(
        &self,
        session: &SessionId,
        after_jid: Option<&str>,
        limit: u32,
    ) -> Result<Slice<GroupSummary>, StoreError> {
        let state = self.state();
        let Some((generation, rows)) = state.visible(session) else { return Ok(slice(None, Vec::new())) };
        let page = after(rows.groups.iter(), after_jid, limit)
            .map(|g| GroupSummary { info: g.info.clone(), participant_count: g.participants.len() as u64 })
            .collect();
        Ok(slice(Some(generation), page))
    }

    async fn participants_page(
        &self,
        session: &SessionId,
        group: &str,
        after_jid: Option<&str>,
        limit: u32,
    ) -> Result<Slice<Participant>, StoreError> {
        let state = self.state();
        let Some((generation, rows)) = state.visible(session) else { return Ok(slice(None, Vec::new())) };
        let Some(group) = rows.groups.get(group) else { return Ok(slice(None, Vec::new())) };
        let members: BTreeMap<String, &Participant> = group.participants.iter().map(|p| (p.jid.clone(), p)).collect();
        Ok(slice(Some(generation), after(members.iter(), after_jid, limit).map(|p| (*p).clone()).collect()))
    }

    async fn group_exists(&self, session: &SessionId, generation: &str, group: &str) -> Result<bool, StoreError> {
        let key = (session.as_str().to_owned(), generation.to_owned());
        Ok(self.state().generations.get(&key).is_some_and(|rows| rows.groups.contains_key(group)))
    }
}
