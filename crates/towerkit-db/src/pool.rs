//! The pool's upkeep (warm-up, retiring idle and old connections, the pool gauges and
//! checkout times), and deadpool's errors mapped to [`DbError`].

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use deadpool_postgres::{HookError, Pool, PoolError, TimeoutType, WeakPool};
use metrics::SharedString;
use towerkit_timing::metrics::HistogramCell;

use crate::error::DbError;
use crate::metrics::{
    CONNECTION_MAX, CONNECTION_PENDING_REQUESTS, CONNECTION_WAIT_TIME, CONNECTIONS, POOL_NAME_LABEL,
};

/// The longest pause between two rounds of upkeep (gauges refreshed, connections retired).
pub const MAX_UPKEEP_INTERVAL: Duration = Duration::from_secs(1);

/// A snapshot of the pool.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PoolStatus {
    /// The most connections the pool opens.
    pub max: usize,
    /// Connections open.
    pub size: usize,
    /// Open connections not checked out.
    pub idle: usize,
    /// Connections checked out.
    pub used: usize,
    /// Requests waiting for a connection.
    pub waiting: usize,
}

impl PoolStatus {
    pub(crate) fn of(pool: &Pool) -> Self {
        let status = pool.status();
        Self {
            max: status.max_size,
            size: status.size,
            idle: status.available,
            used: status.size.saturating_sub(status.available),
            waiting: status.waiting,
        }
    }

    /// Every connection is in use (and none can be opened), or requests are waiting.
    pub fn is_saturated(&self) -> bool {
        self.waiting > 0 || (self.max > 0 && self.used >= self.max)
    }
}

/// Sets the pool gauges from `pool`'s status.
pub(crate) fn record_gauges(pool: &Pool, name: &SharedString) {
    let status = PoolStatus::of(pool);
    for (state, count) in [("idle", status.idle), ("used", status.used)] {
        metrics::gauge!(CONNECTIONS, POOL_NAME_LABEL => name.clone(), "db_client_connection_state" => state)
            .set(count as f64);
    }
    metrics::gauge!(CONNECTION_MAX, POOL_NAME_LABEL => name.clone()).set(status.max as f64);
    metrics::gauge!(CONNECTION_PENDING_REQUESTS, POOL_NAME_LABEL => name.clone())
        .set(status.waiting as f64);
}

/// Checkouts shorter than this (a free connection taken at once) are counted and recorded
/// in `db_client_connection_wait_time_seconds` together, at their mean, by the upkeep task (at most
/// [`MAX_UPKEEP_INTERVAL`] later) or [`Db::record_pool_metrics`](crate::Db::record_pool_metrics);
/// longer ones are recorded as they happen.
pub const QUICK_CHECKOUT: Duration = Duration::from_millis(1);

/// The pool's checkout times: `db_client_connection_wait_time_seconds`.
///
/// Recording a histogram sample costs a few hundred instructions and touches the
/// recorder's shared state, about 1 % of a local `SELECT 1`; nearly every checkout takes a
/// free connection in a microsecond or two, so those are summed here with two atomic adds
/// and recorded in one call per upkeep round. Their count and total are exact; only their
/// spread below [`QUICK_CHECKOUT`] is lost (each is recorded at the mean).
#[derive(Debug)]
pub(crate) struct CheckoutTimes {
    histogram: HistogramCell,
    quick_count: AtomicU64,
    quick_nanos: AtomicU64,
}

/// The metadata the `histogram!` macro would give the checkout histogram.
static WAIT_METADATA: metrics::Metadata<'static> =
    metrics::Metadata::new(module_path!(), metrics::Level::INFO, Some(module_path!()));

impl CheckoutTimes {
    pub(crate) fn new(pool_name: &SharedString) -> Arc<Self> {
        let key = metrics::Key::from_parts(
            CONNECTION_WAIT_TIME,
            vec![metrics::Label::new(POOL_NAME_LABEL, pool_name.clone())],
        );
        Arc::new(Self {
            histogram: HistogramCell::new(key, &WAIT_METADATA),
            quick_count: AtomicU64::new(0),
            quick_nanos: AtomicU64::new(0),
        })
    }

    /// One checkout that took `wait`.
    pub(crate) fn record(&self, wait: Duration) {
        if wait < QUICK_CHECKOUT {
            // Below a millisecond, so the nanoseconds fit.
            self.quick_nanos
                .fetch_add(wait.as_nanos() as u64, Ordering::Relaxed);
            self.quick_count.fetch_add(1, Ordering::Relaxed);
        } else {
            self.histogram.record(wait.as_secs_f64());
        }
    }

    /// Records the quick checkouts counted since the last flush.
    pub(crate) fn flush(&self) {
        let count = self.quick_count.swap(0, Ordering::Relaxed);
        if count == 0 {
            return;
        }
        // A checkout counted between the two swaps adds its time here and its count to the
        // next flush: the totals over time stay exact.
        let nanos = self.quick_nanos.swap(0, Ordering::Relaxed);
        let mean = Duration::from_nanos(nanos / count).as_secs_f64();
        self.histogram
            .record_many(mean, usize::try_from(count).unwrap_or(usize::MAX));
    }
}

/// Opens connections until the pool holds `min`, all at once; the first failure is
/// returned.
pub(crate) async fn top_up(pool: &Pool, min: usize) -> Result<(), DbError> {
    let missing = min.saturating_sub(pool.status().size);
    if missing == 0 {
        return Ok(());
    }
    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..missing {
        let pool = pool.clone();
        tasks.spawn(async move { pool.get().await.map(drop) });
    }
    let mut first_error = None;
    while let Some(joined) = tasks.join_next().await {
        if let Ok(Err(error)) = joined {
            first_error.get_or_insert(error);
        }
    }
    match first_error {
        Some(error) => Err(pool_error(error, pool)),
        None => Ok(()),
    }
}

/// Maps deadpool's error to ours.
pub(crate) fn pool_error(error: PoolError, pool: &Pool) -> DbError {
    let timeouts = pool.timeouts();
    match error {
        PoolError::Timeout(TimeoutType::Wait) => {
            DbError::PoolTimeout(timeouts.wait.unwrap_or_default())
        }
        PoolError::Timeout(TimeoutType::Create | TimeoutType::Recycle) => {
            DbError::ConnectTimeout(timeouts.create.unwrap_or_default())
        }
        PoolError::Backend(error) => DbError::connect(error),
        PoolError::PostCreateHook(HookError::Backend(error)) => DbError::connect(error),
        PoolError::Closed | PoolError::PostCreateHook(_) => DbError::Closed,
        PoolError::NoRuntimeSpecified => DbError::NoRuntime,
    }
}

/// What the upkeep task needs to know.
#[derive(Debug, Clone)]
pub(crate) struct Upkeep {
    pub(crate) min_connections: usize,
    pub(crate) idle_timeout: Duration,
    pub(crate) max_lifetime: Duration,
    pub(crate) name: SharedString,
    pub(crate) checkouts: Arc<CheckoutTimes>,
}

impl Upkeep {
    /// Often enough to retire connections within a quarter of their limits, at most every
    /// second (the gauges' resolution).
    pub(crate) fn interval(&self) -> Duration {
        (self.idle_timeout.min(self.max_lifetime) / 4)
            .clamp(Duration::from_millis(10), MAX_UPKEEP_INTERVAL)
    }

    /// Whether a connection with this age and idle time may stay open.
    pub(crate) fn keep(&self, age: Duration, idle: Duration) -> bool {
        age < self.max_lifetime && idle < self.idle_timeout
    }

    /// Runs until the pool is dropped: retires idle and old connections, tops up to
    /// `min_connections`, and refreshes the gauges.
    pub(crate) async fn run(self, pool: WeakPool) {
        let mut interval = tokio::time::interval(self.interval());
        interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            interval.tick().await;
            let Some(pool) = pool.upgrade() else {
                return;
            };
            let retired = pool
                .retain(|_, metrics| self.keep(metrics.age(), metrics.last_used()))
                .removed
                .len();
            if retired > 0 {
                tracing::debug!(target: "towerkit_db", retired, "closed idle or old connections");
            }
            if let Err(error) = top_up(&pool, self.min_connections).await {
                tracing::debug!(target: "towerkit_db", %error, "could not open the minimum connections");
            }
            record_gauges(&pool, &self.name);
            self.checkouts.flush();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn upkeep(idle: u64, lifetime: u64) -> Upkeep {
        Upkeep {
            min_connections: 0,
            idle_timeout: Duration::from_millis(idle),
            max_lifetime: Duration::from_millis(lifetime),
            name: SharedString::const_str("default"),
            checkouts: CheckoutTimes::new(&SharedString::const_str("default")),
        }
    }

    #[test]
    fn upkeep_runs_often_enough_for_the_shortest_limit() {
        assert_eq!(upkeep(600_000, 1_800_000).interval(), MAX_UPKEEP_INTERVAL);
        assert_eq!(upkeep(200, 1_800_000).interval(), Duration::from_millis(50));
        assert_eq!(upkeep(1, 1).interval(), Duration::from_millis(10));
    }

    #[test]
    fn connections_past_either_limit_are_retired() {
        let upkeep = upkeep(100, 1000);
        assert!(upkeep.keep(Duration::from_millis(500), Duration::from_millis(50)));
        assert!(!upkeep.keep(Duration::from_millis(500), Duration::from_millis(100)));
        assert!(!upkeep.keep(Duration::from_millis(1000), Duration::ZERO));
    }

    #[test]
    fn quick_checkouts_are_recorded_together_at_their_mean_and_slow_ones_at_once() {
        use metrics_util::debugging::{DebugValue, DebuggingRecorder};

        let recorder = DebuggingRecorder::new();
        let samples = || -> Vec<f64> {
            recorder
                .snapshotter()
                .snapshot()
                .into_vec()
                .into_iter()
                .flat_map(|(key, _, _, value)| match value {
                    DebugValue::Histogram(samples) if key.key().name() == CONNECTION_WAIT_TIME => {
                        samples.into_iter().map(|s| s.0).collect()
                    }
                    _ => Vec::new(),
                })
                .collect()
        };
        metrics::with_local_recorder(&recorder, || {
            let times = CheckoutTimes::new(&SharedString::const_str("test"));
            times.record(Duration::from_micros(2));
            times.record(Duration::from_micros(4));
            times.record(Duration::from_millis(30));
            assert_eq!(samples(), [0.030], "only the slow checkout so far");
            times.flush();
            assert_eq!(samples(), [0.000_003, 0.000_003], "two at their mean");
            times.flush();
            assert_eq!(samples(), Vec::<f64>::new(), "nothing new to flush");
        });
    }

    #[test]
    fn saturation() {
        let status = PoolStatus {
            max: 2,
            size: 2,
            idle: 0,
            used: 2,
            waiting: 0,
        };
        assert!(status.is_saturated());
        assert!(
            PoolStatus {
                waiting: 1,
                used: 1,
                idle: 0,
                ..status
            }
            .is_saturated()
        );
        assert!(
            !PoolStatus {
                idle: 1,
                used: 1,
                ..status
            }
            .is_saturated()
        );
    }
}
