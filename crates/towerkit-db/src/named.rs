//! [`Named`]: the queries of a [`Db`] or a [`Tx`] under a caller-given label.

use tokio_postgres::Row;
use tokio_postgres::types::ToSql;

use crate::db::Db;
use crate::error::DbError;
use crate::statement::{All, Execute, Kind, One, Opt};
use crate::tx::Tx;

impl Db {
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
}

impl Tx {
    /// The same queries under a caller-given name (see [`Db::named`]).
    pub fn named(&self, name: &'static str) -> Named<'_> {
        Named {
            target: Target::Tx(self),
            name,
        }
    }
}

/// Queries under a caller-given name: see [`Db::named`] and [`Tx::named`].
#[derive(Debug, Clone, Copy)]
pub struct Named<'a> {
    target: Target<'a>,
    name: &'static str,
}

#[derive(Debug, Clone, Copy)]
enum Target<'a> {
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
