//! [`HistogramCell`] and [`CounterCell`]: a metric registered with the recorder once, not
//! on every record.
//!
//! `metrics::histogram!` and `metrics::counter!` (and `Recorder::register_*`) look the key
//! up in the recorder's registry on every call: with `metrics-exporter-prometheus` that is
//! a hash, a sharded lock, a label-by-label comparison and a key clone, 400 to 1,400
//! instructions, more than the rest of a layer's work on a cache hit. A cell keeps the
//! handle it got instead.
//!
//! A handle belongs to the recorder that made it, so the cell keeps it only for a recorder
//! that lives as long as the process: the global one (or `metrics`' no-op recorder before a
//! global one is installed). A thread-local recorder (`metrics::with_local_recorder`, as
//! tests use) may be dropped and another one built at the same address, so under one the
//! cell registers on every call, as the macros do.

use std::sync::OnceLock;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use metrics::{Counter, Histogram, Key, Metadata, Recorder};

/// A metric key with the handle the process-wide recorder gave for it: see
/// [`HistogramCell`] and [`CounterCell`].
#[derive(Debug)]
pub struct MetricCell<H> {
    key: Key,
    metadata: &'static Metadata<'static>,
    /// Handles of at most two process-wide recorders, each with its address: the no-op
    /// recorder, then the global one once installed.
    handles: [OnceLock<(usize, H)>; 2],
}

/// A histogram key with the handle the process-wide recorder gave for it.
///
/// ```
/// use metrics::{Key, Level, Metadata};
/// use towerkit_http::metric_cell::HistogramCell;
///
/// static METADATA: Metadata<'static> = Metadata::new(module_path!(), Level::INFO, None);
/// let cell = HistogramCell::new(Key::from_name("job_duration_seconds"), &METADATA);
/// cell.record(0.25);
/// ```
pub type HistogramCell = MetricCell<Histogram>;

/// A counter key with the handle the process-wide recorder gave for it.
///
/// ```
/// use metrics::{Key, Level, Metadata};
/// use towerkit_http::metric_cell::CounterCell;
///
/// static METADATA: Metadata<'static> = Metadata::new(module_path!(), Level::INFO, None);
/// let cell = CounterCell::new(Key::from_name("jobs_total"), &METADATA);
/// cell.increment(1);
/// ```
pub type CounterCell = MetricCell<Counter>;

/// A handle a recorder registers for a key: what a [`MetricCell`] keeps.
pub trait Registered: Clone {
    /// Registers `key` with `recorder`.
    fn register(recorder: &dyn Recorder, key: &Key, metadata: &Metadata<'_>) -> Self;
}

impl Registered for Histogram {
    fn register(recorder: &dyn Recorder, key: &Key, metadata: &Metadata<'_>) -> Self {
        recorder.register_histogram(key, metadata)
    }
}

impl Registered for Counter {
    fn register(recorder: &dyn Recorder, key: &Key, metadata: &Metadata<'_>) -> Self {
        recorder.register_counter(key, metadata)
    }
}

impl<H: Registered> MetricCell<H> {
    /// A cell for `key`, registered with `metadata` (what the macros would pass: target,
    /// level, module path).
    pub fn new(key: Key, metadata: &'static Metadata<'static>) -> Self {
        Self {
            key,
            metadata,
            handles: [OnceLock::new(), OnceLock::new()],
        }
    }

    /// The metric's key.
    pub fn key(&self) -> &Key {
        &self.key
    }

    fn with_handle(&self, f: impl FnOnce(&H)) {
        metrics::with_recorder(|recorder| {
            let address = address_of(recorder);
            for slot in &self.handles {
                if let Some((known, handle)) = slot.get()
                    && *known == address
                {
                    return f(handle);
                }
            }
            let handle = H::register(recorder, &self.key, self.metadata);
            if is_process_wide(address) {
                for slot in &self.handles {
                    if slot.get().is_none() {
                        let _ = slot.set((address, handle.clone()));
                        break;
                    }
                }
            }
            f(&handle);
        });
    }
}

impl MetricCell<Histogram> {
    /// Records `value` with the current recorder.
    pub fn record(&self, value: f64) {
        self.with_handle(|handle| handle.record(value));
    }

    /// Records `value` `count` times with the current recorder (one call to the recorder,
    /// for samples gathered elsewhere).
    pub fn record_many(&self, value: f64, count: usize) {
        self.with_handle(|handle| handle.record_many(value, count));
    }
}

impl MetricCell<Counter> {
    /// Adds `value` to the counter with the current recorder.
    pub fn increment(&self, value: u64) {
        self.with_handle(|handle| handle.increment(value));
    }
}

fn address_of(recorder: &dyn Recorder) -> usize {
    std::ptr::from_ref(recorder).cast::<()>() as usize
}

/// The addresses of the process-wide recorders seen so far (0: none yet).
static PROCESS_WIDE: [AtomicUsize; 2] = [AtomicUsize::new(0), AtomicUsize::new(0)];

/// When a new thread last looked, in milliseconds since [`epoch`] (plus one; 0: never).
static LAST_LOOK: AtomicU64 = AtomicU64::new(0);

/// How often at most a new thread is started to learn the process-wide recorder.
const LOOK_INTERVAL: Duration = Duration::from_secs(1);

/// Whether the recorder at `address` is the one every thread without a local recorder sees
/// (the global one or the no-op), which lives as long as the process.
fn is_process_wide(address: usize) -> bool {
    if PROCESS_WIDE
        .iter()
        .any(|known| known.load(Ordering::Relaxed) == address)
    {
        return true;
    }
    // A thread that has just started has no local recorder: what it sees is process-wide.
    // Starting one costs tens of microseconds, so at most once per `LOOK_INTERVAL`.
    let now = u64::try_from(epoch().elapsed().as_millis()).unwrap_or(u64::MAX) + 1;
    let last = LAST_LOOK.load(Ordering::Relaxed);
    let interval = u64::try_from(LOOK_INTERVAL.as_millis()).unwrap_or(u64::MAX);
    if last != 0 && now.saturating_sub(last) < interval {
        return false;
    }
    if LAST_LOOK
        .compare_exchange(last, now, Ordering::Relaxed, Ordering::Relaxed)
        .is_err()
    {
        return false;
    }
    let Ok(seen) = std::thread::Builder::new()
        .name("towerkit-recorder-probe".into())
        .spawn(|| metrics::with_recorder(address_of))
        .and_then(|thread| {
            thread
                .join()
                .map_err(|_| std::io::Error::other("probe panicked"))
        })
    else {
        return false;
    };
    // The first slot keeps the first recorder seen; the second the latest one after it
    // (the global recorder replaces the no-op at most once).
    if PROCESS_WIDE[0]
        .compare_exchange(0, seen, Ordering::Relaxed, Ordering::Relaxed)
        .is_err_and(|first| first != seen)
    {
        PROCESS_WIDE[1].store(seen, Ordering::Relaxed);
    }
    seen == address
}

fn epoch() -> Instant {
    static EPOCH: OnceLock<Instant> = OnceLock::new();
    *EPOCH.get_or_init(Instant::now)
}

#[cfg(test)]
mod tests {
    use metrics::Level;
    use metrics_util::debugging::{DebugValue, DebuggingRecorder};

    use super::*;

    static METADATA: Metadata<'static> = Metadata::new(module_path!(), Level::INFO, None);

    fn samples(recorder: &DebuggingRecorder) -> Vec<f64> {
        recorder
            .snapshotter()
            .snapshot()
            .into_vec()
            .into_iter()
            .flat_map(|(_, _, _, value)| match value {
                DebugValue::Histogram(samples) => samples.into_iter().map(|s| s.0).collect(),
                _ => Vec::new(),
            })
            .collect()
    }

    #[test]
    fn a_local_recorder_gets_every_sample_and_is_never_cached() {
        let cell = HistogramCell::new(Key::from_name("cell_test_seconds"), &METADATA);
        for round in 0..3 {
            // A new local recorder each round, quite possibly at the same address: a handle
            // kept from the previous one would lose these samples.
            let recorder = DebuggingRecorder::new();
            metrics::with_local_recorder(&recorder, || {
                cell.record(f64::from(round));
                cell.record(1.5);
            });
            assert_eq!(samples(&recorder), vec![f64::from(round), 1.5]);
        }
        assert!(cell.handles.iter().all(|slot| slot.get().is_none()));
    }

    #[test]
    fn a_counter_under_a_local_recorder_counts_every_increment() {
        let cell = CounterCell::new(Key::from_name("cell_test_total"), &METADATA);
        for round in 1..=3 {
            let recorder = DebuggingRecorder::new();
            metrics::with_local_recorder(&recorder, || {
                cell.increment(round);
                cell.increment(1);
            });
            let counted: Vec<u64> = recorder
                .snapshotter()
                .snapshot()
                .into_vec()
                .into_iter()
                .filter_map(|(_, _, _, value)| match value {
                    DebugValue::Counter(count) => Some(count),
                    _ => None,
                })
                .collect();
            assert_eq!(counted, vec![round + 1]);
        }
        assert!(cell.handles.iter().all(|slot| slot.get().is_none()));
    }

    #[test]
    fn the_process_wide_recorder_is_recognised_and_its_handle_kept() {
        // No test installs a global recorder: the process-wide one is the no-op, which a
        // new thread sees too.
        let noop = std::thread::spawn(|| metrics::with_recorder(address_of))
            .join()
            .unwrap();
        let cell = HistogramCell::new(Key::from_name("cell_test_noop_seconds"), &METADATA);
        std::thread::spawn(move || {
            // Another test's probe may hold the once-a-second slot: try for a few seconds.
            let deadline = Instant::now() + Duration::from_secs(5);
            while cell.handles[0].get().is_none() && Instant::now() < deadline {
                cell.record(1.0);
                std::thread::sleep(Duration::from_millis(100));
            }
            assert!(
                cell.handles[0]
                    .get()
                    .is_some_and(|(address, _)| *address == noop),
                "the no-op recorder's handle is kept"
            );
        })
        .join()
        .unwrap();
    }
}
