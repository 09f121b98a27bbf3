//! The [`Measure`] policy that says what a call is (an HTTP request, a named operation, or
//! your own), and what it hands back for the slow-call callback and the N+1 warning.

use std::time::Duration;

use metrics::SharedString;

use crate::collector::RequestTimings;

/// What a [`TimingLayer`](crate::TimingLayer) measures a call as: the labels known from the
/// request.
///
/// [`Http`](crate::measure::Http) (the default) and [`Operation`](crate::measure::Operation)
/// implement it; implement it yourself to measure, say, a gRPC service with its own metric.
pub trait Measure<Req>: Clone {
    /// What is kept from the request until the call completes.
    type Call;

    /// Called before the request is passed to the inner service.
    fn start(&self, request: &Req) -> Self::Call;
}

/// The second half of [`Measure`]: records the completed call.
pub trait MeasureCall<Res, E> {
    /// Called once when the inner future completes: records the call's metric, may edit
    /// the response (the `Server-Timing` header), and describes the call for the slow-call
    /// callback and the N+1 warning.
    fn finish(self, result: &mut Result<Res, E>, completed: Completed<'_>) -> CallInfo;

    /// Called once instead of [`finish`](Self::finish) when the call is cancelled: its
    /// future was dropped before the inner service answered (an outer timeout fired, the
    /// client disconnected). Records the call's metric with a `cancelled` outcome and
    /// describes the call for the slow-call callback and the N+1 warning; `None` records
    /// nothing and reports nothing. Default: `None`, so that a `Measure` written before
    /// cancellation was measured keeps compiling; [`Http`](crate::measure::Http) and
    /// [`Operation`](crate::measure::Operation) record it.
    fn cancel(self, completed: Completed<'_>) -> Option<CallInfo>
    where
        Self: Sized,
    {
        let _ = completed;
        None
    }

    /// The `tracing` span the call runs in: entered while the inner service is called and
    /// while its future is polled, so that spans and events below (the cache, the
    /// queries) nest under it. Default: none, the call runs in the caller's span;
    /// [`Http`](crate::measure::Http) opens an `http.server.request` span.
    fn span(&self) -> Option<&tracing::Span> {
        None
    }
}

/// A completed (or cancelled) call, as handed to [`MeasureCall::finish`] (or
/// [`MeasureCall::cancel`]).
#[derive(Debug, Clone, Copy)]
pub struct Completed<'a> {
    /// The time from the request to the inner service's response (or to the cancellation).
    pub elapsed: Duration,
    /// What the call's queries added up to.
    pub timings: &'a RequestTimings,
}

/// What a call was, for the slow-call callback and the N+1 warning.
#[derive(Debug, Clone)]
pub struct CallInfo {
    /// The route template (`/products/{id}`), `unmatched`, or the operation name.
    pub operation: SharedString,
    /// The HTTP method, if any.
    pub method: Option<&'static str>,
    /// The HTTP status, if any.
    pub status: Option<u16>,
    /// Whether the inner service returned an error (not an HTTP error status); `false` for a
    /// cancelled call.
    pub failed: bool,
}
