//! Persistence. The store is the only module that speaks SQL; it knows the
//! domain types and nothing of tonic, prost or axum.
//!
//! Today's backend is SQLite (WAL). `Store` is the boundary a Postgres backend
//! would sit behind: callers see only its methods and [`StoreError`].

mod api_keys;
mod backfill_data;
mod sessions;

pub use api_keys::ApiKeyRow;

use std::str::FromStr;
use std::time::Duration;

use rand::RngCore;
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteSynchronous};

use crate::error::{ErrorCode, ServiceError};

static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations");

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("unsupported database url {0:?}: only SQLite (a file path or sqlite://PATH) is built in")]
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

/// A handle to the database; cheap to clone.
#[derive(Clone, Debug)]
pub struct Store {
    pool: SqlitePool,
}

fn sqlite_options(url: &str) -> Result<SqliteConnectOptions, StoreError> {
    if url.contains("://") && !url.starts_with("sqlite:") {
        return Err(StoreError::UnsupportedUrl(url.to_owned()));
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

impl Store {
    /// Opens (creating if missing) the database. Does not migrate.
    pub async fn connect(url: &str) -> Result<Self, StoreError> {
        let pool = SqlitePoolOptions::new()
            .max_connections(8)
            .acquire_timeout(Duration::from_secs(10))
            .connect_with(sqlite_options(url)?)
            .await?;
        Ok(Self { pool })
    }

    /// Opens and applies every pending migration.
    pub async fn open(url: &str) -> Result<Self, StoreError> {
        let store = Self::connect(url).await?;
        store.migrate().await?;
        Ok(store)
    }

    pub async fn migrate(&self) -> Result<(), StoreError> {
        MIGRATOR.run(&self.pool).await?;
        Ok(())
    }

    /// The server's cursor-signing key, created on first use. It lives in the
    /// database so cursors stay valid across restarts and replicas.
    pub async fn cursor_key(&self) -> Result<[u8; 32], StoreError> {
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

    /// Whether the database answers; for readiness probes.
    pub async fn ping(&self) -> bool {
        sqlx::query("SELECT 1").execute(&self.pool).await.is_ok()
    }

    pub async fn close(&self) {
        self.pool.close().await;
    }
}
