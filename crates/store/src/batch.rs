//! Group commit of relationship transitions: transitions asked for at the same time share one transaction.
//!
//! Why: an invite or an accept writes a few rows, but as a transaction of its own it also pays
//! for `BEGIN`, `COMMIT`, a WAL flush and nine round trips. pgbench replaying Kith's SQL gave
//! about 1,900 requests/s; the same writes, sixteen transitions to a transaction, 7,000 to
//! 14,000 (docs/benchmarks.md, "Transitions committed together").
//!
//! How: a transition joins a queue. Up to `drainers` drainers take batches from it at once:
//! on PostgreSQL each is a task on the worker thread that started it, with that thread's
//! connections; on SQLite each is a turn on the store's one writer thread
//! (`crate::sqlite_writer`), which takes its batch when the writer comes to it. A drainer takes
//! what is waiting (one transition per pair, at most [`MAX_BATCH`]) and does in one
//! transaction, for all of them, what a transition alone does
//! (`relationships::transition_attempt!`): it locks the pairs (in key order), reads their rows,
//! decides each pair, upserts the changed rows, locks the owners' users rows in id order, moves
//! their versions and list stamps, and logs the changes. A drainer that finds the queue empty
//! ends, so a lone transition waits for nobody and an idle store runs no task.
//!
//! On SQLite, which has one writer at a time and no round trips, a batch runs each transition's
//! own statements (`relationships::transition_tx`) in one `BEGIN IMMEDIATE` transaction on the
//! writer thread: one write lock taken and one commit for the batch, not one each.
//! PostgreSQL without worker connections keeps a transaction per transition: there a batch of
//! single-transition statements would take its locks out of the one order that keeps batches
//! from deadlocking.
//!
//! Failures: a rule's refusal fails only its own transition, which decided in memory and wrote
//! nothing. A database error rolls the whole transaction back. The batch is retried whole when a
//! retry may cure the error (a deadlock, a serialisation failure); otherwise each transition
//! runs again in a transaction of its own, so that only the one at fault fails. That is why a
//! [`Decide`] may be called more than once.

use std::collections::{BTreeMap, HashMap, HashSet, VecDeque};
#[cfg(test)]
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use diesel::dsl::sql;
use diesel::prelude::*;
use diesel::sql_types::{Array, BigInt, Bool, Integer, Nullable, Text};
use diesel_async::{AsyncConnection, AsyncPgConnection, RunQueryDsl};
use kith_domain::ports::{Counterpart, Decide};
use kith_domain::relationship::{Pair, Side, Transition};
use kith_domain::Millis;
use tokio::sync::oneshot;

use crate::async_pg::AsyncPg;
use crate::conn::{write_tx, Cached, DbConn};
use crate::error::StoreError;
use crate::relationships::{
    counterpart, fold_id, owner_rows, retryable, transition_tx, with_retries, OwnerEffect, SideRow,
    SideValues, CHANGE_KIND_RELATIONSHIP, SIDE_COLUMNS, TRANSITION_ATTEMPTS,
};
use crate::schema::relationships;
use crate::sqlite_writer::SqliteWriter;

/// Most transitions in one transaction. Past a few dozen, a bigger batch saves little and
/// holds its pairs' locks longer.
pub(crate) const MAX_BATCH: usize = 64;

/// One transition's inputs: me, the other user, and the decision.
type Input = (i64, i64, Decide);

/// What a transition's caller gets back.
type Answer = Result<Transition, StoreError>;

/// A transition waiting in the queue.
struct Job {
    input: Input,
    reply: oneshot::Sender<Answer>,
}

/// The queue and how many drainers run.
#[derive(Default)]
struct Queue {
    waiting: VecDeque<Job>,
    drainers: usize,
}

/// Where a batch runs.
pub(crate) enum Executor {
    /// On PostgreSQL, on the drainer's worker thread's own connection (`batch_tx`).
    Pg(Box<AsyncPg>),
    /// On SQLite, in turns on the store's one writer thread, with a pooled connection
    /// (`batch_tx_sqlite`).
    Sqlite(Arc<SqliteWriter>),
}

/// The transitions waiting for a transaction, and the drainers that commit them.
pub(crate) struct Batcher {
    executor: Executor,
    queue: Mutex<Queue>,
    /// Most drainers, and so transactions, at once.
    max_drainers: usize,
    /// How long one batch may take on PostgreSQL, the store's bound on a call
    /// (`Store::bounded`). On SQLite each caller's own bound applies (`Store::on_worker`).
    bound: Option<Duration>,
    /// The most transitions one committed transaction held, for the tests that batching
    /// happens (production reads the debug trace instead).
    #[cfg(test)]
    largest: AtomicUsize,
}

impl std::fmt::Debug for Batcher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Batcher")
            .field("max_drainers", &self.max_drainers)
            .finish_non_exhaustive()
    }
}

impl Batcher {
    /// A batcher that runs up to `max_drainers` transactions at once with `executor`.
    pub(crate) fn new(executor: Executor, max_drainers: usize, bound: Option<Duration>) -> Self {
        Self {
            executor,
            queue: Mutex::new(Queue::default()),
            max_drainers,
            bound,
            #[cfg(test)]
            largest: AtomicUsize::new(0),
        }
    }

    /// The most transitions that one transaction has committed so far.
    #[cfg(test)]
    pub(crate) fn largest_committed(&self) -> usize {
        AtomicUsize::load(&self.largest, Ordering::Relaxed)
    }

    fn lock(&self) -> MutexGuard<'_, Queue> {
        self.queue.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Queues the transition (me → other) and waits for the transaction that commits it.
    /// Starts a drainer when fewer than the most run: on PostgreSQL a task on this thread, on
    /// SQLite a turn on the writer thread.
    pub(crate) async fn submit(self: &Arc<Self>, me: i64, other: i64, decide: Decide) -> Answer {
        let (reply, answer) = oneshot::channel();
        let start = {
            let mut queue = self.lock();
            queue.waiting.push_back(Job {
                input: (me, other, decide),
                reply,
            });
            let start = queue.drainers < self.max_drainers;
            if start {
                queue.drainers += 1;
            }
            start
        };
        if start {
            match &self.executor {
                Executor::Pg(_) => {
                    tokio::spawn(Arc::clone(self).drain());
                }
                Executor::Sqlite(writer) => Arc::clone(self).turn_on(writer),
            }
        }
        answer.await.unwrap_or_else(|_| {
            Err(StoreError::Unavailable(
                "the transaction of this transition was abandoned".to_owned(),
            ))
        })
    }

    /// Takes the next batch, or gives the drainer's slot back when nothing waits. Under the
    /// same lock as the look at the queue, so a transition queued after it finds a free slot
    /// and starts a drainer of its own.
    fn next_batch(&self, slot: &mut Slot<'_>) -> Option<Vec<Job>> {
        let mut queue = self.lock();
        let jobs = take_batch(&mut queue.waiting);
        if jobs.is_empty() {
            queue.drainers -= 1;
            slot.held = false;
            return None;
        }
        Some(jobs)
    }

    /// Commits batches until the queue is empty (PostgreSQL).
    async fn drain(self: Arc<Self>) {
        let mut slot = Slot {
            batcher: &self,
            held: true,
        };
        while let Some(jobs) = self.next_batch(&mut slot) {
            self.run_pg(jobs).await;
        }
    }

    /// Queues a drainer's turn on the SQLite writer thread. When the thread is gone, nothing
    /// will commit what waits, so every waiting transition fails now.
    fn turn_on(self: Arc<Self>, writer: &SqliteWriter) {
        let batcher = Arc::clone(&self);
        if writer.spawn(move |conn| batcher.turn(conn)) {
            return;
        }
        let jobs = {
            let mut queue = self.lock();
            queue.drainers -= 1;
            std::mem::take(&mut queue.waiting)
        };
        for job in jobs {
            let _ = job.reply.send(Err(StoreError::Unavailable(
                "the SQLite writer has stopped".to_owned(),
            )));
        }
    }

    /// One drainer's turn on the SQLite writer thread: commits what waits, then queues its next
    /// turn if more came meanwhile.
    ///
    /// Why here and not in a task that hands each batch to the writer: the batch is taken the
    /// moment the writer is free, so it holds everything that queued while the last one
    /// committed, and the writer never waits for a task to be woken, take the next batch and
    /// send it (it was idle 27 % of the time with one drainer task; docs/benchmarks.md, "The
    /// writer takes the batches"). The next turn queues behind the writes sent meanwhile
    /// (`Store::serial_write`), so they are not starved.
    fn turn(self: Arc<Self>, conn: Result<&mut DbConn, StoreError>) {
        let mut slot = Slot {
            batcher: &self,
            held: true,
        };
        let Some(jobs) = self.next_batch(&mut slot) else {
            return;
        };
        let started = std::time::Instant::now();
        let (inputs, replies): (Vec<Input>, Vec<_>) =
            jobs.into_iter().map(|job| (job.input, job.reply)).unzip();
        let answers = conn.map(|conn| apply_sqlite(conn, &inputs));
        self.answer(replies, answers, started);
        let Executor::Sqlite(writer) = &self.executor else {
            return;
        };
        {
            let mut queue = self.lock();
            if queue.waiting.is_empty() {
                queue.drainers -= 1;
                slot.held = false;
                return;
            }
        }
        // The slot passes to the next turn.
        slot.held = false;
        Arc::clone(&self).turn_on(writer);
    }

    /// Commits one batch on PostgreSQL and answers each of its callers.
    async fn run_pg(&self, jobs: Vec<Job>) {
        let Executor::Pg(pg) = &self.executor else {
            return;
        };
        let (inputs, replies): (Vec<Input>, Vec<_>) =
            jobs.into_iter().map(|job| (job.input, job.reply)).unzip();
        let started = std::time::Instant::now();
        let work = pg.run(move |conn| Box::pin(async move { apply_pg(conn, &inputs).await }));
        let answers = match self.bound {
            Some(bound) => tokio::time::timeout(bound, work).await.unwrap_or_else(|_| {
                Err(StoreError::Unavailable(format!(
                    "a batch of transitions took longer than {} ms",
                    bound.as_millis()
                )))
            }),
            None => work.await,
        };
        self.answer(replies, answers, started);
    }

    /// Answers each caller of a batch, with its own answer or the batch's error.
    fn answer(
        &self,
        replies: Vec<oneshot::Sender<Answer>>,
        answers: Result<(usize, Vec<Answer>), StoreError>,
        started: std::time::Instant,
    ) {
        match answers {
            Ok((committed, answers)) => {
                #[cfg(test)]
                self.largest.fetch_max(committed, Ordering::Relaxed);
                tracing::debug!(
                    transitions = replies.len(),
                    committed,
                    micros = started.elapsed().as_micros(),
                    "batch of relationship transitions"
                );
                for (reply, answer) in replies.into_iter().zip(answers) {
                    // A caller that gave up no longer listens.
                    let _ = reply.send(answer);
                }
            }
            Err(err) => {
                for reply in replies {
                    let _ = reply.send(Err(err.clone()));
                }
            }
        }
    }
}

/// A drainer's place among the `max_drainers`. Given back by the drainer itself when it finds
/// the queue empty, or here when its task ends otherwise (cancelled with its runtime, or a
/// panic); a later transition then starts a new drainer for whatever still waits.
struct Slot<'a> {
    batcher: &'a Batcher,
    held: bool,
}

impl Drop for Slot<'_> {
    fn drop(&mut self) {
        if self.held {
            self.batcher.lock().drainers -= 1;
        }
    }
}

/// The next batch: waiting transitions in queue order, at most one per pair (a later one on
/// the same pair waits for the next batch, so it sees this one's result), at most
/// [`MAX_BATCH`]. One whose caller gave up is dropped unapplied.
fn take_batch(waiting: &mut VecDeque<Job>) -> Vec<Job> {
    let mut pairs = HashSet::new();
    let mut batch = Vec::new();
    let mut later = Vec::new();
    while batch.len() < MAX_BATCH {
        let Some(job) = waiting.pop_front() else {
            break;
        };
        if job.reply.is_closed() {
            continue;
        }
        let (me, other, _) = job.input;
        if pairs.insert((me.min(other), me.max(other))) {
            batch.push(job);
        } else {
            later.push(job);
        }
    }
    for job in later.into_iter().rev() {
        waiting.push_front(job);
    }
    batch
}

/// Commits the inputs `$inputs` together, or, when that fails for good, each alone; evaluates
/// to the most transitions one transaction committed and one answer per input. `$attempt` is
/// one attempt on the inputs bound to `$batch`, with its retries (`with_retries!`); it may
/// await.
macro_rules! together_or_each_alone {
    ($inputs:expr, |$batch:ident| $attempt:expr) => {{
        let inputs: &[Input] = $inputs;
        let whole = {
            let $batch = inputs;
            $attempt
        };
        match whole {
            Ok(answers) => (inputs.len(), answers),
            Err(err) if inputs.len() == 1 => (0, vec![Err(err)]),
            Err(err) => {
                tracing::warn!(
                    error = %err,
                    transitions = inputs.len(),
                    "a batch of relationship transitions failed; running each alone"
                );
                let mut answers = Vec::with_capacity(inputs.len());
                let mut committed = 0;
                for input in inputs {
                    let alone: Result<Vec<Answer>, StoreError> = {
                        let $batch = std::slice::from_ref(input);
                        $attempt
                    };
                    committed = committed.max(usize::from(alone.is_ok()));
                    answers.push(alone.and_then(|mut one| {
                        one.pop().unwrap_or_else(|| {
                            Err(StoreError::Internal(
                                "a batch of one gave no answer".to_owned(),
                            ))
                        })
                    }));
                }
                (committed, answers)
            }
        }
    }};
}

/// A batch on a PostgreSQL worker connection.
async fn apply_pg(conn: &mut AsyncPgConnection, inputs: &[Input]) -> (usize, Vec<Answer>) {
    together_or_each_alone!(inputs, |batch| with_retries!(
        batch.len(),
        conn.transaction(async |c| batch_tx(c, batch).await).await
    ))
}

/// A batch on a pooled SQLite connection.
fn apply_sqlite(conn: &mut DbConn, inputs: &[Input]) -> (usize, Vec<Answer>) {
    together_or_each_alone!(inputs, |batch| with_retries!(
        batch.len(),
        write_tx(conn, |c| batch_tx_sqlite(c, batch))
    ))
}

/// One attempt at a batch on SQLite, inside its `BEGIN IMMEDIATE` transaction: each
/// transition's own statements in turn. A rule's refusal comes before its transition writes
/// anything, so the others go on.
fn batch_tx_sqlite(conn: &mut DbConn, inputs: &[Input]) -> Result<Vec<Answer>, StoreError> {
    let mut answers = Vec::with_capacity(inputs.len());
    for (me, other, decide) in inputs {
        match transition_tx(conn, *me, *other, decide) {
            Err(StoreError::Rule(refusal)) => answers.push(Err(StoreError::Rule(refusal))),
            done => answers.push(Ok(done?)),
        }
    }
    Ok(answers)
}

/// The rows of one upsert, column by column, for `unnest`.
#[derive(Default)]
struct RowWrites<'a> {
    owner: Vec<i64>,
    other: Vec<i64>,
    friendship: Vec<&'static str>,
    request_id: Vec<Option<i64>>,
    request_message: Vec<Option<&'a str>>,
    request_at: Vec<Option<i64>>,
    ignored_at: Vec<Option<i64>>,
    friends_since: Vec<Option<i64>>,
    following: Vec<bool>,
    followed_at: Vec<Option<i64>>,
    starred: Vec<bool>,
    blocking: Vec<bool>,
    blocked_at: Vec<Option<i64>>,
    display_name: Vec<Option<&'a str>>,
    description: Vec<Option<&'a str>>,
    remark_phone: Vec<Option<&'a str>>,
    remark_region: Vec<Option<&'a str>>,
    remark_image_uri: Vec<Option<&'a str>>,
    conv_type: Vec<&'static str>,
    phone_visible: Vec<bool>,
    active: Vec<bool>,
    created_at: Vec<i64>,
    updated_at: Vec<i64>,
}

/// A batch's writes, in one statement (one round trip): upserts the changed rows ($1–$23, as
/// `RowWrites`; every column set, as the single upsert sets them), locks the owners' users rows
/// in id order ($24) and moves their versions ($25) and list stamps ($26), and logs one change
/// per changed row ($27–$30: owner, rank among that owner's changes from 1, subject, time;
/// $31 the kind), numbered with the versions just taken. Counts the users rows moved, so a missing user shows.
///
/// `locked` is read in id order and `bumped` only updates a row `locked` has returned, so at
/// any moment the users rows locked are the lowest ids: the same order as every other writer.
/// The foreign keys of the upsert take their (compatible) key-share locks at the statement's
/// end.
const WRITE_BATCH: &str = "WITH written AS (\
    INSERT INTO relationships (owner, other, friendship, request_id, \
    request_message, request_at, ignored_at, friends_since, following, followed_at, starred, \
    blocking, blocked_at, display_name, description, remark_phone, remark_region, \
    remark_image_uri, conv_type, phone_visible, active, created_at, updated_at) \
    SELECT * FROM unnest($1::int8[], $2::int8[], $3::text[], $4::int8[], $5::text[], \
    $6::int8[], $7::int8[], $8::int8[], $9::bool[], $10::int8[], $11::bool[], $12::bool[], \
    $13::int8[], $14::text[], $15::text[], $16::text[], $17::text[], $18::text[], $19::text[], \
    $20::bool[], $21::bool[], $22::int8[], $23::int8[]) \
    ON CONFLICT (owner, other) DO UPDATE SET friendship = EXCLUDED.friendship, \
    request_id = EXCLUDED.request_id, request_message = EXCLUDED.request_message, \
    request_at = EXCLUDED.request_at, ignored_at = EXCLUDED.ignored_at, \
    friends_since = EXCLUDED.friends_since, following = EXCLUDED.following, \
    followed_at = EXCLUDED.followed_at, starred = EXCLUDED.starred, \
    blocking = EXCLUDED.blocking, blocked_at = EXCLUDED.blocked_at, \
    display_name = EXCLUDED.display_name, description = EXCLUDED.description, \
    remark_phone = EXCLUDED.remark_phone, remark_region = EXCLUDED.remark_region, \
    remark_image_uri = EXCLUDED.remark_image_uri, conv_type = EXCLUDED.conv_type, \
    phone_visible = EXCLUDED.phone_visible, active = EXCLUDED.active, \
    created_at = EXCLUDED.created_at, updated_at = EXCLUDED.updated_at RETURNING 1), \
    locked AS (SELECT id FROM users WHERE id = ANY($24::int8[]) ORDER BY id FOR NO KEY UPDATE), \
    bumped AS (UPDATE users SET version = users.version + d.dv, \
    list_stamp = users.list_stamp + d.ds \
    FROM unnest($24::int8[], $25::int8[], $26::int8[]) AS d(id, dv, ds) \
    JOIN locked ON locked.id = d.id \
    WHERE users.id = d.id RETURNING users.id, users.version, d.dv), \
    logged AS (INSERT INTO changes (owner, version, kind, subject, detail, at) \
    SELECT e.o, b.version - b.dv + e.r, $31, e.s, NULL, e.a \
    FROM unnest($27::int8[], $28::int8[], $29::int8[], $30::int8[]) AS e(o, r, s, a) \
    JOIN bumped b ON b.id = e.o RETURNING 1) \
    SELECT (SELECT count(*) FROM bumped) AS n";

/// The users rows `WRITE_BATCH` moved.
#[derive(QueryableByName)]
struct Moved {
    #[diesel(sql_type = BigInt)]
    n: i64,
}

/// The change-log entries of a batch, column by column: owner, rank among that owner's
/// changes (from 1), subject, time.
#[derive(Default)]
struct ChangeLog {
    owner: Vec<i64>,
    rank: Vec<i64>,
    subject: Vec<i64>,
    at: Vec<Millis>,
}

impl<'a> RowWrites<'a> {
    fn push(&mut self, owner: i64, other: i64, side: &'a Side) {
        // Destructured so a new column fails to compile here until it is written.
        let SideValues {
            friendship,
            request_id,
            request_message,
            request_at,
            ignored_at,
            friends_since,
            following,
            followed_at,
            starred,
            blocking,
            blocked_at,
            display_name,
            description,
            remark_phone,
            remark_region,
            remark_image_uri,
            conv_type,
            phone_visible,
            active,
            created_at,
            updated_at,
        } = SideValues::new(side);
        self.owner.push(owner);
        self.other.push(other);
        self.friendship.push(friendship);
        self.request_id.push(request_id);
        self.request_message.push(request_message);
        self.request_at.push(request_at);
        self.ignored_at.push(ignored_at);
        self.friends_since.push(friends_since);
        self.following.push(following);
        self.followed_at.push(followed_at);
        self.starred.push(starred);
        self.blocking.push(blocking);
        self.blocked_at.push(blocked_at);
        self.display_name.push(display_name);
        self.description.push(description);
        self.remark_phone.push(remark_phone);
        self.remark_region.push(remark_region);
        self.remark_image_uri.push(remark_image_uri);
        self.conv_type.push(conv_type);
        self.phone_visible.push(phone_visible);
        self.active.push(active);
        self.created_at.push(created_at);
        self.updated_at.push(updated_at);
    }

    /// Runs `WRITE_BATCH` with these rows, the users rows to move (`ids`, by how much
    /// `versions` and `stamps`) and the `log`; the number of users rows moved.
    async fn write(
        self,
        c: &mut AsyncPgConnection,
        (ids, versions, stamps): (Vec<i64>, Vec<i64>, Vec<i64>),
        log: ChangeLog,
    ) -> Result<i64, StoreError> {
        let moved: Moved = Cached::<_, WriteBatch>::new(
            diesel::sql_query(WRITE_BATCH)
                .bind::<Array<BigInt>, _>(self.owner)
                .bind::<Array<BigInt>, _>(self.other)
                .bind::<Array<Text>, _>(self.friendship)
                .bind::<Array<Nullable<BigInt>>, _>(self.request_id)
                .bind::<Array<Nullable<Text>>, _>(self.request_message)
                .bind::<Array<Nullable<BigInt>>, _>(self.request_at)
                .bind::<Array<Nullable<BigInt>>, _>(self.ignored_at)
                .bind::<Array<Nullable<BigInt>>, _>(self.friends_since)
                .bind::<Array<Bool>, _>(self.following)
                .bind::<Array<Nullable<BigInt>>, _>(self.followed_at)
                .bind::<Array<Bool>, _>(self.starred)
                .bind::<Array<Bool>, _>(self.blocking)
                .bind::<Array<Nullable<BigInt>>, _>(self.blocked_at)
                .bind::<Array<Nullable<Text>>, _>(self.display_name)
                .bind::<Array<Nullable<Text>>, _>(self.description)
                .bind::<Array<Nullable<Text>>, _>(self.remark_phone)
                .bind::<Array<Nullable<Text>>, _>(self.remark_region)
                .bind::<Array<Nullable<Text>>, _>(self.remark_image_uri)
                .bind::<Array<Text>, _>(self.conv_type)
                .bind::<Array<Bool>, _>(self.phone_visible)
                .bind::<Array<Bool>, _>(self.active)
                .bind::<Array<BigInt>, _>(self.created_at)
                .bind::<Array<BigInt>, _>(self.updated_at)
                .bind::<Array<BigInt>, _>(ids)
                .bind::<Array<BigInt>, _>(versions)
                .bind::<Array<BigInt>, _>(stamps)
                .bind::<Array<BigInt>, _>(log.owner)
                .bind::<Array<BigInt>, _>(log.rank)
                .bind::<Array<BigInt>, _>(log.subject)
                .bind::<Array<BigInt>, _>(log.at)
                .bind::<Text, _>(CHANGE_KIND_RELATIONSHIP),
        )
        .get_result(c)
        .await
        .map_err(StoreError::user_reference)?;
        Ok(moved.n)
    }
}

/// What a batch does to one owner's users row.
#[derive(Default)]
struct OwnerChanges {
    /// The subjects of the owner's changed rows, with when they changed: one sync version and
    /// one change-log entry each.
    logged: Vec<(i64, Millis)>,
    /// Rows of the owner's friend list whose other side changed: the list stamp moves.
    restamped: i64,
}

// Diesel prepares neither raw SQL nor a query with an SQL fragment again and again: it parses
// and plans each on every run (and tokio-postgres prepares it in a round trip of its own). A
// batch's statements are fixed texts with array binds, so each is kept prepared per connection
// under a marker type (`Cached`).

/// Marks `LOCK_PAIRS`.
struct LockPairs;
/// Marks the read of a batch's rows.
struct PairRows;
/// Marks `WRITE_BATCH`.
struct WriteBatch;

/// Locks the pairs `(low, high)` ($1, $2), each lock once and in one order (the folded keys'),
/// so two batches cannot wait for each other (a transition alone takes one pair lock only), and
/// reads the other users' `Counterpart`s ($3), one row each, or one row of NULLs when there is
/// none: the aggregate on the left of the join always runs, so the locks are always taken.
const LOCK_PAIRS: &str = "SELECT u.id, u.registered, u.friend_verification \
    FROM (SELECT count(pg_advisory_xact_lock(k1, k2)) AS n \
    FROM unnest($1::int4[], $2::int4[]) AS k(k1, k2)) AS l \
    LEFT JOIN users u ON u.id = ANY($3::int8[])";

/// A row `LOCK_PAIRS` returns: one other user's id, registration and friend verification.
#[derive(QueryableByName)]
struct Locked {
    #[diesel(sql_type = Nullable<BigInt>)]
    id: Option<i64>,
    #[diesel(sql_type = Nullable<Bool>)]
    registered: Option<bool>,
    #[diesel(sql_type = Nullable<Bool>)]
    friend_verification: Option<bool>,
}

/// One attempt at a batch, inside its transaction: the answer for each input (a rule's refusal
/// is an answer), or the database error that rolls it all back.
async fn batch_tx(c: &mut AsyncPgConnection, inputs: &[Input]) -> Result<Vec<Answer>, StoreError> {
    let mut keys: Vec<(i32, i32)> = inputs
        .iter()
        .map(|&(me, other, _)| (fold_id(me.min(other)), fold_id(me.max(other))))
        .collect();
    keys.sort_unstable();
    keys.dedup();
    let (k1, k2): (Vec<i32>, Vec<i32>) = keys.into_iter().unzip();
    let mut others: Vec<i64> = inputs.iter().map(|&(_, other, _)| other).collect();
    others.sort_unstable();
    others.dedup();
    let locked: Vec<Locked> = Cached::<_, LockPairs>::new(
        diesel::sql_query(LOCK_PAIRS)
            .bind::<Array<Integer>, _>(k1)
            .bind::<Array<Integer>, _>(k2)
            .bind::<Array<BigInt>, _>(others),
    )
    .load(c)
    .await?;
    let counterparts: HashMap<i64, Counterpart> = locked
        .into_iter()
        .filter_map(|row| match row {
            Locked {
                id: Some(id),
                registered: Some(registered),
                friend_verification: Some(friend_verification),
            } => Some((id, counterpart((registered, friend_verification)))),
            _ => None,
        })
        .collect();

    // Both rows of every pair, in one statement (so from one snapshot).
    let (owners, others): (Vec<i64>, Vec<i64>) = inputs
        .iter()
        .flat_map(|&(me, other, _)| [(me, other), (other, me)])
        .unzip();
    let rows: Vec<(i64, i64, SideRow)> = Cached::<_, PairRows>::new(
        relationships::table
            .filter(
                sql::<Bool>("(owner, other) IN (SELECT * FROM unnest(")
                    .bind::<Array<BigInt>, _>(owners)
                    .sql(", ")
                    .bind::<Array<BigInt>, _>(others)
                    .sql("))"),
            )
            .select((relationships::owner, relationships::other, SIDE_COLUMNS)),
    )
    .load(c)
    .await?;
    let mut stored = HashMap::with_capacity(rows.len());
    for (owner, other, row) in rows {
        stored.insert((owner, other), row.into_side()?);
    }

    // The pairs are distinct (`take_batch`), so each decides on its own stored rows.
    let answers: Vec<Answer> = inputs
        .iter()
        .map(|(me, other, decide)| {
            let pair = Pair {
                mine: stored.remove(&(*me, *other)).unwrap_or_default(),
                theirs: stored.remove(&(*other, *me)).unwrap_or_default(),
            };
            decide(&pair, counterparts.get(other).copied()).map_err(StoreError::Rule)
        })
        .collect();

    let mut writes = RowWrites::default();
    let mut by_owner: BTreeMap<i64, OwnerChanges> = BTreeMap::new();
    for (&(me, other, _), answer) in inputs.iter().zip(&answers) {
        let Ok(t) = answer else { continue };
        for (owner, subject, side, effect) in owner_rows(me, other, t) {
            match effect {
                OwnerEffect::Logged => {
                    writes.push(owner, subject, side);
                    by_owner
                        .entry(owner)
                        .or_default()
                        .logged
                        .push((subject, side.updated_at));
                }
                OwnerEffect::Restamped => by_owner.entry(owner).or_default().restamped += 1,
                OwnerEffect::Untouched => {}
            }
        }
    }
    if by_owner.is_empty() {
        return Ok(answers);
    }
    let mut log = ChangeLog::default();
    for (&owner, changes) in &by_owner {
        for (rank, &(subject, at)) in (1..).zip(&changes.logged) {
            log.owner.push(owner);
            log.rank.push(rank);
            log.subject.push(subject);
            log.at.push(at);
        }
    }
    let ids: Vec<i64> = by_owner.keys().copied().collect();
    let owners = len_i64(ids.len());
    let (versions, stamps): (Vec<i64>, Vec<i64>) = by_owner
        .values()
        .map(|o| (len_i64(o.logged.len()), o.restamped))
        .unzip();
    // Users rows in id order, after the pairs, as every transition takes them.
    let moved = writes.write(c, (ids, versions, stamps), log).await?;
    if moved != owners {
        return Err(StoreError::NotFound("user"));
    }
    Ok(answers)
}

/// A length as a count in SQL; a batch holds at most two rows per transition.
fn len_i64(n: usize) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use kith_domain::DomainError;

    fn job(me: i64, other: i64) -> (Job, oneshot::Receiver<Answer>) {
        let (reply, answer) = oneshot::channel();
        let decide: Decide = Box::new(|_: &Pair, _| Err(DomainError::NotFound("user")));
        (
            Job {
                input: (me, other, decide),
                reply,
            },
            answer,
        )
    }

    fn pairs(jobs: &[Job]) -> Vec<(i64, i64)> {
        jobs.iter().map(|j| (j.input.0, j.input.1)).collect()
    }

    #[test]
    fn a_batch_takes_one_transition_per_pair_and_leaves_the_rest_in_order() {
        let mut waiting = VecDeque::new();
        let mut listening = Vec::new();
        for (me, other) in [(1, 2), (2, 1), (3, 4), (1, 2), (5, 6)] {
            let (j, answer) = job(me, other);
            waiting.push_back(j);
            listening.push(answer);
        }
        let first = take_batch(&mut waiting);
        assert_eq!(pairs(&first), [(1, 2), (3, 4), (5, 6)]);
        assert_eq!(
            waiting
                .iter()
                .map(|j| (j.input.0, j.input.1))
                .collect::<Vec<_>>(),
            [(2, 1), (1, 2)]
        );
        assert_eq!(pairs(&take_batch(&mut waiting)), [(2, 1)]);
        assert_eq!(pairs(&take_batch(&mut waiting)), [(1, 2)]);
        assert!(take_batch(&mut waiting).is_empty());
    }

    /// A follow of `other` by `me`, decided by the domain.
    fn follow(me: i64, other: i64) -> Input {
        use kith_domain::ids::RequestId;
        use kith_domain::relationship::{apply, Command, Context};
        let ctx = Context::new(1, RequestId::from_random(7));
        (
            me,
            other,
            Box::new(move |pair: &Pair, _| apply(pair, &Command::Follow, &ctx)),
        )
    }

    /// Users 1 to `n`, as placeholders.
    async fn placeholders(store: &crate::Store, n: i64) {
        for id in 1..=n {
            let phone =
                kith_domain::phone::Phone::from_e164(&format!("+8613900000{id:03}")).unwrap();
            let user = kith_domain::UserId::new(id).unwrap();
            store.create_placeholder(user, &phone, 1).await.unwrap();
        }
    }

    #[tokio::test(flavor = "multi_thread")]
    async fn a_batchs_statements_are_prepared_once_per_connection() {
        #[derive(QueryableByName)]
        struct Count {
            #[diesel(sql_type = BigInt)]
            n: i64,
        }
        let Some(db) = crate::testing::TestDb::postgres() else {
            return;
        };
        placeholders(db.store(), 4).await;
        let mut conn = <AsyncPgConnection as AsyncConnection>::establish(db.url())
            .await
            .unwrap();
        for (me, other) in [(1, 2), (3, 4)] {
            let (committed, answers) = apply_pg(&mut conn, &[follow(me, other)]).await;
            assert_eq!(committed, 1);
            assert!(answers[0].as_ref().unwrap().mine_changed);
        }
        for like in [
            "SELECT u.id, u.registered, u.friend_verification FROM (SELECT count(pg_advisory%",
            r#"SELECT "relationships"."owner", "relationships"."other"%unnest(%"#,
            "WITH written AS%",
        ] {
            let prepared: Count = diesel::sql_query(format!(
                "SELECT count(*) AS n FROM pg_prepared_statements WHERE statement LIKE '{like}'"
            ))
            .get_result(&mut conn)
            .await
            .unwrap();
            assert_eq!(prepared.n, 1, "{like}");
        }
    }

    /// A SQLite store's writer and a batcher on it, with users 1 to `users`.
    async fn sqlite_batcher(users: i64) -> (crate::testing::TestDb, Arc<Batcher>) {
        let db = crate::testing::TestDb::sqlite();
        placeholders(db.store(), users).await;
        let Executor::Sqlite(writer) = &db.store().batcher().unwrap().executor else {
            panic!("a SQLite store batches on its writer thread");
        };
        let batcher = Arc::new(Batcher::new(Executor::Sqlite(Arc::clone(writer)), 1, None));
        (db, batcher)
    }

    /// Waits until no drainer holds a slot: a turn gives its slot back just after it has
    /// answered, so the caller may see the answer first. Fails after 10 s.
    async fn slot_given_back(batcher: &Batcher) {
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        while batcher.lock().drainers != 0 {
            assert!(
                std::time::Instant::now() < deadline,
                "the turn kept its slot"
            );
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }

    #[tokio::test(flavor = "multi_thread")]
    async fn on_sqlite_the_writer_takes_everything_that_queued_while_it_was_busy() {
        let (db, batcher) = sqlite_batcher(20).await;
        let Executor::Sqlite(writer) = &batcher.executor else {
            unreachable!()
        };
        // Hold the writer, so that every transition below queues before its turn comes.
        let (held, release) = std::sync::mpsc::channel::<()>();
        assert!(writer.spawn(move |_conn| {
            let _ = release.recv_timeout(Duration::from_secs(10));
        }));
        let waits: Vec<_> = (0..10)
            .map(|i| {
                let batcher = Arc::clone(&batcher);
                tokio::spawn(async move {
                    let (me, other, decide) = follow(2 * i + 1, 2 * i + 2);
                    batcher.submit(me, other, decide).await
                })
            })
            .collect();
        while batcher.lock().waiting.len() < 10 {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        // One turn was queued behind the held work, not one per transition.
        assert_eq!(batcher.lock().drainers, 1);
        held.send(()).unwrap();
        for wait in waits {
            assert!(wait.await.unwrap().unwrap().mine_changed);
        }
        // The turn took all ten at once, in one transaction.
        assert_eq!(batcher.largest_committed(), 10);
        // And it gives its slot back, just after it has answered.
        slot_given_back(&batcher).await;
        use kith_domain::ports::RelationshipStore;
        let id = |n| kith_domain::UserId::new(n).unwrap();
        let pair = db.store().pair(id(19), id(20)).await.unwrap();
        assert!(pair.mine.following);
    }

    #[tokio::test(flavor = "multi_thread")]
    async fn on_sqlite_a_turn_without_a_connection_fails_its_batch_and_the_next_turn_commits() {
        let db = crate::testing::TestDb::sqlite();
        placeholders(db.store(), 2).await;
        let path = db.url().strip_prefix("sqlite://").unwrap().to_owned();
        // A writer whose pool has one connection and gives up on a checkout quickly.
        let pool = r2d2::Pool::builder()
            .max_size(1)
            .connection_timeout(Duration::from_millis(200))
            .build(crate::conn::Manager {
                target: crate::conn::Target::Sqlite(path),
            })
            .unwrap();
        let writer = Arc::new(SqliteWriter::start(pool.clone()).unwrap());
        let batcher = Arc::new(Batcher::new(Executor::Sqlite(writer), 1, None));
        let held = pool.get().unwrap();
        let (me, other, decide) = follow(1, 2);
        let answer =
            tokio::time::timeout(Duration::from_secs(10), batcher.submit(me, other, decide))
                .await
                .unwrap();
        assert!(answer.is_err(), "{answer:?}");
        // The failed turn gives its slot back, just after it has answered.
        slot_given_back(&batcher).await;
        drop(held);
        // The writer goes on: the next transition gets a connection and commits.
        let (me, other, decide) = follow(1, 2);
        let answer =
            tokio::time::timeout(Duration::from_secs(10), batcher.submit(me, other, decide))
                .await
                .unwrap();
        assert!(answer.unwrap().mine_changed);
        use kith_domain::ports::RelationshipStore;
        let id = |n| kith_domain::UserId::new(n).unwrap();
        assert!(db.store().pair(id(1), id(2)).await.unwrap().mine.following);
    }

    #[tokio::test(flavor = "multi_thread")]
    async fn on_sqlite_transitions_fail_as_unavailable_once_the_writer_is_gone() {
        let db = crate::testing::TestDb::sqlite();
        let pool = db.store().write_pool().clone();
        let mut writer = SqliteWriter::start(pool).unwrap();
        writer.stop();
        let batcher = Arc::new(Batcher::new(Executor::Sqlite(Arc::new(writer)), 1, None));
        // Twice: the first failure gives the drainer's slot back instead of leaving the
        // second to wait for a turn that never comes.
        for _ in 0..2 {
            let (me, other, decide) = follow(1, 2);
            let answer =
                tokio::time::timeout(Duration::from_secs(10), batcher.submit(me, other, decide))
                    .await
                    .unwrap();
            assert!(
                matches!(answer, Err(StoreError::Unavailable(_))),
                "{answer:?}"
            );
        }
        assert_eq!(batcher.lock().drainers, 0);
    }

    #[test]
    fn a_batch_is_bounded_and_skips_callers_that_gave_up() {
        let mut waiting = VecDeque::new();
        let mut listening = Vec::new();
        for i in 0..(MAX_BATCH as i64 + 3) {
            let (j, answer) = job(2 * i + 1, 2 * i + 2);
            waiting.push_back(j);
            listening.push(answer);
        }
        // The first caller gave up before its turn.
        drop(listening.remove(0));
        let batch = take_batch(&mut waiting);
        assert_eq!(batch.len(), MAX_BATCH);
        assert_eq!(batch[0].input.0, 3);
        assert_eq!(waiting.len(), 2);
    }
}
