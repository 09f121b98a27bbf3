//! Hostile requests against the whole stack (timing, cache, compression, the JSON layers,
//! the handlers, a real PostgreSQL database): every pagination and `fields` edge, malformed
//! caching and negotiation headers, oversized heads. Each must get a 4xx with an
//! `application/problem+json` body, or be served normally; never a 5xx, a panic or a hang.
//! The one 5xx a client can ask for is RFC 9111's 504 to `Cache-Control: only-if-cached`
//! when nothing is stored, and it is checked as such.

mod support;

use std::time::Duration;

use axum::body::Body;
use axum::http::{Method, Request, StatusCode};
use serde_json::Value;
use support::{Reply, Served, TestApp, header};

/// What a case must get.
#[derive(Debug, Clone, Copy)]
enum Expect {
    /// A 400 problem naming this parameter in `invalid-params`.
    Problem(&'static str),
    /// A 2xx (or a 304 to a conditional request).
    Served,
    /// Either of the above, or another 4xx problem: the outcome is the implementation's
    /// choice, but it is never an error of the server.
    Handled,
    /// `only-if-cached` with nothing stored: RFC 9111 §5.2.1.7's 504, from the cache.
    NotCached,
    /// A `Range` request: the whole representation (200), a part (206), or RFC 9110's 416
    /// with `Content-Range: bytes */length` (range negotiation, not a problem document).
    Range,
}

/// One hostile request.
struct Case {
    name: String,
    method: Method,
    uri: String,
    headers: Vec<(&'static str, Vec<u8>)>,
    body: Vec<u8>,
    expect: Expect,
}

fn get(name: impl Into<String>, uri: impl Into<String>, expect: Expect) -> Case {
    Case {
        name: name.into(),
        method: Method::GET,
        uri: uri.into(),
        headers: Vec::new(),
        body: Vec::new(),
        expect,
    }
}

fn with_header(
    name: &str,
    header: &'static str,
    value: impl Into<Vec<u8>>,
    expect: Expect,
) -> Case {
    let mut case = get(name, "/api/products?limit=5", expect);
    case.headers.push((header, value.into()));
    case
}

/// `?fields=` values: percent-encoded as a client would send them.
fn fields(expression: &str) -> String {
    let encoded: String = expression
        .bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() {
                char::from(b).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect();
    format!("/api/products?limit=3&fields={encoded}")
}

fn pagination_cases() -> Vec<Case> {
    use Expect::{Handled, Problem, Served};
    let mut cases = vec![
        get("page zero", "/api/products?page=0", Problem("page")),
        get("page negative", "/api/products?page=-1", Problem("page")),
        get("page fraction", "/api/products?page=1.5", Problem("page")),
        get("page exponent", "/api/products?page=1e3", Problem("page")),
        get("page plus sign", "/api/products?page=%2B1", Problem("page")),
        get("page padded", "/api/products?page=%201", Problem("page")),
        get(
            "page non-numeric",
            "/api/products?page=abc",
            Problem("page"),
        ),
        get("page empty", "/api/products?page=", Problem("page")),
        get("page without value", "/api/products?page", Problem("page")),
        get(
            "page unicode digit",
            "/api/products?page=%D9%A3",
            Problem("page"),
        ),
        get("page null byte", "/api/products?page=1%00", Problem("page")),
        get("page bad escape", "/api/products?page=%ZZ", Problem("page")),
        get(
            "page i64 max",
            "/api/products?page=9223372036854775807",
            Problem("page"),
        ),
        get(
            "page beyond u64",
            "/api/products?page=99999999999999999999999",
            Problem("page"),
        ),
        get(
            "page past the end",
            "/api/products?page=100000&limit=100",
            Served,
        ),
        get(
            "page repeated",
            "/api/products?page=1&page=2",
            Problem("page"),
        ),
        get(
            "page with offset",
            "/api/products?page=1&offset=0",
            Problem("page"),
        ),
        get("limit zero", "/api/products?limit=0", Problem("limit")),
        get("limit negative", "/api/products?limit=-5", Problem("limit")),
        get(
            "limit non-numeric",
            "/api/products?limit=ten",
            Problem("limit"),
        ),
        get("limit empty", "/api/products?limit=", Problem("limit")),
        get("limit above the maximum", "/api/products?limit=101", Served),
        get(
            "limit huge",
            "/api/products?limit=9223372036854775807",
            Served,
        ),
        get(
            "limit beyond u64",
            "/api/products?limit=184467440737095516160",
            Problem("limit"),
        ),
        get(
            "limit repeated",
            "/api/products?limit=5&limit=6",
            Problem("limit"),
        ),
        get(
            "limit with per_page",
            "/api/products?limit=5&per_page=6",
            Problem("limit"),
        ),
        get(
            "per_page zero",
            "/api/products?per_page=0",
            Problem("per_page"),
        ),
        get(
            "offset negative",
            "/api/products?offset=-1",
            Problem("offset"),
        ),
        get(
            "offset i64 max",
            "/api/products?offset=9223372036854775807&limit=5",
            Served,
        ),
        get(
            "offset beyond i64",
            "/api/products?offset=9223372036854775808",
            Problem("offset"),
        ),
        get(
            "offset non-numeric",
            "/api/products?offset=x",
            Problem("offset"),
        ),
        get(
            "cursor garbage",
            "/api/products?cursor=garbage",
            Problem("cursor"),
        ),
        get("cursor empty", "/api/products?cursor=", Problem("cursor")),
        get(
            "cursor long",
            format!("/api/products?cursor={}", "A".repeat(4096)),
            Problem("cursor"),
        ),
        get(
            "cursor unicode",
            "/api/products?cursor=%E2%9C%93",
            Problem("cursor"),
        ),
        get(
            "cursor with page",
            "/api/products?cursor=abc&page=2",
            Problem("page"),
        ),
        get(
            "category non-numeric",
            "/api/products?category=three",
            Problem("category"),
        ),
        get(
            "category huge",
            "/api/products?category=99999999999",
            Problem("category"),
        ),
        get("category negative", "/api/products?category=-1", Served),
        get(
            "category repeated",
            "/api/products?category=1&category=2",
            Handled,
        ),
        get(
            "category unicode",
            "/api/products?category=%E4%B8%80",
            Problem("category"),
        ),
        get("query only separators", "/api/products?&&&=&", Handled),
        get(
            "query semicolons",
            "/api/products?page=1;limit=2",
            Problem("page"),
        ),
        get("id zero", "/api/products/0", Handled),
        get("id negative", "/api/products/-1", Handled),
        get("id non-numeric", "/api/products/abc", Problem("id")),
        get(
            "id beyond i64",
            "/api/products/99999999999999999999",
            Problem("id"),
        ),
        get("id unicode", "/api/products/%E2%91%A0", Problem("id")),
        get(
            "id long",
            format!("/api/products/{}", "9".repeat(10_000)),
            Problem("id"),
        ),
        get(
            "categories page zero",
            "/api/categories?page=0",
            Problem("page"),
        ),
        get(
            "categories limit non-numeric",
            "/api/categories?limit=x",
            Problem("limit"),
        ),
        get(
            "categories page past the end",
            "/api/categories?page=999999",
            Served,
        ),
        get(
            "categories offset huge",
            "/api/categories?offset=9223372036854775807",
            Served,
        ),
        get(
            "categories page repeated",
            "/api/categories?page=1&page=1",
            Problem("page"),
        ),
    ];
    let fields_cases = [
        ("fields empty", "", Handled),
        ("fields comma", ",", Problem("fields")),
        ("fields open parenthesis", "(", Problem("fields")),
        ("fields close parenthesis", ")", Problem("fields")),
        ("fields unclosed", "data(id", Problem("fields")),
        ("fields minus alone", "-", Problem("fields")),
        ("fields double minus", "--id", Served),
        ("fields nested exclusion", "-a(-b)", Problem("fields")),
        ("fields star in name", "id*", Problem("fields")),
        ("fields stars", "**/**,*", Served),
        ("fields unicode", "名前,ä/ö", Served),
        ("fields unicode whitespace", "id\u{3000},\u{a0}name", Served),
        ("fields control characters", "id\u{0},na\u{1b}me", Served),
        ("fields unknown", "no_such_field", Served),
    ];
    for (name, expression, expect) in fields_cases {
        cases.push(get(name, fields(expression), expect));
    }
    // `http::Uri` holds at most 64 KiB, percent-encoding triples most of these bytes: the
    // 100 KB expression goes over a real connection below.
    let long = "id,".repeat(10_000);
    cases.push(get("fields 30 KB", fields(&long), Problem("fields")));
    let deep = format!("{}id{}", "a(".repeat(300), ")".repeat(300));
    cases.push(get(
        "fields 300 nested parentheses",
        fields(&deep),
        Problem("fields"),
    ));
    let deeper = format!("{}id{}", "(".repeat(9_000), ")".repeat(9_000));
    cases.push(get(
        "fields 9 000 nested parentheses",
        fields(&deeper),
        Problem("fields"),
    ));
    let nodes = (0..200)
        .map(|n| format!("f{n}"))
        .collect::<Vec<_>>()
        .join(",");
    cases.push(get("fields 200 names", fields(&nodes), Problem("fields")));
    cases.push(get(
        "fields repeated",
        "/api/products?limit=2&fields=id&fields=name",
        Handled,
    ));
    cases.push(get(
        "fields on categories",
        "/api/categories?fields=(((",
        Problem("fields"),
    ));
    cases
}

fn header_cases() -> Vec<Case> {
    use Expect::{Handled, Served};
    let mut cases = vec![
        with_header(
            "Cache-Control malformed max-age",
            "cache-control",
            "max-age=abc",
            Served,
        ),
        with_header(
            "Cache-Control unterminated quote",
            "cache-control",
            "no-cache=\"x, max-age=1",
            Served,
        ),
        with_header(
            "Cache-Control huge max-age",
            "cache-control",
            "max-age=99999999999999999999999",
            Served,
        ),
        with_header(
            "Cache-Control negative max-stale",
            "cache-control",
            "max-stale=-1, min-fresh=-1",
            Served,
        ),
        with_header(
            "Cache-Control separators only",
            "cache-control",
            ",,,;;;===",
            Served,
        ),
        with_header(
            "Cache-Control huge min-fresh",
            "cache-control",
            "min-fresh=99999999999",
            Served,
        ),
        with_header(
            "Cache-Control obs-text",
            "cache-control",
            b"max-age=\xff\xfe, no-store=\"\xe9\"".to_vec(),
            Served,
        ),
        with_header(
            "Cache-Control 8 KB",
            "cache-control",
            "no-cache, ".repeat(800),
            Served,
        ),
        with_header("Pragma garbage", "pragma", "no-cache=\"\"\"", Served),
        // `/api/products?limit=5` is stored by the cases before this one.
        with_header(
            "Cache-Control only-if-cached, stored",
            "cache-control",
            "only-if-cached",
            Served,
        ),
        with_header(
            "Accept-Encoding bad q",
            "accept-encoding",
            "gzip;q=abc, br;q=",
            Served,
        ),
        with_header(
            "Accept-Encoding q above 1",
            "accept-encoding",
            "br;q=1.5, gzip;q=99",
            Served,
        ),
        with_header(
            "Accept-Encoding q NaN",
            "accept-encoding",
            "gzip;q=NaN, zstd;q=inf",
            Served,
        ),
        with_header(
            "Accept-Encoding refuses all",
            "accept-encoding",
            "*;q=0",
            Handled,
        ),
        with_header(
            "Accept-Encoding refuses identity",
            "accept-encoding",
            "identity;q=0",
            Handled,
        ),
        with_header(
            "Accept-Encoding separators only",
            "accept-encoding",
            ",,;;,",
            Served,
        ),
        with_header(
            "Accept-Encoding unknown codings",
            "accept-encoding",
            "x-unknown, compress, deflate",
            Served,
        ),
        with_header(
            "Accept-Encoding 8 KB",
            "accept-encoding",
            "gzip, ".repeat(1400),
            Served,
        ),
        with_header(
            "Accept-Encoding obs-text",
            "accept-encoding",
            b"gz\xffip, br\xfe".to_vec(),
            Served,
        ),
        with_header(
            "If-None-Match unterminated",
            "if-none-match",
            "\"abc",
            Served,
        ),
        with_header("If-None-Match bare W/", "if-none-match", "W/", Served),
        with_header("If-None-Match star", "if-none-match", "*", Served),
        with_header("If-None-Match commas", "if-none-match", ",,,", Served),
        with_header(
            "If-None-Match 1000 tags",
            "if-none-match",
            (0..1000)
                .map(|n| format!("W/\"{n}\""))
                .collect::<Vec<_>>()
                .join(", "),
            Served,
        ),
        with_header(
            "If-None-Match obs-text",
            "if-none-match",
            b"\"\xff\xfe\"".to_vec(),
            Served,
        ),
        with_header(
            "If-Modified-Since garbage",
            "if-modified-since",
            "yesterday",
            Served,
        ),
        with_header(
            "If-Modified-Since far future",
            "if-modified-since",
            "Fri, 31 Dec 9999 23:59:59 GMT",
            Served,
        ),
        with_header("If-Match garbage", "if-match", "\"x", Handled),
        with_header("Range garbage", "range", "bytes=abc", Expect::Range),
        with_header(
            "Range huge",
            "range",
            "bytes=99999999999999999999-",
            Expect::Range,
        ),
        with_header(
            "Range many",
            "range",
            format!("bytes={}", "0-0,".repeat(500)),
            Expect::Range,
        ),
        with_header("Range suffix zero", "range", "bytes=-0", Expect::Range),
        with_header(
            "Accept-Language garbage",
            "accept-language",
            "*;q=x, ;;, en-;q=2",
            Served,
        ),
        with_header("Accept malformed", "accept", "*/*;q=abc, /, json", Handled),
        with_header("Host forged", "host", "evil.example:99999", Served),
        with_header("Host with userinfo", "host", "user@evil.example", Served),
        with_header(
            "X-Forwarded-Host",
            "x-forwarded-host",
            "evil.example",
            Served,
        ),
        with_header(
            "X-Original-URL",
            "x-original-url",
            "/api/products/1",
            Served,
        ),
        with_header(
            "Authorization garbage",
            "authorization",
            "Bearer \u{1}".replace('\u{1}', "x"),
            Served,
        ),
        with_header("Cookie 8 KB", "cookie", "a=b; ".repeat(1600), Served),
        with_header(
            "header value 100 KB",
            "x-junk",
            "x".repeat(100 * 1024),
            Served,
        ),
    ];
    let mut not_cached = get(
        "Cache-Control only-if-cached, not stored",
        "/api/products?limit=7",
        Expect::NotCached,
    );
    not_cached
        .headers
        .push(("cache-control", b"only-if-cached".to_vec()));
    cases.push(not_cached);
    let mut many = get("200 headers", "/api/products?limit=5", Served);
    for n in 0..200 {
        many.headers.push(("x-many", format!("v{n}").into_bytes()));
    }
    cases.push(many);
    let mut post = get("POST malformed JSON", "/api/products", Handled);
    post.method = Method::POST;
    // With the token, so the hostile body reaches the JSON parser, not the 401.
    post.headers
        .push(("authorization", support::bearer().into_bytes()));
    post.headers
        .push(("content-type", b"application/json".to_vec()));
    post.body = b"{\"name\": \"x\", ".to_vec();
    cases.push(post);
    let mut deep_body = get("POST deeply nested JSON", "/api/products", Handled);
    deep_body.method = Method::POST;
    // With the token, so the hostile body reaches the JSON parser, not the 401.
    deep_body
        .headers
        .push(("authorization", support::bearer().into_bytes()));
    deep_body
        .headers
        .push(("content-type", b"application/json".to_vec()));
    deep_body.body = format!("{}{}", "[".repeat(20_000), "]".repeat(20_000)).into_bytes();
    cases.push(deep_body);
    let mut invalid_utf8 = get("PUT invalid UTF-8", "/api/products/1", Handled);
    invalid_utf8.method = Method::PUT;
    // With the token, so the hostile body reaches the JSON parser, not the 401.
    invalid_utf8
        .headers
        .push(("authorization", support::bearer().into_bytes()));
    invalid_utf8
        .headers
        .push(("content-type", b"application/json".to_vec()));
    invalid_utf8.body =
        b"{\"name\": \"\xff\xfe\", \"category_id\": 1, \"price_cents\": 1}".to_vec();
    cases.push(invalid_utf8);
    cases
}

/// Why `reply` is not what `expect` allows, if it is not.
fn verdict(reply: &Reply, expect: Expect, conditional: bool) -> Result<(), String> {
    let status = reply.status;
    let served = status.is_success() || (conditional && status == StatusCode::NOT_MODIFIED);
    // Served normally means a whole JSON document, not a broken one.
    if status.is_success()
        && header(reply, "content-type") == "application/json"
        && header(reply, "content-encoding").is_empty()
        && serde_json::from_slice::<Value>(&reply.body).is_err()
    {
        return Err(format!(
            "{status} with a body that is not JSON: {}",
            reply.text()
        ));
    }
    let problem = || -> Result<Value, String> {
        if header(reply, "content-type") != "application/problem+json" {
            return Err(format!(
                "{status} with content-type {:?}: {}",
                header(reply, "content-type"),
                reply.text()
            ));
        }
        let body: Value = serde_json::from_slice(&reply.body)
            .map_err(|e| format!("{status}: problem body is not JSON ({e})"))?;
        if body["status"] != status.as_u16() {
            return Err(format!(
                "{status}: problem body says status {}",
                body["status"]
            ));
        }
        Ok(body)
    };
    match expect {
        Expect::Served if served => Ok(()),
        Expect::Problem(parameter) if status == StatusCode::BAD_REQUEST => {
            let body = problem()?;
            let names: Vec<&Value> = body["invalid-params"]
                .as_array()
                .into_iter()
                .flatten()
                .map(|p| &p["name"])
                .collect();
            if names.iter().any(|name| *name == parameter) {
                Ok(())
            } else {
                Err(format!("400 naming {names:?}, not {parameter:?}: {body}"))
            }
        }
        Expect::Handled if served => Ok(()),
        Expect::Handled if status.is_client_error() => problem().map(drop),
        Expect::NotCached if status == StatusCode::GATEWAY_TIMEOUT => {
            if header(reply, "cache-status").is_empty() {
                Err("a 504 that did not come from the cache".to_owned())
            } else {
                Ok(())
            }
        }
        Expect::Range if status == StatusCode::OK || status == StatusCode::PARTIAL_CONTENT => {
            Ok(())
        }
        Expect::Range if status == StatusCode::RANGE_NOT_SATISFIABLE => {
            let range = header(reply, "content-range");
            if range.starts_with("bytes */") && reply.body.is_empty() {
                Ok(())
            } else {
                Err(format!(
                    "416 with Content-Range {range:?} and {} body bytes",
                    reply.body.len()
                ))
            }
        }
        _ => Err(format!(
            "{status}: {}",
            reply.text().chars().take(300).collect::<String>()
        )),
    }
}

#[tokio::test]
async fn hostile_requests_get_problems_or_answers_never_errors() {
    let app = TestApp::start().await;
    let mut failures = Vec::new();
    let cases: Vec<Case> = pagination_cases()
        .into_iter()
        .chain(header_cases())
        .collect();
    let total = cases.len();
    for case in cases {
        let mut request = Request::builder()
            .method(case.method.clone())
            .uri(&case.uri);
        if !case.headers.iter().any(|(name, _)| *name == "host") {
            request = request.header("host", "api.test");
        }
        for (name, value) in &case.headers {
            request = request.header(*name, value.as_slice());
        }
        let request = match request.body(Body::from(case.body.clone())) {
            Ok(request) => request,
            Err(error) => {
                failures.push(format!(
                    "{}: the test built no request ({error})",
                    case.name
                ));
                continue;
            }
        };
        let conditional = case.headers.iter().any(|(name, _)| name.starts_with("if-"));
        match tokio::time::timeout(Duration::from_secs(10), app.send_request(request)).await {
            Err(_) => failures.push(format!("{}: no answer within 10 s", case.name)),
            Ok(reply) => {
                eprintln!(
                    "{:<40} {} {}",
                    case.name,
                    reply.status.as_u16(),
                    header(&reply, "content-type")
                );
                if let Err(why) = verdict(&reply, case.expect, conditional) {
                    failures.push(format!(
                        "{} ({:?}): {why} {:?}",
                        case.name, case.expect, reply.headers
                    ));
                }
            }
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {total} hostile requests mishandled:\n{}",
        failures.len(),
        failures.join("\n")
    );
    // The service still works after all of that.
    let after = app.get("/api/products?limit=2").await;
    assert_eq!(after.status, StatusCode::OK);
}

/// A raw request on a real connection, with `Connection: close`.
fn raw(target: &str, extra: &str) -> Vec<u8> {
    format!("GET {target} HTTP/1.1\r\nHost: api.test\r\nConnection: close\r\n{extra}\r\n")
        .into_bytes()
}

#[tokio::test]
async fn oversized_and_malformed_heads_get_hyper_rejections_not_server_errors() {
    let app = TestApp::start().await;
    let served = Served::start(app.router.clone()).await;

    // A well-formed request on the same listener is served: the rejections below are about
    // the requests, not a broken server.
    let normal = served.exchange(&raw("/api/products?limit=1", "")).await;
    assert_eq!(normal.status, Some(200), "{}", normal.head);

    let huge_header = format!("X-Junk: {}\r\n", "x".repeat(1024 * 1024));
    let many_headers: String = (0..200).map(|n| format!("X-Many-{n}: v\r\n")).collect();
    let long_target = format!("/api/products?fields={}", "a".repeat(1024 * 1024));
    let long_fields = format!(
        "/api/products?limit=2&fields={}",
        "id%2C".repeat(100 * 1024 / 3)
    );
    let cases: Vec<(&str, Vec<u8>)> = vec![
        ("a 1 MB header", raw("/api/products", &huge_header)),
        ("200 header fields", raw("/api/products", &many_headers)),
        ("a 1 MB request target", raw(&long_target, "")),
        ("a 100 KB fields expression", raw(&long_fields, "")),
        ("raw UTF-8 in the target", raw("/api/products?fields=名前", "")),
        ("a space in the target", raw("/api/products?fields=a b", "")),
        ("a header without a colon", raw("/api/products", "X-Broken\r\n")),
        (
            "a bare LF in a header value",
            b"GET /api/products HTTP/1.1\r\nHost: a\r\nX-A: 1\nX-B: 2\r\nConnection: close\r\n\r\n".to_vec(),
        ),
        ("a NUL in a header value", b"GET /api/products HTTP/1.1\r\nHost: a\r\nX-A: 1\x002\r\nConnection: close\r\n\r\n".to_vec()),
        ("an unknown HTTP version", b"GET /api/products HTTP/9.9\r\nHost: a\r\nConnection: close\r\n\r\n".to_vec()),
        ("garbage instead of a request", b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03 not HTTP\r\n\r\n".to_vec()),
        (
            "a Content-Length that lies",
            b"POST /api/products HTTP/1.1\r\nHost: a\r\nContent-Type: application/json\r\nContent-Length: 99999999999999999999\r\nConnection: close\r\n\r\n{}".to_vec(),
        ),
        (
            "two Content-Lengths",
            b"POST /api/products HTTP/1.1\r\nHost: a\r\nContent-Length: 2\r\nContent-Length: 3\r\nConnection: close\r\n\r\n{}".to_vec(),
        ),
    ];
    let mut failures = Vec::new();
    for (name, request) in cases {
        let reply = tokio::time::timeout(Duration::from_secs(20), served.exchange(&request)).await;
        match reply {
            Err(_)
            | Ok(support::RawReply {
                timed_out: true, ..
            }) => failures.push(format!("{name}: no answer and no close")),
            Ok(reply) => {
                eprintln!("{name:<40} {:?}", reply.status);
                match reply.status {
                    // hyper answers 431 (head too large), 414 (target too long) or 400 (not
                    // HTTP), or closes the connection; what it parses (leniently: raw UTF-8
                    // in the target, a bare LF) is the application's to answer.
                    None => {}
                    Some(status)
                        if (200..300).contains(&status) || (400..500).contains(&status) => {}
                    Some(status) => failures.push(format!(
                        "{name}: {status}: {}",
                        reply.head.lines().next().unwrap_or_default()
                    )),
                }
            }
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
    let after = served.exchange(&raw("/api/products?limit=1", "")).await;
    assert_eq!(
        after.status,
        Some(200),
        "the server still serves: {}",
        after.head
    );
}
