//! `GET /ops/queries`: the query statistics as a top-N table in JSON, for the admin listener
//! only, and only when `QUERY_STATS=on`.
//!
//! Each row is one query label (a summary such as `SELECT products`, never SQL text or a
//! parameter value): executions, total and p50/p95/p99 time, slow and failed counts, and
//! the last captured plan's top node, cost, rows and capture time
//! (`EXPLAIN_SLOW_QUERIES=on`). `?top=N` (1 to 1000, default 20) sets how many rows, by
//! total time.

use std::time::{Duration, UNIX_EPOCH};

use axum::extract::{Query, State};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::{Value, json};
use towerkit::db::Db;
use towerkit::json::Problem;
use towerkit::timing::{LabelStats, PlanSummary};

/// The rows shown without `?top=`.
pub const DEFAULT_TOP: usize = 20;
/// The most rows `?top=` may ask for.
pub const MAX_TOP: usize = 1000;

/// The operations routes over `db`'s statistics: `GET /ops/queries`.
pub fn routes(db: Db) -> Router {
    Router::new()
        .route("/ops/queries", get(queries))
        .with_state(db)
}

#[derive(Debug, Deserialize)]
struct TopQuery {
    top: Option<String>,
}

/// `GET /ops/queries?top=N`: 400 problem+json for a `top` that is not 1 to 1000.
async fn queries(State(db): State<Db>, Query(query): Query<TopQuery>) -> Response {
    let top = match query.top.as_deref().map(str::parse::<usize>) {
        None => DEFAULT_TOP,
        Some(Ok(n)) if (1..=MAX_TOP).contains(&n) => n,
        Some(_) => {
            let reason = format!("must be a whole number from 1 to {MAX_TOP}");
            return Problem::bad_request(format!("invalid top: {reason}"))
                .with_invalid_param("top", reason)
                .into_response();
        }
    };
    let stats = db.stats();
    let rows: Vec<Value> = stats.top(top).into_iter().map(row).collect();
    Json(json!({ "queries": rows })).into_response()
}

/// One label's row. Durations in milliseconds.
fn row(stats: &LabelStats) -> Value {
    json!({
        "label": stats.label,
        "count": stats.count,
        "total_ms": millis(stats.total),
        "p50_ms": millis(stats.p50),
        "p95_ms": millis(stats.p95),
        "p99_ms": millis(stats.p99),
        "slow": stats.slow,
        "failed": stats.failed,
        "plan": stats.plan.as_ref().map(plan),
    })
}

fn plan(plan: &PlanSummary) -> Value {
    let captured_at_ms = plan
        .captured_at
        .duration_since(UNIX_EPOCH)
        .map_or(0, |since| {
            u64::try_from(since.as_millis()).unwrap_or(u64::MAX)
        });
    json!({
        "node": plan.node,
        "total_cost": plan.total_cost,
        "rows": plan.rows,
        "captured_at_unix_ms": captured_at_ms,
    })
}

fn millis(duration: Duration) -> f64 {
    duration.as_secs_f64() * 1000.0
}
