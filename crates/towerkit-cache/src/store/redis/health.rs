//! Whether Redis is believed up, and the backoff while it is not.

use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};
use std::time::Duration;

use crate::freshness::now_ms;
use crate::metrics;
use crate::store::StoreError;

/// Whether Redis is believed up, and the backoff while it is not.
pub(super) struct Health {
    down_until: AtomicU64,
    failures: AtomicU32,
    warned: AtomicBool,
    pub(super) errors: AtomicU64,
    min_backoff: Duration,
    max_backoff: Duration,
}

impl Health {
    pub(super) fn new(min_backoff: Duration, max_backoff: Duration) -> Self {
        Health {
            down_until: AtomicU64::new(0),
            failures: AtomicU32::new(0),
            warned: AtomicBool::new(false),
            errors: AtomicU64::new(0),
            min_backoff,
            max_backoff,
        }
    }

    pub(super) fn available(&self, now: u64) -> bool {
        now >= self.down_until.load(Ordering::Relaxed)
    }

    pub(super) fn failed(&self, operation: &'static str, error: &StoreError) {
        metrics::redis_error(operation);
        self.errors.fetch_add(1, Ordering::Relaxed);
        let failures = self
            .failures
            .fetch_add(1, Ordering::Relaxed)
            .saturating_add(1);
        let factor = 1u32
            .checked_shl(failures.saturating_sub(1).min(16))
            .unwrap_or(u32::MAX);
        let backoff = self
            .min_backoff
            .saturating_mul(factor)
            .min(self.max_backoff);
        self.down_until.store(
            now_ms().saturating_add(backoff.as_millis() as u64),
            Ordering::Relaxed,
        );
        if !self.warned.swap(true, Ordering::Relaxed) {
            tracing::warn!(%error, "redis cache store unavailable: serving from memory or the origin until it recovers");
        }
    }

    pub(super) fn succeeded(&self) {
        if self.failures.swap(0, Ordering::Relaxed) > 0 {
            self.down_until.store(0, Ordering::Relaxed);
            if self.warned.swap(false, Ordering::Relaxed) {
                tracing::info!("redis cache store recovered");
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn failures_back_off_exponentially_and_success_resets() {
        let health = Health {
            down_until: AtomicU64::new(0),
            failures: AtomicU32::new(0),
            warned: AtomicBool::new(false),
            errors: AtomicU64::new(0),
            min_backoff: Duration::from_secs(10),
            max_backoff: Duration::from_secs(40),
        };
        let now = now_ms();
        assert!(health.available(now));
        health.failed("get", &StoreError::Timeout);
        assert!(!health.available(now + 9_000));
        assert!(health.available(now + 11_000));
        health.failed("get", &StoreError::Timeout);
        assert!(!health.available(now + 19_000));
        health.failed("get", &StoreError::Timeout);
        health.failed("get", &StoreError::Timeout);
        assert!(health.available(now + 41_000), "capped at the maximum");
        assert_eq!(health.errors.load(Ordering::Relaxed), 4);
        health.succeeded();
        assert!(health.available(now));
        assert!(!health.warned.load(Ordering::Relaxed));
    }
}
