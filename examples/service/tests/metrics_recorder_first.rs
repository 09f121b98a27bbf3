//! `/metrics` with the recorder installed before anything else, as `main` does: every
//! family has a help text and `promtool check metrics` passes after a mixed load. (The
//! other order, the recorder after the layers, is `metrics.rs`; each needs a process of its
//! own, since the recorder is process-wide.)

mod support;

use axum::http::StatusCode;
use support::{TestApp, exposition};
use towerkit_test_support::servers::Redis;

#[tokio::test]
async fn a_recorder_installed_first_describes_every_family() {
    example_service::install_metrics_recorder();
    let mut redis = Redis::start().expect("redis-server starts");
    let app = TestApp::start_with(|c| {
        c.redis_url = Some(redis.url());
        c.redis_prefix = Some(support::unique("metrics_first"));
    })
    .await;
    exposition::mixed_load(&app).await;
    redis.kill();
    for id in 3..6 {
        assert_eq!(
            app.get(&format!("/api/products/{id}")).await.status,
            StatusCode::OK
        );
    }
    let metrics = app.admin_get("/metrics").await;
    assert_eq!(metrics.status, StatusCode::OK);
    exposition::check(&metrics.text());
}
