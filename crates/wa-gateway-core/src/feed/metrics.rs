//! The feed's metrics. Gateway ids are the configured ones (a closed set);
//! reasons and states are closed enums.

use std::time::Duration;

use super::message::Refusal;
use super::report::FeedState;
use crate::sessions::model::SessionStatus;
use crate::time::now_millis;

/// Every series of `gateway`, created at zero so dashboards and alerts see them.
pub fn register(gateway: &str) {
    for reason in Refusal::ALL {
        metrics::counter!("wa_gateway_feed_refused_total", "gateway" => gateway.to_owned(), "reason" => reason.as_str()).absolute(0);
    }
    for outcome in ["changed", "unchanged", "removed"] {
        metrics::counter!("wa_gateway_feed_records_total", "gateway" => gateway.to_owned(), "outcome" => outcome)
            .absolute(0);
    }
    for status in SessionStatus::ALL {
        metrics::counter!("wa_gateway_session_transitions_total", "gateway" => gateway.to_owned(), "to" => status.as_str())
            .absolute(0);
    }
    held(gateway, false);
    state(gateway, FeedState::Connecting);
}

/// A session of `gateway` entered `to` (appeared, changed status, or moved
/// here), as this gateway's feed wrote it.
pub(crate) fn transition(gateway: &str, to: SessionStatus) {
    metrics::counter!("wa_gateway_session_transitions_total", "gateway" => gateway.to_owned(), "to" => to.as_str())
        .increment(1);
}

pub(crate) fn state(gateway: &str, current: FeedState) {
    for feed in FeedState::ALL {
        let value = if feed == current { 1.0 } else { 0.0 };
        metrics::gauge!("wa_gateway_feed_state", "gateway" => gateway.to_owned(), "state" => feed.as_str()).set(value);
    }
}

/// This replica does not follow `gateway` (cluster mode): it reports no
/// state for it, so per-replica alerts look only at the follower.
pub(crate) fn not_followed(gateway: &str) {
    for feed in FeedState::ALL {
        metrics::gauge!("wa_gateway_feed_state", "gateway" => gateway.to_owned(), "state" => feed.as_str()).set(0.0);
    }
    held(gateway, false);
}

pub(crate) fn event(gateway: &str) {
    #[allow(clippy::cast_precision_loss)]
    let seconds = now_millis() as f64 / 1000.0;
    metrics::gauge!("wa_gateway_feed_last_event_timestamp_seconds", "gateway" => gateway.to_owned()).set(seconds);
}

pub(crate) fn applied(gateway: &str, changed: usize, unchanged: usize) {
    records(gateway, "changed", changed);
    records(gateway, "unchanged", unchanged);
}

pub(crate) fn removed(gateway: &str, removed: usize) {
    records(gateway, "removed", removed);
}

fn records(gateway: &str, outcome: &'static str, n: usize) {
    if n > 0 {
        metrics::counter!("wa_gateway_feed_records_total", "gateway" => gateway.to_owned(), "outcome" => outcome)
            .increment(n as u64);
    }
}

pub(crate) fn refused(gateway: &str, reason: Refusal) {
    metrics::counter!("wa_gateway_feed_refused_total", "gateway" => gateway.to_owned(), "reason" => reason.as_str())
        .increment(1);
}

pub(crate) fn held(gateway: &str, held: bool) {
    metrics::gauge!("wa_gateway_feed_held_snapshots", "gateway" => gateway.to_owned()).set(if held {
        1.0
    } else {
        0.0
    });
}

pub(crate) fn snapshot_seconds(gateway: &str, took: Duration) {
    metrics::histogram!("wa_gateway_feed_snapshot_seconds", "gateway" => gateway.to_owned()).record(took.as_secs_f64());
}
