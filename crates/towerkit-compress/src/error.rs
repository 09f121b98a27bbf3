//! The crate's one configuration error.

use crate::encoding::Encoding;

/// A configuration the layer cannot run with, reported by
/// [`CompressionLayerBuilder::build`](crate::CompressionLayerBuilder::build) (and by
/// [`DefaultPredicate::skip_media_types`](crate::DefaultPredicate::skip_media_types)).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ConfigError {
    /// A level was asked for a coding whose cargo feature is off.
    #[error(
        "invalid `level`: the {0} coding is not compiled in (enable the `{0}` feature of towerkit-compress)"
    )]
    NotCompiled(Encoding),
    /// The level is outside the coding's range ([`Encoding::levels`]).
    #[error("invalid `level`: {encoding} level {level} is outside {min}..={max}")]
    LevelOutOfRange {
        /// The coding.
        encoding: Encoding,
        /// The level asked for.
        level: i32,
        /// The lowest level the coding takes.
        min: i32,
        /// The highest level the coding takes.
        max: i32,
    },
    /// A skipped media type is not `type/subtype` or `type/*`.
    #[error(
        "invalid `skip_media_types`: {0:?} is not a media type or range (expected type/subtype or type/*)"
    )]
    InvalidMediaType(String),
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_name_the_setting() {
        assert_eq!(
            ConfigError::LevelOutOfRange {
                encoding: Encoding::Br,
                level: 12,
                min: 0,
                max: 11
            }
            .to_string(),
            "invalid `level`: br level 12 is outside 0..=11"
        );
        assert_eq!(
            ConfigError::InvalidMediaType("json".to_owned()).to_string(),
            "invalid `skip_media_types`: \"json\" is not a media type or range (expected type/subtype or type/*)"
        );
        assert!(
            ConfigError::NotCompiled(Encoding::Zstd)
                .to_string()
                .starts_with("invalid `level`: the zstd coding is not compiled in")
        );
    }
}
