//! The JSON scanner and null-stripping, and the `serde_json` helpers every JSON twin uses.

use std::collections::HashSet;
use std::fmt;

use serde::de::{self, Deserialize, Deserializer, MapAccess, SeqAccess, Visitor};
use serde_json::Value;
use towerkit_nulls::StripOptions;

use crate::split_line;

/// The scanner accepts exactly the documents serde_json accepts (up to the same nesting),
/// except numbers beyond f64's range: valid JSON that serde_json refuses to parse into a
/// `Value` and the scanner, which never converts numbers, copies as written.
pub fn json_scan(data: &[u8]) {
    let ours = towerkit_json::scan::validate(data).is_ok();
    match parse(data) {
        Parsed::OutOfRange => {}
        Parsed::Malformed => assert!(
            !ours,
            "scanner accepts malformed {:?}",
            String::from_utf8_lossy(data)
        ),
        Parsed::Value(_) => assert!(
            ours,
            "scanner rejects well-formed {:?}",
            String::from_utf8_lossy(data)
        ),
    }
}

/// Null-stripping never panics; on a well-formed document its output is well-formed and
/// equals stripping the parsed value with the same options.
///
/// An input starting with `#` has options on its first line (`#arrays empty keep=/a/*/b`),
/// and the document after it; any other input is a document stripped with the defaults.
/// Keep paths are accepted exactly when they are RFC 6901 pointers (with `*`) and at most
/// [`towerkit_nulls::MAX_KEEP_PATHS`] of them.
pub fn strip_nulls(data: &[u8]) {
    let (options_line, document) = match data.strip_prefix(b"#") {
        Some(rest) => split_line(rest),
        None => (&[][..], data),
    };
    let options_line = String::from_utf8_lossy(options_line);
    let mut reference = StripReference::default();
    let mut keep = Vec::new();
    for word in options_line.split(' ') {
        match word {
            "arrays" => reference.arrays = true,
            "empty" => reference.empty = true,
            _ => {
                if let Some(path) = word.strip_prefix("keep=") {
                    keep.push(path);
                }
            }
        }
    }
    let parsed: Option<Vec<Vec<KeepSegment>>> =
        keep.iter().map(|path| parse_pointer(path)).collect();
    let options = StripOptions::new()
        .arrays(reference.arrays)
        .empty(reference.empty)
        .keep(&keep);
    let options = match (options, parsed) {
        (Ok(options), Some(paths)) if paths.len() <= towerkit_nulls::MAX_KEEP_PATHS => {
            reference.keep = paths;
            options
        }
        (Err(_), None) => return,
        (Err(_), Some(paths)) if paths.len() > towerkit_nulls::MAX_KEEP_PATHS => return,
        (options, parsed) => {
            panic!("keep paths {keep:?}: towerkit says {options:?}, RFC 6901 says {parsed:?}")
        }
    };

    let mut out = Vec::new();
    let result = towerkit_nulls::strip_nulls(document, &mut out, &options);
    let mut expected = match parse(document) {
        Parsed::OutOfRange => return,
        Parsed::Malformed => {
            assert!(
                result.is_err(),
                "accepted malformed input {:?}",
                String::from_utf8_lossy(document)
            );
            return;
        }
        Parsed::Value(value) => value,
    };
    assert!(
        result.is_ok(),
        "rejected well-formed input {:?}",
        String::from_utf8_lossy(document)
    );
    let got: Value = serde_json::from_slice(&out).expect("output is JSON");
    if has_duplicate_keys(document) {
        // A `Value` keeps one member per name, the transform all of them: no twin.
        return;
    }
    reference.strip(&mut expected, &mut Vec::new());
    assert_eq!(
        canonical(&got),
        canonical(&expected),
        "options {options_line:?}, input {:?}",
        String::from_utf8_lossy(document)
    );
}

/// What serde_json makes of a document.
pub(crate) enum Parsed {
    Value(Value),
    Malformed,
    /// Valid JSON with a number beyond f64's range, which `Value` cannot hold.
    OutOfRange,
}

pub(crate) fn parse(data: &[u8]) -> Parsed {
    match serde_json::from_slice::<Value>(data) {
        Ok(value) => Parsed::Value(value),
        Err(error) if error.to_string().starts_with("number out of range") => Parsed::OutOfRange,
        Err(_) => Parsed::Malformed,
    }
}

/// The serialized form, which keeps member order (`Value`'s equality ignores it).
pub(crate) fn canonical(value: &Value) -> String {
    serde_json::to_string(value).unwrap_or_default()
}

/// Whether any object in the (well-formed) document names a member twice.
pub(crate) fn has_duplicate_keys(data: &[u8]) -> bool {
    serde_json::from_slice::<NoDuplicates>(data).is_err()
}

/// Deserializes any JSON, failing on an object with a repeated member name.
struct NoDuplicates;

impl<'de> Deserialize<'de> for NoDuplicates {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_any(NoDuplicatesVisitor)
    }
}

struct NoDuplicatesVisitor;

impl<'de> Visitor<'de> for NoDuplicatesVisitor {
    type Value = NoDuplicates;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("any JSON value")
    }

    fn visit_bool<E>(self, _: bool) -> Result<NoDuplicates, E> {
        Ok(NoDuplicates)
    }

    fn visit_i64<E>(self, _: i64) -> Result<NoDuplicates, E> {
        Ok(NoDuplicates)
    }

    fn visit_u64<E>(self, _: u64) -> Result<NoDuplicates, E> {
        Ok(NoDuplicates)
    }

    fn visit_f64<E>(self, _: f64) -> Result<NoDuplicates, E> {
        Ok(NoDuplicates)
    }

    fn visit_str<E>(self, _: &str) -> Result<NoDuplicates, E> {
        Ok(NoDuplicates)
    }

    fn visit_unit<E>(self) -> Result<NoDuplicates, E> {
        Ok(NoDuplicates)
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<NoDuplicates, A::Error> {
        while seq.next_element::<NoDuplicates>()?.is_some() {}
        Ok(NoDuplicates)
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<NoDuplicates, A::Error> {
        let mut seen = HashSet::new();
        while let Some(key) = map.next_key::<String>()? {
            if !seen.insert(key) {
                return Err(de::Error::custom("duplicate member"));
            }
            map.next_value::<NoDuplicates>()?;
        }
        Ok(NoDuplicates)
    }
}

/// One segment of a keep path, as RFC 6901 reads it (plus `*`).
#[derive(Debug, Clone, PartialEq, Eq)]
enum KeepSegment {
    Key(String),
    Any,
}

/// RFC 6901: empty, or `/`-separated reference tokens where `~0` is `~` and `~1` is `/`.
fn parse_pointer(path: &str) -> Option<Vec<KeepSegment>> {
    if path.is_empty() {
        return Some(Vec::new());
    }
    let rest = path.strip_prefix('/')?;
    rest.split('/')
        .map(|token| {
            if token == "*" {
                return Some(KeepSegment::Any);
            }
            // Every `~` must start `~0` or `~1`.
            let tildes = token.matches('~').count();
            let escapes = token.matches("~0").count() + token.matches("~1").count();
            (tildes == escapes)
                .then(|| KeepSegment::Key(token.replace("~1", "/").replace("~0", "~")))
        })
        .collect()
}

/// Null-stripping on a `Value`, the slow obvious way.
#[derive(Default)]
struct StripReference {
    arrays: bool,
    empty: bool,
    keep: Vec<Vec<KeepSegment>>,
}

impl StripReference {
    /// Whether `path` (member names and decimal array indices) is at or below a keep path.
    fn kept(&self, path: &[String]) -> bool {
        self.keep.iter().any(|pattern| {
            pattern.len() <= path.len()
                && pattern
                    .iter()
                    .zip(path)
                    .all(|(segment, step)| match segment {
                        KeepSegment::Any => true,
                        KeepSegment::Key(key) => key == step,
                    })
        })
    }

    fn strip(&self, value: &mut Value, path: &mut Vec<String>) {
        if self.kept(path) {
            return;
        }
        match value {
            Value::Object(map) => {
                let old = std::mem::take(map);
                for (key, mut child) in old {
                    path.push(key.clone());
                    let keep_child = self.kept(path);
                    if !keep_child {
                        self.strip(&mut child, path);
                    }
                    path.pop();
                    let empty = match &child {
                        Value::Object(members) => members.is_empty(),
                        Value::Array(items) => items.is_empty(),
                        _ => false,
                    };
                    if !keep_child && (child.is_null() || (self.empty && empty)) {
                        continue;
                    }
                    map.insert(key, child);
                }
            }
            Value::Array(items) => {
                let old = std::mem::take(items);
                for (index, mut child) in old.into_iter().enumerate() {
                    path.push(index.to_string());
                    let keep_child = self.kept(path);
                    if !keep_child {
                        self.strip(&mut child, path);
                    }
                    path.pop();
                    if !keep_child && self.arrays && child.is_null() {
                        continue;
                    }
                    items.push(child);
                }
            }
            _ => {}
        }
    }
}
