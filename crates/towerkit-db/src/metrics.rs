//! The metrics a [`Db`](crate::Db) records through the [`metrics`](https://docs.rs/metrics)
//! crate, in Prometheus form following OpenTelemetry naming. Install any recorder (for
//! example `metrics-exporter-prometheus`) to collect them; without one they cost next to
//! nothing. Every pool metric carries the label `db_client_connection_pool_name` (the
//! config's `pool_name`, `default` unless set).
//!
//! | name | type | unit | labels | OpenTelemetry instrument |
//! |---|---|---|---|---|
//! | `db_client_connections` | gauge | connections | `db_client_connection_pool_name`; `db_client_connection_state` = `idle`, `used` | `db.client.connection.count` |
//! | `db_client_connection_max` | gauge | connections | `db_client_connection_pool_name` | `db.client.connection.max` |
//! | `db_client_connection_pending_requests` | gauge | requests | `db_client_connection_pool_name` | `db.client.connection.pending_requests` |
//! | `db_client_connection_wait_time_seconds` | histogram | seconds | `db_client_connection_pool_name` | `db.client.connection.wait_time` |
//!
//! OpenTelemetry's `db.client.connection.count` would become `db_client_connections`
//! in Prometheus form, but Prometheus reserves the `_count` suffix for histograms and
//! summaries (`promtool check metrics` rejects a gauge named so): the gauge is
//! `db_client_connections`.
//!
//! The gauges are refreshed every second by the pool's background task, or at once by
//! [`Db::record_pool_metrics`](crate::Db::record_pool_metrics). Each query is recorded by
//! towerkit-timing in `db_client_operation_duration_seconds`
//! (`towerkit_timing::metrics::DB_CLIENT_OPERATION_DURATION`).
//!
//! Call [`describe`] once after installing the recorder (or the facade's
//! `towerkit::describe_metrics()`, which describes every towerkit crate): it gives each
//! metric above, and the query histogram, its help text and unit (`# HELP` lines with
//! `metrics-exporter-prometheus`). It speaks to the recorder installed at the time of the
//! call, so connecting the pool before or after installing the recorder makes no
//! difference; describing before installing it reaches nothing.

/// Gauge: connections by `db_client_connection_state` (`idle`, `used`); OpenTelemetry's
/// `db.client.connection.count`.
pub const CONNECTIONS: &str = "db_client_connections";
/// Gauge: the pool's maximum size.
pub const CONNECTION_MAX: &str = "db_client_connection_max";
/// Gauge: requests waiting for a connection.
pub const CONNECTION_PENDING_REQUESTS: &str = "db_client_connection_pending_requests";
/// Histogram: time to check out a connection, in seconds.
pub const CONNECTION_WAIT_TIME: &str = "db_client_connection_wait_time_seconds";

/// The pool-name label of every pool metric.
pub(crate) const POOL_NAME_LABEL: &str = "db_client_connection_pool_name";

/// Gives every metric above its help text and unit, in the recorder installed now (see the
/// module docs), and the query histogram too (`towerkit_timing::metrics::describe`, which
/// this calls). Idempotent; metrics work without it, with no help text.
pub fn describe() {
    use ::metrics::{Unit, describe_gauge, describe_histogram};
    describe_gauge!(
        CONNECTIONS,
        Unit::Count,
        "Connections in the pool, by state (idle, used)"
    );
    describe_gauge!(
        CONNECTION_MAX,
        Unit::Count,
        "Largest number of connections the pool may open"
    );
    describe_gauge!(
        CONNECTION_PENDING_REQUESTS,
        Unit::Count,
        "Requests waiting for a connection from the pool"
    );
    describe_histogram!(
        CONNECTION_WAIT_TIME,
        Unit::Seconds,
        "Time to obtain a connection from the pool, in seconds"
    );
    towerkit_timing::metrics::describe();
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
        use towerkit_timing::metrics::DB_CLIENT_OPERATION_DURATION;
        let described = described(|| {
            for name in [CONNECTIONS, CONNECTION_MAX, CONNECTION_PENDING_REQUESTS] {
                ::metrics::gauge!(name).set(1.0);
            }
            ::metrics::histogram!(CONNECTION_WAIT_TIME).record(0.001);
            ::metrics::histogram!(DB_CLIENT_OPERATION_DURATION).record(0.001);
        });
        assert_eq!(described.len(), 5);
        for (name, unit, help) in described {
            assert!(unit.is_some(), "{name} has no unit");
            assert!(
                help.is_some_and(|h| !h.is_empty()),
                "{name} has no help text"
            );
        }
    }
}
