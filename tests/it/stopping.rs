//! Stopping a running backfill never leaves a database connection out of
//! step: jobs cancelled, removed with their session and reaped from a
//! paused replica, all in the middle of their writes, on a pool of two
//! connections; then hundreds of calls on the same replica, none answered
//! 500, no protocol error in its log, and the next job succeeds.

use std::time::Duration;

use serde_json::Value;
use wa_gateway::proto::host::{HostedSession, HostedSessionStatus, WatchSessionsResponse};

use crate::both_backends;
use crate::common::Gateway;
use crate::common::host::{self, OUT_OF_STEP, Script, ScriptedHost, contact, group};
use crate::common::proxy::{FaultProxy, Mode, port_of};
use crate::common::{Backend, JwksServer, KeyKind, backend, eventually, fresh_database, mint, pg, super_admin_claims};

const CONTACTS: usize = 20_000;
const LEASE_SECS: u64 = 3;
const PATIENCE: Duration = Duration::from_secs(120);

fn hosted(id: &str, updated_at_ms: i64) -> HostedSession {
    host::hosted(id, "org_a", HostedSessionStatus::Working, updated_at_ms)
}

fn script() -> Script {
    // Long names: each write's COPY carries megabytes, so a stop often
    // comes while one is under way.
    let tag = "a contact with a long name ".repeat(12);
    Script {
        contacts: (0..CONTACTS).map(|i| contact(i, &tag)).collect(),
        groups: (0..50).map(|i| group(i, 20, "g")).collect(),
        batch: 500,
        feed: true,
        snapshot: Some(vec![hosted("s1", 1_750_000_000_000), hosted("s2", 1_750_000_000_000)]),
        ..Default::default()
    }
}

struct Client<'a> {
    gw: &'a Gateway,
    token: &'a str,
    http: reqwest::Client,
}

impl Client<'_> {
    async fn call(&self, method: reqwest::Method, path: &str) -> (u16, Value) {
        let response = self.http.request(method, self.gw.http(path)).bearer_auth(self.token).send().await.unwrap();
        let status = response.status().as_u16();
        (status, response.json().await.unwrap_or(Value::Null))
    }

    async fn job(&self, session: &str) -> (u16, Value) {
        self.call(reqwest::Method::GET, &format!("/api/v1/admin/sessions/{session}/backfill")).await
    }

    async fn start(&self, session: &str) -> Value {
        let (status, job) =
            self.call(reqwest::Method::POST, &format!("/api/v1/admin/sessions/{session}:backfill")).await;
        assert_eq!(status, 202, "{job}");
        job
    }

    /// Waits until the session's job `id` has stored some rows and still runs.
    async fn writing(&self, session: &str, id: &str) {
        eventually("the job under way", PATIENCE, || async {
            let (_, job) = self.job(session).await;
            (job["id"] == id && job["status"] == "running" && job["contacts"].as_u64() > Some(0)).then_some(())
        })
        .await;
    }

    /// Hundreds of calls, sixteen at a time: none may answer 500.
    async fn burst(&self, calls: usize) {
        let paths = [
            "/api/v1/admin/sessions?limit=50",
            "/api/v1/admin/sessions/s2",
            "/api/v1/admin/gateways",
            "/api/v1/admin/sessions/s2/backfill",
            "/api/v1/admin/sessions?status=working&limit=5",
        ];
        for wave in 0..calls / 16 {
            let calls = (0..16).map(|i| self.call(reqwest::Method::GET, paths[(wave * 16 + i) % paths.len()]));
            for (status, body) in futures_util::future::join_all(calls).await {
                assert!(matches!(status, 200 | 404), "a call answered {status}: {body}");
            }
        }
    }

    async fn succeeds(&self, session: &str) {
        let id = self.start(session).await["id"].as_str().unwrap().to_owned();
        let job = eventually("the next job", PATIENCE, || async {
            let (_, job) = self.job(session).await;
            (job["id"] == id && job["status"] != "queued" && job["status"] != "running").then_some(job)
        })
        .await;
        assert_eq!(job["status"], "succeeded", "{job}");
        assert_eq!(job["contacts"], CONTACTS as u64, "{job}");
    }
}

fn assert_in_step(gw: &Gateway) {
    let logs = gw.logs.lock().unwrap();
    for line in logs.iter() {
        for sign in OUT_OF_STEP {
            assert!(!line.contains(sign), "a connection went out of step ({sign}): {line}");
        }
    }
}

both_backends!(jobs_stopped_mid_write_leave_every_connection_in_step);

async fn jobs_stopped_mid_write_leave_every_connection_in_step() {
    let (host, url) = ScriptedHost::start(script()).await;
    let jwks = JwksServer::start().await;
    let token = mint(KeyKind::Rsa, "rsa-1", &super_admin_claims());
    let args = ["--host", &format!("gw-1={url}"), "--db-pool-size", "2", "--feed-backoff-max-secs", "1"];
    // PostgreSQL is reached through a proxy that holds every chunk a few
    // milliseconds, as a database across a network would: each statement
    // (a COPY's start included) then spans a stretch a stop can land in.
    let (db, _dir) = fresh_database().await;
    let proxy = match backend() {
        Backend::Postgres => Some(FaultProxy::start(port_of(&db)).await),
        Backend::Sqlite => None,
    };
    let reached = proxy.as_ref().map_or(db.clone(), |p| p.url(&db));
    if let Some(proxy) = &proxy {
        proxy.set(Mode::Slow(Duration::from_millis(5)));
    }
    let gw = Gateway::start_with_db_logged(&reached, &jwks.url(), &args).await;
    let client = Client { gw: &gw, token: &token, http: reqwest::Client::new() };
    eventually("the feed's sessions", PATIENCE, || async { (client.job("s2").await.0 == 404).then_some(()) }).await;
    eventually("s1 listed", PATIENCE, || async {
        (client.call(reqwest::Method::GET, "/api/v1/admin/sessions/s1").await.0 == 200).then_some(())
    })
    .await;

    for round in 0..8 {
        let job = client.start("s1").await;
        let id = job["id"].as_str().unwrap().to_owned();
        client.writing("s1", &id).await;
        if round % 2 == 0 {
            let (status, stopped) =
                client.call(reqwest::Method::POST, "/api/v1/admin/sessions/s1/backfill:cancel").await;
            assert_eq!(status, 200, "{stopped}");
            assert_eq!(stopped["status"], "failed", "{stopped}");
        } else {
            // Its host no longer holds s1: the directory removes it, and
            // stops its job, in the middle of its writes.
            host.send(WatchSessionsResponse { upserted: vec![], removed: vec!["s1".into()], snapshot_complete: false })
                .await;
            eventually("the removed session's job forgotten", PATIENCE, || async {
                (client.job("s1").await.0 == 404).then_some(())
            })
            .await;
            let back = hosted("s1", 1_750_000_000_000 + round);
            host.send(WatchSessionsResponse { upserted: vec![back], removed: vec![], snapshot_complete: false }).await;
            eventually("s1 back", PATIENCE, || async {
                (client.call(reqwest::Method::GET, "/api/v1/admin/sessions/s1").await.0 == 200).then_some(())
            })
            .await;
        }
        client.burst(32).await;
    }
    if let Some(proxy) = &proxy {
        proxy.set(Mode::Forward);
    }
    client.burst(320).await;
    client.succeeds("s1").await;
    assert_in_step(&gw);
}

fn signal(gw: &Gateway, signal: &str) {
    let pid = gw.child.id().unwrap().to_string();
    assert!(std::process::Command::new("kill").args([signal, &pid]).status().unwrap().success());
}

#[tokio::test]
async fn a_replica_paused_past_its_lease_in_mid_write_resumes_with_every_connection_in_step() {
    let (_host, url) = ScriptedHost::start(script()).await;
    let jwks = JwksServer::start().await;
    let token = mint(KeyKind::Rsa, "rsa-1", &super_admin_claims());
    let db = pg::database().await;
    let lease = LEASE_SECS.to_string();
    let host = format!("gw-1={url}");
    let args = ["--host", &host, "--db-pool-size", "2", "--backfill-lease-secs", &lease, "--backfill-concurrency", "1"];
    let paused = Gateway::start_with_db_logged(&db, &jwks.url(), &args).await;
    let a = Client { gw: &paused, token: &token, http: reqwest::Client::new() };
    eventually("s1 listed", PATIENCE, || async {
        (a.call(reqwest::Method::GET, "/api/v1/admin/sessions/s1").await.0 == 200).then_some(())
    })
    .await;
    let id = a.start("s1").await["id"].as_str().unwrap().to_owned();
    a.writing("s1", &id).await;

    // The replica stops dead in the middle of its writes, past its lease;
    // another replica reaps the job.
    signal(&paused, "-STOP");
    let other = Gateway::start_with_db(&db, &jwks.url(), &args).await;
    let b = Client { gw: &other, token: &token, http: reqwest::Client::new() };
    let reaped = eventually("the job reaped", PATIENCE, || async {
        let (_, job) = b.job("s1").await;
        (job["id"] == id && job["status"] == "failed").then_some(job)
    })
    .await;
    assert_eq!(reaped["error"], "interrupted", "{reaped}");
    signal(&paused, "-CONT");

    a.burst(320).await;
    a.succeeds("s1").await;
    a.burst(64).await;
    assert_in_step(&paused);
}

/// A guarded transaction dropped at every stage of opening a COPY (while
/// BEGIN is under way, while the COPY opens, once it is open), on a pool of
/// one connection behind a slow link: its connection is closed at the drop,
/// never handed back to the pool, and the pool's next calls each get their
/// own answer.
#[tokio::test]
async fn a_transaction_dropped_mid_copy_closes_its_connection_and_the_next_calls_get_their_own_answers() {
    let db = pg::database().await;
    let proxy = FaultProxy::start(port_of(&db)).await;
    let pool = sqlx::postgres::PgPoolOptions::new().max_connections(1).connect(&proxy.url(&db)).await.unwrap();
    sqlx::query("CREATE TABLE copied (x TEXT)").execute(&pool).await.unwrap();
    let error = |e: sqlx::Error| wa_gateway_core::store::StoreError::Other(e.to_string());
    let mut closed = 0;
    for stage in 0..12u64 {
        proxy.set(Mode::Slow(Duration::from_millis(20)));
        let began = std::sync::atomic::AtomicBool::new(false);
        let copying = async {
            let mut tx = wa_gateway_sql::Tx::begin(&pool, "BEGIN", error).await.unwrap();
            began.store(true, std::sync::atomic::Ordering::SeqCst);
            let _copy = tx.copy_in_raw("COPY copied FROM STDIN").await;
            std::future::pending::<()>().await;
        };
        let dropped = tokio::time::timeout(Duration::from_millis(5 + stage * 25), copying).await;
        assert!(dropped.is_err());
        proxy.set(Mode::Forward);
        let held = pool.size();
        for i in 0..20i64 {
            let answer: i64 = sqlx::query_scalar("SELECT $1::bigint").bind(i).fetch_one(&pool).await.unwrap();
            assert_eq!(answer, i, "a call got another call's answer after a drop at stage {stage}");
        }
        if began.load(std::sync::atomic::Ordering::SeqCst) {
            assert_eq!(held, 0, "the dropped transaction's connection went back to the pool (stage {stage})");
            closed += 1;
        }
    }
    assert!(closed >= 4, "only {closed} drops came after BEGIN");
}
