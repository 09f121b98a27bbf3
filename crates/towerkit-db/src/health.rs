//! The health document: what [`Db::check`](crate::Db::check) found ([`Health`]), as
//! `application/health+json` (draft-inadarei-api-health-check).

use std::time::{Duration, Instant};

use axum::response::{IntoResponse, Response};
use http::{HeaderValue, StatusCode, header};
use serde_json::{Value, json};

use crate::pool::PoolStatus;

/// The media type of health responses.
pub const HEALTH_JSON: &str = "application/health+json";

/// A check's verdict, in increasing order of badness.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum HealthStatus {
    /// Healthy.
    Pass,
    /// Healthy, with a concern (the pool is saturated).
    Warn,
    /// Unhealthy.
    Fail,
}

impl HealthStatus {
    /// `pass`, `warn` or `fail`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Pass => "pass",
            Self::Warn => "warn",
            Self::Fail => "fail",
        }
    }
}

/// The result of [`Db::check`](crate::Db::check).
#[derive(Debug, Clone)]
pub struct Health {
    /// The overall verdict: the worse of the two checks.
    pub status: HealthStatus,
    /// `postgres:responseTime`: `SELECT 1` answered (pass), could not get a connection
    /// because all are busy (warn), or failed or timed out (fail).
    pub response: HealthStatus,
    /// How long `SELECT 1` took, when it answered.
    pub response_time: Option<Duration>,
    /// What went wrong, in words safe for a public endpoint (no host names, no SQL).
    pub output: Option<&'static str>,
    /// `postgres:connections`: warn when the pool is saturated.
    pub connections: HealthStatus,
    /// The pool when checked.
    pub pool: PoolStatus,
    /// When the check ran (a cached result keeps its time).
    pub checked_at: Instant,
}

impl Health {
    /// 200 for pass and warn, 503 for fail.
    pub fn http_status(&self) -> StatusCode {
        match self.status {
            HealthStatus::Pass | HealthStatus::Warn => StatusCode::OK,
            HealthStatus::Fail => StatusCode::SERVICE_UNAVAILABLE,
        }
    }

    /// The `application/health+json` document.
    pub fn to_json(&self) -> Value {
        let mut response = json!({
            "componentType": "datastore",
            "status": self.response.as_str(),
        });
        if let Some(time) = self.response_time {
            response["observedValue"] = json!(time.as_micros() as f64 / 1000.0);
            response["observedUnit"] = json!("ms");
        }
        if let Some(output) = self.output {
            response["output"] = json!(output);
        }
        let mut connections = json!({
            "componentType": "datastore",
            "observedValue": self.pool.used,
            "observedUnit": "connections",
            "status": self.connections.as_str(),
        });
        if self.connections != HealthStatus::Pass {
            connections["output"] = json!(format!(
                "{} of {} connections in use, {} requests waiting",
                self.pool.used, self.pool.max, self.pool.waiting
            ));
        }
        json!({
            "status": self.status.as_str(),
            "checks": {
                "postgres:responseTime": [response],
                "postgres:connections": [connections],
            },
        })
    }
}

impl IntoResponse for Health {
    fn into_response(self) -> Response {
        health_response(self.http_status(), &self.to_json())
    }
}

/// The last check, shared by concurrent callers.
#[derive(Debug, Default)]
pub(crate) struct HealthCache(pub(crate) tokio::sync::Mutex<Option<Health>>);

/// A health document as a response: its status, `application/health+json`, never stored.
pub(crate) fn health_response(status: StatusCode, body: &Value) -> Response {
    let mut response = (status, body.to_string()).into_response();
    let headers = response.headers_mut();
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(HEALTH_JSON));
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    fn health(response: HealthStatus, connections: HealthStatus) -> Health {
        Health {
            status: response.max(connections),
            response,
            response_time: Some(Duration::from_micros(1500)),
            output: None,
            connections,
            pool: PoolStatus {
                max: 4,
                size: 2,
                idle: 1,
                used: 1,
                waiting: 0,
            },
            checked_at: Instant::now(),
        }
    }

    #[test]
    fn pass_and_warn_answer_200_and_fail_503() {
        assert_eq!(
            health(HealthStatus::Pass, HealthStatus::Pass).http_status(),
            StatusCode::OK
        );
        assert_eq!(
            health(HealthStatus::Pass, HealthStatus::Warn).http_status(),
            StatusCode::OK
        );
        assert_eq!(
            health(HealthStatus::Fail, HealthStatus::Pass).http_status(),
            StatusCode::SERVICE_UNAVAILABLE
        );
    }

    #[test]
    fn document_has_the_two_checks() {
        let document = health(HealthStatus::Pass, HealthStatus::Warn).to_json();
        assert_eq!(document["status"], "warn");
        let response = &document["checks"]["postgres:responseTime"][0];
        assert_eq!(response["status"], "pass");
        assert_eq!(response["observedValue"], 1.5);
        assert_eq!(response["observedUnit"], "ms");
        let connections = &document["checks"]["postgres:connections"][0];
        assert_eq!(connections["status"], "warn");
        assert_eq!(connections["observedValue"], 1);
        assert_eq!(
            connections["output"],
            "1 of 4 connections in use, 0 requests waiting"
        );
    }
}
