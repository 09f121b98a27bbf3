//! A caching reverse proxy: towerkit's `CacheLayer` in front of a hyper client.
//!
//! ```text
//! example-cache-proxy --listen 127.0.0.1:8002 --upstream http://127.0.0.1:8000
//!                     [--redis redis://127.0.0.1:6379/ | --redis-cluster host:port,host:port,...]
//!                     [--prefix towerkit:proxy:] [--no-l1] [--redis-ca ca.pem]
//! ```
//!
//! It prints `listening on ADDR` on stdout once it accepts connections (logs go to stderr),
//! so `--listen 127.0.0.1:0` lets the system choose a free port.
//!
//! Without `--redis` or `--redis-cluster` entries live in memory; with either, in memory in
//! front of Redis (a `TieredStore`), or in Redis alone with `--no-l1`. `--redis-cluster`
//! takes a Redis Cluster's seed nodes, each `host:port` or a full `redis://` / `rediss://`
//! URL. A `rediss://` URL speaks TLS, trusting the system's roots or, with `--redis-ca`, a
//! private CA's root certificate (PEM). The proxy acts as a surrogate named `towerkit` (it
//! honours `Surrogate-Control` aimed at it) and as the edge in front of its upstream: it
//! obeys `CDN-Cache-Control` (RFC 9213), which it also forwards. It shows the layer working on a plain hyper
//! service, not only on axum: the whole stack is `hyper server -> CacheLayer -> hyper
//! client`.
//!
//! A request's W3C trace context (`traceparent`, `tracestate`) goes on to the upstream
//! unchanged with the request the cache forwards, so the upstream's spans join the
//! client's trace; the proxy itself records no spans (it is a plain hop in the trace).

use std::convert::Infallible;
use std::net::SocketAddr;
use std::process::ExitCode;

use bytes::Bytes;
use http::header::{CONNECTION, HOST};
use http::{HeaderMap, HeaderName, Request, Response, StatusCode, Uri};
use http_body_util::combinators::BoxBody;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::service::TowerToHyperService;
use tower::{Service, ServiceBuilder, ServiceExt};
use towerkit_cache::{CacheLayer, MemoryStore, RedisStore, TieredStore};

/// The request body the cache and the upstream client see.
type ProxyBody = BoxBody<Bytes, hyper::Error>;

/// Command-line options.
#[derive(Debug)]
struct Options {
    listen: SocketAddr,
    upstream: Uri,
    redis: Option<Redis>,
    redis_ca: Option<std::path::PathBuf>,
    prefix: String,
    l1: bool,
    memory: u64,
}

/// Where the shared entries live.
#[derive(Debug, PartialEq)]
enum Redis {
    /// `--redis URL`: one server.
    Server(String),
    /// `--redis-cluster NODES`: a Redis Cluster's seed nodes, as URLs.
    Cluster(Vec<String>),
}

const USAGE: &str = "usage: example-cache-proxy --listen ADDR --upstream URL [--redis URL | --redis-cluster HOST:PORT,...] [--redis-ca PEM] [--prefix PREFIX] [--no-l1] [--memory-mb N]";

fn parse(args: impl Iterator<Item = String>) -> Result<Options, String> {
    let mut listen = None;
    let mut upstream = None;
    let mut redis = None;
    let mut redis_cluster = None;
    let mut redis_ca = None;
    let mut prefix = "towerkit:proxy:".to_owned();
    let mut l1 = true;
    let mut memory = 256;
    let mut args = args;
    while let Some(arg) = args.next() {
        let mut value = |name: &str| args.next().ok_or_else(|| format!("{name} needs a value"));
        match arg.as_str() {
            "--listen" => {
                listen = Some(
                    value("--listen")?
                        .parse()
                        .map_err(|e| format!("--listen: {e}"))?,
                )
            }
            "--upstream" => {
                upstream = Some(
                    value("--upstream")?
                        .parse::<Uri>()
                        .map_err(|e| format!("--upstream: {e}"))?,
                )
            }
            "--redis" => redis = Some(value("--redis")?),
            "--redis-cluster" => redis_cluster = Some(cluster_nodes(&value("--redis-cluster")?)?),
            "--redis-ca" => redis_ca = Some(value("--redis-ca")?.into()),
            "--prefix" => prefix = value("--prefix")?,
            "--no-l1" => l1 = false,
            "--memory-mb" => {
                memory = value("--memory-mb")?
                    .parse()
                    .map_err(|e| format!("--memory-mb: {e}"))?
            }
            "--help" | "-h" => return Err(USAGE.to_owned()),
            other => return Err(format!("unknown argument {other:?}\n{USAGE}")),
        }
    }
    let listen = listen.ok_or_else(|| format!("--listen is required\n{USAGE}"))?;
    let upstream: Uri = upstream.ok_or_else(|| format!("--upstream is required\n{USAGE}"))?;
    if upstream.scheme_str() != Some("http") || upstream.authority().is_none() {
        return Err(format!(
            "--upstream must be an http://host:port URL, got {upstream}"
        ));
    }
    let redis = match (redis, redis_cluster) {
        (Some(_), Some(_)) => {
            return Err(format!(
                "--redis and --redis-cluster exclude each other: give --redis URL for one \
                 server or --redis-cluster HOST:PORT,... for a cluster\n{USAGE}"
            ));
        }
        (Some(url), None) => Some(Redis::Server(url)),
        (None, Some(nodes)) => Some(Redis::Cluster(nodes)),
        (None, None) => None,
    };
    if let (Some(Redis::Cluster(nodes)), Some(_)) = (&redis, &redis_ca)
        && nodes.iter().all(|node| node.starts_with("redis://"))
    {
        return Err(
            "--redis-ca is given but the --redis-cluster nodes are plain TCP: write each node as rediss://host:port to use TLS"
                .to_owned(),
        );
    }
    Ok(Options {
        listen,
        upstream,
        redis,
        redis_ca,
        prefix,
        l1,
        memory,
    })
}

/// The nodes of `--redis-cluster`: `host:port` becomes `redis://host:port`, a `redis://`
/// or `rediss://` URL stays. Errors show no entry that could hold a password.
fn cluster_nodes(list: &str) -> Result<Vec<String>, String> {
    let mut nodes = Vec::new();
    for entry in list.split(',').map(str::trim).filter(|e| !e.is_empty()) {
        let node = match entry.split_once("://") {
            Some(("redis" | "rediss", "")) => {
                return Err(format!("--redis-cluster: {entry:?} has no host"));
            }
            Some(("redis" | "rediss", _)) => entry.to_owned(),
            Some((scheme, _)) => {
                return Err(format!(
                    "--redis-cluster: a node URL must be redis://host:port or rediss://host:port, got the scheme {scheme:?}"
                ));
            }
            None if entry.contains(['@', '/']) => {
                return Err(
                    "--redis-cluster: a node with a user, password or path must be a full redis:// or rediss:// URL"
                        .to_owned(),
                );
            }
            None => {
                let port = entry.rsplit_once(':').and_then(|(host, port)| {
                    let bracketed = host.starts_with('[') && host.ends_with(']');
                    let plain = !host.is_empty() && !host.contains(':');
                    (bracketed || plain).then_some(port)
                });
                match port.map(str::parse::<u16>) {
                    Some(Ok(1..)) => format!("redis://{entry}"),
                    _ => {
                        return Err(format!(
                            "--redis-cluster: {entry:?} is not host:port ([v6]:port for IPv6)"
                        ));
                    }
                }
            }
        };
        nodes.push(node);
    }
    if nodes.is_empty() {
        return Err("--redis-cluster needs at least one host:port".to_owned());
    }
    let tls = |node: &String| node.starts_with("rediss://");
    if nodes.iter().any(tls) && !nodes.iter().all(tls) {
        return Err(
            "--redis-cluster mixes rediss:// (TLS) and plain nodes: write every node as rediss://host:port or none"
                .to_owned(),
        );
    }
    Ok(nodes)
}

#[tokio::main]
async fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
        .with_writer(std::io::stderr)
        .init();
    let options = match parse(std::env::args().skip(1)) {
        Ok(options) => options,
        Err(message) => {
            eprintln!("{message}");
            return ExitCode::from(2);
        }
    };
    match run(options).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("example-cache-proxy: {error}");
            ExitCode::FAILURE
        }
    }
}

async fn run(options: Options) -> Result<(), Box<dyn std::error::Error>> {
    let memory = MemoryStore::new(options.memory * 1024 * 1024);
    let builder = match &options.redis {
        None => CacheLayer::builder(memory),
        Some(target) => {
            let redis = match target {
                Redis::Server(url) => RedisStore::builder(url.as_str()),
                Redis::Cluster(nodes) => RedisStore::cluster(nodes.iter().cloned()),
            };
            let mut redis = redis.prefix(options.prefix.as_str());
            if let Some(path) = &options.redis_ca {
                let pem = std::fs::read(path)
                    .map_err(|e| format!("--redis-ca {}: {e}", path.display()))?;
                redis = redis.tls_root_certificate(pem);
            }
            let redis = redis.connect().await?;
            if options.l1 {
                CacheLayer::builder(TieredStore::new(memory, redis))
            } else {
                CacheLayer::builder(redis)
            }
        }
    };
    let layer = builder
        .surrogate("towerkit")
        .cdn_cache_control(true)
        .build()?;

    let client: Client<HttpConnector, ProxyBody> =
        Client::builder(TokioExecutor::new()).build_http();
    let upstream = Upstream {
        client,
        base: options.upstream.clone(),
    };
    let cached = ServiceBuilder::new().layer(layer).service(upstream);

    let listener = tokio::net::TcpListener::bind(options.listen).await?;
    let listen = listener.local_addr()?;
    // The one line on stdout (logs go to stderr): with `--listen 127.0.0.1:0` it names the
    // port the system chose, so a script or test never races another process for a port.
    println!("listening on {listen}");
    tracing::info!(%listen, upstream = %options.upstream, "cache proxy listening");
    loop {
        let (stream, _) = match listener.accept().await {
            Ok(accepted) => accepted,
            Err(error) => {
                tracing::warn!(%error, "accept failed");
                continue;
            }
        };
        let cached = cached.clone();
        let service = tower::service_fn(move |request: Request<Incoming>| {
            let cached = cached.clone();
            async move { Ok::<_, Infallible>(handle(cached, request).await) }
        });
        tokio::spawn(async move {
            let connection = hyper::server::conn::http1::Builder::new()
                .serve_connection(TokioIo::new(stream), TowerToHyperService::new(service));
            if let Err(error) = connection.await {
                tracing::debug!(%error, "connection ended with an error");
            }
        });
    }
}

/// One request through the cache; an upstream failure becomes `502 Bad Gateway`.
async fn handle<S, B>(
    cached: S,
    request: Request<Incoming>,
) -> Response<BoxBody<Bytes, Box<dyn std::error::Error + Send + Sync>>>
where
    S: Service<Request<ProxyBody>, Response = Response<B>>,
    S::Error: std::fmt::Display,
    B: http_body::Body<Data = Bytes> + Send + Sync + 'static,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    let request = request.map(|body| body.boxed());
    match cached.oneshot(request).await {
        Ok(response) => response.map(|body| body.map_err(Into::into).boxed()),
        Err(error) => {
            tracing::debug!(%error, "upstream request failed");
            let mut response = Response::new(
                Full::new(Bytes::from_static(b"bad gateway\n"))
                    .map_err(|never| match never {})
                    .boxed(),
            );
            *response.status_mut() = StatusCode::BAD_GATEWAY;
            response
        }
    }
}

/// The origin: a pooled hyper client that sends each request to the upstream base URL.
#[derive(Clone)]
struct Upstream {
    client: Client<HttpConnector, ProxyBody>,
    base: Uri,
}

impl Service<Request<ProxyBody>> for Upstream {
    type Response = Response<Incoming>;
    type Error = hyper_util::client::legacy::Error;
    type Future =
        std::pin::Pin<Box<dyn Future<Output = Result<Response<Incoming>, Self::Error>> + Send>>;

    fn poll_ready(
        &mut self,
        _cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Result<(), Self::Error>> {
        std::task::Poll::Ready(Ok(()))
    }

    fn call(&mut self, request: Request<ProxyBody>) -> Self::Future {
        let (mut parts, body) = request.into_parts();
        let path_and_query = parts.uri.path_and_query().map_or("/", |pq| pq.as_str());
        let mut uri = self.base.clone().into_parts();
        uri.path_and_query = path_and_query.parse().ok();
        if let Ok(target) = Uri::from_parts(uri) {
            parts.uri = target;
        }
        strip_hop_by_hop(&mut parts.headers);
        if !parts.headers.contains_key(HOST)
            && let Some(authority) = self.base.authority().and_then(|a| a.as_str().parse().ok())
        {
            parts.headers.insert(HOST, authority);
        }
        let client = self.client.clone();
        Box::pin(async move {
            let mut response = client.request(Request::from_parts(parts, body)).await?;
            strip_hop_by_hop(response.headers_mut());
            Ok(response)
        })
    }
}

/// Removes the fields that concern one connection only (RFC 9110 §7.6.1).
fn strip_hop_by_hop(headers: &mut HeaderMap) {
    let listed: Vec<HeaderName> = headers
        .get_all(CONNECTION)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .flat_map(|value| value.split(','))
        .filter_map(|name| HeaderName::from_bytes(name.trim().as_bytes()).ok())
        .collect();
    for name in listed {
        headers.remove(name);
    }
    for name in [
        "connection",
        "keep-alive",
        "proxy-connection",
        "te",
        "trailer",
        "transfer-encoding",
        "upgrade",
    ] {
        headers.remove(name);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(list: &[&str]) -> impl Iterator<Item = String> {
        list.iter()
            .map(|s| (*s).to_owned())
            .collect::<Vec<_>>()
            .into_iter()
    }

    #[test]
    fn options_are_parsed_and_checked() {
        let options = parse(args(&[
            "--listen",
            "127.0.0.1:8002",
            "--upstream",
            "http://127.0.0.1:8000",
            "--redis",
            "redis://x/",
        ]))
        .unwrap();
        assert_eq!(options.listen.port(), 8002);
        assert_eq!(options.redis, Some(Redis::Server("redis://x/".to_owned())));
        assert!(options.l1);
        assert!(parse(args(&["--listen", "127.0.0.1:8002"])).is_err());
        assert!(
            parse(args(&[
                "--listen",
                "127.0.0.1:8002",
                "--upstream",
                "https://x"
            ]))
            .is_err()
        );
        assert!(parse(args(&["--bogus"])).is_err());
    }

    fn with(extra: &[&str]) -> Result<Options, String> {
        let mut list = vec![
            "--listen",
            "127.0.0.1:8002",
            "--upstream",
            "http://127.0.0.1:8000",
        ];
        list.extend_from_slice(extra);
        parse(args(&list))
    }

    #[test]
    fn a_cluster_is_host_ports_or_urls() {
        let options = with(&[
            "--redis-cluster",
            "10.0.0.1:7000, redis-2:7001,[::1]:7002,redis://:pw@10.0.0.4:7003,",
        ])
        .unwrap();
        assert_eq!(
            options.redis,
            Some(Redis::Cluster(vec![
                "redis://10.0.0.1:7000".to_owned(),
                "redis://redis-2:7001".to_owned(),
                "redis://[::1]:7002".to_owned(),
                "redis://:pw@10.0.0.4:7003".to_owned(),
            ]))
        );
        let tls = with(&[
            "--redis-cluster",
            "rediss://a:6380,rediss://b:6380",
            "--redis-ca",
            "ca.pem",
        ])
        .unwrap();
        assert!(matches!(tls.redis, Some(Redis::Cluster(nodes)) if nodes.len() == 2));
    }

    #[test]
    fn redis_and_redis_cluster_exclude_each_other() {
        let error = with(&[
            "--redis",
            "redis://127.0.0.1:6379/",
            "--redis-cluster",
            "127.0.0.1:7000",
        ])
        .unwrap_err();
        assert!(
            error.starts_with("--redis and --redis-cluster exclude each other"),
            "{error}"
        );
    }

    #[test]
    fn bad_cluster_nodes_are_refused_without_showing_passwords() {
        for (list, expected) in [
            ("", "at least one"),
            (" , ", "at least one"),
            ("127.0.0.1", "not host:port"),
            ("h:0", "not host:port"),
            ("h:70000", "not host:port"),
            ("::1:7000", "not host:port"),
            ("http://h:7000", "\"http\""),
            ("redis://", "no host"),
            ("a:1,rediss://b:2", "mixes rediss://"),
        ] {
            let error = with(&["--redis-cluster", list]).unwrap_err();
            assert!(error.starts_with("--redis-cluster"), "{list}: {error}");
            assert!(error.contains(expected), "{list}: {error}");
        }
        for list in ["u:hunter2@h:7000", "http://u:hunter2@h:7000", "h:1/hunter2"] {
            let error = with(&["--redis-cluster", list]).unwrap_err();
            assert!(!error.contains("hunter2"), "{list}: {error}");
        }
        let error = with(&["--redis-cluster", "h:7000", "--redis-ca", "ca.pem"]).unwrap_err();
        assert!(error.contains("rediss://"), "{error}");
    }

    #[test]
    fn hop_by_hop_fields_are_removed() {
        let mut headers = HeaderMap::new();
        headers.insert("connection", "x-a".parse().unwrap());
        headers.insert("x-a", "1".parse().unwrap());
        headers.insert("x-b", "2".parse().unwrap());
        headers.insert("keep-alive", "timeout=5".parse().unwrap());
        strip_hop_by_hop(&mut headers);
        assert_eq!(headers.len(), 1);
        assert!(headers.contains_key("x-b"));
    }
}
