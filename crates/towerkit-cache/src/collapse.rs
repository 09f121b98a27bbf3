//! Collapsing across instances: before a key's origin call, the leader of the process's
//! flight takes the key's lease in the shared store, so that one instance calls the origin
//! and the others wait for its outcome, then read the store.
//!
//! What is per process and what is cluster-wide:
//! - within a process, coalescing (`flight.rs`) always holds: one origin call per key at a
//!   time, the response handed to the followers directly, whatever the store does;
//! - across instances, a key's lease (`Leases`, from the store) makes the call once for
//!   all of them while the store answers: when it fails or is slow, the lease is skipped
//!   and each instance calls the origin once for itself. Nobody waits longer than the
//!   flight's bound (`coalesce_timeout`) for another instance.
//!
//! A leader holds its [`LeaseGuard`] through the origin call and the store write, renewing
//! the lease while the call runs (until the flight's bound); it releases it with the
//! outcome, which wakes the waiters: [`LeaseEnd::Filled`] once stored, `NotStorable` (the
//! key is then marked hit-for-miss, and waiters go to the origin at once), or `Abandoned`
//! when dropped without an outcome (waiters then claim the lease again).

use std::sync::Arc;
use std::time::Duration;

use tokio::task::JoinHandle;
use tokio::time::Instant;

use crate::config::Config;
use crate::metrics::{self, LeaseEvent};
use crate::store::{Claim, LeaseEnd, LeaseToken, Leases, StoreFuture};

/// What the cross-instance step found for a flight's leader.
pub(crate) enum Cross {
    /// This instance holds the key's lease: call the origin.
    Lead(LeaseGuard),
    /// Another instance filled the key (or may have): look it up in the store.
    Look,
    /// The key is hit-for-miss: go to the origin without a lease, and let this process's
    /// followers go too, without waiting for this request.
    Pass,
    /// Go to the origin without a lease: leases unavailable, or the wait reached the
    /// flight's bound.
    Alone,
}

/// Takes `key`'s lease, or waits (until `until`) for the instance holding it.
pub(crate) async fn claim_or_wait(
    config: &Arc<Config>,
    leases: &Arc<dyn Leases>,
    key: &str,
    until: Instant,
) -> Cross {
    let ttl = config.lease_ttl;
    let claimed = bounded(leases.claim(key, ttl), config.store_timeout).await;
    match claimed {
        None => {
            metrics::lease(LeaseEvent::Unavailable);
            Cross::Alone
        }
        Some(Claim::Pass) => {
            metrics::lease(LeaseEvent::HitForMiss);
            Cross::Pass
        }
        Some(Claim::Lead(token)) => {
            metrics::lease(LeaseEvent::Acquired);
            Cross::Lead(LeaseGuard::new(config, leases.clone(), key, token, until))
        }
        Some(Claim::Held) => {
            metrics::lease(LeaseEvent::Waited);
            match tokio::time::timeout_at(until, leases.wait(key)).await {
                Err(_) => {
                    metrics::lease(LeaseEvent::TimedOut);
                    Cross::Alone
                }
                Ok(Err(error)) => {
                    tracing::debug!(%error, "cache lease wait failed");
                    metrics::lease(LeaseEvent::Unavailable);
                    Cross::Alone
                }
                Ok(Ok(Some(LeaseEnd::NotStorable))) => {
                    metrics::lease(LeaseEvent::HitForMiss);
                    Cross::Pass
                }
                Ok(Ok(Some(LeaseEnd::Filled | LeaseEnd::Abandoned) | None)) => Cross::Look,
            }
        }
    }
}

/// `future`'s value within `timeout`; `None` on failure or timeout.
async fn bounded<T>(future: StoreFuture<T>, timeout: Duration) -> Option<T> {
    match future.within(timeout).await {
        Ok(value) => Some(value),
        Err(error) => {
            tracing::debug!(%error, "cache lease operation failed");
            None
        }
    }
}

/// A lease held by this instance: renewed while the origin call runs, released with its
/// outcome by [`settle`](Self::settle), or as abandoned when dropped.
pub(crate) struct LeaseGuard {
    leases: Arc<dyn Leases>,
    key: String,
    token: LeaseToken,
    hit_for_miss: Duration,
    timeout: Duration,
    renewal: Option<JoinHandle<()>>,
    settled: bool,
}

impl LeaseGuard {
    pub(crate) fn new(
        config: &Config,
        leases: Arc<dyn Leases>,
        key: &str,
        token: LeaseToken,
        until: Instant,
    ) -> Self {
        let renewal = tokio::runtime::Handle::try_current().ok().map(|runtime| {
            runtime.spawn(renew(
                leases.clone(),
                key.to_owned(),
                token.clone(),
                config.lease_ttl,
                until,
            ))
        });
        LeaseGuard {
            leases,
            key: key.to_owned(),
            token,
            hit_for_miss: config.hit_for_miss,
            timeout: config.store_timeout,
            renewal,
            settled: false,
        }
    }

    /// Releases the lease with `end`, announced to the waiters (in the background).
    pub(crate) fn settle(mut self, end: LeaseEnd) {
        self.release(end);
    }

    fn release(&mut self, end: LeaseEnd) {
        self.settled = true;
        if let Some(renewal) = self.renewal.take() {
            renewal.abort();
        }
        let released = self
            .leases
            .release(&self.key, &self.token, end, self.hit_for_miss);
        let timeout = self.timeout;
        // Without a runtime nothing can be released: the lease expires on its own.
        if let Ok(runtime) = tokio::runtime::Handle::try_current() {
            runtime.spawn(async move {
                if let Err(error) = released.within(timeout).await {
                    tracing::debug!(%error, "cache lease release failed");
                }
            });
        }
    }
}

impl Drop for LeaseGuard {
    fn drop(&mut self) {
        if !self.settled {
            self.release(LeaseEnd::Abandoned);
        }
    }
}

/// Renews the lease every third of its TTL while it is held, up to the flight's bound:
/// a slow origin call keeps it, a dead holder loses it within one TTL.
async fn renew(
    leases: Arc<dyn Leases>,
    key: String,
    token: LeaseToken,
    ttl: Duration,
    until: Instant,
) {
    let every = (ttl / 3).max(Duration::from_millis(1));
    loop {
        tokio::time::sleep(every).await;
        if Instant::now() >= until {
            return;
        }
        match leases.renew(&key, &token, ttl).within(ttl).await {
            Ok(true) => {}
            Ok(false) => return,
            Err(error) => tracing::debug!(%error, "cache lease renewal failed"),
        }
    }
}
