//! The in-memory job registry: one slot per session holding its latest job
//! (memory is bounded by the number of sessions). Whether a new job may start
//! is decided under one lock, in one step; so is closing the registry at
//! shutdown, so no job can start after it.

use std::collections::HashMap;
use std::sync::Mutex;

use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

use super::job::Job;
use crate::sessions::SessionId;

#[derive(Clone)]
struct Slot {
    progress: watch::Sender<Job>,
    /// Cancelled when an operator asks the job to stop.
    stop: CancellationToken,
}

#[derive(Default)]
struct Slots {
    closed: bool,
    by_session: HashMap<SessionId, Slot>,
}

#[derive(Default)]
pub struct Registry {
    slots: Mutex<Slots>,
}

/// What a newly begun job's runner holds.
pub struct Begun {
    pub progress: watch::Sender<Job>,
    pub stop: CancellationToken,
}

#[derive(Debug)]
pub enum Refused {
    /// The session's job that is still queued or running.
    Active(Job),
    /// Shutdown has begun.
    Closed,
}

impl Registry {
    fn lock(&self) -> std::sync::MutexGuard<'_, Slots> {
        self.slots.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Installs `job` as the session's current job unless one is queued or
    /// running, or the registry is closed.
    pub fn try_begin(&self, session: &SessionId, job: Job) -> Result<Begun, Refused> {
        let mut slots = self.lock();
        if slots.closed {
            return Err(Refused::Closed);
        }
        if let Some(current) = slots.by_session.get(session) {
            let current = current.progress.borrow();
            if current.status.is_active() {
                return Err(Refused::Active(current.clone()));
            }
        }
        let (progress, _) = watch::channel(job);
        let stop = CancellationToken::new();
        slots.by_session.insert(session.clone(), Slot { progress: progress.clone(), stop: stop.clone() });
        Ok(Begun { progress, stop })
    }

    pub fn subscribe(&self, session: &SessionId) -> Option<watch::Receiver<Job>> {
        self.lock().by_session.get(session).map(|slot| slot.progress.subscribe())
    }

    pub fn current(&self, session: &SessionId) -> Option<Job> {
        self.subscribe(session).map(|rx| rx.borrow().clone())
    }

    /// Asks the session's queued or running job to stop; `None` when there
    /// is none. The receiver reports the job until it has stopped.
    pub fn request_stop(&self, session: &SessionId) -> Option<watch::Receiver<Job>> {
        let slots = self.lock();
        let slot = slots.by_session.get(session)?;
        if !slot.progress.borrow().status.is_active() {
            return None;
        }
        slot.stop.cancel();
        Some(slot.progress.subscribe())
    }

    /// Refuses every later [`Registry::try_begin`].
    pub fn close(&self) {
        self.lock().closed = true;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::backfill::JobStatus;

    fn job(id: &str) -> Job {
        Job {
            id: id.into(),
            organization_id: "o".into(),
            session_id: "s".into(),
            status: JobStatus::Queued,
            started_at: 0,
            finished_at: None,
            contacts: 0,
            groups: 0,
            group_members: 0,
            error: None,
        }
    }

    #[test]
    fn one_active_job_per_session_and_none_after_close() {
        let registry = Registry::default();
        let session = SessionId::parse("s").unwrap();
        let begun = registry.try_begin(&session, job("a")).unwrap();
        assert!(matches!(registry.try_begin(&session, job("b")), Err(Refused::Active(j)) if j.id == "a"));
        assert!(registry.request_stop(&session).is_some());
        assert!(begun.stop.is_cancelled());
        begun.progress.send_modify(|j| j.status = JobStatus::Failed);
        assert!(registry.request_stop(&session).is_none(), "nothing active to stop");
        assert!(registry.try_begin(&session, job("c")).is_ok());
        registry.close();
        let other = SessionId::parse("t").unwrap();
        assert!(matches!(registry.try_begin(&other, job("d")), Err(Refused::Closed)));
    }
}
