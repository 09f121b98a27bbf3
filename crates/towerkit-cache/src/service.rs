//! [`Cache`]: the service. `call` reads the request, looks its key up and sends it on its
//! way: a hit to [`lookup`](crate::lookup), a miss to [`miss`](crate::miss), an unsafe
//! method to [`invalidate`](crate::invalidate).

use std::sync::Arc;
use std::task::{Context, Poll};

use http::{Method, Request, Response};
use http_body::Body;
use tower_service::Service;
use tracing::Instrument;

use crate::body::CacheBody;
use crate::config::Config;
use crate::control::RequestDirectives;
use crate::freshness::{has_credentials, now_ms};
use crate::future::ResponseFuture;
use crate::invalidate::{is_safe, unsafe_method};
use crate::key::primary_key;
use crate::lookup::{Decision, answer, decide};
use crate::metrics::Outcome;
use crate::miss::{CacheRequest, forward, lookup_then_forward};
use crate::store::Tier;

/// The service made by [`CacheLayer`](crate::CacheLayer): answers from the store when it
/// can, forwards to `S` when it must, and stores what `S` returns when the RFC and the
/// configuration allow.
#[derive(Debug, Clone)]
pub struct Cache<S> {
    pub(crate) inner: S,
    // One reference to clone per request (services are cloned per request by most servers).
    pub(crate) config: Arc<Config>,
}

impl<S> Cache<S> {
    towerkit_http::inner_accessors!(S);
}

impl<S, ReqBody, ResBody> Service<Request<ReqBody>> for Cache<S>
where
    S: Service<Request<ReqBody>, Response = Response<ResBody>> + Clone + Send + 'static,
    S::Future: Send + 'static,
    S::Error: Send + 'static,
    ReqBody: Default + Send + 'static,
    ResBody: Body + Send + 'static,
{
    type Response = Response<CacheBody<ResBody>>;
    type Error = S::Error;
    type Future = ResponseFuture<S::Future, ResBody, S::Error>;

    #[inline]
    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: Request<ReqBody>) -> Self::Future {
        let (parts, body) = request.into_parts();

        if !is_safe(&parts.method) {
            self.config.shared.count(Outcome::Bypass, None);
            let config = self.config.clone();
            let inner = self.take_ready();
            return ResponseFuture::boxed(Box::pin(unsafe_method(inner, config, parts, body)));
        }
        let directives = if RequestDirectives::present(&parts.headers) {
            RequestDirectives::parse(&parts.headers)
        } else {
            RequestDirectives::default()
        };
        let config = &self.config;
        let bypass = !(parts.method == Method::GET || parts.method == Method::HEAD)
            || directives.no_store
            || config
                .predicate
                .as_ref()
                .is_some_and(|predicate| !predicate.should_cache(&parts));
        if bypass {
            config.shared.count(Outcome::Bypass, None);
            let config = config.clone();
            let future = self.inner.call(Request::from_parts(parts, body));
            return ResponseFuture::bypass(future, config);
        }

        let key = primary_key(&parts, &config.key);
        // The decision below and, on a miss, the origin call run in the request's
        // `cache.lookup` span (`trace.rs`).
        let span = crate::trace::lookup(&key);
        let _entered = span.enter();
        let authorized = has_credentials(&parts.headers);
        match config.shared.store.get(&key).now() {
            Ok(result) => {
                let found = result.unwrap_or_else(|error| {
                    tracing::debug!(%error, "cache lookup failed");
                    None
                });
                let now = now_ms();
                match decide(
                    found,
                    &parts.headers,
                    &directives,
                    authorized,
                    now,
                    Tier::L1,
                ) {
                    Decision::Serve(found) => {
                        let inner = || self.inner.clone();
                        let response = answer(config, inner, &key, &parts, found, now, false);
                        ResponseFuture::ready(response)
                    }
                    Decision::Forward { stored, fwd, tier } => {
                        let request = CacheRequest::new(
                            config,
                            key.into_owned(),
                            &parts,
                            directives,
                            authorized,
                        );
                        let inner = self.take_ready();
                        let future = forward(inner, request, parts, body, stored, fwd, tier);
                        ResponseFuture::boxed(Box::pin(future.instrument(span.clone())))
                    }
                }
            }
            Err(pending) => {
                let request =
                    CacheRequest::new(config, key.into_owned(), &parts, directives, authorized);
                let inner = self.take_ready();
                let future = lookup_then_forward(inner, request, parts, body, pending);
                ResponseFuture::boxed(Box::pin(future.instrument(span.clone())))
            }
        }
    }
}

impl<S> Cache<S> {
    /// The inner service, ready (`poll_ready` returned `Ready` on it), swapped for a clone.
    fn take_ready(&mut self) -> S
    where
        S: Clone,
    {
        let clone = self.inner.clone();
        std::mem::replace(&mut self.inner, clone)
    }
}
