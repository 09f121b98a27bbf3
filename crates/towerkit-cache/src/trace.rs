//! The cache's `tracing` spans: the decision for each cacheable request (`cache.lookup`),
//! each Redis operation (`cache.store`), and a background refresh (`cache.refresh`), with
//! attribute names in OpenTelemetry's style, which `tracing-opentelemetry` (or any
//! subscriber) turns into trace spans under the request's.
//!
//! The key is never recorded: it is a path and query, which can carry a client's data.
//! `cache.key.hash` (the first 64 bits of its SHA-256, in hex) tells keys apart across
//! spans and instances without showing them. Nothing is formatted, and no key hashed, for a
//! span nobody keeps.

use sha2::{Digest, Sha256};
use tracing::Span;
use tracing::field::Empty;

use crate::metrics::Outcome;
use crate::store::Tier;

/// The `tracing` target of these spans.
const TARGET: &str = "towerkit_cache";

/// The span of one cacheable request's cache decision (and, on a miss, its origin call):
/// `cache.key.hash` now; `cache.result` (`hit`, `stale`, `miss`) and `cache.tier` (`l1`,
/// `l2`, or none) once the cache has decided (see [`decided`]).
pub(crate) fn lookup(key: &str) -> Span {
    let span = tracing::info_span!(
        target: TARGET,
        "cache.lookup",
        cache.key.hash = Empty,
        cache.result = Empty,
        cache.tier = Empty,
        cache.coalesced = Empty,
    );
    if !span.is_disabled() {
        span.record("cache.key.hash", key_hash(key).as_str());
    }
    span
}

/// Records the cache's decision on the current span (the request's `cache.lookup`, entered
/// wherever the cache decides): called with the request counters, so every decision counted
/// is traced. A no-op when no span is current or the current one has no such fields.
pub(crate) fn decided(outcome: Outcome, tier: Option<Tier>) {
    // Without any subscriber there is no span to record on: skip the lookup of the
    // current span (a hit counts here on its fast path).
    if !tracing::dispatcher::has_been_set() {
        return;
    }
    let span = Span::current();
    if span.is_disabled() {
        return;
    }
    span.record("cache.result", outcome.as_str());
    if let Some(tier) = tier {
        span.record("cache.tier", tier.as_str());
    }
}

/// Links the current span (a request following another's origin call) to the span of the
/// call it waits for: that call serves several requests, so it is not their parent.
pub(crate) fn follows(origin: Option<&tracing::Id>) {
    let Some(origin) = origin else {
        return;
    };
    let span = Span::current();
    span.record("cache.coalesced", true);
    span.follows_from(origin.clone());
}

/// The id of the current span, for the requests that will follow this one's origin call;
/// `None` when nobody records spans.
pub(crate) fn current_id() -> Option<tracing::Id> {
    if !tracing::dispatcher::has_been_set() {
        return None;
    }
    Span::current().id()
}

/// The span of a background refresh of `key`: a root of its own (it outlives the request
/// that started it) linked to that request's span by `follows_from`.
pub(crate) fn refresh(key: &str) -> Span {
    let span = tracing::info_span!(
        target: TARGET,
        parent: None,
        "cache.refresh",
        cache.key.hash = Empty,
    );
    if span.is_disabled() {
        return span;
    }
    span.record("cache.key.hash", key_hash(key).as_str());
    if let Some(request) = Span::current().id() {
        span.follows_from(request);
    }
    span
}

/// The span of one operation on a remote store: `db.system.name` (`redis`),
/// `db.operation.name` (the store's operation: `fetch`, `store`, …) and `server.address`
/// (the node). The Redis key is not recorded, for the reason the cache key is not.
pub(crate) fn store_operation(name: &'static str, address: &str) -> Span {
    tracing::info_span!(
        target: TARGET,
        "cache.store",
        otel.name = name,
        otel.kind = "client",
        db.system.name = "redis",
        db.operation.name = name,
        server.address = address,
    )
}

/// The first 64 bits of the SHA-256 of `key`, in hex: the same on every instance, and not
/// the key.
pub(crate) fn key_hash(key: &str) -> String {
    let digest = Sha256::digest(key.as_bytes());
    digest[..8]
        .iter()
        .map(|byte| format!("{byte:02x}"))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn key_hash_is_stable_hex_and_not_the_key() {
        let hash = key_hash("/products?page=2");
        assert_eq!(hash.len(), 16);
        assert!(hash.chars().all(|c| c.is_ascii_hexdigit()));
        assert_eq!(hash, key_hash("/products?page=2"));
        assert_ne!(hash, key_hash("/products?page=3"));
        assert!(!hash.contains("products"));
    }
}
