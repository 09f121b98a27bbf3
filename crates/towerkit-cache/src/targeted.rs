//! Targeted cache-control fields (RFC 9213): `Cache-Control`'s directives in a field aimed
//! at one cache or one class of caches, such as `CDN-Cache-Control`.
//!
//! A cache has a target list: the targeted fields it obeys, most specific first. The first
//! of them that a response carries with a valid, non-empty value replaces `Cache-Control`
//! and `Expires` entirely for this cache's storage and freshness decisions (§2.1). A
//! targeted field is a Dictionary Structured Field (RFC 8941): a value that does not parse
//! as one, or a directive whose value has the wrong type (`max-age="60"`, `max-age=1.5`,
//! `no-store=1`), makes the whole field invalid, and it is ignored as if absent (§2.2).

use http::{HeaderMap, HeaderName};
use sfv::{BareItem, Dictionary, ListEntry, Parser};

use crate::control::{MAX_DELTA, ResponseDirectives};

/// The targeted field a towerkit cache obeys by default, before any other.
pub(crate) const TOWERKIT_CACHE_CONTROL: HeaderName =
    HeaderName::from_static("towerkit-cache-control");

/// The targeted field for CDNs (RFC 9213 §3).
pub(crate) const CDN_CACHE_CONTROL: HeaderName = HeaderName::from_static("cdn-cache-control");

/// A cache's target list.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Targets {
    /// This cache's own field: obeyed first, and removed from responses sent on.
    pub(crate) own: HeaderName,
    /// Whether `CDN-Cache-Control` is obeyed after `own` (the cache is a CDN, or the edge
    /// in front of an application). It is forwarded either way: caches further down may
    /// obey it too.
    pub(crate) cdn: bool,
}

impl Default for Targets {
    fn default() -> Self {
        Targets {
            own: TOWERKIT_CACHE_CONTROL,
            cdn: false,
        }
    }
}

impl Targets {
    /// The directives of the first targeted field on the list that `headers` carry with a
    /// valid, non-empty value; `None` when there is none and `Cache-Control` applies.
    pub(crate) fn directives(&self, headers: &HeaderMap) -> Option<ResponseDirectives> {
        parse(headers, &self.own).or_else(|| {
            self.cdn
                .then(|| parse(headers, &CDN_CACHE_CONTROL))
                .flatten()
        })
    }
}

/// The directives of the targeted field `name` in `headers`; `None` when it is absent,
/// empty or invalid. Several field lines are one dictionary, as RFC 8941 §4.2 combines
/// them.
pub(crate) fn parse(headers: &HeaderMap, name: &HeaderName) -> Option<ResponseDirectives> {
    let mut lines = headers.get_all(name).iter();
    let first = lines.next()?;
    let mut dictionary: Dictionary = Parser::new(first.as_bytes()).parse().ok()?;
    for line in lines {
        dictionary = Parser::new(line.as_bytes())
            .parse_dictionary_with_visitor(dictionary)
            .ok()?;
    }
    if dictionary.is_empty() {
        return None;
    }
    let mut directives = ResponseDirectives {
        targeted: true,
        ..ResponseDirectives::default()
    };
    for (key, member) in &dictionary {
        apply(&mut directives, key.as_str(), member)?;
    }
    Some(directives)
}

/// The directives of one targeted field value (as [`parse`] reads a field line); `None`
/// when it is empty or invalid.
pub(crate) fn parse_value(value: &http::HeaderValue) -> Option<ResponseDirectives> {
    let mut headers = HeaderMap::with_capacity(1);
    headers.insert(CDN_CACHE_CONTROL, value.clone());
    parse(&headers, &CDN_CACHE_CONTROL)
}

/// Applies one dictionary member; `None` when its value has the wrong type for a directive
/// this cache implements, which makes the field invalid. Unknown directives (extensions)
/// are ignored whatever their value, and so are parameters.
fn apply(directives: &mut ResponseDirectives, name: &str, member: &ListEntry) -> Option<()> {
    let value = match member {
        ListEntry::Item(item) => &item.bare_item,
        ListEntry::InnerList(_) if known(name) => return None,
        ListEntry::InnerList(_) => return Some(()),
    };
    match name {
        "max-age" => directives.max_age = Some(delta(value)?),
        "s-maxage" => directives.s_maxage = Some(delta(value)?),
        "stale-while-revalidate" => directives.stale_while_revalidate = Some(delta(value)?),
        "stale-if-error" => directives.stale_if_error = Some(delta(value)?),
        "no-store" => directives.no_store = flag(value)?,
        "public" => directives.public = flag(value)?,
        "must-revalidate" => directives.must_revalidate = flag(value)?,
        "proxy-revalidate" => directives.proxy_revalidate = flag(value)?,
        "must-understand" => directives.must_understand = flag(value)?,
        "no-cache" => qualified(value, &mut directives.no_cache, &mut directives.omit_fields)?,
        "private" => qualified(value, &mut directives.private, &mut directives.omit_fields)?,
        _ => {}
    }
    Some(())
}

/// Whether this cache implements the directive `name`.
fn known(name: &str) -> bool {
    matches!(
        name,
        "max-age"
            | "s-maxage"
            | "stale-while-revalidate"
            | "stale-if-error"
            | "no-store"
            | "public"
            | "must-revalidate"
            | "proxy-revalidate"
            | "must-understand"
            | "no-cache"
            | "private"
    )
}

/// A delta-seconds directive: a non-negative Integer, saturating at 2^31 (RFC 9111 §1.2.2).
fn delta(value: &BareItem) -> Option<u64> {
    let seconds = i64::from(value.as_integer()?);
    u64::try_from(seconds)
        .ok()
        .map(|seconds| seconds.min(MAX_DELTA))
}

/// A directive without an argument: a Boolean (`?0` turns it off).
fn flag(value: &BareItem) -> Option<bool> {
    value.as_boolean()
}

/// `no-cache` or `private`: a Boolean, or a String listing the fields a stored response
/// goes without (RFC 9213 §2.2).
fn qualified(
    value: &BareItem,
    unqualified: &mut bool,
    omit_fields: &mut Vec<HeaderName>,
) -> Option<()> {
    match value {
        BareItem::Boolean(on) => *unqualified = *on,
        BareItem::String(list) => omit_fields.extend(
            list.as_str()
                .split(',')
                .filter_map(|name| HeaderName::from_bytes(name.trim().as_bytes()).ok()),
        ),
        _ => return None,
    }
    Some(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_support::headers;

    fn cdn(values: &[&str]) -> Option<ResponseDirectives> {
        let pairs: Vec<(&str, &str)> = values
            .iter()
            .map(|value| ("cdn-cache-control", *value))
            .collect();
        parse(&headers(&pairs), &CDN_CACHE_CONTROL)
    }

    #[test]
    fn a_valid_field_gives_its_directives() {
        let parsed = cdn(&["max-age=3600"]).unwrap();
        assert_eq!(parsed.max_age, Some(3600));
        assert!(parsed.targeted);
        let parsed = cdn(&["foobar, max-age=60, s-maxage=30, must-revalidate"]).unwrap();
        assert_eq!((parsed.max_age, parsed.s_maxage), (Some(60), Some(30)));
        assert!(parsed.must_revalidate);
        let parsed = cdn(&["no-store", "private, no-cache"]).unwrap();
        assert!(parsed.no_store && parsed.private && parsed.no_cache);
        let parsed = cdn(&["stale-while-revalidate=5, stale-if-error=7, public"]).unwrap();
        assert_eq!(parsed.stale_while_revalidate, Some(5));
        assert_eq!(parsed.stale_if_error, Some(7));
        assert!(parsed.public);
    }

    #[test]
    fn huge_max_age_saturates_at_two_to_the_thirty_one() {
        for value in ["max-age=2147483648", "max-age=99999999999"] {
            assert_eq!(cdn(&[value]).unwrap().max_age, Some(MAX_DELTA), "{value}");
        }
    }

    #[test]
    fn qualified_no_cache_and_private_name_fields() {
        let parsed = cdn(&["no-cache=\"set-cookie, x-a\", private=\"x-b\""]).unwrap();
        assert!(!parsed.no_cache && !parsed.private);
        let names: Vec<&str> = parsed.omit_fields.iter().map(HeaderName::as_str).collect();
        assert_eq!(names, ["set-cookie", "x-a", "x-b"]);
        assert!(!cdn(&["no-store=?0, max-age=5"]).unwrap().no_store);
    }

    #[test]
    fn an_invalid_or_empty_field_is_ignored() {
        for value in [
            // Not a dictionary (cdn-cc-invalid-sh-type-unknown).
            "max-age=10000, &&&&&",
            // Wrong type for max-age (cdn-cc-invalid-sh-type-wrong), and others.
            "max-age=\"10000\"",
            "max-age=1.5",
            "max-age=-1",
            "max-age=a",
            "no-store=1",
            "private=1",
            "max-age=(1 2)",
            // Keys are lowercase in a structured field.
            "MaX-aGe=3600",
            // Space around `=` is not allowed.
            "max-age =100",
            "max-age= 100",
            "",
            " ",
        ] {
            assert_eq!(cdn(&[value]), None, "{value:?}");
        }
        // One bad line spoils the field.
        assert_eq!(cdn(&["max-age=60", "&"]), None);
    }

    #[test]
    fn unknown_directives_and_parameters_are_ignored() {
        let parsed = cdn(&["x=(1 2), y=\"z\", max-age=60;foo=bar"]).unwrap();
        assert_eq!(parsed.max_age, Some(60));
    }

    #[test]
    fn the_own_field_comes_first_and_cdn_cache_control_only_when_enabled() {
        let response = headers(&[
            ("towerkit-cache-control", "max-age=5"),
            ("cdn-cache-control", "max-age=50"),
            ("cache-control", "max-age=500"),
        ]);
        let mut targets = Targets::default();
        assert_eq!(targets.directives(&response).unwrap().max_age, Some(5));
        let cdn_only = headers(&[("cdn-cache-control", "max-age=50")]);
        assert_eq!(targets.directives(&cdn_only), None);
        targets.cdn = true;
        assert_eq!(targets.directives(&cdn_only).unwrap().max_age, Some(50));
        // An invalid own field falls through to the next on the list.
        let invalid_own = headers(&[
            ("towerkit-cache-control", "max-age=\"5\""),
            ("cdn-cache-control", "max-age=50"),
        ]);
        assert_eq!(targets.directives(&invalid_own).unwrap().max_age, Some(50));
        let renamed = Targets {
            own: HeaderName::from_static("edge-cache-control"),
            cdn: false,
        };
        assert_eq!(renamed.directives(&response), None);
    }
}
