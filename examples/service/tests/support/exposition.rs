//! What the metrics tests share: a mixed load on the service, and the checks `/metrics`
//! must pass after it (a help text and a type for every family, then `promtool check
//! metrics`).

use std::collections::{BTreeMap, BTreeSet};
use std::io::Write;
use std::process::{Command, Stdio};

use axum::http::{Method, StatusCode};
use serde_json::json;

use super::TestApp;

/// Requests of every kind the layers count: cache misses, hits and bypasses, concurrent
/// misses on one key, compressed and identity responses, pages and projections, writes
/// (with invalidation), and client errors (400, 401, 404).
pub async fn mixed_load(app: &TestApp) {
    for path in [
        "/api/products?limit=50",
        "/api/products?limit=50",
        "/api/products?limit=5&fields=id,name",
        "/api/products?limit=5&fields=id,name",
        "/api/products/1",
        "/api/products/1",
        "/api/categories",
        "/api/categories?limit=1",
    ] {
        for encoding in ["gzip", "br", "zstd", "identity"] {
            let reply = app
                .send(
                    app.request(Method::GET, path)
                        .header("accept-encoding", encoding),
                )
                .await;
            assert_eq!(reply.status, StatusCode::OK, "GET {path} ({encoding})");
        }
    }
    // With credentials: neither served from nor stored in the cache.
    let reply = app
        .send(
            app.request(Method::GET, "/api/products/2")
                .header("authorization", "Bearer x"),
        )
        .await;
    assert_eq!(reply.status, StatusCode::OK);
    // Concurrent misses on one key wait for one origin call.
    let mut concurrent = tokio::task::JoinSet::new();
    for _ in 0..8 {
        let router = app.router.clone();
        let request = app
            .request(Method::GET, "/api/products?limit=7")
            .body(axum::body::Body::empty())
            .expect("request");
        concurrent.spawn(async move {
            use tower::ServiceExt;
            router.oneshot(request).await.map(|r| r.status())
        });
    }
    while let Some(status) = concurrent.join_next().await {
        assert_eq!(status.expect("no panic"), Ok(StatusCode::OK));
    }
    // Client errors.
    for (path, status) in [
        ("/api/products?limit=abc", StatusCode::BAD_REQUEST),
        ("/api/products?fields=data(id", StatusCode::BAD_REQUEST),
        ("/api/products/999999", StatusCode::NOT_FOUND),
        ("/nope", StatusCode::NOT_FOUND),
    ] {
        assert_eq!(app.get(path).await.status, status, "GET {path}");
    }
    let body = json!({"name": "Metered", "category_id": 1, "price_cents": 5});
    let unauthenticated = app
        .send_request(
            app.request(Method::PUT, "/api/products/2")
                .header("content-type", "application/json")
                .body(axum::body::Body::from(body.to_string()))
                .expect("request"),
        )
        .await;
    assert_eq!(unauthenticated.status, StatusCode::UNAUTHORIZED);
    // A write: invalidates the product's cached responses.
    assert_eq!(
        app.send_json(Method::PUT, "/api/products/2", &body)
            .await
            .status,
        StatusCode::OK
    );
    assert_eq!(app.get("/api/products/2").await.status, StatusCode::OK);
}

/// The metric families `/metrics` must show after [`mixed_load`] and a Redis outage:
/// every metric of every towerkit crate the service uses, but those its routes never
/// cause (`towerkit_operation_duration_seconds`: no `TimingLayer::operation`;
/// `towerkit_n_plus_one_total`: no handler repeats a query) and
/// `http_cache_coalesced_requests_total`, which the concurrent misses may or may not count
/// (with Redis, requests can wait on the store's lease instead: `http_cache_lease_events_total`).
/// Whichever families are there, [`check`] wants a help text for each.
pub const FAMILIES: [&str; 15] = [
    "db_client_connection_max",
    "db_client_connection_pending_requests",
    "db_client_connection_wait_time_seconds",
    "db_client_connections",
    "db_client_operation_duration_seconds",
    "http_cache_l1_bytes",
    "http_cache_l1_entries",
    "http_cache_lease_events_total",
    "http_cache_not_stored_total",
    "http_cache_redis_errors_total",
    "http_cache_requests_total",
    "http_cache_store_operation_duration_seconds",
    "http_server_compression_input_bytes_total",
    "http_server_compression_output_bytes_total",
    "http_server_request_duration_seconds",
];

/// Checks a `/metrics` text: every family in [`FAMILIES`] is there, each family has a
/// `# HELP` line with a text and a `# TYPE` line, every sample belongs to a typed family,
/// and `promtool check metrics` (Prometheus' own linter) finds nothing.
pub fn check(text: &str) {
    let mut help: BTreeMap<&str, &str> = BTreeMap::new();
    let mut types: BTreeMap<&str, &str> = BTreeMap::new();
    let mut samples: BTreeSet<&str> = BTreeSet::new();
    for line in text.lines() {
        if let Some(rest) = line.strip_prefix("# HELP ") {
            let (name, text) = rest.split_once(' ').unwrap_or((rest, ""));
            help.insert(name, text.trim());
        } else if let Some(rest) = line.strip_prefix("# TYPE ") {
            let (name, kind) = rest.split_once(' ').unwrap_or((rest, ""));
            types.insert(name, kind);
        } else if !line.is_empty() && !line.starts_with('#') {
            samples.insert(line.split(['{', ' ']).next().unwrap_or(line));
        }
    }
    let missing: Vec<&str> = FAMILIES
        .into_iter()
        .filter(|family| !types.contains_key(family))
        .collect();
    assert!(missing.is_empty(), "families missing: {missing:?}\n{text}");
    let undescribed: Vec<&str> = types
        .keys()
        .filter(|family| help.get(*family).is_none_or(|h| h.is_empty()))
        .copied()
        .collect();
    assert!(
        undescribed.is_empty(),
        "no # HELP for {undescribed:?}\n{text}"
    );
    let untyped: Vec<&str> = samples
        .iter()
        .filter(|sample| {
            !types.contains_key(*sample)
                && !["_bucket", "_sum", "_count"].iter().any(|suffix| {
                    sample
                        .strip_suffix(suffix)
                        .is_some_and(|family| types.contains_key(family))
                })
        })
        .copied()
        .collect();
    assert!(
        untyped.is_empty(),
        "samples without # TYPE: {untyped:?}\n{text}"
    );
    promtool_check_metrics(text);
}

/// `promtool check metrics` on `text`: fails on any problem it reports, and when promtool
/// cannot be run (`cargo xtask test` installs it; it comes with Prometheus).
pub fn promtool_check_metrics(text: &str) {
    let promtool = std::env::var_os("PROMTOOL").unwrap_or_else(|| "promtool".into());
    let mut child = match Command::new(&promtool)
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
    {
        Ok(child) => child,
        Err(error) => panic!(
            "cannot run {}: {error}. This test checks /metrics with Prometheus' promtool: \
             run the tests with `cargo xtask test`, which fetches it when missing, or install \
             it yourself (Debian/Ubuntu: `apt-get install prometheus`; macOS: `brew install \
             prometheus`), or point PROMTOOL at the binary",
            promtool.to_string_lossy()
        ),
    };
    child
        .stdin
        .take()
        .expect("piped stdin")
        .write_all(text.as_bytes())
        .expect("write to promtool");
    let output = child.wait_with_output().expect("promtool runs");
    assert!(
        output.status.success(),
        "promtool check metrics failed ({}):\n{}{}\n--- /metrics:\n{text}",
        output.status,
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
}
