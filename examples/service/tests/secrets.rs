//! Passwords from `DATABASE_URL`, `REDIS_URL` and `REDIS_CLUSTER_NODES`, and the bearer
//! tokens clients send, never show up in anything the service prints: logs, errors, `Debug`
//! output, problem bodies. And the log lines themselves: the slow-query thresholds the
//! configuration sets are the ones queries are logged at.

mod support;

use axum::http::{Method, StatusCode};
use example_service::{AppState, Config};
use support::{Reply, TestApp, header};
use towerkit::cache::RedisStore;
use towerkit_test_support::Logs;

const DB_PASSWORD: &str = "db-pw-9f3a7c";
const REDIS_PASSWORD: &str = "redis-pw-4b8e21";

/// A port on 127.0.0.1 that nothing listens on.
fn closed_port() -> u16 {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("a free port");
    listener.local_addr().expect("an address").port()
}

fn config(pairs: &[(&str, String)]) -> Config {
    Config::from_lookup(|name| {
        pairs
            .iter()
            .find(|(k, _)| *k == name)
            .map(|(_, v)| v.clone())
    })
    .expect("the configuration is valid")
}

fn assert_secret_free(what: &str, text: &str) {
    for secret in [DB_PASSWORD, REDIS_PASSWORD, support::TOKEN] {
        assert!(!text.contains(secret), "{what} shows a secret:\n{text}");
    }
}

fn everything(reply: &Reply) -> String {
    let mut all = reply.text();
    for (name, value) in &reply.headers {
        all.push_str(&format!("\n{name}: {}", value.to_str().unwrap_or("?")));
    }
    all
}

#[test]
fn config_debug_shows_where_but_not_the_passwords() {
    let config = config(&[
        (
            "DATABASE_URL",
            format!("postgres://app:{DB_PASSWORD}@db.internal:5433/shop?sslmode=require"),
        ),
        (
            "REDIS_URL",
            format!("redis://cache:{REDIS_PASSWORD}@redis.internal:6380/2"),
        ),
        ("API_TOKENS", support::TOKEN.to_owned()),
    ]);
    let debug = format!("{config:?}");
    assert_secret_free("Config's Debug", &debug);
    let pretty = format!("{config:#?}");
    assert_secret_free("Config's pretty Debug", &pretty);
    for shown in [
        "postgres://app:***@db.internal:5433/shop?sslmode=require",
        "redis://cache:***@redis.internal:6380/2",
    ] {
        assert!(debug.contains(shown), "{shown} missing from {debug}");
    }
}

#[test]
fn redis_store_builder_debug_hides_node_passwords() {
    let single = RedisStore::builder(format!("redis://:{REDIS_PASSWORD}@127.0.0.1:6379"));
    let debug = format!("{single:?}");
    assert_secret_free("RedisStoreBuilder's Debug", &debug);
    assert!(debug.contains("redis://:***@127.0.0.1:6379"), "{debug}");
    let socket = RedisStore::builder(format!(
        "redis+unix:///run/redis.sock?db=1&pass={REDIS_PASSWORD}"
    ));
    assert_secret_free("RedisStoreBuilder's Debug", &format!("{socket:?}"));
}

#[tokio::test]
async fn a_failing_start_up_never_prints_the_passwords() {
    let logs = Logs::capture();
    let config = config(&[
        (
            "DATABASE_URL",
            format!(
                "postgres://app:{DB_PASSWORD}@127.0.0.1:{}/shop?connect_timeout=2",
                closed_port()
            ),
        ),
        (
            "REDIS_URL",
            format!("redis://app:{REDIS_PASSWORD}@127.0.0.1:{}", closed_port()),
        ),
    ]);
    let config_debug = format!("{config:?}");
    let error = AppState::connect(config)
        .await
        .expect_err("the database is unreachable");
    assert_secret_free("Config's Debug", &config_debug);
    assert_secret_free("the start-up error's Display", &error.to_string());
    assert_secret_free("the start-up error's Debug", &format!("{error:?}"));
    assert!(error.to_string().starts_with("PostgreSQL"), "{error}");
    assert_secret_free("the logs", &logs.text());
}

#[tokio::test]
async fn an_unreachable_redis_with_a_password_leaks_it_nowhere() {
    let logs = Logs::capture();
    let app = TestApp::start_with(|c| {
        c.redis_url = Some(format!(
            "redis://app:{REDIS_PASSWORD}@127.0.0.1:{}",
            closed_port()
        ));
        c.redis_prefix = Some(support::unique("secrets"));
    })
    .await;
    assert_secret_free("the test app's Config", &format!("{:?}", app.config));
    let mut seen = String::new();
    for path in ["/api/products/1", "/api/products/1", "/api/products/nope"] {
        seen.push_str(&everything(&app.get(path).await));
    }
    let update = serde_json::json!({"name": "Kept", "category_id": 1, "price_cents": 1});
    let written = app.send_json(Method::PUT, "/api/products/1", &update).await;
    assert_eq!(written.status, StatusCode::OK, "{}", written.text());
    seen.push_str(&everything(&written));
    let metrics = app.admin_get("/metrics").await;
    assert_eq!(metrics.status, StatusCode::OK);
    seen.push_str(&metrics.text());
    assert_secret_free("responses and /metrics", &seen);
    let text = logs.text();
    assert!(
        text.contains("redis cache store unavailable"),
        "the Redis failure was logged:\n{text}"
    );
    assert_secret_free("the logs", &text);
}

#[tokio::test]
async fn unreachable_cluster_nodes_with_a_password_leak_it_nowhere() {
    let logs = Logs::capture();
    let nodes = format!(
        "redis://app:{REDIS_PASSWORD}@127.0.0.1:{},redis://app:{REDIS_PASSWORD}@127.0.0.1:{}",
        closed_port(),
        closed_port()
    );
    let parsed = config(&[("REDIS_CLUSTER_NODES", nodes)]);
    assert_secret_free("Config's Debug", &format!("{parsed:?}"));
    let app = TestApp::start_with(|c| {
        c.redis_cluster_nodes = parsed.redis_cluster_nodes.clone();
        c.redis_prefix = Some(support::unique("secrets_cluster"));
    })
    .await;
    let mut seen = String::new();
    for path in ["/api/products/1", "/api/products/1"] {
        let reply = app.get(path).await;
        assert_eq!(
            reply.status,
            StatusCode::OK,
            "an unreachable cluster costs misses"
        );
        seen.push_str(&everything(&reply));
    }
    seen.push_str(&app.admin_get("/metrics").await.text());
    assert_secret_free("responses and /metrics", &seen);
    let text = logs.text();
    // The store's own words may change; that it warned about the cluster may not.
    assert!(
        text.lines()
            .any(|line| line.contains("WARN") && line.to_lowercase().contains("redis")),
        "the cluster failure was logged:\n{text}"
    );
    assert_secret_free("the logs", &text);
}

#[tokio::test]
async fn the_bearer_token_is_masked_in_request_traces() {
    let logs = Logs::capture();
    let app = TestApp::start().await;
    let update = serde_json::json!({"name": "Traced", "category_id": 1, "price_cents": 1});
    let written = app.send_json(Method::PUT, "/api/products/2", &update).await;
    assert_eq!(written.status, StatusCode::OK, "{}", written.text());
    let denied = app
        .send(
            app.request(Method::DELETE, "/api/products/2")
                .header("authorization", format!("Bearer {}x", support::TOKEN)),
        )
        .await;
    assert_eq!(denied.status, StatusCode::UNAUTHORIZED);
    assert_secret_free("the 401", &everything(&denied));
    let text = logs.text();
    // The trace records request headers (at DEBUG), with credentials masked.
    assert!(
        text.contains("authorization: Sensitive") || text.contains("\"authorization\": Sensitive"),
        "the trace does not show the masked header:\n{text}"
    );
    assert!(
        !header(&written, "x-request-id").is_empty(),
        "the write went through the whole stack"
    );
    assert_secret_free("the logs", &text);
}

/// `SLOW_WARN_MS` / `SLOW_ERROR_MS` reach the queries' timer, not only `TimingLayer`: a
/// 100 ms query is under the defaults (500 ms / 1 s) and logged at the configured ones.
#[tokio::test]
async fn slow_thresholds_apply_to_queries() {
    use std::time::Duration;

    let app = TestApp::start().await;
    let query_lines = |logs: &Logs| logs.lines_with("towerkit_timing::query");
    let sleep = "SELECT pg_sleep(0.1)";
    for (warn, error, level, message) in [
        (40, 10_000, "WARN", "slow query"),
        (20, 40, "ERROR", "very slow query"),
    ] {
        let mut config = app.config.clone();
        config.slow_warn = Duration::from_millis(warn);
        config.slow_error = Duration::from_millis(error);
        let state = AppState::connect(config).await.expect("the service starts");
        let logs = Logs::capture();
        state.db.execute(sleep, &[]).await.expect("the query runs");
        let lines = query_lines(&logs);
        let threshold = if level == "WARN" { warn } else { error };
        assert!(
            lines.len() == 1
                && lines[0].contains(level)
                && lines[0].contains(message)
                && lines[0].contains(&format!("threshold_ms={threshold}")),
            "SLOW_WARN_MS={warn} SLOW_ERROR_MS={error}: expected one {level} {message:?} over {threshold} ms, got {lines:?}"
        );
    }

    // The defaults: the same query is not slow.
    let state = AppState::connect(app.config.clone())
        .await
        .expect("the service starts");
    let logs = Logs::capture();
    state.db.execute(sleep, &[]).await.expect("the query runs");
    assert_eq!(query_lines(&logs), Vec::<String>::new());
}
