//! Migrations when several instances start at once on an empty database.

mod support;

use axum::http::StatusCode;
use support::{TestApp, header};

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn instances_starting_together_on_an_empty_database_all_start_and_migrate_once() {
    let apps = TestApp::start_together(4).await;
    let errors: Vec<&String> = apps.iter().filter_map(|app| app.as_ref().err()).collect();
    assert!(errors.is_empty(), "{errors:?}");
    for app in apps.iter().flatten() {
        let page = app.get("/api/products?limit=1").await;
        assert_eq!(page.status, StatusCode::OK, "{}", page.text());
        // The seed ran once: 10,000 products, not one set per instance.
        assert_eq!(header(&page, "x-total-count"), "10000");
    }
}
