//! Domain error -> `tonic::Status`, in one place. The gRPC code follows from
//! the error's [`ErrorCode`]; the reason and details travel as a
//! `google.rpc.ErrorInfo` in the status details.

use std::collections::HashMap;

use tonic::{Code, Status};
use tonic_types::{ErrorDetails, StatusExt};

use crate::error::{ErrorCode, ServiceError};

/// ErrorInfo.domain of every error this service raises.
pub const ERROR_DOMAIN: &str = "wa-gateway";

pub fn grpc_code(code: ErrorCode) -> Code {
    match code {
        ErrorCode::InvalidArgument => Code::InvalidArgument,
        ErrorCode::Unauthenticated => Code::Unauthenticated,
        ErrorCode::PermissionDenied => Code::PermissionDenied,
        ErrorCode::NotFound => Code::NotFound,
        ErrorCode::Conflict => Code::AlreadyExists,
        ErrorCode::Aborted => Code::Aborted,
        ErrorCode::Gone => Code::OutOfRange,
        ErrorCode::RateLimited => Code::ResourceExhausted,
        ErrorCode::Internal => Code::Internal,
        ErrorCode::NotImplemented => Code::Unimplemented,
        ErrorCode::Unavailable => Code::Unavailable,
        ErrorCode::DeadlineExceeded => Code::DeadlineExceeded,
    }
}

pub fn to_status<E: ServiceError>(error: &E) -> Status {
    let code = error.error_code();
    if error.reason() == crate::store::STORE_BUSY {
        metrics::counter!("wa_gateway_store_busy_total", "during" => "request").increment(1);
    }
    if code == ErrorCode::Internal {
        tracing::error!(%error, reason = error.reason(), "internal error");
    }
    let metadata: HashMap<String, String> = error.details().into_iter().map(|(k, v)| (k.to_owned(), v)).collect();
    let mut details = ErrorDetails::with_error_info(error.reason(), ERROR_DOMAIN, metadata);
    if let Some(wait) = error.retry_after() {
        details.set_retry_info(Some(wait));
    }
    Status::with_error_details(grpc_code(code), error.public_message(), details)
}

/// A request field that failed validation at the boundary.
#[derive(Debug, thiserror::Error)]
#[error("{field}: {message}")]
pub struct InvalidField {
    pub field: &'static str,
    pub message: String,
}

impl ServiceError for InvalidField {
    fn error_code(&self) -> ErrorCode {
        ErrorCode::InvalidArgument
    }
    fn reason(&self) -> &'static str {
        "INVALID_FIELD"
    }
    fn details(&self) -> Vec<(&'static str, String)> {
        vec![("field", self.field.to_owned())]
    }
}

impl From<InvalidField> for Status {
    fn from(e: InvalidField) -> Self {
        to_status(&e)
    }
}
