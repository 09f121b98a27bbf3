//! The proxy binary end to end: a hyper origin on a free port, the proxy in front of it.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use http::{Request, Response, StatusCode};
use http_body_util::{BodyExt, Empty, Full};
use hyper_util::client::legacy::Client;
use hyper_util::rt::{TokioExecutor, TokioIo};

/// A port on 127.0.0.1 that refuses connections for as long as the socket lives: bound, so
/// no other process can take it, but not listening.
fn refusing_port() -> tokio::net::TcpSocket {
    let socket = tokio::net::TcpSocket::new_v4().unwrap();
    socket.bind("127.0.0.1:0".parse().unwrap()).unwrap();
    socket
}

/// An origin answering `origin N` with `max-age=60` and a `Surrogate-Control`.
async fn origin() -> (SocketAddr, Arc<AtomicUsize>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let calls = Arc::new(AtomicUsize::new(0));
    let counter = calls.clone();
    tokio::spawn(async move {
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                return;
            };
            let counter = counter.clone();
            tokio::spawn(async move {
                let service =
                    hyper::service::service_fn(move |_request: Request<hyper::body::Incoming>| {
                        let n = counter.fetch_add(1, Ordering::SeqCst) + 1;
                        async move {
                            let response = Response::builder()
                                .header("cache-control", "max-age=60")
                                .header("surrogate-control", "max-age=120")
                                .body(Full::new(Bytes::from(format!("origin {n}"))))
                                .unwrap();
                            Ok::<_, Infallible>(response)
                        }
                    });
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(stream), service)
                    .await;
            });
        }
    });
    (addr, calls)
}

/// The proxy process, killed when dropped.
struct Proxy {
    child: Child,
    port: u16,
}

impl Proxy {
    /// Starts the proxy on a port the system chooses, which it names on stdout: no other
    /// test can take that port between choosing and binding it.
    fn start(upstream: SocketAddr, extra: &[&str]) -> Self {
        let mut child = Command::new(env!("CARGO_BIN_EXE_example-cache-proxy"))
            .args([
                "--listen",
                "127.0.0.1:0",
                "--upstream",
                &format!("http://{upstream}"),
            ])
            .args(extra)
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let mut stdout = std::io::BufReader::new(child.stdout.take().unwrap());
        let mut line = String::new();
        std::io::BufRead::read_line(&mut stdout, &mut line).unwrap();
        let port = line
            .trim()
            .strip_prefix("listening on ")
            .and_then(|addr| addr.parse::<SocketAddr>().ok())
            .unwrap_or_else(|| panic!("the proxy did not start: {line:?}"))
            .port();
        Self { child, port }
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

async fn get(port: u16, path: &str) -> (StatusCode, http::HeaderMap, Bytes) {
    let client: Client<_, Empty<Bytes>> = Client::builder(TokioExecutor::new()).build_http();
    let response = client
        .get(format!("http://127.0.0.1:{port}{path}").parse().unwrap())
        .await
        .unwrap();
    let (head, body) = response.into_parts();
    (
        head.status,
        head.headers,
        body.collect().await.unwrap().to_bytes(),
    )
}

#[tokio::test]
async fn the_second_get_is_answered_by_the_proxy() {
    let (upstream, calls) = origin().await;
    let proxy = Proxy::start(upstream, &[]);
    let (status, headers, body) = get(proxy.port, "/a?x=1").await;
    assert_eq!((status, body.as_ref()), (StatusCode::OK, &b"origin 1"[..]));
    assert_eq!(headers["cache-status"], "towerkit; fwd=miss; stored");
    assert!(
        !headers.contains_key("surrogate-control"),
        "the surrogate's own directives stay with it"
    );
    let (_, headers, body) = get(proxy.port, "/a?x=1").await;
    assert_eq!(body, "origin 1");
    let status = headers["cache-status"].to_str().unwrap();
    let ttl: u64 = status
        .strip_prefix("towerkit; hit; ttl=")
        .unwrap()
        .parse()
        .unwrap();
    // Surrogate-Control (120 s) took precedence over Cache-Control (60 s).
    assert!(ttl > 60, "{status}");
    assert_eq!(get(proxy.port, "/a?x=2").await.2, "origin 2");
    assert_eq!(calls.load(Ordering::SeqCst), 2);
}

/// An origin written by hand, to send what a hyper server cannot: a `103 Early Hints`
/// before each final response, which says `Cache-Control: no-store` to browsers and
/// `CDN-Cache-Control: max-age=60` to the edge.
async fn early_hints_origin() -> (SocketAddr, Arc<AtomicUsize>) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let calls = Arc::new(AtomicUsize::new(0));
    let counter = calls.clone();
    tokio::spawn(async move {
        while let Ok((mut stream, _)) = listener.accept().await {
            let counter = counter.clone();
            tokio::spawn(async move {
                let mut head = Vec::new();
                let mut buffer = [0; 1024];
                while !head.windows(4).any(|window| window == b"\r\n\r\n") {
                    match stream.read(&mut buffer).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => head.extend_from_slice(&buffer[..n]),
                    }
                }
                let n = counter.fetch_add(1, Ordering::SeqCst) + 1;
                let body = format!("origin {n}");
                let response = format!(
                    "HTTP/1.1 103 Early Hints\r\nlink: </s.css>; rel=preload\r\nx-hint: 1\r\n\r\n\
                     HTTP/1.1 200 OK\r\ncache-control: no-store\r\ncdn-cache-control: max-age=60\r\n\
                     content-length: {}\r\nconnection: close\r\n\r\n{body}",
                    body.len()
                );
                let _ = stream.write_all(response.as_bytes()).await;
            });
        }
    });
    (addr, calls)
}

/// A `GET` through the proxy over a raw connection: everything the proxy sent, interim
/// responses included.
async fn raw_get(port: u16, path: &str) -> String {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    let mut stream = tokio::net::TcpStream::connect(("127.0.0.1", port))
        .await
        .unwrap();
    let request = format!("GET {path} HTTP/1.1\r\nhost: proxy\r\nconnection: close\r\n\r\n");
    stream.write_all(request.as_bytes()).await.unwrap();
    let mut received = Vec::new();
    stream.read_to_end(&mut received).await.unwrap();
    String::from_utf8(received).unwrap()
}

#[tokio::test]
async fn the_edge_obeys_cdn_cache_control_and_never_stores_an_interim_response() {
    let (upstream, calls) = early_hints_origin().await;
    let proxy = Proxy::start(upstream, &[]);
    let first = raw_get(proxy.port, "/hinted").await.to_ascii_lowercase();
    // hyper's server cannot send a 1xx before the final response: the 103 is dropped, not
    // forwarded (see the README), and its fields are not merged into the final response.
    assert!(first.starts_with("http/1.1 200 ok\r\n"), "{first}");
    assert!(
        !first.contains("x-hint") && !first.contains("link:"),
        "{first}"
    );
    assert!(
        first.contains("cache-status: towerkit; fwd=miss; stored"),
        "{first}"
    );
    // CDN-Cache-Control is obeyed over Cache-Control: no-store, and forwarded.
    assert!(first.contains("cdn-cache-control: max-age=60"), "{first}");
    assert!(first.ends_with("origin 1"), "{first}");
    let second = raw_get(proxy.port, "/hinted").await.to_ascii_lowercase();
    assert!(second.starts_with("http/1.1 200 ok\r\n"), "{second}");
    assert!(second.contains("cache-status: towerkit; hit"), "{second}");
    assert!(!second.contains("x-hint"), "{second}");
    assert!(second.ends_with("origin 1"), "{second}");
    assert_eq!(calls.load(Ordering::SeqCst), 1);
}

#[tokio::test]
async fn an_unreachable_upstream_is_a_bad_gateway() {
    let refusing = refusing_port();
    let proxy = Proxy::start(refusing.local_addr().unwrap(), &[]);
    assert_eq!(get(proxy.port, "/").await.0, StatusCode::BAD_GATEWAY);
}

#[tokio::test]
async fn with_redis_entries_outlive_the_proxy_process() {
    let redis = std::env::var("REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379".to_owned());
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_nanos();
    let prefix = format!("towerkit-test:proxy:{}:{nanos}:", std::process::id());
    let (upstream, calls) = origin().await;
    let (first_body, stored, second_body, second_status) = {
        let first = Proxy::start(
            upstream,
            &["--redis", &redis, "--prefix", &prefix, "--no-l1"],
        );
        let first_body = get(first.port, "/shared").await.2;
        // The entry is written once the body is complete: wait until a request hits.
        let mut stored = false;
        for _ in 0..100 {
            if get(first.port, "/shared").await.1["cache-status"]
                .to_str()
                .unwrap()
                .contains("; hit")
            {
                stored = true;
                break;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        drop(first);
        let second = Proxy::start(upstream, &["--redis", &redis, "--prefix", &prefix]);
        let (_, headers, second_body) = get(second.port, "/shared").await;
        (
            first_body,
            stored,
            second_body,
            headers["cache-status"].to_str().unwrap().to_owned(),
        )
    };
    // Clean up before asserting, so that a failure leaves nothing behind either.
    let store = towerkit_cache::RedisStore::builder(redis.as_str())
        .prefix(prefix.as_str())
        .connect()
        .await
        .unwrap();
    towerkit_cache::CacheLayer::new(store)
        .handle()
        .purge()
        .await
        .unwrap();

    assert_eq!(first_body, "origin 1");
    assert!(stored);
    assert_eq!(second_body, "origin 1");
    assert!(second_status.contains("; hit"), "{second_status}");
    assert_eq!(calls.load(Ordering::SeqCst), 1);
}

#[tokio::test]
async fn with_a_redis_cluster_two_proxies_share_entries() {
    let cluster = towerkit_test_support::servers::RedisCluster::start()
        .expect("a six-node Redis Cluster starts");
    let nodes = cluster
        .ports()
        .iter()
        .map(|port| format!("127.0.0.1:{port}"))
        .collect::<Vec<_>>()
        .join(",");
    let (upstream, calls) = origin().await;
    let args = ["--redis-cluster", nodes.as_str(), "--no-l1"];
    let first = Proxy::start(upstream, &args);
    let second = Proxy::start(upstream, &args);
    // Enough paths for their keys to fall on all three primaries.
    const PATHS: usize = 12;
    for i in 0..PATHS {
        let (status, headers, _) = get(first.port, &format!("/p{i}")).await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(headers["cache-status"], "towerkit; fwd=miss; stored");
    }
    // With `--no-l1` a hit comes from the cluster: once the first proxy hits, the entry is
    // there, and the second proxy's very first request for it must hit too.
    for i in 0..PATHS {
        let path = format!("/p{i}");
        let mut stored = false;
        for _ in 0..100 {
            if get(first.port, &path).await.1["cache-status"]
                .to_str()
                .unwrap()
                .contains("; hit")
            {
                stored = true;
                break;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        assert!(stored, "{path} reached the cluster");
        let (_, headers, body) = get(second.port, &path).await;
        let status = headers["cache-status"].to_str().unwrap();
        assert!(status.contains("; hit"), "{path}: {status}");
        assert_eq!(body, format!("origin {}", i + 1));
    }
    assert_eq!(calls.load(Ordering::SeqCst), PATHS);
}

#[test]
fn redis_and_redis_cluster_together_exit_with_a_usage_error() {
    let output = Command::new(env!("CARGO_BIN_EXE_example-cache-proxy"))
        .args([
            "--listen",
            "127.0.0.1:0",
            "--upstream",
            "http://127.0.0.1:1",
            "--redis",
            "redis://127.0.0.1:6379/",
            "--redis-cluster",
            "127.0.0.1:7000",
        ])
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("--redis and --redis-cluster exclude each other"),
        "{stderr}"
    );
}

/// An origin that keeps the `traceparent` and `tracestate` of each request it receives.
async fn tracing_origin() -> (SocketAddr, Arc<std::sync::Mutex<Vec<(String, String)>>>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let seen = Arc::new(std::sync::Mutex::new(Vec::new()));
    let record = seen.clone();
    tokio::spawn(async move {
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                return;
            };
            let record = record.clone();
            tokio::spawn(async move {
                let service =
                    hyper::service::service_fn(move |request: Request<hyper::body::Incoming>| {
                        let field = |name: &str| {
                            request
                                .headers()
                                .get(name)
                                .and_then(|v| v.to_str().ok())
                                .unwrap_or_default()
                                .to_owned()
                        };
                        record
                            .lock()
                            .unwrap()
                            .push((field("traceparent"), field("tracestate")));
                        async move {
                            Ok::<_, Infallible>(
                                Response::builder()
                                    .header("cache-control", "max-age=60")
                                    .body(Full::new(Bytes::from_static(b"traced")))
                                    .unwrap(),
                            )
                        }
                    });
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(stream), service)
                    .await;
            });
        }
    });
    (addr, seen)
}

#[tokio::test]
async fn the_upstream_continues_the_clients_trace() {
    let (upstream, seen) = tracing_origin().await;
    let proxy = Proxy::start(upstream, &[]);
    let trace_id = "4bf92f3577b34da6a3ce929d0e0e4736";
    let traceparent = format!("00-{trace_id}-00f067aa0ba902b7-01");
    let client: Client<_, Empty<Bytes>> = Client::builder(TokioExecutor::new()).build_http();
    let request = Request::get(format!("http://127.0.0.1:{}/traced", proxy.port))
        .header("traceparent", &traceparent)
        .header("tracestate", "vendor=opaque")
        .body(Empty::new())
        .unwrap();
    let response = client.request(request).await.unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    let seen = seen.lock().unwrap().clone();
    assert_eq!(seen.len(), 1, "one origin call: {seen:?}");
    let (sent, state) = &seen[0];
    let fields: Vec<&str> = sent.split('-').collect();
    assert_eq!(fields.len(), 4, "a W3C traceparent: {sent:?}");
    assert_eq!(fields[1], trace_id, "the same trace");
    assert_eq!(state, "vendor=opaque");
}
