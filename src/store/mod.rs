//! Persistence. The store is the only module that speaks SQL; it knows the
//! domain types and nothing of tonic, prost or axum.
//!
//! [`Database`] is the one interface; each backend implements it in its own
//! module with its own embedded migrations (`migrations/<backend>/`): SQLite,
//! the embedded single-process default, and PostgreSQL, shared by replicas.
//! Callers hold a [`Store`] and never learn which backend is behind it.

mod migrations;
mod postgres;
mod rows;
mod sqlite;
mod sqlx_error;

pub use postgres::PgDatabase;
pub use sqlite::SqliteDatabase;

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;

use crate::backfill::JobBoard;
use crate::directory::{Contact, Group, GroupSummary, Participant};
use crate::error::{ErrorCode, ServiceError};
use crate::paging::PageRequest;
use crate::sessions::{Inspection, Session, SessionFilter, SessionId, SessionWrite};
use crate::time::UnixMillis;

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("unsupported database url {0:?}: use a SQLite file path, sqlite://PATH or postgres://…")]
    UnsupportedUrl(String),
    #[error(
        "in-memory database {0:?} is not supported: its data would be lost at exit and unseen by the other \
         commands; give a SQLite file path"
    )]
    InMemory(String),
    #[error("cannot connect to {0}")]
    Connect(String),
    #[error(
        "database {0} is in use by another `wa-gateway serve`; run one serve per SQLite file, \
         or use PostgreSQL (--database-url postgres://…) for several replicas"
    )]
    InUse(String),
    /// Locked by another writer, a serialization failure or deadlock, or no
    /// pooled connection free in time: worth retrying soon.
    #[error("database error: {0}")]
    Busy(String),
    /// The database server cannot be reached, or is starting or stopping.
    #[error("database error: {0}")]
    Unavailable(String),
    /// The disk or the database is full.
    #[error("database error: {0}")]
    Full(String),
    /// Any other failure of the database or of a statement.
    #[error("database error: {0}")]
    Other(String),
    #[error("the database is closed")]
    Closed,
    #[error("migration failed: {0}")]
    Migrate(String),
    #[error("stored data is inconsistent: {0}")]
    Corrupt(String),
}

/// `url` with its password replaced by `***`, for logs and errors.
pub fn redact_url(url: &str) -> String {
    match reqwest::Url::parse(url) {
        Ok(mut parsed) if parsed.password().is_some() => {
            let _ = parsed.set_password(Some("***"));
            parsed.to_string()
        }
        _ => url.to_owned(),
    }
}

/// `message` about `url`, naming the redacted URL and never its password.
fn redact_password(url: &str, message: &str) -> String {
    let mut message = message.to_owned();
    if let Some(password) = reqwest::Url::parse(url).ok().and_then(|u| u.password().map(str::to_owned)) {
        if !password.is_empty() {
            message = message.replace(&password, "***");
        }
    }
    format!("{}: {message}", redact_url(url))
}

impl StoreError {
    /// The database is there but cannot serve now: locked by another writer,
    /// out of pooled connections, or briefly unreachable. Worth retrying.
    pub fn is_busy(&self) -> bool {
        matches!(self, Self::Busy(_) | Self::Unavailable(_) | Self::Closed)
    }
}

/// The reason of an answer refused because the store was busy.
pub const STORE_BUSY: &str = "STORE_BUSY";

impl ServiceError for StoreError {
    fn error_code(&self) -> ErrorCode {
        if self.is_busy() { ErrorCode::Unavailable } else { ErrorCode::Internal }
    }
    fn reason(&self) -> &'static str {
        if self.is_busy() { STORE_BUSY } else { "STORE_ERROR" }
    }
    fn public_message(&self) -> String {
        if self.is_busy() { "the database is busy; try again shortly".into() } else { "internal error".into() }
    }
}

/// An api-key as stored: never the secret, only its hash.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiKeyRow {
    pub id: String,
    pub organization_id: String,
    pub name: Option<String>,
    pub permissions: Vec<String>,
    pub secret_hash: Vec<u8>,
    pub created_at: UnixMillis,
    pub last_used_at: Option<UnixMillis>,
    pub revoked_at: Option<UnixMillis>,
}

/// Where a job's rows go before they are published: the session and the
/// job's own generation, which readers do not see.
#[derive(Debug, Clone, Copy)]
pub struct Staging<'a> {
    pub session: &'a SessionId,
    pub generation: &'a str,
}

/// What staging a batch of groups replaced: groups the job had already
/// staged, and their member rows.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Replaced {
    pub groups: u64,
    pub members: u64,
}

/// Rows of one listing page and the generation they were read from (`None`
/// when there were no rows). Rows and generation come from one statement, so
/// a page never mixes two backfills.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Slice<T> {
    pub generation: Option<String>,
    pub rows: Vec<T>,
}

/// Everything the service asks of a database.
#[async_trait]
pub trait Database: Send + Sync + 'static {
    /// Applies every pending migration of this backend.
    async fn migrate(&self) -> Result<(), StoreError>;
    /// The server's cursor-signing key, created on first use. It lives in the
    /// database so cursors stay valid across restarts and replicas.
    async fn cursor_key(&self) -> Result<[u8; 32], StoreError>;
    /// Whether the database answers; for readiness probes.
    async fn ping(&self) -> bool;
    async fn close(&self);
    /// Makes this process the database's only server, for backends that
    /// allow just one (SQLite); fails when another server holds it.
    fn hold_serving_lock(&self) -> Result<(), StoreError> {
        Ok(())
    }
    /// The job board every replica shares, for backends that several
    /// replicas share (PostgreSQL); `None` keeps jobs in memory.
    fn shared_job_board(&self, _lease: Duration) -> Option<Arc<dyn JobBoard>> {
        None
    }

    /// Inserts or replaces every session in one transaction: all or nothing.
    async fn upsert_sessions(&self, sessions: &[Session]) -> Result<(), StoreError>;
    /// Starts an import: one transaction that the caller commits or drops.
    async fn begin_import(&self) -> Result<Box<dyn SessionImport>, StoreError>;
    /// Up to `limit + 1` sessions after the page's key, ordered by id, so the
    /// caller can tell whether another page exists.
    async fn list_sessions(&self, filter: &SessionFilter, page: &PageRequest) -> Result<Vec<Session>, StoreError>;
    async fn get_session(&self, id: &SessionId) -> Result<Option<Session>, StoreError>;
    /// The revision of the sessions table: it changes with every committed
    /// write to sessions and never repeats, so a listing read after the
    /// revision was R is still current while it reads R.
    async fn sessions_revision(&self) -> Result<String, StoreError>;

    async fn insert_api_key(&self, key: &ApiKeyRow) -> Result<(), StoreError>;
    async fn list_api_keys(&self) -> Result<Vec<ApiKeyRow>, StoreError>;
    async fn find_api_key_by_hash(&self, hash: &[u8]) -> Result<Option<ApiKeyRow>, StoreError>;
    /// Marks a key revoked. Returns false when no such key exists; revoking a
    /// revoked key keeps its first revocation time.
    async fn revoke_api_key(&self, id: &str, at: UnixMillis) -> Result<bool, StoreError>;
    async fn touch_api_key(&self, id: &str, at: UnixMillis) -> Result<(), StoreError>;

    /// Stages contacts (distinct jids) in one transaction. Those of
    /// `maybe_staged` that the generation already holds are replaced whole;
    /// returns how many were.
    async fn stage_contacts(
        &self,
        to: Staging<'_>,
        contacts: &[Contact],
        maybe_staged: &[&str],
    ) -> Result<u64, StoreError>;
    /// Stages groups (distinct jids) with their participants in one
    /// transaction. A group of `maybe_staged` already staged is replaced with
    /// its members: the new member set never merges with the old one.
    async fn stage_groups(
        &self,
        to: Staging<'_>,
        groups: &[Group],
        maybe_staged: &[&str],
    ) -> Result<Replaced, StoreError>;
    /// Makes `generation` the session's visible data and drops the one it
    /// replaces, atomically.
    async fn publish_generation(&self, session: &SessionId, generation: &str) -> Result<(), StoreError>;
    /// Drops the rows of a generation that will never be published.
    async fn discard_generation(&self, session: &SessionId, generation: &str) -> Result<(), StoreError>;
    /// Deletes rows of generations that are not current: leftovers of jobs
    /// that a crash interrupted. Run before any job starts.
    async fn sweep_unpublished_generations(&self) -> Result<u64, StoreError>;
    /// The session's visible generation, if a backfill ever succeeded.
    async fn current_generation(&self, session: &SessionId) -> Result<Option<String>, StoreError>;
    /// Up to `limit + 1` visible contacts after `after`, by jid.
    async fn contacts_page(
        &self,
        session: &SessionId,
        after: Option<&str>,
        limit: u32,
    ) -> Result<Slice<Contact>, StoreError>;
    /// Up to `limit + 1` visible groups after `after`, by jid, with member counts.
    async fn groups_page(
        &self,
        session: &SessionId,
        after: Option<&str>,
        limit: u32,
    ) -> Result<Slice<GroupSummary>, StoreError>;
    /// Up to `limit + 1` members of one visible group after `after`, by jid.
    async fn participants_page(
        &self,
        session: &SessionId,
        group: &str,
        after: Option<&str>,
        limit: u32,
    ) -> Result<Slice<Participant>, StoreError>;
    /// Whether `generation` of the session holds the group.
    async fn group_exists(&self, session: &SessionId, generation: &str, group: &str) -> Result<bool, StoreError>;
}

/// One import transaction. Dropping it without [`SessionImport::commit`]
/// writes nothing.
#[async_trait]
pub trait SessionImport: Send {
    /// For each id (distinct within one call): whether this import saw it
    /// before, and the stored row's owner and version if there is one.
    async fn inspect(&mut self, ids: &[&SessionId]) -> Result<Vec<Inspection>, StoreError>;
    /// Inserts or updates these sessions.
    async fn write(&mut self, sessions: &[SessionWrite]) -> Result<(), StoreError>;
    async fn commit(self: Box<Self>) -> Result<(), StoreError>;
}

/// A handle to the database; cheap to clone.
#[derive(Clone)]
pub struct Store(Arc<dyn Database>);

impl std::fmt::Debug for Store {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Store(..)")
    }
}

impl std::ops::Deref for Store {
    type Target = dyn Database;
    fn deref(&self) -> &Self::Target {
        &*self.0
    }
}

impl Store {
    /// Opens the database at `url`: `postgres://…` or `postgresql://…` for
    /// PostgreSQL, otherwise a SQLite file (created if missing). Does not migrate.
    pub async fn connect(url: &str) -> Result<Self, StoreError> {
        if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            return Ok(Self(Arc::new(PgDatabase::connect(url).await?)));
        }
        Ok(Self(Arc::new(SqliteDatabase::connect(url).await?)))
    }

    /// Opens and applies every pending migration.
    pub async fn open(url: &str) -> Result<Self, StoreError> {
        let store = Self::connect(url).await?;
        store.migrate().await?;
        Ok(store)
    }
}

#[cfg(test)]
mod tests {
    use sqlx::Connection;
    use sqlx::sqlite::{SqliteConnectOptions, SqliteConnection};

    use super::*;

    #[tokio::test]
    async fn a_locked_database_is_busy_and_unavailable_not_internal() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("busy.db");
        Store::open(path.to_str().unwrap()).await.unwrap().close().await;
        let mut holder = SqliteConnection::connect_with(&SqliteConnectOptions::new().filename(&path)).await.unwrap();
        sqlx::query("BEGIN IMMEDIATE").execute(&mut holder).await.unwrap();
        let impatient = SqliteConnectOptions::new().filename(&path).busy_timeout(std::time::Duration::ZERO);
        let mut writer = SqliteConnection::connect_with(&impatient).await.unwrap();
        let error = sqlx::query("INSERT INTO server_secrets (name, value) VALUES ('x', x'00')")
            .execute(&mut writer)
            .await
            .map_err(StoreError::from)
            .unwrap_err();
        assert!(error.is_busy(), "{error:?}");
        assert_eq!((error.error_code(), error.reason()), (ErrorCode::Unavailable, "STORE_BUSY"));
        assert!(!error.public_message().contains("server_secrets"), "no SQL in what callers see");
        let corrupt = StoreError::Corrupt("x".into());
        assert_eq!((corrupt.error_code(), corrupt.public_message().as_str()), (ErrorCode::Internal, "internal error"));
    }

    #[tokio::test]
    async fn a_listed_page_reads_every_value_back_as_stored() {
        use crate::sessions::{SessionFilter, SessionStatus};
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path().join("page.db").to_str().unwrap()).await.unwrap();
        let session = |id: &str| Session {
            id: SessionId::parse(id).unwrap(),
            organization_id: "org \"quoted\" \\ back".into(),
            created_by_user_id: None,
            gateway_id: Some("gw\nnewline\ttab \u{1}".into()),
            label: Some("emoji 🦀 and ünïcode".into()),
            phone_number: None,
            wa_jid: Some("62812@s.whatsapp.net".into()),
            wa_lid: None,
            status: SessionStatus::ScanQrCode,
            auto_read: true,
            presence_typing: false,
            is_admin_session: true,
            rate_per_min: Some(i32::MAX),
            rate_per_hour: None,
            created_at: 1_719_662_400_000,
            updated_at: i64::MAX,
            last_connected_at: Some(-1),
        };
        let mut sessions: Vec<Session> = ["b-2", "a-1", "c-3"].iter().map(|id| session(id)).collect();
        sessions[1].rate_per_min = None;
        sessions[1].status = SessionStatus::Working;
        store.upsert_sessions(&sessions).await.unwrap();
        let page = PageRequest { limit: crate::paging::PageLimit::new(Some(2)).unwrap(), after: None };
        let listed = store.list_sessions(&SessionFilter::default(), &page).await.unwrap();
        assert_eq!(
            listed.iter().map(|s| s.id.as_str()).collect::<Vec<_>>(),
            ["a-1", "b-2", "c-3"],
            "limit + 1, id order"
        );
        for s in &listed {
            assert_eq!(Some(s), store.get_session(&s.id).await.unwrap().as_ref(), "list and get agree");
            assert_eq!(Some(s), sessions.iter().find(|w| w.id == s.id), "as written");
        }
        store.close().await;
    }

    /// A row the schema should never hold (written around its CHECK) is an
    /// internal error naming the session, never a panic or a wrong value.
    #[tokio::test]
    async fn a_corrupt_session_row_is_refused_with_what_is_wrong() {
        use crate::sessions::SessionFilter;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("corrupt.db");
        let page = PageRequest { limit: crate::paging::PageLimit::new(Some(10)).unwrap(), after: None };
        let rows = [
            ("'bad id!'", "'working'", "session \"bad id!\": session id may contain only"),
            ("'s-1'", "'asleep'", "session \"s-1\": unknown status \"asleep\""),
            ("'s-1'", "42", "session \"s-1\": unknown status \"42\""),
            ("'s-1'", "x'ff'", "Invalid column type Blob at index: 8, name: status"),
        ];
        for (id, status, expected) in rows {
            let _ = std::fs::remove_file(&path);
            Store::open(path.to_str().unwrap()).await.unwrap().close().await;
            let mut writer =
                SqliteConnection::connect_with(&SqliteConnectOptions::new().filename(&path)).await.unwrap();
            let insert = format!(
                "PRAGMA ignore_check_constraints = ON; INSERT INTO sessions \
                 (id, organization_id, status, created_at, updated_at) VALUES ({id}, 'org', {status}, 1, 1)"
            );
            sqlx::raw_sql(&insert).execute(&mut writer).await.unwrap();
            writer.close().await.unwrap();
            let store = Store::connect(path.to_str().unwrap()).await.unwrap();
            let error = store.list_sessions(&SessionFilter::default(), &page).await.unwrap_err();
            assert_eq!(error.error_code(), ErrorCode::Internal, "{error:?}");
            assert!(format!("{error}").contains(expected), "{id} / {status}: {error}");
            store.close().await;
        }
    }
}
