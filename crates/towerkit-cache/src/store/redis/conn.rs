//! The connection: one server (a `ConnectionManager`) or a cluster, and batches of
//! single-key command groups.

use std::sync::Arc;

use redis::aio::ConnectionManager;
use redis::{Cmd, FromRedisValue, Pipeline, RedisError, ScriptInvocation, Value};

use super::builder::RedisStoreBuilder;
use crate::error::ConfigError;

#[derive(Clone)]
pub(super) enum Conn {
    Single(ConnectionManager),
    /// Set once the cluster's topology is known; until then operations fail (as misses)
    /// while a background task keeps trying.
    #[cfg(feature = "redis-cluster")]
    Cluster(Arc<std::sync::OnceLock<redis::cluster_async::ClusterConnection>>),
}

#[cfg(feature = "redis-cluster")]
fn cluster_not_connected() -> RedisError {
    RedisError::from((
        redis::ErrorKind::Io,
        "redis cluster not reached yet (reconnecting in the background)",
    ))
}

impl Conn {
    pub(super) async fn query<T: FromRedisValue>(&self, cmd: &Cmd) -> Result<T, RedisError> {
        match self {
            Conn::Single(conn) => cmd.query_async(&mut conn.clone()).await,
            #[cfg(feature = "redis-cluster")]
            Conn::Cluster(slot) => {
                let mut conn = slot.get().ok_or_else(cluster_not_connected)?.clone();
                cmd.query_async(&mut conn).await
            }
        }
    }

    async fn pipe<T: FromRedisValue>(&self, pipe: &Pipeline) -> Result<T, RedisError> {
        match self {
            Conn::Single(conn) => pipe.query_async(&mut conn.clone()).await,
            #[cfg(feature = "redis-cluster")]
            Conn::Cluster(slot) => {
                let mut conn = slot.get().ok_or_else(cluster_not_connected)?.clone();
                pipe.query_async(&mut conn).await
            }
        }
    }

    /// Runs a script (loading it first if the server does not know it yet); on a
    /// cluster, on the node holding its first key's slot.
    pub(super) async fn script<T: FromRedisValue>(
        &self,
        invocation: &ScriptInvocation<'_>,
    ) -> Result<T, RedisError> {
        match self {
            Conn::Single(conn) => invocation.invoke_async(&mut conn.clone()).await,
            #[cfg(feature = "redis-cluster")]
            Conn::Cluster(slot) => {
                let mut conn = slot.get().ok_or_else(cluster_not_connected)?.clone();
                invocation.invoke_async(&mut conn).await
            }
        }
    }

    /// Runs groups of commands, each group touching a single key: as one pipeline (one
    /// round trip) on a server; as one pipeline per group, concurrently, on a cluster,
    /// where a pipeline must stay within one hash slot. Returns the wanted replies in order.
    pub(super) async fn batch(&self, groups: Vec<Group>) -> Result<Vec<Value>, RedisError> {
        fn pipeline(commands: impl Iterator<Item = (Cmd, bool)>) -> Pipeline {
            let mut pipe = redis::pipe();
            for (cmd, wanted) in commands {
                pipe.add_command(cmd);
                if !wanted {
                    pipe.ignore();
                }
            }
            pipe
        }
        match self {
            Conn::Single(_) => self.pipe(&pipeline(groups.into_iter().flatten())).await,
            #[cfg(feature = "redis-cluster")]
            Conn::Cluster(_) => {
                let pipes: Vec<Pipeline> = groups
                    .into_iter()
                    .map(|group| pipeline(group.into_iter()))
                    .collect();
                let replies = futures_util::future::try_join_all(
                    pipes.iter().map(|pipe| self.pipe::<Vec<Value>>(pipe)),
                )
                .await?;
                Ok(replies.into_iter().flatten().collect())
            }
        }
    }
}

/// Commands on one key, each with whether its reply is wanted.
pub(super) type Group = Vec<(Cmd, bool)>;

/// The commands setting a key's expiry to `ttl` if it has none, or extending it if `ttl`
/// is longer.
pub(super) fn expire(group: &mut Group, key: &str, ttl: u64) {
    group.push((
        redis::cmd("PEXPIRE").arg(key).arg(ttl).arg("NX").to_owned(),
        false,
    ));
    group.push((
        redis::cmd("PEXPIRE").arg(key).arg(ttl).arg("GT").to_owned(),
        false,
    ));
}

#[cfg(feature = "redis-cluster")]
pub(super) async fn connect_cluster(builder: &RedisStoreBuilder) -> Result<Conn, ConfigError> {
    let nodes = builder.nodes.iter().map(String::as_str);
    #[cfg_attr(not(feature = "redis-tls"), allow(unused_mut))]
    let mut client = redis::cluster::ClusterClient::builder(nodes);
    #[cfg(feature = "redis-tls")]
    if let Some(root) = &builder.root_certificate {
        client = client.certs(builder.certificates(root));
    }
    let client = client.build().map_err(ConfigError::InvalidRedisUrl)?;
    let slot = Arc::new(std::sync::OnceLock::new());
    match client.get_async_connection().await {
        Ok(conn) => {
            let _ = slot.set(conn);
        }
        Err(error) => {
            tracing::warn!(%error, "redis cluster unreachable: serving from memory or the origin until it is reached");
            let weak = Arc::downgrade(&slot);
            let (min, max) = (builder.min_backoff, builder.max_backoff);
            tokio::spawn(async move {
                let mut pause = min;
                loop {
                    tokio::time::sleep(pause).await;
                    let Some(slot) = weak.upgrade() else { return };
                    if let Ok(conn) = client.get_async_connection().await {
                        let _ = slot.set(conn);
                        tracing::info!("redis cluster reached");
                        return;
                    }
                    pause = pause.saturating_mul(2).min(max);
                }
            });
        }
    }
    Ok(Conn::Cluster(slot))
}

#[cfg(not(feature = "redis-cluster"))]
pub(super) async fn connect_cluster(_builder: &RedisStoreBuilder) -> Result<Conn, ConfigError> {
    // `RedisStore::cluster` only exists with the feature.
    Err(ConfigError::RedisClusterUnreachable(RedisError::from((
        redis::ErrorKind::Client,
        "redis-cluster feature disabled",
    ))))
}
