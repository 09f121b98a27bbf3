//! `ETagLayer`: a strong `ETag` from the body bytes, and `304 Not Modified` for
//! `If-None-Match`.

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll, ready};

use bytes::{Buf, Bytes};
use http::header::{
    CONTENT_ENCODING, CONTENT_LANGUAGE, CONTENT_LENGTH, CONTENT_RANGE, CONTENT_TYPE, ETAG,
    IF_NONE_MATCH, TRANSFER_ENCODING,
};
use http::{HeaderMap, HeaderValue, Method, Request, Response, StatusCode, response};
use http_body::Body;
use pin_project_lite::pin_project;
use tower_layer::Layer;
use tower_service::Service;
use towerkit_json::JsonBody;

use crate::tag::{etag_of, none_match_hits, parse_tag};

/// The default bound on a body read to compute its tag: 8 MiB, as for the JSON layers.
pub const DEFAULT_MAX_BODY: usize = towerkit_json::DEFAULT_MAX_BODY;

/// Adds a strong `ETag` computed from the body to `200` responses to `GET` and `HEAD` that
/// have none, and answers `If-None-Match` with `304 Not Modified`. See the
/// [crate docs](crate) for what is tagged and what passes through.
///
/// ```
/// use towerkit_validators::ETagLayer;
///
/// let default = ETagLayer::new();
/// assert_eq!(default.get_max_body(), 8 * 1024 * 1024);
/// let small = ETagLayer::new().max_body(64 * 1024);
/// assert_eq!(small.get_max_body(), 65_536);
/// ```
#[derive(Debug, Clone)]
pub struct ETagLayer {
    max_body: usize,
}

impl ETagLayer {
    /// A layer that reads bodies up to [`DEFAULT_MAX_BODY`] (8 MiB).
    pub fn new() -> Self {
        Self {
            max_body: DEFAULT_MAX_BODY,
        }
    }

    /// The most bytes of a body read to compute its tag (default 8 MiB). A body declared
    /// larger passes through unread and untagged; one that grows past it while being read is
    /// replayed unchanged and untagged.
    #[must_use]
    pub fn max_body(mut self, bytes: usize) -> Self {
        self.max_body = bytes;
        self
    }

    /// The configured bound.
    pub fn get_max_body(&self) -> usize {
        self.max_body
    }
}

impl Default for ETagLayer {
    fn default() -> Self {
        Self::new()
    }
}

impl<S> Layer<S> for ETagLayer {
    type Service = ETag<S>;

    fn layer(&self, inner: S) -> ETag<S> {
        ETag {
            inner,
            max_body: self.max_body,
        }
    }
}

/// The service produced by [`ETagLayer`].
#[derive(Debug, Clone)]
pub struct ETag<S> {
    inner: S,
    max_body: usize,
}

impl<S> ETag<S> {
    /// Wraps `inner` with the default configuration.
    pub fn new(inner: S) -> Self {
        ETagLayer::new().layer(inner)
    }

    /// A layer with the default configuration, as [`ETagLayer::new`].
    pub fn layer() -> ETagLayer {
        ETagLayer::new()
    }

    towerkit_http::inner_accessors!(S);
}

impl<S, ReqBody, ResBody> Service<Request<ReqBody>> for ETag<S>
where
    S: Service<Request<ReqBody>, Response = Response<ResBody>>,
    ResBody: Body,
{
    type Response = Response<JsonBody<ResBody>>;
    type Error = S::Error;
    type Future = ResponseFuture<S::Future, ResBody>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: Request<ReqBody>) -> Self::Future {
        let method = request.method();
        if method != Method::GET && method != Method::HEAD {
            return ResponseFuture {
                state: State::Passthrough {
                    future: self.inner.call(request),
                },
            };
        }
        let head_request = method == Method::HEAD;
        // Cheap clones (shared bytes); no allocation without the header.
        let if_none_match: Vec<HeaderValue> = request
            .headers()
            .get_all(IF_NONE_MATCH)
            .iter()
            .cloned()
            .collect();
        ResponseFuture {
            state: State::Calling {
                future: self.inner.call(request),
                conditions: Conditions {
                    if_none_match,
                    head_request,
                    max_body: self.max_body,
                },
            },
        }
    }
}

/// What the response future needs of the request.
#[derive(Debug)]
struct Conditions {
    if_none_match: Vec<HeaderValue>,
    head_request: bool,
    max_body: usize,
}

pin_project! {
    /// The response future of [`ETag`].
    pub struct ResponseFuture<F, B: Body> {
        #[pin]
        state: State<F, B>,
    }
}

pin_project! {
    #[project = StateProj]
    enum State<F, B: Body> {
        // Not GET or HEAD: the response streams through untouched.
        Passthrough { #[pin] future: F },
        // Waiting for the inner service's response head.
        Calling { #[pin] future: F, conditions: Conditions },
        // Reading the body into memory to hash it.
        Collecting {
            head: Option<response::Parts>,
            body: Option<Pin<Box<B>>>,
            chunks: Vec<Bytes>,
            len: usize,
            conditions: Conditions,
        },
    }
}

impl<F, B: Body> fmt::Debug for ResponseFuture<F, B> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let state = match &self.state {
            State::Passthrough { .. } => "Passthrough",
            State::Calling { .. } => "Calling",
            State::Collecting { .. } => "Collecting",
        };
        f.debug_tuple("ResponseFuture").field(&state).finish()
    }
}

impl<F, B, E> Future for ResponseFuture<F, B>
where
    F: Future<Output = Result<Response<B>, E>>,
    B: Body,
{
    type Output = Result<Response<JsonBody<B>>, E>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let mut state = self.project().state;
        loop {
            match state.as_mut().project() {
                StateProj::Passthrough { future } => {
                    let response = ready!(future.poll(cx))?;
                    return Poll::Ready(Ok(response.map(JsonBody::passthrough)));
                }
                StateProj::Calling { future, conditions } => {
                    let response = ready!(future.poll(cx))?;
                    let (head, body) = response.into_parts();
                    if head.status != StatusCode::OK {
                        return Poll::Ready(Ok(passthrough(head, body)));
                    }
                    if let Some(etag) = head.headers.get(ETAG) {
                        // A tag of the upstream's own: kept, and answered for.
                        if answers_not_modified(&conditions.if_none_match, etag) {
                            return Poll::Ready(Ok(not_modified(head)));
                        }
                        return Poll::Ready(Ok(passthrough(head, body)));
                    }
                    if !is_bounded(&head, &body, conditions.max_body) {
                        return Poll::Ready(Ok(passthrough(head, body)));
                    }
                    if body.is_end_stream() {
                        // Never poll a body that has said it is over.
                        return Poll::Ready(Ok(finish(head, Vec::new(), 0, conditions)));
                    }
                    let conditions = std::mem::replace(
                        conditions,
                        Conditions {
                            if_none_match: Vec::new(),
                            head_request: false,
                            max_body: 0,
                        },
                    );
                    state.set(State::Collecting {
                        head: Some(head),
                        body: Some(Box::pin(body)),
                        chunks: Vec::new(),
                        len: 0,
                        conditions,
                    });
                }
                StateProj::Collecting {
                    head,
                    body,
                    chunks,
                    len,
                    conditions,
                } => {
                    let Some(stream) = body.as_mut() else {
                        panic!("ResponseFuture polled after completion");
                    };
                    let frame = ready!(stream.as_mut().poll_frame(cx));
                    let head_or_default = |head: &mut Option<response::Parts>| {
                        head.take()
                            .unwrap_or_else(|| Response::new(()).into_parts().0)
                    };
                    match frame {
                        Some(Ok(frame)) => match frame.into_data() {
                            Ok(mut data) => {
                                *len += data.remaining();
                                chunks.push(data.copy_to_bytes(data.remaining()));
                                if *len > conditions.max_body {
                                    // Grew past the bound: replayed, untagged.
                                    let body = JsonBody::replay(
                                        std::mem::take(chunks),
                                        None,
                                        None,
                                        body.take(),
                                    );
                                    return Poll::Ready(Ok(Response::from_parts(
                                        head_or_default(head),
                                        body,
                                    )));
                                }
                            }
                            Err(frame) => {
                                // Trailers can change what the body means: no tag.
                                let trailers = frame.into_trailers().ok();
                                let body = JsonBody::replay(
                                    std::mem::take(chunks),
                                    trailers,
                                    None,
                                    body.take(),
                                );
                                return Poll::Ready(Ok(Response::from_parts(
                                    head_or_default(head),
                                    body,
                                )));
                            }
                        },
                        Some(Err(error)) => {
                            *body = None;
                            let replay =
                                JsonBody::replay(std::mem::take(chunks), None, Some(error), None);
                            return Poll::Ready(Ok(Response::from_parts(
                                head_or_default(head),
                                replay,
                            )));
                        }
                        None => {
                            *body = None;
                            let head = head_or_default(head);
                            return Poll::Ready(Ok(finish(
                                head,
                                std::mem::take(chunks),
                                *len,
                                conditions,
                            )));
                        }
                    }
                }
            }
        }
    }
}

fn passthrough<B: Body>(head: response::Parts, body: B) -> Response<JsonBody<B>> {
    Response::from_parts(head, JsonBody::passthrough(body))
}

/// Whether the body may be read: its size is known (an exact size hint or a
/// `Content-Length`) and within `max_body`. A streaming body of unknown size (server-sent
/// events, a proxied chunked body) is never waited for.
fn is_bounded<B: Body>(head: &response::Parts, body: &B, max_body: usize) -> bool {
    let hint = body.size_hint();
    let declared = declared_length(&head.headers);
    let Some(known) = hint.exact().or(declared) else {
        return false;
    };
    known.max(hint.lower()).max(declared.unwrap_or(0)) <= max_body as u64
}

/// Tags the collected body (when it is the body GET would send) and answers `If-None-Match`.
fn finish<B: Body>(
    mut head: response::Parts,
    chunks: Vec<Bytes>,
    len: usize,
    conditions: &Conditions,
) -> Response<JsonBody<B>> {
    let body = concat(chunks, len);
    let declared = declared_length(&head.headers);
    // A body that disagrees with its Content-Length was cut short or padded upstream (or is
    // a bodiless HEAD); and a HEAD with an empty body and no length may stand for any GET.
    let is_gets_body = declared.is_none_or(|declared| declared == len as u64)
        && !(conditions.head_request && len == 0 && declared.is_none());
    if !is_gets_body {
        return Response::from_parts(head, JsonBody::full(body));
    }
    let etag = etag_of(&body);
    if answers_not_modified(&conditions.if_none_match, &etag) {
        head.headers.insert(ETAG, etag);
        return not_modified(head);
    }
    head.headers.insert(ETAG, etag);
    Response::from_parts(head, JsonBody::full(body))
}

/// Whether `If-None-Match` matches `etag` by weak comparison (or is `*`, and there is a
/// current representation, which a `200` is). A malformed `ETag` matches nothing.
fn answers_not_modified(if_none_match: &[HeaderValue], etag: &HeaderValue) -> bool {
    if if_none_match.is_empty() {
        return false;
    }
    parse_tag(etag.as_bytes()).is_some_and(|current| none_match_hits(if_none_match.iter(), current))
}

/// The `304` for a `200` head: the same fields but the content ones (RFC 9110 §15.4.5: a
/// `304` keeps `Cache-Control`, `Content-Location`, `Date`, `ETag`, `Expires` and `Vary`,
/// and describes no content), and no body.
fn not_modified<B: Body>(mut head: response::Parts) -> Response<JsonBody<B>> {
    head.status = StatusCode::NOT_MODIFIED;
    for name in [
        CONTENT_TYPE,
        CONTENT_LENGTH,
        CONTENT_ENCODING,
        CONTENT_LANGUAGE,
        CONTENT_RANGE,
        TRANSFER_ENCODING,
    ] {
        head.headers.remove(name);
    }
    Response::from_parts(head, JsonBody::full(Bytes::new()))
}

fn declared_length(headers: &HeaderMap) -> Option<u64> {
    headers
        .get(CONTENT_LENGTH)
        .and_then(|value| value.to_str().ok())
        .and_then(|value| value.parse::<u64>().ok())
}

fn concat(mut chunks: Vec<Bytes>, len: usize) -> Bytes {
    if chunks.len() <= 1 {
        return chunks.pop().unwrap_or_default();
    }
    let mut joined = Vec::with_capacity(len);
    for chunk in &chunks {
        joined.extend_from_slice(chunk);
    }
    joined.into()
}
