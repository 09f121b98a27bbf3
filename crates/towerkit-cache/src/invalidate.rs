//! Invalidation on unsafe methods (RFC 9111 §4.4): a `POST`, `PUT`, `DELETE`, … that
//! succeeds removes the stored entries for its target URI and for the same-origin
//! `Location` and `Content-Location` it answers with.

use std::sync::Arc;

use http::header::{CONTENT_LOCATION, LOCATION};
use http::{HeaderValue, Method, Request, Response, Uri, request};
use tower_service::Service;

use crate::body::CacheBody;
use crate::config::Config;
use crate::key::{host_bytes, key_for, primary_key, target_uri};
use crate::respond::forwarded;
use crate::status::{Fwd, Status};

/// Methods that never change state (RFC 9110 §9.2.1): they do not invalidate.
pub(crate) fn is_safe(method: &Method) -> bool {
    matches!(
        *method,
        Method::GET | Method::HEAD | Method::OPTIONS | Method::TRACE
    ) || matches!(method.as_str(), "PROPFIND" | "SEARCH" | "REPORT")
}

/// An unsafe method: forward it, and when it succeeds invalidate the target URI and the
/// same-origin `Location` and `Content-Location` (RFC 9111 §4.4).
pub(crate) async fn unsafe_method<S, ReqBody, ResBody>(
    mut inner: S,
    config: Arc<Config>,
    parts: request::Parts,
    body: ReqBody,
) -> Result<Response<CacheBody<ResBody>>, S::Error>
where
    S: Service<Request<ReqBody>, Response = Response<ResBody>>,
{
    let target = primary_key(&parts, &config.key).into_owned();
    let uri = target_uri(&parts).clone();
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
            match config.shared.store.delete(&key).now() {
                Ok(_) => {}
                Err(pending) => {
                    if let Err(error) = pending.within(config.store_timeout).await {
                        tracing::debug!(%error, "cache invalidation failed");
                    }
                }
            }
        }
    }
    Ok(forwarded(response, &config, Status::forward(Fwd::Method)))
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
