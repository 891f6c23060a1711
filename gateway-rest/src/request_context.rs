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

use crate::TrustedProxies;
use crate::finish::{Finish, Finishing};

pub const REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");
const FORWARDED_FOR: HeaderName = HeaderName::from_static("x-forwarded-for");

/// Whether a caller-chosen request id is kept: 1 to 128 visible ASCII
/// characters. The one rule for REST and gRPC alike.
pub fn acceptable_request_id(value: &[u8]) -> bool {
    !value.is_empty() && value.len() <= 128 && value.iter().all(|b| b.is_ascii_graphic())
}

fn generate() -> HeaderValue {
    let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_nanos()).unwrap_or(0);
    let counter = COUNTER.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    header_value(format!("req-{nanos:x}-{counter:x}")).unwrap_or(HeaderValue::from_static("req-unknown"))
}

/// A header value that owns `text` without copying it.
fn header_value(text: String) -> Option<HeaderValue> {
    HeaderValue::from_maybe_shared(axum::body::Bytes::from(text)).ok()
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
        if let Some(value) = client.and_then(|c| header_value(c.to_string())) {
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
