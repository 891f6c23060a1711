//! Entry points of the cargo-fuzz targets in `fuzz/`, built only with
//! `--cfg fuzzing`. Each feeds untrusted bytes to a parser that faces the
//! network or a file; none may panic, whatever the bytes.

use crate::paging::CursorCodec;

/// Credential headers and the token inside them (before any signature check).
pub fn credentials(data: &[u8]) {
    let text = String::from_utf8_lossy(data);
    let (authorization, api_key) = text.split_once('\n').unwrap_or((&text, ""));
    crate::auth::fuzz_credentials(authorization, api_key);
}

/// A listing cursor, as a client may send back anything.
pub fn cursor(data: &[u8]) {
    let codec = CursorCodec::new([7; 32]);
    let text = String::from_utf8_lossy(data);
    let _ = codec.decode("sessions|org=|status=|gateway=", &text);
    let _ = codec.page_request("contacts|s1", Some(i64::from(data.first().copied().unwrap_or(0))), Some(&text));
}

/// One line of a `sessions import`.
pub fn import_line(data: &[u8]) {
    let _ = crate::sessions::parse_line(data, 0);
}

/// One message of a session host's stream.
pub fn host_message(data: &[u8]) {
    crate::hosts::fuzz_message(data);
}
