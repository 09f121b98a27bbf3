//! Validators end to end: every `GET` carries a strong `ETag`, `If-None-Match` gets a `304`
//! (from the service and from the cache), and `PUT`/`DELETE /api/products/{id}` honour
//! `If-Match` against the product's version: `412` when stale, `428` when required and
//! missing, and of two concurrent writers holding the same tag exactly one wins.

mod support;

use axum::body::Body;
use axum::http::{Method, Request, StatusCode};
use serde_json::{Value, json};
use support::{Reply, TestApp, header};
use tower::ServiceExt;

/// The `ETag` of a `GET` of `path`, checked to be there and strong.
async fn etag(app: &TestApp, path: &str) -> String {
    let reply = app.get(path).await;
    assert_eq!(reply.status, StatusCode::OK, "GET {path}: {}", reply.text());
    let etag = header(&reply, "etag");
    assert!(is_strong(&etag), "GET {path}: ETag {etag:?}");
    etag
}

fn is_strong(etag: &str) -> bool {
    etag.len() > 2 && etag.starts_with('"') && etag.ends_with('"')
}

/// A write with the token, `If-Match: if_match` when given, and `body` as JSON when given.
async fn write(
    app: &TestApp,
    method: Method,
    path: &str,
    if_match: Option<&str>,
    body: Option<&Value>,
) -> Reply {
    app.send_request(write_request(method, path, if_match, body))
        .await
}

fn write_request(
    method: Method,
    path: &str,
    if_match: Option<&str>,
    body: Option<&Value>,
) -> Request<Body> {
    let mut request = Request::builder()
        .method(method)
        .uri(path)
        .header("host", "api.test")
        .header("authorization", support::bearer());
    if let Some(if_match) = if_match {
        request = request.header("if-match", if_match);
    }
    let body = match body {
        Some(body) => {
            request = request.header("content-type", "application/json");
            Body::from(body.to_string())
        }
        None => Body::empty(),
    };
    request.body(body).expect("request")
}

fn renamed(name: &str) -> Value {
    json!({"name": name, "category_id": 2, "price_cents": 1234, "stock": 5})
}

fn assert_problem(reply: &Reply, status: StatusCode, what: &str) {
    assert_eq!(reply.status, status, "{what}: {}", reply.text());
    assert_eq!(
        header(reply, "content-type"),
        "application/problem+json",
        "{what}"
    );
    assert_eq!(reply.json()["status"], status.as_u16(), "{what}");
}

#[tokio::test]
async fn every_get_carries_a_strong_etag_and_head_the_same_one() {
    let app = TestApp::start().await;
    let paths = [
        "/api/products",
        "/api/products?page=2&limit=5",
        "/api/products?limit=5&fields=id,name",
        "/api/products/7",
        "/api/products/7?fields=id,name",
        "/api/categories",
        "/api/categories?page=2&limit=10",
    ];
    let mut seen = Vec::new();
    for path in paths {
        let tag = etag(&app, path).await;
        let head = app.send(app.request(Method::HEAD, path)).await;
        assert_eq!(header(&head, "etag"), tag, "HEAD {path}");
        seen.push(tag);
    }
    // Different bytes, different tags: no two of these URLs share one.
    let mut distinct = seen.clone();
    distinct.sort();
    distinct.dedup();
    assert_eq!(distinct.len(), seen.len(), "{seen:?}");
    // A product's tag names its version, the same on every read.
    assert!(seen[3].starts_with("\"p7-v1-"), "{}", seen[3]);
    assert_eq!(etag(&app, "/api/products/7").await, seen[3]);
}

#[tokio::test]
async fn if_none_match_gets_a_304_from_the_service_and_from_the_cache() {
    let app = TestApp::start().await;
    for path in [
        "/api/products/7",
        "/api/products?limit=3",
        "/api/categories",
    ] {
        for encoding in ["identity", "br"] {
            let get = |if_none_match: Option<&str>, credentials: bool| {
                let mut request = app
                    .request(Method::GET, path)
                    .header("accept-encoding", encoding);
                if let Some(tag) = if_none_match {
                    request = request.header("if-none-match", tag);
                }
                if credentials {
                    // Neither answered from nor stored in the cache: the service answers.
                    request = request.header("authorization", "Bearer reader");
                }
                app.send(request)
            };
            let first = get(None, false).await;
            assert_eq!(first.status, StatusCode::OK, "{path} {encoding}");
            let tag = header(&first, "etag");
            assert!(is_strong(&tag), "{path} {encoding}: {tag:?}");
            // A coded variant's tag names its coding (a product is too small to compress).
            let coded = header(&first, "content-encoding") == "br";
            assert!(!coded || encoding == "br", "{path}");
            assert_eq!(tag.ends_with("-br\""), coded, "{path}: {tag}");

            let from_service = get(Some(&tag), true).await;
            assert_eq!(
                from_service.status,
                StatusCode::NOT_MODIFIED,
                "{path} {encoding}: {:?}",
                from_service.headers
            );
            assert!(!header(&from_service, "cache-status").contains("hit"));
            assert_eq!(header(&from_service, "etag"), tag, "{path} {encoding}");
            assert!(from_service.body.is_empty());

            let from_cache = get(Some(&tag), false).await;
            assert_eq!(
                from_cache.status,
                StatusCode::NOT_MODIFIED,
                "{path} {encoding}"
            );
            assert!(
                header(&from_cache, "cache-status").contains("hit"),
                "{path} {encoding}: {:?}",
                from_cache.headers
            );
            assert_eq!(header(&from_cache, "etag"), tag, "{path} {encoding}");
            assert!(from_cache.body.is_empty());

            // Another tag: the full response, from the cache.
            let other = get(Some("\"p7-v0-0\""), false).await;
            assert_eq!(other.status, StatusCode::OK, "{path} {encoding}");
            assert_eq!(other.body, first.body, "{path} {encoding}");
        }
    }
}

#[tokio::test]
async fn put_with_the_current_etag_succeeds_and_returns_the_new_one() {
    let app = TestApp::start().await;
    let path = "/api/products/42";
    let before = etag(&app, path).await;
    let reply = write(
        &app,
        Method::PUT,
        path,
        Some(&before),
        Some(&renamed("One")),
    )
    .await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.text());
    let after = header(&reply, "etag");
    assert!(is_strong(&after), "{after:?}");
    assert_ne!(after, before);
    assert_eq!(header(&reply, "content-location"), path);
    // The new tag is the one a read now shows (the write invalidated the cached read), and
    // the PUT's body is byte for byte that read's.
    let read = app.get(path).await;
    assert_eq!(header(&read, "etag"), after);
    assert_eq!(read.json()["name"], "One");
    assert_eq!(read.body, reply.body);
    // And it is good for the next write.
    let next = write(&app, Method::PUT, path, Some(&after), Some(&renamed("Two"))).await;
    assert_eq!(next.status, StatusCode::OK, "{}", next.text());
}

#[tokio::test]
async fn the_tag_of_a_compressed_variant_satisfies_if_match() {
    let app = TestApp::start().await;
    let path = "/api/products/43";
    // A product is below compression's threshold; a larger one would be tagged so in its
    // brotli variant (the lists are: see the If-None-Match test).
    let current = etag(&app, path).await;
    let brotli = format!("{}-br\"", current.trim_end_matches('"'));
    let put = write(&app, Method::PUT, path, Some(&brotli), Some(&renamed("Br"))).await;
    assert_eq!(put.status, StatusCode::OK, "{}", put.text());
    // Another coding's suffix on a stale tag is still stale.
    let put = write(
        &app,
        Method::PUT,
        path,
        Some(&brotli),
        Some(&renamed("Again")),
    )
    .await;
    assert_problem(&put, StatusCode::PRECONDITION_FAILED, "stale brotli tag");
}

#[tokio::test]
async fn put_with_a_stale_etag_is_a_412_and_changes_nothing() {
    let app = TestApp::start().await;
    let path = "/api/products/44";
    let stale = etag(&app, path).await;
    let first = write(
        &app,
        Method::PUT,
        path,
        Some(&stale),
        Some(&renamed("First")),
    )
    .await;
    assert_eq!(first.status, StatusCode::OK);
    let lost = write(
        &app,
        Method::PUT,
        path,
        Some(&stale),
        Some(&renamed("Lost")),
    )
    .await;
    assert_problem(&lost, StatusCode::PRECONDITION_FAILED, "stale If-Match");
    assert!(lost.headers.get("etag").is_none());
    assert_eq!(app.get(path).await.json()["name"], "First");
    // A stale precondition is a 412 even with a body that would be refused.
    let invalid = write(&app, Method::PUT, path, Some(&stale), Some(&json!({}))).await;
    assert_problem(
        &invalid,
        StatusCode::PRECONDITION_FAILED,
        "stale and invalid",
    );
}

#[tokio::test]
async fn weak_malformed_and_other_views_tags_do_not_satisfy_if_match() {
    let app = TestApp::start().await;
    let path = "/api/products/45";
    let current = etag(&app, path).await;
    let weak = format!("W/{current}");
    let reply = write(&app, Method::PUT, path, Some(&weak), Some(&renamed("Weak"))).await;
    assert_problem(&reply, StatusCode::PRECONDITION_FAILED, "weak If-Match");
    // The projection's tag names other bytes, not the product being replaced.
    let projected = etag(&app, "/api/products/45?fields=id,name").await;
    assert_ne!(projected, current);
    let reply = write(
        &app,
        Method::PUT,
        path,
        Some(&projected),
        Some(&renamed("View")),
    )
    .await;
    assert_problem(&reply, StatusCode::PRECONDITION_FAILED, "a view's tag");
    let reply = write(&app, Method::PUT, path, Some("v1"), Some(&renamed("Bad"))).await;
    assert_problem(&reply, StatusCode::BAD_REQUEST, "unquoted If-Match");
    assert_eq!(reply.json()["invalid-params"][0]["name"], "If-Match");
    assert_eq!(etag(&app, path).await, current, "nothing was written");
}

#[tokio::test]
async fn if_match_star_and_if_unmodified_since() {
    let app = TestApp::start().await;
    let path = "/api/products/46";
    let star = write(&app, Method::PUT, path, Some("*"), Some(&renamed("Star"))).await;
    assert_eq!(star.status, StatusCode::OK, "{}", star.text());
    let missing = write(
        &app,
        Method::PUT,
        "/api/products/999999",
        Some("*"),
        Some(&renamed("Nobody")),
    )
    .await;
    assert_problem(
        &missing,
        StatusCode::NOT_FOUND,
        "If-Match: * on a missing product",
    );

    let since = |date: &'static str| {
        let mut request = write_request(Method::PUT, path, None, Some(&renamed("Since")));
        request
            .headers_mut()
            .insert("if-unmodified-since", date.parse().expect("a header value"));
        request
    };
    let old = app
        .send_request(since("Mon, 01 Jan 1990 00:00:00 GMT"))
        .await;
    assert_problem(&old, StatusCode::PRECONDITION_FAILED, "modified since 1990");
    let future = app
        .send_request(since("Fri, 01 Jan 2100 00:00:00 GMT"))
        .await;
    assert_eq!(future.status, StatusCode::OK, "{}", future.text());
}

#[tokio::test]
async fn delete_with_a_stale_etag_is_a_412() {
    let app = TestApp::start().await;
    let path = "/api/products/47";
    let stale = etag(&app, path).await;
    let put = write(
        &app,
        Method::PUT,
        path,
        Some(&stale),
        Some(&renamed("Kept")),
    )
    .await;
    assert_eq!(put.status, StatusCode::OK);
    let current = header(&put, "etag");
    let refused = write(&app, Method::DELETE, path, Some(&stale), None).await;
    assert_problem(&refused, StatusCode::PRECONDITION_FAILED, "stale DELETE");
    assert_eq!(app.get(path).await.status, StatusCode::OK);
    let deleted = write(&app, Method::DELETE, path, Some(&current), None).await;
    assert_eq!(deleted.status, StatusCode::NO_CONTENT);
    assert_eq!(app.get(path).await.status, StatusCode::NOT_FOUND);
    let again = write(&app, Method::DELETE, path, Some(&current), None).await;
    assert_problem(&again, StatusCode::NOT_FOUND, "DELETE of a deleted product");
}

#[tokio::test]
async fn writes_without_if_match_get_a_428_when_required() {
    let app = TestApp::start_with(|config| config.require_preconditions = true).await;
    let path = "/api/products/48";
    let put = write(&app, Method::PUT, path, None, Some(&renamed("Blind"))).await;
    assert_problem(&put, StatusCode::PRECONDITION_REQUIRED, "blind PUT");
    let delete = write(&app, Method::DELETE, path, None, None).await;
    assert_problem(&delete, StatusCode::PRECONDITION_REQUIRED, "blind DELETE");
    // Without the token, the token check answers first.
    let anonymous = app.send(app.request(Method::DELETE, path)).await;
    assert_eq!(anonymous.status, StatusCode::UNAUTHORIZED);
    // Reads and creations are not writes to an existing version.
    let tag = etag(&app, path).await;
    let created = app
        .send_json(Method::POST, "/api/products", &renamed("New"))
        .await;
    assert_eq!(created.status, StatusCode::CREATED);
    let put = write(&app, Method::PUT, path, Some(&tag), Some(&renamed("Seen"))).await;
    assert_eq!(put.status, StatusCode::OK, "{}", put.text());
    // Not required by default: a blind write replaces the product, as before.
    let default = TestApp::start().await;
    let blind = write(&default, Method::PUT, path, None, Some(&renamed("Blind"))).await;
    assert_eq!(blind.status, StatusCode::OK);
}

#[tokio::test]
async fn a_created_product_comes_with_the_tag_a_read_shows() {
    let app = TestApp::start().await;
    let created = app
        .send_json(Method::POST, "/api/products", &renamed("Fresh"))
        .await;
    assert_eq!(created.status, StatusCode::CREATED);
    let location = header(&created, "location");
    let tag = header(&created, "etag");
    assert_eq!(etag(&app, &location).await, tag);
    let put = write(
        &app,
        Method::PUT,
        &location,
        Some(&tag),
        Some(&renamed("Edited")),
    )
    .await;
    assert_eq!(put.status, StatusCode::OK, "{}", put.text());
}

#[tokio::test]
async fn layers_none_tags_its_unstripped_bytes_apart() {
    let bare = TestApp::start_with(|c| c.layers = example_service::Layers::None).await;
    let layered = TestApp::start().await;
    // Product 15 has NULLs: the bare service keeps them, so its bytes differ.
    let bare_tag = etag(&bare, "/api/products/15").await;
    let layered_tag = etag(&layered, "/api/products/15").await;
    assert_ne!(bare_tag, layered_tag);
    let put = write(
        &bare,
        Method::PUT,
        "/api/products/15",
        Some(&bare_tag),
        Some(&renamed("Bare")),
    )
    .await;
    assert_eq!(put.status, StatusCode::OK, "{}", put.text());
    assert_ne!(header(&put, "etag"), bare_tag);
}

/// Two writers read the same version and both send `If-Match` with its tag at once: the
/// version check is in the `UPDATE`, so exactly one of them wins and the other gets a 412.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn of_two_concurrent_puts_with_one_etag_exactly_one_wins() {
    let app = TestApp::start().await;
    let path = "/api/products/49";
    for round in 0..20 {
        let tag = etag(&app, path).await;
        let barrier = std::sync::Arc::new(tokio::sync::Barrier::new(2));
        let writers: Vec<_> = ["left", "right"]
            .into_iter()
            .map(|side| {
                let name = format!("{side} {round}");
                let request = write_request(Method::PUT, path, Some(&tag), Some(&renamed(&name)));
                let router = app.router.clone();
                let barrier = barrier.clone();
                tokio::spawn(async move {
                    barrier.wait().await;
                    let response = router.oneshot(request).await.expect("infallible");
                    (name, response.status())
                })
            })
            .collect();
        let mut outcomes = Vec::new();
        for writer in writers {
            outcomes.push(writer.await.expect("no panic"));
        }
        let winners: Vec<&String> = outcomes
            .iter()
            .filter(|(_, status)| *status == StatusCode::OK)
            .map(|(name, _)| name)
            .collect();
        let losers = outcomes
            .iter()
            .filter(|(_, status)| *status == StatusCode::PRECONDITION_FAILED)
            .count();
        assert_eq!(
            (winners.len(), losers),
            (1, 1),
            "round {round}: {outcomes:?}"
        );
        let stored = app.get(path).await;
        assert_eq!(stored.json()["name"], winners[0].as_str(), "round {round}");
        let version = format!("\"p49-v{}-", round + 2);
        assert!(
            header(&stored, "etag").starts_with(&version),
            "round {round}: {}",
            header(&stored, "etag")
        );
    }
}
