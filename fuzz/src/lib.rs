//! The properties towerkit's fuzz targets check, one function per target.
//!
//! Each function takes arbitrary bytes and panics when a property is violated. The
//! libFuzzer binaries in `fuzz/targets` (run with `cargo xtask fuzz`) call them, and
//! `tests/corpus.rs` runs them over the committed corpora in `fuzz/corpus/<target>/` as an
//! ordinary test, so every input that once found a bug stays a regression test.

use serde_json::Value;

/// Every target by name, as the corpus directories and fuzz binaries are named.
pub const TARGETS: &[(&str, fn(&[u8]))] = &[("json_scan", json_scan), ("strip_nulls", strip_nulls)];

/// The scanner accepts exactly the documents serde_json accepts (up to the same nesting),
/// except numbers beyond f64's range: valid JSON that serde_json refuses to parse into a
/// `Value` and the scanner, which never converts numbers, copies as written.
pub fn json_scan(data: &[u8]) {
    let ours = towerkit_json::scan::validate(data).is_ok();
    let serde = serde_json::from_slice::<Value>(data);
    if serde.as_ref().is_err_and(out_of_range) {
        return;
    }
    assert_eq!(
        ours,
        serde.is_ok(),
        "scanner and serde_json disagree on {:?}",
        String::from_utf8_lossy(data)
    );
}

fn out_of_range(error: &serde_json::Error) -> bool {
    error.to_string().starts_with("number out of range")
}

/// Null-stripping never panics; on a well-formed document its output is well-formed, has no
/// null member left, and equals stripping the parsed value.
pub fn strip_nulls(data: &[u8]) {
    let options = towerkit_nulls::StripOptions::new();
    let mut out = Vec::new();
    let result = towerkit_nulls::strip_nulls(data, &mut out, &options);
    let mut expected = match serde_json::from_slice::<Value>(data) {
        Ok(value) => value,
        Err(error) if out_of_range(&error) => return,
        Err(_) => {
            assert!(
                result.is_err(),
                "accepted malformed input {:?}",
                String::from_utf8_lossy(data)
            );
            return;
        }
    };
    assert!(
        result.is_ok(),
        "rejected well-formed input {:?}",
        String::from_utf8_lossy(data)
    );
    let got: Value = serde_json::from_slice(&out).expect("output is JSON");
    strip(&mut expected);
    // Compare serialized forms: they keep member order, which `Value`'s equality ignores.
    assert_eq!(
        serde_json::to_string(&got).ok(),
        serde_json::to_string(&expected).ok()
    );
}

fn strip(value: &mut Value) {
    match value {
        Value::Object(map) => {
            map.retain(|_, v| !v.is_null());
            map.values_mut().for_each(strip);
        }
        Value::Array(items) => items.iter_mut().for_each(strip),
        _ => {}
    }
}
