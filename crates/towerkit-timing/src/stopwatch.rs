//! [`Stopwatch`]: the clock every towerkit measurement is taken with.

use std::sync::OnceLock;
use std::time::Duration;

/// A point in time on the clock that [`TimingLayer`](crate::TimingLayer) and towerkit-db
/// time calls with: the CPU's time-stamp counter where it is usable (a reading is one
/// instruction, scaled to nanoseconds only when a duration is asked for), the monotonic
/// clock elsewhere. A `std::time::Instant` costs a `clock_gettime` call to read and a
/// checked subtraction to compare; two readings per call are a good part of what timing
/// a call adds.
///
/// ```
/// use towerkit_timing::Stopwatch;
///
/// let start = Stopwatch::start();
/// std::thread::sleep(std::time::Duration::from_millis(2));
/// assert!(start.elapsed() >= std::time::Duration::from_millis(2));
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct Stopwatch {
    raw: u64,
}

impl Stopwatch {
    /// Now.
    pub fn start() -> Self {
        Self { raw: clock().raw() }
    }

    /// The time since `self`.
    pub fn elapsed(&self) -> Duration {
        Self::start().since(*self)
    }

    /// The time from `earlier` to `self` (zero if `earlier` is later).
    pub fn since(&self, earlier: Stopwatch) -> Duration {
        clock().delta(earlier.raw, self.raw)
    }

    /// Calibrates the clock, which otherwise happens on the first reading (a few
    /// milliseconds): call it at start-up.
    pub fn calibrate() {
        let _ = clock();
    }
}

/// Milliseconds with microsecond precision, for logs and `Server-Timing`.
pub(crate) fn millis(duration: Duration) -> f64 {
    duration.as_micros() as f64 / 1000.0
}

fn clock() -> &'static quanta::Clock {
    static CLOCK: OnceLock<quanta::Clock> = OnceLock::new();
    CLOCK.get_or_init(quanta::Clock::new)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn agrees_with_the_standard_clock() {
        let (std_start, start) = (std::time::Instant::now(), Stopwatch::start());
        std::thread::sleep(Duration::from_millis(20));
        let (end, std_elapsed) = (Stopwatch::start(), std_start.elapsed());
        let elapsed = end.since(start);
        assert!(end > start);
        let difference = elapsed.abs_diff(std_elapsed);
        assert!(
            difference < Duration::from_millis(2),
            "{elapsed:?} vs {std_elapsed:?}"
        );
        assert_eq!(start.since(end), Duration::ZERO, "never negative");
    }
}
