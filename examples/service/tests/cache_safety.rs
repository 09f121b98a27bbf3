//! Cache poisoning and deception against the whole service (memory cache): what one client
//! sends never shows up in what the next client gets from the cache.

mod support;

use axum::http::{Method, StatusCode};
use support::{TestApp, header};

const UNKEYED: &[&str] = &[
    "x-forwarded-host",
    "x-host",
    "x-forwarded-server",
    "x-original-url",
    "x-rewrite-url",
    "x-forwarded-scheme",
    "x-forwarded-proto",
    "x-forwarded-port",
    "x-forwarded-prefix",
    "x-http-method-override",
    "forwarded",
];

fn everything(reply: &support::Reply) -> String {
    let mut all = reply.text();
    for (name, value) in &reply.headers {
        // A fresh random UUID per response: it may contain any marker's digits by chance.
        if name == "x-request-id" {
            continue;
        }
        all.push_str(&format!("\n{name}: {}", value.to_str().unwrap_or("?")));
    }
    all
}

#[tokio::test]
async fn unkeyed_forwarding_headers_cannot_poison_cached_pages() {
    let app = TestApp::start().await;
    for (i, name) in UNKEYED.iter().enumerate() {
        let path = format!("/api/products?limit={}", i + 2);
        let value = match *name {
            "x-original-url" | "x-rewrite-url" | "x-forwarded-prefix" => "/evil-example",
            "forwarded" => "host=evil.example;proto=http",
            "x-http-method-override" => "DELETE",
            "x-forwarded-port" => "6666",
            _ => "evil.example",
        };
        let attack = app
            .send(app.request(Method::GET, &path).header(*name, value))
            .await;
        assert_eq!(attack.status, StatusCode::OK, "{name}");
        let victim = app.get(&path).await;
        assert_eq!(victim.status, StatusCode::OK, "{name}");
        assert!(
            victim.body == attack.body || !header(&attack, "cache-status").contains("stored"),
            "{name}: the stored page differs from the one the next client gets"
        );
        let seen = everything(&victim);
        for marker in ["evil", "6666", "DELETE"] {
            assert!(!seen.contains(marker), "{name}: {seen}");
        }
    }
    // The override header did not delete anything either.
    assert_eq!(app.get("/api/products/1").await.status, StatusCode::OK);
}

#[tokio::test]
async fn a_path_confusion_request_is_not_stored_under_a_static_looking_key() {
    let app = TestApp::start().await;
    for path in [
        "/api/products/1/x.css",
        "/api/products/1.css",
        "/api/products/1;x.css",
        "/api/products/1%2Fx.css",
    ] {
        let first = app
            .send(
                app.request(Method::GET, path)
                    .header("cookie", "session=alice")
                    .header("authorization", "Bearer alice"),
            )
            .await;
        assert_ne!(first.status, StatusCode::OK, "{path}: {}", first.text());
        assert!(
            first.status.is_client_error(),
            "{path}: {} {}",
            first.status,
            first.text()
        );
        assert!(
            !header(&first, "cache-status").contains("stored"),
            "{path}: {}",
            header(&first, "cache-status")
        );
        let second = app.get(path).await;
        assert!(!header(&second, "cache-status").contains("hit"), "{path}");
        assert!(!everything(&second).contains("alice"), "{path}");
    }
}

#[tokio::test]
async fn authorized_requests_do_not_fill_the_shared_cache() {
    let app = TestApp::start().await;
    let path = "/api/products?limit=9";
    let alice = app
        .send(
            app.request(Method::GET, path)
                .header("authorization", "Bearer alice"),
        )
        .await;
    assert_eq!(alice.status, StatusCode::OK);
    let cache_control = header(&alice, "cache-control");
    let public = ["public", "s-maxage", "must-revalidate"]
        .iter()
        .any(|d| cache_control.contains(d));
    let anonymous = app.get(path).await;
    assert_eq!(
        header(&anonymous, "cache-status").contains("hit"),
        public,
        "Cache-Control: {cache_control}; {}",
        header(&anonymous, "cache-status")
    );
}
