//! Faults behind the cache, with real processes: a throwaway `redis-server` on a free port
//! killed under load and restarted, or paused; an origin that errors, times out, or whose
//! client goes away mid-response. Throwaway servers (towerkit-test-support's `servers`) are
//! killed when their guard drops, even when a test fails.

#![cfg(feature = "redis")]

use std::convert::Infallible;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use axum::body::Body;
use axum::http::{Request, Response, StatusCode};
use bytes::Bytes;
use http_body_util::BodyExt;
use metrics_util::debugging::{DebugValue, DebuggingRecorder, Snapshotter};
use tower::ServiceExt;
use towerkit_cache::{CacheLayer, MemoryStore, RedisStore, TieredStore};
use towerkit_test_support::servers::Redis;

mod common;

use common::{Origin, cached, get_req, response, send};

/// A connection to a throwaway server, outside the store.
fn client(server: &Redis) -> redis::Connection {
    redis::Client::open(server.url())
        .unwrap()
        .get_connection_with_timeout(Duration::from_secs(1))
        .unwrap()
}

/// How many keys a throwaway server holds.
fn keys(server: &Redis) -> usize {
    let mut conn = client(server);
    redis::cmd("DBSIZE").query::<usize>(&mut conn).unwrap()
}

fn counter(snapshotter: &Snapshotter, name: &str) -> u64 {
    snapshotter
        .snapshot()
        .into_vec()
        .into_iter()
        .filter(|(key, _, _, _)| key.key().name() == name)
        .map(|(_, _, _, value)| match value {
            DebugValue::Counter(n) => n,
            _ => 0,
        })
        .sum()
}

/// `requests` GETs at once, all of which must succeed.
async fn burst<S>(app: &S, uris: impl Iterator<Item = String>) -> Vec<common::Seen>
where
    S: tower::Service<
            Request<Body>,
            Response = Response<towerkit_cache::CacheBody<Body>>,
            Error = Infallible,
        > + Clone,
{
    let seen = futures_util::future::join_all(uris.map(|uri| send(app, get_req(&uri)))).await;
    for response in &seen {
        assert_eq!(response.status, StatusCode::OK, "{response:?}");
    }
    seen
}

// A current-thread runtime: the local metrics recorder sees every task.
#[tokio::test]
async fn redis_killed_under_load_fails_no_request_and_l2_returns_after_restart() {
    let recorder = DebuggingRecorder::new();
    let snapshotter = recorder.snapshotter();
    let _guard = metrics::set_default_local_recorder(&recorder);
    let mut server = Redis::start().expect("redis-server starts");
    let url = server.url();
    let connect = || {
        RedisStore::builder(url.as_str())
            .prefix("faults:")
            .backoff(Duration::from_millis(20), Duration::from_millis(200))
            .connect()
    };
    let tiered = TieredStore::new(MemoryStore::new(1 << 20), connect().await.unwrap());
    let origin = Origin::default();
    let app = cached(
        &CacheLayer::new(tiered.clone()),
        &origin,
        &[("cache-control", "max-age=60")],
    );

    // Warm: 16 keys, each in L1 and (eventually) in Redis.
    burst(&app, (0..16).map(|i| format!("/warm/{i}"))).await;
    let deadline = Instant::now() + Duration::from_secs(5);
    while keys(&server) < 16 && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(keys(&server) >= 16, "warm keys reach Redis");
    assert_eq!(counter(&snapshotter, "http_cache_redis_errors_total"), 0);

    // Redis dies while 16 requests at a time keep coming: warm keys from L1, new keys from
    // the origin; nothing fails.
    server.kill();
    let calls_before = origin.calls();
    for round in 0..10 {
        let seen = burst(
            &app,
            (0..16).map(|i| {
                if i % 2 == 0 {
                    format!("/warm/{i}")
                } else {
                    format!("/down/{round}/{i}")
                }
            }),
        )
        .await;
        for (i, response) in seen.iter().enumerate() {
            if i % 2 == 0 {
                assert!(response.is_hit(), "L1 keeps serving: {response:?}");
            }
        }
    }
    assert_eq!(
        origin.calls() - calls_before,
        10 * 8,
        "only new keys reach the origin"
    );
    assert!(
        counter(&snapshotter, "http_cache_redis_errors_total") > 0,
        "the outage shows in http_cache_redis_errors_total"
    );

    // Redis returns on the same port: writes reach it again within seconds, and another
    // instance (empty L1) reads them from L2.
    server.restart().expect("redis-server restarts");
    let restarted = Instant::now();
    let mut sent = Vec::new();
    let mut round = 0;
    while keys(&server) == 0 {
        assert!(
            restarted.elapsed() < Duration::from_secs(5),
            "L2 used again within 5 s of Redis returning"
        );
        let uris: Vec<String> = (0..4).map(|i| format!("/up/{round}/{i}")).collect();
        burst(&app, uris.iter().cloned()).await;
        sent.extend(uris);
        round += 1;
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    // Another instance (empty L1) reads what was written after the restart from L2.
    let other = TieredStore::new(MemoryStore::new(1 << 20), connect().await.unwrap());
    let other_app = cached(
        &CacheLayer::new(other),
        &origin,
        &[("cache-control", "max-age=60")],
    );
    let mut from_l2 = 0;
    for uri in &sent {
        if send(&other_app, get_req(uri)).await.is_hit() {
            from_l2 += 1;
        }
    }
    assert!(
        from_l2 > 0,
        "another instance reads from L2 after the restart"
    );
}

#[tokio::test]
async fn a_paused_redis_is_given_up_on_after_the_store_timeout() {
    let server = Redis::start().expect("redis-server starts");
    let store = RedisStore::builder(server.url())
        .prefix("slow:")
        .connect()
        .await
        .unwrap();
    let origin = Origin::default();
    // Default store timeouts: 50 ms for the Redis operations and for the layer.
    let app = cached(
        &CacheLayer::new(store),
        &origin,
        &[("cache-control", "max-age=60")],
    );
    send(&app, get_req("/a")).await;
    let deadline = Instant::now() + Duration::from_secs(5);
    while keys(&server) == 0 && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(send(&app, get_req("/a")).await.is_hit(), "stored in Redis");

    let pause = Duration::from_secs(5);
    let mut conn = client(&server);
    redis::cmd("CLIENT")
        .arg("PAUSE")
        .arg(pause.as_millis() as u64)
        .query::<()>(&mut conn)
        .unwrap();
    let started = Instant::now();
    let seen = send(&app, get_req("/a")).await;
    let elapsed = started.elapsed();
    assert_eq!(seen.status, StatusCode::OK);
    assert!(!seen.is_hit(), "the lookup gave up: {seen:?}");
    assert_eq!(origin.calls(), 2, "the request went on to the origin");
    // Not a timing benchmark: only that the request did not wait for the pause to end.
    assert!(
        elapsed < pause / 2,
        "waited {elapsed:?} on a {pause:?} pause"
    );
}

#[tokio::test]
async fn stale_if_error_serves_the_stored_response_on_5xx_transport_errors_and_timeouts() {
    for (cache_control, served_stale) in
        [("max-age=0, stale-if-error=60", true), ("max-age=0", false)]
    {
        let calls = Arc::new(AtomicUsize::new(0));
        let counter = calls.clone();
        let service = tower::service_fn(move |request: Request<Body>| {
            let n = counter.fetch_add(1, Ordering::SeqCst);
            let path = request.uri().path().to_owned();
            async move {
                if n < 3 {
                    return Ok(response(200, &[("cache-control", cache_control)], "good"));
                }
                match path.as_str() {
                    "/5xx" => Ok(response(503, &[], "down")),
                    "/transport" => Err(std::io::Error::other("connection reset")),
                    _ => {
                        tokio::time::sleep(Duration::from_secs(1)).await;
                        Ok(response(200, &[], "late"))
                    }
                }
            }
        });
        let app = tower::ServiceBuilder::new()
            .layer(
                CacheLayer::builder(MemoryStore::new(1 << 20))
                    .origin_timeout(Duration::from_millis(100))
                    .build()
                    .unwrap(),
            )
            .service(service);
        for path in ["/5xx", "/transport", "/slow"] {
            // Read to the end: only a complete body is stored.
            let response = app.clone().oneshot(get_req(path)).await.unwrap();
            response.into_body().collect().await.unwrap();
        }
        for path in ["/5xx", "/transport", "/slow"] {
            let outcome =
                tokio::time::timeout(Duration::from_secs(10), app.clone().oneshot(get_req(path)))
                    .await;
            let (stale, status) = match outcome {
                Ok(Ok(response)) => {
                    let status = response.status();
                    let body = response.into_body().collect().await.unwrap().to_bytes();
                    (body == "good", status)
                }
                Ok(Err(_)) | Err(_) => (false, StatusCode::BAD_GATEWAY),
            };
            assert_eq!(stale, served_stale, "{cache_control} {path}: {status}");
            if served_stale {
                assert_eq!(status, StatusCode::OK, "{cache_control} {path}");
            }
        }
    }
}

#[tokio::test]
async fn a_client_that_disconnects_mid_response_leaves_nothing_stored() {
    let gate = Arc::new(tokio::sync::Notify::new());
    let calls = Arc::new(AtomicUsize::new(0));
    let (release, counter) = (gate.clone(), calls.clone());
    let service = tower::service_fn(move |_: Request<Body>| {
        let n = counter.fetch_add(1, Ordering::SeqCst) + 1;
        let release = release.clone();
        async move {
            // First chunk at once, the rest only when the gate opens (first call only).
            let chunks = futures_util::stream::unfold(0, move |i| {
                let release = release.clone();
                async move {
                    match i {
                        0 => Some((Ok::<_, Infallible>(Bytes::from("first half,")), 1)),
                        1 => {
                            if n == 1 {
                                release.notified().await;
                            }
                            Some((Ok(Bytes::from(" second half")), 2))
                        }
                        _ => None,
                    }
                }
            });
            Ok::<_, Infallible>(
                Response::builder()
                    .header("cache-control", "max-age=60")
                    .body(Body::from_stream(chunks))
                    .unwrap(),
            )
        }
    });
    let app = tower::ServiceBuilder::new()
        .layer(CacheLayer::new(MemoryStore::new(1 << 20)))
        .service(service);

    let response = app.clone().oneshot(get_req("/stream")).await.unwrap();
    let mut body = response.into_body();
    let first = body.frame().await.unwrap().unwrap().into_data().unwrap();
    assert_eq!(first, "first half,");
    drop(body);
    gate.notify_waiters();
    tokio::task::yield_now().await;

    let next = app.clone().oneshot(get_req("/stream")).await.unwrap();
    let status = next.headers()["cache-status"].to_str().unwrap().to_owned();
    let body = next.into_body().collect().await.unwrap().to_bytes();
    assert_eq!(body, "first half, second half");
    assert!(!status.contains("; hit"), "{status}");
    assert_eq!(calls.load(Ordering::SeqCst), 2);
    // A complete response is stored as usual.
    let third = app.oneshot(get_req("/stream")).await.unwrap();
    let status = third.headers()["cache-status"].to_str().unwrap().to_owned();
    assert!(status.contains("; hit"), "{status}");
    let body = third.into_body().collect().await.unwrap().to_bytes();
    assert_eq!(body, "first half, second half");
}
