//! The metrics this crate records through the [`metrics`](https://docs.rs/metrics) crate, in
//! Prometheus form following OpenTelemetry naming. Install any recorder (for example
//! `metrics-exporter-prometheus`) to collect them; without one they cost next to nothing.
//!
//! | name | type | unit | labels |
//! |---|---|---|---|
//! | `http_server_request_duration_seconds` | histogram | seconds | `http_request_method` (`GET`, …, `_OTHER`), `http_route` (route template or `unmatched`), `http_response_status_class` (`2xx`, …, `error` when the inner service fails, `cancelled` when the request was dropped before it answered: an outer timeout, a client disconnect) |
//! | `towerkit_operation_duration_seconds` | histogram | seconds | `operation`, `outcome` (`ok`, `error`, `cancelled`) |
//! | `db_client_operation_duration_seconds` | histogram | seconds | `db_system_name`, `db_operation_name`, `db_collection_name`, `db_query_summary` |
//! | `towerkit_n_plus_one_total` | counter | requests | `operation` (route template or operation name), `db_query_summary` |
//!
//! Histogram buckets are chosen by the exporter. With `metrics-exporter-prometheus`, use
//! OpenTelemetry's boundaries:
//!
//! ```
//! use metrics_exporter_prometheus::{Matcher, PrometheusBuilder};
//! use towerkit_timing::metrics::{
//!     DB_CLIENT_OPERATION_DURATION, DB_DURATION_BUCKETS, HTTP_DURATION_BUCKETS,
//!     HTTP_SERVER_REQUEST_DURATION,
//! };
//!
//! let builder = PrometheusBuilder::new()
//!     .set_buckets_for_metric(Matcher::Full(HTTP_SERVER_REQUEST_DURATION.into()), &HTTP_DURATION_BUCKETS)
//!     .and_then(|b| b.set_buckets_for_metric(Matcher::Full(DB_CLIENT_OPERATION_DURATION.into()), &DB_DURATION_BUCKETS))
//!     .expect("non-empty buckets");
//! # let _ = builder;
//! ```

pub use crate::handle::HistogramCell;

/// The HTTP server histogram (seconds), labels `http_request_method`, `http_route`,
/// `http_response_status_class`.
pub const HTTP_SERVER_REQUEST_DURATION: &str = "http_server_request_duration_seconds";

/// The histogram of [`TimingLayer::operation`](crate::TimingLayer::operation) (seconds),
/// labels `operation`, `outcome`.
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
pub fn describe() {
    ::metrics::describe_histogram!(
        HTTP_SERVER_REQUEST_DURATION,
        ::metrics::Unit::Seconds,
        "Duration of HTTP server requests"
    );
    ::metrics::describe_histogram!(
        OPERATION_DURATION,
        ::metrics::Unit::Seconds,
        "Duration of calls through a TimingLayer"
    );
    ::metrics::describe_histogram!(
        DB_CLIENT_OPERATION_DURATION,
        ::metrics::Unit::Seconds,
        "Duration of database client operations"
    );
    ::metrics::describe_counter!(
        N_PLUS_ONE_TOTAL,
        "Requests that ran one query summary more than the N+1 threshold"
    );
}
