//! The connection: one server (a `ConnectionManager`) or a cluster (`router.rs`), and
//! groups of commands on one key.

#[cfg(feature = "redis-cluster")]
use std::sync::Arc;

use redis::aio::ConnectionManager;
use redis::{Cmd, ConnectionAddr, FromRedisValue, Pipeline, RedisError, ScriptInvocation, Value};

#[cfg(feature = "redis-cluster")]
use super::router::{Router, Target};

#[derive(Clone)]
pub(super) enum Conn {
    Single(ConnectionManager),
    /// One connection per node, each command sent to the primary of its key's slot.
    #[cfg(feature = "redis-cluster")]
    Cluster(Arc<Router>),
}

impl Conn {
    /// Runs a command on `key` (on a cluster, on the node serving the key's slot; a
    /// channel is a key too).
    pub(super) async fn query<T: FromRedisValue>(
        &self,
        key: &str,
        cmd: &Cmd,
    ) -> Result<T, RedisError> {
        match self {
            Conn::Single(conn) => {
                let _ = key;
                cmd.query_async(&mut conn.clone()).await
            }
            #[cfg(feature = "redis-cluster")]
            Conn::Cluster(router) => cmd.query_async(&mut router.to(Target::Key(key))).await,
        }
    }

    async fn pipe<T: FromRedisValue>(&self, key: &str, pipe: &Pipeline) -> Result<T, RedisError> {
        match self {
            Conn::Single(conn) => {
                let _ = key;
                pipe.query_async(&mut conn.clone()).await
            }
            #[cfg(feature = "redis-cluster")]
            Conn::Cluster(router) => pipe.query_async(&mut router.to(Target::Key(key))).await,
        }
    }

    /// Runs a script (loading it first if the server does not know it yet) whose first key
    /// is `key`: on a cluster, on the node serving that key's slot (every key of one script
    /// shares its hash tag).
    pub(super) async fn script<T: FromRedisValue>(
        &self,
        key: &str,
        invocation: &ScriptInvocation<'_>,
    ) -> Result<T, RedisError> {
        match self {
            Conn::Single(conn) => {
                let _ = key;
                invocation.invoke_async(&mut conn.clone()).await
            }
            #[cfg(feature = "redis-cluster")]
            Conn::Cluster(router) => {
                invocation
                    .invoke_async(&mut router.to(Target::Key(key)))
                    .await
            }
        }
    }

    /// Runs groups of commands, each group touching a single key, as one pipeline (one
    /// round trip; a single server's way). Returns the wanted replies in order.
    pub(super) async fn batch(&self, groups: &[Group]) -> Result<Vec<Value>, RedisError> {
        let mut pipe = redis::pipe();
        for group in groups {
            group.add_to(&mut pipe);
        }
        let key = groups.first().map_or("", |group| group.key.as_str());
        self.pipe(key, &pipe).await
    }

    /// Runs one group of commands on one key as a pipeline (on a cluster, on the node
    /// serving the key's slot). Returns the wanted replies in order.
    #[cfg_attr(not(feature = "redis-cluster"), allow(dead_code))]
    pub(super) async fn group(&self, group: &Group) -> Result<Vec<Value>, RedisError> {
        let mut pipe = redis::pipe();
        group.add_to(&mut pipe);
        self.pipe(&group.key, &pipe).await
    }

    /// One `SCAN` step on the node at `address` (`host:port`; on a single server, the
    /// server): the next cursor and the keys matching `pattern`.
    pub(super) async fn scan_node(
        &self,
        address: &str,
        cursor: u64,
        pattern: &str,
    ) -> Result<(u64, Vec<String>), RedisError> {
        match self {
            Conn::Single(conn) => {
                let _ = address;
                scan(cursor, pattern).query_async(&mut conn.clone()).await
            }
            #[cfg(feature = "redis-cluster")]
            Conn::Cluster(router) => {
                scan(cursor, pattern)
                    .query_async(&mut router.to(Target::Node(address)))
                    .await
            }
        }
    }
}

/// `SCAN cursor MATCH pattern COUNT 1000`.
fn scan(cursor: u64, pattern: &str) -> Cmd {
    redis::cmd("SCAN")
        .arg(cursor)
        .arg("MATCH")
        .arg(pattern)
        .arg("COUNT")
        .arg(1000)
        .to_owned()
}

/// Commands on one key (the key routes them on a cluster), each with whether its reply is
/// wanted.
pub(super) struct Group {
    pub(super) key: String,
    pub(super) commands: Vec<(Cmd, bool)>,
}

impl Group {
    /// A group of one command on `key`.
    pub(super) fn one(key: String, cmd: Cmd, wanted: bool) -> Self {
        Group {
            key,
            commands: vec![(cmd, wanted)],
        }
    }

    /// Adds the commands setting the key's expiry to `ttl` if it has none, or extending it
    /// if `ttl` is longer.
    pub(super) fn expire(&mut self, ttl: u64) {
        for mode in ["NX", "GT"] {
            let cmd = redis::cmd("PEXPIRE")
                .arg(&self.key)
                .arg(ttl)
                .arg(mode)
                .to_owned();
            self.commands.push((cmd, false));
        }
    }

    fn add_to(&self, pipe: &mut Pipeline) {
        for (cmd, wanted) in &self.commands {
            pipe.add_command(cmd.clone());
            if !wanted {
                pipe.ignore();
            }
        }
    }
}

/// Clients for the nodes a store may subscribe through (and a cluster's slot map be read
/// from): the ones given, then on a cluster the nodes discovered since (with the given
/// ones' settings: TLS, credentials).
pub(crate) struct Clients {
    given: Vec<redis::Client>,
    discovered: std::sync::RwLock<Vec<redis::Client>>,
}

impl Clients {
    pub(crate) fn new(given: Vec<redis::Client>) -> Self {
        Clients {
            given,
            discovered: std::sync::RwLock::new(Vec::new()),
        }
    }

    /// The given nodes' clients, then the discovered ones' (those not given).
    pub(crate) fn all(&self) -> Vec<redis::Client> {
        let discovered = self
            .discovered
            .read()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        let given: Vec<String> = self.given.iter().map(address_of).collect();
        self.given
            .iter()
            .chain(
                discovered
                    .iter()
                    .filter(|client| !given.contains(&address_of(client))),
            )
            .cloned()
            .collect()
    }

    /// A client for the node at `address` (`host:port`), with the given nodes' settings.
    #[cfg_attr(not(feature = "redis-cluster"), allow(dead_code))]
    pub(crate) fn client_for(&self, address: &str) -> Option<redis::Client> {
        client_for(self.given.first()?, address)
    }

    /// Replaces the discovered nodes with those at `addresses` (`host:port`).
    #[cfg_attr(not(feature = "redis-cluster"), allow(dead_code))]
    pub(crate) fn discovered(&self, addresses: &[String]) {
        let Some(template) = self.given.first() else {
            return;
        };
        let clients: Vec<redis::Client> = addresses
            .iter()
            .filter_map(|address| client_for(template, address))
            .collect();
        *self
            .discovered
            .write()
            .unwrap_or_else(|poisoned| poisoned.into_inner()) = clients;
    }
}

/// A client for `address` (`host:port`, `[v6]:port`) with `template`'s settings.
#[cfg_attr(not(feature = "redis-cluster"), allow(dead_code))]
fn client_for(template: &redis::Client, address: &str) -> Option<redis::Client> {
    let (host, port) = address.rsplit_once(':')?;
    let port: u16 = port.parse().ok()?;
    let host = host
        .trim_start_matches('[')
        .trim_end_matches(']')
        .to_owned();
    let info = template.get_connection_info().clone();
    let addr = match info.addr() {
        ConnectionAddr::TcpTls {
            insecure,
            tls_params,
            ..
        } => ConnectionAddr::TcpTls {
            host,
            port,
            insecure: *insecure,
            tls_params: tls_params.clone(),
        },
        _ => ConnectionAddr::Tcp(host, port),
    };
    redis::Client::open(info.set_addr(addr)).ok()
}

/// `host:port` of a client's server, without credentials (`unix:PATH` for a socket).
pub(super) fn address_of(client: &redis::Client) -> String {
    match client.get_connection_info().addr() {
        ConnectionAddr::Tcp(host, port) | ConnectionAddr::TcpTls { host, port, .. } => {
            if host.contains(':') {
                format!("[{host}]:{port}")
            } else {
                format!("{host}:{port}")
            }
        }
        ConnectionAddr::Unix(path) => format!("unix:{}", path.display()),
        _ => "redis".to_owned(),
    }
}
