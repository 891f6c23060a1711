//! Why a running job stops before its end, as a signal the job checks
//! between its store writes.
//!
//! Invariant: no store future of a job is dropped mid-statement. A cancel,
//! the deadline, shutdown or a lost lease never cut into a write: the job
//! stops waiting on the host, lets every write in flight run to its end, and
//! only then reports why it stopped. A connection is then never handed back
//! to its pool halfway through a transaction or a `COPY`.

use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

/// What stopped a job (the store is asked which error to report only once
/// nothing else runs).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stop {
    /// The board's stop token: a cancel, a removed session or a lost lease.
    Told,
    Shutdown,
    Deadline,
}

/// The signals a running job watches.
pub struct Stopping {
    pub told: CancellationToken,
    pub shutdown: CancellationToken,
    pub deadline: Instant,
}

impl Stopping {
    /// Resolves once the job must stop. Waiting only: dropping it is always safe.
    pub async fn signal(&self) -> Stop {
        tokio::select! {
            biased;
            () = self.told.cancelled() => Stop::Told,
            () = self.shutdown.cancelled() => Stop::Shutdown,
            () = tokio::time::sleep_until(self.deadline) => Stop::Deadline,
        }
    }

    /// Whether the job must stop now.
    pub fn now(&self) -> Option<Stop> {
        if self.told.is_cancelled() {
            Some(Stop::Told)
        } else if self.shutdown.is_cancelled() {
            Some(Stop::Shutdown)
        } else if Instant::now() >= self.deadline {
            Some(Stop::Deadline)
        } else {
            None
        }
    }

    /// Waits `wait`, unless the job must stop first.
    pub async fn sleep(&self, wait: std::time::Duration) -> Result<(), Stop> {
        tokio::select! {
            () = tokio::time::sleep(wait) => Ok(()),
            stop = self.signal() => Err(stop),
        }
    }
}
