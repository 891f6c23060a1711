//! What an import reads back and writes through the store: the rows of the
//! [`crate::store::SessionImport`] port.

use super::model::Session;
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
}

/// One row to insert or update.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionWrite {
    pub session: Session,
    /// On update, keep the stored `created_at` (the line did not give one).
    pub keep_stored_created_at: bool,
}

/// What a whole-record upsert from a session host does to one session.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Upsert {
    /// New, or newer than the stored row: written.
    Written,
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
        _ => Upsert::Written,
    }
}
