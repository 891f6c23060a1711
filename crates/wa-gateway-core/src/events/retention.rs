//! Pruning session events: older than the retention, or beyond the newest
//! `per_session` of one session. A prune finds what to delete with reads
//! (which never hold a writer of sessions up, on either backend), then
//! deletes at most one small batch in a short transaction of its own; the
//! loop runs batches back to back until it has caught up, then sleeps.
//! Every replica may prune: two prunes at once delete each event once.

use std::time::Duration;

use tokio_util::sync::CancellationToken;

use super::model::{Pruned, Retention};
use crate::store::port::Store;
use crate::time::now_millis;

/// How events are kept.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetentionPolicy {
    pub max_age: Duration,
    pub per_session: u32,
    /// Events deleted per transaction.
    pub batch: u32,
    /// The sleep between rounds once nothing is left to prune.
    pub every: Duration,
}

impl Default for RetentionPolicy {
    fn default() -> Self {
        Self {
            max_age: Duration::from_secs(30 * 86_400),
            per_session: 1_000,
            batch: 2_000,
            every: Duration::from_secs(60),
        }
    }
}

impl RetentionPolicy {
    fn now(&self) -> Retention {
        let age = i64::try_from(self.max_age.as_millis()).unwrap_or(i64::MAX);
        Retention {
            recorded_before: now_millis().saturating_sub(age),
            per_session: self.per_session,
            batch: self.batch,
        }
    }
}

/// One round: batches while a batch says more is left, or until `stop`.
/// A round ends once it has caught up, however fast new events come.
pub async fn prune_round(store: &Store, policy: &RetentionPolicy, stop: &CancellationToken) -> Pruned {
    let mut total = Pruned::default();
    while !stop.is_cancelled() {
        match store.prune_session_events(&policy.now()).await {
            Ok(pruned) => {
                total.by_age += pruned.by_age;
                total.by_count += pruned.by_count;
                total.checked += pruned.checked;
                metrics::counter!("wa_gateway_session_events_pruned_total", "why" => "age").increment(pruned.by_age);
                metrics::counter!("wa_gateway_session_events_pruned_total", "why" => "count")
                    .increment(pruned.by_count);
                if !pruned.more {
                    break;
                }
                // Let writers in between batches.
                tokio::task::yield_now().await;
            }
            Err(error) => {
                tracing::warn!(%error, "pruning session events failed; trying again next round");
                break;
            }
        }
    }
    total
}

/// Prunes every `policy.every` until `stop`, the first time one interval
/// after the start (a starting replica has more urgent uses for its
/// connections).
pub async fn run(store: Store, policy: RetentionPolicy, stop: CancellationToken) {
    loop {
        tokio::select! {
            () = stop.cancelled() => return,
            () = tokio::time::sleep(policy.every) => {}
        }
        prune_round(&store, &policy, &stop).await;
    }
}
