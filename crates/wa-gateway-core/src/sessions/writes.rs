//! What an import reads back and writes through the store: the rows of the
//! [`crate::store::SessionImport`] port.

use super::model::{Session, SessionStatus};
use crate::time::UnixMillis;

/// What the store knows of one id when a line names it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Inspection {
    /// An earlier line of this import named the same id.
    pub repeated: bool,
    pub stored: Option<StoredVersion>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredVersion {
    pub organization_id: String,
    pub updated_at: UnixMillis,
    pub status: SessionStatus,
    pub gateway_id: Option<String>,
}

impl StoredVersion {
    pub fn of(session: &Session) -> Self {
        Self {
            organization_id: session.organization_id.clone(),
            updated_at: session.updated_at,
            status: session.status,
            gateway_id: session.gateway_id.clone(),
        }
    }
}

/// One row to insert or update.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionWrite {
    pub session: Session,
    /// On update, keep the stored `created_at` (the line did not give one).
    pub keep_stored_created_at: bool,
}

/// Who writes a gateway's sessions from its feed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FeedWriter<'a> {
    pub gateway: &'a str,
    /// Cluster mode: the follower's lease, by its tenure (a number no other
    /// lease of any gateway ever had). The write applies only while that
    /// lease is current: the store checks it inside the write's own
    /// transaction, and holds it there against a takeover until the commit.
    /// `None` when this process alone follows every gateway.
    pub tenure: Option<i64>,
}

/// What a whole-record upsert from a session host does to one session.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Upsert {
    /// New, or newer than the stored row: written. `entered` is the status
    /// the session entered when it appeared, changed status or moved (what
    /// makes a session event), `None` when neither changed.
    Written { entered: Option<SessionStatus> },
    /// No newer than the stored row (last writer wins on `updated_at`).
    NotNewer,
    /// The stored row belongs to another organization: refused.
    OtherOrganization,
}

/// The rule every backend applies to a host's record beside the stored row.
pub fn decide(stored: Option<&StoredVersion>, session: &Session) -> Upsert {
    match stored {
        Some(stored) if stored.organization_id != session.organization_id => Upsert::OtherOrganization,
        Some(stored) if stored.updated_at >= session.updated_at => Upsert::NotNewer,
        Some(stored) if stored.status == session.status && stored.gateway_id == session.gateway_id => {
            Upsert::Written { entered: None }
        }
        _ => Upsert::Written { entered: Some(session.status) },
    }
}
