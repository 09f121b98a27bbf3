//! A layer's configuration ([`Config`]) and the state its clones and services share
//! ([`Shared`]): what every request path reads.

use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use http::{HeaderName, HeaderValue};

use crate::entry::Policy;
use crate::flight::Flights;
use crate::freshness::DEFAULT_TTL_STATUSES;
use crate::hook::Hooks;
use crate::key::KeyRules;
use crate::metrics::{self, Outcome};
use crate::predicate::Predicate;
use crate::status::Labels;
use crate::store::{Leases, Store, Tier};

/// The largest body stored by default: 8 MiB. Larger responses stream through unstored.
const DEFAULT_MAX_BODY: usize = 8 * 1024 * 1024;

/// How long a remote store operation may take on the request path by default (50 ms);
/// a slower one counts as a miss.
const DEFAULT_STORE_TIMEOUT: Duration = Duration::from_millis(50);

/// A lease's default lifetime: renewed every third of it while the origin call runs, so a
/// holder that dies holds the others up for at most this long.
const DEFAULT_LEASE_TTL: Duration = Duration::from_secs(2);

/// How long a key whose response was not storable skips leases by default.
const DEFAULT_HIT_FOR_MISS: Duration = Duration::from_secs(10);

/// The default `Cache-Status` cache name.
const DEFAULT_CACHE_NAME: &str = "towerkit";

/// The default tag response header.
const DEFAULT_TAG_HEADER: HeaderName = HeaderName::from_static("cache-tag");

/// State shared by every clone of a layer and every service it made.
pub(crate) struct Shared {
    pub(crate) store: Arc<dyn Store>,
    /// The store's leases, when it offers them (a store shared between processes).
    pub(crate) leases: Option<Arc<dyn Leases>>,
    pub(crate) flights: Arc<Flights>,
    pub(crate) counters: Counters,
}

impl fmt::Debug for Shared {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Shared")
            .field("store", &self.store)
            .field("flights", &self.flights)
            .finish()
    }
}

/// Request counts by outcome.
#[derive(Debug, Default)]
pub(crate) struct Counters {
    pub(crate) hits: AtomicU64,
    pub(crate) stale: AtomicU64,
    pub(crate) misses: AtomicU64,
    pub(crate) bypasses: AtomicU64,
    pub(crate) coalesced: AtomicU64,
}

impl Shared {
    /// Counts a request's outcome, here and in metrics; `tier` is where a hit was found, or
    /// the last tier asked on a miss (`None`: no tier, as for a bypass).
    pub(crate) fn count(&self, outcome: Outcome, tier: Option<Tier>) {
        let counter = match outcome {
            Outcome::Hit => &self.counters.hits,
            Outcome::Stale => &self.counters.stale,
            Outcome::Miss => &self.counters.misses,
            Outcome::Bypass => &self.counters.bypasses,
        };
        counter.fetch_add(1, Ordering::Relaxed);
        metrics::request(outcome, tier);
        crate::trace::decided(outcome, tier);
    }

    /// Counts a request answered from another request's origin call.
    pub(crate) fn count_coalesced(&self) {
        self.counters.coalesced.fetch_add(1, Ordering::Relaxed);
        metrics::coalesced();
    }
}

/// A layer's configuration, with the state it shares with its clones (`shared`): one
/// reference for a service to hold and clone.
#[derive(Clone)]
pub(crate) struct Config {
    pub(crate) shared: Arc<Shared>,
    pub(crate) policy: Policy,
    pub(crate) default_ttl: Option<Duration>,
    pub(crate) route_ttls: Vec<(String, Duration)>,
    pub(crate) key: KeyRules,
    pub(crate) predicate: Option<Arc<dyn Predicate>>,
    pub(crate) max_body: usize,
    pub(crate) store_timeout: Duration,
    pub(crate) coalesce: bool,
    pub(crate) coalesce_timeout: Duration,
    /// Whether a flight's leader takes the key's lease in a shared store first.
    pub(crate) coalesce_across_instances: bool,
    /// A lease's lifetime, renewed while its origin call runs.
    pub(crate) lease_ttl: Duration,
    /// How long a key whose response was not storable skips leases.
    pub(crate) hit_for_miss: Duration,
    pub(crate) origin_timeout: Option<Duration>,
    /// The last part of an entry's freshness lifetime (a fraction of it) in which a hit
    /// starts a background refresh; `None`: off.
    pub(crate) refresh_ahead: Option<f64>,
    pub(crate) name: Box<str>,
    pub(crate) x_cache: bool,
    /// Whether `Cache-Status` says why a response was not stored (`detail=…`).
    pub(crate) status_detail: bool,
    /// `Cache-Status` values of fresh hits, by ttl, for `name`; shared by clones.
    pub(crate) hit_statuses: Arc<OnceLock<Box<[HeaderValue]>>>,
    /// What the layer's handles call after an invalidation.
    pub(crate) hooks: Hooks,
}

impl Config {
    /// The leases to take before an origin call, if this layer collapses across instances.
    pub(crate) fn leases(&self) -> Option<&Arc<dyn Leases>> {
        self.shared
            .leases
            .as_ref()
            .filter(|_| self.coalesce_across_instances)
    }

    /// The defaults over `store`, with fresh shared state.
    pub(crate) fn new(store: Arc<dyn Store>) -> Self {
        Config {
            shared: Arc::new(Shared {
                leases: store.leases(),
                store,
                flights: Arc::new(Flights::default()),
                counters: Counters::default(),
            }),
            policy: Policy {
                heuristic: true,
                heuristic_max: Duration::from_secs(86_400),
                tag_header: DEFAULT_TAG_HEADER,
                send_tags: Box::default(),
                surrogate: None,
                targets: crate::targeted::Targets::default(),
                keep_stale: Duration::from_secs(600),
                grace: Duration::ZERO,
                default_ttl_statuses: DEFAULT_TTL_STATUSES.into(),
                negative_ttl: None,
            },
            default_ttl: None,
            route_ttls: Vec::new(),
            key: KeyRules::default(),
            predicate: None,
            max_body: DEFAULT_MAX_BODY,
            store_timeout: DEFAULT_STORE_TIMEOUT,
            coalesce: true,
            coalesce_timeout: Duration::from_secs(5),
            coalesce_across_instances: true,
            lease_ttl: DEFAULT_LEASE_TTL,
            hit_for_miss: DEFAULT_HIT_FOR_MISS,
            origin_timeout: None,
            refresh_ahead: None,
            name: DEFAULT_CACHE_NAME.into(),
            x_cache: false,
            status_detail: true,
            hit_statuses: Arc::default(),
            hooks: Arc::new([]),
        }
    }

    pub(crate) fn labels(&self) -> Labels<'_> {
        Labels {
            name: &self.name,
            x_cache: self.x_cache,
            hits: &self.hit_statuses,
        }
    }

    /// The default TTL for a path: the longest matching route prefix, else the global one.
    pub(crate) fn ttl_for(&self, path: &str) -> Option<Duration> {
        let mut best: Option<(usize, Duration)> = None;
        for (prefix, ttl) in &self.route_ttls {
            let matches = path == prefix
                || (path.starts_with(prefix.as_str())
                    && (prefix.ends_with('/') || path.as_bytes().get(prefix.len()) == Some(&b'/')));
            if matches && best.is_none_or(|(len, _)| prefix.len() > len) {
                best = Some((prefix.len(), *ttl));
            }
        }
        best.map(|(_, ttl)| ttl).or(self.default_ttl)
    }
}

impl fmt::Debug for Config {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Config")
            .field("store", &self.shared.store)
            .field("policy", &self.policy)
            .field("default_ttl", &self.default_ttl)
            .field("route_ttls", &self.route_ttls)
            .field("key", &self.key)
            .field("predicate", &self.predicate.is_some())
            .field("max_body", &self.max_body)
            .field("store_timeout", &self.store_timeout)
            .field("coalesce", &self.coalesce)
            .field("coalesce_timeout", &self.coalesce_timeout)
            .field("coalesce_across_instances", &self.coalesce_across_instances)
            .field("lease_ttl", &self.lease_ttl)
            .field("hit_for_miss", &self.hit_for_miss)
            .field("origin_timeout", &self.origin_timeout)
            .field("refresh_ahead", &self.refresh_ahead)
            .field("name", &self.name)
            .field("x_cache", &self.x_cache)
            .field("status_detail", &self.status_detail)
            .field("hooks", &self.hooks.len())
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::MemoryStore;

    #[test]
    fn route_ttls_match_whole_segments_and_the_longest_prefix_wins() {
        let mut config = Config::new(Arc::new(MemoryStore::new(1024)));
        config.default_ttl = Some(Duration::from_secs(1));
        config.route_ttls = vec![
            ("/products".into(), Duration::from_secs(60)),
            ("/products/featured".into(), Duration::from_secs(5)),
        ];
        assert_eq!(config.ttl_for("/products"), Some(Duration::from_secs(60)));
        assert_eq!(
            config.ttl_for("/products/42"),
            Some(Duration::from_secs(60))
        );
        assert_eq!(
            config.ttl_for("/products/featured/1"),
            Some(Duration::from_secs(5))
        );
        assert_eq!(config.ttl_for("/productsx"), Some(Duration::from_secs(1)));
    }
}
