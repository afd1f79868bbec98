//! PostgreSQL reads on the async worker that asks for them: a few tokio-postgres connections
//! per worker thread, so a hot read needs no hand-off to the blocking pool and back.
//!
//! Why per thread: tokio-postgres drives each connection's socket from a task spawned on the
//! runtime that opened it. actix-web runs one single-threaded runtime per worker, so a
//! connection opened on worker A and borrowed by worker B would wake A for every message, the
//! same cross-thread hop the blocking pool costs. Each thread therefore opens and keeps its own
//! connections; a future never takes a connection from another thread's pool.
//!
//! Writes stay on the blocking pool (`Store::run`): they are transactions with retries written
//! once for both backends, and SQLite has no async driver.

use std::cell::RefCell;
use std::future::Future;
use std::pin::Pin;
use std::str::FromStr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use diesel::QueryResult;
use diesel_async::pooled_connection::PoolableConnection;
use diesel_async::{AsyncPgConnection, SimpleAsyncConnection};
use tokio::sync::Semaphore;
use tokio_postgres::config::SslMode;

use crate::conn::TRUSTED_FOR;
use crate::error::StoreError;

/// The future a read returns; it borrows the connection it runs on.
pub(crate) type ReadFuture<'c, U> = Pin<Box<dyn Future<Output = QueryResult<U>> + Send + 'c>>;

/// Distinguishes stores, so two stores used on one thread (tests) never share connections.
static NEXT_STORE: AtomicU64 = AtomicU64::new(1);

/// How to open this store's per-thread connections, and how many each thread may hold.
#[derive(Clone)]
pub(crate) struct AsyncPg {
    store: u64,
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
    /// This thread's pools, by store.
    static POOLS: RefCell<Vec<(u64, Arc<ThreadPool>)>> = const { RefCell::new(Vec::new()) };
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
        // The same bounds `parse_url` gives libpq, unless the URL sets its own.
        if config.get_connect_timeout().is_none() {
            config.connect_timeout(connect_timeout.max(Duration::from_secs(1)));
        }
        if config.get_tcp_user_timeout().is_none() {
            config.tcp_user_timeout(connect_timeout.max(Duration::from_secs(1)));
        }
        if !url.contains("keepalives_idle=") {
            config.keepalives_idle(connect_timeout.max(Duration::from_secs(1)));
        }
        if !url.contains("keepalives_interval=") {
            config.keepalives_interval(Duration::from_secs(1));
        }
        if !url.contains("keepalives_retries=") {
            config.keepalives_retries(3);
        }
        Some(AsyncPg {
            store: NEXT_STORE.fetch_add(1, Ordering::Relaxed),
            config,
            per_thread: usize::try_from(per_thread).unwrap_or(usize::MAX),
            connect_timeout,
        })
    }

    /// This thread's pool for this store, created on first use.
    fn local(&self) -> Arc<ThreadPool> {
        POOLS.with(|pools| {
            let mut pools = pools.borrow_mut();
            if let Some((_, pool)) = pools.iter().find(|(store, _)| *store == self.store) {
                return Arc::clone(pool);
            }
            let pool = Arc::new(ThreadPool {
                idle: Mutex::new(Vec::new()),
                permits: Semaphore::new(self.per_thread),
            });
            pools.push((self.store, Arc::clone(&pool)));
            pool
        })
    }

    /// Runs one read on a connection of this thread, opening one if none is idle. The outer
    /// error is about the connection, the inner one is the query's own.
    pub(crate) async fn read<U, F>(&self, f: F) -> Result<QueryResult<U>, StoreError>
    where
        F: for<'c> FnOnce(&'c mut AsyncPgConnection) -> ReadFuture<'c, U> + Send,
    {
        let pool = self.local();
        let _permit = tokio::time::timeout(self.connect_timeout, pool.permits.acquire())
            .await
            .map_err(|_| StoreError::Unavailable("timed out waiting for a connection".into()))?
            .map_err(|_| StoreError::Unavailable("connection pool closed".into()))?;
        let mut conn = self.checkout(&pool).await?;
        let result = f(&mut conn).await;
        // A failure that lost the socket drops the connection; any other (no row, a constraint)
        // leaves it healthy. The permit is released when this returns.
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
                            .read(move |c| Box::pin(diesel_async::RunQueryDsl::$method($query, c)))
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
