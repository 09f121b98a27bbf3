//! `cache/refresh_ahead/hot_key`: what warming and refresh-ahead save a hot key under
//! steady load, against the same load without refresh-ahead, measured in the same run.
//!
//! Each round runs twice, interleaved: refresh-ahead on ([`FRACTION`] of the lifetime) and
//! off (the reference). A run builds a `CacheLayer` over a `MemoryStore` in front of an
//! origin that takes [`ORIGIN_TIME`] and answers `max-age` [`LIFETIME`]; warms [`ROUTES`]
//! routes with `CacheHandle::warm` and sends each one request (a warmed route's first
//! request should be a hit); then [`CLIENTS`] clients ask for one hot key every
//! [`INTERVAL`] for [`RUN_TIME`], across several expiries of its lifetime, counting the
//! responses that were not hits (client-visible misses) and the origin calls.
//!
//! The target (issue 18): no client-visible miss with refresh-ahead on, and every warmed
//! route's first request a hit. The bench reports whether it is met and never fails on it.
//! Like `collapse`, it is a `harness = false` bench that prints its figures and, under
//! `cargo xtask bench`, writes them where xtask records them. Arguments: as `collapse`
//! (`--bench`, a filter, `--sample-size N` rounds, `--list`); without `--bench` one round
//! runs as a check.

use std::convert::Infallible;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use axum::body::Body;
use bytes::Bytes;
use http::{Request, Response};
use http_body_util::{BodyExt, Full};
use serde_json::json;
use tower::{Layer, ServiceExt, service_fn};
use towerkit_benches::custom::Options;
use towerkit_benches::{install_metrics_recorder, runtime};
use towerkit_cache::{CacheLayer, MemoryStore};

const ID: &str = "cache/refresh_ahead/hot_key";
/// The hot key's freshness lifetime (`max-age`).
const LIFETIME: Duration = Duration::from_secs(1);
/// The last part of the lifetime in which a hit refreshes the entry.
const FRACTION: f64 = 0.25;
/// How long the clients send: three expiries of the lifetime.
const RUN_TIME: Duration = Duration::from_millis(3_300);
const CLIENTS: usize = 4;
/// Each client's pause between requests.
const INTERVAL: Duration = Duration::from_millis(10);
/// How long the origin takes to answer.
const ORIGIN_TIME: Duration = Duration::from_millis(20);
/// Routes warmed before the load.
const ROUTES: usize = 8;
const ROUNDS: usize = 3;

fn main() {
    let options = Options::parse(std::env::args().skip(1), ROUNDS);
    if !options.selects(ID) {
        return;
    }
    install_metrics_recorder();
    let rt = runtime();
    let started = Instant::now();
    let mut on = Vec::new();
    let mut off = Vec::new();
    for _ in 0..options.rounds_to_run() {
        on.push(rt.block_on(run(Some(FRACTION))));
        off.push(rt.block_on(run(None)));
    }
    let report = Report { on, off };
    println!("{}", report.text(started.elapsed()));
    options.write_result(ID, &report.json());
}

/// One run's figures.
#[derive(Debug, Clone, Copy)]
struct Run {
    /// Warmed routes whose first request was a hit.
    warm_hits: usize,
    /// Responses to the hot key that were not hits.
    misses: usize,
    /// Responses to the hot key.
    requests: usize,
    /// Origin calls for the hot key (the warm included).
    origin_calls: usize,
}

async fn run(refresh_ahead: Option<f64>) -> Run {
    let builder = CacheLayer::builder(MemoryStore::new(16 << 20));
    let layer = match refresh_ahead {
        Some(fraction) => builder.refresh_ahead(fraction),
        None => builder,
    }
    .build()
    .expect("a valid cache configuration");
    let hot_calls = Arc::new(AtomicUsize::new(0));
    let calls = hot_calls.clone();
    let service = layer.layer(service_fn(move |request: Request<Body>| {
        let calls = calls.clone();
        async move {
            if request.uri().path() == "/hot" {
                calls.fetch_add(1, Ordering::SeqCst);
            }
            tokio::time::sleep(ORIGIN_TIME).await;
            let response = Response::builder()
                .header("content-type", "application/json")
                .header("cache-control", format!("max-age={}", LIFETIME.as_secs()))
                .body(Full::new(Bytes::from_static(
                    br#"{"id":1,"name":"Teapot"}"#,
                )))
                .expect("response");
            Ok::<_, Infallible>(response)
        }
    }));
    let routes: Vec<String> = (0..ROUTES).map(|n| format!("/route/{n}")).collect();
    let warmed = routes.iter().map(String::as_str).chain(["/hot"]).map(get);
    let report = layer.handle().warm(&service, warmed, 4).await;
    if !report.is_complete() {
        println!("{ID}: the warm did not complete: {report}");
    }
    let mut warm_hits = 0;
    for route in &routes {
        if is_hit(&service, route).await {
            warm_hits += 1;
        }
    }
    let misses = Arc::new(AtomicUsize::new(0));
    let requests = Arc::new(AtomicUsize::new(0));
    let until = tokio::time::Instant::now() + RUN_TIME;
    let clients: Vec<_> = (0..CLIENTS)
        .map(|_| {
            let (service, misses, requests) = (service.clone(), misses.clone(), requests.clone());
            tokio::spawn(async move {
                while tokio::time::Instant::now() < until {
                    if !is_hit(&service, "/hot").await {
                        misses.fetch_add(1, Ordering::SeqCst);
                    }
                    requests.fetch_add(1, Ordering::SeqCst);
                    tokio::time::sleep(INTERVAL).await;
                }
            })
        })
        .collect();
    for client in clients {
        let _ = client.await;
    }
    Run {
        warm_hits,
        misses: misses.load(Ordering::SeqCst),
        requests: requests.load(Ordering::SeqCst),
        origin_calls: hot_calls.load(Ordering::SeqCst),
    }
}

fn get(uri: &str) -> Request<Body> {
    Request::get(uri).body(Body::empty()).expect("request")
}

/// Sends `GET uri` and reads the body; whether `Cache-Status` says hit.
async fn is_hit<S, B>(service: &S, uri: &str) -> bool
where
    S: tower::Service<Request<Body>, Response = Response<B>> + Clone,
    S::Error: std::fmt::Debug,
    B: http_body::Body,
{
    let response = service.clone().oneshot(get(uri)).await.expect("infallible");
    let hit = response
        .headers()
        .get("cache-status")
        .and_then(|value| value.to_str().ok())
        .is_some_and(|value| value.contains("; hit"));
    let _ = response.into_body().collect().await;
    hit
}

/// The runs with refresh-ahead on and off.
#[derive(Debug)]
struct Report {
    on: Vec<Run>,
    off: Vec<Run>,
}

/// Sums of a field over runs.
fn total(runs: &[Run], field: impl Fn(&Run) -> usize) -> usize {
    runs.iter().map(field).sum()
}

impl Report {
    fn met(&self) -> bool {
        total(&self.on, |run| run.misses) == 0
            && self
                .on
                .iter()
                .chain(&self.off)
                .all(|run| run.warm_hits == ROUTES)
    }

    fn verdict(&self) -> String {
        let target = "target (0 client-visible misses with refresh-ahead, every warmed route's first request a hit)";
        if self.met() {
            format!("{target}: met")
        } else {
            format!("{target}: not met")
        }
    }

    fn line(name: &str, runs: &[Run]) -> String {
        format!(
            "refresh-ahead {name}: {} misses in {} requests, {} origin calls, warmed routes hit first {}/{}",
            total(runs, |run| run.misses),
            total(runs, |run| run.requests),
            total(runs, |run| run.origin_calls),
            total(runs, |run| run.warm_hits),
            ROUTES * runs.len(),
        )
    }

    fn text(&self, took: Duration) -> String {
        format!(
            "{ID}: {CLIENTS} clients every {} ms on one key of max-age {} s for {:.1} s, origin {} ms, {} rounds ({:.1} s)\n\
             \x20 {}\n\
             \x20 {}\n\
             \x20 {}",
            INTERVAL.as_millis(),
            LIFETIME.as_secs(),
            RUN_TIME.as_secs_f64(),
            ORIGIN_TIME.as_millis(),
            self.on.len(),
            took.as_secs_f64(),
            Self::line(&format!("on ({FRACTION})"), &self.on),
            Self::line("off", &self.off),
            self.verdict(),
        )
    }

    /// The result file `cargo xtask bench` reads (see xtask's `bench/custom.rs`).
    fn json(&self) -> serde_json::Value {
        json!({
            "id": ID,
            "values": {
                "misses_refresh_ahead_on": total(&self.on, |run| run.misses),
                "misses_refresh_ahead_off": total(&self.off, |run| run.misses),
                "requests_per_setting": total(&self.on, |run| run.requests),
                "origin_calls_on": total(&self.on, |run| run.origin_calls),
                "origin_calls_off": total(&self.off, |run| run.origin_calls),
                "warmed_first_hits": total(&self.on, |run| run.warm_hits) + total(&self.off, |run| run.warm_hits),
                "warmed_routes": ROUTES * (self.on.len() + self.off.len()),
                "rounds": self.on.len(),
                "target_met": u8::from(self.met()),
            },
            "note": self.verdict(),
        })
    }
}
