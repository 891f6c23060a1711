use std::net::SocketAddr;
use std::path::PathBuf;

use anyhow::Context;
use std::time::Duration;

use clap::Args;

use crate::auth::{JwksConfig, JwtConfig};
use crate::backfill::{BackfillConfig, RetryPolicy};
use crate::hosts::HostRegistry;
use crate::server::{self, ServeConfig};
use crate::tls::ClientTls;
use wa_gateway_core::events::retention::RetentionPolicy;
use wa_gateway_core::feed::FeedConfig;

#[derive(Args, Debug)]
pub struct ServeArgs {
    /// Address of the gRPC server.
    #[arg(long, env = "WA_GATEWAY_GRPC_ADDR", default_value = "127.0.0.1:50051")]
    pub grpc_addr: SocketAddr,

    /// Address of the HTTP server (REST, the console at /console/, health, metrics).
    #[arg(long, env = "WA_GATEWAY_HTTP_ADDR", default_value = "127.0.0.1:8080")]
    pub http_addr: SocketAddr,

    /// Run a self-contained demo: throwaway database, seeded sessions, a
    /// simulated session host, an ephemeral signing key, printed credentials.
    #[arg(long)]
    pub demo: bool,

    /// URL of the frontend's JWKS (public keys of login JWTs). Required
    /// unless --demo.
    #[arg(long, env = "WA_GATEWAY_JWKS_URL", required_unless_present = "demo")]
    pub jwks_url: Option<String>,

    /// Required `iss` of login JWTs (not checked when unset).
    #[arg(long, env = "WA_GATEWAY_JWT_ISSUER")]
    pub jwt_issuer: Option<String>,

    /// Required `aud` of login JWTs (not checked when unset).
    #[arg(long, env = "WA_GATEWAY_JWT_AUDIENCE")]
    pub jwt_audience: Option<String>,

    /// Clock-skew allowance for exp/nbf/iat, in seconds.
    #[arg(long, env = "WA_GATEWAY_JWT_LEEWAY_SECS", default_value_t = 60, value_parser = clap::value_parser!(u64).range(0..=3600))]
    pub jwt_leeway_secs: u64,

    /// Claim holding the user's organization.
    #[arg(long, env = "WA_GATEWAY_JWT_ORG_CLAIM", default_value = "org_id")]
    pub jwt_org_claim: String,

    /// Claim holding the user's organization role.
    #[arg(long, env = "WA_GATEWAY_JWT_ROLE_CLAIM", default_value = "role")]
    pub jwt_role_claim: String,

    /// Claim holding the platform role (`super_admin`).
    #[arg(long, env = "WA_GATEWAY_JWT_PLATFORM_ROLE_CLAIM", default_value = "platform_role")]
    pub jwt_platform_role_claim: String,

    /// Accept a plain http:// --jwks-url on a non-loopback host (signing keys
    /// fetched without TLS can be swapped in transit).
    #[arg(long, env = "WA_GATEWAY_JWKS_ALLOW_HTTP")]
    pub jwks_allow_http: bool,

    /// CA bundle (PEM) trusted for the JWKS endpoint, besides the WebPKI roots.
    #[arg(long, env = "WA_GATEWAY_JWKS_CA", value_name = "PEM")]
    pub jwks_ca: Option<PathBuf>,

    /// JWKS refresh interval when the response has no Cache-Control max-age.
    #[arg(long, env = "WA_GATEWAY_JWKS_REFRESH_SECS", default_value_t = 300, value_parser = clap::value_parser!(u64).range(10..=86400))]
    pub jwks_refresh_secs: u64,

    /// Minimum seconds between JWKS refetches caused by unknown key ids. A
    /// token naming a new key waits for the next refetch rather than failing,
    /// so a rotated key is usable within this time however many unknown ids
    /// came before.
    #[arg(long, env = "WA_GATEWAY_JWKS_COOLDOWN_SECS", default_value_t = 1, value_parser = clap::value_parser!(u64).range(1..=3600))]
    pub jwks_cooldown_secs: u64,

    /// Session host of a gateway, as GATEWAY_ID=URL (repeatable; the env
    /// variable takes a comma-separated list).
    #[arg(long = "host", env = "WA_GATEWAY_HOSTS", value_delimiter = ',', value_name = "GATEWAY_ID=URL")]
    pub hosts: Vec<String>,

    /// Backfill jobs running at once; further jobs wait as `queued`.
    #[arg(long, env = "WA_GATEWAY_BACKFILL_CONCURRENCY", default_value_t = 4, value_parser = clap::value_parser!(u16).range(1..=64))]
    pub backfill_concurrency: u16,

    /// A session-host stream silent for this many seconds fails its job.
    #[arg(long, env = "WA_GATEWAY_HOST_STALL_TIMEOUT_SECS", default_value_t = 30, value_parser = clap::value_parser!(u64).range(1..=3600))]
    pub host_stall_timeout_secs: u64,

    /// A backfill still running this many seconds after it started running
    /// fails with an error saying it timed out, and frees the session.
    #[arg(long, env = "WA_GATEWAY_BACKFILL_TIMEOUT_SECS", default_value_t = 1800, value_parser = clap::value_parser!(u64).range(1..=86400))]
    pub backfill_timeout_secs: u64,

    /// A session feed whose opening snapshot has not completed after this
    /// many seconds is dropped and opened again (nothing is removed on its account).
    #[arg(long, env = "WA_GATEWAY_FEED_SNAPSHOT_TIMEOUT_SECS", default_value_t = 120, value_parser = clap::value_parser!(u64).range(1..=3600))]
    pub feed_snapshot_timeout_secs: u64,

    /// Most sessions a host's opening snapshot may name. A snapshot past it
    /// ends the feed with an error saying so, and removes nothing: the
    /// memory a snapshot takes stays bounded whatever a host sends.
    #[arg(long, env = "WA_GATEWAY_FEED_SNAPSHOT_MAX_SESSIONS", default_value_t = 2_000_000, value_parser = clap::value_parser!(u64).range(1..=100_000_000))]
    pub feed_snapshot_max_sessions: u64,

    /// Days a session event is kept (each session also keeps at most its
    /// newest 1,000).
    #[arg(long, env = "WA_GATEWAY_SESSION_EVENTS_RETENTION_DAYS", default_value_t = 30, value_parser = clap::value_parser!(u64).range(1..=3650))]
    pub session_events_retention_days: u64,

    /// Seconds between rounds of pruning session events (a round deletes in
    /// batches of 2,000 until nothing is left to prune).
    #[arg(long, env = "WA_GATEWAY_SESSION_EVENTS_PRUNE_EVERY_SECS", default_value_t = 60, value_parser = clap::value_parser!(u64).range(1..=3600))]
    pub session_events_prune_every_secs: u64,

    /// Longest wait, in seconds, before a broken session feed is opened again
    /// (waits start at half a second and double, with jitter).
    #[arg(long, env = "WA_GATEWAY_FEED_BACKOFF_MAX_SECS", default_value_t = 30, value_parser = clap::value_parser!(u64).range(1..=600))]
    pub feed_backoff_max_secs: u64,

    /// PostgreSQL: seconds one statement may run, a wait on a lock included,
    /// before the database cancels it and the call answers 503. Statements
    /// over a whole session's stored data (publishing a backfill, removing
    /// sessions, sweeps) and migrations are exempt. 0: no limit.
    #[arg(long, env = "WA_GATEWAY_DB_STATEMENT_TIMEOUT_SECS", default_value_t = 30, value_parser = clap::value_parser!(u64).range(0..=3600))]
    pub db_statement_timeout_secs: u64,

    /// Cluster mode (PostgreSQL): seconds a replica's hold on a running job
    /// lasts without renewal. A replica that dies has its jobs failed
    /// (`interrupted`) within this plus a quarter of it.
    #[arg(long, env = "WA_GATEWAY_BACKFILL_LEASE_SECS", default_value_t = 20, value_parser = clap::value_parser!(u64).range(2..=300))]
    pub backfill_lease_secs: u64,

    /// CA bundle (PEM) trusted for https:// session hosts instead of the
    /// WebPKI roots.
    #[arg(long, env = "WA_GATEWAY_HOST_CA", value_name = "PEM")]
    pub host_ca: Option<PathBuf>,

    /// Client certificate (PEM) presented to https:// session hosts (mTLS);
    /// needs --host-key.
    #[arg(long, env = "WA_GATEWAY_HOST_CERT", value_name = "PEM", requires = "host_key")]
    pub host_cert: Option<PathBuf>,

    /// Private key (PEM) of --host-cert.
    #[arg(long, env = "WA_GATEWAY_HOST_KEY", value_name = "PEM", requires = "host_cert")]
    pub host_key: Option<PathBuf>,

    /// A browser origin allowed by CORS (repeatable; env: comma-separated).
    /// None by default: no CORS headers.
    #[arg(long = "cors-origin", env = "WA_GATEWAY_CORS_ORIGINS", value_delimiter = ',', value_name = "ORIGIN")]
    pub cors_origins: Vec<String>,

    /// OTLP/gRPC collector to export traces to (http:// or https://, e.g.
    /// http://otel-collector:4317). Off when unset. Export never holds up a
    /// request: spans that cannot be sent are dropped and counted in
    /// wa_gateway_trace_spans_dropped_total.
    #[arg(long, env = "WA_GATEWAY_OTLP_ENDPOINT", value_name = "URL", value_parser = otlp_endpoint)]
    pub otlp_endpoint: Option<String>,

    /// Share of new traces recorded, 0.0 to 1.0. A caller's `traceparent`
    /// decides for the traces it continues.
    #[arg(long, env = "WA_GATEWAY_OTLP_SAMPLE_RATIO", default_value_t = 1.0, value_parser = sample_ratio, requires = "otlp_endpoint")]
    pub otlp_sample_ratio: f64,

    #[command(flatten)]
    pub listen: super::listen::ListenArgs,
}

impl ServeArgs {
    /// Trace export, when asked for.
    pub fn traces(&self) -> Option<crate::telemetry::traces::TraceConfig> {
        let endpoint = self.otlp_endpoint.clone()?;
        Some(crate::telemetry::traces::TraceConfig { endpoint, sample_ratio: self.otlp_sample_ratio })
    }
}

fn otlp_endpoint(raw: &str) -> Result<String, String> {
    let uri: http::Uri = raw.parse().map_err(|e| format!("not a URL: {e}"))?;
    match (uri.scheme_str(), uri.host()) {
        (Some("http" | "https"), Some(host)) if !host.is_empty() => Ok(raw.to_owned()),
        _ => Err("expected http://HOST:PORT or https://HOST:PORT".into()),
    }
}

fn sample_ratio(raw: &str) -> Result<f64, String> {
    match raw.parse::<f64>() {
        Ok(ratio) if (0.0..=1.0).contains(&ratio) => Ok(ratio),
        _ => Err("expected a number from 0.0 to 1.0".into()),
    }
}

/// The JWKS URL must be https, except on loopback or when allowed.
fn check_jwks_url(url: &str, allow_http: bool) -> anyhow::Result<()> {
    let parsed = reqwest::Url::parse(url).map_err(|e| anyhow::anyhow!("--jwks-url: {e}"))?;
    let host = parsed.host_str().unwrap_or("").trim_start_matches('[').trim_end_matches(']');
    let loopback = host == "localhost" || host.parse::<std::net::IpAddr>().is_ok_and(|ip| ip.is_loopback());
    match parsed.scheme() {
        "https" => Ok(()),
        "http" if loopback || allow_http => Ok(()),
        "http" => anyhow::bail!(
            "--jwks-url must be https:// (signing keys fetched over plain http can be replaced in transit); \
             pass --jwks-allow-http to accept it anyway"
        ),
        _ => anyhow::bail!("--jwks-url must be an https:// URL"),
    }
}

/// Parses `--cors-origin` values into header values.
pub fn cors_origins(raw: &[String]) -> anyhow::Result<Vec<http::HeaderValue>> {
    raw.iter()
        .map(|o| {
            let url = reqwest::Url::parse(o).map_err(|e| anyhow::anyhow!("--cors-origin {o:?}: {e}"))?;
            anyhow::ensure!(matches!(url.scheme(), "http" | "https"), "--cors-origin {o:?}: must be http(s)");
            Ok(http::HeaderValue::from_str(o.trim_end_matches('/'))?)
        })
        .collect()
}

/// Resolves on SIGTERM or SIGINT (Ctrl-C). The handlers are installed when
/// this is called, not when the future is first polled: call it before the
/// ports open, so a signal that arrives while the server is still starting
/// stops it cleanly instead of killing it with the default disposition.
pub fn shutdown_signal() -> impl std::future::Future<Output = ()> + Send + 'static {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        let listen = |kind: SignalKind, name: &str| match signal(kind) {
            Ok(stream) => Some(stream),
            Err(error) => {
                tracing::warn!(%error, "cannot listen for {name}");
                None
            }
        };
        let term = listen(SignalKind::terminate(), "SIGTERM");
        let interrupt = listen(SignalKind::interrupt(), "SIGINT");
        async move {
            let wait = |stream: Option<tokio::signal::unix::Signal>| async move {
                match stream {
                    Some(mut stream) => {
                        stream.recv().await;
                    }
                    None => std::future::pending().await,
                }
            };
            tokio::select! {
                () = wait(term) => {}
                () = wait(interrupt) => {}
            }
        }
    }
    #[cfg(not(unix))]
    async {
        let _ = tokio::signal::ctrl_c().await;
    }
}

pub async fn run(database_url: &str, mut store: crate::store::StoreOptions, args: ServeArgs) -> anyhow::Result<()> {
    // A transaction of this server never waits on anything but the database,
    // so one idle for half a lease belongs to a replica cut off from it: the
    // server ends it, and its locks no longer stop other replicas from
    // reaping its jobs or taking its gateways over.
    let lease = Duration::from_secs(args.backfill_lease_secs);
    store.idle_in_transaction = Some((lease / 2).max(Duration::from_secs(1)));
    store.statement_timeout =
        (args.db_statement_timeout_secs > 0).then(|| Duration::from_secs(args.db_statement_timeout_secs));
    let stop_requested = shutdown_signal();
    tokio::pin!(stop_requested);
    let demo = if args.demo { Some(super::demo::Demo::prepare().await?) } else { None };
    let jwks_url = match (&demo, &args.jwks_url) {
        (Some(_), _) => "http://127.0.0.1/unused".to_owned(),
        (None, Some(url)) => {
            check_jwks_url(url, args.jwks_allow_http)?;
            url.clone()
        }
        (None, None) => anyhow::bail!("--jwks-url is required (or run --demo)"),
    };
    let hosts = match &demo {
        Some(demo) => demo.hosts.clone(),
        None => {
            let tls = ClientTls::load(args.host_ca.as_deref(), args.host_cert.as_deref(), args.host_key.as_deref())?;
            HostRegistry::from_specs(&args.hosts, &tls)?
        }
    };
    let config = ServeConfig {
        grpc_addr: args.grpc_addr,
        http_addr: args.http_addr,
        database_url: demo.as_ref().map_or_else(|| database_url.to_owned(), |d| d.database_url.clone()),
        store,
        jwks: JwksConfig {
            url: jwks_url,
            default_refresh: Duration::from_secs(args.jwks_refresh_secs),
            unknown_kid_cooldown: Duration::from_secs(args.jwks_cooldown_secs),
            fetch_timeout: Duration::from_secs(10),
            ca: args.jwks_ca.as_deref().map(std::fs::read).transpose().context("reading --jwks-ca")?,
        },
        jwt: JwtConfig {
            issuer: args.jwt_issuer,
            audience: args.jwt_audience,
            leeway_secs: args.jwt_leeway_secs,
            org_claim: args.jwt_org_claim,
            role_claim: args.jwt_role_claim,
            platform_role_claim: args.jwt_platform_role_claim,
        },
        hosts,
        rest: gateway_rest::RestConfig {
            cors_origins: cors_origins(&args.cors_origins)?,
            trusted_proxies: args.listen.trusted_proxies()?,
            ..Default::default()
        },
        grpc_limits: args.listen.grpc_limits(),
        http_limits: args.listen.http_limits(),
        tls: args.listen.tls(),
        auth_failures_per_minute: args.listen.auth_failures_per_minute,
        shutdown_timeout: Duration::from_secs(args.listen.shutdown_timeout_secs),
        backfill: BackfillConfig {
            concurrency: usize::from(args.backfill_concurrency),
            stall_timeout: Duration::from_secs(args.host_stall_timeout_secs),
            deadline: Duration::from_secs(args.backfill_timeout_secs),
            retry: RetryPolicy::default(),
            lease: Duration::from_secs(args.backfill_lease_secs),
        },
        feed: FeedConfig {
            snapshot_stall: Duration::from_secs(args.feed_snapshot_timeout_secs),
            snapshot_max: usize::try_from(args.feed_snapshot_max_sessions).unwrap_or(usize::MAX),
            backoff_max: Duration::from_secs(args.feed_backoff_max_secs),
            ..FeedConfig::default()
        },
        session_events: RetentionPolicy {
            max_age: Duration::from_secs(args.session_events_retention_days * 86_400),
            every: Duration::from_secs(args.session_events_prune_every_secs),
            ..RetentionPolicy::default()
        },
        demo_jwks: demo.as_ref().map(|d| d.jwks_json.clone()),
    };
    let mut config_warnings = Vec::new();
    if demo.is_none() && config.jwt.issuer.is_none() && config.jwt.audience.is_none() {
        config_warnings.push(
            "neither --jwt-issuer nor --jwt-audience is set: any token the JWKS keys signed is accepted, \
             whoever it was issued for",
        );
    }
    // A stop asked for while the database is still awaited ends the wait.
    let running = tokio::select! {
        running = server::start(config) => running?,
        () = &mut stop_requested => {
            tracing::info!("stopped before the database answered");
            return Ok(());
        }
    };
    // Tests and scripts read this line to find the bound ports.
    println!("wa-gateway listening: grpc={} http={}", running.grpc_addr, running.http_addr);
    tracing::info!(grpc = %running.grpc_addr, http = %running.http_addr, "serving");
    if let Some(demo) = &demo {
        tracing::warn!("DEMO MODE: ephemeral keys and a throwaway database; not for production");
        println!("{}", demo.banner(running.grpc_addr, running.http_addr));
    }
    for warning in &config_warnings {
        tracing::warn!("{warning}");
    }
    let failed = running.failed();
    tokio::select! {
        () = &mut stop_requested => tracing::info!("shutting down"),
        () = failed.cancelled() => {}
    }
    let result = running.shutdown().await;
    if let Some(demo) = demo {
        demo.cleanup();
    }
    result
}
