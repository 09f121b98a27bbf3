//! Field projection: the `fields=` grammar, its configuration, the streaming transform, and
//! reading the selection from a request.

mod config;
mod parse;
mod project;

use std::sync::Arc;

use http::Uri;
use towerkit_json::Problem;

pub(crate) use config::FieldsSettings;
pub use config::{
    DEFAULT_MAX_DEPTH, DEFAULT_MAX_LENGTH, DEFAULT_MAX_NODES, FieldsConfig, MAX_NODES,
};
pub use parse::{FieldsError, Selection};
pub use project::{Projection, project};

use crate::query;

/// The request's selection: `None` without a (non-empty) `fields` parameter; a 400 when
/// the parameter is repeated or does not parse.
pub(crate) fn selection_from_query(
    uri: &Uri,
    config: &FieldsConfig,
) -> Result<Option<Arc<Selection>>, Problem> {
    let param = config.param();
    let mut found = None;
    for (_, name, value) in query::pairs(uri.query()) {
        if name != param {
            continue;
        }
        if found.is_some() {
            return Err(
                Problem::bad_request(format!("{param} is given more than once"))
                    .with_invalid_param(param, "give the parameter once"),
            );
        }
        found = Some(value);
    }
    let Some(expression) = found.filter(|value| !value.trim().is_empty()) else {
        return Ok(None);
    };
    match Selection::parse_with(&expression, config) {
        Ok(selection) => Ok(Some(Arc::new(selection))),
        Err(error) => {
            Err(Problem::bad_request(error.to_string())
                .with_invalid_param(param, error.to_string()))
        }
    }
}

#[cfg(test)]
mod tests {
    use crate::SelectFieldsLayer;
    use crate::error::ConfigError;

    #[test]
    fn limits_out_of_range_are_config_errors() {
        assert_eq!(
            SelectFieldsLayer::builder()
                .max_nodes(128)
                .build()
                .unwrap_err(),
            ConfigError::InvalidLimit {
                limit: "max_nodes",
                value: 128
            }
        );
        assert_eq!(
            SelectFieldsLayer::builder()
                .max_depth(0)
                .build()
                .unwrap_err(),
            ConfigError::InvalidLimit {
                limit: "max_depth",
                value: 0
            }
        );
        assert!(matches!(
            SelectFieldsLayer::builder().param("a b").build(),
            Err(ConfigError::InvalidName { .. })
        ));
        assert!(SelectFieldsLayer::builder().max_nodes(127).build().is_ok());
    }
}
