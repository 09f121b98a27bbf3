//! [`DbConfig`]: where to connect and the pool's production defaults, set on a
//! [`DbConfigBuilder`] and checked once by [`DbConfigBuilder::build`].

use std::fmt;
use std::path::PathBuf;
use std::str::FromStr;
use std::time::Duration;

use towerkit_timing::QueryTimer;

use crate::error::ConfigError;
use crate::tls::{self, SslMode, TlsParams};

/// The environment variable [`DbConfig::from_env`] reads, and [`DbConfigBuilder::build`]
/// when no `url` was given.
pub const DATABASE_URL: &str = "DATABASE_URL";

/// The `application_name` used when neither the URL nor the config sets one.
pub const DEFAULT_APPLICATION_NAME: &str = "towerkit";

/// How much longer than the statement timeout the client waits for a query before it gives
/// up on it and discards the connection.
pub const CLIENT_TIMEOUT_MARGIN: Duration = Duration::from_secs(1);

/// How a [`Db`](crate::Db) connects and sizes its pool: checked settings, built by
/// [`DbConfig::builder`], [`DbConfig::from_url`] or [`DbConfig::from_env`].
///
/// The defaults are meant for production, where deadpool's own (no timeouts at all) would
/// let a database that accepts TCP but never answers hang every request:
///
/// | setting | default |
/// |---|---|
/// | [`max_size`](DbConfigBuilder::max_size) | 2 × CPU cores, at least 4 |
/// | [`min_connections`](DbConfigBuilder::min_connections) (warm-up, kept open) | 0 |
/// | [`wait_timeout`](DbConfigBuilder::wait_timeout) (for a free connection) | 3 s |
/// | [`connect_timeout`](DbConfigBuilder::connect_timeout) (to open one) | 3 s |
/// | [`recycle_timeout`](DbConfigBuilder::recycle_timeout) (to check one on reuse) | 1 s |
/// | [`statement_timeout`](DbConfigBuilder::statement_timeout) (server side; the client gives up 1 s later) | 30 s |
/// | [`application_name`](DbConfigBuilder::application_name) | the URL's, else `towerkit` |
/// | [`idle_timeout`](DbConfigBuilder::idle_timeout) | 10 min |
/// | [`max_lifetime`](DbConfigBuilder::max_lifetime) | 30 min |
/// | [`check_timeout`](DbConfigBuilder::check_timeout) / [`check_ttl`](DbConfigBuilder::check_ttl) (health) | 1 s / 1 s |
/// | [`statement_cache_capacity`](DbConfigBuilder::statement_cache_capacity) (per connection) | 256 |
/// | [`explain_slow_queries`](DbConfigBuilder::explain_slow_queries) (plans of slow reads) | off |
/// | [`explain_interval`](DbConfigBuilder::explain_interval) / [`explain_timeout`](DbConfigBuilder::explain_timeout) | 60 s / 250 ms |
///
/// ```
/// use std::time::Duration;
/// use towerkit_db::{ConfigError, DbConfig};
///
/// let config = DbConfig::builder()
///     .url("postgres://app@db.internal:5432/shop")
///     .max_size(20)
///     .min_connections(4)
///     .statement_timeout(Some(Duration::from_secs(5)))
///     .application_name("catalog-api")
///     .build()?;
/// assert_eq!(config.get_max_size(), 20);
///
/// let too_many = DbConfig::builder().url("postgres://app@db.internal/shop").max_size(2).min_connections(3).build();
/// assert!(matches!(too_many, Err(ConfigError::Invalid { field: "min_connections", .. })));
/// # Ok::<(), ConfigError>(())
/// ```
#[derive(Clone)]
pub struct DbConfig {
    /// The connection config, completed with `application_name`, `statement_timeout` and
    /// the connect timeout.
    pub(crate) pg: tokio_postgres::Config,
    pub(crate) max_size: usize,
    pub(crate) min_connections: usize,
    pub(crate) wait_timeout: Duration,
    pub(crate) connect_timeout: Duration,
    pub(crate) recycle_timeout: Duration,
    pub(crate) statement_timeout: Option<Duration>,
    pub(crate) application_name: Option<String>,
    pub(crate) idle_timeout: Duration,
    pub(crate) max_lifetime: Duration,
    pub(crate) check_timeout: Duration,
    pub(crate) check_ttl: Duration,
    pub(crate) statement_cache_capacity: usize,
    pub(crate) pool_name: String,
    pub(crate) timer: QueryTimer,
    /// Whether slow reads are explained, see [`DbConfigBuilder::explain_slow_queries`].
    pub(crate) explain_slow_queries: bool,
    pub(crate) explain_interval: Duration,
    pub(crate) explain_timeout: Duration,
    /// Whether query spans carry `db.query.text`.
    pub(crate) trace_query_text: bool,
    /// `sslmode` and the certificate files, from the connection string and the builder.
    pub(crate) tls: TlsParams,
    /// The TLS connector, built once from `tls`; `None` for `disable` (and without the
    /// `tls` feature).
    #[cfg(feature = "tls")]
    pub(crate) connector: Option<tokio_postgres_rustls::MakeRustlsConnect>,
}

impl fmt::Debug for DbConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // tokio-postgres' Debug already redacts the password.
        let mut debug = f.debug_struct("DbConfig");
        debug.field("pg", &self.pg);
        self.debug_settings(&mut debug).finish_non_exhaustive()
    }
}

impl DbConfig {
    /// A builder with the production defaults (see the type docs), connecting to the
    /// [`url`](DbConfigBuilder::url) given, else to [`DATABASE_URL`].
    pub fn builder() -> DbConfigBuilder {
        let cores = std::thread::available_parallelism().map_or(1, usize::from);
        DbConfigBuilder {
            source: Source::Env,
            // `build` replaces the placeholder connection config.
            config: DbConfig {
                pg: tokio_postgres::Config::new(),
                max_size: (cores * 2).max(4),
                min_connections: 0,
                wait_timeout: Duration::from_secs(3),
                connect_timeout: Duration::from_secs(3),
                recycle_timeout: Duration::from_secs(1),
                statement_timeout: Some(Duration::from_secs(30)),
                application_name: None,
                idle_timeout: Duration::from_secs(10 * 60),
                max_lifetime: Duration::from_secs(30 * 60),
                check_timeout: Duration::from_secs(1),
                check_ttl: Duration::from_secs(1),
                statement_cache_capacity: 256,
                pool_name: "default".to_owned(),
                timer: QueryTimer::new("postgresql"),
                explain_slow_queries: false,
                explain_interval: Duration::from_secs(60),
                explain_timeout: Duration::from_millis(250),
                trace_query_text: false,
                tls: TlsParams::default(),
                #[cfg(feature = "tls")]
                connector: None,
            },
        }
    }

    /// The defaults for a `postgres://` URL or a `key=value` connection string:
    /// `DbConfig::builder().url(url).build()`. The error never repeats the string, which
    /// may hold a password.
    pub fn from_url(url: &str) -> Result<Self, ConfigError> {
        Self::builder().url(url).build()
    }

    /// The defaults for the connection string in [`DATABASE_URL`]:
    /// `DbConfig::builder().build()`.
    pub fn from_env() -> Result<Self, ConfigError> {
        Self::builder().build()
    }

    /// The configured maximum pool size.
    pub fn get_max_size(&self) -> usize {
        self.max_size
    }

    /// The `sslmode` connections use: the builder's, else the connection string's, else
    /// `prefer`.
    pub fn get_ssl_mode(&self) -> SslMode {
        self.tls.mode.unwrap_or_default()
    }

    /// The TLS connector, `None` for plain connections.
    #[cfg(feature = "tls")]
    pub(crate) fn tls_connector(&self) -> Option<tokio_postgres_rustls::MakeRustlsConnect> {
        self.connector.clone()
    }

    /// Without the `tls` feature, connections are plain.
    #[cfg(not(feature = "tls"))]
    pub(crate) fn tls_connector(&self) -> Option<std::convert::Infallible> {
        None
    }

    /// The client-side bound on one query.
    pub(crate) fn client_timeout(&self) -> Option<Duration> {
        self.statement_timeout.map(|t| t + CLIENT_TIMEOUT_MARGIN)
    }

    /// The pool settings, for the `Debug` output of the config and of its builder.
    fn debug_settings<'a, 'b, 'c>(
        &self,
        debug: &'a mut fmt::DebugStruct<'b, 'c>,
    ) -> &'a mut fmt::DebugStruct<'b, 'c> {
        debug
            .field("max_size", &self.max_size)
            .field("min_connections", &self.min_connections)
            .field("wait_timeout", &self.wait_timeout)
            .field("connect_timeout", &self.connect_timeout)
            .field("recycle_timeout", &self.recycle_timeout)
            .field("statement_timeout", &self.statement_timeout)
            .field("application_name", &self.application_name)
            .field("idle_timeout", &self.idle_timeout)
            .field("max_lifetime", &self.max_lifetime)
            .field("check_timeout", &self.check_timeout)
            .field("check_ttl", &self.check_ttl)
            .field("statement_cache_capacity", &self.statement_cache_capacity)
            .field("pool_name", &self.pool_name)
            .field("explain_slow_queries", &self.explain_slow_queries)
            .field("explain_interval", &self.explain_interval)
            .field("explain_timeout", &self.explain_timeout)
            .field("trace_query_text", &self.trace_query_text)
            .field("ssl_mode", &self.tls.mode.unwrap_or_default())
            .field("sslrootcert", &self.tls.root_cert)
            .field("sslcert", &self.tls.cert)
            .field("sslkey", &self.tls.key)
    }
}

/// Builds a [`DbConfig`]: infallible setters, then [`build`](Self::build), which parses the
/// connection string and checks every setting. Start from [`DbConfig::builder`].
#[derive(Clone)]
pub struct DbConfigBuilder {
    source: Source,
    /// The settings so far, over a placeholder connection config.
    config: DbConfig,
}

/// Where the connection settings come from.
#[derive(Clone)]
enum Source {
    /// [`DATABASE_URL`], read by `build`.
    Env,
    /// A connection string, parsed by `build`.
    Url(String),
    /// A driver config (boxed: it is ten times the size of the other variants).
    Pg(Box<tokio_postgres::Config>),
}

impl fmt::Debug for DbConfigBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // A connection string may hold a password: never printed.
        let source: &dyn fmt::Debug = match &self.source {
            Source::Env => &DATABASE_URL,
            Source::Url(_) => &"url",
            Source::Pg(pg) => pg,
        };
        let mut debug = f.debug_struct("DbConfigBuilder");
        debug.field("source", source);
        self.config
            .debug_settings(&mut debug)
            .finish_non_exhaustive()
    }
}

impl DbConfigBuilder {
    /// Connect with a `postgres://` URL or a `key=value` connection string, parsed by
    /// [`build`](Self::build). Default: the value of [`DATABASE_URL`].
    #[must_use]
    pub fn url(mut self, url: impl Into<String>) -> Self {
        self.source = Source::Url(url.into());
        self
    }

    /// Connect with a tokio-postgres config instead of a connection string.
    #[must_use]
    pub fn pg_config(mut self, pg: tokio_postgres::Config) -> Self {
        self.source = Source::Pg(Box::new(pg));
        self
    }

    /// How connections use TLS, with libpq's meanings (see [`SslMode`]); overrides the
    /// connection string's `sslmode`. Default: the connection string's, else
    /// [`SslMode::Prefer`]. Anything but `disable` and `prefer` needs the `tls` feature.
    #[must_use]
    pub fn ssl_mode(mut self, mode: SslMode) -> Self {
        self.config.tls.mode = Some(mode);
        self
    }

    /// A PEM file of the CA certificates to trust (libpq's `sslrootcert`; `system` for
    /// the system's roots); overrides the connection string's. With it, the certificate
    /// chain is checked under every `sslmode` but `disable`, as libpq does. Default: the
    /// connection string's, else the system's roots for `verify-ca` and `verify-full`. Read
    /// once, by [`build`](Self::build). Needs the `tls` feature (on by default): without
    /// it, `build` fails.
    #[must_use]
    pub fn ssl_root_cert(mut self, path: impl Into<PathBuf>) -> Self {
        self.config.tls.root_cert = Some(path.into());
        self
    }

    /// A client certificate (PEM chain, libpq's `sslcert`) and its private key (PEM,
    /// `sslkey`), sent when the server asks for one; override the connection string's.
    /// Default: none. Read once, by [`build`](Self::build). Needs the `tls` feature (on by
    /// default): without it, `build` fails.
    #[must_use]
    pub fn ssl_client_cert(mut self, cert: impl Into<PathBuf>, key: impl Into<PathBuf>) -> Self {
        self.config.tls.cert = Some(cert.into());
        self.config.tls.key = Some(key.into());
        self
    }

    /// The most connections the pool opens; at least 1. Default: 2 × CPU cores, at least 4.
    #[must_use]
    pub fn max_size(mut self, max_size: usize) -> Self {
        self.config.max_size = max_size;
        self
    }

    /// Connections opened by [`Db::connect`](crate::Db::connect) (which fails if it cannot
    /// open them) and kept open afterwards by the background task. Default: 0.
    #[must_use]
    pub fn min_connections(mut self, min: usize) -> Self {
        self.config.min_connections = min;
        self
    }

    /// How long a query waits for a free connection when all are in use, before failing
    /// with [`DbError::PoolTimeout`](crate::DbError::PoolTimeout). Default: 3 s.
    #[must_use]
    pub fn wait_timeout(mut self, timeout: Duration) -> Self {
        self.config.wait_timeout = timeout;
        self
    }

    /// How long opening a connection (TCP, TLS, authentication, session setup) may take
    /// before failing with [`DbError::ConnectTimeout`](crate::DbError::ConnectTimeout). Default: 3 s.
    #[must_use]
    pub fn connect_timeout(mut self, timeout: Duration) -> Self {
        self.config.connect_timeout = timeout;
        self
    }

    /// How long checking a pooled connection before reuse may take; a connection that
    /// fails the check is replaced. Default: 1 s.
    #[must_use]
    pub fn recycle_timeout(mut self, timeout: Duration) -> Self {
        self.config.recycle_timeout = timeout;
        self
    }

    /// PostgreSQL's `statement_timeout` for every connection; the client also gives up on a
    /// query [`CLIENT_TIMEOUT_MARGIN`] (1 s) later (within 100 ms after that), in case the
    /// server cannot answer at all, and discards that connection. `None` sets neither.
    /// Default: 30 s.
    #[must_use]
    pub fn statement_timeout(mut self, timeout: Option<Duration>) -> Self {
        self.config.statement_timeout = timeout;
        self
    }

    /// The `application_name` connections report (in `pg_stat_activity` and server logs).
    /// Default: the URL's, else [`DEFAULT_APPLICATION_NAME`].
    #[must_use]
    pub fn application_name(mut self, name: impl Into<String>) -> Self {
        self.config.application_name = Some(name.into());
        self
    }

    /// Idle connections are closed after this long (beyond `min_connections`, which are
    /// replaced) by the background task, which looks every quarter of the shorter of this
    /// and [`max_lifetime`](Self::max_lifetime), at most every second. Default: 10 min.
    #[must_use]
    pub fn idle_timeout(mut self, timeout: Duration) -> Self {
        self.config.idle_timeout = timeout;
        self
    }

    /// Connections are closed once this old, when next idle, by the same background task
    /// as [`idle_timeout`](Self::idle_timeout). Default: 30 min.
    #[must_use]
    pub fn max_lifetime(mut self, lifetime: Duration) -> Self {
        self.config.max_lifetime = lifetime;
        self
    }

    /// How long [`Db::check`](crate::Db::check) may take. Default: 1 s.
    #[must_use]
    pub fn check_timeout(mut self, timeout: Duration) -> Self {
        self.config.check_timeout = timeout;
        self
    }

    /// How long a [`Db::check`](crate::Db::check) result is reused, so frequent probes do
    /// not load the database. Default: 1 s.
    #[must_use]
    pub fn check_ttl(mut self, ttl: Duration) -> Self {
        self.config.check_ttl = ttl;
        self
    }

    /// How many prepared statements each connection keeps; beyond it the connection's
    /// cache is emptied, so generated SQL cannot grow it without bound. Default: 256.
    #[must_use]
    pub fn statement_cache_capacity(mut self, capacity: usize) -> Self {
        self.config.statement_cache_capacity = capacity;
        self
    }

    /// The `db_client_connection_pool_name` label of the pool metrics. Default: `default`.
    #[must_use]
    pub fn pool_name(mut self, name: impl Into<String>) -> Self {
        self.config.pool_name = name.into();
        self
    }

    /// The [`QueryTimer`] that times every query (slow thresholds, parameter logging,
    /// label capacity). Default: `QueryTimer::new("postgresql")`.
    #[must_use]
    pub fn timer(mut self, timer: QueryTimer) -> Self {
        self.config.timer = timer;
        self
    }

    /// Whether a slow read ([`Db`](crate::Db)'s, never a [`Tx`](crate::Tx)'s) has its plan
    /// captured with `EXPLAIN (FORMAT JSON)`, in the background, on another pooled
    /// connection, read-only and under [`explain_timeout`](Self::explain_timeout), at most
    /// once per query summary per [`explain_interval`](Self::explain_interval). Only a
    /// plain `SELECT` (or a `WITH` query of `SELECT`s) is explained, never a statement that
    /// writes or locks, never with `ANALYZE`, and only when a connection is free at once: a
    /// saturated pool skips it. On PostgreSQL 16 and later the plan is generic
    /// (`GENERIC_PLAN`, no parameter values sent); before, the query's parameters are
    /// copied (encoded) and sent with it.
    ///
    /// The plan's top node, total cost and estimated rows are logged (`slow query plan`,
    /// target `towerkit_db::explain`, WARN) after the slow-query line and kept as the
    /// label's [`LabelStats::plan`](towerkit_timing::LabelStats::plan) in
    /// [`Db::stats`](crate::Db::stats). Neither holds a parameter value. Default: off.
    #[must_use]
    pub fn explain_slow_queries(mut self, on: bool) -> Self {
        self.config.explain_slow_queries = on;
        self
    }

    /// At most one plan per query summary is captured per this interval; longer than
    /// zero. Default: 60 s.
    #[must_use]
    pub fn explain_interval(mut self, interval: Duration) -> Self {
        self.config.explain_interval = interval;
        self
    }

    /// The `statement_timeout` of the `EXPLAIN` (planning only, so it should be short); at
    /// least 1 ms. The client gives up [`CLIENT_TIMEOUT_MARGIN`] later and closes the
    /// connection. Default: 250 ms.
    #[must_use]
    pub fn explain_timeout(mut self, timeout: Duration) -> Self {
        self.config.explain_timeout = timeout;
        self
    }

    /// Whether each query's `db.query` span carries `db.query.text`: the SQL as written,
    /// with its `$n` placeholders (parameter values are never in a span). Off by default:
    /// a span then names the query by `db.query.summary` (`SELECT products`) and its
    /// operation and table only, since SQL text written with literals can hold data.
    #[must_use]
    pub fn trace_query_text(mut self, on: bool) -> Self {
        self.config.trace_query_text = on;
        self
    }

    /// The config, once the connection string is parsed and every setting checked: fails
    /// with [`ConfigError::MissingUrl`] without a `url` or `DATABASE_URL`,
    /// [`ConfigError::InvalidUrl`] for a string that does not parse, and
    /// [`ConfigError::Invalid`] naming the first setting out of range.
    pub fn build(self) -> Result<DbConfig, ConfigError> {
        let (pg, from_source) = match self.source {
            Source::Env => {
                let url = std::env::var(DATABASE_URL).map_err(|_| ConfigError::MissingUrl)?;
                parse(&url)?
            }
            Source::Url(ref url) => parse(url)?,
            Source::Pg(ref pg) => {
                let mode = SslMode::from_pg(pg.get_ssl_mode());
                let params = TlsParams {
                    mode: Some(mode),
                    ..TlsParams::default()
                };
                ((**pg).clone(), params)
            }
        };
        let tls = from_source.overridden_by(&self.config.tls);
        let mut pg = self.complete(pg)?;
        pg.ssl_mode(tls.mode.unwrap_or_default().negotiation());
        #[cfg(feature = "tls")]
        let connector = tls::rustls_config::client_config(&tls)?
            .map(tokio_postgres_rustls::MakeRustlsConnect::new);
        #[cfg(not(feature = "tls"))]
        without_tls_feature(&tls)?;
        Ok(DbConfig {
            pg,
            tls,
            #[cfg(feature = "tls")]
            connector,
            ..self.config
        })
    }

    /// Checks the settings and completes the connection config `pg`: `application_name` and
    /// `statement_timeout` for every session, and the connect timeout.
    fn complete(&self, pg: tokio_postgres::Config) -> Result<tokio_postgres::Config, ConfigError> {
        let invalid = |field, reason| Err(ConfigError::Invalid { field, reason });
        if self.config.max_size == 0 {
            return invalid("max_size", "must be at least 1");
        }
        if self.config.min_connections > self.config.max_size {
            return invalid("min_connections", "must not exceed max_size");
        }
        for (field, value) in [
            ("connect_timeout", self.config.connect_timeout),
            ("recycle_timeout", self.config.recycle_timeout),
            ("idle_timeout", self.config.idle_timeout),
            ("max_lifetime", self.config.max_lifetime),
            ("check_timeout", self.config.check_timeout),
        ] {
            if value.is_zero() {
                return invalid(field, "must be longer than zero");
            }
        }
        if self.config.explain_interval.is_zero() {
            return invalid("explain_interval", "must be longer than zero");
        }
        if self.config.explain_timeout.as_millis() == 0 {
            return invalid("explain_timeout", "must be at least 1 ms");
        }
        if self
            .config
            .statement_timeout
            .is_some_and(|t| t.as_millis() == 0)
        {
            return invalid("statement_timeout", "must be at least 1 ms, or None");
        }
        if pg.get_hosts().is_empty() {
            return invalid("url", "names no host");
        }
        let mut pg = pg;
        match (&self.config.application_name, pg.get_application_name()) {
            (Some(name), _) => {
                pg.application_name(name);
            }
            (None, None) => {
                pg.application_name(DEFAULT_APPLICATION_NAME);
            }
            (None, Some(_)) => {}
        }
        if let Some(timeout) = self.config.statement_timeout {
            let setting = format!("-c statement_timeout={}", timeout.as_millis());
            let options = match pg.get_options() {
                Some(existing) if !existing.is_empty() => format!("{existing} {setting}"),
                _ => setting,
            };
            pg.options(options);
        }
        pg.connect_timeout(self.config.connect_timeout);
        Ok(pg)
    }
}

/// Parses a connection string, taking the `ssl*` parameters tokio-postgres does not know
/// itself; the error names the problem, never the string.
fn parse(url: &str) -> Result<(tokio_postgres::Config, TlsParams), ConfigError> {
    let (rest, params) = tls::split_params(url)?;
    let pg = tokio_postgres::Config::from_str(&rest)
        .map_err(|e| ConfigError::InvalidUrl(e.to_string()))?;
    Ok((pg, params))
}

/// Without the `tls` feature, only `disable` and `prefer` (which stays plain) can work.
#[cfg(not(feature = "tls"))]
fn without_tls_feature(tls: &TlsParams) -> Result<(), ConfigError> {
    const REASON: &str = "needs the `tls` feature of towerkit-db";
    if !matches!(tls.mode, None | Some(SslMode::Disable | SslMode::Prefer)) {
        return Err(ConfigError::Invalid {
            field: "sslmode",
            reason: REASON,
        });
    }
    for (field, value) in [
        ("sslrootcert", &tls.root_cert),
        ("sslcert", &tls.cert),
        ("sslkey", &tls.key),
    ] {
        if value.is_some() {
            return Err(ConfigError::Invalid {
                field,
                reason: REASON,
            });
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn builder(url: &str) -> DbConfigBuilder {
        DbConfig::builder().url(url)
    }

    fn config(url: &str) -> DbConfig {
        DbConfig::from_url(url).unwrap()
    }

    #[test]
    fn statement_timeout_and_application_name_are_set_per_session() {
        let pg = config("postgres://u@localhost/db").pg;
        assert_eq!(pg.get_application_name(), Some(DEFAULT_APPLICATION_NAME));
        assert_eq!(pg.get_options(), Some("-c statement_timeout=30000"));
        assert_eq!(pg.get_connect_timeout(), Some(&Duration::from_secs(3)));
    }

    #[test]
    fn the_urls_application_name_and_options_are_kept() {
        let pg = config(
            "postgres://u@localhost/db?application_name=shop&options=-c%20search_path%3Dapp",
        )
        .pg;
        assert_eq!(pg.get_application_name(), Some("shop"));
        assert_eq!(
            pg.get_options(),
            Some("-c search_path=app -c statement_timeout=30000")
        );
        let pg = builder("postgres://u@localhost/db?application_name=shop")
            .application_name("api")
            .build()
            .unwrap()
            .pg;
        assert_eq!(pg.get_application_name(), Some("api"));
    }

    #[test]
    fn no_statement_timeout_sets_no_option() {
        let config = builder("postgres://u@localhost/db")
            .statement_timeout(None)
            .build()
            .unwrap();
        assert_eq!(config.pg.get_options(), None);
        assert_eq!(config.client_timeout(), None);
    }

    #[test]
    fn defaults_are_the_documented_production_ones() {
        let config = config("postgres://u@localhost/db");
        assert_eq!(config.min_connections, 0);
        assert_eq!(config.wait_timeout, Duration::from_secs(3));
        assert_eq!(config.connect_timeout, Duration::from_secs(3));
        assert_eq!(config.recycle_timeout, Duration::from_secs(1));
        assert_eq!(config.statement_timeout, Some(Duration::from_secs(30)));
        assert_eq!(config.client_timeout(), Some(Duration::from_secs(31)));
        assert_eq!(config.idle_timeout, Duration::from_secs(600));
        assert_eq!(config.max_lifetime, Duration::from_secs(1800));
        assert_eq!(
            (config.check_timeout, config.check_ttl),
            (Duration::from_secs(1), Duration::from_secs(1))
        );
        assert_eq!(config.statement_cache_capacity, 256);
        assert_eq!(config.pool_name, "default");
        assert!(!config.explain_slow_queries);
        assert_eq!(
            (config.explain_interval, config.explain_timeout),
            (Duration::from_secs(60), Duration::from_millis(250))
        );
    }

    #[test]
    fn pool_size_defaults_from_cores() {
        let cores = std::thread::available_parallelism().map_or(1, usize::from);
        assert_eq!(
            config("postgres://u@localhost/db").get_max_size(),
            (cores * 2).max(4)
        );
    }

    #[test]
    fn bad_settings_are_typed_errors() {
        let check = |builder: DbConfigBuilder, field: &str| match builder.build() {
            Err(error @ ConfigError::Invalid { field: f, .. }) => {
                assert_eq!(f, field);
                assert!(
                    error
                        .to_string()
                        .starts_with(&format!("invalid `{field}`: ")),
                    "{error}"
                );
            }
            other => panic!("expected an invalid {field}, got {other:?}"),
        };
        check(builder("postgres://u@localhost/db").max_size(0), "max_size");
        check(
            builder("postgres://u@localhost/db")
                .max_size(2)
                .min_connections(3),
            "min_connections",
        );
        check(
            builder("postgres://u@localhost/db").connect_timeout(Duration::ZERO),
            "connect_timeout",
        );
        check(
            builder("postgres://u@localhost/db").statement_timeout(Some(Duration::from_micros(10))),
            "statement_timeout",
        );
        check(
            builder("postgres://u@localhost/db").explain_interval(Duration::ZERO),
            "explain_interval",
        );
        check(
            builder("postgres://u@localhost/db").explain_timeout(Duration::from_micros(500)),
            "explain_timeout",
        );
        check(builder("user=u dbname=db"), "url");
    }

    #[test]
    fn a_bad_url_does_not_echo_the_password() {
        let err = DbConfig::from_url("postgres://u:hunter2@localhost:notaport/db").unwrap_err();
        assert!(matches!(err, ConfigError::InvalidUrl(_)), "{err:?}");
        assert!(err.to_string().starts_with("invalid `url`: "), "{err}");
        assert!(!err.to_string().contains("hunter2"), "{err}");
    }

    #[test]
    fn debug_output_redacts_the_password() {
        let config = config("postgres://u:hunter2@localhost/db");
        assert!(!format!("{config:?}").contains("hunter2"));
        let builder = builder("postgres://u:hunter2@localhost/db");
        assert!(!format!("{builder:?}").contains("hunter2"), "{builder:?}");
    }

    #[test]
    fn a_driver_config_is_completed_like_a_url() {
        let pg = tokio_postgres::Config::from_str("postgres://u@localhost/db").unwrap();
        let config = DbConfig::builder().pg_config(pg).build().unwrap();
        assert_eq!(
            config.pg.get_application_name(),
            Some(DEFAULT_APPLICATION_NAME)
        );
        assert_eq!(config.pg.get_options(), Some("-c statement_timeout=30000"));
    }
}
