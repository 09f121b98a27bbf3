//! Odd upstream output for the layers that rewrite response bodies: a [`Case`] is one
//! upstream response (malformed JSON, a truncated body, a `Content-Length` that lies,
//! invalid UTF-8, a body that fails half-way, a 50 MB document), [`through`] sends it
//! through a layer and reports what reached the client and how much the layer held, and
//! [`unchanged`] checks that it arrived exactly as sent.

use std::collections::VecDeque;
use std::convert::Infallible;
use std::future::{Ready, ready};
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::task::{Context, Poll};

use bytes::Bytes;
use http::{HeaderMap, Request, Response, StatusCode};
use http_body::{Body, Frame, SizeHint};
use http_body_util::BodyExt;
use tower::{Layer, Service, ServiceExt};

/// The chunk size of [`chunked`].
pub const CHUNK: usize = 64 * 1024;

/// One upstream response.
#[derive(Debug, Clone)]
pub struct Case {
    /// Response headers, in order.
    pub headers: Vec<(&'static str, String)>,
    /// The body's data frames.
    pub chunks: Vec<Bytes>,
    /// Whether the body fails (a reset connection) after its chunks.
    pub fail_at_end: bool,
    /// Whether the body reports its exact length in its size hint, as hyper's does for a
    /// declared `Content-Length`.
    pub exact: bool,
}

impl Case {
    /// A `200 application/json` response with `body` in 7-byte chunks.
    pub fn json(body: &'static [u8]) -> Self {
        Self {
            headers: vec![("content-type", "application/json".to_owned())],
            chunks: body.chunks(7).map(Bytes::copy_from_slice).collect(),
            fail_at_end: false,
            exact: false,
        }
    }

    /// A `200 application/json` response with `doc` in [`CHUNK`]-byte chunks; with
    /// `declared`, its `Content-Length` is sent and its length known.
    pub fn streamed(doc: &Bytes, declared: bool) -> Self {
        let mut case = Self {
            headers: vec![("content-type", "application/json".to_owned())],
            chunks: chunked(doc),
            fail_at_end: false,
            exact: declared,
        };
        if declared {
            case.headers.push(("content-length", doc.len().to_string()));
        }
        case
    }

    /// Adds a header.
    #[must_use]
    pub fn header(mut self, name: &'static str, value: impl Into<String>) -> Self {
        self.headers.push((name, value.into()));
        self
    }

    /// The body fails after its chunks.
    #[must_use]
    pub fn failing(mut self) -> Self {
        self.fail_at_end = true;
        self
    }
}

/// Malformed JSON: unclosed, trailing garbage, a bare word, empty, whitespace, a lone
/// surrogate, nesting deeper than any parser allows.
pub fn malformed_json() -> Vec<(&'static str, Case)> {
    let too_deep = format!("{}{}", "[".repeat(200), "]".repeat(200));
    vec![
        ("unclosed", Case::json(br#"{"a":null,"b":[1,2"#)),
        ("trailing garbage", Case::json(br#"{"a":null} {"b":null}"#)),
        ("bare word", Case::json(b"nulll")),
        ("empty", Case::json(b"")),
        ("whitespace", Case::json(b" \r\n\t ")),
        ("lone surrogate", Case::json(br#"{"a":null,"b":"\ud800"}"#)),
        (
            "too deep",
            Case::json(Box::leak(too_deep.into_boxed_str()).as_bytes()),
        ),
    ]
}

/// Invalid UTF-8 in a string, in a key, and an overlong encoding.
pub fn invalid_utf8() -> Vec<(&'static str, Case)> {
    vec![
        (
            "in a string",
            Case::json(b"{\"a\":null,\"b\":\"\xff\xfe\"}"),
        ),
        ("in a key", Case::json(b"{\"\xc3\":null}")),
        ("overlong", Case::json(b"{\"a\":null,\"b\":\"\xc0\xaf\"}")),
    ]
}

/// Bodies cut short: mid-document and mid-number (valid JSON: only the length shows the
/// truncation) with a longer `Content-Length`, and an upstream reset.
pub fn truncated_bodies() -> Vec<(&'static str, Case)> {
    vec![
        (
            "mid-document",
            Case::json(br#"{"id":1,"note":nu"#).header("content-length", "24"),
        ),
        (
            "mid-number",
            Case::json(b"123").header("content-length", "5"),
        ),
        (
            "upstream reset",
            Case::json(br#"{"id":1,"note":null,"#).failing(),
        ),
    ]
}

/// A `Content-Length` longer than the body, shorter, and not a number.
pub fn lying_content_lengths() -> Vec<(&'static str, Case)> {
    let body = br#"{"a":null,"b":1}"#;
    vec![
        (
            "longer than the body",
            Case::json(body).header("content-length", "1000"),
        ),
        (
            "shorter than the body",
            Case::json(body).header("content-length", "5"),
        ),
        (
            "not a number",
            Case::json(body).header("content-length", "ten"),
        ),
    ]
}

/// A JSON array of `items` objects with a null member each, about `items * 17` bytes.
pub fn big_document(items: usize) -> Bytes {
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

/// `doc` in [`CHUNK`]-byte slices.
pub fn chunked(doc: &Bytes) -> Vec<Bytes> {
    (0..doc.len())
        .step_by(CHUNK)
        .map(|at| doc.slice(at..(at + CHUNK).min(doc.len())))
        .collect()
}

/// What reached the client: head, every data frame, and whether the body ended in an error.
#[derive(Debug)]
pub struct Received {
    /// The response status.
    pub status: StatusCode,
    /// The response headers.
    pub headers: HeaderMap,
    /// Every data byte, in order.
    pub body: Vec<u8>,
    /// Whether the body ended in an error.
    pub failed: bool,
    /// Bytes pulled from upstream when the first data frame reached the client.
    pub pulled_before_first: Option<usize>,
    /// The most pulled from upstream and not yet delivered, at any frame.
    pub most_held: usize,
}

/// The upstream service: answers every request with its [`Case`].
#[derive(Debug, Clone)]
pub struct Upstream {
    case: Case,
    pulled: Arc<AtomicUsize>,
}

impl Service<Request<()>> for Upstream {
    type Response = Response<UpstreamBody>;
    type Error = Infallible;
    type Future = Ready<Result<Self::Response, Infallible>>;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, _: Request<()>) -> Self::Future {
        let total: usize = self.case.chunks.iter().map(Bytes::len).sum();
        let body = UpstreamBody {
            chunks: self.case.chunks.clone().into(),
            fail_at_end: self.case.fail_at_end,
            exact: self.case.exact.then_some(total as u64),
            pulled: self.pulled.clone(),
        };
        let mut response = Response::new(body);
        for (name, value) in &self.case.headers {
            response
                .headers_mut()
                .append(*name, value.parse().expect("a valid header value"));
        }
        ready(Ok(response))
    }
}

/// An upstream body: the case's chunks (or a failure after them), counting every byte the
/// layer pulls from it.
#[derive(Debug)]
pub struct UpstreamBody {
    chunks: VecDeque<Bytes>,
    fail_at_end: bool,
    exact: Option<u64>,
    pulled: Arc<AtomicUsize>,
}

impl Body for UpstreamBody {
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

/// Sends `request` through `layer` to an upstream answering with `case`, and reads the
/// whole response as the client gets it.
pub async fn through<L, B>(layer: L, request: Request<()>, case: Case) -> Received
where
    L: Layer<Upstream>,
    L::Service: Service<Request<()>, Response = Response<B>>,
    <L::Service as Service<Request<()>>>::Error: std::fmt::Debug,
    B: Body<Data = Bytes> + Unpin,
{
    let pulled = Arc::new(AtomicUsize::new(0));
    let upstream = Upstream {
        case,
        pulled: pulled.clone(),
    };
    let response = layer
        .layer(upstream)
        .oneshot(request)
        .await
        .expect("the layer answers");
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

/// Checks that `case` reaches the client through `layer` exactly as upstream sent it:
/// status, body, headers, and a failure where upstream failed.
pub async fn unchanged<L, B>(name: &str, layer: L, request: Request<()>, case: Case)
where
    L: Layer<Upstream>,
    L::Service: Service<Request<()>, Response = Response<B>>,
    <L::Service as Service<Request<()>>>::Error: std::fmt::Debug,
    B: Body<Data = Bytes> + Unpin,
{
    let sent: Vec<u8> = case.chunks.concat();
    let headers = case.headers.clone();
    let fails = case.fail_at_end;
    let received = through(layer, request, case).await;
    assert_eq!(received.status, StatusCode::OK, "{name}");
    assert_eq!(received.body, sent, "{name}: body changed");
    assert_eq!(received.failed, fails, "{name}: body error");
    for (header, value) in headers {
        assert_eq!(received.headers[header], value, "{name}: {header} changed");
    }
}

/// [`unchanged`] for each of `cases`, through a fresh `layer()` with a fresh `request()`.
pub async fn all_unchanged<L, B>(
    cases: Vec<(&'static str, Case)>,
    layer: impl Fn() -> L,
    request: impl Fn() -> Request<()>,
) where
    L: Layer<Upstream>,
    L::Service: Service<Request<()>, Response = Response<B>>,
    <L::Service as Service<Request<()>>>::Error: std::fmt::Debug,
    B: Body<Data = Bytes> + Unpin,
{
    for (name, case) in cases {
        unchanged(name, layer(), request(), case).await;
    }
}
