//! Whether a Redis node (the server, or one cluster node) is believed up, and the backoff
//! while it is not.

use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};
use std::time::Duration;

use crate::freshness::now_ms;
use crate::metrics;
use crate::store::StoreError;

/// One node (the server, or a cluster node) and its health.
pub(crate) struct Node {
    /// `host:port`, as given or as the cluster announces it (never with credentials); a
    /// metric label and a log field.
    pub(crate) address: String,
    pub(crate) health: Health,
}

impl Node {
    pub(crate) fn new(address: String, min_backoff: Duration, max_backoff: Duration) -> Self {
        Node {
            address,
            health: Health::new(min_backoff, max_backoff),
        }
    }

    /// Whether operations are sent to it now (it is not backing off).
    pub(crate) fn available(&self) -> bool {
        self.health.available(now_ms())
    }

    /// Its failed operations since start.
    pub(crate) fn errors(&self) -> u64 {
        self.health.errors.load(Ordering::Relaxed)
    }

    pub(crate) fn failed(&self, operation: &'static str, error: &StoreError) {
        self.health.failed(&self.address, operation, error);
    }

    pub(crate) fn succeeded(&self) {
        self.health.succeeded(&self.address);
    }
}

/// Whether a node is believed up, and the backoff while it is not.
pub(crate) struct Health {
    down_until: AtomicU64,
    failures: AtomicU32,
    warned: AtomicBool,
    pub(crate) errors: AtomicU64,
    min_backoff: Duration,
    max_backoff: Duration,
}

impl Health {
    pub(crate) fn new(min_backoff: Duration, max_backoff: Duration) -> Self {
        Health {
            down_until: AtomicU64::new(0),
            failures: AtomicU32::new(0),
            warned: AtomicBool::new(false),
            errors: AtomicU64::new(0),
            min_backoff,
            max_backoff,
        }
    }

    pub(crate) fn available(&self, now: u64) -> bool {
        now >= self.down_until.load(Ordering::Relaxed)
    }

    pub(crate) fn failed(&self, node: &str, operation: &'static str, error: &StoreError) {
        metrics::redis_error(operation, node);
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
            tracing::warn!(%error, node, "redis cache store unavailable: serving from memory or the origin until it recovers");
        }
    }

    /// Ends the backoff (without counting a recovery): the node is tried again at once.
    #[cfg_attr(not(feature = "redis-cluster"), allow(dead_code))]
    pub(crate) fn retry_now(&self) {
        self.down_until.store(0, Ordering::Relaxed);
    }

    pub(crate) fn succeeded(&self, node: &str) {
        if self.failures.swap(0, Ordering::Relaxed) > 0 {
            self.down_until.store(0, Ordering::Relaxed);
            if self.warned.swap(false, Ordering::Relaxed) {
                tracing::info!(node, "redis cache store recovered");
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
        health.failed("n:1", "get", &StoreError::Timeout);
        assert!(!health.available(now + 9_000));
        assert!(health.available(now + 11_000));
        health.failed("n:1", "get", &StoreError::Timeout);
        assert!(!health.available(now + 19_000));
        health.failed("n:1", "get", &StoreError::Timeout);
        health.failed("n:1", "get", &StoreError::Timeout);
        assert!(health.available(now + 41_000), "capped at the maximum");
        assert_eq!(health.errors.load(Ordering::Relaxed), 4);
        health.succeeded("n:1");
        assert!(health.available(now));
        assert!(!health.warned.load(Ordering::Relaxed));
    }
}
