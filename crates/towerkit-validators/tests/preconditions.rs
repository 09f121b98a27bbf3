//! `Preconditions` and `RequirePreconditionsLayer` on a real axum router.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use axum::Router;
use axum::body::Body;
use axum::routing::put;
use http::header::{CONTENT_TYPE, IF_MATCH, IF_UNMODIFIED_SINCE};
use http::{HeaderValue, Method, Request, StatusCode};
use http_body_util::BodyExt;
use tower::ServiceExt;
use towerkit_validators::{PreconditionError, Preconditions, RequirePreconditionsLayer};

/// The current version: tag `"v7"`, modified at 1_000_000_000 s after the epoch.
fn modified() -> SystemTime {
    UNIX_EPOCH + Duration::from_secs(1_000_000_000)
}

async fn update(preconditions: Preconditions) -> Result<StatusCode, PreconditionError> {
    preconditions.check(Some(&HeaderValue::from_static("\"v7\"")), Some(modified()))?;
    Ok(StatusCode::NO_CONTENT)
}

async fn create(preconditions: Preconditions) -> Result<StatusCode, PreconditionError> {
    // Nothing exists yet.
    preconditions.check(None, None)?;
    Ok(StatusCode::CREATED)
}

fn app() -> Router {
    Router::new()
        .route(
            "/required",
            put(update)
                .delete(update)
                .get(|| async { "read" })
                .route_layer(RequirePreconditionsLayer::new()),
        )
        .route("/optional", put(update))
        .route("/new", put(create))
        .route(
            "/patch-only",
            put(update)
                .patch(update)
                .route_layer(RequirePreconditionsLayer::new().methods([Method::PATCH])),
        )
}

async fn send(
    method: Method,
    path: &str,
    headers: &[(&str, &str)],
) -> (StatusCode, Option<serde_json::Value>) {
    let mut request = Request::builder().method(method).uri(path);
    for (name, value) in headers {
        request = request.header(*name, *value);
    }
    let response = app()
        .oneshot(request.body(Body::empty()).unwrap())
        .await
        .unwrap();
    let status = response.status();
    let is_problem = response
        .headers()
        .get(CONTENT_TYPE)
        .is_some_and(|value| value == "application/problem+json");
    let body = response.into_body().collect().await.unwrap().to_bytes();
    let problem = is_problem.then(|| serde_json::from_slice(&body).unwrap());
    (status, problem)
}

#[tokio::test]
async fn a_matching_if_match_lets_the_write_through() {
    for if_match in ["\"v7\"", "\"v1\", \"v7\"", "*"] {
        let (status, _) = send(Method::PUT, "/required", &[("if-match", if_match)]).await;
        assert_eq!(status, StatusCode::NO_CONTENT, "{if_match}");
    }
}

#[tokio::test]
async fn a_stale_if_match_is_412_problem_json() {
    let (status, problem) = send(Method::PUT, "/required", &[("if-match", "\"v6\"")]).await;
    assert_eq!(status, StatusCode::PRECONDITION_FAILED);
    let problem = problem.expect("problem+json");
    assert_eq!(problem["status"], 412);
    assert_eq!(problem["title"], "Precondition Failed");
}

#[tokio::test]
async fn if_match_uses_strong_comparison() {
    let (status, _) = send(Method::PUT, "/optional", &[("if-match", "W/\"v7\"")]).await;
    assert_eq!(status, StatusCode::PRECONDITION_FAILED);
}

#[tokio::test]
async fn a_coded_variants_tag_matches_its_base_tag() {
    for tag in ["\"v7-br\"", "\"v7-gzip\"", "\"v7-zstd\"", "\"v7-deflate\""] {
        let (status, _) = send(Method::PUT, "/optional", &[("if-match", tag)]).await;
        assert_eq!(status, StatusCode::NO_CONTENT, "{tag}");
    }
    let (status, _) = send(Method::PUT, "/optional", &[("if-match", "\"v7-xz\"")]).await;
    assert_eq!(status, StatusCode::PRECONDITION_FAILED);
}

#[tokio::test]
async fn star_fails_when_the_resource_does_not_exist() {
    let (status, _) = send(Method::PUT, "/new", &[("if-match", "*")]).await;
    assert_eq!(status, StatusCode::PRECONDITION_FAILED);
    let (status, _) = send(Method::PUT, "/new", &[]).await;
    assert_eq!(status, StatusCode::CREATED);
}

#[tokio::test]
async fn a_missing_precondition_on_a_route_that_requires_one_is_428() {
    for method in [Method::PUT, Method::DELETE] {
        let (status, problem) = send(method.clone(), "/required", &[]).await;
        assert_eq!(status, StatusCode::PRECONDITION_REQUIRED, "{method}");
        assert_eq!(problem.expect("problem+json")["status"], 428);
    }
    // Reads are not writes; an optional route takes unconditional writes.
    assert_eq!(send(Method::GET, "/required", &[]).await.0, StatusCode::OK);
    assert_eq!(
        send(Method::PUT, "/optional", &[]).await.0,
        StatusCode::NO_CONTENT
    );
}

#[tokio::test]
async fn the_required_methods_are_configurable() {
    assert_eq!(
        send(Method::PATCH, "/patch-only", &[]).await.0,
        StatusCode::PRECONDITION_REQUIRED
    );
    assert_eq!(
        send(Method::PUT, "/patch-only", &[]).await.0,
        StatusCode::NO_CONTENT
    );
}

#[tokio::test]
async fn a_malformed_if_match_is_400_naming_the_field() {
    for if_match in ["v7", "\"v7\", *", "\"v7"] {
        let (status, problem) = send(Method::PUT, "/required", &[("if-match", if_match)]).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{if_match}");
        let problem = problem.expect("problem+json");
        assert_eq!(problem["invalid-params"][0]["name"], "If-Match");
    }
}

#[tokio::test]
async fn if_unmodified_since_is_compared_to_the_second() {
    let at = |secs: u64| httpdate::fmt_http_date(UNIX_EPOCH + Duration::from_secs(secs));
    let (status, _) = send(
        Method::PUT,
        "/required",
        &[(IF_UNMODIFIED_SINCE.as_str(), &at(1_000_000_000))],
    )
    .await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    let (status, _) = send(
        Method::PUT,
        "/required",
        &[(IF_UNMODIFIED_SINCE.as_str(), &at(999_999_999))],
    )
    .await;
    assert_eq!(status, StatusCode::PRECONDITION_FAILED);
}

#[tokio::test]
async fn if_match_takes_precedence_over_if_unmodified_since() {
    let stale_date = httpdate::fmt_http_date(UNIX_EPOCH);
    let (status, _) = send(
        Method::PUT,
        "/required",
        &[
            (IF_MATCH.as_str(), "\"v7\""),
            (IF_UNMODIFIED_SINCE.as_str(), &stale_date),
        ],
    )
    .await;
    assert_eq!(status, StatusCode::NO_CONTENT);
}

#[tokio::test]
async fn an_invalid_if_unmodified_since_is_ignored() {
    let (status, _) = send(
        Method::PUT,
        "/optional",
        &[("if-unmodified-since", "yesterday")],
    )
    .await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    // ... so on a route that requires a precondition, it is none.
    let (status, _) = send(
        Method::PUT,
        "/required",
        &[("if-unmodified-since", "yesterday")],
    )
    .await;
    assert_eq!(status, StatusCode::PRECONDITION_REQUIRED);
}
