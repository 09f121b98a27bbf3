//! `GET /ops/queries`: off by default, on the admin listener only when `QUERY_STATS=on`,
//! never on the public router; a top-N JSON table with the last plan of slow reads
//! (`EXPLAIN_SLOW_QUERIES=on`) and never a parameter value.

mod support;

use std::time::Duration;

use axum::http::{Method, StatusCode};
use serde_json::{Value, json};
use support::TestApp;
use towerkit_test_support::Logs;

/// A product name no log line or statistic may show.
const SECRET: &str = "secret-teapot-7f3a9c";

#[tokio::test]
async fn the_endpoint_is_off_by_default() {
    let app = TestApp::start().await;
    assert_eq!(
        app.admin_get("/ops/queries").await.status,
        StatusCode::NOT_FOUND
    );
    assert_eq!(app.get("/ops/queries").await.status, StatusCode::NOT_FOUND);
    // The admin listener itself is there.
    assert_eq!(app.admin_get("/metrics").await.status, StatusCode::OK);
}

#[tokio::test]
async fn when_on_it_serves_a_top_n_table_on_the_admin_listener_only() {
    let logs = Logs::capture();
    let app = TestApp::start_with(|config| {
        config.query_stats = true;
        config.explain_slow_queries = true;
        // Every query is slow, so every read is explained (once per summary).
        config.slow_warn = Duration::ZERO;
    })
    .await;
    let body = json!({"name": SECRET, "category_id": 2, "price_cents": 1234, "stock": 9});
    let created = app.send_json(Method::POST, "/api/products", &body).await;
    assert_eq!(created.status, StatusCode::CREATED);
    for _ in 0..3 {
        assert_eq!(app.get("/api/products/1").await.status, StatusCode::OK);
    }

    // The plan is captured in the background: wait for a row with one.
    let mut table = Value::Null;
    for _ in 0..250 {
        let reply = app.admin_get("/ops/queries?top=1000").await;
        assert_eq!(reply.status, StatusCode::OK);
        assert!(
            support::header(&reply, "content-type").starts_with("application/json"),
            "{}",
            support::header(&reply, "content-type")
        );
        table = reply.json();
        if table["queries"]
            .as_array()
            .unwrap()
            .iter()
            .any(|row| row["plan"].is_object())
        {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let rows = table["queries"].as_array().unwrap();
    assert!(rows.len() >= 2, "{table}");
    let totals: Vec<f64> = rows
        .iter()
        .map(|row| row["total_ms"].as_f64().unwrap())
        .collect();
    assert!(totals.windows(2).all(|pair| pair[0] >= pair[1]), "{table}");
    for row in rows {
        for field in [
            "count", "total_ms", "p50_ms", "p95_ms", "p99_ms", "slow", "failed",
        ] {
            assert!(row[field].is_number(), "{field} in {row}");
        }
        assert!(!row["label"].as_str().unwrap().contains("WHERE"), "{row}");
    }
    let planned = rows
        .iter()
        .find(|row| row["plan"].is_object())
        .unwrap_or_else(|| panic!("no plan in {table}"));
    let plan = &planned["plan"];
    assert!(
        plan["node"].is_string() && plan["total_cost"].is_number(),
        "{plan}"
    );
    assert!(
        plan["rows"].is_number() && plan["captured_at_unix_ms"].as_u64().unwrap() > 0,
        "{plan}"
    );
    let insert = rows
        .iter()
        .find(|row| row["label"] == "insert_product")
        .unwrap_or_else(|| panic!("no insert_product row in {table}"));
    assert!(
        insert["plan"].is_null(),
        "a write is never explained: {insert}"
    );

    let top = app.admin_get("/ops/queries?top=1").await.json();
    assert_eq!(top["queries"].as_array().unwrap().len(), 1, "{top}");
    assert_eq!(top["queries"][0], rows[0], "{top}");
    let bad = app.admin_get("/ops/queries?top=0").await;
    assert_eq!(bad.status, StatusCode::BAD_REQUEST);
    assert_eq!(
        support::header(&bad, "content-type"),
        "application/problem+json"
    );
    assert_eq!(
        bad.json()["invalid-params"][0]["name"],
        "top",
        "{}",
        bad.text()
    );

    // Never on the public router.
    assert_eq!(app.get("/ops/queries").await.status, StatusCode::NOT_FOUND);
    // No parameter value in the table or the logs.
    assert!(!table.to_string().contains(SECRET), "{table}");
    assert!(!logs.text().contains(SECRET), "{}", logs.text());
    assert!(
        !logs.lines_with("slow query plan").is_empty(),
        "{}",
        logs.text()
    );
}
