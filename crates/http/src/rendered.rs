//! List answers kept as the bytes they were written to, with the rows they were written from:
//! a page the store hands out again from its list cache (the very same shared rows) is answered
//! without writing its JSON again.
//!
//! Why the rows and not a time to live: whether a page is stale is the store's call (its list
//! cache is validated on every read), so a body is reused only while the store hands out the
//! rows it was written from, compared by address. The kept rows hold those allocations, so an
//! address seen again is the same row, never a new one that reuses freed memory.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use actix_web::web::Bytes;
use kith_domain::ids::UserId;
use kith_domain::ports::Related;

/// What a kept row is counted as, beside the body: about what a `Related` takes (measured for
/// the store's list cache). Usually the store's cache holds the same rows, so this overcounts.
const ROW_BYTES: usize = 1024;

/// One page of one caller's list, as one route writes it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct PageKey {
    /// The route that writes it: each API has its own JSON.
    pub route: &'static str,
    /// The list's owner, the caller.
    pub owner: UserId,
    /// The id the page starts after.
    pub after: Option<UserId>,
    /// The page size asked for.
    pub limit: Option<u32>,
}

#[derive(Debug)]
struct Page {
    rows: Vec<Arc<Related>>,
    body: Bytes,
}

impl Page {
    fn cost(&self) -> usize {
        cost(&self.rows, &self.body)
    }
}

fn cost(rows: &[Arc<Related>], body: &Bytes) -> usize {
    rows.len()
        .saturating_mul(ROW_BYTES)
        .saturating_add(body.len())
}

#[derive(Debug, Default)]
struct Inner {
    pages: HashMap<PageKey, Page>,
    /// The pages' cost in bytes.
    bytes: usize,
}

/// Written pages, bounded by their bodies and rows in bytes.
#[derive(Debug)]
pub struct RenderedPages {
    max_bytes: usize,
    inner: Mutex<Inner>,
}

impl RenderedPages {
    /// Keeps at most `max_bytes` (bodies, and [`ROW_BYTES`] a row); `0` keeps nothing.
    pub fn new(max_bytes: usize) -> Self {
        Self {
            max_bytes,
            inner: Mutex::new(Inner::default()),
        }
    }

    /// As many bytes as a list cache of `rows` rows would take: the bound that keeps this
    /// beside the store's cache of that size.
    pub fn for_rows(rows: usize) -> Self {
        Self::new(rows.saturating_mul(ROW_BYTES))
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        // Each page is replaced whole, so a poisoned map is still sound; at worst its byte
        // count is off until the pages turn over.
        self.inner.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The body written from exactly `rows` for `key`: the kept one, or `write`'s, then kept.
    pub fn body<E>(
        &self,
        key: PageKey,
        rows: &[Arc<Related>],
        write: impl FnOnce(&[Arc<Related>]) -> Result<Bytes, E>,
    ) -> Result<Bytes, E> {
        if self.max_bytes == 0 {
            return write(rows);
        }
        if let Some(page) = self.lock().pages.get(&key) {
            let same = page.rows.len() == rows.len()
                && page.rows.iter().zip(rows).all(|(a, b)| Arc::ptr_eq(a, b));
            if same {
                return Ok(page.body.clone());
            }
        }
        let body = write(rows)?;
        self.keep(key, rows, body.clone());
        Ok(body)
    }

    fn keep(&self, key: PageKey, rows: &[Arc<Related>], body: Bytes) {
        let needed = cost(rows, &body);
        if needed > self.max_bytes {
            return;
        }
        let page = Page {
            rows: rows.to_vec(),
            body,
        };
        let mut inner = self.lock();
        if let Some(old) = inner.pages.insert(key, page) {
            inner.bytes = inner.bytes.saturating_sub(old.cost());
        }
        inner.bytes = inner.bytes.saturating_add(needed);
        // Arbitrary pages go (the map's order): no bookkeeping on the read path, and a page
        // dropped while still asked for costs one writing of its JSON.
        while inner.bytes > self.max_bytes {
            let Some(victim) = inner.pages.keys().find(|k| **k != key).copied() else {
                break;
            };
            if let Some(old) = inner.pages.remove(&victim) {
                inner.bytes = inner.bytes.saturating_sub(old.cost());
            }
        }
    }

    /// The bytes kept, for tests.
    #[cfg(test)]
    fn bytes(&self) -> usize {
        self.lock().bytes
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use std::convert::Infallible;

    use kith_domain::phone::Phone;
    use kith_domain::ports::UserProfile;
    use kith_domain::relationship::Side;

    use super::*;

    fn row(id: i64) -> Arc<Related> {
        let phone = Phone::from_e164(&format!("+86139{id:08}")).unwrap();
        let user = UserProfile {
            registered: true,
            nickname: format!("user {id}"),
            ..UserProfile::placeholder(UserId::new(id).unwrap(), phone, 0)
        };
        Arc::new(Related {
            user,
            mine: Side::default(),
            theirs: Side::default(),
        })
    }

    fn key(owner: i64) -> PageKey {
        PageKey {
            route: "/test",
            owner: UserId::new(owner).unwrap(),
            after: None,
            limit: None,
        }
    }

    /// Writes the rows' nicknames, counting the writes.
    fn writer<'a>(
        count: &'a std::cell::Cell<u32>,
    ) -> impl FnOnce(&[Arc<Related>]) -> Result<Bytes, Infallible> + 'a {
        move |rows| {
            count.set(count.get() + 1);
            let names: Vec<&str> = rows.iter().map(|r| r.user.nickname.as_str()).collect();
            Ok(Bytes::from(names.join(",")))
        }
    }

    #[test]
    fn the_same_rows_are_written_once() {
        let pages = RenderedPages::for_rows(100);
        let rows = vec![row(1), row(2)];
        let writes = std::cell::Cell::new(0);
        let a = pages.body(key(9), &rows, writer(&writes)).unwrap();
        let b = pages.body(key(9), &rows.clone(), writer(&writes)).unwrap();
        assert_eq!(
            (a.as_ref(), b.as_ref()),
            (&b"user 1,user 2"[..], &b"user 1,user 2"[..])
        );
        assert_eq!(writes.get(), 1);
    }

    #[test]
    fn equal_rows_at_other_addresses_are_written_again() {
        let pages = RenderedPages::for_rows(100);
        let writes = std::cell::Cell::new(0);
        pages.body(key(9), &[row(1)], writer(&writes)).unwrap();
        // The store read the page again (a stamp moved): new rows, even if equal.
        pages.body(key(9), &[row(1)], writer(&writes)).unwrap();
        // Another page of the same rows is another key.
        let rows = [row(1)];
        pages.body(key(9), &rows, writer(&writes)).unwrap();
        pages.body(key(8), &rows, writer(&writes)).unwrap();
        assert_eq!(writes.get(), 4);
    }

    #[test]
    fn a_changed_row_shows() {
        let pages = RenderedPages::for_rows(100);
        let writes = std::cell::Cell::new(0);
        let (one, two) = (row(1), row(2));
        pages
            .body(key(9), &[one.clone(), two.clone()], writer(&writes))
            .unwrap();
        let body = pages
            .body(key(9), &[one.clone(), row(3)], writer(&writes))
            .unwrap();
        assert_eq!(body.as_ref(), b"user 1,user 3");
        let body = pages.body(key(9), &[one], writer(&writes)).unwrap();
        assert_eq!(body.as_ref(), b"user 1", "a shorter page is another page");
        assert_eq!(writes.get(), 3);
    }

    #[test]
    fn the_bound_holds_and_zero_keeps_nothing() {
        let writes = std::cell::Cell::new(0);
        let off = RenderedPages::new(0);
        let rows = [row(1)];
        off.body(key(1), &rows, writer(&writes)).unwrap();
        off.body(key(1), &rows, writer(&writes)).unwrap();
        assert_eq!((writes.get(), off.bytes()), (2, 0));

        // Room for two one-row pages.
        let pages = RenderedPages::new(2 * (ROW_BYTES + 6));
        for owner in 1..=5 {
            pages.body(key(owner), &rows, writer(&writes)).unwrap();
            assert!(pages.bytes() <= 2 * (ROW_BYTES + 6), "{}", pages.bytes());
        }
        assert_eq!(pages.lock().pages.len(), 2);
        // The page just written is always among those kept.
        let before = writes.get();
        pages.body(key(5), &rows, writer(&writes)).unwrap();
        assert_eq!(writes.get(), before);
        // A page bigger than the bound is written every time and never kept.
        let small = RenderedPages::new(ROW_BYTES);
        small.body(key(1), &rows, writer(&writes)).unwrap();
        assert_eq!(small.bytes(), 0);
    }
}
