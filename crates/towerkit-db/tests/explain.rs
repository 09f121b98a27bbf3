//! Plans of slow reads (`explain_slow_queries`) against the shared PostgreSQL: a sequential
//! scan is captured, writes and transactions are never explained, the interval holds, a
//! saturated pool is left alone, and no parameter value is logged or kept.

mod common;

use std::time::Duration;

use common::{Schema, builder, eventually};
use towerkit_db::{Db, DbConfigBuilder, DbError};
use towerkit_test_support::Logs;
use towerkit_timing::{PlanSummary, QueryTimer};

/// A secret parameter value no log line or statistic may show.
const SECRET: &str = "alice-secret@example.com";

/// Every query is slow (above 0); parameters are logged only when `log_parameters`.
fn timer(log_parameters: bool) -> QueryTimer {
    QueryTimer::builder("postgresql")
        .slow(Duration::ZERO, Duration::from_secs(60))
        .log_parameters(log_parameters)
        .build()
        .unwrap()
}

fn explaining(interval: Duration) -> DbConfigBuilder {
    builder()
        .timer(timer(false))
        .explain_slow_queries(true)
        .explain_interval(interval)
}

/// A table without any index, with a few hundred rows.
async fn people(db: &Db, schema: &Schema, name: &str) -> String {
    let table = schema.table(name);
    db.execute(&format!("CREATE TABLE {table} (id int, email text)"), &[])
        .await
        .unwrap();
    db.execute(
        &format!("INSERT INTO {table} SELECT n, 'user' || n || '@example.com' FROM generate_series(1, 500) AS n"),
        &[],
    )
    .await
    .unwrap();
    table
}

/// The plan captured for `sql`, waiting up to 5 s for one captured after `after`.
async fn plan_of(db: &Db, sql: &str, after: Option<&PlanSummary>) -> Option<PlanSummary> {
    let label = db.timer().label(sql);
    eventually(Duration::from_secs(5), || {
        let plan = label
            .last_plan()
            .filter(|plan| after.is_none_or(|after| plan.captured_at > after.captured_at));
        async move { plan }
    })
    .await
}

/// Lets any plan capture a query may have started run to its end.
async fn settle() {
    tokio::time::sleep(Duration::from_millis(300)).await;
}

#[tokio::test]
async fn a_slow_read_of_a_table_without_an_index_shows_a_seq_scan() {
    let logs = Logs::capture();
    let schema = Schema::create().await;
    let db = Db::connect(explaining(Duration::from_secs(60)).build().unwrap())
        .await
        .unwrap();
    let table = people(&db, &schema, "people").await;
    let sql = format!("SELECT id FROM {table} WHERE email = $1");
    let rows = db.query(&sql, &[&SECRET]).await.unwrap();
    assert!(rows.is_empty());

    let plan = plan_of(&db, &sql, None).await.expect("a plan is captured");
    assert_eq!(plan.node, "Seq Scan");
    assert!(plan.total_cost > 0.0 && plan.rows >= 1.0, "{plan:?}");
    let stats = db.stats();
    let label = db.timer().label(&sql);
    let stats = stats.get(label.summary()).unwrap();
    assert_eq!(stats.plan.as_ref(), Some(&plan));

    let lines = logs.lines_with("slow query plan");
    assert_eq!(lines.len(), 1, "{}", logs.text());
    assert!(
        lines[0].contains("WARN")
            && lines[0].contains(r#"node=Seq Scan"#)
            && lines[0].contains("total_cost=")
            && lines[0].contains("rows="),
        "{}",
        lines[0]
    );
    assert!(!logs.text().contains(SECRET), "{}", logs.text());
}

#[tokio::test]
async fn writes_are_never_explained() {
    let logs = Logs::capture();
    let schema = Schema::create().await;
    let db = Db::connect(explaining(Duration::from_secs(60)).build().unwrap())
        .await
        .unwrap();
    let table = people(&db, &schema, "people").await;
    // A summary of its own (the read below shares `people`'s).
    let locked = people(&db, &schema, "locked").await;
    let writes = [
        format!("INSERT INTO {table} (id, email) VALUES (1000, $1)"),
        format!("UPDATE {table} SET email = $1 WHERE id = 1"),
        format!("DELETE FROM {table} WHERE email = $1"),
        format!(
            "WITH gone AS (DELETE FROM {table} WHERE email = $1 RETURNING id) SELECT count(*) FROM gone"
        ),
        format!(
            "WITH moved AS (UPDATE {table} SET id = id WHERE email = $1 RETURNING id) SELECT id FROM moved"
        ),
        format!("SELECT id FROM {locked} WHERE email = $1 FOR UPDATE"),
    ];
    for sql in &writes {
        db.query(sql, &[&SECRET]).await.unwrap();
    }
    // A read afterwards is explained: the machinery runs, and had a write started a plan
    // capture, it would have ended before this one.
    let read = format!("SELECT id FROM {table} WHERE email = $1");
    db.query(&read, &[&SECRET]).await.unwrap();
    assert!(plan_of(&db, &read, None).await.is_some());
    settle().await;
    for sql in &writes {
        assert_eq!(db.timer().label(sql).last_plan(), None, "{sql}");
    }
    assert_eq!(
        logs.lines_with("slow query plan").len(),
        1,
        "{}",
        logs.text()
    );
}

#[tokio::test]
async fn queries_in_a_transaction_are_never_explained() {
    let logs = Logs::capture();
    let schema = Schema::create().await;
    let db = Db::connect(explaining(Duration::from_secs(60)).build().unwrap())
        .await
        .unwrap();
    let in_tx = people(&db, &schema, "in_tx").await;
    let outside = people(&db, &schema, "outside").await;
    let tx_read = format!("SELECT id FROM {in_tx} WHERE email = $1");
    db.transaction(|tx| {
        let tx_read = tx_read.clone();
        async move {
            tx.query(&tx_read, &[&SECRET]).await?;
            tx.named("tx_read").query(&tx_read, &[&SECRET]).await?;
            Ok::<_, DbError>(())
        }
    })
    .await
    .unwrap();
    let read = format!("SELECT id FROM {outside} WHERE email = $1");
    db.query(&read, &[&SECRET]).await.unwrap();
    assert!(plan_of(&db, &read, None).await.is_some());
    settle().await;
    assert_eq!(db.timer().label(&tx_read).last_plan(), None);
    assert_eq!(db.timer().named("tx_read", &tx_read).last_plan(), None);
    assert_eq!(
        logs.lines_with("slow query plan").len(),
        1,
        "{}",
        logs.text()
    );
}

#[tokio::test]
async fn one_plan_per_summary_per_interval() {
    let logs = Logs::capture();
    let schema = Schema::create().await;
    let interval = Duration::from_millis(1000);
    let db = Db::connect(explaining(interval).build().unwrap())
        .await
        .unwrap();
    let table = people(&db, &schema, "people").await;
    let sql = format!("SELECT id FROM {table} WHERE email = $1");
    let same_summary = format!("SELECT email FROM {table} WHERE id = $1");

    let started = tokio::time::Instant::now();
    db.query(&sql, &[&SECRET]).await.unwrap();
    let first = plan_of(&db, &sql, None).await.expect("a first plan");
    // Within the interval: neither the same SQL nor another of its summary is explained.
    db.query(&sql, &[&SECRET]).await.unwrap();
    db.query(&same_summary, &[&7_i32]).await.unwrap();
    settle().await;
    assert!(
        started.elapsed() < interval,
        "the machine was too slow for this test's interval"
    );
    assert_eq!(db.timer().label(&sql).last_plan(), Some(first.clone()));
    assert_eq!(
        logs.lines_with("slow query plan").len(),
        1,
        "{}",
        logs.text()
    );

    // After it: the next slow run is explained again.
    tokio::time::sleep(interval.saturating_sub(started.elapsed()) + Duration::from_millis(50))
        .await;
    db.query(&same_summary, &[&7_i32]).await.unwrap();
    let second = plan_of(&db, &sql, Some(&first))
        .await
        .expect("a second plan");
    assert!(second.captured_at > first.captured_at);
    assert_eq!(
        logs.lines_with("slow query plan").len(),
        2,
        "{}",
        logs.text()
    );
}

#[tokio::test]
async fn a_saturated_pool_skips_the_plan() {
    let logs = Logs::capture();
    let schema = Schema::create().await;
    let db = Db::connect(
        explaining(Duration::from_secs(60))
            .max_size(2)
            .build()
            .unwrap(),
    )
    .await
    .unwrap();
    let table = people(&db, &schema, "people").await;
    let sql = format!("SELECT id FROM {table} WHERE email = $1");

    // One connection held elsewhere, the other by the query itself: none free.
    let held = db.pool().get().await.unwrap();
    db.query(&sql, &[&SECRET]).await.unwrap();
    settle().await;
    assert_eq!(db.timer().label(&sql).last_plan(), None);
    assert!(
        logs.lines_with("slow query plan").is_empty(),
        "{}",
        logs.text()
    );
    assert_eq!(
        logs.lines_with("pool saturated").len(),
        1,
        "{}",
        logs.text()
    );

    // With a connection free, the same query is explained: the skip claimed nothing.
    drop(held);
    db.query(&sql, &[&SECRET]).await.unwrap();
    assert!(plan_of(&db, &sql, None).await.is_some());
}

#[tokio::test]
async fn parameter_values_appear_only_when_enabled() {
    for log_parameters in [false, true] {
        let logs = Logs::capture();
        let schema = Schema::create().await;
        let db = Db::connect(
            explaining(Duration::from_secs(60))
                .timer(timer(log_parameters))
                .build()
                .unwrap(),
        )
        .await
        .unwrap();
        let table = people(&db, &schema, "people").await;
        let sql = format!("SELECT id FROM {table} WHERE email = $1");
        db.query(&sql, &[&SECRET]).await.unwrap();
        assert!(plan_of(&db, &sql, None).await.is_some());
        let stats = format!("{:?}", db.stats());
        assert!(!stats.contains(SECRET), "{stats}");
        let plan_lines = logs.lines_with("slow query plan");
        assert!(
            plan_lines.len() == 1 && !plan_lines[0].contains(SECRET),
            "{plan_lines:?}"
        );
        // The slow-query line shows the value only when asked to.
        let shown = logs
            .lines_with("slow query")
            .iter()
            .any(|line| line.contains(SECRET));
        assert_eq!(shown, log_parameters, "{}", logs.text());
    }
}

#[tokio::test]
async fn a_failed_plan_is_logged_by_sqlstate_and_leaves_no_transaction_open() {
    let logs = Logs::capture();
    let db = Db::connect(
        explaining(Duration::from_secs(60))
            .max_size(2)
            .build()
            .unwrap(),
    )
    .await
    .unwrap();
    // A temporary table exists only on the session that made it: the query finds it, the
    // EXPLAIN on the pool's other connection does not (42P01, undefined table).
    let conn = db.pool().get().await.unwrap();
    conn.batch_execute("CREATE TEMPORARY TABLE session_only (email text)")
        .await
        .unwrap();
    drop(conn);
    let sql = "SELECT email FROM pg_temp.session_only WHERE email = $1";
    db.query(sql, &[&SECRET]).await.unwrap();
    // Taken back before the plan's task runs (this runtime runs one task at a time, and
    // taking an idle connection does not yield), so the plan opens the other connection.
    let held = db.pool().get().await.unwrap();
    let failed = eventually(Duration::from_secs(5), || {
        let lines = logs.lines_with("could not explain slow query");
        async move { lines.into_iter().next() }
    })
    .await
    .unwrap_or_else(|| panic!("no failure logged: {}", logs.text()));
    assert!(failed.contains("SQLSTATE 42P01"), "{failed}");
    assert!(!logs.text().contains(SECRET), "{}", logs.text());
    assert_eq!(db.timer().label(sql).last_plan(), None);

    // Both connections are out of any transaction: each answers a new one.
    let other = db.pool().get().await.unwrap();
    assert_eq!(db.pool().status().size, 2);
    for conn in [&held, &other] {
        conn.batch_execute("BEGIN; SELECT 1; COMMIT").await.unwrap();
    }
}

/// A function PostgreSQL runs while it plans (an immutable call with constant arguments is
/// folded), so that planning, and so the `EXPLAIN`, takes `seconds`.
async fn slow_to_plan(db: &Db, schema: &Schema, seconds: f64) -> String {
    let function = schema.table("slow_constant");
    db.execute(
        &format!(
            "CREATE FUNCTION {function}() RETURNS int IMMUTABLE LANGUAGE plpgsql \
             AS $$ BEGIN PERFORM pg_sleep({seconds}); RETURN 1; END $$"
        ),
        &[],
    )
    .await
    .unwrap();
    function
}

#[tokio::test]
async fn a_plan_that_takes_longer_than_the_explain_timeout_is_cancelled() {
    let logs = Logs::capture();
    let schema = Schema::create().await;
    let db = Db::connect(
        explaining(Duration::from_secs(60))
            .explain_timeout(Duration::from_millis(50))
            .build()
            .unwrap(),
    )
    .await
    .unwrap();
    let table = people(&db, &schema, "people").await;
    let function = slow_to_plan(&db, &schema, 0.3).await;
    let sql = format!("SELECT id FROM {table} WHERE email = $1 AND id = {function}()");
    db.query(&sql, &[&SECRET]).await.unwrap();
    let failed = eventually(Duration::from_secs(5), || {
        let lines = logs.lines_with("could not explain slow query");
        async move { lines.into_iter().next() }
    })
    .await
    .unwrap_or_else(|| panic!("no failure logged: {}", logs.text()));
    // 57014: canceled by statement_timeout.
    assert!(failed.contains("SQLSTATE 57014"), "{failed}");
    assert_eq!(db.timer().label(&sql).last_plan(), None);
}

#[tokio::test]
async fn one_plan_is_captured_at_a_time() {
    let logs = Logs::capture();
    let schema = Schema::create().await;
    let db = Db::connect(
        explaining(Duration::from_secs(60))
            .explain_timeout(Duration::from_secs(2))
            .build()
            .unwrap(),
    )
    .await
    .unwrap();
    let first = people(&db, &schema, "first").await;
    let second = people(&db, &schema, "second").await;
    let function = slow_to_plan(&db, &schema, 0.5).await;
    let slow_plan = format!("SELECT id FROM {first} WHERE email = $1 AND id = {function}()");
    let other = format!("SELECT id FROM {second} WHERE email = $1");
    // The first plan takes 0.5 s; the second read is slow while it runs: not explained.
    db.query(&slow_plan, &[&SECRET]).await.unwrap();
    db.query(&other, &[&SECRET]).await.unwrap();
    assert!(plan_of(&db, &slow_plan, None).await.is_some());
    settle().await;
    assert_eq!(db.timer().label(&other).last_plan(), None);
    assert_eq!(
        logs.lines_with("slow query plan").len(),
        1,
        "{}",
        logs.text()
    );
    // Its claim was not spent: once the first plan is done, it is explained.
    db.query(&other, &[&SECRET]).await.unwrap();
    assert!(plan_of(&db, &other, None).await.is_some());
}
