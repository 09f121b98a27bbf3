//! `StripNullsLayer`: removes `null` members from JSON responses.
//!
//! APIs built on structs with `Option` fields send `"discount": null` for every absent
//! value; clients rarely need them and they can make up a fifth of a payload. This layer
//! removes object members whose value is `null`, at any depth, with a streaming byte-level
//! transform: member order, numbers and strings are copied exactly as the handler wrote them.
//!
//! What it leaves alone, streamed through untouched:
//! - responses that are not eligible JSON (see [`towerkit_json::is_eligible`]: non-2xx,
//!   204/205/206, not `application/json` or `+json`, already `Content-Encoding`d), HEAD;
//! - media types where `null` means something: `application/merge-patch+json` (null deletes
//!   a member) and `application/vnd.api+json`, unless configured otherwise;
//! - bodies over the buffer limit (default 8 MiB) and malformed JSON.
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
//! member, and buffer at most 1 MiB.
//!
//! ```
//! use towerkit_nulls::StripNullsLayer;
//!
//! let layer = StripNullsLayer::new()
//!     .arrays(true)
//!     .empty(true)
//!     .keep(["/data/*/middle_name"])
//!     .expect("valid JSON Pointers")
//!     .limit(1024 * 1024);
//! # let _ = layer;
//! ```

mod strip;

use std::sync::Arc;

use http::{Request, response};
use tower_layer::Layer;
use towerkit_http::media_type_essence;
use towerkit_json::{Decision, Malformed, RewriteJson, RewriteJsonLayer, RewritePolicy, Rewriter};

pub use strip::{InvalidPath, MAX_KEEP_PATHS, StripOptions, strip_nulls};

/// Media types skipped by default: in both, `null` carries meaning.
pub const DEFAULT_SKIPPED_MEDIA_TYPES: [&str; 2] =
    ["application/merge-patch+json", "application/vnd.api+json"];

/// The service produced by [`StripNullsLayer`].
pub type StripNulls<S> = RewriteJson<S, StripNullsPolicy>;

/// A [`Layer`] that strips `null` members from JSON responses. See the [crate docs](crate).
#[derive(Debug, Clone)]
pub struct StripNullsLayer {
    options: StripOptions,
    skipped: Vec<String>,
    limit: usize,
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
            options: StripOptions::new(),
            skipped: DEFAULT_SKIPPED_MEDIA_TYPES
                .iter()
                .map(|&t| t.to_owned())
                .collect(),
            limit: towerkit_json::DEFAULT_MAX_BODY,
        }
    }

    /// Also remove `null` elements of arrays. Default: off.
    #[must_use]
    pub fn arrays(mut self, on: bool) -> Self {
        self.options = self.options.arrays(on);
        self
    }

    /// Also remove members whose value is an empty object or array once stripped.
    /// Default: off.
    #[must_use]
    pub fn empty(mut self, on: bool) -> Self {
        self.options = self.options.empty(on);
        self
    }

    /// Keep nulls at or below these JSON Pointers (`*` matches any member or element).
    /// Default: none. Fails on a malformed pointer or more than [`MAX_KEEP_PATHS`] paths.
    pub fn keep<I, P>(mut self, paths: I) -> Result<Self, InvalidPath>
    where
        I: IntoIterator<Item = P>,
        P: AsRef<str>,
    {
        self.options = self.options.keep(paths)?;
        Ok(self)
    }

    /// Media types (compared without parameters, case-insensitively) whose responses are
    /// left alone. Replaces the default, [`DEFAULT_SKIPPED_MEDIA_TYPES`]; pass an empty list
    /// to strip every JSON response.
    #[must_use]
    pub fn skip_media_types<I, T>(mut self, types: I) -> Self
    where
        I: IntoIterator<Item = T>,
        T: Into<String>,
    {
        self.skipped = types.into_iter().map(Into::into).collect();
        self
    }

    /// The largest body buffered and stripped; a larger one streams through unchanged.
    /// Default: 8 MiB.
    #[must_use]
    pub fn limit(mut self, limit: usize) -> Self {
        self.limit = limit;
        self
    }
}

impl<S> Layer<S> for StripNullsLayer {
    type Service = StripNulls<S>;

    fn layer(&self, inner: S) -> Self::Service {
        let policy = StripNullsPolicy {
            config: Arc::new(Config {
                options: self.options.clone(),
                skipped: self.skipped.clone(),
            }),
        };
        RewriteJsonLayer::new(policy)
            .max_body(self.limit)
            .layer(inner)
    }
}

/// The [`RewritePolicy`] behind [`StripNullsLayer`]: every request's JSON response is stripped.
#[derive(Debug, Clone)]
pub struct StripNullsPolicy {
    config: Arc<Config>,
}

#[derive(Debug)]
struct Config {
    options: StripOptions,
    skipped: Vec<String>,
}

impl<B> RewritePolicy<B> for StripNullsPolicy {
    type Rewriter = StripNullsRewriter;

    fn on_request(&self, _request: &Request<B>) -> Decision<StripNullsRewriter> {
        Decision::Rewrite(StripNullsRewriter {
            config: self.config.clone(),
        })
    }
}

/// The [`Rewriter`] behind [`StripNullsLayer`].
#[derive(Debug)]
pub struct StripNullsRewriter {
    config: Arc<Config>,
}

impl Rewriter for StripNullsRewriter {
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
