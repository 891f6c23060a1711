//! One gateway's follower: keeps its session feed open, applies what
//! arrives, completes snapshots (or holds one that would remove too much),
//! and reconnects with jittered, capped backoff.

use std::collections::{BTreeSet, HashSet};
use std::time::{Duration, Instant};

use rand::Rng;
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;
use tracing::Instrument;

use super::apply::{self, Upserted};
use super::catch_up;
use super::gateways::Gateways;
use super::message::{FeedMessage, Refusal, Refused};
use super::report::{FeedState, HoldId, new_hold_id};
use super::{FeedConfig, metrics};
use crate::backfill::Backfills;
use crate::hosts::{FeedStream, HostError, SessionHost};
use crate::sessions::model::SessionId;
use crate::sessions::writes::FeedWriter;
use crate::store::StoreError;
use crate::store::port::Store;
use crate::time::now_millis;

/// A snapshot that would remove more than this share of a gateway's stored
/// sessions (and more than [`GUARD_MIN`]) is held for an operator.
const GUARD_MIN: usize = 10;

pub(crate) struct Follower {
    pub gateway: String,
    pub host: Box<dyn SessionHost>,
    pub store: Store,
    pub backfills: Option<Backfills>,
    pub gateways: Gateways,
    pub config: FeedConfig,
    /// In cluster mode, until when this replica may write for the gateway.
    pub fence: Option<std::sync::Arc<super::fence::Fence>>,
    /// In cluster mode, the lease every write is checked against.
    pub tenure: Option<i64>,
}

/// What a snapshot's messages did, for its summary audit line.
#[derive(Debug, Default, Clone, Copy)]
struct Tally {
    changed: usize,
    unchanged: usize,
    refused: usize,
}

impl Tally {
    fn add(&mut self, other: Tally) {
        self.changed += other.changed;
        self.unchanged += other.unchanged;
        self.refused += other.refused;
    }
}

/// Why a stream ended.
enum Ended {
    Host(HostError),
    Store(StoreError),
    Closed,
    Stalled,
    /// The gateway's lease may have run out: another replica may follow it.
    LeaseLost,
    /// This follower was told to stop.
    Stopped,
    /// The snapshot named more sessions than the bound.
    TooLarge,
}

impl From<StoreError> for Ended {
    fn from(error: StoreError) -> Self {
        match error {
            StoreError::NotFollowing(_) => Self::LeaseLost,
            error => Self::Store(error),
        }
    }
}

/// A completed snapshot's removals, held for an operator. It belongs to
/// the stream that found it: it ends with that stream, and an accept
/// applies only to the hold it names.
struct Held {
    id: HoldId,
    removals: BTreeSet<SessionId>,
    /// What the gateway's `lastError` says of it.
    message: String,
}

/// What one feed stream has found so far.
#[derive(Default)]
struct Stream {
    /// Until the opening snapshot completes: every id it named.
    present: Option<HashSet<SessionId>>,
    tally: Tally,
    held: Option<Held>,
}

impl Follower {
    fn writer(&self) -> FeedWriter<'_> {
        FeedWriter { gateway: &self.gateway, tenure: self.tenure }
    }

    /// Follows until `stop`. A stop is seen while waiting on the host, never
    /// inside a store write: every write runs to its end.
    pub async fn run(self, stop: CancellationToken) {
        let mut backoff = self.config.backoff_min;
        loop {
            self.state(FeedState::Connecting, None);
            let opened = tokio::select! {
                opened = self.host.watch_sessions() => opened,
                () = stop.cancelled() => return,
            };
            let wait = match opened {
                Err(HostError::Unsupported) => {
                    self.state(FeedState::Unsupported, Some("the session host does not serve WatchSessions".into()));
                    tracing::info!(gateway = %self.gateway, "session host has no feed; its sessions stay as imported");
                    self.config.unsupported_retry
                }
                Err(error) => {
                    self.state(FeedState::Unreachable, Some(error.to_string()));
                    tracing::warn!(gateway = %self.gateway, %error, "session feed unreachable");
                    next_backoff(&mut backoff, self.config.backoff_max)
                }
                Ok(stream) => {
                    let mut followed = Stream::default();
                    let ended = self.follow(stream, &mut followed, &mut backoff, &stop).await;
                    if followed.held.is_some() {
                        self.publish_hold(None).await;
                    }
                    let reason = match ended {
                        Ended::Host(error) => error.to_string(),
                        Ended::Store(error) => format!("storing the feed failed: {error}"),
                        Ended::Closed => "the session host ended the feed".to_owned(),
                        Ended::Stalled => {
                            format!("the snapshot did not complete within {} s", self.config.snapshot_stall.as_secs())
                        }
                        Ended::TooLarge => format!(
                            "the snapshot named more than {} sessions (--feed-snapshot-max-sessions); nothing was removed",
                            self.config.snapshot_max
                        ),
                        Ended::LeaseLost => {
                            tracing::warn!(gateway = %self.gateway, "lease lapsed: this replica stops applying the feed");
                            return;
                        }
                        Ended::Stopped => return,
                    };
                    tracing::warn!(gateway = %self.gateway, error = %reason, "session feed ended; reconnecting");
                    self.state(FeedState::Unreachable, Some(reason));
                    next_backoff(&mut backoff, self.config.backoff_max)
                }
            };
            tokio::select! {
                () = tokio::time::sleep(wait) => {}
                () = stop.cancelled() => return,
            }
        }
    }

    fn lease_lapsed(&self) -> bool {
        self.fence.as_ref().is_some_and(|fence| !fence.holds())
    }

    async fn follow(
        &self,
        mut stream: Box<dyn FeedStream>,
        followed: &mut Stream,
        backoff: &mut Duration,
        stop: &CancellationToken,
    ) -> Ended {
        self.state(FeedState::Syncing, None);
        let started = Instant::now();
        let stall_at = tokio::time::Instant::now() + self.config.snapshot_stall;
        followed.present = Some(HashSet::new());
        let mut accepts = self.gateways.accepts(&self.gateway);
        // An accept from before this stream is for a hold that is gone.
        if let Some(accepts) = accepts.as_mut() {
            accepts.borrow_and_update();
        }
        // Read ahead of the last message and not joined to it (`catch_up`).
        let mut ahead: Option<catch_up::Ahead> = None;
        loop {
            let read = match ahead.take() {
                Some(read) => read,
                None => {
                    let snapshotting = followed.present.is_some();
                    let next = async {
                        if snapshotting {
                            tokio::time::timeout_at(stall_at, stream.next()).await.ok()
                        } else {
                            Some(stream.next().await)
                        }
                    };
                    tokio::select! {
                        next = next => match next {
                            None => return Ended::Stalled,
                            Some(read) => read,
                        },
                        accepted = next_accept(accepts.as_mut()) => {
                            let ours = followed.held.as_ref().is_some_and(|held| Some(held.id) == accepted);
                            if !ours {
                                continue;
                            }
                            if self.lease_lapsed() {
                                return Ended::LeaseLost;
                            }
                            if let Err(error) = self.apply_held(followed).await {
                                return error.into();
                            }
                            continue;
                        }
                        () = stop.cancelled() => return Ended::Stopped,
                    }
                }
            };
            let mut message = match read {
                Ok(Some(message)) => message,
                Ok(None) => return Ended::Closed,
                Err(error) => return Ended::Host(error),
            };
            ahead = catch_up::read_ahead(stream.as_mut(), &mut message);
            if self.lease_lapsed() {
                return Ended::LeaseLost;
            }
            metrics::event(&self.gateway);
            let complete = message.snapshot_complete;
            if let Err(error) = self.apply(message, followed).await {
                return error.into();
            }
            if followed.present.as_ref().is_some_and(|present| present.len() > self.config.snapshot_max) {
                return Ended::TooLarge;
            }
            if complete && let Some(seen) = followed.present.take() {
                if let Err(error) = self.complete_snapshot(&seen, followed).await {
                    return error.into();
                }
                metrics::snapshot_seconds(&self.gateway, started.elapsed());
                *backoff = self.config.backoff_min;
                let now = now_millis();
                self.gateways.update(&self.gateway, |r| r.last_snapshot_at = Some(now));
                self.state(FeedState::Live, None);
            }
        }
    }

    async fn apply(&self, message: FeedMessage, followed: &mut Stream) -> Result<(), StoreError> {
        let span = tracing::debug_span!(
            "feed.batch",
            gateway = %self.gateway,
            records = message.upserted.len(),
            removed = message.removed.len()
        );
        self.apply_batch(message, followed).instrument(span).await
    }

    async fn apply_batch(&self, message: FeedMessage, followed: &mut Stream) -> Result<(), StoreError> {
        let FeedMessage { upserted, removed, .. } = message;
        let now = now_millis();
        let Upserted { changed, unchanged, refused, present: named } =
            apply::upsert(&self.store, self.writer(), upserted, now).await?;
        let mut tally = Tally { changed: changed.len(), unchanged, refused: refused.len() };
        metrics::applied(&self.gateway, changed.len(), unchanged);
        for session in &changed {
            tracing::info!(target: "audit", principal = "session-host", action = "FeedUpsert", gateway = %self.gateway, session = %session, "session updated from its host");
        }
        for reason in refused {
            self.refused(reason);
        }
        let mut ids = Vec::with_capacity(removed.len());
        for id in removed {
            match id {
                Ok(id) => ids.push(id),
                Err(Refused { reason, .. }) => {
                    tally.refused += 1;
                    self.refused(reason);
                }
            }
        }
        followed.tally.add(tally);
        // A record seen since the hold is present after all.
        if let Some(held) = followed.held.as_mut() {
            let before = held.removals.len();
            for id in &named {
                held.removals.remove(id);
            }
            if held.removals.len() != before {
                if held.removals.is_empty() {
                    followed.held = None;
                }
                self.publish_hold(followed.held.as_ref()).await;
            }
        }
        match followed.present.as_mut() {
            // Inside a snapshot nothing is removed: a removed id is simply not present.
            Some(present) => {
                present.extend(named);
                for id in &ids {
                    present.remove(id);
                }
            }
            None if !ids.is_empty() => {
                let outcome = apply::remove(&self.store, self.writer(), &ids).await?;
                for _ in 0..outcome.elsewhere {
                    self.refused(Refusal::RemovedElsewhere);
                }
                self.removed(&outcome.removed).await;
            }
            None => {}
        }
        self.gateways.update(&self.gateway, |r| r.last_event_at = Some(now));
        Ok(())
    }

    /// Removes what the completed snapshot did not name, unless that is too
    /// much: then holds it.
    #[tracing::instrument(level = "debug", name = "feed.snapshot", skip_all, fields(gateway = %self.gateway, present = present.len()))]
    async fn complete_snapshot(&self, present: &HashSet<SessionId>, followed: &mut Stream) -> Result<(), StoreError> {
        let stored = self.store.gateway_session_ids(&self.gateway).await?;
        let absent: BTreeSet<SessionId> = stored.iter().filter(|id| !present.contains(*id)).cloned().collect();
        if absent.len() > GUARD_MIN && absent.len() * 2 > stored.len() {
            tracing::warn!(gateway = %self.gateway, absent = absent.len(), stored = stored.len(), "session feed snapshot held");
            let message = format!(
                "snapshot held: it would remove {} of the {} sessions stored with this gateway; \
                 accept it with `wa-gateway admin gateways accept {}`",
                absent.len(),
                stored.len(),
                self.gateway
            );
            let held = Held { id: new_hold_id(), removals: absent, message };
            self.publish_hold(Some(&held)).await;
            followed.held = Some(held);
            metrics::held(&self.gateway, true);
            return Ok(());
        }
        metrics::held(&self.gateway, false);
        let ids: Vec<SessionId> = absent.into_iter().collect();
        let outcome = apply::remove(&self.store, self.writer(), &ids).await?;
        let tally = followed.tally;
        tracing::info!(
            target: "audit", principal = "session-host", action = "FeedSnapshot",
            gateway = %self.gateway, present = present.len(), applied = tally.changed, unchanged = tally.unchanged,
            refused = tally.refused, removed = outcome.removed.len(),
            "session feed snapshot applied"
        );
        self.removed(&outcome.removed).await;
        Ok(())
    }

    async fn apply_held(&self, followed: &mut Stream) -> Result<(), StoreError> {
        let Some(held) = followed.held.take() else { return Ok(()) };
        let ids: Vec<SessionId> = held.removals.into_iter().collect();
        let outcome = apply::remove(&self.store, self.writer(), &ids).await?;
        self.publish_hold(None).await;
        metrics::held(&self.gateway, false);
        tracing::info!(target: "audit", principal = "operator", action = "AcceptSnapshot", gateway = %self.gateway, removed = outcome.removed.len(), "held snapshot accepted");
        self.removed(&outcome.removed).await;
        Ok(())
    }

    /// Shows the hold (or its end) here and, in cluster mode, to every
    /// replica, before anyone can accept it. Without a current lease
    /// nothing is published there: the next follower starts without a hold.
    async fn publish_hold(&self, held: Option<&Held>) {
        if let (Some(leases), Some(tenure)) = (self.gateways.leases(), self.tenure) {
            let hold = held.map(|h| (h.id, h.removals.len(), h.message.as_str()));
            if let Err(error) = leases.publish_hold(&self.gateway, tenure, hold).await {
                tracing::warn!(gateway = %self.gateway, %error, "could not publish the held snapshot to the other replicas");
            }
        }
        let hold = held.map(|h| (h.id, h.removals.len(), h.message.clone()));
        self.gateways.set_hold(&self.gateway, hold);
    }

    async fn removed(&self, sessions: &[SessionId]) {
        metrics::removed(&self.gateway, sessions.len());
        for session in sessions {
            tracing::info!(target: "audit", principal = "session-host", action = "FeedRemove", gateway = %self.gateway, session = %session, "session removed: its host no longer holds it");
            if let Some(backfills) = &self.backfills
                && let Err(error) = backfills.session_removed(session).await
            {
                tracing::warn!(%error, session = %session, "could not stop the backfill of a removed session");
            }
        }
    }

    fn refused(&self, reason: Refusal) {
        metrics::refused(&self.gateway, reason);
        tracing::warn!(gateway = %self.gateway, reason = reason.as_str(), "session feed record refused");
    }

    fn state(&self, feed: FeedState, error: Option<String>) {
        metrics::state(&self.gateway, feed);
        self.gateways.update(&self.gateway, |r| {
            r.feed = feed;
            if r.held_removals == 0 || error.is_some() {
                r.last_error = error;
            }
        });
    }
}

/// The next accepted hold; never ready without a channel.
async fn next_accept(accepts: Option<&mut watch::Receiver<Option<HoldId>>>) -> Option<HoldId> {
    if let Some(accepts) = accepts
        && accepts.changed().await.is_ok()
    {
        return *accepts.borrow_and_update();
    }
    std::future::pending().await
}

/// The current wait with up to 50% jitter, and the next one doubled up to `max`.
fn next_backoff(backoff: &mut Duration, max: Duration) -> Duration {
    let current = *backoff;
    *backoff = (current * 2).min(max);
    let jitter = rand::thread_rng().gen_range(0.5..=1.0);
    current.mul_f64(jitter)
}
