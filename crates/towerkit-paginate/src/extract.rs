//! The axum extractors: `Pagination` and `Fields`.

use std::sync::Arc;

use axum::extract::FromRequestParts;
use http::request::Parts;
use towerkit_json::Problem;

use crate::config::PaginationConfig;
use crate::fields::{FieldsConfig, Selection, selection_from_query};
use crate::request::Pagination;

impl<S: Send + Sync> FromRequestParts<S> for Pagination {
    type Rejection = Problem;

    /// Reads the parameters with the configuration a [`PaginateLayer`](crate::PaginateLayer)
    /// put into the request's extensions, or [`PaginationConfig::default`].
    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Problem> {
        let config = parts
            .extensions
            .get::<PaginationConfig>()
            .cloned()
            .unwrap_or_default();
        Pagination::parse(&parts.uri, &parts.extensions, &config)
    }
}

/// The request's parsed `fields` selection, for handlers that read only what is asked
/// for (choose SQL columns). Rejects a malformed expression with a 400
/// `application/problem+json`.
///
/// Uses the [`FieldsConfig`] a [`SelectFieldsLayer`](crate::SelectFieldsLayer) put into the request's
/// extensions, or [`FieldsConfig::default`] (parameter `fields`).
///
/// ```
/// use axum::{Router, routing::get};
/// use towerkit_paginate::Fields;
/// # use http_body_util::BodyExt;
/// # use tower::ServiceExt;
///
/// async fn columns(fields: Fields) -> String {
///     // Only ever the known column names, never the client's text, go into SQL.
///     fields.columns(["id", "name", "price"]).join(", ")
/// }
///
/// let app = Router::new().route("/products", get(columns));
/// # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
/// let request = http::Request::get("/products?fields=id,price/amount").body(axum::body::Body::empty()).unwrap();
/// let response = app.oneshot(request).await.unwrap();
/// let body = response.into_body().collect().await.unwrap().to_bytes();
/// assert_eq!(body, "id, price");
/// # });
/// ```
#[derive(Debug, Clone, Default)]
pub struct Fields {
    selection: Option<Arc<Selection>>,
}

impl Fields {
    /// The selection; `None` when the request has no (or an empty) `fields` parameter.
    pub fn selection(&self) -> Option<&Selection> {
        self.selection.as_deref()
    }

    /// Whether the top-level member `name` is kept (always, without a selection).
    pub fn keeps(&self, name: &str) -> bool {
        self.selection
            .as_ref()
            .is_none_or(|selection| selection.keeps(name))
    }

    /// The names among `available` that are kept, in their order (all of them without a
    /// selection).
    pub fn columns<'a>(&self, available: impl IntoIterator<Item = &'a str>) -> Vec<&'a str> {
        available
            .into_iter()
            .filter(|name| self.keeps(name))
            .collect()
    }
}

impl<S: Send + Sync> FromRequestParts<S> for Fields {
    type Rejection = Problem;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Problem> {
        let config = parts
            .extensions
            .get::<FieldsConfig>()
            .cloned()
            .unwrap_or_default();
        Ok(Self {
            selection: selection_from_query(&parts.uri, &config)?,
        })
    }
}
