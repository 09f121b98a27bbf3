//! What a response cache costs and saves, against the peers, in the same run.
//!
//! Every service answers `GET /products` with the same ~10 KB JSON document, produced by
//! serializing a list of structs on every call (`max-age=60`). Each iteration sends one
//! request (an `axum::body::Body`, as a server would) and reads the whole response body.
//!
//! - `cache/hit/bare_handler`: no cache, the handler serializes every time; what a hit saves.
//! - `cache/hit/towerkit_memory`: towerkit-cache's `CacheLayer` over a `MemoryStore`, entry
//!   stored before measuring.
//! - `cache/hit/towerkit_tiered_l1`: a `TieredStore` (memory in front of Redis), answered by
//!   its memory tier.
//! - `cache/hit/towerkit_redis`: a `RedisStore` alone: one Redis round trip per hit.
//! - `cache/hit/towerkit_redis_tls`: the same over TLS (rustls, a private CA), against a
//!   throwaway `redis-server --tls-port` on a free port with certificates made here (rcgen);
//!   skipped with a note on stderr when it cannot start.
//! - `cache/hit/towerkit_redis_cluster`: a `RedisStore::cluster` on a throwaway six-node
//!   Redis Cluster (three primaries, three replicas, towerkit-test-support's
//!   `RedisCluster`) on free ports, removed once measured: one round trip to the primary
//!   owning the key's slot per hit; skipped with a note on stderr when it cannot start.
//! - `cache/hit/{tower_http_cache,axum_response_cache,http_cache_tower_server}`: the peers'
//!   in-memory layers (tower-http-cache 0.6 with its Moka backend, axum-response-cache 0.5,
//!   http-cache-tower-server 0.2 with its Moka manager), each warmed the same way.
//! - `cache/miss/towerkit_memory`: a new URL every iteration: lookup, handler, storing.
//!
//! Before measuring, each cached service is checked to answer the second request without
//! calling the handler. The Redis figures use `REDIS_URL` (default
//! `redis://127.0.0.1:6379`) under a fresh key prefix, purged afterwards; without Redis they
//! are skipped with a note.

use std::convert::Infallible;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::Duration;

use axum::body::Body;
use bytes::Bytes;
use criterion::{Bencher, Criterion, criterion_group, criterion_main};
use http::{Request, Response};
use http_body_util::{BodyExt, Full};
use serde::Serialize;
use tower::{Layer, Service, ServiceExt, service_fn};
use towerkit_benches::{install_metrics_recorder, runtime};
use towerkit_cache::{CacheLayer, MemoryStore, RedisStore, TieredStore};

#[derive(Serialize)]
struct Category {
    id: u32,
    name: &'static str,
}

#[derive(Serialize)]
struct Product {
    id: u32,
    name: String,
    description: &'static str,
    price_cents: u64,
    currency: &'static str,
    in_stock: bool,
    tags: [&'static str; 3],
    category: Category,
    rating: f64,
}

/// The catalog page every handler serializes: about 10 KB of JSON.
fn catalog() -> Vec<Product> {
    (1..=34)
        .map(|id| Product {
            id,
            name: format!("Product number {id}"),
            description: "A fine product with a description long enough to look like a real one.",
            price_cents: u64::from(id) * 1999,
            currency: "EUR",
            in_stock: id % 3 != 0,
            tags: ["new", "sale", "popular"],
            category: Category {
                id: id % 7,
                name: "Kitchen & dining",
            },
            rating: f64::from(id % 50) / 10.0,
        })
        .collect()
}

/// The handler: serializes the catalog on every call, counting calls.
fn handler(
    calls: Arc<AtomicUsize>,
) -> impl Service<Request<Body>, Response = Response<Full<Bytes>>, Error = Infallible, Future: Send>
+ Clone
+ Send
+ Sync
+ 'static {
    let catalog = Arc::new(catalog());
    service_fn(move |_request: Request<Body>| {
        let (calls, catalog) = (calls.clone(), catalog.clone());
        // The work happens when the future runs, as in an axum handler.
        async move {
            calls.fetch_add(1, Ordering::Relaxed);
            let json = serde_json::to_vec(&*catalog).expect("serializable");
            let response = Response::builder()
                .header("content-type", "application/json")
                .header("cache-control", "max-age=60")
                .body(Full::new(Bytes::from(json)))
                .expect("response");
            Ok::<_, Infallible>(response)
        }
    })
}

fn request(uri: &str) -> Request<Body> {
    Request::get(uri).body(Body::empty()).expect("request")
}

/// One request through `service`, body read to the end.
async fn call<S, B>(service: S, request: Request<Body>) -> Bytes
where
    S: Service<Request<Body>, Response = Response<B>>,
    S::Error: std::fmt::Debug,
    B: http_body::Body,
    B::Error: std::fmt::Debug,
{
    let response = service.oneshot(request).await.expect("service call");
    response
        .into_body()
        .collect()
        .await
        .expect("body")
        .to_bytes()
}

fn bench<S, B>(b: &mut Bencher<'_>, rt: &tokio::runtime::Runtime, service: S)
where
    S: Service<Request<Body>, Response = Response<B>> + Clone,
    S::Error: std::fmt::Debug,
    B: http_body::Body,
    B::Error: std::fmt::Debug,
{
    b.to_async(rt)
        .iter(|| std::hint::black_box(call(service.clone(), request("/products"))));
}

/// Warms `service` and checks that the handler is no longer called.
fn warm<S, B>(rt: &tokio::runtime::Runtime, name: &str, service: &S, calls: &AtomicUsize)
where
    S: Service<Request<Body>, Response = Response<B>> + Clone,
    S::Error: std::fmt::Debug,
    B: http_body::Body,
    B::Error: std::fmt::Debug,
{
    rt.block_on(async {
        let first = call(service.clone(), request("/products")).await;
        // Stores may finish in the background: give them a moment.
        tokio::time::sleep(Duration::from_millis(50)).await;
        let before = calls.load(Ordering::Relaxed);
        for _ in 0..3 {
            let again = call(service.clone(), request("/products")).await;
            assert_eq!(again, first, "{name}: a hit returns the stored body");
        }
        assert_eq!(
            calls.load(Ordering::Relaxed),
            before,
            "{name}: hits must not call the handler"
        );
        println!(
            "cache/hit/{name}: {} byte body, verified served from cache",
            first.len()
        );
    });
}

fn redis_url() -> String {
    std::env::var("REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379".to_owned())
}

/// A Redis store under a fresh prefix, if Redis answers.
fn redis_store(rt: &tokio::runtime::Runtime) -> Option<RedisStore> {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos());
    let prefix = format!("towerkit-bench:{}:{nanos}:", std::process::id());
    let store = rt.block_on(
        RedisStore::builder(redis_url())
            .prefix(prefix)
            .timeout(Duration::from_secs(1))
            .connect(),
    );
    let store = match store {
        Ok(store) => store,
        Err(error) => {
            println!("cache/hit/towerkit_redis and towerkit_tiered_l1 skipped: {error}");
            return None;
        }
    };
    let reachable = rt
        .block_on(towerkit_cache::Store::get(&store, "/probe"))
        .is_ok();
    if !reachable {
        println!(
            "cache/hit/towerkit_redis and towerkit_tiered_l1 skipped: Redis at {} does not answer",
            redis_url()
        );
        return None;
    }
    Some(store)
}

/// A throwaway TLS-only `redis-server` (certificate for `127.0.0.1` signed by a CA made
/// here) and a `RedisStore` trusting that CA, or a note on stderr.
fn redis_tls_store(
    rt: &tokio::runtime::Runtime,
) -> Option<(towerkit_test_support::servers::Redis, RedisStore)> {
    use rcgen::{BasicConstraints, CertificateParams, CertifiedIssuer, DnType, IsCa, KeyPair};

    let skip = |why: String| eprintln!("cache/hit/towerkit_redis_tls skipped: {why}");
    let certificates = || -> Result<_, rcgen::Error> {
        let mut params = CertificateParams::new(Vec::<String>::new())?;
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params
            .distinguished_name
            .push(DnType::CommonName, "towerkit bench CA");
        let ca = CertifiedIssuer::self_signed(params, KeyPair::generate()?)?;
        let key = KeyPair::generate()?;
        let cert = CertificateParams::new(vec!["localhost".to_owned(), "127.0.0.1".to_owned()])?
            .signed_by(&key, &ca)?;
        Ok(towerkit_test_support::servers::RedisTls {
            cert_pem: cert.pem(),
            key_pem: key.serialize_pem(),
            ca_pem: ca.pem(),
        })
    };
    let tls = match certificates() {
        Ok(tls) => tls,
        Err(error) => {
            skip(error.to_string());
            return None;
        }
    };
    let server = match towerkit_test_support::servers::Redis::start_tls(&tls, &[]) {
        Ok(server) => server,
        Err(error) => {
            skip(error.to_string());
            return None;
        }
    };
    let store = rt.block_on(
        RedisStore::builder(server.url())
            .prefix("towerkit-bench-tls:")
            .timeout(Duration::from_secs(1))
            .tls_root_certificate(tls.ca_pem.as_bytes())
            .connect(),
    );
    let store = match store {
        Ok(store) => store,
        Err(error) => {
            skip(error.to_string());
            return None;
        }
    };
    let reachable = (0..50).any(|_| {
        let ok = rt
            .block_on(towerkit_cache::Store::get(&store, "/probe"))
            .is_ok();
        if !ok {
            std::thread::sleep(Duration::from_millis(100));
        }
        ok
    });
    if !reachable {
        skip(format!("{} does not answer over TLS", server.url()));
        return None;
    }
    Some((server, store))
}

/// A throwaway six-node Redis Cluster and a `RedisStore` on it, or a note on stderr.
fn redis_cluster_store(
    rt: &tokio::runtime::Runtime,
) -> Option<(towerkit_test_support::servers::RedisCluster, RedisStore)> {
    let skip = |why: String| eprintln!("cache/hit/towerkit_redis_cluster skipped: {why}");
    let cluster = match towerkit_test_support::servers::RedisCluster::start() {
        Ok(cluster) => cluster,
        Err(error) => {
            skip(error.to_string());
            return None;
        }
    };
    let store = rt.block_on(
        RedisStore::cluster(cluster.urls())
            .prefix("towerkit-bench-cluster:")
            .timeout(Duration::from_secs(1))
            .connect(),
    );
    let store = match store {
        Ok(store) => store,
        Err(error) => {
            skip(error.to_string());
            return None;
        }
    };
    let reachable = (0..50).any(|_| {
        let ok = rt
            .block_on(towerkit_cache::Store::get(&store, "/probe"))
            .is_ok();
        if !ok {
            std::thread::sleep(Duration::from_millis(100));
        }
        ok
    });
    if !reachable {
        skip(format!(
            "the cluster at {:?} does not answer",
            cluster.urls()
        ));
        return None;
    }
    Some((cluster, store))
}

fn hits(c: &mut Criterion) {
    install_metrics_recorder();
    let rt = runtime();
    let mut group = c.benchmark_group("cache/hit");

    let calls = Arc::new(AtomicUsize::new(0));
    let bare = handler(calls.clone());
    group.bench_function("bare_handler", |b| bench(b, &rt, bare.clone()));

    let memory = CacheLayer::new(MemoryStore::new(64 * 1024 * 1024)).layer(handler(calls.clone()));
    warm(&rt, "towerkit_memory", &memory, &calls);
    group.bench_function("towerkit_memory", |b| bench(b, &rt, memory.clone()));

    if let Some(redis) = redis_store(&rt) {
        let tiered = rt.block_on(async {
            TieredStore::new(MemoryStore::new(64 * 1024 * 1024), redis.clone())
        });
        let tiered = CacheLayer::builder(tiered)
            .store_timeout(Duration::from_secs(1))
            .build()
            .expect("valid cache configuration")
            .layer(handler(calls.clone()));
        warm(&rt, "towerkit_tiered_l1", &tiered, &calls);
        group.bench_function("towerkit_tiered_l1", |b| bench(b, &rt, tiered.clone()));

        let remote = CacheLayer::builder(redis.clone())
            .store_timeout(Duration::from_secs(1))
            .build()
            .expect("valid cache configuration")
            .layer(handler(calls.clone()));
        warm(&rt, "towerkit_redis", &remote, &calls);
        group.bench_function("towerkit_redis", |b| bench(b, &rt, remote.clone()));

        let handle = CacheLayer::new(redis).handle();
        if let Err(error) = rt.block_on(handle.purge()) {
            println!("could not purge the bench's Redis prefix: {error}");
        }
    }

    if let Some((server, redis_tls)) = redis_tls_store(&rt) {
        let remote_tls = CacheLayer::builder(redis_tls)
            .store_timeout(Duration::from_secs(1))
            .build()
            .expect("valid cache configuration")
            .layer(handler(calls.clone()));
        warm(&rt, "towerkit_redis_tls", &remote_tls, &calls);
        group.bench_function("towerkit_redis_tls", |b| bench(b, &rt, remote_tls.clone()));
        // The throwaway server goes once its bench is done.
        drop(server);
    }

    if let Some((cluster, redis_cluster)) = redis_cluster_store(&rt) {
        let remote_cluster = CacheLayer::builder(redis_cluster)
            .store_timeout(Duration::from_secs(1))
            .build()
            .expect("valid cache configuration")
            .layer(handler(calls.clone()));
        warm(&rt, "towerkit_redis_cluster", &remote_cluster, &calls);
        group.bench_function("towerkit_redis_cluster", |b| {
            bench(b, &rt, remote_cluster.clone())
        });
        // The store's connections first (nothing left to reconnect to the nodes in the
        // background of the next benches), then the six redis-server processes and their
        // directories.
        drop(remote_cluster);
        drop(cluster);
    }

    let tower_http_cache = tower_http_cache::prelude::CacheLayer::builder(
        tower_http_cache::prelude::InMemoryBackend::new(10_000),
    )
    .ttl(Duration::from_secs(60))
    .build()
    .layer(handler(calls.clone()));
    warm(&rt, "tower_http_cache", &tower_http_cache, &calls);
    group.bench_function("tower_http_cache", |b| {
        bench(b, &rt, tower_http_cache.clone())
    });

    // axum-response-cache wraps only services answering axum's own `Response`.
    let axum_calls = calls.clone();
    let axum_handler =
        handler(axum_calls).map_response(|response: Response<Full<Bytes>>| response.map(Body::new));
    let axum_response_cache =
        axum_response_cache::CacheLayer::with_lifespan(Duration::from_secs(60)).layer(axum_handler);
    warm(&rt, "axum_response_cache", &axum_response_cache, &calls);
    group.bench_function("axum_response_cache", |b| {
        bench(b, &rt, axum_response_cache.clone())
    });

    let http_cache_tower_server =
        http_cache_tower_server::ServerCacheLayer::new(http_cache::MokaManager::default())
            .layer(handler(calls.clone()));
    warm(
        &rt,
        "http_cache_tower_server",
        &http_cache_tower_server,
        &calls,
    );
    group.bench_function("http_cache_tower_server", |b| {
        bench(b, &rt, http_cache_tower_server.clone())
    });

    group.finish();
}

fn misses(c: &mut Criterion) {
    install_metrics_recorder();
    let rt = runtime();
    let calls = Arc::new(AtomicUsize::new(0));
    let memory = CacheLayer::new(MemoryStore::new(256 * 1024 * 1024)).layer(handler(calls.clone()));
    let counter = Arc::new(AtomicU64::new(0));
    let mut group = c.benchmark_group("cache/miss");
    group.bench_function("towerkit_memory", |b| {
        b.to_async(&rt).iter(|| {
            let n = counter.fetch_add(1, Ordering::Relaxed);
            std::hint::black_box(call(memory.clone(), request(&format!("/products?n={n}"))))
        });
    });
    group.finish();
    let requests = counter.load(Ordering::Relaxed) as usize;
    assert_eq!(
        calls.load(Ordering::Relaxed),
        requests,
        "every miss called the handler once"
    );
}

criterion_group!(benches, hits, misses);
criterion_main!(benches);
