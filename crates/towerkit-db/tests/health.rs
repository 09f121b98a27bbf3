//! Health checks against the shared PostgreSQL and against an address where nothing
//! listens.

mod common;

use std::time::Duration;

use axum::Router;
use axum::body::Body;
use common::{builder, config, dead_port};
use http::{Request, StatusCode};
use http_body_util::BodyExt;
use serde_json::Value;
use tower::ServiceExt;
use towerkit_db::{Db, DbConfig, DbError, HEALTH_JSON, HealthStatus};

async fn get(app: Router, path: &str) -> (StatusCode, String, Value) {
    let response = app
        .oneshot(Request::get(path).body(Body::empty()).unwrap())
        .await
        .unwrap();
    let status = response.status();
    let content_type = response.headers()["content-type"]
        .to_str()
        .unwrap()
        .to_owned();
    let body = response.into_body().collect().await.unwrap().to_bytes();
    (status, content_type, serde_json::from_slice(&body).unwrap())
}

/// A pool pointed at a local port where nothing listens.
async fn unreachable_db() -> Db {
    let url = format!(
        "postgres://postgres:hunter2@127.0.0.1:{}/postgres",
        dead_port()
    );
    Db::connect(
        DbConfig::builder()
            .url(&url)
            .check_timeout(Duration::from_secs(2))
            .build()
            .unwrap(),
    )
    .await
    .unwrap()
}

#[tokio::test]
async fn ready_passes_against_a_live_database() {
    let db = Db::connect(config()).await.unwrap();
    let health = db.check().await;
    assert_eq!(health.status, HealthStatus::Pass, "{health:?}");
    assert!(health.response_time.is_some());
    let (status, content_type, body) = get(db.health_routes(), "/health/ready").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(content_type, HEALTH_JSON);
    assert_eq!(body["status"], "pass");
    assert_eq!(body["checks"]["postgres:responseTime"][0]["status"], "pass");
    assert_eq!(
        body["checks"]["postgres:responseTime"][0]["observedUnit"],
        "ms"
    );
    assert_eq!(body["checks"]["postgres:connections"][0]["status"], "pass");
}

#[tokio::test]
async fn ready_fails_with_503_when_the_database_is_unreachable() {
    let db = unreachable_db().await;
    let health = db.check().await;
    assert_eq!(health.status, HealthStatus::Fail);
    assert_eq!(health.output, Some("cannot connect"));
    let (status, content_type, body) = get(db.health_routes(), "/health/ready").await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(content_type, HEALTH_JSON);
    assert_eq!(body["status"], "fail");
    let text = body.to_string();
    assert!(
        !text.contains("hunter2") && !text.contains("127.0.0.1"),
        "{text}"
    );
}

#[tokio::test]
async fn live_passes_without_touching_the_database() {
    let db = unreachable_db().await;
    let (status, content_type, body) = get(db.health_routes(), "/health/live").await;
    assert_eq!(
        (status, content_type.as_str()),
        (StatusCode::OK, HEALTH_JSON)
    );
    assert_eq!(body["status"], "pass");
    // A database check would have failed (nothing listens there): live did not make one.
    assert_eq!(db.pool_status().size, 0);
}

#[tokio::test]
async fn a_check_is_reused_for_its_ttl() {
    let db = Db::connect(
        builder()
            .check_ttl(Duration::from_secs(60))
            .build()
            .unwrap(),
    )
    .await
    .unwrap();
    let first = db.check().await;
    let second = db.check().await;
    assert_eq!(
        first.checked_at, second.checked_at,
        "the second call reuses the first check"
    );
    let db = Db::connect(builder().check_ttl(Duration::ZERO).build().unwrap())
        .await
        .unwrap();
    let first = db.check().await;
    let second = db.check().await;
    assert_ne!(
        first.checked_at, second.checked_at,
        "with no TTL every call checks"
    );
}

#[tokio::test]
async fn concurrent_checks_share_one() {
    let db = Db::connect(
        builder()
            .check_ttl(Duration::from_secs(60))
            .build()
            .unwrap(),
    )
    .await
    .unwrap();
    let checks: Vec<_> = (0..5)
        .map(|_| {
            let db = db.clone();
            tokio::spawn(async move { db.check().await.checked_at })
        })
        .collect();
    let mut times = Vec::new();
    for check in checks {
        times.push(check.await.unwrap());
    }
    assert!(times.iter().all(|&t| t == times[0]), "{times:?}");
}

#[tokio::test]
async fn a_saturated_pool_warns_but_stays_ready() {
    let db = Db::connect(
        builder()
            .max_size(1)
            .check_timeout(Duration::from_millis(200))
            .build()
            .unwrap(),
    )
    .await
    .unwrap();
    let (held, release) = tokio::sync::oneshot::channel::<()>();
    let (started, running) = tokio::sync::oneshot::channel::<()>();
    let holder = db.clone();
    let busy = tokio::spawn(async move {
        holder
            .transaction(|tx| async move {
                tx.query("SELECT 1", &[]).await?;
                let _ = started.send(());
                let _ = release.await;
                Ok::<_, DbError>(())
            })
            .await
    });
    running.await.unwrap();
    let health = db.check().await;
    assert_eq!(health.status, HealthStatus::Warn, "{health:?}");
    assert_eq!(health.connections, HealthStatus::Warn);
    assert_eq!(health.pool.used, 1);
    assert_eq!(health.http_status(), StatusCode::OK);
    drop(held);
    busy.await.unwrap().unwrap();
}
