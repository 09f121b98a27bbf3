//! Varnish in front of the service, as a CDN: it keeps what `CDN-Cache-Control` allows,
//! indexes each response by the keys the service sends in `xkey`, and is purged by key when
//! the service invalidates (`VARNISH_PURGE_NODES`). Varnish (with varnish-modules, for
//! xkey) is started by the test on a free port with `varnish/default.vcl`, and removed
//! afterwards; without `varnishd` the test fails and says how to install it (`cargo xtask
//! test` installs it).

mod support;

use std::time::{Duration, Instant};

use axum::http::{HeaderMap, HeaderName, Method, Request, StatusCode};
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use serde_json::{Value, json};
use support::{Served, TestApp, bearer};
use towerkit_test_support::servers::{Varnish, free_port};

/// The VCL the README tells users to start from.
const VCL: &str = include_str!("../varnish/default.vcl");

/// The routes filled: two product pages (tags `product:N`), the list (`products`), the
/// categories (`categories`).
const PRODUCT_1: &str = "/api/products/1";
const PRODUCT_2: &str = "/api/products/2";
const LIST: &str = "/api/products";
const CATEGORIES: &str = "/api/categories";

/// A response through Varnish.
struct Answer {
    status: StatusCode,
    headers: HeaderMap,
    body: Bytes,
}

impl Answer {
    /// Whether Varnish answered from its cache: `X-Varnish` names the object's request
    /// too ("32770 3") on a hit, only this request ("32770") on a miss or pass.
    fn hit(&self) -> bool {
        self.headers
            .get("x-varnish")
            .and_then(|v| v.to_str().ok())
            .is_some_and(|ids| ids.split_whitespace().count() == 2)
    }

    fn json(&self) -> Value {
        serde_json::from_slice(&self.body)
            .unwrap_or_else(|e| panic!("not JSON ({e}): {}", String::from_utf8_lossy(&self.body)))
    }
}

/// The service on a real listener, and Varnish in front of it purged by the service.
struct Stack {
    app: TestApp,
    _served: Served,
    varnish: Varnish,
    client: Client<HttpConnector, Full<Bytes>>,
}

impl Stack {
    async fn start() -> Stack {
        // Varnish's port first: the service is configured with it, and Varnish's VCL with
        // the service's.
        let port = free_port().expect("a free port");
        let app = TestApp::start_with(|config| {
            config.varnish_purge_nodes = vec![format!("http://127.0.0.1:{port}")];
            config.cdn_tag_headers = vec![HeaderName::from_static("xkey")];
            config.cdn_cache_control = Some("max-age=600".to_owned());
        })
        .await;
        let served = Served::start(app.router.clone()).await;
        let vcl = VCL.replace(
            ".port = \"3000\";",
            &format!(".port = \"{}\";", served.addr.port()),
        );
        assert_ne!(vcl, VCL, "the VCL's backend port is set");
        let varnish = tokio::task::spawn_blocking(move || Varnish::start_on(port, &vcl))
            .await
            .expect("the start does not panic")
            .unwrap_or_else(|e| panic!("{e}"));
        Stack {
            app,
            _served: served,
            varnish,
            client: Client::builder(TokioExecutor::new()).build_http(),
        }
    }

    async fn send(
        &self,
        method: Method,
        path: &str,
        headers: &[(&str, String)],
        body: Bytes,
    ) -> Answer {
        let mut request = Request::builder()
            .method(method)
            .uri(format!("{}{path}", self.varnish.url()));
        for (name, value) in headers {
            request = request.header(*name, value);
        }
        let request = request.body(Full::new(body)).expect("request");
        let response = tokio::time::timeout(Duration::from_secs(10), self.client.request(request))
            .await
            .expect("Varnish answers within 10 s")
            .expect("Varnish answers");
        let (head, body) = response.into_parts();
        Answer {
            status: head.status,
            headers: head.headers,
            body: body.collect().await.expect("body").to_bytes(),
        }
    }

    async fn get(&self, path: &str) -> Answer {
        let answer = self.send(Method::GET, path, &[], Bytes::new()).await;
        assert_eq!(
            answer.status,
            StatusCode::OK,
            "GET {path}: {:?}",
            answer.body
        );
        answer
    }

    /// The objects Varnish holds, once the count has settled (a purged object leaves the
    /// count when its last reference goes, which may follow the purge by a moment).
    async fn objects(&self, expected: u64) -> u64 {
        let deadline = Instant::now() + Duration::from_secs(5);
        loop {
            let objects = self
                .varnish
                .stat("MAIN.n_object")
                .expect("varnishstat runs");
            if objects == expected || Instant::now() > deadline {
                return objects;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_write_purges_its_tags_from_varnish_and_nothing_else() {
    let stack = Stack::start().await;

    // Filled: each route a miss, then a hit.
    let mut first = Vec::new();
    for path in [PRODUCT_1, PRODUCT_2, LIST, CATEGORIES] {
        let miss = stack.get(path).await;
        assert!(!miss.hit(), "{path} is a miss first");
        assert!(
            !miss.headers.contains_key("xkey"),
            "Varnish keeps the keys to itself"
        );
        first.push(miss.body);
    }
    for path in [PRODUCT_1, PRODUCT_2, LIST, CATEGORIES] {
        assert!(stack.get(path).await.hit(), "{path} is a hit second");
    }
    assert_eq!(stack.objects(4).await, 4);
    // What the service told Varnish: its keys and TTL.
    let direct = stack.app.get(PRODUCT_1).await;
    assert_eq!(
        support::header(&direct, "xkey"),
        "product:1 path:/api/products/1"
    );
    assert_eq!(support::header(&direct, "cdn-cache-control"), "max-age=600");

    // A write through Varnish (which passes it): the service invalidates `product:1` and
    // `products`, in its cache and then in Varnish.
    let product = stack.get(PRODUCT_1).await.json();
    let mut headers = vec![
        ("authorization", bearer()),
        ("content-type", "application/json".to_owned()),
    ];
    // With validators on the product routes, the write names the version it replaces.
    if let Some(etag) = stack.get(PRODUCT_1).await.headers.get("etag") {
        headers.push(("if-match", etag.to_str().expect("ASCII").to_owned()));
    }
    let update = json!({
        "name": "Renamed behind Varnish",
        "category_id": product["category_id"],
        "price_cents": product["price_cents"],
        "stock": 7,
    });
    let put = stack
        .send(
            Method::PUT,
            PRODUCT_1,
            &headers,
            Bytes::from(update.to_string()),
        )
        .await;
    assert_eq!(put.status, StatusCode::OK, "{:?}", put.body);

    // Two invalidations, one object each: the product page and the list.
    assert_eq!(stack.objects(2).await, 2, "objects left after the write");
    let renamed = stack.get(PRODUCT_1).await;
    assert!(!renamed.hit(), "the product was purged");
    assert_eq!(renamed.json()["name"], "Renamed behind Varnish");
    let list = stack.get(LIST).await;
    assert!(!list.hit(), "the list was purged");
    assert_eq!(list.json()["data"][0]["name"], "Renamed behind Varnish");
    for (path, body) in [(PRODUCT_2, &first[1]), (CATEGORIES, &first[3])] {
        let kept = stack.get(path).await;
        assert!(kept.hit(), "{path} was not purged");
        assert_eq!(&kept.body, body, "{path} is the object filled first");
    }
    assert_eq!(stack.objects(4).await, 4);

    // The handle's other events reach Varnish too: a path, by its path key...
    let cache = stack.app.state.cache().expect("the cache runs");
    cache
        .invalidate_path(PRODUCT_2)
        .await
        .expect("the store invalidates");
    assert_eq!(stack.objects(3).await, 3, "one object per invalidation");
    assert!(!stack.get(PRODUCT_2).await.hit(), "the path was purged");
    assert!(stack.get(CATEGORIES).await.hit(), "the categories were not");
    // ...and a purge, by a ban of everything.
    cache.purge().await.expect("the store purges");
    for path in [PRODUCT_1, PRODUCT_2, LIST, CATEGORIES] {
        assert!(!stack.get(path).await.hit(), "{path} was banned");
    }
}

#[tokio::test]
async fn a_write_succeeds_when_a_varnish_node_is_down_and_the_failure_is_counted() {
    // Nothing listens on a port just released.
    let port = free_port().expect("a free port");
    let app = TestApp::start_with(|config| {
        config.varnish_purge_nodes = vec![format!("http://127.0.0.1:{port}")];
    })
    .await;
    example_service::install_metrics_recorder();
    let started = Instant::now();
    let update = json!({"name": "Renamed with Varnish down", "category_id": 1, "price_cents": 100});
    let mut request = app
        .write(Method::PUT, "/api/products/5")
        .header("content-type", "application/json");
    if let Some(etag) = app.get("/api/products/5").await.headers.get("etag") {
        request = request.header("if-match", etag.clone());
    }
    let reply = app
        .send_request(
            request
                .body(axum::body::Body::from(update.to_string()))
                .expect("request"),
        )
        .await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.text());
    // Two tags, each tried three times with waits of 100 and 200 ms: well under the
    // purger's bound of about 6.3 s per invalidation.
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "{:?}",
        started.elapsed()
    );
    let metrics = app.admin_get("/metrics").await.text();
    let line = format!("http_cache_cdn_purge_failures_total{{node=\"127.0.0.1:{port}\"}} 2");
    assert!(metrics.contains(&line), "{line} in:\n{metrics}");
}
