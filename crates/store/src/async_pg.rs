//! PostgreSQL work on the async worker that asks for it: a few tokio-postgres connections per
//! worker thread, so a hot read or a relationship transition needs no hand-off to the blocking
//! pool and back.
//!
//! Why per thread: tokio-postgres drives each connection's socket from a task spawned on the
//! runtime that opened it. actix-web runs one single-threaded runtime per worker, so a
//! connection opened on worker A and borrowed by worker B would wake A for every message, the
//! same cross-thread hop the blocking pool costs. Each thread therefore opens and keeps its own
//! connections; a future never takes a connection from another thread's pool.
//!
//! The other writes stay on the blocking pool (`Store::run`), and so does everything on SQLite,
//! which has no async driver. A transition's steps are written once for both kinds of
//! connection (`relationships::transition_attempt!`).

use std::cell::RefCell;
use std::future::Future;
use std::marker::PhantomData;
use std::pin::Pin;
use std::str::FromStr;
use std::sync::{Arc, Mutex, OnceLock, PoisonError, Weak};
use std::time::{Duration, Instant};

use diesel::pg::{Pg, PgQueryBuilder};
use diesel::query_builder::{AstPass, Query, QueryBuilder, QueryFragment, QueryId};
use diesel::QueryResult;
use diesel_async::pooled_connection::PoolableConnection;
use diesel_async::{AsyncPgConnection, SimpleAsyncConnection};
use tokio::sync::Semaphore;
use tokio_postgres::config::SslMode;

use crate::conn::TRUSTED_FOR;
use crate::error::StoreError;
use crate::store::LinkTimeouts;

/// The future of work on a worker connection; it borrows the connection it runs on.
pub(crate) type ConnFuture<'c, U> = Pin<Box<dyn Future<Output = U> + Send + 'c>>;

/// How to open this store's per-thread connections, and how many each thread may hold.
#[derive(Clone)]
pub(crate) struct AsyncPg {
    /// Identifies the store (its clones share it) in each thread's pools; once every clone is
    /// gone, threads drop that store's connections on their next read.
    alive: Arc<()>,
    config: tokio_postgres::Config,
    per_thread: usize,
    connect_timeout: Duration,
}

impl std::fmt::Debug for AsyncPg {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The config may carry a password.
        f.debug_struct("AsyncPg")
            .field("per_thread", &self.per_thread)
            .finish_non_exhaustive()
    }
}

/// An idle connection and when a call on it last succeeded.
struct Idle {
    conn: AsyncPgConnection,
    last_ok: Instant,
}

/// One thread's connections for one store.
struct ThreadPool {
    idle: Mutex<Vec<Idle>>,
    /// One permit per connection the thread may hold; a read waits here (asynchronously) when
    /// all are busy.
    permits: Semaphore,
}

thread_local! {
    /// This thread's pools, by store (see `AsyncPg::alive`).
    static POOLS: RefCell<Vec<(Weak<()>, Arc<ThreadPool>)>> = const { RefCell::new(Vec::new()) };
}

impl AsyncPg {
    /// The async settings for `url` (as the user gave it, before libpq's parameters were
    /// added), or `None` with a warning when tokio-postgres cannot serve it: a libpq-only
    /// parameter, or TLS required (this build has no TLS). Reads then use the blocking pool.
    pub(crate) fn new(url: &str, per_thread: u32, connect_timeout: Duration) -> Option<AsyncPg> {
        if per_thread == 0 {
            return None;
        }
        let mut config = match tokio_postgres::Config::from_str(url) {
            Ok(config) => config,
            Err(error) => {
                tracing::warn!(
                    %error,
                    "PostgreSQL reads go through the blocking pool: the async driver cannot parse \
                     the database URL"
                );
                return None;
            }
        };
        if config.get_ssl_mode() == SslMode::Require {
            tracing::warn!("PostgreSQL reads go through the blocking pool: the URL requires TLS");
            return None;
        }
        // The bounds `parse_url` gives libpq, unless the URL sets its own. Not through the URL:
        // tokio-postgres reads `tcp_user_timeout` in seconds where libpq reads milliseconds,
        // and knows `keepalives_count` as `keepalives_retries`.
        let link = LinkTimeouts::new(connect_timeout);
        if config.get_connect_timeout().is_none() {
            config.connect_timeout(link.timeout);
        }
        if config.get_tcp_user_timeout().is_none() {
            config.tcp_user_timeout(link.timeout);
        }
        if !url.contains("keepalives_idle=") {
            config.keepalives_idle(link.timeout);
        }
        if !url.contains("keepalives_interval=") {
            config.keepalives_interval(link.keepalive_interval);
        }
        if !url.contains("keepalives_retries=") {
            config.keepalives_retries(link.keepalive_count);
        }
        Some(AsyncPg {
            alive: Arc::new(()),
            config,
            per_thread: usize::try_from(per_thread).unwrap_or(usize::MAX),
            connect_timeout,
        })
    }

    /// This thread's pool for this store, created on first use. Pools of stores that are gone
    /// are dropped here, closing their connections.
    fn local(&self) -> Arc<ThreadPool> {
        POOLS.with(|pools| {
            let mut pools = pools.borrow_mut();
            pools.retain(|(store, _)| store.strong_count() > 0);
            // Compared by address, so a read takes no reference count of its own.
            let me = Arc::as_ptr(&self.alive);
            if let Some((_, pool)) = pools.iter().find(|(store, _)| store.as_ptr() == me) {
                return Arc::clone(pool);
            }
            let pool = Arc::new(ThreadPool {
                idle: Mutex::new(Vec::new()),
                permits: Semaphore::new(self.per_thread),
            });
            pools.push((Arc::downgrade(&self.alive), Arc::clone(&pool)));
            pool
        })
    }

    /// Runs `f` on a connection of this thread, opening one if none is idle. The error is
    /// about the connection; `f`'s own result is inside.
    pub(crate) async fn run<U, F>(&self, f: F) -> Result<U, StoreError>
    where
        F: for<'c> FnOnce(&'c mut AsyncPgConnection) -> ConnFuture<'c, U> + Send,
    {
        let pool = self.local();
        let _permit = tokio::time::timeout(self.connect_timeout, pool.permits.acquire())
            .await
            .map_err(|_| StoreError::Unavailable("timed out waiting for a connection".into()))?
            .map_err(|_| StoreError::Unavailable("connection pool closed".into()))?;
        let mut conn = self.checkout(&pool).await?;
        let result = f(&mut conn).await;
        // A failure that lost the socket, or left a transaction it could not roll back, drops
        // the connection; any other (no row, a constraint) leaves it healthy. The permit is
        // released when this returns.
        if !conn.is_broken() {
            pool.idle
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .push(Idle {
                    conn,
                    last_ok: Instant::now(),
                });
        }
        Ok(result)
    }

    /// An idle connection that is still alive, or a new one. One idle past `TRUSTED_FOR` is
    /// pinged first, as the blocking pool does: a restarted server would otherwise fail the
    /// read that draws it.
    async fn checkout(&self, pool: &ThreadPool) -> Result<AsyncPgConnection, StoreError> {
        loop {
            let idle = pool
                .idle
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .pop();
            let Some(Idle { mut conn, last_ok }) = idle else {
                break;
            };
            if conn.is_broken() {
                continue;
            }
            if last_ok.elapsed() < TRUSTED_FOR || conn.batch_execute("SELECT 1").await.is_ok() {
                return Ok(conn);
            }
        }
        let (client, connection) = self
            .config
            .connect(tokio_postgres::NoTls)
            .await
            .map_err(|e| StoreError::Unavailable(format!("cannot connect to PostgreSQL: {e}")))?;
        // Spawns the task that drives the socket on this thread's runtime.
        Ok(AsyncPgConnection::try_from_client_and_connection(client, connection).await?)
    }
}

/// Where a [`Prerendered`] query keeps its SQL text: one cell per query, made by `read!`.
pub(crate) trait SqlCell: 'static {
    /// The cell, empty until the query first runs.
    fn cell() -> &'static OnceLock<String>;
}

/// A query whose SQL text is rendered on its first run only.
///
/// diesel-async renders a query's SQL on every run, before it looks in its statement cache
/// (Diesel's own connections skip that for a query with a static id): 17 % of a PostgreSQL
/// profile read's instructions went on it (docs/benchmarks.md). This hands over the text
/// rendered the first time. Like [`Cached`](crate::conn::Cached), it is only for a query whose
/// SQL is the same on every call with this `Id`; the binds are collected from the query itself
/// on every run.
pub(crate) struct Prerendered<Q, Id> {
    query: Q,
    id: PhantomData<Id>,
}

impl<Q, Id> Prerendered<Q, Id> {
    /// Wraps `query`, whose SQL must be the same on every call with this `Id`.
    pub(crate) fn new(query: Q) -> Self {
        Self {
            query,
            id: PhantomData,
        }
    }
}

impl<Q, Id: 'static> QueryId for Prerendered<Q, Id> {
    type QueryId = Id;
    const HAS_STATIC_QUERY_ID: bool = true;
}

impl<Q: Query, Id> Query for Prerendered<Q, Id> {
    type SqlType = Q::SqlType;
}

impl<Q: QueryFragment<Pg>, Id: SqlCell> QueryFragment<Pg> for Prerendered<Q, Id> {
    fn walk_ast<'b>(&'b self, pass: AstPass<'_, 'b, Pg>) -> QueryResult<()> {
        self.query.walk_ast(pass)
    }

    fn to_sql(&self, out: &mut PgQueryBuilder, backend: &Pg) -> QueryResult<()> {
        let cell = Id::cell();
        if let Some(sql) = cell.get() {
            out.push_sql(sql);
            return Ok(());
        }
        let mut fresh = PgQueryBuilder::default();
        self.query.to_sql(&mut fresh, backend)?;
        let sql = fresh.finish();
        out.push_sql(&sql);
        // A query whose text may vary (an IN list) is rendered every time, as Diesel would.
        if self.query.is_safe_to_cache_prepared(backend)? {
            let _ = cell.set(sql);
        }
        Ok(())
    }

    // Passed on, so a `Cached` write inside stays a prepared statement.
    fn is_safe_to_cache_prepared(&self, backend: &Pg) -> QueryResult<bool> {
        self.query.is_safe_to_cache_prepared(backend)
    }
}

/// `$query` as a [`Prerendered`] query with a SQL cell of its own: one type, and so one cell
/// and one statement-cache entry, per expansion.
macro_rules! prerendered {
    ($query:expr) => {{
        struct Sql;
        impl $crate::async_pg::SqlCell for Sql {
            fn cell() -> &'static std::sync::OnceLock<String> {
                static CELL: std::sync::OnceLock<String> = std::sync::OnceLock::new();
                &CELL
            }
        }
        $crate::async_pg::Prerendered::<_, Sql>::new($query)
    }};
}
pub(crate) use prerendered;

/// Runs a read query written once: on PostgreSQL on the calling thread's own async connection
/// (when the store has them), otherwise on the blocking pool through [`native!`]. `$query` is a
/// query-builder expression (it is compiled for each connection type), `$method` the
/// `RunQueryDsl` method that runs it (`get_result`, `load`, ...), and `$then` a closure from
/// its `QueryResult` to `Result<T, StoreError>`. Returns `DomainResult<T>`.
///
/// [`native!`]: crate::conn::native
macro_rules! read {
    ($store:expr, $query:expr, $method:ident, $then:expr) => {
        match $store.async_pg() {
            Some(pg) => {
                $store
                    .on_worker(async move {
                        let result = pg
                            .run(move |c| {
                                Box::pin(diesel_async::RunQueryDsl::$method(
                                    $crate::async_pg::prerendered!($query),
                                    c,
                                ))
                            })
                            .await?;
                        ($then)(result)
                    })
                    .await
            }
            None => {
                $store
                    .run(move |conn| {
                        ($then)($crate::conn::native!(conn, |c| {
                            diesel::RunQueryDsl::$method($query, c)
                        }))
                    })
                    .await
            }
        }
    };
}
pub(crate) use read;

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use diesel::dsl::sql;
    use diesel::prelude::*;
    use diesel::sql_types::Bool;

    use super::*;
    use crate::schema::users;

    fn render(query: &impl QueryFragment<Pg>) -> String {
        let mut out = PgQueryBuilder::default();
        query.to_sql(&mut out, &Pg).unwrap();
        out.finish()
    }

    macro_rules! cell {
        ($name:ident) => {
            struct $name;
            impl SqlCell for $name {
                fn cell() -> &'static OnceLock<String> {
                    static CELL: OnceLock<String> = OnceLock::new();
                    &CELL
                }
            }
        };
    }

    #[test]
    fn fixed_sql_is_rendered_once_and_varying_sql_every_time() {
        cell!(Fixed);
        let fixed =
            |id: i64| Prerendered::<_, Fixed>::new(users::table.find(id).select(users::nickname));
        let first = render(&fixed(1));
        assert_eq!(first, render(&users::table.find(1).select(users::nickname)));
        assert_eq!(Fixed::cell().get(), Some(&first));
        assert_eq!(render(&fixed(2)), first);

        // SQL text that Diesel will not cache (a literal) is never stored, so each run gets its
        // own text.
        cell!(Varying);
        let varying = |n: i64| {
            Prerendered::<_, Varying>::new(
                users::table
                    .filter(sql::<Bool>(&format!("id > {n}")))
                    .select(users::id),
            )
        };
        assert!(render(&varying(1)).contains("id > 1"));
        assert!(render(&varying(2)).contains("id > 2"));
        assert_eq!(Varying::cell().get(), None);
    }
}
