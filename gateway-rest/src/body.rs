//! Request bodies: read within a size cap, and the empty-or-`{}` body of
//! the custom methods that take none.

use axum::body::{Body, Bytes};
use futures_util::StreamExt;
use serde_json::Value;

use crate::error::ApiError;

/// The StartBackfill body is empty or `{}`; anything near this size is a mistake.
const MAX_BODY_BYTES: usize = 16 * 1024;
/// How much of an oversized body is read and discarded before answering 413.
const DRAIN_BYTES: usize = 1024 * 1024;

/// Reads at most [`MAX_BODY_BYTES`]. A larger body is still drained up to
/// [`DRAIN_BYTES`] so the client gets its 413 instead of a connection reset
/// mid-upload; beyond that the connection is dropped.
pub(crate) async fn read_body(body: Body) -> Result<Bytes, ApiError> {
    let mut stream = body.into_data_stream();
    let mut kept = Vec::new();
    let mut seen = 0usize;
    while let Some(chunk) = stream.next().await {
        let Ok(chunk) = chunk else {
            return Err(ApiError::invalid_argument("body", "the request body could not be read"));
        };
        seen += chunk.len();
        if seen <= MAX_BODY_BYTES {
            kept.extend_from_slice(&chunk);
        } else if seen > DRAIN_BYTES {
            break;
        }
    }
    if seen > MAX_BODY_BYTES {
        return Err(ApiError::payload_too_large(MAX_BODY_BYTES));
    }
    Ok(Bytes::from(kept))
}

/// The body must be empty or `{}`.
/// No body at all, or the JSON object `{}`. Whitespace alone is not JSON,
/// so it is refused like any other malformed body.
pub(crate) fn check_empty_body(body: &Bytes) -> Result<(), ApiError> {
    if body.is_empty() {
        return Ok(());
    }
    match serde_json::from_slice::<Value>(body) {
        Ok(Value::Object(fields)) if fields.is_empty() => Ok(()),
        Ok(Value::Object(fields)) => Err(ApiError::invalid_argument(
            "body",
            format!(
                "unexpected field {:?}: the body must be empty or {{}}",
                fields.keys().next().map(String::as_str).unwrap_or("")
            ),
        )),
        Ok(_) => Err(ApiError::invalid_argument("body", "the body must be empty or a JSON object {}")),
        Err(e) => Err(ApiError::invalid_argument("body", format!("malformed JSON: {e}"))),
    }
}
