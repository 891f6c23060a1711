//! The history's reading rules over the fake store: paging without gaps or
//! repeats while events are written, a watch that resumes after its last
//! event, a cursor whose later events were pruned, and pruning by count.

use futures_util::StreamExt;

use super::model::{EventKind, Retention};
use super::*;
use crate::sessions::model::{Session, SessionId, SessionStatus};
use crate::sessions::writes::FeedWriter;
use crate::store::fake::FakeDatabase;

const FEED: FeedWriter<'static> = FeedWriter { gateway: "gw-1", tenure: None };

async fn flip(store: &Store, id: &str, n: i64) {
    let status = if n % 2 == 0 { SessionStatus::Working } else { SessionStatus::ScanQrCode };
    store.upsert_newer(FEED, &[Session::for_tests(id, "org_a", "gw-1", status, 1_000 + n)]).await.unwrap();
}

fn codec() -> CursorCodec {
    CursorCodec::new([7; 32])
}

#[tokio::test]
async fn pages_newest_first_have_no_gap_or_repeat_while_events_are_written() {
    let (store, codec, admin) = (FakeDatabase::store(), codec(), SuperAdmin::for_tests());
    for n in 0..25 {
        flip(&store, &format!("s{}", n % 5), n).await;
    }
    let mut seen = Vec::new();
    let mut cursor = None;
    loop {
        let request = ListEvents { limit: Some(4), cursor: cursor.clone(), filter: EventFilter::default() };
        let page = list(&admin, &store, &codec, request).await.unwrap();
        seen.extend(page.items.iter().map(|c| c.event.position));
        // Written while paging: newer than the first page, never in a later one.
        flip(&store, &format!("new{}", seen.len()), 0).await;
        match page.next_cursor {
            Some(next) => cursor = Some(next),
            None => break,
        }
    }
    assert_eq!(seen.len(), 25, "{seen:?}");
    assert!(seen.windows(2).all(|w| w[0] > w[1]), "newest first, no repeat: {seen:?}");
}

#[tokio::test]
async fn one_sessions_listing_is_not_found_only_for_a_session_never_stored() {
    let (store, codec, admin) = (FakeDatabase::store(), codec(), SuperAdmin::for_tests());
    let of = |id: &str| ListEvents {
        filter: EventFilter { session_id: Some(SessionId::parse(id).unwrap()), ..Default::default() },
        ..Default::default()
    };
    assert!(matches!(list(&admin, &store, &codec, of("never")).await, Err(EventsError::NotFound)));
    flip(&store, "s1", 0).await;
    store.remove_gateway_sessions(FEED, &[SessionId::parse("s1").unwrap()]).await.unwrap();
    let page = list(&admin, &store, &codec, of("s1")).await.unwrap();
    let kinds: Vec<EventKind> = page.items.iter().map(|c| c.event.kind).collect();
    assert_eq!(kinds, [EventKind::Removed, EventKind::Appeared]);
}

#[tokio::test(start_paused = true)]
async fn a_watch_resumed_after_its_last_event_misses_and_repeats_nothing() {
    let (store, codec, admin) = (FakeDatabase::store(), codec(), SuperAdmin::for_tests());
    flip(&store, "before", 0).await;
    let mut watch = watch(&admin, &store, &codec, None).await.unwrap();
    for n in 1..=6 {
        flip(&store, "s1", n).await;
    }
    let mut got = Vec::new();
    for _ in 0..3 {
        got.push(watch.next().await.unwrap().unwrap());
    }
    drop(watch);
    let resumed = super::watch(&admin, &store, &codec, Some(&got[2].cursor)).await.unwrap();
    got.extend(resumed.take(3).map(Result::unwrap).collect::<Vec<_>>().await);
    let changed: Vec<i64> = got.iter().map(|c| c.event.changed_at).collect();
    assert_eq!(changed, [1_001, 1_002, 1_003, 1_004, 1_005, 1_006], "the event before the watch is not replayed");
    let forged = codec.encode("session-events|session=|org=|gateway=|status=|since=", "1.1");
    assert!(matches!(super::watch(&admin, &store, &codec, Some(&forged)).await, Err(EventsError::InvalidAfter)));
}

#[tokio::test(start_paused = true)]
async fn pruning_by_count_keeps_the_newest_and_a_cursor_before_it_is_gone() {
    let (store, codec, admin) = (FakeDatabase::store(), codec(), SuperAdmin::for_tests());
    for n in 0..12 {
        flip(&store, "busy", n).await;
    }
    let first = list(&admin, &store, &codec, ListEvents { limit: Some(500), ..Default::default() }).await.unwrap();
    let oldest = first.items.last().unwrap().cursor.clone();
    let retention = Retention { recorded_before: 0, per_session: 5, batch: 100 };
    let pruned = store.prune_session_events(&retention).await.unwrap();
    assert_eq!(pruned.by_count, 7);
    let kept = list(&admin, &store, &codec, ListEvents { limit: Some(500), ..Default::default() }).await.unwrap();
    let changed: Vec<i64> = kept.items.iter().map(|c| c.event.changed_at).collect();
    assert_eq!(changed, [1_011, 1_010, 1_009, 1_008, 1_007]);
    assert!(matches!(watch(&admin, &store, &codec, Some(&oldest)).await, Err(EventsError::Gone)));
    let newest = kept.items.first().unwrap().cursor.clone();
    assert!(watch(&admin, &store, &codec, Some(&newest)).await.is_ok());
}
