//! Session history, what both backends share: the columns an event is read
//! as, its decoder, and the listing's statement (the backends differ in
//! where an event's commit position comes from).

use sqlx::{Database, QueryBuilder};

use wa_gateway_core::events::model::{EventFilter, EventKind, EventSource, Position, SessionEvent};
use wa_gateway_core::sessions::model::SessionStatus;
use wa_gateway_core::store::error::StoreError;

use crate::rows::Columns;

/// An event's columns after its commit position, as a backend selects them
/// from `session_events e`.
pub const EVENT_COLUMNS: &str = "e.id, e.session_id, e.organization_id, e.gateway_id, e.kind, e.from_status, \
     e.to_status, e.from_gateway_id, e.changed_at, e.recorded_at, e.source";

/// A row of `commit_position, EVENT_COLUMNS`, read by position.
pub fn event(row: &impl Columns) -> Result<SessionEvent, StoreError> {
    let id = row.int_at(1)?;
    let corrupt = |what: String| StoreError::Corrupt(format!("session event {id}: {what}"));
    let status = |at: usize| -> Result<Option<SessionStatus>, StoreError> {
        row.opt_text_at(at)?.map(|s| s.parse().map_err(corrupt)).transpose()
    };
    Ok(SessionEvent {
        position: Position { commit: row.int_at(0)?, event: id },
        session_id: row.text_at(2)?,
        organization_id: row.text_at(3)?,
        gateway_id: row.opt_text_at(4)?,
        kind: row.str_at(5, |s| s.parse::<EventKind>())?.map_err(corrupt)?,
        from_status: status(6)?,
        to_status: status(7)?,
        from_gateway_id: row.opt_text_at(8)?,
        changed_at: row.int_at(9)?,
        recorded_at: row.int_at(10)?,
        source: row.str_at(11, |s| s.parse::<EventSource>())?.map_err(corrupt)?,
    })
}

/// `since`'s lower bound on ids, given `since` as its one parameter: the id
/// of the first event recorded since then, so a window with few events
/// does not scan older ones.
pub const SINCE_BOUND: &str =
    " AND e.id >= (SELECT id FROM session_events WHERE recorded_at >= ? ORDER BY recorded_at, id LIMIT 1)";

/// Adds the listing's conditions to a query over `session_events e`,
/// then its order and limit: newest first by id.
pub fn push_listing<'a, DB>(q: &mut QueryBuilder<'a, DB>, filter: &'a EventFilter, limit: u32, before: Option<i64>)
where
    DB: Database,
    &'a str: sqlx::Encode<'a, DB> + sqlx::Type<DB>,
    &'a String: sqlx::Encode<'a, DB> + sqlx::Type<DB>,
    i64: sqlx::Encode<'a, DB> + sqlx::Type<DB>,
{
    if let Some(session) = &filter.session_id {
        q.push(" AND e.session_id = ").push_bind(session.as_str());
    }
    if let Some(org) = &filter.organization_id {
        q.push(" AND e.organization_id = ").push_bind(org);
    }
    if let Some(gateway) = &filter.gateway_id {
        q.push(" AND e.gateway_id = ").push_bind(gateway);
    }
    if let Some(status) = filter.status {
        q.push(" AND e.to_status = ").push_bind(status.as_str());
    }
    if let Some(since) = filter.since {
        q.push(" AND e.recorded_at >= ").push_bind(since);
        let (head, tail) = SINCE_BOUND.split_once('?').unwrap_or((SINCE_BOUND, ""));
        q.push(head).push_bind(since).push(tail);
    }
    if let Some(before) = before {
        q.push(" AND e.id < ").push_bind(before);
    }
    q.push(" ORDER BY e.id DESC LIMIT ").push_bind(i64::from(limit));
}

/// The sessions of the events with ids in `(checked, upto]`, each with the
/// id of its newest event past the cap (NULL while under it), given as
/// `(cap, checked, upto)`. A session under the cap costs one short index
/// walk, so checking a snapshot's thousands of new sessions stays cheap.
pub fn over_cap(placeholders: crate::sessions::Placeholders) -> String {
    let [cap, checked, upto] = match placeholders {
        crate::sessions::Placeholders::Numbered => ["$1", "$2", "$3"],
        crate::sessions::Placeholders::Anonymous => ["?1", "?2", "?3"],
    };
    format!(
        "SELECT s.session_id, (SELECT e.id FROM session_events e WHERE e.session_id = s.session_id \
                                ORDER BY e.id DESC LIMIT 1 OFFSET {cap}) \
         FROM (SELECT DISTINCT session_id FROM session_events WHERE id > {checked} AND id <= {upto}) AS s"
    )
}

/// What one prune will delete, found by reads: the oldest events recorded
/// before the cutoff, and each over-cap session's newest id to delete through.
#[derive(Debug, Default)]
pub struct PrunePlan {
    pub aged: Vec<i64>,
    pub over_cap: Vec<(String, i64)>,
    pub checked: i64,
    pub upto: i64,
}

impl PrunePlan {
    /// A batch limit was reached: another prune may find more.
    pub fn more(&self, batch: i64) -> bool {
        self.aged.len() as i64 == batch || self.upto - self.checked == batch
    }

    pub fn is_empty(&self) -> bool {
        self.aged.is_empty() && self.over_cap.is_empty() && self.upto == self.checked
    }
}
