//! What can go wrong with a session host, and the size a host message may
//! reach.

use std::time::Duration;

use super::convert::Invalid;

/// Largest message accepted from a host (one batch).
pub const MAX_HOST_MESSAGE_BYTES: usize = 16 * 1024 * 1024;

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

impl From<tonic::Status> for HostError {
    fn from(status: tonic::Status) -> Self {
        use tonic::Code;
        let message: String = status.message().chars().filter(|c| !c.is_control()).take(200).collect();
        let said = |fallback: &str| if message.is_empty() { fallback.to_owned() } else { message.clone() };
        match status.code() {
            Code::FailedPrecondition => Self::NotConnected,
            Code::NotFound => Self::NotHeld,
            Code::Unimplemented => Self::Unsupported,
            Code::Unavailable => Self::Unavailable(said("UNAVAILABLE")),
            Code::Cancelled | Code::Unknown => Self::Broken(said("the stream was reset")),
            Code::DeadlineExceeded => Self::DeadlineExceeded(said("DEADLINE_EXCEEDED")),
            Code::Internal | Code::DataLoss => Self::Internal(said("INTERNAL")),
            Code::ResourceExhausted | Code::OutOfRange => {
                Self::InvalidData(format!("a message exceeds {MAX_HOST_MESSAGE_BYTES} bytes ({message})"))
            }
            other => Self::Refused(format!("{other:?}: {message}")),
        }
    }
}

/// A host message's bad item (or the message itself), as the job's error
/// names it: `kind[position].field: problem`, counting from the stream's start.
pub(super) fn invalid_data(kind: &str, received_before: usize, invalid: Invalid) -> HostError {
    HostError::InvalidData(match invalid.index {
        Some(i) => format!("{kind}[{}].{}: {}", received_before + i, invalid.field, invalid.problem),
        None => format!("{kind} {}: {}", invalid.field, invalid.problem),
    })
}
