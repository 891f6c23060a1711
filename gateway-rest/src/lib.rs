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
mod body;
mod client_addr;
pub mod dto;
pub mod error;
pub mod events;
pub mod finish;
mod forwarded;
mod gateways;
mod json_body;
mod json_write;
mod listing;
pub mod openapi;
mod page_cache;
mod query;
mod request_context;
mod routes;
mod session_path;
mod state;

use std::time::Duration;

pub use backend::{AdminBackend, EventStream, WatchStream, remote};
pub use client_addr::TrustedProxies;
pub use forwarded::Forwarded;
pub use request_context::acceptable_request_id;
#[cfg(fuzzing)]
pub use session_path::fuzz_request;
pub use session_path::{RouteTemplate, unmatched_route};

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

/// A service in the REST layer stack: a request in, a response out, never
/// an error.
pub trait RestService:
    tower::Service<
        axum::extract::Request,
        Response = axum::response::Response,
        Error = std::convert::Infallible,
        Future: Send + 'static,
    > + Clone
    + Send
    + Sync
    + 'static
{
}

impl<T> RestService for T where
    T: tower::Service<
            axum::extract::Request,
            Response = axum::response::Response,
            Error = std::convert::Infallible,
            Future: Send + 'static,
        > + Clone
        + Send
        + Sync
        + 'static
{
}

/// What the server puts outermost around every REST route (its metrics):
/// a layer over whatever REST stacks below it.
pub trait OuterLayer: Clone + Send + Sync + 'static {
    type Service<S: RestService>: RestService;
    fn wrap<S: RestService>(&self, inner: S) -> Self::Service<S>;
}

/// No outer layer.
impl OuterLayer for tower::layer::util::Identity {
    type Service<S: RestService> = S;
    fn wrap<S: RestService>(&self, inner: S) -> S {
        inner
    }
}

#[derive(Clone)]
struct Outer<L>(L);

impl<L: OuterLayer, S: RestService> tower::Layer<S> for Outer<L> {
    type Service = L::Service<S>;
    fn layer(&self, inner: S) -> L::Service<S> {
        self.0.wrap(inner)
    }
}

/// The REST router: the documented paths, the OpenAPI document, the error
/// envelope for everything else, with `outer` around every route.
///
/// The cross-cutting layers are stacked into one and applied once: axum
/// keeps each layer level of a route as a boxed service and clones every
/// level below it on each request, so each further `Router::layer` call
/// would add box clones to every request.
pub fn router(backend: AdminBackend, config: RestConfig, outer: impl OuterLayer) -> axum::Router {
    let state = state::RestState::new(backend, config.rpc_timeout);
    let cors = (!config.cors_origins.is_empty()).then(|| {
        CorsLayer::new()
            .allow_origin(AllowOrigin::list(config.cors_origins))
            .allow_methods([http::Method::GET, http::Method::POST])
            .allow_headers([
                http::header::AUTHORIZATION,
                http::header::CONTENT_TYPE,
                http::HeaderName::from_static("x-api-key"),
                http::HeaderName::from_static("x-request-id"),
                http::header::IF_NONE_MATCH,
            ])
            .expose_headers([http::header::LOCATION, http::HeaderName::from_static("x-request-id"), http::header::ETAG])
            .max_age(Duration::from_secs(600))
    });
    let layers = tower::ServiceBuilder::new()
        .layer(Outer(outer))
        .option_layer(cors)
        .layer(request_context::RequestContextLayer { trusted: std::sync::Arc::new(config.trusted_proxies) })
        .layer(auth_first::AuthFirstLayer(state.clone()))
        .into_inner();
    routes::routes(state).layer(layers)
}
