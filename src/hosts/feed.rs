//! The session feed over gRPC: `WatchSessions` messages turned into the
//! domain's [`FeedMessage`], each record checked at this boundary. A record
//! that breaks a rule is refused on its own; a message over the contract's
//! limits ends the stream (its remainder cannot be trusted).

use async_trait::async_trait;

use super::error::from_status;
use crate::proto::host as pb;
use crate::sessions::MAX_SESSION_TEXT_LEN;
use crate::sessions::model::{Session, SessionId, SessionStatus, check_id};
use wa_gateway_core::feed::{FeedMessage, Refusal, Refused};
use wa_gateway_core::hosts::{FeedStream, HostError};

/// Most records (upserted and removed) one feed message may carry.
pub const MAX_FEED_RECORDS: usize = 5_000;

pub struct Feed {
    pub(super) stream: tonic::Streaming<pb::WatchSessionsResponse>,
}

#[async_trait]
impl FeedStream for Feed {
    async fn next(&mut self) -> Result<Option<FeedMessage>, HostError> {
        let Some(message) = self.stream.message().await.map_err(from_status)? else { return Ok(None) };
        let records = message.upserted.len() + message.removed.len();
        if records > MAX_FEED_RECORDS {
            return Err(HostError::InvalidData(format!(
                "a feed message of {records} records; at most {MAX_FEED_RECORDS} are allowed"
            )));
        }
        Ok(Some(FeedMessage {
            upserted: message.upserted.into_iter().map(hosted).collect(),
            removed: message
                .removed
                .into_iter()
                .map(|id| SessionId::parse_owned(id).map_err(|_| Refused::new(None, Refusal::InvalidId)))
                .collect(),
            snapshot_complete: message.snapshot_complete,
        }))
    }
}

fn status(raw: i32) -> Option<SessionStatus> {
    match pb::HostedSessionStatus::try_from(raw).ok()? {
        pb::HostedSessionStatus::Unspecified => None,
        pb::HostedSessionStatus::Stopped => Some(SessionStatus::Stopped),
        pb::HostedSessionStatus::Starting => Some(SessionStatus::Starting),
        pb::HostedSessionStatus::ScanQrCode => Some(SessionStatus::ScanQrCode),
        pb::HostedSessionStatus::Working => Some(SessionStatus::Working),
        pb::HostedSessionStatus::Failed => Some(SessionStatus::Failed),
    }
}

/// One hosted record as a session (its gateway is set by the follower).
pub fn hosted(record: pb::HostedSession) -> Result<Session, Refused> {
    let id = SessionId::parse_owned(record.id).map_err(|_| Refused::new(None, Refusal::InvalidId))?;
    let refuse = |reason| Refused::new(Some(id.clone()), reason);
    if check_id("organization id", &record.organization_id).is_err()
        || record.created_by_user_id.as_deref().is_some_and(|user| check_id("user id", user).is_err())
    {
        return Err(refuse(Refusal::InvalidId));
    }
    let status = status(record.status).ok_or_else(|| refuse(Refusal::UnspecifiedStatus))?;
    let texts = [&record.label, &record.phone_number, &record.wa_jid, &record.wa_lid];
    let bad_text = texts.iter().any(|t| t.as_ref().is_some_and(|t| t.len() > MAX_SESSION_TEXT_LEN));
    let bad_rate = [record.rate_per_min, record.rate_per_hour].iter().any(|r| r.is_some_and(|r| r < 0));
    let bad_time =
        record.created_at_ms < 0 || record.updated_at_ms < 0 || record.last_connected_at_ms.is_some_and(|t| t < 0);
    if bad_text || bad_rate || bad_time {
        return Err(refuse(Refusal::InvalidField));
    }
    let text = |t: Option<String>| t.filter(|t| !t.is_empty());
    Ok(Session {
        id,
        organization_id: record.organization_id,
        created_by_user_id: record.created_by_user_id,
        gateway_id: None,
        label: text(record.label),
        phone_number: text(record.phone_number),
        wa_jid: text(record.wa_jid),
        wa_lid: text(record.wa_lid),
        status,
        auto_read: record.auto_read,
        presence_typing: record.presence_typing,
        is_admin_session: record.is_admin_session,
        rate_per_min: record.rate_per_min,
        rate_per_hour: record.rate_per_hour,
        created_at: record.created_at_ms,
        updated_at: record.updated_at_ms,
        last_connected_at: record.last_connected_at_ms,
    })
}
