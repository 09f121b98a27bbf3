//! Compression inside towerkit-cache's `CacheLayer`: a cached route is compressed once per
//! coding, and a hit answers with the stored compressed bytes.

use std::convert::Infallible;
use std::fmt::Write as _;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use axum::Router;
use axum::body::Body;
use axum::routing::get;
use bytes::Bytes;
use http::header::{ACCEPT_ENCODING, CACHE_CONTROL, CONTENT_ENCODING, CONTENT_TYPE};
use http::{HeaderMap, Request, Response};
use http_body_util::{BodyExt, Full};
use metrics_util::debugging::{DebugValue, DebuggingRecorder};
use tower::{ServiceExt, service_fn};
use tower_http::decompression::Decompression;
use towerkit_cache::{CacheLayer, MemoryStore};
use towerkit_compress::CompressionLayer;
use towerkit_compress::metrics::INPUT_BYTES_TOTAL;

/// A JSON array of API objects of about `target` bytes.
fn json(target: usize) -> Bytes {
    let mut out = String::from("[");
    let mut id = 0;
    while out.len() < target {
        if id > 0 {
            out.push(',');
        }
        id += 1;
        let _ = write!(
            out,
            r#"{{"id":{id},"name":"Product {id}","price":{}.{:02},"tags":["new","sale"]}}"#,
            id % 500,
            id % 100
        );
    }
    out.push(']');
    Bytes::from(out)
}

/// A cached route (`max-age=60`) returning `content`, behind compression behind the cache,
/// as in the example service; counts the handler's calls.
fn app(content: Bytes, calls: Arc<AtomicUsize>) -> Router {
    Router::new()
        .route(
            "/products",
            get(move || {
                calls.fetch_add(1, Ordering::SeqCst);
                let content = content.clone();
                async move {
                    (
                        [
                            (CONTENT_TYPE, "application/json"),
                            (CACHE_CONTROL, "max-age=60"),
                        ],
                        content,
                    )
                }
            }),
        )
        .layer(CompressionLayer::new())
        .layer(CacheLayer::new(MemoryStore::new(64 * 1024 * 1024)))
}

/// GET /products with `accept` as Accept-Encoding; the head and the whole body.
async fn get_products(app: &Router, accept: &str) -> (http::response::Parts, Bytes) {
    let request = Request::get("/products")
        .header(ACCEPT_ENCODING, accept)
        .body(Body::empty())
        .unwrap();
    let (parts, body) = app.clone().oneshot(request).await.unwrap().into_parts();
    (parts, body.collect().await.unwrap().to_bytes())
}

fn cache_status(parts: &http::response::Parts) -> &str {
    parts.headers["cache-status"].to_str().unwrap()
}

async fn decode(headers: &HeaderMap, body: Bytes) -> Bytes {
    let mut response = Response::new(Full::new(body));
    *response.headers_mut() = headers.clone();
    let mut slot = Some(response);
    let service = Decompression::new(service_fn(move |_: Request<()>| {
        std::future::ready(Ok::<_, Infallible>(slot.take().unwrap()))
    }));
    let response = service.oneshot(Request::new(())).await.unwrap();
    response.into_body().collect().await.unwrap().to_bytes()
}

/// The uncompressed bytes compression has consumed, per the layer's metric.
fn compressed_input(recorder: &DebuggingRecorder) -> u64 {
    recorder
        .snapshotter()
        .snapshot()
        .into_vec()
        .into_iter()
        .filter(|(key, ..)| key.key().name() == INPUT_BYTES_TOTAL)
        .map(|(.., value)| match value {
            DebugValue::Counter(n) => n,
            other => panic!("{other:?}"),
        })
        .sum()
}

#[test]
fn second_br_request_is_a_hit_with_the_stored_brotli_bytes() {
    let recorder = DebuggingRecorder::new();
    let content = json(100_000);
    let calls = Arc::new(AtomicUsize::new(0));
    let app = app(content.clone(), calls.clone());
    metrics::with_local_recorder(&recorder, || {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        runtime.block_on(async {
            let (first, first_body) = get_products(&app, "br").await;
            assert!(
                cache_status(&first).contains("fwd=miss"),
                "{}",
                cache_status(&first)
            );
            assert_eq!(first.headers[CONTENT_ENCODING], "br");

            let (second, second_body) = get_products(&app, "br").await;
            assert!(
                cache_status(&second).contains("hit"),
                "{}",
                cache_status(&second)
            );
            assert_eq!(second.headers[CONTENT_ENCODING], "br");
            assert_eq!(
                second_body, first_body,
                "the hit serves the stored brotli bytes"
            );
            assert_eq!(decode(&second.headers, second_body).await, content);
        });
    });
    assert_eq!(calls.load(Ordering::SeqCst), 1, "the handler ran once");
    assert_eq!(
        compressed_input(&recorder),
        content.len() as u64,
        "compressed once, not once per hit"
    );
}

#[tokio::test]
async fn each_coding_is_its_own_variant() {
    let content = json(100_000);
    let calls = Arc::new(AtomicUsize::new(0));
    let app = app(content.clone(), calls.clone());

    let (br, br_body) = get_products(&app, "br").await;
    assert_eq!(br.headers[CONTENT_ENCODING], "br");

    // A gzip-only client is never handed the brotli variant: it gets its own.
    let (gzip, gzip_body) = get_products(&app, "gzip").await;
    assert!(
        cache_status(&gzip).contains("fwd=vary-miss"),
        "{}",
        cache_status(&gzip)
    );
    assert_eq!(gzip.headers[CONTENT_ENCODING], "gzip");
    assert!(
        decode(&gzip.headers, gzip_body.clone()).await == content,
        "gzip variant decodes to the document"
    );

    // Each variant is then a hit with its own stored bytes.
    let (again, again_body) = get_products(&app, "gzip").await;
    assert!(
        cache_status(&again).contains("hit"),
        "{}",
        cache_status(&again)
    );
    assert_eq!(again.headers[CONTENT_ENCODING], "gzip");
    assert!(
        again_body == gzip_body,
        "gzip hit: {} bytes, stored {}",
        again_body.len(),
        gzip_body.len()
    );
    let (again, again_body) = get_products(&app, "br").await;
    assert!(
        cache_status(&again).contains("hit"),
        "{}",
        cache_status(&again)
    );
    assert_eq!(again.headers[CONTENT_ENCODING], "br");
    assert!(
        again_body == br_body,
        "br hit: {} bytes, stored {}",
        again_body.len(),
        br_body.len()
    );

    // A client that takes no coding gets neither compressed variant.
    let (identity, identity_body) = get_products(&app, "identity").await;
    assert!(
        cache_status(&identity).contains("fwd=vary-miss"),
        "{}",
        cache_status(&identity)
    );
    assert!(!identity.headers.contains_key(CONTENT_ENCODING));
    assert!(identity_body == content, "identity variant is the document");

    // And the uncompressed variant, now the most recent, never answers a compressing client:
    // it gets one of the stored variants it ranks first.
    let (again, again_body) = get_products(&app, "gzip, br").await;
    assert!(
        cache_status(&again).contains("hit"),
        "{}",
        cache_status(&again)
    );
    let stored = match again.headers[CONTENT_ENCODING].to_str().unwrap() {
        "br" => &br_body,
        "gzip" => &gzip_body,
        other => panic!("served {other}"),
    };
    assert!(
        again_body == *stored,
        "hit after identity: {} bytes",
        again_body.len()
    );
    assert_eq!(
        calls.load(Ordering::SeqCst),
        3,
        "one origin call per coding"
    );
}
