//! The metrics the cache records through the [`metrics`](https://docs.rs/metrics) crate, in
//! Prometheus form following OpenTelemetry naming. Install any recorder (for example
//! `metrics-exporter-prometheus`) to collect them; without one they cost next to nothing.
//!
//! | name | type | unit | labels | meaning |
//! |---|---|---|---|---|
//! | `http_cache_requests_total` | counter | requests | `result` = `hit`, `stale`, `miss`, `bypass`; `tier` = `l1`, `l2`, `none` | requests by outcome; `tier` is where a hit was found, or the last tier asked on a miss |
//! | `http_cache_coalesced_requests_total` | counter | requests | | requests that waited for another request's origin call instead of making their own |
//! | `http_cache_store_operation_duration_seconds` | histogram | seconds | `store` = `redis`; `operation` = `get`, `put`, `delete`, `invalidate_tag`, `purge` | remote store latency (memory operations take nanoseconds and are not timed) |
//! | `http_cache_redis_errors_total` | counter | operations | `operation` = `get`, `put`, `delete`, `invalidate_tag`, `purge`, `publish`, `lease`, `skipped`; `node` = the server's or cluster node's `host:port` (`cluster` before a cluster's slot map is known) | failed or timed-out Redis operations, and operations skipped while their node is known to be down (`skipped`) |
//! | `http_cache_not_stored_total` | counter | responses | `reason` = the `Cache-Status` `detail` tokens (`status`, `no-store`, `private`, `authorization`, `cookie`, `set-cookie`, `vary-star`, `no-freshness`, `event-stream`, `too-large`, `must-understand`, `method`) | origin responses not stored, by reason; `too-large` also counts entries a memory store refused |
//! | `http_cache_lease_events_total` | counter | events | `event` = `acquired`, `waited`, `filled`, `timed_out`, `hit_for_miss`, `unavailable` | cross-instance collapsing: leases taken by this instance, waits for another instance's lease, waits answered from the stored fill, waits that reached `coalesce_timeout` (then the origin), keys passed to the origin because their last response was not storable, and claims or waits that failed on the store (then coalescing stays within the process) |
//! | `http_cache_refresh_ahead_total` | counter | refreshes | | background refreshes started by refresh-ahead (a fresh hit in the last part of its entry's lifetime; at most one at a time per key and process, and one per cluster while the key's lease is held elsewhere: a refresh that finds the lease held, or a newer entry already stored, is counted but makes no origin call) |
//! | `http_cache_cdn_purge_failures_total` | counter | purges | `node` = the Varnish node's `host:port` | purges a [`VarnishPurger`](crate::VarnishPurger) gave up on after its retries (feature `varnish`): the node still serves what was invalidated until it expires there |
//! | `http_cache_l1_entries` | gauge | entries | | keys held in process memory |
//! | `http_cache_l1_bytes` | gauge | bytes | | bytes held in process memory |
//!
//! Call [`describe`] once after installing the recorder (or the facade's
//! `towerkit::describe_metrics()`, which describes every towerkit crate): it gives each
//! metric its help text and unit (`# HELP` lines with `metrics-exporter-prometheus`). It
//! speaks to the recorder installed at the time of the call, so building the layers before
//! or after installing the recorder makes no difference; describing before installing it
//! reaches nothing.

use std::sync::LazyLock;

use ::metrics::{Key, Label, Level, Metadata};
use towerkit_http::metric_cell::CounterCell;

use crate::store::Tier;

/// Requests by outcome: labels `result` (`hit`, `stale`, `miss`, `bypass`) and `tier`
/// (`l1`, `l2`, `none`).
pub const REQUESTS_TOTAL: &str = "http_cache_requests_total";
/// Requests served by another request's origin call (request coalescing).
pub const COALESCED_REQUESTS_TOTAL: &str = "http_cache_coalesced_requests_total";
/// Remote store operation latency: labels `store` and `operation`.
pub const STORE_OPERATION_DURATION_SECONDS: &str = "http_cache_store_operation_duration_seconds";
/// Failed, timed-out or skipped Redis operations: labels `operation` and `node`.
pub const REDIS_ERRORS_TOTAL: &str = "http_cache_redis_errors_total";
/// Origin responses not stored: label `reason`.
pub const NOT_STORED_TOTAL: &str = "http_cache_not_stored_total";
/// Cross-instance collapsing: label `event`.
pub const LEASE_EVENTS_TOTAL: &str = "http_cache_lease_events_total";
/// Background refreshes started by refresh-ahead.
pub const REFRESH_AHEAD_TOTAL: &str = "http_cache_refresh_ahead_total";
/// Purges of a Varnish node that failed after every retry: label `node`.
pub const CDN_PURGE_FAILURES_TOTAL: &str = "http_cache_cdn_purge_failures_total";
/// Keys held in process memory.
pub const L1_ENTRIES: &str = "http_cache_l1_entries";
/// Bytes held in process memory.
pub const L1_BYTES: &str = "http_cache_l1_bytes";

/// A request's outcome, as counted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Outcome {
    Hit,
    Stale,
    Miss,
    Bypass,
}

impl Outcome {
    /// The `result` label, and the `cache.result` span attribute.
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Outcome::Hit => "hit",
            Outcome::Stale => "stale",
            Outcome::Miss => "miss",
            Outcome::Bypass => "bypass",
        }
    }
}

/// The metadata `counter!` would give the cache's counters.
static METADATA: Metadata<'static> =
    Metadata::new(module_path!(), Level::INFO, Some(module_path!()));

/// The outcomes in the order of [`REQUEST_CELLS`]' rows.
const OUTCOMES: [Outcome; 4] = [Outcome::Hit, Outcome::Stale, Outcome::Miss, Outcome::Bypass];

/// The `tier` labels in the order of [`REQUEST_CELLS`]' columns.
const TIERS: [&str; 3] = [Tier::L1.as_str(), Tier::L2.as_str(), "none"];

/// `http_cache_requests_total`, one registered counter per (`result`, `tier`): a hit counts
/// with an atomic add, not a registry lookup (see [`CounterCell`]).
static REQUEST_CELLS: LazyLock<[[CounterCell; 3]; 4]> = LazyLock::new(|| {
    OUTCOMES.map(|outcome| {
        TIERS.map(|tier| {
            let labels = vec![
                Label::new("result", outcome.as_str()),
                Label::new("tier", tier),
            ];
            CounterCell::new(Key::from_parts(REQUESTS_TOTAL, labels), &METADATA)
        })
    })
});

/// `http_cache_coalesced_requests_total`, registered once.
static COALESCED_CELL: LazyLock<CounterCell> =
    LazyLock::new(|| CounterCell::new(Key::from_name(COALESCED_REQUESTS_TOTAL), &METADATA));

/// Counts a request in `http_cache_requests_total`; `tier` is where a hit was found, or
/// the last tier asked on a miss (`None`: the `none` label).
pub(crate) fn request(outcome: Outcome, tier: Option<Tier>) {
    let row = match outcome {
        Outcome::Hit => 0,
        Outcome::Stale => 1,
        Outcome::Miss => 2,
        Outcome::Bypass => 3,
    };
    let column = match tier {
        Some(Tier::L1) => 0,
        Some(Tier::L2) => 1,
        None => 2,
    };
    REQUEST_CELLS[row][column].increment(1);
}

/// What happened with a key's lease (see [`LEASE_EVENTS_TOTAL`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum LeaseEvent {
    Acquired,
    Waited,
    Filled,
    TimedOut,
    HitForMiss,
    Unavailable,
}

pub(crate) fn lease(event: LeaseEvent) {
    let event = match event {
        LeaseEvent::Acquired => "acquired",
        LeaseEvent::Waited => "waited",
        LeaseEvent::Filled => "filled",
        LeaseEvent::TimedOut => "timed_out",
        LeaseEvent::HitForMiss => "hit_for_miss",
        LeaseEvent::Unavailable => "unavailable",
    };
    ::metrics::counter!(LEASE_EVENTS_TOTAL, "event" => event).increment(1);
}

pub(crate) fn not_stored(reason: crate::freshness::NotStorable) {
    ::metrics::counter!(NOT_STORED_TOTAL, "reason" => reason.as_str()).increment(1);
}

pub(crate) fn refresh_ahead() {
    ::metrics::counter!(REFRESH_AHEAD_TOTAL).increment(1);
}

pub(crate) fn coalesced() {
    COALESCED_CELL.increment(1);
}

#[cfg(feature = "redis")]
pub(crate) fn store_operation(operation: &'static str, elapsed: std::time::Duration) {
    ::metrics::histogram!(STORE_OPERATION_DURATION_SECONDS, "store" => "redis", "operation" => operation)
        .record(elapsed.as_secs_f64());
}

#[cfg(feature = "redis")]
pub(crate) fn redis_error(operation: &'static str, node: &str) {
    ::metrics::counter!(REDIS_ERRORS_TOTAL, "operation" => operation, "node" => node.to_owned())
        .increment(1);
}

#[cfg(feature = "varnish")]
pub(crate) fn cdn_purge_failure(node: &str) {
    ::metrics::counter!(CDN_PURGE_FAILURES_TOTAL, "node" => node.to_owned()).increment(1);
}

pub(crate) fn l1_gauges(entries: u64, bytes: u64) {
    ::metrics::gauge!(L1_ENTRIES).set(entries as f64);
    ::metrics::gauge!(L1_BYTES).set(bytes as f64);
}

/// Gives every metric above its help text and unit, in the recorder installed now (see the
/// module docs). Idempotent; metrics work without it, with no help text.
pub fn describe() {
    use ::metrics::{Unit, describe_counter, describe_gauge, describe_histogram};
    describe_counter!(
        REQUESTS_TOTAL,
        Unit::Count,
        "Requests through the HTTP cache, by result (hit, stale, miss, bypass) and the tier that answered or was asked last"
    );
    describe_counter!(
        COALESCED_REQUESTS_TOTAL,
        Unit::Count,
        "Requests that waited for another request's origin call instead of making their own"
    );
    describe_histogram!(
        STORE_OPERATION_DURATION_SECONDS,
        Unit::Seconds,
        "Duration of remote cache store operations, in seconds"
    );
    describe_counter!(
        REDIS_ERRORS_TOTAL,
        Unit::Count,
        "Redis operations of the cache that failed or timed out, and those skipped while Redis was known to be down"
    );
    describe_counter!(
        NOT_STORED_TOTAL,
        Unit::Count,
        "Origin responses the cache did not store, by reason"
    );
    describe_counter!(
        LEASE_EVENTS_TOTAL,
        Unit::Count,
        "Events of cross-instance miss collapsing through the shared store, by event"
    );
    describe_counter!(
        REFRESH_AHEAD_TOTAL,
        Unit::Count,
        "Background refreshes started by refresh-ahead: fresh hits in the last part of their entry's lifetime"
    );
    describe_counter!(
        CDN_PURGE_FAILURES_TOTAL,
        Unit::Count,
        "Purges of a CDN or Varnish node that failed after every retry, by node"
    );
    describe_gauge!(
        L1_ENTRIES,
        Unit::Count,
        "Cached responses held in this process's memory"
    );
    describe_gauge!(
        L1_BYTES,
        Unit::Bytes,
        "Bytes of cached responses held in this process's memory"
    );
}

#[cfg(test)]
mod tests {
    use metrics_util::debugging::DebuggingRecorder;

    use super::*;

    #[test]
    fn each_outcome_and_tier_counts_under_its_own_labels() {
        let recorder = DebuggingRecorder::new();
        let snapshotter = recorder.snapshotter();
        let tiers = [
            (Some(Tier::L1), "l1"),
            (Some(Tier::L2), "l2"),
            (None, "none"),
        ];
        ::metrics::with_local_recorder(&recorder, || {
            // Each (outcome, tier) a different number of times, so a cell counting under
            // another pair's labels shows.
            let mut times = 1;
            for outcome in OUTCOMES {
                for (tier, _) in tiers {
                    for _ in 0..times {
                        request(outcome, tier);
                    }
                    times += 1;
                }
            }
        });
        let counts: std::collections::HashMap<(String, String), u64> = snapshotter
            .snapshot()
            .into_vec()
            .into_iter()
            .filter(|(key, ..)| key.key().name() == REQUESTS_TOTAL)
            .map(|(key, _, _, value)| {
                let label = |name: &str| {
                    key.key()
                        .labels()
                        .find(|label| label.key() == name)
                        .map(|label| label.value().to_owned())
                        .unwrap_or_default()
                };
                let count = match value {
                    metrics_util::debugging::DebugValue::Counter(count) => count,
                    other => panic!("{other:?}"),
                };
                ((label("result"), label("tier")), count)
            })
            .collect();
        let mut times = 1;
        for outcome in OUTCOMES {
            for (_, tier) in tiers {
                let labels = (outcome.as_str().to_owned(), tier.to_owned());
                assert_eq!(
                    counts.get(&labels),
                    Some(&times),
                    "{labels:?} in {counts:?}"
                );
                times += 1;
            }
        }
        assert_eq!(counts.len(), 12);
    }

    /// The metrics `register` records after [`describe`], each with its unit and help text
    /// (a description given for another kind of metric is not found).
    fn described(
        register: impl FnOnce(),
    ) -> Vec<(
        String,
        Option<::metrics::Unit>,
        Option<::metrics::SharedString>,
    )> {
        let recorder = DebuggingRecorder::new();
        let snapshotter = recorder.snapshotter();
        ::metrics::with_local_recorder(&recorder, || {
            describe();
            register();
        });
        snapshotter
            .snapshot()
            .into_vec()
            .into_iter()
            .map(|(key, unit, help, _)| (key.key().name().to_owned(), unit, help))
            .collect()
    }

    #[test]
    fn describe_gives_every_metric_its_kind_a_unit_and_a_help_text() {
        let described = described(|| {
            for name in [
                REQUESTS_TOTAL,
                COALESCED_REQUESTS_TOTAL,
                REDIS_ERRORS_TOTAL,
                NOT_STORED_TOTAL,
                LEASE_EVENTS_TOTAL,
                REFRESH_AHEAD_TOTAL,
                CDN_PURGE_FAILURES_TOTAL,
            ] {
                ::metrics::counter!(name).increment(1);
            }
            ::metrics::histogram!(STORE_OPERATION_DURATION_SECONDS).record(0.001);
            ::metrics::gauge!(L1_ENTRIES).set(1.0);
            ::metrics::gauge!(L1_BYTES).set(1.0);
        });
        assert_eq!(described.len(), 10);
        for (name, unit, help) in described {
            assert!(unit.is_some(), "{name} has no unit");
            assert!(
                help.is_some_and(|h| !h.is_empty()),
                "{name} has no help text"
            );
        }
    }
}
