//! The gateways view as the admin contract shapes it.

use crate::proto::admin as pb;
use wa_gateway_core::feed::{FeedState, GatewayView};

use super::convert::timestamp;

fn feed_state(state: FeedState) -> pb::FeedState {
    match state {
        FeedState::Connecting => pb::FeedState::Connecting,
        FeedState::Syncing => pb::FeedState::Syncing,
        FeedState::Live => pb::FeedState::Live,
        FeedState::Unreachable => pb::FeedState::Unreachable,
        FeedState::Unsupported => pb::FeedState::Unsupported,
    }
}

fn count(n: u64) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}

pub fn gateway(view: GatewayView) -> pb::Gateway {
    let sessions = count(view.sessions());
    let report = view.report;
    pb::Gateway {
        id: report.id,
        host_url: report.host_url,
        feed: feed_state(report.feed).into(),
        sessions,
        last_snapshot_at: report.last_snapshot_at.map(timestamp),
        last_event_at: report.last_event_at.map(timestamp),
        last_error: report.last_error,
        follower: view.follower,
        status_counts: view
            .status_counts
            .into_iter()
            .map(|(status, n)| (status.as_str().to_owned(), count(n)))
            .collect(),
        held_removals: count(report.held_removals as u64),
    }
}
