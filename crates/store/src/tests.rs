//! Storage tests: every port rule and race, each run on SQLite and on PostgreSQL.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use diesel::prelude::*;
use kith_domain::phone::Phone;
use kith_domain::ports::{
    AccountStore, CodeRecord, LoginThrottle, NewAccount, NewVerificationToken, Privacy,
    ProfileChange, SessionRecord,
};
use kith_domain::{DomainError, Millis, UserId};
use tokio::sync::Barrier;

use crate::schema::{changes, users};
use crate::testing::TestDb;
use crate::{both_backends, DbConn, Store, StoreError, StoreOptions};

mod addressbook;
mod captchas;
mod groups;
mod relationships;
mod sync;

const NOW: Millis = 1_800_000_000_000;
const MINUTE: Millis = 60_000;
const MAX_ATTEMPTS: i32 = 5;
/// How many tasks the race tests start at once.
const RACERS: usize = 8;

fn phone(n: u32) -> Phone {
    Phone::from_e164(&format!("+86139{n:08}")).unwrap()
}

fn uid(n: i64) -> UserId {
    UserId::new(n).unwrap()
}

fn code(hash: &str, sent_at: Millis) -> CodeRecord {
    CodeRecord {
        code_hash: hash.to_owned(),
        sent_at,
        expires_at: sent_at + 5 * MINUTE,
        attempts: 0,
    }
}

fn token(hash: &str, phone: &Phone) -> NewVerificationToken {
    NewVerificationToken {
        token_hash: hash.to_owned(),
        phone: phone.clone(),
        expires_at: NOW + 10 * MINUTE,
    }
}

fn account(candidate: i64, nickname: &str) -> NewAccount {
    NewAccount {
        candidate_id: uid(candidate),
        nickname: nickname.to_owned(),
        password_hash: format!("hash-of-{nickname}"),
        now: NOW,
    }
}

fn session(hash: &str, user: UserId) -> SessionRecord {
    SessionRecord {
        token_hash: hash.to_owned(),
        user_id: user,
        created_at: NOW,
        last_seen_at: NOW,
    }
}

/// Sends and consumes a code for `phone`, leaving a verification token `token_hash`.
async fn verify(store: &Store, phone: &Phone, token_hash: &str) {
    assert!(store
        .put_code(phone, code("c", NOW), NOW - MINUTE)
        .await
        .unwrap());
    assert!(store
        .consume_code(phone, "c", NOW, MAX_ATTEMPTS, token(token_hash, phone))
        .await
        .unwrap());
}

/// Registers `phone` as user `id` with nickname `nick`.
async fn registered(store: &Store, phone: &Phone, id: i64, nick: &str) -> UserId {
    let token_hash = format!("tok-{nick}-{}", phone.e164());
    verify(store, phone, &token_hash).await;
    store
        .register(&token_hash, account(id, nick))
        .await
        .unwrap()
}

/// Starts `RACERS` copies of `f` released at the same instant and collects their results.
async fn race<T, F, Fut>(store: &Store, f: F) -> Vec<T>
where
    T: Send + 'static,
    F: Fn(Store, usize) -> Fut,
    Fut: Future<Output = T> + Send + 'static,
{
    let barrier = Arc::new(Barrier::new(RACERS));
    let mut tasks = Vec::new();
    for i in 0..RACERS {
        let barrier = barrier.clone();
        let fut = f(store.clone(), i);
        tasks.push(tokio::spawn(async move {
            barrier.wait().await;
            fut.await
        }));
    }
    let mut out = Vec::new();
    for task in tasks {
        out.push(task.await.unwrap());
    }
    out
}

async fn version_of(store: &Store, user: UserId) -> i64 {
    store
        .run(move |c| {
            Ok(users::table
                .find(user.get())
                .select(users::version)
                .first::<i64>(c)?)
        })
        .await
        .unwrap()
}

async fn changes_of(store: &Store, user: UserId) -> Vec<(i64, String, Option<i64>, Millis)> {
    store
        .run(move |c| {
            Ok(changes::table
                .filter(changes::owner.eq(user.get()))
                .order(changes::version)
                .select((
                    changes::version,
                    changes::kind,
                    changes::subject,
                    changes::at,
                ))
                .load(c)?)
        })
        .await
        .unwrap()
}

/// Runs a blocking store call off the async workers.
async fn blocking<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> T {
    tokio::task::spawn_blocking(f).await.unwrap()
}

// ---------------------------------------------------------------- opening and migrations

both_backends!(ping_and_pool_state, |store: Store| async move {
    store.ping().await.unwrap();
    let (connections, idle) = store.pool_state();
    assert!(
        connections >= 1 && idle <= connections,
        "{connections} {idle}"
    );
    assert!(format!("{store:?}").contains(store.backend()));
});

both_backends!(migrate_twice_is_a_noop, |store: Store| async move {
    let p = phone(1);
    let id = registered(&store, &p, 42, "ann").await;
    let again = store.clone();
    blocking(move || again.migrate()).await.unwrap();
    let again = store.clone();
    blocking(move || again.migrate()).await.unwrap();
    assert_eq!(store.get_user(id).await.unwrap().unwrap().nickname, "ann");
});

/// Three stores (three pools, as three instances would have) migrate one fresh database at once.
async fn concurrent_migrate(db: TestDb) {
    let stores: Vec<Store> = (0..3)
        .map(|_| {
            Store::open(
                db.url(),
                StoreOptions {
                    pool_size: 2,
                    connect_timeout: Duration::from_secs(10),
                    worker_connections: 1,
                    ..StoreOptions::default()
                },
            )
            .unwrap()
        })
        .collect();
    let barrier = Arc::new(std::sync::Barrier::new(stores.len()));
    let threads: Vec<_> = stores
        .iter()
        .cloned()
        .map(|s| {
            let barrier = barrier.clone();
            std::thread::spawn(move || {
                barrier.wait();
                s.migrate()
            })
        })
        .collect();
    for t in threads {
        t.join().unwrap().unwrap();
    }
    for s in &stores {
        s.ping().await.unwrap();
    }
    let p = phone(2);
    let id = registered(&stores[0], &p, 7, "bo").await;
    assert_eq!(
        stores[2].get_user(id).await.unwrap().unwrap().nickname,
        "bo"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn concurrent_migrate_sqlite() {
    concurrent_migrate(TestDb::sqlite_unmigrated()).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn concurrent_migrate_postgres() {
    if let Some(db) = TestDb::postgres_unmigrated() {
        concurrent_migrate(db).await;
    }
}

/// The pool skips its `SELECT 1` for a connection used in the last moments, so a connection
/// whose server side died must be dropped when a call on it fails, not handed out again
/// (Diesel marks a connection closed under it as broken; `Pooled::finished` pings after the
/// other outage errors).
#[tokio::test(flavor = "multi_thread")]
async fn a_connection_that_lost_its_server_leaves_the_pool() {
    #[derive(QueryableByName)]
    struct Pid {
        #[diesel(sql_type = diesel::sql_types::Integer)]
        pid: i32,
    }
    let Some(db) = TestDb::postgres() else { return };
    let store = db.store();
    let pid = || {
        store.run(|conn| {
            Ok(diesel::sql_query("SELECT pg_backend_pid() AS pid")
                .get_result::<Pid>(conn)?
                .pid)
        })
    };
    let first = pid().await.unwrap();
    // r2d2 hands out the connection returned last, so the next call gets this backend again.
    let mut admin = diesel::PgConnection::establish(db.url()).unwrap();
    diesel::sql_query(format!("SELECT pg_terminate_backend({first})"))
        .execute(&mut admin)
        .unwrap();
    let mut failures = 0;
    let mut pids = Vec::new();
    for _ in 0..8 {
        match pid().await {
            Ok(p) => pids.push(p),
            Err(DomainError::Unavailable(_)) => failures += 1,
            Err(other) => panic!("{other:?}"),
        }
    }
    assert!(
        failures <= 1,
        "the dead connection kept failing: {failures} of 8 calls"
    );
    assert!(
        !pids.contains(&first),
        "the terminated backend answered: {pids:?}"
    );
}

/// A transition's writes (the version bump and the row upsert) are prepared once per connection
/// (`conn::Cached`); Diesel's own `UPDATE` would be parsed and planned again on every run (an
/// unnamed statement, which `pg_prepared_statements` does not list).
#[tokio::test(flavor = "multi_thread")]
async fn fixed_updates_are_prepared_once() {
    #[derive(QueryableByName)]
    struct Count {
        #[diesel(sql_type = diesel::sql_types::BigInt)]
        n: i64,
    }
    let Some(db) = TestDb::postgres() else { return };
    let counts = db
        .store()
        .run(|conn| {
            let prepared = |conn: &mut DbConn, like: &str| -> Result<i64, StoreError> {
                Ok(diesel::sql_query(format!(
                    "SELECT count(*) AS n FROM pg_prepared_statements WHERE statement LIKE '{like}'"
                ))
                .get_result::<Count>(conn)?
                .n)
            };
            for _ in 0..3 {
                // No such user: the statement is prepared (or not) all the same.
                let missing = crate::relationships::next_version(conn, 987_654_321);
                assert!(
                    matches!(missing, Err(StoreError::NotFound("user"))),
                    "{missing:?}"
                );
                let orphan = crate::relationships::write_side(
                    conn,
                    987_654_321,
                    987_654_322,
                    &kith_domain::relationship::Side::default(),
                );
                assert!(
                    matches!(orphan, Err(StoreError::NotFound("user"))),
                    "{orphan:?}"
                );
                diesel::update(users::table.find(987_654_321_i64))
                    .set(users::nickname.eq("x"))
                    .execute(conn)?;
            }
            Ok((
                prepared(conn, "UPDATE \"users\" SET \"version\"%")?,
                prepared(conn, "INSERT INTO \"relationships\"%")?,
                prepared(conn, "UPDATE \"users\" SET \"nickname\"%")?,
            ))
        })
        .await
        .unwrap();
    assert_eq!(
        counts,
        (1, 1, 0),
        "(cached next_version, cached write_side, plain diesel update)"
    );
}

/// On SQLite a transition's writes (`sqlite_writes`: the one- and two-row upserts, the users
/// update and the change log) are each prepared once per connection: running the same kinds of
/// transition again caches no new statement. Each run also checks what the writes left.
#[tokio::test(flavor = "multi_thread")]
async fn sqlite_transition_writes_are_prepared_once() {
    use std::sync::Mutex;

    use diesel::connection::{Instrumentation, InstrumentationEvent};
    use kith_domain::relationship::{Friendship, Outcome, Pair, Transition};

    struct Prepared(Arc<Mutex<Vec<String>>>);
    impl Instrumentation for Prepared {
        fn on_connection_event(&mut self, event: InstrumentationEvent<'_>) {
            if let InstrumentationEvent::CacheQuery { sql, .. } = event {
                self.0.lock().unwrap().push(sql.to_owned());
            }
        }
    }

    let db = TestDb::sqlite();
    let store = db.store();
    let a = registered(store, &phone(1), 1, "a").await.get();
    let b = registered(store, &phone(2), 2, "b").await.get();
    let cached = Arc::new(Mutex::new(Vec::new()));

    let (rows, versions, logged) = store
        .serial_write(move |conn| {
            let DbConn::Sqlite(c) = &mut *conn else {
                unreachable!("a SQLite store")
            };
            c.set_instrumentation(Prepared(cached.clone()));
            let mut cached_per_round = Vec::new();
            for round in 0..3_i64 {
                // Both rows change (two-row upsert, two versions), then only mine while we are
                // friends (one-row upsert, their list stamp moves), then nothing.
                let both: kith_domain::ports::Decide = Box::new(move |pair: &Pair, _| {
                    let mut next = pair.clone();
                    next.mine.friendship = Friendship::Friends;
                    next.theirs.friendship = Friendship::Friends;
                    next.mine.updated_at = NOW + round;
                    next.theirs.updated_at = NOW + round;
                    Ok(Transition {
                        pair: next,
                        outcome: Outcome::Done,
                        mine_changed: true,
                        theirs_changed: true,
                        events: Vec::new(),
                    })
                });
                let mine: kith_domain::ports::Decide = Box::new(move |pair: &Pair, _| {
                    let mut next = pair.clone();
                    next.mine.starred = !next.mine.starred;
                    next.mine.updated_at = NOW + round;
                    Ok(Transition {
                        pair: next,
                        outcome: Outcome::Done,
                        mine_changed: true,
                        theirs_changed: false,
                        events: Vec::new(),
                    })
                });
                let none: kith_domain::ports::Decide = Box::new(|pair: &Pair, _| {
                    Ok(Transition {
                        pair: pair.clone(),
                        outcome: Outcome::Unchanged,
                        mine_changed: false,
                        theirs_changed: false,
                        events: Vec::new(),
                    })
                });
                let before = cached.lock().unwrap().len();
                for decide in [both, mine, none] {
                    crate::conn::write_tx(conn, |c| {
                        crate::relationships::transition_tx(c, a, b, &decide)
                    })?;
                }
                cached_per_round.push(cached.lock().unwrap()[before..].to_vec());
            }
            let rows = crate::schema::relationships::table
                .select((
                    crate::schema::relationships::owner,
                    crate::schema::relationships::starred,
                ))
                .order(crate::schema::relationships::owner)
                .load::<(i64, bool)>(conn)?;
            let versions = users::table
                .filter(users::id.eq_any([a, b]))
                .order(users::id)
                .select((users::version, users::list_stamp))
                .load::<(i64, i64)>(conn)?;
            let logged = changes::table
                .filter(changes::owner.eq_any([a, b]))
                .filter(changes::kind.eq(crate::relationships::CHANGE_KIND_RELATIONSHIP))
                .order((changes::owner, changes::version))
                .select((
                    changes::owner,
                    changes::version,
                    changes::subject,
                    changes::at,
                ))
                .load::<(i64, i64, Option<i64>, Millis)>(conn)?;
            Ok(((rows, cached_per_round), versions, logged))
        })
        .await
        .unwrap();
    let (rows, cached_per_round) = rows;
    let first = &cached_per_round[0];
    for needle in [
        "INSERT INTO relationships (owner",
        "UPDATE users SET version = version + 1 WHERE",
        "INSERT INTO changes (owner, version, kind",
        "UPDATE users SET list_stamp = list_stamp + 1",
    ] {
        assert!(
            first.iter().any(|sql| sql.starts_with(needle)),
            "{needle} was not cached in the first round: {first:?}"
        );
    }
    assert_eq!(
        first
            .iter()
            .filter(|sql| sql.starts_with("INSERT INTO relationships (owner"))
            .count(),
        2,
        "the one- and two-row upserts: {first:?}"
    );
    assert!(
        cached_per_round[1..].iter().all(Vec::is_empty),
        "later rounds prepared again: {cached_per_round:?}"
    );
    // Three rounds: my star toggled three times (on), theirs never.
    assert_eq!(rows, vec![(a, true), (b, false)]);
    let (va, vb) = (versions[0], versions[1]);
    // Mine: two changes a round; theirs: one change and one restamp a round. Registration
    // leaves both at the same start.
    assert_eq!(va.0 - vb.0, 3, "{versions:?}");
    assert_eq!(vb.1 - va.1, 3, "{versions:?}");
    let mine: Vec<_> = logged.iter().filter(|row| row.0 == a).collect();
    let theirs: Vec<_> = logged.iter().filter(|row| row.0 == b).collect();
    assert_eq!((mine.len(), theirs.len()), (6, 3), "{logged:?}");
    assert!(mine.iter().all(|row| row.2 == Some(b)), "{logged:?}");
    assert!(theirs.iter().all(|row| row.2 == Some(a)), "{logged:?}");
    assert_eq!(
        theirs.iter().map(|row| row.3).collect::<Vec<_>>(),
        vec![NOW, NOW + 1, NOW + 2]
    );
    // Each owner's log numbers the versions the owner's row took, one after another.
    assert!(mine.windows(2).all(|w| w[1].1 == w[0].1 + 1), "{logged:?}");
    assert_eq!(mine.last().unwrap().1, va.0);
    assert_eq!(theirs.last().unwrap().1, vb.0);
}

#[tokio::test(flavor = "multi_thread")]
async fn sqlite_connections_get_their_pragmas() {
    #[derive(QueryableByName)]
    struct Pragmas {
        #[diesel(sql_type = diesel::sql_types::Text)]
        journal_mode: String,
        #[diesel(sql_type = diesel::sql_types::Integer)]
        foreign_keys: i32,
        #[diesel(sql_type = diesel::sql_types::Integer)]
        synchronous: i32,
        #[diesel(sql_type = diesel::sql_types::Integer)]
        busy_timeout: i32,
        #[diesel(sql_type = diesel::sql_types::Integer)]
        page_size: i32,
    }
    #[derive(QueryableByName)]
    struct Autocheckpoint {
        #[diesel(sql_type = diesel::sql_types::Integer)]
        wal_autocheckpoint: i32,
    }
    let db = TestDb::sqlite();
    let (pragmas, autocheckpoint) = db
        .store()
        .run(|conn| match conn {
            DbConn::Sqlite(c) => Ok((
                diesel::sql_query(
                    "SELECT j.journal_mode, f.foreign_keys, s.synchronous, b.timeout AS busy_timeout, \
                     p.page_size FROM pragma_journal_mode() j, pragma_foreign_keys() f, \
                     pragma_synchronous() s, pragma_busy_timeout() b, pragma_page_size() p",
                )
                .get_result::<Pragmas>(c)?,
                // Not a table-valued pragma.
                diesel::sql_query("PRAGMA wal_autocheckpoint").get_result::<Autocheckpoint>(c)?,
            )),
            DbConn::Pg(_) => unreachable!(),
        })
        .await
        .unwrap();
    assert_eq!(pragmas.journal_mode, "wal");
    assert_eq!(pragmas.foreign_keys, 1);
    assert_eq!(pragmas.synchronous, 1); // NORMAL
    assert_eq!(pragmas.busy_timeout, 5000);
    // A new file takes the store's page size, not SQLite's default of 4096.
    assert_eq!(
        pragmas.page_size,
        i32::try_from(crate::store::SQLITE_PAGE_SIZE).unwrap()
    );
    // The checkpoint thread's, not the writers' (checkpoint.rs).
    assert_eq!(autocheckpoint.wal_autocheckpoint, 0);
}

/// The WAL bound in bytes becomes a frame count at the file's page size, never zero.
#[test]
fn the_wal_bound_is_counted_in_pages_of_the_file() {
    use crate::checkpoint::reset_after_frames;
    assert_eq!(reset_after_frames(128 << 20, 2048), 65_536);
    assert_eq!(reset_after_frames(128 << 20, 4096), 32_768);
    assert_eq!(reset_after_frames(100, 4096), 1);
    assert_eq!(reset_after_frames(u64::MAX, 1024), i32::MAX);
}

/// The checkpoint thread copies a grown WAL back and resets it, the reset on the writer thread
/// (so this fails with the thread gone: the pool's connections never checkpoint,
/// `sqlite_connections_get_their_pragmas`).
#[tokio::test(flavor = "multi_thread")]
async fn the_checkpoint_thread_resets_a_grown_wal() {
    use diesel::connection::SimpleConnection;

    use crate::checkpoint::{reset_after_frames, Outcome};
    use crate::store::SQLITE_PAGE_SIZE;
    use crate::testing::TEST_WAL_RESET_BYTES;
    let db = TestDb::sqlite();
    let reset_after = reset_after_frames(
        TEST_WAL_RESET_BYTES,
        i32::try_from(SQLITE_PAGE_SIZE).unwrap(),
    );
    // One transaction of well over `reset_after` pages (each row takes two or more).
    let pages = i64::from(reset_after) * 2;
    db.store()
        .serial_write(move |conn| {
            conn.batch_execute(&format!(
                "CREATE TABLE ballast (b BLOB); \
                 WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < {pages}) \
                 INSERT INTO ballast SELECT randomblob(3000) FROM n;"
            ))?;
            Ok(())
        })
        .await
        .unwrap();
    // Nothing here may checkpoint before the end: after some rounds of the thread, a write
    // starts the WAL over.
    tokio::time::sleep(Duration::from_secs(2)).await;
    db.store()
        .serial_write(|conn| Ok(conn.batch_execute("DELETE FROM ballast WHERE rowid = 1")?))
        .await
        .unwrap();
    // A passive checkpoint reports the WAL's size in frames.
    let frames = db
        .store()
        .run(|conn| match conn {
            DbConn::Sqlite(c) => Ok(diesel::sql_query("PRAGMA wal_checkpoint(PASSIVE)")
                .get_result::<Outcome>(c)?
                .log),
            DbConn::Pg(_) => unreachable!(),
        })
        .await
        .unwrap();
    assert!(frames < reset_after, "the WAL still holds {frames} frames");
    // The commit after the reset cut the file back to the bound (`journal_size_limit`); it had
    // grown to twice that.
    let wal = format!("{}-wal", db.url().strip_prefix("sqlite://").unwrap());
    let size = std::fs::metadata(&wal).unwrap().len();
    assert!(
        size <= TEST_WAL_RESET_BYTES,
        "the WAL file is still {size} bytes"
    );
    // On the writer thread, which never has to win the write lock from itself.
    assert!(
        crate::checkpoint::RESETS_ON_WRITER.load(std::sync::atomic::Ordering::Relaxed) > 0,
        "no reset ran on the writer thread"
    );
}

/// Once a SQLite store is dropped, its checkpoint thread's connection is closed too: another
/// connection, even one that would not wait for a lock, can read the file at once.
#[tokio::test(flavor = "multi_thread")]
async fn a_dropped_sqlite_store_leaves_its_file_free() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("k.db");
    for round in 0..5 {
        let store = Store::open(
            &format!("sqlite://{}", path.display()),
            StoreOptions::default(),
        )
        .unwrap();
        store.migrate().unwrap();
        store
            .get_or_init_setting(&format!("n{round}"), "x".to_owned())
            .unwrap();
        drop(store);
        let mut raw = diesel::SqliteConnection::establish(path.to_str().unwrap()).unwrap();
        #[derive(QueryableByName)]
        struct Count {
            #[diesel(sql_type = diesel::sql_types::BigInt)]
            n: i64,
        }
        let count = diesel::sql_query("SELECT count(*) AS n FROM settings")
            .get_result::<Count>(&mut raw)
            .unwrap();
        assert!(count.n > round, "round {round}");
    }
}

/// Whether the SQLite under `db`'s store was compiled with `option` (`sqlite_compiled_with`).
async fn sqlite_compiled_with(db: &TestDb, option: &'static str) -> bool {
    db.store()
        .run(move |conn| match conn {
            DbConn::Sqlite(c) => Ok(crate::store::sqlite_compiled_with(c, option)?),
            DbConn::Pg(_) => unreachable!(),
        })
        .await
        .unwrap()
}

// Without the option, every cached statement with a bound LIMIT (Diesel's `.first()`) or an
// equality on an analysed index is re-prepared on each run: half of a profile request's cost.
#[tokio::test(flavor = "multi_thread")]
async fn sqlite_is_built_with_stable_query_plans_and_without_connection_mutexes() {
    let db = TestDb::sqlite();
    for option in ["ENABLE_QPSG", "THREADSAFE=2"] {
        assert!(
            sqlite_compiled_with(&db, option).await,
            "libsqlite3-sys was built without SQLITE_{option} (see .cargo/config.toml)"
        );
    }
    // One shared page cache, and one mutex on every page fetch of every connection, otherwise.
    assert!(
        !sqlite_compiled_with(&db, "ENABLE_MEMORY_MANAGEMENT").await,
        "libsqlite3-sys was built with SQLITE_ENABLE_MEMORY_MANAGEMENT (see .cargo/config.toml)"
    );
}

#[test]
fn open_rejects_unknown_schemes() {
    let err = Store::open("mysql://root@localhost/kith", StoreOptions::default()).unwrap_err();
    assert!(matches!(err, StoreError::Config(_)), "{err}");
}

#[test]
fn open_creates_the_sqlite_directory() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("a/b/kith.db");
    let store = Store::open(
        &format!("sqlite:{}", path.display()),
        StoreOptions::default(),
    )
    .unwrap();
    store.migrate().unwrap();
    assert_eq!(store.backend(), "sqlite");
    assert!(path.exists());
}

#[test]
fn unreachable_postgres_is_unavailable() {
    let opts = StoreOptions {
        pool_size: 1,
        connect_timeout: Duration::from_secs(1),
        worker_connections: 1,
        ..StoreOptions::default()
    };
    // Port 1 on loopback refuses at once.
    let err = Store::open("postgres://postgres@127.0.0.1:1/kith", opts).unwrap_err();
    assert!(matches!(err, StoreError::Unavailable(_)), "{err}");
    assert!(matches!(
        DomainError::from(err),
        DomainError::Unavailable(_)
    ));
}

/// A PostgreSQL connection opened for reads belongs to the runtime that opened it (the task
/// that drives its socket runs there). After that runtime is gone, the thread's next read must
/// notice the dead connection and open another, not fail.
#[test]
fn worker_reads_survive_the_runtime_that_opened_them() {
    let Some(db) = TestDb::postgres() else {
        return;
    };
    let store = db.store().clone();
    let runtime = || {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap()
    };
    let id = runtime().block_on(registered(&store, &phone(1), 42, "ann"));
    for round in 0..3 {
        // Several reads at once on a thread allowed two connections: they queue, none fails.
        let names = runtime().block_on(async {
            let mut reads = tokio::task::JoinSet::new();
            for _ in 0..8 {
                let store = store.clone();
                reads.spawn(async move { store.get_user(id).await });
            }
            reads.join_all().await
        });
        for name in names {
            assert_eq!(name.unwrap().unwrap().nickname, "ann", "round {round}");
        }
    }
}

/// Each worker thread keeps a store's read connections; once every clone of that store is
/// dropped, the thread's next read closes them, so a program that opens and drops stores does
/// not collect idle PostgreSQL connections.
#[test]
fn a_dropped_stores_worker_connections_are_closed() {
    let Some(db) = TestDb::postgres() else {
        return;
    };
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let id = runtime.block_on(registered(db.store(), &phone(1), 42, "ann"));
    let count = || {
        db.store().run(|conn| {
            #[derive(QueryableByName)]
            struct Count {
                #[diesel(sql_type = diesel::sql_types::BigInt)]
                n: i64,
            }
            Ok(diesel::sql_query(
                "SELECT count(*) AS n FROM pg_stat_activity WHERE datname = current_database()",
            )
            .get_result::<Count>(conn)?
            .n)
        })
    };
    // The test store's own worker connection exists before the other store comes and goes.
    runtime.block_on(db.store().get_user(id)).unwrap();
    let before = runtime.block_on(count()).unwrap();

    let other = Store::open(
        db.url(),
        StoreOptions {
            pool_size: 1,
            connect_timeout: Duration::from_secs(10),
            worker_connections: 2,
            ..StoreOptions::default()
        },
    )
    .unwrap();
    runtime.block_on(other.get_user(id)).unwrap();
    // Its pool connection and its worker connection.
    assert_eq!(runtime.block_on(count()).unwrap(), before + 2);
    drop(other);

    runtime.block_on(async {
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        loop {
            db.store().get_user(id).await.unwrap();
            let now = count().await.unwrap();
            if now == before {
                break;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "{now} connections, {before} expected"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    });
}

// ---------------------------------------------------------------- settings

both_backends!(settings_initialise_once, |store: Store| async move {
    let values = race(&store, |s, i| async move {
        blocking(move || s.get_or_init_setting("hmac_key", format!("key-{i}")))
            .await
            .unwrap()
    })
    .await;
    assert!(values.iter().all(|v| v == &values[0]), "{values:?}");
    let s = store.clone();
    let later = blocking(move || s.get_or_init_setting("hmac_key", "other".to_owned()))
        .await
        .unwrap();
    assert_eq!(later, values[0]);
    let s = store.clone();
    let other = blocking(move || s.get_or_init_setting("other", "x".to_owned()))
        .await
        .unwrap();
    assert_eq!(other, "x");
});

// ---------------------------------------------------------------- SMS codes

both_backends!(
    put_code_throttles_within_the_idle_window,
    |store: Store| async move {
        let p = phone(1);
        assert_eq!(store.get_code(&p).await.unwrap(), None);
        assert!(store
            .put_code(&p, code("first", NOW), NOW - MINUTE)
            .await
            .unwrap());
        assert_eq!(store.get_code(&p).await.unwrap(), Some(code("first", NOW)));

        // 30 s later: the current code was sent after the idle threshold.
        let t = NOW + 30_000;
        assert!(!store
            .put_code(&p, code("second", t), t - MINUTE)
            .await
            .unwrap());
        assert_eq!(store.get_code(&p).await.unwrap(), Some(code("first", NOW)));

        // Exactly at the threshold the new code replaces the old one and its attempts.
        store.add_code_attempt(&p).await.unwrap();
        let t = NOW + MINUTE;
        assert!(store
            .put_code(&p, code("third", t), t - MINUTE)
            .await
            .unwrap());
        assert_eq!(store.get_code(&p).await.unwrap(), Some(code("third", t)));

        // Another phone is not throttled by this one.
        assert!(store
            .put_code(&phone(2), code("x", t), t - MINUTE)
            .await
            .unwrap());
    }
);

both_backends!(put_code_race_stores_one, |store: Store| async move {
    let p = phone(1);
    let stored = race(&store, |s, i| {
        let p = p.clone();
        async move {
            s.put_code(&p, code(&format!("c{i}"), NOW), NOW - MINUTE)
                .await
                .unwrap()
        }
    })
    .await;
    assert_eq!(stored.iter().filter(|b| **b).count(), 1, "{stored:?}");

    // Once a code exists, a second race (a minute later) again lets exactly one through.
    let t = NOW + MINUTE;
    let stored = race(&store, |s, i| {
        let p = p.clone();
        async move {
            s.put_code(&p, code(&format!("d{i}"), t), t - MINUTE)
                .await
                .unwrap()
        }
    })
    .await;
    assert_eq!(stored.iter().filter(|b| **b).count(), 1, "{stored:?}");
    assert!(store
        .get_code(&p)
        .await
        .unwrap()
        .unwrap()
        .code_hash
        .starts_with('d'));
});

both_backends!(code_attempts_are_counted, |store: Store| async move {
    let p = phone(1);
    store.add_code_attempt(&p).await.unwrap(); // no code: nothing to count
    store
        .put_code(&p, code("c", NOW), NOW - MINUTE)
        .await
        .unwrap();
    store.add_code_attempt(&p).await.unwrap();
    store.add_code_attempt(&p).await.unwrap();
    assert_eq!(store.get_code(&p).await.unwrap().unwrap().attempts, 2);
});

both_backends!(
    consume_code_checks_hash_expiry_and_attempts,
    |store: Store| async move {
        let p = phone(1);
        assert!(!store
            .consume_code(&p, "c", NOW, MAX_ATTEMPTS, token("t0", &p))
            .await
            .unwrap());

        store
            .put_code(&p, code("c", NOW), NOW - MINUTE)
            .await
            .unwrap();
        assert!(!store
            .consume_code(&p, "wrong", NOW, MAX_ATTEMPTS, token("t1", &p))
            .await
            .unwrap());
        let expiry = NOW + 5 * MINUTE;
        assert!(!store
            .consume_code(&p, "c", expiry, MAX_ATTEMPTS, token("t2", &p))
            .await
            .unwrap());
        for _ in 0..MAX_ATTEMPTS {
            store.add_code_attempt(&p).await.unwrap();
        }
        assert!(!store
            .consume_code(&p, "c", NOW, MAX_ATTEMPTS, token("t3", &p))
            .await
            .unwrap());
        // Refusals leave the code in place.
        assert!(store.get_code(&p).await.unwrap().is_some());

        let t = NOW + MINUTE;
        store.put_code(&p, code("c", t), t - MINUTE).await.unwrap();
        assert!(store
            .consume_code(&p, "c", t, MAX_ATTEMPTS, token("good", &p))
            .await
            .unwrap());
        // The spent code stays, unmatchable, and still throttles sending.
        assert_eq!(
            store.get_code(&p).await.unwrap(),
            Some(CodeRecord {
                code_hash: String::new(),
                ..code("c", t)
            })
        );
        let soon = t + 30_000;
        assert!(!store
            .put_code(&p, code("d", soon), soon - MINUTE)
            .await
            .unwrap());
        assert!(!store
            .consume_code(&p, "", t, MAX_ATTEMPTS, token("empty", &p))
            .await
            .unwrap());
        assert!(!store
            .consume_code(&p, "c", t, MAX_ATTEMPTS, token("again", &p))
            .await
            .unwrap());

        // Only the consuming call stored a token.
        for unused in ["t0", "t1", "t2", "t3", "empty", "again"] {
            assert_eq!(
                store.register(unused, account(9, "x")).await,
                Err(DomainError::NotFound("verification_token"))
            );
        }
        assert_eq!(store.register("good", account(9, "x")).await, Ok(uid(9)));
    }
);

both_backends!(
    consume_code_race_has_one_winner,
    |store: Store| async move {
        let p = phone(1);
        store
            .put_code(&p, code("c", NOW), NOW - MINUTE)
            .await
            .unwrap();
        let won = race(&store, |s, i| {
            let p = p.clone();
            async move {
                s.consume_code(&p, "c", NOW, MAX_ATTEMPTS, token(&format!("t{i}"), &p))
                    .await
                    .unwrap()
            }
        })
        .await;
        assert_eq!(won.iter().filter(|b| **b).count(), 1, "{won:?}");
        let winner = won.iter().position(|b| *b).unwrap();
        for i in 0..RACERS {
            let result = store
                .register(&format!("t{i}"), account(100 + i as i64, "r"))
                .await;
            if i == winner {
                assert!(result.is_ok(), "{result:?}");
            } else {
                assert_eq!(result, Err(DomainError::NotFound("verification_token")));
            }
        }
    }
);

// ---------------------------------------------------------------- registration

both_backends!(register_creates_the_account, |store: Store| async move {
    let p = phone(1);
    assert!(!store.phone_registered(&p).await.unwrap());
    verify(&store, &p, "tok").await;
    let id = store.register("tok", account(42, "ann")).await.unwrap();
    assert_eq!(id, uid(42));
    assert!(store.phone_registered(&p).await.unwrap());

    let user = store.get_user(id).await.unwrap().unwrap();
    assert_eq!(user.phone, p);
    assert!(user.registered);
    assert_eq!(user.nickname, "ann");
    assert_eq!(user.portrait_uri, "");
    assert_eq!(user.user_name, None);
    assert_eq!(user.privacy, Privacy::default());
    assert_eq!((user.created_at, user.updated_at), (NOW, NOW));
    assert_eq!(store.find_by_phone(&p).await.unwrap(), Some(user));
    assert_eq!(version_of(&store, id).await, 0);

    let login = store.find_login(&p).await.unwrap().unwrap();
    assert_eq!(login.user_id, id);
    assert_eq!(login.password_hash, "hash-of-ann");
    assert_eq!(login.throttle, LoginThrottle::default());
    assert_eq!(store.login_by_id(id).await.unwrap(), Some(login));

    // The token is spent.
    assert_eq!(
        store.register("tok", account(43, "ann")).await,
        Err(DomainError::NotFound("verification_token"))
    );
    assert_eq!(
        store.register("never-issued", account(44, "x")).await,
        Err(DomainError::NotFound("verification_token"))
    );
});

both_backends!(register_refuses_expired_tokens, |store: Store| async move {
    let p = phone(1);
    verify(&store, &p, "tok").await;
    let mut late = account(42, "ann");
    late.now = NOW + 10 * MINUTE;
    assert_eq!(
        store.register("tok", late).await,
        Err(DomainError::NotFound("verification_token"))
    );
    assert!(!store.phone_registered(&p).await.unwrap());
});

both_backends!(
    register_conflicts_on_a_registered_phone,
    |store: Store| async move {
        let p = phone(1);
        registered(&store, &p, 42, "ann").await;
        let t = NOW + MINUTE;
        store.put_code(&p, code("c2", t), t - MINUTE).await.unwrap();
        assert!(store
            .consume_code(&p, "c2", t, MAX_ATTEMPTS, token("tok2", &p))
            .await
            .unwrap());
        assert_eq!(
            store.register("tok2", account(43, "imposter")).await,
            Err(DomainError::Conflict("phone"))
        );
        assert_eq!(store.get_user(uid(43)).await.unwrap(), None);
        assert_eq!(
            store.find_by_phone(&p).await.unwrap().unwrap().nickname,
            "ann"
        );
    }
);

both_backends!(
    register_conflicts_on_a_taken_id,
    |store: Store| async move {
        registered(&store, &phone(1), 42, "ann").await;
        verify(&store, &phone(2), "tok").await;
        assert_eq!(
            store.register("tok", account(42, "bo")).await,
            Err(DomainError::Conflict("user_id"))
        );
        // The failed transaction left the token unspent: a retry with a fresh id succeeds.
        assert_eq!(store.register("tok", account(43, "bo")).await, Ok(uid(43)));
    }
);

both_backends!(
    register_race_on_one_token_has_one_winner,
    |store: Store| async move {
        let p = phone(1);
        verify(&store, &p, "tok").await;
        let results = race(&store, |s, i| async move {
            s.register("tok", account(100 + i as i64, "racer")).await
        })
        .await;
        let winners: Vec<_> = results.iter().filter_map(|r| r.as_ref().ok()).collect();
        assert_eq!(winners.len(), 1, "{results:?}");
        for r in &results {
            if let Err(e) = r {
                assert_eq!(e, &DomainError::NotFound("verification_token"));
            }
        }
        let user = store.find_by_phone(&p).await.unwrap().unwrap();
        assert_eq!(&user.id, winners[0]);
    }
);

both_backends!(
    register_race_on_one_phone_has_one_winner,
    |store: Store| async move {
        // Several verified tokens for one phone, spent at once.
        let p = phone(1);
        for i in 0..RACERS {
            let t = NOW + i as i64 * MINUTE;
            store.put_code(&p, code("c", t), t - MINUTE).await.unwrap();
            assert!(store
                .consume_code(&p, "c", t, MAX_ATTEMPTS, token(&format!("tok{i}"), &p))
                .await
                .unwrap());
        }
        let results = race(&store, |s, i| async move {
            s.register(&format!("tok{i}"), account(100 + i as i64, "racer"))
                .await
        })
        .await;
        assert_eq!(
            results.iter().filter(|r| r.is_ok()).count(),
            1,
            "{results:?}"
        );
        for r in &results {
            if let Err(e) = r {
                assert_eq!(e, &DomainError::Conflict("phone"));
            }
        }
    }
);

both_backends!(
    placeholder_takeover_keeps_the_id,
    |store: Store| async move {
        let p = phone(1);
        assert_eq!(
            store.create_placeholder(uid(500), &p, NOW - MINUTE).await,
            Ok(uid(500))
        );
        // A second upload of the same phone finds the first placeholder.
        assert_eq!(
            store.create_placeholder(uid(501), &p, NOW).await,
            Ok(uid(500))
        );
        // An id already used by another phone is refused.
        assert_eq!(
            store.create_placeholder(uid(500), &phone(2), NOW).await,
            Err(DomainError::Conflict("user_id"))
        );
        assert!(!store.phone_registered(&p).await.unwrap());
        assert_eq!(store.find_login(&p).await.unwrap(), None);
        assert_eq!(store.login_by_id(uid(500)).await.unwrap(), None);
        let placeholder = store.get_user(uid(500)).await.unwrap().unwrap();
        assert!(!placeholder.registered);
        assert_eq!(placeholder.nickname, "");
        assert_eq!(placeholder.phone.region(), "86");

        verify(&store, &p, "tok").await;
        assert_eq!(
            store.register("tok", account(600, "ann")).await,
            Ok(uid(500))
        );
        assert_eq!(store.get_user(uid(600)).await.unwrap(), None);
        let user = store.get_user(uid(500)).await.unwrap().unwrap();
        assert!(user.registered);
        assert_eq!(user.nickname, "ann");
        assert_eq!(user.created_at, NOW);
        assert!(store.phone_registered(&p).await.unwrap());
        assert_eq!(
            store.find_login(&p).await.unwrap().unwrap().user_id,
            uid(500)
        );
        // The registered user is not a placeholder any more.
        assert_eq!(
            store.create_placeholder(uid(502), &p, NOW).await,
            Ok(uid(500))
        );
    }
);

both_backends!(placeholder_race_makes_one_user, |store: Store| async move {
    let p = phone(1);
    let ids = race(&store, |s, i| {
        let p = p.clone();
        async move {
            s.create_placeholder(uid(700 + i as i64), &p, NOW)
                .await
                .unwrap()
        }
    })
    .await;
    assert!(ids.iter().all(|id| id == &ids[0]), "{ids:?}");
});

// ---------------------------------------------------------------- passwords and sessions

both_backends!(
    reset_password_sets_the_hash_and_revokes_sessions,
    |store: Store| async move {
        let p = phone(1);
        let id = registered(&store, &p, 42, "ann").await;
        let other = registered(&store, &phone(2), 43, "bo").await;
        store.create_session(session("s1", id)).await.unwrap();
        store.create_session(session("s2", id)).await.unwrap();
        store.create_session(session("b1", other)).await.unwrap();
        let locked = LoginThrottle {
            failures: 4,
            window_start: NOW,
            locked_until: NOW + 60 * MINUTE,
            lock_level: 3,
        };
        store.set_throttle(id, locked).await.unwrap();
        store.set_throttle(other, locked).await.unwrap();

        let t = NOW + MINUTE;
        store.put_code(&p, code("r", t), t - MINUTE).await.unwrap();
        assert!(store
            .consume_code(&p, "r", t, MAX_ATTEMPTS, token("reset", &p))
            .await
            .unwrap());
        assert_eq!(store.reset_password("reset", t, "new-hash").await, Ok(id));
        let login = store.find_login(&p).await.unwrap().unwrap();
        assert_eq!(login.password_hash, "new-hash");
        // Proving the phone lifted the login lock; the other account keeps its own.
        assert_eq!(login.throttle, LoginThrottle::default());
        assert_eq!(
            store.login_by_id(other).await.unwrap().unwrap().throttle,
            locked
        );
        assert_eq!(store.get_session("s1").await.unwrap(), None);
        assert_eq!(store.get_session("s2").await.unwrap(), None);
        assert!(store.get_session("b1").await.unwrap().is_some());

        assert_eq!(
            store.reset_password("reset", t, "again").await,
            Err(DomainError::NotFound("verification_token"))
        );
        assert_eq!(
            store.reset_password("unknown", t, "again").await,
            Err(DomainError::NotFound("verification_token"))
        );
    }
);

both_backends!(
    reset_password_needs_a_registered_account,
    |store: Store| async move {
        let p = phone(1);
        store.create_placeholder(uid(500), &p, NOW).await.unwrap();
        verify(&store, &p, "tok").await;
        assert_eq!(
            store.reset_password("tok", NOW, "h").await,
            Err(DomainError::NotFound("verification_token"))
        );
        // The failed reset rolled back, so the token still serves registration.
        assert_eq!(
            store.register("tok", account(600, "ann")).await,
            Ok(uid(500))
        );

        // An expired token does not reset a registered account.
        let p2 = phone(2);
        registered(&store, &p2, 43, "bo").await;
        let t = NOW + MINUTE;
        store.put_code(&p2, code("c", t), t - MINUTE).await.unwrap();
        assert!(store
            .consume_code(&p2, "c", t, MAX_ATTEMPTS, token("late", &p2))
            .await
            .unwrap());
        assert_eq!(
            store.reset_password("late", NOW + 10 * MINUTE, "h").await,
            Err(DomainError::NotFound("verification_token"))
        );
        assert_eq!(
            store.find_login(&p2).await.unwrap().unwrap().password_hash,
            "hash-of-bo"
        );
    }
);

both_backends!(set_password_hash_revoke_modes, |store: Store| async move {
    let id = registered(&store, &phone(1), 42, "ann").await;
    let other = registered(&store, &phone(2), 43, "bo").await;
    store.create_session(session("b1", other)).await.unwrap();
    for s in ["s1", "s2", "s3"] {
        store.create_session(session(s, id)).await.unwrap();
    }
    let alive = |store: Store| async move {
        let mut out = Vec::new();
        for s in ["s1", "s2", "s3", "b1"] {
            if store.get_session(s).await.unwrap().is_some() {
                out.push(s);
            }
        }
        out
    };

    store.set_password_hash(id, "h1", None).await.unwrap();
    assert_eq!(
        store.login_by_id(id).await.unwrap().unwrap().password_hash,
        "h1"
    );
    assert_eq!(alive(store.clone()).await, ["s1", "s2", "s3", "b1"]);

    store
        .set_password_hash(id, "h2", Some(Some("s2".to_owned())))
        .await
        .unwrap();
    assert_eq!(
        store.login_by_id(id).await.unwrap().unwrap().password_hash,
        "h2"
    );
    assert_eq!(alive(store.clone()).await, ["s2", "b1"]);

    store.set_password_hash(id, "h3", Some(None)).await.unwrap();
    assert_eq!(
        store.login_by_id(id).await.unwrap().unwrap().password_hash,
        "h3"
    );
    assert_eq!(alive(store.clone()).await, ["b1"]);

    assert_eq!(
        store.set_password_hash(uid(999), "h", Some(None)).await,
        Err(DomainError::NotFound("user"))
    );
});

both_backends!(sessions_lifecycle, |store: Store| async move {
    let id = registered(&store, &phone(1), 42, "ann").await;
    store.create_session(session("s1", id)).await.unwrap();
    assert_eq!(
        store.get_session("s1").await.unwrap(),
        Some(session("s1", id))
    );
    assert_eq!(
        store.create_session(session("s1", id)).await,
        Err(DomainError::Conflict("session"))
    );
    assert_eq!(
        store.create_session(session("s2", uid(999))).await,
        Err(DomainError::NotFound("user"))
    );

    // The worker's own PostgreSQL connection and the blocking pool read the same row.
    assert_eq!(
        store.blocking_reads().get_session("s1").await.unwrap(),
        Some(session("s1", id))
    );

    store.touch_session("s1", NOW + MINUTE).await.unwrap();
    let touched = store.get_session("s1").await.unwrap().unwrap();
    assert_eq!(
        (touched.created_at, touched.last_seen_at),
        (NOW, NOW + MINUTE)
    );
    store.touch_session("missing", NOW).await.unwrap();

    store.delete_session("s1").await.unwrap();
    assert_eq!(store.get_session("s1").await.unwrap(), None);
    store.delete_session("s1").await.unwrap();
});

both_backends!(throttle_round_trips, |store: Store| async move {
    let p = phone(1);
    let id = registered(&store, &p, 42, "ann").await;
    let throttle = LoginThrottle {
        failures: 3,
        window_start: NOW,
        locked_until: NOW + 15 * MINUTE,
        lock_level: 2,
    };
    store.set_throttle(id, throttle).await.unwrap();
    assert_eq!(
        store.find_login(&p).await.unwrap().unwrap().throttle,
        throttle
    );
    assert_eq!(
        store.login_by_id(id).await.unwrap().unwrap().throttle,
        throttle
    );
    store
        .set_throttle(id, LoginThrottle::default())
        .await
        .unwrap();
    assert_eq!(
        store.login_by_id(id).await.unwrap().unwrap().throttle,
        LoginThrottle::default()
    );
    assert_eq!(
        store.set_throttle(uid(999), throttle).await,
        Err(DomainError::NotFound("user"))
    );
    assert_eq!(store.login_by_id(uid(999)).await.unwrap(), None);
    assert_eq!(store.find_login(&phone(2)).await.unwrap(), None);
});

// ---------------------------------------------------------------- profiles

both_backends!(
    update_profile_bumps_the_version_and_logs_a_change,
    |store: Store| async move {
        let id = registered(&store, &phone(1), 42, "ann").await;
        let at = |n: i64| NOW + n * MINUTE;

        store
            .update_profile(id, ProfileChange::Nickname("annie".into()), at(1))
            .await
            .unwrap();
        store
            .update_profile(
                id,
                ProfileChange::PortraitUri("https://x/p.png".into()),
                at(2),
            )
            .await
            .unwrap();
        store
            .update_profile(
                id,
                ProfileChange::Details {
                    user_name: Some(Some("ann_l".into())),
                    gender: Some(Some("female".into())),
                    birth_date: Some(Some("1990-02-03".into())),
                    email: Some(Some("ann@example.com".into())),
                },
                at(3),
            )
            .await
            .unwrap();
        // `None` keeps a field, `Some(None)` clears it.
        store
            .update_profile(
                id,
                ProfileChange::Details {
                    user_name: None,
                    gender: Some(None),
                    birth_date: None,
                    email: Some(None),
                },
                at(4),
            )
            .await
            .unwrap();
        let privacy = Privacy {
            show_user_name: false,
            show_age: true,
            show_gender: false,
            friend_verification: false,
            findable_by_phone: false,
            allow_group_invites: true,
        };
        store
            .update_profile(id, ProfileChange::Privacy(privacy), at(5))
            .await
            .unwrap();

        let user = store.get_user(id).await.unwrap().unwrap();
        assert_eq!(user.nickname, "annie");
        assert_eq!(user.portrait_uri, "https://x/p.png");
        assert_eq!(user.user_name.as_deref(), Some("ann_l"));
        assert_eq!(user.gender, None);
        assert_eq!(user.birth_date.as_deref(), Some("1990-02-03"));
        assert_eq!(user.email, None);
        assert_eq!(user.privacy, privacy);
        assert_eq!((user.created_at, user.updated_at), (NOW, at(5)));

        assert_eq!(version_of(&store, id).await, 5);
        let expected: Vec<_> = (1..=5)
            .map(|v| (v, "user".to_owned(), Some(id.get()), at(v)))
            .collect();
        assert_eq!(changes_of(&store, id).await, expected);

        assert_eq!(
            store
                .update_profile(uid(999), ProfileChange::Nickname("x".into()), at(6))
                .await,
            Err(DomainError::NotFound("user"))
        );
        assert!(changes_of(&store, uid(999)).await.is_empty());
    }
);

both_backends!(
    concurrent_profile_changes_take_distinct_versions,
    |store: Store| async move {
        let id = registered(&store, &phone(1), 42, "ann").await;
        let other = registered(&store, &phone(2), 43, "bo").await;
        store
            .update_profile(other, ProfileChange::Nickname("b".into()), NOW)
            .await
            .unwrap();
        race(&store, |s, i| async move {
            s.update_profile(id, ProfileChange::Nickname(format!("n{i}")), NOW + i as i64)
                .await
                .unwrap()
        })
        .await;
        assert_eq!(version_of(&store, id).await, RACERS as i64);
        let versions: Vec<i64> = changes_of(&store, id)
            .await
            .into_iter()
            .map(|c| c.0)
            .collect();
        assert_eq!(versions, (1..=RACERS as i64).collect::<Vec<_>>());
        // Versions are per user.
        assert_eq!(version_of(&store, other).await, 1);
    }
);

// ---------------------------------------------------------------- write transactions

both_backends!(
    read_then_write_transactions_do_not_fail_busy,
    |store: Store| async move {
        // On SQLite a deferred BEGIN that reads first cannot upgrade to a write lock while another
        // writer holds it, and fails at once with "database is locked"; BEGIN IMMEDIATE queues.
        let s = store.clone();
        blocking(move || s.get_or_init_setting("n", "0".to_owned()))
            .await
            .unwrap();
        // Beside the writer thread: the only place two write transactions still race on
        // SQLite (the change log's compaction against the writer's work).
        let results = race(&store, |s, i| async move {
            s.run_beside_writer(move |conn| {
                crate::conn::write_tx(conn, |conn| {
                    use crate::schema::settings;
                    let _seen: String = settings::table
                        .find("n")
                        .select(settings::value)
                        .first(conn)?;
                    std::thread::sleep(Duration::from_millis(5));
                    diesel::update(settings::table.find("n"))
                        .set(settings::value.eq(i.to_string()))
                        .execute(conn)?;
                    Ok(())
                })
            })
            .await
        })
        .await;
        assert!(results.iter().all(Result::is_ok), "{results:?}");
    }
);

/// SQLite's single-statement writes that `serial_write` carries (session touches) queue on the
/// writer thread instead of meeting it at the file lock; PostgreSQL has no such thread.
async fn serial_write_thread(store: &Store) -> String {
    store
        .serial_write(|_conn| Ok(std::thread::current().name().unwrap_or_default().to_owned()))
        .await
        .unwrap()
}

#[tokio::test(flavor = "multi_thread")]
async fn serial_writes_run_on_the_sqlite_writer_thread() {
    let db = TestDb::sqlite();
    assert_eq!(serial_write_thread(db.store()).await, "kith-sqlite-writer");
}

#[tokio::test(flavor = "multi_thread")]
async fn serial_writes_on_postgres_use_the_blocking_pool() {
    if let Some(db) = TestDb::postgres() {
        assert_ne!(serial_write_thread(db.store()).await, "kith-sqlite-writer");
    }
}

/// A write into `settings`, in a write transaction or as a lone statement.
fn set_w(conn: &mut DbConn, value: &str, in_tx: bool) -> Result<(), StoreError> {
    use crate::schema::settings;
    let write = |conn: &mut DbConn| {
        diesel::delete(settings::table.find("w")).execute(conn)?;
        diesel::insert_into(settings::table)
            .values((settings::name.eq("w"), settings::value.eq(value)))
            .execute(conn)?;
        Ok(())
    };
    if in_tx {
        crate::conn::write_tx(conn, write)
    } else {
        write(conn)
    }
}

/// SQLite's read connections refuse writes, so a write sent through `Store::run` instead of the
/// writer thread fails in every test that makes it, instead of meeting the writer at the file
/// lock unnoticed; the writer thread and the compaction's connections write.
#[tokio::test(flavor = "multi_thread")]
async fn sqlite_reads_refuse_writes_and_the_write_connections_take_them() {
    use crate::schema::settings;
    let db = TestDb::sqlite();
    let store = db.store();
    store
        .serial_write(|conn| set_w(conn, "1", true))
        .await
        .unwrap();
    for in_tx in [true, false] {
        let refused = store.run(move |conn| set_w(conn, "2", in_tx)).await;
        assert!(
            matches!(refused, Err(DomainError::Internal(_))),
            "{refused:?}"
        );
    }
    store
        .run_beside_writer(|conn| set_w(conn, "3", true))
        .await
        .unwrap();
    let value = store
        .run(|conn| {
            Ok(settings::table
                .find("w")
                .select(settings::value)
                .first::<String>(conn)?)
        })
        .await
        .unwrap();
    assert_eq!(value, "3");
}

/// On PostgreSQL there is one pool, and `Store::run` writes as before.
#[tokio::test(flavor = "multi_thread")]
async fn postgres_reads_share_the_write_pool() {
    if let Some(db) = TestDb::postgres() {
        db.store().run(|conn| set_w(conn, "1", true)).await.unwrap();
    }
}

/// A request's SQLite writes queue behind the writer thread's work instead of meeting it at the
/// file lock: while the thread is held they wait, and once it is free they land.
#[tokio::test(flavor = "multi_thread")]
async fn sqlite_request_writes_queue_on_the_writer_thread() {
    let db = TestDb::sqlite();
    let store = db.store().clone();
    let user = UserId::new(1).unwrap();
    let phone = |n: u32| Phone::from_e164(&format!("+86139000{n:05}")).unwrap();
    store
        .create_placeholder(user, &phone(1), NOW)
        .await
        .unwrap();

    let (started, running) = tokio::sync::oneshot::channel::<()>();
    let (release, held) = std::sync::mpsc::channel::<()>();
    let holder = {
        let store = store.clone();
        tokio::spawn(async move {
            store
                .serial_write(move |_conn| {
                    let _ = started.send(());
                    let _ = held.recv_timeout(Duration::from_secs(10));
                    Ok(())
                })
                .await
        })
    };
    running.await.unwrap();
    // Each on its own, so that one held write cannot hide another that went around.
    let writes = {
        let store = store.clone();
        let (s1, s2, s3) = (store.clone(), store.clone(), store.clone());
        [
            tokio::spawn(async move { s1.create_session(session("a", user)).await }),
            tokio::spawn(async move {
                s2.create_placeholder(UserId::new(2).unwrap(), &phone(2), NOW)
                    .await
                    .map(|_| ())
            }),
            tokio::spawn(async move { s3.delete_session("b").await }),
            tokio::spawn(async move {
                store
                    .update_profile(user, ProfileChange::Nickname("n".into()), NOW)
                    .await
            }),
        ]
    };
    tokio::time::sleep(Duration::from_millis(300)).await;
    for (i, write) in writes.iter().enumerate() {
        assert!(
            !write.is_finished(),
            "write {i} went around the writer thread"
        );
    }
    release.send(()).unwrap();
    for write in writes {
        write.await.unwrap().unwrap();
    }
    holder.await.unwrap().unwrap();
    assert!(store.get_session("a").await.unwrap().is_some());
    assert!(store.find_by_phone(&phone(2)).await.unwrap().is_some());
}
