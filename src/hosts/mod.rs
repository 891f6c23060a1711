//! Session hosts: the gateway nodes that hold live WhatsApp connections.
//! One lazily connected `SessionHostService` client per gateway id, and the
//! conversion of what hosts stream into validated domain values.

mod convert;
pub mod sim;

use std::collections::HashMap;
use std::time::Duration;

use tonic::transport::{Channel, Endpoint};

use crate::backfill::{Contact, Group};
use crate::proto::host::{self as pb, session_host_service_client::SessionHostServiceClient};
use crate::sessions::SessionId;

/// Largest message accepted from a host (one batch).
const MAX_HOST_MESSAGE_BYTES: usize = 16 * 1024 * 1024;

#[derive(Debug, thiserror::Error)]
pub enum HostError {
    #[error("session not connected")]
    NotConnected,
    #[error("session host does not hold this session")]
    NotHeld,
    #[error("session host cannot backfill this session")]
    Unsupported,
    #[error("session host unavailable: {0}")]
    Unavailable(String),
    #[error("session host stalled: nothing received for {0:?}")]
    Stalled(Duration),
    #[error("session host sent invalid data: {0}")]
    InvalidData(String),
    #[error("session host failed: {0}")]
    Failed(String),
}

impl From<tonic::Status> for HostError {
    fn from(status: tonic::Status) -> Self {
        use tonic::Code;
        let message: String = status.message().chars().take(200).collect();
        match status.code() {
            Code::FailedPrecondition => Self::NotConnected,
            Code::NotFound => Self::NotHeld,
            Code::Unimplemented => Self::Unsupported,
            Code::Unavailable | Code::Cancelled | Code::Unknown | Code::Internal | Code::DeadlineExceeded => {
                Self::Unavailable(if message.is_empty() { format!("{:?}", status.code()) } else { message })
            }
            other => Self::Failed(format!("{other:?}: {message}")),
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum HostConfigError {
    #[error("--host {0:?}: expected GATEWAY_ID=URL")]
    Syntax(String),
    #[error("--host {0}: {1}")]
    BadUrl(String, String),
    #[error("--host {0}: gateway configured twice")]
    Duplicate(String),
}

/// Clients by gateway id.
#[derive(Clone, Default)]
pub struct HostRegistry {
    clients: HashMap<String, SessionHostServiceClient<Channel>>,
}

impl HostRegistry {
    /// Parses `GATEWAY_ID=URL` entries. Connections are made on first use.
    pub fn from_specs<S: AsRef<str>>(specs: &[S]) -> Result<Self, HostConfigError> {
        let mut clients = HashMap::new();
        for spec in specs {
            let spec = spec.as_ref().trim();
            let (gateway, url) = spec.split_once('=').ok_or_else(|| HostConfigError::Syntax(spec.to_owned()))?;
            let (gateway, url) = (gateway.trim(), url.trim());
            crate::sessions::check_id_field("gateway id", gateway)
                .map_err(|e| HostConfigError::BadUrl(gateway.to_owned(), e.to_string()))?;
            let endpoint = Endpoint::from_shared(url.to_owned())
                .map_err(|e| HostConfigError::BadUrl(gateway.to_owned(), e.to_string()))?
                .connect_timeout(Duration::from_secs(5))
                .tcp_keepalive(Some(Duration::from_secs(30)))
                .http2_keep_alive_interval(Duration::from_secs(30))
                .keep_alive_timeout(Duration::from_secs(10))
                .keep_alive_while_idle(false);
            let client = SessionHostServiceClient::new(endpoint.connect_lazy())
                .max_decoding_message_size(MAX_HOST_MESSAGE_BYTES);
            if clients.insert(gateway.to_owned(), client).is_some() {
                return Err(HostConfigError::Duplicate(gateway.to_owned()));
            }
        }
        Ok(Self { clients })
    }

    pub fn client(&self, gateway: &str) -> Option<HostClient> {
        self.clients.get(gateway).cloned().map(|inner| HostClient { inner })
    }

    pub fn gateways(&self) -> impl Iterator<Item = &str> {
        self.clients.keys().map(String::as_str)
    }
}

/// A client of one session host.
#[derive(Clone)]
pub struct HostClient {
    inner: SessionHostServiceClient<Channel>,
}

/// Batches from a host stream, each validated, with a stall timeout.
pub struct Batches<M, T> {
    stream: tonic::Streaming<M>,
    stall: Duration,
    convert: fn(M) -> Result<Vec<T>, String>,
}

impl<M, T> Batches<M, T> {
    /// The next batch; `None` when the host ended the stream cleanly.
    pub async fn next(&mut self) -> Result<Option<Vec<T>>, HostError> {
        match tokio::time::timeout(self.stall, self.stream.message()).await {
            Err(_) => Err(HostError::Stalled(self.stall)),
            Ok(Err(status)) => Err(status.into()),
            Ok(Ok(None)) => Ok(None),
            Ok(Ok(Some(message))) => (self.convert)(message).map(Some).map_err(HostError::InvalidData),
        }
    }
}

async fn open<M>(
    stall: Duration,
    call: impl std::future::Future<Output = Result<tonic::Response<tonic::Streaming<M>>, tonic::Status>>,
) -> Result<tonic::Streaming<M>, HostError> {
    match tokio::time::timeout(stall + Duration::from_secs(5), call).await {
        Err(_) => Err(HostError::Stalled(stall)),
        Ok(result) => Ok(result?.into_inner()),
    }
}

impl HostClient {
    pub async fn contacts(
        &self,
        session: &SessionId,
        stall: Duration,
    ) -> Result<Batches<pb::StreamContactsResponse, Contact>, HostError> {
        let mut client = self.inner.clone();
        let request = pb::StreamContactsRequest { session_id: session.to_string() };
        let stream = open(stall, client.stream_contacts(request)).await?;
        Ok(Batches { stream, stall, convert: convert::contacts })
    }

    pub async fn groups(
        &self,
        session: &SessionId,
        stall: Duration,
    ) -> Result<Batches<pb::StreamJoinedGroupsResponse, Group>, HostError> {
        let mut client = self.inner.clone();
        let request = pb::StreamJoinedGroupsRequest { session_id: session.to_string() };
        let stream = open(stall, client.stream_joined_groups(request)).await?;
        Ok(Batches { stream, stall, convert: convert::groups })
    }
}
