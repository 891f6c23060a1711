//! The one place an sqlx error becomes a [`StoreError`]. The store's error
//! belongs to the core, so this is a function each call site names
//! (`map_err(from_sqlx)`, through its backend's wrapper) rather than a
//! `From` impl, which neither this crate nor a backend may write.

use sqlx::migrate::MigrateError;

use wa_gateway_core::store::error::StoreError;

/// The store's reading of an sqlx error. The pool's and the connection's
/// failures are read here; a database's own answer by `answer`, its
/// backend's table of codes, given the code and the message.
pub fn from_sqlx(error: sqlx::Error, answer: fn(&str, String) -> StoreError) -> StoreError {
    let message = error.to_string();
    match &error {
        sqlx::Error::PoolTimedOut => StoreError::Busy(message),
        sqlx::Error::Io(_) | sqlx::Error::PoolClosed => StoreError::Unavailable(message),
        sqlx::Error::Database(database) => answer(database.code().as_deref().unwrap_or(""), message),
        _ => StoreError::Other(message),
    }
}

/// A migration that could not be applied.
pub fn from_migrate(error: MigrateError) -> StoreError {
    StoreError::Migrate(error.to_string())
}
