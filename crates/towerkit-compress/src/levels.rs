//! The enabled codings and the level each is applied at.

use crate::encoding::Encoding;
use crate::error::ConfigError;

/// The enabled codings and their levels: `None` is a disabled coding.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Levels([Option<i32>; 4]);

impl Levels {
    /// Every compiled-in coding at its default level.
    pub(crate) fn new() -> Self {
        let mut levels = [None; 4];
        for encoding in Encoding::ALL {
            if encoding.is_compiled() {
                levels[encoding.index()] = Some(encoding.default_level());
            }
        }
        Self(levels)
    }

    pub(crate) fn set(&mut self, encoding: Encoding, level: i32) -> Result<(), ConfigError> {
        if !encoding.is_compiled() {
            return Err(ConfigError::NotCompiled(encoding));
        }
        let range = encoding.levels();
        if !range.contains(&level) {
            return Err(ConfigError::LevelOutOfRange {
                encoding,
                level,
                min: *range.start(),
                max: *range.end(),
            });
        }
        self.0[encoding.index()] = Some(level);
        Ok(())
    }

    pub(crate) fn disable(&mut self, encoding: Encoding) {
        self.0[encoding.index()] = None;
    }

    pub(crate) fn get(&self, encoding: Encoding) -> Option<i32> {
        self.0[encoding.index()]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn levels_outside_the_codec_range_are_rejected() {
        let mut levels = Levels::new();
        assert_eq!(
            levels.set(Encoding::Br, 12),
            Err(ConfigError::LevelOutOfRange {
                encoding: Encoding::Br,
                level: 12,
                min: 0,
                max: 11
            })
        );
        assert!(levels.set(Encoding::Zstd, 0).is_err());
        assert!(levels.set(Encoding::Gzip, 10).is_err());
        assert!(levels.set(Encoding::Gzip, -1).is_err());
        assert_eq!(levels, Levels::new(), "a rejected level changes nothing");
    }
}
