//! Wiring: store, auth, backfills, the gRPC port (services behind the auth
//! layer) and the HTTP port (REST calling the same AdminService in process
//! through the same gate, probes, metrics), TLS, and a stop that is bounded in time.
//!
//! A listener that stops on its own marks the server not ready and resolves
//! [`RunningServer::failed`]: the process then exits non-zero.

mod deadline;
mod grpc;
mod http;
mod tls;
mod waiting;

pub use grpc::GrpcLimits;
pub use http::HttpLimits;
pub use tls::TlsFiles;

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use anyhow::Context;
use tokio::net::TcpListener;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use wa_gateway_core::events::retention::{self, RetentionPolicy};
use wa_gateway_core::feed::{self, FeedConfig, Gateways};

use crate::auth::{ApiKeyVerifier, Authenticator, FailureLimiter, JwksCache, JwksConfig, JwtConfig, JwtVerifier};
use crate::backfill::{BackfillConfig, Backfills, JobBoard, MemoryBoard};
use crate::grpc::{AdminApi, Gate, InProcessAdmin};
use crate::hosts::{HostRegistry, SessionHosts};
use crate::paging::CursorCodec;
use crate::store::Store;

#[derive(Clone)]
pub struct ServeConfig {
    pub grpc_addr: SocketAddr,
    pub http_addr: SocketAddr,
    pub database_url: String,
    pub store: crate::store::StoreOptions,
    pub jwks: JwksConfig,
    pub jwt: JwtConfig,
    pub hosts: HostRegistry,
    pub backfill: BackfillConfig,
    /// How gateways' session feeds are followed.
    pub feed: FeedConfig,
    /// How long session events are kept.
    pub session_events: RetentionPolicy,
    /// REST options; its trusted proxies are the gRPC port's too.
    pub rest: gateway_rest::RestConfig,
    pub grpc_limits: GrpcLimits,
    pub http_limits: HttpLimits,
    /// Both ports over TLS when set.
    pub tls: Option<TlsFiles>,
    /// Failed credentials allowed per client address and minute (0: no limit).
    pub auth_failures_per_minute: u32,
    /// The longest a stop may take, start to exit.
    pub shutdown_timeout: Duration,
    /// Demo mode: the process signs its own tokens and serves this JWKS at
    /// `/demo/jwks.json`. Never set outside `serve --demo`.
    pub demo_jwks: Option<String>,
}

/// A started server. Dropping it does not stop it; call [`RunningServer::shutdown`].
pub struct RunningServer {
    pub grpc_addr: SocketAddr,
    pub http_addr: SocketAddr,
    shutdown: CancellationToken,
    failed: CancellationToken,
    listeners: JoinHandle<anyhow::Result<()>>,
    background: Vec<tokio::task::AbortHandle>,
    store: Store,
    backfills: Backfills,
    followers: TaskTracker,
    shutdown_timeout: Duration,
}

/// Runs both listeners until `shutdown`. If one ends first (an error, a
/// panic), the server is marked not ready and `failed` is cancelled.
fn supervise(
    grpc: JoinHandle<anyhow::Result<()>>,
    http: JoinHandle<anyhow::Result<()>>,
    ready: Arc<http::Readiness>,
    shutdown: CancellationToken,
    failed: CancellationToken,
) -> JoinHandle<anyhow::Result<()>> {
    let ended = |name: &'static str, joined: Result<anyhow::Result<()>, tokio::task::JoinError>| match joined {
        Ok(Ok(())) => anyhow::anyhow!("the {name} listener stopped"),
        Ok(Err(error)) => error.context(format!("the {name} listener failed")),
        Err(join) => anyhow::anyhow!("the {name} listener panicked: {join}"),
    };
    tokio::spawn(async move {
        let (mut grpc, mut http) = (grpc, http);
        let first = tokio::select! {
            joined = &mut grpc => (ended("gRPC", joined), http),
            joined = &mut http => (ended("HTTP", joined), grpc),
        };
        let (error, other) = first;
        if shutdown.is_cancelled() {
            // A requested stop: wait for the other listener too.
            return other.await.map_err(|e| anyhow::anyhow!("listener panicked: {e}")).and_then(|r| r);
        }
        ready.listeners_up.store(false, Ordering::Release);
        tracing::error!(error = format!("{error:#}"), "a listener died; stopping");
        failed.cancel();
        other.abort();
        Err(error)
    })
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
    let tls = config.tls.clone().map(tls::ServerTls::load).transpose().context("loading the TLS files")?.map(Arc::new);

    // Before anything records a metric.
    let metrics = crate::telemetry::install();
    crate::telemetry::register_series();
    let addrs = (grpc_addr, http_addr);
    let (store, http_listener) =
        waiting::open_store(&config, http_listener, tls.clone(), config.http_limits.clone(), addrs).await?;
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
    let hosts: Arc<dyn SessionHosts> = Arc::new(config.hosts.clone());
    let traces = Arc::new(crate::telemetry::traces::Handoffs::default());
    let backfills = Backfills::new(store.clone(), hosts.clone(), board, traces, config.backfill.clone());
    let (shutdown, failed) = (CancellationToken::new(), CancellationToken::new());
    // Every gateway's session feed, followed until shutdown.
    let gateways = Gateways::with_leases(store.feed_leases());
    let followers = TaskTracker::new();
    let wiring = feed::Followers {
        hosts: &hosts,
        store: &store,
        backfills: Some(backfills.clone()),
        gateways: &gateways,
        config: config.feed,
        lease: config.backfill.lease,
    };
    feed::follow_all(wiring, &followers, &shutdown);
    // Session events older than retention, or past a session's cap, pruned
    // in small batches (every replica prunes; each event goes once).
    followers.spawn(retention::run(store.clone(), config.session_events, shutdown.clone()));
    followers.close();

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
    if let Some(tls) = &tls {
        background.push(tls::reload_on_sighup(tls.clone())?);
    }
    let auth = Authenticator::new(
        JwtVerifier::new(config.jwt.clone(), jwks.clone()),
        ApiKeyVerifier::new(store.clone()),
        FailureLimiter::new(config.auth_failures_per_minute),
    );
    let gate = Gate::new(auth, config.rest.trusted_proxies.clone());
    let api = AdminApi::new(store.clone(), codec, backfills.clone(), gateways);
    let grpc_service = grpc::services(api.clone(), gate.clone()).await?;

    // REST calls the same AdminService in process: the same gate, typed
    // values, no encoding and no socket.
    let backend = Arc::new(InProcessAdmin::new(api, gate));
    let rest = gateway_rest::router(backend, config.rest.clone(), crate::telemetry::ObserveRestLayer);
    let ready = Arc::new(http::Readiness { store: store.clone(), jwks, listeners_up: AtomicBool::new(true) });
    let router = http::router(rest, ready.clone(), metrics, config.demo_jwks.clone());

    let grpc_task = tokio::spawn(grpc::serve(
        grpc_listener,
        grpc_service,
        tls.clone(),
        config.grpc_limits.clone(),
        shutdown.clone(),
    ));
    let http_task = tokio::spawn(http::serve(http_listener, router, tls, config.http_limits.clone(), shutdown.clone()));
    let listeners = supervise(grpc_task, http_task, ready, shutdown.clone(), failed.clone());
    Ok(RunningServer {
        grpc_addr,
        http_addr,
        shutdown,
        failed,
        listeners,
        background,
        store,
        backfills,
        followers,
        shutdown_timeout: config.shutdown_timeout,
    })
}

/// Serves `router` on `listener` with the HTTP port's limits (and TLS when
/// `tls` is set) until `shutdown`: for `wa-gateway rest`.
pub async fn serve_http_port(
    listener: TcpListener,
    router: axum::Router,
    tls: Option<TlsFiles>,
    limits: HttpLimits,
    shutdown: CancellationToken,
) -> anyhow::Result<()> {
    let tls = tls.map(tls::ServerTls::load).transpose().context("loading the TLS files")?.map(Arc::new);
    let _reload = tls.clone().map(tls::reload_on_sighup).transpose()?;
    http::serve(listener, router, tls, limits, shutdown).await
}

impl RunningServer {
    /// Resolves when a listener died on its own.
    pub fn failed(&self) -> CancellationToken {
        self.failed.clone()
    }

    /// Stops accepting, ends running jobs, lets calls finish, and closes the
    /// store, all within the shutdown timeout; whatever is still open then
    /// (a reflection or watch stream) is cut.
    pub async fn shutdown(self) -> anyhow::Result<()> {
        let deadline = tokio::time::Instant::now() + self.shutdown_timeout;
        let died = self.failed.is_cancelled();
        self.shutdown.cancel();
        // Running jobs stop first (they end `interrupted`, their staged rows
        // discarded), so their watchers see the end before connections close.
        self.backfills.shutdown(self.shutdown_timeout.mul_f32(0.6)).await;
        // Followers stop at the shutdown signal; a batch being written finishes.
        let _ = tokio::time::timeout_at(deadline, self.followers.wait()).await;
        for handle in &self.background {
            handle.abort();
        }
        let listeners = self.listeners;
        let abort = listeners.abort_handle();
        let result = match tokio::time::timeout_at(deadline, listeners).await {
            Ok(Ok(result)) => result,
            Ok(Err(join)) => Err(anyhow::anyhow!("listener supervisor panicked: {join}")),
            Err(_) => {
                abort.abort();
                tracing::warn!(timeout = ?self.shutdown_timeout, "connections still open at the shutdown timeout were cut");
                Ok(())
            }
        };
        let _ = tokio::time::timeout_at(deadline, self.store.close()).await;
        if died && result.is_ok() {
            anyhow::bail!("a listener died");
        }
        result
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_listener_that_dies_marks_the_server_not_ready_and_fails_it() {
        let dir = tempfile::tempdir().unwrap();
        let store = crate::store::open(dir.path().join("db").to_str().unwrap()).await.unwrap();
        let config = JwksConfig {
            url: "http://127.0.0.1:1/jwks".into(),
            default_refresh: Duration::from_secs(60),
            unknown_kid_cooldown: Duration::from_secs(1),
            fetch_timeout: Duration::from_secs(1),
            ca: None,
        };
        let jwks = Arc::new(JwksCache::new(config).unwrap());
        let ready = Arc::new(http::Readiness { store, jwks, listeners_up: AtomicBool::new(true) });
        let (shutdown, failed) = (CancellationToken::new(), CancellationToken::new());
        let grpc = tokio::spawn(async { Err(anyhow::anyhow!("accept failed for good")) });
        let http = tokio::spawn(std::future::pending());
        let supervisor = supervise(grpc, http, ready.clone(), shutdown, failed.clone());
        let error = supervisor.await.unwrap().unwrap_err();
        assert!(format!("{error:#}").contains("gRPC listener failed: accept failed for good"), "{error:#}");
        assert!(failed.is_cancelled());
        assert!(!ready.listeners_up.load(Ordering::Acquire), "/readyz reports the dead listener");
    }
}
