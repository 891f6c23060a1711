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
