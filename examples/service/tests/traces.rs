//! Traces end to end: the service binary, configured to export to an OTLP/HTTP receiver
//! this test runs (decoding the protobuf with `opentelemetry-proto`), answers one uncached
//! request (continuing the caller's `traceparent`) and one cached request; the spans it
//! exports on graceful shutdown must form the tree the docs describe.

mod support;

use std::collections::HashMap;
use std::net::SocketAddr;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{Request, StatusCode, header};
use axum::routing::post;
use http_body_util::{BodyExt, Empty};
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::common::v1::KeyValue;
use opentelemetry_proto::tonic::common::v1::any_value::Value as AnyValue;
use opentelemetry_proto::tonic::trace::v1::span::SpanKind;
use prost::Message;
use support::TestApp;

/// The caller's trace: the uncached request carries `traceparent` with these ids.
const TRACE_ID: &str = "4bf92f3577b34da6a3ce929d0e0e4736";
const PARENT_SPAN_ID: &str = "00f067aa0ba902b7";

/// How long the receiver is polled for the spans (they come with the shutdown's flush).
const RECEIVE_TIMEOUT: Duration = Duration::from_secs(20);

#[tokio::test]
async fn exported_spans_form_the_request_tree() {
    // A tiered cache, so that Redis operations are traced too.
    let prefix = format!("{}:", support::unique("traces"));
    let run = Run::start(&[
        ("REDIS_URL", &support::redis_url()),
        ("CACHE_REDIS_PREFIX", &prefix),
    ])
    .await;
    let spans = run.spans;

    // The uncached request: a child of the caller's span, in the caller's trace.
    let uncached = only(&spans, |s| {
        s.name == "GET /api/products" && s.trace_id == TRACE_ID
    });
    assert_eq!(uncached.parent, PARENT_SPAN_ID);
    assert_eq!(uncached.kind, SpanKind::Server as i32);
    assert_eq!(uncached.text("http.request.method"), "GET");
    assert_eq!(uncached.text("http.route"), "/api/products");
    assert_eq!(uncached.int("http.response.status_code"), 200);

    // Its cache decision, a miss, directly under it, with the key hashed.
    let lookup = only(&spans, |s| {
        s.name == "cache.lookup" && s.parent == uncached.id
    });
    assert_eq!(lookup.text("cache.result"), "miss");
    assert!(!lookup.text("cache.tier").is_empty(), "{lookup:#?}");
    let hash = lookup.text("cache.key.hash");
    assert!(
        hash.len() == 16 && hash.chars().all(|c| c.is_ascii_hexdigit()),
        "{hash}"
    );

    // Its queries, nested below it (under the cache's origin call), without their text.
    let queries: Vec<&Exported> = spans
        .iter()
        .filter(|s| s.trace_id == TRACE_ID && s.text("db.system.name") == "postgresql")
        .collect();
    assert!(!queries.is_empty(), "no query span: {spans:#?}");
    for query in &queries {
        assert!(
            descends(&spans, query, &uncached.id),
            "{query:#?} is outside the request"
        );
        assert_eq!(query.kind, SpanKind::Client as i32);
        assert_eq!(query.text("db.operation.name"), "SELECT");
        assert!(!query.text("db.query.summary").is_empty());
        assert!(
            !query.attributes.contains_key("db.query.text"),
            "{query:#?}"
        );
    }
    assert!(
        queries
            .iter()
            .any(|q| q.text("db.collection.name") == "products")
    );

    // The Redis operations of the miss (the lookup in the shared tier, the store), under
    // the request, without the Redis key.
    let redis: Vec<&Exported> = spans
        .iter()
        .filter(|s| s.trace_id == TRACE_ID && s.text("db.system.name") == "redis")
        .collect();
    assert!(!redis.is_empty(), "no Redis span: {spans:#?}");
    for operation in &redis {
        assert!(descends(&spans, operation, &uncached.id), "{operation:#?}");
        assert!(!operation.text("db.operation.name").is_empty());
        assert!(!operation.text("server.address").is_empty());
    }

    // The response was compressed under the request, with its coding and sizes.
    let compression = only(&spans, |s| {
        s.name == "http.response.compression" && s.trace_id == TRACE_ID
    });
    assert!(descends(&spans, compression, &uncached.id));
    assert_eq!(compression.text("http.response.content_coding"), "gzip");
    assert!(
        compression.int("compression.input_bytes") > compression.int("compression.output_bytes")
    );

    // The cached request: a trace of its own (no traceparent), a hit, and no query.
    let cached = only(&spans, |s| {
        s.name == "GET /api/products" && s.trace_id != TRACE_ID
    });
    assert_eq!(cached.parent, "", "a root span");
    assert_eq!(cached.int("http.response.status_code"), 200);
    let hit = only(&spans, |s| {
        s.name == "cache.lookup" && s.parent == cached.id
    });
    assert_eq!(hit.text("cache.result"), "hit");
    assert_eq!(hit.text("cache.key.hash"), hash, "one key, one hash");
    assert!(
        !spans
            .iter()
            .any(|s| s.trace_id == cached.trace_id && s.attributes.contains_key("db.system.name")),
        "a hit runs no query"
    );

    // Nothing exported shows the cache key (the path and query) except the route template.
    for span in &spans {
        for (key, value) in &span.attributes {
            if key != "http.route" && key != "otel.name" {
                assert!(
                    !value.contains("/api/products"),
                    "{key}={value} in {span:#?}"
                );
            }
        }
    }
    assert_eq!(run.service_names, ["traces-test"]);

    // The request's log lines carry its trace id (every query is slow here).
    assert!(
        run.logs
            .lines()
            .any(|line| line.contains(&format!("trace_id={TRACE_ID}"))),
        "no log line with the trace id:\n{}",
        run.logs
    );
}

#[tokio::test]
async fn query_text_is_exported_only_when_enabled() {
    let run = Run::start(&[("TRACE_QUERY_TEXT", "on")]).await;
    let queries: Vec<&Exported> = run
        .spans
        .iter()
        .filter(|s| s.text("db.system.name") == "postgresql" && s.trace_id == TRACE_ID)
        .collect();
    assert!(!queries.is_empty());
    for query in queries {
        let text = query.text("db.query.text");
        assert!(text.to_ascii_uppercase().contains("SELECT"), "{query:#?}");
        // Placeholders, never the values bound to them.
        assert!(text.contains("$1"), "{query:#?}");
    }
}

/// One run of the service binary: two requests, then a graceful shutdown.
struct Run {
    spans: Vec<Exported>,
    service_names: Vec<String>,
    logs: String,
}

impl Run {
    async fn start(extra_env: &[(&str, &str)]) -> Self {
        // A database of its own, migrated and seeded.
        let app = TestApp::start().await;
        let receiver = Receiver::start().await;
        let port = free_port();
        let log_path = std::env::temp_dir().join(support::unique("traces-log"));
        let log_file = std::fs::File::create(&log_path).unwrap();
        let mut command = Command::new(env!("CARGO_BIN_EXE_example-service"));
        command
            .env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .env("BIND_ADDR", format!("127.0.0.1:{port}"))
            .env("ADMIN_BIND_ADDR", format!("127.0.0.1:{}", free_port()))
            .env("DATABASE_URL", &app.config.database_url)
            .env("CACHE_WARM", "off")
            .env("SLOW_WARN_MS", "0")
            .env("SLOW_ERROR_MS", "60000")
            .env("RUST_LOG", "info")
            .env("NO_COLOR", "1")
            .env(
                "OTEL_EXPORTER_OTLP_ENDPOINT",
                format!("http://{}", receiver.addr),
            )
            .env("OTEL_SERVICE_NAME", "traces-test")
            .env("OTEL_TRACES_SAMPLER", "parentbased_traceidratio")
            .env("OTEL_TRACES_SAMPLER_ARG", "1.0")
            // Exported only by the flush on shutdown: this run checks that flush.
            .env("OTEL_BSP_SCHEDULE_DELAY", "600000")
            .envs(extra_env.iter().copied())
            .stdout(Stdio::from(log_file.try_clone().unwrap()))
            .stderr(Stdio::from(log_file));
        let mut child = Service(command.spawn().unwrap());
        wait_for_port(port, &mut child.0);

        let traceparent = format!("00-{TRACE_ID}-{PARENT_SPAN_ID}-01");
        let uncached = get(port, Some(&traceparent)).await;
        assert_eq!(uncached, StatusCode::OK);
        let cached = get(port, None).await;
        assert_eq!(cached, StatusCode::OK);

        let stopping = Instant::now();
        child.terminate().await;
        // The flush is immediate, not the exporter's 5 s shutdown timeout.
        assert!(
            stopping.elapsed() < Duration::from_secs(4),
            "{:?}",
            stopping.elapsed()
        );
        assert!(!logs_of(&log_path).contains("exporting the last spans failed"));
        let spans = receiver
            .wait_for(|spans| {
                spans
                    .iter()
                    .filter(|s| s.name == "GET /api/products")
                    .count()
                    >= 2
            })
            .await;
        let logs = logs_of(&log_path);
        let _ = std::fs::remove_file(&log_path);
        let service_names = receiver.service_names.lock().unwrap().clone();
        Run {
            spans,
            service_names,
            logs,
        }
    }
}

fn logs_of(path: &std::path::Path) -> String {
    std::fs::read_to_string(path).unwrap_or_default()
}

/// GET /api/products, accepting gzip, optionally with a `traceparent`.
async fn get(port: u16, traceparent: Option<&str>) -> StatusCode {
    let client: Client<_, Empty<Bytes>> = Client::builder(TokioExecutor::new()).build_http();
    let mut request = Request::get(format!("http://127.0.0.1:{port}/api/products"))
        .header(header::ACCEPT_ENCODING, "gzip");
    if let Some(traceparent) = traceparent {
        request = request
            .header("traceparent", traceparent)
            .header("tracestate", "vendor=opaque");
    }
    let response = client
        .request(request.body(Empty::new()).unwrap())
        .await
        .unwrap();
    let status = response.status();
    // Read to the end: the compression span ends with the body.
    response.into_body().collect().await.unwrap();
    status
}

/// The service process; killed if the test ends before it exited.
struct Service(Child);

impl Service {
    /// SIGTERM, then waits (bounded) for the graceful exit, while the receiver (on this
    /// runtime) takes the spans the exit flushes.
    async fn terminate(&mut self) {
        let status = Command::new("kill")
            .args(["-TERM", &self.0.id().to_string()])
            .status()
            .unwrap();
        assert!(status.success());
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            if let Some(status) = self.0.try_wait().unwrap() {
                assert!(status.success(), "the service exited with {status}");
                return;
            }
            assert!(Instant::now() < deadline, "the service did not stop");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

impl Drop for Service {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn wait_for_port(port: u16, child: &mut Child) {
    let deadline = Instant::now() + Duration::from_secs(60);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(child.try_wait().unwrap().is_none(), "the service exited");
        assert!(Instant::now() < deadline, "the service did not start");
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// A span as received, with ids in hex and attribute values as text.
#[derive(Debug, Clone)]
struct Exported {
    name: String,
    kind: i32,
    trace_id: String,
    id: String,
    parent: String,
    attributes: HashMap<String, String>,
}

impl Exported {
    fn text(&self, key: &str) -> &str {
        self.attributes.get(key).map_or("", String::as_str)
    }

    fn int(&self, key: &str) -> i64 {
        self.text(key).parse().unwrap_or(-1)
    }
}

/// The only span matching `test`.
fn only(spans: &[Exported], test: impl Fn(&Exported) -> bool) -> &Exported {
    let found: Vec<&Exported> = spans.iter().filter(|s| test(s)).collect();
    assert_eq!(
        found.len(),
        1,
        "expected one span, found {found:#?} among {spans:#?}"
    );
    found[0]
}

/// Whether `span` is below the span `ancestor` (following parents).
fn descends(spans: &[Exported], span: &Exported, ancestor: &str) -> bool {
    let mut parent = span.parent.clone();
    for _ in 0..spans.len() {
        if parent == ancestor {
            return true;
        }
        match spans.iter().find(|s| s.id == parent) {
            Some(next) => parent = next.parent.clone(),
            None => return false,
        }
    }
    false
}

/// An OTLP/HTTP receiver: `POST /v1/traces` with a protobuf `ExportTraceServiceRequest`.
struct Receiver {
    addr: SocketAddr,
    spans: Arc<Mutex<Vec<Exported>>>,
    service_names: Arc<Mutex<Vec<String>>>,
}

#[derive(Clone)]
struct Received {
    spans: Arc<Mutex<Vec<Exported>>>,
    service_names: Arc<Mutex<Vec<String>>>,
}

impl Receiver {
    async fn start() -> Self {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let received = Received {
            spans: Arc::default(),
            service_names: Arc::default(),
        };
        let router = axum::Router::new()
            .route("/v1/traces", post(receive))
            .with_state(received.clone());
        tokio::spawn(async move { axum::serve(listener, router).await });
        Receiver {
            addr,
            spans: received.spans,
            service_names: received.service_names,
        }
    }

    /// The spans received, once `done` holds for them (polled, bounded).
    async fn wait_for(&self, done: impl Fn(&[Exported]) -> bool) -> Vec<Exported> {
        let deadline = Instant::now() + RECEIVE_TIMEOUT;
        loop {
            let spans = self.spans.lock().unwrap().clone();
            if done(&spans) {
                return spans;
            }
            assert!(
                Instant::now() < deadline,
                "spans received so far: {spans:#?}"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

async fn receive(
    State(received): State<Received>,
    body: Bytes,
) -> (StatusCode, [(header::HeaderName, &'static str); 1]) {
    let Ok(request) = ExportTraceServiceRequest::decode(body) else {
        return (
            StatusCode::BAD_REQUEST,
            [(header::CONTENT_TYPE, "text/plain")],
        );
    };
    for resource_spans in request.resource_spans {
        if let Some(resource) = &resource_spans.resource {
            let attributes = text_attributes(&resource.attributes);
            if let Some(name) = attributes.get("service.name") {
                let mut names = received.service_names.lock().unwrap();
                if !names.contains(name) {
                    names.push(name.clone());
                }
            }
        }
        for scope in resource_spans.scope_spans {
            for span in scope.spans {
                received.spans.lock().unwrap().push(Exported {
                    name: span.name,
                    kind: span.kind,
                    trace_id: hex(&span.trace_id),
                    id: hex(&span.span_id),
                    parent: hex(&span.parent_span_id),
                    attributes: text_attributes(&span.attributes),
                });
            }
        }
    }
    // An empty `ExportTraceServiceResponse`: zero bytes.
    (
        StatusCode::OK,
        [(header::CONTENT_TYPE, "application/x-protobuf")],
    )
}

fn text_attributes(attributes: &[KeyValue]) -> HashMap<String, String> {
    attributes
        .iter()
        .filter_map(|kv| {
            let value = match kv.value.as_ref()?.value.as_ref()? {
                AnyValue::StringValue(text) => text.clone(),
                AnyValue::IntValue(n) => n.to_string(),
                AnyValue::BoolValue(b) => b.to_string(),
                AnyValue::DoubleValue(x) => x.to_string(),
                other => format!("{other:?}"),
            };
            Some((kv.key.clone(), value))
        })
        .collect()
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}
