//! JSON response bodies, serialized into a per-thread buffer that keeps its
//! capacity, then copied once into an exact-size body. axum's `Json` starts
//! each body at 128 bytes and grows it by copying: eight reallocations for a
//! page of 50 sessions, on every request.

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
        respond(|buffer| {
            self.0.write_json(buffer);
            Ok(())
        })
    }
}

fn respond(write: impl FnOnce(&mut Vec<u8>) -> Result<(), serde_json::Error>) -> Response {
    let body = BUFFER.with_borrow_mut(|buffer| {
        buffer.clear();
        let body = write(&mut *buffer).map(|()| Bytes::copy_from_slice(buffer));
        if buffer.capacity() > KEEP_AT_MOST {
            *buffer = Vec::with_capacity(4096);
        }
        body
    });
    match body {
        Ok(body) => ([(http::header::CONTENT_TYPE, "application/json")], body).into_response(),
        // Our DTOs always serialize (string keys, finite numbers); this
        // answers what axum's `Json` would, should one ever not.
        Err(error) => (http::StatusCode::INTERNAL_SERVER_ERROR, error.to_string()).into_response(),
    }
}
