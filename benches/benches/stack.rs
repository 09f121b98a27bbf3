//! Wall time of the towerkit layers of the example service on a cache hit (`stack/full/hit`)
//! and of the example service's whole production stack, tower-http layers and `Router`
//! included (`stack/example/hit`), against the bare service of `layer/none/passthrough`
//! (`benches/layers.rs`). The instruction counts of the same ids (`benches/instructions.rs`)
//! measure the same services.

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
    let example = services::example_stack();
    group.bench_function("example/hit", |b| {
        bench_service(b, &rt, example.clone(), services::example_get)
    });
    group.finish();
}

criterion_group!(benches, stack);
criterion_main!(benches);
