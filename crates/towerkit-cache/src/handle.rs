//! [`CacheHandle`]: invalidation and counts for application code.

use std::sync::Arc;
use std::sync::atomic::Ordering;

use crate::config::Shared;
use crate::key::path_tag;
use crate::store::{StoreError, StoreStats};

/// A clonable handle on a [`CacheLayer`](crate::CacheLayer)'s store, for application code
/// outside the request path: invalidate after a write, purge, read counts. Keep it in your
/// application state.
///
/// ```
/// use towerkit_cache::{CacheLayer, MemoryStore};
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() {
/// let layer = CacheLayer::new(MemoryStore::new(16 * 1024 * 1024));
/// let cache = layer.handle();
/// // In a handler that changed product 42:
/// cache.invalidate_tag("product:42").await.unwrap();
/// cache.invalidate_path("/products").await.unwrap();
/// assert_eq!(cache.stats().hits, 0);
/// # }
/// ```
#[derive(Debug, Clone)]
pub struct CacheHandle {
    pub(crate) shared: Arc<Shared>,
}

/// Counts of a cache's requests by outcome, and its store's own counts.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CacheStats {
    /// Answered from the cache without contacting the origin.
    pub hits: u64,
    /// Answered with a stale response (`stale-while-revalidate`, `stale-if-error`, grace,
    /// `max-stale`).
    pub stale: u64,
    /// Forwarded to the origin (including revalidations).
    pub misses: u64,
    /// Not handled by the cache (unsafe methods, `no-store` requests, the predicate).
    pub bypasses: u64,
    /// Answered from an entry another request's origin call stored (also counted as hits).
    pub coalesced: u64,
    /// The store's counts.
    pub store: StoreStats,
}

impl CacheHandle {
    /// Removes every entry tagged `tag` (from the `Cache-Tag` response header); returns how
    /// many keys were removed.
    pub async fn invalidate_tag(&self, tag: &str) -> Result<u64, StoreError> {
        self.shared.store.invalidate_tag(tag).await
    }

    /// Removes every entry for `path` (for example `/products/42`), whatever its query
    /// string, host or key headers; returns how many keys were removed.
    pub async fn invalidate_path(&self, path: &str) -> Result<u64, StoreError> {
        let path = path.split(['?', '#']).next().unwrap_or_default();
        self.shared.store.invalidate_tag(&path_tag(path)).await
    }

    /// Removes every entry.
    pub async fn purge(&self) -> Result<(), StoreError> {
        self.shared.store.purge().await
    }

    /// Request counts since the layer was built, and the store's counts.
    pub fn stats(&self) -> CacheStats {
        let counters = &self.shared.counters;
        CacheStats {
            hits: counters.hits.load(Ordering::Relaxed),
            stale: counters.stale.load(Ordering::Relaxed),
            misses: counters.misses.load(Ordering::Relaxed),
            bypasses: counters.bypasses.load(Ordering::Relaxed),
            coalesced: counters.coalesced.load(Ordering::Relaxed),
            store: self.shared.store.stats(),
        }
    }
}
