//! The cache's `tracing` spans, in their own test binary: tracing's per-callsite interest is
//! process-wide, so a test recording spans must not share its process with other tests.

use std::collections::HashMap;
use std::convert::Infallible;
use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::Body;
use axum::http::Request;
use towerkit_cache::{CacheLayer, MemoryStore};
use tracing::span::{Attributes, Id, Record};
use tracing::subscriber::DefaultGuard;
use tracing_subscriber::layer::{Context, SubscriberExt};
use tracing_subscriber::registry::LookupSpan;

mod common;

use common::{Origin, cached, get_req, response, send};

#[tokio::test]
async fn followers_link_to_the_origin_call_they_wait_for() {
    let (spans, _guard) = Spans::record();
    let gate = Arc::new(tokio::sync::Semaphore::new(0));
    let held = gate.clone();
    let service = tower::service_fn(move |_request: Request<Body>| {
        let held = held.clone();
        async move {
            let _permit = held.acquire().await.unwrap();
            Ok::<_, Infallible>(response(200, &[("cache-control", "max-age=60")], "shared"))
        }
    });
    let app = tower::ServiceBuilder::new()
        .layer(CacheLayer::new(MemoryStore::new(1 << 20)))
        .service(service);
    let requests =
        futures_util::future::join_all((0..3).map(|_| send(&app, get_req("/private?u=42"))));
    let opener = async {
        for _ in 0..20 {
            tokio::task::yield_now().await;
        }
        gate.add_permits(3);
    };
    let (seen, ()) = tokio::join!(requests, opener);
    assert!(seen.iter().all(|seen| seen.body == "shared"));

    let lookups = spans.named("cache.lookup");
    assert_eq!(lookups.len(), 3, "{lookups:#?}");
    let leaders: Vec<&Recorded> = lookups.iter().filter(|s| s.follows.is_empty()).collect();
    assert_eq!(leaders.len(), 1, "{lookups:#?}");
    let leader = leaders[0];
    assert_eq!(leader.field("cache.result"), "miss");
    for follower in lookups.iter().filter(|s| s.serial != leader.serial) {
        // Linked to the leader's span, not parented by it.
        assert_eq!(follower.follows, [leader.serial], "{follower:#?}");
        assert_ne!(follower.parent, Some(leader.serial));
        assert_eq!(follower.field("cache.coalesced"), "true");
    }
    // One key, one hash, and never the key.
    let hash = leader.field("cache.key.hash");
    assert_eq!(hash.len(), 16);
    assert!(lookups.iter().all(|s| s.field("cache.key.hash") == hash));
    spans.assert_nowhere("private");
    spans.assert_nowhere("u=42");
}

#[tokio::test]
async fn a_background_refresh_is_a_root_linked_to_its_request() {
    let (spans, _guard) = Spans::record();
    let origin = Origin::default();
    let app = cached(
        &CacheLayer::new(MemoryStore::new(1 << 20)),
        &origin,
        &[("cache-control", "max-age=0, stale-while-revalidate=60")],
    );
    send(&app, get_req("/a")).await;
    let stale = send(&app, get_req("/a")).await;
    assert!(stale.header("cache-status").contains("ttl=-"), "{stale:?}");
    for _ in 0..400 {
        if !spans.named("cache.refresh").is_empty() && origin.calls() == 2 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let refresh = spans.named("cache.refresh");
    assert_eq!(refresh.len(), 1, "{refresh:#?}");
    let refresh = &refresh[0];
    assert_eq!(
        refresh.parent, None,
        "the refresh outlives its request: a root"
    );
    let stale_lookup: Vec<Recorded> = spans
        .named("cache.lookup")
        .into_iter()
        .filter(|s| s.field("cache.result") == "stale")
        .collect();
    assert_eq!(stale_lookup.len(), 1, "{stale_lookup:#?}");
    assert_eq!(refresh.follows, [stale_lookup[0].serial]);
    assert_eq!(
        refresh.field("cache.key.hash"),
        stale_lookup[0].field("cache.key.hash")
    );
}

/// A span as recorded: a serial number of its own (span ids are reused once closed), its
/// parent's and the spans it follows from, and its fields as text.
#[derive(Debug, Clone)]
struct Recorded {
    serial: u64,
    name: &'static str,
    parent: Option<u64>,
    follows: Vec<u64>,
    fields: HashMap<&'static str, String>,
}

impl Recorded {
    fn field(&self, name: &str) -> &str {
        self.fields.get(name).map_or("", String::as_str)
    }
}

#[derive(Clone, Default)]
struct Spans {
    recorded: Arc<Mutex<Vec<Recorded>>>,
    next: Arc<AtomicU64>,
}

/// The serial kept in a span's extensions.
struct Serial(u64);

impl Spans {
    fn record() -> (Self, DefaultGuard) {
        let spans = Spans::default();
        let guard =
            tracing::subscriber::set_default(tracing_subscriber::registry().with(spans.clone()));
        (spans, guard)
    }

    fn named(&self, name: &str) -> Vec<Recorded> {
        let recorded = self.recorded.lock().unwrap();
        recorded
            .iter()
            .filter(|s| s.name == name)
            .cloned()
            .collect()
    }

    fn assert_nowhere(&self, text: &str) {
        for span in self.recorded.lock().unwrap().iter() {
            for (name, value) in &span.fields {
                assert!(!value.contains(text), "{name}={value} in {span:#?}");
            }
        }
    }

    fn serial_of<S>(id: &Id, ctx: &Context<'_, S>) -> Option<u64>
    where
        S: tracing::Subscriber + for<'a> LookupSpan<'a>,
    {
        ctx.span(id)?.extensions().get::<Serial>().map(|s| s.0)
    }

    fn update(&self, serial: u64, f: impl FnOnce(&mut Recorded)) {
        let mut recorded = self.recorded.lock().unwrap();
        if let Some(span) = recorded.iter_mut().find(|s| s.serial == serial) {
            f(span);
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
        let serial = self.next.fetch_add(1, Ordering::Relaxed);
        let parent = if attrs.is_root() {
            None
        } else if let Some(parent) = attrs.parent() {
            Self::serial_of(parent, &ctx)
        } else {
            ctx.current_span()
                .id()
                .and_then(|parent| Self::serial_of(parent, &ctx))
        };
        let mut fields = HashMap::new();
        attrs.record(&mut Fields(&mut fields));
        if let Some(span) = ctx.span(id) {
            span.extensions_mut().insert(Serial(serial));
        }
        self.recorded.lock().unwrap().push(Recorded {
            serial,
            name: attrs.metadata().name(),
            parent,
            follows: Vec::new(),
            fields,
        });
    }

    fn on_record(&self, id: &Id, values: &Record<'_>, ctx: Context<'_, S>) {
        if let Some(serial) = Self::serial_of(id, &ctx) {
            self.update(serial, |span| values.record(&mut Fields(&mut span.fields)));
        }
    }

    fn on_follows_from(&self, id: &Id, follows: &Id, ctx: Context<'_, S>) {
        if let (Some(serial), Some(follows)) =
            (Self::serial_of(id, &ctx), Self::serial_of(follows, &ctx))
        {
            self.update(serial, |span| span.follows.push(follows));
        }
    }
}
