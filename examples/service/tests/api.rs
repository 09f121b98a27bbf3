//! The example service end to end: every route against a real PostgreSQL database of its
//! own (and Redis for the tiered cache), through the whole layer stack.

mod support;

use axum::http::{Method, StatusCode};
use serde_json::{Value, json};
use support::{TestApp, header};

#[tokio::test]
async fn list_is_paged_in_sql_with_links_and_total() {
    let app = TestApp::start().await;
    let response = app.get("/api/products?page=2&limit=5").await;
    assert_eq!(response.status, StatusCode::OK);
    assert_eq!(header(&response, "x-total-count"), "10000");
    let link = header(&response, "link");
    assert!(
        link.contains("<http://127.0.0.1:3000/api/products?page=3&limit=5>; rel=\"next\""),
        "{link}"
    );
    assert!(link.contains("page=2000&limit=5>; rel=\"last\""), "{link}");
    let body = response.json();
    assert_eq!(body["data"].as_array().map(Vec::len), Some(5));
    assert_eq!(body["data"][0]["id"], 6);
    assert_eq!(body["pagination"]["totalPages"], 2000);
    assert_eq!(body["pagination"]["hasPrevious"], true);
}

#[tokio::test]
async fn a_forged_host_cannot_poison_cached_links() {
    let app = TestApp::start().await;
    let forged = app
        .send(
            app.request(Method::GET, "/api/products?limit=3")
                .header("host", "evil.example"),
        )
        .await;
    assert!(
        !header(&forged, "link").contains("evil.example"),
        "{}",
        header(&forged, "link")
    );
    let honest = app.get("/api/products?limit=3").await;
    assert!(header(&honest, "cache-status").contains("hit"));
    assert!(!header(&honest, "link").contains("evil.example"));
}

#[tokio::test]
async fn list_filters_by_category() {
    let app = TestApp::start().await;
    let body = app.get("/api/products?category=3&limit=100").await.json();
    let items = body["data"].as_array().cloned().unwrap_or_default();
    assert!(!items.is_empty());
    assert!(items.iter().all(|item| item["category_id"] == 3));
    let bad = app.get("/api/products?category=three").await;
    assert_eq!(bad.status, StatusCode::BAD_REQUEST);
    assert_eq!(bad.json()["invalid-params"][0]["name"], "category");
}

#[tokio::test]
async fn list_pages_by_offset() {
    let app = TestApp::start().await;
    let body = app.get("/api/products?offset=10&limit=3").await.json();
    let ids: Vec<i64> = body["data"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|p| p["id"].as_i64())
        .collect();
    assert_eq!(ids, vec![11, 12, 13]);
    let past_end = app.get("/api/products?page=99999&limit=20").await;
    assert_eq!(past_end.status, StatusCode::OK);
    assert_eq!(past_end.json()["data"], json!([]));
}

#[tokio::test]
async fn second_read_is_a_cache_hit_with_server_timing() {
    let app = TestApp::start().await;
    let miss = app.get("/api/products/7").await;
    assert_eq!(header(&miss, "cache-status"), "towerkit; fwd=miss; stored");
    let timing = header(&miss, "server-timing");
    assert!(
        timing.contains("db;dur=") && timing.contains("desc=\"1 query\""),
        "{timing}"
    );
    assert!(timing.contains("cache;desc=\"miss\""), "{timing}");
    let hit = app.get("/api/products/7").await;
    assert!(
        header(&hit, "cache-status").starts_with("towerkit; hit"),
        "{}",
        header(&hit, "cache-status")
    );
    assert!(header(&hit, "server-timing").contains("cache;desc=\"hit\""));
    assert!(!header(&hit, "server-timing").contains("db;"));
    assert_eq!(hit.body, miss.body);
    assert!(
        hit.headers.get("cache-tag").is_none(),
        "Cache-Tag must not reach clients"
    );
}

#[tokio::test]
async fn responses_are_compressed_once_and_served_compressed_from_cache() {
    let app = TestApp::start().await;
    let request = || {
        app.request(Method::GET, "/api/products?limit=50")
            .header("accept-encoding", "br")
    };
    let first = app.send(request()).await;
    assert_eq!(header(&first, "content-encoding"), "br");
    assert!(
        header(&first, "vary")
            .to_ascii_lowercase()
            .contains("accept-encoding")
    );
    let second = app.send(request()).await;
    assert!(header(&second, "cache-status").starts_with("towerkit; hit"));
    assert_eq!(header(&second, "content-encoding"), "br");
    assert_eq!(second.body, first.body);
    let plain = app.get("/api/products?limit=50").await;
    assert!(plain.headers.get("content-encoding").is_none());
    assert!(plain.body.len() > first.body.len());
}

#[tokio::test]
async fn nulls_are_stripped_and_fields_selected() {
    let app = TestApp::start().await;
    // Product 15 has no description, discount or image (the seed leaves them NULL).
    let product = app.get("/api/products/15").await.json();
    assert_eq!(product["id"], 15);
    for absent in ["description", "discount_percent", "image_url"] {
        assert!(
            product.get(absent).is_none(),
            "{absent} should be stripped: {product}"
        );
    }
    let body = app.get("/api/products?limit=2&fields=id,name").await.json();
    assert_eq!(body["data"][0], json!({"id": 1, "name": "Kaffeemühle #1"}));
    assert_eq!(body["pagination"]["limit"], 2);
    let bad = app.get("/api/products?fields=data(id").await;
    assert_eq!(bad.status, StatusCode::BAD_REQUEST);
    assert_eq!(header(&bad, "content-type"), "application/problem+json");
}

#[tokio::test]
async fn categories_are_paged_by_the_layer() {
    let app = TestApp::start().await;
    let response = app.get("/api/categories?page=4&limit=10").await;
    assert_eq!(header(&response, "x-total-count"), "36");
    let body = response.json();
    assert_eq!(body["data"].as_array().map(Vec::len), Some(6));
    assert_eq!(body["data"][0]["id"], 31);
    assert_eq!(body["pagination"]["hasNext"], false);
}

#[tokio::test]
async fn bad_input_gets_problem_json() {
    let app = TestApp::start().await;
    for (path, parameter) in [
        ("/api/products?page=0", "page"),
        ("/api/products?limit=abc", "limit"),
        ("/api/products?limit=-1", "limit"),
        ("/api/products/abc", "id"),
    ] {
        let response = app.get(path).await;
        assert_eq!(response.status, StatusCode::BAD_REQUEST, "{path}");
        assert_eq!(
            header(&response, "content-type"),
            "application/problem+json",
            "{path}"
        );
        assert_eq!(
            response.json()["invalid-params"][0]["name"],
            parameter,
            "{path}"
        );
    }
    let missing = app.get("/api/products/999999").await;
    assert_eq!(missing.status, StatusCode::NOT_FOUND);
    assert_eq!(header(&missing, "content-type"), "application/problem+json");
}

#[tokio::test]
async fn writes_validate_their_input() {
    let app = TestApp::start().await;
    let cases = [
        (json!({"category_id": 1, "price_cents": 100}), "name"),
        (
            json!({"name": "", "category_id": 1, "price_cents": 100}),
            "name",
        ),
        (
            json!({"name": "x", "category_id": 1, "price_cents": -1}),
            "price_cents",
        ),
        (
            json!({"name": "x", "category_id": 1, "price_cents": 1, "discount_percent": 101}),
            "discount_percent",
        ),
        (
            json!({"name": "x", "category_id": 1, "price_cents": 1, "image_url": "ftp://x"}),
            "image_url",
        ),
        (
            json!({"name": "x", "category_id": 9999, "price_cents": 1}),
            "category_id",
        ),
    ];
    for (body, field) in cases {
        let response = app.send_json(Method::POST, "/api/products", &body).await;
        assert_eq!(response.status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
        assert_eq!(
            response.json()["invalid-params"][0]["name"],
            field,
            "{body}"
        );
    }
    let request = app
        .write(Method::POST, "/api/products")
        .header("content-type", "application/json");
    let response = app
        .send_request(request.body("{oops".into()).unwrap())
        .await;
    assert_eq!(response.status, StatusCode::BAD_REQUEST);
}

#[tokio::test]
async fn writes_invalidate_cached_reads() {
    let app = TestApp::start().await;
    let path = "/api/products/42";
    app.get(path).await;
    assert!(header(&app.get(path).await, "cache-status").contains("hit"));
    let list = "/api/products?limit=50";
    app.get(list).await;
    assert!(header(&app.get(list).await, "cache-status").contains("hit"));

    let update =
        json!({"name": "Renamed teapot", "category_id": 2, "price_cents": 1234, "stock": 9});
    let response = app.send_json(Method::PUT, path, &update).await;
    assert_eq!(response.status, StatusCode::OK);
    let after = app.get(path).await;
    assert!(
        header(&after, "cache-status").contains("miss"),
        "{}",
        header(&after, "cache-status")
    );
    assert_eq!(after.json()["name"], "Renamed teapot");
    let list_after = app.get(list).await;
    assert!(header(&list_after, "cache-status").contains("miss"));
    assert_eq!(list_after.json()["data"][41]["name"], "Renamed teapot");

    let created = app.send_json(Method::POST, "/api/products", &update).await;
    assert_eq!(created.status, StatusCode::CREATED);
    let location = header(&created, "location");
    assert!(header(&app.get(list).await, "cache-status").contains("miss"));
    assert_eq!(app.get(&location).await.json()["name"], "Renamed teapot");

    assert_eq!(
        app.send(app.write(Method::DELETE, &location)).await.status,
        StatusCode::NO_CONTENT
    );
    assert_eq!(app.get(&location).await.status, StatusCode::NOT_FOUND);
    assert_eq!(
        app.send(app.write(Method::DELETE, &location)).await.status,
        StatusCode::NOT_FOUND
    );
}

#[tokio::test]
async fn tiered_cache_shares_entries_and_invalidations_through_redis() {
    let redis = support::redis_url();
    let prefix = support::unique("svc");
    let one = TestApp::start_with(|c| {
        c.redis_url = Some(redis.clone());
        c.redis_prefix = Some(prefix.clone());
    })
    .await;
    let two = one.second_instance().await;
    one.get("/api/products/3").await;
    let shared = two.get("/api/products/3").await;
    assert!(
        header(&shared, "cache-status").contains("hit"),
        "{}",
        header(&shared, "cache-status")
    );
    let update = json!({"name": "Shared rename", "category_id": 1, "price_cents": 1});
    assert_eq!(
        one.send_json(Method::PUT, "/api/products/3", &update)
            .await
            .status,
        StatusCode::OK
    );
    // The invalidation reaches the other instance's memory tier through Redis pub/sub.
    let mut seen = String::new();
    for _ in 0..50 {
        let response = two.get("/api/products/3").await;
        seen = response.json()["name"]
            .as_str()
            .unwrap_or_default()
            .to_owned();
        if seen == "Shared rename" {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    assert_eq!(seen, "Shared rename");
}

#[tokio::test]
async fn layers_none_serves_the_same_routes_bare() {
    let app = TestApp::start_with(|c| c.layers = example_service::Layers::None).await;
    let response = app.get("/api/products/15").await;
    assert_eq!(response.status, StatusCode::OK);
    assert!(response.headers.get("cache-status").is_none());
    assert!(response.headers.get("server-timing").is_none());
    assert!(
        response
            .json()
            .get("description")
            .is_some_and(Value::is_null)
    );
}

#[tokio::test]
async fn health_and_request_ids() {
    let app = TestApp::start().await;
    let live = app.get("/health/live").await;
    assert_eq!(live.status, StatusCode::OK);
    let ready = app.get("/health/ready").await;
    assert_eq!(ready.status, StatusCode::OK);
    assert_eq!(ready.json()["status"], "pass");
    let traced = app
        .send(
            app.request(Method::GET, "/health/live")
                .header("x-request-id", "abc-123"),
        )
        .await;
    assert_eq!(header(&traced, "x-request-id"), "abc-123");
    assert!(!header(&app.get("/health/live").await, "x-request-id").is_empty());
}

#[tokio::test]
async fn head_never_announces_the_unrewritten_length_on_a_miss_or_a_hit() {
    let app = TestApp::start().await;
    // Paged by the layer: the upstream length is the whole list's, GET's the page's.
    let path = "/api/categories?page=2&limit=7";
    let head_miss = app.send(app.request(Method::HEAD, path)).await;
    let get = app.get(path).await;
    assert_eq!(get.status, StatusCode::OK);
    let length = get.body.len().to_string();
    let head_hit = app.send(app.request(Method::HEAD, path)).await;
    assert!(
        header(&head_hit, "cache-status").contains("hit"),
        "{:?}",
        head_hit.headers
    );
    let get_hit = app.get(path).await;
    assert!(
        header(&get_hit, "cache-status").contains("hit"),
        "{:?}",
        get_hit.headers
    );
    assert_eq!(get_hit.body.len().to_string(), length);
    for (name, head) in [("miss", &head_miss), ("hit", &head_hit)] {
        assert_eq!(head.status, StatusCode::OK, "{name}");
        assert!(head.body.is_empty(), "{name}");
        assert!(
            head.headers
                .get("content-length")
                .is_none_or(|value| *value == *length),
            "HEAD {name}: {:?}, GET's body is {length} bytes",
            head.headers
        );
    }
}

#[tokio::test]
async fn a_short_cursor_key_stops_the_start() {
    let mut config = example_service::Config::from_lookup(|_| None).expect("defaults");
    config.cursor_key = Some("short".to_owned());
    let Err(error) = example_service::AppState::connect(config).await else {
        panic!("a 5-byte cursor key must not start the service");
    };
    assert!(error.to_string().contains("CURSOR_KEY"), "{error}");
}

#[tokio::test]
async fn warming_at_start_makes_the_first_requests_to_its_paths_hits() {
    let app = TestApp::start().await;
    let report = app
        .state
        .warm_cache(&app.router)
        .await
        .expect("a cache and the default paths");
    assert!(report.is_complete(), "{report}");
    assert_eq!(
        report.count(|o| *o == towerkit::cache::WarmOutcome::Stored),
        4,
        "two paths, two encodings each: {report}"
    );
    for path in ["/api/products", "/api/categories"] {
        for encoding in [None, Some("gzip, deflate, br, zstd")] {
            let mut request = app.request(Method::GET, path);
            if let Some(encoding) = encoding {
                request = request.header("accept-encoding", encoding);
            }
            let reply = app.send(request).await;
            assert_eq!(reply.status, StatusCode::OK, "{path}");
            let status = header(&reply, "cache-status");
            assert!(status.contains("; hit"), "{path} {encoding:?}: {status}");
        }
    }
    // Warming again finds them fresh.
    let again = app.state.warm_cache(&app.router).await.expect("a report");
    assert_eq!(
        again.count(|o| *o == towerkit::cache::WarmOutcome::AlreadyFresh),
        4,
        "{again}"
    );
}

#[tokio::test]
async fn cache_warm_off_warms_nothing() {
    let app = TestApp::start_with(|config| config.cache_warm.clear()).await;
    assert!(app.state.warm_cache(&app.router).await.is_none());
}
