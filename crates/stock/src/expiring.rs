//! The memory ledger's maps of claim records and users: millions of entries in a busy
//! campaign, behind the ledger's one lock. Two things must never walk all of them while a
//! claim waits: a hash table growing past its capacity (a rehash of every entry) and the
//! dropping of expired entries. So a map is kept in parts by key hash, each with a heap of
//! when its entries expire: a part grows on its own, and each claim drops a few expired
//! entries of one part, in turn.

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap};
use std::hash::{BuildHasher, Hash, RandomState};

use chrono::{DateTime, Utc};

/// Parts per map: a rehash moves 1/64 of the entries (about 100,000 of 7 million users).
const PARTS: usize = 64;

/// An entry that stops counting at a time.
pub(crate) trait Expires {
    fn expires_at(&self) -> DateTime<Utc>;
}

#[derive(Debug)]
struct Part<K, V> {
    map: HashMap<K, V>,
    /// Every write, by the expiry it wrote. An entry rewritten since (a later expiry) is
    /// left alone when an older one comes up: the rewrite queued its own.
    expiry: BinaryHeap<Reverse<(DateTime<Utc>, K)>>,
}

#[derive(Debug)]
pub(crate) struct Expiring<K, V> {
    parts: Vec<Part<K, V>>,
    hasher: RandomState,
    /// The part whose expired entries go next.
    next: usize,
}

impl<K, V> Default for Expiring<K, V> {
    fn default() -> Self {
        Self {
            parts: (0..PARTS)
                .map(|_| Part {
                    map: HashMap::new(),
                    expiry: BinaryHeap::new(),
                })
                .collect(),
            hasher: RandomState::new(),
            next: 0,
        }
    }
}

impl<K: Hash + Eq + Ord + Clone, V: Expires> Expiring<K, V> {
    fn part(&self, key: &K) -> usize {
        // The remainder is below PARTS, so it fits a usize.
        (self.hasher.hash_one(key) % PARTS as u64) as usize
    }

    pub(crate) fn get(&self, key: &K) -> Option<&V> {
        self.parts[self.part(key)].map.get(key)
    }

    pub(crate) fn get_mut(&mut self, key: &K) -> Option<&mut V> {
        let part = self.part(key);
        self.parts[part].map.get_mut(key)
    }

    pub(crate) fn insert(&mut self, key: K, value: V) -> Option<V> {
        let part = self.part(&key);
        let part = &mut self.parts[part];
        part.expiry.push(Reverse((value.expires_at(), key.clone())));
        part.map.insert(key, value)
    }

    pub(crate) fn remove(&mut self, key: &K) -> Option<V> {
        let part = self.part(key);
        self.parts[part].map.remove(key)
    }

    /// Removes the entry if it has expired, so it reads as absent.
    pub(crate) fn remove_expired(&mut self, key: &K, now: DateTime<Utc>) {
        if self.get(key).is_some_and(|v| v.expires_at() <= now) {
            self.remove(key);
        }
    }

    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.parts.iter().map(|p| p.map.len()).sum()
    }

    /// Drops at most `budget` expired entries of the next part.
    pub(crate) fn drop_expired(&mut self, now: DateTime<Utc>, budget: usize) {
        let part = &mut self.parts[self.next];
        self.next = (self.next + 1) % PARTS;
        for _ in 0..budget {
            match part.expiry.peek() {
                Some(Reverse((at, _))) if *at <= now => {}
                _ => break,
            }
            let Some(Reverse((_, key))) = part.expiry.pop() else {
                break;
            };
            if part.map.get(&key).is_some_and(|v| v.expires_at() <= now) {
                part.map.remove(&key);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug)]
    struct At(DateTime<Utc>);

    impl Expires for At {
        fn expires_at(&self) -> DateTime<Utc> {
            self.0
        }
    }

    #[test]
    fn a_rewritten_entry_outlives_its_first_expiry() {
        let mut m = Expiring::default();
        let now = Utc::now();
        m.insert(1, At(now - chrono::Duration::seconds(1)));
        m.insert(1, At(now + chrono::Duration::hours(1)));
        m.insert(2, At(now - chrono::Duration::seconds(1)));
        for _ in 0..PARTS {
            m.drop_expired(now, 8);
        }
        assert!(m.get(&1).is_some(), "rewritten with a later expiry");
        assert!(m.get(&2).is_none(), "expired");
        assert_eq!(m.len(), 1);
    }

    #[test]
    fn entries_spread_over_the_parts() {
        let mut m = Expiring::default();
        let later = Utc::now() + chrono::Duration::hours(1);
        for i in 0..64_000 {
            m.insert(i, At(later));
        }
        let largest = m.parts.iter().map(|p| p.map.len()).max().unwrap_or(0);
        assert!(
            largest < 2_000,
            "the largest part holds {largest} of 64,000"
        );
    }
}
