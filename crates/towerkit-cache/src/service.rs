//! [`Cache`]: the service, and the paths a request takes through it.

use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use http::header::{
    CONTENT_LENGTH, CONTENT_LOCATION, ETAG, IF_MODIFIED_SINCE, IF_NONE_MATCH, LAST_MODIFIED,
    LOCATION, RANGE,
};
use http::{
    HeaderMap, HeaderName, HeaderValue, Method, Request, Response, StatusCode, Uri, request,
};
use http_body::Body;
use http_body_util::BodyExt;
use tower_service::Service;

use crate::body::{CacheBody, Commit, Recorder, put};
use crate::control::RequestDirectives;
use crate::entry::{Entry, prepare};
use crate::flight::{FlightGuard, Join};
use crate::freshness::now_ms;
use crate::future::{ResponseFuture, forwarded, strip_private_headers};
use crate::key::{host_bytes, key_for, primary_key};
use crate::layer::{CacheLayer, Config, Shared};
use crate::metrics::{self, Outcome};
use crate::serve::{self, Status, Usable};
use crate::store::{Lookup, StoreError, StoreFuture, Tier};

/// The service made by [`CacheLayer`]: answers from the store when it can, forwards to
/// `S` when it must, and stores what `S` returns when the RFC and the configuration allow.
#[derive(Debug, Clone)]
pub struct Cache<S> {
    pub(crate) inner: S,
    // One reference to clone per request (services are cloned per request by most servers).
    pub(crate) layer: Arc<CacheLayer>,
}

impl<S> Cache<S> {
    /// Wraps `inner` with `layer`'s store and configuration.
    pub fn new(inner: S, layer: &CacheLayer) -> Self {
        Self {
            inner,
            layer: Arc::new(layer.clone()),
        }
    }

    /// A reference to the inner service.
    pub fn get_ref(&self) -> &S {
        &self.inner
    }

    /// A mutable reference to the inner service.
    pub fn get_mut(&mut self) -> &mut S {
        &mut self.inner
    }

    /// The inner service.
    pub fn into_inner(self) -> S {
        self.inner
    }
}

/// Methods that never change state (RFC 9110 §9.2.1): they do not invalidate.
fn is_safe(method: &Method) -> bool {
    matches!(
        *method,
        Method::GET | Method::HEAD | Method::OPTIONS | Method::TRACE
    ) || matches!(method.as_str(), "PROPFIND" | "SEARCH" | "REPORT")
}

/// What to do with a request given what the store had.
enum Decision {
    Serve {
        entry: Arc<Entry>,
        usable: Usable,
        tier: Tier,
    },
    Forward {
        stored: Option<Arc<Entry>>,
        fwd: &'static str,
        tier: &'static str,
    },
}

fn decide(
    found: Option<Lookup>,
    headers: &HeaderMap,
    directives: &RequestDirectives,
    authorized: bool,
    now: u64,
    default_tier: &'static str,
) -> Decision {
    let Some(lookup) = found else {
        return Decision::Forward {
            stored: None,
            fwd: "miss",
            tier: default_tier,
        };
    };
    let Some(entry) = serve::select(&lookup.variants, headers, authorized, now) else {
        // Live variants that do not match are a vary-miss; only dead ones, a plain miss.
        let alive = lookup.variants.iter().any(|entry| entry.alive_at(now));
        return Decision::Forward {
            stored: None,
            fwd: if alive { "vary-miss" } else { "miss" },
            tier: lookup.tier.as_str(),
        };
    };
    match serve::usability(&entry.meta, now, directives) {
        Usable::Validate => {
            let fwd = if directives.no_cache
                || directives.max_age.is_some()
                || directives.min_fresh.is_some()
            {
                "request"
            } else {
                "stale"
            };
            Decision::Forward {
                stored: Some(entry.clone()),
                fwd,
                tier: lookup.tier.as_str(),
            }
        }
        usable => Decision::Serve {
            entry: entry.clone(),
            usable,
            tier: lookup.tier,
        },
    }
}

/// Everything the miss path needs, owned.
struct Ctx {
    shared: Arc<Shared>,
    config: Arc<Config>,
    key: String,
    path: String,
    method: Method,
    headers: HeaderMap,
    directives: RequestDirectives,
    authorized: bool,
    default_ttl: Option<Duration>,
    coalescable: bool,
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
            self.layer.shared.count(Outcome::Bypass, "none");
            let (shared, config) = (self.layer.shared.clone(), self.layer.config.clone());
            let inner = self.take_ready();
            return ResponseFuture::boxed(Box::pin(unsafe_method(
                inner, shared, config, parts, body,
            )));
        }
        let directives = if RequestDirectives::present(&parts.headers) {
            RequestDirectives::parse(&parts.headers)
        } else {
            RequestDirectives::default()
        };
        let config = &self.layer.config;
        let bypass = !(parts.method == Method::GET || parts.method == Method::HEAD)
            || directives.no_store
            || config
                .predicate
                .as_ref()
                .is_some_and(|predicate| !predicate.should_cache(&parts));
        if bypass {
            self.layer.shared.count(Outcome::Bypass, "none");
            let config = config.clone();
            let future = self.inner.call(Request::from_parts(parts, body));
            return ResponseFuture::bypass(future, config);
        }

        let key = primary_key(&parts, &config.key);
        let authorized = crate::freshness::has_credentials(&parts.headers);
        let lookup = self.layer.shared.store.get(&key).now();
        match lookup {
            Ok(result) => {
                let found = result.unwrap_or_else(|error| {
                    tracing::debug!(%error, "cache lookup failed");
                    None
                });
                let now = now_ms();
                match decide(found, &parts.headers, &directives, authorized, now, "l1") {
                    Decision::Serve {
                        entry,
                        usable,
                        tier,
                    } => {
                        let layer = &self.layer;
                        let inner = || self.inner.clone();
                        let response = answer(
                            &layer.shared,
                            &layer.config,
                            inner,
                            &key,
                            &parts,
                            &entry,
                            (usable, tier),
                            now,
                            false,
                        );
                        ResponseFuture::ready(response)
                    }
                    Decision::Forward { stored, fwd, tier } => {
                        let ctx = self.ctx(key.into_owned(), &parts, directives, authorized);
                        let inner = self.take_ready();
                        ResponseFuture::boxed(Box::pin(forward(
                            inner, ctx, parts, body, stored, fwd, tier,
                        )))
                    }
                }
            }
            Err(pending) => {
                let ctx = self.ctx(key.into_owned(), &parts, directives, authorized);
                let inner = self.take_ready();
                ResponseFuture::boxed(Box::pin(lookup_then_forward(
                    inner, ctx, parts, body, pending,
                )))
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

    fn ctx(
        &self,
        key: String,
        parts: &request::Parts,
        directives: RequestDirectives,
        authorized: bool,
    ) -> Ctx {
        let config = &self.layer.config;
        let headers = &parts.headers;
        let conditional =
            headers.contains_key(IF_NONE_MATCH) || headers.contains_key(IF_MODIFIED_SINCE);
        Ctx {
            shared: self.layer.shared.clone(),
            config: config.clone(),
            path: parts.uri.path().to_owned(),
            default_ttl: config.ttl_for(parts.uri.path()),
            key,
            method: parts.method.clone(),
            headers: headers.clone(),
            directives,
            authorized,
            coalescable: config.coalesce
                && parts.method == Method::GET
                && !authorized
                && !conditional
                && !headers.contains_key(RANGE)
                && !directives.no_cache
                && directives.max_age.is_none()
                && directives.min_fresh.is_none(),
        }
    }
}

/// Looks `key` up within the store timeout; a failure or timeout counts as a miss.
async fn lookup_timed(shared: &Shared, key: &str, timeout: Duration) -> Option<Lookup> {
    let pending = match shared.store.get(key).now() {
        Ok(result) => return result.ok().flatten(),
        Err(pending) => pending,
    };
    settle(pending, timeout).await.ok().flatten()
}

/// Waits for a store future at most `timeout`.
async fn settle<T>(pending: StoreFuture<T>, timeout: Duration) -> Result<T, StoreError> {
    match tokio::time::timeout(timeout, pending).await {
        Ok(result) => result,
        Err(_) => Err(StoreError::Timeout),
    }
}

/// The lookup did not finish at once (a remote store): wait for it, then decide.
async fn lookup_then_forward<S, ReqBody, ResBody>(
    inner: S,
    ctx: Ctx,
    parts: request::Parts,
    body: ReqBody,
    pending: StoreFuture<Option<Lookup>>,
) -> Result<Response<CacheBody<ResBody>>, S::Error>
where
    S: Service<Request<ReqBody>, Response = Response<ResBody>> + Clone + Send + 'static,
    S::Future: Send + 'static,
    ReqBody: Default + Send + 'static,
    ResBody: Body + Send + 'static,
{
    let found = match settle(pending, ctx.config.store_timeout).await {
        Ok(found) => found,
        Err(error) => {
            tracing::debug!(%error, "cache lookup failed");
            None
        }
    };
    let now = now_ms();
    match decide(
        found,
        &ctx.headers,
        &ctx.directives,
        ctx.authorized,
        now,
        "l2",
    ) {
        Decision::Serve {
            entry,
            usable,
            tier,
        } => Ok(answer(
            &ctx.shared,
            &ctx.config,
            move || inner,
            &ctx.key,
            &parts,
            &entry,
            (usable, tier),
            now,
            false,
        )),
        Decision::Forward { stored, fwd, tier } => {
            forward(inner, ctx, parts, body, stored, fwd, tier).await
        }
    }
}

/// Answers a request from a usable entry. A `stale-while-revalidate` answer also starts one
/// background refresh of the key, on the service `inner` gives.
#[allow(clippy::too_many_arguments)]
fn answer<S, ReqBody, ResBody>(
    shared: &Arc<Shared>,
    config: &Arc<Config>,
    inner: impl FnOnce() -> S,
    key: &str,
    parts: &request::Parts,
    entry: &Arc<Entry>,
    (usable, tier): (Usable, Tier),
    now: u64,
    coalesced: bool,
) -> Response<CacheBody<ResBody>>
where
    S: Service<Request<ReqBody>, Response = Response<ResBody>> + Clone + Send + 'static,
    S::Future: Send + 'static,
    ReqBody: Default + Send + 'static,
    ResBody: Body + Send + 'static,
{
    let status = match usable {
        Usable::Fresh => {
            shared.count(Outcome::Hit, tier.as_str());
            Status::Hit { coalesced }
        }
        Usable::StaleAccepted | Usable::StaleWhileRevalidate | Usable::Validate => {
            shared.count(Outcome::Stale, tier.as_str());
            Status::Stale
        }
    };
    if coalesced {
        shared
            .counters
            .coalesced
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        metrics::coalesced();
    }
    if usable == Usable::StaleWhileRevalidate
        && let Some(guard) = shared.flights.try_lead(key)
    {
        let refresh = Refresh {
            shared: shared.clone(),
            config: config.clone(),
            key: key.to_owned(),
            parts: parts.clone(),
            entry: entry.clone(),
            default_ttl: config.ttl_for(parts.uri.path()),
            guard,
        };
        refresh.spawn(inner());
    }
    serve::respond(
        entry,
        &parts.method,
        &parts.headers,
        now,
        status,
        &config.labels(),
    )
}

/// The miss path: coalesce, call the origin (conditionally when an entry can be
/// revalidated), then store, freshen, or fall back to a stale entry.
#[allow(clippy::too_many_arguments)]
async fn forward<S, ReqBody, ResBody>(
    mut inner: S,
    ctx: Ctx,
    mut parts: request::Parts,
    body: ReqBody,
    mut stored: Option<Arc<Entry>>,
    mut fwd: &'static str,
    tier: &'static str,
) -> Result<Response<CacheBody<ResBody>>, S::Error>
where
    S: Service<Request<ReqBody>, Response = Response<ResBody>> + Clone + Send + 'static,
    S::Future: Send + 'static,
    ReqBody: Default + Send + 'static,
    ResBody: Body + Send + 'static,
{
    let config = ctx.config.clone();
    let labels = config.labels();
    if ctx.directives.only_if_cached {
        ctx.shared.count(Outcome::Miss, tier);
        let mut response = Response::new(CacheBody::empty());
        *response.status_mut() = StatusCode::GATEWAY_TIMEOUT;
        serve::label(
            response.headers_mut(),
            &labels,
            Status::Forward {
                fwd,
                fwd_status: None,
                stored: false,
            },
            0,
        );
        return Ok(response);
    }

    let mut guard: Option<FlightGuard> = None;
    if ctx.coalescable {
        match ctx.shared.flights.join(&ctx.key) {
            Join::Lead(lead) => {
                guard = Some(lead);
                // A previous flight may have stored the key since this request looked.
                if stored.is_none() {
                    let found = lookup_timed(&ctx.shared, &ctx.key, config.store_timeout).await;
                    match decide(
                        found,
                        &ctx.headers,
                        &ctx.directives,
                        ctx.authorized,
                        now_ms(),
                        tier,
                    ) {
                        Decision::Serve {
                            entry,
                            usable,
                            tier,
                        } => {
                            drop(guard);
                            return Ok(answer(
                                &ctx.shared,
                                &ctx.config,
                                move || inner,
                                &ctx.key,
                                &parts,
                                &entry,
                                (usable, tier),
                                now_ms(),
                                false,
                            ));
                        }
                        Decision::Forward {
                            stored: again,
                            fwd: why,
                            ..
                        } => {
                            if again.is_some() {
                                stored = again;
                                fwd = why;
                            }
                        }
                    }
                }
            }
            Join::Follow(follower) => {
                follower.wait(config.coalesce_timeout).await;
                let found = lookup_timed(&ctx.shared, &ctx.key, config.store_timeout).await;
                let now = now_ms();
                if let Decision::Serve {
                    entry,
                    usable,
                    tier,
                } = decide(
                    found,
                    &ctx.headers,
                    &ctx.directives,
                    ctx.authorized,
                    now,
                    tier,
                ) {
                    return Ok(answer(
                        &ctx.shared,
                        &ctx.config,
                        move || inner,
                        &ctx.key,
                        &parts,
                        &entry,
                        (usable, tier),
                        now,
                        true,
                    ));
                }
                // Nothing stored (not storable, or another variant): go to the origin.
            }
        }
    }

    let revalidating = stored
        .as_ref()
        .is_some_and(|entry| add_validators(&mut parts.headers, entry));
    if let Some(token) = &config.policy.surrogate
        && let Ok(value) = HeaderValue::from_str(&format!("{token}=\"Surrogate/1.0\""))
    {
        parts.headers.append(SURROGATE_CAPABILITY, value);
    }
    let grace = config.policy.grace.as_millis() as u64;
    let request_time = now_ms();
    let fallback = stored
        .clone()
        .filter(|entry| serve::usable_on_error(&entry.meta, request_time, &ctx.directives, grace));
    let call = inner.call(Request::from_parts(parts, body));
    let result = match (config.origin_timeout, &fallback) {
        (Some(limit), Some(_)) => tokio::time::timeout(limit, call).await.ok(),
        _ => Some(call.await),
    };
    let response_time = now_ms();

    let response = match (result, fallback) {
        (Some(Ok(response)), fallback)
            if response.status().is_server_error() && fallback.is_some() =>
        {
            drop(response);
            return Ok(stale_on_error(&ctx, fallback, response_time));
        }
        (Some(Ok(response)), _) => response,
        (Some(Err(error)), None) => {
            ctx.shared.count(Outcome::Miss, tier);
            return Err(error);
        }
        (Some(Err(_)) | None, fallback) => {
            return Ok(stale_on_error(&ctx, fallback, response_time));
        }
    };
    ctx.shared.count(Outcome::Miss, tier);

    if response.status() == StatusCode::NOT_MODIFIED
        && revalidating
        && let Some(entry) = &stored
    {
        return Ok(freshened(
            &ctx,
            entry,
            response,
            request_time,
            response_time,
            fwd,
            guard,
        ));
    }

    let (mut head, body) = response.into_parts();
    let declared = head
        .headers
        .get(CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    let small_enough = declared.unwrap_or(body.size_hint().lower()) <= config.max_body as u64;
    let prepared = (ctx.method == Method::GET && small_enough)
        .then(|| {
            prepare(
                head.status,
                &head.headers,
                &ctx.headers,
                &ctx.path,
                request_time,
                response_time,
                &config.policy,
                ctx.default_ttl,
            )
            .ok()
        })
        .flatten();
    strip_private_headers(&mut head.headers, &config);
    serve::label(
        &mut head.headers,
        &labels,
        Status::Forward {
            fwd,
            fwd_status: None,
            stored: prepared.is_some(),
        },
        0,
    );
    let body = match prepared {
        Some(prepared) => {
            let commit = Commit {
                store: ctx.shared.store.clone(),
                key: ctx.key.clone(),
                prepared,
                guard: guard.take(),
                timeout: config.store_timeout,
            };
            if body.is_end_stream() {
                commit.store(Bytes::new());
                CacheBody::stream(body)
            } else {
                CacheBody::recording(body, Recorder::new(config.max_body, commit))
            }
        }
        None => CacheBody::stream(body),
    };
    Ok(Response::from_parts(head, body))
}

/// The `Surrogate-Capability` field name.
const SURROGATE_CAPABILITY: HeaderName = HeaderName::from_static("surrogate-capability");

/// Replaces the request's own validators with the stored entry's; `false` (and nothing
/// changed) when the entry has none.
fn add_validators(headers: &mut HeaderMap, entry: &Entry) -> bool {
    let etag = entry.headers.get(ETAG).cloned();
    let last_modified = entry.headers.get(LAST_MODIFIED).cloned();
    if etag.is_none() && last_modified.is_none() {
        return false;
    }
    headers.remove(IF_NONE_MATCH);
    headers.remove(IF_MODIFIED_SINCE);
    if let Some(etag) = etag {
        headers.insert(IF_NONE_MATCH, etag);
    }
    if let Some(last_modified) = last_modified {
        headers.insert(IF_MODIFIED_SINCE, last_modified);
    }
    true
}

/// Serves the stale entry because the origin failed.
fn stale_on_error<B>(ctx: &Ctx, fallback: Option<Arc<Entry>>, now: u64) -> Response<CacheBody<B>> {
    ctx.shared.count(Outcome::Stale, "none");
    match fallback {
        Some(entry) => serve::respond(
            &entry,
            &ctx.method,
            &ctx.headers,
            now,
            Status::Stale,
            &ctx.config.labels(),
        ),
        // Only reached with a fallback; an empty 504 keeps the path total.
        None => {
            let mut response = Response::new(CacheBody::empty());
            *response.status_mut() = StatusCode::GATEWAY_TIMEOUT;
            response
        }
    }
}

/// The origin confirmed a stored entry with `304`: update it (RFC 9111 §4.3.4), store it
/// and answer from it.
fn freshened<B, R>(
    ctx: &Ctx,
    entry: &Entry,
    response: Response<R>,
    request_time: u64,
    response_time: u64,
    fwd: &'static str,
    guard: Option<FlightGuard>,
) -> Response<CacheBody<B>> {
    let config = &ctx.config;
    let updated = entry.freshen(
        response.headers(),
        &ctx.headers,
        &ctx.path,
        request_time,
        response_time,
        &config.policy,
        ctx.default_ttl,
    );
    let (entry, stored) = match updated {
        Ok(updated) => {
            let updated = Arc::new(updated);
            put(
                ctx.shared.store.clone(),
                ctx.key.clone(),
                updated.clone(),
                guard,
                config.store_timeout,
            );
            (updated, true)
        }
        Err(merged) => {
            // The update made it unstorable: answer this request from it, keep nothing.
            drop(ctx.shared.store.delete(&ctx.key).now());
            (Arc::from(merged), false)
        }
    };
    let status = Status::Forward {
        fwd,
        fwd_status: Some(304),
        stored,
    };
    serve::respond(
        &entry,
        &ctx.method,
        &ctx.headers,
        response_time,
        status,
        &config.labels(),
    )
}

/// A `stale-while-revalidate` refresh, run once per key in the background.
struct Refresh {
    shared: Arc<Shared>,
    config: Arc<Config>,
    key: String,
    parts: request::Parts,
    entry: Arc<Entry>,
    default_ttl: Option<Duration>,
    guard: FlightGuard,
}

impl Refresh {
    fn spawn<S, ReqBody, ResBody>(self, inner: S)
    where
        S: Service<Request<ReqBody>, Response = Response<ResBody>> + Clone + Send + 'static,
        S::Future: Send + 'static,
        ReqBody: Default + Send + 'static,
        ResBody: Body + Send + 'static,
    {
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            return;
        };
        runtime.spawn(self.run(inner));
    }

    async fn run<S, ReqBody, ResBody>(self, mut inner: S)
    where
        S: Service<Request<ReqBody>, Response = Response<ResBody>> + Clone + Send + 'static,
        S::Future: Send + 'static,
        ReqBody: Default + Send + 'static,
        ResBody: Body + Send + 'static,
    {
        let Refresh {
            shared,
            config,
            key,
            mut parts,
            entry,
            default_ttl,
            guard,
        } = self;
        let request_headers = parts.headers.clone();
        let path = parts.uri.path().to_owned();
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
        let response_time = now_ms();
        if response.status() == StatusCode::NOT_MODIFIED && revalidating {
            if let Ok(updated) = entry.freshen(
                response.headers(),
                &request_headers,
                &path,
                request_time,
                response_time,
                &config.policy,
                default_ttl,
            ) {
                put(
                    shared.store.clone(),
                    key,
                    Arc::new(updated),
                    Some(guard),
                    config.store_timeout,
                );
            }
            return;
        }
        let (head, body) = response.into_parts();
        let Ok(prepared) = prepare(
            head.status,
            &head.headers,
            &request_headers,
            &path,
            request_time,
            response_time,
            &config.policy,
            default_ttl,
        ) else {
            return;
        };
        let Some(body) = collect_limited(body, config.max_body).await else {
            return;
        };
        put(
            shared.store.clone(),
            key,
            Arc::new(prepared.finish(body)),
            Some(guard),
            config.store_timeout,
        );
    }
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

/// An unsafe method: forward it, and when it succeeds invalidate the target URI and the
/// same-origin `Location` and `Content-Location` (RFC 9111 §4.4).
async fn unsafe_method<S, ReqBody, ResBody>(
    mut inner: S,
    shared: Arc<Shared>,
    config: Arc<Config>,
    parts: request::Parts,
    body: ReqBody,
) -> Result<Response<CacheBody<ResBody>>, S::Error>
where
    S: Service<Request<ReqBody>, Response = Response<ResBody>>,
{
    let target = primary_key(&parts, &config.key).into_owned();
    let uri = parts.uri.clone();
    let host: Option<Vec<u8>> = host_bytes(&parts).map(<[u8]>::to_vec);
    let host_text = host
        .as_deref()
        .and_then(|host| std::str::from_utf8(host).ok())
        .map(str::to_owned);
    let headers = parts.headers.clone();
    let response = inner.call(Request::from_parts(parts, body)).await?;
    let status = response.status();
    if status.is_success() || status.is_redirection() {
        let mut keys = vec![target];
        for name in [LOCATION, CONTENT_LOCATION] {
            for value in response.headers().get_all(name) {
                if let Some(path_and_query) = same_origin_target(value, &uri, host_text.as_deref())
                {
                    keys.push(key_for(
                        &path_and_query,
                        &headers,
                        host.as_deref(),
                        &config.key,
                    ));
                }
            }
        }
        keys.dedup();
        for key in keys {
            match shared.store.delete(&key).now() {
                Ok(_) => {}
                Err(pending) => {
                    if let Err(error) = settle(pending, config.store_timeout).await {
                        tracing::debug!(%error, "cache invalidation failed");
                    }
                }
            }
        }
    }
    Ok(forwarded(
        response,
        &config,
        Status::Forward {
            fwd: "method",
            fwd_status: None,
            stored: false,
        },
    ))
}

/// The path and query a `Location`/`Content-Location` value names, if on the request's
/// origin: absolute URIs must name the same host; references resolve against the request.
pub(crate) fn same_origin_target(
    value: &HeaderValue,
    base: &Uri,
    host: Option<&str>,
) -> Option<String> {
    let text = value.to_str().ok()?.trim();
    let text = text.split('#').next().unwrap_or_default();
    if text.is_empty() {
        return base.path_and_query().map(|pq| pq.as_str().to_owned());
    }
    if let Ok(uri) = text.parse::<Uri>()
        && uri.scheme().is_some()
    {
        let same = uri
            .authority()
            .zip(host)
            .is_some_and(|(authority, host)| host.eq_ignore_ascii_case(authority.as_str()));
        return same.then(|| {
            uri.path_and_query()
                .map_or("/", |pq| pq.as_str())
                .to_owned()
        });
    }
    if text.starts_with("//") {
        return None;
    }
    if text.starts_with('/') {
        return Some(text.to_owned());
    }
    if text.contains(':')
        && text
            .split(':')
            .next()
            .is_some_and(|scheme| !scheme.contains('/'))
    {
        // Some other scheme (`mailto:`): not ours.
        return None;
    }
    let base_path = base.path();
    let directory = &base_path[..base_path.rfind('/').map_or(0, |i| i + 1)];
    let directory = if directory.is_empty() { "/" } else { directory };
    Some(format!("{directory}{text}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn location_targets_resolve_on_the_same_origin_only() {
        let base: Uri = "/test/abc".parse().unwrap();
        let target = |value: &str| {
            same_origin_target(
                &HeaderValue::from_str(value).unwrap(),
                &base,
                Some("example.com"),
            )
        };
        assert_eq!(
            target("/test/abc/location_target").as_deref(),
            Some("/test/abc/location_target")
        );
        assert_eq!(target("other").as_deref(), Some("/test/other"));
        assert_eq!(
            target("http://example.com/x?y=1").as_deref(),
            Some("/x?y=1")
        );
        assert_eq!(target("http://evil.example/x"), None);
        assert_eq!(target("//evil.example/x"), None);
        assert_eq!(target("").as_deref(), Some("/test/abc"));
    }

    #[test]
    fn safe_methods_do_not_invalidate() {
        for method in [Method::GET, Method::HEAD, Method::OPTIONS, Method::TRACE] {
            assert!(is_safe(&method));
        }
        for method in [
            Method::POST,
            Method::PUT,
            Method::PATCH,
            Method::DELETE,
            Method::from_bytes(b"M-SEARCH").unwrap(),
        ] {
            assert!(!is_safe(&method));
        }
    }
}
