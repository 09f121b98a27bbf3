//! Odd upstream output through `FieldsLayer` and `PaginationLayer` stacked (as in a
//! service: fields outermost): malformed JSON, truncated bodies, a `Content-Length` that
//! lies, invalid UTF-8, a body that fails half-way, and a 50 MB document. Each passes
//! through unchanged, and together the layers never hold more than their buffer limits of
//! a body they do not rewrite.

use std::collections::VecDeque;
use std::convert::Infallible;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::task::{Context, Poll};

use bytes::Bytes;
use http::{HeaderMap, Request, Response, StatusCode};
use http_body::{Body, Frame, SizeHint};
use http_body_util::BodyExt;
use tower::{ServiceBuilder, ServiceExt, service_fn};
use towerkit_paginate::{FieldsLayer, PaginationLayer};

/// An upstream body: the given chunks (or a failure after them), counting every byte the
/// layer pulls from it.
struct Upstream {
    chunks: VecDeque<Bytes>,
    fail_at_end: bool,
    exact: Option<u64>,
    pulled: Arc<AtomicUsize>,
}

impl Body for Upstream {
    type Data = Bytes;
    type Error = std::io::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        _: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
        match self.chunks.pop_front() {
            Some(chunk) => {
                self.pulled.fetch_add(chunk.len(), Ordering::SeqCst);
                Poll::Ready(Some(Ok(Frame::data(chunk))))
            }
            None if self.fail_at_end => {
                self.fail_at_end = false;
                Poll::Ready(Some(Err(std::io::Error::other(
                    "upstream connection reset",
                ))))
            }
            None => Poll::Ready(None),
        }
    }

    fn size_hint(&self) -> SizeHint {
        self.exact
            .map_or_else(SizeHint::default, SizeHint::with_exact)
    }
}

/// One upstream response.
struct Case {
    headers: Vec<(&'static str, String)>,
    chunks: Vec<Bytes>,
    fail_at_end: bool,
    exact: bool,
}

impl Case {
    fn json(body: &'static [u8]) -> Self {
        Case {
            headers: vec![("content-type", "application/json".to_owned())],
            chunks: body.chunks(7).map(Bytes::copy_from_slice).collect(),
            fail_at_end: false,
            exact: false,
        }
    }

    fn header(mut self, name: &'static str, value: impl Into<String>) -> Self {
        self.headers.push((name, value.into()));
        self
    }
}

/// What reached the client: head, every data frame, and whether the body ended in an error.
struct Received {
    status: StatusCode,
    headers: HeaderMap,
    body: Vec<u8>,
    failed: bool,
    /// Bytes pulled from upstream when the first data frame reached the client.
    pulled_before_first: Option<usize>,
    /// The most pulled from upstream and not yet delivered, at any frame.
    most_held: usize,
}

async fn through(limit: usize, case: Case) -> Received {
    let pulled = Arc::new(AtomicUsize::new(0));
    let upstream = {
        let pulled = pulled.clone();
        service_fn(move |_: Request<()>| {
            let total: usize = case.chunks.iter().map(Bytes::len).sum();
            let body = Upstream {
                chunks: case.chunks.clone().into(),
                fail_at_end: case.fail_at_end,
                exact: case.exact.then_some(total as u64),
                pulled: pulled.clone(),
            };
            let mut response = Response::new(body);
            for (name, value) in &case.headers {
                response.headers_mut().append(*name, value.parse().unwrap());
            }
            async move { Ok::<_, Infallible>(response) }
        })
    };
    let layers = ServiceBuilder::new()
        .layer(FieldsLayer::default().limit(limit))
        .layer(PaginationLayer::default().limit(limit));
    let request = Request::get("/items?page=1&limit=2&fields=id")
        .body(())
        .unwrap();
    let response = layers.service(upstream).oneshot(request).await.unwrap();
    let (head, mut body) = response.into_parts();
    let mut received = Received {
        status: head.status,
        headers: head.headers,
        body: Vec::new(),
        failed: false,
        pulled_before_first: None,
        most_held: 0,
    };
    while let Some(frame) = body.frame().await {
        let Ok(frame) = frame else {
            received.failed = true;
            break;
        };
        if let Ok(data) = frame.into_data() {
            received
                .pulled_before_first
                .get_or_insert(pulled.load(Ordering::SeqCst));
            received.body.extend_from_slice(&data);
            let held = pulled
                .load(Ordering::SeqCst)
                .saturating_sub(received.body.len());
            received.most_held = received.most_held.max(held);
        }
    }
    received
}

/// Checks that `case` reaches the client exactly as upstream sent it.
async fn unchanged(name: &str, case: Case) {
    let sent: Vec<u8> = case.chunks.concat();
    let headers = case.headers.clone();
    let fails = case.fail_at_end;
    let received = through(DEFAULT_LIMIT, case).await;
    assert_eq!(received.status, StatusCode::OK, "{name}");
    assert_eq!(received.body, sent, "{name}: body changed");
    assert_eq!(received.failed, fails, "{name}: body error");
    for (header, value) in headers {
        assert_eq!(received.headers[header], value, "{name}: {header} changed");
    }
}

#[tokio::test]
async fn malformed_json_passes_through_unchanged() {
    unchanged("unclosed", Case::json(br#"{"a":null,"b":[1,2"#)).await;
    unchanged("trailing garbage", Case::json(br#"{"a":null} {"b":null}"#)).await;
    unchanged("bare word", Case::json(b"nulll")).await;
    unchanged("empty", Case::json(b"")).await;
    unchanged("whitespace", Case::json(b" \r\n\t ")).await;
    unchanged("lone surrogate", Case::json(br#"{"a":null,"b":"\ud800"}"#)).await;
    unchanged(
        "too deep",
        Case::json(
            Box::leak(format!("{}{}", "[".repeat(200), "]".repeat(200)).into_boxed_str())
                .as_bytes(),
        ),
    )
    .await;
}

#[tokio::test]
async fn invalid_utf8_passes_through_unchanged() {
    unchanged(
        "in a string",
        Case::json(b"{\"a\":null,\"b\":\"\xff\xfe\"}"),
    )
    .await;
    unchanged("in a key", Case::json(b"{\"\xc3\":null}")).await;
    unchanged("overlong", Case::json(b"{\"a\":null,\"b\":\"\xc0\xaf\"}")).await;
}

#[tokio::test]
async fn truncated_bodies_pass_through_unchanged() {
    unchanged(
        "mid-document",
        Case::json(br#"{"id":1,"note":nu"#).header("content-length", "24"),
    )
    .await;
    // A top-level number cut short is still valid JSON: only the length shows the truncation.
    unchanged(
        "mid-number",
        Case::json(b"123").header("content-length", "5"),
    )
    .await;
    let mut failing = Case::json(br#"{"id":1,"note":null,"#);
    failing.fail_at_end = true;
    unchanged("upstream reset", failing).await;
}

#[tokio::test]
async fn a_lying_content_length_passes_through_unchanged() {
    unchanged(
        "longer than the body",
        Case::json(br#"{"a":null,"b":1}"#).header("content-length", "1000"),
    )
    .await;
    unchanged(
        "shorter than the body",
        Case::json(br#"{"a":null,"b":1}"#).header("content-length", "5"),
    )
    .await;
    unchanged(
        "not a number",
        Case::json(br#"{"a":null,"b":1}"#).header("content-length", "ten"),
    )
    .await;
}

/// A JSON array of `items` objects with a null member each, about `items * 17` bytes.
fn big_document(items: usize) -> Bytes {
    let mut doc = Vec::with_capacity(items * 17 + 2);
    doc.push(b'[');
    for n in 0..items {
        if n > 0 {
            doc.push(b',');
        }
        doc.extend_from_slice(b"{\"n\":null,\"x\":1}");
    }
    doc.push(b']');
    doc.into()
}

const CHUNK: usize = 64 * 1024;
const LIMIT: usize = 1024 * 1024;
/// The layers' default buffer limit, 8 MiB.
const DEFAULT_LIMIT: usize = 8 * 1024 * 1024;

fn chunked(doc: &Bytes) -> Vec<Bytes> {
    (0..doc.len())
        .step_by(CHUNK)
        .map(|at| doc.slice(at..(at + CHUNK).min(doc.len())))
        .collect()
}

#[tokio::test]
async fn a_50_mb_streamed_body_passes_through_holding_at_most_the_limits() {
    let doc = big_document(3_000_000);
    assert!(doc.len() > 50_000_000);
    let case = Case {
        headers: vec![("content-type", "application/json".to_owned())],
        chunks: chunked(&doc),
        fail_at_end: false,
        exact: false,
    };
    let received = through(LIMIT, case).await;
    assert!(received.body == doc, "the body changed");
    assert!(!received.failed);
    assert!(received.headers.get("content-length").is_none());
    // Each layer reads at most its limit and one chunk past it before giving up.
    let bound = 2 * (LIMIT + CHUNK);
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
    let case = Case {
        headers: vec![
            ("content-type", "application/json".to_owned()),
            ("content-length", doc.len().to_string()),
        ],
        chunks: chunked(&doc),
        fail_at_end: false,
        exact: true,
    };
    let received = through(DEFAULT_LIMIT, case).await;
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
        DEFAULT_LIMIT,
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
