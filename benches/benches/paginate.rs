//! towerkit-paginate: the projection and pagination transforms against the naive
//! `serde_json::Value` round trip on the same corpus in the same run, and both layers on the
//! bare service.

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use http::Request;
use serde_json::{Map, Value, json};
use tower::Layer;
use towerkit_benches::{bench_service, corpus, fixed_service, runtime, small_json};
use towerkit_paginate::{
    FieldsLayer, JsonPointer, Pagination, PaginationConfig, PaginationLayer, Selection, paginate,
    project,
};

/// A typical list-view selection: a few scalars and one member of two nested objects.
const FIELDS: &str = "id,name,price,category(name),stock/count";

/// The same selection for the reference: member name and the members kept inside it
/// (none: the whole value).
const FIELDS_TREE: [(&str, &[&str]); 5] = [
    ("id", &[]),
    ("name", &[]),
    ("price", &[]),
    ("category", &["name"]),
    ("stock", &["count"]),
];

/// The naive way: parse into a `Value` tree (member order preserved), keep the selected
/// members of every item, serialize.
fn project_with_serde_value(input: &[u8], out: &mut Vec<u8>) {
    let value: Value = serde_json::from_slice(input).expect("corpus is JSON");
    let Value::Array(items) = value else {
        panic!("corpus is an array")
    };
    let projected: Vec<Value> = items
        .into_iter()
        .map(|item| {
            let Value::Object(mut object) = item else {
                return item;
            };
            let mut kept = Map::new();
            for &(name, children) in &FIELDS_TREE {
                let Some(value) = object.remove(name) else {
                    continue;
                };
                let value = match value {
                    Value::Object(mut inner) if !children.is_empty() => {
                        let mut sub = Map::new();
                        for &child in children {
                            if let Some(v) = inner.remove(child) {
                                sub.insert(child.to_owned(), v);
                            }
                        }
                        Value::Object(sub)
                    }
                    _ if !children.is_empty() => continue,
                    value => value,
                };
                kept.insert(name.to_owned(), value);
            }
            Value::Object(kept)
        })
        .collect();
    serde_json::to_writer(out, &projected).expect("serialize");
}

/// The naive way: parse, slice, build the envelope, serialize.
fn paginate_with_serde_value(input: &[u8], out: &mut Vec<u8>, page: usize, limit: usize) {
    let value: Value = serde_json::from_slice(input).expect("corpus is JSON");
    let Value::Array(items) = value else {
        panic!("corpus is an array")
    };
    let total = items.len();
    let start = ((page - 1) * limit).min(total);
    let end = (start + limit).min(total);
    let data: Vec<Value> = items.into_iter().skip(start).take(end - start).collect();
    let envelope = json!({
        "data": data,
        "pagination": {
            "page": page, "limit": limit, "total": total, "totalPages": total.div_ceil(limit),
            "hasNext": end < total, "hasPrevious": page > 1,
        }
    });
    serde_json::to_writer(out, &envelope).expect("serialize");
}

/// The first `count` elements of the shared corpus, cut at an element boundary.
fn corpus_of(count: usize) -> Vec<u8> {
    let mut input = corpus(count * 400);
    let marker = format!(",{{\"id\":{},", count + 1);
    let cut = input
        .windows(marker.len())
        .position(|window| window == marker.as_bytes())
        .expect("corpus long enough");
    input.truncate(cut);
    input.push(b']');
    input
}

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

fn layer_benches(c: &mut Criterion) {
    let rt = runtime();
    let body = small_json();

    let mut group = c.benchmark_group("layer/fields");
    let service = FieldsLayer::default().layer(fixed_service(body.clone(), "application/json"));
    group.bench_function(BenchmarkId::from_parameter("json_1KB"), |b| {
        bench_service(b, &rt, service.clone(), || {
            Request::get("/products?fields=id,name,category(name)")
                .body(())
                .expect("request")
        })
    });
    group.finish();

    let mut group = c.benchmark_group("layer/paginate");
    let service = PaginationLayer::default().layer(fixed_service(body, "application/json"));
    group.bench_function(BenchmarkId::from_parameter("json_1KB"), |b| {
        bench_service(b, &rt, service.clone(), || {
            Request::get("/products?page=1&limit=2")
                .body(())
                .expect("request")
        })
    });
    group.finish();
}

criterion_group!(benches, fields_benches, paginate_benches, layer_benches);
criterion_main!(benches);
