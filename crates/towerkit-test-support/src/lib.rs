//! Helpers for towerkit's own tests (a dev-dependency only, never published): the
//! `tracing` output and the `metrics` a test's code writes on its thread, and odd
//! upstream responses for the layers that rewrite bodies ([`upstream`]).
//!
//! ```
//! use towerkit_test_support::{Logs, Metrics};
//!
//! let logs = Logs::capture();
//! let metrics = Metrics::capture();
//! tracing::warn!(route = "/a", "slow request");
//! metrics::counter!("requests_total", "route" => "/a").increment(2);
//! assert_eq!(logs.lines_with("slow request").len(), 1);
//! assert_eq!(metrics.counter("requests_total", &[("route", "/a")]), 2);
//! ```

mod logs;
pub mod projection;
mod recorder;
pub mod upstream;

pub use crate::logs::Logs;
pub use crate::recorder::{Metric, Metrics, Value};
