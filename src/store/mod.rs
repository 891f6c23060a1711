//! The store the binary opens: the core's port (`wa_gateway_core::store`)
//! over one of the backend crates, `wa-gateway-sqlite` (the embedded
//! single-process default) or `wa-gateway-postgres` (shared by replicas;
//! the `postgres` feature). Callers hold a [`Store`] and never learn which
//! backend is behind it; this module picks the backend from the database
//! URL and opens it through the core's one instrumentation wrapper.

pub use wa_gateway_core::store::{
    ApiKeyRow, ApiKeyStore, Database, DirectoryStore, Instrumented, Replaced, STORE_BUSY, SessionImport, SessionStore,
    Slice, Staging, Store, StoreError, error, port,
};
#[cfg(feature = "postgres")]
pub use wa_gateway_postgres::PgDatabase;
pub use wa_gateway_sql::redact_url;
pub use wa_gateway_sqlite::SqliteDatabase;

use std::sync::Arc;

/// How the store is opened, beyond its URL.
#[derive(Debug, Clone, Copy)]
pub struct StoreOptions {
    /// SQLite: how long a writer waits for the write lock before it fails
    /// with a busy error (PostgreSQL writers wait on row locks instead).
    pub busy_timeout: std::time::Duration,
    /// PostgreSQL: connections of this process.
    pub pool_size: u32,
    /// PostgreSQL: how long a call waits for a free connection (then 503).
    pub acquire_timeout: std::time::Duration,
    /// PostgreSQL: how long a session may sit idle inside a transaction
    /// before the server ends it and releases its locks (`serve` only).
    pub idle_in_transaction: Option<std::time::Duration>,
    /// PostgreSQL: the longest one statement may run (`serve` only; the
    /// statements over a whole session's stored data are exempt).
    pub statement_timeout: Option<std::time::Duration>,
}

impl Default for StoreOptions {
    fn default() -> Self {
        Self {
            busy_timeout: std::time::Duration::from_secs(5),
            pool_size: 16,
            acquire_timeout: std::time::Duration::from_secs(10),
            idle_in_transaction: None,
            statement_timeout: None,
        }
    }
}

/// Opens the database at `url`: `postgres://…` or `postgresql://…` for
/// PostgreSQL, otherwise a SQLite file (created if missing). Does not migrate.
pub async fn connect(url: &str) -> Result<Store, StoreError> {
    connect_with(url, StoreOptions::default()).await
}

/// [`connect`] with `options`.
pub async fn connect_with(url: &str, options: StoreOptions) -> Result<Store, StoreError> {
    if url.starts_with("postgres://") || url.starts_with("postgresql://") {
        #[cfg(feature = "postgres")]
        {
            let pg = wa_gateway_postgres::PgOptions {
                max_connections: options.pool_size,
                acquire_timeout: options.acquire_timeout,
                idle_in_transaction: options.idle_in_transaction,
                statement_timeout: options.statement_timeout,
            };
            return Ok(Store::new(Arc::new(Instrumented::new(PgDatabase::connect(url, pg).await?, "postgresql"))));
        }
        #[cfg(not(feature = "postgres"))]
        return Err(StoreError::NotBuiltIn { backend: "PostgreSQL", feature: "postgres" });
    }
    let sqlite = SqliteDatabase::connect(url, options.busy_timeout).await?;
    Ok(Store::new(Arc::new(Instrumented::new(sqlite, "sqlite"))))
}

/// Opens and applies every pending migration.
pub async fn open(url: &str) -> Result<Store, StoreError> {
    open_with(url, StoreOptions::default()).await
}

/// [`open`] with `options`.
pub async fn open_with(url: &str, options: StoreOptions) -> Result<Store, StoreError> {
    let store = connect_with(url, options).await?;
    store.migrate().await?;
    Ok(store)
}
