//! [`RedisStoreBuilder`]: the store's settings, and connecting.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use redis::RedisError;
use redis::aio::{ConnectionManager, ConnectionManagerConfig};

use super::conn::{Clients, Conn, address_of};
use super::health::Node;
use super::keys::Keys;
use super::pubsub::Subscription;
use super::{Inner, Nodes, RedisStore};
use crate::error::ConfigError;

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

    /// A builder for a store on the Redis Cluster reachable through `nodes` (URLs of any of
    /// its nodes, primaries or replicas: the store discovers the others in the slot map, and
    /// reads the slot map through whichever answers). Their settings (TLS, user, password)
    /// apply to every node.
    ///
    /// Available with the `redis-cluster` feature.
    ///
    /// ```no_run
    /// # async fn run() -> Result<(), Box<dyn std::error::Error>> {
    /// let store = towerkit_cache::RedisStore::cluster([
    ///     "redis://10.0.0.1:6379",
    ///     "redis://10.0.0.2:6379",
    ///     "redis://10.0.0.3:6379",
    /// ])
    /// .prefix("catalog:cache:")
    /// .connect()
    /// .await?;
    /// for node in store.nodes() {
    ///     println!("{} primary={} slots={:?} available={} errors={}",
    ///         node.address, node.primary, node.slots, node.available, node.errors);
    /// }
    /// # Ok(())
    /// # }
    /// ```
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
}

/// Builds a [`RedisStore`]. `Debug` shows the node URLs without their passwords.
///
/// Available with the `redis` feature (on by default).
#[derive(Clone)]
pub struct RedisStoreBuilder {
    pub(super) nodes: Vec<String>,
    pub(super) cluster: bool,
    pub(super) prefix: String,
    pub(super) timeout: Duration,
    pub(super) min_backoff: Duration,
    pub(super) max_backoff: Duration,
    /// A private CA's root certificate (PEM) for `rediss://` connections.
    #[cfg(feature = "redis-tls")]
    pub(super) root_certificate: Option<Vec<u8>>,
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
    /// Available with the `redis-tls` feature.
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
    pub(super) fn certificates(&self, root: &[u8]) -> redis::TlsCertificates {
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
        // One client per node given, for the subscription (which goes round them).
        let given = self
            .nodes
            .iter()
            .map(|node| self.client(node))
            .collect::<Result<Vec<_>, _>>()
            .map_err(ConfigError::InvalidRedisUrl)?;
        let first = given.first().cloned().ok_or(ConfigError::NoRedisNodes)?;
        let clients = Arc::new(Clients::new(given));
        let (conn, nodes) = if self.cluster {
            self.connect_cluster(&clients).await?
        } else {
            let config = ConnectionManagerConfig::new()
                .set_connection_timeout(Some(Duration::from_millis(500)))
                .set_response_timeout(Some(Duration::from_secs(2)))
                .set_number_of_retries(3)
                .set_max_delay(Duration::from_secs(2));
            let node = Node::new(address_of(&first), self.min_backoff, self.max_backoff);
            let manager = ConnectionManager::new_lazy_with_config(first, config)
                .map_err(ConfigError::InvalidRedisUrl)?;
            (Conn::Single(manager), Nodes::Single(Arc::new(node)))
        };
        // Open the connection now, briefly: the first requests then do not spend their store
        // timeout on a TCP handshake. A Redis that is down only delays start-up by this bound.
        let ping = redis::cmd("PING").to_owned();
        let _ = tokio::time::timeout(WARM_UP, conn.query::<String>("", &ping)).await;
        let keys = Keys::new(self.prefix);
        let subscription =
            Subscription::start(clients, keys.invalidation_channel(), keys.lease_channel());
        let inner = Inner {
            conn,
            keys,
            timeout: self.timeout,
            nodes,
            subscription,
        };
        Ok(RedisStore {
            inner: Arc::new(inner),
        })
    }
}

impl RedisStoreBuilder {
    /// The cluster's connections (one per node, opened as needed) and slot map (with each
    /// node's health), read now (waiting at most [`WARM_UP`]) and then kept current in the
    /// background. A cluster that cannot be reached yet is not an error: its slots cost
    /// misses until it is.
    #[cfg(feature = "redis-cluster")]
    async fn connect_cluster(&self, clients: &Arc<Clients>) -> Result<(Conn, Nodes), ConfigError> {
        use super::router::Router;
        use super::topology::Topology;

        let topology = Arc::new(Topology::new(
            clients.clone(),
            self.min_backoff,
            self.max_backoff,
        ));
        let router = Arc::new(Router::new(topology.clone(), clients.clone()));
        let weak = Arc::downgrade(&router);
        topology.on_change(Box::new(move |primaries| {
            if let Some(router) = weak.upgrade() {
                router.warm(primaries);
            }
        }));
        topology.watch(WARM_UP).await;
        if topology.primaries().is_empty() {
            topology.warn_unreachable();
        }
        Ok((Conn::Cluster(router), Nodes::Cluster(topology)))
    }

    #[cfg(not(feature = "redis-cluster"))]
    async fn connect_cluster(&self, clients: &Arc<Clients>) -> Result<(Conn, Nodes), ConfigError> {
        // `RedisStore::cluster` only exists with the feature.
        let _ = clients;
        Err(ConfigError::RedisClusterUnreachable(RedisError::from((
            redis::ErrorKind::Client,
            "redis-cluster feature disabled",
        ))))
    }
}

/// How long [`RedisStoreBuilder::connect`] waits for the connection to open.
const WARM_UP: Duration = Duration::from_millis(500);
