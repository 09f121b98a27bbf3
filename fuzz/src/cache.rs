//! `Cache-Control` and `Vary` handling, driven through the public `CacheLayer` in front of
//! a `service_fn` origin (the parsers themselves are private to `towerkit-cache`).

use std::convert::Infallible;
use std::future::{Future, Ready, ready};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use bytes::Bytes;
use http::header::{ACCEPT_ENCODING, ACCEPT_LANGUAGE, CACHE_CONTROL, CONTENT_TYPE, VARY};
use http::{HeaderMap, HeaderName, HeaderValue, Request, Response, StatusCode};
use http_body_util::{BodyExt, Full};
use tower::{Layer, Service, ServiceExt, service_fn};
use towerkit_cache::{CacheLayer, MemoryStore};

/// The first line is a response's `Cache-Control`, the second the `Cache-Control` of a
/// second request for the same URL; a third request sends none. The layer has a default
/// lifetime of 600 s, as the example service's has. The cache never panics,
/// always answers (200, or 504 to `only-if-cached`), with `Cache-Status`, and with a body
/// the origin produced. On a well-formed response `Cache-Control` (RFC 9111 §5.2 grammar):
/// `no-store`, `private` or `no-cache` without argument mean the third request reaches the
/// origin; a lifetime of at least 60 s (`s-maxage`, else `max-age`) with none of those
/// directives means it does not. A request `no-cache` always reaches the origin.
pub fn cache_control(data: &[u8]) {
    let mut lines = data.split(|&b| b == b'\n');
    let Ok(response_cc) = HeaderValue::from_bytes(lines.next().unwrap_or_default()) else {
        return;
    };
    let request_cc = lines
        .next()
        .and_then(|line| HeaderValue::from_bytes(line).ok());
    block_on(async {
        let calls = Arc::new(AtomicUsize::new(0));
        let origin = {
            let calls = calls.clone();
            let response_cc = response_cc.clone();
            service_fn(
                move |_request: Request<()>| -> Ready<Result<Response<Full<Bytes>>, Infallible>> {
                    let call = calls.fetch_add(1, Ordering::SeqCst) + 1;
                    let mut response = Response::new(Full::new(Bytes::from(format!("v{call}"))));
                    response
                        .headers_mut()
                        .insert(CACHE_CONTROL, response_cc.clone());
                    response
                        .headers_mut()
                        .insert(CONTENT_TYPE, HeaderValue::from_static("text/plain"));
                    ready(Ok(response))
                },
            )
        };
        // As the example service configures it: responses that say nothing get a lifetime.
        let layer = CacheLayer::builder(MemoryStore::new(1 << 20))
            .default_ttl(Duration::from_secs(600))
            .build()
            .expect("valid cache configuration");
        let service = layer.layer(origin);
        let count = || calls.load(Ordering::SeqCst);

        let first = send(&service, HeaderMap::new()).await;
        assert_eq!(
            (first.status, &first.body[..], count()),
            (StatusCode::OK, &b"v1"[..], 1)
        );
        assert_eq!(
            first.headers.get(CACHE_CONTROL),
            Some(&response_cc),
            "the origin's Cache-Control reaches the client"
        );

        let mut headers = HeaderMap::new();
        if let Some(value) = &request_cc {
            headers.insert(CACHE_CONTROL, value.clone());
        }
        let second = send(&service, headers).await;
        let after_second = count();
        if second.status == StatusCode::GATEWAY_TIMEOUT {
            let asked = request_cc
                .as_ref()
                .map(|v| String::from_utf8_lossy(v.as_bytes()).to_ascii_lowercase());
            assert!(
                asked.is_some_and(|cc| cc.contains("only-if-cached")),
                "a 504 nobody asked for"
            );
        } else {
            assert_from_origin(&second, after_second);
        }
        let third = send(&service, HeaderMap::new()).await;
        let after_third = count();
        assert_from_origin(&third, after_third);

        let request_no_cache = request_cc
            .as_ref()
            .and_then(|value| directives(value.as_bytes()))
            .is_some_and(|list| {
                list.iter()
                    .any(|(name, arg)| name == "no-cache" && arg.is_none())
            });
        if request_no_cache {
            assert_eq!(
                after_second, 2,
                "a request no-cache was answered from the cache"
            );
        }
        match directives(response_cc.as_bytes()).map(|list| storage(&list)) {
            Some(Storage::Forbidden) => {
                assert_eq!(
                    after_third,
                    after_second + 1,
                    "{response_cc:?} was answered from the cache"
                );
            }
            Some(Storage::Fresh) => {
                assert_eq!(
                    after_third, after_second,
                    "{response_cc:?} was not reused while fresh"
                );
            }
            Some(Storage::Unspecified) | None => {}
        }
    });
}

/// The first line is a `Vary` field line the origin sends (beside a second one,
/// `x-a, x-b`, and `Cache-Control: max-age=600`); every further line (up to 8) is a request
/// for the same URL: `;`-separated values of `x-a`, `x-b`, `Accept-Encoding` and
/// `Accept-Language`, `~` for absent and `|` between field lines. The origin's body spells
/// out the request's `x-a` and `x-b` as lists; whatever the first `Vary` line holds, every
/// request must get its own body, never one stored for a request with other values.
pub fn vary(data: &[u8]) {
    let mut lines = data.split(|&b| b == b'\n');
    let fuzzed = HeaderValue::from_bytes(lines.next().unwrap_or_default()).ok();
    let requests: Vec<HeaderMap> = lines.take(8).map(request_headers).collect();
    block_on(async {
        let origin = service_fn(
            move |request: Request<()>| -> Ready<Result<Response<Full<Bytes>>, Infallible>> {
                let mut response =
                    Response::new(Full::new(Bytes::from(varied_body(request.headers()))));
                let headers = response.headers_mut();
                headers.insert(CACHE_CONTROL, HeaderValue::from_static("max-age=600"));
                if let Some(value) = &fuzzed {
                    headers.append(VARY, value.clone());
                }
                headers.append(VARY, HeaderValue::from_static("x-a, x-b"));
                ready(Ok(response))
            },
        );
        let service = CacheLayer::new(MemoryStore::new(1 << 20)).layer(origin);
        for headers in requests {
            let expected = varied_body(&headers);
            let reply = send(&service, headers.clone()).await;
            assert_eq!(reply.status, StatusCode::OK);
            assert!(
                reply.body == expected,
                "request {headers:?} got another request's response: {:?} instead of {:?} ({:?})",
                reply.body,
                Bytes::from(expected),
                reply.headers.get("cache-status")
            );
        }
    });
}

/// A response read to the end.
struct Reply {
    status: StatusCode,
    headers: HeaderMap,
    body: Bytes,
}

/// Every answer has `Cache-Status`; a 200's body is `v<n>` for an origin call made so far.
fn assert_from_origin(reply: &Reply, calls: usize) {
    assert_eq!(reply.status, StatusCode::OK);
    let call = std::str::from_utf8(&reply.body)
        .ok()
        .and_then(|body| body.strip_prefix('v')?.parse::<usize>().ok());
    assert!(
        call.is_some_and(|call| (1..=calls).contains(&call)),
        "body {:?} after {calls} calls",
        reply.body
    );
}

async fn send<S, B>(service: &S, headers: HeaderMap) -> Reply
where
    S: Service<Request<()>, Response = Response<B>, Error = Infallible> + Clone,
    B: http_body::Body,
    B::Error: std::fmt::Debug,
{
    let mut request = Request::get("/r").body(()).expect("a valid request");
    *request.headers_mut() = headers;
    let Ok(response) = service.clone().oneshot(request).await;
    let (head, body) = response.into_parts();
    let body = body.collect().await.expect("the body streams").to_bytes();
    assert!(head.headers.contains_key("cache-status"), "no Cache-Status");
    Reply {
        status: head.status,
        headers: head.headers,
        body,
    }
}

fn block_on<F: Future>(future: F) -> F::Output {
    thread_local! {
        static RUNTIME: tokio::runtime::Runtime = tokio::runtime::Builder::new_current_thread()
            .enable_time()
            .build()
            .expect("a Tokio runtime");
    }
    RUNTIME.with(|runtime| runtime.block_on(future))
}

fn request_headers(line: &[u8]) -> HeaderMap {
    const NAMES: [HeaderName; 4] = [
        HeaderName::from_static("x-a"),
        HeaderName::from_static("x-b"),
        ACCEPT_ENCODING,
        ACCEPT_LANGUAGE,
    ];
    let mut headers = HeaderMap::new();
    for (name, part) in NAMES.into_iter().zip(line.split(|&b| b == b';')) {
        if part == b"~" {
            continue;
        }
        for value in part.split(|&b| b == b'|') {
            if let Ok(value) = HeaderValue::from_bytes(value) {
                headers.append(name.clone(), value);
            }
        }
    }
    headers
}

/// `x-a` and `x-b` as lists: field lines combined, members trimmed of spaces and tabs,
/// empty members dropped; `-` for an absent header. Byte for byte: two requests get the
/// same body exactly when their values are the same lists.
fn varied_body(headers: &HeaderMap) -> Vec<u8> {
    let mut body = Vec::new();
    for name in ["x-a", "x-b"] {
        body.extend_from_slice(name.as_bytes());
        body.push(b'=');
        let mut values = headers.get_all(name).iter().peekable();
        if values.peek().is_none() {
            body.extend_from_slice(b"-\n");
            continue;
        }
        let mut first = true;
        for value in values {
            for member in value.as_bytes().split(|&b| b == b',') {
                let member = member.trim_ascii();
                if member.is_empty() {
                    continue;
                }
                if !first {
                    body.push(b',');
                }
                first = false;
                body.push(b'[');
                body.extend_from_slice(member);
                body.push(b']');
            }
        }
        body.push(b'\n');
    }
    body
}

/// What a well-formed response `Cache-Control` says about reuse.
#[derive(Debug, PartialEq, Eq)]
enum Storage {
    /// `no-store`, `private` or `no-cache` without argument: never answered from the cache
    /// without the origin.
    Forbidden,
    /// A lifetime of at least 60 s and nothing that restricts reuse.
    Fresh,
    /// Anything else: not checked.
    Unspecified,
}

fn storage(list: &[(String, Option<Vec<u8>>)]) -> Storage {
    let bare = |name: &str| list.iter().any(|(n, arg)| n == name && arg.is_none());
    let named = |name: &str| list.iter().any(|(n, _)| n == name);
    if bare("no-store") || bare("private") || bare("no-cache") {
        // RFC 9111 §5.2.2.3: with `must-understand`, a cache that knows the status
        // SHOULD ignore `no-store`.
        return if named("must-understand") {
            Storage::Unspecified
        } else {
            Storage::Forbidden
        };
    }
    let mut names: Vec<&str> = list.iter().map(|(n, _)| n.as_str()).collect();
    names.sort_unstable();
    let repeated = names.windows(2).any(|pair| pair[0] == pair[1]);
    if repeated || named("no-store") || named("private") || named("no-cache") {
        return Storage::Unspecified;
    }
    let seconds = |name: &str| {
        list.iter().find(|(n, _)| n == name).map(|(_, arg)| {
            let digits = arg.as_deref().unwrap_or_default();
            if digits.is_empty() || !digits.iter().all(u8::is_ascii_digit) {
                return None;
            }
            Some(
                std::str::from_utf8(digits)
                    .ok()?
                    .parse::<u64>()
                    .unwrap_or(u64::MAX),
            )
        })
    };
    let lifetime = match seconds("s-maxage") {
        Some(shared) => shared,
        None => seconds("max-age").flatten(),
    };
    if lifetime.is_some_and(|seconds| seconds >= 60) {
        Storage::Fresh
    } else {
        Storage::Unspecified
    }
}

/// RFC 9111 §5.2: `#( token [ "=" ( token / quoted-string ) ] )`, names lowercased,
/// quoted strings unescaped; `None` for anything that does not follow the grammar.
fn directives(value: &[u8]) -> Option<Vec<(String, Option<Vec<u8>>)>> {
    let is_tchar = towerkit_http::is_tchar;
    let qdtext = |b: u8| matches!(b, b'\t' | b' ' | 0x21 | 0x23..=0x5b | 0x5d..=0x7e | 0x80..=0xff);
    let mut list = Vec::new();
    let mut i = 0;
    loop {
        while value
            .get(i)
            .is_some_and(|b| matches!(b, b' ' | b'\t' | b','))
        {
            i += 1;
        }
        if i == value.len() {
            return Some(list);
        }
        let start = i;
        while value.get(i).is_some_and(|&b| is_tchar(b)) {
            i += 1;
        }
        if i == start {
            return None;
        }
        let name = String::from_utf8_lossy(&value[start..i]).to_ascii_lowercase();
        let mut arg = None;
        if value.get(i) == Some(&b'=') {
            i += 1;
            let mut text = Vec::new();
            if value.get(i) == Some(&b'"') {
                i += 1;
                loop {
                    match *value.get(i)? {
                        b'"' => break,
                        b'\\' => {
                            let escaped = *value.get(i + 1)?;
                            if !(qdtext(escaped) || escaped == b'"' || escaped == b'\\') {
                                return None;
                            }
                            text.push(escaped);
                            i += 2;
                        }
                        b if qdtext(b) => {
                            text.push(b);
                            i += 1;
                        }
                        _ => return None,
                    }
                }
                i += 1;
            } else {
                let start = i;
                while value.get(i).is_some_and(|&b| is_tchar(b)) {
                    i += 1;
                }
                if i == start {
                    return None;
                }
                text.extend_from_slice(&value[start..i]);
            }
            arg = Some(text);
        }
        list.push((name, arg));
        while value.get(i).is_some_and(|b| matches!(b, b' ' | b'\t')) {
            i += 1;
        }
        match value.get(i) {
            None => return Some(list),
            Some(b',') => {}
            Some(_) => return None,
        }
    }
}
