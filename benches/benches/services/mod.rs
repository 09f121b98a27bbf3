//! Services measured both by the criterion benches `layers` and `stack` (wall time) and by
//! the instruction counts (`instructions`), so the two figures of an id measure the same
//! thing. Each is built on [`none`], the bare service of `layer/none/passthrough`, with the
//! request its bench sends.

use std::convert::Infallible;
use std::fmt::Debug;
use std::sync::{Arc, LazyLock};
use std::time::Duration;

use bytes::Bytes;
use http::{HeaderValue, Request, Response};
use http_body::Body;
use http_body_util::Full;
use tower::{Layer, Service, ServiceBuilder};
use towerkit_benches::{corpus, fixed_service, small_json};
use towerkit_cache::{CacheLayer, MemoryStore};
use towerkit_compress::CompressionLayer;
use towerkit_nulls::StripNullsLayer;
use towerkit_paginate::{PaginateLayer, SelectFieldsLayer};
use towerkit_timing::TimingLayer;
use towerkit_validators::{ETagLayer, etag_of};

/// What the services here are: cloneable tower services answering `Request<()>`.
pub(crate) trait BenchService:
    Service<Request<()>, Response = Response<Self::Body>, Error = Infallible, Future: Send>
    + Clone
    + 'static
{
    /// The response body.
    type Body: Body<Data = Bytes, Error: Debug>;
}

impl<S, B> BenchService for S
where
    S: Service<Request<()>, Response = Response<B>, Error = Infallible, Future: Send>
        + Clone
        + 'static,
    B: Body<Data = Bytes, Error: Debug>,
{
    type Body = B;
}

/// A plain `GET /`.
pub(crate) fn plain_get() -> Request<()> {
    Request::get("/").body(()).expect("request")
}

/// `GET /` with `Cache-Control: no-store`: the cache neither answers nor stores it.
pub(crate) fn no_store_get() -> Request<()> {
    Request::get("/")
        .header("cache-control", "no-store")
        .body(())
        .expect("request")
}

/// The request of `stack/full/hit`: a page of a list, gzip accepted.
pub(crate) fn stack_get() -> Request<()> {
    Request::get("/products?page=1&limit=2")
        .header("accept-encoding", "gzip")
        .body(())
        .expect("request")
}

/// The request of `stack/example/hit`: [`stack_get`]'s page under the example's `/api`.
pub(crate) fn example_get() -> Request<()> {
    Request::get("/api/products?page=1&limit=2")
        .header("accept-encoding", "gzip")
        .body(())
        .expect("request")
}

/// `GET /products?fields=id,name,category(name)`: a projection.
pub(crate) fn fields_get() -> Request<()> {
    Request::get("/products?fields=id,name,category(name)")
        .body(())
        .expect("request")
}

/// `GET /products?page=1&limit=2`: the first page of two.
pub(crate) fn page_get() -> Request<()> {
    Request::get("/products?page=1&limit=2")
        .body(())
        .expect("request")
}

/// The 10 KB JSON array of `layer/etag/...`.
static JSON_10KB: LazyLock<Bytes> = LazyLock::new(|| Bytes::from(corpus(10_000)));

/// Its strong tag, as `ETagLayer` computes it.
static JSON_10KB_TAG: LazyLock<HeaderValue> = LazyLock::new(|| etag_of(&JSON_10KB));

/// `GET /` with `If-None-Match` naming the 10 KB array's tag: `layer/etag/not_modified`.
pub(crate) fn not_modified_get() -> Request<()> {
    Request::get("/")
        .header("if-none-match", JSON_10KB_TAG.clone())
        .body(())
        .expect("request")
}

/// `layer/none/passthrough`: the bare service, answering a 1 KB JSON array, the reference
/// of every `layer/...` bench.
pub(crate) fn none()
-> impl Service<Request<()>, Response = Response<Full<Bytes>>, Error = Infallible, Future: Send> + Clone
{
    fixed_service(small_json(), "application/json")
}

/// The bare service answering `plain text` as `text/plain`, a body no JSON layer touches.
fn plain_text()
-> impl Service<Request<()>, Response = Response<Full<Bytes>>, Error = Infallible, Future: Send> + Clone
{
    fixed_service(Bytes::from_static(b"plain text"), "text/plain")
}

/// `layer/strip_nulls/passthrough`: a body that is not JSON; with [`plain_get`].
pub(crate) fn strip_nulls_passthrough() -> impl BenchService {
    StripNullsLayer::new().layer(plain_text())
}

/// `layer/strip_nulls/json_1KB`: the 1 KB array stripped; with [`plain_get`].
pub(crate) fn strip_nulls_json() -> impl BenchService {
    StripNullsLayer::new().layer(none())
}

/// `layer/etag/json_10KB` (with [`plain_get`]: the 10 KB body read, hashed, tagged) and
/// `layer/etag/not_modified` (with [`not_modified_get`]: read, hashed, answered `304`
/// without a body). The bare service answers 10 KB here, ten times `layer/none/passthrough`'s
/// body, so the difference includes moving the larger body.
pub(crate) fn etag() -> impl BenchService {
    ETagLayer::new().layer(fixed_service(JSON_10KB.clone(), "application/json"))
}

/// An in-memory cache keeping responses for an hour (the bare service sends no
/// `Cache-Control`).
pub(crate) fn cache_layer() -> CacheLayer {
    CacheLayer::builder(MemoryStore::new(64 * 1024 * 1024))
        .default_ttl(Duration::from_secs(3600))
        .build()
        .expect("valid cache configuration")
}

/// `layer/timing/passthrough`: timing measures every call; with [`plain_get`].
pub(crate) fn timing_passthrough() -> impl BenchService {
    TimingLayer::new().layer(none())
}

/// `layer/compress/passthrough`: with [`plain_get`] (no `Accept-Encoding`), nothing is
/// compressed.
pub(crate) fn compress_passthrough() -> impl BenchService {
    CompressionLayer::new().layer(none())
}

/// `layer/cache/passthrough`: with [`no_store_get`], the cache forwards and stores nothing.
pub(crate) fn cache_passthrough() -> impl BenchService {
    cache_layer().layer(none())
}

/// `layer/cache/hit`: with [`plain_get`] after a first call, answered from memory without
/// calling the bare service.
pub(crate) fn cache_hit() -> impl BenchService {
    cache_layer().layer(none())
}

/// `layer/fields/passthrough` with [`plain_get`] (no `fields=`, nothing is projected) and
/// `layer/fields/json_1KB` with [`fields_get`] (the 1 KB array projected).
pub(crate) fn fields() -> impl BenchService {
    SelectFieldsLayer::default().layer(none())
}

/// `layer/paginate/passthrough`: every JSON array is paged, so the pass-through case is a
/// body that is not JSON (as `layer/strip_nulls/passthrough`); with [`plain_get`].
pub(crate) fn paginate_passthrough() -> impl BenchService {
    PaginateLayer::default().layer(plain_text())
}

/// `layer/paginate/json_1KB`: the 1 KB array paged; with [`page_get`].
pub(crate) fn paginate_json() -> impl BenchService {
    PaginateLayer::default().layer(none())
}

/// `stack/full/hit`: the towerkit layers of the example service's stack, outermost first
/// (`examples/service`), on the bare service, without the `Router` and tower-http layers
/// around them ([`example_stack`] has those); with [`stack_get`] after a first call, a cache hit that skips everything
/// below the cache.
pub(crate) fn full_stack() -> impl BenchService {
    ServiceBuilder::new()
        .layer(
            TimingLayer::builder()
                .server_timing(true)
                .build()
                .expect("the default thresholds are valid"),
        )
        .layer(cache_layer())
        .layer(CompressionLayer::new())
        .layer(StripNullsLayer::new())
        .layer(SelectFieldsLayer::default())
        .layer(PaginateLayer::default())
        .service(none())
}

/// `stack/example/hit`: the example service's whole production stack, built by the function
/// the service itself uses (`example_service::Stack::wrap`, from the default `Config`: the
/// in-memory cache, request id, trace, timeout, body limit, then the towerkit layers), on a
/// `Router` whose `/api/products` route answers the bare service's 1 KB array; with
/// [`example_get`] after a first call, a cache hit that never reaches the handler. No
/// database: the `Router` is the service's, its routes are not (the handlers need
/// PostgreSQL, and a hit never calls them).
pub(crate) fn example_stack() -> impl BenchService {
    use axum::routing::get;

    let config = example_service::Config::from_lookup(|_| None).expect("the default configuration");
    // Without `REDIS_URL` the cache is in memory: building it connects to nothing.
    let stack = towerkit_benches::runtime()
        .block_on(example_service::Stack::build(Arc::new(config)))
        .expect("the default layers");
    let body = small_json();
    let api = axum::Router::new().route(
        "/api/products",
        get(move || {
            let body = body.clone();
            async move { ([(http::header::CONTENT_TYPE, "application/json")], body) }
        }),
    );
    let router = stack.wrap(api, axum::Router::new());
    ServiceBuilder::new()
        .map_request(|request: Request<()>| request.map(|()| axum::body::Body::empty()))
        .service(router)
}
