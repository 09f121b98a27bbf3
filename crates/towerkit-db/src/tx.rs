//! [`Tx`]: the handle [`Db::transaction`](crate::Db::transaction) gives its closure.

use std::fmt;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use deadpool_postgres::Object;
use tokio_postgres::Row;
use tokio_postgres::types::ToSql;

use crate::error::DbError;
use crate::inner::Inner;
use crate::statement::{All, Execute, Kind, One, Opt};

/// A transaction in progress, handed to the closure of
/// [`Db::transaction`](crate::Db::transaction), which commits or rolls it back. Its
/// queries are timed like [`Db`](crate::Db)'s.
pub struct Tx {
    pub(crate) shared: Arc<TxShared>,
}

impl fmt::Debug for Tx {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Tx")
            .field("finished", &self.shared.finished.load(Ordering::Relaxed))
            .finish()
    }
}

impl Tx {
    /// Runs a query in the transaction and returns its rows.
    pub async fn query(
        &self,
        sql: &str,
        params: &[&(dyn ToSql + Sync)],
    ) -> Result<Vec<Row>, DbError> {
        self.run::<All>(None, sql, params).await
    }

    /// Runs a query that must return exactly one row.
    pub async fn query_one(
        &self,
        sql: &str,
        params: &[&(dyn ToSql + Sync)],
    ) -> Result<Row, DbError> {
        self.run::<One>(None, sql, params).await
    }

    /// Runs a query that returns at most one row.
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

    pub(crate) async fn run<K: Kind>(
        &self,
        name: Option<&'static str>,
        sql: &str,
        params: &[&(dyn ToSql + Sync)],
    ) -> Result<K::Output, DbError> {
        let shared = &self.shared;
        let Some(conn) = shared
            .conn
            .as_ref()
            .filter(|_| !shared.finished.load(Ordering::Acquire))
        else {
            return Err(DbError::TransactionFinished);
        };
        let label = shared.inner.label(name, sql);
        shared
            .inner
            .timed::<K>(
                conn,
                &label,
                sql,
                params,
                towerkit_timing::Stopwatch::start(),
                // Never inside a transaction: its plan could differ (its own writes, its
                // locks), and the transaction's connection is busy.
                false,
            )
            .await
    }
}

/// The connection of a transaction, shared by [`Db::transaction`](crate::Db::transaction)
/// and the [`Tx`] it hands out.
pub(crate) struct TxShared {
    conn: Option<Object>,
    inner: Arc<Inner>,
    /// Set once `COMMIT` or `ROLLBACK` succeeded: only then may the connection go back to
    /// the pool.
    finished: AtomicBool,
}

impl TxShared {
    pub(crate) fn new(conn: Object, inner: Arc<Inner>) -> Self {
        Self {
            conn: Some(conn),
            inner,
            finished: AtomicBool::new(false),
        }
    }

    /// Runs `BEGIN` (or another control statement) on the connection.
    pub(crate) async fn control(&self, sql: &'static str) -> Result<(), DbError> {
        match &self.conn {
            Some(conn) => self.inner.control(conn, sql).await,
            None => Err(DbError::TransactionFinished),
        }
    }

    /// Ends the transaction with `COMMIT` or `ROLLBACK`; on success the connection may be
    /// reused.
    pub(crate) async fn finish(&self, sql: &'static str) -> Result<(), DbError> {
        self.control(sql).await?;
        self.finished.store(true, Ordering::Release);
        Ok(())
    }

    /// Rolls back; if that fails the connection is closed when dropped, which ends the
    /// transaction on the server too.
    pub(crate) async fn rollback(&self) {
        if let Err(error) = self.finish("ROLLBACK").await {
            tracing::warn!(target: "towerkit_db", %error, "rollback failed; closing the connection");
        }
    }
}

impl Drop for TxShared {
    fn drop(&mut self) {
        if self.finished.load(Ordering::Acquire) {
            return;
        }
        // The transaction is still open (cancelled, or COMMIT/ROLLBACK failed): never hand
        // this connection to another request. Closing it makes the server roll back.
        if let Some(conn) = self.conn.take() {
            drop(Object::take(conn));
        }
    }
}
