//! What compression costs per response, and what it saves.
//!
//! - `compress/{gzip,br,zstd}/100KB/towerkit`: towerkit-compress's `CompressionLayer` at its
//!   default levels (zstd 3, brotli 4, gzip 6) on a 100 KB JSON body;
//!   `.../tower_http_default` is tower-http's `CompressionLayer::new()` on the same service.
//!   Throughput is in uncompressed bytes; the compressed sizes and ratios are printed once.
//! - `compress/cached_hit/{br,identity}_100KB`: the hit path of a cached route, towerkit-cache's
//!   `CacheLayer` (memory store) in front of `CompressionLayer` in front of the same service,
//!   for a brotli client and a client without `Accept-Encoding`. The variant is stored before
//!   measuring, so a hit serves stored bytes: brotli costs nothing per hit, and the two
//!   figures should be within 10 % of each other. Throughput is the uncompressed 100 KB.

use std::time::Duration;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use http::header::ACCEPT_ENCODING;
use http::{HeaderValue, Request};
use http_body_util::BodyExt;
use tower::{Layer, ServiceExt};
use towerkit_benches::{bench_service, corpus, fixed_service, install_metrics_recorder, runtime};
use towerkit_cache::{CacheLayer, MemoryStore};
use towerkit_compress::CompressionLayer;

const CODECS: [&str; 3] = ["gzip", "br", "zstd"];

fn codecs(c: &mut Criterion) {
    install_metrics_recorder();
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

fn cached_hit(c: &mut Criterion) {
    install_metrics_recorder();
    let rt = runtime();
    let json = bytes::Bytes::from(corpus(100_000));
    let stack = || {
        CacheLayer::builder(MemoryStore::new(64 * 1024 * 1024))
            .default_ttl(Duration::from_secs(3600))
            .build()
            .expect("valid cache configuration")
            .layer(CompressionLayer::new().layer(fixed_service(json.clone(), "application/json")))
    };
    // The two requests differ only in the coding asked for, so the figures differ only by
    // what the hit serves.
    let request = |coding: &'static str| {
        move || {
            let mut request = Request::get("/products").body(()).expect("request");
            request
                .headers_mut()
                .insert(ACCEPT_ENCODING, HeaderValue::from_static(coding));
            request
        }
    };
    let br = request("br");
    let identity = request("identity");
    // Each variant alone under its key. With both under one key, the variant stored first
    // costs one extra variant check on every hit (about 0.3 us), whichever coding it is; that
    // is the cache's variant lookup, not compression, so it is kept out of this comparison.
    let br_service = stack();
    let identity_service = stack();
    let (_, miss_encoding, _) = rt.block_on(send(br_service.clone(), br()));
    assert_eq!(
        miss_encoding.as_deref(),
        Some("br"),
        "the miss is compressed"
    );
    let (status, encoding, br_len) = rt.block_on(send(br_service.clone(), br()));
    assert!(
        status.contains("hit") && encoding.as_deref() == Some("br"),
        "br: {status}"
    );
    rt.block_on(send(identity_service.clone(), identity()));
    let (status, encoding, identity_len) = rt.block_on(send(identity_service.clone(), identity()));
    assert!(
        status.contains("hit") && encoding.is_none(),
        "identity: {status}"
    );
    println!(
        "compress/cached_hit: br variant {br_len} bytes, identity variant {identity_len} bytes"
    );

    let mut group = c.benchmark_group("compress/cached_hit");
    group.throughput(Throughput::Bytes(json.len() as u64));
    group.bench_function("br_100KB", |b| {
        bench_service(b, &rt, br_service.clone(), br)
    });
    group.bench_function("identity_100KB", |b| {
        bench_service(b, &rt, identity_service.clone(), identity)
    });
    group.finish();
}

/// Sends `request`; returns the `Cache-Status`, the `Content-Encoding` and the body length.
async fn send<S, B>(service: S, request: Request<()>) -> (String, Option<String>, usize)
where
    S: tower::Service<Request<()>, Response = http::Response<B>>,
    S::Error: std::fmt::Debug,
    B: http_body::Body,
    B::Error: std::fmt::Debug,
{
    let response = service.oneshot(request).await.expect("service call");
    let header = |name: &str| {
        response
            .headers()
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned)
    };
    let status = header("cache-status").unwrap_or_default();
    let encoding = header("content-encoding");
    let body = response
        .into_body()
        .collect()
        .await
        .expect("body")
        .to_bytes();
    (status, encoding, body.len())
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

criterion_group!(benches, codecs, cached_hit);
criterion_main!(benches);
