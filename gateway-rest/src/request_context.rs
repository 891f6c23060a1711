//! What every REST request carries into its RPC, set in one pass:
//!
//! - `x-request-id`: taken from the request when it is sane, generated
//!   otherwise; echoed on the response and forwarded (for logs and audit);
//! - `x-forwarded-for`: replaced by the one client address the request
//!   comes from (see [`TrustedProxies`]); the RPC carries it to the
//!   credential check, which keeps per-client budgets by it.

use std::sync::Arc;
use std::task::{Context, Poll};

use axum::extract::{ConnectInfo, Request};
use axum::response::Response;
use http::{HeaderName, HeaderValue};

use crate::client_addr::TrustedProxies;
use crate::finish::{Finish, Finishing};

pub const REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");
const FORWARDED_FOR: HeaderName = HeaderName::from_static("x-forwarded-for");

/// Whether a caller-chosen request id is kept: 1 to 128 visible ASCII
/// characters. The one rule for REST and gRPC alike.
pub fn acceptable_request_id(value: &[u8]) -> bool {
    !value.is_empty() && value.len() <= 128 && value.iter().all(|b| b.is_ascii_graphic())
}

/// `req-{nanos:x}-{counter:x}`, written without `fmt`: every request that
/// brings no id pays for this.
fn generate() -> HeaderValue {
    let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_nanos()).unwrap_or(0);
    let counter = COUNTER.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let mut text = [0u8; 4 + 32 + 1 + 16];
    text[..4].copy_from_slice(b"req-");
    let mut len = 4 + hex(nanos, &mut text[4..]);
    text[len] = b'-';
    len += 1 + hex(u128::from(counter), &mut text[len + 1..]);
    HeaderValue::from_bytes(&text[..len]).unwrap_or(HeaderValue::from_static("req-unknown"))
}

/// `value` in lowercase hex without leading zeros (as `{:x}`) at the start
/// of `out`, which holds 32 bytes or more; returns how many it wrote.
fn hex(value: u128, out: &mut [u8]) -> usize {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let len = (128 - value.leading_zeros()).div_ceil(4).max(1) as usize;
    for (i, slot) in out[..len].iter_mut().enumerate() {
        *slot = DIGITS[((value >> (4 * (len - 1 - i))) & 0xf) as usize];
    }
    len
}

/// The client address as a header value; an IPv4 one (nearly all) written
/// without `fmt`.
fn client_header(client: std::net::IpAddr) -> Option<HeaderValue> {
    let std::net::IpAddr::V4(v4) = client else {
        return HeaderValue::from_str(&client.to_string()).ok();
    };
    let mut text = [0u8; 15];
    let mut len = 0;
    for (i, octet) in v4.octets().into_iter().enumerate() {
        if i > 0 {
            text[len] = b'.';
            len += 1;
        }
        let digits = [octet / 100, octet / 10 % 10, octet % 10];
        let skip = if octet >= 100 {
            0
        } else if octet >= 10 {
            1
        } else {
            2
        };
        for digit in &digits[skip..] {
            text[len] = b'0' + digit;
            len += 1;
        }
    }
    HeaderValue::from_bytes(&text[..len]).ok()
}

static COUNTER: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);

/// Sets the request id and the client address on every request.
#[derive(Clone)]
pub struct RequestContextLayer {
    pub trusted: Arc<TrustedProxies>,
}

impl<S> tower::Layer<S> for RequestContextLayer {
    type Service = RequestContext<S>;
    fn layer(&self, inner: S) -> RequestContext<S> {
        RequestContext { inner, trusted: self.trusted.clone() }
    }
}

#[derive(Clone)]
pub struct RequestContext<S> {
    inner: S,
    trusted: Arc<TrustedProxies>,
}

impl<S: tower::Service<Request, Response = Response>> tower::Service<Request> for RequestContext<S> {
    type Response = Response;
    type Error = S::Error;
    type Future = Finishing<S::Future, EchoRequestId>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), S::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut request: Request) -> Self::Future {
        let mut id = match request.headers().get(REQUEST_ID) {
            Some(v) if acceptable_request_id(v.as_bytes()) => v.clone(),
            _ => generate(),
        };
        // Unique to each response: over HTTP/2, never worth HPACK's table.
        id.set_sensitive(true);
        let peer = request.extensions().get::<ConnectInfo<std::net::SocketAddr>>().map(|c| c.0.ip());
        let forwarded = request.headers().get(FORWARDED_FOR).and_then(|v| v.to_str().ok());
        let client = peer.map(|peer| self.trusted.client(peer, forwarded));
        let headers = request.headers_mut();
        headers.remove(FORWARDED_FOR);
        if let Some(value) = client.and_then(client_header) {
            headers.insert(FORWARDED_FOR, value);
        }
        headers.insert(REQUEST_ID, id.clone());
        Finishing::new(self.inner.call(request), EchoRequestId(id))
    }
}

/// The request id, echoed on the response.
pub struct EchoRequestId(HeaderValue);

impl Finish<Response> for EchoRequestId {
    fn finish(self, mut response: Response) -> Response {
        response.headers_mut().insert(REQUEST_ID, self.0);
        response
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hex_is_written_as_fmt_writes_it() {
        for value in [0, 1, 0xf, 0x10, 0xabc, u128::from(u64::MAX), u128::MAX, 1 << 127, 0x1_8000_0000_0000_0000] {
            let mut out = [0u8; 32];
            let len = hex(value, &mut out);
            assert_eq!(std::str::from_utf8(&out[..len]).unwrap(), format!("{value:x}"));
        }
    }

    #[test]
    fn generated_ids_are_distinct_and_acceptable() {
        let (a, b) = (generate(), generate());
        assert_ne!(a, b);
        for id in [a, b] {
            let text = id.to_str().unwrap();
            let parts: Vec<&str> = text.split('-').collect();
            assert_eq!(parts.len(), 3, "{text}");
            assert_eq!(parts[0], "req");
            assert!(parts[1..].iter().all(|p| !p.is_empty() && p.bytes().all(|b| b.is_ascii_hexdigit())), "{text}");
            assert!(acceptable_request_id(id.as_bytes()), "{text}");
        }
    }

    #[test]
    fn client_addresses_are_written_as_display_writes_them() {
        for text in
            ["0.0.0.0", "1.2.3.4", "9.10.99.100", "255.255.255.255", "192.168.0.10", "::1", "2001:db8::8a2e:370:7334"]
        {
            let ip: std::net::IpAddr = text.parse().unwrap();
            assert_eq!(client_header(ip).unwrap(), text);
        }
    }
}
