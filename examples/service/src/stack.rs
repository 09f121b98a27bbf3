//! The production layers: what wraps the service's routes, in one place, so that the service
//! ([`app`](crate::app)) and the benches (`stack/example/hit` in `benches/`) run the same
//! stack and the cost measured is the one users pay.
//!
//! [`Stack::build`] makes the layers a [`Config`] asks for (the cache, in memory or tiered
//! over Redis; `CDN-Cache-Control`; pagination); [`Stack::wrap`] puts them around a
//! `Router`: the towerkit layers around the API routes, then the tower-http ones (request
//! id, trace, timeout, body limit) around everything.

use std::sync::Arc;

use axum::Router;
use axum::http::{HeaderName, StatusCode, header};
use tower::ServiceBuilder;
use tower::util::MapResponseLayer;
use tower_http::limit::RequestBodyLimitLayer;
use tower_http::sensitive_headers::SetSensitiveRequestHeadersLayer;
use tower_http::timeout::TimeoutLayer;
use tower_http::trace::{DefaultMakeSpan, TraceLayer};
use towerkit::cache::{
    CacheLayer, CdnHeadersLayer, MemoryStore, RedisStore, TieredStore, VarnishPurger,
};
use towerkit::compress::CompressionLayer;
use towerkit::nulls::StripNullsLayer;
use towerkit::paginate::{PaginateLayer, SelectFieldsLayer};
use towerkit::timing::TimingLayer;
use towerkit::validators::ETagLayer;

use crate::request_id::RequestIdLayer;
use crate::{Config, Layers, StartError, catalog, telemetry};

/// The largest request body accepted (a product is well under 8 KiB).
const BODY_LIMIT: usize = 64 * 1024;

/// The header carrying each request's id, in the request and in the response.
pub const X_REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");

/// The layers a [`Config`] asks for, ready to wrap routes with [`Stack::wrap`]. Cloning it
/// shares the cache.
#[derive(Clone, Debug)]
pub struct Stack {
    /// The cache layer itself, absent with `LAYERS=none`.
    cache: Option<CacheLayer>,
    /// `CDN-Cache-Control` for a CDN in front (`CDN_CACHE_CONTROL`; adds nothing when off).
    cdn: CdnHeadersLayer,
    pagination: PaginateLayer,
    config: Arc<Config>,
}

/// What [`Stack::build`] checks before connecting to anything: the settings that need no
/// server. [`AppState::connect`](crate::AppState::connect) checks them before it connects to
/// PostgreSQL, and connects to Redis after.
#[derive(Debug)]
pub(crate) struct Unconnected {
    cdn: CdnHeadersLayer,
    pagination: PaginateLayer,
}

impl Unconnected {
    /// Checks `PUBLIC_URL`, `CURSOR_KEY` and `CDN_CACHE_CONTROL`.
    pub(crate) fn new(config: &Config) -> Result<Self, StartError> {
        // Absolute links point at the public origin, never at the client's `Host` header,
        // which would let one client poison the `Link` headers of cached pages.
        let mut pagination = PaginateLayer::builder().base_url(config.public_url.clone());
        // Cursors must verify on every instance: one key for all of them, from the
        // environment, never a per-process one.
        if let Some(key) = &config.cursor_key {
            pagination = pagination.cursor_key(key.clone().into_bytes());
        }
        let pagination = pagination
            .build()
            .map_err(|e| fail("PUBLIC_URL or CURSOR_KEY", &e))?;
        let mut cdn = CdnHeadersLayer::builder();
        if let Some(value) = &config.cdn_cache_control {
            cdn = cdn.cdn_cache_control(value);
        }
        let cdn = cdn.build().map_err(|e| fail("CDN_CACHE_CONTROL", &e))?;
        Ok(Unconnected { cdn, pagination })
    }

    /// Builds the cache (connecting to Redis when configured).
    pub(crate) async fn connect(self, config: Arc<Config>) -> Result<Stack, StartError> {
        let cache = match config.layers {
            Layers::None => None,
            Layers::All => Some(cache(&config).await?),
        };
        Ok(Stack {
            cache,
            cdn: self.cdn,
            pagination: self.pagination,
            config,
        })
    }
}

impl Stack {
    /// Builds the layers `config` asks for: checks the settings, and connects to Redis when
    /// `REDIS_URL` or `REDIS_CLUSTER_NODES` is set (else the cache is in memory only).
    pub async fn build(config: Arc<Config>) -> Result<Self, StartError> {
        Unconnected::new(&config)?.connect(config).await
    }

    /// The cache layer (`None` with `LAYERS=none`).
    pub fn cache(&self) -> Option<&CacheLayer> {
        self.cache.as_ref()
    }

    /// The configuration the layers were built from.
    pub fn config(&self) -> &Config {
        &self.config
    }

    /// The production stack around the routes: `api` (the routes under `/api`) behind the
    /// towerkit layers (with `LAYERS=all`), `beside` (the health routes) merged next to it
    /// without them, and both behind the tower-http layers every request passes (sensitive
    /// headers, request id, trace, `traceparent`, timeout, body limit).
    pub fn wrap(&self, api: Router, beside: Router) -> Router {
        let api = match (&self.cache, self.config.layers) {
            (Some(cache), Layers::All) => api.layer(
                // Outermost first; README.md's "How it is put together" says why this order.
                ServiceBuilder::new()
                    // Measures the whole request (cache hits included), logs slow ones, and
                    // writes Server-Timing with the DB time of this request's queries and the
                    // cache result. Added with Router::layer, so it sees the route template.
                    .layer(timing(&self.config))
                    // A hit returns stored bytes, already compressed, and skips everything
                    // below.
                    .layer(cache.clone())
                    // CDN-Cache-Control for a CDN in front, on cacheable GETs: stored with
                    // each entry, so hits carry it for free.
                    .layer(self.cdn.clone())
                    // Compresses what the cache stores, once per negotiated encoding; a coded
                    // variant's ETag gets the coding as a suffix ("...-br"), so no two byte
                    // representations share a strong tag.
                    .layer(CompressionLayer::new())
                    // Every 200 GET gets a strong ETag and If-None-Match a 304: the lists and
                    // categories by a hash of the bytes the client decodes (it sits outside
                    // the JSON layers, so it hashes their output and no rewrite weakens it),
                    // a product by the version tag set just below.
                    .layer(ETagLayer::new())
                    // A product handler's version tag (`catalog::RepresentationTag`, which a
                    // write's If-Match is compared with) becomes its ETag here, past the JSON
                    // layers, which would weaken a strong ETag header; see catalog's docs.
                    .layer(MapResponseLayer::new(catalog::expose_etag))
                    // The JSON layers need plain JSON, so they sit inside compression.
                    .layer(StripNullsLayer::new())
                    // `fields=` applies to each item of the page envelope built below it.
                    .layer(SelectFieldsLayer::default())
                    // Pages whole arrays (categories); leaves handler-paged `Page<T>` alone,
                    // and gives the `Pagination` extractor its configuration.
                    .layer(self.pagination.clone()),
            ),
            // No towerkit layer, but the product's version tag all the same: writes check
            // If-Match against it in both modes.
            _ => api.layer(MapResponseLayer::new(catalog::expose_etag)),
        };

        let router = api.merge(beside).layer(
            ServiceBuilder::new()
                // Credentials are marked sensitive before anything can trace them: the trace
                // below records request headers (at DEBUG) and shows these as `Sensitive`.
                .layer(SetSensitiveRequestHeadersLayer::new([
                    header::AUTHORIZATION,
                    header::COOKIE,
                ]))
                // Every request gets an id (or keeps the caller's), echoed in the response
                // and seen by the trace below: made without a system call, set and echoed
                // by one layer (see `request_id`).
                .layer(RequestIdLayer::new(X_REQUEST_ID))
                .layer(
                    TraceLayer::new_for_http()
                        .make_span_with(DefaultMakeSpan::new().include_headers(true)),
                )
                // A caller's W3C `traceparent` becomes the parent of the request's span
                // (`TimingLayer`'s, below); see `telemetry`.
                .layer(telemetry::AcceptTraceContextLayer)
                // No request holds a connection forever; the client gets a 503.
                .layer(TimeoutLayer::with_status_code(
                    StatusCode::SERVICE_UNAVAILABLE,
                    self.config.request_timeout,
                ))
                // Bodies are bounded before any handler reads them.
                .layer(RequestBodyLimitLayer::new(BODY_LIMIT)),
        );
        // Turns every handler into its route, layers applied, once, here: a handler added
        // without state (as `beside`'s may be) otherwise is, with all the layers above, on
        // every request. `axum::serve` does it too; a caller driving the `Router` itself
        // (tests, benches) now gets the same.
        router.with_state(())
    }
}

/// `TimingLayer` with `Server-Timing` and the configured slow-request thresholds.
fn timing(config: &Config) -> TimingLayer {
    TimingLayer::builder()
        .server_timing(true)
        .slow(config.slow_warn, config.slow_error)
        .build()
        // `Config` has checked that warn <= error; as before, thresholds it did not check
        // fall back to the defaults.
        .unwrap_or_else(|_| {
            TimingLayer::builder()
                .server_timing(true)
                .build()
                .unwrap_or_default()
        })
}

/// The cache: in memory, or tiered over Redis (one server or a cluster) when configured.
async fn cache(config: &Config) -> Result<CacheLayer, StartError> {
    let memory = MemoryStore::new(config.cache_capacity_bytes);
    let prefix = config
        .redis_prefix
        .clone()
        .unwrap_or_else(|| "example-service:".to_owned());
    let redis = match (&config.redis_url, config.redis_cluster_nodes.as_slice()) {
        (None, []) => None,
        (Some(_), [_, ..]) => {
            return Err(StartError(
                "REDIS_URL and REDIS_CLUSTER_NODES are both set: set one".to_owned(),
            ));
        }
        (Some(url), []) => Some(("REDIS_URL", RedisStore::builder(url.clone()))),
        (None, nodes) => Some((
            "REDIS_CLUSTER_NODES",
            RedisStore::cluster(nodes.iter().cloned()),
        )),
    };
    let builder = match redis {
        // Tiered: each instance answers hot keys from memory, shares the rest through Redis
        // (one server or a cluster), and Redis pub/sub carries invalidations to every
        // instance.
        Some((variable, redis)) => {
            let mut redis = redis.prefix(prefix);
            // `rediss://` with a private CA: its root certificate, PEM (for every node of a
            // cluster).
            if let Some(path) = &config.redis_ca_cert {
                let pem = std::fs::read(path)
                    .map_err(|e| fail("REDIS_CA_CERT", &format!("{}: {e}", path.display())))?;
                redis = redis.tls_root_certificate(pem);
            }
            let redis = redis.connect().await.map_err(|e| fail(variable, &e))?;
            CacheLayer::builder(TieredStore::new(memory, redis))
        }
        None => CacheLayer::builder(memory),
    };
    let builder = builder.default_ttl(config.cache_ttl);
    // A CDN in front learns each response's tags (`CDN_TAG_HEADERS`), and Varnish nodes
    // (`VARNISH_PURGE_NODES`) are purged by them on every invalidation, after this cache.
    let builder = builder.send_tags_as(config.cdn_tag_headers.iter().cloned());
    let builder = match config.varnish_purge_nodes.as_slice() {
        [] => builder,
        nodes => builder.invalidation_hook(
            VarnishPurger::builder(nodes.iter().cloned())
                .build()
                .map_err(|e| fail("VARNISH_PURGE_NODES", &e))?,
        ),
    };
    // Hot keys are refreshed before they expire (`CACHE_REFRESH_AHEAD`).
    let builder = match config.cache_refresh_ahead {
        Some(fraction) => builder.refresh_ahead(fraction),
        None => builder,
    };
    builder.build().map_err(|e| fail("cache", &e))
}

/// A start-up error naming what failed.
fn fail(what: &str, error: &dyn std::fmt::Display) -> StartError {
    StartError(format!("{what}: {error}"))
}
