//! The `tracing` spans of queries and pool waits, named and attributed after
//! OpenTelemetry's database client conventions, which `tracing-opentelemetry` (or any
//! subscriber) turns into trace spans under the request's.
//!
//! Kept apart from the running and timing of queries (`inner.rs`) so that both read on
//! their own. Nothing is formatted for a span nobody keeps.

use towerkit_timing::QueryLabel;
use tracing::Span;
use tracing::field::Empty;

use crate::error::DbError;

/// The `tracing` target of these spans.
const TARGET: &str = "towerkit_db";

/// The `db.system.name` of every span here.
const SYSTEM: &str = "postgresql";

/// A span for one query (or transaction-control statement): `db.system.name`,
/// `db.query.summary` (`SELECT products`, or the caller's name), `db.operation.name`,
/// `db.collection.name` when the statement names a table, and `db.query.text` only when
/// `with_text` ([`DbConfigBuilder::trace_query_text`](crate::DbConfigBuilder::trace_query_text)):
/// the statement as sent, with its `$n` placeholders; parameter values are never recorded.
/// Its name (`otel.name`) is the summary, as the conventions ask.
pub(crate) fn query(label: &QueryLabel, sql: &str, with_text: bool) -> Span {
    let span = tracing::info_span!(
        target: TARGET,
        "db.query",
        otel.name = Empty,
        otel.kind = "client",
        otel.status_code = Empty,
        db.system.name = SYSTEM,
        db.query.summary = Empty,
        db.operation.name = Empty,
        db.collection.name = Empty,
        db.query.text = Empty,
        error.type = Empty,
    );
    if span.is_disabled() {
        return span;
    }
    span.record("otel.name", label.summary());
    span.record("db.query.summary", label.summary());
    span.record("db.operation.name", label.operation());
    if let Some(collection) = label.collection() {
        span.record("db.collection.name", collection);
    }
    if with_text {
        span.record("db.query.text", sql);
    }
    span
}

/// Records a failed query on its span: an error status and `error.type`, the kind of
/// failure (never the server's message, which may quote a value).
pub(crate) fn query_failed(span: &Span, error: &DbError) {
    if span.is_disabled() {
        return;
    }
    span.record("otel.status_code", "ERROR");
    span.record("error.type", error_type(error));
}

/// A span for a wait on the pool: taken only when no connection was free at once, so a
/// trace shows when a request queued for a connection (`db.client.connection.pool.name`).
pub(crate) fn pool_wait(pool_name: &str) -> Span {
    tracing::info_span!(
        target: TARGET,
        "db.client.connection.wait",
        db.system.name = SYSTEM,
        db.client.connection.pool.name = pool_name,
    )
}

/// The `error.type` of a failure: its variant, a closed set.
fn error_type(error: &DbError) -> &'static str {
    match error {
        DbError::Query { .. } => "query",
        DbError::QueryTimeout { .. } => "timeout",
        DbError::RowCount { .. } => "row_count",
        DbError::PoolTimeout(_) => "pool_timeout",
        _ => "other",
    }
}
