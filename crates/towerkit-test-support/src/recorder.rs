//! [`Metrics`]: what the `metrics` macros record on this thread while a test runs.

use std::cell::RefCell;

use metrics_util::debugging::{DebugValue, DebuggingRecorder, Snapshotter};

/// A metric's name, labels and value.
pub type Metric = (String, Vec<(String, String)>, Value);

/// A recorded value.
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    /// A counter's total.
    Counter(u64),
    /// A gauge's last value.
    Gauge(f64),
    /// Every sample of a histogram.
    Histogram(Vec<f64>),
}

/// A debugging recorder installed for this thread while the value lives.
pub struct Metrics {
    snapshotter: Snapshotter,
    /// Snapshots drain histograms: samples seen so far are kept here.
    seen: RefCell<Vec<Metric>>,
    _guard: metrics::LocalRecorderGuard<'static>,
}

impl Metrics {
    /// Installs the recorder for this thread.
    pub fn capture() -> Self {
        // The guard borrows the recorder for as long as it is installed: one small leak per
        // test.
        let recorder: &'static DebuggingRecorder = Box::leak(Box::new(DebuggingRecorder::new()));
        Self {
            snapshotter: recorder.snapshotter(),
            seen: RefCell::new(Vec::new()),
            _guard: metrics::set_default_local_recorder(recorder),
        }
    }

    /// Every (name, labels, value) recorded so far; histograms with all their samples.
    pub fn all(&self) -> Vec<Metric> {
        let mut seen = self.seen.borrow_mut();
        for (key, _, _, value) in self.snapshotter.snapshot().into_vec() {
            let key = key.key();
            let labels: Vec<(String, String)> = key
                .labels()
                .map(|l| (l.key().to_owned(), l.value().to_owned()))
                .collect();
            let name = key.name().to_owned();
            let value = match value {
                DebugValue::Counter(n) => Value::Counter(n),
                DebugValue::Gauge(g) => Value::Gauge(g.0),
                DebugValue::Histogram(samples) => {
                    Value::Histogram(samples.into_iter().map(|s| s.0).collect())
                }
            };
            match seen.iter_mut().find(|(n, l, _)| *n == name && *l == labels) {
                // Snapshots reset what they read: histograms and counters accumulate here;
                // a gauge reads as set since the previous snapshot (0 if not set again).
                Some((_, _, Value::Histogram(samples))) => {
                    if let Value::Histogram(new) = value {
                        samples.extend(new);
                    }
                }
                Some((_, _, Value::Counter(total))) => {
                    if let Value::Counter(new) = value {
                        *total += new;
                    }
                }
                Some(entry) => entry.2 = value,
                None => seen.push((name, labels, value)),
            }
        }
        seen.clone()
    }

    /// The samples of histogram `name` whose labels include all of `labels`.
    pub fn histogram(&self, name: &str, labels: &[(&str, &str)]) -> Vec<f64> {
        self.matching(name, labels)
            .flat_map(|value| match value {
                Value::Histogram(samples) => samples,
                Value::Counter(_) | Value::Gauge(_) => Vec::new(),
            })
            .collect()
    }

    /// The total of counter `name` whose labels include all of `labels`.
    pub fn counter(&self, name: &str, labels: &[(&str, &str)]) -> u64 {
        self.matching(name, labels)
            .map(|value| match value {
                Value::Counter(n) => n,
                Value::Gauge(_) | Value::Histogram(_) => 0,
            })
            .sum()
    }

    /// The values of metric `name` whose labels include all of `labels`.
    fn matching(&self, name: &str, labels: &[(&str, &str)]) -> impl Iterator<Item = Value> {
        let labels: Vec<(String, String)> = labels
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect();
        let name = name.to_owned();
        self.all().into_iter().filter_map(move |(n, l, value)| {
            (n == name && labels.iter().all(|wanted| l.contains(wanted))).then_some(value)
        })
    }
}

impl std::fmt::Debug for Metrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Metrics").field("seen", &self.seen).finish()
    }
}
