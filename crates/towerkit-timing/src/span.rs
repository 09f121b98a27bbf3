//! The request span: a `tracing` span per HTTP request, named and attributed after
//! OpenTelemetry's HTTP server conventions, which `tracing-opentelemetry` (or any subscriber)
//! turns into a trace.
//!
//! Kept apart from the measuring so that both read on their own: [`Http`](crate::measure::Http)
//! opens the span in `start` and records the status in `finish`.
//!
//! Cheap when nobody listens: the span is created through `tracing`'s disabled fast path
//! (one atomic load and the callsite's cached interest), and nothing is formatted for a
//! disabled span: the name (`GET /products/{id}`) and the status are recorded only when a
//! subscriber keeps it.

use tracing::Span;
use tracing::field::Empty;

/// The `tracing` target of the request span.
pub(crate) const TARGET: &str = "towerkit_timing";

/// A span for one HTTP request: `http.request.method` now, `http.route` when a route
/// matched (an unmatched request has none, as the conventions ask: the raw path would be a
/// new span name per URL), `http.response.status_code` once it is known (see [`status`]).
/// `otel.name` is `{method} {route}`, or the method alone when no route matched.
pub(crate) fn http_request(method: &'static str, route: Option<&str>) -> Span {
    let span = tracing::info_span!(
        target: TARGET,
        "http.server.request",
        otel.name = Empty,
        otel.kind = "server",
        otel.status_code = Empty,
        http.request.method = method,
        http.route = Empty,
        http.response.status_code = Empty,
    );
    if span.is_disabled() {
        return span;
    }
    match route {
        Some(route) => {
            span.record("http.route", route);
            span.record("otel.name", format!("{method} {route}").as_str());
        }
        None => {
            span.record("otel.name", method);
        }
    }
    span
}

/// Records the response's status on the request span: `http.response.status_code`, and an
/// error status for 5xx (a 4xx is the client's mistake, not the server's, per the
/// conventions for server spans). `None` (the inner service failed) is an error.
pub(crate) fn status(span: &Span, status: Option<u16>) {
    if span.is_disabled() {
        return;
    }
    match status {
        Some(code) => {
            span.record("http.response.status_code", code);
            if code >= 500 {
                span.record("otel.status_code", "ERROR");
            }
        }
        None => {
            span.record("otel.status_code", "ERROR");
        }
    }
}

/// Marks the request span of a call dropped before it answered (an outer timeout, a client
/// gone) as an error.
pub(crate) fn cancelled(span: &Span) {
    if !span.is_disabled() {
        span.record("otel.status_code", "ERROR");
    }
}
