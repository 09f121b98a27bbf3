//! The `tracing` spans of queries and pool waits, in their own test binary: tracing's
//! per-callsite interest is process-wide, so a test recording spans must not share its
//! process with other tests.

mod common;

use std::collections::HashMap;
use std::fmt;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::builder;
use towerkit_db::Db;
use tracing::span::{Attributes, Id, Record};
use tracing::subscriber::DefaultGuard;
use tracing_subscriber::layer::{Context, SubscriberExt};
use tracing_subscriber::registry::LookupSpan;

/// The value bound to the query's parameter: it must appear in no span.
const SECRET: i32 = 987_654_321;

#[tokio::test]
async fn a_query_span_names_the_query_but_not_its_text_by_default() {
    let (spans, _guard) = Spans::record();
    let db = Db::connect(builder().build().unwrap()).await.unwrap();
    let sql = "SELECT $1::int AS n";
    db.query_one(sql, &[&SECRET]).await.unwrap();
    let query = spans.only("db.query");
    assert_eq!(query["db.system.name"], "postgresql");
    assert_eq!(query["db.operation.name"], "SELECT");
    assert!(!query["db.query.summary"].is_empty());
    assert_eq!(query["otel.kind"], "client");
    assert!(!query.contains_key("db.query.text"), "{query:?}");
    spans.assert_nowhere(&SECRET.to_string());
}

#[tokio::test]
async fn query_text_is_recorded_when_enabled_without_values() {
    let (spans, _guard) = Spans::record();
    let db = Db::connect(builder().trace_query_text(true).build().unwrap())
        .await
        .unwrap();
    let sql = "SELECT $1::int AS n";
    db.query_one(sql, &[&SECRET]).await.unwrap();
    assert_eq!(spans.only("db.query")["db.query.text"], sql);
    spans.assert_nowhere(&SECRET.to_string());
}

#[tokio::test]
async fn a_failed_query_is_an_error_span() {
    let (spans, _guard) = Spans::record();
    let db = Db::connect(builder().build().unwrap()).await.unwrap();
    let failed = db.query_one("SELECT 1 / $1::int", &[&0i32]).await;
    assert!(failed.is_err());
    let query = spans.only("db.query");
    assert_eq!(query["otel.status_code"], "ERROR");
    assert_eq!(query["error.type"], "query");
}

#[tokio::test]
async fn waiting_for_a_connection_is_a_span() {
    let (spans, _guard) = Spans::record();
    let db = Db::connect(builder().max_size(1).build().unwrap())
        .await
        .unwrap();
    // A free connection is taken at once: no wait span.
    db.query_one("SELECT 1", &[]).await.unwrap();
    assert!(spans.named("db.client.connection.wait").is_empty());
    // The only connection held elsewhere: the query waits for it.
    let held = db.pool().get().await.unwrap();
    let release = async {
        tokio::time::sleep(Duration::from_millis(50)).await;
        drop(held);
    };
    let (result, ()) = tokio::join!(db.query_one("SELECT 2", &[]), release);
    result.unwrap();
    let waits = spans.named("db.client.connection.wait");
    assert_eq!(waits.len(), 1, "{waits:?}");
    assert_eq!(waits[0]["db.client.connection.pool.name"], "default");
}

/// A span's fields, as text.
type SpanFields = HashMap<&'static str, String>;

/// The spans recorded: name and fields.
#[derive(Clone, Default)]
struct Spans(Arc<Mutex<Vec<(&'static str, SpanFields)>>>);

/// A span's index in [`Spans`], kept in its extensions.
struct Index(usize);

impl Spans {
    fn record() -> (Self, DefaultGuard) {
        let spans = Spans::default();
        let guard =
            tracing::subscriber::set_default(tracing_subscriber::registry().with(spans.clone()));
        (spans, guard)
    }

    fn named(&self, name: &str) -> Vec<SpanFields> {
        let spans = self.0.lock().unwrap();
        spans
            .iter()
            .filter(|(n, _)| *n == name)
            .map(|(_, fields)| fields.clone())
            .collect()
    }

    fn only(&self, name: &str) -> SpanFields {
        let mut found = self.named(name);
        assert_eq!(found.len(), 1, "{found:?}");
        found.remove(0)
    }

    fn assert_nowhere(&self, text: &str) {
        for (name, fields) in self.0.lock().unwrap().iter() {
            for (field, value) in fields {
                assert!(!value.contains(text), "{field}={value} in {name}");
            }
        }
    }
}

struct Fields<'a>(&'a mut HashMap<&'static str, String>);

impl tracing::field::Visit for Fields<'_> {
    fn record_str(&mut self, field: &tracing::field::Field, value: &str) {
        self.0.insert(field.name(), value.to_owned());
    }

    fn record_debug(&mut self, field: &tracing::field::Field, value: &dyn fmt::Debug) {
        self.0.insert(field.name(), format!("{value:?}"));
    }
}

impl<S> tracing_subscriber::Layer<S> for Spans
where
    S: tracing::Subscriber + for<'a> LookupSpan<'a>,
{
    fn on_new_span(&self, attrs: &Attributes<'_>, id: &Id, ctx: Context<'_, S>) {
        let mut fields = HashMap::new();
        attrs.record(&mut Fields(&mut fields));
        let mut spans = self.0.lock().unwrap();
        if let Some(span) = ctx.span(id) {
            span.extensions_mut().insert(Index(spans.len()));
        }
        spans.push((attrs.metadata().name(), fields));
    }

    fn on_record(&self, id: &Id, values: &Record<'_>, ctx: Context<'_, S>) {
        let Some(index) = ctx
            .span(id)
            .and_then(|span| span.extensions().get::<Index>().map(|i| i.0))
        else {
            return;
        };
        if let Some((_, fields)) = self.0.lock().unwrap().get_mut(index) {
            values.record(&mut Fields(fields));
        }
    }
}
