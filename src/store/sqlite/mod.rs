//! The embedded SQLite backend (WAL): the default, and the demo's database.

mod api_keys;
mod directory;
pub(super) mod errors;
mod readers;
mod sessions;

use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::sync::Mutex;
use std::time::Duration;

use async_trait::async_trait;
use rand::RngCore;
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteSynchronous};

use crate::store::port::{ApiKeyRow, Database, Replaced, SessionImport, Slice, Staging};

use crate::directory::{Contact, Group, GroupSummary, Participant};
use crate::paging::PageRequest;
use crate::sessions::model::{Session, SessionFilter, SessionId};
use crate::store::error::StoreError;
use crate::time::UnixMillis;

pub(super) const MIGRATIONS: super::migrations::Embedded = super::migrations::embed!("sqlite":
    "0001_sessions.sql",
    "0002_api_keys.sql",
    "0003_backfill_data.sql",
    "0004_group_participant_count.sql",
    "0005_session_filter_indexes.sql",
    "0006_sessions_revision.sql",
);

pub struct SqliteDatabase {
    pool: SqlitePool,
    /// For the hot reads.
    readers: readers::Readers,
    /// The database file.
    file: PathBuf,
    /// Held for the life of a `serve`: an OS lock on `<file>.serve-lock`.
    serving: Mutex<Option<std::fs::File>>,
}

fn options(url: &str) -> Result<SqliteConnectOptions, StoreError> {
    if url.contains("://") && !url.starts_with("sqlite:") {
        return Err(StoreError::UnsupportedUrl(url.to_owned()));
    }
    // It would vanish with the process, unseen by the CLI's other commands
    // (and by the reader connections, which open the file by name).
    if url.contains(":memory:") || url.contains("mode=memory") {
        return Err(StoreError::InMemory(url.to_owned()));
    }
    let options = if url.starts_with("sqlite:") {
        SqliteConnectOptions::from_str(url)?
    } else {
        SqliteConnectOptions::new().filename(url)
    };
    Ok(options
        .create_if_missing(true)
        .journal_mode(SqliteJournalMode::Wal)
        .synchronous(SqliteSynchronous::Normal)
        .foreign_keys(true)
        .busy_timeout(Duration::from_secs(5)))
}

impl SqliteDatabase {
    /// Opens (creating if missing) the database file. Does not migrate.
    pub async fn connect(url: &str) -> Result<Self, StoreError> {
        let options = options(url)?;
        let file = options.get_filename().to_owned();
        if file.as_os_str().is_empty() {
            return Err(StoreError::UnsupportedUrl(url.to_owned()));
        }
        let pool = SqlitePoolOptions::new()
            .max_connections(8)
            // A connection to a local file does not go stale the way a
            // network connection does; the ping before every checkout would
            // cost each query an extra round trip to the connection's thread.
            .test_before_acquire(false)
            .acquire_timeout(Duration::from_secs(10))
            .connect_with(options.clone())
            .await?;
        let readers = readers::Readers::new(file.clone());
        Ok(Self { pool, readers, file, serving: Mutex::new(None) })
    }
}

/// Takes the OS lock that makes one process the server of `file`. Other
/// writers (imports, api-key commands) never take it: SQLite serializes
/// them; only two servers on one file would break the generations.
fn lock_for_serving(file: &Path) -> Result<std::fs::File, StoreError> {
    let path = PathBuf::from(format!("{}.serve-lock", file.display()));
    let lock = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&path)
        .map_err(|e| StoreError::Corrupt(format!("cannot open {}: {e}", path.display())))?;
    match lock.try_lock() {
        Ok(()) => Ok(lock),
        Err(std::fs::TryLockError::WouldBlock) => Err(StoreError::InUse(file.display().to_string())),
        Err(std::fs::TryLockError::Error(e)) => {
            Err(StoreError::Corrupt(format!("cannot lock {}: {e}", path.display())))
        }
    }
}

#[async_trait]
impl Database for SqliteDatabase {
    async fn migrate(&self) -> Result<(), StoreError> {
        MIGRATIONS.migrator().await?.run(&self.pool).await?;
        Ok(())
    }

    async fn cursor_key(&self) -> Result<[u8; 32], StoreError> {
        let mut fresh = [0u8; 32];
        rand::rngs::OsRng.fill_bytes(&mut fresh);
        sqlx::query("INSERT OR IGNORE INTO server_secrets (name, value) VALUES ('cursor_key', ?)")
            .bind(fresh.as_slice())
            .execute(&self.pool)
            .await?;
        let stored: Vec<u8> = sqlx::query_scalar("SELECT value FROM server_secrets WHERE name = 'cursor_key'")
            .fetch_one(&self.pool)
            .await?;
        stored.try_into().map_err(|_| StoreError::Corrupt("cursor_key is not 32 bytes".into()))
    }

    async fn ping(&self) -> bool {
        sqlx::query("SELECT 1").execute(&self.pool).await.is_ok()
    }

    async fn close(&self) {
        self.readers.close();
        self.pool.close().await;
    }

    fn hold_serving_lock(&self) -> Result<(), StoreError> {
        let file = &self.file;
        let mut serving = self.serving.lock().unwrap_or_else(|p| p.into_inner());
        if serving.is_none() {
            *serving = Some(lock_for_serving(file)?);
        }
        Ok(())
    }

    async fn upsert_sessions(&self, sessions: &[Session]) -> Result<(), StoreError> {
        Self::upsert_sessions(self, sessions).await
    }
    async fn begin_import(&self) -> Result<Box<dyn SessionImport>, StoreError> {
        Self::begin_import(self).await
    }
    #[tracing::instrument(level = "debug", name = "store.list_sessions", skip_all, fields(db.system = "sqlite"))]
    async fn list_sessions(&self, filter: &SessionFilter, page: &PageRequest) -> Result<Vec<Session>, StoreError> {
        Self::list_sessions(self, filter, page).await
    }
    #[tracing::instrument(level = "debug", name = "store.get_session", skip_all, fields(db.system = "sqlite"))]
    async fn get_session(&self, id: &SessionId) -> Result<Option<Session>, StoreError> {
        Self::get_session(self, id).await
    }
    #[tracing::instrument(level = "debug", name = "store.sessions_revision", skip_all, fields(db.system = "sqlite"))]
    async fn sessions_revision(&self) -> Result<String, StoreError> {
        Self::sessions_revision(self).await
    }

    async fn insert_api_key(&self, key: &ApiKeyRow) -> Result<(), StoreError> {
        Self::insert_api_key(self, key).await
    }
    async fn list_api_keys(&self) -> Result<Vec<ApiKeyRow>, StoreError> {
        Self::list_api_keys(self).await
    }
    #[tracing::instrument(level = "debug", name = "store.find_api_key_by_hash", skip_all, fields(db.system = "sqlite"))]
    async fn find_api_key_by_hash(&self, hash: &[u8]) -> Result<Option<ApiKeyRow>, StoreError> {
        Self::find_api_key_by_hash(self, hash).await
    }
    async fn revoke_api_key(&self, id: &str, at: UnixMillis) -> Result<bool, StoreError> {
        Self::revoke_api_key(self, id, at).await
    }
    async fn touch_api_key(&self, id: &str, at: UnixMillis) -> Result<(), StoreError> {
        Self::touch_api_key(self, id, at).await
    }

    #[tracing::instrument(level = "debug", name = "store.stage_contacts", skip_all, fields(db.system = "sqlite"))]
    async fn stage_contacts(
        &self,
        to: Staging<'_>,
        contacts: &[Contact],
        maybe_staged: &[&str],
    ) -> Result<u64, StoreError> {
        Self::stage_contacts(self, to, contacts, maybe_staged).await
    }
    #[tracing::instrument(level = "debug", name = "store.stage_groups", skip_all, fields(db.system = "sqlite"))]
    async fn stage_groups(
        &self,
        to: Staging<'_>,
        groups: &[Group],
        maybe_staged: &[&str],
    ) -> Result<Replaced, StoreError> {
        Self::stage_groups(self, to, groups, maybe_staged).await
    }
    #[tracing::instrument(level = "debug", name = "store.publish_generation", skip_all, fields(db.system = "sqlite"))]
    async fn publish_generation(&self, session: &SessionId, generation: &str) -> Result<(), StoreError> {
        Self::publish_generation(self, session, generation).await
    }
    #[tracing::instrument(level = "debug", name = "store.discard_generation", skip_all, fields(db.system = "sqlite"))]
    async fn discard_generation(&self, session: &SessionId, generation: &str) -> Result<(), StoreError> {
        Self::discard_generation(self, session, generation).await
    }
    async fn sweep_unpublished_generations(&self) -> Result<u64, StoreError> {
        Self::sweep_unpublished_generations(self).await
    }
    #[tracing::instrument(level = "debug", name = "store.current_generation", skip_all, fields(db.system = "sqlite"))]
    async fn current_generation(&self, session: &SessionId) -> Result<Option<String>, StoreError> {
        Self::current_generation(self, session).await
    }
    #[tracing::instrument(level = "debug", name = "store.contacts_page", skip_all, fields(db.system = "sqlite"))]
    async fn contacts_page(
        &self,
        session: &SessionId,
        after: Option<&str>,
        limit: u32,
    ) -> Result<Slice<Contact>, StoreError> {
        Self::contacts_page(self, session, after, limit).await
    }
    #[tracing::instrument(level = "debug", name = "store.groups_page", skip_all, fields(db.system = "sqlite"))]
    async fn groups_page(
        &self,
        session: &SessionId,
        after: Option<&str>,
        limit: u32,
    ) -> Result<Slice<GroupSummary>, StoreError> {
        Self::groups_page(self, session, after, limit).await
    }
    #[tracing::instrument(level = "debug", name = "store.participants_page", skip_all, fields(db.system = "sqlite"))]
    async fn participants_page(
        &self,
        session: &SessionId,
        group: &str,
        after: Option<&str>,
        limit: u32,
    ) -> Result<Slice<Participant>, StoreError> {
        Self::participants_page(self, session, group, after, limit).await
    }
    #[tracing::instrument(level = "debug", name = "store.group_exists", skip_all, fields(db.system = "sqlite"))]
    async fn group_exists(&self, session: &SessionId, generation: &str, group: &str) -> Result<bool, StoreError> {
        Self::group_exists(self, session, generation, group).await
    }
}
