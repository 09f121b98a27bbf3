//! The figures of a load run, whichever generator produced them: what the HTML report is
//! drawn from, and the arithmetic over per-request samples (percentiles, per-second
//! timeline) that the fixed-rate generator's output needs.

/// One run of a scenario: its steps, bounds and verdict.
#[derive(Debug, Clone, Default)]
pub(crate) struct Report {
    pub(crate) scenario: String,
    /// How the load was generated, in a sentence for the reader.
    pub(crate) generator: String,
    pub(crate) steps: Vec<StepReport>,
    /// `(max error %, max p95 ms, max p99 ms)`.
    pub(crate) bounds: (f64, f64, f64),
    pub(crate) violations: Vec<String>,
    /// Extra `(figure, value)` rows (the baseline's list-endpoint comparison, …).
    pub(crate) notes: Vec<(String, String)>,
    /// A `capacity` run's search (its steps are also in `steps`).
    pub(crate) capacity: Option<CapacityFigures>,
    /// A `recovery` run's spike and the steady traffic's p99 around it.
    pub(crate) recovery: Option<RecoveryFigures>,
}

/// A capacity search: the bound every step was held to and, per instance, each step's p99
/// and the highest rate that met the bound.
#[derive(Debug, Clone, Default)]
pub(crate) struct CapacityFigures {
    pub(crate) bound_ms: f64,
    /// How the bound was set, in a sentence for the reader.
    pub(crate) bound_source: String,
    pub(crate) instances: Vec<CapacityInstance>,
}

/// One instance's search (all layers, or `LAYERS=none`).
#[derive(Debug, Clone, Default)]
pub(crate) struct CapacityInstance {
    /// "all layers" or "no layers".
    pub(crate) name: String,
    /// `(target req/s, p99 ms, met the bound)` per step, in the order run.
    pub(crate) steps: Vec<(f64, f64, bool)>,
    /// The highest rate that met the bound before the first that did not.
    pub(crate) capacity_rps: Option<f64>,
    /// Every step met the bound: the capacity is at least the ladder's top.
    pub(crate) capped: bool,
}

/// A spike at a fixed rate and the time until the steady traffic's p99 was back under the
/// bound.
#[derive(Debug, Clone, Default)]
pub(crate) struct RecoveryFigures {
    pub(crate) bound_ms: f64,
    /// How the bound was set, in a sentence for the reader.
    pub(crate) bound_source: String,
    /// The steady rate and the total rate during the spike (req/s).
    pub(crate) base_rps: f64,
    pub(crate) spike_rps: f64,
    /// When the spike started and ended, seconds from the run's start.
    pub(crate) spike_start_s: f64,
    pub(crate) spike_end_s: f64,
    /// The steady traffic's p99 per second of schedule (ms; `None`: too few of the second's
    /// requests were answered to tell).
    pub(crate) p99_ms: Vec<Option<f64>>,
    /// Seconds from the spike's end until p99 was back under the bound (`None`: not within
    /// the run).
    pub(crate) recovery_s: Option<f64>,
}

/// One step of a run: a connection count (closed loop) or a request rate (open loop).
#[derive(Debug, Clone, Default)]
pub(crate) struct StepReport {
    /// "2000 req/s" or "50 connections".
    pub(crate) label: String,
    pub(crate) seconds: f64,
    /// The rate the generator held (open loop only).
    pub(crate) target_rps: Option<f64>,
    /// Responses received (any status).
    pub(crate) requests: u64,
    /// Failed requests: transport errors, timeouts and statuses of 400 and above.
    pub(crate) errors: u64,
    /// Requests sent more than [`LATE_MS`] after their scheduled time, because no
    /// connection was free (open loop only).
    pub(crate) late: Option<u64>,
    /// Requests scheduled in the step that were never sent before it ended (open loop
    /// only).
    pub(crate) unsent: Option<u64>,
    /// Latency percentiles, `(name, milliseconds)`, in increasing order: `p50`, …, `max`.
    pub(crate) latency_ms: Vec<(String, f64)>,
    /// Per second of the step (open loop only).
    pub(crate) timeline: Vec<Second>,
    /// What the service reported about itself over the step.
    pub(crate) server: ServerFigures,
}

impl StepReport {
    /// Responses per second over the step.
    pub(crate) fn achieved_rps(&self) -> f64 {
        if self.seconds > 0.0 {
            self.requests as f64 / self.seconds
        } else {
            0.0
        }
    }

    /// Errors in percent of the requests attempted.
    pub(crate) fn error_pct(&self) -> f64 {
        let attempted = self.requests.max(self.errors);
        if attempted > 0 {
            self.errors as f64 / attempted as f64 * 100.0
        } else {
            0.0
        }
    }

    /// The named percentile, in milliseconds.
    pub(crate) fn latency(&self, name: &str) -> Option<f64> {
        self.latency_ms
            .iter()
            .find(|(n, _)| n == name)
            .map(|&(_, v)| v)
    }
}

/// One second of an open-loop step.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub(crate) struct Second {
    /// Responses completed in this second.
    pub(crate) completed: u64,
    /// Latency percentiles of the requests scheduled in this second, in milliseconds.
    pub(crate) p50_ms: f64,
    pub(crate) p99_ms: f64,
    /// Responses with a status of 400 and above, by completion second.
    pub(crate) errors: u64,
}

/// The service's own figures over a step, read from `/metrics` on its admin listener
/// before and after (`None`: the metric was absent).
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct ServerFigures {
    /// Cache hits over lookups during the step.
    pub(crate) cache_hit_ratio: Option<f64>,
    /// Database queries during the step.
    pub(crate) db_queries: Option<f64>,
    /// Pool size and requests waiting for a connection, at the end of the step.
    pub(crate) pool_max: Option<f64>,
    pub(crate) pool_waiting: Option<f64>,
    /// The in-memory cache's bytes at the end of the step.
    pub(crate) l1_bytes: Option<f64>,
    /// Resident memory at the end of the step, KiB.
    pub(crate) rss_kib: Option<u64>,
}

/// A request sent this much after its scheduled time counts as late: above the
/// generator's timer resolution (1 ms), so only a request that waited for a connection.
pub(crate) const LATE_MS: f64 = 2.0;

/// One request of an open-loop step, times in seconds from the step's start.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct Sample {
    /// When the schedule said to send it.
    pub(crate) scheduled: f64,
    /// When it was sent.
    pub(crate) sent: f64,
    /// When its response ended.
    pub(crate) ended: f64,
    pub(crate) status: u16,
}

impl Sample {
    /// Latency from the scheduled time: what a client arriving on schedule waited
    /// (coordinated-omission corrected).
    pub(crate) fn latency_ms(&self) -> f64 {
        (self.ended - self.scheduled).max(0.0) * 1e3
    }
}

/// The percentiles every open-loop step reports.
/// (p95 too, as the wrk steps report it and the scenarios bound it).
pub(crate) const PERCENTILES: [(&str, f64); 5] = [
    ("p50", 50.0),
    ("p90", 90.0),
    ("p95", 95.0),
    ("p99", 99.0),
    ("p99.9", 99.9),
];

/// Nearest-rank percentiles of `samples`' corrected latencies, then `max`.
pub(crate) fn latency_percentiles(samples: &[Sample]) -> Vec<(String, f64)> {
    let mut latencies: Vec<f64> = samples.iter().map(Sample::latency_ms).collect();
    latencies.sort_by(f64::total_cmp);
    let mut out: Vec<(String, f64)> = PERCENTILES
        .iter()
        .map(|&(name, p)| (name.to_owned(), nearest_rank(&latencies, p)))
        .collect();
    out.push(("max".to_owned(), latencies.last().copied().unwrap_or(0.0)));
    out
}

/// How many `samples` left more than [`LATE_MS`] after their scheduled time.
pub(crate) fn late(samples: &[Sample]) -> u64 {
    samples
        .iter()
        .filter(|s| (s.sent - s.scheduled) * 1e3 > LATE_MS)
        .count() as u64
}

/// Per-second figures over `seconds`: completions and errors by the second they ended
/// in, latency percentiles by the second they were scheduled in. Samples past the end
/// (responses that arrived after the step) count in its last second.
pub(crate) fn timeline(samples: &[Sample], seconds: f64) -> Vec<Second> {
    let buckets = (seconds.ceil() as usize).max(1);
    let index = |t: f64| (t.max(0.0) as usize).min(buckets - 1);
    let mut out = vec![Second::default(); buckets];
    let mut latencies = vec![Vec::new(); buckets];
    for sample in samples {
        let ended = &mut out[index(sample.ended)];
        ended.completed += 1;
        if sample.status >= 400 {
            ended.errors += 1;
        }
        latencies[index(sample.scheduled)].push(sample.latency_ms());
    }
    for (second, mut values) in out.iter_mut().zip(latencies) {
        values.sort_by(f64::total_cmp);
        second.p50_ms = nearest_rank(&values, 50.0);
        second.p99_ms = nearest_rank(&values, 99.0);
    }
    out
}

/// The nearest-rank percentile `p` of sorted `values` (0 when empty).
pub(crate) fn nearest_rank(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    // The tolerance keeps 99.9 % of 1000 at rank 999 despite 0.999 x 1000 = 999.0000000000001.
    let rank = (p * sorted.len() as f64 / 100.0 - 1e-9).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample(scheduled: f64, sent: f64, ended: f64, status: u16) -> Sample {
        Sample {
            scheduled,
            sent,
            ended,
            status,
        }
    }

    #[test]
    fn latency_counts_from_the_scheduled_time() {
        // Sent 100 ms late, answered in 1 ms: the client on schedule waited 101 ms.
        let s = sample(1.0, 1.1, 1.101, 200);
        assert!((s.latency_ms() - 101.0).abs() < 1e-6);
        assert_eq!(late(&[s, sample(2.0, 2.0005, 2.001, 200)]), 1);
    }

    #[test]
    fn percentiles_are_nearest_rank_and_end_with_max() {
        let samples: Vec<Sample> = (1..=1000)
            .map(|i| sample(0.0, 0.0, f64::from(i) / 1e3, 200))
            .collect();
        let p = latency_percentiles(&samples);
        let names: Vec<&str> = p.iter().map(|(n, _)| n.as_str()).collect();
        assert_eq!(names, ["p50", "p90", "p95", "p99", "p99.9", "max"]);
        let values: Vec<f64> = p.iter().map(|&(_, v)| v.round()).collect();
        assert_eq!(values, [500.0, 900.0, 950.0, 990.0, 999.0, 1000.0]);
        assert_eq!(latency_percentiles(&[])[0].1, 0.0);
    }

    #[test]
    fn timeline_buckets_by_second() {
        let samples = [
            sample(0.1, 0.1, 0.2, 200),
            sample(0.5, 0.5, 1.2, 503),
            sample(1.5, 1.5, 1.6, 200),
            // Answered after the step: counted in its last second.
            sample(1.9, 1.9, 2.5, 200),
        ];
        let t = timeline(&samples, 2.0);
        assert_eq!(t.len(), 2);
        assert_eq!((t[0].completed, t[0].errors), (1, 0));
        assert_eq!((t[1].completed, t[1].errors), (3, 1));
        assert!((t[0].p99_ms - 700.0).abs() < 1e-6, "{t:?}");
        assert!((t[1].p99_ms - 600.0).abs() < 1e-6, "{t:?}");
    }
}
