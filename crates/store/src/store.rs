//! The [`Store`] handle: opening the pool, migrations, shared settings, and the blocking-pool bridge.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use diesel::prelude::*;
use diesel::sql_types::{BigInt, Text};
use diesel_migrations::{embed_migrations, EmbeddedMigrations, MigrationHarness};
use kith_domain::phone::Phone;
use kith_domain::ports::Privacy;
use kith_domain::{DomainError, DomainResult, Millis, UserId};

use crate::async_pg::AsyncPg;
use crate::batch::{Batcher, Executor};
use crate::checkpoint::Checkpointer;
use crate::conn::{execute_native, DbConn, Manager, SqlitePragmas, Target, TracingErrors};
use crate::error::StoreError;
use crate::list_cache::ListCache;
use crate::schema::{settings, users};
use crate::sqlite_writer::SqliteWriter;

const SQLITE_MIGRATIONS: EmbeddedMigrations = embed_migrations!("../../migrations/sqlite");
const PG_MIGRATIONS: EmbeddedMigrations = embed_migrations!("../../migrations/postgres");

/// The `pg_advisory_lock` key that serialises migrations across instances ("kith" in ASCII).
const MIGRATION_LOCK_KEY: i64 = 0x6b69_7468;

/// Pool settings.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StoreOptions {
    /// Most connections held at once (the pool opens them all at start).
    pub pool_size: u32,
    /// How long to wait for a connection, from the pool or from PostgreSQL.
    pub connect_timeout: Duration,
    /// PostgreSQL only: connections each async worker thread may open for the hot reads
    /// (sessions, profiles, relationship lists and pairs) and the relationship transitions, which
    /// then run on that thread without a hand-off to the blocking pool. `0`: every call uses the
    /// pool.
    pub worker_connections: u32,
    /// Rows of friend-list pages kept to be served again while unchanged (see `ListCache`);
    /// `0`: none.
    pub list_cache_rows: usize,
    /// Most transactions that commit relationship transitions together at once (see `batch`),
    /// on SQLite and on PostgreSQL with worker connections. `0`: each transition commits
    /// alone. `None`: the backend's default, [`DEFAULT_TRANSITION_BATCHES_POSTGRES`] or
    /// [`DEFAULT_TRANSITION_BATCHES_SQLITE`].
    pub transition_batches: Option<u32>,
    /// SQLite only: the WAL's size in bytes past which the checkpoint thread also starts it
    /// over ([`DEFAULT_SQLITE_WAL_RESET_BYTES`]). Starting over holds the write lock while the
    /// last frames are copied back and the file is synced, so a small bound stalls writers
    /// often; the bound is also about the most disk the WAL takes.
    pub sqlite_wal_reset_bytes: u64,
}

/// The friend-list cache's default size: about 20 MB of rows, ~400 lists of 50.
pub const DEFAULT_LIST_CACHE_ROWS: usize = 20_000;

/// Transactions committing relationship transitions together, at most, by default on
/// PostgreSQL: while one batch waits on the database, the next is already being written, and
/// PostgreSQL runs them on two backends (docs/benchmarks.md, "Two batches at once on
/// PostgreSQL").
pub const DEFAULT_TRANSITION_BATCHES_POSTGRES: u32 = 2;

/// Transactions committing relationship transitions together, at most, by default on SQLite:
/// it has one writer, so a second batch only waits for the first's write lock (and was slower
/// when measured; docs/benchmarks.md, "Two batches at once on PostgreSQL").
pub const DEFAULT_TRANSITION_BATCHES_SQLITE: u32 = 1;

/// The WAL size past which SQLite's checkpoint thread starts the WAL over, by default: 128 MiB.
/// At 16 MiB every 100 ms checkpoint under `invite-accept` started it over, and writers waited
/// on each; at 128 MiB `invite-accept` ran 9,100-10,100 requests/s against 7,400-7,900, with
/// p99 16-18 ms against 45-60 ms (docs/benchmarks.md, 2026-12-07).
pub const DEFAULT_SQLITE_WAL_RESET_BYTES: u64 = 128 << 20;

/// The page size of a new SQLite file. Every page a transition dirties is written to the WAL,
/// checksummed and later copied back whole, and a transition dirties about ten pages spread
/// over the tables and indexes, so smaller pages write less: 2 KiB pages ran `invite-accept`
/// 6-19 % faster than SQLite's default 4 KiB, with `profile` unchanged (docs/benchmarks.md,
/// 2026-12-07). A file made before keeps its page size.
pub(crate) const SQLITE_PAGE_SIZE: u32 = 2048;

/// SQLite's write connections: one for the writer thread, one for the change log's
/// compaction (or the start-up's migrations) beside it. More would only wait for the file lock.
const SQLITE_WRITE_POOL_SIZE: u32 = 2;

impl Default for StoreOptions {
    fn default() -> Self {
        Self {
            pool_size: 10,
            connect_timeout: Duration::from_secs(5),
            worker_connections: 4,
            list_cache_rows: DEFAULT_LIST_CACHE_ROWS,
            transition_batches: None,
            sqlite_wal_reset_bytes: DEFAULT_SQLITE_WAL_RESET_BYTES,
        }
    }
}

/// Which database a store talks to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Backend {
    Postgres,
    Sqlite,
}

/// The storage adapter: a pool of connections to one SQLite file or PostgreSQL database.
/// Cloning is cheap and shares the pool.
#[derive(Clone)]
pub struct Store {
    /// Every call's connections but the writes'. On SQLite they refuse writes
    /// (`PRAGMA query_only`), so a write can only go through [`Store::serial_write`].
    pool: r2d2::Pool<Manager>,
    /// The writes' connections: on SQLite a pool of its own, for the writer thread, the change
    /// log's compaction and the start-up's migrations; on PostgreSQL the same pool as `pool`.
    write_pool: r2d2::Pool<Manager>,
    backend: Backend,
    /// PostgreSQL's per-thread async connections for hot reads; `None` on SQLite or when off.
    async_pg: Option<AsyncPg>,
    /// Commits concurrent relationship transitions together; `None` on PostgreSQL without
    /// `async_pg`, or when off.
    batcher: Option<Arc<Batcher>>,
    /// SQLite's one writer thread, for the batcher's transactions and [`Store::serial_write`]'s
    /// statements; `None` on PostgreSQL, or when it could not start.
    sqlite_writer: Option<Arc<SqliteWriter>>,
    /// `StoreOptions::transition_batches`, or the backend's default.
    transition_batches: u32,
    /// How long one call may run once it holds a connection; `None`: unbounded.
    query_timeout: Option<Duration>,
    /// Friend-list pages, served again while their owner's stamp is unchanged.
    lists: Arc<ListCache>,
    /// SQLite's checkpoint thread, which stops once every clone of the store is dropped.
    _checkpointer: Option<Arc<Checkpointer>>,
}

impl std::fmt::Debug for Store {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let (connections, idle) = self.pool_state();
        f.debug_struct("Store")
            .field("backend", &self.backend())
            .field("connections", &connections)
            .field("idle", &idle)
            .finish()
    }
}

/// How a PostgreSQL connection notices a dead peer, for libpq (URL parameters, `parse_url`) and
/// tokio-postgres (`AsyncPg::new`) alike: the connect timeout, and as long again for keepalives
/// to start and for sent data to go unacknowledged; then probes a second apart.
pub(crate) struct LinkTimeouts {
    /// Connect timeout, keepalive idle time and TCP user timeout; whole seconds, at least one.
    pub(crate) timeout: Duration,
    /// Between keepalive probes.
    pub(crate) keepalive_interval: Duration,
    /// Unanswered probes before the connection is dead.
    pub(crate) keepalive_count: u32,
}

impl LinkTimeouts {
    pub(crate) fn new(connect_timeout: Duration) -> Self {
        Self {
            timeout: Duration::from_secs(connect_timeout.as_secs().max(1)),
            keepalive_interval: Duration::from_secs(1),
            keepalive_count: 3,
        }
    }
}

/// A pool of `size` connections to `target`, all opened before it returns. `query_only`: on
/// SQLite, its connections refuse writes.
fn build_pool(
    target: Target,
    size: u32,
    opts: &StoreOptions,
    query_only: bool,
) -> Result<r2d2::Pool<Manager>, StoreError> {
    Ok(r2d2::Pool::builder()
        .max_size(size.max(1))
        .connection_timeout(opts.connect_timeout)
        // Checked only when idle for a while, by `Manager::is_valid` (see `TRUSTED_FOR`).
        .test_on_check_out(true)
        .connection_customizer(Box::new(SqlitePragmas {
            query_only,
            wal_size_limit: opts.sqlite_wal_reset_bytes,
        }))
        .error_handler(Box::new(TracingErrors))
        .build(Manager { target })?)
}

/// Splits a database URL into the driver target. SQLite accepts `sqlite://PATH` and
/// `sqlite:PATH` (so `sqlite:///abs/kith.db` and `sqlite://data/kith.db` both work).
fn parse_url(url: &str, opts: &StoreOptions) -> Result<Target, StoreError> {
    if let Some(rest) = url.strip_prefix("sqlite:") {
        let path = rest.strip_prefix("//").unwrap_or(rest);
        if path.is_empty() {
            return Err(StoreError::Config(
                "the SQLite URL has no file path".to_owned(),
            ));
        }
        return Ok(Target::Sqlite(path.to_owned()));
    }
    if url.starts_with("postgres://") || url.starts_with("postgresql://") {
        // Without these libpq waits for the OS when a host drops packets: connect_timeout bounds
        // the connect, keepalives find a dead peer under an idle connection, and
        // tcp_user_timeout drops one whose sent data goes unacknowledged (a query in flight).
        // A parameter the URL already sets is left alone.
        let link = LinkTimeouts::new(opts.connect_timeout);
        let mut url = url.to_owned();
        for (name, value) in [
            ("connect_timeout", link.timeout.as_secs().to_string()),
            ("keepalives", "1".to_owned()),
            ("keepalives_idle", link.timeout.as_secs().to_string()),
            (
                "keepalives_interval",
                link.keepalive_interval.as_secs().to_string(),
            ),
            ("keepalives_count", link.keepalive_count.to_string()),
            ("tcp_user_timeout", link.timeout.as_millis().to_string()),
        ] {
            if !url.contains(&format!("{name}=")) {
                let sep = if url.contains('?') { '&' } else { '?' };
                url = format!("{url}{sep}{name}={value}");
            }
        }
        return Ok(Target::Postgres(url));
    }
    // The URL is not echoed: it may carry a password.
    Err(StoreError::Config(
        "the database URL must start with sqlite:, postgres:// or postgresql://".to_owned(),
    ))
}

/// Whether the linked SQLite was compiled with `option` (as `PRAGMA compile_options` spells it,
/// without the `SQLITE_` prefix). `ENABLE_QPSG` plans each statement once, whatever values are
/// bound to it: without it, SQLite >= 3.45 expires a cached statement on every rebinding of a
/// `LIMIT ?`, of an equality on an index with STAT4 samples, and of a value compared against a
/// partial index, and re-prepares it on the next step. `THREADSAFE=2` drops the mutex a
/// connection takes on every call, and `ENABLE_MEMORY_MANAGEMENT` (which must be absent) makes
/// every connection share one page cache behind one mutex (see .cargo/config.toml).
pub(crate) fn sqlite_compiled_with(
    conn: &mut diesel::SqliteConnection,
    option: &str,
) -> QueryResult<bool> {
    #[derive(QueryableByName)]
    struct Found {
        #[diesel(sql_type = diesel::sql_types::Bool)]
        found: bool,
    }
    diesel::sql_query(
        "SELECT EXISTS (SELECT 1 FROM pragma_compile_options WHERE compile_options = ?) AS found",
    )
    .bind::<Text, _>(option)
    .get_result::<Found>(conn)
    .map(|r| r.found)
}

/// The start-up warnings for a linked SQLite that lacks a build option Kith's speed depends on,
/// or has one that costs it, given `compiled_with` (as [`sqlite_compiled_with`] answers). A
/// `LIBSQLITE3_FLAGS` set in the environment replaces .cargo/config.toml's, so the build can
/// silently lose them; the server still runs, only slower.
fn sqlite_build_warnings(mut compiled_with: impl FnMut(&str) -> bool) -> Vec<&'static str> {
    let mut warnings = Vec::new();
    if !compiled_with("ENABLE_QPSG") {
        warnings.push(
            "this SQLite was built without SQLITE_ENABLE_QPSG: every cached statement is \
             re-planned on each run (build with LIBSQLITE3_FLAGS=-DSQLITE_ENABLE_QPSG, as \
             .cargo/config.toml does)",
        );
    }
    if compiled_with("ENABLE_MEMORY_MANAGEMENT") {
        warnings.push(
            "this SQLite was built with SQLITE_ENABLE_MEMORY_MANAGEMENT: all connections share \
             one page cache behind one mutex (build with \
             LIBSQLITE3_FLAGS=-USQLITE_ENABLE_MEMORY_MANAGEMENT, as .cargo/config.toml does)",
        );
    }
    warnings
}

impl Store {
    /// Opens a pool on `url` (`sqlite://PATH`, `sqlite:PATH`, `postgres://...`). Creates the
    /// SQLite file and its directory if needed. Blocks until the pool's connections are open.
    pub fn open(url: &str, opts: StoreOptions) -> Result<Store, StoreError> {
        let target = parse_url(url, &opts)?;
        let mut checkpoint_conn = None;
        let backend = match &target {
            Target::Sqlite(path) => {
                if let Some(dir) = Path::new(path)
                    .parent()
                    .filter(|d| !d.as_os_str().is_empty())
                {
                    std::fs::create_dir_all(dir).map_err(|e| {
                        StoreError::Config(format!("cannot create {}: {e}", dir.display()))
                    })?;
                }
                // WAL is a property of the file: set it once on a lone connection, so the pool's
                // connections, opened in parallel, never race to switch the journal mode. The
                // page size only takes on a new file, before WAL (`SQLITE_PAGE_SIZE`).
                let mut first = diesel::SqliteConnection::establish(path)
                    .map_err(|e| StoreError::Unavailable(format!("cannot open SQLite: {e}")))?;
                diesel::connection::SimpleConnection::batch_execute(
                    &mut first,
                    &format!(
                        "PRAGMA busy_timeout = 5000; PRAGMA page_size = {SQLITE_PAGE_SIZE}; \
                         PRAGMA journal_mode = WAL;"
                    ),
                )
                .map_err(|e| StoreError::Unavailable(format!("cannot enable WAL: {e}")))?;
                for warning in sqlite_build_warnings(|option| {
                    sqlite_compiled_with(&mut first, option).unwrap_or(false)
                }) {
                    tracing::warn!("{warning}");
                }
                checkpoint_conn = Some(first);
                Backend::Sqlite
            }
            Target::Postgres(_) => Backend::Postgres,
        };
        let async_pg = match backend {
            Backend::Postgres => AsyncPg::new(url, opts.worker_connections, opts.connect_timeout),
            Backend::Sqlite => None,
        };
        let (pool, write_pool) = match backend {
            Backend::Sqlite => (
                build_pool(target.clone(), opts.pool_size, &opts, true)?,
                build_pool(target, SQLITE_WRITE_POOL_SIZE, &opts, false)?,
            ),
            Backend::Postgres => {
                let pool = build_pool(target, opts.pool_size, &opts, false)?;
                (pool.clone(), pool)
            }
        };
        let sqlite_writer = match backend {
            Backend::Sqlite => match SqliteWriter::start(write_pool.clone()) {
                Ok(writer) => Some(Arc::new(writer)),
                // Without its thread, writes take the file lock in turn: slower, not wrong.
                Err(error) => {
                    tracing::warn!(%error, "SQLite writes will not go through one thread");
                    None
                }
            },
            Backend::Postgres => None,
        };
        // After the writer, whose thread runs the WAL resets (`checkpoint::reset_on_writer`).
        let checkpointer = checkpoint_conn
            .map(|conn| {
                Checkpointer::start(
                    conn,
                    opts.sqlite_wal_reset_bytes,
                    sqlite_writer.as_ref().map(Arc::downgrade),
                )
            })
            .transpose()?
            .map(Arc::new);
        let mut store = Store {
            pool,
            write_pool,
            backend,
            async_pg,
            batcher: None,
            sqlite_writer,
            transition_batches: opts.transition_batches.unwrap_or(match backend {
                Backend::Postgres => DEFAULT_TRANSITION_BATCHES_POSTGRES,
                Backend::Sqlite => DEFAULT_TRANSITION_BATCHES_SQLITE,
            }),
            query_timeout: None,
            lists: Arc::new(ListCache::new(opts.list_cache_rows)),
            _checkpointer: checkpointer,
        };
        store.batcher = store.new_batcher();
        Ok(store)
    }

    /// A batcher for this store and its time bound: on SQLite, or on PostgreSQL with worker
    /// connections (see `batch` on why not without).
    fn new_batcher(&self) -> Option<Arc<Batcher>> {
        let drainers = usize::try_from(self.transition_batches)
            .ok()
            .filter(|&d| d > 0)?;
        let executor = match (&self.backend, &self.async_pg) {
            // Without the writer thread, each transition commits alone: slower, not wrong.
            (Backend::Sqlite, _) => Executor::Sqlite(Arc::clone(self.sqlite_writer.as_ref()?)),
            (Backend::Postgres, Some(pg)) => Executor::Pg(Box::new(pg.clone())),
            (Backend::Postgres, None) => return None,
        };
        Some(Arc::new(Batcher::new(executor, drainers, self.bound())))
    }

    /// Bounds every call: one that has not finished `timeout` after it got its connection (so
    /// at most the connect timeout plus `timeout` after it started) fails with `Unavailable`.
    /// The backstop for a database that stops answering without closing the socket; the
    /// abandoned blocking thread keeps its connection until the driver gives up.
    pub fn with_query_timeout(mut self, timeout: Duration) -> Store {
        self.query_timeout = Some(timeout);
        self.batcher = self.new_batcher();
        self
    }

    /// Applies pending migrations. Safe to call at every start and from several instances at
    /// once: PostgreSQL serialises them with an advisory lock, SQLite with `BEGIN IMMEDIATE`.
    /// Blocks the calling thread.
    pub fn migrate(&self) -> Result<(), StoreError> {
        let mut conn = self.write_pool.get()?;
        let applied = match &mut conn.conn {
            DbConn::Sqlite(c) => c.immediate_transaction(|c| {
                c.run_pending_migrations(SQLITE_MIGRATIONS)
                    .map(|versions| versions.len())
                    .map_err(|e| StoreError::Migration(e.to_string()))
            })?,
            DbConn::Pg(c) => {
                diesel::sql_query("SELECT pg_advisory_lock($1)")
                    .bind::<BigInt, _>(MIGRATION_LOCK_KEY)
                    .execute(c)?;
                let result = c
                    .run_pending_migrations(PG_MIGRATIONS)
                    .map(|versions| versions.len())
                    .map_err(|e| StoreError::Migration(e.to_string()));
                // Unlock even after a failure; if this fails too, the session ending frees it.
                let unlocked = diesel::sql_query("SELECT pg_advisory_unlock($1)")
                    .bind::<BigInt, _>(MIGRATION_LOCK_KEY)
                    .execute(c);
                let applied = result?;
                unlocked?;
                applied
            }
        };
        if applied > 0 {
            tracing::info!(applied, backend = self.backend(), "database migrated");
        }
        Ok(())
    }

    /// `"sqlite"` or `"postgres"`.
    pub fn backend(&self) -> &'static str {
        match self.backend {
            Backend::Postgres => "postgres",
            Backend::Sqlite => "sqlite",
        }
    }

    /// Most batches of transitions at once, when transitions are batched at all (tests).
    #[cfg(test)]
    pub(crate) fn transition_drainers(&self) -> Option<u32> {
        self.batcher.as_ref().map(|_| self.transition_batches)
    }

    /// The pool's open connections and how many of them are idle, for metrics.
    pub fn pool_state(&self) -> (u32, u32) {
        let state = self.pool.state();
        (state.connections, state.idle_connections)
    }

    /// Returns the setting `name`, first storing `init` if it has none. Instances racing to
    /// initialise it all get the one value that won. Blocks the calling thread.
    pub fn get_or_init_setting(&self, name: &str, init: String) -> Result<String, StoreError> {
        let mut conn = self.write_pool.get()?;
        // MultiConnection's query builder has no ON CONFLICT; this statement reads the same on
        // both backends (SQLite takes `$n` as numbered parameters too).
        diesel::sql_query(
            "INSERT INTO settings (name, value) VALUES ($1, $2) ON CONFLICT (name) DO NOTHING",
        )
        .bind::<Text, _>(name)
        .bind::<Text, _>(init)
        .execute(&mut conn.conn)?;
        Ok(settings::table
            .find(name)
            .select(settings::value)
            .first::<String>(&mut conn.conn)?)
    }

    /// Creates a placeholder user (unregistered, no password) for `phone`, as a phone-book
    /// upload does. Returns the id of the user that has the phone, new or existing; concurrent
    /// calls for one phone all get the same user.
    /// Errors: `Conflict("user_id")` if `id` is taken by another phone.
    pub async fn create_placeholder(
        &self,
        id: UserId,
        phone: &Phone,
        now: Millis,
    ) -> DomainResult<UserId> {
        let e164 = phone.e164().to_owned();
        let region = phone.region().to_owned();
        self.serial_write(move |conn| ensure_placeholder(conn, id, &e164, &region, now))
            .await
    }

    /// Runs `f` with a pooled connection on tokio's blocking pool, so neither the wait for a
    /// connection nor the query ever stalls an async worker. On SQLite the connection refuses
    /// writes: those go through [`Store::serial_write`].
    pub(crate) async fn run<T, F>(&self, f: F) -> DomainResult<T>
    where
        T: Send + 'static,
        F: FnOnce(&mut DbConn) -> Result<T, StoreError> + Send + 'static,
    {
        self.run_on(&self.pool, f).await
    }

    /// Like [`Store::run`], on a connection that may write, beside SQLite's writer thread rather
    /// than on it: for the change log's compaction alone, which would hold the thread through
    /// all its transactions and waits for the file lock between them instead.
    pub(crate) async fn run_beside_writer<T, F>(&self, f: F) -> DomainResult<T>
    where
        T: Send + 'static,
        F: FnOnce(&mut DbConn) -> Result<T, StoreError> + Send + 'static,
    {
        self.run_on(&self.write_pool, f).await
    }

    async fn run_on<T, F>(&self, pool: &r2d2::Pool<Manager>, f: F) -> DomainResult<T>
    where
        T: Send + 'static,
        F: FnOnce(&mut DbConn) -> Result<T, StoreError> + Send + 'static,
    {
        let pool = pool.clone();
        let task = tokio::task::spawn_blocking(move || {
            let mut pooled = pool.get()?;
            let result = f(&mut pooled.conn);
            pooled.finished(&result);
            result
        });
        match self.bounded(task).await? {
            Ok(result) => finish(result),
            Err(join) => Err(DomainError::Internal(format!("store task failed: {join}"))),
        }
    }

    /// Runs a write `f` on SQLite's writer thread, after the writes queued before it, or like
    /// [`Store::run`] on a write connection on PostgreSQL (or without the thread). Every SQLite
    /// write of a request goes through here, because `run`'s connections refuse writes there;
    /// only the change log's compaction does not ([`Store::run_beside_writer`]).
    ///
    /// Why: a SQLite write from a blocking-pool thread meets the writer thread at the file
    /// lock, and SQLite's busy handler waits for it by sleeping in steps of up to 100 ms, not
    /// in turn. Session touches did so at a server's start, each session's first request of
    /// the minute, and took 0.5 to 2.4 s under invite-accept (docs/benchmarks.md, "Session
    /// touches through the writer thread"); sign-ups, logins and address-book writes did the
    /// same under a write load ("Every SQLite write through the writer thread").
    pub(crate) async fn serial_write<T, F>(&self, f: F) -> DomainResult<T>
    where
        T: Send + 'static,
        F: FnOnce(&mut DbConn) -> Result<T, StoreError> + Send + 'static,
    {
        match &self.sqlite_writer {
            Some(writer) => finish(self.bounded(writer.run(f)).await?.and_then(|r| r)),
            None => self.run_on(&self.write_pool, f).await,
        }
    }

    /// The write pool, for tests that build a writer of their own on it.
    #[cfg(test)]
    pub(crate) fn write_pool(&self) -> &r2d2::Pool<Manager> {
        &self.write_pool
    }

    /// This store with every call on the blocking pool (as with no worker connections), sharing
    /// its pool: for tests of that path and tests that compare the two.
    #[cfg(test)]
    pub(crate) fn blocking_reads(&self) -> Store {
        Store {
            async_pg: None,
            batcher: None,
            ..self.clone()
        }
    }

    /// This store without the friend-list cache, sharing its pool: the tests' oracle for what a
    /// cached list must show.
    #[cfg(test)]
    pub(crate) fn uncached_lists(&self) -> Store {
        Store {
            lists: Arc::new(ListCache::new(0)),
            ..self.clone()
        }
    }

    /// The friend-list cache.
    pub(crate) fn lists(&self) -> &ListCache {
        &self.lists
    }

    /// The per-thread async PostgreSQL connections, if this store reads through them.
    pub(crate) fn async_pg(&self) -> Option<&AsyncPg> {
        self.async_pg.as_ref()
    }

    /// The batcher of relationship transitions, if this store commits them together.
    pub(crate) fn batcher(&self) -> Option<&Arc<Batcher>> {
        self.batcher.as_ref()
    }

    /// Runs store work that stays on the async worker (see `read!`), with the same time bound
    /// and error mapping as [`Store::run`].
    pub(crate) async fn on_worker<T>(
        &self,
        work: impl std::future::Future<Output = Result<T, StoreError>>,
    ) -> DomainResult<T> {
        finish(self.bounded(work).await?)
    }

    /// How long one call may take in all: the connect timeout plus the query timeout, if set.
    fn bound(&self) -> Option<Duration> {
        self.query_timeout
            .map(|limit| self.pool.connection_timeout() + limit)
    }

    /// `work`, failing with `Unavailable` once the query timeout (after the connect timeout)
    /// has passed.
    async fn bounded<F: std::future::Future>(&self, work: F) -> DomainResult<F::Output> {
        let Some(bound) = self.bound() else {
            return Ok(work.await);
        };
        tokio::time::timeout(bound, work).await.map_err(|_| {
            DomainError::Unavailable(format!(
                "database call took longer than {} ms",
                bound.as_millis()
            ))
        })
    }
}

/// Maps a store result into the domain's, logging the failures that are bugs, not outages.
fn finish<T>(result: Result<T, StoreError>) -> DomainResult<T> {
    result.map_err(|e| {
        if matches!(e, StoreError::Internal(_) | StoreError::Corrupt(_)) {
            tracing::error!(error = %e, "store call failed");
        }
        DomainError::from(e)
    })
}

/// The id of the user (registered or not) with this phone.
pub(crate) fn user_id_by_phone(
    conn: &mut DbConn,
    e164: &str,
) -> Result<Option<UserId>, StoreError> {
    users::table
        .filter(users::phone.eq(e164))
        .select(users::id)
        .first::<i64>(conn)
        .optional()?
        .map(to_user_id)
        .transpose()
}

/// Checks a stored id.
pub(crate) fn to_user_id(raw: i64) -> Result<UserId, StoreError> {
    UserId::new(raw).map_err(|_| StoreError::Corrupt(format!("user id {raw} out of range")))
}

/// The id of the user with this phone, first inserting a placeholder with id `id` if there is
/// none. `ON CONFLICT DO NOTHING` settles races without an error, which on PostgreSQL would
/// poison the caller's transaction.
/// Errors: `Conflict("user_id")` if `id` is taken by another phone.
pub(crate) fn ensure_placeholder(
    conn: &mut DbConn,
    id: UserId,
    e164: &str,
    region: &str,
    now: Millis,
) -> Result<UserId, StoreError> {
    // Most uploaded numbers already have a user; reading first spares SQLite's write lock.
    if let Some(existing) = user_id_by_phone(conn, e164)? {
        return Ok(existing);
    }
    NewUser {
        id: id.get(),
        phone: e164,
        region,
        registered: false,
        nickname: "",
        password_hash: None,
        now,
    }
    .insert_if_absent(conn)?;
    // Absent after the insert: the id, not the phone, clashed.
    user_id_by_phone(conn, e164)?.ok_or(StoreError::Conflict("user_id"))
}

/// A user row to insert, placeholder or registered.
pub(crate) struct NewUser<'a> {
    pub(crate) id: i64,
    pub(crate) phone: &'a str,
    pub(crate) region: &'a str,
    pub(crate) registered: bool,
    pub(crate) nickname: &'a str,
    pub(crate) password_hash: Option<&'a str>,
    pub(crate) now: Millis,
}

/// Every column of a new user row.
#[derive(Insertable)]
#[diesel(table_name = users, treat_none_as_default_value = false)]
struct UserInsert<'a> {
    id: i64,
    phone: &'a str,
    region: &'a str,
    registered: bool,
    nickname: &'a str,
    portrait_uri: &'a str,
    password_hash: Option<&'a str>,
    show_user_name: bool,
    show_age: bool,
    show_gender: bool,
    friend_verification: bool,
    findable_by_phone: bool,
    allow_group_invites: bool,
    login_failures: i32,
    login_window_start: i64,
    locked_until: i64,
    lock_level: i32,
    version: i64,
    list_stamp: i64,
    created_at: i64,
    updated_at: i64,
}

impl<'a> NewUser<'a> {
    /// The full row, with default privacy, counters and version. Written out rather than left
    /// to column defaults, so both backends get the domain's defaults even if a migration's
    /// DEFAULT drifts.
    fn row(&self) -> UserInsert<'a> {
        let p = Privacy::default();
        UserInsert {
            id: self.id,
            phone: self.phone,
            region: self.region,
            registered: self.registered,
            nickname: self.nickname,
            portrait_uri: "",
            password_hash: self.password_hash,
            show_user_name: p.show_user_name,
            show_age: p.show_age,
            show_gender: p.show_gender,
            friend_verification: p.friend_verification,
            findable_by_phone: p.findable_by_phone,
            allow_group_invites: p.allow_group_invites,
            login_failures: 0,
            login_window_start: 0,
            locked_until: 0,
            lock_level: 0,
            version: 0,
            list_stamp: 0,
            created_at: self.now,
            updated_at: self.now,
        }
    }

    /// Inserts the row; a clash on the id or the phone is a `Conflict`.
    pub(crate) fn insert(&self, conn: &mut DbConn) -> Result<(), StoreError> {
        diesel::insert_into(users::table)
            .values(self.row())
            .execute(conn)?;
        Ok(())
    }

    /// Inserts the row unless its id or phone is taken.
    pub(crate) fn insert_if_absent(&self, conn: &mut DbConn) -> Result<(), StoreError> {
        execute_native(
            conn,
            diesel::insert_into(users::table)
                .values(self.row())
                .on_conflict_do_nothing(),
        )?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn a_sqlite_build_without_qpsg_or_with_a_shared_page_cache_is_warned_about() {
        let warnings = |options: &[&str]| sqlite_build_warnings(|o| options.contains(&o));
        assert!(warnings(&["ENABLE_QPSG", "THREADSAFE=2"]).is_empty());
        let lost_qpsg = warnings(&["THREADSAFE=2"]);
        assert_eq!(lost_qpsg.len(), 1);
        assert!(lost_qpsg[0].contains("without SQLITE_ENABLE_QPSG"));
        let shared_cache = warnings(&["ENABLE_QPSG", "ENABLE_MEMORY_MANAGEMENT"]);
        assert_eq!(shared_cache.len(), 1);
        assert!(shared_cache[0].contains("with SQLITE_ENABLE_MEMORY_MANAGEMENT"));
        assert_eq!(warnings(&["ENABLE_MEMORY_MANAGEMENT"]).len(), 2);
    }

    #[test]
    fn urls_name_their_backend() {
        let opts = StoreOptions::default();
        let path = |url: &str| match parse_url(url, &opts).unwrap() {
            Target::Sqlite(p) => p,
            Target::Postgres(u) => panic!("{u} is not SQLite"),
        };
        assert_eq!(path("sqlite:///var/lib/kith.db"), "/var/lib/kith.db");
        assert_eq!(path("sqlite://data/kith.db"), "data/kith.db");
        assert_eq!(path("sqlite:kith.db"), "kith.db");
        assert!(parse_url("sqlite://", &opts).is_err());
        assert!(parse_url("mysql://x", &opts).is_err());
        match parse_url("postgres://u@h/db", &opts).unwrap() {
            Target::Postgres(u) => assert_eq!(
                u,
                "postgres://u@h/db?connect_timeout=5&keepalives=1&keepalives_idle=5\
                 &keepalives_interval=1&keepalives_count=3&tcp_user_timeout=5000"
            ),
            Target::Sqlite(p) => panic!("{p} is not PostgreSQL"),
        }
        match parse_url("postgresql://h/db?sslmode=disable&connect_timeout=2", &opts).unwrap() {
            Target::Postgres(u) => assert_eq!(
                u,
                "postgresql://h/db?sslmode=disable&connect_timeout=2&keepalives=1\
                 &keepalives_idle=5&keepalives_interval=1&keepalives_count=3&tcp_user_timeout=5000"
            ),
            Target::Sqlite(p) => panic!("{p} is not PostgreSQL"),
        }
    }
}
