//! A simulated session host: deterministic contacts and groups for any
//! session id, served over the real `SessionHostService` protocol. The demo
//! and the tests use it, and it is a reference for teams writing real hosts.

use std::collections::HashSet;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::mpsc;
use tokio_stream::Stream;
use tokio_stream::wrappers::ReceiverStream;
use tonic::{Request, Response, Status};

use crate::proto::host::{self as pb, session_host_service_server::SessionHostService};

#[derive(Debug, Clone)]
pub struct SimConfig {
    pub contacts: usize,
    pub groups: usize,
    pub members_per_group: usize,
    /// Items per streamed batch.
    pub batch_size: usize,
    /// Pause before each batch.
    pub delay: Duration,
    /// Abort each stream with UNAVAILABLE after this many items.
    pub fail_after: Option<usize>,
    /// Sessions answered with FAILED_PRECONDITION `session not connected`.
    pub disconnected: HashSet<String>,
    /// The sessions this host holds; others answer NOT_FOUND. `None` holds all.
    pub held: Option<HashSet<String>>,
    /// The sessions it reports on `WatchSessions`; without them it answers
    /// UNIMPLEMENTED (it cannot list "every session id").
    pub feed: Option<super::sim_feed::SimFeed>,
}

impl Default for SimConfig {
    fn default() -> Self {
        Self {
            contacts: 200,
            groups: 20,
            members_per_group: 10,
            batch_size: 100,
            delay: Duration::ZERO,
            fail_after: None,
            disconnected: HashSet::new(),
            held: None,
            feed: None,
        }
    }
}

#[derive(Clone)]
pub struct SimHost {
    config: Arc<SimConfig>,
}

/// A stable 9-digit number per session id (FNV-1a), so every session has its
/// own phone numbers and the same ones on every run.
fn session_base(session: &str) -> u64 {
    let hash =
        session.bytes().fold(0xcbf2_9ce4_8422_2325_u64, |h, b| (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3));
    100_000_000 + hash % 800_000_000
}

pub fn contact(session: &str, i: usize) -> pb::Contact {
    let phone = format!("62{}{:07}", session_base(session), i);
    pb::Contact {
        jid: format!("{phone}@s.whatsapp.net"),
        lid: format!("{}{:07}@lid", session_base(session) + 7, i),
        phone_number: phone,
        push_name: format!("Contact {i}"),
        full_name: format!("Contact Number {i}"),
        first_name: "Contact".into(),
        business_name: if i % 10 == 0 { format!("Shop {i}") } else { String::new() },
    }
}

pub fn group(session: &str, g: usize, members: usize, contacts: usize) -> pb::Group {
    let participants = (0..members)
        .map(|m| {
            // Members overlap the contact list where it is long enough, and
            // are distinct within a group either way.
            let c = contact(session, (g * members + m) % contacts.max(members));
            pb::Participant {
                jid: c.jid,
                lid: c.lid,
                phone_number: c.phone_number,
                is_admin: m == 0,
                is_super_admin: m == 0,
                display_name: c.push_name,
            }
        })
        .collect();
    pb::Group {
        jid: format!("120363{}{:06}@g.us", session_base(session), g),
        name: format!("Group {g}"),
        topic: format!("Topic of group {g}"),
        owner_jid: contact(session, 0).jid,
        created_at_ms: 1_700_000_000_000 + g as i64 * 60_000,
        is_announce: g % 5 == 0,
        is_locked: g % 7 == 0,
        addressing_mode: "pn".into(),
        participants,
    }
}

type BoxStream<T> = Pin<Box<dyn Stream<Item = Result<T, Status>> + Send>>;

impl SimHost {
    pub fn new(config: SimConfig) -> Self {
        Self { config: Arc::new(config) }
    }

    fn check(&self, session: &str) -> Result<(), Status> {
        if session.is_empty() {
            return Err(Status::invalid_argument("session_id is required"));
        }
        if self.config.held.as_ref().is_some_and(|held| !held.contains(session)) {
            return Err(Status::not_found("this host does not hold the session"));
        }
        if self.config.disconnected.contains(session) {
            return Err(Status::failed_precondition("session not connected"));
        }
        Ok(())
    }

    /// Streams `total` items in batches, honouring delay and fail-after.
    fn stream<T: Send + 'static, M: Send + 'static>(
        &self,
        total: usize,
        item: impl Fn(usize) -> T + Send + 'static,
        batch: impl Fn(Vec<T>) -> M + Send + 'static,
    ) -> BoxStream<M> {
        let config = self.config.clone();
        let (tx, rx) = mpsc::channel(4);
        tokio::spawn(async move {
            let fail = || Status::unavailable("host-sim: simulated failure");
            let mut sent = 0;
            while sent < total {
                if config.fail_after.is_some_and(|limit| sent >= limit) {
                    let _ = tx.send(Err(fail())).await;
                    return;
                }
                if !config.delay.is_zero() {
                    tokio::time::sleep(config.delay).await;
                }
                let mut end = (sent + config.batch_size.max(1)).min(total);
                if let Some(limit) = config.fail_after {
                    end = end.min(limit);
                }
                if tx.send(Ok(batch((sent..end).map(&item).collect()))).await.is_err() {
                    return;
                }
                sent = end;
            }
            if config.fail_after.is_some_and(|limit| sent >= limit) {
                let _ = tx.send(Err(fail())).await;
            }
        });
        Box::pin(ReceiverStream::new(rx))
    }
}

#[tonic::async_trait]
impl SessionHostService for SimHost {
    type StreamContactsStream = BoxStream<pb::StreamContactsResponse>;
    type StreamJoinedGroupsStream = BoxStream<pb::StreamJoinedGroupsResponse>;
    type WatchSessionsStream = BoxStream<pb::WatchSessionsResponse>;

    async fn watch_sessions(
        &self,
        _request: Request<pb::WatchSessionsRequest>,
    ) -> Result<Response<Self::WatchSessionsStream>, Status> {
        match &self.config.feed {
            Some(feed) => Ok(Response::new(feed.watch())),
            None => Err(Status::unimplemented("host-sim: no sessions given (--sessions FILE)")),
        }
    }

    async fn stream_contacts(
        &self,
        request: Request<pb::StreamContactsRequest>,
    ) -> Result<Response<Self::StreamContactsStream>, Status> {
        let session = request.into_inner().session_id;
        self.check(&session)?;
        let stream = self.stream(
            self.config.contacts,
            move |i| contact(&session, i),
            |contacts| pb::StreamContactsResponse { contacts },
        );
        Ok(Response::new(stream))
    }

    async fn stream_joined_groups(
        &self,
        request: Request<pb::StreamJoinedGroupsRequest>,
    ) -> Result<Response<Self::StreamJoinedGroupsStream>, Status> {
        let session = request.into_inner().session_id;
        self.check(&session)?;
        let (members, contacts) = (self.config.members_per_group, self.config.contacts);
        let stream = self.stream(
            self.config.groups,
            move |g| group(&session, g, members, contacts),
            |groups| pb::StreamJoinedGroupsResponse { groups },
        );
        Ok(Response::new(stream))
    }
}
