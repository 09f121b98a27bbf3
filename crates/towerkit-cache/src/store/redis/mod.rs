//! The Redis store: entries shared by every instance of a service.

mod builder;
mod conn;
mod health;
mod keys;
mod lease;
mod pubsub;
#[cfg(feature = "redis-cluster")]
mod router;
#[cfg(feature = "redis-cluster")]
mod topology;

use std::fmt;
use std::future::Future;
use std::ops::RangeInclusive;
use std::sync::{Arc, LazyLock};
use std::time::{Duration, Instant};
use tracing::Instrument;

use bytes::Bytes;
use redis::{RedisError, Script, Value};

pub use builder::RedisStoreBuilder;
use conn::{Conn, Group};
use health::Node;
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
/// - One Redis hash per key (`{prefix}e:{hash}:{key}`, the hash tag putting every Redis key
///   of one cache key in one cluster slot), one field per variant, each holding the entry
///   in the compact binary form of [`Entry::encode`]; the hash expires with its
///   longest-lived variant. Tags are Redis sets (`{prefix}t:{tag}`) of keys, expiring with
///   their longest-lived member, written before the entry they name.
/// - A single server: a multiplexed, auto-reconnecting
///   [`ConnectionManager`](redis::aio::ConnectionManager). A Redis
///   Cluster ([`RedisStore::cluster`], feature `redis-cluster`): the store reads the slot
///   map (`CLUSTER SLOTS`) every second, and at once after a failure or a `MOVED`, through
///   any node it was given or has discovered; it sends each command to the primary serving
///   its key's slot over one multiplexed connection per node, following `MOVED`, `ASK` and
///   `TRYAGAIN`. Purge runs `SCAN` (never `KEYS`) on the server or on each primary.
/// - Every operation is bounded by a timeout (default 50 ms). A failure or timeout is
///   returned as an error, which the cache counts as a miss; it is logged once per outage
///   of a node (a warning naming the node, then an info line on recovery), counted in
///   `http_cache_redis_errors_total{operation,node}`, and that node is then left alone for
///   a backoff that doubles from 100 ms up to 10 s, operations on its keys failing fast
///   meanwhile. A single server is one node; on a cluster each primary has its own health,
///   so a dead primary costs misses on its own slots only, and when the slot map names a
///   new primary for them (its replica took over) they are served from it at once; any
///   change of the slot map ends every backoff. [`RedisStore::nodes`] shows each node's
///   state. The cache never answers with an error because of Redis.
/// - Tiered stores and lease waiters follow the store's channels through one subscribed
///   connection; when its node dies it moves to another node (given, or on a cluster
///   discovered in the slot map).
///
/// On a cluster, set `cluster-require-full-coverage no`: with Redis' default, every node
/// refuses every command (`CLUSTERDOWN`) from the moment a primary is marked failed until
/// its replica takes over, which the store can only count as misses on every slot.
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
    nodes: Nodes,
    /// The store's channels, followed for tiered stores and lease waiters.
    subscription: Subscription,
}

/// Whose health an operation depends on.
enum Nodes {
    /// The one server: one health for every key.
    Single(Arc<Node>),
    /// A cluster: the health of the primary serving the key's slot.
    #[cfg(feature = "redis-cluster")]
    Cluster(Arc<topology::Topology>),
}

/// One Redis node as the store sees it, from [`RedisStore::nodes`]: for operators (a
/// health endpoint, a log line) and tests.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct RedisNode {
    /// `host:port`: the server's as given, or a cluster node's as the cluster announces it.
    /// Never any credentials.
    pub address: String,
    /// Whether it is a primary. A cluster's replicas are listed too (the store sends them
    /// nothing, but may follow its channels through them).
    pub primary: bool,
    /// The hash slots it serves (a cluster primary's), as the store last saw the cluster's
    /// slot map; empty for a single server (which holds every key) and for replicas.
    pub slots: Vec<RangeInclusive<u16>>,
    /// Whether the store sends it operations now: false while it backs off after failures
    /// (operations on its keys then fail at once, as misses).
    pub available: bool,
    /// Its failed or timed-out operations since the store started (or since the node
    /// joined the cluster's slot map).
    pub errors: u64,
}

impl RedisStore {
    /// The key prefix.
    pub fn prefix(&self) -> &str {
        self.inner.keys.prefix()
    }

    /// The nodes the store talks to, and their health: the server; or a cluster's
    /// primaries (with the slots each serves, as of the store's last look at the slot map,
    /// at most a second old) and then its replicas. Empty while a cluster's slot map has
    /// not been read yet.
    pub fn nodes(&self) -> Vec<RedisNode> {
        match &self.inner.nodes {
            Nodes::Single(node) => vec![RedisNode {
                address: node.address.clone(),
                primary: true,
                slots: Vec::new(),
                available: node.available(),
                errors: node.errors(),
            }],
            #[cfg(feature = "redis-cluster")]
            Nodes::Cluster(topology) => topology
                .nodes()
                .into_iter()
                .map(|listed| RedisNode {
                    address: listed.node.address.clone(),
                    primary: listed.primary,
                    slots: listed.slots,
                    available: listed.node.available(),
                    errors: listed.node.errors(),
                })
                .collect(),
        }
    }

    /// Failed operations since start, on every node.
    fn errors(&self) -> u64 {
        match &self.inner.nodes {
            Nodes::Single(node) => node.errors(),
            #[cfg(feature = "redis-cluster")]
            Nodes::Cluster(topology) => topology.errors(),
        }
    }

    /// The node `redis_key` lives on.
    fn node_for(&self, redis_key: &str) -> Arc<Node> {
        match &self.inner.nodes {
            Nodes::Single(node) => {
                let _ = redis_key;
                node.clone()
            }
            #[cfg(feature = "redis-cluster")]
            Nodes::Cluster(topology) => topology.node_for(redis_key),
        }
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

    /// Runs `operation`, on the Redis key (or channel) `redis_key`, within the timeout,
    /// unless the node serving that key is backing off; records latency, failures and
    /// recovery against that node.
    pub(crate) async fn run<T, F>(
        &self,
        name: &'static str,
        redis_key: &str,
        operation: F,
    ) -> Result<T, StoreError>
    where
        F: Future<Output = Result<T, RedisError>>,
    {
        let node = self.node_for(redis_key);
        self.run_on(&node, name, operation).await
    }

    /// Runs `operation` on `node` within the timeout, unless the node is backing off.
    async fn run_on<T, F>(
        &self,
        node: &Node,
        name: &'static str,
        operation: F,
    ) -> Result<T, StoreError>
    where
        F: Future<Output = Result<T, RedisError>>,
    {
        if !node.health.available(now_ms()) {
            metrics::redis_error("skipped", &node.address);
            // The node's slots may have a new primary already (its replica took over).
            self.refresh_soon();
            return Err(StoreError::Unavailable);
        }
        let started = Instant::now();
        let span = crate::trace::store_operation(name, &node.address);
        let result =
            match tokio::time::timeout(self.inner.timeout, operation.instrument(span)).await {
                Ok(Ok(value)) => Ok(value),
                Ok(Err(error)) => Err(StoreError::Backend(Box::new(error))),
                Err(_) => Err(StoreError::Timeout),
            };
        metrics::store_operation(name, started.elapsed());
        match &result {
            Ok(_) => node.succeeded(),
            Err(error) => {
                node.failed(name, error);
                // The slot map may have changed (a failover): look again soon.
                self.refresh_soon();
            }
        }
        result
    }

    /// On a cluster, asks for the slot map to be read again soon (at most every 100 ms).
    fn refresh_soon(&self) {
        #[cfg(feature = "redis-cluster")]
        if let Nodes::Cluster(topology) = &self.inner.nodes {
            topology.refresh_soon();
        }
    }

    /// Runs groups of single-key commands: on a server as one pipeline; on a cluster each
    /// group on its key's node, concurrently, each under that node's health (one dead
    /// primary fails only its own groups). Returns the wanted replies in order, or the
    /// first failure once every group has finished.
    async fn run_groups(
        &self,
        name: &'static str,
        groups: &[Group],
    ) -> Result<Vec<Value>, StoreError> {
        match &self.inner.nodes {
            Nodes::Single(node) => self.run_on(node, name, self.inner.conn.batch(groups)).await,
            #[cfg(feature = "redis-cluster")]
            Nodes::Cluster(_) => {
                let results = futures_util::future::join_all(
                    groups
                        .iter()
                        .map(|group| self.run(name, &group.key, self.inner.conn.group(group))),
                )
                .await;
                let mut replies = Vec::new();
                for result in results {
                    replies.extend(result?);
                }
                Ok(replies)
            }
        }
    }

    pub(crate) async fn publish(&self, channel: &str, message: &str) -> Result<(), StoreError> {
        let cmd = redis::cmd("PUBLISH").arg(channel).arg(message).to_owned();
        self.run(
            "publish",
            channel,
            self.inner.conn.query::<i64>(channel, &cmd),
        )
        .await
        .map(drop)
    }

    async fn fetch(self, key: String) -> Result<Option<Lookup>, StoreError> {
        let redis_key = self.inner.keys.entry(&key);
        let cmd = redis::cmd("HGETALL").arg(&redis_key).to_owned();
        let fields: Vec<(Vec<u8>, Vec<u8>)> = self
            .run("get", &redis_key, self.inner.conn.query(&redis_key, &cmd))
            .await?;
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
        // The tags first: an entry is written only once every tag set names it, so that a
        // tag invalidation never misses a stored entry (on a cluster, tag sets may live on
        // other nodes than the entry, and one of them may be down).
        let groups: Vec<Group> = entry
            .tags
            .iter()
            .map(|tag| {
                let tag_key = self.inner.keys.tag(tag);
                let sadd = redis::cmd("SADD").arg(&tag_key).arg(&key).to_owned();
                let mut group = Group::one(tag_key, sadd, false);
                group.expire(ttl);
                group
            })
            .collect();
        if !groups.is_empty() {
            self.run_groups("put", &groups).await?;
        }
        // The entry's own writes in one script, so that MOVED or ASK cannot split them.
        let mut write = PUT.key(&redis_key);
        write
            .arg(entry.variant.as_bytes())
            .arg(entry.encode().as_ref())
            .arg(ttl);
        let variants: usize = self
            .run(
                "put",
                &redis_key,
                self.inner.conn.script(&redis_key, &write),
            )
            .await?;
        if variants > MAX_VARIANTS {
            self.trim(&redis_key, now).await?;
        }
        Ok(())
    }

    /// Keeps the newest [`MAX_VARIANTS`] live variants of a key.
    async fn trim(&self, redis_key: &str, now: u64) -> Result<(), StoreError> {
        let cmd = redis::cmd("HGETALL").arg(redis_key).to_owned();
        let fields: Vec<(Vec<u8>, Vec<u8>)> = self
            .run("get", redis_key, self.inner.conn.query(redis_key, &cmd))
            .await?;
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
        self.run(
            "put",
            redis_key,
            self.inner.conn.query::<i64>(redis_key, &cmd),
        )
        .await
        .map(drop)
    }

    async fn remove(self, key: String) -> Result<(), StoreError> {
        let redis_key = self.inner.keys.entry(&key);
        let cmd = redis::cmd("DEL").arg(&redis_key).to_owned();
        self.run(
            "delete",
            &redis_key,
            self.inner.conn.query::<i64>(&redis_key, &cmd),
        )
        .await
        .map(drop)
    }

    async fn remove_tagged(self, tag: String) -> Result<u64, StoreError> {
        let tag_key = self.inner.keys.tag(&tag);
        let cmd = redis::cmd("SMEMBERS").arg(&tag_key).to_owned();
        let keys: Vec<String> = self
            .run(
                "invalidate_tag",
                &tag_key,
                self.inner.conn.query(&tag_key, &cmd),
            )
            .await?;
        if keys.is_empty() {
            return Ok(0);
        }
        let groups: Vec<Group> = keys
            .iter()
            .map(|key| {
                let entry = self.inner.keys.entry(key);
                let del = redis::cmd("DEL").arg(&entry).to_owned();
                Group::one(entry, del, true)
            })
            .collect();
        // Every entry first: should one fail, the tag set still names it for a retry.
        let replies = self.run_groups("invalidate_tag", &groups).await?;
        // Only the keys just removed leave the set: an entry tagged meanwhile stays in it.
        let srem = redis::cmd("SREM").arg(&tag_key).arg(&keys).to_owned();
        self.run(
            "invalidate_tag",
            &tag_key,
            self.inner.conn.query::<i64>(&tag_key, &srem),
        )
        .await?;
        Ok(replies
            .into_iter()
            .filter_map(|reply| redis::from_redis_value::<u64>(reply).ok())
            .sum())
    }

    /// Removes every key under the prefix: `SCAN` (never `KEYS`, which blocks a server) on
    /// the server, or on each cluster primary, and `UNLINK` in batches.
    async fn remove_all(self) -> Result<(), StoreError> {
        let pattern = self.inner.keys.pattern();
        match &self.inner.nodes {
            Nodes::Single(node) => self.purge_node(node, &pattern).await,
            #[cfg(feature = "redis-cluster")]
            Nodes::Cluster(topology) => {
                let primaries = topology.primaries();
                if primaries.is_empty() {
                    // The slot map is not known yet: nothing can be said to be empty.
                    return Err(StoreError::Unavailable);
                }
                let results = futures_util::future::join_all(
                    primaries.iter().map(|node| self.purge_node(node, &pattern)),
                )
                .await;
                results.into_iter().collect()
            }
        }
    }

    /// Removes the keys matching `pattern` from one node (the server, or a primary).
    async fn purge_node(&self, node: &Node, pattern: &str) -> Result<(), StoreError> {
        let mut cursor: u64 = 0;
        loop {
            let scan = self.inner.conn.scan_node(&node.address, cursor, pattern);
            let (next, batch) = self.run_on(node, "purge", scan).await?;
            for keys in batch.chunks(256) {
                let groups: Vec<Group> = keys
                    .iter()
                    .map(|key| {
                        let unlink = redis::cmd("UNLINK").arg(key).to_owned();
                        Group::one(key.clone(), unlink, false)
                    })
                    .collect();
                self.run_groups("purge", &groups).await?;
            }
            cursor = next;
            if cursor == 0 {
                return Ok(());
            }
        }
    }
}

impl fmt::Debug for RedisStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RedisStore")
            .field("prefix", &self.inner.keys.prefix())
            .field("timeout", &self.inner.timeout)
            .field("errors", &self.errors())
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
            l2_errors: self.errors(),
        }
    }
}
