//! `x-request-id`: taken from the request when it is sane, generated
//! otherwise; echoed on the response and forwarded to the RPC (for logs and
//! audit).

use axum::extract::Request;
use axum::middleware::Next;
use axum::response::Response;
use http::HeaderValue;

pub const HEADER: &str = "x-request-id";

fn acceptable(value: &HeaderValue) -> bool {
    let bytes = value.as_bytes();
    !bytes.is_empty() && bytes.len() <= 128 && bytes.iter().all(|b| b.is_ascii_graphic())
}

fn generate() -> HeaderValue {
    let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_nanos()).unwrap_or(0);
    let counter = COUNTER.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    HeaderValue::from_str(&format!("req-{nanos:x}-{counter:x}")).unwrap_or(HeaderValue::from_static("req-unknown"))
}

static COUNTER: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);

pub async fn request_id(mut request: Request, next: Next) -> Response {
    let id = match request.headers().get(HEADER) {
        Some(v) if acceptable(v) => v.clone(),
        _ => generate(),
    };
    request.headers_mut().insert(HEADER, id.clone());
    let mut response = next.run(request).await;
    response.headers_mut().insert(HEADER, id);
    response
}
