//! Background refresh (`stale-while-revalidate`, RFC 5861): a hit on an entry within its
//! `stale-while-revalidate` window is answered stale, and one request per key refreshes the
//! entry from the origin in the background (conditionally when it has validators).

use std::sync::Arc;
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use http::header::RANGE;
use http::{Method, Request, Response, StatusCode, request};
use http_body::Body;
use http_body_util::BodyExt;
use tower_service::Service;
use tracing::Instrument;

use crate::collapse::LeaseGuard;
use crate::config::Config;
use crate::entry::{Entry, Exchange, add_validators, prepare};
use crate::flight::FlightGuard;
use crate::freshness::now_ms;
use crate::metrics::{self, LeaseEvent};
use crate::record::put;
use crate::store::{Claim, LeaseEnd};

/// A `stale-while-revalidate` refresh, run once per key in the background: `guard` holds
/// the key's flight, so that no other request of this process starts one meanwhile, and
/// the key's lease (when the store is shared) keeps other instances from refreshing it too.
pub(crate) struct Refresh {
    pub(crate) config: Arc<Config>,
    pub(crate) key: String,
    pub(crate) parts: request::Parts,
    pub(crate) entry: Arc<Entry>,
    pub(crate) default_ttl: Option<Duration>,
    pub(crate) guard: FlightGuard,
}

impl Refresh {
    /// Runs the refresh on a spawned task with `inner`; nothing happens outside a Tokio
    /// runtime.
    pub(crate) fn spawn<S, ReqBody, ResBody>(self, inner: S)
    where
        S: Service<Request<ReqBody>, Response = Response<ResBody>> + Clone + Send + 'static,
        S::Future: Send + 'static,
        ReqBody: Default + Send + 'static,
        ResBody: Body + Send + 'static,
    {
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            return;
        };
        // The refresh outlives the request that started it: its own trace root, linked.
        let span = crate::trace::refresh(&self.key);
        runtime.spawn(self.run(inner).instrument(span));
    }

    async fn run<S, ReqBody, ResBody>(self, mut inner: S)
    where
        S: Service<Request<ReqBody>, Response = Response<ResBody>> + Clone + Send + 'static,
        S::Future: Send + 'static,
        ReqBody: Default + Send + 'static,
        ResBody: Body + Send + 'static,
    {
        let Refresh {
            config,
            key,
            mut parts,
            entry,
            default_ttl,
            guard,
        } = self;
        // One refresh across instances too: skip it while another instance holds the key's
        // lease (it is refreshing) or the key is hit-for-miss.
        let lease = match config.leases() {
            Some(leases) => match leases
                .claim(&key, config.lease_ttl)
                .within(config.store_timeout)
                .await
            {
                Ok(Claim::Lead(token)) => {
                    metrics::lease(LeaseEvent::Acquired);
                    Some(LeaseGuard::new(
                        &config,
                        leases.clone(),
                        &key,
                        token,
                        guard.until(),
                    ))
                }
                Ok(Claim::Held | Claim::Pass) => return,
                Err(error) => {
                    tracing::debug!(%error, "cache lease claim failed; refreshing anyway");
                    metrics::lease(LeaseEvent::Unavailable);
                    None
                }
            },
            None => None,
        };
        // A request that saw the old entry may start its refresh just after another refresh
        // (here, or on another instance) stored a newer one: then there is nothing to do.
        if refreshed_since(&config, &key, &entry).await {
            if let Some(lease) = lease {
                lease.settle(LeaseEnd::Filled);
            }
            return;
        }
        let request_headers = parts.headers.clone();
        let path = crate::key::target_uri(&parts).path().to_owned();
        parts.method = Method::GET;
        parts.headers.remove(RANGE);
        let revalidating = add_validators(&mut parts.headers, &entry);
        if std::future::poll_fn(|cx| inner.poll_ready(cx))
            .await
            .is_err()
        {
            return;
        }
        let request_time = now_ms();
        let Ok(response) = inner
            .call(Request::from_parts(parts, ReqBody::default()))
            .await
        else {
            return;
        };
        let exchange = Exchange {
            request: &request_headers,
            path: &path,
            request_time,
            response_time: now_ms(),
            policy: &config.policy,
            default_ttl,
        };
        let store = config.shared.store.clone();
        if response.status() == StatusCode::NOT_MODIFIED && revalidating {
            if let Ok(updated) = entry.freshen(response.headers(), &exchange) {
                put(
                    store,
                    key,
                    Arc::new(updated),
                    (Some(guard), lease),
                    config.store_timeout,
                    None,
                );
            }
            return;
        }
        let (head, body) = response.into_parts();
        let prepared = match prepare(head.status, &head.headers, &exchange) {
            Ok(prepared) => prepared,
            Err(reason) => {
                tracing::debug!(
                    key,
                    reason = reason.as_str(),
                    "refreshed response not stored"
                );
                metrics::not_stored(reason);
                if let Some(lease) = lease {
                    lease.settle(LeaseEnd::NotStorable);
                }
                return;
            }
        };
        let Some(body) = collect_limited(body, config.max_body).await else {
            return;
        };
        put(
            store,
            key,
            Arc::new(prepared.finish(body)),
            (Some(guard), lease),
            config.store_timeout,
            None,
        );
    }
}

/// Whether the store holds a variant of `key` received after `entry`; a lookup that fails
/// or times out says no (the refresh goes ahead).
async fn refreshed_since(config: &Config, key: &str, entry: &Entry) -> bool {
    let found = match config.shared.store.get(key).now() {
        Ok(result) => result.ok().flatten(),
        Err(pending) => pending.within(config.store_timeout).await.ok().flatten(),
    };
    found.is_some_and(|lookup| {
        lookup
            .variants
            .iter()
            .any(|stored| stored.meta.response_time > entry.meta.response_time)
    })
}

/// Reads a whole body of at most `limit` bytes; `None` if larger, broken or with trailers.
async fn collect_limited<B: Body>(body: B, limit: usize) -> Option<Bytes> {
    let mut body = std::pin::pin!(body);
    let mut out = BytesMut::new();
    while let Some(frame) = body.frame().await {
        let mut data = frame.ok()?.into_data().ok()?;
        while bytes::Buf::has_remaining(&data) {
            let chunk = bytes::Buf::chunk(&data);
            if out.len() + chunk.len() > limit {
                return None;
            }
            out.extend_from_slice(chunk);
            let len = chunk.len();
            bytes::Buf::advance(&mut data, len);
        }
    }
    Some(out.freeze())
}
