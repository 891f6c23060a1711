//! SQLite's result codes, read as the store's errors.

use wa_gateway_core::store::error::StoreError;

/// The store's reading of a SQLite result code (extended or primary; the
/// primary code is its low byte).
pub(crate) fn from_code(code: i32, message: String) -> StoreError {
    match code & 0xff {
        // SQLITE_BUSY, SQLITE_LOCKED
        5 | 6 => StoreError::Busy(format!(
            "{message}: another writer held SQLite's write lock longer than --busy-timeout-secs"
        )),
        // SQLITE_FULL
        13 => StoreError::full(message),
        // SQLITE_CORRUPT, SQLITE_NOTADB
        11 | 26 => StoreError::Corrupt(message),
        _ => StoreError::Other(message),
    }
}

/// An sqlx error of this backend's pool.
pub(crate) fn from_sqlx(error: sqlx::Error) -> StoreError {
    wa_gateway_sql::from_sqlx(error, |code, message| from_code(code.parse().unwrap_or(0), message))
}

/// An error of the reader connections (`readers.rs`).
pub(crate) fn from_rusqlite(error: rusqlite::Error) -> StoreError {
    let message = error.to_string();
    match &error {
        rusqlite::Error::SqliteFailure(failure, _) => from_code(failure.extended_code, message),
        _ => StoreError::Other(message),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn result_codes_read_as_the_store_errors_they_are() {
        let read = |code| from_code(code, String::new());
        // SQLITE_BUSY_SNAPSHOT (517) and SQLITE_LOCKED_SHAREDCACHE (262) are extended codes.
        for code in [5, 6, 517, 262] {
            assert!(matches!(read(code), StoreError::Busy(_)) && read(code).is_busy(), "{code}");
        }
        assert!(matches!(read(13), StoreError::Full(_)) && !read(13).is_busy());
        // A full disk answers 503 STORE_FULL, never a 500: reads go on, and
        // writes succeed again once space returns.
        use wa_gateway_core::error::{ErrorCode, ServiceError};
        assert_eq!((read(13).error_code(), read(13).reason()), (ErrorCode::Unavailable, "STORE_FULL"));
        assert!(!read(13).public_message().contains("code"), "the database's own words stay in the log");
        assert!(matches!(read(11), StoreError::Corrupt(_)) && matches!(read(26), StoreError::Corrupt(_)));
        assert!(matches!(read(19), StoreError::Other(_)) && !read(19).is_busy(), "a constraint is not busy");
    }
}
