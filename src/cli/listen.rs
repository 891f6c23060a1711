//! `serve` flags for the two listening ports: TLS, connection limits,
//! trusted proxies, the failed-credential budget and the stop's bound.

use std::path::PathBuf;
use std::time::Duration;

use clap::Args;

use crate::server::{GrpcLimits, HttpLimits, TlsFiles};

#[derive(Args, Debug)]
pub struct ListenArgs {
    /// Certificate chain (PEM): serve both ports over TLS (needs --tls-key).
    /// Reloaded from disk on SIGHUP.
    #[arg(long, env = "WA_GATEWAY_TLS_CERT", value_name = "PEM", requires = "tls_key")]
    pub tls_cert: Option<PathBuf>,

    /// Private key (PEM) of --tls-cert.
    #[arg(long, env = "WA_GATEWAY_TLS_KEY", value_name = "PEM", requires = "tls_cert")]
    pub tls_key: Option<PathBuf>,

    /// CA bundle (PEM): gRPC clients must present a certificate it signed
    /// (mTLS). Needs --tls-cert.
    #[arg(long, env = "WA_GATEWAY_TLS_CLIENT_CA", value_name = "PEM", requires = "tls_cert")]
    pub tls_client_ca: Option<PathBuf>,

    /// A proxy (IP or CIDR) whose X-Forwarded-For names the client, for
    /// per-client limits (repeatable; env: comma-separated). None by default:
    /// the connection's peer is the client.
    #[arg(long = "trusted-proxy", env = "WA_GATEWAY_TRUSTED_PROXIES", value_delimiter = ',', value_name = "CIDR")]
    pub trusted_proxies: Vec<String>,

    /// Failed credentials allowed per client address per minute; past it,
    /// 429 / RESOURCE_EXHAUSTED until the budget refills. 0 turns the limit
    /// off. Credentials already verified are never limited.
    #[arg(long, env = "WA_GATEWAY_AUTH_FAILURES_PER_MINUTE", default_value_t = 100)]
    pub auth_failures_per_minute: u32,

    /// Concurrent streams per gRPC connection (advertised in SETTINGS).
    #[arg(long, env = "WA_GATEWAY_GRPC_MAX_STREAMS", default_value_t = 100, value_parser = clap::value_parser!(u32).range(1..=10_000))]
    pub grpc_max_streams: u32,

    /// Deadline of every gRPC request handler, in seconds (a stream's
    /// messages are not counted once it has started).
    #[arg(long, env = "WA_GATEWAY_GRPC_REQUEST_TIMEOUT_SECS", default_value_t = 60, value_parser = clap::value_parser!(u64).range(1..=3600))]
    pub grpc_request_timeout_secs: u64,

    /// A gRPC connection older than this is asked to go away (GOAWAY) and
    /// closed after the same time again, so clients spread over replicas.
    #[arg(long, env = "WA_GATEWAY_GRPC_MAX_CONNECTION_AGE_SECS", default_value_t = 1800, value_parser = clap::value_parser!(u64).range(10..=86_400))]
    pub grpc_max_connection_age_secs: u64,

    /// Seconds for a client to send a request head on the HTTP port; a
    /// keep-alive connection idle this long is closed too.
    #[arg(long, env = "WA_GATEWAY_HTTP_HEADER_TIMEOUT_SECS", default_value_t = 10, value_parser = clap::value_parser!(u64).range(1..=30))]
    pub http_header_timeout_secs: u64,

    /// Seconds for a client to send a request body on the HTTP port.
    #[arg(long, env = "WA_GATEWAY_HTTP_BODY_TIMEOUT_SECS", default_value_t = 30, value_parser = clap::value_parser!(u64).range(1..=600))]
    pub http_body_timeout_secs: u64,

    /// Open connections on the HTTP port; beyond this, new ones wait.
    #[arg(long, env = "WA_GATEWAY_HTTP_MAX_CONNECTIONS", default_value_t = 4096, value_parser = clap::value_parser!(u32).range(1..=1_000_000))]
    pub http_max_connections: u32,

    /// The longest a stop (SIGTERM/SIGINT) may take; open streams are cut then.
    #[arg(long, env = "WA_GATEWAY_SHUTDOWN_TIMEOUT_SECS", default_value_t = 25, value_parser = clap::value_parser!(u64).range(1..=600))]
    pub shutdown_timeout_secs: u64,
}

impl ListenArgs {
    pub fn tls(&self) -> Option<TlsFiles> {
        let (cert, key) = (self.tls_cert.clone()?, self.tls_key.clone()?);
        Some(TlsFiles { cert, key, client_ca: self.tls_client_ca.clone() })
    }

    pub fn trusted_proxies(&self) -> anyhow::Result<gateway_rest::TrustedProxies> {
        gateway_rest::TrustedProxies::parse(&self.trusted_proxies).map_err(anyhow::Error::msg)
    }

    pub fn grpc_limits(&self) -> GrpcLimits {
        GrpcLimits {
            max_streams: self.grpc_max_streams,
            request_timeout: Duration::from_secs(self.grpc_request_timeout_secs),
            max_connection_age: Duration::from_secs(self.grpc_max_connection_age_secs),
        }
    }

    pub fn http_limits(&self) -> HttpLimits {
        HttpLimits {
            header_timeout: Duration::from_secs(self.http_header_timeout_secs),
            body_timeout: Duration::from_secs(self.http_body_timeout_secs),
            max_connections: self.http_max_connections as usize,
        }
    }
}
