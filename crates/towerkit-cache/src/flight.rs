//! Request coalescing: one origin call per key at a time.
//!
//! The first request to miss a key leads: it registers a flight and calls the origin.
//! Requests missing the same key meanwhile follow: they wait (bounded) for the flight to
//! end, then look the key up again. A flight ends when its guard drops: after the response
//! was stored, or as soon as it turned out not storable, or when the leader gave up (client
//! gone, body too large). Followers never receive the leader's response itself, only what
//! the store holds afterwards, so a response that is not storable never reaches them.

use std::collections::HashMap;
use std::fmt;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use tokio::sync::watch;

/// The flights in progress, by key.
#[derive(Default)]
pub(crate) struct Flights {
    map: Mutex<HashMap<String, watch::Receiver<()>>>,
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
}

impl Flights {
    fn lock(&self) -> MutexGuard<'_, HashMap<String, watch::Receiver<()>>> {
        // A panic elsewhere while holding the lock leaves a usable map: recover it.
        self.map
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Leads the flight for `key`, or follows the one in progress.
    pub(crate) fn join(self: &Arc<Self>, key: &str) -> Join {
        let mut map = self.lock();
        if let Some(receiver) = map.get(key) {
            return Join::Follow(Follower {
                receiver: receiver.clone(),
            });
        }
        let (sender, receiver) = watch::channel(());
        map.insert(key.to_owned(), receiver);
        Join::Lead(FlightGuard {
            flights: self.clone(),
            key: key.to_owned(),
            _done: sender,
        })
    }

    /// Leads the flight for `key` if none is in progress.
    pub(crate) fn try_lead(self: &Arc<Self>, key: &str) -> Option<FlightGuard> {
        match self.join(key) {
            Join::Lead(guard) => Some(guard),
            Join::Follow(_) => None,
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
}

impl Follower {
    /// Waits until the flight ends or `timeout` passes; `true` if it ended.
    pub(crate) async fn wait(mut self, timeout: Duration) -> bool {
        // The leader never sends: `changed` returns when the sender drops.
        tokio::time::timeout(timeout, self.receiver.changed())
            .await
            .is_ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn second_join_follows_until_the_guard_drops() {
        let flights = Arc::new(Flights::default());
        let Join::Lead(guard) = flights.join("k") else {
            panic!("first join must lead")
        };
        let Join::Follow(follower) = flights.join("k") else {
            panic!("second join must follow")
        };
        assert!(flights.try_lead("k").is_none());
        assert!(flights.try_lead("other").is_some());
        drop(guard);
        assert!(follower.wait(Duration::from_secs(5)).await);
        assert_eq!(flights.in_progress(), 0);
        assert!(matches!(flights.join("k"), Join::Lead(_)));
    }

    #[tokio::test]
    async fn followers_give_up_after_the_timeout() {
        let flights = Arc::new(Flights::default());
        let _guard = flights.try_lead("k");
        let Join::Follow(follower) = flights.join("k") else {
            panic!("must follow")
        };
        assert!(!follower.wait(Duration::from_millis(10)).await);
    }
}
