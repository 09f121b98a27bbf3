//! The template locks its doors: writes need a bearer token from `API_TOKENS`, `/metrics`
//! lives on the admin listener only, and credentialed requests stay out of the shared cache.

mod support;

use axum::http::{Method, StatusCode};
use example_service::{ApiTokens, Layers};
use serde_json::{Value, json};
use support::{Reply, TestApp, header};

const OLD: &str = "old-token-5d1e0c9a33";
const NEW: &str = "new-token-8a7b6c5d4e";

fn assert_unauthorized(reply: &Reply, what: &str) {
    assert_eq!(
        reply.status,
        StatusCode::UNAUTHORIZED,
        "{what}: {}",
        reply.text()
    );
    assert_eq!(
        header(reply, "content-type"),
        "application/problem+json",
        "{what}"
    );
    assert_eq!(reply.json()["status"], 401, "{what}");
    assert!(
        header(reply, "www-authenticate").starts_with("Bearer"),
        "{what}: {:?}",
        reply.headers
    );
}

/// The product as the database has it: a request with credentials bypasses the cache.
async fn origin(app: &TestApp, path: &str) -> Reply {
    app.send(
        app.request(Method::GET, path)
            .header("authorization", "Bearer someone-else-entirely"),
    )
    .await
}

async fn write_with(app: &TestApp, method: Method, path: &str, auth: Option<&str>) -> Reply {
    let mut request = app
        .request(method, path)
        .header("content-type", "application/json");
    if let Some(auth) = auth {
        request = request.header("authorization", auth);
    }
    let body = json!({"name": "Intruder", "category_id": 1, "price_cents": 1});
    app.send_request(request.body(body.to_string().into()).expect("request"))
        .await
}

#[tokio::test]
async fn a_write_without_the_token_is_401_and_changes_nothing() {
    let app = TestApp::start().await;
    let path = "/api/products/5";
    let before = app.get(path).await.json();
    assert!(header(&app.get(path).await, "cache-status").contains("hit"));
    let total = header(
        &origin(&app, "/api/products?limit=1").await,
        "x-total-count",
    );

    for (method, target) in [
        (Method::PUT, path),
        (Method::DELETE, path),
        (Method::POST, "/api/products"),
    ] {
        let reply = write_with(&app, method.clone(), target, None).await;
        assert_unauthorized(&reply, &format!("{method} without a token"));
        assert_eq!(
            header(&reply, "www-authenticate"),
            r#"Bearer realm="api""#,
            "no error code without credentials (RFC 6750 §3.1)"
        );
    }
    let basic = write_with(&app, Method::PUT, path, Some("Basic dXNlcjpwYXNz")).await;
    assert_unauthorized(&basic, "PUT with Basic credentials");

    // Nothing changed: not the database, not the cached copy.
    assert_eq!(origin(&app, path).await.json(), before);
    assert_eq!(
        header(
            &origin(&app, "/api/products?limit=1").await,
            "x-total-count"
        ),
        total
    );
    let cached = app.get(path).await;
    assert!(header(&cached, "cache-status").contains("hit"));
    assert_eq!(cached.json(), before);
}

#[tokio::test]
async fn a_wrong_token_is_401_with_invalid_token() {
    let app = TestApp::start().await;
    for wrong in [
        format!("Bearer {}x", support::TOKEN),
        format!("Bearer {}", &support::TOKEN[1..]),
        "Bearer ".to_owned(),
        support::TOKEN.to_owned(),
    ] {
        let reply = write_with(&app, Method::PUT, "/api/products/6", Some(&wrong)).await;
        assert_unauthorized(&reply, &wrong);
    }
    let reply = write_with(&app, Method::PUT, "/api/products/6", Some("Bearer nope")).await;
    assert!(
        header(&reply, "www-authenticate").contains(r#"error="invalid_token""#),
        "{:?}",
        reply.headers
    );
    assert_ne!(
        origin(&app, "/api/products/6").await.json()["name"],
        "Intruder"
    );
}

#[tokio::test]
async fn a_rotated_second_token_writes_and_invalidates_as_before() {
    let app = TestApp::start_with(|c| {
        c.api_tokens = ApiTokens::parse(&format!("{NEW},{OLD}")).expect("valid tokens");
    })
    .await;
    let path = "/api/products/7";
    app.get(path).await;
    assert!(header(&app.get(path).await, "cache-status").contains("hit"));

    for (token, name) in [
        (NEW, "Renamed with the new token"),
        (OLD, "And with the old one"),
    ] {
        let request = app
            .request(Method::PUT, path)
            .header("authorization", format!("Bearer {token}"))
            .header("content-type", "application/json");
        let body = json!({"name": name, "category_id": 1, "price_cents": 10});
        let reply = app
            .send_request(request.body(body.to_string().into()).expect("request"))
            .await;
        assert_eq!(reply.status, StatusCode::OK, "{}", reply.text());
        let after = app.get(path).await;
        assert!(
            header(&after, "cache-status").contains("miss"),
            "the write invalidated the cached read: {}",
            header(&after, "cache-status")
        );
        assert_eq!(after.json()["name"], name);
    }
    // The test apps' usual token is not in this list.
    let reply = write_with(&app, Method::DELETE, path, Some(&support::bearer())).await;
    assert_unauthorized(&reply, "a token that is not configured");
}

#[tokio::test]
async fn without_api_tokens_every_write_is_refused() {
    for layers in [Layers::All, Layers::None] {
        let app = TestApp::start_with(|c| {
            c.api_tokens = ApiTokens::default();
            c.layers = layers;
        })
        .await;
        let reply = write_with(
            &app,
            Method::PUT,
            "/api/products/8",
            Some(&support::bearer()),
        )
        .await;
        assert_unauthorized(&reply, &format!("{layers:?}"));
        assert_eq!(app.get("/api/products/8").await.status, StatusCode::OK);
    }
}

#[tokio::test]
async fn metrics_is_on_the_admin_listener_not_the_public_one() {
    // First, as `main` does: what is recorded before a recorder exists goes nowhere.
    example_service::install_metrics_recorder();
    let app = TestApp::start().await;
    app.get("/api/products/1").await;
    let public = app.get("/metrics").await;
    assert_eq!(public.status, StatusCode::NOT_FOUND, "{}", public.text());
    assert!(!public.text().contains("http_server_request_duration"));
    let admin = app.admin_get("/metrics").await;
    assert_eq!(admin.status, StatusCode::OK);
    assert!(admin.text().contains("http_server_request_duration"));
    assert_eq!(app.admin_get("/health/ready").await.status, StatusCode::OK);
    assert_eq!(app.admin_get("/health/live").await.status, StatusCode::OK);
    assert_eq!(
        app.admin_get("/api/products/1").await.status,
        StatusCode::NOT_FOUND,
        "the API is not on the admin listener"
    );
}

#[tokio::test]
async fn credentialed_requests_are_neither_served_from_nor_stored_in_the_cache() {
    let app = TestApp::start().await;
    let path = "/api/products/9";
    let authorized = |app: &TestApp| {
        app.request(Method::GET, path)
            .header("authorization", support::bearer())
    };
    app.get(path).await;
    assert!(header(&app.get(path).await, "cache-status").contains("hit"));
    // Stored for everyone, but not served to a request with the credential.
    let with_token = app.send(authorized(&app)).await;
    assert_eq!(with_token.status, StatusCode::OK);
    let status = header(&with_token, "cache-status");
    assert!(!status.contains("hit"), "{status}");

    let update = json!({"name": "Written with the token", "category_id": 1, "price_cents": 3});
    let written = app.send_json(Method::PUT, path, &update).await;
    assert_eq!(written.status, StatusCode::OK);

    // The credentialed read after the write gets the origin's answer and stores nothing...
    let with_token = app.send(authorized(&app)).await;
    let status = header(&with_token, "cache-status");
    assert!(
        !status.contains("hit") && !status.contains("stored"),
        "{status}"
    );
    assert_eq!(with_token.json()["name"], "Written with the token");
    // ...so the next anonymous read is a miss, and the one after it a hit again.
    let anonymous = app.get(path).await;
    assert!(
        header(&anonymous, "cache-status").contains("miss"),
        "{}",
        header(&anonymous, "cache-status")
    );
    let again = app.get(path).await;
    assert!(header(&again, "cache-status").contains("hit"));
    assert_eq!(again.json()["name"], Value::from("Written with the token"));
}
