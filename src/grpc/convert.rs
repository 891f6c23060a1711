//! proto <-> domain conversions. Requests become domain values through
//! `TryFrom` (a bad field is INVALID_ARGUMENT here, before any domain code
//! runs); domain values become proto messages through `From`.

use prost_types::Timestamp;

use super::status::InvalidField;
use crate::backfill::{Job, JobStatus};
use crate::directory::{Contact, GroupSummary, JidKind, Participant, check_jid};
use crate::proto::admin as pb;
use crate::sessions::{self, IdError, Session, SessionFilter, SessionId, SessionStatus};
use crate::time::UnixMillis;

pub fn timestamp(ms: UnixMillis) -> Timestamp {
    Timestamp { seconds: ms.div_euclid(1000), nanos: (ms.rem_euclid(1000) * 1_000_000) as i32 }
}

fn invalid(field: &'static str, message: impl ToString) -> InvalidField {
    InvalidField { field, message: message.to_string() }
}

pub(super) fn optional_id(field: &'static str, raw: String) -> Result<Option<String>, InvalidField> {
    if raw.is_empty() {
        return Ok(None);
    }
    sessions::check_id_field(field, &raw).map_err(|e: IdError| invalid(field, e))?;
    Ok(Some(raw))
}

pub fn session_id(raw: &str) -> Result<SessionId, InvalidField> {
    SessionId::parse(raw).map_err(|e| invalid("session_id", e))
}

pub fn group_jid(raw: &str) -> Result<&str, InvalidField> {
    check_jid(JidKind::Group, raw).map_err(|e| invalid("group_jid", e))?;
    Ok(raw)
}

pub(super) fn session_status_from_pb(raw: i32) -> Result<Option<SessionStatus>, InvalidField> {
    match pb::SessionStatus::try_from(raw) {
        Ok(pb::SessionStatus::Unspecified) => Ok(None),
        Ok(pb::SessionStatus::Stopped) => Ok(Some(SessionStatus::Stopped)),
        Ok(pb::SessionStatus::Starting) => Ok(Some(SessionStatus::Starting)),
        Ok(pb::SessionStatus::ScanQrCode) => Ok(Some(SessionStatus::ScanQrCode)),
        Ok(pb::SessionStatus::Working) => Ok(Some(SessionStatus::Working)),
        Ok(pb::SessionStatus::Failed) => Ok(Some(SessionStatus::Failed)),
        Err(_) => Err(invalid("status", format!("unknown session status {raw}"))),
    }
}

pub(super) fn session_status_to_pb(status: SessionStatus) -> pb::SessionStatus {
    match status {
        SessionStatus::Stopped => pb::SessionStatus::Stopped,
        SessionStatus::Starting => pb::SessionStatus::Starting,
        SessionStatus::ScanQrCode => pb::SessionStatus::ScanQrCode,
        SessionStatus::Working => pb::SessionStatus::Working,
        SessionStatus::Failed => pb::SessionStatus::Failed,
    }
}

/// A domain value as the admin protocol carries it. The generated types
/// (gateway-rest's) and the domain's (wa-gateway-core's) both belong to other
/// crates, so this is the binary's own trait rather than `From`.
pub trait ToProto {
    type Proto;
    fn to_proto(self) -> Self::Proto;
}

/// A `ListSessions` request as the domain's query, its fields checked.
pub fn list_sessions_query(req: pb::ListSessionsRequest) -> Result<sessions::ListSessions, InvalidField> {
    Ok(sessions::ListSessions {
        limit: req.limit.map(i64::from),
        cursor: Some(req.cursor).filter(|c| !c.is_empty()),
        filter: SessionFilter {
            organization_id: optional_id("organization_id", req.organization_id)?,
            status: session_status_from_pb(req.status)?,
            gateway_id: optional_id("gateway_id", req.gateway_id)?,
        },
        unless_revision: Some(req.if_none_match).filter(|etag| !etag.is_empty()),
    })
}

impl ToProto for Session {
    type Proto = pb::Session;
    fn to_proto(self) -> pb::Session {
        let s = self;
        pb::Session {
            id: s.id.as_str().to_owned(),
            organization_id: s.organization_id,
            created_by_user_id: s.created_by_user_id,
            gateway_id: s.gateway_id,
            label: s.label,
            phone_number: s.phone_number,
            wa_jid: s.wa_jid,
            wa_lid: s.wa_lid,
            status: session_status_to_pb(s.status).into(),
            auto_read: s.auto_read,
            presence_typing: s.presence_typing,
            is_admin_session: s.is_admin_session,
            rate_per_min: s.rate_per_min,
            rate_per_hour: s.rate_per_hour,
            created_at: Some(timestamp(s.created_at)),
            updated_at: Some(timestamp(s.updated_at)),
            last_connected_at: s.last_connected_at.map(timestamp),
        }
    }
}

fn job_status_to_pb(status: JobStatus) -> pb::BackfillStatus {
    match status {
        JobStatus::Queued => pb::BackfillStatus::Queued,
        JobStatus::Running => pb::BackfillStatus::Running,
        JobStatus::Succeeded => pb::BackfillStatus::Succeeded,
        JobStatus::Failed => pb::BackfillStatus::Failed,
    }
}

fn count(n: u64) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}

impl ToProto for Job {
    type Proto = pb::BackfillJob;
    fn to_proto(self) -> pb::BackfillJob {
        let job = self;
        pb::BackfillJob {
            id: job.id,
            organization_id: job.organization_id,
            session_id: job.session_id,
            status: job_status_to_pb(job.status).into(),
            started_at: Some(timestamp(job.started_at)),
            finished_at: job.finished_at.map(timestamp),
            contacts: count(job.contacts),
            groups: count(job.groups),
            group_members: count(job.group_members),
            error: job.error,
        }
    }
}

impl ToProto for Contact {
    type Proto = pb::Contact;
    fn to_proto(self) -> pb::Contact {
        let c = self;
        pb::Contact {
            jid: c.jid,
            lid: c.lid,
            phone_number: c.phone_number,
            push_name: c.push_name,
            full_name: c.full_name,
            first_name: c.first_name,
            business_name: c.business_name,
        }
    }
}

impl ToProto for Participant {
    type Proto = pb::Participant;
    fn to_proto(self) -> pb::Participant {
        let p = self;
        pb::Participant {
            jid: p.jid,
            lid: p.lid,
            phone_number: p.phone_number,
            is_admin: p.is_admin,
            is_super_admin: p.is_super_admin,
            display_name: p.display_name,
        }
    }
}

impl ToProto for GroupSummary {
    type Proto = pb::Group;
    fn to_proto(self) -> pb::Group {
        let g = self;
        let info = g.info;
        pb::Group {
            jid: info.jid,
            name: info.name,
            topic: info.topic,
            owner_jid: info.owner_jid,
            created_at: info.created_at.map(timestamp),
            is_announce: info.is_announce,
            is_locked: info.is_locked,
            addressing_mode: info.addressing_mode,
            participant_count: count(g.participant_count),
        }
    }
}
