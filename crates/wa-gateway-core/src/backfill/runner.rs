//! One backfill job from queue to terminal state.
//!
//! Contacts are written first, then groups. The groups stream opens as soon
//! as the host has accepted the contacts stream, so the host prepares its
//! groups (on a real host, calls to WhatsApp) while contacts are written,
//! and the job does not wait for them in between; it is read from only when
//! its turn comes. Each write (one or more host batches, [`super::overlap`])
//! is its own transaction under the job's generation, which readers do not
//! see. Only after both streams end cleanly is the generation published, in
//! one transaction that nothing interrupts once begun. Any failure (host
//! error, deadline, cancel, shutdown, even a panic) discards the generation,
//! so the previously published data stays exactly as it was.

use std::future::Future;
use std::panic::AssertUnwindSafe;
use std::sync::Arc;
use std::time::Duration;

use futures_util::FutureExt;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use super::board::{BoardError, Counters, RunningJob, StopCause};
use super::dedupe::{self, MAX_CONTACTS_PER_JOB, MAX_GROUPS_PER_JOB, Seen};
use super::job::{CANCELLED, INTERRUPTED, Job};
use super::overlap::Ahead;
use super::spans;
use super::stopping::{Stop, Stopping};
use super::writers::{Write, Writers};
use crate::directory::{Contact, Group};
use crate::hosts::{HostError, SessionHost, SessionHosts};
use crate::sessions::model::SessionId;
use crate::store::error::StoreError;
use crate::store::port::{Staging, Store};
use tracing::Instrument;

/// A joined-groups stream being opened, with its span.
type Opened = (tracing::Span, Ahead<Group>);

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
    #[error("{}", store_failure(.0))]
    Store(#[from] StoreError),
    #[error("{CANCELLED}")]
    Cancelled,
    #[error("timed out after {} s (--backfill-timeout-secs)", .0.as_secs())]
    TimedOut(Duration),
    /// Shutdown, or this replica lost its hold on the job.
    #[error("{INTERRUPTED}")]
    Interrupted,
    #[error("session removed")]
    SessionGone,
    #[error("no session host is configured for gateway {0} on the replica that ran the job")]
    NoHost(String),
    #[error("internal error: the backfill task panicked")]
    Panicked,
    /// The job was told to stop; which error it ends with is decided once
    /// every write in flight has ended ([`Run::stop_error`]).
    #[error("stopping")]
    Stopped(Stop),
}

impl From<Stop> for RunError {
    fn from(stop: Stop) -> Self {
        Self::Stopped(stop)
    }
}

/// What a job's `error` says of a store failure: the cause an operator can
/// act on, never the database's own words.
fn store_failure(error: &StoreError) -> &'static str {
    match error {
        _ if error.is_busy() => "the database stayed busy; start the backfill again",
        StoreError::Full(_) => {
            "the database has no space left; the stored data is as it was: free disk space and start the backfill again"
        }
        _ => "storing pulled data failed",
    }
}

impl From<BoardError> for RunError {
    fn from(error: BoardError) -> Self {
        match error {
            BoardError::LeaseLost => Self::Interrupted,
            BoardError::Store(e) => Self::Store(e),
        }
    }
}

impl From<HostError> for RunError {
    fn from(error: HostError) -> Self {
        Self::Host { error, attempts: 1 }
    }
}

/// How every job of this replica runs.
#[derive(Debug, Clone)]
pub(super) struct RunConfig {
    pub stall_timeout: Duration,
    pub deadline: Duration,
    pub retry: RetryPolicy,
}

pub(super) struct Run {
    pub store: Store,
    pub hosts: std::sync::Arc<dyn SessionHosts>,
    pub handle: Box<dyn RunningJob>,
    pub session: SessionId,
    pub shutdown: CancellationToken,
    pub config: RunConfig,
    pub counters: std::sync::Mutex<Counters>,
    pub reporting: tokio::sync::Mutex<()>,
}

/// Runs `work`, turning a panic into [`RunError::Panicked`].
pub async fn supervised<T>(work: impl Future<Output = Result<T, RunError>>) -> Result<T, RunError> {
    AssertUnwindSafe(work).catch_unwind().await.unwrap_or(Err(RunError::Panicked))
}

/// Counts and logs a job that reached its terminal state.
fn record_end(job: &Job) {
    metrics::counter!("wa_gateway_backfill_jobs_total", "status" => job.status.as_str()).increment(1);
    tracing::info!(
        session = %job.session_id, job = %job.id, status = job.status.as_str(),
        contacts = job.contacts, groups = job.groups, group_members = job.group_members,
        error = job.error.as_deref().unwrap_or(""), "backfill finished"
    );
}

impl Run {
    fn generation(&self) -> &str {
        &self.handle.job().id
    }

    fn counters(&self) -> Counters {
        *self.counters.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Bumps the counters and reports them to the board. Reports of writes
    /// that run at once go out one after another, so progress never goes
    /// back.
    async fn count(&self, change: impl FnOnce(&mut Counters)) -> Result<(), RunError> {
        let _in_order = self.reporting.lock().await;
        let counters = {
            let mut counters = self.counters.lock().unwrap_or_else(|p| p.into_inner());
            change(&mut counters);
            *counters
        };
        self.handle.report(counters).await?;
        Ok(())
    }

    pub async fn execute(self) {
        let result = supervised(self.run()).await;
        let error = match result {
            Ok(job) => return record_end(&job),
            Err(error) => error,
        };
        if let RunError::TimedOut(_) = &error {
            metrics::counter!("wa_gateway_backfill_timeouts_total").increment(1);
        }
        if let RunError::Store(cause) = &error {
            tracing::error!(error = %cause, job = %self.generation(), "backfill storage failure");
        }
        self.discard().await;
        match self.handle.fail(self.counters(), &error.to_string()).await {
            Ok(job) => record_end(&job),
            Err(cause) => {
                tracing::error!(error = %cause, job = %self.generation(), "could not record a failed backfill")
            }
        }
    }

    async fn run(&self) -> Result<Job, RunError> {
        tracing::info!(session = %self.session, job = %self.generation(), "backfill running");
        let stopping = Stopping {
            told: self.handle.stop_token(),
            shutdown: self.shutdown.clone(),
            deadline: Instant::now() + self.config.deadline,
        };
        match self.pull_and_publish(&stopping).await {
            Err(RunError::Stopped(stop)) => Err(self.stop_error(stop).await),
            other => other,
        }
    }

    /// What a stopped job ends with; asked once nothing of the job runs.
    async fn stop_error(&self, stop: Stop) -> RunError {
        match stop {
            Stop::Told => match self.handle.stop_cause() {
                // The directory stops the job of a session it removed.
                StopCause::Cancelled if matches!(self.store.get_session(&self.session).await, Ok(None)) => {
                    RunError::SessionGone
                }
                StopCause::Cancelled => RunError::Cancelled,
                StopCause::LeaseLost => RunError::Interrupted,
            },
            Stop::Shutdown => RunError::Interrupted,
            Stop::Deadline => RunError::TimedOut(self.config.deadline),
        }
    }

    async fn pull_and_publish(&self, stopping: &Stopping) -> Result<Job, RunError> {
        let session = self.store.get_session(&self.session).await?.ok_or(RunError::SessionGone)?;
        let gateway = session.gateway_id.unwrap_or_default();
        let host: Arc<dyn SessionHost> = self.hosts.host(&gateway).ok_or(RunError::NoHost(gateway))?.into();
        self.pull(host, stopping).await?;
        // Publishing is one transaction; it is never abandoned half-way, so
        // its outcome is known when the job reports one. A stop that came
        // before it begins still stops the job.
        let counters = self.counters();
        let mut wait = Duration::from_millis(50);
        let give_up = Instant::now() + STORE_PATIENCE;
        loop {
            if let Some(stop) = stopping.now() {
                return Err(stop.into());
            }
            match self.handle.publish(counters).await {
                Err(BoardError::Store(e)) if e.is_busy() && Instant::now() + wait < give_up => {
                    metrics::counter!("wa_gateway_store_busy_total", "during" => "backfill").increment(1);
                    stopping.sleep(wait).await?;
                    wait = (wait * 2).min(Duration::from_secs(2));
                }
                Err(BoardError::Store(StoreError::SessionRemoved(_))) => return Err(RunError::SessionGone),
                published => return Ok(published?),
            }
        }
    }

    async fn discard(&self) {
        let discarding = self.store_retrying(None, || self.store.discard_generation(&self.session, self.generation()));
        if let Err(RunError::Store(error)) = discarding.await {
            // The rows stay invisible; the sweep removes them.
            tracing::warn!(%error, job = %self.generation(), "could not discard a failed generation");
        }
    }

    fn staging(&self) -> Staging<'_> {
        Staging { session: &self.session, generation: self.generation() }
    }

    /// Pulls both streams into the job's generation. Stopping is checked
    /// while waiting on the host and between writes, never inside one.
    async fn pull(&self, host: Arc<dyn SessionHost>, stopping: &Stopping) -> Result<(), RunError> {
        let job = tracing::Span::current();
        let mut groups = None;
        let mut seen = Seen::new(MAX_CONTACTS_PER_JOB);
        let mut attempt = 1;
        loop {
            let mut received = false;
            let span = spans::host_stream_span("StreamContacts", host.gateway(), attempt);
            let pulled = async {
                let batches = tokio::select! {
                    batches = host.contacts(&self.session, self.config.stall_timeout) => batches?,
                    stop = stopping.signal() => return Err(stop.into()),
                };
                // The host holds the session: its groups are asked for now.
                groups.get_or_insert_with(|| self.open_groups(&host, 1, &job));
                let ahead = Ahead::start(batches, |_| 1, self.store.staging_writes());
                self.write_contacts(ahead, stopping, &mut seen, &mut received).await
            };
            match traced(span, pulled).await {
                Err(RunError::Host { error, .. }) => {
                    attempt = self.retry_or_fail(error, received, attempt, stopping).await?
                }
                other => break other?,
            }
        }
        let mut seen = Seen::new(MAX_GROUPS_PER_JOB);
        let mut attempt = 1;
        loop {
            let mut received = false;
            let (span, ahead) = groups.take().unwrap_or_else(|| self.open_groups(&host, attempt, &job));
            match traced(span, self.write_groups(ahead, stopping, &mut seen, &mut received)).await {
                Err(RunError::Host { error, .. }) => {
                    attempt = self.retry_or_fail(error, received, attempt, stopping).await?
                }
                other => break other?,
            }
        }
        Ok(())
    }

    /// Opens the joined-groups stream, a child of the job's span, to be
    /// received ahead of the writes once they ask for it.
    fn open_groups(&self, host: &Arc<dyn SessionHost>, attempt: u32, job: &tracing::Span) -> Opened {
        let span = job.in_scope(|| spans::host_stream_span("StreamJoinedGroups", host.gateway(), attempt));
        let (host, session, stall) = (host.clone(), self.session.clone(), self.config.stall_timeout);
        let open = async move { host.groups(&session, stall).await };
        let shape = self.store.staging_writes();
        let ahead = span.in_scope(|| Ahead::opening(open, |g: &Group| 1 + g.participants.len(), shape));
        (span, ahead)
    }

    /// Waits out the backoff of a transient failure and returns the next
    /// attempt number, or fails with the error and the attempts made. A
    /// retried stream re-sends items already staged; they replace themselves.
    async fn retry_or_fail(
        &self,
        error: HostError,
        received: bool,
        attempt: u32,
        stopping: &Stopping,
    ) -> Result<u32, RunError> {
        let retry = self.config.retry;
        if !error.is_transient(received) || attempt >= retry.attempts {
            return Err(RunError::Host { error, attempts: attempt });
        }
        let backoff = retry.first_backoff.saturating_mul(1 << (attempt - 1).min(16)).min(retry.max_backoff);
        tracing::warn!(job = %self.generation(), %error, attempt, ?backoff, "session host stream failed; retrying");
        stopping.sleep(backoff).await?;
        Ok(attempt + 1)
    }

    async fn write_contacts(
        &self,
        ahead: Ahead<Contact>,
        stopping: &Stopping,
        seen: &mut Seen,
        received: &mut bool,
    ) -> Result<(), RunError> {
        self.write_all(ahead, stopping, received, |items| {
            let batch = dedupe::contacts(items);
            let maybe = possibly_staged(seen, batch.iter().map(|c| c.jid.as_str()), "contacts")?;
            Ok((!maybe.is_empty(), self.store_contacts(batch, maybe, stopping).boxed()))
        })
        .await
    }

    async fn write_groups(
        &self,
        ahead: Ahead<Group>,
        stopping: &Stopping,
        seen: &mut Seen,
        received: &mut bool,
    ) -> Result<(), RunError> {
        self.write_all(ahead, stopping, received, |items| {
            let batch = dedupe::groups(items);
            let maybe = possibly_staged(seen, batch.iter().map(|g| g.info.jid.as_str()), "groups")?;
            Ok((!maybe.is_empty(), self.store_groups(batch, maybe, stopping).boxed()))
        })
        .await
    }

    /// Writes what the host sends as the store takes it ([`Writers`]):
    /// `plan` turns received items into a write, and says whether it may
    /// replace staged rows. Returns once every write has ended, also when
    /// the job was told to stop meanwhile.
    async fn write_all<'a, T: Send + 'static>(
        &'a self,
        mut ahead: Ahead<T>,
        stopping: &Stopping,
        received: &mut bool,
        mut plan: impl FnMut(Vec<T>) -> Result<(bool, Write<'a, RunError>), RunError>,
    ) -> Result<(), RunError> {
        let mut writers = Writers::new(self.store.staging_writes().concurrent);
        let result = loop {
            if let Err(error) = writers.room(false).await {
                break Err(error);
            }
            let items = tokio::select! {
                items = ahead.next_write() => items,
                ended = writers.finished() => match ended {
                    Ok(()) => continue,
                    Err(error) => break Err(error),
                },
                stop = stopping.signal() => break Err(stop.into()),
            };
            let items = match items {
                Ok(items) if items.is_empty() => break Ok(()),
                Ok(items) => items,
                Err(error) => break Err(error.into()),
            };
            *received = true;
            let (repeats, write) = match plan(items) {
                Ok(planned) => planned,
                Err(error) => break Err(error),
            };
            if repeats && let Err(error) = writers.room(true).await {
                break Err(error);
            }
            writers.start(write);
        };
        let ended = writers.all_ended().await;
        result.and(ended)
    }

    /// One write, one transaction: memory is bounded by the rows received
    /// ahead ([`super::overlap`]), and progress moves per write.
    async fn store_contacts(
        &self,
        batch: Vec<Contact>,
        maybe: Vec<String>,
        stopping: &Stopping,
    ) -> Result<(), RunError> {
        if batch.is_empty() {
            return Ok(());
        }
        let maybe: Vec<&str> = maybe.iter().map(String::as_str).collect();
        let replaced =
            self.store_retrying(Some(stopping), || self.store.stage_contacts(self.staging(), &batch, &maybe)).await?;
        let added = batch.len() as u64 - replaced;
        metrics::counter!("wa_gateway_backfill_rows_total", "kind" => "contacts").increment(added);
        self.count(|c| c.contacts += added).await
    }

    async fn store_groups(&self, batch: Vec<Group>, maybe: Vec<String>, stopping: &Stopping) -> Result<(), RunError> {
        if batch.is_empty() {
            return Ok(());
        }
        let maybe: Vec<&str> = maybe.iter().map(String::as_str).collect();
        let replaced =
            self.store_retrying(Some(stopping), || self.store.stage_groups(self.staging(), &batch, &maybe)).await?;
        let groups = batch.len() as u64 - replaced.groups;
        let members = batch.iter().map(|g| g.participants.len() as u64).sum::<u64>();
        // A re-sent group with fewer members lowers the member count: the
        // counters follow the rows actually stored.
        metrics::counter!("wa_gateway_backfill_rows_total", "kind" => "groups").increment(groups);
        metrics::counter!("wa_gateway_backfill_rows_total", "kind" => "group_members").increment(members);
        self.count(|c| {
            c.groups += groups;
            c.group_members = (c.group_members + members).saturating_sub(replaced.members);
        })
        .await
    }

    /// Retries a store operation while the store is busy (another writer
    /// holds the lock), for at most [`STORE_PATIENCE`]; between tries, a
    /// job told to stop (`stopping`) stops.
    async fn store_retrying<T, F, Fut>(&self, stopping: Option<&Stopping>, mut op: F) -> Result<T, RunError>
    where
        F: FnMut() -> Fut,
        Fut: Future<Output = Result<T, StoreError>>,
    {
        let give_up = Instant::now() + STORE_PATIENCE;
        let mut wait = Duration::from_millis(50);
        loop {
            match op().await {
                Err(error) if error.is_busy() && Instant::now() + wait < give_up => {
                    metrics::counter!("wa_gateway_store_busy_total", "during" => "backfill").increment(1);
                    tracing::debug!(%error, job = %self.generation(), "store busy; retrying");
                    match stopping {
                        Some(stopping) => stopping.sleep(wait).await?,
                        None => tokio::time::sleep(wait).await,
                    }
                    wait = (wait * 2).min(Duration::from_secs(2));
                }
                other => return Ok(other?),
            }
        }
    }
}

/// Runs a host stream in its span, marking the span failed on an error.
async fn traced(span: tracing::Span, pulled: impl Future<Output = Result<(), RunError>>) -> Result<(), RunError> {
    let result = pulled.instrument(span.clone()).await;
    if let Err(error) = &result {
        spans::record_error(&span, error);
    }
    result
}

/// Records the jids of a write in `seen`; those the job may have staged
/// before, which the write replaces.
fn possibly_staged<'a>(
    seen: &mut Seen,
    jids: impl Iterator<Item = &'a str>,
    kind: &str,
) -> Result<Vec<String>, RunError> {
    let maybe = seen.record(jids).map_err(|limit| {
        RunError::from(HostError::InvalidData(format!("more than {limit} distinct {kind} in one session")))
    })?;
    Ok(maybe.into_iter().map(str::to_owned).collect())
}
