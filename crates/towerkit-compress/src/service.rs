//! The service and its response future.

use std::convert::Infallible;
use std::fmt;
use std::future::{Future, Ready, ready};
use std::pin::Pin;
use std::task::{Context, Poll};

use http::header::{ACCEPT_ENCODING, CONTENT_ENCODING, CONTENT_RANGE, VARY};
use http::{HeaderMap, HeaderValue, Request, Response, StatusCode};
use http_body::Body;
use pin_project_lite::pin_project;
use tower_http::BoxError;
use tower_http::compression::{
    Compression as HttpCompression, CompressionLevel, Predicate, ResponseFuture as HttpFuture,
};
use tower_service::Service;
use towerkit_http::lists_token;

use crate::body::{CompressionBody, Fused};
use crate::encoding::Encoding;
use crate::levels::Levels;
use crate::negotiate::negotiate;
use crate::predicate::{DefaultPredicate, has_no_transform};
use crate::variant::{restore_suffix, strip_variant_tags, suffix_etag};

/// The service produced by [`CompressionLayer`](crate::CompressionLayer).
#[derive(Debug, Clone)]
pub struct Compression<S, P = DefaultPredicate> {
    inner: S,
    levels: Levels,
    predicate: P,
}

impl<S, P> Compression<S, P> {
    pub(crate) fn from_config(inner: S, levels: Levels, predicate: P) -> Self {
        Self {
            inner,
            levels,
            predicate,
        }
    }

    towerkit_http::inner_accessors!(S);
}

impl<S, P, ReqBody, ResBody> Service<Request<ReqBody>> for Compression<S, P>
where
    S: Service<Request<ReqBody>, Response = Response<ResBody>>,
    ResBody: Body,
    ResBody::Error: Into<BoxError>,
    P: Predicate,
{
    type Response = Response<CompressionBody<ResBody>>;
    type Error = S::Error;
    type Future = ResponseFuture<S::Future, ResBody, P>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut request: Request<ReqBody>) -> Self::Future {
        let choice = negotiate(request.headers(), &self.levels);
        let revalidating =
            choice.and_then(|(encoding, _)| strip_variant_tags(request.headers_mut(), encoding));
        ResponseFuture {
            state: State::Inner {
                future: self.inner.call(request),
            },
            choice,
            revalidating,
            predicate: self.predicate.clone(),
        }
    }
}

/// tower-http's compression, dispatched for one response that is already produced: the
/// inner "service" hands back the response it is given as the request body.
type Dispatch<B> = HttpFuture<Ready<Result<Response<Fused<B>>, Infallible>>, Always>;

pin_project! {
    /// The response future of [`Compression`].
    pub struct ResponseFuture<F, B, P>
    where
        B: Body,
    {
        #[pin]
        state: State<F, B>,
        choice: Option<(Encoding, i32)>,
        // The request's `If-None-Match` lines before variant tags were turned into
        // identity tags: a `304` gets its variant's suffix back.
        revalidating: Option<Box<[HeaderValue]>>,
        predicate: P,
    }
}

pin_project! {
    #[project = StateProj]
    enum State<F, B>
    where
        B: Body,
    {
        Inner {
            #[pin]
            future: F,
        },
        Compressing {
            #[pin]
            future: Dispatch<B>,
            encoding: Encoding,
        },
    }
}

impl<F, B: Body, P> fmt::Debug for ResponseFuture<F, B, P> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ResponseFuture")
            .field("choice", &self.choice)
            .finish_non_exhaustive()
    }
}

impl<F, B, E, P> Future for ResponseFuture<F, B, P>
where
    F: Future<Output = Result<Response<B>, E>>,
    B: Body,
    B::Error: Into<BoxError>,
    P: Predicate,
{
    type Output = Result<Response<CompressionBody<B>>, E>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let mut this = self.project();
        loop {
            match this.state.as_mut().project() {
                StateProj::Inner { future } => {
                    let mut response = std::task::ready!(future.poll(cx))?;
                    add_vary(response.headers_mut());
                    if response.status() == StatusCode::NOT_MODIFIED
                        && let (Some(original), Some((encoding, _))) =
                            (this.revalidating.as_deref(), *this.choice)
                    {
                        restore_suffix(response.headers_mut(), original, encoding);
                    }
                    let encoding = match *this.choice {
                        Some((encoding, level)) if should_compress(&response, this.predicate) => {
                            (encoding, level)
                        }
                        _ => return Poll::Ready(Ok(response.map(CompressionBody::identity))),
                    };
                    // A HEAD response is compressed like its GET, so it gets the same headers;
                    // tower-http compresses as the body is polled, and a HEAD body is not.
                    let (encoding, level) = encoding;
                    let future = dispatch(response, encoding, level);
                    this.state.set(State::Compressing { future, encoding });
                }
                StateProj::Compressing { future, encoding } => {
                    let encoding = *encoding;
                    let response = match std::task::ready!(future.poll(cx)) {
                        Ok(response) => response,
                        Err(never) => match never {},
                    };
                    let (mut parts, body) = response.into_parts();
                    let applied = parts
                        .headers
                        .get(CONTENT_ENCODING)
                        .is_some_and(|value| value == encoding.as_str());
                    if applied {
                        suffix_etag(&mut parts.headers, encoding);
                    }
                    let body = CompressionBody::compressed(body, applied.then_some(encoding));
                    return Poll::Ready(Ok(Response::from_parts(parts, body)));
                }
            }
        }
    }
}

/// Hands `response` to tower-http's compression with only `encoding` offered, at `level`:
/// tower-http takes one level for every coding, so each response gets a single-coding
/// instance of it. The returned future is ready on its first poll.
fn dispatch<B>(response: Response<B>, encoding: Encoding, level: i32) -> Dispatch<B>
where
    B: Body,
{
    let mut compression = HttpCompression::new(Unwrap)
        .quality(CompressionLevel::Precise(level))
        .compress_when(Always);
    let mut request = Request::new(response.map(Fused::new));
    request
        .headers_mut()
        .insert(ACCEPT_ENCODING, HeaderValue::from_static(encoding.as_str()));
    compression.call(request)
}

/// The layer's own rules, then the predicate's.
fn should_compress<B: Body, P: Predicate>(response: &Response<B>, predicate: &P) -> bool {
    let headers = response.headers();
    let no_content = matches!(
        response.status(),
        StatusCode::NO_CONTENT | StatusCode::NOT_MODIFIED
    ) || response.status().is_informational();
    !no_content
        && !headers.contains_key(CONTENT_ENCODING)
        && !headers.contains_key(CONTENT_RANGE)
        && !has_no_transform(headers)
        && predicate.should_compress(response)
}

/// `Vary: Accept-Encoding` on every response: whether it is compressed depends on the
/// request, so a shared cache must key it by the header.
fn add_vary(headers: &mut HeaderMap) {
    if !lists_token(headers, &VARY, "accept-encoding") {
        headers.append(VARY, HeaderValue::from_static("accept-encoding"));
    }
}

/// The inner service of a dispatch: returns the response it receives as the request body.
#[derive(Debug, Clone, Copy)]
struct Unwrap;

impl<B> Service<Request<Response<B>>> for Unwrap {
    type Response = Response<B>;
    type Error = Infallible;
    type Future = Ready<Result<Response<B>, Infallible>>;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, request: Request<Response<B>>) -> Self::Future {
        ready(Ok(request.into_body()))
    }
}

/// The dispatch's predicate: the decision is already made.
#[derive(Debug, Clone, Copy)]
struct Always;

impl Predicate for Always {
    fn should_compress<B: Body>(&self, _: &Response<B>) -> bool {
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn vary_is_added_once() {
        let mut headers = HeaderMap::new();
        headers.insert(VARY, HeaderValue::from_static("origin"));
        add_vary(&mut headers);
        add_vary(&mut headers);
        let vary: Vec<_> = headers.get_all(VARY).iter().collect();
        assert_eq!(vary, ["origin", "accept-encoding"]);
    }

    #[test]
    fn vary_star_is_left_alone() {
        let mut headers = HeaderMap::new();
        headers.insert(VARY, HeaderValue::from_static("*"));
        add_vary(&mut headers);
        assert_eq!(headers.get_all(VARY).iter().count(), 1);
    }

    #[test]
    fn vary_is_added_when_only_a_longer_token_mentions_it() {
        let mut headers = HeaderMap::new();
        headers.insert(VARY, HeaderValue::from_static("x-accept-encoding-hint"));
        add_vary(&mut headers);
        let vary: Vec<_> = headers.get_all(VARY).iter().collect();
        assert_eq!(vary, ["x-accept-encoding-hint", "accept-encoding"]);
    }
}
