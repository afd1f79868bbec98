//! Sessions read from the store lately, trusted for a few seconds so that a busy client costs
//! one session read per interval rather than one per request.
//!
//! A session revoked through this process (logout, a password change or reset) is forgotten at
//! once. One revoked by another process sharing the database stays usable here until its entry
//! is older than the interval: that is the price of the saved read, and why the interval is
//! short and can be set to zero.

use std::collections::HashMap;
use std::sync::{Mutex, MutexGuard, PoisonError};

use crate::ids::{Millis, UserId};
use crate::ports::SessionRecord;

/// What is kept of one session; its token hash is the map's key.
#[derive(Debug, Clone, Copy)]
struct Entry {
    user_id: UserId,
    created_at: Millis,
    last_seen_at: Millis,
    read_at: Millis,
}

#[derive(Debug, Default)]
struct State {
    entries: HashMap<String, Entry>,
    /// Bumped by every revocation, so that a read which began before it is not cached after it.
    generation: u64,
}

/// A bounded map from token hash to a recently read session.
#[derive(Debug)]
pub(crate) struct SessionCache {
    ttl: Millis,
    max_entries: usize,
    state: Mutex<State>,
}

/// Proof of when a store read began; see [`SessionCache::put`].
#[derive(Debug, Clone, Copy)]
pub(crate) struct ReadTicket(u64);

impl SessionCache {
    /// Entries are trusted for `ttl` (none at all when it is 0); at most `max_entries` are kept.
    pub(crate) fn new(ttl: Millis, max_entries: usize) -> Self {
        Self {
            ttl,
            max_entries,
            state: Mutex::new(State::default()),
        }
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        // The map holds no invariant a panicking holder could break halfway.
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The session of `token_hash`, if it was read less than `ttl` before `now`.
    pub(crate) fn get(&self, token_hash: &str, now: Millis) -> Option<SessionRecord> {
        if self.ttl <= 0 {
            return None;
        }
        let state = self.lock();
        let e = state.entries.get(token_hash)?;
        // A clock that went back makes `now - read_at` negative: still fresh, as it should be.
        (now - e.read_at < self.ttl).then(|| SessionRecord {
            token_hash: token_hash.to_owned(),
            user_id: e.user_id,
            created_at: e.created_at,
            last_seen_at: e.last_seen_at,
        })
    }

    /// Taken before reading a session from the store and handed back to [`SessionCache::put`].
    pub(crate) fn ticket(&self) -> ReadTicket {
        ReadTicket(self.lock().generation)
    }

    /// Keeps `session`, read at `now`, unless a revocation happened since `ticket` was taken:
    /// the read may then have seen a session that is gone.
    pub(crate) fn put(&self, session: &SessionRecord, now: Millis, ticket: ReadTicket) {
        if self.ttl <= 0 {
            return;
        }
        let mut state = self.lock();
        if state.generation != ticket.0 {
            return;
        }
        if state.entries.len() >= self.max_entries
            && !state.entries.contains_key(&session.token_hash)
        {
            let ttl = self.ttl;
            state.entries.retain(|_, e| now - e.read_at < ttl);
            if state.entries.len() >= self.max_entries {
                // Full of fresh entries: read this one from the store each time instead.
                return;
            }
        }
        state.entries.insert(
            session.token_hash.clone(),
            Entry {
                user_id: session.user_id,
                created_at: session.created_at,
                last_seen_at: session.last_seen_at,
                read_at: now,
            },
        );
    }

    /// Records that the store's `last_seen_at` of `token_hash` is now `at`, so that the next
    /// request does not touch the session again.
    pub(crate) fn touched(&self, token_hash: &str, at: Millis) {
        if let Some(e) = self.lock().entries.get_mut(token_hash) {
            e.last_seen_at = at;
        }
    }

    /// Forgets one session. Call it after the store has revoked it.
    pub(crate) fn forget(&self, token_hash: &str) {
        let mut state = self.lock();
        state.generation += 1;
        state.entries.remove(token_hash);
    }

    /// Forgets every session of `user` but `except`. Call it after the store has revoked them.
    pub(crate) fn forget_user(&self, user: UserId, except: Option<&str>) {
        let mut state = self.lock();
        state.generation += 1;
        state
            .entries
            .retain(|hash, e| e.user_id != user || Some(hash.as_str()) == except);
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn session(hash: &str, user: i64) -> SessionRecord {
        SessionRecord {
            token_hash: hash.to_owned(),
            user_id: UserId::new(user).unwrap(),
            created_at: 1,
            last_seen_at: 2,
        }
    }

    #[test]
    fn an_entry_lives_for_the_ttl_only() {
        let c = SessionCache::new(1000, 10);
        c.put(&session("a", 1), 5000, c.ticket());
        assert_eq!(c.get("a", 5999), Some(session("a", 1)));
        assert_eq!(c.get("a", 6000), None);
        assert_eq!(c.get("b", 5000), None);
    }

    #[test]
    fn a_zero_ttl_keeps_nothing() {
        let c = SessionCache::new(0, 10);
        c.put(&session("a", 1), 5000, c.ticket());
        assert_eq!(c.get("a", 5000), None);
    }

    #[test]
    fn a_read_that_began_before_a_revocation_is_not_kept() {
        let c = SessionCache::new(1000, 10);
        let before = c.ticket();
        c.forget("other");
        c.put(&session("a", 1), 0, before);
        assert_eq!(c.get("a", 0), None);
        c.put(&session("a", 1), 0, c.ticket());
        assert!(c.get("a", 0).is_some());
    }

    #[test]
    fn forgetting_a_user_keeps_only_the_session_spared() {
        let c = SessionCache::new(1000, 10);
        for (hash, user) in [("a", 1), ("b", 1), ("c", 1), ("d", 2)] {
            c.put(&session(hash, user), 0, c.ticket());
        }
        c.forget_user(UserId::new(1).unwrap(), Some("b"));
        let kept: Vec<bool> = ["a", "b", "c", "d"]
            .iter()
            .map(|h| c.get(h, 0).is_some())
            .collect();
        assert_eq!(kept, [false, true, false, true]);
        c.forget("b");
        assert_eq!(c.get("b", 0), None);
    }

    #[test]
    fn a_touch_moves_last_seen_but_not_the_read_time() {
        let c = SessionCache::new(1000, 10);
        c.put(&session("a", 1), 0, c.ticket());
        c.touched("a", 700);
        assert_eq!(c.get("a", 999).map(|s| s.last_seen_at), Some(700));
        assert_eq!(c.get("a", 1000), None);
    }

    #[test]
    fn a_full_cache_drops_stale_entries_and_never_grows_past_its_bound() {
        let c = SessionCache::new(1000, 2);
        c.put(&session("a", 1), 0, c.ticket());
        c.put(&session("b", 1), 500, c.ticket());
        // Full of fresh entries: "c" is not kept, nothing is evicted.
        c.put(&session("c", 1), 900, c.ticket());
        assert_eq!(c.get("c", 900), None);
        assert!(c.get("a", 900).is_some());
        // "a" is stale at 1200 and makes room.
        c.put(&session("c", 1), 1200, c.ticket());
        assert!(c.get("c", 1200).is_some());
        assert!(c.get("b", 1200).is_some());
        assert_eq!(c.lock().entries.len(), 2);
    }
}
