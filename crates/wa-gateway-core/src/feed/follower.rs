//! One gateway's follower: keeps its session feed open, applies what
//! arrives, completes snapshots (or holds one that would remove too much),
//! and reconnects with jittered, capped backoff.

use std::collections::{BTreeSet, HashSet};
use std::time::{Duration, Instant};

use rand::Rng;
use tokio_util::sync::CancellationToken;
use tracing::Instrument;

use super::apply::{self, Upserted};
use super::gateways::Gateways;
use super::message::{FeedMessage, Refusal, Refused};
use super::report::FeedState;
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
}

impl From<StoreError> for Ended {
    fn from(error: StoreError) -> Self {
        match error {
            StoreError::NotFollowing(_) => Self::LeaseLost,
            error => Self::Store(error),
        }
    }
}

impl Follower {
    fn writer(&self) -> FeedWriter<'_> {
        FeedWriter { gateway: &self.gateway, tenure: self.tenure }
    }

    /// Follows until `stop`.
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
                    let followed = tokio::select! {
                        ended = self.follow(stream, &mut backoff) => ended,
                        () = stop.cancelled() => return,
                    };
                    let reason = match followed {
                        Ended::Host(error) => error.to_string(),
                        Ended::Store(error) => format!("storing the feed failed: {error}"),
                        Ended::Closed => "the session host ended the feed".to_owned(),
                        Ended::Stalled => {
                            format!("the snapshot did not complete within {} s", self.config.snapshot_stall.as_secs())
                        }
                        Ended::LeaseLost => {
                            tracing::warn!(gateway = %self.gateway, "lease lapsed: this replica stops applying the feed");
                            return;
                        }
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

    async fn follow(&self, mut stream: Box<dyn FeedStream>, backoff: &mut Duration) -> Ended {
        self.state(FeedState::Syncing, None);
        let started = Instant::now();
        let stall_at = tokio::time::Instant::now() + self.config.snapshot_stall;
        let mut present: Option<HashSet<SessionId>> = Some(HashSet::new());
        let mut tally = Tally::default();
        let accepted = self.gateways.accepted(&self.gateway);
        loop {
            let next = async {
                if present.is_some() {
                    tokio::time::timeout_at(stall_at, stream.next()).await.ok()
                } else {
                    Some(stream.next().await)
                }
            };
            let message = tokio::select! {
                next = next => match next {
                    None => return Ended::Stalled,
                    Some(Ok(Some(message))) => message,
                    Some(Ok(None)) => return Ended::Closed,
                    Some(Err(error)) => return Ended::Host(error),
                },
                () = wait_accepted(accepted.as_deref()) => {
                    if self.fence.as_ref().is_some_and(|fence| !fence.holds()) {
                        return Ended::LeaseLost;
                    }
                    if let Err(error) = self.apply_held().await {
                        return error.into();
                    }
                    continue;
                }
            };
            if self.fence.as_ref().is_some_and(|fence| !fence.holds()) {
                return Ended::LeaseLost;
            }
            metrics::event(&self.gateway);
            let complete = message.snapshot_complete;
            match self.apply(message, present.as_mut()).await {
                Ok(counted) => tally.add(counted),
                Err(error) => return error.into(),
            }
            if complete && let Some(seen) = present.take() {
                if let Err(error) = self.complete_snapshot(&seen, tally).await {
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

    async fn apply(&self, message: FeedMessage, present: Option<&mut HashSet<SessionId>>) -> Result<Tally, StoreError> {
        let span = tracing::debug_span!(
            "feed.batch",
            gateway = %self.gateway,
            records = message.upserted.len(),
            removed = message.removed.len()
        );
        self.apply_batch(message, present).instrument(span).await
    }

    async fn apply_batch(
        &self,
        message: FeedMessage,
        present: Option<&mut HashSet<SessionId>>,
    ) -> Result<Tally, StoreError> {
        let FeedMessage { upserted, removed, .. } = message;
        let now = now_millis();
        let Upserted { changed, unchanged, refused, present: named } =
            apply::upsert(&self.store, self.writer(), upserted, now).await?;
        let mut tally = Tally { changed: changed.len(), unchanged, refused: refused.len() };
        self.gateways.seen(&self.gateway, &named.iter().collect::<Vec<_>>());
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
        match present {
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
        Ok(tally)
    }

    /// Removes what the completed snapshot did not name, unless that is too much.
    #[tracing::instrument(level = "debug", name = "feed.snapshot", skip_all, fields(gateway = %self.gateway, present = present.len()))]
    async fn complete_snapshot(&self, present: &HashSet<SessionId>, tally: Tally) -> Result<(), StoreError> {
        let stored = self.store.gateway_session_ids(&self.gateway).await?;
        let absent: BTreeSet<SessionId> = stored.iter().filter(|id| !present.contains(*id)).cloned().collect();
        self.gateways.release(&self.gateway);
        if absent.len() > GUARD_MIN && absent.len() * 2 > stored.len() {
            let message = format!(
                "snapshot held: it would remove {} of the {} sessions stored with this gateway; \
                 accept it with `wa-gateway admin gateways accept {}`",
                absent.len(),
                stored.len(),
                self.gateway
            );
            tracing::warn!(gateway = %self.gateway, absent = absent.len(), stored = stored.len(), "session feed snapshot held");
            self.gateways.hold(&self.gateway, absent, message);
            metrics::held(&self.gateway, true);
            return Ok(());
        }
        metrics::held(&self.gateway, false);
        let ids: Vec<SessionId> = absent.into_iter().collect();
        let outcome = apply::remove(&self.store, self.writer(), &ids).await?;
        tracing::info!(
            target: "audit", principal = "session-host", action = "FeedSnapshot",
            gateway = %self.gateway, present = present.len(), applied = tally.changed, unchanged = tally.unchanged,
            refused = tally.refused, removed = outcome.removed.len(),
            "session feed snapshot applied"
        );
        self.removed(&outcome.removed).await;
        Ok(())
    }

    async fn apply_held(&self) -> Result<(), StoreError> {
        let ids: Vec<SessionId> = self.gateways.take_held(&self.gateway).into_iter().collect();
        metrics::held(&self.gateway, false);
        let outcome = apply::remove(&self.store, self.writer(), &ids).await?;
        tracing::info!(target: "audit", principal = "operator", action = "AcceptSnapshot", gateway = %self.gateway, removed = outcome.removed.len(), "held snapshot accepted");
        self.removed(&outcome.removed).await;
        Ok(())
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

async fn wait_accepted(accepted: Option<&tokio::sync::Notify>) {
    match accepted {
        Some(notify) => notify.notified().await,
        None => std::future::pending().await,
    }
}

/// The current wait with up to 50% jitter, and the next one doubled up to `max`.
fn next_backoff(backoff: &mut Duration, max: Duration) -> Duration {
    let current = *backoff;
    *backoff = (current * 2).min(max);
    let jitter = rand::thread_rng().gen_range(0.5..=1.0);
    current.mul_f64(jitter)
}
