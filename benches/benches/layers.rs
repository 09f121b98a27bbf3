//! What a layer costs on a trivial service: `layer/none/passthrough` is the bare service,
//! every other `layer/<name>/...` is the same service behind one layer.

use bytes::Bytes;
use criterion::{Criterion, criterion_group, criterion_main};
use http::Request;
use tower::Layer;
use towerkit_benches::{bench_service, fixed_service, runtime, small_json};
use towerkit_nulls::StripNullsLayer;

fn layers(c: &mut Criterion) {
    let rt = runtime();
    let json = small_json();
    let request = || Request::get("/").body(()).expect("request");
    let mut group = c.benchmark_group("layer");

    let bare = fixed_service(json.clone(), "application/json");
    group.bench_function("none/passthrough", |b| {
        bench_service(b, &rt, bare.clone(), request)
    });

    let text = StripNullsLayer::new().layer(fixed_service(
        Bytes::from_static(b"plain text"),
        "text/plain",
    ));
    group.bench_function("strip_nulls/passthrough", |b| {
        bench_service(b, &rt, text.clone(), request)
    });

    let stripped = StripNullsLayer::new().layer(fixed_service(json.clone(), "application/json"));
    group.bench_function("strip_nulls/json_1KB", |b| {
        bench_service(b, &rt, stripped.clone(), request)
    });
    group.finish();
}

criterion_group!(benches, layers);
criterion_main!(benches);
