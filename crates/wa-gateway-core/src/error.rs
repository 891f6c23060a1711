//! The error-code contract: every domain error maps to exactly one
//! [`ErrorCode`], which fixes its gRPC code (here, in `grpc::status`) and its
//! HTTP status (in gateway-rest, from the gRPC code). Domain modules implement
//! [`ServiceError`] for their one `thiserror` enum and never pick a status
//! themselves.

/// The closed set of outcomes a caller can observe (CONTRACT §1 table).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ErrorCode {
    InvalidArgument,
    Unauthenticated,
    PermissionDenied,
    NotFound,
    /// The resource already exists (a job already running): ALREADY_EXISTS.
    Conflict,
    /// The request conflicts with the current state (nothing to cancel, a
    /// cursor outlived its data): ABORTED. Also 409 over REST.
    Aborted,
    /// What the request names is no longer kept (a change stream's cursor
    /// older than retention): OUT_OF_RANGE, 410 over REST.
    Gone,
    RateLimited,
    Internal,
    NotImplemented,
    Unavailable,
    DeadlineExceeded,
}

/// Implemented by every domain error enum.
pub trait ServiceError: std::error::Error {
    fn error_code(&self) -> ErrorCode;

    /// Machine-readable reason (UPPER_SNAKE), carried as ErrorInfo.reason.
    fn reason(&self) -> &'static str;

    /// Machine-readable context, carried as ErrorInfo.metadata and rendered as
    /// the REST envelope's `details`.
    fn details(&self) -> Vec<(&'static str, String)> {
        Vec::new()
    }

    /// How long the caller should wait before trying again (rate limits),
    /// carried as RetryInfo and rendered as REST's `Retry-After`.
    fn retry_after(&self) -> Option<std::time::Duration> {
        None
    }

    /// The message shown to callers. Internal errors hide their cause, which is
    /// logged instead.
    fn public_message(&self) -> String {
        match self.error_code() {
            ErrorCode::Internal => "internal error".to_owned(),
            _ => self.to_string(),
        }
    }
}
