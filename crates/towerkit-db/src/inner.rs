//! [`Inner`]: what every clone of a [`Db`](crate::Db) shares (the pool, the timer, the
//! background tasks), and how it checks out a connection and runs one timed statement on it.

use std::future::Future;
use std::pin::pin;
use std::sync::Arc;
use std::time::Duration;

use deadpool_postgres::{
    ClientWrapper, Manager, ManagerConfig, Object, Pool, PoolError, RecyclingMethod, Runtime,
    TimeoutType, Timeouts,
};
use metrics::SharedString;
use tokio::task::JoinHandle;
use tokio_postgres::NoTls;
use tokio_postgres::types::ToSql;
use towerkit_timing::{QueryLabel, QueryOutcome, QueryTimer, Stopwatch};
use tracing::Instrument;

use crate::config::DbConfig;
use crate::error::DbError;
use crate::explain::Explainer;
use crate::health::HealthCache;
use crate::pool::{self, CheckoutTimes, Upkeep, pool_error};
use crate::statement::{Failure, Kind};
use crate::watchdog::{self, Watchdog};

/// The state of a [`Db`](crate::Db), shared by its clones.
pub(crate) struct Inner {
    pub(crate) pool: Pool,
    pub(crate) timer: QueryTimer,
    pub(crate) config: DbConfig,
    pub(crate) pool_name: SharedString,
    /// The `db_client_connection_wait_time_seconds` histogram of this pool.
    pub(crate) checkouts: Arc<CheckoutTimes>,
    pub(crate) health: HealthCache,
    /// Captures plans of slow reads, when configured.
    explainer: Option<Explainer>,
    /// The client-side deadlines of running queries.
    watchdog: Arc<Watchdog>,
    /// The checkout of a connection without waiting: see [`Inner::checkout`].
    no_wait: Timeouts,
    upkeep: JoinHandle<()>,
    watchdog_task: JoinHandle<()>,
}

impl Drop for Inner {
    fn drop(&mut self) {
        self.upkeep.abort();
        self.watchdog_task.abort();
        self.checkouts.flush();
    }
}

impl Inner {
    /// Builds the pool, opens `min_connections` (failing if it cannot), and starts the
    /// background tasks. Must run on a tokio runtime.
    pub(crate) async fn connect(config: DbConfig) -> Result<Self, DbError> {
        let pg = config.pg.clone();
        tokio::runtime::Handle::try_current().map_err(|_| DbError::NoRuntime)?;
        Stopwatch::calibrate();
        let manager_config = ManagerConfig {
            recycling_method: RecyclingMethod::Fast,
        };
        let manager = match config.tls_connector() {
            #[cfg(feature = "tls")]
            Some(tls) => Manager::from_config(pg, tls, manager_config),
            _ => Manager::from_config(pg, NoTls, manager_config),
        };
        let pool_name = SharedString::from_shared(Arc::from(config.pool_name.as_str()));
        let checkouts = CheckoutTimes::new(&pool_name);
        let upkeep = Upkeep {
            min_connections: config.min_connections,
            idle_timeout: config.idle_timeout,
            max_lifetime: config.max_lifetime,
            name: pool_name.clone(),
            checkouts: checkouts.clone(),
        };
        let pool = Pool::builder(manager)
            .max_size(config.max_size)
            .wait_timeout(Some(config.wait_timeout))
            .create_timeout(Some(config.connect_timeout))
            .recycle_timeout(Some(config.recycle_timeout))
            .runtime(Runtime::Tokio1)
            .build()
            .map_err(|_| DbError::NoRuntime)?;
        pool::top_up(&pool, config.min_connections).await?;
        let upkeep_task = tokio::spawn(upkeep.run(pool.weak()));
        let watchdog = Arc::new(Watchdog::default());
        let watchdog_task = watchdog::spawn(&watchdog);
        let explainer = Explainer::new(&config, &pool);
        Ok(Inner {
            explainer,
            pool,
            timer: config.timer.clone(),
            pool_name,
            checkouts,
            health: HealthCache::default(),
            watchdog,
            no_wait: Timeouts {
                wait: Some(Duration::ZERO),
                create: Some(config.connect_timeout),
                recycle: None,
            },
            config,
            upkeep: upkeep_task,
            watchdog_task,
        })
    }

    pub(crate) fn label(&self, name: Option<&'static str>, sql: &str) -> QueryLabel {
        match name {
            Some(name) => self.timer.named(name, sql),
            None => self.timer.label(sql),
        }
    }

    /// A connection from the pool and when it was got, the wait recorded in
    /// `db_client_connection_wait_time_seconds`.
    ///
    /// A free connection is taken without the pool's wait and recycle timeouts: deadpool
    /// sets up a tokio timer for each, which costs about 1 % of a local `SELECT 1` even when
    /// nothing waits. Neither can fire then (recycling is `Fast`, which never waits), so only
    /// when the pool has no free slot does the checkout go through `get()` with both.
    pub(crate) async fn checkout(&self) -> Result<(Object, Stopwatch), DbError> {
        let start = Stopwatch::start();
        let conn = match self.pool.timeout_get(&self.no_wait).await {
            Ok(conn) => conn,
            Err(error) => return self.checkout_otherwise(start, error).await,
        };
        let got = Stopwatch::start();
        self.checkouts.record(got.since(start));
        Ok((conn, got))
    }

    /// The rest of [`Inner::checkout`] when no connection could be taken at once: waits for
    /// one when the pool is full (in a `db.client.connection.wait` span), fails otherwise.
    /// Apart from the fast path, so that each query moves less.
    async fn checkout_otherwise(
        &self,
        start: Stopwatch,
        error: PoolError,
    ) -> Result<(Object, Stopwatch), DbError> {
        let result = match error {
            PoolError::Timeout(TimeoutType::Wait) => {
                let wait = crate::span::pool_wait(&self.pool_name);
                self.pool.get().instrument(wait).await
            }
            error => Err(error),
        };
        let got = Stopwatch::start();
        self.checkouts.record(got.since(start));
        match result {
            Ok(conn) => Ok((conn, got)),
            Err(error) => Err(pool_error(error, &self.pool)),
        }
    }

    /// Prepares (cached) and runs one query on `client`, bounded by the client timeout
    /// (counted from `start`, checked by the [`Watchdog`]: see there why not with a tokio
    /// timer), and records it as started at `start`, in a `db.query` span
    /// (`span.rs`). A slow query may have its plan captured when `explain` (outside a
    /// transaction) and the config asks for it.
    ///
    /// The work is pinned here once and everything around it (the span, the deadline
    /// guard) holds a pinned reference: these futures are kilobytes, and each move into a
    /// wrapper is a copy of all of it, on every query.
    pub(crate) async fn timed<K: Kind>(
        &self,
        client: &ClientWrapper,
        label: &QueryLabel,
        sql: &str,
        params: &[&(dyn ToSql + Sync)],
        start: Stopwatch,
        explain: bool,
    ) -> Result<K::Output, DbError> {
        // The prepared statement outlives the work, for a plan of a slow query (moved, not
        // cloned: nothing more on the hot path).
        let mut prepared = None;
        let timeout = self.config.client_timeout();
        let span = crate::span::query(label, sql, self.config.trace_query_text);
        let result = {
            let mut work = pin!(async {
                // Whether the prepare waited (for the server: a cached statement is ready
                // at once). Its future ends in this block, so the query's can take its place.
                let mut waited = false;
                let statement = {
                    let mut prepare = pin!(client.prepare_cached(sql));
                    std::future::poll_fn(|cx| {
                        let poll = prepare.as_mut().poll(cx);
                        waited |= poll.is_pending();
                        poll
                    })
                    .await
                    .map_err(Failure::Pg)?
                };
                // Only a statement that was not cached yet (the prepare waited for the
                // server) can have grown the cache; counting it takes its lock and walks it.
                if waited && client.statement_cache.size() > self.config.statement_cache_capacity {
                    client.statement_cache.clear();
                }
                let statement = prepared.insert(statement);
                K::run(client, statement, params).await
            });
            // `Instrumented` would own (and so move) the work: the span is entered for
            // each poll here instead.
            let traced = pin!(std::future::poll_fn(|cx| {
                let _entered = span.enter();
                work.as_mut().poll(cx)
            }));
            self.watchdog
                .guard(start, timeout, traced)
                .await
                .unwrap_or(Err(Failure::Timeout))
        };
        let elapsed = start.elapsed();
        let outcome = match &result {
            Ok(output) => QueryOutcome::Rows(K::rows(output)),
            Err(_) => QueryOutcome::Failed,
        };
        // The slow-query log line and the plan capture belong to the query's span.
        let entered = span.enter();
        let slow = self.timer.record(label, elapsed, outcome, &params);
        if slow.is_some()
            && explain
            && let Some(explainer) = &self.explainer
            && let Some(statement) = &prepared
        {
            explainer.slow(label, sql, statement, params);
        }
        drop(entered);
        let result = result.map_err(|failure| failure.into_error(label, timeout));
        if let Err(error) = &result {
            crate::span::query_failed(&span, error);
        }
        result
    }

    /// Runs a transaction-control statement (`BEGIN`, `COMMIT`, `ROLLBACK`), timed.
    pub(crate) async fn control(
        &self,
        client: &ClientWrapper,
        sql: &'static str,
    ) -> Result<(), DbError> {
        let label = self.timer.label(sql);
        let span = crate::span::query(&label, sql, self.config.trace_query_text);
        let start = Stopwatch::start();
        let work =
            pin!(async { client.batch_execute(sql).await.map_err(Failure::Pg) }.instrument(span));
        let timeout = self.config.client_timeout();
        let result = self
            .watchdog
            .guard(start, timeout, work)
            .await
            .unwrap_or(Err(Failure::Timeout));
        let outcome = if result.is_ok() {
            QueryOutcome::Rows(0)
        } else {
            QueryOutcome::Failed
        };
        self.timer.record(&label, start.elapsed(), outcome, &());
        result.map_err(|failure| failure.into_error(&label, timeout))
    }
}
