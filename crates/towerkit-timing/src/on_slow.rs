//! What to do with a slow call: the [`OnSlow`] callback, modelled on tower-http's
//! `OnResponse`.

use std::time::Duration;

use crate::collector::RequestTimings;
use crate::measure_traits::CallInfo;
use crate::stopwatch::millis;
use crate::thresholds::Severity;

/// A call that took longer than a threshold, as handed to [`OnSlow`].
#[derive(Debug)]
pub struct SlowCall<'a> {
    /// Which threshold it crossed.
    pub severity: Severity,
    /// That threshold.
    pub threshold: Duration,
    /// How long the call took, until the inner service's response (head) was ready or the
    /// call was cancelled.
    pub elapsed: Duration,
    /// What the call was: route or operation, method, status.
    pub call: &'a CallInfo,
    /// The queries it ran.
    pub timings: &'a RequestTimings,
    /// Whether the call was cancelled (its future dropped by an outer timeout or a client
    /// disconnect) after `elapsed`, rather than answered.
    pub cancelled: bool,
}

/// Called for each call slower than the layer's warn threshold.
///
/// Implemented for [`DefaultOnSlow`] (logs through `tracing`), for `()` (does nothing: the
/// histogram still records every call) and for closures `Fn(&SlowCall<'_>)`.
///
/// ```
/// use std::sync::Arc;
/// use std::sync::atomic::{AtomicUsize, Ordering};
/// use towerkit_timing::{SlowCall, TimingLayer};
///
/// let slow = Arc::new(AtomicUsize::new(0));
/// let counter = slow.clone();
/// let layer = TimingLayer::builder()
///     .on_slow(move |_call: &SlowCall<'_>| {
///         counter.fetch_add(1, Ordering::Relaxed);
///     })
///     .build()?;
/// # let _ = layer;
/// # Ok::<(), towerkit_timing::ConfigError>(())
/// ```
pub trait OnSlow {
    /// Handles one slow call.
    fn on_slow(&self, call: &SlowCall<'_>);
}

/// The default [`OnSlow`]: one `tracing` event at WARN or ERROR (target `towerkit_timing`)
/// with the route or operation, method, status, duration, whether the call was cancelled
/// (`cancelled=true`: dropped by an outer timeout or a client disconnect before it
/// answered), and the request's query count and database time.
#[derive(Debug, Clone, Copy, Default)]
pub struct DefaultOnSlow;

impl OnSlow for DefaultOnSlow {
    fn on_slow(&self, slow: &SlowCall<'_>) {
        let call = slow.call;
        let route = call.operation.as_ref();
        let method = call.method.unwrap_or("");
        let status = call.status.unwrap_or(0);
        let elapsed_ms = millis(slow.elapsed);
        let threshold_ms = millis(slow.threshold);
        let queries = slow.timings.queries();
        let db_ms = millis(slow.timings.db_time());
        match slow.severity {
            Severity::Warn => tracing::warn!(
                target: "towerkit_timing",
                route, method, status, elapsed_ms, threshold_ms, queries, db_ms, failed = call.failed, cancelled = slow.cancelled,
                "slow call"
            ),
            Severity::Error => tracing::error!(
                target: "towerkit_timing",
                route, method, status, elapsed_ms, threshold_ms, queries, db_ms, failed = call.failed, cancelled = slow.cancelled,
                "very slow call"
            ),
        }
    }
}

impl OnSlow for () {
    fn on_slow(&self, _call: &SlowCall<'_>) {}
}

impl<F> OnSlow for F
where
    F: Fn(&SlowCall<'_>),
{
    fn on_slow(&self, call: &SlowCall<'_>) {
        self(call)
    }
}
