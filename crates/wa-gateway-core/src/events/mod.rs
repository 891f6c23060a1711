//! Session history (contract §6): every change of a stored session is an
//! event, written by the store in the transaction of the change itself.
//! This module reads them: one session's or the fleet's, newest first, and
//! the change stream in commit order, resumable from any event's cursor on
//! any replica. `retention.rs` prunes them.

pub mod model;
pub mod retention;

use std::time::Duration;

use futures_util::stream::{self, BoxStream, StreamExt};

use crate::auth::SuperAdmin;
use crate::error::{ErrorCode, ServiceError};
use crate::paging::{CursorCodec, Page, PagingError};
use crate::store::error::StoreError;
use crate::store::port::Store;
use model::{After, EventFilter, Position, SessionEvent};

/// The scope of an event's own cursor (where a watch resumes).
const EVENT_CURSOR: &str = "session-event";
/// Events read from the store at a time by a watch.
const WATCH_BATCH: u32 = 500;
/// How often a watch that has caught up looks for new events.
pub const WATCH_POLL: Duration = Duration::from_millis(200);

#[derive(Debug, thiserror::Error)]
pub enum EventsError {
    #[error(transparent)]
    Paging(#[from] PagingError),
    #[error("after is not the cursor of an event this server listed or streamed")]
    InvalidAfter,
    #[error("session not found")]
    NotFound,
    #[error("events after this cursor have been pruned (older than the retention); list the events again")]
    Gone,
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl ServiceError for EventsError {
    fn error_code(&self) -> ErrorCode {
        match self {
            Self::Paging(e) => e.error_code(),
            Self::InvalidAfter => ErrorCode::InvalidArgument,
            Self::NotFound => ErrorCode::NotFound,
            Self::Gone => ErrorCode::Gone,
            Self::Store(e) => e.error_code(),
        }
    }
    fn reason(&self) -> &'static str {
        match self {
            Self::Paging(e) => e.reason(),
            Self::InvalidAfter => "INVALID_CURSOR",
            Self::NotFound => "SESSION_NOT_FOUND",
            Self::Gone => "CURSOR_GONE",
            Self::Store(e) => e.reason(),
        }
    }
    fn details(&self) -> Vec<(&'static str, String)> {
        match self {
            Self::Paging(e) => e.details(),
            Self::Gone | Self::InvalidAfter => vec![("field", "after".into())],
            _ => Vec::new(),
        }
    }
}

/// An event with the cursor a watch resumes after it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cursored {
    pub cursor: String,
    pub event: SessionEvent,
}

fn cursored(codec: &CursorCodec, event: SessionEvent) -> Cursored {
    Cursored { cursor: codec.encode(EVENT_CURSOR, &event.position.to_string()), event }
}

/// The position an event's cursor names.
fn position(codec: &CursorCodec, cursor: &str) -> Result<Position, EventsError> {
    let raw = codec.decode(EVENT_CURSOR, cursor).map_err(|_| EventsError::InvalidAfter)?;
    raw.parse().map_err(|()| EventsError::InvalidAfter)
}

/// A listing request as the caller sent it.
#[derive(Debug, Clone, Default)]
pub struct ListEvents {
    pub limit: Option<i64>,
    pub cursor: Option<String>,
    pub filter: EventFilter,
}

/// Events newest first under `request.filter`. Keyset paging by event id:
/// following `next_cursor` gives each event once, while events are being
/// written. One session's events are 404 for a session never stored (a
/// removed session's events stay readable).
pub async fn list(
    _admin: &SuperAdmin,
    store: &Store,
    codec: &CursorCodec,
    request: ListEvents,
) -> Result<Page<Cursored>, EventsError> {
    let scope = request.filter.scope();
    let page = codec.page_request(&scope, request.limit, request.cursor.as_deref())?;
    let before = match &page.after {
        None => None,
        Some(raw) => Some(raw.parse::<i64>().map_err(|_| PagingError::InvalidCursor)?),
    };
    let rows = store.list_session_events(&request.filter, page.limit.get() + 1, before).await?;
    if rows.is_empty() && before.is_none() {
        if let Some(session) = &request.filter.session_id {
            if store.get_session(session).await?.is_none() {
                return Err(EventsError::NotFound);
            }
        }
    }
    let page = codec.page(&scope, page.limit, rows, |e: &SessionEvent| e.position.event.to_string());
    Ok(Page { items: page.items.into_iter().map(|e| cursored(codec, e)).collect(), next_cursor: page.next_cursor })
}

/// Every event after `after` (an event's cursor), oldest first in commit
/// order, then each new one as it commits; without `after`, from now on.
/// A position whose later events were pruned is [`EventsError::Gone`], at
/// once or (if pruning overtakes a slow watcher) as the stream's last item.
pub async fn watch(
    _admin: &SuperAdmin,
    store: &Store,
    codec: &CursorCodec,
    after: Option<&str>,
) -> Result<BoxStream<'static, Result<Cursored, EventsError>>, EventsError> {
    let from = match after.filter(|c| !c.is_empty()) {
        Some(cursor) => position(codec, cursor)?,
        None => store.session_events_head().await?,
    };
    let first = match store.session_events_after(from, WATCH_BATCH).await? {
        After::Gone => return Err(EventsError::Gone),
        After::Events(events) => events,
    };
    let state = Tail { store: store.clone(), codec: codec.clone(), at: from, ready: first.into(), ended: false };
    Ok(stream::unfold(state, Tail::next).boxed())
}

struct Tail {
    store: Store,
    codec: CursorCodec,
    at: Position,
    ready: std::collections::VecDeque<SessionEvent>,
    ended: bool,
}

impl Tail {
    async fn next(mut self) -> Option<(Result<Cursored, EventsError>, Self)> {
        loop {
            if self.ended {
                return None;
            }
            if let Some(event) = self.ready.pop_front() {
                self.at = event.position;
                return Some((Ok(cursored(&self.codec, event)), self));
            }
            match self.store.session_events_after(self.at, WATCH_BATCH).await {
                Ok(After::Events(events)) if events.is_empty() => tokio::time::sleep(WATCH_POLL).await,
                Ok(After::Events(events)) => self.ready = events.into(),
                Ok(After::Gone) => {
                    self.ended = true;
                    return Some((Err(EventsError::Gone), self));
                }
                Err(e) => {
                    // The caller resumes with the cursor of the last event it got.
                    self.ended = true;
                    return Some((Err(EventsError::Store(e)), self));
                }
            }
        }
    }
}

#[cfg(test)]
mod tests;
