//! The documented JSON shapes: camelCase, every field present, `null` for
//! absent values, times as integer milliseconds, lowercase statuses.

use prost_types::Timestamp;
use serde::Serialize;

use crate::proto as pb;

pub(crate) fn millis(ts: Option<Timestamp>) -> Option<i64> {
    ts.map(|t| t.seconds.saturating_mul(1000).saturating_add(i64::from(t.nanos) / 1_000_000))
}

pub fn session_status(status: pb::SessionStatus) -> Option<&'static str> {
    match status {
        pb::SessionStatus::Unspecified => None,
        pb::SessionStatus::Stopped => Some("stopped"),
        pb::SessionStatus::Starting => Some("starting"),
        pb::SessionStatus::ScanQrCode => Some("scan_qr_code"),
        pb::SessionStatus::Working => Some("working"),
        pb::SessionStatus::Failed => Some("failed"),
    }
}

pub fn parse_session_status(raw: &str) -> Option<pb::SessionStatus> {
    [
        pb::SessionStatus::Stopped,
        pb::SessionStatus::Starting,
        pb::SessionStatus::ScanQrCode,
        pb::SessionStatus::Working,
        pb::SessionStatus::Failed,
    ]
    .into_iter()
    .find(|s| session_status(*s) == Some(raw))
}

fn job_status(status: pb::BackfillStatus) -> Option<&'static str> {
    match status {
        pb::BackfillStatus::Unspecified => None,
        pb::BackfillStatus::Queued => Some("queued"),
        pb::BackfillStatus::Running => Some("running"),
        pb::BackfillStatus::Succeeded => Some("succeeded"),
        pb::BackfillStatus::Failed => Some("failed"),
    }
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Session {
    pub id: String,
    pub organization_id: String,
    pub created_by_user_id: Option<String>,
    pub gateway_id: Option<String>,
    pub label: Option<String>,
    pub phone_number: Option<String>,
    pub wa_jid: Option<String>,
    pub wa_lid: Option<String>,
    pub status: Option<&'static str>,
    pub auto_read: bool,
    pub presence_typing: bool,
    pub is_admin_session: bool,
    pub rate_per_min: Option<i32>,
    pub rate_per_hour: Option<i32>,
    pub created_at: Option<i64>,
    pub updated_at: Option<i64>,
    pub last_connected_at: Option<i64>,
}

impl From<pb::Session> for Session {
    fn from(s: pb::Session) -> Self {
        Self {
            status: session_status(s.status()),
            id: s.id,
            organization_id: s.organization_id,
            created_by_user_id: s.created_by_user_id,
            gateway_id: s.gateway_id,
            label: s.label,
            phone_number: s.phone_number,
            wa_jid: s.wa_jid,
            wa_lid: s.wa_lid,
            auto_read: s.auto_read,
            presence_typing: s.presence_typing,
            is_admin_session: s.is_admin_session,
            rate_per_min: s.rate_per_min,
            rate_per_hour: s.rate_per_hour,
            created_at: millis(s.created_at),
            updated_at: millis(s.updated_at),
            last_connected_at: millis(s.last_connected_at),
        }
    }
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct BackfillJob {
    pub id: String,
    pub organization_id: String,
    pub session_id: String,
    pub status: Option<&'static str>,
    pub started_at: Option<i64>,
    pub finished_at: Option<i64>,
    pub contacts: i64,
    pub groups: i64,
    pub group_members: i64,
    pub error: Option<String>,
}

impl From<pb::BackfillJob> for BackfillJob {
    fn from(j: pb::BackfillJob) -> Self {
        Self {
            status: job_status(j.status()),
            id: j.id,
            organization_id: j.organization_id,
            session_id: j.session_id,
            started_at: millis(j.started_at),
            finished_at: millis(j.finished_at),
            contacts: j.contacts,
            groups: j.groups,
            group_members: j.group_members,
            error: j.error,
        }
    }
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Contact {
    pub jid: String,
    pub lid: Option<String>,
    pub phone_number: Option<String>,
    pub push_name: Option<String>,
    pub full_name: Option<String>,
    pub first_name: Option<String>,
    pub business_name: Option<String>,
}

impl From<pb::Contact> for Contact {
    fn from(c: pb::Contact) -> Self {
        Self {
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

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Participant {
    pub jid: String,
    pub lid: Option<String>,
    pub phone_number: Option<String>,
    pub is_admin: bool,
    pub is_super_admin: bool,
    pub display_name: Option<String>,
}

impl From<pb::Participant> for Participant {
    fn from(p: pb::Participant) -> Self {
        Self {
            jid: p.jid,
            lid: p.lid,
            phone_number: p.phone_number,
            is_admin: p.is_admin,
            is_super_admin: p.is_super_admin,
            display_name: p.display_name,
        }
    }
}

/// A stored group; its members are paged at `…/groups/{groupJid}/participants`.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Group {
    pub jid: String,
    pub name: Option<String>,
    pub topic: Option<String>,
    pub owner_jid: Option<String>,
    pub created_at: Option<i64>,
    pub is_announce: bool,
    pub is_locked: bool,
    pub addressing_mode: Option<String>,
    pub participant_count: i64,
}

impl From<pb::Group> for Group {
    fn from(g: pb::Group) -> Self {
        Self {
            jid: g.jid,
            name: g.name,
            topic: g.topic,
            owner_jid: g.owner_jid,
            created_at: millis(g.created_at),
            is_announce: g.is_announce,
            is_locked: g.is_locked,
            addressing_mode: g.addressing_mode,
            participant_count: g.participant_count,
        }
    }
}

/// The caller of an admin endpoint.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Caller {
    pub subject: String,
    /// When the caller's token stops being accepted (ms since the epoch).
    pub valid_until: Option<i64>,
}

impl From<pb::WhoAmIResponse> for Caller {
    fn from(w: pb::WhoAmIResponse) -> Self {
        Self { subject: w.subject, valid_until: millis(w.valid_until) }
    }
}

/// `{"data":[…],"nextCursor":…}`; `nextCursor` is `null` on the last page.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct PageOf<T> {
    pub data: Vec<T>,
    pub next_cursor: Option<String>,
}

/// A configured gateway: its session feed and its sessions by status.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Gateway {
    pub id: String,
    pub host_url: String,
    pub feed: &'static str,
    pub sessions: i64,
    pub last_snapshot_at: Option<i64>,
    pub last_event_at: Option<i64>,
    pub last_error: Option<String>,
    pub follower: Option<String>,
    pub status_counts: std::collections::BTreeMap<String, i64>,
    pub held_removals: i64,
}

pub fn feed_state(state: pb::FeedState) -> &'static str {
    match state {
        pb::FeedState::Unspecified | pb::FeedState::Connecting => "connecting",
        pb::FeedState::Syncing => "syncing",
        pb::FeedState::Live => "live",
        pb::FeedState::Unreachable => "unreachable",
        pb::FeedState::Unsupported => "unsupported",
    }
}

impl From<pb::Gateway> for Gateway {
    fn from(g: pb::Gateway) -> Self {
        Self {
            feed: feed_state(g.feed()),
            id: g.id,
            host_url: g.host_url,
            sessions: g.sessions,
            last_snapshot_at: millis(g.last_snapshot_at),
            last_event_at: millis(g.last_event_at),
            last_error: g.last_error,
            follower: g.follower,
            status_counts: g.status_counts.into_iter().collect(),
            held_removals: g.held_removals,
        }
    }
}

/// `{"data":[…]}`: a list that is never paged.
#[derive(Debug, Serialize)]
pub struct ListOf<T> {
    pub data: Vec<T>,
}
