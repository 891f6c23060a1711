use std::net::SocketAddr;
use std::time::Duration;

use anyhow::Context;
use clap::Args;
use tokio_stream::wrappers::TcpListenerStream;

use crate::hosts::sim::{SimConfig, SimHost};
use crate::hosts::sim_feed::SimFeed;
use crate::proto::host::session_host_service_server::SessionHostServiceServer;

#[derive(Args, Debug)]
pub struct HostSimArgs {
    /// Address to listen on (port 0 picks a free port).
    #[arg(long, env = "WA_GATEWAY_HOST_SIM_ADDR", default_value = "127.0.0.1:50061")]
    pub addr: SocketAddr,
    /// Contacts per session.
    #[arg(long, default_value_t = 200)]
    pub contacts: usize,
    /// Joined groups per session.
    #[arg(long, default_value_t = 20)]
    pub groups: usize,
    /// Participants per group.
    #[arg(long, default_value_t = 10)]
    pub members_per_group: usize,
    /// Items per streamed batch (at most 5,000, the contract's per-message limit).
    #[arg(long, default_value_t = 100, value_parser = clap::value_parser!(u32).range(1..=5_000))]
    pub batch_size: u32,
    /// Pause before each batch, in milliseconds.
    #[arg(long, default_value_t = 0)]
    pub delay_ms: u64,
    /// Abort each stream with UNAVAILABLE after this many items.
    #[arg(long)]
    pub fail_after: Option<usize>,
    /// A session answered with FAILED_PRECONDITION `session not connected` (repeatable).
    #[arg(long = "disconnected", value_name = "SESSION_ID")]
    pub disconnected: Vec<String>,
    /// Hold only this session (repeatable); others answer NOT_FOUND. By
    /// default every session id is held.
    #[arg(long = "session", value_name = "SESSION_ID")]
    pub sessions: Vec<String>,
    /// The sessions this host reports on WatchSessions: a JSON Lines file in
    /// the `sessions import` format. Without it WatchSessions answers
    /// UNIMPLEMENTED (an empty snapshot would remove every session of the gateway).
    #[arg(long = "sessions", value_name = "FILE")]
    pub sessions_file: Option<std::path::PathBuf>,
    /// Status changes per second on the feed (a working session waits for a
    /// QR scan, later it works again); 0 sends none.
    #[arg(long, default_value_t = 0.0, requires = "sessions_file")]
    pub churn_per_sec: f64,
}

/// The sessions of a JSON Lines file in the import format, as a host reports them.
fn read_sessions(path: &std::path::Path) -> anyhow::Result<Vec<crate::proto::host::HostedSession>> {
    let text = std::fs::read(path).with_context(|| format!("reading {}", path.display()))?;
    let now = crate::time::now_millis();
    let mut sessions = Vec::new();
    for (n, line) in text.split(|b| *b == b'\n').enumerate() {
        if line.iter().all(u8::is_ascii_whitespace) {
            continue;
        }
        let parsed = crate::sessions::parse_line(line, now)
            .map_err(|e| anyhow::anyhow!("{}: line {}: {e}", path.display(), n + 1))?;
        sessions.push(crate::hosts::sim_feed::hosted(&parsed.session));
    }
    Ok(sessions)
}

pub async fn run(args: HostSimArgs) -> anyhow::Result<()> {
    let stop_requested = super::serve::shutdown_signal();
    let config = SimConfig {
        contacts: args.contacts,
        groups: args.groups,
        members_per_group: args.members_per_group,
        batch_size: args.batch_size as usize,
        delay: Duration::from_millis(args.delay_ms),
        fail_after: args.fail_after,
        disconnected: args.disconnected.into_iter().collect(),
        held: (!args.sessions.is_empty()).then(|| args.sessions.into_iter().collect()),
        feed: match &args.sessions_file {
            Some(path) => Some(SimFeed::new(read_sessions(path)?, args.churn_per_sec)),
            None => None,
        },
    };
    let listener = tokio::net::TcpListener::bind(args.addr).await.with_context(|| format!("binding {}", args.addr))?;
    let addr = listener.local_addr()?;
    println!("host-sim listening: addr={addr}");
    tracing::info!(%addr, ?config, "host-sim serving");
    tonic::transport::Server::builder()
        .serve_with_incoming_shutdown(
            SessionHostServiceServer::new(SimHost::new(config)),
            TcpListenerStream::new(listener),
            stop_requested,
        )
        .await
        .context("host-sim server failed")
}
