//! Timing for any tower service: a duration histogram, slow-call logging, N+1 query
//! detection, `Server-Timing`, and SQL query timing.
//!
//! [`TimingLayer`] measures every call of the service it wraps:
//! - it records a histogram through the [`metrics`] crate: for HTTP,
//!   `http_server_request_duration_seconds` by method, route template (axum's
//!   `MatchedPath`; unmatched requests share the label `unmatched`, never the raw path) and
//!   status class;
//! - it hands calls slower than its [`Thresholds`] (WARN above 500 ms, ERROR above 1 s by
//!   default) to an [`OnSlow`] callback, by default a `tracing` event;
//! - it runs the inner service with a per-request collector in scope (set on the thread while the call is polled),
//!   which [`QueryTimer`], and so towerkit-db's `Db`, writes each query into: a handler's
//!   `db.query(...)` is counted for its request without passing anything around. Queries
//!   run on another task (`tokio::spawn`) are not counted;
//! - it warns once when a request runs the same query summary more than 10 times (an N+1
//!   pattern), naming the route, the summary and the count, and counts it in
//!   `towerkit_n_plus_one_total`;
//! - optionally it adds `Server-Timing: total;dur=12.4, db;dur=8.1;desc="3 queries",
//!   cache;desc="hit"`, where `cache` comes from the response's `Cache-Status` header
//!   (RFC 9211) written by a cache layer inside it.
//!
//! Put it outermost, and with axum add it with `Router::layer` (so it runs per route and
//! sees the route template). Durations are measured until the inner service returns the
//! response head; body streaming is not included.
//!
//! ```
//! use std::time::Duration;
//! use axum::{Router, body::Body, routing::get};
//! use http::Request;
//! use towerkit_timing::{QueryOutcome, QueryTimer, TimingLayer};
//! use tower::ServiceExt;
//!
//! let timer = QueryTimer::new("postgresql");
//! let app = Router::new()
//!     .route("/products/{id}", get(move || async move {
//!         // towerkit-db's `Db` does this for every query it runs.
//!         let label = timer.label("SELECT * FROM products WHERE id = $1");
//!         timer.record(&label, Duration::from_millis(2), QueryOutcome::Rows(1), &());
//!         "a product"
//!     }))
//!     .layer(TimingLayer::new().server_timing(true));
//!
//! # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
//! let response = app.oneshot(Request::get("/products/7").body(Body::empty()).unwrap()).await.unwrap();
//! let server_timing = response.headers()["server-timing"].to_str().unwrap();
//! assert!(server_timing.starts_with("total;dur="));
//! assert!(server_timing.ends_with(r#"db;dur=2.0;desc="1 query""#));
//! # });
//! ```
//!
//! Customised: stricter thresholds, N+1 above 5 runs, and a callback instead of the log.
//!
//! ```
//! use std::time::Duration;
//! use towerkit_timing::{SlowCall, Thresholds, TimingLayer};
//!
//! let layer = TimingLayer::new()
//!     .slow(Thresholds::new(Duration::from_millis(200), Duration::from_millis(800)).expect("warn <= error"))
//!     .n_plus_one(Some(5))
//!     .on_slow(|call: &SlowCall<'_>| eprintln!("slow: {} took {:?}", call.call.operation, call.elapsed));
//! # let _ = layer;
//! ```
//!
//! Any tower service, HTTP or not, can be timed as a named operation
//! (`towerkit_operation_duration_seconds{operation, outcome}`):
//!
//! ```
//! use tower::{ServiceBuilder, ServiceExt, service_fn};
//! use towerkit_timing::TimingLayer;
//!
//! let service = ServiceBuilder::new()
//!     .layer(TimingLayer::operation("price_lookup"))
//!     .service(service_fn(|sku: u32| async move { Ok::<_, std::convert::Infallible>(sku * 100) }));
//! # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
//! assert_eq!(service.oneshot(7).await, Ok(700));
//! # });
//! ```
//!
//! Histogram buckets are chosen by the exporter. With `metrics-exporter-prometheus`, use
//! OpenTelemetry's boundaries:
//!
//! ```
//! use metrics_exporter_prometheus::{Matcher, PrometheusBuilder};
//! use towerkit_timing::{DB_CLIENT_OPERATION_DURATION, DB_DURATION_BUCKETS, HTTP_DURATION_BUCKETS, HTTP_SERVER_REQUEST_DURATION};
//!
//! let builder = PrometheusBuilder::new()
//!     .set_buckets_for_metric(Matcher::Full(HTTP_SERVER_REQUEST_DURATION.into()), &HTTP_DURATION_BUCKETS)
//!     .and_then(|b| b.set_buckets_for_metric(Matcher::Full(DB_CLIENT_OPERATION_DURATION.into()), &DB_DURATION_BUCKETS))
//!     .expect("non-empty buckets");
//! # let _ = builder;
//! ```

mod collector;
mod durations;
mod handle;
mod http;
mod layer;
mod on_slow;
mod query;
mod slot;
mod sql;
mod stopwatch;
mod thresholds;

pub use collector::{MAX_SUMMARIES_PER_REQUEST, RequestTimings, collect};
pub use handle::HistogramCell;
pub use http::{
    CACHE_STATUS, Http, HttpCall, SERVER_TIMING, UNMATCHED_ROUTE, cache_status_desc, method_label,
    server_timing_value, status_class,
};
pub use layer::{
    CallInfo, Completed, DEFAULT_N_PLUS_ONE_THRESHOLD, Measure, MeasureCall, Operation,
    OperationCall, ResponseFuture, Timing, TimingLayer,
};
pub use on_slow::{DefaultOnSlow, OnSlow, SlowCall};
pub use query::{
    DEFAULT_CAPACITY, LabelStats, MAX_CACHED_SQL_LEN, OVERFLOW_LABEL, QueryLabel, QueryOutcome,
    QueryStats, QueryTimer,
};
pub use sql::{MAX_NORMALIZED_LEN, SqlSummary, normalize, summarize};
pub use stopwatch::Stopwatch;
pub use thresholds::{InvalidThresholds, Severity, Thresholds};

/// The HTTP server histogram (seconds), labels `http_request_method`, `http_route`,
/// `http_response_status_class`.
pub const HTTP_SERVER_REQUEST_DURATION: &str = "http_server_request_duration_seconds";

/// The histogram of [`TimingLayer::operation`] (seconds), labels `operation`, `outcome`.
pub const OPERATION_DURATION: &str = "towerkit_operation_duration_seconds";

/// The SQL query histogram (seconds), labels `db_system_name`, `db_operation_name`,
/// `db_collection_name`, `db_query_summary`.
pub const DB_CLIENT_OPERATION_DURATION: &str = "db_client_operation_duration_seconds";

/// The counter of N+1 patterns found, labels `operation` (route template or operation
/// name) and `db_query_summary`.
pub const N_PLUS_ONE_TOTAL: &str = "towerkit_n_plus_one_total";

/// OpenTelemetry's bucket boundaries for `http.server.request.duration`, in seconds.
pub const HTTP_DURATION_BUCKETS: [f64; 14] = [
    0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.25, 0.5, 0.75, 1.0, 2.5, 5.0, 7.5, 10.0,
];

/// OpenTelemetry's bucket boundaries for `db.client.operation.duration`, in seconds.
pub const DB_DURATION_BUCKETS: [f64; 9] = [0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1.0, 5.0, 10.0];

/// Registers units and help texts of this crate's metrics with the installed recorder.
/// Call it once after installing the recorder; metrics work without it.
pub fn describe_metrics() {
    metrics::describe_histogram!(
        HTTP_SERVER_REQUEST_DURATION,
        metrics::Unit::Seconds,
        "Duration of HTTP server requests"
    );
    metrics::describe_histogram!(
        OPERATION_DURATION,
        metrics::Unit::Seconds,
        "Duration of calls through a TimingLayer"
    );
    metrics::describe_histogram!(
        DB_CLIENT_OPERATION_DURATION,
        metrics::Unit::Seconds,
        "Duration of database client operations"
    );
    metrics::describe_counter!(
        N_PLUS_ONE_TOTAL,
        "Requests that ran one query summary more than the N+1 threshold"
    );
}
