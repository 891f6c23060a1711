//! The store under faults, through a TCP proxy the test controls between a
//! replica and a real PostgreSQL (`common::proxy`): a replica cut off for
//! longer than its lease loses its job, and its gateway's session feed, to
//! the others, writes nothing for either after the cut heals, and rejoins.

use std::time::{Duration, Instant};

use sqlx::Connection;
use tokio_stream::StreamExt;
use wa_gateway::proto::admin::*;
use wa_gateway::proto::host::{HostedSession, HostedSessionStatus, WatchSessionsResponse};

use crate::common::Gateway;
use crate::common::host::{Script, ScriptedHost, contact, group};
use crate::common::proxy::{FaultProxy, Mode, port_of};
use crate::common::*;

const LEASE_SECS: u64 = 3;

struct Replica<'a> {
    gw: &'a Gateway,
    token: &'a str,
}

impl Replica<'_> {
    async fn start(&self, session: &str) -> BackfillJob {
        let req = StartBackfillRequest { session_id: session.into() };
        let mut client = self.gw.client().await;
        client.start_backfill(authed(req, self.token)).await.unwrap().into_inner().job.unwrap()
    }

    async fn get(&self, session: &str) -> Result<BackfillJob, tonic::Status> {
        let req = GetBackfillRequest { session_id: session.into() };
        let mut client = self.gw.client().await;
        Ok(client.get_backfill(authed(req, self.token)).await?.into_inner().job.unwrap())
    }

    async fn until(&self, what: &str, session: &str, done: impl Fn(&BackfillJob) -> bool) -> BackfillJob {
        eventually(what, Duration::from_secs(60), || async {
            let job = self.get(session).await.ok()?;
            done(&job).then_some(job)
        })
        .await
    }

    async fn contacts(&self, session: &str) -> Vec<Contact> {
        let mut client = self.gw.client().await;
        let (mut out, mut cursor) = (Vec::new(), String::new());
        loop {
            let req = ListSessionContactsRequest { session_id: session.into(), limit: Some(500), cursor };
            let page = client.list_session_contacts(authed(req, self.token)).await.unwrap().into_inner();
            out.extend(page.data);
            match page.next_cursor {
                Some(c) => cursor = c,
                None => return out,
            }
        }
    }

    async fn ready(&self) -> u16 {
        match reqwest::get(self.gw.http("/readyz")).await {
            Ok(response) => response.status().as_u16(),
            Err(_) => 0,
        }
    }
}

/// The host's data for a session's first backfill: 200 contacts and 5
/// groups of 4, in batches of 20.
fn first_backfill() -> Script {
    Script {
        contacts: (0..200).map(|i| contact(i, "first")).collect(),
        groups: (0..5).map(|i| group(i, 4, "first")).collect(),
        batch: 20,
        ..Default::default()
    }
}

/// A JWKS server, a super_admin token it signs, and a fresh PostgreSQL
/// database holding `sessions` (of org_a, on gw-1).
async fn platform(sessions: &[&str]) -> (JwksServer, String, String) {
    let jwks = JwksServer::start().await;
    let token = mint(KeyKind::Rsa, "rsa-1", &super_admin_claims());
    let db = pg::database().await;
    if !sessions.is_empty() {
        let lines: Vec<String> = sessions.iter().map(|id| session_line(id, "org_a", "working", "gw-1")).collect();
        assert!(import(&db, &lines.join("\n")).status.success());
    }
    (jwks, token, db)
}

#[tokio::test]
async fn a_replica_cut_off_from_postgres_loses_its_job_never_publishes_it_and_rejoins() {
    let (host, url) = ScriptedHost::start(first_backfill()).await;
    let (jwks, token, db) = platform(&["s1"]).await;
    let proxy = FaultProxy::start(port_of(&db)).await;
    let lease = LEASE_SECS.to_string();
    let args = ["--host", &format!("gw-1={url}"), "--backfill-lease-secs", &lease];
    let cut_off = Gateway::start_with_db_logged(&proxy.url(&db), &jwks.url(), &args).await;
    let a = Replica { gw: &cut_off, token: &token };
    a.start("s1").await;
    a.until("the first backfill", "s1", |j| j.status() == BackfillStatus::Succeeded).await;
    let before = a.contacts("s1").await;
    assert_eq!(before.len(), 200);

    // A second backfill runs on the replica behind the proxy, held mid-way.
    host.set(|s| {
        s.contacts = (0..200).map(|i| contact(i + 1000, "second")).collect();
        s.gated = true;
    });
    let job = a.start("s1").await;
    a.until("the second backfill under way", "s1", |j| j.id == job.id && j.contacts > 0).await;
    let direct = Gateway::start_with_db(&db, &jwks.url(), &args).await;
    let b = Replica { gw: &direct, token: &token };

    // The cut comes inside the replica's publishing transaction, the worst
    // moment: it has locked the job row (its fence) and waits on the
    // session's generation row, which the test holds. The test lets go,
    // and the cut leaves that transaction open, holding the job row.
    let mut holder = sqlx::PgConnection::connect(&db).await.unwrap();
    sqlx::query("BEGIN").execute(&mut holder).await.unwrap();
    sqlx::query("SELECT 1 FROM session_data_generations WHERE session_id = 's1' FOR UPDATE")
        .execute(&mut holder)
        .await
        .unwrap();
    host.open_gate();
    pg::until_waiting_on_a_lock(&db, "session_data_generations").await;
    proxy.set(Mode::Cut);
    let cut = Instant::now();
    sqlx::query("COMMIT").execute(&mut holder).await.unwrap();
    let ended = b.until("the other replica reaps the job", "s1", |j| j.status() == BackfillStatus::Failed).await;
    let took = cut.elapsed();
    eprintln!("a job cut off from PostgreSQL was reaped {took:?} after the cut (lease {LEASE_SECS} s)");
    assert_eq!((ended.id.as_str(), ended.error.as_deref()), (job.id.as_str(), Some("interrupted")));
    assert!(took < Duration::from_secs(LEASE_SECS * 5), "reaped {took:?} after the cut");
    assert_eq!(b.ready().await, 200);

    // The cut heals after the job was reaped: the cut-off replica finishes
    // its run, and publishes nothing.
    tokio::time::sleep(Duration::from_secs(1)).await;
    proxy.set(Mode::Forward);
    eventually("the cut-off replica ends its run", Duration::from_secs(60), || async {
        let logs = cut_off.logs.lock().unwrap();
        logs.iter().any(|l| l.contains("backfill finished") && l.contains(&job.id)).then_some(())
    })
    .await;
    let after = b.get("s1").await.unwrap();
    assert_eq!((after.status(), after.error.as_deref()), (BackfillStatus::Failed, Some("interrupted")), "{after:?}");
    assert_eq!(b.contacts("s1").await, before, "the previous data, row by row");

    // It rejoins: ready, and serving the same answers.
    eventually("the cut-off replica is ready again", Duration::from_secs(60), || async {
        (a.ready().await == 200).then_some(())
    })
    .await;
    assert_eq!(a.contacts("s1").await, before);
}

fn hosted(status: HostedSessionStatus, updated_at_ms: i64) -> HostedSession {
    HostedSession {
        id: "f1".into(),
        organization_id: "org_a".into(),
        status: status.into(),
        created_at_ms: 1_700_000_000_000,
        updated_at_ms,
        ..Default::default()
    }
}

#[tokio::test]
async fn a_follower_cut_off_from_postgres_loses_its_gateway_and_applies_nothing_after_the_cut_heals() {
    const T0: i64 = 1_750_000_000_000;
    let snapshot = vec![hosted(HostedSessionStatus::Working, T0)];
    let (host, url) = ScriptedHost::start(Script { feed: true, snapshot: Some(snapshot), ..Default::default() }).await;
    let (jwks, token, db) = platform(&[]).await;
    let proxy = FaultProxy::start(port_of(&db)).await;
    let lease = LEASE_SECS.to_string();
    let args = ["--host", &format!("gw-1={url}"), "--backfill-lease-secs", &lease, "--feed-backoff-max-secs", "1"];
    let cut_off = Gateway::start_with_db_logged(&proxy.url(&db), &jwks.url(), &args).await;
    let status = |gw: &Gateway| {
        let (url, token) = (gw.http("/api/v1/admin/sessions/f1"), token.clone());
        async move {
            let response = reqwest::Client::new().get(url).bearer_auth(token).send().await.ok()?;
            let body: serde_json::Value = response.json().await.ok()?;
            body["status"].as_str().map(str::to_owned)
        }
    };
    eventually("the cut-off replica follows gw-1", Duration::from_secs(60), || async {
        (status(&cut_off).await.as_deref() == Some("working")).then_some(())
    })
    .await;
    let direct = Gateway::start_with_db(&db, &jwks.url(), &args).await;

    // Cut off, the follower still hears its host: a change arrives, and its
    // write waits in the proxy. The host's next snapshot, for whoever
    // follows next, is older than that change.
    proxy.set(Mode::Cut);
    let cut = Instant::now();
    host.set(|s| s.snapshot = Some(vec![hosted(HostedSessionStatus::Stopped, T0 + 500)]));
    let change = hosted(HostedSessionStatus::Failed, T0 + 1_000);
    host.send(WatchSessionsResponse { upserted: vec![change], removed: vec![], snapshot_complete: false }).await;
    eventually("the follower takes the change", Duration::from_secs(30), || async {
        (host.feed_backlog() == 0).then_some(())
    })
    .await;

    eventually("the other replica takes gw-1 over", Duration::from_secs(60), || async {
        (status(&direct).await.as_deref() == Some("stopped")).then_some(())
    })
    .await;
    let took = cut.elapsed();
    eprintln!(
        "a gateway's follower cut off from PostgreSQL was replaced {took:?} after the cut (lease {LEASE_SECS} s)"
    );
    assert!(took < Duration::from_secs(LEASE_SECS * 5), "taken over {took:?} after the cut");

    // The cut heals: the old follower's waiting write finds its lease gone
    // (or its replica, renewing, finds the gateway taken and stops it first).
    proxy.set(Mode::Forward);
    eventually("the old follower stops", Duration::from_secs(60), || async {
        let logs = cut_off.logs.lock().unwrap();
        let stopped = |l: &&String| {
            l.contains("this replica stops applying the feed") || l.contains("another replica took this session feed")
        };
        logs.iter().any(|l| stopped(&l)).then_some(())
    })
    .await;
    assert_eq!(status(&direct).await.as_deref(), Some("stopped"), "a write from the old follower landed");
    assert_eq!(status(&cut_off).await.as_deref(), Some("stopped"));
}

/// Status and envelope code of a REST listing on `gw`.
async fn listing(gw: &Gateway, token: &str) -> (u16, String) {
    let response = reqwest::Client::new()
        .get(gw.http("/api/v1/admin/sessions"))
        .bearer_auth(token)
        .timeout(Duration::from_secs(30))
        .send()
        .await
        .unwrap();
    let status = response.status().as_u16();
    let body: serde_json::Value = response.json().await.unwrap_or_default();
    (status, body["error"]["code"].as_str().unwrap_or("").to_owned())
}

#[tokio::test]
async fn a_postgres_outage_answers_503_meanwhile_and_the_replica_recovers_without_a_restart() {
    let (host, url) = ScriptedHost::start(first_backfill()).await;
    let (jwks, token, db) = platform(&["s1", "s2"]).await;
    let proxy = FaultProxy::start(port_of(&db)).await;
    let lease = LEASE_SECS.to_string();
    let args = ["--host", &format!("gw-1={url}"), "--backfill-lease-secs", &lease];
    let behind = Gateway::start_with_db(&proxy.url(&db), &jwks.url(), &args).await;
    let direct = Gateway::start_with_db(&db, &jwks.url(), &args).await;
    let (a, b) = (Replica { gw: &behind, token: &token }, Replica { gw: &direct, token: &token });
    b.start("s1").await;
    b.until("the first backfill", "s1", |j| j.status() == BackfillStatus::Succeeded).await;
    let before = b.contacts("s1").await;
    assert_eq!(listing(&behind, &token).await.0, 200);

    // The outage, as the replica sees a server restart: every connection
    // dropped, new ones refused.
    proxy.set(Mode::Refuse);
    proxy.reset();
    let mut answered = std::collections::BTreeMap::<(u16, String), usize>::new();
    eventually("the replica reports the outage", Duration::from_secs(30), || async {
        (a.ready().await == 503).then_some(())
    })
    .await;
    for _ in 0..20 {
        *answered.entry(listing(&behind, &token).await).or_default() += 1;
    }
    let mut grpc = behind.client().await;
    let refused = grpc.list_sessions(authed(ListSessionsRequest::default(), &token)).await.unwrap_err();
    eprintln!("answers during the outage: {answered:?}; gRPC: {:?}", refused.code());
    assert_eq!(answered.keys().collect::<Vec<_>>(), [&(503, "unavailable".to_owned())], "only 503 during the outage");
    assert_eq!(refused.code(), tonic::Code::Unavailable);

    // Meanwhile the other replica runs a job for s2, held by the host.
    host.set(|s| {
        s.contacts = (0..200).map(|i| contact(i + 1000, "second")).collect();
        s.gated = true;
    });
    let job = b.start("s2").await;

    // The database is back: the replica is ready again, answers, and its
    // LISTEN connection carries the other replica's job to its watcher.
    proxy.set(Mode::Forward);
    eventually("the replica is ready again", Duration::from_secs(60), || async {
        (a.ready().await == 200).then_some(())
    })
    .await;
    assert_eq!(listing(&behind, &token).await.0, 200);
    let req = WatchBackfillRequest { session_id: "s2".into(), ..Default::default() };
    let mut watch = behind.client().await.watch_backfill(authed(req, &token)).await.unwrap().into_inner();
    host.open_gate();
    let mut last = None;
    while let Some(item) = tokio::time::timeout(Duration::from_secs(60), watch.next()).await.expect("watch stalled") {
        last = item.unwrap().job;
    }
    let last = last.expect("at least one state");
    assert_eq!((last.id.as_str(), last.status()), (job.id.as_str(), BackfillStatus::Succeeded));
    assert_eq!(a.contacts("s2").await.len(), 200);
    assert_eq!(a.contacts("s1").await, before, "s1's data, row by row, across the outage");
}

#[tokio::test]
async fn a_job_running_across_a_postgres_outage_ends_matching_its_data() {
    let (host, url) = ScriptedHost::start(first_backfill()).await;
    let (jwks, token, db) = platform(&["s1"]).await;
    let proxy = FaultProxy::start(port_of(&db)).await;
    let lease = LEASE_SECS.to_string();
    let args = ["--host", &format!("gw-1={url}"), "--backfill-lease-secs", &lease];
    let behind = Gateway::start_with_db(&proxy.url(&db), &jwks.url(), &args).await;
    let a = Replica { gw: &behind, token: &token };
    a.start("s1").await;
    a.until("the first backfill", "s1", |j| j.status() == BackfillStatus::Succeeded).await;
    let before = a.contacts("s1").await;

    host.set(|s| {
        s.contacts = (0..200).map(|i| contact(i + 1000, "second")).collect();
        s.gated = true;
    });
    let job = a.start("s1").await;
    a.until("the second backfill under way", "s1", |j| j.id == job.id && j.contacts > 0).await;
    proxy.set(Mode::Refuse);
    proxy.reset();
    host.open_gate();
    eventually("the replica reports the outage", Duration::from_secs(30), || async {
        (a.ready().await == 503).then_some(())
    })
    .await;
    proxy.set(Mode::Forward);
    let ended = a
        .until("the job ends", "s1", |j| {
            j.id == job.id && matches!(j.status(), BackfillStatus::Succeeded | BackfillStatus::Failed)
        })
        .await;
    eprintln!("a job across an outage ended {:?} ({:?})", ended.status(), ended.error);
    let stored = a.contacts("s1").await;
    match ended.status() {
        BackfillStatus::Succeeded => {
            assert_eq!(stored.len(), 200);
            assert!(stored.iter().all(|c| c.push_name.as_deref().unwrap().starts_with("second")), "mixed data");
        }
        _ => assert_eq!(stored, before, "a failed job left the previous data, row by row"),
    }
}

#[tokio::test]
async fn a_slow_database_with_an_exhausted_pool_answers_503_within_the_acquire_bound() {
    let (jwks, token, db) = platform(&["s1"]).await;
    let proxy = FaultProxy::start(port_of(&db)).await;
    let args = ["--db-pool-size", "2", "--db-acquire-timeout-secs", "1"];
    let gw = Gateway::start_with_db(&proxy.url(&db), &jwks.url(), &args).await;
    assert_eq!(listing(&gw, &token).await.0, 200);

    // 100 ms more per round trip, and 64 calls at once on 2 connections
    // (a call takes about three round trips; with 200 ms one or none got
    // through within the 1 s bound, so whether any did was a matter of
    // the upkeep's timing).
    proxy.set(Mode::Slow(Duration::from_millis(50)));
    let started = Instant::now();
    let calls: Vec<_> = (0..64).map(|_| listing(&gw, &token)).collect();
    let answers = futures_util::future::join_all(calls).await;
    let took = started.elapsed();
    let mut counted = std::collections::BTreeMap::<(u16, String), usize>::new();
    for answer in answers {
        *counted.entry(answer).or_default() += 1;
    }
    eprintln!("64 calls on a pool of 2 over a slow database: {counted:?} in {took:?}");
    assert!(
        counted.keys().all(|(status, code)| *status == 200 || (*status == 503 && code == "unavailable")),
        "only 200 and 503: {counted:?}"
    );
    assert!(counted.contains_key(&(503, "unavailable".to_owned())), "the pool was exhausted: {counted:?}");
    assert!(counted.contains_key(&(200, String::new())), "some calls were served: {counted:?}");

    // The database is fast again: nothing is left waiting.
    proxy.set(Mode::Forward);
    assert_eq!(listing(&gw, &token).await.0, 200);
}

#[tokio::test]
async fn serve_with_postgres_down_starts_unready_and_becomes_ready_when_it_answers() {
    let (jwks, token, db) = platform(&["s1"]).await;
    let proxy = FaultProxy::start(port_of(&db)).await;
    proxy.set(Mode::Refuse);
    let mut gw = Gateway::start_with_db_logged(&proxy.url(&db), &jwks.url(), &[]).await;
    let base = gw.http("");
    let get = |path: &str| {
        let url = format!("{base}{path}");
        let token = token.clone();
        async move {
            let response = reqwest::Client::new().get(url).bearer_auth(token).send().await.unwrap();
            let status = response.status().as_u16();
            let body: serde_json::Value = response.json().await.unwrap_or_default();
            (status, body["error"]["code"].as_str().unwrap_or("").to_owned())
        }
    };
    assert_eq!(get("/healthz").await.0, 200, "alive: not to be restarted");
    assert_eq!(get("/readyz").await, (503, "unavailable".to_owned()));
    assert_eq!(get("/api/v1/admin/sessions").await, (503, "unavailable".to_owned()));
    eventually("a log line saying why", Duration::from_secs(30), || async {
        let logs = gw.logs.lock().unwrap();
        logs.iter().any(|l| l.contains("the database does not answer") && !l.contains(&db)).then_some(())
    })
    .await;
    assert!(gw.child.try_wait().unwrap().is_none(), "it waits instead of exiting");

    proxy.set(Mode::Forward);
    eventually("ready once the database answers", Duration::from_secs(60), || async {
        (get("/readyz").await.0 == 200).then_some(())
    })
    .await;
    assert_eq!(get("/api/v1/admin/sessions").await.0, 200);
    let mut client = gw.client().await;
    let listed = client.list_sessions(authed(ListSessionsRequest::default(), &token)).await.unwrap().into_inner();
    assert_eq!(listed.data.len(), 1);
    assert!(gw.stop().await.success());
}

#[tokio::test]
async fn a_statement_stuck_on_a_lock_answers_503_at_the_statement_timeout_and_a_waiting_publish_is_exempt() {
    let (host, url) = ScriptedHost::start(Script {
        contacts: (0..200).map(|i| contact(i, "first")).collect(),
        batch: 50,
        ..Default::default()
    })
    .await;
    let (jwks, token, db) = platform(&["s1"]).await;
    let args = ["--host", &format!("gw-1={url}"), "--db-statement-timeout-secs", "1"];
    let gw = Gateway::start_with_db(&db, &jwks.url(), &args).await;
    let replica = Replica { gw: &gw, token: &token };

    // A listing stuck behind a lock the test holds answers 503 at the timeout.
    let mut holder = sqlx::PgConnection::connect(&db).await.unwrap();
    sqlx::query("BEGIN").execute(&mut holder).await.unwrap();
    sqlx::query("LOCK TABLE sessions IN ACCESS EXCLUSIVE MODE").execute(&mut holder).await.unwrap();
    let started = Instant::now();
    let answered = listing(&gw, &token).await;
    eprintln!("a listing stuck on a lock answered {answered:?} after {:?}", started.elapsed());
    assert_eq!(answered, (503, "unavailable".to_owned()));
    sqlx::query("COMMIT").execute(&mut holder).await.unwrap();
    assert_eq!(listing(&gw, &token).await.0, 200);

    // A publish that waits on a lock for longer than the timeout still lands.
    sqlx::query("BEGIN").execute(&mut holder).await.unwrap();
    sqlx::query("LOCK TABLE session_data_generations IN EXCLUSIVE MODE").execute(&mut holder).await.unwrap();
    let job = replica.start("s1").await;
    pg::until_waiting_on_a_lock(&db, "session_data_generations").await;
    // The fault lasts twice the statement timeout.
    tokio::time::sleep(Duration::from_secs(2)).await;
    sqlx::query("COMMIT").execute(&mut holder).await.unwrap();
    let done = replica.until("the job ends", "s1", |j| j.id == job.id && j.finished_at.is_some()).await;
    assert_eq!((done.status(), done.contacts), (BackfillStatus::Succeeded, 200), "{done:?}");
    assert_eq!(replica.contacts("s1").await.len(), 200);
    // Never cancelled and retried: the backfill met no busy store.
    let metrics = reqwest::get(gw.http("/metrics")).await.unwrap().text().await.unwrap();
    let retried = metrics.lines().find(|l| l.starts_with("wa_gateway_store_busy_total{during=\"backfill\"}"));
    assert_eq!(retried.and_then(|l| l.split_whitespace().last()), Some("0"), "{retried:?}");
    drop(host);
}
