//! A pooled PostgreSQL client for axum services: deadpool-postgres with production
//! timeouts, every query timed by towerkit-timing, transactions that cannot leak, health
//! checks, and typed errors that answer clients without leaking SQL or credentials.
//!
//! - [`Db`] wraps a deadpool-postgres pool built from `DATABASE_URL` or a [`DbConfig`]
//!   (infallible setters on [`DbConfig::builder`], checked once by `build`, errors in the
//!   crate's [`ConfigError`]):
//!   wait, connect and recycle timeouts, `statement_timeout` and `application_name` on
//!   every connection, pool size from the CPU count, optional warm-up, and a background
//!   task that retires connections idle for 10 minutes or older than 30.
//! - [`Db::query`], [`Db::query_one`], [`Db::query_opt`] and [`Db::execute`] prepare each
//!   statement once per connection and record it with towerkit-timing's `QueryTimer`:
//!   `db_client_operation_duration_seconds`, [`QueryStats`](towerkit_timing::QueryStats),
//!   slow-query logs, and, inside a `TimingLayer`, the request's `Server-Timing` and N+1
//!   detection. [`Db::named`] labels a query by name.
//! - Opt-in, [`DbConfigBuilder::explain_slow_queries`]: a slow read gets its plan captured
//!   with `EXPLAIN (FORMAT JSON)` in the background (never a write, never inside a
//!   transaction, only on a free connection, at most once per summary per interval), logged
//!   and kept in [`Db::stats`].
//! - [`Db::transaction`] commits when the closure returns `Ok` and rolls back on `Err` or
//!   panic; a cancelled transaction's connection is closed, never reused.
//! - [`Db::check`], [`live`] and [`ready`] (or [`Db::health_routes`]) answer
//!   `application/health+json`.
//! - Pool gauges and checkout times are recorded under the names in [`metrics`].
//! - [`DbError`] says what failed (pool timeout, connect, TLS, query with SQLSTATE) and
//!   turns into a 503 or 500 `application/problem+json`.
//! - TLS (cargo feature `tls`, on by default): [`SslMode`] with libpq's meanings, see below.
//!
//! ```
//! use towerkit_db::{Db, DbConfig, DbError};
//!
//! # tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(async {
//! # let url = std::env::var("DATABASE_URL").unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".into());
//! let config = DbConfig::builder().url(url).max_size(8).build()?;
//! let db = Db::connect(config).await?;
//!
//! let row = db.query_one("SELECT $1::int + 1", &[&41_i32]).await?;
//! assert_eq!(row.get::<_, i32>(0), 42);
//!
//! let count: i64 = db
//!     .transaction(|tx| async move {
//!         tx.execute("CREATE TEMPORARY TABLE visits (page text) ON COMMIT DROP", &[]).await?;
//!         tx.execute("INSERT INTO visits VALUES ($1), ($1)", &[&"/home"]).await?;
//!         let row = tx.query_one("SELECT count(*) FROM visits", &[]).await?;
//!         Ok::<_, DbError>(row.get(0))
//!     })
//!     .await?;
//! assert_eq!(count, 2);
//! assert_eq!(db.stats().get("INSERT visits").map(|s| s.count), Some(1));
//! # Ok::<(), DbError>(())
//! # }).unwrap();
//! ```
//!
//! ## TLS
//!
//! `sslmode`, `sslrootcert`, `sslcert` and `sslkey` are read from the connection string
//! (the `postgres://` URL's query or the `key=value` form) or set on the builder, which
//! wins. The modes mean what they mean to libpq ([`SslMode`] has the table): `disable`,
//! `prefer` (the default: TLS when the server offers it), `require` (encrypted, the
//! certificate not checked unless `sslrootcert` is given), `verify-ca` (the chain checked
//! against `sslrootcert`, else the system's roots) and `verify-full` (the chain and the host
//! name). Against a managed database, use `verify-full` with the provider's CA bundle:
//!
//! ```text
//! DATABASE_URL=postgres://app:PASSWORD@db.internal:5432/shop?sslmode=verify-full&sslrootcert=/etc/ssl/db-ca.pem
//! ```
//!
//! A certificate from an unknown CA or for another host name fails the connection with
//! [`DbError::Tls`], whose [`TlsFailure`] names the reason; it never falls back to plain
//! TCP. Certificate files are read once, when the config is built:
//!
//! ```
//! use towerkit_db::{ConfigError, DbConfig, SslMode};
//!
//! let config = DbConfig::builder()
//!     .url("postgres://app@db.internal/shop?sslmode=require")
//!     .build()?;
//! assert_eq!(config.get_ssl_mode(), SslMode::Require);
//!
//! let config = DbConfig::builder()
//!     .url("postgres://app@db.internal/shop")
//!     .ssl_mode(SslMode::VerifyFull)
//!     .ssl_root_cert("/nonexistent/db-ca.pem")
//!     .build();
//! assert!(matches!(config, Err(ConfigError::Tls { field: "sslrootcert", .. })));
//! # Ok::<(), ConfigError>(())
//! ```
//!
//! rustls runs with the `ring` provider, passed to its client config explicitly rather
//! than installed as the process default, so a binary whose other crates bring aws-lc-rs
//! still works. Without the `tls` feature, only `disable` and `prefer` (which then stays
//! plain) are accepted; anything else is a [`ConfigError`].
//!
//! ## Traces
//!
//! Each query runs in an INFO `tracing` span `db.query` with OpenTelemetry's database
//! attributes (`db.system.name` = `postgresql`, `db.query.summary`, `db.operation.name`,
//! `db.collection.name`, and `error.type` when it fails); `db.query.text` only with
//! [`DbConfigBuilder::trace_query_text`], parameter values never. A checkout that waits
//! for a connection runs in a `db.client.connection.wait` span.
//!
//! ## Production checklist
//!
//! - Stores nothing of its own; each instance opens up to `max_size` connections, so the
//!   database sees instances × `max_size`: size `max_connections` (or the pooler) for all.
//! - Buffers each query's rows ([`Db::query`] returns them all); page large results.
//! - Keys nothing; metrics are labelled by `pool_name`, never by the URL.
//! - The password of the connection string never appears in `Debug`, `Display`, logs or
//!   responses.
//! - Use `sslmode=verify-full` with `sslrootcert` against a database across a network;
//!   restart to pick up rotated certificate files.
//!
//! ## In an axum service
//!
//! In an axum service, with health routes, errors as responses, and query timings in
//! `Server-Timing`:
//!
//! ```no_run
//! use axum::{Router, extract::{Path, State}, routing::get};
//! use towerkit_db::{Db, DbError};
//! use towerkit_timing::TimingLayer;
//!
//! async fn product(State(db): State<Db>, Path(id): Path<i64>) -> Result<String, DbError> {
//!     let row = db.query_one("SELECT name FROM products WHERE id = $1", &[&id]).await?;
//!     Ok(row.get(0))
//! }
//!
//! # async fn run() -> Result<(), Box<dyn std::error::Error>> {
//! let db = Db::from_env().await?;
//! let app: Router = Router::new()
//!     .route("/products/{id}", get(product))
//!     .with_state(db.clone())
//!     .merge(db.health_routes())
//!     .layer(TimingLayer::builder().server_timing(true).build()?);
//! # let _ = app; Ok(()) }
//! ```

// docs.rs documents with a nightly rustdoc and `--cfg docsrs`: mark what each feature enables.
#![cfg_attr(docsrs, feature(doc_cfg))]

mod config;
mod db;
mod error;
mod explain;
mod health;
mod inner;
pub mod metrics;
mod named;
mod pool;
mod probe;
mod read_only;
mod span;
mod statement;
mod tls;
mod tx;
mod watchdog;

pub use config::{
    CLIENT_TIMEOUT_MARGIN, DATABASE_URL, DEFAULT_APPLICATION_NAME, DbConfig, DbConfigBuilder,
};
pub use db::Db;
pub use error::{ConfigError, DbError};
pub use health::{HEALTH_JSON, Health, HealthStatus};
pub use named::Named;
pub use pool::{MAX_UPKEEP_INTERVAL, PoolStatus, QUICK_CHECKOUT};
pub use probe::{live, ready};
pub use tls::{SslMode, TlsFailure};
pub use tx::Tx;

/// The pool, re-exported for the type [`Db::pool`] returns.
pub use deadpool_postgres;
/// The driver, re-exported for its types (`Row`, `types::ToSql`, `error::SqlState`).
pub use tokio_postgres;

/// The README's examples, compiled and run as doc tests (the README is in the package, so
/// `cargo test --doc` on the published crate runs them too).
#[doc = include_str!("../README.md")]
#[cfg(doctest)]
pub struct ReadmeDoctests;
