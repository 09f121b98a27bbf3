//! `SelectFieldsLayer` and its service `SelectFields`: applies the request's `fields`
//! selection to JSON responses.

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use http::header::{CONTENT_TYPE, ETAG, LAST_MODIFIED, LINK};
use http::{HeaderValue, Request, Response, StatusCode, response};
use http_body::Body;
use pin_project_lite::pin_project;
use tower_http::add_extension::AddExtension;
use tower_layer::Layer;
use tower_service::Service;
use towerkit_json::problem::PROBLEM_JSON;
use towerkit_json::{
    Decision, JsonBody, Malformed, Problem, RewriteJson, RewriteJsonLayer, RewritePolicy, Rewriter,
};

use crate::envelope::X_TOTAL_COUNT;
use crate::error::ConfigError;
use crate::fields::{FieldsConfig, FieldsSettings, Selection, project, selection_from_query};
use crate::page::Paginated;

/// A [`Layer`] that applies the request's `fields` selection to JSON responses. See the
/// [crate docs](crate) and [`Selection`] for the grammar and semantics.
///
/// [`SelectFieldsLayer::new`] (or `default`) gives the defaults; [`SelectFieldsLayer::builder`]
/// configures it and checks the configuration once, in
/// [`build`](SelectFieldsLayerBuilder::build).
///
/// - Without a `fields` parameter (or with an empty one) responses stream through.
/// - A malformed expression, or one over the limits, gets a 400
///   `application/problem+json` naming the parameter and the column, before the handler runs.
/// - It puts its [`FieldsConfig`] into the request's extensions, where the
///   [`Fields`](crate::Fields) extractor finds it.
/// - A response marked [`Paginated`] has the selection applied to each item of the
///   envelope; the envelope's other members stay.
/// - Strict mode: a field that matches nothing, where objects were examined for it,
///   turns the response into a 400 naming the fields (validators and pagination headers
///   are removed).
/// - Left alone: what [`towerkit_json::is_eligible`] rejects, bodies over `max_body`
///   (default 8 MiB), malformed JSON, and a marked response without an array at its items
///   pointer.
#[derive(Debug, Clone)]
pub struct SelectFieldsLayer {
    config: FieldsConfig,
    max_body: usize,
}

impl Default for SelectFieldsLayer {
    fn default() -> Self {
        Self::new()
    }
}

impl SelectFieldsLayer {
    /// Projects responses per the `fields` parameter with the default limits, buffering at
    /// most 8 MiB.
    pub fn new() -> Self {
        Self {
            config: FieldsConfig::default(),
            max_body: towerkit_json::DEFAULT_MAX_BODY,
        }
    }

    /// Starts a configuration from the defaults of [`SelectFieldsLayer::new`].
    pub fn builder() -> SelectFieldsLayerBuilder {
        SelectFieldsLayerBuilder {
            settings: FieldsSettings::default(),
            max_body: towerkit_json::DEFAULT_MAX_BODY,
        }
    }

    /// The configuration shared with the [`Fields`](crate::Fields) extractor.
    pub fn config(&self) -> &FieldsConfig {
        &self.config
    }
}

/// Configures a [`SelectFieldsLayer`]: infallible setters, each documenting its default, and
/// one [`build`](Self::build) that checks them all.
#[derive(Debug, Clone)]
#[must_use = "call `build` to get the layer"]
pub struct SelectFieldsLayerBuilder {
    settings: FieldsSettings,
    max_body: usize,
}

impl SelectFieldsLayerBuilder {
    /// The query parameter holding the expression. Default: `fields`.
    pub fn param(mut self, name: impl Into<String>) -> Self {
        self.settings.param = name.into();
        self
    }

    /// Strict mode: a named field that no object of the response has, where objects were
    /// examined for it, makes the response a 400 instead of being ignored. Default: off.
    pub fn strict(mut self, on: bool) -> Self {
        self.settings.strict = on;
        self
    }

    /// The longest expression, in bytes after percent-decoding. Default: 1024.
    pub fn max_length(mut self, bytes: usize) -> Self {
        self.settings.max_length = bytes;
        self
    }

    /// The deepest path, in segments. Default: 8.
    pub fn max_depth(mut self, segments: usize) -> Self {
        self.settings.max_depth = segments;
        self
    }

    /// The most distinct path segments in one expression (a tree of includes plus a tree
    /// of exclusions). Default: 64, at most [`MAX_NODES`](crate::MAX_NODES).
    pub fn max_nodes(mut self, nodes: usize) -> Self {
        self.settings.max_nodes = nodes;
        self
    }

    /// The largest response body, in bytes, buffered and projected; a larger one streams
    /// through unchanged. Default: 8 MiB ([`towerkit_json::DEFAULT_MAX_BODY`]).
    pub fn max_body(mut self, bytes: usize) -> Self {
        self.max_body = bytes;
        self
    }

    /// Checks every setting and builds the layer.
    pub fn build(self) -> Result<SelectFieldsLayer, ConfigError> {
        Ok(SelectFieldsLayer {
            config: self.settings.build()?,
            max_body: self.max_body,
        })
    }
}

impl<S> Layer<S> for SelectFieldsLayer {
    type Service = SelectFields<S>;

    fn layer(&self, inner: S) -> Self::Service {
        let policy = SelectFieldsPolicy {
            config: self.config.clone(),
        };
        SelectFields {
            inner: RewriteJsonLayer::new(policy)
                .max_body(self.max_body)
                .layer(AddExtension::new(inner, self.config.clone())),
        }
    }
}

/// The service made by [`SelectFieldsLayer`].
#[derive(Debug, Clone)]
pub struct SelectFields<S> {
    inner: RewriteJson<AddExtension<S, FieldsConfig>, SelectFieldsPolicy>,
}

impl<S> SelectFields<S> {
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

impl<S, ReqBody, ResBody> Service<Request<ReqBody>> for SelectFields<S>
where
    S: Service<Request<ReqBody>, Response = Response<ResBody>>,
    ResBody: Body,
{
    type Response = Response<JsonBody<ResBody>>;
    type Error = S::Error;
    type Future = SelectFieldsFuture<S::Future, ResBody>;

    #[inline]
    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    #[inline]
    fn call(&mut self, request: Request<ReqBody>) -> Self::Future {
        SelectFieldsFuture {
            inner: self.inner.call(request),
        }
    }
}

pin_project! {
    /// The response future of [`SelectFields`].
    pub struct SelectFieldsFuture<F, B: Body> {
        #[pin]
        inner: towerkit_json::ResponseFuture<F, B, SelectFieldsRewriter>,
    }
}

impl<F, B: Body> fmt::Debug for SelectFieldsFuture<F, B> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.inner.fmt(f)
    }
}

impl<F, B, E> Future for SelectFieldsFuture<F, B>
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

/// The [`RewritePolicy`] behind [`SelectFieldsLayer`].
#[derive(Debug, Clone)]
struct SelectFieldsPolicy {
    config: FieldsConfig,
}

impl<B> RewritePolicy<B> for SelectFieldsPolicy {
    type Rewriter = SelectFieldsRewriter;

    fn on_request(&self, request: &Request<B>) -> Decision<SelectFieldsRewriter> {
        match selection_from_query(request.uri(), &self.config) {
            Ok(None) => Decision::Skip,
            Ok(Some(selection)) => Decision::Rewrite(SelectFieldsRewriter {
                selection,
                config: self.config.clone(),
            }),
            Err(problem) => Decision::Respond(problem.into_http_response()),
        }
    }
}

/// The [`Rewriter`] behind [`SelectFieldsLayer`].
#[derive(Debug)]
struct SelectFieldsRewriter {
    selection: Arc<Selection>,
    config: FieldsConfig,
}

impl Rewriter for SelectFieldsRewriter {
    fn rewrite(
        self,
        head: &mut response::Parts,
        json: &[u8],
        out: &mut Vec<u8>,
    ) -> Result<(), Malformed> {
        let items = head
            .extensions
            .get::<Paginated>()
            .map(|marker| marker.items().clone());
        let projection = project(json, out, &self.selection, items.as_ref())
            .map_err(|error| error.into_malformed())?;
        if self.config.is_strict() && !projection.unknown().is_empty() {
            let param = self.config.param();
            let unknown = projection.unknown().join(", ");
            let problem = Problem::bad_request(format!("{param} names unknown fields: {unknown}"))
                .with_invalid_param(param, format!("no such fields: {unknown}"));
            out.clear();
            out.extend_from_slice(&problem.to_bytes());
            head.status = StatusCode::BAD_REQUEST;
            head.headers
                .insert(CONTENT_TYPE, HeaderValue::from_static(PROBLEM_JSON));
            for name in [ETAG, LAST_MODIFIED, LINK, X_TOTAL_COUNT] {
                head.headers.remove(name);
            }
            head.extensions.remove::<Paginated>();
        }
        Ok(())
    }
}
