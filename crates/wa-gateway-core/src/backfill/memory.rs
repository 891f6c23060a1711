//! The single-process job board: jobs live in memory (a restart forgets
//! them, as the seed documents). One slot per session holds its latest job,
//! so memory is bounded by the number of sessions; a FIFO holds queued jobs.
//! Admission, claiming, stopping and closing each take the one lock, so no
//! job is admitted twice and none after shutdown has begun.

use std::collections::{HashMap, VecDeque};
use std::sync::Mutex;

use async_trait::async_trait;
use tokio::sync::{Notify, watch};
use tokio_util::sync::CancellationToken;

use super::board::{Admission, BoardError, Counters, JobBoard, RunningJob, StopCause};
use super::job::{CANCELLED, INTERRUPTED, Job, JobStatus};
use crate::sessions::model::SessionId;
use crate::store::error::StoreError;
use crate::store::port::Store;
use crate::time::now_millis;

#[derive(Clone)]
struct Slot {
    progress: watch::Sender<Job>,
    stop: CancellationToken,
}

#[derive(Default)]
struct State {
    closed: bool,
    slots: HashMap<SessionId, Slot>,
    /// Sessions whose slot holds a queued job, oldest first.
    queue: VecDeque<SessionId>,
}

pub struct MemoryBoard {
    store: Store,
    state: Mutex<State>,
    work: Notify,
}

impl MemoryBoard {
    pub fn new(store: Store) -> Self {
        Self { store, state: Mutex::default(), work: Notify::new() }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }
}

#[async_trait]
impl JobBoard for MemoryBoard {
    async fn submit(&self, job: Job) -> Result<Admission, StoreError> {
        let session = SessionId::parse(&job.session_id).map_err(|e| StoreError::Corrupt(e.to_string()))?;
        let mut state = self.lock();
        if state.closed {
            return Ok(Admission::Closed);
        }
        if let Some(slot) = state.slots.get(&session) {
            let current = slot.progress.borrow();
            if current.status.is_active() {
                return Ok(Admission::Active(current.clone()));
            }
        }
        let (progress, _) = watch::channel(job.clone());
        state.slots.insert(session.clone(), Slot { progress, stop: CancellationToken::new() });
        state.queue.push_back(session);
        drop(state);
        self.work.notify_one();
        Ok(Admission::Queued(job))
    }

    async fn current(&self, session: &SessionId) -> Result<Option<Job>, StoreError> {
        Ok(self.lock().slots.get(session).map(|slot| slot.progress.borrow().clone()))
    }

    async fn job(&self, session: &SessionId, id: &str) -> Result<Option<Job>, StoreError> {
        Ok(self.current(session).await?.filter(|job| job.id == id))
    }

    async fn subscribe(&self, session: &SessionId) -> Result<Option<watch::Receiver<Job>>, StoreError> {
        Ok(self.lock().slots.get(session).map(|slot| slot.progress.subscribe()))
    }

    async fn request_stop(&self, session: &SessionId) -> Result<Option<Job>, StoreError> {
        let state = self.lock();
        let Some(slot) = state.slots.get(session) else { return Ok(None) };
        let status = slot.progress.borrow().status;
        match status {
            // Still queued: it never ran, so it ends here; claim skips it.
            JobStatus::Queued => slot.progress.send_modify(|job| job.fail(CANCELLED)),
            JobStatus::Running => slot.stop.cancel(),
            JobStatus::Succeeded | JobStatus::Failed => return Ok(None),
        }
        Ok(Some(slot.progress.borrow().clone()))
    }

    async fn forget_finished(&self, session: &SessionId) -> Result<(), StoreError> {
        let mut state = self.lock();
        if state.slots.get(session).is_some_and(|slot| !slot.progress.borrow().status.is_active()) {
            state.slots.remove(session);
        }
        Ok(())
    }

    async fn work_available(&self) {
        self.work.notified().await;
    }

    async fn claim(&self) -> Result<Option<Box<dyn RunningJob>>, StoreError> {
        let mut state = self.lock();
        if state.closed {
            return Ok(None);
        }
        while let Some(session) = state.queue.pop_front() {
            let Some(slot) = state.slots.get(&session).cloned() else { continue };
            if slot.progress.borrow().status != JobStatus::Queued {
                continue;
            }
            slot.progress.send_modify(|job| job.status = JobStatus::Running);
            let job = slot.progress.borrow().clone();
            return Ok(Some(Box::new(MemoryJob { store: self.store.clone(), job, slot })));
        }
        Ok(None)
    }

    fn close(&self) {
        let mut state = self.lock();
        state.closed = true;
        // Queued jobs die with the process; their watchers see them end.
        for session in std::mem::take(&mut state.queue) {
            if let Some(slot) = state.slots.get(&session) {
                if slot.progress.borrow().status == JobStatus::Queued {
                    slot.progress.send_modify(|job| job.fail(INTERRUPTED));
                }
            }
        }
        drop(state);
        // Wake every idle worker so it sees the board closed.
        self.work.notify_waiters();
    }
}

struct MemoryJob {
    store: Store,
    job: Job,
    slot: Slot,
}

#[async_trait]
impl RunningJob for MemoryJob {
    fn job(&self) -> &Job {
        &self.job
    }

    fn stop_token(&self) -> CancellationToken {
        self.slot.stop.clone()
    }

    fn stop_cause(&self) -> StopCause {
        StopCause::Cancelled
    }

    async fn report(&self, counters: Counters) -> Result<(), BoardError> {
        self.slot.progress.send_modify(|job| counters.apply(job));
        Ok(())
    }

    async fn publish(&self, counters: Counters) -> Result<Job, BoardError> {
        let session = SessionId::parse(&self.job.session_id).map_err(|e| StoreError::Corrupt(e.to_string()))?;
        self.store.publish_generation(&session, &self.job.id).await?;
        self.slot.progress.send_modify(|job| {
            counters.apply(job);
            job.status = JobStatus::Succeeded;
            job.finished_at = Some(now_millis());
        });
        Ok(self.slot.progress.borrow().clone())
    }

    async fn fail(&self, counters: Counters, error: &str) -> Result<Job, StoreError> {
        self.slot.progress.send_modify(|job| {
            counters.apply(job);
            job.fail(error);
        });
        Ok(self.slot.progress.borrow().clone())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn board() -> MemoryBoard {
        MemoryBoard::new(crate::store::fake::FakeDatabase::store())
    }

    fn job(id: &str, session: &str) -> Job {
        Job::queued(id.into(), "o".into(), session.into())
    }

    #[tokio::test]
    async fn one_active_job_per_session_fifo_claims_and_none_after_close() {
        let board = board();
        let s = SessionId::parse("s").unwrap();
        assert!(matches!(board.submit(job("a", "s")).await.unwrap(), Admission::Queued(_)));
        assert!(matches!(board.submit(job("b", "s")).await.unwrap(), Admission::Active(j) if j.id == "a"));
        assert!(matches!(board.submit(job("c", "t")).await.unwrap(), Admission::Queued(_)));

        let running = board.claim().await.unwrap().expect("a is queued first");
        assert_eq!(
            (running.job().id.as_str(), board.current(&s).await.unwrap().unwrap().status),
            ("a", JobStatus::Running)
        );
        // Stopping the queued job ends it at once; claim skips it.
        let t = SessionId::parse("t").unwrap();
        assert_eq!(board.request_stop(&t).await.unwrap().unwrap().error.as_deref(), Some(CANCELLED));
        assert!(board.claim().await.unwrap().is_none());
        // Stopping the running job tells its runner.
        assert!(board.request_stop(&s).await.unwrap().is_some());
        assert!(running.stop_token().is_cancelled());
        running.fail(Counters::default(), CANCELLED).await.unwrap();
        assert!(board.request_stop(&s).await.unwrap().is_none(), "nothing active to stop");
        assert!(matches!(board.submit(job("d", "s")).await.unwrap(), Admission::Queued(_)));

        board.close();
        assert!(matches!(board.submit(job("e", "u")).await.unwrap(), Admission::Closed));
        assert!(board.claim().await.unwrap().is_none(), "no claims after close");
    }
}
