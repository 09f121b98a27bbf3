//! A CDN in front: tags sent on as surrogate keys (`send_tags_as`), and invalidation hooks
//! called by the handle.

use std::sync::{Arc, Mutex};

use axum::http::{HeaderName, StatusCode};
use towerkit_cache::{
    CacheLayer, ConfigError, HookFuture, Invalidation, InvalidationHook, MemoryStore,
    SURROGATE_KEY, XKEY,
};

mod common;

use common::{Origin, cached, get_req, response, send, with};

fn layer_sending(names: &[HeaderName]) -> CacheLayer {
    CacheLayer::builder(MemoryStore::new(16 * 1024 * 1024))
        .send_tags_as(names.iter().cloned())
        .build()
        .unwrap()
}

#[tokio::test]
async fn tags_go_out_as_surrogate_keys_on_misses_and_hits() {
    let layer = layer_sending(&[SURROGATE_KEY, XKEY]);
    let origin = Origin::default();
    let service = cached(
        &layer,
        &origin,
        &[
            ("cache-control", "max-age=60"),
            ("cache-tag", "products, product:42"),
        ],
    );
    let miss = send(&service, get_req("/products/42?page=2")).await;
    let hit = send(&service, get_req("/products/42?page=2")).await;
    assert!(hit.is_hit());
    for seen in [&miss, &hit] {
        assert_eq!(
            seen.header("surrogate-key"),
            "products product:42 path:/products/42"
        );
        assert_eq!(seen.header("xkey"), "products product:42 path:/products/42");
        assert!(!seen.headers.contains_key("cache-tag"));
    }
    // The stored entry is tagged as before: the path key purges it.
    layer
        .handle()
        .invalidate_path("/products/42")
        .await
        .unwrap();
    assert!(
        !send(&service, get_req("/products/42?page=2"))
            .await
            .is_hit()
    );
}

#[tokio::test]
async fn untagged_and_unstored_responses_carry_their_path_key() {
    let layer = layer_sending(&[XKEY]);
    let origin = Origin::default();
    // Not stored (no freshness at all), yet a CDN may keep it: it learns its keys.
    let service = cached(&layer, &origin, &[("cache-tag", "a,b")]);
    let seen = send(&service, get_req("/x,y")).await;
    assert!(seen.header("cache-status").contains("fwd=miss"), "{seen:?}");
    assert_eq!(seen.header("xkey"), "a b path:/x%2Cy");
    let untagged = cached(&layer, &origin, &[("cache-control", "max-age=60")]);
    assert_eq!(
        send(&untagged, get_req("/plain")).await.header("xkey"),
        "path:/plain"
    );
}

#[tokio::test]
async fn bypassed_responses_carry_their_own_tags_only() {
    let layer = layer_sending(&[SURROGATE_KEY]);
    let origin = Origin::default();
    let service = cached(&layer, &origin, &[("cache-tag", "products")]);
    let seen = send(
        &service,
        with("/products", &[("cache-control", "no-store")]),
    )
    .await;
    assert!(
        seen.header("cache-status").contains("fwd=bypass"),
        "{seen:?}"
    );
    assert_eq!(seen.header("surrogate-key"), "products");
    assert!(!seen.headers.contains_key("cache-tag"));
    let untagged = cached(&layer, &origin, &[]);
    let seen = send(
        &untagged,
        with("/products", &[("cache-control", "no-store")]),
    )
    .await;
    assert!(!seen.headers.contains_key("surrogate-key"));
}

#[tokio::test]
async fn the_handlers_own_key_field_is_replaced_and_off_by_default_nothing_is_sent() {
    let layer = layer_sending(&[SURROGATE_KEY]);
    let origin = Origin::default();
    let service = cached(
        &layer,
        &origin,
        &[
            ("cache-control", "max-age=60"),
            ("cache-tag", "t"),
            ("surrogate-key", "own"),
        ],
    );
    assert_eq!(
        send(&service, get_req("/p")).await.header("surrogate-key"),
        "t path:/p"
    );

    let default = CacheLayer::new(MemoryStore::new(1024 * 1024));
    let service = cached(
        &default,
        &origin,
        &[("cache-control", "max-age=60"), ("cache-tag", "t")],
    );
    for _ in 0..2 {
        let seen = send(&service, get_req("/q")).await;
        assert!(!seen.headers.contains_key("cache-tag"));
        assert!(!seen.headers.contains_key("surrogate-key"));
        assert!(!seen.headers.contains_key("xkey"));
    }
}

#[tokio::test]
async fn a_revalidated_entry_keeps_its_keys_unless_the_304_names_new_tags() {
    let layer = layer_sending(&[XKEY]);
    let origin = Origin::default();
    let service = tower::ServiceBuilder::new()
        .layer(layer.clone())
        .service(origin.service(|request, n| {
            if n == 1 {
                return response(
                    200,
                    &[
                        ("cache-control", "max-age=0"),
                        ("etag", "\"v1\""),
                        ("cache-tag", "old"),
                    ],
                    "body",
                );
            }
            assert_eq!(request.headers()["if-none-match"], "\"v1\"");
            if n == 2 {
                response(
                    304,
                    &[("cache-control", "max-age=0"), ("etag", "\"v1\"")],
                    "",
                )
            } else {
                response(
                    304,
                    &[
                        ("cache-control", "max-age=0"),
                        ("etag", "\"v1\""),
                        ("cache-tag", "new"),
                    ],
                    "",
                )
            }
        }));
    assert_eq!(
        send(&service, get_req("/r")).await.header("xkey"),
        "old path:/r"
    );
    let revalidated = send(&service, get_req("/r")).await;
    assert_eq!(revalidated.status, StatusCode::OK);
    assert_eq!(revalidated.header("xkey"), "old path:/r");
    assert_eq!(
        send(&service, get_req("/r")).await.header("xkey"),
        "new path:/r"
    );
}

#[test]
fn tag_fields_with_a_meaning_of_their_own_are_refused() {
    for name in [
        "cache-control",
        "vary",
        "etag",
        "set-cookie",
        "cache-status",
        "towerkit-cache-control",
    ] {
        let error = CacheLayer::builder(MemoryStore::new(1024))
            .send_tags_as([HeaderName::from_static(name)])
            .build()
            .unwrap_err();
        assert!(
            matches!(&error, ConfigError::InvalidField { setting: "send_tags_as", value } if value == name),
            "{name}: {error:?}"
        );
    }
    // Keeping the tag header itself, rewritten, is allowed.
    assert!(
        CacheLayer::builder(MemoryStore::new(1024))
            .tag_header(SURROGATE_KEY)
            .send_tags_as([SURROGATE_KEY])
            .build()
            .is_ok()
    );
}

/// A hook recording what it was told, failing when asked to.
#[derive(Clone, Default)]
struct Recorder {
    events: Arc<Mutex<Vec<Invalidation>>>,
    fail: bool,
}

impl InvalidationHook for Recorder {
    fn invalidated<'a>(&'a self, event: &'a Invalidation) -> HookFuture<'a> {
        Box::pin(async move {
            tokio::task::yield_now().await;
            self.events.lock().unwrap().push(event.clone());
            if self.fail {
                return Err("the CDN said no".into());
            }
            Ok(())
        })
    }
}

#[tokio::test]
async fn the_handle_calls_every_hook_after_the_store() {
    let first = Recorder::default();
    let failing = Recorder {
        fail: true,
        ..Recorder::default()
    };
    let layer = CacheLayer::builder(MemoryStore::new(16 * 1024 * 1024))
        .invalidation_hook(first.clone())
        .invalidation_hook(failing.clone())
        .build()
        .unwrap();
    let origin = Origin::default();
    let service = cached(
        &layer,
        &origin,
        &[("cache-control", "max-age=60"), ("cache-tag", "t")],
    );
    send(&service, get_req("/a?x=1")).await;
    let handle = layer.handle();
    // A failing hook is logged; the store's count is still returned.
    assert_eq!(handle.invalidate_tag("t").await.unwrap(), 1);
    assert_eq!(handle.invalidate_path("/a?x=1#f").await.unwrap(), 0);
    handle.purge().await.unwrap();
    let expected = [
        Invalidation::Tag("t".into()),
        Invalidation::Path("/a".into()),
        Invalidation::Purge,
    ];
    assert_eq!(*first.events.lock().unwrap(), expected);
    assert_eq!(*failing.events.lock().unwrap(), expected);
    // Layers made from this one share its hooks; a layer without them calls none.
    let routed = layer.to_builder().build().unwrap();
    routed.handle().invalidate_tag("u").await.unwrap();
    assert_eq!(first.events.lock().unwrap().len(), 4);
    CacheLayer::new(MemoryStore::new(1024))
        .handle()
        .purge()
        .await
        .unwrap();
    assert_eq!(first.events.lock().unwrap().len(), 4);
}
