//! Slow-call thresholds: WARN above one duration, ERROR above a second.

use std::time::Duration;

use crate::error::ConfigError;

/// How slow a call was.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Severity {
    /// Above the warn threshold: logged at WARN by default.
    Warn,
    /// Above the error threshold: logged at ERROR by default.
    Error,
}

/// The two durations above which a call counts as slow, set with the `slow` setting of
/// [`TimingLayerBuilder`](crate::TimingLayerBuilder) and
/// [`QueryTimerBuilder`](crate::QueryTimerBuilder).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Thresholds {
    warn: Duration,
    error: Duration,
}

impl Default for Thresholds {
    /// WARN above 500 ms, ERROR above 1 s.
    fn default() -> Self {
        Self::DEFAULT
    }
}

impl Thresholds {
    /// WARN above 500 ms, ERROR above 1 s.
    pub(crate) const DEFAULT: Thresholds = Thresholds {
        warn: Duration::from_millis(500),
        error: Duration::from_secs(1),
    };

    /// Calls longer than `warn` are slow, calls longer than `error` very slow. Fails when
    /// `error` is shorter than `warn`.
    pub(crate) fn new(warn: Duration, error: Duration) -> Result<Self, ConfigError> {
        if error < warn {
            return Err(ConfigError::Slow { warn, error });
        }
        Ok(Self { warn, error })
    }

    /// The WARN threshold.
    pub(crate) fn warn(&self) -> Duration {
        self.warn
    }

    /// The ERROR threshold.
    pub(crate) fn error(&self) -> Duration {
        self.error
    }

    /// How slow a call of `elapsed` is: `None` at or below the warn threshold.
    pub(crate) fn classify(&self, elapsed: Duration) -> Option<Severity> {
        if elapsed > self.error {
            Some(Severity::Error)
        } else if elapsed > self.warn {
            Some(Severity::Warn)
        } else {
            None
        }
    }

    /// The threshold a call of `severity` exceeded.
    pub(crate) fn threshold(&self, severity: Severity) -> Duration {
        match severity {
            Severity::Warn => self.warn,
            Severity::Error => self.error,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_500_ms_and_1_s() {
        let thresholds = Thresholds::default();
        assert_eq!(thresholds.warn(), Duration::from_millis(500));
        assert_eq!(thresholds.error(), Duration::from_secs(1));
    }

    #[test]
    fn thresholds_are_exclusive() {
        let thresholds = Thresholds::default();
        assert_eq!(thresholds.classify(Duration::from_millis(500)), None);
        assert_eq!(
            thresholds.classify(Duration::from_millis(501)),
            Some(Severity::Warn)
        );
        assert_eq!(
            thresholds.classify(Duration::from_secs(1)),
            Some(Severity::Warn)
        );
        assert_eq!(
            thresholds.classify(Duration::from_millis(1001)),
            Some(Severity::Error)
        );
    }

    #[test]
    fn classifies_below_between_and_above() {
        let thresholds =
            Thresholds::new(Duration::from_millis(100), Duration::from_millis(300)).unwrap();
        assert_eq!(thresholds.classify(Duration::from_millis(50)), None);
        assert_eq!(
            thresholds.classify(Duration::from_millis(150)),
            Some(Severity::Warn)
        );
        assert_eq!(
            thresholds.classify(Duration::from_millis(400)),
            Some(Severity::Error)
        );
    }

    #[test]
    fn equal_thresholds_are_valid() {
        let thresholds =
            Thresholds::new(Duration::from_millis(10), Duration::from_millis(10)).unwrap();
        assert_eq!(
            thresholds.classify(Duration::from_millis(11)),
            Some(Severity::Error)
        );
    }

    #[test]
    fn error_below_warn_is_a_typed_error() {
        let err = Thresholds::new(Duration::from_secs(1), Duration::from_millis(10)).unwrap_err();
        assert_eq!(
            err,
            ConfigError::Slow {
                warn: Duration::from_secs(1),
                error: Duration::from_millis(10)
            }
        );
        assert!(
            err.to_string().contains("shorter than the warn threshold"),
            "{err}"
        );
        assert!(err.to_string().starts_with("invalid `slow`: "), "{err}");
    }
}
