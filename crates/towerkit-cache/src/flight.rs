//! Request coalescing: one origin call per key at a time.
//!
//! The first request to miss a key leads: it registers a flight and calls the origin.
//! Requests missing the same key meanwhile follow: they wait (bounded) for the flight to
//! end, then look the key up again. A flight ends when its guard drops: after the response
//! was stored, or as soon as it turned out not storable, or when the leader gave up (client
//! gone, body too large). Followers never receive the leader's response itself, only what
//! the store holds afterwards, so a response that is not storable never reaches them.
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

/// The flights in progress, by key.
#[derive(Default)]
pub(crate) struct Flights {
    map: Mutex<HashMap<String, Flight>>,
}

/// A flight in progress: what its followers wait on, and until when it coalesces.
struct Flight {
    done: watch::Receiver<()>,
    until: Instant,
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
            });
        }
        let (sender, done) = watch::channel(());
        let until = now.checked_add(bound).unwrap_or(now + FAR);
        map.insert(key.to_owned(), Flight { done, until });
        Join::Lead(FlightGuard {
            flights: self.clone(),
            key: key.to_owned(),
            _done: sender,
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
    // Dropped after `drop` removed the entry: followers then see the channel closed.
    _done: watch::Sender<()>,
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
    receiver: watch::Receiver<()>,
    until: Instant,
}

impl Follower {
    /// Waits until the flight ends or its bound passes; `true` if it ended.
    pub(crate) async fn wait(mut self) -> bool {
        // The leader never sends: `changed` returns when the sender drops.
        tokio::time::timeout_at(self.until, self.receiver.changed())
            .await
            .is_ok()
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
        assert!(follower.wait().await);
        assert_eq!(flights.in_progress(), 0);
        assert!(matches!(flights.join("k", BOUND), Join::Lead(_)));
    }

    const BOUND: Duration = Duration::from_secs(5);

    #[tokio::test]
    async fn followers_give_up_at_the_flights_bound() {
        let flights = Arc::new(Flights::default());
        let _guard = flights.try_lead("k", Duration::from_millis(10));
        let Join::Follow(follower) = flights.join("k", BOUND) else {
            panic!("must follow")
        };
        assert!(!follower.wait().await);
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
