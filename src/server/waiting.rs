//! A replica whose database does not answer yet (PostgreSQL down when
//! `serve` starts, or restarting) starts anyway, unready: its HTTP port
//! answers `/healthz` 200 (the process is alive; do not restart it) and
//! everything else, `/readyz` included, 503 in the error envelope, while it
//! retries the database with capped backoff. It never crash-loops on an
//! outage; a wrong URL, password or database still fails at once.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use axum::routing::get;
use gateway_rest::error::ApiError;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use super::ServeConfig;
use super::http::{self, HttpLimits};
use super::tls::ServerTls;
use crate::store::{Store, StoreError, redact_url};

const FIRST_RETRY: Duration = Duration::from_millis(500);
const LONGEST_RETRY: Duration = Duration::from_secs(10);

/// The HTTP port while the database does not answer.
fn unready() -> axum::Router {
    let refuse = || async {
        ApiError::new(
            ::http::StatusCode::SERVICE_UNAVAILABLE,
            "unavailable",
            "the database does not answer yet; this replica keeps trying and serves once it does",
        )
    };
    axum::Router::new().route("/healthz", get(|| async { "ok\n" })).fallback(refuse)
}

/// Two listeners on one socket: one serves the unready port while the
/// other waits for the real server.
fn twin(listener: TcpListener) -> std::io::Result<(TcpListener, TcpListener)> {
    let socket = listener.into_std()?;
    let other = socket.try_clone()?;
    Ok((TcpListener::from_std(socket)?, TcpListener::from_std(other)?))
}

/// Opens (and migrates) the store, waiting out an unreachable database.
pub(super) async fn open_store(
    config: &ServeConfig,
    listener: TcpListener,
    tls: Option<Arc<ServerTls>>,
    limits: HttpLimits,
    (grpc_addr, http_addr): (SocketAddr, SocketAddr),
) -> anyhow::Result<(Store, TcpListener)> {
    let shown = redact_url(&config.database_url);
    let open = || crate::store::open_with(&config.database_url, config.store);
    // A SQLite file is there or not: nothing to wait for.
    let remote = config.database_url.starts_with("postgres://") || config.database_url.starts_with("postgresql://");
    let error = match open().await {
        Ok(store) => return Ok((store, listener)),
        Err(error @ StoreError::Unavailable(_)) if remote => error,
        Err(error) => return Err(error).with_context(|| format!("opening database {shown}")),
    };
    // Scripts and tests find the ports on this line while it waits.
    println!("wa-gateway waiting for the database: grpc={grpc_addr} http={http_addr}");
    metrics::gauge!("wa_gateway_ready").set(0.0);
    let (listener, serving) = twin(listener).context("serving the HTTP port while the database is down")?;
    let stop = CancellationToken::new();
    let _stop_serving = stop.clone().drop_guard();
    tokio::spawn(http::serve(serving, unready(), tls, limits, stop));
    let mut wait = FIRST_RETRY;
    tracing::warn!(database = %shown, %error, retry_in = ?wait, "the database does not answer; not ready, retrying");
    loop {
        tokio::time::sleep(wait).await;
        match open().await {
            Ok(store) => {
                tracing::info!(database = %shown, "the database answers; starting");
                return Ok((store, listener));
            }
            Err(error @ StoreError::Unavailable(_)) => {
                wait = (wait * 2).min(LONGEST_RETRY);
                tracing::warn!(database = %shown, %error, retry_in = ?wait, "the database does not answer; not ready, retrying");
            }
            Err(error) => return Err(error).with_context(|| format!("opening database {shown}")),
        }
    }
}
