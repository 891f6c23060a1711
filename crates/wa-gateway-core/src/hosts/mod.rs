//! Session hosts as the backfill sees them: the gateway nodes that hold live
//! WhatsApp connections, each streaming a session's contacts and groups in
//! validated batches. The gRPC client that implements [`SessionHost`] lives
//! with the binary; the domain knows only these traits and [`HostError`].

use std::time::Duration;

use async_trait::async_trait;

use crate::directory::{Contact, Group};
use crate::feed::message::FeedMessage;
use crate::sessions::model::SessionId;

/// The hosts configured on this replica, by gateway id.
pub trait SessionHosts: Send + Sync + 'static {
    /// The host that serves `gateway`, if this replica has one.
    fn host(&self, gateway: &str) -> Option<Box<dyn SessionHost>>;
    /// Every configured gateway id, sorted.
    fn gateways(&self) -> Vec<String>;
}

/// One session host.
#[async_trait]
pub trait SessionHost: Send + Sync {
    /// The gateway this host serves.
    fn gateway(&self) -> &str;

    /// The session's cached contacts. A stream that sends nothing for
    /// `stall` fails with [`HostError::Stalled`].
    async fn contacts(&self, session: &SessionId, stall: Duration) -> Result<Box<dyn HostBatches<Contact>>, HostError>;

    /// The session's joined groups with their members, in chunks small
    /// enough to keep memory bounded whatever a group's size.
    async fn groups(&self, session: &SessionId, stall: Duration) -> Result<Box<dyn HostBatches<Group>>, HostError>;

    /// The sessions this host holds: a snapshot, then changes
    /// ([`crate::feed`]). [`HostError::Unsupported`] when the host has no feed.
    async fn watch_sessions(&self) -> Result<Box<dyn FeedStream>, HostError>;

    /// Where the host is, without credentials: for operators.
    fn url(&self) -> String;
}

/// One open session feed.
#[async_trait]
pub trait FeedStream: Send {
    /// The next message, each record already checked for what needs no
    /// store; `None` when the host ended the stream.
    async fn next(&mut self) -> Result<Option<FeedMessage>, HostError>;
}

/// Batches of one host stream, each validated.
#[async_trait]
pub trait HostBatches<T>: Send {
    /// The next batch; `None` when the host ended the stream cleanly.
    async fn next(&mut self) -> Result<Option<Vec<T>>, HostError>;
}

/// What can go wrong with a session host.
#[derive(Debug, Clone, thiserror::Error)]
pub enum HostError {
    #[error("session not connected")]
    NotConnected,
    #[error("session host does not hold this session")]
    NotHeld,
    #[error("session host cannot backfill this session")]
    Unsupported,
    #[error("session host unavailable: {0}")]
    Unavailable(String),
    #[error("session host connection broken: {0}")]
    Broken(String),
    #[error("session host deadline exceeded: {0}")]
    DeadlineExceeded(String),
    #[error("session host internal error: {0}")]
    Internal(String),
    #[error("session host stalled: nothing received for {0:?}")]
    Stalled(Duration),
    #[error("session host sent invalid data: {0}")]
    InvalidData(String),
    #[error("session host refused the call: {0}")]
    Refused(String),
}

impl HostError {
    /// Whether trying the stream again may help: the host was unreachable,
    /// or the connection broke before anything arrived.
    pub fn is_transient(&self, received_anything: bool) -> bool {
        match self {
            Self::Unavailable(_) => true,
            Self::Broken(_) => !received_anything,
            _ => false,
        }
    }
}

#[cfg(test)]
pub(crate) mod fake;
