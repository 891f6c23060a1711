//! Catching up: the messages a host has already sent behind the one being
//! applied are applied with it, in one write, while they only add or change
//! sessions. A feed that falls behind then pays one transaction for many
//! messages instead of one each, and catches up instead of falling further.
//! Removals and the end of a snapshot are never joined: they are applied in
//! their place, after what came before them. Nor is a message that names a
//! session the joined write already has: each record is written, so each of
//! a session's changes stays in its history.

use std::collections::HashSet;

use futures_util::FutureExt;

use super::message::FeedMessage;
use crate::hosts::{FeedStream, HostError};
use crate::sessions::model::SessionId;

/// Most records one joined write holds (a host's own message limit).
pub(crate) const MAX_RECORDS: usize = 5_000;

/// What was read ahead and not joined: the next message, or the stream's end.
pub(crate) type Ahead = Result<Option<FeedMessage>, HostError>;

fn joinable(message: &FeedMessage) -> bool {
    message.removed.is_empty() && !message.snapshot_complete
}

/// The sessions a message names (refused records with a valid id included).
fn named(message: &FeedMessage) -> impl Iterator<Item = &SessionId> {
    message.upserted.iter().filter_map(|record| match record {
        Ok(session) => Some(&session.id),
        Err(refused) => refused.id.as_ref(),
    })
}

/// Joins to `message` the messages `stream` has ready now (never waiting),
/// while both only add or change sessions and the records fit; answers the
/// first thing read that was not joined.
pub(crate) fn read_ahead(stream: &mut dyn FeedStream, message: &mut FeedMessage) -> Option<Ahead> {
    if !joinable(message) {
        return None;
    }
    // Built only once a message is found waiting: a feed that keeps up
    // pays nothing here.
    let mut sessions: Option<HashSet<SessionId>> = None;
    loop {
        // The host client's `next` awaits only the transport's next
        // message, which keeps its place when a poll is not ready.
        let read = stream.next().now_or_never()?;
        match read {
            Ok(Some(next)) if joinable(&next) && message.upserted.len() + next.upserted.len() <= MAX_RECORDS => {
                let joined = sessions.get_or_insert_with(|| named(message).cloned().collect());
                if named(&next).any(|id| joined.contains(id)) {
                    return Some(Ok(Some(next)));
                }
                joined.extend(named(&next).cloned());
                message.upserted.extend(next.upserted);
            }
            other => return Some(other),
        }
    }
}
