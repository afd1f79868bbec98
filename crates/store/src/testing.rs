//! Throwaway databases for tests: a temporary SQLite file, or a fresh PostgreSQL database dropped afterwards.
//!
//! PostgreSQL tests connect to `postgres://postgres@127.0.0.1:5432/postgres` unless
//! `KITH_TEST_PG_URL` names another server. When it is unreachable they are skipped with a loud
//! message, except under `CI=true`, where they fail.

use std::time::Duration;

use diesel::{Connection, PgConnection, RunQueryDsl};

use crate::{Store, StoreOptions};

/// The server PostgreSQL tests use when `KITH_TEST_PG_URL` is unset.
pub const DEFAULT_PG_URL: &str = "postgres://postgres@127.0.0.1:5432/postgres";

/// Pool size of test stores: enough for the race tests to run their tasks truly in parallel,
/// small enough that parallel tests stay under PostgreSQL's connection limit.
const TEST_POOL_SIZE: u32 = 8;

/// One migrated database that lives as long as this value.
#[derive(Debug)]
pub struct TestDb {
    store: Store,
    url: String,
    kind: Kind,
}

#[derive(Debug)]
enum Kind {
    /// Holds the directory so the file outlives the store.
    Sqlite(#[allow(dead_code)] tempfile::TempDir),
    Postgres {
        admin_url: String,
        name: String,
    },
}

/// The WAL size past which a test store's checkpoint thread starts the WAL over: small, so a
/// test can grow the WAL past it quickly.
pub(crate) const TEST_WAL_RESET_BYTES: u64 = 8 << 20;

/// Options for test stores.
fn test_options() -> StoreOptions {
    StoreOptions {
        pool_size: TEST_POOL_SIZE,
        connect_timeout: Duration::from_secs(10),
        worker_connections: 2,
        sqlite_wal_reset_bytes: TEST_WAL_RESET_BYTES,
        ..StoreOptions::default()
    }
}

/// `url` with its database path replaced by `database` (query parameters kept).
fn with_database(url: &str, database: &str) -> String {
    let (base, query) = match url.find('?') {
        Some(q) => url.split_at(q),
        None => (url, ""),
    };
    let authority_start = base.find("://").map_or(0, |i| i + 3);
    let host_end = base[authority_start..]
        .find('/')
        .map_or(base.len(), |i| authority_start + i);
    format!("{}/{database}{query}", &base[..host_end])
}

/// Adds a short connect timeout so an unreachable server is noticed quickly.
fn with_connect_timeout(url: &str) -> String {
    if url.contains("connect_timeout=") {
        url.to_owned()
    } else {
        let sep = if url.contains('?') { '&' } else { '?' };
        format!("{url}{sep}connect_timeout=3")
    }
}

impl TestDb {
    /// A migrated store on a new SQLite file in a temporary directory.
    pub fn sqlite() -> TestDb {
        let db = Self::sqlite_unmigrated();
        db.migrate();
        db
    }

    /// Like [`TestDb::sqlite`], without running the migrations.
    pub fn sqlite_unmigrated() -> TestDb {
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("cannot create a temp dir: {e}"));
        let url = format!("sqlite://{}", dir.path().join("kith.db").display());
        let store = Store::open(&url, test_options())
            .unwrap_or_else(|e| panic!("cannot open the test SQLite store: {e}"));
        TestDb {
            store,
            url,
            kind: Kind::Sqlite(dir),
        }
    }

    /// The server URL PostgreSQL tests use: `KITH_TEST_PG_URL` or [`DEFAULT_PG_URL`].
    pub fn postgres_admin_url() -> String {
        std::env::var("KITH_TEST_PG_URL")
            .ok()
            .filter(|u| !u.is_empty())
            .unwrap_or_else(|| DEFAULT_PG_URL.to_owned())
    }

    /// A migrated store on a new database `kith_t_<16 hex>`, dropped with this value. `None`
    /// (after a loud message on stderr) when the server is unreachable; panics instead when
    /// `CI=true`, so a broken CI setup cannot pass by skipping.
    pub fn postgres() -> Option<TestDb> {
        let db = Self::postgres_unmigrated()?;
        db.migrate();
        Some(db)
    }

    /// Like [`TestDb::postgres`], without running the migrations.
    pub fn postgres_unmigrated() -> Option<TestDb> {
        let admin_url = Self::postgres_admin_url();
        let mut admin = match PgConnection::establish(&with_connect_timeout(&admin_url)) {
            Ok(conn) => conn,
            Err(e) => {
                if std::env::var("CI").is_ok_and(|v| v == "true") {
                    panic!("PostgreSQL at {admin_url} is unreachable and CI=true: {e}");
                }
                eprintln!(
                    "\n!!!!!!!!!! SKIPPING PostgreSQL test: {admin_url} is unreachable ({}). \
                     Start PostgreSQL or set KITH_TEST_PG_URL. !!!!!!!!!!\n",
                    e.to_string().trim()
                );
                return None;
            }
        };
        let name = format!("kith_t_{:016x}", rand::random::<u64>());
        diesel::sql_query(format!("CREATE DATABASE {name}"))
            .execute(&mut admin)
            .unwrap_or_else(|e| panic!("cannot create test database {name}: {e}"));
        let url = with_database(&admin_url, &name);
        let store = match Store::open(&url, test_options()) {
            Ok(store) => store,
            Err(e) => {
                drop_database(&admin_url, &name);
                panic!("cannot open test database {name}: {e}");
            }
        };
        Some(TestDb {
            store,
            url,
            kind: Kind::Postgres { admin_url, name },
        })
    }

    fn migrate(&self) {
        self.store.migrate().unwrap_or_else(|e| {
            panic!(
                "cannot migrate the test {} store: {e}",
                self.store.backend()
            )
        });
    }

    /// The store.
    pub fn store(&self) -> &Store {
        &self.store
    }

    /// The URL the store was opened with, to open more stores on the same database.
    pub fn url(&self) -> &str {
        &self.url
    }
}

/// Drops a test database, ending its connections first.
fn drop_database(admin_url: &str, name: &str) {
    let result = PgConnection::establish(&with_connect_timeout(admin_url))
        .map_err(|e| e.to_string())
        .and_then(|mut admin| {
            diesel::sql_query(format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
                .execute(&mut admin)
                .map_err(|e| e.to_string())
        });
    if let Err(e) = result {
        eprintln!("warning: could not drop test database {name}: {e}");
    }
}

impl Drop for TestDb {
    fn drop(&mut self) {
        if let Kind::Postgres { admin_url, name } = &self.kind {
            drop_database(admin_url, name);
        }
    }
}

/// Defines one test per backend: a module `$name` with `sqlite` and `postgres` tests, each
/// running `$body` (an `async` closure taking a [`Store`]) on its own fresh database.
/// Callers need `tokio` (with `macros` and `rt-multi-thread`) among their dependencies.
///
/// ```ignore
/// kith_store::both_backends!(pings, |store: Store| async move {
///     store.ping().await.unwrap();
/// });
/// ```
#[macro_export]
macro_rules! both_backends {
    ($name:ident, $body:expr) => {
        mod $name {
            #[allow(unused_imports)]
            use super::*;

            #[tokio::test(flavor = "multi_thread")]
            async fn sqlite() {
                let db = $crate::testing::TestDb::sqlite();
                ($body)(db.store().clone()).await;
            }

            #[tokio::test(flavor = "multi_thread")]
            async fn postgres() {
                let Some(db) = $crate::testing::TestDb::postgres() else {
                    return;
                };
                ($body)(db.store().clone()).await;
            }
        }
    };
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn database_urls_swap_only_the_path() {
        assert_eq!(
            with_database("postgres://postgres@127.0.0.1:5432/postgres", "kith_t_1"),
            "postgres://postgres@127.0.0.1:5432/kith_t_1"
        );
        assert_eq!(
            with_database("postgres://u:p@h/db?sslmode=disable", "x"),
            "postgres://u:p@h/x?sslmode=disable"
        );
        assert_eq!(with_database("postgres://h", "x"), "postgres://h/x");
        assert_eq!(
            with_connect_timeout("postgres://h/x"),
            "postgres://h/x?connect_timeout=3"
        );
    }
}
