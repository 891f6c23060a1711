use std::net::SocketAddr;
use std::time::Duration;

use anyhow::Context;
use clap::Args;

#[derive(Args, Debug)]
pub struct RestArgs {
    /// gRPC address of the wa-gateway to front, e.g. http://10.0.0.5:50051.
    #[arg(long, env = "WA_GATEWAY_UPSTREAM")]
    pub upstream: String,

    /// Address of the HTTP server.
    #[arg(long, env = "WA_GATEWAY_HTTP_ADDR", default_value = "127.0.0.1:8080")]
    pub http_addr: SocketAddr,

    /// A browser origin allowed by CORS (repeatable; env: comma-separated).
    #[arg(long = "cors-origin", env = "WA_GATEWAY_CORS_ORIGINS", value_delimiter = ',', value_name = "ORIGIN")]
    pub cors_origins: Vec<String>,
}

pub async fn run(args: RestArgs) -> anyhow::Result<()> {
    let channel = tonic::transport::Endpoint::from_shared(args.upstream.clone())
        .with_context(|| format!("--upstream {:?}", args.upstream))?
        .connect_timeout(Duration::from_secs(5))
        .http2_keep_alive_interval(Duration::from_secs(30))
        .keep_alive_timeout(Duration::from_secs(10))
        .connect_lazy();
    let config = gateway_rest::RestConfig {
        cors_origins: super::serve::cors_origins(&args.cors_origins)?,
        ..Default::default()
    };
    let router = gateway_rest::router(gateway_rest::client(gateway_rest::remote(channel)), config)
        .route("/healthz", axum::routing::get(|| async { "ok\n" }));
    let listener =
        tokio::net::TcpListener::bind(args.http_addr).await.with_context(|| format!("binding {}", args.http_addr))?;
    let addr = listener.local_addr()?;
    println!("wa-gateway rest listening: http={addr} upstream={}", args.upstream);
    axum::serve(listener, router)
        .with_graceful_shutdown(super::serve::shutdown_signal())
        .await
        .context("REST server failed")
}
