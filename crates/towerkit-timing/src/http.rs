//! The HTTP [`Measure`]: labels from the request (method, route template), status class
//! from the response, and the optional `Server-Timing` header.

use std::cell::RefCell;
use std::hash::{Hash, Hasher};
use std::sync::{Arc, LazyLock};

use http::header::HeaderValue;
use http::{Method, Request, Response, StatusCode};
use metrics::SharedString;
use quick_cache::Equivalent;

use crate::measure_traits::{CallInfo, Completed, Measure, MeasureCall};
use crate::metrics::HTTP_SERVER_REQUEST_DURATION;
use crate::server_timing::{SERVER_TIMING, cache_status_desc, server_timing_value};
use towerkit_http::metric_cell::HistogramCell;

/// The `http_route` label of requests no route matched (`unmatched`): they all share it, so
/// the raw path never becomes a label.
pub(crate) const UNMATCHED_ROUTE: &str = "unmatched";

/// Measures HTTP calls: `http_server_request_duration_seconds` with labels
/// `http_request_method` (`GET`, …, or `_OTHER` for non-standard methods), `http_route`
/// (axum's `MatchedPath` template, or `unmatched`) and `http_response_status_class`
/// (`2xx`, …, `error` when the inner service fails, or `cancelled` when the request was
/// dropped before the inner service answered), and optionally a `Server-Timing`
/// response header.
///
/// The route template is read from the request's extensions, where axum's `Router` puts it
/// before calling a route: add the layer with `Router::layer` so it runs per route. A
/// `TimingLayer` wrapped around a whole `Router` from outside sees no template and labels
/// every request `unmatched`. Without the `axum` feature every request is unmatched.
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
        let method = method_label(request.method());
        let route = Route::of(request);
        let span = crate::span::http_request(method, route.matched());
        HttpCall {
            method,
            route,
            server_timing: self.server_timing,
            span,
        }
    }
}

/// The [`Measure::Call`] of [`Http`]: method and route of one request, and its span
/// (`http.server.request`, with OpenTelemetry's HTTP attributes; see the crate docs).
#[derive(Debug)]
pub struct HttpCall {
    method: &'static str,
    route: Route,
    server_timing: bool,
    span: tracing::Span,
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

    /// The template, when a route matched.
    fn matched(&self) -> Option<&str> {
        match self {
            #[cfg(feature = "axum")]
            Self::Matched(path) => Some(path.as_str()),
            Self::Unmatched => None,
        }
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
        crate::span::status(&self.span, status);
        let operation = Series::with(self.method, &self.route, class, |series| {
            series.histogram.record(completed.elapsed.as_secs_f64());
            series.route.clone()
        });
        if self.server_timing
            && let Ok(response) = result
        {
            let cache = cache_status_desc(response.headers());
            let value = server_timing_value(completed.elapsed, completed.timings, cache);
            // From the `String` itself: no copy into a new buffer.
            if let Ok(value) = HeaderValue::try_from(value) {
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

    fn span(&self) -> Option<&tracing::Span> {
        Some(&self.span)
    }

    fn cancel(self, completed: Completed<'_>) -> Option<CallInfo> {
        crate::span::cancelled(&self.span);
        // From a static, so that the label is always at the same address (see `Series::with`).
        static CANCELLED_CLASS: &str = CANCELLED;
        let operation = Series::with(self.method, &self.route, CANCELLED_CLASS, |series| {
            series.histogram.record(completed.elapsed.as_secs_f64());
            series.route.clone()
        });
        Some(CallInfo {
            operation,
            method: Some(self.method),
            status: None,
            failed: false,
        })
    }
}

/// The `http_response_status_class` label of a request cancelled before the inner service
/// answered (an outer timeout, a client disconnect).
pub(crate) const CANCELLED: &str = "cancelled";

/// The method label: the standard methods by name, anything else `_OTHER` (as
/// OpenTelemetry does), so a client cannot create label values.
pub(crate) fn method_label(method: &Method) -> &'static str {
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
pub(crate) fn status_class(status: StatusCode) -> &'static str {
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
            HTTP_SERVER_REQUEST_DURATION,
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

#[cfg(test)]
mod tests {
    use super::*;

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
