//! PostgreSQL restarted under load: a throwaway cluster on a free port is stopped and started
//! again while a bounded number of concurrent clients keep requesting products, and
//! readiness following the database down and up.

mod support;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use axum::http::StatusCode;
use support::{TestApp, header};
use towerkit_test_support::servers::Postgres;

/// The pool's documented default timeouts (towerkit-db `DbConfig`): waiting for a free
/// connection, connecting, recycling, plus the client margin. No request may take longer.
const POOL_TIMEOUTS: Duration = Duration::from_secs(3 + 3 + 1 + 1);
const WORKERS: usize = 8;
const MAX_REQUESTS_PER_WORKER: usize = 2_000;

/// Polls `/health/ready` every 50 ms until it answers `want`; the time that took.
async fn ready_becomes(app: &TestApp, want: StatusCode, limit: Duration) -> Option<Duration> {
    let started = Instant::now();
    while started.elapsed() < limit {
        if app.get("/health/ready").await.status == want {
            return Some(started.elapsed());
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    None
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_restart_under_load_turns_ready_503_and_back_without_slow_or_failed_requests() {
    let cluster = Postgres::start().unwrap_or_else(|e| {
        panic!("PostgreSQL server binaries are needed for this test (initdb, pg_ctl): {e}")
    });
    let app = Arc::new(TestApp::start_with(|c| c.database_url = cluster.url()).await);
    assert_eq!(app.get("/health/ready").await.status, StatusCode::OK);
    assert_eq!(app.get("/api/products/1").await.status, StatusCode::OK);

    let stop = Arc::new(AtomicBool::new(false));
    let workers: Vec<_> = (0..WORKERS)
        .map(|w| {
            let (app, stop) = (app.clone(), stop.clone());
            tokio::spawn(async move {
                let mut max = Duration::ZERO;
                let mut seen = Vec::new();
                for i in 0..MAX_REQUESTS_PER_WORKER {
                    if stop.load(Ordering::SeqCst) {
                        break;
                    }
                    // Distinct queries: most requests miss the cache and need the database.
                    let path = if i % 2 == 0 {
                        format!("/api/products/{}?u={w}-{i}", 1 + (w + i) % 5)
                    } else {
                        format!("/api/products?limit={}&u={w}-{i}", 1 + (w * 31 + i) % 50)
                    };
                    let started = Instant::now();
                    let reply = app.get(&path).await;
                    max = max.max(started.elapsed());
                    seen.push((path, reply.status, header(&reply, "content-type")));
                    tokio::time::sleep(Duration::from_millis(10)).await;
                }
                (max, seen)
            })
        })
        .collect();

    tokio::time::sleep(Duration::from_millis(300)).await;
    cluster.stop_immediately();
    let down = ready_becomes(
        &app,
        StatusCode::SERVICE_UNAVAILABLE,
        Duration::from_secs(5),
    )
    .await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    cluster.start_again().expect("PostgreSQL starts again");
    let up = ready_becomes(&app, StatusCode::OK, Duration::from_secs(10)).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    stop.store(true, Ordering::SeqCst);

    let mut max = Duration::ZERO;
    let mut outcomes = Vec::new();
    for worker in workers {
        let (worker_max, seen) = worker.await.expect("no worker panicked");
        max = max.max(worker_max);
        outcomes.extend(seen);
    }
    let unavailable = outcomes
        .iter()
        .filter(|(_, status, _)| *status == StatusCode::SERVICE_UNAVAILABLE)
        .count();
    eprintln!(
        "ready 503 after {down:?}, 200 after {up:?} of the restart; {} requests, {unavailable} \
         answered 503, max latency {max:?} (pool timeouts {POOL_TIMEOUTS:?})",
        outcomes.len()
    );
    let down = down.expect("/health/ready turned 503");
    assert!(down < Duration::from_secs(2), "503 after {down:?}");
    let up = up.expect("/health/ready turned 200 again");
    assert!(up < Duration::from_secs(5), "200 after {up:?}");
    for (path, status, content_type) in &outcomes {
        match *status {
            StatusCode::OK | StatusCode::NOT_FOUND => {}
            StatusCode::SERVICE_UNAVAILABLE | StatusCode::GATEWAY_TIMEOUT => {
                assert_eq!(content_type, "application/problem+json", "{path}")
            }
            other => panic!("{path}: {other}"),
        }
    }
    assert!(unavailable > 0, "the outage was seen by the load");
    assert!(max <= POOL_TIMEOUTS, "a request waited {max:?}");
    // Served normally once the database is back.
    assert_eq!(app.get("/api/products/2").await.status, StatusCode::OK);
}

#[tokio::test]
async fn health_turns_503_when_the_database_goes_away() {
    let cluster = Postgres::start().unwrap_or_else(|e| {
        panic!("PostgreSQL server binaries are needed for this test (initdb, pg_ctl): {e}")
    });
    let app = TestApp::start_with(|c| c.database_url = cluster.url()).await;
    assert_eq!(app.get("/health/ready").await.status, StatusCode::OK);
    cluster.stop_immediately();
    let started = Instant::now();
    let mut status = StatusCode::OK;
    while started.elapsed() < Duration::from_secs(5) {
        status = app.get("/health/ready").await.status;
        if status == StatusCode::SERVICE_UNAVAILABLE {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(app.get("/health/live").await.status, StatusCode::OK);
    let during = app.get("/api/products/1").await;
    assert_eq!(during.status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(header(&during, "content-type"), "application/problem+json");
    cluster.start_again().expect("PostgreSQL starts again");
    let started = Instant::now();
    while started.elapsed() < Duration::from_secs(10) {
        status = app.get("/health/ready").await.status;
        if status == StatusCode::OK {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(status, StatusCode::OK);
}
