//! The Redis and tiered stores against real Redis servers: the shared one (`REDIS_URL`,
//! default `redis://127.0.0.1:6379`, under a random key prefix removed afterwards) and
//! throwaway `redis-server` processes on free ports for outages.

#![cfg(feature = "redis")]

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use axum::body::Body;
use axum::http::{Request, StatusCode};
use towerkit_cache::{CacheLayer, MemoryStore, RedisStore, Store, TieredStore};
use towerkit_test_support::servers::{Redis, free_port};

mod common;

use common::{Origin, cached, eventually, get_req, send};

fn redis_url() -> String {
    std::env::var("REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379".to_owned())
}

/// A key prefix no other test or run uses; its keys are removed when dropped.
struct Prefix {
    url: String,
    prefix: String,
}

impl Prefix {
    fn new(url: &str) -> Self {
        static COUNTER: AtomicU64 = AtomicU64::new(0);
        let nanos = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap()
            .as_nanos();
        let n = COUNTER.fetch_add(1, Ordering::SeqCst);
        Self {
            url: url.to_owned(),
            prefix: format!("towerkit-test:{}:{nanos}:{n}:", std::process::id()),
        }
    }

    fn keys(&self) -> Vec<String> {
        let Ok(client) = redis::Client::open(self.url.as_str()) else {
            return Vec::new();
        };
        let Ok(mut conn) = client.get_connection_with_timeout(Duration::from_secs(1)) else {
            return Vec::new();
        };
        let pattern = format!("{}*", self.prefix);
        redis::cmd("KEYS")
            .arg(pattern)
            .query(&mut conn)
            .unwrap_or_default()
    }

    /// The Redis key for `name`: `e:{path}` names a cache key's entry hash (whose Redis key
    /// carries a hash tag: `{prefix}e:{hash}:{path}`), anything else is taken as it is.
    fn resolve(&self, name: &str) -> String {
        match name.strip_prefix("e:") {
            Some(key) => self
                .keys()
                .into_iter()
                .find(|k| {
                    k.starts_with(&format!("{}e:{{", self.prefix))
                        && k.ends_with(&format!("}}:{key}"))
                })
                .unwrap_or_default(),
            None => format!("{}{name}", self.prefix),
        }
    }

    /// The remaining time to live of a key, in milliseconds (negative: none or missing).
    fn pttl(&self, key: &str) -> i64 {
        let client = redis::Client::open(self.url.as_str()).unwrap();
        let mut conn = client
            .get_connection_with_timeout(Duration::from_secs(1))
            .unwrap();
        redis::cmd("PTTL")
            .arg(self.resolve(key))
            .query(&mut conn)
            .unwrap()
    }

    fn raw(&self, key: &str, field: &str) -> Option<Vec<u8>> {
        let client = redis::Client::open(self.url.as_str()).ok()?;
        let mut conn = client
            .get_connection_with_timeout(Duration::from_secs(1))
            .ok()?;
        let value: Option<Vec<u8>> = redis::cmd("HGET")
            .arg(self.resolve(key))
            .arg(field)
            .query(&mut conn)
            .ok()?;
        value
    }
}

impl Drop for Prefix {
    fn drop(&mut self) {
        let keys = self.keys();
        if keys.is_empty() {
            return;
        }
        if let Ok(client) = redis::Client::open(self.url.as_str())
            && let Ok(mut conn) = client.get_connection_with_timeout(Duration::from_secs(1))
        {
            let _: Result<i64, _> = redis::cmd("DEL").arg(keys).query(&mut conn);
        }
    }
}

async fn redis_store(url: &str, prefix: &Prefix) -> RedisStore {
    RedisStore::builder(url)
        .prefix(prefix.prefix.as_str())
        .timeout(Duration::from_millis(500))
        .connect()
        .await
        .unwrap()
}

#[tokio::test]
async fn redis_entries_are_compact_binary_shared_and_invalidated() {
    let recorder = metrics_util::debugging::DebuggingRecorder::new();
    let snapshotter = recorder.snapshotter();
    let _guard = metrics::set_default_local_recorder(&recorder);
    let url = redis_url();
    let prefix = Prefix::new(&url);
    let layer = CacheLayer::builder(redis_store(&url, &prefix).await)
        .store_timeout(Duration::from_secs(1))
        .build()
        .unwrap();
    let handle = layer.handle();
    let origin = Origin::default();
    let app = cached(
        &layer,
        &origin,
        &[("cache-control", "max-age=60"), ("cache-tag", "products")],
    );
    assert_eq!(send(&app, get_req("/products?page=1")).await.body, "call 1");
    assert!(
        eventually(|| prefix.raw("e:/products?page=1", "").is_some()).await,
        "entry written"
    );
    let raw = prefix.raw("e:/products?page=1", "").unwrap();
    assert!(raw.starts_with(b"TKC1"), "binary entry, not JSON");
    assert!(raw.len() < 400, "compact: {} bytes", raw.len());
    // Entries and tag sets expire with the entry: max-age 60 s plus the 10 minutes kept stale.
    for key in ["e:/products?page=1", "t:products", "t:path:/products"] {
        let ttl = prefix.pttl(key);
        assert!(ttl > 600_000 && ttl <= 660_000, "{key}: {ttl}");
    }

    // Another layer on the same Redis shares the entry.
    let other = CacheLayer::builder(redis_store(&url, &prefix).await)
        .store_timeout(Duration::from_secs(1))
        .build()
        .unwrap();
    let other_origin = Origin::default();
    let other_app = cached(&other, &other_origin, &[("cache-control", "max-age=60")]);
    let shared = send(&other_app, get_req("/products?page=1")).await;
    assert!(shared.is_hit(), "{shared:?}");
    assert_eq!(shared.body, "call 1");
    assert_eq!(other_origin.calls(), 0);

    send(&app, get_req("/products?page=2")).await;
    assert!(eventually(|| !prefix.resolve("e:/products?page=2").is_empty()).await);
    assert_eq!(handle.invalidate_tag("products").await.unwrap(), 2);
    assert_eq!(
        send(&other_app, get_req("/products?page=1")).await.body,
        "call 1"
    );
    assert_eq!(other_origin.calls(), 1);
    // That miss is stored in the background: wait for it before purging.
    assert!(eventually(|| !prefix.resolve("e:/products?page=1").is_empty()).await);

    handle.purge().await.unwrap();
    assert!(prefix.keys().is_empty());
    let names = metric_names(&snapshotter);
    for operation in ["get", "put", "invalidate_tag", "purge"] {
        let name = format!(
            "http_cache_store_operation_duration_seconds{{store=redis,operation={operation}}}"
        );
        assert!(names.contains(&name), "{name} in {names:?}");
    }
    assert!(
        names.contains(&"http_cache_requests_total{result=hit,tier=l2}".to_owned()),
        "{names:?}"
    );
}

#[tokio::test]
async fn redis_store_keeps_one_variant_per_coding() {
    let url = redis_url();
    let prefix = Prefix::new(&url);
    let store = redis_store(&url, &prefix).await;
    let layer = CacheLayer::builder(store.clone())
        .store_timeout(Duration::from_secs(1))
        .build()
        .unwrap();
    let origin = Origin::default();
    let service = origin.service(|request, n| {
        let accept = request
            .headers()
            .get("accept-encoding")
            .and_then(|v| v.to_str().ok())
            .unwrap_or("");
        let coding = if accept.contains("br") { "br" } else { "gzip" };
        common::response(
            200,
            &[
                ("cache-control", "max-age=60"),
                ("vary", "accept-encoding"),
                ("content-encoding", coding),
            ],
            format!("{coding} {n}"),
        )
    });
    let app = tower::ServiceBuilder::new().layer(layer).service(service);
    let request = |accept: &str| {
        Request::get("/v")
            .header("accept-encoding", accept)
            .body(Body::empty())
            .unwrap()
    };
    send(&app, request("br")).await;
    send(&app, request("gzip")).await;
    assert!(eventually(|| prefix.keys().len() >= 2).await);
    for (accept, body) in [
        ("br, gzip", "br 1"),
        ("gzip, deflate", "gzip 2"),
        ("br;q=0.9", "br 1"),
    ] {
        let seen = send(&app, request(accept)).await;
        assert!(seen.is_hit(), "{accept}: {seen:?}");
        assert_eq!(seen.body, body);
    }
    let lookup = store.get("/v").await.unwrap().unwrap();
    assert_eq!(lookup.variants.len(), 2);
}

#[tokio::test]
async fn a_healthy_subscription_keeps_the_memory_tier() {
    // The subscription pings its node every second; a healthy connection must not count
    // as a gap (which clears the memory tier).
    let url = redis_url();
    let prefix = Prefix::new(&url);
    let store = TieredStore::new(MemoryStore::new(1 << 20), redis_store(&url, &prefix).await);
    let layer = CacheLayer::builder(store.clone())
        .store_timeout(Duration::from_secs(1))
        .build()
        .unwrap();
    let origin = Origin::default();
    let app = cached(&layer, &origin, &[("cache-control", "max-age=60")]);
    send(&app, get_req("/kept")).await;
    assert_eq!(store.stats().l1_entries, 1);
    tokio::time::sleep(Duration::from_millis(3_500)).await;
    assert_eq!(store.stats().l1_entries, 1, "the memory tier was cleared");
    assert!(send(&app, get_req("/kept")).await.is_hit());
}

#[tokio::test]
async fn tiered_invalidation_reaches_every_instance() {
    let url = redis_url();
    let prefix = Prefix::new(&url);
    let a_store = TieredStore::new(MemoryStore::new(1 << 20), redis_store(&url, &prefix).await);
    let b_store = TieredStore::new(MemoryStore::new(1 << 20), redis_store(&url, &prefix).await);
    // Let both subscribers connect before anything is published.
    tokio::time::sleep(Duration::from_millis(200)).await;
    let a = CacheLayer::builder(a_store.clone())
        .store_timeout(Duration::from_secs(1))
        .build()
        .unwrap();
    let b = CacheLayer::builder(b_store.clone())
        .store_timeout(Duration::from_secs(1))
        .build()
        .unwrap();
    let origin = Origin::default();
    let a_app = cached(
        &a,
        &origin,
        &[("cache-control", "max-age=60"), ("cache-tag", "products")],
    );
    let b_app = cached(
        &b,
        &origin,
        &[("cache-control", "max-age=60"), ("cache-tag", "products")],
    );

    send(&a_app, get_req("/products")).await;
    assert!(eventually(|| !prefix.keys().is_empty()).await);
    let from_l2 = send(&b_app, get_req("/products")).await;
    assert!(from_l2.is_hit());
    assert_eq!(b_store.l1().len(), 1, "copied into B's memory");
    // The copy keeps the deadlines of what Redis holds: it never outlives it.
    let in_l1 = b_store
        .l1()
        .get("/products")
        .await
        .unwrap()
        .unwrap()
        .variants[0]
        .clone();
    let in_l2 = b_store
        .l2()
        .get("/products")
        .await
        .unwrap()
        .unwrap()
        .variants[0]
        .clone();
    assert_eq!(in_l1.stale_until(), in_l2.stale_until());
    assert_eq!(in_l1.fresh_until(), in_l2.fresh_until());
    assert!(send(&b_app, get_req("/products")).await.is_hit());
    assert_eq!(origin.calls(), 1);

    // A tag invalidation on A empties B's memory too.
    a.handle().invalidate_tag("products").await.unwrap();
    assert!(
        eventually(|| b_store.l1().is_empty()).await,
        "B's L1 was invalidated"
    );
    assert_eq!(send(&b_app, get_req("/products")).await.body, "call 2");

    // So does a successful unsafe method through A.
    send(&a_app, get_req("/products")).await;
    assert!(eventually(|| a_store.l1().len() == 1 && b_store.l1().len() == 1).await);
    let post = send(
        &a_app,
        Request::post("/products").body(Body::empty()).unwrap(),
    )
    .await;
    assert_eq!(post.status, StatusCode::OK);
    assert!(
        eventually(|| b_store.l1().is_empty()).await,
        "B's L1 was invalidated by A's POST"
    );
}

#[tokio::test]
async fn a_subscription_keeps_its_connection_between_pings() {
    let server = Redis::start().expect("redis-server starts");
    let store = RedisStore::builder(server.url())
        .prefix("sub:")
        .connect()
        .await
        .unwrap();
    let _tiered = TieredStore::new(MemoryStore::new(1 << 20), store);
    // Pinged every second: a subscription that took the answer for a failure would
    // reconnect (and clear every memory tier) after each ping.
    tokio::time::sleep(Duration::from_millis(2500)).await;
    let client = redis::Client::open(server.url()).unwrap();
    let mut conn = client.get_connection().unwrap();
    let list: String = redis::cmd("CLIENT")
        .arg("LIST")
        .arg("TYPE")
        .arg("pubsub")
        .query(&mut conn)
        .unwrap();
    let subscribers: Vec<&str> = list.lines().collect();
    assert_eq!(subscribers.len(), 1, "{list}");
    let age: u64 = subscribers[0]
        .split_whitespace()
        .find_map(|field| field.strip_prefix("age="))
        .and_then(|age| age.parse().ok())
        .unwrap();
    assert!(age >= 2, "the subscription reconnected: {list}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_outage_causes_no_errors_and_recovers() {
    let mut server = Redis::start().expect("redis-server starts");
    let url = server.url();
    let prefix = Prefix::new(&url);
    let redis = RedisStore::builder(url.as_str())
        .prefix(prefix.prefix.as_str())
        .timeout(Duration::from_millis(200))
        .backoff(Duration::from_millis(20), Duration::from_millis(200))
        .connect()
        .await
        .unwrap();
    let tiered = TieredStore::new(MemoryStore::new(1 << 20), redis.clone());
    let layer = CacheLayer::builder(tiered.clone())
        .store_timeout(Duration::from_millis(200))
        .build()
        .unwrap();
    let handle = layer.handle();
    let origin = Origin::default();
    let app = cached(&layer, &origin, &[("cache-control", "max-age=60")]);
    let redis_only = CacheLayer::builder(redis.clone())
        .store_timeout(Duration::from_millis(200))
        .build()
        .unwrap();
    let redis_only_app = cached(&redis_only, &origin, &[("cache-control", "max-age=60")]);

    send(&app, get_req("/kept")).await;
    assert!(eventually(|| !prefix.keys().is_empty()).await);

    server.kill();
    for i in 0..30 {
        // L1 keeps serving what it has.
        let kept = send(&app, get_req("/kept")).await;
        assert_eq!(kept.status, StatusCode::OK);
        assert_eq!(kept.body, "call 1");
        // New keys go to the origin and are still cached in L1.
        let fresh = send(&app, get_req(&format!("/new/{i}"))).await;
        assert_eq!(fresh.status, StatusCode::OK);
        // Without L1, every request reaches the origin, and none fails.
        let direct = send(&redis_only_app, get_req(&format!("/direct/{i}"))).await;
        assert_eq!(direct.status, StatusCode::OK);
    }
    assert!(send(&app, get_req("/new/0")).await.is_hit());
    assert!(handle.stats().store.l2_errors > 0);
    assert!(
        handle.invalidate_tag("anything").await.is_err(),
        "invalidation reports the outage"
    );

    assert!(!tiered.l1().is_empty());
    server.restart().expect("redis-server restarts");
    // Invalidations may have been missed while the subscription was down: L1 starts over.
    let mut cleared = false;
    for _ in 0..100 {
        if tiered.l1().is_empty() {
            cleared = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(cleared, "L1 is cleared once the subscription is back");
    let prefix_after = Prefix {
        url: url.clone(),
        prefix: prefix.prefix.clone(),
    };
    let mut stored = false;
    for i in 0..200 {
        send(&redis_only_app, get_req(&format!("/after/{i}"))).await;
        if !prefix_after.keys().is_empty() {
            stored = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(stored, "writes reach Redis again once it is back");
}

/// The metrics recorded while `body` runs on this thread, by name.
fn metric_names(snapshotter: &metrics_util::debugging::Snapshotter) -> Vec<String> {
    snapshotter
        .snapshot()
        .into_vec()
        .into_iter()
        .map(|(key, _, _, _)| {
            let key = key.key();
            let labels: Vec<String> = key
                .labels()
                .map(|l| format!("{}={}", l.key(), l.value()))
                .collect();
            format!("{}{{{}}}", key.name(), labels.join(","))
        })
        .collect()
}

#[tokio::test]
async fn a_store_connected_while_redis_is_down_serves_from_the_origin() {
    let recorder = metrics_util::debugging::DebuggingRecorder::new();
    let snapshotter = recorder.snapshotter();
    let _guard = metrics::set_default_local_recorder(&recorder);
    let url = format!("redis://127.0.0.1:{}/", free_port().unwrap());
    let prefix = Prefix::new(&url);
    let store = RedisStore::builder(url.as_str())
        .prefix(prefix.prefix.as_str())
        .connect()
        .await
        .unwrap();
    let origin = Origin::default();
    let app = cached(
        &CacheLayer::new(store),
        &origin,
        &[("cache-control", "max-age=60")],
    );
    for _ in 0..5 {
        assert_eq!(send(&app, get_req("/a")).await.status, StatusCode::OK);
    }
    assert_eq!(origin.calls(), 5);
    let names = metric_names(&snapshotter);
    let port = url.trim_end_matches('/').rsplit(':').next().unwrap();
    let name = format!("http_cache_redis_errors_total{{operation=get,node=127.0.0.1:{port}}}");
    assert!(names.contains(&name), "{name} in {names:?}");
    assert!(
        names.contains(&"http_cache_requests_total{result=miss,tier=l2}".to_owned()),
        "{names:?}"
    );
}

#[tokio::test]
async fn invalid_redis_urls_are_rejected_at_build_time() {
    let error = RedisStore::builder("not a url")
        .connect()
        .await
        .unwrap_err();
    assert!(
        matches!(error, towerkit_cache::ConfigError::InvalidRedisUrl(_)),
        "{error:?}"
    );
    assert!(error.to_string().contains("invalid redis url"), "{error}");
}
