//! Session history (contract §6): every change of a stored session, by a
//! host's feed, an import or a removal, is an event written with the change;
//! people list them (one session's, the fleet's) and programs follow them
//! as a stream that resumes exactly where it stopped. On both backends.

use std::time::Duration;

use serde_json::Value;
use sqlx::Connection;
use wa_gateway::proto::host::{HostedSessionStatus as Hs, WatchSessionsResponse};

use crate::common::host::{Script, ScriptedHost, hosted};
use crate::common::{Platform, eventually, import, session_line};

const PATIENCE: Duration = Duration::from_secs(30);

fn change(upserted: Vec<wa_gateway::proto::host::HostedSession>, removed: &[&str]) -> WatchSessionsResponse {
    WatchSessionsResponse {
        upserted,
        removed: removed.iter().map(|r| (*r).to_owned()).collect(),
        snapshot_complete: false,
    }
}

fn snapshot(upserted: Vec<wa_gateway::proto::host::HostedSession>) -> WatchSessionsResponse {
    WatchSessionsResponse { upserted, removed: vec![], snapshot_complete: true }
}

struct History {
    platform: Platform,
    http: reqwest::Client,
}

impl History {
    async fn start(hosts: &[(&str, &str)], extra: &[&str]) -> Self {
        let mut flags: Vec<String> = vec!["--feed-backoff-max-secs".into(), "1".into()];
        for (gateway, url) in hosts {
            flags.extend(["--host".into(), format!("{gateway}={url}")]);
        }
        flags.extend(extra.iter().map(|s| (*s).to_owned()));
        let flags: Vec<&str> = flags.iter().map(String::as_str).collect();
        Self { platform: Platform::start(&flags).await, http: reqwest::Client::new() }
    }

    fn import(&self, lines: &[String]) {
        let out = import(&self.platform.gw.db, &lines.join("\n"));
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    }

    async fn get(&self, path: &str) -> (u16, Value) {
        let response =
            self.http.get(self.platform.gw.http(path)).bearer_auth(&self.platform.admin).send().await.unwrap();
        let status = response.status().as_u16();
        (status, response.json().await.unwrap_or(Value::Null))
    }

    /// Every page of `path` (which has a query already), newest first; none
    /// for a session not stored yet.
    async fn all(&self, path: &str) -> Vec<Value> {
        let mut events = Vec::new();
        let mut next = path.to_owned();
        loop {
            let (status, page) = self.get(&next).await;
            if status == 404 && page["error"]["details"]["reason"] == "SESSION_NOT_FOUND" && events.is_empty() {
                return events;
            }
            assert_eq!(status, 200, "{next}: {page}");
            events.extend(page["data"].as_array().unwrap().iter().cloned());
            match page["nextCursor"].as_str() {
                Some(cursor) => next = format!("{path}&cursor={cursor}"),
                None => return events,
            }
        }
    }

    /// `(kind, from, to, source)` of a session's events, oldest first.
    async fn story(&self, session: &str) -> Vec<(String, String, String, String)> {
        let mut events = self.all(&format!("/api/v1/admin/sessions/{session}/events?limit=2")).await;
        events.reverse();
        let text = |v: &Value| v.as_str().unwrap_or("-").to_owned();
        events
            .iter()
            .map(|e| (text(&e["kind"]), text(&e["fromStatus"]), text(&e["toStatus"]), text(&e["source"])))
            .collect()
    }

    async fn until_story(&self, session: &str, len: usize) -> Vec<(String, String, String, String)> {
        eventually(&format!("{len} events of {session}"), PATIENCE, || async {
            let story = self.story(session).await;
            (story.len() >= len).then_some(story)
        })
        .await
    }
}

fn ev(kind: &str, from: &str, to: &str, source: &str) -> (String, String, String, String) {
    (kind.into(), from.into(), to.into(), source.into())
}

crate::both_backends!(every_change_is_an_event_from_the_feed_an_import_and_a_removal);
async fn every_change_is_an_event_from_the_feed_an_import_and_a_removal() {
    let (one, url1) = ScriptedHost::start(Script { feed: true, ..Default::default() }).await;
    let (two, url2) = ScriptedHost::start(Script { feed: true, ..Default::default() }).await;
    let h = History::start(&[("gw-1", &url1), ("gw-2", &url2)], &[]).await;
    let t = 1_750_000_000_000i64;

    // An import: appeared (import). Then the same line again: no event.
    h.import(&[session_line("s1", "org_a", "working", "gw-1")]);
    h.import(&[session_line("s1", "org_a", "working", "gw-1")]);
    assert_eq!(h.story("s1").await, vec![ev("appeared", "-", "working", "import")]);

    // The feed: a status change, a newcomer, a record that changes nothing
    // an operator reads (newer, same status and gateway): no event.
    one.send(snapshot(vec![hosted("s1", "org_a", Hs::ScanQrCode, t), hosted("s2", "org_a", Hs::Working, t)])).await;
    one.send(change(vec![hosted("s2", "org_a", Hs::Working, t + 5)], &[])).await;
    one.send(change(vec![hosted("s2", "org_a", Hs::Failed, t + 10)], &[])).await;
    h.until_story("s2", 2).await;
    assert_eq!(
        h.story("s1").await,
        vec![ev("appeared", "-", "working", "import"), ev("status_changed", "working", "scan_qr_code", "feed")]
    );
    assert_eq!(
        h.story("s2").await,
        vec![ev("appeared", "-", "working", "feed"), ev("status_changed", "working", "failed", "feed")]
    );

    // Another gateway's feed with a newer record: moved, same status.
    two.send(snapshot(vec![hosted("s1", "org_a", Hs::ScanQrCode, t + 20)])).await;
    let story = h.until_story("s1", 3).await;
    assert_eq!(story[2], ev("moved", "-", "-", "feed"));
    let (_, page) = h.get("/api/v1/admin/sessions/s1/events?limit=1").await;
    let moved = &page["data"][0];
    assert_eq!((moved["gatewayId"].as_str(), moved["fromGatewayId"].as_str()), (Some("gw-2"), Some("gw-1")), "{moved}");
    assert_eq!(moved["changedAt"], t + 20);
    assert!(moved["recordedAt"].as_i64().unwrap() > t + 20, "{moved}");

    // An import that moves it back and changes its status: one moved event
    // with both statuses, from the import.
    h.import(&[session_line("s1", "org_a", "stopped", "gw-1").replace("1719662400000", &(t + 30).to_string())]);
    let story = h.until_story("s1", 4).await;
    assert_eq!(story[3], ev("moved", "scan_qr_code", "stopped", "import"), "{story:?}");

    // Removed by its feed: the last event, and its events stay readable.
    one.send(change(vec![], &["s2"])).await;
    let story = h.until_story("s2", 3).await;
    assert_eq!(story[2], ev("removed", "failed", "-", "feed"));
    let (status, _) = h.get("/api/v1/admin/sessions/s2").await;
    assert_eq!(status, 404);

    // The fleet: filters, newest first.
    let all = h.all("/api/v1/admin/session-events?limit=3").await;
    assert_eq!(all.len(), 7, "{all:#?}");
    let ids: Vec<i64> = all.iter().map(|e| e["recordedAt"].as_i64().unwrap()).collect();
    assert!(ids.windows(2).all(|w| w[0] >= w[1]), "newest first: {ids:?}");
    let failed = h.all("/api/v1/admin/session-events?status=failed").await;
    assert_eq!(failed.len(), 1);
    assert_eq!(failed[0]["sessionId"], "s2");
    let on_two = h.all("/api/v1/admin/session-events?gatewayId=gw-2").await;
    assert_eq!(on_two.len(), 1);
    assert!(h.all("/api/v1/admin/session-events?organizationId=org_b").await.is_empty());
    let future = chrono_free_now() + 60_000;
    assert!(h.all(&format!("/api/v1/admin/session-events?since={future}")).await.is_empty());
    assert_eq!(h.all("/api/v1/admin/session-events?since=0").await.len(), 7);

    // Precise refusals.
    for (path, field) in [
        ("/api/v1/admin/session-events?status=online", "status"),
        ("/api/v1/admin/session-events?since=yesterday", "since"),
        ("/api/v1/admin/session-events?since=-5", "since"),
        ("/api/v1/admin/session-events?limit=0", "limit"),
        ("/api/v1/admin/session-events?cursor=AAAA", "cursor"),
        ("/api/v1/admin/session-events?organizationId=a%20b", "organization_id"),
        ("/api/v1/admin/session-events:watch?after=AAAA", "after"),
        ("/api/v1/admin/session-events:watch?after=", "after"),
    ] {
        let (status, body) = h.get(path).await;
        assert_eq!(status, 400, "{path}: {body}");
        assert_eq!(body["error"]["details"]["field"], field, "{path}: {body}");
    }
    // Authentication first: no credential is 401, an org admin 403, whatever
    // else is wrong with the request; the stream the same.
    let org_admin =
        crate::common::mint(crate::common::KeyKind::Ec, "ec-1", &crate::common::claims("u1", "org_a", "admin", None));
    for path in [
        "/api/v1/admin/session-events?limit=0",
        "/api/v1/admin/sessions/s1/events",
        "/api/v1/admin/session-events:watch",
    ] {
        let anonymous = h.http.get(h.platform.gw.http(path)).send().await.unwrap();
        assert_eq!(anonymous.status(), 401, "{path}");
        let org = h.http.get(h.platform.gw.http(path)).bearer_auth(&org_admin).send().await.unwrap();
        assert_eq!(org.status(), 403, "{path}");
    }
    // A session cursor is not a fleet cursor.
    let (_, page) = h.get("/api/v1/admin/sessions/s1/events?limit=1").await;
    let cursor = page["nextCursor"].as_str().unwrap();
    let (status, _) = h.get(&format!("/api/v1/admin/session-events?cursor={cursor}")).await;
    assert_eq!(status, 400);
    let (status, body) = h.get("/api/v1/admin/sessions/never/events").await;
    assert_eq!((status, body["error"]["details"]["reason"].as_str()), (404, Some("SESSION_NOT_FOUND")), "{body}");

    // Transitions counted by the feed that wrote them.
    let metrics = reqwest::get(h.platform.gw.http("/metrics")).await.unwrap().text().await.unwrap();
    let line = metrics
        .lines()
        .find(|l| {
            l.starts_with("wa_gateway_session_transitions_total")
                && l.contains("gateway=\"gw-1\"")
                && l.contains("to=\"failed\"")
        })
        .unwrap_or_else(|| panic!("{metrics}"));
    assert!(line.ends_with(" 1"), "{line}");
}

fn chrono_free_now() -> i64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_millis() as i64
}

/// Reads NDJSON lines from a watch until `n` events have come.
pub(crate) async fn read_events(mut response: reqwest::Response, n: usize) -> Vec<Value> {
    assert_eq!(response.status(), 200);
    let mut buffer = Vec::new();
    let mut events = Vec::new();
    while events.len() < n {
        let chunk = tokio::time::timeout(PATIENCE, response.chunk()).await.expect("an event in time");
        buffer.extend_from_slice(&chunk.unwrap().expect("the stream ended"));
        while let Some(end) = buffer.iter().position(|b| *b == b'\n') {
            let line: Vec<u8> = buffer.drain(..=end).collect();
            let event: Value = serde_json::from_slice(&line).unwrap();
            assert!(event.get("error").is_none(), "{event}");
            events.push(event);
        }
    }
    events
}

crate::both_backends!(a_watch_resumed_after_its_last_event_gets_every_later_event_once_in_commit_order);
async fn a_watch_resumed_after_its_last_event_gets_every_later_event_once_in_commit_order() {
    let (host, url) = ScriptedHost::start(Script { feed: true, ..Default::default() }).await;
    let h = History::start(&[("gw-1", &url)], &[]).await;
    let t = 1_750_000_000_000i64;
    host.send(snapshot(vec![hosted("w0", "org_a", Hs::Working, t)])).await;
    h.until_story("w0", 1).await;

    // From now on: the snapshot's event is not replayed.
    let watch = |after: Option<&str>| {
        let path = match after {
            Some(a) => format!("/api/v1/admin/session-events:watch?after={a}"),
            None => "/api/v1/admin/session-events:watch".into(),
        };
        h.http.get(h.platform.gw.http(&path)).bearer_auth(&h.platform.admin).send()
    };
    let first = watch(None).await.unwrap();
    assert_eq!(first.status(), 200);
    assert_eq!(first.headers()["content-type"], "application/x-ndjson");
    let statuses = [Hs::ScanQrCode, Hs::Working, Hs::Failed, Hs::Starting];
    // Each session's every change is to another status: one event each.
    for i in 0..20i64 {
        let status = statuses[((i / 3) % 4) as usize];
        host.send(change(vec![hosted(&format!("w{}", i % 3), "org_a", status, t + 100 + i)], &[])).await;
    }
    let seen = read_events(first, 8).await;
    // Disconnected; more changes while away, and an import beside them.
    for i in 20..30i64 {
        let status = statuses[((i / 3) % 4) as usize];
        host.send(change(vec![hosted(&format!("w{}", i % 3), "org_a", status, t + 100 + i)], &[])).await;
    }
    h.import(&[session_line("imported", "org_b", "working", "gw-1")]);
    let total = eventually("every change stored as an event", PATIENCE, || async {
        let all = h.all("/api/v1/admin/session-events?limit=500").await;
        (all.len() == 32).then_some(all)
    })
    .await;
    let last = seen.last().unwrap()["cursor"].as_str().unwrap().to_owned();
    let expected = total.len() - 1 - seen.len();
    let rest = read_events(watch(Some(&last)).await.unwrap(), expected).await;

    // Every event after the snapshot's exactly once; each session's in the
    // order they were stored (one writer of a row at a time).
    let mut listed = total.clone();
    listed.reverse();
    let key = |e: &Value| e["cursor"].as_str().unwrap().to_owned();
    let streamed: Vec<String> = seen.iter().chain(&rest).map(key).collect();
    let stored: Vec<String> = listed[1..].iter().map(key).collect();
    let unique: std::collections::BTreeSet<&String> = streamed.iter().collect();
    assert_eq!(unique.len(), streamed.len(), "an event came twice");
    assert_eq!(unique, stored.iter().collect(), "streamed and stored events differ");
    for session in ["w0", "w1", "w2"] {
        let of = |events: Vec<&Value>| -> Vec<String> {
            events.into_iter().filter(|e| e["sessionId"] == session).map(key).collect()
        };
        assert_eq!(of(seen.iter().chain(&rest).collect()), of(listed[1..].iter().collect()), "{session}");
    }
}

/// Runs `sql` on the test's database.
async fn execute(db: &str, sql: &str) {
    if db.starts_with("postgres") {
        let mut conn = sqlx::PgConnection::connect(db).await.unwrap();
        sqlx::raw_sql(sql).execute(&mut conn).await.unwrap();
    } else {
        let mut conn = sqlx::SqliteConnection::connect(&format!("sqlite://{db}")).await.unwrap();
        sqlx::raw_sql(sql).execute(&mut conn).await.unwrap();
    }
}

crate::both_backends!(events_are_pruned_by_age_and_by_count_and_a_pruned_cursor_is_gone);
async fn events_are_pruned_by_age_and_by_count_and_a_pruned_cursor_is_gone() {
    let (host, url) = ScriptedHost::start(Script { feed: true, ..Default::default() }).await;
    let h = History::start(&[("gw-1", &url)], &["--session-events-prune-every-secs", "1"]).await;
    let t = 1_750_000_000_000i64;
    host.send(snapshot(vec![hosted("old", "org_a", Hs::Working, t), hosted("busy", "org_a", Hs::Working, t)])).await;
    h.until_story("old", 1).await;
    let (_, page) = h.get("/api/v1/admin/sessions/old/events").await;
    let old_cursor = page["data"][0]["cursor"].as_str().unwrap().to_owned();

    // A flapping session: 1,010 more changes; its newest 1,000 are kept.
    let statuses = [Hs::ScanQrCode, Hs::Working];
    for i in 0..1010i64 {
        let record = hosted("busy", "org_a", statuses[(i % 2) as usize], t + 1 + i);
        host.send(change(vec![record], &[])).await;
    }
    // Once its last change is stored and pruning has caught up: the newest
    // 1,000, and no more (a walk while changes still arrive would race the
    // pruner, which deletes from the bottom as new events come on top).
    eventually("busy's last change stored and capped at 1,000", PATIENCE, || async {
        let events = h.all("/api/v1/admin/sessions/busy/events?limit=500").await;
        (events.len() == 1000 && events[0]["changedAt"] == t + 1010).then_some(())
    })
    .await;

    // Recorded 31 days ago: pruned by the 30-day default.
    let month = 31 * 86_400_000i64;
    execute(
        &h.platform.gw.db,
        &format!("UPDATE session_events SET recorded_at = recorded_at - {month} WHERE session_id = 'old'"),
    )
    .await;
    eventually("old's event pruned", PATIENCE, || async {
        let (status, page) = h.get("/api/v1/admin/sessions/old/events").await;
        (status == 200 && page["data"].as_array().unwrap().is_empty()).then_some(())
    })
    .await;

    // A watch resuming before pruned events is told to list again.
    let response = h
        .http
        .get(h.platform.gw.http(&format!("/api/v1/admin/session-events:watch?after={old_cursor}")))
        .bearer_auth(&h.platform.admin)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 410);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["error"]["code"], "gone", "{body}");
    assert_eq!(body["error"]["details"]["reason"], "CURSOR_GONE");
    assert!(body["error"]["message"].as_str().unwrap().contains("list the events again"), "{body}");
}

/// gRPC: ListSessionEvents and WatchSessionEvents answer as REST does, and
/// the stream ends with UNAUTHENTICATED (TOKEN_EXPIRED) when the token does.
#[tokio::test]
async fn over_grpc_the_stream_ends_when_the_token_expires() {
    use tonic::Code;
    use wa_gateway::proto::admin::{ListSessionEventsRequest, WatchSessionEventsRequest};

    let (host, url) = ScriptedHost::start(Script { feed: true, ..Default::default() }).await;
    let h = History::start(&[("gw-1", &url)], &["--jwt-leeway-secs", "0"]).await;
    let mut client = h.platform.gw.client().await;
    let mut short = crate::common::super_admin_claims();
    short["exp"] = serde_json::json!(chrono_free_now() / 1000 + 3);
    let short = crate::common::mint(crate::common::KeyKind::Rsa, "rsa-1", &short);
    let mut watch = client
        .watch_session_events(crate::common::authed(WatchSessionEventsRequest::default(), &short))
        .await
        .unwrap()
        .into_inner();
    host.send(snapshot(vec![hosted("g1", "org_a", Hs::Working, 1_750_000_000_000)])).await;
    let first = tokio::time::timeout(PATIENCE, watch.message()).await.unwrap().unwrap().unwrap();
    let event = first.event.unwrap();
    assert_eq!((event.session_id.as_str(), event.kind), ("g1", 1), "appeared");
    let ended = loop {
        match tokio::time::timeout(PATIENCE, watch.message()).await.expect("the stream went quiet") {
            Ok(Some(_)) => continue,
            Ok(None) => panic!("the stream ended without saying why"),
            Err(status) => break status,
        }
    };
    assert_eq!(ended.code(), Code::Unauthenticated);

    let listed = client
        .list_session_events(crate::common::authed(
            ListSessionEventsRequest { session_id: "g1".into(), ..Default::default() },
            &h.platform.admin,
        ))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(listed.data.len(), 1);
    assert_eq!(listed.data[0].cursor, event.cursor);
    let bad = client
        .watch_session_events(crate::common::authed(
            WatchSessionEventsRequest { after: "nope".into() },
            &h.platform.admin,
        ))
        .await
        .unwrap_err();
    assert_eq!(bad.code(), Code::InvalidArgument);
}
