//! Helpers shared by the unit tests.

use std::time::Duration;

use bytes::Bytes;
use http::{HeaderMap, HeaderName, HeaderValue, StatusCode};

use crate::entry::{Entry, Exchange, Policy, prepare};

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
        send_tags: Box::default(),
        surrogate: None,
        targets: crate::targeted::Targets::default(),
        keep_stale: Duration::from_secs(600),
        grace: Duration::ZERO,
        default_ttl_statuses: crate::freshness::DEFAULT_TTL_STATUSES.into(),
        negative_ttl: None,
    }
}

/// An exchange at `at` for `request` on `path`, under `policy`, without a default TTL.
pub(crate) fn exchange<'a>(
    request: &'a HeaderMap,
    path: &'a str,
    at: u64,
    policy: &'a Policy,
) -> Exchange<'a> {
    Exchange {
        request,
        path,
        request_time: at,
        response_time: at,
        policy,
        default_ttl: None,
    }
}

/// The entry a `200` with `response` headers and `body`, answering `request` on `path` at
/// [`NOW`], is stored as.
pub(crate) fn entry(
    response: &[(&str, &str)],
    request: &[(&str, &str)],
    path: &str,
    body: &'static [u8],
) -> Entry {
    let policy = policy();
    let request = headers(request);
    prepare(
        StatusCode::OK,
        &headers(response),
        &exchange(&request, path, NOW, &policy),
    )
    .unwrap()
    .finish(Bytes::from_static(body))
}
