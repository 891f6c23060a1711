//! The chaos suite, after Jepsen's nemesis and checker: a random, seeded
//! workload (host changes, removals and re-adds, imports of older records,
//! backfill starts and cancels, accepts through any replica, listings and
//! the gateways view) against three replicas on PostgreSQL, while faults
//! come one after another (kill -9 and restart, SIGSTOP past the lease, a
//! proxy cut past the lease, 200 ms of latency, a PostgreSQL restart); and
//! a shorter run against one node on SQLite. Then the faults heal, every
//! feed takes a fresh snapshot, and the checker reads what must hold.
//!
//! `WA_GATEWAY_CHAOS_SEED` and `WA_GATEWAY_CHAOS_SECS` choose the run
//! (`scripts/chaos` sets them); the same seed replays the same operations
//! and faults in the same order. The history is kept in
//! `target/tmp/chaos/<backend>-<seed>.jsonl`.

mod checker;
mod cluster;
mod history;
mod nemesis;
mod workload;

use std::collections::BTreeMap;
use std::time::Duration;

use rand::SeedableRng;
use rand::rngs::StdRng;
use serde_json::Value;

use cluster::{Cluster, GATEWAYS};
use history::History;
use workload::Workload;

use crate::common::{Backend, eventually};

const OPERATORS: u64 = 4;
const PATIENCE: Duration = Duration::from_secs(120);

fn setting(name: &str, default: u64) -> u64 {
    std::env::var(name).ok().and_then(|v| v.parse().ok()).unwrap_or(default)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn three_replicas_on_postgres_hold_under_random_faults() {
    run(Backend::Postgres, setting("WA_GATEWAY_CHAOS_SEED", 36), setting("WA_GATEWAY_CHAOS_SECS", 110)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_node_on_sqlite_holds_under_random_faults() {
    run(Backend::Sqlite, setting("WA_GATEWAY_CHAOS_SEED", 36), setting("WA_GATEWAY_CHAOS_SECS", 30)).await;
}

async fn run(backend: Backend, seed: u64, secs: u64) {
    let engine = if backend == Backend::Postgres { "postgres" } else { "sqlite" };
    let name = format!("{engine}-{seed}");
    eprintln!("chaos {name}: {secs} s; replay with scripts/chaos --backend {engine} --seed {seed} --secs {secs}");
    let cluster = Cluster::start(backend, secs).await;
    let history = History::new();
    let workload = Workload::new(&cluster, &history);
    workload.seed(&mut StdRng::seed_from_u64(seed));
    settle(&cluster).await;

    let until = tokio::time::Instant::now() + Duration::from_secs(secs);
    let operators = (0..OPERATORS).map(|i| workload.operator(format!("operator-{i}"), seed * 100 + i, until));
    let sampler = sample_running_jobs(&cluster, &history, until);
    let (_, faults, ()) =
        tokio::join!(futures_util::future::join_all(operators), nemesis::run(&cluster, &history, seed, until), sampler);

    heal(&cluster).await;
    let mut found = Vec::new();
    converge(&cluster, &history, &mut found).await;
    let events = history.events();
    checker::ready(&cluster, &mut found).await;
    checker::answers(&events, &mut found);
    checker::sessions(&cluster, &workload.truth.lock().unwrap(), &mut found).await;
    checker::gateways(&cluster, &mut found).await;
    checker::jobs(&cluster, &events, &mut found).await;
    found.extend(events.iter().filter(|e| e["op"] == "overlap").map(|e| format!("two jobs ran at once: {e}")));
    found.extend(cluster.out_of_step().await);
    let path = history.save(&name);
    if !found.is_empty() {
        for log in cluster.save_logs(&name).await {
            eprintln!("  replica log: {}", log.display());
        }
    }
    summary(&events, faults, &path, &found);
    assert!(found.is_empty(), "chaos {name}: {} violations (history in {})", found.len(), path.display());
}

/// Every feed live and every session the hosts hold listed.
async fn settle(cluster: &Cluster) {
    eventually("every feed live", PATIENCE, || async {
        let base = cluster.http(0).await?;
        let view: Value = reqwest::Client::new()
            .get(format!("{base}/api/v1/admin/gateways"))
            .bearer_auth(&cluster.token)
            .send()
            .await
            .ok()?
            .json()
            .await
            .ok()?;
        view["data"].as_array()?.iter().all(|g| g["feed"] == "live").then_some(())
    })
    .await;
}

/// Every fault undone: processes running and resumed, proxies forwarding.
async fn heal(cluster: &Cluster) {
    for proxy in &cluster.proxies {
        proxy.set(crate::common::proxy::Mode::Forward);
    }
    for i in 0..cluster.replicas.len() {
        if cluster.http(i).await.is_none() {
            cluster.restart(i).await;
        }
        cluster.signal(i, "-CONT").await;
    }
}

/// Polls `check` until it holds or `PATIENCE` passes; whether it held.
async fn within<F, Fut>(mut check: F) -> bool
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let until = tokio::time::Instant::now() + PATIENCE;
    while tokio::time::Instant::now() < until {
        if check().await {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    false
}

/// Every replica's gateways view, the lease rows, and each replica's last
/// feed log lines: what an operator would look at when a feed is stuck.
async fn feed_state(cluster: &Cluster) -> String {
    let mut out = String::new();
    for i in 0..cluster.replicas.len() {
        let view = match cluster.http(i).await {
            Some(base) => match reqwest::Client::new()
                .get(format!("{base}/api/v1/admin/gateways"))
                .bearer_auth(&cluster.token)
                .send()
                .await
            {
                Ok(r) => r.text().await.unwrap_or_default(),
                Err(e) => e.to_string(),
            },
            None => "down".into(),
        };
        out.push_str(&format!("\nreplica {i} (pid {:?}) sees: {view}", cluster.pid(i).await));
        if let Some(gw) = cluster.replicas[i].read().await.as_ref() {
            let logs = gw.logs.lock().unwrap();
            let feed: Vec<&String> = logs.iter().filter(|l| l.contains("feed") && !l.contains("FeedUpsert")).collect();
            for line in feed.iter().rev().take(12).rev() {
                out.push_str(&format!("\n  {line}"));
            }
        }
    }
    if cluster.backend == Backend::Postgres {
        let rows = checker::rows(
            cluster,
            "SELECT gateway_id, follower, tenure::text, (lease_expires_at - (extract(epoch from clock_timestamp()) * 1000)::bigint)::text \
             FROM feed_followers ORDER BY 1",
        )
        .await;
        out.push_str(&format!("\nleases (gateway, follower, tenure, ms left): {rows:?}"));
        out.push_str(&format!(
            "\nreplicas alive: {:?}",
            checker::rows(cluster, "SELECT replica FROM feed_replicas").await
        ));
    }
    out
}

/// Every host's feed starts again from a fresh snapshot of what it holds
/// (what the workload's feeds missed arrives now), held snapshots are
/// accepted, and every job ends. What did not happen is a finding.
async fn converge(cluster: &Cluster, history: &History, found: &mut Vec<String>) {
    let client = reqwest::Client::new();
    let view = || async {
        let base = cluster.http(0).await?;
        let body: Value = client
            .get(format!("{base}/api/v1/admin/gateways"))
            .bearer_auth(&cluster.token)
            .send()
            .await
            .ok()?
            .json()
            .await
            .ok()?;
        Some(body["data"].as_array()?.clone())
    };
    let live = within(|| async { view().await.is_some_and(|g| g.iter().all(|g| g["feed"] == "live")) }).await;
    if !live {
        found.push(format!(
            "not every feed was live {} s after the faults healed:{}",
            PATIENCE.as_secs(),
            feed_state(cluster).await
        ));
        return;
    }
    let since = crate::common::jwks_now() * 1000;
    for (_, host) in &cluster.hosts {
        host.break_feed(tonic::Status::unavailable("the chaos run ends")).await;
    }
    let fresh = within(|| async {
        let Some(gateways) = view().await else { return false };
        for g in &gateways {
            if g["heldRemovals"].as_u64().unwrap_or(0) > 0 {
                let (Some(id), Some(base)) = (g["id"].as_str(), cluster.http(0).await) else { continue };
                let _ = client
                    .post(format!("{base}/api/v1/admin/gateways/{id}:acceptSnapshot"))
                    .bearer_auth(&cluster.token)
                    .send()
                    .await;
            }
        }
        gateways
            .iter()
            .all(|g| g["feed"] == "live" && g["lastSnapshotAt"].as_i64() >= Some(since) && g["heldRemovals"] == 0)
    })
    .await;
    if !fresh {
        found.push(format!(
            "no fresh snapshot of every gateway within {} s:{}",
            PATIENCE.as_secs(),
            feed_state(cluster).await
        ));
        return;
    }
    let jobs_active = "SELECT COUNT(*) FROM backfill_jobs WHERE status IN ('queued', 'running')";
    if cluster.backend == Backend::Postgres
        && !within(|| async { checker::rows(cluster, jobs_active).await[0][0] == "0" }).await
    {
        found.push(format!("jobs still active {} s after the faults healed", PATIENCE.as_secs()));
    }
    // The counters fold in the background; let one upkeep round pass.
    tokio::time::sleep(Cluster::lease()).await;
    history.fault("converged", None, "end");
}

/// Cluster mode: at no sampled moment do two jobs of one session run.
async fn sample_running_jobs(cluster: &Cluster, history: &History, until: tokio::time::Instant) {
    if cluster.backend != Backend::Postgres {
        return;
    }
    let overlap =
        "SELECT session_id FROM backfill_jobs WHERE status = 'running' GROUP BY session_id HAVING COUNT(*) > 1";
    while tokio::time::Instant::now() < until {
        if let Ok(mut conn) = <sqlx::PgConnection as sqlx::Connection>::connect(&cluster.db).await
            && let Ok(sessions) = sqlx::query_scalar::<_, String>(overlap).fetch_all(&mut conn).await
        {
            for session in sessions {
                history.op("sampler", None, "overlap", history.now_ms(), None, serde_json::json!({"session": session}));
            }
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

fn summary(events: &[Value], faults: usize, path: &std::path::Path, found: &[String]) {
    let mut ops: BTreeMap<String, BTreeMap<String, usize>> = BTreeMap::new();
    for e in events.iter().filter(|e| e["who"] != "nemesis") {
        let answer = match &e["status"] {
            Value::Null if e["detail"]["ok"] == true => "ok".to_owned(),
            Value::Null if e["detail"]["ok"] == false => "refused".to_owned(),
            Value::Null if e["detail"]["noop"] == true => "noop".to_owned(),
            Value::Null if e["detail"]["sent"] == false => "missed by the feed".to_owned(),
            Value::Null if e["detail"]["sent"] == true => "sent".to_owned(),
            Value::Null => "no answer".to_owned(),
            status => status.to_string(),
        };
        *ops.entry(e["op"].as_str().unwrap_or("?").to_owned()).or_default().entry(answer).or_default() += 1;
    }
    let mut by_fault: BTreeMap<String, usize> = BTreeMap::new();
    for e in events.iter().filter(|e| e["who"] == "nemesis" && e["phase"] == "begin") {
        *by_fault.entry(e["op"].as_str().unwrap_or("?").to_owned()).or_default() += 1;
    }
    let total: usize = ops.values().flat_map(|a| a.values()).sum();
    eprintln!("chaos: {total} operations, {faults} faults {by_fault:?}, {} violations", found.len());
    for (op, answers) in &ops {
        eprintln!("  {op:<14} {answers:?}");
    }
    for finding in found {
        eprintln!("  VIOLATION {finding}");
    }
    eprintln!("  history: {} ({} gateways)", path.display(), GATEWAYS.len());
}
