//! `wa-gateway host-check` against real session hosts over gRPC: the
//! reference `host-sim` passes; scripted hosts that break the contract fail,
//! and the report names what they broke.

use crate::common::host::{Script, ScriptedHost, contact, group};
use crate::common::*;
use wa_gateway::proto::host as pb;

async fn host_check(url: &str, session: &str) -> (bool, String) {
    let out = tokio::process::Command::new(BIN)
        .args(["--log", "warn", "host-check", "--host", url, "--session", session, "--stall-timeout-secs", "5"])
        .output()
        .await
        .unwrap();
    let report = String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
    (out.status.success(), report)
}

fn well_behaved() -> Script {
    Script {
        contacts: (0..40).map(|i| contact(i, "c")).collect(),
        groups: (0..5).map(|i| group(i, 3, "g")).collect(),
        batch: 10,
        held: Some(vec!["sess-1".into()]),
        ..Default::default()
    }
}

#[tokio::test]
async fn host_sim_conforms() {
    let sim = HostSimProcess::start(&["--session", "sess-1", "--contacts", "300", "--groups", "12"]).await;
    let (ok, report) = host_check(&sim.url, "sess-1").await;
    assert!(ok, "{report}");
    for line in ["PASS  contacts: 300 contacts", "PASS  joined groups: 12 groups", "PASS  unknown session"] {
        assert!(report.contains(line), "{line:?} missing from\n{report}");
    }
    assert!(report.contains("items/s"), "streams are timed:\n{report}");
    assert!(report.contains("result: the host conforms"), "{report}");
}

#[tokio::test]
async fn a_scripted_host_that_keeps_the_contract_conforms() {
    let (_host, url) = ScriptedHost::start(well_behaved()).await;
    let (ok, report) = host_check(&url, "sess-1").await;
    assert!(ok, "{report}");
}

#[tokio::test]
async fn duplicates_empty_jids_and_oversized_groups_fail_with_their_place_named() {
    let mut script = well_behaved();
    script.contacts[7] = contact(3, "again");
    script.contacts[12].jid = String::new();
    script.groups[2] = group(2, 10_001, "huge");
    script.groups[4].participants[2] = script.groups[4].participants[0].clone();
    let (_host, url) = ScriptedHost::start(script).await;
    let (ok, report) = host_check(&url, "sess-1").await;
    assert!(!ok, "{report}");
    for line in [
        "FAIL  contacts",
        "contacts[7]: 00003@s.whatsapp.net repeats contacts[3]",
        "contacts[12].jid: must not be empty",
        "FAIL  joined groups",
        "groups[2].participants: 10001 exceed the limit of 10000",
        "groups[4].participants[2]: 00000@s.whatsapp.net repeats participants[0]",
        "PASS  unknown session",
        "result: the host does not conform (2 of 4 checks failed)",
    ] {
        assert!(report.contains(line), "{line:?} missing from\n{report}");
    }
}

#[tokio::test]
async fn a_host_that_serves_any_session_and_bad_shapes_fails() {
    let mut script = well_behaved();
    script.held = None;
    script.contacts[0].jid = "12345".into();
    script.groups = vec![pb::Group { jid: "1@s.whatsapp.net".into(), ..Default::default() }];
    let (_host, url) = ScriptedHost::start(script).await;
    let (ok, report) = host_check(&url, "sess-1").await;
    assert!(!ok);
    for line in [
        "contacts[0].jid: \"12345\" is not a jid (user@server)",
        "groups[0].jid: \"1@s.whatsapp.net\" is not on g.us",
        "FAIL  unknown session",
        "StreamContacts opened a stream instead of answering NOT_FOUND",
    ] {
        assert!(report.contains(line), "{line:?} missing from\n{report}");
    }
}

#[tokio::test]
async fn an_unreachable_host_fails_and_bad_arguments_are_refused() {
    let (ok, report) = host_check("http://127.0.0.1:1", "sess-1").await;
    assert!(!ok);
    assert!(report.contains("FAIL  contacts") && report.contains("session host unavailable"), "{report}");
    let (ok, report) = host_check("ftp://example.com", "sess-1").await;
    assert!(!ok && report.contains("http:// or https://"), "{report}");
    let (ok, report) = host_check("http://127.0.0.1:1", "bad id!").await;
    assert!(!ok && report.contains("--session"), "{report}");
}

/// A host-sim given sessions serves a feed host-check accepts, changes
/// included; a scripted feed with a repeated id, a record without a status
/// and one dated far ahead fails, each named.
#[tokio::test]
async fn session_feeds_are_checked_too() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("sessions.jsonl");
    let lines: Vec<String> = (0..30).map(|i| session_line(&format!("s{i}"), "org_a", "working", "gw-1")).collect();
    std::fs::write(&file, lines.join("\n")).unwrap();
    let file = file.display().to_string();
    let sim = HostSimProcess::start(&["--session", "s0", "--sessions", &file, "--churn-per-sec", "20"]).await;
    let out = tokio::process::Command::new(BIN)
        .args(["--log", "warn", "host-check", "--host", &sim.url, "--session", "s0", "--feed-change-wait-secs", "10"])
        .output()
        .await
        .unwrap();
    let report = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(out.status.success(), "{report}");
    assert!(
        report.contains("PASS  session feed: a snapshot of 30 session(s)") && report.contains("a change followed"),
        "{report}"
    );

    let record = |id: &str, status: i32, updated: i64| pb::HostedSession {
        id: id.into(),
        organization_id: "org_a".into(),
        status,
        updated_at_ms: updated,
        ..Default::default()
    };
    let mut script = well_behaved();
    script.feed = true;
    script.snapshot = Some(vec![
        record("a", 4, 1_750_000_000_000),
        record("a", 4, 1_750_000_000_001),
        record("b", 0, 1_750_000_000_000),
        record("c", 4, 4_000_000_000_000),
    ]);
    let (_host, url) = ScriptedHost::start(script).await;
    let (ok, report) = host_check(&url, "sess-1").await;
    assert!(!ok, "{report}");
    for line in [
        "FAIL  session feed",
        "session \"a\" twice in one snapshot",
        "session \"b\" would be refused: unspecified_status",
        "session \"c\" is dated more than a day ahead",
    ] {
        assert!(report.contains(line), "{line:?} missing from\n{report}");
    }
}
