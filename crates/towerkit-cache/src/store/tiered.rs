//! Memory in front of Redis, kept coherent across instances with Redis pub/sub.

use std::fmt;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use super::contract::{Lookup, Store, StoreFuture, StoreStats, Tier};
use super::lease::Leases;
use super::memory::MemoryStore;
use super::redis::{Event, RedisStore};
use crate::entry::Entry;
use crate::freshness::now_ms;

/// A [`MemoryStore`] (L1) in front of a [`RedisStore`] (L2).
///
/// Available with the `redis` feature (on by default).
///
/// - A lookup tries L1, then L2; what L2 has is copied into L1 with the same deadlines,
///   so an L1 entry never outlives the L2 entry it copies.
/// - Writes go to both. Deletions, tag invalidations and purges go to both and are
///   published on a Redis channel (`{prefix}invalidate`); every `TieredStore` on that
///   prefix, in any process, applies them to its own L1. When the subscription is
///   re-established after a disconnection, L1 is cleared, since invalidations may have been
///   missed meanwhile.
/// - When another instance stores a new response for a key after a lease (a miss, a
///   revalidation, a background refresh collapsed across instances), every L1 drops its
///   copy of the key if that copy is stale, so that the next lookup reads the new one from
///   L2 instead of refreshing the old one again.
/// - When Redis is down, L1 keeps serving what it has (within each entry's own deadlines)
///   and new responses are still stored in L1; L2 operations fail fast as misses.
///
/// Cloning shares both tiers. The Redis store's subscription (started by
/// [`RedisStoreBuilder::connect`](crate::RedisStoreBuilder::connect)) delivers the
/// invalidations; the last clone dropped stops listening.
#[derive(Clone)]
pub struct TieredStore {
    inner: Arc<Inner>,
}

struct Inner {
    l1: MemoryStore,
    l2: RedisStore,
    channel: String,
    /// Bumped by every invalidation applied to L1: an L2 read started before one must not
    /// refill L1 with what it invalidated.
    epoch: AtomicU64,
}

/// An invalidation, as published.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Message {
    Key(String),
    Tag(String),
    Purge,
}

impl Message {
    fn encode(&self) -> String {
        match self {
            Message::Key(key) => format!("k {key}"),
            Message::Tag(tag) => format!("t {tag}"),
            Message::Purge => "p".to_owned(),
        }
    }

    fn decode(text: &str) -> Option<Message> {
        match text.split_once(' ') {
            Some(("k", key)) => Some(Message::Key(key.to_owned())),
            Some(("t", tag)) => Some(Message::Tag(tag.to_owned())),
            None if text == "p" => Some(Message::Purge),
            _ => None,
        }
    }
}

fn apply(l1: &MemoryStore, epoch: &AtomicU64, message: &Message) {
    epoch.fetch_add(1, Ordering::SeqCst);
    match message {
        Message::Key(key) => l1.remove(key),
        Message::Tag(tag) => {
            l1.remove_tagged(tag);
        }
        Message::Purge => l1.clear(),
    }
}

impl TieredStore {
    /// Puts `l1` in front of `l2` and subscribes to invalidations on `l2`'s prefix.
    pub fn new(l1: MemoryStore, l2: RedisStore) -> Self {
        let channel = l2.invalidation_channel();
        let inner = Arc::new(Inner {
            l1,
            l2,
            channel,
            epoch: AtomicU64::new(0),
        });
        let weak = Arc::downgrade(&inner);
        inner.l2.on_event(Box::new(move |event| {
            let Some(inner) = weak.upgrade() else {
                return false;
            };
            match event {
                Event::Invalidation(text) => {
                    if let Some(message) = Message::decode(text) {
                        apply(&inner.l1, &inner.epoch, &message);
                    }
                }
                // Another instance stored a newer response: a stale copy here would be
                // refreshed or revalidated again, so read the new one from Redis next time.
                // A fresh copy may still be served. (No epoch bump: that would also stop
                // unrelated keys' refills.)
                Event::Filled(key) => inner.l1.remove_stale(key, now_ms()),
                Event::Resubscribed => apply(&inner.l1, &inner.epoch, &Message::Purge),
            }
            true
        }));
        Self { inner }
    }

    /// The memory tier.
    pub fn l1(&self) -> &MemoryStore {
        &self.inner.l1
    }

    /// The Redis tier.
    pub fn l2(&self) -> &RedisStore {
        &self.inner.l2
    }

    /// Applies `message` locally and in Redis, then tells the other instances.
    fn invalidate<T: Send + 'static>(
        &self,
        message: Message,
        l2: StoreFuture<T>,
    ) -> StoreFuture<T> {
        apply(&self.inner.l1, &self.inner.epoch, &message);
        let store = self.clone();
        StoreFuture::pending(async move {
            let result = l2.await;
            // Publish even if the L2 operation failed: other L1s must still drop their copies.
            let published = store
                .inner
                .l2
                .publish(&store.inner.channel, &message.encode())
                .await;
            let value = result?;
            published?;
            Ok(value)
        })
    }
}

impl fmt::Debug for TieredStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TieredStore")
            .field("l1", &self.inner.l1)
            .field("l2", &self.inner.l2)
            .finish()
    }
}

impl Store for TieredStore {
    fn get(&self, key: &str) -> StoreFuture<Option<Lookup>> {
        if let Some(variants) = self.inner.l1.lookup(key) {
            return StoreFuture::ready(Ok(Some(Lookup {
                variants,
                tier: Tier::L1,
            })));
        }
        let store = self.clone();
        let key = key.to_owned();
        let epoch = self.inner.epoch.load(Ordering::SeqCst);
        let l2 = self.inner.l2.get(&key);
        StoreFuture::pending(async move {
            let found = l2.await?;
            if let Some(lookup) = &found
                && store.inner.epoch.load(Ordering::SeqCst) == epoch
            {
                store
                    .inner
                    .l1
                    .insert_variants(&key, lookup.variants.clone());
            }
            Ok(found)
        })
    }

    fn put(&self, key: &str, entry: Arc<Entry>) -> StoreFuture<()> {
        self.inner.l1.insert(key, entry.clone(), now_ms());
        self.inner.l2.put(key, entry)
    }

    fn delete(&self, key: &str) -> StoreFuture<()> {
        let l2 = self.inner.l2.delete(key);
        self.invalidate(Message::Key(key.to_owned()), l2)
    }

    fn invalidate_tag(&self, tag: &str) -> StoreFuture<u64> {
        let l2 = self.inner.l2.invalidate_tag(tag);
        self.invalidate(Message::Tag(tag.to_owned()), l2)
    }

    fn purge(&self) -> StoreFuture<()> {
        let l2 = self.inner.l2.purge();
        self.invalidate(Message::Purge, l2)
    }

    fn leases(&self) -> Option<Arc<dyn Leases>> {
        self.inner.l2.leases()
    }

    fn stats(&self) -> StoreStats {
        let l1 = self.inner.l1.stats();
        StoreStats {
            l2_errors: self.inner.l2.stats().l2_errors,
            ..l1
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_round_trip() {
        for message in [
            Message::Key("/a?b=c\nx-tenant=1".into()),
            Message::Tag("product:42".into()),
            Message::Purge,
        ] {
            assert_eq!(Message::decode(&message.encode()), Some(message));
        }
        assert_eq!(Message::decode("x y"), None);
    }
}
