//! What a layer costs on a trivial service: `layer/none/passthrough` is the bare service,
//! every other `layer/<name>/...` is the same service behind one layer, all measured in one
//! run. The instruction counts of the same ids (`benches/instructions.rs`) measure the same
//! services ([`services`]).

#[allow(
    dead_code,
    reason = "each bench target uses its own part of the shared services"
)]
mod services;

use criterion::{Criterion, criterion_group, criterion_main};
use towerkit_benches::{bench_service, install_metrics_recorder, runtime};

use crate::services::{fields_get, no_store_get, not_modified_get, page_get, plain_get};

fn layers(c: &mut Criterion) {
    install_metrics_recorder();
    let rt = runtime();
    let mut group = c.benchmark_group("layer");
    macro_rules! bench {
        ($id:literal, $service:expr, $request:expr) => {
            let service = $service;
            group.bench_function($id, |b| bench_service(b, &rt, service.clone(), $request));
        };
    }
    bench!("none/passthrough", services::none(), plain_get);
    bench!(
        "strip_nulls/passthrough",
        services::strip_nulls_passthrough(),
        plain_get
    );
    bench!(
        "strip_nulls/json_1KB",
        services::strip_nulls_json(),
        plain_get
    );
    bench!(
        "timing/passthrough",
        services::timing_passthrough(),
        plain_get
    );
    bench!(
        "compress/passthrough",
        services::compress_passthrough(),
        plain_get
    );
    bench!(
        "cache/passthrough",
        services::cache_passthrough(),
        no_store_get
    );
    bench!("cache/hit", services::cache_hit(), plain_get);
    bench!("fields/passthrough", services::fields(), plain_get);
    bench!("fields/json_1KB", services::fields(), fields_get);
    bench!(
        "paginate/passthrough",
        services::paginate_passthrough(),
        plain_get
    );
    bench!("paginate/json_1KB", services::paginate_json(), page_get);
    bench!("etag/json_10KB", services::etag(), plain_get);
    bench!("etag/not_modified", services::etag(), not_modified_get);
    group.finish();
}

criterion_group!(benches, layers);
criterion_main!(benches);
