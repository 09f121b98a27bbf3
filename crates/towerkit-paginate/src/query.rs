//! The one walk over a query string that the pagination and `fields` parameters share, and
//! the one rule for the parameter names they may be configured with.

use std::borrow::Cow;

/// The `name=value` pairs of a URI's query, percent-decoded (`+` is a space), each with
/// the raw segment it came from; empty segments (`a=1&&b=2`) are skipped. Unlike
/// `form_urlencoded::parse` over the whole query, the raw segment lets a caller copy
/// parameters it does not consume into links unchanged.
pub(crate) fn pairs(
    query: Option<&str>,
) -> impl Iterator<Item = (&str, Cow<'_, str>, Cow<'_, str>)> {
    query
        .unwrap_or_default()
        .split('&')
        .filter(|segment| !segment.is_empty())
        .map(|segment| {
            let (name, value) = form_urlencoded::parse(segment.as_bytes())
                .next()
                .unwrap_or_default();
            (segment, name, value)
        })
}

/// Whether `name` may name a query parameter as configured: non-empty, and only the
/// characters that need no percent-encoding (`A-Z a-z 0-9 - . _ ~`).
pub(crate) fn is_url_safe(name: &str) -> bool {
    !name.is_empty()
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~'))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pairs_are_decoded_and_keep_their_raw_segment() {
        let pairs: Vec<_> = pairs(Some("a=1&&b=x%20y+z&c")).collect();
        assert_eq!(
            pairs,
            [
                ("a=1", "a".into(), "1".into()),
                ("b=x%20y+z", "b".into(), "x y z".into()),
                ("c", "c".into(), "".into()),
            ]
        );
        assert_eq!(super::pairs(None).count(), 0);
    }
}
