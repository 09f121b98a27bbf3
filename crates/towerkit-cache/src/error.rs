//! [`ConfigError`]: the crate's one error for configuration it cannot use.

/// A configuration value the cache cannot use, reported when the layer
/// ([`CacheLayerBuilder::build`](crate::CacheLayerBuilder::build)) or a store
/// ([`RedisStoreBuilder::connect`](crate::RedisStoreBuilder::connect)) is built.
/// Runtime failures of a store are [`StoreError`](crate::StoreError)s instead.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ConfigError {
    /// A setting that must be an HTTP token (letters, digits, ``!#$%&'*+-.^_`|~``) is not one:
    /// `cache_name` or `surrogate`.
    #[error("invalid `{setting}`: {value:?} is not an HTTP token")]
    InvalidToken {
        /// The setting's name.
        setting: &'static str,
        /// The value given.
        value: String,
    },
    /// `targeted_field` names `Cache-Control` or `CDN-Cache-Control`, which are not this
    /// cache's own to consume and remove.
    #[error("invalid `targeted_field`: {name} is not a field of this cache's own")]
    TargetedField {
        /// The name given.
        name: String,
    },
    /// A field name or value the setting cannot send: a `CdnHeadersLayer` value a CDN would
    /// ignore as invalid (`cdn_cache_control`, `surrogate_control`), or a `send_tags_as`
    /// field that HTTP or the cache gives a meaning of its own (`Cache-Control`, `Vary`, …).
    #[error("invalid `{setting}`: {value:?}")]
    InvalidField {
        /// The setting's name.
        setting: &'static str,
        /// The value given.
        value: String,
    },
    /// `refresh_ahead` is not a fraction strictly between 0 and 1.
    #[error("invalid `refresh_ahead`: {fraction} is not a fraction strictly between 0 and 1")]
    RefreshAhead {
        /// The fraction given.
        fraction: f64,
    },
    /// A Varnish node given to `VarnishPurger::builder` cannot be purged: not an
    /// `http://host[:port]` URL (`https` needs a TLS terminator, which purges do not go
    /// through; credentials in the URL are not sent). With the `varnish` feature.
    #[cfg(feature = "varnish")]
    #[error("invalid varnish node {node:?}: {reason}")]
    PurgeNode {
        /// The node as given.
        node: String,
        /// What is wrong with it.
        reason: &'static str,
    },
    /// No node was given to `VarnishPurger::builder`. With the `varnish` feature.
    #[cfg(feature = "varnish")]
    #[error("no varnish node given")]
    NoPurgeNodes,
    /// The URL (or a cluster node's) is not a valid Redis URL. With the `redis` feature.
    #[cfg(feature = "redis")]
    #[error("invalid redis url: {0}")]
    InvalidRedisUrl(#[source] redis::RedisError),
    /// No node was given (`RedisStore::cluster` with an empty list). With the `redis`
    /// feature.
    #[cfg(feature = "redis")]
    #[error("no redis node given")]
    NoRedisNodes,
    /// The cluster could not be reached to learn its topology (Redis Cluster only: a single
    /// server is connected lazily and may be down at start). With the `redis` feature.
    #[cfg(feature = "redis")]
    #[error("cannot connect to redis cluster: {0}")]
    RedisClusterUnreachable(#[source] redis::RedisError),
}

/// Checks that `value`, given for `setting`, is an HTTP token.
pub(crate) fn check_token(setting: &'static str, value: &str) -> Result<(), ConfigError> {
    if towerkit_http::is_token(value) {
        return Ok(());
    }
    Err(ConfigError::InvalidToken {
        setting,
        value: value.to_owned(),
    })
}
