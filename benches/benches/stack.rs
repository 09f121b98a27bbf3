//! Wall time of what `benches/layers.rs` and the crates' benches do not cover: the full
//! example stack on a cache hit (`stack/full/hit`), the cache layer's own hit
//! (`layer/cache/hit`), and the pass-through cost of the layers without one elsewhere
//! (`layer/<name>/passthrough`), all on the bare service of `layer/none/passthrough`, their
//! reference. The instruction counts of the same ids
//! (`benches/instructions.rs`) measure the same services.

mod services;

use criterion::{Criterion, criterion_group, criterion_main};
use towerkit_benches::{bench_service, runtime};

fn stack(c: &mut Criterion) {
    let rt = runtime();
    let mut group = c.benchmark_group("stack");
    let full = services::full_stack();
    group.bench_function("full/hit", |b| {
        bench_service(b, &rt, full.clone(), services::stack_get)
    });
    group.finish();

    let mut group = c.benchmark_group("layer");
    let timing = services::timing_passthrough();
    group.bench_function("timing/passthrough", |b| {
        bench_service(b, &rt, timing.clone(), services::plain_get)
    });
    let compress = services::compress_passthrough();
    group.bench_function("compress/passthrough", |b| {
        bench_service(b, &rt, compress.clone(), services::plain_get)
    });
    let cache = services::cache_passthrough();
    group.bench_function("cache/passthrough", |b| {
        bench_service(b, &rt, cache.clone(), services::no_store_get)
    });
    let hit = services::cache_hit();
    group.bench_function("cache/hit", |b| {
        bench_service(b, &rt, hit.clone(), services::plain_get)
    });
    let fields = services::fields_passthrough();
    group.bench_function("fields/passthrough", |b| {
        bench_service(b, &rt, fields.clone(), services::plain_get)
    });
    let paginate = services::paginate_passthrough();
    group.bench_function("paginate/passthrough", |b| {
        bench_service(b, &rt, paginate.clone(), services::plain_get)
    });
    group.finish();
}

criterion_group!(benches, stack);
criterion_main!(benches);
