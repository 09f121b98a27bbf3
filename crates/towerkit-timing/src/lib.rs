//! Timing for any tower service: a duration histogram, slow-call logging, N+1 query
//! detection, `Server-Timing`, and SQL query timing.
//!
//! [`TimingLayer`] measures every call of the service it wraps:
//! - it records a histogram through the `metrics` crate (names in [`metrics`]): for HTTP,
//!   `http_server_request_duration_seconds` by method, route template (axum's
//!   `MatchedPath`; unmatched requests share the label `unmatched`, never the raw path) and
//!   status class;
//! - it hands slow calls (WARN above 500 ms, ERROR above 1 s by default) to an [`OnSlow`]
//!   callback, by default a `tracing` event;
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
//!     .layer(TimingLayer::builder().server_timing(true).build()?);
//!
//! # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
//! let response = app.oneshot(Request::get("/products/7").body(Body::empty()).unwrap()).await.unwrap();
//! let server_timing = response.headers()["server-timing"].to_str().unwrap();
//! assert!(server_timing.starts_with("total;dur="));
//! assert!(server_timing.ends_with(r#"db;dur=2.0;desc="1 query""#));
//! # });
//! # Ok::<(), towerkit_timing::ConfigError>(())
//! ```
//!
//! Customised: stricter thresholds, N+1 above 5 runs, and a callback instead of the log.
//! Settings are checked once, by `build`:
//!
//! ```
//! use std::time::Duration;
//! use towerkit_timing::{ConfigError, SlowCall, TimingLayer};
//!
//! let layer = TimingLayer::builder()
//!     .slow(Duration::from_millis(200), Duration::from_millis(800))
//!     .n_plus_one(Some(5))
//!     .on_slow(|call: &SlowCall<'_>| eprintln!("slow: {} took {:?}", call.call.operation, call.elapsed))
//!     .build()?;
//! # let _ = layer;
//! # Ok::<(), ConfigError>(())
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
//! The metric names, OpenTelemetry's histogram buckets and [`HistogramCell`](metrics::HistogramCell)
//! are in [`metrics`]; what a call is measured as ([`Http`](measure::Http),
//! [`Operation`](measure::Operation), or your own [`Measure`](measure::Measure)) in
//! [`measure`].
//!
//! # Traces
//!
//! [`Http`](measure::Http) runs each request in an INFO `tracing` span
//! `http.server.request` with OpenTelemetry's HTTP server attributes: `otel.name`
//! (`GET /products/{id}`, or the method alone when no route matched), `otel.kind` =
//! `server`, `http.request.method`, `http.route` and `http.response.status_code`, and
//! `otel.status_code` = `ERROR` for a 5xx, an inner failure or a cancellation. Spans of the
//! layers and handlers below nest under it, and the slow-call and N+1 lines are written in
//! it. This crate depends on `tracing` only; `tracing-opentelemetry` exports the spans.
//! With no subscriber the span takes `tracing`'s disabled fast path and nothing is
//! formatted.
//!
//! # Production checklist
//!
//! - **Stores:** nothing across requests but a bounded, process-wide table of prebuilt
//!   histogram series (1024 (method, route, status class) entries) and, per `QueryTimer`,
//!   bounded per-label query statistics. Metrics are exported by your recorder.
//! - **Buffers:** nothing; the response body streams through (the timing stops at the
//!   response head).
//! - **Keys on:** metric labels from the route template (`MatchedPath`), method and status
//!   class, never the raw path; unmatched requests share `unmatched`.
//! - **Cancelled requests:** a request dropped before it answered (an outer
//!   `TimeoutLayer`, a client disconnect) is recorded with the status class `cancelled` and
//!   logged as slow when it was; alert on that series too.
//! - **More than one instance:** nothing to share. Each instance exports its own
//!   histograms; aggregate them in Prometheus. `Server-Timing` tells clients how long the
//!   server took: leave it off on public endpoints unless you mean it.
//!
//! # Features
//!
//! - `axum` (on by default): route templates from axum's `MatchedPath`. Without it every
//!   request is labelled `unmatched`; `TimingLayer` itself works on any tower service.

// docs.rs documents with a nightly rustdoc and `--cfg docsrs`: mark what each feature enables.
#![cfg_attr(docsrs, feature(doc_cfg))]

mod collector;
mod durations;
mod error;
mod http;
mod layer;
mod measure_traits;
pub mod metrics;
mod on_slow;
mod operation;
mod plan;
mod query;
mod server_timing;
mod slot;
mod span;
mod sql;
mod stopwatch;
mod thresholds;

pub use collector::{RequestTimings, collect};
pub use error::ConfigError;
pub use layer::{ResponseFuture, Timing, TimingLayer, TimingLayerBuilder};
pub use on_slow::{DefaultOnSlow, OnSlow, SlowCall};
pub use plan::PlanSummary;
pub use query::{LabelStats, QueryLabel, QueryOutcome, QueryStats, QueryTimer, QueryTimerBuilder};
pub use stopwatch::Stopwatch;
pub use thresholds::Severity;

/// What a [`TimingLayer`] measures a call as: [`Http`](measure::Http) requests (the
/// default), a named [`Operation`](measure::Operation), or your own [`Measure`](measure::Measure).
pub mod measure {
    pub use crate::http::{Http, HttpCall};
    pub use crate::measure_traits::{CallInfo, Completed, Measure, MeasureCall};
    pub use crate::operation::{Operation, OperationCall};
}

/// The README's examples, compiled and run as doc tests (the README is in the package, so
/// `cargo test --doc` on the published crate runs them too).
#[doc = include_str!("../README.md")]
#[cfg(doctest)]
pub struct ReadmeDoctests;
