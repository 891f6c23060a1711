//! What can go wrong in a store, in words that name no backend: each
//! backend reads its own errors into these (`sqlx_error.rs`,
//! `sqlite/errors.rs`, `postgres/errors.rs`).

use crate::error::{ErrorCode, ServiceError};

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("unsupported database url {0:?}: use a SQLite file path, sqlite://PATH or postgres://…")]
    UnsupportedUrl(String),
    #[error(
        "in-memory database {0:?} is not supported: its data would be lost at exit and unseen by the other \
         commands; give a SQLite file path"
    )]
    InMemory(String),
    #[error(
        "this wa-gateway was built without {backend} support: build it with `--features {feature}` \
         (a default build has it)"
    )]
    NotBuiltIn { backend: &'static str, feature: &'static str },
    #[error("cannot connect to {0}")]
    Connect(String),
    #[error(
        "database {0} is in use by another `wa-gateway serve`; run one serve per SQLite file, \
         or use PostgreSQL (--database-url postgres://…) for several replicas"
    )]
    InUse(String),
    /// Locked by another writer, a serialization failure or deadlock, or no
    /// pooled connection free in time: worth retrying soon.
    #[error("database error: {0}")]
    Busy(String),
    /// The database server cannot be reached, or is starting or stopping.
    #[error("database error: {0}")]
    Unavailable(String),
    /// The disk or the database is full.
    #[error("database error: {0}")]
    Full(String),
    /// Any other failure of the database or of a statement.
    #[error("database error: {0}")]
    Other(String),
    /// A feed write whose follower no longer holds the gateway's lease:
    /// another replica may follow it now, so nothing was written.
    #[error("this replica no longer follows gateway {0}'s session feed")]
    NotFollowing(String),
    /// A backfill's publish found its session removed: nothing was
    /// published.
    #[error("session {0} was removed")]
    SessionRemoved(String),
    #[error("the database is closed")]
    Closed,
    #[error("migration failed: {0}")]
    Migrate(String),
    #[error("stored data is inconsistent: {0}")]
    Corrupt(String),
}

impl StoreError {
    /// The disk or the database is full, as a backend read it: counted in
    /// `wa_gateway_store_full_total` (what `WaGatewayStoreFull` watches)
    /// whichever backend it was.
    pub fn full(message: String) -> Self {
        metrics::counter!("wa_gateway_store_full_total").increment(1);
        Self::Full(message)
    }

    /// The database is there but cannot serve now: locked by another writer,
    /// out of pooled connections, or briefly unreachable. Worth retrying.
    pub fn is_busy(&self) -> bool {
        matches!(self, Self::Busy(_) | Self::Unavailable(_) | Self::Closed)
    }
}

/// The reason of an answer refused because the store was busy.
pub const STORE_BUSY: &str = "STORE_BUSY";
/// The reason of an answer refused because the database has no space left.
pub const STORE_FULL: &str = "STORE_FULL";

impl ServiceError for StoreError {
    fn error_code(&self) -> ErrorCode {
        match self {
            _ if self.is_busy() => ErrorCode::Unavailable,
            // Reads go on; writes succeed again once an operator frees space.
            Self::Full(_) => ErrorCode::Unavailable,
            _ => ErrorCode::Internal,
        }
    }
    fn reason(&self) -> &'static str {
        match self {
            _ if self.is_busy() => STORE_BUSY,
            Self::Full(_) => STORE_FULL,
            _ => "STORE_ERROR",
        }
    }
    fn public_message(&self) -> String {
        match self {
            _ if self.is_busy() => "the database is busy; try again shortly".into(),
            Self::Full(_) => "the database has no space left; try again once an operator frees disk space".into(),
            _ => "internal error".into(),
        }
    }
}
