//! What a stored entry answers: choosing the variant for a request, judging whether it may
//! be used (fresh, stale but acceptable, or to be validated), and answering a hit.

use std::sync::Arc;

use http::{HeaderMap, Request, Response, request};
use http_body::Body;
use tower_service::Service;

use crate::body::CacheBody;
use crate::config::Config;
use crate::control::RequestDirectives;
use crate::entry::{AUTHORIZED, Entry, FORBIDS_STALE, Meta, NO_CACHE};
use crate::key;
use crate::metrics::{self, Outcome};
use crate::refresh::Refresh;
use crate::respond::respond;
use crate::status::{Fwd, Status};
use crate::store::{Lookup, Tier};

/// What to do with a request given what the store had.
pub(crate) enum Decision {
    /// Answer from a stored entry.
    Serve(Found),
    /// Go to the origin: `stored` is the entry to revalidate, if any; `tier` the tier that
    /// had it, or the last one asked.
    Forward {
        stored: Option<Arc<Entry>>,
        fwd: Fwd,
        tier: Tier,
    },
}

/// A stored entry that may answer a request, how, and the tier it came from.
pub(crate) struct Found {
    pub(crate) entry: Arc<Entry>,
    pub(crate) usable: Usable,
    pub(crate) tier: Tier,
}

/// Decides what answers a request with `headers` and `directives` at `now`, given what the
/// store `found`; `asked` is the tier the lookup went to (for a miss's metrics).
pub(crate) fn decide(
    found: Option<Lookup>,
    headers: &HeaderMap,
    directives: &RequestDirectives,
    authorized: bool,
    now: u64,
    asked: Tier,
) -> Decision {
    let Some(lookup) = found else {
        return Decision::Forward {
            stored: None,
            fwd: Fwd::Miss,
            tier: asked,
        };
    };
    let Some(entry) = select(&lookup.variants, headers, authorized, now) else {
        // Live variants that do not match are a vary-miss; only dead ones, a plain miss.
        let alive = lookup.variants.iter().any(|entry| entry.alive_at(now));
        return Decision::Forward {
            stored: None,
            fwd: if alive { Fwd::VaryMiss } else { Fwd::Miss },
            tier: lookup.tier,
        };
    };
    match usability(&entry.meta, now, directives) {
        Usable::Validate => {
            let fwd = if directives.no_cache
                || directives.max_age.is_some()
                || directives.min_fresh.is_some()
            {
                Fwd::Request
            } else {
                Fwd::Stale
            };
            Decision::Forward {
                stored: Some(entry.clone()),
                fwd,
                tier: lookup.tier,
            }
        }
        usable => Decision::Serve(Found {
            entry: entry.clone(),
            usable,
            tier: lookup.tier,
        }),
    }
}

/// Answers a request from a usable entry. A `stale-while-revalidate` answer also starts one
/// background refresh of the key, on the service `inner` gives. `coalesced`: the entry was
/// stored by another request's origin call this one waited for.
pub(crate) fn answer<S, ReqBody, ResBody>(
    config: &Arc<Config>,
    inner: impl FnOnce() -> S,
    key: &str,
    parts: &request::Parts,
    found: Found,
    now: u64,
    coalesced: bool,
) -> Response<CacheBody<ResBody>>
where
    S: Service<Request<ReqBody>, Response = Response<ResBody>> + Clone + Send + 'static,
    S::Future: Send + 'static,
    ReqBody: Default + Send + 'static,
    ResBody: Body + Send + 'static,
{
    let Found {
        entry,
        usable,
        tier,
    } = found;
    let shared = &config.shared;
    let ahead = usable == Usable::Fresh
        && config
            .refresh_ahead
            .is_some_and(|fraction| in_refresh_window(&entry.meta, now, fraction));
    let mut status = match usable {
        Usable::Fresh => {
            shared.count(Outcome::Hit, Some(tier));
            Status::Hit { coalesced }
        }
        Usable::StaleAccepted | Usable::StaleWhileRevalidate | Usable::Validate => {
            shared.count(Outcome::Stale, Some(tier));
            Status::Stale
        }
    };
    if coalesced {
        shared.count_coalesced();
    }
    crate::warm::seen(
        &parts.extensions,
        shared,
        match usable {
            Usable::Fresh if coalesced => crate::warm::WarmOutcome::Filled,
            Usable::Fresh => crate::warm::WarmOutcome::AlreadyFresh,
            _ => crate::warm::WarmOutcome::Stale,
        },
    );
    if (usable == Usable::StaleWhileRevalidate || ahead)
        && let Some(guard) = shared.flights.try_lead(key, config.coalesce_timeout)
    {
        if ahead {
            metrics::refresh_ahead();
            status = Status::RefreshAhead;
        }
        let refresh = Refresh {
            config: config.clone(),
            key: key.to_owned(),
            parts: parts.clone(),
            entry: entry.clone(),
            default_ttl: config.ttl_for(key::target_uri(parts).path()),
            guard,
        };
        refresh.spawn(inner());
    }
    respond(
        &entry,
        &parts.method,
        &parts.headers,
        now,
        status,
        &config.labels(),
    )
}

/// The first variant, most recent first, that may answer a request with `headers` at
/// `now`: alive (before its `stale_until`), matching `Vary`, and allowing authorized use
/// when the request is `authorized`.
fn select<'a>(
    variants: &'a [Arc<Entry>],
    headers: &HeaderMap,
    authorized: bool,
    now: u64,
) -> Option<&'a Arc<Entry>> {
    variants.iter().find(|entry| {
        entry.alive_at(now)
            && (!authorized || entry.meta.has(AUTHORIZED))
            && key::matches(&entry.vary, &entry.headers, headers)
    })
}

/// Whether and how a stored entry may answer a request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Usable {
    /// Fresh enough for the request.
    Fresh,
    /// Stale, within what the request's `max-stale` accepts.
    StaleAccepted,
    /// Stale, within `stale-while-revalidate`: serve it and refresh in the background.
    StaleWhileRevalidate,
    /// Must go to the origin (conditionally, if the entry has validators).
    Validate,
}

/// Judges an entry at `now` (Unix ms) against the request's directives (RFC 9111 §4.2,
/// §5.2.1, RFC 5861).
pub(crate) fn usability(meta: &Meta, now: u64, request: &RequestDirectives) -> Usable {
    if meta.has(NO_CACHE) || request.no_cache {
        return Usable::Validate;
    }
    let age = meta.age(now);
    if request
        .max_age
        .is_some_and(|max_age| age > max_age.saturating_mul(1000))
    {
        return Usable::Validate;
    }
    let remaining = meta.lifetime as i128 - age as i128;
    if let Some(min_fresh) = request.min_fresh
        && remaining < i128::from(min_fresh) * 1000
    {
        return Usable::Validate;
    }
    if remaining > 0 {
        return Usable::Fresh;
    }
    if meta.has(FORBIDS_STALE) {
        return Usable::Validate;
    }
    let staleness = (-remaining) as u64;
    if request
        .max_stale
        .is_some_and(|max_stale| staleness <= max_stale.saturating_mul(1000))
    {
        return Usable::StaleAccepted;
    }
    if meta.stale_while_revalidate > 0 && staleness <= meta.stale_while_revalidate {
        return Usable::StaleWhileRevalidate;
    }
    Usable::Validate
}

/// Whether a fresh entry is in the last `fraction` of its freshness lifetime at `now`, where
/// a hit refreshes it ahead of its expiry.
pub(crate) fn in_refresh_window(meta: &Meta, now: u64, fraction: f64) -> bool {
    let remaining = meta.lifetime.saturating_sub(meta.age(now));
    (remaining as f64) <= meta.lifetime as f64 * fraction
}

/// Whether an entry may be served because the origin failed: within its own
/// `stale-if-error`, the request's, or the configured grace period, and never when it must
/// be revalidated.
pub(crate) fn usable_on_error(
    meta: &Meta,
    now: u64,
    request: &RequestDirectives,
    grace: u64,
) -> bool {
    if meta.has(FORBIDS_STALE) {
        return false;
    }
    let staleness = meta.age(now).saturating_sub(meta.lifetime);
    let allowed = meta
        .stale_if_error
        .max(request.stale_if_error.unwrap_or(0).saturating_mul(1000))
        .max(grace);
    allowed > 0 && staleness <= allowed
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_support::{self, NOW, headers};

    fn entry(response: &[(&str, &str)]) -> Entry {
        test_support::entry(response, &[], "/", b"0123456789")
    }

    fn request(pairs: &[(&str, &str)]) -> RequestDirectives {
        RequestDirectives::parse(&headers(pairs))
    }

    #[test]
    fn fresh_then_stale_then_stale_while_revalidate() {
        let stored = entry(&[("cache-control", "max-age=10, stale-while-revalidate=5")]);
        let none = RequestDirectives::default();
        assert_eq!(usability(&stored.meta, NOW + 9_000, &none), Usable::Fresh);
        assert_eq!(
            usability(&stored.meta, NOW + 12_000, &none),
            Usable::StaleWhileRevalidate
        );
        assert_eq!(
            usability(&stored.meta, NOW + 16_000, &none),
            Usable::Validate
        );
    }

    #[test]
    fn refresh_window_is_the_last_fraction_of_the_lifetime() {
        let stored = entry(&[("cache-control", "max-age=100")]);
        assert!(!in_refresh_window(&stored.meta, NOW, 0.1));
        assert!(!in_refresh_window(&stored.meta, NOW + 89_000, 0.1));
        assert!(in_refresh_window(&stored.meta, NOW + 90_000, 0.1));
        assert!(in_refresh_window(&stored.meta, NOW + 99_000, 0.1));
        assert!(in_refresh_window(&stored.meta, NOW + 50_000, 0.5));
        assert!(!in_refresh_window(&stored.meta, NOW + 49_000, 0.5));
    }

    #[test]
    fn request_directives_tighten_or_loosen_freshness() {
        let stored = entry(&[("cache-control", "max-age=100")]);
        assert_eq!(
            usability(
                &stored.meta,
                NOW + 50_000,
                &request(&[("cache-control", "max-age=10")])
            ),
            Usable::Validate
        );
        assert_eq!(
            usability(
                &stored.meta,
                NOW + 50_000,
                &request(&[("cache-control", "min-fresh=60")])
            ),
            Usable::Validate
        );
        assert_eq!(
            usability(
                &stored.meta,
                NOW + 50_000,
                &request(&[("cache-control", "no-cache")])
            ),
            Usable::Validate
        );
        assert_eq!(
            usability(
                &stored.meta,
                NOW + 150_000,
                &request(&[("cache-control", "max-stale=60")])
            ),
            Usable::StaleAccepted
        );
        assert_eq!(
            usability(
                &stored.meta,
                NOW + 150_000,
                &request(&[("cache-control", "max-stale=10")])
            ),
            Usable::Validate
        );
    }

    #[test]
    fn must_revalidate_forbids_any_stale_use() {
        let stored = entry(&[(
            "cache-control",
            "max-age=1, must-revalidate, stale-while-revalidate=60, stale-if-error=60",
        )]);
        assert_eq!(
            usability(
                &stored.meta,
                NOW + 5_000,
                &request(&[("cache-control", "max-stale")])
            ),
            Usable::Validate
        );
        assert!(!usable_on_error(
            &stored.meta,
            NOW + 5_000,
            &RequestDirectives::default(),
            60_000
        ));
    }

    #[test]
    fn stale_if_error_and_grace_bound_serving_on_error() {
        let stored = entry(&[("cache-control", "max-age=1, stale-if-error=10")]);
        let none = RequestDirectives::default();
        assert!(usable_on_error(&stored.meta, NOW + 5_000, &none, 0));
        assert!(!usable_on_error(&stored.meta, NOW + 20_000, &none, 0));
        assert!(usable_on_error(&stored.meta, NOW + 20_000, &none, 30_000));
        let plain = entry(&[("cache-control", "max-age=1")]);
        assert!(!usable_on_error(&plain.meta, NOW + 5_000, &none, 0));
    }
}
