//! `StripNullsLayer`: removes `null` members from JSON responses.
//!
//! APIs built on structs with `Option` fields send `"discount": null` for every absent
//! value; clients rarely need them and they can make up a fifth of a payload. This layer
//! removes object members whose value is `null`, at any depth, with a streaming byte-level
//! transform: member order, numbers and strings are copied exactly as the handler wrote them.
//!
//! What it leaves alone, streamed through untouched:
//! - responses that are not eligible JSON (see [`towerkit_json::is_eligible`]: non-2xx,
//!   204/205/206, not `application/json` or `+json`, already `Content-Encoding`d);
//! - HEAD responses, except that when GET would be stripped their `Content-Length` (the
//!   unstripped length) is removed, so a HEAD never announces a length GET does not send;
//! - media types where `null` means something: `application/merge-patch+json` (null deletes
//!   a member) and `application/vnd.api+json`, unless configured otherwise;
//! - bodies over `max_body` (default 8 MiB) and malformed JSON.
//!
//! Nulls inside arrays are kept by default, because removing them shifts indices.
//!
//! ```
//! use axum::{Json, Router, routing::get};
//! use towerkit_nulls::StripNullsLayer;
//! # use http_body_util::BodyExt;
//! # use tower::ServiceExt;
//!
//! let app = Router::new()
//!     .route("/product", get(|| async {
//!         Json(serde_json::json!({"id": 1, "discount": null, "tags": [null]}))
//!     }))
//!     .layer(StripNullsLayer::new());
//! # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
//! let response = app.oneshot(http::Request::get("/product").body(axum::body::Body::empty()).unwrap()).await.unwrap();
//! let body = response.into_body().collect().await.unwrap().to_bytes();
//! assert_eq!(body, r#"{"id":1,"tags":[null]}"#);
//! # });
//! ```
//!
//! Customised: drop nulls in arrays too, drop members left empty, keep the nulls of one
//! member, and buffer at most 1 MiB. The keep paths are checked by `build`, which returns a
//! [`ConfigError`] for a malformed one.
//!
//! ```
//! use towerkit_nulls::StripNullsLayer;
//!
//! let layer = StripNullsLayer::builder()
//!     .arrays(true)
//!     .empty(true)
//!     .keep(["/data/*/middle_name"])
//!     .max_body(1024 * 1024)
//!     .build()
//!     .expect("valid JSON Pointers");
//! # let _ = layer;
//! assert!(StripNullsLayer::builder().keep(["no-slash"]).build().is_err());
//! ```
//!
//! # Production checklist
//!
//! - **Stores:** nothing between requests.
//! - **Buffers:** up to `max_body` bytes (default 8 MiB) of each eligible JSON response;
//!   larger bodies stream through unchanged.
//! - **Keys on:** nothing; the response's media type decides (merge-patch and JSON:API are
//!   skipped by default).
//! - **HEAD:** answered without `Content-Length` when GET would be stripped.
//! - **More than one instance:** nothing to configure; the output depends only on the body.

mod error;
mod strip;

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use http::{Request, Response, response};
use http_body::Body;
use pin_project_lite::pin_project;
use tower_layer::Layer;
use tower_service::Service;
use towerkit_http::media_type_essence;
use towerkit_json::{
    Decision, JsonBody, Malformed, RewriteJson, RewriteJsonLayer, RewritePolicy, Rewriter,
};

pub use crate::error::ConfigError;
pub use crate::strip::{MAX_KEEP_PATHS, StripOptions, strip_nulls};

/// Media types skipped by default: in both, `null` carries meaning.
pub const DEFAULT_SKIPPED_MEDIA_TYPES: [&str; 2] =
    ["application/merge-patch+json", "application/vnd.api+json"];

/// A [`Layer`] that strips `null` members from JSON responses. See the [crate docs](crate).
///
/// [`StripNullsLayer::new`] gives the defaults; [`StripNullsLayer::builder`] configures it.
#[derive(Debug, Clone)]
pub struct StripNullsLayer {
    config: Arc<Config>,
    max_body: usize,
}

impl Default for StripNullsLayer {
    fn default() -> Self {
        Self::new()
    }
}

impl StripNullsLayer {
    /// Strips null object members at any depth; keeps nulls in arrays; skips
    /// [`DEFAULT_SKIPPED_MEDIA_TYPES`]; buffers at most 8 MiB.
    pub fn new() -> Self {
        Self {
            config: Arc::new(Config {
                options: StripOptions::new(),
                skipped: default_skipped(),
            }),
            max_body: towerkit_json::DEFAULT_MAX_BODY,
        }
    }

    /// Starts a configuration from the defaults of [`StripNullsLayer::new`].
    pub fn builder() -> StripNullsLayerBuilder {
        StripNullsLayerBuilder {
            arrays: false,
            empty: false,
            keep: Vec::new(),
            skipped: default_skipped(),
            max_body: towerkit_json::DEFAULT_MAX_BODY,
        }
    }
}

/// Configures a [`StripNullsLayer`]; [`build`](Self::build) checks the keep paths. Every
/// setting documents its default.
#[derive(Debug, Clone)]
#[must_use = "call `build` to get the layer"]
pub struct StripNullsLayerBuilder {
    arrays: bool,
    empty: bool,
    keep: Vec<String>,
    skipped: Vec<String>,
    max_body: usize,
}

impl StripNullsLayerBuilder {
    /// Also remove `null` elements of arrays. Default: off.
    pub fn arrays(mut self, on: bool) -> Self {
        self.arrays = on;
        self
    }

    /// Also remove members whose value is an empty object or array once stripped.
    /// Default: off.
    pub fn empty(mut self, on: bool) -> Self {
        self.empty = on;
        self
    }

    /// Keep nulls at or below these JSON Pointers (`*` matches any member or element).
    /// Default: none. [`build`](Self::build) fails on a malformed pointer or more than
    /// [`MAX_KEEP_PATHS`] paths.
    pub fn keep<I, P>(mut self, paths: I) -> Self
    where
        I: IntoIterator<Item = P>,
        P: Into<String>,
    {
        self.keep = paths.into_iter().map(Into::into).collect();
        self
    }

    /// Media types (compared without parameters, case-insensitively) whose responses are
    /// left alone. Replaces the default, [`DEFAULT_SKIPPED_MEDIA_TYPES`]; pass an empty list
    /// to strip every JSON response.
    pub fn skip_media_types<I, T>(mut self, types: I) -> Self
    where
        I: IntoIterator<Item = T>,
        T: Into<String>,
    {
        self.skipped = types.into_iter().map(Into::into).collect();
        self
    }

    /// The largest body, in bytes, buffered and stripped; a larger one streams through
    /// unchanged. Default: 8 MiB ([`towerkit_json::DEFAULT_MAX_BODY`]).
    pub fn max_body(mut self, bytes: usize) -> Self {
        self.max_body = bytes;
        self
    }

    /// Checks the settings and builds the layer.
    pub fn build(self) -> Result<StripNullsLayer, ConfigError> {
        let options = StripOptions::new()
            .arrays(self.arrays)
            .empty(self.empty)
            .keep(&self.keep)?;
        Ok(StripNullsLayer {
            config: Arc::new(Config {
                options,
                skipped: self.skipped,
            }),
            max_body: self.max_body,
        })
    }
}

impl<S> Layer<S> for StripNullsLayer {
    type Service = StripNulls<S>;

    fn layer(&self, inner: S) -> Self::Service {
        let policy = Policy {
            config: self.config.clone(),
        };
        StripNulls {
            inner: RewriteJsonLayer::new(policy)
                .max_body(self.max_body)
                .layer(inner),
        }
    }
}

/// The service made by [`StripNullsLayer`].
#[derive(Debug, Clone)]
pub struct StripNulls<S> {
    inner: RewriteJson<S, Policy>,
}

impl<S> StripNulls<S> {
    /// A reference to the inner service.
    pub fn get_ref(&self) -> &S {
        self.inner.get_ref()
    }

    /// A mutable reference to the inner service.
    pub fn get_mut(&mut self) -> &mut S {
        self.inner.get_mut()
    }

    /// The inner service.
    pub fn into_inner(self) -> S {
        self.inner.into_inner()
    }
}

impl<S, ReqBody, ResBody> Service<Request<ReqBody>> for StripNulls<S>
where
    S: Service<Request<ReqBody>, Response = Response<ResBody>>,
    ResBody: Body,
{
    type Response = Response<JsonBody<ResBody>>;
    type Error = S::Error;
    type Future = ResponseFuture<S::Future, ResBody>;

    #[inline]
    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    #[inline]
    fn call(&mut self, request: Request<ReqBody>) -> Self::Future {
        ResponseFuture {
            inner: self.inner.call(request),
        }
    }
}

pin_project! {
    /// The response future of [`StripNulls`].
    pub struct ResponseFuture<F, B: Body> {
        #[pin]
        inner: towerkit_json::ResponseFuture<F, B, StripRewriter>,
    }
}

impl<F, B: Body> fmt::Debug for ResponseFuture<F, B> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.inner.fmt(f)
    }
}

impl<F, B, E> Future for ResponseFuture<F, B>
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

fn default_skipped() -> Vec<String> {
    DEFAULT_SKIPPED_MEDIA_TYPES
        .iter()
        .map(|&t| t.to_owned())
        .collect()
}

#[derive(Debug)]
struct Config {
    options: StripOptions,
    skipped: Vec<String>,
}

/// The [`RewritePolicy`] behind [`StripNullsLayer`]: every request's JSON response is stripped.
#[derive(Debug, Clone)]
struct Policy {
    config: Arc<Config>,
}

impl<B> RewritePolicy<B> for Policy {
    type Rewriter = StripRewriter;

    fn on_request(&self, _request: &Request<B>) -> Decision<StripRewriter> {
        Decision::Rewrite(StripRewriter {
            config: self.config.clone(),
        })
    }
}

/// The [`Rewriter`] behind [`StripNullsLayer`].
#[derive(Debug)]
struct StripRewriter {
    config: Arc<Config>,
}

impl Rewriter for StripRewriter {
    fn accepts(&self, head: &response::Parts) -> bool {
        let Some(content_type) = head.headers.get(http::header::CONTENT_TYPE) else {
            return false;
        };
        let essence = media_type_essence(content_type);
        !self
            .config
            .skipped
            .iter()
            .any(|skipped| skipped.eq_ignore_ascii_case(essence))
    }

    fn rewrite(
        self,
        _head: &mut response::Parts,
        json: &[u8],
        out: &mut Vec<u8>,
    ) -> Result<(), Malformed> {
        strip_nulls(json, out, &self.config.options)
    }
}

/// The README's examples, compiled and run as doc tests (the README is in the package, so
/// `cargo test --doc` on the published crate runs them too).
#[doc = include_str!("../README.md")]
#[cfg(doctest)]
pub struct ReadmeDoctests;
