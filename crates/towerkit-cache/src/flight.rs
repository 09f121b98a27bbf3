//! Request coalescing: one origin call per key at a time.
//!
//! The first request to miss a key leads: it registers a flight and calls the origin.
//! Requests missing the same key meanwhile follow: they wait (bounded) for the flight to
//! end. A leader whose response is storable hands the entry to its followers directly
//! ([`FlightGuard::hand_over`]), before and whatever the store does with it, and ends the
//! flight only once the store has been given the entry (`record.rs`): a request that missed
//! the store just before then follows and is handed the entry, or finds it stored when it
//! looks again. A flight that ends otherwise (the response not storable, the leader gave up: client gone, body too
//! large) hands nothing, and followers look the key up again. A response that is not
//! storable thus never reaches a follower.
//!
//! This is coalescing within one process; across instances sharing a store, leaders take
//! the key's lease first (`collapse.rs`).
//!
//! A flight coalesces for a bounded time from its start (the layer's `coalesce_timeout`):
//! its followers wait at most until then, and a request arriving later does not join it but
//! goes to the origin itself. A leader whose body streams for minutes (a slow download, a
//! stream the cache records) thus delays nobody beyond the bound.

use std::collections::HashMap;
use std::fmt;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use tokio::sync::watch;
use tokio::time::Instant;

use crate::entry::Entry;

/// The flights in progress, by key.
#[derive(Default)]
pub(crate) struct Flights {
    map: Mutex<HashMap<String, Flight>>,
}

/// A flight in progress: what its followers wait on (the entry handed over, if any), and
/// until when it coalesces.
struct Flight {
    done: watch::Receiver<Option<Arc<Entry>>>,
    until: Instant,
    /// The leader's span (when spans are recorded), which followers link to.
    origin: Option<tracing::Id>,
}

impl fmt::Debug for Flights {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Flights")
            .field("in_progress", &self.lock().len())
            .finish()
    }
}

/// The outcome of joining a key's flight.
pub(crate) enum Join {
    /// No flight for the key: this request leads one, until the guard drops.
    Lead(FlightGuard),
    /// Another request leads: wait on this.
    Follow(Follower),
    /// Another request leads a flight older than its bound: go on alone.
    Alone,
}

impl Flights {
    fn lock(&self) -> MutexGuard<'_, HashMap<String, Flight>> {
        // A panic elsewhere while holding the lock leaves a usable map: recover it.
        self.map
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Leads the flight for `key` (coalescing for `bound` from now), follows the one in
    /// progress, or goes on alone when that one is older than its bound.
    pub(crate) fn join(self: &Arc<Self>, key: &str, bound: Duration) -> Join {
        let now = Instant::now();
        let mut map = self.lock();
        if let Some(flight) = map.get(key) {
            if flight.until <= now {
                return Join::Alone;
            }
            return Join::Follow(Follower {
                receiver: flight.done.clone(),
                until: flight.until,
                origin: flight.origin.clone(),
            });
        }
        let (sender, done) = watch::channel(None);
        let until = now.checked_add(bound).unwrap_or(now + FAR);
        let origin = crate::trace::current_id();
        map.insert(
            key.to_owned(),
            Flight {
                done,
                until,
                origin,
            },
        );
        Join::Lead(FlightGuard {
            flights: self.clone(),
            key: key.to_owned(),
            until,
            done: sender,
        })
    }

    /// Leads the flight for `key` (coalescing for `bound`) if none is in progress.
    pub(crate) fn try_lead(self: &Arc<Self>, key: &str, bound: Duration) -> Option<FlightGuard> {
        match self.join(key, bound) {
            Join::Lead(guard) => Some(guard),
            Join::Follow(_) | Join::Alone => None,
        }
    }

    #[cfg(test)]
    pub(crate) fn in_progress(&self) -> usize {
        self.lock().len()
    }
}

/// Held by a flight's leader; dropping it ends the flight and wakes the followers.
pub(crate) struct FlightGuard {
    flights: Arc<Flights>,
    key: String,
    until: Instant,
    // Dropped after `drop` removed the entry: followers then see the channel closed.
    done: watch::Sender<Option<Arc<Entry>>>,
}

impl FlightGuard {
    /// Until when the flight coalesces: its followers wait no longer.
    pub(crate) fn until(&self) -> Instant {
        self.until
    }

    /// Hands `entry` (a storable response, as stored) to the followers, and to every
    /// request that joins the flight until the guard drops.
    pub(crate) fn hand_over(&self, entry: Arc<Entry>) {
        self.done.send_replace(Some(entry));
    }
}

impl fmt::Debug for FlightGuard {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("FlightGuard").field(&self.key).finish()
    }
}

impl Drop for FlightGuard {
    fn drop(&mut self) {
        self.flights.lock().remove(&self.key);
    }
}

/// A request waiting for another request's flight.
pub(crate) struct Follower {
    receiver: watch::Receiver<Option<Arc<Entry>>>,
    until: Instant,
    origin: Option<tracing::Id>,
}

/// How a follower's wait ended.
#[derive(Debug)]
pub(crate) enum Waited {
    /// The leader handed over its stored response.
    Handed(Arc<Entry>),
    /// The flight ended without one: look the key up again.
    Ended,
    /// The flight's bound passed first.
    TimedOut,
}

impl Follower {
    /// Waits until the leader hands over an entry, the flight ends, or its bound passes.
    pub(crate) async fn wait(mut self) -> Waited {
        // The origin call serves every follower: a link, not a parent.
        crate::trace::follows(self.origin.as_ref());
        // `wait_for` sees an entry already handed over at once, and fails once the sender
        // is dropped, which ends every flight.
        let ended = tokio::time::timeout_at(self.until, self.receiver.wait_for(Option::is_some))
            .await
            .is_ok();
        match (ended, self.receiver.borrow().clone()) {
            (_, Some(entry)) => Waited::Handed(entry),
            (true, None) => Waited::Ended,
            (false, None) => Waited::TimedOut,
        }
    }
}

/// A bound far enough to mean "never" when `now + bound` overflows.
const FAR: Duration = Duration::from_secs(86_400 * 365);

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn second_join_follows_until_the_guard_drops() {
        let flights = Arc::new(Flights::default());
        let Join::Lead(guard) = flights.join("k", BOUND) else {
            panic!("first join must lead")
        };
        let Join::Follow(follower) = flights.join("k", BOUND) else {
            panic!("second join must follow")
        };
        assert!(flights.try_lead("k", BOUND).is_none());
        assert!(flights.try_lead("other", BOUND).is_some());
        drop(guard);
        assert!(matches!(follower.wait().await, Waited::Ended));
        assert_eq!(flights.in_progress(), 0);
        assert!(matches!(flights.join("k", BOUND), Join::Lead(_)));
    }

    const BOUND: Duration = Duration::from_secs(5);

    /// A storable entry for `/k`.
    fn fresh_entry() -> Arc<Entry> {
        Arc::new(crate::test_support::entry(
            &[("cache-control", "max-age=60")],
            &[],
            "/k",
            b"body",
        ))
    }

    #[tokio::test]
    async fn followers_receive_the_entry_handed_over() {
        let flights = Arc::new(Flights::default());
        let Join::Lead(guard) = flights.join("k", BOUND) else {
            panic!("first join must lead")
        };
        let followers: Vec<_> = (0..3)
            .map(|_| match flights.join("k", BOUND) {
                Join::Follow(follower) => tokio::spawn(follower.wait()),
                _ => panic!("must follow"),
            })
            .collect();
        let entry = fresh_entry();
        guard.hand_over(entry.clone());
        drop(guard);
        for follower in followers {
            let Waited::Handed(handed) = follower.await.unwrap() else {
                panic!("the entry must be handed over")
            };
            assert!(Arc::ptr_eq(&handed, &entry));
        }
        assert_eq!(flights.in_progress(), 0);
    }

    #[tokio::test]
    async fn a_request_joining_after_the_hand_over_is_handed_the_entry_at_once() {
        let flights = Arc::new(Flights::default());
        let Join::Lead(guard) = flights.join("k", BOUND) else {
            panic!("first join must lead")
        };
        let entry = fresh_entry();
        guard.hand_over(entry.clone());
        // The store has not taken the entry yet: the flight is still open.
        let Join::Follow(follower) = flights.join("k", BOUND) else {
            panic!("a request joining while the store writes must follow")
        };
        let waited = tokio::time::timeout(Duration::from_secs(1), follower.wait())
            .await
            .expect("an entry handed over ends the wait without the guard dropping");
        let Waited::Handed(handed) = waited else {
            panic!("the entry must be handed over")
        };
        assert!(Arc::ptr_eq(&handed, &entry));
        drop(guard);
        assert_eq!(flights.in_progress(), 0);
    }

    #[tokio::test]
    async fn followers_give_up_at_the_flights_bound() {
        let flights = Arc::new(Flights::default());
        let _guard = flights.try_lead("k", Duration::from_millis(10));
        let Join::Follow(follower) = flights.join("k", BOUND) else {
            panic!("must follow")
        };
        assert!(matches!(follower.wait().await, Waited::TimedOut));
    }

    #[tokio::test]
    async fn a_flight_past_its_bound_is_not_joined() {
        let flights = Arc::new(Flights::default());
        let _guard = flights.try_lead("k", Duration::from_millis(10));
        tokio::time::sleep(Duration::from_millis(20)).await;
        assert!(matches!(flights.join("k", BOUND), Join::Alone));
        // The old leader still owns the key until it ends.
        assert_eq!(flights.in_progress(), 1);
    }
}
