//! `ETagLayer` on real axum routers.

use std::convert::Infallible;

use axum::Router;
use axum::body::Body;
use axum::routing::get;
use bytes::Bytes;
use futures_util::stream;
use http::header::{
    CACHE_CONTROL, CONTENT_LENGTH, CONTENT_LOCATION, CONTENT_TYPE, DATE, ETAG, EXPIRES,
    IF_NONE_MATCH, VARY,
};
use http::{HeaderValue, Request, Response, StatusCode};
use http_body_util::BodyExt;
use tower::ServiceExt;
use towerkit_validators::{ETagLayer, etag_of};

const DOC: &str = r#"{"id":1,"name":"lamp","price":12.5}"#;

fn app() -> Router {
    Router::new()
        .route(
            "/doc",
            get(|| async {
                (
                    [
                        (CONTENT_TYPE, "application/json"),
                        (CACHE_CONTROL, "max-age=60"),
                        (CONTENT_LOCATION, "/doc"),
                        (DATE, "Mon, 07 Dec 2026 12:00:00 GMT"),
                        (EXPIRES, "Mon, 07 Dec 2026 12:01:00 GMT"),
                        (VARY, "accept-language"),
                    ],
                    DOC,
                )
            }),
        )
        .route(
            "/tagged",
            get(|| async { ([(ETAG, "\"v7\"")], "already tagged") }),
        )
        .route(
            "/missing",
            get(|| async { (StatusCode::NOT_FOUND, "no such thing") }),
        )
        .route("/created", get(|| async { (StatusCode::CREATED, "made") }))
        .route("/big", get(|| async { "x".repeat(2_000) }))
        .route(
            "/stream",
            get(|| async {
                let chunks = stream::iter(
                    ["a", "b", "c"]
                        .map(|chunk| Ok::<_, Infallible>(Bytes::from_static(chunk.as_bytes()))),
                );
                Body::from_stream(chunks)
            }),
        )
        .route("/post", axum::routing::post(|| async { DOC }))
        .layer(ETagLayer::new().max_body(1_000))
}

async fn send(request: Request<Body>) -> (http::response::Parts, Bytes) {
    let (parts, body) = app().oneshot(request).await.unwrap().into_parts();
    (parts, body.collect().await.unwrap().to_bytes())
}

async fn get_with(path: &str, if_none_match: &[&str]) -> (http::response::Parts, Bytes) {
    let mut request = Request::get(path);
    for line in if_none_match {
        request = request.header(IF_NONE_MATCH, *line);
    }
    send(request.body(Body::empty()).unwrap()).await
}

fn doc_tag() -> String {
    etag_of(DOC.as_bytes()).to_str().unwrap().to_owned()
}

#[tokio::test]
async fn a_get_gets_the_strong_tag_of_its_body() {
    let (parts, body) = get_with("/doc", &[]).await;
    assert_eq!(parts.status, StatusCode::OK);
    assert_eq!(parts.headers[ETAG], doc_tag().as_str());
    assert!(!doc_tag().starts_with("W/"));
    assert_eq!(body, DOC);
}

#[tokio::test]
async fn a_matching_if_none_match_gets_304_with_the_required_fields_and_no_body() {
    let tag = doc_tag();
    let (parts, body) = get_with("/doc", &[&tag]).await;
    assert_eq!(parts.status, StatusCode::NOT_MODIFIED);
    assert!(body.is_empty());
    assert_eq!(parts.headers[ETAG], tag.as_str());
    for name in [CACHE_CONTROL, CONTENT_LOCATION, DATE, EXPIRES, VARY] {
        assert!(parts.headers.contains_key(&name), "{name} kept");
    }
    assert!(!parts.headers.contains_key(CONTENT_TYPE));
    assert!(
        parts
            .headers
            .get(CONTENT_LENGTH)
            .is_none_or(|length| length == "0")
    );
}

#[tokio::test]
async fn a_different_tag_gets_the_full_response() {
    let (parts, body) = get_with("/doc", &["\"0123\""]).await;
    assert_eq!(parts.status, StatusCode::OK);
    assert_eq!(parts.headers[ETAG], doc_tag().as_str());
    assert_eq!(body, DOC);
}

#[tokio::test]
async fn star_matches_any_current_representation() {
    let (parts, _) = get_with("/doc", &["*"]).await;
    assert_eq!(parts.status, StatusCode::NOT_MODIFIED);
}

#[tokio::test]
async fn a_weak_tag_matches_by_weak_comparison() {
    let weak = format!("W/{}", doc_tag());
    let (parts, _) = get_with("/doc", &[&weak]).await;
    assert_eq!(parts.status, StatusCode::NOT_MODIFIED);
}

#[tokio::test]
async fn a_list_matches_when_any_member_does() {
    let list = format!("\"a\", W/\"b\",{} , \"c\"", doc_tag());
    let (parts, _) = get_with("/doc", &[&list]).await;
    assert_eq!(parts.status, StatusCode::NOT_MODIFIED);
    let (parts, _) = get_with("/doc", &["\"a\", junk", &doc_tag()]).await;
    assert_eq!(
        parts.status,
        StatusCode::NOT_MODIFIED,
        "a second line counts too"
    );
    let (parts, _) = get_with("/doc", &["\"a\", junk, W/\"b\""]).await;
    assert_eq!(
        parts.status,
        StatusCode::OK,
        "malformed members match nothing"
    );
}

#[tokio::test]
async fn head_gets_the_tag_of_get_and_answers_if_none_match() {
    let head = Request::head("/doc").body(Body::empty()).unwrap();
    let (parts, body) = send(head).await;
    assert_eq!(parts.status, StatusCode::OK);
    assert_eq!(parts.headers[ETAG], doc_tag().as_str());
    assert!(body.is_empty());
    let head = Request::head("/doc")
        .header(IF_NONE_MATCH, doc_tag())
        .body(Body::empty())
        .unwrap();
    let (parts, _) = send(head).await;
    assert_eq!(parts.status, StatusCode::NOT_MODIFIED);
}

#[tokio::test]
async fn a_bodiless_head_is_not_tagged() {
    // A hyper-style service that answers HEAD without the body but with GET's length.
    let service = ETagLayer::new().layer_fn_free(|_: Request<Body>| async {
        let mut response = Response::new(Body::empty());
        response
            .headers_mut()
            .insert(CONTENT_LENGTH, HeaderValue::from_static("35"));
        Ok::<_, Infallible>(response)
    });
    let response = service
        .oneshot(Request::head("/doc").body(Body::empty()).unwrap())
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    assert!(!response.headers().contains_key(ETAG));
    assert_eq!(response.headers()[CONTENT_LENGTH], "35");
}

#[tokio::test]
async fn an_existing_etag_is_kept_and_answered_for() {
    let (parts, body) = get_with("/tagged", &[]).await;
    assert_eq!(parts.headers[ETAG], "\"v7\"");
    assert_eq!(body, "already tagged");
    let (parts, _) = get_with("/tagged", &["\"v7\""]).await;
    assert_eq!(parts.status, StatusCode::NOT_MODIFIED);
    assert_eq!(parts.headers[ETAG], "\"v7\"");
}

#[tokio::test]
async fn non_200_responses_are_untouched() {
    for (path, status, body) in [
        ("/missing", StatusCode::NOT_FOUND, "no such thing"),
        ("/created", StatusCode::CREATED, "made"),
    ] {
        let (parts, got) = get_with(path, &["*"]).await;
        assert_eq!(parts.status, status);
        assert!(!parts.headers.contains_key(ETAG), "{path}");
        assert_eq!(got, body);
    }
}

#[tokio::test]
async fn other_methods_are_untouched() {
    let post = Request::post("/post")
        .header(IF_NONE_MATCH, "*")
        .body(Body::empty())
        .unwrap();
    let (parts, body) = send(post).await;
    assert_eq!(parts.status, StatusCode::OK);
    assert!(!parts.headers.contains_key(ETAG));
    assert_eq!(body, DOC);
}

#[tokio::test]
async fn an_oversized_body_passes_through_untagged() {
    let (parts, body) = get_with("/big", &["*"]).await;
    assert_eq!(parts.status, StatusCode::OK);
    assert!(!parts.headers.contains_key(ETAG));
    assert_eq!(body.len(), 2_000);
}

#[tokio::test]
async fn a_streaming_body_of_unknown_size_passes_through_untagged() {
    let (parts, body) = get_with("/stream", &["*"]).await;
    assert_eq!(parts.status, StatusCode::OK);
    assert!(!parts.headers.contains_key(ETAG));
    assert_eq!(body, "abc");
}

#[tokio::test]
async fn a_body_that_grows_past_the_bound_is_replayed_untagged() {
    // Declares a length within the bound, then sends more: read up to the bound, replayed.
    let service = ETagLayer::new()
        .max_body(4)
        .layer_fn_free(|_: Request<Body>| async {
            let chunks = stream::iter(
                ["ab", "cd", "ef"]
                    .map(|chunk| Ok::<_, Infallible>(Bytes::from_static(chunk.as_bytes()))),
            );
            let mut response = Response::new(Body::from_stream(chunks));
            response
                .headers_mut()
                .insert(CONTENT_LENGTH, HeaderValue::from_static("4"));
            Ok::<_, Infallible>(response)
        });
    let response = service
        .oneshot(Request::get("/").body(Body::empty()).unwrap())
        .await
        .unwrap();
    assert!(!response.headers().contains_key(ETAG));
    let body = response.into_body().collect().await.unwrap().to_bytes();
    assert_eq!(body, "abcdef");
}

/// Builds the layer over a closure service.
trait LayerFnFree {
    fn layer_fn_free<F, Fut>(self, f: F) -> towerkit_validators::ETag<tower::util::ServiceFn<F>>
    where
        F: FnMut(Request<Body>) -> Fut,
        Fut: Future<Output = Result<Response<Body>, Infallible>>;
}

impl LayerFnFree for ETagLayer {
    fn layer_fn_free<F, Fut>(self, f: F) -> towerkit_validators::ETag<tower::util::ServiceFn<F>>
    where
        F: FnMut(Request<Body>) -> Fut,
        Fut: Future<Output = Result<Response<Body>, Infallible>>,
    {
        tower::Layer::layer(&self, tower::service_fn(f))
    }
}
