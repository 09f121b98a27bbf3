//! `CacheLayer`: HTTP response caching for tower services, as RFC 9111 describes a shared
//! cache, with in-memory, Redis and tiered stores.
//!
//! Put it in front of an axum router or any hyper service: a hit answers from stored bytes
//! (already compressed, when compression sits inside the cache) without calling the inner
//! service; a miss forwards, streams the response to the client and stores it once complete.
//!
//! ```
//! use std::sync::Arc;
//! use std::sync::atomic::{AtomicUsize, Ordering};
//!
//! use axum::{Router, routing::get};
//! use towerkit_cache::{CacheLayer, MemoryStore};
//! # use tower::ServiceExt;
//!
//! let calls = Arc::new(AtomicUsize::new(0));
//! let counter = calls.clone();
//! let app = Router::new()
//!     .route("/products", get(move || async move {
//!         counter.fetch_add(1, Ordering::SeqCst);
//!         ([("cache-control", "max-age=60")], "[1,2,3]")
//!     }))
//!     .layer(CacheLayer::new(MemoryStore::new(64 * 1024 * 1024)));
//! # tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(async {
//! let request = || http::Request::get("/products").body(axum::body::Body::empty()).unwrap();
//! let first = app.clone().oneshot(request()).await.unwrap();
//! assert_eq!(first.headers()["cache-status"], "towerkit; fwd=miss; stored");
//! # axum::body::to_bytes(first.into_body(), usize::MAX).await.unwrap();
//! let second = app.oneshot(request()).await.unwrap();
//! let status = second.headers()["cache-status"].to_str().unwrap();
//! assert!(status.starts_with("towerkit; hit; ttl="), "{status}");
//! assert_eq!(calls.load(Ordering::SeqCst), 1);
//! # });
//! ```
//!
//! Configured for an application: cache list routes for 60 s when handlers say nothing,
//! keep tenants apart, ignore tracking parameters, skip `/admin`, send `X-Cache`.
//!
//! ```
//! use std::time::Duration;
//!
//! use http::HeaderName;
//! use towerkit_cache::{CacheLayer, MemoryStore};
//!
//! let layer = CacheLayer::builder(MemoryStore::new(256 * 1024 * 1024))
//!     .route_ttl("/products", Duration::from_secs(60))
//!     .key_header(HeaderName::from_static("x-tenant"))
//!     .ignore_query_param("utm_*")
//!     .predicate(|request: &http::request::Parts| !request.uri.path().starts_with("/admin"))
//!     .x_cache(true)
//!     .build()?; // fails only on settings it cannot use: see `ConfigError`
//! let handle = layer.handle(); // keep in the application state to invalidate
//! # let _ = handle;
//! # Ok::<(), towerkit_cache::ConfigError>(())
//! ```
//!
//! # What it does (RFC 9111, shared cache)
//!
//! - Freshness from `Surrogate-Control` (when enabled), `s-maxage`, `max-age`, `Expires`,
//!   then the route's default TTL, then heuristics (10 % of the `Last-Modified` age for
//!   heuristically cacheable statuses). `Age` is computed and sent on every stored answer;
//!   of an upstream `Age`, the first member counts (of a list or of repeated field lines)
//!   and an invalid one is ignored as if absent (RFC 9111 §5.1). `Expires` is read
//!   robustly: names and `GMT` in any case, a weekday that does not match the date ignored.
//! - Targeted cache-control fields (RFC 9213): a valid `Towerkit-Cache-Control` (the name
//!   is [`targeted_field`](CacheLayerBuilder::targeted_field)) and, on an edge cache
//!   ([`cdn_cache_control`](CacheLayerBuilder::cdn_cache_control)), `CDN-Cache-Control`
//!   replace `Cache-Control` and `Expires` for this cache's storage and freshness; an
//!   invalid one is ignored. The own field is removed from responses; `CDN-Cache-Control`
//!   is forwarded.
//! - Storage: not for `no-store`, `private`, `Vary: *`, partial (206) responses, unknown
//!   statuses with `must-understand`, or responses to `no-store` requests. Responses with
//!   `Set-Cookie` are not stored unless `private="Set-Cookie"` says the cookie may be
//!   dropped; a request with credentials (`Authorization`, or a `Cookie`) is neither
//!   answered from nor stored in the cache unless the response says `public`, `s-maxage`
//!   or `must-revalidate`. Hop-by-hop
//!   fields, fields named by `no-cache="…"`/`private="…"`, and the tag header are not
//!   stored.
//! - Request directives: `no-cache`, `no-store`, `max-age`, `max-stale`, `min-fresh`,
//!   `only-if-cached` (a `504` when nothing usable is stored), and `Pragma: no-cache`
//!   without `Cache-Control`.
//! - `Vary`, including `*`, matched on normalized values; `Accept-Encoding` is matched
//!   against the stored response's `Content-Encoding`, so that in practice there is one
//!   variant per coding (see [Keys](#keys)).
//! - Revalidation: a stale entry with `ETag`/`Last-Modified` is revalidated with
//!   `If-None-Match`/`If-Modified-Since`; a `304` updates the stored fields (§4.3.4) except
//!   those describing the stored body. Clients' own conditional requests get a `304` from a
//!   usable entry; `Range` requests get a `206` from a complete stored `200`.
//! - `stale-while-revalidate` serves stale and refreshes once in the background;
//!   `stale-if-error` (and the configurable [`grace`](CacheLayerBuilder::grace)) serves stale when
//!   the origin errors, answers 5xx, or exceeds [`origin_timeout`](CacheLayerBuilder::origin_timeout).
//!   `must-revalidate`, `proxy-revalidate`, `s-maxage` and `no-cache` forbid all stale use.
//! - Unsafe methods (anything but GET, HEAD, OPTIONS, TRACE, …) that succeed (2xx, 3xx)
//!   invalidate the target URI and the same-origin `Location` and `Content-Location`.
//! - Concurrent misses for one key make one origin call, in a process and across every
//!   instance sharing a Redis or tiered store (see *Collapsing* below); the others wait
//!   (bounded by [`coalesce_timeout`](CacheLayerBuilder::coalesce_timeout) from the call's
//!   start) and are answered with the stored response. When the response turns out not
//!   storable (known from its head), they go to the origin themselves at once: a response
//!   is never handed from one request to another unless it is storable. A request arriving
//!   after that bound does not wait at all.
//! - Bodies stream: the client gets the response as it arrives; it is stored only once
//!   complete and if within [`max_body`](CacheLayerBuilder::max_body) (8 MiB by default).
//! - Application policy: [`default_ttl`](CacheLayerBuilder::default_ttl) /
//!   [`route_ttl`](CacheLayerBuilder::route_ttl), [`key_header`](CacheLayerBuilder::key_header),
//!   [`ignore_query_param`](CacheLayerBuilder::ignore_query_param),
//!   [`predicate`](CacheLayerBuilder::predicate), tags from the `Cache-Tag` response header
//!   (removed before the client sees it) and a [`CacheHandle`] to invalidate by tag or
//!   path, purge, warm and read counts.
//! - A CDN in front: [`CdnHeadersLayer`] adds `CDN-Cache-Control` (RFC 9213) and
//!   `Surrogate-Control` to a route's cacheable responses;
//!   [`send_tags_as`](CacheLayerBuilder::send_tags_as) sends each response's tags on as
//!   `Surrogate-Key` or `xkey` (with the path tag, written into the stored entry: a hit
//!   costs nothing more); [`invalidation_hook`](CacheLayerBuilder::invalidation_hook)s are
//!   called by the handle after the store, to purge the CDN by the same keys
//!   ([`InvalidationHook`]; `VarnishPurger` with the `varnish` feature).
//! - Warming: [`CacheHandle::warm`] sends a list of `GET` requests through the service the
//!   caller passes in (with axum, the router after `Router::layer`, which wraps each route
//!   separately), so they pass the cache like any request and are stored by the same
//!   rules; at most `concurrency` at a time, without credentials, and reported one by one
//!   ([`WarmReport`]: stored, already fresh, filled by a concurrent call, not stored and
//!   why, failed). A key already fresh is not fetched again. With a shared store, warming
//!   instances take the key's lease like any miss: one origin call per key cluster-wide.
//! - Refresh-ahead ([`refresh_ahead`](CacheLayerBuilder::refresh_ahead), off by default): a
//!   hit in the last part of its entry's freshness lifetime (`0.1`: the last 10 %) is
//!   answered from the entry and refreshes the key once in the background, by the
//!   `stale-while-revalidate` machinery (conditional, one per key, under the key's lease),
//!   so that a key requested steadily never expires. The triggering response says
//!   `Cache-Status: towerkit; hit; ttl=5; detail=refresh-ahead` (RFC 9211 has no parameter
//!   for it; `detail` is the one meant for implementation-specific information).
//!
//! Every response through the layer carries `Cache-Status` (RFC 9211):
//! `towerkit; hit; ttl=42` (a negative ttl: served stale), `towerkit; fwd=miss; stored`,
//! `towerkit; fwd=stale; fwd-status=304; stored` (revalidated), `towerkit; fwd=bypass`
//! (not handled), `towerkit; fwd=method` (unsafe method); a forwarded response that is not
//! stored says why, `towerkit; fwd=miss; detail=set-cookie` (see
//! [`cache_status_detail`](CacheLayerBuilder::cache_status_detail) for the tokens);
//! optionally `X-Cache`.
//!
//! # Keys
//!
//! The key is the path and query (never dropped; under axum's `Router::nest`, the full
//! path from `OriginalUri`, with the `axum` feature), minus
//! [ignored parameters](CacheLayerBuilder::ignore_query_param), plus
//! [key headers](CacheLayerBuilder::key_header) and optionally the
//! [host](CacheLayerBuilder::key_host). GET and HEAD share entries. The path and query are taken
//! as sent: `?a=1&b=2` and `?b=2&a=1`, `?a=1` and `?A=1`, `?a=1` and `?a=%31` are
//! different entries (no reordering, no case folding, no percent-decoding), and ignored
//! parameter names match case-sensitively. Header values in keys and `Vary` comparisons are
//! compared byte for byte (no lossy decoding), so requests differing in any byte never share
//! an entry. Request headers outside the key and `Vary` (`X-Forwarded-Host`, `Cookie`, …) do
//! not select entries: a response that depends on one must name it in `Vary` or say
//! `private`/`no-store`. Requests with credentials (`Authorization`, `Cookie`) are the
//! exception: they share only responses that say `public`, `s-maxage` or `must-revalidate`
//! (with `Vary: Cookie` for per-session answers). Variants under a key are
//! selected by `Vary`: `Accept-Encoding` by the stored coding (a compressed variant answers
//! every request that ranks its coding first; the uncompressed one only requests accepting
//! no compression, including those without `Accept-Encoding`), `Accept-Language` ignoring
//! order, case and spaces (or by `Content-Language` matching the single preferred
//! language), any other header with its field lines combined and spaces around commas
//! removed.
//!
//! # Stores
//!
//! - [`MemoryStore`]: process memory (quick_cache), capacity in bytes.
//! - `RedisStore` (feature `redis`, default): entries in Redis in a compact binary form,
//!   tags as Redis sets; a failing or slow Redis (50 ms timeout) counts as a miss, is
//!   logged once and backed off from; never an error response.
//! - `TieredStore` (feature `redis`): memory in front of Redis; invalidations reach every
//!   instance's memory through Redis pub/sub.
//!
//! Redis Cluster is supported behind the `redis-cluster` feature.
//!
//! ## Redis over TLS
//!
//! The `redis-tls` feature (rustls, ring provider) accepts `rediss://` URLs, for a server,
//! the tiered store's pub/sub and a cluster alike. An ACL user and its password go in the
//! URL; a private CA's root certificate (PEM) replaces the system's roots:
//!
//! ```no_run
//! # #[cfg(feature = "redis-tls")]
//! # async fn run() -> Result<(), Box<dyn std::error::Error>> {
//! let store = towerkit_cache::RedisStore::builder("rediss://cache:secret@redis.internal:6380")
//!     .tls_root_certificate(std::fs::read("/etc/redis/ca.crt")?)
//!     .connect()
//!     .await?;
//! # let _ = store;
//! # Ok(())
//! # }
//! ```
//!
//! A failure to connect (Redis down, an unknown CA, a refused handshake, a wrong password)
//! never fails `connect` nor a request, for a single server or a cluster: the store is
//! built, its operations fail as misses, the failure is logged once (without the password)
//! and counted in `http_cache_redis_errors_total`, and the store keeps reconnecting. Watch
//! that counter (or `http_cache_requests_total{tier="l2"}` hits) after a deploy. Only an
//! invalid URL is an error (a `rediss://` URL without the `redis-tls` feature is one). The
//! redis crate builds its TLS configuration from rustls' process default provider: ring is
//! installed as that default when none is, so an application wanting aws-lc-rs installs it
//! first.
//!
//! # Metrics
//!
//! See [`metrics`] for every metric name and label.
//!
//! # Collapsing: what is per process and what is cluster-wide
//!
//! | guarantee | scope |
//! |---|---|
//! | one origin call per cold key at a time ([`coalesce`](CacheLayerBuilder::coalesce)) | every instance sharing a [`RedisStore`] or [`TieredStore`] (leases in Redis), else the process |
//! | followers get the leader's stored response even when the store write fails | the process (handed over directly) |
//! | one `stale-while-revalidate` or refresh-ahead refresh, one revalidation per key | every instance sharing the store (while one refreshes, the others skip; a refresh that finds a newer entry than the one it was started for skips too) |
//! | one origin call per key when instances warm the same keys ([`CacheHandle::warm`]) | every instance sharing the store (warming takes the miss path's lease) |
//! | a response not storable reaches nobody else; the key is "hit-for-miss" for [`hit_for_miss`](CacheLayerBuilder::hit_for_miss) (10 s) | every instance sharing the store |
//! | entries, tags, `invalidate_*`, `purge` | every instance sharing the store (a `TieredStore`'s memory tier through pub/sub) |
//!
//! How: the first instance to miss a key takes the key's lease in Redis (`SET NX PX` with
//! a random token, renewed every third of [`lease_ttl`](CacheLayerBuilder::lease_ttl)
//! (2 s) while its origin call runs, released by compare-and-delete), calls the origin,
//! stores the response and announces it on the store's lease channel; instances that
//! miss meanwhile wait (at most `coalesce_timeout`) and answer from the stored entry. A
//! holder that gives up (its client left, the origin failed) releases the lease at once;
//! one that dies lets it expire within `lease_ttl`; a waiter that reaches
//! `coalesce_timeout` goes to the origin itself. When Redis fails or is slow, leases are
//! skipped (never an error, never a wait longer than the store timeout) and each instance
//! coalesces on its own. Turn it off with
//! [`coalesce_across_instances(false)`](CacheLayerBuilder::coalesce_across_instances);
//! watch it in [`LEASE_EVENTS_TOTAL`](metrics::LEASE_EVENTS_TOTAL). A custom shared store
//! offers the same through [`Store::leases`].
//!
//! # Traces
//!
//! INFO `tracing` spans, with OpenTelemetry-style attribute names: `cache.lookup` per
//! cacheable request (`cache.result` = `hit`, `stale` or `miss`, `cache.tier`, and
//! `cache.key.hash`, the first 64 bits of the key's SHA-256: never the key itself), which
//! also covers a miss's origin call; `cache.store` per Redis operation (`db.system.name` =
//! `redis`, `db.operation.name`, `server.address`); `cache.refresh` for a background refresh,
//! a root span linked (`follows_from`) to the request that started it. A request that waits
//! for another's origin call is linked to that call's `cache.lookup` span with
//! `follows_from`, not parented by it.
//!
//! # Production checklist
//!
//! - **Stores**: `GET` responses the RFC allows a shared cache to store, with a lifetime
//!   from the response, from [`default_ttl`](CacheLayerBuilder::default_ttl) /
//!   [`route_ttl`](CacheLayerBuilder::route_ttl) (statuses of
//!   [`default_ttl_statuses`](CacheLayerBuilder::default_ttl_statuses) only: `200`, `203`,
//!   `204`, `300`, `301`, `308`), or from [`negative_ttl`](CacheLayerBuilder::negative_ttl)
//!   for `404`/`410` (off by default). Never a 5xx on the default TTL (only on its own freshness),
//!   never `Set-Cookie`, `private`, `no-store`, `Vary: *`, event streams, or responses to
//!   requests with `Authorization`/`Cookie` unless they say `public`/`s-maxage`. Check
//!   that per-user responses say `private` or `Vary` on what selects them.
//! - **Buffers**: a copy of each storable body up to
//!   [`max_body`](CacheLayerBuilder::max_body) (8 MiB) while it streams to the client;
//!   the memory store holds its capacity in bytes, in shards of at least 16 MiB (an entry
//!   must fit in one). `Cache-Status` says `stored` only for what the store will hold, and
//!   `detail=…` why anything else was not stored.
//! - **Keys on**: the path and query as sent (axum's `OriginalUri` under `Router::nest`,
//!   with the `axum` feature), plus [`key_header`](CacheLayerBuilder::key_header)s and
//!   optionally the host. A response that depends on anything else (a tenant header, a
//!   forwarded host) must be keyed on it or `Vary` on it.
//! - **More than one instance**: use a shared store (`RedisStore`, or `TieredStore` so
//!   that invalidations reach every instance's memory); a `MemoryStore` per process means
//!   `invalidate_*` and coalescing reach only that process. Give every instance the same
//!   configuration (TTLs, key headers, ignored parameters, cache name), or they will read
//!   each other's entries differently. What other layers put in a body (pagination
//!   cursors signed with a key, absolute links from a base URL) is cached with it: those
//!   layers' keys and base URLs must be the same on every instance (see their crates).
//! - **Redis in production**: `rediss://user:password@host` with the `redis-tls` feature
//!   and, for a private CA, [`tls_root_certificate`](RedisStoreBuilder::tls_root_certificate);
//!   one key prefix per application; a Redis that cannot be reached or fails TLS costs
//!   misses, not errors, so alert on `http_cache_redis_errors_total`.
//!
//! # Features
//!
//! | feature | default | what it enables |
//! |---|---|---|
//! | `axum` | yes | keys on axum's `OriginalUri`, so routers nested with `Router::nest` keep their entries apart |
//! | `redis` | yes | `RedisStore`, `RedisStoreBuilder` and `TieredStore` |
//! | `redis-cluster` | no | `RedisStore::cluster`: a store on a Redis Cluster (turns on `redis`) |
//! | `redis-tls` | no | `rediss://` URLs and `RedisStoreBuilder::tls_root_certificate` (rustls, ring; turns on `redis`) |
//! | `varnish` | no | `VarnishPurger`: an invalidation hook purging Varnish nodes by surrogate key (xkey), with hyper's client |

// docs.rs documents with a nightly rustdoc and `--cfg docsrs`: mark what each feature enables.
#![cfg_attr(docsrs, feature(doc_cfg))]

// The request paths, each in its own file: `service` (the entry point), `lookup` (what a
// stored entry answers, and hits), `miss` (the origin call: coalescing, revalidation,
// stale-on-error), `refresh` (stale-while-revalidate), `invalidate` (unsafe methods), with
// `respond`, `status` and `record` for the responses they build and the entries they store.
mod body;
mod cdn;
mod collapse;
mod config;
mod control;
mod entry;
mod error;
mod flight;
mod freshness;
mod future;
mod handle;
mod hook;
mod invalidate;
mod key;
mod layer;
mod lookup;
pub mod metrics;
mod miss;
mod predicate;
mod record;
mod refresh;
mod respond;
mod service;
mod status;
mod store;
mod targeted;
#[cfg(test)]
mod test_support;
mod trace;
#[cfg(feature = "varnish")]
mod varnish;
mod warm;

pub use body::CacheBody;
pub use cdn::{
    CDN_CACHE_CONTROL, CdnHeaders, CdnHeadersFuture, CdnHeadersLayer, CdnHeadersLayerBuilder,
    SURROGATE_CONTROL, SURROGATE_KEY, XKEY,
};
pub use entry::Entry;
pub use error::ConfigError;
pub use future::ResponseFuture;
pub use handle::{CacheHandle, CacheStats};
pub use hook::{HookError, HookFuture, Invalidation, InvalidationHook};
pub use layer::{CacheLayer, CacheLayerBuilder};
pub use predicate::Predicate;
pub use service::Cache;
pub use store::{
    Claim, DecodeError, LeaseEnd, LeaseToken, Leases, Lookup, MemoryStore, Store, StoreError,
    StoreFuture, StoreStats, Tier, Variants,
};
#[cfg(feature = "redis")]
pub use store::{RedisNode, RedisStore, RedisStoreBuilder, TieredStore};
#[cfg(feature = "varnish")]
pub use varnish::{VarnishPurger, VarnishPurgerBuilder};
pub use warm::{WarmOutcome, WarmReport, WarmResult};

/// The README's examples, compiled and run as doc tests (the README is in the package, so
/// `cargo test --doc` on the published crate runs them too).
#[doc = include_str!("../README.md")]
#[cfg(doctest)]
pub struct ReadmeDoctests;
