//! [`Explainer`]: captures the plan of a slow read with `EXPLAIN (FORMAT JSON)`, off the
//! request's path, on another pooled connection, at most once per query summary per
//! interval (see [`DbConfigBuilder::explain_slow_queries`](crate::DbConfigBuilder::explain_slow_queries)).

use std::error::Error;
use std::fmt;
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, SystemTime};

use bytes::BytesMut;
use deadpool_postgres::{Object, Pool, Timeouts};
use tokio::sync::Semaphore;
use tokio_postgres::types::{Format, IsNull, ToSql, Type, to_sql_checked};
use tokio_postgres::{SimpleQueryMessage, Statement};
use towerkit_timing::{PlanSummary, QueryLabel};

use crate::config::{CLIENT_TIMEOUT_MARGIN, DbConfig};
use crate::read_only::is_plain_read;

/// The first server version (`server_version_num`) with `EXPLAIN (GENERIC_PLAN)`.
const GENERIC_PLAN_VERSION: u32 = 160_000;

/// Where the log lines of plan capture go.
const TARGET: &str = "towerkit_db::explain";

/// Captures plans of slow reads for one pool.
pub(crate) struct Explainer {
    pool: Pool,
    interval: Duration,
    timeout: Duration,
    /// A checkout that never waits for a busy pool (it may open a connection).
    no_wait: Timeouts,
    /// One plan is captured at a time, so plans never hold more than one connection.
    running: Arc<Semaphore>,
    /// The server's `server_version_num`, 0 until known.
    server_version: Arc<AtomicU32>,
}

impl fmt::Debug for Explainer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Explainer")
            .field("interval", &self.interval)
            .field("timeout", &self.timeout)
            .finish_non_exhaustive()
    }
}

impl Explainer {
    /// The explainer `config` asks for, if any.
    pub(crate) fn new(config: &DbConfig, pool: &Pool) -> Option<Self> {
        config.explain_slow_queries.then(|| Self {
            pool: pool.clone(),
            interval: config.explain_interval,
            timeout: config.explain_timeout,
            no_wait: Timeouts {
                wait: Some(Duration::ZERO),
                create: Some(config.connect_timeout),
                recycle: Some(config.recycle_timeout),
            },
            running: Arc::new(Semaphore::new(1)),
            server_version: Arc::new(AtomicU32::new(0)),
        })
    }

    /// Follows up a slow query of `label`: unless it is not a plain read, the pool has no
    /// free connection, another plan is being captured, or this summary's plan was
    /// captured within the interval, copies its parameters (encoded as `statement` wants
    /// them) and captures its plan on a task of its own. Never waits.
    pub(crate) fn slow(
        &self,
        label: &QueryLabel,
        sql: &str,
        statement: &Statement,
        params: &[&(dyn ToSql + Sync)],
    ) {
        if !is_plain_read(sql) {
            return;
        }
        let status = self.pool.status();
        if status.available == 0 && status.size >= status.max_size {
            tracing::debug!(target: TARGET, summary = label.summary(), "pool saturated: slow query not explained");
            return;
        }
        let Ok(permit) = self.running.clone().try_acquire_owned() else {
            return;
        };
        if !label.claim_plan(self.interval) {
            return;
        }
        let version = self.server_version.load(Ordering::Relaxed);
        let explain = if version >= GENERIC_PLAN_VERSION {
            Explain::Generic
        } else {
            match copy_params(statement, params) {
                Some(params) => Explain::WithParams {
                    types: statement.params().to_vec(),
                    params,
                },
                None => return,
            }
        };
        let task = Capture {
            pool: self.pool.clone(),
            no_wait: self.no_wait,
            timeout: self.timeout,
            server_version: self.server_version.clone(),
            label: label.clone(),
            sql: sql.to_owned(),
            explain,
        };
        tokio::spawn(async move {
            task.run().await;
            drop(permit);
        });
    }
}

/// How the plan is asked for.
enum Explain {
    /// `EXPLAIN (FORMAT JSON, GENERIC_PLAN)`: no parameter values (PostgreSQL 16 and later).
    Generic,
    /// `EXPLAIN (FORMAT JSON)` with the query's parameters, as it ran.
    WithParams {
        types: Vec<Type>,
        params: Vec<CopiedParam>,
    },
}

/// One plan capture, owning everything it needs.
struct Capture {
    pool: Pool,
    no_wait: Timeouts,
    timeout: Duration,
    server_version: Arc<AtomicU32>,
    label: QueryLabel,
    sql: String,
    explain: Explain,
}

impl Capture {
    async fn run(self) {
        let summary = self.label.summary();
        let conn = match self.pool.timeout_get(&self.no_wait).await {
            Ok(conn) => conn,
            Err(_) => {
                tracing::debug!(target: TARGET, summary, "no free connection: slow query not explained");
                return;
            }
        };
        let bound = self.timeout + CLIENT_TIMEOUT_MARGIN;
        let result = tokio::time::timeout(bound, self.explain_on(&conn)).await;
        let plan = match result {
            Ok(Ok(plan)) => plan,
            Ok(Err(failure)) => {
                if !failure.rolled_back {
                    // A transaction may still be open on it: never hand it to a request.
                    drop(Object::take(conn));
                }
                // Only the SQLSTATE: a server message may quote a parameter value.
                tracing::debug!(target: TARGET, summary, %failure, "could not explain slow query");
                None
            }
            Err(_) => {
                // The connection may still be busy with the EXPLAIN: never reuse it.
                drop(Object::take(conn));
                tracing::debug!(target: TARGET, summary, "explaining slow query timed out");
                return;
            }
        };
        let Some(plan) = plan else {
            return;
        };
        tracing::warn!(
            target: TARGET,
            summary,
            node = %plan.node,
            total_cost = plan.total_cost,
            rows = plan.rows,
            "slow query plan"
        );
        self.label.record_plan(plan);
    }

    /// Runs the `EXPLAIN` in a read-only transaction under the short statement timeout,
    /// then rolls back. `None` for an answer that is not a plan. A failure says whether the
    /// transaction was rolled back (the connection may be reused) or not (it is closed).
    async fn explain_on(&self, conn: &Object) -> Result<Option<PlanSummary>, Failure> {
        let version = self.version(conn).await?;
        conn.batch_execute(&format!(
            "BEGIN READ ONLY; SET LOCAL statement_timeout = {}",
            self.timeout.as_millis()
        ))
        .await
        .map_err(Failure::pg)?;
        let plan = self.plan(conn, version).await;
        // A failed EXPLAIN leaves the transaction aborted: the rollback ends it either way.
        conn.batch_execute("ROLLBACK").await.map_err(Failure::pg)?;
        match plan {
            Ok(json) => Ok(json.as_deref().and_then(parse_plan)),
            Err(failure) => Err(Failure {
                rolled_back: true,
                ..failure
            }),
        }
    }

    /// The JSON text of the plan.
    async fn plan(&self, conn: &Object, version: u32) -> Result<Option<String>, Failure> {
        match &self.explain {
            Explain::WithParams { types, params } if version < GENERIC_PLAN_VERSION => {
                let statement = conn
                    .prepare_typed(&format!("EXPLAIN (FORMAT JSON) {}", self.sql), types)
                    .await
                    .map_err(Failure::pg)?;
                let params: Vec<&(dyn ToSql + Sync)> =
                    params.iter().map(|p| p as &(dyn ToSql + Sync)).collect();
                let row = conn
                    .query_one(&statement, &params)
                    .await
                    .map_err(Failure::pg)?;
                let text: JsonText = row.try_get(0).map_err(Failure::pg)?;
                Ok(Some(text.0))
            }
            // PostgreSQL 16 and later; also when the version was learned only now.
            _ => {
                let messages = conn
                    .simple_query(&format!("EXPLAIN (FORMAT JSON, GENERIC_PLAN) {}", self.sql))
                    .await
                    .map_err(Failure::pg)?;
                Ok(messages.into_iter().find_map(|message| match message {
                    SimpleQueryMessage::Row(row) => row.get(0).map(str::to_owned),
                    _ => None,
                }))
            }
        }
    }

    /// The server's `server_version_num`, asked once.
    async fn version(&self, conn: &Object) -> Result<u32, Failure> {
        let known = self.server_version.load(Ordering::Relaxed);
        if known != 0 {
            return Ok(known);
        }
        let row = conn
            .query_one("SELECT current_setting('server_version_num')::int4", &[])
            .await
            .map_err(Failure::pg)?;
        let version: i32 = row.try_get(0).map_err(Failure::pg)?;
        let version = u32::try_from(version).unwrap_or(0);
        self.server_version.store(version, Ordering::Relaxed);
        Ok(version)
    }
}

/// Why a plan was not captured, without the server's message (it may quote a parameter
/// value).
#[derive(Debug)]
struct Failure {
    /// The SQLSTATE, if the server answered with an error.
    code: Option<String>,
    /// Whether the connection is known to be out of any transaction.
    rolled_back: bool,
}

impl Failure {
    fn pg(error: tokio_postgres::Error) -> Self {
        Self {
            code: error.code().map(|code| code.code().to_owned()),
            rolled_back: false,
        }
    }
}

impl fmt::Display for Failure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.code {
            Some(code) => write!(f, "SQLSTATE {code}"),
            None => f.write_str("connection or protocol error"),
        }
    }
}

/// The top node of an `EXPLAIN (FORMAT JSON)` answer: `[{"Plan": {"Node Type": ...,
/// "Total Cost": ..., "Plan Rows": ...}}]`.
pub(crate) fn parse_plan(json: &str) -> Option<PlanSummary> {
    let value: serde_json::Value = serde_json::from_str(json).ok()?;
    let plan = value.get(0)?.get("Plan")?;
    Some(PlanSummary {
        node: plan.get("Node Type")?.as_str()?.to_owned(),
        total_cost: plan.get("Total Cost")?.as_f64()?,
        rows: plan.get("Plan Rows")?.as_f64()?,
        captured_at: SystemTime::now(),
    })
}

/// Each parameter encoded as `statement` expects it, so the plan can be asked for after the
/// borrowed parameters are gone. `None` when one does not encode (the query itself failed
/// then).
fn copy_params(statement: &Statement, params: &[&(dyn ToSql + Sync)]) -> Option<Vec<CopiedParam>> {
    let types = statement.params();
    if types.len() != params.len() {
        return None;
    }
    types
        .iter()
        .zip(params)
        .map(|(ty, param)| {
            let mut bytes = BytesMut::new();
            let value = match param.to_sql_checked(ty, &mut bytes).ok()? {
                IsNull::Yes => None,
                IsNull::No => Some(bytes.freeze()),
            };
            Some(CopiedParam {
                value,
                format: param.encode_format(ty),
            })
        })
        .collect()
}

/// A parameter already encoded for its type.
struct CopiedParam {
    value: Option<bytes::Bytes>,
    format: Format,
}

impl fmt::Debug for CopiedParam {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Never the value: it may hold personal data.
        f.write_str("CopiedParam")
    }
}

impl ToSql for CopiedParam {
    fn to_sql(&self, _: &Type, out: &mut BytesMut) -> Result<IsNull, Box<dyn Error + Sync + Send>> {
        match &self.value {
            Some(value) => {
                out.extend_from_slice(value);
                Ok(IsNull::No)
            }
            None => Ok(IsNull::Yes),
        }
    }

    /// Encoded for the very type the statement is prepared with.
    fn accepts(_: &Type) -> bool {
        true
    }

    fn encode_format(&self, _: &Type) -> Format {
        self.format
    }

    to_sql_checked!();
}

/// A `json` column read as its text.
struct JsonText(String);

impl<'a> tokio_postgres::types::FromSql<'a> for JsonText {
    fn from_sql(_: &Type, raw: &'a [u8]) -> Result<Self, Box<dyn Error + Sync + Send>> {
        Ok(Self(std::str::from_utf8(raw)?.to_owned()))
    }

    fn accepts(ty: &Type) -> bool {
        matches!(*ty, Type::JSON | Type::TEXT)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_top_node_is_read_from_the_json_plan() {
        let json = r#"[{"Plan": {"Node Type": "Seq Scan", "Parallel Aware": false,
            "Relation Name": "products", "Startup Cost": 0.00, "Total Cost": 35.50,
            "Plan Rows": 10, "Plan Width": 36, "Filter": "(email = 'alice@example.com'::text)"}}]"#;
        let plan = parse_plan(json).unwrap();
        assert_eq!(plan.node, "Seq Scan");
        assert!((plan.total_cost - 35.5).abs() < 1e-9);
        assert!((plan.rows - 10.0).abs() < 1e-9);
        assert!(parse_plan("[]").is_none());
        assert!(parse_plan("not json").is_none());
    }
}
