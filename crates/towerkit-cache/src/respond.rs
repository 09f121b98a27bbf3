//! Building the responses the cache sends: from a stored entry (conditional requests, ranges,
//! `Age`, `Cache-Status`), or an origin response passed through unstored.

use std::sync::LazyLock;

use bytes::Bytes;
use http::header::{
    AGE, CACHE_CONTROL, CONTENT_LENGTH, CONTENT_LOCATION, CONTENT_RANGE, DATE, ETAG, EXPIRES,
    IF_MODIFIED_SINCE, IF_NONE_MATCH, IF_RANGE, LAST_MODIFIED, RANGE, VARY,
};
use http::{HeaderMap, HeaderValue, Method, Response, StatusCode};
use towerkit_http::CACHE_STATUS;

use crate::body::CacheBody;
use crate::cdn;
use crate::config::Config;
use crate::control::SURROGATE_CONTROL;
use crate::entry::{Entry, Policy, parse_tags};
use crate::freshness::{date_header, parse_http_date};
use crate::key::path_tag;
use crate::status::{Labels, Status, TABLE_MAX, X_CACHE, cache_status, hit_status, label, x_cache};

/// `Age` values `0..=TABLE_MAX`, built once: a hit clones one instead of formatting.
static AGES: LazyLock<Box<[HeaderValue]>> =
    LazyLock::new(|| (0..=TABLE_MAX).map(HeaderValue::from).collect());

fn age_value(seconds: u64) -> HeaderValue {
    match AGES.get(seconds as usize) {
        Some(value) => value.clone(),
        None => HeaderValue::from(seconds),
    }
}

/// Fills the `Age` and `Cache-Status` placeholders of a clone of [`Entry::head`] in place
/// (no allocation for fresh hits), and adds `X-Cache` when configured.
fn fill_head(headers: &mut HeaderMap, labels: &Labels<'_>, status: Status, age: u64, ttl: i64) {
    let status_value = match status {
        Status::Hit { coalesced: false } => hit_status(labels, ttl),
        status => cache_status(labels.name, status, ttl),
    };
    // One pass instead of two lookups. Ours is the last `Cache-Status` value (RFC 9211 lists
    // caches from the origin outwards), and values of one field are visited in order.
    let mut status_slot = None;
    for (name, value) in headers.iter_mut() {
        if name == AGE {
            *value = age_value(age);
        } else if name == CACHE_STATUS {
            status_slot = Some(value);
        }
    }
    if let Some(slot) = status_slot {
        *slot = status_value;
    }
    if labels.x_cache {
        headers.insert(X_CACHE, x_cache(status));
    }
}

/// Builds the response a stored entry gives `method`/`request`: a `304` when the request's
/// validators match, a `206` for a satisfiable single byte range of a `200`, else the entry
/// itself (without body for HEAD), with `Age` and `Cache-Status`.
pub(crate) fn respond<B>(
    entry: &Entry,
    method: &Method,
    request: &HeaderMap,
    now: u64,
    status: Status,
    labels: &Labels<'_>,
) -> Response<CacheBody<B>> {
    let age = entry.meta.age(now);
    let mut ttl = (entry.meta.lifetime as i64 - age as i64).div_euclid(1000);
    if status == Status::Stale {
        // Stale by less than a second still reads as stale.
        ttl = ttl.min(-1);
    }

    if not_modified(entry, request) {
        let mut headers = HeaderMap::with_capacity(10);
        for name in [
            CACHE_CONTROL,
            CONTENT_LOCATION,
            DATE,
            ETAG,
            EXPIRES,
            VARY,
            LAST_MODIFIED,
        ] {
            for value in entry.headers.get_all(&name) {
                headers.append(name.clone(), value.clone());
            }
        }
        headers.insert(AGE, age_value(age / 1000));
        label(&mut headers, labels, status, ttl);
        let mut response = Response::new(CacheBody::empty());
        *response.status_mut() = StatusCode::NOT_MODIFIED;
        *response.headers_mut() = headers;
        return response;
    }

    let mut headers = entry.head.clone();
    fill_head(&mut headers, labels, status, age / 1000, ttl);
    let mut status_code = entry.status;
    let mut body = entry.body.clone();

    if entry.status == StatusCode::OK
        && method == Method::GET
        && let Some(range) = request.get(RANGE)
        && if_range_allows(entry, request)
    {
        match byte_range(range, body.len() as u64) {
            Range::Full => {}
            Range::Partial(start, end) => {
                let total = body.len();
                body = body.slice(start as usize..=end as usize);
                status_code = StatusCode::PARTIAL_CONTENT;
                let content_range = format!("bytes {start}-{end}/{total}");
                headers.insert(
                    CONTENT_RANGE,
                    HeaderValue::from_maybe_shared(Bytes::from(content_range))
                        .unwrap_or(HeaderValue::from_static("bytes */0")),
                );
                headers.insert(CONTENT_LENGTH, HeaderValue::from(body.len()));
            }
            Range::Unsatisfiable => {
                // No representation is sent: none of its fields either (no `Content-Type`
                // announcing a body that is not there), only where the bytes end.
                status_code = StatusCode::RANGE_NOT_SATISFIABLE;
                let content_range = format!("bytes */{}", body.len());
                let mut bare = HeaderMap::with_capacity(6);
                for name in [DATE, CACHE_CONTROL] {
                    for value in entry.headers.get_all(&name) {
                        bare.append(name.clone(), value.clone());
                    }
                }
                bare.insert(
                    CONTENT_RANGE,
                    HeaderValue::from_maybe_shared(Bytes::from(content_range))
                        .unwrap_or(HeaderValue::from_static("bytes */0")),
                );
                bare.insert(CONTENT_LENGTH, HeaderValue::from_static("0"));
                bare.insert(AGE, age_value(age / 1000));
                label(&mut bare, labels, status, ttl);
                headers = bare;
                body = Bytes::new();
            }
        }
    }

    let body = if method == Method::HEAD {
        CacheBody::empty()
    } else {
        CacheBody::full(body)
    };
    let mut response = Response::new(body);
    *response.status_mut() = status_code;
    *response.headers_mut() = headers;
    response
}

/// An origin response passed through unstored: tag header, this cache's own targeted field
/// (and `Surrogate-Control` when acting as a surrogate) removed, `Cache-Status` added. The
/// cache did not handle the request (a bypass, an unsafe method), so the tag fields carry
/// the response's own tags, without a path tag.
pub(crate) fn forwarded<B>(
    response: Response<B>,
    config: &Config,
    status: Status,
) -> Response<CacheBody<B>> {
    let (mut head, body) = response.into_parts();
    strip_private_headers(&mut head.headers, config, None);
    label(&mut head.headers, &config.labels(), status, 0);
    Response::from_parts(head, CacheBody::stream(body))
}

/// Removes what only the cache may see from a response going to the client, and writes the
/// tag fields (`send_tags_as`) from its tags and, when given, the request's path tag.
pub(crate) fn strip_private_headers(headers: &mut HeaderMap, config: &Config, path: Option<&str>) {
    let policy = &config.policy;
    // Most responses carry none of these: one pass over the few names present costs less
    // than a hashed lookup of each private field (the names are not standard headers).
    let (mut tag, mut own, mut surrogate) = (false, false, false);
    for name in headers.keys() {
        tag |= *name == policy.tag_header;
        own |= *name == policy.targets.own;
        surrogate |= *name == SURROGATE_CONTROL;
    }
    if !policy.send_tags.is_empty() {
        send_tags(headers, policy, tag, path);
    } else if tag {
        headers.remove(&policy.tag_header);
    }
    if own {
        headers.remove(&policy.targets.own);
    }
    if surrogate && policy.surrogate.is_some() {
        headers.remove(SURROGATE_CONTROL);
    }
}

/// Replaces the tag header with the tag fields: the response's tags (`tag`: it has the tag
/// header) and the path tag, as [`prepare`](crate::entry::prepare) stores them.
#[cold]
fn send_tags(headers: &mut HeaderMap, policy: &Policy, tag: bool, path: Option<&str>) {
    let mut tags = if tag {
        parse_tags(headers, &policy.tag_header)
    } else {
        Vec::new()
    };
    if tag {
        headers.remove(&policy.tag_header);
    }
    if let Some(path) = path {
        tags.push(path_tag(path).into_boxed_str());
    }
    cdn::set_tag_fields(headers, &policy.send_tags, tags.iter().map(|tag| &**tag));
}

/// Whether the request's conditionals say the client's copy is current (RFC 9110 §13.2.2):
/// `If-None-Match` (weak comparison) takes precedence over `If-Modified-Since`, which is
/// compared with `Last-Modified`, or `Date` without one (RFC 9111 §4.3.2).
pub(crate) fn not_modified(entry: &Entry, request: &HeaderMap) -> bool {
    if !entry.status.is_success() {
        return false;
    }
    if request.contains_key(IF_NONE_MATCH) {
        let Some(etag) = entry.headers.get(ETAG) else {
            return false;
        };
        return request
            .get_all(IF_NONE_MATCH)
            .iter()
            .any(|value| etag_list_matches(value.as_bytes(), etag.as_bytes(), false));
    }
    let Some(since) = request.get(IF_MODIFIED_SINCE).and_then(parse_http_date) else {
        return false;
    };
    let modified =
        date_header(&entry.headers, &LAST_MODIFIED).or_else(|| date_header(&entry.headers, &DATE));
    modified.is_some_and(|modified| modified <= since)
}

/// Whether an `If-Range` (absent, or matching the entry exactly) lets a range be served.
fn if_range_allows(entry: &Entry, request: &HeaderMap) -> bool {
    let Some(condition) = request.get(IF_RANGE) else {
        return true;
    };
    let bytes = condition.as_bytes();
    if bytes.starts_with(b"\"") {
        return entry
            .headers
            .get(ETAG)
            .is_some_and(|etag| etag_list_matches(bytes, etag.as_bytes(), true));
    }
    match (
        parse_http_date(condition),
        date_header(&entry.headers, &LAST_MODIFIED),
    ) {
        (Some(since), Some(modified)) => since == modified,
        _ => false,
    }
}

/// Whether `etag` is in the entity-tag `list` (or the list is `*`). Weak comparison ignores
/// `W/`; strong comparison needs both strong and equal.
fn etag_list_matches(list: &[u8], etag: &[u8], strong: bool) -> bool {
    let (etag_weak, etag_opaque) = split_weak(etag);
    if strong && etag_weak {
        return false;
    }
    let mut rest = list;
    loop {
        while let [b' ' | b'\t' | b',', tail @ ..] = rest {
            rest = tail;
        }
        if rest.is_empty() {
            return false;
        }
        if rest[0] == b'*' {
            return true;
        }
        let (weak, after_weak) = match rest {
            [b'W' | b'w', b'/', tail @ ..] => (true, tail),
            _ => (false, rest),
        };
        let (opaque, tail) = match after_weak {
            [b'"', inner @ ..] => match inner.iter().position(|&b| b == b'"') {
                Some(end) => (&after_weak[..end + 2], &inner[end + 1..]),
                None => return false,
            },
            _ => {
                // An unquoted tag: up to the next comma.
                let end = after_weak
                    .iter()
                    .position(|&b| b == b',')
                    .unwrap_or(after_weak.len());
                (&after_weak[..end], &after_weak[end..])
            }
        };
        if opaque.trim_ascii() == etag_opaque && !(strong && weak) {
            return true;
        }
        rest = tail;
    }
}

fn split_weak(etag: &[u8]) -> (bool, &[u8]) {
    match etag {
        [b'W' | b'w', b'/', tail @ ..] => (true, tail.trim_ascii()),
        _ => (false, etag.trim_ascii()),
    }
}

/// A byte range request against a body of `len` bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Range {
    /// Serve the whole body (no usable single byte range).
    Full,
    /// Serve bytes `start..=end`.
    Partial(u64, u64),
    /// No byte of the range exists: `416`.
    Unsatisfiable,
}

/// Interprets a `Range` header (RFC 9110 §14.2): one `bytes` range; several ranges or other
/// units are answered with the whole body, which the RFC allows.
pub(crate) fn byte_range(value: &HeaderValue, len: u64) -> Range {
    let Ok(text) = value.to_str() else {
        return Range::Full;
    };
    let Some(spec) = text.trim().strip_prefix("bytes=") else {
        return Range::Full;
    };
    if spec.contains(',') {
        return Range::Full;
    }
    let Some((first, last)) = spec.trim().split_once('-') else {
        return Range::Full;
    };
    let parse = |text: &str| -> Option<u64> {
        let text = text.trim();
        (!text.is_empty() && text.bytes().all(|b| b.is_ascii_digit()))
            .then(|| text.parse().ok())
            .flatten()
    };
    match (first.trim().is_empty(), parse(first), parse(last)) {
        // `bytes=-N`: the last N bytes.
        (true, _, Some(suffix)) => {
            if suffix == 0 || len == 0 {
                Range::Unsatisfiable
            } else {
                Range::Partial(len.saturating_sub(suffix), len - 1)
            }
        }
        (false, Some(start), end) => {
            if !last.trim().is_empty() && end.is_none() {
                return Range::Full;
            }
            if end.is_some_and(|end| end < start) {
                return Range::Full;
            }
            if start >= len {
                return Range::Unsatisfiable;
            }
            Range::Partial(start, end.map_or(len - 1, |end| end.min(len - 1)))
        }
        _ => Range::Full,
    }
}

#[cfg(test)]
mod tests {
    use std::sync::OnceLock;

    use super::*;
    use crate::test_support::{self, NOW, headers};

    fn entry(response: &[(&str, &str)]) -> Entry {
        test_support::entry(response, &[], "/", b"0123456789")
    }

    #[test]
    fn if_none_match_uses_weak_comparison() {
        let stored = entry(&[("cache-control", "max-age=60"), ("etag", "W/\"abc\"")]);
        assert!(not_modified(
            &stored,
            &headers(&[("if-none-match", "\"abc\"")])
        ));
        assert!(not_modified(
            &stored,
            &headers(&[("if-none-match", "\"x\", W/\"abc\", \"y\"")])
        ));
        assert!(not_modified(&stored, &headers(&[("if-none-match", "*")])));
        assert!(!not_modified(
            &stored,
            &headers(&[("if-none-match", "\"abcd\"")])
        ));
    }

    #[test]
    fn if_none_match_takes_precedence_over_if_modified_since() {
        let stored = entry(&[
            ("cache-control", "max-age=60"),
            ("etag", "\"a\""),
            ("last-modified", "Mon, 01 Jan 2024 00:00:00 GMT"),
        ]);
        let both = headers(&[
            ("if-none-match", "\"b\""),
            ("if-modified-since", "Tue, 02 Jan 2024 00:00:00 GMT"),
        ]);
        assert!(!not_modified(&stored, &both));
        assert!(not_modified(
            &stored,
            &headers(&[("if-modified-since", "Tue, 02 Jan 2024 00:00:00 GMT")])
        ));
        assert!(not_modified(
            &stored,
            &headers(&[("if-modified-since", "Monday, 01-Jan-24 00:00:00 GMT")])
        ));
        assert!(!not_modified(
            &stored,
            &headers(&[("if-modified-since", "Sun, 31 Dec 2023 00:00:00 GMT")])
        ));
    }

    #[test]
    fn byte_ranges() {
        let range = |text: &str| byte_range(&HeaderValue::from_str(text).unwrap(), 10);
        assert_eq!(range("bytes=0-1"), Range::Partial(0, 1));
        assert_eq!(range("bytes=1-"), Range::Partial(1, 9));
        assert_eq!(range("bytes=-1"), Range::Partial(9, 9));
        assert_eq!(range("bytes=-50"), Range::Partial(0, 9));
        assert_eq!(range("bytes=5-50"), Range::Partial(5, 9));
        assert_eq!(range("bytes=10-"), Range::Unsatisfiable);
        assert_eq!(range("bytes=0-1,3-4"), Range::Full);
        assert_eq!(range("items=0-1"), Range::Full);
        assert_eq!(range("bytes=3-1"), Range::Full);
        assert_eq!(range("bytes=a-1"), Range::Full);
    }

    #[test]
    fn ranges_are_served_from_complete_entries() {
        let stored = entry(&[("cache-control", "max-age=60")]);
        let labels = Labels {
            name: "towerkit",
            x_cache: false,
            hits: &OnceLock::new(),
        };
        let response: Response<CacheBody<http_body_util::Empty<Bytes>>> = respond(
            &stored,
            &Method::GET,
            &headers(&[("range", "bytes=2-4")]),
            NOW,
            Status::Hit { coalesced: false },
            &labels,
        );
        assert_eq!(response.status(), StatusCode::PARTIAL_CONTENT);
        assert_eq!(response.headers()[CONTENT_RANGE], "bytes 2-4/10");
        assert_eq!(response.headers()[CONTENT_LENGTH], "3");
    }

    #[test]
    fn an_unsatisfiable_range_sends_no_representation_fields() {
        let stored = entry(&[
            ("cache-control", "max-age=60"),
            ("content-type", "application/json"),
            ("link", "</p?page=2>"),
        ]);
        let labels = Labels {
            name: "towerkit",
            x_cache: false,
            hits: &OnceLock::new(),
        };
        let response: Response<CacheBody<http_body_util::Empty<Bytes>>> = respond(
            &stored,
            &Method::GET,
            &headers(&[("range", "bytes=-0")]),
            NOW,
            Status::Hit { coalesced: false },
            &labels,
        );
        assert_eq!(response.status(), StatusCode::RANGE_NOT_SATISFIABLE);
        assert_eq!(response.headers()[CONTENT_RANGE], "bytes */10");
        assert_eq!(response.headers()[CONTENT_LENGTH], "0");
        assert!(!response.headers().contains_key("content-type"));
        assert!(!response.headers().contains_key("link"));
        assert!(response.headers().contains_key(CACHE_STATUS));
    }

    #[test]
    fn hits_carry_age_and_cache_status() {
        let stored = entry(&[("cache-control", "max-age=60")]);
        let labels = Labels {
            name: "towerkit",
            x_cache: true,
            hits: &OnceLock::new(),
        };
        let response: Response<CacheBody<http_body_util::Empty<Bytes>>> = respond(
            &stored,
            &Method::GET,
            &HeaderMap::new(),
            NOW + 18_500,
            Status::Hit { coalesced: false },
            &labels,
        );
        assert_eq!(response.headers()[AGE], "18");
        assert_eq!(response.headers()[CACHE_STATUS], "towerkit; hit; ttl=41");
        assert_eq!(response.headers()[X_CACHE], "HIT");
    }
}
