//! How one prepared statement runs ([`Kind`]: every row, exactly one, at most one, or the
//! affected-row count) and why it failed ([`Failure`]), before the failure is named.

use std::future::Future;
use std::time::Duration;

use deadpool_postgres::ClientWrapper;
use futures_util::{FutureExt, TryStreamExt};
use tokio_postgres::types::ToSql;
use tokio_postgres::{Row, Statement};
use towerkit_timing::QueryLabel;

use crate::error::DbError;

/// Why running one query failed, before it is named.
pub(crate) enum Failure {
    Pg(tokio_postgres::Error),
    RowCount(&'static str),
    Timeout,
}

impl Failure {
    pub(crate) fn into_error(self, label: &QueryLabel, timeout: Option<Duration>) -> DbError {
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

    // Not an `async fn`: one state machine less to go through on each poll.
    fn run<'a>(
        client: &'a ClientWrapper,
        statement: &'a Statement,
        params: &'a [&'a (dyn ToSql + Sync)],
    ) -> impl Future<Output = Result<Row, Failure>> + Send + 'a {
        at_most_one(client, statement, params).map(|row| row?.ok_or(Failure::RowCount("no row")))
    }

    fn rows(_: &Row) -> u64 {
        1
    }
}

impl Kind for Opt {
    type Output = Option<Row>;

    fn run<'a>(
        client: &'a ClientWrapper,
        statement: &'a Statement,
        params: &'a [&'a (dyn ToSql + Sync)],
    ) -> impl Future<Output = Result<Option<Row>, Failure>> + Send + 'a {
        at_most_one(client, statement, params)
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
