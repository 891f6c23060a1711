//! The simulated host's session feed: the sessions it was given, sent as a
//! snapshot on every `WatchSessions` call, then a change now and then (a
//! working session waits for a QR scan, and later works again), so the
//! directory can be seen following a host.

use std::collections::BTreeMap;
use std::pin::Pin;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use tokio::sync::broadcast;
use tokio_stream::Stream;
use tonic::Status;

use crate::proto::host as pb;
use crate::sessions::{Session, SessionStatus};
use crate::time::now_millis;

/// Records per snapshot message (the contract allows 5,000).
const SNAPSHOT_CHUNK: usize = 1_000;

type FeedStream = Pin<Box<dyn Stream<Item = Result<pb::WatchSessionsResponse, Status>> + Send>>;

/// The sessions a simulated host holds; cheap to clone.
#[derive(Clone)]
pub struct SimFeed {
    sessions: Arc<Mutex<BTreeMap<String, pb::HostedSession>>>,
    changes: broadcast::Sender<pb::HostedSession>,
}

impl std::fmt::Debug for SimFeed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SimFeed").field("sessions", &self.lock().len()).finish()
    }
}

/// A session as a host reports it.
pub fn hosted(session: &Session) -> pb::HostedSession {
    let status = match session.status {
        SessionStatus::Stopped => pb::HostedSessionStatus::Stopped,
        SessionStatus::Starting => pb::HostedSessionStatus::Starting,
        SessionStatus::ScanQrCode => pb::HostedSessionStatus::ScanQrCode,
        SessionStatus::Working => pb::HostedSessionStatus::Working,
        SessionStatus::Failed => pb::HostedSessionStatus::Failed,
    };
    pb::HostedSession {
        id: session.id.to_string(),
        organization_id: session.organization_id.clone(),
        created_by_user_id: session.created_by_user_id.clone(),
        label: session.label.clone(),
        phone_number: session.phone_number.clone(),
        wa_jid: session.wa_jid.clone(),
        wa_lid: session.wa_lid.clone(),
        status: status.into(),
        auto_read: session.auto_read,
        presence_typing: session.presence_typing,
        is_admin_session: session.is_admin_session,
        rate_per_min: session.rate_per_min,
        rate_per_hour: session.rate_per_hour,
        created_at_ms: session.created_at,
        updated_at_ms: session.updated_at,
        last_connected_at_ms: session.last_connected_at,
    }
}

impl SimFeed {
    /// Holds `sessions`; with `churn_per_sec` above zero, changes one of them
    /// that often (it needs a Tokio runtime then).
    pub fn new(sessions: impl IntoIterator<Item = pb::HostedSession>, churn_per_sec: f64) -> Self {
        let sessions = sessions.into_iter().map(|s| (s.id.clone(), s)).collect();
        let (changes, _) = broadcast::channel(1024);
        let feed = Self { sessions: Arc::new(Mutex::new(sessions)), changes };
        if churn_per_sec > 0.0 {
            let churning = feed.clone();
            let every = Duration::from_secs_f64(1.0 / churn_per_sec.min(10_000.0));
            tokio::spawn(async move { churning.churn(every).await });
        }
        feed
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, BTreeMap<String, pb::HostedSession>> {
        self.sessions.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Flips working sessions to scan_qr_code and back, one per tick, in
    /// id order, until no stream is left to tell.
    async fn churn(self, every: Duration) {
        let mut tick = tokio::time::interval(every);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut next = 0usize;
        loop {
            tick.tick().await;
            let changed = {
                let mut sessions = self.lock();
                let flippable: Vec<String> = sessions
                    .values()
                    .filter(|s| {
                        matches!(s.status(), pb::HostedSessionStatus::Working | pb::HostedSessionStatus::ScanQrCode)
                    })
                    .map(|s| s.id.clone())
                    .collect();
                if flippable.is_empty() {
                    continue;
                }
                let id = &flippable[next % flippable.len()];
                next += 1;
                let Some(session) = sessions.get_mut(id) else { continue };
                let flipped = if session.status() == pb::HostedSessionStatus::Working {
                    pb::HostedSessionStatus::ScanQrCode
                } else {
                    pb::HostedSessionStatus::Working
                };
                session.set_status(flipped);
                session.updated_at_ms = now_millis().max(session.updated_at_ms + 1);
                session.clone()
            };
            // No receiver is fine: nobody watches right now.
            let _ = self.changes.send(changed);
        }
    }

    /// A snapshot of every session held, then each change as it happens.
    pub fn watch(&self) -> FeedStream {
        let mut changes = self.changes.subscribe();
        let snapshot: Vec<pb::HostedSession> = self.lock().values().cloned().collect();
        let chunks: Vec<Vec<pb::HostedSession>> = if snapshot.is_empty() {
            vec![Vec::new()]
        } else {
            snapshot.chunks(SNAPSHOT_CHUNK).map(<[_]>::to_vec).collect()
        };
        let last = chunks.len() - 1;
        Box::pin(async_stream_like(move |tx| async move {
            for (at, upserted) in chunks.into_iter().enumerate() {
                let message =
                    pb::WatchSessionsResponse { upserted, removed: Vec::new(), snapshot_complete: at == last };
                if tx.send(Ok(message)).await.is_err() {
                    return;
                }
            }
            loop {
                let message = match changes.recv().await {
                    Ok(session) => Ok(pb::WatchSessionsResponse { upserted: vec![session], ..Default::default() }),
                    // Too slow a reader: end, and the next watch starts from a snapshot.
                    Err(broadcast::error::RecvError::Lagged(_)) => {
                        Err(Status::unavailable("host-sim: feed reader lagged"))
                    }
                    Err(broadcast::error::RecvError::Closed) => return,
                };
                let ended = message.is_err();
                if tx.send(message).await.is_err() || ended {
                    return;
                }
            }
        }))
    }
}

/// A stream fed by `produce` through a small channel.
fn async_stream_like<T: Send + 'static, F, Fut>(produce: F) -> impl Stream<Item = T> + Send
where
    F: FnOnce(tokio::sync::mpsc::Sender<T>) -> Fut,
    Fut: std::future::Future<Output = ()> + Send + 'static,
{
    let (tx, rx) = tokio::sync::mpsc::channel(4);
    tokio::spawn(produce(tx));
    tokio_stream::wrappers::ReceiverStream::new(rx)
}
