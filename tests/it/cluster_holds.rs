//! Cluster mode's shared directory state, through two real replicas on one
//! PostgreSQL: a held snapshot shows on every replica the moment its
//! follower holds it, and any replica accepts it; and a replica keeps
//! every gateway it follows while one of its feed writes waits on a lock
//! for several leases.

use std::collections::BTreeMap;
use std::time::Duration;

use serde_json::Value;
use sqlx::Connection;
use wa_gateway::proto::host::{HostedSession, HostedSessionStatus, WatchSessionsResponse};

use crate::common::Gateway;
use crate::common::host::{self, Script, ScriptedHost};
use crate::common::{JwksServer, KeyKind, eventually, import, mint, pg, session_line, super_admin_claims};

const LEASE_SECS: u64 = 3;

fn hosted(id: &str) -> HostedSession {
    host::hosted(id, "org_a", HostedSessionStatus::Working, 1_750_000_000_000)
}

/// Each gateway as `replica` shows it.
async fn gateways(replica: &Gateway, token: &str) -> BTreeMap<String, Value> {
    let body: Value = reqwest::Client::new()
        .get(replica.http("/api/v1/admin/gateways"))
        .bearer_auth(token)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    body["data"].as_array().unwrap().iter().map(|g| (g["id"].as_str().unwrap().to_owned(), g.clone())).collect()
}

async fn sessions_on(replica: &Gateway, token: &str, gateway: &str) -> usize {
    let body: Value = reqwest::Client::new()
        .get(replica.http(&format!("/api/v1/admin/sessions?gatewayId={gateway}&limit=200")))
        .bearer_auth(token)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    body["data"].as_array().unwrap().len()
}

fn pid_of(follower: &str) -> u32 {
    follower.split('-').next().unwrap().parse().unwrap()
}

#[tokio::test]
async fn a_held_snapshot_shows_on_every_replica_at_once_and_either_replica_accepts_it() {
    let jwks = JwksServer::start().await;
    let token = mint(KeyKind::Rsa, "rsa-1", &super_admin_claims());
    let db = pg::database().await;
    let lines: Vec<String> = (0..30).map(|i| session_line(&format!("h{i:02}"), "org_a", "working", "gw-1")).collect();
    assert!(import(&db, &lines.join("\n")).status.success());
    // The host holds 5 of the 30: a snapshot that would remove 25 is held.
    let script = Script {
        feed: true,
        snapshot: Some((0..5).map(|i| hosted(&format!("h{i:02}"))).collect()),
        ..Default::default()
    };
    let (_host, url) = ScriptedHost::start(script).await;
    let lease = LEASE_SECS.to_string();
    let args = ["--backfill-lease-secs", &lease, "--feed-backoff-max-secs", "1", "--host", &format!("gw-1={url}")];
    let first = Gateway::start_with_db(&db, &jwks.url(), &args).await;
    let second = Gateway::start_with_db(&db, &jwks.url(), &args).await;
    let patience = Duration::from_secs(60);

    // As soon as the follower shows the hold, the other replica shows it too.
    let (follower, other) = eventually("one replica holds the snapshot", patience, || async {
        for (me, them) in [(&first, &second), (&second, &first)] {
            let mine = &gateways(me, &token).await["gw-1"];
            let follows = mine["follower"].as_str().is_some_and(|f| pid_of(f) == me.child.id().unwrap());
            if follows && mine["heldRemovals"] == 25 {
                return Some((me, them));
            }
        }
        None
    })
    .await;
    let elsewhere = &gateways(other, &token).await["gw-1"];
    assert_eq!(elsewhere["heldRemovals"], 25, "{elsewhere}");
    assert!(elsewhere["lastError"].as_str().unwrap().contains("snapshot held"), "{elsewhere}");
    assert_eq!(sessions_on(follower, &token, "gw-1").await, 30, "nothing removed while held");

    // The replica that does not follow the gateway takes the accept.
    let accepted = reqwest::Client::new()
        .post(other.http("/api/v1/admin/gateways/gw-1:acceptSnapshot"))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(accepted.status(), 200, "{}", accepted.text().await.unwrap());
    eventually("the follower applies the accepted snapshot", patience, || async {
        (sessions_on(other, &token, "gw-1").await == 5).then_some(())
    })
    .await;
    for replica in [follower, other] {
        eventually("every replica shows nothing held", patience, || async {
            (gateways(replica, &token).await["gw-1"]["heldRemovals"] == 0).then_some(())
        })
        .await;
    }
    // Nothing is held any more, anywhere.
    let again = reqwest::Client::new()
        .post(follower.http("/api/v1/admin/gateways/gw-1:acceptSnapshot"))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(again.status(), 409);
    let body: Value = again.json().await.unwrap();
    assert_eq!(body["error"]["details"]["reason"], "NOTHING_HELD", "{body}");
}

/// The earliest lease end of the gateways `replica` follows, in ms from now
/// (the database's clock).
async fn soonest_lease_end(sql: &mut sqlx::PgConnection) -> i64 {
    sqlx::query_scalar(
        "SELECT min(lease_expires_at) - (extract(epoch from clock_timestamp()) * 1000)::bigint FROM feed_followers",
    )
    .fetch_one(sql)
    .await
    .unwrap()
}

#[tokio::test]
async fn a_replica_keeps_every_gateway_while_one_of_its_feed_writes_waits_for_several_leases() {
    let jwks = JwksServer::start().await;
    let token = mint(KeyKind::Rsa, "rsa-1", &super_admin_claims());
    let db = pg::database().await;
    let first = Script { feed: true, snapshot: Some(vec![hosted("k1"), hosted("k2")]), ..Default::default() };
    let (host, url1) = ScriptedHost::start(first).await;
    let other = Script { feed: true, snapshot: Some(vec![hosted("k9")]), ..Default::default() };
    let (_other, url2) = ScriptedHost::start(other).await;
    let lease = LEASE_SECS.to_string();
    let args = [
        "--backfill-lease-secs",
        &lease,
        "--feed-backoff-max-secs",
        "1",
        "--host",
        &format!("gw-1={url1}"),
        "--host",
        &format!("gw-2={url2}"),
    ];
    let replica = Gateway::start_with_db(&db, &jwks.url(), &args).await;
    let patience = Duration::from_secs(60);
    eventually("both feeds are live", patience, || async {
        let g = gateways(&replica, &token).await;
        (g.values().all(|g| g["feed"] == "live") && sessions_on(&replica, &token, "gw-1").await == 2).then_some(())
    })
    .await;

    // A removal on gw-1 waits on a lock the test holds: its transaction
    // holds gw-1's lease row the whole time.
    let mut holder = sqlx::PgConnection::connect(&db).await.unwrap();
    sqlx::query("BEGIN").execute(&mut holder).await.unwrap();
    sqlx::query("LOCK TABLE wa_contacts IN EXCLUSIVE MODE").execute(&mut holder).await.unwrap();
    host.send(WatchSessionsResponse { upserted: vec![], removed: vec!["k2".into()], snapshot_complete: false }).await;
    pg::until_waiting_on_a_lock(&db, "wa_contacts").await;

    // For three leases, every lease of the replica is renewed.
    let mut sql = sqlx::PgConnection::connect(&db).await.unwrap();
    let until = tokio::time::Instant::now() + Duration::from_secs(LEASE_SECS * 3);
    let mut lowest = i64::MAX;
    while tokio::time::Instant::now() < until {
        lowest = lowest.min(soonest_lease_end(&mut sql).await);
        assert!(lowest > 0, "a lease ran out while a feed write waited: {lowest} ms");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    eprintln!("the soonest lease end stayed {lowest} ms ahead while the removal waited");
    let f = gateways(&replica, &token).await;
    assert!(f.values().all(|g| g["follower"].as_str().is_some()), "{f:?}");

    sqlx::query("COMMIT").execute(&mut holder).await.unwrap();
    eventually("the removal lands", patience, || async {
        (sessions_on(&replica, &token, "gw-1").await == 1).then_some(())
    })
    .await;
}
