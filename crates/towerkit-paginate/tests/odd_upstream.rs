//! Odd upstream output through `SelectFieldsLayer` and `PaginateLayer` stacked (as in a
//! service: fields outermost): malformed JSON, truncated bodies, a `Content-Length` that
//! lies, invalid UTF-8, a body that fails half-way, and a 50 MB document (the cases of
//! `towerkit_test_support::upstream`). Each passes through unchanged, and together the
//! layers never hold more than their buffer limits of a body they do not rewrite.

use http::Request;
use tower::ServiceBuilder;
use tower::layer::util::{Identity, Stack};
use towerkit_paginate::{PaginateLayer, SelectFieldsLayer};
use towerkit_test_support::upstream::{
    self, CHUNK, Case, Received, big_document, invalid_utf8, lying_content_lengths, malformed_json,
    truncated_bodies,
};

/// The layers' default `max_body`, 8 MiB.
const DEFAULT_MAX_BODY: usize = 8 * 1024 * 1024;
const MAX_BODY: usize = 1024 * 1024;

/// Both layers with buffer limit `max_body`, fields outermost.
fn layers(
    max_body: usize,
) -> ServiceBuilder<Stack<PaginateLayer, Stack<SelectFieldsLayer, Identity>>> {
    ServiceBuilder::new()
        .layer(
            SelectFieldsLayer::builder()
                .max_body(max_body)
                .build()
                .unwrap(),
        )
        .layer(PaginateLayer::builder().max_body(max_body).build().unwrap())
}

/// A request both layers act on.
fn request() -> Request<()> {
    Request::get("/items?page=1&limit=2&fields=id")
        .body(())
        .unwrap()
}

async fn through(limit: usize, case: Case) -> Received {
    upstream::through(layers(limit), request(), case).await
}

async fn all_unchanged(cases: Vec<(&'static str, Case)>) {
    upstream::all_unchanged(cases, || layers(DEFAULT_MAX_BODY), request).await;
}

#[tokio::test]
async fn malformed_json_passes_through_unchanged() {
    all_unchanged(malformed_json()).await;
}

#[tokio::test]
async fn invalid_utf8_passes_through_unchanged() {
    all_unchanged(invalid_utf8()).await;
}

#[tokio::test]
async fn truncated_bodies_pass_through_unchanged() {
    all_unchanged(truncated_bodies()).await;
}

#[tokio::test]
async fn a_lying_content_length_passes_through_unchanged() {
    all_unchanged(lying_content_lengths()).await;
}

#[tokio::test]
async fn a_50_mb_streamed_body_passes_through_holding_at_most_the_limits() {
    let doc = big_document(3_000_000);
    assert!(doc.len() > 50_000_000);
    let received = through(MAX_BODY, Case::streamed(&doc, false)).await;
    assert!(received.body == doc, "the body changed");
    assert!(!received.failed);
    assert!(received.headers.get("content-length").is_none());
    // Each layer reads at most its limit and one chunk past it before giving up.
    let bound = 2 * (MAX_BODY + CHUNK);
    let before_first = received.pulled_before_first.unwrap();
    eprintln!(
        "{} body bytes; pulled {before_first} before the first reached the client, held at most {}",
        doc.len(),
        received.most_held
    );
    assert!(
        before_first <= bound,
        "pulled {before_first} bytes before the first reached the client"
    );
    assert!(
        received.most_held <= bound,
        "held {} bytes",
        received.most_held
    );
}

#[tokio::test]
async fn a_50_mb_declared_body_streams_without_being_read_first() {
    let doc = big_document(3_000_000);
    let received = through(DEFAULT_MAX_BODY, Case::streamed(&doc, true)).await;
    assert!(received.body == doc, "the body changed");
    assert_eq!(received.headers["content-length"], doc.len().to_string());
    assert!(received.pulled_before_first.unwrap() <= CHUNK);
    assert!(
        received.most_held <= CHUNK,
        "held {} bytes",
        received.most_held
    );
}

#[tokio::test]
async fn a_well_formed_array_within_the_limit_is_still_paged_and_projected() {
    // The control case: the same stack does rewrite what it should.
    let received = through(
        DEFAULT_MAX_BODY,
        Case::json(br#"[{"id":1,"x":null},{"id":2},{"id":3}]"#),
    )
    .await;
    let body = String::from_utf8(received.body).unwrap();
    assert!(
        body.starts_with(r#"{"data":[{"id":1},{"id":2}],"pagination":{"#),
        "{body}"
    );
    assert_eq!(received.headers["content-length"], body.len().to_string());
}
