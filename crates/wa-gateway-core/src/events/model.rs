//! A session's history as the domain sees it: one [`SessionEvent`] per change
//! of a stored session, its place in commit order ([`Position`]), and the
//! filters of the fleet's listing.

use std::fmt;
use std::str::FromStr;

use crate::sessions::model::{SessionId, SessionStatus};
use crate::time::UnixMillis;

/// What happened to the session.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum EventKind {
    Appeared,
    StatusChanged,
    Moved,
    Removed,
}

impl EventKind {
    pub const ALL: [EventKind; 4] = [Self::Appeared, Self::StatusChanged, Self::Moved, Self::Removed];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Appeared => "appeared",
            Self::StatusChanged => "status_changed",
            Self::Moved => "moved",
            Self::Removed => "removed",
        }
    }
}

impl FromStr for EventKind {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::ALL.into_iter().find(|k| k.as_str() == s).ok_or_else(|| format!("unknown event kind {s:?}"))
    }
}

/// Who wrote the change.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum EventSource {
    Feed,
    Import,
}

impl EventSource {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Feed => "feed",
            Self::Import => "import",
        }
    }
}

impl FromStr for EventSource {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "feed" => Ok(Self::Feed),
            "import" => Ok(Self::Import),
            other => Err(format!("unknown event source {other:?}")),
        }
    }
}

/// Where an event sits in commit order: the position of the transaction
/// that wrote it, then the event within that transaction. Every reader
/// that sees a position sees every position before it, on any replica.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Position {
    pub commit: i64,
    pub event: i64,
}

impl Position {
    /// Before every event.
    pub const START: Position = Position { commit: 0, event: 0 };
}

impl fmt::Display for Position {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{}", self.commit, self.event)
    }
}

impl FromStr for Position {
    type Err = ();
    fn from_str(s: &str) -> Result<Self, ()> {
        let (commit, event) = s.split_once('.').ok_or(())?;
        let position = Position { commit: commit.parse().map_err(|_| ())?, event: event.parse().map_err(|_| ())? };
        if position.commit < 0 || position.event < 0 {
            return Err(());
        }
        Ok(position)
    }
}

/// One change of a stored session.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionEvent {
    pub position: Position,
    pub session_id: String,
    pub organization_id: String,
    /// The gateway the session is on after the change (the one it left, for
    /// `removed`).
    pub gateway_id: Option<String>,
    pub kind: EventKind,
    pub from_status: Option<SessionStatus>,
    pub to_status: Option<SessionStatus>,
    pub from_gateway_id: Option<String>,
    /// The record's `updatedAt` (the removal's time for `removed`).
    pub changed_at: UnixMillis,
    /// When the change was stored.
    pub recorded_at: UnixMillis,
    pub source: EventSource,
}

/// Which events a listing returns; `None` matches everything.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct EventFilter {
    pub session_id: Option<SessionId>,
    pub organization_id: Option<String>,
    pub gateway_id: Option<String>,
    /// The status entered.
    pub status: Option<SessionStatus>,
    /// Recorded at or after this time.
    pub since: Option<UnixMillis>,
}

impl EventFilter {
    /// The query a listing cursor belongs to.
    pub fn scope(&self) -> String {
        format!(
            "session-events|session={}|org={}|gateway={}|status={}|since={}",
            self.session_id.as_ref().map(SessionId::as_str).unwrap_or(""),
            self.organization_id.as_deref().unwrap_or(""),
            self.gateway_id.as_deref().unwrap_or(""),
            self.status.map(SessionStatus::as_str).unwrap_or(""),
            self.since.map(|t| t.to_string()).unwrap_or_default(),
        )
    }
}

/// What pruning keeps.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Retention {
    /// Events recorded before this are pruned.
    pub recorded_before: UnixMillis,
    /// Events kept per session, the newest.
    pub per_session: u32,
    /// Most events one prune deletes.
    pub batch: u32,
}

/// What one prune did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Pruned {
    pub by_age: u64,
    pub by_count: u64,
    /// New events whose session's count was checked against the cap.
    pub checked: u64,
    /// A batch limit was reached: more may be left to prune or check.
    pub more: bool,
}

impl Pruned {
    pub fn total(&self) -> u64 {
        self.by_age + self.by_count
    }
}

/// Events after a position, or the news that some were pruned.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum After {
    Events(Vec<SessionEvent>),
    /// Events after the position have been pruned: resuming there would
    /// miss them.
    Gone,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn positions_order_by_commit_then_event_and_round_trip() {
        let a = Position { commit: 2, event: 90 };
        let b = Position { commit: 3, event: 10 };
        assert!(a < b);
        assert_eq!("2.90".parse::<Position>(), Ok(a));
        for bad in ["", "2", "2.", ".3", "a.b", "-1.2", "1.2.3"] {
            assert!(bad.parse::<Position>().is_err(), "{bad}");
        }
    }
}
