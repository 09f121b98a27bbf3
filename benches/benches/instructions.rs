//! Instruction counts for `cargo xtask bench`: every scenario run once under Callgrind by
//! [gungraun](https://docs.rs/gungraun), so the figure is exact and does not move with the
//! machine's load. It is the regression gate; the criterion benches give the wall times.
//!
//! Each scenario's gungraun id is its criterion id with `/` written as `__`
//! (`json__strip_nulls__towerkit__1MB` is `json/strip_nulls/towerkit/1MB`), so xtask shows
//! both figures on one row. A scenario is prepared (and called a few times to warm
//! allocator and runtime) outside the measurement; the count is one call, that is one
//! iteration of the criterion bench of the same id. Every scenario's reference (the bare
//! service, the `serde_json::Value` round trip, tower-http's defaults) is measured here too,
//! so ratios come from one run.
//!
//! Run it through `cargo xtask bench`, or directly (it needs `gungraun-runner` 0.20 on the
//! `PATH`): `cargo bench -p towerkit-benches --bench instructions`.

#![allow(
    non_snake_case,
    missing_docs,
    unused_qualifications,
    clippy::exit,
    reason = "gungraun's macros generate undocumented items with fully qualified paths, named \
              after the benchmark ids, which mirror criterion's (`1MB`), and a main that exits \
              with the runner's status"
)]

use std::hint::black_box;

use bytes::Bytes;
use gungraun::{
    Callgrind, LibraryBenchmarkConfig, library_benchmark, library_benchmark_group, main,
};
use http::Request;
use http_body_util::BodyExt;
use tower::{Layer, Service, ServiceExt};
use towerkit_benches::naive::{
    FIELDS, paginate_with_serde_value, project_with_serde_value, strip_with_serde_value,
    strip_with_sonic,
};
use towerkit_benches::{corpus, corpus_of, fixed_service, install_metrics_recorder, runtime};
use towerkit_compress::CompressionLayer;
use towerkit_nulls::{StripOptions, strip_nulls};
use towerkit_paginate::transform::{JsonPointer, paginate, project};
use towerkit_paginate::{Pagination, PaginationConfig, Selection};

use crate::services::plain_get;

mod services;

/// Calls made while preparing a scenario, before the measured one: the first calls of a
/// service grow the allocator's pools and initialise the runtime's thread-locals.
const WARM_UP_CALLS: usize = 3;

/// One prepared scenario: a call of it is one iteration. Boxing costs the same indirect
/// call in every scenario, references included.
struct Scenario(Box<dyn FnMut() -> usize>);

impl Scenario {
    fn new(mut call: impl FnMut() -> usize + 'static) -> Self {
        for _ in 0..WARM_UP_CALLS {
            black_box(call());
        }
        Self(Box::new(call))
    }
}

// The measured part: one call. The scenario is handed back so that dropping it (the
// runtime, the buffers) happens outside the measurement. (gungraun's attribute takes no doc
// comments.)
#[library_benchmark]
#[bench::json__strip_nulls__towerkit__10KB(setup = strip_towerkit, args = (10_000))]
#[bench::json__strip_nulls__towerkit__1MB(setup = strip_towerkit, args = (1_000_000))]
#[bench::json__strip_nulls__serde_value__10KB(setup = strip_serde_value, args = (10_000))]
#[bench::json__strip_nulls__serde_value__1MB(setup = strip_serde_value, args = (1_000_000))]
#[bench::json__strip_nulls__sonic_rs__10KB(setup = strip_sonic_rs, args = (10_000))]
#[bench::json__strip_nulls__sonic_rs__1MB(setup = strip_sonic_rs, args = (1_000_000))]
#[bench::json__fields__towerkit__1MB(setup = fields_towerkit)]
#[bench::json__fields__serde_value__1MB(setup = fields_serde_value)]
#[bench::json__paginate__towerkit__1MB(setup = paginate_towerkit)]
#[bench::json__paginate__serde_value__1MB(setup = paginate_serde_value)]
fn json(mut scenario: Scenario) -> Scenario {
    black_box((scenario.0)());
    scenario
}

// The same, for one request through a service, body read to the end.
#[library_benchmark]
#[bench::layer__none__passthrough(setup = layer_none)]
#[bench::layer__strip_nulls__passthrough(setup = layer_strip_nulls_passthrough)]
#[bench::layer__strip_nulls__json_1KB(setup = layer_strip_nulls_json)]
#[bench::layer__compress__passthrough(setup = layer_compress_passthrough)]
#[bench::layer__timing__passthrough(setup = layer_timing_passthrough)]
#[bench::layer__fields__passthrough(setup = layer_fields_passthrough)]
#[bench::layer__fields__json_1KB(setup = layer_fields_json)]
#[bench::layer__paginate__passthrough(setup = layer_paginate_passthrough)]
#[bench::layer__paginate__json_1KB(setup = layer_paginate_json)]
#[bench::layer__cache__passthrough(setup = layer_cache_passthrough)]
#[bench::layer__cache__hit(setup = layer_cache_hit)]
#[bench::layer__etag__json_10KB(setup = layer_etag_json)]
#[bench::layer__etag__not_modified(setup = layer_etag_not_modified)]
#[bench::stack__full__hit(setup = stack_full_hit)]
#[bench::stack__example__hit(setup = stack_example_hit)]
fn layer(mut scenario: Scenario) -> Scenario {
    black_box((scenario.0)());
    scenario
}

// Compression of a 100 KB JSON body, towerkit's defaults against tower-http's.
#[library_benchmark]
#[bench::compress__gzip__100KB__towerkit(setup = compress_towerkit, args = ("gzip"))]
#[bench::compress__gzip__100KB__tower_http_default(setup = compress_tower_http, args = ("gzip"))]
#[bench::compress__br__100KB__towerkit(setup = compress_towerkit, args = ("br"))]
#[bench::compress__br__100KB__tower_http_default(setup = compress_tower_http, args = ("br"))]
#[bench::compress__zstd__100KB__towerkit(setup = compress_towerkit, args = ("zstd"))]
#[bench::compress__zstd__100KB__tower_http_default(setup = compress_tower_http, args = ("zstd"))]
fn compress(mut scenario: Scenario) -> Scenario {
    black_box((scenario.0)());
    scenario
}

library_benchmark_group!(name = json_transforms, benchmarks = [json]);
library_benchmark_group!(name = layers, benchmarks = [layer]);
library_benchmark_group!(name = compression, benchmarks = [compress]);

main!(
    // Only instruction counts are used: the cache simulation would slow every run down.
    config = LibraryBenchmarkConfig::default().tool(Callgrind::with_args(["--cache-sim=no"]));
    library_benchmark_groups = json_transforms, layers, compression
);

// JSON transforms on the corpus, as in `benches/json.rs`.

fn strip_towerkit(size: usize) -> Scenario {
    let input = corpus(size);
    let mut out = Vec::with_capacity(input.len());
    let options = StripOptions::new();
    Scenario::new(move || {
        out.clear();
        strip_nulls(&input, &mut out, &options).expect("corpus is JSON");
        out.len()
    })
}

fn strip_serde_value(size: usize) -> Scenario {
    let input = corpus(size);
    let mut out = Vec::with_capacity(input.len());
    Scenario::new(move || {
        out.clear();
        strip_with_serde_value(&input, &mut out);
        out.len()
    })
}

fn strip_sonic_rs(size: usize) -> Scenario {
    let input = corpus(size);
    let mut out = Vec::with_capacity(input.len());
    Scenario::new(move || {
        out.clear();
        strip_with_sonic(&input, &mut out);
        out.len()
    })
}

// Projection and pagination, as in `benches/paginate.rs` (same selection, same page).

fn fields_towerkit() -> Scenario {
    let input = corpus(1_000_000);
    let selection = Selection::parse(FIELDS).expect("valid fields");
    let mut out = Vec::with_capacity(input.len());
    Scenario::new(move || {
        out.clear();
        project(&input, &mut out, &selection, None).expect("corpus is JSON");
        out.len()
    })
}

fn fields_serde_value() -> Scenario {
    let input = corpus(1_000_000);
    let mut out = Vec::with_capacity(input.len());
    Scenario::new(move || {
        out.clear();
        project_with_serde_value(&input, &mut out);
        out.len()
    })
}

fn paginate_towerkit() -> Scenario {
    let input = corpus_of(5_000);
    let request = Request::get("/products?page=3&limit=50")
        .body(())
        .expect("request");
    let pagination =
        Pagination::from_request(&request, &PaginationConfig::default()).expect("valid page");
    let root = JsonPointer::root();
    let mut out = Vec::with_capacity(input.len());
    Scenario::new(move || {
        out.clear();
        paginate(&input, &mut out, &pagination, &root).expect("corpus is JSON");
        out.len()
    })
}

fn paginate_serde_value() -> Scenario {
    let input = corpus_of(5_000);
    let mut out = Vec::with_capacity(input.len());
    Scenario::new(move || {
        out.clear();
        paginate_with_serde_value(&input, &mut out, 3, 50);
        out.len()
    })
}

// Services, as in `benches/layers.rs` and `benches/stack.rs` (the same functions).

fn layer_none() -> Scenario {
    serve(services::none(), plain_get)
}

fn layer_strip_nulls_passthrough() -> Scenario {
    serve(services::strip_nulls_passthrough(), plain_get)
}

fn layer_strip_nulls_json() -> Scenario {
    serve(services::strip_nulls_json(), plain_get)
}

fn layer_compress_passthrough() -> Scenario {
    serve(services::compress_passthrough(), plain_get)
}

fn layer_timing_passthrough() -> Scenario {
    serve(services::timing_passthrough(), plain_get)
}

fn layer_fields_passthrough() -> Scenario {
    serve(services::fields(), plain_get)
}

fn layer_fields_json() -> Scenario {
    serve(services::fields(), services::fields_get)
}

fn layer_paginate_passthrough() -> Scenario {
    serve(services::paginate_passthrough(), plain_get)
}

fn layer_paginate_json() -> Scenario {
    serve(services::paginate_json(), services::page_get)
}

fn layer_cache_passthrough() -> Scenario {
    serve(services::cache_passthrough(), services::no_store_get)
}

fn layer_cache_hit() -> Scenario {
    // The warm-up calls store the response; the measured call is a hit.
    serve(services::cache_hit(), plain_get)
}

fn layer_etag_json() -> Scenario {
    serve(services::etag(), plain_get)
}

fn layer_etag_not_modified() -> Scenario {
    serve(services::etag(), services::not_modified_get)
}

fn stack_full_hit() -> Scenario {
    // The warm-up calls store the response; the measured call is a hit.
    serve(services::full_stack(), services::stack_get)
}

fn stack_example_hit() -> Scenario {
    // The warm-up calls store the response; the measured call is a hit.
    serve(services::example_stack(), services::example_get)
}

fn compress_towerkit(codec: &'static str) -> Scenario {
    let service = CompressionLayer::new().layer(fixed_service(
        Bytes::from(corpus(100_000)),
        "application/json",
    ));
    serve(service, move || accepting(codec))
}

fn compress_tower_http(codec: &'static str) -> Scenario {
    let service = tower_http::compression::CompressionLayer::new().layer(fixed_service(
        Bytes::from(corpus(100_000)),
        "application/json",
    ));
    serve(service, move || accepting(codec))
}

fn accepting(codec: &'static str) -> Request<()> {
    Request::get("/")
        .header("accept-encoding", codec)
        .body(())
        .expect("request")
}

/// A scenario calling `service` with a fresh request on a current-thread runtime, reading
/// the body to the end, as `towerkit_benches::bench_service` does for criterion.
fn serve<S, B>(service: S, request: impl Fn() -> Request<()> + 'static) -> Scenario
where
    S: Service<Request<()>, Response = http::Response<B>> + Clone + 'static,
    S::Error: std::fmt::Debug,
    B: http_body::Body,
    B::Error: std::fmt::Debug,
{
    install_metrics_recorder();
    let rt = runtime();
    Scenario::new(move || {
        rt.block_on(async {
            let response = service
                .clone()
                .oneshot(request())
                .await
                .expect("service call");
            response
                .into_body()
                .collect()
                .await
                .expect("body")
                .to_bytes()
                .len()
        })
    })
}
