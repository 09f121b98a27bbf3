//! Queries against the shared PostgreSQL: results, typed errors, timing, logs, labels,
//! per-session settings, statement caching, and the request collector.

mod common;

use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::extract::{Path, State};
use axum::response::IntoResponse;
use axum::routing::get;
use common::{Schema, builder, config};
use http::{Request, StatusCode};
use http_body_util::BodyExt;
use tokio_postgres::error::SqlState;
use tower::ServiceExt;
use towerkit_db::{Db, DbError};
use towerkit_test_support::{Logs, Metrics};
use towerkit_timing::{QueryTimer, TimingLayer};

async fn products(db: &Db, schema: &Schema) -> String {
    let table = schema.table("products");
    db.execute(
        &format!(
            "CREATE TABLE {table} (id int PRIMARY KEY, name text NOT NULL, email text UNIQUE)"
        ),
        &[],
    )
    .await
    .unwrap();
    table
}

/// A query timer that logs queries slower than `warn_ms` and `error_ms`.
fn timer(warn_ms: u64, error_ms: u64) -> QueryTimer {
    QueryTimer::builder("postgresql")
        .slow(
            Duration::from_millis(warn_ms),
            Duration::from_millis(error_ms),
        )
        .build()
        .unwrap()
}

#[tokio::test]
async fn query_methods_return_rows_and_counts() {
    let schema = Schema::create().await;
    let db = Db::connect(config()).await.unwrap();
    let table = products(&db, &schema).await;
    let inserted = db
        .execute(
            &format!("INSERT INTO {table} (id, name) VALUES (1, 'mug'), (2, 'tea')"),
            &[],
        )
        .await
        .unwrap();
    assert_eq!(inserted, 2);
    let rows = db
        .query(&format!("SELECT name FROM {table} ORDER BY id"), &[])
        .await
        .unwrap();
    let names: Vec<String> = rows.iter().map(|row| row.get(0)).collect();
    assert_eq!(names, ["mug", "tea"]);
    let one = db
        .query_one(
            &format!("SELECT name FROM {table} WHERE id = $1"),
            &[&2_i32],
        )
        .await
        .unwrap();
    assert_eq!(one.get::<_, String>(0), "tea");
    let none = db
        .query_opt(
            &format!("SELECT name FROM {table} WHERE id = $1"),
            &[&3_i32],
        )
        .await
        .unwrap();
    assert!(none.is_none());
}

#[tokio::test]
async fn query_one_without_a_row_and_query_opt_with_two_are_row_count_errors() {
    let db = Db::connect(config()).await.unwrap();
    match db.query_one("SELECT 1 WHERE false", &[]).await {
        Err(DbError::RowCount { found, .. }) => assert_eq!(found, "no row"),
        other => panic!("expected a row-count error, got {other:?}"),
    }
    for result in [
        db.query_opt("SELECT * FROM generate_series(1, 1000000)", &[])
            .await
            .map(|_| ()),
        db.query_one("SELECT * FROM generate_series(1, 2)", &[])
            .await
            .map(|_| ()),
    ] {
        match result {
            Err(DbError::RowCount { found, summary }) => {
                assert_eq!(found, "more than one row");
                assert_eq!(summary, "SELECT generate_series");
            }
            other => panic!("expected a row-count error, got {other:?}"),
        }
    }
    // The connection is still usable after the abandoned result.
    assert_eq!(
        db.query_one("SELECT 7", &[])
            .await
            .unwrap()
            .get::<_, i32>(0),
        7
    );
}

#[tokio::test]
async fn a_failed_query_carries_its_sqlstate_and_counts_as_failed() {
    let db = Db::connect(config()).await.unwrap();
    let error = db
        .query("SELECT * FROM no_such_table_anywhere", &[])
        .await
        .unwrap_err();
    assert_eq!(error.sqlstate(), Some(&SqlState::UNDEFINED_TABLE));
    assert_eq!(error.status(), StatusCode::INTERNAL_SERVER_ERROR);
    let message = error.to_string();
    assert!(
        message.contains("SELECT no_such_table_anywhere") && message.contains("42P01"),
        "{message}"
    );
    let stats = db.stats();
    let label = stats.get("SELECT no_such_table_anywhere").unwrap();
    assert_eq!((label.count, label.failed), (1, 1));
}

#[tokio::test]
async fn queries_are_recorded_in_the_histogram_and_stats() {
    let metrics = Metrics::capture();
    let schema = Schema::create().await;
    let db = Db::connect(config()).await.unwrap();
    let table = products(&db, &schema).await;
    for id in 0..3 {
        db.execute(
            &format!("INSERT INTO {table} (id, name) VALUES ($1, 'x')"),
            &[&id],
        )
        .await
        .unwrap();
    }
    let samples = metrics.histogram(
        towerkit_timing::metrics::DB_CLIENT_OPERATION_DURATION,
        &[
            ("db_system_name", "postgresql"),
            ("db_operation_name", "INSERT"),
            ("db_collection_name", &table),
            ("db_query_summary", &format!("INSERT {table}")),
        ],
    );
    assert_eq!(samples.len(), 3);
    assert!(samples.iter().all(|&s| s > 0.0));
    let stats = db.stats();
    let insert = stats.get(&format!("INSERT {table}")).unwrap();
    assert_eq!((insert.count, insert.slow, insert.failed), (3, 0, 0));
    assert!(insert.p50 > Duration::ZERO && insert.p50 <= insert.p99);
}

#[tokio::test]
async fn slow_queries_are_logged_with_summary_sql_duration_and_rows_but_no_parameters() {
    let logs = Logs::capture();
    let db = Db::connect(builder().timer(timer(100, 3_600_000)).build().unwrap())
        .await
        .unwrap();
    db.query(
        "SELECT pg_sleep(0.15), $1::text AS email, 'inline secret' AS s",
        &[&"alice@example.com"],
    )
    .await
    .unwrap();
    let lines = logs.lines_with("slow query");
    assert_eq!(lines.len(), 1, "{}", logs.text());
    let line = &lines[0];
    assert!(line.contains("WARN"), "{line}");
    assert!(line.contains(r#"summary="SELECT""#), "{line}");
    assert!(
        line.contains(r#"sql="SELECT pg_sleep(?), $1::text AS email, ? AS s""#),
        "{line}"
    );
    assert!(
        line.contains("duration_ms=") && line.contains("rows=1"),
        "{line}"
    );
    assert!(
        !line.contains("alice") && !line.contains("inline secret"),
        "{line}"
    );
    assert_eq!(db.stats().get("SELECT").unwrap().slow, 1);
}

#[tokio::test]
async fn queries_above_the_error_threshold_are_logged_at_error() {
    let logs = Logs::capture();
    let db = Db::connect(builder().timer(timer(10, 100)).build().unwrap())
        .await
        .unwrap();
    db.query("SELECT pg_sleep(0.15)", &[]).await.unwrap();
    let lines = logs.lines_with("very slow query");
    assert_eq!(lines.len(), 1, "{}", logs.text());
    assert!(lines[0].contains("ERROR"), "{}", lines[0]);
}

#[tokio::test]
async fn fast_queries_are_not_logged() {
    let logs = Logs::capture();
    let db = Db::connect(
        builder()
            .timer(timer(3_600_000, 3_600_000))
            .build()
            .unwrap(),
    )
    .await
    .unwrap();
    db.query("SELECT 1", &[]).await.unwrap();
    assert!(logs.lines_with("slow query").is_empty(), "{}", logs.text());
}

#[tokio::test]
async fn named_queries_are_labelled_by_their_name() {
    let db = Db::connect(config()).await.unwrap();
    db.named("answer")
        .query_one("SELECT 42", &[])
        .await
        .unwrap();
    let stats = db.stats();
    assert_eq!(stats.get("answer").map(|s| s.count), Some(1));
    assert!(stats.get("SELECT").is_none());
}

#[tokio::test]
async fn statement_timeout_is_set_on_every_connection() {
    let db = Db::connect(
        builder()
            .statement_timeout(Some(Duration::from_millis(100)))
            .build()
            .unwrap(),
    )
    .await
    .unwrap();
    let error = db.query("SELECT pg_sleep(2)", &[]).await.unwrap_err();
    assert_eq!(error.sqlstate(), Some(&SqlState::QUERY_CANCELED), "{error}");
    assert_eq!(error.status(), StatusCode::SERVICE_UNAVAILABLE);
    let setting: String = db
        .query_one("SELECT current_setting('statement_timeout')", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(setting, "100ms");
}

#[tokio::test]
async fn application_name_is_set_on_every_connection() {
    let db = Db::connect(builder().application_name("catalog-api").build().unwrap())
        .await
        .unwrap();
    let name: String = db
        .query_one("SELECT current_setting('application_name')", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(name, "catalog-api");
    let db = Db::connect(config()).await.unwrap();
    let name: String = db
        .query_one("SELECT current_setting('application_name')", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(name, towerkit_db::DEFAULT_APPLICATION_NAME);
}

#[tokio::test]
async fn prepared_statements_are_cached_per_connection_within_a_bound() {
    let db = Db::connect(
        builder()
            .max_size(1)
            .statement_cache_capacity(3)
            .build()
            .unwrap(),
    )
    .await
    .unwrap();
    for _ in 0..3 {
        db.query_one("SELECT 1", &[]).await.unwrap();
    }
    assert_eq!(db.pool().get().await.unwrap().statement_cache.size(), 1);
    for n in 0..10 {
        db.query_one(&format!("SELECT {n}"), &[]).await.unwrap();
        assert!(db.pool().get().await.unwrap().statement_cache.size() <= 3);
    }
}

#[tokio::test]
async fn an_error_response_leaks_neither_sql_nor_values() {
    let schema = Schema::create().await;
    let db = Db::connect(config()).await.unwrap();
    let table = products(&db, &schema).await;
    let insert = format!("INSERT INTO {table} (id, name, email) VALUES ($1, 'x', $2)");
    db.execute(&insert, &[&1_i32, &"secret@example.com"])
        .await
        .unwrap();
    let error = db
        .execute(&insert, &[&2_i32, &"secret@example.com"])
        .await
        .unwrap_err();
    assert_eq!(error.sqlstate(), Some(&SqlState::UNIQUE_VIOLATION));
    let response = error.into_response();
    assert_eq!(response.status(), StatusCode::INTERNAL_SERVER_ERROR);
    assert_eq!(
        response.headers()["content-type"],
        "application/problem+json"
    );
    let body = String::from_utf8(
        response
            .into_body()
            .collect()
            .await
            .unwrap()
            .to_bytes()
            .to_vec(),
    )
    .unwrap();
    for leak in [
        "secret",
        "INSERT",
        "products",
        "towerkit_db_test",
        "unique",
        "postgres",
    ] {
        assert!(!body.contains(leak), "{leak:?} in {body}");
    }
}

async fn order_lines(State(db): State<Db>, Path(id): Path<i32>) -> Result<String, DbError> {
    let mut total = 0;
    for line in 0..11 {
        let row = db
            .query_one("SELECT $1::int + $2::int", &[&id, &line])
            .await?;
        total += row.get::<_, i32>(0);
    }
    let committed = db
        .transaction(|tx| async move {
            let row = tx
                .named("order_total")
                .query_one("SELECT $1::int", &[&total])
                .await?;
            Ok::<i32, DbError>(row.get(0))
        })
        .await?;
    Ok(committed.to_string())
}

#[tokio::test]
async fn handler_queries_reach_server_timing_and_n_plus_one_detection() {
    let logs = Logs::capture();
    let db = Db::connect(config()).await.unwrap();
    let app = Router::new()
        .route("/orders/{id}", get(order_lines))
        .with_state(db)
        .layer(TimingLayer::builder().server_timing(true).build().unwrap());
    let response = app
        .oneshot(Request::get("/orders/1").body(Body::empty()).unwrap())
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    let server_timing = response.headers()["server-timing"]
        .to_str()
        .unwrap()
        .to_owned();
    // 11 queries, then BEGIN, one query and COMMIT in the transaction.
    assert!(
        server_timing.contains(r#"desc="14 queries""#),
        "{server_timing}"
    );
    let body = response.into_body().collect().await.unwrap().to_bytes();
    assert_eq!(body, "66");
    let lines = logs.lines_with("N+1");
    assert_eq!(lines.len(), 1, "{}", logs.text());
    assert!(
        lines[0].contains(r#"route="/orders/{id}""#) && lines[0].contains(r#"summary="SELECT""#),
        "{}",
        lines[0]
    );
    assert!(lines[0].contains("count=11"), "{}", lines[0]);
}
