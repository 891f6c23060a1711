//! The in-memory job registry: one slot per session holding its latest job
//! (memory is bounded by the number of sessions). Whether a new job may start
//! is decided under one lock, in one step.

use std::collections::HashMap;
use std::sync::Mutex;

use tokio::sync::watch;

use super::job::Job;
use crate::sessions::SessionId;

#[derive(Default)]
pub struct Registry {
    slots: Mutex<HashMap<SessionId, watch::Sender<Job>>>,
}

impl Registry {
    /// Installs `job` as the session's current job unless one is queued or
    /// running, in which case that job is returned instead.
    pub fn try_begin(&self, session: &SessionId, job: Job) -> Result<watch::Sender<Job>, Job> {
        let mut slots = self.slots.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(current) = slots.get(session) {
            let current = current.borrow();
            if current.status.is_active() {
                return Err(current.clone());
            }
        }
        let (sender, _) = watch::channel(job);
        slots.insert(session.clone(), sender.clone());
        Ok(sender)
    }

    pub fn subscribe(&self, session: &SessionId) -> Option<watch::Receiver<Job>> {
        let slots = self.slots.lock().unwrap_or_else(|p| p.into_inner());
        slots.get(session).map(watch::Sender::subscribe)
    }

    pub fn current(&self, session: &SessionId) -> Option<Job> {
        self.subscribe(session).map(|rx| rx.borrow().clone())
    }
}
