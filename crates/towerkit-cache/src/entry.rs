//! Stored responses: what is kept of a response, its freshness deadlines, how a `304`
//! updates it, and the validators it is revalidated with. The binary form remote stores keep
//! it in is in `store/codec.rs`.

use std::fmt;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use http::header::{
    AGE, CONNECTION, CONTENT_LENGTH, ETAG, IF_MODIFIED_SINCE, IF_NONE_MATCH, LAST_MODIFIED,
    PROXY_AUTHORIZATION,
};
use http::{HeaderMap, HeaderName, HeaderValue, StatusCode};
use towerkit_http::CACHE_STATUS;

use crate::cdn;
use crate::control::{ResponseDirectives, SURROGATE_CONTROL, SurrogateDirectives};
use crate::freshness::{self, NotStorable, Rules};
use crate::key::{self, Vary, VaryRule};
use crate::targeted::Targets;

/// A stored response: status, headers and body as they will be served, the request header
/// values it was selected by (`Vary`), its tags, and its freshness deadlines.
///
/// Entries are immutable and shared (`Arc<Entry>`): a hit clones a reference, never the body.
/// [`Store`](crate::Store) implementations keep them as they are (in memory) or in the
/// compact binary form of [`Entry::encode`] (remote stores).
#[derive(Clone)]
pub struct Entry {
    pub(crate) status: StatusCode,
    pub(crate) headers: HeaderMap,
    pub(crate) body: Bytes,
    pub(crate) meta: Meta,
    pub(crate) vary: Box<[VaryRule]>,
    pub(crate) variant: Box<str>,
    pub(crate) tags: Box<[Box<str>]>,
    /// The headers a hit sends: `headers` with `Age` and `Cache-Status` placeholders, so that
    /// a hit clones one map and fills two values in place.
    pub(crate) head: HeaderMap,
}

/// The response head of an entry: its headers plus placeholders for what each hit sets.
pub(crate) fn response_head(headers: &HeaderMap) -> HeaderMap {
    let mut head = HeaderMap::with_capacity(headers.len() + 3);
    for (name, value) in headers {
        head.append(name.clone(), value.clone());
    }
    head.insert(AGE, HeaderValue::from_static("0"));
    head.append(CACHE_STATUS, HeaderValue::from_static("-"));
    head
}

/// Timing and policy bits of an entry. Times are Unix milliseconds, durations milliseconds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Meta {
    /// When the response (head) was received.
    pub(crate) response_time: u64,
    /// The corrected initial age (RFC 9111 §4.2.3).
    pub(crate) initial_age: u64,
    /// The freshness lifetime.
    pub(crate) lifetime: u64,
    pub(crate) stale_while_revalidate: u64,
    pub(crate) stale_if_error: u64,
    /// When a store may drop the entry: the end of every window in which it can still be
    /// served or revalidated.
    pub(crate) retain_until: u64,
    pub(crate) flags: u8,
}

/// Every use must be validated (`no-cache`).
pub(crate) const NO_CACHE: u8 = 1;
/// Never served stale (`must-revalidate`, `proxy-revalidate`, `s-maxage`, `no-cache`).
pub(crate) const FORBIDS_STALE: u8 = 2;
/// May answer requests with `Authorization` (`public`, `s-maxage`, `must-revalidate`).
pub(crate) const AUTHORIZED: u8 = 4;

impl Meta {
    /// The current age in milliseconds at `now`.
    pub(crate) fn age(&self, now: u64) -> u64 {
        self.initial_age
            .saturating_add(now.saturating_sub(self.response_time))
    }

    /// When the entry stops being fresh.
    pub(crate) fn fresh_until(&self) -> u64 {
        self.response_time
            .saturating_add(self.lifetime.saturating_sub(self.initial_age))
    }

    pub(crate) fn has(&self, flag: u8) -> bool {
        self.flags & flag != 0
    }
}

impl Entry {
    /// The status code.
    pub fn status(&self) -> StatusCode {
        self.status
    }

    /// The stored headers (hop-by-hop fields, `Age` and the tag header removed).
    pub fn headers(&self) -> &HeaderMap {
        &self.headers
    }

    /// The complete body.
    pub fn body(&self) -> &Bytes {
        &self.body
    }

    /// The entry's tags (from the tag response header, plus the implicit path tag).
    pub fn tags(&self) -> impl Iterator<Item = &str> {
        self.tags.iter().map(|tag| &**tag)
    }

    /// The id of this variant among the entries stored under one key: entries with equal
    /// ids replace each other.
    pub fn variant(&self) -> &str {
        &self.variant
    }

    /// When the entry stops being fresh.
    pub fn fresh_until(&self) -> SystemTime {
        UNIX_EPOCH + Duration::from_millis(self.meta.fresh_until())
    }

    /// When a store may drop the entry: after this instant it can be neither served nor
    /// revalidated. Stores check it on read.
    pub fn stale_until(&self) -> SystemTime {
        UNIX_EPOCH + Duration::from_millis(self.meta.retain_until)
    }

    /// Whether a store should still return the entry at `now` (Unix milliseconds).
    pub(crate) fn alive_at(&self, now: u64) -> bool {
        now < self.meta.retain_until
    }

    /// The approximate memory the entry holds, in bytes: what a byte-weighted store counts.
    pub fn weight(&self) -> usize {
        weigh(
            &self.headers,
            &self.tags,
            &self.vary,
            self.variant.len(),
            self.body.len(),
        )
    }
}

/// [`Entry::weight`] of an entry with these parts.
fn weigh(
    headers: &HeaderMap,
    tags: &[Box<str>],
    vary: &[VaryRule],
    variant: usize,
    body: usize,
) -> usize {
    let headers: usize = headers
        .iter()
        .map(|(name, value)| name.as_str().len() + value.len() + 32)
        .sum();
    let tags: usize = tags.iter().map(|tag| tag.len() + 16).sum();
    let vary: usize = vary
        .iter()
        .map(|rule| rule.name.as_str().len() + rule.value.as_ref().map_or(0, |v| v.len()) + 32)
        .sum();
    // Headers count twice: the stored map and the precomputed response head.
    body + 2 * headers + tags + vary + variant + 160
}

impl fmt::Debug for Entry {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Entry")
            .field("status", &self.status)
            .field("headers", &self.headers.len())
            .field("body", &self.body.len())
            .field("variant", &self.variant)
            .field("tags", &self.tags)
            .field("fresh_until", &self.meta.fresh_until())
            .field("retain_until", &self.meta.retain_until)
            .finish()
    }
}

/// How responses are turned into entries: the layer's configuration that matters here.
#[derive(Debug, Clone)]
pub(crate) struct Policy {
    /// Whether heuristic freshness (§4.2.2) is used.
    pub(crate) heuristic: bool,
    /// The cap on a heuristic lifetime.
    pub(crate) heuristic_max: Duration,
    pub(crate) tag_header: HeaderName,
    /// The fields an entry's tags are sent on in, as surrogate keys (`Surrogate-Key`,
    /// `xkey`); none by default.
    pub(crate) send_tags: Box<[HeaderName]>,
    /// The device token this cache answers to in `Surrogate-Control`, if it honours it.
    pub(crate) surrogate: Option<Box<str>>,
    /// The targeted cache-control fields (RFC 9213) this cache obeys.
    pub(crate) targets: Targets,
    /// How long past its freshness an entry is kept: for revalidation, `max-stale`
    /// requests and serving on error.
    pub(crate) keep_stale: Duration,
    /// How long past its freshness an entry may be served when the origin fails.
    pub(crate) grace: Duration,
    /// The statuses a default TTL applies to.
    pub(crate) default_ttl_statuses: Box<[u16]>,
    /// The lifetime of `404` and `410` without explicit freshness; none by default.
    pub(crate) negative_ttl: Option<Duration>,
}

/// A response head judged storable, waiting for its body.
#[derive(Debug, Clone)]
pub(crate) struct Prepared {
    pub(crate) status: StatusCode,
    pub(crate) headers: HeaderMap,
    pub(crate) meta: Meta,
    pub(crate) vary: Vec<VaryRule>,
    pub(crate) tags: Vec<Box<str>>,
}

impl Prepared {
    /// The weight the entry will have with a body of `body` bytes, or a little more (a
    /// `Content-Length` [`finish`](Self::finish) may add is counted in).
    pub(crate) fn weight(&self, body: usize) -> usize {
        let variant = key::variant_id(&self.vary).len();
        let content_length = 2 * ("content-length".len() + 20 + 32);
        weigh(&self.headers, &self.tags, &self.vary, variant, body) + content_length
    }

    /// Completes the entry with its body.
    pub(crate) fn finish(self, body: Bytes) -> Entry {
        let mut headers = self.headers;
        if !matches!(self.status.as_u16(), 204 | 304) && !headers.contains_key(CONTENT_LENGTH) {
            headers.insert(CONTENT_LENGTH, HeaderValue::from(body.len()));
        }
        let variant = key::variant_id(&self.vary).into_boxed_str();
        Entry {
            status: self.status,
            head: response_head(&headers),
            headers,
            body,
            meta: self.meta,
            vary: self.vary.into_boxed_slice(),
            variant,
            tags: self.tags.into_boxed_slice(),
        }
    }
}

/// Fields a cache must not store (RFC 9111 §3.1) besides those `Connection` lists.
const HOP_BY_HOP: [&str; 9] = [
    "connection",
    "keep-alive",
    "proxy-connection",
    "te",
    "transfer-encoding",
    "upgrade",
    "trailer",
    "proxy-authenticate",
    "proxy-authentication-info",
];

/// Removes hop-by-hop fields, including those `Connection` names.
pub(crate) fn strip_hop_by_hop(headers: &mut HeaderMap) {
    let listed: Vec<HeaderName> = headers
        .get_all(CONNECTION)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .flat_map(|text| text.split(','))
        .filter_map(|name| HeaderName::from_bytes(name.trim().as_bytes()).ok())
        .collect();
    for name in listed {
        headers.remove(name);
    }
    for name in HOP_BY_HOP {
        headers.remove(name);
    }
    headers.remove(PROXY_AUTHORIZATION);
}

/// Splits a tag header's values into tags: separated by commas or whitespace.
pub(crate) fn parse_tags(headers: &HeaderMap, name: &HeaderName) -> Vec<Box<str>> {
    let mut tags: Vec<Box<str>> = Vec::new();
    for value in headers.get_all(name) {
        let Ok(text) = value.to_str() else {
            continue;
        };
        for tag in text.split([',', ' ', '\t']).filter(|tag| !tag.is_empty()) {
            if !tags.iter().any(|known| &**known == tag) {
                tags.push(tag.into());
            }
        }
    }
    tags
}

/// An origin exchange as storage judges it: the request the response answers, when it was
/// sent and answered, and the rules that apply to it. What [`prepare`] and
/// [`Entry::freshen`] need besides the response.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Exchange<'a> {
    /// The request's headers (for credentials and `Vary`).
    pub(crate) request: &'a HeaderMap,
    /// The request path (for the implicit path tag).
    pub(crate) path: &'a str,
    /// When the request was sent, Unix milliseconds.
    pub(crate) request_time: u64,
    /// When the response (head) arrived, Unix milliseconds.
    pub(crate) response_time: u64,
    /// The layer's storage policy.
    pub(crate) policy: &'a Policy,
    /// The application's lifetime for responses without explicit freshness on this route.
    pub(crate) default_ttl: Option<Duration>,
}

/// Judges a response for storage and, when storable, prepares what is kept of its head.
pub(crate) fn prepare(
    status: StatusCode,
    response: &HeaderMap,
    exchange: &Exchange<'_>,
) -> Result<Prepared, NotStorable> {
    let Exchange {
        request,
        path,
        request_time,
        response_time,
        policy,
        default_ttl,
    } = *exchange;
    let rules = Rules {
        default_ttl,
        default_statuses: &policy.default_ttl_statuses,
        negative_ttl: policy.negative_ttl,
        heuristic: policy.heuristic,
        heuristic_max: policy.heuristic_max,
    };
    // A valid targeted field aimed at this cache replaces Cache-Control (and Expires).
    let directives = policy
        .targets
        .directives(response)
        .unwrap_or_else(|| ResponseDirectives::parse(response));
    let surrogate = match &policy.surrogate {
        Some(token) => SurrogateDirectives::parse(response, token),
        None => SurrogateDirectives::default(),
    };
    let (lifetime, source) = freshness::lifetime_ms(
        status,
        response,
        &directives,
        &surrogate,
        response_time,
        &rules,
    );
    let vary = key::parse_vary(response);
    freshness::storable(
        status,
        response,
        request,
        &directives,
        &surrogate,
        (lifetime, source),
        vary == Vary::Star,
    )?;
    let Vary::Headers(vary_names) = vary else {
        return Err(NotStorable::VaryStar);
    };

    let initial_age = freshness::initial_age_ms(response, request_time, response_time);
    let surrogate_rules = surrogate.present && surrogate.max_age.is_some();
    let no_cache = directives.no_cache && !surrogate_rules;
    let mut flags = 0;
    if no_cache {
        flags |= NO_CACHE;
    }
    if directives.forbids_stale() && !surrogate_rules {
        flags |= FORBIDS_STALE;
    }
    if directives.allows_authorized() {
        flags |= AUTHORIZED;
    }
    let seconds = |value: Option<u64>| value.unwrap_or(0).saturating_mul(1000);
    let stale_while_revalidate = seconds(directives.stale_while_revalidate);
    let stale_if_error = seconds(directives.stale_if_error.max(surrogate.stale_if_error));
    let fresh_until = response_time.saturating_add(lifetime.saturating_sub(initial_age));
    let keep = stale_while_revalidate
        .max(stale_if_error)
        .max(policy.grace.as_millis() as u64)
        .max(policy.keep_stale.as_millis() as u64);
    let retain_until = fresh_until.max(response_time).saturating_add(keep);
    let meta = Meta {
        response_time,
        initial_age,
        lifetime,
        stale_while_revalidate,
        stale_if_error,
        retain_until,
        flags,
    };

    let mut headers = response.clone();
    strip_hop_by_hop(&mut headers);
    headers.remove(AGE);
    headers.remove(&policy.tag_header);
    headers.remove(&policy.targets.own);
    if policy.surrogate.is_some() {
        headers.remove(SURROGATE_CONTROL);
    }
    for name in &directives.omit_fields {
        headers.remove(name);
    }

    let mut tags = parse_tags(response, &policy.tag_header);
    tags.push(key::path_tag(path).into_boxed_str());
    cdn::set_tag_fields(
        &mut headers,
        &policy.send_tags,
        tags.iter().map(|tag| &**tag),
    );
    let vary = key::vary_rules(&vary_names, request, response);
    Ok(Prepared {
        status,
        headers,
        meta,
        vary,
        tags,
    })
}

/// Fields a `304 Not Modified` never updates in a stored response: they describe the stored
/// bytes, which the 304 did not send (RFC 9111 §3.2).
const NOT_UPDATED: [&str; 5] = [
    "content-length",
    "content-encoding",
    "content-md5",
    "content-range",
    "etag",
];

impl Entry {
    /// The entry updated by a `304 Not Modified` (RFC 9111 §4.3.4): the 304's fields replace
    /// the stored ones except those describing the stored body, and freshness is computed
    /// anew from the merged fields and the 304's timing.
    ///
    /// `Err` carries the merged entry when the update made it unstorable (the 304 added
    /// `private` or `Set-Cookie`): it may answer this request but must not be stored.
    pub(crate) fn freshen(
        &self,
        not_modified: &HeaderMap,
        exchange: &Exchange<'_>,
    ) -> Result<Entry, Box<Entry>> {
        let policy = exchange.policy;
        let mut headers = self.headers.clone();
        let mut updates = not_modified.clone();
        strip_hop_by_hop(&mut updates);
        for name in updates.keys() {
            if NOT_UPDATED.contains(&name.as_str()) {
                continue;
            }
            headers.remove(name);
            for value in updates.get_all(name) {
                headers.append(name.clone(), value.clone());
            }
        }
        let has_tags = not_modified.contains_key(&policy.tag_header);
        match prepare(self.status, &headers, exchange) {
            Ok(mut prepared) => {
                if !has_tags {
                    // The 304 named no tags: the entry keeps its own, in the tag fields too.
                    prepared.tags = self.tags.to_vec();
                    cdn::set_tag_fields(
                        &mut prepared.headers,
                        &policy.send_tags,
                        prepared.tags.iter().map(|tag| &**tag),
                    );
                }
                Ok(prepared.finish(self.body.clone()))
            }
            Err(_) => {
                strip_hop_by_hop(&mut headers);
                headers.remove(AGE);
                headers.remove(&policy.tag_header);
                headers.remove(&policy.targets.own);
                Err(Box::new(Entry {
                    head: response_head(&headers),
                    headers,
                    ..self.clone()
                }))
            }
        }
    }
}

/// Replaces a request's own validators with the stored entry's, to revalidate it; `false`
/// (and nothing changed) when the entry has none.
pub(crate) fn add_validators(headers: &mut HeaderMap, entry: &Entry) -> bool {
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

#[cfg(test)]
mod tests {
    use http::header::{CONTENT_ENCODING, ETAG};

    use super::*;
    use crate::test_support::{self, NOW, exchange, headers, policy};

    fn entry(response: &[(&str, &str)], request: &[(&str, &str)]) -> Entry {
        test_support::entry(response, request, "/p", b"hello")
    }

    #[test]
    fn stored_headers_drop_hop_by_hop_age_and_tags() {
        let stored = entry(
            &[
                ("cache-control", "max-age=60"),
                ("connection", "a, b"),
                ("a", "1"),
                ("b", "2"),
                ("c", "3"),
                ("keep-alive", "x"),
                ("age", "5"),
                ("cache-tag", "products, product:42"),
                ("proxy-authenticate", "x"),
            ],
            &[],
        );
        let names: Vec<&str> = stored.headers.keys().map(HeaderName::as_str).collect();
        assert_eq!(names, ["cache-control", "c", "content-length"]);
        assert_eq!(stored.headers[CONTENT_LENGTH], "5");
        let tags: Vec<&str> = stored.tags().collect();
        assert_eq!(tags, ["products", "product:42", "path:/p"]);
        assert_eq!(stored.meta.initial_age, 5000);
    }

    #[test]
    fn qualified_no_cache_fields_are_not_stored() {
        let stored = entry(
            &[
                ("cache-control", "no-cache=\"a\", max-age=60"),
                ("a", "1"),
                ("b", "2"),
            ],
            &[],
        );
        assert!(!stored.headers.contains_key("a"));
        assert_eq!(stored.headers["b"], "2");
        assert!(!stored.meta.has(NO_CACHE));
    }

    #[test]
    fn retention_covers_stale_windows_and_the_keep_stale_period() {
        let swr = entry(
            &[("cache-control", "max-age=10, stale-while-revalidate=3600")],
            &[],
        );
        assert_eq!(swr.meta.fresh_until(), NOW + 10_000);
        assert_eq!(swr.meta.retain_until, NOW + 3_610_000);
        let plain = entry(&[("cache-control", "max-age=10")], &[]);
        assert_eq!(plain.meta.retain_until, NOW + 610_000);
    }

    #[test]
    fn a_304_updates_fields_but_not_those_describing_the_body() {
        let stored = entry(
            &[
                ("cache-control", "max-age=1"),
                ("etag", "\"a\""),
                ("x-test", "old"),
                ("content-encoding", "gzip"),
                ("x-kept", "k"),
            ],
            &[],
        );
        let not_modified = headers(&[
            ("cache-control", "max-age=3600"),
            ("etag", "\"b\""),
            ("x-test", "new"),
            ("content-encoding", "br"),
            ("content-length", "99"),
        ]);
        let fresh = stored
            .freshen(
                &not_modified,
                &exchange(&HeaderMap::new(), "/p", NOW + 5000, &policy()),
            )
            .unwrap();
        assert_eq!(fresh.headers["x-test"], "new");
        assert_eq!(fresh.headers["x-kept"], "k");
        assert_eq!(fresh.headers[ETAG], "\"a\"");
        assert_eq!(fresh.headers[CONTENT_ENCODING], "gzip");
        assert_eq!(fresh.headers[CONTENT_LENGTH], "5");
        assert_eq!(fresh.meta.lifetime, 3_600_000);
        assert_eq!(fresh.meta.response_time, NOW + 5000);
        assert_eq!(&fresh.body[..], b"hello");
    }

    /// What `prepare` makes of a `200` with `response` headers under an edge policy (one
    /// that obeys `CDN-Cache-Control`).
    fn edge(response: &[(&str, &str)]) -> Result<Prepared, NotStorable> {
        let mut policy = policy();
        policy.targets.cdn = true;
        let request = HeaderMap::new();
        prepare(
            StatusCode::OK,
            &headers(response),
            &exchange(&request, "/p", NOW, &policy),
        )
    }

    #[test]
    fn a_targeted_field_replaces_cache_control_and_expires() {
        let lifetime = |response: &[(&str, &str)]| edge(response).map(|p| p.meta.lifetime);
        let future = httpdate::fmt_http_date(UNIX_EPOCH + Duration::from_millis(NOW + 10_000_000));
        let past = httpdate::fmt_http_date(UNIX_EPOCH + Duration::from_millis(NOW - 10_000_000));
        let now = httpdate::fmt_http_date(UNIX_EPOCH + Duration::from_millis(NOW));
        // cdn-max-age-short-cc-max-age and cdn-max-age-long-cc-max-age.
        assert_eq!(
            lifetime(&[
                ("cache-control", "max-age=1"),
                ("cdn-cache-control", "max-age=3600")
            ]),
            Ok(3_600_000)
        );
        assert_eq!(
            lifetime(&[
                ("cache-control", "max-age=3600"),
                ("cdn-cache-control", "max-age=1")
            ]),
            Ok(1000)
        );
        // cdn-max-age-expires, cdn-max-age-cc-max-age-invalid-expires: Expires is ignored.
        for expires in [past.as_str(), "0"] {
            assert_eq!(
                lifetime(&[
                    ("cdn-cache-control", "max-age=3600"),
                    ("expires", expires),
                    ("date", &now)
                ]),
                Ok(3_600_000)
            );
        }
        // cdn-max-age-0-expires: a future Expires does not make max-age=0 fresh.
        let zero = edge(&[
            ("cdn-cache-control", "max-age=0"),
            ("expires", &future),
            ("date", &now),
            ("etag", "\"a\""),
        ])
        .unwrap();
        assert_eq!(zero.meta.fresh_until(), NOW);
        // cdn-max-age-age: Age still counts.
        let aged = edge(&[
            ("cdn-cache-control", "max-age=3600"),
            ("age", "7200"),
            ("etag", "\"a\""),
        ])
        .unwrap();
        assert!(aged.meta.fresh_until() <= NOW);
    }

    #[test]
    fn a_targeted_field_decides_storage() {
        let not_stored = |response: &[(&str, &str)]| edge(response).err();
        // cdn-fresh-cc-nostore: stored despite Cache-Control: no-store.
        assert_eq!(
            not_stored(&[
                ("cache-control", "no-store"),
                ("cdn-cache-control", "max-age=10000")
            ]),
            None
        );
        assert_eq!(
            not_stored(&[
                ("cache-control", "max-age=60"),
                ("cdn-cache-control", "no-store")
            ]),
            Some(NotStorable::NoStore)
        );
        assert_eq!(
            not_stored(&[
                ("cache-control", "max-age=60"),
                ("cdn-cache-control", "private")
            ]),
            Some(NotStorable::Private)
        );
        // no-cache: stored only to be revalidated (here it has a validator).
        let no_cache = edge(&[
            ("cache-control", "max-age=60"),
            ("cdn-cache-control", "no-cache"),
            ("etag", "\"a\""),
        ])
        .unwrap();
        assert!(no_cache.meta.has(NO_CACHE) && no_cache.meta.has(FORBIDS_STALE));
        // An invalid targeted field is ignored: Cache-Control decides.
        assert_eq!(
            not_stored(&[
                ("cache-control", "no-store"),
                ("cdn-cache-control", "max-age=\"1\"")
            ]),
            Some(NotStorable::NoStore)
        );
        // Without the edge setting, CDN-Cache-Control is not this cache's.
        let request = HeaderMap::new();
        let policy = policy();
        let inner = prepare(
            StatusCode::OK,
            &headers(&[
                ("cache-control", "no-store"),
                ("cdn-cache-control", "max-age=60"),
            ]),
            &exchange(&request, "/p", NOW, &policy),
        );
        assert_eq!(inner.err(), Some(NotStorable::NoStore));
    }

    #[test]
    fn the_own_targeted_field_is_not_stored_but_cdn_cache_control_is() {
        let prepared = edge(&[
            ("towerkit-cache-control", "max-age=60"),
            ("cdn-cache-control", "max-age=5"),
        ])
        .unwrap();
        assert_eq!(prepared.meta.lifetime, 60_000);
        assert!(!prepared.headers.contains_key("towerkit-cache-control"));
        assert_eq!(prepared.headers["cdn-cache-control"], "max-age=5");
    }
}
