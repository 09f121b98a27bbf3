//! `cargo xtask load recovery`: a spike at a fixed rate, and the time until the steady
//! traffic's p99 is back under the bound once it ends.
//!
//! Two oha processes share the example service (all layers, or `LAYERS=none` with
//! `--layers off`), after a warm-up at the steady rate: one holds the steady rate for
//! the whole run (before, during and after the spike), the other adds the spike's extra rate
//! for the spike's seconds. Recovery is read from the steady process alone: its requests are
//! scheduled whatever happens and their latency counts from the scheduled time, so the
//! backlog the spike leaves behind shows in the latency of the steady requests that wait
//! behind it. (The spike's own unsent requests end with it, as clients that give up.)
//!
//! The steady requests are bucketed by the second they were scheduled in; the run has
//! recovered at the first second at or after the spike's end from which
//! [`RECOVERED_SECONDS`] seconds in a row have a p99 at most the bound, each with at least
//! [`MIN_ANSWERED_SHARE`] of its requests answered (a second whose requests were never sent
//! is no recovery). The recovery time is that second minus the spike's end: whole seconds,
//! 0 when the first second after the spike is already under the bound.
//!
//! The bound defaults to the baseline bound ([`baseline_bound`]) with the steady traffic
//! before the spike as the reference; `--bound-ms` sets a fixed one.

use std::time::{Duration, Instant};

use serde_json::json;

use super::capacity::{BOUND_FACTOR, BOUND_FLOOR_MS, WARM_UP_SECONDS, baseline_bound, positive};
use super::oha::{self, RateStep, Running, format_rate};
use super::report::{self, RecoveryFigures, Report, Sample, StepReport};
use super::{DEFAULT_RATE_CONNECTIONS, OpenLoop, parse_duration, step_json};
use crate::Result;

/// Seconds in a row under the bound that count as recovered.
pub(crate) const RECOVERED_SECONDS: usize = 3;
/// A second counts only when at least this share of its scheduled requests was answered.
pub(crate) const MIN_ANSWERED_SHARE: f64 = 0.9;

/// The steady rate, the rate during the spike and the phases' seconds without options: a
/// tenth of what this 2-core machine serves with all layers (`load capacity` found about
/// 9600 req/s), and a spike past it.
const DEFAULT_BASE_RATE: f64 = 1000.0;
const DEFAULT_SPIKE_RATE: f64 = 15000.0;
const LEAD_SECONDS: u64 = 5;
const DEFAULT_SPIKE_SECONDS: u64 = 5;
const DEFAULT_AFTER_SECONDS: u64 = 20;
/// The spike's connections without `--spike-connections`: a spike is new clients, so it
/// brings more connections than the steady traffic's pool.
const DEFAULT_SPIKE_CONNECTIONS: u32 = 200;

/// What the command line asks of a recovery run.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct RecoveryOptions {
    /// `--rate`: the steady rate, before, during and after the spike.
    pub(crate) base_rps: f64,
    /// `--spike-rate`: the total rate during the spike.
    pub(crate) spike_rps: f64,
    /// `--duration`: the spike's seconds.
    pub(crate) spike_seconds: u64,
    /// `--after`: seconds of steady rate after the spike.
    pub(crate) after_seconds: u64,
    pub(crate) bound_ms: Option<f64>,
    /// `--connections`: the steady traffic's.
    pub(crate) connections: u32,
    /// `--spike-connections`: the spike's, as many as its new clients bring.
    pub(crate) spike_connections: u32,
    /// `--layers on|off`: the `LAYERS` value of the instance.
    pub(crate) layers: &'static str,
}

impl RecoveryOptions {
    /// `[--rate R] [--spike-rate R] [--duration D] [--after D] [--bound-ms P]
    /// [--connections N]`.
    pub(crate) fn parse(args: &[String]) -> Result<RecoveryOptions> {
        let mut options = RecoveryOptions {
            base_rps: DEFAULT_BASE_RATE,
            spike_rps: DEFAULT_SPIKE_RATE,
            spike_seconds: DEFAULT_SPIKE_SECONDS,
            after_seconds: DEFAULT_AFTER_SECONDS,
            bound_ms: None,
            connections: DEFAULT_RATE_CONNECTIONS,
            spike_connections: DEFAULT_SPIKE_CONNECTIONS,
            layers: "all",
        };
        let mut args = args.iter();
        while let Some(flag) = args.next() {
            let value = args
                .next()
                .map(String::as_str)
                .ok_or(format!("{flag} needs a value"))?;
            match flag.as_str() {
                "--rate" => options.base_rps = positive(flag, value)?,
                "--spike-rate" => options.spike_rps = positive(flag, value)?,
                "--duration" => options.spike_seconds = parse_duration(value)?,
                "--after" => options.after_seconds = parse_duration(value)?,
                "--bound-ms" => options.bound_ms = Some(positive(flag, value)?),
                "--connections" => options.connections = connections(flag, value)?,
                "--spike-connections" => options.spike_connections = connections(flag, value)?,
                "--layers" => {
                    options.layers = match value {
                        "on" => "all",
                        "off" => "none",
                        other => return Err(format!("--layers takes on or off, got {other:?}")),
                    }
                }
                other => return Err(format!("unknown option {other} for load recovery")),
            }
        }
        if options.base_rps < 20.0 {
            return Err(format!(
                "--rate must be at least 20 req/s (a second needs enough requests for a p99), got {}",
                options.base_rps
            ));
        }
        if options.spike_rps <= options.base_rps {
            return Err(format!(
                "--spike-rate ({}) must be above --rate ({})",
                options.spike_rps, options.base_rps
            ));
        }
        if options.spike_seconds == 0 || (options.after_seconds as usize) < RECOVERED_SECONDS {
            return Err(format!(
                "--duration must be at least 1s and --after at least {RECOVERED_SECONDS}s"
            ));
        }
        Ok(options)
    }
}

/// A number of connections from 1 to 10000 for `flag`.
fn connections(flag: &str, value: &str) -> Result<u32> {
    value
        .parse()
        .ok()
        .filter(|n| (1..=10_000).contains(n))
        .ok_or(format!(
            "{flag} takes a number from 1 to 10000, got {value:?}"
        ))
}

/// One second of the steady traffic, by scheduled time.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub(crate) struct Window {
    /// Requests scheduled in this second that were answered.
    pub(crate) answered: u64,
    /// Their p99 from the scheduled time (ms).
    pub(crate) p99_ms: f64,
}

/// `samples` bucketed by the whole second they were scheduled in, over `seconds`.
pub(crate) fn windows(samples: &[Sample], seconds: u64) -> Vec<Window> {
    let mut latencies = vec![Vec::new(); seconds as usize];
    for sample in samples {
        if let Some(bucket) = latencies.get_mut(sample.scheduled.max(0.0) as usize) {
            bucket.push(sample.latency_ms());
        }
    }
    latencies
        .into_iter()
        .map(|mut values| {
            values.sort_by(f64::total_cmp);
            Window {
                answered: values.len() as u64,
                p99_ms: report::nearest_rank(&values, 99.0),
            }
        })
        .collect()
}

/// Seconds from `spike_end` (a whole second) until the steady traffic was back under
/// `bound_ms`: see the module's docs. `None`: not within `windows`.
pub(crate) fn recovery_seconds(
    windows: &[Window],
    base_rps: f64,
    spike_end: u64,
    bound_ms: f64,
) -> Option<u64> {
    let under =
        |w: &Window| w.answered as f64 >= base_rps * MIN_ANSWERED_SHARE && w.p99_ms <= bound_ms;
    let first = spike_end as usize;
    (first..windows.len())
        .find(|&k| {
            windows
                .get(k..k + RECOVERED_SECONDS)
                .is_some_and(|run| run.iter().all(under))
        })
        .map(|k| (k - first) as u64)
}

/// The samples scheduled in `[from, to)`, with their times moved to start at `from`.
fn phase(samples: &[Sample], from: f64, to: f64) -> Vec<Sample> {
    samples
        .iter()
        .filter(|s| s.scheduled >= from && s.scheduled < to)
        .map(|s| Sample {
            scheduled: s.scheduled - from,
            sent: s.sent - from,
            ended: s.ended - from,
            status: s.status,
        })
        .collect()
}

/// Runs the spike and writes `target/xtask-load/recovery.{json,md,html}`.
pub(crate) fn run(args: &[String]) -> Result {
    let options = RecoveryOptions::parse(args)?;
    let open_loop = OpenLoop::prepare()?;
    let spike_start = LEAD_SECONDS;
    let spike_end = spike_start + options.spike_seconds;
    let total = spike_end + options.after_seconds;
    let instance = open_loop.start(options.layers)?;
    let urls = open_loop.urls_file(&instance)?;
    eprintln!(
        "xtask load: warm-up, {} req/s for {WARM_UP_SECONDS} s",
        options.base_rps
    );
    let warm_up = RateStep {
        rate: options.base_rps,
        seconds: WARM_UP_SECONDS,
        connections: options.connections,
    };
    open_loop.step(&instance, "recovery-warm-up", warm_up)?;
    eprintln!(
        "xtask load: {} req/s for {total} s, {} req/s from {spike_start} s to {spike_end} s (oha)",
        options.base_rps, options.spike_rps
    );
    let metrics_before = instance.metrics()?;
    let steady = Running::spawn(
        &open_loop.oha,
        &open_loop.dir,
        "recovery-steady",
        &urls,
        RateStep {
            rate: options.base_rps,
            seconds: total,
            connections: options.connections,
        },
    )?;
    let started = Instant::now();
    std::thread::sleep(Duration::from_secs(spike_start));
    let metrics_lead = instance.metrics()?;
    let spike_offset = started.elapsed().as_secs_f64();
    let spike = Running::spawn(
        &open_loop.oha,
        &open_loop.dir,
        "recovery-spike",
        &urls,
        RateStep {
            rate: options.spike_rps - options.base_rps,
            seconds: options.spike_seconds,
            connections: options.spike_connections,
        },
    )?;
    let (spike_samples, spike_errors) = spike.finish()?;
    let metrics_spike = instance.metrics()?;
    let (steady_samples, steady_errors) = steady.finish()?;
    let shifted: Vec<Sample> = spike_samples
        .iter()
        .map(|s| Sample {
            scheduled: s.scheduled + spike_offset,
            sent: s.sent + spike_offset,
            ended: s.ended + spike_offset,
            status: s.status,
        })
        .collect();

    let phase_step = |rate: f64, from: u64, to: u64, samples: Vec<Sample>, errors: u64| {
        let step = RateStep {
            rate,
            seconds: to - from,
            connections: options.connections,
        };
        oha::figures(step, &samples, errors)
    };
    let mut before = phase_step(
        options.base_rps,
        0,
        spike_start,
        phase(&steady_samples, 0.0, spike_start as f64),
        0,
    );
    before.label = format!("before, {}", before.label);
    before.server = instance_figures(&instance, &metrics_before, &metrics_lead);
    let mut during_samples = phase(&steady_samples, spike_start as f64, spike_end as f64);
    during_samples.extend(phase(&shifted, spike_start as f64, spike_end as f64));
    let mut during = phase_step(
        options.spike_rps,
        spike_start,
        spike_end,
        during_samples,
        spike_errors,
    );
    during.label = format!("spike, {}", during.label);
    during.server = instance_figures(&instance, &metrics_lead, &metrics_spike);
    // oha counts transport errors per process, not per second: the steady process's land
    // in the phase after the spike, where a backlog would time out.
    let mut after = phase_step(
        options.base_rps,
        spike_end,
        total,
        phase(&steady_samples, spike_end as f64, total as f64),
        steady_errors,
    );
    after.label = format!("after, {}", after.label);
    after.server = instance.server_figures(&metrics_spike)?;

    let (bound_ms, bound_source) = match options.bound_ms {
        Some(bound) => (bound, format!("--bound-ms {bound}")),
        None => {
            let p99 = before.latency("p99").unwrap_or(0.0);
            (
                baseline_bound(p99),
                format!(
                    "baseline bound: {BOUND_FACTOR} x the p99 of {p99:.2} ms at the steady {} req/s before the spike, at least {BOUND_FLOOR_MS} ms",
                    format_rate(options.base_rps)
                ),
            )
        }
    };
    let windows = windows(&steady_samples, total);
    let recovered = recovery_seconds(&windows, options.base_rps, spike_end, bound_ms);
    let enough = options.base_rps * MIN_ANSWERED_SHARE;
    let figures = RecoveryFigures {
        bound_ms,
        bound_source,
        base_rps: options.base_rps,
        spike_rps: options.spike_rps,
        spike_start_s: spike_start as f64,
        spike_end_s: spike_end as f64,
        p99_ms: windows
            .iter()
            .map(|w| (w.answered as f64 >= enough).then_some(w.p99_ms))
            .collect(),
        recovery_s: recovered.map(|s| s as f64),
    };
    let steps = vec![before, during, after];
    let json = json!({
        "scenario": "recovery",
        "layers": options.layers,
        "connections": options.connections,
        "spike_connections": options.spike_connections,
        "base_rps": options.base_rps,
        "spike_rps": options.spike_rps,
        "spike_start_s": spike_start,
        "spike_end_s": spike_end,
        "spike_generator_offset_s": spike_offset - spike_start as f64,
        "seconds": total,
        "bound_ms": bound_ms,
        "bound_source": figures.bound_source,
        "recovered_seconds_in_a_row": RECOVERED_SECONDS,
        "recovery_s": recovered,
        "steady_p99_ms_per_second": figures.p99_ms,
        "steady_answered_per_second": windows.iter().map(|w| w.answered).collect::<Vec<_>>(),
        "step_figures": steps.iter().map(step_json).collect::<Vec<_>>(),
    });
    let markdown = markdown(&figures, &steps);
    let verdict = match recovered {
        Some(_) => Ok(()),
        None => Err(format!(
            "p99 was not back under {bound_ms:.1} ms for {RECOVERED_SECONDS} s within {} s of the spike's end",
            options.after_seconds
        )),
    };
    let report = Report {
        scenario: "recovery".to_owned(),
        generator: format!(
            "Open loop: one oha {} process holds {} req/s for {total} s over at most {} \
             connections, a second adds {} req/s from {spike_start} s to {spike_end} s (a spike \
             to {} req/s) over at most {}, with the API's read mix, on 127.0.0.1 against the \
             example service with {}, after a {WARM_UP_SECONDS} s warm-up. Latency counts from \
             each request's scheduled time.",
            oha::OHA_VERSION,
            format_rate(options.base_rps),
            options.connections,
            format_rate(options.spike_rps - options.base_rps),
            format_rate(options.spike_rps),
            options.spike_connections,
            if options.layers == "none" {
                "LAYERS=none"
            } else {
                "all layers"
            }
        ),
        steps,
        bounds: (0.0, bound_ms, bound_ms),
        violations: verdict.clone().err().into_iter().collect(),
        recovery: Some(figures),
        ..Report::default()
    };
    open_loop.write("recovery", &json, &markdown, &super::html::render(&report))?;
    verdict
}

/// The service's figures between two `/metrics` snapshots.
fn instance_figures(
    instance: &super::Instance,
    before: &str,
    after: &str,
) -> report::ServerFigures {
    super::server_figures(before, after, instance.rss_kib())
}

/// "3 s" or "not within the run".
pub(crate) fn recovery_text(figures: &RecoveryFigures) -> String {
    match figures.recovery_s {
        Some(seconds) => format!("{seconds:.0} s"),
        None => "not within the run".to_owned(),
    }
}

fn markdown(figures: &RecoveryFigures, steps: &[StepReport]) -> String {
    let mut text = format!(
        "# Load scenario `recovery`\n\n| figure | value |\n|---|---|\n| steady / spike rate (req/s) | {} / {} |\n| spike | {:.0} s to {:.0} s |\n| bound | p99 <= {:.1} ms ({}) |\n| recovery after the spike | {} |\n",
        format_rate(figures.base_rps),
        format_rate(figures.spike_rps),
        figures.spike_start_s,
        figures.spike_end_s,
        figures.bound_ms,
        figures.bound_source,
        recovery_text(figures),
    );
    text.push_str("\n| phase | achieved req/s | errors | late | unsent | p99 (ms) |\n|---|---|---|---|---|---|\n");
    for step in steps {
        text.push_str(&format!(
            "| {} | {:.1} | {} | {} | {} | {:.1} |\n",
            step.label,
            step.achieved_rps(),
            step.errors,
            step.late.unwrap_or(0),
            step.unsent.unwrap_or(0),
            step.latency("p99").unwrap_or(0.0)
        ));
    }
    let seconds: Vec<String> = figures
        .p99_ms
        .iter()
        .map(|p| p.map_or_else(|| "-".to_owned(), |p| format!("{p:.0}")))
        .collect();
    text.push_str(&format!(
        "\nSteady traffic's p99 per second (ms): {}\n",
        seconds.join(" ")
    ));
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(list: &[&str]) -> Vec<String> {
        list.iter().map(|a| (*a).to_owned()).collect()
    }

    /// A timeline at 100 req/s: p99 `p99[k]` in second k, every request answered.
    fn timeline(p99: &[f64]) -> Vec<Window> {
        p99.iter()
            .map(|&p99_ms| Window {
                answered: 100,
                p99_ms,
            })
            .collect()
    }

    #[test]
    fn recovery_counts_from_the_spikes_end_to_three_seconds_under_the_bound() {
        // Spike over seconds 5..10; back under 20 ms from second 13 on.
        let p99 = [
            3.0, 3.0, 3.0, 3.0, 3.0, 400.0, 900.0, 1500.0, 2000.0, 2500.0, 1800.0, 600.0, 45.0,
            4.0, 3.0, 3.0, 3.0,
        ];
        assert_eq!(recovery_seconds(&timeline(&p99), 100.0, 10, 20.0), Some(3));
        // A looser bound: back under 50 ms from second 12.
        assert_eq!(recovery_seconds(&timeline(&p99), 100.0, 10, 50.0), Some(2));
        // Under the bound at once.
        let calm = [3.0; 15];
        assert_eq!(recovery_seconds(&timeline(&calm), 100.0, 10, 20.0), Some(0));
    }

    #[test]
    fn one_good_second_or_a_short_tail_is_not_recovery() {
        // Second 11 dips under the bound, 12 does not: recovered only from 13.
        let p99 = [
            3.0, 900.0, 900.0, 900.0, 900.0, 900.0, 900.0, 900.0, 900.0, 900.0, 900.0, 5.0, 300.0,
            5.0, 5.0, 5.0,
        ];
        assert_eq!(recovery_seconds(&timeline(&p99), 100.0, 10, 20.0), Some(3));
        // Two seconds under the bound at the end of the run: not three in a row.
        let short = [3.0, 3.0, 900.0, 900.0, 5.0, 5.0];
        assert_eq!(recovery_seconds(&timeline(&short), 100.0, 2, 20.0), None);
    }

    #[test]
    fn a_second_whose_requests_were_not_answered_is_not_recovered() {
        let mut seconds = timeline(&[3.0; 10]);
        // Second 5 has a fast p99 over the few requests that were sent at all.
        seconds[5].answered = 10;
        assert_eq!(recovery_seconds(&seconds, 100.0, 4, 20.0), Some(2));
    }

    #[test]
    fn windows_bucket_by_scheduled_second() {
        let sample = |scheduled: f64, ended: f64| Sample {
            scheduled,
            sent: scheduled,
            ended,
            status: 200,
        };
        let samples = [
            sample(0.1, 0.102),
            sample(0.9, 2.9),
            sample(1.5, 1.503),
            sample(7.0, 7.1),
        ];
        let w = windows(&samples, 3);
        assert_eq!(w.len(), 3);
        assert_eq!((w[0].answered, w[1].answered, w[2].answered), (2, 1, 0));
        assert!((w[0].p99_ms - 2000.0).abs() < 1e-6, "{w:?}");
        assert!((w[1].p99_ms - 3.0).abs() < 1e-6, "{w:?}");
        let moved = phase(&samples, 1.0, 2.0);
        assert_eq!(moved.len(), 1);
        assert!((moved[0].scheduled - 0.5).abs() < 1e-9);
    }

    #[test]
    fn parses_the_options_and_refuses_bad_ones() {
        let plain = RecoveryOptions::parse(&[]).unwrap();
        assert_eq!(
            (plain.base_rps, plain.spike_rps),
            (DEFAULT_BASE_RATE, DEFAULT_SPIKE_RATE)
        );
        let set = RecoveryOptions::parse(&args(&[
            "--rate",
            "200",
            "--spike-rate",
            "4000",
            "--duration",
            "3s",
            "--after",
            "15s",
            "--bound-ms",
            "40",
            "--spike-connections",
            "500",
            "--layers",
            "off",
        ]))
        .unwrap();
        assert_eq!((set.base_rps, set.spike_rps), (200.0, 4000.0));
        assert_eq!((set.spike_seconds, set.after_seconds), (3, 15));
        assert_eq!(set.bound_ms, Some(40.0));
        assert_eq!((set.spike_connections, set.layers), (500, "none"));
        assert_eq!(plain.layers, "all");
        for bad in [
            &["--rate", "5"][..],
            &["--rate", "500", "--spike-rate", "400"],
            &["--after", "2s"],
            &["--duration", "0s"],
            &["--bound-ms", "x"],
            &["--layers", "both"],
            &["--spike-connections", "0"],
        ] {
            assert!(RecoveryOptions::parse(&args(bad)).is_err(), "{bad:?}");
        }
    }
}
