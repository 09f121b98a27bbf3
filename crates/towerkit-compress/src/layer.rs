//! The layer and its builder: configuration only, checked once when it is built.

use tower_http::compression::Predicate;
use tower_layer::Layer;

use crate::encoding::Encoding;
use crate::error::ConfigError;
use crate::levels::Levels;
use crate::predicate::DefaultPredicate;
use crate::service::Compression;

/// A [`Layer`] that compresses responses with the coding the client prefers. See the
/// [crate docs](crate).
///
/// [`CompressionLayer::new`] is the default configuration; [`CompressionLayer::builder`]
/// changes it.
#[derive(Debug, Clone)]
pub struct CompressionLayer<P = DefaultPredicate> {
    levels: Levels,
    predicate: P,
}

impl Default for CompressionLayer {
    fn default() -> Self {
        Self::new()
    }
}

impl CompressionLayer {
    /// Every compiled-in coding at its default level (zstd 3, brotli 4, gzip 6, deflate 6,
    /// see [`Encoding::default_level`]) and the [`DefaultPredicate`]: bodies of 1 KiB and more,
    /// not already-compressed media types.
    pub fn new() -> Self {
        Self {
            levels: Levels::new(),
            predicate: DefaultPredicate::new(),
        }
    }

    /// A builder starting from the default configuration ([`CompressionLayer::new`]); its
    /// setters never fail, [`CompressionLayerBuilder::build`] checks them all.
    pub fn builder() -> CompressionLayerBuilder {
        CompressionLayerBuilder {
            levels: Levels::new(),
            predicate: DefaultPredicate::new(),
            error: None,
        }
    }
}

impl<P> CompressionLayer<P> {
    /// The level `encoding` is applied at, `None` when it is disabled or not compiled in.
    pub fn level_of(&self, encoding: Encoding) -> Option<i32> {
        self.levels.get(encoding)
    }
}

impl<S, P: Clone> Layer<S> for CompressionLayer<P> {
    type Service = Compression<S, P>;

    fn layer(&self, inner: S) -> Self::Service {
        Compression::from_config(inner, self.levels, self.predicate.clone())
    }
}

impl<S> Compression<S> {
    /// Wraps `inner` with the default configuration ([`CompressionLayer::new`]).
    pub fn new(inner: S) -> Self {
        CompressionLayer::new().layer(inner)
    }

    /// The default layer, [`CompressionLayer::new`].
    pub fn layer() -> CompressionLayer {
        CompressionLayer::new()
    }
}

/// Configures a [`CompressionLayer`]: returned by [`CompressionLayer::builder`], turned into
/// the layer by [`build`](Self::build), which reports the first setting it cannot run with.
#[derive(Debug, Clone)]
#[must_use = "call `build` to get the layer"]
pub struct CompressionLayerBuilder<P = DefaultPredicate> {
    levels: Levels,
    predicate: P,
    /// The first setting found wrong, reported by `build`.
    error: Option<ConfigError>,
}

impl CompressionLayerBuilder {
    /// The smallest body compressed, in bytes. Default: 1024 ([`DefaultPredicate::MIN_SIZE`]).
    /// A body of unknown size (a stream) is always compressed.
    pub fn min_size(mut self, bytes: u64) -> Self {
        self.predicate = self.predicate.min_size(bytes);
        self
    }

    /// Media types never compressed (`type/subtype` or `type/*`); replaces
    /// [`DefaultPredicate::SKIPPED_MEDIA_TYPES`], gRPC stays skipped. See
    /// [`DefaultPredicate::skip_media_types`]. An entry that is not a media range makes
    /// [`build`](Self::build) fail with [`ConfigError::InvalidMediaType`].
    pub fn skip_media_types<I, T>(mut self, types: I) -> Self
    where
        I: IntoIterator<Item = T>,
        T: AsRef<str>,
    {
        match self.predicate.clone().skip_media_types(types) {
            Ok(predicate) => self.predicate = predicate,
            Err(error) => self.fail(error),
        }
        self
    }
}

impl<P> CompressionLayerBuilder<P> {
    /// Enables `encoding` at `level`. Defaults: see [`Encoding::default_level`]. A level outside
    /// [`Encoding::levels`], or a coding whose feature is off, makes [`build`](Self::build)
    /// fail.
    pub fn level(mut self, encoding: Encoding, level: i32) -> Self {
        if let Err(error) = self.levels.set(encoding, level) {
            self.fail(error);
        }
        self
    }

    /// Never uses `encoding`. Default: every compiled-in coding is used. With every coding
    /// disabled the layer only adds `Vary: Accept-Encoding`.
    pub fn disable(mut self, encoding: Encoding) -> Self {
        self.levels.disable(encoding);
        self
    }

    /// Replaces the [`DefaultPredicate`] with any tower-http [`Predicate`]. The layer's own
    /// rules (no second coding, no ranges, `no-transform`, no 1xx/204/304) still apply.
    pub fn compress_when<Q: Predicate>(self, predicate: Q) -> CompressionLayerBuilder<Q> {
        CompressionLayerBuilder {
            levels: self.levels,
            predicate,
            error: self.error,
        }
    }

    /// The layer, or the first setting it cannot run with.
    pub fn build(self) -> Result<CompressionLayer<P>, ConfigError> {
        match self.error {
            Some(error) => Err(error),
            None => Ok(CompressionLayer {
                levels: self.levels,
                predicate: self.predicate,
            }),
        }
    }

    fn fail(&mut self, error: ConfigError) {
        self.error.get_or_insert(error);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn build_reports_the_first_wrong_setting() {
        let error = CompressionLayer::builder()
            .level(Encoding::Br, 12)
            .skip_media_types(["json"])
            .level(Encoding::Gzip, 1)
            .build()
            .unwrap_err();
        assert_eq!(
            error,
            ConfigError::LevelOutOfRange {
                encoding: Encoding::Br,
                level: 12,
                min: 0,
                max: 11
            }
        );
        let error = CompressionLayer::builder()
            .skip_media_types(["json"])
            .compress_when(DefaultPredicate::new())
            .build()
            .unwrap_err();
        assert_eq!(error, ConfigError::InvalidMediaType("json".to_owned()));
    }

    #[test]
    fn a_wrong_level_changes_nothing_else() {
        let builder = CompressionLayer::builder()
            .level(Encoding::Gzip, 1)
            .level(Encoding::Gzip, 10);
        assert_eq!(builder.levels.get(Encoding::Gzip), Some(1));
        assert!(builder.build().is_err());
    }

    #[test]
    fn default_builder_builds_the_default_layer() {
        let layer = CompressionLayer::builder().build().unwrap();
        for encoding in Encoding::ALL {
            assert_eq!(
                layer.level_of(encoding),
                CompressionLayer::new().level_of(encoding)
            );
        }
    }
}
