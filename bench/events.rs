//! Session history at scale, printed as tables:
//!
//! 1. The fleet query's first page at 10,000,000 events (SQLite, a real
//!    `serve`), with and without each filter, against ListSessions' first
//!    page on the same server in the same rounds; p99 of each, median of 5
//!    alternating rounds. Plus the events table's size per million events.
//! 2. A watcher's delay from a change's commit (its `recordedAt`) to its
//!    arrival over REST, at 1,000 changes/s over 4 gateways, on PostgreSQL
//!    with two replicas (the watcher on the replica that follows fewer).
//!
//!     cargo bench --bench events     # 10,000,000 events; 10 s of changes
//!     cargo test --bench events      # 100,000 events; 1 s (smoke)

#[path = "../tests/common/mod.rs"]
mod common;

use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use common::host::{Script, ScriptedHost, hosted};
use common::*;
use serde_json::Value;
use sqlx::Connection;
use wa_gateway::proto::host::{HostedSessionStatus, WatchSessionsResponse};

const ROUNDS: usize = 5;
const CALLS_PER_ROUND: usize = 200;

fn percentile(mut samples: Vec<Duration>, p: f64) -> Duration {
    samples.sort();
    let at = ((samples.len() as f64 - 1.0) * p).round() as usize;
    samples.get(at).copied().unwrap_or_default()
}

fn median(mut values: Vec<Duration>) -> Duration {
    values.sort();
    values[values.len() / 2]
}

fn now_ms() -> i64 {
    SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_millis() as i64
}

/// The database's size in bytes.
async fn bytes(conn: &mut sqlx::SqliteConnection) -> u64 {
    let n: i64 = sqlx::query_scalar("SELECT page_count * page_size FROM pragma_page_count(), pragma_page_size()")
        .fetch_one(conn)
        .await
        .unwrap();
    n as u64
}

/// `events` events over 100,000 sessions of 40 organizations and 4
/// gateways, a minute apart in `recordedAt` per thousand, plus the sessions.
async fn fill(db: &str, events: u64) -> (u64, u64) {
    let mut conn = sqlx::SqliteConnection::connect(&format!("sqlite://{db}")).await.unwrap();
    sqlx::raw_sql(
        "WITH RECURSIVE n(i) AS (SELECT 0 UNION ALL SELECT i + 1 FROM n WHERE i < 99999) \
         INSERT INTO sessions (id, organization_id, gateway_id, status, created_at, updated_at, written_by) \
         SELECT printf('s%06d', i), 'org_' || (i % 40), 'gw-' || (i % 4), 'working', 1719662400000, 1719662400000, 'feed' FROM n",
    )
    .execute(&mut conn)
    .await
    .unwrap();
    let before = bytes(&mut conn).await;
    let start = now_ms() - events as i64 * 60;
    let statuses = "CASE i % 5 WHEN 0 THEN 'working' WHEN 1 THEN 'scan_qr_code' WHEN 2 THEN 'failed' WHEN 3 THEN 'starting' ELSE 'stopped' END";
    sqlx::raw_sql(&format!(
        "WITH RECURSIVE n(i) AS (SELECT 0 UNION ALL SELECT i + 1 FROM n WHERE i < {last}) \
         INSERT INTO session_events (session_id, organization_id, gateway_id, kind, from_status, to_status, \
                                     changed_at, recorded_at, source) \
         SELECT printf('s%06d', i % 100000), 'org_' || (i % 100000 % 40), 'gw-' || (i % 100000 % 4), 'status_changed', \
                'working', {statuses}, {start} + i * 60, {start} + i * 60, 'feed' FROM n",
        last = events - 1
    ))
    .execute(&mut conn)
    .await
    .unwrap();
    sqlx::raw_sql("ANALYZE").execute(&mut conn).await.unwrap();
    (before, bytes(&mut conn).await)
}

async fn first_pages(http: &reqwest::Client, url: &str, token: &str) -> Vec<Duration> {
    let mut out = Vec::with_capacity(CALLS_PER_ROUND);
    for _ in 0..CALLS_PER_ROUND {
        let started = Instant::now();
        let response = http.get(url).bearer_auth(token).send().await.unwrap();
        assert_eq!(response.status(), 200, "{url}");
        let body: Value = response.json().await.unwrap();
        assert!(!body["data"].as_array().unwrap().is_empty(), "{url}: an empty page measures nothing");
        out.push(started.elapsed());
    }
    out
}

async fn fleet_query(events: u64) {
    let dir = tempfile::tempdir().unwrap();
    let db = history::sqlite_database(&dir.path().join("events.db"), true).await;
    let filling = Instant::now();
    let (before, after) = fill(&db, events).await;
    let filled = filling.elapsed();
    let jwks = JwksServer::start().await;
    let token = mint(KeyKind::Rsa, "rsa-1", &super_admin_claims());
    let gw = Gateway::start_with_db(&db, &jwks.url(), &[]).await;
    let http = reqwest::Client::new();
    let hour_ago = now_ms() - 3_600_000;
    let queries = [
        ("ListSessions, first page (the baseline)", "/api/v1/admin/sessions?limit=50".to_owned()),
        ("session-events, first page", "/api/v1/admin/session-events?limit=50".into()),
        ("… organizationId", "/api/v1/admin/session-events?limit=50&organizationId=org_7".into()),
        ("… gatewayId", "/api/v1/admin/session-events?limit=50&gatewayId=gw-2".into()),
        ("… status", "/api/v1/admin/session-events?limit=50&status=failed".into()),
        ("… since an hour ago", format!("/api/v1/admin/session-events?limit=50&since={hour_ago}")),
        (
            "… organizationId + status",
            "/api/v1/admin/session-events?limit=50&organizationId=org_7&status=failed".into(),
        ),
        ("one session's events", "/api/v1/admin/sessions/s012345/events?limit=50".into()),
    ];
    let mut p99s: Vec<Vec<Duration>> = vec![Vec::new(); queries.len()];
    for _ in 0..ROUNDS {
        for (i, (_, path)) in queries.iter().enumerate() {
            p99s[i].push(percentile(first_pages(&http, &gw.http(path), &token).await, 0.99));
        }
    }
    let baseline = median(p99s[0].clone());
    println!(
        "\n{events} events (filled in {:.0} s), REST, {CALLS_PER_ROUND} calls a round, {ROUNDS} rounds\n",
        filled.as_secs_f64()
    );
    println!("| query | p99 (median of rounds) | min–max over rounds | ratio to ListSessions |");
    println!("|---|---|---|---|");
    let ms = |d: Duration| d.as_secs_f64() * 1000.0;
    for (i, (what, _)) in queries.iter().enumerate() {
        let runs = &p99s[i];
        let (lo, hi) = (runs.iter().min().unwrap(), runs.iter().max().unwrap());
        let p99 = median(runs.clone());
        println!(
            "| {what} | {:.2} ms | {:.2}–{:.2} ms | {:.2} |",
            ms(p99),
            ms(*lo),
            ms(*hi),
            p99.as_secs_f64() / baseline.as_secs_f64()
        );
    }
    let per_million = (after - before) as f64 / (events as f64 / 1_000_000.0);
    println!("\nsession_events with its indexes: {:.1} MiB per million events (SQLite)", per_million / 1_048_576.0);
}

async fn watcher_delay(per_second: u64, seconds: u64) {
    const GATEWAYS: usize = 4;
    let base = 1_750_000_000_000i64;
    let jwks = JwksServer::start().await;
    let token = mint(KeyKind::Rsa, "rsa-1", &super_admin_claims());
    let db = pg::database().await;
    let mut hosts = Vec::new();
    let mut flags = vec!["--backfill-lease-secs".to_owned(), "5".into()];
    for g in 0..GATEWAYS {
        let snapshot =
            (0..250).map(|n| hosted(&format!("d{g}-{n}"), "org_a", HostedSessionStatus::Working, base)).collect();
        let (host, url) =
            ScriptedHost::start(Script { feed: true, snapshot: Some(snapshot), ..Default::default() }).await;
        flags.extend(["--host".to_owned(), format!("gw-{g}={url}")]);
        hosts.push(host);
    }
    let flags: Vec<&str> = flags.iter().map(String::as_str).collect();
    let a = Gateway::start_with_db(&db, &jwks.url(), &flags).await;
    let b = Gateway::start_with_db(&db, &jwks.url(), &flags).await;
    let http = reqwest::Client::new();
    // Each snapshot is one message: its last session stored means all of it.
    for g in 0..GATEWAYS {
        let url = a.http(&format!("/api/v1/admin/sessions/d{g}-249"));
        eventually("the snapshots", Duration::from_secs(120), || async {
            let r = http.get(&url).bearer_auth(&token).send().await.ok()?;
            (r.status() == 200).then_some(())
        })
        .await;
    }
    let mut watch = http.get(b.http("/api/v1/admin/session-events:watch")).bearer_auth(&token).send().await.unwrap();
    assert_eq!(watch.status(), 200);
    let total = per_second * seconds;
    let every = Duration::from_secs_f64(1.0 / per_second as f64);
    let sender = tokio::spawn(async move {
        let started = Instant::now();
        for i in 0..total {
            tokio::time::sleep_until((started + every * i as u32).into()).await;
            let g = i as usize % GATEWAYS;
            let n = (i as usize / GATEWAYS) % 250;
            let status = if (i as usize / GATEWAYS / 250) % 2 == 0 {
                HostedSessionStatus::ScanQrCode
            } else {
                HostedSessionStatus::Working
            };
            let record = hosted(&format!("d{g}-{n}"), "org_a", status, base + 1 + i as i64);
            hosts[g].send(WatchSessionsResponse { upserted: vec![record], ..Default::default() }).await;
        }
    });
    let (mut buffer, mut delays) = (Vec::new(), Vec::new());
    while delays.len() < total as usize {
        let chunk = tokio::time::timeout(Duration::from_secs(60), watch.chunk())
            .await
            .expect("events in time")
            .unwrap()
            .unwrap();
        buffer.extend_from_slice(&chunk);
        let arrived = now_ms();
        while let Some(end) = buffer.iter().position(|b| *b == b'\n') {
            let line: Vec<u8> = buffer.drain(..=end).collect();
            let event: Value = serde_json::from_slice(&line).unwrap();
            delays.push(Duration::from_millis((arrived - event["recordedAt"].as_i64().unwrap()).max(0) as u64));
        }
    }
    sender.await.unwrap();
    let ms = |d: Duration| d.as_secs_f64() * 1000.0;
    println!(
        "\n| watcher delay, commit → arrival, {per_second} changes/s, PostgreSQL, 2 replicas | events | p50 | p99 | max |"
    );
    println!("|---|---|---|---|---|");
    println!(
        "| REST session-events:watch on the second replica | {} | {:.0} ms | {:.0} ms | {:.0} ms |",
        delays.len(),
        ms(percentile(delays.clone(), 0.5)),
        ms(percentile(delays.clone(), 0.99)),
        ms(percentile(delays, 1.0))
    );
}

/// The events table's size on PostgreSQL: `events` events inserted as the
/// triggers would (one commit row per 1,000), then `pg_total_relation_size`
/// of the events table (indexes and TOAST included) and of the commits.
async fn postgres_size(events: u64) {
    let db = pg::database().await;
    let out = cli(&db, &["--log", "warn", "migrate"]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let mut conn = sqlx::PgConnection::connect(&db).await.unwrap();
    let start = now_ms() - events as i64 * 60;
    sqlx::raw_sql(&format!(
        "INSERT INTO session_events (tx, session_id, organization_id, gateway_id, kind, from_status, to_status, \
                                     changed_at, recorded_at, source) \
         SELECT (1000 + i / 1000)::text::xid8, 's' || lpad((i % 100000)::text, 6, '0'), 'org_' || (i % 100000 % 40), \
                'gw-' || (i % 100000 % 4), 'status_changed', 'working', \
                (ARRAY['working','scan_qr_code','failed','starting','stopped'])[1 + i % 5], \
                {start} + i * 60, {start} + i * 60, 'feed' \
         FROM generate_series(0, {last}) AS i; \
         INSERT INTO session_event_commits (n, tx, committed_at) \
         SELECT j, (1000 + j)::text::xid8, {start} FROM generate_series(0, {last} / 1000) AS j",
        last = events - 1
    ))
    .execute(&mut conn)
    .await
    .unwrap();
    for table in ["session_events", "session_event_commits"] {
        sqlx::query(&format!("VACUUM ANALYZE {table}")).execute(&mut conn).await.unwrap();
    }
    let (table, commits): (i64, i64) = sqlx::query_as(
        "SELECT pg_total_relation_size('session_events'), pg_total_relation_size('session_event_commits')",
    )
    .fetch_one(&mut conn)
    .await
    .unwrap();
    let per_million = (table + commits) as f64 / (events as f64 / 1_000_000.0) / 1_048_576.0;
    println!(
        "\nsession_events with its indexes, and its commit rows: {per_million:.1} MiB per million events (PostgreSQL)"
    );
}

#[tokio::main]
async fn main() {
    let full = std::env::args().any(|a| a == "--bench");
    let (events, per_second, seconds) = if full { (10_000_000, 1_000, 10) } else { (100_000, 100, 1) };
    if std::env::args().any(|a| a == "size") {
        postgres_size(events / 10).await;
        return;
    }
    fleet_query(events).await;
    watcher_delay(per_second, seconds).await;
    postgres_size(events / 10).await;
}
