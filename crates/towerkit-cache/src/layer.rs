//! [`CacheLayer`] and its [`CacheLayerBuilder`]: configuring the cache.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use http::{HeaderName, StatusCode};
use tower_layer::Layer;

use crate::config::Config;
use crate::error::{ConfigError, check_token};
use crate::handle::CacheHandle;
use crate::hook::InvalidationHook;
use crate::predicate::Predicate;
use crate::service::Cache;
use crate::store::Store;

/// A [`Layer`] that caches responses (RFC 9111, shared cache). See the [crate docs](crate).
///
/// [`new`](Self::new) gives the defaults; [`builder`](Self::builder) configures. Cloning a
/// layer shares its store, its request coalescing and its counters;
/// [`to_builder`](Self::to_builder) configures a copy over the same store, so that one store
/// can serve routes configured differently (per-route TTLs, predicates).
#[derive(Clone)]
pub struct CacheLayer {
    config: Arc<Config>,
}

impl fmt::Debug for CacheLayer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CacheLayer")
            .field("config", &self.config)
            .finish()
    }
}

impl CacheLayer {
    /// A cache over `store` with the defaults: bodies up to 8 MiB stored, store calls time
    /// out after 50 ms, concurrent misses coalesced (followers wait up to 5 s), heuristic
    /// freshness on (10 % of the `Last-Modified` age, at most a day), stale entries kept 10
    /// minutes for revalidation, no grace period, no default TTL, tags from
    /// `Cache-Tag`, `Cache-Status` named `towerkit`, no `X-Cache`. The same as
    /// `CacheLayer::builder(store).build()`, which cannot fail with the defaults.
    pub fn new(store: impl Store) -> Self {
        Self {
            config: Arc::new(Config::new(Arc::new(store))),
        }
    }

    /// A builder for a cache over `store`, starting from the defaults of [`new`](Self::new).
    pub fn builder(store: impl Store) -> CacheLayerBuilder {
        CacheLayerBuilder {
            config: Config::new(Arc::new(store)),
            error: None,
        }
    }

    /// A builder starting from this layer's configuration, over the same store, request
    /// coalescing and counters: the layer it builds shares them with this one, while its
    /// configuration is its own.
    pub fn to_builder(&self) -> CacheLayerBuilder {
        CacheLayerBuilder {
            config: Config::clone(&self.config),
            error: None,
        }
    }

    /// A handle to invalidate entries and read counts from application code.
    pub fn handle(&self) -> CacheHandle {
        CacheHandle {
            shared: self.config.shared.clone(),
            hooks: self.config.hooks.clone(),
        }
    }
}

/// The shortest lease a layer takes.
const MIN_LEASE_TTL: Duration = Duration::from_millis(10);

impl<S> Layer<S> for CacheLayer {
    type Service = Cache<S>;

    fn layer(&self, inner: S) -> Cache<S> {
        Cache {
            inner,
            config: self.config.clone(),
        }
    }
}

/// Configures a [`CacheLayer`]: infallible setters, checked together by
/// [`build`](Self::build).
///
/// ```
/// use std::time::Duration;
///
/// use towerkit_cache::{CacheLayer, MemoryStore};
///
/// let layer = CacheLayer::builder(MemoryStore::new(64 * 1024 * 1024))
///     .default_ttl(Duration::from_secs(60))
///     .cache_name("edge")
///     .build()
///     .expect("valid cache configuration");
/// # let _ = layer;
/// assert!(CacheLayer::builder(MemoryStore::new(1024)).cache_name("my cache").build().is_err());
/// ```
pub struct CacheLayerBuilder {
    config: Config,
    /// The first setting the setters rejected, reported by `build`.
    error: Option<ConfigError>,
}

impl fmt::Debug for CacheLayerBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CacheLayerBuilder")
            .field("config", &self.config)
            .field("error", &self.error)
            .finish()
    }
}

impl CacheLayerBuilder {
    /// The layer, or the first setting it cannot use.
    pub fn build(self) -> Result<CacheLayer, ConfigError> {
        if let Some(error) = self.error {
            return Err(error);
        }
        let mut config = self.config;
        // A lease outliving the wait for it would only delay the next instance.
        config.lease_ttl = config
            .lease_ttl
            .min(config.coalesce_timeout)
            .max(MIN_LEASE_TTL);
        Ok(CacheLayer {
            config: Arc::new(config),
        })
    }

    /// The largest body stored, in bytes; a larger one streams to the client and is not
    /// stored. Default: 8 MiB.
    #[must_use]
    pub fn max_body(mut self, bytes: usize) -> Self {
        self.config.max_body = bytes;
        self
    }

    /// The lifetime of responses without explicit freshness (`Cache-Control: max-age`,
    /// `s-maxage`, `Expires`), instead of heuristics: "cache this for 60 s". It applies to
    /// the statuses of [`default_ttl_statuses`](Self::default_ttl_statuses) only (`200`,
    /// `203`, `204`, `300`, `301`, `308` by default): an error without `Cache-Control` is
    /// not stored for it, and a server error (5xx) is stored only when the response itself
    /// gives a lifetime (`max-age`, `s-maxage`, `Expires`). Responses the RFC forbids
    /// storing (`no-store`, `private`, `Set-Cookie`, …) are still not stored.
    /// Default: none.
    #[must_use]
    pub fn default_ttl(mut self, ttl: Duration) -> Self {
        self.config.default_ttl = Some(ttl);
        self
    }

    /// The statuses [`default_ttl`](Self::default_ttl) and [`route_ttl`](Self::route_ttl)
    /// apply to; a response with another status and no explicit freshness is judged by the
    /// RFC alone (heuristics from `Last-Modified`, validators). Server errors (5xx) listed
    /// here are still never stored on the default TTL: only with their own freshness
    /// (`max-age`, `Expires`, or RFC heuristics from `Last-Modified` for a `501` or with
    /// `public`). Default: `200`, `203`, `204`,
    /// `300`, `301`, `308` (RFC 9110 §15.1's heuristically cacheable statuses without the
    /// errors, and without `206`, which is never stored whole). For `404`/`410` see
    /// [`negative_ttl`](Self::negative_ttl).
    #[must_use]
    pub fn default_ttl_statuses(mut self, statuses: impl IntoIterator<Item = StatusCode>) -> Self {
        self.config.policy.default_ttl_statuses =
            statuses.into_iter().map(|status| status.as_u16()).collect();
        self
    }

    /// Negative caching: the lifetime of `404 Not Found` and `410 Gone` responses without
    /// explicit freshness, whatever the default TTL. Keep it short (a few seconds): it
    /// answers for a resource that may be created at any moment. Default: none (a `404`
    /// is stored only when it says how long, or for heuristics from `Last-Modified`).
    #[must_use]
    pub fn negative_ttl(mut self, ttl: Duration) -> Self {
        self.config.policy.negative_ttl = Some(ttl);
        self
    }

    /// A default TTL for paths under `prefix` (`/products` covers `/products` and
    /// `/products/42`, not `/productsx`); the longest matching prefix wins over
    /// [`default_ttl`](Self::default_ttl). Default: none.
    #[must_use]
    pub fn route_ttl(mut self, prefix: impl Into<String>, ttl: Duration) -> Self {
        self.config.route_ttls.push((prefix.into(), ttl));
        self
    }

    /// Adds a request header's value to the cache key (a tenant id, an API version), so
    /// that requests differing in it never share entries. Default: none.
    #[must_use]
    pub fn key_header(mut self, name: HeaderName) -> Self {
        self.config.key.headers.push(name);
        self
    }

    /// Leaves a query parameter out of the cache key (`utm_source`; `utm_*` for every
    /// parameter starting with `utm_`). The full query is still sent to the origin.
    /// Default: none; the whole query is part of the key.
    #[must_use]
    pub fn ignore_query_param(mut self, name: impl Into<String>) -> Self {
        self.config.key.ignored_params.push(name.into());
        self
    }

    /// Puts the request's host (URI authority or `Host`) in the cache key, for services
    /// answering several hosts. Default: off.
    #[must_use]
    pub fn key_host(mut self, on: bool) -> Self {
        self.config.key.host = on;
        self
    }

    /// Which requests the cache handles; others bypass it. Default: every GET and HEAD.
    #[must_use]
    pub fn predicate(mut self, predicate: impl Predicate) -> Self {
        self.config.predicate = Some(Arc::new(predicate));
        self
    }

    /// The response header listing an entry's tags (comma- or space-separated), removed
    /// before the client sees the response. Default: `Cache-Tag`.
    #[must_use]
    pub fn tag_header(mut self, name: HeaderName) -> Self {
        self.config.policy.tag_header = name;
        self
    }

    /// Sends each response's tags on to caches further out (a CDN), space-separated, in
    /// each of the fields `names` (`Surrogate-Key` for Fastly and most CDNs that purge by
    /// key, [`XKEY`](crate::XKEY) for Varnish's xkey module), instead of only removing the
    /// [`tag_header`](Self::tag_header): `Cache-Tag: products, product:42` goes out as
    /// `Surrogate-Key: products product:42 path:/products/42`. The keys are the tags this
    /// cache invalidates by: the tag header's, and the path tag (`path:` and the request's
    /// path, with a comma or space in it percent-encoded) that
    /// [`CacheHandle::invalidate_path`] removes, so that an
    /// [`InvalidationHook`](crate::InvalidationHook) can purge the CDN by the same names.
    /// The fields are written when the response is stored, so a hit costs nothing more;
    /// a value the handler put in one of them is replaced. Responses the cache does not
    /// handle (bypassed by the [`predicate`](Self::predicate) or a `no-store` request,
    /// unsafe methods) carry only their own tags, without the path tag. Mind the CDN's
    /// limits on the field (Fastly: 16 KB, 1 KB a key; Varnish: `http_resp_hdr_len`,
    /// 8 KB by default).
    ///
    /// Default: none (tags are removed). [`build`](Self::build) fails with
    /// [`ConfigError::InvalidField`] for a field HTTP or the cache gives a meaning of its
    /// own (`Cache-Control`, `CDN-Cache-Control`, `Surrogate-Control`, `Vary`, `ETag`,
    /// `Content-*`, `Set-Cookie`, `Cache-Status`, …) or the cache's
    /// [`targeted_field`](Self::targeted_field).
    ///
    /// [`CacheHandle::invalidate_path`]: crate::CacheHandle::invalidate_path
    #[must_use]
    pub fn send_tags_as(mut self, names: impl IntoIterator<Item = HeaderName>) -> Self {
        let names: Vec<HeaderName> = names.into_iter().collect();
        for name in &names {
            if crate::cdn::reserved_tag_field(name) || *name == self.config.policy.targets.own {
                self.error.get_or_insert(ConfigError::InvalidField {
                    setting: "send_tags_as",
                    value: name.as_str().to_owned(),
                });
            }
        }
        self.config.policy.send_tags = names.into_boxed_slice();
        self
    }

    /// Adds a hook that [`CacheHandle`]'s `invalidate_tag`, `invalidate_path` and `purge`
    /// call once the store is done (whether it succeeded or not), to purge caches further
    /// out: a CDN, Varnish ([`VarnishPurger`](crate::VarnishPurger), feature `varnish`).
    /// Every handle of this layer (and of layers made from it by
    /// [`to_builder`](CacheLayer::to_builder)) calls it; hooks run concurrently, and the
    /// handle's method returns once all are done. A hook that fails is logged (WARN), and
    /// the method still returns the store's result. Invalidation the layer does by itself
    /// (after an unsafe method, RFC 9111 §4.4) does not call hooks. Default: none.
    #[must_use]
    pub fn invalidation_hook(mut self, hook: impl InvalidationHook) -> Self {
        let mut hooks = self.config.hooks.to_vec();
        hooks.push(Arc::new(hook));
        self.config.hooks = hooks.into();
        self
    }

    /// The name of this cache's own targeted cache-control field (RFC 9213). A response that
    /// carries it with a valid value is cached by its directives (`max-age`, `s-maxage`,
    /// `no-store`, `no-cache`, `private`, `must-revalidate`, `stale-while-revalidate`…),
    /// and `Cache-Control` and `Expires` are ignored for this cache's storage and freshness
    /// decisions; so an application can give this cache a policy of its own
    /// (`Towerkit-Cache-Control: max-age=300` beside `Cache-Control: no-store` for
    /// browsers). The field is a Structured Field Dictionary (RFC 8941): one that does not
    /// parse, or gives a directive a value of the wrong type (`max-age="300"`), is ignored
    /// and `Cache-Control` applies. It is removed from every response this cache sends on,
    /// stored or not; a `304` that revalidates an entry should repeat it, as it repeats
    /// `Cache-Control`, or the entry is judged by `Cache-Control` from then on.
    /// Default: `Towerkit-Cache-Control`. [`build`](Self::build) fails for `Cache-Control`
    /// and `CDN-Cache-Control` (see [`cdn_cache_control`](Self::cdn_cache_control)).
    #[must_use]
    pub fn targeted_field(mut self, name: HeaderName) -> Self {
        if name == http::header::CACHE_CONTROL || name == crate::targeted::CDN_CACHE_CONTROL {
            self.error.get_or_insert(ConfigError::TargetedField {
                name: name.as_str().to_owned(),
            });
        }
        self.config.policy.targets.own = name;
        self
    }

    /// Whether this cache also obeys `CDN-Cache-Control` (RFC 9213 §3), after its own
    /// [`targeted_field`](Self::targeted_field), with the same precedence over
    /// `Cache-Control`. Turn it on where the cache is the edge in front of an application (a
    /// reverse proxy or CDN node, as in the example cache proxy); leave it off for a cache
    /// inside an application that sends `CDN-Cache-Control` to a CDN in front of it, so that
    /// the application's cache does not consume what is meant for the CDN.
    /// `CDN-Cache-Control` is forwarded either way, for caches further on. Default: off.
    #[must_use]
    pub fn cdn_cache_control(mut self, on: bool) -> Self {
        self.config.policy.targets.cdn = on;
        self
    }

    /// The cache's name in `Cache-Status` (RFC 9211). Default: `towerkit`. [`build`](Self::build)
    /// fails unless `name` is an HTTP token.
    #[must_use]
    pub fn cache_name(mut self, name: &str) -> Self {
        if let Err(error) = check_token("cache_name", name) {
            self.error.get_or_insert(error);
        }
        self.config.name = name.into();
        self.config.hit_statuses = Arc::default();
        self
    }

    /// Also send `X-Cache: HIT|MISS|STALE|BYPASS`. Default: off.
    #[must_use]
    pub fn x_cache(mut self, on: bool) -> Self {
        self.config.x_cache = on;
        self
    }

    /// Whether `Cache-Status` says why a forwarded response was not stored, with RFC 9211's
    /// `detail` parameter: `towerkit; fwd=miss; detail=set-cookie`. The tokens: `status`,
    /// `no-store`, `private`, `authorization`, `cookie` (the request had credentials and the
    /// response does not say it may be shared), `set-cookie`, `vary-star`, `no-freshness`
    /// (no lifetime, no validator), `event-stream`, `too-large` (over `max_body` or what the
    /// store holds), `must-understand`, `method` (`HEAD`). The reason is also logged at debug
    /// level and counted in [`NOT_STORED_TOTAL`](crate::metrics::NOT_STORED_TOTAL) when
    /// this is off. Default: on.
    #[must_use]
    pub fn cache_status_detail(mut self, on: bool) -> Self {
        self.config.status_detail = on;
        self
    }

    /// Whether concurrent misses for one key make a single origin call: within this process
    /// always, and across every instance sharing the store when it offers leases (see
    /// [`coalesce_across_instances`](Self::coalesce_across_instances)). Default: on.
    #[must_use]
    pub fn coalesce(mut self, on: bool) -> Self {
        self.config.coalesce = on;
        self
    }

    /// How long an origin call coalesces concurrent misses for its key, from its start:
    /// requests that joined it wait at most until then before making their own, and a
    /// request arriving later does not join it (a leader whose body streams for long, a
    /// slow download, holds nobody back beyond this). Event streams (`text/event-stream`)
    /// are never recorded, and a response that will not be stored releases its followers
    /// as soon as its head arrives. Default: 5 s.
    #[must_use]
    pub fn coalesce_timeout(mut self, timeout: Duration) -> Self {
        self.config.coalesce_timeout = timeout;
        self
    }

    /// Whether misses collapse across instances too, when the store is shared between
    /// processes ([`RedisStore`](crate::RedisStore), [`TieredStore`](crate::TieredStore)):
    /// the first instance to miss a key takes the key's lease in the store and calls the
    /// origin; the others wait for it (at most [`coalesce_timeout`](Self::coalesce_timeout))
    /// and answer from the stored entry, so a cold key costs one origin call cluster-wide.
    /// Background refreshes (`stale-while-revalidate`) and revalidations take the same
    /// lease. When the store fails or is slow, leases are skipped and each instance still
    /// coalesces its own requests. No effect with [`MemoryStore`](crate::MemoryStore), or
    /// when [`coalesce`](Self::coalesce) is off. Default: on.
    #[must_use]
    pub fn coalesce_across_instances(mut self, on: bool) -> Self {
        self.config.coalesce_across_instances = on;
        self
    }

    /// How long a key's lease lasts unless renewed: its holder renews it every third of this
    /// while its origin call runs (up to [`coalesce_timeout`](Self::coalesce_timeout)), so a
    /// holder that dies (its process killed) delays the others by at most this much.
    /// Default: 2 s; at least 10 ms.
    #[must_use]
    pub fn lease_ttl(mut self, ttl: Duration) -> Self {
        self.config.lease_ttl = ttl.max(MIN_LEASE_TTL);
        self
    }

    /// How long a key whose response was not storable (`private`, `no-store`, an error
    /// status…) is marked "hit-for-miss" across instances: meanwhile its misses take no
    /// lease and wait for no other instance, but go straight to the origin, as Varnish
    /// does. A response is never handed from one request to another unless it is
    /// storable. Default: 10 s.
    #[must_use]
    pub fn hit_for_miss(mut self, duration: Duration) -> Self {
        self.config.hit_for_miss = duration;
        self
    }

    /// How long a store operation may take on the request path; a slower lookup counts as
    /// a miss. Default: 50 ms.
    #[must_use]
    pub fn store_timeout(mut self, timeout: Duration) -> Self {
        self.config.store_timeout = timeout;
        self
    }

    /// How long past freshness a stored response may still be served when the origin fails
    /// (error, 5xx, or [`origin_timeout`](Self::origin_timeout)), on top of what
    /// `stale-if-error` allows. Responses with `must-revalidate`, `proxy-revalidate`,
    /// `s-maxage` or `no-cache` are never served stale. Default: zero.
    #[must_use]
    pub fn grace(mut self, grace: Duration) -> Self {
        self.config.policy.grace = grace;
        self
    }

    /// When a stale response may be served on error and the origin takes longer than
    /// this, serve it instead of waiting. Default: none (wait for the origin).
    #[must_use]
    pub fn origin_timeout(mut self, timeout: Duration) -> Self {
        self.config.origin_timeout = Some(timeout);
        self
    }

    /// How long past freshness an entry is kept, so that it can be revalidated with a
    /// conditional request (when it has `ETag` or `Last-Modified`), answer `max-stale`
    /// requests, or be served within [`grace`](Self::grace). Stale windows the response
    /// asks for (`stale-while-revalidate`, `stale-if-error`) extend it. Default: 10 minutes.
    #[must_use]
    pub fn keep_stale(mut self, keep: Duration) -> Self {
        self.config.policy.keep_stale = keep;
        self
    }

    /// Whether responses without explicit freshness but with `Last-Modified` are cached for
    /// 10 % of their age (RFC 9111 §4.2.2). Default: on.
    #[must_use]
    pub fn heuristic(mut self, on: bool) -> Self {
        self.config.policy.heuristic = on;
        self
    }

    /// The longest heuristic lifetime. Default: one day.
    #[must_use]
    pub fn heuristic_max(mut self, max: Duration) -> Self {
        self.config.policy.heuristic_max = max;
        self
    }

    /// Refresh-ahead: a fresh hit in the last `fraction` of its entry's freshness lifetime
    /// (`0.1`: the last 10 %, the last 6 s of a 60 s TTL) is answered from the entry and
    /// starts one background refresh of the key, so that a key requested steadily is
    /// replaced before it expires and its clients never see it miss. The refresh is the one
    /// `stale-while-revalidate` uses: conditional when the entry has validators, one at a
    /// time per key in this process, and, with a shared store, under the key's lease so
    /// that one instance of the cluster refreshes it. The request that starts it says
    /// `Cache-Status: towerkit; hit; ttl=…; detail=refresh-ahead`; the refreshes started are
    /// counted in [`REFRESH_AHEAD_TOTAL`](crate::metrics::REFRESH_AHEAD_TOTAL). A key that
    /// is not requested in its window expires as usual, so the extra origin load is at most
    /// one call per entry lifetime, for keys requested near their end.
    ///
    /// Default: off, as in the HTTP caches users know: the origin sees requests only for
    /// misses and revalidations unless asked otherwise. [`build`](Self::build) fails with
    /// [`ConfigError::RefreshAhead`] unless `0 < fraction < 1`.
    #[must_use]
    pub fn refresh_ahead(mut self, fraction: f64) -> Self {
        if !(fraction > 0.0 && fraction < 1.0) {
            self.error
                .get_or_insert(ConfigError::RefreshAhead { fraction });
        }
        self.config.refresh_ahead = Some(fraction);
        self
    }

    /// Act as a surrogate (Edge Architecture 1.0) named `token`: advertise
    /// `Surrogate-Capability: token="Surrogate/1.0"` to the origin, let `Surrogate-Control`
    /// directives aimed at this cache (untargeted, or `;token`) take precedence over
    /// `Cache-Control`, and remove `Surrogate-Control` from responses. Default: off.
    /// [`build`](Self::build) fails unless `token` is an HTTP token.
    #[must_use]
    pub fn surrogate(mut self, token: &str) -> Self {
        if let Err(error) = check_token("surrogate", token) {
            self.error.get_or_insert(error);
        }
        self.config.policy.surrogate = Some(token.into());
        self
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::MemoryStore;

    #[test]
    fn invalid_tokens_are_rejected_at_build_time() {
        let builder = || CacheLayer::builder(MemoryStore::new(1024));
        let error = builder().cache_name("my cache").build().unwrap_err();
        assert!(
            matches!(
                &error,
                ConfigError::InvalidToken { setting: "cache_name", value } if value == "my cache"
            ),
            "{error:?}"
        );
        assert_eq!(
            error.to_string(),
            "invalid `cache_name`: \"my cache\" is not an HTTP token"
        );
        assert!(builder().surrogate("").build().is_err());
        for name in ["cache-control", "cdn-cache-control"] {
            let error = builder()
                .targeted_field(HeaderName::from_static(name))
                .build()
                .unwrap_err();
            assert!(
                matches!(&error, ConfigError::TargetedField { name: given } if given == name),
                "{error:?}"
            );
        }
        assert!(
            builder()
                .targeted_field(HeaderName::from_static("edge-cache-control"))
                .cdn_cache_control(true)
                .build()
                .is_ok()
        );
        assert!(builder().surrogate("edge-1").build().is_ok());
    }

    #[test]
    fn refresh_ahead_must_be_a_fraction_strictly_between_0_and_1() {
        let builder = || CacheLayer::builder(MemoryStore::new(1024));
        for fraction in [0.0, 1.0, -0.1, 1.5, f64::NAN, f64::INFINITY] {
            let error = builder().refresh_ahead(fraction).build().unwrap_err();
            assert!(
                matches!(error, ConfigError::RefreshAhead { .. }),
                "{fraction}: {error:?}"
            );
        }
        assert_eq!(
            builder()
                .refresh_ahead(2.0)
                .build()
                .unwrap_err()
                .to_string(),
            "invalid `refresh_ahead`: 2 is not a fraction strictly between 0 and 1"
        );
        let layer = builder().refresh_ahead(0.1).build().unwrap();
        assert_eq!(layer.config.refresh_ahead, Some(0.1));
        assert_eq!(
            CacheLayer::new(MemoryStore::new(1024)).config.refresh_ahead,
            None
        );
    }

    #[test]
    fn clones_share_the_store_but_not_the_configuration() {
        let layer = CacheLayer::new(MemoryStore::new(1024));
        let routed = layer
            .to_builder()
            .default_ttl(Duration::from_secs(9))
            .build()
            .unwrap();
        assert!(Arc::ptr_eq(&layer.config.shared, &routed.config.shared));
        assert_eq!(layer.config.default_ttl, None);
        assert_eq!(routed.config.default_ttl, Some(Duration::from_secs(9)));
    }
}
