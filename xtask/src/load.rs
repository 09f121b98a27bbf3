//! `cargo xtask load <smoke|baseline|stress|spike|soak> [--duration D]`: load scenarios
//! against the example service with wrk, on 127.0.0.1 only, bounded in time.
//! `cargo xtask load fixed-rate --rate R[,R...] [--duration D] [--connections N]` holds a
//! request rate instead (open loop, with oha: see [`oha`]). `cargo xtask load capacity`
//! steps that rate up until p99 leaves its bound, with and without the layers (see
//! [`capacity`]), and `cargo xtask load recovery` times the return under the bound after a
//! spike (see [`recovery`]). `cargo xtask load peers [--duration D] [--rounds N]
//! [--connections N]` sets the example cache proxy beside Varnish and nginx on cached hits
//! of one object, with the example service's cached list page in the same interleaved
//! rounds (see [`peers`]; installs Varnish and nginx when missing; for people, not CI).
//!
//! Each run builds and starts the service (release), sends a request mix (list pages, field
//! selections, detail reads, a small share of writes) and reports requests/s, latency
//! percentiles, error rate, cache hit ratio (from `/metrics` on the admin listener before
//! and after), DB pool
//! saturation and the service's RSS at start and end: a table on the terminal,
//! `target/xtask-load/<scenario>.json`, `target/xtask-load/<scenario>.md` and
//! `target/xtask-load/<scenario>.html` (charts per step, see [`html`]). `baseline`
//! also runs a list-only load against the service and against a second instance started
//! with `LAYERS=none`, and prints their throughput ratio. `soak` sends a mix whose cache
//! keys rarely repeat to an instance with an 8 MB in-memory cache, and reports the cache's
//! bytes (`http_cache_l1_bytes`, sampled every 5 s) against that capacity. Exceeding a
//! scenario's error-rate or latency bounds, or the cache's capacity, exits non-zero.

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::run::build_service;
use crate::services::{Services, free_port};
use crate::{Result, apt, target_dir};

mod capacity;
mod html;
mod oha;
mod peers;
mod recovery;
mod report;

use oha::RateStep;
use report::{Report, ServerFigures, StepReport};

/// One load step: `connections` for `seconds`.
#[derive(Debug, Clone, Copy)]
struct Step {
    connections: u32,
    seconds: u64,
}

/// A scenario: its steps and the bounds it must stay within.
#[derive(Debug)]
struct Scenario {
    name: &'static str,
    /// Closed-loop steps (wrk: a number of connections)...
    steps: Vec<Step>,
    /// ...or open-loop ones (oha: a rate held whatever the responses do).
    rate_steps: Vec<RateStep>,
    /// The request mix: `mix` (the API's usual traffic) or `unique` (cache keys that
    /// rarely repeat, to fill and churn the cache).
    mode: &'static str,
    /// The in-memory cache's size the instance starts with (`CACHE_CAPACITY_MB`).
    cache_capacity_mb: u64,
    /// Highest acceptable error rate, in percent of requests.
    max_error_pct: f64,
    /// Latency bounds in milliseconds.
    max_p95_ms: f64,
    max_p99_ms: f64,
}

/// What the command line asks of a fixed-rate run.
#[derive(Debug, Clone, Default, PartialEq)]
struct RateOptions {
    /// Requests per second, one step each (`--rate 1000,2000`).
    rates: Vec<f64>,
    /// Connections oha may open (`--connections`).
    connections: Option<u32>,
}

/// The rate `fixed-rate` holds without `--rate`: well under what this 2-core machine
/// serves with the mix, so the run shows the latency of a service that keeps up.
const DEFAULT_RATE: f64 = 500.0;
/// Seconds per fixed-rate step without `--duration`.
const DEFAULT_RATE_STEP_SECONDS: u64 = 10;
/// Connections oha opens without `--connections`: requests beyond them queue in oha (and
/// count as late), as they would behind a client's connection pool.
const DEFAULT_RATE_CONNECTIONS: u32 = 50;
/// A fixed-rate step fails its bounds when more than this share of its scheduled requests
/// were never sent: the service did not keep up with the rate.
const MAX_UNSENT_PCT: f64 = 1.0;

/// The bounds are set for a 2-core machine that runs the load generator, the service,
/// PostgreSQL and Redis together; on a bigger machine they hold with room to spare.
fn scenario(name: &str, duration: Option<u64>, rate: &RateOptions) -> Result<Scenario> {
    let step = |connections, seconds| Step {
        connections,
        seconds,
    };
    // The service's default cache size; soak uses a small one to show the bound.
    let (mode, cache_capacity_mb) = ("mix", 64);
    if name != "fixed-rate" && (!rate.rates.is_empty() || rate.connections.is_some()) {
        return Err(format!(
            "--rate and --connections apply to the fixed-rate scenario, not to {name:?} (wrk holds connections, not a rate)"
        ));
    }
    let scenario = match name {
        "fixed-rate" => {
            let rates = if rate.rates.is_empty() {
                vec![DEFAULT_RATE]
            } else {
                rate.rates.clone()
            };
            let seconds = duration.unwrap_or(DEFAULT_RATE_STEP_SECONDS);
            let connections = rate.connections.unwrap_or(DEFAULT_RATE_CONNECTIONS);
            Scenario {
                name: "fixed-rate",
                mode,
                cache_capacity_mb,
                steps: Vec::new(),
                rate_steps: rates
                    .into_iter()
                    .map(|rate| RateStep {
                        rate,
                        seconds,
                        connections,
                    })
                    .collect(),
                // The baseline's bounds: a rate this machine sustains meets them.
                max_error_pct: 0.1,
                max_p95_ms: 100.0,
                max_p99_ms: 250.0,
            }
        }
        "smoke" => Scenario {
            name: "smoke",
            rate_steps: Vec::new(),
            mode,
            cache_capacity_mb,
            steps: vec![step(5, 10)],
            max_error_pct: 0.1,
            max_p95_ms: 50.0,
            max_p99_ms: 150.0,
        },
        "baseline" => Scenario {
            name: "baseline",
            rate_steps: Vec::new(),
            mode,
            cache_capacity_mb,
            steps: vec![step(20, 60)],
            max_error_pct: 0.1,
            max_p95_ms: 100.0,
            max_p99_ms: 250.0,
        },
        "stress" => Scenario {
            name: "stress",
            rate_steps: Vec::new(),
            mode,
            cache_capacity_mb,
            steps: vec![step(50, 20), step(100, 20), step(150, 20)],
            max_error_pct: 0.1,
            max_p95_ms: 500.0,
            max_p99_ms: 1000.0,
        },
        "spike" => Scenario {
            name: "spike",
            rate_steps: Vec::new(),
            mode,
            cache_capacity_mb,
            steps: vec![step(200, 15)],
            max_error_pct: 0.1,
            max_p95_ms: 1000.0,
            max_p99_ms: 2000.0,
        },
        "soak" => Scenario {
            name: "soak",
            rate_steps: Vec::new(),
            mode: "unique",
            cache_capacity_mb: 8,
            steps: vec![step(30, duration.unwrap_or(600))],
            max_error_pct: 0.1,
            max_p95_ms: 100.0,
            max_p99_ms: 250.0,
        },
        other => {
            return Err(format!(
                "unknown scenario {other:?}: expected smoke, baseline, stress, spike, soak, fixed-rate, capacity, recovery or peers"
            ));
        }
    };
    Ok(scenario)
}

/// The bearer token the load's instances accept (`API_TOKENS`) and its writes send: they
/// listen on 127.0.0.1 only and live for one run, so a fixed token is enough.
const LOAD_TOKEN: &str = "xtask-load-token-local-only";

/// The request mix, as a wrk Lua script (arguments: the mode, then the bearer token for
/// writes). `done` prints one JSON line with the figures.
const MIX_SCRIPT: &str = r#"
local counter = 0
local body = '{"name":"Load test teapot","category_id":1,"price_cents":1999,"stock":3}'
function setup(thread)
  counter = counter + 1
  thread:set("id", counter)
end
function init(args)
  math.randomseed(os.time() * 1000 + id)
  mode = args[1] or "mix"
  auth = "Bearer " .. (args[2] or "")
end
function request()
  if mode == "unique" then
    -- Every request carries a parameter of its own: the cache keys on the whole query
    -- string, the handlers ignore it, so almost every response is a new cache entry.
    counter = counter + 1
    local unique = "u=" .. id .. "-" .. counter
    if math.random(10) <= 8 then
      return wrk.format("GET", "/api/products/" .. math.random(1, 10000) .. "?" .. unique)
    end
    return wrk.format("GET", "/api/products?page=" .. math.random(1, 100) .. "&limit=" .. math.random(1, 50) .. "&" .. unique)
  end
  if mode == "list" then
    return wrk.format("GET", "/api/products?page=" .. math.random(1, 20) .. "&limit=20")
  end
  local r = math.random(1000)
  if r <= 550 then
    return wrk.format("GET", "/api/products?page=" .. math.random(1, 20) .. "&limit=20")
  elseif r <= 700 then
    return wrk.format("GET", "/api/products?page=" .. math.random(1, 5) .. "&limit=50&fields=id,name,price_cents")
  elseif r <= 950 then
    return wrk.format("GET", "/api/products/" .. math.random(1, 500))
  elseif r <= 990 then
    return wrk.format("GET", "/api/categories?page=" .. math.random(1, 2) .. "&limit=20")
  else
    return wrk.format("PUT", "/api/products/" .. math.random(9000, 10000), {["Content-Type"] = "application/json", ["Authorization"] = auth}, body)
  end
end
function done(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    'WRK_JSON {"requests":%d,"duration_us":%d,"connect_errors":%d,"read_errors":%d,"write_errors":%d,"status_errors":%d,"timeouts":%d,"p50_us":%d,"p95_us":%d,"p99_us":%d,"max_us":%d}\n',
    summary.requests, summary.duration, e.connect, e.read, e.write, e.status, e.timeout,
    latency:percentile(50), latency:percentile(95), latency:percentile(99), latency.max))
end
"#;

pub(crate) fn load(args: &[String]) -> Result {
    match args.first().map(String::as_str) {
        Some("capacity") => return capacity::run(&args[1..]),
        Some("recovery") => return recovery::run(&args[1..]),
        Some("peers") => return peers::run(&args[1..]),
        _ => {}
    }
    let (name, duration, rate) = parse_args(args)?;
    let scenario = scenario(&name, duration, &rate)?;
    let open_loop = !scenario.rate_steps.is_empty();
    // The generator first: a missing one fails before the service is built.
    let oha = if open_loop {
        Some(oha::ensure()?)
    } else {
        ensure_wrk()?;
        None
    };
    let services = Services::ensure()?;
    build_service()?;

    let dir = target_dir().join("xtask-load");
    std::fs::create_dir_all(&dir).map_err(|e| e.to_string())?;
    let script = dir.join("mix.lua");
    std::fs::write(&script, MIX_SCRIPT).map_err(|e| e.to_string())?;

    let capacity = [("CACHE_CAPACITY_MB", scenario.cache_capacity_mb.to_string())];
    let layered = Instance::start(&services, "all", &capacity)?;
    let rss_start = layered.rss_kib();
    let before = layered.metrics()?;
    let sampler = Sampler::start(&layered);
    let mut steps = Vec::new();
    let mut step_reports = Vec::new();
    for step in &scenario.steps {
        eprintln!(
            "xtask load: {} connections for {} s ({})",
            step.connections, step.seconds, scenario.mode
        );
        let step_before = layered.metrics()?;
        let figures = wrk(&script, layered.port, *step, scenario.mode)?;
        let mut step_report = figures.step_report(format!("{} connections", step.connections));
        step_report.server = layered.server_figures(&step_before)?;
        step_reports.push(step_report);
        steps.push(figures);
    }
    if let Some(oha) = &oha {
        let urls = dir.join("urls.txt");
        std::fs::write(&urls, oha::urls(layered.port)).map_err(|e| e.to_string())?;
        for (index, step) in scenario.rate_steps.iter().enumerate() {
            eprintln!(
                "xtask load: {} requests/s for {} s over at most {} connections (read mix, oha)",
                step.rate, step.seconds, step.connections
            );
            let step_before = layered.metrics()?;
            let name = format!("{}-{}", scenario.name, index + 1);
            let mut step_report = oha::run(oha, &dir, &name, &urls, *step)?;
            step_report.server = layered.server_figures(&step_before)?;
            steps.push(Figures::from_step(&step_report));
            step_reports.push(step_report);
        }
    }
    let (l1_max, rss_max) = sampler.stop();
    let after = layered.metrics()?;
    let rss_end = layered.rss_kib();
    let total = merge(&steps);
    let l1_bytes = |metrics: &str| gauge(metrics, "http_cache_l1_bytes").unwrap_or(0.0);
    let l1_capacity = scenario.cache_capacity_mb as f64 * 1024.0 * 1024.0;
    let l1_max = l1_max.max(l1_bytes(&after));

    let hits = counter_delta(
        &before,
        &after,
        "http_cache_requests_total",
        Some("result=\"hit\""),
    );
    let lookups = counter_delta(&before, &after, "http_cache_requests_total", None);
    let hit_ratio = if lookups > 0.0 { hits / lookups } else { 0.0 };
    let pool_max = gauge(&after, "db_client_connection_max").unwrap_or(0.0);
    let pool_waiting = gauge(&after, "db_client_connection_pending_requests").unwrap_or(0.0);

    let mut report = json!({
        "scenario": scenario.name,
        "steps": scenario.steps.iter().map(|s| json!({"connections": s.connections, "seconds": s.seconds}))
            .chain(scenario.rate_steps.iter().map(|s| json!({"rate": s.rate, "seconds": s.seconds, "connections": s.connections})))
            .collect::<Vec<_>>(),
        "requests": total.requests,
        "requests_per_second": total.rps(),
        "latency_ms": {"p50": total.p50_ms, "p95": total.p95_ms, "p99": total.p99_ms, "max": total.max_ms},
        "error_rate_pct": total.error_pct(),
        "cache_hit_ratio": hit_ratio,
        "db_pool": {"max": pool_max, "waiting_at_end": pool_waiting},
        "rss_kib": {"start": rss_start, "end": rss_end, "max": rss_max.max(rss_end)},
        "cache_l1_bytes": {"start": l1_bytes(&before), "end": l1_bytes(&after), "max": l1_max, "capacity": l1_capacity},
        "bounds": {"max_error_pct": scenario.max_error_pct, "max_p95_ms": scenario.max_p95_ms, "max_p99_ms": scenario.max_p99_ms},
        "step_figures": step_reports.iter().map(step_json).collect::<Vec<_>>(),
    });

    let mut notes = Vec::new();
    if scenario.name == "baseline" {
        let list = Step {
            connections: 20,
            seconds: 20,
        };
        eprintln!("xtask load: list endpoint only, all layers");
        let with_layers = wrk(&script, layered.port, list, "list")?;
        drop(layered);
        let bare = Instance::start(&services, "none", &[])?;
        eprintln!("xtask load: list endpoint only, LAYERS=none");
        let without_layers = wrk(&script, bare.port, list, "list")?;
        let ratio = with_layers.rps() / without_layers.rps().max(f64::MIN_POSITIVE);
        notes.push((
            "list endpoint req/s, all layers / LAYERS=none (20 connections, 20 s)".to_owned(),
            format!(
                "{:.0} / {:.0} (ratio {ratio:.2})",
                with_layers.rps(),
                without_layers.rps()
            ),
        ));
        report["list_endpoint"] = json!({
            "layers_all_rps": with_layers.rps(),
            "layers_none_rps": without_layers.rps(),
            "ratio": ratio,
            "layers_all_p99_ms": with_layers.p99_ms,
            "layers_none_p99_ms": without_layers.p99_ms,
        });
    }

    let mut violations = violations(&scenario, &total);
    violations.extend(step_reports.iter().filter_map(unsent_violation));
    if l1_max > l1_capacity {
        violations.push(format!(
            "L1 cache held {l1_max} bytes > its capacity of {l1_capacity}"
        ));
    }
    report["violations"] = json!(violations);
    let text = serde_json::to_string_pretty(&report).map_err(|e| e.to_string())?;
    std::fs::write(dir.join(format!("{}.json", scenario.name)), text + "\n")
        .map_err(|e| e.to_string())?;
    let markdown = markdown(&report);
    std::fs::write(dir.join(format!("{}.md", scenario.name)), &markdown)
        .map_err(|e| e.to_string())?;
    notes.push((
        "whole run: cache hit ratio, RSS start / end / max (MiB)".to_owned(),
        format!(
            "{:.1} %, {:.1} / {:.1} / {:.1}",
            hit_ratio * 100.0,
            rss_start as f64 / 1024.0,
            rss_end as f64 / 1024.0,
            rss_max.max(rss_end) as f64 / 1024.0
        ),
    ));
    let html_path = dir.join(format!("{}.html", scenario.name));
    let html = html::render(&Report {
        scenario: scenario.name.to_owned(),
        generator: generator_sentence(&scenario),
        steps: step_reports,
        bounds: (
            scenario.max_error_pct,
            scenario.max_p95_ms,
            scenario.max_p99_ms,
        ),
        violations: violations.clone(),
        notes,
        ..Report::default()
    });
    std::fs::write(&html_path, html).map_err(|e| e.to_string())?;
    println!("\n{markdown}");
    println!("HTML report: {}", html_path.display());
    if violations.is_empty() {
        Ok(())
    } else {
        Err(format!("bounds exceeded: {}", violations.join("; ")))
    }
}

/// `[scenario] [--duration D] [--rate R[,R...]] [--connections N]`: the scenario (`smoke`
/// by default, `fixed-rate` when `--rate` is given), the duration and the rate options.
fn parse_args(args: &[String]) -> Result<(String, Option<u64>, RateOptions)> {
    let mut name = None;
    let mut duration = None;
    let mut rate = RateOptions::default();
    let mut args = args.iter();
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--duration" => {
                let text = args
                    .next()
                    .ok_or("--duration needs a value such as 10m or 90s")?;
                duration = Some(parse_duration(text)?);
            }
            "--rate" => {
                let text = args
                    .next()
                    .ok_or("--rate needs requests per second, such as 2000 or 500,1000,2000")?;
                rate.rates = parse_rates(text)?;
            }
            "--connections" => {
                let text = args.next().ok_or("--connections needs a number")?;
                rate.connections = Some(
                    text.parse()
                        .ok()
                        .filter(|n| (1..=10_000).contains(n))
                        .ok_or(format!(
                            "--connections takes a number from 1 to 10000, got {text:?}"
                        ))?,
                );
            }
            flag if flag.starts_with("--") => return Err(format!("unknown option {flag}")),
            scenario => name = Some(scenario.to_owned()),
        }
    }
    let default = if rate.rates.is_empty() {
        "smoke"
    } else {
        "fixed-rate"
    };
    Ok((name.unwrap_or_else(|| default.to_owned()), duration, rate))
}

/// `2000` or `500,1000,2000`: each a positive, finite number of requests per second.
fn parse_rates(text: &str) -> Result<Vec<f64>> {
    text.split(',')
        .map(|part| {
            part.trim()
                .parse::<f64>()
                .ok()
                .filter(|r| r.is_finite() && *r > 0.0)
                .ok_or(format!(
                    "bad rate {part:?} in --rate {text:?}: requests per second above 0"
                ))
        })
        .collect()
}

/// How the run's load was generated, for the report's reader.
fn generator_sentence(scenario: &Scenario) -> String {
    if scenario.rate_steps.is_empty() {
        format!(
            "Closed loop: wrk keeps a fixed number of connections busy, each sending its next \
             request when the last one is answered, with the API's request mix ({}), on \
             127.0.0.1 against the example service with all layers.",
            scenario.mode
        )
    } else {
        format!(
            "Open loop: oha {} sends requests at a fixed rate (scheduled whatever the \
             responses do, latency measured from each request's scheduled time: corrected for \
             coordinated omission), with the API's read mix, on 127.0.0.1 against the example \
             service with all layers.",
            oha::OHA_VERSION
        )
    }
}

/// A fixed-rate step whose service did not keep up: too many requests never sent.
fn unsent_violation(step: &StepReport) -> Option<String> {
    let unsent = step.unsent? as f64;
    let scheduled = step.target_rps? * step.seconds;
    (scheduled > 0.0 && unsent / scheduled * 100.0 > MAX_UNSENT_PCT).then(|| {
        format!(
            "{}: {unsent} of {scheduled:.0} scheduled requests never sent (> {MAX_UNSENT_PCT} %)",
            step.label
        )
    })
}

/// One step's figures for the JSON report.
fn step_json(step: &StepReport) -> Value {
    let latency: serde_json::Map<String, Value> = step
        .latency_ms
        .iter()
        .map(|(name, ms)| (name.clone(), json!(ms)))
        .collect();
    let s = &step.server;
    json!({
        "label": step.label,
        "seconds": step.seconds,
        "target_rps": step.target_rps,
        "achieved_rps": step.achieved_rps(),
        "responses": step.requests,
        "errors": step.errors,
        "late": step.late,
        "unsent": step.unsent,
        "latency_ms": latency,
        "server": {
            "cache_hit_ratio": s.cache_hit_ratio,
            "db_queries": s.db_queries,
            "pool_max": s.pool_max,
            "pool_waiting": s.pool_waiting,
            "l1_bytes": s.l1_bytes,
            "rss_kib": s.rss_kib,
        },
        "timeline": step.timeline.iter().map(|t| json!([t.completed, t.p50_ms, t.p99_ms, t.errors])).collect::<Vec<_>>(),
    })
}

/// wrk's figures for one step (or several merged).
#[derive(Debug, Default, Clone)]
struct Figures {
    requests: f64,
    seconds: f64,
    errors: f64,
    p50_ms: f64,
    p95_ms: f64,
    p99_ms: f64,
    max_ms: f64,
}

impl Figures {
    fn rps(&self) -> f64 {
        if self.seconds > 0.0 {
            self.requests / self.seconds
        } else {
            0.0
        }
    }

    fn error_pct(&self) -> f64 {
        if self.requests > 0.0 {
            self.errors / self.requests * 100.0
        } else {
            0.0
        }
    }

    /// A wrk step for the HTML report (its server figures are filled in by the caller).
    fn step_report(&self, label: String) -> StepReport {
        StepReport {
            label,
            seconds: self.seconds,
            requests: self.requests as u64,
            errors: self.errors as u64,
            latency_ms: vec![
                ("p50".to_owned(), self.p50_ms),
                ("p95".to_owned(), self.p95_ms),
                ("p99".to_owned(), self.p99_ms),
                ("max".to_owned(), self.max_ms),
            ],
            ..StepReport::default()
        }
    }

    /// An open-loop step's figures, for the run's totals and bounds.
    fn from_step(step: &StepReport) -> Figures {
        let latency = |name| step.latency(name).unwrap_or(0.0);
        Figures {
            requests: step.requests as f64,
            seconds: step.seconds,
            errors: step.errors as f64,
            p50_ms: latency("p50"),
            p95_ms: latency("p95"),
            p99_ms: latency("p99"),
            max_ms: latency("max"),
        }
    }
}

/// Sums counts; keeps the worst percentile of any step (a conservative merge).
fn merge(steps: &[Figures]) -> Figures {
    let mut total = Figures::default();
    for step in steps {
        total.requests += step.requests;
        total.seconds += step.seconds;
        total.errors += step.errors;
        total.p50_ms = total.p50_ms.max(step.p50_ms);
        total.p95_ms = total.p95_ms.max(step.p95_ms);
        total.p99_ms = total.p99_ms.max(step.p99_ms);
        total.max_ms = total.max_ms.max(step.max_ms);
    }
    total
}

fn violations(scenario: &Scenario, total: &Figures) -> Vec<String> {
    let mut found = Vec::new();
    if total.requests == 0.0 {
        found.push("no request completed".to_owned());
    }
    if total.error_pct() > scenario.max_error_pct {
        found.push(format!(
            "error rate {:.3}% > {}%",
            total.error_pct(),
            scenario.max_error_pct
        ));
    }
    if total.p95_ms > scenario.max_p95_ms {
        found.push(format!(
            "p95 {:.1} ms > {} ms",
            total.p95_ms, scenario.max_p95_ms
        ));
    }
    if total.p99_ms > scenario.max_p99_ms {
        found.push(format!(
            "p99 {:.1} ms > {} ms",
            total.p99_ms, scenario.max_p99_ms
        ));
    }
    found
}

fn wrk(script: &std::path::Path, port: u16, step: Step, mode: &str) -> Result<Figures> {
    let threads = step.connections.clamp(1, 2);
    let output = Command::new("wrk")
        .args([
            "-t",
            &threads.to_string(),
            "-c",
            &step.connections.to_string(),
        ])
        .args(["-d", &format!("{}s", step.seconds), "--timeout", "5s", "-s"])
        .arg(script)
        .arg(format!("http://127.0.0.1:{port}"))
        .args(["--", mode, LOAD_TOKEN])
        .output()
        .map_err(|e| format!("cannot run wrk: {e}"))?;
    Ok(Figures::from_wrk_json(&wrk_json(&output)?))
}

/// The `WRK_JSON {...}` line a wrk script's `done` printed, parsed.
fn wrk_json(output: &std::process::Output) -> Result<Value> {
    let stdout = String::from_utf8_lossy(&output.stdout);
    let line = stdout
        .lines()
        .find_map(|line| line.strip_prefix("WRK_JSON "))
        .ok_or_else(|| {
            format!(
                "wrk printed no figures: {stdout}{}",
                String::from_utf8_lossy(&output.stderr)
            )
        })?;
    serde_json::from_str(line).map_err(|e| format!("wrk figures: {e}"))
}

impl Figures {
    /// The figures of a `WRK_JSON` line (see [`MIX_SCRIPT`]'s `done`).
    fn from_wrk_json(v: &Value) -> Figures {
        let n = |key: &str| v[key].as_f64().unwrap_or(0.0);
        Figures {
            requests: n("requests"),
            seconds: n("duration_us") / 1e6,
            errors: n("connect_errors")
                + n("read_errors")
                + n("write_errors")
                + n("status_errors")
                + n("timeouts"),
            p50_ms: n("p50_us") / 1e3,
            p95_ms: n("p95_us") / 1e3,
            p99_ms: n("p99_us") / 1e3,
            max_ms: n("max_us") / 1e3,
        }
    }
}

fn ensure_wrk() -> Result {
    if Command::new("wrk").arg("--version").output().is_ok() {
        return Ok(());
    }
    eprintln!("xtask load: wrk is missing; installing it with apt-get");
    let installed = apt::install(&["wrk"]);
    if installed {
        Ok(())
    } else {
        Err("wrk is not installed: install it (Debian/Ubuntu: `apt-get install wrk`)".to_owned())
    }
}

/// What an open-loop run (`capacity`, `recovery`) needs before its first instance: oha,
/// the local services, the service's release build and the report directory.
struct OpenLoop {
    oha: PathBuf,
    services: Services,
    dir: PathBuf,
}

impl OpenLoop {
    fn prepare() -> Result<OpenLoop> {
        // The generator first: a missing one fails before the service is built.
        let oha = oha::ensure()?;
        let services = Services::ensure()?;
        build_service()?;
        let dir = target_dir().join("xtask-load");
        std::fs::create_dir_all(&dir).map_err(|e| e.to_string())?;
        Ok(OpenLoop { oha, services, dir })
    }

    /// Starts an instance with `LAYERS=layers` and the default cache.
    fn start(&self, layers: &str) -> Result<Instance> {
        Instance::start(
            &self.services,
            layers,
            &[("CACHE_CAPACITY_MB", "64".to_owned())],
        )
    }

    /// The read mix's URLs for `instance`, written to a file oha reads.
    fn urls_file(&self, instance: &Instance) -> Result<PathBuf> {
        let path = self.dir.join(format!("urls-{}.txt", instance.port));
        std::fs::write(&path, oha::urls(instance.port)).map_err(|e| e.to_string())?;
        Ok(path)
    }

    /// One fixed-rate step against `instance`, with the service's figures over it.
    fn step(&self, instance: &Instance, name: &str, step: RateStep) -> Result<StepReport> {
        let urls = self.urls_file(instance)?;
        let before = instance.metrics()?;
        let mut report = oha::run(&self.oha, &self.dir, name, &urls, step)?;
        report.server = instance.server_figures(&before)?;
        Ok(report)
    }

    /// Writes `<name>.{json,md,html}` and prints the Markdown.
    fn write(&self, name: &str, json: &Value, markdown: &str, html: &str) -> Result {
        let text = serde_json::to_string_pretty(json).map_err(|e| e.to_string())?;
        std::fs::write(self.dir.join(format!("{name}.json")), text + "\n")
            .map_err(|e| e.to_string())?;
        std::fs::write(self.dir.join(format!("{name}.md")), markdown).map_err(|e| e.to_string())?;
        let html_path = self.dir.join(format!("{name}.html"));
        std::fs::write(&html_path, html).map_err(|e| e.to_string())?;
        println!("\n{markdown}");
        println!("HTML report: {}", html_path.display());
        Ok(())
    }
}

/// A running example service, killed on drop.
struct Instance {
    child: Child,
    port: u16,
    /// The admin listener's port (`/metrics`).
    admin_port: u16,
}

impl Instance {
    fn start(services: &Services, layers: &str, env: &[(&str, String)]) -> Result<Self> {
        let port = free_port()?;
        let mut admin_port = free_port()?;
        while admin_port == port {
            admin_port = free_port()?;
        }
        let binary = target_dir().join("release").join("example-service");
        let mut command = Command::new(binary);
        services.export(&mut command);
        command
            .env("BIND_ADDR", format!("127.0.0.1:{port}"))
            .env("ADMIN_BIND_ADDR", format!("127.0.0.1:{admin_port}"))
            .env("API_TOKENS", LOAD_TOKEN)
            .env("LAYERS", layers)
            .env(
                "RUST_LOG",
                std::env::var("RUST_LOG").unwrap_or_else(|_| "warn".to_owned()),
            )
            .envs(env.iter().map(|(name, value)| (name, value)))
            .stdout(Stdio::null());
        let child = command
            .spawn()
            .map_err(|e| format!("cannot start the example service: {e}"))?;
        let mut instance = Instance {
            child,
            port,
            admin_port,
        };
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            if http_get(admin_port, "/health/ready").is_ok_and(|(status, _)| status == 200) {
                break;
            }
            if Instant::now() > deadline || instance.child.try_wait().ok().flatten().is_some() {
                return Err(format!(
                    "the example service (LAYERS={layers}) did not become ready"
                ));
            }
            std::thread::sleep(Duration::from_millis(200));
        }
        Ok(instance)
    }

    fn metrics(&self) -> Result<String> {
        match http_get(self.admin_port, "/metrics")? {
            (200, body) => Ok(body),
            (status, _) => Err(format!("/metrics answered {status}")),
        }
    }

    fn rss_kib(&self) -> u64 {
        rss_kib(self.child.id())
    }

    /// The service's figures since `before` (its `/metrics` at the step's start).
    fn server_figures(&self, before: &str) -> Result<ServerFigures> {
        let after = self.metrics()?;
        Ok(server_figures(before, &after, self.rss_kib()))
    }
}

/// What the service's `/metrics` say about the time between `before` and `after`.
fn server_figures(before: &str, after: &str, rss_kib: u64) -> ServerFigures {
    let lookups = counter_delta(before, after, "http_cache_requests_total", None);
    let hits = counter_delta(
        before,
        after,
        "http_cache_requests_total",
        Some("result=\"hit\""),
    );
    let queries = "db_client_operation_duration_seconds_count";
    ServerFigures {
        cache_hit_ratio: (lookups > 0.0).then(|| hits / lookups),
        db_queries: gauge(after, queries).map(|_| counter_delta(before, after, queries, None)),
        pool_max: gauge(after, "db_client_connection_max"),
        pool_waiting: gauge(after, "db_client_connection_pending_requests"),
        l1_bytes: gauge(after, "http_cache_l1_bytes"),
        rss_kib: (rss_kib > 0).then_some(rss_kib),
    }
}

fn rss_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or(0)
}

/// Samples the instance's L1 cache bytes and RSS every 5 s while the load runs.
struct Sampler {
    stop: std::sync::mpsc::Sender<()>,
    thread: std::thread::JoinHandle<(f64, u64)>,
}

impl Sampler {
    fn start(instance: &Instance) -> Self {
        let (port, pid) = (instance.admin_port, instance.child.id());
        let (stop, stopped) = std::sync::mpsc::channel();
        let thread = std::thread::spawn(move || {
            let (mut l1_max, mut rss_max) = (0.0_f64, 0);
            loop {
                if let Ok((200, metrics)) = http_get(port, "/metrics") {
                    l1_max = l1_max.max(gauge(&metrics, "http_cache_l1_bytes").unwrap_or(0.0));
                }
                rss_max = rss_max.max(rss_kib(pid));
                if stopped.recv_timeout(Duration::from_secs(5)).is_ok() {
                    return (l1_max, rss_max);
                }
            }
        });
        Sampler { stop, thread }
    }

    /// The largest L1 bytes and RSS (KiB) seen.
    fn stop(self) -> (f64, u64) {
        let _ = self.stop.send(());
        self.thread.join().unwrap_or((0.0, 0))
    }
}

impl Drop for Instance {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A minimal HTTP/1.1 GET on 127.0.0.1: status and body.
fn http_get(port: u16, path: &str) -> Result<(u16, String)> {
    let mut stream = TcpStream::connect(("127.0.0.1", port)).map_err(|e| e.to_string())?;
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .map_err(|e| e.to_string())?;
    write!(
        stream,
        "GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n"
    )
    .map_err(|e| e.to_string())?;
    let mut response = String::new();
    stream
        .read_to_string(&mut response)
        .map_err(|e| e.to_string())?;
    let status = response
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .ok_or("malformed HTTP response")?;
    let body = response
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_owned())
        .unwrap_or_default();
    Ok((status, body))
}

/// Sum of a Prometheus counter's samples (optionally those whose labels contain `filter`).
fn counter(text: &str, name: &str, filter: Option<&str>) -> f64 {
    samples(text, name)
        .filter(|(labels, _)| filter.is_none_or(|f| labels.contains(f)))
        .map(|(_, v)| v)
        .sum()
}

fn counter_delta(before: &str, after: &str, name: &str, filter: Option<&str>) -> f64 {
    counter(after, name, filter) - counter(before, name, filter)
}

fn gauge(text: &str, name: &str) -> Option<f64> {
    let values: Vec<f64> = samples(text, name).map(|(_, v)| v).collect();
    (!values.is_empty()).then(|| values.iter().sum())
}

/// `(labels, value)` of every sample of metric `name` (chunked-encoding size lines and
/// comments are skipped by construction: they do not start with the name).
fn samples<'a>(text: &'a str, name: &'a str) -> impl Iterator<Item = (&'a str, f64)> + 'a {
    text.lines().filter_map(move |line| {
        let rest = line.strip_prefix(name)?;
        let (labels, value) = match rest.strip_prefix('{') {
            Some(rest) => rest.split_once('}')?,
            None if rest.starts_with(' ') => ("", rest),
            None => return None,
        };
        Some((labels, value.trim().split(' ').next()?.parse().ok()?))
    })
}

fn markdown(report: &Value) -> String {
    let mut rows = BTreeMap::new();
    let f = |v: &Value| {
        v.as_f64()
            .map(|x| format!("{x:.2}"))
            .unwrap_or_else(|| v.to_string())
    };
    rows.insert("1 requests/s", f(&report["requests_per_second"]));
    rows.insert(
        "2 latency p50 / p95 / p99 / max (ms)",
        format!(
            "{} / {} / {} / {}",
            f(&report["latency_ms"]["p50"]),
            f(&report["latency_ms"]["p95"]),
            f(&report["latency_ms"]["p99"]),
            f(&report["latency_ms"]["max"])
        ),
    );
    rows.insert("3 error rate (%)", f(&report["error_rate_pct"]));
    rows.insert("4 cache hit ratio", f(&report["cache_hit_ratio"]));
    rows.insert(
        "5 DB pool max / waiting at end",
        format!(
            "{} / {}",
            f(&report["db_pool"]["max"]),
            f(&report["db_pool"]["waiting_at_end"])
        ),
    );
    rows.insert(
        "6 RSS start / end / max (KiB)",
        format!(
            "{} / {} / {}",
            report["rss_kib"]["start"], report["rss_kib"]["end"], report["rss_kib"]["max"]
        ),
    );
    let l1 = &report["cache_l1_bytes"];
    let mib = |v: &Value| format!("{:.2}", v.as_f64().unwrap_or(0.0) / (1024.0 * 1024.0));
    rows.insert(
        "6a L1 cache MiB start / end / max (capacity)",
        format!(
            "{} / {} / {} ({})",
            mib(&l1["start"]),
            mib(&l1["end"]),
            mib(&l1["max"]),
            mib(&l1["capacity"])
        ),
    );
    if let Some(list) = report.get("list_endpoint") {
        rows.insert(
            "7 list endpoint req/s, all layers",
            f(&list["layers_all_rps"]),
        );
        rows.insert(
            "8 list endpoint req/s, LAYERS=none",
            f(&list["layers_none_rps"]),
        );
        rows.insert("9 list endpoint throughput ratio", f(&list["ratio"]));
    }
    let mut text = format!(
        "# Load scenario `{}`\n\n| figure | value |\n|---|---|\n",
        report["scenario"].as_str().unwrap_or("?")
    );
    for (key, value) in rows {
        text.push_str(&format!("| {} | {value} |\n", key[2..].trim_start()));
    }
    if let Some(steps) = report["step_figures"].as_array().filter(|s| !s.is_empty()) {
        text.push_str(
            "\n| step | target req/s | achieved req/s | errors | late | unsent | latency (ms) | cache hit ratio |\n|---|---|---|---|---|---|---|---|\n",
        );
        for step in steps {
            let optional = |v: &Value| match v {
                Value::Null => "-".to_owned(),
                Value::Number(n) if n.is_u64() => n.to_string(),
                v => f(v),
            };
            let latency = step["latency_ms"]
                .as_object()
                .map(|l| {
                    l.iter()
                        .map(|(name, v)| format!("{name} {}", f(v)))
                        .collect::<Vec<_>>()
                        .join(", ")
                })
                .unwrap_or_default();
            text.push_str(&format!(
                "| {} | {} | {} | {} | {} | {} | {latency} | {} |\n",
                step["label"].as_str().unwrap_or("?"),
                optional(&step["target_rps"]),
                f(&step["achieved_rps"]),
                step["errors"],
                optional(&step["late"]),
                optional(&step["unsent"]),
                optional(&step["server"]["cache_hit_ratio"]),
            ));
        }
    }
    let violations = report["violations"].as_array().map(Vec::len).unwrap_or(0);
    text.push_str(&format!(
        "\nBounds: error rate <= {}%, p95 <= {} ms, p99 <= {} ms: {}\n",
        report["bounds"]["max_error_pct"],
        report["bounds"]["max_p95_ms"],
        report["bounds"]["max_p99_ms"],
        if violations == 0 { "met" } else { "EXCEEDED" }
    ));
    text
}

fn parse_duration(text: &str) -> Result<u64> {
    let (number, unit) = text.split_at(
        text.find(|c: char| !c.is_ascii_digit())
            .unwrap_or(text.len()),
    );
    let n: u64 = number
        .parse()
        .map_err(|_| format!("bad duration {text:?}"))?;
    match unit {
        "" | "s" => Ok(n),
        "m" => Ok(n * 60),
        "h" => Ok(n * 3600),
        _ => Err(format!("bad duration {text:?}: use s, m or h")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_prometheus_samples() {
        let text = "# HELP x\nhttp_cache_requests_total{result=\"hit\",tier=\"l1\"} 10\nhttp_cache_requests_total{result=\"miss\"} 5\nhttp_cache_requests_total_other 99\ndb_client_connection_max 16\n";
        assert_eq!(counter(text, "http_cache_requests_total", None), 15.0);
        assert_eq!(
            counter(text, "http_cache_requests_total", Some("result=\"hit\"")),
            10.0
        );
        assert_eq!(gauge(text, "db_client_connection_max"), Some(16.0));
        assert_eq!(gauge(text, "absent"), None);
    }

    #[test]
    fn parses_durations() {
        assert_eq!(parse_duration("10m"), Ok(600));
        assert_eq!(parse_duration("90s"), Ok(90));
        assert_eq!(parse_duration("45"), Ok(45));
        assert!(parse_duration("ten").is_err());
    }

    #[test]
    fn soak_churns_a_small_cache_with_unique_keys() {
        let soak = scenario("soak", Some(60), &RateOptions::default()).unwrap();
        assert_eq!((soak.mode, soak.cache_capacity_mb), ("unique", 8));
        assert!(MIX_SCRIPT.contains(r#"if mode == "unique" then"#));
        let smoke = scenario("smoke", None, &RateOptions::default()).unwrap();
        assert_eq!((smoke.mode, smoke.cache_capacity_mb), ("mix", 64));
    }

    fn args(list: &[&str]) -> Vec<String> {
        list.iter().map(|a| (*a).to_owned()).collect()
    }

    #[test]
    fn a_rate_selects_the_fixed_rate_scenario_and_its_steps() {
        let (name, duration, rate) = parse_args(&args(&["--rate", "500,1000.5"])).unwrap();
        assert_eq!((name.as_str(), duration), ("fixed-rate", None));
        assert_eq!(rate.rates, [500.0, 1000.5]);
        let fixed = scenario(&name, Some(5), &rate).unwrap();
        assert!(fixed.steps.is_empty());
        assert_eq!(
            fixed.rate_steps,
            [
                RateStep {
                    rate: 500.0,
                    seconds: 5,
                    connections: DEFAULT_RATE_CONNECTIONS
                },
                RateStep {
                    rate: 1000.5,
                    seconds: 5,
                    connections: DEFAULT_RATE_CONNECTIONS
                }
            ]
        );
        // Without --rate: one step at the default rate, 10 s.
        let plain = scenario("fixed-rate", None, &RateOptions::default()).unwrap();
        assert_eq!(plain.rate_steps.len(), 1);
        assert_eq!(
            (plain.rate_steps[0].rate, plain.rate_steps[0].seconds),
            (DEFAULT_RATE, DEFAULT_RATE_STEP_SECONDS)
        );
        let (name, _, rate) = parse_args(&args(&[
            "fixed-rate",
            "--connections",
            "8",
            "--duration",
            "3s",
        ]))
        .unwrap();
        assert_eq!((name.as_str(), rate.connections), ("fixed-rate", Some(8)));
        assert_eq!(parse_args(&[]).unwrap().0, "smoke");
    }

    #[test]
    fn bad_rates_and_rates_on_wrk_scenarios_are_refused() {
        for bad in ["0", "-5", "fast", "100,", "NaN", "inf"] {
            let error = parse_args(&args(&["--rate", bad])).unwrap_err();
            assert!(error.contains("rate"), "{bad}: {error}");
        }
        assert!(parse_args(&args(&["--rate"])).is_err());
        assert!(parse_args(&args(&["--connections", "0"])).is_err());
        let rate = RateOptions {
            rates: vec![100.0],
            connections: None,
        };
        let error = scenario("stress", None, &rate).unwrap_err();
        assert!(error.contains("fixed-rate"), "{error}");
    }

    #[test]
    fn reads_the_services_figures_over_a_step() {
        let before = "http_cache_requests_total{result=\"hit\"} 10\nhttp_cache_requests_total{result=\"miss\"} 10\ndb_client_operation_duration_seconds_count{db_operation_name=\"SELECT\"} 5\n";
        let after = "http_cache_requests_total{result=\"hit\"} 100\nhttp_cache_requests_total{result=\"miss\"} 20\ndb_client_operation_duration_seconds_count{db_operation_name=\"SELECT\"} 15\ndb_client_connection_max 16\n";
        let figures = server_figures(before, after, 2048);
        assert_eq!(figures.cache_hit_ratio, Some(0.9));
        assert_eq!(figures.db_queries, Some(10.0));
        assert_eq!(figures.pool_max, Some(16.0));
        assert_eq!(figures.pool_waiting, None);
        assert_eq!(figures.rss_kib, Some(2048));
        let idle = server_figures(before, before, 0);
        assert_eq!((idle.cache_hit_ratio, idle.rss_kib), (None, None));
    }

    #[test]
    fn a_rate_the_service_did_not_keep_up_with_is_a_violation() {
        let step = |unsent| StepReport {
            label: "100 req/s".to_owned(),
            seconds: 10.0,
            target_rps: Some(100.0),
            unsent: Some(unsent),
            ..StepReport::default()
        };
        assert_eq!(unsent_violation(&step(10)), None);
        let found = unsent_violation(&step(11)).unwrap();
        assert!(found.starts_with("100 req/s: 11 of 1000"), "{found}");
        assert_eq!(unsent_violation(&StepReport::default()), None);
    }

    #[test]
    fn flags_scenario_bounds() {
        let scenario = scenario("smoke", None, &RateOptions::default()).unwrap();
        let fine = Figures {
            requests: 1000.0,
            seconds: 10.0,
            p95_ms: 10.0,
            p99_ms: 20.0,
            ..Figures::default()
        };
        assert!(violations(&scenario, &fine).is_empty());
        let slow = Figures {
            errors: 5.0,
            p99_ms: 900.0,
            ..fine
        };
        assert_eq!(violations(&scenario, &slow).len(), 2);
    }
}
