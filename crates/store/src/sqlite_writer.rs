//! The one thread that commits SQLite's batches of relationship transitions, one after another.
//!
//! Why: SQLite has one writer at a time. When each batch ran on a blocking-pool thread of its
//! own, every batch was handed to another cold thread (62 of them, in turn) and its drainer
//! waited for that hand-off before it took the next batch: the writer sat idle a quarter of
//! the time while transitions queued (docs/benchmarks.md, "One SQLite writer thread"). Here
//! the batches queue in a channel, and the one thread that commits them takes the next as soon
//! as it has committed (with more than one drainer, without SQLite's busy-handler sleeps).

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::mpsc;
use std::thread::JoinHandle;

use tokio::sync::oneshot;

use crate::conn::{DbConn, Manager};
use crate::error::StoreError;

/// A batch's work on the writer's connection, and where its outcome goes.
type Work<T> = (
    Box<dyn FnOnce(&mut DbConn) -> T + Send>,
    oneshot::Sender<Result<T, StoreError>>,
);

/// Runs work on one thread of its own, with a connection from the store's pool for each piece.
/// Stops its thread when dropped, after the work already sent.
pub(crate) struct SqliteWriter<T> {
    send: Option<mpsc::Sender<Work<T>>>,
    thread: Option<JoinHandle<()>>,
}

impl<T> std::fmt::Debug for SqliteWriter<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SqliteWriter").finish_non_exhaustive()
    }
}

impl<T: Send + 'static> SqliteWriter<T> {
    /// Starts the writer thread; it takes a connection from `pool` for each piece of work.
    pub(crate) fn start(pool: r2d2::Pool<Manager>) -> Result<Self, StoreError> {
        let (send, receive) = mpsc::channel::<Work<T>>();
        let thread = std::thread::Builder::new()
            .name("kith-sqlite-writer".to_owned())
            .spawn(move || {
                // Ends when the last sender is gone, with the store.
                while let Ok((work, reply)) = receive.recv() {
                    let _ = reply.send(run_one(&pool, work));
                }
            })
            .map_err(|e| StoreError::Internal(format!("cannot start the SQLite writer: {e}")))?;
        Ok(Self {
            send: Some(send),
            thread: Some(thread),
        })
    }

    /// Runs `work` on the writer thread, after the work sent before it, and waits for it.
    pub(crate) async fn run(
        &self,
        work: impl FnOnce(&mut DbConn) -> T + Send + 'static,
    ) -> Result<T, StoreError> {
        let (reply, outcome) = oneshot::channel();
        let sent = self
            .send
            .as_ref()
            .map(|send| send.send((Box::new(work), reply)));
        let gone = || StoreError::Unavailable("the SQLite writer has stopped".to_owned());
        match sent {
            Some(Ok(())) => outcome.await.unwrap_or_else(|_| Err(gone())),
            Some(Err(_)) | None => Err(gone()),
        }
    }
}

/// One piece of work on a pooled connection. A panic fails only this piece: the thread goes on
/// with the next, and a connection left inside a transaction is discarded by the pool.
fn run_one<T>(
    pool: &r2d2::Pool<Manager>,
    work: Box<dyn FnOnce(&mut DbConn) -> T + Send>,
) -> Result<T, StoreError> {
    let mut pooled = pool.get()?;
    let outcome = catch_unwind(AssertUnwindSafe(|| work(&mut pooled.conn)))
        .map_err(|_| StoreError::Internal("a batch of transitions panicked".to_owned()));
    pooled.finished(&Ok::<(), StoreError>(()));
    outcome
}

impl<T> Drop for SqliteWriter<T> {
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
