//! The fake store's session history: events recorded by the fake's own
//! writes, as the real stores' triggers do, with positions in write order
//! (the fake's one lock is its commit order).

use async_trait::async_trait;

use super::FakeDatabase;
use super::state::State;
use crate::events::model::{After, EventFilter, EventKind, EventSource, Position, Pruned, Retention, SessionEvent};
use crate::sessions::model::Session;
use crate::store::error::StoreError;
use crate::store::port::EventStore;
use crate::time::now_millis;

impl State {
    /// Stores `session` as `source` wrote it, recording what changed.
    pub fn put(&mut self, session: Session, source: EventSource) {
        let before = self.sessions.get(session.id.as_str());
        let (kind, from_status, to_status, from_gateway) = match before {
            None => (EventKind::Appeared, None, Some(session.status), None),
            Some(old) if old.gateway_id != session.gateway_id => {
                let changed = old.status != session.status;
                let (from, to) = if changed { (Some(old.status), Some(session.status)) } else { (None, None) };
                (EventKind::Moved, from, to, old.gateway_id.clone())
            }
            Some(old) if old.status != session.status => {
                (EventKind::StatusChanged, Some(old.status), Some(session.status), None)
            }
            Some(_) => {
                self.sessions.insert(session.id.as_str().to_owned(), session);
                return;
            }
        };
        self.record(&session, kind, from_status, to_status, from_gateway, session.updated_at, source);
        self.sessions.insert(session.id.as_str().to_owned(), session);
    }

    /// Removes a session (only the feed removes), recording it.
    pub fn take(&mut self, id: &str) -> Option<Session> {
        let gone = self.sessions.remove(id)?;
        let now = now_millis();
        self.record(&gone, EventKind::Removed, Some(gone.status), None, None, now, EventSource::Feed);
        Some(gone)
    }

    #[allow(clippy::too_many_arguments)]
    fn record(
        &mut self,
        session: &Session,
        kind: EventKind,
        from_status: Option<crate::sessions::model::SessionStatus>,
        to_status: Option<crate::sessions::model::SessionStatus>,
        from_gateway_id: Option<String>,
        changed_at: i64,
        source: EventSource,
    ) {
        let id = self.events.last().map_or(self.pruned.event, |e| e.position.event) + 1;
        self.events.push(SessionEvent {
            position: Position { commit: id, event: id },
            session_id: session.id.as_str().to_owned(),
            organization_id: session.organization_id.clone(),
            gateway_id: session.gateway_id.clone(),
            kind,
            from_status,
            to_status,
            from_gateway_id,
            changed_at,
            recorded_at: now_millis(),
            source,
        });
    }
}

fn matches(filter: &EventFilter, e: &SessionEvent) -> bool {
    filter.session_id.as_ref().is_none_or(|s| s.as_str() == e.session_id)
        && filter.organization_id.as_ref().is_none_or(|o| *o == e.organization_id)
        && filter.gateway_id.as_ref().is_none_or(|g| Some(g) == e.gateway_id.as_ref())
        && filter.status.is_none_or(|s| Some(s) == e.to_status)
        && filter.since.is_none_or(|t| e.recorded_at >= t)
}

#[async_trait]
impl EventStore for FakeDatabase {
    async fn list_session_events(
        &self,
        filter: &EventFilter,
        limit: u32,
        before: Option<i64>,
    ) -> Result<Vec<SessionEvent>, StoreError> {
        let state = self.state();
        let listed = state.events.iter().rev().filter(|e| before.is_none_or(|b| e.position.event < b));
        Ok(listed.filter(|e| matches(filter, e)).take(limit as usize).cloned().collect())
    }

    async fn session_events_after(&self, after: Position, limit: u32) -> Result<After, StoreError> {
        let state = self.state();
        if state.pruned > after {
            return Ok(After::Gone);
        }
        let later = state.events.iter().filter(|e| e.position > after);
        Ok(After::Events(later.take(limit as usize).cloned().collect()))
    }

    async fn session_events_head(&self) -> Result<Position, StoreError> {
        let state = self.state();
        Ok(state.events.last().map_or(state.pruned, |e| e.position))
    }

    async fn prune_session_events(&self, retention: &Retention) -> Result<Pruned, StoreError> {
        let mut state = self.state();
        let mut kept: std::collections::HashMap<String, u32> = std::collections::HashMap::new();
        let mut pruned = Pruned::default();
        let checked = state.events.len() as u64;
        let mut last_pruned = state.pruned;
        let mut events = std::mem::take(&mut state.events);
        events.reverse();
        events.retain(|e| {
            let seen = kept.entry(e.session_id.clone()).or_default();
            *seen += 1;
            let over = *seen > retention.per_session;
            let old = e.recorded_at < retention.recorded_before;
            if (over || old) && pruned.total() < u64::from(retention.batch) {
                if old {
                    pruned.by_age += 1
                } else {
                    pruned.by_count += 1
                }
                last_pruned = last_pruned.max(e.position);
                return false;
            }
            true
        });
        events.reverse();
        state.events = events;
        state.pruned = last_pruned;
        pruned.checked = checked;
        pruned.more = pruned.total() == u64::from(retention.batch);
        Ok(pruned)
    }
}
