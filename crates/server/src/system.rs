//! The system clock and the OS random number generator, as the domain's `Clock` and `Random` ports.

use std::time::{SystemTime, UNIX_EPOCH};

use kith_domain::ports::{Clock, Random};
use kith_domain::Millis;
use rand::{RngCore, TryRngCore};

/// Wall-clock time from the operating system.
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> Millis {
        // A clock set before 1970 yields negative instants rather than a panic.
        match SystemTime::now().duration_since(UNIX_EPOCH) {
            Ok(since) => i64::try_from(since.as_millis()).unwrap_or(i64::MAX),
            Err(before) => i64::try_from(before.duration().as_millis()).map_or(i64::MIN, |ms| -ms),
        }
    }
}

/// Randomness from the operating system's CSPRNG, for codes, tokens and ids.
#[derive(Debug, Clone, Copy, Default)]
pub struct OsRandom;

impl Random for OsRandom {
    fn fill(&self, buf: &mut [u8]) {
        if let Err(e) = rand::rngs::OsRng.try_fill_bytes(buf) {
            // The thread RNG is a ChaCha CSPRNG seeded from the OS, so the fallback stays
            // unpredictable; it only exists so a transient getrandom failure is not a panic.
            tracing::warn!(error = %e, "OS random source failed, using the thread RNG");
            rand::rng().fill_bytes(buf);
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;

    #[test]
    fn clock_is_recent_milliseconds() {
        let now = SystemClock.now();
        // 2020-01-01 and 2200-01-01 in ms: catches seconds or nanoseconds by mistake.
        assert!(now > 1_577_836_800_000 && now < 7_258_118_400_000, "{now}");
        assert!(SystemClock.now() >= now);
    }

    #[test]
    fn random_fills_and_differs() {
        let mut a = [0u8; 32];
        let mut b = [0u8; 32];
        OsRandom.fill(&mut a);
        OsRandom.fill(&mut b);
        assert_ne!(a, [0u8; 32]);
        assert_ne!(a, b);
        assert_ne!(OsRandom.next_u64(), OsRandom.next_u64());
        OsRandom.fill(&mut []);
    }
}
