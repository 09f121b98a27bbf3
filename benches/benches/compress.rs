//! What compression costs per response, and what it saves.
//!
//! - `compress/{gzip,br,zstd}/100KB/towerkit`: towerkit-compress's `CompressionLayer` at its
//!   default levels (zstd 3, brotli 4, gzip 6) on a 100 KB JSON body;
//!   `.../tower_http_default` is tower-http's `CompressionLayer::new()` on the same service.
//!   Throughput is in uncompressed bytes; the compressed sizes and ratios are printed once.

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use http::Request;
use http_body_util::BodyExt;
use tower::{Layer, ServiceExt};
use towerkit_benches::{bench_service, corpus, fixed_service, runtime};
use towerkit_compress::CompressionLayer;

const CODECS: [&str; 3] = ["gzip", "br", "zstd"];

fn codecs(c: &mut Criterion) {
    let rt = runtime();
    let json = bytes::Bytes::from(corpus(100_000));
    for codec in CODECS {
        let request = move || {
            Request::get("/")
                .header("accept-encoding", codec)
                .body(())
                .expect("request")
        };
        let towerkit =
            CompressionLayer::new().layer(fixed_service(json.clone(), "application/json"));
        let tower_http = tower_http::compression::CompressionLayer::new()
            .layer(fixed_service(json.clone(), "application/json"));

        let ours = rt.block_on(compressed_len(towerkit.clone(), request()));
        let theirs = rt.block_on(compressed_len(tower_http.clone(), request()));
        println!(
            "compress/{codec}/100KB: {} bytes -> towerkit {ours} bytes (ratio {:.2}), tower_http_default {theirs} bytes (ratio {:.2})",
            json.len(),
            json.len() as f64 / ours as f64,
            json.len() as f64 / theirs as f64,
        );

        let mut group = c.benchmark_group(format!("compress/{codec}/100KB"));
        group.throughput(Throughput::Bytes(json.len() as u64));
        group.bench_function("towerkit", |b| {
            bench_service(b, &rt, towerkit.clone(), request)
        });
        group.bench_function("tower_http_default", |b| {
            bench_service(b, &rt, tower_http.clone(), request)
        });
        group.finish();
    }
}

/// The length of the body `service` answers `request` with, checking it is compressed.
async fn compressed_len<S, B>(service: S, request: Request<()>) -> usize
where
    S: tower::Service<Request<()>, Response = http::Response<B>>,
    S::Error: std::fmt::Debug,
    B: http_body::Body,
    B::Error: std::fmt::Debug,
{
    let response = service.oneshot(request).await.expect("service call");
    assert!(
        response.headers().contains_key("content-encoding"),
        "response is compressed"
    );
    response
        .into_body()
        .collect()
        .await
        .expect("body")
        .to_bytes()
        .len()
}

criterion_group!(benches, codecs);
criterion_main!(benches);
