//! Backfills: re-pull one session's cached contacts and joined groups from
//! the session host of its gateway, store them, and report progress.
//!
//! Jobs are kept by a [`JobBoard`]: in memory on a single process (a restart
//! forgets them, as documented), or in PostgreSQL shared by every replica. At
//! most one job per session is queued or running; each replica runs at most
//! `concurrency` at once, claiming queued jobs as slots free up. A job ends
//! by itself, by its deadline, by an operator's cancel, or by shutdown; only
//! success changes stored data.

pub mod board;
mod dedupe;
mod follow;
pub mod job;
pub mod listing;
mod memory;
mod overlap;
mod runner;
mod spans;
mod stopping;
#[cfg(test)]
mod tests;
mod writers;

pub use board::{Admission, BoardError, Counters, JobBoard, RunningJob, StopCause};
pub use job::{CANCELLED, INTERRUPTED, Job, JobStatus};
pub use memory::MemoryBoard;
pub use runner::RetryPolicy;
pub use spans::{NoHandoff, TraceHandoff};

use std::panic::AssertUnwindSafe;
use std::sync::Arc;
use std::time::Duration;

use futures_util::FutureExt;
use futures_util::stream::{self, BoxStream, StreamExt};
use tokio_util::task::TaskTracker;

use crate::auth::SuperAdmin;
use crate::error::{ErrorCode, ServiceError};
use crate::hosts::SessionHosts;
use crate::paging::PagingError;
use crate::sessions::model::SessionId;
use crate::store::error::StoreError;
use crate::store::port::Store;
use tracing::Instrument;

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
    /// Cluster mode: how long a replica's hold on a running job lasts
    /// without renewal before another replica fails the job (`interrupted`).
    pub lease: Duration,
}

/// How often an idle worker looks for queued jobs even without a signal
/// (a cluster's notifications can be missed while a connection reconnects).
const IDLE_POLL: Duration = Duration::from_secs(5);

/// The backfill service; cheap to clone.
#[derive(Clone)]
pub struct Backfills {
    inner: Arc<Inner>,
}

struct Inner {
    store: Store,
    hosts: Arc<dyn SessionHosts>,
    board: Arc<dyn JobBoard>,
    config: BackfillConfig,
    shutdown: tokio_util::sync::CancellationToken,
    tasks: TaskTracker,
    /// The trace of the call that queued each job, for the job's own span.
    traces: Arc<dyn TraceHandoff>,
    running: Running,
}

/// Jobs this replica runs now: the gauges an alert on overlong jobs reads
/// (`wa_gateway_backfill_running`, and the start time of the oldest one in
/// `wa_gateway_backfill_oldest_running_start_time_seconds`, 0 when none).
#[derive(Default)]
struct Running(std::sync::Mutex<std::collections::HashMap<String, f64>>);

impl Running {
    fn begin(&self, job: &str) {
        let started = crate::time::now_millis() as f64 / 1000.0;
        self.change(|jobs| {
            jobs.insert(job.to_owned(), started);
        });
    }

    fn end(&self, job: &str) {
        self.change(|jobs| {
            jobs.remove(job);
        });
    }

    fn change(&self, f: impl FnOnce(&mut std::collections::HashMap<String, f64>)) {
        let mut jobs = self.0.lock().unwrap_or_else(|p| p.into_inner());
        f(&mut jobs);
        let oldest = jobs.values().copied().reduce(f64::min).unwrap_or(0.0);
        metrics::gauge!("wa_gateway_backfill_running").set(jobs.len() as f64);
        metrics::gauge!("wa_gateway_backfill_oldest_running_start_time_seconds").set(oldest);
    }
}

impl Backfills {
    /// Starts `config.concurrency` workers that run the jobs `board` hands out.
    /// `traces` carries each job's trace from the call that queued it to
    /// its run.
    pub fn new(
        store: Store,
        hosts: Arc<dyn SessionHosts>,
        board: Arc<dyn JobBoard>,
        traces: Arc<dyn TraceHandoff>,
        config: BackfillConfig,
    ) -> Self {
        let inner = Arc::new(Inner {
            store,
            hosts,
            board,
            config,
            shutdown: tokio_util::sync::CancellationToken::new(),
            tasks: TaskTracker::new(),
            traces,
            running: Running::default(),
        });
        inner.running.change(|_| {});
        metrics::gauge!("wa_gateway_backfill_timeout_seconds").set(inner.config.deadline.as_secs_f64());
        for _ in 0..inner.config.concurrency.max(1) {
            inner.tasks.spawn(worker(inner.clone()));
        }
        Self { inner }
    }

    fn store(&self) -> &Store {
        &self.inner.store
    }

    /// Queues a job for the session; a worker of some replica runs it.
    pub async fn start(&self, _admin: &SuperAdmin, session_id: &SessionId) -> Result<Job, BackfillError> {
        let inner = &self.inner;
        let session = inner
            .store
            .get_session(session_id)
            .await?
            .ok_or_else(|| BackfillError::SessionNotFound { session: session_id.to_string() })?;
        let gateway =
            session.gateway_id.clone().ok_or_else(|| BackfillError::NoGateway { session: session_id.to_string() })?;
        if inner.hosts.host(&gateway).is_none() {
            return Err(BackfillError::NoHost { session: session_id.to_string(), gateway });
        }
        let job = Job::queued(ulid::Ulid::new().to_string(), session.organization_id, session_id.to_string());
        match inner.board.submit(job).await? {
            Admission::Queued(job) => {
                inner.traces.leave(&job.id);
                metrics::counter!("wa_gateway_backfill_jobs_total", "status" => "queued").increment(1);
                tracing::info!(session = %session_id, job = %job.id, gateway, "backfill queued");
                Ok(job)
            }
            Admission::Active(running) => Err(BackfillError::AlreadyRunning {
                session: session_id.to_string(),
                job: running.id,
                status: running.status.as_str(),
            }),
            Admission::Closed => Err(BackfillError::ShuttingDown),
        }
    }

    /// The queued or running job, else the latest finished one.
    pub async fn get(&self, _admin: &SuperAdmin, session: &SessionId) -> Result<Job, BackfillError> {
        match self.inner.board.current(session).await? {
            Some(job) => Ok(job),
            None => Err(self.missing(session).await),
        }
    }

    /// The session's current job (or job `job_id`) now and after each
    /// change, ending after its terminal state.
    pub async fn watch(
        &self,
        _admin: &SuperAdmin,
        session: &SessionId,
        job_id: Option<&str>,
    ) -> Result<BoxStream<'static, Job>, BackfillError> {
        let board = &self.inner.board;
        let Some(rx) = board.subscribe(session).await? else {
            return Err(self.missing(session).await);
        };
        if let Some(wanted) = job_id.filter(|wanted| *wanted != rx.borrow().id) {
            return match board.job(session, wanted).await? {
                Some(ended) => Ok(stream::iter([ended]).boxed()),
                None => Err(BackfillError::JobNotCurrent { session: session.to_string(), job: wanted.to_owned() }),
            };
        }
        Ok(follow::follow(board.clone(), session.clone(), rx))
    }

    /// Stops the session's queued or running job and returns it once it has
    /// stopped; the stored data stays as it was.
    pub async fn cancel(&self, admin: &SuperAdmin, session: &SessionId) -> Result<Job, BackfillError> {
        let Some(job) = self.inner.board.request_stop(session).await? else {
            return Err(match self.store().get_session(session).await? {
                Some(_) => BackfillError::NotRunning { session: session.to_string() },
                None => BackfillError::SessionNotFound { session: session.to_string() },
            });
        };
        tracing::info!(session = %session, job = %job.id, by = admin.subject(), "backfill cancel requested");
        if !job.status.is_active() {
            return Ok(job);
        }
        let pending = || BackfillError::CancelPending { session: session.to_string(), job: job.id.clone() };
        let mut updates = self.watch(admin, session, Some(&job.id)).await?;
        let stopped = tokio::time::timeout(CANCEL_WAIT, async {
            while let Some(update) = updates.next().await {
                if !update.status.is_active() {
                    return Some(update);
                }
            }
            None
        });
        stopped.await.ok().flatten().ok_or_else(pending)
    }

    /// Stops the queued or running job of a session the directory removed
    /// (it ends `failed`, `session removed`), and forgets the session's jobs
    /// once none is running, so its backfill status answers 404.
    pub async fn session_removed(&self, session: &SessionId) -> Result<(), BackfillError> {
        let board = &self.inner.board;
        let Some(job) = board.request_stop(session).await?.filter(|job| job.status.is_active()) else {
            board.forget_finished(session).await?;
            return Ok(());
        };
        tracing::info!(session = %session, job = %job.id, "backfill stopped: its session was removed");
        let (board, session) = (board.clone(), session.clone());
        let mut updates = board.subscribe(&session).await?;
        self.inner.tasks.spawn(async move {
            if let Some(updates) = updates.as_mut() {
                let _ = tokio::time::timeout(CANCEL_WAIT, updates.wait_for(|job| !job.status.is_active())).await;
            }
            if let Err(error) = board.forget_finished(&session).await {
                tracing::warn!(%error, session = %session, "could not forget the jobs of a removed session");
            }
        });
        Ok(())
    }

    async fn missing(&self, session: &SessionId) -> BackfillError {
        match self.store().get_session(session).await {
            Ok(Some(_)) => BackfillError::NoJob { session: session.to_string() },
            Ok(None) => BackfillError::SessionNotFound { session: session.to_string() },
            Err(e) => e.into(),
        }
    }

    /// Refuses new jobs, stops running ones (they end `interrupted`, their
    /// staged rows discarded, published data untouched) and waits for them,
    /// at most `grace`.
    pub async fn shutdown(&self, grace: Duration) {
        self.inner.board.close();
        self.inner.shutdown.cancel();
        self.inner.tasks.close();
        if tokio::time::timeout(grace, self.inner.tasks.wait()).await.is_err() {
            tracing::warn!("backfill jobs did not stop within {grace:?}");
        }
    }
}

/// One of a replica's job slots: claims a queued job, runs it, repeats.
async fn worker(inner: Arc<Inner>) {
    while !inner.shutdown.is_cancelled() {
        match inner.board.claim().await {
            Ok(Some(handle)) => {
                let Ok(session) = SessionId::parse(&handle.job().session_id) else {
                    tracing::error!(job = %handle.job().id, "claimed a job with an invalid session id");
                    continue;
                };
                let run = runner::Run {
                    store: inner.store.clone(),
                    hosts: inner.hosts.clone(),
                    handle,
                    session,
                    shutdown: inner.shutdown.clone(),
                    config: runner::RunConfig {
                        stall_timeout: inner.config.stall_timeout,
                        deadline: inner.config.deadline,
                        retry: inner.config.retry,
                    },
                    counters: Default::default(),
                    reporting: Default::default(),
                };
                let job = run.handle.job().id.clone();
                let span =
                    tracing::debug_span!("backfill.run", otel.name = "backfill.run", job, session = %run.session);
                inner.traces.resume(&job, &span);
                inner.running.begin(&job);
                if AssertUnwindSafe(run.execute()).catch_unwind().instrument(span).await.is_err() {
                    tracing::error!("a backfill panicked while recording its end");
                }
                inner.running.end(&job);
            }
            Ok(None) => {
                tokio::select! {
                    () = inner.board.work_available() => {}
                    () = tokio::time::sleep(IDLE_POLL) => {}
                    () = inner.shutdown.cancelled() => return,
                }
            }
            Err(error) => {
                tracing::warn!(%error, "could not claim a queued backfill");
                tokio::select! {
                    () = tokio::time::sleep(Duration::from_secs(1)) => {}
                    () = inner.shutdown.cancelled() => return,
                }
            }
        }
    }
}
