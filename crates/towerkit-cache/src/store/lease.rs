//! Leases: how instances sharing a store agree that one of them makes a key's origin call
//! (the [`Leases`] trait a shared store implements, and what its methods return).
//!
//! The cache takes a key's lease before it calls the origin on a miss, a revalidation or a
//! background refresh. The instance that gets it ([`Claim::Lead`]) calls the origin and
//! releases the lease with how it ended ([`LeaseEnd`]); the others ([`Claim::Held`]) wait
//! for that ([`Leases::wait`]), then read the store. A lease expires on its own after its
//! TTL, so a holder that dies holds nobody up for longer.

use std::fmt;
use std::time::Duration;

use super::contract::StoreFuture;

/// What claiming a key's lease found.
#[derive(Debug)]
pub enum Claim {
    /// This instance holds the lease now: call the origin, then release it.
    Lead(LeaseToken),
    /// Another instance holds it: wait for its end.
    Held,
    /// The key's last response was not storable ("hit-for-miss"): go to the origin
    /// without a lease, and without waiting for anyone.
    Pass,
}

/// How a lease ended, as its holder announces it to the waiters.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LeaseEnd {
    /// The response was stored: read it from the store.
    Filled,
    /// The response was not storable: go to the origin (nothing is handed over).
    NotStorable,
    /// The holder gave up (its client left, the origin failed, the body was too large):
    /// claim the lease again.
    Abandoned,
}

/// Proves that the lease is held by this instance: only its holder can renew or release
/// it. Random, so that a lease that expired and was taken by another instance is not
/// released by the first.
#[derive(Clone, PartialEq, Eq)]
pub struct LeaseToken(Box<str>);

impl LeaseToken {
    /// A token with this text.
    pub fn new(text: impl Into<Box<str>>) -> Self {
        LeaseToken(text.into())
    }

    /// The token's text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for LeaseToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Nothing secret, but nothing useful in a log either.
        f.write_str("LeaseToken(..)")
    }
}

/// Leases on keys' origin calls, shared by every instance using the same store (see the
/// module docs). A store shared between processes offers them through
/// [`Store::leases`](super::Store::leases); the cache then collapses concurrent misses
/// across instances, not only within one.
///
/// Every method may fail ([`StoreError`](super::StoreError)): the cache then goes on
/// without a lease, coalescing within its own process only.
pub trait Leases: fmt::Debug + Send + Sync + 'static {
    /// Takes `key`'s lease for `ttl` if nobody holds it and the key is not marked
    /// hit-for-miss.
    fn claim(&self, key: &str, ttl: Duration) -> StoreFuture<Claim>;

    /// Extends the lease to `ttl` from now if `token` still holds it; `false` if it does
    /// not (it expired, and perhaps another instance took it).
    fn renew(&self, key: &str, token: &LeaseToken, ttl: Duration) -> StoreFuture<bool>;

    /// Releases the lease if `token` still holds it, and announces `end` to the waiters.
    /// With [`LeaseEnd::NotStorable`], marks the key hit-for-miss for `pass_for`, so that
    /// the next claims answer [`Claim::Pass`].
    fn release(
        &self,
        key: &str,
        token: &LeaseToken,
        end: LeaseEnd,
        pass_for: Duration,
    ) -> StoreFuture<()>;

    /// Waits until `key`'s lease ends: its announced end, or `None` when the lease was
    /// found gone without an announcement heard (it expired, or the announcement was
    /// missed). Does not time out by itself: the caller bounds the wait.
    fn wait(&self, key: &str) -> StoreFuture<Option<LeaseEnd>>;
}
