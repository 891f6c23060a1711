//! The HTTP port: REST, health, readiness, metrics (and the demo's JWKS),
//! every non-2xx answer in the error envelope, served over plain TCP or TLS
//! with limits on what one client can hold:
//!
//! - a new connection must send its first byte, and each request its whole
//!   head, within `header_timeout`; the same timer closes a keep-alive
//!   connection that stays idle that long;
//! - the body must arrive within `body_timeout`;
//! - at most `max_connections` connections are open; beyond that the port
//!   stops accepting until one closes.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use axum::extract::{ConnectInfo, State};
use axum::routing::get;
use gateway_rest::error::ApiError;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto::Builder;
use hyper_util::server::graceful::GracefulShutdown;
use metrics_exporter_prometheus::PrometheusHandle;
use tokio::net::TcpListener;
use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;
use tower::{Layer, ServiceExt};
use tower_http::timeout::RequestBodyTimeoutLayer;

use super::deadline::FirstByte;
use super::tls::{HANDSHAKE_TIMEOUT, Port, ServerTls};
use crate::auth::JwksCache;
use crate::store::Store;

#[derive(Debug, Clone)]
pub struct HttpLimits {
    pub header_timeout: Duration,
    pub body_timeout: Duration,
    pub max_connections: usize,
}

/// What `/readyz` reports: the store answers, signing keys are loaded, and
/// both listeners are up.
pub struct Readiness {
    pub store: Store,
    pub jwks: Arc<JwksCache>,
    pub listeners_up: AtomicBool,
}

fn method_not_allowed() -> std::future::Ready<ApiError> {
    std::future::ready(ApiError::method_not_allowed("GET"))
}

async fn healthz() -> &'static str {
    "ok\n"
}

/// Whether the replica is ready, and each check's verdict; also kept in the
/// `wa_gateway_ready` gauge.
async fn assess(ready: &Readiness) -> (bool, [(&'static str, &'static str); 3]) {
    let store = ready.store.ping().await;
    let pool = ready.store.pool_use();
    metrics::gauge!("wa_gateway_store_up").set(if store { 1.0 } else { 0.0 });
    metrics::gauge!("wa_gateway_store_pool_connections", "state" => "busy").set(f64::from(pool.busy));
    metrics::gauge!("wa_gateway_store_pool_connections", "state" => "max").set(f64::from(pool.max));
    let keys = ready.jwks.is_loaded();
    let listeners = ready.listeners_up.load(Ordering::Acquire);
    let verdicts = [
        ("store", if store { "ok" } else { "unavailable" }),
        ("jwks", if keys { "loaded" } else { "not loaded" }),
        ("listeners", if listeners { "ok" } else { "down" }),
    ];
    let all = store && keys && listeners;
    metrics::gauge!("wa_gateway_ready").set(if all { 1.0 } else { 0.0 });
    (all, verdicts)
}

async fn readyz(State(ready): State<Arc<Readiness>>) -> Result<String, ApiError> {
    let (all, verdicts) = assess(&ready).await;
    if all {
        return Ok(verdicts.iter().map(|(k, v)| format!("{k}: {v}\n")).collect());
    }
    let mut error = ApiError::new(http::StatusCode::SERVICE_UNAVAILABLE, "unavailable", "not ready");
    for (k, v) in verdicts {
        error.details.insert(k.into(), serde_json::json!(v));
    }
    Err(error)
}

/// The whole HTTP port: REST (`rest`, built with the metrics layer inside
/// its own layer stack), probes, metrics and the console.
pub fn router(
    rest: axum::Router,
    ready: Arc<Readiness>,
    metrics: PrometheusHandle,
    demo_jwks: Option<String>,
) -> axum::Router {
    let mut probes = axum::Router::new()
        .route("/healthz", get(healthz).fallback(method_not_allowed))
        .route("/readyz", get(readyz).fallback(method_not_allowed))
        .route(
            "/metrics",
            get(|State(ready): State<Arc<Readiness>>| async move {
                assess(&ready).await;
                crate::telemetry::render(&metrics)
            })
            .fallback(method_not_allowed),
        )
        .with_state(ready);
    if let Some(demo) = demo_jwks {
        let jwks = get(move || std::future::ready(([(http::header::CONTENT_TYPE, "application/json")], demo)));
        probes = probes.route("/demo/jwks.json", jwks.fallback(method_not_allowed));
    }
    probes.merge(crate::console::router()).layer(crate::telemetry::ObserveRestLayer).merge(rest)
}

/// Serves `router` until `shutdown`, then lets open connections finish (the
/// caller bounds how long).
pub async fn serve(
    listener: TcpListener,
    router: axum::Router,
    tls: Option<Arc<ServerTls>>,
    limits: HttpLimits,
    shutdown: CancellationToken,
) -> anyhow::Result<()> {
    let mut builder = Builder::new(TokioExecutor::new());
    builder.http1().timer(TokioTimer::new()).header_read_timeout(limits.header_timeout).keep_alive(true);
    builder
        .http2()
        .timer(TokioTimer::new())
        .max_concurrent_streams(100)
        .keep_alive_interval(Some(Duration::from_secs(30)))
        .keep_alive_timeout(Duration::from_secs(10))
        .max_header_list_size(96 * 1024);
    let builder = Arc::new(builder);
    let connections = Arc::new(Semaphore::new(limits.max_connections.max(1)));
    let graceful = GracefulShutdown::new();
    loop {
        let permit = tokio::select! {
            permit = connections.clone().acquire_owned() => permit?,
            () = shutdown.cancelled() => break,
        };
        let (tcp, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(error) => {
                    // Out of file descriptors and the like: pause, go on.
                    tracing::warn!(%error, "HTTP accept failed");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            },
            () = shutdown.cancelled() => break,
        };
        let _ = tcp.set_nodelay(true);
        let service = RequestBodyTimeoutLayer::new(limits.body_timeout).layer(router.clone()).map_request(
            move |mut request: http::Request<_>| {
                request.extensions_mut().insert(ConnectInfo::<SocketAddr>(peer));
                request
            },
        );
        let service = hyper_util::service::TowerToHyperService::new(service);
        let (builder, watcher, tls) = (builder.clone(), graceful.watcher(), tls.clone());
        let header_timeout = limits.header_timeout;
        tokio::spawn(async move {
            let _permit = permit;
            match tls {
                None => {
                    let io = TokioIo::new(FirstByte::new(tcp, header_timeout));
                    let connection = builder.serve_connection_with_upgrades(io, service);
                    let _ = watcher.watch(connection.into_owned()).await;
                }
                Some(tls) => {
                    let handshake = tokio::time::timeout(HANDSHAKE_TIMEOUT, tls.acceptor(Port::Http).accept(tcp));
                    // A client that does not speak TLS gets no HTTP answer.
                    let Ok(Ok(stream)) = handshake.await else { return };
                    let io = TokioIo::new(FirstByte::new(stream, header_timeout));
                    let connection = builder.serve_connection_with_upgrades(io, service);
                    let _ = watcher.watch(connection.into_owned()).await;
                }
            }
        });
    }
    drop(listener);
    graceful.shutdown().await;
    Ok(())
}
