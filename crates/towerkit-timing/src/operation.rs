//! The [`Operation`] [`Measure`]: any tower service timed as one named operation.

use std::sync::Arc;

use metrics::SharedString;

use crate::measure_traits::{CallInfo, Completed, Measure, MeasureCall};
use crate::metrics::OPERATION_DURATION;
use towerkit_http::metric_cell::HistogramCell;

/// Measures any tower service as one named operation:
/// `towerkit_operation_duration_seconds{operation, outcome}`, where outcome is `ok`,
/// `error` (the inner service's `Err`) or `cancelled` (the call's future was dropped before
/// it completed).
#[derive(Debug, Clone)]
pub struct Operation {
    shared: Arc<OperationKeys>,
}

/// The operation's name and its histogram keys, built once.
#[derive(Debug)]
struct OperationKeys {
    name: SharedString,
    ok: HistogramCell,
    error: HistogramCell,
    cancelled: HistogramCell,
}

/// The metadata the `histogram!` macro would give the operation histogram.
static METADATA: metrics::Metadata<'static> =
    metrics::Metadata::new(module_path!(), metrics::Level::INFO, Some(module_path!()));

impl Operation {
    /// An operation named `name` (a metric label: keep it static, not per request).
    pub fn new(name: impl Into<SharedString>) -> Self {
        let name = name.into();
        let key = |outcome: &'static str| {
            let key = metrics::Key::from_parts(
                OPERATION_DURATION,
                vec![
                    metrics::Label::new("operation", name.clone()),
                    metrics::Label::new("outcome", outcome),
                ],
            );
            HistogramCell::new(key, &METADATA)
        };
        let (ok, error, cancelled) = (key("ok"), key("error"), key("cancelled"));
        Self {
            shared: Arc::new(OperationKeys {
                name,
                ok,
                error,
                cancelled,
            }),
        }
    }
}

impl<R> Measure<R> for Operation {
    type Call = OperationCall;

    fn start(&self, _request: &R) -> OperationCall {
        OperationCall {
            shared: self.shared.clone(),
        }
    }
}

/// The [`Measure::Call`] of [`Operation`].
#[derive(Debug)]
pub struct OperationCall {
    shared: Arc<OperationKeys>,
}

impl<Res, E> MeasureCall<Res, E> for OperationCall {
    fn finish(self, result: &mut Result<Res, E>, completed: Completed<'_>) -> CallInfo {
        let failed = result.is_err();
        let histogram = if failed {
            &self.shared.error
        } else {
            &self.shared.ok
        };
        histogram.record(completed.elapsed.as_secs_f64());
        CallInfo {
            operation: self.shared.name.clone(),
            method: None,
            status: None,
            failed,
        }
    }

    fn cancel(self, completed: Completed<'_>) -> Option<CallInfo> {
        self.shared
            .cancelled
            .record(completed.elapsed.as_secs_f64());
        Some(CallInfo {
            operation: self.shared.name.clone(),
            method: None,
            status: None,
            failed: false,
        })
    }
}
