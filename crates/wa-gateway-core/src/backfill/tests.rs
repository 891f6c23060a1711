//! The runner over the fake store and fake hosts: how a job ends, and that
//! stopping one never abandons a store write in flight.

use std::sync::Arc;
use std::sync::atomic::Ordering::SeqCst;
use std::time::Duration;

use super::runner::{RunError, supervised};
use super::*;
use crate::backfill::board::{Admission, Counters, JobBoard};
use crate::backfill::job::JobStatus;
use crate::backfill::memory::MemoryBoard;
use crate::hosts::fake::FakeHosts;
use crate::sessions::model::{Session, SessionStatus};
use crate::store::fake::{FakeDatabase, WriteGate};

#[tokio::test]
async fn a_panicking_job_ends_failed_and_frees_its_session() {
    let board = MemoryBoard::new(crate::store::fake::FakeDatabase::store());
    let session = SessionId::parse("s").unwrap();
    let queued = |id: &str| Job::queued(id.into(), "o".into(), "s".into());
    assert!(matches!(board.submit(queued("j1")).await.unwrap(), Admission::Queued(_)));
    let handle = board.claim().await.unwrap().unwrap();
    let task = tokio::spawn(async move {
        let result: Result<(), RunError> = supervised(async { panic!("a bug in a job") }).await;
        let error = result.unwrap_err();
        handle.fail(Counters::default(), &error.to_string()).await.unwrap()
    });
    let ended = task.await.expect("the panic stays inside the job");
    assert_eq!(ended.status, JobStatus::Failed);
    assert_eq!(ended.error.as_deref(), Some("internal error: the backfill task panicked"));
    assert!(ended.finished_at.is_some());
    assert_eq!(board.current(&session).await.unwrap().unwrap(), ended);
    assert!(matches!(board.submit(queued("j2")).await.unwrap(), Admission::Queued(_)), "the session is free");
}

/// Backfills of one session `s` on gateway `gw`, whose contacts writes wait at `gate`.
async fn gated_backfills(gate: &Arc<WriteGate>) -> (Backfills, SessionId) {
    let store = Store::new(Arc::new(FakeDatabase::default().gated(gate.clone())));
    store.upsert_sessions(&[Session::for_tests("s", "o", "gw", SessionStatus::Working, 1)]).await.unwrap();
    let hosts: Arc<dyn SessionHosts> = Arc::new(FakeHosts::new(&["gw"]));
    let board: Arc<dyn JobBoard> = Arc::new(MemoryBoard::new(store.clone()));
    let config = BackfillConfig {
        concurrency: 1,
        stall_timeout: Duration::from_secs(30),
        deadline: Duration::from_secs(600),
        retry: RetryPolicy::default(),
        lease: Duration::from_secs(20),
    };
    let backfills = Backfills::new(store, hosts, board, Arc::new(NoHandoff), config);
    (backfills, SessionId::parse("s").unwrap())
}

/// With time paused, a sleep ends only once every task waits: by then the
/// job has seen whatever it was told.
async fn settle() {
    tokio::time::sleep(Duration::from_secs(1)).await;
}

#[tokio::test(start_paused = true)]
async fn a_cancelled_job_lets_its_write_in_flight_end_and_never_abandons_one() {
    let gate = Arc::new(WriteGate::default());
    let (backfills, session) = gated_backfills(&gate).await;
    let admin = SuperAdmin::for_tests();
    backfills.start(&admin, &session).await.unwrap();
    gate.began.notified().await;

    let cancelling = {
        let (backfills, session) = (backfills.clone(), session.clone());
        tokio::spawn(async move { backfills.cancel(&SuperAdmin::for_tests(), &session).await })
    };
    settle().await;
    assert_eq!(gate.abandoned.load(SeqCst), 0, "the write in flight was dropped mid-way by the cancel");
    assert_eq!(backfills.get(&admin, &session).await.unwrap().status, JobStatus::Running, "it waits for the write");

    gate.release(usize::MAX >> 4);
    let stopped = cancelling.await.unwrap().unwrap();
    assert_eq!((stopped.status, stopped.error.as_deref()), (JobStatus::Failed, Some(crate::backfill::CANCELLED)));
    assert_eq!(gate.abandoned.load(SeqCst), 0);
    assert_eq!(gate.ended.load(SeqCst), gate.begun.load(SeqCst), "every write begun ran to its end");
}

#[tokio::test(start_paused = true)]
async fn shutdown_waits_for_the_write_in_flight_too() {
    let gate = Arc::new(WriteGate::default());
    let (backfills, session) = gated_backfills(&gate).await;
    let admin = SuperAdmin::for_tests();
    backfills.start(&admin, &session).await.unwrap();
    gate.began.notified().await;

    let stopping = {
        let backfills = backfills.clone();
        tokio::spawn(async move { backfills.shutdown(Duration::from_secs(3600)).await })
    };
    settle().await;
    assert_eq!(gate.abandoned.load(SeqCst), 0, "shutdown dropped the write in flight");
    gate.release(usize::MAX >> 4);
    stopping.await.unwrap();
    let ended = backfills.get(&admin, &session).await.unwrap();
    assert_eq!((ended.status, ended.error.as_deref()), (JobStatus::Failed, Some(crate::backfill::INTERRUPTED)));
    assert_eq!(gate.abandoned.load(SeqCst), 0);
}
