//! Cache keys and `Vary` matching.
//!
//! The primary key names a resource: the path and query (never dropped: two queries are two
//! keys), optionally the host, minus ignored query parameters, plus configured request
//! headers (a tenant id). GET and HEAD share it. Under one key live the variants `Vary`
//! selects between; a variant is chosen by comparing *normalized* request header values:
//!
//! - `Accept-Encoding` is matched against the `Content-Encoding` the stored response
//!   actually has: a compressed variant answers every request that ranks its coding first
//!   (q-values and `*` honoured), however it spells `Accept-Encoding`, so in practice there
//!   is one variant per coding; the uncompressed variant answers only requests that accept
//!   no compression (or that have the exact preferences it was fetched for), so it never
//!   takes the place of a compressed one;
//! - `Accept-Language` ignores case, whitespace and the order of equally preferred
//!   languages, and a stored response whose `Content-Language` is the request's single
//!   most preferred language matches as well;
//! - any other header is compared with its field lines combined and whitespace around
//!   commas removed.

use std::borrow::Cow;
use std::fmt::Write as _;

use http::header::{
    ACCEPT_ENCODING, ACCEPT_LANGUAGE, CONTENT_ENCODING, CONTENT_LANGUAGE, HOST, VARY,
};
use http::{HeaderMap, HeaderName, Uri, request};

/// What goes into the primary key besides the path and query.
#[derive(Debug, Clone, Default)]
pub(crate) struct KeyRules {
    pub(crate) host: bool,
    pub(crate) headers: Vec<HeaderName>,
    pub(crate) ignored_params: Vec<String>,
}

/// The URI a request was sent to: axum's `OriginalUri` when a router put it there (with
/// the prefix `Router::nest` strips from the request's own URI), else the request's URI.
/// Keys, route TTLs, path tags and invalidation all read this one.
#[inline]
pub(crate) fn target_uri(parts: &request::Parts) -> &Uri {
    #[cfg(feature = "axum")]
    if let Some(axum::extract::OriginalUri(uri)) = parts.extensions.get() {
        return uri;
    }
    &parts.uri
}

/// The primary key of a request.
///
/// Borrowed from the request when the rules change nothing (no host, no key headers, no
/// ignored parameter in the query): a hit then builds no key at all.
pub(crate) fn primary_key<'a>(parts: &'a request::Parts, rules: &KeyRules) -> Cow<'a, str> {
    let path_and_query = target_uri(parts)
        .path_and_query()
        .map_or("/", |pq| pq.as_str());
    let untouched = !rules.host
        && rules.headers.is_empty()
        && (rules.ignored_params.is_empty() || !path_and_query.contains('?'));
    if untouched {
        return Cow::Borrowed(path_and_query);
    }
    Cow::Owned(key_for(
        path_and_query,
        &parts.headers,
        host_bytes(parts),
        rules,
    ))
}

/// The request's host: the URI authority, else the `Host` header.
pub(crate) fn host_bytes(parts: &request::Parts) -> Option<&[u8]> {
    target_uri(parts)
        .authority()
        .map(|a| a.as_str().as_bytes())
        .or_else(|| parts.headers.get(HOST).map(|h| h.as_bytes()))
}

/// Appends `bytes` to `out` without losing anything: visible ASCII, space and tab as they
/// are, any other byte (and `%` itself) as `%XX`. Distinct byte strings stay distinct, which
/// keys and `Vary` values must: a lossy conversion would let two requests share an entry.
pub(crate) fn escape_into(out: &mut String, bytes: &[u8]) {
    for &byte in bytes {
        if (byte.is_ascii_graphic() && byte != b'%') || byte == b' ' || byte == b'\t' {
            out.push(char::from(byte));
        } else {
            let _ = write!(out, "%{byte:02X}");
        }
    }
}

/// Trims optional whitespace (SP and HTAB, RFC 9110 §5.6.3) and nothing else.
fn trim_ows(mut bytes: &[u8]) -> &[u8] {
    while let [b' ' | b'\t', rest @ ..] = bytes {
        bytes = rest;
    }
    while let [rest @ .., b' ' | b'\t'] = bytes {
        bytes = rest;
    }
    bytes
}

/// The primary key for `path_and_query` requested with `headers`.
pub(crate) fn key_for(
    path_and_query: &str,
    headers: &HeaderMap,
    host: Option<&[u8]>,
    rules: &KeyRules,
) -> String {
    let mut key = String::with_capacity(path_and_query.len() + 16);
    if rules.host
        && let Some(host) = host
    {
        escape_into(&mut key, &host.to_ascii_lowercase());
    }
    match path_and_query.split_once('?') {
        Some((path, query)) if !rules.ignored_params.is_empty() => {
            key.push_str(path);
            let mut first = true;
            for pair in query.split('&') {
                let name = pair.split('=').next().unwrap_or_default();
                if rules
                    .ignored_params
                    .iter()
                    .any(|ignored| ignored_matches(ignored, name))
                {
                    continue;
                }
                key.push(if first { '?' } else { '&' });
                key.push_str(pair);
                first = false;
            }
        }
        _ => key.push_str(path_and_query),
    }
    for name in &rules.headers {
        key.push('\n');
        key.push_str(name.as_str());
        key.push('=');
        for (i, value) in headers.get_all(name).iter().enumerate() {
            if i > 0 {
                key.push(',');
            }
            escape_into(&mut key, value.as_bytes());
        }
    }
    key
}

/// `utm_*` matches every parameter starting with `utm_`; anything else matches exactly.
fn ignored_matches(pattern: &str, name: &str) -> bool {
    match pattern.strip_suffix('*') {
        Some(prefix) => name.starts_with(prefix),
        None => pattern == name,
    }
}

/// The tag every entry carries implicitly so that a path can be invalidated whatever its
/// query, host or key headers.
pub(crate) fn path_tag(path: &str) -> String {
    format!("{PATH_TAG_PREFIX}{path}")
}

/// The prefix of [`path_tag`]s.
pub(crate) const PATH_TAG_PREFIX: &str = "path:";

/// A response's `Vary`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Vary {
    /// `Vary: *` (anywhere in any field line): never reusable.
    Star,
    /// The named request headers, lowercase, deduplicated.
    Headers(Vec<HeaderName>),
}

/// Parses every `Vary` field line.
pub(crate) fn parse_vary(headers: &HeaderMap) -> Vary {
    let mut names: Vec<HeaderName> = Vec::new();
    for value in headers.get_all(VARY) {
        for name in value.as_bytes().split(|&b| b == b',') {
            let name = trim_ows(name);
            if name.is_empty() {
                continue;
            }
            // `*`, or anything that is not a field name: no request can be matched safely.
            let Ok(name) = HeaderName::from_bytes(name) else {
                return Vary::Star;
            };
            if name == "*" {
                return Vary::Star;
            }
            if !names.contains(&name) {
                names.push(name);
            }
        }
    }
    names.sort_by(|a, b| a.as_str().cmp(b.as_str()));
    Vary::Headers(names)
}

/// One `Vary`ed header of a stored variant and the normalized value it was stored for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct VaryRule {
    pub(crate) name: HeaderName,
    /// The normalized request value; `None` when the request did not send the header. For
    /// `Accept-Encoding`, the coding the stored response has and the normalized
    /// `Accept-Encoding` it was fetched for, as `coding|preferences`.
    pub(crate) value: Option<Box<str>>,
}

/// The rules for storing a response that `Vary`s on `names`, given the request that
/// fetched it and the response's headers.
pub(crate) fn vary_rules(
    names: &[HeaderName],
    request: &HeaderMap,
    response: &HeaderMap,
) -> Vec<VaryRule> {
    names
        .iter()
        .map(|name| {
            let value = if name == ACCEPT_ENCODING {
                let coding = content_coding(response);
                Some(format!("{coding}|{}", normalize_accept_encoding(request)).into_boxed_str())
            } else {
                normalize(name, request).map(String::into_boxed_str)
            };
            VaryRule {
                name: name.clone(),
                value,
            }
        })
        .collect()
}

/// The variant id of a set of rules: equal ids replace each other in the store.
pub(crate) fn variant_id(rules: &[VaryRule]) -> String {
    let mut id = String::new();
    for rule in rules {
        let _ = writeln!(
            id,
            "{}:{}",
            rule.name,
            rule.value.as_deref().unwrap_or("\u{0}")
        );
    }
    id
}

/// Whether a stored variant with `rules` (and response `headers`) may answer a request
/// with `request` headers.
pub(crate) fn matches(rules: &[VaryRule], response: &HeaderMap, request: &HeaderMap) -> bool {
    rules.iter().all(|rule| {
        if rule.name == ACCEPT_ENCODING {
            let stored = rule.value.as_deref().unwrap_or("identity|");
            let (coding, fetched_for) = stored.split_once('|').unwrap_or((stored, ""));
            return coding_matches(coding, fetched_for, request);
        }
        let value = normalize(&rule.name, request);
        if value.as_deref() == rule.value.as_deref() {
            return true;
        }
        if rule.name == ACCEPT_LANGUAGE
            && let (Some(language), Some(preferred)) =
                (response.get(CONTENT_LANGUAGE), preferred_language(request))
        {
            return language
                .to_str()
                .is_ok_and(|language| language.trim().eq_ignore_ascii_case(&preferred));
        }
        false
    })
}

/// The response's content coding, lowercase; `identity` when it has none.
pub(crate) fn content_coding(response: &HeaderMap) -> String {
    let mut coding = String::new();
    for value in response.get_all(CONTENT_ENCODING) {
        for part in value.as_bytes().split(|&b| b == b',') {
            let part = trim_ows(part);
            if part.is_empty() {
                continue;
            }
            if !coding.is_empty() {
                coding.push(',');
            }
            escape_into(&mut coding, &part.to_ascii_lowercase());
        }
    }
    if coding.is_empty() {
        coding.push_str("identity");
    }
    coding
}

/// Whether a variant whose response has `coding`, fetched for a request whose normalized
/// `Accept-Encoding` was `fetched_for`, may answer `request`:
///
/// - a request with the same `Accept-Encoding` preferences would get the same coding;
/// - a compressed variant also serves every request that ranks its coding first (highest
///   q-value, ties included): the client prefers it to anything else;
/// - the `identity` variant also serves requests that accept no other coding. It never
///   answers a client that accepts compression, so an uncompressed response stored for one
///   client cannot keep compressed variants from being stored for the others.
pub(crate) fn coding_matches(coding: &str, fetched_for: &str, request: &HeaderMap) -> bool {
    if same_accept_encoding(request, fetched_for) {
        return true;
    }
    if coding == "identity" {
        return coding_q(request, "identity") > 0
            && accept_encoding(request)
                .all(|(name, q)| q == 0 || name.eq_ignore_ascii_case("identity"));
    }
    let q = coding_q(request, coding);
    q > 0 && accept_encoding(request).all(|(_, other)| other <= q)
}

/// Whether `normalize_accept_encoding(request) == normalized`, without building the string:
/// this runs on every hit of a variant, where the normalized form was allocated, sorted and
/// formatted each time. Two normalized forms are equal when they hold the same members as
/// often (sorting is only the canonical order), each member a coding (lowercase) with its
/// q-value. A field line that is not text is normalized to a raw member: such a request
/// takes the slow path.
fn same_accept_encoding(request: &HeaderMap, normalized: &str) -> bool {
    let mut lines = request.get_all(ACCEPT_ENCODING).iter();
    if let (Some(line), None) = (lines.next(), lines.next())
        && let Some(same) = same_plain_codings(line.as_bytes(), normalized)
    {
        return same;
    }
    if request
        .get_all(ACCEPT_ENCODING)
        .iter()
        .any(|value| value.to_str().is_err())
    {
        return normalize_accept_encoding(request) == normalized;
    }
    let mut requested = [("", 0u16); MAX_MEMBERS];
    let mut count = 0;
    for member in accept_encoding(request) {
        if count == MAX_MEMBERS {
            return normalize_accept_encoding(request) == normalized;
        }
        requested[count] = member;
        count += 1;
    }
    let requested = &requested[..count];
    let mut stored = [("", 0u16); MAX_MEMBERS];
    let mut stored_count = 0;
    for member in normalized.split(',').filter(|member| !member.is_empty()) {
        let Some((name, q)) = member.rsplit_once(';') else {
            return false;
        };
        let Ok(q) = q.parse::<u16>() else {
            return false;
        };
        if stored_count == count {
            return false;
        }
        stored[stored_count] = (name, q);
        stored_count += 1;
    }
    if stored_count != count {
        return false;
    }
    let stored = &stored[..count];
    let same = |a: &(&str, u16), b: &(&str, u16)| a.1 == b.1 && a.0.eq_ignore_ascii_case(b.0);
    // As many members, and each member of the request as often in both: the same multiset.
    requested.iter().all(|member| {
        requested.iter().filter(|other| same(member, other)).count()
            == stored.iter().filter(|other| same(member, other)).count()
    })
}

/// `Accept-Encoding` members compared on the stack; a request with more takes the slow path.
const MAX_MEMBERS: usize = 8;

/// [`same_accept_encoding`] for what browsers and HTTP clients send: one field line of
/// codings without parameters (`gzip, deflate, br, zstd`), each then worth `q=1` (`;1000`
/// in the normalized form), compared as bytes without parsing q-values. `None` when the
/// line holds anything else (parameters, more than [`MAX_MEMBERS`] members, a byte no
/// coding token has): the general comparison decides.
fn same_plain_codings(line: &[u8], normalized: &str) -> Option<bool> {
    let mut requested: [&[u8]; MAX_MEMBERS] = [&[]; MAX_MEMBERS];
    let mut count = 0;
    for member in line.split(|&b| b == b',').map(trim_ows) {
        if member.is_empty() {
            continue;
        }
        if count == MAX_MEMBERS || !member.iter().all(|&b| towerkit_http::is_tchar(b)) {
            return None;
        }
        requested[count] = member;
        count += 1;
    }
    let requested = &requested[..count];
    let mut stored: [&[u8]; MAX_MEMBERS] = [&[]; MAX_MEMBERS];
    let mut stored_count = 0;
    // Split as bytes: `str::split` searches with `memchr`, costly on a few bytes.
    let members = normalized.as_bytes().split(|&b| b == b',');
    for member in members.filter(|member| !member.is_empty()) {
        // A stored member with another q-value cannot be one of these.
        let Some(name) = member.strip_suffix(b";1000") else {
            return Some(false);
        };
        if stored_count == count {
            return Some(false);
        }
        stored[stored_count] = name;
        stored_count += 1;
    }
    if stored_count != count {
        return Some(false);
    }
    let stored = &stored[..count];
    // As many members, and each member of the request as often in both: the same multiset.
    let occurrences =
        |of: &[u8], within: &[&[u8]]| within.iter().filter(|b| of.eq_ignore_ascii_case(b)).count();
    Some(
        requested
            .iter()
            .all(|member| occurrences(member, requested) == occurrences(member, stored)),
    )
}

/// The members of a request's `Accept-Encoding`: coding (or `*`) and q-value in thousandths.
fn accept_encoding(request: &HeaderMap) -> impl Iterator<Item = (&str, u16)> {
    request
        .get_all(ACCEPT_ENCODING)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .flat_map(|text| text.split(','))
        .filter_map(|member| {
            let mut params = member.split(';');
            let name = params.next().unwrap_or_default().trim();
            if name.is_empty() {
                return None;
            }
            let q = params
                .find_map(|param| {
                    let (key, value) = param.split_once('=')?;
                    key.trim()
                        .eq_ignore_ascii_case("q")
                        .then(|| value.trim().parse::<f32>().unwrap_or(0.0))
                })
                .unwrap_or(1.0);
            Some((name, (q.clamp(0.0, 1.0) * 1000.0).round() as u16))
        })
}

/// How much a request's `Accept-Encoding` wants `coding`, in thousandths (RFC 9110 §12.5.3).
///
/// Without `Accept-Encoding` only `identity` is acceptable: the RFC would allow any coding,
/// but a client that does not ask for compression rarely decodes it. `identity` is
/// acceptable unless excluded by `identity;q=0` or by `*;q=0` without an `identity` entry.
pub(crate) fn coding_q(request: &HeaderMap, coding: &str) -> u16 {
    if !request.contains_key(ACCEPT_ENCODING) {
        return if coding == "identity" { 1000 } else { 0 };
    }
    let mut named = None;
    let mut star = None;
    for (name, q) in accept_encoding(request) {
        if name == "*" {
            star = Some(q);
        } else if name.eq_ignore_ascii_case(coding)
            || (coding == "gzip" && name.eq_ignore_ascii_case("x-gzip"))
            || (coding == "compress" && name.eq_ignore_ascii_case("x-compress"))
        {
            named = Some(q);
        }
    }
    match (named, star) {
        (Some(q), _) | (None, Some(q)) => q,
        (None, None) if coding == "identity" => 1000,
        (None, None) => 0,
    }
}

/// `Accept-Encoding` as `coding;q` members (q in thousandths), lowercase, sorted by
/// preference then name; empty when absent.
fn normalize_accept_encoding(request: &HeaderMap) -> String {
    let mut members: Vec<(String, u16)> = accept_encoding(request)
        .map(|(name, q)| (name.to_ascii_lowercase(), q))
        .collect();
    // A field line that is not text names no coding it could be served, but must still
    // tell this request apart from one without `Accept-Encoding`.
    for value in request.get_all(ACCEPT_ENCODING) {
        if value.to_str().is_err() {
            let mut raw = String::from("!");
            escape_into(&mut raw, value.as_bytes());
            members.push((raw, 0));
        }
    }
    members.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
    let mut out = String::new();
    for (name, q) in members {
        if !out.is_empty() {
            out.push(',');
        }
        let _ = write!(out, "{name};{q}");
    }
    out
}

/// A request header's value normalized for comparison; `None` when absent.
pub(crate) fn normalize(name: &HeaderName, request: &HeaderMap) -> Option<String> {
    let mut values = request.get_all(name).iter().peekable();
    values.peek()?;
    if name == ACCEPT_LANGUAGE {
        return Some(normalize_language(values));
    }
    let mut out = String::new();
    for value in values {
        for member in value.as_bytes().split(|&b| b == b',') {
            let member = trim_ows(member);
            if member.is_empty() {
                continue;
            }
            if !out.is_empty() {
                out.push(',');
            }
            escape_into(&mut out, member);
        }
    }
    Some(out)
}

/// `Accept-Language` as `lang;q` members, lowercase, sorted by preference then name.
fn normalize_language<'a>(values: impl Iterator<Item = &'a http::HeaderValue>) -> String {
    let mut ranges = language_ranges(values);
    ranges.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
    let mut out = String::new();
    for (range, q) in ranges {
        if !out.is_empty() {
            out.push(',');
        }
        out.push_str(&range);
        if q != 1000 {
            let _ = write!(out, ";q={q}");
        }
    }
    out
}

/// Language ranges with their q-values in thousandths.
fn language_ranges<'a>(values: impl Iterator<Item = &'a http::HeaderValue>) -> Vec<(String, u16)> {
    let mut ranges = Vec::new();
    for value in values {
        let mut text = String::new();
        escape_into(&mut text, value.as_bytes());
        for member in text.split(',') {
            let mut params = member.split(';');
            let range = params
                .next()
                .unwrap_or_default()
                .trim()
                .to_ascii_lowercase();
            if range.is_empty() {
                continue;
            }
            let q = params
                .find_map(|param| {
                    let (key, value) = param.split_once('=')?;
                    key.trim()
                        .eq_ignore_ascii_case("q")
                        .then(|| value.trim().parse::<f32>().unwrap_or(0.0))
                })
                .unwrap_or(1.0);
            ranges.push((range, (q.clamp(0.0, 1.0) * 1000.0).round() as u16));
        }
    }
    ranges
}

/// The request's single most preferred language, if one range has the highest q-value.
fn preferred_language(request: &HeaderMap) -> Option<String> {
    let mut ranges = language_ranges(request.get_all(ACCEPT_LANGUAGE).iter());
    ranges.sort_by_key(|range| std::cmp::Reverse(range.1));
    match ranges.as_slice() {
        [(range, q), ..]
            if *q > 0 && ranges.get(1).is_none_or(|next| next.1 < *q) && range != "*" =>
        {
            Some(range.clone())
        }
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use http::{HeaderValue, Request};

    use super::*;
    use crate::test_support::headers;

    fn key(uri: &str, pairs: &[(&str, &str)], rules: &KeyRules) -> String {
        let mut builder = Request::get(uri);
        for (name, value) in pairs {
            builder = builder.header(*name, *value);
        }
        let (parts, ()) = builder.body(()).unwrap().into_parts();
        primary_key(&parts, rules).into_owned()
    }

    #[test]
    fn query_strings_are_part_of_the_key() {
        let rules = KeyRules::default();
        assert_ne!(key("/p?a=1", &[], &rules), key("/p?a=2", &[], &rules));
        assert_eq!(key("/p?a=1", &[], &rules), "/p?a=1");
    }

    #[test]
    fn ignored_query_parameters_are_dropped_from_the_key() {
        let rules = KeyRules {
            ignored_params: vec!["utm_*".into(), "fbclid".into()],
            ..KeyRules::default()
        };
        assert_eq!(
            key("/p?a=1&utm_source=x&fbclid=y&b=2", &[], &rules),
            "/p?a=1&b=2"
        );
        assert_eq!(key("/p?utm_source=x", &[], &rules), "/p");
    }

    #[test]
    fn key_headers_and_host_separate_keys() {
        let rules = KeyRules {
            host: true,
            headers: vec![HeaderName::from_static("x-tenant")],
            ..KeyRules::default()
        };
        let a = key("/p", &[("host", "A.example"), ("x-tenant", "1")], &rules);
        assert_eq!(a, "a.example/p\nx-tenant=1");
        assert_ne!(
            a,
            key("/p", &[("host", "a.example"), ("x-tenant", "2")], &rules)
        );
    }

    #[test]
    fn distinct_bytes_in_varied_headers_never_share_a_variant() {
        let value = |bytes: &[u8]| headers_raw(&[("x-a", bytes)]);
        let name = HeaderName::from_static("x-a");
        assert_ne!(
            normalize(&name, &value(b"\xff")),
            normalize(&name, &value(b"\xfe"))
        );
        assert_ne!(
            normalize(&name, &value("\u{a0}1".as_bytes())),
            normalize(&name, &value(b"1"))
        );
        assert_ne!(
            normalize(&name, &value(b"%FF")),
            normalize(&name, &value(b"\xff"))
        );
        assert_eq!(
            normalize(&name, &value(b"\t1 ,\t2 ")),
            normalize(&name, &value(b"1,2"))
        );
        let language = HeaderName::from_static("accept-language");
        let accept = |bytes: &[u8]| headers_raw(&[("accept-language", bytes)]);
        assert_ne!(
            normalize(&language, &accept(b"\xff")),
            normalize(&language, &accept(b"\xfe"))
        );
    }

    #[test]
    fn distinct_bytes_in_key_headers_and_hosts_make_distinct_keys() {
        let rules = KeyRules {
            host: true,
            headers: vec![HeaderName::from_static("x-tenant")],
            ..KeyRules::default()
        };
        let key = |tenant: &[u8], host: &[u8]| {
            key_for(
                "/p",
                &headers_raw(&[("x-tenant", tenant)]),
                Some(host),
                &rules,
            )
        };
        assert_ne!(key(b"\xff", b"a"), key(b"\xfe", b"a"));
        assert_ne!(key(b"1", b"a\xff"), key(b"1", b"a\xfe"));
        assert_eq!(key(b"1", b"A"), key(b"1", b"a"));
    }

    #[test]
    fn a_vary_that_is_not_a_list_of_field_names_is_treated_as_star() {
        assert_eq!(
            parse_vary(&headers_raw(&[("vary", b"cookie, \xff")])),
            Vary::Star
        );
        assert_eq!(parse_vary(&headers_raw(&[("vary", b"x y")])), Vary::Star);
    }

    #[test]
    fn a_request_with_an_unreadable_accept_encoding_is_not_one_without() {
        let unreadable = headers_raw(&[("accept-encoding", b"br\xff")]);
        assert_ne!(
            normalize_accept_encoding(&unreadable),
            normalize_accept_encoding(&HeaderMap::new())
        );
    }

    #[test]
    fn the_allocation_free_comparison_agrees_with_the_normalized_strings() {
        let lines: &[&[&[u8]]] = &[
            &[],
            &[b""],
            &[b"gzip"],
            &[b"GZip"],
            &[b"gzip;q=1"],
            &[b"gzip;q=0.5"],
            &[b"gzip, br"],
            &[b"br, gzip"],
            &[b"br;q=1.0, gzip"],
            &[b"gzip", b"br"],
            &[b"gzip, gzip"],
            &[b"gzip, br, br"],
            &[b"gzip, gzip, br"],
            &[b"gzip;q=0.8, br;q=0.8"],
            &[b"*"],
            &[b"*;q=0, identity"],
            &[b"identity;q=0"],
            &[b" , gzip ,"],
            &[b"br\xff"],
            &[b"gzip", b"br\xff"],
            &[b"a, b, c, d, e, f, g, h"],
            &[b"a, b, c, d, e, f, g, h, i"],
            &[b"a, b, c, d, e, f, g, h, h"],
            // What browsers send, in other orders, cases and spacing (the plain-codings path).
            &[b"gzip, deflate, br, zstd"],
            &[b"zstd,br,deflate,gzip"],
            &[b"GZIP, Deflate, BR, zstd"],
            &[b"gzip,\tdeflate"],
            &[b"gzip, deflate, br, zstd, gzip"],
            &[b"gzip, deflate;q=1, br, zstd"],
            &[b"x-gzip, deflate"],
            &[b"gzip deflate"],
        ];
        let requests: Vec<HeaderMap> = lines
            .iter()
            .map(|values| {
                let pairs: Vec<(&str, &[u8])> = values
                    .iter()
                    .map(|value| ("accept-encoding", *value))
                    .collect();
                headers_raw(&pairs)
            })
            .collect();
        for request in &requests {
            for stored in &requests {
                let normalized = normalize_accept_encoding(stored);
                assert_eq!(
                    same_accept_encoding(request, &normalized),
                    normalize_accept_encoding(request) == normalized,
                    "{request:?} against {normalized:?}"
                );
            }
        }
    }

    fn headers_raw(pairs: &[(&str, &[u8])]) -> HeaderMap {
        let mut headers = HeaderMap::new();
        for (name, value) in pairs {
            headers.append(
                HeaderName::from_bytes(name.as_bytes()).unwrap(),
                HeaderValue::from_bytes(value).unwrap(),
            );
        }
        headers
    }

    #[test]
    fn vary_star_anywhere_wins() {
        assert_eq!(parse_vary(&headers(&[("vary", "Foo, *")])), Vary::Star);
        assert_eq!(
            parse_vary(&headers(&[("vary", ""), ("vary", "*")])),
            Vary::Star
        );
        let names = parse_vary(&headers(&[("vary", "Foo, bar"), ("vary", "foo")]));
        assert_eq!(
            names,
            Vary::Headers(vec![
                HeaderName::from_static("bar"),
                HeaderName::from_static("foo")
            ])
        );
    }

    fn check_match(
        name: &str,
        stored_request: &[(&str, &str)],
        response: &[(&str, &str)],
        request: &[(&str, &str)],
    ) -> bool {
        let response = headers(response);
        let rules = vary_rules(
            &[HeaderName::from_bytes(name.as_bytes()).unwrap()],
            &headers(stored_request),
            &response,
        );
        matches(&rules, &response, &headers(request))
    }

    #[test]
    fn unknown_headers_match_after_combining_and_trimming() {
        assert!(check_match(
            "foo",
            &[("foo", "1, 2")],
            &[],
            &[("foo", "1"), ("foo", "2")]
        ));
        assert!(check_match(
            "foo",
            &[("foo", "1,2")],
            &[],
            &[("foo", " 1, 2 ")]
        ));
        assert!(!check_match("foo", &[("foo", "1")], &[], &[("foo", "2")]));
        assert!(!check_match("foo", &[("foo", "1")], &[], &[]));
        assert!(!check_match("foo", &[], &[], &[("foo", "1")]));
        assert!(check_match("foo", &[], &[], &[]));
    }

    #[test]
    fn accept_encoding_matches_the_stored_coding() {
        let br = [("content-encoding", "br")];
        let stored = [("accept-encoding", "br")];
        assert!(check_match(
            "accept-encoding",
            &stored,
            &br,
            &[("accept-encoding", "gzip, br")]
        ));
        assert!(check_match(
            "accept-encoding",
            &stored,
            &br,
            &[("accept-encoding", "*")]
        ));
        assert!(check_match(
            "accept-encoding",
            &stored,
            &br,
            &[("accept-encoding", "BR")]
        ));
        assert!(!check_match(
            "accept-encoding",
            &stored,
            &br,
            &[("accept-encoding", "gzip")]
        ));
        assert!(!check_match(
            "accept-encoding",
            &stored,
            &br,
            &[("accept-encoding", "br;q=0, gzip")]
        ));
        assert!(!check_match(
            "accept-encoding",
            &stored,
            &br,
            &[("accept-encoding", "gzip, br;q=0.5")]
        ));
        assert!(!check_match("accept-encoding", &stored, &br, &[]));
    }

    #[test]
    fn identity_answers_only_clients_that_accept_nothing_else() {
        let plain: [(&str, &str); 0] = [];
        assert!(check_match("accept-encoding", &[], &plain, &[]));
        assert!(check_match(
            "accept-encoding",
            &[],
            &plain,
            &[("accept-encoding", "identity")]
        ));
        assert!(check_match(
            "accept-encoding",
            &[],
            &plain,
            &[("accept-encoding", "br;q=0")]
        ));
        assert!(!check_match(
            "accept-encoding",
            &[],
            &plain,
            &[("accept-encoding", "gzip")]
        ));
        assert!(!check_match(
            "accept-encoding",
            &[],
            &plain,
            &[("accept-encoding", "identity;q=0")]
        ));
        assert!(!check_match(
            "accept-encoding",
            &[],
            &plain,
            &[("accept-encoding", "*;q=0")]
        ));
    }

    #[test]
    fn an_uncompressed_response_for_a_compressing_client_serves_the_same_preferences() {
        let plain: [(&str, &str); 0] = [];
        let stored = [("accept-encoding", "gzip, br")];
        assert!(check_match(
            "accept-encoding",
            &stored,
            &plain,
            &[("accept-encoding", "br,GZIP")]
        ));
        assert!(!check_match(
            "accept-encoding",
            &stored,
            &plain,
            &[("accept-encoding", "br")]
        ));
    }

    #[test]
    fn one_variant_per_coding_and_preferences() {
        let response = headers(&[("content-encoding", "gzip")]);
        let names = [ACCEPT_ENCODING];
        let a = vary_rules(
            &names,
            &headers(&[("accept-encoding", "gzip, br")]),
            &response,
        );
        let b = vary_rules(
            &names,
            &headers(&[("accept-encoding", "BR,gzip")]),
            &response,
        );
        let c = vary_rules(&names, &headers(&[("accept-encoding", "gzip")]), &response);
        assert_eq!(variant_id(&a), variant_id(&b));
        assert_ne!(variant_id(&a), variant_id(&c));
    }

    #[test]
    fn accept_language_ignores_order_case_and_spaces() {
        let stored = [("accept-language", "en, de")];
        assert!(check_match(
            "accept-language",
            &stored,
            &[],
            &[("accept-language", "de, en")]
        ));
        assert!(check_match(
            "accept-language",
            &stored,
            &[],
            &[("accept-language", "eN, De")]
        ));
        assert!(check_match(
            "accept-language",
            &stored,
            &[],
            &[("accept-language", " en ,   de")]
        ));
        assert!(!check_match(
            "accept-language",
            &stored,
            &[],
            &[("accept-language", "fr")]
        ));
    }

    #[test]
    fn accept_language_selects_by_content_language() {
        let stored = [("accept-language", "en, de")];
        let response = [("content-language", "de")];
        assert!(check_match(
            "accept-language",
            &stored,
            &response,
            &[("accept-language", "fr;q=0.5, de;q=1.0")]
        ));
        assert!(!check_match(
            "accept-language",
            &stored,
            &response,
            &[("accept-language", "fr, de;q=0.5")]
        ));
        assert!(!check_match(
            "accept-language",
            &stored,
            &response,
            &[("accept-language", "fr, de")]
        ));
    }
}
