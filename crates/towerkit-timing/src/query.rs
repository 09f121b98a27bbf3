//! Query timing: [`QueryTimer`] labels each SQL string once, records every execution in
//! `db_client_operation_duration_seconds`, in the request's collector and in
//! [`QueryStats`], and logs slow queries.

use std::cell::RefCell;
use std::collections::HashMap;
use std::fmt;
use std::hash::{Hash, Hasher};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use metrics::SharedString;
use quick_cache::Equivalent;

use crate::collector;
use crate::durations::Durations;
use crate::error::ConfigError;
use crate::metrics::DB_CLIENT_OPERATION_DURATION;
use crate::plan::{PlanSlot, PlanSummary};
use crate::sql::{normalize, summarize};
use crate::stopwatch::millis;
use crate::thresholds::{Severity, Thresholds};
use towerkit_http::metric_cell::HistogramCell;

/// How many distinct SQL strings (and query labels) a [`QueryTimer`] keeps by default.
const DEFAULT_CAPACITY: usize = 1024;

/// SQL strings longer than this (8 KiB) are labelled on every execution instead of being
/// cached, so huge generated statements do not fill memory.
const MAX_CACHED_SQL_LEN: usize = 8 * 1024;

/// SQL strings up to this long are kept in each thread's recent labels.
const MAX_RECENT_SQL_LEN: usize = 1024;

/// How many labels each thread keeps at hand (direct-mapped by the SQL text's address).
const RECENT_LABEL_SLOTS: usize = 16;

thread_local! {
    /// The labels this thread looked up last, so that a query usually finds its label
    /// without hashing its SQL and locking a shard of the timer's cache. At most
    /// [`RECENT_LABEL_SLOTS`] SQL strings of [`MAX_RECENT_SQL_LEN`] bytes per thread.
    static RECENT_LABELS: RefCell<[Option<RecentLabel>; RECENT_LABEL_SLOTS]> =
        const { RefCell::new([const { None }; RECENT_LABEL_SLOTS]) };
}

/// A label in [`RECENT_LABELS`], with what it was looked up by.
struct RecentLabel {
    timer: u64,
    name: Option<&'static str>,
    sql: Box<str>,
    label: QueryLabel,
}

/// The [`QueryStats`] label that collects queries beyond the timer's capacity of labels.
const OVERFLOW_LABEL: &str = "_OTHER";

/// Times SQL queries. Cheap to clone; clones share the label cache and the statistics.
///
/// For each execution, [`record`](Self::record):
/// - records `db_client_operation_duration_seconds` with labels `db_system_name`,
///   `db_operation_name` (`SELECT`), `db_collection_name` (`products`) and
///   `db_query_summary` (`SELECT products`, or the caller's name for the query);
/// - adds the query to the current request's collector (for `Server-Timing` and N+1
///   detection);
/// - counts it in [`QueryStats`];
/// - logs it when slow, at WARN or ERROR, with the summary, the normalized SQL (literals
///   replaced by `?`), duration and row count. Parameter values are only logged with
///   [`log_parameters(true)`](QueryTimerBuilder::log_parameters): they may hold personal data.
///
/// Raw SQL and parameter values never become metric labels.
///
/// ```
/// use std::time::Duration;
/// use towerkit_timing::{QueryOutcome, QueryTimer};
///
/// let timer = QueryTimer::new("postgresql");
/// let label = timer.label("SELECT id, name FROM products WHERE id = $1");
/// assert_eq!(label.summary(), "SELECT products");
/// timer.record(&label, Duration::from_millis(3), QueryOutcome::Rows(1), &[&42]);
///
/// let named = timer.named("product_by_id", "SELECT id, name FROM products WHERE id = $1");
/// assert_eq!(named.summary(), "product_by_id");
/// assert_eq!(timer.stats().get("SELECT products").unwrap().count, 1);
/// ```
#[derive(Clone)]
pub struct QueryTimer {
    system: SharedString,
    thresholds: Thresholds,
    log_parameters: bool,
    shared: Arc<Shared>,
}

struct Shared {
    /// Tells this timer's labels from another's in [`RECENT_LABELS`] (unique in the process).
    id: u64,
    labels: quick_cache::sync::Cache<LabelKey, QueryLabel>,
    stats: Mutex<HashMap<SharedString, Arc<Entry>>>,
    capacity: usize,
}

impl fmt::Debug for QueryTimer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("QueryTimer")
            .field("system", &self.system)
            .field("thresholds", &self.thresholds)
            .field("log_parameters", &self.log_parameters)
            .field("capacity", &self.shared.capacity)
            .finish_non_exhaustive()
    }
}

impl QueryTimer {
    /// A timer for queries to `system` (the `db_system_name` label, e.g. `postgresql`) with
    /// the defaults: slow above 500 ms (WARN) and 1 s (ERROR), parameters not logged, and
    /// room for 1,024 labels.
    pub fn new(system: impl Into<SharedString>) -> Self {
        Self {
            system: system.into(),
            thresholds: Thresholds::DEFAULT,
            log_parameters: false,
            shared: Arc::new(Shared::new(DEFAULT_CAPACITY)),
        }
    }

    /// A builder for a timer of queries to `system`, starting from the defaults of
    /// [`QueryTimer::new`].
    ///
    /// ```
    /// use std::time::Duration;
    /// use towerkit_timing::QueryTimer;
    ///
    /// let timer = QueryTimer::builder("postgresql")
    ///     .slow(Duration::from_millis(100), Duration::from_millis(500))
    ///     .log_parameters(true)
    ///     .capacity(256)
    ///     .build()?;
    /// # let _ = timer;
    /// # Ok::<(), towerkit_timing::ConfigError>(())
    /// ```
    pub fn builder(system: impl Into<SharedString>) -> QueryTimerBuilder {
        QueryTimerBuilder {
            system: system.into(),
            slow: (Thresholds::DEFAULT.warn(), Thresholds::DEFAULT.error()),
            log_parameters: false,
            capacity: DEFAULT_CAPACITY,
        }
    }

    /// The label of `sql`, derived from its text once and cached: the statement's keyword and
    /// main table (`SELECT products`).
    pub fn label(&self, sql: &str) -> QueryLabel {
        self.lookup(None, sql)
    }

    /// The label of `sql` under the caller's `name`, which replaces the derived summary in
    /// the `db_query_summary` label, the collector and [`QueryStats`].
    pub fn named(&self, name: &'static str, sql: &str) -> QueryLabel {
        self.lookup(Some(name), sql)
    }

    /// Records one execution of the query `label`. `params` is only formatted for a slow
    /// query, and only when [`log_parameters`](QueryTimerBuilder::log_parameters) is on.
    ///
    /// Returns how slow the query was (`None` when it was not), so a database crate can
    /// follow a slow query up, for instance by capturing its plan (see
    /// [`QueryLabel::claim_plan`]).
    pub fn record(
        &self,
        label: &QueryLabel,
        elapsed: Duration,
        outcome: QueryOutcome,
        params: &dyn fmt::Debug,
    ) -> Option<Severity> {
        let inner = &*label.0;
        let seconds = elapsed.as_secs_f64();
        // The histogram was built (and registered) with the label, not on every query.
        inner.histogram.record(seconds);
        collector::record_query(&inner.summary, elapsed);
        let severity = self.thresholds.classify(elapsed);
        inner.stats.durations.record(elapsed);
        if outcome == QueryOutcome::Failed {
            inner.stats.failed.fetch_add(1, Ordering::Relaxed);
        }
        if let Some(severity) = severity {
            inner.stats.slow.fetch_add(1, Ordering::Relaxed);
            self.log_slow(label, severity, elapsed, outcome, params);
        }
        severity
    }

    /// Whether slow-query log lines include parameter values
    /// ([`log_parameters`](QueryTimerBuilder::log_parameters)); whoever logs more about a
    /// query (a plan) follows the same rule.
    pub fn logs_parameters(&self) -> bool {
        self.log_parameters
    }

    /// A snapshot of every label's count, total time, slow and failed counts, duration
    /// quantiles and last plan since the timer was created.
    pub fn stats(&self) -> QueryStats {
        let map = self
            .shared
            .stats
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        let mut labels: Vec<LabelStats> = map
            .iter()
            .map(|(label, entry)| {
                let durations = entry.durations.snapshot();
                LabelStats {
                    label: label.to_string(),
                    count: durations.count(),
                    total: durations.total(),
                    slow: entry.slow.load(Ordering::Relaxed),
                    failed: entry.failed.load(Ordering::Relaxed),
                    p50: durations.quantile(0.5),
                    p95: durations.quantile(0.95),
                    p99: durations.quantile(0.99),
                    plan: entry.plan.last(),
                }
            })
            .collect();
        labels.sort_by(|a, b| a.label.cmp(&b.label));
        QueryStats { labels }
    }

    /// The label of (`name`, `sql`): from this thread's recent labels if there, else from
    /// the shared cache (hashing the SQL text and locking a shard), else built.
    fn lookup(&self, name: Option<&'static str>, sql: &str) -> QueryLabel {
        if sql.len() > MAX_RECENT_SQL_LEN {
            return self.lookup_shared(name, sql);
        }
        // The slot is chosen by the text's address: a query's SQL is usually a literal, at
        // the same address every time. A hit is decided by the text.
        let mixed = (sql.as_ptr() as usize) ^ sql.len().rotate_left(29);
        let slot = crate::slot::by_address(mixed, RECENT_LABEL_SLOTS);
        RECENT_LABELS.with(|recent| {
            let Ok(mut recent) = recent.try_borrow_mut() else {
                return self.lookup_shared(name, sql);
            };
            if let Some(hit) = &recent[slot]
                && hit.timer == self.shared.id
                && hit.name == name
                && *hit.sql == *sql
            {
                return hit.label.clone();
            }
            let label = self.lookup_shared(name, sql);
            recent[slot] = Some(RecentLabel {
                timer: self.shared.id,
                name,
                sql: sql.into(),
                label: label.clone(),
            });
            label
        })
    }

    fn lookup_shared(&self, name: Option<&'static str>, sql: &str) -> QueryLabel {
        let key = LabelKeyRef { name, sql };
        if let Some(label) = self.shared.labels.get(&key) {
            return label;
        }
        let label = self.build(name, sql);
        if sql.len() <= MAX_CACHED_SQL_LEN {
            self.shared.labels.insert(
                LabelKey {
                    name,
                    sql: sql.into(),
                },
                label.clone(),
            );
        }
        label
    }

    fn build(&self, name: Option<&'static str>, sql: &str) -> QueryLabel {
        let derived = summarize(sql);
        let summary = match name {
            Some(name) => SharedString::const_str(name),
            None => shared(derived.text()),
        };
        let stats = self.shared.entry(&summary);
        let operation = shared(derived.operation);
        let collection = derived
            .collection
            .map_or(SharedString::const_str(""), shared);
        let key = metrics::Key::from_parts(
            DB_CLIENT_OPERATION_DURATION,
            vec![
                metrics::Label::new("db_system_name", self.system.clone()),
                metrics::Label::new("db_operation_name", operation.clone()),
                metrics::Label::new("db_collection_name", collection.clone()),
                metrics::Label::new("db_query_summary", summary.clone()),
            ],
        );
        QueryLabel(Arc::new(LabelInner {
            summary,
            operation,
            collection,
            normalized: normalize(sql).into(),
            stats,
            histogram: HistogramCell::new(key, &METADATA),
        }))
    }

    fn log_slow(
        &self,
        label: &QueryLabel,
        severity: Severity,
        elapsed: Duration,
        outcome: QueryOutcome,
        params: &dyn fmt::Debug,
    ) {
        let summary = label.summary();
        let sql = label.normalized();
        let duration_ms = millis(elapsed);
        let threshold_ms = millis(self.thresholds.threshold(severity));
        let (rows, failed) = match outcome {
            QueryOutcome::Rows(rows) => (Some(rows), false),
            QueryOutcome::Failed => (None, true),
        };
        let params = self.log_parameters.then(|| format!("{params:?}"));
        let params = params.as_deref();
        match severity {
            Severity::Warn => tracing::warn!(
                target: "towerkit_timing::query",
                summary, sql, duration_ms, threshold_ms, rows, failed, params,
                "slow query"
            ),
            Severity::Error => tracing::error!(
                target: "towerkit_timing::query",
                summary, sql, duration_ms, threshold_ms, rows, failed, params,
                "very slow query"
            ),
        }
    }
}

/// Builds a [`QueryTimer`]: infallible setters, then [`build`](Self::build), which checks
/// them all.
#[derive(Debug, Clone)]
pub struct QueryTimerBuilder {
    system: SharedString,
    slow: (Duration, Duration),
    log_parameters: bool,
    capacity: usize,
}

impl QueryTimerBuilder {
    /// Queries longer than `warn` are logged at WARN, longer than `error` at ERROR;
    /// [`build`](Self::build) fails when `error` is shorter than `warn`. Default: 500 ms
    /// and 1 s.
    #[must_use]
    pub fn slow(mut self, warn: Duration, error: Duration) -> Self {
        self.slow = (warn, error);
        self
    }

    /// Whether slow-query log lines include the parameter values. Default: off, since they
    /// may hold personal data.
    #[must_use]
    pub fn log_parameters(mut self, on: bool) -> Self {
        self.log_parameters = on;
        self
    }

    /// How many distinct SQL strings are labelled and cached, and how many labels
    /// [`QueryStats`] tracks (more go to the label `_OTHER`); 0 counts as 1. Default: 1,024.
    ///
    /// Each tracked label keeps a histogram of its durations: 2,368 counters, 18.5 KiB, so
    /// the default capacity bounds the statistics at about 18.5 MiB.
    #[must_use]
    pub fn capacity(mut self, capacity: usize) -> Self {
        self.capacity = capacity;
        self
    }

    /// The timer, once every setting is checked: fails with [`ConfigError::Slow`] when the
    /// `slow` error threshold is shorter than the warn threshold.
    pub fn build(self) -> Result<QueryTimer, ConfigError> {
        let (warn, error) = self.slow;
        Ok(QueryTimer {
            system: self.system,
            thresholds: Thresholds::new(warn, error)?,
            log_parameters: self.log_parameters,
            shared: Arc::new(Shared::new(self.capacity.max(1))),
        })
    }
}

impl Shared {
    fn new(capacity: usize) -> Self {
        static NEXT_ID: AtomicU64 = AtomicU64::new(0);
        Self {
            id: NEXT_ID.fetch_add(1, Ordering::Relaxed),
            labels: quick_cache::sync::Cache::new(capacity),
            stats: Mutex::new(HashMap::new()),
            capacity,
        }
    }

    /// The statistics entry of `summary`, shared by every SQL string with that summary; the
    /// overflow entry once `capacity` labels are tracked.
    fn entry(&self, summary: &SharedString) -> Arc<Entry> {
        let mut map = self.stats.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(entry) = map.get(summary) {
            return entry.clone();
        }
        let key = if map.len() < self.capacity {
            summary.clone()
        } else {
            SharedString::const_str(OVERFLOW_LABEL)
        };
        map.entry(key)
            .or_insert_with(|| Arc::new(Entry::new()))
            .clone()
    }
}

/// A label value whose clones share one allocation (an owned `SharedString` would copy
/// the text on every clone, that is on every query).
fn shared(text: String) -> SharedString {
    SharedString::from_shared(Arc::from(text))
}

/// What one query did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum QueryOutcome {
    /// It succeeded, returning or affecting this many rows.
    Rows(u64),
    /// It failed.
    Failed,
}

/// A query's labels, derived once per distinct SQL string by [`QueryTimer::label`] or
/// [`QueryTimer::named`]. Cheap to clone.
#[derive(Clone)]
pub struct QueryLabel(Arc<LabelInner>);

struct LabelInner {
    summary: SharedString,
    operation: SharedString,
    collection: SharedString,
    normalized: Box<str>,
    stats: Arc<Entry>,
    /// The `db_client_operation_duration_seconds` histogram with this label's labels.
    histogram: HistogramCell,
}

/// The metadata the `histogram!` macro would give the query histogram.
static METADATA: metrics::Metadata<'static> =
    metrics::Metadata::new(module_path!(), metrics::Level::INFO, Some(module_path!()));

impl fmt::Debug for QueryLabel {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("QueryLabel")
            .field("summary", &self.summary())
            .field("operation", &self.operation())
            .field("collection", &self.collection())
            .finish_non_exhaustive()
    }
}

impl QueryLabel {
    /// The `db_query_summary` label: `SELECT products`, or the caller's name.
    pub fn summary(&self) -> &str {
        &self.0.summary
    }

    /// The shared form of [`summary`](Self::summary), for metric labels.
    pub fn summary_label(&self) -> SharedString {
        self.0.summary.clone()
    }

    /// The `db_operation_name` label: `SELECT`.
    pub fn operation(&self) -> &str {
        &self.0.operation
    }

    /// The `db_collection_name` label: `products`, if the statement names a table.
    pub fn collection(&self) -> Option<&str> {
        Some(&*self.0.collection).filter(|c| !c.is_empty())
    }

    /// The SQL as logged: comments dropped, whitespace collapsed, literals replaced by `?`.
    pub fn normalized(&self) -> &str {
        &self.0.normalized
    }

    /// Claims the right to capture this label's plan now: true at most once per `interval`
    /// for each summary (every SQL string of one summary shares the claim, as it shares
    /// [`QueryStats`]; labels beyond the timer's capacity share `_OTHER`'s). A database
    /// crate calls it for a slow query before it asks its server for the plan, and hands
    /// the plan to [`record_plan`](Self::record_plan).
    pub fn claim_plan(&self, interval: Duration) -> bool {
        self.0.stats.plan.claim(interval)
    }

    /// Keeps `plan` as this summary's last plan, shown by [`QueryStats`].
    pub fn record_plan(&self, plan: PlanSummary) {
        self.0.stats.plan.record(plan);
    }

    /// This summary's last plan, if one was recorded.
    pub fn last_plan(&self) -> Option<PlanSummary> {
        self.0.stats.plan.last()
    }
}

/// Per-label query statistics, from [`QueryTimer::stats`]: for services without
/// Prometheus, or for an operations endpoint.
///
/// ```
/// use std::time::Duration;
/// use towerkit_timing::{QueryOutcome, QueryTimer};
///
/// let timer = QueryTimer::new("postgresql");
/// for (sql, ms, runs) in [("SELECT * FROM orders", 40, 3), ("SELECT * FROM users", 2, 10)] {
///     let label = timer.label(sql);
///     for _ in 0..runs {
///         timer.record(&label, Duration::from_millis(ms), QueryOutcome::Rows(1), &());
///     }
/// }
/// let stats = timer.stats();
/// let top: Vec<&str> = stats.top(1).iter().map(|label| label.label.as_str()).collect();
/// assert_eq!(top, ["SELECT orders"]);
/// ```
#[derive(Debug, Clone, Default)]
pub struct QueryStats {
    labels: Vec<LabelStats>,
}

impl QueryStats {
    /// Every label, sorted by name.
    pub fn labels(&self) -> &[LabelStats] {
        &self.labels
    }

    /// The `n` labels with the most total time, most first (ties by name).
    pub fn top(&self, n: usize) -> Vec<&LabelStats> {
        let mut labels: Vec<&LabelStats> = self.labels.iter().collect();
        labels.sort_by(|a, b| b.total.cmp(&a.total).then_with(|| a.label.cmp(&b.label)));
        labels.truncate(n);
        labels
    }

    /// One label's statistics.
    pub fn get(&self, label: &str) -> Option<&LabelStats> {
        self.labels.iter().find(|stats| stats.label == label)
    }
}

/// The statistics of one query label.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct LabelStats {
    /// The label: a summary such as `SELECT products`, a caller's name, or `_OTHER` for
    /// queries beyond the timer's capacity.
    pub label: String,
    /// Executions recorded.
    pub count: u64,
    /// Their total duration, summed from the same histogram as the quantiles (each
    /// duration counted at its bucket's midpoint, so within 1 %).
    pub total: Duration,
    /// Executions slower than the warn threshold.
    pub slow: u64,
    /// Executions that failed.
    pub failed: u64,
    /// Median duration (from a histogram whose buckets are within 1 % of their values).
    pub p50: Duration,
    /// 95th percentile duration.
    pub p95: Duration,
    /// 99th percentile duration.
    pub p99: Duration,
    /// The last plan captured for this label, if a database crate captures plans (see
    /// [`QueryLabel::claim_plan`]).
    pub plan: Option<PlanSummary>,
}

/// One label's statistics, updated without a lock: the count is the durations' count.
/// The plan slot has a lock, taken only for slow queries.
struct Entry {
    slow: AtomicU64,
    failed: AtomicU64,
    durations: Durations,
    plan: PlanSlot,
}

impl Entry {
    fn new() -> Self {
        Self {
            slow: AtomicU64::new(0),
            failed: AtomicU64::new(0),
            durations: Durations::new(),
            plan: PlanSlot::default(),
        }
    }
}

/// The label cache's key: the caller's name, if any, and the SQL text.
#[derive(PartialEq, Eq)]
struct LabelKey {
    name: Option<&'static str>,
    sql: Box<str>,
}

impl Hash for LabelKey {
    fn hash<H: Hasher>(&self, state: &mut H) {
        LabelKeyRef {
            name: self.name,
            sql: &self.sql,
        }
        .hash(state);
    }
}

/// A borrowed [`LabelKey`], so a lookup allocates nothing.
#[derive(Hash)]
struct LabelKeyRef<'a> {
    name: Option<&'static str>,
    sql: &'a str,
}

impl Equivalent<LabelKey> for LabelKeyRef<'_> {
    fn equivalent(&self, key: &LabelKey) -> bool {
        self.name == key.name && self.sql == &*key.sql
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use towerkit_test_support::{Logs, Metrics};

    #[test]
    fn recent_labels_are_told_apart_by_timer_name_and_text() {
        let (a, b) = (QueryTimer::new("postgresql"), QueryTimer::new("postgresql"));
        let sql = "SELECT id FROM products";
        for _ in 0..2 {
            a.record(
                &a.label(sql),
                Duration::from_millis(1),
                QueryOutcome::Rows(1),
                &(),
            );
        }
        b.record(
            &b.label(sql),
            Duration::from_millis(1),
            QueryOutcome::Rows(1),
            &(),
        );
        assert_eq!(a.stats().get("SELECT products").unwrap().count, 2);
        assert_eq!(b.stats().get("SELECT products").unwrap().count, 1);
        assert_eq!(a.named("by_id", sql).summary(), "by_id");
        assert_eq!(a.label(sql).summary(), "SELECT products");

        // Other text at the same address (a reused buffer) is another query.
        let mut buffer = String::from("SELECT a FROM orders");
        assert_eq!(a.label(&buffer).summary(), "SELECT orders");
        buffer.replace_range(14.., "users!");
        assert_eq!(a.label(&buffer).summary(), "SELECT users");
    }

    #[test]
    fn a_label_is_derived_once_per_sql_string() {
        let timer = QueryTimer::new("postgresql");
        let a = timer.label("SELECT * FROM products WHERE id = $1");
        let b = timer.label("SELECT * FROM products WHERE id = $1");
        assert!(
            Arc::ptr_eq(&a.0, &b.0),
            "the second lookup is served from the cache"
        );
        assert_eq!(a.summary(), "SELECT products");
        assert_eq!(a.operation(), "SELECT");
        assert_eq!(a.collection(), Some("products"));
    }

    #[test]
    fn named_and_derived_labels_of_one_sql_differ() {
        let timer = QueryTimer::new("postgresql");
        let sql = "SELECT * FROM products WHERE id = $1";
        assert_eq!(timer.named("product_by_id", sql).summary(), "product_by_id");
        assert_eq!(timer.label(sql).summary(), "SELECT products");
        assert_eq!(
            timer.named("product_by_id", sql).collection(),
            Some("products")
        );
    }

    #[test]
    fn long_sql_is_labelled_but_not_cached() {
        let timer = QueryTimer::new("postgresql");
        let sql = format!(
            "SELECT * FROM t WHERE id IN ({})",
            "1,".repeat(MAX_CACHED_SQL_LEN)
        );
        let a = timer.label(&sql);
        let b = timer.label(&sql);
        assert_eq!(a.summary(), "SELECT t");
        assert!(!Arc::ptr_eq(&a.0, &b.0));
        assert_eq!(timer.shared.labels.len(), 0);
    }

    #[test]
    fn stats_count_slow_and_failed_queries() {
        let timer = QueryTimer::builder("postgresql")
            .slow(Duration::from_millis(100), Duration::from_secs(1))
            .build()
            .unwrap();
        let label = timer.label("SELECT * FROM products");
        for ms in 1..=100 {
            timer.record(
                &label,
                Duration::from_millis(ms),
                QueryOutcome::Rows(1),
                &(),
            );
        }
        timer.record(
            &label,
            Duration::from_millis(250),
            QueryOutcome::Failed,
            &(),
        );
        let stats = timer.stats();
        let products = stats.get("SELECT products").unwrap();
        assert_eq!(
            (products.count, products.slow, products.failed),
            (101, 1, 1)
        );
        let near = |d: Duration, ms: f64| (d.as_secs_f64() * 1000.0 - ms).abs() <= ms * 0.02 + 0.5;
        assert!(near(products.p50, 51.0), "p50 {:?}", products.p50);
        assert!(near(products.p95, 96.0), "p95 {:?}", products.p95);
        assert!(near(products.p99, 100.0), "p99 {:?}", products.p99);
    }

    #[test]
    fn stats_labels_are_bounded() {
        let timer = QueryTimer::builder("postgresql")
            .capacity(2)
            .build()
            .unwrap();
        for table in ["a", "b", "c", "d"] {
            let label = timer.label(&format!("SELECT * FROM {table}"));
            timer.record(&label, Duration::from_millis(1), QueryOutcome::Rows(0), &());
        }
        let stats = timer.stats();
        let names: Vec<&str> = stats.labels().iter().map(|s| s.label.as_str()).collect();
        assert_eq!(names, ["SELECT a", "SELECT b", OVERFLOW_LABEL]);
        assert_eq!(stats.get(OVERFLOW_LABEL).unwrap().count, 2);
    }

    #[test]
    fn records_the_db_histogram_with_low_cardinality_labels() {
        let metrics = Metrics::capture();
        let timer = QueryTimer::new("postgresql");
        let label = timer.label("SELECT name FROM products WHERE id = $1 AND note = 'x'");
        timer.record(
            &label,
            Duration::from_millis(4),
            QueryOutcome::Rows(1),
            &[&"alice@example.com"],
        );
        let samples = metrics.histogram(
            DB_CLIENT_OPERATION_DURATION,
            &[
                ("db_system_name", "postgresql"),
                ("db_operation_name", "SELECT"),
                ("db_collection_name", "products"),
                ("db_query_summary", "SELECT products"),
            ],
        );
        assert_eq!(samples, [0.004]);
        for (_, labels, _) in metrics.all() {
            for (_, value) in labels {
                assert!(
                    !value.contains("WHERE") && !value.contains("alice"),
                    "label value {value:?}"
                );
            }
        }
    }

    #[test]
    fn slow_queries_are_logged_without_parameters_by_default() {
        let logs = Logs::capture();
        let timer = QueryTimer::builder("postgresql")
            .slow(Duration::from_millis(100), Duration::from_secs(1))
            .build()
            .unwrap();
        let label = timer.label("SELECT *\n FROM users WHERE email = $1 AND pin = '1234'");
        timer.record(
            &label,
            Duration::from_millis(50),
            QueryOutcome::Rows(1),
            &[&"alice@example.com"],
        );
        assert!(logs.lines_with("slow query").is_empty(), "{}", logs.text());
        timer.record(
            &label,
            Duration::from_millis(150),
            QueryOutcome::Rows(3),
            &[&"alice@example.com"],
        );
        let lines = logs.lines_with("slow query");
        assert_eq!(lines.len(), 1, "{}", logs.text());
        let line = &lines[0];
        assert!(line.contains("WARN"), "{line}");
        assert!(line.contains("summary=\"SELECT users\""), "{line}");
        assert!(
            line.contains("sql=\"SELECT * FROM users WHERE email = $1 AND pin = ?\""),
            "{line}"
        );
        assert!(line.contains("duration_ms=150"), "{line}");
        assert!(line.contains("rows=3"), "{line}");
        assert!(!line.contains("alice") && !line.contains("1234"), "{line}");
    }

    #[test]
    fn very_slow_queries_are_logged_at_error() {
        let logs = Logs::capture();
        let timer = QueryTimer::builder("postgresql")
            .slow(Duration::from_millis(10), Duration::from_millis(100))
            .build()
            .unwrap();
        let label = timer.label("DELETE FROM sessions");
        timer.record(
            &label,
            Duration::from_millis(150),
            QueryOutcome::Failed,
            &(),
        );
        let lines = logs.lines_with("very slow query");
        assert_eq!(lines.len(), 1, "{}", logs.text());
        assert!(
            lines[0].contains("ERROR") && lines[0].contains("failed=true"),
            "{}",
            lines[0]
        );
    }

    #[test]
    fn parameters_are_logged_when_enabled() {
        let logs = Logs::capture();
        let timer = QueryTimer::builder("postgresql")
            .slow(Duration::from_millis(1), Duration::from_secs(1))
            .log_parameters(true)
            .build()
            .unwrap();
        let label = timer.label("SELECT * FROM users WHERE email = $1");
        timer.record(
            &label,
            Duration::from_millis(5),
            QueryOutcome::Rows(1),
            &[&"alice@example.com"],
        );
        let lines = logs.lines_with("slow query");
        assert!(
            lines.len() == 1 && lines[0].contains("alice@example.com"),
            "{}",
            logs.text()
        );
    }

    #[test]
    fn top_sorts_labels_by_total_time_and_shows_the_last_plan() {
        let timer = QueryTimer::builder("postgresql")
            .slow(Duration::from_millis(100), Duration::from_secs(1))
            .build()
            .unwrap();
        let runs = [
            ("SELECT * FROM a", 1, 50),  // 50 ms in all
            ("SELECT * FROM b", 30, 3),  // 90 ms
            ("SELECT * FROM c", 200, 1), // 200 ms, slow
        ];
        for (sql, ms, count) in runs {
            let label = timer.label(sql);
            for _ in 0..count {
                timer.record(
                    &label,
                    Duration::from_millis(ms),
                    QueryOutcome::Rows(1),
                    &(),
                );
            }
        }
        let slow = timer.label("SELECT * FROM c");
        assert!(slow.claim_plan(Duration::from_secs(60)));
        assert!(
            !timer
                .label("SELECT id FROM c")
                .claim_plan(Duration::from_secs(60)),
            "one claim per summary"
        );
        let plan = PlanSummary {
            node: "Seq Scan".to_owned(),
            total_cost: 35.5,
            rows: 1.0,
            captured_at: std::time::SystemTime::now(),
        };
        slow.record_plan(plan.clone());

        let stats = timer.stats();
        let top = stats.top(2);
        let names: Vec<&str> = top.iter().map(|s| s.label.as_str()).collect();
        assert_eq!(names, ["SELECT c", "SELECT b"]);
        assert_eq!((top[0].count, top[0].slow), (1, 1));
        assert_eq!(top[0].plan.as_ref(), Some(&plan));
        assert_eq!(top[1].plan, None);
        let near = |d: Duration, ms: f64| (d.as_secs_f64() * 1000.0 - ms).abs() <= ms * 0.01;
        assert!(near(top[0].total, 200.0), "{:?}", top[0].total);
        assert!(near(top[1].total, 90.0), "{:?}", top[1].total);
        assert_eq!(stats.top(10).len(), 3);
    }

    #[test]
    fn labels_beyond_the_capacity_share_the_overflow_plan_claim() {
        let timer = QueryTimer::builder("postgresql")
            .capacity(1)
            .build()
            .unwrap();
        let interval = Duration::from_secs(60);
        let (a, b, c) = (
            timer.label("SELECT * FROM a"),
            timer.label("SELECT * FROM b"),
            timer.label("SELECT * FROM c"),
        );
        assert!(a.claim_plan(interval));
        assert!(b.claim_plan(interval), "b is in _OTHER, not in a's entry");
        assert!(!c.claim_plan(interval), "c shares _OTHER's claim with b");
    }

    #[test]
    fn record_says_how_slow_the_query_was() {
        let timer = QueryTimer::builder("postgresql")
            .slow(Duration::from_millis(10), Duration::from_millis(100))
            .build()
            .unwrap();
        let label = timer.label("SELECT 1");
        let severities = [5, 50, 500].map(|ms| {
            timer.record(
                &label,
                Duration::from_millis(ms),
                QueryOutcome::Rows(1),
                &(),
            )
        });
        assert_eq!(
            severities,
            [None, Some(Severity::Warn), Some(Severity::Error)]
        );
    }

    #[test]
    fn labels_of_one_summary_share_statistics() {
        let timer = QueryTimer::new("postgresql");
        for sql in [
            "SELECT id FROM products",
            "SELECT name FROM products WHERE id = $1",
        ] {
            let label = timer.label(sql);
            timer.record(&label, Duration::from_millis(1), QueryOutcome::Rows(1), &());
        }
        assert_eq!(timer.stats().get("SELECT products").unwrap().count, 2);
    }
}
