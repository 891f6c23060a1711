//! One backfill of a large session from a host-sim process, through the real
//! server: wall time, rows per second and the server's peak RSS.
//!
//!     cargo bench --bench backfill            # 100,000 contacts, 2,000 groups x 100 members
//!     cargo test --bench backfill             # the same path on a small session (smoke)

#[path = "../tests/common/mod.rs"]
mod common;

use std::time::{Duration, Instant};

use common::*;
use tokio_stream::StreamExt;
use wa_gateway::proto::admin::{BackfillStatus, StartBackfillRequest, WatchBackfillRequest};

fn peak_rss_kib(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches(" kB").trim().parse().ok())
}

async fn one(contacts: usize, groups: usize, members: usize) -> String {
    let sim = HostSimProcess::start(&[
        "--contacts",
        &contacts.to_string(),
        "--groups",
        &groups.to_string(),
        "--members-per-group",
        &members.to_string(),
        "--batch-size",
        "500",
    ])
    .await;
    let jwks = JwksServer::start().await;
    let gw = Gateway::start(&jwks.url(), &["--host", &format!("gw-1={}", sim.url)]).await;
    assert!(import(&gw.db, &session_line("bench-session", "org_bench", "working", "gw-1")).status.success());
    let token = mint(KeyKind::Ed, "ed-1", &super_admin_claims());
    let mut client = gw.client().await;
    let rss_before = peak_rss_kib(gw.child.id().unwrap()).unwrap_or(0);

    let started = Instant::now();
    let req = StartBackfillRequest { session_id: "bench-session".into() };
    client.start_backfill(authed(req, &token)).await.unwrap();
    let req = WatchBackfillRequest { session_id: "bench-session".into(), ..Default::default() };
    let mut stream = client.watch_backfill(authed(req, &token)).await.unwrap().into_inner();
    let mut last = None;
    while let Some(item) = tokio::time::timeout(Duration::from_secs(600), stream.next()).await.unwrap() {
        last = item.unwrap().job;
    }
    let elapsed = started.elapsed();
    let job = last.unwrap();
    assert_eq!(job.status(), BackfillStatus::Succeeded, "{job:?}");
    let rows = job.contacts + job.groups + job.group_members;
    assert_eq!(rows as usize, contacts + groups + groups * members);
    let rss = peak_rss_kib(gw.child.id().unwrap()).unwrap_or(0);
    format!(
        "| {} | {} | {} | {} | {:.2} s | {:.0} | {:.1} MiB -> {:.1} MiB |",
        job.contacts,
        job.groups,
        job.group_members,
        rows,
        elapsed.as_secs_f64(),
        rows as f64 / elapsed.as_secs_f64(),
        rss_before as f64 / 1024.0,
        rss as f64 / 1024.0
    )
}

fn main() {
    let full = std::env::args().any(|a| a == "--bench");
    // Two sizes, ten times apart, each on a fresh server: peak memory should
    // not follow the row count.
    let sizes: &[(usize, usize, usize)] =
        if full { &[(10_000, 200, 100), (100_000, 2_000, 100), (300_000, 6_000, 100)] } else { &[(2_000, 20, 10)] };
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let rows: Vec<String> = sizes.iter().map(|&(c, g, m)| runtime.block_on(one(c, g, m))).collect();
    println!("| contacts | groups | members | rows | wall | rows/s | server peak RSS (before -> after) |");
    println!("|---|---|---|---|---|---|---|");
    for row in rows {
        println!("{row}");
    }
}
