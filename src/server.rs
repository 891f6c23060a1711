//! Wiring: store, auth, the gRPC services behind the auth layer, the HTTP
//! port (health, readiness, REST), and graceful shutdown.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use axum::extract::State;
use axum::routing::get;
use tokio::net::TcpListener;
use tokio::task::JoinHandle;
use tokio_stream::wrappers::TcpListenerStream;
use tokio_util::sync::CancellationToken;
use tower::Layer;

use crate::auth::{ApiKeyVerifier, Authenticator, JwksCache, JwksConfig, JwtConfig, JwtVerifier};
use crate::backfill::{BackfillConfig, Backfills, JobBoard, MemoryBoard};
use crate::grpc::{AdminApi, AuthLayer};
use crate::hosts::HostRegistry;
use crate::paging::CursorCodec;
use crate::proto::admin::admin_service_server::AdminServiceServer;
use crate::store::{Store, redact_url};

/// Largest gRPC request message accepted; admin requests are tiny.
const MAX_REQUEST_MESSAGE_BYTES: usize = 64 * 1024;
/// Largest gRPC response message sent (a page of 500 groups with members).
const MAX_RESPONSE_MESSAGE_BYTES: usize = 64 * 1024 * 1024;
/// Largest gRPC header block accepted. Well above the 8 KiB token cap, so an
/// oversized token gets a precise UNAUTHENTICATED rather than a bare HTTP 431.
const MAX_HEADER_LIST_BYTES: u32 = 96 * 1024;

#[derive(Clone)]
pub struct ServeConfig {
    pub grpc_addr: SocketAddr,
    pub http_addr: SocketAddr,
    pub database_url: String,
    pub jwks: JwksConfig,
    pub jwt: JwtConfig,
    pub hosts: HostRegistry,
    pub backfill: BackfillConfig,
    pub rest: gateway_rest::RestConfig,
    /// Demo mode: the process signs its own tokens and serves this JWKS at
    /// `/demo/jwks.json`. Never set outside `serve --demo`.
    pub demo_jwks: Option<String>,
}

/// A started server. Dropping it does not stop it; call [`RunningServer::shutdown`].
pub struct RunningServer {
    pub grpc_addr: SocketAddr,
    pub http_addr: SocketAddr,
    shutdown: CancellationToken,
    tasks: Vec<JoinHandle<anyhow::Result<()>>>,
    background: Vec<tokio::task::AbortHandle>,
    store: Store,
    backfills: Backfills,
}

#[derive(Clone)]
struct HttpState {
    store: Store,
    jwks: Arc<JwksCache>,
}

async fn healthz() -> &'static str {
    "ok\n"
}

async fn readyz(State(state): State<HttpState>) -> (http::StatusCode, String) {
    let store = state.store.ping().await;
    let keys = state.jwks.is_loaded();
    let status = if store && keys { http::StatusCode::OK } else { http::StatusCode::SERVICE_UNAVAILABLE };
    (
        status,
        format!(
            "store: {}\njwks: {}\n",
            if store { "ok" } else { "unavailable" },
            if keys { "loaded" } else { "not loaded" }
        ),
    )
}

/// Reflection advertises exactly the services this port serves (the
/// descriptor set also holds SessionHostService, which it does not).
fn reflection() -> tonic_reflection::server::Builder<'static> {
    tonic_reflection::server::Builder::configure()
        .register_encoded_file_descriptor_set(crate::proto::FILE_DESCRIPTOR_SET)
        .register_encoded_file_descriptor_set(tonic_health::pb::FILE_DESCRIPTOR_SET)
        .with_service_name("wa.gateway.admin.v1.AdminService")
        .with_service_name("grpc.health.v1.Health")
        .with_service_name("grpc.reflection.v1.ServerReflection")
        .with_service_name("grpc.reflection.v1alpha.ServerReflection")
}

pub async fn start(mut config: ServeConfig) -> anyhow::Result<RunningServer> {
    let grpc_listener = TcpListener::bind(config.grpc_addr)
        .await
        .with_context(|| format!("binding the gRPC address {}", config.grpc_addr))?;
    let http_listener = TcpListener::bind(config.http_addr)
        .await
        .with_context(|| format!("binding the HTTP address {}", config.http_addr))?;
    let grpc_addr = grpc_listener.local_addr()?;
    let http_addr = http_listener.local_addr()?;
    let shown_url = redact_url(&config.database_url);
    let store = Store::open(&config.database_url).await.with_context(|| format!("opening database {shown_url}"))?;
    // Before anything is swept: a second server on one SQLite file would
    // delete the staged rows of the first one's running jobs.
    store.hold_serving_lock()?;
    let codec = CursorCodec::new(store.cursor_key().await?);
    let swept = store.sweep_unpublished_generations().await?;
    if swept > 0 {
        tracing::info!(rows = swept, "removed rows of backfills interrupted by a previous stop");
    }
    let board = match store.shared_job_board(config.backfill.lease) {
        Some(shared) => shared,
        None => Arc::new(MemoryBoard::new(store.clone())) as Arc<dyn JobBoard>,
    };
    let backfills = Backfills::new(store.clone(), config.hosts.clone(), board, config.backfill.clone());

    let metrics = crate::telemetry::install();
    if config.demo_jwks.is_some() {
        config.jwks.url = format!("http://{http_addr}/demo/jwks.json");
    }
    let jwks = Arc::new(JwksCache::new(config.jwks.clone()).context("building the JWKS client")?);
    let mut background = Vec::new();
    match &config.demo_jwks {
        // The demo holds its own keys: no fetch, no refresh.
        Some(demo) => {
            jwks.install(demo.as_bytes()).map_err(|e| anyhow::anyhow!("demo JWKS: {e}"))?;
        }
        None => background.push(jwks.start().await),
    }
    let auth =
        Authenticator::new(JwtVerifier::new(config.jwt.clone(), jwks.clone()), ApiKeyVerifier::new(store.clone()));

    let admin = AdminServiceServer::new(AdminApi::new(store.clone(), codec, backfills.clone()))
        .max_decoding_message_size(MAX_REQUEST_MESSAGE_BYTES)
        .max_encoding_message_size(MAX_RESPONSE_MESSAGE_BYTES);
    let (health, health_service) = tonic_health::server::health_reporter();
    health.set_serving::<AdminServiceServer<AdminApi>>().await;
    let reflection_v1 = reflection()
        .register_encoded_file_descriptor_set(tonic_reflection::pb::v1alpha::FILE_DESCRIPTOR_SET)
        .build_v1()?;
    let reflection_v1alpha = reflection()
        .register_encoded_file_descriptor_set(tonic_reflection::pb::v1::FILE_DESCRIPTOR_SET)
        .build_v1alpha()?;
    let routes = tonic::service::Routes::new(admin)
        .add_service(health_service)
        .add_service(reflection_v1)
        .add_service(reflection_v1alpha)
        .prepare();
    let grpc_service = AuthLayer::new(auth).layer(routes);

    let shutdown = CancellationToken::new();
    let grpc_task = {
        let shutdown = shutdown.clone();
        let service = grpc_service.clone();
        tokio::spawn(async move {
            tonic::transport::Server::builder()
                .timeout(Duration::from_secs(60))
                .http2_keepalive_interval(Some(Duration::from_secs(30)))
                .http2_keepalive_timeout(Some(Duration::from_secs(10)))
                .http2_max_header_list_size(MAX_HEADER_LIST_BYTES)
                .concurrency_limit_per_connection(256)
                .serve_with_incoming_shutdown(
                    crate::telemetry::GrpcMetricsLayer.layer(service),
                    TcpListenerStream::new(grpc_listener),
                    shutdown.cancelled_owned(),
                )
                .await
                .context("gRPC server failed")
        })
    };

    // REST calls the same layered gRPC service in process: same auth layer,
    // same limits, no socket.
    let rest_client = gateway_rest::client(tower::util::BoxCloneSyncService::new(grpc_service.clone()));
    let mut http_router = axum::Router::new()
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .with_state(HttpState { store: store.clone(), jwks: jwks.clone() })
        .route("/metrics", get(move || std::future::ready(metrics.render())))
        .merge(gateway_rest::router(rest_client, config.rest.clone()));
    if let Some(demo) = config.demo_jwks.clone() {
        http_router = http_router.route(
            "/demo/jwks.json",
            get(move || std::future::ready(([(http::header::CONTENT_TYPE, "application/json")], demo))),
        );
    }
    let http_router = http_router.layer(axum::middleware::from_fn(crate::telemetry::rest_metrics));
    let http_task = {
        let shutdown = shutdown.clone();
        tokio::spawn(async move {
            axum::serve(http_listener, http_router)
                .with_graceful_shutdown(shutdown.cancelled_owned())
                .await
                .context("HTTP server failed")
        })
    };

    Ok(RunningServer {
        grpc_addr,
        http_addr,
        shutdown,
        tasks: vec![grpc_task, http_task],
        background,
        store,
        backfills,
    })
}

impl RunningServer {
    /// Stops accepting, lets in-flight calls finish, and closes the store.
    pub async fn shutdown(self) -> anyhow::Result<()> {
        self.shutdown.cancel();
        // Running jobs stop and discard their staged rows; open WatchBackfill
        // streams end with the jobs' terminal state.
        self.backfills.shutdown(Duration::from_secs(15)).await;
        for handle in &self.background {
            handle.abort();
        }
        let mut result = Ok(());
        for task in self.tasks {
            match tokio::time::timeout(Duration::from_secs(30), task).await {
                Ok(Ok(Ok(()))) => {}
                Ok(Ok(Err(e))) => result = Err(e),
                Ok(Err(join)) => result = Err(anyhow::anyhow!("server task panicked: {join}")),
                Err(_) => result = Err(anyhow::anyhow!("server did not stop within 30 s")),
            }
        }
        self.store.close().await;
        result
    }

    /// Resolves when either server task ends on its own (a failure).
    pub fn shutdown_token(&self) -> CancellationToken {
        self.shutdown.clone()
    }
}
