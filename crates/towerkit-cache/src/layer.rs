//! [`CacheLayer`]: configuration and the state shared by every service it makes.

use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use http::{HeaderName, HeaderValue, request};
use tower_layer::Layer;

use crate::entry::Policy;
use crate::flight::Flights;
use crate::handle::CacheHandle;
use crate::key::KeyRules;
use crate::metrics::Outcome;
use crate::serve::Labels;
use crate::service::Cache;
use crate::store::Store;

/// The largest body stored by default: 8 MiB. Larger responses stream through unstored.
pub const DEFAULT_MAX_BODY: usize = 8 * 1024 * 1024;

/// How long a remote store operation may take on the request path by default (50 ms);
/// a slower one counts as a miss.
pub const DEFAULT_STORE_TIMEOUT: Duration = Duration::from_millis(50);

/// The default `Cache-Status` cache name.
pub const DEFAULT_CACHE_NAME: &str = "towerkit";

/// The default tag response header.
pub const DEFAULT_TAG_HEADER: HeaderName = HeaderName::from_static("cache-tag");

/// Decides which requests the cache may answer and store.
///
/// Implemented for `()` (every GET and HEAD; the default) and for closures over the request
/// head. A request the predicate rejects goes to the origin untouched and its response is
/// not stored (`Cache-Status: …; fwd=bypass`).
pub trait Predicate: Send + Sync + 'static {
    /// Whether the cache handles this request.
    fn should_cache(&self, request: &request::Parts) -> bool;
}

impl Predicate for () {
    fn should_cache(&self, _request: &request::Parts) -> bool {
        true
    }
}

impl<F> Predicate for F
where
    F: Fn(&request::Parts) -> bool + Send + Sync + 'static,
{
    fn should_cache(&self, request: &request::Parts) -> bool {
        self(request)
    }
}

/// A configuration value [`CacheLayer`] rejected.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ConfigError {
    /// A cache name or device token that is not an HTTP token (letters, digits, `!#$%&'*+-.^_`|~`).
    InvalidToken(String),
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ConfigError::InvalidToken(token) => write!(f, "{token:?} is not a valid HTTP token"),
        }
    }
}

impl std::error::Error for ConfigError {}

fn validate_token(token: &str) -> Result<(), ConfigError> {
    let valid = !token.is_empty()
        && token
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b));
    if valid {
        Ok(())
    } else {
        Err(ConfigError::InvalidToken(token.to_owned()))
    }
}

/// A [`Layer`] that caches responses (RFC 9111, shared cache). See the [crate docs](crate).
///
/// Cloning a layer shares its store, its request coalescing and its counters; builder
/// methods on a clone change only that clone's configuration, so one store can serve
/// routes configured differently (per-route TTLs, predicates).
#[derive(Clone)]
pub struct CacheLayer {
    pub(crate) shared: Arc<Shared>,
    pub(crate) config: Arc<Config>,
}

/// State shared by every clone of a layer and every service it made.
pub(crate) struct Shared {
    pub(crate) store: Arc<dyn Store>,
    pub(crate) flights: Arc<Flights>,
    pub(crate) counters: Counters,
}

impl fmt::Debug for Shared {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Shared")
            .field("store", &self.store)
            .field("flights", &self.flights)
            .finish()
    }
}

/// Request counts by outcome.
#[derive(Debug, Default)]
pub(crate) struct Counters {
    pub(crate) hits: AtomicU64,
    pub(crate) stale: AtomicU64,
    pub(crate) misses: AtomicU64,
    pub(crate) bypasses: AtomicU64,
    pub(crate) coalesced: AtomicU64,
}

impl Shared {
    /// Counts a request's outcome, here and in metrics.
    pub(crate) fn count(&self, outcome: Outcome, tier: &'static str) {
        let counter = match outcome {
            Outcome::Hit => &self.counters.hits,
            Outcome::Stale => &self.counters.stale,
            Outcome::Miss => &self.counters.misses,
            Outcome::Bypass => &self.counters.bypasses,
        };
        counter.fetch_add(1, Ordering::Relaxed);
        crate::metrics::request(outcome, tier);
    }
}

/// A layer's configuration.
#[derive(Clone)]
pub(crate) struct Config {
    pub(crate) policy: Policy,
    pub(crate) default_ttl: Option<Duration>,
    pub(crate) route_ttls: Vec<(String, Duration)>,
    pub(crate) key: KeyRules,
    pub(crate) predicate: Option<Arc<dyn Predicate>>,
    pub(crate) max_body: usize,
    pub(crate) store_timeout: Duration,
    pub(crate) coalesce: bool,
    pub(crate) coalesce_timeout: Duration,
    pub(crate) origin_timeout: Option<Duration>,
    pub(crate) name: Box<str>,
    pub(crate) x_cache: bool,
    /// `Cache-Status` values of fresh hits, by ttl, for `name`; shared by clones.
    pub(crate) hit_statuses: Arc<OnceLock<Box<[HeaderValue]>>>,
}

impl Config {
    pub(crate) fn labels(&self) -> Labels<'_> {
        Labels {
            name: &self.name,
            x_cache: self.x_cache,
            hits: &self.hit_statuses,
        }
    }

    /// The default TTL for a path: the longest matching route prefix, else the global one.
    pub(crate) fn ttl_for(&self, path: &str) -> Option<Duration> {
        let mut best: Option<(usize, Duration)> = None;
        for (prefix, ttl) in &self.route_ttls {
            let matches = path == prefix
                || (path.starts_with(prefix.as_str())
                    && (prefix.ends_with('/') || path.as_bytes().get(prefix.len()) == Some(&b'/')));
            if matches && best.is_none_or(|(len, _)| prefix.len() > len) {
                best = Some((prefix.len(), *ttl));
            }
        }
        best.map(|(_, ttl)| ttl).or(self.default_ttl)
    }
}

impl fmt::Debug for Config {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Config")
            .field("policy", &self.policy)
            .field("default_ttl", &self.default_ttl)
            .field("route_ttls", &self.route_ttls)
            .field("key", &self.key)
            .field("predicate", &self.predicate.is_some())
            .field("max_body", &self.max_body)
            .field("store_timeout", &self.store_timeout)
            .field("coalesce", &self.coalesce)
            .field("coalesce_timeout", &self.coalesce_timeout)
            .field("origin_timeout", &self.origin_timeout)
            .field("name", &self.name)
            .field("x_cache", &self.x_cache)
            .finish()
    }
}

impl fmt::Debug for CacheLayer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CacheLayer")
            .field("store", &self.shared.store)
            .field("config", &self.config)
            .finish()
    }
}

impl CacheLayer {
    /// A cache over `store` with the defaults: bodies up to 8 MiB stored, store calls time
    /// out after 50 ms, concurrent misses coalesced (followers wait up to 5 s), heuristic
    /// freshness on (10 % of the `Last-Modified` age, at most a day), stale entries kept 10
    /// minutes for revalidation, no grace period, no default TTL, tags from
    /// `Cache-Tag`, `Cache-Status` named `towerkit`, no `X-Cache`.
    pub fn new(store: impl Store) -> Self {
        Self::from_arc(Arc::new(store))
    }

    /// Like [`new`](Self::new), for a store already shared.
    pub fn from_arc(store: Arc<dyn Store>) -> Self {
        let shared = Arc::new(Shared {
            store,
            flights: Arc::new(Flights::default()),
            counters: Counters::default(),
        });
        let config = Arc::new(Config {
            policy: Policy {
                heuristic: true,
                heuristic_max: Duration::from_secs(86_400),
                tag_header: DEFAULT_TAG_HEADER,
                surrogate: None,
                keep_stale: Duration::from_secs(600),
                grace: Duration::ZERO,
            },
            default_ttl: None,
            route_ttls: Vec::new(),
            key: KeyRules::default(),
            predicate: None,
            max_body: DEFAULT_MAX_BODY,
            store_timeout: DEFAULT_STORE_TIMEOUT,
            coalesce: true,
            coalesce_timeout: Duration::from_secs(5),
            origin_timeout: None,
            name: DEFAULT_CACHE_NAME.into(),
            x_cache: false,
            hit_statuses: Arc::default(),
        });
        Self { shared, config }
    }

    /// A handle to invalidate entries and read counts from application code.
    pub fn handle(&self) -> CacheHandle {
        CacheHandle {
            shared: self.shared.clone(),
        }
    }

    fn config(&mut self) -> &mut Config {
        Arc::make_mut(&mut self.config)
    }

    /// The largest body stored, in bytes; a larger one streams to the client and is not
    /// stored. Default: [`DEFAULT_MAX_BODY`] (8 MiB).
    #[must_use]
    pub fn max_body(mut self, bytes: usize) -> Self {
        self.config().max_body = bytes;
        self
    }

    /// The lifetime of responses without explicit freshness (`Cache-Control: max-age`,
    /// `s-maxage`, `Expires`), instead of heuristics: "cache this for 60 s". Responses the
    /// RFC forbids storing (`no-store`, `private`, `Set-Cookie`, …) are still not stored.
    /// Default: none.
    #[must_use]
    pub fn default_ttl(mut self, ttl: Duration) -> Self {
        self.config().default_ttl = Some(ttl);
        self
    }

    /// A default TTL for paths under `prefix` (`/products` covers `/products` and
    /// `/products/42`, not `/productsx`); the longest matching prefix wins over
    /// [`default_ttl`](Self::default_ttl). Default: none.
    #[must_use]
    pub fn route_ttl(mut self, prefix: impl Into<String>, ttl: Duration) -> Self {
        self.config().route_ttls.push((prefix.into(), ttl));
        self
    }

    /// Adds a request header's value to the cache key (a tenant id, an API version), so
    /// that requests differing in it never share entries. Default: none.
    #[must_use]
    pub fn key_header(mut self, name: HeaderName) -> Self {
        self.config().key.headers.push(name);
        self
    }

    /// Leaves a query parameter out of the cache key (`utm_source`; `utm_*` for every
    /// parameter starting with `utm_`). The full query is still sent to the origin.
    /// Default: none; the whole query is part of the key.
    #[must_use]
    pub fn ignore_query_param(mut self, name: impl Into<String>) -> Self {
        self.config().key.ignored_params.push(name.into());
        self
    }

    /// Puts the request's host (URI authority or `Host`) in the cache key, for services
    /// answering several hosts. Default: off.
    #[must_use]
    pub fn key_host(mut self, on: bool) -> Self {
        self.config().key.host = on;
        self
    }

    /// Which requests the cache handles; others bypass it. Default: every GET and HEAD.
    #[must_use]
    pub fn predicate(mut self, predicate: impl Predicate) -> Self {
        self.config().predicate = Some(Arc::new(predicate));
        self
    }

    /// The response header listing an entry's tags (comma- or space-separated), removed
    /// before the client sees the response. Default: [`DEFAULT_TAG_HEADER`] (`Cache-Tag`).
    #[must_use]
    pub fn tag_header(mut self, name: HeaderName) -> Self {
        self.config().policy.tag_header = name;
        self
    }

    /// The cache's name in `Cache-Status` (RFC 9211). Default: `towerkit`. Fails unless
    /// `name` is an HTTP token.
    pub fn cache_name(mut self, name: &str) -> Result<Self, ConfigError> {
        validate_token(name)?;
        let config = self.config();
        config.name = name.into();
        config.hit_statuses = Arc::default();
        Ok(self)
    }

    /// Also send `X-Cache: HIT|MISS|STALE|BYPASS`. Default: off.
    #[must_use]
    pub fn x_cache(mut self, on: bool) -> Self {
        self.config().x_cache = on;
        self
    }

    /// Whether concurrent misses for one key make a single origin call. Default: on.
    #[must_use]
    pub fn coalesce(mut self, on: bool) -> Self {
        self.config().coalesce = on;
        self
    }

    /// How long a coalesced request waits for the origin call it joined before making its
    /// own. Default: 5 s.
    #[must_use]
    pub fn coalesce_timeout(mut self, timeout: Duration) -> Self {
        self.config().coalesce_timeout = timeout;
        self
    }

    /// How long a store operation may take on the request path; a slower lookup counts as
    /// a miss. Default: [`DEFAULT_STORE_TIMEOUT`] (50 ms).
    #[must_use]
    pub fn store_timeout(mut self, timeout: Duration) -> Self {
        self.config().store_timeout = timeout;
        self
    }

    /// How long past freshness a stored response may still be served when the origin fails
    /// (error, 5xx, or [`origin_timeout`](Self::origin_timeout)), on top of what
    /// `stale-if-error` allows. Responses with `must-revalidate`, `proxy-revalidate`,
    /// `s-maxage` or `no-cache` are never served stale. Default: zero.
    #[must_use]
    pub fn grace(mut self, grace: Duration) -> Self {
        self.config().policy.grace = grace;
        self
    }

    /// When a stale response may be served on error and the origin takes longer than
    /// this, serve it instead of waiting. Default: none (wait for the origin).
    #[must_use]
    pub fn origin_timeout(mut self, timeout: Duration) -> Self {
        self.config().origin_timeout = Some(timeout);
        self
    }

    /// How long past freshness an entry is kept, so that it can be revalidated with a
    /// conditional request (when it has `ETag` or `Last-Modified`), answer `max-stale`
    /// requests, or be served within [`grace`](Self::grace). Stale windows the response
    /// asks for (`stale-while-revalidate`, `stale-if-error`) extend it. Default: 10 minutes.
    #[must_use]
    pub fn keep_stale(mut self, keep: Duration) -> Self {
        self.config().policy.keep_stale = keep;
        self
    }

    /// Whether responses without explicit freshness but with `Last-Modified` are cached for
    /// 10 % of their age (RFC 9111 §4.2.2). Default: on.
    #[must_use]
    pub fn heuristic(mut self, on: bool) -> Self {
        self.config().policy.heuristic = on;
        self
    }

    /// The longest heuristic lifetime. Default: one day.
    #[must_use]
    pub fn heuristic_max(mut self, max: Duration) -> Self {
        self.config().policy.heuristic_max = max;
        self
    }

    /// Act as a surrogate (Edge Architecture 1.0) named `token`: advertise
    /// `Surrogate-Capability: token="Surrogate/1.0"` to the origin, let `Surrogate-Control`
    /// directives aimed at this cache (untargeted, or `;token`) take precedence over
    /// `Cache-Control`, and remove `Surrogate-Control` from responses. Default: off. Fails
    /// unless `token` is an HTTP token.
    pub fn surrogate(mut self, token: &str) -> Result<Self, ConfigError> {
        validate_token(token)?;
        self.config().policy.surrogate = Some(token.into());
        Ok(self)
    }
}

impl<S> Layer<S> for CacheLayer {
    type Service = Cache<S>;

    fn layer(&self, inner: S) -> Cache<S> {
        Cache {
            inner,
            layer: Arc::new(self.clone()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::MemoryStore;

    #[test]
    fn route_ttls_match_whole_segments_and_the_longest_prefix_wins() {
        let layer = CacheLayer::new(MemoryStore::new(1024))
            .default_ttl(Duration::from_secs(1))
            .route_ttl("/products", Duration::from_secs(60))
            .route_ttl("/products/featured", Duration::from_secs(5));
        let config = &layer.config;
        assert_eq!(config.ttl_for("/products"), Some(Duration::from_secs(60)));
        assert_eq!(
            config.ttl_for("/products/42"),
            Some(Duration::from_secs(60))
        );
        assert_eq!(
            config.ttl_for("/products/featured/1"),
            Some(Duration::from_secs(5))
        );
        assert_eq!(config.ttl_for("/productsx"), Some(Duration::from_secs(1)));
    }

    #[test]
    fn invalid_tokens_are_rejected_at_build_time() {
        let layer = CacheLayer::new(MemoryStore::new(1024));
        assert_eq!(
            layer.clone().cache_name("my cache").unwrap_err(),
            ConfigError::InvalidToken("my cache".into())
        );
        assert!(layer.clone().surrogate("").is_err());
        assert!(layer.surrogate("edge-1").is_ok());
    }

    #[test]
    fn clones_share_the_store_but_not_the_configuration() {
        let layer = CacheLayer::new(MemoryStore::new(1024));
        let routed = layer.clone().default_ttl(Duration::from_secs(9));
        assert!(Arc::ptr_eq(&layer.shared, &routed.shared));
        assert_eq!(layer.config.default_ttl, None);
        assert_eq!(routed.config.default_ttl, Some(Duration::from_secs(9)));
    }
}
