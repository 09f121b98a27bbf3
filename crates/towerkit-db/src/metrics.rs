//! The metrics a [`Db`](crate::Db) records through the [`metrics`](https://docs.rs/metrics)
//! crate, in Prometheus form following OpenTelemetry naming. Install any recorder (for
//! example `metrics-exporter-prometheus`) to collect them; without one they cost next to
//! nothing. Every pool metric carries the label `db_client_connection_pool_name` (the
//! config's `pool_name`, `default` unless set).
//!
//! | name | type | unit | labels |
//! |---|---|---|---|
//! | `db_client_connection_count` | gauge | connections | `db_client_connection_pool_name`; `db_client_connection_state` = `idle`, `used` |
//! | `db_client_connection_max` | gauge | connections | `db_client_connection_pool_name` |
//! | `db_client_connection_pending_requests` | gauge | requests | `db_client_connection_pool_name` |
//! | `db_client_connection_wait_time_seconds` | histogram | seconds | `db_client_connection_pool_name` |
//!
//! The gauges are refreshed every second by the pool's background task, or at once by
//! [`Db::record_pool_metrics`](crate::Db::record_pool_metrics). Each query is recorded by
//! towerkit-timing in `db_client_operation_duration_seconds`
//! (`towerkit_timing::metrics::DB_CLIENT_OPERATION_DURATION`).

/// Gauge: connections by `db_client_connection_state` (`idle`, `used`).
pub const CONNECTION_COUNT: &str = "db_client_connection_count";
/// Gauge: the pool's maximum size.
pub const CONNECTION_MAX: &str = "db_client_connection_max";
/// Gauge: requests waiting for a connection.
pub const CONNECTION_PENDING_REQUESTS: &str = "db_client_connection_pending_requests";
/// Histogram: time to check out a connection, in seconds.
pub const CONNECTION_WAIT_TIME: &str = "db_client_connection_wait_time_seconds";

/// The pool-name label of every pool metric.
pub(crate) const POOL_NAME_LABEL: &str = "db_client_connection_pool_name";
