//! The properties towerkit's fuzz targets check, one function per target.
//!
//! Each function takes arbitrary bytes and panics when a property is violated. The
//! libFuzzer binaries in `fuzz/targets` (run with `cargo xtask fuzz`) call them, and
//! `tests/corpus.rs` runs them over the committed corpora in `fuzz/corpus/<target>/` as an
//! ordinary test, so every input that once found a bug stays a regression test.
//!
//! Every property includes "never panics". Where a slow obvious twin exists (parse into a
//! `serde_json::Value`, transform the tree, serialize), the fast code must agree with it.
//! Several targets read their input as lines, so a corpus file stays readable: the first
//! line is a parameter (an expression, a query, a header) and the rest a document.
//!
//! | target | what it drives | twin |
//! |---|---|---|
//! | `json_scan` | `towerkit_json::scan::validate` | serde_json accepts the same documents |
//! | `strip_nulls` | `towerkit_nulls::strip_nulls`, all options (`#arrays empty keep=/a/*` first line) | strip a `Value` |
//! | `fields_parser` | `Selection::parse` | an independent parser of the grammar |
//! | `project` | `towerkit_paginate::transform::project` (expression, then document) | project a `Value` |
//! | `paginate` | `Pagination::from_request` and `towerkit_paginate::transform::paginate` (query, then document) | slice a `Value` |
//! | `cursor` | keyset cursors: sealed by `Page::keyset`, decoded by `Pagination::from_request` | round trip; tampering rejected |
//! | `cache_control` | `CacheLayer` with a response `Cache-Control` and a request `Cache-Control` | RFC 9111 on well-formed headers |
//! | `vary` | `CacheLayer` with a response `Vary` and requests that differ in varied headers | each answer is its own request's |
//!
//! ```
//! // An expression, then a document: the projection equals the `Value` reference.
//! towerkit_fuzz::project(b"id,tags\n{\"id\":1,\"name\":\"mug\",\"tags\":[null]}");
//! // A query, then a document: the page equals slicing the parsed array.
//! towerkit_fuzz::paginate(b"page=2&limit=2\n[1,2,3,4,5]");
//! // A property that finds a bug panics; the corpus test and libFuzzer report it.
//! let fine = std::panic::catch_unwind(|| towerkit_fuzz::strip_nulls(b"#arrays\n[null,{\"a\":null}]"));
//! assert!(fine.is_ok());
//! ```

mod cache;
mod fields;
mod json;
mod pages;

pub use cache::{cache_control, vary};
pub use fields::{fields_parser, project};
pub use json::{json_scan, strip_nulls};
pub use pages::{cursor, paginate};

/// A property: panics when `data` shows a bug.
pub type Property = fn(&[u8]);

/// Every target by name, as the corpus directories and fuzz binaries are named.
pub const TARGETS: &[(&str, Property)] = &[
    ("json_scan", json_scan),
    ("strip_nulls", strip_nulls),
    ("fields_parser", fields_parser),
    ("project", project),
    ("paginate", paginate),
    ("cursor", cursor),
    ("cache_control", cache_control),
    ("vary", vary),
];

/// The first line of `data` (without its `\n`) and the rest.
fn split_line(data: &[u8]) -> (&[u8], &[u8]) {
    match data.iter().position(|&b| b == b'\n') {
        Some(end) => (&data[..end], &data[end + 1..]),
        None => (data, &[]),
    }
}
