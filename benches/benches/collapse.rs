//! `cache/collapse/4_instances`: what a cold key costs when four instances of a service,
//! sharing one Redis, are asked for it at once.
//!
//! Four instances, each a `CacheLayer` over a `RedisStore` of its own (its own connection,
//! on its own thread with its own Tokio runtime, as separate processes would be), share
//! one origin that sleeps [`ORIGIN_TIME`] and counts its calls. Each round, 25 concurrent
//! requests per instance ask for one new (cold) key, all released together. Per round it
//! records the origin calls, and for every request its latency minus the origin's time:
//! the wait the cache added on top of the one origin call a request cannot avoid.
//!
//! The target (issue 16): one origin call per round, cluster-wide, and a p99 added wait of
//! at most 10 ms. The bench reports whether it is met and never fails on it. It is not a
//! time-per-iteration figure, so it is a `harness = false` bench of its own rather than a
//! criterion one: it prints its results and, under `cargo xtask bench` (which sets
//! `TOWERKIT_BENCH_RESULTS`), writes them where xtask records them.
//!
//! Arguments, as `cargo bench` passes them: `--bench` (without it, as under `cargo test
//! --benches`, one round runs as a check); a filter, which selects this bench when its id
//! contains it; `--sample-size N`, the number of rounds (default [`ROUNDS`]; `cargo xtask
//! bench --quick` passes 10); `--list`. Redis comes from `REDIS_URL` (default
//! `redis://127.0.0.1:6379`), under a fresh key prefix purged afterwards; without Redis the
//! bench is skipped with a note.

use std::convert::Infallible;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Barrier, mpsc};
use std::time::{Duration, Instant};

use axum::body::Body;
use bytes::Bytes;
use http::{Request, Response};
use http_body_util::{BodyExt, Full};
use serde_json::json;
use tower::{Layer, ServiceExt, service_fn};
use towerkit_benches::custom::{Options, ms};
use towerkit_benches::{install_metrics_recorder, runtime};
use towerkit_cache::{CacheLayer, RedisStore, Store};

const ID: &str = "cache/collapse/4_instances";
const INSTANCES: usize = 4;
const REQUESTS_PER_INSTANCE: usize = 25;
/// How long the origin takes to answer.
const ORIGIN_TIME: Duration = Duration::from_millis(100);
/// Rounds measured by default (each one cold key); one more, first, warms the connections.
const ROUNDS: usize = 30;
/// The target: at most this added wait at p99 ...
const TARGET_P99: Duration = Duration::from_millis(10);
/// ... and this many origin calls per round.
const TARGET_ORIGIN_CALLS: usize = 1;

fn main() {
    let options = Options::parse(std::env::args().skip(1), ROUNDS);
    if !options.selects(ID) {
        return;
    }
    let rounds = options.rounds_to_run();
    install_metrics_recorder();
    let url = std::env::var("REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379".to_owned());
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos());
    let prefix = format!("towerkit-bench-collapse:{}:{nanos}:", std::process::id());
    if let Err(why) = reachable(&url, &prefix) {
        println!("{ID} skipped: {why}");
        return;
    }

    let started = Instant::now();
    let measured = measure(&url, &prefix, rounds);
    purge(&url, &prefix);
    let report = match measured {
        Ok(rounds) => Report::new(&rounds),
        Err(why) => {
            println!("{ID} failed to run: {why}");
            std::process::exit(1);
        }
    };
    println!("{}", report.text(started.elapsed()));
    options.write_result(ID, &report.json());
}

/// One measured round: the origin calls it made and each request's added wait.
#[derive(Debug)]
struct Round {
    origin_calls: usize,
    added_waits: Vec<Duration>,
}

/// Checks that Redis answers, through the store the bench uses.
fn reachable(url: &str, prefix: &str) -> Result<(), String> {
    let rt = runtime();
    rt.block_on(async {
        let store = RedisStore::builder(url)
            .prefix(prefix)
            .connect()
            .await
            .map_err(|e| e.to_string())?;
        store
            .get("probe")
            .await
            .map(|_| ())
            .map_err(|e| format!("Redis at {url} does not answer: {e}"))
    })
}

fn purge(url: &str, prefix: &str) {
    let rt = runtime();
    let purged = rt.block_on(async {
        let store = RedisStore::builder(url)
            .prefix(prefix)
            .timeout(Duration::from_secs(5))
            .connect()
            .await
            .map_err(|e| e.to_string())?;
        CacheLayer::new(store)
            .handle()
            .purge()
            .await
            .map_err(|e| e.to_string())
    });
    if let Err(error) = purged {
        println!("{ID}: could not purge the bench's Redis prefix {prefix}: {error}");
    }
}

/// Runs a warm-up round, then `rounds` measured ones, and returns the measured ones.
fn measure(url: &str, prefix: &str, rounds: usize) -> Result<Vec<Round>, String> {
    let origin_calls = Arc::new(AtomicUsize::new(0));
    // The instances and the coordinator (this thread) meet before and after every round.
    let start = Arc::new(Barrier::new(INSTANCES + 1));
    let done = Arc::new(Barrier::new(INSTANCES + 1));
    let (waits_tx, waits_rx) = mpsc::channel::<Result<Vec<Duration>, String>>();
    // Instances done with their requests, over all rounds.
    let finished = Arc::new(AtomicUsize::new(0));
    let mut threads = Vec::new();
    for instance in 0..INSTANCES {
        let (url, prefix) = (url.to_owned(), prefix.to_owned());
        let (origin_calls, start, done) = (origin_calls.clone(), start.clone(), done.clone());
        let finished = finished.clone();
        let waits_tx = waits_tx.clone();
        let thread = std::thread::Builder::new()
            .name(format!("instance-{instance}"))
            .spawn(move || {
                let rt = runtime();
                let layer = rt.block_on(async {
                    let store = RedisStore::builder(url).prefix(prefix).connect().await;
                    store.map(CacheLayer::new).map_err(|e| e.to_string())
                });
                for round in 0..=rounds {
                    start.wait();
                    let waits = match &layer {
                        // The runtime keeps running until every instance is done with the
                        // round, as a server's would: the leader's store write and lease
                        // release (spawned after its responses) wake the other instances.
                        Ok(layer) => Ok(rt.block_on(async {
                            let waits = one_round(layer, &origin_calls, round).await;
                            finished.fetch_add(1, Ordering::SeqCst);
                            while finished.load(Ordering::SeqCst) < INSTANCES * (round + 1) {
                                tokio::time::sleep(Duration::from_millis(1)).await;
                            }
                            waits
                        })),
                        Err(error) => {
                            finished.fetch_add(1, Ordering::SeqCst);
                            Err(error.clone())
                        }
                    };
                    let _ = waits_tx.send(waits);
                    done.wait();
                }
            })
            .map_err(|e| format!("cannot start an instance thread: {e}"))?;
        threads.push(thread);
    }
    drop(waits_tx);
    let mut measured = Vec::with_capacity(rounds);
    let mut failure = None;
    for round in 0..=rounds {
        let before = origin_calls.load(Ordering::SeqCst);
        start.wait();
        let mut added_waits = Vec::with_capacity(INSTANCES * REQUESTS_PER_INSTANCE);
        for _ in 0..INSTANCES {
            match waits_rx.recv() {
                Ok(Ok(waits)) => added_waits.extend(waits),
                Ok(Err(error)) => failure = Some(error),
                Err(_) => failure = Some("an instance thread ended early".to_owned()),
            }
        }
        done.wait();
        let origin_calls = origin_calls.load(Ordering::SeqCst) - before;
        // Round 0 warms the connections and is not reported.
        if round > 0 {
            measured.push(Round {
                origin_calls,
                added_waits,
            });
        }
    }
    for thread in threads {
        let _ = thread.join();
    }
    match failure {
        Some(error) => Err(error),
        None => Ok(measured),
    }
}

/// One instance's part of a round: its requests for the round's key, all at once; each
/// one's latency less the origin's time.
async fn one_round(
    layer: &CacheLayer,
    origin_calls: &Arc<AtomicUsize>,
    round: usize,
) -> Vec<Duration> {
    let calls = origin_calls.clone();
    let service = layer.layer(service_fn(move |_request: Request<Body>| {
        let calls = calls.clone();
        async move {
            calls.fetch_add(1, Ordering::SeqCst);
            tokio::time::sleep(ORIGIN_TIME).await;
            let response = Response::builder()
                .header("content-type", "application/json")
                .header("cache-control", "max-age=60")
                .body(Full::new(Bytes::from_static(
                    br#"{"id":1,"name":"Teapot"}"#,
                )))
                .expect("response");
            Ok::<_, Infallible>(response)
        }
    }));
    let path = format!("/collapse/{round}");
    let requests: Vec<_> = (0..REQUESTS_PER_INSTANCE)
        .map(|_| {
            let service = service.clone();
            let request = Request::get(path.as_str())
                .body(Body::empty())
                .expect("request");
            tokio::spawn(async move {
                let sent = Instant::now();
                let response = service.oneshot(request).await.expect("infallible");
                let _ = response.into_body().collect().await;
                sent.elapsed().saturating_sub(ORIGIN_TIME)
            })
        })
        .collect();
    let mut waits = Vec::with_capacity(REQUESTS_PER_INSTANCE);
    for request in requests {
        if let Ok(wait) = request.await {
            waits.push(wait);
        }
    }
    waits
}

/// The figures over all rounds.
#[derive(Debug)]
struct Report {
    rounds: usize,
    calls_mean: f64,
    calls_max: usize,
    p50: Duration,
    p99: Duration,
    max: Duration,
}

impl Report {
    fn new(rounds: &[Round]) -> Self {
        let mut waits: Vec<Duration> = rounds
            .iter()
            .flat_map(|round| round.added_waits.iter().copied())
            .collect();
        waits.sort_unstable();
        let total_calls: usize = rounds.iter().map(|round| round.origin_calls).sum();
        Report {
            rounds: rounds.len(),
            calls_mean: total_calls as f64 / rounds.len().max(1) as f64,
            calls_max: rounds
                .iter()
                .map(|round| round.origin_calls)
                .max()
                .unwrap_or(0),
            p50: percentile(&waits, 50.0),
            p99: percentile(&waits, 99.0),
            max: waits.last().copied().unwrap_or_default(),
        }
    }

    fn met(&self) -> bool {
        self.calls_max <= TARGET_ORIGIN_CALLS && self.p99 <= TARGET_P99
    }

    fn verdict(&self) -> String {
        let mut missed = Vec::new();
        if self.calls_max > TARGET_ORIGIN_CALLS {
            missed.push(format!(
                "{:.2} origin calls per round (max {}), not {TARGET_ORIGIN_CALLS}",
                self.calls_mean, self.calls_max
            ));
        }
        if self.p99 > TARGET_P99 {
            missed.push(format!(
                "p99 added wait {}, over {}",
                ms(self.p99),
                ms(TARGET_P99)
            ));
        }
        let target = format!(
            "target ({TARGET_ORIGIN_CALLS} origin call per round, p99 added wait <= {})",
            ms(TARGET_P99)
        );
        if missed.is_empty() {
            format!("{target}: met")
        } else {
            format!("{target}: not met: {}", missed.join("; "))
        }
    }

    fn text(&self, took: Duration) -> String {
        format!(
            "{ID}: {INSTANCES} instances x {REQUESTS_PER_INSTANCE} concurrent requests for one cold key, origin {}, {} rounds ({:.1} s)\n\
             \x20 origin calls per round: mean {:.2}, max {}\n\
             \x20 added wait over the origin: p50 {}, p99 {}, max {}\n\
             \x20 {}",
            ms(ORIGIN_TIME),
            self.rounds,
            took.as_secs_f64(),
            self.calls_mean,
            self.calls_max,
            ms(self.p50),
            ms(self.p99),
            ms(self.max),
            self.verdict(),
        )
    }

    /// The result file `cargo xtask bench` reads (see xtask's `bench/custom.rs`).
    fn json(&self) -> serde_json::Value {
        let millis = |d: Duration| (d.as_secs_f64() * 1e6).round() / 1e3;
        json!({
            "id": ID,
            "values": {
                "origin_calls_per_round_mean": self.calls_mean,
                "origin_calls_per_round_max": self.calls_max,
                "added_wait_p50_ms": millis(self.p50),
                "added_wait_p99_ms": millis(self.p99),
                "added_wait_max_ms": millis(self.max),
                "rounds": self.rounds,
                "target_met": u8::from(self.met()),
            },
            "note": self.verdict(),
        })
    }
}

/// The nearest-rank percentile of sorted `values`.
fn percentile(sorted: &[Duration], percent: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    let rank = (percent / 100.0 * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}
