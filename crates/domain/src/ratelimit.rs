//! Fixed-window counters for throttles whose state may live in one process (per-IP, global).

use std::collections::HashMap;
use std::sync::Mutex;

use crate::error::DomainError;
use crate::ids::Millis;

/// Counts events per key in fixed windows. Memory is bounded by `max_keys`.
#[derive(Debug)]
pub struct WindowLimiter {
    limit: u32,
    window_ms: Millis,
    max_keys: usize,
    state: Mutex<HashMap<String, (Millis, u32)>>,
}

impl WindowLimiter {
    /// `limit` events per `window_ms` per key; at most `max_keys` keys are tracked.
    pub fn new(limit: u32, window_ms: Millis, max_keys: usize) -> Self {
        Self {
            limit,
            window_ms: window_ms.max(1),
            max_keys: max_keys.max(1),
            state: Mutex::new(HashMap::new()),
        }
    }

    /// Counts one event for `key` at `now`, or refuses it with the seconds until the window ends.
    pub fn hit(&self, key: &str, now: Millis) -> Result<(), DomainError> {
        let mut map = self
            .state
            .lock()
            .map_err(|_| DomainError::Internal("rate limiter poisoned".into()))?;
        let window = self.window_ms;
        if !map.contains_key(key) && map.len() >= self.max_keys {
            map.retain(|_, (start, _)| now - *start < window);
            if map.len() >= self.max_keys {
                // Full of live keys: refuse rather than grow without bound.
                return Err(DomainError::RateLimited {
                    retry_after_secs: 1,
                });
            }
        }
        let entry = map.entry(key.to_owned()).or_insert((now, 0));
        if now - entry.0 >= window {
            *entry = (now, 0);
        }
        if entry.1 >= self.limit {
            let left = (entry.0 + window - now).max(1000);
            return Err(DomainError::RateLimited {
                retry_after_secs: (left as u64).div_ceil(1000),
            });
        }
        entry.1 += 1;
        Ok(())
    }

    /// How many keys are tracked (for tests and metrics).
    pub fn tracked_keys(&self) -> usize {
        self.state.lock().map(|m| m.len()).unwrap_or(0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn limits_per_key_and_resets_after_the_window() {
        let l = WindowLimiter::new(2, 1000, 10);
        assert!(l.hit("a", 0).is_ok());
        assert!(l.hit("a", 10).is_ok());
        assert_eq!(
            l.hit("a", 20),
            Err(DomainError::RateLimited {
                retry_after_secs: 1
            })
        );
        assert!(l.hit("b", 20).is_ok());
        assert!(l.hit("a", 1000).is_ok());
    }

    #[test]
    fn memory_stays_bounded() {
        let l = WindowLimiter::new(1, 1000, 3);
        for k in ["a", "b", "c"] {
            assert!(l.hit(k, 0).is_ok());
        }
        assert!(l.hit("d", 10).is_err());
        assert_eq!(l.tracked_keys(), 3);
        assert!(l.hit("d", 2000).is_ok());
        assert!(l.tracked_keys() <= 3);
    }

    /// A flood of distinct keys (spoofed IPs, say) never grows the map past `max_keys`, and the
    /// keys of past windows make room again.
    #[test]
    fn a_flood_of_distinct_keys_stays_bounded() {
        let max = 1000;
        let l = WindowLimiter::new(5, 60_000, max);
        let mut refused = 0;
        for i in 0..20_000u32 {
            if l.hit(&format!("10.{}.{}.{}", i >> 16, (i >> 8) & 255, i & 255), 0)
                .is_err()
            {
                refused += 1;
            }
            assert!(l.tracked_keys() <= max);
        }
        assert_eq!(refused, 20_000 - max, "only the first {max} keys get in");
        // A window later the old keys are stale and new ones are counted again.
        assert!(l.hit("203.0.113.7", 60_000).is_ok());
        assert!(l.tracked_keys() <= max);
    }
}
