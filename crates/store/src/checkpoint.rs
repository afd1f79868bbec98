//! SQLite's WAL checkpoints, on a thread of their own instead of in the commit that crosses
//! the WAL's size threshold.
//!
//! Why: with the automatic checkpoint, once the WAL passes 1,000 pages, every committing
//! writer runs a checkpoint attempt, and each attempt sorts every frame not yet copied back
//! (`walMerge`) while readers keep the WAL from being reset: 26 % of an invite-accept
//! request's instructions (docs/benchmarks.md). This thread copies the WAL back on a fixed
//! cadence instead, and once it has grown has the writer thread reset it (`reset_on_writer`).

use std::sync::mpsc::{self, RecvTimeoutError};
use std::sync::Weak;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use diesel::connection::SimpleConnection;
use diesel::prelude::*;
use diesel::sql_types::Integer;
use diesel::SqliteConnection;

use crate::conn::DbConn;
use crate::error::StoreError;
use crate::sqlite_writer::SqliteWriter;

/// How often the WAL is copied back into the database file.
const EVERY: Duration = Duration::from_millis(100);

/// A checkpoint that takes longer than this is logged, with its two phases.
pub(crate) const SLOW: Duration = Duration::from_millis(250);

/// How long a resetting checkpoint may wait for readers. It holds the write lock meanwhile, so
/// this bounds the stall it can cause writers; one that gives up is tried again next time.
const RESET_WAIT_MS: u32 = 20;

/// Stops its checkpoint thread when dropped (with the last clone of its store), and waits for
/// it: once the store is gone, so is the thread's connection, and with it the lock that
/// closing the last connection takes to checkpoint the WAL away (another process opening the
/// file just after would meet it).
#[derive(Debug)]
pub(crate) struct Checkpointer {
    stop: Option<mpsc::Sender<()>>,
    thread: Option<JoinHandle<()>>,
}

impl Drop for Checkpointer {
    fn drop(&mut self) {
        // The thread sees the channel close at once, between two checkpoints.
        drop(self.stop.take());
        if let Some(thread) = self.thread.take() {
            if thread.join().is_err() {
                tracing::warn!("the SQLite checkpoint thread panicked");
            }
        }
    }
}

/// The part of `PRAGMA wal_checkpoint`'s row that matters here: the WAL's size in frames.
#[derive(QueryableByName, Debug)]
pub(crate) struct Outcome {
    #[diesel(sql_type = Integer)]
    pub(crate) log: i32,
}

impl Checkpointer {
    /// Starts checkpointing the database of `conn` (in WAL mode) on a thread that owns `conn`,
    /// starting the WAL over once it holds more than `reset_bytes`; the resetting checkpoint
    /// runs on `writer`'s thread while it lives (see `reset_on_writer`). The pool's connections must not
    /// checkpoint themselves (`wal_autocheckpoint = 0`).
    pub(crate) fn start(
        mut conn: SqliteConnection,
        reset_bytes: u64,
        writer: Option<Weak<SqliteWriter>>,
    ) -> Result<Checkpointer, StoreError> {
        let setup = |e: diesel::result::Error| {
            StoreError::Unavailable(format!("cannot set up the checkpointer: {e}"))
        };
        // Its own wait stays short: closing the last connection checkpoints the WAL away, and
        // it should not hold a closing store up behind a reader.
        conn.batch_execute(&format!("PRAGMA busy_timeout = {RESET_WAIT_MS}"))
            .map_err(setup)?;
        let page_size = diesel::sql_query("PRAGMA page_size")
            .get_result::<PageSize>(&mut conn)
            .map_err(setup)?
            .page_size;
        let reset_after = reset_after_frames(reset_bytes, page_size);
        let (stop, stopped) = mpsc::channel::<()>();
        let thread = std::thread::Builder::new()
            .name("kith-sqlite-checkpoint".to_owned())
            .spawn(move || loop {
                match stopped.recv_timeout(EVERY) {
                    Err(RecvTimeoutError::Timeout) => {
                        if let Err(error) = checkpoint(&mut conn, reset_after, writer.as_ref()) {
                            tracing::warn!(%error, "SQLite checkpoint failed");
                        }
                    }
                    // The store is gone (its sender dropped).
                    Ok(()) | Err(RecvTimeoutError::Disconnected) => return,
                }
            })
            .map_err(|e| {
                StoreError::Internal(format!("cannot start the checkpoint thread: {e}"))
            })?;
        Ok(Checkpointer {
            stop: Some(stop),
            thread: Some(thread),
        })
    }
}

/// `PRAGMA page_size`'s row.
#[derive(QueryableByName, Debug)]
struct PageSize {
    #[diesel(sql_type = Integer)]
    page_size: i32,
}

/// The WAL frames (one page each) past which the WAL is started over: `reset_bytes` of pages,
/// at least one frame.
pub(crate) fn reset_after_frames(reset_bytes: u64, page_size: i32) -> i32 {
    let page = u64::try_from(page_size).unwrap_or(4096).max(1);
    i32::try_from(reset_bytes / page).unwrap_or(i32::MAX).max(1)
}

/// One passive checkpoint (it never waits); then, if the WAL has grown past `reset_after`
/// frames, a resetting one, so that the next writer starts the WAL over. Under steady writes a
/// passive checkpoint alone rarely lets that happen: some reader is always still using the WAL.
/// The resetting one holds the write lock while it copies the frames written since the passive
/// one and syncs the file, so each reset stalls writers: `reset_after` sets how often.
fn checkpoint(
    conn: &mut SqliteConnection,
    reset_after: i32,
    writer: Option<&Weak<SqliteWriter>>,
) -> QueryResult<()> {
    let started = Instant::now();
    let passive =
        diesel::sql_query("PRAGMA wal_checkpoint(PASSIVE)").get_result::<Outcome>(conn)?;
    let passive_took = started.elapsed();
    let mut reset_took = Duration::ZERO;
    if passive.log > reset_after {
        // The resetting checkpoint copies, under the write lock, every frame written while the
        // passive one ran (tens of milliseconds of writes). A second passive one copies most
        // of those without the lock, leaving the reset the few written meanwhile.
        let _catch_up: Outcome =
            diesel::sql_query("PRAGMA wal_checkpoint(PASSIVE)").get_result(conn)?;
        let reset_started = Instant::now();
        match writer.and_then(Weak::upgrade) {
            Some(writer) => reset_on_writer(&writer),
            None => restart(conn)?,
        }
        reset_took = reset_started.elapsed();
    }
    // A reset holds the write lock throughout, so a slow one is a stall every writer saw.
    if passive_took + reset_took > SLOW {
        tracing::warn!(
            passive_ms = passive_took.as_millis(),
            reset_ms = reset_took.as_millis(),
            wal_frames = passive.log,
            "slow SQLite checkpoint"
        );
    }
    Ok(())
}

/// The resetting checkpoint, run on the writer thread between two of its pieces of work, and
/// waited for.
///
/// Why: from this thread it had to take the write lock from the writer thread, which commits
/// batches back to back and takes the lock again at once, while SQLite's busy handler looks
/// for a free moment only every few milliseconds. It lost that race for up to a second at a
/// time, and the WAL grew to twice its bound meanwhile (docs/benchmarks.md, "The WAL reset on
/// the writer thread"). On the writer thread the lock is free by construction, and only
/// readers can make it wait.
fn reset_on_writer(writer: &SqliteWriter) {
    let (done, outcome) = mpsc::sync_channel(1);
    let queued = writer.spawn(move |conn| {
        let result = conn.and_then(|conn| match conn {
            DbConn::Sqlite(c) => restart(c).map_err(StoreError::from),
            DbConn::Pg(_) => Err(StoreError::Internal(
                "the SQLite writer holds a PostgreSQL connection".to_owned(),
            )),
        });
        #[cfg(test)]
        if result.is_ok() {
            RESETS_ON_WRITER.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        }
        let _ = done.send(result);
    });
    if !queued {
        // The store is closing.
        return;
    }
    match outcome.recv_timeout(Duration::from_secs(10)) {
        Ok(Ok(())) => {}
        Ok(Err(error)) => tracing::warn!(%error, "SQLite WAL reset failed"),
        Err(_) => tracing::warn!("SQLite WAL reset did not finish on the writer thread"),
    }
}

/// Resetting checkpoints run on a writer thread so far, by every store of the process (tests).
#[cfg(test)]
pub(crate) static RESETS_ON_WRITER: std::sync::atomic::AtomicUsize =
    std::sync::atomic::AtomicUsize::new(0);

/// `PRAGMA busy_timeout`'s row.
#[derive(QueryableByName, Debug)]
struct BusyTimeout {
    #[diesel(sql_type = Integer)]
    timeout: i32,
}

/// A resetting checkpoint that waits at most `RESET_WAIT_MS` for readers (and for the write
/// lock), then leaves `conn`'s own wait as it was. SQLITE_BUSY (readers stayed) is no failure:
/// the next round tries again.
fn restart(conn: &mut SqliteConnection) -> QueryResult<()> {
    let previous = diesel::sql_query("PRAGMA busy_timeout")
        .get_result::<BusyTimeout>(conn)?
        .timeout;
    conn.batch_execute(&format!("PRAGMA busy_timeout = {RESET_WAIT_MS}"))?;
    let reset = diesel::sql_query("PRAGMA wal_checkpoint(RESTART)").get_result::<Outcome>(conn);
    conn.batch_execute(&format!("PRAGMA busy_timeout = {previous}"))?;
    reset.map(|_| ())
}
