//! The one thread that runs SQLite's writes, one after another: the batches of relationship
//! transitions (`crate::batch`) and every other write (`Store::serial_write`).
//!
//! Why: SQLite has one writer at a time. When each batch ran on a blocking-pool thread of its
//! own, every batch was handed to another cold thread (62 of them, in turn) and its drainer
//! waited for that hand-off before it took the next batch: the writer sat idle a quarter of
//! the time while transitions queued (docs/benchmarks.md, "One SQLite writer thread"). Here
//! the work queues in a channel, and the one thread takes the next piece as soon as it has
//! finished one, without SQLite's busy-handler sleeps between writers.

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::mpsc;
use std::thread::JoinHandle;
use std::time::Instant;

use tokio::sync::oneshot;

use crate::checkpoint::SLOW;
use crate::conn::{DbConn, Manager};
use crate::error::StoreError;

/// A piece of work for the writer: it is given the writer's connection (or why there is
/// none) and sends its own outcome.
type Work = Box<dyn FnOnce(Result<&mut DbConn, StoreError>) + Send>;

/// Runs work on one thread of its own, with a connection from the store's pool for each piece.
/// Stops its thread when dropped, after the work already sent.
pub(crate) struct SqliteWriter {
    send: Option<mpsc::Sender<Work>>,
    thread: Option<JoinHandle<()>>,
}

impl std::fmt::Debug for SqliteWriter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SqliteWriter").finish_non_exhaustive()
    }
}

impl SqliteWriter {
    /// Starts the writer thread; it takes a connection from `pool` for each piece of work.
    pub(crate) fn start(pool: r2d2::Pool<Manager>) -> Result<Self, StoreError> {
        let (send, receive) = mpsc::channel::<Work>();
        let thread = std::thread::Builder::new()
            .name("kith-sqlite-writer".to_owned())
            .spawn(move || {
                // Ends when the last sender is gone, with the store.
                while let Ok(work) = receive.recv() {
                    run_one(&pool, work);
                }
            })
            .map_err(|e| StoreError::Internal(format!("cannot start the SQLite writer: {e}")))?;
        Ok(Self {
            send: Some(send),
            thread: Some(thread),
        })
    }

    /// Runs `work` on the writer thread, after the work sent before it, and waits for it.
    /// A panic in `work` fails only this call, with `Internal`.
    pub(crate) async fn run<T: Send + 'static>(
        &self,
        work: impl FnOnce(&mut DbConn) -> T + Send + 'static,
    ) -> Result<T, StoreError> {
        let gone = || StoreError::Unavailable("the SQLite writer has stopped".to_owned());
        let outcome = self.enqueue(work).ok_or_else(gone)?;
        outcome.await.unwrap_or_else(|_| Err(gone()))
    }

    /// Stops the thread now, as if it had died: later work is refused (tests).
    #[cfg(test)]
    pub(crate) fn stop(&mut self) {
        drop(self.send.take());
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }

    /// Queues `work` to run on the writer thread with its connection, or why there is none;
    /// nobody waits for it. A panic in `work` is logged. `false` when the thread is gone.
    pub(crate) fn spawn(
        &self,
        work: impl FnOnce(Result<&mut DbConn, StoreError>) + Send + 'static,
    ) -> bool {
        let work: Work = Box::new(move |conn| {
            if catch_unwind(AssertUnwindSafe(|| work(conn))).is_err() {
                tracing::error!("SQLite write work panicked");
            }
        });
        self.send
            .as_ref()
            .is_some_and(|send| send.send(work).is_ok())
    }

    /// Queues `work` at once; `None` when the thread is gone.
    fn enqueue<T: Send + 'static>(
        &self,
        work: impl FnOnce(&mut DbConn) -> T + Send + 'static,
    ) -> Option<oneshot::Receiver<Result<T, StoreError>>> {
        let (reply, outcome) = oneshot::channel();
        let queued = self.spawn(move |conn| {
            let result = conn.and_then(|conn| {
                catch_unwind(AssertUnwindSafe(|| work(conn)))
                    .map_err(|_| StoreError::Internal("SQLite write work panicked".to_owned()))
            });
            // A caller that gave up no longer listens.
            let _ = reply.send(result);
        });
        queued.then_some(outcome)
    }
}

/// One piece of work on a pooled connection. A connection left inside a transaction by a
/// panic is discarded by the pool (`Manager::has_broken`).
fn run_one(pool: &r2d2::Pool<Manager>, work: Work) {
    let started = Instant::now();
    let mut pooled = match pool.get() {
        Ok(pooled) => pooled,
        Err(error) => return work(Err(error.into())),
    };
    let waited = started.elapsed();
    work(Ok(&mut pooled.conn));
    pooled.finished(&Ok::<(), StoreError>(()));
    // Every piece of work queued behind this one waited as long.
    let took = started.elapsed();
    if took > SLOW {
        tracing::warn!(
            pool_wait_ms = waited.as_millis(),
            work_ms = (took - waited).as_millis(),
            "slow SQLite write"
        );
    }
}

impl Drop for SqliteWriter {
    fn drop(&mut self) {
        drop(self.send.take());
        // Not when the store's last handle goes on the writer thread itself: it would wait
        // for itself. The thread then ends after this piece of work.
        if let Some(thread) = self
            .thread
            .take()
            .filter(|t| t.thread().id() != std::thread::current().id())
        {
            if thread.join().is_err() {
                tracing::warn!("the SQLite writer thread panicked");
            }
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::{Arc, Mutex};
    use std::time::Duration;

    use diesel::connection::SimpleConnection;
    use diesel::sql_types::BigInt;
    use diesel::{QueryableByName, RunQueryDsl};

    use super::*;
    use crate::conn::{write_tx, Target};

    #[derive(QueryableByName)]
    struct Count {
        #[diesel(sql_type = BigInt)]
        n: i64,
    }

    fn pool(dir: &tempfile::TempDir, size: u32) -> r2d2::Pool<Manager> {
        let path = dir.path().join("w.db").display().to_string();
        r2d2::Pool::builder()
            .max_size(size)
            .build(Manager {
                target: Target::Sqlite(path),
            })
            .unwrap()
    }

    fn rows(conn: &mut DbConn) -> i64 {
        diesel::sql_query("SELECT COUNT(*) AS n FROM t")
            .get_result::<Count>(conn)
            .unwrap()
            .n
    }

    /// Queues work at once, as `run` does when first polled, without borrowing the writer
    /// while the outcome is awaited.
    fn enqueue<T: Send + 'static>(
        writer: &SqliteWriter,
        work: impl FnOnce(&mut DbConn) -> T + Send + 'static,
    ) -> oneshot::Receiver<Result<T, StoreError>> {
        writer.enqueue(work).unwrap()
    }

    #[tokio::test(flavor = "multi_thread")]
    async fn work_runs_in_the_order_sent_on_the_writer_thread() {
        let dir = tempfile::tempdir().unwrap();
        let writer = SqliteWriter::start(pool(&dir, 1)).unwrap();
        let seen = Arc::new(Mutex::new(Vec::new()));
        let waits: Vec<_> = (0..20)
            .map(|i| {
                let seen = Arc::clone(&seen);
                enqueue(&writer, move |_conn| {
                    // The first piece holds the thread, so the others are all queued behind it.
                    if i == 0 {
                        std::thread::sleep(Duration::from_millis(50));
                    }
                    seen.lock().unwrap().push(i);
                    std::thread::current().name().unwrap_or("").to_owned()
                })
            })
            .collect();
        for wait in waits {
            assert_eq!(wait.await.unwrap().unwrap(), "kith-sqlite-writer");
        }
        assert_eq!(*seen.lock().unwrap(), (0..20).collect::<Vec<_>>());
        // And through `run`, the path the batcher takes.
        assert_eq!(writer.run(|_conn| "run".to_owned()).await.unwrap(), "run");
    }

    #[tokio::test(flavor = "multi_thread")]
    async fn a_panic_fails_only_its_own_work_and_its_open_transaction_is_discarded() {
        let dir = tempfile::tempdir().unwrap();
        // One connection, so the work after the panic gets the pool's replacement for it.
        let writer = SqliteWriter::start(pool(&dir, 1)).unwrap();
        writer
            .run(|conn| {
                conn.batch_execute("CREATE TABLE t (x INTEGER)").unwrap();
                0
            })
            .await
            .unwrap();

        let failed = writer
            .run(|conn| {
                write_tx(conn, |conn| {
                    conn.batch_execute("INSERT INTO t VALUES (1)")?;
                    panic!("mid-transaction");
                })
                .unwrap_or(0)
            })
            .await;
        assert!(matches!(failed, Err(StoreError::Internal(_))), "{failed:?}");

        // The thread goes on, and the half-done transaction was never committed: the pool
        // dropped the connection it was open on instead of handing it out again.
        assert_eq!(writer.run(rows).await.unwrap(), 0);
        let written = writer
            .run(|conn| {
                write_tx(conn, |conn| {
                    conn.batch_execute("INSERT INTO t VALUES (2)")?;
                    Ok(())
                })
                .unwrap();
                rows(conn)
            })
            .await
            .unwrap();
        assert_eq!(written, 1);
    }

    #[tokio::test(flavor = "multi_thread")]
    async fn dropping_the_writer_finishes_the_work_already_sent_then_joins() {
        let dir = tempfile::tempdir().unwrap();
        let writer = SqliteWriter::start(pool(&dir, 1)).unwrap();
        let done = Arc::new(AtomicUsize::new(0));
        let waits: Vec<_> = (0..5)
            .map(|_| {
                let done = Arc::clone(&done);
                enqueue(&writer, move |_conn| {
                    std::thread::sleep(Duration::from_millis(20));
                    done.fetch_add(1, Ordering::SeqCst);
                })
            })
            .collect();
        drop(writer);
        // Drop joined the thread: everything queued before it has run.
        assert_eq!(done.load(Ordering::SeqCst), 5);
        for wait in waits {
            assert!(wait.await.unwrap().is_ok());
        }
    }

    #[tokio::test(flavor = "multi_thread")]
    async fn work_sent_after_the_thread_is_gone_is_refused_as_unavailable() {
        let dir = tempfile::tempdir().unwrap();
        let mut writer = SqliteWriter::start(pool(&dir, 1)).unwrap();
        drop(writer.send.take());
        let refused = writer.run(|_conn| ()).await;
        assert!(
            matches!(refused, Err(StoreError::Unavailable(_))),
            "{refused:?}"
        );
    }

    #[tokio::test(flavor = "multi_thread")]
    async fn the_last_handle_dropped_on_the_writer_thread_does_not_wait_for_itself() {
        let dir = tempfile::tempdir().unwrap();
        let writer = Arc::new(SqliteWriter::start(pool(&dir, 1)).unwrap());
        let slot = Arc::new(Mutex::new(Some(Arc::clone(&writer))));
        let inner = Arc::clone(&slot);
        let wait = enqueue(&writer, move |_conn| {
            // Let the outer handle go first, then drop the last one here, on the writer thread.
            std::thread::sleep(Duration::from_millis(50));
            drop(inner.lock().unwrap().take());
        });
        drop(writer);
        // Would hang for ever if Drop joined its own thread.
        tokio::time::timeout(Duration::from_secs(10), wait)
            .await
            .unwrap()
            .unwrap()
            .unwrap();
        assert!(slot.lock().unwrap().is_none());
    }
}
