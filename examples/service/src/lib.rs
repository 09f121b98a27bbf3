//! The towerkit example service: a PostgreSQL-backed catalog API with every towerkit layer,
//! composed the way a production service would. Copy it to start a new service.
//!
//! [`install_metrics_recorder`] installs the Prometheus recorder and describes every
//! metric; [`AppState::connect`] builds what the service needs from a [`Config`] (the pool,
//! the migrations, the layers: [`Stack`]); [`app`] turns that into the public `Router`, its
//! routes wrapped by [`Stack::wrap`] (the benches wrap theirs with it too), and
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
pub mod request_id;
pub mod secret;
pub mod stack;
pub mod telemetry;

use std::sync::{Arc, OnceLock};

use axum::Router;
use axum::body::Body;
use axum::extract::State;
use axum::http::{Request, header};
use axum::middleware::from_fn_with_state;
use axum::response::IntoResponse;
use axum::routing::{delete, get, post, put};
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};
use towerkit::cache::{CacheHandle, CacheLayer, WarmReport};
use towerkit::db::{Db, DbConfig};
use towerkit::timing::QueryTimer;
use towerkit::validators::RequirePreconditionsLayer;

pub use auth::ApiTokens;
pub use config::{Config, Layers};
pub use stack::Stack;

/// Buckets for the cache's remote store calls, which time out at 50 ms by default.
const STORE_DURATION_BUCKETS: [f64; 8] = [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1];

/// The `Accept-Encoding` current browsers send, warmed beside the plain variant.
const BROWSER_ACCEPT_ENCODING: &str = "gzip, deflate, br, zstd";

/// What handlers share: the database and the production layers ([`Stack`]: the cache,
/// absent with `LAYERS=none`, and the rest).
#[derive(Clone, Debug)]
pub struct AppState {
    /// The pooled, timed PostgreSQL client.
    pub db: Db,
    /// The layers around the routes.
    stack: Stack,
    config: Arc<Config>,
}

/// A failure while starting the service.
#[derive(Debug)]
pub struct StartError(pub(crate) String);

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
        // The settings that need no server are checked before anything connects.
        let unconnected = stack::Unconnected::new(&config)?;
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

        let config = Arc::new(config);
        // Redis, when configured, after PostgreSQL.
        let stack = unconnected.connect(Arc::clone(&config)).await?;
        Ok(AppState { db, stack, config })
    }

    /// The cache's handle, for invalidation and statistics (`None` with `LAYERS=none`).
    pub fn cache(&self) -> Option<CacheHandle> {
        self.stack.cache().map(CacheLayer::handle)
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

    state.stack.wrap(api, state.db.health_routes())
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
