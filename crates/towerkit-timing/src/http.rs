//! The HTTP [`Measure`]: labels from the request (method, route template), status class
//! from the response, and the optional `Server-Timing` header.

use std::cell::RefCell;
use std::fmt::Write as _;
use std::hash::{Hash, Hasher};
use std::sync::{Arc, LazyLock};
use std::time::Duration;

use http::header::{HeaderMap, HeaderName, HeaderValue};
use http::{Method, Request, Response, StatusCode};
use metrics::SharedString;
use quick_cache::Equivalent;

use crate::collector::RequestTimings;
use crate::handle::HistogramCell;
use crate::layer::{CallInfo, Completed, Measure, MeasureCall};

/// The `Server-Timing` header (W3C Server Timing).
pub const SERVER_TIMING: HeaderName = HeaderName::from_static("server-timing");

/// The `Cache-Status` header (RFC 9211).
pub const CACHE_STATUS: HeaderName = HeaderName::from_static("cache-status");

/// The `http_route` label of requests no route matched: they all share it, so the raw path
/// never becomes a label.
pub const UNMATCHED_ROUTE: &str = "unmatched";

/// Measures HTTP calls: `http_server_request_duration_seconds` with labels
/// `http_request_method` (`GET`, …, or `_OTHER` for non-standard methods), `http_route`
/// (axum's `MatchedPath` template, or [`UNMATCHED_ROUTE`]) and `http_response_status_class`
/// (`2xx`, …, or `error` when the inner service fails), and optionally a `Server-Timing`
/// response header.
///
/// The route template is read from the request's extensions, where axum's `Router` puts it
/// before calling a route: add the layer with `Router::layer` so it runs per route. A
/// `TimingLayer` wrapped around a whole `Router` from outside sees no template and labels
/// every request [`UNMATCHED_ROUTE`]. Without the `axum` feature every request is unmatched.
#[derive(Debug, Clone, Copy, Default)]
pub struct Http {
    server_timing: bool,
}

impl Http {
    /// Without `Server-Timing`.
    pub fn new() -> Self {
        Self::default()
    }

    /// With or without the `Server-Timing` response header.
    #[must_use]
    pub fn server_timing(mut self, on: bool) -> Self {
        self.server_timing = on;
        self
    }
}

impl<B> Measure<Request<B>> for Http {
    type Call = HttpCall;

    fn start(&self, request: &Request<B>) -> HttpCall {
        HttpCall {
            method: method_label(request.method()),
            route: Route::of(request),
            server_timing: self.server_timing,
        }
    }
}

/// The [`Measure::Call`] of [`Http`]: method and route of one request.
#[derive(Debug)]
pub struct HttpCall {
    method: &'static str,
    route: Route,
    server_timing: bool,
}

/// The route of a request: axum's template (an `Arc` clone, no copy) or unmatched.
#[derive(Debug, Clone)]
enum Route {
    #[cfg(feature = "axum")]
    Matched(axum::extract::MatchedPath),
    Unmatched,
}

impl Route {
    fn of<B>(request: &Request<B>) -> Self {
        #[cfg(feature = "axum")]
        if let Some(path) = request.extensions().get::<axum::extract::MatchedPath>() {
            return Self::Matched(path.clone());
        }
        let _ = request;
        Self::Unmatched
    }

    fn as_str(&self) -> &str {
        match self {
            #[cfg(feature = "axum")]
            Self::Matched(path) => path.as_str(),
            // From a static, so that it is always at the same address (each use of a
            // `const` may be a copy of its own).
            Self::Unmatched => {
                static UNMATCHED: &str = UNMATCHED_ROUTE;
                UNMATCHED
            }
        }
    }
}

impl<B, E> MeasureCall<Response<B>, E> for HttpCall {
    fn finish(self, result: &mut Result<Response<B>, E>, completed: Completed<'_>) -> CallInfo {
        let (status, class) = match result {
            Ok(response) => (
                Some(response.status().as_u16()),
                status_class(response.status()),
            ),
            Err(_) => (None, "error"),
        };
        let operation = Series::with(self.method, &self.route, class, |series| {
            series.histogram.record(completed.elapsed.as_secs_f64());
            series.route.clone()
        });
        if self.server_timing
            && let Ok(response) = result
        {
            let cache = cache_status_desc(response.headers());
            let value = server_timing_value(completed.elapsed, completed.timings, cache);
            if let Ok(value) = HeaderValue::from_str(&value) {
                response.headers_mut().append(SERVER_TIMING, value);
            }
        }
        CallInfo {
            operation,
            method: Some(self.method),
            status,
            failed: result.is_err(),
        }
    }
}

/// The method label: the standard methods by name, anything else `_OTHER` (as
/// OpenTelemetry does), so a client cannot create label values.
pub fn method_label(method: &Method) -> &'static str {
    match *method {
        Method::GET => "GET",
        Method::HEAD => "HEAD",
        Method::POST => "POST",
        Method::PUT => "PUT",
        Method::DELETE => "DELETE",
        Method::PATCH => "PATCH",
        Method::OPTIONS => "OPTIONS",
        Method::CONNECT => "CONNECT",
        Method::TRACE => "TRACE",
        _ => "_OTHER",
    }
}

/// The status class label: `1xx` to `5xx`, `_OTHER` beyond.
pub fn status_class(status: StatusCode) -> &'static str {
    match status.as_u16() / 100 {
        1 => "1xx",
        2 => "2xx",
        3 => "3xx",
        4 => "4xx",
        5 => "5xx",
        _ => "_OTHER",
    }
}

/// The metadata the `histogram!` macro would give the request histogram.
static METADATA: metrics::Metadata<'static> =
    metrics::Metadata::new(module_path!(), metrics::Level::INFO, Some(module_path!()));

/// How many (method, route, status class) series keep a prebuilt key.
const SERIES_CAPACITY: usize = 1024;

/// Prebuilt histograms by (method, route, status class): building and hashing a key with
/// three labels on every request costs more than the rest of the layer, and so does
/// registering it with the recorder (see [`HistogramCell`]). Shared by
/// every layer in the process (equal labels make equal keys) and bounded; a series evicted
/// is rebuilt on its next request.
static SERIES: LazyLock<quick_cache::sync::Cache<SeriesId, Arc<Series>>> =
    LazyLock::new(|| quick_cache::sync::Cache::new(SERIES_CAPACITY));

/// One series of the request histogram.
struct Series {
    histogram: HistogramCell,
    /// The route label, shared with every call's [`CallInfo`].
    route: SharedString,
}

/// How many series each thread keeps at hand (direct-mapped by label addresses).
const RECENT_SLOTS: usize = 8;

thread_local! {
    /// The series this thread used last, so that a request usually finds its series
    /// without hashing the route and locking a shard of [`SERIES`].
    static RECENT: RefCell<[Option<Recent>; RECENT_SLOTS]> =
        const { RefCell::new([const { None }; RECENT_SLOTS]) };
}

struct Recent {
    method: &'static str,
    class: &'static str,
    /// The route looked up, kept so that its text stays at its address: a request whose
    /// route text is at the same address is the same route.
    route: Route,
    series: Arc<Series>,
}

impl Series {
    /// Runs `f` with the series of (method, route, class).
    fn with<R>(
        method: &'static str,
        route: &Route,
        class: &'static str,
        f: impl FnOnce(&Series) -> R,
    ) -> R {
        // The slot is chosen by addresses: a route template is one allocation for the
        // router's life (and the slot keeps it alive), method and class are static.
        let text = route.as_str();
        let mixed = (text.as_ptr() as usize)
            ^ (method.as_ptr() as usize).rotate_left(17)
            ^ (class.as_ptr() as usize).rotate_left(31);
        let slot = crate::slot::by_address(mixed, RECENT_SLOTS);
        RECENT.with(|recent| {
            let Ok(mut recent) = recent.try_borrow_mut() else {
                return f(&Series::of(method, text, class));
            };
            if let Some(hit) = &recent[slot]
                && same(hit.route.as_str(), text)
                && same(hit.method, method)
                && same(hit.class, class)
            {
                return f(&hit.series);
            }
            let series = Series::of(method, text, class);
            let output = f(&series);
            recent[slot] = Some(Recent {
                method,
                class,
                route: route.clone(),
                series,
            });
            output
        })
    }

    fn of(method: &'static str, route: &str, class: &'static str) -> Arc<Series> {
        let id = SeriesIdRef {
            method,
            class,
            route,
        };
        if let Some(series) = SERIES.get(&id) {
            return series;
        }
        let route_label = if route == UNMATCHED_ROUTE {
            SharedString::const_str(UNMATCHED_ROUTE)
        } else {
            SharedString::from_shared(Arc::from(route))
        };
        let key = metrics::Key::from_parts(
            crate::HTTP_SERVER_REQUEST_DURATION,
            vec![
                metrics::Label::new("http_request_method", method),
                metrics::Label::new("http_route", route_label.clone()),
                metrics::Label::new("http_response_status_class", class),
            ],
        );
        let series = Arc::new(Series {
            histogram: HistogramCell::new(key, &METADATA),
            route: route_label,
        });
        SERIES.insert(
            SeriesId {
                method,
                class,
                route: route.into(),
            },
            series.clone(),
        );
        series
    }
}

/// Whether two labels are equal: at the same address (the usual case, see [`Series::with`]),
/// or by their text.
fn same(a: &str, b: &str) -> bool {
    std::ptr::eq(a, b) || a == b
}

#[derive(PartialEq, Eq)]
struct SeriesId {
    method: &'static str,
    class: &'static str,
    route: Box<str>,
}

impl Hash for SeriesId {
    fn hash<H: Hasher>(&self, state: &mut H) {
        SeriesIdRef {
            method: self.method,
            class: self.class,
            route: &self.route,
        }
        .hash(state);
    }
}

/// A borrowed [`SeriesId`], so a lookup allocates nothing.
#[derive(Hash)]
struct SeriesIdRef<'a> {
    method: &'static str,
    class: &'static str,
    route: &'a str,
}

impl Equivalent<SeriesId> for SeriesIdRef<'_> {
    fn equivalent(&self, id: &SeriesId) -> bool {
        self.method == id.method && self.class == id.class && self.route == &*id.route
    }
}

/// The `Server-Timing` value for a call: `total`, then `db` when queries ran, then `cache`
/// when the response carries a `Cache-Status`. Durations in milliseconds.
///
/// ```
/// use std::time::Duration;
/// use towerkit_timing::{RequestTimings, server_timing_value};
///
/// let value = server_timing_value(Duration::from_micros(12_400), &RequestTimings::default(), Some("hit"));
/// assert_eq!(value, r#"total;dur=12.4, cache;desc="hit""#);
/// ```
pub fn server_timing_value(
    total: Duration,
    timings: &RequestTimings,
    cache: Option<&str>,
) -> String {
    let mut value = String::with_capacity(64);
    let _ = write!(value, "total;dur={:.1}", crate::on_slow::millis(total));
    let queries = timings.queries();
    if queries > 0 {
        let noun = if queries == 1 { "query" } else { "queries" };
        let _ = write!(
            value,
            ", db;dur={:.1};desc=\"{queries} {noun}\"",
            crate::on_slow::millis(timings.db_time())
        );
    }
    if let Some(cache) = cache {
        let _ = write!(value, ", cache;desc=\"{cache}\"");
    }
    value
}

/// What the nearest cache did, from the last member of the response's `Cache-Status`
/// (RFC 9211): `hit`; `stale` (a hit with a negative `ttl`, or `fwd=stale`); `bypass`
/// (`fwd=bypass`, `fwd=method` or `fwd=request`); `miss` (any other `fwd`). `None` without
/// the header or when the member says neither.
///
/// ```
/// use http::HeaderMap;
/// use towerkit_timing::cache_status_desc;
///
/// let mut headers = HeaderMap::new();
/// headers.insert("cache-status", "towerkit; fwd=miss; stored".parse().unwrap());
/// assert_eq!(cache_status_desc(&headers), Some("miss"));
/// ```
pub fn cache_status_desc(headers: &HeaderMap) -> Option<&'static str> {
    let line = headers
        .get_all(CACHE_STATUS)
        .iter()
        .next_back()?
        .to_str()
        .ok()?;
    let member = last_member(line).trim();
    let mut hit = false;
    let mut stale = false;
    let mut fwd = None;
    // The first item is the cache's name; parameters follow.
    for param in member.split(';').skip(1).map(str::trim) {
        match param.split_once('=') {
            None if param == "hit" => hit = true,
            Some(("hit", value)) => hit = value.trim() == "?1",
            Some(("ttl", value)) => stale = value.trim().starts_with('-'),
            Some(("fwd", value)) => fwd = Some(value.trim()),
            _ => {}
        }
    }
    if hit {
        return Some(if stale { "stale" } else { "hit" });
    }
    Some(match fwd? {
        "stale" => "stale",
        "bypass" | "method" | "request" => "bypass",
        _ => "miss",
    })
}

/// The last top-level member of a structured-field list (commas inside quoted strings do
/// not split).
fn last_member(line: &str) -> &str {
    let mut start = 0;
    let mut quoted = false;
    let mut escaped = false;
    for (i, c) in line.char_indices() {
        match c {
            _ if escaped => escaped = false,
            '\\' if quoted => escaped = true,
            '"' => quoted = !quoted,
            ',' if !quoted => start = i + 1,
            _ => {}
        }
    }
    &line[start..]
}

#[cfg(test)]
mod tests {
    use super::*;

    fn desc(values: &[&str]) -> Option<&'static str> {
        let mut headers = HeaderMap::new();
        for value in values {
            headers.append(CACHE_STATUS, HeaderValue::from_str(value).unwrap());
        }
        cache_status_desc(&headers)
    }

    #[test]
    fn cache_status_maps_to_hit_miss_stale() {
        assert_eq!(desc(&["towerkit; hit"]), Some("hit"));
        assert_eq!(desc(&["towerkit; hit; ttl=30"]), Some("hit"));
        assert_eq!(desc(&["towerkit; hit; ttl=-5"]), Some("stale"));
        assert_eq!(desc(&["towerkit; fwd=miss; stored"]), Some("miss"));
        assert_eq!(desc(&["towerkit; fwd=uri-miss"]), Some("miss"));
        assert_eq!(
            desc(&["towerkit; fwd=stale; fwd-status=304"]),
            Some("stale")
        );
        assert_eq!(desc(&["towerkit; fwd=bypass"]), Some("bypass"));
        assert_eq!(desc(&["towerkit; hit=?1"]), Some("hit"));
    }

    #[test]
    fn cache_status_uses_the_cache_nearest_the_client() {
        assert_eq!(
            desc(&["origin-cache; fwd=miss, towerkit; hit"]),
            Some("hit")
        );
        assert_eq!(
            desc(&["origin-cache; hit", "towerkit; fwd=miss"]),
            Some("miss")
        );
        assert_eq!(desc(&["towerkit; hit; detail=\"a, b\""]), Some("hit"));
    }

    #[test]
    fn cache_status_without_a_verdict_is_ignored() {
        assert_eq!(desc(&[]), None);
        assert_eq!(desc(&["towerkit"]), None);
        assert_eq!(desc(&["towerkit; detail=x"]), None);
    }

    #[test]
    fn server_timing_lists_total_db_and_cache() {
        let mut timings = RequestTimings::default();
        assert_eq!(
            server_timing_value(Duration::from_micros(1_240), &timings, None),
            "total;dur=1.2"
        );
        timings = crate::collector::tests_support::timings(
            &[("SELECT a", 2), ("SELECT b", 1)],
            Duration::from_micros(8_100),
        );
        assert_eq!(
            server_timing_value(Duration::from_micros(12_400), &timings, Some("miss")),
            r#"total;dur=12.4, db;dur=8.1;desc="3 queries", cache;desc="miss""#
        );
        timings = crate::collector::tests_support::timings(
            &[("SELECT a", 1)],
            Duration::from_micros(500),
        );
        assert_eq!(
            server_timing_value(Duration::from_millis(1), &timings, None),
            r#"total;dur=1.0, db;dur=0.5;desc="1 query""#
        );
    }

    #[test]
    fn non_standard_methods_share_one_label() {
        assert_eq!(method_label(&Method::GET), "GET");
        assert_eq!(
            method_label(&Method::from_bytes(b"PURGE").unwrap()),
            "_OTHER"
        );
    }

    #[test]
    fn status_classes() {
        assert_eq!(status_class(StatusCode::OK), "2xx");
        assert_eq!(status_class(StatusCode::NOT_FOUND), "4xx");
        assert_eq!(status_class(StatusCode::from_u16(599).unwrap()), "5xx");
        assert_eq!(status_class(StatusCode::from_u16(600).unwrap()), "_OTHER");
    }
}
