//! The gateways view at a million sessions: REST `GET /api/v1/admin/gateways`
//! (every gateway's sessions by status) against REST ListSessions' first
//! page, in the same run on the same server, on SQLite and on PostgreSQL.
//! The sessions are inserted by one SQL statement (the status counters'
//! triggers keep count as for any writer); the 8 gateways' hosts are
//! unreachable, so nothing else writes. Calls alternate; p50 and p99 of each.
//!
//!     cargo bench --bench gateways      # 1,000,000 sessions, 2,000 calls each
//!     cargo test --bench gateways       # 10,000 sessions, 100 calls (smoke)

#[path = "../tests/common/mod.rs"]
mod common;

use std::time::{Duration, Instant};

use common::*;
use sqlx::Connection;

const GATEWAYS: usize = 8;
const STATUSES: &str = "'stopped', 'starting', 'scan_qr_code', 'working', 'failed'";

/// Inserts `n` sessions spread over the gateways and statuses.
async fn fill(backend: &str, db: &str, n: usize) {
    let columns = "id, organization_id, gateway_id, status, created_at, updated_at";
    match backend {
        "sqlite" => {
            let mut conn = sqlx::SqliteConnection::connect(&format!("sqlite://{db}")).await.unwrap();
            let sql = format!(
                "WITH RECURSIVE n(i) AS (SELECT 0 UNION ALL SELECT i + 1 FROM n WHERE i + 1 < {n}) \
                 INSERT INTO sessions ({columns}) \
                 SELECT printf('s%08d', i), 'org_' || (i % 40), 'gw-' || (i % {GATEWAYS}), \
                        json_extract(json_array({STATUSES}), '$[' || (i % 5) || ']'), 0, 0 FROM n"
            );
            sqlx::query(&sql).execute(&mut conn).await.unwrap();
        }
        _ => {
            let mut conn = sqlx::PgConnection::connect(db).await.unwrap();
            let sql = format!(
                "INSERT INTO sessions ({columns}) \
                 SELECT 's' || lpad(i::text, 8, '0'), 'org_' || (i % 40), 'gw-' || (i % {GATEWAYS}), \
                        (ARRAY[{STATUSES}])[i % 5 + 1], 0, 0 FROM generate_series(0, {n} - 1) AS i"
            );
            sqlx::query(&sql).execute(&mut conn).await.unwrap();
            sqlx::query("ANALYZE sessions").execute(&mut conn).await.unwrap();
        }
    }
}

fn percentile(mut samples: Vec<Duration>, p: f64) -> Duration {
    samples.sort();
    samples[((samples.len() as f64 - 1.0) * p).round() as usize]
}

async fn timed(http: &reqwest::Client, url: &str, token: &str) -> Duration {
    let started = Instant::now();
    let response = http.get(url).bearer_auth(token).send().await.unwrap();
    assert_eq!(response.status(), 200);
    let _ = response.bytes().await.unwrap();
    started.elapsed()
}

#[tokio::main]
async fn main() {
    let full = std::env::args().any(|a| a == "--bench");
    let (n, calls) = if full { (1_000_000, 2_000) } else { (10_000, 100) };
    let jwks = JwksServer::start().await;
    let token = mint(KeyKind::Rsa, "rsa-1", &super_admin_claims());
    let dir = tempfile::tempdir().unwrap();
    let mut flags = Vec::new();
    for g in 0..GATEWAYS {
        flags.extend(["--host".to_owned(), format!("gw-{g}=http://127.0.0.1:9")]);
    }
    let flags: Vec<&str> = flags.iter().map(String::as_str).collect();
    let http = reqwest::Client::new();
    println!("| backend | sessions | ListGateways p50 / p99 | ListSessions first page p50 / p99 | p99 ratio |");
    println!("|---|---|---|---|---|");
    for backend in ["sqlite", "postgres"] {
        let db = match backend {
            "sqlite" => dir.path().join("gateways.db").display().to_string(),
            _ => pg::database().await,
        };
        assert!(cli(&db, &["--log", "warn", "migrate"]).status.success());
        fill(backend, &db, n).await;
        let gw = Gateway::start_with_db(&db, &jwks.url(), &flags).await;
        let (gateways_url, sessions_url) =
            (gw.http("/api/v1/admin/gateways"), gw.http("/api/v1/admin/sessions?limit=50"));
        let body: serde_json::Value =
            http.get(&gateways_url).bearer_auth(&token).send().await.unwrap().json().await.unwrap();
        let counted: i64 = body["data"].as_array().unwrap().iter().map(|g| g["sessions"].as_i64().unwrap()).sum();
        assert_eq!(counted, n as i64, "the counters hold every session");
        let (mut gateways, mut sessions) = (Vec::new(), Vec::new());
        for _ in 0..calls {
            gateways.push(timed(&http, &gateways_url, &token).await);
            sessions.push(timed(&http, &sessions_url, &token).await);
        }
        let ms = |d: Duration| d.as_secs_f64() * 1000.0;
        let (g99, s99) = (percentile(gateways.clone(), 0.99), percentile(sessions.clone(), 0.99));
        println!(
            "| {backend} | {n} | {:.2} / {:.2} ms | {:.2} / {:.2} ms | {:.2} |",
            ms(percentile(gateways, 0.5)),
            ms(g99),
            ms(percentile(sessions, 0.5)),
            ms(s99),
            g99.as_secs_f64() / s99.as_secs_f64()
        );
    }
}
