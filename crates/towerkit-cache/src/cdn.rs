//! Fields for a CDN in front of the service: [`CdnHeadersLayer`] sets `CDN-Cache-Control`
//! (RFC 9213) and `Surrogate-Control` per route, and the tag fields
//! ([`CacheLayerBuilder::send_tags_as`](crate::CacheLayerBuilder::send_tags_as)) carry a
//! response's tags on as `Surrogate-Key` or `xkey`.

use std::borrow::Cow;
use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, ready};

use http::header::{CACHE_CONTROL, SET_COOKIE};
use http::{HeaderMap, HeaderName, HeaderValue, Method, Request, Response, StatusCode};
use pin_project_lite::pin_project;
use tower_layer::Layer;
use tower_service::Service;

use crate::control::{self, ResponseDirectives};
use crate::error::ConfigError;
use crate::freshness::DEFAULT_TTL_STATUSES;
use crate::targeted;

/// `CDN-Cache-Control` (RFC 9213 §3): `Cache-Control`'s directives for CDNs only.
pub const CDN_CACHE_CONTROL: HeaderName = targeted::CDN_CACHE_CONTROL;

/// `Surrogate-Control` (Edge Architecture Specification 1.0): directives for surrogates
/// (reverse proxies and CDNs such as Fastly and Akamai).
pub const SURROGATE_CONTROL: HeaderName = control::SURROGATE_CONTROL;

/// `Surrogate-Key`: the space-separated keys a CDN purges a response by (Fastly, and most
/// CDNs that purge by key).
pub const SURROGATE_KEY: HeaderName = HeaderName::from_static("surrogate-key");

/// `xkey`: the space-separated keys Varnish's xkey module purges a response by.
pub const XKEY: HeaderName = HeaderName::from_static("xkey");

/// A tag as a surrogate key: keys are separated by spaces (and, for xkey, commas), so a
/// comma or whitespace inside a tag is percent-encoded. Tags from the tag header never hold
/// either (they separate tags there too); a path tag may hold a comma (`path:/a,b`).
pub(crate) fn surrogate_key(tag: &str) -> Cow<'_, str> {
    if !tag.bytes().any(needs_encoding) {
        return Cow::Borrowed(tag);
    }
    let mut key = String::with_capacity(tag.len() + 4);
    for c in tag.chars() {
        match u8::try_from(c) {
            Ok(byte) if needs_encoding(byte) => key.push_str(&format!("%{byte:02X}")),
            _ => key.push(c),
        }
    }
    Cow::Owned(key)
}

fn needs_encoding(byte: u8) -> bool {
    matches!(byte, b',' | b' ' | b'\t')
}

/// Writes `tags` as surrogate keys, space-separated, into each field of `names` (replacing
/// what the response had there). Nothing changes when `names` or `tags` are empty.
pub(crate) fn set_tag_fields<'a>(
    headers: &mut HeaderMap,
    names: &[HeaderName],
    tags: impl IntoIterator<Item = &'a str>,
) {
    if names.is_empty() {
        return;
    }
    let mut value = String::new();
    for tag in tags {
        if !value.is_empty() {
            value.push(' ');
        }
        value.push_str(&surrogate_key(tag));
    }
    if value.is_empty() {
        return;
    }
    // Tags come from a header value and paths from a URI: visible ASCII, always valid.
    let Ok(value) = HeaderValue::from_str(&value) else {
        return;
    };
    for name in names {
        headers.insert(name.clone(), value.clone());
    }
}

/// Fields a tag field must not be: those HTTP or this cache give a meaning of their own.
pub(crate) fn reserved_tag_field(name: &HeaderName) -> bool {
    use http::header::*;
    [
        AGE,
        CACHE_CONTROL,
        CONNECTION,
        CONTENT_ENCODING,
        CONTENT_LENGTH,
        CONTENT_LOCATION,
        CONTENT_RANGE,
        CONTENT_TYPE,
        DATE,
        ETAG,
        EXPIRES,
        LAST_MODIFIED,
        LOCATION,
        PRAGMA,
        SET_COOKIE,
        TRANSFER_ENCODING,
        VARY,
        CDN_CACHE_CONTROL,
        SURROGATE_CONTROL,
        towerkit_http::CACHE_STATUS,
    ]
    .contains(name)
}

/// A [`Layer`] that adds `CDN-Cache-Control` (RFC 9213) and `Surrogate-Control` to a route's
/// cacheable responses, for a CDN in front of the service: "the CDN keeps this 10 minutes"
/// while `Cache-Control` keeps saying what browsers may do.
///
/// A field is added to a response to `GET` or `HEAD` when:
///
/// - its status is one of [`statuses`](CdnHeadersLayerBuilder::statuses) (`200`, `203`,
///   `204`, `300`, `301`, `308` by default: no errors, no `404` kept for minutes);
/// - it does not carry the field already (the handler's own value wins);
/// - it is for everyone: no `Set-Cookie`, and no `private` or `no-store` in
///   `Cache-Control`. A CDN obeying `CDN-Cache-Control` ignores `Cache-Control`, so adding
///   `max-age=600` to a `private` response would let the CDN share it.
///
/// Everything else passes through untouched. Put it inside [`CacheLayer`](crate::CacheLayer)
/// (closer to the handler), so the fields are stored with each entry and cost nothing on a
/// hit. A `CacheLayer` inside an application does not obey `CDN-Cache-Control` unless told
/// to ([`cdn_cache_control`](crate::CacheLayerBuilder::cdn_cache_control)), nor
/// `Surrogate-Control` unless configured as a
/// [`surrogate`](crate::CacheLayerBuilder::surrogate): the fields pass it untouched, to
/// the CDN they are meant for.
///
/// ```
/// use axum::{Router, routing::get};
/// use towerkit_cache::{CacheLayer, CdnHeadersLayer, ConfigError, MemoryStore, SURROGATE_KEY};
/// # use tower::ServiceExt;
///
/// # fn main() -> Result<(), ConfigError> {
/// let cdn = CdnHeadersLayer::builder()
///     .cdn_cache_control("max-age=600, stale-while-revalidate=30")
///     .surrogate_control("max-age=600")
///     .build()?; // values are checked here: `max-age=ten` is a `ConfigError`
/// let cache = CacheLayer::builder(MemoryStore::new(64 * 1024 * 1024))
///     .send_tags_as([SURROGATE_KEY]) // `Cache-Tag: products` goes out as `Surrogate-Key`
///     .build()?;
/// let app = Router::new()
///     .route("/products", get(|| async { ([("cache-tag", "products")], "[]") }))
///     .layer(cdn)
///     .layer(cache);
/// # tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(async {
/// let request = http::Request::get("/products").body(axum::body::Body::empty()).unwrap();
/// let response = app.oneshot(request).await.unwrap();
/// assert_eq!(response.headers()["cdn-cache-control"], "max-age=600, stale-while-revalidate=30");
/// assert_eq!(response.headers()["surrogate-control"], "max-age=600");
/// assert_eq!(response.headers()["surrogate-key"], "products path:/products");
/// assert!(!response.headers().contains_key("cache-tag"));
/// # });
/// # Ok(())
/// # }
/// ```
#[derive(Clone)]
pub struct CdnHeadersLayer {
    fields: Arc<Fields>,
}

/// What a [`CdnHeadersLayer`] adds, and to which statuses.
#[derive(Debug)]
struct Fields {
    fields: Box<[(HeaderName, HeaderValue)]>,
    statuses: Box<[u16]>,
}

impl fmt::Debug for CdnHeadersLayer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CdnHeadersLayer")
            .field("fields", &self.fields.fields)
            .field("statuses", &self.fields.statuses)
            .finish()
    }
}

impl CdnHeadersLayer {
    /// A builder with no field and the default statuses.
    pub fn builder() -> CdnHeadersLayerBuilder {
        CdnHeadersLayerBuilder {
            fields: Vec::new(),
            statuses: DEFAULT_TTL_STATUSES.into(),
            error: None,
        }
    }
}

impl<S> Layer<S> for CdnHeadersLayer {
    type Service = CdnHeaders<S>;

    fn layer(&self, inner: S) -> CdnHeaders<S> {
        CdnHeaders {
            inner,
            fields: self.fields.clone(),
        }
    }
}

/// Configures a [`CdnHeadersLayer`]: infallible setters, checked together by
/// [`build`](Self::build).
#[derive(Debug)]
pub struct CdnHeadersLayerBuilder {
    fields: Vec<(HeaderName, HeaderValue)>,
    statuses: Box<[u16]>,
    error: Option<ConfigError>,
}

impl CdnHeadersLayerBuilder {
    /// The `CDN-Cache-Control` value (RFC 9213), such as `max-age=600`. It is a Structured
    /// Field Dictionary (RFC 8941): [`build`](Self::build) fails with
    /// [`ConfigError::InvalidField`] for a value a CDN would ignore as invalid
    /// (`max-age="600"`, `max-age=ten`, `Max-Age=600`, an empty one). Default: not sent.
    #[must_use]
    pub fn cdn_cache_control(mut self, value: &str) -> Self {
        let valid = HeaderValue::from_str(value)
            .ok()
            .filter(|value| targeted::parse_value(value).is_some());
        self.set("cdn_cache_control", CDN_CACHE_CONTROL, value, valid);
        self
    }

    /// The `Surrogate-Control` value (Edge Architecture Specification 1.0), such as
    /// `max-age=600` or `max-age=600+60, content="ESI/1.0"`. [`build`](Self::build) fails
    /// with [`ConfigError::InvalidField`] unless it is a list of directives (`name` or
    /// `name=value`, optionally `;device-token`) with a valid `max-age`. Default: not sent.
    #[must_use]
    pub fn surrogate_control(mut self, value: &str) -> Self {
        let valid = HeaderValue::from_str(value)
            .ok()
            .filter(control::valid_surrogate_control);
        self.set("surrogate_control", SURROGATE_CONTROL, value, valid);
        self
    }

    /// The response statuses that get the fields. Default: `200`, `203`, `204`, `300`,
    /// `301`, `308`, the statuses a cache may keep without being told (RFC 9110 §15.1)
    /// without the errors.
    #[must_use]
    pub fn statuses(mut self, statuses: impl IntoIterator<Item = StatusCode>) -> Self {
        self.statuses = statuses.into_iter().map(|status| status.as_u16()).collect();
        self
    }

    /// The layer, or the first value it cannot send.
    pub fn build(self) -> Result<CdnHeadersLayer, ConfigError> {
        if let Some(error) = self.error {
            return Err(error);
        }
        Ok(CdnHeadersLayer {
            fields: Arc::new(Fields {
                fields: self.fields.into_boxed_slice(),
                statuses: self.statuses,
            }),
        })
    }

    fn set(
        &mut self,
        setting: &'static str,
        name: HeaderName,
        text: &str,
        valid: Option<HeaderValue>,
    ) {
        self.fields.retain(|(known, _)| *known != name);
        match valid {
            Some(value) => self.fields.push((name, value)),
            None => {
                self.error.get_or_insert(ConfigError::InvalidField {
                    setting,
                    value: text.to_owned(),
                });
            }
        }
    }
}

/// The service of [`CdnHeadersLayer`].
#[derive(Clone)]
pub struct CdnHeaders<S> {
    inner: S,
    fields: Arc<Fields>,
}

impl<S: fmt::Debug> fmt::Debug for CdnHeaders<S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CdnHeaders")
            .field("inner", &self.inner)
            .field("fields", &self.fields.fields)
            .finish()
    }
}

impl<S> CdnHeaders<S> {
    /// Wraps `inner` with `layer`'s fields.
    pub fn new(inner: S, layer: &CdnHeadersLayer) -> Self {
        layer.layer(inner)
    }

    /// The inner service.
    pub fn get_ref(&self) -> &S {
        &self.inner
    }

    /// The inner service, mutably.
    pub fn get_mut(&mut self) -> &mut S {
        &mut self.inner
    }

    /// The inner service, unwrapped.
    pub fn into_inner(self) -> S {
        self.inner
    }
}

impl<S, ReqBody, ResBody> Service<Request<ReqBody>> for CdnHeaders<S>
where
    S: Service<Request<ReqBody>, Response = Response<ResBody>>,
{
    type Response = Response<ResBody>;
    type Error = S::Error;
    type Future = CdnHeadersFuture<S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: Request<ReqBody>) -> Self::Future {
        let cacheable = matches!(*request.method(), Method::GET | Method::HEAD);
        CdnHeadersFuture {
            fields: cacheable.then(|| self.fields.clone()),
            inner: self.inner.call(request),
        }
    }
}

pin_project! {
    /// The response future of [`CdnHeaders`].
    pub struct CdnHeadersFuture<F> {
        #[pin]
        inner: F,
        // `None` for requests whose responses get nothing (not `GET` or `HEAD`).
        fields: Option<Arc<Fields>>,
    }
}

impl<F> fmt::Debug for CdnHeadersFuture<F> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CdnHeadersFuture").finish_non_exhaustive()
    }
}

impl<F, B, E> Future for CdnHeadersFuture<F>
where
    F: Future<Output = Result<Response<B>, E>>,
{
    type Output = Result<Response<B>, E>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        let mut response = ready!(this.inner.poll(cx))?;
        if let Some(fields) = this.fields.take() {
            let status = response.status();
            add_fields(&fields, status, response.headers_mut());
        }
        Poll::Ready(Ok(response))
    }
}

/// Adds the configured fields the response lacks, when it is shareable with that status.
fn add_fields(fields: &Fields, status: StatusCode, headers: &mut HeaderMap) {
    if fields.fields.is_empty()
        || !fields.statuses.contains(&status.as_u16())
        || headers.contains_key(SET_COOKIE)
    {
        return;
    }
    if headers.contains_key(CACHE_CONTROL) {
        let directives = ResponseDirectives::parse(headers);
        if directives.private || directives.no_store {
            return;
        }
    }
    for (name, value) in fields.fields.iter() {
        if !headers.contains_key(name) {
            headers.insert(name.clone(), value.clone());
        }
    }
}

#[cfg(test)]
mod tests {
    use std::convert::Infallible;

    use tower::ServiceExt;

    use super::*;
    use crate::test_support::headers;

    fn layer() -> CdnHeadersLayer {
        CdnHeadersLayer::builder()
            .cdn_cache_control("max-age=600")
            .surrogate_control("max-age=300")
            .build()
            .unwrap()
    }

    /// The fields `layer` gives a `method` request answered with `status` and `response`.
    async fn answered(
        layer: &CdnHeadersLayer,
        method: Method,
        status: u16,
        response: &[(&str, &str)],
    ) -> HeaderMap {
        let response_headers = headers(response);
        let service = layer.layer(tower::service_fn(move |_: Request<()>| {
            let mut response = Response::new(());
            *response.status_mut() = StatusCode::from_u16(status).unwrap();
            *response.headers_mut() = response_headers.clone();
            async move { Ok::<_, Infallible>(response) }
        }));
        let request = Request::builder().method(method).body(()).unwrap();
        service.oneshot(request).await.unwrap().headers().clone()
    }

    #[tokio::test]
    async fn adds_both_fields_to_cacheable_get_and_head_responses() {
        for method in [Method::GET, Method::HEAD] {
            for status in [200, 203, 204, 300, 301, 308] {
                let fields = answered(&layer(), method.clone(), status, &[]).await;
                assert_eq!(
                    fields["cdn-cache-control"], "max-age=600",
                    "{method} {status}"
                );
                assert_eq!(
                    fields["surrogate-control"], "max-age=300",
                    "{method} {status}"
                );
            }
        }
    }

    #[tokio::test]
    async fn leaves_errors_writes_and_private_responses_alone() {
        let layer = layer();
        for status in [404, 410, 500, 503, 206, 302] {
            assert!(
                answered(&layer, Method::GET, status, &[]).await.is_empty(),
                "{status}"
            );
        }
        for method in [Method::POST, Method::PUT, Method::DELETE, Method::OPTIONS] {
            assert!(
                answered(&layer, method.clone(), 200, &[]).await.is_empty(),
                "{method}"
            );
        }
        for response in [
            [("cache-control", "private, max-age=60")],
            [("cache-control", "no-store")],
            [("set-cookie", "session=1")],
        ] {
            let fields = answered(&layer, Method::GET, 200, &response).await;
            assert!(!fields.contains_key("cdn-cache-control"), "{response:?}");
            assert!(!fields.contains_key("surrogate-control"), "{response:?}");
        }
        // `no-cache` is for browsers: a CDN may keep it, and is told so.
        let fields = answered(&layer, Method::GET, 200, &[("cache-control", "no-cache")]).await;
        assert_eq!(fields["cdn-cache-control"], "max-age=600");
    }

    #[tokio::test]
    async fn the_handlers_own_field_wins() {
        let fields = answered(
            &layer(),
            Method::GET,
            200,
            &[("cdn-cache-control", "max-age=5")],
        )
        .await;
        assert_eq!(fields["cdn-cache-control"], "max-age=5");
        assert_eq!(fields.get_all("cdn-cache-control").iter().count(), 1);
        assert_eq!(fields["surrogate-control"], "max-age=300");
    }

    #[tokio::test]
    async fn statuses_are_configurable() {
        let layer = CdnHeadersLayer::builder()
            .cdn_cache_control("max-age=10")
            .statuses([StatusCode::NOT_FOUND])
            .build()
            .unwrap();
        assert_eq!(
            answered(&layer, Method::GET, 404, &[]).await["cdn-cache-control"],
            "max-age=10"
        );
        assert!(answered(&layer, Method::GET, 200, &[]).await.is_empty());
    }

    #[test]
    fn invalid_values_are_configuration_errors() {
        for value in [
            "",
            " ",
            "max-age=\"600\"",
            "max-age=ten",
            "max-age=1.5",
            "Max-Age=600",
            "max-age=600, &&",
            "max-age=\n600",
            "no-store=1",
        ] {
            let error = CdnHeadersLayer::builder()
                .cdn_cache_control(value)
                .build()
                .unwrap_err();
            assert!(
                matches!(&error, ConfigError::InvalidField { setting: "cdn_cache_control", value: given } if given == value),
                "{value:?}: {error:?}"
            );
        }
        for value in [
            "",
            "max-age",
            "max-age=ten",
            "max-age =5",
            "max-age=5+x",
            "a b",
            "ü",
        ] {
            let error = CdnHeadersLayer::builder()
                .surrogate_control(value)
                .build()
                .unwrap_err();
            assert!(
                matches!(
                    &error,
                    ConfigError::InvalidField {
                        setting: "surrogate_control",
                        ..
                    }
                ),
                "{value:?}: {error:?}"
            );
        }
        assert_eq!(
            CdnHeadersLayer::builder()
                .cdn_cache_control("max-age=ten")
                .build()
                .unwrap_err()
                .to_string(),
            "invalid `cdn_cache_control`: \"max-age=ten\""
        );
        for value in [
            "max-age=600",
            "max-age=600, stale-while-revalidate=30, stale-if-error=3600",
            "no-store",
            "private",
            "s-maxage=60, must-revalidate",
        ] {
            assert!(
                CdnHeadersLayer::builder()
                    .cdn_cache_control(value)
                    .build()
                    .is_ok(),
                "{value:?}"
            );
        }
        for value in [
            "max-age=600",
            "max-age=600+60",
            "no-store",
            "max-age=60;edge-1, no-store;other",
            "max-age=600, content=\"ESI/1.0\"",
        ] {
            assert!(
                CdnHeadersLayer::builder()
                    .surrogate_control(value)
                    .build()
                    .is_ok(),
                "{value:?}"
            );
        }
    }

    #[test]
    fn a_later_value_replaces_an_earlier_one() {
        let layer = CdnHeadersLayer::builder()
            .cdn_cache_control("max-age=1")
            .cdn_cache_control("max-age=2")
            .build()
            .unwrap();
        assert_eq!(layer.fields.fields.len(), 1);
        assert_eq!(layer.fields.fields[0].1, "max-age=2");
    }

    #[test]
    fn surrogate_keys_encode_separators() {
        assert_eq!(surrogate_key("product:42"), "product:42");
        assert!(matches!(surrogate_key("path:/a"), Cow::Borrowed(_)));
        assert_eq!(surrogate_key("path:/a,b"), "path:/a%2Cb");
        assert_eq!(surrogate_key("a b\tc%41"), "a%20b%09c%41");
    }

    #[test]
    fn tag_fields_are_written_space_separated_into_each_name() {
        let mut fields = headers(&[("xkey", "stale")]);
        set_tag_fields(
            &mut fields,
            &[SURROGATE_KEY, XKEY],
            ["products", "path:/p,1"],
        );
        assert_eq!(fields["surrogate-key"], "products path:/p%2C1");
        assert_eq!(fields["xkey"], "products path:/p%2C1");
        assert_eq!(fields.len(), 2);
        let mut untouched = headers(&[("xkey", "own")]);
        set_tag_fields(&mut untouched, &[XKEY], std::iter::empty());
        set_tag_fields(&mut untouched, &[], ["a"]);
        assert_eq!(untouched["xkey"], "own");
    }
}
