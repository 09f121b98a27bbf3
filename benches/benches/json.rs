//! JSON transforms against the naive `serde_json::Value` round trip and sonic-rs, on the same
//! generated corpus in the same run.

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use serde_json::Value;
use towerkit_benches::corpus;
use towerkit_nulls::{StripOptions, strip_nulls};

/// The naive way: parse into a `Value` tree (member order preserved), strip, serialize.
fn strip_with_serde_value(input: &[u8], out: &mut Vec<u8>) {
    fn strip(value: &mut Value) {
        match value {
            Value::Object(map) => {
                map.retain(|_, v| !v.is_null());
                map.values_mut().for_each(strip);
            }
            Value::Array(items) => items.iter_mut().for_each(strip),
            _ => {}
        }
    }
    let mut value: Value = serde_json::from_slice(input).expect("corpus is JSON");
    strip(&mut value);
    serde_json::to_writer(out, &value).expect("serialize");
}

/// The same with sonic-rs, the fastest general JSON library for Rust.
fn strip_with_sonic(input: &[u8], out: &mut Vec<u8>) {
    fn strip(value: &mut sonic_rs::Value) {
        use sonic_rs::{JsonValueMutTrait, JsonValueTrait};
        if let Some(object) = value.as_object_mut() {
            let nulls: Vec<String> = object
                .iter()
                .filter(|(_, v)| v.is_null())
                .map(|(k, _)| k.to_owned())
                .collect();
            for key in nulls {
                object.remove(&key);
            }
            for (_, child) in object.iter_mut() {
                strip(child);
            }
        } else if let Some(array) = value.as_array_mut() {
            for child in array.iter_mut() {
                strip(child);
            }
        }
    }
    let mut value: sonic_rs::Value = sonic_rs::from_slice(input).expect("corpus is JSON");
    strip(&mut value);
    sonic_rs::to_writer(out, &value).expect("serialize");
}

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
