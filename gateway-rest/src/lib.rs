//! The REST surface of the wa-gateway admin plane.
//!
//! A small axum layer that maps the documented `/api/v1/admin/...` paths onto
//! the AdminService RPCs and renders their answers as the documented JSON. It
//! decides no outcome: every status comes from an RPC status (through
//! [`error::from_status`]), except routing (404/405) and request parsing
//! (400/413). Credentials are forwarded untouched as gRPC metadata.
//!
//! The client is boxed over its transport, so the same router serves inside
//! `wa-gateway serve` (the in-process gRPC service, same auth layer, no
//! socket) and standalone in front of a remote server (`wa-gateway rest`).

mod auth_first;
mod client_addr;
pub mod dto;
pub mod error;
pub mod openapi;
mod request_id;
mod routes;

use std::time::Duration;

pub use client_addr::TrustedProxies;
#[cfg(fuzzing)]
pub use routes::fuzz_request;

use tower::util::BoxCloneSyncService;
use tower_http::cors::{AllowOrigin, CorsLayer};

pub mod proto {
    #![allow(missing_docs, clippy::all, clippy::pedantic)]
    tonic::include_proto!("wa.gateway.admin.v1");

    /// Encoded descriptor set of the admin contract (with its
    /// `google.api.http` annotations).
    pub const FILE_DESCRIPTOR_SET: &[u8] = include_bytes!(concat!(env!("OUT_DIR"), "/admin_descriptor.bin"));
}

/// Any transport that carries gRPC requests to an AdminService. Transport
/// failures are already turned into gRPC statuses (see [`remote`]), so the
/// error type is uninhabited.
pub type AdminTransport =
    BoxCloneSyncService<http::Request<tonic::body::Body>, http::Response<tonic::body::Body>, std::convert::Infallible>;
pub type AdminClient = proto::admin_service_client::AdminServiceClient<AdminTransport>;

/// Largest response message accepted from the AdminService.
const MAX_RESPONSE_MESSAGE_BYTES: usize = 64 * 1024 * 1024;

/// A transport to a remote AdminService: connection failures answer as
/// UNAVAILABLE statuses (REST 503) instead of transport errors.
pub fn remote(channel: tonic::transport::Channel) -> AdminTransport {
    BoxCloneSyncService::new(Remote(channel))
}

#[derive(Clone)]
struct Remote(tonic::transport::Channel);

impl tower::Service<http::Request<tonic::body::Body>> for Remote {
    type Response = http::Response<tonic::body::Body>;
    type Error = std::convert::Infallible;
    type Future = std::pin::Pin<Box<dyn std::future::Future<Output = Result<Self::Response, Self::Error>> + Send>>;

    fn poll_ready(&mut self, _cx: &mut std::task::Context<'_>) -> std::task::Poll<Result<(), Self::Error>> {
        // Readiness is awaited per call (oneshot) so that a down upstream
        // becomes a status, not a transport error.
        std::task::Poll::Ready(Ok(()))
    }

    fn call(&mut self, request: http::Request<tonic::body::Body>) -> Self::Future {
        use tower::ServiceExt;
        let channel = self.0.clone();
        Box::pin(async move {
            Ok(channel.oneshot(request).await.unwrap_or_else(|error| {
                tonic::Status::unavailable(format!("admin service unreachable: {error}")).into_http()
            }))
        })
    }
}

/// Wraps a transport in a size-capped AdminService client.
pub fn client(transport: AdminTransport) -> AdminClient {
    proto::admin_service_client::AdminServiceClient::new(transport)
        .max_decoding_message_size(MAX_RESPONSE_MESSAGE_BYTES)
}

#[derive(Debug, Clone)]
pub struct RestConfig {
    /// Origins allowed by CORS; none means no CORS headers at all.
    pub cors_origins: Vec<http::HeaderValue>,
    /// Upper bound on one RPC made for one REST request (not for streams).
    pub rpc_timeout: Duration,
    /// Proxies whose `X-Forwarded-For` names the client.
    pub trusted_proxies: TrustedProxies,
}

impl Default for RestConfig {
    fn default() -> Self {
        Self {
            cors_origins: Vec::new(),
            rpc_timeout: Duration::from_secs(30),
            trusted_proxies: TrustedProxies::default(),
        }
    }
}

/// Replaces `X-Forwarded-For` with the one client address this request comes
/// from (see [`TrustedProxies`]); the RPC carries it to the auth layer, which
/// keeps per-client budgets by it.
async fn resolve_client(
    axum::extract::State(trusted): axum::extract::State<std::sync::Arc<TrustedProxies>>,
    mut request: axum::extract::Request,
    next: axum::middleware::Next,
) -> axum::response::Response {
    let peer = request.extensions().get::<axum::extract::ConnectInfo<std::net::SocketAddr>>().map(|c| c.0.ip());
    let forwarded = request.headers().get("x-forwarded-for").and_then(|v| v.to_str().ok());
    let client = peer.map(|peer| trusted.client(peer, forwarded));
    request.headers_mut().remove("x-forwarded-for");
    if let Some(value) = client.and_then(|c| http::HeaderValue::from_str(&c.to_string()).ok()) {
        request.headers_mut().insert("x-forwarded-for", value);
    }
    next.run(request).await
}

/// The REST router: the documented paths, the OpenAPI document, the error
/// envelope for everything else.
pub fn router(client: AdminClient, config: RestConfig) -> axum::Router {
    let trusted = std::sync::Arc::new(config.trusted_proxies);
    let mut router = routes::routes(routes::RestState { client, rpc_timeout: config.rpc_timeout })
        .layer(axum::middleware::from_fn(request_id::request_id))
        .layer(axum::middleware::from_fn_with_state(trusted, resolve_client));
    if !config.cors_origins.is_empty() {
        let cors = CorsLayer::new()
            .allow_origin(AllowOrigin::list(config.cors_origins))
            .allow_methods([http::Method::GET, http::Method::POST])
            .allow_headers([
                http::header::AUTHORIZATION,
                http::header::CONTENT_TYPE,
                http::HeaderName::from_static("x-api-key"),
                http::HeaderName::from_static("x-request-id"),
            ])
            .expose_headers([http::header::LOCATION, http::HeaderName::from_static("x-request-id")])
            .max_age(Duration::from_secs(600));
        router = router.layer(cors);
    }
    router
}
