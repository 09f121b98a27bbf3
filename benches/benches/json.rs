//! JSON transforms against the naive `serde_json::Value` round trip and sonic-rs, on the same
//! generated corpus in the same run.

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use towerkit_benches::corpus;
use towerkit_benches::naive::{strip_with_serde_value, strip_with_sonic};
use towerkit_nulls::{StripOptions, strip_nulls};

fn strip_nulls_benches(c: &mut Criterion) {
    let mut group = c.benchmark_group("json/strip_nulls");
    for (label, size) in [("10KB", 10_000), ("1MB", 1_000_000)] {
        let input = corpus(size);
        group.throughput(Throughput::Bytes(input.len() as u64));
        let options = StripOptions::new();
        let mut out = Vec::with_capacity(input.len());
        group.bench_with_input(BenchmarkId::new("towerkit", label), &input, |b, input| {
            b.iter(|| {
                out.clear();
                strip_nulls(input, &mut out, &options).expect("corpus is JSON");
                out.len()
            })
        });
        group.bench_with_input(
            BenchmarkId::new("serde_value", label),
            &input,
            |b, input| {
                b.iter(|| {
                    out.clear();
                    strip_with_serde_value(input, &mut out);
                    out.len()
                })
            },
        );
        group.bench_with_input(BenchmarkId::new("sonic_rs", label), &input, |b, input| {
            b.iter(|| {
                out.clear();
                strip_with_sonic(input, &mut out);
                out.len()
            })
        });
    }
    group.finish();
}

criterion_group!(benches, strip_nulls_benches);
criterion_main!(benches);
