//! Faults: an exhausted pool, a server that never answers, a refused connection, a
//! PostgreSQL restart (on a throwaway cluster), and the pool's upkeep.

mod common;

use std::time::Duration;

use axum::response::IntoResponse;
use common::{backend_pid, builder, dead_port, eventually, raw_client, unique};
use http::StatusCode;
use http_body_util::BodyExt;
use tokio::net::TcpListener;
use towerkit_db::{Db, DbConfig, DbError, HealthStatus};
use towerkit_test_support::servers::Postgres;
use towerkit_test_support::{Metrics, Value};

/// Generous upper bound for "fails fast": far above every configured timeout, far below a
/// hang.
const NO_HANG: Duration = Duration::from_secs(10);

#[tokio::test]
async fn an_exhausted_pool_returns_a_pool_timeout() {
    let db = Db::connect(
        builder()
            .max_size(1)
            .wait_timeout(Duration::from_millis(100))
            .build()
            .unwrap(),
    )
    .await
    .unwrap();
    let held = db.pool().get().await.unwrap();
    let result = tokio::time::timeout(NO_HANG, db.query("SELECT 1", &[]))
        .await
        .expect("no hang");
    match result {
        Err(error @ DbError::PoolTimeout(waited)) => {
            assert_eq!(waited, Duration::from_millis(100));
            assert_eq!(error.status(), StatusCode::SERVICE_UNAVAILABLE);
        }
        other => panic!("expected a pool timeout, got {other:?}"),
    }
    drop(held);
    assert!(db.query("SELECT 1", &[]).await.is_ok());
}

#[tokio::test]
async fn a_server_that_accepts_but_never_answers_times_out_on_connect() {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    // Accept connections and hold them open without a byte in reply.
    let silent = tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((socket, _)) = listener.accept().await {
            held.push(socket);
        }
    });
    let url = format!("postgres://postgres@127.0.0.1:{port}/postgres");
    let db = Db::connect(
        DbConfig::builder()
            .url(&url)
            .connect_timeout(Duration::from_millis(200))
            .build()
            .unwrap(),
    )
    .await
    .unwrap();
    let result = tokio::time::timeout(NO_HANG, db.query("SELECT 1", &[]))
        .await
        .expect("no hang");
    assert!(
        matches!(result, Err(DbError::ConnectTimeout(t)) if t == Duration::from_millis(200)),
        "{result:?}"
    );
    silent.abort();
}

#[tokio::test]
async fn a_refused_connection_is_a_503_that_names_no_credentials() {
    let url = format!("postgres://app:hunter2@127.0.0.1:{}/shop", dead_port());
    let db = Db::connect(DbConfig::from_url(&url).unwrap())
        .await
        .unwrap();
    let error = tokio::time::timeout(NO_HANG, db.query("SELECT 1", &[]))
        .await
        .expect("no hang")
        .unwrap_err();
    assert!(matches!(error, DbError::Connect(_)), "{error:?}");
    assert!(!error.to_string().contains("hunter2"), "{error}");
    let response = error.into_response();
    assert_eq!(response.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(response.headers()["retry-after"], "1");
    let body = String::from_utf8(
        response
            .into_body()
            .collect()
            .await
            .unwrap()
            .to_bytes()
            .to_vec(),
    )
    .unwrap();
    for leak in ["hunter2", "app", "shop", "127.0.0.1", "SELECT"] {
        assert!(!body.contains(leak), "{leak:?} in {body}");
    }
}

#[tokio::test]
async fn warm_up_opens_the_minimum_connections_or_fails() {
    let db = Db::connect(builder().max_size(4).min_connections(3).build().unwrap())
        .await
        .unwrap();
    assert_eq!(db.pool_status().size, 3);
    let url = format!("postgres://postgres@127.0.0.1:{}/postgres", dead_port());
    let result = Db::connect(
        DbConfig::builder()
            .url(&url)
            .min_connections(1)
            .build()
            .unwrap(),
    )
    .await;
    assert!(matches!(result, Err(DbError::Connect(_))), "{result:?}");
}

/// The server pids of the pool's connections, seen from outside the pool.
async fn pool_pids(application_name: &str) -> Vec<i32> {
    let rows = raw_client()
        .await
        .query(
            "SELECT pid FROM pg_stat_activity WHERE application_name = $1 ORDER BY pid",
            &[&application_name],
        )
        .await
        .unwrap();
    rows.iter().map(|row| row.get(0)).collect()
}

#[tokio::test]
async fn idle_connections_are_closed_in_the_background() {
    let name = unique("idle");
    let _db = Db::connect(
        builder()
            .application_name(&name)
            .min_connections(1)
            .idle_timeout(Duration::from_millis(200))
            .build()
            .unwrap(),
    )
    .await
    .unwrap();
    assert_eq!(pool_pids(&name).await.len(), 1);
    // No query runs: the upkeep task alone closes the idle connection and opens a new one
    // to keep the minimum.
    let first = pool_pids(&name).await;
    let replaced = eventually(Duration::from_secs(5), || async {
        let now = pool_pids(&name).await;
        (now.len() == 1 && now != first).then_some(now)
    })
    .await;
    assert!(
        replaced.is_some(),
        "the idle connection {first:?} was never replaced"
    );
}

#[tokio::test]
async fn idle_connections_beyond_the_minimum_are_not_reopened() {
    let name = unique("idle_zero");
    let db = Db::connect(
        builder()
            .application_name(&name)
            .idle_timeout(Duration::from_millis(200))
            .build()
            .unwrap(),
    )
    .await
    .unwrap();
    db.query("SELECT 1", &[]).await.unwrap();
    assert_eq!(db.pool_status().size, 1);
    let closed = eventually(Duration::from_secs(5), || async {
        (db.pool_status().size == 0).then_some(())
    })
    .await;
    assert!(closed.is_some(), "the idle connection was never closed");
    let gone = eventually(Duration::from_secs(5), || async {
        pool_pids(&name).await.is_empty().then_some(())
    })
    .await;
    assert!(gone.is_some(), "the server still sees the connection");
}

#[tokio::test]
async fn connections_are_replaced_after_their_lifetime_even_when_busy() {
    let db = Db::connect(
        builder()
            .max_size(1)
            .max_lifetime(Duration::from_millis(300))
            .build()
            .unwrap(),
    )
    .await
    .unwrap();
    let first = backend_pid(&db).await;
    // Query without pause: the connection is never idle for long, yet it is replaced.
    let replaced = eventually(Duration::from_secs(5), || async {
        let now = backend_pid(&db).await;
        (now != first).then_some(now)
    })
    .await;
    assert!(replaced.is_some(), "the old connection was never replaced");
}

#[tokio::test]
async fn dropping_the_last_db_closes_its_connections() {
    let name = unique("dropped");
    let db = Db::connect(
        builder()
            .application_name(&name)
            .min_connections(2)
            .build()
            .unwrap(),
    )
    .await
    .unwrap();
    let clone = db.clone();
    drop(db);
    clone.query("SELECT 1", &[]).await.unwrap();
    assert_eq!(pool_pids(&name).await.len(), 2, "a clone keeps the pool");
    drop(clone);
    let closed = eventually(Duration::from_secs(5), || async {
        pool_pids(&name).await.is_empty().then_some(())
    })
    .await;
    assert!(
        closed.is_some(),
        "connections stayed open after the last Db was dropped"
    );
}

#[tokio::test]
async fn pool_gauges_and_checkout_time_are_recorded() {
    let metrics = Metrics::capture();
    let db = Db::connect(builder().max_size(3).pool_name("catalog").build().unwrap())
        .await
        .unwrap();
    db.query("SELECT 1", &[]).await.unwrap();
    let held = db.pool().get().await.unwrap();
    db.record_pool_metrics();
    // One snapshot: reading gauges resets them.
    let recorded = metrics.all();
    let gauge = |name: &str, state: Option<&str>| {
        recorded.iter().find_map(|(n, labels, value)| {
            let pool = labels
                .iter()
                .any(|(k, v)| k == "db_client_connection_pool_name" && v == "catalog");
            let state_matches = state.is_none_or(|s| {
                labels
                    .iter()
                    .any(|(k, v)| k == "db_client_connection_state" && v == s)
            });
            match value {
                Value::Gauge(g) if n == name && pool && state_matches => Some(*g),
                _ => None,
            }
        })
    };
    assert_eq!(
        gauge(towerkit_db::metrics::CONNECTIONS, Some("used")),
        Some(1.0)
    );
    assert_eq!(
        gauge(towerkit_db::metrics::CONNECTIONS, Some("idle")),
        Some(0.0)
    );
    assert_eq!(gauge(towerkit_db::metrics::CONNECTION_MAX, None), Some(3.0));
    assert_eq!(
        gauge(towerkit_db::metrics::CONNECTION_PENDING_REQUESTS, None),
        Some(0.0)
    );
    let waits = metrics.histogram(
        towerkit_db::metrics::CONNECTION_WAIT_TIME,
        &[("db_client_connection_pool_name", "catalog")],
    );
    assert_eq!(waits.len(), 1);
    drop(held);
}

/// Sends `signal` (`STOP`, `CONT`) to a server process of the throwaway cluster.
fn signal(pid: i32, signal: &str) {
    let status = std::process::Command::new("kill")
        .arg(format!("-{signal}"))
        .arg(pid.to_string())
        .status()
        .unwrap();
    assert!(status.success(), "kill -{signal} {pid}");
}

/// Sends `CONT` to a stopped server process when dropped.
struct Thaw(i32);

impl Drop for Thaw {
    fn drop(&mut self) {
        // No assertion: this may run while a failed test unwinds.
        let _ = std::process::Command::new("kill")
            .arg("-CONT")
            .arg(self.0.to_string())
            .status();
    }
}

/// Both scenarios stop servers, so they share one throwaway cluster (initdb takes seconds)
/// and run one after the other.
#[tokio::test]
async fn survives_a_frozen_backend_and_a_restart() {
    let cluster = Postgres::start().expect("a throwaway PostgreSQL cluster starts");
    a_frozen_backend_times_out_and_its_connection_is_discarded(&cluster).await;
    recovers_after_postgres_restarts(&cluster).await;
}

async fn a_frozen_backend_times_out_and_its_connection_is_discarded(cluster: &Postgres) {
    // A server process that stops answering mid-query (frozen, not crashed: the kernel
    // still acknowledges, so neither TCP nor statement_timeout notices).
    let config = DbConfig::builder()
        .url(cluster.url())
        .max_size(1)
        .statement_timeout(Some(Duration::from_millis(200)))
        .build()
        .unwrap();
    let db = Db::connect(config).await.unwrap();
    let frozen = backend_pid(&db).await;
    signal(frozen, "STOP");
    // Thaw it whatever happens, so the cluster can shut down.
    let thaw = Thaw(frozen);
    let result = tokio::time::timeout(NO_HANG, db.query_one("SELECT 1", &[]))
        .await
        .expect("no hang");
    drop(thaw);
    match result {
        Err(DbError::QueryTimeout { timeout, .. }) => {
            assert_eq!(
                timeout,
                Duration::from_millis(200) + towerkit_db::CLIENT_TIMEOUT_MARGIN
            );
        }
        other => panic!("expected a query timeout, got {other:?}"),
    }
    assert_ne!(
        backend_pid(&db).await,
        frozen,
        "the frozen connection was not reused"
    );
}

async fn recovers_after_postgres_restarts(cluster: &Postgres) {
    let config = DbConfig::builder()
        .url(cluster.url())
        .max_size(2)
        .min_connections(2)
        .wait_timeout(Duration::from_millis(500))
        .connect_timeout(Duration::from_millis(500))
        .check_ttl(Duration::ZERO)
        .build()
        .unwrap();
    let db = Db::connect(config).await.unwrap();
    assert_eq!(
        db.query_one("SELECT 1", &[])
            .await
            .unwrap()
            .get::<_, i32>(0),
        1
    );

    cluster.stop();
    // During the outage every request fails, quickly and with a typed error.
    for _ in 0..4 {
        let error = tokio::time::timeout(NO_HANG, db.query_one("SELECT 1", &[]))
            .await
            .expect("no hang")
            .unwrap_err();
        assert!(error.is_unavailable(), "{error:?}");
    }
    assert_eq!(
        tokio::time::timeout(NO_HANG, db.check())
            .await
            .expect("no hang")
            .status,
        HealthStatus::Fail
    );

    cluster.start_again().expect("PostgreSQL starts again");
    // The same pool recovers, without a restart of the service.
    let recovered = eventually(Duration::from_secs(10), || async {
        db.query_one("SELECT 1", &[]).await.ok()
    })
    .await;
    assert!(recovered.is_some(), "the pool never recovered");
    assert_eq!(db.check().await.status, HealthStatus::Pass);
    for _ in 0..4 {
        db.query_one("SELECT 1", &[]).await.unwrap();
    }
}
