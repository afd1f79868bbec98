//! The bcrypt password hasher, run on blocking threads behind a concurrency bound.

use std::sync::Arc;

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
}

/// bcrypt hashing of passwords.
///
/// Each hash or verify takes a permit from a semaphore before moving to a blocking thread, so a
/// burst of logins queues here instead of filling Tokio's blocking pool, and the async workers
/// stay free to serve other requests.
#[derive(Debug, Clone)]
pub struct BcryptHasher {
    cost: u32,
    permits: Arc<Semaphore>,
    dummy: String,
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
        Ok(Self {
            cost,
            permits: Arc::new(Semaphore::new(concurrency.min(Semaphore::MAX_PERMITS))),
            dummy,
        })
    }

    /// The cost of new hashes.
    pub fn cost(&self) -> u32 {
        self.cost
    }

    /// Runs `work` on a blocking thread once a permit is free.
    async fn run<T, F>(&self, work: F) -> DomainResult<T>
    where
        F: FnOnce() -> T + Send + 'static,
        T: Send + 'static,
    {
        let permit = Arc::clone(&self.permits)
            .acquire_owned()
            .await
            .map_err(|_| DomainError::Internal("password hasher closed".into()))?;
        // The permit travels with the work: a cancelled caller does not free it while the
        // blocking thread is still busy hashing.
        tokio::task::spawn_blocking(move || {
            let _permit = permit;
            work()
        })
        .await
        .map_err(|e| DomainError::Internal(format!("password hashing task failed: {e}")))
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
