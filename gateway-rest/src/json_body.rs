//! JSON response bodies, serialized into a per-thread buffer that keeps its
//! capacity, then copied once into an exact-size body, so a large page is
//! not grown by reallocation on every request (as axum's `Json` does).

use std::cell::RefCell;

use axum::body::Bytes;
use axum::response::{IntoResponse, Response};
use serde::Serialize;

use crate::json_write::WriteJson;

/// Buffers that grew past this (a very large page) are not kept.
const KEEP_AT_MOST: usize = 1024 * 1024;

thread_local! {
    static BUFFER: RefCell<Vec<u8>> = RefCell::new(Vec::with_capacity(4096));
}

/// `T` as an `application/json` response, through serde.
pub struct JsonBody<T>(pub T);

impl<T: Serialize> IntoResponse for JsonBody<T> {
    fn into_response(self) -> Response {
        respond(|buffer| serde_json::to_writer(buffer, &self.0))
    }
}

/// `T` as an `application/json` response, written by hand
/// ([`crate::json_write`]): the shapes every poll and listing returns.
pub struct WrittenJson<T>(pub T);

impl<T: WriteJson> IntoResponse for WrittenJson<T> {
    fn into_response(self) -> Response {
        json_response(written_bytes(&self.0))
    }
}

/// `value`'s hand-written JSON as an exact-size body.
pub(crate) fn written_bytes<T: WriteJson>(value: &T) -> Bytes {
    with_buffer(|buffer| {
        value.write_json(buffer);
        Bytes::copy_from_slice(buffer)
    })
}

fn respond(write: impl FnOnce(&mut Vec<u8>) -> Result<(), serde_json::Error>) -> Response {
    match with_buffer(|buffer| write(buffer).map(|()| Bytes::copy_from_slice(buffer))) {
        Ok(body) => json_response(body),
        // Our DTOs always serialize (string keys, finite numbers); this
        // answers what axum's `Json` would, should one ever not.
        Err(error) => (http::StatusCode::INTERNAL_SERVER_ERROR, error.to_string()).into_response(),
    }
}

pub(crate) fn json_response(body: Bytes) -> Response {
    const JSON: http::HeaderValue = http::HeaderValue::from_static("application/json");
    ([(http::header::CONTENT_TYPE, JSON)], body).into_response()
}

/// Runs `write` on this thread's cleared buffer.
fn with_buffer<R>(write: impl FnOnce(&mut Vec<u8>) -> R) -> R {
    BUFFER.with_borrow_mut(|buffer| {
        buffer.clear();
        let written = write(&mut *buffer);
        if buffer.capacity() > KEEP_AT_MOST {
            *buffer = Vec::with_capacity(4096);
        }
        written
    })
}
