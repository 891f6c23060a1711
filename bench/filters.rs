//! The first page of every combination of the listing's filters, against the
//! unfiltered first page, on both backends. 1,000,000 sessions in 4
//! organizations on 2 gateways (organizations map onto gateways), statuses
//! skewed (96 % working, 1 % each of the others). Each figure is the median
//! of 31 calls of the store's listing (the query a ListSessions runs).
//!
//!     cargo bench --bench filters     # 1,000,000 sessions
//!     cargo test --bench filters      # 20,000 sessions (smoke)

#[path = "../tests/common/mod.rs"]
mod common;

use std::io::Write;
use std::time::{Duration, Instant};

use common::*;
use wa_gateway::paging::{PageLimit, PageRequest};
use wa_gateway::sessions::{SessionFilter, SessionStatus};

const STATUSES: [&str; 4] = ["stopped", "starting", "scan_qr_code", "failed"];

fn write_fleet(path: &std::path::Path, n: usize) {
    let mut out = std::io::BufWriter::new(std::fs::File::create(path).unwrap());
    for i in 0..n {
        let org = i % 4;
        let gateway = if org < 2 { "gw-0" } else { "gw-1" };
        let status = if i % 100 < 4 { STATUSES[i % 100] } else { "working" };
        let line = session_line(&format!("s{i:08}"), &format!("org_{org}"), status, gateway);
        writeln!(out, "{line}").unwrap();
    }
}

/// Named filter combinations: matching, rare and matching nothing. (Of the
/// rare statuses, `failed` sessions all fall in org_3, on gw-1.)
fn combinations() -> Vec<(&'static str, SessionFilter)> {
    let f = |org: Option<&str>, status: Option<SessionStatus>, gateway: Option<&str>| SessionFilter {
        organization_id: org.map(str::to_owned),
        status,
        gateway_id: gateway.map(str::to_owned),
    };
    let (working, failed) = (Some(SessionStatus::Working), Some(SessionStatus::Failed));
    vec![
        ("none", f(None, None, None)),
        ("organizationId", f(Some("org_1"), None, None)),
        ("status (96 %)", f(None, working, None)),
        ("status (1 %)", f(None, failed, None)),
        ("gatewayId", f(None, None, Some("gw-1"))),
        ("organizationId + status (1 %)", f(Some("org_3"), failed, None)),
        ("organizationId + status (no match)", f(Some("org_1"), failed, None)),
        ("organizationId + gatewayId", f(Some("org_1"), None, Some("gw-0"))),
        ("organizationId + gatewayId (no match)", f(Some("org_1"), None, Some("gw-1"))),
        ("status + gatewayId", f(None, failed, Some("gw-1"))),
        ("all three", f(Some("org_3"), failed, Some("gw-1"))),
        ("all three (no match)", f(Some("org_2"), working, Some("gw-0"))),
    ]
}

async fn first_pages(db: &str) -> Vec<Duration> {
    let store = wa_gateway::store::open(db).await.unwrap();
    let page = PageRequest { limit: PageLimit::new(Some(50)).unwrap(), after: None };
    let mut medians = Vec::new();
    for (name, filter) in combinations() {
        // The labels say which combinations match: a full page, or none.
        let rows = store.list_sessions(&filter, &page).await.unwrap().len();
        assert_eq!(rows, if name.contains("no match") { 0 } else { 51 }, "{name}");
        let mut runs = Vec::new();
        for i in 0..34 {
            let started = Instant::now();
            std::hint::black_box(store.list_sessions(&filter, &page).await.unwrap());
            if i >= 3 {
                runs.push(started.elapsed());
            }
        }
        runs.sort();
        medians.push(runs[runs.len() / 2]);
    }
    store.close().await;
    medians
}

fn main() {
    let n = if std::env::args().any(|a| a == "--bench") { 1_000_000 } else { 20_000 };
    let dir = tempfile::tempdir().unwrap();
    let fleet = dir.path().join("fleet.jsonl");
    write_fleet(&fleet, n);
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let (sqlite, postgres) = runtime.block_on(async {
        let sqlite_db = dir.path().join("filters.db").display().to_string();
        let postgres_db = pg::database().await;
        let mut results = Vec::new();
        for db in [&sqlite_db, &postgres_db] {
            let started = Instant::now();
            let out = cli(db, &["--log", "warn", "sessions", "import", fleet.to_str().unwrap()]);
            assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
            eprintln!("imported {n} sessions in {:.1} s", started.elapsed().as_secs_f64());
            results.push(first_pages(db).await);
        }
        (results.remove(0), results.remove(0))
    });
    println!("{n} sessions, first page of 50, median of 31 calls");
    println!("| filter | SQLite | × unfiltered | PostgreSQL | × unfiltered |");
    println!("|---|---|---|---|---|");
    for (i, (name, _)) in combinations().iter().enumerate() {
        println!(
            "| {name} | {:.0} µs | {:.2} | {:.0} µs | {:.2} |",
            sqlite[i].as_secs_f64() * 1e6,
            sqlite[i].as_secs_f64() / sqlite[0].as_secs_f64(),
            postgres[i].as_secs_f64() * 1e6,
            postgres[i].as_secs_f64() / postgres[0].as_secs_f64()
        );
    }
}
