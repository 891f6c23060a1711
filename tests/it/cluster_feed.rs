//! Cluster mode and the live directory: two real replicas on one throwaway
//! PostgreSQL share four gateways' session feeds. Exactly one replica follows
//! each gateway, the gateways spread over the replicas, and when one replica
//! is killed the other takes its gateways over within the lease.

use std::collections::{BTreeMap, HashSet};
use std::time::{Duration, Instant};

use serde_json::Value;
use wa_gateway::proto::host::{HostedSession, HostedSessionStatus};

use crate::common::Gateway;
use crate::common::host::{Script, ScriptedHost};
use crate::common::{JwksServer, KeyKind, eventually, mint, pg, super_admin_claims};

const LEASE_SECS: u64 = 3;

fn hosted(id: &str) -> HostedSession {
    HostedSession {
        id: id.into(),
        organization_id: "org_a".into(),
        status: HostedSessionStatus::Working.into(),
        created_at_ms: 1_700_000_000_000,
        updated_at_ms: 1_750_000_000_000,
        ..Default::default()
    }
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
