//! The one error of bad null-stripping configuration.

/// Bad null-stripping configuration, reported by [`StripNullsLayerBuilder::build`] and
/// [`StripOptions::keep`].
///
/// [`StripNullsLayerBuilder::build`]: crate::StripNullsLayerBuilder::build
/// [`StripOptions::keep`]: crate::StripOptions::keep
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ConfigError {
    /// A keep path that is not a JSON Pointer (RFC 6901).
    #[error("invalid `keep` path {path:?}: {reason}")]
    InvalidKeepPath {
        /// The rejected path.
        path: String,
        /// What is wrong with it.
        reason: &'static str,
    },
    /// More keep paths than [`MAX_KEEP_PATHS`](crate::MAX_KEEP_PATHS).
    #[error("invalid `keep`: {count} paths, at most 64 are allowed")]
    TooManyKeepPaths {
        /// How many paths were given.
        count: usize,
    },
}
