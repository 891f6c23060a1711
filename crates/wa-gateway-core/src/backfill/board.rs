//! Where jobs are admitted, claimed and followed: the one interface behind
//! which a single process (jobs in memory, on SQLite) and a cluster (jobs in
//! PostgreSQL, shared by every replica) differ. The domain never learns
//! which one it talks to.
//!
//! A job is submitted (queued), claimed by a replica with a free slot
//! (running), reports progress, and ends published (succeeded) or failed.
//! Admission and claiming are each decided in one atomic step by the board.

use async_trait::async_trait;
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

use super::job::Job;
use crate::sessions::model::SessionId;
use crate::store::error::StoreError;

/// Rows stored so far by a running job.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Counters {
    pub contacts: u64,
    pub groups: u64,
    pub group_members: u64,
}

impl Counters {
    pub fn apply(self, job: &mut Job) {
        job.contacts = self.contacts;
        job.groups = self.groups;
        job.group_members = self.group_members;
    }
}

/// The answer to a submission.
#[derive(Debug)]
pub enum Admission {
    /// Recorded as queued.
    Queued(Job),
    /// The session's job that is still queued or running.
    Active(Job),
    /// The board takes no more jobs (shutdown has begun).
    Closed,
}

/// Why a running job was told to stop.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StopCause {
    /// An operator cancelled it.
    Cancelled,
    /// This replica no longer holds the job (its lease lapsed); another
    /// replica has already ended it.
    LeaseLost,
}

#[derive(Debug, thiserror::Error)]
pub enum BoardError {
    #[error("this replica no longer holds the job")]
    LeaseLost,
    #[error(transparent)]
    Store(#[from] StoreError),
}

#[async_trait]
pub trait JobBoard: Send + Sync + 'static {
    /// Admits `job` (queued) unless the session has a queued or running job.
    async fn submit(&self, job: Job) -> Result<Admission, StoreError>;
    /// The session's queued or running job, else its latest finished one.
    async fn current(&self, session: &SessionId) -> Result<Option<Job>, StoreError>;
    /// One job of the session, by id, if the board still knows it.
    async fn job(&self, session: &SessionId, id: &str) -> Result<Option<Job>, StoreError>;
    /// The session's current job now and after every change.
    async fn subscribe(&self, session: &SessionId) -> Result<Option<watch::Receiver<Job>>, StoreError>;
    /// Asks the session's queued or running job to stop: a queued job ends
    /// at once (failed, cancelled); a running job's runner is told. Returns
    /// the job as it is now, or `None` when nothing is queued or running.
    async fn request_stop(&self, session: &SessionId) -> Result<Option<Job>, StoreError>;
    /// Forgets the session's finished jobs: its session was removed, so its
    /// backfill status answers 404 from now on. A queued or running job
    /// stays until it ends.
    async fn forget_finished(&self, session: &SessionId) -> Result<(), StoreError>;
    /// Resolves when a queued job may be waiting to be claimed.
    async fn work_available(&self);
    /// Claims the oldest queued job for this replica; it is running from now.
    async fn claim(&self) -> Result<Option<Box<dyn RunningJob>>, StoreError>;
    /// Refuses every later submission and claim.
    fn close(&self);
}

/// A job this replica runs.
#[async_trait]
pub trait RunningJob: Send + Sync {
    /// The job as claimed.
    fn job(&self) -> &Job;
    /// Cancelled when the job must stop for a reason other than shutdown.
    fn stop_token(&self) -> CancellationToken;
    fn stop_cause(&self) -> StopCause;
    /// Records progress (and proves the replica still holds the job).
    async fn report(&self, counters: Counters) -> Result<(), BoardError>;
    /// Makes the job's generation the session's visible data and marks the
    /// job succeeded, atomically where the backend allows; never when the
    /// replica no longer holds the job.
    async fn publish(&self, counters: Counters) -> Result<Job, BoardError>;
    /// Marks the job failed with `error` (its staged rows already discarded).
    /// A job another replica already ended is left as it is.
    async fn fail(&self, counters: Counters, error: &str) -> Result<Job, StoreError>;
}
