//! The health probes: [`Db::check`], the axum handlers [`live`] and [`ready`], and
//! [`Db::health_routes`] serving both.

use std::time::Instant;

use axum::Router;
use axum::extract::State;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use deadpool_postgres::Timeouts;
use http::StatusCode;
use serde_json::json;

use crate::db::Db;
use crate::error::DbError;
use crate::health::{Health, HealthStatus, health_response};
use crate::pool::pool_error;

/// `GET /health/live`: the process is up. Never touches the database, so a database outage
/// does not get the service restarted.
pub async fn live() -> Response {
    health_response(StatusCode::OK, &json!({"status": "pass"}))
}

/// `GET /health/ready`: [`Db::check`] as `application/health+json`, 200 or 503.
pub async fn ready(State(db): State<Db>) -> Response {
    db.check().await.into_response()
}

impl Db {
    /// A router with `/health/live` ([`live`]) and `/health/ready` ([`ready`]) for this
    /// database, to merge into the application's router.
    pub fn health_routes<S: Clone + Send + Sync + 'static>(&self) -> Router<S> {
        Router::new()
            .route("/health/live", get(live))
            .route("/health/ready", get(ready))
            .with_state(self.clone())
    }

    /// Checks the database: `SELECT 1` on a pooled connection within the check timeout
    /// (default 1 s), and the pool's saturation. The result is reused for the check TTL
    /// (default 1 s), and concurrent callers share one check, so probes cannot load the
    /// database.
    pub async fn check(&self) -> Health {
        let inner = &self.inner;
        let mut cached = inner.health.0.lock().await;
        if let Some(health) = cached.as_ref()
            && health.checked_at.elapsed() < inner.config.check_ttl
        {
            return health.clone();
        }
        let health = self.check_now().await;
        *cached = Some(health.clone());
        health
    }

    async fn check_now(&self) -> Health {
        let inner = &self.inner;
        let timeout = inner.config.check_timeout;
        let timeouts = Timeouts {
            wait: Some(timeout),
            create: Some(timeout),
            recycle: Some(timeout),
        };
        let start = Instant::now();
        let attempt = tokio::time::timeout(timeout, async {
            let conn = inner
                .pool
                .timeout_get(&timeouts)
                .await
                .map_err(|e| pool_error(e, &inner.pool))?;
            conn.simple_query("SELECT 1")
                .await
                .map_err(|source| DbError::Query {
                    summary: "SELECT".into(),
                    source,
                })
        })
        .await;
        let elapsed = start.elapsed();
        let (response, response_time, output) = match attempt {
            Ok(Ok(_)) => (HealthStatus::Pass, Some(elapsed), None),
            Ok(Err(DbError::PoolTimeout(_))) => (
                HealthStatus::Warn,
                None,
                Some("no connection became free within the check timeout"),
            ),
            Ok(Err(DbError::ConnectTimeout(_))) | Err(_) => {
                (HealthStatus::Fail, None, Some("timed out"))
            }
            Ok(Err(DbError::Connect(_))) => (HealthStatus::Fail, None, Some("cannot connect")),
            Ok(Err(DbError::Tls { .. })) => {
                (HealthStatus::Fail, None, Some("cannot connect over TLS"))
            }
            Ok(Err(_)) => (HealthStatus::Fail, None, Some("query failed")),
        };
        let pool = self.pool_status();
        let connections = if pool.is_saturated() {
            HealthStatus::Warn
        } else {
            HealthStatus::Pass
        };
        Health {
            status: response.max(connections),
            response,
            response_time,
            output,
            connections,
            pool,
            checked_at: Instant::now(),
        }
    }
}

#[cfg(test)]
mod tests {
    use http::header;

    use super::*;
    use crate::health::HEALTH_JSON;

    #[tokio::test]
    async fn live_answers_pass_as_health_json() {
        let response = live().await;
        assert_eq!(response.status(), StatusCode::OK);
        assert_eq!(response.headers()[header::CONTENT_TYPE], HEALTH_JSON);
        assert_eq!(response.headers()[header::CACHE_CONTROL], "no-store");
    }
}
