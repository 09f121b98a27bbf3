//! towerkit: composable tower middleware for axum and hyper services, one dependency.
//!
//! Each module re-exports one towerkit crate and is enabled by the feature of the same name:
//!
//! | module | crate | what it gives |
//! |---|---|---|
//! | [`json`] | `towerkit-json` | the JSON-body machinery and problem+json responses the JSON layers share |
//! | `nulls` | `towerkit-nulls` | `StripNullsLayer`: removes `null` members from JSON responses |
//!
//! ```
//! use axum::{Json, Router, routing::get};
//! use towerkit::nulls::StripNullsLayer;
//!
//! let app: Router = Router::new()
//!     .route("/", get(|| async { Json(serde_json::json!({"a": 1, "b": null})) }))
//!     .layer(StripNullsLayer::new());
//! # let _ = app;
//! ```

pub use towerkit_json as json;
#[cfg(feature = "nulls")]
pub use towerkit_nulls as nulls;

/// The README's examples, compiled and run as doc tests.
#[doc = include_str!("../../../README.md")]
#[cfg(doctest)]
pub struct ReadmeDoctests;
