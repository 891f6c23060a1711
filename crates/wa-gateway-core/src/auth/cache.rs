//! A small bounded map from credential digests to verified principals.
//! Entries carry their own expiry; when full, expired entries go first, then
//! an arbitrary one, so memory stays bounded under any token churn.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Instant;

pub type Digest = [u8; 32];

pub struct TtlCache<V> {
    entries: Mutex<HashMap<Digest, (V, Instant)>>,
    capacity: usize,
}

impl<V: Clone> TtlCache<V> {
    pub fn new(capacity: usize) -> Self {
        Self { entries: Mutex::new(HashMap::new()), capacity: capacity.max(1) }
    }

    pub fn get(&self, key: &Digest) -> Option<V> {
        let mut entries = self.entries.lock().unwrap_or_else(|p| p.into_inner());
        match entries.get(key) {
            Some((value, expires)) if *expires > Instant::now() => Some(value.clone()),
            Some(_) => {
                entries.remove(key);
                None
            }
            None => None,
        }
    }

    pub fn insert(&self, key: Digest, value: V, expires: Instant) {
        let mut entries = self.entries.lock().unwrap_or_else(|p| p.into_inner());
        if entries.len() >= self.capacity && !entries.contains_key(&key) {
            let now = Instant::now();
            entries.retain(|_, (_, exp)| *exp > now);
            if entries.len() >= self.capacity {
                if let Some(victim) = entries.keys().next().copied() {
                    entries.remove(&victim);
                }
            }
        }
        entries.insert(key, (value, expires));
    }

    #[cfg(test)]
    fn len(&self) -> usize {
        self.entries.lock().unwrap_or_else(|p| p.into_inner()).len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn bounded_and_expiring() {
        let cache = TtlCache::new(2);
        let later = Instant::now() + Duration::from_secs(60);
        cache.insert([1; 32], 1, later);
        cache.insert([2; 32], 2, Instant::now());
        assert_eq!(cache.get(&[2; 32]), None, "expired entries are not served");
        cache.insert([3; 32], 3, later);
        cache.insert([4; 32], 4, later);
        assert_eq!(cache.len(), 2);
        assert_eq!(cache.get(&[4; 32]), Some(4));
    }
}
