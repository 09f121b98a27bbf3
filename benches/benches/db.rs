//! What towerkit-db adds to a query: `db/select1/towerkit` is a prepared `SELECT 1` through
//! `Db` (checkout, label lookup, client deadline, histogram, statistics),
//! `db/select1/deadpool_raw` the same statement as plain deadpool-postgres code runs it
//! (`get`, `prepare_cached`, `query_one`), its reference. Both run against `DATABASE_URL`
//! (default the local test server) on one runtime, with the Prometheus recorder installed.
//!
//! **Both sides use the same connection.** The raw side runs on the `Db`'s own pool
//! ([`Db::pool`]), checking out as a pool built with deadpool's defaults does (no timeouts),
//! so both send their queries to the same PostgreSQL server process with the same session
//! settings. With a connection each, the comparison measured the two server processes as
//! much as the client code: on a two-core virtual machine one loopback connection
//! answered in a third of the time of the other for whole runs (25 against 85 µs, either
//! way round from one run to the next), as the scheduler happened to place the processes.
//!
//! **Both ids come from one interleaved run.** Measured one after the other, two identical
//! sides differ by up to 10 % on a shared two-core machine (the round trip is tens of
//! microseconds of loopback TCP and PostgreSQL scheduling, and the machine drifts between
//! the two measurements), more than the 3 % the comparison is about. So the
//! `deadpool_raw` bench runs blocks of [`BLOCK`] raw queries and [`BLOCK`] `Db` queries in
//! turn (which goes first alternates), timing each block, and reports the raw blocks; the
//! `towerkit` bench then reports the `Db` blocks of that same run, its k-th measured sample
//! from the raw bench's k-th, scaled to the iteration counts criterion asks for. Drift then
//! reaches both sides alike: with the raw query on both sides, four runs read 0.993 to
//! 1.009. The raw bench also prints (to stderr) the paired ratio itself, `db/select1
//! paired: towerkit/deadpool_raw`, over the block pairs of its measured samples, and what
//! `Db` adds per query in nanoseconds.
//!
//! Both run with `sslmode=disable`, whatever `DATABASE_URL` says, so they measure the client
//! code, not encryption. `db/select1/towerkit_tls` is the `Db` query over TLS
//! (`sslmode=require` on the same server: the handshake happens once per pooled connection,
//! so what it adds per query is encryption), timed on its own rather than interleaved, and
//! shown against `deadpool_raw`; it is skipped, with a line on stderr, when the server does
//! not accept TLS.
//!
//! **Instructions.** Wall times on a shared machine move by more than what is compared, so
//! the bench also counts what `Db` adds in instructions: with `DB_SELECT1_COUNT=raw:N` (or
//! `towerkit:N`) it runs N queries of that side after a warm-up, in [`count_queries`], and
//! exits. Run it under Callgrind, collecting only in that function, for two values of N:
//! the difference over the difference in N is the client's instructions per query (the
//! connection task included, since the runtime has one thread):
//!
//! ```text
//! DB_SELECT1_COUNT=towerkit:2000 valgrind --tool=callgrind --collect-atstart=no \
//!     --toggle-collect='*count_queries*' target/release/deps/db-<hash> --bench
//! ```
//!
//! Per quick checkout, the pool's upkeep task later records one histogram sample (see
//! `towerkit_db::QUICK_CHECKOUT`), whenever its one-second tick falls in the run, and
//! tokio-postgres' response channel sometimes spins: subtract both functions' inclusive
//! costs (`CheckoutTimes::flush`, `Queue::pop_spin`) before comparing runs.

use std::cell::RefCell;
use std::time::{Duration, Instant};

use criterion::{Criterion, criterion_group};
use towerkit_benches::{install_metrics_recorder, runtime};
use towerkit_db::deadpool_postgres::{Pool, Timeouts};
use towerkit_db::{Db, DbConfig, SslMode};

const POOL_SIZE: usize = 4;

/// Queries per timed block: short enough that the machine does not drift within a pair of
/// blocks, long enough that reading the clock costs nothing.
const BLOCK: u64 = 25;

fn database_url() -> String {
    std::env::var("DATABASE_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".to_owned())
}

/// The `Db` both sides query through, without TLS (see the module docs).
async fn connect() -> Db {
    let config = DbConfig::builder()
        .url(database_url())
        .ssl_mode(SslMode::Disable)
        .max_size(POOL_SIZE)
        .build()
        .expect("DATABASE_URL");
    Db::connect(config).await.expect("Db::connect")
}

/// The same query as plain deadpool-postgres code runs it, on the `Db`'s own pool: what a
/// pool built with deadpool's defaults does on `get()` (no timeouts: `Pool::get` passes the
/// pool's, which `Db` sets for when the pool is full), then the cached prepare and the
/// query.
async fn raw_select1(pool: &Pool) {
    let client = pool
        .timeout_get(&Timeouts::new())
        .await
        .expect("connection");
    let statement = client.prepare_cached("SELECT 1").await.expect("prepare");
    let row = client.query_one(&statement, &[]).await.expect("SELECT 1");
    std::hint::black_box(row.get::<_, i32>(0));
}

async fn towerkit_select1(db: &Db) {
    let row = db.query_one("SELECT 1", &[]).await.expect("SELECT 1");
    std::hint::black_box(row.get::<_, i32>(0));
}

/// The two sides' times over the same interleaved queries.
#[derive(Debug, Default, Clone, Copy)]
struct Pair {
    queries: u64,
    raw: Duration,
    towerkit: Duration,
}

/// Runs `queries` raw and `queries` `Db` queries in alternating blocks.
async fn interleaved(raw: &Pool, db: &Db, queries: u64) -> Pair {
    let mut pair = Pair {
        queries,
        ..Pair::default()
    };
    let mut done = 0;
    let mut raw_first = true;
    while done < queries {
        let block = BLOCK.min(queries - done);
        for side in [raw_first, !raw_first] {
            let start = Instant::now();
            for _ in 0..block {
                if side {
                    raw_select1(raw).await;
                } else {
                    towerkit_select1(db).await;
                }
            }
            if side {
                pair.raw += start.elapsed();
            } else {
                pair.towerkit += start.elapsed();
            }
        }
        raw_first = !raw_first;
        done += block;
    }
    pair
}

/// The pairs of criterion's measurement phase: the longest tail whose query counts grow by
/// a constant step (d, 2d, 3d, … in criterion's linear sampling, d, d, d, … in flat
/// sampling). The warm-up before it doubles its count each time, which breaks the step.
fn measured(pairs: &[Pair]) -> &[Pair] {
    let step = |i: usize| i128::from(pairs[i].queries) - i128::from(pairs[i - 1].queries);
    let mut start = pairs.len().saturating_sub(1);
    while start > 1 && step(start - 1) == step(pairs.len() - 1) {
        start -= 1;
    }
    // `start` is the first pair after the last step that differs.
    &pairs[start.saturating_sub(1)..]
}

/// Prints (to stderr, beside criterion's report) what the comparison is about: the `Db`
/// side's time over the raw side's for the same measured block pairs, in total and as the
/// median pair.
fn print_paired_ratio(pairs: &[Pair]) {
    let measured = measured(pairs);
    if measured.is_empty() {
        return;
    }
    let total = |side: fn(&Pair) -> Duration| measured.iter().map(side).sum::<Duration>();
    let sum_ratio = total(|p| p.towerkit).as_secs_f64() / total(|p| p.raw).as_secs_f64();
    let mut ratios: Vec<f64> = measured
        .iter()
        .map(|p| p.towerkit.as_secs_f64() / p.raw.as_secs_f64())
        .collect();
    ratios.sort_by(f64::total_cmp);
    let median = ratios[ratios.len() / 2];
    let queries: u64 = measured.iter().map(|p| p.queries).sum();
    let per_query = |side: fn(&Pair) -> Duration| total(side).as_secs_f64() * 1e9 / queries as f64;
    let (raw, towerkit) = (per_query(|p| p.raw), per_query(|p| p.towerkit));
    eprintln!(
        "db/select1 paired: towerkit/deadpool_raw {sum_ratio:.4} over {queries} queries \
         of each in {} samples (median sample {median:.4}); raw {raw:.0} ns, towerkit \
         {towerkit:.0} ns, {:+.0} ns per query",
        measured.len(),
        towerkit - raw
    );
}

fn select1(c: &mut Criterion) {
    install_metrics_recorder();
    let rt = runtime();
    let db = rt.block_on(connect());
    let raw = db.pool().clone();
    // Warm the pool: one open connection with the statement prepared.
    rt.block_on(async {
        raw_select1(&raw).await;
        towerkit_select1(&db).await;
    });

    // The `Db` side of every interleaved sample, in order, for the `towerkit` bench.
    let recorded = RefCell::new(Vec::<Pair>::new());
    let mut group = c.benchmark_group("db/select1");
    group.bench_function("deadpool_raw", |b| {
        b.to_async(&rt).iter_custom(|iters| {
            let (raw, db, recorded) = (&raw, &db, &recorded);
            async move {
                let pair = interleaved(raw, db, iters).await;
                recorded.borrow_mut().push(pair);
                pair.raw
            }
        })
    });
    print_paired_ratio(&recorded.borrow());
    // Criterion asks the `towerkit` bench for a warm-up (1, 2, 4, … queries) and then for
    // the measured samples (d, 2d, 3d, … queries, as it asked `deadpool_raw`): the k-th
    // measured sample replays the `Db` side of the raw bench's k-th, so the two estimates
    // weigh the same block pairs alike. (Previous count asked for, index of the next
    // measured sample once the warm-up is over.)
    let replay = std::cell::Cell::new((0_u64, None::<usize>));
    group.bench_function("towerkit", |b| {
        b.to_async(&rt).iter_custom(|iters| {
            let (raw, db, recorded, replay) = (&raw, &db, &recorded, &replay);
            async move {
                let (previous, next) = replay.get();
                let next = next.or((iters != 1 && iters != previous * 2).then_some(0));
                replay.set((iters, next.map(|k| k + 1)));
                let pair = {
                    let recorded = recorded.borrow();
                    let measured = measured(&recorded);
                    match (measured.len(), next) {
                        (0, _) => None,
                        (len, Some(k)) => Some(measured[k % len]),
                        (len, None) => Some(measured[len - 1]),
                    }
                };
                let Some(pair) = pair else {
                    // Run alone (a filter left `deadpool_raw` out), it measures its own pairs.
                    return interleaved(raw, db, iters).await.towerkit;
                };
                // Per query as measured, times the iterations asked for; taking that long
                // keeps criterion's clock (which ends the warm-up) in step.
                let time = pair.towerkit.mul_f64(iters as f64 / pair.queries as f64);
                std::thread::sleep(time);
                time
            }
        })
    });
    match rt.block_on(tls_db()) {
        Some(tls) => {
            rt.block_on(towerkit_select1(&tls));
            group.bench_function("towerkit_tls", |b| {
                b.to_async(&rt).iter(|| towerkit_select1(&tls))
            });
        }
        None => eprintln!(
            "db/select1/towerkit_tls skipped: the server at DATABASE_URL does not accept TLS"
        ),
    }
    group.finish();
}

/// A `Db` on the same server with `sslmode=require` and one connection open, or `None` when
/// the server does not accept TLS.
async fn tls_db() -> Option<Db> {
    let config = DbConfig::builder()
        .url(database_url())
        .ssl_mode(SslMode::Require)
        .max_size(POOL_SIZE)
        .min_connections(1)
        .build()
        .expect("DATABASE_URL");
    Db::connect(config).await.ok()
}

/// Runs `queries` queries of one side (`raw` or `towerkit`) after a warm-up, for an
/// instruction count (see the module docs).
#[inline(never)]
fn count_queries(rt: &tokio::runtime::Runtime, db: &Db, raw: bool, queries: u64) {
    rt.block_on(async {
        for _ in 0..queries {
            if raw {
                raw_select1(db.pool()).await;
            } else {
                towerkit_select1(db).await;
            }
        }
    });
}

/// `DB_SELECT1_COUNT=side:queries`: the queries for an instruction count, instead of the
/// benches.
fn count_from_env() -> Option<()> {
    let spec = std::env::var("DB_SELECT1_COUNT").ok()?;
    let (side, queries) = spec
        .split_once(':')
        .expect("DB_SELECT1_COUNT=raw:N or towerkit:N");
    let queries: u64 = queries.parse().expect("a number of queries");
    install_metrics_recorder();
    let rt = runtime();
    let db = rt.block_on(connect());
    rt.block_on(async {
        for _ in 0..20 {
            raw_select1(db.pool()).await;
            towerkit_select1(&db).await;
        }
    });
    count_queries(&rt, &db, side == "raw", queries);
    Some(())
}

criterion_group!(benches, select1);

fn main() {
    if count_from_env().is_some() {
        return;
    }
    benches();
    Criterion::default().configure_from_args().final_summary();
}
