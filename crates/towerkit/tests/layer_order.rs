//! The claims of the guide (GUIDE.md, `towerkit::guide`) about layer order, checked: each
//! wrong order shows its symptom, and the recommended order does not. Every stack is added
//! with `Router::layer`, as an application would, and driven with `oneshot`.

use std::convert::Infallible;
use std::future::ready;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::Body;
use axum::extract::Request;
use axum::http::{HeaderName, HeaderValue, Method, Response, StatusCode};
use axum::middleware::{self, Next};
use axum::response::IntoResponse;
use axum::routing::get;
use axum::{Json, Router};
use http_body_util::BodyExt;
use serde_json::{Value, json};
use tower::util::MapResponseLayer;
use tower::{ServiceBuilder, ServiceExt, service_fn};
use tower_http::cors::{AllowOrigin, CorsLayer};
use tower_http::decompression::Decompression;
use tower_http::timeout::TimeoutLayer;
use tower_http::trace::TraceLayer;
use towerkit::cache::{CacheLayer, MemoryStore};
use towerkit::compress::CompressionLayer;
use towerkit::nulls::StripNullsLayer;
use towerkit::paginate::{PaginateLayer, SelectFieldsLayer};
use towerkit::timing::measure::Http;
use towerkit::timing::{OnSlow, SlowCall, TimingLayer};
use towerkit::validators::ETagLayer;

const API_KEY: &str = "a-key-long-enough-to-be-real";
const SHOP: &str = "https://shop.example.com";
const ADMIN: &str = "https://admin.example.com";
const DESCRIPTION: &str = "A product described at some length, as catalogues do, so that a page of them is worth compressing.";

/// `/products`: 30 products (4 KiB) with a `null` member each, counting the calls that
/// reach it. Paged, projected or stripped, a page stays above the 1 KiB the compression
/// layer needs.
fn products(calls: &Arc<AtomicUsize>) -> Router {
    let calls = calls.clone();
    Router::new().route(
        "/products",
        get(move || {
            calls.fetch_add(1, Ordering::SeqCst);
            let items: Vec<Value> = (1..=30)
                .map(|id| {
                    json!({
                        "id": id,
                        "name": format!("product {id}"),
                        "description": DESCRIPTION,
                        "discount": null,
                    })
                })
                .collect();
            ready(Json(Value::Array(items)))
        }),
    )
}

/// A cache that stores what handlers say nothing about for a minute.
fn cache() -> CacheLayer {
    CacheLayer::builder(MemoryStore::new(64 * 1024 * 1024))
        .default_ttl(Duration::from_secs(60))
        .build()
        .expect("a valid cache configuration")
}

/// CORS for two known origins: `Vary: origin` on every response, as with any origin list.
fn cors() -> CorsLayer {
    CorsLayer::new()
        .allow_origin(AllowOrigin::list([
            HeaderValue::from_static(SHOP),
            HeaderValue::from_static(ADMIN),
        ]))
        .allow_methods([Method::GET])
        .allow_headers([HeaderName::from_static("x-api-key")])
}

/// The API-key check: a 401 unless `X-Api-Key` is the key.
async fn require_api_key(request: Request, next: Next) -> axum::response::Response {
    match request.headers().get("x-api-key") {
        Some(key) if key == API_KEY => next.run(request).await,
        _ => StatusCode::UNAUTHORIZED.into_response(),
    }
}

/// Counts the calls that reach the `TimingLayer`'s callback: with both thresholds at zero,
/// every call it measures is "slow".
fn counted_timing(
    count: &Arc<AtomicUsize>,
) -> TimingLayer<Http, impl OnSlow + Clone + Send + Sync + 'static> {
    let count = count.clone();
    TimingLayer::builder()
        .server_timing(true)
        .slow(Duration::ZERO, Duration::ZERO)
        .on_slow(move |_call: &SlowCall<'_>| {
            count.fetch_add(1, Ordering::SeqCst);
        })
        .build()
        .expect("zero thresholds are valid")
}

/// A GET of `uri` with `headers`.
fn get_with(uri: &str, headers: &[(&str, &str)]) -> Request {
    let mut request = Request::get(uri);
    for (name, value) in headers {
        request = request.header(*name, *value);
    }
    request.body(Body::empty()).expect("a valid request")
}

/// Sends `request` and reads the whole response, so that a cache has stored it before the
/// next request.
async fn send(app: &Router, request: Request) -> (Response<()>, Vec<u8>) {
    let response = app.clone().oneshot(request).await.expect("infallible");
    let (parts, body) = response.into_parts();
    let bytes = body.collect().await.expect("a readable body").to_bytes();
    (Response::from_parts(parts, ()), bytes.to_vec())
}

/// The header `name` of `response` as text, `""` when absent.
fn header<'a>(response: &'a Response<()>, name: &str) -> &'a str {
    response
        .headers()
        .get(name)
        .map_or("", |value| value.to_str().expect("a visible ASCII header"))
}

/// The body a client decoding `Content-Encoding` reads (tower-http's `Decompression`, as in
/// an HTTP client).
async fn decoded(response: Response<()>, body: Vec<u8>) -> Value {
    let response = Mutex::new(Some(response.map(|()| Body::from(body))));
    let client = Decompression::new(service_fn(|_: Request| {
        let response = response.lock().expect("unpoisoned").take();
        ready(Ok::<_, Infallible>(response.expect("one response")))
    }));
    let response = client
        .oneshot(Request::new(Body::empty()))
        .await
        .expect("infallible");
    assert!(response.headers().get("content-encoding").is_none());
    let bytes = response
        .into_body()
        .collect()
        .await
        .expect("a decodable body")
        .to_bytes();
    serde_json::from_slice(&bytes).expect("a JSON body")
}

/// Whether any object in `value` has a `null` member.
fn has_null_member(value: &Value) -> bool {
    match value {
        Value::Object(members) => members
            .values()
            .any(|member| member.is_null() || has_null_member(member)),
        Value::Array(items) => items.iter().any(has_null_member),
        _ => false,
    }
}

#[tokio::test]
async fn json_layers_outside_compression_skip_compressed_bodies() {
    let calls = Arc::new(AtomicUsize::new(0));
    let wrong = products(&calls).layer(
        ServiceBuilder::new()
            .layer(StripNullsLayer::new())
            .layer(PaginateLayer::new())
            .layer(CompressionLayer::new()),
    );
    // A client that accepts gzip (every browser) gets the handler's document untouched:
    // nulls kept, all 30 items, no envelope.
    let (response, body) = send(
        &wrong,
        get_with("/products", &[("accept-encoding", "gzip")]),
    )
    .await;
    assert_eq!(header(&response, "content-encoding"), "gzip");
    let document = decoded(response, body).await;
    assert!(has_null_member(&document));
    assert_eq!(document.as_array().map(Vec::len), Some(30));
    // A client that accepts no compression (curl) sees both layers work, so the bug hides.
    let (response, body) = send(&wrong, get_with("/products", &[])).await;
    let document = decoded(response, body).await;
    assert!(!has_null_member(&document));
    assert_eq!(document["data"].as_array().map(Vec::len), Some(20));

    let right = products(&calls).layer(
        ServiceBuilder::new()
            .layer(CompressionLayer::new())
            .layer(StripNullsLayer::new())
            .layer(PaginateLayer::new()),
    );
    let (response, body) = send(
        &right,
        get_with("/products", &[("accept-encoding", "gzip")]),
    )
    .await;
    assert_eq!(header(&response, "content-encoding"), "gzip");
    let document = decoded(response, body).await;
    assert!(!has_null_member(&document));
    assert_eq!(document["data"].as_array().map(Vec::len), Some(20));
}

/// Records the `Content-Encoding` of each response passing between two layers.
#[derive(Clone, Default)]
struct Spy(Arc<Mutex<Vec<String>>>);

impl Spy {
    fn layer<B>(&self) -> MapResponseLayer<impl Fn(Response<B>) -> Response<B> + Clone + use<B>> {
        let seen = self.0.clone();
        MapResponseLayer::new(move |response: Response<B>| {
            let encoding = response
                .headers()
                .get("content-encoding")
                .map_or("identity", |value| value.to_str().unwrap_or("?"));
            seen.lock().expect("unpoisoned").push(encoding.to_owned());
            response
        })
    }

    fn seen(&self) -> Vec<String> {
        self.0.lock().expect("unpoisoned").clone()
    }
}

#[tokio::test]
async fn etags_inside_the_json_layers_are_weakened() {
    let calls = Arc::new(AtomicUsize::new(0));
    let request = || get_with("/products", &[("accept-encoding", "br")]);
    // Wrong: the tag names the bytes before nulls are stripped, and the JSON layer weakens it.
    let wrong = products(&calls)
        .layer(ETagLayer::new())
        .layer(StripNullsLayer::new())
        .layer(CompressionLayer::new());
    let (response, _) = send(&wrong, request()).await;
    assert!(header(&response, "etag").starts_with("W/\""), "weakened");
    // Right: a strong tag of the stripped body, with the brotli variant's suffix.
    let right = products(&calls)
        .layer(StripNullsLayer::new())
        .layer(ETagLayer::new())
        .layer(CompressionLayer::new());
    let (response, _) = send(&right, request()).await;
    let tag = header(&response, "etag");
    assert!(tag.starts_with('"') && tag.ends_with("-br\""), "{tag}");
}

#[tokio::test]
async fn the_cache_inside_compression_compresses_every_hit() {
    let calls = Arc::new(AtomicUsize::new(0));
    let spy = Spy::default();
    let wrong = products(&calls).layer(
        ServiceBuilder::new()
            .layer(CompressionLayer::new())
            .layer(spy.layer())
            .layer(cache()),
    );
    let br = || get_with("/products", &[("accept-encoding", "br")]);
    let (miss, _) = send(&wrong, br()).await;
    assert_eq!(header(&miss, "cache-status"), "towerkit; fwd=miss; stored");
    let (hit, _) = send(&wrong, br()).await;
    assert!(header(&hit, "cache-status").starts_with("towerkit; hit"));
    assert_eq!(header(&hit, "content-encoding"), "br");
    // The cache stored the plain body: the hit left it uncompressed, and the compression
    // layer compressed it again on its way out, as it will on every hit.
    assert_eq!(spy.seen(), ["identity", "identity"]);
    assert_eq!(calls.load(Ordering::SeqCst), 1);
}

#[tokio::test]
async fn the_cache_outside_compression_stores_compressed_variants() {
    let calls = Arc::new(AtomicUsize::new(0));
    let spy = Spy::default();
    let right = products(&calls).layer(
        ServiceBuilder::new()
            .layer(cache())
            .layer(spy.layer())
            .layer(CompressionLayer::new()),
    );
    let with = |coding| get_with("/products", &[("accept-encoding", coding)]);
    send(&right, with("br")).await;
    let (hit, body) = send(&right, with("br")).await;
    assert!(header(&hit, "cache-status").starts_with("towerkit; hit"));
    assert_eq!(header(&hit, "content-encoding"), "br");
    assert!(body.len() < 1024, "{} bytes", body.len());
    // gzip is a second variant of the same key: compressed once, then served as stored.
    send(&right, with("gzip")).await;
    let (hit, body) = send(&right, with("gzip, deflate")).await;
    assert!(header(&hit, "cache-status").starts_with("towerkit; hit"));
    assert_eq!(header(&hit, "content-encoding"), "gzip");
    assert_eq!(decoded(hit, body).await.as_array().map(Vec::len), Some(30));
    // Only the two misses passed through the compression layer; the hits never did.
    assert_eq!(spy.seen(), ["br", "gzip"]);
    assert_eq!(calls.load(Ordering::SeqCst), 2);
}

#[tokio::test]
async fn timing_inside_the_cache_misses_the_hits() {
    let calls = Arc::new(AtomicUsize::new(0));
    let timed = Arc::new(AtomicUsize::new(0));
    let wrong = products(&calls).layer(
        ServiceBuilder::new()
            .layer(cache())
            .layer(counted_timing(&timed)),
    );
    let (miss, _) = send(&wrong, get_with("/products", &[])).await;
    let (hit, _) = send(&wrong, get_with("/products", &[])).await;
    assert!(header(&hit, "cache-status").starts_with("towerkit; hit"));
    // The hit was never measured, and replays the Server-Timing stored with the miss.
    assert_eq!(timed.load(Ordering::SeqCst), 1);
    assert!(header(&miss, "server-timing").starts_with("total;dur="));
    assert_eq!(
        header(&hit, "server-timing"),
        header(&miss, "server-timing")
    );
    assert!(!header(&hit, "server-timing").contains("cache;"));

    let timed = Arc::new(AtomicUsize::new(0));
    let right = products(&calls).layer(
        ServiceBuilder::new()
            .layer(counted_timing(&timed))
            .layer(cache()),
    );
    let (miss, _) = send(&right, get_with("/products", &[])).await;
    let (hit, _) = send(&right, get_with("/products", &[])).await;
    assert_eq!(timed.load(Ordering::SeqCst), 2);
    assert!(header(&miss, "server-timing").ends_with(r#"cache;desc="miss""#));
    assert!(header(&hit, "server-timing").ends_with(r#"cache;desc="hit""#));
}

#[tokio::test]
async fn the_cache_outside_the_api_key_check_serves_anyone() {
    let calls = Arc::new(AtomicUsize::new(0));
    let keyed = || get_with("/products", &[("x-api-key", API_KEY)]);
    let anonymous = || get_with("/products", &[]);

    let wrong = products(&calls).layer(
        ServiceBuilder::new()
            .layer(cache())
            .layer(middleware::from_fn(require_api_key)),
    );
    let (stored, _) = send(&wrong, keyed()).await;
    assert_eq!(
        header(&stored, "cache-status"),
        "towerkit; fwd=miss; stored"
    );
    let (leaked, body) = send(&wrong, anonymous()).await;
    assert_eq!(leaked.status(), StatusCode::OK);
    assert!(header(&leaked, "cache-status").starts_with("towerkit; hit"));
    assert!(body.starts_with(br#"[{"id":1"#));

    let right = products(&calls).layer(
        ServiceBuilder::new()
            .layer(middleware::from_fn(require_api_key))
            .layer(cache()),
    );
    send(&right, keyed()).await;
    let (refused, _) = send(&right, anonymous()).await;
    assert_eq!(refused.status(), StatusCode::UNAUTHORIZED);
    // Keyed callers still share the stored response.
    let (hit, _) = send(&right, keyed()).await;
    assert!(header(&hit, "cache-status").starts_with("towerkit; hit"));
}

#[tokio::test]
async fn cors_inside_the_cache_stores_a_variant_per_origin() {
    let from = |origin| get_with("/products", &[("origin", origin)]);

    let calls = Arc::new(AtomicUsize::new(0));
    let wrong = products(&calls).layer(ServiceBuilder::new().layer(cache()).layer(cors()));
    let (shop, _) = send(&wrong, from(SHOP)).await;
    assert_eq!(header(&shop, "vary"), "origin");
    let (admin, _) = send(&wrong, from(ADMIN)).await;
    assert_eq!(
        header(&admin, "cache-status"),
        "towerkit; fwd=vary-miss; stored"
    );
    let (shop_again, _) = send(&wrong, from(SHOP)).await;
    assert!(header(&shop_again, "cache-status").starts_with("towerkit; hit"));
    // One origin call, and one stored copy, per calling site.
    assert_eq!(calls.load(Ordering::SeqCst), 2);

    let calls = Arc::new(AtomicUsize::new(0));
    let right = products(&calls).layer(ServiceBuilder::new().layer(cors()).layer(cache()));
    send(&right, from(SHOP)).await;
    let (admin, _) = send(&right, from(ADMIN)).await;
    assert!(header(&admin, "cache-status").starts_with("towerkit; hit"));
    assert_eq!(header(&admin, "access-control-allow-origin"), ADMIN);
    assert_eq!(header(&admin, "vary"), "origin");
    assert_eq!(calls.load(Ordering::SeqCst), 1);
}

#[tokio::test]
async fn the_api_key_check_outside_cors_refuses_preflights() {
    // A browser's preflight carries no credentials, so no API key.
    let preflight = || {
        Request::builder()
            .method(Method::OPTIONS)
            .uri("/products")
            .header("origin", SHOP)
            .header("access-control-request-method", "GET")
            .header("access-control-request-headers", "x-api-key")
            .body(Body::empty())
            .expect("a valid request")
    };
    let calls = Arc::new(AtomicUsize::new(0));
    let wrong = products(&calls).layer(
        ServiceBuilder::new()
            .layer(middleware::from_fn(require_api_key))
            .layer(cors()),
    );
    let (refused, _) = send(&wrong, preflight()).await;
    assert_eq!(refused.status(), StatusCode::UNAUTHORIZED);

    let right = products(&calls).layer(
        ServiceBuilder::new()
            .layer(cors())
            .layer(middleware::from_fn(require_api_key)),
    );
    let (allowed, _) = send(&right, preflight()).await;
    assert_eq!(allowed.status(), StatusCode::OK);
    assert_eq!(header(&allowed, "access-control-allow-origin"), SHOP);
    assert_eq!(
        header(&allowed, "access-control-allow-headers"),
        "x-api-key"
    );
    assert_eq!(calls.load(Ordering::SeqCst), 0);
}

#[tokio::test]
async fn tower_http_layers_sit_directly_outside_every_towerkit_layer() {
    // tower-http's CORS and timeout answer with the inner body type's `Default`: each
    // towerkit body provides one, so they compose inside one `ServiceBuilder` too.
    let slow = || {
        Router::new().route(
            "/slow",
            get(|| async {
                tokio::time::sleep(Duration::from_secs(5)).await;
                "late"
            }),
        )
    };
    let preflight = || {
        Request::builder()
            .method(Method::OPTIONS)
            .uri("/slow")
            .header("origin", SHOP)
            .header("access-control-request-method", "GET")
            .body(Body::empty())
            .expect("a valid request")
    };
    macro_rules! check {
        ($layer:expr) => {{
            let timeout = TimeoutLayer::with_status_code(
                StatusCode::SERVICE_UNAVAILABLE,
                Duration::from_millis(20),
            );
            let app = slow().layer(ServiceBuilder::new().layer(timeout).layer($layer));
            let (response, body) = send(&app, get_with("/slow", &[])).await;
            assert_eq!(response.status(), StatusCode::SERVICE_UNAVAILABLE);
            assert!(body.is_empty());
            let app = slow().layer(ServiceBuilder::new().layer(cors()).layer($layer));
            let (response, body) = send(&app, preflight()).await;
            assert_eq!(response.status(), StatusCode::OK);
            assert_eq!(header(&response, "access-control-allow-origin"), SHOP);
            assert!(body.is_empty());
        }};
    }
    check!(cache());
    check!(CompressionLayer::new());
    check!(StripNullsLayer::new());
    check!(SelectFieldsLayer::new());
    check!(PaginateLayer::new());
}

/// The guide's whole stack, as one `ServiceBuilder` (outermost first).
fn with_service_builder(router: Router, cache: CacheLayer, timed: &Arc<AtomicUsize>) -> Router {
    router.layer(
        ServiceBuilder::new()
            .layer(TraceLayer::new_for_http())
            .layer(TimeoutLayer::with_status_code(
                StatusCode::SERVICE_UNAVAILABLE,
                Duration::from_secs(10),
            ))
            .layer(cors())
            .layer(counted_timing(timed))
            .layer(middleware::from_fn(require_api_key))
            .layer(cache)
            .layer(CompressionLayer::new())
            .layer(StripNullsLayer::new())
            .layer(SelectFieldsLayer::new())
            .layer(PaginateLayer::new()),
    )
}

/// The same stack as chained `Router::layer` calls (innermost first).
fn with_chained_layers(router: Router, cache: CacheLayer, timed: &Arc<AtomicUsize>) -> Router {
    router
        .layer(PaginateLayer::new())
        .layer(SelectFieldsLayer::new())
        .layer(StripNullsLayer::new())
        .layer(CompressionLayer::new())
        .layer(cache)
        .layer(middleware::from_fn(require_api_key))
        .layer(counted_timing(timed))
        .layer(cors())
        .layer(TimeoutLayer::with_status_code(
            StatusCode::SERVICE_UNAVAILABLE,
            Duration::from_secs(10),
        ))
        .layer(TraceLayer::new_for_http())
}

/// What a client sees of a sequence of requests: status, the headers the layers write, and
/// the decoded body.
async fn observe(app: &Router) -> Vec<(StatusCode, Vec<String>, Option<Value>)> {
    let keyed = |coding: &'static str, query: &str| {
        get_with(
            &format!("/products{query}"),
            &[
                ("x-api-key", API_KEY),
                ("accept-encoding", coding),
                ("origin", SHOP),
            ],
        )
    };
    let requests = [
        keyed("br", ""),
        keyed("br", ""),
        keyed("gzip", "?page=2&fields=id,description"),
        get_with("/products", &[("origin", SHOP)]),
    ];
    let mut seen = Vec::new();
    for request in requests {
        let (response, body) = send(app, request).await;
        let headers = [
            "content-encoding",
            "cache-status",
            "access-control-allow-origin",
            "vary",
            "x-total-count",
        ]
        .iter()
        .map(|name| format!("{name}: {}", header(&response, name)))
        .collect();
        // The cache's `ttl` and Server-Timing's durations change with time: kept out.
        let status = response.status();
        let document = if status == StatusCode::OK {
            Some(decoded(response, body).await)
        } else {
            None
        };
        seen.push((status, headers, document));
    }
    seen
}

#[tokio::test]
async fn the_recommended_stack_reads_the_same_either_way() {
    let calls = Arc::new(AtomicUsize::new(0));
    let timed = Arc::new(AtomicUsize::new(0));
    let built = observe(&with_service_builder(products(&calls), cache(), &timed)).await;
    let chained = observe(&with_chained_layers(products(&calls), cache(), &timed)).await;
    let strip_ttl = |seen: &mut Vec<(StatusCode, Vec<String>, Option<Value>)>| {
        for (_, headers, _) in seen.iter_mut() {
            for header in headers.iter_mut() {
                if let Some(at) = header.find("; ttl=") {
                    header.truncate(at);
                }
            }
        }
    };
    let (mut built, mut chained) = (built, chained);
    strip_ttl(&mut built);
    strip_ttl(&mut chained);
    assert_eq!(built, chained);

    // And what they agree on is the guide's promise: a compressed hit, paged, projected and
    // without nulls, CORS on every answer, no key no answer, every call timed.
    let (status, headers, document) = &built[1];
    assert_eq!(*status, StatusCode::OK);
    assert_eq!(headers[0], "content-encoding: br");
    assert_eq!(headers[1], "cache-status: towerkit; hit");
    assert_eq!(headers[2], format!("access-control-allow-origin: {SHOP}"));
    assert_eq!(headers[4], "x-total-count: 30");
    let document = document.as_ref().expect("a body");
    assert_eq!(document["data"].as_array().map(Vec::len), Some(20));
    assert!(!has_null_member(document));
    let (_, headers, document) = &built[2];
    assert_eq!(headers[0], "content-encoding: gzip");
    let page = document.as_ref().expect("a body");
    assert_eq!(
        page["data"][0],
        json!({"id": 21, "description": DESCRIPTION})
    );
    assert_eq!(built[3].0, StatusCode::UNAUTHORIZED);
    assert_eq!(
        built[3].1[2],
        format!("access-control-allow-origin: {SHOP}")
    );
    assert_eq!(calls.load(Ordering::SeqCst), 4);
    assert_eq!(timed.load(Ordering::SeqCst), 8);
}
