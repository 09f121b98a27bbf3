//! Logs and traces: the `tracing` subscriber [`init`] installs, and, when
//! `OTEL_EXPORTER_OTLP_ENDPOINT` is set, the export of every span (the request's, the
//! cache's, each query's, …) to an OpenTelemetry collector over OTLP/HTTP (protobuf).
//!
//! The towerkit libraries only open `tracing` spans with OpenTelemetry's attribute names;
//! this file is the one place that knows about OpenTelemetry: the exporter, the sampler,
//! the bounded export queue, the W3C `traceparent`/`tracestate` of incoming requests
//! ([`AcceptTraceContextLayer`]) and the `trace_id` in log lines ([`TraceIdFormat`]).
//!
//! Without `OTEL_EXPORTER_OTLP_ENDPOINT` nothing is exported and no OpenTelemetry layer is
//! installed: the subscriber takes log events only, so no span is built (a towerkit span
//! then costs a level check), and log lines carry neither a `trace_id` nor span prefixes.

use std::fmt;
use std::time::Duration;

use std::pin::Pin;
use std::task::Poll;

use axum::http::{HeaderMap, HeaderName};
use opentelemetry::context::{FutureExt as _, WithContext};
use opentelemetry::propagation::Extractor;
use opentelemetry::trace::{TraceContextExt, TracerProvider as _};
use opentelemetry_otlp::{WithExportConfig, WithHttpConfig};
use opentelemetry_sdk::Resource;
use opentelemetry_sdk::propagation::TraceContextPropagator;
use opentelemetry_sdk::trace::{
    BatchConfigBuilder, BatchSpanProcessor, Sampler, SdkTracerProvider,
};
use tracing::Subscriber;
use tracing_subscriber::filter::{FilterExt, filter_fn};
use tracing_subscriber::fmt::format::{Format, Full, Writer};
use tracing_subscriber::fmt::{FmtContext, FormatEvent, FormatFields};
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::registry::LookupSpan;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::{EnvFilter, Layer};

use crate::config::ConfigError;

/// The trace settings, from the environment (the variables OpenTelemetry's SDKs read,
/// checked here so that a typo fails the start instead of silently sampling nothing).
#[derive(Debug, Clone, PartialEq)]
pub struct TelemetryConfig {
    /// `OTEL_EXPORTER_OTLP_ENDPOINT`: the collector's base URL (`http://127.0.0.1:4318`);
    /// spans are posted to `{endpoint}/v1/traces` as OTLP/HTTP protobuf.
    /// `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT`, when set, is the full URL instead. Unset (or
    /// empty): nothing is exported. Plain `http://` only: run a collector beside the
    /// service.
    pub endpoint: Option<String>,
    /// `OTEL_SERVICE_NAME`: the `service.name` of every span. Default `example-service`.
    pub service_name: String,
    /// `OTEL_TRACES_SAMPLER` and `OTEL_TRACES_SAMPLER_ARG`: which traces are kept. Default
    /// `parentbased_traceidratio` with `1.0`: every trace a client did not ask to drop.
    pub sampler: SamplerConfig,
    /// `OTEL_BSP_MAX_QUEUE_SIZE`: how many finished spans wait for export at most; beyond,
    /// spans are dropped (and counted by the SDK), never buffered without bound. Default
    /// 2048.
    pub max_queue_size: usize,
    /// `OTEL_BSP_SCHEDULE_DELAY`: milliseconds between exports. Default 5000.
    pub schedule_delay: Duration,
    /// `TRACE_QUERY_TEXT`: `on` puts each query's SQL (with its `$n` placeholders, never
    /// the parameter values) in its span's `db.query.text`. Default `off`: the span names
    /// the query by its summary (`SELECT products`) only.
    pub query_text: bool,
}

/// `OTEL_TRACES_SAMPLER`: the sampler, with its ratio where it takes one.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum SamplerConfig {
    /// `always_on`.
    AlwaysOn,
    /// `always_off`.
    AlwaysOff,
    /// `traceidratio`: this fraction of traces, whatever the caller decided.
    Ratio(f64),
    /// `parentbased_always_on`.
    ParentBasedAlwaysOn,
    /// `parentbased_always_off`.
    ParentBasedAlwaysOff,
    /// `parentbased_traceidratio`: the caller's decision when a `traceparent` came with the
    /// request, else this fraction of new traces.
    ParentBasedRatio(f64),
}

impl TelemetryConfig {
    /// Reads the variables above through `lookup`.
    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Result<Self, ConfigError> {
        let set = |name: &str| lookup(name).filter(|value| !value.trim().is_empty());
        let endpoint = match (
            set("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT"),
            set("OTEL_EXPORTER_OTLP_ENDPOINT"),
        ) {
            (Some(full), _) => Some(check_endpoint("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", full)?),
            (None, Some(base)) => {
                let base = check_endpoint("OTEL_EXPORTER_OTLP_ENDPOINT", base)?;
                Some(format!("{}/v1/traces", base.trim_end_matches('/')))
            }
            (None, None) => None,
        };
        let ratio = match set("OTEL_TRACES_SAMPLER_ARG") {
            None => 1.0,
            Some(text) => match text.trim().parse::<f64>() {
                Ok(ratio) if (0.0..=1.0).contains(&ratio) => ratio,
                _ => {
                    return Err(ConfigError::new(format!(
                        "OTEL_TRACES_SAMPLER_ARG must be a ratio from 0 to 1, got {text:?}"
                    )));
                }
            },
        };
        let sampler = match set("OTEL_TRACES_SAMPLER").as_deref().map(str::trim) {
            None | Some("parentbased_traceidratio") => SamplerConfig::ParentBasedRatio(ratio),
            Some("parentbased_always_on") => SamplerConfig::ParentBasedAlwaysOn,
            Some("parentbased_always_off") => SamplerConfig::ParentBasedAlwaysOff,
            Some("traceidratio") => SamplerConfig::Ratio(ratio),
            Some("always_on") => SamplerConfig::AlwaysOn,
            Some("always_off") => SamplerConfig::AlwaysOff,
            Some(other) => {
                return Err(ConfigError::new(format!(
                    "OTEL_TRACES_SAMPLER must be always_on, always_off, traceidratio, \
                     parentbased_always_on, parentbased_always_off or \
                     parentbased_traceidratio, got {other:?}"
                )));
            }
        };
        let number = |name: &str, default: u64| -> Result<u64, ConfigError> {
            match set(name) {
                None => Ok(default),
                Some(text) => match text.trim().parse::<u64>() {
                    Ok(value) if value > 0 => Ok(value),
                    _ => Err(ConfigError::new(format!(
                        "{name} must be a positive whole number, got {text:?}"
                    ))),
                },
            }
        };
        let max_queue_size = usize::try_from(number("OTEL_BSP_MAX_QUEUE_SIZE", 2048)?)
            .map_err(|_| ConfigError::new("OTEL_BSP_MAX_QUEUE_SIZE is too large".to_owned()))?;
        let schedule_delay = Duration::from_millis(number("OTEL_BSP_SCHEDULE_DELAY", 5000)?);
        let query_text = match set("TRACE_QUERY_TEXT").as_deref().map(str::trim) {
            None | Some("off") => false,
            Some("on") => true,
            Some(other) => {
                return Err(ConfigError::new(format!(
                    "TRACE_QUERY_TEXT must be `on` or `off`, got {other:?}"
                )));
            }
        };
        Ok(TelemetryConfig {
            endpoint,
            service_name: set("OTEL_SERVICE_NAME").unwrap_or_else(|| "example-service".to_owned()),
            sampler,
            max_queue_size,
            schedule_delay,
            query_text,
        })
    }
}

/// An endpoint URL: `http://` (the exporter has no TLS client).
fn check_endpoint(name: &str, url: String) -> Result<String, ConfigError> {
    let url = url.trim().to_owned();
    match url.parse::<axum::http::Uri>() {
        Ok(uri) if uri.scheme_str() == Some("http") && uri.host().is_some() => Ok(url),
        _ => Err(ConfigError::new(format!(
            "{name} must be an http:// URL (a collector beside the service), got {url:?}"
        ))),
    }
}

/// What [`init`] set up: flushes the spans still queued when [`shutdown`](Self::shutdown)
/// is called (graceful shutdown), and when dropped.
#[derive(Debug)]
pub struct Telemetry {
    provider: Option<SdkTracerProvider>,
}

impl Telemetry {
    /// Whether spans are exported.
    pub fn exporting(&self) -> bool {
        self.provider.is_some()
    }

    /// Exports the spans still queued and stops the exporter; a no-op without one. Blocks
    /// until the export has been tried (bounded by the exporter's timeout): call it from a
    /// blocking thread or after the runtime's work is done.
    pub fn shutdown(mut self) {
        self.flush();
    }

    fn flush(&mut self) {
        if let Some(provider) = self.provider.take()
            && let Err(error) = provider.shutdown()
        {
            eprintln!("example-service: exporting the last spans failed: {error}");
        }
    }
}

impl Drop for Telemetry {
    fn drop(&mut self) {
        self.flush();
    }
}

/// A failure to set up the exporter.
#[derive(Debug)]
pub struct TelemetryError(String);

impl fmt::Display for TelemetryError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for TelemetryError {}

/// Installs the process's `tracing` subscriber: log lines (filtered by `RUST_LOG`, default
/// `info,tower_http=warn`) and, with an endpoint, the OpenTelemetry layer exporting spans
/// at INFO and above, except tower-http's own request span (the towerkit request span
/// carries the HTTP attributes). Also installs the W3C trace-context propagator that
/// [`AcceptTraceContextLayer`] reads `traceparent` with.
pub fn init(config: &TelemetryConfig) -> Result<Telemetry, TelemetryError> {
    let filter = || {
        EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info,tower_http=warn"))
    };
    let Some(endpoint) = &config.endpoint else {
        // Log lines only: with no exporter, the towerkit layers' INFO spans (a request's,
        // its cache lookup's, each query's) would be built, formatted and dropped on every
        // request for nothing but the span prefix of a log line. Each line carries its
        // own fields (route, method, elapsed, query summary) instead.
        tracing_subscriber::registry()
            .with(
                tracing_subscriber::fmt::layer()
                    .with_filter(filter().and(filter_fn(|metadata| !metadata.is_span()))),
            )
            .init();
        return Ok(Telemetry { provider: None });
    };
    opentelemetry::global::set_text_map_propagator(TraceContextPropagator::new());
    let provider = provider(config, endpoint)?;
    let tracer = provider.tracer("example-service");
    // Spans, not log events: the collector gets the spans of the towerkit layers and of
    // the service, whatever RUST_LOG says for the terminal.
    let spans = tracing_subscriber::filter::Targets::new()
        .with_default(tracing::Level::INFO)
        .with_target("tower_http", tracing::level_filters::LevelFilter::OFF);
    tracing_subscriber::registry()
        .with(
            tracing_subscriber::fmt::layer()
                .event_format(TraceIdFormat::default())
                .with_filter(filter()),
        )
        .with(
            tracing_opentelemetry::layer()
                .with_tracer(tracer)
                .with_filter(spans),
        )
        .init();
    Ok(Telemetry {
        provider: Some(provider),
    })
}

/// The tracer provider: batch export to `endpoint`, a bounded queue, the sampler and the
/// service's name.
fn provider(config: &TelemetryConfig, endpoint: &str) -> Result<SdkTracerProvider, TelemetryError> {
    let exporter = opentelemetry_otlp::SpanExporter::builder()
        .with_http()
        .with_protocol(opentelemetry_otlp::Protocol::HttpBinary)
        .with_endpoint(endpoint)
        .with_timeout(Duration::from_secs(5))
        .with_headers(Default::default())
        .build()
        .map_err(|e| TelemetryError(format!("OTEL_EXPORTER_OTLP_ENDPOINT: {e}")))?;
    let batch = BatchConfigBuilder::default()
        .with_max_queue_size(config.max_queue_size)
        .with_max_export_batch_size(config.max_queue_size.min(512))
        .with_scheduled_delay(config.schedule_delay)
        .build();
    let processor = BatchSpanProcessor::builder(exporter)
        .with_batch_config(batch)
        .build();
    Ok(SdkTracerProvider::builder()
        .with_span_processor(processor)
        .with_sampler(sampler(config.sampler))
        .with_resource(
            Resource::builder()
                .with_service_name(config.service_name.clone())
                .build(),
        )
        .build())
}

fn sampler(config: SamplerConfig) -> Sampler {
    let parent_based = |root: Sampler| Sampler::ParentBased(Box::new(root));
    match config {
        SamplerConfig::AlwaysOn => Sampler::AlwaysOn,
        SamplerConfig::AlwaysOff => Sampler::AlwaysOff,
        SamplerConfig::Ratio(ratio) => Sampler::TraceIdRatioBased(ratio),
        SamplerConfig::ParentBasedAlwaysOn => parent_based(Sampler::AlwaysOn),
        SamplerConfig::ParentBasedAlwaysOff => parent_based(Sampler::AlwaysOff),
        SamplerConfig::ParentBasedRatio(ratio) => parent_based(Sampler::TraceIdRatioBased(ratio)),
    }
}

/// Layer: continues the trace of the request's W3C `traceparent` (and `tracestate`), if it
/// has a valid one: the request's span (opened below, by `TimingLayer`) becomes a child of
/// the caller's span. Without a propagator installed ([`init`] without an endpoint) the
/// request passes untouched. A request without `traceparent` costs one header lookup: no
/// allocation, no lock, the inner future as it is.
#[derive(Clone, Copy, Debug, Default)]
pub struct AcceptTraceContextLayer;

impl<S> tower::Layer<S> for AcceptTraceContextLayer {
    type Service = AcceptTraceContext<S>;

    fn layer(&self, inner: S) -> Self::Service {
        AcceptTraceContext { inner }
    }
}

/// The service of [`AcceptTraceContextLayer`].
#[derive(Clone, Debug)]
pub struct AcceptTraceContext<S> {
    inner: S,
}

impl<S, B> tower::Service<axum::http::Request<B>> for AcceptTraceContext<S>
where
    S: tower::Service<axum::http::Request<B>>,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = TraceContextFuture<S::Future>;

    fn poll_ready(&mut self, cx: &mut std::task::Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: axum::http::Request<B>) -> Self::Future {
        if !request.headers().contains_key(TRACEPARENT) {
            return TraceContextFuture {
                kind: Kind::Plain {
                    future: self.inner.call(request),
                },
            };
        }
        let context = opentelemetry::global::get_text_map_propagator(|propagator| {
            propagator.extract(&Headers(request.headers()))
        });
        if !context.span().span_context().is_valid() {
            return TraceContextFuture {
                kind: Kind::Plain {
                    future: self.inner.call(request),
                },
            };
        }
        // Current while the inner service is called and while its future is polled: a
        // span opened in either (`TimingLayer` opens its own in `call`, behind the router's
        // boxed route, in the first poll) is the caller's child.
        let future = {
            let _current = context.clone().attach();
            self.inner.call(request)
        };
        TraceContextFuture {
            kind: Kind::Continued {
                future: future.with_context(context),
            },
        }
    }
}

pin_project_lite::pin_project! {
    /// The response future of [`AcceptTraceContext`]: the inner one, inside the caller's
    /// trace context when the request continued one.
    #[derive(Debug)]
    pub struct TraceContextFuture<F> {
        #[pin]
        kind: Kind<F>,
    }
}

pin_project_lite::pin_project! {
    #[project = KindProjection]
    #[derive(Debug)]
    enum Kind<F> {
        // No (valid) `traceparent`: the inner future untouched.
        Plain { #[pin] future: F },
        // The inner future, polled with the caller's context current.
        Continued { #[pin] future: WithContext<F> },
    }
}

impl<F: Future> Future for TraceContextFuture<F> {
    type Output = F::Output;

    fn poll(self: Pin<&mut Self>, cx: &mut std::task::Context<'_>) -> Poll<Self::Output> {
        match self.project().kind.project() {
            KindProjection::Plain { future } => future.poll(cx),
            KindProjection::Continued { future } => future.poll(cx),
        }
    }
}

/// The W3C trace-context header naming the caller's span.
const TRACEPARENT: HeaderName = HeaderName::from_static("traceparent");

/// The request's headers as OpenTelemetry's propagators read them.
struct Headers<'a>(&'a HeaderMap);

impl Extractor for Headers<'_> {
    fn get(&self, key: &str) -> Option<&str> {
        self.0.get(key).and_then(|value| value.to_str().ok())
    }

    fn keys(&self) -> Vec<&str> {
        self.0.keys().map(|name| name.as_str()).collect()
    }
}

/// The log line format: tracing-subscriber's default, preceded by `trace_id=…` when the
/// event happened inside a traced span (a request's, for instance), so that a log line
/// leads to its trace.
#[derive(Debug, Default)]
pub struct TraceIdFormat {
    inner: Format<Full>,
}

impl<S, N> FormatEvent<S, N> for TraceIdFormat
where
    S: Subscriber + for<'a> LookupSpan<'a>,
    N: for<'a> FormatFields<'a> + 'static,
{
    fn format_event(
        &self,
        ctx: &FmtContext<'_, S, N>,
        mut writer: Writer<'_>,
        event: &tracing::Event<'_>,
    ) -> fmt::Result {
        // The OpenTelemetry layer makes the context of the span entered current.
        let context = opentelemetry::Context::current();
        let span = context.span();
        let span_context = span.span_context();
        if span_context.is_valid() {
            write!(writer, "trace_id={} ", span_context.trace_id())?;
        }
        self.inner.format_event(ctx, writer, event)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(pairs: &[(&str, &str)]) -> Result<TelemetryConfig, ConfigError> {
        TelemetryConfig::from_lookup(|name| {
            pairs
                .iter()
                .find(|(key, _)| *key == name)
                .map(|(_, value)| (*value).to_owned())
        })
    }

    #[test]
    fn nothing_is_exported_without_an_endpoint() {
        let defaults = config(&[]).unwrap();
        assert_eq!(defaults.endpoint, None);
        assert_eq!(defaults.service_name, "example-service");
        assert_eq!(defaults.sampler, SamplerConfig::ParentBasedRatio(1.0));
        assert_eq!(defaults.max_queue_size, 2048);
        assert!(!defaults.query_text);
        assert_eq!(
            config(&[("OTEL_EXPORTER_OTLP_ENDPOINT", " ")])
                .unwrap()
                .endpoint,
            None
        );
    }

    #[test]
    fn the_endpoint_is_a_base_url_or_the_traces_url() {
        let base = config(&[("OTEL_EXPORTER_OTLP_ENDPOINT", "http://collector:4318/")]).unwrap();
        assert_eq!(
            base.endpoint.as_deref(),
            Some("http://collector:4318/v1/traces")
        );
        let full = config(&[
            ("OTEL_EXPORTER_OTLP_ENDPOINT", "http://collector:4318"),
            (
                "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT",
                "http://other:4318/traces",
            ),
        ])
        .unwrap();
        assert_eq!(full.endpoint.as_deref(), Some("http://other:4318/traces"));
        let tls = config(&[("OTEL_EXPORTER_OTLP_ENDPOINT", "https://collector:4318")]);
        assert!(tls.unwrap_err().to_string().contains("http://"));
    }

    #[test]
    fn samplers_and_bounds_are_checked() {
        let ratio = config(&[
            ("OTEL_TRACES_SAMPLER", "traceidratio"),
            ("OTEL_TRACES_SAMPLER_ARG", "0.25"),
        ])
        .unwrap();
        assert_eq!(ratio.sampler, SamplerConfig::Ratio(0.25));
        assert!(config(&[("OTEL_TRACES_SAMPLER", "sometimes")]).is_err());
        assert!(config(&[("OTEL_TRACES_SAMPLER_ARG", "1.5")]).is_err());
        assert!(config(&[("OTEL_BSP_MAX_QUEUE_SIZE", "0")]).is_err());
        assert!(config(&[("TRACE_QUERY_TEXT", "yes")]).is_err());
        let bounded = config(&[("OTEL_BSP_MAX_QUEUE_SIZE", "100")]).unwrap();
        assert_eq!(bounded.max_queue_size, 100);
    }
}
