//! `Cache-Status` (RFC 9211) and `X-Cache`: what a response says about the cache.

use std::fmt::Write as _;
use std::sync::OnceLock;

use bytes::Bytes;
use http::{HeaderMap, HeaderName, HeaderValue};
use towerkit_http::CACHE_STATUS;

use crate::freshness::NotStorable;

/// Why a request went to the origin: the RFC 9211 `fwd` parameter.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Fwd {
    /// The cache was configured not to handle the request (method, `no-store`, predicate).
    Bypass,
    /// The request method is not cacheable (an unsafe method, which invalidates).
    Method,
    /// Nothing was stored under the key.
    Miss,
    /// Entries were stored under the key, but none matched the request's `Vary` headers.
    VaryMiss,
    /// The request's own directives (`no-cache`, `max-age`, `min-fresh`) asked to go on.
    Request,
    /// The stored entry was stale and had to be validated.
    Stale,
}

impl Fwd {
    /// The parameter's value in the header.
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Fwd::Bypass => "bypass",
            Fwd::Method => "method",
            Fwd::Miss => "miss",
            Fwd::VaryMiss => "vary-miss",
            Fwd::Request => "request",
            Fwd::Stale => "stale",
        }
    }
}

/// How a response relates to the cache, for `Cache-Status` (RFC 9211) and `X-Cache`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Status {
    /// Served from the cache without contacting the origin.
    Hit { coalesced: bool },
    /// Served fresh from the cache, in the entry's refresh-ahead window: this request
    /// started a background refresh (`detail=refresh-ahead`).
    RefreshAhead,
    /// Served stale from the cache.
    Stale,
    /// Forwarded to the origin.
    Forward {
        fwd: Fwd,
        fwd_status: Option<u16>,
        stored: bool,
        /// Why the response was not stored, when `Cache-Status` says so.
        detail: Option<NotStorable>,
    },
}

impl Status {
    /// Forwarded for `fwd`, neither revalidated nor stored.
    pub(crate) fn forward(fwd: Fwd) -> Self {
        Status::Forward {
            fwd,
            fwd_status: None,
            stored: false,
            detail: None,
        }
    }
}

/// What a response needs to say about the cache.
#[derive(Debug)]
pub(crate) struct Labels<'a> {
    pub(crate) name: &'a str,
    pub(crate) x_cache: bool,
    /// `Cache-Status` values of fresh hits by ttl, built on first use.
    pub(crate) hits: &'a OnceLock<Box<[HeaderValue]>>,
}

/// The largest `Age` and hit ttl answered from the precomputed tables.
pub(crate) const TABLE_MAX: u64 = 3600;

/// The `Cache-Status` of a fresh hit with `ttl` seconds left, from the table when it covers it.
pub(crate) fn hit_status(labels: &Labels<'_>, ttl: i64) -> HeaderValue {
    let table = labels.hits.get_or_init(|| {
        (0..=TABLE_MAX as i64)
            .map(|ttl| cache_status(labels.name, Status::Hit { coalesced: false }, ttl))
            .collect()
    });
    match usize::try_from(ttl).ok().and_then(|ttl| table.get(ttl)) {
        Some(value) => value.clone(),
        None => cache_status(labels.name, Status::Hit { coalesced: false }, ttl),
    }
}

/// The `Cache-Status` value for `status`; `ttl` in seconds for hits.
pub(crate) fn cache_status(name: &str, status: Status, ttl: i64) -> HeaderValue {
    let mut value = String::with_capacity(name.len() + 32);
    value.push_str(name);
    match status {
        Status::Hit { coalesced } => {
            let _ = write!(value, "; hit; ttl={ttl}");
            if coalesced {
                value.push_str("; collapsed");
            }
        }
        Status::RefreshAhead => {
            let _ = write!(value, "; hit; ttl={ttl}; detail=refresh-ahead");
        }
        Status::Stale => {
            let _ = write!(value, "; hit; ttl={ttl}");
        }
        Status::Forward {
            fwd,
            fwd_status,
            stored,
            detail,
        } => {
            value.push_str("; fwd=");
            value.push_str(fwd.as_str());
            if let Some(code) = fwd_status {
                let _ = write!(value, "; fwd-status={code}");
            }
            if stored {
                value.push_str("; stored");
            }
            if let Some(reason) = detail {
                value.push_str("; detail=");
                value.push_str(reason.as_str());
            }
        }
    }
    HeaderValue::from_maybe_shared(Bytes::from(value))
        .unwrap_or(HeaderValue::from_static("towerkit"))
}

/// The `X-Cache` field name.
pub(crate) const X_CACHE: HeaderName = HeaderName::from_static("x-cache");

/// The `X-Cache` value for `status`.
pub(crate) fn x_cache(status: Status) -> HeaderValue {
    HeaderValue::from_static(match status {
        Status::Hit { .. } | Status::RefreshAhead => "HIT",
        Status::Stale => "STALE",
        Status::Forward {
            fwd: Fwd::Bypass | Fwd::Method,
            ..
        } => "BYPASS",
        Status::Forward { .. } => "MISS",
    })
}

/// Adds `Cache-Status` (and `X-Cache`) to a response's headers.
pub(crate) fn label(headers: &mut HeaderMap, labels: &Labels<'_>, status: Status, ttl: i64) {
    headers.append(CACHE_STATUS, cache_status(labels.name, status, ttl));
    if labels.x_cache {
        headers.insert(X_CACHE, x_cache(status));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cache_status_for_forwarded_requests() {
        let status = Status::Forward {
            fwd: Fwd::Stale,
            fwd_status: Some(304),
            stored: true,
            detail: None,
        };
        assert_eq!(
            cache_status("edge", status, 0),
            "edge; fwd=stale; fwd-status=304; stored"
        );
        assert_eq!(
            cache_status("edge", Status::forward(Fwd::Miss), 0),
            "edge; fwd=miss"
        );
        assert_eq!(
            cache_status("edge", Status::forward(Fwd::VaryMiss), 0),
            "edge; fwd=vary-miss"
        );
        let not_stored = Status::Forward {
            fwd: Fwd::Miss,
            fwd_status: None,
            stored: false,
            detail: Some(NotStorable::Useless),
        };
        assert_eq!(
            cache_status("edge", not_stored, 0),
            "edge; fwd=miss; detail=no-freshness"
        );
        assert_eq!(
            cache_status("edge", Status::RefreshAhead, 7),
            "edge; hit; ttl=7; detail=refresh-ahead"
        );
        assert_eq!(x_cache(Status::RefreshAhead), "HIT");
    }
}
