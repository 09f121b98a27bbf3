//! Storing a response: the [`Recorder`] that copies a body aside as it streams to the client,
//! and the store write once it is complete ([`Commit`], [`put`]).

use std::sync::Arc;
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use tokio::sync::oneshot;

use crate::collapse::LeaseGuard;
use crate::entry::{Entry, Prepared};
use crate::flight::FlightGuard;
use crate::store::{LeaseEnd, Store};

/// Copies a body aside while it streams; stores the entry once the body is complete. Dropped
/// early (body too large, broken, or the client went away), it stores nothing and ends the
/// flight it leads.
pub(crate) struct Recorder {
    chunks: Vec<Bytes>,
    len: usize,
    limit: usize,
    commit: Commit,
}

impl Recorder {
    pub(crate) fn new(limit: usize, commit: Commit) -> Self {
        Self {
            chunks: Vec::new(),
            len: 0,
            limit,
            commit,
        }
    }

    /// Adds a chunk; `false` once the body is over the limit.
    pub(crate) fn push(&mut self, data: &Bytes) -> bool {
        self.len += data.len();
        if self.len > self.limit {
            return false;
        }
        if !data.is_empty() {
            self.chunks.push(data.clone());
        }
        true
    }

    /// The body is complete: store the entry.
    pub(crate) fn finish(self) {
        let body = match self.chunks.len() {
            0 => Bytes::new(),
            1 => self.chunks.into_iter().next().unwrap_or_default(),
            _ => {
                let mut joined = BytesMut::with_capacity(self.len);
                for chunk in &self.chunks {
                    joined.extend_from_slice(chunk);
                }
                joined.freeze()
            }
        };
        self.commit.store(body);
    }
}

/// What storing a prepared response takes: where, under which key, the flight to hand the
/// entry to, and the lease to release once it is stored.
pub(crate) struct Commit {
    pub(crate) store: Arc<dyn Store>,
    pub(crate) key: String,
    pub(crate) prepared: Prepared,
    pub(crate) guard: Option<FlightGuard>,
    pub(crate) lease: Option<LeaseGuard>,
    pub(crate) timeout: Duration,
    /// Told whether the store took the entry (a warm request's probe); dropped unsent
    /// when the body stops before its end.
    pub(crate) done: Option<oneshot::Sender<bool>>,
}

impl Commit {
    /// Stores the entry with `body`; the flight ends when the store has it.
    pub(crate) fn store(self, body: Bytes) {
        let entry = Arc::new(self.prepared.finish(body));
        put(
            self.store,
            self.key,
            entry,
            (self.guard, self.lease),
            self.timeout,
            self.done,
        );
    }
}

/// Puts `entry` under `key`: hands it to `guard`'s followers at once (whatever the store
/// then does), ends the flight once the store has been given it, and releases the lease
/// once the store has it, as filled (or as abandoned if the write failed, so that waiters
/// elsewhere claim it again). A store that is not done at once finishes on a spawned task
/// (and nothing is stored outside a Tokio runtime). `done`, if any, is told whether the store took it.
pub(crate) fn put(
    store: Arc<dyn Store>,
    key: String,
    entry: Arc<Entry>,
    (guard, lease): (Option<FlightGuard>, Option<LeaseGuard>),
    timeout: Duration,
    done: Option<oneshot::Sender<bool>>,
) {
    if let Some(guard) = &guard {
        guard.hand_over(entry.clone());
    }
    let settle = move |stored: bool| {
        if let Some(done) = done {
            let _ = done.send(stored);
        }
        if let Some(lease) = lease {
            lease.settle(if stored {
                LeaseEnd::Filled
            } else {
                LeaseEnd::Abandoned
            });
        }
    };
    let put = store.put(&key, entry);
    // The flight ends once the store has run the write's synchronous part: a memory store
    // (or a tiered store's L1) then holds the entry, so a request that missed just before
    // finds it when it looks again, instead of leading a second origin call. A remote
    // write still in progress does not hold the flight open: an invalidation meanwhile
    // must not be answered from the entry handed over.
    drop(guard);
    match put.now() {
        Ok(result) => {
            if let Err(error) = &result {
                tracing::debug!(%error, "cache store put failed");
            }
            settle(result.is_ok());
        }
        Err(pending) => {
            let Ok(runtime) = tokio::runtime::Handle::try_current() else {
                return;
            };
            runtime.spawn(async move {
                let stored = match tokio::time::timeout(timeout, pending).await {
                    Ok(Ok(())) => true,
                    Ok(Err(error)) => {
                        tracing::debug!(%error, "cache store put failed");
                        false
                    }
                    Err(_) => {
                        tracing::debug!("cache store put timed out");
                        false
                    }
                };
                settle(stored);
            });
        }
    }
}
