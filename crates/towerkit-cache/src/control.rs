//! `Cache-Control` (RFC 9111 §5.2), `Pragma` and `Surrogate-Control` parsing.
//!
//! Parsing is strict where leniency could make a response look fresher than its sender
//! meant: a malformed `max-age` or `s-maxage` counts as zero, never as absent. Directive
//! names are case-insensitive, arguments may be tokens or quoted strings (a quoted
//! `max-age="3600"` is accepted, as §5.2 asks), and a comma inside a quoted string never
//! starts a new directive.

use std::borrow::Cow;

use http::header::{CACHE_CONTROL, PRAGMA};
use http::{HeaderMap, HeaderName, HeaderValue};
use towerkit_http::is_tchar;

/// The largest delta-seconds value kept, as RFC 9111 §1.2.2 asks: 2^31 seconds.
pub(crate) const MAX_DELTA: u64 = 2_147_483_648;

/// One parsed directive: its name (as received) and argument.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Directive<'a> {
    pub(crate) name: Cow<'a, str>,
    pub(crate) arg: Arg<'a>,
    /// The `;target` suffix of a Surrogate-Control directive.
    pub(crate) target: Option<Cow<'a, str>>,
}

/// A directive's argument.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Arg<'a> {
    /// No `=`.
    None,
    /// `=token` or `="quoted string"`, unescaped.
    Value(Cow<'a, str>),
    /// Something after the name that is not a valid argument (`max-age =1`, `max-age=1a`).
    Malformed,
}

impl Directive<'_> {
    fn is(&self, name: &str) -> bool {
        self.name.eq_ignore_ascii_case(name)
    }

    /// The argument as delta-seconds: `Some(Ok(n))` for a valid one, `Some(Err(()))` for a
    /// malformed one, `None` when there is no argument.
    fn delta(&self) -> Option<Result<u64, ()>> {
        match &self.arg {
            Arg::None => None,
            Arg::Value(value) => Some(parse_delta(value).ok_or(())),
            Arg::Malformed => Some(Err(())),
        }
    }
}

/// Parses delta-seconds (`1*DIGIT`), saturating at [`MAX_DELTA`].
pub(crate) fn parse_delta(text: &str) -> Option<u64> {
    if text.is_empty() || !text.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let mut value: u64 = 0;
    for digit in text.bytes() {
        value = value
            .saturating_mul(10)
            .saturating_add(u64::from(digit - b'0'));
        if value > MAX_DELTA {
            return Some(MAX_DELTA);
        }
    }
    Some(value)
}

/// Iterates over the directives of every field line in `values`, in order. Field lines
/// that are not visible ASCII are skipped.
pub(crate) fn directives<'a>(
    values: impl Iterator<Item = &'a HeaderValue>,
) -> impl Iterator<Item = Directive<'a>> {
    lines(values, false)
}

/// Like [`directives`], for Surrogate-Control: a directive may end in `;device-token`.
fn surrogate_directives<'a>(
    values: impl Iterator<Item = &'a HeaderValue>,
) -> impl Iterator<Item = Directive<'a>> {
    lines(values, true)
}

fn lines<'a>(
    values: impl Iterator<Item = &'a HeaderValue>,
    targets: bool,
) -> impl Iterator<Item = Directive<'a>> {
    values.flat_map(move |value| match value.to_str() {
        Ok(text) => Line::Borrowed(Parser {
            rest: text,
            targets,
        }),
        // Obs-text (bytes above 0x7F, legal inside quoted strings) makes a line not `str`:
        // parse a lossy copy rather than drop the line, which would lose a `no-store` next to
        // it. Directive names and the arguments a cache reads are ASCII, so nothing is lost.
        Err(_) => {
            let text = String::from_utf8_lossy(value.as_bytes()).into_owned();
            let parsed: Vec<Directive<'static>> = Parser {
                rest: &text,
                targets,
            }
            .map(Directive::into_owned)
            .collect();
            Line::Owned(parsed.into_iter())
        }
    })
}

/// The directives of one field line.
enum Line<'a> {
    Borrowed(Parser<'a>),
    Owned(std::vec::IntoIter<Directive<'static>>),
}

impl<'a> Iterator for Line<'a> {
    type Item = Directive<'a>;

    fn next(&mut self) -> Option<Directive<'a>> {
        match self {
            Line::Borrowed(parser) => parser.next(),
            Line::Owned(parsed) => parsed.next(),
        }
    }
}

impl Directive<'_> {
    fn into_owned(self) -> Directive<'static> {
        Directive {
            name: Cow::Owned(self.name.into_owned()),
            arg: match self.arg {
                Arg::None => Arg::None,
                Arg::Value(value) => Arg::Value(Cow::Owned(value.into_owned())),
                Arg::Malformed => Arg::Malformed,
            },
            target: self.target.map(|target| Cow::Owned(target.into_owned())),
        }
    }
}

struct Parser<'a> {
    rest: &'a str,
    targets: bool,
}

impl<'a> Iterator for Parser<'a> {
    type Item = Directive<'a>;

    fn next(&mut self) -> Option<Directive<'a>> {
        loop {
            let text = self.rest.trim_start_matches([' ', '\t', ',']);
            if text.is_empty() {
                self.rest = text;
                return None;
            }
            let name_len = text.bytes().take_while(|&b| is_tchar(b)).count();
            if name_len == 0 {
                // Garbage where a name should be: skip this list member.
                self.rest = skip_member(text);
                continue;
            }
            let name = &text[..name_len];
            let mut rest = &text[name_len..];
            let mut arg = Arg::None;
            if let Some(after) = rest.strip_prefix('=') {
                if let Some(quoted) = after.strip_prefix('"') {
                    match parse_quoted(quoted) {
                        Some((value, after_quote)) => {
                            arg = Arg::Value(value);
                            rest = after_quote;
                        }
                        None => {
                            arg = Arg::Malformed;
                            rest = "";
                        }
                    }
                } else {
                    let len = after.bytes().take_while(|&b| is_tchar(b)).count();
                    arg = if len == 0 {
                        Arg::Malformed
                    } else {
                        Arg::Value(Cow::Borrowed(&after[..len]))
                    };
                    rest = &after[len..];
                }
            }
            let mut target = None;
            if self.targets
                && let Some(after) = rest.strip_prefix(';')
            {
                let len = after.bytes().take_while(|&b| is_tchar(b)).count();
                target = Some(Cow::Borrowed(&after[..len]));
                rest = &after[len..];
            }
            let trimmed = rest.trim_start_matches([' ', '\t']);
            if !(trimmed.is_empty() || trimmed.starts_with(',')) {
                // Something follows the directive before the next comma (`max-age =1`,
                // `max-age=1a`): the directive is malformed.
                arg = Arg::Malformed;
                self.rest = skip_member(trimmed);
            } else {
                self.rest = trimmed;
            }
            return Some(Directive {
                name: Cow::Borrowed(name),
                arg,
                target,
            });
        }
    }
}

/// Parses the inside of a quoted string (after the opening quote): its unescaped value and
/// what follows the closing quote.
fn parse_quoted(text: &str) -> Option<(Cow<'_, str>, &str)> {
    let bytes = text.as_bytes();
    let mut i = 0;
    let mut owned: Option<String> = None;
    while i < bytes.len() {
        match bytes[i] {
            b'"' => {
                let value = match owned {
                    Some(owned) => Cow::Owned(owned),
                    None => Cow::Borrowed(&text[..i]),
                };
                return Some((value, &text[i + 1..]));
            }
            b'\\' if i + 1 < bytes.len() => {
                let buffer = owned.get_or_insert_with(|| text[..i].to_owned());
                buffer.push(char::from(bytes[i + 1]));
                i += 2;
            }
            byte => {
                if let Some(buffer) = owned.as_mut() {
                    buffer.push(char::from(byte));
                }
                i += 1;
            }
        }
    }
    None
}

/// Whether `value` is a `Surrogate-Control` value a surrogate can read whole: every
/// comma-separated member a directive (`name`, `name=token`, `name="quoted"`, optionally
/// `;device-token`), and `max-age` a delta-seconds with an optional `+extension`.
pub(crate) fn valid_surrogate_control(value: &HeaderValue) -> bool {
    let Ok(text) = value.to_str() else {
        return false;
    };
    let mut directives = 0;
    for directive in (Parser {
        rest: text,
        targets: true,
    }) {
        directives += 1;
        let valid = match &directive.arg {
            Arg::Malformed => false,
            _ if !directive.is("max-age") => true,
            Arg::None => false,
            Arg::Value(value) => match value.split_once('+') {
                Some((age, extension)) => {
                    parse_delta(age).is_some() && parse_delta(extension).is_some()
                }
                None => parse_delta(value).is_some(),
            },
        };
        if !valid {
            return false;
        }
    }
    // The parser skips members that do not start with a name: count them back in.
    directives > 0 && directives == members(text)
}

/// The number of non-empty top-level members of a comma-separated list.
fn members(text: &str) -> usize {
    let mut count = 0;
    let mut rest = text;
    loop {
        let member = rest.trim_start_matches([' ', '\t', ',']);
        if member.is_empty() {
            return count;
        }
        count += 1;
        rest = skip_member(member);
    }
}

/// Skips to the next top-level comma, stepping over quoted strings.
fn skip_member(text: &str) -> &str {
    let bytes = text.as_bytes();
    let mut quoted = false;
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'\\' if quoted => i += 1,
            b'"' => quoted = !quoted,
            b',' if !quoted => return &text[i..],
            _ => {}
        }
        i += 1;
    }
    ""
}

/// Parses a comma-separated list of field names (the argument of a qualified `no-cache` or
/// `private`).
fn field_names(list: &str) -> Vec<HeaderName> {
    list.split(',')
        .filter_map(|name| HeaderName::from_bytes(name.trim().as_bytes()).ok())
        .collect()
}

/// The response directives a shared cache acts on.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct ResponseDirectives {
    /// `max-age`; a malformed value counts as `Some(0)`.
    pub(crate) max_age: Option<u64>,
    /// `s-maxage`; a malformed value counts as `Some(0)`.
    pub(crate) s_maxage: Option<u64>,
    pub(crate) no_store: bool,
    /// Unqualified `no-cache`: every reuse must be validated first.
    pub(crate) no_cache: bool,
    /// Unqualified `private`: a shared cache must not store the response.
    pub(crate) private: bool,
    /// Fields named by a qualified `no-cache="..."` or `private="..."`: stored without them.
    pub(crate) omit_fields: Vec<HeaderName>,
    pub(crate) public: bool,
    pub(crate) must_revalidate: bool,
    pub(crate) proxy_revalidate: bool,
    pub(crate) must_understand: bool,
    pub(crate) stale_while_revalidate: Option<u64>,
    pub(crate) stale_if_error: Option<u64>,
    /// Parsed from a targeted field (RFC 9213) rather than `Cache-Control`: `Expires` does
    /// not count then (§2.1).
    pub(crate) targeted: bool,
}

impl ResponseDirectives {
    /// Parses every `Cache-Control` field line of a response. Where a directive repeats,
    /// the first occurrence counts (RFC 9111 §4.2.1).
    pub(crate) fn parse(headers: &HeaderMap) -> Self {
        let mut parsed = Self::default();
        for directive in directives(headers.get_all(CACHE_CONTROL).iter()) {
            parsed.apply(&directive);
        }
        parsed
    }

    fn apply(&mut self, directive: &Directive<'_>) {
        let delta = |current: &mut Option<u64>| {
            if current.is_none() {
                *current = Some(match directive.delta() {
                    Some(Ok(seconds)) => seconds,
                    // Malformed or missing: treated as stale rather than ignored.
                    Some(Err(())) | None => 0,
                });
            }
        };
        if directive.is("max-age") {
            delta(&mut self.max_age);
        } else if directive.is("s-maxage") {
            delta(&mut self.s_maxage);
        } else if directive.is("no-store") {
            self.no_store = true;
        } else if directive.is("no-cache") {
            match &directive.arg {
                Arg::Value(list) => self.omit_fields.extend(field_names(list)),
                Arg::None | Arg::Malformed => self.no_cache = true,
            }
        } else if directive.is("private") {
            match &directive.arg {
                Arg::Value(list) => self.omit_fields.extend(field_names(list)),
                Arg::None | Arg::Malformed => self.private = true,
            }
        } else if directive.is("public") {
            self.public = true;
        } else if directive.is("must-revalidate") {
            self.must_revalidate = true;
        } else if directive.is("proxy-revalidate") {
            self.proxy_revalidate = true;
        } else if directive.is("must-understand") {
            self.must_understand = true;
        } else if directive.is("stale-while-revalidate") {
            if self.stale_while_revalidate.is_none() {
                self.stale_while_revalidate = directive.delta().and_then(Result::ok);
            }
        } else if directive.is("stale-if-error") && self.stale_if_error.is_none() {
            self.stale_if_error = directive.delta().and_then(Result::ok);
        }
    }

    /// Whether a stale response must not be served without revalidation, whatever the
    /// request or configuration allows: `must-revalidate`, `proxy-revalidate`, `s-maxage`
    /// (which implies `proxy-revalidate` for a shared cache, §5.2.2.10) or `no-cache`.
    pub(crate) fn forbids_stale(&self) -> bool {
        self.must_revalidate || self.proxy_revalidate || self.s_maxage.is_some() || self.no_cache
    }

    /// Whether the response may be stored for, and served to, requests with
    /// `Authorization` (RFC 9111 §3.5).
    pub(crate) fn allows_authorized(&self) -> bool {
        self.public || self.s_maxage.is_some() || self.must_revalidate
    }
}

/// The request directives a cache acts on (RFC 9111 §5.2.1), plus `Pragma: no-cache`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct RequestDirectives {
    pub(crate) no_cache: bool,
    pub(crate) no_store: bool,
    pub(crate) max_age: Option<u64>,
    /// `max-stale`; `Some(MAX_DELTA)` when it has no argument (any staleness).
    pub(crate) max_stale: Option<u64>,
    pub(crate) min_fresh: Option<u64>,
    pub(crate) only_if_cached: bool,
    pub(crate) stale_if_error: Option<u64>,
}

impl RequestDirectives {
    /// Parses a request's `Cache-Control`; without one, `Pragma: no-cache` counts as
    /// `no-cache` (RFC 9111 §5.4). Invalid arguments are ignored.
    pub(crate) fn parse(headers: &HeaderMap) -> Self {
        let mut parsed = Self::default();
        let mut any = false;
        for directive in directives(headers.get_all(CACHE_CONTROL).iter()) {
            any = true;
            let seconds = directive.delta().and_then(Result::ok);
            if directive.is("no-cache") {
                parsed.no_cache = true;
            } else if directive.is("no-store") {
                parsed.no_store = true;
            } else if directive.is("max-age") {
                parsed.max_age = parsed.max_age.or(seconds);
            } else if directive.is("max-stale") {
                let value = match directive.arg {
                    Arg::None => Some(MAX_DELTA),
                    Arg::Value(_) | Arg::Malformed => seconds,
                };
                parsed.max_stale = parsed.max_stale.or(value);
            } else if directive.is("min-fresh") {
                parsed.min_fresh = parsed.min_fresh.or(seconds);
            } else if directive.is("only-if-cached") {
                parsed.only_if_cached = true;
            } else if directive.is("stale-if-error") {
                parsed.stale_if_error = parsed.stale_if_error.or(seconds);
            }
        }
        if !any {
            parsed.no_cache = directives(headers.get_all(PRAGMA).iter()).any(|d| d.is("no-cache"));
        }
        parsed
    }

    /// Whether the request has anything to parse at all; the hit path skips parsing when not.
    pub(crate) fn present(headers: &HeaderMap) -> bool {
        headers.contains_key(CACHE_CONTROL) || headers.contains_key(PRAGMA)
    }
}

/// `Surrogate-Control` directives targeted at this cache (Edge Architecture Specification
/// 1.0): those without a `;device-token` and those naming this cache's token.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct SurrogateDirectives {
    pub(crate) present: bool,
    pub(crate) no_store: bool,
    pub(crate) max_age: Option<u64>,
    /// The `+N` of `max-age=M+N`: how long the response may be served stale on error.
    pub(crate) stale_if_error: Option<u64>,
}

/// The Surrogate-Control field name.
pub(crate) const SURROGATE_CONTROL: HeaderName = HeaderName::from_static("surrogate-control");

impl SurrogateDirectives {
    pub(crate) fn parse(headers: &HeaderMap, token: &str) -> Self {
        let mut parsed = Self::default();
        for directive in surrogate_directives(headers.get_all(SURROGATE_CONTROL).iter()) {
            if directive
                .target
                .as_deref()
                .is_some_and(|target| !target.eq_ignore_ascii_case(token))
            {
                continue;
            }
            parsed.present = true;
            if directive.is("no-store") || directive.is("no-store-remote") {
                parsed.no_store = true;
            } else if directive.is("max-age") && parsed.max_age.is_none() {
                let (max_age, extension) = match &directive.arg {
                    Arg::Value(value) => match value.split_once('+') {
                        Some((age, extension)) => (parse_delta(age), parse_delta(extension)),
                        None => (parse_delta(value), None),
                    },
                    Arg::None | Arg::Malformed => (None, None),
                };
                parsed.max_age = Some(max_age.unwrap_or(0));
                parsed.stale_if_error = extension;
            }
        }
        parsed
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn response(values: &[&str]) -> ResponseDirectives {
        let mut headers = HeaderMap::new();
        for value in values {
            headers.append(CACHE_CONTROL, HeaderValue::from_str(value).unwrap());
        }
        ResponseDirectives::parse(&headers)
    }

    fn request(pairs: &[(&str, &str)]) -> RequestDirectives {
        let mut headers = HeaderMap::new();
        for (name, value) in pairs {
            headers.append(
                HeaderName::from_bytes(name.as_bytes()).unwrap(),
                HeaderValue::from_str(value).unwrap(),
            );
        }
        RequestDirectives::parse(&headers)
    }

    #[test]
    fn max_age_is_case_insensitive_and_keeps_leading_zeros() {
        assert_eq!(response(&["MaX-aGe=003600"]).max_age, Some(3600));
    }

    #[test]
    fn quoted_max_age_is_accepted() {
        assert_eq!(response(&["max-age=\"3600\""]).max_age, Some(3600));
    }

    #[test]
    fn malformed_max_age_counts_as_zero() {
        for value in [
            "max-age='3600'",
            "max-age=-3600",
            "max-age=3600a",
            "max-age=a3600",
            "max-age =3600",
            "max-age= 3600",
            "max-age",
        ] {
            assert_eq!(response(&[value]).max_age, Some(0), "{value}");
        }
    }

    #[test]
    fn max_age_inside_a_quoted_string_is_ignored() {
        assert_eq!(
            response(&["extension=\"max-age=3600\", max-age=1"]).max_age,
            Some(1)
        );
        assert_eq!(
            response(&["max-age=1, extension=\"max-age=3600\""]).max_age,
            Some(1)
        );
        assert_eq!(
            response(&["extension=\"a, max-age=3600\", max-age=\"1\""]).max_age,
            Some(1)
        );
    }

    #[test]
    fn first_occurrence_wins_across_field_lines() {
        assert_eq!(response(&["max-age=3600", "max-age=1"]).max_age, Some(3600));
        assert_eq!(response(&["max-age=1800, max-age=1"]).max_age, Some(1800));
    }

    #[test]
    fn huge_delta_seconds_saturate() {
        assert_eq!(response(&["max-age=99999999999"]).max_age, Some(MAX_DELTA));
        assert_eq!(response(&["s-maxage=2147483649"]).s_maxage, Some(MAX_DELTA));
    }

    #[test]
    fn qualified_no_cache_and_private_name_fields_instead_of_forbidding() {
        let parsed = response(&["no-cache=\"a, B\", private=\"set-cookie\", max-age=60"]);
        assert!(!parsed.no_cache);
        assert!(!parsed.private);
        let names: Vec<&str> = parsed.omit_fields.iter().map(HeaderName::as_str).collect();
        assert_eq!(names, ["a", "b", "set-cookie"]);
        let plain = response(&["No-CaChE, PRIVATE"]);
        assert!(plain.no_cache && plain.private);
    }

    #[test]
    fn stale_extensions_are_parsed() {
        let parsed = response(&["max-age=1, stale-while-revalidate=30, stale-if-error=60"]);
        assert_eq!(parsed.stale_while_revalidate, Some(30));
        assert_eq!(parsed.stale_if_error, Some(60));
    }

    #[test]
    fn s_maxage_forbids_serving_stale_and_allows_authorized_reuse() {
        let parsed = response(&["s-maxage=60"]);
        assert!(parsed.forbids_stale());
        assert!(parsed.allows_authorized());
        assert!(!response(&["max-age=60"]).allows_authorized());
    }

    #[test]
    fn request_directives_are_parsed() {
        let parsed = request(&[(
            "cache-control",
            "max-age=5, max-stale, min-fresh=7, only-if-cached, no-store",
        )]);
        assert_eq!(parsed.max_age, Some(5));
        assert_eq!(parsed.max_stale, Some(MAX_DELTA));
        assert_eq!(parsed.min_fresh, Some(7));
        assert!(parsed.only_if_cached && parsed.no_store && !parsed.no_cache);
        assert_eq!(
            request(&[("cache-control", "max-stale=10")]).max_stale,
            Some(10)
        );
    }

    #[test]
    fn pragma_no_cache_counts_only_without_cache_control() {
        assert!(request(&[("pragma", "no-cache")]).no_cache);
        assert!(!request(&[("pragma", "no-cache"), ("cache-control", "max-stale=1")]).no_cache);
        assert!(!request(&[("pragma", "foo")]).no_cache);
    }

    #[test]
    fn a_line_with_obs_text_still_counts() {
        let mut headers = HeaderMap::new();
        headers.insert(
            CACHE_CONTROL,
            HeaderValue::from_bytes(b"no-store, x=\"\xc3\xa9\"").unwrap(),
        );
        headers.append(
            CACHE_CONTROL,
            HeaderValue::from_bytes(b"private, y=\"\xff\"").unwrap(),
        );
        let parsed = ResponseDirectives::parse(&headers);
        assert!(parsed.no_store && parsed.private);
        let mut request = HeaderMap::new();
        request.insert(
            CACHE_CONTROL,
            HeaderValue::from_bytes(b"no-cache, z=\"\xfe\"").unwrap(),
        );
        assert!(RequestDirectives::parse(&request).no_cache);
    }

    #[test]
    fn surrogate_control_honours_targets() {
        let mut headers = HeaderMap::new();
        headers.insert(
            SURROGATE_CONTROL,
            HeaderValue::from_static("max-age=3600;towerkit, no-store;other"),
        );
        let parsed = SurrogateDirectives::parse(&headers, "towerkit");
        assert_eq!(parsed.max_age, Some(3600));
        assert!(!parsed.no_store);
        headers.insert(
            SURROGATE_CONTROL,
            HeaderValue::from_static("max-age=3600;not-for-you"),
        );
        assert!(!SurrogateDirectives::parse(&headers, "towerkit").present);
        headers.insert(
            SURROGATE_CONTROL,
            HeaderValue::from_static("foobar, MaX-aGe=60+30"),
        );
        let parsed = SurrogateDirectives::parse(&headers, "towerkit");
        assert_eq!(
            (parsed.max_age, parsed.stale_if_error),
            (Some(60), Some(30))
        );
    }
}
