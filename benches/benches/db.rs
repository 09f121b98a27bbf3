//! What towerkit-db adds to a query: `db/select1/towerkit` is a prepared `SELECT 1` through
//! `Db` (label lookup, timing, histogram, statistics, client-side timeout),
//! `db/select1/deadpool_raw` the same statement on a plain deadpool-postgres pool, its
//! reference. Both run against `DATABASE_URL` (default the local test server) on the same
//! runtime, each with a warm pool of the same size.

use criterion::{Criterion, criterion_group, criterion_main};
use towerkit_benches::runtime;
use towerkit_db::deadpool_postgres::{Manager, ManagerConfig, Pool, RecyclingMethod};
use towerkit_db::tokio_postgres::{self, NoTls};
use towerkit_db::{Db, DbConfig};

const POOL_SIZE: usize = 4;

fn database_url() -> String {
    std::env::var("DATABASE_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".to_owned())
}

/// A plain deadpool-postgres pool as its README builds one, with the cheap recycling that
/// `Db` uses too.
fn raw_pool() -> Pool {
    let config: tokio_postgres::Config = database_url().parse().expect("DATABASE_URL");
    let manager = Manager::from_config(
        config,
        NoTls,
        ManagerConfig {
            recycling_method: RecyclingMethod::Fast,
        },
    );
    Pool::builder(manager)
        .max_size(POOL_SIZE)
        .build()
        .expect("pool")
}

fn select1(c: &mut Criterion) {
    let rt = runtime();
    let raw = raw_pool();
    let db = rt
        .block_on(Db::connect(
            DbConfig::from_url(&database_url())
                .expect("DATABASE_URL")
                .max_size(POOL_SIZE),
        ))
        .expect("Db::connect");
    // Warm both pools: one open connection with the statement prepared.
    rt.block_on(async {
        let client = raw.get().await.expect("connection");
        let statement = client.prepare_cached("SELECT 1").await.expect("prepare");
        client.query_one(&statement, &[]).await.expect("SELECT 1");
        db.query_one("SELECT 1", &[]).await.expect("SELECT 1");
    });

    let mut group = c.benchmark_group("db/select1");
    group.bench_function("deadpool_raw", |b| {
        b.to_async(&rt).iter(|| async {
            let client = raw.get().await.expect("connection");
            let statement = client.prepare_cached("SELECT 1").await.expect("prepare");
            let row = client.query_one(&statement, &[]).await.expect("SELECT 1");
            std::hint::black_box(row.get::<_, i32>(0))
        })
    });
    group.bench_function("towerkit", |b| {
        b.to_async(&rt).iter(|| async {
            let row = db.query_one("SELECT 1", &[]).await.expect("SELECT 1");
            std::hint::black_box(row.get::<_, i32>(0))
        })
    });
    group.finish();
}

criterion_group!(benches, select1);
criterion_main!(benches);
