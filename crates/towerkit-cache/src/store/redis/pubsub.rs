//! The store's subscription: one pub/sub connection per store, following its two channels
//! (invalidations for tiered stores, lease outcomes for waiters) and handing their
//! messages to whoever listens in this process.
//!
//! On a cluster a classic `PUBLISH` reaches every node, so one connection to any node hears
//! everything: the subscriber goes round the nodes it knows (those the store discovered in
//! the cluster's slot map, primaries and replicas, then those it was given), and when the
//! node it follows dies (its connection ends, or a ping goes unanswered), it subscribes
//! through the next; a store given one node of a cluster survives that node's death.
//! Messages published while no connection was subscribed are lost: hooks are told
//! ([`Event::Resubscribed`]) so that they can drop what they may have missed, and lease
//! waiters poll the lease besides (see `lease.rs`).

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use futures_util::StreamExt;
use tokio::sync::watch;
use tokio::task::JoinHandle;

use super::conn::Clients;
use super::lease::random_hex;
use crate::store::LeaseEnd;

/// What the subscription tells the hooks (tiered stores' memory tiers).
#[derive(Debug, Clone, Copy)]
pub(crate) enum Event<'a> {
    /// An invalidation message, as published on the invalidation channel.
    Invalidation(&'a str),
    /// Another instance stored a new response under this key (its lease ended filled):
    /// copies of the key kept in memory are outdated.
    Filled(&'a str),
    /// The subscription was (re-)established after a gap: messages may have been missed.
    Resubscribed,
}

/// Called with every event, on the subscription's task, before lease waiters are woken;
/// returns `false` once it is no longer wanted (its store was dropped).
pub(crate) type Hook = Box<dyn Fn(Event<'_>) -> bool + Send + Sync>;

/// What a store's subscription delivers, shared by the task that reads it and the store.
pub(crate) struct Notices {
    /// This store's own random id: it signs the lease ends it announces, so that it does
    /// not act on its own fills.
    origin: String,
    invalidation_channel: String,
    lease_channel: String,
    hooks: Mutex<Vec<Hook>>,
    /// Lease waiters in this process, by cache key.
    waiters: Mutex<HashMap<String, watch::Sender<Option<LeaseEnd>>>>,
    subscribed: AtomicBool,
}

impl Notices {
    fn waiters(&self) -> MutexGuard<'_, HashMap<String, watch::Sender<Option<LeaseEnd>>>> {
        self.waiters
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// This store's id, as its announcements carry it.
    pub(crate) fn origin(&self) -> &str {
        &self.origin
    }

    /// Calls `hook` with every event from now on.
    pub(crate) fn on_event(&self, hook: Hook) {
        self.hooks
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .push(hook);
    }

    fn notify(&self, event: Event<'_>) {
        self.hooks
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .retain(|hook| hook(event));
    }

    /// Whether a connection is subscribed now (lease outcomes are then announced).
    pub(crate) fn subscribed(&self) -> bool {
        self.subscribed.load(Ordering::SeqCst)
    }

    /// Registers interest in how `key`'s lease ends; dropping the returned waiter
    /// unregisters it.
    pub(crate) fn listen(self: &Arc<Self>, key: &str) -> Listener {
        let receiver = self
            .waiters()
            .entry(key.to_owned())
            .or_insert_with(|| watch::channel(None).0)
            .subscribe();
        Listener {
            notices: self.clone(),
            key: key.to_owned(),
            receiver,
        }
    }

    fn deliver(&self, channel: &str, payload: &str) {
        if channel == self.lease_channel {
            let Some((end, origin, key)) = decode_lease(payload) else {
                return;
            };
            // Memory copies go first, so that a woken waiter reads the new entry; this
            // store's own fill is what its memory tier already holds.
            if end == LeaseEnd::Filled && origin != self.origin {
                self.notify(Event::Filled(key));
            }
            if let Some(sender) = self.waiters().remove(key) {
                sender.send_replace(Some(end));
            }
        } else if channel == self.invalidation_channel {
            self.notify(Event::Invalidation(payload));
        }
    }
}

/// One waiter's interest in a lease's end.
pub(crate) struct Listener {
    notices: Arc<Notices>,
    key: String,
    receiver: watch::Receiver<Option<LeaseEnd>>,
}

impl Listener {
    /// The end announced so far, if any.
    pub(crate) fn current(&self) -> Option<LeaseEnd> {
        *self.receiver.borrow()
    }

    /// Resolves with the announced end of the lease (never, if none is announced).
    pub(crate) async fn announced(&mut self) -> LeaseEnd {
        loop {
            if let Some(end) = *self.receiver.borrow_and_update() {
                return end;
            }
            if self.receiver.changed().await.is_err() {
                // The sender was replaced after a delivery; nothing more will come.
                return std::future::pending().await;
            }
        }
    }
}

impl Drop for Listener {
    fn drop(&mut self) {
        let mut waiters = self.notices.waiters();
        // Only this waiter's channel, and only when no other waiter shares it.
        let alone = waiters.get(&self.key).is_some_and(|sender| {
            let ours = sender.subscribe().same_channel(&self.receiver);
            ours && sender.receiver_count() <= 1
        });
        if alone {
            waiters.remove(&self.key);
        }
    }
}

/// The message announcing that `key`'s lease ended with `end`, sent by the store `origin`:
/// `{f|n|a} {origin} {key}`.
pub(crate) fn encode_lease(end: LeaseEnd, origin: &str, key: &str) -> String {
    let code = match end {
        LeaseEnd::Filled => 'f',
        LeaseEnd::NotStorable => 'n',
        LeaseEnd::Abandoned => 'a',
    };
    format!("{code} {origin} {key}")
}

fn decode_lease(payload: &str) -> Option<(LeaseEnd, &str, &str)> {
    let (code, rest) = payload.split_once(' ')?;
    let (origin, key) = rest.split_once(' ')?;
    let end = match code {
        "f" => LeaseEnd::Filled,
        "n" => LeaseEnd::NotStorable,
        "a" => LeaseEnd::Abandoned,
        _ => return None,
    };
    Some((end, origin, key))
}

/// The running subscription: its notices, and the task that reads it (stopped on drop).
pub(crate) struct Subscription {
    pub(crate) notices: Arc<Notices>,
    task: Option<JoinHandle<()>>,
}

impl Drop for Subscription {
    fn drop(&mut self) {
        if let Some(task) = self.task.take() {
            task.abort();
        }
    }
}

impl Subscription {
    /// Subscribes to the two channels through `nodes` (tried in turn, as they are when the
    /// subscriber moves on), on a task of the current runtime; without a runtime, nothing
    /// is delivered (waiters then poll).
    pub(crate) fn start(
        nodes: Arc<Clients>,
        invalidation_channel: String,
        lease_channel: String,
    ) -> Self {
        let notices = Arc::new(Notices {
            origin: random_hex(),
            invalidation_channel,
            lease_channel,
            hooks: Mutex::default(),
            waiters: Mutex::default(),
            subscribed: AtomicBool::new(false),
        });
        let task = tokio::runtime::Handle::try_current()
            .ok()
            .filter(|_| !nodes.all().is_empty())
            .map(|runtime| runtime.spawn(follow(nodes, Arc::downgrade(&notices))));
        Subscription { notices, task }
    }
}

/// How often the subscribed connection is pinged, and how long a ping may take before the
/// node is given up for the next one.
const PING_EVERY: Duration = Duration::from_secs(1);
const PING_TIMEOUT: Duration = Duration::from_secs(1);

/// Connecting to one node may take this long before the next one is tried.
const CONNECT_TIMEOUT: Duration = Duration::from_millis(500);

/// Follows the channels for as long as the notices live, going round `nodes`.
async fn follow(nodes: Arc<Clients>, notices: std::sync::Weak<Notices>) {
    let mut backoff = Duration::from_millis(50);
    let mut next = 0usize;
    // Nodes tried since one last answered: a round ends when each known node was tried.
    let mut refused = 0usize;
    let mut gap = false;
    loop {
        let Some(strong) = notices.upgrade() else {
            return;
        };
        let candidates = nodes.all();
        let Some(client) = candidates.get(next % candidates.len().max(1)).cloned() else {
            return;
        };
        next = next.wrapping_add(1);
        let channels = [
            strong.invalidation_channel.clone(),
            strong.lease_channel.clone(),
        ];
        drop(strong);
        let connected = tokio::time::timeout(CONNECT_TIMEOUT, async {
            let mut pubsub = client.get_async_pubsub().await?;
            pubsub.subscribe(&channels).await?;
            Ok::<_, redis::RedisError>(pubsub)
        })
        .await;
        let Ok(Ok(pubsub)) = connected else {
            // Every node refused in turn: pause before the next round.
            refused += 1;
            if refused >= candidates.len() {
                refused = 0;
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(Duration::from_secs(2));
            }
            gap = true;
            continue;
        };
        refused = 0;
        backoff = Duration::from_millis(50);
        let Some(strong) = notices.upgrade() else {
            return;
        };
        strong.subscribed.store(true, Ordering::SeqCst);
        if gap {
            strong.notify(Event::Resubscribed);
        }
        drop(strong);
        let (mut sink, mut stream) = pubsub.split();
        let mut ping = tokio::time::interval(PING_EVERY);
        ping.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                message = stream.next() => {
                    let Some(message) = message else {
                        tracing::debug!("redis subscription ended");
                        break;
                    };
                    let Some(strong) = notices.upgrade() else { return };
                    if let Ok(payload) = std::str::from_utf8(message.get_payload_bytes()) {
                        strong.deliver(message.get_channel_name(), payload);
                    }
                }
                _ = ping.tick() => {
                    // A subscribed connection answers `PING` with `["pong", ""]` (RESP2),
                    // not `PONG`: any answer will do.
                    let pong =
                        tokio::time::timeout(PING_TIMEOUT, sink.ping::<redis::Value>()).await;
                    if !matches!(pong, Ok(Ok(_))) {
                        tracing::debug!(?pong, "redis subscription unanswered");
                        break;
                    }
                }
            }
        }
        if let Some(strong) = notices.upgrade() {
            strong.subscribed.store(false, Ordering::SeqCst);
        }
        gap = true;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lease_messages_round_trip() {
        for end in [LeaseEnd::Filled, LeaseEnd::NotStorable, LeaseEnd::Abandoned] {
            let text = encode_lease(end, "0a1b", "/a b?c");
            assert_eq!(decode_lease(&text), Some((end, "0a1b", "/a b?c")));
        }
        assert_eq!(decode_lease("x 0a /a"), None);
        assert_eq!(decode_lease("f /a"), None);
        assert_eq!(decode_lease("f"), None);
    }
}
