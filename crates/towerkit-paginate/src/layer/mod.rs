//! The two layers: [`PaginateLayer`] -> [`Paginate`] pages a handler's whole array,
//! [`SelectFieldsLayer`] -> [`SelectFields`] applies `fields=`. Each is a thin
//! [`RewriteJson`](towerkit_json::RewriteJson) policy over a transform of this crate.

mod paginate;
mod select_fields;

pub use paginate::{Paginate, PaginateFuture, PaginateLayer, PaginateLayerBuilder};
pub use select_fields::{
    SelectFields, SelectFieldsFuture, SelectFieldsLayer, SelectFieldsLayerBuilder,
};

#[cfg(test)]
mod tests {
    use std::convert::Infallible;

    use axum::body::Body;
    use axum::routing::get;
    use axum::{Json, Router};
    use bytes::Bytes;
    use http::header::{CONTENT_LENGTH, CONTENT_TYPE, LINK};
    use http::{HeaderValue, Request, StatusCode};
    use http_body_util::BodyExt;
    use serde_json::{Value, json};
    use tower::{ServiceBuilder, ServiceExt, service_fn};

    use towerkit_json::problem::PROBLEM_JSON;

    use super::*;
    use crate::{Fields, Page, Paginated, Pagination, Style, X_TOTAL_COUNT};

    struct Answer {
        status: StatusCode,
        headers: http::HeaderMap,
        body: String,
    }

    impl Answer {
        fn json(&self) -> Value {
            serde_json::from_str(&self.body).unwrap()
        }
    }

    async fn call(app: Router, target: &str) -> Answer {
        let request = Request::get(target)
            .header("host", "api.test")
            .body(Body::empty())
            .unwrap();
        let response = app.oneshot(request).await.unwrap();
        let (head, body) = response.into_parts();
        let body = body.collect().await.unwrap().to_bytes();
        Answer {
            status: head.status,
            headers: head.headers,
            body: String::from_utf8(body.to_vec()).unwrap(),
        }
    }

    fn products() -> Value {
        let items: Vec<Value> = (1..=45)
            .map(|id| json!({"id": id, "name": format!("p{id}"), "price": id * 10}))
            .collect();
        Value::Array(items)
    }

    fn app() -> Router {
        Router::new()
            .route("/products", get(|| async { Json(products()) }))
            .route(
                "/object",
                get(|| async { Json(json!({"id": 1, "name": "x", "secret": "s"})) }),
            )
            .route("/text", get(|| async { "[1,2,3]" }))
            .route(
                "/paged",
                get(|pagination: Pagination| async move {
                    let start = pagination.offset() as u64;
                    let items: Vec<Value> = (start..(start + pagination.limit() as u64).min(7))
                        .map(|id| json!({"id": id, "name": "n"}))
                        .collect();
                    Page::new(items, 7, &pagination)
                }),
            )
            .layer(
                ServiceBuilder::new()
                    .layer(SelectFieldsLayer::default())
                    .layer(PaginateLayer::default()),
            )
    }

    #[tokio::test]
    async fn pagination_layer_wraps_a_whole_array() {
        let answer = call(app(), "/products?page=2&limit=20&sort=name").await;
        assert_eq!(answer.status, 200);
        let body = answer.json();
        assert_eq!(body["data"].as_array().unwrap().len(), 20);
        assert_eq!(body["data"][0]["id"], 21);
        assert_eq!(
            body["pagination"],
            json!({"page": 2, "limit": 20, "total": 45, "totalPages": 3, "hasNext": true, "hasPrevious": true})
        );
        assert_eq!(answer.headers[X_TOTAL_COUNT], "45");
        assert_eq!(
            answer.headers[CONTENT_LENGTH],
            answer.body.len().to_string()
        );
        let link = answer.headers[LINK].to_str().unwrap();
        assert!(
            link.contains("</products?sort=name&page=3&limit=20>; rel=\"next\""),
            "{link}"
        );
        assert!(
            link.contains("</products?sort=name&page=3&limit=20>; rel=\"last\""),
            "{link}"
        );
    }

    #[tokio::test]
    async fn bad_page_is_a_problem_json_400_naming_it() {
        for target in [
            "/products?page=0",
            "/products?page=abc",
            "/products?page=99999999999999999999",
        ] {
            let answer = call(app(), target).await;
            assert_eq!(answer.status, 400, "{target}");
            assert_eq!(answer.headers[CONTENT_TYPE], PROBLEM_JSON);
            assert_eq!(answer.json()["invalid-params"][0]["name"], "page");
        }
        let answer = call(app(), "/products?limit=-1").await;
        assert_eq!(answer.json()["invalid-params"][0]["name"], "limit");
    }

    #[tokio::test]
    async fn page_past_the_end_is_empty_not_an_error() {
        let answer = call(app(), "/products?page=9&limit=10").await;
        assert_eq!(answer.status, 200);
        assert_eq!(answer.json()["data"], json!([]));
        assert_eq!(answer.json()["pagination"]["hasPrevious"], true);
        assert_eq!(answer.json()["pagination"]["totalPages"], 5);
    }

    #[tokio::test]
    async fn handler_pages_are_not_sliced_again() {
        let answer = call(app(), "/paged?page=2&limit=3").await;
        let body = answer.json();
        assert_eq!(
            body["data"],
            json!([{"id": 3, "name": "n"}, {"id": 4, "name": "n"}, {"id": 5, "name": "n"}])
        );
        assert_eq!(body["pagination"]["total"], 7);
        assert!(body["data"].get("data").is_none());
        assert_eq!(answer.headers[X_TOTAL_COUNT], "7");
    }

    #[tokio::test]
    async fn fields_apply_to_items_inside_envelope() {
        let answer = call(app(), "/products?limit=2&fields=id,price").await;
        assert_eq!(
            answer.body,
            r#"{"data":[{"id":1,"price":10},{"id":2,"price":20}],"pagination":{"page":1,"limit":2,"total":45,"totalPages":23,"hasNext":true,"hasPrevious":false}}"#
        );
        let answer = call(app(), "/paged?limit=2&fields=name").await;
        assert_eq!(answer.json()["data"], json!([{"name": "n"}, {"name": "n"}]));
        assert_eq!(answer.json()["pagination"]["total"], 7);
    }

    #[tokio::test]
    async fn fields_apply_to_plain_documents() {
        let answer = call(app(), "/object?fields=-secret").await;
        assert_eq!(answer.body, r#"{"id":1,"name":"x"}"#);
    }

    #[tokio::test]
    async fn bad_fields_expression_is_400_with_the_column() {
        let answer = call(app(), "/products?fields=items(id").await;
        assert_eq!(answer.status, 400);
        assert_eq!(answer.headers[CONTENT_TYPE], PROBLEM_JSON);
        let body = answer.json();
        assert_eq!(
            body["detail"],
            "invalid fields expression at column 9: expected ')'"
        );
        assert_eq!(body["invalid-params"][0]["name"], "fields");
        let repeated = call(app(), "/products?fields=id&fields=name").await;
        assert_eq!(repeated.status, 400);
    }

    #[tokio::test]
    async fn non_json_passes_through() {
        let answer = call(app(), "/text?page=2&limit=1&fields=id").await;
        assert_eq!(answer.status, 200);
        assert_eq!(answer.body, "[1,2,3]");
        assert!(!answer.headers.contains_key(LINK));
    }

    #[tokio::test]
    async fn malformed_json_passes_through_untouched() {
        let truncated = || async { ([(CONTENT_TYPE, "application/json")], r#"[{"id":1},{"id":"#) };
        let app = Router::new().route("/broken", get(truncated)).layer(
            ServiceBuilder::new()
                .layer(SelectFieldsLayer::default())
                .layer(PaginateLayer::default()),
        );
        let answer = call(app, "/broken?page=1&limit=1&fields=id").await;
        assert_eq!(answer.status, 200);
        assert_eq!(answer.body, r#"[{"id":1},{"id":"#);
        assert!(!answer.headers.contains_key(LINK));
    }

    #[tokio::test]
    async fn empty_fields_parameter_changes_nothing() {
        let answer = call(app(), "/object?fields=").await;
        assert_eq!(answer.body, r#"{"id":1,"name":"x","secret":"s"}"#);
    }

    #[tokio::test]
    async fn strict_fields_reject_unknown_names() {
        let strict = SelectFieldsLayer::builder().strict(true).build().unwrap();
        let app = Router::new()
            .route("/products", get(|| async { Json(products()) }))
            .layer(
                ServiceBuilder::new()
                    .layer(strict)
                    .layer(PaginateLayer::default()),
            );
        let answer = call(app.clone(), "/products?fields=id,colour").await;
        assert_eq!(answer.status, 400);
        assert_eq!(answer.headers[CONTENT_TYPE], PROBLEM_JSON);
        assert_eq!(
            answer.json()["detail"],
            "fields names unknown fields: colour"
        );
        assert!(!answer.headers.contains_key(LINK));
        assert!(!answer.headers.contains_key(X_TOTAL_COUNT));
        assert_eq!(
            answer.headers[CONTENT_LENGTH],
            answer.body.len().to_string()
        );
        let fine = call(app.clone(), "/products?fields=id,name").await;
        assert_eq!(fine.status, 200);
        // Nothing was examined on an empty page, so nothing is unknown.
        let empty = call(app, "/products?page=50&fields=colour").await;
        assert_eq!(empty.status, 200);
    }

    #[tokio::test]
    async fn array_at_pointer_is_paged_in_place() {
        let layer = PaginateLayer::builder()
            .array_at("/result/items")
            .build()
            .unwrap();
        let app = Router::new()
            .route(
                "/search",
                get(|| async { Json(json!({"result": {"items": [1, 2, 3], "took": 5}})) }),
            )
            .layer(
                ServiceBuilder::new()
                    .layer(SelectFieldsLayer::default())
                    .layer(layer),
            );
        let answer = call(app, "/search?limit=2").await;
        assert_eq!(
            answer.body,
            r#"{"result":{"items":[1,2],"took":5,"pagination":{"page":1,"limit":2,"total":3,"totalPages":2,"hasNext":true,"hasPrevious":false}}}"#
        );
        assert!(
            PaginateLayer::builder()
                .array_at("/x/pagination")
                .build()
                .is_err()
        );
        assert!(PaginateLayer::builder().array_at("x").build().is_err());
    }

    #[tokio::test]
    async fn layer_cursors_page_through_an_array() {
        let layer = PaginateLayer::builder()
            .style(Style::Cursors)
            .cursor_key(vec![7u8; 32])
            .build()
            .unwrap();
        let app = Router::new()
            .route("/products", get(|| async { Json(products()) }))
            .layer(layer);
        let mut target = "/products?limit=20".to_owned();
        let mut ids = Vec::new();
        for _ in 0..10 {
            let answer = call(app.clone(), &target).await;
            assert_eq!(answer.status, 200, "{}", answer.body);
            let body = answer.json();
            ids.extend(
                body["data"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|item| item["id"].as_u64().unwrap()),
            );
            match body["pagination"]["nextCursor"].as_str() {
                Some(next) => {
                    let link = answer.headers[LINK].to_str().unwrap();
                    assert!(link.contains(&format!("cursor={next}")), "{link}");
                    target = format!("/products?limit=20&cursor={next}");
                }
                None => break,
            }
        }
        assert_eq!(ids, (1..=45).collect::<Vec<_>>());
        let tampered = call(app, &format!("{target}x")).await;
        assert_eq!(tampered.status, 400);
        assert_eq!(tampered.json()["invalid-params"][0]["name"], "cursor");
    }

    async fn call_with_host(app: Router, target: &str, host: &str) -> Answer {
        let request = Request::get(target)
            .header("host", host)
            .body(Body::empty())
            .unwrap();
        let response = app.oneshot(request).await.unwrap();
        let (head, body) = response.into_parts();
        let body = body.collect().await.unwrap().to_bytes();
        Answer {
            status: head.status,
            headers: head.headers,
            body: String::from_utf8(body.to_vec()).unwrap(),
        }
    }

    /// Every URL in a `Link` header value.
    fn link_urls(link: &str) -> Vec<&str> {
        link.split(", ")
            .map(|part| {
                let end = part.find('>').unwrap();
                &part[1..end]
            })
            .collect()
    }

    #[tokio::test]
    async fn links_without_base_url_are_relative_whatever_the_host() {
        let key = vec![7u8; 32];
        for layer in [
            PaginateLayer::new(),
            PaginateLayer::builder()
                .style(Style::Cursors)
                .cursor_key(key)
                .build()
                .unwrap(),
        ] {
            let app = Router::new()
                .route("/products", get(|| async { Json(products()) }))
                .layer(layer);
            let answer = call_with_host(app, "/products?limit=10&page=2", "evil.example").await;
            assert_eq!(answer.status, 200, "{}", answer.body);
            let link = answer.headers[LINK].to_str().unwrap();
            assert!(!link.contains("evil.example"), "{link}");
            for url in link_urls(link) {
                assert!(url.starts_with("/products?"), "{link}");
            }
            assert!(!answer.body.contains("evil.example"), "{}", answer.body);
        }
    }

    #[tokio::test]
    async fn links_with_base_url_are_absolute_on_it_whatever_the_host() {
        let layer = PaginateLayer::builder()
            .base_url("https://api.example.com")
            .build()
            .unwrap();
        let app = Router::new()
            .route("/products", get(|| async { Json(products()) }))
            .layer(layer);
        let answer = call_with_host(app, "/products?limit=10&page=2", "evil.example").await;
        let link = answer.headers[LINK].to_str().unwrap();
        let urls = link_urls(link);
        assert_eq!(urls.len(), 4, "{link}");
        for url in urls {
            assert!(
                url.starts_with("https://api.example.com/products?"),
                "{link}"
            );
        }
    }

    #[test]
    fn cursor_style_without_a_key_fails_the_build() {
        let error = PaginateLayer::builder()
            .style(Style::Cursors)
            .build()
            .unwrap_err();
        assert_eq!(error, crate::ConfigError::MissingCursorKey);
        assert!(error.to_string().contains("cursor_key"), "{error}");
    }

    /// The `nextCursor` of the first page of `/products?limit=10` through `layer`.
    async fn first_next_cursor(layer: PaginateLayer) -> String {
        let app = Router::new()
            .route("/products", get(|| async { Json(products()) }))
            .layer(layer);
        let answer = call(app, "/products?limit=10").await;
        answer.json()["pagination"]["nextCursor"]
            .as_str()
            .unwrap()
            .to_owned()
    }

    async fn second_page_status(layer: PaginateLayer, cursor: &str) -> StatusCode {
        let app = Router::new()
            .route("/products", get(|| async { Json(products()) }))
            .layer(layer);
        call(app, &format!("/products?limit=10&cursor={cursor}"))
            .await
            .status
    }

    #[tokio::test]
    async fn layers_built_with_the_same_key_accept_each_others_cursors() {
        let instance = |key: &[u8]| {
            PaginateLayer::builder()
                .style(Style::Cursors)
                .cursor_key(key.to_vec())
                .build()
                .unwrap()
        };
        let cursor = first_next_cursor(instance(&[1u8; 32])).await;
        assert_eq!(
            second_page_status(instance(&[1u8; 32]), &cursor).await,
            StatusCode::OK
        );
        assert_eq!(
            second_page_status(instance(&[2u8; 32]), &cursor).await,
            StatusCode::BAD_REQUEST
        );
    }

    #[tokio::test]
    async fn the_per_process_key_is_an_explicit_opt_out() {
        let single = || {
            PaginateLayer::builder()
                .style(Style::Cursors)
                .cursor_key_per_process()
                .build()
                .unwrap()
        };
        let cursor = first_next_cursor(single()).await;
        assert_eq!(second_page_status(single(), &cursor).await, StatusCode::OK);
    }

    #[tokio::test]
    async fn extractors_read_the_layer_configuration() {
        let pages = PaginateLayer::builder()
            .default_limit(3)
            .max_limit(5)
            .build()
            .unwrap();
        let fields = SelectFieldsLayer::builder()
            .param("select")
            .build()
            .unwrap();
        let app = Router::new()
            .route(
                "/probe",
                get(|pagination: Pagination, fields: Fields| async move {
                    format!(
                        "{} {} {:?}",
                        pagination.limit(),
                        pagination.offset(),
                        fields.columns(["id", "name"])
                    )
                }),
            )
            .layer(ServiceBuilder::new().layer(fields).layer(pages));
        assert_eq!(
            call(app.clone(), "/probe?page=2&select=id").await.body,
            "3 3 [\"id\"]"
        );
        assert_eq!(
            call(app.clone(), "/probe?limit=50").await.body,
            "5 0 [\"id\", \"name\"]"
        );
        let bad = call(app, "/probe?select=(").await;
        assert_eq!(bad.status, 400);
    }

    #[tokio::test]
    async fn extractors_use_defaults_without_layers() {
        let app = Router::new().route(
            "/probe",
            get(|pagination: Pagination, fields: Fields| async move {
                format!(
                    "{} {} {:?}",
                    pagination.limit(),
                    pagination.offset(),
                    fields.columns(["id", "name"])
                )
            }),
        );
        assert_eq!(
            call(app.clone(), "/probe?page=3&fields=name").await.body,
            "20 40 [\"name\"]"
        );
        let bad = call(app, "/probe?limit=x").await;
        assert_eq!(bad.status, 400);
        assert_eq!(bad.headers[CONTENT_TYPE], PROBLEM_JSON);
    }

    #[tokio::test]
    async fn works_on_plain_tower_services() {
        let service = ServiceBuilder::new()
            .layer(PaginateLayer::default())
            .service(service_fn(|_: Request<()>| async {
                let mut response =
                    http::Response::new(http_body_util::Full::new(Bytes::from_static(b"[1,2,3]")));
                response
                    .headers_mut()
                    .insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
                Ok::<_, Infallible>(response)
            }));
        let response = service
            .oneshot(Request::get("/n?limit=1&page=3").body(()).unwrap())
            .await
            .unwrap();
        assert_eq!(
            response.headers()[LINK],
            "</n?page=1&limit=1>; rel=\"first\", </n?page=2&limit=1>; rel=\"prev\", </n?page=3&limit=1>; rel=\"last\""
        );
        assert!(response.extensions().get::<Paginated>().is_some());
        let body = response.into_body().collect().await.unwrap().to_bytes();
        assert!(body.starts_with(b"{\"data\":[3],"));
    }
}
