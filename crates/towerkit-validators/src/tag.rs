//! Entity tags: computing one from body bytes, parsing `If-None-Match` / `If-Match` lists,
//! and the weak and strong comparisons of RFC 9110 §8.8.3.2.

use http::HeaderValue;
use xxhash_rust::xxh3::xxh3_128;

/// The strong entity tag of `body`: the XXH3-128 hash of its bytes as 32 lowercase hex
/// digits in quotes, for example `"9a6f…"`. Equal bytes give equal tags on every instance
/// and every release of this crate (XXH3's output is specified and stable).
///
/// ```
/// let tag = towerkit_validators::etag_of(b"{\"id\":1}");
/// assert_eq!(tag.len(), 34);
/// assert_eq!(tag, towerkit_validators::etag_of(b"{\"id\":1}"));
/// assert_ne!(tag, towerkit_validators::etag_of(b"{\"id\":2}"));
/// ```
pub fn etag_of(body: &[u8]) -> HeaderValue {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let hash = xxh3_128(body).to_be_bytes();
    let mut out = [0u8; 34];
    out[0] = b'"';
    for (i, byte) in hash.iter().enumerate() {
        out[1 + 2 * i] = HEX[usize::from(byte >> 4)];
        out[2 + 2 * i] = HEX[usize::from(byte & 0x0f)];
    }
    out[33] = b'"';
    // Quotes and hex digits are always a valid header value.
    HeaderValue::from_bytes(&out).unwrap_or_else(|_| HeaderValue::from_static("\"\""))
}

/// One entity tag of a list: whether it is weak, and its opaque tag without the quotes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Tag<'a> {
    pub(crate) weak: bool,
    pub(crate) opaque: &'a [u8],
}

/// A member of an entity-tag list field (`If-Match`, `If-None-Match`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Member<'a> {
    /// `*`: any current representation.
    Any,
    /// An entity tag.
    Tag(Tag<'a>),
    /// Something that is neither (the rest of the line is skipped up to the next comma).
    Malformed,
}

/// Parses `value` as an entity tag (`W/"x"` or `"x"`, RFC 9110 §8.8.3).
pub(crate) fn parse_tag(value: &[u8]) -> Option<Tag<'_>> {
    let value = value.trim_ascii();
    let (weak, quoted) = match value.strip_prefix(b"W/") {
        Some(rest) => (true, rest),
        None => (false, value),
    };
    let opaque = quoted.strip_prefix(b"\"")?.strip_suffix(b"\"")?;
    opaque
        .iter()
        .all(|&b| is_etagc(b))
        .then_some(Tag { weak, opaque })
}

/// The members of one line of an entity-tag list field: `*`, or a comma-separated list of
/// entity tags with optional whitespace and empty elements (RFC 9110 §5.6.1). A member
/// that is not an entity tag is reported as [`Member::Malformed`] and parsing resumes
/// after the next comma, so one bad member never hides the others. Never panics.
pub(crate) fn members(line: &[u8]) -> impl Iterator<Item = Member<'_>> {
    let mut rest = line;
    std::iter::from_fn(move || {
        while let [b' ' | b'\t' | b',', tail @ ..] = rest {
            rest = tail;
        }
        if rest.is_empty() {
            return None;
        }
        let (weak, after) = match rest {
            [b'W', b'/', tail @ ..] => (true, tail),
            _ => (false, rest),
        };
        let member = match after {
            [b'"', inner @ ..] => match inner.iter().position(|&b| b == b'"') {
                Some(end) if inner[..end].iter().all(|&b| is_etagc(b)) => {
                    rest = &inner[end + 1..];
                    Member::Tag(Tag {
                        weak,
                        opaque: &inner[..end],
                    })
                }
                _ => skip_member(&mut rest),
            },
            [b'*', tail @ ..] if !weak => {
                rest = tail;
                Member::Any
            }
            _ => skip_member(&mut rest),
        };
        // What follows a member must be whitespace, then a comma or the end.
        let trimmed = rest.trim_ascii_start();
        if !(trimmed.is_empty() || trimmed.starts_with(b",")) {
            skip_member(&mut rest);
            return Some(Member::Malformed);
        }
        Some(member)
    })
}

/// Whether a whole field (every line) is well formed: `*` alone, or a list of entity tags.
pub(crate) fn is_well_formed<'a>(lines: impl Iterator<Item = &'a HeaderValue>) -> bool {
    let mut any = false;
    let mut tags = false;
    for line in lines {
        for member in members(line.as_bytes()) {
            match member {
                Member::Any => any = true,
                Member::Tag(_) => tags = true,
                Member::Malformed => return false,
            }
        }
    }
    !(any && tags)
}

/// Weak comparison (RFC 9110 §8.8.3.2): the opaque tags are equal, whether or not either
/// is weak.
pub(crate) fn weak_eq(a: Tag<'_>, b: Tag<'_>) -> bool {
    a.opaque == b.opaque
}

/// Strong comparison (RFC 9110 §8.8.3.2) between a tag a client sent and the current
/// one: neither is weak and the opaque tags are equal, where the client's tag may carry a
/// [coding suffix](towerkit_http::CODING_SUFFIXES) (`"abc-br"` matches `"abc"`): the
/// client saw a content-coded variant of the same representation.
pub(crate) fn strong_eq_ignoring_coding(sent: Tag<'_>, current: Tag<'_>) -> bool {
    !sent.weak
        && !current.weak
        && (sent.opaque == current.opaque
            || towerkit_http::strip_coding_suffix(sent.opaque) == current.opaque)
}

/// Whether `If-None-Match` (all its lines) matches `current` by weak comparison, or is `*`.
/// Malformed members match nothing.
pub(crate) fn none_match_hits<'a>(
    lines: impl Iterator<Item = &'a HeaderValue>,
    current: Tag<'_>,
) -> bool {
    for line in lines {
        for member in members(line.as_bytes()) {
            match member {
                Member::Any => return true,
                Member::Tag(tag) if weak_eq(tag, current) => return true,
                Member::Tag(_) | Member::Malformed => {}
            }
        }
    }
    false
}

/// RFC 9110 `etagc`: `%x21 / %x23-7E / obs-text`.
fn is_etagc(b: u8) -> bool {
    b == 0x21 || (0x23..=0x7e).contains(&b) || b >= 0x80
}

/// Skips to the next comma (or the end) and reports a malformed member.
fn skip_member<'a>(rest: &mut &[u8]) -> Member<'a> {
    let end = rest.iter().position(|&b| b == b',').unwrap_or(rest.len());
    *rest = &rest[end..];
    Member::Malformed
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tag(weak: bool, opaque: &str) -> Member<'_> {
        Member::Tag(Tag {
            weak,
            opaque: opaque.as_bytes(),
        })
    }

    fn parsed(line: &str) -> Vec<Member<'_>> {
        members(line.as_bytes()).collect()
    }

    #[test]
    fn lists_are_parsed_with_whitespace_and_empty_elements() {
        assert_eq!(
            parsed(" \"a\" ,, W/\"b\",\t\"\" ,"),
            [tag(false, "a"), tag(true, "b"), tag(false, "")]
        );
        assert_eq!(parsed("*"), [Member::Any]);
        assert_eq!(parsed(""), []);
        assert_eq!(parsed(" , ,"), []);
    }

    #[test]
    fn a_malformed_member_does_not_hide_the_others() {
        assert_eq!(
            parsed("abc, \"x\" junk, W/\"ok\", w/\"lower\", \"open"),
            [
                Member::Malformed,
                Member::Malformed,
                tag(true, "ok"),
                Member::Malformed,
                Member::Malformed,
            ]
        );
        assert_eq!(parsed("W/*"), [Member::Malformed]);
        assert_eq!(parsed("\"a b\""), [Member::Malformed]);
    }

    #[test]
    fn well_formed_fields_are_star_alone_or_tags() {
        let lines = |values: &[&'static str]| -> Vec<HeaderValue> {
            values.iter().map(|v| HeaderValue::from_static(v)).collect()
        };
        assert!(is_well_formed(lines(&["*"]).iter()));
        assert!(is_well_formed(lines(&["\"a\", W/\"b\"", "\"c\""]).iter()));
        assert!(!is_well_formed(lines(&["*", "\"a\""]).iter()));
        assert!(!is_well_formed(lines(&["a"]).iter()));
    }

    #[test]
    fn comparisons_follow_rfc_9110_table() {
        let (w1, w2, s1) = (
            Tag {
                weak: true,
                opaque: b"1",
            },
            Tag {
                weak: true,
                opaque: b"2",
            },
            Tag {
                weak: false,
                opaque: b"1",
            },
        );
        // RFC 9110 §8.8.3.2's table.
        assert!(!strong_eq_ignoring_coding(w1, w1));
        assert!(weak_eq(w1, w1));
        assert!(!strong_eq_ignoring_coding(w1, w2));
        assert!(!weak_eq(w1, w2));
        assert!(!strong_eq_ignoring_coding(w1, s1));
        assert!(weak_eq(w1, s1));
        assert!(strong_eq_ignoring_coding(s1, s1));
        let coded = Tag {
            weak: false,
            opaque: b"1-br",
        };
        assert!(strong_eq_ignoring_coding(coded, s1));
        assert!(!strong_eq_ignoring_coding(s1, coded));
    }

    #[test]
    fn body_tags_are_quoted_hex() {
        let tag = etag_of(b"");
        let bytes = tag.as_bytes();
        assert_eq!(bytes.len(), 34);
        assert!(parse_tag(bytes).is_some_and(|tag| !tag.weak));
        assert!(
            bytes[1..33]
                .iter()
                .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(b))
        );
    }

    proptest::proptest! {
        #[test]
        fn list_parsing_never_panics(bytes in proptest::collection::vec(proptest::num::u8::ANY, 0..64)) {
            let _ = members(&bytes).count();
            let _ = parse_tag(&bytes);
        }

        #[test]
        fn a_list_of_tags_parses_back(opaques in proptest::collection::vec("[!#-~]{0,8}", 0..6), weak in proptest::collection::vec(proptest::bool::ANY, 6)) {
            let line: Vec<String> = opaques.iter().zip(&weak).map(|(o, w)| format!("{}\"{o}\"", if *w { "W/" } else { "" })).collect();
            let line = line.join(" , ");
            let parsed: Vec<_> = members(line.as_bytes()).collect();
            let expected: Vec<_> = opaques.iter().zip(&weak).map(|(o, w)| tag(*w, o)).collect();
            proptest::prop_assert_eq!(parsed, expected);
        }
    }
}
