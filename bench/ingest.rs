//! Backfill ingest against the storage engine's own speed, both backends in
//! one run: a 302,000-row session (100,000 contacts, 2,000 groups x 100
//! members) from one host-sim process, through the real server, beside
//!
//! - SQLite: Python's `sqlite3.executemany`, one per table, in one
//!   transaction, of rows of the same shape into the same migrated schema
//!   (a fresh WAL file each run);
//! - PostgreSQL: `COPY` of exactly the rows the host sends into the same
//!   migrated schema, on the same server (a fresh database each run).
//!
//! Runs alternate (SQLite backfill, executemany, PostgreSQL backfill, COPY,
//! …); each figure is the median of 3, with the server's peak RSS growth
//! during the backfill.
//!
//!     cargo bench --bench ingest                # the 302,000-row session
//!     cargo bench --bench ingest -- postgres    # one engine only (or sqlite)
//!     cargo bench --bench ingest -- --rounds 7  # median of 7
//!     cargo test --bench ingest                 # a small session (smoke)

#[path = "../tests/common/mod.rs"]
mod common;

use std::time::{Duration, Instant};

use common::*;
use tokio_stream::StreamExt;
use wa_gateway::proto::admin::{BackfillStatus, StartBackfillRequest, WatchBackfillRequest};

#[path = "baselines/storage.rs"]
mod baselines;

const SESSION: &str = "bench-session";

/// The session's shape: contacts, groups, members per group.
#[derive(Clone, Copy)]
struct Shape {
    contacts: usize,
    groups: usize,
    members: usize,
}

impl Shape {
    fn rows(self) -> usize {
        self.contacts + self.groups + self.groups * self.members
    }
}

/// One backfill through a server on `db`: its wall time and the server's
/// peak RSS growth, in KiB.
async fn backfill(db: &str, sim_url: &str, jwks: &JwksServer, shape: Shape) -> (Duration, u64) {
    let gw = Gateway::start_with_db(db, &jwks.url(), &["--host", &format!("gw-1={sim_url}")]).await;
    assert!(import(db, &session_line(SESSION, "org_bench", "working", "gw-1")).status.success());
    let token = mint(KeyKind::Ed, "ed-1", &super_admin_claims());
    let mut client = gw.client().await;
    let pid = gw.child.id().unwrap();
    let idle = peak_rss_kib(pid);
    let started = Instant::now();
    client.start_backfill(authed(StartBackfillRequest { session_id: SESSION.into() }, &token)).await.unwrap();
    let req = WatchBackfillRequest { session_id: SESSION.into(), ..Default::default() };
    let mut updates = client.watch_backfill(authed(req, &token)).await.unwrap().into_inner();
    let mut last = None;
    while let Some(update) = tokio::time::timeout(Duration::from_secs(600), updates.next()).await.unwrap() {
        last = update.unwrap().job;
    }
    let wall = started.elapsed();
    let job = last.unwrap();
    assert_eq!(job.status(), BackfillStatus::Succeeded, "{job:?}");
    assert_eq!((job.contacts + job.groups + job.group_members) as usize, shape.rows());
    (wall, peak_rss_kib(pid).saturating_sub(idle))
}

/// The process's peak resident set (VmHWM), in KiB.
fn peak_rss_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches(" kB").trim().parse().ok())
        .unwrap_or(0)
}

fn median<T: Copy + Ord>(mut values: Vec<T>) -> T {
    values.sort();
    values[values.len() / 2]
}

/// Each engine's figures: backfill walls, RSS growths, baseline walls.
#[derive(Default)]
struct Figures {
    ours: Vec<Duration>,
    rss: Vec<u64>,
    raw: Vec<Duration>,
}

impl Figures {
    fn row(&self, engine: &str, baseline: &str, rows: usize) -> String {
        let (ours, raw) = (median(self.ours.clone()), median(self.raw.clone()));
        let rate = |d: Duration| rows as f64 / d.as_secs_f64();
        let rss = format!("+{:.1} MiB", median(self.rss.clone()) as f64 / 1024.0);
        format!(
            "| {engine} | {rows} | {:.2} s | {:.0} | {rss} | {baseline} | {:.2} s | {:.0} | **{:.2}** |",
            ours.as_secs_f64(),
            rate(ours),
            raw.as_secs_f64(),
            rate(raw),
            rate(ours) / rate(raw)
        )
    }
}

fn main() {
    let full = std::env::args().any(|a| a == "--bench");
    let shape = if full {
        Shape { contacts: 100_000, groups: 2_000, members: 100 }
    } else {
        Shape { contacts: 2_000, groups: 20, members: 10 }
    };
    let args: Vec<String> = std::env::args().collect();
    let rounds = match args.iter().position(|a| a == "--rounds") {
        Some(i) => args.get(i + 1).and_then(|n| n.parse().ok()).expect("--rounds takes a number"),
        None if full => 3,
        None => 1,
    };
    let only = std::env::args().find(|a| a == "sqlite" || a == "postgres");
    let (with_sqlite, with_postgres) = (only.as_deref() != Some("postgres"), only.as_deref() != Some("sqlite"));
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let (sqlite, postgres) = runtime.block_on(async {
        let sim = HostSimProcess::start(&[
            "--contacts",
            &shape.contacts.to_string(),
            "--groups",
            &shape.groups.to_string(),
            "--members-per-group",
            &shape.members.to_string(),
            "--batch-size",
            "500",
        ])
        .await;
        let jwks = JwksServer::start().await;
        let copy_rows = baselines::copy_rows(SESSION, shape.contacts, shape.groups, shape.members);
        let (mut sqlite, mut postgres) = (Figures::default(), Figures::default());
        for _ in 0..rounds {
            if with_sqlite {
                let dir = tempfile::tempdir().unwrap();
                let file = dir.path().join("gateway.db").display().to_string();
                let (wall, rss) = backfill(&file, &sim.url, &jwks, shape).await;
                sqlite.ours.push(wall);
                sqlite.rss.push(rss);
                sqlite.raw.push(baselines::executemany(shape.contacts, shape.groups, shape.members));
            }
            if with_postgres {
                let (wall, rss) = backfill(&pg::database().await, &sim.url, &jwks, shape).await;
                postgres.ours.push(wall);
                postgres.rss.push(rss);
                postgres.raw.push(baselines::copy(&copy_rows).await);
            }
        }
        (sqlite, postgres)
    });
    println!(
        "| engine | rows | wa-gateway backfill | rows/s | server RSS growth | baseline | baseline time | rows/s | ratio (rate) |"
    );
    println!("|---|---|---|---|---|---|---|---|---|");
    if with_sqlite {
        println!("{}", sqlite.row("SQLite", "raw `executemany`, one transaction", shape.rows()));
    }
    if with_postgres {
        println!("{}", postgres.row("PostgreSQL", "`COPY` of the same rows", shape.rows()));
    }
}
