//! Helpers for towerkit's own tests (a dev-dependency only, never published): the
//! `tracing` output and the `metrics` a test's code writes on its thread, odd
//! upstream responses for the layers that rewrite bodies ([`upstream`]), and throwaway
//! Redis, PostgreSQL and Varnish servers ([`servers`]).
//!
//! Features: `layers` (on by default) brings `Logs`, `Metrics` and `upstream`; without it
//! only the std-only [`servers`] module is built, for xtask.
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

#[cfg(feature = "layers")]
mod logs;
#[cfg(feature = "layers")]
pub mod projection;
#[cfg(feature = "layers")]
mod recorder;
pub mod servers;
#[cfg(feature = "layers")]
pub mod upstream;

#[cfg(feature = "layers")]
pub use crate::logs::Logs;
#[cfg(feature = "layers")]
pub use crate::recorder::{Metric, Metrics, Value};
