//! [`Durations`]: a lock-free histogram of durations with quantiles within 1 %, for
//! [`QueryStats`](crate::QueryStats).
//!
//! Buckets are log-linear over nanoseconds (as in HdrHistogram): exact below 128 ns, then
//! 64 buckets per power of two, so a bucket is at most 1/64 of its lower bound wide and its
//! midpoint is within 0.8 % of any value in it. Recording is one relaxed atomic add, so
//! every query can afford it without a lock; reading walks the buckets.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

/// Buckets per power of two, as a power of two.
const SUB_BITS: u32 = 6;
const SUB_BUCKETS: u64 = 1 << SUB_BITS;

/// Durations are counted up to 2^42 ns (about 73 minutes); longer ones in the last bucket.
const MAX_BITS: u32 = 42;

/// The bucket count: the index of the largest value, plus one.
const BUCKETS: usize = index((1 << MAX_BITS) - 1) + 1;

/// The bucket of `nanos` (below 2^[`MAX_BITS`]).
const fn index(nanos: u64) -> usize {
    let msb = 63 - (nanos | 1).leading_zeros();
    let shift = msb.saturating_sub(SUB_BITS);
    (SUB_BUCKETS * shift as u64 + (nanos >> shift)) as usize
}

/// The midpoint of bucket `index`, in nanoseconds.
fn midpoint(index: usize) -> u64 {
    let index = index as u64;
    if index < 2 * SUB_BUCKETS {
        return index;
    }
    let shift = index / SUB_BUCKETS - 1;
    let lower = (index - SUB_BUCKETS * shift) << shift;
    lower + (1 << shift) / 2
}

/// Counts of durations by bucket (2,368 counters, 18.5 KiB, allocated once).
pub(crate) struct Durations {
    buckets: Box<[AtomicU64]>,
}

impl Durations {
    pub(crate) fn new() -> Self {
        Self {
            buckets: (0..BUCKETS).map(|_| AtomicU64::new(0)).collect(),
        }
    }

    /// Counts one duration.
    pub(crate) fn record(&self, duration: Duration) {
        let nanos = u64::try_from(duration.as_nanos())
            .unwrap_or(u64::MAX)
            .min((1 << MAX_BITS) - 1);
        self.buckets[index(nanos)].fetch_add(1, Ordering::Relaxed);
    }

    /// The durations counted so far, for [`Snapshot::quantile`].
    pub(crate) fn snapshot(&self) -> Snapshot {
        let counts: Vec<u64> = self
            .buckets
            .iter()
            .map(|bucket| bucket.load(Ordering::Relaxed))
            .collect();
        Snapshot {
            total: counts.iter().sum(),
            counts,
        }
    }
}

/// The bucket counts at one moment.
pub(crate) struct Snapshot {
    counts: Vec<u64>,
    total: u64,
}

impl Snapshot {
    /// How many durations were counted.
    pub(crate) fn count(&self) -> u64 {
        self.total
    }

    /// The sum of the durations counted, each at its bucket's midpoint (within 1 %).
    pub(crate) fn total(&self) -> Duration {
        let nanos: u128 = self
            .counts
            .iter()
            .enumerate()
            .map(|(index, &count)| u128::from(count) * u128::from(midpoint(index)))
            .sum();
        Duration::from_nanos(u64::try_from(nanos).unwrap_or(u64::MAX))
    }

    /// The `q` quantile (0.0 to 1.0): the smallest counted duration that at least `q` of
    /// them do not exceed, within 1 %; zero when nothing was counted.
    pub(crate) fn quantile(&self, q: f64) -> Duration {
        if self.total == 0 {
            return Duration::ZERO;
        }
        // The rank of the wanted duration, 1-based.
        let rank = ((q.clamp(0.0, 1.0) * self.total as f64).ceil() as u64).max(1);
        let mut seen = 0;
        for (index, count) in self.counts.iter().enumerate() {
            seen += count;
            if seen >= rank {
                return Duration::from_nanos(midpoint(index));
            }
        }
        Duration::from_nanos(midpoint(BUCKETS - 1))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buckets_are_contiguous_and_exact_below_128_ns() {
        for nanos in 0..128 {
            assert_eq!(index(nanos), nanos as usize);
            assert_eq!(midpoint(index(nanos)), nanos);
        }
        // Each power of two starts where the last one ended.
        for bits in 7..MAX_BITS {
            let first = 1_u64 << bits;
            assert_eq!(index(first), index(first - 1) + 1, "at 2^{bits}");
        }
        assert_eq!(BUCKETS, 2368);
    }

    #[test]
    fn every_value_is_within_one_percent_of_its_bucket_midpoint() {
        let mut nanos = 1_u64;
        while nanos < 1 << MAX_BITS {
            let mid = midpoint(index(nanos)) as f64;
            let error = (mid - nanos as f64).abs() / nanos as f64;
            assert!(error <= 0.008, "{nanos} ns read back as {mid} ({error})");
            nanos = nanos * 21 / 20 + 1;
        }
    }

    #[test]
    fn quantiles_match_the_exact_ones_within_one_percent() {
        let durations = Durations::new();
        // 1 to 10,000 microseconds, shuffled by a fixed stride.
        let values: Vec<u64> = (0..10_000_u64).map(|i| (i * 7_919) % 10_000 + 1).collect();
        for &micros in &values {
            durations.record(Duration::from_micros(micros));
        }
        let snapshot = durations.snapshot();
        assert_eq!(snapshot.count(), 10_000);
        // The exact total is 1 + 2 + ... + 10,000 µs.
        let exact_total = 10_000.0 * 10_001.0 / 2.0;
        let total = snapshot.total().as_secs_f64() * 1e6;
        assert!(
            (total - exact_total).abs() / exact_total <= 0.01,
            "total {total} µs vs {exact_total} µs"
        );
        for (q, exact_micros) in [(0.5, 5_000.0), (0.95, 9_500.0), (0.99, 9_900.0)] {
            let estimate = snapshot.quantile(q).as_secs_f64() * 1e6;
            let error = (estimate - exact_micros).abs() / exact_micros;
            assert!(error <= 0.01, "p{q}: {estimate} µs vs {exact_micros} µs");
        }
    }

    #[test]
    fn extremes_are_kept_not_lost() {
        let durations = Durations::new();
        assert_eq!(durations.snapshot().quantile(0.5), Duration::ZERO);
        durations.record(Duration::ZERO);
        durations.record(Duration::from_secs(24 * 3600));
        let snapshot = durations.snapshot();
        assert_eq!(snapshot.count(), 2);
        assert_eq!(snapshot.quantile(0.5), Duration::ZERO);
        // A day is beyond the range: counted in the last bucket, about 73 minutes.
        let top = snapshot.quantile(1.0).as_secs_f64();
        assert!((4_360.0..4_400.0).contains(&top), "{top}");
    }
}
