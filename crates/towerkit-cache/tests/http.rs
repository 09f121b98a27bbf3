//! The layer's HTTP behaviour over an in-memory store, through an axum router.

use std::convert::Infallible;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::extract::State;
use axum::http::{Request, StatusCode};
use axum::routing::get;
use bytes::Bytes;
use http_body_util::BodyExt;
use tower::ServiceExt;
use towerkit_cache::{CacheLayer, CacheLayerBuilder, MemoryStore};

mod common;

use common::{Origin, cached, get_req, response, send, with};

fn layer() -> CacheLayer {
    CacheLayer::new(MemoryStore::new(16 * 1024 * 1024))
}

fn builder() -> CacheLayerBuilder {
    CacheLayer::builder(MemoryStore::new(16 * 1024 * 1024))
}

#[tokio::test]
async fn second_get_is_a_hit() {
    let origin = Origin::default();
    let app = cached(&layer(), &origin, &[("cache-control", "max-age=60")]);
    let first = send(&app, get_req("/a")).await;
    assert_eq!(first.header("cache-status"), "towerkit; fwd=miss; stored");
    let second = send(&app, get_req("/a")).await;
    assert!(second.is_hit(), "{second:?}");
    assert_eq!(second.body, "call 1");
    assert_eq!(second.header("age"), "0");
    assert_eq!(second.header("content-length"), "6");
    assert_eq!(origin.calls(), 1);
}

#[tokio::test]
async fn different_query_strings_are_different_entries() {
    let origin = Origin::default();
    let app = cached(&layer(), &origin, &[("cache-control", "max-age=60")]);
    assert_eq!(send(&app, get_req("/a?page=1")).await.body, "call 1");
    assert_eq!(send(&app, get_req("/a?page=2")).await.body, "call 2");
    assert_eq!(send(&app, get_req("/a?page=1")).await.body, "call 1");
    assert_eq!(origin.calls(), 2);
}

#[tokio::test]
async fn responses_the_rfc_forbids_storing_are_not_stored() {
    for (headers, detail) in [
        (&[("cache-control", "no-store, max-age=60")][..], "no-store"),
        (&[("cache-control", "private, max-age=60")], "private"),
        (
            &[("cache-control", "max-age=60"), ("vary", "*")],
            "vary-star",
        ),
        (
            &[
                ("cache-control", "max-age=60"),
                ("set-cookie", "session=abc"),
            ],
            "set-cookie",
        ),
        (&[], "no-freshness"),
    ] {
        let origin = Origin::default();
        let headers: &'static [(&'static str, &'static str)] =
            Box::leak(headers.to_vec().into_boxed_slice());
        let app = cached(&layer(), &origin, headers);
        let first = send(&app, get_req("/a")).await;
        assert_eq!(
            first.header("cache-status"),
            format!("towerkit; fwd=miss; detail={detail}"),
            "{headers:?}"
        );
        let second = send(&app, get_req("/a")).await;
        assert_eq!(second.body, "call 2", "{headers:?}");
    }
}

#[tokio::test]
async fn set_cookie_marked_private_is_stored_without_the_cookie() {
    let origin = Origin::default();
    let app = cached(
        &layer(),
        &origin,
        &[
            ("cache-control", "max-age=60, private=\"set-cookie\""),
            ("set-cookie", "session=abc"),
        ],
    );
    let first = send(&app, get_req("/a")).await;
    assert_eq!(first.header("set-cookie"), "session=abc");
    let second = send(&app, get_req("/a")).await;
    assert!(second.is_hit());
    assert!(!second.headers.contains_key("set-cookie"));
}

#[tokio::test]
async fn authorized_requests_are_not_answered_from_or_stored_in_the_cache() {
    let origin = Origin::default();
    let app = cached(&layer(), &origin, &[("cache-control", "max-age=60")]);
    let authorized = || with("/me", &[("authorization", "Bearer alice")]);
    assert_eq!(send(&app, authorized()).await.body, "call 1");
    // Not stored: the next request, authorized or not, goes to the origin.
    assert_eq!(send(&app, get_req("/me")).await.body, "call 2");
    // Stored from an anonymous request, but not handed to an authorized one.
    assert_eq!(send(&app, authorized()).await.body, "call 3");
    assert_eq!(send(&app, get_req("/me")).await.body, "call 2");
}

#[tokio::test]
async fn authorized_requests_share_responses_that_say_public() {
    let origin = Origin::default();
    let app = cached(
        &layer(),
        &origin,
        &[("cache-control", "public, max-age=60")],
    );
    assert_eq!(
        send(&app, with("/a", &[("authorization", "Bearer alice")]))
            .await
            .body,
        "call 1"
    );
    assert_eq!(
        send(&app, with("/a", &[("authorization", "Bearer bob")]))
            .await
            .body,
        "call 1"
    );
}

#[tokio::test]
async fn accept_encoding_variants_are_keyed_by_the_negotiated_coding() {
    let origin = Origin::default();
    let service = origin.service(|request, n| {
        let accept = request
            .headers()
            .get("accept-encoding")
            .and_then(|v| v.to_str().ok())
            .unwrap_or("");
        let coding = if accept.contains("br") && !accept.contains("br;q=0") {
            "br"
        } else if accept.contains("gzip") {
            "gzip"
        } else {
            "identity"
        };
        let mut headers = vec![("cache-control", "max-age=60"), ("vary", "accept-encoding")];
        if coding != "identity" {
            headers.push(("content-encoding", coding));
        }
        response(200, &headers, format!("{coding} {n}"))
    });
    let app = tower::ServiceBuilder::new().layer(layer()).service(service);
    assert_eq!(
        send(&app, with("/a", &[("accept-encoding", "br")]))
            .await
            .body,
        "br 1"
    );
    // Another spelling that accepts br shares the stored br variant.
    let again = send(
        &app,
        with("/a", &[("accept-encoding", "gzip, deflate, br")]),
    )
    .await;
    assert!(again.is_hit());
    assert_eq!(again.body, "br 1");
    assert_eq!(again.header("content-encoding"), "br");
    // A client that does not accept br gets its own coding.
    assert_eq!(
        send(&app, with("/a", &[("accept-encoding", "gzip")]))
            .await
            .body,
        "gzip 2"
    );
    assert_eq!(
        send(&app, with("/a", &[("accept-encoding", "gzip;q=1, br;q=0")]))
            .await
            .body,
        "gzip 2"
    );
    // No Accept-Encoding: identity only.
    assert_eq!(send(&app, get_req("/a")).await.body, "identity 3");
    assert_eq!(origin.calls(), 3);
}

#[tokio::test]
async fn an_uncompressed_variant_never_answers_a_client_that_accepts_compression() {
    let origin = Origin::default();
    let service = origin.service(|request, n| {
        let accept = request
            .headers()
            .get("accept-encoding")
            .and_then(|v| v.to_str().ok())
            .unwrap_or("");
        let mut headers = vec![("cache-control", "max-age=60"), ("vary", "accept-encoding")];
        let coding = if accept.contains("br") {
            "br"
        } else {
            "identity"
        };
        if coding == "br" {
            headers.push(("content-encoding", "br"));
        }
        response(200, &headers, format!("{coding} {n}"))
    });
    let app = tower::ServiceBuilder::new().layer(layer()).service(service);
    // An identity client comes first; a brotli client still gets (and stores) brotli.
    assert_eq!(send(&app, get_req("/a")).await.body, "identity 1");
    assert_eq!(
        send(&app, with("/a", &[("accept-encoding", "br")]))
            .await
            .body,
        "br 2"
    );
    assert_eq!(
        send(
            &app,
            with("/a", &[("accept-encoding", "gzip, deflate, br")])
        )
        .await
        .body,
        "br 2"
    );
    assert_eq!(send(&app, get_req("/a")).await.body, "identity 1");
    assert_eq!(origin.calls(), 2);
}

#[tokio::test]
async fn vary_on_other_headers_keeps_variants_apart() {
    let origin = Origin::default();
    let app = cached(
        &layer(),
        &origin,
        &[("cache-control", "max-age=60"), ("vary", "x-lang")],
    );
    assert_eq!(
        send(&app, with("/a", &[("x-lang", "en")])).await.body,
        "call 1"
    );
    assert_eq!(
        send(&app, with("/a", &[("x-lang", "de")])).await.body,
        "call 2"
    );
    assert_eq!(
        send(&app, with("/a", &[("x-lang", "en")])).await.body,
        "call 1"
    );
    assert_eq!(
        send(&app, with("/a", &[("x-lang", "de")])).await.body,
        "call 2"
    );
    assert_eq!(send(&app, get_req("/a")).await.body, "call 3");
}

#[tokio::test]
async fn stale_entries_are_revalidated_and_a_304_updates_them() {
    let origin = Origin::default();
    let service = origin.service(|request, n| {
        if request
            .headers()
            .get("if-none-match")
            .is_some_and(|v| v == "\"v1\"")
        {
            return response(
                304,
                &[("cache-control", "max-age=60"), ("x-version", "2")],
                Body::empty(),
            );
        }
        response(
            200,
            &[
                ("cache-control", "max-age=0"),
                ("etag", "\"v1\""),
                ("x-version", "1"),
            ],
            format!("body {n}"),
        )
    });
    let app = tower::ServiceBuilder::new().layer(layer()).service(service);
    assert_eq!(send(&app, get_req("/a")).await.body, "body 1");
    let revalidated = send(&app, get_req("/a")).await;
    assert_eq!(revalidated.status, StatusCode::OK);
    assert_eq!(revalidated.body, "body 1");
    assert_eq!(revalidated.header("x-version"), "2");
    assert_eq!(
        revalidated.header("cache-status"),
        "towerkit; fwd=stale; fwd-status=304; stored"
    );
    // Now fresh for 60 s with the updated headers.
    let hit = send(&app, get_req("/a")).await;
    assert!(hit.is_hit());
    assert_eq!(hit.header("x-version"), "2");
    assert_eq!(origin.calls(), 2);
}

#[tokio::test]
async fn conditional_requests_get_304_from_a_fresh_entry() {
    let origin = Origin::default();
    let app = cached(
        &layer(),
        &origin,
        &[("cache-control", "max-age=60"), ("etag", "\"abc\"")],
    );
    send(&app, get_req("/a")).await;
    let not_modified = send(&app, with("/a", &[("if-none-match", "W/\"abc\"")])).await;
    assert_eq!(not_modified.status, StatusCode::NOT_MODIFIED);
    assert_eq!(not_modified.header("etag"), "\"abc\"");
    assert!(not_modified.body.is_empty());
    let modified = send(&app, with("/a", &[("if-none-match", "\"other\"")])).await;
    assert_eq!(modified.status, StatusCode::OK);
    assert_eq!(origin.calls(), 1);
}

#[tokio::test]
async fn head_and_range_requests_are_answered_from_a_stored_get() {
    let origin = Origin::default();
    let app = cached(&layer(), &origin, &[("cache-control", "max-age=60")]);
    send(&app, get_req("/a")).await;
    let head = send(&app, Request::head("/a").body(Body::empty()).unwrap()).await;
    assert!(head.is_hit());
    assert_eq!(head.header("content-length"), "6");
    assert!(head.body.is_empty());
    let range = send(&app, with("/a", &[("range", "bytes=-1")])).await;
    assert_eq!(range.status, StatusCode::PARTIAL_CONTENT);
    assert_eq!(range.body, "1");
    assert_eq!(range.header("content-range"), "bytes 5-5/6");
    assert_eq!(origin.calls(), 1);
}

#[tokio::test]
async fn successful_unsafe_methods_invalidate_the_target_and_location() {
    let origin = Origin::default();
    let service = origin.service(|request, n| {
        if request.method() == "POST" {
            return response(
                201,
                &[
                    ("location", "/items/7"),
                    ("content-location", "http://other.example/items"),
                ],
                Body::empty(),
            );
        }
        response(200, &[("cache-control", "max-age=60")], format!("call {n}"))
    });
    let app = tower::ServiceBuilder::new().layer(layer()).service(service);
    send(&app, get_req("/items")).await;
    send(&app, get_req("/items/7")).await;
    assert!(send(&app, get_req("/items")).await.is_hit());
    let post = send(&app, Request::post("/items").body(Body::from("x")).unwrap()).await;
    assert_eq!(post.header("cache-status"), "towerkit; fwd=method");
    assert_eq!(send(&app, get_req("/items")).await.body, "call 4");
    assert_eq!(send(&app, get_req("/items/7")).await.body, "call 5");
}

#[tokio::test]
async fn failed_unsafe_methods_invalidate_nothing() {
    let origin = Origin::default();
    let service = origin.service(|request, n| {
        if request.method() == "DELETE" {
            return response(500, &[], Body::empty());
        }
        response(200, &[("cache-control", "max-age=60")], format!("call {n}"))
    });
    let app = tower::ServiceBuilder::new().layer(layer()).service(service);
    send(&app, get_req("/items")).await;
    send(&app, Request::delete("/items").body(Body::empty()).unwrap()).await;
    assert!(send(&app, get_req("/items")).await.is_hit());
}

#[tokio::test]
async fn tags_come_from_the_tag_header_which_the_client_never_sees() {
    let origin = Origin::default();
    let layer = layer();
    let handle = layer.handle();
    let app = cached(
        &layer,
        &origin,
        &[
            ("cache-control", "max-age=60"),
            ("cache-tag", "products, product:42"),
        ],
    );
    let first = send(&app, get_req("/products?page=1")).await;
    assert!(!first.headers.contains_key("cache-tag"));
    send(&app, get_req("/products?page=2")).await;
    assert!(
        !send(&app, get_req("/products?page=1"))
            .await
            .headers
            .contains_key("cache-tag")
    );
    assert_eq!(handle.invalidate_tag("product:42").await.unwrap(), 2);
    assert_eq!(send(&app, get_req("/products?page=1")).await.body, "call 3");
}

#[tokio::test]
async fn invalidate_path_removes_every_query_of_a_path() {
    let origin = Origin::default();
    let layer = layer();
    let handle = layer.handle();
    let app = cached(&layer, &origin, &[("cache-control", "max-age=60")]);
    send(&app, get_req("/products?page=1")).await;
    send(&app, get_req("/products?page=2")).await;
    send(&app, get_req("/products/1")).await;
    assert_eq!(handle.invalidate_path("/products").await.unwrap(), 2);
    assert!(!send(&app, get_req("/products?page=1")).await.is_hit());
    assert!(send(&app, get_req("/products/1")).await.is_hit());
    handle.purge().await.unwrap();
    assert!(!send(&app, get_req("/products/1")).await.is_hit());
}

#[tokio::test]
async fn route_ttl_caches_responses_without_explicit_freshness() {
    let origin = Origin::default();
    let layer = builder()
        .route_ttl("/products", Duration::from_secs(60))
        .build()
        .unwrap();
    let app = cached(&layer, &origin, &[]);
    send(&app, get_req("/products")).await;
    let hit = send(&app, get_req("/products")).await;
    assert!(
        hit.header("cache-status")
            .starts_with("towerkit; hit; ttl=59")
            || hit
                .header("cache-status")
                .starts_with("towerkit; hit; ttl=60")
    );
    send(&app, get_req("/orders")).await;
    assert!(!send(&app, get_req("/orders")).await.is_hit());
}

#[tokio::test]
async fn key_headers_separate_tenants_and_ignored_parameters_do_not() {
    let origin = Origin::default();
    let layer = builder()
        .key_header(http::HeaderName::from_static("x-tenant"))
        .ignore_query_param("utm_*")
        .build()
        .unwrap();
    let app = cached(&layer, &origin, &[("cache-control", "max-age=60")]);
    assert_eq!(
        send(&app, with("/a?utm_source=x", &[("x-tenant", "1")]))
            .await
            .body,
        "call 1"
    );
    assert_eq!(
        send(&app, with("/a", &[("x-tenant", "1")])).await.body,
        "call 1"
    );
    assert_eq!(
        send(&app, with("/a", &[("x-tenant", "2")])).await.body,
        "call 2"
    );
}

#[tokio::test]
async fn the_predicate_bypasses_the_cache() {
    let origin = Origin::default();
    let layer = builder()
        .predicate(|request: &http::request::Parts| !request.uri.path().starts_with("/admin"))
        .build()
        .unwrap();
    let app = cached(
        &layer,
        &origin,
        &[("cache-control", "max-age=60"), ("cache-tag", "x")],
    );
    let first = send(&app, get_req("/admin")).await;
    assert_eq!(first.header("cache-status"), "towerkit; fwd=bypass");
    assert!(!first.headers.contains_key("cache-tag"));
    assert_eq!(send(&app, get_req("/admin")).await.body, "call 2");
}

#[tokio::test]
async fn request_no_cache_revalidates_and_only_if_cached_never_reaches_the_origin() {
    let origin = Origin::default();
    let app = cached(&layer(), &origin, &[("cache-control", "max-age=60")]);
    let missing = send(&app, with("/a", &[("cache-control", "only-if-cached")])).await;
    assert_eq!(missing.status, StatusCode::GATEWAY_TIMEOUT);
    assert_eq!(origin.calls(), 0);
    send(&app, get_req("/a")).await;
    assert_eq!(
        send(&app, with("/a", &[("cache-control", "only-if-cached")]))
            .await
            .body,
        "call 1"
    );
    assert_eq!(
        send(&app, with("/a", &[("cache-control", "no-cache")]))
            .await
            .body,
        "call 2"
    );
    assert_eq!(
        send(&app, with("/a", &[("pragma", "no-cache")])).await.body,
        "call 3"
    );
}

#[tokio::test]
async fn stale_while_revalidate_serves_stale_and_refreshes_once() {
    let origin = Origin::default();
    let app = cached(
        &layer(),
        &origin,
        &[("cache-control", "max-age=0, stale-while-revalidate=60")],
    );
    send(&app, get_req("/a")).await;
    // Stale at once: five requests get the stale response and start one refresh; the refresh
    // cannot run before this task yields.
    for _ in 0..5 {
        let stale = send(&app, get_req("/a")).await;
        assert_eq!(stale.body, "call 1");
        assert!(stale.header("cache-status").contains("ttl=-"), "{stale:?}");
    }
    // The background refresh stores call 2; wait for it without timing assumptions.
    for _ in 0..200 {
        if origin.calls() == 2 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    assert_eq!(origin.calls(), 2);
}

#[tokio::test]
async fn stale_if_error_serves_stale_when_the_origin_fails() {
    let origin = Origin::default();
    let service = origin.service(|_, n| {
        if n == 1 {
            response(
                200,
                &[("cache-control", "max-age=0, stale-if-error=60")],
                "good",
            )
        } else {
            response(503, &[], "down")
        }
    });
    let app = tower::ServiceBuilder::new().layer(layer()).service(service);
    send(&app, get_req("/a")).await;
    let served = send(&app, get_req("/a")).await;
    assert_eq!(served.status, StatusCode::OK);
    assert_eq!(served.body, "good");
    assert_eq!(origin.calls(), 2);
}

#[tokio::test]
async fn must_revalidate_is_never_served_stale() {
    let origin = Origin::default();
    let service = origin.service(|_, n| {
        if n == 1 {
            response(
                200,
                &[(
                    "cache-control",
                    "max-age=0, must-revalidate, stale-if-error=60",
                )],
                "good",
            )
        } else {
            response(503, &[], "down")
        }
    });
    let app = tower::ServiceBuilder::new()
        .layer(builder().grace(Duration::from_secs(60)).build().unwrap())
        .service(service);
    send(&app, get_req("/a")).await;
    assert_eq!(
        send(&app, get_req("/a")).await.status,
        StatusCode::SERVICE_UNAVAILABLE
    );
}

#[tokio::test]
async fn bodies_over_the_limit_stream_through_unstored() {
    let origin = Origin::default();
    let layer = builder().max_body(4).build().unwrap();
    let app = cached(&layer, &origin, &[("cache-control", "max-age=60")]);
    assert_eq!(send(&app, get_req("/a")).await.body, "call 1");
    assert_eq!(send(&app, get_req("/a")).await.body, "call 2");
}

#[tokio::test]
async fn bodies_stream_to_the_client_before_they_are_complete() {
    let (sender, receiver) =
        tokio::sync::mpsc::channel::<Result<http_body::Frame<Bytes>, Infallible>>(4);
    let receiver = Arc::new(std::sync::Mutex::new(Some(receiver)));
    let origin = Origin::default();
    let service = origin.service(move |_, _| {
        let receiver = receiver.lock().unwrap().take().unwrap();
        let stream = tokio_stream_from(receiver);
        response(
            200,
            &[("cache-control", "max-age=60")],
            Body::new(http_body_util::StreamBody::new(stream)),
        )
    });
    let app = tower::ServiceBuilder::new().layer(layer()).service(service);
    let response = app.clone().oneshot(get_req("/a")).await.unwrap();
    let mut body = response.into_body();
    sender
        .send(Ok(http_body::Frame::data(Bytes::from_static(b"first "))))
        .await
        .unwrap();
    let first = body.frame().await.unwrap().unwrap().into_data().unwrap();
    assert_eq!(first, "first ");
    // Not stored yet: the body is incomplete.
    sender
        .send(Ok(http_body::Frame::data(Bytes::from_static(b"second"))))
        .await
        .unwrap();
    drop(sender);
    let rest = body.collect().await.unwrap().to_bytes();
    assert_eq!(rest, "second");
    let hit = send(&app, get_req("/a")).await;
    assert!(hit.is_hit());
    assert_eq!(hit.body, "first second");
}

/// A stream over an mpsc receiver.
fn tokio_stream_from<T: Send + 'static>(
    mut receiver: tokio::sync::mpsc::Receiver<T>,
) -> impl futures_util::Stream<Item = T> + Send {
    futures_util::stream::poll_fn(move |cx| receiver.poll_recv(cx))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_thousand_concurrent_misses_make_one_origin_call() {
    let calls = Arc::new(AtomicUsize::new(0));
    let gate = Arc::new(tokio::sync::Semaphore::new(0));
    let app =
        Router::new()
            .route(
                "/cold",
                get(
                    |State((calls, gate)): State<(
                        Arc<AtomicUsize>,
                        Arc<tokio::sync::Semaphore>,
                    )>| async move {
                        calls.fetch_add(1, Ordering::SeqCst);
                        // Hold the origin call until the test has started every request.
                        let _permit = gate.acquire().await.unwrap();
                        ([("cache-control", "max-age=60")], "cold body")
                    },
                ),
            )
            .with_state((calls.clone(), gate.clone()))
            .layer(
                builder()
                    .coalesce_timeout(Duration::from_secs(30))
                    .build()
                    .unwrap(),
            );
    let mut tasks = Vec::new();
    for _ in 0..1000 {
        let app = app.clone();
        tasks.push(tokio::spawn(async move {
            let response = app.oneshot(get_req("/cold")).await.unwrap();
            let status = response.status();
            let body = response.into_body().collect().await.unwrap().to_bytes();
            (status, body)
        }));
    }
    // Let every task reach the cache, then open the origin.
    for _ in 0..50 {
        tokio::task::yield_now().await;
    }
    gate.add_permits(1);
    for task in tasks {
        let (status, body) = task.await.unwrap();
        assert_eq!(status, StatusCode::OK);
        assert_eq!(body, "cold body");
    }
    assert_eq!(calls.load(Ordering::SeqCst), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn coalesced_requests_never_receive_a_response_that_was_not_stored() {
    let origin = Origin::default();
    let gate = Arc::new(tokio::sync::Semaphore::new(0));
    let gate_in_origin = gate.clone();
    let calls = origin.calls.clone();
    let service = tower::service_fn(move |request: Request<Body>| {
        let gate = gate_in_origin.clone();
        let n = calls.fetch_add(1, Ordering::SeqCst) + 1;
        async move {
            if n == 1 {
                let _permit = gate.acquire().await.unwrap();
            }
            let user = request.headers()["x-user"].to_str().unwrap().to_owned();
            Ok::<_, Infallible>(response(
                200,
                &[("cache-control", "private, max-age=60")],
                format!("for {user}"),
            ))
        }
    });
    let app = tower::ServiceBuilder::new().layer(layer()).service(service);
    let mut tasks = Vec::new();
    for user in 0..20 {
        let app = app.clone();
        tasks.push(tokio::spawn(async move {
            let user = user.to_string();
            let seen = send(&app, with("/me", &[("x-user", &user)])).await;
            (user, seen.body)
        }));
    }
    for _ in 0..50 {
        tokio::task::yield_now().await;
    }
    gate.add_permits(1);
    for task in tasks {
        let (user, body) = task.await.unwrap();
        assert_eq!(body, format!("for {user}"));
    }
    assert_eq!(origin.calls(), 20);
}

#[tokio::test]
async fn stats_count_outcomes() {
    let origin = Origin::default();
    let layer = layer();
    let handle = layer.handle();
    let app = cached(&layer, &origin, &[("cache-control", "max-age=60")]);
    send(&app, get_req("/a")).await;
    send(&app, get_req("/a")).await;
    send(&app, Request::post("/b").body(Body::empty()).unwrap()).await;
    let stats = handle.stats();
    assert_eq!((stats.hits, stats.misses, stats.bypasses), (1, 1, 1));
    assert_eq!(stats.store.l1_entries, 1);
    assert!(stats.store.l1_bytes > 6);
}

#[tokio::test]
async fn metrics_count_requests_by_result_and_tier() {
    use metrics_util::debugging::{DebugValue, DebuggingRecorder};

    let recorder = DebuggingRecorder::new();
    let snapshotter = recorder.snapshotter();
    let _guard = metrics::set_default_local_recorder(&recorder);
    let origin = Origin::default();
    let app = cached(&layer(), &origin, &[("cache-control", "max-age=60")]);
    send(&app, get_req("/a")).await;
    send(&app, get_req("/a")).await;
    send(&app, get_req("/a")).await;
    send(&app, Request::delete("/b").body(Body::empty()).unwrap()).await;

    let mut seen = std::collections::HashMap::new();
    for (key, _, _, value) in snapshotter.snapshot().into_vec() {
        let key = key.key();
        let labels: Vec<String> = key
            .labels()
            .map(|l| format!("{}={}", l.key(), l.value()))
            .collect();
        seen.insert(format!("{}{{{}}}", key.name(), labels.join(",")), value);
    }
    let counter = |name: &str| match seen.get(name) {
        Some(DebugValue::Counter(n)) => *n,
        other => panic!("{name}: {other:?} in {seen:?}"),
    };
    assert_eq!(counter("http_cache_requests_total{result=hit,tier=l1}"), 2);
    assert_eq!(counter("http_cache_requests_total{result=miss,tier=l1}"), 1);
    assert_eq!(
        counter("http_cache_requests_total{result=bypass,tier=none}"),
        1
    );
    assert!(
        matches!(seen.get("http_cache_l1_entries{}"), Some(DebugValue::Gauge(n)) if n.into_inner() == 1.0)
    );
    assert!(
        matches!(seen.get("http_cache_l1_bytes{}"), Some(DebugValue::Gauge(n)) if n.into_inner() > 6.0)
    );
    assert_eq!(
        towerkit_cache::metrics::REQUESTS_TOTAL,
        "http_cache_requests_total"
    );
}

#[tokio::test]
async fn concurrent_misses_are_answered_from_the_one_stored_response() {
    use metrics_util::debugging::{DebugValue, DebuggingRecorder};

    let recorder = DebuggingRecorder::new();
    let snapshotter = recorder.snapshotter();
    let _guard = metrics::set_default_local_recorder(&recorder);
    let gate = Arc::new(tokio::sync::Semaphore::new(0));
    let origin = Origin::default();
    let calls = origin.calls.clone();
    let held = gate.clone();
    let service = tower::service_fn(move |_request: Request<Body>| {
        calls.fetch_add(1, Ordering::SeqCst);
        let held = held.clone();
        async move {
            let _permit = held.acquire().await.unwrap();
            Ok::<_, Infallible>(response(200, &[("cache-control", "max-age=60")], "shared"))
        }
    });
    let layer = layer();
    let handle = layer.handle();
    let app = tower::ServiceBuilder::new().layer(layer).service(service);
    let requests = futures_util::future::join_all((0..5).map(|_| send(&app, get_req("/a"))));
    let opener = async {
        for _ in 0..20 {
            tokio::task::yield_now().await;
        }
        gate.add_permits(5);
    };
    let (seen, ()) = tokio::join!(requests, opener);
    assert!(seen.iter().all(|seen| seen.body == "shared"));
    assert_eq!(origin.calls(), 1);
    assert_eq!(
        seen.iter()
            .filter(|seen| seen.header("cache-status").ends_with("; collapsed"))
            .count(),
        4
    );
    assert_eq!(handle.stats().coalesced, 4);
    let coalesced = snapshotter
        .snapshot()
        .into_vec()
        .into_iter()
        .find_map(|(key, _, _, value)| {
            (key.key().name() == "http_cache_coalesced_requests_total").then_some(value)
        });
    assert!(
        matches!(coalesced, Some(DebugValue::Counter(4))),
        "{coalesced:?}"
    );
}

#[tokio::test]
async fn coalescing_can_be_turned_off() {
    let gate = Arc::new(tokio::sync::Semaphore::new(0));
    let origin = Origin::default();
    let calls = origin.calls.clone();
    let held = gate.clone();
    let service = tower::service_fn(move |_request: Request<Body>| {
        calls.fetch_add(1, Ordering::SeqCst);
        let held = held.clone();
        async move {
            let _permit = held.acquire().await.unwrap();
            Ok::<_, Infallible>(response(200, &[("cache-control", "max-age=60")], "own"))
        }
    });
    let app = tower::ServiceBuilder::new()
        .layer(builder().coalesce(false).build().unwrap())
        .service(service);
    let requests = futures_util::future::join_all((0..3).map(|_| send(&app, get_req("/a"))));
    let opener = async {
        for _ in 0..20 {
            tokio::task::yield_now().await;
        }
        gate.add_permits(3);
    };
    tokio::join!(requests, opener);
    assert_eq!(origin.calls(), 3);
}

#[tokio::test]
async fn stale_is_served_when_the_origin_fails_or_is_too_slow() {
    let gate = Arc::new(tokio::sync::Semaphore::new(0));
    let calls = Arc::new(AtomicUsize::new(0));
    let (held, counter) = (gate.clone(), calls.clone());
    let service = tower::service_fn(move |request: Request<Body>| {
        let n = counter.fetch_add(1, Ordering::SeqCst) + 1;
        let held = held.clone();
        async move {
            match (n, request.uri().path()) {
                (1 | 2, _) => Ok(response(
                    200,
                    &[("cache-control", "max-age=0, stale-if-error=60")],
                    "good",
                )),
                (_, "/error") => Err(std::io::Error::other("connection reset")),
                _ => {
                    // Never answers: only the origin timeout ends the wait.
                    let _permit = held.acquire().await;
                    Ok(response(200, &[], "late"))
                }
            }
        }
    });
    let app = tower::ServiceBuilder::new()
        .layer(
            builder()
                .origin_timeout(Duration::from_millis(50))
                .build()
                .unwrap(),
        )
        .service(service);
    let call = |uri: &'static str| {
        let app = app.clone();
        async move {
            let response = app.oneshot(get_req(uri)).await.unwrap();
            response.into_body().collect().await.unwrap().to_bytes()
        }
    };
    call("/error").await;
    call("/slow").await;
    assert_eq!(call("/error").await, "good");
    assert_eq!(call("/slow").await, "good");
    assert_eq!(calls.load(Ordering::SeqCst), 4);
}

#[tokio::test]
async fn grace_serves_stale_on_a_5xx_without_stale_if_error() {
    let origin = Origin::default();
    let service = origin.service(|_, n| {
        if n == 1 {
            response(
                200,
                &[("cache-control", "max-age=0"), ("etag", "\"v\"")],
                "good",
            )
        } else {
            response(502, &[], "bad")
        }
    });
    let graceless = tower::ServiceBuilder::new()
        .layer(layer())
        .service(service.clone());
    let graceful = tower::ServiceBuilder::new()
        .layer(builder().grace(Duration::from_secs(60)).build().unwrap())
        .service(service);
    send(&graceful, get_req("/a")).await;
    let served = send(&graceful, get_req("/a")).await;
    assert_eq!(
        (served.status, served.body.as_ref()),
        (StatusCode::OK, &b"good"[..])
    );
    assert_eq!(
        send(&graceless, get_req("/a")).await.status,
        StatusCode::BAD_GATEWAY
    );
}

#[tokio::test]
async fn max_stale_requests_get_stale_entries() {
    let origin = Origin::default();
    // Stale at once, kept (it has a validator) for `keep_stale`.
    let app = cached(
        &layer(),
        &origin,
        &[("cache-control", "max-age=0"), ("etag", "\"v\"")],
    );
    send(&app, get_req("/a")).await;
    let stale = send(&app, with("/a", &[("cache-control", "max-stale=60")])).await;
    assert_eq!(stale.body, "call 1");
    assert!(stale.header("cache-status").contains("ttl=-"), "{stale:?}");
    assert_eq!(origin.calls(), 1);
    assert_eq!(send(&app, get_req("/a")).await.body, "call 2");
}

#[tokio::test]
async fn surrogate_control_aimed_at_the_cache_takes_precedence_and_is_removed() {
    let origin = Origin::default();
    let service = origin.service(|request, n| {
        let capability = request
            .headers()
            .get("surrogate-capability")
            .and_then(|v| v.to_str().ok())
            .unwrap_or("");
        assert_eq!(capability, "edge=\"Surrogate/1.0\"");
        response(
            200,
            &[
                ("cache-control", "no-store"),
                ("surrogate-control", "max-age=60;edge, no-store;other"),
            ],
            format!("call {n}"),
        )
    });
    let app = tower::ServiceBuilder::new()
        .layer(builder().surrogate("edge").build().unwrap())
        .service(service);
    let first = send(&app, get_req("/a")).await;
    assert_eq!(first.header("cache-control"), "no-store");
    assert!(!first.headers.contains_key("surrogate-control"));
    let second = send(&app, get_req("/a")).await;
    assert!(second.is_hit());
    assert!(!second.headers.contains_key("surrogate-control"));
    assert_eq!(origin.calls(), 1);
}

/// A store that never answers, to stand for a remote store that hangs.
#[derive(Debug)]
struct HangingStore;

impl towerkit_cache::Store for HangingStore {
    fn get(&self, _key: &str) -> towerkit_cache::StoreFuture<Option<towerkit_cache::Lookup>> {
        towerkit_cache::StoreFuture::pending(std::future::pending())
    }

    fn put(
        &self,
        _key: &str,
        _entry: Arc<towerkit_cache::Entry>,
    ) -> towerkit_cache::StoreFuture<()> {
        towerkit_cache::StoreFuture::pending(std::future::pending())
    }

    fn delete(&self, _key: &str) -> towerkit_cache::StoreFuture<()> {
        towerkit_cache::StoreFuture::pending(std::future::pending())
    }

    fn invalidate_tag(&self, _tag: &str) -> towerkit_cache::StoreFuture<u64> {
        towerkit_cache::StoreFuture::pending(std::future::pending())
    }

    fn purge(&self) -> towerkit_cache::StoreFuture<()> {
        towerkit_cache::StoreFuture::pending(std::future::pending())
    }
}

#[tokio::test]
async fn a_store_slower_than_its_timeout_counts_as_a_miss() {
    let origin = Origin::default();
    let layer = CacheLayer::builder(HangingStore)
        .store_timeout(Duration::from_millis(10))
        .build()
        .unwrap();
    let app = cached(&layer, &origin, &[("cache-control", "max-age=60")]);
    for _ in 0..3 {
        let seen = send(&app, get_req("/a")).await;
        assert_eq!(seen.status, StatusCode::OK);
        assert!(!seen.is_hit());
    }
    // Unsafe methods wait for their invalidation no longer than the timeout either.
    assert_eq!(
        send(&app, Request::post("/a").body(Body::empty()).unwrap())
            .await
            .status,
        StatusCode::OK
    );
    assert_eq!(origin.calls(), 4);
}

#[tokio::test]
async fn the_own_targeted_field_overrides_cache_control_and_is_not_forwarded() {
    let origin = Origin::default();
    let app = cached(
        &layer(),
        &origin,
        &[
            ("cache-control", "no-store"),
            ("towerkit-cache-control", "max-age=60"),
            ("cdn-cache-control", "no-store"),
        ],
    );
    let first = send(&app, get_req("/a")).await;
    assert_eq!(first.header("cache-status"), "towerkit; fwd=miss; stored");
    assert!(!first.headers.contains_key("towerkit-cache-control"));
    // CDN-Cache-Control is not this cache's (not an edge by default), and goes on.
    assert_eq!(first.header("cdn-cache-control"), "no-store");
    assert_eq!(first.header("cache-control"), "no-store");
    let second = send(&app, get_req("/a")).await;
    assert!(second.is_hit(), "{second:?}");
    assert!(!second.headers.contains_key("towerkit-cache-control"));
    assert_eq!(second.header("cdn-cache-control"), "no-store");
    assert_eq!(origin.calls(), 1);
}

#[tokio::test]
async fn the_own_targeted_field_is_removed_from_responses_it_forbids_storing() {
    let origin = Origin::default();
    let app = cached(
        &layer(),
        &origin,
        &[
            ("cache-control", "max-age=60"),
            ("towerkit-cache-control", "private"),
        ],
    );
    let first = send(&app, get_req("/a")).await;
    assert_eq!(
        first.header("cache-status"),
        "towerkit; fwd=miss; detail=private"
    );
    assert!(!first.headers.contains_key("towerkit-cache-control"));
    send(&app, get_req("/a")).await;
    assert_eq!(origin.calls(), 2);
}

#[tokio::test]
async fn an_edge_cache_obeys_cdn_cache_control_and_forwards_it() {
    for (headers, stored) in [
        // cdn-fresh-cc-nostore
        (
            &[
                ("cache-control", "no-store"),
                ("cdn-cache-control", "max-age=10000"),
            ][..],
            true,
        ),
        // cdn-no-store-cc-fresh
        (
            &[
                ("cache-control", "max-age=10000"),
                ("cdn-cache-control", "no-store"),
            ],
            false,
        ),
        // cdn-private, cdn-no-cache
        (
            &[
                ("cache-control", "max-age=10000"),
                ("cdn-cache-control", "private"),
            ],
            false,
        ),
        (
            &[
                ("cache-control", "max-age=10000"),
                ("cdn-cache-control", "no-cache"),
            ],
            false,
        ),
        // cdn-max-age-long-cc-max-age: a zero lifetime is never reused.
        (
            &[
                ("cache-control", "max-age=10000"),
                ("cdn-cache-control", "max-age=0"),
            ],
            false,
        ),
        // An invalid CDN-Cache-Control is ignored: Cache-Control applies.
        (
            &[
                ("cache-control", "no-store"),
                ("cdn-cache-control", "max-age=\"10000\""),
            ],
            false,
        ),
        (
            &[
                ("cache-control", "max-age=10000"),
                ("cdn-cache-control", "no-store, &&&"),
            ],
            true,
        ),
    ] {
        let origin = Origin::default();
        let headers: &'static [(&'static str, &'static str)] =
            Box::leak(headers.to_vec().into_boxed_slice());
        let edge = builder().cdn_cache_control(true).build().unwrap();
        let app = cached(&edge, &origin, headers);
        let first = send(&app, get_req("/a")).await;
        let cdn = headers
            .iter()
            .find(|(name, _)| *name == "cdn-cache-control");
        assert_eq!(first.header("cdn-cache-control"), cdn.unwrap().1);
        let second = send(&app, get_req("/a")).await;
        assert_eq!(second.is_hit(), stored, "{headers:?}: {second:?}");
        assert_eq!(origin.calls(), if stored { 1 } else { 2 }, "{headers:?}");
    }
}
