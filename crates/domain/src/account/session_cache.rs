//! Sessions read from the store lately, trusted for a few seconds so that a busy client costs
//! one session read per interval rather than one per request.
//!
//! A session revoked through this process (logout, a password change or reset) is forgotten at
//! once; one revoked by another process sharing the database, within the interval (see
//! [`super::read_cache`]).

use super::read_cache::{ReadCache, ReadTicket};
use crate::ids::{Millis, UserId};
use crate::ports::SessionRecord;

/// What is kept of one session; its token hash is the map's key.
#[derive(Debug, Clone, Copy)]
struct Entry {
    user_id: UserId,
    created_at: Millis,
    last_seen_at: Millis,
}

/// A bounded map from token hash to a recently read session.
#[derive(Debug)]
pub(crate) struct SessionCache(ReadCache<String, Entry>);

impl SessionCache {
    /// Entries are trusted for `ttl` (none at all when it is 0); at most `max_entries` are kept.
    pub(crate) fn new(ttl: Millis, max_entries: usize) -> Self {
        Self(ReadCache::new(ttl, max_entries))
    }

    /// The session of `token_hash`, if it was read less than `ttl` before `now`.
    pub(crate) fn get(&self, token_hash: &str, now: Millis) -> Option<SessionRecord> {
        self.0.get(token_hash, now).map(|e| SessionRecord {
            token_hash: token_hash.to_owned(),
            user_id: e.user_id,
            created_at: e.created_at,
            last_seen_at: e.last_seen_at,
        })
    }

    /// Taken before reading a session from the store and handed back to [`SessionCache::put`].
    pub(crate) fn ticket(&self) -> ReadTicket {
        self.0.ticket()
    }

    /// Keeps `session`, read at `now`, unless a revocation happened since `ticket` was taken.
    pub(crate) fn put(&self, session: &SessionRecord, now: Millis, ticket: ReadTicket) {
        let entry = Entry {
            user_id: session.user_id,
            created_at: session.created_at,
            last_seen_at: session.last_seen_at,
        };
        self.0.put(session.token_hash.clone(), entry, now, ticket);
    }

    /// Records that the store's `last_seen_at` of `token_hash` is now `at`, so that the next
    /// request does not touch the session again.
    pub(crate) fn touched(&self, token_hash: &str, at: Millis) {
        self.0.update(token_hash, |e| e.last_seen_at = at);
    }

    /// Forgets one session. Call it after the store has revoked it.
    pub(crate) fn forget(&self, token_hash: &str) {
        self.0.forget(token_hash);
    }

    /// Forgets every session of `user` but `except`. Call it after the store has revoked them.
    pub(crate) fn forget_user(&self, user: UserId, except: Option<&str>) {
        self.0
            .forget_where(|hash, e| e.user_id == user && Some(hash.as_str()) != except);
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
    fn a_session_comes_back_as_it_was_read() {
        let c = SessionCache::new(1000, 10);
        c.put(&session("a", 1), 5000, c.ticket());
        assert_eq!(c.get("a", 5999), Some(session("a", 1)));
        assert_eq!(c.get("a", 6000), None);
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
}
