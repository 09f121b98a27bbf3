//! StripNullsLayer in front of real services: what it rewrites and what it leaves alone.

use std::convert::Infallible;

use axum::body::Body;
use bytes::Bytes;
use http::{HeaderMap, Method, Request, Response, StatusCode, header};
use http_body_util::{BodyExt, StreamBody};
use tower::{Service, ServiceBuilder, ServiceExt, service_fn};
use towerkit_nulls::{ConfigError, StripNullsLayer};

const DOC: &str = r#"{"id":1,"note":null,"nested":{"a":null,"b":"ünï"}}"#;
const STRIPPED: &str = r#"{"id":1,"nested":{"b":"ünï"}}"#;

/// A service answering every request with `status`, `headers` and `body` sent in chunks of
/// `chunk` bytes (no Content-Length, like a streaming handler).
fn upstream(
    status: StatusCode,
    headers: &[(&'static str, &'static str)],
    body: &'static str,
    chunk: usize,
) -> impl Service<Request<Body>, Response = Response<Body>, Error = Infallible> + Clone {
    let headers: Vec<_> = headers.to_vec();
    service_fn(move |_request: Request<Body>| {
        let headers = headers.clone();
        async move {
            let frames: Vec<Result<http_body::Frame<Bytes>, Infallible>> = body
                .as_bytes()
                .chunks(chunk.max(1))
                .map(|c| Ok(http_body::Frame::data(Bytes::copy_from_slice(c))))
                .collect();
            let mut response = Response::new(Body::new(StreamBody::new(futures_iter(frames))));
            *response.status_mut() = status;
            for (name, value) in headers {
                response.headers_mut().insert(name, value.parse().unwrap());
            }
            Ok(response)
        }
    })
}

fn futures_iter<T>(items: Vec<T>) -> impl futures_core::Stream<Item = T> {
    struct Iter<T>(std::vec::IntoIter<T>);
    impl<T> futures_core::Stream for Iter<T> {
        type Item = T;
        fn poll_next(
            mut self: std::pin::Pin<&mut Self>,
            _: &mut std::task::Context<'_>,
        ) -> std::task::Poll<Option<T>> {
            std::task::Poll::Ready(self.0.next())
        }
    }
    impl<T> Unpin for Iter<T> {}
    Iter(items.into_iter())
}

async fn send(
    layer: StripNullsLayer,
    service: impl Service<Request<Body>, Response = Response<Body>, Error = Infallible>,
    method: Method,
) -> (StatusCode, HeaderMap, String) {
    let service = ServiceBuilder::new().layer(layer).service(service);
    let request = Request::builder()
        .method(method)
        .uri("/")
        .body(Body::empty())
        .unwrap();
    let response = service.oneshot(request).await.unwrap();
    let (head, body) = response.into_parts();
    let body = body.collect().await.unwrap().to_bytes();
    (
        head.status,
        head.headers,
        String::from_utf8(body.to_vec()).unwrap(),
    )
}

const JSON: (&str, &str) = ("content-type", "application/json");

#[tokio::test]
async fn strips_nulls_and_fixes_content_length() {
    let (status, headers, body) = send(
        StripNullsLayer::new(),
        upstream(StatusCode::OK, &[JSON, ("content-length", "52")], DOC, 1024),
        Method::GET,
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body, STRIPPED);
    assert_eq!(headers[header::CONTENT_LENGTH], STRIPPED.len().to_string());
}

#[tokio::test]
async fn strips_a_body_that_arrives_in_many_small_chunks() {
    let (_, _, body) = send(
        StripNullsLayer::new(),
        upstream(StatusCode::OK, &[JSON], DOC, 3),
        Method::GET,
    )
    .await;
    assert_eq!(body, STRIPPED);
}

#[tokio::test]
async fn strips_suffixed_json_media_types() {
    let (_, _, body) = send(
        StripNullsLayer::new(),
        upstream(
            StatusCode::OK,
            &[("content-type", "application/hal+json; charset=utf-8")],
            DOC,
            1024,
        ),
        Method::GET,
    )
    .await;
    assert_eq!(body, STRIPPED);
}

#[tokio::test]
async fn weakens_a_strong_etag() {
    let (_, headers, _) = send(
        StripNullsLayer::new(),
        upstream(StatusCode::OK, &[JSON, ("etag", "\"abc\"")], DOC, 1024),
        Method::GET,
    )
    .await;
    assert_eq!(headers[header::ETAG], "W/\"abc\"");
}

#[tokio::test]
async fn passes_through_non_json() {
    let (_, headers, body) = send(
        StripNullsLayer::new(),
        upstream(StatusCode::OK, &[("content-type", "text/plain")], DOC, 1024),
        Method::GET,
    )
    .await;
    assert_eq!(body, DOC);
    assert!(!headers.contains_key(header::CONTENT_LENGTH));
}

#[tokio::test]
async fn passes_through_malformed_json_unchanged() {
    let broken = r#"{"a":null,"b":"#;
    let (_, headers, body) = send(
        StripNullsLayer::new(),
        upstream(StatusCode::OK, &[JSON, ("etag", "\"abc\"")], broken, 4),
        Method::GET,
    )
    .await;
    assert_eq!(body, broken);
    assert_eq!(headers[header::ETAG], "\"abc\"");
}

#[tokio::test]
async fn passes_through_a_body_declared_over_the_limit() {
    let (_, headers, body) = send(
        StripNullsLayer::builder().max_body(10).build().unwrap(),
        upstream(StatusCode::OK, &[JSON, ("content-length", "52")], DOC, 1024),
        Method::GET,
    )
    .await;
    assert_eq!(body, DOC);
    assert_eq!(headers[header::CONTENT_LENGTH], "52");
}

#[tokio::test]
async fn streams_a_body_that_grows_past_the_limit_unchanged() {
    let (_, _, body) = send(
        StripNullsLayer::builder().max_body(20).build().unwrap(),
        upstream(StatusCode::OK, &[JSON], DOC, 7),
        Method::GET,
    )
    .await;
    assert_eq!(body, DOC);
}

#[tokio::test]
async fn a_head_response_never_carries_the_unstripped_content_length() {
    let (_, get_headers, get_body) = send(
        StripNullsLayer::new(),
        upstream(StatusCode::OK, &[JSON, ("content-length", "52")], DOC, 1024),
        Method::GET,
    )
    .await;
    assert_eq!(
        get_headers[header::CONTENT_LENGTH],
        get_body.len().to_string()
    );
    let (_, headers, body) = send(
        StripNullsLayer::new(),
        upstream(StatusCode::OK, &[JSON, ("content-length", "52")], "", 1),
        Method::HEAD,
    )
    .await;
    assert_eq!(body, "");
    // RFC 9110 §8.6: a HEAD may omit Content-Length; it must not announce 52 when GET sends
    // the stripped document.
    assert!(
        headers
            .get(header::CONTENT_LENGTH)
            .is_none_or(|length| *length == *get_body.len().to_string()),
        "{headers:?}"
    );
}

#[tokio::test]
async fn leaves_head_responses_alone_when_get_would_not_be_stripped() {
    let (_, headers, body) = send(
        StripNullsLayer::new(),
        upstream(
            StatusCode::OK,
            &[("content-type", "text/plain"), ("content-length", "52")],
            "",
            1,
        ),
        Method::HEAD,
    )
    .await;
    assert_eq!(body, "");
    assert_eq!(headers[header::CONTENT_LENGTH], "52");
}

#[tokio::test]
async fn leaves_no_content_and_errors_alone() {
    for status in [
        StatusCode::NO_CONTENT,
        StatusCode::NOT_FOUND,
        StatusCode::INTERNAL_SERVER_ERROR,
    ] {
        let body_text = if status == StatusCode::NO_CONTENT {
            ""
        } else {
            DOC
        };
        let (got, _, body) = send(
            StripNullsLayer::new(),
            upstream(status, &[JSON], body_text, 1024),
            Method::GET,
        )
        .await;
        assert_eq!(got, status);
        assert_eq!(body, body_text);
    }
}

#[tokio::test]
async fn skips_merge_patch_by_default_and_strips_it_when_configured() {
    let patch = [("content-type", "application/merge-patch+json")];
    let (_, _, body) = send(
        StripNullsLayer::new(),
        upstream(StatusCode::OK, &patch, DOC, 1024),
        Method::GET,
    )
    .await;
    assert_eq!(body, DOC);
    let everything = StripNullsLayer::builder()
        .skip_media_types(Vec::<String>::new())
        .build()
        .unwrap();
    let (_, _, body) = send(
        everything,
        upstream(StatusCode::OK, &patch, DOC, 1024),
        Method::GET,
    )
    .await;
    assert_eq!(body, STRIPPED);
}

#[tokio::test]
async fn leaves_compressed_json_alone() {
    let (_, _, body) = send(
        StripNullsLayer::new(),
        upstream(
            StatusCode::OK,
            &[JSON, ("content-encoding", "br")],
            DOC,
            1024,
        ),
        Method::GET,
    )
    .await;
    assert_eq!(body, DOC);
}

#[tokio::test]
async fn works_as_an_axum_router_layer() {
    use axum::{Json, Router, routing::get};
    let app = Router::new()
        .route(
            "/p",
            get(|| async {
                Json(serde_json::json!({"id": 7, "gone": null, "list": [null, {"x": null}]}))
            }),
        )
        .layer(StripNullsLayer::builder().arrays(true).build().unwrap());
    let response = app
        .oneshot(Request::get("/p").body(Body::empty()).unwrap())
        .await
        .unwrap();
    let body = response.into_body().collect().await.unwrap().to_bytes();
    assert_eq!(body, r#"{"id":7,"list":[{}]}"#);
}

#[test]
fn bad_keep_paths_are_config_errors_when_the_layer_is_built() {
    let error = StripNullsLayer::builder()
        .keep(["no-slash"])
        .build()
        .unwrap_err();
    assert!(matches!(&error, ConfigError::InvalidKeepPath { path, .. } if path == "no-slash"));
    assert_eq!(
        error.to_string(),
        "invalid `keep` path \"no-slash\": a JSON Pointer starts with '/'"
    );
    let many = StripNullsLayer::builder()
        .keep((0..65).map(|n| format!("/{n}")))
        .build()
        .unwrap_err();
    assert_eq!(many, ConfigError::TooManyKeepPaths { count: 65 });
    assert!(
        StripNullsLayer::builder()
            .keep(["/a", "/b/*"])
            .build()
            .is_ok()
    );
}
