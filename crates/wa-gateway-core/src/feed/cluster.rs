//! Cluster mode: this replica's share of the gateways. Every third of a
//! lease it marks itself alive, renews the gateways it follows, gives up
//! those beyond its fair share (gateways ÷ replicas alive, rounded up) and
//! takes free ones up to it, so followers spread over replicas and
//! rebalance when one joins or leaves. A follower stops writing once its
//! lease may have run out ([`Fence`]), before another replica can take over.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use tokio::task::JoinHandle;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use super::fence::Fence;
use super::follower::Follower;
use super::gateways::Gateways;
use super::leases::FeedLeases;
use super::report::{FeedState, GatewayReport};
use super::{FeedConfig, metrics};
use crate::backfill::Backfills;
use crate::hosts::SessionHosts;
use crate::store::port::Store;

/// The shortest time between two rounds woken by a changed report.
const REPORT_EVERY: Duration = Duration::from_secs(1);

pub(crate) struct Coordinator {
    pub leases: Arc<dyn FeedLeases>,
    pub lease: Duration,
    pub hosts: Arc<dyn SessionHosts>,
    pub store: Store,
    pub backfills: Option<Backfills>,
    pub gateways: Gateways,
    pub config: FeedConfig,
    pub tasks: TaskTracker,
}

struct Followed {
    stop: CancellationToken,
    fence: Arc<Fence>,
    tenure: i64,
    /// The follower's task: it ends by itself when a write found the lease
    /// gone or the fence ran out, and is then started afresh.
    task: JoinHandle<()>,
}

impl Coordinator {
    pub async fn run(self, stop: CancellationToken) {
        let all = self.hosts.gateways();
        let period = self.lease / 3;
        let mut following: BTreeMap<String, Followed> = BTreeMap::new();
        // Replicas start looking at different gateways, so they rarely race for one.
        let offset = self.leases.replica().bytes().map(usize::from).sum::<usize>();
        loop {
            let alive = match self.leases.heartbeat(self.lease).await {
                Ok(alive) => alive,
                Err(error) => {
                    tracing::warn!(%error, "could not mark this replica alive for the session feeds");
                    1
                }
            };
            let share = all.len().div_ceil(alive.max(1));
            self.renew(&mut following).await;
            while following.len() > share {
                let Some((gateway, followed)) = following.pop_last() else { break };
                followed.stop.cancel();
                if let Err(error) = self.leases.release(&gateway).await {
                    tracing::warn!(%error, gateway, "could not give up a session feed");
                }
                self.idle(&gateway);
                tracing::info!(gateway, share, "session feed handed over to another replica");
            }
            for at in 0..all.len() {
                if following.len() >= share {
                    break;
                }
                let gateway = &all[(offset + at) % all.len()];
                if !following.contains_key(gateway) {
                    self.take(gateway, &mut following, &stop).await;
                }
            }
            // Next round after a period, or sooner (but not within a second)
            // when a report changed, so other replicas show it soon.
            let round = Instant::now();
            tokio::select! {
                () = tokio::time::sleep_until(round + period) => {}
                () = async {
                    self.gateways.changed().await;
                    tokio::time::sleep_until(round + REPORT_EVERY.min(period)).await;
                } => {}
                () = stop.cancelled() => break,
            }
        }
        for (gateway, followed) in following {
            followed.stop.cancel();
            let _ = self.leases.release(&gateway).await;
        }
        let _ = self.leases.leave().await;
    }

    fn report(&self, gateway: &str) -> GatewayReport {
        let reports = self.gateways.reports();
        reports.into_iter().find(|r| r.id == gateway).unwrap_or_else(|| GatewayReport {
            id: gateway.to_owned(),
            host_url: String::new(),
            feed: FeedState::Connecting,
            last_snapshot_at: None,
            last_event_at: None,
            last_error: None,
            held_removals: 0,
        })
    }

    /// The lease's end as this replica can vouch for it.
    fn fence_until(&self) -> Instant {
        Instant::now() + self.lease - self.lease / 3
    }

    async fn renew(&self, following: &mut BTreeMap<String, Followed>) {
        let mut lost = Vec::new();
        let mut stale = Vec::new();
        for (gateway, followed) in following.iter() {
            if followed.task.is_finished() {
                stale.push(gateway.clone());
                continue;
            }
            match self.leases.hold(gateway, self.lease, &self.report(gateway)).await {
                Ok(hold) if hold.held && hold.tenure != followed.tenure => lost.push(gateway.clone()),
                Ok(hold) if hold.held => {
                    followed.fence.extend(self.fence_until());
                    if let Some(accepted) = hold.accepted {
                        self.gateways.deliver_accept(gateway, accepted);
                    }
                }
                Ok(_) => lost.push(gateway.clone()),
                // The fence runs out unless a later renewal succeeds.
                Err(error) => tracing::warn!(%error, gateway, "could not renew a session feed's lease"),
            }
        }
        for gateway in lost {
            if let Some(followed) = following.remove(&gateway) {
                followed.stop.cancel();
                tracing::warn!(gateway, "another replica took this session feed over");
            }
            self.idle(&gateway);
        }
        // Taken again (a fresh follower, a fresh snapshot) in this round.
        for gateway in stale {
            following.remove(&gateway);
            tracing::info!(gateway, "restarting this gateway's session feed follower");
        }
    }

    async fn take(&self, gateway: &str, following: &mut BTreeMap<String, Followed>, stop: &CancellationToken) {
        let Some(host) = self.hosts.host(gateway) else { return };
        match self.leases.hold(gateway, self.lease, &self.report(gateway)).await {
            Ok(hold) if hold.held => {
                let fence = Arc::new(Fence::new(self.fence_until()));
                let token = stop.child_token();
                let follower = Follower {
                    gateway: gateway.to_owned(),
                    host,
                    store: self.store.clone(),
                    backfills: self.backfills.clone(),
                    gateways: self.gateways.clone(),
                    config: self.config,
                    fence: Some(fence.clone()),
                    tenure: Some(hold.tenure),
                };
                tracing::info!(gateway, replica = self.leases.replica(), "following this gateway's session feed");
                let task = self.tasks.spawn(follower.run(token.clone()));
                following.insert(gateway.to_owned(), Followed { stop: token, fence, tenure: hold.tenure, task });
            }
            Ok(_) => {}
            Err(error) => tracing::warn!(%error, gateway, "could not take a session feed's lease"),
        }
    }

    /// This replica no longer follows `gateway`.
    fn idle(&self, gateway: &str) {
        self.gateways.set_hold(gateway, None);
        self.gateways.update(gateway, |r| {
            r.feed = FeedState::Connecting;
            r.last_error = None;
        });
        metrics::not_followed(gateway);
    }
}
