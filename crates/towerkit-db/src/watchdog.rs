//! The client-side deadline of a query, without a timer per query.
//!
//! A `tokio::time::timeout` around every query registers a timer in the runtime's wheel and
//! removes it again a few tens of microseconds later; measured on a local `SELECT 1`, that
//! costs about 2 % of the round trip. The client timeout is a last resort (the server's
//! `statement_timeout` fires first; this one catches a server that cannot answer at all) and
//! needs no precision, so queries register in a [`Watchdog`] instead: a slab entry with
//! their start, timeout and waker, taken when the query first waits and given back when it
//! completes. The start is the [`Stopwatch`] reading the query is timed from, so
//! registering reads no clock. A background task checks the slab every [`WATCHDOG_TICK`]
//! and wakes the queries past their deadline, which then fail with [`Expired`].

use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex, PoisonError, Weak};
use std::task::{Context, Poll, Waker};
use std::time::Duration;

use pin_project_lite::pin_project;
use slab::Slab;
use towerkit_timing::Stopwatch;

/// How often the watchdog looks for queries past their deadline: a query that cannot
/// finish fails at most this long after its deadline.
pub(crate) const WATCHDOG_TICK: Duration = Duration::from_millis(100);

/// The queries waiting on their deadlines.
#[derive(Debug, Default)]
pub(crate) struct Watchdog {
    waiting: Mutex<Slab<Watch>>,
}

#[derive(Debug)]
struct Watch {
    start: Stopwatch,
    timeout: Duration,
    waker: Waker,
    expired: bool,
}

/// A guarded future ran past its deadline.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Expired;

impl Watchdog {
    /// Runs `future` until `timeout` has passed since `start`: past that (within
    /// [`WATCHDOG_TICK`], once [`Watchdog::run`] is running), the future is dropped and
    /// [`Expired`] returned. (A future that never waits needs no deadline, and so it is
    /// registered only when it does; with no `timeout`, never.)
    pub(crate) fn guard<F: Future>(
        &self,
        start: Stopwatch,
        timeout: Option<Duration>,
        future: F,
    ) -> Guarded<'_, F> {
        Guarded {
            inner: future,
            watchdog: self,
            start,
            timeout,
            key: None,
        }
    }

    /// Marks every query whose deadline is at or before `now` expired and wakes it;
    /// returns how many.
    pub(crate) fn expire(&self, now: Stopwatch) -> usize {
        let mut waiting = self.lock();
        let mut expired = 0;
        for (_, watch) in waiting.iter_mut() {
            if !watch.expired && now.since(watch.start) >= watch.timeout {
                watch.expired = true;
                watch.waker.wake_by_ref();
                expired += 1;
            }
        }
        expired
    }

    /// How many queries are registered.
    #[cfg(test)]
    fn len(&self) -> usize {
        self.lock().len()
    }

    /// Checks the deadlines every [`WATCHDOG_TICK`] until the watchdog is dropped.
    pub(crate) async fn run(watchdog: Weak<Self>) {
        let mut interval = tokio::time::interval(WATCHDOG_TICK);
        interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            interval.tick().await;
            let Some(watchdog) = watchdog.upgrade() else {
                return;
            };
            watchdog.expire(Stopwatch::start());
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Slab<Watch>> {
        // The slab is consistent after every operation: a panic elsewhere cannot poison it
        // in a harmful way.
        self.waiting.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// Starts the task that runs `watchdog`'s checks; it ends when the watchdog is dropped.
pub(crate) fn spawn(watchdog: &Arc<Watchdog>) -> tokio::task::JoinHandle<()> {
    tokio::spawn(Watchdog::run(Arc::downgrade(watchdog)))
}

pin_project! {
    /// A future with a deadline, from [`Watchdog::guard`].
    pub(crate) struct Guarded<'a, F> {
        #[pin]
        inner: F,
        watchdog: &'a Watchdog,
        start: Stopwatch,
        timeout: Option<Duration>,
        // The slab entry, from the first time the inner future waits until it completes.
        key: Option<usize>,
    }

    impl<F> PinnedDrop for Guarded<'_, F> {
        fn drop(this: Pin<&mut Self>) {
            let this = this.project();
            if let Some(key) = this.key.take() {
                this.watchdog.lock().remove(key);
            }
        }
    }
}

impl<F: Future> Future for Guarded<'_, F> {
    type Output = Result<F::Output, Expired>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        if let Poll::Ready(output) = this.inner.poll(cx) {
            if let Some(key) = this.key.take() {
                this.watchdog.lock().remove(key);
            }
            return Poll::Ready(Ok(output));
        }
        let Some(timeout) = *this.timeout else {
            return Poll::Pending;
        };
        let mut waiting = this.watchdog.lock();
        match *this.key {
            None => {
                *this.key = Some(waiting.insert(Watch {
                    start: *this.start,
                    timeout,
                    waker: cx.waker().clone(),
                    expired: false,
                }));
            }
            Some(key) => {
                let watch = &mut waiting[key];
                if watch.expired {
                    waiting.remove(key);
                    *this.key = None;
                    return Poll::Ready(Err(Expired));
                }
                if !watch.waker.will_wake(cx.waker()) {
                    watch.waker = cx.waker().clone();
                }
            }
        }
        Poll::Pending
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_future_that_finishes_in_time_returns_its_output_and_leaves_nothing() {
        let watchdog = Watchdog::default();
        let output = watchdog
            .guard(Stopwatch::start(), Some(Duration::from_secs(60)), async {
                tokio::task::yield_now().await;
                7
            })
            .await;
        assert_eq!(output, Ok(7));
        assert_eq!(watchdog.len(), 0);
    }

    #[tokio::test]
    async fn a_future_past_its_deadline_is_woken_and_expires() {
        let watchdog = Arc::new(Watchdog::default());
        let task = spawn(&watchdog);
        let start = Stopwatch::start();
        let result = tokio::time::timeout(
            Duration::from_secs(10),
            watchdog.guard(
                start,
                Some(Duration::from_millis(50)),
                std::future::pending::<()>(),
            ),
        )
        .await
        .expect("the watchdog woke the future");
        assert_eq!(result, Err(Expired));
        assert!(
            start.elapsed() >= Duration::from_millis(50),
            "not before its deadline"
        );
        assert_eq!(watchdog.len(), 0);
        task.abort();
    }

    #[tokio::test]
    async fn expire_wakes_only_the_futures_past_their_deadline() {
        let watchdog = Watchdog::default();
        let start = Stopwatch::start();
        let mut early = std::pin::pin!(watchdog.guard(
            start,
            Some(Duration::ZERO),
            std::future::pending::<()>()
        ));
        let mut late = std::pin::pin!(watchdog.guard(
            start,
            Some(Duration::from_secs(60)),
            std::future::pending::<()>()
        ));
        let mut cx = Context::from_waker(Waker::noop());
        assert!(early.as_mut().poll(&mut cx).is_pending());
        assert!(late.as_mut().poll(&mut cx).is_pending());
        let now = Stopwatch::start();
        assert_eq!(watchdog.expire(now), 1);
        assert_eq!(watchdog.expire(now), 0, "an expired future is woken once");
        assert_eq!(early.as_mut().poll(&mut cx), Poll::Ready(Err(Expired)));
        assert!(late.as_mut().poll(&mut cx).is_pending());
        assert_eq!(watchdog.len(), 1);
    }

    #[tokio::test]
    async fn a_dropped_future_gives_its_entry_back() {
        let watchdog = Watchdog::default();
        {
            let mut guarded = std::pin::pin!(watchdog.guard(
                Stopwatch::start(),
                Some(Duration::from_secs(60)),
                std::future::pending::<()>()
            ));
            let mut cx = Context::from_waker(Waker::noop());
            assert!(guarded.as_mut().poll(&mut cx).is_pending());
            assert_eq!(watchdog.len(), 1);
        }
        assert_eq!(watchdog.len(), 0);
    }
}
