//! Duplicates within one job: the last version of a contact or group wins
//! entirely, and counters report the rows actually stored.
//!
//! Within a batch, later items replace earlier ones in memory. Across
//! batches, [`Seen`] keeps a 64-bit hash of every jid staged so far: a jid
//! whose hash is absent was certainly never staged; one whose hash is present
//! may have been, and the store confirms and replaces it. So the store is
//! asked only about likely repeats, and memory is ~16 bytes per distinct jid,
//! bounded by the per-job caps.

use std::collections::{HashMap, HashSet};
use std::hash::{BuildHasher, RandomState};

use crate::directory::{Contact, Group, Participant};

/// Most distinct contacts one job stores; a host past it is misbehaving.
pub const MAX_CONTACTS_PER_JOB: usize = 2_000_000;
/// Most distinct groups one job stores.
pub const MAX_GROUPS_PER_JOB: usize = 200_000;

/// Keeps the last item of each key, in the order of their last appearance.
fn last_wins<T>(items: Vec<T>, key: impl Fn(&T) -> &str) -> Vec<T> {
    let mut last: HashMap<String, usize> = HashMap::with_capacity(items.len());
    for (i, item) in items.iter().enumerate() {
        last.insert(key(item).to_owned(), i);
    }
    if last.len() == items.len() {
        return items;
    }
    items.into_iter().enumerate().filter(|(i, item)| last.get(key(item)) == Some(i)).map(|(_, item)| item).collect()
}

pub fn contacts(batch: Vec<Contact>) -> Vec<Contact> {
    last_wins(batch, |c| &c.jid)
}

/// Distinct groups, each with distinct participants.
pub fn groups(batch: Vec<Group>) -> Vec<Group> {
    let mut groups = last_wins(batch, |g| &g.info.jid);
    for group in &mut groups {
        let participants = std::mem::take(&mut group.participants);
        group.participants = last_wins(participants, |p: &Participant| &p.jid);
    }
    groups
}

/// Hashes of the jids a job has staged, per kind.
pub struct Seen {
    hasher: RandomState,
    jids: HashSet<u64>,
    limit: usize,
}

impl Seen {
    pub fn new(limit: usize) -> Self {
        Self { hasher: RandomState::new(), jids: HashSet::new(), limit }
    }

    /// Records `jids` (distinct) and returns those that may have been staged
    /// before; `Err` with the limit when the job would exceed it.
    pub fn record<'a>(&mut self, jids: impl Iterator<Item = &'a str>) -> Result<Vec<&'a str>, usize> {
        let mut maybe = Vec::new();
        for jid in jids {
            if !self.jids.insert(self.hasher.hash_one(jid)) {
                maybe.push(jid);
            }
        }
        if self.jids.len() > self.limit { Err(self.limit) } else { Ok(maybe) }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::directory::GroupInfo;

    fn contact(jid: &str, name: &str) -> Contact {
        Contact {
            jid: jid.into(),
            push_name: Some(name.into()),
            lid: None,
            phone_number: None,
            full_name: None,
            first_name: None,
            business_name: None,
        }
    }

    #[test]
    fn the_last_version_wins() {
        let kept = contacts(vec![contact("a", "1"), contact("b", "1"), contact("a", "2")]);
        assert_eq!(kept, vec![contact("b", "1"), contact("a", "2")]);
        let member = |jid: &str, admin| Participant {
            jid: jid.into(),
            is_admin: admin,
            lid: None,
            phone_number: None,
            is_super_admin: false,
            display_name: None,
        };
        let info = GroupInfo {
            jid: "g".into(),
            name: None,
            topic: None,
            owner_jid: None,
            created_at: None,
            is_announce: false,
            is_locked: false,
            addressing_mode: None,
        };
        let kept = groups(vec![
            Group { info: info.clone(), participants: vec![member("1", false), member("2", false)] },
            Group { info, participants: vec![member("3", false), member("3", true)] },
        ]);
        assert_eq!(kept.len(), 1);
        assert_eq!(kept[0].participants, vec![member("3", true)], "replaced, never merged");
    }

    #[test]
    fn seen_reports_possible_repeats_and_enforces_the_cap() {
        let mut seen = Seen::new(3);
        assert_eq!(seen.record(["a", "b"].into_iter()), Ok(vec![]));
        assert_eq!(seen.record(["b", "c"].into_iter()), Ok(vec!["b"]));
        assert_eq!(seen.record(["d"].into_iter()), Err(3));
    }
}
