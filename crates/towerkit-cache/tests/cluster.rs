//! The Redis store on a real six-node Redis Cluster (three primaries, one replica each,
//! node timeout 1 s), each test starting its own throwaway cluster on free ports
//! (`RedisCluster::start`) and never touching the shared Redis: entries shared between
//! instances on every primary, invalidation and purge over every primary, tiered
//! invalidation surviving the death of the node followed, a primary killed under load, and
//! slots resharded under load.

#![cfg(feature = "redis-cluster")]

use std::collections::HashMap;
use std::convert::Infallible;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::body::Body;
use axum::http::{Request, Response};
use towerkit_cache::{CacheBody, CacheLayer, MemoryStore, RedisStore, TieredStore};
use towerkit_test_support::servers::RedisCluster;

mod common;

use common::{Origin, cached, eventually, get_req, send};

type App = tower::util::BoxCloneSyncService<Request<Body>, Response<CacheBody<Body>>, Infallible>;

const MAX_AGE: &[(&str, &str)] = &[("cache-control", "max-age=300")];
const TAGGED: &[(&str, &str)] = &[("cache-control", "max-age=300"), ("cache-tag", "products")];

fn app(
    layer: &CacheLayer,
    origin: &Origin,
    headers: &'static [(&'static str, &'static str)],
) -> App {
    tower::util::BoxCloneSyncService::new(cached(layer, origin, headers))
}

/// A store on `cluster` through `seeds`, with key prefix `prefix`.
async fn store(seeds: Vec<String>, prefix: &str, timeout: Duration) -> RedisStore {
    RedisStore::cluster(seeds)
        .prefix(prefix)
        .timeout(timeout)
        .connect()
        .await
        .expect("the cluster store builds")
}

fn layer<S: towerkit_cache::Store>(store: S, timeout: Duration) -> CacheLayer {
    CacheLayer::builder(store)
        .store_timeout(timeout)
        .build()
        .expect("the layer builds")
}

fn paths(n: usize) -> Vec<String> {
    (0..n).map(|i| format!("/k{i}")).collect()
}

/// A plain connection to one node.
fn connection(url: &str) -> redis::Connection {
    redis::Client::open(url)
        .unwrap()
        .get_connection_with_timeout(Duration::from_secs(2))
        .expect("the node answers")
}

/// The keys on one node matching `pattern`, by `SCAN`.
fn scan(url: &str, pattern: &str) -> Vec<String> {
    let mut conn = connection(url);
    let mut keys = Vec::new();
    let mut cursor: u64 = 0;
    loop {
        let (next, batch): (u64, Vec<String>) = redis::cmd("SCAN")
            .arg(cursor)
            .arg("MATCH")
            .arg(pattern)
            .arg("COUNT")
            .arg(1000)
            .query(&mut conn)
            .unwrap();
        keys.extend(batch);
        cursor = next;
        if cursor == 0 {
            return keys;
        }
    }
}

/// Where each cache key's entry lives: its path, by the port of the primary holding it
/// (the entry's Redis key is `{prefix}e:{hash}:{path}`).
fn entries_by_primary(cluster: &RedisCluster, prefix: &str) -> HashMap<String, u16> {
    let mut owners = HashMap::new();
    for primary in cluster.primaries().unwrap() {
        for key in scan(&cluster.url(primary.port), &format!("{prefix}e:*")) {
            let (_, path) = key.rsplit_once("}:").expect("an entry key");
            owners.insert(path.to_owned(), primary.port);
        }
    }
    owners
}

/// `calls` of one command in `INFO commandstats` on the node at `url` (0 if never called).
fn command_calls(url: &str, command: &str) -> u64 {
    let info: String = redis::cmd("INFO")
        .arg("commandstats")
        .query(&mut connection(url))
        .unwrap();
    info.lines()
        .find_map(|line| line.strip_prefix(&format!("cmdstat_{command}:calls=")))
        .and_then(|rest| rest.split(',').next()?.parse().ok())
        .unwrap_or(0)
}

/// The node of a store with the port `port`, as [`RedisStore::nodes`] lists it.
macro_rules! node {
    ($store:expr, $port:expr) => {{
        let (store, port): (&RedisStore, u16) = (&$store, $port);
        store
            .nodes()
            .into_iter()
            .find(|node| node.address.ends_with(&format!(":{port}")))
            .unwrap_or_else(|| {
                panic!(
                    "the store knows no node on port {port}: {:?}",
                    store.nodes()
                )
            })
    }};
}

/// Sends a GET for every path concurrently: (path, status, hit, latency) each.
async fn round(app: &App, paths: &[String]) -> Vec<(String, u16, bool, Duration)> {
    futures_util::future::join_all(paths.iter().map(|path| async move {
        let started = Instant::now();
        let seen = send(app, get_req(path)).await;
        (
            path.clone(),
            seen.status.as_u16(),
            seen.is_hit(),
            started.elapsed(),
        )
    }))
    .await
}

/// Waits until `app` hits for every path (a write through another instance may still be on
/// its way).
async fn all_hit(app: &App, paths: &[String]) -> bool {
    for _ in 0..100 {
        if round(app, paths).await.iter().all(|r| r.2) {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    false
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn entries_stored_through_one_instance_hit_on_another_on_every_primary() {
    let cluster = RedisCluster::start().expect("a six-node cluster starts");
    let timeout = Duration::from_millis(500);
    let writer_store = store(cluster.urls(), "share:", timeout).await;
    let reader_store = store(cluster.urls(), "share:", timeout).await;

    // Each store sees three primaries sharing every slot (and the replicas that have
    // replicated anything yet, as `CLUSTER SLOTS` lists them), all healthy.
    let nodes = reader_store.nodes();
    let primaries: Vec<_> = nodes.iter().filter(|n| n.primary).collect();
    assert_eq!(primaries.len(), 3, "{nodes:?}");
    assert!(nodes.len() <= 6, "{nodes:?}");
    assert!(
        nodes
            .iter()
            .filter(|n| !n.primary)
            .all(|n| n.slots.is_empty()),
        "{nodes:?}"
    );
    let slots: usize = primaries
        .iter()
        .flat_map(|n| &n.slots)
        .map(|range| range.clone().count())
        .sum();
    assert_eq!(slots, 16384);
    assert!(
        nodes.iter().all(|n| n.available && n.errors == 0),
        "{nodes:?}"
    );
    for primary in cluster.primaries().unwrap() {
        let seen = node!(reader_store, primary.port);
        assert!(seen.primary);
        let seen_slots: Vec<(u16, u16)> =
            seen.slots.iter().map(|r| (*r.start(), *r.end())).collect();
        assert_eq!(
            seen_slots, primary.slots,
            "the store's slot map is the cluster's"
        );
    }

    let origin = Origin::default();
    let writer = app(&layer(writer_store.clone(), timeout), &origin, MAX_AGE);
    let reader = app(&layer(reader_store.clone(), timeout), &origin, MAX_AGE);
    let paths = paths(90);
    for path in &paths {
        assert!(!send(&writer, get_req(path)).await.is_hit());
    }
    assert!(
        all_hit(&reader, &paths).await,
        "the second instance hits for every key"
    );
    // Misses while an entry was still on its way may have called the origin again; an
    // entry read back is never fetched again.
    let calls = origin.calls();
    assert!(round(&reader, &paths).await.iter().all(|r| r.2));
    assert_eq!(origin.calls(), calls);

    // The entries are spread over the three primaries, each on the primary the store
    // believes serves its slot.
    let owners = entries_by_primary(&cluster, "share:");
    assert_eq!(owners.len(), paths.len());
    for primary in cluster.primaries().unwrap() {
        let held = owners
            .values()
            .filter(|port| **port == primary.port)
            .count();
        assert!(
            held > 0,
            "the primary on {} holds none of the keys",
            primary.port
        );
        let mut conn = connection(&cluster.url(primary.port));
        for key in scan(&cluster.url(primary.port), "share:e:*") {
            let slot: u16 = redis::cmd("CLUSTER")
                .arg("KEYSLOT")
                .arg(&key)
                .query(&mut conn)
                .unwrap();
            assert!(
                node!(reader_store, primary.port)
                    .slots
                    .iter()
                    .any(|r| r.contains(&slot))
            );
        }
    }
    for store in [&writer_store, &reader_store] {
        assert!(
            store.nodes().iter().all(|n| n.errors == 0),
            "{:?}",
            store.nodes()
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tag_and_path_invalidation_and_purge_reach_every_primary() {
    let cluster = RedisCluster::start().expect("a six-node cluster starts");
    let timeout = Duration::from_millis(500);
    let a_layer = layer(store(cluster.urls(), "inv:", timeout).await, timeout);
    let b_layer = layer(store(cluster.urls(), "inv:", timeout).await, timeout);
    let origin = Origin::default();
    let a = app(&a_layer, &origin, TAGGED);
    let b = app(&b_layer, &origin, TAGGED);
    let paths = paths(60);
    let store_all = || async {
        for path in &paths {
            send(&a, get_req(path)).await;
        }
        assert!(all_hit(&b, &paths).await);
        let owners = entries_by_primary(&cluster, "inv:");
        assert_eq!(owners.len(), paths.len());
        let mut per_primary: HashMap<u16, usize> = HashMap::new();
        for port in owners.values() {
            *per_primary.entry(*port).or_default() += 1;
        }
        assert_eq!(
            per_primary.len(),
            3,
            "entries on every primary: {per_primary:?}"
        );
    };

    // A tag invalidation through A removes the entries from every primary.
    store_all().await;
    let removed = a_layer.handle().invalidate_tag("products").await.unwrap();
    assert_eq!(removed, paths.len() as u64);
    assert!(entries_by_primary(&cluster, "inv:").is_empty());
    assert!(
        round(&b, &paths).await.iter().all(|r| !r.2),
        "B misses for every key"
    );

    // A path invalidation through B removes every variant of its path, wherever it lives.
    store_all().await;
    for path in &paths {
        assert_eq!(b_layer.handle().invalidate_path(path).await.unwrap(), 1);
    }
    assert!(entries_by_primary(&cluster, "inv:").is_empty());

    // A purge empties every primary, with SCAN on each, never KEYS.
    store_all().await;
    for primary in cluster.primaries().unwrap() {
        let url = cluster.url(primary.port);
        let _: () = redis::cmd("CONFIG")
            .arg("RESETSTAT")
            .query(&mut connection(&url))
            .unwrap();
    }
    b_layer.handle().purge().await.unwrap();
    for primary in cluster.primaries().unwrap() {
        let url = cluster.url(primary.port);
        assert!(
            scan(&url, "inv:*").is_empty(),
            "the primary on {} still holds keys",
            primary.port
        );
        let size: u64 = redis::cmd("DBSIZE").query(&mut connection(&url)).unwrap();
        assert_eq!(size, 0, "nothing else was stored on {}", primary.port);
        assert!(
            command_calls(&url, "scan") > 0,
            "purge scanned {}",
            primary.port
        );
        assert_eq!(command_calls(&url, "keys"), 0, "purge never runs KEYS");
    }
    assert!(round(&a, &paths).await.iter().all(|r| !r.2));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tiered_invalidation_survives_the_death_of_the_node_followed() {
    let mut cluster = RedisCluster::start().expect("a six-node cluster starts");
    let timeout = Duration::from_millis(500);
    // B is given a single node, a replica: its subscription follows that node.
    let primary = cluster.primaries().unwrap()[0].port;
    let followed = cluster.replica_of(primary).unwrap();
    let others: Vec<String> = cluster
        .ports()
        .into_iter()
        .filter(|port| *port != followed)
        .map(|port| cluster.url(port))
        .collect();
    let a_store = TieredStore::new(
        MemoryStore::new(1 << 20),
        store(others, "tier:", timeout).await,
    );
    let b_store = TieredStore::new(
        MemoryStore::new(1 << 20),
        store(vec![cluster.url(followed)], "tier:", timeout).await,
    );
    assert!(
        eventually(|| subscribers(&cluster, followed) == 1).await,
        "B subscribes through the node it was given"
    );
    assert!(
        b_store.l2().nodes().iter().filter(|n| n.primary).count() == 3,
        "B found the other nodes: {:?}",
        b_store.l2().nodes()
    );

    let a_layer = layer(a_store.clone(), timeout);
    let b_layer = layer(b_store.clone(), timeout);
    let origin = Origin::default();
    let a = app(&a_layer, &origin, TAGGED);
    let b = app(&b_layer, &origin, TAGGED);
    let paths = paths(30);
    let fill = || async {
        for path in &paths {
            send(&a, get_req(path)).await;
        }
        assert!(all_hit(&b, &paths).await);
        assert_eq!(
            b_store.l1().len(),
            paths.len(),
            "B holds every key in memory"
        );
    };

    // An invalidation through A evicts B's memory tier.
    fill().await;
    a_layer.handle().invalidate_tag("products").await.unwrap();
    assert!(
        eventually(|| b_store.l1().is_empty()).await,
        "B's memory tier was invalidated"
    );

    // The node B follows dies: B subscribes through another node it discovered, and A's
    // invalidations still reach it.
    fill().await;
    cluster.kill(followed);
    let killed = Instant::now();
    let moved = async {
        loop {
            let elsewhere: usize = cluster
                .ports()
                .into_iter()
                .filter(|port| cluster.is_running(*port))
                .map(|port| subscribers(&cluster, port))
                .sum();
            // A's subscriber, and B's again.
            if elsewhere == 2 {
                return killed.elapsed();
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    };
    let took = tokio::time::timeout(Duration::from_secs(10), moved)
        .await
        .expect("B subscribed again through another node within 10 s");
    eprintln!("B's subscription moved to another node {took:?} after its node died");
    for path in &paths {
        a_layer.handle().invalidate_path(path).await.unwrap();
    }
    assert!(
        eventually(|| b_store.l1().is_empty()).await,
        "B's memory tier was invalidated after its node died"
    );
    assert!(round(&b, &paths).await.iter().all(|r| !r.2));
}

/// The clients subscribed to channels on the node on `port`.
fn subscribers(cluster: &RedisCluster, port: u16) -> usize {
    cluster
        .cli_on(port, &["client", "list", "type", "pubsub"])
        .unwrap()
        .lines()
        .filter(|line| line.contains("sub="))
        .count()
}

/// What one round of requests showed, after the primary died.
#[derive(Debug, Default)]
struct Observed {
    /// Hits and requests on the surviving primaries' keys while the replica had not taken
    /// over yet.
    other_hits: usize,
    other_requests: usize,
    slowest: Duration,
    failed: usize,
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_primary_costs_misses_on_its_own_slots_only() {
    // With Redis' default (`cluster-require-full-coverage yes`) every node refuses every
    // command (CLUSTERDOWN) from the moment the primary is marked failed until its replica
    // takes over, about a second; a cache cluster should keep serving the other slots.
    let mut cluster = RedisCluster::start_with(&["--cluster-require-full-coverage", "no"])
        .expect("a six-node cluster starts");
    let timeout = Duration::from_millis(200);
    let a_store = store(cluster.urls(), "fail:", timeout).await;
    let b_store = store(cluster.urls(), "fail:", timeout).await;
    let origin = Origin::default();
    let a = app(&layer(a_store.clone(), timeout), &origin, MAX_AGE);
    let b = app(&layer(b_store.clone(), timeout), &origin, MAX_AGE);
    let paths = paths(90);
    for path in &paths {
        send(&a, get_req(path)).await;
    }
    assert!(all_hit(&b, &paths).await);
    let owners = entries_by_primary(&cluster, "fail:");
    assert_eq!(owners.len(), paths.len());
    let victim = cluster.primaries().unwrap()[0].port;
    let replica = cluster.replica_of(victim).unwrap();
    let survivors: Vec<u16> = cluster
        .primaries()
        .unwrap()
        .iter()
        .map(|n| n.port)
        .filter(|port| *port != victim)
        .collect();
    let errors_before: Vec<u64> = survivors
        .iter()
        .map(|port| node!(b_store, *port).errors)
        .collect();

    cluster.kill(victim);
    let killed = Instant::now();
    let cluster = Arc::new(cluster);
    let took_over: Arc<Mutex<Option<Instant>>> = Arc::default();
    let watcher = {
        let (cluster, took_over) = (cluster.clone(), took_over.clone());
        std::thread::spawn(move || {
            let result = cluster.wait_until_primary(replica, Duration::from_secs(30));
            *took_over.lock().unwrap() = Some(Instant::now());
            result
        })
    };
    let mut observed = Observed::default();
    let mut shared_again = None;
    // A request may wait for the store (the timeout), then for the origin (instant here);
    // scheduling on a busy two-core machine adds some (up to 70 ms seen).
    let bound = timeout + Duration::from_millis(150);
    let mut victim_errors = 0;
    while killed.elapsed() < Duration::from_secs(30) {
        let taken = *took_over.lock().unwrap();
        let (from_a, from_b) = tokio::join!(round(&a, &paths), round(&b, &paths));
        for (path, status, hit, latency) in from_a.iter().chain(&from_b) {
            if *status != 200 {
                observed.failed += 1;
            }
            observed.slowest = observed.slowest.max(*latency);
            let _ = (path, hit);
        }
        if taken.is_none() && took_over.lock().unwrap().is_none() {
            if let Some(victim) = b_store
                .nodes()
                .iter()
                .find(|n| n.address.ends_with(&format!(":{victim}")))
            {
                victim_errors = victim.errors;
            }
            for (path, _, hit, _) in &from_b {
                if owners[path] != victim {
                    observed.other_requests += 1;
                    observed.other_hits += usize::from(*hit);
                }
            }
        }
        if let Some(taken) = taken
            && from_b.iter().all(|r| r.2)
        {
            shared_again = Some(taken.elapsed());
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    watcher.join().unwrap().expect("the replica took over");
    let took_over = took_over.lock().unwrap().unwrap().duration_since(killed);
    eprintln!(
        "failover: replica took over {took_over:?} after the kill; every key shared again {shared_again:?} later; \
         slowest request {:?}; surviving primaries' hits while down {}/{}; dead primary's errors {victim_errors}",
        observed.slowest, observed.other_hits, observed.other_requests
    );
    assert_eq!(observed.failed, 0, "no request failed");
    assert!(
        observed.slowest <= bound,
        "slowest request {:?} > {bound:?}",
        observed.slowest
    );
    assert!(
        observed.other_requests > 0,
        "requests ran while the primary was down"
    );
    assert_eq!(
        observed.other_hits, observed.other_requests,
        "the surviving primaries' keys kept hitting"
    );
    assert!(victim_errors > 0, "the dead primary's slots counted errors");
    for (port, before) in survivors.iter().zip(&errors_before) {
        let seen = node!(b_store, *port);
        assert_eq!(
            seen.errors, *before,
            "no store error on the slots of {port}: {seen:?}"
        );
        assert!(seen.available);
    }
    let shared_again = shared_again.expect("every key was shared again");
    assert!(
        shared_again <= Duration::from_secs(5),
        "every key shared again {shared_again:?} after the replica took over"
    );
    // The store follows the new topology: the replica serves the dead primary's slots.
    assert!(node!(b_store, replica).primary);
    assert!(!node!(b_store, replica).slots.is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slots_resharded_under_load_follow_moved_and_ask_without_a_miss() {
    let cluster = RedisCluster::start().expect("a six-node cluster starts");
    let timeout = Duration::from_millis(500);
    let a_store = store(cluster.urls(), "move:", timeout).await;
    let b_store = store(cluster.urls(), "move:", timeout).await;
    let origin = Origin::default();
    let a = app(&layer(a_store.clone(), timeout), &origin, MAX_AGE);
    let b = app(&layer(b_store.clone(), timeout), &origin, MAX_AGE);
    let paths = paths(120);
    for path in &paths {
        send(&a, get_req(path)).await;
    }
    assert!(all_hit(&b, &paths).await);
    let calls = origin.calls();
    let primaries = cluster.primaries().unwrap();
    let (from, to) = (primaries[0].port, primaries[1].port);

    // The slots of the entries on `from`: each moves key by key while requests run.
    let mut slots: Vec<u16> = {
        let mut conn = connection(&cluster.url(from));
        scan(&cluster.url(from), "move:e:*")
            .iter()
            .map(|key| {
                redis::cmd("CLUSTER")
                    .arg("KEYSLOT")
                    .arg(key)
                    .query(&mut conn)
                    .unwrap()
            })
            .collect()
    };
    slots.sort_unstable();
    slots.dedup();
    let before = entries_by_primary(&cluster, "move:");
    let moving = before.values().filter(|port| **port == from).count();
    assert!(moving > 0);

    let cluster = Arc::new(cluster);
    let reshard = {
        let (cluster, slots) = (cluster.clone(), slots.clone());
        tokio::task::spawn_blocking(move || {
            let started = Instant::now();
            cluster
                .move_slots(from, to, &slots, Duration::from_millis(20))
                .map(|()| started.elapsed())
        })
    };
    let mut rounds = 0;
    let mut requests = 0;
    let mut hits = 0;
    while !reshard.is_finished() {
        let (from_a, from_b) = tokio::join!(round(&a, &paths), round(&b, &paths));
        for (path, status, hit, _) in from_a.iter().chain(&from_b) {
            assert_eq!(*status, 200, "{path}");
            requests += 1;
            hits += usize::from(*hit);
        }
        rounds += 1;
    }
    let took = reshard.await.unwrap().expect("the slots moved");
    let after = entries_by_primary(&cluster, "move:");
    let moved = before
        .iter()
        .filter(|(path, port)| **port == from && after[*path] == to)
        .count();
    eprintln!(
        "{} slots moved key by key in {took:?}: {moved} of {moving} keys, {rounds} rounds, {hits}/{requests} hits",
        slots.len()
    );
    assert_eq!(moved, moving, "every key of the moved slots moved");
    assert!(rounds > 1, "requests ran while slots moved");
    assert_eq!(hits, requests, "every request during the reshard was a hit");
    assert_eq!(origin.calls(), calls, "no request went to the origin");
    for store in [&a_store, &b_store] {
        assert!(
            store.nodes().iter().all(|n| n.errors == 0),
            "{:?}",
            store.nodes()
        );
    }
    // The stores follow the new slot map.
    assert!(
        eventually(|| {
            let served = node!(b_store, to).slots;
            slots
                .iter()
                .all(|slot| served.iter().any(|r| r.contains(slot)))
        })
        .await,
        "the store sees the moved slots on their new primary"
    );
    assert!(all_hit(&a, &paths).await);
}
