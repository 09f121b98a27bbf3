//! Idempotent migrations, applied at start-up.
//!
//! Each file in `migrations/` runs once, in order, in its own transaction, and is recorded
//! in `schema_migrations`. An advisory lock serialises instances that start together (the
//! `LAYERS=none` twin of a load test, several replicas), so each migration runs once.
//! Migrations are multi-statement scripts, so they run on a pooled client directly
//! (`batch_execute`) rather than through `Db`'s prepared, timed queries.

use towerkit::db::Db;

/// The migrations, in order: (version, SQL).
const MIGRATIONS: &[(&str, &str)] = &[
    ("0001_schema", include_str!("../migrations/0001_schema.sql")),
    ("0002_seed", include_str!("../migrations/0002_seed.sql")),
    (
        "0003_product_version",
        include_str!("../migrations/0003_product_version.sql"),
    ),
];

/// An arbitrary key for `pg_advisory_xact_lock`, the same for every instance.
const LOCK_KEY: i64 = 0x746f_7765_726b_6974; // "towerkit"

/// A migration that could not run.
#[derive(Debug)]
pub struct MigrateError(String);

impl std::fmt::Display for MigrateError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "migration failed: {}", self.0)
    }
}

impl std::error::Error for MigrateError {}

/// Applies the migrations not yet applied; returns how many ran.
pub async fn migrate(db: &Db) -> Result<usize, MigrateError> {
    let fail = |e: &dyn std::error::Error| MigrateError(with_sources(e));
    let mut client = db.pool().get().await.map_err(|e| fail(&e))?;
    // Under the lock too: two instances creating the table at once on an empty database
    // collide in the catalog (`IF NOT EXISTS` does not serialise them).
    let tx = client.transaction().await.map_err(|e| fail(&e))?;
    tx.execute("SELECT pg_advisory_xact_lock($1)", &[&LOCK_KEY])
        .await
        .map_err(|e| fail(&e))?;
    tx.batch_execute(
        "CREATE TABLE IF NOT EXISTS schema_migrations (version text PRIMARY KEY, applied_at timestamptz NOT NULL DEFAULT now())",
    )
    .await
    .map_err(|e| fail(&e))?;
    tx.commit().await.map_err(|e| fail(&e))?;
    let mut applied = 0;
    for (version, sql) in MIGRATIONS {
        let tx = client.transaction().await.map_err(|e| fail(&e))?;
        tx.execute("SELECT pg_advisory_xact_lock($1)", &[&LOCK_KEY])
            .await
            .map_err(|e| fail(&e))?;
        let done = tx
            .query_opt(
                "SELECT 1 FROM schema_migrations WHERE version = $1",
                &[version],
            )
            .await
            .map_err(|e| fail(&e))?;
        if done.is_some() {
            continue;
        }
        tx.batch_execute(sql)
            .await
            .map_err(|e| MigrateError(format!("{version}: {}", with_sources(&e))))?;
        tx.execute(
            "INSERT INTO schema_migrations (version) VALUES ($1)",
            &[version],
        )
        .await
        .map_err(|e| fail(&e))?;
        tx.commit().await.map_err(|e| fail(&e))?;
        tracing::info!(version, "applied migration");
        applied += 1;
    }
    Ok(applied)
}

/// An error with its sources: tokio-postgres says only `db error`, and the server's
/// message (which names the object, never a password) is its source.
fn with_sources(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        let cause_text = cause.to_string();
        if !text.ends_with(&cause_text) {
            text.push_str(": ");
            text.push_str(&cause_text);
        }
        source = cause.source();
    }
    text
}
