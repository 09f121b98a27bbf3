//! Storing a response: the [`Recorder`] that copies a body aside as it streams to the client,
//! and the store write once it is complete ([`Commit`], [`put`]).

use std::sync::Arc;
use std::time::Duration;

use bytes::{Bytes, BytesMut};

use crate::entry::{Entry, Prepared};
use crate::flight::FlightGuard;
use crate::store::Store;

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

/// What storing a prepared response takes: where, under which key, and the flight to end
/// once it is stored.
pub(crate) struct Commit {
    pub(crate) store: Arc<dyn Store>,
    pub(crate) key: String,
    pub(crate) prepared: Prepared,
    pub(crate) guard: Option<FlightGuard>,
    pub(crate) timeout: Duration,
}

impl Commit {
    /// Stores the entry with `body`; the flight ends when the store has it.
    pub(crate) fn store(self, body: Bytes) {
        let entry = Arc::new(self.prepared.finish(body));
        put(self.store, self.key, entry, self.guard, self.timeout);
    }
}

/// Puts `entry` under `key`, ending `guard`'s flight once stored; a store that is not done
/// at once finishes on a spawned task (and nothing is stored outside a Tokio runtime).
pub(crate) fn put(
    store: Arc<dyn Store>,
    key: String,
    entry: Arc<Entry>,
    guard: Option<FlightGuard>,
    timeout: Duration,
) {
    match store.put(&key, entry).now() {
        Ok(result) => {
            if let Err(error) = result {
                tracing::debug!(%error, "cache store put failed");
            }
            drop(guard);
        }
        Err(pending) => {
            let Ok(runtime) = tokio::runtime::Handle::try_current() else {
                return;
            };
            runtime.spawn(async move {
                match tokio::time::timeout(timeout, pending).await {
                    Ok(Ok(())) => {}
                    Ok(Err(error)) => tracing::debug!(%error, "cache store put failed"),
                    Err(_) => tracing::debug!("cache store put timed out"),
                }
                drop(guard);
            });
        }
    }
}
