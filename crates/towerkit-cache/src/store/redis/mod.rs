//! The Redis store: entries shared by every instance of a service.

mod builder;
mod conn;
mod health;
mod keys;
mod lease;
mod pubsub;

use std::fmt;
use std::future::Future;
use std::sync::atomic::Ordering;
use std::sync::{Arc, LazyLock};
use std::time::{Duration, Instant};

use bytes::Bytes;
use redis::{RedisError, Script};

pub use builder::RedisStoreBuilder;
use conn::{Conn, Group, expire};
use health::Health;
use keys::Keys;
use pubsub::Subscription;
pub(crate) use pubsub::{Event, Hook};

use super::contract::{
    Lookup, MAX_VARIANTS, Store, StoreError, StoreFuture, StoreStats, Tier, Variants,
};
use super::lease::Leases;
use crate::entry::Entry;
use crate::freshness::now_ms;
use crate::metrics;

/// Entries in Redis, shared by every instance of a service.
///
/// Available with the `redis` feature (on by default).
///
/// - One Redis hash per key (`{prefix}e:{key}`), one field per variant, each holding the
///   entry in the compact binary form of [`Entry::encode`]; the hash expires with its
///   longest-lived variant. Tags are Redis sets (`{prefix}t:{tag}`) of keys, expiring with
///   their longest-lived member.
/// - The connection is a multiplexed, auto-reconnecting
///   [`ConnectionManager`](redis::aio::ConnectionManager) (or a Redis Cluster connection
///   with the `redis-cluster` feature).
/// - Every operation is bounded by a timeout (default 50 ms). A failure or timeout is
///   returned as an error, which the cache counts as a miss; it is logged once per outage
///   (a warning, then an info line on recovery), counted in
///   `http_cache_redis_errors_total`, and Redis is then left alone for a backoff that
///   doubles from 100 ms up to 10 s, operations failing fast meanwhile. The cache never
///   answers with an error because of Redis.
///
/// Needs Redis 7.0 or later (`PEXPIRE … NX|GT`). Cloning shares the connection.
///
/// ```no_run
/// use towerkit_cache::{CacheLayer, RedisStore};
///
/// # async fn run() -> Result<(), Box<dyn std::error::Error>> {
/// let store = RedisStore::builder("redis://127.0.0.1:6379").prefix("catalog:cache:").connect().await?;
/// let layer = CacheLayer::new(store);
/// # let _ = layer;
/// # Ok(())
/// # }
/// ```
#[derive(Clone)]
pub struct RedisStore {
    pub(crate) inner: Arc<Inner>,
}

pub(crate) struct Inner {
    conn: Conn,
    keys: Keys,
    timeout: Duration,
    health: Health,
    /// The store's channels, followed for tiered stores and lease waiters.
    subscription: Subscription,
}

impl RedisStore {
    /// The key prefix.
    pub fn prefix(&self) -> &str {
        self.inner.keys.prefix()
    }

    /// Calls `hook` with the store's events (invalidations, fills, gaps), for a tiered
    /// store's memory tier.
    pub(crate) fn on_event(&self, hook: Hook) {
        self.inner.subscription.notices.on_event(hook);
    }

    /// The channel invalidations are published on.
    pub(crate) fn invalidation_channel(&self) -> String {
        self.inner.keys.invalidation_channel()
    }

    /// Runs `operation` within the timeout, unless Redis is backing off; records latency,
    /// failures and recovery.
    pub(crate) async fn run<T, F>(&self, name: &'static str, operation: F) -> Result<T, StoreError>
    where
        F: Future<Output = Result<T, RedisError>>,
    {
        let health = &self.inner.health;
        if !health.available(now_ms()) {
            metrics::redis_error("skipped");
            return Err(StoreError::Unavailable);
        }
        let started = Instant::now();
        let result = match tokio::time::timeout(self.inner.timeout, operation).await {
            Ok(Ok(value)) => Ok(value),
            Ok(Err(error)) => Err(StoreError::Backend(Box::new(error))),
            Err(_) => Err(StoreError::Timeout),
        };
        metrics::store_operation(name, started.elapsed());
        match &result {
            Ok(_) => health.succeeded(),
            Err(error) => health.failed(name, error),
        }
        result
    }

    pub(crate) async fn publish(&self, channel: &str, message: &str) -> Result<(), StoreError> {
        let cmd = redis::cmd("PUBLISH").arg(channel).arg(message).to_owned();
        self.run("publish", self.inner.conn.query::<i64>(&cmd))
            .await
            .map(drop)
    }

    async fn fetch(self, key: String) -> Result<Option<Lookup>, StoreError> {
        let redis_key = self.inner.keys.entry(&key);
        let cmd = redis::cmd("HGETALL").arg(&redis_key).to_owned();
        let fields: Vec<(Vec<u8>, Vec<u8>)> = self.run("get", self.inner.conn.query(&cmd)).await?;
        let now = now_ms();
        let mut entries: Vec<Arc<Entry>> = fields
            .into_iter()
            .filter_map(|(_, value)| Entry::decode(Bytes::from(value)).ok())
            .filter(|entry| entry.alive_at(now))
            .map(Arc::new)
            .collect();
        if entries.is_empty() {
            return Ok(None);
        }
        entries.sort_by_key(|entry| std::cmp::Reverse(entry.meta.response_time));
        // Variants that vary on other headers than the newest one are outdated.
        let names = |entry: &Entry| {
            entry
                .vary
                .iter()
                .map(|rule| rule.name.clone())
                .collect::<Vec<_>>()
        };
        let newest = names(&entries[0]);
        entries.retain(|entry| names(entry) == newest);
        entries.truncate(MAX_VARIANTS);
        let variants: Variants = entries.into();
        Ok(Some(Lookup {
            variants,
            tier: Tier::L2,
        }))
    }

    async fn store(self, key: String, entry: Arc<Entry>) -> Result<(), StoreError> {
        let now = now_ms();
        let ttl = entry.meta.retain_until.saturating_sub(now);
        if ttl == 0 {
            return Ok(());
        }
        let redis_key = self.inner.keys.entry(&key);
        // The entry's own writes in one script, so that MOVED or ASK cannot split them.
        let mut write = PUT.key(&redis_key);
        write
            .arg(entry.variant.as_bytes())
            .arg(entry.encode().as_ref())
            .arg(ttl);
        let groups: Vec<Group> = entry
            .tags
            .iter()
            .map(|tag| {
                let tag_key = self.inner.keys.tag(tag);
                let mut group: Group =
                    vec![(redis::cmd("SADD").arg(&tag_key).arg(&key).to_owned(), false)];
                expire(&mut group, &tag_key, ttl);
                group
            })
            .collect();
        let conn = &self.inner.conn;
        let both = async {
            if groups.is_empty() {
                return conn.script::<usize>(&write).await;
            }
            let (variants, _) = tokio::try_join!(conn.script::<usize>(&write), conn.batch(groups))?;
            Ok(variants)
        };
        let variants = self.run("put", both).await?;
        if variants > MAX_VARIANTS {
            self.trim(&redis_key, now).await?;
        }
        Ok(())
    }

    /// Keeps the newest [`MAX_VARIANTS`] live variants of a key.
    async fn trim(&self, redis_key: &str, now: u64) -> Result<(), StoreError> {
        let cmd = redis::cmd("HGETALL").arg(redis_key).to_owned();
        let fields: Vec<(Vec<u8>, Vec<u8>)> = self.run("get", self.inner.conn.query(&cmd)).await?;
        let mut dated: Vec<(u64, Vec<u8>)> = fields
            .into_iter()
            .map(|(field, value)| {
                let time = Entry::decode(Bytes::from(value))
                    .ok()
                    .filter(|entry| entry.alive_at(now))
                    .map_or(0, |entry| entry.meta.response_time);
                (time, field)
            })
            .collect();
        dated.sort_by_key(|dated| std::cmp::Reverse(dated.0));
        let stale: Vec<Vec<u8>> = dated
            .into_iter()
            .enumerate()
            .filter(|(i, (time, _))| *i >= MAX_VARIANTS || *time == 0)
            .map(|(_, (_, f))| f)
            .collect();
        if stale.is_empty() {
            return Ok(());
        }
        let cmd = redis::cmd("HDEL").arg(redis_key).arg(stale).to_owned();
        self.run("put", self.inner.conn.query::<i64>(&cmd))
            .await
            .map(drop)
    }

    async fn remove(self, key: String) -> Result<(), StoreError> {
        let cmd = redis::cmd("DEL")
            .arg(self.inner.keys.entry(&key))
            .to_owned();
        self.run("delete", self.inner.conn.query::<i64>(&cmd))
            .await
            .map(drop)
    }

    async fn remove_tagged(self, tag: String) -> Result<u64, StoreError> {
        let tag_key = self.inner.keys.tag(&tag);
        let cmd = redis::cmd("SMEMBERS").arg(&tag_key).to_owned();
        let keys: Vec<String> = self
            .run("invalidate_tag", self.inner.conn.query(&cmd))
            .await?;
        let mut groups: Vec<Group> = keys
            .iter()
            .map(|key| {
                vec![(
                    redis::cmd("DEL").arg(self.inner.keys.entry(key)).to_owned(),
                    true,
                )]
            })
            .collect();
        groups.push(vec![(redis::cmd("DEL").arg(&tag_key).to_owned(), false)]);
        let replies = self
            .run("invalidate_tag", self.inner.conn.batch(groups))
            .await?;
        let removed: Vec<u64> = replies
            .into_iter()
            .filter_map(|reply| redis::from_redis_value::<u64>(reply).ok())
            .collect();
        Ok(removed.iter().sum())
    }

    async fn remove_all(self) -> Result<(), StoreError> {
        let pattern = self.inner.keys.pattern();
        let keys = self.keys(&pattern).await?;
        for batch in keys.chunks(256) {
            let groups: Vec<Group> = batch
                .iter()
                .map(|key| vec![(redis::cmd("UNLINK").arg(key).to_owned(), false)])
                .collect();
            self.run("purge", self.inner.conn.batch(groups)).await?;
        }
        Ok(())
    }

    /// Every key matching `pattern`: SCAN on a server, KEYS on each cluster primary.
    async fn keys(&self, pattern: &str) -> Result<Vec<String>, StoreError> {
        match &self.inner.conn {
            Conn::Single(_) => {
                let mut keys = Vec::new();
                let mut cursor: u64 = 0;
                loop {
                    let cmd = redis::cmd("SCAN")
                        .arg(cursor)
                        .arg("MATCH")
                        .arg(pattern)
                        .arg("COUNT")
                        .arg(1000)
                        .to_owned();
                    let (next, batch): (u64, Vec<String>) =
                        self.run("purge", self.inner.conn.query(&cmd)).await?;
                    keys.extend(batch);
                    cursor = next;
                    if cursor == 0 {
                        return Ok(keys);
                    }
                }
            }
            #[cfg(feature = "redis-cluster")]
            Conn::Cluster(_) => {
                let cmd = redis::cmd("KEYS").arg(pattern).to_owned();
                self.run("purge", self.inner.conn.query(&cmd)).await
            }
        }
    }
}

impl fmt::Debug for RedisStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RedisStore")
            .field("prefix", &self.inner.keys.prefix())
            .field("timeout", &self.inner.timeout)
            .field("errors", &self.inner.health.errors.load(Ordering::Relaxed))
            .finish()
    }
}

/// Writes one variant of an entry and extends the hash's expiry to its TTL if longer;
/// returns how many variants the hash holds. `KEYS`: the entry's hash; `ARGV`: variant,
/// encoded entry, TTL (ms).
static PUT: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r"
redis.call('HSET', KEYS[1], ARGV[1], ARGV[2])
redis.call('PEXPIRE', KEYS[1], ARGV[3], 'NX')
redis.call('PEXPIRE', KEYS[1], ARGV[3], 'GT')
return redis.call('HLEN', KEYS[1])",
    )
});

impl Store for RedisStore {
    fn get(&self, key: &str) -> StoreFuture<Option<Lookup>> {
        StoreFuture::pending(self.clone().fetch(key.to_owned()))
    }

    fn put(&self, key: &str, entry: Arc<Entry>) -> StoreFuture<()> {
        StoreFuture::pending(self.clone().store(key.to_owned(), entry))
    }

    fn delete(&self, key: &str) -> StoreFuture<()> {
        StoreFuture::pending(self.clone().remove(key.to_owned()))
    }

    fn invalidate_tag(&self, tag: &str) -> StoreFuture<u64> {
        StoreFuture::pending(self.clone().remove_tagged(tag.to_owned()))
    }

    fn purge(&self) -> StoreFuture<()> {
        StoreFuture::pending(self.clone().remove_all())
    }

    fn leases(&self) -> Option<Arc<dyn Leases>> {
        Some(self.as_leases())
    }

    fn stats(&self) -> StoreStats {
        StoreStats {
            l1_entries: 0,
            l1_bytes: 0,
            l2_errors: self.inner.health.errors.load(Ordering::Relaxed),
        }
    }
}
