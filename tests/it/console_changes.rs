//! The console's session history in real Chromium: the Changes view shows
//! the fleet's events live (newest on top), its filters, and a pause that
//! misses and repeats nothing; a session's page shows its status history;
//! the gateways view counts each gateway's changes of the last hour.

use serde_json::json;
use wa_gateway::proto::host::{HostedSessionStatus as Hs, WatchSessionsResponse};

use crate::common::Platform;
use crate::common::host::{Script, ScriptedHost, hosted};
use crate::common::webdriver::Browser;

fn change(id: &str, org: &str, status: Hs, at: i64) -> WatchSessionsResponse {
    WatchSessionsResponse { upserted: vec![hosted(id, org, status, at)], ..Default::default() }
}

const ROWS: &str = "return Array.from(document.querySelectorAll('#changes tr[data-kind]')).map(r => r.innerText);";

#[tokio::test]
async fn the_changes_view_streams_pauses_and_resumes_and_a_session_shows_its_history() {
    let t = 1_750_000_000_000i64;
    let (host, url) = ScriptedHost::start(Script { feed: true, ..Default::default() }).await;
    let platform = Platform::start(&["--host", &format!("gw-1={url}")]).await;
    host.send(WatchSessionsResponse {
        upserted: vec![hosted("c1", "org_a", Hs::Working, t), hosted("c2", "org_b", Hs::Working, t)],
        removed: vec![],
        snapshot_complete: true,
    })
    .await;
    let origin = platform.gw.http("");
    let origin = origin.trim_end_matches('/');
    let browser = Browser::start(1280, 800).await;
    browser.goto(&format!("{origin}/console/?view=changes#token={}", platform.admin)).await;
    // The newest page first: both appearances.
    browser
        .wait("the first page", &format!("const rows = (() => {{ {ROWS} }})(); return rows.length === 2;"), json!([]))
        .await;
    browser.wait_text("#changes-state", "Live").await;

    // A change appears on top as it commits.
    host.send(change("c1", "org_a", Hs::ScanQrCode, t + 1)).await;
    let rows = browser
        .wait(
            "the live change",
            &format!("const rows = (() => {{ {ROWS} }})(); return rows.length === 3 ? rows : null;"),
            json!([]),
        )
        .await;
    let top = rows[0].as_str().unwrap();
    assert!(top.contains("c1") && top.contains("working") && top.contains("scan_qr_code"), "{top}");

    // Paused: nothing new shows; resumed: what happened meanwhile, once.
    browser.click("#pause-changes").await;
    browser.wait_text("#changes-state", "Paused").await;
    host.send(change("c2", "org_b", Hs::Failed, t + 2)).await;
    host.send(change("c1", "org_a", Hs::Working, t + 3)).await;
    crate::common::eventually("both changes stored", std::time::Duration::from_secs(30), || async {
        let body: serde_json::Value = reqwest::Client::new()
            .get(platform.gw.http("/api/v1/admin/session-events"))
            .bearer_auth(&platform.admin)
            .send()
            .await
            .ok()?
            .json()
            .await
            .ok()?;
        (body["data"].as_array()?.len() == 5).then_some(())
    })
    .await;
    let rows = browser.run(ROWS, json!([])).await;
    assert_eq!(rows.as_array().unwrap().len(), 3, "a paused view showed new changes: {rows}");
    browser.click("#pause-changes").await;
    let rows = browser
        .wait(
            "the changes made while paused",
            &format!("const rows = (() => {{ {ROWS} }})(); return rows.length >= 5 ? rows : null;"),
            json!([]),
        )
        .await;
    let rows: Vec<&str> = rows.as_array().unwrap().iter().map(|r| r.as_str().unwrap()).collect();
    assert_eq!(rows.len(), 5, "{rows:#?}");
    assert!(rows[0].contains("c1") && rows[1].contains("c2") && rows[1].contains("failed"), "{rows:#?}");

    // A filter: org_b's changes only.
    browser.goto(&format!("{origin}/console/?view=changes&organizationId=org_b")).await;
    let rows = browser
        .wait(
            "the filtered page",
            &format!("const rows = (() => {{ {ROWS} }})(); return rows.length === 2 ? rows : null;"),
            json!([]),
        )
        .await;
    assert!(rows.as_array().unwrap().iter().all(|r| r.as_str().unwrap().contains("org_b")), "{rows}");

    // The session page's status history, newest first.
    browser.goto(&format!("{origin}/console/?view=session&id=c1")).await;
    let history = browser.wait_text("#history", "scan_qr_code").await;
    let appeared = history.find("appeared").unwrap();
    let changed = history.find("scan_qr_code").unwrap();
    assert!(changed < appeared, "newest first: {history}");

    // The gateways view: gw-1's changes of the last hour.
    browser.goto(&format!("{origin}/console/?view=gateways")).await;
    browser.wait_text("tr[data-gateway='gw-1']", "5").await;
    let cell = browser
        .run("return document.querySelector(\"tr[data-gateway='gw-1'] a[href*='view=changes']\").innerText;", json!([]))
        .await;
    assert_eq!(cell, "5");
}
