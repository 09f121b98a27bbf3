//! The null-stripping transform against a `serde_json::Value` reference, on hand-picked and
//! random documents.

use proptest::prelude::*;
use serde_json::{Map, Value};
use towerkit_nulls::{StripOptions, strip_nulls};

/// The obvious, slow twin: parse, strip, serialize.
fn reference(input: &[u8], options: &Reference) -> Option<Vec<u8>> {
    let mut value: Value = serde_json::from_slice(input).ok()?;
    strip_value(&mut value, options, &mut Vec::new());
    serde_json::to_vec(&value).ok()
}

#[derive(Default, Clone)]
struct Reference {
    arrays: bool,
    empty: bool,
    keep: Vec<Vec<String>>,
}

fn kept(path: &[String], keep: &[Vec<String>]) -> bool {
    keep.iter().any(|pattern| {
        pattern.len() <= path.len() && pattern.iter().zip(path).all(|(p, s)| p == "*" || p == s)
    })
}

fn strip_value(value: &mut Value, options: &Reference, path: &mut Vec<String>) {
    if kept(path, &options.keep) {
        return;
    }
    match value {
        Value::Object(map) => {
            let old = std::mem::take(map);
            let mut new = Map::new();
            for (key, mut child) in old {
                path.push(key.clone());
                let keep_child = kept(path, &options.keep);
                if !keep_child {
                    strip_value(&mut child, options, path);
                }
                path.pop();
                let empty = match &child {
                    Value::Object(m) => m.is_empty(),
                    Value::Array(a) => a.is_empty(),
                    _ => false,
                };
                if !keep_child && (child.is_null() || (options.empty && empty)) {
                    continue;
                }
                new.insert(key, child);
            }
            *map = new;
        }
        Value::Array(items) => {
            let old = std::mem::take(items);
            for (index, mut child) in old.into_iter().enumerate() {
                path.push(index.to_string());
                let keep_child = kept(path, &options.keep);
                if !keep_child {
                    strip_value(&mut child, options, path);
                }
                path.pop();
                if !keep_child && options.arrays && child.is_null() {
                    continue;
                }
                items.push(child);
            }
        }
        _ => {}
    }
}

fn fast(input: &[u8], options: &StripOptions) -> Option<Vec<u8>> {
    let mut out = Vec::new();
    strip_nulls(input, &mut out, options).ok().map(|()| out)
}

fn check(input: &str, expected: &str) {
    check_with(input, expected, &StripOptions::new());
}

fn check_with(input: &str, expected: &str, options: &StripOptions) {
    let out = fast(input.as_bytes(), options).expect("well-formed input");
    assert_eq!(String::from_utf8_lossy(&out), expected, "input: {input}");
}

#[test]
fn strips_nested_nulls() {
    check(
        r#"{"a":null,"b":{"c":null,"d":1},"e":[{"f":null}]}"#,
        r#"{"b":{"d":1},"e":[{}]}"#,
    );
}

#[test]
fn strips_first_middle_and_last_members() {
    check(
        r#"{"a":null,"b":1,"c":null,"d":2,"e":null}"#,
        r#"{"b":1,"d":2}"#,
    );
    check(r#"{"a":null,"b":null}"#, r#"{}"#);
    check(r#"{"a":null}"#, r#"{}"#);
}

#[test]
fn keeps_nulls_in_arrays_by_default() {
    check(r#"[null,1,null]"#, r#"[null,1,null]"#);
}

#[test]
fn drops_nulls_in_arrays_when_asked() {
    let options = StripOptions::new().arrays(true);
    check_with(r#"[null,1,null,2,null]"#, r#"[1,2]"#, &options);
    check_with(r#"[null,null]"#, r#"[]"#, &options);
    check_with(r#"{"a":[null]}"#, r#"{"a":[]}"#, &options);
}

#[test]
fn drops_members_left_empty_when_asked() {
    let options = StripOptions::new().empty(true);
    check_with(
        r#"{"a":{"b":null},"c":[],"d":{"e":{"f":null}},"g":1}"#,
        r#"{"g":1}"#,
        &options,
    );
    check_with(r#"{"a":{"b":null}}"#, r#"{}"#, &options);
    check_with(r#"{"x":1,"a":{"b":null}}"#, r#"{"x":1}"#, &options);
}

#[test]
fn keeps_nulls_under_keep_paths() {
    let options = StripOptions::new()
        .keep(["/user/middle_name", "/items/*/note", "/meta"])
        .unwrap();
    check_with(
        r#"{"user":{"middle_name":null,"nick":null},"items":[{"note":null,"x":null}],"meta":{"a":null},"z":null}"#,
        r#"{"user":{"middle_name":null},"items":[{"note":null}],"meta":{"a":null}}"#,
        &options,
    );
}

#[test]
fn keep_paths_match_escaped_keys_and_indices() {
    let options = StripOptions::new().keep(["/a~1b", "/list/1"]).unwrap();
    check_with(
        r#"{"a/b":null,"list":[{"x":null},{"y":null}]}"#,
        r#"{"a/b":null,"list":[{},{"y":null}]}"#,
        &options,
    );
    let escaped = StripOptions::new().keep(["/name"]).unwrap();
    check_with(
        r#"{"n\u0061me":null,"other":null}"#,
        r#"{"n\u0061me":null}"#,
        &escaped,
    );
}

#[test]
fn rejects_bad_keep_paths() {
    assert!(StripOptions::new().keep(["no-slash"]).is_err());
    assert!(StripOptions::new().keep(["/bad~2escape"]).is_err());
    assert!(
        StripOptions::new()
            .keep((0..65).map(|n| format!("/{n}")))
            .is_err()
    );
}

#[test]
fn copies_numbers_strings_and_escapes_exactly() {
    check(
        r#"{"n":1E+5,"m":-0.0,"big":123456789012345678901234567890,"s":"caf\u00e9 \"q\" \\ \/","u":"ünï 😀","k\"ey":null}"#,
        r#"{"n":1E+5,"m":-0.0,"big":123456789012345678901234567890,"s":"caf\u00e9 \"q\" \\ \/","u":"ünï 😀"}"#,
    );
}

#[test]
fn keeps_whitespace_outside_removed_members() {
    check(
        "{\n  \"a\": null,\n  \"b\": [1, 2]\n}",
        "{\n  \n  \"b\": [1, 2]\n}",
    );
    check("{ \"a\" : 1 , \"b\" : null }", "{ \"a\" : 1  }");
}

#[test]
fn leaves_scalars_and_top_level_null_alone() {
    for doc in ["null", "1", "\"x\"", "true", "[]", "{}"] {
        check(doc, doc);
    }
}

#[test]
fn rejects_malformed_documents() {
    for doc in [
        r#"{"a":nul}"#,
        r#"{"a":null"#,
        r#"{"a":null,}"#,
        r#"[1,]"#,
        r#"{"a" null}"#,
        "",
        "{} x",
        "nullx",
    ] {
        assert_eq!(fast(doc.as_bytes(), &StripOptions::new()), None, "{doc:?}");
    }
}

#[test]
fn rejects_a_document_that_ends_after_a_colon_with_every_option() {
    // Found by the strip_nulls fuzz target: with `empty`, the value after the last colon
    // was read before checking that one exists.
    let all = StripOptions::new().arrays(true).empty(true);
    for doc in [r#"{"a":{"b":null},"c":"#, r#"{"a":"#, r#"{"a": "#] {
        assert_eq!(fast(doc.as_bytes(), &all), None, "{doc:?}");
    }
}

#[test]
fn rejects_nesting_beyond_the_scanner_limit() {
    let deep = "{\"a\":".repeat(200) + "null" + &"}".repeat(200);
    assert_eq!(fast(deep.as_bytes(), &StripOptions::new()), None);
}

fn json_value() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        3 => Just(Value::Null),
        1 => any::<bool>().prop_map(Value::from),
        1 => any::<i64>().prop_map(Value::from),
        // Floats whose text serde_json reads back to the same value, so the reference's
        // re-serialization is stable.
        1 => any::<f64>()
            .prop_filter("round-trips", |f| {
                f.is_finite() && serde_json::from_str::<f64>(&serde_json::to_string(f).unwrap()).ok() == Some(*f)
            })
            .prop_map(Value::from),
        2 => "[a-z\u{e9}\u{1F600}\"\\\\/\n\t ]{0,12}".prop_map(Value::from),
    ];
    leaf.prop_recursive(6, 96, 8, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..8).prop_map(Value::Array),
            prop::collection::vec(("[a-z\u{e9}\"]{1,6}", inner), 0..8)
                .prop_map(|members| Value::Object(members.into_iter().collect())),
        ]
    })
}

fn options() -> impl Strategy<Value = (bool, bool)> {
    (any::<bool>(), any::<bool>())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, failure_persistence: None, ..ProptestConfig::default() })]

    #[test]
    fn equals_the_value_reference_on_compact_documents(value in json_value(), (arrays, empty) in options()) {
        let input = serde_json::to_vec(&value).unwrap();
        let expected = reference(&input, &Reference { arrays, empty, keep: Vec::new() }).unwrap();
        let out = fast(&input, &StripOptions::new().arrays(arrays).empty(empty)).unwrap();
        prop_assert_eq!(String::from_utf8(out).unwrap(), String::from_utf8(expected).unwrap());
    }

    #[test]
    fn equals_the_value_reference_on_pretty_documents(value in json_value(), (arrays, empty) in options()) {
        let input = serde_json::to_vec_pretty(&value).unwrap();
        let expected = reference(&input, &Reference { arrays, empty, keep: Vec::new() }).unwrap();
        let out = fast(&input, &StripOptions::new().arrays(arrays).empty(empty)).unwrap();
        let reparsed: Value = serde_json::from_slice(&out).unwrap();
        prop_assert_eq!(serde_json::to_vec(&reparsed).unwrap(), expected);
    }

    #[test]
    fn equals_the_value_reference_with_keep_paths(value in json_value(), keys in prop::collection::vec("[a-z*]", 1..3)) {
        let input = serde_json::to_vec(&value).unwrap();
        let pointer = format!("/{}", keys.join("/"));
        let expected = reference(&input, &Reference { keep: vec![keys.clone()], ..Reference::default() }).unwrap();
        let out = fast(&input, &StripOptions::new().keep([pointer]).unwrap()).unwrap();
        prop_assert_eq!(String::from_utf8(out).unwrap(), String::from_utf8(expected).unwrap());
    }

    #[test]
    fn never_panics_on_arbitrary_bytes(bytes in prop::collection::vec(any::<u8>(), 0..256)) {
        let _ = fast(&bytes, &StripOptions::new().arrays(true).empty(true));
    }
}
