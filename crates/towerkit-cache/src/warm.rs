//! Warming ([`CacheHandle::warm`](crate::CacheHandle::warm)): requests sent through the
//! caller's service, so that they pass the cache layer like any other and are stored by the
//! same rules, with a probe in their extensions through which the cache says what it did.

use std::fmt;
use std::future::poll_fn;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use futures_util::StreamExt as _;
use futures_util::stream::FuturesOrdered;
use http::header::{AUTHORIZATION, COOKIE, PROXY_AUTHORIZATION};
use http::{Extensions, Method, Request, Response, StatusCode, Uri};
use http_body::Body;
use http_body_util::BodyExt as _;
use tokio::sync::oneshot;
use tower_service::Service;

use crate::config::Shared;

/// What warming one request did, as [`CacheHandle::warm`](crate::CacheHandle::warm)
/// reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum WarmOutcome {
    /// The origin's response was stored.
    Stored,
    /// A stored entry that had to be validated was confirmed by the origin (`304`) and
    /// stored again, fresh.
    Revalidated,
    /// A fresh entry answered; the origin was not called.
    AlreadyFresh,
    /// Another request's origin call for the key (in this process, or another instance's
    /// under the key's lease) was in progress; this one waited for it and was answered from
    /// the entry it stored.
    Filled,
    /// A stale entry answered (`stale-while-revalidate`, or the origin failed and
    /// `stale-if-error` or the grace period allowed it); a background refresh may be under
    /// way.
    Stale,
    /// The origin answered, but the response was not stored: `reason` is the `Cache-Status`
    /// `detail` token (`status` for an error status, `no-store`, `private`, `too-large`…;
    /// see [`CacheLayerBuilder::cache_status_detail`](crate::CacheLayerBuilder::cache_status_detail)),
    /// or `incomplete` when the body stopped before its end (over `max_body`, broken, or
    /// with trailers).
    NotStored {
        /// Why, as a `Cache-Status` `detail` token.
        reason: &'static str,
    },
    /// The cache this handle belongs to did not handle the request: no such layer on the
    /// route, its predicate declined, or the method is not `GET`.
    Bypassed,
    /// The request failed: the service returned an error, the response body failed, or the
    /// store did not take the entry.
    Failed {
        /// What failed.
        error: String,
    },
}

impl WarmOutcome {
    /// Whether the key is now fresh in the store: stored, revalidated, already fresh or
    /// filled by another request.
    pub fn is_warm(&self) -> bool {
        matches!(
            self,
            WarmOutcome::Stored
                | WarmOutcome::Revalidated
                | WarmOutcome::AlreadyFresh
                | WarmOutcome::Filled
        )
    }
}

/// One warmed request: its URI, the response's status (none when the service failed) and
/// what the cache did.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct WarmResult {
    /// The request's URI.
    pub uri: Uri,
    /// The response's status, if the service answered.
    pub status: Option<StatusCode>,
    /// What the cache did.
    pub outcome: WarmOutcome,
}

/// What [`CacheHandle::warm`](crate::CacheHandle::warm) did, one result per request in the
/// order given. Its `Display` is a one-line summary for a log.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct WarmReport {
    /// The results, in the order of the requests.
    pub results: Vec<WarmResult>,
}

impl WarmReport {
    /// Whether every request left its key fresh in the store ([`WarmOutcome::is_warm`]).
    pub fn is_complete(&self) -> bool {
        self.results.iter().all(|result| result.outcome.is_warm())
    }

    /// How many results have an outcome `matching`.
    pub fn count(&self, matching: impl Fn(&WarmOutcome) -> bool) -> usize {
        self.results
            .iter()
            .filter(|result| matching(&result.outcome))
            .count()
    }
}

impl fmt::Display for WarmReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let count = |wanted: fn(&WarmOutcome) -> bool| self.count(wanted);
        write!(
            f,
            "{} requests: {} stored, {} revalidated, {} already fresh, {} filled by another call, {} stale, {} not stored, {} bypassed, {} failed",
            self.results.len(),
            count(|o| *o == WarmOutcome::Stored),
            count(|o| *o == WarmOutcome::Revalidated),
            count(|o| *o == WarmOutcome::AlreadyFresh),
            count(|o| *o == WarmOutcome::Filled),
            count(|o| *o == WarmOutcome::Stale),
            count(|o| matches!(o, WarmOutcome::NotStored { .. })),
            count(|o| *o == WarmOutcome::Bypassed),
            count(|o| matches!(o, WarmOutcome::Failed { .. })),
        )
    }
}

/// How long warming waits for the store to take an entry once its body is complete; the
/// store's own timeout normally ends the wait much sooner.
const STORE_WAIT: Duration = Duration::from_secs(30);

/// Warms `requests` through `service`, at most `concurrency` at a time (see
/// [`CacheHandle::warm`](crate::CacheHandle::warm)).
pub(crate) async fn warm<S, ReqBody, ResBody>(
    shared: &Arc<Shared>,
    service: &S,
    requests: impl IntoIterator<Item = Request<ReqBody>>,
    concurrency: usize,
) -> WarmReport
where
    S: Service<Request<ReqBody>, Response = Response<ResBody>> + Clone,
    S::Error: fmt::Display,
    ResBody: Body,
{
    let limit = concurrency.max(1);
    let mut requests = requests.into_iter();
    let mut running = FuturesOrdered::new();
    let mut results = Vec::new();
    loop {
        while running.len() < limit {
            let Some(request) = requests.next() else {
                break;
            };
            running.push_back(warm_one(shared.clone(), service.clone(), request));
        }
        match running.next().await {
            Some(result) => results.push(result),
            None => break,
        }
    }
    WarmReport { results }
}

async fn warm_one<S, ReqBody, ResBody>(
    shared: Arc<Shared>,
    mut service: S,
    request: Request<ReqBody>,
) -> WarmResult
where
    S: Service<Request<ReqBody>, Response = Response<ResBody>>,
    S::Error: fmt::Display,
    ResBody: Body,
{
    let (mut parts, body) = request.into_parts();
    let uri = parts.uri.clone();
    let failed = |status, error: String| WarmResult {
        uri: uri.clone(),
        status,
        outcome: WarmOutcome::Failed { error },
    };
    if parts.method != Method::GET {
        return WarmResult {
            uri: uri.clone(),
            status: None,
            outcome: WarmOutcome::Bypassed,
        };
    }
    // Warmed entries are for everyone: a request with credentials would only store what
    // may be shared anyway, and could store one user's response under everyone's key where
    // the origin marks it public by mistake.
    for name in [AUTHORIZATION, PROXY_AUTHORIZATION, COOKIE] {
        parts.headers.remove(name);
    }
    let probe = Probe::new(&shared);
    parts.extensions.insert(probe.clone());
    if let Err(error) = poll_fn(|cx| service.poll_ready(cx)).await {
        return failed(None, error.to_string());
    }
    let response = match service.call(Request::from_parts(parts, body)).await {
        Ok(response) => response,
        Err(error) => return failed(None, error.to_string()),
    };
    let status = response.status();
    // Drain the body, keeping nothing: the cache records it as it streams and stores it at
    // its end.
    let mut body = std::pin::pin!(response.into_body());
    while let Some(frame) = body.frame().await {
        if frame.is_err() {
            return failed(Some(status), "response body failed".to_owned());
        }
    }
    WarmResult {
        uri,
        status: Some(status),
        outcome: probe.outcome().await,
    }
}

/// Carried in a warm request's extensions: what the cache whose state is `owner` did with
/// it.
#[derive(Clone)]
pub(crate) struct Probe(Arc<ProbeState>);

struct ProbeState {
    /// The address of the warming handle's [`Shared`]: only its own cache answers.
    owner: usize,
    seen: Mutex<Seen>,
}

enum Seen {
    Nothing,
    Done(WarmOutcome),
    /// The response is being stored; the store's answer comes on the receiver (dropped
    /// unsent when the body stopped before its end).
    Storing(oneshot::Receiver<bool>),
}

impl Probe {
    fn new(shared: &Arc<Shared>) -> Self {
        Probe(Arc::new(ProbeState {
            owner: Arc::as_ptr(shared) as usize,
            seen: Mutex::new(Seen::Nothing),
        }))
    }

    fn set(&self, seen: Seen) {
        *self.0.seen.lock().unwrap_or_else(PoisonError::into_inner) = seen;
    }

    async fn outcome(&self) -> WarmOutcome {
        let seen = std::mem::replace(
            &mut *self.0.seen.lock().unwrap_or_else(PoisonError::into_inner),
            Seen::Nothing,
        );
        match seen {
            Seen::Nothing => WarmOutcome::Bypassed,
            Seen::Done(outcome) => outcome,
            Seen::Storing(stored) => match tokio::time::timeout(STORE_WAIT, stored).await {
                Ok(Ok(true)) => WarmOutcome::Stored,
                Ok(Ok(false)) => WarmOutcome::Failed {
                    error: "the store did not take the entry".to_owned(),
                },
                Ok(Err(_)) => WarmOutcome::NotStored {
                    reason: "incomplete",
                },
                Err(_) => WarmOutcome::Failed {
                    error: "the store write did not finish".to_owned(),
                },
            },
        }
    }
}

impl fmt::Debug for Probe {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Probe").finish_non_exhaustive()
    }
}

/// The probe of a warm request, if it has one from `shared`'s handle.
pub(crate) fn probe(extensions: &Extensions, shared: &Arc<Shared>) -> Option<Probe> {
    extensions
        .get::<Probe>()
        .filter(|probe| probe.0.owner == Arc::as_ptr(shared) as usize)
        .cloned()
}

/// Tells a warm request's probe, if any, what the cache did.
pub(crate) fn seen(extensions: &Extensions, shared: &Arc<Shared>, outcome: WarmOutcome) {
    if let Some(probe) = probe(extensions, shared) {
        probe.set(Seen::Done(outcome));
    }
}

impl Probe {
    /// Tells the probe what the cache did.
    pub(crate) fn done(&self, outcome: WarmOutcome) {
        self.set(Seen::Done(outcome));
    }

    /// Tells the probe its response is being stored; the sender says whether the store
    /// took it (see [`put`](crate::record::put)).
    pub(crate) fn storing(&self) -> oneshot::Sender<bool> {
        let (sender, receiver) = oneshot::channel();
        self.set(Seen::Storing(receiver));
        sender
    }
}
