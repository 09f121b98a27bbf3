//! `PaginateLayer` and its service `Paginate`: pages the JSON array a handler returned.

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

use http::{Request, Response, response};
use http_body::Body;
use pin_project_lite::pin_project;
use tower_http::add_extension::AddExtension;
use tower_layer::Layer;
use tower_service::Service;
use towerkit_json::{
    Decision, JsonBody, Malformed, RewriteJson, RewriteJsonLayer, RewritePolicy, Rewriter,
};

use crate::config::{EnvelopeNames, PaginationConfig, ParamNames, Settings, Style};
use crate::error::ConfigError;
use crate::page::Paginated;
use crate::pointer::JsonPointer;
use crate::request::Pagination;
use crate::slice::paginate;

/// A [`Layer`] that pages JSON arrays: it slices the array a handler returned per the
/// request's `page` / `offset` / `cursor` and `limit`, and wraps it in the envelope with
/// `Link` and `X-Total-Count` headers. See the [crate docs](crate).
///
/// [`PaginateLayer::new`] (or `default`) gives the defaults; [`PaginateLayer::builder`]
/// configures it and checks the configuration once, in
/// [`build`](PaginateLayerBuilder::build).
///
/// - Bad parameters get a 400 `application/problem+json` before the handler runs (see
///   [`Pagination`] for what is rejected).
/// - It puts its [`PaginationConfig`] into the request's extensions, where the
///   [`Pagination`] extractor finds it.
/// - A response marked [`Paginated`] (a [`Page`](crate::Page)) is left alone.
/// - Left alone too: anything [`towerkit_json::is_eligible`] rejects (non-2xx, not JSON,
///   encoded), a HEAD (whose `Content-Length` is removed when GET would be paged: see
///   [`towerkit_json`]), bodies over `max_body` (default 8 MiB), malformed JSON, a document
///   without an array at the configured pointer, and a request whose cursor is a handler's
///   keyset cursor.
#[derive(Debug, Clone)]
pub struct PaginateLayer {
    config: PaginationConfig,
    array_at: JsonPointer,
    max_body: usize,
}

impl Default for PaginateLayer {
    fn default() -> Self {
        Self::new()
    }
}

impl PaginateLayer {
    /// Pages arrays at the document root with the default configuration (page size 20, at
    /// most 100, a per-process cursor key), buffering at most 8 MiB.
    pub fn new() -> Self {
        Self {
            config: PaginationConfig::default(),
            array_at: JsonPointer::root(),
            max_body: towerkit_json::DEFAULT_MAX_BODY,
        }
    }

    /// Starts a configuration from the defaults of [`PaginateLayer::new`].
    pub fn builder() -> PaginateLayerBuilder {
        PaginateLayerBuilder {
            settings: Settings::default(),
            array_at: String::new(),
            max_body: towerkit_json::DEFAULT_MAX_BODY,
        }
    }

    /// The configuration shared with the [`Pagination`] extractor.
    pub fn config(&self) -> &PaginationConfig {
        &self.config
    }
}

/// Configures a [`PaginateLayer`]: infallible setters, each documenting its default, and one
/// [`build`](Self::build) that checks them all.
#[derive(Debug, Clone)]
#[must_use = "call `build` to get the layer"]
pub struct PaginateLayerBuilder {
    settings: Settings,
    array_at: String,
    max_body: usize,
}

impl PaginateLayerBuilder {
    /// The page size, in items, when the request names none. Default: 20.
    pub fn default_limit(mut self, items: u64) -> Self {
        self.settings.default_limit = items;
        self
    }

    /// The largest page size, in items. Default: 100. A larger requested size is clamped to
    /// it, or rejected with a 400 in strict mode.
    pub fn max_limit(mut self, items: u64) -> Self {
        self.settings.max_limit = items;
        self
    }

    /// Strict mode: a page size above the maximum is a 400 instead of being clamped.
    /// Default: off.
    pub fn strict(mut self, on: bool) -> Self {
        self.settings.strict = on;
        self
    }

    /// What a request without pagination parameters gets. Default: [`Style::Pages`].
    pub fn style(mut self, style: Style) -> Self {
        self.settings.style = style;
        self
    }

    /// The HMAC-SHA256 key cursors are signed with, at least
    /// [`MIN_CURSOR_KEY_LEN`](crate::MIN_CURSOR_KEY_LEN) bytes: set the same key on every
    /// instance (read it from a secret, not from the code). Default: none, and then
    /// [`build`](Self::build) refuses [`Style::Cursors`](crate::Style::Cursors) with
    /// [`ConfigError::MissingCursorKey`] unless
    /// [`cursor_key_per_process`](Self::cursor_key_per_process) opts out. In page style
    /// without a key, cursors a handler issues with [`Page::keyset`](crate::Page::keyset) are
    /// signed with a per-process key: set one there too when a handler issues cursors.
    pub fn cursor_key(mut self, key: impl Into<Vec<u8>>) -> Self {
        self.settings.cursor_key = Some(key.into());
        self
    }

    /// Signs cursors with a random key made once per process instead of a configured
    /// [`cursor_key`](Self::cursor_key): for a single instance only. Its cursors are
    /// rejected by every other instance (including one answering from a page another
    /// instance cached in a shared store) and after a restart. Without this or a key,
    /// [`build`](Self::build) refuses [`Style::Cursors`](crate::Style::Cursors). A
    /// configured key wins over it.
    pub fn cursor_key_per_process(mut self) -> Self {
        self.settings.cursor_key_per_process = true;
        self
    }

    /// The envelope member names. Default: [`EnvelopeNames::camel_case`].
    pub fn names(mut self, names: EnvelopeNames) -> Self {
        self.settings.names = names;
        self
    }

    /// The query parameter names. Default: [`ParamNames::default`].
    pub fn params(mut self, params: ParamNames) -> Self {
        self.settings.params = params;
        self
    }

    /// The origin (`https://api.example.com`) of the absolute URLs in `Link` headers.
    /// Default: none, and links are relative references (path and query, `</products?page=2>`,
    /// which RFC 8288 allows and clients resolve against the request URL). The origin is
    /// never taken from the request's `Host` header or absolute URI: a client controls both,
    /// and with a cache in front one forged `Host` would end up in everyone's links.
    pub fn base_url(mut self, origin: impl Into<String>) -> Self {
        self.settings.base_url = Some(origin.into());
        self
    }

    /// Query parameters that do not select or order items, so a cursor stays valid when
    /// they change. Every other non-pagination parameter is bound into cursors: a cursor
    /// used with a different filter or sort is a 400. Default: `["fields"]`.
    pub fn unbound_params<I, T>(mut self, names: I) -> Self
    where
        I: IntoIterator<Item = T>,
        T: Into<String>,
    {
        self.settings.unbound = names.into_iter().map(Into::into).collect();
        self
    }

    /// Pages the array at this JSON Pointer (`/items`) instead of a root array: it is
    /// sliced in place and the `pagination` member added to the object holding it.
    /// Default: the root (`""`). [`build`](Self::build) fails on a malformed pointer, or one
    /// whose last member is the envelope's `pagination` member.
    pub fn array_at(mut self, pointer: impl Into<String>) -> Self {
        self.array_at = pointer.into();
        self
    }

    /// The largest body, in bytes, buffered and paged; a larger one streams through
    /// unchanged. Default: 8 MiB ([`towerkit_json::DEFAULT_MAX_BODY`]). Not to be confused
    /// with the page sizes, which count items.
    pub fn max_body(mut self, bytes: usize) -> Self {
        self.max_body = bytes;
        self
    }

    /// Checks every setting and builds the layer.
    pub fn build(self) -> Result<PaginateLayer, ConfigError> {
        let config = self.settings.build()?;
        let array_at = JsonPointer::parse(&self.array_at)?;
        if array_at
            .segments()
            .last()
            .is_some_and(|last| *last == config.inner.names.pagination_raw)
        {
            return Err(ConfigError::InvalidPointer(self.array_at));
        }
        Ok(PaginateLayer {
            config,
            array_at,
            max_body: self.max_body,
        })
    }
}

impl<S> Layer<S> for PaginateLayer {
    type Service = Paginate<S>;

    fn layer(&self, inner: S) -> Self::Service {
        let policy = PaginatePolicy {
            config: self.config.clone(),
            array_at: self.array_at.clone(),
        };
        Paginate {
            inner: RewriteJsonLayer::new(policy)
                .max_body(self.max_body)
                .layer(AddExtension::new(inner, self.config.clone())),
        }
    }
}

/// The service made by [`PaginateLayer`].
#[derive(Debug, Clone)]
pub struct Paginate<S> {
    inner: RewriteJson<AddExtension<S, PaginationConfig>, PaginatePolicy>,
}

impl<S> Paginate<S> {
    /// A reference to the inner service.
    pub fn get_ref(&self) -> &S {
        self.inner.get_ref().get_ref()
    }

    /// A mutable reference to the inner service.
    pub fn get_mut(&mut self) -> &mut S {
        self.inner.get_mut().get_mut()
    }

    /// The inner service.
    pub fn into_inner(self) -> S {
        self.inner.into_inner().into_inner()
    }
}

impl<S, ReqBody, ResBody> Service<Request<ReqBody>> for Paginate<S>
where
    S: Service<Request<ReqBody>, Response = Response<ResBody>>,
    ResBody: Body,
{
    type Response = Response<JsonBody<ResBody>>;
    type Error = S::Error;
    type Future = PaginateFuture<S::Future, ResBody>;

    #[inline]
    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    #[inline]
    fn call(&mut self, request: Request<ReqBody>) -> Self::Future {
        PaginateFuture {
            inner: self.inner.call(request),
        }
    }
}

pin_project! {
    /// The response future of [`Paginate`].
    pub struct PaginateFuture<F, B: Body> {
        #[pin]
        inner: towerkit_json::ResponseFuture<F, B, PaginateRewriter>,
    }
}

impl<F, B: Body> fmt::Debug for PaginateFuture<F, B> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.inner.fmt(f)
    }
}

impl<F, B, E> Future for PaginateFuture<F, B>
where
    F: Future<Output = Result<Response<B>, E>>,
    B: Body,
{
    type Output = Result<Response<JsonBody<B>>, E>;

    #[inline]
    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        self.project().inner.poll(cx)
    }
}

/// The [`RewritePolicy`] behind [`PaginateLayer`].
#[derive(Debug, Clone)]
struct PaginatePolicy {
    config: PaginationConfig,
    array_at: JsonPointer,
}

impl<B> RewritePolicy<B> for PaginatePolicy {
    type Rewriter = PaginateRewriter;

    fn on_request(&self, request: &Request<B>) -> Decision<PaginateRewriter> {
        match Pagination::from_request(request, &self.config) {
            Ok(pagination) => Decision::Rewrite(PaginateRewriter {
                pagination,
                array_at: self.array_at.clone(),
            }),
            Err(problem) => Decision::Respond(problem.into_http_response()),
        }
    }
}

/// The [`Rewriter`] behind [`PaginateLayer`].
#[derive(Debug)]
struct PaginateRewriter {
    pagination: Pagination,
    array_at: JsonPointer,
}

impl Rewriter for PaginateRewriter {
    fn accepts(&self, head: &response::Parts) -> bool {
        head.extensions.get::<Paginated>().is_none()
    }

    fn rewrite(
        self,
        head: &mut response::Parts,
        json: &[u8],
        out: &mut Vec<u8>,
    ) -> Result<(), Malformed> {
        let info = paginate(json, out, &self.pagination, &self.array_at)
            .map_err(|error| error.into_malformed())?;
        info.set_headers(&mut head.headers);
        let items = if self.array_at.is_root() {
            self.pagination.config.inner.data_pointer.clone()
        } else {
            self.array_at
        };
        head.extensions.insert(Paginated::new(items));
        Ok(())
    }
}
