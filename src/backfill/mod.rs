//! Backfills: re-pull one session's cached contacts and joined groups from
//! the session host of its gateway, store them, and report progress.
//!
//! Jobs live in memory (a restart forgets them, as documented). At most one
//! job per session is queued or running; at most `concurrency` run at once,
//! the rest wait as `queued`. A job ends by itself, by its deadline, by an
//! operator's cancel, or by shutdown; only success changes stored data.

mod dedupe;
mod job;
mod listing;
mod registry;
mod runner;

pub use job::{Job, JobStatus};
pub use listing::PageArgs;
pub use runner::RetryPolicy;

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{Semaphore, watch};
use tokio_util::task::TaskTracker;

use crate::auth::SuperAdmin;
use crate::error::{ErrorCode, ServiceError};
use crate::hosts::HostRegistry;
use crate::paging::PagingError;
use crate::sessions::SessionId;
use crate::store::{Store, StoreError};
use crate::time::now_millis;

/// How long a cancel waits for its job to stop before answering.
const CANCEL_WAIT: Duration = Duration::from_secs(15);

#[derive(Debug, thiserror::Error)]
pub enum BackfillError {
    #[error("session not found")]
    SessionNotFound { session: String },
    #[error("no backfill job on record for this session since the gateway started")]
    NoJob { session: String },
    #[error("job {job} is no longer this session's current backfill job")]
    JobNotCurrent { session: String, job: String },
    #[error("session has no gateway, so no session host can backfill it")]
    NoGateway { session: String },
    #[error("backfill is not available: no session host is configured for gateway {gateway}")]
    NoHost { session: String, gateway: String },
    #[error("a backfill is already {status} for this session; poll it until it finishes")]
    AlreadyRunning { session: String, job: String, status: &'static str },
    #[error("no backfill is queued or running for this session")]
    NotRunning { session: String },
    #[error("cancellation was requested, but the job has not stopped yet; poll it until it finishes")]
    CancelPending { session: String, job: String },
    #[error("a newer backfill replaced the data this cursor was walking; start again without a cursor")]
    StaleCursor,
    #[error("group not found in the session's stored data")]
    GroupNotFound { session: String, group: String },
    #[error("the gateway is shutting down")]
    ShuttingDown,
    #[error(transparent)]
    Paging(#[from] PagingError),
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl ServiceError for BackfillError {
    fn error_code(&self) -> ErrorCode {
        match self {
            Self::SessionNotFound { .. } | Self::NoJob { .. } | Self::JobNotCurrent { .. } => ErrorCode::NotFound,
            Self::GroupNotFound { .. } => ErrorCode::NotFound,
            Self::NoGateway { .. } | Self::NoHost { .. } => ErrorCode::NotImplemented,
            Self::AlreadyRunning { .. } => ErrorCode::Conflict,
            Self::NotRunning { .. } | Self::StaleCursor => ErrorCode::Aborted,
            Self::CancelPending { .. } => ErrorCode::DeadlineExceeded,
            Self::ShuttingDown => ErrorCode::Unavailable,
            Self::Paging(e) => e.error_code(),
            Self::Store(e) => e.error_code(),
        }
    }

    fn reason(&self) -> &'static str {
        match self {
            Self::SessionNotFound { .. } => "SESSION_NOT_FOUND",
            Self::NoJob { .. } => "BACKFILL_NOT_FOUND",
            Self::JobNotCurrent { .. } => "BACKFILL_JOB_NOT_CURRENT",
            Self::NoGateway { .. } => "SESSION_HAS_NO_GATEWAY",
            Self::NoHost { .. } => "NO_SESSION_HOST",
            Self::AlreadyRunning { .. } => "BACKFILL_RUNNING",
            Self::NotRunning { .. } => "BACKFILL_NOT_RUNNING",
            Self::CancelPending { .. } => "CANCEL_PENDING",
            Self::StaleCursor => "CURSOR_STALE",
            Self::GroupNotFound { .. } => "GROUP_NOT_FOUND",
            Self::ShuttingDown => "SHUTTING_DOWN",
            Self::Paging(e) => e.reason(),
            Self::Store(e) => e.reason(),
        }
    }

    fn details(&self) -> Vec<(&'static str, String)> {
        match self {
            Self::SessionNotFound { session }
            | Self::NoJob { session }
            | Self::NoGateway { session }
            | Self::NotRunning { session } => vec![("sessionId", session.clone())],
            Self::NoHost { session, gateway } => vec![("sessionId", session.clone()), ("gatewayId", gateway.clone())],
            Self::AlreadyRunning { session, job, .. }
            | Self::JobNotCurrent { session, job }
            | Self::CancelPending { session, job } => vec![("sessionId", session.clone()), ("jobId", job.clone())],
            Self::GroupNotFound { session, group } => vec![("sessionId", session.clone()), ("groupJid", group.clone())],
            Self::StaleCursor => vec![("field", "cursor".into())],
            Self::Paging(e) => e.details(),
            Self::Store(e) => e.details(),
            Self::ShuttingDown => Vec::new(),
        }
    }

    fn public_message(&self) -> String {
        match self {
            Self::Store(e) => e.public_message(),
            _ => self.to_string(),
        }
    }
}

#[derive(Debug, Clone)]
pub struct BackfillConfig {
    /// Jobs running at once; more wait as `queued`.
    pub concurrency: usize,
    /// A host stream that sends nothing for this long fails the job.
    pub stall_timeout: Duration,
    /// A job still running this long after it started running fails.
    pub deadline: Duration,
    pub retry: RetryPolicy,
}

/// The backfill service; cheap to clone.
#[derive(Clone)]
pub struct Backfills {
    inner: Arc<Inner>,
}

struct Inner {
    store: Store,
    hosts: HostRegistry,
    registry: registry::Registry,
    permits: Arc<Semaphore>,
    config: BackfillConfig,
    shutdown: tokio_util::sync::CancellationToken,
    tasks: TaskTracker,
}

impl Backfills {
    pub fn new(store: Store, hosts: HostRegistry, config: BackfillConfig) -> Self {
        Self {
            inner: Arc::new(Inner {
                store,
                hosts,
                registry: registry::Registry::default(),
                permits: Arc::new(Semaphore::new(config.concurrency.max(1))),
                config,
                shutdown: tokio_util::sync::CancellationToken::new(),
                tasks: TaskTracker::new(),
            }),
        }
    }

    fn store(&self) -> &Store {
        &self.inner.store
    }

    /// Creates a job and starts it in the background; returns it queued.
    pub async fn start(&self, _admin: &SuperAdmin, session_id: &SessionId) -> Result<Job, BackfillError> {
        let inner = &self.inner;
        let session = inner
            .store
            .get_session(session_id)
            .await?
            .ok_or_else(|| BackfillError::SessionNotFound { session: session_id.to_string() })?;
        let gateway =
            session.gateway_id.clone().ok_or_else(|| BackfillError::NoGateway { session: session_id.to_string() })?;
        let host = inner
            .hosts
            .client(&gateway)
            .ok_or_else(|| BackfillError::NoHost { session: session_id.to_string(), gateway: gateway.clone() })?;

        let job = Job {
            id: ulid::Ulid::new().to_string(),
            organization_id: session.organization_id.clone(),
            session_id: session_id.to_string(),
            status: JobStatus::Queued,
            started_at: now_millis(),
            finished_at: None,
            contacts: 0,
            groups: 0,
            group_members: 0,
            error: None,
        };
        let begun = inner.registry.try_begin(session_id, job.clone()).map_err(|refused| match refused {
            registry::Refused::Active(running) => BackfillError::AlreadyRunning {
                session: session_id.to_string(),
                job: running.id,
                status: running.status.as_str(),
            },
            registry::Refused::Closed => BackfillError::ShuttingDown,
        })?;
        let run = runner::Run {
            store: inner.store.clone(),
            host,
            session: session_id.clone(),
            generation: job.id.clone(),
            progress: begun.progress,
            stop: begun.stop,
            permits: inner.permits.clone(),
            shutdown: inner.shutdown.clone(),
            stall_timeout: inner.config.stall_timeout,
            deadline: inner.config.deadline,
            retry: inner.config.retry,
        };
        inner.tasks.spawn(run.execute());
        metrics::counter!("wa_gateway_backfill_jobs_total", "status" => "queued").increment(1);
        tracing::info!(session = %session_id, job = %job.id, gateway, "backfill queued");
        Ok(job)
    }

    /// The queued or running job, else the latest finished one.
    pub async fn get(&self, _admin: &SuperAdmin, session: &SessionId) -> Result<Job, BackfillError> {
        match self.inner.registry.current(session) {
            Some(job) => Ok(job),
            None => Err(self.missing(session).await),
        }
    }

    /// A receiver of every change of the session's current job, or of job
    /// `job_id` when given (which must still be the current one).
    pub async fn watch(
        &self,
        _admin: &SuperAdmin,
        session: &SessionId,
        job_id: Option<&str>,
    ) -> Result<watch::Receiver<Job>, BackfillError> {
        let Some(rx) = self.inner.registry.subscribe(session) else {
            return Err(self.missing(session).await);
        };
        match job_id {
            Some(wanted) if rx.borrow().id != wanted => {
                Err(BackfillError::JobNotCurrent { session: session.to_string(), job: wanted.to_owned() })
            }
            _ => Ok(rx),
        }
    }

    /// Stops the session's queued or running job and returns it once it has
    /// stopped; the stored data stays as it was.
    pub async fn cancel(&self, admin: &SuperAdmin, session: &SessionId) -> Result<Job, BackfillError> {
        let Some(mut rx) = self.inner.registry.request_stop(session) else {
            return Err(match self.store().get_session(session).await? {
                Some(_) => BackfillError::NotRunning { session: session.to_string() },
                None => BackfillError::SessionNotFound { session: session.to_string() },
            });
        };
        tracing::info!(session = %session, job = %rx.borrow().id, by = admin.subject(), "backfill cancel requested");
        let stopped = tokio::time::timeout(CANCEL_WAIT, rx.wait_for(|job| !job.status.is_active())).await;
        match stopped.map(|waited| waited.map(|job| job.clone())) {
            Ok(Ok(job)) => Ok(job),
            _ => Err(BackfillError::CancelPending { session: session.to_string(), job: rx.borrow().id.clone() }),
        }
    }

    async fn missing(&self, session: &SessionId) -> BackfillError {
        match self.store().get_session(session).await {
            Ok(Some(_)) => BackfillError::NoJob { session: session.to_string() },
            Ok(None) => BackfillError::SessionNotFound { session: session.to_string() },
            Err(e) => e.into(),
        }
    }

    /// Refuses new jobs, stops running ones (their staged rows are discarded,
    /// published data is untouched) and waits for them, at most `grace`.
    pub async fn shutdown(&self, grace: Duration) {
        self.inner.registry.close();
        self.inner.shutdown.cancel();
        self.inner.tasks.close();
        if tokio::time::timeout(grace, self.inner.tasks.wait()).await.is_err() {
            tracing::warn!("backfill jobs did not stop within {grace:?}");
        }
    }
}
