//! Backfills: re-pull one session's cached contacts and joined groups from
//! the session host of its gateway, store them, and report progress.
//!
//! Jobs live in memory (a restart forgets them, as documented). At most one
//! job per session is queued or running; at most `concurrency` run at once,
//! the rest wait as `queued`.

mod data;
mod job;
mod registry;
mod runner;

pub use data::{Contact, Group, MAX_JID_LEN, MAX_PARTICIPANTS, MAX_TEXT_LEN, Participant, check_jid, optional_text};
pub use job::{Job, JobStatus};

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{Semaphore, watch};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::auth::SuperAdmin;
use crate::error::{ErrorCode, ServiceError};
use crate::hosts::HostRegistry;
use crate::paging::{CursorCodec, Page, PageRequest, PagingError};
use crate::sessions::SessionId;
use crate::store::{Store, StoreError};
use crate::time::now_millis;

#[derive(Debug, thiserror::Error)]
pub enum BackfillError {
    #[error("session not found")]
    SessionNotFound { session: String },
    #[error("no backfill job on record for this session since the gateway started")]
    NoJob { session: String },
    #[error("session has no gateway, so no session host can backfill it")]
    NoGateway { session: String },
    #[error("backfill is not available: no session host is configured for gateway {gateway}")]
    NoHost { session: String, gateway: String },
    #[error("a backfill is already {status} for this session; poll it until it finishes")]
    AlreadyRunning { session: String, job: String, status: &'static str },
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
            Self::SessionNotFound { .. } | Self::NoJob { .. } => ErrorCode::NotFound,
            Self::NoGateway { .. } | Self::NoHost { .. } => ErrorCode::NotImplemented,
            Self::AlreadyRunning { .. } => ErrorCode::Conflict,
            Self::ShuttingDown => ErrorCode::Unavailable,
            Self::Paging(e) => e.error_code(),
            Self::Store(e) => e.error_code(),
        }
    }

    fn reason(&self) -> &'static str {
        match self {
            Self::SessionNotFound { .. } => "SESSION_NOT_FOUND",
            Self::NoJob { .. } => "BACKFILL_NOT_FOUND",
            Self::NoGateway { .. } => "SESSION_HAS_NO_GATEWAY",
            Self::NoHost { .. } => "NO_SESSION_HOST",
            Self::AlreadyRunning { .. } => "BACKFILL_RUNNING",
            Self::ShuttingDown => "SHUTTING_DOWN",
            Self::Paging(e) => e.reason(),
            Self::Store(e) => e.reason(),
        }
    }

    fn details(&self) -> Vec<(&'static str, String)> {
        match self {
            Self::SessionNotFound { session } | Self::NoJob { session } | Self::NoGateway { session } => {
                vec![("sessionId", session.clone())]
            }
            Self::NoHost { session, gateway } => vec![("sessionId", session.clone()), ("gatewayId", gateway.clone())],
            Self::AlreadyRunning { session, job, .. } => {
                vec![("sessionId", session.clone()), ("jobId", job.clone())]
            }
            Self::Paging(e) => e.details(),
            _ => Vec::new(),
        }
    }
}

#[derive(Debug, Clone)]
pub struct BackfillConfig {
    /// Jobs running at once; more wait as `queued`.
    pub concurrency: usize,
    /// A host stream that sends nothing for this long fails the job.
    pub stall_timeout: Duration,
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
    shutdown: CancellationToken,
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
                shutdown: CancellationToken::new(),
                tasks: TaskTracker::new(),
            }),
        }
    }

    /// Creates a job and starts it in the background; returns it queued.
    pub async fn start(&self, _admin: &SuperAdmin, session_id: &SessionId) -> Result<Job, BackfillError> {
        let inner = &self.inner;
        if inner.shutdown.is_cancelled() {
            return Err(BackfillError::ShuttingDown);
        }
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
        let progress =
            inner.registry.try_begin(session_id, job.clone()).map_err(|running| BackfillError::AlreadyRunning {
                session: session_id.to_string(),
                job: running.id,
                status: running.status.as_str(),
            })?;
        let run = runner::Run {
            store: inner.store.clone(),
            host,
            session: session_id.clone(),
            generation: job.id.clone(),
            progress,
            permits: inner.permits.clone(),
            shutdown: inner.shutdown.clone(),
            stall_timeout: inner.config.stall_timeout,
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

    /// A receiver of every change of the session's current job.
    pub async fn watch(&self, _admin: &SuperAdmin, session: &SessionId) -> Result<watch::Receiver<Job>, BackfillError> {
        match self.inner.registry.subscribe(session) {
            Some(rx) => Ok(rx),
            None => Err(self.missing(session).await),
        }
    }

    async fn missing(&self, session: &SessionId) -> BackfillError {
        match self.inner.store.get_session(session).await {
            Ok(Some(_)) => BackfillError::NoJob { session: session.to_string() },
            Ok(None) => BackfillError::SessionNotFound { session: session.to_string() },
            Err(e) => e.into(),
        }
    }

    /// One page of a session's stored data: validates paging, requires the
    /// session, fetches `limit + 1` rows after the cursor's key.
    async fn stored_page<T, Fut>(
        &self,
        codec: &CursorCodec,
        kind: &str,
        session: &SessionId,
        (limit, cursor): (Option<i64>, Option<&str>),
        key_of: fn(&T) -> &str,
        fetch: impl FnOnce(PageRequest) -> Fut,
    ) -> Result<Page<T>, BackfillError>
    where
        Fut: std::future::Future<Output = Result<Vec<T>, StoreError>>,
    {
        let scope = format!("{kind}|{session}");
        let page = codec.page_request(&scope, limit, cursor)?;
        if self.inner.store.get_session(session).await?.is_none() {
            return Err(BackfillError::SessionNotFound { session: session.to_string() });
        }
        let limit = page.limit;
        let rows = fetch(page).await?;
        Ok(codec.page(&scope, limit, rows, key_of))
    }

    /// Contacts stored by the session's last successful backfill, by jid.
    pub async fn contacts(
        &self,
        _admin: &SuperAdmin,
        codec: &CursorCodec,
        session: &SessionId,
        limit: Option<i64>,
        cursor: Option<&str>,
    ) -> Result<Page<Contact>, BackfillError> {
        let store = &self.inner.store;
        self.stored_page(
            codec,
            "contacts",
            session,
            (limit, cursor),
            |c: &Contact| c.jid.as_str(),
            |page| async move { store.list_contacts(session, &page).await },
        )
        .await
    }

    /// Groups (with participants) stored by the session's last successful backfill.
    pub async fn groups(
        &self,
        _admin: &SuperAdmin,
        codec: &CursorCodec,
        session: &SessionId,
        limit: Option<i64>,
        cursor: Option<&str>,
    ) -> Result<Page<Group>, BackfillError> {
        let store = &self.inner.store;
        self.stored_page(
            codec,
            "groups",
            session,
            (limit, cursor),
            |g: &Group| g.jid.as_str(),
            |page| async move { store.list_groups(session, &page).await },
        )
        .await
    }

    /// Stops running jobs (their staged rows are discarded, published data is
    /// untouched) and waits for them, at most `grace`.
    pub async fn shutdown(&self, grace: Duration) {
        self.inner.shutdown.cancel();
        self.inner.tasks.close();
        if tokio::time::timeout(grace, self.inner.tasks.wait()).await.is_err() {
            tracing::warn!("backfill jobs did not stop within {grace:?}");
        }
    }
}
