//! The session pages the REST layer rendered recently, by query, with the
//! etag each was read at. A kept page is sent only when the service answered
//! not_modified for that etag (`listing.rs`).

use std::collections::VecDeque;
use std::sync::{Mutex, PoisonError};

use axum::body::Bytes;

use crate::proto as pb;

/// Pages kept; the dashboard and pollers ask for a handful of queries.
const KEPT_PAGES: usize = 32;
/// A page larger than this is not kept, so the cache holds at most
/// `KEPT_PAGES` × this.
const MAX_KEPT_BYTES: usize = 256 * 1024;

struct Kept {
    /// The request with `if_none_match` empty: the page's identity.
    query: pb::ListSessionsRequest,
    etag: String,
    body: Bytes,
}

/// The recently rendered pages, most recently used first.
#[derive(Default)]
pub(crate) struct PageCache(Mutex<VecDeque<Kept>>);

impl PageCache {
    pub(crate) fn get(&self, query: &pb::ListSessionsRequest) -> Option<(String, Bytes)> {
        let mut kept = self.0.lock().unwrap_or_else(PoisonError::into_inner);
        let at = kept.iter().position(|k| k.query == *query)?;
        let page = kept.remove(at)?;
        let found = (page.etag.clone(), page.body.clone());
        kept.push_front(page);
        Some(found)
    }

    pub(crate) fn keep(&self, query: pb::ListSessionsRequest, etag: String, body: Bytes) {
        if body.len() > MAX_KEPT_BYTES || etag.is_empty() {
            return;
        }
        let mut kept = self.0.lock().unwrap_or_else(PoisonError::into_inner);
        kept.retain(|k| k.query != query);
        kept.push_front(Kept { query, etag, body });
        kept.truncate(KEPT_PAGES);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn query(cursor: &str) -> pb::ListSessionsRequest {
        pb::ListSessionsRequest { cursor: cursor.into(), ..Default::default() }
    }

    #[test]
    fn the_cache_keeps_recent_small_pages_by_query() {
        let pages = PageCache::default();
        for i in 0..=KEPT_PAGES {
            pages.keep(query(&i.to_string()), format!("e{i}"), Bytes::from(vec![b'x'; 10]));
        }
        assert!(pages.get(&query("0")).is_none(), "the least recently used page goes first");
        assert_eq!(pages.get(&query("1")).unwrap().0, "e1");
        pages.keep(query("1"), "e1b".into(), Bytes::from_static(b"new"));
        assert_eq!(pages.get(&query("1")).unwrap(), ("e1b".to_owned(), Bytes::from_static(b"new")));
        assert_eq!(pages.0.lock().unwrap().len(), KEPT_PAGES, "a query is kept once");
        pages.keep(query("big"), "e".into(), Bytes::from(vec![b'x'; MAX_KEPT_BYTES + 1]));
        pages.keep(query("untagged"), String::new(), Bytes::from_static(b"{}"));
        assert!(pages.get(&query("big")).is_none() && pages.get(&query("untagged")).is_none());
    }
}
