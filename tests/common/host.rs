//! A scripted SessionHostService for tests: real gRPC on 127.0.0.1:0, with
//! data, failures and pauses the test controls.

use std::pin::Pin;
use std::sync::{Arc, Mutex};

use tokio::sync::{mpsc, watch};
use tokio_stream::Stream;
use tokio_stream::wrappers::{ReceiverStream, TcpListenerStream};
use tonic::{Request, Response, Status};
use wa_gateway::proto::host::session_host_service_server::{SessionHostService, SessionHostServiceServer};
use wa_gateway::proto::host::*;

#[derive(Clone, Default)]
pub struct Script {
    pub contacts: Vec<Contact>,
    pub groups: Vec<Group>,
    pub batch: usize,
    /// Abort the contacts stream with UNAVAILABLE after this many contacts.
    pub fail_contacts_after: Option<usize>,
    /// Abort the groups stream with UNAVAILABLE after this many groups.
    pub fail_groups_after: Option<usize>,
    /// Hold every contacts batch after the first until the gate opens.
    pub gated: bool,
    /// After the items, keep sending empty batches until the caller leaves.
    pub endless: bool,
    /// Fail this many of the next stream calls with UNAVAILABLE before
    /// sending anything (a transient outage).
    pub unavailable_calls: usize,
    /// Sessions this host holds; others answer NOT_FOUND. `None` holds all.
    pub held: Option<Vec<String>>,
    /// Answer every stream call with this code.
    pub refuse: Option<tonic::Code>,
    /// Serve WatchSessions (otherwise it answers UNIMPLEMENTED).
    pub feed: bool,
    /// Sent as a completed snapshot at the start of every WatchSessions call.
    pub snapshot: Option<Vec<HostedSession>>,
}

#[derive(Clone)]
pub struct ScriptedHost {
    pub script: Arc<Mutex<Script>>,
    gate: watch::Sender<bool>,
    /// Stream calls received, of both kinds.
    pub calls: Arc<std::sync::atomic::AtomicUsize>,
    /// The `traceparent` each stream call carried ("" when none), in order.
    pub traceparents: Arc<Mutex<Vec<String>>>,
    /// The open WatchSessions stream, if any.
    feed: Arc<Mutex<Option<mpsc::Sender<Result<WatchSessionsResponse, Status>>>>>,
    /// WatchSessions calls answered with a stream.
    pub feed_opens: Arc<std::sync::atomic::AtomicUsize>,
}

/// A session as a host's feed reports it, created 2023-11-14.
pub fn hosted(id: &str, organization: &str, status: HostedSessionStatus, updated_at_ms: i64) -> HostedSession {
    HostedSession {
        id: id.into(),
        organization_id: organization.into(),
        status: status.into(),
        created_at_ms: 1_700_000_000_000,
        updated_at_ms,
        ..Default::default()
    }
}

/// What a connection out of step with its server looks like in sqlx's
/// errors, as they show in a replica's log.
pub const OUT_OF_STEP: [&str; 6] = [
    "unexpected message",
    "expected ParseComplete",
    "already a transaction in progress",
    "unexpected connection status",
    "CopyInResponse",
    "during COPY",
];

pub fn contact(i: usize, tag: &str) -> Contact {
    Contact {
        jid: format!("{i:05}@s.whatsapp.net"),
        lid: format!("{i}@lid"),
        phone_number: format!("{i:05}"),
        push_name: format!("{tag} {i}"),
        ..Default::default()
    }
}

pub fn group(i: usize, members: usize, tag: &str) -> Group {
    Group {
        jid: format!("g{i:04}@g.us"),
        name: format!("{tag} group {i}"),
        created_at_ms: 1_700_000_000_000,
        participants: (0..members)
            .map(|m| Participant { jid: format!("{m:05}@s.whatsapp.net"), is_admin: m == 0, ..Default::default() })
            .collect(),
        ..Default::default()
    }
}

type BoxStream<T> = Pin<Box<dyn Stream<Item = Result<T, Status>> + Send>>;

fn batches<T: Clone + Send + Sync + 'static, M: Send + 'static>(
    items: Vec<T>,
    batch: usize,
    fail_after: Option<usize>,
    mut gate: Option<watch::Receiver<bool>>,
    endless: bool,
    wrap: fn(Vec<T>) -> M,
) -> BoxStream<M> {
    let (tx, rx) = mpsc::channel(2);
    tokio::spawn(async move {
        let limit = fail_after.unwrap_or(usize::MAX).min(items.len());
        for (n, chunk) in items[..limit].chunks(batch.max(1)).enumerate() {
            if n > 0 {
                if let Some(gate) = gate.as_mut() {
                    if gate.wait_for(|open| *open).await.is_err() {
                        return;
                    }
                }
            }
            if tx.send(Ok(wrap(chunk.to_vec()))).await.is_err() {
                return;
            }
        }
        if fail_after.is_some() {
            let _ = tx.send(Err(Status::unavailable("scripted failure"))).await;
        }
        while endless {
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
            if tx.send(Ok(wrap(Vec::new()))).await.is_err() {
                return;
            }
        }
    });
    Box::pin(ReceiverStream::new(rx))
}

trait HasSession {
    fn session(&self) -> &str;
}

impl HasSession for StreamContactsRequest {
    fn session(&self) -> &str {
        &self.session_id
    }
}

impl HasSession for StreamJoinedGroupsRequest {
    fn session(&self) -> &str {
        &self.session_id
    }
}

#[tonic::async_trait]
impl SessionHostService for ScriptedHost {
    type StreamContactsStream = BoxStream<StreamContactsResponse>;
    type StreamJoinedGroupsStream = BoxStream<StreamJoinedGroupsResponse>;
    type WatchSessionsStream = BoxStream<WatchSessionsResponse>;

    async fn watch_sessions(
        &self,
        _request: Request<WatchSessionsRequest>,
    ) -> Result<Response<Self::WatchSessionsStream>, Status> {
        let script = self.script.lock().unwrap().clone();
        if let Some(code) = script.refuse {
            return Err(Status::new(code, "scripted refusal"));
        }
        if !script.feed {
            return Err(Status::unimplemented("no feed in this script"));
        }
        let (tx, rx) = mpsc::channel(64);
        if let Some(snapshot) = script.snapshot {
            let message = WatchSessionsResponse { upserted: snapshot, removed: vec![], snapshot_complete: true };
            tx.try_send(Ok(message)).unwrap();
        }
        *self.feed.lock().unwrap() = Some(tx);
        self.feed_opens.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        Ok(Response::new(Box::pin(ReceiverStream::new(rx))))
    }

    async fn stream_contacts(
        &self,
        request: Request<StreamContactsRequest>,
    ) -> Result<Response<Self::StreamContactsStream>, Status> {
        let s = self.admit(&request)?;
        let gate = s.gated.then(|| self.gate.subscribe());
        Ok(Response::new(batches(s.contacts, s.batch, s.fail_contacts_after, gate, s.endless, |contacts| {
            StreamContactsResponse { contacts }
        })))
    }

    async fn stream_joined_groups(
        &self,
        request: Request<StreamJoinedGroupsRequest>,
    ) -> Result<Response<Self::StreamJoinedGroupsStream>, Status> {
        let s = self.admit(&request)?;
        Ok(Response::new(batches(s.groups, s.batch, s.fail_groups_after, None, s.endless, |groups| {
            StreamJoinedGroupsResponse { groups }
        })))
    }
}

impl ScriptedHost {
    /// Counts the call and applies the script's held sessions and outages.
    fn admit<T: HasSession>(&self, request: &Request<T>) -> Result<Script, Status> {
        let session = request.get_ref().session();
        self.calls.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        let traceparent = request.metadata().get("traceparent").and_then(|v| v.to_str().ok()).unwrap_or("");
        self.traceparents.lock().unwrap().push(traceparent.to_owned());
        let mut script = self.script.lock().unwrap();
        if script.held.as_ref().is_some_and(|held| !held.iter().any(|h| h == session)) {
            return Err(Status::not_found("not held here"));
        }
        if let Some(code) = script.refuse {
            return Err(Status::new(code, "scripted refusal"));
        }
        if script.unavailable_calls > 0 {
            script.unavailable_calls -= 1;
            return Err(Status::unavailable("scripted outage"));
        }
        Ok(script.clone())
    }

    /// Serves on 127.0.0.1:0; returns the host and its URL.
    pub async fn start(script: Script) -> (Self, String) {
        Self::serve(script, None).await
    }

    /// Serves over TLS with `tls`; the URL names `localhost`.
    pub async fn start_tls(script: Script, tls: tonic::transport::ServerTlsConfig) -> (Self, String) {
        Self::serve(script, Some(tls)).await
    }

    async fn serve(script: Script, tls: Option<tonic::transport::ServerTlsConfig>) -> (Self, String) {
        let (gate, _) = watch::channel(false);
        let host = Self {
            script: Arc::new(Mutex::new(script)),
            gate,
            calls: Default::default(),
            traceparents: Default::default(),
            feed: Default::default(),
            feed_opens: Default::default(),
        };
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let url = match tls {
            Some(_) => format!("https://localhost:{port}"),
            None => format!("http://127.0.0.1:{port}"),
        };
        let mut builder = tonic::transport::Server::builder();
        if let Some(tls) = tls {
            builder = builder.tls_config(tls).unwrap();
        }
        let server = SessionHostServiceServer::new(host.clone());
        tokio::spawn(async move {
            builder.add_service(server).serve_with_incoming(TcpListenerStream::new(listener)).await.unwrap()
        });
        (host, url)
    }

    pub fn set(&self, f: impl FnOnce(&mut Script)) {
        f(&mut self.script.lock().unwrap());
    }

    /// Sends `message` on the open feed, waiting for one to open.
    pub async fn send(&self, message: WatchSessionsResponse) {
        let started = std::time::Instant::now();
        loop {
            let open = self.feed.lock().unwrap().clone();
            if let Some(tx) = open
                && tx.send(Ok(message.clone())).await.is_ok()
            {
                return;
            }
            assert!(started.elapsed() < std::time::Duration::from_secs(30), "no feed opened");
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        }
    }

    /// Sends `message` on the open feed if there is one with room, without
    /// waiting; whether it went. (A dropped change reaches the directory
    /// with the next snapshot, which the script's `snapshot` must hold.)
    pub fn offer(&self, message: WatchSessionsResponse) -> bool {
        let open = self.feed.lock().unwrap().clone();
        open.is_some_and(|tx| tx.try_send(Ok(message)).is_ok())
    }

    /// Ends the open feed with `status`.
    pub async fn break_feed(&self, status: Status) {
        let open = self.feed.lock().unwrap().take();
        if let Some(tx) = open {
            let _ = tx.send(Err(status)).await;
        }
    }

    /// Waits until the open feed's client goes away (it dropped the stream).
    pub async fn feed_dropped(&self) {
        let open = self.feed.lock().unwrap().clone();
        if let Some(tx) = open {
            tx.closed().await;
        }
    }

    /// Messages sent on the open feed that its client has not taken yet.
    pub fn feed_backlog(&self) -> usize {
        self.feed.lock().unwrap().as_ref().map_or(0, |tx| tx.max_capacity() - tx.capacity())
    }

    pub fn feed_opens(&self) -> usize {
        self.feed_opens.load(std::sync::atomic::Ordering::SeqCst)
    }

    pub fn open_gate(&self) {
        self.gate.send_replace(true);
    }

    pub fn close_gate(&self) {
        self.gate.send_replace(false);
    }
}
