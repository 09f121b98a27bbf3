//! The Redis store: entries shared by every instance of a service.

use std::fmt;
use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use bytes::Bytes;
use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use redis::{Cmd, FromRedisValue, Pipeline, RedisError, Value};

use super::contract::{
    Lookup, MAX_VARIANTS, Store, StoreError, StoreFuture, StoreStats, Tier, Variants,
};
use crate::entry::Entry;
use crate::error::ConfigError;
use crate::freshness::now_ms;
use crate::metrics;

/// Entries in Redis, shared by every instance of a service.
///
/// - One Redis hash per key (`{prefix}e:{key}`), one field per variant, each holding the
///   entry in the compact binary form of [`Entry::encode`]; the hash expires with its
///   longest-lived variant. Tags are Redis sets (`{prefix}t:{tag}`) of keys, expiring with
///   their longest-lived member.
/// - The connection is a multiplexed, auto-reconnecting [`ConnectionManager`] (or a Redis
///   Cluster connection with the `redis-cluster` feature).
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
    prefix: String,
    timeout: Duration,
    health: Health,
    /// A plain client for pub/sub (tiered stores subscribe through it).
    pub(crate) pubsub_client: Option<redis::Client>,
}

#[derive(Clone)]
enum Conn {
    Single(ConnectionManager),
    /// Set once the cluster's topology is known; until then operations fail (as misses)
    /// while a background task keeps trying.
    #[cfg(feature = "redis-cluster")]
    Cluster(Arc<std::sync::OnceLock<redis::cluster_async::ClusterConnection>>),
}

#[cfg(feature = "redis-cluster")]
fn cluster_not_connected() -> RedisError {
    RedisError::from((
        redis::ErrorKind::Io,
        "redis cluster not reached yet (reconnecting in the background)",
    ))
}

impl Conn {
    async fn query<T: FromRedisValue>(&self, cmd: &Cmd) -> Result<T, RedisError> {
        match self {
            Conn::Single(conn) => cmd.query_async(&mut conn.clone()).await,
            #[cfg(feature = "redis-cluster")]
            Conn::Cluster(slot) => {
                let mut conn = slot.get().ok_or_else(cluster_not_connected)?.clone();
                cmd.query_async(&mut conn).await
            }
        }
    }

    async fn pipe<T: FromRedisValue>(&self, pipe: &Pipeline) -> Result<T, RedisError> {
        match self {
            Conn::Single(conn) => pipe.query_async(&mut conn.clone()).await,
            #[cfg(feature = "redis-cluster")]
            Conn::Cluster(slot) => {
                let mut conn = slot.get().ok_or_else(cluster_not_connected)?.clone();
                pipe.query_async(&mut conn).await
            }
        }
    }

    /// Runs groups of commands, each group touching a single key: as one pipeline (one
    /// round trip) on a server; as one pipeline per group, concurrently, on a cluster,
    /// where a pipeline must stay within one hash slot. Returns the wanted replies in order.
    async fn batch(&self, groups: Vec<Group>) -> Result<Vec<Value>, RedisError> {
        fn pipeline(commands: impl Iterator<Item = (Cmd, bool)>) -> Pipeline {
            let mut pipe = redis::pipe();
            for (cmd, wanted) in commands {
                pipe.add_command(cmd);
                if !wanted {
                    pipe.ignore();
                }
            }
            pipe
        }
        match self {
            Conn::Single(_) => self.pipe(&pipeline(groups.into_iter().flatten())).await,
            #[cfg(feature = "redis-cluster")]
            Conn::Cluster(_) => {
                let pipes: Vec<Pipeline> = groups
                    .into_iter()
                    .map(|group| pipeline(group.into_iter()))
                    .collect();
                let replies = futures_util::future::try_join_all(
                    pipes.iter().map(|pipe| self.pipe::<Vec<Value>>(pipe)),
                )
                .await?;
                Ok(replies.into_iter().flatten().collect())
            }
        }
    }
}

/// Commands on one key, each with whether its reply is wanted.
type Group = Vec<(Cmd, bool)>;

/// The commands setting a key's expiry to `ttl` if it has none, or extending it if `ttl`
/// is longer.
fn expire(group: &mut Group, key: &str, ttl: u64) {
    group.push((
        redis::cmd("PEXPIRE").arg(key).arg(ttl).arg("NX").to_owned(),
        false,
    ));
    group.push((
        redis::cmd("PEXPIRE").arg(key).arg(ttl).arg("GT").to_owned(),
        false,
    ));
}

/// Whether Redis is believed up, and the backoff while it is not.
struct Health {
    down_until: AtomicU64,
    failures: AtomicU32,
    warned: AtomicBool,
    errors: AtomicU64,
    min_backoff: Duration,
    max_backoff: Duration,
}

impl Health {
    fn available(&self, now: u64) -> bool {
        now >= self.down_until.load(Ordering::Relaxed)
    }

    fn failed(&self, operation: &'static str, error: &StoreError) {
        metrics::redis_error(operation);
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
            tracing::warn!(%error, "redis cache store unavailable: serving from memory or the origin until it recovers");
        }
    }

    fn succeeded(&self) {
        if self.failures.swap(0, Ordering::Relaxed) > 0 {
            self.down_until.store(0, Ordering::Relaxed);
            if self.warned.swap(false, Ordering::Relaxed) {
                tracing::info!("redis cache store recovered");
            }
        }
    }
}

/// Builds a [`RedisStore`]. `Debug` shows the node URLs without their passwords.
#[derive(Clone)]
pub struct RedisStoreBuilder {
    nodes: Vec<String>,
    cluster: bool,
    prefix: String,
    timeout: Duration,
    min_backoff: Duration,
    max_backoff: Duration,
    /// A private CA's root certificate (PEM) for `rediss://` connections.
    #[cfg(feature = "redis-tls")]
    root_certificate: Option<Vec<u8>>,
}

impl fmt::Debug for RedisStoreBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        /// A node URL with its passwords replaced by `***`: the userinfo's
        /// (`redis://user:***@host`; the last `@` ends it, since a password may contain one)
        /// and a `redis+unix` socket's `pass=` parameter.
        fn redacted(url: &str) -> String {
            let Some((scheme, rest)) = url.split_once("://") else {
                return "<not a URL, not shown>".to_owned();
            };
            let mut shown = match rest.rsplit_once('@') {
                Some((userinfo, host)) => {
                    let user = userinfo.split_once(':').map_or(userinfo, |(user, _)| user);
                    let password = if userinfo.contains(':') { ":***" } else { "" };
                    format!("{scheme}://{user}{password}@{host}")
                }
                None => url.to_owned(),
            };
            if let Some((location, query)) = shown.split_once('?') {
                let query: Vec<String> = query
                    .split('&')
                    .map(|pair| match pair.split_once('=') {
                        Some((name, _)) if name == "pass" || name.contains("password") => {
                            format!("{name}=***")
                        }
                        _ => pair.to_owned(),
                    })
                    .collect();
                shown = format!("{location}?{}", query.join("&"));
            }
            shown
        }
        let nodes: Vec<String> = self.nodes.iter().map(|n| redacted(n)).collect();
        let mut debug = f.debug_struct("RedisStoreBuilder");
        debug
            .field("nodes", &nodes)
            .field("cluster", &self.cluster)
            .field("prefix", &self.prefix)
            .field("timeout", &self.timeout)
            .field("min_backoff", &self.min_backoff)
            .field("max_backoff", &self.max_backoff);
        #[cfg(feature = "redis-tls")]
        debug.field("tls_root_certificate", &self.root_certificate.is_some());
        debug.finish()
    }
}

impl RedisStoreBuilder {
    /// Prefix of every key the store writes. Default: `towerkit:cache:`. Use one prefix per
    /// application (and per test) so that purges stay within it.
    #[must_use]
    pub fn prefix(mut self, prefix: impl Into<String>) -> Self {
        self.prefix = prefix.into();
        self
    }

    /// How long one operation may take before it counts as failed. Default: 50 ms.
    #[must_use]
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// The first and longest pause after failures, during which operations fail at once.
    /// Default: 100 ms, doubling up to 10 s.
    #[must_use]
    pub fn backoff(mut self, min: Duration, max: Duration) -> Self {
        self.min_backoff = min;
        self.max_backoff = max.max(min);
        self
    }

    /// Trusts this root certificate (PEM; a private CA's) instead of the system's roots for
    /// `rediss://` connections, the cluster's and pub/sub's included. The URL must use
    /// `rediss://`; an ACL user and password go in it (`rediss://user:password@host:6380`).
    ///
    /// ```no_run
    /// # async fn run() -> Result<(), Box<dyn std::error::Error>> {
    /// let ca = std::fs::read("/etc/redis/ca.crt")?;
    /// let store = towerkit_cache::RedisStore::builder("rediss://cache:secret@redis.internal:6380")
    ///     .tls_root_certificate(ca)
    ///     .connect()
    ///     .await?;
    /// # let _ = store;
    /// # Ok(())
    /// # }
    /// ```
    #[cfg(feature = "redis-tls")]
    #[must_use]
    pub fn tls_root_certificate(mut self, pem: impl Into<Vec<u8>>) -> Self {
        self.root_certificate = Some(pem.into());
        self
    }

    /// The client for one URL: with the configured root certificate over TLS.
    fn client(&self, url: &str) -> Result<redis::Client, RedisError> {
        #[cfg(feature = "redis-tls")]
        if let Some(root) = &self.root_certificate {
            return redis::Client::build_with_tls(url, self.certificates(root));
        }
        redis::Client::open(url)
    }

    #[cfg(feature = "redis-tls")]
    fn certificates(&self, root: &[u8]) -> redis::TlsCertificates {
        redis::TlsCertificates {
            client_tls: None,
            root_cert: Some(root.to_vec()),
        }
    }

    /// Creates the store. A single server is connected now if it answers within half a
    /// second, a cluster asked for its topology; otherwise this still succeeds, and the
    /// store keeps reconnecting in the background (operations fail, as misses, until Redis
    /// is up). A TLS failure (an unknown CA, a refused handshake) is such a failure: logged
    /// (without the password), counted, and served as misses, for a server and a cluster
    /// alike. Only an invalid URL (or a `rediss://` URL without the `redis-tls` feature) is
    /// an error. Must run inside a Tokio runtime.
    pub async fn connect(self) -> Result<RedisStore, ConfigError> {
        #[cfg(feature = "redis-tls")]
        if rustls::crypto::CryptoProvider::get_default().is_none() {
            // The redis crate builds its TLS configuration from rustls' process default
            // provider (it takes no provider of its own), which would panic if a binary linked
            // two; choose ring (the only one this crate enables, as towerkit-db) unless the
            // application chose first. rustls 0.23.48 deprecates ring's provider for lacking
            // post-quantum key exchange; ring builds without cmake and keeps one provider.
            #[allow(deprecated)]
            let ring = rustls::crypto::ring::default_provider();
            let _ = ring.install_default();
        }
        let first = self.nodes.first().cloned().unwrap_or_default();
        let pubsub_client = self
            .client(first.as_str())
            .map_err(ConfigError::InvalidRedisUrl)?;
        let conn = if self.cluster {
            connect_cluster(&self).await?
        } else {
            let config = ConnectionManagerConfig::new()
                .set_connection_timeout(Some(Duration::from_millis(500)))
                .set_response_timeout(Some(Duration::from_secs(2)))
                .set_number_of_retries(3)
                .set_max_delay(Duration::from_secs(2));
            let manager = ConnectionManager::new_lazy_with_config(pubsub_client.clone(), config)
                .map_err(ConfigError::InvalidRedisUrl)?;
            Conn::Single(manager)
        };
        let health = Health {
            down_until: AtomicU64::new(0),
            failures: AtomicU32::new(0),
            warned: AtomicBool::new(false),
            errors: AtomicU64::new(0),
            min_backoff: self.min_backoff,
            max_backoff: self.max_backoff,
        };
        // Open the connection now, briefly: the first requests then do not spend their store
        // timeout on a TCP handshake. A Redis that is down only delays start-up by this bound.
        let ping = redis::cmd("PING").to_owned();
        let _ = tokio::time::timeout(WARM_UP, conn.query::<String>(&ping)).await;
        let inner = Inner {
            conn,
            prefix: self.prefix,
            timeout: self.timeout,
            health,
            pubsub_client: Some(pubsub_client),
        };
        Ok(RedisStore {
            inner: Arc::new(inner),
        })
    }
}

/// How long [`RedisStoreBuilder::connect`] waits for the connection to open.
const WARM_UP: Duration = Duration::from_millis(500);

#[cfg(feature = "redis-cluster")]
async fn connect_cluster(builder: &RedisStoreBuilder) -> Result<Conn, ConfigError> {
    let nodes = builder.nodes.iter().map(String::as_str);
    #[cfg_attr(not(feature = "redis-tls"), allow(unused_mut))]
    let mut client = redis::cluster::ClusterClient::builder(nodes);
    #[cfg(feature = "redis-tls")]
    if let Some(root) = &builder.root_certificate {
        client = client.certs(builder.certificates(root));
    }
    let client = client.build().map_err(ConfigError::InvalidRedisUrl)?;
    let slot = Arc::new(std::sync::OnceLock::new());
    match client.get_async_connection().await {
        Ok(conn) => {
            let _ = slot.set(conn);
        }
        Err(error) => {
            tracing::warn!(%error, "redis cluster unreachable: serving from memory or the origin until it is reached");
            let weak = Arc::downgrade(&slot);
            let (min, max) = (builder.min_backoff, builder.max_backoff);
            tokio::spawn(async move {
                let mut pause = min;
                loop {
                    tokio::time::sleep(pause).await;
                    let Some(slot) = weak.upgrade() else { return };
                    if let Ok(conn) = client.get_async_connection().await {
                        let _ = slot.set(conn);
                        tracing::info!("redis cluster reached");
                        return;
                    }
                    pause = pause.saturating_mul(2).min(max);
                }
            });
        }
    }
    Ok(Conn::Cluster(slot))
}

#[cfg(not(feature = "redis-cluster"))]
async fn connect_cluster(_builder: &RedisStoreBuilder) -> Result<Conn, ConfigError> {
    // `RedisStore::cluster` only exists with the feature.
    Err(ConfigError::RedisClusterUnreachable(RedisError::from((
        redis::ErrorKind::Client,
        "redis-cluster feature disabled",
    ))))
}

impl RedisStore {
    /// A builder for a store on the Redis server at `url` (`redis://host:port/db`).
    pub fn builder(url: impl Into<String>) -> RedisStoreBuilder {
        RedisStoreBuilder {
            nodes: vec![url.into()],
            cluster: false,
            prefix: "towerkit:cache:".to_owned(),
            timeout: Duration::from_millis(50),
            min_backoff: Duration::from_millis(100),
            max_backoff: Duration::from_secs(10),
            #[cfg(feature = "redis-tls")]
            root_certificate: None,
        }
    }

    /// A builder for a store on the Redis Cluster reachable through `nodes`.
    #[cfg(feature = "redis-cluster")]
    pub fn cluster<I, U>(nodes: I) -> RedisStoreBuilder
    where
        I: IntoIterator<Item = U>,
        U: Into<String>,
    {
        let mut builder = Self::builder(String::new());
        builder.nodes = nodes.into_iter().map(Into::into).collect();
        builder.cluster = true;
        builder
    }

    /// The key prefix.
    pub fn prefix(&self) -> &str {
        &self.inner.prefix
    }

    pub(crate) fn entry_key(&self, key: &str) -> String {
        format!("{}e:{key}", self.inner.prefix)
    }

    pub(crate) fn tag_key(&self, tag: &str) -> String {
        format!("{}t:{tag}", self.inner.prefix)
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
        let redis_key = self.entry_key(&key);
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
        let redis_key = self.entry_key(&key);
        let mut entry_group: Group = vec![(
            redis::cmd("HSET")
                .arg(&redis_key)
                .arg(entry.variant.as_bytes())
                .arg(entry.encode().as_ref())
                .to_owned(),
            false,
        )];
        expire(&mut entry_group, &redis_key, ttl);
        entry_group.push((redis::cmd("HLEN").arg(&redis_key).to_owned(), true));
        let mut groups = vec![entry_group];
        for tag in entry.tags.iter() {
            let tag_key = self.tag_key(tag);
            let mut group: Group =
                vec![(redis::cmd("SADD").arg(&tag_key).arg(&key).to_owned(), false)];
            expire(&mut group, &tag_key, ttl);
            groups.push(group);
        }
        let replies = self.run("put", self.inner.conn.batch(groups)).await?;
        let variants = replies
            .into_iter()
            .next()
            .and_then(|reply| redis::from_redis_value::<usize>(reply).ok())
            .unwrap_or(0);
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
        let cmd = redis::cmd("DEL").arg(self.entry_key(&key)).to_owned();
        self.run("delete", self.inner.conn.query::<i64>(&cmd))
            .await
            .map(drop)
    }

    async fn remove_tagged(self, tag: String) -> Result<u64, StoreError> {
        let tag_key = self.tag_key(&tag);
        let cmd = redis::cmd("SMEMBERS").arg(&tag_key).to_owned();
        let keys: Vec<String> = self
            .run("invalidate_tag", self.inner.conn.query(&cmd))
            .await?;
        let mut groups: Vec<Group> = keys
            .iter()
            .map(|key| vec![(redis::cmd("DEL").arg(self.entry_key(key)).to_owned(), true)])
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
        let pattern = format!("{}*", escape_glob(&self.inner.prefix));
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

/// Escapes the glob characters of a Redis `MATCH` pattern.
fn escape_glob(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        if matches!(c, '*' | '?' | '[' | ']' | '\\') {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

impl fmt::Debug for RedisStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RedisStore")
            .field("prefix", &self.inner.prefix)
            .field("timeout", &self.inner.timeout)
            .field("errors", &self.inner.health.errors.load(Ordering::Relaxed))
            .finish()
    }
}

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

    fn stats(&self) -> StoreStats {
        StoreStats {
            l1_entries: 0,
            l1_bytes: 0,
            l2_errors: self.inner.health.errors.load(Ordering::Relaxed),
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
        health.failed("get", &StoreError::Timeout);
        assert!(!health.available(now + 9_000));
        assert!(health.available(now + 11_000));
        health.failed("get", &StoreError::Timeout);
        assert!(!health.available(now + 19_000));
        health.failed("get", &StoreError::Timeout);
        health.failed("get", &StoreError::Timeout);
        assert!(health.available(now + 41_000), "capped at the maximum");
        assert_eq!(health.errors.load(Ordering::Relaxed), 4);
        health.succeeded();
        assert!(health.available(now));
        assert!(!health.warned.load(Ordering::Relaxed));
    }

    #[test]
    fn glob_characters_in_prefixes_are_escaped() {
        assert_eq!(escape_glob("app:[x]*?\\"), "app:\\[x\\]\\*\\?\\\\");
    }
}
