//! The cluster as the store sees it: which primary serves which slots, and each node's
//! health, so that a dead primary costs misses on its own slots only.
//!
//! A task asks one node at a time for `CLUSTER SLOTS` (through a connection of its own,
//! independent of the cluster client's) every second, and at once (at most every 100 ms)
//! when an operation fails; when the node it asks stops answering, it asks the next one it
//! knows of, seeds and discovered nodes alike. Nodes keep their health across refreshes;
//! a node that takes over slots (a replica promoted after a failover) starts healthy.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock, Weak};
use std::time::{Duration, Instant};

use redis::aio::MultiplexedConnection;
use redis::{AsyncConnectionConfig, ConnectionAddr, Value};

use super::conn::Clients;
use tokio::sync::Notify;

use super::health::Node;
use super::keys::slot;

/// One node as [`Topology::nodes`] lists it.
pub(crate) struct Listed {
    pub(crate) node: Arc<Node>,
    pub(crate) primary: bool,
    pub(crate) slots: Vec<std::ops::RangeInclusive<u16>>,
}

/// The slot map and the nodes' health, refreshed in the background.
pub(crate) struct Topology {
    view: RwLock<Arc<View>>,
    /// Operations on slots no known primary serves (before the first refresh, or while the
    /// cluster reports a gap) count against this.
    unknown: Arc<Node>,
    /// Errors of nodes that left the topology, so that the store's total never shrinks.
    retired_errors: AtomicU64,
    refresh: Arc<Notify>,
    clients: Arc<Clients>,
    /// Told the primaries' addresses when the slot map changes.
    on_change: Mutex<Option<OnChange>>,
    /// Whether the cluster was reported unreachable (its being reached is then logged).
    unreachable: AtomicBool,
    min_backoff: Duration,
    max_backoff: Duration,
}

type OnChange = Box<dyn Fn(Vec<String>) + Send + Sync>;

/// One answer of `CLUSTER SLOTS`.
#[derive(Default)]
struct View {
    /// Sorted by first slot, not overlapping.
    ranges: Vec<(u16, u16, Arc<Node>)>,
    /// Every node announced, primaries first, with whether it is a primary.
    nodes: Vec<(Arc<Node>, bool)>,
}

/// One range of `CLUSTER SLOTS`: its slots, primary and replicas (`host:port`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct SlotRange {
    pub(crate) first: u16,
    pub(crate) last: u16,
    pub(crate) primary: String,
    pub(crate) replicas: Vec<String>,
}

/// How often the slot map is asked for while nothing fails.
const REFRESH_EVERY: Duration = Duration::from_secs(1);
/// The least time between two refreshes asked for by failures.
const REFRESH_GAP: Duration = Duration::from_millis(100);
/// How long connecting to a node, and its answer, may take.
const ASK_TIMEOUT: Duration = Duration::from_millis(500);

impl Topology {
    /// A topology with no slot map yet, that `clients` can reach; [`watch`](Self::watch)
    /// fills it.
    pub(crate) fn new(clients: Arc<Clients>, min_backoff: Duration, max_backoff: Duration) -> Self {
        Topology {
            view: RwLock::new(Arc::new(View::default())),
            unknown: Arc::new(Node::new("cluster".to_owned(), min_backoff, max_backoff)),
            retired_errors: AtomicU64::new(0),
            refresh: Arc::new(Notify::new()),
            clients,
            on_change: Mutex::new(None),
            unreachable: AtomicBool::new(false),
            min_backoff,
            max_backoff,
        }
    }

    /// Reads the slot map (waiting at most `first`), then starts the task keeping it
    /// current, on the current runtime, for as long as the topology lives.
    pub(crate) async fn watch(self: &Arc<Self>, first: Duration) {
        let mut asker = Asker::default();
        let _ = tokio::time::timeout(first, asker.refresh(self)).await;
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            return;
        };
        runtime.spawn(refresh_loop(
            asker,
            Arc::downgrade(self),
            self.refresh.clone(),
        ));
    }

    /// Calls `hook` with the primaries' addresses whenever the slot map changes.
    pub(crate) fn on_change(&self, hook: OnChange) {
        *self
            .on_change
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner()) = Some(hook);
    }

    /// Logs that the cluster cannot be reached (and later, that it was).
    pub(crate) fn warn_unreachable(&self) {
        if !self.unreachable.swap(true, Ordering::Relaxed) {
            tracing::warn!(
                "redis cluster unreachable: serving from memory or the origin until it is reached"
            );
        }
    }

    /// Whether `node` serves slots (rather than standing for slots no known node serves).
    pub(crate) fn serves(&self, node: &Arc<Node>) -> bool {
        !Arc::ptr_eq(node, &self.unknown)
    }

    /// The node serving the slot of `redis_key`, as last seen.
    pub(crate) fn node_for(&self, redis_key: &str) -> Arc<Node> {
        let slot = slot(redis_key);
        let view = self.view();
        let index = view.ranges.partition_point(|(first, _, _)| *first <= slot);
        match index.checked_sub(1).map(|i| &view.ranges[i]) {
            Some((_, last, node)) if slot <= *last => node.clone(),
            _ => self.unknown.clone(),
        }
    }

    /// The primaries serving slots, as last seen.
    pub(crate) fn primaries(&self) -> Vec<Arc<Node>> {
        let view = self.view();
        view.nodes
            .iter()
            .filter(|(_, primary)| *primary)
            .map(|(node, _)| node.clone())
            .filter(|node| view.ranges.iter().any(|(_, _, n)| Arc::ptr_eq(n, node)))
            .collect()
    }

    /// Every node announced, primaries (with their slot ranges) first.
    pub(crate) fn nodes(&self) -> Vec<Listed> {
        let view = self.view();
        view.nodes
            .iter()
            .map(|(node, primary)| Listed {
                node: node.clone(),
                primary: *primary,
                slots: view
                    .ranges
                    .iter()
                    .filter(|(_, _, n)| Arc::ptr_eq(n, node))
                    .map(|(first, last, _)| *first..=*last)
                    .collect(),
            })
            .collect()
    }

    /// Failed operations since start, on every node, past and present.
    pub(crate) fn errors(&self) -> u64 {
        let view = self.view();
        let current: u64 = view.nodes.iter().map(|(node, _)| node.errors()).sum();
        current + self.unknown.errors() + self.retired_errors.load(Ordering::Relaxed)
    }

    /// Asks for the slot map to be refreshed soon (after a failure).
    pub(crate) fn refresh_soon(&self) {
        self.refresh.notify_one();
    }

    fn view(&self) -> Arc<View> {
        self.view
            .read()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .clone()
    }

    /// Replaces the slot map with `ranges`, keeping the nodes that stay (and their health).
    fn install(&self, ranges: Vec<SlotRange>) {
        let old = self.view();
        let mut known: HashMap<&str, &Arc<Node>> = old
            .nodes
            .iter()
            .map(|(node, _)| (node.address.as_str(), node))
            .collect();
        let mut nodes: Vec<(Arc<Node>, bool)> = Vec::new();
        let mut node = |address: &str, primary: bool, nodes: &mut Vec<(Arc<Node>, bool)>| {
            if let Some((existing, was_primary)) =
                nodes.iter_mut().find(|(node, _)| node.address == address)
            {
                *was_primary |= primary;
                return existing.clone();
            }
            let node = known.remove(address).cloned().unwrap_or_else(|| {
                Arc::new(Node::new(
                    address.to_owned(),
                    self.min_backoff,
                    self.max_backoff,
                ))
            });
            nodes.push((node.clone(), primary));
            node
        };
        let mut sorted = ranges;
        sorted.sort_by_key(|range| range.first);
        let mut view_ranges = Vec::with_capacity(sorted.len());
        for range in &sorted {
            let primary = node(&range.primary, true, &mut nodes);
            view_ranges.push((range.first, range.last, primary));
        }
        for range in &sorted {
            for replica in &range.replicas {
                node(replica, false, &mut nodes);
            }
        }
        nodes.sort_by_key(|(_, primary)| !*primary);
        let changed = old.nodes.len() != nodes.len()
            || old.ranges.len() != view_ranges.len()
            || old
                .ranges
                .iter()
                .zip(&view_ranges)
                .any(|(a, b)| a.0 != b.0 || a.1 != b.1 || a.2.address != b.2.address);
        // Nodes that left keep counting in the store's errors.
        let retired: u64 = known.values().map(|node| node.errors()).sum();
        self.retired_errors.fetch_add(retired, Ordering::Relaxed);
        let addresses: Vec<String> = nodes.iter().map(|(n, _)| n.address.clone()).collect();
        let view = Arc::new(View {
            ranges: view_ranges,
            nodes,
        });
        *self
            .view
            .write()
            .unwrap_or_else(|poisoned| poisoned.into_inner()) = view;
        self.clients.discovered(&addresses);
        if changed {
            // Whatever failed may work in the new topology (errors the whole cluster
            // answered while a primary was being replaced, `CLUSTERDOWN`, are over): try
            // every node again now rather than after its backoff.
            for (node, _) in &self.view().nodes {
                node.health.retry_now();
            }
            self.unknown.health.retry_now();
        }
        if changed {
            let hook = self
                .on_change
                .lock()
                .unwrap_or_else(|poisoned| poisoned.into_inner());
            if let Some(hook) = hook.as_ref() {
                hook(self.primaries().iter().map(|n| n.address.clone()).collect());
            }
        }
        if self.unreachable.swap(false, Ordering::Relaxed) {
            tracing::info!("redis cluster reached");
        }
        if changed && !old.ranges.is_empty() {
            let addresses = |ranges: &[(u16, u16, Arc<Node>)]| {
                let mut addresses: Vec<String> =
                    ranges.iter().map(|(_, _, n)| n.address.clone()).collect();
                addresses.sort();
                addresses.dedup();
                addresses
            };
            let primaries = addresses(&self.view().ranges);
            if addresses(&old.ranges) == primaries {
                // Slots moving between primaries (a reshard): often, and nothing to act on.
                tracing::debug!("redis cluster slot map changed");
            } else {
                tracing::info!(?primaries, "redis cluster primaries changed");
            }
        }
    }
}

/// Refreshes the slot map every [`REFRESH_EVERY`], or sooner when asked, for as long as the
/// topology lives.
async fn refresh_loop(mut asker: Asker, topology: Weak<Topology>, asked: Arc<Notify>) {
    loop {
        let started = Instant::now();
        tokio::select! {
            () = tokio::time::sleep(REFRESH_EVERY) => {}
            () = asked.notified() => {}
        }
        let Some(strong) = topology.upgrade() else {
            return;
        };
        asker.refresh(&strong).await;
        drop(strong);
        // Failures ask often; a refresh every `REFRESH_GAP` at most.
        let since = started.elapsed();
        if since < REFRESH_GAP {
            tokio::time::sleep(REFRESH_GAP - since).await;
        }
    }
}

/// Asks one node at a time for the slot map, moving on to the next known node when the one
/// asked stops answering.
#[derive(Default)]
struct Asker {
    asking: Option<(MultiplexedConnection, String)>,
    next: usize,
}

impl Asker {
    /// Reads the slot map into `topology`, trying each known node once at most.
    async fn refresh(&mut self, topology: &Topology) {
        let candidates = topology.clients.all();
        for _ in 0..candidates.len().max(1) {
            if self.asking.is_none() {
                let Some(client) = candidates.get(self.next % candidates.len().max(1)) else {
                    return;
                };
                self.next = self.next.wrapping_add(1);
                self.asking = connect(client).await;
            }
            if let Some((conn, host)) = &mut self.asking {
                match ask(conn, host).await {
                    Some(ranges) if !ranges.is_empty() => {
                        topology.install(ranges);
                        return;
                    }
                    _ => self.asking = None,
                }
            }
        }
    }
}

/// A connection to `client`'s node, and its host (for ranges announcing no endpoint).
async fn connect(client: &redis::Client) -> Option<(MultiplexedConnection, String)> {
    let config = AsyncConnectionConfig::new()
        .set_connection_timeout(Some(ASK_TIMEOUT))
        .set_response_timeout(Some(ASK_TIMEOUT));
    let conn = tokio::time::timeout(
        ASK_TIMEOUT,
        client.get_multiplexed_async_connection_with_config(&config),
    )
    .await
    .ok()?
    .ok()?;
    let host = match client.get_connection_info().addr() {
        ConnectionAddr::Tcp(host, _) | ConnectionAddr::TcpTls { host, .. } => host.clone(),
        _ => return None,
    };
    Some((conn, host))
}

async fn ask(conn: &mut MultiplexedConnection, host: &str) -> Option<Vec<SlotRange>> {
    let cmd = redis::cmd("CLUSTER").arg("SLOTS").to_owned();
    let value: Value = tokio::time::timeout(ASK_TIMEOUT, cmd.query_async(conn))
        .await
        .ok()?
        .ok()?;
    parse_slots(&value, host)
}

/// Parses a `CLUSTER SLOTS` reply: `[[first, last, [host, port, id, …], replica…], …]`. An
/// empty or `?` host is the host asked.
pub(crate) fn parse_slots(value: &Value, asked_host: &str) -> Option<Vec<SlotRange>> {
    let Value::Array(ranges) = value else {
        return None;
    };
    let node = |value: &Value| -> Option<String> {
        let Value::Array(fields) = value else {
            return None;
        };
        let host = match fields.first()? {
            Value::BulkString(bytes) => String::from_utf8(bytes.clone()).ok()?,
            Value::SimpleString(text) => text.clone(),
            _ => return None,
        };
        let host = if host.is_empty() || host == "?" {
            asked_host.to_owned()
        } else {
            host
        };
        let Value::Int(port) = fields.get(1)? else {
            return None;
        };
        let port = u16::try_from(*port).ok()?;
        if host.contains(':') {
            Some(format!("[{host}]:{port}"))
        } else {
            Some(format!("{host}:{port}"))
        }
    };
    ranges
        .iter()
        .map(|range| {
            let Value::Array(fields) = range else {
                return None;
            };
            let (Value::Int(first), Value::Int(last)) = (fields.first()?, fields.get(1)?) else {
                return None;
            };
            Some(SlotRange {
                first: u16::try_from(*first).ok()?,
                last: u16::try_from(*last).ok()?,
                primary: node(fields.get(2)?)?,
                replicas: fields.iter().skip(3).filter_map(node).collect(),
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bulk(text: &str) -> Value {
        Value::BulkString(text.as_bytes().to_vec())
    }

    fn node(host: &str, port: i64) -> Value {
        Value::Array(vec![bulk(host), Value::Int(port), bulk("id")])
    }

    fn topology(ranges: &[(u16, u16, &str)]) -> Topology {
        let topology = Topology::new(
            Arc::new(Clients::new(Vec::new())),
            Duration::from_millis(100),
            Duration::from_secs(10),
        );
        topology.install(
            ranges
                .iter()
                .map(|(first, last, primary)| SlotRange {
                    first: *first,
                    last: *last,
                    primary: (*primary).to_owned(),
                    replicas: vec![format!("{primary}-replica")],
                })
                .collect(),
        );
        topology
    }

    #[test]
    fn cluster_slots_replies_are_parsed() {
        let reply = Value::Array(vec![
            Value::Array(vec![
                Value::Int(0),
                Value::Int(5460),
                node("10.0.0.1", 7000),
                node("10.0.0.2", 7001),
            ]),
            Value::Array(vec![Value::Int(5461), Value::Int(16383), node("?", 7002)]),
        ]);
        let ranges = parse_slots(&reply, "seed.internal").unwrap();
        assert_eq!(
            ranges,
            vec![
                SlotRange {
                    first: 0,
                    last: 5460,
                    primary: "10.0.0.1:7000".into(),
                    replicas: vec!["10.0.0.2:7001".into()],
                },
                SlotRange {
                    first: 5461,
                    last: 16383,
                    primary: "seed.internal:7002".into(),
                    replicas: vec![],
                },
            ]
        );
        assert_eq!(parse_slots(&Value::Int(1), "h"), None);
    }

    #[test]
    fn keys_map_to_the_primary_of_their_slot() {
        let topology = topology(&[
            (0, 5460, "a:1"),
            (5461, 10922, "b:1"),
            (10923, 16383, "c:1"),
        ]);
        // `foo` is in slot 12182, `bar` in slot 5061.
        assert_eq!(topology.node_for("foo").address, "c:1");
        assert_eq!(topology.node_for("bar").address, "a:1");
        assert_eq!(topology.primaries().len(), 3);
        let nodes = topology.nodes();
        assert_eq!(nodes.len(), 6);
        assert!(nodes[..3].iter().all(|listed| listed.primary));
        assert_eq!(nodes[0].slots, vec![0..=5460]);
        assert!(nodes[3..].iter().all(|l| !l.primary && l.slots.is_empty()));
    }

    #[test]
    fn unserved_slots_and_unknown_topologies_count_apart() {
        let empty = topology(&[]);
        assert_eq!(empty.node_for("foo").address, "cluster");
        let gap = topology(&[(0, 100, "a:1")]);
        assert_eq!(gap.node_for("foo").address, "cluster");
    }

    #[test]
    fn nodes_keep_their_health_across_refreshes_and_leavers_keep_their_errors() {
        let topology = topology(&[(0, 8191, "a:1"), (8192, 16383, "b:1")]);
        let b = topology.node_for("foo");
        b.failed("get", &crate::store::StoreError::Timeout);
        assert_eq!(topology.errors(), 1);
        // b's replica takes over: b leaves, its replica starts healthy.
        topology.install(vec![
            SlotRange {
                first: 0,
                last: 8191,
                primary: "a:1".into(),
                replicas: vec![],
            },
            SlotRange {
                first: 8192,
                last: 16383,
                primary: "b:1-replica".into(),
                replicas: vec![],
            },
        ]);
        let promoted = topology.node_for("foo");
        assert_eq!(promoted.address, "b:1-replica");
        assert!(promoted.available());
        assert_eq!(topology.errors(), 1, "the leaver's error still counts");
        assert!(Arc::ptr_eq(
            &topology.node_for("bar"),
            &topology.primaries()[0]
        ));
    }

    #[test]
    fn discovered_nodes_get_clients_with_the_seeds_settings() {
        let seed = redis::Client::open("redis://user:secret@10.0.0.1:7000/0").unwrap();
        let clients = Clients::new(vec![seed]);
        clients.discovered(&[
            "10.0.0.9:7005".to_owned(),
            "10.0.0.1:7000".to_owned(),
            "no-port".to_owned(),
        ]);
        let all = clients.all();
        assert_eq!(all.len(), 2, "the seed, then the other node discovered");
        assert_eq!(super::super::conn::address_of(&all[0]), "10.0.0.1:7000");
        let info = all[1].get_connection_info();
        assert_eq!(info.addr(), &ConnectionAddr::Tcp("10.0.0.9".into(), 7005));
        assert_eq!(info.redis_settings().username(), Some("user"));
        assert!(clients.client_for("[::1]:7001").is_some());
    }
}
