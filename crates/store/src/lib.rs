//! Kith's storage adapter: the domain's storage ports on SQLite or PostgreSQL through Diesel.
//!
//! [`Store::open`] takes `sqlite://PATH` or `postgres://...`; one set of query code serves both
//! backends through [`DbConn`], a Diesel `MultiConnection`. Every port call runs on tokio's
//! blocking pool, except PostgreSQL's hot reads, which run on the calling worker's own async
//! connections (`async_pg`). Relationship transitions asked for at the same time share one
//! transaction (`batch`). [`Store::migrate`] applies the embedded migrations from `migrations/sqlite`
//! or `migrations/postgres`. The `testing` feature adds [`testing`]: throwaway databases on
//! both backends for tests.

mod accounts;
mod addressbook;
mod async_pg;
mod batch;
mod captchas;
mod checkpoint;
mod conn;
mod error;
mod groups;
pub mod invariants;
mod list_cache;
mod relationships;
mod schema;
mod sqlite_writer;
mod sqlite_writes;
mod store;
mod sync;

#[cfg(any(test, feature = "testing"))]
pub mod testing;

#[cfg(test)]
mod tests;

pub use conn::DbConn;
pub use error::StoreError;
pub use store::{
    Store, StoreOptions, DEFAULT_LIST_CACHE_ROWS, DEFAULT_SQLITE_WAL_RESET_BYTES,
    DEFAULT_TRANSITION_BATCHES_POSTGRES, DEFAULT_TRANSITION_BATCHES_SQLITE,
};
