//! [`ConfigError`]: a setting that cannot work, found when a [`TimingLayer`](crate::TimingLayer)
//! or [`QueryTimer`](crate::QueryTimer) is built.

use std::time::Duration;

/// A configuration that cannot work, returned by
/// [`TimingLayerBuilder::build`](crate::TimingLayerBuilder::build) and
/// [`QueryTimerBuilder::build`](crate::QueryTimerBuilder::build).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ConfigError {
    /// The ERROR threshold of `slow` is shorter than its WARN threshold.
    #[error(
        "invalid `slow`: the error threshold ({error:?}) is shorter than the warn threshold ({warn:?})"
    )]
    Slow {
        /// The WARN threshold given.
        warn: Duration,
        /// The ERROR threshold given.
        error: Duration,
    },
}
