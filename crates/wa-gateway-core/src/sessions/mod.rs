//! Sessions: one attached WhatsApp number each, owned by an organization and
//! held by a gateway node. This module owns the domain type, its validation,
//! and the cross-organization listing.

mod import;
pub mod model;
mod record;
pub mod writes;

pub use import::{ImportError, ImportOptions, ImportSummary, MAX_LINE_BYTES, import};
pub use model::{IdError, Session, SessionFilter, SessionId, SessionStatus, check_id as check_id_field};
pub use record::{MAX_TEXT_LEN as MAX_SESSION_TEXT_LEN, ParsedLine, parse_line};
pub use writes::{Inspection, SessionWrite, StoredVersion, Upsert};

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
    #[error("session not found")]
    NotFound,
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl ServiceError for SessionsError {
    fn error_code(&self) -> ErrorCode {
        match self {
            Self::Paging(e) => e.error_code(),
            Self::InvalidFilter(_) => ErrorCode::InvalidArgument,
            Self::NotFound => ErrorCode::NotFound,
            Self::Store(e) => e.error_code(),
        }
    }
    fn reason(&self) -> &'static str {
        match self {
            Self::Paging(e) => e.reason(),
            Self::InvalidFilter(_) => "INVALID_FILTER",
            Self::NotFound => "SESSION_NOT_FOUND",
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

/// One session by its id, whatever its organization.
pub async fn get(_admin: &SuperAdmin, store: &Store, id: &SessionId) -> Result<Session, SessionsError> {
    store.get_session(id).await?.ok_or(SessionsError::NotFound)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::fake::FakeDatabase;

    fn session(id: &str, organization: &str) -> Session {
        Session {
            id: SessionId::parse(id).unwrap(),
            organization_id: organization.into(),
            created_by_user_id: None,
            gateway_id: Some("gw-1".into()),
            label: None,
            phone_number: None,
            wa_jid: None,
            wa_lid: None,
            status: SessionStatus::Working,
            auto_read: false,
            presence_typing: false,
            is_admin_session: false,
            rate_per_min: None,
            rate_per_hour: None,
            created_at: 1,
            updated_at: 1,
            last_connected_at: None,
        }
    }

    fn request(limit: i64, cursor: Option<String>, organization: Option<&str>) -> ListSessions {
        let filter = SessionFilter { organization_id: organization.map(str::to_owned), ..Default::default() };
        ListSessions { limit: Some(limit), cursor, filter, unless_revision: None }
    }

    /// Every page of a filter, followed to the end: the ids in order.
    async fn walk(store: &Store, codec: &CursorCodec, organization: Option<&str>) -> Vec<String> {
        let (admin, mut cursor, mut ids) = (SuperAdmin::for_tests(), None, Vec::new());
        for _ in 0..10 {
            let listing = list(&admin, store, codec, request(3, cursor, organization)).await.unwrap();
            let page = listing.page.expect("a page when no revision is given");
            ids.extend(page.items.iter().map(|s| s.id.as_str().to_owned()));
            match page.next_cursor {
                Some(next) => cursor = Some(next),
                None => return ids,
            }
        }
        panic!("no last page within 10 pages: {ids:?}");
    }

    #[tokio::test]
    async fn pages_cover_each_session_once_and_an_unchanged_revision_answers_without_a_page() {
        let store = FakeDatabase::store();
        let organization = |i: usize| if i % 3 == 0 { "org_a" } else { "org_b" };
        let sessions: Vec<Session> = (0..8).map(|i| session(&format!("s{i}"), organization(i))).collect();
        store.upsert_sessions(&sessions).await.unwrap();
        let codec = CursorCodec::new([1; 32]);

        let all: Vec<String> = (0..8).map(|i| format!("s{i}")).collect();
        assert_eq!(walk(&store, &codec, None).await, all, "pages of 3 cover all 8, in id order, once");
        assert_eq!(walk(&store, &codec, Some("org_a")).await, ["s0", "s3", "s6"]);

        // A cursor belongs to its filter: another filter's is refused.
        let admin = SuperAdmin::for_tests();
        let first = list(&admin, &store, &codec, request(3, None, None)).await.unwrap();
        let cursor = first.page.unwrap().next_cursor;
        let refused = list(&admin, &store, &codec, request(3, cursor, Some("org_a"))).await.unwrap_err();
        assert!(matches!(refused, SessionsError::Paging(_)), "{refused:?}");

        // While nothing changed, the revision answers without reading a page;
        // after a write it does not.
        let unless =
            |revision: &str| ListSessions { unless_revision: Some(revision.to_owned()), ..request(3, None, None) };
        let unchanged = list(&admin, &store, &codec, unless(&first.revision)).await.unwrap();
        assert!(unchanged.page.is_none() && unchanged.revision == first.revision);
        store.upsert_sessions(&[session("s9", "org_c")]).await.unwrap();
        let changed = list(&admin, &store, &codec, unless(&first.revision)).await.unwrap();
        assert!(changed.revision != first.revision && changed.page.is_some());
    }
}
