#![no_main]
//! The REST layer's path and custom-verb parser and its query parsing: the
//! bytes are a raw path after `/api/v1/admin/sessions/`, then `?`, then a query.
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    let (tail, query) = text.split_once('?').unwrap_or((&text, ""));
    gateway_rest::fuzz_request(tail, query);
});
