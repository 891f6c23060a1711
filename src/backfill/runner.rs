//! One backfill job from queue to terminal state.
//!
//! Contacts stream first, then groups. Each host batch is written in its own
//! transaction under the job's generation, which readers do not see. Only
//! after both streams end cleanly is the generation published, in one
//! transaction that nothing interrupts once begun. Any failure (host error,
//! deadline, cancel, shutdown, even a panic) discards the generation, so the
//! previously published data stays exactly as it was.

use std::future::Future;
use std::panic::AssertUnwindSafe;
use std::sync::Arc;
use std::time::Duration;

use futures_util::FutureExt;
use tokio::sync::{Semaphore, watch};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use super::dedupe::{self, MAX_CONTACTS_PER_JOB, MAX_GROUPS_PER_JOB, Seen};
use super::job::{Job, JobStatus};
use crate::directory::{Contact, Group};
use crate::hosts::{HostClient, HostError};
use crate::sessions::SessionId;
use crate::store::{Staging, Store, StoreError};
use crate::time::now_millis;

/// How a stream is retried after a transient host failure.
#[derive(Debug, Clone, Copy)]
pub struct RetryPolicy {
    /// Tries per stream, the first included.
    pub attempts: u32,
    pub first_backoff: Duration,
    pub max_backoff: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        Self { attempts: 4, first_backoff: Duration::from_millis(250), max_backoff: Duration::from_secs(4) }
    }
}

/// How long a job's writes keep retrying a busy store (an import or another
/// writer holding the lock) before the job fails.
const STORE_PATIENCE: Duration = Duration::from_secs(60);

#[derive(Debug, thiserror::Error)]
pub enum RunError {
    #[error("{error}{}", if *.attempts > 1 { format!(" (after {} attempts)", .attempts) } else { String::new() })]
    Host { error: HostError, attempts: u32 },
    #[error("{}", if .0.is_busy() { "the database stayed busy; start the backfill again" } else { "storing pulled data failed" })]
    Store(#[from] StoreError),
    #[error("cancelled by a super_admin")]
    Cancelled,
    #[error("timed out after {} s (--backfill-timeout-secs)", .0.as_secs())]
    TimedOut(Duration),
    #[error("interrupted: the gateway is shutting down")]
    ShuttingDown,
    #[error("internal error: the backfill task panicked")]
    Panicked,
}

impl From<HostError> for RunError {
    fn from(error: HostError) -> Self {
        Self::Host { error, attempts: 1 }
    }
}

pub(super) struct Run {
    pub store: Store,
    pub host: HostClient,
    pub session: SessionId,
    pub generation: String,
    pub progress: watch::Sender<Job>,
    pub stop: CancellationToken,
    pub permits: Arc<Semaphore>,
    pub shutdown: CancellationToken,
    pub stall_timeout: Duration,
    pub deadline: Duration,
    pub retry: RetryPolicy,
}

/// Runs `work`, turning a panic into [`RunError::Panicked`].
pub async fn supervised(work: impl Future<Output = Result<(), RunError>>) -> Result<(), RunError> {
    AssertUnwindSafe(work).catch_unwind().await.unwrap_or(Err(RunError::Panicked))
}

/// Moves the job to its terminal state; the registry slot frees with it.
pub fn finish(progress: &watch::Sender<Job>, result: &Result<(), RunError>) {
    progress.send_modify(|job| {
        job.finished_at = Some(now_millis());
        match result {
            Ok(()) => job.status = JobStatus::Succeeded,
            Err(error) => {
                job.status = JobStatus::Failed;
                job.error = Some(error.to_string());
            }
        }
    });
    let job = progress.borrow();
    metrics::counter!("wa_gateway_backfill_jobs_total", "status" => job.status.as_str()).increment(1);
    tracing::info!(
        session = %job.session_id, job = %job.id, status = job.status.as_str(),
        contacts = job.contacts, groups = job.groups, group_members = job.group_members,
        error = job.error.as_deref().unwrap_or(""), "backfill finished"
    );
}

impl Run {
    pub async fn execute(self) {
        let result = supervised(self.run()).await;
        if let Err(RunError::Store(error)) = &result {
            tracing::error!(%error, job = %self.generation, "backfill storage failure");
        }
        if result.is_err() {
            // A panic may have skipped the discard in `run`; discarding twice is harmless.
            self.discard().await;
        }
        finish(&self.progress, &result);
    }

    async fn run(&self) -> Result<(), RunError> {
        let _permit = tokio::select! {
            permit = self.permits.clone().acquire_owned() => permit.map_err(|_| RunError::ShuttingDown)?,
            () = self.stop.cancelled() => return Err(RunError::Cancelled),
            () = self.shutdown.cancelled() => return Err(RunError::ShuttingDown),
        };
        self.progress.send_modify(|job| job.status = JobStatus::Running);
        tracing::info!(session = %self.session, job = %self.generation, "backfill running");
        let deadline = Instant::now() + self.deadline;
        tokio::select! {
            pulled = self.pull() => pulled?,
            () = self.stop.cancelled() => return Err(RunError::Cancelled),
            () = self.shutdown.cancelled() => return Err(RunError::ShuttingDown),
            () = tokio::time::sleep_until(deadline) => return Err(RunError::TimedOut(self.deadline)),
        }
        // Publishing is one transaction; it is never abandoned half-way, so
        // its outcome is known when the job reports one.
        self.store_retrying(|| self.store.publish_generation(&self.session, &self.generation)).await?;
        Ok(())
    }

    async fn discard(&self) {
        if let Err(error) = self.store_retrying(|| self.store.discard_generation(&self.session, &self.generation)).await
        {
            // The rows stay invisible; the start-up sweep removes them.
            tracing::warn!(%error, job = %self.generation, "could not discard a failed generation");
        }
    }

    fn staging(&self) -> Staging<'_> {
        Staging { session: &self.session, generation: &self.generation }
    }

    async fn pull(&self) -> Result<(), RunError> {
        let mut seen = Seen::new(MAX_CONTACTS_PER_JOB);
        let mut attempt = 1;
        loop {
            let mut received = false;
            match self.pull_contacts(&mut seen, &mut received).await {
                Err(RunError::Host { error, .. }) => attempt = self.retry_or_fail(error, received, attempt).await?,
                other => break other?,
            }
        }
        let mut seen = Seen::new(MAX_GROUPS_PER_JOB);
        let mut attempt = 1;
        loop {
            let mut received = false;
            match self.pull_groups(&mut seen, &mut received).await {
                Err(RunError::Host { error, .. }) => attempt = self.retry_or_fail(error, received, attempt).await?,
                other => break other?,
            }
        }
        Ok(())
    }

    /// Waits out the backoff of a transient failure and returns the next
    /// attempt number, or fails with the error and the attempts made. A
    /// retried stream re-sends items already staged; they replace themselves.
    async fn retry_or_fail(&self, error: HostError, received: bool, attempt: u32) -> Result<u32, RunError> {
        if !error.is_transient(received) || attempt >= self.retry.attempts {
            return Err(RunError::Host { error, attempts: attempt });
        }
        let backoff = self.retry.first_backoff.saturating_mul(1 << (attempt - 1).min(16)).min(self.retry.max_backoff);
        tracing::warn!(job = %self.generation, %error, attempt, ?backoff, "session host stream failed; retrying");
        tokio::time::sleep(backoff).await;
        Ok(attempt + 1)
    }

    async fn pull_contacts(&self, seen: &mut Seen, received: &mut bool) -> Result<(), RunError> {
        let mut batches = self.host.contacts(&self.session, self.stall_timeout).await?;
        while let Some(batch) = batches.next().await? {
            *received = true;
            self.store_contacts(dedupe::contacts(batch), seen).await?;
        }
        Ok(())
    }

    async fn pull_groups(&self, seen: &mut Seen, received: &mut bool) -> Result<(), RunError> {
        let mut batches = self.host.groups(&self.session, self.stall_timeout).await?;
        while let Some(batch) = batches.next().await? {
            *received = true;
            self.store_groups(dedupe::groups(batch), seen).await?;
        }
        Ok(())
    }

    /// One host batch, one transaction: memory is bounded by the host's
    /// batch size (and the message caps), and progress moves per batch.
    async fn store_contacts(&self, batch: Vec<Contact>, seen: &mut Seen) -> Result<(), RunError> {
        if batch.is_empty() {
            return Ok(());
        }
        let maybe = seen.record(batch.iter().map(|c| c.jid.as_str())).map_err(|limit| too_many("contacts", limit))?;
        let replaced = self.store_retrying(|| self.store.stage_contacts(self.staging(), &batch, &maybe)).await?;
        let added = batch.len() as u64 - replaced;
        self.progress.send_modify(|job| job.contacts += added);
        metrics::counter!("wa_gateway_backfill_rows_total", "kind" => "contacts").increment(added);
        Ok(())
    }

    async fn store_groups(&self, batch: Vec<Group>, seen: &mut Seen) -> Result<(), RunError> {
        if batch.is_empty() {
            return Ok(());
        }
        let maybe =
            seen.record(batch.iter().map(|g| g.info.jid.as_str())).map_err(|limit| too_many("groups", limit))?;
        let replaced = self.store_retrying(|| self.store.stage_groups(self.staging(), &batch, &maybe)).await?;
        let groups = batch.len() as u64 - replaced.groups;
        let members = batch.iter().map(|g| g.participants.len() as u64).sum::<u64>();
        // A re-sent group with fewer members lowers the member count: the
        // counters follow the rows actually stored.
        self.progress.send_modify(|job| {
            job.groups += groups;
            job.group_members = (job.group_members + members).saturating_sub(replaced.members);
        });
        metrics::counter!("wa_gateway_backfill_rows_total", "kind" => "groups").increment(groups);
        metrics::counter!("wa_gateway_backfill_rows_total", "kind" => "group_members").increment(members);
        Ok(())
    }

    /// Retries a store operation while the store is busy (another writer
    /// holds the lock), for at most [`STORE_PATIENCE`].
    async fn store_retrying<T, F, Fut>(&self, mut op: F) -> Result<T, StoreError>
    where
        F: FnMut() -> Fut,
        Fut: Future<Output = Result<T, StoreError>>,
    {
        let give_up = Instant::now() + STORE_PATIENCE;
        let mut wait = Duration::from_millis(50);
        loop {
            match op().await {
                Err(error) if error.is_busy() && Instant::now() + wait < give_up => {
                    tracing::debug!(%error, job = %self.generation, "store busy; retrying");
                    tokio::time::sleep(wait).await;
                    wait = (wait * 2).min(Duration::from_secs(2));
                }
                other => return other,
            }
        }
    }
}

fn too_many(kind: &str, limit: usize) -> RunError {
    HostError::InvalidData(format!("more than {limit} distinct {kind} in one session")).into()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::backfill::registry::Registry;

    #[tokio::test]
    async fn a_panicking_job_ends_failed_and_frees_its_slot() {
        let registry = Registry::default();
        let session = SessionId::parse("s").unwrap();
        let job = Job {
            id: "j1".into(),
            organization_id: "o".into(),
            session_id: "s".into(),
            status: JobStatus::Running,
            started_at: 0,
            finished_at: None,
            contacts: 0,
            groups: 0,
            group_members: 0,
            error: None,
        };
        let begun = registry.try_begin(&session, job.clone()).unwrap();
        let task = tokio::spawn(async move {
            let result = supervised(async { panic!("a bug in a job") }).await;
            finish(&begun.progress, &result);
        });
        task.await.expect("the panic stays inside the job");
        let ended = registry.current(&session).unwrap();
        assert_eq!(ended.status, JobStatus::Failed);
        assert_eq!(ended.error.as_deref(), Some("internal error: the backfill task panicked"));
        assert!(ended.finished_at.is_some());
        assert!(registry.try_begin(&session, Job { id: "j2".into(), ..job }).is_ok(), "the session is free again");
    }
}
