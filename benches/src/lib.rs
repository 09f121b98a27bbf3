//! Shared fixtures for towerkit's benches: a deterministic corpus of API-shaped JSON, a bare
//! service answering a fixed body, and a helper that drives a tower service inside criterion.
//!
//! Every layer bench measures the layer on the same bare service, so `layer/none/passthrough`
//! is the reference for every `layer/<name>/...` figure.

use std::convert::Infallible;
use std::fmt::Write as _;

use bytes::Bytes;
use criterion::Bencher;
use http::{Request, Response};
use http_body_util::{BodyExt, Full};
use tower::{Service, ServiceExt, service_fn};

pub mod custom;
pub mod naive;

/// Installs, once per process, the metrics recorder a service runs with: the Prometheus
/// recorder with OpenTelemetry's buckets, as the example service does. Layers that record
/// metrics are measured doing that work, not handing it to the no-op recorder `metrics`
/// falls back to.
pub fn install_metrics_recorder() {
    static INSTALLED: std::sync::Once = std::sync::Once::new();
    INSTALLED.call_once(|| {
        use metrics_exporter_prometheus::{Matcher, PrometheusBuilder};
        use towerkit_timing::metrics::{
            DB_CLIENT_OPERATION_DURATION, DB_DURATION_BUCKETS, HTTP_DURATION_BUCKETS,
            HTTP_SERVER_REQUEST_DURATION,
        };
        let recorder = PrometheusBuilder::new()
            .set_buckets_for_metric(
                Matcher::Full(HTTP_SERVER_REQUEST_DURATION.into()),
                &HTTP_DURATION_BUCKETS,
            )
            .and_then(|builder| {
                builder.set_buckets_for_metric(
                    Matcher::Full(DB_CLIENT_OPERATION_DURATION.into()),
                    &DB_DURATION_BUCKETS,
                )
            })
            .expect("non-empty buckets")
            .build_recorder();
        // Drained every 5 s, as in a service (see the example's `metrics_recorder`):
        // undrained, every histogram sample of a bench would stay in memory.
        let upkeep = recorder.handle();
        std::thread::Builder::new()
            .name("metrics-upkeep".into())
            .spawn(move || {
                loop {
                    std::thread::sleep(std::time::Duration::from_secs(5));
                    upkeep.run_upkeep();
                }
            })
            .expect("metrics upkeep thread");
        metrics::set_global_recorder(recorder).expect("no other recorder in a bench");
        // Let towerkit's histograms learn the new recorder now (it takes starting a thread),
        // not inside a scenario's first calls, where under Callgrind it would be slow
        // enough to age a cached response by a second.
        static METADATA: metrics::Metadata<'static> =
            metrics::Metadata::new(module_path!(), metrics::Level::INFO, None);
        towerkit_timing::metrics::HistogramCell::new(
            metrics::Key::from_name("towerkit_bench_recorder_probe"),
            &METADATA,
        )
        .record(0.0);
    });
}

/// A current-thread tokio runtime for async benches.
pub fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("tokio runtime")
}

/// A deterministic JSON array of API objects of about `target` bytes: ~20 % of members are
/// `null`, objects nest two levels, strings include escapes and non-ASCII text.
pub fn corpus(target: usize) -> Vec<u8> {
    let mut out = String::with_capacity(target + 1024);
    out.push('[');
    let mut seed = 0x2545_f491_4f6c_dd1d_u64;
    let mut next = move || {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        seed
    };
    // Written as JSON string contents: escapes stay escaped.
    let names = [
        "Kaffeemühle",
        r#"Teapot \"Classic\""#,
        "Jalape\\u00f1o sauce",
        "東京 tote bag",
        r"Line\nbreak mug",
        "Plain widget",
    ];
    let mut id = 0u64;
    while out.len() < target {
        if id > 0 {
            out.push(',');
        }
        id += 1;
        let mut member = |out: &mut String, key: &str, value: String| {
            // One member in five is null, as in APIs serializing optional fields.
            if next() % 5 == 0 {
                let _ = write!(out, "\"{key}\":null,");
            } else {
                let _ = write!(out, "\"{key}\":{value},");
            }
        };
        out.push('{');
        let _ = write!(out, "\"id\":{id},");
        let name = names[(id % names.len() as u64) as usize];
        member(&mut out, "name", format!("\"{name} #{id}\""));
        member(
            &mut out,
            "description",
            format!(
                "\"A fine product, number {id}, with a longer text to make strings realistic.\""
            ),
        );
        member(&mut out, "price", format!("{}.{:02}", id % 500, id % 100));
        member(&mut out, "discount", format!("{}e-2", id % 30));
        member(
            &mut out,
            "image_url",
            format!("\"https://img.example.com/p/{id}.jpg\""),
        );
        member(
            &mut out,
            "category",
            format!(
                "{{\"id\":{},\"name\":\"Category {}\",\"parent\":null}}",
                id % 40,
                id % 40
            ),
        );
        member(&mut out, "tags", "[\"new\",\"sale\",null]".to_owned());
        member(
            &mut out,
            "stock",
            format!(
                "{{\"warehouse\":{},\"count\":{},\"eta\":null}}",
                id % 7,
                id % 1000
            ),
        );
        let _ = write!(out, "\"active\":{}", !id.is_multiple_of(3));
        out.push('}');
    }
    out.push(']');
    out.into_bytes()
}

/// The bare service every layer bench wraps: answers each request with `body` and
/// `content_type`, no work per request beyond building the response.
pub fn fixed_service(
    body: Bytes,
    content_type: &'static str,
) -> impl Service<Request<()>, Response = Response<Full<Bytes>>, Error = Infallible, Future: Send> + Clone
{
    service_fn(move |_request: Request<()>| {
        let body = body.clone();
        async move {
            let mut response = Response::new(Full::new(body));
            response.headers_mut().insert(
                http::header::CONTENT_TYPE,
                http::HeaderValue::from_static(content_type),
            );
            Ok(response)
        }
    })
}

/// A small JSON document (about 1 KB) from the corpus.
pub fn small_json() -> Bytes {
    Bytes::from(corpus(1000))
}

/// Benches one request through `service` per iteration, body read to the end, all inside
/// one runtime so the figure is the service's cost alone.
pub fn bench_service<S, B>(
    b: &mut Bencher<'_>,
    rt: &tokio::runtime::Runtime,
    service: S,
    request: impl Fn() -> Request<()>,
) where
    S: Service<Request<()>, Response = Response<B>> + Clone,
    S::Error: std::fmt::Debug,
    B: http_body::Body,
    B::Error: std::fmt::Debug,
{
    b.to_async(rt).iter(|| {
        let service = service.clone();
        let request = request();
        async move {
            let response = service.oneshot(request).await.expect("service call");
            let body = response
                .into_body()
                .collect()
                .await
                .expect("body")
                .to_bytes();
            std::hint::black_box(body)
        }
    });
}

/// The first `count` elements of the shared corpus, cut at an element boundary.
pub fn corpus_of(count: usize) -> Vec<u8> {
    let mut input = corpus(count * 400);
    let marker = format!(",{{\"id\":{},", count + 1);
    let cut = input
        .windows(marker.len())
        .position(|window| window == marker.as_bytes())
        .expect("corpus long enough");
    input.truncate(cut);
    input.push(b']');
    input
}

#[cfg(test)]
mod tests {
    #[test]
    fn corpus_is_valid_json_of_about_the_requested_size() {
        for size in [1_000, 100_000] {
            let doc = super::corpus(size);
            let value: serde_json::Value = serde_json::from_slice(&doc).unwrap();
            assert!(value.as_array().is_some_and(|items| !items.is_empty()));
            assert!(
                doc.len() >= size && doc.len() < size + 1_000,
                "{} for {size}",
                doc.len()
            );
        }
    }
}
