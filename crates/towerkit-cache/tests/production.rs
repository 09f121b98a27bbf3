//! Hazards production traffic finds first (issue 22): errors cached for the default TTL,
//! event streams holding the coalescing slot, entries the store refused reported as stored,
//! `Cache-Status` without the reason a response was not stored, nested routers sharing keys.

use std::convert::Infallible;
use std::time::{Duration, Instant};

use axum::Router;
use axum::body::Body;
use axum::http::{Request, Response, StatusCode};
use axum::routing::get;
use bytes::Bytes;
use futures_util::stream;
use http_body::Frame;
use http_body_util::StreamBody;
use tower::ServiceExt;
use towerkit_cache::{CacheLayer, MemoryStore};

mod common;

use common::{Origin, get_req, response, send};

fn store() -> MemoryStore {
    MemoryStore::new(16 * 1024 * 1024)
}

/// A layer over `layer` and an origin answering `status` with `headers` and `call N`.
fn answering(
    layer: CacheLayer,
    origin: &Origin,
    status: u16,
    headers: &'static [(&'static str, &'static str)],
) -> impl tower::Service<
    Request<Body>,
    Response = Response<towerkit_cache::CacheBody<Body>>,
    Error = Infallible,
    Future: Send,
> + Clone
+ use<> {
    tower::ServiceBuilder::new()
        .layer(layer)
        .service(origin.service(move |_, n| response(status, headers, format!("call {n}"))))
}

/// A body that sends `first` and then never ends.
fn endless(first: &'static str) -> Body {
    let frames = stream::once(async move { Ok::<_, Infallible>(Frame::data(Bytes::from(first))) })
        .chain(stream::pending());
    Body::new(StreamBody::new(frames))
}

use futures_util::StreamExt as _;

// Item 1: errors are not cached for the default TTL.

#[tokio::test]
async fn a_503_without_cache_control_is_not_stored_under_a_default_ttl() {
    let origin = Origin::default();
    let layer = CacheLayer::builder(store())
        .default_ttl(Duration::from_secs(60))
        .build()
        .unwrap();
    let app = answering(layer, &origin, 503, &[]);
    let first = send(&app, get_req("/list")).await;
    assert!(
        !first.header("cache-status").contains("stored"),
        "{first:?}"
    );
    let second = send(&app, get_req("/list")).await;
    assert!(!second.is_hit(), "{second:?}");
    assert_eq!(second.body, "call 2");
    assert_eq!(origin.calls(), 2);
}

#[tokio::test]
async fn a_503_with_explicit_max_age_is_stored() {
    let origin = Origin::default();
    let layer = CacheLayer::builder(store())
        .default_ttl(Duration::from_secs(60))
        .build()
        .unwrap();
    let app = answering(layer, &origin, 503, &[("cache-control", "max-age=5")]);
    let first = send(&app, get_req("/list")).await;
    assert_eq!(first.header("cache-status"), "towerkit; fwd=miss; stored");
    let second = send(&app, get_req("/list")).await;
    assert!(second.is_hit(), "{second:?}");
    assert_eq!(second.body, "call 1");
}

#[tokio::test]
async fn a_404_is_not_stored_for_the_default_ttl() {
    let origin = Origin::default();
    let layer = CacheLayer::builder(store())
        .default_ttl(Duration::from_secs(60))
        .build()
        .unwrap();
    let app = answering(layer, &origin, 404, &[]);
    send(&app, get_req("/missing")).await;
    let second = send(&app, get_req("/missing")).await;
    assert!(!second.is_hit(), "{second:?}");
    assert_eq!(origin.calls(), 2);
}

#[tokio::test]
async fn a_404_is_stored_for_the_negative_ttl_only() {
    let origin = Origin::default();
    let layer = CacheLayer::builder(store())
        .default_ttl(Duration::from_secs(60))
        .negative_ttl(Duration::from_secs(5))
        .build()
        .unwrap();
    let app = answering(layer, &origin, 404, &[]);
    let first = send(&app, get_req("/missing")).await;
    assert_eq!(first.header("cache-status"), "towerkit; fwd=miss; stored");
    let second = send(&app, get_req("/missing")).await;
    assert!(
        matches!(
            second.header("cache-status"),
            "towerkit; hit; ttl=5" | "towerkit; hit; ttl=4"
        ),
        "{second:?}"
    );
    assert_eq!(origin.calls(), 1);
}

#[tokio::test]
async fn default_ttl_statuses_are_configurable() {
    let origin = Origin::default();
    let layer = CacheLayer::builder(store())
        .default_ttl(Duration::from_secs(60))
        .default_ttl_statuses([StatusCode::OK, StatusCode::CREATED])
        .build()
        .unwrap();
    let app = answering(layer, &origin, 201, &[]);
    send(&app, get_req("/created")).await;
    assert!(send(&app, get_req("/created")).await.is_hit());
}

// Item 2: event streams do not hold the coalescing slot.

#[tokio::test]
async fn an_event_stream_does_not_hold_the_coalescing_slot() {
    let store = store();
    let layer = CacheLayer::builder(store.clone())
        .default_ttl(Duration::from_secs(60))
        .coalesce_timeout(Duration::from_secs(5))
        .build()
        .unwrap();
    let origin = Origin::default();
    let app = tower::ServiceBuilder::new()
        .layer(layer)
        .service(origin.service(|_, _| {
            let mut response = Response::new(endless("data: hello\n\n"));
            let headers = response.headers_mut();
            headers.insert("content-type", "text/event-stream".parse().unwrap());
            headers.insert("cache-control", "no-cache".parse().unwrap());
            response
        }));
    let first = app.clone().oneshot(get_req("/events")).await.unwrap();
    let status = first.headers()["cache-status"].to_str().unwrap().to_owned();
    assert!(!status.contains("stored"), "{status}");

    let started = Instant::now();
    let second = tokio::time::timeout(
        Duration::from_secs(1),
        app.clone().oneshot(get_req("/events")),
    )
    .await
    .expect("the second client's head arrives before coalesce_timeout")
    .unwrap();
    assert!(started.elapsed() < Duration::from_secs(1));
    assert_eq!(second.headers()["content-type"], "text/event-stream");
    assert_eq!(origin.calls(), 2);
    drop((first, second));
    assert!(store.is_empty());
}

#[tokio::test]
async fn a_body_streaming_past_coalesce_timeout_releases_its_followers() {
    let layer = CacheLayer::builder(store())
        .coalesce_timeout(Duration::from_secs(1))
        .build()
        .unwrap();
    let origin = Origin::default();
    let app = tower::ServiceBuilder::new()
        .layer(layer)
        .service(origin.service(|_, _| {
            let mut response = Response::new(endless("[1"));
            let headers = response.headers_mut();
            headers.insert("content-type", "application/json".parse().unwrap());
            headers.insert("cache-control", "max-age=60".parse().unwrap());
            response
        }));
    let first = app.clone().oneshot(get_req("/slow")).await.unwrap();
    tokio::time::sleep(Duration::from_millis(1300)).await;
    // The leader's body has streamed longer than coalesce_timeout: a new request does not
    // wait for it.
    let started = Instant::now();
    let late = tokio::time::timeout(Duration::from_millis(500), app.oneshot(get_req("/slow")))
        .await
        .expect("a request after the bound goes to the origin at once")
        .unwrap();
    assert!(started.elapsed() < Duration::from_millis(500));
    assert_eq!(origin.calls(), 2);
    drop((first, late));
}

// Item 3: what the store refuses is not reported as stored.

#[tokio::test]
async fn a_64_mib_memory_store_on_16_cores_keeps_a_2_mib_response() {
    let store = MemoryStore::with_parallelism(64 * 1024 * 1024, 16);
    let origin = Origin::default();
    let body = Bytes::from(vec![b'x'; 2 * 1024 * 1024]);
    let app =
        tower::ServiceBuilder::new()
            .layer(CacheLayer::new(store.clone()))
            .service(origin.service(move |_, _| {
                response(200, &[("cache-control", "max-age=60")], body.clone())
            }));
    let first = send(&app, get_req("/big")).await;
    assert_eq!(first.header("cache-status"), "towerkit; fwd=miss; stored");
    let second = send(&app, get_req("/big")).await;
    assert!(second.is_hit(), "{:?}", second.headers);
    assert_eq!(second.body.len(), 2 * 1024 * 1024);
    assert_eq!(origin.calls(), 1);
}

#[tokio::test]
async fn a_response_the_store_cannot_hold_is_not_reported_stored() {
    let store = MemoryStore::new(1024 * 1024);
    let origin = Origin::default();
    let body = Bytes::from(vec![b'x'; 2 * 1024 * 1024]);
    let app =
        tower::ServiceBuilder::new()
            .layer(CacheLayer::new(store.clone()))
            .service(origin.service(move |_, _| {
                response(200, &[("cache-control", "max-age=60")], body.clone())
            }));
    let first = send(&app, get_req("/big")).await;
    assert_eq!(
        first.header("cache-status"),
        "towerkit; fwd=miss; detail=too-large"
    );
    assert!(store.is_empty());
}

// Item 4: Cache-Status says why a response was not stored.

#[tokio::test]
async fn a_set_cookie_response_says_why_it_was_not_stored() {
    let origin = Origin::default();
    let app = answering(
        CacheLayer::new(store()),
        &origin,
        200,
        &[("cache-control", "max-age=60"), ("set-cookie", "a=b")],
    );
    let first = send(&app, get_req("/a")).await;
    assert_eq!(
        first.header("cache-status"),
        "towerkit; fwd=miss; detail=set-cookie"
    );
}

#[tokio::test]
async fn cache_status_detail_can_be_turned_off() {
    let origin = Origin::default();
    let layer = CacheLayer::builder(store())
        .cache_status_detail(false)
        .build()
        .unwrap();
    let app = answering(
        layer,
        &origin,
        200,
        &[("cache-control", "max-age=60"), ("set-cookie", "a=b")],
    );
    let first = send(&app, get_req("/a")).await;
    assert_eq!(first.header("cache-status"), "towerkit; fwd=miss");
}

// Item 8: nested routers key on the original URI.

fn versioned(store: &MemoryStore, body: &'static str) -> Router {
    Router::new()
        .route(
            "/items",
            get(move || async move { ([("cache-control", "max-age=60")], body) }),
        )
        .layer(CacheLayer::new(store.clone()))
}

async fn body_of(app: &Router, uri: &str) -> (String, String) {
    let response = app.clone().oneshot(get_req(uri)).await.unwrap();
    let status = response.headers()["cache-status"]
        .to_str()
        .unwrap()
        .to_owned();
    let body = axum::body::to_bytes(response.into_body(), usize::MAX)
        .await
        .unwrap();
    (String::from_utf8(body.to_vec()).unwrap(), status)
}

#[tokio::test]
async fn nested_routers_sharing_a_store_keep_their_entries_apart() {
    let store = store();
    let app = Router::new()
        .nest("/v1", versioned(&store, "v1"))
        .nest("/v2", versioned(&store, "v2"));
    assert_eq!(body_of(&app, "/v1/items").await.0, "v1");
    assert_eq!(body_of(&app, "/v2/items").await.0, "v2");
    let (body, status) = body_of(&app, "/v1/items").await;
    assert_eq!(body, "v1");
    assert!(status.contains("; hit"), "{status}");
    assert_eq!(store.len(), 2);
}

#[tokio::test]
async fn invalidate_path_finds_entries_under_a_nest_prefix() {
    let store = store();
    let v1_layer = CacheLayer::new(store.clone());
    let handle = v1_layer.handle();
    let v1 = Router::new()
        .route(
            "/items",
            get(|| async { ([("cache-control", "max-age=60")], "v1") }),
        )
        .layer(v1_layer);
    let app = Router::new()
        .nest("/v1", v1)
        .nest("/v2", versioned(&store, "v2"));
    body_of(&app, "/v1/items").await;
    body_of(&app, "/v2/items").await;
    assert_eq!(handle.invalidate_path("/v1/items").await.unwrap(), 1);
    let (_, status) = body_of(&app, "/v1/items").await;
    assert_eq!(status, "towerkit; fwd=miss; stored");
    let (body, status) = body_of(&app, "/v2/items").await;
    assert_eq!(body, "v2");
    assert!(status.contains("; hit"), "{status}");
}
