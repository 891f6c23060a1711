//! The live directory under a steady stream of changes: 1,000 changes per
//! second spread over 4 gateways for 10 s, against a real `serve` (SQLite),
//! with session events on and then off (the same binary with the event
//! triggers dropped), each on a fresh database in the same run.
//! It prints how long a change takes from the host's send to its
//! visibility in REST `GET …/sessions/{id}` (every 10th change is followed;
//! polled every 2 ms), and the p99 of REST ListSessions' first page under
//! that load against the same server idle, in the same run.
//!
//!     cargo bench --bench feed_latency     # 1,000 changes/s for 10 s
//!     cargo test --bench feed_latency      # 100 changes/s for 1 s (smoke)

#[path = "../tests/common/mod.rs"]
mod common;

use std::sync::Arc;
use std::time::{Duration, Instant};

use common::host::{Script, ScriptedHost};
use common::*;
use serde_json::Value;
use wa_gateway::proto::host::{HostedSession, HostedSessionStatus, WatchSessionsResponse};

const GATEWAYS: usize = 4;
const SESSIONS_PER_GATEWAY: usize = 2_500;

fn hosted(gateway: usize, n: usize, status: HostedSessionStatus, updated: i64) -> HostedSession {
    HostedSession {
        id: format!("lat-{gateway}-{n:05}"),
        organization_id: format!("org_{}", n % 40),
        label: Some(format!("Line {n}")),
        status: status.into(),
        created_at_ms: 1_700_000_000_000,
        updated_at_ms: updated,
        ..Default::default()
    }
}

fn percentile(mut samples: Vec<Duration>, p: f64) -> Duration {
    samples.sort();
    let at = ((samples.len() as f64 - 1.0) * p).round() as usize;
    samples.get(at).copied().unwrap_or_default()
}

/// REST ListSessions (first page of 50) latencies for `how_long`.
async fn list_latencies(http: &reqwest::Client, url: &str, token: &str, how_long: Duration) -> Vec<Duration> {
    let mut out = Vec::new();
    let until = Instant::now() + how_long;
    while Instant::now() < until {
        let started = Instant::now();
        let response = http.get(url).bearer_auth(token).send().await.unwrap();
        assert_eq!(response.status(), 200);
        let _ = response.bytes().await.unwrap();
        out.push(started.elapsed());
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    out
}

struct Measured {
    delays: Vec<Duration>,
    idle: Vec<Duration>,
    loaded: Vec<Duration>,
}

#[tokio::main]
async fn main() {
    let full = std::env::args().any(|a| a == "--bench");
    let (per_second, seconds) = if full { (1_000u64, 10u64) } else { (100, 1) };
    let ms = |d: Duration| d.as_secs_f64() * 1000.0;
    println!("| what | events | p50 | p99 | max | baseline p99 (idle, same server) | ratio |");
    println!("|---|---|---|---|---|---|---|");
    let mut p99s = Vec::new();
    for events in [true, false] {
        let m = run(per_second, seconds, events).await;
        let on = if events { "on" } else { "off" };
        p99s.push(percentile(m.delays.clone(), 0.99));
        println!(
            "| send → visible, {per_second} changes/s over {GATEWAYS} gateways, {} followed | {on} | {:.1} ms | {:.1} ms | {:.1} ms | | |",
            m.delays.len(),
            ms(percentile(m.delays.clone(), 0.5)),
            ms(percentile(m.delays.clone(), 0.99)),
            ms(percentile(m.delays, 1.0)),
        );
        let (idle99, loaded99) = (percentile(m.idle, 0.99), percentile(m.loaded.clone(), 0.99));
        println!(
            "| REST ListSessions (50) under that load, {} calls | {on} | {:.1} ms | {:.1} ms | {:.1} ms | {:.1} ms | {:.2} |",
            m.loaded.len(),
            ms(percentile(m.loaded.clone(), 0.5)),
            ms(loaded99),
            ms(percentile(m.loaded, 1.0)),
            ms(idle99),
            loaded99.as_secs_f64() / idle99.as_secs_f64()
        );
    }
    println!("\nvisibility p99, events on / events off: {:.2}", p99s[0].as_secs_f64() / p99s[1].as_secs_f64());
}

async fn run(per_second: u64, seconds: u64, events: bool) -> Measured {
    let base = 1_750_000_000_000i64;
    let mut hosts = Vec::new();
    let mut flags = Vec::new();
    for g in 0..GATEWAYS {
        let snapshot = (0..SESSIONS_PER_GATEWAY).map(|n| hosted(g, n, HostedSessionStatus::Working, base)).collect();
        let (host, url) =
            ScriptedHost::start(Script { feed: true, snapshot: Some(snapshot), ..Default::default() }).await;
        flags.extend(["--host".to_owned(), format!("gw-{g}={url}")]);
        hosts.push(host);
    }
    let jwks = JwksServer::start().await;
    let token = mint(KeyKind::Rsa, "rsa-1", &super_admin_claims());
    let flags: Vec<&str> = flags.iter().map(String::as_str).collect();
    let dir = tempfile::tempdir().unwrap();
    let db = history::sqlite_database(&dir.path().join("latency.db"), events).await;
    let gw = Gateway::start_with_db(&db, &jwks.url(), &flags).await;
    let http = reqwest::Client::new();
    let last = format!("lat-{}-{:05}", GATEWAYS - 1, SESSIONS_PER_GATEWAY - 1);
    eventually("the snapshots", Duration::from_secs(120), || async {
        let r = http.get(gw.http(&format!("/api/v1/admin/sessions/{last}"))).bearer_auth(&token).send().await.ok()?;
        (r.status() == 200).then_some(())
    })
    .await;
    let list = gw.http("/api/v1/admin/sessions?limit=50");
    let idle = list_latencies(&http, &list, &token, Duration::from_secs(seconds)).await;

    // The load: every change names a session and the updatedAt that marks it.
    let hosts = Arc::new(hosts);
    let total = per_second * seconds;
    let every = Duration::from_secs_f64(1.0 / per_second as f64);
    let (followed_tx, mut followed_rx) = tokio::sync::mpsc::unbounded_channel::<Duration>();
    let sender = {
        let (hosts, http, token, gw_http) = (hosts.clone(), http.clone(), token.clone(), gw.http(""));
        tokio::spawn(async move {
            let started = Instant::now();
            for i in 0..total {
                tokio::time::sleep_until((started + every * i as u32).into()).await;
                let g = i as usize % GATEWAYS;
                let n = (i as usize / GATEWAYS) % SESSIONS_PER_GATEWAY;
                let updated = base + 1 + i as i64;
                let status = if i % 2 == 0 { HostedSessionStatus::ScanQrCode } else { HostedSessionStatus::Working };
                let sent = Instant::now();
                hosts[g]
                    .send(WatchSessionsResponse { upserted: vec![hosted(g, n, status, updated)], ..Default::default() })
                    .await;
                if i % 10 == 0 {
                    let url = format!("{gw_http}/api/v1/admin/sessions/lat-{g}-{n:05}");
                    let (http, token, tx) = (http.clone(), token.clone(), followed_tx.clone());
                    tokio::spawn(async move {
                        loop {
                            let body: Value =
                                http.get(&url).bearer_auth(&token).send().await.unwrap().json().await.unwrap();
                            if body["updatedAt"].as_i64().is_some_and(|u| u >= updated) {
                                let _ = tx.send(sent.elapsed());
                                return;
                            }
                            tokio::time::sleep(Duration::from_millis(2)).await;
                        }
                    });
                }
            }
        })
    };
    let loaded = list_latencies(&http, &list, &token, Duration::from_secs(seconds)).await;
    sender.await.unwrap();
    let mut delays = Vec::new();
    let expected = total.div_ceil(10) as usize;
    while delays.len() < expected {
        match tokio::time::timeout(Duration::from_secs(60), followed_rx.recv()).await {
            Ok(Some(delay)) => delays.push(delay),
            _ => panic!("{} of {expected} followed changes became visible", delays.len()),
        }
    }
    Measured { delays, idle, loaded }
}
