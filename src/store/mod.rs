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

/// Opens the database at `url`: `postgres://…` or `postgresql://…` for
/// PostgreSQL, otherwise a SQLite file (created if missing). Does not migrate.
pub async fn connect(url: &str) -> Result<Store, StoreError> {
    if url.starts_with("postgres://") || url.starts_with("postgresql://") {
        #[cfg(feature = "postgres")]
        return Ok(Store::new(Arc::new(Instrumented::new(PgDatabase::connect(url).await?, "postgresql"))));
        #[cfg(not(feature = "postgres"))]
        return Err(StoreError::NotBuiltIn { backend: "PostgreSQL", feature: "postgres" });
    }
    Ok(Store::new(Arc::new(Instrumented::new(SqliteDatabase::connect(url).await?, "sqlite"))))
}

/// Opens and applies every pending migration.
pub async fn open(url: &str) -> Result<Store, StoreError> {
    let store = connect(url).await?;
    store.migrate().await?;
    Ok(store)
}
