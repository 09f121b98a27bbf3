//! Wall time of the full example stack on a cache hit (`stack/full/hit`), against the bare
//! service of `layer/none/passthrough` (`benches/layers.rs`). The instruction count of the
//! same id (`benches/instructions.rs`) measures the same service.

#[allow(
    dead_code,
    reason = "each bench target uses its own part of the shared services"
)]
mod services;

use criterion::{Criterion, criterion_group, criterion_main};
use towerkit_benches::{bench_service, install_metrics_recorder, runtime};

fn stack(c: &mut Criterion) {
    install_metrics_recorder();
    let rt = runtime();
    let mut group = c.benchmark_group("stack");
    let full = services::full_stack();
    group.bench_function("full/hit", |b| {
        bench_service(b, &rt, full.clone(), services::stack_get)
    });
    group.finish();
}

criterion_group!(benches, stack);
criterion_main!(benches);
