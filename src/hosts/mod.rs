//! Session hosts: the gateway nodes that hold live WhatsApp connections.
//! One lazily connected `SessionHostService` client per gateway id, and the
//! conversion of what hosts stream into validated domain values.

pub mod check;
mod check_feed;
mod convert;
mod error;
pub mod feed;
mod finding;
mod groups;
pub mod sim;
pub mod sim_feed;

use std::collections::HashMap;
use std::time::Duration;

use tonic::transport::Channel;

use async_trait::async_trait;

use crate::directory::{Contact, Group};
use crate::proto::host::{self as pb, session_host_service_client::SessionHostServiceClient};
use crate::sessions::model::SessionId;
use crate::tls::ClientTls;

pub use convert::Invalid;
pub use error::{HostError, MAX_HOST_MESSAGE_BYTES};
use error::{from_status, invalid_data};
pub use groups::{GroupBatches, MEMBERS_PER_CHUNK};
pub use wa_gateway_core::hosts::{FeedStream, HostBatches, SessionHost, SessionHosts};

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
    clients: HashMap<String, HostClient>,
}

/// A host message, as decoded and validated for a backfill, for the fuzzer.
#[cfg(fuzzing)]
pub fn fuzz_message(bytes: &[u8]) {
    use prost::Message;
    if let Ok(message) = pb::StreamContactsResponse::decode(bytes) {
        let _ = convert::contacts(message);
    }
    if let Ok(message) = groups::EncodedGroups::decode(bytes) {
        for encoded in message.groups {
            if let Ok(group) = pb::Group::decode(encoded) {
                let _ = convert::group(group);
            }
        }
    }
}

/// A lazily connecting channel with the limits every host call gets.
fn channel(endpoint: tonic::transport::Endpoint) -> Channel {
    endpoint
        .tcp_keepalive(Some(Duration::from_secs(30)))
        .http2_keep_alive_interval(Duration::from_secs(30))
        .keep_alive_timeout(Duration::from_secs(10))
        .keep_alive_while_idle(false)
        .connect_lazy()
}

/// A client on `channel` that accepts host messages up to the limit.
fn client_on(channel: Channel) -> SessionHostServiceClient<Channel> {
    SessionHostServiceClient::new(channel).max_decoding_message_size(MAX_HOST_MESSAGE_BYTES)
}

impl HostRegistry {
    /// Parses `GATEWAY_ID=URL` entries. Connections are made on first use;
    /// `https://` URLs use `tls`.
    pub fn from_specs<S: AsRef<str>>(specs: &[S], tls: &ClientTls) -> Result<Self, HostConfigError> {
        let mut clients = HashMap::new();
        for spec in specs {
            let spec = spec.as_ref().trim();
            let (gateway, url) = spec.split_once('=').ok_or_else(|| HostConfigError::Syntax(spec.to_owned()))?;
            let (gateway, url) = (gateway.trim(), url.trim());
            crate::sessions::check_id_field("gateway id", gateway)
                .map_err(|e| HostConfigError::BadUrl(gateway.to_owned(), e.to_string()))?;
            let endpoint = tls.endpoint(url).map_err(|e| HostConfigError::BadUrl(gateway.to_owned(), e.to_string()))?;
            let channel = channel(endpoint);
            let host = HostClient {
                inner: client_on(channel.clone()),
                channel,
                gateway: gateway.into(),
                url: without_credentials(url).into(),
            };
            if clients.insert(gateway.to_owned(), host).is_some() {
                return Err(HostConfigError::Duplicate(gateway.to_owned()));
            }
        }
        Ok(Self { clients })
    }

    pub fn client(&self, gateway: &str) -> Option<HostClient> {
        self.clients.get(gateway).cloned()
    }

    pub fn gateways(&self) -> impl Iterator<Item = &str> {
        self.clients.keys().map(String::as_str)
    }
}

impl SessionHosts for HostRegistry {
    fn host(&self, gateway: &str) -> Option<Box<dyn SessionHost>> {
        self.client(gateway).map(|client| Box::new(client) as Box<dyn SessionHost>)
    }

    fn gateways(&self) -> Vec<String> {
        let mut ids: Vec<String> = self.clients.keys().cloned().collect();
        ids.sort_unstable();
        ids
    }
}

/// `url` without a `user:password@` part, for operators' eyes.
fn without_credentials(url: &str) -> String {
    match url.split_once("://") {
        Some((scheme, rest)) => {
            let (authority, path) = rest.split_at(rest.find('/').unwrap_or(rest.len()));
            let host = authority.rsplit_once('@').map_or(authority, |(_, host)| host);
            format!("{scheme}://{host}{path}")
        }
        None => url.to_owned(),
    }
}

/// A client of one session host.
#[derive(Clone)]
pub struct HostClient {
    inner: SessionHostServiceClient<Channel>,
    /// The client's channel, for the groups stream's own call.
    channel: Channel,
    gateway: std::sync::Arc<str>,
    url: std::sync::Arc<str>,
}

/// Batches from a host stream, each validated, with a stall timeout.
pub struct Batches<M, T> {
    stream: tonic::Streaming<M>,
    stall: Duration,
    kind: &'static str,
    /// Items received so far on this stream, to name a bad one by position.
    items: usize,
    convert: fn(M) -> Result<Vec<T>, Invalid>,
}

impl<M, T> Batches<M, T> {
    /// The next batch; `None` when the host ended the stream cleanly.
    pub async fn next(&mut self) -> Result<Option<Vec<T>>, HostError> {
        let message = match tokio::time::timeout(self.stall, self.stream.message()).await {
            Err(_) => return Err(HostError::Stalled(self.stall)),
            Ok(Err(status)) => return Err(from_status(status)),
            Ok(Ok(None)) => return Ok(None),
            Ok(Ok(Some(message))) => message,
        };
        let batch = (self.convert)(message).map_err(|invalid| invalid_data(self.kind, self.items, invalid))?;
        self.items += batch.len();
        Ok(Some(batch))
    }
}

async fn open<M>(
    stall: Duration,
    call: impl std::future::Future<Output = Result<tonic::Response<tonic::Streaming<M>>, tonic::Status>>,
) -> Result<tonic::Streaming<M>, HostError> {
    match tokio::time::timeout(stall + Duration::from_secs(5), call).await {
        Err(_) => Err(HostError::Stalled(stall)),
        Ok(result) => Ok(result.map_err(from_status)?.into_inner()),
    }
}

/// A call carrying the current trace context (`traceparent`), if any.
fn traced<T>(message: T) -> tonic::Request<T> {
    let mut request = tonic::Request::new(message);
    crate::telemetry::traces::inject(request.metadata_mut());
    request
}

impl HostClient {
    /// The gateway this host serves.
    pub fn gateway(&self) -> &str {
        &self.gateway
    }

    pub async fn contacts(
        &self,
        session: &SessionId,
        stall: Duration,
    ) -> Result<Batches<pb::StreamContactsResponse, Contact>, HostError> {
        let mut client = self.inner.clone();
        let request = traced(pb::StreamContactsRequest { session_id: session.to_string() });
        let stream = open(stall, client.stream_contacts(request)).await?;
        Ok(Batches { stream, stall, kind: "contacts", items: 0, convert: convert::contacts })
    }

    /// The session's groups, in chunks of at most [`MEMBERS_PER_CHUNK`]
    /// members (see `groups.rs`).
    pub async fn groups(&self, session: &SessionId, stall: Duration) -> Result<GroupBatches, HostError> {
        let request = traced(pb::StreamJoinedGroupsRequest { session_id: session.to_string() });
        let stream = open(stall, groups::open(self.channel.clone(), request)).await?;
        Ok(GroupBatches::new(stream, stall))
    }
}

#[async_trait]
impl SessionHost for HostClient {
    fn gateway(&self) -> &str {
        HostClient::gateway(self)
    }

    async fn contacts(&self, session: &SessionId, stall: Duration) -> Result<Box<dyn HostBatches<Contact>>, HostError> {
        Ok(Box::new(HostClient::contacts(self, session, stall).await?))
    }

    async fn groups(&self, session: &SessionId, stall: Duration) -> Result<Box<dyn HostBatches<Group>>, HostError> {
        Ok(Box::new(HostClient::groups(self, session, stall).await?))
    }

    async fn watch_sessions(&self) -> Result<Box<dyn FeedStream>, HostError> {
        let mut client = self.inner.clone();
        let opened =
            tokio::time::timeout(FEED_OPEN_TIMEOUT, client.watch_sessions(traced(pb::WatchSessionsRequest {})));
        match opened.await {
            Err(_) => Err(HostError::Stalled(FEED_OPEN_TIMEOUT)),
            Ok(result) => Ok(Box::new(feed::Feed { stream: result.map_err(from_status)?.into_inner() })),
        }
    }

    fn url(&self) -> String {
        self.url.to_string()
    }
}

/// How long a host may take to answer the opening of its feed.
const FEED_OPEN_TIMEOUT: Duration = Duration::from_secs(30);

#[async_trait]
impl<M: Send + 'static, T: Send> HostBatches<T> for Batches<M, T> {
    async fn next(&mut self) -> Result<Option<Vec<T>>, HostError> {
        Batches::next(self).await
    }
}
