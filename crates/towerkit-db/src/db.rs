//! [`Db`]: the pool, timed queries with prepared-statement caching, and transactions.

use std::fmt;
use std::future::Future;
use std::panic::AssertUnwindSafe;
use std::pin::{Pin, pin};
use std::sync::Arc;
use std::time::Duration;

use deadpool_postgres::{
    ClientWrapper, HookError, Manager, ManagerConfig, Object, Pool, PoolError, RecyclingMethod,
    Runtime, TimeoutType, Timeouts,
};
use futures_util::{FutureExt, TryStreamExt};
use metrics::SharedString;
use tokio::task::JoinHandle;
use tokio_postgres::types::ToSql;
use tokio_postgres::{NoTls, Row, Statement};
use towerkit_timing::{QueryLabel, QueryOutcome, QueryStats, QueryTimer, Stopwatch};

use crate::config::{ConfigError, DbConfig};
use crate::error::DbError;
use crate::health::HealthCache;
use crate::pool::{self, CheckoutTimes, PoolStatus, Upkeep};
use crate::tx::{Tx, TxShared};
use crate::watchdog::{self, Watchdog};

/// A PostgreSQL connection pool (deadpool-postgres) whose every query is timed by
/// towerkit-timing. Cheap to clone: clones share the pool.
///
/// Queries take SQL text and parameters as tokio-postgres does; statements are prepared
/// once per connection and cached. Each query is recorded in
/// `db_client_operation_duration_seconds`, in [`QueryStats`], in the current request's
/// `Server-Timing` and N+1 counts when a `TimingLayer` is around, and logged when slow.
///
/// Dropping the last clone stops the background task and closes idle connections.
#[derive(Clone)]
pub struct Db {
    pub(crate) inner: Arc<Inner>,
}

pub(crate) struct Inner {
    pub(crate) pool: Pool,
    pub(crate) timer: QueryTimer,
    pub(crate) config: DbConfig,
    pub(crate) pool_name: SharedString,
    /// The `db_client_connection_wait_time_seconds` histogram of this pool.
    checkouts: Arc<CheckoutTimes>,
    pub(crate) health: HealthCache,
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

impl fmt::Debug for Db {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Db")
            .field("status", &self.pool_status())
            .field("config", &self.inner.config)
            .finish()
    }
}

impl Db {
    /// Builds the pool, opens [`min_connections`](DbConfig::min_connections) (failing if it
    /// cannot), and starts the background task that retires idle and old connections and
    /// refreshes the pool gauges. Must run on a tokio runtime.
    pub async fn connect(config: DbConfig) -> Result<Self, DbError> {
        let pg = config.validate()?;
        tokio::runtime::Handle::try_current().map_err(|_| ConfigError::NoRuntime)?;
        Stopwatch::calibrate();
        let manager = Manager::from_config(
            pg,
            NoTls,
            ManagerConfig {
                recycling_method: RecyclingMethod::Fast,
            },
        );
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
            .map_err(|_| ConfigError::Invalid {
                field: "runtime",
                reason: "the pool needs a tokio runtime",
            })?;
        pool::top_up(&pool, config.min_connections).await?;
        let upkeep_task = tokio::spawn(upkeep.run(pool.weak()));
        let watchdog = Arc::new(Watchdog::default());
        let watchdog_task = watchdog::spawn(&watchdog);
        Ok(Self {
            inner: Arc::new(Inner {
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
            }),
        })
    }

    /// [`Db::connect`] with [`DbConfig::from_env`] (`DATABASE_URL`) and the defaults.
    pub async fn from_env() -> Result<Self, DbError> {
        Self::connect(DbConfig::from_env()?).await
    }

    /// Runs a query and returns its rows.
    pub async fn query(
        &self,
        sql: &str,
        params: &[&(dyn ToSql + Sync)],
    ) -> Result<Vec<Row>, DbError> {
        self.run::<All>(None, sql, params).await
    }

    /// Runs a query that must return exactly one row ([`DbError::RowCount`] otherwise).
    pub async fn query_one(
        &self,
        sql: &str,
        params: &[&(dyn ToSql + Sync)],
    ) -> Result<Row, DbError> {
        self.run::<One>(None, sql, params).await
    }

    /// Runs a query that returns at most one row ([`DbError::RowCount`] for more).
    pub async fn query_opt(
        &self,
        sql: &str,
        params: &[&(dyn ToSql + Sync)],
    ) -> Result<Option<Row>, DbError> {
        self.run::<Opt>(None, sql, params).await
    }

    /// Runs a statement and returns the number of rows it affected.
    pub async fn execute(&self, sql: &str, params: &[&(dyn ToSql + Sync)]) -> Result<u64, DbError> {
        self.run::<Execute>(None, sql, params).await
    }

    /// The same queries, labelled `name` in metrics, statistics and logs instead of the
    /// summary derived from the SQL.
    ///
    /// ```no_run
    /// # async fn example(db: towerkit_db::Db) -> Result<(), towerkit_db::DbError> {
    /// let row = db.named("product_by_id").query_one("SELECT name FROM products WHERE id = $1", &[&7_i64]).await?;
    /// # Ok(()) }
    /// ```
    pub fn named(&self, name: &'static str) -> Named<'_> {
        Named {
            target: Target::Db(self),
            name,
        }
    }

    /// Runs `f` in a transaction: `BEGIN`, then `COMMIT` when `f`'s future returns `Ok`,
    /// `ROLLBACK` when it returns `Err` or panics (the panic then continues). If the
    /// future is dropped before it finishes (a timeout, a client gone), the connection is
    /// closed instead of returned to the pool, which rolls the transaction back.
    ///
    /// `f` gets the [`Tx`] by value; it must not outlive the future (a `Tx` kept past it
    /// rolls the transaction back with [`DbError::TransactionEscaped`]).
    ///
    /// ```no_run
    /// # async fn example(db: towerkit_db::Db) -> Result<(), towerkit_db::DbError> {
    /// let order_id: i64 = db
    ///     .transaction(|tx| async move {
    ///         let row = tx.query_one("INSERT INTO orders (customer) VALUES ($1) RETURNING id", &[&42_i64]).await?;
    ///         let id: i64 = row.get(0);
    ///         tx.execute("UPDATE stock SET count = count - 1 WHERE product = $1", &[&7_i64]).await?;
    ///         Ok::<_, towerkit_db::DbError>(id)
    ///     })
    ///     .await?;
    /// # Ok(()) }
    /// ```
    pub async fn transaction<F, Fut, T, E>(&self, f: F) -> Result<T, E>
    where
        F: FnOnce(Tx) -> Fut,
        Fut: Future<Output = Result<T, E>>,
        E: From<DbError>,
    {
        let (conn, _) = self.inner.checkout().await?;
        let shared = Arc::new(TxShared::new(conn, self.inner.clone()));
        shared.control("BEGIN").await?;
        let tx = Tx {
            shared: shared.clone(),
        };
        let outcome = AssertUnwindSafe(async move { f(tx).await })
            .catch_unwind()
            .await;
        match outcome {
            Ok(Ok(value)) if Arc::strong_count(&shared) == 1 => {
                shared.finish("COMMIT").await?;
                Ok(value)
            }
            Ok(Ok(_)) => {
                shared.rollback().await;
                Err(DbError::TransactionEscaped.into())
            }
            Ok(Err(error)) => {
                shared.rollback().await;
                Err(error)
            }
            Err(panic) => {
                shared.rollback().await;
                std::panic::resume_unwind(panic)
            }
        }
    }

    /// The pool's current size and use.
    pub fn pool_status(&self) -> PoolStatus {
        PoolStatus::of(&self.inner.pool)
    }

    /// Sets the pool gauges (`db_client_connection_count{db_client_connection_state}`,
    /// `db_client_connection_max`, `db_client_connection_pending_requests`) and records
    /// the quick checkouts counted since the last time in
    /// `db_client_connection_wait_time_seconds` (see [`QUICK_CHECKOUT`](crate::QUICK_CHECKOUT)),
    /// now. The background task does this every second.
    pub fn record_pool_metrics(&self) {
        pool::record_gauges(&self.inner.pool, &self.inner.pool_name);
        self.inner.checkouts.flush();
    }

    /// Per-label query statistics (count, slow, failed, p50/p95/p99) since the start.
    pub fn stats(&self) -> QueryStats {
        self.inner.timer.stats()
    }

    /// The timer every query goes through.
    pub fn timer(&self) -> &QueryTimer {
        &self.inner.timer
    }

    /// The underlying deadpool-postgres pool, for what this type does not cover. Queries
    /// run on it directly are not timed.
    pub fn pool(&self) -> &Pool {
        &self.inner.pool
    }

    async fn run<K: Kind>(
        &self,
        name: Option<&'static str>,
        sql: &str,
        params: &[&(dyn ToSql + Sync)],
    ) -> Result<K::Output, DbError> {
        let label = self.inner.label(name, sql);
        let (conn, start) = self.inner.checkout().await?;
        let result = self
            .inner
            .timed::<K>(&conn, &label, sql, params, start)
            .await;
        if matches!(result, Err(DbError::QueryTimeout { .. })) {
            // The server may still be working on the query, or be gone: do not reuse the
            // connection.
            drop(Object::take(conn));
        }
        result
    }
}

impl Inner {
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
        let result = match self.pool.timeout_get(&self.no_wait).await {
            Err(PoolError::Timeout(TimeoutType::Wait)) => self.pool.get().await,
            other => other,
        };
        let got = Stopwatch::start();
        self.checkouts.record(got.since(start));
        match result {
            Ok(conn) => Ok((conn, got)),
            Err(error) => Err(pool_error(error, &self.pool)),
        }
    }

    /// Prepares (cached) and runs one query on `client`, bounded by the client timeout,
    /// and records it as started at `start`.
    pub(crate) async fn timed<K: Kind>(
        &self,
        client: &ClientWrapper,
        label: &QueryLabel,
        sql: &str,
        params: &[&(dyn ToSql + Sync)],
        start: Stopwatch,
    ) -> Result<K::Output, DbError> {
        // The work stays where it is (pinned in this future) and the deadline guard holds a
        // reference to it: these futures are kilobytes, and each move is a copy.
        let work = pin!(async {
            let statement = client.prepare_cached(sql).await.map_err(Failure::Pg)?;
            if client.statement_cache.size() > self.config.statement_cache_capacity {
                client.statement_cache.clear();
            }
            K::run(client, &statement, params).await
        });
        let timeout = self.config.client_timeout();
        let result = self.bounded(timeout, work).await;
        let elapsed = start.elapsed();
        let outcome = match &result {
            Ok(output) => QueryOutcome::Rows(K::rows(output)),
            Err(_) => QueryOutcome::Failed,
        };
        self.timer.record(label, elapsed, outcome, &params);
        result.map_err(|failure| failure.into_error(label, timeout))
    }

    /// Runs `work`, failing with [`Failure::Timeout`] once it has waited `timeout` (checked
    /// by the [`Watchdog`], see there why not with a tokio timer).
    async fn bounded<T>(
        &self,
        timeout: Option<Duration>,
        work: Pin<&mut impl Future<Output = Result<T, Failure>>>,
    ) -> Result<T, Failure> {
        match timeout {
            Some(timeout) => self
                .watchdog
                .guard(timeout, work)
                .await
                .unwrap_or(Err(Failure::Timeout)),
            None => work.await,
        }
    }

    /// Runs a transaction-control statement (`BEGIN`, `COMMIT`, `ROLLBACK`), timed.
    pub(crate) async fn control(
        &self,
        client: &ClientWrapper,
        sql: &'static str,
    ) -> Result<(), DbError> {
        let label = self.timer.label(sql);
        let start = Stopwatch::start();
        let work = pin!(async { client.batch_execute(sql).await.map_err(Failure::Pg) });
        let timeout = self.config.client_timeout();
        let result = self.bounded(timeout, work).await;
        let outcome = if result.is_ok() {
            QueryOutcome::Rows(0)
        } else {
            QueryOutcome::Failed
        };
        self.timer.record(&label, start.elapsed(), outcome, &());
        result.map_err(|failure| failure.into_error(&label, timeout))
    }
}

/// Maps deadpool's error to ours.
pub(crate) fn pool_error(error: PoolError, pool: &Pool) -> DbError {
    let timeouts = pool.timeouts();
    match error {
        PoolError::Timeout(TimeoutType::Wait) => {
            DbError::PoolTimeout(timeouts.wait.unwrap_or_default())
        }
        PoolError::Timeout(TimeoutType::Create | TimeoutType::Recycle) => {
            DbError::ConnectTimeout(timeouts.create.unwrap_or_default())
        }
        PoolError::Backend(error) => DbError::Connect(error),
        PoolError::PostCreateHook(HookError::Backend(error)) => DbError::Connect(error),
        PoolError::Closed | PoolError::PostCreateHook(_) => DbError::Closed,
        PoolError::NoRuntimeSpecified => DbError::Config(ConfigError::Invalid {
            field: "runtime",
            reason: "the pool needs a tokio runtime",
        }),
    }
}

/// Why running one query failed, before it is named.
pub(crate) enum Failure {
    Pg(tokio_postgres::Error),
    RowCount(&'static str),
    Timeout,
}

impl Failure {
    fn into_error(self, label: &QueryLabel, timeout: Option<Duration>) -> DbError {
        let summary = label.summary().to_owned();
        match self {
            Self::Pg(source) => DbError::Query { summary, source },
            Self::RowCount(found) => DbError::RowCount { summary, found },
            Self::Timeout => DbError::QueryTimeout {
                summary,
                timeout: timeout.unwrap_or_default(),
            },
        }
    }
}

/// One way of running a prepared statement: what it returns and how many rows that is.
pub(crate) trait Kind {
    type Output: Send;

    fn run<'a>(
        client: &'a ClientWrapper,
        statement: &'a Statement,
        params: &'a [&'a (dyn ToSql + Sync)],
    ) -> impl Future<Output = Result<Self::Output, Failure>> + Send + 'a;

    fn rows(output: &Self::Output) -> u64;
}

/// `query`: every row.
pub(crate) struct All;
/// `query_one`: exactly one row.
pub(crate) struct One;
/// `query_opt`: zero or one row.
pub(crate) struct Opt;
/// `execute`: the affected-row count.
pub(crate) struct Execute;

impl Kind for All {
    type Output = Vec<Row>;

    async fn run<'a>(
        client: &'a ClientWrapper,
        statement: &'a Statement,
        params: &'a [&'a (dyn ToSql + Sync)],
    ) -> Result<Vec<Row>, Failure> {
        client.query(statement, params).await.map_err(Failure::Pg)
    }

    fn rows(output: &Vec<Row>) -> u64 {
        output.len() as u64
    }
}

impl Kind for One {
    type Output = Row;

    async fn run<'a>(
        client: &'a ClientWrapper,
        statement: &'a Statement,
        params: &'a [&'a (dyn ToSql + Sync)],
    ) -> Result<Row, Failure> {
        at_most_one(client, statement, params)
            .await?
            .ok_or(Failure::RowCount("no row"))
    }

    fn rows(_: &Row) -> u64 {
        1
    }
}

impl Kind for Opt {
    type Output = Option<Row>;

    async fn run<'a>(
        client: &'a ClientWrapper,
        statement: &'a Statement,
        params: &'a [&'a (dyn ToSql + Sync)],
    ) -> Result<Option<Row>, Failure> {
        at_most_one(client, statement, params).await
    }

    fn rows(output: &Option<Row>) -> u64 {
        u64::from(output.is_some())
    }
}

impl Kind for Execute {
    type Output = u64;

    async fn run<'a>(
        client: &'a ClientWrapper,
        statement: &'a Statement,
        params: &'a [&'a (dyn ToSql + Sync)],
    ) -> Result<u64, Failure> {
        client.execute(statement, params).await.map_err(Failure::Pg)
    }

    fn rows(count: &u64) -> u64 {
        *count
    }
}

/// Reads at most two rows: the first, and whether there is another (an error). Unlike
/// `query`, never buffers a large result the caller did not expect.
async fn at_most_one(
    client: &ClientWrapper,
    statement: &Statement,
    params: &[&(dyn ToSql + Sync)],
) -> Result<Option<Row>, Failure> {
    let stream = client
        .query_raw(statement, params.iter().copied())
        .await
        .map_err(Failure::Pg)?;
    let mut stream = std::pin::pin!(stream);
    let first = stream.try_next().await.map_err(Failure::Pg)?;
    if first.is_some() && stream.try_next().await.map_err(Failure::Pg)?.is_some() {
        return Err(Failure::RowCount("more than one row"));
    }
    Ok(first)
}

/// Queries under a caller-given name: see [`Db::named`] and [`Tx::named`].
#[derive(Debug, Clone, Copy)]
pub struct Named<'a> {
    pub(crate) target: Target<'a>,
    pub(crate) name: &'static str,
}

#[derive(Debug, Clone, Copy)]
pub(crate) enum Target<'a> {
    Db(&'a Db),
    Tx(&'a Tx),
}

impl Named<'_> {
    /// [`Db::query`] under this name.
    pub async fn query(
        &self,
        sql: &str,
        params: &[&(dyn ToSql + Sync)],
    ) -> Result<Vec<Row>, DbError> {
        self.run::<All>(sql, params).await
    }

    /// [`Db::query_one`] under this name.
    pub async fn query_one(
        &self,
        sql: &str,
        params: &[&(dyn ToSql + Sync)],
    ) -> Result<Row, DbError> {
        self.run::<One>(sql, params).await
    }

    /// [`Db::query_opt`] under this name.
    pub async fn query_opt(
        &self,
        sql: &str,
        params: &[&(dyn ToSql + Sync)],
    ) -> Result<Option<Row>, DbError> {
        self.run::<Opt>(sql, params).await
    }

    /// [`Db::execute`] under this name.
    pub async fn execute(&self, sql: &str, params: &[&(dyn ToSql + Sync)]) -> Result<u64, DbError> {
        self.run::<Execute>(sql, params).await
    }

    async fn run<K: Kind>(
        &self,
        sql: &str,
        params: &[&(dyn ToSql + Sync)],
    ) -> Result<K::Output, DbError> {
        match self.target {
            Target::Db(db) => db.run::<K>(Some(self.name), sql, params).await,
            Target::Tx(tx) => tx.run::<K>(Some(self.name), sql, params).await,
        }
    }
}
