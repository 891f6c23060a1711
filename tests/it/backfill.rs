//! Backfill orchestration end to end: the real binary, session hosts over
//! real gRPC (host-sim processes and a scripted SessionHostService), a real
//! SQLite file.

use std::time::Duration;

use crate::common::Gateway;
use crate::common::env::{Env, env};
use crate::common::host::{Script, ScriptedHost, contact, group};
use crate::common::*;
use tonic::Code;
use tonic_types::StatusExt;
use wa_gateway::proto::admin::*;

crate::both_backends!(host_sim_backfill_stores_everything_and_reports_growing_progress);
async fn host_sim_backfill_stores_everything_and_reports_growing_progress() {
    let sim = HostSimProcess::start(&[
        "--contacts",
        "3000",
        "--groups",
        "30",
        "--members-per-group",
        "7",
        "--batch-size",
        "250",
        "--delay-ms",
        "20",
        "--disconnected",
        "sess-off",
    ])
    .await;
    let env = env(&[("gw-1", &sim.url)], &[]).await;

    let job = env.start("sess-1").await.unwrap();
    assert_eq!(job.session_id, "sess-1");
    assert_eq!(job.organization_id, "org_a");
    assert_eq!(job.id.len(), 26, "a ULID");
    assert!(matches!(job.status(), BackfillStatus::Queued | BackfillStatus::Running));

    let states = env.watch("sess-1").await;
    let last = states.last().unwrap();
    assert_eq!(last.status(), BackfillStatus::Succeeded, "{last:?}");
    assert_eq!((last.contacts, last.groups, last.group_members), (3000, 30, 210));
    assert!(last.finished_at.is_some() && last.error.is_none());
    assert!(states.len() >= 3, "progress was reported along the way: {}", states.len());
    for pair in states.windows(2) {
        assert!(pair[1].contacts >= pair[0].contacts && pair[1].groups >= pair[0].groups, "counters went down");
        assert!(pair[1].group_members >= pair[0].group_members);
    }
    assert!(states.iter().any(|s| s.status() == BackfillStatus::Running && s.contacts > 0 && s.contacts < 3000));
    assert_eq!(&env.get("sess-1").await.unwrap(), last);

    let contacts = env.contacts("sess-1").await;
    assert_eq!(contacts.len(), 3000);
    let mut jids: Vec<&str> = contacts.iter().map(|c| c.jid.as_str()).collect();
    jids.dedup();
    assert_eq!(jids.len(), 3000);
    let groups = env.groups_with_members("sess-1").await;
    assert_eq!(groups.len(), 30);
    assert!(groups.iter().all(|(g, members)| g.participant_count == 7 && members.len() == 7));
    assert_eq!(groups[0].0.name.as_deref(), Some("Group 0"));

    // A disconnected session fails with the documented reason.
    env.start("sess-off").await.unwrap();
    let failed = env.finished("sess-off").await;
    assert_eq!(failed.status(), BackfillStatus::Failed);
    assert_eq!(failed.error.as_deref(), Some("session not connected"));
}

crate::both_backends!(the_host_is_asked_for_groups_while_contacts_are_still_coming);
async fn the_host_is_asked_for_groups_while_contacts_are_still_coming() {
    let (host, url) = ScriptedHost::start(Script {
        contacts: (0..30).map(|i| contact(i, "c")).collect(),
        groups: (0..3).map(|i| group(i, 2, "g")).collect(),
        batch: 10,
        gated: true,
        ..Default::default()
    })
    .await;
    let env = env(&[("gw-1", &url)], &[]).await;
    env.start("sess-1").await.unwrap();
    // The host sent its first contacts and holds the rest: it already has
    // the groups call, so it can prepare them meanwhile.
    eventually("the groups call while contacts are held", Duration::from_secs(30), || async {
        (host.calls.load(std::sync::atomic::Ordering::SeqCst) == 2).then_some(())
    })
    .await;
    let running = env.get("sess-1").await.unwrap();
    assert_eq!((running.status(), running.groups), (BackfillStatus::Running, 0), "groups wait for contacts");
    host.open_gate();
    let done = env.finished("sess-1").await;
    assert_eq!((done.status(), done.contacts, done.groups, done.group_members), (BackfillStatus::Succeeded, 30, 3, 6));
    assert_eq!(env.contacts("sess-1").await.len(), 30);
    assert_eq!(env.groups_with_members("sess-1").await.len(), 3);
}

crate::both_backends!(one_job_per_session_decided_atomically);
async fn one_job_per_session_decided_atomically() {
    let (host, url) = ScriptedHost::start(Script {
        contacts: (0..100).map(|i| contact(i, "a")).collect(),
        batch: 10,
        gated: true,
        ..Default::default()
    })
    .await;
    let env = env(&[("gw-1", &url)], &[]).await;

    let attempts = (0..64).map(|_| {
        let env_client = env.client.clone();
        let token = env.token.clone();
        tokio::spawn(async move {
            let req = StartBackfillRequest { session_id: "sess-1".into() };
            env_client.clone().start_backfill(authed(req, &token)).await
        })
    });
    let mut winners = Vec::new();
    let mut conflicts = Vec::new();
    for attempt in attempts.collect::<Vec<_>>() {
        match attempt.await.unwrap() {
            Ok(r) => winners.push(r.into_inner().job.unwrap()),
            Err(status) => conflicts.push(status),
        }
    }
    assert_eq!(winners.len(), 1, "exactly one start wins");
    assert_eq!(conflicts.len(), 63);
    let winner = &winners[0];
    for status in &conflicts {
        assert!(matches!(status.code(), Code::AlreadyExists | Code::Aborted), "{status:?}");
        let info = status.get_details_error_info().expect("ErrorInfo");
        assert_eq!(info.reason, "BACKFILL_RUNNING");
        assert_eq!(info.metadata.get("sessionId").map(String::as_str), Some("sess-1"));
        assert_eq!(info.metadata.get("jobId"), Some(&winner.id));
    }

    // Still running: a later start is refused too, and GetBackfill shows it.
    let running = eventually("job to run", Duration::from_secs(10), || async {
        let job = env.get("sess-1").await.ok()?;
        (job.status() == BackfillStatus::Running).then_some(job)
    })
    .await;
    assert_eq!(running.id, winner.id);
    assert_eq!(env.start("sess-1").await.unwrap_err().code(), Code::AlreadyExists);
    // Another session is independent.
    host.open_gate();
    assert!(env.start("sess-2").await.is_ok());
    let done = env.finished("sess-1").await;
    assert_eq!(done.status(), BackfillStatus::Succeeded);
    assert_eq!(done.contacts, 100);
    // Finished: a new job may start, with a new id.
    let again = env.start("sess-1").await.unwrap();
    assert_ne!(again.id, winner.id);
}

crate::both_backends!(errors_for_unknown_sessions_missing_hosts_and_no_job);
async fn errors_for_unknown_sessions_missing_hosts_and_no_job() {
    let (_host, url) = ScriptedHost::start(Script::default()).await;
    let env = env(&[("gw-1", &url)], &[]).await;

    let err = env.start("no-such-session").await.unwrap_err();
    assert_eq!(err.code(), Code::NotFound);
    assert_eq!(err.message(), "session not found");
    assert_eq!(env.get("no-such-session").await.unwrap_err().code(), Code::NotFound);

    let err = env.start("sess-nohost").await.unwrap_err();
    assert_eq!(err.code(), Code::Unimplemented);
    assert!(err.message().contains("gw-unconfigured"), "{}", err.message());

    let err = env.get("sess-2").await.unwrap_err();
    assert_eq!(err.code(), Code::NotFound, "no job since start-up");
    assert_eq!(err.get_details_error_info().unwrap().reason, "BACKFILL_NOT_FOUND");

    let err = env.start("bad id!").await.unwrap_err();
    assert_eq!(err.code(), Code::InvalidArgument);
    let req = ListSessionContactsRequest { session_id: "nope".into(), ..Default::default() };
    let err = env.client.clone().list_session_contacts(authed(req, &env.token)).await.unwrap_err();
    assert_eq!(err.code(), Code::NotFound);
    let req = ListSessionContactsRequest { session_id: "sess-1".into(), cursor: "forged".into(), ..Default::default() };
    let err = env.client.clone().list_session_contacts(authed(req, &env.token)).await.unwrap_err();
    assert_eq!(err.code(), Code::InvalidArgument);
}

crate::both_backends!(a_failed_pull_leaves_the_previous_data_and_a_smaller_pull_replaces_it);
async fn a_failed_pull_leaves_the_previous_data_and_a_smaller_pull_replaces_it() {
    let (host, url) = ScriptedHost::start(Script {
        contacts: (0..500).map(|i| contact(i, "first")).collect(),
        groups: (0..20).map(|i| group(i, 5, "first")).collect(),
        batch: 50,
        ..Default::default()
    })
    .await;
    let env = env(&[("gw-1", &url)], &["--host-stall-timeout-secs", "2"]).await;
    env.start("sess-1").await.unwrap();
    assert_eq!(env.finished("sess-1").await.status(), BackfillStatus::Succeeded);
    let contacts_before = env.contacts("sess-1").await;
    let groups_before = env.groups_with_members("sess-1").await;
    assert_eq!((contacts_before.len(), groups_before.len()), (500, 20));

    // Fails halfway through contacts, with different data.
    host.set(|s| {
        s.contacts = (0..800).map(|i| contact(i, "second")).collect();
        s.fail_contacts_after = Some(300);
    });
    env.start("sess-1").await.unwrap();
    let failed = env.finished("sess-1").await;
    assert_eq!(failed.status(), BackfillStatus::Failed);
    assert!(failed.error.as_deref().unwrap().starts_with("session host unavailable"), "{failed:?}");
    assert!(failed.contacts >= 250, "progress before the failure is reported: {}", failed.contacts);
    assert_eq!(env.contacts("sess-1").await, contacts_before, "contacts intact, row by row");
    assert_eq!(env.groups_with_members("sess-1").await, groups_before, "groups and members intact, row by row");

    // Fails in the groups stream, after all contacts were staged.
    host.set(|s| {
        s.fail_contacts_after = None;
        s.groups = (0..40).map(|i| group(i, 3, "second")).collect();
        s.fail_groups_after = Some(10);
    });
    env.start("sess-1").await.unwrap();
    assert_eq!(env.finished("sess-1").await.status(), BackfillStatus::Failed);
    assert_eq!(env.contacts("sess-1").await, contacts_before);
    assert_eq!(env.groups_with_members("sess-1").await, groups_before);

    // A host that sends an invalid row fails the job; nothing changes.
    host.set(|s| {
        s.fail_groups_after = None;
        s.contacts[5].jid = String::new();
    });
    env.start("sess-1").await.unwrap();
    let invalid = env.finished("sess-1").await;
    assert_eq!(invalid.error.as_deref(), Some("session host sent invalid data: contacts[5].jid: must not be empty"));
    assert_eq!(env.contacts("sess-1").await, contacts_before);

    // A host that stalls past the timeout fails the job.
    host.set(|s| {
        s.contacts = (0..100).map(|i| contact(i, "third")).collect();
        s.gated = true;
    });
    env.start("sess-1").await.unwrap();
    let stalled = env.finished("sess-1").await;
    assert!(stalled.error.as_deref().unwrap().contains("stalled"), "{stalled:?}");
    assert_eq!(env.contacts("sess-1").await, contacts_before);

    // A smaller successful pull replaces everything; rows no longer reported are gone.
    host.set(|s| {
        s.gated = false;
        s.contacts = (0..120).map(|i| contact(i * 3, "fourth")).collect();
        s.groups = (0..4).map(|i| group(i, 2, "fourth")).collect();
    });
    env.start("sess-1").await.unwrap();
    let done = env.finished("sess-1").await;
    assert_eq!((done.contacts, done.groups, done.group_members), (120, 4, 8));
    let contacts = env.contacts("sess-1").await;
    assert_eq!(contacts.len(), 120);
    assert!(contacts.iter().all(|c| c.push_name.as_deref().unwrap().starts_with("fourth")));
    assert_eq!(contacts[1].jid, "00003@s.whatsapp.net");
    let groups = env.groups_with_members("sess-1").await;
    assert_eq!(groups.len(), 4);
    assert!(groups.iter().all(|(g, m)| m.len() == 2 && g.name.as_deref().unwrap().starts_with("fourth")));
}

crate::both_backends!(restart_forgets_jobs_keeps_data_and_shutdown_discards_a_running_job);
async fn restart_forgets_jobs_keeps_data_and_shutdown_discards_a_running_job() {
    let (host, url) = ScriptedHost::start(Script {
        contacts: (0..60).map(|i| contact(i, "kept")).collect(),
        groups: (0..3).map(|i| group(i, 2, "kept")).collect(),
        batch: 10,
        ..Default::default()
    })
    .await;
    let env = env(&[("gw-1", &url)], &[]).await;
    env.start("sess-1").await.unwrap();
    assert_eq!(env.finished("sess-1").await.status(), BackfillStatus::Succeeded);
    let before = env.contacts("sess-1").await;

    // A job in flight when SIGTERM arrives: clean exit, no half-replaced data.
    host.set(|s| {
        s.contacts = (0..60).map(|i| contact(i + 1000, "half")).collect();
        s.gated = true;
    });
    let interrupted = env.start("sess-1").await.unwrap();
    eventually("job to have stored a batch", Duration::from_secs(10), || async {
        let job = env.get("sess-1").await.ok()?;
        (job.contacts > 0).then_some(())
    })
    .await;
    let Env { _jwks: jwks, gw: mut old, token, .. } = env;
    let status = old.stop().await;
    assert_eq!(status.code(), Some(0));

    let gw = Gateway::start_with_db(&old.db, &jwks.url(), &["--host", &format!("gw-1={url}")]).await;
    let env2 = Env { client: gw.client().await, gw, token, _jwks: jwks };
    match backend() {
        // The seed's semantics: job state lives in memory.
        Backend::Sqlite => {
            let err = env2.get("sess-1").await.unwrap_err();
            assert_eq!(err.code(), Code::NotFound, "jobs live in memory");
        }
        // Cluster mode: job records outlive a replica; the stopped one ended the job.
        Backend::Postgres => {
            let job = env2.get("sess-1").await.unwrap();
            assert_eq!((job.id.as_str(), job.status()), (interrupted.id.as_str(), BackfillStatus::Failed));
            assert_eq!(job.error.as_deref(), Some("interrupted"));
        }
    }
    assert_eq!(env2.contacts("sess-1").await, before, "data survives the restart unchanged");
}
