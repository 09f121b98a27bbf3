//! Commands on a Redis Cluster: each sent to the primary serving its key's slot (by the
//! store's own slot map, `topology.rs`), over one multiplexed connection per node.
//!
//! Why not the redis crate's cluster client: its one connection task serves every node, and
//! on a six-node cluster with a primary killed it was seen to stop answering for every slot
//! (for a minute and more, in some runs for good) while the cluster itself had recovered.
//! Here each node has its own connection, so a dead or slow node holds up nothing but the
//! commands for its slots, and the slot map is the one the store reads every second (and
//! at once after a failure or a redirect).
//!
//! Redirects are followed within the operation's timeout: `MOVED` (the slot has moved: the
//! command goes to the node named, and the slot map is read again), `ASK` (the slot is being
//! migrated and the key is already at the node named: the command goes there, preceded by
//! `ASKING` in the same pipeline), `TRYAGAIN` (a multi-key command during a migration:
//! retried shortly).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures_util::FutureExt;
use redis::aio::{ConnectionLike, MultiplexedConnection};
use redis::{AsyncConnectionConfig, Cmd, ErrorKind, Pipeline, RedisError, RedisFuture, Value};
use tokio::sync::OnceCell;

use super::conn::Clients;
use super::topology::Topology;

/// How many redirects one command may follow.
const MAX_REDIRECTS: usize = 5;
/// The pause before a command answered `TRYAGAIN` is sent again.
const TRY_AGAIN_PAUSE: Duration = Duration::from_millis(5);
/// How long connecting to a node may take (its handshake included).
const CONNECT_TIMEOUT: Duration = Duration::from_millis(500);

/// Where a command goes.
#[derive(Clone, Copy)]
pub(super) enum Target<'a> {
    /// The primary serving this Redis key's slot.
    Key(&'a str),
    /// The node at this address (`host:port`).
    Node(&'a str),
}

/// The cluster's per-node connections.
pub(super) struct Router {
    topology: Arc<Topology>,
    clients: Arc<Clients>,
    conns: Mutex<HashMap<String, Arc<OnceCell<MultiplexedConnection>>>>,
}

impl Router {
    pub(super) fn new(topology: Arc<Topology>, clients: Arc<Clients>) -> Self {
        Router {
            topology,
            clients,
            conns: Mutex::default(),
        }
    }

    /// A connection-like handle sending everything to `target`, following redirects.
    pub(super) fn to<'a>(&'a self, target: Target<'a>) -> Routed<'a> {
        Routed {
            router: self,
            target,
        }
    }

    /// The connection to `address`, opened now if there is none.
    async fn conn(&self, address: &str) -> Result<MultiplexedConnection, RedisError> {
        let cell = self
            .conns
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .entry(address.to_owned())
            .or_default()
            .clone();
        let conn = cell
            .get_or_try_init(|| async {
                let client = self.clients.client_for(address).ok_or_else(|| {
                    RedisError::from((
                        ErrorKind::Client,
                        "cluster node address not understood",
                        address.to_owned(),
                    ))
                })?;
                let config = AsyncConnectionConfig::new()
                    .set_connection_timeout(Some(CONNECT_TIMEOUT))
                    .set_response_timeout(None);
                client
                    .get_multiplexed_async_connection_with_config(&config)
                    .await
            })
            .await?;
        Ok(conn.clone())
    }

    /// Drops the connection to `address` after it failed, so that the next command opens
    /// a new one.
    fn forget(&self, address: &str) {
        self.conns
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .remove(address);
    }

    /// Called with the primaries' addresses when the slot map changes: closes the
    /// connections to nodes that are no longer primaries, and opens connections to those
    /// that have none yet, in the background, so that the first commands to a node (a
    /// replica just promoted) do not pay for it.
    pub(super) fn warm(self: &Arc<Self>, addresses: Vec<String>) {
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            return;
        };
        let missing: Vec<String> = {
            let mut conns = self
                .conns
                .lock()
                .unwrap_or_else(|poisoned| poisoned.into_inner());
            conns.retain(|address, _| addresses.contains(address));
            addresses
                .into_iter()
                .filter(|address| conns.get(address).is_none_or(|cell| cell.get().is_none()))
                .collect()
        };
        for address in missing {
            let router = Arc::downgrade(self);
            runtime.spawn(async move {
                if let Some(router) = router.upgrade() {
                    let _ = router.conn(&address).await;
                }
            });
        }
    }

    /// Sends `pipeline` (`count` replies wanted after skipping `offset`; a single command
    /// is a pipeline of one) to `target`, following redirects.
    async fn send(
        &self,
        target: Target<'_>,
        pipeline: &Pipeline,
        offset: usize,
        count: usize,
    ) -> Result<Vec<Value>, RedisError> {
        let mut address = match target {
            Target::Key(key) => {
                let node = self.topology.node_for(key);
                if !self.topology.serves(&node) {
                    return Err(RedisError::from((
                        ErrorKind::Io,
                        "the redis cluster's slot map is not known yet",
                    )));
                }
                node.address.clone()
            }
            Target::Node(address) => address.to_owned(),
        };
        let mut asking = false;
        for _ in 0..=MAX_REDIRECTS {
            let mut conn = self.conn(&address).await?;
            let result = if asking {
                // `ASKING` holds for the next command only: one before each.
                let mut asked = redis::pipe();
                for cmd in pipeline.cmd_iter() {
                    asked.cmd("ASKING");
                    asked.add_command(cmd.clone());
                }
                let total = pipeline.cmd_iter().count();
                conn.req_packed_commands(&asked, 0, total * 2)
                    .await
                    .map(|replies| {
                        replies
                            .into_iter()
                            .skip(1)
                            .step_by(2)
                            .skip(offset)
                            .take(count)
                            .collect()
                    })
            } else {
                conn.req_packed_commands(pipeline, offset, count).await
            };
            let replies = match result {
                Ok(replies) => replies,
                Err(error) => {
                    if !matches!(error.kind(), ErrorKind::Server(_)) {
                        // The connection broke (the node died, or restarted): open a new one
                        // next time, and look at the slot map again.
                        self.forget(&address);
                        self.topology.refresh_soon();
                    }
                    return Err(error);
                }
            };
            match replies.iter().find_map(redirect_in) {
                Some(Redirect::Moved(to)) => {
                    self.topology.refresh_soon();
                    address = to;
                    asking = false;
                }
                Some(Redirect::Ask(to)) => {
                    address = to;
                    asking = true;
                }
                Some(Redirect::TryAgain) => tokio::time::sleep(TRY_AGAIN_PAUSE).await,
                None => return Ok(replies),
            }
        }
        Err(RedisError::from((
            ErrorKind::Io,
            "too many cluster redirects",
        )))
    }
}

/// What a reply asks the client to do instead.
enum Redirect {
    Moved(String),
    Ask(String),
    TryAgain,
}

fn redirect(error: &RedisError) -> Option<Redirect> {
    match error.kind() {
        ErrorKind::Server(redis::ServerErrorKind::Moved) => {
            Some(Redirect::Moved(error.redirect_node()?.0.to_owned()))
        }
        ErrorKind::Server(redis::ServerErrorKind::Ask) => {
            Some(Redirect::Ask(error.redirect_node()?.0.to_owned()))
        }
        ErrorKind::Server(redis::ServerErrorKind::TryAgain) => Some(Redirect::TryAgain),
        _ => None,
    }
}

fn redirect_in(value: &Value) -> Option<Redirect> {
    match value {
        Value::ServerError(error) => redirect(&RedisError::from(error.clone())),
        _ => None,
    }
}

/// A connection-like handle on the cluster: everything goes to one target.
pub(super) struct Routed<'a> {
    router: &'a Router,
    target: Target<'a>,
}

impl ConnectionLike for Routed<'_> {
    fn req_packed_command<'a>(&'a mut self, cmd: &'a Cmd) -> RedisFuture<'a, Value> {
        async move {
            let mut pipeline = redis::pipe();
            pipeline.add_command(cmd.clone());
            let mut replies = self.router.send(self.target, &pipeline, 0, 1).await?;
            replies
                .pop()
                .ok_or_else(|| RedisError::from((ErrorKind::Io, "no reply from the cluster")))
        }
        .boxed()
    }

    fn req_packed_commands<'a>(
        &'a mut self,
        pipeline: &'a Pipeline,
        offset: usize,
        count: usize,
    ) -> RedisFuture<'a, Vec<Value>> {
        self.router
            .send(self.target, pipeline, offset, count)
            .boxed()
    }

    fn get_db(&self) -> i64 {
        0
    }
}
