//! PostgreSQL's SQLSTATE codes, read as the store's errors.

use wa_gateway_core::store::error::StoreError;

/// An sqlx error of this backend's pools and connections.
pub(crate) fn from_sqlx(error: sqlx::Error) -> StoreError {
    wa_gateway_sql::from_sqlx(error, from_sqlstate)
}

/// The store's reading of a SQLSTATE.
pub(crate) fn from_sqlstate(code: &str, message: String) -> StoreError {
    match code {
        // serialization_failure, deadlock_detected, lock_not_available,
        // too_many_connections, query_canceled (the statement timeout)
        "40001" | "40P01" | "55P03" | "53300" | "57014" => StoreError::Busy(message),
        // admin_shutdown, cannot_connect_now (starting up or shutting down)
        "57P01" | "57P03" => StoreError::Unavailable(message),
        // disk_full
        "53100" => StoreError::full(message),
        // data_corrupted, index_corrupted
        "XX001" | "XX002" => StoreError::Corrupt(message),
        _ => StoreError::Other(message),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sqlstates_read_as_the_store_errors_they_are() {
        let read = |code| from_sqlstate(code, String::new());
        for code in ["40001", "40P01", "55P03", "53300"] {
            assert!(matches!(read(code), StoreError::Busy(_)), "{code}");
        }
        for code in ["57P01", "57P03"] {
            assert!(matches!(read(code), StoreError::Unavailable(_)) && read(code).is_busy(), "{code}");
        }
        assert!(matches!(read("53100"), StoreError::Full(_)) && !read("53100").is_busy());
        assert!(matches!(read("XX001"), StoreError::Corrupt(_)));
        assert!(matches!(read("23505"), StoreError::Other(_)) && !read("23505").is_busy(), "a unique violation");
    }
}
