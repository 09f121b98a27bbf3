//! Validators and preconditions for dynamic responses: a strong `ETag` from the body bytes,
//! `304 Not Modified` for `If-None-Match`, and `If-Match` / `If-Unmodified-Since` for
//! writes, answered with `412` or `428` as `application/problem+json`.
//!
//! tower-http's `ServeDir` tags files on disk; [`ETagLayer`] tags what a handler returns.
//!
//! # `ETagLayer`
//!
//! - **What is tagged**: a `200` response to `GET` or `HEAD` that has no `ETag` and whose body
//!   size is known (an exact size hint or a `Content-Length`) and at most `max_body` (default
//!   8 MiB). The body is read into memory and its XXH3-128 hash becomes a strong tag
//!   ([`etag_of`]): equal bytes give equal tags on every instance.
//! - **Passes through untouched, untagged**: other methods and statuses, a streaming body of
//!   unknown size (server-sent events, a proxied chunked body: never waited for), a body
//!   declared larger than `max_body`, one that grows past it while read (replayed
//!   unchanged), a body with trailers or a body error, and a body that disagrees with its
//!   `Content-Length`.
//! - **An upstream `ETag` is kept** and answered for: the layer compares `If-None-Match`
//!   with it as with its own.
//! - **`If-None-Match`** on `GET`/`HEAD` of a `200`: weak comparison (RFC 9110 §13.1.2:
//!   `W/"x"` matches `"x"`), `*`, comma-separated lists and several lines. A match gives
//!   `304 Not Modified` with no body and the `200`'s fields but its content ones
//!   (`Content-Type`, `Content-Length`, `Content-Encoding`, `Content-Language`,
//!   `Content-Range`, `Transfer-Encoding`), so `Cache-Control`, `Content-Location`, `Date`,
//!   `ETag`, `Expires` and `Vary` (RFC 9110 §15.4.5) stay. A malformed member matches
//!   nothing (a `200` is always a correct answer to a `GET`, so a garbled cache header is
//!   never a `400`). `If-Modified-Since` is left to the handler.
//! - **`HEAD`** gets `GET`'s tag when the layer sees `GET`'s body: axum answers `HEAD` by
//!   running the `GET` handler and drops the body outside the route's layers, so a layer
//!   added with `Router::layer` or `route_layer` hashes the same bytes. A `HEAD` response
//!   that comes without its body (a plain hyper service) cannot be hashed: it is left
//!   untagged (its `Content-Length` then disagrees with the empty body; an empty `HEAD` body
//!   without `Content-Length` is not tagged either, as it may stand for any `GET`).
//! - **Where it goes**: inside `CompressionLayer` (towerkit-compress) and outside the JSON
//!   rewriting layers, so it hashes the bytes the client decodes and a rewrite never
//!   weakens its tag. Compression then gives each coding's variant its own strong tag,
//!   `"<tag>-br"`, `"<tag>-gzip"`, …, and turns a suffixed `If-None-Match` back into the
//!   base tag on the way in (see towerkit-compress); `CacheLayer` outside stores the
//!   suffixed tag with each variant and answers `If-None-Match` from it.
//!
//! ```
//! use axum::{Json, Router, routing::get};
//! use towerkit_validators::ETagLayer;
//! # use tower::ServiceExt;
//!
//! let app = Router::new()
//!     .route("/products/1", get(|| async { Json(serde_json::json!({"id": 1, "name": "lamp"})) }))
//!     .layer(ETagLayer::new());
//! # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
//! let first = app.clone().oneshot(http::Request::get("/products/1").body(axum::body::Body::empty()).unwrap()).await.unwrap();
//! let etag = first.headers()["etag"].clone();
//! let again = http::Request::get("/products/1").header("if-none-match", etag).body(axum::body::Body::empty()).unwrap();
//! assert_eq!(app.oneshot(again).await.unwrap().status(), http::StatusCode::NOT_MODIFIED);
//! # });
//! ```
//!
//! Customised: tag bodies up to 256 KiB only.
//!
//! ```
//! let layer = towerkit_validators::ETagLayer::new().max_body(256 * 1024);
//! # let _ = layer;
//! ```
//!
//! # Preconditions for writes
//!
//! [`Preconditions`] (an axum extractor) compares `If-Match` (strong comparison; `*`) and,
//! without it, `If-Unmodified-Since` with the current representation's `ETag` and
//! modification time, and gives a [`PreconditionError`]: `412 Precondition Failed`, or
//! `400` for an `If-Match` that is not a list of entity tags. [`RequirePreconditionsLayer`]
//! answers `428 Precondition Required` to a `PUT`, `PATCH` or `DELETE` (configurable) that
//! carries no precondition. Every answer is `application/problem+json` (RFC 9457).
//!
//! **The coding-suffix rule**: in `If-Match`, a tag that ends in a coding suffix
//! (`-zstd`, `-br`, `-gzip`, `-deflate`; [`towerkit_http::CODING_SUFFIXES`]) also matches the
//! tag without it: `"abc-br"` satisfies a current `"abc"`, because a client that read the
//! brotli variant read the same representation. (An application whose own tags differ only
//! by such a suffix would see them match; tags made by [`etag_of`] are hex digits only.)
//!
//! # Production checklist
//!
//! - **Stores:** nothing between requests.
//! - **Buffers:** up to `max_body` bytes (default 8 MiB) of each `200` `GET`/`HEAD` response
//!   of known size without an `ETag`; the worst case is `max_body` × concurrent requests.
//! - **CPU:** one XXH3-128 pass over the body plus a copy when the body arrives in several
//!   chunks. Measured on the project's 2-core machine (`cargo xtask bench --instructions
//!   layer`, `cargo bench -p towerkit-benches --bench layers -- layer/`): a 10 KB JSON
//!   response tagged, `layer/etag/json_10KB`, 12,828 instructions and about 0.77 µs; the same
//!   answered `304`, `layer/etag/not_modified`, 15,719 instructions and about 1.0 µs (its
//!   request carries a header, whose map the bare request does not allocate); the bare
//!   service with a 1 KB body, `layer/none/passthrough`, 3,619 instructions and 0.31 µs.
//! - **Keys on:** `If-None-Match` only; nothing to add to `Vary`.
//! - **More than one instance:** tags depend on the bytes only, so every instance gives the
//!   same tag for the same body and a `304` does not depend on which instance answers.
//!
//! # Why XXH3-128
//!
//! A tag needs to change whenever the bytes change, on every instance, at a cost that
//! disappears next to producing the body. XXH3 (the `xxhash-rust` crate, pure Rust, already
//! in the dependency tree through the Redis client) hashes at memory speed; 128 bits make an
//! accidental collision between two versions of a resource negligible. It is not a
//! cryptographic hash: an attacker who controls a response's whole body could craft two
//! bodies with one tag, and gain nothing but a stale copy in their own cache; a tag is no
//! integrity check. BLAKE3 would cost several times more per byte for a property a tag does
//! not need.

// docs.rs documents with a nightly rustdoc and `--cfg docsrs`: mark what each feature enables.
#![cfg_attr(docsrs, feature(doc_cfg))]

mod etag;
mod preconditions;
mod tag;

pub use etag::{DEFAULT_MAX_BODY, ETag, ETagLayer, ResponseFuture};
pub use preconditions::{
    PreconditionError, Preconditions, RequireFuture, RequirePreconditions,
    RequirePreconditionsLayer,
};
pub use tag::etag_of;

/// The README's examples, compiled and run as doc tests (the README is in the package, so
/// `cargo test --doc` on the published crate runs them too).
#[doc = include_str!("../README.md")]
#[cfg(doctest)]
pub struct ReadmeDoctests;
