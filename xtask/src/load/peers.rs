//! `cargo xtask load peers [--duration D] [--rounds N] [--connections N]`: the example cache
//! proxy (`examples/cache-proxy`) next to Varnish and nginx, over HTTP, on cached hits of
//! one object; run by users and reviewers, never in CI.
//!
//! One origin ([`origin`]) serves the same ~8.7 KB JSON object with
//! `Cache-Control: public, max-age=3600`: the body of the example service's list page
//! [`SERVICE_PATH`], so that every target sends the same bytes. In front of it, each on a free port of
//! 127.0.0.1: the example cache proxy (memory store), Varnish (the built-in VCL with one
//! backend, as `-b` gives; malloc storage; its default thread pools) and nginx
//! (`proxy_cache`, `worker_processes auto`), each free to use every core. nginx also serves
//! the object as a static file, for reference, and the example service (all layers,
//! started as `load baseline` does) serves its cached list page: all five are measured in
//! the same run. Varnish and nginx are installed with `apt-get` when missing.
//!
//! wrk (32 connections, 2 threads) first warms each target up, unmeasured; then it runs
//! N interleaved rounds: round k runs every target once, for `--duration` each, the order
//! rotating by one each round, so a slow spell of a shared machine falls on every target
//! alike. Per target the report gives the median req/s, p99 and server CPU time per
//! request ([`cpu`]) across rounds, and then the ratios the issue sets targets for: proxy/Varnish and proxy/nginx at least
//! 1.5, service/proxy at least 0.7. The origin counts the requests it answers: the run
//! fails when any reached it during the rounds (a tier that did not answer from its cache
//! makes the comparison meaningless) or when any response failed; targets not reached are
//! reported, not failed. Writes `target/xtask-load/peers.{json,md}`.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::Path;
use std::process::Command;
use std::time::Duration;

use serde_json::{Value, json};

use super::{Figures, Instance, ensure_wrk, parse_duration, server_figures, wrk_json};
use crate::services::Services;
use crate::{Result, nginx, target_dir, varnish};

mod cpu;
mod origin;
mod tiers;

use origin::Origin;
use tiers::{Nginx, Proxy};

/// Seconds each target runs per round without `--duration`.
const DEFAULT_SECONDS: u64 = 5;
/// Rounds without `--rounds`.
const DEFAULT_ROUNDS: u32 = 3;
/// Connections without `--connections`: as in the issue's hand measurement.
const DEFAULT_CONNECTIONS: u32 = 32;
/// Seconds of unmeasured load on each target before the first round.
const WARM_UP_SECONDS: u64 = 2;
/// Bounds on a run: at most 20 rounds of 60 s per target.
const MAX_ROUNDS: u32 = 20;
const MAX_SECONDS: u64 = 60;

/// The example service's list page that is measured (a cache hit after the warm-up), and
/// whose body the origin serves: 35 products make about 8.7 KB, the size of the object the
/// issue's hand measurement used.
const SERVICE_PATH: &str = "/api/products?page=1&limit=35";
/// The object's path on the origin and on each cache in front of it.
const OBJECT_PATH: &str = "/object.json";

/// A wrk script that only reports: one `WRK_JSON` line, as the mix script's, plus the bytes
/// read (so the report shows the size of each target's responses).
const REPORT_SCRIPT: &str = r#"
function done(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    'WRK_JSON {"requests":%d,"duration_us":%d,"bytes":%d,"connect_errors":%d,"read_errors":%d,"write_errors":%d,"status_errors":%d,"timeouts":%d,"p50_us":%d,"p95_us":%d,"p99_us":%d,"max_us":%d}\n',
    summary.requests, summary.duration, summary.bytes, e.connect, e.read, e.write, e.status, e.timeout,
    latency:percentile(50), latency:percentile(95), latency:percentile(99), latency.max))
end
"#;

/// What the command line asks of a run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct PeersOptions {
    /// Seconds each target runs per round (`--duration`).
    pub(crate) seconds: u64,
    /// `--rounds`.
    pub(crate) rounds: u32,
    /// wrk's connections (`--connections`).
    pub(crate) connections: u32,
}

impl PeersOptions {
    /// `[--duration D] [--rounds N] [--connections N]`.
    pub(crate) fn parse(args: &[String]) -> Result<PeersOptions> {
        let mut options = PeersOptions {
            seconds: DEFAULT_SECONDS,
            rounds: DEFAULT_ROUNDS,
            connections: DEFAULT_CONNECTIONS,
        };
        let mut args = args.iter();
        while let Some(arg) = args.next() {
            let mut value = || {
                args.next()
                    .ok_or_else(|| format!("{arg} needs a value"))
                    .map(String::as_str)
            };
            match arg.as_str() {
                "--duration" => {
                    let text = value()?;
                    options.seconds = parse_duration(text)?;
                    if !(1..=MAX_SECONDS).contains(&options.seconds) {
                        return Err(format!(
                            "--duration is per target and round: 1 s to {MAX_SECONDS} s, got {text:?}"
                        ));
                    }
                }
                "--rounds" => {
                    let text = value()?;
                    options.rounds = text
                        .parse()
                        .ok()
                        .filter(|n| (1..=MAX_ROUNDS).contains(n))
                        .ok_or(format!(
                            "--rounds takes a number from 1 to {MAX_ROUNDS}, got {text:?}"
                        ))?;
                }
                "--connections" => {
                    let text = value()?;
                    options.connections = text
                        .parse()
                        .ok()
                        .filter(|n| (1..=1000).contains(n))
                        .ok_or(format!(
                            "--connections takes a number from 1 to 1000, got {text:?}"
                        ))?;
                }
                other => {
                    return Err(format!(
                        "unknown argument {other:?}: load peers [--duration 5s] [--rounds 3] [--connections 32]"
                    ));
                }
            }
        }
        Ok(options)
    }

    fn wrk_threads(&self) -> u32 {
        self.connections.min(2)
    }
}

/// What is measured.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Target {
    Proxy,
    Varnish,
    Nginx,
    Service,
    NginxStatic,
}

impl Target {
    /// Every target, in the first round's order.
    pub(crate) const ALL: [Target; 5] = [
        Target::Proxy,
        Target::Varnish,
        Target::Nginx,
        Target::Service,
        Target::NginxStatic,
    ];

    /// The name in the JSON report.
    pub(crate) fn key(self) -> &'static str {
        match self {
            Target::Proxy => "proxy",
            Target::Varnish => "varnish",
            Target::Nginx => "nginx",
            Target::Service => "service",
            Target::NginxStatic => "nginx-static",
        }
    }

    /// The name for readers.
    pub(crate) fn label(self) -> &'static str {
        match self {
            Target::Proxy => "example cache proxy (memory store)",
            Target::Varnish => "Varnish (built-in VCL, malloc)",
            Target::Nginx => "nginx proxy_cache",
            Target::Service => "example service, cached list page (all layers)",
            Target::NginxStatic => "nginx serving the file itself (reference)",
        }
    }
}

/// The issue's targets: `(numerator, denominator, lowest ratio of their median req/s)`.
pub(crate) const TARGET_RATIOS: [(Target, Target, f64); 3] = [
    (Target::Proxy, Target::Varnish, 1.5),
    (Target::Proxy, Target::Nginx, 1.5),
    (Target::Service, Target::Proxy, 0.7),
];

/// One target's figures in one round.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub(crate) struct Sample {
    pub(crate) rps: f64,
    pub(crate) p50_ms: f64,
    pub(crate) p99_ms: f64,
    pub(crate) errors: f64,
    /// Bytes read per response, head and body.
    pub(crate) bytes_per_response: f64,
    /// The server's CPU time (all its processes, user and system) per response, in µs.
    pub(crate) cpu_us_per_request: Option<f64>,
}

/// The indexes into [`Target::ALL`] in the order round `round` (from 0) runs them: each
/// round starts one further along.
pub(crate) fn rotation(round: usize, count: usize) -> Vec<usize> {
    (0..count).map(|i| (round + i) % count).collect()
}

/// The median (the mean of the middle two for an even count); 0 for none.
pub(crate) fn median(values: &[f64]) -> f64 {
    let mut sorted = values.to_vec();
    sorted.sort_by(f64::total_cmp);
    match sorted.len() {
        0 => 0.0,
        n if n % 2 == 1 => sorted[n / 2],
        n => (sorted[n / 2 - 1] + sorted[n / 2]) / 2.0,
    }
}

/// Each target's median req/s and p99 across rounds, the issue's ratios and whether each
/// was reached, as the JSON report (without the run's context, which the caller adds).
pub(crate) fn figures(samples: &[(Target, Vec<Sample>)]) -> Value {
    let of = |target: Target| samples.iter().find(|(t, _)| *t == target).map(|(_, s)| s);
    let median_of = |target, field: fn(&Sample) -> f64| {
        of(target).map(|samples| median(&samples.iter().map(field).collect::<Vec<_>>()))
    };
    let targets: Vec<Value> = samples
        .iter()
        .map(|(target, rounds)| {
            json!({
                "target": target.key(),
                "label": target.label(),
                "median_rps": median_of(*target, |s| s.rps),
                "median_p99_ms": median_of(*target, |s| s.p99_ms),
                "median_p50_ms": median_of(*target, |s| s.p50_ms),
                "bytes_per_response": median_of(*target, |s| s.bytes_per_response),
                "cpu_us_per_request": rounds.iter().all(|s| s.cpu_us_per_request.is_some()).then(|| median_of(*target, |s| s.cpu_us_per_request.unwrap_or(0.0))).flatten(),
                "errors": rounds.iter().map(|s| s.errors).sum::<f64>(),
                "rounds": rounds.iter().map(|s| json!({"rps": s.rps, "p50_ms": s.p50_ms, "p99_ms": s.p99_ms, "errors": s.errors, "cpu_us_per_request": s.cpu_us_per_request})).collect::<Vec<_>>(),
            })
        })
        .collect();
    let ratios: Vec<Value> = TARGET_RATIOS
        .iter()
        .filter_map(|&(numerator, denominator, target)| {
            let top = median_of(numerator, |s| s.rps)?;
            let bottom = median_of(denominator, |s| s.rps).filter(|v| *v > 0.0)?;
            let value = top / bottom;
            // The same ratio from CPU time: requests per CPU second of the numerator over
            // those of the denominator, what req/s would show with a core to spare each.
            let cpu = |t| {
                of(t)
                    .filter(|samples| samples.iter().all(|s| s.cpu_us_per_request.is_some()))
                    .map(|samples| {
                        median(
                            &samples
                                .iter()
                                .filter_map(|s| s.cpu_us_per_request)
                                .collect::<Vec<_>>(),
                        )
                    })
                    .filter(|us| *us > 0.0)
            };
            let by_cpu = cpu(denominator).zip(cpu(numerator)).map(|(d, n)| d / n);
            Some(json!({
                "name": format!("{} / {}", numerator.key(), denominator.key()),
                "value": value,
                "target": target,
                "reached": value >= target,
                "by_cpu_per_request": by_cpu,
            }))
        })
        .collect();
    json!({"targets": targets, "ratios": ratios})
}

/// The Markdown report, from the JSON one.
pub(crate) fn markdown(report: &Value) -> String {
    let number = |v: &Value, digits: usize| {
        v.as_f64()
            .map(|x| format!("{x:.digits$}"))
            .unwrap_or_else(|| "-".to_owned())
    };
    let mut text = format!(
        "# Load scenario `peers`\n\n{}\n\n| target | req/s (median) | p99 ms (median) | p50 ms (median) | server CPU µs/request (median) | bytes/response | req/s per round | p99 ms per round |\n|---|---|---|---|---|---|---|---|\n",
        report["method"].as_str().unwrap_or("")
    );
    for target in report["targets"].as_array().into_iter().flatten() {
        let rounds = target["rounds"].as_array().cloned().unwrap_or_default();
        let per_round = |key: &str, digits| {
            rounds
                .iter()
                .map(|r| number(&r[key], digits))
                .collect::<Vec<_>>()
                .join(", ")
        };
        text.push_str(&format!(
            "| {} | {} | {} | {} | {} | {} | {} | {} |\n",
            target["label"].as_str().unwrap_or("?"),
            number(&target["median_rps"], 0),
            number(&target["median_p99_ms"], 2),
            number(&target["median_p50_ms"], 2),
            number(&target["cpu_us_per_request"], 1),
            number(&target["bytes_per_response"], 0),
            per_round("rps", 0),
            per_round("p99_ms", 2),
        ));
    }
    text.push_str(
        "\n| ratio of median req/s | value | target | verdict | the same from CPU per request |\n|---|---|---|---|---|\n",
    );
    for ratio in report["ratios"].as_array().into_iter().flatten() {
        let verdict = match ratio["reached"].as_bool() {
            Some(true) => "PASS",
            _ => "not reached",
        };
        text.push_str(&format!(
            "| {} | {} | >= {} | {verdict} | {} |\n",
            ratio["name"].as_str().unwrap_or("?"),
            number(&ratio["value"], 2),
            number(&ratio["target"], 1),
            number(&ratio["by_cpu_per_request"], 2),
        ));
    }
    if let Some(notes) = report["notes"].as_array() {
        text.push('\n');
        for note in notes.iter().filter_map(Value::as_str) {
            text.push_str(&format!("- {note}\n"));
        }
    }
    text
}

/// `cargo xtask load peers [ARGS]`.
pub(crate) fn run(args: &[String]) -> Result {
    let options = PeersOptions::parse(args)?;
    // The tools first: a missing one is installed (or fails) before anything is built.
    ensure_wrk()?;
    let varnishd = varnish::ensure()?;
    let nginx_binary = nginx::ensure()?;
    let services = Services::ensure()?;
    super::build_service()?;
    tiers::build_proxy()?;
    let dir = target_dir().join("xtask-load");
    std::fs::create_dir_all(&dir).map_err(|e| e.to_string())?;
    let script = dir.join("peers.lua");
    std::fs::write(&script, REPORT_SCRIPT).map_err(|e| e.to_string())?;

    // The service first: its list page is the object every cache serves, so that all
    // targets send the same bytes.
    let service = Instance::start(&services, "all", &[("CACHE_CAPACITY_MB", "64".to_owned())])?;
    let object = page_body(service.port, SERVICE_PATH)?;
    let origin = Origin::start(object.clone())?;
    let proxy = Proxy::start(origin.port())?;
    let varnish = towerkit_test_support::servers::Varnish::start(&format!(
        "vcl 4.1;\nbackend default {{ .host = \"127.0.0.1\"; .port = \"{}\"; }}\n",
        origin.port()
    ))
    .map_err(|e| format!("cannot start Varnish: {e}"))?;
    let nginx = Nginx::start(&nginx_binary, origin.port(), &object)?;
    let varnish_pid = cpu::find(&["varnishd", &format!("127.0.0.1:{}", varnish.port())]);
    let pid = |target: Target| match target {
        Target::Proxy => Some(proxy.pid()),
        Target::Varnish => varnish_pid,
        Target::Nginx | Target::NginxStatic => nginx.pid(),
        Target::Service => Some(service.child.id()),
    };
    let url = |target: Target| match target {
        Target::Proxy => format!("http://127.0.0.1:{}{OBJECT_PATH}", proxy.port()),
        Target::Varnish => format!("http://127.0.0.1:{}{OBJECT_PATH}", varnish.port()),
        Target::Nginx => format!("http://127.0.0.1:{}{OBJECT_PATH}", nginx.cache_port),
        Target::NginxStatic => format!("http://127.0.0.1:{}{OBJECT_PATH}", nginx.static_port),
        Target::Service => format!("http://127.0.0.1:{}{SERVICE_PATH}", service.port),
    };

    // Before any load of ours: what the rest of the machine is doing.
    let load_before = load_average();
    for target in Target::ALL {
        eprintln!(
            "xtask load peers: warming up {} ({WARM_UP_SECONDS} s)",
            target.label()
        );
        let warm = wrk_run(&script, &url(target), None, options, WARM_UP_SECONDS)?;
        if warm.errors > 0.0 || warm.rps <= 0.0 {
            return Err(format!(
                "{} failed during the warm-up ({} errors, {:.0} req/s)",
                target.label(),
                warm.errors,
                warm.rps
            ));
        }
    }
    let origin_before = origin.requests();
    let metrics_before = service.metrics()?;
    let mut samples: Vec<(Target, Vec<Sample>)> =
        Target::ALL.iter().map(|t| (*t, Vec::new())).collect();
    for round in 0..options.rounds as usize {
        for index in rotation(round, Target::ALL.len()) {
            let target = Target::ALL[index];
            let sample = wrk_run(&script, &url(target), pid(target), options, options.seconds)?;
            eprintln!(
                "xtask load peers: round {}/{}: {}: {:.0} req/s, p99 {:.2} ms",
                round + 1,
                options.rounds,
                target.label(),
                sample.rps,
                sample.p99_ms
            );
            samples[index].1.push(sample);
        }
    }
    let origin_during = origin.requests() - origin_before;
    let load_after = load_average();
    let service_figures = server_figures(&metrics_before, &service.metrics()?, 0);
    let service_hit_ratio = service_figures.cache_hit_ratio;

    let mut report = figures(&samples);
    let cores = std::thread::available_parallelism().map_or(0, |n| n.get());
    let versions = [
        ("varnish", version(&varnishd, "-V")),
        ("nginx", version(&nginx_binary, "-v")),
        ("wrk", version(Path::new("wrk"), "-v")),
    ];
    report["scenario"] = json!("peers");
    report["connections"] = json!(options.connections);
    report["wrk_threads"] = json!(options.wrk_threads());
    report["seconds_per_round"] = json!(options.seconds);
    report["rounds"] = json!(options.rounds);
    report["warm_up_seconds"] = json!(WARM_UP_SECONDS);
    report["cores"] = json!(cores);
    report["object_bytes"] = json!(object.len());
    report["origin_requests_during_rounds"] = json!(origin_during);
    report["load_average"] = json!({"before_rounds": load_before, "after_rounds": load_after});
    report["service_cache_hit_ratio"] = json!(service_hit_ratio);
    report["versions"] = versions
        .iter()
        .map(|(name, v)| ((*name).to_owned(), json!(v)))
        .collect::<serde_json::Map<_, _>>()
        .into();
    report["method"] = json!(format!(
        "Cached hits of one {}-byte JSON object (the service: its list page `{SERVICE_PATH}`) over HTTP/1.1 keep-alive on 127.0.0.1: wrk, {} connections, {} threads, {} rounds of {} s per target after a {WARM_UP_SECONDS} s warm-up each, interleaved (each round runs every target once, the order rotating). Fairness: every server and wrk itself share this machine's {cores} cores (only the measured server is loaded at a time; wrk's threads take their share from each alike), and each server may use all of them. Server CPU per request is the CPU time (user and system) of the server's processes over a round divided by its responses: less skewed by a busy machine than req/s.",
        object.len(),
        options.connections,
        options.wrk_threads(),
        options.rounds,
        options.seconds,
    ));
    let mut notes = vec![
        busy_note(load_before, load_after, cores),
        format!(
            "Origin requests during the rounds: {origin_during} (0: every cache answered from its store)."
        ),
        format!(
            "Service cache hit ratio during the rounds: {}.",
            service_hit_ratio.map_or("-".to_owned(), |r| format!("{:.1} %", r * 100.0))
        ),
        format!(
            "Versions: {}.",
            versions
                .iter()
                .map(|(name, v)| format!("{name} `{v}`"))
                .collect::<Vec<_>>()
                .join(", ")
        ),
    ];
    let failed: Vec<String> = samples
        .iter()
        .filter(|(_, s)| s.iter().any(|s| s.errors > 0.0))
        .map(|(t, s)| {
            format!(
                "{}: {} failed responses",
                t.label(),
                s.iter().map(|s| s.errors).sum::<f64>()
            )
        })
        .chain((origin_during > 0).then(|| {
            format!("{origin_during} requests reached the origin during the rounds: a cache did not answer from its store")
        }))
        .collect();
    notes.extend(failed.iter().map(|f| format!("FAILED: {f}")));
    report["notes"] = json!(notes);
    report["failures"] = json!(failed);

    let text = serde_json::to_string_pretty(&report).map_err(|e| e.to_string())?;
    std::fs::write(dir.join("peers.json"), text + "\n").map_err(|e| e.to_string())?;
    let markdown = markdown(&report);
    std::fs::write(dir.join("peers.md"), &markdown).map_err(|e| e.to_string())?;
    println!("\n{markdown}");
    println!("Report: {}", dir.join("peers.md").display());
    // Every server stops here (and on any early return) through its guard.
    drop((service, nginx, varnish, proxy, origin));
    if failed.is_empty() {
        Ok(())
    } else {
        Err(failed.join("; "))
    }
}

/// The body of a `200` answer to `GET path`. HTTP/1.0, so that the body is never chunked
/// and ends where the connection does.
fn page_body(port: u16, path: &str) -> Result<Vec<u8>> {
    let mut stream = TcpStream::connect(("127.0.0.1", port)).map_err(|e| e.to_string())?;
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .map_err(|e| e.to_string())?;
    write!(stream, "GET {path} HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n").map_err(|e| e.to_string())?;
    let mut response = Vec::new();
    stream
        .read_to_end(&mut response)
        .map_err(|e| e.to_string())?;
    body_of_ok(&response).ok_or_else(|| {
        format!(
            "GET {path} did not answer 200 with a body: {}",
            String::from_utf8_lossy(&response[..response.len().min(200)])
        )
    })
}

/// The body of an HTTP/1.0 `200` response (`None` for another status or an empty body).
fn body_of_ok(response: &[u8]) -> Option<Vec<u8>> {
    let end = response.windows(4).position(|w| w == b"\r\n\r\n")?;
    let status = response.split(|b| *b == b' ').nth(1)?;
    let body = &response[end + 4..];
    (status == b"200" && !body.is_empty()).then(|| body.to_vec())
}

/// One wrk run of `seconds` against `url`, with the CPU time of the server `pid` (and its
/// descendants) over it.
fn wrk_run(
    script: &Path,
    url: &str,
    pid: Option<u32>,
    options: PeersOptions,
    seconds: u64,
) -> Result<Sample> {
    let cpu_before = pid.and_then(cpu::cpu_ms);
    let output = Command::new("wrk")
        .args(["-t", &options.wrk_threads().to_string()])
        .args(["-c", &options.connections.to_string()])
        .args(["-d", &format!("{seconds}s"), "--timeout", "5s", "-s"])
        .arg(script)
        .arg(url)
        .output()
        .map_err(|e| format!("cannot run wrk: {e}"))?;
    let json = wrk_json(&output)?;
    let figures = Figures::from_wrk_json(&json);
    let bytes = json["bytes"].as_f64().unwrap_or(0.0);
    let cpu_ms = cpu_before
        .zip(pid.and_then(cpu::cpu_ms))
        .map(|(a, b)| b - a);
    Ok(Sample {
        cpu_us_per_request: cpu_ms
            .filter(|_| figures.requests > 0.0)
            .map(|ms| ms * 1000.0 / figures.requests),
        rps: figures.rps(),
        p50_ms: figures.p50_ms,
        p99_ms: figures.p99_ms,
        errors: figures.errors,
        bytes_per_response: if figures.requests > 0.0 {
            bytes / figures.requests
        } else {
            0.0
        },
    })
}

/// The 1-minute load average (Linux), `None` elsewhere.
fn load_average() -> Option<f64> {
    std::fs::read_to_string("/proc/loadavg")
        .ok()?
        .split_whitespace()
        .next()?
        .parse()
        .ok()
}

/// What the machine's load average says about reading the run.
fn busy_note(before: Option<f64>, after: Option<f64>, cores: usize) -> String {
    let shown = |v: Option<f64>| v.map_or("-".to_owned(), |v| format!("{v:.1}"));
    let mut note = format!(
        "Load average (1 min) before the warm-up / after the rounds: {} / {} on {cores} cores.",
        shown(before),
        shown(after)
    );
    // Before the warm-up only: during the rounds, the measured server's own threads count.
    if before.is_some_and(|load| load > cores as f64 + 1.0) {
        note.push_str(
            " Other work competed for the CPU: the scheduler shares it among runnable threads, \
             so a server with many threads (Varnish: a worker thread per busy connection) gets \
             more of it than one with a thread per core (the proxy, nginx, the service), and \
             req/s ratios (and p99) follow thread counts as much as costs. The \
             CPU-per-request ratios hold better.",
        );
    }
    note
}

/// The first line a program prints (on either stream) for its version flag.
fn version(program: &Path, flag: &str) -> String {
    Command::new(program)
        .arg(flag)
        .output()
        .map(|o| {
            let text = [o.stdout, o.stderr].concat();
            String::from_utf8_lossy(&text)
                .lines()
                .map(str::trim)
                .find(|l| !l.is_empty())
                .unwrap_or("?")
                .to_owned()
        })
        .unwrap_or_else(|_| "?".to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(list: &[&str]) -> Vec<String> {
        list.iter().map(|a| (*a).to_owned()).collect()
    }

    #[test]
    fn parses_the_options_and_refuses_bad_ones() {
        let defaults = PeersOptions::parse(&[]).unwrap();
        assert_eq!(
            defaults,
            PeersOptions {
                seconds: 5,
                rounds: 3,
                connections: 32
            }
        );
        let custom = PeersOptions::parse(&args(&[
            "--duration",
            "10s",
            "--rounds",
            "5",
            "--connections",
            "64",
        ]))
        .unwrap();
        assert_eq!(
            (custom.seconds, custom.rounds, custom.connections),
            (10, 5, 64)
        );
        assert_eq!(
            PeersOptions::parse(&args(&["--connections", "1"]))
                .unwrap()
                .wrk_threads(),
            1
        );
        for bad in [
            &["--rounds", "0"][..],
            &["--rounds", "21"],
            &["--duration", "0"],
            &["--duration", "2m"],
            &["--connections", "0"],
            &["--rounds"],
            &["--rate", "5"],
            &["baseline"],
        ] {
            assert!(PeersOptions::parse(&args(bad)).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn each_round_runs_every_target_once_starting_one_further() {
        assert_eq!(rotation(0, 5), [0, 1, 2, 3, 4]);
        assert_eq!(rotation(1, 5), [1, 2, 3, 4, 0]);
        assert_eq!(rotation(7, 5), [2, 3, 4, 0, 1]);
        for round in 0..10 {
            let mut order = rotation(round, 5);
            order.sort_unstable();
            assert_eq!(order, [0, 1, 2, 3, 4]);
        }
    }

    #[test]
    fn says_when_other_work_competed_for_the_cpu() {
        let quiet = busy_note(Some(1.2), Some(2.0), 2);
        assert!(quiet.starts_with(
            "Load average (1 min) before the warm-up / after the rounds: 1.2 / 2.0 on 2 cores."
        ));
        assert!(!quiet.contains("competed"));
        assert!(busy_note(Some(9.5), Some(1.0), 2).contains("competed"));
        assert!(!busy_note(Some(1.0), Some(9.5), 2).contains("competed"));
        assert!(busy_note(None, None, 2).contains("- / -"));
    }

    #[test]
    fn takes_medians() {
        assert_eq!(median(&[3.0, 1.0, 2.0]), 2.0);
        assert_eq!(median(&[4.0, 1.0, 2.0, 3.0]), 2.5);
        assert_eq!(median(&[7.0]), 7.0);
        assert_eq!(median(&[]), 0.0);
    }

    fn sample(rps: f64, p99_ms: f64) -> Sample {
        Sample {
            rps,
            p99_ms,
            p50_ms: p99_ms / 4.0,
            bytes_per_response: 8800.0,
            cpu_us_per_request: Some(25.0),
            ..Sample::default()
        }
    }

    #[test]
    fn reports_medians_ratios_and_verdicts() {
        let samples = vec![
            (
                Target::Proxy,
                vec![
                    sample(40000.0, 2.0),
                    sample(42000.0, 2.2),
                    sample(41000.0, 9.0),
                ],
            ),
            (
                Target::Varnish,
                vec![
                    sample(26000.0, 8.5),
                    sample(27000.0, 8.0),
                    sample(25000.0, 9.0),
                ],
            ),
            (
                Target::Nginx,
                vec![
                    sample(33000.0, 4.7),
                    sample(30000.0, 4.0),
                    sample(34000.0, 5.0),
                ],
            ),
            (
                Target::Service,
                vec![
                    sample(26000.0, 5.0),
                    sample(30000.0, 5.0),
                    sample(29000.0, 5.0),
                ],
            ),
            (Target::NginxStatic, vec![sample(31000.0, 3.0)]),
        ];
        let mut samples = samples;
        // Varnish spends twice the proxy's CPU per request.
        for s in &mut samples[1].1 {
            s.cpu_us_per_request = Some(50.0);
        }
        let report = figures(&samples);
        let proxy = &report["targets"][0];
        assert_eq!(proxy["target"], "proxy");
        assert_eq!(proxy["median_rps"], 41000.0);
        // The median p99, not the worst round's.
        assert_eq!(proxy["median_p99_ms"], 2.2);
        let ratio = |name: &str| {
            report["ratios"]
                .as_array()
                .unwrap()
                .iter()
                .find(|r| r["name"] == name)
                .cloned()
                .unwrap()
        };
        let varnish = ratio("proxy / varnish");
        assert!((varnish["value"].as_f64().unwrap() - 41000.0 / 26000.0).abs() < 1e-9);
        assert_eq!(varnish["reached"], true);
        // 41000 / 33000 = 1.24: short of 1.5.
        assert_eq!(ratio("proxy / nginx")["reached"], false);
        // 29000 / 41000 = 0.71: at least 0.7.
        assert_eq!(ratio("service / proxy")["reached"], true);
        assert_eq!(report["ratios"].as_array().unwrap().len(), 3);

        let text = markdown(&report);
        assert!(
            text.contains("| proxy / varnish | 1.58 | >= 1.5 | PASS | 2.00 |"),
            "{text}"
        );
        assert!(
            text.contains("| proxy / nginx | 1.24 | >= 1.5 | not reached | 1.00 |"),
            "{text}"
        );
        assert!(
            text.contains("| example cache proxy (memory store) | 41000 | 2.20 | 0.55 | 25.0 | 8800 | 40000, 42000, 41000 | 2.00, 2.20, 9.00 |"),
            "{text}"
        );
    }

    #[test]
    fn a_ratio_without_its_denominator_is_left_out() {
        let samples = vec![
            (Target::Proxy, vec![sample(1000.0, 1.0)]),
            (Target::Varnish, vec![sample(0.0, 1.0)]),
        ];
        let report = figures(&samples);
        assert_eq!(report["ratios"], json!([]));
    }

    #[test]
    fn reads_the_body_of_a_200_only() {
        let ok = b"HTTP/1.0 200 OK\r\ncontent-type: application/json\r\n\r\n{\"items\":[]}";
        assert_eq!(body_of_ok(ok).unwrap(), b"{\"items\":[]}");
        assert_eq!(body_of_ok(b"HTTP/1.0 404 Not Found\r\n\r\nnope"), None);
        assert_eq!(body_of_ok(b"HTTP/1.0 200 OK\r\n\r\n"), None);
        assert_eq!(body_of_ok(b"HTTP/1.0 200 OK\r\n"), None);
    }

    #[test]
    fn the_report_script_prints_the_figures_and_the_bytes() {
        assert!(
            REPORT_SCRIPT.contains("WRK_JSON {\"requests\":%d,\"duration_us\":%d,\"bytes\":%d")
        );
        let line = json!({"requests": 1000, "duration_us": 2_000_000, "bytes": 9_000_000, "status_errors": 2, "p99_us": 2500});
        let figures = Figures::from_wrk_json(&line);
        assert_eq!(
            (figures.rps(), figures.errors, figures.p99_ms),
            (500.0, 2.0, 2.5)
        );
    }
}
