//! Cluster mode and the live directory: two real replicas on one throwaway
//! PostgreSQL share four gateways' session feeds. Exactly one replica follows
//! each gateway, the gateways spread over the replicas, and when one replica
//! is killed the other takes its gateways over within the lease. A follower
//! whose lease another took writes nothing more: every feed write checks
//! the lease inside its own transaction.

use std::collections::{BTreeMap, HashSet};
use std::time::{Duration, Instant};

use serde_json::Value;
use sqlx::Connection;
use wa_gateway::proto::host::{HostedSession, HostedSessionStatus, WatchSessionsResponse};

use crate::common::Gateway;
use crate::common::host::{self, Script, ScriptedHost};
use crate::common::{JwksServer, KeyKind, eventually, mint, pg, super_admin_claims};

const LEASE_SECS: u64 = 3;

fn hosted(id: &str) -> HostedSession {
    host::hosted(id, "org_a", HostedSessionStatus::Working, 1_750_000_000_000)
}

/// Gateway id → the replica following it, as `replica` answers.
async fn followers(replica: &Gateway, token: &str) -> BTreeMap<String, Option<String>> {
    let body: Value = reqwest::Client::new()
        .get(replica.http("/api/v1/admin/gateways"))
        .bearer_auth(token)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    body["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|g| (g["id"].as_str().unwrap().to_owned(), g["follower"].as_str().map(str::to_owned)))
        .collect()
}

fn pid_of(follower: &str) -> u32 {
    follower.split('-').next().unwrap().parse().unwrap()
}

#[tokio::test]
async fn one_follower_per_gateway_spread_over_replicas_and_taken_over_when_one_dies() {
    let jwks = JwksServer::start().await;
    let token = mint(KeyKind::Rsa, "rsa-1", &super_admin_claims());
    let db = pg::database().await;
    let lease = LEASE_SECS.to_string();
    let mut args: Vec<String> =
        vec!["--backfill-lease-secs".into(), lease, "--feed-backoff-max-secs".into(), "1".into()];
    let mut hosts = Vec::new();
    for g in 1..=4 {
        let script = Script { feed: true, snapshot: Some(vec![hosted(&format!("c{g}"))]), ..Default::default() };
        let (host, url) = ScriptedHost::start(script).await;
        args.extend(["--host".into(), format!("gw-{g}={url}")]);
        hosts.push(host);
    }
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let first = Gateway::start_with_db(&db, &jwks.url(), &args).await;
    let patience = Duration::from_secs(60);
    eventually("the first replica follows all four", patience, || async {
        let f = followers(&first, &token).await;
        let by: HashSet<_> = f.values().collect();
        (f.values().all(Option::is_some) && by.len() == 1).then_some(())
    })
    .await;

    let mut second = Gateway::start_with_db(&db, &jwks.url(), &args).await;
    let split = eventually("two gateways each", patience, || async {
        let f = followers(&second, &token).await;
        let mut per: BTreeMap<String, usize> = BTreeMap::new();
        for follower in f.values() {
            *per.entry(follower.clone()?).or_default() += 1;
        }
        (per.len() == 2 && per.values().all(|n| *n == 2)).then_some(f)
    })
    .await;
    // Any replica answers for every gateway, and both say the same.
    assert_eq!(followers(&first, &token).await, split);

    // The second replica dies; the first takes its gateways over.
    let second_pid = second.child.id().unwrap();
    assert!(split.values().any(|f| pid_of(f.as_deref().unwrap()) == second_pid), "{split:?}");
    let killed = Instant::now();
    second.kill().await;
    eventually("the survivor follows all four", patience, || async {
        let f = followers(&first, &token).await;
        f.values().all(|f| f.as_deref().is_some_and(|f| pid_of(f) != second_pid)).then_some(())
    })
    .await;
    let took = killed.elapsed();
    eprintln!("gateways taken over {took:?} after the kill (lease {LEASE_SECS} s)");
    assert!(took < Duration::from_secs(LEASE_SECS * 4), "took {took:?}");
    for host in &hosts {
        assert!(host.feed_opens() >= 1);
    }
}

/// The status `replica` lists for session `id`.
async fn status_of(replica: &Gateway, token: &str, id: &str) -> Option<String> {
    let body: Value = reqwest::Client::new()
        .get(replica.http(&format!("/api/v1/admin/sessions/{id}")))
        .bearer_auth(token)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    body["status"].as_str().map(str::to_owned)
}

#[tokio::test]
async fn a_follower_whose_lease_another_took_writes_nothing_more_and_follows_again_from_a_new_snapshot() {
    let jwks = JwksServer::start().await;
    let token = mint(KeyKind::Rsa, "rsa-1", &super_admin_claims());
    let db = pg::database().await;
    let script = Script { feed: true, snapshot: Some(vec![hosted("f1")]), ..Default::default() };
    let (host, url) = ScriptedHost::start(script).await;
    // A long lease: the replica renews only every 10 s, so the write below
    // comes long before it could notice the takeover by renewing.
    let gateway = format!("gw-1={url}");
    let replica = Gateway::start_with_db(
        &db,
        &jwks.url(),
        &["--backfill-lease-secs", "30", "--feed-backoff-max-secs", "1", "--host", &gateway],
    )
    .await;
    let patience = Duration::from_secs(60);
    eventually("the snapshot is listed", patience, || async {
        (status_of(&replica, &token, "f1").await.as_deref() == Some("working")).then_some(())
    })
    .await;

    // Another holder takes the gateway's lease behind the replica's back,
    // as a replica would after this one's lease lapsed.
    let mut sql = sqlx::PgConnection::connect(&db).await.unwrap();
    let taken = sqlx::query(
        "UPDATE feed_followers SET follower = 'intruder', tenure = nextval('feed_tenures'), \
           lease_expires_at = (extract(epoch from clock_timestamp()) * 1000)::bigint + 60000 \
         WHERE gateway_id = 'gw-1'",
    )
    .execute(&mut sql)
    .await
    .unwrap();
    assert_eq!(taken.rows_affected(), 1);

    // The host sends a change on the stream the old follower still reads.
    let mut changed = hosted("f1");
    changed.status = HostedSessionStatus::Failed.into();
    changed.updated_at_ms += 1_000;
    host.send(WatchSessionsResponse { upserted: vec![changed.clone()], removed: vec![], snapshot_complete: false })
        .await;
    tokio::time::timeout(patience, host.feed_dropped()).await.expect("the old follower lets its stream go");
    assert_eq!(status_of(&replica, &token, "f1").await.as_deref(), Some("working"), "a fenced write landed");
    assert_eq!(host.feed_opens(), 1);

    // The intruder's lease runs out: the replica takes the gateway again,
    // under a new tenure, and starts from a fresh snapshot.
    host.set(|s| s.snapshot = Some(vec![changed]));
    sqlx::query("UPDATE feed_followers SET lease_expires_at = 0 WHERE gateway_id = 'gw-1'")
        .execute(&mut sql)
        .await
        .unwrap();
    eventually("the new snapshot is listed", patience, || async {
        (status_of(&replica, &token, "f1").await.as_deref() == Some("failed")).then_some(())
    })
    .await;
    assert_eq!(host.feed_opens(), 2);
}

#[tokio::test]
async fn a_feed_record_racing_an_import_of_a_newer_row_leaves_the_newer_row() {
    let jwks = JwksServer::start().await;
    let token = mint(KeyKind::Rsa, "rsa-1", &super_admin_claims());
    let db = pg::database().await;
    let script = Script { feed: true, snapshot: Some(vec![hosted("r0")]), ..Default::default() };
    let (host, url) = ScriptedHost::start(script).await;
    let gateway = format!("gw-1={url}");
    let replica = Gateway::start_with_db(&db, &jwks.url(), &["--host", &gateway]).await;
    let patience = Duration::from_secs(60);
    eventually("the snapshot is listed", patience, || async {
        (status_of(&replica, &token, "r0").await.as_deref() == Some("working")).then_some(())
    })
    .await;

    // An import inserts r1, newer than what the feed is about to send, and
    // has not committed yet: the feed's write finds no row when it reads.
    let mut import = sqlx::PgConnection::connect(&db).await.unwrap();
    sqlx::query("BEGIN").execute(&mut import).await.unwrap();
    sqlx::query(
        "INSERT INTO sessions (id, organization_id, gateway_id, status, created_at, updated_at) \
         VALUES ('r1', 'org_a', 'gw-1', 'stopped', 1700000000000, 1760000000000)",
    )
    .execute(&mut import)
    .await
    .unwrap();
    let mut older = hosted("r1");
    older.updated_at_ms = 1_750_000_000_000;
    host.send(WatchSessionsResponse { upserted: vec![older], removed: vec![], snapshot_complete: false }).await;

    // The feed's insert waits on the import's row; then the import commits.
    pg::until_waiting_on_a_lock(&db, "sessions").await;
    sqlx::query("COMMIT").execute(&mut import).await.unwrap();

    // The feed moves on (a later change lands), and r1 is still the import's.
    let mut later = hosted("r0");
    later.status = HostedSessionStatus::Failed.into();
    later.updated_at_ms += 1;
    host.send(WatchSessionsResponse { upserted: vec![later], removed: vec![], snapshot_complete: false }).await;
    eventually("the later change is listed", patience, || async {
        (status_of(&replica, &token, "r0").await.as_deref() == Some("failed")).then_some(())
    })
    .await;
    assert_eq!(status_of(&replica, &token, "r1").await.as_deref(), Some("stopped"), "the older feed record won");
}
