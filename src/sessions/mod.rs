//! Sessions: one attached WhatsApp number each, owned by an organization and
//! held by a gateway node. This module owns the domain type, its validation,
//! and the cross-organization listing.

mod import;
pub mod model;
mod record;
pub mod writes;

pub use import::{ImportError, ImportOptions, ImportSummary, MAX_LINE_BYTES, import};
pub use model::{IdError, Session, SessionFilter, SessionId, SessionStatus, check_id as check_id_field};
pub use record::{ParsedLine, parse_line};
pub use writes::{Inspection, SessionWrite, StoredVersion};

use crate::auth::SuperAdmin;
use crate::error::{ErrorCode, ServiceError};
use crate::paging::{CursorCodec, Page, PagingError};
use crate::store::error::StoreError;
use crate::store::port::Store;

#[derive(Debug, thiserror::Error)]
pub enum SessionsError {
    #[error(transparent)]
    Paging(#[from] PagingError),
    #[error("invalid filter: {0}")]
    InvalidFilter(String),
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl ServiceError for SessionsError {
    fn error_code(&self) -> ErrorCode {
        match self {
            Self::Paging(e) => e.error_code(),
            Self::InvalidFilter(_) => ErrorCode::InvalidArgument,
            Self::Store(e) => e.error_code(),
        }
    }
    fn reason(&self) -> &'static str {
        match self {
            Self::Paging(e) => e.reason(),
            Self::InvalidFilter(_) => "INVALID_FILTER",
            Self::Store(e) => e.reason(),
        }
    }
    fn details(&self) -> Vec<(&'static str, String)> {
        match self {
            Self::Paging(e) => e.details(),
            _ => Vec::new(),
        }
    }
}

/// A listing request as the caller sent it; validated by [`list`].
#[derive(Debug, Clone, Default)]
pub struct ListSessions {
    pub limit: Option<i64>,
    pub cursor: Option<String>,
    pub filter: SessionFilter,
    /// The revision of a page the caller already holds: while the sessions
    /// are unchanged since, the answer carries no page.
    pub unless_revision: Option<String>,
}

/// A listing's answer: the revision it was read at, and the page unless
/// the caller's revision is still current.
#[derive(Debug)]
pub struct Listing {
    pub revision: String,
    pub page: Option<Page<Session>>,
}

/// Sessions of every organization ordered by id. Keyset paging: following
/// `next_cursor` returns each session exactly once, even while sessions are
/// being added, and the cost of a page does not grow with its depth.
///
/// The revision is read before the rows, so the page is at least as new as
/// its revision: a caller that holds the page of revision R may keep using
/// it while the revision is R.
pub async fn list(
    _admin: &SuperAdmin,
    store: &Store,
    codec: &CursorCodec,
    request: ListSessions,
) -> Result<Listing, SessionsError> {
    let scope = request.filter.scope();
    let page = codec.page_request(&scope, request.limit, request.cursor.as_deref())?;
    let revision = store.sessions_revision().await?;
    if request.unless_revision.as_deref() == Some(revision.as_str()) {
        return Ok(Listing { revision, page: None });
    }
    let rows = store.list_sessions(&request.filter, &page).await?;
    let page = codec.page(&scope, page.limit, rows, |s: &Session| s.id.as_str().to_owned());
    Ok(Listing { revision, page: Some(page) })
}
