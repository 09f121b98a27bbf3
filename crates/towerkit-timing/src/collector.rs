//! The per-request collector: [`TimingLayer`](crate::TimingLayer) scopes it around each
//! poll of the inner service's future, and [`QueryTimer`](crate::QueryTimer) writes each
//! query into it. Code running inside a handler finds it without any plumbing; code on
//! another task (`tokio::spawn`) does not see it, and its queries are not counted for the
//! request.
//!
//! It works as a tokio task-local does (a thread-local set for the duration of each poll),
//! but holds only a pointer-sized slot that stays empty until a query runs: a request
//! without queries allocates nothing and moves no collector in and out of thread-local
//! storage, which is most of what a task-local costs per request.

use std::cell::Cell;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use metrics::SharedString;
use pin_project_lite::pin_project;

/// At most this many distinct query summaries are counted per request (for N+1 detection);
/// queries beyond it still count towards the totals.
pub(crate) const MAX_SUMMARIES_PER_REQUEST: usize = 64;

thread_local! {
    /// The collector of the call being polled on this thread, if any.
    static CURRENT: Cell<Slot> = const { Cell::new(Slot::Outside) };
}

/// What [`CURRENT`] holds.
#[derive(Default)]
enum Slot {
    /// No call is being polled: queries are not collected.
    #[default]
    Outside,
    /// A call is being polled and has run no query yet.
    Empty,
    /// A call is being polled; its queries so far.
    Collected(Box<RequestTimings>),
}

/// What the queries of one request (one call through a [`TimingLayer`](crate::TimingLayer))
/// added up to.
#[derive(Debug, Clone, Default)]
pub struct RequestTimings {
    queries: u32,
    db_time: Duration,
    by_summary: Vec<(SharedString, u32)>,
}

impl RequestTimings {
    /// How many queries ran.
    pub fn queries(&self) -> u32 {
        self.queries
    }

    /// The sum of their durations (more than the wall-clock time when queries overlap).
    pub fn db_time(&self) -> Duration {
        self.db_time
    }

    /// How many times each query summary ran, in first-run order.
    pub fn query_counts(&self) -> impl Iterator<Item = (&str, u32)> {
        self.by_summary
            .iter()
            .map(|(summary, count)| (summary.as_ref(), *count))
    }

    fn add(&mut self, summary: &SharedString, elapsed: Duration) {
        self.queries = self.queries.saturating_add(1);
        self.db_time = self.db_time.saturating_add(elapsed);
        if let Some(entry) = self
            .by_summary
            .iter_mut()
            .find(|(known, _)| known == summary)
        {
            entry.1 = entry.1.saturating_add(1);
        } else if self.by_summary.len() < MAX_SUMMARIES_PER_REQUEST {
            self.by_summary.push((summary.clone(), 1));
        }
    }
}

/// Runs `future` with a fresh collector, returning its output and what it collected. This
/// is what [`TimingLayer`](crate::TimingLayer) does for each call; use it for work outside a
/// request (a job, a test) whose queries should be counted together.
///
/// ```
/// use towerkit_timing::{QueryOutcome, QueryTimer, collect};
/// use std::time::Duration;
///
/// # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
/// let timer = QueryTimer::new("postgresql");
/// let ((), timings) = collect(async {
///     let label = timer.label("SELECT * FROM products");
///     timer.record(&label, Duration::from_millis(2), QueryOutcome::Rows(3), &());
/// })
/// .await;
/// assert_eq!(timings.queries(), 1);
/// # });
/// ```
pub async fn collect<F: Future>(future: F) -> (F::Output, RequestTimings) {
    let mut scoped = std::pin::pin!(scope(future));
    let output = scoped.as_mut().await;
    let timings = scoped.take_timings();
    (output, timings)
}

/// `future` with a fresh collector in scope whenever it is polled.
pub(crate) fn scope<F: Future>(future: F) -> Scoped<F> {
    Scoped {
        future,
        timings: None,
    }
}

pin_project! {
    /// A future with its own collector, see [`scope`].
    pub(crate) struct Scoped<F> {
        #[pin]
        future: F,
        // `None` until the first query.
        timings: Option<Box<RequestTimings>>,
    }
}

impl<F> Scoped<F> {
    /// What the future's queries added up to so far; the collector starts again empty.
    pub(crate) fn take_timings(self: Pin<&mut Self>) -> RequestTimings {
        self.project()
            .timings
            .take()
            .map_or_else(RequestTimings::default, |timings| *timings)
    }
}

impl<F: Future> Future for Scoped<F> {
    type Output = F::Output;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<F::Output> {
        let this = self.project();
        let mine = match this.timings.take() {
            Some(timings) => Slot::Collected(timings),
            None => Slot::Empty,
        };
        // Unavailable only while the thread is being torn down: poll without a collector.
        let Ok(outer) = CURRENT.try_with(|current| current.replace(mine)) else {
            return this.future.poll(cx);
        };
        // Puts the outer collector back and keeps ours, even if the inner poll panics.
        let _restore = Restore {
            outer: Some(outer),
            into: this.timings,
        };
        this.future.poll(cx)
    }
}

/// Swaps the collector in [`CURRENT`] back when dropped.
struct Restore<'a> {
    outer: Option<Slot>,
    into: &'a mut Option<Box<RequestTimings>>,
}

impl Drop for Restore<'_> {
    fn drop(&mut self) {
        let outer = self.outer.take().unwrap_or_default();
        if let Ok(Slot::Collected(timings)) = CURRENT.try_with(|current| current.replace(outer)) {
            *self.into = Some(timings);
        }
    }
}

/// Adds one query to the current request's collector; does nothing outside a request.
pub(crate) fn record_query(summary: &SharedString, elapsed: Duration) {
    let _ = CURRENT.try_with(|current| {
        let mut timings = match current.take() {
            Slot::Outside => return,
            Slot::Empty => Box::default(),
            Slot::Collected(timings) => timings,
        };
        timings.add(summary, elapsed);
        current.set(Slot::Collected(timings));
    });
}

#[cfg(test)]
pub(crate) mod tests_support {
    use super::*;

    /// Timings with these per-summary counts and total database time.
    pub(crate) fn timings(counts: &[(&'static str, u32)], db_time: Duration) -> RequestTimings {
        RequestTimings {
            queries: counts.iter().map(|(_, n)| n).sum(),
            db_time,
            by_summary: counts
                .iter()
                .map(|&(s, n)| (SharedString::const_str(s), n))
                .collect(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn counts_queries_by_summary() {
        let a = SharedString::const_str("SELECT a");
        let b = SharedString::const_str("SELECT b");
        let ((), timings) = collect(async {
            record_query(&a, Duration::from_millis(1));
            record_query(&b, Duration::from_millis(2));
            record_query(&a, Duration::from_millis(3));
        })
        .await;
        assert_eq!(timings.queries(), 3);
        assert_eq!(timings.db_time(), Duration::from_millis(6));
        assert_eq!(
            timings.query_counts().collect::<Vec<_>>(),
            [("SELECT a", 2), ("SELECT b", 1)]
        );
    }

    #[tokio::test]
    async fn recording_outside_a_request_is_a_no_op() {
        record_query(
            &SharedString::const_str("SELECT a"),
            Duration::from_millis(1),
        );
        let ((), timings) = collect(async {}).await;
        assert_eq!(timings.queries(), 0);
    }

    #[tokio::test]
    async fn spawned_tasks_do_not_write_into_the_request() {
        let ((), timings) = collect(async {
            tokio::spawn(async {
                record_query(
                    &SharedString::const_str("SELECT a"),
                    Duration::from_millis(1),
                )
            })
            .await
            .unwrap();
        })
        .await;
        assert_eq!(timings.queries(), 0);
    }

    #[tokio::test]
    async fn distinct_summaries_are_bounded() {
        let ((), timings) = collect(async {
            for n in 0..MAX_SUMMARIES_PER_REQUEST + 10 {
                record_query(
                    &SharedString::from_owned(format!("SELECT t{n}")),
                    Duration::from_millis(1),
                );
            }
        })
        .await;
        assert_eq!(timings.query_counts().count(), MAX_SUMMARIES_PER_REQUEST);
        assert_eq!(timings.queries() as usize, MAX_SUMMARIES_PER_REQUEST + 10);
    }

    #[tokio::test]
    async fn a_nested_scope_counts_its_own_queries_and_restores_the_outer_one() {
        let a = SharedString::const_str("SELECT a");
        let (((), inner), outer) = collect(async {
            record_query(&a, Duration::from_millis(1));
            let inner = collect(async { record_query(&a, Duration::from_millis(2)) }).await;
            record_query(&a, Duration::from_millis(3));
            inner
        })
        .await;
        assert_eq!(
            (inner.queries(), inner.db_time()),
            (1, Duration::from_millis(2))
        );
        assert_eq!(
            (outer.queries(), outer.db_time()),
            (2, Duration::from_millis(4))
        );
    }

    #[tokio::test]
    async fn calls_polled_in_turn_on_one_thread_keep_their_own_counts() {
        let summary = SharedString::const_str("SELECT a");
        let run = |queries: u32| {
            let summary = summary.clone();
            collect(async move {
                for _ in 0..queries {
                    record_query(&summary, Duration::from_millis(1));
                    tokio::task::yield_now().await;
                }
            })
        };
        let (((), three), ((), five)) = tokio::join!(run(3), run(5));
        assert_eq!((three.queries(), five.queries()), (3, 5));
        record_query(&summary, Duration::from_millis(1));
        let ((), after) = collect(async {}).await;
        assert_eq!(after.queries(), 0);
    }

    #[tokio::test]
    async fn a_panicking_call_leaves_no_collector_behind() {
        let summary = SharedString::const_str("SELECT a");
        // The task runs (and panics) on this thread: tokio catches the panic in its poll.
        let panicked = tokio::spawn(collect(async move {
            record_query(
                &SharedString::const_str("SELECT a"),
                Duration::from_millis(1),
            );
            panic!("handler panicked");
        }))
        .await;
        assert!(panicked.is_err());
        // Outside any call again: this query is not collected anywhere.
        record_query(&summary, Duration::from_millis(1));
        assert!(matches!(CURRENT.take(), Slot::Outside));
    }
}
