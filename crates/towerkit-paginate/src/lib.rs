//! Pagination and field projection for axum and tower services: two layers, two
//! extractors, and the byte-level JSON transforms behind them.
//!
//! List endpoints become pageable, and every JSON response trimmable by the client,
//! whether the handler does the work in SQL or the layer does it on the response.
//!
//! - [`PaginateLayer`] (service [`Paginate`]) slices a handler's whole JSON array per `?page=`/`?offset=`/
//!   `?cursor=` and `?limit=` (alias `per_page`), and wraps it:
//!   `{"data": [...], "pagination": {"page", "limit", "total", "totalPages", "hasNext",
//!   "hasPrevious"}}` with an RFC 8288 `Link` header (first/prev/next/last, keeping the
//!   other query parameters; relative references unless `base_url` names the public origin)
//!   and `X-Total-Count`.
//! - [`Pagination`] (extractor) gives a handler validated `limit()`/`offset()` for
//!   `LIMIT $1 OFFSET $2`, or a [`Keyset`] decoded from a signed cursor; [`Page`] turns the
//!   rows into the same envelope and headers, and the layer leaves it alone.
//! - [`SelectFieldsLayer`] (service [`SelectFields`]) applies `?fields=` (Google's partial-response grammar plus `-path`
//!   exclusions and `**`, see [`Selection`]) to the response, or to each item of the
//!   envelope; [`Fields`] (extractor) lets a handler read only the selected columns.
//!
//! Bad input gets a 400 `application/problem+json` (RFC 9457) naming the parameter:
//! `page=0`, `limit=-1`, `limit=abc`, a page beyond `i64::MAX` items, a tampered or reused
//! cursor, `fields=items(id`. A page past the end is an empty `data` with correct
//! metadata.
//!
//! Configuration: `PaginateLayer::new()` and `SelectFieldsLayer::new()` give the defaults;
//! `builder()` on either takes infallible settings and one `build()` checks them all,
//! returning a [`ConfigError`].
//!
//! Both layers buffer at most `max_body` bytes of a response (default 8 MiB), and let
//! through untouched whatever they cannot or should not rewrite: non-2xx, not JSON,
//! encoded, HEAD (without the `Content-Length` GET would not send), too large, malformed. The transforms ([`transform::paginate`],
//! [`transform::project`]) stream over the bytes: kept values are copied verbatim, skipped
//! subtrees are scanned, never parsed into values.
//!
//! Layer order, outermost first: `SelectFieldsLayer`, then `PaginateLayer`, then the handler,
//! so the selection applies to the page's items. Each layer shares its configuration with
//! its extractor through the request's extensions; without a layer the extractors use the
//! defaults (page 1, limit 20, max 100, parameter `fields`).
//!
//! ```
//! use axum::{Json, Router, routing::get};
//! use tower::ServiceBuilder;
//! use towerkit_paginate::{PaginateLayer, SelectFieldsLayer};
//! # use http_body_util::BodyExt;
//! # use tower::ServiceExt;
//!
//! async fn products() -> Json<serde_json::Value> {
//!     Json((1..=45).map(|id| serde_json::json!({"id": id, "name": format!("p{id}")})).collect())
//! }
//!
//! let app = Router::new()
//!     .route("/products", get(products))
//!     .layer(ServiceBuilder::new().layer(SelectFieldsLayer::new()).layer(PaginateLayer::new()));
//! # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
//! let request = http::Request::get("/products?page=3&fields=id").header("host", "api.example.com");
//! let response = app.oneshot(request.body(axum::body::Body::empty()).unwrap()).await.unwrap();
//! assert_eq!(response.headers()["x-total-count"], "45");
//! assert_eq!(
//!     response.headers()["link"],
//!     "</products?fields=id&page=1>; rel=\"first\", \
//!      </products?fields=id&page=2>; rel=\"prev\", \
//!      </products?fields=id&page=3>; rel=\"last\""
//! );
//! let body = response.into_body().collect().await.unwrap().to_bytes();
//! assert_eq!(
//!     body,
//!     r#"{"data":[{"id":41},{"id":42},{"id":43},{"id":44},{"id":45}],"pagination":{"page":3,"limit":20,"total":45,"totalPages":3,"hasNext":false,"hasPrevious":true}}"#
//! );
//! # });
//! ```
//!
//! Customised: snake_case names, larger pages, strict limits and fields, a shared cursor
//! key, links to the public origin behind a proxy, the array inside an object, and a
//! smaller buffer.
//!
//! ```
//! use towerkit_paginate::{EnvelopeNames, PaginateLayer, SelectFieldsLayer};
//!
//! let pagination = PaginateLayer::builder()
//!     .default_limit(50)
//!     .max_limit(500)
//!     .strict(true)
//!     .names(EnvelopeNames::snake_case())
//!     .cursor_key(std::env::var("CURSOR_KEY").unwrap_or_else(|_| "x".repeat(32)).into_bytes())
//!     .base_url("https://api.example.com")
//!     .array_at("/results")
//!     .max_body(1024 * 1024)
//!     .build()
//!     .expect("valid pagination configuration");
//! let fields = SelectFieldsLayer::builder().strict(true).build().expect("valid limits");
//! assert!(PaginateLayer::builder().max_limit(0).build().is_err());
//! # let _ = (pagination, fields);
//! ```
//!
//! Keyset pagination in a handler (cursors are base64url, HMAC-signed and bound to the
//! path and the filter and sort parameters):
//!
//! ```no_run
//! use towerkit_paginate::{Keyset, Page, Pagination, Problem};
//!
//! #[derive(serde::Serialize)]
//! struct Product { id: i64, name: String }
//!
//! async fn list(pagination: Pagination) -> Result<Page<Product>, Problem> {
//!     let limit = pagination.fetch_limit();
//!     let rows: Vec<Product> = match pagination.keyset::<i64>()? {
//!         Keyset::First => query("ORDER BY id LIMIT $1", &[limit]),
//!         Keyset::After(id) => query("WHERE id > $2 ORDER BY id LIMIT $1", &[limit, id]),
//!         Keyset::Before(id) => query("WHERE id < $2 ORDER BY id DESC LIMIT $1", &[limit, id]),
//!     };
//!     Ok(Page::keyset(rows, &pagination, |product| product.id))
//! }
//! # let _: axum::Router = axum::Router::new().route("/products", axum::routing::get(list));
//! # fn query(_: &str, _: &[i64]) -> Vec<Product> { Vec::new() }
//! ```
//!
//! # Production checklist
//!
//! - **Stores:** nothing between requests; the configuration (with the cursor key) is shared
//!   with the extractors through request extensions.
//! - **Buffers:** up to `max_body` bytes (default 8 MiB) of an eligible JSON response per
//!   request, for each of `PaginateLayer` and `SelectFieldsLayer`; anything larger streams
//!   through untouched.
//! - **Keys on:** the query string (`page`, `offset`, `cursor`, `limit`, `fields`); cursors
//!   are bound to the path and the filter and sort parameters. A cache in front must key on
//!   the whole query string (towerkit-cache does).
//! - **`base_url`:** set it to the public origin to get absolute `Link` URLs; without it
//!   links are relative (`</products?page=2>`). The origin never comes from `Host`.
//! - **More than one instance:** set the same
//!   [`cursor_key`](PaginateLayerBuilder::cursor_key) (at least 32 random bytes, from a
//!   secret) on every instance: [`Style::Cursors`] refuses to build without one, and a
//!   handler issuing cursors with [`Page::keyset`] needs it too.
//!   [`cursor_key_per_process`](PaginateLayerBuilder::cursor_key_per_process) is for a single
//!   instance only. Rotating the key invalidates every cursor out there (clients get a 400
//!   naming `cursor`).

mod config;
mod cursor;
mod envelope;
mod error;
mod extract;
mod fields;
mod layer;
mod page;
mod pointer;
mod query;
mod request;
mod slice;

pub use crate::config::{
    DEFAULT_MAX_LIMIT, DEFAULT_PAGE_LIMIT, EnvelopeNames, MIN_CURSOR_KEY_LEN, PaginationConfig,
    ParamNames, Style,
};
pub use crate::envelope::{PageInfo, X_TOTAL_COUNT};
pub use crate::error::ConfigError;
pub use crate::extract::Fields;
pub use crate::fields::{
    DEFAULT_MAX_DEPTH, DEFAULT_MAX_LENGTH, DEFAULT_MAX_NODES, FieldsConfig, FieldsError, MAX_NODES,
    Selection,
};
pub use crate::layer::{
    Paginate, PaginateLayer, PaginateLayerBuilder, SelectFields, SelectFieldsLayer,
    SelectFieldsLayerBuilder,
};
pub use crate::page::{Page, Paginated};
pub use crate::request::{Keyset, Pagination};
/// The RFC 9457 problem details every rejection here is made of (from `towerkit-json`).
pub use towerkit_json::Problem;

/// The response futures of [`Paginate`] and [`SelectFields`].
pub mod future {
    pub use crate::layer::{PaginateFuture, SelectFieldsFuture};
}

/// The byte-level transforms behind the layers, for use without them (benchmarks, batch
/// jobs): [`paginate`](transform::paginate) slices and wraps an array, [`project`](transform::project)
/// applies a [`Selection`]. Both stream over the bytes: kept values are
/// copied verbatim, skipped subtrees are scanned, never parsed into values.
pub mod transform {
    pub use crate::fields::{Projection, project};
    pub use crate::pointer::{JsonPointer, TransformError};
    pub use crate::slice::paginate;
}

/// The README's examples, compiled and run as doc tests (the README is in the package, so
/// `cargo test --doc` on the published crate runs them too).
#[doc = include_str!("../README.md")]
#[cfg(doctest)]
pub struct ReadmeDoctests;
