//! Entity tags of the coded variants: each coding's variant carries the identity tag with a
//! suffix (`"abc"` → `"abc-br"`), and a conditional request naming a variant's tag is
//! passed inward with the identity tag, so the service inside compares the tag it knows.

use http::header::{ETAG, IF_NONE_MATCH};
use http::{HeaderMap, HeaderValue};
use towerkit_http::etag_with_coding;

use crate::encoding::Encoding;

/// Gives a compressed response's `ETag` its coding's suffix: `"abc"` → `"abc-br"`,
/// `W/"abc"` → `W/"abc-br"`. A malformed tag is left as it is.
pub(crate) fn suffix_etag(headers: &mut HeaderMap, encoding: Encoding) {
    let Some(etag) = headers.get(ETAG) else {
        return;
    };
    if let Some(coded) = etag_with_coding(etag, encoding.as_str()) {
        headers.insert(ETAG, coded);
    }
}

/// Rewrites the request's `If-None-Match` so that every tag of `encoding`'s variant
/// (`"abc-br"` when brotli is negotiated) becomes its identity tag (`"abc"`): the service
/// inside knows only the identity tag. Tags of other codings are left as they are, so they
/// match nothing inside: the client holds a variant it would not get now.
///
/// Returns the original lines when it rewrote any (the response's `304` then gets the
/// suffix back, [`restore_suffix`]); `None`, and no allocation, when there was nothing to do.
pub(crate) fn strip_variant_tags(
    headers: &mut HeaderMap,
    encoding: Encoding,
) -> Option<Box<[HeaderValue]>> {
    let suffix = encoding.as_str();
    if !headers
        .get_all(IF_NONE_MATCH)
        .iter()
        .any(|line| quoted(line.as_bytes()).any(|opaque| base_of(opaque, suffix).is_some()))
    {
        return None;
    }
    let original: Box<[HeaderValue]> = headers.get_all(IF_NONE_MATCH).iter().cloned().collect();
    headers.remove(IF_NONE_MATCH);
    for line in &original {
        let rewritten = rewrite_line(line.as_bytes(), suffix);
        // Only bytes of the original value are copied, so the value stays valid.
        match HeaderValue::from_bytes(&rewritten) {
            Ok(value) => headers.append(IF_NONE_MATCH, value),
            Err(_) => headers.append(IF_NONE_MATCH, line.clone()),
        };
    }
    Some(original)
}

/// Puts the variant's suffix back on the `ETag` of a `304` answering a request that
/// [`strip_variant_tags`] rewrote, when the client named that variant's tag: the `304` then
/// names the representation the client holds and would get again.
pub(crate) fn restore_suffix(
    headers: &mut HeaderMap,
    original: &[HeaderValue],
    encoding: Encoding,
) {
    let Some(coded) = headers
        .get(ETAG)
        .and_then(|etag| etag_with_coding(etag, encoding.as_str()))
    else {
        return;
    };
    let coded_opaque = opaque_of(coded.as_bytes());
    let named = original
        .iter()
        .any(|line| quoted(line.as_bytes()).any(|opaque| Some(opaque) == coded_opaque));
    if named {
        headers.insert(ETAG, coded);
    }
}

/// The quoted strings of a line (the opaque tags of an entity-tag list), without quotes.
fn quoted(line: &[u8]) -> impl Iterator<Item = &[u8]> {
    let mut rest = line;
    std::iter::from_fn(move || {
        let start = rest.iter().position(|&b| b == b'"')?;
        let after = &rest[start + 1..];
        let end = after.iter().position(|&b| b == b'"')?;
        rest = &after[end + 1..];
        Some(&after[..end])
    })
}

/// `abc` for `abc-<suffix>`, when `abc` is not empty.
fn base_of<'a>(opaque: &'a [u8], suffix: &str) -> Option<&'a [u8]> {
    let base = opaque.strip_suffix(suffix.as_bytes())?.strip_suffix(b"-")?;
    (!base.is_empty()).then_some(base)
}

fn opaque_of(etag: &[u8]) -> Option<&[u8]> {
    quoted(etag).next()
}

/// The line with every quoted `abc-<suffix>` replaced by `abc`; everything else copied.
fn rewrite_line(line: &[u8], suffix: &str) -> Vec<u8> {
    let mut out = Vec::with_capacity(line.len());
    let mut rest = line;
    while let Some(start) = rest.iter().position(|&b| b == b'"') {
        out.extend_from_slice(&rest[..=start]);
        let after = &rest[start + 1..];
        let Some(end) = after.iter().position(|&b| b == b'"') else {
            rest = after;
            break;
        };
        let opaque = &after[..end];
        out.extend_from_slice(base_of(opaque, suffix).unwrap_or(opaque));
        out.push(b'"');
        rest = &after[end + 1..];
    }
    out.extend_from_slice(rest);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn if_none_match(lines: &[&'static str]) -> HeaderMap {
        let mut headers = HeaderMap::new();
        for line in lines {
            headers.append(IF_NONE_MATCH, HeaderValue::from_static(line));
        }
        headers
    }

    fn lines(headers: &HeaderMap) -> Vec<&str> {
        headers
            .get_all(IF_NONE_MATCH)
            .iter()
            .map(|v| v.to_str().unwrap())
            .collect()
    }

    #[test]
    fn only_the_negotiated_codings_tags_are_stripped() {
        let mut headers = if_none_match(&["\"a-br\", W/\"b-br\", \"c-gzip\"", "\"d\""]);
        let original = strip_variant_tags(&mut headers, Encoding::Br).unwrap();
        assert_eq!(lines(&headers), ["\"a\", W/\"b\", \"c-gzip\"", "\"d\""]);
        assert_eq!(original.len(), 2);
    }

    #[test]
    fn nothing_to_strip_leaves_the_request_alone() {
        for line in ["\"a\"", "*", "\"a-gzip\"", "\"-br\"", "\"a-br", "a-br"] {
            let mut headers = if_none_match(&[line]);
            assert!(
                strip_variant_tags(&mut headers, Encoding::Br).is_none(),
                "{line}"
            );
            assert_eq!(lines(&headers), [line]);
        }
    }

    #[test]
    fn a_not_modified_gets_the_suffix_the_client_named() {
        let original = [HeaderValue::from_static("\"x\", \"a-br\"")];
        let mut headers = HeaderMap::new();
        headers.insert(ETAG, HeaderValue::from_static("\"a\""));
        restore_suffix(&mut headers, &original, Encoding::Br);
        assert_eq!(headers[ETAG], "\"a-br\"");
        let mut headers = HeaderMap::new();
        headers.insert(ETAG, HeaderValue::from_static("\"x\""));
        restore_suffix(&mut headers, &original, Encoding::Br);
        assert_eq!(headers[ETAG], "\"x\"", "the client named the identity tag");
    }

    #[test]
    fn compressed_tags_get_the_coding_suffix() {
        for (tag, coded) in [
            ("\"a\"", "\"a-zstd\""),
            ("W/\"a\"", "W/\"a-zstd\""),
            ("a", "a"),
        ] {
            let mut headers = HeaderMap::new();
            headers.insert(ETAG, HeaderValue::from_static(tag));
            suffix_etag(&mut headers, Encoding::Zstd);
            assert_eq!(headers[ETAG], coded);
        }
    }
}
