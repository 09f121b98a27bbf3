//! `ETagLayer` inside towerkit-compress's `CompressionLayer`, inside towerkit-cache's
//! `CacheLayer`, as in the example service: each coding's variant has its own strong tag,
//! a client revalidating a variant gets `304`, from the origin or from the cache.

use std::fmt::Write as _;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use axum::Router;
use axum::body::Body;
use axum::routing::get;
use http::header::{
    ACCEPT_ENCODING, CACHE_CONTROL, CONTENT_ENCODING, CONTENT_TYPE, ETAG, IF_NONE_MATCH,
};
use http::{Request, StatusCode};
use http_body_util::BodyExt;
use tower::ServiceExt;
use towerkit_cache::{CacheLayer, MemoryStore};
use towerkit_compress::CompressionLayer;
use towerkit_validators::{ETagLayer, etag_of};

/// About 8 KB of API-shaped JSON: large enough to be compressed.
fn document() -> String {
    let mut out = String::from("[");
    for id in 0..100 {
        if id > 0 {
            out.push(',');
        }
        let _ = write!(
            out,
            r#"{{"id":{id},"name":"Product {id}","tags":["new","sale"]}}"#
        );
    }
    out.push(']');
    out
}

/// `/products`, cacheable for a minute, with the layers in the example service's order;
/// counts the handler's calls. Without the cache when `cached` is false.
fn app(calls: Arc<AtomicUsize>, cached: bool) -> Router {
    app_with(calls, cached, "max-age=60")
}

fn app_with(calls: Arc<AtomicUsize>, cached: bool, cache_control: &'static str) -> Router {
    let router = Router::new()
        .route(
            "/products",
            get(move || {
                calls.fetch_add(1, Ordering::SeqCst);
                async {
                    (
                        [
                            (CONTENT_TYPE, "application/json"),
                            (CACHE_CONTROL, cache_control),
                        ],
                        document(),
                    )
                }
            }),
        )
        .layer(ETagLayer::new())
        .layer(CompressionLayer::new());
    if cached {
        router.layer(CacheLayer::new(MemoryStore::new(16 * 1024 * 1024)))
    } else {
        router
    }
}

async fn get_products(
    app: &Router,
    accept: &str,
    if_none_match: Option<&str>,
) -> (http::response::Parts, bytes::Bytes) {
    let mut request = Request::get("/products").header(ACCEPT_ENCODING, accept);
    if let Some(tag) = if_none_match {
        request = request.header(IF_NONE_MATCH, tag);
    }
    let response = app
        .clone()
        .oneshot(request.body(Body::empty()).unwrap())
        .await
        .unwrap();
    let (parts, body) = response.into_parts();
    (parts, body.collect().await.unwrap().to_bytes())
}

/// The identity tag of the document, without its quotes.
fn base() -> String {
    let tag = etag_of(document().as_bytes());
    tag.to_str().unwrap().trim_matches('"').to_owned()
}

#[tokio::test]
async fn each_coding_gets_its_own_strong_tag_derived_from_the_identity_tag() {
    let app = app(Arc::new(AtomicUsize::new(0)), false);
    let (parts, _) = get_products(&app, "identity", None).await;
    assert!(!parts.headers.contains_key(CONTENT_ENCODING));
    assert_eq!(parts.headers[ETAG], format!("\"{}\"", base()).as_str());
    for coding in ["br", "gzip", "zstd", "deflate"] {
        let (parts, _) = get_products(&app, coding, None).await;
        assert_eq!(parts.headers[CONTENT_ENCODING], coding);
        assert_eq!(
            parts.headers[ETAG],
            format!("\"{}-{coding}\"", base()).as_str()
        );
    }
}

#[tokio::test]
async fn a_variant_tag_is_revalidated_through_compression() {
    let calls = Arc::new(AtomicUsize::new(0));
    let app = app(calls.clone(), false);
    let br_tag = format!("\"{}-br\"", base());
    let (parts, body) = get_products(&app, "br", Some(&br_tag)).await;
    assert_eq!(parts.status, StatusCode::NOT_MODIFIED);
    assert_eq!(parts.headers[ETAG], br_tag.as_str());
    assert!(!parts.headers.contains_key(CONTENT_ENCODING));
    assert!(body.is_empty());
    // The gzip variant's tag does not revalidate the brotli variant.
    let gzip_tag = format!("\"{}-gzip\"", base());
    let (parts, _) = get_products(&app, "br", Some(&gzip_tag)).await;
    assert_eq!(parts.status, StatusCode::OK);
    assert_eq!(parts.headers[ETAG], br_tag.as_str());
    assert_eq!(calls.load(Ordering::SeqCst), 2);
}

#[tokio::test]
async fn the_cache_stores_the_variant_tag_and_answers_304_from_the_entry() {
    let calls = Arc::new(AtomicUsize::new(0));
    let app = app(calls.clone(), true);
    let br_tag = format!("\"{}-br\"", base());
    let (parts, _) = get_products(&app, "br", None).await;
    assert_eq!(parts.status, StatusCode::OK);
    assert_eq!(parts.headers[ETAG], br_tag.as_str());
    let (parts, body) = get_products(&app, "br", Some(&br_tag)).await;
    assert_eq!(parts.status, StatusCode::NOT_MODIFIED);
    assert_eq!(parts.headers[ETAG], br_tag.as_str());
    assert!(body.is_empty());
    let status = parts.headers["cache-status"].to_str().unwrap();
    assert!(status.contains("hit"), "{status}");
    assert_eq!(calls.load(Ordering::SeqCst), 1, "answered from the cache");
    // The gzip variant is its own entry with its own tag.
    let (parts, _) = get_products(&app, "gzip", None).await;
    assert_eq!(parts.headers[ETAG], format!("\"{}-gzip\"", base()).as_str());
    let (parts, _) = get_products(&app, "gzip", Some(&br_tag)).await;
    assert_eq!(
        parts.status,
        StatusCode::OK,
        "the br tag does not match the gzip entry"
    );
    assert_eq!(calls.load(Ordering::SeqCst), 2);
}

#[tokio::test]
async fn a_conditional_miss_reaches_the_origin_and_comes_back_304_with_the_variant_tag() {
    let calls = Arc::new(AtomicUsize::new(0));
    let app = app(calls.clone(), true);
    let br_tag = format!("\"{}-br\"", base());
    let (parts, _) = get_products(&app, "br", Some(&br_tag)).await;
    assert_eq!(parts.status, StatusCode::NOT_MODIFIED);
    assert_eq!(parts.headers[ETAG], br_tag.as_str());
    assert_eq!(calls.load(Ordering::SeqCst), 1);
}

#[tokio::test]
async fn a_stale_variant_is_revalidated_with_its_tag_and_kept_on_304() {
    // `max-age=0` with a tag: stored, and revalidated on every use.
    let calls = Arc::new(AtomicUsize::new(0));
    let app = app_with(calls.clone(), true, "max-age=0");
    let br_tag = format!("\"{}-br\"", base());
    let (first, first_body) = get_products(&app, "br", None).await;
    assert_eq!(first.headers[ETAG], br_tag.as_str());
    let (parts, body) = get_products(&app, "br", None).await;
    assert_eq!(parts.status, StatusCode::OK);
    let status = parts.headers["cache-status"].to_str().unwrap();
    assert!(
        status.contains("fwd-status=304"),
        "revalidated with a 304: {status}"
    );
    assert_eq!(parts.headers[ETAG], br_tag.as_str());
    assert_eq!(parts.headers[CONTENT_ENCODING], "br");
    assert_eq!(body, first_body, "the stored brotli bytes");
    assert_eq!(calls.load(Ordering::SeqCst), 2);
}
