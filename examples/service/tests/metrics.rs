//! Every metric the Grafana dashboard and the Prometheus alerts use is exported by the
//! service once it has seen traffic, including a Redis outage; every family has a help
//! text, and `promtool check metrics` passes.

mod support;

use std::collections::BTreeSet;

use axum::http::StatusCode;
use support::{TestApp, exposition};
use towerkit_test_support::servers::Redis;

/// Label names that share the metric prefixes.
const LABELS: [&str; 5] = [
    "http_route",
    "http_response_status_class",
    "http_request_method",
    "db_client_connection_state",
    "db_operation_name",
];

/// Metric names in PromQL expressions: identifiers starting with one of our prefixes.
fn metric_names(text: &str) -> BTreeSet<String> {
    let mut names = BTreeSet::new();
    let bytes = text.as_bytes();
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i].is_ascii_alphabetic()
            && (i == 0 || !(bytes[i - 1].is_ascii_alphanumeric() || bytes[i - 1] == b'_'))
        {
            let start = i;
            while i < bytes.len() && (bytes[i].is_ascii_alphanumeric() || bytes[i] == b'_') {
                i += 1;
            }
            let word = &text[start..i];
            let label = LABELS.contains(&word);
            if ["http_", "db_client_", "towerkit_"]
                .iter()
                .any(|p| word.starts_with(p))
                && !label
            {
                names.insert(word.to_owned());
            }
        } else {
            i += 1;
        }
    }
    names
}

/// The recorder installed after every layer is built, and after the service has already
/// answered requests (recorded nowhere): the help texts still reach `/metrics`, and so do
/// the samples recorded from then on. `metrics_recorder_first.rs` checks the other order
/// (each order needs a process of its own: the recorder is process-wide).
#[tokio::test]
async fn every_dashboard_and_alert_metric_is_exported_and_described() {
    let dashboards = concat!(
        include_str!("../dashboards/grafana.json"),
        include_str!("../dashboards/prometheus-alerts.yml")
    );
    let wanted = metric_names(dashboards);
    assert!(wanted.len() >= 10, "{wanted:?}");

    let mut redis = Redis::start().expect("redis-server starts");
    let app = TestApp::start_with(|c| {
        c.redis_url = Some(redis.url());
        c.redis_prefix = Some(support::unique("metrics"));
    })
    .await;
    // Before any recorder: these go nowhere.
    for path in [
        "/api/products?limit=50",
        "/api/products/1",
        "/api/categories",
    ] {
        assert_eq!(app.get(path).await.status, StatusCode::OK);
    }
    example_service::install_metrics_recorder();
    exposition::mixed_load(&app).await;

    // Redis goes away: the cache falls back to memory and the origin, no request fails.
    redis.kill();
    for id in 3..8 {
        let response = app.get(&format!("/api/products/{id}")).await;
        assert_eq!(
            response.status,
            StatusCode::OK,
            "a Redis outage must not fail requests"
        );
    }

    let metrics = app.admin_get("/metrics").await;
    assert_eq!(metrics.status, StatusCode::OK);
    let text = metrics.text();
    let exported: BTreeSet<&str> = text
        .lines()
        .filter(|l| !l.starts_with('#'))
        .filter_map(|l| l.split(['{', ' ']).next())
        .collect();
    let missing: Vec<&String> = wanted
        .iter()
        .filter(|name| {
            !exported.contains(name.as_str())
                && !["_bucket", "_count", "_sum"]
                    .iter()
                    .any(|s| exported.contains(format!("{name}{s}").as_str()))
                && !name
                    .strip_suffix("_bucket")
                    .or(name.strip_suffix("_count"))
                    .is_some_and(|base| exported.contains(format!("{base}_bucket").as_str()))
        })
        .collect();
    assert!(missing.is_empty(), "not exported: {missing:?}\n{text}");
    for label in [
        "http_route=\"/api/products\"",
        "tier=\"l1\"",
        "encoding=\"gzip\"",
        "db_operation_name=",
        "db_client_connection_state=",
    ] {
        assert!(text.contains(label), "no {label} in /metrics:\n{text}");
    }
    exposition::check(&text);
}
