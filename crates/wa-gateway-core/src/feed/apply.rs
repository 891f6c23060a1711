//! Applying one feed message to the store: whole-record upserts with
//! last-writer-wins on `updated_at`, refusals, and removals of sessions
//! stored with this gateway only.

use std::collections::HashMap;

use super::message::{Refusal, Refused};
use crate::sessions::model::{Session, SessionId};
use crate::sessions::writes::{FeedWriter, Upsert};
use crate::store::error::StoreError;
use crate::store::port::Store;
use crate::time::UnixMillis;

/// How far ahead of this replica's clock a record may be dated. Further
/// would freeze the row against newer writes for that long.
pub const MAX_FUTURE_MS: i64 = 24 * 60 * 60 * 1000;

/// What applying the upserts of one message did.
#[derive(Debug, Default)]
pub struct Upserted {
    /// Stored rows that changed (inserted, updated or moved here).
    pub changed: Vec<SessionId>,
    /// Records no newer than the stored row: nothing written.
    pub unchanged: usize,
    pub refused: Vec<Refusal>,
    /// Every valid id the message named, refused ones included: what a
    /// snapshot counts as present.
    pub present: Vec<SessionId>,
}

/// Applies `records` as `writer`'s gateway's, in one transaction (the store's
/// `upsert_newer`, which holds the last-writer-wins rule).
pub(crate) async fn upsert(
    store: &Store,
    writer: FeedWriter<'_>,
    records: Vec<Result<Session, Refused>>,
    now: UnixMillis,
) -> Result<Upserted, StoreError> {
    let mut outcome = Upserted::default();
    // The last record of an id within a message is the one that counts, in
    // the place of its first (so writes, and their events, keep the host's order).
    let mut at: HashMap<SessionId, usize> = HashMap::with_capacity(records.len());
    let mut latest: Vec<Session> = Vec::with_capacity(records.len());
    for record in records {
        match record {
            Ok(mut session) => {
                outcome.present.push(session.id.clone());
                if session.updated_at > now.saturating_add(MAX_FUTURE_MS) {
                    outcome.refused.push(Refusal::FutureDate);
                    continue;
                }
                session.gateway_id = Some(writer.gateway.to_owned());
                match at.get(&session.id) {
                    Some(&i) => latest[i] = session,
                    None => {
                        at.insert(session.id.clone(), latest.len());
                        latest.push(session);
                    }
                }
            }
            Err(Refused { id, reason }) => {
                outcome.present.extend(id);
                outcome.refused.push(reason);
            }
        }
    }
    if latest.is_empty() {
        return Ok(outcome);
    }
    let candidates = latest;
    let outcomes = store.upsert_newer(writer, &candidates).await?;
    for (session, upsert) in candidates.into_iter().zip(outcomes) {
        match upsert {
            Upsert::Written { entered } => {
                if let Some(status) = entered {
                    super::metrics::transition(writer.gateway, status);
                }
                outcome.changed.push(session.id)
            }
            Upsert::NotNewer => outcome.unchanged += 1,
            Upsert::OtherOrganization => outcome.refused.push(Refusal::OrganizationMove),
        }
    }
    Ok(outcome)
}

/// What removing ids did.
#[derive(Debug, Default)]
pub struct Removed {
    pub removed: Vec<SessionId>,
    /// Ids stored with another gateway: refused.
    pub elsewhere: usize,
}

/// Removes those of `ids` stored with `writer`'s gateway, with their stored
/// data, in transactions of at most [`REMOVE_CHUNK`] ids.
pub(crate) async fn remove(store: &Store, writer: FeedWriter<'_>, ids: &[SessionId]) -> Result<Removed, StoreError> {
    let mut outcome = Removed::default();
    for chunk in ids.chunks(REMOVE_CHUNK) {
        let removal = store.remove_gateway_sessions(writer, chunk).await?;
        outcome.removed.extend(removal.removed);
        outcome.elsewhere += removal.elsewhere;
    }
    Ok(outcome)
}

pub const REMOVE_CHUNK: usize = 1000;
