//! Cluster mode: two real `serve` replicas on one throwaway PostgreSQL,
//! behind no load balancer (the tests alternate replicas themselves), a
//! scripted session host over real gRPC. And the single-server rule of the
//! SQLite default.

use std::collections::HashSet;
use std::time::{Duration, Instant};

use crate::common::Gateway;
use crate::common::host::{Script, ScriptedHost, contact, group};
use crate::common::*;
use serde_json::Value;
use tokio_stream::StreamExt;
use wa_gateway::proto::admin::*;

struct Cluster {
    _jwks: JwksServer,
    host: ScriptedHost,
    replicas: Vec<Gateway>,
    db: String,
    token: String,
}

async fn cluster(sessions: usize, extra: &[&str]) -> Cluster {
    let (host, url) = ScriptedHost::start(Script {
        contacts: (0..200).map(|i| contact(i, "first")).collect(),
        groups: (0..5).map(|i| group(i, 4, "first")).collect(),
        batch: 20,
        ..Default::default()
    })
    .await;
    let jwks = JwksServer::start().await;
    let db = pg::database().await;
    let lines: Vec<String> = (0..sessions)
        .map(|i| session_line(&format!("s{i:04}"), &format!("org_{}", i % 3), "working", "gw-1"))
        .collect();
    assert!(import(&db, &lines.join("\n")).status.success());
    let mut args = vec!["--host".to_owned(), format!("gw-1={url}")];
    args.extend(extra.iter().map(|s| s.to_string()));
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let mut replicas = Vec::new();
    for _ in 0..2 {
        replicas.push(Gateway::start_with_db(&db, &jwks.url(), &args).await);
    }
    Cluster { _jwks: jwks, host, replicas, db, token: mint(KeyKind::Rsa, "rsa-1", &super_admin_claims()) }
}

impl Cluster {
    async fn start(&self, replica: usize, session: &str) -> BackfillJob {
        let req = StartBackfillRequest { session_id: session.into() };
        let mut client = self.replicas[replica].client().await;
        client.start_backfill(authed(req, &self.token)).await.unwrap().into_inner().job.unwrap()
    }

    async fn get(&self, replica: usize, session: &str) -> BackfillJob {
        let req = GetBackfillRequest { session_id: session.into() };
        let mut client = self.replicas[replica].client().await;
        client.get_backfill(authed(req, &self.token)).await.unwrap().into_inner().job.unwrap()
    }

    async fn contacts(&self, replica: usize, session: &str) -> Vec<Contact> {
        let mut client = self.replicas[replica].client().await;
        let (mut out, mut cursor) = (Vec::new(), String::new());
        loop {
            let req = ListSessionContactsRequest { session_id: session.into(), limit: Some(500), cursor };
            let page = client.list_session_contacts(authed(req, &self.token)).await.unwrap().into_inner();
            out.extend(page.data);
            match page.next_cursor {
                Some(c) => cursor = c,
                None => return out,
            }
        }
    }

    /// Which replica runs the job (the test reads the database for it).
    async fn runner(&self, job: &str) -> usize {
        let db = sqlx::PgPool::connect(&self.db).await.unwrap();
        let runner: String = eventually("the job to be claimed", Duration::from_secs(20), || async {
            sqlx::query_scalar::<_, Option<String>>("SELECT runner FROM backfill_jobs WHERE id = $1")
                .bind(job)
                .fetch_one(&db)
                .await
                .ok()
                .flatten()
        })
        .await;
        let pid: u32 = runner.split('-').next().unwrap().parse().unwrap();
        self.replicas.iter().position(|r| r.child.id() == Some(pid)).expect("a replica of this cluster")
    }

    async fn until(&self, replica: usize, session: &str, done: impl Fn(&BackfillJob) -> bool) -> BackfillJob {
        eventually("the job state", Duration::from_secs(60), || async {
            let job = self.get(replica, session).await;
            done(&job).then_some(job)
        })
        .await
    }
}

#[tokio::test]
async fn a_cursor_walk_alternating_replicas_returns_every_session_once() {
    let c = cluster(1_000, &[]).await;
    let mut clients = vec![c.replicas[0].client().await, c.replicas[1].client().await];
    let (mut seen, mut cursor, mut turn) = (Vec::new(), String::new(), 0);
    loop {
        let req = ListSessionsRequest { limit: Some(37), cursor, ..Default::default() };
        let page = clients[turn % 2].list_sessions(authed(req, &c.token)).await.unwrap().into_inner();
        seen.extend(page.data.into_iter().map(|s| s.id));
        turn += 1;
        match page.next_cursor {
            Some(next) => cursor = next,
            None => break,
        }
    }
    assert!(turn > 20, "the walk used both replicas many times");
    assert_eq!(seen.len(), 1_000);
    assert_eq!(seen.iter().collect::<HashSet<_>>().len(), 1_000, "each session exactly once");
    let mut sorted = seen.clone();
    sorted.sort();
    assert_eq!(seen, sorted, "in a stable order");
}

#[tokio::test]
async fn concurrent_starts_over_both_replicas_admit_exactly_one_job() {
    let c = cluster(3, &[]).await;
    c.host.set(|s| s.gated = true);
    let http = reqwest::Client::new();
    let attempts: Vec<_> = (0..64)
        .map(|i| {
            let url = c.replicas[i % 2].http("/api/v1/admin/sessions/s0001:backfill");
            http.post(url).bearer_auth(&c.token).send()
        })
        .collect();
    let mut accepted = Vec::new();
    let mut conflicts = Vec::new();
    for response in futures_util::future::join_all(attempts).await {
        let response = response.unwrap();
        let status = response.status();
        let body: Value = response.json().await.unwrap();
        match status.as_u16() {
            202 => accepted.push(body),
            409 => conflicts.push(body),
            other => panic!("unexpected {other}: {body}"),
        }
    }
    assert_eq!(accepted.len(), 1, "exactly one 202");
    assert_eq!(conflicts.len(), 63);
    let winner = accepted[0]["id"].as_str().unwrap();
    for conflict in &conflicts {
        assert_eq!(conflict["error"]["details"]["reason"], "BACKFILL_RUNNING");
        assert_eq!(conflict["error"]["details"]["jobId"], winner, "the running job is named");
    }
    // Either replica answers for the job, with the same id.
    let (a, b) = (c.get(0, "s0001").await, c.get(1, "s0001").await);
    assert_eq!((a.id.as_str(), b.id.as_str()), (winner, winner));
    c.host.open_gate();
    let done = c.until(1, "s0001", |j| j.status() == BackfillStatus::Succeeded).await;
    assert_eq!(done.id, winner);
    assert_eq!(c.get(0, "s0001").await, done);
}

#[tokio::test]
async fn a_watcher_on_the_other_replica_sees_every_change_and_can_cancel() {
    let c = cluster(3, &[]).await;
    c.host.set(|s| s.gated = true);
    let job = c.start(0, "s0000").await;
    let runner = c.runner(&job.id).await;
    let other = 1 - runner;
    let req = WatchBackfillRequest { session_id: "s0000".into(), ..Default::default() };
    let mut watch = c.replicas[other].client().await.watch_backfill(authed(req, &c.token)).await.unwrap().into_inner();
    let first = watch.next().await.unwrap().unwrap().job.unwrap();
    assert_eq!(first.id, job.id);
    // Let batches through one at a time: each arrives at the other replica's watcher.
    let mut contacts = vec![first.contacts];
    c.host.open_gate();
    while let Some(update) = tokio::time::timeout(Duration::from_secs(30), watch.next()).await.unwrap() {
        let update = update.unwrap().job.unwrap();
        assert_eq!(update.id, job.id);
        contacts.push(update.contacts);
        if update.status() != BackfillStatus::Running && update.status() != BackfillStatus::Queued {
            assert_eq!(update.status(), BackfillStatus::Succeeded);
            break;
        }
    }
    assert_eq!(contacts.last(), Some(&200));
    assert!(contacts.windows(2).all(|w| w[0] <= w[1]), "never backwards: {contacts:?}");
    assert!(contacts.len() >= 4, "progress arrived as it happened: {contacts:?}");

    // Cancel through the replica that does not run the job.
    c.host.close_gate();
    let job = c.start(0, "s0002").await;
    let runner = c.runner(&job.id).await;
    c.until(runner, "s0002", |j| j.contacts > 0).await;
    let req = CancelBackfillRequest { session_id: "s0002".into() };
    let mut client = c.replicas[1 - runner].client().await;
    let stopped = client.cancel_backfill(authed(req, &c.token)).await.unwrap().into_inner().job.unwrap();
    assert_eq!((stopped.id.as_str(), stopped.status()), (job.id.as_str(), BackfillStatus::Failed));
    assert_eq!(stopped.error.as_deref(), Some("cancelled by a super_admin"));
    c.host.open_gate();
}

#[tokio::test]
async fn a_killed_replica_s_job_ends_interrupted_within_the_lease_and_the_data_stays() {
    let mut c = cluster(3, &["--backfill-lease-secs", "3"]).await;
    c.start(0, "s0000").await;
    c.until(0, "s0000", |j| j.status() == BackfillStatus::Succeeded).await;
    let before = c.contacts(0, "s0000").await;
    assert_eq!(before.len(), 200);

    c.host.set(|s| {
        s.contacts = (0..200).map(|i| contact(i + 1000, "second")).collect();
        s.gated = true;
    });
    let job = c.start(1, "s0000").await;
    let runner = c.runner(&job.id).await;
    c.until(runner, "s0000", |j| j.contacts > 0).await;
    c.replicas[runner].kill().await;
    let killed = Instant::now();
    let survivor = 1 - runner;
    let ended = c.until(survivor, "s0000", |j| j.status() == BackfillStatus::Failed).await;
    let took = killed.elapsed();
    assert_eq!((ended.id.as_str(), ended.error.as_deref()), (job.id.as_str(), Some("interrupted")));
    assert!(took < Duration::from_secs(10), "a 3 s lease is reaped within 3.75 s plus polling, took {took:?}");
    assert_eq!(c.contacts(survivor, "s0000").await, before, "the previous data, row by row");

    // The survivor takes new jobs for the session.
    c.host.set(|s| s.gated = false);
    c.host.open_gate();
    let again = c.start(survivor, "s0000").await;
    let done = c.until(survivor, "s0000", |j| j.id == again.id && j.status() == BackfillStatus::Succeeded).await;
    assert_eq!(done.contacts, 200);
    assert!(c.contacts(survivor, "s0000").await.iter().all(|c| c.push_name.as_deref().unwrap().starts_with("second")));
}

#[tokio::test]
async fn sigterm_ends_the_replica_s_jobs_at_once_and_exits_zero() {
    let mut c = cluster(3, &[]).await;
    c.host.set(|s| s.gated = true);
    let job = c.start(0, "s0001").await;
    let runner = c.runner(&job.id).await;
    c.until(runner, "s0001", |j| j.contacts > 0).await;
    let stopping = Instant::now();
    let status = c.replicas[runner].stop().await;
    assert_eq!(status.code(), Some(0));
    let ended = c.until(1 - runner, "s0001", |j| j.status() == BackfillStatus::Failed).await;
    assert_eq!(ended.error.as_deref(), Some("interrupted"));
    assert!(stopping.elapsed() < Duration::from_secs(10), "ended by the stop, not by the 20 s lease");
}

#[tokio::test]
async fn queued_jobs_are_claimed_by_whichever_replica_has_room() {
    let c = cluster(4, &["--backfill-concurrency", "1"]).await;
    c.host.set(|s| s.gated = true);
    let jobs = [c.start(0, "s0000").await, c.start(0, "s0001").await, c.start(0, "s0002").await];
    let runners = [c.runner(&jobs[0].id).await, c.runner(&jobs[1].id).await];
    assert_ne!(runners[0], runners[1], "one slot per replica: the second job went to the other replica");
    assert_eq!(c.get(1, "s0002").await.status(), BackfillStatus::Queued, "no room left anywhere");
    c.host.open_gate();
    for session in ["s0000", "s0001", "s0002"] {
        c.until(0, session, |j| j.status() == BackfillStatus::Succeeded).await;
    }
}

#[tokio::test]
async fn a_second_serve_on_a_sqlite_file_refuses_to_start() {
    let jwks = JwksServer::start().await;
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("one.db").display().to_string();
    let first = Gateway::start_with_db(&db, &jwks.url(), &[]).await;
    let second = tokio::process::Command::new(BIN)
        .args(["--database-url", &db, "serve", "--grpc-addr", "127.0.0.1:0", "--http-addr", "127.0.0.1:0"])
        .args(["--jwks-url", &jwks.url()])
        .output()
        .await
        .unwrap();
    assert!(!second.status.success());
    let stderr = String::from_utf8_lossy(&second.stderr);
    assert!(stderr.contains(&format!("database {db} is in use by another `wa-gateway serve`")), "{stderr}");
    assert!(stderr.contains("PostgreSQL"), "the message points to cluster mode: {stderr}");
    // Short writers still work beside the server, and the server keeps serving.
    assert!(import(&db, &session_line("x1", "org_a", "working", "gw-1")).status.success());
    assert!(cli(&db, &["api-keys", "create", "--org", "org_a"]).status.success());
    let token = mint(KeyKind::Rsa, "rsa-1", &super_admin_claims());
    let page = first.client().await.list_sessions(authed(ListSessionsRequest::default(), &token)).await.unwrap();
    assert_eq!(page.into_inner().data.len(), 1);
}

#[tokio::test]
async fn every_command_works_on_postgresql_and_never_shows_the_password() {
    let db = pg::database().await;
    let migrate = cli(&db, &["migrate"]);
    assert!(migrate.status.success(), "{}", String::from_utf8_lossy(&migrate.stderr));
    let created = cli(&db, &["api-keys", "create", "--org", "org_a", "--name", "ci"]);
    assert!(created.status.success(), "{}", String::from_utf8_lossy(&created.stderr));
    let listed = cli(&db, &["api-keys", "list", "--json"]);
    assert!(String::from_utf8_lossy(&listed.stdout).contains("\"name\":\"ci\""));

    let url = "postgres://gateway:s3cret-Pa55@127.0.0.1:1/nowhere";
    for args in [&["migrate"][..], &["sessions", "import", "-"], &["api-keys", "list"]] {
        let out = cli(url, args);
        assert!(!out.status.success());
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(!stderr.contains("s3cret-Pa55"), "{args:?} leaked the password: {stderr}");
        assert!(stderr.contains("postgres://gateway:***@127.0.0.1:1/nowhere"), "{args:?}: {stderr}");
    }
    let help = std::process::Command::new(BIN).arg("--help").env("WA_GATEWAY_DATABASE_URL", url).output().unwrap();
    assert!(!String::from_utf8_lossy(&help.stdout).contains("s3cret-Pa55"), "--help shows the environment's password");
}
