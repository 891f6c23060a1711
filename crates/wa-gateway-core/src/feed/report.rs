//! What a follower reports about its gateway.

use crate::time::UnixMillis;

/// Where a gateway's feed is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum FeedState {
    Connecting,
    /// The opening snapshot is arriving.
    Syncing,
    Live,
    Unreachable,
    /// The host answered UNIMPLEMENTED: it has no feed.
    Unsupported,
}

impl FeedState {
    pub const ALL: [Self; 5] = [Self::Connecting, Self::Syncing, Self::Live, Self::Unreachable, Self::Unsupported];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Connecting => "connecting",
            Self::Syncing => "syncing",
            Self::Live => "live",
            Self::Unreachable => "unreachable",
            Self::Unsupported => "unsupported",
        }
    }
}

/// One gateway as the view shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GatewayReport {
    pub id: String,
    pub host_url: String,
    pub feed: FeedState,
    pub last_snapshot_at: Option<UnixMillis>,
    pub last_event_at: Option<UnixMillis>,
    pub last_error: Option<String>,
    /// Sessions a held snapshot would remove.
    pub held_removals: usize,
}

/// One held snapshot, by a number no other hold of any gateway had: an
/// accept names the hold it accepts, so it never applies to a later one.
pub type HoldId = i64;

/// A fresh hold number.
pub(crate) fn new_hold_id() -> HoldId {
    use rand::Rng;
    rand::thread_rng().gen_range(1..i64::MAX)
}
