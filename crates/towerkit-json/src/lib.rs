//! The shared core of towerkit's JSON layers: deciding which responses are JSON worth
//! rewriting, buffering their bodies within a bound, handing them to a fast byte-level
//! transform, and fixing the framing headers afterwards.
//!
//! Users normally meet this crate through the layers built on it (`towerkit-nulls`,
//! `towerkit-paginate`). Write against it directly to build a JSON layer of your own:
//! implement [`RewritePolicy`] (what to do for a request) and [`Rewriter`] (how to rewrite
//! one body) and wrap them in a [`RewriteJsonLayer`].
//!
//! What the machinery guarantees, for every layer built on it:
//!
//! - Only eligible responses are touched ([`is_eligible`]): a 2xx other than 204/205/206
//!   with a JSON media type (`application/json` or `+json`) and no `Content-Encoding`.
//!   Everything else streams through untouched.
//! - HEAD gets the head GET would get. When the inner service answers a HEAD with the full
//!   body (axum does: it drops a HEAD's body only outside a route's layers), that body is
//!   rewritten exactly as for GET, so `Content-Length` is GET's. When the HEAD response has
//!   no body (a plain hyper service, a proxy) and GET would be rewritten (the policy
//!   decides to rewrite, the head is eligible and not declared larger than `max_body`), the
//!   rewritten length cannot be known, so `Content-Length` is removed, as RFC 9110 §8.6
//!   allows, the body announces no size, and a strong `ETag` is weakened as GET's is. A HEAD
//!   never announces the un-rewritten length; when GET would pass through, HEAD keeps the
//!   upstream's headers. (When GET would find malformed JSON and pass it through, a bodiless
//!   HEAD still omits the length: omitting is always correct, guessing is not.)
//! - A body is buffered up to `max_body` bytes (default 8 MiB, [`DEFAULT_MAX_BODY`]). A body declared
//!   larger streams through without being read; one that grows past `max_body` while being
//!   read is replayed and streamed unchanged. Nothing is buffered without bound, and size is
//!   never an error.
//! - Malformed JSON, a body with trailers, or a body error passes through unchanged.
//! - After a rewrite `Content-Length` is set to the new length and a strong `ETag` becomes
//!   weak ([`towerkit_http::weaken_etag`]: a weak or malformed tag is left as it is).
//!
//! ```
//! use bytes::Bytes;
//! use http::{Request, Response, response};
//! use http_body_util::{BodyExt, Full};
//! use tower::{ServiceBuilder, ServiceExt, service_fn};
//! use towerkit_json::{Decision, Malformed, RewriteJsonLayer, RewritePolicy, Rewriter};
//!
//! /// Wraps every JSON response in `{"data": ...}`.
//! #[derive(Clone)]
//! struct Wrap;
//!
//! impl<B> RewritePolicy<B> for Wrap {
//!     type Rewriter = Wrap;
//!     fn on_request(&self, _: &Request<B>) -> Decision<Wrap> {
//!         Decision::Rewrite(Wrap)
//!     }
//! }
//!
//! impl Rewriter for Wrap {
//!     fn rewrite(self, _: &mut response::Parts, json: &[u8], out: &mut Vec<u8>) -> Result<(), Malformed> {
//!         towerkit_json::scan::validate(json)?;
//!         out.extend_from_slice(b"{\"data\":");
//!         out.extend_from_slice(json);
//!         out.push(b'}');
//!         Ok(())
//!     }
//! }
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() {
//! let service = ServiceBuilder::new().layer(RewriteJsonLayer::new(Wrap)).service(service_fn(|_req: Request<()>| async {
//!     let response = Response::builder()
//!         .header("content-type", "application/json")
//!         .body(Full::new(Bytes::from_static(b"[1,2]")))
//!         .unwrap();
//!     Ok::<_, std::convert::Infallible>(response)
//! }));
//! let response = service.oneshot(Request::new(())).await.unwrap();
//! assert_eq!(response.headers()["content-length"], "14");
//! let body = response.into_body().collect().await.unwrap().to_bytes();
//! assert_eq!(body, r#"{"data":[1,2]}"#);
//! # }
//! ```
//!
//! # Production checklist
//!
//! - **Stores:** nothing between requests.
//! - **Buffers:** up to `max_body` bytes (default 8 MiB) of each eligible response, per
//!   layer built on it; a body declared larger streams through unread, one that grows past
//!   it is replayed unchanged. Size the bound against your largest JSON response and your
//!   concurrency: the worst case is `max_body` × concurrent requests × JSON layers.
//! - **Keys on:** nothing; decisions are per request (the policy) and per response head.
//! - **HEAD:** GET's `Content-Length` when the inner service hands over GET's body (axum),
//!   none when it sends no body and GET would be rewritten; HEAD buffers like GET.
//! - **More than one instance:** nothing to configure.
//!
//! # Features
//!
//! - `axum` (off by default): [`Problem`] implements axum's `IntoResponse`.

// docs.rs documents with a nightly rustdoc and `--cfg docsrs`: mark what each feature enables.
#![cfg_attr(docsrs, feature(doc_cfg))]

pub mod body;
pub mod problem;
pub mod scan;
mod service;

pub use body::JsonBody;
pub use problem::Problem;
pub use scan::Malformed;
pub use service::{
    DEFAULT_MAX_BODY, Decision, ResponseFuture, RewriteJson, RewriteJsonLayer, RewritePolicy,
    Rewriter, is_eligible,
};

/// The README's examples, compiled and run as doc tests (the README is in the package, so
/// `cargo test --doc` on the published crate runs them too).
#[doc = include_str!("../README.md")]
#[cfg(doctest)]
pub struct ReadmeDoctests;
