//! Cursor paging shared by every listing: page limits and an opaque cursor
//! that only this server can mint.
//!
//! A cursor is `base64url(version | last_key | tag)` where `tag` is an
//! HMAC-SHA256 (truncated to 128 bits) over the version, the query's scope
//! (which listing and which filters) and the last key. A cursor from another
//! server, another listing, other filters, or edited by hand fails the check
//! and is INVALID_ARGUMENT, never a 500.

use base64::{Engine, engine::general_purpose::URL_SAFE_NO_PAD};
use hmac::{Hmac, Mac};
use sha2::Sha256;

use crate::error::{ErrorCode, ServiceError};

pub const DEFAULT_LIMIT: u32 = 50;
pub const MAX_LIMIT: u32 = 500;
const CURSOR_VERSION: u8 = 1;
const TAG_LEN: usize = 16;
/// Longer than any cursor we mint (keys are at most a few hundred bytes).
const MAX_CURSOR_CHARS: usize = 1024;

/// One page of a listing. `next_cursor` is `None` on the last page.
#[derive(Debug, Clone)]
pub struct Page<T> {
    pub items: Vec<T>,
    pub next_cursor: Option<String>,
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum PagingError {
    #[error("limit must be between 1 and {MAX_LIMIT}, got {0}")]
    InvalidLimit(i64),
    #[error("cursor was not issued by this server for this query")]
    InvalidCursor,
}

impl ServiceError for PagingError {
    fn error_code(&self) -> ErrorCode {
        ErrorCode::InvalidArgument
    }
    fn reason(&self) -> &'static str {
        match self {
            Self::InvalidLimit(_) => "INVALID_LIMIT",
            Self::InvalidCursor => "INVALID_CURSOR",
        }
    }
    fn details(&self) -> Vec<(&'static str, String)> {
        match self {
            Self::InvalidLimit(_) => vec![("field", "limit".into())],
            Self::InvalidCursor => vec![("field", "cursor".into())],
        }
    }
}

/// A validated page size: absent means the default, above the maximum is
/// clamped, zero or negative is rejected.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PageLimit(u32);

impl PageLimit {
    pub fn new(requested: Option<i64>) -> Result<Self, PagingError> {
        match requested {
            None => Ok(Self(DEFAULT_LIMIT)),
            Some(n) if n < 1 => Err(PagingError::InvalidLimit(n)),
            Some(n) => Ok(Self(u32::try_from(n).unwrap_or(MAX_LIMIT).min(MAX_LIMIT))),
        }
    }

    pub fn get(self) -> u32 {
        self.0
    }
}

/// Where a listing resumes: after `last_key`, or from the start.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PageRequest {
    pub limit: PageLimit,
    pub after: Option<String>,
}

/// Mints and verifies cursors with a server-side key that survives restarts.
#[derive(Clone)]
pub struct CursorCodec {
    key: [u8; 32],
}

impl std::fmt::Debug for CursorCodec {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("CursorCodec(..)")
    }
}

impl CursorCodec {
    pub fn new(key: [u8; 32]) -> Self {
        Self { key }
    }

    fn tag(&self, scope: &str, last_key: &[u8]) -> Hmac<Sha256> {
        let mut mac = Hmac::<Sha256>::new_from_slice(&self.key).expect("HMAC takes keys of any length");
        mac.update(&[CURSOR_VERSION]);
        mac.update(&(scope.len() as u64).to_be_bytes());
        mac.update(scope.as_bytes());
        mac.update(last_key);
        mac
    }

    pub fn encode(&self, scope: &str, last_key: &str) -> String {
        let tag = self.tag(scope, last_key.as_bytes()).finalize().into_bytes();
        let mut raw = Vec::with_capacity(1 + last_key.len() + TAG_LEN);
        raw.push(CURSOR_VERSION);
        raw.extend_from_slice(last_key.as_bytes());
        raw.extend_from_slice(&tag[..TAG_LEN]);
        URL_SAFE_NO_PAD.encode(raw)
    }

    /// The last key of the page the cursor was minted for, if this server
    /// minted it for this scope.
    pub fn decode(&self, scope: &str, cursor: &str) -> Result<String, PagingError> {
        if cursor.len() > MAX_CURSOR_CHARS {
            return Err(PagingError::InvalidCursor);
        }
        let raw = URL_SAFE_NO_PAD.decode(cursor).map_err(|_| PagingError::InvalidCursor)?;
        if raw.len() < 1 + TAG_LEN || raw[0] != CURSOR_VERSION {
            return Err(PagingError::InvalidCursor);
        }
        let (body, tag) = raw.split_at(raw.len() - TAG_LEN);
        let last_key = &body[1..];
        // verify_truncated_left compares in constant time.
        self.tag(scope, last_key).verify_truncated_left(tag).map_err(|_| PagingError::InvalidCursor)?;
        String::from_utf8(last_key.to_vec()).map_err(|_| PagingError::InvalidCursor)
    }

    /// Validates the raw request fields of a listing.
    pub fn page_request(
        &self,
        scope: &str,
        limit: Option<i64>,
        cursor: Option<&str>,
    ) -> Result<PageRequest, PagingError> {
        let limit = PageLimit::new(limit)?;
        let after = match cursor {
            None | Some("") => None,
            Some(c) => Some(self.decode(scope, c)?),
        };
        Ok(PageRequest { limit, after })
    }

    /// Cuts a `limit + 1` fetch into a page, minting the next cursor from the
    /// last item kept when more rows exist.
    pub fn page<T, K: AsRef<str>>(
        &self,
        scope: &str,
        limit: PageLimit,
        mut rows: Vec<T>,
        key_of: impl Fn(&T) -> K,
    ) -> Page<T> {
        let limit = limit.get() as usize;
        let next_cursor = if rows.len() > limit {
            rows.truncate(limit);
            rows.last().map(|last| self.encode(scope, key_of(last).as_ref()))
        } else {
            None
        };
        Page { items: rows, next_cursor }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn limits() {
        assert_eq!(PageLimit::new(None).unwrap().get(), 50);
        assert_eq!(PageLimit::new(Some(501)).unwrap().get(), 500);
        assert_eq!(PageLimit::new(Some(i64::MAX)).unwrap().get(), 500);
        assert_eq!(PageLimit::new(Some(1)).unwrap().get(), 1);
        assert_eq!(PageLimit::new(Some(0)), Err(PagingError::InvalidLimit(0)));
        assert_eq!(PageLimit::new(Some(-3)), Err(PagingError::InvalidLimit(-3)));
    }

    #[test]
    fn cursor_round_trip_and_binding() {
        let codec = CursorCodec::new([7; 32]);
        let c = codec.encode("sessions|org=a", "01ABC");
        assert_eq!(codec.decode("sessions|org=a", &c).unwrap(), "01ABC");
        assert_eq!(codec.decode("sessions|org=b", &c), Err(PagingError::InvalidCursor));
        let other = CursorCodec::new([8; 32]);
        assert_eq!(other.decode("sessions|org=a", &c), Err(PagingError::InvalidCursor));
        for forged in ["", "AQ", "not base64!", &"A".repeat(5000)] {
            assert_eq!(codec.decode("s", forged), Err(PagingError::InvalidCursor));
        }
        let mut raw = URL_SAFE_NO_PAD.decode(&c).unwrap();
        raw[2] ^= 1;
        assert_eq!(codec.decode("sessions|org=a", &URL_SAFE_NO_PAD.encode(raw)), Err(PagingError::InvalidCursor));
    }
}
