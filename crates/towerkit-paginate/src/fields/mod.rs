//! Field projection: the `fields=` grammar, its configuration, and the streaming transform.

mod parse;
mod project;

use std::fmt;
use std::sync::{Arc, OnceLock};

pub use parse::{FieldsError, Selection};
pub use project::{Projection, project};

use crate::config::ConfigError;

/// The longest accepted `fields` expression by default, in bytes: 1024.
pub const DEFAULT_MAX_LENGTH: usize = 1024;
/// The deepest accepted field path by default, in segments (`a/b/c` is 3): 8.
pub const DEFAULT_MAX_DEPTH: usize = 8;
/// The most distinct path segments an expression may name by default: 64.
pub const DEFAULT_MAX_NODES: usize = 64;
/// The most distinct path segments any configuration allows: 127.
pub const MAX_NODES: usize = 127;

/// Field projection configuration shared by [`FieldsLayer`](crate::FieldsLayer) and the
/// [`Fields`](crate::Fields) extractor: the query parameter, strict mode, and the parser's
/// limits. Cheap to clone (shared).
///
/// [`FieldsLayer`](crate::FieldsLayer) inserts its configuration into each request's
/// extensions, where the extractor finds it; without a layer the extractor uses
/// [`FieldsConfig::default`].
///
/// ```
/// use towerkit_paginate::FieldsConfig;
///
/// let config = FieldsConfig::builder().param("select").strict(true).max_depth(4).build().unwrap();
/// assert_eq!(config.param(), "select");
/// assert!(FieldsConfig::builder().max_nodes(1000).build().is_err());
/// ```
#[derive(Clone, Debug)]
pub struct FieldsConfig {
    pub(crate) inner: Arc<FieldsInner>,
}

#[derive(Debug)]
pub(crate) struct FieldsInner {
    pub(crate) param: String,
    pub(crate) strict: bool,
    pub(crate) max_length: usize,
    pub(crate) max_depth: usize,
    pub(crate) max_nodes: usize,
}

impl Default for FieldsConfig {
    /// Parameter `fields`, not strict, and the `DEFAULT_MAX_*` limits.
    fn default() -> Self {
        static DEFAULT: OnceLock<FieldsConfig> = OnceLock::new();
        DEFAULT
            .get_or_init(|| FieldsConfigBuilder::default().assemble())
            .clone()
    }
}

impl FieldsConfig {
    /// Starts a configuration from the defaults.
    pub fn builder() -> FieldsConfigBuilder {
        FieldsConfigBuilder::default()
    }

    /// The query parameter holding the expression.
    pub fn param(&self) -> &str {
        &self.inner.param
    }

    /// Whether a field that matches nothing is a 400.
    pub fn is_strict(&self) -> bool {
        self.inner.strict
    }
}

/// Builds a [`FieldsConfig`]; every setting documents its default.
#[derive(Debug, Clone)]
pub struct FieldsConfigBuilder {
    param: String,
    strict: bool,
    max_length: usize,
    max_depth: usize,
    max_nodes: usize,
}

impl Default for FieldsConfigBuilder {
    fn default() -> Self {
        Self {
            param: "fields".into(),
            strict: false,
            max_length: DEFAULT_MAX_LENGTH,
            max_depth: DEFAULT_MAX_DEPTH,
            max_nodes: DEFAULT_MAX_NODES,
        }
    }
}

impl FieldsConfigBuilder {
    /// The query parameter holding the expression. Default: `fields`.
    #[must_use]
    pub fn param(mut self, name: impl Into<String>) -> Self {
        self.param = name.into();
        self
    }

    /// Strict mode: a named field that no object of the response has, where objects were
    /// examined for it, makes the response a 400 instead of being ignored. Default: off.
    #[must_use]
    pub fn strict(mut self, on: bool) -> Self {
        self.strict = on;
        self
    }

    /// The longest expression, in bytes after percent-decoding. Default: 1024.
    #[must_use]
    pub fn max_length(mut self, bytes: usize) -> Self {
        self.max_length = bytes;
        self
    }

    /// The deepest path, in segments. Default: 8.
    #[must_use]
    pub fn max_depth(mut self, segments: usize) -> Self {
        self.max_depth = segments;
        self
    }

    /// The most distinct path segments in one expression (a tree of includes plus a tree
    /// of exclusions). Default: 64, at most [`MAX_NODES`].
    #[must_use]
    pub fn max_nodes(mut self, nodes: usize) -> Self {
        self.max_nodes = nodes;
        self
    }

    /// Checks the settings and builds the configuration.
    pub fn build(self) -> Result<FieldsConfig, ConfigError> {
        if self.param.is_empty()
            || !self
                .param
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~'))
        {
            return Err(ConfigError::InvalidName {
                role: "fields parameter",
                name: self.param,
            });
        }
        for (limit, value, range) in [
            ("max_length", self.max_length, 1..=usize::MAX),
            ("max_depth", self.max_depth, 1..=usize::MAX),
            ("max_nodes", self.max_nodes, 1..=MAX_NODES),
        ] {
            if !range.contains(&value) {
                return Err(ConfigError::InvalidLimit { limit, value });
            }
        }
        Ok(self.assemble())
    }

    fn assemble(self) -> FieldsConfig {
        FieldsConfig {
            inner: Arc::new(FieldsInner {
                param: self.param,
                strict: self.strict,
                max_length: self.max_length,
                max_depth: self.max_depth,
                max_nodes: self.max_nodes,
            }),
        }
    }
}

impl fmt::Display for Selection {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.expression())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn limits_out_of_range_are_config_errors() {
        assert_eq!(
            FieldsConfig::builder().max_nodes(128).build().unwrap_err(),
            ConfigError::InvalidLimit {
                limit: "max_nodes",
                value: 128
            }
        );
        assert_eq!(
            FieldsConfig::builder().max_depth(0).build().unwrap_err(),
            ConfigError::InvalidLimit {
                limit: "max_depth",
                value: 0
            }
        );
        assert!(matches!(
            FieldsConfig::builder().param("a b").build(),
            Err(ConfigError::InvalidName { .. })
        ));
        assert!(FieldsConfig::builder().max_nodes(127).build().is_ok());
    }
}
