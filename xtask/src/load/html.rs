//! `target/xtask-load/<scenario>.html`: one load run for someone who did not run it. Plain
//! HTML with inline SVG charts, no script and nothing fetched: the file is the whole report.

use std::fmt::Write as _;

use super::capacity::{ACHIEVED_SHARE, capacity_text};
use super::oha::format_rate;
use super::recovery::{MIN_ANSWERED_SHARE, RECOVERED_SECONDS, recovery_text};
use super::report::{CapacityFigures, RecoveryFigures, Report, StepReport};
use crate::html::escape;

const WIDTH: f64 = 560.0;
const HEIGHT: f64 = 250.0;
/// Room around the plot for the axis labels and the legend.
const LEFT: f64 = 62.0;
const RIGHT: f64 = 14.0;
const TOP: f64 = 30.0;
const BOTTOM: f64 = 48.0;
/// One colour per step or series, reused past the end.
const PALETTE: [&str; 8] = [
    "#1f5fbf", "#d9731a", "#2a9d4b", "#b8336a", "#7a52c7", "#8c6d1f", "#1b9aaa", "#555555",
];

/// The whole report.
pub(crate) fn render(report: &Report) -> String {
    let title = format!("Load scenario {}", report.scenario);
    let mut out = format!(
        "<!doctype html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n\
         <title>{}</title>\n<style>\n\
         body {{ font: 14px/1.45 system-ui, sans-serif; margin: 2em; color: #222; max-width: 1200px; }}\n\
         table {{ border-collapse: collapse; margin: 0.5em 0 1em; }}\n\
         th, td {{ padding: 3px 9px; border-bottom: 1px solid #ddd; white-space: nowrap; }}\n\
         th {{ text-align: left; background: #f4f4f4; white-space: normal; }}\n\
         td.n {{ text-align: right; font-variant-numeric: tabular-nums; }}\n\
         .met {{ color: #1d7a35; }} .exceeded {{ color: #b01e1e; }}\n\
         .charts {{ display: flex; flex-wrap: wrap; gap: 16px; }}\n\
         .chart {{ border: 1px solid #ddd; border-radius: 4px; }}\n\
         p.note {{ color: #555; max-width: 80em; }}\n\
         </style>\n</head>\n<body>\n<h1>{}</h1>\n",
        escape(&title),
        escape(&title)
    );
    let _ = writeln!(out, "<p>{}</p>", escape(&report.generator));
    match (&report.capacity, &report.recovery) {
        (Some(capacity), _) => out.push_str(&capacity_summary(capacity)),
        (None, Some(recovery)) => out.push_str(&recovery_summary(recovery, &report.violations)),
        (None, None) => out.push_str(&bounds_summary(report)),
    }

    out.push_str("<h2>Steps</h2>\n");
    out.push_str(&steps_table(&report.steps));
    out.push_str(
        "<p class=\"note\">Latency of a closed-loop step (wrk, a fixed number of connections) \
         is measured from when a connection sent its request: while the service stalls, fewer \
         requests are sent, and the stall hides. An open-loop step (oha at a fixed rate) \
         measures it from when the schedule said to send the request, so a stall shows in the \
         latency of every request that should have gone out during it. <em>Late</em>: sent more \
         than 2 ms after its scheduled time because no connection was free; <em>unsent</em>: \
         scheduled in the step and never sent before it ended. Errors: transport errors, \
         timeouts and responses of status 400 and above.</p>\n",
    );

    out.push_str("<h2>Charts</h2>\n<div class=\"charts\">\n");
    if let Some(capacity) = &report.capacity {
        out.push_str(&capacity_chart(capacity));
    }
    if let Some(recovery) = &report.recovery {
        out.push_str(&recovery_chart(recovery));
    }
    out.push_str(&percentile_chart(&report.steps));
    out.push_str(&throughput_chart(&report.steps));
    if report.steps.iter().any(|s| !s.timeline.is_empty()) {
        out.push_str(&timeline_throughput_chart(&report.steps));
        out.push_str(&timeline_latency_chart(&report.steps));
    }
    out.push_str(&error_chart(&report.steps));
    out.push_str(&hit_ratio_chart(&report.steps));
    out.push_str("</div>\n");

    out.push_str(
        "<h2>The service's own figures</h2>\n<p class=\"note\">Read from <code>/metrics</code> on \
         the service's admin listener before and after each step: hits over lookups of the \
         response cache, database queries per second, the pool's size and waiters and the \
         in-memory cache's size at the step's end, and the process's resident memory.</p>\n",
    );
    out.push_str(&server_table(&report.steps));

    if !report.notes.is_empty() {
        out.push_str("<h2>Also measured</h2>\n<table>\n<tr><th>figure</th><th>value</th></tr>\n");
        for (name, value) in &report.notes {
            let _ = writeln!(
                out,
                "<tr><td>{}</td><td class=\"n\">{}</td></tr>",
                escape(name),
                escape(value)
            );
        }
        out.push_str("</table>\n");
    }
    out.push_str("</body>\n</html>\n");
    out
}

/// The scenario's bounds and whether the run met them.
fn bounds_summary(report: &Report) -> String {
    let mut out = String::new();
    let (max_error_pct, max_p95_ms, max_p99_ms) = report.bounds;
    let bounds = format!(
        "Bounds: error rate at most {max_error_pct} %, p95 at most {max_p95_ms} ms, p99 at most {max_p99_ms} ms"
    );
    if report.violations.is_empty() {
        let _ = writeln!(
            out,
            "<p class=\"met\"><strong>{}: met.</strong></p>",
            escape(&bounds)
        );
    } else {
        let _ = writeln!(
            out,
            "<p class=\"exceeded\"><strong>{}: exceeded.</strong></p>\n<ul>",
            escape(&bounds)
        );
        for violation in &report.violations {
            let _ = writeln!(out, "<li class=\"exceeded\">{}</li>", escape(violation));
        }
        out.push_str("</ul>\n");
    }
    out
}

/// The capacity per instance and what a step had to meet.
fn capacity_summary(capacity: &CapacityFigures) -> String {
    let mut out = format!(
        "<h2>Capacity</h2>\n<p>A step meets the bound when its p99 is at most <strong>{:.1} ms</strong> \
         ({}), no request failed and at least {:.0} % of its rate was answered. The rate steps \
         up until a step misses; the capacity is the highest rate met before that.</p>\n\
         <table>\n<tr><th>instance</th><th>capacity (req/s)</th><th>steps met / run</th></tr>\n",
        capacity.bound_ms,
        escape(&capacity.bound_source),
        ACHIEVED_SHARE * 100.0
    );
    for instance in &capacity.instances {
        let met = instance.steps.iter().filter(|s| s.2).count();
        let _ = writeln!(
            out,
            "<tr class=\"capacity\"><td>{}</td><td class=\"n\"><strong>{}</strong></td><td class=\"n\">{met} / {}</td></tr>",
            escape(&instance.name),
            escape(&capacity_text(instance)),
            instance.steps.len()
        );
    }
    out.push_str("</table>\n");
    out
}

/// The spike, the bound and the time until the steady traffic was back under it.
fn recovery_summary(recovery: &RecoveryFigures, violations: &[String]) -> String {
    let class = if violations.is_empty() {
        "met"
    } else {
        "exceeded"
    };
    let headline = match recovery.recovery_s {
        Some(seconds) => format!(
            "p99 back under {:.1} ms {seconds:.0} s after the spike's end",
            recovery.bound_ms
        ),
        None => format!(
            "p99 not back under {:.1} ms within the run",
            recovery.bound_ms
        ),
    };
    let mut out = format!(
        "<h2>Spike recovery</h2>\n<p class=\"{class}\"><strong>{}.</strong></p>\n<table>\n\
         <tr><th>figure</th><th>value</th></tr>\n\
         <tr><td>steady / spike rate (req/s)</td><td class=\"n\">{:.0} / {:.0}</td></tr>\n\
         <tr><td>spike</td><td class=\"n\">{:.0} s to {:.0} s</td></tr>\n\
         <tr><td>bound</td><td>p99 at most {:.1} ms ({})</td></tr>\n\
         <tr class=\"recovery\"><td>recovery after the spike</td><td class=\"n\"><strong>{}</strong></td></tr>\n</table>\n",
        escape(&headline),
        recovery.base_rps,
        recovery.spike_rps,
        recovery.spike_start_s,
        recovery.spike_end_s,
        recovery.bound_ms,
        escape(&recovery.bound_source),
        escape(&recovery_text(recovery))
    );
    out.push_str(&format!(
        "<p class=\"note\">Recovery is read from the steady traffic alone, by the second its \
         requests were scheduled in: the first second after the spike from which {RECOVERED_SECONDS} \
         seconds in a row have a p99 within the bound (each with at least {:.0} % of its requests \
         answered), minus the spike's end; whole seconds.</p>\n",
        MIN_ANSWERED_SHARE * 100.0
    ));
    for violation in violations {
        let _ = writeln!(out, "<p class=\"exceeded\">{}</p>", escape(violation));
    }
    out
}

/// p99 by target rate, one line per instance, the bound dashed and each capacity marked.
/// The rate axis is logarithmic, as the ladder's steps grow by a factor.
fn capacity_chart(capacity: &CapacityFigures) -> String {
    let rates = || {
        capacity
            .instances
            .iter()
            .flat_map(|i| i.steps.iter().map(|s| s.0))
            .filter(|&r| r > 0.0)
    };
    let low = rates().fold(f64::INFINITY, f64::min);
    let high = rates().fold(0.0_f64, f64::max);
    let (low, high) = if low <= high {
        (low / 1.25, high * 1.25)
    } else {
        (1.0, 10.0)
    };
    let x = |rate: f64| rate.max(f64::MIN_POSITIVE).log10();
    let mut series: Vec<Series> = capacity
        .instances
        .iter()
        .enumerate()
        .map(|(i, instance)| Series {
            name: format!("p99, {}", instance.name),
            colour: PALETTE[i % PALETTE.len()],
            dashed: false,
            points: instance
                .steps
                .iter()
                .map(|&(rate, p99, _)| (x(rate), p99))
                .collect(),
        })
        .collect();
    series.push(Series {
        name: format!("bound {:.1} ms", capacity.bound_ms),
        colour: "#999999",
        dashed: true,
        points: vec![(x(low), capacity.bound_ms), (x(high), capacity.bound_ms)],
    });
    let marks = capacity
        .instances
        .iter()
        .enumerate()
        .filter_map(|(i, instance)| {
            let rate = instance.capacity_rps?;
            let &(_, p99, _) = instance.steps.iter().find(|s| s.0 == rate)?;
            Some(Mark {
                label: format!("capacity, {}: {}", instance.name, format_rate(rate)),
                colour: PALETTE[i % PALETTE.len()],
                x: x(rate),
                y: p99,
            })
        })
        .collect();
    // Ticks at 1, 2 and 5 x 10^n within the range.
    let ticks: Vec<(f64, String)> = (-1..=7)
        .flat_map(|power| [1.0, 2.0, 5.0].map(|m| m * 10f64.powi(power)))
        .filter(|&t| t >= low && t <= high)
        .map(|t| (x(t), format_tick(t)))
        .collect();
    line_chart(
        "p99 by target rate (ms and req/s, log scales)",
        &series,
        (x(low), x(high)),
        &ticks,
        Scale::Log,
        &Decorations {
            bands: Vec::new(),
            marks,
        },
    )
}

/// The steady traffic's p99 per second around the spike, the bound and the recovery.
fn recovery_chart(recovery: &RecoveryFigures) -> String {
    let end = recovery.p99_ms.len() as f64;
    let p99 = Series {
        name: "p99 of the steady traffic".to_owned(),
        colour: PALETTE[1],
        dashed: false,
        points: recovery
            .p99_ms
            .iter()
            .enumerate()
            .filter_map(|(k, p)| Some((k as f64 + 0.5, (*p)?)))
            .collect(),
    };
    let bound = Series {
        name: format!("bound {:.1} ms", recovery.bound_ms),
        colour: "#999999",
        dashed: true,
        points: vec![(0.0, recovery.bound_ms), (end, recovery.bound_ms)],
    };
    let marks = recovery
        .recovery_s
        .and_then(|seconds| {
            let at = recovery.spike_end_s + seconds;
            let y = (*recovery.p99_ms.get(at as usize)?)?;
            Some(Mark {
                label: format!("recovered {seconds:.0} s after the spike"),
                colour: PALETTE[2],
                x: at + 0.5,
                y,
            })
        })
        .into_iter()
        .collect();
    let mut ticks = vec![(0.0, "0 s".to_owned())];
    for t in [recovery.spike_start_s, recovery.spike_end_s, end] {
        ticks.push((t, format!("{t:.0} s")));
    }
    line_chart(
        "Spike recovery: steady traffic's p99 per second (ms, log scale)",
        &[bound, p99],
        (0.0, end),
        &ticks,
        Scale::Log,
        &Decorations {
            bands: vec![Band {
                label: format!("spike, {:.0} req/s", recovery.spike_rps),
                from: recovery.spike_start_s,
                to: recovery.spike_end_s,
            }],
            marks,
        },
    )
}

fn steps_table(steps: &[StepReport]) -> String {
    let percentiles = percentile_names(steps);
    let mut out = String::from(
        "<table>\n<tr><th>step</th><th>seconds</th><th>target req/s</th><th>achieved req/s</th>\
         <th>responses</th><th>errors</th><th>late</th><th>unsent</th>",
    );
    for name in &percentiles {
        let _ = write!(out, "<th>{} (ms)</th>", escape(name));
    }
    out.push_str("</tr>\n");
    for step in steps {
        let optional = |v: Option<u64>| v.map_or_else(|| "-".to_owned(), |v| v.to_string());
        let _ = write!(
            out,
            "<tr><td>{}</td><td class=\"n\">{:.0}</td><td class=\"n\">{}</td><td class=\"n\">{:.1}</td>\
             <td class=\"n\">{}</td><td class=\"n\">{} ({:.2} %)</td><td class=\"n\">{}</td><td class=\"n\">{}</td>",
            escape(&step.label),
            step.seconds,
            step.target_rps
                .map_or_else(|| "-".to_owned(), |r| format!("{r:.0}")),
            step.achieved_rps(),
            step.requests,
            step.errors,
            step.error_pct(),
            optional(step.late),
            optional(step.unsent),
        );
        for name in &percentiles {
            let _ = write!(
                out,
                "<td class=\"n\">{}</td>",
                step.latency(name).map_or_else(|| "-".to_owned(), format_ms)
            );
        }
        out.push_str("</tr>\n");
    }
    out.push_str("</table>\n");
    out
}

fn server_table(steps: &[StepReport]) -> String {
    let mut out = String::from(
        "<table>\n<tr><th>step</th><th>cache hit ratio</th><th>DB queries/s</th>\
         <th>pool size / waiting</th><th>L1 cache MiB</th><th>RSS MiB</th></tr>\n",
    );
    let value =
        |v: Option<f64>, format: &dyn Fn(f64) -> String| v.map_or_else(|| "-".to_owned(), format);
    for step in steps {
        let s = &step.server;
        let _ = writeln!(
            out,
            "<tr><td>{}</td><td class=\"n\">{}</td><td class=\"n\">{}</td><td class=\"n\">{} / {}</td>\
             <td class=\"n\">{}</td><td class=\"n\">{}</td></tr>",
            escape(&step.label),
            value(s.cache_hit_ratio, &|v| format!("{:.1} %", v * 100.0)),
            value(s.db_queries.filter(|_| step.seconds > 0.0), &|v| format!(
                "{:.1}",
                v / step.seconds
            )),
            value(s.pool_max, &|v| format!("{v:.0}")),
            value(s.pool_waiting, &|v| format!("{v:.0}")),
            value(s.l1_bytes, &|v| format!("{:.1}", v / 1048576.0)),
            value(s.rss_kib.map(|v| v as f64), &|v| format!(
                "{:.1}",
                v / 1024.0
            )),
        );
    }
    out.push_str("</table>\n");
    out
}

/// The percentile names of all steps, in the order the steps give them.
fn percentile_names(steps: &[StepReport]) -> Vec<String> {
    let mut names: Vec<String> = Vec::new();
    for step in steps {
        for (name, _) in &step.latency_ms {
            if !names.contains(name) {
                names.push(name.clone());
            }
        }
    }
    names
}

/// Latency by percentile, one line per step, on a logarithmic axis.
fn percentile_chart(steps: &[StepReport]) -> String {
    let names = percentile_names(steps);
    let series: Vec<Series> = steps
        .iter()
        .enumerate()
        .map(|(i, step)| Series {
            name: step.label.clone(),
            colour: PALETTE[i % PALETTE.len()],
            dashed: false,
            points: names
                .iter()
                .enumerate()
                .filter_map(|(x, name)| Some((x as f64, step.latency(name)?)))
                .collect(),
        })
        .collect();
    let ticks: Vec<(f64, String)> = names
        .iter()
        .enumerate()
        .map(|(x, name)| (x as f64, name.clone()))
        .collect();
    line_chart(
        "Latency by percentile (ms, log scale)",
        &series,
        (0.0, names.len().saturating_sub(1) as f64),
        &ticks,
        Scale::Log,
        &Decorations::default(),
    )
}

/// Achieved (and, in open loop, target) requests per second, per step.
fn throughput_chart(steps: &[StepReport]) -> String {
    let mut series = vec![BarSeries {
        name: "achieved req/s".to_owned(),
        colour: PALETTE[0],
        values: steps.iter().map(StepReport::achieved_rps).collect(),
    }];
    if steps.iter().any(|s| s.target_rps.is_some()) {
        series.insert(
            0,
            BarSeries {
                name: "target req/s".to_owned(),
                colour: "#bbbbbb",
                values: steps.iter().map(|s| s.target_rps.unwrap_or(0.0)).collect(),
            },
        );
    }
    bar_chart("Throughput per step (req/s)", steps, &series, |v| {
        format!("{v:.0}")
    })
}

fn error_chart(steps: &[StepReport]) -> String {
    let mut series = vec![BarSeries {
        name: "errors".to_owned(),
        colour: "#b01e1e",
        values: steps.iter().map(|s| s.errors as f64).collect(),
    }];
    if steps.iter().any(|s| s.late.is_some()) {
        series.push(BarSeries {
            name: "late".to_owned(),
            colour: "#d9a01a",
            values: steps.iter().map(|s| s.late.unwrap_or(0) as f64).collect(),
        });
        series.push(BarSeries {
            name: "unsent".to_owned(),
            colour: "#7a52c7",
            values: steps.iter().map(|s| s.unsent.unwrap_or(0) as f64).collect(),
        });
    }
    bar_chart(
        "Errors, late and unsent requests per step",
        steps,
        &series,
        |v| format!("{v:.0}"),
    )
}

fn hit_ratio_chart(steps: &[StepReport]) -> String {
    let series = [BarSeries {
        name: "cache hit ratio (%)".to_owned(),
        colour: PALETTE[2],
        values: steps
            .iter()
            .map(|s| s.server.cache_hit_ratio.unwrap_or(0.0) * 100.0)
            .collect(),
    }];
    bar_chart(
        "Cache hit ratio per step (%, from /metrics)",
        steps,
        &series,
        |v| format!("{v:.1}"),
    )
}

/// Where each step starts on a timeline of all steps one after the other.
fn step_offsets(steps: &[StepReport]) -> Vec<f64> {
    let mut offset = 0.0;
    steps
        .iter()
        .map(|step| {
            let start = offset;
            offset += step.timeline.len().max(step.seconds.ceil() as usize) as f64;
            start
        })
        .collect()
}

fn time_ticks(steps: &[StepReport]) -> (f64, Vec<(f64, String)>) {
    let offsets = step_offsets(steps);
    let end = offsets.last().copied().unwrap_or(0.0)
        + steps.last().map_or(0.0, |s| {
            s.timeline.len().max(s.seconds.ceil() as usize) as f64
        });
    let ticks = offsets
        .iter()
        .map(|&o| (o, format!("{o:.0} s")))
        .chain(std::iter::once((end, format!("{end:.0} s"))))
        .collect();
    (end, ticks)
}

/// Responses per second over the run, with each step's target rate dashed.
fn timeline_throughput_chart(steps: &[StepReport]) -> String {
    let offsets = step_offsets(steps);
    let (end, ticks) = time_ticks(steps);
    let mut achieved = Series {
        name: "responses/s".to_owned(),
        colour: PALETTE[0],
        dashed: false,
        points: Vec::new(),
    };
    let mut target = Series {
        name: "target req/s".to_owned(),
        colour: "#999999",
        dashed: true,
        points: Vec::new(),
    };
    for (step, offset) in steps.iter().zip(offsets) {
        for (i, second) in step.timeline.iter().enumerate() {
            achieved
                .points
                .push((offset + i as f64 + 0.5, second.completed as f64));
        }
        if let Some(rate) = step.target_rps {
            target.points.push((offset, rate));
            target.points.push((offset + step.seconds, rate));
        }
    }
    line_chart(
        "Throughput over time (responses per second)",
        &[target, achieved],
        (0.0, end),
        &ticks,
        Scale::Linear,
        &Decorations::default(),
    )
}

/// p50 and p99 per second (by scheduled send time) over the run.
fn timeline_latency_chart(steps: &[StepReport]) -> String {
    let offsets = step_offsets(steps);
    let (end, ticks) = time_ticks(steps);
    let mut p50 = Series {
        name: "p50".to_owned(),
        colour: PALETTE[0],
        dashed: false,
        points: Vec::new(),
    };
    let mut p99 = Series {
        name: "p99".to_owned(),
        colour: PALETTE[1],
        dashed: false,
        points: Vec::new(),
    };
    for (step, offset) in steps.iter().zip(offsets) {
        for (i, second) in step.timeline.iter().enumerate() {
            let x = offset + i as f64 + 0.5;
            p50.points.push((x, second.p50_ms));
            p99.points.push((x, second.p99_ms));
        }
    }
    line_chart(
        "Latency over time (ms per second of schedule, log scale)",
        &[p50, p99],
        (0.0, end),
        &ticks,
        Scale::Log,
        &Decorations::default(),
    )
}

struct Series {
    name: String,
    colour: &'static str,
    dashed: bool,
    points: Vec<(f64, f64)>,
}

/// What a line chart draws besides its series: shaded spans of x and marked points.
#[derive(Default)]
struct Decorations {
    bands: Vec<Band>,
    marks: Vec<Mark>,
}

/// A shaded span of x (the spike's seconds).
struct Band {
    label: String,
    from: f64,
    to: f64,
}

/// A point called out with a ring, a dashed vertical and a label (the capacity rate).
struct Mark {
    label: String,
    colour: &'static str,
    x: f64,
    y: f64,
}

struct BarSeries {
    name: String,
    colour: &'static str,
    values: Vec<f64>,
}

#[derive(Clone, Copy, PartialEq)]
enum Scale {
    Linear,
    Log,
}

/// The smallest value a logarithmic axis shows (ms): zeros are drawn there.
const LOG_FLOOR: f64 = 0.01;

/// A vertical axis: maps values to y and lists its tick values.
struct Axis {
    scale: Scale,
    low: f64,
    high: f64,
}

impl Axis {
    fn new(scale: Scale, values: impl Iterator<Item = f64>) -> Axis {
        let high = values.fold(0.0_f64, f64::max);
        match scale {
            Scale::Linear => Axis {
                scale,
                low: 0.0,
                high: nice_ceiling(high),
            },
            Scale::Log => {
                let top = high.max(LOG_FLOOR * 10.0);
                Axis {
                    scale,
                    low: 0.0,
                    high: 10f64.powf(top.log10().ceil()),
                }
            }
        }
        .with_log_low()
    }

    fn with_log_low(mut self) -> Axis {
        if self.scale == Scale::Log {
            // Four decades below the top at most: lower latencies all sit on the floor.
            self.low = (self.high / 1e4).max(LOG_FLOOR);
        }
        self
    }

    fn y(&self, value: f64) -> f64 {
        let bottom = HEIGHT - BOTTOM;
        let fraction = match self.scale {
            Scale::Linear => value / self.high.max(f64::MIN_POSITIVE),
            Scale::Log => {
                let v = value.max(self.low);
                (v / self.low).log10() / (self.high / self.low).log10().max(f64::MIN_POSITIVE)
            }
        };
        bottom - fraction.clamp(0.0, 1.0) * (bottom - TOP)
    }

    fn ticks(&self) -> Vec<f64> {
        match self.scale {
            Scale::Linear => (0..=4).map(|i| self.high * f64::from(i) / 4.0).collect(),
            Scale::Log => {
                let mut ticks = Vec::new();
                let mut t = self.low;
                while t <= self.high * 1.0001 {
                    ticks.push(t);
                    t *= 10.0;
                }
                ticks
            }
        }
    }
}

/// The next of 1, 2, 2.5, 5 x 10^n at or above `value` (1 for nothing).
fn nice_ceiling(value: f64) -> f64 {
    if value <= 0.0 || !value.is_finite() {
        return 1.0;
    }
    let magnitude = 10f64.powf(value.log10().floor());
    [1.0, 2.0, 2.5, 5.0, 10.0]
        .iter()
        .map(|m| m * magnitude)
        .find(|&v| v >= value)
        .unwrap_or(10.0 * magnitude)
}

/// Opens a chart `height` tall: [`HEIGHT`] and what its legend rows and slanted labels add
/// below the plot, which is the same in every chart.
fn svg_open(title: &str, height: f64) -> String {
    format!(
        "<svg class=\"chart\" xmlns=\"http://www.w3.org/2000/svg\" width=\"{WIDTH}\" height=\"{height}\" \
         viewBox=\"0 0 {WIDTH} {height}\" role=\"img\"><title>{}</title>\
         <text x=\"{LEFT}\" y=\"16\" font-size=\"13\" font-weight=\"600\">{}</text>",
        escape(title),
        escape(title)
    )
}

fn y_axis(svg: &mut String, axis: &Axis) {
    for tick in axis.ticks() {
        let y = axis.y(tick);
        let _ = write!(
            svg,
            "<line x1=\"{LEFT}\" y1=\"{y:.1}\" x2=\"{:.1}\" y2=\"{y:.1}\" stroke=\"#eee\"/>\
             <text x=\"{:.1}\" y=\"{:.1}\" font-size=\"10\" fill=\"#666\" text-anchor=\"end\">{}</text>",
            WIDTH - RIGHT,
            LEFT - 5.0,
            y + 3.5,
            format_tick(tick)
        );
    }
    let bottom = HEIGHT - BOTTOM;
    let _ = write!(
        svg,
        "<line x1=\"{LEFT}\" y1=\"{bottom}\" x2=\"{:.1}\" y2=\"{bottom}\" stroke=\"#999\"/>",
        WIDTH - RIGHT
    );
}

/// Height of one legend row.
const LEGEND_ROW: f64 = 16.0;

/// Where each legend entry goes, `(x, row)`: left to right, a new row when the next would
/// pass the right edge.
fn legend_layout(entries: &[(&str, &str, bool)]) -> Vec<(f64, usize)> {
    let mut x = LEFT;
    let mut row = 0;
    entries
        .iter()
        .map(|&(name, _, _)| {
            let width = 30.0 + 6.5 * name.chars().count() as f64;
            if x > LEFT && x + width - 10.0 > WIDTH - RIGHT {
                x = LEFT;
                row += 1;
            }
            let at = (x, row);
            x += width;
            at
        })
        .collect()
}

/// The legend rows past the first.
fn extra_legend_rows(entries: &[(&str, &str, bool)]) -> f64 {
    legend_layout(entries)
        .last()
        .map_or(0.0, |&(_, row)| row as f64)
}

/// The legend, its first row `shift` below where a chart without slanted labels has it.
fn legend(svg: &mut String, entries: &[(&str, &str, bool)], shift: f64) {
    for (&(name, colour, dashed), (x, row)) in entries.iter().zip(legend_layout(entries)) {
        let y = HEIGHT - 8.0 + shift + row as f64 * LEGEND_ROW;
        let dash = if dashed {
            " stroke-dasharray=\"4 3\""
        } else {
            ""
        };
        let _ = write!(
            svg,
            "<line x1=\"{x:.1}\" y1=\"{:.1}\" x2=\"{:.1}\" y2=\"{:.1}\" stroke=\"{colour}\" stroke-width=\"3\"{dash}/>\
             <text x=\"{:.1}\" y=\"{y:.1}\" font-size=\"11\">{}</text>",
            y - 4.0,
            x + 16.0,
            y - 4.0,
            x + 20.0,
            escape(name)
        );
    }
}

/// A line chart over `x_range`, labelled at `ticks`.
fn line_chart(
    title: &str,
    series: &[Series],
    x_range: (f64, f64),
    ticks: &[(f64, String)],
    scale: Scale,
    decorations: &Decorations,
) -> String {
    let axis = Axis::new(
        scale,
        series
            .iter()
            .flat_map(|s| s.points.iter().map(|p| p.1))
            .chain(decorations.marks.iter().map(|m| m.y)),
    );
    let (x_low, x_high) = x_range;
    let x = |value: f64| {
        let span = (x_high - x_low).max(f64::MIN_POSITIVE);
        LEFT + 10.0 + (value - x_low) / span * (WIDTH - LEFT - RIGHT - 20.0)
    };
    let entries: Vec<(&str, &str, bool)> = series
        .iter()
        .map(|s| (s.name.as_str(), s.colour, s.dashed))
        .collect();
    let mut svg = svg_open(title, HEIGHT + extra_legend_rows(&entries) * LEGEND_ROW);
    y_axis(&mut svg, &axis);
    for (value, label) in ticks {
        let _ = write!(
            svg,
            "<text x=\"{:.1}\" y=\"{:.1}\" font-size=\"10\" fill=\"#666\" text-anchor=\"middle\">{}</text>",
            x(*value),
            HEIGHT - BOTTOM + 14.0,
            escape(label)
        );
    }
    for band in &decorations.bands {
        let (left, right) = (x(band.from), x(band.to));
        let _ = write!(
            svg,
            "<rect class=\"band\" data-band=\"{}\" x=\"{left:.1}\" y=\"{TOP}\" width=\"{:.1}\" height=\"{:.1}\" fill=\"#f3d3d3\" opacity=\"0.7\"/>\
             <text x=\"{:.1}\" y=\"{:.1}\" font-size=\"10\" fill=\"#8a2b2b\" text-anchor=\"middle\">{}</text>",
            escape(&band.label),
            (right - left).max(1.0),
            HEIGHT - BOTTOM - TOP,
            (left + right) / 2.0,
            TOP + 11.0,
            escape(&band.label)
        );
    }
    for s in series.iter().filter(|s| !s.points.is_empty()) {
        let points: Vec<String> = s
            .points
            .iter()
            .map(|&(px, py)| format!("{:.1},{:.1}", x(px), axis.y(py)))
            .collect();
        let dash = if s.dashed {
            " stroke-dasharray=\"5 4\""
        } else {
            ""
        };
        let _ = write!(
            svg,
            "<polyline class=\"series\" data-series=\"{}\" fill=\"none\" stroke=\"{}\" stroke-width=\"1.8\"{dash} points=\"{}\"/>",
            escape(&s.name),
            s.colour,
            points.join(" ")
        );
        if s.points.len() <= 12 {
            for &(px, py) in &s.points {
                let _ = write!(
                    svg,
                    "<circle cx=\"{:.1}\" cy=\"{:.1}\" r=\"2.6\" fill=\"{}\"><title>{}: {}</title></circle>",
                    x(px),
                    axis.y(py),
                    s.colour,
                    escape(&s.name),
                    format_tick(py)
                );
            }
        }
    }
    for (i, mark) in decorations.marks.iter().enumerate() {
        let (mx, my) = (x(mark.x), axis.y(mark.y));
        // Labels of several marks are stacked so that they do not overlap, each on a white
        // halo so that lines under it do not cross it out.
        let label_y = TOP + 24.0 + 13.0 * i as f64;
        let anchor = if mx > WIDTH * 0.6 { "end" } else { "start" };
        let label_x = if anchor == "end" { mx - 6.0 } else { mx + 6.0 };
        let _ = write!(
            svg,
            "<g class=\"mark\" data-mark=\"{}\"><line x1=\"{mx:.1}\" y1=\"{:.1}\" x2=\"{mx:.1}\" y2=\"{TOP}\" stroke=\"{}\" stroke-width=\"1.2\" stroke-dasharray=\"2 3\"/>\
             <circle cx=\"{mx:.1}\" cy=\"{my:.1}\" r=\"6\" fill=\"none\" stroke=\"{}\" stroke-width=\"2.2\"/>\
             <text x=\"{label_x:.1}\" y=\"{label_y:.1}\" font-size=\"11\" font-weight=\"600\" fill=\"{}\" stroke=\"#fff\" stroke-width=\"3\" paint-order=\"stroke\" text-anchor=\"{anchor}\">{}</text></g>",
            escape(&mark.label),
            HEIGHT - BOTTOM,
            mark.colour,
            mark.colour,
            mark.colour,
            escape(&mark.label)
        );
    }
    legend(&mut svg, &entries, 0.0);
    svg.push_str("</svg>\n");
    svg
}

/// Grouped bars: one group per step, one bar per series, each labelled with its value.
fn bar_chart(
    title: &str,
    steps: &[StepReport],
    series: &[BarSeries],
    label: impl Fn(f64) -> String,
) -> String {
    let axis = Axis::new(
        Scale::Linear,
        series.iter().flat_map(|s| s.values.iter().copied()),
    );
    let entries: Vec<(&str, &str, bool)> = series
        .iter()
        .map(|s| (s.name.as_str(), s.colour, false))
        .collect();
    let groups = steps.len().max(1) as f64;
    let group_width = (WIDTH - LEFT - RIGHT) / groups;
    let bar_width = (group_width * 0.8 / series.len().max(1) as f64).min(60.0);
    // Step labels wider than their group are slanted (ending under their group), and the
    // legend moves below them.
    let longest = steps
        .iter()
        .map(|s| s.label.chars().count())
        .max()
        .unwrap_or(0) as f64;
    let slanted = longest * 5.5 > group_width;
    let shift = if slanted { longest * 5.0 * 0.71 } else { 0.0 };
    let mut svg = svg_open(
        title,
        HEIGHT + shift + extra_legend_rows(&entries) * LEGEND_ROW,
    );
    y_axis(&mut svg, &axis);
    for (g, step) in steps.iter().enumerate() {
        let group_left = LEFT + g as f64 * group_width;
        let bars_left = group_left + (group_width - bar_width * series.len() as f64) / 2.0;
        for (b, s) in series.iter().enumerate() {
            let value = s.values.get(g).copied().unwrap_or(0.0);
            let top = axis.y(value);
            let x = bars_left + b as f64 * bar_width;
            let _ = write!(
                svg,
                "<rect class=\"bar\" data-series=\"{}\" x=\"{x:.1}\" y=\"{top:.1}\" width=\"{:.1}\" height=\"{:.1}\" fill=\"{}\">\
                 <title>{}: {}</title></rect>",
                escape(&s.name),
                (bar_width - 2.0).max(1.0),
                (HEIGHT - BOTTOM - top).max(0.0),
                s.colour,
                escape(&s.name),
                escape(&label(value)),
            );
            // A value wider than its bar would run into the next: its tooltip says it.
            let text = label(value);
            if text.chars().count() as f64 * 5.5 <= bar_width {
                let _ = write!(
                    svg,
                    "<text x=\"{:.1}\" y=\"{:.1}\" font-size=\"9\" fill=\"#333\" text-anchor=\"middle\">{}</text>",
                    x + bar_width / 2.0 - 1.0,
                    top - 3.0,
                    escape(&text)
                );
            }
        }
        let (label_x, label_y) = (group_left + group_width / 2.0, HEIGHT - BOTTOM + 14.0);
        let placement = if slanted {
            format!("text-anchor=\"end\" transform=\"rotate(-45 {label_x:.1} {label_y:.1})\"")
        } else {
            "text-anchor=\"middle\"".to_owned()
        };
        let _ = write!(
            svg,
            "<text x=\"{label_x:.1}\" y=\"{label_y:.1}\" font-size=\"10\" fill=\"#666\" {placement}>{}</text>",
            escape(&step.label)
        );
    }
    legend(&mut svg, &entries, shift);
    svg.push_str("</svg>\n");
    svg
}

fn format_ms(ms: f64) -> String {
    if ms >= 100.0 {
        format!("{ms:.0}")
    } else if ms >= 10.0 {
        format!("{ms:.1}")
    } else {
        format!("{ms:.2}")
    }
}

fn format_tick(value: f64) -> String {
    if value >= 1000.0 {
        format!("{value:.0}")
    } else if value >= 1.0 {
        let text = format!("{value:.1}");
        text.trim_end_matches(".0").to_owned()
    } else {
        let text = format!("{value:.2}");
        text.trim_end_matches('0').trim_end_matches('.').to_owned()
    }
}

#[cfg(test)]
mod tests {
    use super::super::report::{CapacityInstance, Second, ServerFigures};
    use super::*;

    fn step(label: &str, rate: Option<f64>, p99: f64, seconds: usize) -> StepReport {
        StepReport {
            label: label.to_owned(),
            seconds: seconds as f64,
            target_rps: rate,
            requests: 1000 * seconds as u64,
            errors: 3,
            late: rate.map(|_| 7),
            unsent: rate.map(|_| 0),
            latency_ms: vec![
                ("p50".to_owned(), 1.2),
                ("p90".to_owned(), 3.4),
                ("p99".to_owned(), p99),
                ("p99.9".to_owned(), p99 * 2.0),
                ("max".to_owned(), p99 * 3.0),
            ],
            timeline: if rate.is_some() {
                (0..seconds)
                    .map(|i| Second {
                        completed: 1000,
                        p50_ms: 1.2,
                        p99_ms: p99 + i as f64,
                        errors: 0,
                    })
                    .collect()
            } else {
                Vec::new()
            },
            server: ServerFigures {
                cache_hit_ratio: Some(0.875),
                db_queries: Some(1234.0),
                pool_max: Some(16.0),
                pool_waiting: Some(0.0),
                l1_bytes: Some(3.0 * 1048576.0),
                rss_kib: Some(40960),
            },
        }
    }

    fn fixed() -> Report {
        Report {
            scenario: "fixed-rate".to_owned(),
            generator: "oha <open loop> at a fixed rate".to_owned(),
            steps: vec![
                step("1000 req/s", Some(1000.0), 8.0, 10),
                step("2000 req/s", Some(2000.0), 45.0, 10),
            ],
            bounds: (0.1, 100.0, 250.0),
            violations: vec!["p99 300.0 ms > 250 ms".to_owned()],
            notes: vec![("list endpoint ratio".to_owned(), "0.93".to_owned())],
            ..Report::default()
        }
    }

    /// No number in `html` printed as `NaN` or `inf`.
    fn finite(html: &str) -> bool {
        !html
            .split(|c: char| !c.is_ascii_alphanumeric())
            .any(|word| word == "NaN" || word == "inf")
    }

    /// The `points` of the polyline of the named series.
    fn polyline<'a>(html: &'a str, series: &str) -> Vec<&'a str> {
        html.split(&format!("data-series=\"{series}\""))
            .skip(1)
            .filter_map(|rest| rest.split("points=\"").nth(1)?.split('"').next())
            .collect()
    }

    #[test]
    fn renders_every_series_of_a_fixed_rate_run() {
        let html = render(&fixed());
        assert!(html.starts_with("<!doctype html>"));
        assert!(html.contains("<title>Load scenario fixed-rate</title>"));
        assert!(html.contains("oha &lt;open loop&gt; at a fixed rate"));
        // Percentiles chart: one line per step through p50 ... max.
        for name in ["p50", "p90", "p99", "p99.9", "max"] {
            assert!(html.contains(&format!(">{name}</text>")), "{name}");
        }
        for label in ["1000 req/s", "2000 req/s"] {
            let lines = polyline(&html, label);
            assert_eq!(lines.len(), 1, "{label}");
            assert_eq!(lines[0].split(' ').count(), 5, "{label}");
        }
        // Over time: 20 seconds of responses and of p50/p99; the targets as two segments.
        assert_eq!(polyline(&html, "responses/s")[0].split(' ').count(), 20);
        assert_eq!(polyline(&html, "p99").len(), 1);
        assert_eq!(polyline(&html, "target req/s")[0].split(' ').count(), 4);
        // Bars: target and achieved throughput, errors, late, unsent, hit ratio, per step.
        for series in [
            "target req/s",
            "achieved req/s",
            "errors",
            "late",
            "unsent",
            "cache hit ratio (%)",
        ] {
            let bars = html
                .matches(&format!("class=\"bar\" data-series=\"{series}\""))
                .count();
            assert_eq!(bars, 2, "{series}");
        }
        // Tables: figures and the server's own.
        assert!(html.contains("<td class=\"n\">45.0</td>"), "p99 of step 2");
        assert!(html.contains("<td class=\"n\">87.5 %</td>"), "hit ratio");
        assert!(
            html.contains("<td class=\"n\">123.4</td>"),
            "queries per second"
        );
        assert!(html.contains("<li class=\"exceeded\">p99 300.0 ms &gt; 250 ms</li>"));
        assert!(html.contains("<td>list endpoint ratio</td>"));
        assert!(finite(&html), "{html}");
    }

    #[test]
    fn fetches_nothing_and_runs_no_script() {
        let html = render(&fixed());
        for forbidden in [
            "<script", "http://", "https://", "src=", "href=", "@import", "url(",
        ] {
            let allowed = "xmlns=\"http://www.w3.org/2000/svg\"";
            let outside = html.replace(allowed, "");
            assert!(!outside.contains(forbidden), "{forbidden}");
        }
    }

    #[test]
    fn a_closed_loop_run_draws_no_timeline_and_no_open_loop_columns() {
        let report = Report {
            scenario: "stress".to_owned(),
            steps: vec![
                step("50 connections", None, 20.0, 20),
                step("100 connections", None, 60.0, 20),
            ],
            ..Report::default()
        };
        let html = render(&report);
        assert!(polyline(&html, "responses/s").is_empty());
        assert!(!html.contains("data-series=\"late\""));
        assert!(!html.contains("data-series=\"target req/s\""));
        assert_eq!(polyline(&html, "100 connections").len(), 1);
        assert!(html.contains("class=\"met\""));
    }

    #[test]
    fn a_run_with_no_steps_or_zero_figures_still_renders() {
        let html = render(&Report::default());
        assert!(html.contains("</html>"));
        let mut zero = step("0 req/s", Some(0.0), 0.0, 1);
        zero.latency_ms.iter_mut().for_each(|(_, v)| *v = 0.0);
        zero.seconds = 0.0;
        let html = render(&Report {
            steps: vec![zero],
            ..Report::default()
        });
        assert!(finite(&html), "{html}");
    }

    fn capacity_report() -> Report {
        let instance = |name: &str, steps: Vec<(f64, f64, bool)>, capacity_rps| CapacityInstance {
            name: name.to_owned(),
            steps,
            capacity_rps,
            capped: false,
        };
        Report {
            scenario: "capacity".to_owned(),
            steps: vec![
                step("all layers, 250 req/s", Some(250.0), 4.0, 5),
                step("all layers, 375 req/s", Some(375.0), 900.0, 5),
            ],
            capacity: Some(CapacityFigures {
                bound_ms: 20.0,
                bound_source: "baseline bound: 5 x the p99 of 2.00 ms".to_owned(),
                instances: vec![
                    instance(
                        "all layers",
                        vec![(250.0, 4.0, true), (375.0, 900.0, false)],
                        Some(250.0),
                    ),
                    instance(
                        "no layers",
                        vec![
                            (250.0, 3.0, true),
                            (375.0, 5.0, true),
                            (563.0, 700.0, false),
                        ],
                        Some(375.0),
                    ),
                ],
            }),
            ..Report::default()
        }
    }

    /// The `(x, y)` pairs of a polyline's points.
    fn points(line: &str) -> Vec<(f64, f64)> {
        line.split(' ')
            .map(|pair| {
                let (x, y) = pair.split_once(',').unwrap();
                (x.parse().unwrap(), y.parse().unwrap())
            })
            .collect()
    }

    /// The `(cx, cy)` of the ring of the named mark.
    fn mark(html: &str, name: &str) -> Option<(f64, f64)> {
        let rest = html.split(&format!("data-mark=\"{name}\"")).nth(1)?;
        let circle = rest.split("<circle ").nth(1)?;
        let attribute = |a: &str| -> Option<f64> {
            circle
                .split(&format!("{a}=\""))
                .nth(1)?
                .split('"')
                .next()?
                .parse()
                .ok()
        };
        Some((attribute("cx")?, attribute("cy")?))
    }

    #[test]
    fn a_capacity_run_draws_p99_by_rate_per_instance_and_marks_each_capacity() {
        let html = render(&capacity_report());
        assert!(html.contains("<h2>Capacity</h2>"));
        assert!(!html.contains("Bounds: error rate"));
        assert!(html.contains(
            "<td>all layers</td><td class=\"n\"><strong>250</strong></td><td class=\"n\">1 / 2</td>"
        ));
        assert!(html.contains(
            "<td>no layers</td><td class=\"n\"><strong>375</strong></td><td class=\"n\">2 / 3</td>"
        ));
        let all = points(polyline(&html, "p99, all layers")[0]);
        let none = points(polyline(&html, "p99, no layers")[0]);
        assert_eq!((all.len(), none.len()), (2, 3));
        // Rates grow left to right; the 900 ms step sits above the 4 ms one (y grows down).
        assert!(all[0].0 < all[1].0 && all[1].1 < all[0].1);
        let bound = points(polyline(&html, "bound 20.0 ms")[0]);
        assert_eq!(bound.len(), 2);
        assert_eq!(bound[0].1, bound[1].1);
        // The marks sit on the capacity steps' points, under the bound line.
        let marked = mark(&html, "capacity, all layers: 250").expect("all layers marked");
        assert_eq!(marked, all[0]);
        let marked = mark(&html, "capacity, no layers: 375").expect("no layers marked");
        assert_eq!(marked, none[1]);
        assert!(marked.1 > bound[0].1);
        assert!(finite(&html), "{html}");
    }

    fn recovery_report(recovery_s: Option<f64>) -> Report {
        let mut p99 = vec![Some(3.0); 5];
        p99.extend([Some(400.0), Some(900.0), None, Some(2000.0), Some(2500.0)]);
        p99.extend([
            Some(1800.0),
            Some(600.0),
            Some(45.0),
            Some(4.0),
            Some(3.0),
            Some(3.0),
        ]);
        Report {
            scenario: "recovery".to_owned(),
            steps: vec![
                step("before, 100 req/s", Some(100.0), 3.0, 5),
                step("spike, 3000 req/s", Some(3000.0), 2500.0, 5),
                step("after, 100 req/s", Some(100.0), 1800.0, 6),
            ],
            violations: if recovery_s.is_some() {
                Vec::new()
            } else {
                vec!["p99 was not back under 20.0 ms".to_owned()]
            },
            recovery: Some(RecoveryFigures {
                bound_ms: 20.0,
                bound_source: "baseline bound".to_owned(),
                base_rps: 100.0,
                spike_rps: 3000.0,
                spike_start_s: 5.0,
                spike_end_s: 10.0,
                p99_ms: p99,
                recovery_s,
            }),
            ..Report::default()
        }
    }

    #[test]
    fn a_recovery_run_shades_the_spike_and_marks_the_recovery() {
        let html = render(&recovery_report(Some(3.0)));
        assert!(html.contains("<h2>Spike recovery</h2>"));
        assert!(html.contains("p99 back under 20.0 ms 3 s after the spike&#39;s end."));
        assert!(html.contains(
            "<td>recovery after the spike</td><td class=\"n\"><strong>3 s</strong></td>"
        ));
        // 16 seconds, one without enough answers: 15 points.
        let line = points(polyline(&html, "p99 of the steady traffic")[0]);
        assert_eq!(line.len(), 15);
        let band = html
            .split("data-band=\"spike, 3000 req/s\"")
            .nth(1)
            .expect("the spike is shaded");
        let attribute = |a: &str| -> f64 {
            band.split(&format!("{a}=\""))
                .nth(1)
                .unwrap()
                .split('"')
                .next()
                .unwrap()
                .parse()
                .unwrap()
        };
        // The band spans seconds 5 to 10: from the 5th point's left to the 10th's.
        let (x, width) = (attribute("x"), attribute("width"));
        assert!(
            x < line[5].0 && line[5].0 < x + width,
            "{x} {width} {line:?}"
        );
        assert!(
            line[8].0 < x + width && x + width < line[9].0,
            "{x} {width} {line:?}"
        );
        // Second 13 (the 13th point: second 7 has none) is where recovery is marked.
        let marked = mark(&html, "recovered 3 s after the spike").expect("recovery marked");
        assert_eq!(marked, line[12]);
        assert!(finite(&html), "{html}");

        let html = render(&recovery_report(None));
        assert!(html.contains("p99 not back under 20.0 ms within the run."));
        assert!(html.contains("<p class=\"exceeded\">p99 was not back under 20.0 ms</p>"));
        assert!(!html.contains("data-mark="));
    }

    #[test]
    fn many_steps_wrap_the_legend_and_slant_the_step_labels() {
        let steps: Vec<StepReport> = (1..=13)
            .map(|i| {
                step(
                    &format!("no layers, {} req/s", i * 250),
                    Some(f64::from(i) * 250.0),
                    5.0,
                    1,
                )
            })
            .collect();
        let html = render(&Report {
            steps,
            ..Report::default()
        });
        let heights: Vec<f64> = html
            .split("<svg class=\"chart\"")
            .skip(1)
            .filter_map(|svg| {
                svg.split("height=\"")
                    .nth(1)?
                    .split('"')
                    .next()?
                    .parse()
                    .ok()
            })
            .collect();
        // The percentile chart (a legend entry per step) and the three bar charts (a label
        // per step) grow; the timelines (two series, seconds on the axis) do not.
        assert_eq!(heights.len(), 6);
        let grown: Vec<bool> = heights.iter().map(|&h| h > HEIGHT).collect();
        assert_eq!(grown, [true, true, false, false, true, true], "{heights:?}");
        // Each legend entry keeps its own place: no two start at the same point.
        let entries: Vec<(&str, &str, bool)> = (0..13)
            .map(|_| ("no layers, 1000 req/s", "#000", false))
            .collect();
        let layout = legend_layout(&entries);
        assert!(layout.last().unwrap().1 >= 3, "{layout:?}");
        for (i, a) in layout.iter().enumerate() {
            assert!(layout[i + 1..].iter().all(|b| b != a), "{layout:?}");
            assert!(
                a.0 + 30.0 + 6.5 * 21.0 - 10.0 <= WIDTH - RIGHT,
                "{layout:?}"
            );
        }
        assert_eq!(html.matches("transform=\"rotate(-45 ").count(), 13 * 3);
        // Two steps fit: nothing slanted, one legend row.
        assert!(!render(&fixed()).contains("rotate("));
        assert!(finite(&html));
    }

    #[test]
    fn axes_round_up_and_logs_floor_zero() {
        assert_eq!(nice_ceiling(1830.0), 2000.0);
        assert_eq!(nice_ceiling(0.0), 1.0);
        let log = Axis::new(Scale::Log, [0.0, 45.0].into_iter());
        assert_eq!(log.high, 100.0);
        assert_eq!(log.y(0.0), HEIGHT - BOTTOM);
        assert!(log.y(45.0) < log.y(8.0));
    }
}
