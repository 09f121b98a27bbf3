//! The layer, the service and its response future.

use std::convert::Infallible;
use std::fmt;
use std::future::{Future, Ready, ready};
use std::pin::Pin;
use std::task::{Context, Poll};

use http::header::{ACCEPT_ENCODING, CONTENT_ENCODING, CONTENT_RANGE, ETAG, VARY};
use http::{HeaderMap, HeaderValue, Request, Response, StatusCode};
use http_body::Body;
use pin_project_lite::pin_project;
use tower_http::BoxError;
use tower_http::compression::{
    Compression as HttpCompression, CompressionLevel, Predicate, ResponseFuture as HttpFuture,
};
use tower_layer::Layer;
use tower_service::Service;

use crate::body::{CompressionBody, Fused};
use crate::encoding::{Levels, negotiate};
use crate::predicate::{has_no_transform, lists_token};
use crate::{ConfigError, DefaultPredicate, Encoding};

/// A [`Layer`] that compresses responses with the coding the client prefers. See the
/// [crate docs](crate).
#[derive(Debug, Clone)]
pub struct CompressionLayer<P = DefaultPredicate> {
    levels: Levels,
    predicate: P,
}

impl Default for CompressionLayer {
    fn default() -> Self {
        Self::new()
    }
}

impl CompressionLayer {
    /// Every compiled-in coding at its default level (zstd 3, brotli 4, gzip 6, deflate 6,
    /// see [`Encoding::default_level`]) and the [`DefaultPredicate`]: bodies of 1 KiB and more,
    /// not already-compressed media types.
    pub fn new() -> Self {
        Self {
            levels: Levels::new(),
            predicate: DefaultPredicate::new(),
        }
    }

    /// The smallest body compressed, in bytes. Default: 1024 ([`crate::DEFAULT_MIN_SIZE`]).
    #[must_use]
    pub fn min_size(mut self, bytes: u64) -> Self {
        self.predicate = self.predicate.min_size(bytes);
        self
    }

    /// Media types never compressed; replaces [`crate::DEFAULT_SKIPPED_MEDIA_TYPES`]. See
    /// [`DefaultPredicate::skip_media_types`].
    pub fn skip_media_types<I, T>(mut self, types: I) -> Result<Self, ConfigError>
    where
        I: IntoIterator<Item = T>,
        T: AsRef<str>,
    {
        self.predicate = self.predicate.skip_media_types(types)?;
        Ok(self)
    }
}

impl<P> CompressionLayer<P> {
    /// Enables `encoding` at `level`. Defaults: see [`Encoding::default_level`]. Fails when the
    /// level is outside [`Encoding::levels`] or the coding's feature is off.
    pub fn level(mut self, encoding: Encoding, level: i32) -> Result<Self, ConfigError> {
        self.levels.set(encoding, level)?;
        Ok(self)
    }

    /// Never uses `encoding`. Default: every compiled-in coding is used. With every coding
    /// disabled the layer only adds `Vary: Accept-Encoding`.
    #[must_use]
    pub fn disable(mut self, encoding: Encoding) -> Self {
        self.levels.disable(encoding);
        self
    }

    /// The level `encoding` is applied at, `None` when it is disabled or not compiled in.
    pub fn level_of(&self, encoding: Encoding) -> Option<i32> {
        self.levels.get(encoding)
    }

    /// Replaces the [`DefaultPredicate`] with any tower-http [`Predicate`]. The layer's own
    /// rules (no second coding, no ranges, `no-transform`, no 1xx/204/304) still apply.
    pub fn compress_when<Q: Predicate>(self, predicate: Q) -> CompressionLayer<Q> {
        CompressionLayer {
            levels: self.levels,
            predicate,
        }
    }
}

impl<S, P: Clone> Layer<S> for CompressionLayer<P> {
    type Service = Compression<S, P>;

    fn layer(&self, inner: S) -> Self::Service {
        Compression {
            inner,
            levels: self.levels,
            predicate: self.predicate.clone(),
        }
    }
}

/// The service produced by [`CompressionLayer`].
#[derive(Debug, Clone)]
pub struct Compression<S, P = DefaultPredicate> {
    inner: S,
    levels: Levels,
    predicate: P,
}

impl<S> Compression<S> {
    /// Wraps `inner` with the default configuration ([`CompressionLayer::new`]).
    pub fn new(inner: S) -> Self {
        CompressionLayer::new().layer(inner)
    }

    /// The default layer, [`CompressionLayer::new`].
    pub fn layer() -> CompressionLayer {
        CompressionLayer::new()
    }
}

impl<S, P> Compression<S, P> {
    /// The inner service.
    pub fn get_ref(&self) -> &S {
        &self.inner
    }

    /// The inner service, mutably.
    pub fn get_mut(&mut self) -> &mut S {
        &mut self.inner
    }

    /// Consumes the wrapper, returning the inner service.
    pub fn into_inner(self) -> S {
        self.inner
    }
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

    fn call(&mut self, request: Request<ReqBody>) -> Self::Future {
        let choice = negotiate(request.headers(), &self.levels);
        ResponseFuture {
            state: State::Inner {
                future: self.inner.call(request),
            },
            choice,
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
                        weaken_etag(&mut parts.headers);
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

/// A compressed body is not byte-for-byte the representation a strong `ETag` names
/// (RFC 9110 §8.8.1), so `"x"` becomes `W/"x"`. A malformed tag is left as it is.
fn weaken_etag(headers: &mut HeaderMap) {
    let Some(etag) = headers.get(ETAG) else {
        return;
    };
    let bytes = etag.as_bytes();
    if !bytes.starts_with(b"\"") {
        return;
    }
    let mut weak = Vec::with_capacity(bytes.len() + 2);
    weak.extend_from_slice(b"W/");
    weak.extend_from_slice(bytes);
    if let Ok(weak) = HeaderValue::from_bytes(&weak) {
        headers.insert(ETAG, weak);
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
    fn strong_etag_becomes_weak() {
        let mut headers = HeaderMap::new();
        headers.insert(ETAG, HeaderValue::from_static("\"v1\""));
        weaken_etag(&mut headers);
        assert_eq!(headers[ETAG], "W/\"v1\"");
        weaken_etag(&mut headers);
        assert_eq!(headers[ETAG], "W/\"v1\"", "a weak tag stays as it is");
    }

    #[test]
    fn malformed_etag_is_left_alone() {
        let mut headers = HeaderMap::new();
        headers.insert(ETAG, HeaderValue::from_static("v1"));
        weaken_etag(&mut headers);
        assert_eq!(headers[ETAG], "v1");
    }

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
}
