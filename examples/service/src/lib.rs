//! The towerkit example service: a PostgreSQL-backed catalog API with every towerkit layer,
//! composed the way a production service would. Copy it to start a new service.
//!
//! [`install_metrics_recorder`] installs the Prometheus recorder and describes every
//! metric; [`AppState::connect`] builds what the service needs from a [`Config`] (the pool,
//! the migrations, the cache); [`app`] turns that into the public `Router` and
//! [`admin_app`] into the operations one (`/metrics`, health), served on a separate,
//! loopback listener. Tests drive both with `oneshot`.
//!
//! Writes (`POST`, `PUT`, `DELETE` under `/api`) need `Authorization: Bearer <token>` with
//! one of the `API_TOKENS` ([`auth`]); reads are public. `Debug` output and logs never show
//! the passwords of `DATABASE_URL`, `REDIS_URL` and `REDIS_CLUSTER_NODES` ([`secret`]), and
//! request traces mask `Authorization` and `Cookie`.
//!
//! # Production checklist
//!
//! - Set `API_TOKENS` (long random tokens; two while rotating), `DATABASE_URL` and
//!   `REDIS_URL` (or `REDIS_CLUSTER_NODES`) from a secret store. Without `API_TOKENS` every
//!   write is refused.
//! - Keep `ADMIN_BIND_ADDR` on loopback or a private interface: `/metrics` has no token.
//! - On more than one instance, set `REDIS_URL`, or `REDIS_CLUSTER_NODES` for a Redis
//!   Cluster (and the same `CACHE_REDIS_PREFIX`) so the instances share cached responses
//!   and invalidations, and `PUBLIC_URL` to the origin clients use. Each instance stores
//!   at most `CACHE_CAPACITY_MB` of responses in memory, keyed on method, path and query
//!   (and the request headers a response `Vary`s on); requests with `Authorization` or
//!   `Cookie` are neither served from nor stored in it.
//! - The same `CURSOR_KEY` secret on every instance: cursors must verify on every instance,
//!   including on pages cached in Redis by another one.
//! - Buffers: each JSON layer (nulls, fields, pagination) holds up to 8 MiB of a response.

pub mod auth;
pub mod catalog;
pub mod config;
pub mod migrate;
pub mod ops;
pub mod secret;
pub mod telemetry;

use std::sync::{Arc, OnceLock};

use axum::Router;
use axum::body::Body;
use axum::extract::State;
use axum::http::{HeaderName, Request, StatusCode, header};
use axum::middleware::from_fn_with_state;
use axum::response::IntoResponse;
use axum::routing::{delete, get, post, put};
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};
use tower::ServiceBuilder;
use tower::util::MapResponseLayer;
use tower_http::limit::RequestBodyLimitLayer;
use tower_http::request_id::{MakeRequestUuid, PropagateRequestIdLayer, SetRequestIdLayer};
use tower_http::sensitive_headers::SetSensitiveRequestHeadersLayer;
use tower_http::timeout::TimeoutLayer;
use tower_http::trace::{DefaultMakeSpan, TraceLayer};
use towerkit::cache::{
    CacheHandle, CacheLayer, CdnHeadersLayer, MemoryStore, RedisStore, TieredStore, VarnishPurger,
    WarmReport,
};
use towerkit::compress::CompressionLayer;
use towerkit::db::{Db, DbConfig};
use towerkit::nulls::StripNullsLayer;
use towerkit::paginate::{PaginateLayer, SelectFieldsLayer};
use towerkit::timing::{QueryTimer, TimingLayer};
use towerkit::validators::{ETagLayer, RequirePreconditionsLayer};

pub use auth::ApiTokens;
pub use config::{Config, Layers};

/// The largest request body accepted (a product is well under 8 KiB).
const BODY_LIMIT: usize = 64 * 1024;

/// Buckets for the cache's remote store calls, which time out at 50 ms by default.
const STORE_DURATION_BUCKETS: [f64; 8] = [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1];

/// The `Accept-Encoding` current browsers send, warmed beside the plain variant.
const BROWSER_ACCEPT_ENCODING: &str = "gzip, deflate, br, zstd";

const X_REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");

/// What handlers share: the database and the cache's handle (absent with `LAYERS=none`).
#[derive(Clone, Debug)]
pub struct AppState {
    /// The pooled, timed PostgreSQL client.
    pub db: Db,
    /// The cache layer itself, when the service runs with layers.
    cache: Option<CacheLayer>,
    /// `CDN-Cache-Control` for a CDN in front (`CDN_CACHE_CONTROL`; adds nothing when off).
    cdn: CdnHeadersLayer,
    pagination: PaginateLayer,
    config: Arc<Config>,
}

/// A failure while starting the service.
#[derive(Debug)]
pub struct StartError(String);

impl std::fmt::Display for StartError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for StartError {}

impl AppState {
    /// Connects to PostgreSQL (and Redis when configured), applies the migrations, and
    /// builds the cache.
    pub async fn connect(config: Config) -> Result<Self, StartError> {
        let fail = |what: &str, e: &dyn std::fmt::Display| StartError(format!("{what}: {e}"));
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
        // `SLOW_WARN_MS` / `SLOW_ERROR_MS` are the query thresholds too, not only the
        // request ones `app` gives `TimingLayer`.
        let timer = QueryTimer::builder("postgresql")
            .slow(config.slow_warn, config.slow_error)
            .build()
            .map_err(|e| fail("SLOW_WARN_MS or SLOW_ERROR_MS", &e))?;
        let db_config = DbConfig::builder()
            .url(config.database_url.clone())
            .application_name("example-service")
            .timer(timer)
            .explain_slow_queries(config.explain_slow_queries)
            .trace_query_text(config.telemetry.query_text)
            .build()
            .map_err(|e| fail("DATABASE_URL", &e))?;
        let db = Db::connect(db_config)
            .await
            .map_err(|e| fail("PostgreSQL", &e))?;
        migrate::migrate(&db)
            .await
            .map_err(|e| fail("PostgreSQL", &e))?;

        let cache = match config.layers {
            Layers::None => None,
            Layers::All => {
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
                    // Tiered: each instance answers hot keys from memory, shares the rest
                    // through Redis (one server or a cluster), and Redis pub/sub carries
                    // invalidations to every instance.
                    Some((variable, redis)) => {
                        let mut redis = redis.prefix(prefix);
                        // `rediss://` with a private CA: its root certificate, PEM (for
                        // every node of a cluster).
                        if let Some(path) = &config.redis_ca_cert {
                            let pem = std::fs::read(path).map_err(|e| {
                                fail("REDIS_CA_CERT", &format!("{}: {e}", path.display()))
                            })?;
                            redis = redis.tls_root_certificate(pem);
                        }
                        let redis = redis.connect().await.map_err(|e| fail(variable, &e))?;
                        CacheLayer::builder(TieredStore::new(memory, redis))
                    }
                    None => CacheLayer::builder(memory),
                };
                let builder = builder.default_ttl(config.cache_ttl);
                // A CDN in front learns each response's tags (`CDN_TAG_HEADERS`), and
                // Varnish nodes (`VARNISH_PURGE_NODES`) are purged by them on every
                // invalidation, after this cache.
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
                let layer = builder.build().map_err(|e| fail("cache", &e))?;
                Some(layer)
            }
        };
        let mut cdn = CdnHeadersLayer::builder();
        if let Some(value) = &config.cdn_cache_control {
            cdn = cdn.cdn_cache_control(value);
        }
        let cdn = cdn.build().map_err(|e| fail("CDN_CACHE_CONTROL", &e))?;
        Ok(AppState {
            db,
            cache,
            cdn,
            pagination,
            config: Arc::new(config),
        })
    }

    /// The cache's handle, for invalidation and statistics (`None` with `LAYERS=none`).
    pub fn cache(&self) -> Option<CacheHandle> {
        self.cache.as_ref().map(CacheLayer::handle)
    }

    /// Warms the cache with the `CACHE_WARM` paths, through `router` (the application
    /// [`app`] built), so that the first clients after a start find them cached; logs the
    /// report (INFO) and each path that did not end up cached (WARN). Each path is warmed
    /// as plain clients ask for it and as browsers do (`Accept-Encoding: gzip, deflate, br,
    /// zstd`), since the cache keeps one entry per negotiated encoding; two requests at a
    /// time. `None` without a cache or paths. `main` spawns it once the listeners are bound,
    /// so readiness does not wait for it; with several instances on one Redis, each path
    /// costs one database query in all (the cache's lease).
    pub async fn warm_cache(&self, router: &Router) -> Option<WarmReport> {
        let cache = self.cache()?;
        if self.config.cache_warm.is_empty() {
            return None;
        }
        let mut requests = Vec::with_capacity(self.config.cache_warm.len() * 2);
        for path in &self.config.cache_warm {
            for encoding in [None, Some(BROWSER_ACCEPT_ENCODING)] {
                let mut request = Request::get(path.as_str());
                if let Some(encoding) = encoding {
                    request = request.header(header::ACCEPT_ENCODING, encoding);
                }
                // `Config` checked every path: none fails to build.
                requests.push(request.body(Body::empty()).unwrap_or_default());
            }
        }
        let report = cache.warm(router, requests, 2).await;
        tracing::info!(%report, "cache warmed");
        for result in report.results.iter().filter(|r| !r.outcome.is_warm()) {
            tracing::warn!(
                uri = %result.uri,
                status = ?result.status,
                outcome = ?result.outcome,
                "cache warming left a path uncached"
            );
        }
        Some(report)
    }

    /// Drops cached responses tagged with any of `tags`. A failure (Redis down) is logged,
    /// not returned: the write itself succeeded, and entries expire with their TTL.
    pub async fn invalidate(&self, tags: &[&str]) {
        let Some(cache) = self.cache() else {
            return;
        };
        for tag in tags {
            if let Err(error) = cache.invalidate_tag(tag).await {
                tracing::warn!(tag, %error, "cache invalidation failed");
            }
        }
    }
}

/// The public application: `/api/*` behind the towerkit stack, writes behind the bearer
/// token check, and the health routes (for load balancers) beside it, uncached and unpaged.
/// `/metrics` is not here: it is on [`admin_app`].
pub fn app(state: AppState) -> Router {
    // Only the write methods are wrapped: reads never pay for the token check, and the
    // check runs before the handler reads the body or touches the database. It applies
    // with `LAYERS=none` too.
    let locked = from_fn_with_state(state.config.api_tokens.clone(), auth::require_bearer);
    // `REQUIRE_PRECONDITIONS=on`: a PUT or DELETE without If-Match gets a 428, after the
    // token check (a client without a token learns nothing about the resource).
    let mut product_writes = put(catalog::replace_product).merge(delete(catalog::delete_product));
    if state.config.require_preconditions {
        product_writes = product_writes.route_layer(RequirePreconditionsLayer::new());
    }
    let api = Router::new()
        .route(
            "/api/products",
            get(catalog::list_products)
                .merge(post(catalog::create_product).route_layer(locked.clone())),
        )
        .route(
            "/api/products/{id}",
            get(catalog::get_product).merge(product_writes.route_layer(locked)),
        )
        .route("/api/categories", get(catalog::list_categories))
        .with_state(state.clone());

    let api = match (&state.cache, state.config.layers) {
        (Some(cache), Layers::All) => api.layer(
            // Outermost first; README.md's "How it is put together" says why this order.
            ServiceBuilder::new()
                // Measures the whole request (cache hits included), logs slow ones, and
                // writes Server-Timing with the DB time of this request's queries and the
                // cache result. Added with Router::layer, so it sees the route template.
                .layer(
                    TimingLayer::builder()
                        .server_timing(true)
                        .slow(state.config.slow_warn, state.config.slow_error)
                        .build()
                        // `Config` has checked that warn <= error; as before, thresholds it
                        // did not check fall back to the defaults.
                        .unwrap_or_else(|_| {
                            TimingLayer::builder()
                                .server_timing(true)
                                .build()
                                .unwrap_or_default()
                        }),
                )
                // A hit returns stored bytes, already compressed, and skips everything below.
                .layer(cache.clone())
                // CDN-Cache-Control for a CDN in front, on cacheable GETs: stored with each
                // entry, so hits carry it for free.
                .layer(state.cdn.clone())
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
                // Pages whole arrays (categories); leaves handler-paged `Page<T>` alone, and
                // gives the `Pagination` extractor its configuration.
                .layer(state.pagination.clone()),
        ),
        // No towerkit layer, but the product's version tag all the same: writes check
        // If-Match against it in both modes.
        _ => api.layer(MapResponseLayer::new(catalog::expose_etag)),
    };

    api.merge(state.db.health_routes()).layer(
        ServiceBuilder::new()
            // Credentials are marked sensitive before anything can trace them: the trace
            // below records request headers (at DEBUG) and shows these as `Sensitive`.
            .layer(SetSensitiveRequestHeadersLayer::new([
                header::AUTHORIZATION,
                header::COOKIE,
            ]))
            // Every request gets an id (or keeps the caller's), echoed in the response and logs.
            .layer(SetRequestIdLayer::new(X_REQUEST_ID, MakeRequestUuid))
            .layer(
                TraceLayer::new_for_http()
                    .make_span_with(DefaultMakeSpan::new().include_headers(true)),
            )
            .layer(PropagateRequestIdLayer::new(X_REQUEST_ID))
            // A caller's W3C `traceparent` becomes the parent of the request's span
            // (`TimingLayer`'s, below); see `telemetry`.
            .layer(axum::middleware::from_fn(telemetry::accept_trace_context))
            // No request holds a connection forever; the client gets a 503.
            .layer(TimeoutLayer::with_status_code(
                StatusCode::SERVICE_UNAVAILABLE,
                state.config.request_timeout,
            ))
            // Bodies are bounded before any handler reads them.
            .layer(RequestBodyLimitLayer::new(BODY_LIMIT)),
    )
}

/// The operations application, for the admin listener (`ADMIN_BIND_ADDR`, loopback by
/// default): `/metrics`, the health routes and, with `QUERY_STATS=on`, `/ops/queries`
/// ([`ops`]). Nothing here is cached or needs a token, so it must not be reachable from
/// outside.
pub fn admin_app(state: AppState) -> Router {
    let admin = Router::new()
        .route("/metrics", get(metrics))
        .with_state(state.clone())
        .merge(state.db.health_routes());
    if state.config.query_stats {
        return admin.merge(ops::routes(state.db.clone()));
    }
    admin
}

/// `GET /metrics`: Prometheus text, with the pool gauges refreshed first. The recorder is
/// the one [`install_metrics_recorder`] installed (installed now if `main` did not).
async fn metrics(State(state): State<AppState>) -> impl IntoResponse {
    let recorder = install_metrics_recorder();
    state.db.record_pool_metrics();
    (
        [(header::CONTENT_TYPE, "text/plain; version=0.0.4")],
        recorder.render(),
    )
}

/// How often the metrics recorder's histogram samples are drained between scrapes (the
/// exporter's own default).
const METRICS_UPKEEP_INTERVAL: std::time::Duration = std::time::Duration::from_secs(5);

/// Installs the process-wide Prometheus recorder, with OpenTelemetry's histogram buckets
/// for the HTTP and DB durations, and gives every towerkit metric its help text and unit
/// ([`towerkit::describe_metrics`]). Installed once; later calls (tests building several
/// apps, each `/metrics` scrape) return the same handle.
///
/// `main` calls it first, so that nothing recorded at start-up is lost: a metric recorded
/// before a recorder exists goes nowhere. Whether the layers are built before or after
/// makes no difference to the help texts: this gives them to the recorder itself. `GET
/// /metrics` calls it too, so a service that leaves it out exports from its first scrape on.
pub fn install_metrics_recorder() -> PrometheusHandle {
    static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();
    HANDLE
        .get_or_init(|| {
            let builder = PrometheusBuilder::new()
                .set_buckets_for_metric(
                    Matcher::Full(towerkit::timing::metrics::HTTP_SERVER_REQUEST_DURATION.into()),
                    &towerkit::timing::metrics::HTTP_DURATION_BUCKETS,
                )
                .and_then(|b| {
                    b.set_buckets_for_metric(
                        Matcher::Full(
                            towerkit::timing::metrics::DB_CLIENT_OPERATION_DURATION.into(),
                        ),
                        &towerkit::timing::metrics::DB_DURATION_BUCKETS,
                    )
                })
                .and_then(|b| {
                    b.set_buckets_for_metric(
                        Matcher::Full(
                            towerkit::cache::metrics::STORE_OPERATION_DURATION_SECONDS.into(),
                        ),
                        &STORE_DURATION_BUCKETS,
                    )
                });
            let recorder = match builder {
                Ok(builder) => builder.build_recorder(),
                Err(_) => PrometheusBuilder::new().build_recorder(),
            };
            let handle = recorder.handle();
            // The recorder keeps every histogram sample until something drains it: a
            // scrape, or its upkeep. Without a scrape that is unbounded, so drain it as
            // `PrometheusBuilder::install` would.
            let upkeep = handle.clone();
            let _ = std::thread::Builder::new()
                .name("metrics-upkeep".into())
                .spawn(move || {
                    loop {
                        std::thread::sleep(METRICS_UPKEEP_INTERVAL);
                        upkeep.run_upkeep();
                    }
                });
            // Another recorder may already be installed (a test harness): then this handle
            // renders nothing, which the metrics test would show.
            if metrics::set_global_recorder(recorder).is_err() {
                tracing::warn!(
                    "another metrics recorder is installed: /metrics will render nothing"
                );
            }
            // After installing: descriptions go to the recorder installed at the time.
            towerkit::describe_metrics();
            handle
        })
        .clone()
}
