//! The in-process store: a byte-weighted quick_cache.

use std::fmt;
use std::sync::Arc;

use quick_cache::sync::{Cache, DefaultLifecycle};
use quick_cache::{DefaultHashBuilder, OptionsBuilder, Weighter};

use super::contract::{
    Lookup, Store, StoreError, StoreFuture, StoreStats, Tier, Variants, merge_variants,
};
use crate::entry::Entry;
use crate::freshness::NotStorable;
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
/// The cache is split into shards (up to four per core) for concurrency, each holding an
/// equal part of the capacity, and an entry must fit in one shard. The shard count is
/// chosen so that each shard holds at least 16 MiB (twice the layer's default `max_body`),
/// or the whole capacity when it is smaller: a 64 MiB store has 4 shards whatever the core
/// count, and accepts entries up to about 15 MiB. An entry heavier than a shard can hold
/// is refused: the layer does not record a response it knows to be too heavy
/// ([`Store::max_entry_weight`]), and says `detail=too-large` instead of `stored`.
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
    /// The heaviest key (all its variants) a shard admits.
    max_entry: u64,
}

/// The least capacity of a shard: twice the layer's default `max_body`.
const SHARD_FLOOR: u64 = 16 * 1024 * 1024;

/// The share of a shard quick_cache admits entries into (its default).
const HOT_ALLOCATION: f64 = 0.97;

/// Shards for a store of `capacity` bytes on `parallelism` cores: four per core (quick_cache's
/// own choice), halved until each holds at least [`SHARD_FLOOR`] bytes.
fn shard_count(capacity: u64, parallelism: usize) -> usize {
    let mut shards = (parallelism.max(1) * 4).next_power_of_two();
    while shards > 1 && capacity / (shards as u64) < SHARD_FLOOR {
        shards /= 2;
    }
    shards
}

#[derive(Debug, Clone, Copy)]
struct ByteWeighter;

impl Weighter<String, Variants> for ByteWeighter {
    fn weight(&self, key: &String, variants: &Variants) -> u64 {
        weigh(key, variants)
    }
}

/// The weight of `variants` under `key`.
fn weigh(key: &str, variants: &Variants) -> u64 {
    (key.len() + variants.iter().map(|entry| entry.weight()).sum::<usize>()) as u64
}

impl MemoryStore {
    /// A store holding at most `capacity_bytes` bytes of entries.
    pub fn new(capacity_bytes: u64) -> Self {
        let parallelism = std::thread::available_parallelism().map_or(1, usize::from);
        Self::with_parallelism(capacity_bytes, parallelism)
    }

    /// A store as [`new`](Self::new) makes it on a host with `parallelism` cores: for
    /// tests of the shard layout another host would get.
    #[doc(hidden)]
    pub fn with_parallelism(capacity_bytes: u64, parallelism: usize) -> Self {
        let capacity = capacity_bytes.max(1);
        // quick_cache sizes its tables from an item estimate: assume ~4 KiB per entry.
        let estimated_items = (capacity / 4096).clamp(16, 1 << 22) as usize;
        let options = OptionsBuilder::new()
            .estimated_items_capacity(estimated_items)
            .weight_capacity(capacity)
            .shards(shard_count(capacity, parallelism))
            .hot_allocation(HOT_ALLOCATION)
            .build()
            .unwrap_or_else(|_| unreachable!("both capacities are set"));
        let cache = Cache::with_options(
            options,
            ByteWeighter,
            DefaultHashBuilder::default(),
            DefaultLifecycle::default(),
        );
        // quick_cache admits an entry only within a shard's hot part.
        let max_entry = (cache.shard_capacity() as f64 * HOT_ALLOCATION) as u64;
        Self {
            cache: Arc::new(cache),
            max_entry,
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

    /// Stores `entry`, synchronously; `false` when it is heavier than a shard admits (the
    /// key then holds nothing).
    pub(crate) fn insert(&self, key: &str, entry: Arc<Entry>, now: u64) -> bool {
        if !entry.alive_at(now) {
            return true;
        }
        let current = self.cache.get(key);
        let merged = merge_variants(current.as_deref(), entry, now);
        let weight = weigh(key, &merged);
        if weight > self.max_entry {
            // What quick_cache would do, said out loud: it drops the key silently.
            self.cache.remove(key);
            metrics::not_stored(NotStorable::TooLarge);
            tracing::debug!(
                key,
                weight,
                max = self.max_entry,
                "cache entry too large for the memory store"
            );
            self.record_gauges();
            return false;
        }
        self.cache.insert(key.to_owned(), merged);
        self.record_gauges();
        true
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

    /// Removes `key` unless one of its variants is still fresh at `now`: a fresh copy may
    /// be served as it is; a stale one would be refreshed or revalidated again.
    #[cfg(feature = "redis")]
    pub(crate) fn remove_stale(&self, key: &str, now: u64) {
        let stale = self
            .cache
            .get(key)
            .is_some_and(|variants| variants.iter().all(|entry| entry.meta.fresh_until() <= now));
        if stale {
            self.remove(key);
        }
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
            .field("shards", &self.cache.num_shards())
            .field("max_entry", &self.max_entry)
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
        if self.insert(key, entry, now_ms()) {
            StoreFuture::ready(Ok(()))
        } else {
            StoreFuture::ready(Err(StoreError::Backend(
                format!(
                    "entry heavier than the memory store's {} bytes per entry",
                    self.max_entry
                )
                .into(),
            )))
        }
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

    fn max_entry_weight(&self) -> Option<u64> {
        Some(self.max_entry)
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
    fn shards_hold_at_least_16_mib_each() {
        let mib = 1024 * 1024;
        assert_eq!(shard_count(64 * mib, 16), 4);
        assert_eq!(shard_count(1024 * mib, 16), 64);
        assert_eq!(shard_count(8 * mib, 16), 1);
        assert_eq!(shard_count(1024 * mib, 1), 4);
        let store = MemoryStore::with_parallelism(64 * mib, 16);
        assert!(store.max_entry >= 15 * mib, "{}", store.max_entry);
    }

    #[test]
    fn an_entry_heavier_than_a_shard_is_refused_and_said_so() {
        let store = MemoryStore::new(64 * 1024);
        assert!(store.insert("/small", entry(1024, None), NOW));
        assert!(!store.insert("/big", entry(128 * 1024, None), NOW));
        assert!(store.lookup("/big").is_none());
        assert_eq!(store.max_entry_weight(), Some(store.max_entry));
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
