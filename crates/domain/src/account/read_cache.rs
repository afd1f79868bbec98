//! Store reads trusted for a short interval: the bounded, time-limited map under the session
//! and profile caches.
//!
//! A change made through this process is forgotten at once ([`ReadCache::forget`]), and a read
//! that began before it is not kept afterwards ([`ReadTicket`]). A change made by another
//! process sharing the store shows here once the entry is older than the interval: that is the
//! price of the saved read, and why the interval is short and can be set to zero.

use std::borrow::Borrow;
use std::collections::HashMap;
use std::hash::Hash;
use std::sync::{Mutex, MutexGuard, PoisonError};

use crate::ids::Millis;

#[derive(Debug)]
struct State<K, V> {
    /// Each value with the instant it was read.
    entries: HashMap<K, (V, Millis)>,
    /// Bumped by every forget, so that a read which began before it is not kept after it.
    generation: u64,
}

/// A bounded map from key to a value read from the store lately.
#[derive(Debug)]
pub(crate) struct ReadCache<K, V> {
    ttl: Millis,
    max_entries: usize,
    state: Mutex<State<K, V>>,
}

/// Proof of when a store read began; see [`ReadCache::put`].
#[derive(Debug, Clone, Copy)]
pub(crate) struct ReadTicket(u64);

impl<K: Eq + Hash, V: Clone> ReadCache<K, V> {
    /// Entries are trusted for `ttl` (none at all when it is 0); at most `max_entries` are kept.
    pub(crate) fn new(ttl: Millis, max_entries: usize) -> Self {
        Self {
            ttl,
            max_entries,
            state: Mutex::new(State {
                entries: HashMap::new(),
                generation: 0,
            }),
        }
    }

    fn lock(&self) -> MutexGuard<'_, State<K, V>> {
        // The map holds no invariant a panicking holder could break halfway.
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The value of `key`, if it was read less than `ttl` before `now`.
    pub(crate) fn get<Q>(&self, key: &Q, now: Millis) -> Option<V>
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        if self.ttl <= 0 {
            return None;
        }
        let state = self.lock();
        let (value, read_at) = state.entries.get(key)?;
        // A clock that went back makes `now - read_at` negative: still fresh, as it should be.
        (now - read_at < self.ttl).then(|| value.clone())
    }

    /// Taken before reading from the store and handed back to [`ReadCache::put`].
    pub(crate) fn ticket(&self) -> ReadTicket {
        ReadTicket(self.lock().generation)
    }

    /// Keeps `value`, read at `now`, unless something was forgotten since `ticket` was taken:
    /// the read may then have seen what the change replaced.
    pub(crate) fn put(&self, key: K, value: V, now: Millis, ticket: ReadTicket) {
        if self.ttl <= 0 {
            return;
        }
        let mut state = self.lock();
        if state.generation != ticket.0 {
            return;
        }
        if state.entries.len() >= self.max_entries && !state.entries.contains_key(&key) {
            let ttl = self.ttl;
            state.entries.retain(|_, (_, read_at)| now - *read_at < ttl);
            if state.entries.len() >= self.max_entries {
                // Full of fresh entries: this one is read from the store each time instead.
                return;
            }
        }
        state.entries.insert(key, (value, now));
    }

    /// Changes the kept value of `key`, if any, without making it fresher.
    pub(crate) fn update<Q>(&self, key: &Q, change: impl FnOnce(&mut V))
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        if let Some((value, _)) = self.lock().entries.get_mut(key) {
            change(value);
        }
    }

    /// Forgets `key`. Call it after the store has changed it.
    pub(crate) fn forget<Q>(&self, key: &Q)
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        let mut state = self.lock();
        state.generation += 1;
        state.entries.remove(key);
    }

    /// Forgets every entry for which `stale` holds. Call it after the store has changed them.
    pub(crate) fn forget_where(&self, mut stale: impl FnMut(&K, &V) -> bool) {
        let mut state = self.lock();
        state.generation += 1;
        state.entries.retain(|k, (v, _)| !stale(k, v));
    }

    /// How many entries are kept, fresh or not.
    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.lock().entries.len()
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn an_entry_lives_for_the_ttl_only() {
        let c = ReadCache::new(1000, 10);
        c.put("a", 1, 5000, c.ticket());
        assert_eq!(c.get("a", 5999), Some(1));
        assert_eq!(c.get("a", 6000), None);
        assert_eq!(c.get("b", 5000), None);
    }

    #[test]
    fn a_zero_ttl_keeps_nothing() {
        let c = ReadCache::new(0, 10);
        c.put("a", 1, 5000, c.ticket());
        assert_eq!(c.get("a", 5000), None);
        assert_eq!(c.len(), 0);
    }

    #[test]
    fn a_read_that_began_before_a_forget_is_not_kept() {
        let c = ReadCache::new(1000, 10);
        let before = c.ticket();
        c.forget("other");
        c.put("a", 1, 0, before);
        assert_eq!(c.get("a", 0), None);
        let before = c.ticket();
        c.forget_where(|_, _| false);
        c.put("a", 1, 0, before);
        assert_eq!(c.get("a", 0), None);
        c.put("a", 1, 0, c.ticket());
        assert_eq!(c.get("a", 0), Some(1));
    }

    #[test]
    fn forget_where_drops_only_what_it_matches() {
        let c = ReadCache::new(1000, 10);
        for (k, v) in [("a", 1), ("b", 2), ("c", 1)] {
            c.put(k, v, 0, c.ticket());
        }
        c.forget_where(|_, v| *v == 1);
        let kept: Vec<_> = ["a", "b", "c"].iter().map(|k| c.get(k, 0)).collect();
        assert_eq!(kept, [None, Some(2), None]);
        c.forget("b");
        assert_eq!(c.get("b", 0), None);
    }

    #[test]
    fn an_update_changes_the_value_but_not_the_read_time() {
        let c = ReadCache::new(1000, 10);
        c.put("a", 1, 0, c.ticket());
        c.update("a", |v| *v = 7);
        c.update("b", |v| *v = 7);
        assert_eq!(c.get("a", 999), Some(7));
        assert_eq!(c.get("a", 1000), None);
        assert_eq!(c.get("b", 0), None);
    }

    #[test]
    fn a_full_cache_drops_stale_entries_and_never_grows_past_its_bound() {
        let c = ReadCache::new(1000, 2);
        c.put("a", 1, 0, c.ticket());
        c.put("b", 2, 500, c.ticket());
        // Full of fresh entries: "c" is not kept, nothing is evicted.
        c.put("c", 3, 900, c.ticket());
        assert_eq!(c.get("c", 900), None);
        assert_eq!(c.get("a", 900), Some(1));
        // A kept key may still be refreshed.
        c.put("b", 4, 900, c.ticket());
        assert_eq!(c.get("b", 900), Some(4));
        // "a" is stale at 1200 and makes room.
        c.put("c", 3, 1200, c.ticket());
        assert_eq!(c.get("c", 1200), Some(3));
        assert_eq!(c.get("b", 1200), Some(4));
        assert_eq!(c.len(), 2);
    }
}
