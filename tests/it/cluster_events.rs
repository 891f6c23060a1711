//! The change stream in cluster mode: two replicas on one PostgreSQL, the
//! feeds they follow and imports writing beside them; a watcher that reads
//! from one replica, disconnects and resumes on the other gets every event
//! exactly once, in the order the changes committed, compared with the
//! events table read afterwards.

use std::time::Duration;

use sqlx::Connection;
use wa_gateway::proto::host::{HostedSessionStatus as Hs, WatchSessionsResponse};

use crate::common::Gateway;
use crate::common::host::{Script, ScriptedHost, hosted};
use crate::common::{JwksServer, KeyKind, eventually, import, mint, pg, session_line, super_admin_claims};
use crate::events::read_events;

const PATIENCE: Duration = Duration::from_secs(60);

/// `(session, changedAt)` of every event, in commit order.
async fn committed(db: &str) -> Vec<(String, i64)> {
    let mut conn = sqlx::PgConnection::connect(db).await.unwrap();
    sqlx::query_as(
        "SELECT e.session_id, e.changed_at FROM session_event_commits c JOIN session_events e ON e.tx = c.tx \
         ORDER BY c.n, e.id",
    )
    .fetch_all(&mut conn)
    .await
    .unwrap()
}

#[tokio::test]
async fn a_watcher_resuming_on_another_replica_gets_every_event_once_in_commit_order() {
    let jwks = JwksServer::start().await;
    let token = mint(KeyKind::Rsa, "rsa-1", &super_admin_claims());
    let db = pg::database().await;
    let t = 1_750_000_000_000i64;
    let mut args: Vec<String> =
        vec!["--backfill-lease-secs".into(), "3".into(), "--feed-backoff-max-secs".into(), "1".into()];
    let mut hosts = Vec::new();
    for g in 1..=2 {
        let snapshot = vec![hosted(&format!("g{g}-s0"), "org_a", Hs::Working, t)];
        let (host, url) =
            ScriptedHost::start(Script { feed: true, snapshot: Some(snapshot), ..Default::default() }).await;
        args.extend(["--host".into(), format!("gw-{g}={url}")]);
        hosts.push(host);
    }
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let a = Gateway::start_with_db(&db, &jwks.url(), &args).await;
    let b = Gateway::start_with_db(&db, &jwks.url(), &args).await;
    let before = eventually("both snapshots stored", PATIENCE, || async {
        let events = committed(&db).await;
        (events.len() == 2).then_some(events)
    })
    .await;

    let http = reqwest::Client::new();
    let watch = |replica: &Gateway, after: Option<&str>| {
        let query = after.map(|a| format!("?after={a}")).unwrap_or_default();
        http.get(replica.http(&format!("/api/v1/admin/session-events:watch{query}"))).bearer_auth(&token).send()
    };
    let first = watch(&a, None).await.unwrap();

    // Writers on both replicas' feeds and an import beside them, at once.
    let statuses = [Hs::ScanQrCode, Hs::Failed, Hs::Starting, Hs::Working];
    let feeds = hosts.iter().enumerate().map(|(g, host)| async move {
        for i in 0..60i64 {
            let record =
                hosted(&format!("g{}-s{}", g + 1, i % 4), "org_a", statuses[((i / 4) % 4) as usize], t + 1 + i);
            host.send(WatchSessionsResponse { upserted: vec![record], removed: vec![], snapshot_complete: false })
                .await;
        }
    });
    let db_for_imports = db.clone();
    let imports = tokio::task::spawn_blocking(move || {
        for i in 0..10 {
            let line = session_line(&format!("imp-{i}"), "org_b", "working", "gw-9");
            let out = import(&db_for_imports, &line);
            assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        }
    });
    let seen = tokio::join!(read_events(first, 40), futures_util::future::join_all(feeds)).0;
    imports.await.unwrap();
    let all = eventually("every change stored", PATIENCE, || async {
        let events = committed(&db).await;
        (events.len() == 2 + 120 + 10).then_some(events)
    })
    .await;
    assert_eq!(all[..2], before[..]);

    // Resumed on the other replica after the last event seen.
    let last = seen.last().unwrap()["cursor"].as_str().unwrap().to_owned();
    let rest = read_events(watch(&b, Some(&last)).await.unwrap(), all.len() - 2 - seen.len()).await;
    let streamed: Vec<(String, i64)> = seen
        .iter()
        .chain(&rest)
        .map(|e| (e["sessionId"].as_str().unwrap().to_owned(), e["changedAt"].as_i64().unwrap()))
        .collect();
    assert_eq!(streamed, all[2..], "the stream differs from the events in commit order");
}
