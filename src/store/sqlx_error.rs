//! The one place an sqlx error becomes a [`StoreError`]: a database's own
//! answer is read by its backend's table of codes, the pool's and the
//! connection's failures here.

use sqlx::migrate::MigrateError;

use crate::store::error::StoreError;

impl From<sqlx::Error> for StoreError {
    fn from(error: sqlx::Error) -> Self {
        let message = error.to_string();
        match &error {
            sqlx::Error::PoolTimedOut => Self::Busy(message),
            sqlx::Error::Io(_) | sqlx::Error::PoolClosed => Self::Unavailable(message),
            sqlx::Error::Database(answer) => {
                let code = answer.code();
                let code = code.as_deref().unwrap_or("");
                if answer.try_downcast_ref::<sqlx::sqlite::SqliteError>().is_some() {
                    return crate::store::sqlite::errors::from_code(code.parse().unwrap_or(0), message);
                }
                #[cfg(feature = "postgres")]
                return crate::store::postgres::errors::from_sqlstate(code, message);
                #[cfg(not(feature = "postgres"))]
                Self::Other(message)
            }
            _ => Self::Other(message),
        }
    }
}

impl From<MigrateError> for StoreError {
    fn from(error: MigrateError) -> Self {
        Self::Migrate(error.to_string())
    }
}
