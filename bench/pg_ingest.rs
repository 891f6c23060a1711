//! Backfill ingest into PostgreSQL, against `COPY` of the same rows into the
//! same server in the same run. Runs alternate (backfill, COPY, backfill,
//! …); each figure is the median of 3, each run on a fresh database.
//!
//!     cargo bench --bench pg_ingest     # 100,000 contacts + 2,000 groups x 100 members
//!     cargo test --bench pg_ingest      # a small session (smoke)

#[path = "../tests/common/mod.rs"]
mod common;

use std::time::{Duration, Instant};

use common::*;
use tokio_stream::StreamExt;
use wa_gateway::hosts::sim;
use wa_gateway::proto::admin::{BackfillStatus, StartBackfillRequest, WatchBackfillRequest};

const SESSION: &str = "bench-session";

async fn backfill(sim_url: &str, jwks: &JwksServer) -> Duration {
    let db = pg::database().await;
    let gw = Gateway::start_with_db(&db, &jwks.url(), &["--host", &format!("gw-1={sim_url}")]).await;
    assert!(import(&db, &session_line(SESSION, "org_bench", "working", "gw-1")).status.success());
    let token = mint(KeyKind::Ed, "ed-1", &super_admin_claims());
    let mut client = gw.client().await;
    let started = Instant::now();
    let req = StartBackfillRequest { session_id: SESSION.into() };
    client.start_backfill(authed(req, &token)).await.unwrap();
    let req = WatchBackfillRequest { session_id: SESSION.into(), ..Default::default() };
    let mut updates = client.watch_backfill(authed(req, &token)).await.unwrap().into_inner();
    let mut last = None;
    while let Some(update) = updates.next().await {
        last = update.unwrap().job;
    }
    let wall = started.elapsed();
    let last = last.unwrap();
    assert_eq!(last.status(), BackfillStatus::Succeeded, "{last:?}");
    wall
}

/// COPY text of every row the host sends, per table (built before timing).
fn copy_data(contacts: usize, groups: usize, members: usize) -> [Vec<u8>; 3] {
    let (mut c, mut g, mut p) = (Vec::new(), Vec::new(), Vec::new());
    let text = |v: &str| if v.is_empty() { "\\N".to_owned() } else { v.to_owned() };
    for i in 0..contacts {
        let x = sim::contact(SESSION, i);
        let row = [SESSION, "gen", &x.jid, &x.lid, &x.phone_number, &x.push_name, &x.full_name, &x.first_name];
        let mut line: Vec<String> = row.iter().map(|v| text(v)).collect();
        line.push(text(&x.business_name));
        c.extend_from_slice(format!("{}\n", line.join("\t")).as_bytes());
    }
    for i in 0..groups {
        let x = sim::group(SESSION, i, members, contacts);
        let flag = |b: bool| if b { "t" } else { "f" };
        g.extend_from_slice(
            format!(
                "{SESSION}\tgen\t{}\t{}\t{}\t{}\t{}\t{}\t{}\t{}\t{}\n",
                x.jid,
                x.name,
                x.topic,
                x.owner_jid,
                x.created_at_ms,
                flag(x.is_announce),
                flag(x.is_locked),
                x.addressing_mode,
                x.participants.len()
            )
            .as_bytes(),
        );
        for m in &x.participants {
            p.extend_from_slice(
                format!(
                    "{SESSION}\tgen\t{}\t{}\t{}\t{}\t{}\t{}\t{}\n",
                    x.jid,
                    m.jid,
                    m.lid,
                    m.phone_number,
                    flag(m.is_admin),
                    flag(m.is_super_admin),
                    m.display_name
                )
                .as_bytes(),
            );
        }
    }
    [c, g, p]
}

async fn copy(data: &[Vec<u8>; 3]) -> Duration {
    let db = pg::database().await;
    assert!(cli(&db, &["--log", "warn", "migrate"]).status.success());
    let pool = sqlx::PgPool::connect(&db).await.unwrap();
    let mut conn = pool.acquire().await.unwrap();
    let statements = [
        "COPY wa_contacts (session_id, generation, jid, lid, phone_number, push_name, full_name, first_name, business_name) FROM STDIN",
        "COPY wa_groups (session_id, generation, jid, name, topic, owner_jid, created_at, is_announce, is_locked, addressing_mode, participant_count) FROM STDIN",
        "COPY wa_group_participants (session_id, generation, group_jid, jid, lid, phone_number, is_admin, is_super_admin, display_name) FROM STDIN",
    ];
    let started = Instant::now();
    for (statement, rows) in statements.iter().zip(data) {
        let mut copy = conn.copy_in_raw(statement).await.unwrap();
        copy.send(rows.as_slice()).await.unwrap();
        copy.finish().await.unwrap();
    }
    started.elapsed()
}

fn median(mut runs: Vec<Duration>) -> Duration {
    runs.sort();
    runs[runs.len() / 2]
}

fn main() {
    let full = std::env::args().any(|a| a == "--bench");
    let (contacts, groups, members) = if full { (100_000, 2_000, 100) } else { (2_000, 20, 10) };
    let runs = if full { 3 } else { 1 };
    let rows = contacts + groups + groups * members;
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let (ours, raw) = runtime.block_on(async {
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
        let data = copy_data(contacts, groups, members);
        let (mut ours, mut raw) = (Vec::new(), Vec::new());
        for _ in 0..runs {
            ours.push(backfill(&sim.url, &jwks).await);
            raw.push(copy(&data).await);
        }
        (median(ours), median(raw))
    });
    let rate = |d: Duration| rows as f64 / d.as_secs_f64();
    println!(
        "| rows | wa-gateway backfill (host-sim → PostgreSQL) | rows/s | COPY of the same rows | rows/s | ratio |"
    );
    println!("|---|---|---|---|---|---|");
    println!(
        "| {rows} | {:.2} s | {:.0} | {:.2} s | {:.0} | {:.2} |",
        ours.as_secs_f64(),
        rate(ours),
        raw.as_secs_f64(),
        rate(raw),
        rate(ours) / rate(raw)
    );
}
