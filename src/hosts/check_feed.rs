//! `host-check`'s look at a host's session feed (`WatchSessions`): the
//! snapshot completes within the bound, every record is one the directory
//! would take, ids are unique within the snapshot, messages stay within the
//! contract's limits, and (when asked to wait) a change follows.

use std::collections::HashSet;
use std::time::Duration;

use tonic::transport::Channel;

use super::feed::{MAX_FEED_RECORDS, hosted};
use super::finding::Finding;
use crate::proto::host::{self as pb, session_host_service_client::SessionHostServiceClient};
use crate::time::now_millis;
use wa_gateway_core::feed::MAX_FUTURE_MS;

/// Checks the feed; `change_wait` is how long to wait for a change after the snapshot.
pub async fn check_feed(
    client: &mut SessionHostServiceClient<Channel>,
    stall: Duration,
    change_wait: Option<Duration>,
) -> Finding {
    let mut finding = Finding::new("session feed");
    let opened = tokio::time::timeout(stall, client.watch_sessions(pb::WatchSessionsRequest {})).await;
    let mut stream = match opened {
        Err(_) => return finding.failing(format!("WatchSessions did not answer within {stall:?}")),
        Ok(Err(status)) if status.code() == tonic::Code::Unimplemented => {
            finding.summary = "no feed (UNIMPLEMENTED): the directory keeps this gateway's sessions as imported".into();
            return finding;
        }
        Ok(Err(status)) => {
            return finding.failing(format!("WatchSessions answered {:?} ({})", status.code(), status.message()));
        }
        Ok(Ok(response)) => response.into_inner(),
    };
    let (mut ids, mut messages, mut records) = (HashSet::new(), 0usize, 0usize);
    let deadline = tokio::time::Instant::now() + stall;
    loop {
        let message = match tokio::time::timeout_at(deadline, stream.message()).await {
            Err(_) => return finding.failing(format!("the snapshot did not complete within {stall:?}")),
            Ok(Err(status)) => {
                return finding.failing(format!("the stream failed: {:?} ({})", status.code(), status.message()));
            }
            Ok(Ok(None)) => return finding.failing("the stream ended before the snapshot completed".into()),
            Ok(Ok(Some(message))) => message,
        };
        messages += 1;
        records += message.upserted.len();
        check_message(&mut finding, &message, &mut ids);
        if message.snapshot_complete {
            break;
        }
    }
    finding.summary = format!("a snapshot of {} session(s) in {messages} message(s)", ids.len());
    if records != ids.len() {
        finding.summary.push_str(&format!(", {} record(s) repeated", records - ids.len()));
    }
    if let Some(wait) = change_wait {
        match tokio::time::timeout(wait, stream.message()).await {
            Ok(Ok(Some(change))) => {
                check_message(&mut finding, &change, &mut HashSet::new());
                finding.summary.push_str("; a change followed");
            }
            Ok(Ok(None)) => {
                finding.problem("the stream ended after the snapshot; it should stay open for changes".into())
            }
            Ok(Err(status)) => finding.problem(format!("the stream failed after the snapshot: {:?}", status.code())),
            Err(_) => finding.problem(format!("no change arrived within {wait:?} after the snapshot")),
        }
    }
    finding
}

fn check_message(finding: &mut Finding, message: &pb::WatchSessionsResponse, ids: &mut HashSet<String>) {
    let count = message.upserted.len() + message.removed.len();
    if count > MAX_FEED_RECORDS {
        finding.problem(format!("a message of {count} records (at most {MAX_FEED_RECORDS})"));
    }
    let latest = now_millis().saturating_add(MAX_FUTURE_MS);
    for record in &message.upserted {
        let id = record.id.clone();
        if !ids.insert(id.clone()) {
            finding.problem(format!("session {id:?} twice in one snapshot"));
        }
        if record.updated_at_ms > latest {
            finding.problem(format!("session {id:?} is dated more than a day ahead"));
        }
        if let Err(refused) = hosted(record.clone()) {
            finding.problem(format!("session {id:?} would be refused: {}", refused.reason.as_str()));
        }
    }
}
