//! One backfill job from queue to terminal state.
//!
//! Contacts stream first, then groups. Each host batch is written in its own
//! transaction, under the job's generation, which readers do not see.
//! Only after both streams end cleanly is the generation published (one
//! transaction). Any failure, including shutdown, discards the generation, so
//! the previously published data stays exactly as it was.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{Semaphore, watch};
use tokio_util::sync::CancellationToken;

use super::job::{Job, JobStatus};
use super::{Contact, Group};
use crate::hosts::{HostClient, HostError};
use crate::sessions::SessionId;
use crate::store::Store;
use crate::time::now_millis;

#[derive(Debug, thiserror::Error)]
enum RunError {
    #[error("{0}")]
    Host(#[from] HostError),
    #[error("storing pulled data failed")]
    Store(#[from] crate::store::StoreError),
    #[error("gateway shutting down")]
    Cancelled,
}

pub(super) struct Run {
    pub store: Store,
    pub host: HostClient,
    pub session: SessionId,
    pub generation: String,
    pub progress: watch::Sender<Job>,
    pub permits: Arc<Semaphore>,
    pub shutdown: CancellationToken,
    pub stall_timeout: Duration,
}

impl Run {
    pub async fn execute(self) {
        let permit = tokio::select! {
            permit = self.permits.clone().acquire_owned() => permit.ok(),
            () = self.shutdown.cancelled() => None,
        };
        let result = match permit {
            Some(_permit) => {
                self.progress.send_modify(|job| job.status = JobStatus::Running);
                tracing::info!(session = %self.session, job = %self.generation, "backfill running");
                let result = self.pull().await;
                if result.is_err() {
                    if let Err(error) = self.store.discard_generation(&self.session, &self.generation).await {
                        // The rows stay invisible; the start-up sweep removes them.
                        tracing::warn!(%error, job = %self.generation, "could not discard a failed generation");
                    }
                }
                result
            }
            None => Err(RunError::Cancelled),
        };
        self.finish(result);
    }

    fn finish(&self, result: Result<(), RunError>) {
        if let Err(RunError::Store(error)) = &result {
            tracing::error!(%error, job = %self.generation, "backfill storage failure");
        }
        self.progress.send_modify(|job| {
            job.finished_at = Some(now_millis());
            match &result {
                Ok(()) => job.status = JobStatus::Succeeded,
                Err(error) => {
                    job.status = JobStatus::Failed;
                    job.error = Some(error.to_string());
                }
            }
        });
        let job = self.progress.borrow();
        metrics::counter!("wa_gateway_backfill_jobs_total", "status" => job.status.as_str()).increment(1);
        tracing::info!(
            session = %self.session, job = %job.id, status = job.status.as_str(),
            contacts = job.contacts, groups = job.groups, group_members = job.group_members,
            error = job.error.as_deref().unwrap_or(""), "backfill finished"
        );
    }

    async fn pull(&self) -> Result<(), RunError> {
        let mut contacts = self.cancellable(self.host.contacts(&self.session, self.stall_timeout)).await??;
        while let Some(batch) = self.cancellable(contacts.next()).await?? {
            self.store_contacts(&batch).await?;
        }
        let mut groups = self.cancellable(self.host.groups(&self.session, self.stall_timeout)).await??;
        while let Some(batch) = self.cancellable(groups.next()).await?? {
            self.store_groups(&batch).await?;
        }
        if self.shutdown.is_cancelled() {
            return Err(RunError::Cancelled);
        }
        self.store.publish_generation(&self.session, &self.generation).await?;
        Ok(())
    }

    async fn cancellable<T>(&self, work: impl std::future::Future<Output = T>) -> Result<T, RunError> {
        tokio::select! {
            out = work => Ok(out),
            () = self.shutdown.cancelled() => Err(RunError::Cancelled),
        }
    }

    /// One host batch, one transaction: memory is bounded by the host's
    /// batch size (and the 16 MiB message cap), and progress moves per batch.
    async fn store_contacts(&self, batch: &[Contact]) -> Result<(), RunError> {
        if batch.is_empty() {
            return Ok(());
        }
        self.store.stage_contacts(&self.session, &self.generation, batch).await?;
        let stored = batch.len() as u64;
        self.progress.send_modify(|job| job.contacts += stored);
        metrics::counter!("wa_gateway_backfill_rows_total", "kind" => "contacts").increment(stored);
        Ok(())
    }

    async fn store_groups(&self, batch: &[Group]) -> Result<(), RunError> {
        if batch.is_empty() {
            return Ok(());
        }
        self.store.stage_groups(&self.session, &self.generation, batch).await?;
        let groups = batch.len() as u64;
        let members = batch.iter().map(|g| g.participants.len() as u64).sum::<u64>();
        self.progress.send_modify(|job| {
            job.groups += groups;
            job.group_members += members;
        });
        metrics::counter!("wa_gateway_backfill_rows_total", "kind" => "groups").increment(groups);
        metrics::counter!("wa_gateway_backfill_rows_total", "kind" => "group_members").increment(members);
        Ok(())
    }
}
