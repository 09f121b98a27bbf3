//! Logging of Redis outages, in its own test binary: tracing's per-callsite interest is
//! process-wide, so a test capturing events must not share its process with other tests.

#![cfg(feature = "redis")]

use std::sync::atomic::Ordering;
use std::time::Duration;

use axum::http::StatusCode;
use towerkit_cache::{CacheLayer, RedisStore, Store};

mod common;

use common::{Origin, cached, get_req, send};

#[tokio::test]
async fn an_outage_is_logged_once() {
    use std::sync::Arc;
    use std::sync::atomic::AtomicUsize;

    use tracing_subscriber::layer::{Context, SubscriberExt};

    /// Counts warnings.
    struct Warnings(Arc<AtomicUsize>);

    impl<S: tracing::Subscriber> tracing_subscriber::Layer<S> for Warnings {
        fn on_event(&self, event: &tracing::Event<'_>, _: Context<'_, S>) {
            if *event.metadata().level() == tracing::Level::WARN {
                self.0.fetch_add(1, Ordering::SeqCst);
            }
        }
    }

    let warnings = Arc::new(AtomicUsize::new(0));
    let _guard = tracing::subscriber::set_default(
        tracing_subscriber::registry().with(Warnings(warnings.clone())),
    );
    // Nothing listens on a port just released.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let url = format!("redis://127.0.0.1:{port}/");
    let store = RedisStore::builder(url.as_str())
        .backoff(Duration::from_millis(1), Duration::from_millis(2))
        .connect()
        .await
        .unwrap();
    let layer = CacheLayer::new(store.clone());
    let origin = Origin::default();
    let app = cached(&layer, &origin, &[("cache-control", "max-age=60")]);
    for i in 0..20 {
        assert_eq!(
            send(&app, get_req(&format!("/{i}"))).await.status,
            StatusCode::OK
        );
        tokio::time::sleep(Duration::from_millis(3)).await;
    }
    assert!(
        Store::stats(&store).l2_errors >= 10,
        "{:?}",
        Store::stats(&store)
    );
    assert_eq!(warnings.load(Ordering::SeqCst), 1);
}
