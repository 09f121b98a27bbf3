//! What a store is: the [`Store`] trait, what its methods return ([`StoreFuture`],
//! [`Lookup`], [`StoreError`], [`StoreStats`]), and how the variants under one key merge.

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use super::lease::Leases;
use crate::entry::Entry;

/// The variants stored under one key, most recent first.
pub type Variants = Arc<[Arc<Entry>]>;

/// Which tier of a store answered a lookup; it labels metrics (`tier="l1"|"l2"`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Tier {
    /// Process memory.
    L1,
    /// A shared remote store (Redis).
    L2,
}

impl Tier {
    /// The metric label: `l1` or `l2`.
    pub const fn as_str(self) -> &'static str {
        match self {
            Tier::L1 => "l1",
            Tier::L2 => "l2",
        }
    }
}

/// A successful lookup.
#[derive(Debug, Clone)]
pub struct Lookup {
    /// The variants under the key, most recent first.
    pub variants: Variants,
    /// The tier that had them.
    pub tier: Tier,
}

/// A store failure. The cache treats every failure as a miss: it never turns into an
/// error response.
#[derive(Debug)]
pub enum StoreError {
    /// The operation took longer than the store's timeout.
    Timeout,
    /// The store is known to be down and is not being asked until its backoff expires.
    Unavailable,
    /// The backend reported an error.
    Backend(Box<dyn std::error::Error + Send + Sync>),
}

impl fmt::Display for StoreError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            StoreError::Timeout => f.write_str("cache store operation timed out"),
            StoreError::Unavailable => f.write_str("cache store unavailable"),
            StoreError::Backend(error) => write!(f, "cache store error: {error}"),
        }
    }
}

impl std::error::Error for StoreError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            StoreError::Backend(error) => Some(&**error),
            StoreError::Timeout | StoreError::Unavailable => None,
        }
    }
}

/// The result of a store operation: ready at once (memory) or pending (network).
///
/// A ready result costs no allocation, which keeps a memory hit off the heap; a pending one
/// is boxed. The future owns everything it needs (`'static`), so it can be spawned.
pub struct StoreFuture<T> {
    inner: Inner<T>,
}

enum Inner<T> {
    Ready(Option<Result<T, StoreError>>),
    Pending(Pin<Box<dyn Future<Output = Result<T, StoreError>> + Send>>),
}

impl<T> StoreFuture<T> {
    /// A result available now.
    pub fn ready(result: Result<T, StoreError>) -> Self {
        Self {
            inner: Inner::Ready(Some(result)),
        }
    }

    /// A result to wait for.
    pub fn pending(future: impl Future<Output = Result<T, StoreError>> + Send + 'static) -> Self {
        Self {
            inner: Inner::Pending(Box::pin(future)),
        }
    }

    /// The result if it is available now, else the future back.
    pub fn now(self) -> Result<Result<T, StoreError>, Self> {
        match self.inner {
            Inner::Ready(Some(result)) => Ok(result),
            inner => Err(Self { inner }),
        }
    }

    /// Waits for the result at most `timeout`; [`StoreError::Timeout`] after that.
    pub(crate) async fn within(self, timeout: Duration) -> Result<T, StoreError> {
        match tokio::time::timeout(timeout, self).await {
            Ok(result) => result,
            Err(_) => Err(StoreError::Timeout),
        }
    }
}

// Nothing in a `StoreFuture` is pinned in place: the pending future is boxed and the ready
// value is moved out, never projected to.
impl<T> Unpin for StoreFuture<T> {}

impl<T> Future for StoreFuture<T> {
    type Output = Result<T, StoreError>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        match &mut self.get_mut().inner {
            Inner::Ready(result) => match result.take() {
                Some(result) => Poll::Ready(result),
                None => Poll::Pending,
            },
            Inner::Pending(future) => future.as_mut().poll(cx),
        }
    }
}

impl<T> fmt::Debug for StoreFuture<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let state = match &self.inner {
            Inner::Ready(_) => "ready",
            Inner::Pending(_) => "pending",
        };
        f.debug_tuple("StoreFuture").field(&state).finish()
    }
}

/// Counts a store keeps about itself.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct StoreStats {
    /// Keys held in process memory (L1).
    pub l1_entries: u64,
    /// Bytes held in process memory (L1), as weighed by [`Entry::weight`].
    pub l1_bytes: u64,
    /// Failed remote (L2) operations since start.
    pub l2_errors: u64,
}

/// Where the cache keeps entries.
///
/// Keys are strings built by the layer; under each key live one or more variants (responses
/// selected by `Vary`), distinguished by [`Entry::variant`]. Entries carry their own
/// deadlines: a store may drop an entry after its [`stale_until`](Entry::stale_until), and
/// the layer never uses one it is handed past that instant. Every method returns a
/// [`StoreFuture`]; in-memory stores answer at once.
///
/// Implemented by [`MemoryStore`](crate::MemoryStore), [`RedisStore`](crate::RedisStore)
/// and [`TieredStore`](crate::TieredStore); implement it to keep entries elsewhere (the entry's [`encode`](Entry::encode)/[`decode`](Entry::decode) give a
/// compact binary form).
pub trait Store: fmt::Debug + Send + Sync + 'static {
    /// The variants under `key`, most recent first; `None` when there are none.
    fn get(&self, key: &str) -> StoreFuture<Option<Lookup>>;

    /// Stores `entry` under `key`, replacing the variant with the same
    /// [`variant`](Entry::variant) id and any variant that `Vary`s on different headers,
    /// and indexes it under each of its tags. Kept until its
    /// [`stale_until`](Entry::stale_until).
    fn put(&self, key: &str, entry: Arc<Entry>) -> StoreFuture<()>;

    /// Removes every variant under `key`.
    fn delete(&self, key: &str) -> StoreFuture<()>;

    /// Removes every key holding an entry tagged `tag`; returns how many keys it removed
    /// (for a tiered store: in its shared tier).
    fn invalidate_tag(&self, tag: &str) -> StoreFuture<u64>;

    /// Removes every entry.
    fn purge(&self) -> StoreFuture<()>;

    /// The store's own counts.
    fn stats(&self) -> StoreStats {
        StoreStats::default()
    }

    /// The heaviest entry ([`Entry::weight`]) the store accepts, if it has such a limit:
    /// the layer does not record (nor report as `stored`) a response it knows to be
    /// heavier. Default: `None`, no limit besides the layer's `max_body`.
    fn max_entry_weight(&self) -> Option<u64> {
        None
    }

    /// Leases on keys' origin calls, when the store is shared between processes: the
    /// cache then makes one origin call per key across every instance, not only within
    /// each. Default: `None`, coalescing stays within the process.
    fn leases(&self) -> Option<Arc<dyn Leases>> {
        None
    }
}

/// Merges `entry` into `current` (most recent first): replaces the same variant and drops
/// variants that vary on other headers or are no longer alive; keeps at most
/// [`MAX_VARIANTS`].
pub(crate) fn merge_variants(
    current: Option<&[Arc<Entry>]>,
    entry: Arc<Entry>,
    now: u64,
) -> Variants {
    let mut merged: Vec<Arc<Entry>> = Vec::with_capacity(current.map_or(1, |c| c.len() + 1));
    let names = |e: &Entry| {
        e.vary
            .iter()
            .map(|rule| rule.name.clone())
            .collect::<Vec<_>>()
    };
    let entry_names = names(&entry);
    merged.push(entry.clone());
    for existing in current.unwrap_or_default() {
        if merged.len() >= MAX_VARIANTS {
            break;
        }
        if existing.variant == entry.variant
            || !existing.alive_at(now)
            || names(existing) != entry_names
        {
            continue;
        }
        merged.push(existing.clone());
    }
    merged.into()
}

/// The most variants kept under one key; older ones are dropped first.
pub(crate) const MAX_VARIANTS: usize = 16;
