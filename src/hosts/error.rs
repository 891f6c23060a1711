//! A host's gRPC answer read as a [`HostError`], and the size a host message
//! may reach.

pub use wa_gateway_core::hosts::HostError;

use super::convert::Invalid;

/// Largest message accepted from a host (one batch).
pub const MAX_HOST_MESSAGE_BYTES: usize = 16 * 1024 * 1024;

/// The domain's reading of a host's status.
pub fn from_status(status: tonic::Status) -> HostError {
    use tonic::Code;
    let message: String = status.message().chars().filter(|c| !c.is_control()).take(200).collect();
    let said = |fallback: &str| if message.is_empty() { fallback.to_owned() } else { message.clone() };
    match status.code() {
        Code::FailedPrecondition => HostError::NotConnected,
        Code::NotFound => HostError::NotHeld,
        Code::Unimplemented => HostError::Unsupported,
        Code::Unavailable => HostError::Unavailable(said("UNAVAILABLE")),
        Code::Cancelled | Code::Unknown => HostError::Broken(said("the stream was reset")),
        Code::DeadlineExceeded => HostError::DeadlineExceeded(said("DEADLINE_EXCEEDED")),
        Code::Internal | Code::DataLoss => HostError::Internal(said("INTERNAL")),
        Code::ResourceExhausted | Code::OutOfRange => {
            HostError::InvalidData(format!("a message exceeds {MAX_HOST_MESSAGE_BYTES} bytes ({message})"))
        }
        other => HostError::Refused(format!("{other:?}: {message}")),
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
