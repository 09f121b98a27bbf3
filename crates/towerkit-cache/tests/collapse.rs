//! Collapsing across instances: several cache layers, each with its own store connection
//! (as separate processes would have), in front of one slow origin, on the shared Redis
//! (under a key prefix of their own) and on a throwaway six-node Redis Cluster.

#![cfg(feature = "redis")]

use std::convert::Infallible;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use axum::body::Body;
use axum::http::{Request, Response};
use tower::util::BoxCloneSyncService;
use towerkit_cache::{CacheBody, CacheLayer, RedisStore, Store, WarmOutcome};
use towerkit_test_support::servers::free_port;

mod common;

use common::{Seen, get_req, response, send};

fn redis_url() -> String {
    std::env::var("REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379".to_owned())
}

/// A prefix of its own for each test and run.
fn unique_prefix() -> String {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_nanos();
    let n = COUNTER.fetch_add(1, Ordering::SeqCst);
    format!("towerkit-collapse:{}:{nanos}:{n}:", std::process::id())
}

/// Removes every key under `prefix` from the shared Redis.
fn remove_prefix(prefix: &str) {
    let Ok(client) = redis::Client::open(redis_url()) else {
        return;
    };
    let Ok(mut conn) = client.get_connection_with_timeout(Duration::from_secs(1)) else {
        return;
    };
    let keys: Vec<String> = redis::cmd("KEYS")
        .arg(format!("{prefix}*"))
        .query(&mut conn)
        .unwrap_or_default();
    if !keys.is_empty() {
        let _: Result<i64, _> = redis::cmd("DEL").arg(keys).query(&mut conn);
    }
}

type Svc = BoxCloneSyncService<Request<Body>, Response<CacheBody<Body>>, Infallible>;

/// An origin shared by every instance: counts calls, takes `delay` to answer, and names
/// the call in the body.
#[derive(Clone)]
struct SlowOrigin {
    calls: Arc<AtomicUsize>,
    delay: Duration,
    headers: &'static [(&'static str, &'static str)],
}

impl SlowOrigin {
    fn new(delay: Duration, headers: &'static [(&'static str, &'static str)]) -> Self {
        SlowOrigin {
            calls: Arc::default(),
            delay,
            headers,
        }
    }

    fn calls(&self) -> usize {
        self.calls.load(Ordering::SeqCst)
    }

    /// An instance: `layer` over this origin.
    fn behind(&self, layer: &CacheLayer) -> Svc {
        let origin = self.clone();
        let service = tower::service_fn(move |_request: Request<Body>| {
            let origin = origin.clone();
            async move {
                let n = origin.calls.fetch_add(1, Ordering::SeqCst) + 1;
                tokio::time::sleep(origin.delay).await;
                Ok::<_, Infallible>(response(200, origin.headers, format!("call {n}")))
            }
        });
        BoxCloneSyncService::new(
            tower::ServiceBuilder::new()
                .layer(layer.clone())
                .service(service),
        )
    }
}

fn layer(store: impl Store) -> CacheLayer {
    CacheLayer::builder(store)
        // Generous, so that a loaded machine does not turn lookups into misses: what is
        // tested is collapsing, not the store's latency.
        .store_timeout(Duration::from_millis(500))
        .build()
        .unwrap()
}

/// Sends `per_instance` concurrent requests for `path` to each instance at once.
async fn stampede(instances: &[Svc], per_instance: usize, path: &str) -> Vec<Seen> {
    let mut tasks = Vec::new();
    for instance in instances {
        for _ in 0..per_instance {
            let instance = instance.clone();
            let path = path.to_owned();
            tasks.push(tokio::spawn(async move {
                send(&instance, get_req(&path)).await
            }));
        }
    }
    let mut seen = Vec::new();
    for task in tasks {
        seen.push(task.await.unwrap());
    }
    seen
}

async fn redis_store(prefix: &str) -> RedisStore {
    RedisStore::builder(redis_url())
        .prefix(prefix)
        .timeout(Duration::from_millis(500))
        .connect()
        .await
        .unwrap()
}

/// `count` instances' tiered stores: a small memory tier each in front of one Redis prefix.
async fn tiered_stores(prefix: &str, count: usize) -> Vec<towerkit_cache::TieredStore> {
    let mut stores = Vec::with_capacity(count);
    for _ in 0..count {
        let l1 = towerkit_cache::MemoryStore::new(1 << 20);
        stores.push(towerkit_cache::TieredStore::new(
            l1,
            redis_store(prefix).await,
        ));
    }
    stores
}

const SHARED: &[(&str, &str)] = &[("cache-control", "max-age=60")];
const PRIVATE: &[(&str, &str)] = &[("cache-control", "private, max-age=60")];

/// 4 instances x 25 concurrent requests for one cold key: one origin call, and every
/// request answered with its body.
async fn one_call_across(stores: Vec<impl Store>) {
    let origin = SlowOrigin::new(Duration::from_millis(300), SHARED);
    let instances: Vec<Svc> = stores
        .into_iter()
        .map(|s| origin.behind(&layer(s)))
        .collect();
    let seen = stampede(&instances, 25, "/products/cold").await;
    assert_eq!(origin.calls(), 1, "one origin call across 4 instances");
    assert_eq!(seen.len(), 100);
    for response in &seen {
        assert_eq!(response.status, 200);
        assert_eq!(response.body, "call 1");
    }
    let stored = seen
        .iter()
        .filter(|r| r.header("cache-status").contains("stored"))
        .count();
    assert_eq!(stored, 1, "only the leader's response was stored");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn four_instances_make_one_origin_call_on_redis() {
    let prefix = unique_prefix();
    let mut stores = Vec::new();
    for _ in 0..4 {
        stores.push(redis_store(&prefix).await);
    }
    one_call_across(stores).await;
    remove_prefix(&prefix);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn four_instances_make_one_origin_call_through_tiered_stores() {
    let prefix = unique_prefix();
    one_call_across(tiered_stores(&prefix, 4).await).await;
    remove_prefix(&prefix);
}

#[cfg(feature = "redis-cluster")]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn four_instances_make_one_origin_call_on_a_cluster() {
    let cluster = towerkit_test_support::servers::RedisCluster::start().unwrap();
    let mut stores = Vec::new();
    for _ in 0..4 {
        stores.push(
            RedisStore::cluster(cluster.urls())
                .timeout(Duration::from_millis(500))
                .connect()
                .await
                .unwrap(),
        );
    }
    one_call_across(stores).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_private_response_is_never_shared_and_marks_the_key_hit_for_miss() {
    let prefix = unique_prefix();
    let origin = SlowOrigin::new(Duration::from_millis(300), PRIVATE);
    let mut instances = Vec::new();
    for _ in 0..4 {
        instances.push(origin.behind(&layer(redis_store(&prefix).await)));
    }
    let seen = stampede(&instances, 25, "/me").await;
    assert_eq!(origin.calls(), 100, "every request went to the origin");
    let mut bodies: Vec<_> = seen.iter().map(|r| r.body.clone()).collect();
    bodies.sort();
    bodies.dedup();
    assert_eq!(
        bodies.len(),
        100,
        "no body was handed from one request to another"
    );

    // The key is now hit-for-miss: the next misses wait for nobody, not even a request of
    // their own instance.
    let started = Instant::now();
    let again = stampede(&instances[..2], 2, "/me").await;
    assert_eq!(origin.calls(), 104);
    assert!(again.iter().all(|r| r.status == 200));
    assert!(
        started.elapsed() < Duration::from_millis(550),
        "waited for another instance: {:?}",
        started.elapsed()
    );
    remove_prefix(&prefix);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn waiters_go_on_when_the_lease_holder_is_aborted() {
    let prefix = unique_prefix();
    // The holder's origin never answers in time; the waiters' answers at once.
    let stuck = SlowOrigin::new(Duration::from_secs(30), SHARED);
    let quick = SlowOrigin::new(Duration::from_millis(50), SHARED);
    let holder = stuck.behind(&layer(redis_store(&prefix).await));
    let waiter = quick.behind(&layer(redis_store(&prefix).await));

    let held = tokio::spawn(async move { send(&holder, get_req("/slow")).await });
    let took = Instant::now();
    while stuck.calls() == 0 {
        assert!(
            took.elapsed() < Duration::from_secs(5),
            "the holder never called"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let waiters: Vec<_> = (0..5)
        .map(|_| {
            let waiter = waiter.clone();
            tokio::spawn(async move { send(&waiter, get_req("/slow")).await })
        })
        .collect();
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(quick.calls(), 0, "the waiters wait for the lease holder");
    let aborted = Instant::now();
    held.abort();
    for task in waiters {
        let seen = task.await.unwrap();
        assert_eq!(seen.status, 200);
        assert_eq!(seen.body, "call 1");
    }
    assert_eq!(quick.calls(), 1, "one origin call after the holder gave up");
    assert!(
        aborted.elapsed() < Duration::from_secs(2),
        "answered {:?} after the abort",
        aborted.elapsed()
    );
    remove_prefix(&prefix);
}

/// Run as a child process by `waiters_go_on_when_the_lease_holder_process_is_killed` (with
/// `HOLDER_PREFIX` set): takes the lease of `/killed` by missing it in front of an origin
/// that never answers, then waits to be killed.
#[tokio::test]
#[ignore = "a helper process, started by another test"]
async fn lease_holder_process() {
    let Ok(prefix) = std::env::var("HOLDER_PREFIX") else {
        return;
    };
    let stuck = SlowOrigin::new(Duration::from_secs(3600), SHARED);
    let holder = stuck.behind(
        &CacheLayer::builder(redis_store(&prefix).await)
            .lease_ttl(LEASE_TTL)
            .build()
            .unwrap(),
    );
    send(&holder, get_req("/killed")).await;
}

const LEASE_TTL: Duration = Duration::from_millis(800);

/// A child process, killed when dropped (also when the test fails).
struct Child(std::process::Child);

impl Drop for Child {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn waiters_go_on_when_the_lease_holder_process_is_killed() {
    let prefix = unique_prefix();
    let mut child = Child(
        std::process::Command::new(std::env::current_exe().unwrap())
            .args([
                "--ignored",
                "--exact",
                "lease_holder_process",
                "--nocapture",
            ])
            .env("HOLDER_PREFIX", &prefix)
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap(),
    );
    // Wait until the child holds the lease.
    let client = redis::Client::open(redis_url()).unwrap();
    let mut conn = client
        .get_connection_with_timeout(Duration::from_secs(1))
        .unwrap();
    let started = Instant::now();
    loop {
        let keys: Vec<String> = redis::cmd("KEYS")
            .arg(format!("{prefix}l:*"))
            .query(&mut conn)
            .unwrap();
        if !keys.is_empty() {
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(20),
            "the child took no lease"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }

    let origin = SlowOrigin::new(Duration::from_millis(50), SHARED);
    let waiter = origin.behind(
        &CacheLayer::builder(redis_store(&prefix).await)
            .store_timeout(Duration::from_millis(500))
            .lease_ttl(LEASE_TTL)
            .build()
            .unwrap(),
    );
    let waiters: Vec<_> = (0..5)
        .map(|_| {
            let waiter = waiter.clone();
            tokio::spawn(async move { send(&waiter, get_req("/killed")).await })
        })
        .collect();
    tokio::time::sleep(Duration::from_millis(1_500)).await;
    assert_eq!(
        origin.calls(),
        0,
        "the waiters wait while the holder renews its lease"
    );
    child.0.kill().unwrap();
    child.0.wait().unwrap();
    let killed = Instant::now();
    for task in waiters {
        let seen = task.await.unwrap();
        assert_eq!(seen.status, 200);
        assert_eq!(seen.body, "call 1");
    }
    let took = killed.elapsed();
    assert_eq!(origin.calls(), 1, "one origin call after the holder died");
    // The lease expires within its TTL of the last renewal; then one waiter calls the
    // origin (50 ms). Within the coalesce timeout (5 s) in any case.
    assert!(
        took < LEASE_TTL + Duration::from_millis(700),
        "answered {took:?} after the kill"
    );
    remove_prefix(&prefix);
}

#[test]
fn lease_events_are_counted() {
    let recorder = metrics_util::debugging::DebuggingRecorder::new();
    let snapshotter = recorder.snapshotter();
    let _guard = metrics::set_default_local_recorder(&recorder);
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let prefix = unique_prefix();
    runtime.block_on(async {
        let origin = SlowOrigin::new(Duration::from_millis(200), SHARED);
        let mut instances = Vec::new();
        for _ in 0..2 {
            instances.push(origin.behind(&layer(redis_store(&prefix).await)));
        }
        stampede(&instances, 3, "/counted").await;
        assert_eq!(origin.calls(), 1);
    });
    let mut events = std::collections::BTreeMap::new();
    for (key, _, _, value) in snapshotter.snapshot().into_vec() {
        if key.key().name() != towerkit_cache::metrics::LEASE_EVENTS_TOTAL {
            continue;
        }
        let event = key.key().labels().next().unwrap().value().to_owned();
        if let metrics_util::debugging::DebugValue::Counter(n) = value {
            events.insert(event, n);
        }
    }
    let expected: std::collections::BTreeMap<String, u64> = [
        ("acquired".to_owned(), 1),
        ("waited".to_owned(), 1),
        ("filled".to_owned(), 1),
    ]
    .into();
    assert_eq!(events, expected);
    remove_prefix(&prefix);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_redis_down_each_instance_still_makes_one_call() {
    let origin = SlowOrigin::new(Duration::from_millis(200), SHARED);
    let port = free_port().unwrap();
    let mut instances = Vec::new();
    for _ in 0..2 {
        let store = RedisStore::builder(format!("redis://127.0.0.1:{port}"))
            .timeout(Duration::from_millis(50))
            .connect()
            .await
            .unwrap();
        instances.push(origin.behind(&layer(store)));
    }
    let seen = stampede(&instances, 25, "/down").await;
    assert_eq!(
        origin.calls(),
        2,
        "the leader hands its response to its followers"
    );
    assert!(seen.iter().all(|r| r.status == 200));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_background_refresh_across_instances() {
    let prefix = unique_prefix();
    let origin = SlowOrigin::new(
        Duration::from_millis(100),
        &[("cache-control", "max-age=1, stale-while-revalidate=60")],
    );
    let mut instances = Vec::new();
    for _ in 0..4 {
        instances.push(origin.behind(&layer(redis_store(&prefix).await)));
    }
    let first = send(&instances[0], get_req("/swr")).await;
    assert_eq!(first.body, "call 1");
    tokio::time::sleep(Duration::from_millis(1_100)).await;
    let seen = stampede(&instances, 5, "/swr").await;
    assert!(seen.iter().all(|r| r.body == "call 1"), "served stale");
    let started = Instant::now();
    while origin.calls() < 2 && started.elapsed() < Duration::from_secs(5) {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(origin.calls(), 2, "one refresh for all four instances");
    remove_prefix(&prefix);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tiered_stores_refresh_once_and_then_read_the_refreshed_entry() {
    let prefix = unique_prefix();
    let origin = SlowOrigin::new(
        Duration::from_millis(100),
        &[("cache-control", "max-age=1, stale-while-revalidate=60")],
    );
    let mut instances = Vec::new();
    for _ in 0..4 {
        let l1 = towerkit_cache::MemoryStore::new(1 << 20);
        let store = towerkit_cache::TieredStore::new(l1, redis_store(&prefix).await);
        instances.push(origin.behind(&layer(store)));
    }
    // Every instance holds a copy in its memory tier.
    assert_eq!(send(&instances[0], get_req("/tiered")).await.body, "call 1");
    for instance in &instances[1..] {
        let seen = send(instance, get_req("/tiered")).await;
        assert!(seen.is_hit() && seen.body == "call 1", "{seen:?}");
    }
    tokio::time::sleep(Duration::from_millis(1_100)).await;
    // Stale everywhere: served stale, refreshed once for all four.
    let seen = stampede(&instances, 5, "/tiered").await;
    assert!(seen.iter().all(|r| r.body == "call 1"), "served stale");
    let started = Instant::now();
    while origin.calls() < 2 && started.elapsed() < Duration::from_secs(5) {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(origin.calls(), 2, "one refresh for all four instances");
    // The fill announced the new entry: no memory tier serves (or refreshes) the old one.
    let seen = stampede(&instances, 2, "/tiered").await;
    for response in &seen {
        assert_eq!(response.body, "call 2", "{response:?}");
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(origin.calls(), 2);
    remove_prefix(&prefix);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn collapsing_across_instances_can_be_turned_off() {
    let prefix = unique_prefix();
    let origin = SlowOrigin::new(Duration::from_millis(200), SHARED);
    let mut instances = Vec::new();
    for _ in 0..3 {
        let layer = CacheLayer::builder(redis_store(&prefix).await)
            .store_timeout(Duration::from_millis(500))
            .coalesce_across_instances(false)
            .build()
            .unwrap();
        instances.push(origin.behind(&layer));
    }
    stampede(&instances, 10, "/local").await;
    assert_eq!(origin.calls(), 3, "one call per instance");
    remove_prefix(&prefix);
}

/// Two instances warm the same cold key at once: one origin call; one reports it stored,
/// the other that it was filled by that call (it waited on the key's lease).
async fn one_warm_call_across(stores: Vec<impl Store>) {
    let origin = SlowOrigin::new(Duration::from_millis(300), SHARED);
    let layers: Vec<CacheLayer> = stores.into_iter().map(layer).collect();
    let instances: Vec<Svc> = layers.iter().map(|l| origin.behind(l)).collect();
    let warm = |i: usize| {
        let handle = layers[i].handle();
        let instance = instances[i].clone();
        async move {
            let requests = [get_req("/warm/cold")];
            handle.warm(&instance, requests, 4).await
        }
    };
    let (a, b) = tokio::join!(tokio::spawn(warm(0)), tokio::spawn(warm(1)));
    let (a, b) = (a.unwrap(), b.unwrap());
    assert_eq!(
        origin.calls(),
        1,
        "one origin call for two warming instances"
    );
    let mut outcomes = [a.results[0].outcome.clone(), b.results[0].outcome.clone()];
    outcomes.sort_by_key(|o| format!("{o:?}"));
    assert_eq!(
        outcomes,
        [WarmOutcome::Filled, WarmOutcome::Stored],
        "{a:?} {b:?}"
    );
    // Both instances now answer from the store.
    for instance in &instances {
        let seen = send(instance, get_req("/warm/cold")).await;
        assert!(seen.is_hit() && seen.body == "call 1", "{seen:?}");
    }
    assert_eq!(origin.calls(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_instances_warming_one_key_make_one_origin_call_on_redis() {
    let prefix = unique_prefix();
    one_warm_call_across(vec![redis_store(&prefix).await, redis_store(&prefix).await]).await;
    remove_prefix(&prefix);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_instances_warming_one_key_make_one_origin_call_through_tiered_stores() {
    let prefix = unique_prefix();
    one_warm_call_across(tiered_stores(&prefix, 2).await).await;
    remove_prefix(&prefix);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_refresh_ahead_across_instances() {
    let prefix = unique_prefix();
    // A 2 s lifetime refreshed in its last half: hits after 1 s start the refresh.
    let origin = SlowOrigin::new(
        Duration::from_millis(100),
        &[("cache-control", "max-age=2")],
    );
    let mut instances = Vec::new();
    for _ in 0..4 {
        let layer = CacheLayer::builder(redis_store(&prefix).await)
            .store_timeout(Duration::from_millis(500))
            .refresh_ahead(0.5)
            .build()
            .unwrap();
        instances.push(origin.behind(&layer));
    }
    assert_eq!(send(&instances[0], get_req("/ahead")).await.body, "call 1");
    tokio::time::sleep(Duration::from_millis(1_100)).await;
    let seen = stampede(&instances, 5, "/ahead").await;
    for response in &seen {
        assert!(
            response.is_hit() && response.body == "call 1",
            "{response:?}"
        );
    }
    let started = Instant::now();
    while origin.calls() < 2 && started.elapsed() < Duration::from_secs(5) {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(origin.calls(), 2, "one refresh for all four instances");
    remove_prefix(&prefix);
}
