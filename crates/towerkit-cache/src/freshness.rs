//! Age and freshness (RFC 9111 §4.2) and what a shared cache may store (§3).
//!
//! Times are Unix milliseconds (`u64`) so that entries can be written to Redis and read
//! back by another process unchanged; durations taken from headers are seconds.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use http::header::{
    AGE, AUTHORIZATION, CONTENT_TYPE, COOKIE, DATE, ETAG, EXPIRES, LAST_MODIFIED, SET_COOKIE,
};
use http::{HeaderMap, HeaderName, HeaderValue, StatusCode};

use crate::control::{ResponseDirectives, SurrogateDirectives, parse_delta};

/// The current time as Unix milliseconds.
pub(crate) fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |elapsed| elapsed.as_millis() as u64)
}

/// An HTTP date (IMF-fixdate, RFC 850 or asctime) as Unix seconds.
pub(crate) fn parse_http_date(value: &HeaderValue) -> Option<u64> {
    parse_date_text(value.to_str().ok()?.trim())
}

/// An `Expires` value as Unix seconds: an HTTP date, read robustly as RFC 9110 §5.6.7
/// encourages (day and month names and `GMT` in any case, a weekday that does not match the
/// date ignored, since the date says it already). Anything else stays invalid, and an
/// invalid `Expires` means "already expired" (RFC 9111 §5.3): `0`, another zone than
/// `GMT`, a missing comma, a two-digit hour or year.
pub(crate) fn parse_expires(value: &HeaderValue) -> Option<u64> {
    parse_http_date(value).or_else(|| {
        let text = canonical_case(value.to_str().ok()?.trim());
        parse_date_text(&text).or_else(|| with_matching_weekday(&text))
    })
}

fn parse_date_text(text: &str) -> Option<u64> {
    let time = httpdate::parse_http_date(text).ok()?;
    Some(
        time.duration_since(UNIX_EPOCH)
            .map_or(0, |since| since.as_secs()),
    )
}

const DAYS: [&str; 7] = ["Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun"];
const LONG_DAYS: [&str; 7] = [
    "Monday",
    "Tuesday",
    "Wednesday",
    "Thursday",
    "Friday",
    "Saturday",
    "Sunday",
];
const MONTHS: [&str; 12] = [
    "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
];

/// `text` with every day name, month name and `GMT` spelled as an HTTP date spells them.
fn canonical_case(text: &str) -> String {
    let mut canonical = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(start) = rest.find(|c: char| c.is_ascii_alphabetic()) {
        canonical.push_str(&rest[..start]);
        let word = &rest[start..];
        let word = &word[..word
            .find(|c: char| !c.is_ascii_alphabetic())
            .unwrap_or(word.len())];
        let known = DAYS
            .iter()
            .chain(&LONG_DAYS)
            .chain(&MONTHS)
            .chain(&["GMT"])
            .find(|name| name.eq_ignore_ascii_case(word));
        canonical.push_str(known.copied().unwrap_or(word));
        rest = &rest[start + word.len()..];
    }
    canonical.push_str(rest);
    canonical
}

/// Parses `text` with its leading weekday replaced by the one its date falls on.
fn with_matching_weekday(text: &str) -> Option<u64> {
    let len = text.find(|c: char| !c.is_ascii_alphabetic())?;
    let names = if LONG_DAYS.contains(&&text[..len]) {
        &LONG_DAYS
    } else if DAYS.contains(&&text[..len]) {
        &DAYS
    } else {
        return None;
    };
    names
        .iter()
        .find_map(|day| parse_date_text(&format!("{day}{}", &text[len..])))
}

/// The single value of a date header, as Unix seconds; absent, repeated or invalid is `None`.
pub(crate) fn date_header(headers: &HeaderMap, name: &HeaderName) -> Option<u64> {
    let mut values = headers.get_all(name).iter();
    let first = values.next()?;
    if values.next().is_some() {
        return None;
    }
    parse_http_date(first)
}

/// The `Age` a response carries, in seconds (RFC 9111 §5.1): `None` when absent or invalid.
///
/// Only the first member counts: that of the first field line, and of a comma-separated
/// list within it (`Age: 0, 7200` is 0; `Age: 7200` then `Age: 0` is 7200). A member that is
/// not `1*DIGIT` (negative, a fraction, a prefix or suffix such as `a100` or `100a`) is
/// invalid, and an invalid `Age` is ignored as if absent, as §5.1 asks: the response's
/// `Date` still ages it. Parameters after the digits (`7200;foo=bar`, the form a structured
/// field reading of `Age` allows) are ignored rather than taken as invalid, which would make
/// a response older than its sender said fresh. Values beyond 2^31 saturate.
pub(crate) fn parse_age(headers: &HeaderMap) -> Option<u64> {
    let first_line = headers.get(AGE)?;
    let member = first_line
        .as_bytes()
        .split(|&b| b == b',')
        .next()
        .unwrap_or_default()
        .trim_ascii();
    let digits = member.iter().take_while(|b| b.is_ascii_digit()).count();
    let (number, rest) = member.split_at(digits);
    if !(rest.is_empty() || rest.starts_with(b";")) {
        return None;
    }
    std::str::from_utf8(number).ok().and_then(parse_delta)
}

/// The corrected initial age in milliseconds (RFC 9111 §4.2.3).
pub(crate) fn initial_age_ms(headers: &HeaderMap, request_time: u64, response_time: u64) -> u64 {
    let age_value = parse_age(headers).map_or(0, |seconds| seconds.saturating_mul(1000));
    let apparent_age = date_header(headers, &DATE).map_or(0, |date| {
        response_time.saturating_sub(date.saturating_mul(1000))
    });
    let response_delay = response_time.saturating_sub(request_time);
    apparent_age.max(age_value.saturating_add(response_delay))
}

/// Status codes that are heuristically cacheable (RFC 9110 §15.1).
pub(crate) fn heuristically_cacheable(status: StatusCode) -> bool {
    matches!(
        status.as_u16(),
        200 | 203 | 204 | 206 | 300 | 301 | 308 | 404 | 405 | 410 | 414 | 501
    )
}

/// Status codes whose caching requirements this cache implements, for `must-understand`.
pub(crate) fn understood(status: StatusCode) -> bool {
    matches!(status.as_u16(), 200..=206 | 300..=305 | 307 | 308 | 400..=417 | 421..=426 | 500..=505)
}

/// Where a freshness lifetime came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Source {
    /// `Surrogate-Control`, `s-maxage`, `max-age` or `Expires`.
    Explicit,
    /// The application's default TTL for the route.
    Default,
    /// A fraction of the time since `Last-Modified` (§4.2.2).
    Heuristic,
    /// None of the above: the response is stale as soon as it is stored.
    None,
}

/// The statuses a default TTL applies to unless configured otherwise: RFC 9110 §15.1's
/// heuristically cacheable statuses without the errors (`404`, `405`, `410`, `414`, `501`)
/// and without `206` (never stored whole).
pub(crate) const DEFAULT_TTL_STATUSES: [u16; 6] = [200, 203, 204, 300, 301, 308];

/// The inputs to a freshness computation that do not come from the response itself.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Rules<'a> {
    /// Lifetime for responses without explicit freshness, set by the application.
    pub(crate) default_ttl: Option<Duration>,
    /// The statuses `default_ttl` applies to.
    pub(crate) default_statuses: &'a [u16],
    /// Lifetime for `404` and `410` without explicit freshness (negative caching).
    pub(crate) negative_ttl: Option<Duration>,
    /// Whether heuristic freshness is used at all.
    pub(crate) heuristic: bool,
    /// The cap on a heuristic lifetime.
    pub(crate) heuristic_max: Duration,
}

/// The freshness lifetime of a response in milliseconds (§4.2.1), for a shared cache.
pub(crate) fn lifetime_ms(
    status: StatusCode,
    headers: &HeaderMap,
    directives: &ResponseDirectives,
    surrogate: &SurrogateDirectives,
    response_time: u64,
    rules: &Rules<'_>,
) -> (u64, Source) {
    if let Some(seconds) = surrogate
        .max_age
        .or(directives.s_maxage)
        .or(directives.max_age)
    {
        return (seconds * 1000, Source::Explicit);
    }
    let mut expires = headers.get_all(EXPIRES).iter();
    if let Some(first) = expires.next().filter(|_| !directives.targeted) {
        // An invalid Expires, or more than one, means "already expired" (§5.3).
        let deadline = if expires.next().is_some() {
            None
        } else {
            parse_expires(first)
        };
        let lifetime = deadline.map_or(0, |expires| {
            let date =
                date_header(headers, &DATE).map_or(response_time, |date| date.saturating_mul(1000));
            expires.saturating_mul(1000).saturating_sub(date)
        });
        return (lifetime, Source::Explicit);
    }
    // The application's lifetimes apply to the statuses it named, never to server errors
    // unless listed: a 503 must not answer for the whole default TTL.
    let code = status.as_u16();
    let default = match code {
        404 | 410 if rules.negative_ttl.is_some() => rules.negative_ttl,
        _ if rules.default_statuses.contains(&code) => rules.default_ttl,
        _ => None,
    };
    if let Some(ttl) = default {
        return (ttl.as_millis() as u64, Source::Default);
    }
    if rules.heuristic
        && (heuristically_cacheable(status) || directives.public)
        && let Some(last_modified) = date_header(headers, &LAST_MODIFIED)
    {
        let date =
            date_header(headers, &DATE).map_or(response_time, |date| date.saturating_mul(1000));
        let since = date.saturating_sub(last_modified.saturating_mul(1000));
        let lifetime = (since / 10).min(rules.heuristic_max.as_millis() as u64);
        return (lifetime, Source::Heuristic);
    }
    (0, Source::None)
}

/// Whether a request carries credentials (`Authorization` or `Cookie`).
pub(crate) fn has_credentials(headers: &HeaderMap) -> bool {
    headers.contains_key(AUTHORIZATION) || headers.contains_key(COOKIE)
}

/// Why a response is not stored; [`as_str`](Self::as_str) is the `Cache-Status` `detail`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum NotStorable {
    /// `status`: a status never stored (1xx, 206, 304), or one that needs explicit
    /// freshness (a 5xx, a status outside the default TTL's and the heuristic lists).
    Status,
    /// `must-understand`: `must-understand` on a status this cache does not implement.
    MustUnderstand,
    /// `no-store`: the response (or `Surrogate-Control`) says `no-store`.
    NoStore,
    /// `private`: the response says `private`.
    Private,
    /// `authorization`: the request had `Authorization` and the response does not say it
    /// may be shared.
    Authorization,
    /// `cookie`: the request had a `Cookie` and the response does not say it may be shared.
    Cookie,
    /// `set-cookie`: the response sets a cookie.
    SetCookie,
    /// `vary-star`: the response says `Vary: *`.
    VaryStar,
    /// `no-freshness`: no lifetime, no validator, no stale use: it could never be reused.
    Useless,
    /// `event-stream`: a `text/event-stream` response, never recorded.
    EventStream,
    /// `too-large`: the body is over `max_body` or over what the store holds.
    TooLarge,
    /// `method`: a `HEAD` request, whose response has no body to store.
    Method,
}

impl NotStorable {
    /// The `Cache-Status` `detail` token.
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            NotStorable::Status => "status",
            NotStorable::MustUnderstand => "must-understand",
            NotStorable::NoStore => "no-store",
            NotStorable::Private => "private",
            NotStorable::Authorization => "authorization",
            NotStorable::Cookie => "cookie",
            NotStorable::SetCookie => "set-cookie",
            NotStorable::VaryStar => "vary-star",
            NotStorable::Useless => "no-freshness",
            NotStorable::EventStream => "event-stream",
            NotStorable::TooLarge => "too-large",
            NotStorable::Method => "method",
        }
    }
}

/// Whether a response is an event stream (`text/event-stream`, any parameters).
pub(crate) fn is_event_stream(headers: &HeaderMap) -> bool {
    headers.get(CONTENT_TYPE).is_some_and(|value| {
        let bytes = value.as_bytes();
        let essence = bytes.split(|&b| b == b';').next().unwrap_or_default();
        essence
            .trim_ascii()
            .eq_ignore_ascii_case(b"text/event-stream")
    })
}

/// What a shared cache may do with a response (RFC 9111 §3): `Ok(())` to store it.
///
/// Beyond the RFC, responses that set cookies are not stored unless `private="set-cookie"`
/// or `no-cache="set-cookie"` say the cookie may be dropped from the stored copy, and
/// responses that could never be reused (no freshness, no validator) are not stored.
///
/// `lifetime` is the response's freshness lifetime and where it came from, as
/// [`lifetime_ms`] gives them.
pub(crate) fn storable(
    status: StatusCode,
    headers: &HeaderMap,
    request_headers: &HeaderMap,
    directives: &ResponseDirectives,
    surrogate: &SurrogateDirectives,
    (lifetime, source): (u64, Source),
    vary_star: bool,
) -> Result<(), NotStorable> {
    let code = status.as_u16();
    // Final statuses only; 206 needs range merging and 304 only updates (§4.3.4).
    if code < 200 || code == 206 || code == 304 {
        return Err(NotStorable::Status);
    }
    if directives.must_understand && !understood(status) {
        return Err(NotStorable::MustUnderstand);
    }
    // Surrogate-Control aimed at this cache replaces Cache-Control for storage decisions.
    let surrogate_rules = surrogate.present && surrogate.max_age.is_some();
    if surrogate.no_store {
        return Err(NotStorable::NoStore);
    }
    if !surrogate_rules {
        if directives.no_store && !(directives.must_understand && understood(status)) {
            return Err(NotStorable::NoStore);
        }
        if directives.private {
            return Err(NotStorable::Private);
        }
    }
    // Credentials make a response personal: with `Authorization` (RFC 9111 §3.5) or a
    // `Cookie`, only a response that says it may be shared (`public`, `s-maxage`,
    // `must-revalidate`) is stored.
    if has_credentials(request_headers) && !directives.allows_authorized() {
        if request_headers.contains_key(AUTHORIZATION) {
            return Err(NotStorable::Authorization);
        }
        return Err(NotStorable::Cookie);
    }
    // An event stream never ends as far as a cache can tell: recording it would hold the
    // coalescing slot for the whole stream and store a torn prefix at best.
    if is_event_stream(headers) {
        return Err(NotStorable::EventStream);
    }
    let cookie_omitted = directives
        .omit_fields
        .iter()
        .any(|name| name == SET_COOKIE || name == "set-cookie2");
    if !cookie_omitted && (headers.contains_key(SET_COOKIE) || headers.contains_key("set-cookie2"))
    {
        return Err(NotStorable::SetCookie);
    }
    if vary_star {
        return Err(NotStorable::VaryStar);
    }
    // A server error is stored only when the response itself says so (explicit freshness,
    // or RFC 9111 §4.2.2 heuristics from its own `Last-Modified`, which need a `501` or
    // `public`): never on the application's default TTL, where one bad moment would answer
    // for minutes.
    if status.is_server_error() && source == Source::Default {
        return Err(NotStorable::Status);
    }
    let has_validator = headers.contains_key(ETAG) || headers.contains_key(LAST_MODIFIED);
    let explicit_or_default = matches!(source, Source::Explicit | Source::Default);
    if !explicit_or_default && !heuristically_cacheable(status) && !directives.public {
        return Err(NotStorable::Status);
    }
    let stale_use =
        directives.stale_if_error.is_some() || directives.stale_while_revalidate.is_some();
    if lifetime == 0 && !has_validator && !stale_use {
        return Err(NotStorable::Useless);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_support::{NOW, headers};

    fn date(offset_secs: i64) -> String {
        let time = UNIX_EPOCH
            + Duration::from_millis(NOW)
            + Duration::from_secs(offset_secs.unsigned_abs());
        let time = if offset_secs < 0 {
            time - Duration::from_secs(2 * offset_secs.unsigned_abs())
        } else {
            time
        };
        httpdate::fmt_http_date(time)
    }

    const RULES: Rules<'static> = Rules {
        default_ttl: None,
        default_statuses: &DEFAULT_TTL_STATUSES,
        negative_ttl: None,
        heuristic: true,
        heuristic_max: Duration::from_secs(86_400),
    };

    fn lifetime(status: u16, pairs: &[(&str, &str)], rules: &Rules<'_>) -> (u64, Source) {
        let headers = headers(pairs);
        let directives = ResponseDirectives::parse(&headers);
        lifetime_ms(
            StatusCode::from_u16(status).unwrap(),
            &headers,
            &directives,
            &SurrogateDirectives::default(),
            NOW,
            rules,
        )
    }

    #[test]
    fn s_maxage_beats_max_age_beats_expires() {
        let expires = date(100);
        assert_eq!(
            lifetime(
                200,
                &[("cache-control", "max-age=3600, s-maxage=1")],
                &RULES
            )
            .0,
            1000
        );
        assert_eq!(
            lifetime(
                200,
                &[("cache-control", "max-age=5"), ("expires", &expires)],
                &RULES
            )
            .0,
            5000
        );
        assert_eq!(
            lifetime(200, &[("expires", &expires), ("date", &date(0))], &RULES),
            (100_000, Source::Explicit)
        );
    }

    #[test]
    fn invalid_or_repeated_expires_means_expired() {
        assert_eq!(
            lifetime(200, &[("expires", "0")], &RULES),
            (0, Source::Explicit)
        );
        let expires = date(100);
        assert_eq!(
            lifetime(200, &[("expires", &expires), ("expires", &expires)], &RULES).0,
            0
        );
    }

    #[test]
    fn expires_is_read_robustly_but_not_loosely() {
        let expires = |text: &str| parse_expires(&HeaderValue::from_str(text).unwrap());
        let aug_18 = expires("Thu, 18 Aug 2050 02:01:18 GMT").unwrap();
        // freshness-expires-wrong-case-weekday, -month and -tz.
        for text in [
            "THU, 18 Aug 2050 02:01:18 GMT",
            "Thu, 18 AUG 2050 02:01:18 GMT",
            "Thu, 18 Aug 2050 02:01:18 gMT",
            "thursday, 18-aug-50 02:01:18 gmt",
        ] {
            assert_eq!(expires(text), Some(aug_18), "{text}");
        }
        // freshness-expires-ansi-c: asctime, with a weekday the date does not fall on.
        let aug_8 = expires("Mon, 08 Aug 2050 02:01:18 GMT").unwrap();
        assert_eq!(expires("Thu Aug  8 02:01:18 2050"), Some(aug_8));
        assert_eq!(expires("Fri, 08 Aug 2050 02:01:18 GMT"), Some(aug_8));
        for text in [
            "0",
            "Thu, 18 Aug 2050 02:01:18 UTC",
            "Thu, 18 Aug 2050 02:01:18",
            "Thu 18 Aug 2050 02:01:18 GMT",
            "Thu, 18 Aug 2050 2:01:18 GMT",
            "Thu, 18 Aug 50 02:01:18 GMT",
            "Thu, 18 Aug 2050 02.01.18 GMT",
            "Thu, 18 Aug 2050 02:01:18 AEST",
            "Thu,  18 Aug 2050 02:01:18 GMT",
            "Thx, 18 Aug 2050 02:01:18 GMT",
            "Thu, 31 Feb 2050 02:01:18 GMT",
        ] {
            assert_eq!(expires(text), None, "{text}");
        }
        // The robust reading is for Expires only: other dates stay strict.
        let shouting = HeaderValue::from_static("THU, 18 Aug 2050 02:01:18 GMT");
        assert_eq!(parse_http_date(&shouting), None);
        assert_eq!(
            lifetime(200, &[("expires", "THU, 18 AUG 2050 02:01:18 gmt")], &RULES).1,
            Source::Explicit
        );
        assert!(lifetime(200, &[("expires", "THU, 18 AUG 2050 02:01:18 gmt")], &RULES).0 > 0);
    }

    #[test]
    fn expires_is_measured_from_date_not_from_now() {
        // Expires 300 s and Date 400 s after now: already expired.
        assert_eq!(
            lifetime(
                200,
                &[("expires", &date(300)), ("date", &date(400))],
                &RULES
            )
            .0,
            0
        );
        // An invalid Date falls back to the response time.
        assert_eq!(
            lifetime(200, &[("expires", &date(10)), ("date", "foo")], &RULES).0,
            10_000
        );
    }

    #[test]
    fn heuristic_is_a_tenth_of_the_last_modified_age_for_cacheable_statuses() {
        let pairs = [("last-modified", date(-86_400)), ("date", date(0))];
        let pairs: Vec<(&str, &str)> = pairs.iter().map(|(n, v)| (*n, v.as_str())).collect();
        assert_eq!(
            lifetime(200, &pairs, &RULES),
            (8_640_000, Source::Heuristic)
        );
        assert_eq!(lifetime(404, &pairs, &RULES).1, Source::Heuristic);
        assert_eq!(lifetime(201, &pairs, &RULES), (0, Source::None));
        let no_heuristics = Rules {
            heuristic: false,
            ..RULES
        };
        assert_eq!(lifetime(200, &pairs, &no_heuristics), (0, Source::None));
    }

    #[test]
    fn default_ttl_applies_only_without_explicit_freshness() {
        let rules = Rules {
            default_ttl: Some(Duration::from_secs(60)),
            ..RULES
        };
        assert_eq!(lifetime(200, &[], &rules), (60_000, Source::Default));
        assert_eq!(
            lifetime(200, &[("cache-control", "max-age=5")], &rules),
            (5_000, Source::Explicit)
        );
    }

    #[test]
    fn default_ttl_applies_to_the_listed_statuses_and_negative_ttl_to_404_and_410() {
        let rules = Rules {
            default_ttl: Some(Duration::from_secs(60)),
            ..RULES
        };
        for status in DEFAULT_TTL_STATUSES {
            assert_eq!(lifetime(status, &[], &rules).1, Source::Default, "{status}");
        }
        for status in [201, 404, 410, 500, 501, 503] {
            assert_eq!(lifetime(status, &[], &rules), (0, Source::None), "{status}");
        }
        let negative = Rules {
            negative_ttl: Some(Duration::from_secs(5)),
            ..rules
        };
        assert_eq!(lifetime(404, &[], &negative), (5_000, Source::Default));
        assert_eq!(lifetime(410, &[], &negative), (5_000, Source::Default));
        assert_eq!(lifetime(200, &[], &negative), (60_000, Source::Default));
    }

    #[test]
    fn server_errors_are_stored_only_on_their_own_freshness_never_the_default_ttl() {
        let status = StatusCode::SERVICE_UNAVAILABLE;
        let stored = |pairs: &[(&str, &str)], source| {
            let response = headers(pairs);
            let directives = ResponseDirectives::parse(&response);
            storable(
                status,
                &response,
                &HeaderMap::new(),
                &directives,
                &SurrogateDirectives::default(),
                (60_000, source),
                false,
            )
        };
        assert_eq!(stored(&[], Source::Default), Err(NotStorable::Status));
        // `public` and `Last-Modified` are the response's own say: RFC 9111 heuristics.
        assert_eq!(
            stored(
                &[
                    ("cache-control", "public"),
                    ("last-modified", "Mon, 01 Jan 2024 00:00:00 GMT")
                ],
                Source::Heuristic
            ),
            Ok(())
        );
        assert_eq!(
            stored(&[("cache-control", "max-age=5")], Source::Explicit),
            Ok(())
        );
    }

    #[test]
    fn age_is_the_larger_of_apparent_and_corrected_age() {
        let received = headers(&[("date", &date(-7200))]);
        assert_eq!(initial_age_ms(&received, NOW - 10, NOW), 7_200_000);
        let aged = headers(&[("date", &date(0)), ("age", "30")]);
        assert_eq!(initial_age_ms(&aged, NOW - 10, NOW), 30_010);
    }

    /// The corrected initial age, in seconds, of a response received at once with these
    /// `Age` field lines and no `Date`.
    fn age_of(lines: &[&str]) -> u64 {
        let pairs: Vec<(&str, &str)> = lines.iter().map(|line| ("age", *line)).collect();
        initial_age_ms(&headers(&pairs), NOW, NOW) / 1000
    }

    #[test]
    fn an_invalid_age_is_ignored_not_taken_as_stale() {
        // The suite's age-parse-nonnumeric, -negative and -float, and prefixed values.
        for value in [
            "abc", "-7200", "7200.0", "a100", "100a", "+7200", "", "7 200",
        ] {
            assert_eq!(age_of(&[value]), 0, "{value:?}");
        }
        // Ignored, the Age leaves the Date to age the response.
        let dated = headers(&[("date", &date(-30)), ("age", "abc")]);
        assert_eq!(initial_age_ms(&dated, NOW, NOW), 30_000);
    }

    #[test]
    fn the_first_member_of_an_age_list_counts() {
        // age-parse-prefix and age-parse-suffix: one line holding a list.
        assert_eq!(age_of(&["0, 7200"]), 0);
        assert_eq!(age_of(&["7200, 0"]), 7200);
        // age-parse-prefix-twoline and age-parse-suffix-twoline: repeated lines.
        assert_eq!(age_of(&["0", "7200"]), 0);
        assert_eq!(age_of(&["7200", "0"]), 7200);
        // age-parse-dup-0, age-parse-dup-0-twoline, age-parse-dup-old.
        assert_eq!(age_of(&["0, 0"]), 0);
        assert_eq!(age_of(&["0", "0"]), 0);
        assert_eq!(age_of(&["3600", "3600"]), 3600);
        // An invalid first member is not replaced by a valid later one.
        assert_eq!(age_of(&["abc, 7200"]), 0);
        assert_eq!(age_of(&["abc", "7200"]), 0);
    }

    #[test]
    fn age_parameters_are_ignored_and_huge_ages_saturate() {
        assert_eq!(age_of(&["7200;foo=bar"]), 7200);
        assert_eq!(age_of(&[" 7200 ;foo=111"]), 0);
        for value in [
            "2147483647",
            "2147483648",
            "2147483649",
            "99999999999999999999",
        ] {
            assert!(age_of(&[value]) >= 2_147_483_647, "{value}");
        }
    }

    #[test]
    fn an_age_beyond_the_lifetime_makes_the_response_stale_and_one_within_it_does_not() {
        let fresh = |age: &str, max_age: &str| {
            let response = headers(&[("cache-control", max_age), ("age", age)]);
            let lifetime = lifetime(200, &[("cache-control", max_age)], &RULES).0;
            lifetime > initial_age_ms(&response, NOW, NOW)
        };
        // age-parse-dup-old: two lines of 3600 against max-age=10000 is fresh.
        assert!(fresh("3600", "max-age=10000"));
        assert!(!fresh("7200", "max-age=3600"));
        assert!(fresh("7200.0", "max-age=3600"));
        assert!(fresh("-7200", "max-age=3600"));
    }

    fn check_storable(
        status: u16,
        response: &[(&str, &str)],
        request: &[(&str, &str)],
    ) -> Result<(), NotStorable> {
        let response = headers(response);
        let request = headers(request);
        let directives = ResponseDirectives::parse(&response);
        let status = StatusCode::from_u16(status).unwrap();
        let surrogate = SurrogateDirectives::default();
        let lifetime = lifetime_ms(status, &response, &directives, &surrogate, NOW, &RULES);
        storable(
            status,
            &response,
            &request,
            &directives,
            &surrogate,
            lifetime,
            false,
        )
    }

    #[test]
    fn shared_cache_storage_rules() {
        let fresh = [("cache-control", "max-age=60")];
        assert_eq!(check_storable(200, &fresh, &[]), Ok(()));
        assert_eq!(
            check_storable(599, &[("cache-control", "max-age=60")], &[]),
            Ok(())
        );
        assert_eq!(
            check_storable(200, &[("cache-control", "max-age=60, private")], &[]),
            Err(NotStorable::Private)
        );
        assert_eq!(
            check_storable(200, &[("cache-control", "no-store, max-age=60")], &[]),
            Err(NotStorable::NoStore)
        );
        assert_eq!(check_storable(206, &fresh, &[]), Err(NotStorable::Status));
        assert_eq!(check_storable(200, &[], &[]), Err(NotStorable::Useless));
        assert_eq!(check_storable(200, &[("etag", "\"a\"")], &[]), Ok(()));
        assert_eq!(
            check_storable(
                599,
                &[("cache-control", "max-age=60, must-understand")],
                &[]
            ),
            Err(NotStorable::MustUnderstand)
        );
        assert_eq!(
            check_storable(
                200,
                &[("cache-control", "no-store, must-understand, max-age=60")],
                &[]
            ),
            Ok(())
        );
    }

    #[test]
    fn authorized_requests_are_stored_only_when_the_response_allows() {
        let auth = [("authorization", "Bearer x")];
        assert_eq!(
            check_storable(200, &[("cache-control", "max-age=60")], &auth),
            Err(NotStorable::Authorization)
        );
        for allowed in [
            "max-age=60, public",
            "s-maxage=60",
            "max-age=60, must-revalidate",
        ] {
            assert_eq!(
                check_storable(200, &[("cache-control", allowed)], &auth),
                Ok(()),
                "{allowed}"
            );
        }
    }

    #[test]
    fn set_cookie_prevents_storage_unless_the_cookie_is_marked_private() {
        let cookie = [("cache-control", "max-age=60"), ("set-cookie", "a=b")];
        assert_eq!(
            check_storable(200, &cookie, &[]),
            Err(NotStorable::SetCookie)
        );
        let marked = [
            ("cache-control", "max-age=60, private=\"Set-Cookie\""),
            ("set-cookie", "a=b"),
        ];
        assert_eq!(check_storable(200, &marked, &[]), Ok(()));
    }

    #[test]
    fn event_streams_are_never_stored() {
        for content_type in ["text/event-stream", "Text/Event-Stream; charset=utf-8"] {
            assert_eq!(
                check_storable(
                    200,
                    &[
                        ("cache-control", "max-age=60"),
                        ("content-type", content_type)
                    ],
                    &[]
                ),
                Err(NotStorable::EventStream),
                "{content_type}"
            );
        }
        assert_eq!(
            check_storable(
                200,
                &[("cache-control", "max-age=60")],
                &[("cookie", "a=b")]
            ),
            Err(NotStorable::Cookie)
        );
    }

    #[test]
    fn parse_age_reads_the_first_member_and_ignores_invalid_values() {
        assert_eq!(parse_age(&HeaderMap::new()), None);
        assert_eq!(parse_age(&headers(&[("age", "42")])), Some(42));
        assert_eq!(parse_age(&headers(&[("age", " 42 ")])), Some(42));
        assert_eq!(parse_age(&headers(&[("age", "4 2")])), None);
        assert_eq!(parse_age(&headers(&[("age", "42, 7")])), Some(42));
    }
}
