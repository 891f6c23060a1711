//! Backfills against hosts that misbehave and sessions that are huge: the
//! deadline, cancel, duplicates, bounded pages, walks across a newer
//! backfill, transient and permanent host failures, a busy store. The real
//! binary, a scripted SessionHostService over real gRPC, a real SQLite file.

use std::collections::BTreeSet;
use std::sync::atomic::Ordering;
use std::time::Duration;

use crate::common::env::env;
use crate::common::host::{Script, ScriptedHost, contact, group};
use crate::common::*;
use sqlx::Connection;
use tonic::Code;
use tonic_types::StatusExt;
use wa_gateway::proto::admin::*;
use wa_gateway::proto::host as hostpb;

fn reason(status: &tonic::Status) -> String {
    status.get_details_error_info().map(|i| i.reason).unwrap_or_default()
}

crate::both_backends!(an_endless_stream_fails_at_the_deadline_and_frees_the_session);
async fn an_endless_stream_fails_at_the_deadline_and_frees_the_session() {
    let (host, url) = ScriptedHost::start(Script {
        contacts: (0..10).map(|i| contact(i, "c")).collect(),
        batch: 5,
        endless: true,
        ..Default::default()
    })
    .await;
    let env = env(&[("gw-1", &url)], &["--backfill-timeout-secs", "2", "--backfill-concurrency", "1"]).await;
    env.start("sess-1").await.unwrap();
    let failed = env.finished("sess-1").await;
    assert_eq!(failed.status(), BackfillStatus::Failed);
    assert_eq!(failed.error.as_deref(), Some("timed out after 2 s (--backfill-timeout-secs)"));
    assert!(env.contacts("sess-1").await.is_empty(), "nothing published");

    // The session and the only job slot are free again.
    host.set(|s| s.endless = false);
    env.start("sess-1").await.unwrap();
    let done = env.finished("sess-1").await;
    assert_eq!((done.status(), done.contacts), (BackfillStatus::Succeeded, 10));
}

crate::both_backends!(cancel_stops_running_and_queued_jobs_and_leaves_the_data);
async fn cancel_stops_running_and_queued_jobs_and_leaves_the_data() {
    let (host, url) = ScriptedHost::start(Script {
        contacts: (0..100).map(|i| contact(i, "kept")).collect(),
        groups: (0..3).map(|i| group(i, 2, "kept")).collect(),
        batch: 10,
        ..Default::default()
    })
    .await;
    let env = env(&[("gw-1", &url)], &["--backfill-concurrency", "1"]).await;
    env.start("sess-1").await.unwrap();
    assert_eq!(env.finished("sess-1").await.status(), BackfillStatus::Succeeded);
    let (contacts, groups) = (env.contacts("sess-1").await, env.groups_with_members("sess-1").await);

    host.set(|s| {
        s.contacts = (0..100).map(|i| contact(i + 500, "new")).collect();
        s.gated = true;
    });
    let running = env.start("sess-1").await.unwrap();
    env.running_with_progress("sess-1").await;
    let queued = env.start("sess-2").await.unwrap();
    assert_eq!(env.get("sess-2").await.unwrap().status(), BackfillStatus::Queued, "one slot, taken");

    let stopped = env.cancel("sess-2").await.unwrap();
    assert_eq!((stopped.id.as_str(), stopped.status()), (queued.id.as_str(), BackfillStatus::Failed));
    assert_eq!(stopped.error.as_deref(), Some("cancelled by a super_admin"));
    assert!(stopped.finished_at.is_some());

    let stopped = env.cancel("sess-1").await.unwrap();
    assert_eq!((stopped.id.as_str(), stopped.status()), (running.id.as_str(), BackfillStatus::Failed));
    assert_eq!(stopped.error.as_deref(), Some("cancelled by a super_admin"));
    assert!(stopped.contacts > 0, "progress made before the cancel is reported");
    assert_eq!(env.get("sess-1").await.unwrap(), stopped);
    assert_eq!(env.contacts("sess-1").await, contacts, "stored contacts unchanged, row by row");
    assert_eq!(env.groups_with_members("sess-1").await, groups, "stored groups unchanged");

    let err = env.cancel("sess-1").await.unwrap_err();
    assert_eq!((err.code(), reason(&err).as_str()), (Code::Aborted, "BACKFILL_NOT_RUNNING"));
    let err = env.cancel("no-such-session").await.unwrap_err();
    assert_eq!(err.code(), Code::NotFound);

    // The slot is free: a new job runs to the end.
    host.set(|s| s.gated = false);
    host.open_gate();
    env.start("sess-1").await.unwrap();
    assert_eq!(env.finished("sess-1").await.status(), BackfillStatus::Succeeded);
    assert!(env.contacts("sess-1").await.iter().all(|c| c.push_name.as_deref().unwrap().starts_with("new")));
}

fn group_of(jid: &str, members: &[&str]) -> hostpb::Group {
    hostpb::Group {
        jid: jid.into(),
        name: format!("{jid} with {}", members.len()),
        participants: members
            .iter()
            .map(|m| hostpb::Participant { jid: format!("{m}@s.whatsapp.net"), ..Default::default() })
            .collect(),
        ..Default::default()
    }
}

crate::both_backends!(the_last_version_of_a_duplicate_wins_and_counters_match_stored_rows);
async fn the_last_version_of_a_duplicate_wins_and_counters_match_stored_rows() {
    let mut contacts: Vec<_> = (0..30).map(|i| contact(i, "first")).collect();
    contacts.extend((0..10).map(|i| contact(i * 3, "last")));
    // Batches of 7: 1@g.us repeats in the next message, 3@g.us within one,
    // and 2@g.us lists a member twice.
    let groups = vec![
        group_of("1@g.us", &["1", "2"]),
        group_of("2@g.us", &["3", "3", "4"]),
        group_of("3@g.us", &["5"]),
        group_of("3@g.us", &["7"]),
        group_of("f1@g.us", &["9"]),
        group_of("f2@g.us", &["9"]),
        group_of("f3@g.us", &["9"]),
        group_of("f4@g.us", &["9"]),
        group_of("1@g.us", &["6"]),
    ];
    let (_host, url) = ScriptedHost::start(Script { contacts, groups, batch: 7, ..Default::default() }).await;
    let env = env(&[("gw-1", &url)], &[]).await;
    env.start("sess-1").await.unwrap();
    let done = env.finished("sess-1").await;
    assert_eq!(done.status(), BackfillStatus::Succeeded, "{done:?}");

    let stored = env.contacts("sess-1").await;
    assert_eq!(stored.len(), 30);
    for c in &stored {
        let i: usize = c.jid[..5].parse().unwrap();
        let expected = if i % 3 == 0 && i < 30 { "last" } else { "first" };
        assert_eq!(c.push_name.as_deref(), Some(format!("{expected} {i}").as_str()), "{c:?}");
    }
    let groups = env.groups_with_members("sess-1").await;
    let members: Vec<(String, Vec<String>)> = groups.iter().map(|(g, m)| (g.jid.clone(), m.clone())).collect();
    let of =
        |group: &str, ids: &[&str]| (group.to_owned(), ids.iter().map(|m| format!("{m}@s.whatsapp.net")).collect());
    let expected: Vec<(String, Vec<String>)> = vec![
        of("1@g.us", &["6"]),
        of("2@g.us", &["3", "4"]),
        of("3@g.us", &["7"]),
        of("f1@g.us", &["9"]),
        of("f2@g.us", &["9"]),
        of("f3@g.us", &["9"]),
        of("f4@g.us", &["9"]),
    ];
    assert_eq!(members, expected, "a repeated group's members replace the earlier ones, never merge");
    assert_eq!(groups[0].0.name.as_deref(), Some("1@g.us with 1"));
    let stored_members: usize = groups.iter().map(|(_, m)| m.len()).sum();
    assert_eq!(
        (done.contacts, done.groups, done.group_members),
        (stored.len() as i64, groups.len() as i64, stored_members as i64),
        "counters equal the stored rows"
    );
    assert!(groups.iter().all(|(g, m)| g.participant_count == m.len() as i64));
}

crate::both_backends!(huge_groups_page_in_bounded_bytes_and_every_member_is_reachable);
async fn huge_groups_page_in_bounded_bytes_and_every_member_is_reachable() {
    let (_host, url) = ScriptedHost::start(Script {
        groups: (0..200).map(|i| group(i, 1000, "big")).collect(),
        batch: 10,
        ..Default::default()
    })
    .await;
    let env = env(&[("gw-1", &url)], &[]).await;
    env.start("sess-1").await.unwrap();
    let done = env.finished("sess-1").await;
    assert_eq!((done.groups, done.group_members), (200, 200_000), "{done:?}");

    let http = reqwest::Client::new();
    let page = http
        .get(env.gw.http("/api/v1/admin/sessions/sess-1/groups?limit=500"))
        .bearer_auth(&env.token)
        .send()
        .await
        .unwrap();
    assert_eq!(page.status(), 200);
    let bytes = page.bytes().await.unwrap();
    assert!(bytes.len() < 64 * 1024, "a page of 200 groups of 1,000 is {} bytes", bytes.len());
    let page: serde_json::Value = serde_json::from_slice(&bytes).unwrap();
    assert_eq!(page["data"].as_array().unwrap().len(), 200);
    assert!(page["data"].as_array().unwrap().iter().all(|g| g["participantCount"] == 1000));

    let members = http
        .get(env.gw.http("/api/v1/admin/sessions/sess-1/groups/g0042@g.us/participants?limit=500"))
        .bearer_auth(&env.token)
        .send()
        .await
        .unwrap()
        .bytes()
        .await
        .unwrap();
    assert!(members.len() < 128 * 1024, "a page of 500 members is {} bytes", members.len());

    let mut reached = 0;
    for g in env.groups("sess-1").await {
        let members = env.participants("sess-1", &g.jid, 500).await;
        assert_eq!(members.iter().map(|m| &m.jid).collect::<BTreeSet<_>>().len(), 1000, "{}", g.jid);
        reached += members.len();
    }
    assert_eq!(reached, 200_000);
}

crate::both_backends!(a_walk_never_mixes_two_backfills);
async fn a_walk_never_mixes_two_backfills() {
    let (host, url) = ScriptedHost::start(Script {
        contacts: (0..100).map(|i| contact(i, "one")).collect(),
        groups: (0..10).map(|i| group(i, 20, "one")).collect(),
        batch: 25,
        ..Default::default()
    })
    .await;
    let env = env(&[("gw-1", &url)], &[]).await;
    env.start("sess-1").await.unwrap();
    env.finished("sess-1").await;
    let mut client = env.client.clone();
    let contacts = ListSessionContactsRequest { session_id: "sess-1".into(), limit: Some(40), cursor: String::new() };
    let first = client.list_session_contacts(authed(contacts.clone(), &env.token)).await.unwrap().into_inner();
    let groups = ListSessionGroupsRequest { session_id: "sess-1".into(), limit: Some(4), cursor: String::new() };
    let first_groups = client.list_session_groups(authed(groups.clone(), &env.token)).await.unwrap().into_inner();
    let members = ListSessionGroupParticipantsRequest {
        session_id: "sess-1".into(),
        group_jid: "g0001@g.us".into(),
        limit: Some(5),
        cursor: String::new(),
    };
    let first_members =
        client.list_session_group_participants(authed(members.clone(), &env.token)).await.unwrap().into_inner();

    // A newer backfill is published between two pages.
    host.set(|s| {
        s.contacts = (0..100).map(|i| contact(i, "two")).collect();
        s.groups = (0..10).map(|i| group(i, 20, "two")).collect();
    });
    env.start("sess-1").await.unwrap();
    assert_eq!(env.finished("sess-1").await.status(), BackfillStatus::Succeeded);

    let stale = |status: tonic::Status| {
        assert_eq!((status.code(), reason(&status).as_str()), (Code::Aborted, "CURSOR_STALE"), "{status:?}");
        assert!(status.message().contains("start again"), "{}", status.message());
    };
    let next = ListSessionContactsRequest { cursor: first.next_cursor.unwrap(), ..contacts };
    stale(client.list_session_contacts(authed(next, &env.token)).await.unwrap_err());
    let next = ListSessionGroupsRequest { cursor: first_groups.next_cursor.unwrap(), ..groups };
    stale(client.list_session_groups(authed(next, &env.token)).await.unwrap_err());
    let next = ListSessionGroupParticipantsRequest { cursor: first_members.next_cursor.unwrap(), ..members };
    stale(client.list_session_group_participants(authed(next, &env.token)).await.unwrap_err());

    // Starting again reads the new backfill only.
    let all = env.contacts("sess-1").await;
    assert_eq!(all.len(), 100);
    assert!(all.iter().all(|c| c.push_name.as_deref().unwrap().starts_with("two")));
}

crate::both_backends!(transient_failures_are_retried_and_permanent_ones_name_their_cause);
async fn transient_failures_are_retried_and_permanent_ones_name_their_cause() {
    let (host, url) = ScriptedHost::start(Script {
        contacts: (0..20).map(|i| contact(i, "c")).collect(),
        groups: (0..2).map(|i| group(i, 2, "g")).collect(),
        batch: 10,
        unavailable_calls: 1,
        ..Default::default()
    })
    .await;
    let env = env(&[("gw-1", &url)], &[]).await;
    env.start("sess-1").await.unwrap();
    let done = env.finished("sess-1").await;
    assert_eq!((done.status(), done.contacts, done.groups), (BackfillStatus::Succeeded, 20, 2), "{done:?}");
    assert_eq!(host.calls.load(Ordering::SeqCst), 3, "one failed call, then both streams");

    host.set(|s| s.unavailable_calls = 100);
    env.start("sess-1").await.unwrap();
    let failed = env.finished("sess-1").await;
    assert_eq!(failed.error.as_deref(), Some("session host unavailable: scripted outage (after 4 attempts)"));

    for (code, error) in [
        (Code::Internal, "session host internal error: scripted refusal"),
        (Code::DeadlineExceeded, "session host deadline exceeded: scripted refusal"),
        (Code::FailedPrecondition, "session not connected"),
        (Code::NotFound, "session host does not hold this session"),
    ] {
        host.set(|s| s.refuse = Some(code));
        let calls = host.calls.load(Ordering::SeqCst);
        env.start("sess-1").await.unwrap();
        assert_eq!(env.finished("sess-1").await.error.as_deref(), Some(error), "{code:?}");
        assert_eq!(host.calls.load(Ordering::SeqCst), calls + 1, "{code:?} is not retried");
    }
    assert_eq!(env.contacts("sess-1").await.len(), 20, "failures left the data");
}

#[tokio::test]
async fn a_job_waits_out_a_busy_store_instead_of_failing() {
    let (_host, url) = ScriptedHost::start(Script {
        contacts: (0..50).map(|i| contact(i, "c")).collect(),
        batch: 10,
        ..Default::default()
    })
    .await;
    let env = env(&[("gw-1", &url)], &[]).await;
    // Another writer (an import, say) holds the write lock longer than
    // SQLite's 5 s busy timeout.
    let mut writer = sqlx::SqliteConnection::connect(&format!("sqlite://{}", env.gw.db)).await.unwrap();
    sqlx::query("BEGIN IMMEDIATE").execute(&mut writer).await.unwrap();
    env.start("sess-1").await.unwrap();
    tokio::time::sleep(Duration::from_secs(7)).await;
    let waiting = env.get("sess-1").await.unwrap();
    assert_eq!((waiting.status(), waiting.contacts), (BackfillStatus::Running, 0), "blocked on the lock");
    sqlx::query("COMMIT").execute(&mut writer).await.unwrap();
    let done = env.finished("sess-1").await;
    assert_eq!((done.status(), done.contacts), (BackfillStatus::Succeeded, 50), "{done:?}");
}

crate::both_backends!(a_large_groups_message_is_stored_in_chunks_and_judged_as_one_stream);
/// One message of 13,000 members is stored in chunks of at most 5,000
/// members; a group repeated within it (in a later chunk) still replaces
/// the earlier version whole, a bad group is named by its position in the
/// stream, and a message over the item cap is refused before anything of
/// it counts.
async fn a_large_groups_message_is_stored_in_chunks_and_judged_as_one_stream() {
    let members = |n: usize| (0..n).map(|m| m.to_string()).collect::<Vec<_>>();
    let of = |jid: &str, n: usize| group_of(jid, &members(n).iter().map(String::as_str).collect::<Vec<_>>());
    let groups = vec![of("0@g.us", 3000), of("1@g.us", 3000), of("2@g.us", 10), of("0@g.us", 2), of("3@g.us", 4000)];
    let (host, url) = ScriptedHost::start(Script { groups, batch: 10, ..Default::default() }).await;
    let env = env(&[("gw-1", &url)], &[]).await;
    env.start("sess-1").await.unwrap();
    let done = env.finished("sess-1").await;
    assert_eq!(done.status(), BackfillStatus::Succeeded, "{done:?}");
    let stored = env.groups_with_members("sess-1").await;
    let sizes: Vec<(String, usize)> = stored.iter().map(|(g, m)| (g.jid.clone(), m.len())).collect();
    let expected = [("0@g.us", 2), ("1@g.us", 3000), ("2@g.us", 10), ("3@g.us", 4000)];
    assert_eq!(sizes, expected.map(|(j, n)| (j.to_owned(), n)), "the later 0@g.us replaced the earlier");
    assert_eq!((done.groups, done.group_members), (4, 7012), "counters equal the stored rows");

    let mut bad: Vec<hostpb::Group> = (0..6).map(|i| of(&format!("b{i}@g.us"), 2000)).collect();
    bad[5].participants[1500].lid = "x@g.us".into();
    host.set(|s| s.groups = bad);
    env.start("sess-1").await.unwrap();
    let failed = env.finished("sess-1").await;
    let error = failed.error.unwrap_or_default();
    assert!(error.starts_with("session host sent invalid data: groups[5].participants[1500].lid: "), "{error}");
    assert_eq!(env.groups_with_members("sess-1").await.len(), 4, "the failed job left the data");

    host.set(|s| {
        s.groups = (0..5001).map(|i| of(&format!("t{i}@g.us"), 0)).collect();
        s.batch = 5001;
    });
    env.start("sess-1").await.unwrap();
    let failed = env.finished("sess-1").await;
    assert_eq!(
        failed.error.as_deref(),
        Some("session host sent invalid data: groups message: 5001 items exceed the limit of 5000 per message")
    );
}
