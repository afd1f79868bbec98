//! The bcrypt password hasher, run on threads of its own, at a lower priority than the
//! request path, behind a concurrency bound.

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::mpsc::{channel, Receiver, Sender};
use std::sync::{Arc, Mutex, PoisonError};

use async_trait::async_trait;
use kith_domain::ports::{PasswordHasher, Random};
use kith_domain::{DomainError, DomainResult};
use thiserror::Error;
use tokio::sync::Semaphore;

use crate::config::{MAX_BCRYPT_COST, MIN_BCRYPT_COST};
use crate::system::OsRandom;

/// Why a hasher could not be built.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum HasherError {
    /// The cost is outside the allowed range.
    #[error("bcrypt cost must be between {min} and {max}, got {got}")]
    Cost {
        /// Smallest allowed cost.
        min: u32,
        /// Largest allowed cost.
        max: u32,
        /// The cost asked for.
        got: u32,
    },
    /// Zero concurrent hashes would block every login forever.
    #[error("hash concurrency must be at least 1")]
    Concurrency,
    /// bcrypt failed while computing the dummy hash.
    #[error("bcrypt failed: {0}")]
    Bcrypt(String),
    /// A hashing thread could not be started.
    #[error("could not start a password hashing thread: {0}")]
    Thread(String),
}

/// How much lower than the rest of the server the hashing threads run (a Linux nice
/// increment). At the same priority, a login burst on a 2-CPU machine took one CPU from the
/// requests and doubled `profile`'s p99; lowered, hashing takes mostly what the requests leave
/// (docs/benchmarks.md, "The login burst, and hashing at a lower priority").
const HASH_NICENESS: i32 = 5;

/// One hash or verify, with where its answer goes.
type Job = Box<dyn FnOnce() + Send>;

/// bcrypt hashing of passwords.
///
/// Each hash or verify takes a permit from a semaphore, then runs on one of `concurrency`
/// threads that only hash: a burst of logins queues here instead of filling Tokio's blocking
/// pool (which the database uses), the async workers stay free to serve other requests, and
/// the hashing threads' lower priority leaves the CPU to those requests first.
#[derive(Debug, Clone)]
pub struct BcryptHasher {
    cost: u32,
    permits: Arc<Semaphore>,
    jobs: Sender<Job>,
    dummy: String,
}

/// Starts `n` hashing threads; they end when every sender is gone.
fn start_threads(n: usize) -> Result<Sender<Job>, HasherError> {
    let (jobs, queue) = channel::<Job>();
    let queue = Arc::new(Mutex::new(queue));
    for i in 0..n {
        let queue = Arc::clone(&queue);
        std::thread::Builder::new()
            .name(format!("kith-hash-{i}"))
            .spawn(move || hashing_thread(&queue))
            .map_err(|e| HasherError::Thread(e.to_string()))?;
    }
    Ok(jobs)
}

fn hashing_thread(queue: &Mutex<Receiver<Job>>) {
    lower_priority();
    loop {
        // The lock is held only to take one job, never while hashing.
        let job = queue.lock().unwrap_or_else(PoisonError::into_inner).recv();
        let Ok(job) = job else { return };
        // A panicking job drops its answer's sender, which its caller sees as a failure; the
        // thread goes on serving the queue.
        let _ = catch_unwind(AssertUnwindSafe(job));
    }
}

/// Lowers the calling thread's priority by [`HASH_NICENESS`] (Linux: a nice value is per
/// thread). Elsewhere, and if the system refuses, hashing runs at the server's priority.
fn lower_priority() {
    #[cfg(target_os = "linux")]
    {
        use rustix::process::{getpriority_process, setpriority_process};
        let me = Some(rustix::thread::gettid());
        let lowered = getpriority_process(me)
            .and_then(|nice| setpriority_process(me, (nice + HASH_NICENESS).min(19)));
        if let Err(e) = lowered {
            tracing::warn!(error = %e, "password hashing runs at the server's priority");
        }
    }
}

impl BcryptHasher {
    /// A hasher at `cost` (10 to 16) running at most `concurrency` hashes at once. Computes the
    /// dummy hash synchronously, so it costs one hash at startup.
    pub fn new(cost: u32, concurrency: usize) -> Result<Self, HasherError> {
        if !(MIN_BCRYPT_COST..=MAX_BCRYPT_COST).contains(&cost) {
            return Err(HasherError::Cost {
                min: MIN_BCRYPT_COST,
                max: MAX_BCRYPT_COST,
                got: cost,
            });
        }
        Self::build(cost, concurrency)
    }

    /// Like [`BcryptHasher::new`] but accepts bcrypt's minimum cost of 4, so tests run fast.
    /// Never use it in production.
    pub fn new_unchecked_for_tests(cost: u32, concurrency: usize) -> Result<Self, HasherError> {
        const BCRYPT_MIN: u32 = 4;
        if !(BCRYPT_MIN..=MAX_BCRYPT_COST).contains(&cost) {
            return Err(HasherError::Cost {
                min: BCRYPT_MIN,
                max: MAX_BCRYPT_COST,
                got: cost,
            });
        }
        Self::build(cost, concurrency)
    }

    fn build(cost: u32, concurrency: usize) -> Result<Self, HasherError> {
        if concurrency == 0 {
            return Err(HasherError::Concurrency);
        }
        let mut secret = [0u8; 24];
        OsRandom.fill(&mut secret);
        let dummy = bcrypt::hash(hex::encode(secret), cost)
            .map_err(|e| HasherError::Bcrypt(e.to_string()))?;
        let concurrency = concurrency.min(Semaphore::MAX_PERMITS);
        Ok(Self {
            cost,
            permits: Arc::new(Semaphore::new(concurrency)),
            jobs: start_threads(concurrency)?,
            dummy,
        })
    }

    /// The cost of new hashes.
    pub fn cost(&self) -> u32 {
        self.cost
    }

    /// Runs `work` on a hashing thread once a permit is free. There are as many threads as
    /// permits, so a job never waits in the threads' queue behind another.
    async fn run<T, F>(&self, work: F) -> DomainResult<T>
    where
        F: FnOnce() -> T + Send + 'static,
        T: Send + 'static,
    {
        let closed = || DomainError::Internal("password hasher closed".into());
        let permit = Arc::clone(&self.permits)
            .acquire_owned()
            .await
            .map_err(|_| closed())?;
        let (answer, answered) = tokio::sync::oneshot::channel();
        // The permit travels with the work: a cancelled caller does not free it while the
        // thread is still busy hashing. It is freed before the answer goes, so a caller that
        // has its answer finds its permit back.
        let job: Job = Box::new(move || {
            let done = work();
            drop(permit);
            let _ = answer.send(done);
        });
        self.jobs.send(job).map_err(|_| closed())?;
        answered
            .await
            .map_err(|_| DomainError::Internal("password hashing failed".into()))
    }
}

/// The cost of a `$2a$`/`$2b$`/`$2x$`/`$2y$` bcrypt hash, or `None` if it is not one.
fn bcrypt_cost(hash: &str) -> Option<u32> {
    let mut parts = hash.split('$');
    let (Some(""), Some(version), Some(cost), Some(rest), None) = (
        parts.next(),
        parts.next(),
        parts.next(),
        parts.next(),
        parts.next(),
    ) else {
        return None;
    };
    if !matches!(version, "2a" | "2b" | "2x" | "2y") || cost.len() != 2 || rest.len() != 53 {
        return None;
    }
    if !cost.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    cost.parse().ok()
}

#[async_trait]
impl PasswordHasher for BcryptHasher {
    async fn hash(&self, password: &str) -> DomainResult<String> {
        let password = password.to_owned();
        let cost = self.cost;
        self.run(move || bcrypt::hash(password, cost))
            .await?
            .map_err(|e| DomainError::Internal(format!("bcrypt hash failed: {e}")))
    }

    async fn verify(&self, password: &str, hash: &str) -> DomainResult<bool> {
        if bcrypt_cost(hash).is_none() {
            // Spend the usual time anyway, so a corrupt row is not distinguishable by timing.
            let dummy = self.dummy.clone();
            let password = password.to_owned();
            self.run(move || bcrypt::verify(password, &dummy))
                .await?
                .ok();
            return Ok(false);
        }
        let password = password.to_owned();
        let hash = hash.to_owned();
        Ok(self
            .run(move || bcrypt::verify(password, &hash))
            .await?
            .unwrap_or(false))
    }

    fn needs_upgrade(&self, hash: &str) -> bool {
        bcrypt_cost(hash).is_none_or(|cost| cost < self.cost)
    }

    fn dummy_hash(&self) -> &str {
        &self.dummy
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use std::time::Duration;

    use super::*;

    fn fast(concurrency: usize) -> BcryptHasher {
        BcryptHasher::new_unchecked_for_tests(4, concurrency).unwrap()
    }

    #[test]
    fn production_constructor_refuses_weak_costs() {
        assert_eq!(
            BcryptHasher::new(4, 1).unwrap_err().to_string(),
            "bcrypt cost must be between 10 and 16, got 4"
        );
        assert!(BcryptHasher::new(17, 1).is_err());
        assert_eq!(
            BcryptHasher::new_unchecked_for_tests(4, 0).unwrap_err(),
            HasherError::Concurrency
        );
        assert!(BcryptHasher::new_unchecked_for_tests(3, 1).is_err());
    }

    #[tokio::test]
    async fn hash_then_verify() {
        let h = fast(2);
        let stored = h.hash("kith-Zebra-42").await.unwrap();
        assert!(stored.starts_with("$2b$04$"), "{stored}");
        assert!(h.verify("kith-Zebra-42", &stored).await.unwrap());
        assert!(!h.verify("kith-Zebra-43", &stored).await.unwrap());
        assert_ne!(h.hash("kith-Zebra-42").await.unwrap(), stored, "salted");
    }

    #[tokio::test]
    async fn malformed_hash_verifies_false() {
        let h = fast(1);
        for bad in [
            "",
            "plaintext",
            "$2b$04$short",
            "$2b$xx$abcdefghijklmnopqrstuvabcdefghijklmnopqrstuvwxyz01234",
        ] {
            assert!(!h.verify("whatever", bad).await.unwrap(), "{bad}");
        }
    }

    #[test]
    fn dummy_hash_is_at_current_cost() {
        let h = fast(1);
        assert_eq!(bcrypt_cost(h.dummy_hash()), Some(4));
        assert!(!h.needs_upgrade(h.dummy_hash()));
    }

    #[tokio::test]
    async fn needs_upgrade_for_cheaper_or_unparseable_hashes() {
        let h = BcryptHasher::new_unchecked_for_tests(5, 1).unwrap();
        let cheap = bcrypt::hash("pw", 4).unwrap();
        let same = h.hash("pw").await.unwrap();
        let dearer = bcrypt::hash("pw", 6).unwrap();
        assert!(h.needs_upgrade(&cheap));
        assert!(!h.needs_upgrade(&same));
        assert!(!h.needs_upgrade(&dearer));
        assert!(h.needs_upgrade("not a hash"));
        let a = cheap.replacen("$2b$", "$2a$", 1);
        let y = cheap.replacen("$2b$", "$2y$", 1);
        assert_eq!((bcrypt_cost(&a), bcrypt_cost(&y)), (Some(4), Some(4)));
        assert!(h.verify("pw", &y).await.unwrap());
    }

    #[cfg(target_os = "linux")]
    #[tokio::test]
    async fn hashing_runs_below_the_callers_priority() {
        use rustix::process::getpriority_process;
        let h = fast(1);
        let mine = getpriority_process(None).unwrap();
        // `None` is the calling thread on Linux: here, the hashing thread.
        let theirs = h.run(|| getpriority_process(None).unwrap()).await.unwrap();
        assert_eq!(theirs, (mine + HASH_NICENESS).min(19));
    }

    #[tokio::test]
    async fn a_panicking_job_fails_alone() {
        let h = fast(1);
        let failed = h.run(|| -> u32 { panic!("boom") }).await;
        assert_eq!(
            failed.unwrap_err(),
            DomainError::Internal("password hashing failed".into())
        );
        // The one thread survived and the permit came back.
        assert_eq!(h.run(|| 7).await.unwrap(), 7);
        assert_eq!(h.permits.available_permits(), 1);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn concurrency_bound_queues_but_completes() {
        let h = fast(1);
        let stored = h.hash("secret-1").await.unwrap();

        // With the only permit held elsewhere, a verify must wait.
        let held = Arc::clone(&h.permits).acquire_owned().await.unwrap();
        let waiting =
            tokio::time::timeout(Duration::from_millis(200), h.verify("secret-1", &stored)).await;
        assert!(waiting.is_err(), "verify ran without a permit");
        drop(held);

        let tasks: Vec<_> = (0..6)
            .map(|i| {
                let h = h.clone();
                let stored = stored.clone();
                tokio::spawn(async move {
                    h.verify(if i % 2 == 0 { "secret-1" } else { "nope" }, &stored)
                        .await
                })
            })
            .collect();
        let mut results = Vec::new();
        for t in tasks {
            results.push(t.await.unwrap().unwrap());
        }
        assert_eq!(results, [true, false, true, false, true, false]);
        assert_eq!(h.permits.available_permits(), 1);
    }
}
