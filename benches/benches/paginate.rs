//! towerkit-paginate: the projection and pagination transforms against the naive
//! `serde_json::Value` round trip on the same corpus in the same run, and both layers on the
//! bare service.

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use http::Request;
use serde_json::Value;
use towerkit_benches::naive::{FIELDS, paginate_with_serde_value, project_with_serde_value};
use towerkit_benches::{corpus, corpus_of};
use towerkit_paginate::transform::{JsonPointer, paginate, project};
use towerkit_paginate::{Pagination, PaginationConfig, Selection};

fn fields_benches(c: &mut Criterion) {
    let input = corpus(1_000_000);
    let selection = Selection::parse(FIELDS).expect("valid fields");
    let mut check = Vec::new();
    project(&input, &mut check, &selection, None).expect("corpus is JSON");
    let mut reference = Vec::new();
    project_with_serde_value(&input, &mut reference);
    assert_eq!(
        serde_json::from_slice::<Value>(&check).unwrap(),
        serde_json::from_slice::<Value>(&reference).unwrap(),
        "towerkit and the reference agree"
    );

    let mut group = c.benchmark_group("json/fields");
    group.throughput(Throughput::Bytes(input.len() as u64));
    let mut out = Vec::with_capacity(input.len());
    group.bench_with_input(BenchmarkId::new("towerkit", "1MB"), &input, |b, input| {
        b.iter(|| {
            out.clear();
            project(input, &mut out, &selection, None).expect("corpus is JSON");
            out.len()
        })
    });
    group.bench_with_input(
        BenchmarkId::new("serde_value", "1MB"),
        &input,
        |b, input| {
            b.iter(|| {
                out.clear();
                project_with_serde_value(input, &mut out);
                out.len()
            })
        },
    );
    group.finish();
}

fn paginate_benches(c: &mut Criterion) {
    // The shape: page 3 of limit 50 from a 5,000-element array.
    let input = corpus_of(5_000);
    let request = Request::get("/products?page=3&limit=50")
        .body(())
        .expect("request");
    let pagination =
        Pagination::from_request(&request, &PaginationConfig::default()).expect("valid page");
    let root = JsonPointer::root();
    let mut check = Vec::new();
    let info = paginate(&input, &mut check, &pagination, &root).expect("corpus is JSON");
    assert_eq!(info.total(), Some(5_000));
    let mut reference = Vec::new();
    paginate_with_serde_value(&input, &mut reference, 3, 50);
    assert_eq!(
        serde_json::from_slice::<Value>(&check).unwrap(),
        serde_json::from_slice::<Value>(&reference).unwrap(),
        "towerkit and the reference agree"
    );

    let mut group = c.benchmark_group("json/paginate");
    group.throughput(Throughput::Bytes(input.len() as u64));
    let mut out = Vec::with_capacity(input.len());
    group.bench_with_input(BenchmarkId::new("towerkit", "1MB"), &input, |b, input| {
        b.iter(|| {
            out.clear();
            paginate(input, &mut out, &pagination, &root).expect("corpus is JSON");
            out.len()
        })
    });
    group.bench_with_input(
        BenchmarkId::new("serde_value", "1MB"),
        &input,
        |b, input| {
            b.iter(|| {
                out.clear();
                paginate_with_serde_value(input, &mut out, 3, 50);
                out.len()
            })
        },
    );
    group.finish();
}

criterion_group!(benches, fields_benches, paginate_benches);
criterion_main!(benches);
