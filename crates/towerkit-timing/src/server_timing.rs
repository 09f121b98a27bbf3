//! The `Server-Timing` response header (W3C Server Timing): `total`, `db` from the
//! request's queries, and `cache` from the response's `Cache-Status` (RFC 9211).

use std::fmt::Write as _;
use std::time::Duration;

use http::header::{HeaderMap, HeaderName};
use towerkit_http::CACHE_STATUS;

use crate::collector::RequestTimings;
use crate::stopwatch::millis;

/// The `Server-Timing` header.
pub(crate) const SERVER_TIMING: HeaderName = HeaderName::from_static("server-timing");

/// The `Server-Timing` value for a call: `total`, then `db` when queries ran, then `cache`
/// when the response carries a `Cache-Status`. Durations in milliseconds.
pub(crate) fn server_timing_value(
    total: Duration,
    timings: &RequestTimings,
    cache: Option<&str>,
) -> String {
    let mut value = String::with_capacity(64);
    let _ = write!(value, "total;dur={:.1}", millis(total));
    let queries = timings.queries();
    if queries > 0 {
        let noun = if queries == 1 { "query" } else { "queries" };
        let _ = write!(
            value,
            ", db;dur={:.1};desc=\"{queries} {noun}\"",
            millis(timings.db_time())
        );
    }
    if let Some(cache) = cache {
        let _ = write!(value, ", cache;desc=\"{cache}\"");
    }
    value
}

/// What the nearest cache did, from the last member of the response's `Cache-Status`
/// (RFC 9211): `hit`; `stale` (a hit with a negative `ttl`, or `fwd=stale`); `bypass`
/// (`fwd=bypass`, `fwd=method` or `fwd=request`); `miss` (any other `fwd`). `None` without
/// the header or when the member says neither.
pub(crate) fn cache_status_desc(headers: &HeaderMap) -> Option<&'static str> {
    let line = headers
        .get_all(CACHE_STATUS)
        .iter()
        .next_back()?
        .to_str()
        .ok()?;
    let member = last_member(line).trim();
    let mut hit = false;
    let mut stale = false;
    let mut fwd = None;
    // The first item is the cache's name; parameters follow.
    for param in member.split(';').skip(1).map(str::trim) {
        match param.split_once('=') {
            None if param == "hit" => hit = true,
            Some(("hit", value)) => hit = value.trim() == "?1",
            Some(("ttl", value)) => stale = value.trim().starts_with('-'),
            Some(("fwd", value)) => fwd = Some(value.trim()),
            _ => {}
        }
    }
    if hit {
        return Some(if stale { "stale" } else { "hit" });
    }
    Some(match fwd? {
        "stale" => "stale",
        "bypass" | "method" | "request" => "bypass",
        _ => "miss",
    })
}

/// The last top-level member of a structured-field list (commas inside quoted strings do
/// not split).
fn last_member(line: &str) -> &str {
    let mut start = 0;
    let mut quoted = false;
    let mut escaped = false;
    for (i, c) in line.char_indices() {
        match c {
            _ if escaped => escaped = false,
            '\\' if quoted => escaped = true,
            '"' => quoted = !quoted,
            ',' if !quoted => start = i + 1,
            _ => {}
        }
    }
    &line[start..]
}

#[cfg(test)]
mod tests {
    use http::HeaderValue;

    use super::*;
    use crate::collector::tests_support;

    fn desc(values: &[&str]) -> Option<&'static str> {
        let mut headers = HeaderMap::new();
        for value in values {
            headers.append(CACHE_STATUS, HeaderValue::from_str(value).unwrap());
        }
        cache_status_desc(&headers)
    }

    #[test]
    fn cache_status_maps_to_hit_miss_stale() {
        assert_eq!(desc(&["towerkit; hit"]), Some("hit"));
        assert_eq!(desc(&["towerkit; hit; ttl=30"]), Some("hit"));
        assert_eq!(desc(&["towerkit; hit; ttl=-5"]), Some("stale"));
        assert_eq!(desc(&["towerkit; fwd=miss; stored"]), Some("miss"));
        assert_eq!(desc(&["towerkit; fwd=uri-miss"]), Some("miss"));
        assert_eq!(
            desc(&["towerkit; fwd=stale; fwd-status=304"]),
            Some("stale")
        );
        assert_eq!(desc(&["towerkit; fwd=bypass"]), Some("bypass"));
        assert_eq!(desc(&["towerkit; hit=?1"]), Some("hit"));
    }

    #[test]
    fn cache_status_uses_the_cache_nearest_the_client() {
        assert_eq!(
            desc(&["origin-cache; fwd=miss, towerkit; hit"]),
            Some("hit")
        );
        assert_eq!(
            desc(&["origin-cache; hit", "towerkit; fwd=miss"]),
            Some("miss")
        );
        assert_eq!(desc(&["towerkit; hit; detail=\"a, b\""]), Some("hit"));
    }

    #[test]
    fn cache_status_without_a_verdict_is_ignored() {
        assert_eq!(desc(&[]), None);
        assert_eq!(desc(&["towerkit"]), None);
        assert_eq!(desc(&["towerkit; detail=x"]), None);
    }

    #[test]
    fn server_timing_lists_total_db_and_cache() {
        let mut timings = RequestTimings::default();
        assert_eq!(
            server_timing_value(Duration::from_micros(1_240), &timings, None),
            "total;dur=1.2"
        );
        timings = tests_support::timings(
            &[("SELECT a", 2), ("SELECT b", 1)],
            Duration::from_micros(8_100),
        );
        assert_eq!(
            server_timing_value(Duration::from_micros(12_400), &timings, Some("miss")),
            r#"total;dur=12.4, db;dur=8.1;desc="3 queries", cache;desc="miss""#
        );
        timings = tests_support::timings(&[("SELECT a", 1)], Duration::from_micros(500));
        assert_eq!(
            server_timing_value(Duration::from_millis(1), &timings, None),
            r#"total;dur=1.0, db;dur=0.5;desc="1 query""#
        );
    }

    #[test]
    fn a_call_without_queries_has_total_and_cache() {
        let value = server_timing_value(
            Duration::from_micros(12_400),
            &RequestTimings::default(),
            Some("hit"),
        );
        assert_eq!(value, r#"total;dur=12.4, cache;desc="hit""#);
    }
}
