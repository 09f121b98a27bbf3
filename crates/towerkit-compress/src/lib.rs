//! `CompressionLayer`: tower-http's response compression with production defaults, a guard
//! against a tower-http panic, and metrics.
//!
//! The codecs are tower-http's (and through it async-compression's, brotli's, zstd's and
//! flate2's); this crate decides when and how hard to compress:
//!
//! - **Negotiation**: the coding the client weights highest in `Accept-Encoding`; on equal
//!   weights zstd, then brotli, gzip, deflate. A client that accepts nothing enabled gets the
//!   response uncompressed (RFC 9110 §12.1), never a 406.
//! - **Levels** for responses compressed on the request path, one per coding (tower-http
//!   takes a single level for all): zstd 3, brotli 4, gzip 6, deflate 6.
//! - **What is compressed** ([`DefaultPredicate`]): bodies of 1 KiB or more (tower-http's
//!   32 bytes makes small bodies bigger), or of unknown size; not already-compressed media
//!   types (raster images, video, audio, zip, gzip, WOFF, PDF, [the full
//!   list](DefaultPredicate::SKIPPED_MEDIA_TYPES)), gRPC or `text/event-stream`.
//! - **Never compressed**, whatever the predicate: a response that already has a
//!   `Content-Encoding` or a `Content-Range`, carries `Cache-Control: no-transform`, or has
//!   no content (1xx, 204, 304). These pass through untouched.
//! - **Headers**: every response gets `Vary: Accept-Encoding`; a compressed one loses
//!   `Content-Length` and `Accept-Ranges`, and its `ETag` gets the coding as a suffix
//!   (`"v1"` → `"v1-br"`, `W/"v1"` → `W/"v1-gzip"`; a malformed tag is left as it is), so
//!   each coding's variant has a strong tag of its own and no two codings share one (RFC
//!   9110 §8.8.3). A HEAD response gets the headers its GET would get (compression runs only
//!   as a body is read, and a HEAD body is not sent).
//! - **Conditional requests**: the service inside knows only the identity tag (`"v1"`), so
//!   when a coding is negotiated, the request's `If-None-Match` tags of that coding's
//!   variant (`"v1-br"` when brotli is chosen) are passed inward as the identity tag, and a
//!   `304` coming back for a tag the client named with the suffix carries the suffixed tag,
//!   the one of the variant the client holds (a `304` for `*` or for the identity tag keeps
//!   the identity tag: without a body the layer cannot tell whether the `200` would have
//!   been compressed). Tags of another coding's variant pass inward
//!   unchanged and match nothing: the client holds a variant it would not get now, and gets
//!   the new one with a `200`. `If-Match` is left alone: it guards writes, whose handlers
//!   compare the base tag themselves (towerkit-validators' `Preconditions` matches
//!   `"v1-br"` against `"v1"`), whether or not compression sits in front of them.
//! - **Streaming bodies** are compressed as they stream, and the body is fused before
//!   tower-http sees it: tower-http 0.7.1 polls a body once more after its end, which panics
//!   for bodies built on a non-fused stream (tower-http issue #732).
//! - **Metrics** (through the `metrics` facade), labelled `encoding`, once a compressed body
//!   has been sent to its end: input and output bytes and the ratio (uncompressed /
//!   compressed); names and labels in [`metrics`].
//!
//! ```
//! use axum::{Router, routing::get};
//! use towerkit_compress::CompressionLayer;
//! # use http_body_util::BodyExt;
//! # use tower::ServiceExt;
//!
//! let app = Router::new()
//!     .route("/report", get(|| async { "all systems nominal\n".repeat(100) }))
//!     .layer(CompressionLayer::new());
//! # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
//! let request = http::Request::get("/report").header("accept-encoding", "gzip, br").body(axum::body::Body::empty()).unwrap();
//! let response = app.oneshot(request).await.unwrap();
//! assert_eq!(response.headers()["content-encoding"], "br");
//! assert_eq!(response.headers()["vary"], "accept-encoding");
//! let body = response.into_body().collect().await.unwrap().to_bytes();
//! assert!(body.len() < 100);
//! # });
//! ```
//!
//! Customised: a lighter brotli, no deflate, a 4 KiB minimum.
//!
//! ```
//! use towerkit_compress::{CompressionLayer, Encoding};
//!
//! let layer = CompressionLayer::builder()
//!     .level(Encoding::Br, 2)
//!     .disable(Encoding::Deflate)
//!     .min_size(4096)
//!     .build()?;
//! assert_eq!(layer.level_of(Encoding::Br), Some(2));
//! assert_eq!(layer.level_of(Encoding::Deflate), None);
//! # Ok::<(), towerkit_compress::ConfigError>(())
//! ```
//!
//! # Which codec, which level
//!
//! Measured by `cargo bench -p towerkit-benches --bench compress` (`compress/<coding>/100KB/towerkit`)
//! on the project's 2-core machine, on 100 KB of API-shaped JSON; CPU is one core's time per
//! MB of uncompressed response. The figures are from the quieter runs; on the shared machine
//! medians moved by up to a factor of two between runs, so read them as orders of magnitude:
//!
//! | coding (level) | CPU per MB | throughput | 100 KB JSON becomes | use it for |
//! |----------------|-----------:|-----------:|--------------------:|------------|
//! | zstd 3         | ≈ 3–4 ms   | ≈ 250–350 MB/s | 8.8 KB (11.4×) | every client that offers it: about 6× cheaper than the others for 8 % more bytes |
//! | brotli 4       | ≈ 20 ms    | ≈ 40–50 MB/s   | 8.1 KB (12.3×) | clients that offer brotli but not zstd |
//! | gzip 6         | ≈ 16–20 ms | ≈ 50–60 MB/s   | 8.1 KB (12.3×) | every other client |
//! | deflate 6      | not measured | | | clients that offer nothing else (gzip's algorithm with zlib framing) |
//!
//! A level is per coding and per layer; a higher level trades more CPU for smaller output.
//! On a cached route the cost is paid once per coding: a cache hit serves the
//! stored bytes, and `compress/cached_hit/br_100KB` costs the same as
//! `compress/cached_hit/identity_100KB` (a few microseconds, no compression).
//!
//! # A level per route
//!
//! A level is a trade of server CPU for bytes on the wire, and the right one depends on how
//! often a response is compressed and how big it is:
//!
//! - **Cached routes** (a `CacheLayer` outside this one): the response is compressed once per
//!   coding and then served from the cache, so a level above the default costs once and
//!   saves bytes on every hit.
//! - **Large exports and streams**: CPU per request dominates; use zstd 1 or gzip 1–3, or
//!   disable brotli for the route.
//! - **Everything else**: the defaults.
//! - **Static assets**: compress them at build time with the highest levels (brotli 11 is
//!   meant for that, not for the request path) and serve them with `Content-Encoding` set;
//!   this layer passes them through.
//!
//! Give a route its own layer: the innermost layer that compresses wins, because an outer
//! one never compresses a response that already has a `Content-Encoding`.
//!
//! ```
//! use axum::{Router, routing::get};
//! use towerkit_compress::{CompressionLayer, Encoding};
//!
//! let export = CompressionLayer::builder()
//!     .level(Encoding::Zstd, 1)
//!     .level(Encoding::Gzip, 1)
//!     .disable(Encoding::Br)
//!     .build()?;
//! let app: Router = Router::new()
//!     .route("/export.csv", get(|| async { "id,name\n" }).layer(export))
//!     .route("/products", get(|| async { "[]" }))
//!     .layer(CompressionLayer::new());
//! # Ok::<(), towerkit_compress::ConfigError>(())
//! ```
//!
//! # Traces
//!
//! Each compressed response gets an INFO `tracing` span `http.response.compression`,
//! opened under the current span when compression starts and closed when the body ends:
//! `http.response.content_coding`, `compression.input_bytes`, `compression.output_bytes` and
//! `http.response.body.size`.
//!
//! # Production checklist
//!
//! - Stores: nothing; the layer keeps no state between responses.
//! - Buffers: nothing beyond the encoder's own window; bodies stream through and each
//!   response costs one encoder while it streams.
//! - Keys on: the request's `Accept-Encoding` only, and says so with `Vary: Accept-Encoding`
//!   on every response, so a shared cache (towerkit's `CacheLayer` outside it, or a CDN)
//!   keeps one variant per coding.
//! - Passes through untouched: bodies under 1 KiB, already-compressed media types, gRPC,
//!   server-sent events, `Cache-Control: no-transform`, ranges and already-encoded
//!   responses; a compressed body's `ETag` gets its coding's suffix (`"v1-br"`).
//! - More than one instance: nothing to share; keep the same codecs and levels everywhere, so
//!   that instances sharing a cache store the same variants.
//!
//! # Features
//!
//! `gzip`, `br`, `zstd`, `deflate`: one per coding, all on by default. At least one is
//! needed; asking for a level of a coding that is not compiled in makes
//! [`CompressionLayerBuilder::build`] fail with a [`ConfigError`].

// docs.rs documents with a nightly rustdoc and `--cfg docsrs`: mark what each feature enables.
#![cfg_attr(docsrs, feature(doc_cfg))]

#[cfg(not(any(
    feature = "gzip",
    feature = "br",
    feature = "zstd",
    feature = "deflate"
)))]
compile_error!("towerkit-compress needs at least one codec feature: gzip, br, zstd or deflate");

mod body;
mod encoding;
mod error;
mod layer;
mod levels;
pub mod metrics;
mod negotiate;
mod predicate;
mod service;
mod trace;
mod variant;

pub use body::CompressionBody;
pub use encoding::Encoding;
pub use error::ConfigError;
pub use layer::{CompressionLayer, CompressionLayerBuilder};
pub use predicate::DefaultPredicate;
pub use service::{Compression, ResponseFuture};
pub use tower_http::compression::Predicate;

#[cfg(test)]
mod tests;

/// The README's examples, compiled and run as doc tests (the README is in the package, so
/// `cargo test --doc` on the published crate runs them too).
#[doc = include_str!("../README.md")]
#[cfg(doctest)]
pub struct ReadmeDoctests;
