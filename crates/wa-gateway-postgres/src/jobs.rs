//! Backfill jobs shared by every replica (see
//! migrations/postgres/0003_backfill_jobs.sql for the rules the database
//! enforces). This module admits, claims and ends jobs; `upkeep` keeps the
//! leases, reaps the jobs of dead replicas and fans notifications out.

use crate::errors::from_sqlx;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use async_trait::async_trait;
use sqlx::postgres::PgPool;
use tokio::sync::{Notify, watch};
use tokio_util::sync::CancellationToken;

use crate::directory;
use crate::job_state::{CURRENT, Holding, JOB_COLUMNS, Local, job};
use crate::upkeep;
use wa_gateway_core::backfill::board::{Admission, BoardError, Counters, JobBoard, RunningJob, StopCause};
use wa_gateway_core::backfill::job::{CANCELLED, Job};
use wa_gateway_core::sessions::model::SessionId;
use wa_gateway_core::store::error::StoreError;
use wa_gateway_core::time::now_millis;

pub struct PgJobBoard {
    pool: PgPool,
    replica: String,
    lease: Duration,
    closed: AtomicBool,
    work: Arc<Notify>,
    local: Arc<Local>,
    background: Vec<tokio::task::AbortHandle>,
}

impl Drop for PgJobBoard {
    fn drop(&mut self) {
        for task in &self.background {
            task.abort();
        }
    }
}

impl PgJobBoard {
    /// A board for this replica, with its listener and upkeep running.
    pub fn start(pool: PgPool, lease: Duration) -> Arc<dyn JobBoard> {
        let replica = format!("{}-{}", std::process::id(), ulid::Ulid::new());
        let (work, local) = (Arc::new(Notify::new()), Arc::new(Local::default()));
        let background = vec![
            tokio::spawn(upkeep::listen(pool.clone(), local.clone(), work.clone())).abort_handle(),
            tokio::spawn(upkeep::keep(pool.clone(), local.clone(), replica.clone(), lease)).abort_handle(),
        ];
        tracing::info!(
            replica,
            lease_secs = lease.as_secs_f64(),
            "cluster mode: backfill jobs are shared in PostgreSQL"
        );
        Arc::new(Self { pool, replica, lease, closed: AtomicBool::new(false), work, local, background })
    }

    async fn active(&self, session: &str) -> Result<Option<Job>, StoreError> {
        let row = sqlx::query(&format!(
            "SELECT {JOB_COLUMNS} FROM backfill_jobs WHERE session_id = $1 AND status IN ('queued', 'running')"
        ))
        .bind(session)
        .fetch_optional(&self.pool)
        .await
        .map_err(from_sqlx)?;
        row.as_ref().map(job).transpose()
    }
}

#[async_trait]
impl JobBoard for PgJobBoard {
    async fn submit(&self, new: Job) -> Result<Admission, StoreError> {
        if self.closed.load(Ordering::Acquire) {
            return Ok(Admission::Closed);
        }
        // The partial unique index decides; a conflict whose job ended before
        // we could read it is tried again.
        for _ in 0..3 {
            let inserted = sqlx::query(
                "INSERT INTO backfill_jobs (id, session_id, organization_id, status, started_at) \
                 VALUES ($1, $2, $3, 'queued', $4) \
                 ON CONFLICT (session_id) WHERE status IN ('queued', 'running') DO NOTHING",
            )
            .bind(&new.id)
            .bind(&new.session_id)
            .bind(&new.organization_id)
            .bind(new.started_at)
            .execute(&self.pool)
            .await
            .map_err(from_sqlx)?
            .rows_affected();
            if inserted == 1 {
                self.work.notify_one();
                return Ok(Admission::Queued(new));
            }
            if let Some(active) = self.active(&new.session_id).await? {
                return Ok(Admission::Active(active));
            }
        }
        Err(StoreError::Corrupt(format!("session {} keeps conflicting without an active job", new.session_id)))
    }

    async fn current(&self, session: &SessionId) -> Result<Option<Job>, StoreError> {
        let row = sqlx::query(&format!("SELECT {JOB_COLUMNS} FROM backfill_jobs {CURRENT}"))
            .bind(session.as_str())
            .fetch_optional(&self.pool)
            .await
            .map_err(from_sqlx)?;
        row.as_ref().map(job).transpose()
    }

    async fn forget_finished(&self, session: &SessionId) -> Result<(), StoreError> {
        // The session's stored data went with it, so nothing is left to sweep.
        sqlx::query("DELETE FROM backfill_jobs WHERE session_id = $1 AND status IN ('succeeded', 'failed')")
            .bind(session.as_str())
            .execute(&self.pool)
            .await
            .map_err(from_sqlx)?;
        Ok(())
    }

    async fn job(&self, session: &SessionId, id: &str) -> Result<Option<Job>, StoreError> {
        let row = sqlx::query(&format!("SELECT {JOB_COLUMNS} FROM backfill_jobs WHERE id = $1 AND session_id = $2"))
            .bind(id)
            .bind(session.as_str())
            .fetch_optional(&self.pool)
            .await
            .map_err(from_sqlx)?;
        row.as_ref().map(job).transpose()
    }

    async fn subscribe(&self, session: &SessionId) -> Result<Option<watch::Receiver<Job>>, StoreError> {
        let Some(current) = self.current(session).await? else { return Ok(None) };
        let rx = {
            let mut watchers = self.local.watchers.lock().unwrap_or_else(|p| p.into_inner());
            let tx = watchers.entry(session.to_string()).or_insert_with(|| watch::channel(current.clone()).0);
            tx.subscribe()
        };
        // A change may have been notified before this watcher was registered.
        if let Some(fresh) = self.current(session).await? {
            self.local.deliver(session.as_str(), fresh);
        }
        Ok(Some(rx))
    }

    async fn request_stop(&self, session: &SessionId) -> Result<Option<Job>, StoreError> {
        let row = sqlx::query(&format!(
            "UPDATE backfill_jobs SET stop_requested = true, \
               error = CASE WHEN status = 'queued' THEN $2 ELSE error END, \
               finished_at = CASE WHEN status = 'queued' THEN $3 ELSE finished_at END, \
               swept = swept OR status = 'queued', \
               status = CASE WHEN status = 'queued' THEN 'failed' ELSE status END \
             WHERE session_id = $1 AND status IN ('queued', 'running') RETURNING {JOB_COLUMNS}"
        ))
        .bind(session.as_str())
        .bind(CANCELLED)
        .bind(now_millis())
        .fetch_optional(&self.pool)
        .await
        .map_err(from_sqlx)?;
        let stopped = row.as_ref().map(job).transpose()?;
        if let Some(holding) = stopped.as_ref().and_then(|j| self.local.holding(&j.id)) {
            holding.stop(StopCause::Cancelled);
        }
        Ok(stopped)
    }

    async fn work_available(&self) {
        self.work.notified().await;
    }

    async fn claim(&self) -> Result<Option<Box<dyn RunningJob>>, StoreError> {
        if self.closed.load(Ordering::Acquire) {
            return Ok(None);
        }
        let row = sqlx::query(&format!(
            "UPDATE backfill_jobs SET status = 'running', runner = $1, \
               lease_expires_at = now() + make_interval(secs => $2) \
             WHERE id = (SELECT id FROM backfill_jobs WHERE status = 'queued' ORDER BY id LIMIT 1 \
                         FOR UPDATE SKIP LOCKED) \
             RETURNING {JOB_COLUMNS}"
        ))
        .bind(&self.replica)
        .bind(self.lease.as_secs_f64())
        .fetch_optional(&self.pool)
        .await
        .map_err(from_sqlx)?;
        let Some(claimed) = row.as_ref().map(job).transpose()? else { return Ok(None) };
        let holding = Arc::new(Holding::new(claimed.session_id.clone()));
        self.local.held.lock().unwrap_or_else(|p| p.into_inner()).insert(claimed.id.clone(), holding.clone());
        Ok(Some(Box::new(PgRunning {
            pool: self.pool.clone(),
            replica: self.replica.clone(),
            lease: self.lease,
            job: claimed,
            holding,
            local: self.local.clone(),
        })))
    }

    fn close(&self) {
        self.closed.store(true, Ordering::Release);
        self.work.notify_waiters();
    }
}

/// A job this replica claimed. Every write is fenced by the lease: it
/// applies only while this replica still runs the job.
struct PgRunning {
    pool: PgPool,
    replica: String,
    lease: Duration,
    job: Job,
    holding: Arc<Holding>,
    local: Arc<Local>,
}

impl Drop for PgRunning {
    fn drop(&mut self) {
        self.local.held.lock().unwrap_or_else(|p| p.into_inner()).remove(&self.job.id);
    }
}

#[async_trait]
impl RunningJob for PgRunning {
    fn job(&self) -> &Job {
        &self.job
    }

    fn stop_token(&self) -> CancellationToken {
        self.holding.token.clone()
    }

    fn stop_cause(&self) -> StopCause {
        self.holding.cause()
    }

    async fn report(&self, counters: Counters) -> Result<(), BoardError> {
        let stop: Option<bool> = sqlx::query_scalar(
            "UPDATE backfill_jobs SET contacts = $2, groups = $3, group_members = $4, \
               lease_expires_at = now() + make_interval(secs => $5) \
             WHERE id = $1 AND runner = $6 AND status = 'running' AND lease_expires_at > now() \
             RETURNING stop_requested",
        )
        .bind(&self.job.id)
        .bind(counters.contacts as i64)
        .bind(counters.groups as i64)
        .bind(counters.group_members as i64)
        .bind(self.lease.as_secs_f64())
        .bind(&self.replica)
        .fetch_optional(&self.pool)
        .await
        .map_err(from_sqlx)?;
        match stop {
            None => {
                self.holding.stop(StopCause::LeaseLost);
                Err(BoardError::LeaseLost)
            }
            Some(true) => {
                self.holding.stop(StopCause::Cancelled);
                Ok(())
            }
            Some(false) => Ok(()),
        }
    }

    #[tracing::instrument(level = "debug", name = "store.publish_job", skip_all, fields(db.system = "postgresql"))]
    async fn publish(&self, counters: Counters) -> Result<Job, BoardError> {
        let mut tx = crate::begin(&self.pool).await?;
        // The fence: the job row, locked, still ours and within its lease.
        let held: Option<i32> = sqlx::query_scalar(
            "SELECT 1 FROM backfill_jobs WHERE id = $1 AND runner = $2 AND status = 'running' \
             AND lease_expires_at > now() FOR UPDATE",
        )
        .bind(&self.job.id)
        .bind(&self.replica)
        .fetch_optional(&mut *tx)
        .await
        .map_err(from_sqlx)?;
        if held.is_none() {
            self.holding.stop(StopCause::LeaseLost);
            return Err(BoardError::LeaseLost);
        }
        let session = SessionId::parse(&self.job.session_id).map_err(|e| StoreError::Corrupt(e.to_string()))?;
        directory::publish(&mut tx, &session, &self.job.id).await?;
        let row = sqlx::query(&format!(
            "UPDATE backfill_jobs SET status = 'succeeded', finished_at = $2, contacts = $3, groups = $4, \
               group_members = $5, swept = true WHERE id = $1 RETURNING {JOB_COLUMNS}"
        ))
        .bind(&self.job.id)
        .bind(now_millis())
        .bind(counters.contacts as i64)
        .bind(counters.groups as i64)
        .bind(counters.group_members as i64)
        .fetch_one(&mut *tx)
        .await
        .map_err(from_sqlx)?;
        let done = job(&row)?;
        tx.commit().await?;
        Ok(done)
    }

    async fn fail(&self, counters: Counters, error: &str) -> Result<Job, StoreError> {
        let row = sqlx::query(&format!(
            "UPDATE backfill_jobs SET status = 'failed', error = $2, finished_at = $3, contacts = $4, groups = $5, \
               group_members = $6, swept = false \
             WHERE id = $1 AND runner = $7 AND status = 'running' RETURNING {JOB_COLUMNS}"
        ))
        .bind(&self.job.id)
        .bind(error)
        .bind(now_millis())
        .bind(counters.contacts as i64)
        .bind(counters.groups as i64)
        .bind(counters.group_members as i64)
        .bind(&self.replica)
        .fetch_optional(&self.pool)
        .await
        .map_err(from_sqlx)?;
        if let Some(row) = row {
            return job(&row);
        }
        // Another replica already ended it (its lease lapsed): leave it so.
        let row = sqlx::query(&format!("SELECT {JOB_COLUMNS} FROM backfill_jobs WHERE id = $1"))
            .bind(&self.job.id)
            .fetch_one(&self.pool)
            .await
            .map_err(from_sqlx)?;
        job(&row)
    }
}
