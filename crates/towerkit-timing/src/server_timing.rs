//! The `Server-Timing` response header (W3C Server Timing): `total`, `db` from the
//! request's queries, and `cache` from the response's `Cache-Status` (RFC 9211).

use std::cell::RefCell;
use std::time::Duration;

use http::header::{HeaderMap, HeaderName};
use towerkit_http::CACHE_STATUS;

use crate::collector::RequestTimings;

/// The `Server-Timing` header.
pub(crate) const SERVER_TIMING: HeaderName = HeaderName::from_static("server-timing");

/// The `Server-Timing` value for a call: `total`, then `db` when queries ran, then `cache`
/// when the response carries a `Cache-Status`. Durations in milliseconds, to a tenth
/// (rounded half up on whole microseconds). Written by hand into one buffer: on a cache hit
/// this is much of what timing costs, and `format!` of a float is several hundred
/// instructions.
pub(crate) fn server_timing_value(
    total: Duration,
    timings: &RequestTimings,
    cache: Option<&str>,
) -> String {
    let mut value = String::with_capacity(64);
    value.push_str("total;dur=");
    push_millis(&mut value, total);
    let queries = timings.queries();
    if queries > 0 {
        value.push_str(", db;dur=");
        push_millis(&mut value, timings.db_time());
        value.push_str(";desc=\"");
        push_decimal(&mut value, queries as u64);
        value.push_str(if queries == 1 {
            " query\""
        } else {
            " queries\""
        });
    }
    if let Some(cache) = cache {
        value.push_str(", cache;desc=\"");
        value.push_str(cache);
        value.push('"');
    }
    value
}

/// `duration` in milliseconds with one decimal: `12.4`.
fn push_millis(value: &mut String, duration: Duration) {
    let tenths = (duration.as_micros().saturating_add(50) / 100).min(u128::from(u64::MAX)) as u64;
    push_decimal(value, tenths / 10);
    value.push('.');
    push_decimal(value, tenths % 10);
}

/// `n` in decimal digits.
fn push_decimal(value: &mut String, mut n: u64) {
    let mut digits = [0u8; 20];
    let mut at = digits.len();
    loop {
        at -= 1;
        digits[at] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            break;
        }
    }
    for &digit in &digits[at..] {
        value.push(char::from(digit));
    }
}

/// What the nearest cache did, from the last member of the response's `Cache-Status`
/// (RFC 9211): `hit`; `stale` (a hit with a negative `ttl`, or `fwd=stale`); `bypass`
/// (`fwd=bypass`, `fwd=method` or `fwd=request`); `miss` (any other `fwd`). `None` without
/// the header or when the member says neither. Read as bytes: the tokens it looks for are
/// ASCII, and anything else in the field only passes by.
pub(crate) fn cache_status_desc(headers: &HeaderMap) -> Option<&'static str> {
    let line = headers.get_all(CACHE_STATUS).iter().next_back()?.as_bytes();
    LAST_READ.with(|last| last.borrow_mut().desc(line))
}

/// The longest `Cache-Status` line [`LastRead`] keeps.
const LAST_READ_MAX: usize = 64;

thread_local! {
    /// The `Cache-Status` line this thread read last, and what it said: hits of one entry
    /// carry the same line, which is then compared, not parsed again.
    static LAST_READ: RefCell<LastRead> = const {
        RefCell::new(LastRead {
            line: [0; LAST_READ_MAX],
            len: usize::MAX,
            desc: None,
        })
    };
}

/// A `Cache-Status` line (its first [`LAST_READ_MAX`] bytes; `len` is `usize::MAX` while
/// it holds none) and its [`describe`].
struct LastRead {
    line: [u8; LAST_READ_MAX],
    len: usize,
    desc: Option<&'static str>,
}

impl LastRead {
    /// `describe(line)`, from the last line read when it is the same.
    fn desc(&mut self, line: &[u8]) -> Option<&'static str> {
        if line.len() == self.len && self.line.get(..line.len()) == Some(line) {
            return self.desc;
        }
        let desc = describe(line);
        if let Some(kept) = self.line.get_mut(..line.len()) {
            kept.copy_from_slice(line);
            self.len = line.len();
            self.desc = desc;
        }
        desc
    }
}

/// What a `Cache-Status` field line says of the nearest cache: see [`cache_status_desc`].
fn describe(line: &[u8]) -> Option<&'static str> {
    let member = last_member(line);
    let mut hit = false;
    let mut stale = false;
    let mut fwd: Option<&[u8]> = None;
    // The first item is the cache's name; parameters follow.
    for param in member.split(|&b| b == b';').skip(1).map(<[u8]>::trim_ascii) {
        match param.iter().position(|&b| b == b'=') {
            None => hit |= param == b"hit",
            Some(at) => {
                let value = param[at + 1..].trim_ascii();
                match param[..at].trim_ascii() {
                    b"hit" => hit = value == b"?1",
                    b"ttl" => stale = value.first() == Some(&b'-'),
                    b"fwd" => fwd = Some(value),
                    _ => {}
                }
            }
        }
    }
    if hit {
        return Some(if stale { "stale" } else { "hit" });
    }
    Some(match fwd? {
        b"stale" => "stale",
        b"bypass" | b"method" | b"request" => "bypass",
        _ => "miss",
    })
}

/// The last top-level member of a structured-field list (commas inside quoted strings do
/// not split).
fn last_member(line: &[u8]) -> &[u8] {
    if !line.contains(&b'"') {
        return match line.iter().rposition(|&b| b == b',') {
            Some(comma) => &line[comma + 1..],
            None => line,
        };
    }
    let mut start = 0;
    let mut quoted = false;
    let mut escaped = false;
    for (i, &b) in line.iter().enumerate() {
        match b {
            _ if escaped => escaped = false,
            b'\\' if quoted => escaped = true,
            b'"' => quoted = !quoted,
            b',' if !quoted => start = i + 1,
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
    fn a_line_read_again_says_what_it_said_the_first_time() {
        // Long lines share their first 64 bytes and differ after: never taken for the
        // line read before them.
        let padding = "x".repeat(70);
        let long_hit = format!("towerkit; key=\"{padding}\"; hit");
        let long_miss = format!("towerkit; key=\"{padding}\"; fwd=miss");
        let lines = [
            "towerkit; hit; ttl=30",
            "towerkit; hit; ttl=30",
            "towerkit; hit; ttl=-3",
            "towerkit; fwd=miss",
            "towerkit; fwd=miss",
            "towerkit; hit; ttl=30",
            long_hit.as_str(),
            long_miss.as_str(),
            long_hit.as_str(),
            "towerkit",
            "towerkit; hit",
        ];
        for line in lines {
            assert_eq!(desc(&[line]), describe(line.as_bytes()), "{line}");
        }
        assert_eq!(desc(&[long_miss.as_str()]), Some("miss"));
        assert_eq!(desc(&[long_hit.as_str()]), Some("hit"));
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
    fn durations_are_rounded_to_a_tenth_of_a_millisecond() {
        let timings = RequestTimings::default();
        for (micros, text) in [
            (0, "0.0"),
            (49, "0.0"),
            (50, "0.1"),
            (999, "1.0"),
            (1_049, "1.0"),
            (123_456_789, "123456.8"),
        ] {
            assert_eq!(
                server_timing_value(Duration::from_micros(micros), &timings, None),
                format!("total;dur={text}")
            );
        }
        let timings = tests_support::timings(&[("SELECT a", 12)], Duration::from_micros(40));
        assert_eq!(
            server_timing_value(Duration::from_secs(u64::MAX), &timings, None),
            format!(
                r#"total;dur={}.5, db;dur=0.0;desc="12 queries""#,
                u64::MAX / 10
            )
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
