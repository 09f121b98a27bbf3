//! The in-process store: a byte-weighted quick_cache.

use std::fmt;
use std::sync::Arc;

use quick_cache::Weighter;
use quick_cache::sync::Cache;

use super::contract::{Lookup, Store, StoreFuture, StoreStats, Tier, Variants, merge_variants};
use crate::entry::Entry;
use crate::freshness::now_ms;
use crate::metrics;

/// Entries in process memory, in a [quick_cache] whose capacity is counted in bytes
/// ([`Entry::weight`]); the least valuable entries are evicted when it is full. Every
/// operation completes at once.
///
/// Entries carry their own deadlines, checked on read by the layer: an entry past its
/// [`stale_until`](Entry::stale_until) is never served, and is dropped by the next put
/// under its key or evicted when space is needed.
/// Tag invalidation scans the cache, which is fine for invalidations (rare) and keeps
/// puts and gets free of any index upkeep. Cloning shares the cache.
///
/// ```
/// use towerkit_cache::MemoryStore;
///
/// let store = MemoryStore::new(64 * 1024 * 1024); // 64 MiB
/// # let _ = store;
/// ```
#[derive(Clone)]
pub struct MemoryStore {
    cache: Arc<Cache<String, Variants, ByteWeighter>>,
}

#[derive(Debug, Clone, Copy)]
struct ByteWeighter;

impl Weighter<String, Variants> for ByteWeighter {
    fn weight(&self, key: &String, variants: &Variants) -> u64 {
        (key.len() + variants.iter().map(|entry| entry.weight()).sum::<usize>()) as u64
    }
}

impl MemoryStore {
    /// A store holding at most `capacity_bytes` bytes of entries.
    pub fn new(capacity_bytes: u64) -> Self {
        // quick_cache sizes its tables from an item estimate: assume ~4 KiB per entry.
        let estimated_items = (capacity_bytes / 4096).clamp(16, 1 << 22) as usize;
        Self {
            cache: Arc::new(Cache::with_weighter(
                estimated_items,
                capacity_bytes.max(1),
                ByteWeighter,
            )),
        }
    }

    /// Keys held.
    pub fn len(&self) -> usize {
        self.cache.len()
    }

    /// Whether the store holds nothing.
    pub fn is_empty(&self) -> bool {
        self.cache.is_empty()
    }

    /// Bytes held, as weighed by [`Entry::weight`].
    pub fn weight(&self) -> u64 {
        self.cache.weight()
    }

    /// The variants under `key`, synchronously. Entries past their deadline are left to the
    /// layer, which ignores them, and to the next put or eviction, which drops them: a
    /// lookup reads no clock.
    pub(crate) fn lookup(&self, key: &str) -> Option<Variants> {
        self.cache.get(key)
    }

    /// Stores `entry`, synchronously.
    pub(crate) fn insert(&self, key: &str, entry: Arc<Entry>, now: u64) {
        if !entry.alive_at(now) {
            return;
        }
        let current = self.cache.get(key);
        let merged = merge_variants(current.as_deref(), entry, now);
        self.cache.insert(key.to_owned(), merged);
        self.record_gauges();
    }

    /// Stores `variants` as they are (an L1 copy of what an L2 holds).
    #[cfg(feature = "redis")]
    pub(crate) fn insert_variants(&self, key: &str, variants: Variants) {
        self.cache.insert(key.to_owned(), variants);
        self.record_gauges();
    }

    pub(crate) fn remove(&self, key: &str) {
        self.cache.remove(key);
        self.record_gauges();
    }

    /// Removes every key with an entry tagged `tag`; returns how many.
    pub(crate) fn remove_tagged(&self, tag: &str) -> u64 {
        let keys: Vec<String> = self
            .cache
            .iter()
            .filter(|(_, variants)| {
                variants
                    .iter()
                    .any(|entry| entry.tags.iter().any(|t| &**t == tag))
            })
            .map(|(key, _)| key)
            .collect();
        for key in &keys {
            self.cache.remove(key.as_str());
        }
        self.record_gauges();
        keys.len() as u64
    }

    pub(crate) fn clear(&self) {
        self.cache.clear();
        self.record_gauges();
    }

    fn record_gauges(&self) {
        metrics::l1_gauges(self.cache.len() as u64, self.cache.weight());
    }
}

impl fmt::Debug for MemoryStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MemoryStore")
            .field("entries", &self.cache.len())
            .field("bytes", &self.cache.weight())
            .field("capacity", &self.cache.capacity())
            .finish()
    }
}

impl Store for MemoryStore {
    fn get(&self, key: &str) -> StoreFuture<Option<Lookup>> {
        let found = self.lookup(key).map(|variants| Lookup {
            variants,
            tier: Tier::L1,
        });
        StoreFuture::ready(Ok(found))
    }

    fn put(&self, key: &str, entry: Arc<Entry>) -> StoreFuture<()> {
        self.insert(key, entry, now_ms());
        StoreFuture::ready(Ok(()))
    }

    fn delete(&self, key: &str) -> StoreFuture<()> {
        self.remove(key);
        StoreFuture::ready(Ok(()))
    }

    fn invalidate_tag(&self, tag: &str) -> StoreFuture<u64> {
        StoreFuture::ready(Ok(self.remove_tagged(tag)))
    }

    fn purge(&self) -> StoreFuture<()> {
        self.clear();
        StoreFuture::ready(Ok(()))
    }

    fn stats(&self) -> StoreStats {
        StoreStats {
            l1_entries: self.cache.len() as u64,
            l1_bytes: self.cache.weight(),
            l2_errors: 0,
        }
    }
}

#[cfg(test)]
mod tests {
    use bytes::Bytes;
    use http::{HeaderMap, HeaderName, HeaderValue, StatusCode};

    use super::*;
    use crate::entry::prepare;
    use crate::test_support::{NOW, exchange, policy};

    fn entry(body: usize, vary: Option<(&str, &str)>) -> Arc<Entry> {
        entry_at(body, vary, NOW)
    }

    fn entry_at(body: usize, vary: Option<(&str, &str)>, at: u64) -> Arc<Entry> {
        let policy = policy();
        let mut response = HeaderMap::new();
        response.insert("cache-control", HeaderValue::from_static("max-age=60"));
        let mut request = HeaderMap::new();
        if let Some((name, value)) = vary {
            response.insert("vary", HeaderValue::from_str(name).unwrap());
            request.insert(
                HeaderName::from_bytes(name.as_bytes()).unwrap(),
                HeaderValue::from_str(value).unwrap(),
            );
        }
        let prepared = prepare(
            StatusCode::OK,
            &response,
            &exchange(&request, "/", at, &policy),
        )
        .unwrap();
        Arc::new(prepared.finish(Bytes::from(vec![b'x'; body])))
    }

    #[test]
    fn capacity_is_counted_in_bytes() {
        let store = MemoryStore::new(64 * 1024);
        for i in 0..40 {
            store.insert(&format!("/{i}"), entry(8 * 1024, None), NOW);
        }
        assert!(store.weight() <= 64 * 1024, "{}", store.weight());
        assert!(store.len() < 40 && !store.is_empty(), "{}", store.len());
    }

    #[test]
    fn variants_accumulate_up_to_the_limit_and_replace_their_own_id() {
        let store = MemoryStore::new(16 * 1024 * 1024);
        store.insert("/v", entry(10, Some(("x-lang", "en"))), NOW);
        store.insert("/v", entry(10, Some(("x-lang", "de"))), NOW);
        store.insert("/v", entry(10, Some(("x-lang", "en"))), NOW);
        assert_eq!(store.lookup("/v").unwrap().len(), 2);
        for i in 0..40 {
            store.insert("/v", entry(10, Some(("x-lang", &format!("l{i}")))), NOW);
        }
        assert_eq!(
            store.lookup("/v").unwrap().len(),
            super::super::contract::MAX_VARIANTS
        );
        // A response that stops varying replaces every variant.
        store.insert("/v", entry(10, None), NOW);
        assert_eq!(store.lookup("/v").unwrap().len(), 1);
    }

    #[test]
    fn dead_entries_are_dropped_by_the_next_put() {
        let store = MemoryStore::new(16 * 1024 * 1024);
        store.insert("/d", entry(10, Some(("x-lang", "en"))), NOW);
        let later = NOW + 3_600_000;
        store.insert("/d", entry_at(10, Some(("x-lang", "de")), later), later);
        let variants = store.lookup("/d").unwrap();
        assert_eq!(variants.len(), 1);
        assert!(variants[0].alive_at(later));
        // An entry already dead is not stored at all.
        store.insert("/e", entry(10, None), later);
        assert!(store.lookup("/e").is_none());
    }
}
