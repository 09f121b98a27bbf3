//! Small HTTP helpers shared by the towerkit layers, so each exists once.
//!
//! - [`weaken_etag`]: what a layer that changes a body does to a strong `ETag`.
//! - [`etag_with_coding`], [`strip_coding_suffix`]: the tag of a content-coded variant
//!   (`"abc"` → `"abc-br"`) and back.
//! - [`media_type_essence`]: `text/html; charset=utf-8` gives `text/html`.
//! - [`is_token`], [`is_tchar`], [`lists_token`]: RFC 9110 tokens and token lists.
//! - [`CACHE_STATUS`]: the RFC 9211 `Cache-Status` field name.
//! - [`inner_accessors!`]: `get_ref`, `get_mut` and `into_inner` for a `Foo<S>` service.
//! - [`metric_cell`]: metric handles registered with the recorder once, not per request.
//!
//! ```
//! use http::{HeaderMap, HeaderValue, header::ETAG};
//!
//! let mut headers = HeaderMap::new();
//! headers.insert(ETAG, HeaderValue::from_static("\"v1\""));
//! towerkit_http::weaken_etag(&mut headers);
//! assert_eq!(headers[ETAG], "W/\"v1\"");
//! ```

use http::header::{ETAG, HeaderMap, HeaderName, HeaderValue};

pub mod metric_cell;

/// The `Cache-Status` response field (RFC 9211).
pub const CACHE_STATUS: HeaderName = HeaderName::from_static("cache-status");

/// Turns a strong `ETag` into a weak one: a layer that changes the body (a JSON rewrite) no
/// longer serves the bytes a strong validator names (RFC 9110 §8.8.1), so `"x"` becomes
/// `W/"x"`. (A content coding gets a tag of its own instead: [`etag_with_coding`].)
///
/// A weak tag is left as it is, and so is a malformed one (anything that does not start with
/// a double quote): odd upstream output passes through untouched, and a value that is not an
/// entity tag validates nothing in the first place.
pub fn weaken_etag(headers: &mut HeaderMap) {
    let Some(etag) = headers.get(ETAG) else {
        return;
    };
    let bytes = etag.as_bytes();
    if !bytes.starts_with(b"\"") {
        return;
    }
    let mut weak = Vec::with_capacity(bytes.len() + 2);
    weak.extend_from_slice(b"W/");
    weak.extend_from_slice(bytes);
    // Prefixing two visible ASCII bytes to a valid value always gives a valid value.
    if let Ok(weak) = HeaderValue::from_bytes(&weak) {
        headers.insert(ETAG, weak);
    }
}

/// The content codings whose variants get a suffixed entity tag, with their suffixes:
/// `"abc"` compressed with brotli is `"abc-br"`.
pub const CODING_SUFFIXES: [&str; 4] = ["-zstd", "-br", "-gzip", "-deflate"];

/// The entity tag of a variant of `etag` encoded with `coding` (a `Content-Encoding` token):
/// the opaque tag gets `-coding` appended inside its quotes, so `"abc"` becomes `"abc-br"`
/// and `W/"abc"` becomes `W/"abc-br"`. Each coding's variant has different bytes, so it
/// needs a tag of its own (RFC 9110 §8.8.3); the suffix keeps the identity tag recoverable
/// ([`strip_coding_suffix`]), so a precondition can compare the base tag.
///
/// `None` when `etag` is not an entity tag (no quoted opaque tag), or `coding` is not a token.
///
/// ```
/// use http::HeaderValue;
///
/// let tag = HeaderValue::from_static("\"abc\"");
/// assert_eq!(towerkit_http::etag_with_coding(&tag, "br").unwrap(), "\"abc-br\"");
/// let weak = HeaderValue::from_static("W/\"abc\"");
/// assert_eq!(towerkit_http::etag_with_coding(&weak, "gzip").unwrap(), "W/\"abc-gzip\"");
/// ```
pub fn etag_with_coding(etag: &HeaderValue, coding: &str) -> Option<HeaderValue> {
    let bytes = etag.as_bytes();
    let quoted = bytes.strip_prefix(b"W/").unwrap_or(bytes);
    if quoted.len() < 2 || !quoted.starts_with(b"\"") || !quoted.ends_with(b"\"") {
        return None;
    }
    if !is_token(coding) {
        return None;
    }
    let mut out = Vec::with_capacity(bytes.len() + coding.len() + 1);
    out.extend_from_slice(&bytes[..bytes.len() - 1]);
    out.push(b'-');
    out.extend_from_slice(coding.as_bytes());
    out.push(b'"');
    HeaderValue::from_bytes(&out).ok()
}

/// The opaque tag (the part between the quotes) without a [coding suffix](CODING_SUFFIXES):
/// `abc-br` gives `abc`; a tag without one is returned as it is.
///
/// ```
/// assert_eq!(towerkit_http::strip_coding_suffix(b"abc-zstd"), b"abc");
/// assert_eq!(towerkit_http::strip_coding_suffix(b"abc"), b"abc");
/// assert_eq!(towerkit_http::strip_coding_suffix(b"-br"), b"-br");
/// ```
pub fn strip_coding_suffix(opaque: &[u8]) -> &[u8] {
    for suffix in CODING_SUFFIXES {
        if let Some(base) = opaque.strip_suffix(suffix.as_bytes())
            && !base.is_empty()
        {
            return base;
        }
    }
    opaque
}

/// The `type/subtype` part of a `Content-Type` value, trimmed, without parameters:
/// `text/html; charset=utf-8` gives `text/html`. A value that is not visible ASCII gives `""`.
#[inline]
pub fn media_type_essence(value: &HeaderValue) -> &str {
    let text = value.to_str().unwrap_or_default();
    text.split(';').next().unwrap_or_default().trim()
}

/// Whether `b` is an RFC 9110 `tchar`.
#[inline]
pub fn is_tchar(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b)
}

/// Whether `text` is an RFC 9110 `token`: one or more tchars.
#[inline]
pub fn is_token(text: &str) -> bool {
    !text.is_empty() && text.bytes().all(is_tchar)
}

/// Whether any line of the comma-separated list field `header` names `name`
/// (case-insensitive) or `*`.
pub fn lists_token(headers: &HeaderMap, header: &HeaderName, name: &str) -> bool {
    headers
        .get_all(header)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .flat_map(|value| value.split(','))
        .map(str::trim)
        .any(|token| token == "*" || token.eq_ignore_ascii_case(name))
}

/// `get_ref`, `get_mut` and `into_inner` for a service that keeps its inner service in a field
/// named `inner`, as tower-http's services offer them. Invoke it inside the service's
/// inherent `impl` block, naming the inner service's type parameter.
///
/// ```
/// #[derive(Debug)]
/// pub struct Wrapper<S> {
///     inner: S,
/// }
///
/// impl<S> Wrapper<S> {
///     towerkit_http::inner_accessors!(S);
/// }
///
/// let mut wrapper = Wrapper { inner: 1 };
/// *wrapper.get_mut() += 1;
/// assert_eq!(*wrapper.get_ref(), 2);
/// assert_eq!(wrapper.into_inner(), 2);
/// ```
#[macro_export]
macro_rules! inner_accessors {
    ($inner:ident) => {
        /// A reference to the inner service.
        pub fn get_ref(&self) -> &$inner {
            &self.inner
        }

        /// A mutable reference to the inner service.
        pub fn get_mut(&mut self) -> &mut $inner {
            &mut self.inner
        }

        /// The inner service.
        pub fn into_inner(self) -> $inner {
            self.inner
        }
    };
}

#[cfg(test)]
mod tests {
    use super::*;

    fn weakened(etag: Option<&'static str>) -> Option<String> {
        let mut headers = HeaderMap::new();
        if let Some(etag) = etag {
            headers.insert(ETAG, HeaderValue::from_static(etag));
        }
        weaken_etag(&mut headers);
        headers
            .get(ETAG)
            .map(|value| value.to_str().unwrap().to_owned())
    }

    #[test]
    fn a_strong_tag_becomes_weak() {
        assert_eq!(weakened(Some("\"abc\"")).as_deref(), Some("W/\"abc\""));
    }

    #[test]
    fn a_weak_tag_stays_as_it_is() {
        assert_eq!(weakened(Some("W/\"abc\"")).as_deref(), Some("W/\"abc\""));
    }

    #[test]
    fn a_malformed_tag_passes_through_untouched() {
        assert_eq!(weakened(Some("abc")).as_deref(), Some("abc"));
        assert_eq!(weakened(Some("w/\"abc\"")).as_deref(), Some("w/\"abc\""));
    }

    #[test]
    fn no_tag_stays_no_tag() {
        assert_eq!(weakened(None), None);
    }

    #[test]
    fn coding_suffixes_round_trip() {
        for (tag, coded) in [
            ("\"a\"", "\"a-br\""),
            ("W/\"a\"", "W/\"a-br\""),
            ("\"\"", "\"-br\""),
        ] {
            let value = etag_with_coding(&HeaderValue::from_static(tag), "br").unwrap();
            assert_eq!(value, coded);
        }
        for malformed in ["a", "\"a", "W/a", "w/\"a\""] {
            assert_eq!(
                etag_with_coding(&HeaderValue::from_static(malformed), "br"),
                None
            );
        }
        assert_eq!(
            etag_with_coding(&HeaderValue::from_static("\"a\""), "b r"),
            None
        );
        assert_eq!(strip_coding_suffix(b"a-br-gzip"), b"a-br");
        assert_eq!(strip_coding_suffix(b"a-deflate"), b"a");
        assert_eq!(strip_coding_suffix(b"a-identity"), b"a-identity");
    }

    #[test]
    fn essence_drops_parameters_and_spaces() {
        let value = HeaderValue::from_static(" text/html ; charset=utf-8");
        assert_eq!(media_type_essence(&value), "text/html");
        let opaque = HeaderValue::from_bytes(b"text/\xffhtml").unwrap();
        assert_eq!(media_type_essence(&opaque), "");
    }

    #[test]
    fn tokens_are_tchars_only() {
        assert!(is_token("max-age"));
        assert!(is_token("x!#$%&'*+-.^_`|~9"));
        assert!(!is_token(""));
        assert!(!is_token("a b"));
        assert!(!is_token("a,b"));
        assert!(!is_token("a\"b"));
    }

    #[test]
    fn lists_match_tokens_not_substrings() {
        let mut headers = HeaderMap::new();
        let vary = http::header::VARY;
        headers.append(&vary, HeaderValue::from_static("Accept-Encoding-X"));
        assert!(!lists_token(&headers, &vary, "accept-encoding"));
        headers.append(&vary, HeaderValue::from_static("Origin, Accept-Encoding"));
        assert!(lists_token(&headers, &vary, "accept-encoding"));
        let mut star = HeaderMap::new();
        star.insert(&vary, HeaderValue::from_static("*"));
        assert!(lists_token(&star, &vary, "origin"));
    }
}

/// The README's examples, compiled and run as doc tests (the README is in the package, so
/// `cargo test --doc` on the published crate runs them too).
#[doc = include_str!("../README.md")]
#[cfg(doctest)]
pub struct ReadmeDoctests;
