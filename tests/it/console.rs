//! The operator console at `/console/`, in a real headless Chromium against
//! a real `serve`: sign-in (the `#token=` link, a pasted token, 401, 403,
//! expiry), the sessions list (several organizations, filters in the URL,
//! paging), one session (backfill start, progress, 409, cancel), the stored
//! data, hostile labels rendered as text, and what the page loads.

use std::collections::HashSet;
use std::path::PathBuf;

use serde_json::{Value, json};
use wa_gateway::proto::host::Contact;

use crate::common::host::{Script, ScriptedHost, contact, group};
use crate::common::webdriver::Browser;
use crate::common::{KeyKind, Platform, claims, import, jwks_now, mint};

const XSS_LABEL: &str = "<img src=x onerror=alert(1)>";
const SCRIPT_NAME: &str = "<script>window.__pwned = 1</script>";
const KEY: &str = "wa-gateway.console.token";

fn screenshots() -> PathBuf {
    PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/target/console-screenshots"))
}

fn line(id: &str, org: &str, status: &str, gateway: &str, label: &str) -> String {
    json!({
        "id": id, "organizationId": org, "gatewayId": gateway, "status": status, "label": label,
        "phoneNumber": "6281234567890", "waJid": "6281234567890@s.whatsapp.net",
        "createdAt": 1_719_662_400_000i64, "updatedAt": 1_719_662_400_000i64, "lastConnectedAt": 1_719_662_400_000i64,
    })
    .to_string()
}

/// 62 sessions of three organizations: `s-ok` on a host with 120 contacts
/// and 3 groups of 4, `s-slow` on a host that holds its stream, and `s-xss`
/// whose label is markup, `s-nohost` on a gateway with no host configured.
async fn platform() -> (Platform, ScriptedHost, ScriptedHost) {
    let mut contacts: Vec<Contact> = (0..119).map(|i| contact(i, "person")).collect();
    contacts.push(Contact { jid: "99999@s.whatsapp.net".into(), push_name: SCRIPT_NAME.into(), ..Default::default() });
    let (host, url) = ScriptedHost::start(Script {
        contacts,
        groups: (0..3).map(|i| group(i, 4, "team")).collect(),
        batch: 10,
        ..Default::default()
    })
    .await;
    let (slow, slow_url) = ScriptedHost::start(Script {
        contacts: (0..40).map(|i| contact(i, "slow")).collect(),
        batch: 10,
        gated: true,
        ..Default::default()
    })
    .await;
    let platform = Platform::start(&[
        "--host",
        &format!("gw-1={url}"),
        "--host",
        &format!("gw-slow={slow_url}"),
        "--jwt-leeway-secs",
        "0",
    ])
    .await;
    let orgs = ["org_a", "org_b", "org_c"];
    let mut lines: Vec<String> =
        (0..58).map(|i| line(&format!("s{i:03}"), orgs[i % 3], "working", "gw-1", &format!("line {i}"))).collect();
    lines.push(line("s-ok", "org_a", "working", "gw-1", "Support line"));
    lines.push(line("s-slow", "org_b", "scan_qr_code", "gw-slow", "Slow line"));
    lines.push(line("s-xss", "org_c", "failed", "gw-1", XSS_LABEL));
    lines.push(line("s-nohost", "org_c", "stopped", "gw-elsewhere", "Unhosted line"));
    let out = import(&platform.gw.db, &lines.join("\n"));
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    (platform, host, slow)
}

/// The session ids the sessions table shows now.
async fn shown_ids(browser: &Browser) -> Vec<String> {
    let ids = browser
        .run("return [...document.querySelectorAll('tr[data-session]')].map(r => r.dataset.session);", json!([]))
        .await;
    ids.as_array().unwrap().iter().map(|v| v.as_str().unwrap().to_owned()).collect()
}

/// Waits until the table shows a page other than `before`.
async fn page_after(browser: &Browser, before: &[String]) -> Vec<String> {
    let script = "const ids = [...document.querySelectorAll('tr[data-session]')].map(r => r.dataset.session); \
                  return ids.length && JSON.stringify(ids) !== arguments[0] ? ids : null;";
    let ids = browser.wait("the next page", script, json!([serde_json::to_string(before).unwrap()])).await;
    ids.as_array().unwrap().iter().map(|v| v.as_str().unwrap().to_owned()).collect()
}

/// No script error was logged (failed fetches, 4xx answers the page shows,
/// are network entries, not script errors).
async fn no_script_errors(browser: &Browser, view: &str) {
    let errors: Vec<_> =
        browser.log().await.into_iter().filter(|(level, source, _)| level == "SEVERE" && source != "network").collect();
    assert!(errors.is_empty(), "script errors on {view}: {errors:?}");
}

async fn shoot(browser: &Browser, view: &str) {
    for (width, size) in [(1280, "wide"), (420, "narrow")] {
        for dark in [false, true] {
            browser.set_size(width, 800).await;
            browser.dark(dark).await;
            let mode = if dark { "dark" } else { "light" };
            browser.screenshot(&screenshots().join(format!("{view}-{size}-{mode}.png"))).await;
        }
    }
    browser.set_size(1280, 800).await;
    browser.dark(false).await;
}

#[tokio::test]
async fn the_console_signs_in_lists_sessions_and_runs_a_backfill_in_a_real_browser() {
    let (platform, _host, slow) = platform().await;
    let origin = platform.gw.http("");
    let origin = origin.trim_end_matches('/');
    let browser = Browser::start(1280, 800).await;

    // The demo-style link signs in, and the fragment leaves the address bar.
    browser.goto(&format!("{origin}/console/#token={}", platform.admin)).await;
    browser
        .wait("the first table", "return document.querySelectorAll('tr[data-session]').length > 0;", json!([]))
        .await;
    let url = browser.run("return location.href;", json!([])).await;
    assert!(!url.as_str().unwrap().contains('#') && !url.as_str().unwrap().contains("token"), "{url}");
    let kept = browser.run("return sessionStorage.getItem(arguments[0]);", json!([KEY])).await;
    assert_eq!(kept, json!(platform.admin), "the token is kept in this tab's sessionStorage");
    let timing = browser
        .run(
            "const nav = performance.getEntriesByType('navigation')[0]; \
             const all = [nav, ...performance.getEntriesByType('resource')]; \
             return {requests: all.length, bytes: all.reduce((n, e) => n + e.transferSize, 0), \
                     names: all.map(e => e.name), tableMs: performance.getEntriesByName('first-table')[0]?.startTime};",
            json!([]),
        )
        .await;
    eprintln!(
        "console first load: {} requests, {} bytes, first table at {} ms",
        timing["requests"], timing["bytes"], timing["tableMs"]
    );
    for name in timing["names"].as_array().unwrap() {
        assert!(name.as_str().unwrap().starts_with(origin), "loaded from another origin: {name}");
    }
    no_script_errors(&browser, "sessions").await;
    shoot(&browser, "sessions").await;

    // Paging reaches every session exactly once, of several organizations.
    let mut seen: Vec<String> = shown_ids(&browser).await;
    assert_eq!(seen.len(), 50);
    let mut page = seen.clone();
    while browser.run("return !document.querySelector('.pager button:last-child').disabled;", json!([])).await
        == json!(true)
    {
        browser.click(".pager button:last-child").await;
        page = page_after(&browser, &page).await;
        seen.extend(page.iter().cloned());
    }
    assert_eq!(seen.len(), 62, "{seen:?}");
    assert_eq!(seen.iter().collect::<HashSet<_>>().len(), 62, "a session shown twice");
    browser.click(".pager button:first-child").await;
    let first = page_after(&browser, &page).await;
    assert_eq!(first.len(), 50, "Previous goes back to the first page");

    // A hostile label is text: no image, no dialog, no script.
    let row = browser.wait_text("tr[data-session='s-xss']", XSS_LABEL).await;
    assert!(row.contains(XSS_LABEL));
    assert_eq!(browser.run("return document.querySelectorAll('img').length;", json!([])).await, json!(0));
    assert_eq!(browser.dialog().await, None, "a dialog opened");

    // A filter narrows the list and is held in the URL.
    browser.type_into("#filter-org", "org_b").await;
    browser.click(".filters button[type=submit]").await;
    let script = "const orgs = [...document.querySelectorAll('tr[data-session] td:first-child')].map(c => c.textContent); \
                  return orgs.length && orgs.every(o => o === 'org_b') ? orgs.length : null;";
    assert_eq!(browser.wait("only org_b", script, json!([])).await, json!(20));
    let url = browser.run("return location.search;", json!([])).await;
    assert_eq!(url, json!("?organizationId=org_b"));

    // The open list polls: a session imported meanwhile appears without a reload.
    let out = import(&platform.gw.db, &line("s-new", "org_b", "starting", "gw-1", "New line"));
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    browser.wait_text("tr[data-session='s-new']", "New line").await;
    assert_eq!(browser.run("return location.search;", json!([])).await, json!("?organizationId=org_b"));

    // A session whose gateway has no host: the 501's message, not a broken page.
    browser.goto(&format!("{origin}/console/?view=session&id=s-nohost")).await;
    browser.wait_text("#record-title", "Unhosted line").await;
    browser.click("#start-backfill").await;
    browser.wait_text("#backfill-message", "no session host is configured").await;
    // And an unknown session says so.
    browser.goto(&format!("{origin}/console/?view=session&id=nope")).await;
    browser.wait_text("main", "session not found").await;

    // One session: a backfill started from the page ends with the host's counters.
    browser.goto(&format!("{origin}/console/?view=session&id=s-ok")).await;
    browser.wait_text("#job", "No backfill").await;
    browser.wait_text("#record-title", "Support line").await;
    shoot(&browser, "session").await;
    browser.click("#start-backfill").await;
    browser.wait_text("#job-status", "succeeded").await;
    assert_eq!(browser.wait_text("#job-contacts", "120").await, "120");
    assert_eq!(browser.wait_text("#job-groups", "3").await, "3");
    assert_eq!(browser.wait_text("#job-members", "12").await, "12");
    no_script_errors(&browser, "session").await;

    // Its stored contacts page, with a hostile push name shown as text.
    browser.wait_text("#stored", "person 0").await;
    browser.click("#stored .pager button:last-child").await;
    browser.wait_text("#stored .pager", "page 2").await;
    browser.click("#stored .pager button:last-child").await;
    browser.wait_text("#stored .pager", "page 3").await;
    browser.wait_text("#stored", SCRIPT_NAME).await;
    assert_eq!(browser.run("return window.__pwned === undefined;", json!([])).await, json!(true));
    assert_eq!(browser.run("return document.querySelectorAll('main script').length;", json!([])).await, json!(0));
    shoot(&browser, "contacts").await;

    // A newer backfill published under the walk: the next page restarts it and says so.
    let http = reqwest::Client::new();
    let started = http
        .post(platform.gw.http("/api/v1/admin/sessions/s-ok:backfill"))
        .bearer_auth(&platform.admin)
        .send()
        .await
        .unwrap();
    assert_eq!(started.status(), 202);
    crate::common::eventually("the second backfill", std::time::Duration::from_secs(30), || async {
        let job: Value = http
            .get(platform.gw.http("/api/v1/admin/sessions/s-ok/backfill"))
            .bearer_auth(&platform.admin)
            .send()
            .await
            .ok()?
            .json()
            .await
            .ok()?;
        (job["status"] == "succeeded").then_some(())
    })
    .await;
    browser.click("#stored .pager button:first-child").await;
    browser.wait_text("#stored .notice", "starts again").await;
    browser.wait_text("#stored .pager", "page 1").await;

    // Groups, and one group's participants.
    browser.click(".tabs a:last-child").await;
    browser.wait_text("#stored", "team group 2").await;
    browser.click("#stored tbody tr:first-child a").await;
    browser.wait_text("#data-title", "Participants of").await;
    let members = "const rows = document.querySelectorAll('#stored tbody tr'); return rows.length || null;";
    assert_eq!(browser.wait("participants", members, json!([])).await, json!(4));
    shoot(&browser, "participants").await;
    no_script_errors(&browser, "stored data").await;

    // Gateways: each feed's state, and a count opens the list filtered to it.
    browser.goto(&format!("{origin}/console/?view=gateways")).await;
    browser.wait_text("tr[data-gateway='gw-1']", "unsupported").await;
    shoot(&browser, "gateways").await;
    browser.click("tr[data-gateway='gw-1'] td[data-status='working'] a").await;
    browser
        .wait("the filtered list", "return document.querySelectorAll('tr[data-session]').length > 0;", json!([]))
        .await;
    let search = browser.run("return location.search;", json!([])).await;
    assert_eq!(search, json!("?gatewayId=gw-1&status=working"));
    let script = "const gws = [...document.querySelectorAll('tr[data-session] td:nth-child(5)')].map(c => c.textContent);                   return gws.every(g => g === 'gw-1') ? gws.length : null;";
    assert_eq!(browser.wait("only gw-1", script, json!([])).await, json!(50), "a full first page");
    no_script_errors(&browser, "gateways").await;

    // A slow host: a second start gets the 409's message, Cancel stops the job.
    browser.goto(&format!("{origin}/console/?view=session&id=s-slow")).await;
    browser.wait_text("#job", "No backfill").await;
    browser.click("#start-backfill").await;
    browser.wait_text("#job-status", "running").await;
    browser.click("#start-backfill").await;
    browser.wait_text("#backfill-message", "already").await;
    browser.click("#cancel-backfill").await;
    browser.wait_text("#job-status", "failed").await;
    browser.wait_text("#job-error", "cancel").await;
    slow.open_gate();

    // A token the server stops accepting sends the console back to sign-in.
    browser.goto(&format!("{origin}/console/")).await;
    browser.wait("the table", "return document.querySelectorAll('tr[data-session]').length > 0;", json!([])).await;
    browser.run("sessionStorage.setItem(arguments[0], 'not.a.token');", json!([KEY])).await;
    browser.wait_text("#sign-in-message", "refused").await;
    shoot(&browser, "sign-in").await;

    // A pasted token without the super_admin role gets its own message.
    let owner = mint(KeyKind::Rsa, "rsa-1", &claims("owner_1", "org_a", "owner", None));
    browser.type_into("#token", &owner).await;
    browser.click(".sign-in button[type=submit]").await;
    browser.wait_text("#sign-in-message", "not a platform super_admin").await;

    // A short-lived token: at its expiry the console returns to sign-in and says why.
    // The console signs in with it (it keeps the token) and then, however
    // slowly the page loaded, returns to sign-in once it has expired.
    let mut short = claims("user_root", "org_platform", "owner", Some("super_admin"));
    short["exp"] = json!(jwks_now() + 6);
    let short = mint(KeyKind::Rsa, "rsa-1", &short);
    browser.type_into("#token", &short).await;
    browser.click(".sign-in button[type=submit]").await;
    let signed_in = "return sessionStorage.getItem(arguments[0]) === arguments[1] \
                     || (document.querySelector('#sign-in-message')?.textContent ?? '').includes('expired');";
    browser.wait("signed in with the short token", signed_in, json!([KEY, short])).await;
    browser.wait_text("#sign-in-message", "expired").await;
    assert_eq!(browser.run("return sessionStorage.getItem(arguments[0]);", json!([KEY])).await, Value::Null);

    // Sign-out forgets the token; a link pasted into the open tab signs in again.
    browser.run("location.hash = 'token=' + arguments[0];", json!([platform.admin])).await;
    browser.wait("the table", "return document.querySelectorAll('tr[data-session]').length > 0;", json!([])).await;
    assert_eq!(browser.run("return location.hash;", json!([])).await, json!(""));
    browser.click("#sign-out").await;
    browser.wait_text("#sign-in-message", "Signed out").await;
    assert_eq!(browser.run("return sessionStorage.getItem(arguments[0]);", json!([KEY])).await, Value::Null);
    no_script_errors(&browser, "sign-in").await;
    assert_eq!(browser.dialog().await, None, "a dialog opened");
}

#[tokio::test]
async fn console_files_are_public_revalidated_and_locked_down() {
    let platform = Platform::start(&[]).await;
    let http = reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).build().unwrap();
    let root = http.get(platform.gw.http("/")).send().await.unwrap();
    assert_eq!(root.status(), 307);
    assert_eq!(root.headers()["location"], "/console/");

    for (path, kind) in
        [("/console/", "text/html"), ("/console/app.js", "text/javascript"), ("/console/console.css", "text/css")]
    {
        let first = http.get(platform.gw.http(path)).send().await.unwrap();
        assert_eq!(first.status(), 200, "{path} needs no credential");
        let headers = first.headers().clone();
        assert!(headers["content-type"].to_str().unwrap().starts_with(kind), "{path}");
        assert_eq!(headers["cache-control"], "no-cache");
        assert_eq!(headers["x-content-type-options"], "nosniff");
        assert_eq!(headers["referrer-policy"], "no-referrer");
        let policy = headers["content-security-policy"].to_str().unwrap();
        for directive in ["default-src 'self'", "script-src 'self'", "frame-ancestors 'none'"] {
            assert!(policy.contains(directive), "{path}: {policy}");
        }
        assert!(!policy.contains("unsafe-inline") && !policy.contains("unsafe-eval"), "{policy}");
        let tag = headers["etag"].clone();
        let again = http.get(platform.gw.http(path)).header("if-none-match", tag.clone()).send().await.unwrap();
        assert_eq!(again.status(), 304, "{path}");
        assert_eq!(again.headers()["etag"], tag);
        let changed = http.get(platform.gw.http(path)).header("if-none-match", "\"other\"").send().await.unwrap();
        assert_eq!(changed.status(), 200);
    }
    let html = http.get(platform.gw.http("/console/")).send().await.unwrap().text().await.unwrap();
    assert!(!html.contains("<script>") && !html.contains(" style="), "no inline script or style");

    let missing = http.get(platform.gw.http("/console/nope.js")).send().await.unwrap();
    assert_eq!(missing.status(), 404);
    let body: Value = missing.json().await.unwrap();
    assert_eq!(body["error"]["code"], "not_found");
    let traversal = http.get(platform.gw.http("/console/..%2F..%2FCargo.toml")).send().await.unwrap();
    assert_eq!(traversal.status(), 404);
}

/// The gateways view refreshes every 5 s. An operator who armed the accept
/// button with a first click, and a refresh came before the second, still
/// has it armed and focused: the second click accepts.
#[tokio::test]
async fn an_armed_accept_button_and_its_focus_outlive_a_refresh_of_the_gateways_view() {
    use wa_gateway::proto::host::{HostedSession, HostedSessionStatus};
    let hosted = |i: usize| HostedSession {
        id: format!("h{i:02}"),
        organization_id: "org_a".into(),
        status: HostedSessionStatus::Working.into(),
        created_at_ms: 1_700_000_000_000,
        updated_at_ms: 1_750_000_000_000,
        ..Default::default()
    };
    // 30 sessions stored with gw-1, of which its host holds 5: a held
    // snapshot (sent once the 30 are stored, so it certainly finds them).
    let (host, url) = ScriptedHost::start(Script { feed: true, ..Default::default() }).await;
    let platform = Platform::start(&["--host", &format!("gw-1={url}")]).await;
    let lines: Vec<String> = (0..30).map(|i| line(&format!("h{i:02}"), "org_a", "working", "gw-1", "held")).collect();
    assert!(import(&platform.gw.db, &lines.join("\n")).status.success());
    let snapshot = wa_gateway::proto::host::WatchSessionsResponse {
        upserted: (0..5).map(hosted).collect(),
        removed: vec![],
        snapshot_complete: true,
    };
    host.send(snapshot).await;
    let origin = platform.gw.http("");
    let origin = origin.trim_end_matches('/');
    let browser = Browser::start(1280, 800).await;
    browser.goto(&format!("{origin}/console/?view=gateways#token={}", platform.admin)).await;
    let button = "tr[data-gateway='gw-1'] button";
    browser
        .wait("the accept button", &format!("return document.querySelector(\"{button}\") !== null;"), json!([]))
        .await;

    browser.click(button).await;
    browser.wait_text(button, "Remove 25 session(s)").await;
    let refreshes =
        browser.run("return Number(document.querySelector('.table-wrap').dataset.refreshes);", json!([])).await;
    browser
        .wait(
            "a refresh",
            "return Number(document.querySelector('.table-wrap').dataset.refreshes) > arguments[0];",
            json!([refreshes]),
        )
        .await;
    let after = browser
        .run(
            &format!("const b = document.querySelector(\"{button}\"); return {{label: b.textContent, focused: document.activeElement === b}};"),
            json!([]),
        )
        .await;
    assert_eq!(after["label"], "Remove 25 session(s)", "the refresh disarmed the button: {after}");
    assert_eq!(after["focused"], true, "the refresh took the keyboard focus away: {after}");
    browser.click(button).await;
    browser.wait_text(".notice", "Accepted").await;
    browser
        .wait(
            "the held sessions removed",
            "return document.querySelector(\"tr[data-gateway='gw-1'] button\") === null;",
            json!([]),
        )
        .await;
    no_script_errors(&browser, "gateways accept").await;
}
