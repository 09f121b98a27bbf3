//! Helpers for this crate's tests: captured `tracing` output and `metrics` snapshots.

use std::cell::RefCell;
use std::io;
use std::sync::{Arc, Mutex};

use metrics_util::debugging::{DebugValue, DebuggingRecorder, Snapshotter};

/// Log lines written while the guard lives, on this thread.
pub(crate) struct Logs {
    buffer: Arc<Mutex<Vec<u8>>>,
    _guard: tracing::subscriber::DefaultGuard,
}

impl Logs {
    pub(crate) fn capture() -> Self {
        let buffer = Arc::new(Mutex::new(Vec::new()));
        let writer = buffer.clone();
        let subscriber = tracing_subscriber::fmt()
            .with_writer(move || Writer(writer.clone()))
            .with_ansi(false)
            .with_max_level(tracing::Level::TRACE)
            .finish();
        Self {
            buffer,
            _guard: tracing::subscriber::set_default(subscriber),
        }
    }

    pub(crate) fn text(&self) -> String {
        String::from_utf8_lossy(&self.buffer.lock().unwrap()).into_owned()
    }

    /// The lines containing `needle`.
    pub(crate) fn lines_with(&self, needle: &str) -> Vec<String> {
        self.text()
            .lines()
            .filter(|line| line.contains(needle))
            .map(str::to_owned)
            .collect()
    }
}

struct Writer(Arc<Mutex<Vec<u8>>>);

impl io::Write for Writer {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// A debugging recorder installed for this thread while the value lives.
pub(crate) struct Metrics {
    snapshotter: Snapshotter,
    /// Snapshots drain histograms: samples seen so far are kept here.
    seen: RefCell<Vec<Metric>>,
    _guard: metrics::LocalRecorderGuard<'static>,
}

type Metric = (String, Vec<(String, String)>, Value);

/// A recorded value.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Value {
    Counter(u64),
    Gauge(f64),
    Histogram(Vec<f64>),
}

impl Metrics {
    pub(crate) fn capture() -> Self {
        let recorder: &'static DebuggingRecorder = Box::leak(Box::new(DebuggingRecorder::new()));
        let snapshotter = recorder.snapshotter();
        Self {
            snapshotter,
            seen: RefCell::new(Vec::new()),
            _guard: metrics::set_default_local_recorder(recorder),
        }
    }

    /// Every (name, labels, value) recorded so far; histograms as all their samples.
    pub(crate) fn all(&self) -> Vec<Metric> {
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
    pub(crate) fn histogram(&self, name: &str, labels: &[(&str, &str)]) -> Vec<f64> {
        self.all()
            .into_iter()
            .filter(|(n, l, _)| {
                n == name
                    && labels
                        .iter()
                        .all(|(k, v)| l.iter().any(|(lk, lv)| lk == k && lv == v))
            })
            .flat_map(|(_, _, value)| match value {
                Value::Histogram(samples) => samples,
                _ => Vec::new(),
            })
            .collect()
    }

    /// The value of counter `name` whose labels include all of `labels`.
    pub(crate) fn counter(&self, name: &str, labels: &[(&str, &str)]) -> u64 {
        self.all()
            .into_iter()
            .filter(|(n, l, _)| {
                n == name
                    && labels
                        .iter()
                        .all(|(k, v)| l.iter().any(|(lk, lv)| lk == k && lv == v))
            })
            .map(|(_, _, value)| match value {
                Value::Counter(n) => n,
                _ => 0,
            })
            .sum()
    }
}
