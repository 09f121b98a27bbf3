//! Throwaway Redis, PostgreSQL and Varnish servers on free ports, started from the installed
//! binaries, for the tests that kill, pause or restart a server (never the shared ones), for
//! the tests that need a server of another shape (Varnish), and for `cargo xtask` when no
//! server answers. Each is stopped and its data directory removed when
//! it is dropped, even when a test fails.
//!
//! This module uses the standard library only, so xtask can depend on the crate with
//! `default-features = false` and stay quick to build.
//!
//! ```no_run
//! use towerkit_test_support::servers::{Postgres, Redis};
//!
//! let mut redis = Redis::start()?;
//! let url = redis.url(); // redis://127.0.0.1:PORT
//! redis.kill();
//! redis.restart()?;
//!
//! let postgres = Postgres::start()?; // initdb (as the postgres user when run as root), then start
//! postgres.stop();
//! postgres.start_again()?;
//! # let _ = url;
//! # Ok::<(), std::io::Error>(())
//! ```

use std::io::{self, Read, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// A local port nothing listens on right now (bound, then released).
pub fn free_port() -> io::Result<u16> {
    Ok(TcpListener::bind((Ipv4Addr::LOCALHOST, 0))?
        .local_addr()?
        .port())
}

/// A `redis-server` of its own on a free port of 127.0.0.1, with no persistence; killed and
/// its directory removed on drop.
#[derive(Debug)]
pub struct Redis {
    port: u16,
    child: Option<Child>,
    dir: PathBuf,
    args: Vec<String>,
    tls: bool,
}

/// The certificate and key a TLS [`Redis`] presents (PEM), for
/// [`Redis::start_tls`].
#[derive(Debug, Clone)]
pub struct RedisTls {
    /// The server certificate, PEM (`tls-cert-file`).
    pub cert_pem: String,
    /// Its private key, PEM (`tls-key-file`).
    pub key_pem: String,
    /// The CA it would check client certificates against (`tls-ca-cert-file`; client
    /// certificates are not asked for: `tls-auth-clients no`).
    pub ca_pem: String,
}

impl Redis {
    /// Starts `redis-server` (from `PATH`) and waits until it answers `PING`.
    pub fn start() -> io::Result<Self> {
        Self::start_with(&[])
    }

    /// Starts `redis-server` with extra arguments (`["--cluster-enabled", "yes"]`), kept for
    /// [`restart`](Self::restart).
    pub fn start_with(args: &[&str]) -> io::Result<Self> {
        let port = free_port()?;
        let dir = scratch_dir("redis", port);
        std::fs::create_dir_all(&dir)?;
        let mut server = Self {
            port,
            child: None,
            dir,
            args: args.iter().map(|arg| (*arg).to_owned()).collect(),
            tls: false,
        };
        server.restart()?;
        Ok(server)
    }

    /// Starts `redis-server` accepting TLS only (`--tls-port PORT --port 0`, no client
    /// certificates asked for), with extra arguments, and waits until the port accepts
    /// connections. Its URL is `rediss://127.0.0.1:PORT` ([`url`](Self::url)).
    pub fn start_tls(tls: &RedisTls, args: &[&str]) -> io::Result<Self> {
        let port = free_port()?;
        let dir = scratch_dir("redis", port);
        std::fs::create_dir_all(&dir)?;
        let file = |name: &str, pem: &str| -> io::Result<String> {
            let path = dir.join(name);
            std::fs::write(&path, pem)?;
            Ok(path.display().to_string())
        };
        let cert = file("server.crt", &tls.cert_pem)?;
        let key = file("server.key", &tls.key_pem)?;
        let ca = file("ca.crt", &tls.ca_pem)?;
        let port_text = port.to_string();
        let mut all: Vec<String> = [
            "--port",
            "0",
            "--tls-port",
            &port_text,
            "--tls-cert-file",
            &cert,
            "--tls-key-file",
            &key,
            "--tls-ca-cert-file",
            &ca,
            "--tls-auth-clients",
            "no",
        ]
        .iter()
        .map(|arg| (*arg).to_owned())
        .collect();
        all.extend(args.iter().map(|arg| (*arg).to_owned()));
        let mut server = Self {
            port,
            child: None,
            dir,
            args: all,
            tls: true,
        };
        server.restart()?;
        Ok(server)
    }

    /// The port it listens on.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// `redis://127.0.0.1:PORT`, or `rediss://127.0.0.1:PORT` when started with
    /// [`start_tls`](Self::start_tls).
    pub fn url(&self) -> String {
        let scheme = if self.tls { "rediss" } else { "redis" };
        format!("{scheme}://127.0.0.1:{}", self.port)
    }

    /// Kills the server (`SIGKILL`): clients see their connections drop. Does nothing when it
    /// is not running.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// (Re)starts the server on the same port and directory (killing it first if it runs) and
    /// waits up to 10 s until it answers `PING`.
    pub fn restart(&mut self) -> io::Result<()> {
        self.kill();
        let server = which("redis-server").ok_or_else(|| {
            io::Error::new(
                io::ErrorKind::NotFound,
                "redis-server is not installed (Debian/Ubuntu: `apt-get install redis-server`)",
            )
        })?;
        let child = Command::new(server)
            .args(["--port", &self.port.to_string(), "--bind", "127.0.0.1"])
            .args(["--save", "", "--appendonly", "no"])
            .arg("--dir")
            .arg(&self.dir)
            .args(&self.args)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .map_err(|e| io::Error::new(e.kind(), format!("cannot start redis-server: {e}")))?;
        self.child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            let ready = if self.tls {
                accepts(self.port)
            } else {
                answers_ping(self.port)
            };
            if ready {
                return Ok(());
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        self.kill();
        Err(io::Error::new(
            io::ErrorKind::TimedOut,
            format!("redis-server on port {} did not start", self.port),
        ))
    }
}

impl Drop for Redis {
    fn drop(&mut self) {
        self.kill();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// A six-node Redis Cluster of its own (three primaries, one replica each) on free ports of
/// 127.0.0.1, plain ([`start`](Self::start)) or TLS only with `tls-cluster yes`
/// ([`start_tls`](Self::start_tls)); every node killed and its directory removed on drop.
#[derive(Debug)]
pub struct RedisCluster {
    nodes: Vec<Redis>,
}

impl RedisCluster {
    /// Starts six plain cluster nodes (node timeout 1 s), joins them with `redis-cli
    /// --cluster create --cluster-replicas 1` and waits (up to 20 s) until every node reports
    /// `cluster_state:ok` and every replica has synced with its primary (so that it can
    /// take over when the primary dies).
    pub fn start() -> io::Result<Self> {
        Self::create(None, &[])
    }

    /// As [`start`](Self::start), with extra `redis-server` arguments for every node
    /// (`["--cluster-require-full-coverage", "no"]`).
    pub fn start_with(args: &[&str]) -> io::Result<Self> {
        Self::create(None, args)
    }

    /// As [`start`](Self::start), every node TLS only (`--tls-port P --port 0`, the cluster
    /// bus and replication over TLS too) with the certificate of `tls`, which must name
    /// `127.0.0.1`.
    pub fn start_tls(tls: &RedisTls) -> io::Result<Self> {
        Self::create(Some(tls), &[])
    }

    fn create(tls: Option<&RedisTls>, extra: &[&str]) -> io::Result<Self> {
        let mut nodes = Vec::with_capacity(6);
        for _ in 0..6 {
            // The bus port is chosen too: the default (port + 10000) may not exist.
            let bus = free_port()?.to_string();
            let mut args = vec![
                "--cluster-enabled",
                "yes",
                "--cluster-config-file",
                "nodes.conf",
                "--cluster-node-timeout",
                "1000",
                "--cluster-port",
                &bus,
                // Replicas sync at once (not after the default 5 s of waiting for more), so
                // that a replica can take over a primary killed right after the start.
                "--repl-diskless-sync-delay",
                "0",
            ];
            args.extend(extra);
            let node = match tls {
                Some(tls) => {
                    args.extend(["--tls-cluster", "yes", "--tls-replication", "yes"]);
                    Redis::start_tls(tls, &args)?
                }
                None => Redis::start_with(&args)?,
            };
            nodes.push(node);
        }
        let cluster = Self { nodes };
        let addresses: Vec<String> = cluster
            .nodes
            .iter()
            .map(|node| format!("127.0.0.1:{}", node.port))
            .collect();
        let mut create = Self::cli(&cluster.nodes[0]);
        create
            .arg("--cluster")
            .arg("create")
            .args(&addresses)
            .args(["--cluster-replicas", "1", "--cluster-yes"]);
        run_within(&mut create, Duration::from_secs(30))?;
        let deadline = Instant::now() + Duration::from_secs(20);
        for node in &cluster.nodes {
            loop {
                let info = Self::cli(node).args(["cluster", "info"]).output()?;
                if String::from_utf8_lossy(&info.stdout).contains("cluster_state:ok") {
                    break;
                }
                if Instant::now() > deadline {
                    return Err(io::Error::new(
                        io::ErrorKind::TimedOut,
                        format!(
                            "Redis Cluster node {} did not reach cluster_state:ok",
                            node.port
                        ),
                    ));
                }
                std::thread::sleep(Duration::from_millis(50));
            }
        }
        // Every node sees three primaries serving every slot, each followed by a replica.
        for node in &cluster.nodes {
            loop {
                let seen = cluster
                    .cli_on(node.port, &["cluster", "nodes"])
                    .map(|text| parse_cluster_nodes(&text))
                    .unwrap_or_default();
                let primaries = seen
                    .iter()
                    .filter(|n| n.primary && !n.slots.is_empty())
                    .count();
                let replicas = seen.iter().filter(|n| n.primary_id.is_some()).count();
                if primaries == 3 && replicas == 3 {
                    break;
                }
                if Instant::now() > deadline {
                    return Err(io::Error::new(
                        io::ErrorKind::TimedOut,
                        format!("node {} did not see the whole cluster", node.port),
                    ));
                }
                std::thread::sleep(Duration::from_millis(50));
            }
        }
        // A replica whose first sync has not finished cannot take over its primary.
        for node in &cluster.nodes {
            loop {
                let info = Self::cli(node).args(["info", "replication"]).output()?;
                let info = String::from_utf8_lossy(&info.stdout);
                if info.contains("role:master") || info.contains("master_link_status:up") {
                    break;
                }
                if Instant::now() > deadline {
                    return Err(io::Error::new(
                        io::ErrorKind::TimedOut,
                        format!("the replica on port {} did not sync", node.port),
                    ));
                }
                std::thread::sleep(Duration::from_millis(50));
            }
        }
        Ok(cluster)
    }

    /// `redis-cli` against one node, with TLS and the CA when the cluster uses TLS.
    fn cli(node: &Redis) -> Command {
        let mut command = Command::new("redis-cli");
        if node.tls {
            command
                .arg("--tls")
                .arg("--cacert")
                .arg(node.dir.join("ca.crt"));
        }
        command.args(["-h", "127.0.0.1", "-p", &node.port.to_string()]);
        command.stdin(Stdio::null());
        command
    }

    /// The six nodes' ports.
    pub fn ports(&self) -> Vec<u16> {
        self.nodes.iter().map(Redis::port).collect()
    }

    /// The six nodes' URLs (`redis://` or `rediss://127.0.0.1:PORT`), the seeds of a
    /// cluster client.
    pub fn urls(&self) -> Vec<String> {
        self.nodes.iter().map(Redis::url).collect()
    }

    /// The URL of the node on `port`.
    pub fn url(&self, port: u16) -> String {
        let scheme = if self.nodes.first().is_some_and(|node| node.tls) {
            "rediss"
        } else {
            "redis"
        };
        format!("{scheme}://127.0.0.1:{port}")
    }

    /// Whether the node on `port` runs (was neither killed nor never started).
    pub fn is_running(&self, port: u16) -> bool {
        self.node(port).is_some_and(|node| node.child.is_some())
    }

    /// Runs `redis-cli` with `args` against the node on `port` and returns what it printed
    /// (`CLUSTER NODES`, `DBSIZE`, …), failing on a non-zero exit or an error reply.
    pub fn cli_on(&self, port: u16, args: &[&str]) -> io::Result<String> {
        let node = self.node(port).ok_or_else(|| unknown_node(port))?;
        let output = Self::cli(node).args(args).output()?;
        let text = String::from_utf8_lossy(&output.stdout).into_owned();
        if !output.status.success() || text.starts_with("ERR") || text.starts_with("(error)") {
            return Err(io::Error::other(format!(
                "redis-cli {args:?} on port {port} failed: {}{}",
                text.trim(),
                String::from_utf8_lossy(&output.stderr).trim()
            )));
        }
        Ok(text)
    }

    /// The cluster as one running node sees it (`CLUSTER NODES`), the first node that
    /// answers, in the order of [`ports`](Self::ports).
    pub fn topology(&self) -> io::Result<Vec<ClusterNode>> {
        let mut last = io::Error::other("no cluster node is running");
        for node in self.nodes.iter().filter(|node| node.child.is_some()) {
            match self.cli_on(node.port, &["cluster", "nodes"]) {
                Ok(text) => return Ok(parse_cluster_nodes(&text)),
                Err(error) => last = error,
            }
        }
        Err(last)
    }

    /// The primaries that serve slots and are not marked failed, as the first running node
    /// sees them, by port.
    pub fn primaries(&self) -> io::Result<Vec<ClusterNode>> {
        let mut primaries: Vec<ClusterNode> = self
            .topology()?
            .into_iter()
            .filter(|node| node.primary && !node.failed && !node.slots.is_empty())
            .collect();
        primaries.sort_by_key(|node| node.port);
        Ok(primaries)
    }

    /// The port of a replica of the primary on `primary_port`, as the replica itself says.
    pub fn replica_of(&self, primary_port: u16) -> io::Result<u16> {
        let primary_id = self
            .cli_on(primary_port, &["cluster", "myid"])?
            .trim()
            .to_owned();
        for node in self.nodes.iter().filter(|node| node.child.is_some()) {
            let Ok(text) = self.cli_on(node.port, &["cluster", "nodes"]) else {
                continue;
            };
            let follows = text.lines().any(|line| {
                let fields: Vec<&str> = line.split_whitespace().collect();
                fields.len() > 3
                    && fields[2].split(',').any(|flag| flag == "myself")
                    && fields[3] == primary_id
            });
            if follows {
                return Ok(node.port);
            }
        }
        Err(io::Error::other(format!(
            "no replica follows port {primary_port}"
        )))
    }

    /// Kills the node on `port` (`SIGKILL`): its clients see their connections drop, and
    /// after the node timeout (1 s) its replica takes over if it was a primary.
    pub fn kill(&mut self, port: u16) {
        if let Some(node) = self.nodes.iter_mut().find(|node| node.port == port) {
            node.kill();
        }
    }

    /// Restarts a killed node on its port with its cluster configuration: it rejoins the
    /// cluster (a former primary whose replica took over comes back as a replica).
    pub fn restart(&mut self, port: u16) -> io::Result<()> {
        self.nodes
            .iter_mut()
            .find(|node| node.port == port)
            .ok_or_else(|| unknown_node(port))?
            .restart()
    }

    /// Waits (up to `limit`) until every running node reports `cluster_state:ok` and sees
    /// the node on `port` as a primary serving slots: after a failover, when the replica
    /// on `port` has taken over everywhere.
    pub fn wait_until_primary(&self, port: u16, limit: Duration) -> io::Result<()> {
        let deadline = Instant::now() + limit;
        loop {
            let settled = self
                .nodes
                .iter()
                .filter(|node| node.child.is_some())
                .all(|node| {
                    let ok = self
                        .cli_on(node.port, &["cluster", "info"])
                        .is_ok_and(|info| info.contains("cluster_state:ok"));
                    ok && self
                        .cli_on(node.port, &["cluster", "nodes"])
                        .is_ok_and(|text| {
                            parse_cluster_nodes(&text).iter().any(|seen| {
                                seen.port == port && seen.primary && !seen.slots.is_empty()
                            })
                        })
                });
            if settled {
                return Ok(());
            }
            if Instant::now() > deadline {
                return Err(io::Error::new(
                    io::ErrorKind::TimedOut,
                    format!("the node on port {port} did not become a primary in {limit:?}"),
                ));
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Moves `slots` slots from the primary on `from` to the primary on `to` with
    /// `redis-cli --cluster reshard` (slot by slot: `SETSLOT … IMPORTING/MIGRATING`, the
    /// keys with `MIGRATE`, then `SETSLOT … NODE`), waiting for it to finish (up to 60 s).
    /// Clients see `ASK` for keys of a slot in flight and `MOVED` once a slot has moved.
    pub fn reshard(&self, from: u16, to: u16, slots: u16) -> io::Result<()> {
        let id = |port: u16| -> io::Result<String> {
            Ok(self.cli_on(port, &["cluster", "myid"])?.trim().to_owned())
        };
        let (from_id, to_id) = (id(from)?, id(to)?);
        let node = self.node(from).ok_or_else(|| unknown_node(from))?;
        let mut reshard = Self::cli(node);
        reshard
            .args(["--cluster", "reshard", &format!("127.0.0.1:{from}")])
            .args(["--cluster-from", &from_id, "--cluster-to", &to_id])
            .args(["--cluster-slots", &slots.to_string(), "--cluster-yes"]);
        run_within(&mut reshard, Duration::from_secs(60))
    }

    /// Moves `slots` from the primary on `from` to the primary on `to` by hand, as
    /// `redis-cli --cluster reshard` does (`SETSLOT … IMPORTING` on the target, `MIGRATING`
    /// on the source, each key with `MIGRATE`, then `SETSLOT … NODE` on every primary), but
    /// key by key with `pause` after each: meanwhile the slot is half moved, and clients
    /// see `ASK` for the keys already moved and `MOVED` once the slot has.
    pub fn move_slots(&self, from: u16, to: u16, slots: &[u16], pause: Duration) -> io::Result<()> {
        let id = |port: u16| -> io::Result<String> {
            Ok(self.cli_on(port, &["cluster", "myid"])?.trim().to_owned())
        };
        let (from_id, to_id) = (id(from)?, id(to)?);
        let primaries: Vec<u16> = self.primaries()?.iter().map(|node| node.port).collect();
        for slot in slots {
            let slot = slot.to_string();
            self.cli_on(to, &["cluster", "setslot", &slot, "importing", &from_id])?;
            self.cli_on(from, &["cluster", "setslot", &slot, "migrating", &to_id])?;
            let keys = self.cli_on(from, &["cluster", "getkeysinslot", &slot, "100000"])?;
            for key in keys.lines().filter(|key| !key.is_empty()) {
                let port = to.to_string();
                let migrate = ["migrate", "127.0.0.1", &port, key, "0", "5000"];
                let reply = self.cli_on(from, &migrate)?;
                if !reply.contains("OK") && !reply.contains("NOKEY") {
                    return Err(io::Error::other(format!("MIGRATE {key}: {}", reply.trim())));
                }
                std::thread::sleep(pause);
            }
            for port in [to, from]
                .into_iter()
                .chain(primaries.iter().copied().filter(|p| *p != to && *p != from))
            {
                self.cli_on(port, &["cluster", "setslot", &slot, "node", &to_id])?;
            }
        }
        Ok(())
    }

    fn node(&self, port: u16) -> Option<&Redis> {
        self.nodes.iter().find(|node| node.port == port)
    }
}

/// One node of a [`RedisCluster`], as a line of `CLUSTER NODES` describes it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClusterNode {
    /// The node's ID.
    pub id: String,
    /// Its port on 127.0.0.1.
    pub port: u16,
    /// Whether it is a primary (`master`), or a replica.
    pub primary: bool,
    /// A replica's primary's ID.
    pub primary_id: Option<String>,
    /// Whether it is marked failed (`fail`) or suspected (`fail?`).
    pub failed: bool,
    /// The slot ranges it serves, inclusive (a primary's).
    pub slots: Vec<(u16, u16)>,
}

impl ClusterNode {
    /// Whether it serves `slot`.
    pub fn serves(&self, slot: u16) -> bool {
        self.slots
            .iter()
            .any(|&(first, last)| (first..=last).contains(&slot))
    }
}

/// Parses `CLUSTER NODES`: `<id> <ip:port@bus> <flags> <primary|-> <ping> <pong> <epoch>
/// <link> <slot or range>…`; slots in migration (`[…]`) are left out.
fn parse_cluster_nodes(text: &str) -> Vec<ClusterNode> {
    text.lines()
        .filter_map(|line| {
            let fields: Vec<&str> = line.split_whitespace().collect();
            if fields.len() < 8 {
                return None;
            }
            let address = fields[1].split('@').next()?;
            let port = address.rsplit(':').next()?.parse().ok()?;
            let flags: Vec<&str> = fields[2].split(',').collect();
            let slots = fields[8..]
                .iter()
                .filter(|slot| !slot.starts_with('['))
                .filter_map(|slot| match slot.split_once('-') {
                    Some((first, last)) => Some((first.parse().ok()?, last.parse().ok()?)),
                    None => {
                        let slot = slot.parse().ok()?;
                        Some((slot, slot))
                    }
                })
                .collect();
            Some(ClusterNode {
                id: fields[0].to_owned(),
                port,
                primary: flags.contains(&"master"),
                primary_id: (fields[3] != "-").then(|| fields[3].to_owned()),
                failed: flags.contains(&"fail") || flags.contains(&"fail?"),
                slots,
            })
        })
        .collect()
}

fn unknown_node(port: u16) -> io::Error {
    io::Error::new(
        io::ErrorKind::NotFound,
        format!("no node of this cluster listens on port {port}"),
    )
}

/// Runs a command to its end, killing it after `limit`.
fn run_within(command: &mut Command, limit: Duration) -> io::Result<()> {
    let mut child = command
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| io::Error::new(e.kind(), format!("cannot run {command:?}: {e}")))?;
    let deadline = Instant::now() + limit;
    loop {
        if child.try_wait()?.is_some() {
            let output = child.wait_with_output()?;
            if output.status.success() {
                return Ok(());
            }
            return Err(io::Error::other(format!(
                "{command:?} failed: {}{}",
                String::from_utf8_lossy(&output.stdout).trim(),
                String::from_utf8_lossy(&output.stderr).trim()
            )));
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            return Err(io::Error::new(
                io::ErrorKind::TimedOut,
                format!("{command:?} did not finish in {limit:?}"),
            ));
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// A PostgreSQL cluster of its own (`initdb`, trust authentication, user `postgres`, no
/// fsync) on a free port of 127.0.0.1, that a test may stop and start again; stopped
/// (`-m immediate`) and its directory removed on drop.
///
/// The binaries come from `PATH` or the newest `/usr/lib/postgresql/*/bin`. `initdb` and
/// `postgres` refuse to run as root: run as root, they run as the `postgres` user through
/// `runuser`, and the directory is handed to that user.
#[derive(Debug)]
pub struct Postgres {
    port: u16,
    dir: PathBuf,
    pg_ctl: PathBuf,
    as_postgres: bool,
}

/// TLS for a throwaway [`Postgres`] ([`Postgres::start_tls`]): the PEM text of the server's
/// certificate (chain) and key, made by the test, and who may connect how.
#[derive(Debug, Clone)]
pub struct PostgresTls {
    /// The server certificate, PEM (`ssl_cert_file`).
    pub cert_pem: String,
    /// Its private key, PEM (`ssl_key_file`, written with mode 0600).
    pub key_pem: String,
    /// The CA whose client certificates the server accepts (`ssl_ca_file`), for `cert`
    /// authentication in [`hba`](Self::hba).
    pub client_ca_pem: Option<String>,
    /// The whole of `pg_hba.conf`, one rule a line. [`PostgresTls::new`] sets
    /// `hostssl all all 127.0.0.1/32 trust` alone, so plain TCP connections are refused.
    pub hba: Vec<String>,
}

impl PostgresTls {
    /// TLS with this certificate and key, trust authentication over TLS only.
    pub fn new(cert_pem: impl Into<String>, key_pem: impl Into<String>) -> Self {
        Self {
            cert_pem: cert_pem.into(),
            key_pem: key_pem.into(),
            client_ca_pem: None,
            hba: vec!["hostssl all all 127.0.0.1/32 trust".to_owned()],
        }
    }
}

impl Postgres {
    /// Creates the cluster and starts it, waiting until it accepts connections.
    pub fn start() -> io::Result<Self> {
        Self::create(None)
    }

    /// Creates a cluster with `ssl = on`, the certificate files and the `pg_hba.conf` of
    /// `tls`, and starts it.
    pub fn start_tls(tls: &PostgresTls) -> io::Result<Self> {
        Self::create(Some(tls))
    }

    fn create(tls: Option<&PostgresTls>) -> io::Result<Self> {
        let missing = || {
            io::Error::new(
                io::ErrorKind::NotFound,
                "the PostgreSQL server binaries (initdb, pg_ctl) are not installed \
                 (Debian/Ubuntu: `apt-get install postgresql`)",
            )
        };
        let initdb = find_postgres_bin("initdb").ok_or_else(missing)?;
        let pg_ctl = find_postgres_bin("pg_ctl").ok_or_else(missing)?;
        let port = free_port()?;
        let dir = scratch_dir("pg", port);
        std::fs::create_dir_all(&dir)?;
        let as_postgres = is_root();
        // From here on, drop removes the directory whatever fails.
        let cluster = Self {
            port,
            dir,
            pg_ctl,
            as_postgres,
        };
        if as_postgres {
            run(Command::new("chown")
                .args(["-R", "postgres:postgres"])
                .arg(&cluster.dir))?;
        }
        run(cluster
            .command(&initdb)
            .arg("-D")
            .arg(cluster.data())
            .args(["-A", "trust", "-U", "postgres", "--no-sync"]))?;
        if let Some(tls) = tls {
            cluster.configure_tls(tls)?;
        }
        cluster.start_again()?;
        Ok(cluster)
    }

    /// The port it listens on.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// `postgres://postgres@127.0.0.1:PORT/postgres`.
    pub fn url(&self) -> String {
        format!("postgres://postgres@127.0.0.1:{}/postgres", self.port)
    }

    /// `pg_ctl stop -m fast`: disconnects every client, shuts down cleanly and waits.
    /// Does nothing when it is not running.
    pub fn stop(&self) {
        self.pg_ctl_stop("fast");
    }

    /// `pg_ctl stop -m immediate`: every server process exits at once, as in a crash, and
    /// the next start recovers. Does nothing when it is not running.
    pub fn stop_immediately(&self) {
        self.pg_ctl_stop("immediate");
    }

    /// `pg_ctl start` on the same port and data, waiting (up to 30 s) until it accepts
    /// connections.
    pub fn start_again(&self) -> io::Result<()> {
        let options = format!(
            "-p {} -k {} -c listen_addresses=127.0.0.1 -c fsync=off",
            self.port,
            self.dir.display()
        );
        let log = self.dir.join("log");
        run(self
            .command(&self.pg_ctl)
            .arg("-D")
            .arg(self.data())
            .args(["-o", &options, "-l"])
            .arg(&log)
            .args(["-t", "30", "-w", "start"]))
        .map_err(|e| io::Error::new(e.kind(), format!("{e}; see {}", log.display())))?;
        let address = SocketAddr::from((Ipv4Addr::LOCALHOST, self.port));
        let deadline = Instant::now() + Duration::from_secs(30);
        while TcpStream::connect_timeout(&address, Duration::from_secs(1)).is_err() {
            if Instant::now() > deadline {
                return Err(io::Error::new(
                    io::ErrorKind::TimedOut,
                    format!("PostgreSQL did not start; see {}", log.display()),
                ));
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        Ok(())
    }

    fn data(&self) -> PathBuf {
        self.dir.join("data")
    }

    /// Writes the TLS files into the data directory (owned by the server's user, the key
    /// readable by it alone, as PostgreSQL demands) and turns TLS on.
    fn configure_tls(&self, tls: &PostgresTls) -> io::Result<()> {
        use std::os::unix::fs::PermissionsExt;

        let data = self.data();
        let mut files = vec![
            ("server.crt", tls.cert_pem.as_str()),
            ("server.key", tls.key_pem.as_str()),
        ];
        let mut settings =
            String::from("\nssl = on\nssl_cert_file = 'server.crt'\nssl_key_file = 'server.key'\n");
        if let Some(ca) = &tls.client_ca_pem {
            files.push(("client-ca.crt", ca.as_str()));
            settings.push_str("ssl_ca_file = 'client-ca.crt'\n");
        }
        for (name, pem) in files {
            let path = data.join(name);
            std::fs::write(&path, pem)?;
            std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600))?;
        }
        std::fs::OpenOptions::new()
            .append(true)
            .open(data.join("postgresql.conf"))?
            .write_all(settings.as_bytes())?;
        std::fs::write(data.join("pg_hba.conf"), tls.hba.join("\n") + "\n")?;
        if self.as_postgres {
            run(Command::new("chown")
                .args(["-R", "postgres:postgres"])
                .arg(&data))?;
        }
        Ok(())
    }

    fn pg_ctl_stop(&self, mode: &str) {
        let _ = self
            .command(&self.pg_ctl)
            .arg("-D")
            .arg(self.data())
            .args(["-m", mode, "-w", "stop"])
            .output();
    }

    fn command(&self, program: &Path) -> Command {
        if self.as_postgres {
            let mut command = Command::new("runuser");
            command.args(["-u", "postgres", "--"]).arg(program);
            command
        } else {
            Command::new(program)
        }
    }
}

impl Drop for Postgres {
    fn drop(&mut self) {
        self.stop_immediately();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// A fresh directory name under the system temporary directory, which every user
/// (PostgreSQL's included) can traverse, unlike a target directory in a home.
/// A `varnishd` of its own (Varnish Cache, with whatever VCL the test gives) listening on
/// a port of 127.0.0.1, its working directory in a scratch directory (`-n`), storage in
/// memory; stopped and the directory removed on drop.
///
/// Varnish is not on every machine: [`Varnish::start`] fails with a message saying how to
/// install it (`cargo xtask test` installs Debian's `varnish` and `varnish-modules` when
/// missing). `VARNISHD` may name the binary; else it is looked for on `PATH` and in
/// `/usr/sbin`, `/usr/local/sbin`.
#[derive(Debug)]
pub struct Varnish {
    port: u16,
    child: Option<Child>,
    dir: PathBuf,
}

impl Varnish {
    /// Starts `varnishd` with `vcl` on a free port and waits (up to 30 s: the VCL is
    /// compiled with the C compiler first) until its child runs.
    pub fn start(vcl: &str) -> io::Result<Self> {
        Self::start_on(free_port()?, vcl)
    }

    /// As [`start`](Self::start), on `port` (chosen beforehand, for a backend that must
    /// know where Varnish will be).
    pub fn start_on(port: u16, vcl: &str) -> io::Result<Self> {
        let varnishd = Self::find().ok_or_else(|| {
            io::Error::new(
                io::ErrorKind::NotFound,
                "varnishd is not installed: run the tests with `cargo xtask test`, which \
                 installs it, or install Varnish and its modules yourself (Debian/Ubuntu: \
                 `apt-get install varnish varnish-modules`), or set VARNISHD to its path",
            )
        })?;
        let dir = scratch_dir("varnish", port);
        std::fs::create_dir_all(&dir)?;
        let mut server = Varnish {
            port,
            child: None,
            dir,
        };
        let vcl_path = server.dir.join("test.vcl");
        std::fs::write(&vcl_path, vcl)?;
        let log = std::fs::File::create(server.dir.join("varnishd.log"))?;
        let child = Command::new(&varnishd)
            .arg("-n")
            .arg(server.dir.join("work"))
            .args(["-a", &format!("127.0.0.1:{port}")])
            .args(["-T", "127.0.0.1:0"])
            .arg("-f")
            .arg(&vcl_path)
            .args(["-s", "malloc,64m"])
            // No privilege separation: the scratch directory is the test's, whoever runs it.
            .args(["-j", "none", "-F"])
            .stdout(log.try_clone()?)
            .stderr(log)
            .spawn()
            .map_err(|e| io::Error::new(e.kind(), format!("cannot start varnishd: {e}")))?;
        server.child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(30);
        while Instant::now() < deadline {
            if let Some(child) = server.child.as_mut()
                && let Ok(Some(status)) = child.try_wait()
            {
                let log =
                    std::fs::read_to_string(server.dir.join("varnishd.log")).unwrap_or_default();
                server.child = None;
                return Err(io::Error::other(format!(
                    "varnishd exited ({status}) before it was ready:\n{log}"
                )));
            }
            if server
                .admin(&["status"])
                .is_ok_and(|status| status.contains("running"))
                && accepts(port)
            {
                return Ok(server);
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        Err(io::Error::new(
            io::ErrorKind::TimedOut,
            format!("varnishd on port {port} did not start"),
        ))
    }

    /// The `varnishd` to run: `VARNISHD`, else from `PATH`, `/usr/sbin` or `/usr/local/sbin`.
    pub fn find() -> Option<PathBuf> {
        if let Some(path) = std::env::var_os("VARNISHD") {
            return Some(PathBuf::from(path));
        }
        which("varnishd").or_else(|| {
            ["/usr/sbin/varnishd", "/usr/local/sbin/varnishd"]
                .into_iter()
                .map(PathBuf::from)
                .find(|path| path.is_file())
        })
    }

    /// The port it listens on.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// `http://127.0.0.1:PORT`.
    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// A counter or gauge from `varnishstat` (`MAIN.n_object`: the objects it holds).
    pub fn stat(&self, name: &str) -> io::Result<u64> {
        let output = run(Command::new(self.tool("varnishstat"))
            .arg("-n")
            .arg(self.dir.join("work"))
            .args(["-1", "-f", name]))?;
        let text = String::from_utf8_lossy(&output.stdout);
        text.lines()
            .find_map(|line| {
                let mut fields = line.split_whitespace();
                (fields.next() == Some(name))
                    .then(|| fields.next()?.parse().ok())
                    .flatten()
            })
            .ok_or_else(|| io::Error::other(format!("varnishstat has no {name}: {text}")))
    }

    /// `varnishadm` with `args` (a CLI command, such as `["ban.list"]`): its output.
    pub fn admin(&self, args: &[&str]) -> io::Result<String> {
        let output = run(Command::new(self.tool("varnishadm"))
            .arg("-n")
            .arg(self.dir.join("work"))
            .args(args))?;
        Ok(String::from_utf8_lossy(&output.stdout).into_owned())
    }

    /// A Varnish tool (`varnishstat`, `varnishadm`): beside `varnishd`'s directory's
    /// `bin` sibling, on `PATH`, or by name.
    fn tool(&self, name: &str) -> PathBuf {
        which(name)
            .or_else(|| {
                let sbin = Self::find()?;
                let bin = sbin.parent()?.parent()?.join("bin").join(name);
                bin.is_file().then_some(bin)
            })
            .unwrap_or_else(|| PathBuf::from(name))
    }

    /// Stops `varnishd` (`SIGTERM`, which stops its child too; `SIGKILL` after 5 s).
    fn stop(&mut self) {
        let Some(mut child) = self.child.take() else {
            return;
        };
        let _ = Command::new("kill")
            .args(["-TERM", &child.id().to_string()])
            .status();
        let deadline = Instant::now() + Duration::from_secs(5);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = child.kill();
        let _ = child.wait();
    }
}

impl Drop for Varnish {
    fn drop(&mut self) {
        self.stop();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn scratch_dir(kind: &str, port: u16) -> PathBuf {
    static COUNTER: AtomicU32 = AtomicU32::new(0);
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.subsec_nanos());
    std::env::temp_dir().join(format!(
        "towerkit-{kind}-{}-{port}-{}-{nanos}",
        std::process::id(),
        COUNTER.fetch_add(1, Ordering::Relaxed)
    ))
}

/// Whether something accepts TCP connections on the port (a TLS Redis, which a bare `PING`
/// cannot reach).
fn accepts(port: u16) -> bool {
    let address = SocketAddr::from((Ipv4Addr::LOCALHOST, port));
    TcpStream::connect_timeout(&address, Duration::from_millis(200)).is_ok()
}

/// Whether a Redis server on the port answers `PING` (a bare inline command, no client).
fn answers_ping(port: u16) -> bool {
    let address = SocketAddr::from((Ipv4Addr::LOCALHOST, port));
    let Ok(mut stream) = TcpStream::connect_timeout(&address, Duration::from_millis(200)) else {
        return false;
    };
    let _ = stream.set_read_timeout(Some(Duration::from_millis(200)));
    if stream.write_all(b"PING\r\n").is_err() {
        return false;
    }
    let mut reply = [0u8; 7];
    stream.read_exact(&mut reply).is_ok() && &reply == b"+PONG\r\n"
}

/// A PostgreSQL server binary on `PATH`, or in the newest of Debian's versioned directories.
fn find_postgres_bin(name: &str) -> Option<PathBuf> {
    if let Some(path) = which(name) {
        return Some(path);
    }
    let mut versions: Vec<PathBuf> = std::fs::read_dir("/usr/lib/postgresql")
        .ok()?
        .flatten()
        .map(|entry| entry.path())
        .collect();
    // Numeric order: 9 before 16.
    versions.sort_by_key(|path| {
        path.file_name()
            .and_then(|name| name.to_str())
            .and_then(|name| name.split('.').next()?.parse::<u32>().ok())
            .unwrap_or(0)
    });
    versions
        .into_iter()
        .rev()
        .map(|version| version.join("bin").join(name))
        .find(|path| path.is_file())
}

fn which(name: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|dir| dir.join(name))
        .find(|path| path.is_file())
}

fn is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|output| output.stdout.starts_with(b"0\n"))
}

fn run(command: &mut Command) -> io::Result<Output> {
    let output = command
        .output()
        .map_err(|e| io::Error::new(e.kind(), format!("cannot run {command:?}: {e}")))?;
    if output.status.success() {
        Ok(output)
    } else {
        Err(io::Error::other(format!(
            "{command:?} failed: {}",
            String::from_utf8_lossy(&output.stderr).trim()
        )))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_free_port_can_be_bound() {
        let port = free_port().unwrap();
        assert_ne!(port, 0);
        TcpListener::bind((Ipv4Addr::LOCALHOST, port)).unwrap();
    }

    #[test]
    fn scratch_dirs_are_distinct() {
        assert_ne!(scratch_dir("pg", 1), scratch_dir("pg", 1));
    }

    #[test]
    fn redis_is_killed_restarted_and_removed() {
        let mut redis = Redis::start().unwrap();
        let dir = redis.dir.clone();
        assert!(answers_ping(redis.port()));
        redis.kill();
        assert!(!answers_ping(redis.port()));
        redis.restart().unwrap();
        assert!(answers_ping(redis.port()));
        drop(redis);
        assert!(!dir.exists());
    }

    #[test]
    fn a_plain_six_node_cluster_is_ok_on_every_node() {
        let cluster = RedisCluster::start().unwrap();
        assert_eq!(cluster.ports().len(), 6);
        for port in cluster.ports() {
            assert!(answers_ping(port));
        }
        let primaries = cluster.primaries().unwrap();
        assert_eq!(primaries.len(), 3);
        let served: u32 = primaries
            .iter()
            .flat_map(|node| &node.slots)
            .map(|&(first, last)| u32::from(last - first) + 1)
            .sum();
        assert_eq!(served, 16384, "the primaries serve every slot");
        for primary in &primaries {
            let replica = cluster.replica_of(primary.port).unwrap();
            assert_ne!(replica, primary.port);
        }
    }

    #[test]
    fn cluster_nodes_lines_are_parsed() {
        let text = "\
a1 127.0.0.1:7001@17001 myself,master - 0 0 1 connected 0-5460 7000 [7001->-b2]
b2 127.0.0.1:7002@17002 slave a1 0 0 1 connected
c3 127.0.0.1:7003@17003 master,fail - 0 0 2 disconnected
";
        let nodes = parse_cluster_nodes(text);
        assert_eq!(nodes.len(), 3);
        assert_eq!(nodes[0].port, 7001);
        assert!(nodes[0].primary && !nodes[0].failed);
        assert_eq!(nodes[0].slots, vec![(0, 5460), (7000, 7000)]);
        assert!(nodes[0].serves(7000) && !nodes[0].serves(7001));
        assert_eq!(nodes[1].primary_id.as_deref(), Some("a1"));
        assert!(!nodes[1].primary);
        assert!(nodes[2].failed && nodes[2].slots.is_empty());
    }

    #[test]
    fn a_killed_primary_is_replaced_by_its_replica_and_slots_can_move() {
        let mut cluster = RedisCluster::start().unwrap();
        let primaries = cluster.primaries().unwrap();
        let (first, second) = (primaries[0].port, primaries[1].port);
        cluster.reshard(first, second, 10).unwrap();
        let after = cluster.primaries().unwrap();
        let count = |port: u16| -> u32 {
            after
                .iter()
                .find(|node| node.port == port)
                .map_or(0, |node| {
                    node.slots.iter().map(|&(a, b)| u32::from(b - a) + 1).sum()
                })
        };
        let before = |port: u16| -> u32 {
            primaries
                .iter()
                .find(|node| node.port == port)
                .map_or(0, |node| {
                    node.slots.iter().map(|&(a, b)| u32::from(b - a) + 1).sum()
                })
        };
        assert_eq!(count(first), before(first) - 10);
        assert_eq!(count(second), before(second) + 10);

        let replica = cluster.replica_of(first).unwrap();
        cluster.kill(first);
        assert!(!cluster.is_running(first));
        cluster
            .wait_until_primary(replica, Duration::from_secs(20))
            .unwrap();
        assert!(
            cluster
                .primaries()
                .unwrap()
                .iter()
                .any(|node| node.port == replica)
        );
        cluster.restart(first).unwrap();
        assert!(answers_ping(first));
    }
}
