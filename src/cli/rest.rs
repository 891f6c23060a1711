//! `wa-gateway rest`: the REST layer alone, in front of a remote `serve`,
//! on the same hardened HTTP listener as `serve`'s.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context;
use clap::Args;

use crate::server::{HttpLimits, TlsFiles};
use crate::tls::ClientTls;

#[derive(Args, Debug)]
pub struct RestArgs {
    /// gRPC address of the wa-gateway to front, e.g. http://10.0.0.5:50051
    /// or https://gateway.internal:50051.
    #[arg(long, env = "WA_GATEWAY_UPSTREAM")]
    pub upstream: String,

    /// CA bundle (PEM) trusted for an https:// upstream instead of the WebPKI roots.
    #[arg(long, env = "WA_GATEWAY_UPSTREAM_CA", value_name = "PEM")]
    pub ca: Option<PathBuf>,

    /// Client certificate (PEM) for an upstream that requires mTLS; needs --key.
    #[arg(long, env = "WA_GATEWAY_UPSTREAM_CERT", value_name = "PEM", requires = "key")]
    pub cert: Option<PathBuf>,

    /// Private key (PEM) of --cert.
    #[arg(long, env = "WA_GATEWAY_UPSTREAM_KEY", value_name = "PEM", requires = "cert")]
    pub key: Option<PathBuf>,

    /// Address of the HTTP server.
    #[arg(long, env = "WA_GATEWAY_HTTP_ADDR", default_value = "127.0.0.1:8080")]
    pub http_addr: SocketAddr,

    /// Serve over TLS with this certificate chain (PEM); needs --tls-key.
    #[arg(long, env = "WA_GATEWAY_TLS_CERT", value_name = "PEM", requires = "tls_key")]
    pub tls_cert: Option<PathBuf>,

    /// Private key (PEM) of --tls-cert.
    #[arg(long, env = "WA_GATEWAY_TLS_KEY", value_name = "PEM", requires = "tls_cert")]
    pub tls_key: Option<PathBuf>,

    /// A proxy (IP or CIDR) whose X-Forwarded-For names the client
    /// (repeatable). The upstream sees this server as its client's proxy:
    /// list this server in the upstream's --trusted-proxy.
    #[arg(long = "trusted-proxy", env = "WA_GATEWAY_TRUSTED_PROXIES", value_delimiter = ',', value_name = "CIDR")]
    pub trusted_proxies: Vec<String>,

    /// A browser origin allowed by CORS (repeatable; env: comma-separated).
    #[arg(long = "cors-origin", env = "WA_GATEWAY_CORS_ORIGINS", value_delimiter = ',', value_name = "ORIGIN")]
    pub cors_origins: Vec<String>,
}

pub async fn run(args: RestArgs) -> anyhow::Result<()> {
    let stop_requested = super::serve::shutdown_signal();
    let tls = ClientTls::load(args.ca.as_deref(), args.cert.as_deref(), args.key.as_deref())?;
    let channel = tls
        .endpoint(&args.upstream)
        .with_context(|| format!("--upstream {:?}", args.upstream))?
        .http2_keep_alive_interval(Duration::from_secs(30))
        .keep_alive_timeout(Duration::from_secs(10))
        .connect_lazy();
    let config = gateway_rest::RestConfig {
        cors_origins: super::serve::cors_origins(&args.cors_origins)?,
        trusted_proxies: gateway_rest::TrustedProxies::parse(&args.trusted_proxies).map_err(anyhow::Error::msg)?,
        ..Default::default()
    };
    let router = gateway_rest::router(gateway_rest::remote(channel), config, tower::layer::util::Identity::new())
        .route("/healthz", axum::routing::get(|| async { "ok\n" }));
    let listener =
        tokio::net::TcpListener::bind(args.http_addr).await.with_context(|| format!("binding {}", args.http_addr))?;
    let addr = listener.local_addr()?;
    println!("wa-gateway rest listening: http={addr} upstream={}", args.upstream);
    let listener_tls = match (args.tls_cert, args.tls_key) {
        (Some(cert), Some(key)) => Some(TlsFiles { cert, key, client_ca: None }),
        _ => None,
    };
    let limits = HttpLimits {
        header_timeout: Duration::from_secs(10),
        body_timeout: Duration::from_secs(30),
        max_connections: 4096,
    };
    let shutdown = tokio_util::sync::CancellationToken::new();
    let stop = shutdown.clone();
    tokio::spawn(async move {
        stop_requested.await;
        stop.cancel();
    });
    crate::server::serve_http_port(listener, router, listener_tls, limits, shutdown).await
}
