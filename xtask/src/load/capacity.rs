//! `cargo xtask load capacity`: steps a fixed rate up (oha, open loop, latency from each
//! request's scheduled time) until a step misses the bound, against the example service with
//! all layers and with `LAYERS=none`, and reports the highest rate that met it.
//!
//! A step meets the bound when its p99 is at most the bound, no request failed, and the
//! service answered at least [`ACHIEVED_SHARE`] of the rate (so a generator that could not
//! send, or a service that stalled, is no pass). The search stops at the first step that
//! misses it: past saturation an open-loop queue only grows, and a higher rate that happens
//! to pass after a failure is noise, not capacity.
//!
//! The bound defaults to the *baseline bound*, [`baseline_bound`]: [`BOUND_FACTOR`] times the
//! p99 measured at [`REFERENCE_RATE`] (a rate far below what the service serves) on the
//! run's first instance after a [`WARM_UP_SECONDS`] warm-up, and at least
//! [`BOUND_FLOOR_MS`]. "Capacity" then reads as the
//! highest rate at which the slowest requests stay within a few times their unloaded latency,
//! on this machine, as loaded as it is during the run; `--bound-ms` sets a fixed bound
//! instead.

use serde_json::{Value, json};

use super::oha::{RateStep, format_rate};
use super::report::{CapacityFigures, CapacityInstance, Report, StepReport};
use super::{DEFAULT_RATE_CONNECTIONS, OpenLoop, parse_duration, step_json};
use crate::Result;

/// The baseline bound is this many times the p99 at the reference rate...
pub(crate) const BOUND_FACTOR: f64 = 5.0;
/// ...and never below this (ms): under it, a scheduler hiccup on a shared machine is enough
/// to miss the bound.
pub(crate) const BOUND_FLOOR_MS: f64 = 20.0;
/// The reference rate (req/s) whose p99 sets the baseline bound: low enough that the
/// service is idle most of the time, high enough that a 5 s step has 500 requests.
pub(crate) const REFERENCE_RATE: f64 = 100.0;
/// A step meets the bound only when the service answered at least this share of its rate.
pub(crate) const ACHIEVED_SHARE: f64 = 0.99;
/// The longest ladder a run may climb.
const MAX_STEPS: usize = 30;

/// Each instance first serves [`REFERENCE_RATE`] for this long, unmeasured: a cold cache and
/// pool would otherwise set the bound (and the first step) by their first misses.
pub(crate) const WARM_UP_SECONDS: u64 = 3;

/// The ladder without options: 250 req/s, x1.5 each step, up to 20000 req/s (11 steps), 5 s
/// a step.
const DEFAULT_START: f64 = 250.0;
const DEFAULT_FACTOR: f64 = 1.5;
const DEFAULT_MAX: f64 = 20000.0;
const DEFAULT_STEP_SECONDS: u64 = 5;

/// The baseline bound (ms) from the p99 (ms) measured at [`REFERENCE_RATE`].
pub(crate) fn baseline_bound(reference_p99_ms: f64) -> f64 {
    (reference_p99_ms * BOUND_FACTOR).max(BOUND_FLOOR_MS)
}

/// How the rate grows from one step to the next.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) enum Growth {
    /// `--step R`: add R req/s.
    Add(f64),
    /// `--factor F`: multiply by F.
    Multiply(f64),
}

/// What the command line asks of a capacity run.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct CapacityOptions {
    /// `--bound-ms`: a fixed p99 bound instead of the baseline bound.
    pub(crate) bound_ms: Option<f64>,
    pub(crate) start: f64,
    pub(crate) growth: Growth,
    pub(crate) max: f64,
    /// `--duration`: seconds per step.
    pub(crate) seconds: u64,
    pub(crate) connections: u32,
    /// `--layers on|off|both`: the `LAYERS` values of the instances searched, in order.
    pub(crate) layers: Vec<&'static str>,
}

impl CapacityOptions {
    /// `[--bound-ms P] [--start R] [--step R|--factor F] [--max R] [--duration D]
    /// [--connections N] [--layers on|off|both]`.
    pub(crate) fn parse(args: &[String]) -> Result<CapacityOptions> {
        let mut options = CapacityOptions {
            bound_ms: None,
            start: DEFAULT_START,
            growth: Growth::Multiply(DEFAULT_FACTOR),
            max: DEFAULT_MAX,
            seconds: DEFAULT_STEP_SECONDS,
            connections: DEFAULT_RATE_CONNECTIONS,
            layers: vec!["all", "none"],
        };
        let (mut step, mut factor) = (None, None);
        let mut args = args.iter();
        while let Some(flag) = args.next() {
            let mut value = || {
                args.next()
                    .map(String::as_str)
                    .ok_or(format!("{flag} needs a value"))
            };
            match flag.as_str() {
                "--bound-ms" => options.bound_ms = Some(positive(flag, value()?)?),
                "--start" => options.start = positive(flag, value()?)?,
                "--step" => step = Some(positive(flag, value()?)?),
                "--factor" => {
                    let f = positive(flag, value()?)?;
                    if f < 1.05 {
                        return Err(format!("--factor must be at least 1.05, got {f}"));
                    }
                    factor = Some(f);
                }
                "--max" => options.max = positive(flag, value()?)?,
                "--duration" => {
                    options.seconds = parse_duration(value()?)?;
                    if options.seconds == 0 {
                        return Err("--duration must be at least 1s".to_owned());
                    }
                }
                "--connections" => {
                    let text = value()?;
                    options.connections = text
                        .parse()
                        .ok()
                        .filter(|n| (1..=10_000).contains(n))
                        .ok_or(format!(
                            "--connections takes a number from 1 to 10000, got {text:?}"
                        ))?;
                }
                "--layers" => {
                    options.layers = match value()? {
                        "on" => vec!["all"],
                        "off" => vec!["none"],
                        "both" => vec!["all", "none"],
                        other => {
                            return Err(format!("--layers takes on, off or both, got {other:?}"));
                        }
                    }
                }
                other => return Err(format!("unknown option {other} for load capacity")),
            }
        }
        options.growth = match (step, factor) {
            (Some(_), Some(_)) => return Err("give --step or --factor, not both".to_owned()),
            (Some(step), None) => Growth::Add(step),
            (None, Some(factor)) => Growth::Multiply(factor),
            (None, None) => options.growth,
        };
        Ok(options)
    }
}

/// A positive, finite number for `flag`.
pub(crate) fn positive(flag: &str, text: &str) -> Result<f64> {
    text.parse::<f64>()
        .ok()
        .filter(|v| v.is_finite() && *v > 0.0)
        .ok_or(format!("{flag} takes a number above 0, got {text:?}"))
}

/// The rates a search climbs: from `start`, growing by `growth`, while at most `max`, each
/// rounded to a whole request per second.
pub(crate) fn ladder(start: f64, growth: Growth, max: f64) -> Result<Vec<f64>> {
    let mut rates: Vec<f64> = Vec::new();
    let mut rate = start;
    while rate <= max {
        let whole = rate.round().max(1.0);
        if rates.last() != Some(&whole) {
            rates.push(whole);
        }
        if rates.len() > MAX_STEPS {
            return Err(format!(
                "from {start} to {max} req/s the ladder has more than {MAX_STEPS} steps: raise --step or --factor"
            ));
        }
        rate = match growth {
            Growth::Add(step) => rate + step,
            Growth::Multiply(factor) => rate * factor,
        };
    }
    if rates.is_empty() {
        return Err(format!("--start {start} is above --max {max}"));
    }
    Ok(rates)
}

/// Why `step` missed the bound (empty: it met it).
pub(crate) fn shortfalls(step: &StepReport, bound_ms: f64) -> Vec<String> {
    let mut found = Vec::new();
    match step.latency("p99") {
        Some(p99) if p99 <= bound_ms => {}
        Some(p99) => found.push(format!("p99 {p99:.1} ms > {bound_ms:.1} ms")),
        None => found.push("no p99".to_owned()),
    }
    if step.errors > 0 {
        found.push(format!("{} errors", step.errors));
    }
    if let Some(target) = step.target_rps {
        let achieved = step.achieved_rps();
        if achieved < target * ACHIEVED_SHARE {
            found.push(format!(
                "achieved {achieved:.1} req/s < {:.0} % of {target} req/s",
                ACHIEVED_SHARE * 100.0
            ));
        }
    }
    found
}

/// The capacity over steps run in increasing order, `(rate, met the bound)`: the highest
/// rate met before the first step that missed (`None`: the first missed), and whether every
/// step met it (the capacity is then at least the last rate).
pub(crate) fn capacity(steps: &[(f64, bool)]) -> (Option<f64>, bool) {
    let met: Vec<f64> = steps
        .iter()
        .take_while(|(_, met)| *met)
        .map(|&(rate, _)| rate)
        .collect();
    let capped = !steps.is_empty() && met.len() == steps.len();
    (met.last().copied(), capped)
}

/// The instance's name in reports.
fn instance_name(layers: &str) -> &'static str {
    if layers == "none" {
        "no layers"
    } else {
        "all layers"
    }
}

/// Runs the search and writes `target/xtask-load/capacity.{json,md,html}`.
pub(crate) fn run(args: &[String]) -> Result {
    let options = CapacityOptions::parse(args)?;
    let rates = ladder(options.start, options.growth, options.max)?;
    let open_loop = OpenLoop::prepare()?;
    let step = |rate| RateStep {
        rate,
        seconds: options.seconds,
        connections: options.connections,
    };

    let mut figures = CapacityFigures {
        bound_ms: options.bound_ms.unwrap_or(0.0),
        bound_source: format!("--bound-ms {}", options.bound_ms.unwrap_or(0.0)),
        instances: Vec::new(),
    };
    let mut steps = Vec::new();
    let mut instances_json = Vec::new();
    let mut reference_json = Value::Null;
    for &layers in &options.layers {
        let name = instance_name(layers);
        let instance = open_loop.start(layers)?;
        eprintln!("xtask load: warm-up, {REFERENCE_RATE} req/s for {WARM_UP_SECONDS} s ({name})");
        let warm_up = RateStep {
            seconds: WARM_UP_SECONDS,
            ..step(REFERENCE_RATE)
        };
        open_loop.step(&instance, &format!("capacity-{layers}-warm-up"), warm_up)?;
        if options.bound_ms.is_none() && figures.instances.is_empty() {
            eprintln!(
                "xtask load: reference step, {REFERENCE_RATE} req/s for {} s ({name})",
                options.seconds
            );
            let mut reference =
                open_loop.step(&instance, "capacity-reference", step(REFERENCE_RATE))?;
            let p99 = reference
                .latency("p99")
                .filter(|_| reference.errors == 0 && reference.requests > 0)
                .ok_or(format!(
                    "the reference step ({REFERENCE_RATE} req/s) failed: {} errors, {} responses",
                    reference.errors, reference.requests
                ))?;
            figures.bound_ms = baseline_bound(p99);
            figures.bound_source = format!(
                "baseline bound: {BOUND_FACTOR} x the p99 of {p99:.2} ms at {REFERENCE_RATE} req/s ({name}), at least {BOUND_FLOOR_MS} ms"
            );
            reference_json = json!({"rate": REFERENCE_RATE, "p99_ms": p99, "instance": name});
            reference.label = format!("reference, {}", reference.label);
            steps.push(reference);
        }
        let mut searched = CapacityInstance {
            name: name.to_owned(),
            ..CapacityInstance::default()
        };
        let mut steps_json = Vec::new();
        for (index, &rate) in rates.iter().enumerate() {
            eprintln!(
                "xtask load: {name}, {rate} req/s for {} s (bound p99 {:.1} ms)",
                options.seconds, figures.bound_ms
            );
            let file = format!("capacity-{layers}-{}", index + 1);
            let mut report = open_loop.step(&instance, &file, step(rate))?;
            let missed = shortfalls(&report, figures.bound_ms);
            let p99 = report.latency("p99").unwrap_or(0.0);
            searched.steps.push((rate, p99, missed.is_empty()));
            let mut json = step_json(&report);
            json["met"] = json!(missed.is_empty());
            json["shortfalls"] = json!(missed);
            steps_json.push(json);
            report.label = format!("{name}, {}", report.label);
            steps.push(report);
            if !missed.is_empty() {
                eprintln!(
                    "xtask load: {name} missed at {rate} req/s: {}",
                    missed.join(", ")
                );
                break;
            }
            // A breath between steps: the next starts from an idle service.
            std::thread::sleep(std::time::Duration::from_secs(1));
        }
        let met: Vec<(f64, bool)> = searched.steps.iter().map(|&(r, _, m)| (r, m)).collect();
        (searched.capacity_rps, searched.capped) = capacity(&met);
        instances_json.push(json!({
            "instance": name,
            "layers": layers,
            "capacity_rps": searched.capacity_rps,
            "capped": searched.capped,
            "steps": steps_json,
        }));
        figures.instances.push(searched);
    }

    let json = json!({
        "scenario": "capacity",
        "bound_ms": figures.bound_ms,
        "bound_source": figures.bound_source,
        "reference": reference_json,
        "criteria": {"max_p99_ms": figures.bound_ms, "max_errors": 0, "min_achieved_share": ACHIEVED_SHARE},
        "ladder": rates,
        "seconds_per_step": options.seconds,
        "connections": options.connections,
        "instances": instances_json,
        "step_figures": steps.iter().map(step_json).collect::<Vec<_>>(),
    });
    let markdown = markdown(&figures, &steps);
    let report = Report {
        scenario: "capacity".to_owned(),
        generator: format!(
            "Open loop: oha {} holds each rate for {} s over at most {} connections (latency from \
             each request's scheduled time), with the API's read mix, on 127.0.0.1; the rate \
             steps up until a step misses the bound, against each instance in turn.",
            super::oha::OHA_VERSION,
            options.seconds,
            options.connections
        ),
        steps,
        bounds: (0.0, figures.bound_ms, figures.bound_ms),
        capacity: Some(figures),
        ..Report::default()
    };
    open_loop.write("capacity", &json, &markdown, &super::html::render(&report))
}

/// The search in Markdown: the capacity per instance, then every step.
fn markdown(figures: &CapacityFigures, steps: &[StepReport]) -> String {
    let mut text = format!(
        "# Load scenario `capacity`\n\nA step meets the bound when p99 <= {:.1} ms ({}), no request failed and at least {:.0} % of the rate was answered.\n\n| instance | capacity (req/s) |\n|---|---|\n",
        figures.bound_ms,
        figures.bound_source,
        ACHIEVED_SHARE * 100.0
    );
    for instance in &figures.instances {
        text.push_str(&format!(
            "| {} | {} |\n",
            instance.name,
            capacity_text(instance)
        ));
    }
    text.push_str(
        "\n| step | achieved req/s | errors | late | p99 (ms) |\n|---|---|---|---|---|\n",
    );
    for step in steps {
        text.push_str(&format!(
            "| {} | {:.1} | {} | {} | {:.1} |\n",
            step.label,
            step.achieved_rps(),
            step.errors,
            step.late.unwrap_or(0),
            step.latency("p99").unwrap_or(0.0)
        ));
    }
    text
}

/// "1266", "at least 4271 (every step met the bound)" or "below 250 (the first step missed)".
pub(crate) fn capacity_text(instance: &CapacityInstance) -> String {
    match (instance.capacity_rps, instance.capped) {
        (Some(rate), true) => format!("at least {} (every step met the bound)", format_rate(rate)),
        (Some(rate), false) => format_rate(rate),
        (None, _) => match instance.steps.first() {
            Some(&(rate, _, _)) => format!("below {} (the first step missed)", format_rate(rate)),
            None => "not measured".to_owned(),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(list: &[&str]) -> Vec<String> {
        list.iter().map(|a| (*a).to_owned()).collect()
    }

    #[test]
    fn the_capacity_is_the_last_rate_met_before_the_first_miss() {
        let steps = [(250.0, true), (375.0, true), (563.0, false), (844.0, true)];
        // 844 passing after a miss is noise: the search stops at the first miss anyway.
        assert_eq!(capacity(&steps), (Some(375.0), false));
        assert_eq!(capacity(&[(250.0, false), (375.0, true)]), (None, false));
        assert_eq!(
            capacity(&[(250.0, true), (375.0, true)]),
            (Some(375.0), true)
        );
        assert_eq!(capacity(&[]), (None, false));
    }

    fn step(rate: f64, achieved: f64, errors: u64, p99: f64) -> StepReport {
        StepReport {
            label: format!("{rate} req/s"),
            seconds: 5.0,
            target_rps: Some(rate),
            requests: (achieved * 5.0) as u64,
            errors,
            latency_ms: vec![("p50".to_owned(), p99 / 4.0), ("p99".to_owned(), p99)],
            ..StepReport::default()
        }
    }

    #[test]
    fn a_step_meets_the_bound_only_on_time_without_errors_and_at_its_rate() {
        assert!(shortfalls(&step(500.0, 500.0, 0, 19.9), 20.0).is_empty());
        assert!(shortfalls(&step(500.0, 495.0, 0, 20.0), 20.0).is_empty());
        let slow = shortfalls(&step(500.0, 500.0, 0, 20.1), 20.0);
        assert_eq!(slow, ["p99 20.1 ms > 20.0 ms"]);
        let failing = shortfalls(&step(500.0, 500.0, 1, 5.0), 20.0);
        assert_eq!(failing, ["1 errors"]);
        let behind = shortfalls(&step(500.0, 490.0, 0, 5.0), 20.0);
        assert_eq!(behind.len(), 1);
        assert!(behind[0].starts_with("achieved 490.0 req/s"), "{behind:?}");
        let mut empty = step(500.0, 0.0, 0, 0.0);
        empty.latency_ms.clear();
        assert_eq!(shortfalls(&empty, 20.0).len(), 2);
    }

    #[test]
    fn a_search_over_synthetic_steps_finds_the_knee() {
        // p99 flat until 1266 req/s, then the queue grows: the knee is found with the
        // baseline bound of a 2 ms reference.
        let bound = baseline_bound(2.0);
        assert_eq!(bound, BOUND_FLOOR_MS);
        let rates = ladder(DEFAULT_START, Growth::Multiply(DEFAULT_FACTOR), DEFAULT_MAX).unwrap();
        let p99 = |rate: f64| if rate <= 1266.0 { 4.0 } else { 900.0 };
        let met: Vec<(f64, bool)> = rates
            .iter()
            .map(|&r| (r, shortfalls(&step(r, r, 0, p99(r)), bound).is_empty()))
            .collect();
        assert_eq!(capacity(&met), (Some(1266.0), false));
        // A slower reference loosens the bound: 5 x 10 ms.
        assert_eq!(baseline_bound(10.0), 50.0);
    }

    #[test]
    fn the_ladder_grows_by_a_factor_or_a_step_up_to_the_max() {
        assert_eq!(
            ladder(250.0, Growth::Multiply(1.5), 6000.0).unwrap(),
            [250.0, 375.0, 563.0, 844.0, 1266.0, 1898.0, 2848.0, 4271.0]
        );
        let default = ladder(DEFAULT_START, Growth::Multiply(DEFAULT_FACTOR), DEFAULT_MAX);
        assert_eq!(default.unwrap().last(), Some(&14416.0));
        assert_eq!(
            ladder(100.0, Growth::Add(200.0), 700.0).unwrap(),
            [100.0, 300.0, 500.0, 700.0]
        );
        assert!(ladder(500.0, Growth::Add(100.0), 400.0).is_err());
        assert!(ladder(1.0, Growth::Add(1.0), 1000.0).is_err());
    }

    #[test]
    fn parses_the_options_and_refuses_bad_ones() {
        let plain = CapacityOptions::parse(&[]).unwrap();
        assert_eq!(plain.layers, ["all", "none"]);
        assert_eq!(plain.growth, Growth::Multiply(DEFAULT_FACTOR));
        assert_eq!(
            (plain.bound_ms, plain.seconds),
            (None, DEFAULT_STEP_SECONDS)
        );
        let set = CapacityOptions::parse(&args(&[
            "--bound-ms",
            "50",
            "--start",
            "100",
            "--step",
            "100",
            "--max",
            "900",
            "--duration",
            "3s",
            "--layers",
            "off",
        ]))
        .unwrap();
        assert_eq!(set.bound_ms, Some(50.0));
        assert_eq!((set.start, set.max, set.seconds), (100.0, 900.0, 3));
        assert_eq!(set.growth, Growth::Add(100.0));
        assert_eq!(set.layers, ["none"]);
        for bad in [
            &["--step", "100", "--factor", "2"][..],
            &["--factor", "1"],
            &["--bound-ms", "-1"],
            &["--layers", "some"],
            &["--duration", "0s"],
            &["--start"],
            &["--rate", "5"],
        ] {
            assert!(CapacityOptions::parse(&args(bad)).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn names_a_capacity_below_at_and_above_the_ladder() {
        let instance = |steps: Vec<(f64, f64, bool)>| {
            let met: Vec<(f64, bool)> = steps.iter().map(|&(r, _, m)| (r, m)).collect();
            let (capacity_rps, capped) = capacity(&met);
            CapacityInstance {
                name: "all layers".to_owned(),
                steps,
                capacity_rps,
                capped,
            }
        };
        let found = instance(vec![(250.0, 3.0, true), (375.0, 80.0, false)]);
        assert_eq!(capacity_text(&found), "250");
        let capped = instance(vec![(250.0, 3.0, true)]);
        assert!(capacity_text(&capped).starts_with("at least 250"));
        let below = instance(vec![(250.0, 80.0, false)]);
        assert!(capacity_text(&below).starts_with("below 250"));
    }
}
