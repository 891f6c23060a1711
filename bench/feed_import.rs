//! How soon a host's change shows while a large import runs, on
//! PostgreSQL: a real `serve` follows one gateway (2,500 sessions) whose
//! host sends 200 changes a second; every 5th change is followed from the
//! host's send until REST `GET …/sessions/{id}` shows it (polled every
//! 2 ms). First with nothing else going on, then during a
//! `sessions import` of 1,000,000 sessions onto the same gateway, in the
//! same run. The ratio is the p99 during the import over the p99 without.
//!
//!     cargo bench --bench feed_import              # 1,000,000 sessions
//!     cargo bench --bench feed_import -- 100000    # another size
//!     cargo test --bench feed_import               # 20,000 (smoke)

#[path = "../tests/common/mod.rs"]
mod common;

use std::io::Write;
use std::process::Stdio;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use common::host::{Script, ScriptedHost};
use common::*;
use serde_json::Value;
use wa_gateway::proto::host::{HostedSession, HostedSessionStatus, WatchSessionsResponse};

const SESSIONS: usize = 2_500;
const PER_SECOND: u64 = 200;
const BASE: i64 = 1_750_000_000_000;

fn hosted(n: usize, status: HostedSessionStatus, updated: i64) -> HostedSession {
    HostedSession {
        id: format!("live-{n:05}"),
        organization_id: "org_live".into(),
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

/// Sends changes at [`PER_SECOND`] until `running` clears (at least
/// `at_least`), numbering them from `first`; the send → visible delays of
/// every 5th.
async fn changes(
    host: &ScriptedHost,
    gw: &Gateway,
    token: &str,
    first: u64,
    at_least: Duration,
    running: &AtomicBool,
) -> Changes {
    let http = reqwest::Client::new();
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
    let every = Duration::from_secs_f64(1.0 / PER_SECOND as f64);
    let started = Instant::now();
    let mut followed = 0;
    let mut i = 0u64;
    while started.elapsed() < at_least || running.load(Ordering::Relaxed) {
        tokio::time::sleep_until((started + every * i as u32).into()).await;
        let n = ((first + i) as usize * 7) % SESSIONS;
        let updated = BASE + 1 + (first + i) as i64;
        let status = if i % 2 == 0 { HostedSessionStatus::ScanQrCode } else { HostedSessionStatus::Working };
        let sent = Instant::now();
        host.send(WatchSessionsResponse { upserted: vec![hosted(n, status, updated)], ..Default::default() }).await;
        if i % 5 == 0 {
            followed += 1;
            let url = gw.http(&format!("/api/v1/admin/sessions/live-{n:05}"));
            let (http, token, tx) = (http.clone(), token.to_owned(), tx.clone());
            tokio::spawn(async move {
                loop {
                    let body: Value = http.get(&url).bearer_auth(&token).send().await.unwrap().json().await.unwrap();
                    if body["updatedAt"].as_i64().is_some_and(|u| u >= updated) {
                        let _ = tx.send(sent.elapsed());
                        return;
                    }
                    tokio::time::sleep(Duration::from_millis(2)).await;
                }
            });
        }
        i += 1;
    }
    // A change still not visible a minute after the last was sent counts as
    // lost (it shows only with that session's next change).
    let mut delays = Vec::with_capacity(followed);
    while delays.len() < followed {
        match tokio::time::timeout(Duration::from_secs(60), rx.recv()).await {
            Ok(Some(delay)) => delays.push(delay),
            _ => break,
        }
    }
    Changes { delays, followed }
}

struct Changes {
    delays: Vec<Duration>,
    followed: usize,
}

#[tokio::main]
async fn main() {
    let full = std::env::args().any(|a| a == "--bench");
    let imported: usize =
        std::env::args().filter_map(|a| a.parse().ok()).next().unwrap_or(if full { 1_000_000 } else { 20_000 });
    let snapshot = (0..SESSIONS).map(|n| hosted(n, HostedSessionStatus::Working, BASE)).collect();
    let (host, url) = ScriptedHost::start(Script { feed: true, snapshot: Some(snapshot), ..Default::default() }).await;
    let jwks = JwksServer::start().await;
    let token = mint(KeyKind::Rsa, "rsa-1", &super_admin_claims());
    let db = pg::database().await;
    let gw = Gateway::start_with_db(&db, &jwks.url(), &["--host", &format!("gw-1={url}")]).await;
    let http = reqwest::Client::new();
    let last = format!("live-{:05}", SESSIONS - 1);
    eventually("the snapshot", Duration::from_secs(120), || async {
        let r = http.get(gw.http(&format!("/api/v1/admin/sessions/{last}"))).bearer_auth(&token).send().await.ok()?;
        (r.status() == 200).then_some(())
    })
    .await;

    let idle = AtomicBool::new(false);
    let quiet = changes(&host, &gw, &token, 0, Duration::from_secs(15), &idle).await;

    // The import: sessions of another organization onto the same gateway,
    // in the documented JSON Lines, streamed to `wa-gateway sessions import -`.
    let running = Arc::new(AtomicBool::new(true));
    let importing = {
        let (db, running) = (db.clone(), running.clone());
        std::thread::spawn(move || {
            let started = Instant::now();
            let mut child = std::process::Command::new(BIN)
                .args(["--log", "warn", "--database-url", &db, "sessions", "import", "-"])
                .stdin(Stdio::piped())
                .stdout(Stdio::null())
                .spawn()
                .unwrap();
            let mut input = std::io::BufWriter::new(child.stdin.take().unwrap());
            for i in 0..imported {
                writeln!(
                    input,
                    r#"{{"id":"imp-{i:07}","organizationId":"org_imp","gatewayId":"gw-1","status":"working","label":"line {i}","createdAt":1719662400000,"updatedAt":1719662400000}}"#
                )
                .unwrap();
            }
            drop(input);
            let status = child.wait().unwrap();
            running.store(false, Ordering::Relaxed);
            assert!(status.success(), "the import failed");
            started.elapsed()
        })
    };
    let during = changes(&host, &gw, &token, 1_000_000, Duration::from_secs(5), &running).await;
    let took = importing.join().unwrap();

    let ms = |d: Duration| d.as_secs_f64() * 1000.0;
    println!("| send → visible, {PER_SECOND} changes/s, every 5th followed | followed | visible | p50 | p99 | max |");
    println!("|---|---|---|---|---|---|");
    for (what, changes) in [("no import", &quiet), ("during the import", &during)] {
        let d = &changes.delays;
        println!(
            "| {what} | {} | {} | {:.1} ms | {:.1} ms | {:.1} ms |",
            changes.followed,
            d.len(),
            ms(percentile(d.clone(), 0.5)),
            ms(percentile(d.clone(), 0.99)),
            ms(percentile(d.clone(), 1.0)),
        );
    }
    let ratio =
        percentile(during.delays.clone(), 0.99).as_secs_f64() / percentile(quiet.delays.clone(), 0.99).as_secs_f64();
    let lost = during.followed - during.delays.len();
    println!(
        "\nimport of {imported} sessions onto the followed gateway: {:.1} s; p99 during / p99 without: {ratio:.2}; \
         {lost} followed changes never became visible",
        took.as_secs_f64()
    );
}
