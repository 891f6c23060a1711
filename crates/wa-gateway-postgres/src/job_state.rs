//! What the job board and its upkeep share: how a job row reads, and
//! [`Local`], what this replica follows (sessions with local watchers, and
//! the jobs it runs).

use std::collections::HashMap;
use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::{Arc, Mutex};

use sqlx::postgres::PgRow;
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

use wa_gateway_core::backfill::board::StopCause;
use wa_gateway_core::backfill::job::{Job, JobStatus};
use wa_gateway_core::store::error::StoreError;
use wa_gateway_sql::rows::Columns;

pub(super) const JOB_COLUMNS: &str =
    "id, session_id, organization_id, status, started_at, finished_at, contacts, groups, group_members, error";

/// The session's queued or running job first, else its latest.
pub(super) const CURRENT: &str =
    "WHERE session_id = $1 ORDER BY (status IN ('queued', 'running')) DESC, id DESC LIMIT 1";

pub(super) fn job(row: &PgRow) -> Result<Job, StoreError> {
    let status = row.text("status")?;
    let count = |column: &str| row.int(column).map(|n| u64::try_from(n).unwrap_or(0));
    Ok(Job {
        id: row.text("id")?,
        session_id: row.text("session_id")?,
        organization_id: row.text("organization_id")?,
        status: JobStatus::parse(&status).ok_or_else(|| StoreError::Corrupt(format!("job status {status:?}")))?,
        started_at: row.int("started_at")?,
        finished_at: row.opt_int("finished_at")?,
        contacts: count("contacts")?,
        groups: count("groups")?,
        group_members: count("group_members")?,
        error: row.opt_text("error")?,
    })
}

/// This replica's hold on a job it runs.
pub(super) struct Holding {
    pub session: String,
    pub token: CancellationToken,
    cause: AtomicU8,
}

impl Holding {
    pub fn new(session: String) -> Self {
        Self { session, token: CancellationToken::new(), cause: AtomicU8::new(0) }
    }

    /// Tells the runner to stop, for `cause` (the first cause wins).
    pub fn stop(&self, cause: StopCause) {
        let code = match cause {
            StopCause::Cancelled => 1,
            StopCause::LeaseLost => 2,
        };
        let _ = self.cause.compare_exchange(0, code, Ordering::AcqRel, Ordering::Acquire);
        self.token.cancel();
    }

    pub fn cause(&self) -> StopCause {
        if self.cause.load(Ordering::Acquire) == 2 { StopCause::LeaseLost } else { StopCause::Cancelled }
    }
}

/// What this replica follows: sessions with local watchers, and the jobs it runs.
#[derive(Default)]
pub(super) struct Local {
    pub watchers: Mutex<HashMap<String, watch::Sender<Job>>>,
    pub held: Mutex<HashMap<String, Arc<Holding>>>,
}

/// Whether `fresh` is a later state than `old` (reads can race; a watcher
/// never goes back in time).
fn later(old: &Job, fresh: &Job) -> bool {
    if fresh.id != old.id {
        return fresh.id > old.id;
    }
    let (old_rank, fresh_rank) = (old.status.rank(), fresh.status.rank());
    fresh_rank > old_rank
        || (fresh_rank == old_rank && fresh != old && (fresh.contacts, fresh.groups) >= (old.contacts, old.groups))
}

impl Local {
    /// Hands a fresh read of a session's current job to its local watchers.
    pub fn deliver(&self, session: &str, fresh: Job) {
        let mut watchers = self.watchers.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(tx) = watchers.get(session) {
            if tx.receiver_count() == 0 {
                watchers.remove(session);
            } else {
                tx.send_if_modified(|old| {
                    let newer = later(old, &fresh);
                    if newer {
                        *old = fresh;
                    }
                    newer
                });
            }
        }
    }

    pub fn holding(&self, job: &str) -> Option<Arc<Holding>> {
        self.held.lock().unwrap_or_else(|p| p.into_inner()).get(job).cloned()
    }
}
