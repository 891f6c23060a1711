//! Persistence. The store is the only module that speaks SQL; it knows the
//! domain types and nothing of tonic, prost or axum.
//!
//! [`Database`] is the one interface; each backend implements it in its own
//! module with its own embedded migrations (`migrations/<backend>/`). Callers
//! hold a [`Store`] and never learn which backend is behind it.

mod sqlite;

pub use sqlite::SqliteDatabase;

use std::sync::Arc;

use async_trait::async_trait;

use crate::backfill::{Contact, Group};
use crate::error::{ErrorCode, ServiceError};
use crate::paging::PageRequest;
use crate::sessions::{Session, SessionFilter, SessionId};
use crate::time::UnixMillis;

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("unsupported database url {0:?}: use a SQLite file path or sqlite://PATH")]
    UnsupportedUrl(String),
    #[error("database error: {0}")]
    Database(#[from] sqlx::Error),
    #[error("migration failed: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
    #[error("stored data is inconsistent: {0}")]
    Corrupt(String),
}

impl ServiceError for StoreError {
    fn error_code(&self) -> ErrorCode {
        match self {
            Self::Database(sqlx::Error::PoolTimedOut) => ErrorCode::Unavailable,
            _ => ErrorCode::Internal,
        }
    }
    fn reason(&self) -> &'static str {
        match self {
            Self::Database(sqlx::Error::PoolTimedOut) => "STORE_BUSY",
            _ => "STORE_ERROR",
        }
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

    /// Inserts or replaces every session in one transaction: all or nothing.
    async fn upsert_sessions(&self, sessions: &[Session]) -> Result<(), StoreError>;
    /// Up to `limit + 1` sessions after the page's key, ordered by id, so the
    /// caller can tell whether another page exists.
    async fn list_sessions(&self, filter: &SessionFilter, page: &PageRequest) -> Result<Vec<Session>, StoreError>;
    async fn get_session(&self, id: &SessionId) -> Result<Option<Session>, StoreError>;

    async fn insert_api_key(&self, key: &ApiKeyRow) -> Result<(), StoreError>;
    async fn list_api_keys(&self) -> Result<Vec<ApiKeyRow>, StoreError>;
    async fn find_api_key_by_hash(&self, hash: &[u8]) -> Result<Option<ApiKeyRow>, StoreError>;
    /// Marks a key revoked. Returns false when no such key exists; revoking a
    /// revoked key keeps its first revocation time.
    async fn revoke_api_key(&self, id: &str, at: UnixMillis) -> Result<bool, StoreError>;
    async fn touch_api_key(&self, id: &str, at: UnixMillis) -> Result<(), StoreError>;

    /// Stores contacts under a not-yet-visible generation, in one transaction.
    async fn stage_contacts(&self, session: &SessionId, generation: &str, contacts: &[Contact])
    -> Result<(), StoreError>;
    /// Stores groups and their participants under a not-yet-visible generation.
    async fn stage_groups(&self, session: &SessionId, generation: &str, groups: &[Group]) -> Result<(), StoreError>;
    /// Makes `generation` the session's visible data and drops the previous
    /// one, atomically.
    async fn publish_generation(&self, session: &SessionId, generation: &str) -> Result<(), StoreError>;
    /// Drops the rows of a generation that will never be published.
    async fn discard_generation(&self, session: &SessionId, generation: &str) -> Result<(), StoreError>;
    /// Deletes rows of generations that are not current: leftovers of jobs
    /// that a crash interrupted. Run before any job starts.
    async fn sweep_unpublished_generations(&self) -> Result<u64, StoreError>;
    /// Up to `limit + 1` visible contacts after the page's key, by jid.
    async fn list_contacts(&self, session: &SessionId, page: &PageRequest) -> Result<Vec<Contact>, StoreError>;
    /// Up to `limit + 1` visible groups after the page's key, by jid, each
    /// with its participants.
    async fn list_groups(&self, session: &SessionId, page: &PageRequest) -> Result<Vec<Group>, StoreError>;
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
    /// Opens (creating if missing) the database at `url`. Does not migrate.
    pub async fn connect(url: &str) -> Result<Self, StoreError> {
        Ok(Self(Arc::new(SqliteDatabase::connect(url).await?)))
    }

    /// Opens and applies every pending migration.
    pub async fn open(url: &str) -> Result<Self, StoreError> {
        let store = Self::connect(url).await?;
        store.migrate().await?;
        Ok(store)
    }
}
