//! Field projection configuration: the query parameter, strict mode and the parser's limits.

use std::sync::{Arc, OnceLock};

use crate::error::ConfigError;
use crate::query::is_url_safe;

/// The longest accepted `fields` expression by default, in bytes: 1024.
pub const DEFAULT_MAX_LENGTH: usize = 1024;
/// The deepest accepted field path by default, in segments (`a/b/c` is 3): 8.
pub const DEFAULT_MAX_DEPTH: usize = 8;
/// The most distinct path segments an expression may name by default: 64.
pub const DEFAULT_MAX_NODES: usize = 64;
/// The most distinct path segments any configuration allows: 127.
pub const MAX_NODES: usize = 127;

/// Field projection configuration shared by [`SelectFieldsLayer`](crate::SelectFieldsLayer)
/// and the [`Fields`](crate::Fields) extractor: the query parameter, strict mode, and the
/// parser's limits. Cheap to clone (shared).
///
/// It is set up through [`SelectFieldsLayer::builder`](crate::SelectFieldsLayer::builder)
/// and read with [`SelectFieldsLayer::config`](crate::SelectFieldsLayer::config). The layer
/// inserts it into each request's extensions, where the extractor finds it; without a layer
/// the extractor uses [`FieldsConfig::default`].
///
/// ```
/// use towerkit_paginate::SelectFieldsLayer;
///
/// let layer = SelectFieldsLayer::builder().param("select").strict(true).max_depth(4).build().unwrap();
/// assert_eq!(layer.config().param(), "select");
/// assert!(SelectFieldsLayer::builder().max_nodes(1000).build().is_err());
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
            .get_or_init(|| FieldsSettings::default().assemble())
            .clone()
    }
}

impl FieldsConfig {
    /// The query parameter holding the expression.
    pub fn param(&self) -> &str {
        &self.inner.param
    }

    /// Whether a field that matches nothing is a 400.
    pub fn is_strict(&self) -> bool {
        self.inner.strict
    }
}

/// The settings of a [`FieldsConfig`] before they are checked, set by
/// [`SelectFieldsLayerBuilder`](crate::SelectFieldsLayerBuilder), which documents each
/// default.
#[derive(Debug, Clone)]
pub(crate) struct FieldsSettings {
    pub(crate) param: String,
    pub(crate) strict: bool,
    pub(crate) max_length: usize,
    pub(crate) max_depth: usize,
    pub(crate) max_nodes: usize,
}

impl Default for FieldsSettings {
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

impl FieldsSettings {
    /// Checks the settings and builds the configuration.
    pub(crate) fn build(self) -> Result<FieldsConfig, ConfigError> {
        if !is_url_safe(&self.param) {
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
