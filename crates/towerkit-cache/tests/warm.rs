//! Warming (`CacheHandle::warm`) through an axum router, and refresh-ahead under steady
//! load, on a memory store (the cross-instance cases are in `collapse.rs`).

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::http::{HeaderMap, Request, StatusCode};
use axum::routing::{get, post};
use http_body_util::BodyExt;
use tower::ServiceExt;
use towerkit_cache::{CacheLayer, MemoryStore, WarmOutcome};

mod common;

use common::{Origin, cached, get_req, send};

fn warm_get(uri: &str) -> Request<Body> {
    Request::get(uri).body(Body::empty()).unwrap()
}

/// The router's response to `GET uri`, with its `Cache-Status`.
async fn status_of(app: &Router, uri: &str) -> (StatusCode, String) {
    let response = app
        .clone()
        .oneshot(Request::get(uri).body(Body::empty()).unwrap())
        .await
        .unwrap();
    let status = response.status();
    let cache_status = response
        .headers()
        .get("cache-status")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_owned();
    response.into_body().collect().await.unwrap();
    (status, cache_status)
}

/// A router of counted routes under `layer` (each route wrapped separately, as
/// `Router::layer` does), plus one route outside it.
fn app(layer: &CacheLayer, calls: &Arc<AtomicUsize>) -> Router {
    let counted = |body: &'static str| {
        let calls = calls.clone();
        get(move |headers: HeaderMap| {
            let calls = calls.clone();
            async move {
                calls.fetch_add(1, Ordering::SeqCst);
                // A request with credentials would be answered privately.
                let credentialed =
                    headers.contains_key("authorization") || headers.contains_key("cookie");
                let cache_control = if credentialed {
                    "private"
                } else {
                    "max-age=60"
                };
                ([("cache-control", cache_control)], body)
            }
        })
    };
    let cached = Router::new()
        .route("/products", counted("[1,2,3]"))
        .route("/categories", counted("[\"a\"]"))
        .route("/products/1", counted("{\"id\":1}"))
        .route(
            "/broken",
            get(|| async { (StatusCode::INTERNAL_SERVER_ERROR, "down") }),
        )
        .route(
            "/secret",
            get(|| async { ([("cache-control", "no-store")], "s") }),
        )
        .route("/write", post(|| async { "ok" }))
        .layer(layer.clone());
    cached.merge(Router::new().route("/uncached", get(|| async { "u" })))
}

#[tokio::test]
async fn after_warm_the_first_request_to_each_warmed_route_is_a_hit() {
    let layer = CacheLayer::new(MemoryStore::new(1 << 20));
    let cache = layer.handle();
    let calls = Arc::new(AtomicUsize::new(0));
    let app = app(&layer, &calls);
    let routes = [
        "/products",
        "/categories",
        "/products/1",
        "/products?page=2",
    ];

    let report = cache.warm(&app, routes.map(warm_get), 2).await;
    assert!(report.is_complete(), "{report}");
    for (result, route) in report.results.iter().zip(routes) {
        assert_eq!(result.uri, route);
        assert_eq!(result.status, Some(StatusCode::OK));
        assert_eq!(result.outcome, WarmOutcome::Stored, "{route}");
    }
    assert_eq!(calls.load(Ordering::SeqCst), 4);
    for route in routes {
        let (status, cache_status) = status_of(&app, route).await;
        assert_eq!(status, StatusCode::OK);
        assert!(cache_status.contains("; hit"), "{route}: {cache_status}");
    }
    assert_eq!(
        calls.load(Ordering::SeqCst),
        4,
        "no origin call after warming"
    );

    // Warming again finds every key fresh and calls nothing.
    let again = cache.warm(&app, routes.map(warm_get), 2).await;
    assert_eq!(
        again.count(|o| *o == WarmOutcome::AlreadyFresh),
        4,
        "{again}"
    );
    assert_eq!(calls.load(Ordering::SeqCst), 4);
    assert_eq!(
        again.to_string(),
        "4 requests: 0 stored, 0 revalidated, 4 already fresh, 0 filled by another call, \
         0 stale, 0 not stored, 0 bypassed, 0 failed"
    );
}

#[tokio::test]
async fn warm_reports_what_was_not_stored_and_why() {
    let layer = CacheLayer::new(MemoryStore::new(1 << 20));
    let cache = layer.handle();
    let calls = Arc::new(AtomicUsize::new(0));
    let app = app(&layer, &calls);
    let requests = vec![
        warm_get("/broken"),
        warm_get("/secret"),
        warm_get("/uncached"),
        Request::post("/write").body(Body::empty()).unwrap(),
        warm_get("/missing"),
    ];
    let report = cache.warm(&app, requests, 4).await;
    assert!(!report.is_complete());
    let outcomes: Vec<_> = report
        .results
        .iter()
        .map(|r| (r.status.map(|s| s.as_u16()), r.outcome.clone()))
        .collect();
    assert_eq!(
        outcomes,
        [
            (Some(500), WarmOutcome::NotStored { reason: "status" }),
            (Some(200), WarmOutcome::NotStored { reason: "no-store" }),
            (Some(200), WarmOutcome::Bypassed),
            // Not sent: only GET warms.
            (None, WarmOutcome::Bypassed),
            // axum's fallback is outside the route layers.
            (Some(404), WarmOutcome::Bypassed),
        ]
    );
}

#[tokio::test]
async fn warm_requests_carry_no_credentials() {
    let layer = CacheLayer::new(MemoryStore::new(1 << 20));
    let cache = layer.handle();
    let calls = Arc::new(AtomicUsize::new(0));
    let app = app(&layer, &calls);
    let request = Request::get("/products")
        .header("authorization", "Bearer secret")
        .header("cookie", "session=1")
        .body(Body::empty())
        .unwrap();
    let report = cache.warm(&app, [request], 1).await;
    // The origin saw no credentials, so it answered with a shared response, stored.
    assert_eq!(report.results[0].outcome, WarmOutcome::Stored);
    let (_, cache_status) = status_of(&app, "/products").await;
    assert!(cache_status.contains("; hit"), "{cache_status}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn warm_concurrency_is_bounded() {
    let layer = CacheLayer::new(MemoryStore::new(1 << 20));
    let cache = layer.handle();
    let running = Arc::new(AtomicUsize::new(0));
    let most = Arc::new(AtomicUsize::new(0));
    let app = Router::new()
        .route(
            "/slow/{n}",
            get({
                let (running, most) = (running.clone(), most.clone());
                move || async move {
                    let now = running.fetch_add(1, Ordering::SeqCst) + 1;
                    most.fetch_max(now, Ordering::SeqCst);
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    running.fetch_sub(1, Ordering::SeqCst);
                    ([("cache-control", "max-age=60")], "x")
                }
            }),
        )
        .layer(layer);
    let requests = (0..8).map(|n| warm_get(&format!("/slow/{n}")));
    let report = cache.warm(&app, requests, 3).await;
    assert!(report.is_complete(), "{report}");
    assert_eq!(
        most.load(Ordering::SeqCst),
        3,
        "at most 3 at a time, and 3 used"
    );
}

#[tokio::test]
async fn warm_refetches_a_stale_entry() {
    // A 1 s lifetime: stale after a sleep, refetched by the next warm.
    let layer = CacheLayer::new(MemoryStore::new(1 << 20));
    let cache = layer.handle();
    let origin = Origin::default();
    let service = cached(&layer, &origin, &[("cache-control", "max-age=1")]);
    let first = cache.warm(&service, [warm_get("/p")], 1).await;
    assert_eq!(first.results[0].outcome, WarmOutcome::Stored);
    tokio::time::sleep(Duration::from_millis(1_100)).await;
    let second = cache.warm(&service, [warm_get("/p")], 1).await;
    assert_eq!(second.results[0].outcome, WarmOutcome::Stored);
    assert_eq!(origin.calls(), 2);
    let seen = send(&service, get_req("/p")).await;
    assert!(seen.is_hit() && seen.body == "call 2", "{seen:?}");
}

/// Steady load on one hot key (a 2 s lifetime) for 5 s, from 4 clients each sending every
/// 20 ms: the responses that were not hits, and the origin calls.
async fn misses_under_load(refresh_ahead: Option<f64>) -> (usize, usize) {
    let builder = CacheLayer::builder(MemoryStore::new(1 << 20));
    let layer = match refresh_ahead {
        Some(fraction) => builder.refresh_ahead(fraction),
        None => builder,
    }
    .build()
    .unwrap();
    let origin = Origin::default();
    let service = cached(&layer, &origin, &[("cache-control", "max-age=2")]);
    let report = layer.handle().warm(&service, [warm_get("/hot")], 1).await;
    assert!(report.is_complete(), "{report}");
    let misses = Arc::new(AtomicUsize::new(0));
    let until = tokio::time::Instant::now() + Duration::from_secs(5);
    let mut clients = Vec::new();
    for _ in 0..4 {
        let (service, misses) = (service.clone(), misses.clone());
        clients.push(tokio::spawn(async move {
            while tokio::time::Instant::now() < until {
                let seen = send(&service, get_req("/hot")).await;
                assert_eq!(seen.status, 200);
                if !seen.is_hit() {
                    misses.fetch_add(1, Ordering::SeqCst);
                }
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        }));
    }
    for client in clients {
        client.await.unwrap();
    }
    (misses.load(Ordering::SeqCst), origin.calls())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refresh_ahead_keeps_a_hot_key_from_ever_missing() {
    let (on, off) = tokio::join!(misses_under_load(Some(0.5)), misses_under_load(None));
    let ((misses_on, calls_on), (misses_off, calls_off)) = (on, off);
    println!("refresh-ahead on: {misses_on} misses, {calls_on} origin calls");
    println!("refresh-ahead off: {misses_off} misses, {calls_off} origin calls");
    assert_eq!(misses_on, 0, "no client-visible miss with refresh-ahead");
    // Without it the key expires at 2 s and 4 s: each expiry costs at least one miss.
    assert!(misses_off >= 2, "{misses_off} misses without refresh-ahead");
    // One refresh per window: the entry is refreshed after 1 s of its 2 s lifetime, so in
    // 5 s at most 5 refreshes follow the warm.
    assert!((4..=6).contains(&calls_on), "{calls_on} origin calls");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refresh_ahead_window_makes_one_origin_call_and_labels_the_trigger() {
    let layer = CacheLayer::builder(MemoryStore::new(1 << 20))
        .refresh_ahead(0.5)
        .build()
        .unwrap();
    let origin = Origin::default();
    let service = cached(&layer, &origin, &[("cache-control", "max-age=2")]);
    assert_eq!(send(&service, get_req("/k")).await.body, "call 1");
    // Before the window: plain hits, no refresh.
    let seen = send(&service, get_req("/k")).await;
    assert!(
        !seen.header("cache-status").contains("refresh-ahead"),
        "{seen:?}"
    );
    tokio::time::sleep(Duration::from_millis(1_200)).await;
    // In the window: 20 concurrent hits, one origin call, the response that started the
    // refresh naming it (the others are answered from the old entry or, once the refresh
    // stored it, the new one).
    let mut tasks = Vec::new();
    for _ in 0..20 {
        let service = service.clone();
        tasks.push(tokio::spawn(
            async move { send(&service, get_req("/k")).await },
        ));
    }
    let mut triggers = 0;
    for task in tasks {
        let seen = task.await.unwrap();
        assert!(seen.is_hit(), "{seen:?}");
        assert!(seen.body == "call 1" || seen.body == "call 2", "{seen:?}");
        if seen.header("cache-status").contains("detail=refresh-ahead") {
            triggers += 1;
        }
    }
    // Usually one; a request that looked up the old entry just before the refresh stored the
    // new one may start a second refresh, which finds the newer entry and calls nothing:
    // the origin count below is the claim.
    assert!(
        (1..=2).contains(&triggers),
        "{triggers} responses started a refresh"
    );
    assert!(common::eventually(|| origin.calls() == 2).await);
    // The refresh stores its entry once the origin's body is read, a moment after the call
    // was counted: until then hits still get the old entry (seen under a loaded CI run).
    let mut refreshed = false;
    for _ in 0..500 {
        if send(&service, get_req("/k")).await.body == "call 2" {
            refreshed = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert!(refreshed, "the refreshed entry was never served");
    // The refreshed entry is fresh for its whole lifetime again: hits, no further call.
    for _ in 0..10 {
        let seen = send(&service, get_req("/k")).await;
        assert!(seen.is_hit() && seen.body == "call 2", "{seen:?}");
    }
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(origin.calls(), 2);
}
