//! What every replica does in the background in cluster mode:
//!
//! - **listen**: one LISTEN connection per replica. A notification names a
//!   session whose job changed; the replica re-reads it once and hands it to
//!   every local watcher, tells a local runner whose job was cancelled or
//!   taken away, and wakes an idle worker when a job was queued. After a
//!   reconnect everything followed is re-read, so a missed notification
//!   costs one read, never a wrong state.
//! - **keep**: renews the leases of the jobs this replica runs (a job whose
//!   lease it can no longer renew is stopped), fails jobs whose lease expired
//!   anywhere (`interrupted`: their replica died), deletes the staged rows of
//!   failed jobs, folds the sessions' status changes into the gateways'
//!   counters, and prunes old job records.

use crate::errors::from_sqlx;
use std::sync::Arc;
use std::time::Duration;

use sqlx::Row;
use sqlx::postgres::{PgListener, PgPool};
use tokio::sync::Notify;

use crate::directory;
use crate::job_state::{CURRENT, JOB_COLUMNS, Local, job};
use wa_gateway_core::backfill::board::StopCause;
use wa_gateway_core::backfill::job::INTERRUPTED;
use wa_gateway_core::store::error::StoreError;
use wa_gateway_core::time::now_millis;

const CHANNEL: &str = "wa_gateway_jobs";
/// Finished job records older than this are deleted, except each session's latest.
const RETENTION: Duration = Duration::from_secs(30 * 24 * 3600);

/// Re-reads one session's current job for its watchers and local runner.
async fn refresh(pool: &PgPool, local: &Local, session: &str) -> Result<(), StoreError> {
    let row = sqlx::query(&format!("SELECT {JOB_COLUMNS}, stop_requested, runner FROM backfill_jobs {CURRENT}"))
        .bind(session)
        .fetch_optional(pool)
        .await
        .map_err(from_sqlx)?;
    let Some(row) = row else { return Ok(()) };
    let current = job(&row)?;
    if let Some(holding) = local.holding(&current.id) {
        if row.try_get::<bool, _>("stop_requested").map_err(from_sqlx)? {
            holding.stop(StopCause::Cancelled);
        }
    }
    local.deliver(session, current);
    Ok(())
}

async fn refresh_all(pool: &PgPool, local: &Local) {
    let mut sessions: Vec<String> = local.watchers.lock().unwrap_or_else(|p| p.into_inner()).keys().cloned().collect();
    sessions.extend(local.held.lock().unwrap_or_else(|p| p.into_inner()).values().map(|h| h.session.clone()));
    for session in sessions {
        if let Err(error) = refresh(pool, local, &session).await {
            tracing::warn!(%error, session, "could not re-read a backfill job");
        }
    }
}

pub(super) async fn listen(pool: PgPool, local: Arc<Local>, work: Arc<Notify>) {
    while !pool.is_closed() {
        let mut listener = match PgListener::connect_with(&pool).await {
            Ok(listener) => listener,
            Err(_) if pool.is_closed() => return,
            Err(error) => {
                tracing::warn!(%error, "cannot open the job notification connection; retrying");
                tokio::time::sleep(Duration::from_secs(1)).await;
                continue;
            }
        };
        if let Err(error) = listener.listen(CHANNEL).await {
            tracing::warn!(%error, "cannot LISTEN for job changes; retrying");
            tokio::time::sleep(Duration::from_secs(1)).await;
            continue;
        }
        refresh_all(&pool, &local).await;
        work.notify_one();
        loop {
            match listener.try_recv().await {
                Ok(Some(notification)) => {
                    let (status, session) = notification.payload().split_once(' ').unwrap_or(("", ""));
                    if status == "queued" {
                        work.notify_one();
                    }
                    if let Err(error) = refresh(&pool, &local, session).await {
                        tracing::warn!(%error, session, "could not re-read a backfill job");
                    }
                }
                // The connection dropped and came back: anything may have been missed.
                Ok(None) => {
                    refresh_all(&pool, &local).await;
                    work.notify_one();
                }
                Err(_) if pool.is_closed() => return,
                Err(error) => {
                    tracing::warn!(%error, "job notifications interrupted; reconnecting");
                    break;
                }
            }
        }
    }
}

/// Renews this replica's leases; stops the runners of jobs it lost.
async fn renew(pool: &PgPool, local: &Local, replica: &str, lease: Duration) -> Result<(), StoreError> {
    let held: Vec<String> = local.held.lock().unwrap_or_else(|p| p.into_inner()).keys().cloned().collect();
    if held.is_empty() {
        return Ok(());
    }
    let renewed = sqlx::query(
        "UPDATE backfill_jobs SET lease_expires_at = now() + make_interval(secs => $3) \
         WHERE id = ANY($1) AND runner = $2 AND status = 'running' AND lease_expires_at > now() \
         RETURNING id, stop_requested",
    )
    .bind(&held)
    .bind(replica)
    .bind(lease.as_secs_f64())
    .fetch_all(pool)
    .await
    .map_err(from_sqlx)?;
    for id in &held {
        let Some(holding) = local.holding(id) else { continue };
        match renewed.iter().find(|r| r.try_get::<String, _>("id").ok().as_deref() == Some(id)) {
            None => holding.stop(StopCause::LeaseLost),
            Some(row) if row.try_get::<bool, _>("stop_requested").map_err(from_sqlx)? => {
                holding.stop(StopCause::Cancelled)
            }
            Some(_) => {}
        }
    }
    Ok(())
}

/// Fails the jobs whose replica stopped renewing its lease.
async fn reap(pool: &PgPool) -> Result<(), StoreError> {
    let reaped = sqlx::query(
        "UPDATE backfill_jobs SET status = 'failed', error = $1, finished_at = $2, swept = false \
         WHERE status = 'running' AND lease_expires_at < now() RETURNING id, session_id, runner",
    )
    .bind(INTERRUPTED)
    .bind(now_millis())
    .fetch_all(pool)
    .await
    .map_err(from_sqlx)?;
    for row in reaped {
        let (id, session, runner): (String, String, Option<String>) = (
            row.try_get("id").map_err(from_sqlx)?,
            row.try_get("session_id").map_err(from_sqlx)?,
            row.try_get("runner").map_err(from_sqlx)?,
        );
        tracing::warn!(
            job = id,
            session,
            runner = runner.unwrap_or_default(),
            "backfill interrupted: its replica's lease expired"
        );
    }
    Ok(())
}

/// Deletes finished job records older than [`RETENTION`], keeping each
/// session's latest so GetBackfill still answers.
async fn prune(pool: &PgPool) -> Result<(), StoreError> {
    let cutoff = now_millis() - RETENTION.as_millis() as i64;
    sqlx::query(
        "DELETE FROM backfill_jobs j WHERE j.status IN ('succeeded', 'failed') AND j.swept AND j.finished_at < $1 \
         AND EXISTS (SELECT 1 FROM backfill_jobs n WHERE n.session_id = j.session_id AND n.id > j.id)",
    )
    .bind(cutoff)
    .execute(pool)
    .await
    .map_err(from_sqlx)?;
    Ok(())
}

pub(super) async fn keep(pool: PgPool, local: Arc<Local>, replica: String, lease: Duration) {
    let tick = (lease / 4).max(Duration::from_millis(250));
    let mut interval = tokio::time::interval(tick);
    interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let prune_every = (3600.0 / tick.as_secs_f64()).ceil() as u64;
    for round in 0u64.. {
        interval.tick().await;
        if pool.is_closed() {
            return;
        }
        if let Err(error) = renew(&pool, &local, &replica, lease).await {
            tracing::warn!(%error, "could not renew backfill leases");
        }
        if let Err(error) = reap(&pool).await {
            tracing::warn!(%error, "could not reap expired backfill leases");
        }
        if let Err(error) = directory::sweep_failed_jobs(&pool).await {
            tracing::warn!(%error, "could not sweep the rows of failed backfills");
        }
        if let Err(error) = crate::sessions::fold_status_changes(&pool).await {
            tracing::warn!(%error, "could not fold status changes into the gateways' counters");
        }
        if round % prune_every == prune_every - 1 {
            if let Err(error) = prune(&pool).await {
                tracing::warn!(%error, "could not prune old backfill records");
            }
        }
        local.watchers.lock().unwrap_or_else(|p| p.into_inner()).retain(|_, tx| tx.receiver_count() > 0);
    }
}
