//! [`CacheHandle`]: invalidation and counts for application code.

use std::sync::Arc;
use std::sync::atomic::Ordering;

use http::{Request, Response};
use http_body::Body;
use tower_service::Service;

use crate::config::Shared;
use crate::hook::{self, Hooks, Invalidation};
use crate::key::path_tag;
use crate::store::{StoreError, StoreStats};
use crate::warm::WarmReport;

/// A clonable handle on a [`CacheLayer`](crate::CacheLayer)'s store, for application code
/// outside the request path: invalidate after a write, purge, warm, read counts. Keep it in your
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
#[derive(Clone)]
pub struct CacheHandle {
    pub(crate) shared: Arc<Shared>,
    /// The layer's invalidation hooks.
    pub(crate) hooks: Hooks,
}

impl std::fmt::Debug for CacheHandle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CacheHandle")
            .field("shared", &self.shared)
            .field("hooks", &self.hooks.len())
            .finish()
    }
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
    /// many keys were removed. Then calls the layer's
    /// [invalidation hooks](crate::CacheLayerBuilder::invalidation_hook) with
    /// [`Invalidation::Tag`], even when the store failed, and returns once they are done.
    pub async fn invalidate_tag(&self, tag: &str) -> Result<u64, StoreError> {
        let removed = self.shared.store.invalidate_tag(tag).await;
        hook::notify(&self.hooks, || Invalidation::Tag(tag.to_owned())).await;
        removed
    }

    /// Removes every entry for `path` (for example `/products/42`), whatever its query
    /// string, host or key headers; returns how many keys were removed. Then calls the
    /// hooks with [`Invalidation::Path`] (the path without query or fragment).
    pub async fn invalidate_path(&self, path: &str) -> Result<u64, StoreError> {
        let path = path.split(['?', '#']).next().unwrap_or_default();
        let removed = self.shared.store.invalidate_tag(&path_tag(path)).await;
        hook::notify(&self.hooks, || Invalidation::Path(path.to_owned())).await;
        removed
    }

    /// Removes every entry. Then calls the hooks with [`Invalidation::Purge`].
    pub async fn purge(&self) -> Result<(), StoreError> {
        let purged = self.shared.store.purge().await;
        hook::notify(&self.hooks, || Invalidation::Purge).await;
        purged
    }

    /// Warms the cache: sends `requests` through `service`, at most `concurrency` at a time
    /// (`0` counts as 1), and reports what this handle's cache did with each, in order.
    ///
    /// `service` is the whole service the cache layer sits in, as clients reach it (with
    /// axum, the router after `Router::layer`, which wraps each route separately): warm
    /// requests pass the cache like any request, so they are stored by the same rules
    /// (keys, `Vary`, TTLs, predicates), coalesce with concurrent misses, and take the key's
    /// lease in a shared store, so that instances warming the same keys at once make one
    /// origin call per key. A key already fresh in the store is reported
    /// [`AlreadyFresh`](crate::WarmOutcome::AlreadyFresh) and not fetched again; a stale one is
    /// revalidated or refetched. Each body is drained as it streams (nothing is kept);
    /// the report waits until the store has taken the entry.
    ///
    /// Only `GET` requests are sent (others are reported
    /// [`Bypassed`](crate::WarmOutcome::Bypassed)); `Authorization`, `Proxy-Authorization` and
    /// `Cookie` are removed, since a warmed entry is for everyone. Set the headers the cache
    /// keys or varies on (`Accept-Encoding` for a compressed variant, a key header) to warm
    /// those variants. The service's own timeouts bound each request; wrap the call in
    /// `tokio::time::timeout` to bound the whole.
    ///
    /// ```
    /// use axum::{Router, body::Body, routing::get};
    /// use http::Request;
    /// use towerkit_cache::{CacheLayer, MemoryStore, WarmOutcome};
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() {
    /// let layer = CacheLayer::builder(MemoryStore::new(16 * 1024 * 1024))
    ///     .default_ttl(std::time::Duration::from_secs(60))
    ///     .build()
    ///     .unwrap();
    /// let cache = layer.handle();
    /// let app = Router::new()
    ///     .route("/products", get(|| async { "[]" }))
    ///     .layer(layer);
    ///
    /// let requests = ["/products", "/products"].map(|uri| Request::get(uri).body(Body::empty()).unwrap());
    /// let report = cache.warm(&app, requests, 4).await;
    /// assert!(report.is_complete());
    /// assert_eq!(report.results[0].outcome, WarmOutcome::Stored);
    /// assert_eq!(report.results[1].outcome, WarmOutcome::AlreadyFresh);
    /// # }
    /// ```
    pub async fn warm<S, ReqBody, ResBody>(
        &self,
        service: &S,
        requests: impl IntoIterator<Item = Request<ReqBody>>,
        concurrency: usize,
    ) -> WarmReport
    where
        S: Service<Request<ReqBody>, Response = Response<ResBody>> + Clone,
        S::Error: std::fmt::Display,
        ResBody: Body,
    {
        crate::warm::warm(&self.shared, service, requests, concurrency).await
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
