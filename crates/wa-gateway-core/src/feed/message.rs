//! What a session feed brings, as the domain sees it: records already
//! turned into [`Session`]s (or refused, with the reason), removed ids, and
//! the end of the opening snapshot.

use crate::sessions::model::{Session, SessionId};

/// One message of a feed.
#[derive(Debug, Clone, Default)]
pub struct FeedMessage {
    /// Whole records, in the host's order; `gateway_id` is not yet set.
    pub upserted: Vec<Result<Session, Refused>>,
    /// Ids the host no longer holds; an invalid one is refused.
    pub removed: Vec<Result<SessionId, Refused>>,
    pub snapshot_complete: bool,
}

/// A record the directory did not take, and why. The reason is a closed set
/// (a metric label); the record's content is never logged.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refused {
    /// The record's id when it was a valid one: a refused record inside a
    /// snapshot still counts as present.
    pub id: Option<SessionId>,
    pub reason: Refusal,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Refusal {
    /// The id (or the organization id) is not a valid id.
    InvalidId,
    /// The record's status is unspecified.
    UnspecifiedStatus,
    /// Another field breaks the session's rules (a negative rate, …).
    InvalidField,
    /// `updated_at_ms` is more than a day ahead of this replica's clock.
    FutureDate,
    /// The record would move a stored session to another organization.
    OrganizationMove,
    /// A `removed` id of a session stored with another gateway.
    RemovedElsewhere,
}

impl Refusal {
    pub const ALL: [Self; 6] = [
        Self::InvalidId,
        Self::UnspecifiedStatus,
        Self::InvalidField,
        Self::FutureDate,
        Self::OrganizationMove,
        Self::RemovedElsewhere,
    ];

    /// The metric label.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::InvalidId => "invalid_id",
            Self::UnspecifiedStatus => "unspecified_status",
            Self::InvalidField => "invalid_field",
            Self::FutureDate => "future_date",
            Self::OrganizationMove => "organization_move",
            Self::RemovedElsewhere => "removed_elsewhere",
        }
    }
}

impl Refused {
    pub fn new(id: Option<SessionId>, reason: Refusal) -> Self {
        Self { id, reason }
    }
}
