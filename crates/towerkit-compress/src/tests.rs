//! Behaviour of the layer as a whole, through tower services and axum routers.

use std::collections::VecDeque;
use std::convert::Infallible;
use std::fmt::Write as _;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::task::{Context, Poll};

use axum::Router;
use axum::routing::get;
use bytes::Bytes;
use http::header::{
    ACCEPT_ENCODING, ACCEPT_RANGES, CACHE_CONTROL, CONTENT_ENCODING, CONTENT_LENGTH, CONTENT_RANGE,
    CONTENT_TYPE, ETAG, VARY,
};
use http::{HeaderMap, HeaderValue, Request, Response, StatusCode};
use http_body::{Body, Frame};
use http_body_util::{BodyExt, Full};
use metrics_util::debugging::{DebugValue, DebuggingRecorder};
use tower::{Service, ServiceBuilder, ServiceExt, service_fn};
use tower_http::compression::CompressionLayer as HttpCompressionLayer;
use tower_http::decompression::Decompression;

use crate::metrics::{INPUT_BYTES_TOTAL, OUTPUT_BYTES_TOTAL, RATIO};
use crate::{CompressionLayer, Encoding};

/// Every coding compiled into this build.
fn codings() -> Vec<Encoding> {
    Encoding::ALL
        .into_iter()
        .filter(|e| e.is_compiled())
        .collect()
}

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
            r#"{{"id":{id},"name":"Product {id}","price":{}.{:02},"tags":["new","sale"],"stock":{{"count":{}}}}}"#,
            id % 500,
            id % 100,
            id * 7 % 1000
        );
    }
    out.push(']');
    Bytes::from(out)
}

fn request(accept: Option<&str>) -> Request<()> {
    let mut request = Request::new(());
    if let Some(accept) = accept {
        request
            .headers_mut()
            .insert(ACCEPT_ENCODING, HeaderValue::from_str(accept).unwrap());
    }
    request
}

/// A service answering `body` with the given headers.
fn fixed(
    body: Bytes,
    headers: &[(&'static str, &'static str)],
) -> impl Service<Request<()>, Response = Response<Full<Bytes>>, Error = Infallible> + Clone + use<>
{
    fixed_status(StatusCode::OK, body, headers)
}

fn fixed_status(
    status: StatusCode,
    body: Bytes,
    headers: &[(&'static str, &'static str)],
) -> impl Service<Request<()>, Response = Response<Full<Bytes>>, Error = Infallible> + Clone + use<>
{
    let headers: Vec<_> = headers.to_vec();
    service_fn(move |_: Request<()>| {
        let mut response = Response::new(Full::new(body.clone()));
        *response.status_mut() = status;
        for (name, value) in &headers {
            response
                .headers_mut()
                .append(*name, HeaderValue::from_static(value));
        }
        std::future::ready(Ok::<_, Infallible>(response))
    })
}

/// Sends one request through `layer` over `inner`; returns the head and the raw body.
async fn send<S, B>(
    layer: CompressionLayer,
    inner: S,
    request: Request<()>,
) -> (http::response::Parts, Bytes)
where
    S: Service<Request<()>, Response = Response<B>, Error = Infallible>,
    B: Body,
    B::Error: Into<tower_http::BoxError>,
{
    let response = ServiceBuilder::new()
        .layer(layer)
        .service(inner)
        .oneshot(request)
        .await
        .unwrap();
    let (parts, body) = response.into_parts();
    (parts, body.collect().await.unwrap().to_bytes())
}

/// Decodes `body` according to the `Content-Encoding` in `headers`, with tower-http's
/// decompression (independent of the compressing path under test).
async fn decode(headers: &HeaderMap, body: Bytes) -> Bytes {
    let mut response = Response::new(Full::new(body));
    *response.headers_mut() = headers.clone();
    let mut slot = Some(response);
    let service = Decompression::new(service_fn(move |_: Request<()>| {
        std::future::ready(Ok::<_, Infallible>(slot.take().unwrap()))
    }));
    let response = service.oneshot(Request::new(())).await.unwrap();
    assert!(
        !response.headers().contains_key(CONTENT_ENCODING),
        "decoded"
    );
    response.into_body().collect().await.unwrap().to_bytes()
}

/// A streaming body that yields its chunks, then `None` once; polled again after that it
/// counts the poll (the misbehaviour tower-http issue #732 is about: a body over a non-fused
/// stream panics there).
struct Strict {
    chunks: VecDeque<Bytes>,
    trailers: Option<HeaderMap>,
    ended: bool,
    polls_after_end: Arc<AtomicUsize>,
}

impl Strict {
    fn new(body: &Bytes, chunk: usize) -> (Self, Arc<AtomicUsize>) {
        let chunks = body.chunks(chunk).map(Bytes::copy_from_slice).collect();
        let polls = Arc::new(AtomicUsize::new(0));
        (
            Self {
                chunks,
                trailers: None,
                ended: false,
                polls_after_end: polls.clone(),
            },
            polls,
        )
    }
}

impl Body for Strict {
    type Data = Bytes;
    type Error = Infallible;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        _: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Infallible>>> {
        if self.ended {
            self.polls_after_end.fetch_add(1, Ordering::SeqCst);
            return Poll::Ready(None);
        }
        if let Some(chunk) = self.chunks.pop_front() {
            return Poll::Ready(Some(Ok(Frame::data(chunk))));
        }
        if let Some(trailers) = self.trailers.take() {
            return Poll::Ready(Some(Ok(Frame::trailers(trailers))));
        }
        self.ended = true;
        Poll::Ready(None)
    }
}

/// A service answering one `Strict` body of `content` in 1000-byte chunks.
fn strict_service(
    content: Bytes,
) -> (
    impl Service<Request<()>, Response = Response<Strict>, Error = Infallible>,
    Arc<AtomicUsize>,
) {
    let (body, polls) = Strict::new(&content, 1000);
    let mut slot = Some(body);
    let service = service_fn(move |_: Request<()>| {
        let mut response = Response::new(slot.take().unwrap());
        response
            .headers_mut()
            .insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
        std::future::ready(Ok::<_, Infallible>(response))
    });
    (service, polls)
}

#[tokio::test]
async fn streaming_body_is_never_polled_after_its_end_with_every_codec() {
    let content = json(20_000);
    for encoding in codings() {
        let (service, polls) = strict_service(content.clone());
        let (parts, body) = send(
            CompressionLayer::new(),
            service,
            request(Some(encoding.as_str())),
        )
        .await;
        assert_eq!(parts.headers[CONTENT_ENCODING], encoding.as_str());
        assert_eq!(
            decode(&parts.headers, body).await,
            content,
            "{encoding} round trip"
        );
        assert_eq!(
            polls.load(Ordering::SeqCst),
            0,
            "{encoding}: body polled after its end"
        );
    }
}

/// The reason for the guard, and proof that the streaming test above can fail: tower-http
/// 0.7.1 on its own polls the same body after its end, with every codec. When an upgrade
/// makes this fail, tower-http fixed issue #732; the guard can stay (it costs a bool).
#[tokio::test]
async fn tower_http_alone_polls_a_body_after_its_end() {
    let content = json(20_000);
    for encoding in codings() {
        let (service, polls) = strict_service(content.clone());
        let response = ServiceBuilder::new()
            .layer(HttpCompressionLayer::new())
            .service(service)
            .oneshot(request(Some(encoding.as_str())))
            .await
            .unwrap();
        assert_eq!(response.headers()[CONTENT_ENCODING], encoding.as_str());
        response.into_body().collect().await.unwrap();
        assert!(
            polls.load(Ordering::SeqCst) > 0,
            "{encoding}: tower-http no longer polls after the end"
        );
    }
}

#[tokio::test]
async fn axum_stream_over_a_non_fused_stream_compresses_with_every_codec() {
    // `futures_util::stream::unfold` panics when polled after it returned `None`; axum's
    // `Body::from_stream` passes every poll on to it.
    let chunks: Vec<Bytes> = json(30_000)
        .chunks(4096)
        .map(Bytes::copy_from_slice)
        .collect();
    let content: Bytes = chunks.concat().into();
    let app = Router::new()
        .route(
            "/stream",
            get(move || {
                let chunks = chunks.clone();
                async move {
                    let stream =
                        futures_util::stream::unfold(chunks.into_iter(), |mut rest| async move {
                            rest.next().map(|chunk| (Ok::<_, Infallible>(chunk), rest))
                        });
                    axum::body::Body::from_stream(stream)
                }
            }),
        )
        .layer(CompressionLayer::new());
    for encoding in codings() {
        let request = Request::get("/stream")
            .header(ACCEPT_ENCODING, encoding.as_str())
            .body(axum::body::Body::empty())
            .unwrap();
        let response = app.clone().oneshot(request).await.unwrap();
        let (parts, body) = response.into_parts();
        assert_eq!(parts.headers[CONTENT_ENCODING], encoding.as_str());
        let body = body.collect().await.unwrap().to_bytes();
        assert_eq!(decode(&parts.headers, body).await, content, "{encoding}");
    }
}

#[tokio::test]
async fn trailers_follow_the_compressed_stream() {
    let content = json(5_000);
    for encoding in codings() {
        let (mut body, polls) = Strict::new(&content, 1000);
        let mut trailers = HeaderMap::new();
        trailers.insert("x-checksum", HeaderValue::from_static("abc"));
        body.trailers = Some(trailers);
        let mut slot = Some(body);
        let service = service_fn(move |_: Request<()>| {
            std::future::ready(Ok::<_, Infallible>(Response::new(slot.take().unwrap())))
        });
        let response = ServiceBuilder::new()
            .layer(CompressionLayer::new())
            .service(service)
            .oneshot(request(Some(encoding.as_str())))
            .await
            .unwrap();
        let collected = response.into_body().collect().await.unwrap();
        assert_eq!(
            collected.trailers().unwrap()["x-checksum"],
            "abc",
            "{encoding}"
        );
        assert_eq!(polls.load(Ordering::SeqCst), 0, "{encoding}");
    }
}

#[tokio::test]
async fn body_error_mid_stream_is_an_error_not_a_panic() {
    struct Failing(u8);
    impl Body for Failing {
        type Data = Bytes;
        type Error = std::io::Error;
        fn poll_frame(
            mut self: Pin<&mut Self>,
            _: &mut Context<'_>,
        ) -> Poll<Option<Result<Frame<Bytes>, std::io::Error>>> {
            self.0 += 1;
            match self.0 {
                1 => Poll::Ready(Some(Ok(Frame::data(json(4_000))))),
                2 => Poll::Ready(Some(Err(std::io::Error::other("upstream reset")))),
                _ => panic!("polled after an error"),
            }
        }
    }
    for encoding in codings() {
        let mut slot = Some(Failing(0));
        let service = service_fn(move |_: Request<()>| {
            std::future::ready(Ok::<_, Infallible>(Response::new(slot.take().unwrap())))
        });
        let response = ServiceBuilder::new()
            .layer(CompressionLayer::new())
            .service(service)
            .oneshot(request(Some(encoding.as_str())))
            .await
            .unwrap();
        let error = response.into_body().collect().await.unwrap_err();
        assert!(
            error.to_string().contains("upstream reset"),
            "{encoding}: {error}"
        );
    }
}

#[tokio::test]
async fn every_codec_round_trips_and_shrinks_json() {
    let content = json(100_000);
    let inner = fixed(
        content.clone(),
        &[
            ("content-type", "application/json"),
            ("content-length", "100000"),
        ],
    );
    for encoding in codings() {
        let (parts, body) = send(
            CompressionLayer::new(),
            inner.clone(),
            request(Some(encoding.as_str())),
        )
        .await;
        assert_eq!(parts.status, StatusCode::OK);
        assert_eq!(parts.headers[CONTENT_ENCODING], encoding.as_str());
        assert!(
            !parts.headers.contains_key(CONTENT_LENGTH),
            "{encoding}: stale Content-Length"
        );
        assert_eq!(parts.headers[VARY], "accept-encoding");
        assert!(
            body.len() * 4 < content.len(),
            "{encoding}: {} bytes",
            body.len()
        );
        assert_eq!(decode(&parts.headers, body).await, content, "{encoding}");
    }
}

#[tokio::test]
async fn configured_level_reaches_the_codec() {
    let content = json(100_000);
    let inner = fixed(content.clone(), &[("content-type", "application/json")]);
    let fast = CompressionLayer::builder()
        .level(Encoding::Br, 0)
        .build()
        .unwrap();
    let dense = CompressionLayer::builder()
        .level(Encoding::Br, 9)
        .build()
        .unwrap();
    let (_, fast) = send(fast, inner.clone(), request(Some("br"))).await;
    let (_, dense) = send(dense, inner, request(Some("br"))).await;
    assert!(
        dense.len() < fast.len(),
        "br 9: {} bytes, br 0: {} bytes",
        dense.len(),
        fast.len()
    );
}

#[tokio::test]
async fn no_accept_encoding_passes_the_response_untouched() {
    let content = json(10_000);
    let inner = fixed(
        content.clone(),
        &[
            ("content-type", "application/json"),
            ("content-length", "10000"),
        ],
    );
    let (parts, body) = send(CompressionLayer::new(), inner, request(None)).await;
    assert!(!parts.headers.contains_key(CONTENT_ENCODING));
    assert_eq!(parts.headers[CONTENT_LENGTH], "10000");
    assert_eq!(parts.headers[VARY], "accept-encoding");
    assert_eq!(body, content);
}

#[tokio::test]
async fn unsatisfiable_accept_encoding_gets_an_uncompressed_200() {
    let content = json(10_000);
    let inner = fixed(content.clone(), &[("content-type", "application/json")]);
    let (parts, body) = send(
        CompressionLayer::new(),
        inner,
        request(Some("compress, identity;q=0")),
    )
    .await;
    assert_eq!(parts.status, StatusCode::OK);
    assert!(!parts.headers.contains_key(CONTENT_ENCODING));
    assert_eq!(body, content);
}

/// Why the minimum size: tower-http's default (32 bytes) compresses a small body into more
/// bytes than it had.
#[tokio::test]
async fn tower_http_default_makes_a_small_body_bigger() {
    let content = Bytes::from_static(br#"{"id":1,"name":"Widget","price":9.99}"#);
    for encoding in codings() {
        let inner = fixed(content.clone(), &[("content-type", "application/json")]);
        let response = ServiceBuilder::new()
            .layer(HttpCompressionLayer::new())
            .service(inner)
            .oneshot(request(Some(encoding.as_str())))
            .await
            .unwrap();
        assert_eq!(response.headers()[CONTENT_ENCODING], encoding.as_str());
        let body = response.into_body().collect().await.unwrap().to_bytes();
        assert!(
            body.len() > content.len(),
            "{encoding}: {} -> {} bytes",
            content.len(),
            body.len()
        );
    }
}

#[tokio::test]
async fn body_under_one_kib_is_not_compressed_but_varies() {
    let content = json(900);
    let inner = fixed(content.clone(), &[("content-type", "application/json")]);
    let (parts, body) = send(
        CompressionLayer::new(),
        inner,
        request(Some("gzip, br, zstd")),
    )
    .await;
    assert!(!parts.headers.contains_key(CONTENT_ENCODING));
    assert_eq!(parts.headers[VARY], "accept-encoding");
    assert_eq!(body, content);
}

#[tokio::test]
async fn compressed_media_types_are_not_compressed() {
    let content = Bytes::from(vec![7u8; 5000]);
    for content_type in [
        "image/png",
        "video/mp4",
        "application/zip",
        "font/woff2",
        "application/pdf",
        "text/event-stream",
    ] {
        let inner = fixed(content.clone(), &[("content-type", content_type)]);
        let (parts, body) = send(CompressionLayer::new(), inner, request(Some("br"))).await;
        assert!(
            !parts.headers.contains_key(CONTENT_ENCODING),
            "{content_type}"
        );
        assert_eq!(body, content, "{content_type}");
    }
    let inner = fixed(content.clone(), &[("content-type", "image/svg+xml")]);
    let (parts, _) = send(CompressionLayer::new(), inner, request(Some("br"))).await;
    assert_eq!(parts.headers[CONTENT_ENCODING], "br", "svg is text");
}

#[tokio::test]
async fn no_transform_is_respected() {
    let content = json(10_000);
    let inner = fixed(
        content.clone(),
        &[
            ("content-type", "application/json"),
            ("cache-control", "public, no-transform"),
        ],
    );
    let (parts, body) = send(CompressionLayer::new(), inner, request(Some("gzip"))).await;
    assert!(!parts.headers.contains_key(CONTENT_ENCODING));
    assert_eq!(parts.headers[CACHE_CONTROL], "public, no-transform");
    assert_eq!(body, content);
}

#[tokio::test]
async fn already_encoded_response_is_not_compressed_again() {
    let content = Bytes::from(vec![b'x'; 5000]);
    let inner = fixed(
        content.clone(),
        &[("content-type", "text/plain"), ("content-encoding", "gzip")],
    );
    let (parts, body) = send(CompressionLayer::new(), inner, request(Some("br"))).await;
    assert_eq!(parts.headers[CONTENT_ENCODING], "gzip");
    assert_eq!(body, content);
}

#[tokio::test]
async fn range_responses_are_not_compressed() {
    let content = Bytes::from(vec![b'x'; 5000]);
    let inner = fixed_status(
        StatusCode::PARTIAL_CONTENT,
        content.clone(),
        &[
            ("content-type", "text/plain"),
            ("content-range", "bytes 0-4999/10000"),
        ],
    );
    let (parts, body) = send(CompressionLayer::new(), inner, request(Some("br"))).await;
    assert!(!parts.headers.contains_key(CONTENT_ENCODING));
    assert_eq!(parts.headers[CONTENT_RANGE], "bytes 0-4999/10000");
    assert_eq!(body, content);
}

#[tokio::test]
async fn not_modified_keeps_its_headers_and_gets_vary() {
    // A 304 may carry the representation's Content-Length; it has no content to compress.
    let inner = fixed_status(
        StatusCode::NOT_MODIFIED,
        Bytes::new(),
        &[("etag", "\"v1\""), ("content-length", "5000")],
    );
    let (parts, body) = send(CompressionLayer::new(), inner, request(Some("br"))).await;
    assert!(!parts.headers.contains_key(CONTENT_ENCODING));
    assert_eq!(parts.headers[ETAG], "\"v1\"");
    assert_eq!(parts.headers[VARY], "accept-encoding");
    assert!(body.is_empty());
}

#[tokio::test]
async fn compressed_response_gets_a_coding_suffixed_etag_and_no_accept_ranges() {
    let inner = fixed(
        json(10_000),
        &[
            ("content-type", "application/json"),
            ("etag", "\"v1\""),
            ("accept-ranges", "bytes"),
        ],
    );
    let mut tags = Vec::new();
    for encoding in codings() {
        let (parts, _) = send(
            CompressionLayer::new(),
            inner.clone(),
            request(Some(encoding.as_str())),
        )
        .await;
        assert_eq!(parts.headers[CONTENT_ENCODING], encoding.as_str());
        assert_eq!(parts.headers[ETAG], format!("\"v1-{encoding}\"").as_str());
        assert!(!parts.headers.contains_key(ACCEPT_RANGES));
        tags.push(parts.headers[ETAG].clone());
    }
    let (parts, _) = send(CompressionLayer::new(), inner, request(None)).await;
    assert_eq!(
        parts.headers[ETAG], "\"v1\"",
        "an uncompressed response keeps its tag"
    );
    tags.push(parts.headers[ETAG].clone());
    let distinct: std::collections::HashSet<_> = tags.iter().collect();
    assert_eq!(
        distinct.len(),
        tags.len(),
        "no two codings share a tag: {tags:?}"
    );
}

#[tokio::test]
async fn a_weak_etag_stays_weak_with_the_suffix() {
    let inner = fixed(
        json(10_000),
        &[("content-type", "application/json"), ("etag", "W/\"v1\"")],
    );
    let (parts, _) = send(CompressionLayer::new(), inner, request(Some("gzip"))).await;
    assert_eq!(parts.headers[ETAG], "W/\"v1-gzip\"");
}

/// A route tagged `"v1"` that answers `If-None-Match: "v1"` with a 304 itself (as
/// towerkit-validators' `ETagLayer` does) and records the `If-None-Match` it saw.
fn revalidating_app(seen: Arc<std::sync::Mutex<Vec<String>>>) -> Router {
    Router::new()
        .route(
            "/doc",
            get(move |headers: HeaderMap| {
                let seen = seen.clone();
                async move {
                    let condition = headers
                        .get(http::header::IF_NONE_MATCH)
                        .map(|v| v.to_str().unwrap().to_owned())
                        .unwrap_or_default();
                    seen.lock().unwrap().push(condition.clone());
                    let status = if condition.split(',').any(|tag| tag.trim() == "\"v1\"") {
                        StatusCode::NOT_MODIFIED
                    } else {
                        StatusCode::OK
                    };
                    (
                        status,
                        [(ETAG, "\"v1\""), (CONTENT_TYPE, "application/json")],
                        json(4_000),
                    )
                }
            }),
        )
        .layer(CompressionLayer::new())
}

async fn conditional_get(
    app: &Router,
    accept: &str,
    if_none_match: &str,
) -> Response<axum::body::Body> {
    let request = Request::get("/doc")
        .header(ACCEPT_ENCODING, accept)
        .header(http::header::IF_NONE_MATCH, if_none_match)
        .body(axum::body::Body::empty())
        .unwrap();
    app.clone().oneshot(request).await.unwrap()
}

#[tokio::test]
async fn a_variant_tag_is_revalidated_as_the_identity_tag_and_the_304_names_the_variant() {
    let seen = Arc::new(std::sync::Mutex::new(Vec::new()));
    let app = revalidating_app(seen.clone());
    let response = conditional_get(&app, "br", "\"x\", \"v1-br\"").await;
    assert_eq!(response.status(), StatusCode::NOT_MODIFIED);
    assert_eq!(response.headers()[ETAG], "\"v1-br\"");
    assert_eq!(response.headers()[VARY], "accept-encoding");
    assert_eq!(seen.lock().unwrap().last().unwrap(), "\"x\", \"v1\"");
}

#[tokio::test]
async fn a_304_for_the_identity_tag_keeps_the_identity_tag() {
    let seen = Arc::new(std::sync::Mutex::new(Vec::new()));
    let app = revalidating_app(seen.clone());
    let response = conditional_get(&app, "br", "\"v1\"").await;
    assert_eq!(response.status(), StatusCode::NOT_MODIFIED);
    assert_eq!(response.headers()[ETAG], "\"v1\"");
    assert_eq!(seen.lock().unwrap().last().unwrap(), "\"v1\"");
}

#[tokio::test]
async fn another_codings_variant_tag_does_not_revalidate() {
    let seen = Arc::new(std::sync::Mutex::new(Vec::new()));
    let app = revalidating_app(seen.clone());
    // The client holds the gzip variant but now negotiates brotli: it gets the br variant.
    let response = conditional_get(&app, "br", "\"v1-gzip\"").await;
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(response.headers()[CONTENT_ENCODING], "br");
    assert_eq!(response.headers()[ETAG], "\"v1-br\"");
    assert_eq!(seen.lock().unwrap().last().unwrap(), "\"v1-gzip\"");
    // Without a negotiated coding nothing is rewritten.
    let response = conditional_get(&app, "identity", "\"v1-br\"").await;
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(response.headers()[ETAG], "\"v1\"");
    assert_eq!(seen.lock().unwrap().last().unwrap(), "\"v1-br\"");
}

#[tokio::test]
async fn existing_vary_is_extended_not_duplicated() {
    let inner = fixed(
        json(10_000),
        &[("content-type", "application/json"), ("vary", "Origin")],
    );
    let (parts, _) = send(CompressionLayer::new(), inner, request(Some("gzip"))).await;
    let vary: Vec<_> = parts.headers.get_all(VARY).iter().collect();
    assert_eq!(vary, ["Origin", "accept-encoding"]);
    let inner = fixed(
        json(10_000),
        &[
            ("content-type", "application/json"),
            ("vary", "Accept-Encoding"),
        ],
    );
    let (parts, _) = send(CompressionLayer::new(), inner, request(Some("gzip"))).await;
    assert_eq!(parts.headers.get_all(VARY).iter().count(), 1);
}

#[tokio::test]
async fn head_gets_the_headers_of_get() {
    let app = Router::new()
        .route("/doc", get(|| async { ([(ETAG, "\"v1\"")], json(4_000)) }))
        .layer(CompressionLayer::new());
    let get = Request::get("/doc")
        .header(ACCEPT_ENCODING, "br")
        .body(axum::body::Body::empty())
        .unwrap();
    let head = Request::head("/doc")
        .header(ACCEPT_ENCODING, "br")
        .body(axum::body::Body::empty())
        .unwrap();
    let get = app.clone().oneshot(get).await.unwrap();
    let head = app.oneshot(head).await.unwrap();
    for name in [CONTENT_ENCODING, ETAG, VARY] {
        assert_eq!(
            get.headers().get(&name),
            head.headers().get(&name),
            "{name}"
        );
    }
    assert_eq!(head.headers()[CONTENT_ENCODING], "br");
    assert!(!head.headers().contains_key(CONTENT_LENGTH));
    assert!(
        head.into_body()
            .collect()
            .await
            .unwrap()
            .to_bytes()
            .is_empty()
    );
}

#[tokio::test]
async fn disabled_coding_falls_back_to_the_next_accepted() {
    let inner = fixed(json(10_000), &[("content-type", "application/json")]);
    let layer = CompressionLayer::builder()
        .disable(Encoding::Zstd)
        .disable(Encoding::Br)
        .build()
        .unwrap();
    let (parts, _) = send(layer, inner, request(Some("zstd, br, gzip"))).await;
    assert_eq!(parts.headers[CONTENT_ENCODING], "gzip");
}

#[tokio::test]
async fn custom_predicate_replaces_the_default() {
    let content = json(10_000);
    let inner = fixed(content.clone(), &[("content-type", "application/json")]);
    let only_html = |_: StatusCode, _: http::Version, headers: &HeaderMap, _: &http::Extensions| {
        headers
            .get(CONTENT_TYPE)
            .is_some_and(|t| t.as_bytes().starts_with(b"text/html"))
    };
    let response = ServiceBuilder::new()
        .layer(
            CompressionLayer::builder()
                .compress_when(only_html)
                .build()
                .unwrap(),
        )
        .service(inner)
        .oneshot(request(Some("gzip")))
        .await
        .unwrap();
    assert!(!response.headers().contains_key(CONTENT_ENCODING));
    assert_eq!(
        response.into_body().collect().await.unwrap().to_bytes(),
        content
    );
}

#[tokio::test]
async fn route_layer_wins_over_the_outer_layer() {
    let content = json(20_000);
    let body = content.clone();
    let export = CompressionLayer::builder()
        .disable(Encoding::Br)
        .build()
        .unwrap();
    let app = Router::new()
        .route(
            "/export",
            get(move || std::future::ready(body.clone())).layer(export),
        )
        .layer(CompressionLayer::new());
    let request = Request::get("/export")
        .header(ACCEPT_ENCODING, "br, gzip")
        .body(axum::body::Body::empty())
        .unwrap();
    let response = app.oneshot(request).await.unwrap();
    let (parts, body) = response.into_parts();
    assert_eq!(parts.headers[CONTENT_ENCODING], "gzip");
    assert_eq!(parts.headers.get_all(VARY).iter().count(), 1);
    let body = body.collect().await.unwrap().to_bytes();
    assert_eq!(
        decode(&parts.headers, body).await,
        content,
        "compressed once"
    );
}

#[tokio::test]
async fn each_request_gets_its_own_coding_from_one_service() {
    let content = json(10_000);
    let mut service = ServiceBuilder::new()
        .layer(CompressionLayer::new())
        .service(fixed(
            content.clone(),
            &[("content-type", "application/json")],
        ));
    // Two requests in flight on the same service, answered in the opposite order.
    let first = service.ready().await.unwrap().call(request(Some("br")));
    let second = service.ready().await.unwrap().call(request(None));
    let second = second.await.unwrap();
    let first = first.await.unwrap();
    assert_eq!(first.headers()[CONTENT_ENCODING], "br");
    assert!(!second.headers().contains_key(CONTENT_ENCODING));
    assert_eq!(
        second.into_body().collect().await.unwrap().to_bytes(),
        content
    );
}

#[test]
fn metrics_count_bytes_per_encoding_and_record_the_ratio() {
    let recorder = DebuggingRecorder::new();
    let snapshotter = recorder.snapshotter();
    let content = json(50_000);
    let compressed_len = metrics::with_local_recorder(&recorder, || {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap();
        runtime.block_on(async {
            let inner = fixed(content.clone(), &[("content-type", "application/json")]);
            let (_, small) = send(
                CompressionLayer::new(),
                inner.clone(),
                request(Some("gzip")),
            )
            .await;
            // Not compressed: counted nowhere.
            send(CompressionLayer::new(), inner, request(None)).await;
            small.len() as u64
        })
    });
    let mut input = None;
    let mut output = None;
    let mut ratios = None;
    for (key, _, _, value) in snapshotter.snapshot().into_vec() {
        let labels: Vec<_> = key
            .key()
            .labels()
            .map(|l| (l.key().to_owned(), l.value().to_owned()))
            .collect();
        assert_eq!(
            labels,
            [("encoding".to_owned(), "gzip".to_owned())],
            "{key:?}"
        );
        match (key.key().name(), value) {
            (INPUT_BYTES_TOTAL, DebugValue::Counter(n)) => input = Some(n),
            (OUTPUT_BYTES_TOTAL, DebugValue::Counter(n)) => output = Some(n),
            (RATIO, DebugValue::Histogram(values)) => ratios = Some(values),
            other => panic!("unexpected metric {other:?}"),
        }
    }
    assert_eq!(input, Some(content.len() as u64));
    assert_eq!(output, Some(compressed_len));
    let ratios = ratios.unwrap();
    assert_eq!(ratios.len(), 1);
    let expected = content.len() as f64 / compressed_len as f64;
    assert!(
        (ratios[0].into_inner() - expected).abs() < 1e-9,
        "{} != {expected}",
        ratios[0]
    );
}
