//! The per-request collector: a tokio task-local that [`TimingLayer`](crate::TimingLayer)
//! scopes around the inner service's future, and that [`QueryTimer`](crate::QueryTimer)
//! writes each query into. Code running inside a handler finds it without any plumbing;
//! code on another task (`tokio::spawn`) does not see it, and its queries are not counted
//! for the request.

use std::cell::RefCell;
use std::future::Future;
use std::time::Duration;

use metrics::SharedString;

/// At most this many distinct query summaries are counted per request (for N+1 detection);
/// queries beyond it still count towards the totals.
pub const MAX_SUMMARIES_PER_REQUEST: usize = 64;

tokio::task_local! {
    static CURRENT: RefCell<RequestTimings>;
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
    let mut scoped = std::pin::pin!(CURRENT.scope(RefCell::new(RequestTimings::default()), future));
    let output = scoped.as_mut().await;
    let timings = scoped
        .as_mut()
        .take_value()
        .map(RefCell::into_inner)
        .unwrap_or_default();
    (output, timings)
}

pub(crate) fn scope<F: Future>(
    future: F,
) -> tokio::task::futures::TaskLocalFuture<RefCell<RequestTimings>, F> {
    CURRENT.scope(RefCell::new(RequestTimings::default()), future)
}

/// Adds one query to the current request's collector; does nothing outside a request.
pub(crate) fn record_query(summary: &SharedString, elapsed: Duration) {
    let _ = CURRENT.try_with(|timings| {
        if let Ok(mut timings) = timings.try_borrow_mut() {
            timings.add(summary, elapsed);
        }
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
}
