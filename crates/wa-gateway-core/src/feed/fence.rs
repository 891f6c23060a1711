//! Cluster mode's guard on a follower's writes.

use std::sync::{Mutex, PoisonError};

use tokio::time::Instant;

/// Until when a follower may write: its last renewal plus the lease, less
/// one renewal period of margin.
#[derive(Debug)]
pub(crate) struct Fence {
    until: Mutex<Instant>,
}

impl Fence {
    pub(crate) fn new(until: Instant) -> Self {
        Self { until: Mutex::new(until) }
    }

    pub(crate) fn extend(&self, until: Instant) {
        *self.until.lock().unwrap_or_else(PoisonError::into_inner) = until;
    }

    /// Whether writes may go on.
    pub(crate) fn holds(&self) -> bool {
        Instant::now() < *self.until.lock().unwrap_or_else(PoisonError::into_inner)
    }
}
