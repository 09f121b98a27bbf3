//! The crate's errors: [`ConfigError`], a configuration that cannot work, found when a
//! [`DbConfig`](crate::DbConfig) is built; and [`DbError`], what failed at run time, typed,
//! with its HTTP response, which says nothing about SQL, data or credentials.

use std::time::Duration;

use axum::response::{IntoResponse, Response};
use http::{HeaderValue, StatusCode, header};
use tokio_postgres::error::SqlState;
use towerkit_json::Problem;

use crate::tls::TlsFailure;

/// A configuration that cannot work, returned by
/// [`DbConfigBuilder::build`](crate::DbConfigBuilder::build),
/// [`DbConfig::from_url`](crate::DbConfig::from_url) and
/// [`DbConfig::from_env`](crate::DbConfig::from_env). Its messages never repeat the
/// connection string, which may hold a password.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ConfigError {
    /// No `url` was given and [`DATABASE_URL`](crate::DATABASE_URL) is not set (or not
    /// Unicode).
    #[error("missing `url`: `DATABASE_URL` is not set")]
    MissingUrl,
    /// The connection string could not be parsed.
    #[error("invalid `url`: {0}")]
    InvalidUrl(String),
    /// A setting is out of range.
    #[error("invalid `{field}`: {reason}")]
    Invalid {
        /// The setting.
        field: &'static str,
        /// What is wrong with it.
        reason: &'static str,
    },
    /// A TLS setting cannot be used: a certificate or key file (`sslrootcert`, `sslcert`,
    /// `sslkey`) that cannot be read or parsed, or no system root certificates to verify
    /// with. The reason names the file, never the connection string.
    #[error("invalid `{field}`: {reason}")]
    Tls {
        /// The setting (`sslrootcert`, `sslcert`, `sslkey`).
        field: &'static str,
        /// What is wrong with it.
        reason: String,
    },
}

/// An error from [`Db`](crate::Db) or [`Tx`](crate::Tx).
///
/// Its `Display` is for logs: it names the query by its summary (`SELECT products`), never
/// its parameters. Its [`IntoResponse`] is for clients: an `application/problem+json` 503
/// (with `Retry-After`) when the database is unavailable or overloaded, 500 otherwise, with
/// neither SQL nor database messages.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum DbError {
    /// The configuration cannot work ([`Db::from_env`](crate::Db::from_env) builds one).
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// [`Db::connect`](crate::Db::connect) was not called on a tokio runtime.
    #[error("`Db::connect` must run on a tokio runtime")]
    NoRuntime,
    /// No connection became free within the wait timeout: the pool is exhausted.
    #[error("no database connection became free within {0:?}")]
    PoolTimeout(Duration),
    /// Opening a connection took longer than the connect timeout.
    #[error("connecting to the database took longer than {0:?}")]
    ConnectTimeout(Duration),
    /// Opening a connection failed (refused, authentication, ...).
    #[error("cannot connect to the database: {}", connect_detail(.0))]
    Connect(#[source] tokio_postgres::Error),
    /// Opening a connection failed in TLS: under `sslmode=verify-ca`/`verify-full` a
    /// certificate from an unknown CA or for another host name, or a server without TLS
    /// where the `sslmode` requires it. Never downgraded to a plain connection.
    #[error("cannot connect to the database over TLS: {failure} ({source})")]
    Tls {
        /// Why, read from the driver's error.
        failure: TlsFailure,
        /// The driver's error.
        #[source]
        source: tokio_postgres::Error,
    },
    /// The pool was closed.
    #[error("the database pool is closed")]
    Closed,
    /// A query failed; [`sqlstate`](Self::sqlstate) says why when the server answered.
    #[error("query `{summary}` failed{}: {source}", sqlstate_suffix(source))]
    Query {
        /// The query's summary or name.
        summary: String,
        /// The driver's error.
        #[source]
        source: tokio_postgres::Error,
    },
    /// The server did not answer a query within the statement timeout plus a margin; the
    /// connection was discarded.
    #[error("query `{summary}` got no answer within {timeout:?}")]
    QueryTimeout {
        /// The query's summary or name.
        summary: String,
        /// The client-side timeout.
        timeout: Duration,
    },
    /// `query_one` found no row, or `query_one`/`query_opt` found more than one.
    #[error("query `{summary}` returned {found} where at most one row was expected")]
    RowCount {
        /// The query's summary or name.
        summary: String,
        /// `no row` or `more than one row`.
        found: &'static str,
    },
    /// A [`Tx`](crate::Tx) was used after its transaction ended.
    #[error("the transaction has already ended")]
    TransactionFinished,
    /// The [`Tx`](crate::Tx) handle outlived the closure given to
    /// [`Db::transaction`](crate::Db::transaction) (moved into a task or returned), so the
    /// transaction was rolled back instead of committed.
    #[error("the transaction handle escaped its closure; the transaction was rolled back")]
    TransactionEscaped,
}

/// The server's own message when it refused the connection (tokio-postgres' `Display` says
/// only `db error`): it names the user, database and address, never the password.
fn connect_detail(error: &tokio_postgres::Error) -> String {
    match error.as_db_error() {
        Some(db) => format!("{db} (SQLSTATE {})", db.code().code()),
        None => error.to_string(),
    }
}

fn sqlstate_suffix(error: &tokio_postgres::Error) -> String {
    error
        .code()
        .map(|code| format!(" with SQLSTATE {}", code.code()))
        .unwrap_or_default()
}

impl DbError {
    /// A connect error of the driver: [`DbError::Tls`] when TLS failed, else
    /// [`DbError::Connect`].
    pub(crate) fn connect(source: tokio_postgres::Error) -> Self {
        match TlsFailure::of(&source) {
            Some(failure) => Self::Tls { failure, source },
            None => Self::Connect(source),
        }
    }

    /// The SQLSTATE of a query the server rejected.
    pub fn sqlstate(&self) -> Option<&SqlState> {
        match self {
            Self::Query { source, .. } => source.code(),
            _ => None,
        }
    }

    /// Whether the database is unavailable or overloaded (no connection, connection lost,
    /// server shutting down, statement timeout, serialization failure, deadlock): the
    /// request may succeed if retried later. These answer 503.
    pub fn is_unavailable(&self) -> bool {
        match self {
            Self::PoolTimeout(_)
            | Self::ConnectTimeout(_)
            | Self::Connect(_)
            | Self::Tls { .. }
            | Self::Closed
            | Self::QueryTimeout { .. } => true,
            Self::Query { source, .. } => {
                // The connection was lost: closed, or an I/O error on its socket.
                let io = std::error::Error::source(source)
                    .is_some_and(|cause| cause.is::<std::io::Error>());
                if source.is_closed() || io {
                    return true;
                }
                let Some(code) = source.code() else {
                    return false;
                };
                let code = code.code();
                code.starts_with("08")
                    || matches!(
                        code,
                        "57P01" | "57P02" | "57P03" | "53300" | "57014" | "40001" | "40P01"
                    )
            }
            _ => false,
        }
    }

    /// The status of this error's response: 503 when [`is_unavailable`](Self::is_unavailable),
    /// else 500.
    pub fn status(&self) -> StatusCode {
        if self.is_unavailable() {
            StatusCode::SERVICE_UNAVAILABLE
        } else {
            StatusCode::INTERNAL_SERVER_ERROR
        }
    }

    /// The problem document sent to clients: a status and a generic detail, nothing from
    /// the query or the server's message.
    pub fn problem(&self) -> Problem {
        let detail = if self.is_unavailable() {
            "The database is unavailable or overloaded; try again shortly."
        } else {
            "A database operation failed."
        };
        Problem::new(self.status()).with_detail(detail)
    }
}

impl IntoResponse for DbError {
    /// Logs the error at ERROR (target `towerkit_db`) and answers with [`DbError::problem`];
    /// a 503 carries `Retry-After: 1`.
    fn into_response(self) -> Response {
        tracing::error!(target: "towerkit_db", error = %self, "database error");
        let mut response = self.problem().into_response();
        if self.is_unavailable() {
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
        }
        response
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pool_errors_are_unavailable() {
        for error in [
            DbError::PoolTimeout(Duration::from_secs(1)),
            DbError::ConnectTimeout(Duration::from_secs(1)),
            DbError::Closed,
            DbError::QueryTimeout {
                summary: "SELECT t".into(),
                timeout: Duration::from_secs(1),
            },
        ] {
            assert_eq!(error.status(), StatusCode::SERVICE_UNAVAILABLE, "{error}");
        }
    }

    #[test]
    fn programming_errors_are_500() {
        let error = DbError::RowCount {
            summary: "SELECT t".into(),
            found: "no row",
        };
        assert_eq!(error.status(), StatusCode::INTERNAL_SERVER_ERROR);
        assert_eq!(
            DbError::TransactionEscaped.status(),
            StatusCode::INTERNAL_SERVER_ERROR
        );
    }

    #[test]
    fn response_is_problem_json_with_retry_after_when_unavailable() {
        let response = DbError::PoolTimeout(Duration::from_secs(3)).into_response();
        assert_eq!(response.status(), StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(
            response.headers()[header::CONTENT_TYPE],
            "application/problem+json"
        );
        assert_eq!(response.headers()[header::RETRY_AFTER], "1");
        let response = DbError::TransactionFinished.into_response();
        assert_eq!(response.status(), StatusCode::INTERNAL_SERVER_ERROR);
        assert!(response.headers().get(header::RETRY_AFTER).is_none());
    }
}
