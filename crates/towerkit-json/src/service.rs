//! The generic JSON-rewriting service that the JSON layers are built from.

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll, ready};

use bytes::{Buf, Bytes};
use http::header::{CONTENT_ENCODING, CONTENT_LENGTH, CONTENT_TYPE};
use http::{HeaderValue, Method, Request, Response, StatusCode, response};
use http_body::Body;
use pin_project_lite::pin_project;
use tower_layer::Layer;
use tower_service::Service;
use towerkit_http::{media_type_essence, weaken_etag};

use crate::body::JsonBody;
use crate::scan::Malformed;

/// The default bound on how much of a response body a JSON layer buffers (`max_body`): 8 MiB.
pub const DEFAULT_MAX_BODY: usize = 8 * 1024 * 1024;

/// Decides, per request, what a JSON layer does with the response.
///
/// Implemented by each JSON layer's configuration (null-stripping, pagination, projection).
pub trait RewritePolicy<B> {
    /// The per-request state that rewrites the response body.
    type Rewriter: Rewriter;

    /// Looks at the request and decides: leave the response alone, rewrite it, or answer
    /// right away without calling the inner service (a 400 for bad parameters).
    fn on_request(&self, request: &Request<B>) -> Decision<Self::Rewriter>;
}

/// What [`RewritePolicy::on_request`] decided.
#[derive(Debug)]
pub enum Decision<R> {
    /// Call the inner service and stream its response through untouched.
    Skip,
    /// Call the inner service and rewrite its response if it is eligible JSON.
    Rewrite(R),
    /// Answer with this response; the inner service is not called.
    Respond(Response<Bytes>),
}

/// Rewrites one eligible JSON response body.
pub trait Rewriter: Send + 'static {
    /// A further check on the response head, after the shared eligibility rules
    /// ([`is_eligible`]); `false` streams the response through untouched.
    fn accepts(&self, head: &response::Parts) -> bool {
        let _ = head;
        true
    }

    /// Writes the rewritten document for `json` into `out` (empty, with capacity for about
    /// the input's size) and may adjust the head (add headers) once it knows it succeeds.
    /// On `Err` the original body is sent unchanged, whatever was written to `out`.
    fn rewrite(
        self,
        head: &mut response::Parts,
        json: &[u8],
        out: &mut Vec<u8>,
    ) -> Result<(), Malformed>;
}

/// Whether a response head is one the JSON layers may rewrite: a 2xx other than 204, 205 and
/// 206, a JSON media type (`application/json` or any `+json` suffix), and no
/// `Content-Encoding`. A HEAD response is never rewritten (it has no body); when its GET
/// would be, its `Content-Length` is removed (see the [crate docs](crate)).
pub fn is_eligible(head: &response::Parts) -> bool {
    head.status.is_success()
        && !matches!(
            head.status,
            StatusCode::NO_CONTENT | StatusCode::RESET_CONTENT | StatusCode::PARTIAL_CONTENT
        )
        && !head.headers.contains_key(CONTENT_ENCODING)
        && head
            .headers
            .get(CONTENT_TYPE)
            .is_some_and(is_json_media_type)
}

/// Whether a `Content-Type` value names JSON: `application/json` or a `+json` suffix,
/// parameters ignored, case-insensitive.
fn is_json_media_type(value: &HeaderValue) -> bool {
    let essence = media_type_essence(value);
    let essence = essence.as_bytes();
    essence.eq_ignore_ascii_case(b"application/json")
        || (essence.len() > 5
            && essence[essence.len() - 5..].eq_ignore_ascii_case(b"+json")
            && essence.contains(&b'/'))
}

/// A [`Layer`] that applies a [`RewritePolicy`] to JSON responses, buffering at most
/// `max_body` bytes of a body (default [`DEFAULT_MAX_BODY`]).
#[derive(Clone, Debug)]
pub struct RewriteJsonLayer<P> {
    policy: P,
    max_body: usize,
}

impl<P> RewriteJsonLayer<P> {
    /// A layer with the default buffer bound.
    pub fn new(policy: P) -> Self {
        Self {
            policy,
            max_body: DEFAULT_MAX_BODY,
        }
    }

    /// The largest body, in bytes, that is buffered and rewritten; a larger one streams
    /// through unchanged. Default: 8 MiB ([`DEFAULT_MAX_BODY`]).
    #[must_use]
    pub fn max_body(mut self, bytes: usize) -> Self {
        self.max_body = bytes;
        self
    }

    /// The policy this layer applies.
    pub fn policy(&self) -> &P {
        &self.policy
    }
}

impl<S, P: Clone> Layer<S> for RewriteJsonLayer<P> {
    type Service = RewriteJson<S, P>;

    fn layer(&self, inner: S) -> Self::Service {
        RewriteJson {
            inner,
            policy: self.policy.clone(),
            max_body: self.max_body,
        }
    }
}

/// The service made by [`RewriteJsonLayer`].
#[derive(Clone, Debug)]
pub struct RewriteJson<S, P> {
    inner: S,
    policy: P,
    max_body: usize,
}

impl<S, P> RewriteJson<S, P> {
    /// Wraps `inner` with `policy` and the default buffer bound.
    pub fn new(inner: S, policy: P) -> Self {
        Self {
            inner,
            policy,
            max_body: DEFAULT_MAX_BODY,
        }
    }

    towerkit_http::inner_accessors!(S);
}

impl<S, P, ReqBody, ResBody> Service<Request<ReqBody>> for RewriteJson<S, P>
where
    S: Service<Request<ReqBody>, Response = Response<ResBody>>,
    P: RewritePolicy<ReqBody>,
    ResBody: Body,
{
    type Response = Response<JsonBody<ResBody>>;
    type Error = S::Error;
    type Future = ResponseFuture<S::Future, ResBody, P::Rewriter>;

    #[inline]
    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: Request<ReqBody>) -> Self::Future {
        if request.method() == Method::HEAD {
            // The head must match what GET would send: see `head_response`.
            let state = match self.policy.on_request(&request) {
                Decision::Rewrite(rewriter) => State::Calling {
                    future: self.inner.call(request),
                    rewriter: Some(rewriter),
                    max_body: self.max_body,
                    head_request: true,
                },
                Decision::Skip | Decision::Respond(_) => State::Passthrough {
                    future: self.inner.call(request),
                },
            };
            return ResponseFuture { state };
        }
        let state = match self.policy.on_request(&request) {
            Decision::Skip => State::Passthrough {
                future: self.inner.call(request),
            },
            Decision::Respond(response) => State::Ready {
                response: Some(response),
            },
            Decision::Rewrite(rewriter) => State::Calling {
                future: self.inner.call(request),
                rewriter: Some(rewriter),
                max_body: self.max_body,
                head_request: false,
            },
        };
        ResponseFuture { state }
    }
}

pin_project! {
    /// The response future of [`RewriteJson`].
    pub struct ResponseFuture<F, B: Body, R> {
        #[pin]
        state: State<F, B, R>,
    }
}

pin_project! {
    #[project = StateProj]
    enum State<F, B: Body, R> {
        // The response streams through untouched.
        Passthrough { #[pin] future: F },
        // Answered without calling the inner service.
        Ready { response: Option<Response<Bytes>> },
        // Waiting for the inner service's response head.
        Calling {
            #[pin] future: F,
            rewriter: Option<R>,
            max_body: usize,
            // A HEAD request: see `head_response`.
            head_request: bool,
        },
        // Reading the body into memory.
        Collecting {
            head: Option<response::Parts>,
            body: Option<Pin<Box<B>>>,
            chunks: Vec<Bytes>,
            len: usize,
            rewriter: Option<R>,
            max_body: usize,
            head_request: bool,
        },
    }
}

impl<F, B: Body, R> fmt::Debug for ResponseFuture<F, B, R> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let state = match &self.state {
            State::Passthrough { .. } => "Passthrough",
            State::Ready { .. } => "Ready",
            State::Calling { .. } => "Calling",
            State::Collecting { .. } => "Collecting",
        };
        f.debug_tuple("ResponseFuture").field(&state).finish()
    }
}

impl<F, B, E, R> Future for ResponseFuture<F, B, R>
where
    F: Future<Output = Result<Response<B>, E>>,
    B: Body,
    R: Rewriter,
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
                StateProj::Ready { response } => {
                    let response = response.take().unwrap_or_default();
                    return Poll::Ready(Ok(response.map(JsonBody::full)));
                }
                StateProj::Calling {
                    future,
                    rewriter,
                    max_body,
                    head_request,
                } => {
                    let response = ready!(future.poll(cx))?;
                    let max_body = *max_body;
                    let head_request = *head_request;
                    let (head, body) = response.into_parts();
                    let rewriter = match rewriter.take() {
                        Some(rewriter) if wants_body(&head, &body, &rewriter, max_body) => rewriter,
                        Some(rewriter) if head_request => {
                            let mut head = head;
                            let body = if fix_bodiless_head(&mut head, &rewriter, max_body) {
                                JsonBody::without_size(body)
                            } else {
                                JsonBody::passthrough(body)
                            };
                            return Poll::Ready(Ok(Response::from_parts(head, body)));
                        }
                        _ => {
                            return Poll::Ready(Ok(Response::from_parts(
                                head,
                                JsonBody::passthrough(body),
                            )));
                        }
                    };
                    state.set(State::Collecting {
                        head: Some(head),
                        body: Some(Box::pin(body)),
                        chunks: Vec::new(),
                        len: 0,
                        rewriter: Some(rewriter),
                        max_body,
                        head_request,
                    });
                }
                StateProj::Collecting {
                    head,
                    body,
                    chunks,
                    len,
                    rewriter,
                    max_body,
                    head_request,
                } => {
                    let Some(stream) = body.as_mut() else {
                        panic!("ResponseFuture polled after completion");
                    };
                    let frame = ready!(stream.as_mut().poll_frame(cx));
                    let mut give_up =
                        |trailers,
                         error,
                         body: &mut Option<Pin<Box<B>>>,
                         chunks: &mut Vec<Bytes>| {
                            let head = head
                                .take()
                                .unwrap_or_else(|| Response::new(()).into_parts().0);
                            let body = JsonBody::replay(
                                std::mem::take(chunks),
                                trailers,
                                error,
                                body.take(),
                            );
                            Response::from_parts(head, body)
                        };
                    match frame {
                        Some(Ok(frame)) => match frame.into_data() {
                            Ok(mut data) => {
                                *len += data.remaining();
                                chunks.push(data.copy_to_bytes(data.remaining()));
                                if *len > *max_body {
                                    return Poll::Ready(Ok(give_up(None, None, body, chunks)));
                                }
                            }
                            Err(frame) => {
                                // Trailers end the body: nothing JSON-shaped to rewrite them into,
                                // so the response goes out as it came.
                                let trailers = frame.into_trailers().ok();
                                return Poll::Ready(Ok(give_up(trailers, None, body, chunks)));
                            }
                        },
                        Some(Err(error)) => {
                            return Poll::Ready(Ok(give_up(None, Some(error), body, chunks)));
                        }
                        None => {
                            let mut head = head
                                .take()
                                .unwrap_or_else(|| Response::new(()).into_parts().0);
                            let input = concat(std::mem::take(chunks), *len);
                            let rewriter = rewriter.take();
                            *body = None;
                            // A HEAD's empty body, from a body type that did not say so up front.
                            if *head_request
                                && *len == 0
                                && rewriter
                                    .as_ref()
                                    .is_some_and(|r| fix_bodiless_head(&mut head, r, *max_body))
                            {
                                return Poll::Ready(Ok(Response::from_parts(
                                    head,
                                    JsonBody::empty_without_size(),
                                )));
                            }
                            // A body longer or shorter than its Content-Length was cut short or
                            // padded upstream; rewritten, it would reach the client looking whole.
                            let body = match rewriter {
                                Some(rewriter) if declared_length_is(&head, *len) => {
                                    apply(rewriter, &mut head, input)
                                }
                                _ => input,
                            };
                            return Poll::Ready(Ok(Response::from_parts(
                                head,
                                JsonBody::full(body),
                            )));
                        }
                    }
                }
            }
        }
    }
}

/// Whether a response is worth reading into memory for `rewriter`.
fn wants_body<B: Body, R: Rewriter>(
    head: &response::Parts,
    body: &B,
    rewriter: &R,
    max_body: usize,
) -> bool {
    if !is_eligible(head) || !rewriter.accepts(head) || body.is_end_stream() {
        return false;
    }
    let declared = declared_length(head);
    let lower = body.size_hint().lower();
    declared.unwrap_or(lower).max(lower) <= max_body as u64
}

/// Whether the GET of a resource whose HEAD answered `head` would be read and rewritten:
/// eligible, accepted by the rewriter, and not declared larger than `max_body`. A HEAD's
/// body is empty whatever GET's is, so only the head counts.
fn get_would_be_rewritten<R: Rewriter>(
    head: &response::Parts,
    rewriter: &R,
    max_body: usize,
) -> bool {
    is_eligible(head)
        && rewriter.accepts(head)
        && declared_length(head).is_none_or(|declared| declared <= max_body as u64)
}

/// Fixes the head of a HEAD response that did not come with a body to rewrite (a HEAD's body is empty; axum,
/// which strips it only outside the route's layers, hands the layer GET's body, and that
/// one is rewritten as for GET, setting GET's `Content-Length`). When GET would be
/// rewritten, the rewritten length cannot be known without the body, so `Content-Length`
/// goes (RFC 9110 §8.6 lets a HEAD omit it) and the body announces no size from which a
/// server or framework could write one back; a strong `ETag` becomes weak, as GET's does.
/// Returns whether it changed the head (and so the body must announce no size).
fn fix_bodiless_head<R: Rewriter>(
    head: &mut response::Parts,
    rewriter: &R,
    max_body: usize,
) -> bool {
    if !get_would_be_rewritten(head, rewriter, max_body) {
        return false;
    }
    head.headers.remove(CONTENT_LENGTH);
    weaken_etag(&mut head.headers);
    true
}

/// The response's `Content-Length`, when it has a valid one.
fn declared_length(head: &response::Parts) -> Option<u64> {
    head.headers
        .get(CONTENT_LENGTH)
        .and_then(|value| value.to_str().ok())
        .and_then(|value| value.parse::<u64>().ok())
}

/// Whether the response declares no `Content-Length`, or declares exactly `len`.
fn declared_length_is(head: &response::Parts, len: usize) -> bool {
    head.headers.get(CONTENT_LENGTH).is_none_or(|value| {
        value
            .to_str()
            .ok()
            .and_then(|value| value.parse::<u64>().ok())
            == Some(len as u64)
    })
}

fn concat(mut chunks: Vec<Bytes>, len: usize) -> Bytes {
    if chunks.len() == 1 {
        return chunks.pop().unwrap_or_default();
    }
    let mut joined = Vec::with_capacity(len);
    for chunk in &chunks {
        joined.extend_from_slice(chunk);
    }
    joined.into()
}

/// Runs the rewriter; on success fixes the framing headers, on failure keeps everything as it was.
fn apply<R: Rewriter>(rewriter: R, head: &mut response::Parts, input: Bytes) -> Bytes {
    let mut out = Vec::with_capacity(input.len());
    match rewriter.rewrite(head, &input, &mut out) {
        Ok(()) => {
            head.headers
                .insert(CONTENT_LENGTH, HeaderValue::from(out.len()));
            weaken_etag(&mut head.headers);
            out.into()
        }
        Err(_) => input,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn head(status: u16, content_type: Option<&str>) -> response::Parts {
        let mut builder = Response::builder().status(status);
        if let Some(content_type) = content_type {
            builder = builder.header(CONTENT_TYPE, content_type);
        }
        builder.body(()).unwrap_or_default().into_parts().0
    }

    #[test]
    fn json_media_types_are_recognised() {
        for (value, expected) in [
            ("application/json", true),
            ("Application/JSON; charset=utf-8", true),
            ("application/problem+json", true),
            ("application/vnd.api+json", true),
            ("text/json", false),
            ("text/html", false),
            ("+json", false),
            ("application/jsonp", false),
        ] {
            assert_eq!(
                is_json_media_type(&HeaderValue::from_static(value)),
                expected,
                "{value}"
            );
        }
    }

    #[test]
    fn only_plain_successful_json_is_eligible() {
        assert!(is_eligible(&head(200, Some("application/json"))));
        assert!(is_eligible(&head(201, Some("application/json"))));
        assert!(!is_eligible(&head(204, Some("application/json"))));
        assert!(!is_eligible(&head(206, Some("application/json"))));
        assert!(!is_eligible(&head(404, Some("application/json"))));
        assert!(!is_eligible(&head(200, Some("text/plain"))));
        assert!(!is_eligible(&head(200, None)));
        let mut gzipped = head(200, Some("application/json"));
        gzipped
            .headers
            .insert(CONTENT_ENCODING, HeaderValue::from_static("gzip"));
        assert!(!is_eligible(&gzipped));
    }

    /// Wraps JSON in `[...]`.
    #[derive(Clone)]
    struct Wrap;

    impl<B> RewritePolicy<B> for Wrap {
        type Rewriter = Wrap;
        fn on_request(&self, _: &Request<B>) -> Decision<Wrap> {
            Decision::Rewrite(Wrap)
        }
    }

    impl Rewriter for Wrap {
        fn rewrite(
            self,
            _: &mut response::Parts,
            json: &[u8],
            out: &mut Vec<u8>,
        ) -> Result<(), Malformed> {
            crate::scan::validate(json)?;
            out.push(b'[');
            out.extend_from_slice(json);
            out.push(b']');
            Ok(())
        }
    }

    async fn wrap(body: &'static str, content_length: &str) -> (String, String) {
        use http_body_util::{BodyExt, Full};
        use tower::{ServiceExt, service_fn};
        let content_length = content_length.to_owned();
        let upstream = service_fn(move |_: Request<()>| {
            let response = Response::builder()
                .header(CONTENT_TYPE, "application/json")
                .header(CONTENT_LENGTH, content_length.clone())
                .body(Full::new(Bytes::from_static(body.as_bytes())))
                .unwrap();
            async move { Ok::<_, std::convert::Infallible>(response) }
        });
        let service = RewriteJsonLayer::new(Wrap).layer(upstream);
        let response = service.oneshot(Request::new(())).await.unwrap();
        let length = response.headers()[CONTENT_LENGTH]
            .to_str()
            .unwrap()
            .to_owned();
        let body = response.into_body().collect().await.unwrap().to_bytes();
        (String::from_utf8(body.to_vec()).unwrap(), length)
    }

    #[tokio::test]
    async fn a_body_that_disagrees_with_its_content_length_passes_through() {
        assert_eq!(
            wrap("12345", "5").await,
            ("[12345]".to_owned(), "7".to_owned())
        );
        // "123" of a declared "12345" is valid JSON: only the length shows the truncation.
        assert_eq!(wrap("123", "5").await, ("123".to_owned(), "5".to_owned()));
        assert_eq!(
            wrap("[1,2]", "3").await,
            ("[1,2]".to_owned(), "3".to_owned())
        );
        assert_eq!(
            wrap("[1,2]", "five").await,
            ("[1,2]".to_owned(), "five".to_owned())
        );
    }

    /// The `Content-Length` and `ETag` of a HEAD answered by an upstream with `content_type`
    /// and `Content-Length: content_length` (and an empty body, as a HEAD's is), through the
    /// layer.
    async fn head_through_wrap(
        content_type: &'static str,
        content_length: &'static str,
        max_body: usize,
    ) -> (Option<String>, Option<String>) {
        use http_body_util::Empty;
        use tower::{ServiceExt, service_fn};
        let upstream = service_fn(move |_: Request<()>| {
            let response = Response::builder()
                .header(CONTENT_TYPE, content_type)
                .header(CONTENT_LENGTH, content_length)
                .header(http::header::ETAG, "\"v1\"")
                .body(Empty::<Bytes>::new())
                .unwrap();
            async move { Ok::<_, std::convert::Infallible>(response) }
        });
        let service = RewriteJsonLayer::new(Wrap)
            .max_body(max_body)
            .layer(upstream);
        let request = Request::head("/").body(()).unwrap();
        let response = service.oneshot(request).await.unwrap();
        let header = |name| {
            response
                .headers()
                .get(name)
                .map(|value: &HeaderValue| value.to_str().unwrap().to_owned())
        };
        (header(CONTENT_LENGTH), header(http::header::ETAG))
    }

    #[tokio::test]
    async fn a_head_whose_get_would_be_rewritten_carries_no_content_length() {
        // GET of the same resource answers `[...]` with a length of 7, not 5.
        let (length, etag) = head_through_wrap("application/json", "5", DEFAULT_MAX_BODY).await;
        assert_eq!(length, None, "the un-rewritten length would be wrong");
        assert_eq!(etag.as_deref(), Some("W/\"v1\""), "as GET's");
    }

    #[tokio::test]
    async fn a_head_answered_with_the_full_body_gets_the_content_length_of_get() {
        use http_body_util::Full;
        use tower::{ServiceExt, service_fn};
        // As axum does inside a route's layers: HEAD runs the GET handler, body and all.
        let upstream = service_fn(|_: Request<()>| async {
            let response = Response::builder()
                .header(CONTENT_TYPE, "application/json")
                .header(CONTENT_LENGTH, "5")
                .body(Full::new(Bytes::from_static(b"[1,2]")))
                .unwrap();
            Ok::<_, std::convert::Infallible>(response)
        });
        let service = RewriteJsonLayer::new(Wrap).layer(upstream);
        let request = Request::head("/").body(()).unwrap();
        let response = service.oneshot(request).await.unwrap();
        assert_eq!(
            response.headers()[CONTENT_LENGTH],
            "7",
            "as GET's `[[1,2]]`"
        );
    }

    #[tokio::test]
    async fn a_bodiless_head_announces_no_size() {
        use http_body_util::Empty;
        use tower::{ServiceExt, service_fn};
        let upstream = service_fn(|_: Request<()>| async {
            let response = Response::builder()
                .header(CONTENT_TYPE, "application/json")
                .header(CONTENT_LENGTH, "5")
                .body(Empty::<Bytes>::new())
                .unwrap();
            Ok::<_, std::convert::Infallible>(response)
        });
        let service = RewriteJsonLayer::new(Wrap).layer(upstream);
        let response = service
            .oneshot(Request::head("/").body(()).unwrap())
            .await
            .unwrap();
        assert!(response.headers().get(CONTENT_LENGTH).is_none());
        assert_eq!(response.body().size_hint().exact(), None);
    }

    #[tokio::test]
    async fn a_head_whose_get_would_pass_through_keeps_its_content_length() {
        let text = head_through_wrap("text/plain", "5", DEFAULT_MAX_BODY).await;
        assert_eq!(text, (Some("5".to_owned()), Some("\"v1\"".to_owned())));
        let too_large = head_through_wrap("application/json", "5000", 1000).await;
        assert_eq!(too_large.0.as_deref(), Some("5000"));
    }

    /// The `ETag` a response tagged `etag` leaves the layer with, once rewritten.
    async fn etag_after_rewrite(etag: &'static str) -> String {
        use http_body_util::Full;
        use tower::{ServiceExt, service_fn};
        let upstream = service_fn(move |_: Request<()>| {
            let response = Response::builder()
                .header(CONTENT_TYPE, "application/json")
                .header(http::header::ETAG, etag)
                .body(Full::new(Bytes::from_static(b"[1]")))
                .unwrap();
            async move { Ok::<_, std::convert::Infallible>(response) }
        });
        let service = RewriteJsonLayer::new(Wrap).layer(upstream);
        let response = service.oneshot(Request::new(())).await.unwrap();
        assert_eq!(
            response.headers()[CONTENT_LENGTH],
            "5",
            "the body was rewritten"
        );
        response.headers()[http::header::ETAG]
            .to_str()
            .unwrap()
            .to_owned()
    }

    #[tokio::test]
    async fn strong_etags_become_weak() {
        assert_eq!(etag_after_rewrite("\"v1\"").await, "W/\"v1\"");
        assert_eq!(etag_after_rewrite("W/\"v1\"").await, "W/\"v1\"");
    }

    #[tokio::test]
    async fn a_malformed_etag_passes_through_untouched() {
        // The shared `towerkit_http::weaken_etag` behaviour: this layer used to prefix `W/`
        // to anything, making `W/v1` out of a value that was never an entity tag.
        assert_eq!(etag_after_rewrite("v1").await, "v1");
    }
}
