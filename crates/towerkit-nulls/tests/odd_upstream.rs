//! Odd upstream output through `StripNullsLayer`: malformed JSON, truncated bodies, a
//! `Content-Length` that lies, invalid UTF-8, a body that fails half-way, and a 50 MB
//! document (the cases of `towerkit_test_support::upstream`). Each passes through
//! unchanged, and the layer never holds more than its `max_body` of a body it does not
//! rewrite.

use http::Request;
use towerkit_nulls::StripNullsLayer;
use towerkit_test_support::upstream::{
    self, CHUNK, Case, big_document, invalid_utf8, lying_content_lengths, malformed_json, through,
    truncated_bodies,
};

async fn all_unchanged(cases: Vec<(&'static str, Case)>) {
    upstream::all_unchanged(cases, StripNullsLayer::new, || Request::new(())).await;
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

const MAX_BODY: usize = 1024 * 1024;

#[tokio::test]
async fn a_50_mb_streamed_body_passes_through_holding_at_most_the_limit() {
    let doc = big_document(3_000_000);
    assert!(doc.len() > 50_000_000);
    let received = through(
        StripNullsLayer::builder()
            .max_body(MAX_BODY)
            .build()
            .unwrap(),
        Request::new(()),
        Case::streamed(&doc, false),
    )
    .await;
    assert!(received.body == doc, "the body changed");
    assert!(!received.failed);
    assert!(received.headers.get("content-length").is_none());
    let before_first = received.pulled_before_first.unwrap();
    eprintln!(
        "{} body bytes; pulled {before_first} before the first reached the client, held at most {}",
        doc.len(),
        received.most_held
    );
    assert!(
        before_first <= MAX_BODY + CHUNK,
        "pulled {before_first} bytes before the first reached the client"
    );
    assert!(
        received.most_held <= MAX_BODY + CHUNK,
        "held {} bytes",
        received.most_held
    );
}

#[tokio::test]
async fn a_50_mb_declared_body_streams_without_being_read_first() {
    let doc = big_document(3_000_000);
    let received = through(
        StripNullsLayer::new(),
        Request::new(()),
        Case::streamed(&doc, true),
    )
    .await;
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
async fn a_well_formed_body_within_the_limit_is_still_stripped() {
    // The control case: the same machinery does rewrite what it should.
    let received = through(
        StripNullsLayer::new(),
        Request::new(()),
        Case::json(br#"{"a":null,"b":1}"#).header("content-length", "16"),
    )
    .await;
    assert_eq!(received.body, br#"{"b":1}"#);
    assert_eq!(received.headers["content-length"], "7");
}
