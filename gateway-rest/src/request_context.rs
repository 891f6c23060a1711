//! What every REST request carries into its RPC, set in one pass:
//!
//! - `x-request-id`: taken from the request when it is sane, generated
//!   otherwise; echoed on the response and forwarded (for logs and audit);
//! - `x-forwarded-for`: replaced by the one client address the request
//!   comes from (see [`TrustedProxies`]); the RPC carries it to the
//!   credential check, which keeps per-client budgets by it.

use std::sync::Arc;

use axum::extract::{ConnectInfo, Request, State};
use axum::middleware::Next;
use axum::response::Response;
use http::HeaderValue;

use crate::TrustedProxies;

pub const REQUEST_ID: &str = "x-request-id";
const FORWARDED_FOR: &str = "x-forwarded-for";

/// Whether a caller-chosen request id is kept: 1 to 128 visible ASCII
/// characters. The one rule for REST and gRPC alike.
pub fn acceptable_request_id(value: &[u8]) -> bool {
    !value.is_empty() && value.len() <= 128 && value.iter().all(|b| b.is_ascii_graphic())
}

fn generate() -> HeaderValue {
    let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_nanos()).unwrap_or(0);
    let counter = COUNTER.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    HeaderValue::from_str(&format!("req-{nanos:x}-{counter:x}")).unwrap_or(HeaderValue::from_static("req-unknown"))
}

static COUNTER: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);

pub async fn request_context(State(trusted): State<Arc<TrustedProxies>>, mut request: Request, next: Next) -> Response {
    let mut id = match request.headers().get(REQUEST_ID) {
        Some(v) if acceptable_request_id(v.as_bytes()) => v.clone(),
        _ => generate(),
    };
    // Unique to each response: over HTTP/2, never worth HPACK's table.
    id.set_sensitive(true);
    let peer = request.extensions().get::<ConnectInfo<std::net::SocketAddr>>().map(|c| c.0.ip());
    let forwarded = request.headers().get(FORWARDED_FOR).and_then(|v| v.to_str().ok());
    let client = peer.map(|peer| trusted.client(peer, forwarded));
    let headers = request.headers_mut();
    headers.remove(FORWARDED_FOR);
    if let Some(value) = client.and_then(|c| HeaderValue::from_str(&c.to_string()).ok()) {
        headers.insert(FORWARDED_FOR, value);
    }
    headers.insert(REQUEST_ID, id.clone());
    let mut response = next.run(request).await;
    response.headers_mut().insert(REQUEST_ID, id);
    response
}
