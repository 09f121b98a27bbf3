//! Helpers shared by the unit tests.

use std::time::Duration;

use http::{HeaderMap, HeaderName, HeaderValue};

use crate::entry::Policy;

/// A fixed "now" for tests, in Unix milliseconds.
pub(crate) const NOW: u64 = 1_700_000_000_000;

/// A header map from `(name, value)` pairs, repeated names appended.
pub(crate) fn headers(pairs: &[(&str, &str)]) -> HeaderMap {
    let mut headers = HeaderMap::new();
    for (name, value) in pairs {
        headers.append(
            HeaderName::from_bytes(name.as_bytes()).unwrap(),
            HeaderValue::from_str(value).unwrap(),
        );
    }
    headers
}

/// The layer's default storage policy.
pub(crate) fn policy() -> Policy {
    Policy {
        heuristic: true,
        heuristic_max: Duration::from_secs(86_400),
        tag_header: HeaderName::from_static("cache-tag"),
        surrogate: None,
        keep_stale: Duration::from_secs(600),
        grace: Duration::ZERO,
    }
}
