//! The REST surface of the wa-gateway admin plane.
//!
//! A small axum layer that maps the documented `/api/v1/admin/...` paths onto
//! the AdminService RPCs and renders their answers as the documented JSON. It
//! decides no outcome: every status comes from an RPC status (through
//! [`error::from_status`]), except routing (404/405) and request parsing
//! (400/413). Credentials are forwarded untouched as gRPC metadata.
//!
//! The router calls an [`AdminBackend`], the AdminService as its generated
//! trait: inside `wa-gateway serve` the service in the same process (typed
//! calls behind the same credential check as the gRPC port, nothing encoded),
//! standalone (`wa-gateway rest`) a gRPC client to a remote server.

mod auth_first;
mod backend;
mod client_addr;
pub mod dto;
pub mod error;
pub mod finish;
mod json_body;
pub mod openapi;
mod request_context;
mod routes;

use std::time::Duration;

pub use backend::{AdminBackend, WatchStream, remote};
pub use client_addr::TrustedProxies;
pub use request_context::acceptable_request_id;
pub use routes::RouteTemplate;
#[cfg(fuzzing)]
pub use routes::fuzz_request;

use tower_http::cors::{AllowOrigin, CorsLayer};

pub mod proto {
    #![allow(missing_docs, clippy::all, clippy::pedantic)]
    tonic::include_proto!("wa.gateway.admin.v1");

    /// Encoded descriptor set of the admin contract (with its
    /// `google.api.http` annotations).
    pub const FILE_DESCRIPTOR_SET: &[u8] = include_bytes!(concat!(env!("OUT_DIR"), "/admin_descriptor.bin"));
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

/// The REST router: the documented paths, the OpenAPI document, the error
/// envelope for everything else.
pub fn router(backend: AdminBackend, config: RestConfig) -> axum::Router {
    let trusted = std::sync::Arc::new(config.trusted_proxies);
    let mut router = routes::routes(routes::RestState { backend, rpc_timeout: config.rpc_timeout })
        .layer(request_context::RequestContextLayer { trusted });
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
