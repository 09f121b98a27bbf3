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
//! The first three are OpenTelemetry's `http.server.request.duration`, a towerkit
//! operation histogram, and `db.client.operation.duration`; the counter is towerkit's own.
//!
//! Call [`describe`] once after installing the recorder (or the facade's
//! `towerkit::describe_metrics()`, which describes every towerkit crate): it gives each
//! metric its help text and unit (`# HELP` lines with `metrics-exporter-prometheus`). It
//! speaks to the recorder installed at the time of the call, so building the layers before
//! or after installing the recorder makes no difference; describing before installing it
//! reaches nothing.
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

pub use towerkit_http::metric_cell::HistogramCell;

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

/// Gives every metric above its help text and unit, in the recorder installed now (see the
/// module docs). Idempotent; metrics work without it, with no help text.
pub fn describe() {
    ::metrics::describe_histogram!(
        HTTP_SERVER_REQUEST_DURATION,
        ::metrics::Unit::Seconds,
        "Duration of HTTP server requests, in seconds"
    );
    ::metrics::describe_histogram!(
        OPERATION_DURATION,
        ::metrics::Unit::Seconds,
        "Duration of operations timed by a TimingLayer, in seconds"
    );
    ::metrics::describe_histogram!(
        DB_CLIENT_OPERATION_DURATION,
        ::metrics::Unit::Seconds,
        "Duration of database client operations (SQL statements), in seconds"
    );
    ::metrics::describe_counter!(
        N_PLUS_ONE_TOTAL,
        ::metrics::Unit::Count,
        "Requests that ran one query summary more than the N+1 threshold"
    );
}

#[cfg(test)]
mod tests {
    use metrics_util::debugging::DebuggingRecorder;

    use super::*;

    /// The metrics `register` records after [`describe`], each with its unit and help text
    /// (a description given for another kind of metric is not found).
    fn described(
        register: impl FnOnce(),
    ) -> Vec<(
        String,
        Option<::metrics::Unit>,
        Option<::metrics::SharedString>,
    )> {
        let recorder = DebuggingRecorder::new();
        let snapshotter = recorder.snapshotter();
        ::metrics::with_local_recorder(&recorder, || {
            describe();
            register();
        });
        snapshotter
            .snapshot()
            .into_vec()
            .into_iter()
            .map(|(key, unit, help, _)| (key.key().name().to_owned(), unit, help))
            .collect()
    }

    #[test]
    fn describe_gives_every_metric_its_kind_a_unit_and_a_help_text() {
        let described = described(|| {
            for name in [
                HTTP_SERVER_REQUEST_DURATION,
                OPERATION_DURATION,
                DB_CLIENT_OPERATION_DURATION,
            ] {
                ::metrics::histogram!(name).record(0.001);
            }
            ::metrics::counter!(N_PLUS_ONE_TOTAL).increment(1);
        });
        assert_eq!(described.len(), 4);
        for (name, unit, help) in described {
            assert!(unit.is_some(), "{name} has no unit");
            assert!(
                help.is_some_and(|h| !h.is_empty()),
                "{name} has no help text"
            );
        }
    }
}
