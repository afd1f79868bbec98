//! The two-backend connection type, its r2d2 manager, and the write-transaction helper.

use std::fmt;
use std::marker::PhantomData;
use std::time::{Duration, Instant};

use diesel::backend::Backend;
use diesel::connection::{AnsiTransactionManager, SimpleConnection, TransactionManager};
use diesel::query_builder::{AstPass, Query, QueryFragment, QueryId};
use diesel::query_dsl::methods::ExecuteDsl;
use diesel::r2d2::R2D2Connection;
use diesel::{Connection, PgConnection, QueryResult, SqliteConnection};

use crate::error::StoreError;

/// One database connection, PostgreSQL or SQLite. Query code is written once against this type;
/// only backend-specific SQL (locks, `BEGIN IMMEDIATE`) matches on the variant.
#[derive(diesel::MultiConnection)]
pub enum DbConn {
    /// A PostgreSQL connection.
    Pg(PgConnection),
    /// A SQLite connection.
    Sqlite(SqliteConnection),
}

impl fmt::Debug for DbConn {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Pg(_) => "DbConn::Pg",
            Self::Sqlite(_) => "DbConn::Sqlite",
        })
    }
}

/// Which database a [`Store`](crate::Store) talks to, with the target the driver needs.
#[derive(Clone)]
pub(crate) enum Target {
    /// A libpq URL.
    Postgres(String),
    /// A file path (not a URI).
    Sqlite(String),
}

impl fmt::Debug for Target {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // The PostgreSQL URL may carry a password.
        match self {
            Self::Postgres(_) => f.write_str("Postgres(..)"),
            Self::Sqlite(path) => f.debug_tuple("Sqlite").field(path).finish(),
        }
    }
}

/// A connection that used its socket this recently is handed out without a `SELECT 1` first.
/// r2d2 pings on every checkout otherwise: three of a PostgreSQL invite's seventeen round trips
/// and two of a profile read's four (docs/benchmarks.md). HikariCP skips the check the same way
/// within 500 ms of the last use.
pub(crate) const TRUSTED_FOR: Duration = Duration::from_millis(500);

/// A pooled connection, with what the pool needs to know about its health.
pub(crate) struct Pooled {
    /// The connection.
    pub(crate) conn: DbConn,
    /// When a call last finished on it without losing the server.
    pub(crate) last_ok: Instant,
    /// A call on it failed and a ping then failed too: the server is gone for this socket.
    pub(crate) lost: bool,
}

impl Pooled {
    /// Records how a call on this connection ended. After a failure that may mean a lost
    /// server (`Unavailable`), a ping decides: a dead socket is then dropped by the pool
    /// instead of failing every call that checks it out.
    pub(crate) fn finished<T>(&mut self, result: &Result<T, StoreError>) {
        match result {
            Err(StoreError::Unavailable(_)) if self.conn.ping().is_err() => self.lost = true,
            _ => self.last_ok = Instant::now(),
        }
    }
}

/// The r2d2 manager. Diesel's `ConnectionManager<DbConn>` would try every backend in turn and
/// drop each error, so a refused PostgreSQL connection would be reported as "invalid URL";
/// this one connects to the one backend the URL names and keeps the driver's error.
#[derive(Debug)]
pub(crate) struct Manager {
    pub(crate) target: Target,
}

impl r2d2::ManageConnection for Manager {
    type Connection = Pooled;
    type Error = diesel::r2d2::Error;

    fn connect(&self) -> Result<Pooled, Self::Error> {
        match &self.target {
            Target::Postgres(url) => PgConnection::establish(url).map(DbConn::Pg),
            Target::Sqlite(path) => SqliteConnection::establish(path).map(DbConn::Sqlite),
        }
        .map(|conn| Pooled {
            conn,
            last_ok: Instant::now(),
            lost: false,
        })
        .map_err(diesel::r2d2::Error::ConnectionError)
    }

    fn is_valid(&self, pooled: &mut Pooled) -> Result<(), Self::Error> {
        if pooled.last_ok.elapsed() < TRUSTED_FOR {
            return Ok(());
        }
        pooled
            .conn
            .ping()
            .map_err(diesel::r2d2::Error::QueryError)?;
        pooled.last_ok = Instant::now();
        Ok(())
    }

    fn has_broken(&self, pooled: &mut Pooled) -> bool {
        // Also true when a connection comes back with an open transaction (a panic mid-work).
        pooled.lost || pooled.conn.is_broken()
    }
}

/// Per-connection SQLite settings; a no-op on PostgreSQL.
#[derive(Debug)]
pub(crate) struct SqlitePragmas {
    /// The connection refuses every write (`PRAGMA query_only`): the read pool's, so that a
    /// write sent through `Store::run` instead of the writer thread fails at once, in every
    /// test that makes it, rather than meeting the writer at the file lock (see
    /// `Store::serial_write`).
    pub(crate) query_only: bool,
    /// `PRAGMA journal_size_limit`: the first commit after the WAL starts over cuts the file
    /// back to this size. Without it the file keeps the largest size it ever reached, though
    /// a reset makes its frames past the start dead.
    pub(crate) wal_size_limit: u64,
}

impl r2d2::CustomizeConnection<Pooled, diesel::r2d2::Error> for SqlitePragmas {
    fn on_acquire(&self, pooled: &mut Pooled) -> Result<(), diesel::r2d2::Error> {
        if let DbConn::Sqlite(c) = &mut pooled.conn {
            // busy_timeout goes first: switching to WAL needs a brief exclusive lock, and the
            // pool opens its connections in parallel. Checkpoints are the checkpoint thread's
            // (checkpoint.rs), not the committing writer's.
            c.batch_execute(&format!(
                "PRAGMA busy_timeout = 5000; PRAGMA journal_mode = WAL; \
                 PRAGMA synchronous = NORMAL; PRAGMA foreign_keys = ON; \
                 PRAGMA wal_autocheckpoint = 0; PRAGMA journal_size_limit = {}; \
                 PRAGMA query_only = {};",
                self.wal_size_limit,
                if self.query_only { "ON" } else { "OFF" },
            ))
            .map_err(diesel::r2d2::Error::QueryError)?;
        }
        Ok(())
    }
}

/// Sends r2d2's connection errors to `tracing` (its default handler uses the `log` crate).
#[derive(Debug)]
pub(crate) struct TracingErrors;

impl r2d2::HandleError<diesel::r2d2::Error> for TracingErrors {
    fn handle_error(&self, error: diesel::r2d2::Error) {
        tracing::warn!(%error, "database connection failed");
    }
}

/// Runs `f` in a write transaction: `BEGIN IMMEDIATE` on SQLite, so two writers queue on the
/// file lock at the start instead of deadlocking when a reader upgrades; a plain (read
/// committed) transaction on PostgreSQL, where every write below is a conditional statement
/// whose row lock decides races. Rolls back when `f` fails.
pub(crate) fn write_tx<T>(
    conn: &mut DbConn,
    f: impl FnOnce(&mut DbConn) -> Result<T, StoreError>,
) -> Result<T, StoreError> {
    match conn {
        DbConn::Sqlite(c) => AnsiTransactionManager::begin_transaction_sql(c, "BEGIN IMMEDIATE")?,
        DbConn::Pg(c) => AnsiTransactionManager::begin_transaction(c)?,
    }
    match f(conn) {
        Ok(value) => {
            <DbConn as Connection>::TransactionManager::commit_transaction(conn)?;
            Ok(value)
        }
        Err(err) => match <DbConn as Connection>::TransactionManager::rollback_transaction(conn) {
            // The original error says more than a failed rollback; a broken connection is
            // discarded by the pool anyway.
            Ok(()) | Err(diesel::result::Error::BrokenTransactionManager) => Err(err),
            Err(rollback) => Err(rollback.into()),
        },
    }
}

/// Executes a statement on the variant's own connection. For query-builder SQL that both
/// databases speak but `MultiBackend` cannot render, such as `ON CONFLICT DO NOTHING`.
pub(crate) fn execute_native<Q>(conn: &mut DbConn, query: Q) -> QueryResult<usize>
where
    Q: ExecuteDsl<PgConnection> + ExecuteDsl<SqliteConnection>,
{
    match conn {
        DbConn::Pg(c) => ExecuteDsl::<PgConnection>::execute(query, c),
        DbConn::Sqlite(c) => ExecuteDsl::<SqliteConnection>::execute(query, c),
    }
}

/// Runs `$body` with `$c` bound to the variant's own connection (`PgConnection` or
/// `SqliteConnection`): the query is written once and compiled for each backend.
///
/// For statements on a hot path. Through `MultiConnection`, a query is wrapped in a
/// `SerializedQuery` that renders its SQL text again on every run, while collecting the binds,
/// even when the prepared statement is cached; natively, a cached statement only binds. Going
/// native cut a profile request's instructions by 19 % on SQLite (docs/benchmarks.md).
macro_rules! native {
    ($conn:expr, |$c:ident| $body:expr) => {
        match $conn {
            $crate::conn::DbConn::Pg($c) => $body,
            $crate::conn::DbConn::Sqlite($c) => $body,
        }
    };
}
pub(crate) use native;

/// A statement whose SQL never changes, prepared once per connection under the marker type
/// `Id` instead of on every run.
///
/// Diesel never caches an `UPDATE`: a changeset's SQL may vary with its values (a `None` can
/// drop a column). An update that sets a fixed list of columns (`treat_none_as_null`) or a
/// fixed expression always renders the same SQL, so it may be cached; each call site gets its
/// own `Id`, so two statements never share an entry. Re-preparing the four updates of a
/// relationship transition was 15 % of an `invite-accept` request on SQLite
/// (docs/benchmarks.md). Overrides `is_safe_to_cache_prepared`, which Diesel 2.3 keeps public
/// but undocumented; `tests::fixed_updates_are_prepared_once` checks the effect on PostgreSQL.
///
/// Run it with a load (`get_result`, with a `RETURNING` if need be), not `execute`: Diesel's
/// PostgreSQL `execute` takes the query by reference, and `&T`'s `QueryFragment` does not pass
/// the override on, so an executed `Cached` update is parsed and planned on every run.
pub(crate) struct Cached<Q, Id> {
    query: Q,
    id: PhantomData<Id>,
}

impl<Q, Id> Cached<Q, Id> {
    /// Wraps `query`, whose SQL must be the same on every call with this `Id`.
    pub(crate) fn new(query: Q) -> Self {
        Self {
            query,
            id: PhantomData,
        }
    }
}

impl<Q, Id: 'static> QueryId for Cached<Q, Id> {
    type QueryId = Id;
    const HAS_STATIC_QUERY_ID: bool = true;
}

impl<Q: QueryFragment<DB>, Id, DB: Backend> QueryFragment<DB> for Cached<Q, Id> {
    fn walk_ast<'b>(&'b self, pass: AstPass<'_, 'b, DB>) -> QueryResult<()> {
        self.query.walk_ast(pass)
    }

    fn is_safe_to_cache_prepared(&self, _backend: &DB) -> QueryResult<bool> {
        Ok(true)
    }
}

impl<Q: Query, Id> Query for Cached<Q, Id> {
    type SqlType = Q::SqlType;
}

impl<Q, Id, Conn> diesel::RunQueryDsl<Conn> for Cached<Q, Id> {}
