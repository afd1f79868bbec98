//! The friend-list pages a store has read (the lists made only of rows with a friendship: the
//! friend list, friends, incoming and outgoing requests), each kept with its owner's stamp, so
//! that reading an unchanged list again costs one keyed read instead of a join over its rows.
//!
//! Why a stamp and not a time to live: a list must never be served stale, even to another
//! process's write. Every write that can change what an owner's friend list shows moves the
//! owner's `(version, list_stamp)` in the same transaction (see `docs/architecture.md`, "The
//! friend-list cache"), so a page read after the stamp is as new as the stamp says.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};

use kith_domain::ports::{Related, SideFilter};

/// An owner's `(version, list_stamp)` when a page was read.
pub(crate) type Stamp = (i64, i64);

/// A kept page: its rows, shared with every request it serves.
type Rows = Arc<[Arc<Related>]>;

/// One page of one owner's list: the owner, the list, the id it starts after, its size.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) struct PageKey {
    pub(crate) owner: i64,
    pub(crate) filter: SideFilter,
    pub(crate) after: i64,
    pub(crate) limit: i64,
}

/// The cached pages, bounded by their rows (each page counts one more, so empty pages are
/// bounded too).
#[derive(Debug)]
pub(crate) struct ListCache {
    max_rows: usize,
    inner: Mutex<Inner>,
}

#[derive(Debug, Default)]
struct Inner {
    pages: HashMap<PageKey, (Stamp, Rows)>,
    /// The pages' cost: rows, plus one per page.
    cost: usize,
}

fn cost(rows: &[Arc<Related>]) -> usize {
    rows.len().saturating_add(1)
}

impl Inner {
    /// Drops the page `key`, if kept, and its cost.
    fn remove(&mut self, key: &PageKey) {
        if let Some((_, rows)) = self.pages.remove(key) {
            self.cost = self.cost.saturating_sub(cost(&rows));
        }
    }
}

impl ListCache {
    /// A cache of at most `max_rows` rows; `0` keeps nothing.
    pub(crate) fn new(max_rows: usize) -> Self {
        Self {
            max_rows,
            inner: Mutex::new(Inner::default()),
        }
    }

    /// Whether this cache keeps anything, so a caller can skip reading the stamp.
    pub(crate) fn enabled(&self) -> bool {
        self.max_rows > 0
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        // A panic cannot leave a page half-written (each is replaced whole), so a poisoned
        // cache is still sound; at worst its cost count is off until the pages turn over.
        self.inner.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The page read at `stamp`, if kept; a page kept at another stamp is dropped.
    pub(crate) fn get(&self, key: PageKey, stamp: Stamp) -> Option<Vec<Arc<Related>>> {
        let rows = {
            let mut inner = self.lock();
            match inner.pages.get(&key) {
                Some((kept, rows)) if *kept == stamp => Arc::clone(rows),
                Some(_) => {
                    inner.remove(&key);
                    return None;
                }
                None => return None,
            }
        };
        // Copied outside the lock, the other workers waiting only for the pointer; a copy of
        // the page is of pointers to its rows, which are shared, not copied.
        Some(rows.to_vec())
    }

    /// Keeps `rows` as the page `key` at `stamp`, making room by dropping other pages.
    pub(crate) fn put(&self, key: PageKey, stamp: Stamp, rows: &[Arc<Related>]) {
        let needed = cost(rows);
        if needed > self.max_rows {
            return;
        }
        let page: Rows = rows.into();
        let mut inner = self.lock();
        inner.remove(&key);
        inner.pages.insert(key, (stamp, page));
        inner.cost = inner.cost.saturating_add(needed);
        if inner.cost > self.max_rows {
            // Arbitrary pages go (the hash map's order): no bookkeeping on the read path, and a
            // page dropped while still in use costs one join to read again.
            let mut freed = 0;
            let excess = inner.cost - self.max_rows;
            let victims: Vec<PageKey> = inner
                .pages
                .iter()
                .filter(|(k, _)| **k != key)
                .take_while(|(_, (_, rows))| {
                    let more = freed < excess;
                    freed += cost(rows);
                    more
                })
                .map(|(k, _)| *k)
                .collect();
            for k in victims {
                inner.remove(&k);
            }
        }
    }

    /// Rows and pages kept, for tests.
    #[cfg(test)]
    pub(crate) fn cost(&self) -> usize {
        self.lock().cost
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use kith_domain::ports::{Related, UserProfile};

    use super::*;

    fn rows(n: usize) -> Vec<Arc<Related>> {
        let phone = kith_domain::phone::Phone::from_e164("+8613900000001").unwrap();
        let user = UserProfile {
            registered: true,
            nickname: "n".to_owned(),
            ..UserProfile::placeholder(kith_domain::UserId::new(7).unwrap(), phone, 1)
        };
        (0..n)
            .map(|_| {
                Arc::new(Related {
                    user: user.clone(),
                    mine: Default::default(),
                    theirs: Default::default(),
                })
            })
            .collect()
    }

    fn key(owner: i64) -> PageKey {
        PageKey {
            owner,
            filter: SideFilter::Friendship,
            after: 0,
            limit: 10,
        }
    }

    #[test]
    fn a_page_is_served_only_at_its_stamp() {
        let cache = ListCache::new(100);
        cache.put(key(1), (3, 0), &rows(2));
        assert_eq!(cache.get(key(1), (3, 0)).map(|r| r.len()), Some(2));
        assert_eq!(cache.get(key(2), (3, 0)), None);
        assert_eq!(cache.get(key(1), (3, 1)), None);
        // The stale page was dropped, so even its old stamp misses now.
        assert_eq!(cache.get(key(1), (3, 0)), None);
        assert_eq!(cache.cost(), 0);
    }

    #[test]
    fn the_cache_stays_within_its_rows() {
        let cache = ListCache::new(20);
        for owner in 0..50 {
            cache.put(key(owner), (0, 0), &rows(4));
            assert!(cache.cost() <= 20, "{} rows kept", cache.cost());
            // The page just kept survives the room made for it.
            assert!(cache.get(key(owner), (0, 0)).is_some());
        }
        // Replacing a page does not count it twice.
        cache.put(key(49), (1, 0), &rows(4));
        cache.put(key(49), (2, 0), &rows(4));
        assert!(cache.cost() <= 20);
        // A page larger than the whole cache is not kept; nor is anything by a cache of 0.
        cache.put(key(100), (0, 0), &rows(20));
        assert_eq!(cache.get(key(100), (0, 0)), None);
        let off = ListCache::new(0);
        assert!(!off.enabled());
        off.put(key(1), (0, 0), &rows(0));
        assert_eq!(off.get(key(1), (0, 0)), None);
    }
}
