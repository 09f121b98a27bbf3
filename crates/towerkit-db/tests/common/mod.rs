//! Helpers shared by the integration tests: the test database, a private schema per test,
//! captured logs and metrics. The throwaway PostgreSQL cluster for fault tests is
//! towerkit-test-support's `servers::Postgres`.

// Each test binary uses a different subset of these helpers.
#![allow(dead_code)]

use std::sync::atomic::{AtomicUsize, Ordering};

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use towerkit_db::{Db, DbConfig, DbConfigBuilder};

/// The shared test server (never stopped or reconfigured by these tests).
pub(crate) fn database_url() -> String {
    std::env::var("DATABASE_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".to_owned())
}

/// A config for the shared server.
pub(crate) fn config() -> DbConfig {
    DbConfig::from_url(&database_url()).unwrap()
}

/// A config builder for the shared server, for tests that change a setting.
pub(crate) fn builder() -> DbConfigBuilder {
    DbConfig::builder().url(database_url())
}

/// A name no other test (in this or a concurrent run) uses.
pub(crate) fn unique(prefix: &str) -> String {
    static COUNTER: AtomicUsize = AtomicUsize::new(0);
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .subsec_nanos();
    format!(
        "{prefix}_{}_{}_{nanos}",
        std::process::id(),
        COUNTER.fetch_add(1, Ordering::Relaxed)
    )
}

/// A plain tokio-postgres connection to the shared server, outside any pool.
pub(crate) async fn raw_client() -> tokio_postgres::Client {
    let (client, connection) = tokio_postgres::connect(&database_url(), tokio_postgres::NoTls)
        .await
        .unwrap();
    tokio::spawn(connection);
    client
}

/// A schema of its own for one test, dropped (with everything in it) when this is dropped,
/// even if the test fails.
pub(crate) struct Schema {
    pub(crate) name: String,
}

impl Schema {
    pub(crate) async fn create() -> Self {
        let name = unique("towerkit_db_test");
        raw_client()
            .await
            .batch_execute(&format!("CREATE SCHEMA {name}"))
            .await
            .unwrap();
        Self { name }
    }

    /// `name` qualified with this schema.
    pub(crate) fn table(&self, name: &str) -> String {
        format!("{}.{name}", self.name)
    }
}

impl Drop for Schema {
    fn drop(&mut self) {
        // A failed test may leave a transaction open on a connection of its runtime, which
        // cannot run while this blocks: give up on the lock rather than hang.
        let sql = format!(
            "SET lock_timeout = '2s'; DROP SCHEMA IF EXISTS {} CASCADE",
            self.name
        );
        // Drop may run inside a runtime: use a thread with its own.
        let _ = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            runtime.block_on(async {
                if let Ok((client, connection)) =
                    tokio_postgres::connect(&database_url(), tokio_postgres::NoTls).await
                {
                    tokio::spawn(connection);
                    let _ = client.batch_execute(&sql).await;
                }
            });
        })
        .join();
    }
}

/// Polls `check` every 20 ms until it returns `Some`, for at most `limit`.
pub(crate) async fn eventually<T, F, Fut>(limit: Duration, mut check: F) -> Option<T>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let deadline = tokio::time::Instant::now() + limit;
    loop {
        if let Some(value) = check().await {
            return Some(value);
        }
        if tokio::time::Instant::now() >= deadline {
            return None;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// The server process id behind the pool's next connection.
pub(crate) async fn backend_pid(db: &Db) -> i32 {
    db.query_one("SELECT pg_backend_pid()", &[])
        .await
        .unwrap()
        .get(0)
}

/// A local port nothing listens on (bound, then released).
pub(crate) fn dead_port() -> u16 {
    towerkit_test_support::servers::free_port().unwrap()
}

/// Rows of `table` as seen by a connection outside the pool: only committed data.
pub(crate) async fn committed_rows(table: &str) -> Vec<String> {
    let rows = raw_client()
        .await
        .query(&format!("SELECT note FROM {table} ORDER BY note"), &[])
        .await
        .unwrap();
    rows.iter().map(|row| row.get(0)).collect()
}
