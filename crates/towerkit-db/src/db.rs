//! [`Db`]: the pool's handle, its queries and transactions.

use std::fmt;
use std::future::Future;
use std::panic::AssertUnwindSafe;
use std::sync::Arc;

use deadpool_postgres::{Object, Pool};
use futures_util::FutureExt;
use tokio_postgres::Row;
use tokio_postgres::types::ToSql;
use towerkit_timing::{QueryStats, QueryTimer};

use crate::config::DbConfig;
use crate::error::DbError;
use crate::inner::Inner;
use crate::pool::{self, PoolStatus};
use crate::statement::{All, Execute, Kind, One, Opt};
use crate::tx::{Tx, TxShared};

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

impl fmt::Debug for Db {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Db")
            .field("status", &self.pool_status())
            .field("config", &self.inner.config)
            .finish()
    }
}

impl Db {
    /// Builds the pool, opens [`min_connections`](crate::DbConfigBuilder::min_connections) (failing if it
    /// cannot), and starts the background task that retires idle and old connections and
    /// refreshes the pool gauges. Must run on a tokio runtime.
    pub async fn connect(config: DbConfig) -> Result<Self, DbError> {
        Ok(Self {
            inner: Arc::new(Inner::connect(config).await?),
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

    /// Sets the pool gauges (`db_client_connections{db_client_connection_state}`,
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

    pub(crate) async fn run<K: Kind>(
        &self,
        name: Option<&'static str>,
        sql: &str,
        params: &[&(dyn ToSql + Sync)],
    ) -> Result<K::Output, DbError> {
        let label = self.inner.label(name, sql);
        let (conn, start) = self.inner.checkout().await?;
        let result = self
            .inner
            .timed::<K>(&conn, &label, sql, params, start, true)
            .await;
        if matches!(result, Err(DbError::QueryTimeout { .. })) {
            // The server may still be working on the query, or be gone: do not reuse the
            // connection.
            drop(Object::take(conn));
        }
        result
    }
}
