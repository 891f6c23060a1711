//! The live directory's opening snapshot: 100,000 sessions over 4 gateways,
//! streamed by 4 simulated hosts and applied by a fresh `serve`, against
//! `sessions import` of the same records in the same run, on SQLite and on
//! PostgreSQL. A snapshot's time runs from starting `serve` to the last
//! record applied (read from its metrics), so it includes the server's
//! start. Runs alternate (import, snapshot, snapshot without session events,
//! …); each figure is the median of 3. "Without events" is the same binary
//! on a database whose event triggers were dropped.
//!
//!     cargo bench --bench feed      # 100,000 sessions
//!     cargo test --bench feed       # 2,000 sessions (smoke)

#[path = "../tests/common/mod.rs"]
mod common;

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use common::*;
use tokio_stream::wrappers::TcpListenerStream;
use wa_gateway::hosts::sim::{SimConfig, SimHost};
use wa_gateway::hosts::sim_feed::{SimFeed, hosted};
use wa_gateway::proto::host::session_host_service_server::SessionHostServiceServer;
use wa_gateway::sessions::{Session, SessionId, SessionStatus};

const GATEWAYS: usize = 4;

fn sessions(n: usize) -> Vec<Session> {
    (0..n)
        .map(|i| Session {
            id: SessionId::parse(&format!("feed{i:07}")).unwrap(),
            organization_id: format!("org_{}", i % 40),
            created_by_user_id: Some(format!("user_{}", i % 97)),
            gateway_id: Some(format!("gw-{}", i % GATEWAYS)),
            label: Some(format!("Line {i}")),
            phone_number: Some(format!("628{i:010}")),
            wa_jid: Some(format!("628{i:010}@s.whatsapp.net")),
            wa_lid: None,
            status: SessionStatus::Working,
            auto_read: false,
            presence_typing: true,
            is_admin_session: false,
            rate_per_min: Some(20),
            rate_per_hour: Some(600),
            created_at: 1_719_662_400_000,
            updated_at: 1_719_662_400_000,
            last_connected_at: None,
        })
        .collect()
}

fn jsonl(sessions: &[Session]) -> Vec<u8> {
    let mut out = Vec::new();
    for s in sessions {
        let line = serde_json::json!({
            "id": s.id.as_str(), "organizationId": s.organization_id, "createdByUserId": s.created_by_user_id,
            "gatewayId": s.gateway_id, "label": s.label, "phoneNumber": s.phone_number, "waJid": s.wa_jid,
            "waLid": s.wa_lid, "status": s.status.as_str(), "autoRead": s.auto_read, "presenceTyping": s.presence_typing,
            "isAdminSession": s.is_admin_session, "ratePerMin": s.rate_per_min, "ratePerHour": s.rate_per_hour,
            "createdAt": s.created_at, "updatedAt": s.updated_at, "lastConnectedAt": s.last_connected_at,
        });
        out.extend_from_slice(line.to_string().as_bytes());
        out.push(b'\n');
    }
    out
}

/// One simulated host per gateway, each holding its gateway's sessions.
async fn hosts(all: &[Session]) -> Vec<SocketAddr> {
    let mut addrs = Vec::new();
    for g in 0..GATEWAYS {
        let gateway = format!("gw-{g}");
        let held = all.iter().filter(|s| s.gateway_id.as_deref() == Some(&gateway)).map(hosted);
        let config = SimConfig { feed: Some(SimFeed::new(held, 0.0)), ..Default::default() };
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        addrs.push(listener.local_addr().unwrap());
        tokio::spawn(async move {
            tonic::transport::Server::builder()
                .add_service(SessionHostServiceServer::new(SimHost::new(config)))
                .serve_with_incoming(TcpListenerStream::new(listener))
                .await
                .unwrap();
        });
    }
    addrs
}

fn import_time(db: &str, lines: &[u8]) -> Duration {
    let started = Instant::now();
    let out = import_with(db, lines, &[]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    started.elapsed()
}

/// From starting `serve` to every record of the snapshots applied.
async fn snapshot_time(db: &str, hosts: &[SocketAddr], jwks: &JwksServer, n: usize) -> Duration {
    let mut args = Vec::new();
    for (g, addr) in hosts.iter().enumerate() {
        args.extend(["--host".to_owned(), format!("gw-{g}=http://{addr}")]);
    }
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let started = Instant::now();
    let gw = Gateway::start_with_db(db, &jwks.url(), &args).await;
    let http = reqwest::Client::new();
    loop {
        let body = http.get(gw.http("/metrics")).send().await.unwrap().text().await.unwrap();
        let applied: f64 = body
            .lines()
            .filter(|l| l.starts_with("wa_gateway_feed_records_total") && l.contains("outcome=\"changed\""))
            .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
            .sum();
        if applied as usize >= n {
            return started.elapsed();
        }
        assert!(started.elapsed() < Duration::from_secs(600), "the snapshot never completed ({applied} of {n})");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// Drops the status counters' triggers: the import's cost without them.
async fn without_counters(backend: &str, db: &str) {
    use sqlx::Connection;
    match backend {
        "sqlite" => {
            let mut conn = sqlx::SqliteConnection::connect(&format!("sqlite://{db}")).await.unwrap();
            for trigger in ["sessions_counted_on_insert", "sessions_counted_on_delete", "sessions_counted_on_update"] {
                sqlx::query(&format!("DROP TRIGGER {trigger}")).execute(&mut conn).await.unwrap();
            }
        }
        _ => {
            let mut conn = sqlx::PgConnection::connect(db).await.unwrap();
            sqlx::query("ALTER TABLE sessions DISABLE TRIGGER USER").execute(&mut conn).await.unwrap();
        }
    }
}

fn median(mut runs: Vec<Duration>) -> Duration {
    runs.sort();
    runs[runs.len() / 2]
}

#[tokio::main]
async fn main() {
    let full = std::env::args().any(|a| a == "--bench");
    let (n, runs) = if full { (100_000, 3) } else { (2_000, 1) };
    let all = sessions(n);
    let lines = jsonl(&all);
    let addrs = hosts(&all).await;
    let jwks = JwksServer::start().await;
    let dir = tempfile::tempdir().unwrap();
    println!(
        "| backend | sessions | import | import without the status counters | snapshot over {GATEWAYS} gateways | rate ratio (snapshot / import) | snapshot without events | rate ratio (events on / off) |"
    );
    println!("|---|---|---|---|---|---|---|---|");
    for backend in ["sqlite", "postgres"] {
        let (mut imports, mut bare, mut snapshots, mut eventless) = (Vec::new(), Vec::new(), Vec::new(), Vec::new());
        for run in 0..runs {
            let fresh = |tag: &str| {
                let dir = dir.path().to_owned();
                let tag = format!("{tag}-{run}");
                async move {
                    match backend {
                        "sqlite" => dir.join(format!("{tag}.db")).display().to_string(),
                        _ => pg::database().await,
                    }
                }
            };
            let db = fresh("import").await;
            imports.push(import_time(&db, &lines));
            let db = fresh("bare").await;
            assert!(cli(&db, &["--log", "warn", "migrate"]).status.success());
            without_counters(backend, &db).await;
            bare.push(import_time(&db, &lines));
            let db = fresh("feed").await;
            snapshots.push(snapshot_time(&db, &addrs, &jwks, n).await);
            let db = fresh("feed-without-events").await;
            assert!(cli(&db, &["--log", "warn", "migrate"]).status.success());
            history::events_off(&db).await;
            eventless.push(snapshot_time(&db, &addrs, &jwks, n).await);
        }
        let (import, bare, snapshot, off) = (median(imports), median(bare), median(snapshots), median(eventless));
        println!(
            "| {backend} | {n} | {:.2} s | {:.2} s | {:.2} s | {:.2} | {:.2} s | {:.2} |",
            import.as_secs_f64(),
            bare.as_secs_f64(),
            snapshot.as_secs_f64(),
            import.as_secs_f64() / snapshot.as_secs_f64(),
            off.as_secs_f64(),
            off.as_secs_f64() / snapshot.as_secs_f64()
        );
    }
}
