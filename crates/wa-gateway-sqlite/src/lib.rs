//! The embedded SQLite backend (WAL): the default, and the demo's database.

mod api_keys;
pub mod backup;
mod directory;
mod errors;
mod events;
mod readers;
mod sessions;
#[cfg(test)]
mod tests;

use crate::errors::from_sqlx;
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use wa_gateway_sql::from_migrate;

use async_trait::async_trait;
use rand::RngCore;
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteSynchronous};

use wa_gateway_core::backfill::board::JobBoard;
use wa_gateway_core::store::port::Database;

use wa_gateway_core::store::error::StoreError;

/// How every write transaction begins: with the write lock taken at once,
/// so a transaction that reads before it writes never has to upgrade a read
/// (SQLITE_BUSY, or BUSY_SNAPSHOT under WAL); it waits its turn instead,
/// up to the connection's busy timeout.
pub(crate) const BEGIN_WRITE: &str = "BEGIN IMMEDIATE";

/// This backend's migrations, in version order.
pub const MIGRATIONS: wa_gateway_sql::Embedded = wa_gateway_sql::embed!(
    "0001_sessions.sql",
    "0002_api_keys.sql",
    "0003_backfill_data.sql",
    "0004_group_participant_count.sql",
    "0005_session_filter_indexes.sql",
    "0006_sessions_revision.sql",
    "0007_session_status_counts.sql",
    "0008_session_events.sql",
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
        SqliteConnectOptions::from_str(url).map_err(from_sqlx)?
    } else {
        SqliteConnectOptions::new().filename(url)
    };
    Ok(options
        .create_if_missing(true)
        .journal_mode(SqliteJournalMode::Wal)
        .synchronous(SqliteSynchronous::Normal)
        .foreign_keys(true))
}

impl SqliteDatabase {
    /// Opens (creating if missing) the database file. Does not migrate.
    /// A writer waits up to `busy_timeout` for the write lock, then fails
    /// with `StoreError::Busy`.
    pub async fn connect(url: &str, busy_timeout: Duration) -> Result<Self, StoreError> {
        let options = options(url)?.busy_timeout(busy_timeout);
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
            .await
            .map_err(from_sqlx)?;
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
        MIGRATIONS.migrator().await?.run(&self.pool).await.map_err(from_migrate)?;
        Ok(())
    }

    async fn cursor_key(&self) -> Result<[u8; 32], StoreError> {
        let mut fresh = [0u8; 32];
        rand::rngs::OsRng.fill_bytes(&mut fresh);
        sqlx::query("INSERT OR IGNORE INTO server_secrets (name, value) VALUES ('cursor_key', ?)")
            .bind(fresh.as_slice())
            .execute(&self.pool)
            .await
            .map_err(from_sqlx)?;
        let stored: Vec<u8> = sqlx::query_scalar("SELECT value FROM server_secrets WHERE name = 'cursor_key'")
            .fetch_one(&self.pool)
            .await
            .map_err(from_sqlx)?;
        stored.try_into().map_err(|_| StoreError::Corrupt("cursor_key is not 32 bytes".into()))
    }

    async fn ping(&self) -> bool {
        sqlx::query("SELECT 1").execute(&self.pool).await.is_ok()
    }

    fn pool_use(&self) -> wa_gateway_core::store::port::PoolUse {
        let idle = u32::try_from(self.pool.num_idle()).unwrap_or(u32::MAX);
        wa_gateway_core::store::port::PoolUse {
            busy: self.pool.size().saturating_sub(idle),
            max: self.pool.options().get_max_connections(),
        }
    }

    async fn close(&self) {
        self.readers.close();
        self.pool.close().await;
    }

    fn feed_leases(&self) -> Option<Arc<dyn wa_gateway_core::feed::leases::FeedLeases>> {
        // One server per SQLite file: it follows every gateway.
        None
    }

    fn hold_serving_lock(&self) -> Result<(), StoreError> {
        let file = &self.file;
        let mut serving = self.serving.lock().unwrap_or_else(|p| p.into_inner());
        if serving.is_none() {
            *serving = Some(lock_for_serving(file)?);
        }
        Ok(())
    }

    fn shared_job_board(&self, _lease: Duration) -> Option<Arc<dyn JobBoard>> {
        // One serve owns the file: jobs are kept in memory.
        None
    }
}
