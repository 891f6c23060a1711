//! The live session directory: session hosts stream the sessions they hold
//! (`WatchSessions`), and the listing follows them. A scripted host speaks
//! the real protocol; the real server stores what it sends.

use std::time::Duration;

use serde_json::{Value, json};
use wa_gateway::proto::host::{HostedSession, HostedSessionStatus, WatchSessionsResponse};

use crate::common::host::{Script, ScriptedHost};
use crate::common::{Platform, eventually, import, session_line};

const PATIENCE: Duration = Duration::from_secs(30);

fn hosted(id: &str, org: &str, status: HostedSessionStatus, updated: i64) -> HostedSession {
    HostedSession {
        id: id.into(),
        organization_id: org.into(),
        created_by_user_id: Some("user_1".into()),
        label: Some(format!("label of {id}")),
        phone_number: Some("6281200000001".into()),
        wa_jid: Some("6281200000001@s.whatsapp.net".into()),
        wa_lid: Some("99887766@lid".into()),
        status: status.into(),
        auto_read: true,
        presence_typing: false,
        is_admin_session: true,
        rate_per_min: Some(20),
        rate_per_hour: Some(600),
        created_at_ms: 1_700_000_000_000,
        updated_at_ms: updated,
        last_connected_at_ms: Some(1_700_000_500_000),
    }
}

fn snapshot(upserted: Vec<HostedSession>) -> WatchSessionsResponse {
    WatchSessionsResponse { upserted, removed: vec![], snapshot_complete: true }
}

fn change(upserted: Vec<HostedSession>, removed: &[&str]) -> WatchSessionsResponse {
    WatchSessionsResponse {
        upserted,
        removed: removed.iter().map(|r| (*r).to_owned()).collect(),
        snapshot_complete: false,
    }
}

struct Directory {
    platform: Platform,
    http: reqwest::Client,
}

impl Directory {
    async fn start(hosts: &[(&str, &str)]) -> Self {
        let mut flags: Vec<String> = vec!["--feed-backoff-max-secs".into(), "1".into()];
        for (gateway, url) in hosts {
            flags.extend(["--host".into(), format!("{gateway}={url}")]);
        }
        let flags: Vec<&str> = flags.iter().map(String::as_str).collect();
        Self { platform: Platform::start(&flags).await, http: reqwest::Client::new() }
    }

    fn import(&self, lines: &[String]) {
        let out = import(&self.platform.gw.db, &lines.join("\n"));
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    }

    async fn get(&self, path: &str) -> (u16, Value, Option<String>) {
        let response =
            self.http.get(self.platform.gw.http(path)).bearer_auth(&self.platform.admin).send().await.unwrap();
        let status = response.status().as_u16();
        let etag = response.headers().get("etag").map(|v| v.to_str().unwrap().to_owned());
        (status, response.json().await.unwrap_or(Value::Null), etag)
    }

    async fn session(&self, id: &str) -> Option<Value> {
        let (status, body, _) = self.get(&format!("/api/v1/admin/sessions/{id}")).await;
        (status == 200).then_some(body)
    }

    /// Waits until `check` holds for the session `id` (or its absence).
    async fn until(&self, what: &str, id: &str, check: impl Fn(Option<&Value>) -> bool) -> Option<Value> {
        eventually(what, PATIENCE, || async {
            let session = self.session(id).await;
            check(session.as_ref()).then_some(session)
        })
        .await
    }

    async fn gateway(&self, id: &str) -> Value {
        let (status, body, _) = self.get("/api/v1/admin/gateways").await;
        assert_eq!(status, 200, "{body}");
        body["data"].as_array().unwrap().iter().find(|g| g["id"] == id).cloned().unwrap_or_else(|| panic!("{body}"))
    }

    async fn until_feed(&self, gateway: &str, feed: &str) -> Value {
        eventually(&format!("{gateway} {feed}"), PATIENCE, || async {
            let g = self.gateway(gateway).await;
            (g["feed"] == feed).then_some(g)
        })
        .await
    }

    /// Every session of `gateway`, walking the listing's pages.
    async fn listed(&self, gateway: &str) -> Vec<Value> {
        let mut all = Vec::new();
        let first = format!("/api/v1/admin/sessions?gatewayId={gateway}&limit=500");
        let mut path = first.clone();
        loop {
            let (status, page, _) = self.get(&path).await;
            assert_eq!(status, 200, "{page}");
            all.extend(page["data"].as_array().unwrap().iter().cloned());
            match page["nextCursor"].as_str() {
                Some(next) => path = format!("{first}&cursor={next}"),
                None => return all,
            }
        }
    }

    async fn metric(&self, name: &str, labels: &[&str]) -> f64 {
        let body = reqwest::get(self.platform.gw.http("/metrics")).await.unwrap().text().await.unwrap();
        body.lines()
            .filter(|l| l.starts_with(name) && labels.iter().all(|lab| l.contains(lab)))
            .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
            .sum()
    }
}

/// `statusCounts` of `gateway` equal a count of its listing.
async fn counts_match_the_listing(dir: &Directory, gateway: &str) {
    let listed = dir.listed(gateway).await;
    let view = dir.gateway(gateway).await;
    for status in ["stopped", "starting", "scan_qr_code", "working", "failed"] {
        let counted = listed.iter().filter(|s| s["status"] == status).count();
        assert_eq!(view["statusCounts"][status], json!(counted), "{gateway} {status}: {view}");
    }
    assert_eq!(view["sessions"], json!(listed.len()));
}

crate::both_backends!(a_snapshot_fills_the_directory_and_changes_follow_it);
async fn a_snapshot_fills_the_directory_and_changes_follow_it() {
    let (host, url) = ScriptedHost::start(Script { feed: true, ..Default::default() }).await;
    let dir = Directory::start(&[("gw-1", &url)]).await;
    dir.import(&[
        session_line("s-gone", "org_a", "working", "gw-1"),
        session_line("s-other", "org_a", "working", "gw-2"),
    ]);

    host.send(snapshot(vec![
        hosted("a1", "org_a", HostedSessionStatus::Working, 1_750_000_000_000),
        hosted("a2", "org_b", HostedSessionStatus::ScanQrCode, 1_750_000_000_000),
    ]))
    .await;
    let a1 = dir.until("a1 stored", "a1", |s| s.is_some()).await.unwrap();
    assert_eq!(
        a1,
        json!({"id": "a1", "organizationId": "org_a", "createdByUserId": "user_1", "gatewayId": "gw-1",
               "label": "label of a1", "phoneNumber": "6281200000001", "waJid": "6281200000001@s.whatsapp.net",
               "waLid": "99887766@lid", "status": "working", "autoRead": true, "presenceTyping": false,
               "isAdminSession": true, "ratePerMin": 20, "ratePerHour": 600, "createdAt": 1_700_000_000_000i64,
               "updatedAt": 1_750_000_000_000i64, "lastConnectedAt": 1_700_000_500_000i64})
    );
    // Absent from the completed snapshot: gone. Another gateway's: kept.
    dir.until("s-gone removed", "s-gone", |s| s.is_none()).await;
    assert!(dir.session("s-other").await.is_some());
    let view = dir.until_feed("gw-1", "live").await;
    assert!(view["lastSnapshotAt"].is_i64() && view["lastError"].is_null(), "{view}");
    counts_match_the_listing(&dir, "gw-1").await;

    // A change becomes visible and moves the listing's etag.
    let (_, _, before) = dir.get("/api/v1/admin/sessions").await;
    host.send(change(vec![hosted("a1", "org_a", HostedSessionStatus::Failed, 1_750_000_001_000)], &[])).await;
    dir.until("a1 failed", "a1", |s| s.is_some_and(|s| s["status"] == "failed")).await;
    let (_, _, after) = dir.get("/api/v1/admin/sessions").await;
    assert_ne!(before, after, "the etag moved");

    // An older record is ignored; a later marker shows it was read.
    host.send(change(vec![hosted("a1", "org_a", HostedSessionStatus::Working, 1_750_000_000_500)], &[])).await;
    host.send(change(vec![hosted("a2", "org_b", HostedSessionStatus::Working, 1_750_000_002_000)], &[])).await;
    dir.until("a2 working", "a2", |s| s.is_some_and(|s| s["status"] == "working")).await;
    assert_eq!(dir.session("a1").await.unwrap()["status"], "failed", "an older record changed the row");
    counts_match_the_listing(&dir, "gw-1").await;

    // `removed` removes; a removed id of another gateway's session does not.
    host.send(change(vec![], &["a2", "s-other"])).await;
    dir.until("a2 removed", "a2", |s| s.is_none()).await;
    assert!(dir.session("s-other").await.is_some(), "another gateway's session was removed");
    let elsewhere = dir.metric("wa_gateway_feed_refused_total", &["gateway=\"gw-1\"", "removed_elsewhere"]).await;
    assert_eq!(elsewhere, 1.0);
    counts_match_the_listing(&dir, "gw-1").await;
}

crate::both_backends!(hostile_records_are_refused_one_by_one_and_the_rest_is_applied);
async fn hostile_records_are_refused_one_by_one_and_the_rest_is_applied() {
    let (host, url) = ScriptedHost::start(Script { feed: true, ..Default::default() }).await;
    let dir = Directory::start(&[("gw-1", &url)]).await;
    dir.import(&[session_line("s-org", "org_a", "working", "gw-1")]);
    let future = (std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_millis() as i64)
        + 2 * 86_400_000;
    let mut unspecified = hosted("u1", "org_a", HostedSessionStatus::Working, 1_750_000_000_000);
    unspecified.status = 0;
    host.send(snapshot(vec![
        hosted("s-org", "org_b", HostedSessionStatus::Working, 1_760_000_000_000),
        unspecified,
        hosted("bad id!", "org_a", HostedSessionStatus::Working, 1_750_000_000_000),
        hosted("f1", "org_a", HostedSessionStatus::Working, future),
        hosted("g1", "org_a", HostedSessionStatus::Working, 1_750_000_000_000),
    ]))
    .await;
    dir.until("g1 stored", "g1", |s| s.is_some()).await;
    dir.until_feed("gw-1", "live").await;
    for refused in ["u1", "f1"] {
        assert!(dir.session(refused).await.is_none(), "{refused} was stored");
    }
    let kept = dir.session("s-org").await.expect("a refused record inside a snapshot counts as present");
    assert_eq!(kept["organizationId"], "org_a", "a host moved a session to another organization");
    for (reason, n) in
        [("organization_move", 1.0), ("unspecified_status", 1.0), ("invalid_id", 1.0), ("future_date", 1.0)]
    {
        let counted =
            dir.metric("wa_gateway_feed_refused_total", &["gateway=\"gw-1\"", &format!("reason=\"{reason}\"")]).await;
        assert_eq!(counted, n, "{reason}");
    }
}

crate::both_backends!(nothing_is_removed_before_a_snapshot_completes_nor_after_a_broken_stream);
async fn nothing_is_removed_before_a_snapshot_completes_nor_after_a_broken_stream() {
    let (host, url) = ScriptedHost::start(Script { feed: true, ..Default::default() }).await;
    let dir = Directory::start(&[("gw-1", &url)]).await;
    dir.import(&(1..=3).map(|i| session_line(&format!("s{i}"), "org_a", "working", "gw-1")).collect::<Vec<_>>());
    let partial = WatchSessionsResponse {
        upserted: vec![hosted("s1", "org_a", HostedSessionStatus::Stopped, 1_750_000_000_000)],
        removed: vec!["s2".into()],
        snapshot_complete: false,
    };
    host.send(partial).await;
    dir.until("s1 stopped", "s1", |s| s.is_some_and(|s| s["status"] == "stopped")).await;
    assert_eq!(dir.gateway("gw-1").await["feed"], "syncing");
    host.break_feed(tonic::Status::unavailable("host restarting")).await;
    eventually("a reconnect", PATIENCE, || async { (host.feed_opens() >= 2).then_some(()) }).await;
    for id in ["s2", "s3"] {
        assert!(dir.session(id).await.is_some(), "{id} removed by an incomplete snapshot");
    }
    // The reconnect's completed snapshot does remove what it does not name.
    host.send(snapshot(vec![
        hosted("s1", "org_a", HostedSessionStatus::Stopped, 1_750_000_000_000),
        hosted("s2", "org_a", HostedSessionStatus::Working, 1_750_000_000_000),
    ]))
    .await;
    dir.until("s3 removed", "s3", |s| s.is_none()).await;
    assert!(dir.session("s2").await.is_some());

    // A message over the contract's limit ends the stream; nothing is removed on its account.
    let opens = host.feed_opens();
    let flood: Vec<HostedSession> = (0..5_001)
        .map(|i| hosted(&format!("x{i}"), "org_a", HostedSessionStatus::Working, 1_750_000_000_000))
        .collect();
    host.send(change(flood, &[])).await;
    eventually("a reconnect after the oversized message", PATIENCE, || async {
        (host.feed_opens() > opens).then_some(())
    })
    .await;
    assert!(dir.session("x0").await.is_none(), "a record of the oversized message was stored");
    assert!(dir.session("s1").await.is_some() && dir.session("s2").await.is_some());
}

crate::both_backends!(the_mass_removal_guard_holds_a_snapshot_until_an_operator_accepts_it);
async fn the_mass_removal_guard_holds_a_snapshot_until_an_operator_accepts_it() {
    let (host, url) = ScriptedHost::start(Script {
        feed: true,
        contacts: (0..30).map(|i| crate::common::host::contact(i, "c")).collect(),
        batch: 10,
        ..Default::default()
    })
    .await;
    let dir = Directory::start(&[("gw-1", &url)]).await;
    dir.import(&(0..30).map(|i| session_line(&format!("m{i:02}"), "org_a", "working", "gw-1")).collect::<Vec<_>>());
    // m29 has stored backfill data, which goes with it.
    let (status, started, _) = {
        let r = dir
            .http
            .post(dir.platform.gw.http("/api/v1/admin/sessions/m29:backfill"))
            .bearer_auth(&dir.platform.admin)
            .send()
            .await
            .unwrap();
        (r.status().as_u16(), r.json::<Value>().await.unwrap(), ())
    };
    assert_eq!(status, 202, "{started}");
    eventually("the backfill", PATIENCE, || async {
        let (_, job, _) = dir.get("/api/v1/admin/sessions/m29/backfill").await;
        (job["status"] == "succeeded").then_some(())
    })
    .await;

    host.send(snapshot(
        (0..5).map(|i| hosted(&format!("m{i:02}"), "org_a", HostedSessionStatus::Working, 1_750_000_000_000)).collect(),
    ))
    .await;
    let view = eventually("the held snapshot", PATIENCE, || async {
        let g = dir.gateway("gw-1").await;
        (g["heldRemovals"] == 25).then_some(g)
    })
    .await;
    assert!(view["lastError"].as_str().unwrap().contains("held"), "{view}");
    assert_eq!(view["sessions"], 30, "a held snapshot removed sessions");
    assert_eq!(dir.metric("wa_gateway_feed_held_snapshots", &["gateway=\"gw-1\""]).await, 1.0);

    let accept = |gateway: &str| {
        dir.http
            .post(dir.platform.gw.http(&format!("/api/v1/admin/gateways/{gateway}:acceptSnapshot")))
            .bearer_auth(&dir.platform.admin)
            .send()
    };
    assert_eq!(accept("nope").await.unwrap().status(), 404);
    assert_eq!(accept("gw-1").await.unwrap().status(), 200);
    dir.until("m29 removed", "m29", |s| s.is_none()).await;
    eventually("5 sessions left", PATIENCE, || async { (dir.gateway("gw-1").await["sessions"] == 5).then_some(()) })
        .await;
    let (status, body, _) = dir.get("/api/v1/admin/sessions/m29/contacts").await;
    assert_eq!(status, 404, "{body}");
    eventually("a removed session has no backfill status", PATIENCE, || async {
        let (status, _, _) = dir.get("/api/v1/admin/sessions/m29/backfill").await;
        (status == 404).then_some(())
    })
    .await;
    let again = accept("gw-1").await.unwrap();
    assert_eq!(again.status(), 409, "nothing is held any more");
    counts_match_the_listing(&dir, "gw-1").await;
}

#[tokio::test]
async fn sessions_move_between_gateways_and_hosts_without_a_feed_keep_theirs() {
    let (one, one_url) = ScriptedHost::start(Script { feed: true, ..Default::default() }).await;
    let (two, two_url) = ScriptedHost::start(Script { feed: true, ..Default::default() }).await;
    let (_none, none_url) = ScriptedHost::start(Script::default()).await;
    let dir = Directory::start(&[
        ("gw-1", &one_url),
        ("gw-2", &two_url),
        ("gw-3", &none_url),
        ("gw-4", "http://127.0.0.1:9"),
    ])
    .await;
    dir.import(&[session_line("kept3", "org_a", "working", "gw-3"), session_line("kept4", "org_a", "working", "gw-4")]);

    one.send(snapshot(vec![hosted("mover", "org_a", HostedSessionStatus::Working, 1_750_000_000_000)])).await;
    dir.until("mover on gw-1", "mover", |s| s.is_some_and(|s| s["gatewayId"] == "gw-1")).await;
    two.send(snapshot(vec![hosted("mover", "org_a", HostedSessionStatus::Working, 1_750_000_001_000)])).await;
    dir.until("mover on gw-2", "mover", |s| s.is_some_and(|s| s["gatewayId"] == "gw-2")).await;
    // gw-1's next snapshot without it removes nothing of gw-2's.
    one.break_feed(tonic::Status::unavailable("restart")).await;
    eventually("gw-1 reconnects", PATIENCE, || async { (one.feed_opens() >= 2).then_some(()) }).await;
    one.send(snapshot(vec![])).await;
    dir.until_feed("gw-1", "live").await;
    assert_eq!(dir.session("mover").await.unwrap()["gatewayId"], "gw-2");

    let unsupported = dir.until_feed("gw-3", "unsupported").await;
    assert!(unsupported["lastError"].is_string(), "{unsupported}");
    let unreachable = dir.until_feed("gw-4", "unreachable").await;
    assert!(unreachable["lastError"].is_string(), "{unreachable}");
    assert_eq!(unreachable["hostUrl"], "http://127.0.0.1:9");
    assert!(dir.session("kept3").await.is_some() && dir.session("kept4").await.is_some());
    counts_match_the_listing(&dir, "gw-2").await;
}

crate::both_backends!(a_running_backfill_of_a_removed_session_ends_failed_and_its_status_goes);
async fn a_running_backfill_of_a_removed_session_ends_failed_and_its_status_goes() {
    let (host, url) = ScriptedHost::start(Script {
        feed: true,
        gated: true,
        contacts: (0..50).map(|i| crate::common::host::contact(i, "c")).collect(),
        batch: 10,
        ..Default::default()
    })
    .await;
    let dir = Directory::start(&[("gw-1", &url)]).await;
    host.send(snapshot(vec![hosted("runner", "org_a", HostedSessionStatus::Working, 1_750_000_000_000)])).await;
    dir.until("runner stored", "runner", |s| s.is_some()).await;
    let started = dir
        .http
        .post(dir.platform.gw.http("/api/v1/admin/sessions/runner:backfill"))
        .bearer_auth(&dir.platform.admin)
        .send()
        .await
        .unwrap();
    assert_eq!(started.status(), 202);
    eventually("the job running", PATIENCE, || async {
        let (_, job, _) = dir.get("/api/v1/admin/sessions/runner/backfill").await;
        (job["status"] == "running").then_some(())
    })
    .await;
    let watch = dir
        .http
        .get(dir.platform.gw.http("/api/v1/admin/sessions/runner/backfill:watch"))
        .bearer_auth(&dir.platform.admin)
        .send();
    let watch = tokio::spawn(async move { watch.await.unwrap().text().await.unwrap() });

    host.send(change(vec![], &["runner"])).await;
    let lines = tokio::time::timeout(PATIENCE, watch).await.expect("the watch ended").unwrap();
    let last: Value = serde_json::from_str(lines.lines().last().unwrap()).unwrap();
    assert_eq!((last["status"].as_str(), last["error"].as_str()), (Some("failed"), Some("session removed")), "{lines}");
    eventually("the backfill status gone", PATIENCE, || async {
        let (status, _, _) = dir.get("/api/v1/admin/sessions/runner/backfill").await;
        (status == 404).then_some(())
    })
    .await;
    host.open_gate();
}

#[tokio::test]
async fn a_stalled_snapshot_reopens_the_feed_and_a_host_that_comes_back_goes_live() {
    let (host, url) = ScriptedHost::start(Script { feed: true, ..Default::default() }).await;
    let flags = ["--feed-snapshot-timeout-secs", "1", "--feed-backoff-max-secs", "1", "--host"];
    let mut args: Vec<String> = flags.iter().map(|f| (*f).to_owned()).collect();
    args.push(format!("gw-1={url}"));
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let dir = Directory { platform: Platform::start(&args).await, http: reqwest::Client::new() };
    dir.import(&[session_line("kept", "org_a", "working", "gw-1")]);

    // A snapshot that never completes: the stream is dropped and reopened; nothing is removed.
    let partial = WatchSessionsResponse {
        upserted: vec![hosted("p1", "org_a", HostedSessionStatus::Working, 1_750_000_000_000)],
        ..Default::default()
    };
    host.send(partial).await;
    eventually("a reopened feed", PATIENCE, || async { (host.feed_opens() >= 2).then_some(()) }).await;
    let view = dir.gateway("gw-1").await;
    assert!(dir.session("kept").await.is_some(), "a stalled snapshot removed a session");
    assert!(
        view["feed"] == "syncing" || view["lastError"].as_str().is_some_and(|e| e.contains("did not complete")),
        "{view}"
    );

    // The host goes down: unreachable, its sessions kept. Back: a new snapshot, live.
    host.set(|s| s.refuse = Some(tonic::Code::Unavailable));
    host.break_feed(tonic::Status::unavailable("host going down")).await;
    dir.until_feed("gw-1", "unreachable").await;
    assert!(dir.session("kept").await.is_some());
    host.set(|s| {
        s.refuse = None;
        s.snapshot = Some(vec![
            hosted("kept", "org_a", HostedSessionStatus::Stopped, 1_750_000_000_000),
            hosted("p1", "org_a", HostedSessionStatus::Working, 1_750_000_000_000),
        ]);
    });
    let live = dir.until_feed("gw-1", "live").await;
    assert!(live["lastError"].is_null(), "{live}");
    dir.until("kept stopped", "kept", |s| s.is_some_and(|s| s["status"] == "stopped")).await;
}
