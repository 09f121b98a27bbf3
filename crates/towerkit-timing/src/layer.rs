//! [`TimingLayer`], its [`TimingLayerBuilder`], the [`Timing`] service and its
//! [`ResponseFuture`], and the checks every call gets (slow-call callback, N+1).

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll, ready};
use std::time::Duration;

use metrics::SharedString;
use pin_project_lite::pin_project;
use tower_layer::Layer;
use tower_service::Service;

use crate::collector::{self, RequestTimings};
use crate::error::ConfigError;
use crate::http::Http;
use crate::measure_traits::{CallInfo, Completed, Measure, MeasureCall};
use crate::metrics::N_PLUS_ONE_TOTAL;
use crate::on_slow::{DefaultOnSlow, OnSlow, SlowCall};
use crate::operation::Operation;
use crate::stopwatch::Stopwatch;
use crate::thresholds::Thresholds;

/// A [`Layer`] that times every call of the service it wraps: it records a histogram
/// through the `metrics` crate, reports slow calls to an [`OnSlow`] callback (by default a
/// WARN or ERROR `tracing` event), scopes a per-request collector that
/// [`QueryTimer`](crate::QueryTimer) writes each query into, and warns about N+1 query
/// patterns. See the [crate docs](crate).
///
/// `TimingLayer::new()` measures HTTP services with the defaults;
/// [`TimingLayer::operation`] measures any tower service under a name;
/// [`TimingLayer::builder`] changes the settings.
#[derive(Debug, Clone)]
pub struct TimingLayer<M = Http, C = DefaultOnSlow> {
    measure: M,
    config: Config,
    on_slow: C,
}

#[derive(Debug, Clone, Copy)]
struct Config {
    thresholds: Thresholds,
    n_plus_one: Option<u32>,
}

/// The default N+1 threshold: a request running one query summary more than this many
/// times is reported.
const DEFAULT_N_PLUS_ONE_THRESHOLD: u32 = 10;

impl Default for TimingLayer {
    fn default() -> Self {
        Self::new()
    }
}

impl TimingLayer {
    /// Times HTTP requests ([`Http`](crate::measure::Http)):
    /// `http_server_request_duration_seconds` by method, route template and status class;
    /// slow calls above 500 ms (WARN) and 1 s (ERROR); N+1 warnings above 10 runs of one
    /// query; no `Server-Timing` header.
    pub fn new() -> Self {
        Self {
            measure: Http::new(),
            config: Config {
                thresholds: Thresholds::DEFAULT,
                n_plus_one: Some(DEFAULT_N_PLUS_ONE_THRESHOLD),
            },
            on_slow: DefaultOnSlow,
        }
    }

    /// A builder starting from the defaults of [`TimingLayer::new`].
    pub fn builder() -> TimingLayerBuilder {
        TimingLayerBuilder::default()
    }
}

impl TimingLayer<Operation> {
    /// Times any tower service as the operation `name`
    /// ([`Operation`](crate::measure::Operation)): `towerkit_operation_duration_seconds` by
    /// operation and outcome (`ok` or `error`), with the same slow-call and N+1 defaults as
    /// [`TimingLayer::new`]. To change those, use
    /// `TimingLayer::builder().measure(Operation::new(name))`.
    pub fn operation(name: impl Into<SharedString>) -> Self {
        TimingLayer {
            measure: Operation::new(name),
            config: TimingLayer::new().config,
            on_slow: DefaultOnSlow,
        }
    }
}

/// Builds a [`TimingLayer`]: infallible setters, then [`build`](Self::build), which checks
/// them all.
///
/// ```
/// use std::time::Duration;
/// use towerkit_timing::{ConfigError, TimingLayer};
///
/// let layer = TimingLayer::builder()
///     .server_timing(true)
///     .slow(Duration::from_millis(200), Duration::from_millis(800))
///     .n_plus_one(Some(5))
///     .build()?;
/// # let _ = layer;
/// let inverted = TimingLayer::builder()
///     .slow(Duration::from_secs(2), Duration::from_secs(1))
///     .build();
/// assert!(matches!(inverted, Err(ConfigError::Slow { .. })));
/// # Ok::<(), ConfigError>(())
/// ```
#[derive(Debug, Clone)]
pub struct TimingLayerBuilder<M = Http, C = DefaultOnSlow> {
    measure: M,
    slow: (Duration, Duration),
    n_plus_one: Option<u32>,
    on_slow: C,
}

impl Default for TimingLayerBuilder {
    fn default() -> Self {
        Self {
            measure: Http::new(),
            slow: (Thresholds::DEFAULT.warn(), Thresholds::DEFAULT.error()),
            n_plus_one: Some(DEFAULT_N_PLUS_ONE_THRESHOLD),
            on_slow: DefaultOnSlow,
        }
    }
}

impl<C> TimingLayerBuilder<Http, C> {
    /// Adds a `Server-Timing` header (`total;dur=12.4, db;dur=8.1;desc="3 queries",
    /// cache;desc="hit"`) to every response. Default: off, since it tells clients how long
    /// the server spent on their request.
    #[must_use]
    pub fn server_timing(mut self, on: bool) -> Self {
        self.measure = self.measure.server_timing(on);
        self
    }
}

impl<M, C> TimingLayerBuilder<M, C> {
    /// Replaces what a call is measured as (see [`Measure`]). Default:
    /// [`Http`](crate::measure::Http).
    #[must_use]
    pub fn measure<M2>(self, measure: M2) -> TimingLayerBuilder<M2, C> {
        TimingLayerBuilder {
            measure,
            slow: self.slow,
            n_plus_one: self.n_plus_one,
            on_slow: self.on_slow,
        }
    }

    /// Calls longer than `warn` are slow (WARN), calls longer than `error` very slow
    /// (ERROR); [`build`](Self::build) fails when `error` is shorter than `warn`. Default:
    /// 500 ms and 1 s.
    #[must_use]
    pub fn slow(mut self, warn: Duration, error: Duration) -> Self {
        self.slow = (warn, error);
        self
    }

    /// Warn (once per query summary and request) when a request runs the same query
    /// summary more than `threshold` times, and count it in `towerkit_n_plus_one_total`.
    /// `None` turns the check off. Default: `Some(10)`.
    #[must_use]
    pub fn n_plus_one(mut self, threshold: Option<u32>) -> Self {
        self.n_plus_one = threshold;
        self
    }

    /// Replaces what happens to slow calls. Default: [`DefaultOnSlow`].
    #[must_use]
    pub fn on_slow<C2>(self, on_slow: C2) -> TimingLayerBuilder<M, C2> {
        TimingLayerBuilder {
            measure: self.measure,
            slow: self.slow,
            n_plus_one: self.n_plus_one,
            on_slow,
        }
    }

    /// The layer, once every setting is checked: fails with [`ConfigError::Slow`] when the
    /// `slow` error threshold is shorter than the warn threshold.
    pub fn build(self) -> Result<TimingLayer<M, C>, ConfigError> {
        let (warn, error) = self.slow;
        Ok(TimingLayer {
            measure: self.measure,
            config: Config {
                thresholds: Thresholds::new(warn, error)?,
                n_plus_one: self.n_plus_one,
            },
            on_slow: self.on_slow,
        })
    }
}

impl<S, M: Clone, C: Clone> Layer<S> for TimingLayer<M, C> {
    type Service = Timing<S, M, C>;

    fn layer(&self, inner: S) -> Self::Service {
        // The clock calibrates on first use; do it now rather than in the first request.
        Stopwatch::calibrate();
        Timing {
            inner,
            measure: self.measure.clone(),
            config: self.config,
            on_slow: self.on_slow.clone(),
        }
    }
}

/// The service produced by [`TimingLayer`].
#[derive(Debug, Clone)]
pub struct Timing<S, M = Http, C = DefaultOnSlow> {
    inner: S,
    measure: M,
    config: Config,
    on_slow: C,
}

impl<S> Timing<S> {
    /// The HTTP [`TimingLayer`] with its defaults, as `TimingLayer::new()`.
    pub fn layer() -> TimingLayer {
        TimingLayer::new()
    }
}

impl<S, M, C> Timing<S, M, C> {
    towerkit_http::inner_accessors!(S);
}

impl<S, M, C, Req> Service<Req> for Timing<S, M, C>
where
    S: Service<Req>,
    M: Measure<Req>,
    M::Call: MeasureCall<S::Response, S::Error>,
    C: OnSlow + Clone,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = ResponseFuture<S::Future, M::Call, C>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: Req) -> Self::Future {
        let start = Stopwatch::start();
        let call = self.measure.start(&request);
        let inner = {
            // Spans the inner service opens in `call` (a cache lookup) nest under the call's.
            let _entered = call.span().map(tracing::Span::enter);
            self.inner.call(request)
        };
        ResponseFuture {
            inner: collector::scope(inner),
            call: Some(call),
            start,
            config: self.config,
            on_slow: self.on_slow.clone(),
            on_cancel: cancelled::<M::Call, S::Response, S::Error, C>,
        }
    }
}

pin_project! {
    /// The response future of [`Timing`]: the inner future, run with the request's
    /// collector in scope.
    ///
    /// Dropped before the inner future completes (an outer timeout fired, the client went
    /// away), it records the call as cancelled: its elapsed time under the `cancelled`
    /// outcome, and the slow-call callback when it was slow.
    pub struct ResponseFuture<F, K, C> {
        #[pin]
        inner: collector::Scoped<F>,
        // `Some` until the call is recorded, on completion or on drop.
        call: Option<K>,
        start: Stopwatch,
        config: Config,
        on_slow: C,
        // Records a cancelled call. A function pointer chosen in `call`, where the
        // response and error types are known: `Drop` cannot name them, and this costs no
        // allocation and nothing on the completed path.
        on_cancel: OnCancel<K, C>,
    }

    impl<F, K, C> PinnedDrop for ResponseFuture<F, K, C> {
        fn drop(this: Pin<&mut Self>) {
            let this = this.project();
            let Some(call) = this.call.take() else {
                return;
            };
            let elapsed = this.start.elapsed();
            let timings = this.inner.take_timings();
            (this.on_cancel)(call, elapsed, &timings, this.config, this.on_slow);
        }
    }
}

/// What [`ResponseFuture`] calls when it is dropped before the inner future completed.
type OnCancel<K, C> = fn(K, Duration, &RequestTimings, &Config, &C);

/// Records a call cancelled after `elapsed` and runs the checks every call gets.
fn cancelled<K, Res, E, C>(
    call: K,
    elapsed: Duration,
    timings: &RequestTimings,
    config: &Config,
    on_slow: &C,
) where
    K: MeasureCall<Res, E>,
    C: OnSlow,
{
    let info = call.cancel(Completed { elapsed, timings });
    if let Some(info) = info {
        after_call(&info, elapsed, timings, config, on_slow, true);
    }
}

impl<F, K, C> fmt::Debug for ResponseFuture<F, K, C> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ResponseFuture")
            .field("start", &self.start)
            .finish_non_exhaustive()
    }
}

impl<F, Res, E, K, C> Future for ResponseFuture<F, K, C>
where
    F: Future<Output = Result<Res, E>>,
    K: MeasureCall<Res, E>,
    C: OnSlow,
{
    type Output = Result<Res, E>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let mut this = self.project();
        let polled = {
            let _entered = this
                .call
                .as_ref()
                .and_then(K::span)
                .map(tracing::Span::enter);
            this.inner.as_mut().poll(cx)
        };
        let mut result = ready!(polled);
        let elapsed = this.start.elapsed();
        let timings = this.inner.as_mut().take_timings();
        if let Some(call) = this.call.take() {
            // The slow-call and N+1 lines below belong to the call's span (its trace id).
            let span = call.span().cloned();
            let _entered = span.as_ref().map(tracing::Span::enter);
            let info = call.finish(
                &mut result,
                Completed {
                    elapsed,
                    timings: &timings,
                },
            );
            after_call(&info, elapsed, &timings, this.config, this.on_slow, false);
        }
        Poll::Ready(result)
    }
}

/// The checks every call gets, whatever it measures as: slow-call callback and N+1.
fn after_call(
    info: &CallInfo,
    elapsed: Duration,
    timings: &RequestTimings,
    config: &Config,
    on_slow: &impl OnSlow,
    cancelled: bool,
) {
    if let Some(severity) = config.thresholds.classify(elapsed) {
        on_slow.on_slow(&SlowCall {
            severity,
            threshold: config.thresholds.threshold(severity),
            elapsed,
            call: info,
            timings,
            cancelled,
        });
    }
    let Some(threshold) = config.n_plus_one else {
        return;
    };
    for (summary, count) in timings.query_counts() {
        if count <= threshold {
            continue;
        }
        let route = info.operation.as_ref();
        tracing::warn!(
            target: "towerkit_timing",
            route,
            method = info.method.unwrap_or(""),
            summary,
            count,
            threshold,
            "N+1 queries: `{summary}` ran {count} times in one call of {route}"
        );
        metrics::counter!(
            N_PLUS_ONE_TOTAL,
            "operation" => info.operation.clone(),
            "db_query_summary" => SharedString::from_owned(summary.to_owned()),
        )
        .increment(1);
    }
}

#[cfg(test)]
mod tests {
    use std::convert::Infallible;
    use std::sync::Arc;
    use std::sync::atomic::{AtomicUsize, Ordering};

    use axum::Router;
    use axum::body::Body;
    use axum::routing::get;
    use http::{Request, Response, StatusCode};
    use tower::{ServiceBuilder, ServiceExt, service_fn};

    use super::*;
    use crate::http::UNMATCHED_ROUTE;
    use crate::metrics::{
        HTTP_DURATION_BUCKETS, HTTP_SERVER_REQUEST_DURATION, N_PLUS_ONE_TOTAL, OPERATION_DURATION,
    };
    use crate::query::{QueryOutcome, QueryTimer};
    use crate::server_timing::SERVER_TIMING;
    use towerkit_test_support::{Logs, Metrics};

    fn get_request(path: &str) -> Request<Body> {
        Request::get(path).body(Body::empty()).unwrap()
    }

    /// Runs `queries` executions of `sql` through `timer`, as a `Db` would in a handler.
    fn run_queries(timer: &QueryTimer, sql: &str, queries: usize) {
        let label = timer.label(sql);
        for _ in 0..queries {
            timer.record(&label, Duration::from_millis(1), QueryOutcome::Rows(1), &());
        }
    }

    fn slow_service(
        delay: Duration,
    ) -> impl Service<Request<Body>, Response = Response<Body>, Error = Infallible, Future: Send> + Clone
    {
        service_fn(move |_request: Request<Body>| async move {
            tokio::time::sleep(delay).await;
            Ok::<_, Infallible>(Response::new(Body::empty()))
        })
    }

    /// The layer with slow-call thresholds of `warn_ms` and `error_ms`.
    fn slow_after(warn_ms: u64, error_ms: u64) -> TimingLayerBuilder {
        TimingLayer::builder().slow(
            Duration::from_millis(warn_ms),
            Duration::from_millis(error_ms),
        )
    }

    #[tokio::test]
    async fn http_histogram_is_labelled_by_route_template() {
        let metrics = Metrics::capture();
        let app = Router::new()
            .route(
                "/products/{id}",
                get(|| async { "ok" }).post(|| async { StatusCode::INTERNAL_SERVER_ERROR }),
            )
            .layer(TimingLayer::new());
        for _ in 0..2 {
            let response = app
                .clone()
                .oneshot(get_request("/products/7"))
                .await
                .unwrap();
            assert_eq!(response.status(), StatusCode::OK);
        }
        let post = Request::post("/products/7").body(Body::empty()).unwrap();
        assert_eq!(
            app.oneshot(post).await.unwrap().status(),
            StatusCode::INTERNAL_SERVER_ERROR
        );
        let series = |method, class| {
            metrics.histogram(
                HTTP_SERVER_REQUEST_DURATION,
                &[
                    ("http_request_method", method),
                    ("http_route", "/products/{id}"),
                    ("http_response_status_class", class),
                ],
            )
        };
        let gets = series("GET", "2xx");
        assert_eq!(gets.len(), 2, "each request is one sample of its series");
        assert!(gets.iter().all(|&seconds| seconds > 0.0));
        assert_eq!(series("POST", "5xx").len(), 1);
        assert!(series("GET", "5xx").is_empty());
    }

    #[tokio::test]
    async fn unmatched_paths_share_one_label_and_never_leak_the_raw_path() {
        let metrics = Metrics::capture();
        let app = Router::new()
            .route("/products/{id}", get(|| async { "ok" }))
            .layer(TimingLayer::new());
        for path in ["/secret-token-123", "/another/raw/path"] {
            let response = app.clone().oneshot(get_request(path)).await.unwrap();
            assert_eq!(response.status(), StatusCode::NOT_FOUND);
        }
        let samples = metrics.histogram(
            HTTP_SERVER_REQUEST_DURATION,
            &[
                ("http_route", UNMATCHED_ROUTE),
                ("http_response_status_class", "4xx"),
            ],
        );
        assert_eq!(samples.len(), 2);
        let labels: Vec<String> = metrics
            .all()
            .into_iter()
            .flat_map(|(_, l, _)| l.into_iter().map(|(_, v)| v))
            .collect();
        assert!(
            !labels
                .iter()
                .any(|v| v.contains("secret") || v.contains("raw")),
            "{labels:?}"
        );
    }

    #[tokio::test]
    async fn slow_calls_are_logged_at_warn() {
        let logs = Logs::capture();
        let service = slow_after(10, 3_600_000)
            .build()
            .unwrap()
            .layer(slow_service(Duration::from_millis(30)));
        service.oneshot(get_request("/slow")).await.unwrap();
        let lines = logs.lines_with("slow call");
        assert_eq!(lines.len(), 1, "{}", logs.text());
        assert!(
            lines[0].contains("WARN")
                && lines[0].contains("route=\"unmatched\"")
                && lines[0].contains("method=\"GET\"")
        );
        assert!(lines[0].contains("status=200"), "{}", lines[0]);
    }

    #[tokio::test]
    async fn very_slow_calls_are_logged_at_error() {
        let logs = Logs::capture();
        let service = slow_after(1, 10)
            .build()
            .unwrap()
            .layer(slow_service(Duration::from_millis(30)));
        service.oneshot(get_request("/slow")).await.unwrap();
        let lines = logs.lines_with("very slow call");
        assert_eq!(lines.len(), 1, "{}", logs.text());
        assert!(lines[0].contains("ERROR"), "{}", lines[0]);
    }

    #[tokio::test]
    async fn calls_under_the_threshold_are_not_logged() {
        let logs = Logs::capture();
        let service = slow_after(3_600_000, 3_600_000)
            .build()
            .unwrap()
            .layer(slow_service(Duration::ZERO));
        service.oneshot(get_request("/fast")).await.unwrap();
        assert!(logs.lines_with("slow call").is_empty(), "{}", logs.text());
    }

    #[tokio::test]
    async fn a_custom_on_slow_replaces_the_log() {
        let logs = Logs::capture();
        let seen = Arc::new(AtomicUsize::new(0));
        let counter = seen.clone();
        let service = slow_after(1, 3_600_000)
            .on_slow(move |call: &SlowCall<'_>| {
                assert_eq!(call.call.status, Some(200));
                assert!(call.elapsed >= Duration::from_millis(10));
                counter.fetch_add(1, Ordering::Relaxed);
            })
            .build()
            .unwrap()
            .layer(slow_service(Duration::from_millis(10)));
        service.oneshot(get_request("/slow")).await.unwrap();
        assert_eq!(seen.load(Ordering::Relaxed), 1);
        assert!(logs.lines_with("slow call").is_empty(), "{}", logs.text());
    }

    #[tokio::test]
    async fn unit_on_slow_ignores_slow_calls() {
        let logs = Logs::capture();
        let service = slow_after(1, 3_600_000)
            .on_slow(())
            .build()
            .unwrap()
            .layer(slow_service(Duration::from_millis(10)));
        service.oneshot(get_request("/slow")).await.unwrap();
        assert!(logs.lines_with("slow call").is_empty(), "{}", logs.text());
    }

    #[tokio::test]
    async fn a_failing_inner_service_is_the_error_class() {
        let metrics = Metrics::capture();
        let failing = service_fn(|_request: Request<Body>| async {
            Err::<Response<Body>, _>("connection reset")
        });
        let result = TimingLayer::new()
            .layer(failing)
            .oneshot(get_request("/"))
            .await;
        assert_eq!(result.unwrap_err(), "connection reset");
        let samples = metrics.histogram(
            HTTP_SERVER_REQUEST_DURATION,
            &[
                ("http_route", UNMATCHED_ROUTE),
                ("http_response_status_class", "error"),
            ],
        );
        assert_eq!(samples.len(), 1);
    }

    /// An inner service that never answers.
    fn hanging_service()
    -> impl Service<Request<Body>, Response = Response<Body>, Error = Infallible, Future: Send> + Clone
    {
        service_fn(|_request: Request<Body>| std::future::pending())
    }

    #[tokio::test]
    async fn a_request_cancelled_by_a_timeout_is_recorded_and_logged_as_slow() {
        let metrics = Metrics::capture();
        let logs = Logs::capture();
        let service = slow_after(10, 3_600_000)
            .build()
            .unwrap()
            .layer(hanging_service());
        let timed_out =
            tokio::time::timeout(Duration::from_millis(30), service.oneshot(get_request("/")))
                .await;
        assert!(timed_out.is_err(), "the inner service never answers");
        let samples = metrics.histogram(
            HTTP_SERVER_REQUEST_DURATION,
            &[
                ("http_route", UNMATCHED_ROUTE),
                ("http_response_status_class", "cancelled"),
            ],
        );
        assert_eq!(samples.len(), 1, "{:?}", metrics.all());
        assert!(samples[0] >= 0.030, "{samples:?}");
        let lines = logs.lines_with("slow call");
        assert_eq!(lines.len(), 1, "{}", logs.text());
        assert!(
            lines[0].contains("WARN") && lines[0].contains("cancelled=true"),
            "{}",
            lines[0]
        );
    }

    #[tokio::test]
    async fn a_quickly_dropped_request_is_recorded_but_not_logged() {
        let metrics = Metrics::capture();
        let logs = Logs::capture();
        let mut service = slow_after(3_600_000, 3_600_000)
            .build()
            .unwrap()
            .layer(hanging_service());
        {
            let mut future = std::pin::pin!(service.call(get_request("/")));
            let mut cx = Context::from_waker(std::task::Waker::noop());
            assert!(future.as_mut().poll(&mut cx).is_pending());
        }
        let samples = metrics.histogram(
            HTTP_SERVER_REQUEST_DURATION,
            &[("http_response_status_class", "cancelled")],
        );
        assert_eq!(samples.len(), 1, "{:?}", metrics.all());
        assert!(logs.lines_with("slow call").is_empty(), "{}", logs.text());
    }

    #[tokio::test]
    async fn a_completed_request_is_not_also_recorded_as_cancelled() {
        let metrics = Metrics::capture();
        let service = TimingLayer::new().layer(slow_service(Duration::ZERO));
        service.oneshot(get_request("/")).await.unwrap();
        assert_eq!(metrics.all().len(), 1, "{:?}", metrics.all());
        assert!(
            metrics
                .histogram(
                    HTTP_SERVER_REQUEST_DURATION,
                    &[("http_response_status_class", "cancelled")]
                )
                .is_empty()
        );
    }

    #[tokio::test]
    async fn a_cancelled_operation_has_the_cancelled_outcome() {
        let metrics = Metrics::capture();
        let service = ServiceBuilder::new()
            .layer(TimingLayer::operation("hangs"))
            .service(service_fn(|_: u32| {
                std::future::pending::<Result<u32, Infallible>>()
            }));
        let timed_out = tokio::time::timeout(Duration::from_millis(5), service.oneshot(1)).await;
        assert!(timed_out.is_err());
        let samples = metrics.histogram(
            OPERATION_DURATION,
            &[("operation", "hangs"), ("outcome", "cancelled")],
        );
        assert_eq!(samples.len(), 1, "{:?}", metrics.all());
    }

    #[tokio::test]
    async fn server_timing_reports_total_db_and_cache() {
        let timer = QueryTimer::new("postgresql");
        let app = Router::new()
            .route(
                "/products",
                get(move || async move {
                    run_queries(&timer, "SELECT * FROM products", 3);
                    ([("cache-status", "towerkit; hit")], "cached")
                }),
            )
            .layer(TimingLayer::builder().server_timing(true).build().unwrap());
        let response = app.oneshot(get_request("/products")).await.unwrap();
        let value = response.headers()[SERVER_TIMING].to_str().unwrap();
        assert!(value.starts_with("total;dur="), "{value}");
        assert!(
            value.ends_with(r#", db;dur=3.0;desc="3 queries", cache;desc="hit""#),
            "{value}"
        );
    }

    #[tokio::test]
    async fn server_timing_is_off_by_default() {
        let app = Router::new()
            .route("/", get(|| async { "ok" }))
            .layer(TimingLayer::new());
        let response = app.oneshot(get_request("/")).await.unwrap();
        assert!(response.headers().get(SERVER_TIMING).is_none());
    }

    #[tokio::test]
    async fn concurrent_requests_keep_their_own_collectors() {
        let timer = QueryTimer::new("postgresql");
        let app = Router::new()
            .route(
                "/n/{n}",
                get(
                    move |axum::extract::Path(n): axum::extract::Path<usize>| async move {
                        // Interleave with the other requests between queries.
                        for _ in 0..n {
                            run_queries(&timer, "SELECT * FROM items", 1);
                            tokio::task::yield_now().await;
                        }
                        "ok"
                    },
                ),
            )
            .layer(TimingLayer::builder().server_timing(true).build().unwrap());
        let calls = (1..=6).map(|n| {
            let app = app.clone();
            async move {
                let response = app.oneshot(get_request(&format!("/n/{n}"))).await.unwrap();
                (
                    n,
                    response.headers()[SERVER_TIMING]
                        .to_str()
                        .unwrap()
                        .to_owned(),
                )
            }
        });
        for (n, value) in futures_join_all(calls).await {
            let noun = if n == 1 { "query" } else { "queries" };
            assert!(
                value.contains(&format!("desc=\"{n} {noun}\"")),
                "request {n}: {value}"
            );
        }
    }

    /// Runs the futures concurrently as tasks; outputs in order.
    async fn futures_join_all<F>(futures: impl Iterator<Item = F>) -> Vec<F::Output>
    where
        F: Future + Send + 'static,
        F::Output: Send,
    {
        let handles: Vec<_> = futures.map(tokio::spawn).collect();
        let mut outputs = Vec::new();
        for handle in handles {
            outputs.push(handle.await.unwrap());
        }
        outputs
    }

    #[tokio::test]
    async fn n_plus_one_is_warned_once_per_summary_and_counted() {
        let logs = Logs::capture();
        let metrics = Metrics::capture();
        let timer = QueryTimer::new("postgresql");
        let app = Router::new()
            .route(
                "/orders/{id}",
                get(move || async move {
                    run_queries(&timer, "SELECT * FROM orders WHERE id = $1", 1);
                    run_queries(
                        &timer,
                        "SELECT * FROM order_lines WHERE order_id = $1 AND n = $2",
                        12,
                    );
                    run_queries(&timer, "SELECT * FROM products WHERE id = $1", 10);
                    "ok"
                }),
            )
            .layer(TimingLayer::new());
        app.oneshot(get_request("/orders/1")).await.unwrap();
        let lines = logs.lines_with("N+1");
        assert_eq!(lines.len(), 1, "{}", logs.text());
        assert!(lines[0].contains("WARN"));
        assert!(lines[0].contains("route=\"/orders/{id}\""), "{}", lines[0]);
        assert!(
            lines[0].contains("summary=\"SELECT order_lines\""),
            "{}",
            lines[0]
        );
        assert!(lines[0].contains("count=12"), "{}", lines[0]);
        let counted = metrics.counter(
            N_PLUS_ONE_TOTAL,
            &[
                ("operation", "/orders/{id}"),
                ("db_query_summary", "SELECT order_lines"),
            ],
        );
        assert_eq!(counted, 1);
        assert_eq!(
            metrics.counter(N_PLUS_ONE_TOTAL, &[("db_query_summary", "SELECT products")]),
            0
        );
    }

    #[tokio::test]
    async fn n_plus_one_threshold_is_configurable_and_can_be_off() {
        let logs = Logs::capture();
        let timer = QueryTimer::new("postgresql");
        let handler = move || {
            let timer = timer.clone();
            async move {
                run_queries(&timer, "SELECT * FROM lines", 4);
                "ok"
            }
        };
        let strict = Router::new()
            .route("/", get(handler.clone()))
            .layer(TimingLayer::builder().n_plus_one(Some(3)).build().unwrap());
        strict.oneshot(get_request("/")).await.unwrap();
        assert_eq!(logs.lines_with("N+1").len(), 1, "{}", logs.text());
        let off = Router::new()
            .route("/", get(handler))
            .layer(slow_after(1, 1).n_plus_one(None).build().unwrap());
        off.oneshot(get_request("/")).await.unwrap();
        assert_eq!(logs.lines_with("N+1").len(), 1, "{}", logs.text());
    }

    #[tokio::test]
    async fn operation_layer_times_any_service() {
        let metrics = Metrics::capture();
        let service = ServiceBuilder::new()
            .layer(TimingLayer::operation("price_lookup"))
            .service(service_fn(|sku: u32| async move {
                if sku == 0 {
                    Err("no such sku")
                } else {
                    Ok(sku * 100)
                }
            }));
        assert_eq!(service.clone().oneshot(7).await, Ok(700));
        assert_eq!(service.oneshot(0).await, Err("no such sku"));
        let ok = metrics.histogram(
            OPERATION_DURATION,
            &[("operation", "price_lookup"), ("outcome", "ok")],
        );
        let failed = metrics.histogram(
            OPERATION_DURATION,
            &[("operation", "price_lookup"), ("outcome", "error")],
        );
        assert_eq!((ok.len(), failed.len()), (1, 1), "{:?}", metrics.all());
    }

    #[tokio::test]
    async fn operation_layer_also_scopes_the_collector() {
        let logs = Logs::capture();
        let timer = QueryTimer::new("postgresql");
        let service = ServiceBuilder::new()
            .layer(TimingLayer::operation("import_job"))
            .service(service_fn(move |rows: usize| {
                let timer = timer.clone();
                async move {
                    run_queries(&timer, "INSERT INTO imports VALUES ($1)", rows);
                    Ok::<_, Infallible>(())
                }
            }));
        service.oneshot(11).await.unwrap();
        let lines = logs.lines_with("N+1");
        assert_eq!(lines.len(), 1, "{}", logs.text());
        assert!(
            lines[0].contains("route=\"import_job\"") && lines[0].contains("count=11"),
            "{}",
            lines[0]
        );
    }

    #[tokio::test]
    async fn prometheus_renders_opentelemetry_buckets() {
        use metrics_exporter_prometheus::{Matcher, PrometheusBuilder};
        let recorder = PrometheusBuilder::new()
            .set_buckets_for_metric(
                Matcher::Full(HTTP_SERVER_REQUEST_DURATION.into()),
                &HTTP_DURATION_BUCKETS,
            )
            .unwrap()
            .build_recorder();
        let handle = recorder.handle();
        let _guard = metrics::set_default_local_recorder(&recorder);
        crate::metrics::describe();
        let app = Router::new()
            .route("/", get(|| async { "ok" }))
            .layer(TimingLayer::new());
        app.oneshot(get_request("/")).await.unwrap();
        let text = handle.render();
        assert!(
            text.contains("# TYPE http_server_request_duration_seconds histogram"),
            "{text}"
        );
        for le in ["0.005", "0.075", "7.5", "10", "+Inf"] {
            let bucket = format!(
                "http_server_request_duration_seconds_bucket{{http_request_method=\"GET\",http_route=\"/\",http_response_status_class=\"2xx\",le=\"{le}\"}} 1"
            );
            assert!(text.contains(&bucket), "missing {bucket} in\n{text}");
        }
        assert!(
            text.contains(
                "# HELP http_server_request_duration_seconds Duration of HTTP server requests"
            ),
            "{text}"
        );
    }

    #[test]
    fn inverted_slow_thresholds_fail_the_build() {
        let result = slow_after(2_000, 1_000).build();
        let Err(error) = result else {
            panic!("an error threshold below the warn threshold must not build");
        };
        assert_eq!(
            error,
            ConfigError::Slow {
                warn: Duration::from_secs(2),
                error: Duration::from_secs(1),
            }
        );
        assert!(error.to_string().starts_with("invalid `slow`:"), "{error}");
        assert!(
            slow_after(10, 10).build().is_ok(),
            "equal thresholds are valid"
        );
    }

    #[test]
    fn the_builder_starts_from_the_defaults() {
        let built = TimingLayer::builder().build().unwrap();
        let new = TimingLayer::new();
        assert_eq!(built.config.thresholds, new.config.thresholds);
        assert_eq!(built.config.n_plus_one, Some(DEFAULT_N_PLUS_ONE_THRESHOLD));
        assert_eq!(new.config.n_plus_one, Some(DEFAULT_N_PLUS_ONE_THRESHOLD));
    }
}
