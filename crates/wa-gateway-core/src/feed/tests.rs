//! The feed logic on its own, over the fake store, fake hosts and fake
//! leases: the mass-removal guard, held snapshots (seen, accepted, and
//! never outliving their stream), the fence of a lost lease, and the
//! coordinator's share of gateways. Time is paused: a sleep ends only once
//! every task waits, so "settled" means the follower has done what it was
//! sent.

use std::sync::Arc;
use std::time::Duration;

use tokio_util::sync::CancellationToken;

use super::cluster::Coordinator;
use super::follower::Follower;
use super::leases::FeedLeases;
use super::*;
use crate::hosts::fake::{FakeHosts, FeedSender};
use crate::sessions::model::{Session, SessionId, SessionStatus};
use crate::store::fake::{FakeDatabase, FakeLeases};

const GW: &str = "gw";

fn record(id: &str, updated_at: i64) -> Result<Session, message::Refused> {
    Ok(Session::for_tests(id, "org", "ignored", SessionStatus::Working, updated_at))
}

fn snapshot(ids: impl IntoIterator<Item = String>, at: i64) -> FeedMessage {
    FeedMessage {
        upserted: ids.into_iter().map(|id| record(&id, at)).collect(),
        removed: vec![],
        snapshot_complete: true,
    }
}

fn ids(range: std::ops::Range<usize>) -> impl Iterator<Item = String> {
    range.map(|i| format!("s{i:03}"))
}

async fn settle() {
    tokio::time::sleep(Duration::from_millis(10)).await;
}

struct Fixture {
    fake: FakeDatabase,
    store: Store,
    hosts: FakeHosts,
    gateways: Gateways,
    stop: CancellationToken,
}

impl Fixture {
    fn new(gateways: Gateways) -> Self {
        let fake = FakeDatabase::default();
        let store = Store::new(Arc::new(fake.handle()));
        let hosts = FakeHosts::new(&[GW]);
        gateways.register(GW, "http://gw.test".into());
        Self { fake, store, hosts, gateways, stop: CancellationToken::new() }
    }

    fn single() -> Self {
        Self::new(Gateways::default())
    }

    /// A follower of `GW` (with `tenure` in cluster mode), started.
    fn follow(&self, tenure: Option<i64>) -> tokio::task::JoinHandle<()> {
        self.follow_with(tenure, FeedConfig { backoff_min: Duration::from_millis(100), ..FeedConfig::default() })
    }

    fn follow_with(&self, tenure: Option<i64>, config: FeedConfig) -> tokio::task::JoinHandle<()> {
        let follower = Follower {
            gateway: GW.into(),
            host: self.hosts.host(GW).unwrap(),
            store: self.store.clone(),
            backfills: None,
            gateways: self.gateways.clone(),
            config,
            fence: None,
            tenure,
        };
        tokio::spawn(follower.run(self.stop.clone()))
    }

    async fn feed(&self) -> FeedSender {
        self.hosts.get(GW).next_feed().await
    }

    async fn stored(&self) -> Vec<String> {
        self.store.gateway_session_ids(GW).await.unwrap().iter().map(|id| id.to_string()).collect()
    }

    fn held(&self) -> usize {
        self.gateways.reports()[0].held_removals
    }
}

#[tokio::test(start_paused = true)]
async fn a_snapshot_that_would_remove_more_than_half_is_held_and_a_smaller_one_applies() {
    let f = Fixture::single();
    f.follow(None);
    let feed = f.feed().await;
    feed.send(Ok(snapshot(ids(0..30), 10))).unwrap();
    settle().await;
    assert_eq!(f.stored().await.len(), 30);

    // 14 of 30 absent: under half, applied at once.
    feed.send(Err(crate::hosts::HostError::Unavailable("restart".into()))).unwrap();
    let feed = f.feed().await;
    feed.send(Ok(snapshot(ids(14..30), 20))).unwrap();
    settle().await;
    assert_eq!(f.stored().await.len(), 16);
    assert_eq!(f.held(), 0);

    // 11 of 16 absent: more than half and more than ten, held.
    feed.send(Err(crate::hosts::HostError::Unavailable("restart".into()))).unwrap();
    let feed = f.feed().await;
    feed.send(Ok(snapshot(ids(25..30), 30))).unwrap();
    settle().await;
    assert_eq!(f.stored().await.len(), 16, "nothing removed while held");
    assert_eq!(f.held(), 11);
    assert!(f.gateways.reports()[0].last_error.as_deref().unwrap().contains("would remove 11 of the 16"));
    drop(feed);
}

#[tokio::test(start_paused = true)]
async fn ten_absent_sessions_are_removed_whatever_their_share() {
    let f = Fixture::single();
    f.follow(None);
    let feed = f.feed().await;
    feed.send(Ok(snapshot(ids(0..12), 10))).unwrap();
    settle().await;
    feed.send(Err(crate::hosts::HostError::Unavailable("restart".into()))).unwrap();
    let feed = f.feed().await;
    feed.send(Ok(snapshot(ids(10..12), 20))).unwrap();
    settle().await;
    assert_eq!(f.stored().await, ["s010", "s011"]);
    assert_eq!(f.held(), 0);
}

/// A gateway with 30 stored sessions whose new snapshot names 5: a hold of 25.
async fn holding(f: &Fixture) -> FeedSender {
    let feed = f.feed().await;
    feed.send(Ok(snapshot(ids(0..30), 10))).unwrap();
    settle().await;
    feed.send(Err(crate::hosts::HostError::Unavailable("restart".into()))).unwrap();
    let feed = f.feed().await;
    feed.send(Ok(snapshot(ids(0..5), 20))).unwrap();
    settle().await;
    assert_eq!(f.held(), 25);
    feed
}

#[tokio::test(start_paused = true)]
async fn a_record_seen_after_the_hold_stays_and_the_accept_removes_the_rest() {
    let f = Fixture::single();
    f.follow(None);
    let feed = holding(&f).await;
    let change = FeedMessage { upserted: vec![record("s007", 30), record("s008", 30)], ..Default::default() };
    feed.send(Ok(change)).unwrap();
    settle().await;
    assert_eq!(f.held(), 23, "two of the held sessions are present after all");

    f.gateways.accept(GW).unwrap();
    settle().await;
    let expected: Vec<String> = ids(0..5).chain(["s007".into(), "s008".into()]).collect();
    assert_eq!(f.stored().await, expected);
    assert_eq!(f.held(), 0);
    assert!(matches!(f.gateways.accept(GW), Err(AcceptError::NothingHeld(_))), "nothing is held any more");
}

#[tokio::test(start_paused = true)]
async fn a_hold_ends_with_its_stream_and_a_late_accept_removes_nothing_before_the_next_snapshot() {
    let f = Fixture::single();
    f.follow(None);
    let feed = holding(&f).await;
    let held = f.gateways.reports()[0].clone();
    assert_eq!(held.held_removals, 25);
    // The operator's accept of that hold arrives after its stream broke.
    feed.send(Err(crate::hosts::HostError::Unavailable("restart".into()))).unwrap();
    let feed = f.feed().await;
    assert_eq!(f.held(), 0, "the hold went with its stream");
    assert!(matches!(f.gateways.accept(GW), Err(AcceptError::NothingHeld(_))));

    // Cluster mode hands accepts over by hold number; one for an old hold
    // (or any other) never applies to the stream now syncing.
    f.gateways.deliver_accept(GW, 42);
    feed.send(Ok(FeedMessage { upserted: ids(0..5).map(|id| record(&id, 30)).collect(), ..Default::default() }))
        .unwrap();
    settle().await;
    assert_eq!(f.stored().await.len(), 30, "nothing is removed before a snapshot completes");
}

#[tokio::test(start_paused = true)]
async fn a_follower_whose_lease_was_taken_writes_nothing_more_and_stops() {
    let gateways = Gateways::default();
    let f = Fixture::new(gateways);
    let mine = f.fake.leases("r1");
    let other = mine.alongside("r2");
    let lease = Duration::from_secs(3);
    let report = f.gateways.reports()[0].clone();
    let hold = mine.hold(GW, lease, &report).await.unwrap();
    assert!(hold.held);
    let follower = f.follow(Some(hold.tenure));
    let feed = f.feed().await;
    feed.send(Ok(snapshot(ids(0..3), 10))).unwrap();
    settle().await;
    assert_eq!(f.stored().await.len(), 3);

    // r1 stops renewing; once the lease runs out r2 takes the gateway.
    tokio::time::sleep(lease + Duration::from_secs(1)).await;
    assert!(other.hold(GW, lease, &report).await.unwrap().held);
    feed.send(Ok(FeedMessage { upserted: vec![record("s009", 20)], ..Default::default() })).unwrap();
    settle().await;
    assert_eq!(f.stored().await.len(), 3, "the fenced write stored nothing");
    assert!(follower.is_finished(), "the follower stops once the store says it no longer follows");
}

/// A coordinator of `replica` over `leases`, for every gateway `hosts` has.
fn coordinator(f: &Fixture, leases: FakeLeases, lease: Duration) -> (Gateways, CancellationToken) {
    let leases: Arc<dyn FeedLeases> = Arc::new(leases);
    let gateways = Gateways::with_leases(Some(leases.clone()));
    gateways.register(GW, "http://gw.test".into());
    let stop = CancellationToken::new();
    let hosts: Arc<dyn crate::hosts::SessionHosts> = Arc::new(f.hosts.clone());
    let coordinator = Coordinator {
        leases,
        lease,
        hosts,
        store: f.store.clone(),
        backfills: None,
        gateways: gateways.clone(),
        config: FeedConfig::default(),
        tasks: tokio_util::task::TaskTracker::new(),
    };
    tokio::spawn(coordinator.run(stop.clone()));
    (gateways, stop)
}

#[tokio::test(start_paused = true)]
async fn one_replica_follows_a_gateway_and_another_takes_it_over_within_the_lease_when_it_stops() {
    let f = Fixture::single();
    let lease = Duration::from_secs(3);
    let first = f.fake.leases("r1");
    let second = first.alongside("r2");
    let watch = first.alongside("watcher");
    let (_g1, stop1) = coordinator(&f, first, lease);
    let _feed = f.feed().await;
    let (_g2, _stop2) = coordinator(&f, second, lease);
    settle().await;
    assert_eq!(watch.current(GW).map(|(r, _)| r).as_deref(), Some("r1"));

    // r1 dies without giving the gateway up: r2 takes it within a lease
    // and a renewal period.
    stop1.cancel();
    let died = tokio::time::Instant::now();
    let _feed = f.feed().await;
    assert!(died.elapsed() <= lease + lease / 3 + Duration::from_secs(1), "{:?}", died.elapsed());
    assert_eq!(watch.current(GW).map(|(r, _)| r).as_deref(), Some("r2"));
}

#[tokio::test(start_paused = true)]
async fn an_accept_on_any_replica_reaches_the_follower_through_the_leases() {
    let f = Fixture::single();
    let lease = Duration::from_secs(3);
    let first = f.fake.leases("r1");
    let second = first.alongside("r2");
    let (following, _stop1) = coordinator(&f, first, lease);
    let _feed = holding_in(&f, &following).await;
    let (elsewhere, _stop2) = coordinator(&f, second, lease);
    settle().await;
    let views = list(&crate::auth::SuperAdmin::for_tests(), &f.store, &elsewhere).await.unwrap();
    assert_eq!(views[0].report.held_removals, 25, "the other replica shows the hold: {views:?}");

    accept(&crate::auth::SuperAdmin::for_tests(), &elsewhere, GW).await.unwrap();
    tokio::time::sleep(lease).await;
    assert_eq!(f.stored().await.len(), 5, "the follower applied the accepted hold");
    let views = list(&crate::auth::SuperAdmin::for_tests(), &f.store, &elsewhere).await.unwrap();
    assert_eq!(views[0].report.held_removals, 0);
    assert!(matches!(
        accept(&crate::auth::SuperAdmin::for_tests(), &elsewhere, GW).await,
        Err(AcceptError::NothingHeld(_))
    ));
}

/// As [`holding`], for the follower `gateways` shows.
async fn holding_in(f: &Fixture, gateways: &Gateways) -> FeedSender {
    let feed = f.feed().await;
    feed.send(Ok(snapshot(ids(0..30), 10))).unwrap();
    settle().await;
    feed.send(Err(crate::hosts::HostError::Unavailable("restart".into()))).unwrap();
    let feed = f.feed().await;
    feed.send(Ok(snapshot(ids(0..5), 20))).unwrap();
    settle().await;
    assert_eq!(gateways.reports()[0].held_removals, 25);
    feed
}

#[tokio::test(start_paused = true)]
async fn a_snapshot_that_never_completes_is_bounded_and_removes_nothing() {
    let f = Fixture::single();
    let config = FeedConfig { snapshot_max: 100, backoff_min: Duration::from_millis(100), ..FeedConfig::default() };
    f.follow_with(None, config);
    let feed = f.feed().await;
    feed.send(Ok(snapshot(ids(0..30), 10))).unwrap();
    settle().await;

    // The next stream's host names session after session, and never says
    // its snapshot is complete.
    feed.send(Err(crate::hosts::HostError::Unavailable("restart".into()))).unwrap();
    let endless = f.feed().await;
    for batch in 0..30 {
        let records = (0..10).map(|i| record(&format!("n{:04}", batch * 10 + i), 20)).collect();
        if endless.send(Ok(FeedMessage { upserted: records, ..Default::default() })).is_err() {
            break;
        }
        settle().await;
    }
    let report = f.gateways.reports()[0].clone();
    assert!(report.last_error.as_deref().unwrap_or("").contains("more than 100 sessions"), "{report:?}");
    assert!(endless.is_closed(), "the follower let the stream go");
    let stored = f.stored().await;
    assert!(ids(0..30).all(|id| stored.contains(&id)), "a snapshot that never completed removed sessions");
}

#[test]
fn session_ids_in_these_tests_are_valid() {
    assert!(ids(0..3).all(|id| SessionId::parse(&id).is_ok()));
}

#[tokio::test(start_paused = true)]
async fn messages_already_queued_are_joined_into_one_write_but_never_across_a_removal() {
    use crate::events::model::{EventFilter, EventKind};
    let f = Fixture::single();
    f.follow(None);
    let feed = f.feed().await;
    feed.send(Ok(snapshot(ids(0..2), 10))).unwrap();
    settle().await;
    let revision = |r: String| r.parse::<u64>().unwrap();
    let before = revision(f.store.sessions_revision().await.unwrap());

    // A burst the follower finds queued: two changes, a removal, a re-add.
    let change = |id: &str, at: i64, status| FeedMessage {
        upserted: vec![Ok(Session::for_tests(id, "org", "ignored", status, at))],
        removed: vec![],
        snapshot_complete: false,
    };
    feed.send(Ok(change("s000", 11, SessionStatus::ScanQrCode))).unwrap();
    feed.send(Ok(change("s001", 12, SessionStatus::Failed))).unwrap();
    let s000 = SessionId::parse("s000").unwrap();
    feed.send(Ok(FeedMessage { upserted: vec![], removed: vec![Ok(s000.clone())], snapshot_complete: false })).unwrap();
    feed.send(Ok(change("s000", 13, SessionStatus::Working))).unwrap();
    settle().await;

    // Three writes, not four: the two changes were one.
    assert_eq!(revision(f.store.sessions_revision().await.unwrap()) - before, 3);
    assert_eq!(f.stored().await, ["s000", "s001"]);
    // And in their order: s000 changed, left, came back.
    let filter = EventFilter { session_id: Some(s000), ..Default::default() };
    let mut kinds: Vec<EventKind> =
        f.store.list_session_events(&filter, 10, None).await.unwrap().iter().map(|e| e.kind).collect();
    kinds.reverse();
    assert_eq!(kinds, [EventKind::Appeared, EventKind::StatusChanged, EventKind::Removed, EventKind::Appeared]);
}

#[tokio::test(start_paused = true)]
async fn a_queued_change_of_a_session_already_in_the_joined_write_keeps_its_own_event() {
    use crate::events::model::EventFilter;
    let f = Fixture::single();
    f.follow(None);
    let feed = f.feed().await;
    feed.send(Ok(snapshot(ids(0..1), 10))).unwrap();
    settle().await;
    // A flap: working → scan_qr_code → working, queued at once.
    for (at, status) in [(11, SessionStatus::ScanQrCode), (12, SessionStatus::Working)] {
        let record = Ok(Session::for_tests("s000", "org", "ignored", status, at));
        feed.send(Ok(FeedMessage { upserted: vec![record], removed: vec![], snapshot_complete: false })).unwrap();
    }
    settle().await;
    let filter = EventFilter { session_id: Some(SessionId::parse("s000").unwrap()), ..Default::default() };
    let events = f.store.list_session_events(&filter, 10, None).await.unwrap();
    let changed: Vec<i64> = events.iter().map(|e| e.changed_at).collect();
    assert_eq!(changed, [12, 11, 10], "each change of the flap is kept");
}
