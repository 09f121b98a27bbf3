//! towerkit: composable tower middleware for axum and hyper services, one dependency.
//!
//! New here? The [guide] adds the whole stack to an existing axum app, beside tower-http's
//! layers, and says what goes wrong in each wrong order.
//!
//! Each module re-exports one towerkit crate and is enabled by the feature of the same name:
//!
//! | module | crate | what it gives |
//! |---|---|---|
//! | `json` | `towerkit-json` | the JSON-body machinery and problem+json responses the JSON layers share |
//! | `nulls` | `towerkit-nulls` | `StripNullsLayer`: removes `null` members from JSON responses |
//! | `paginate` | `towerkit-paginate` | `PaginateLayer`, `SelectFieldsLayer`, the `Pagination` and `Fields` extractors, `Page<T>` |
//! | `cache` | `towerkit-cache` | `CacheLayer`: RFC 9111 caching with memory, Redis and tiered stores |
//! | `compress` | `towerkit-compress` | `CompressionLayer`: tower-http's compression with production defaults and metrics |
//! | `timing` | `towerkit-timing` | `TimingLayer`: durations, slow-call logs, `Server-Timing`, SQL query timing |
//! | `validators` | `towerkit-validators` | `ETagLayer` (strong `ETag`s, `304`), `Preconditions` and `RequirePreconditionsLayer` for writes (`412`, `428`) |
//! | `db` | `towerkit-db` | `Db`: pooled PostgreSQL with timed queries, transactions and health checks |
//!
//! # Features
//!
//! The defaults are every layer with nothing that connects to another server: Redis,
//! PostgreSQL and their TLS stacks (redis, deadpool-postgres, tokio-postgres, rustls) are
//! compiled only when asked for. Every sub-crate's own features pass through, prefixed with
//! the module's name, so `default-features = false` plus a list gives exactly what is asked
//! for:
//!
//! | feature | default | what it enables |
//! |---|---|---|
//! | `json` | yes | `towerkit::json` (also enabled by `nulls`, `paginate` and `db`) |
//! | `json-axum` | yes | `IntoResponse` for `json::Problem` |
//! | `nulls` | yes | `towerkit::nulls` |
//! | `paginate` | yes | `towerkit::paginate` |
//! | `cache` | yes | `towerkit::cache` with the memory store |
//! | `cache-axum` | yes | cache keys from axum's `OriginalUri`, so nested routers keep their entries apart |
//! | `cache-redis` | no | the Redis and tiered stores |
//! | `cache-redis-tls` | no | Redis over TLS: `rediss://` URLs, a private CA (rustls, ring) |
//! | `cache-redis-cluster` | no | Redis Cluster for the Redis store |
//! | `cache-varnish` | no | `cache::VarnishPurger`: purges Varnish nodes by surrogate key (xkey) on invalidation (hyper's client) |
//! | `compress` | yes | `towerkit::compress`, always with gzip |
//! | `compress-gzip`, `compress-br`, `compress-zstd`, `compress-deflate` | yes | one codec each (gzip is always on with `compress`) |
//! | `timing` | yes | `towerkit::timing`, for any tower service |
//! | `timing-axum` | yes | route templates from axum's `MatchedPath` |
//! | `validators` | yes | `towerkit::validators` (with `json-axum`) |
//! | `db` | no | `towerkit::db` (with `timing` and `json`) |
//! | `db-tls` | no | PostgreSQL over TLS: `sslmode=require`, `verify-ca`, `verify-full` (rustls, ring) |
//!
//! For example, the defaults plus a cache shared through Redis over TLS and PostgreSQL;
//! compression with zstd and gzip only; the cache alone, without Redis:
//!
//! ```toml
//! towerkit = { version = "0.1", features = ["cache-redis-tls", "db-tls"] }
//! towerkit = { version = "0.1", default-features = false, features = ["compress-zstd"] }
//! towerkit = { version = "0.1", default-features = false, features = ["cache-axum"] }
//! ```
//!
//! ```
//! use axum::{Json, Router, routing::get};
//! use towerkit::nulls::StripNullsLayer;
//!
//! let app: Router = Router::new()
//!     .route("/", get(|| async { Json(serde_json::json!({"a": 1, "b": null})) }))
//!     .layer(StripNullsLayer::new());
//! # let _ = app;
//! ```
//!
//! # Metrics
//!
//! The layers record metrics through the [`metrics`](https://docs.rs/metrics) crate; the
//! application installs the recorder (for example `metrics-exporter-prometheus`) and
//! exports them. Each crate's `metrics` module has the table of its names, types, units,
//! labels and OpenTelemetry instruments. Call [`describe_metrics`] once after installing the
//! recorder so that every metric has a help text and a unit (Prometheus' `# HELP` lines):
//!
//! ```
//! let recorder = metrics_exporter_prometheus::PrometheusBuilder::new().build_recorder();
//! let handle = recorder.handle();
//! metrics::set_global_recorder(recorder).expect("no recorder installed yet");
//! towerkit::describe_metrics();
//! // ... build the layers (before or after: it makes no difference), serve ...
//! # metrics::counter!(towerkit::cache::metrics::REQUESTS_TOTAL).increment(1);
//! assert!(handle.render().contains("# HELP http_cache_requests_total "));
//! ```

// docs.rs documents with a nightly rustdoc and `--cfg docsrs`: mark what each feature enables.
#![cfg_attr(docsrs, feature(doc_cfg))]

#[cfg(feature = "cache")]
pub use towerkit_cache as cache;
#[cfg(feature = "compress")]
pub use towerkit_compress as compress;
#[cfg(feature = "db")]
pub use towerkit_db as db;
#[cfg(feature = "json")]
pub use towerkit_json as json;
#[cfg(feature = "nulls")]
pub use towerkit_nulls as nulls;
#[cfg(feature = "paginate")]
pub use towerkit_paginate as paginate;
#[cfg(feature = "timing")]
pub use towerkit_timing as timing;
#[cfg(feature = "validators")]
pub use towerkit_validators as validators;

/// Gives every metric of the enabled crates its help text and unit, in the recorder
/// installed now: `cache::metrics::describe()`, `compress::metrics::describe()`,
/// `db::metrics::describe()` and `timing::metrics::describe()`, as the features allow (the
/// JSON layers record no metrics). Call it once after installing the recorder; the order
/// in which layers and the recorder are created does not matter, but a recorder installed
/// after this call needs another one. Idempotent; metrics work without it, with no help text.
pub fn describe_metrics() {
    #[cfg(feature = "cache")]
    towerkit_cache::metrics::describe();
    #[cfg(feature = "compress")]
    towerkit_compress::metrics::describe();
    #[cfg(feature = "db")]
    towerkit_db::metrics::describe();
    #[cfg(feature = "timing")]
    towerkit_timing::metrics::describe();
}

#[doc = include_str!("../GUIDE.md")]
pub mod guide {}

/// This crate's README (the crates.io page): its examples, compiled and run as doc tests.
/// (The workspace README holds no Rust: its examples are the guide's and this README's.)
#[doc = include_str!("../README.md")]
#[cfg(doctest)]
pub struct ReadmeDoctests;
