//! The miss path: a request no stored entry answers goes to the origin, coalesced with
//! concurrent misses for its key, conditionally when a stored entry can be revalidated. Then
//! the response is stored as it streams, a `304` freshens the stored entry, or a failing
//! origin is answered with a stale entry (`stale-if-error`, grace).

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::header::{CONTENT_LENGTH, IF_MODIFIED_SINCE, IF_NONE_MATCH, RANGE};
use http::{HeaderMap, HeaderName, HeaderValue, Method, Request, Response, StatusCode, request};
use http_body::Body;
use tokio::time::Instant;
use tower_service::Service;

use crate::body::CacheBody;
use crate::collapse::{Cross, LeaseGuard, claim_or_wait};
use crate::config::Config;
use crate::control::RequestDirectives;
use crate::entry::{Entry, Exchange, Prepared, add_validators, prepare};
use crate::flight::{FlightGuard, Join, Waited};
use crate::freshness::{NotStorable, now_ms};
use crate::key::target_uri;
use crate::lookup::{Decision, answer, decide, usable_on_error};
use crate::metrics::{self, LeaseEvent, Outcome};
use crate::record::{Commit, Recorder, put};
use crate::respond::{respond, strip_private_headers};
use crate::status::{Fwd, Status, label};
use crate::store::{LeaseEnd, Lookup, StoreFuture, Tier};
use crate::warm::{Probe, WarmOutcome};

/// What the cache knows of a request, owned, for the paths that wait (a remote lookup, the
/// origin, another request's origin call).
pub(crate) struct CacheRequest {
    config: Arc<Config>,
    key: String,
    path: String,
    method: Method,
    headers: HeaderMap,
    directives: RequestDirectives,
    authorized: bool,
    default_ttl: Option<Duration>,
    /// Whether the request may wait for another request's origin call for its key.
    coalescable: bool,
    /// A warm request's probe, told what the cache did.
    probe: Option<Probe>,
}

impl CacheRequest {
    /// What the miss path needs of a request under `key`, read once from its head.
    pub(crate) fn new(
        config: &Arc<Config>,
        key: String,
        parts: &request::Parts,
        directives: RequestDirectives,
        authorized: bool,
    ) -> Self {
        let headers = &parts.headers;
        let conditional =
            headers.contains_key(IF_NONE_MATCH) || headers.contains_key(IF_MODIFIED_SINCE);
        let path = target_uri(parts).path();
        CacheRequest {
            config: config.clone(),
            path: path.to_owned(),
            default_ttl: config.ttl_for(path),
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
            probe: crate::warm::probe(&parts.extensions, &config.shared),
        }
    }

    /// The exchange with the origin this request made, sent at `request_time` and answered
    /// at `response_time`, as storage judges it.
    fn exchange(&self, request_time: u64, response_time: u64) -> Exchange<'_> {
        Exchange {
            request: &self.headers,
            path: &self.path,
            request_time,
            response_time,
            policy: &self.config.policy,
            default_ttl: self.default_ttl,
        }
    }

    /// What `found` (looked up at `now` in `tier`) answers for this request.
    fn decide(&self, found: Option<Lookup>, now: u64, tier: Tier) -> Decision {
        decide(
            found,
            &self.headers,
            &self.directives,
            self.authorized,
            now,
            tier,
        )
    }

    /// Looks the key up again, within the store timeout; a failure or timeout counts as a
    /// miss.
    async fn look_again(&self) -> Option<Lookup> {
        let pending = match self.config.shared.store.get(&self.key).now() {
            Ok(result) => return result.ok().flatten(),
            Err(pending) => pending,
        };
        pending
            .within(self.config.store_timeout)
            .await
            .ok()
            .flatten()
    }
}

/// The lookup did not finish at once (a remote store): wait for it, then answer from what it
/// found or go on to the origin.
pub(crate) async fn lookup_then_forward<S, ReqBody, ResBody>(
    inner: S,
    request: CacheRequest,
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
    let found = match pending.within(request.config.store_timeout).await {
        Ok(found) => found,
        Err(error) => {
            tracing::debug!(%error, "cache lookup failed");
            None
        }
    };
    let now = now_ms();
    match request.decide(found, now, Tier::L2) {
        Decision::Serve(found) => Ok(answer(
            &request.config,
            move || inner,
            &request.key,
            &parts,
            found,
            now,
            false,
        )),
        Decision::Forward { stored, fwd, tier } => {
            forward(inner, request, parts, body, stored, fwd, tier).await
        }
    }
}

/// The miss path: coalesce, call the origin (conditionally when `stored` can be
/// revalidated), then store, freshen, or fall back to a stale entry. `fwd` says why the
/// request goes on; `tier` is where `stored` was found, or the last tier asked.
pub(crate) async fn forward<S, ReqBody, ResBody>(
    mut inner: S,
    request: CacheRequest,
    mut parts: request::Parts,
    body: ReqBody,
    mut stored: Option<Arc<Entry>>,
    mut fwd: Fwd,
    tier: Tier,
) -> Result<Response<CacheBody<ResBody>>, S::Error>
where
    S: Service<Request<ReqBody>, Response = Response<ResBody>> + Clone + Send + 'static,
    S::Future: Send + 'static,
    ReqBody: Default + Send + 'static,
    ResBody: Body + Send + 'static,
{
    let config = request.config.clone();
    let shared = &config.shared;
    let labels = config.labels();
    if request.directives.only_if_cached {
        shared.count(Outcome::Miss, Some(tier));
        let mut response = Response::new(CacheBody::empty());
        *response.status_mut() = StatusCode::GATEWAY_TIMEOUT;
        label(response.headers_mut(), &labels, Status::forward(fwd), 0);
        return Ok(response);
    }

    // Coalescing: one origin call per key, in this process and, through the key's lease,
    // across instances; the others wait for it.
    let mut guard: Option<FlightGuard> = None;
    let mut lease: Option<LeaseGuard> = None;
    if request.coalescable {
        match shared.flights.join(&request.key, config.coalesce_timeout) {
            Join::Lead(lead) => {
                let until = lead.until();
                let mut lead = Some(lead);
                if let Some(leases) = config.leases() {
                    loop {
                        match claim_or_wait(&config, leases, &request.key, until).await {
                            Cross::Lead(held) => {
                                lease = Some(held);
                                break;
                            }
                            Cross::Alone => break,
                            // Not storable lately: nobody here waits for this request.
                            Cross::Pass => {
                                lead = None;
                                break;
                            }
                            // Another instance's call ended: answer from what it stored, or
                            // claim again (it gave up, or stored nothing usable).
                            Cross::Look => {
                                let now = now_ms();
                                let found = request.look_again().await;
                                if let Decision::Serve(found) = request.decide(found, now, tier) {
                                    metrics::lease(LeaseEvent::Filled);
                                    if let Some(lead) = lead {
                                        lead.hand_over(found.entry.clone());
                                    }
                                    return Ok(answer(
                                        &config,
                                        move || inner,
                                        &request.key,
                                        &parts,
                                        found,
                                        now,
                                        true,
                                    ));
                                }
                                if Instant::now() >= until {
                                    break;
                                }
                            }
                        }
                    }
                }
                // A previous flight (here, or another instance's) may have stored the key
                // since this request looked.
                if stored.is_none() {
                    let now = now_ms();
                    let found = request.look_again().await;
                    match request.decide(found, now, tier) {
                        Decision::Serve(found) => {
                            if let Some(lease) = lease {
                                lease.settle(LeaseEnd::Filled);
                            }
                            if let Some(lead) = lead {
                                lead.hand_over(found.entry.clone());
                            }
                            return Ok(answer(
                                &config,
                                move || inner,
                                &request.key,
                                &parts,
                                found,
                                now,
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
                guard = lead;
            }
            Join::Follow(follower) => {
                let handed = follower.wait().await;
                let now = now_ms();
                let found = match handed {
                    // The leader's stored response, handed over whatever the store did.
                    Waited::Handed(entry) => Some(Lookup {
                        variants: Arc::from([entry]),
                        tier,
                    }),
                    Waited::Ended | Waited::TimedOut => request.look_again().await,
                };
                if let Decision::Serve(found) = request.decide(found, now, tier) {
                    return Ok(answer(
                        &config,
                        move || inner,
                        &request.key,
                        &parts,
                        found,
                        now,
                        true,
                    ));
                }
                // Nothing usable (not storable, or another variant): go to the origin.
            }
            // The flight in progress is past its bound: go to the origin alone.
            Join::Alone => {}
        }
    }

    // The origin call: conditional when revalidating, bounded when a stale entry may stand in.
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
        .filter(|entry| usable_on_error(&entry.meta, request_time, &request.directives, grace));
    let call = inner.call(Request::from_parts(parts, body));
    let result = match (config.origin_timeout, &fallback) {
        (Some(limit), Some(_)) => tokio::time::timeout(limit, call).await.ok(),
        _ => Some(call.await),
    };
    let response_time = now_ms();

    // Stale on error: the origin failed, answered 5xx or took too long.
    let response = match (result, fallback) {
        (Some(Ok(response)), fallback)
            if response.status().is_server_error() && fallback.is_some() =>
        {
            drop(response);
            return Ok(stale_on_error(&request, fallback, response_time));
        }
        (Some(Ok(response)), _) => response,
        (Some(Err(error)), None) => {
            shared.count(Outcome::Miss, Some(tier));
            if let Some(probe) = &request.probe {
                probe.done(WarmOutcome::Failed {
                    error: "the service failed".to_owned(),
                });
            }
            return Err(error);
        }
        (Some(Err(_)) | None, fallback) => {
            return Ok(stale_on_error(&request, fallback, response_time));
        }
    };
    shared.count(Outcome::Miss, Some(tier));

    // Revalidated: the origin confirmed the stored entry.
    if response.status() == StatusCode::NOT_MODIFIED
        && revalidating
        && let Some(entry) = &stored
    {
        let exchange = request.exchange(request_time, response_time);
        return Ok(freshened(
            &request,
            &exchange,
            entry,
            response,
            fwd,
            (guard, lease),
        ));
    }

    // A new response: stored once its body has streamed through, if storable.
    let (mut head, body) = response.into_parts();
    let declared = head
        .headers
        .get(CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    let length = declared.unwrap_or(body.size_hint().lower());
    let judged = if request.method == Method::GET {
        let exchange = request.exchange(request_time, response_time);
        prepare(head.status, &head.headers, &exchange)
            .and_then(|prepared| within_limits(&config, prepared, length))
    } else {
        Err(NotStorable::Method)
    };
    let (prepared, detail) = match judged {
        Ok(recording) => (Some(recording), None),
        Err(reason) => {
            tracing::debug!(key = %request.key, reason = reason.as_str(), "response not stored");
            metrics::not_stored(reason);
            // Waiters on other instances go to the origin at once, and so do the next
            // misses for a while (hit-for-miss).
            if let Some(lease) = lease.take() {
                lease.settle(LeaseEnd::NotStorable);
            }
            if let Some(probe) = &request.probe {
                probe.done(WarmOutcome::NotStored {
                    reason: reason.as_str(),
                });
            }
            (None, config.status_detail.then_some(reason))
        }
    };
    strip_private_headers(&mut head.headers, &config, Some(&request.path));
    let status = Status::Forward {
        fwd,
        fwd_status: None,
        stored: prepared.is_some(),
        detail,
    };
    label(&mut head.headers, &labels, status, 0);
    let body = match prepared {
        Some((prepared, limit)) => {
            let commit = Commit {
                store: shared.store.clone(),
                key: request.key.clone(),
                prepared,
                guard: guard.take(),
                lease: lease.take(),
                timeout: config.store_timeout,
                done: request.probe.as_ref().map(Probe::storing),
            };
            if body.is_end_stream() {
                commit.store(Bytes::new());
                CacheBody::stream(body)
            } else {
                CacheBody::recording(body, Recorder::new(limit, commit))
            }
        }
        None => CacheBody::stream(body),
    };
    Ok(Response::from_parts(head, body))
}

/// `prepared` with the most body bytes it may record: `max_body`, less when the store holds
/// lighter entries; `TooLarge` when the response's length (declared, or the least its body
/// says it has) is already over that.
fn within_limits(
    config: &Config,
    prepared: Prepared,
    length: u64,
) -> Result<(Prepared, usize), NotStorable> {
    let mut limit = config.max_body;
    if let Some(max) = config.shared.store.max_entry_weight() {
        let head = prepared.weight(0) as u64;
        let room = usize::try_from(max.saturating_sub(head)).unwrap_or(usize::MAX);
        // Nothing fits when the head alone is too heavy.
        if max < head {
            return Err(NotStorable::TooLarge);
        }
        limit = limit.min(room);
    }
    if length > limit as u64 {
        return Err(NotStorable::TooLarge);
    }
    Ok((prepared, limit))
}

/// The `Surrogate-Capability` field name.
const SURROGATE_CAPABILITY: HeaderName = HeaderName::from_static("surrogate-capability");

/// Serves the stale entry because the origin failed.
fn stale_on_error<B>(
    request: &CacheRequest,
    fallback: Option<Arc<Entry>>,
    now: u64,
) -> Response<CacheBody<B>> {
    let config = &request.config;
    config.shared.count(Outcome::Stale, None);
    if let Some(probe) = &request.probe {
        probe.done(WarmOutcome::Stale);
    }
    match fallback {
        Some(entry) => respond(
            &entry,
            &request.method,
            &request.headers,
            now,
            Status::Stale,
            &config.labels(),
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
    request: &CacheRequest,
    exchange: &Exchange<'_>,
    entry: &Entry,
    response: Response<R>,
    fwd: Fwd,
    (guard, lease): (Option<FlightGuard>, Option<LeaseGuard>),
) -> Response<CacheBody<B>> {
    let config = &request.config;
    let (entry, stored) = match entry.freshen(response.headers(), exchange) {
        Ok(updated) => {
            let updated = Arc::new(updated);
            // Reported as revalidated whatever the store write does: the response is
            // fresh either way, and a failed write is logged.
            if let Some(probe) = &request.probe {
                probe.done(WarmOutcome::Revalidated);
            }
            put(
                config.shared.store.clone(),
                request.key.clone(),
                updated.clone(),
                (guard, lease),
                config.store_timeout,
                None,
            );
            (updated, true)
        }
        Err(merged) => {
            // The update made it unstorable: answer this request from it, keep nothing.
            if let Some(lease) = lease {
                lease.settle(LeaseEnd::NotStorable);
            }
            drop(config.shared.store.delete(&request.key).now());
            if let Some(probe) = &request.probe {
                probe.done(WarmOutcome::NotStored {
                    reason: NotStorable::Useless.as_str(),
                });
            }
            (Arc::from(merged), false)
        }
    };
    let status = Status::Forward {
        fwd,
        fwd_status: Some(304),
        stored,
        detail: None,
    };
    respond(
        &entry,
        &request.method,
        &request.headers,
        exchange.response_time,
        status,
        &config.labels(),
    )
}
