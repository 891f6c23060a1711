//! The REST error envelope, and the one function that turns a gRPC status
//! into it: `{"error":{"code","message","details"}}`.

use axum::response::{IntoResponse, Response};
use http::StatusCode;
use serde_json::{Map, Value, json};
use tonic::Code;
use tonic_types::StatusExt;

#[derive(Debug, Clone)]
pub struct ApiError {
    pub status: StatusCode,
    pub code: &'static str,
    pub message: String,
    pub details: Map<String, Value>,
    /// Decided here (routing, parsing), not by an RPC.
    local: bool,
}

/// Marks a response whose refusal the REST layer decided itself (a bad
/// path, method, query or body), so credentials can be checked before it is
/// sent: see `auth_first`.
#[derive(Debug, Clone, Copy)]
pub struct LocalRefusal;

impl ApiError {
    pub fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        Self { status, code, message: message.into(), details: Map::new(), local: true }
    }

    pub fn invalid_argument(field: &str, message: impl Into<String>) -> Self {
        let mut e = Self::new(StatusCode::BAD_REQUEST, "invalid_argument", message);
        e.details.insert("field".into(), json!(field));
        e
    }

    pub fn not_found(message: impl Into<String>) -> Self {
        Self::new(StatusCode::NOT_FOUND, "not_found", message)
    }

    pub fn method_not_allowed(allow: &'static str) -> Self {
        let mut e = Self::new(StatusCode::METHOD_NOT_ALLOWED, "method_not_allowed", "method not allowed");
        e.details.insert("allow".into(), json!(allow));
        e
    }

    pub fn payload_too_large(limit: usize) -> Self {
        let mut e = Self::new(StatusCode::PAYLOAD_TOO_LARGE, "payload_too_large", "request body is too large");
        e.details.insert("limitBytes".into(), json!(limit));
        e
    }
}

/// The CONTRACT §1 table, read from the gRPC side.
pub fn http_status(code: Code) -> (StatusCode, &'static str) {
    match code {
        Code::InvalidArgument | Code::FailedPrecondition => (StatusCode::BAD_REQUEST, "invalid_argument"),
        Code::OutOfRange => (StatusCode::GONE, "gone"),
        Code::Unauthenticated => (StatusCode::UNAUTHORIZED, "unauthorized"),
        Code::PermissionDenied => (StatusCode::FORBIDDEN, "forbidden"),
        Code::NotFound => (StatusCode::NOT_FOUND, "not_found"),
        Code::AlreadyExists | Code::Aborted => (StatusCode::CONFLICT, "conflict"),
        Code::ResourceExhausted => (StatusCode::TOO_MANY_REQUESTS, "rate_limited"),
        Code::Unimplemented => (StatusCode::NOT_IMPLEMENTED, "not_implemented"),
        Code::Unavailable => (StatusCode::SERVICE_UNAVAILABLE, "unavailable"),
        Code::DeadlineExceeded => (StatusCode::GATEWAY_TIMEOUT, "deadline_exceeded"),
        Code::Ok | Code::Cancelled | Code::Unknown | Code::Internal | Code::DataLoss => {
            (StatusCode::INTERNAL_SERVER_ERROR, "internal")
        }
    }
}

/// Any RPC status -> the envelope. ErrorInfo becomes `details` (its reason
/// as `reason`, its metadata as the other keys).
pub fn from_status(status: &tonic::Status) -> ApiError {
    let (http, code) = http_status(status.code());
    let mut error = ApiError::new(http, code, status.message());
    error.local = false;
    if status.code() == Code::Unknown && status.message().is_empty() {
        error.message = "upstream error".into();
    }
    if let Some(delay) = status.get_details_retry_info().and_then(|r| r.retry_delay) {
        error.details.insert("retryAfterSeconds".into(), json!(delay.as_secs().max(1)));
    }
    if let Some(info) = status.get_details_error_info() {
        error.details.insert("reason".into(), json!(info.reason));
        for (k, v) in info.metadata {
            error.details.insert(k, json!(v));
        }
    }
    error
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = json!({"error": {"code": self.code, "message": self.message, "details": self.details}});
        let mut response = (self.status, crate::json_body::JsonBody(body)).into_response();
        if self.status == StatusCode::UNAUTHORIZED {
            response.headers_mut().insert(http::header::WWW_AUTHENTICATE, http::HeaderValue::from_static("Bearer"));
        }
        if let Some(Value::String(allow)) = self.details.get("allow") {
            if let Ok(v) = http::HeaderValue::from_str(allow) {
                response.headers_mut().insert(http::header::ALLOW, v);
            }
        }
        if let Some(seconds) = self.details.get("retryAfterSeconds").and_then(Value::as_u64) {
            response.headers_mut().insert(http::header::RETRY_AFTER, http::HeaderValue::from(seconds));
        }
        if self.local {
            response.extensions_mut().insert(LocalRefusal);
        }
        response
    }
}
