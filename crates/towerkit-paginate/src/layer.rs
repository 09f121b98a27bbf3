//! `PaginationLayer` and `FieldsLayer`: the transforms applied to responses.

use std::sync::Arc;

use http::header::{CONTENT_TYPE, ETAG, LAST_MODIFIED, LINK};
use http::{HeaderValue, Request, StatusCode, Uri, response};
use tower_http::add_extension::AddExtension;
use tower_layer::Layer;
use towerkit_json::problem::PROBLEM_JSON;
use towerkit_json::{
    Decision, Malformed, Problem, RewriteJson, RewriteJsonLayer, RewritePolicy, Rewriter,
};

use crate::config::{ConfigError, PaginationConfig};
use crate::envelope::X_TOTAL_COUNT;
use crate::fields::{FieldsConfig, Selection, project};
use crate::page::Paginated;
use crate::pointer::{JsonPointer, TransformError};
use crate::request::Pagination;
use crate::slice::paginate;

/// The service made by [`PaginationLayer`].
pub type Paginate<S> = RewriteJson<AddExtension<S, PaginationConfig>, PaginationPolicy>;

/// The service made by [`FieldsLayer`].
pub type SelectFields<S> = RewriteJson<AddExtension<S, FieldsConfig>, FieldsPolicy>;

/// A [`Layer`] that pages JSON arrays: it slices the array a handler returned per the
/// request's `page` / `offset` / `cursor` and `limit`, and wraps it in the envelope with
/// `Link` and `X-Total-Count` headers. See the [crate docs](crate).
///
/// - Bad parameters get a 400 `application/problem+json` before the handler runs (see
///   [`Pagination`] for what is rejected).
/// - It puts its [`PaginationConfig`] into the request's extensions, where the
///   [`Pagination`] extractor finds it.
/// - A response marked [`Paginated`] (a [`Page`](crate::Page)) is left alone.
/// - Left alone too: anything [`towerkit_json::is_eligible`] rejects (non-2xx, not JSON,
///   encoded, HEAD), bodies over the buffer limit (default 8 MiB), malformed JSON, a
///   document without an array at the configured pointer, and a request whose cursor is a
///   handler's keyset cursor.
#[derive(Debug, Clone)]
pub struct PaginationLayer {
    config: PaginationConfig,
    array_at: JsonPointer,
    limit: usize,
}

impl Default for PaginationLayer {
    fn default() -> Self {
        Self::new(PaginationConfig::default())
    }
}

impl PaginationLayer {
    /// Pages arrays at the document root under `config`, buffering at most 8 MiB.
    pub fn new(config: PaginationConfig) -> Self {
        Self {
            config,
            array_at: JsonPointer::root(),
            limit: towerkit_json::DEFAULT_MAX_BODY,
        }
    }

    /// Pages the array at this JSON Pointer (`/items`) instead of a root array: it is
    /// sliced in place and the `pagination` member added to the object holding it.
    /// Default: the root. Fails on a malformed pointer, or one whose last member is the
    /// envelope's `pagination` member.
    pub fn array_at(mut self, pointer: &str) -> Result<Self, ConfigError> {
        let parsed = JsonPointer::parse(pointer)?;
        if parsed
            .segments()
            .last()
            .is_some_and(|last| *last == self.config.inner.names.pagination_raw)
        {
            return Err(ConfigError::InvalidPointer(pointer.to_owned()));
        }
        self.array_at = parsed;
        Ok(self)
    }

    /// The largest body buffered and paged; a larger one streams through unchanged.
    /// Default: 8 MiB.
    #[must_use]
    pub fn limit(mut self, limit: usize) -> Self {
        self.limit = limit;
        self
    }

    /// The configuration shared with the [`Pagination`] extractor.
    pub fn config(&self) -> &PaginationConfig {
        &self.config
    }
}

impl<S> Layer<S> for PaginationLayer {
    type Service = Paginate<S>;

    fn layer(&self, inner: S) -> Self::Service {
        let policy = PaginationPolicy {
            config: self.config.clone(),
            array_at: self.array_at.clone(),
        };
        RewriteJsonLayer::new(policy)
            .max_body(self.limit)
            .layer(AddExtension::new(inner, self.config.clone()))
    }
}

/// The [`RewritePolicy`] behind [`PaginationLayer`].
#[derive(Debug, Clone)]
pub struct PaginationPolicy {
    config: PaginationConfig,
    array_at: JsonPointer,
}

impl<B> RewritePolicy<B> for PaginationPolicy {
    type Rewriter = PaginationRewriter;

    fn on_request(&self, request: &Request<B>) -> Decision<PaginationRewriter> {
        match Pagination::from_request(request, &self.config) {
            Ok(pagination) => Decision::Rewrite(PaginationRewriter {
                pagination,
                array_at: self.array_at.clone(),
            }),
            Err(problem) => Decision::Respond(problem.into_http_response()),
        }
    }
}

/// The [`Rewriter`] behind [`PaginationLayer`].
#[derive(Debug)]
pub struct PaginationRewriter {
    pagination: Pagination,
    array_at: JsonPointer,
}

impl Rewriter for PaginationRewriter {
    fn accepts(&self, head: &response::Parts) -> bool {
        head.extensions.get::<Paginated>().is_none()
    }

    fn rewrite(
        self,
        head: &mut response::Parts,
        json: &[u8],
        out: &mut Vec<u8>,
    ) -> Result<(), Malformed> {
        let info = paginate(json, out, &self.pagination, &self.array_at).map_err(not_rewritten)?;
        info.set_headers(&mut head.headers);
        let items = if self.array_at.is_root() {
            self.pagination.config.inner.data_pointer.clone()
        } else {
            self.array_at
        };
        head.extensions.insert(Paginated::new(items));
        Ok(())
    }
}

/// A [`Layer`] that applies the request's `fields` selection to JSON responses. See the
/// [crate docs](crate) and [`Selection`] for the grammar and semantics.
///
/// - Without a `fields` parameter (or with an empty one) responses stream through.
/// - A malformed expression, or one over the limits, gets a 400
///   `application/problem+json` naming the parameter and the column, before the handler runs.
/// - It puts its [`FieldsConfig`] into the request's extensions, where the
///   [`Fields`](crate::Fields) extractor finds it.
/// - A response marked [`Paginated`] has the selection applied to each item of the
///   envelope; the envelope's other members stay.
/// - Strict mode: a field that matches nothing, where objects were examined for it,
///   turns the response into a 400 naming the fields (validators and pagination headers
///   are removed).
/// - Left alone: what [`towerkit_json::is_eligible`] rejects, bodies over the buffer limit
///   (default 8 MiB), malformed JSON, and a marked response without an array at its items
///   pointer.
#[derive(Debug, Clone, Default)]
pub struct FieldsLayer {
    config: FieldsConfig,
    limit: Option<usize>,
}

impl FieldsLayer {
    /// Projects responses under `config`, buffering at most 8 MiB.
    pub fn new(config: FieldsConfig) -> Self {
        Self {
            config,
            limit: None,
        }
    }

    /// The largest body buffered and projected; a larger one streams through unchanged.
    /// Default: 8 MiB.
    #[must_use]
    pub fn limit(mut self, limit: usize) -> Self {
        self.limit = Some(limit);
        self
    }

    /// The configuration shared with the [`Fields`](crate::Fields) extractor.
    pub fn config(&self) -> &FieldsConfig {
        &self.config
    }
}

impl<S> Layer<S> for FieldsLayer {
    type Service = SelectFields<S>;

    fn layer(&self, inner: S) -> Self::Service {
        let policy = FieldsPolicy {
            config: self.config.clone(),
        };
        RewriteJsonLayer::new(policy)
            .max_body(self.limit.unwrap_or(towerkit_json::DEFAULT_MAX_BODY))
            .layer(AddExtension::new(inner, self.config.clone()))
    }
}

/// The [`RewritePolicy`] behind [`FieldsLayer`].
#[derive(Debug, Clone)]
pub struct FieldsPolicy {
    config: FieldsConfig,
}

impl<B> RewritePolicy<B> for FieldsPolicy {
    type Rewriter = FieldsRewriter;

    fn on_request(&self, request: &Request<B>) -> Decision<FieldsRewriter> {
        match selection_from_query(request.uri(), &self.config) {
            Ok(None) => Decision::Skip,
            Ok(Some(selection)) => Decision::Rewrite(FieldsRewriter {
                selection,
                config: self.config.clone(),
            }),
            Err(problem) => Decision::Respond(problem.into_http_response()),
        }
    }
}

/// The [`Rewriter`] behind [`FieldsLayer`].
#[derive(Debug)]
pub struct FieldsRewriter {
    selection: Arc<Selection>,
    config: FieldsConfig,
}

impl Rewriter for FieldsRewriter {
    fn rewrite(
        self,
        head: &mut response::Parts,
        json: &[u8],
        out: &mut Vec<u8>,
    ) -> Result<(), Malformed> {
        let items = head
            .extensions
            .get::<Paginated>()
            .map(|marker| marker.items().clone());
        let projection =
            project(json, out, &self.selection, items.as_ref()).map_err(not_rewritten)?;
        if self.config.is_strict() && !projection.unknown().is_empty() {
            let param = self.config.param();
            let unknown = projection.unknown().join(", ");
            let problem = Problem::bad_request(format!("{param} names unknown fields: {unknown}"))
                .with_invalid_param(param, format!("no such fields: {unknown}"));
            out.clear();
            out.extend_from_slice(&problem.to_bytes());
            head.status = StatusCode::BAD_REQUEST;
            head.headers
                .insert(CONTENT_TYPE, HeaderValue::from_static(PROBLEM_JSON));
            for name in [ETAG, LAST_MODIFIED, LINK, X_TOTAL_COUNT] {
                head.headers.remove(name);
            }
            head.extensions.remove::<Paginated>();
        }
        Ok(())
    }
}

/// The request's selection: `None` without a (non-empty) `fields` parameter; a 400 when
/// the parameter is repeated or does not parse.
pub(crate) fn selection_from_query(
    uri: &Uri,
    config: &FieldsConfig,
) -> Result<Option<Arc<Selection>>, Problem> {
    let param = config.param();
    let mut found = None;
    for segment in uri
        .query()
        .unwrap_or_default()
        .split('&')
        .filter(|s| !s.is_empty())
    {
        let (name, value) = form_urlencoded::parse(segment.as_bytes())
            .next()
            .unwrap_or_default();
        if name != param {
            continue;
        }
        if found.is_some() {
            return Err(
                Problem::bad_request(format!("{param} is given more than once"))
                    .with_invalid_param(param, "give the parameter once"),
            );
        }
        found = Some(value);
    }
    let Some(expression) = found.filter(|value| !value.trim().is_empty()) else {
        return Ok(None);
    };
    match Selection::parse_with(&expression, config) {
        Ok(selection) => Ok(Some(Arc::new(selection))),
        Err(error) => {
            Err(Problem::bad_request(error.to_string())
                .with_invalid_param(param, error.to_string()))
        }
    }
}

fn not_rewritten(error: TransformError) -> Malformed {
    match error {
        TransformError::Malformed(malformed) => malformed,
        TransformError::NoArray | TransformError::ForeignCursor => Malformed { offset: 0 },
    }
}

#[cfg(test)]
mod tests {
    use std::convert::Infallible;

    use axum::body::Body;
    use axum::routing::get;
    use axum::{Json, Router};
    use bytes::Bytes;
    use http::header::CONTENT_LENGTH;
    use http_body_util::BodyExt;
    use serde_json::{Value, json};
    use tower::{ServiceBuilder, ServiceExt, service_fn};

    use super::*;
    use crate::{Fields, Page, Style};

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
                    .layer(FieldsLayer::default())
                    .layer(PaginationLayer::default()),
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
            link.contains("<http://api.test/products?sort=name&page=3&limit=20>; rel=\"next\""),
            "{link}"
        );
        assert!(
            link.contains("<http://api.test/products?sort=name&page=3&limit=20>; rel=\"last\""),
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
                .layer(FieldsLayer::default())
                .layer(PaginationLayer::default()),
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
        let strict = FieldsConfig::builder().strict(true).build().unwrap();
        let app = Router::new()
            .route("/products", get(|| async { Json(products()) }))
            .layer(
                ServiceBuilder::new()
                    .layer(FieldsLayer::new(strict))
                    .layer(PaginationLayer::default()),
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
        let layer = PaginationLayer::default()
            .array_at("/result/items")
            .unwrap();
        let app = Router::new()
            .route(
                "/search",
                get(|| async { Json(json!({"result": {"items": [1, 2, 3], "took": 5}})) }),
            )
            .layer(
                ServiceBuilder::new()
                    .layer(FieldsLayer::default())
                    .layer(layer),
            );
        let answer = call(app, "/search?limit=2").await;
        assert_eq!(
            answer.body,
            r#"{"result":{"items":[1,2],"took":5,"pagination":{"page":1,"limit":2,"total":3,"totalPages":2,"hasNext":true,"hasPrevious":false}}}"#
        );
        assert!(
            PaginationLayer::default()
                .array_at("/x/pagination")
                .is_err()
        );
        assert!(PaginationLayer::default().array_at("x").is_err());
    }

    #[tokio::test]
    async fn layer_cursors_page_through_an_array() {
        let config = PaginationConfig::builder()
            .style(Style::Cursors)
            .build()
            .unwrap();
        let app = Router::new()
            .route("/products", get(|| async { Json(products()) }))
            .layer(PaginationLayer::new(config));
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

    #[tokio::test]
    async fn extractors_read_the_layer_configuration() {
        let config = PaginationConfig::builder()
            .default_limit(3)
            .max_limit(5)
            .build()
            .unwrap();
        let fields = FieldsConfig::builder().param("select").build().unwrap();
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
            .layer(
                ServiceBuilder::new()
                    .layer(FieldsLayer::new(fields))
                    .layer(PaginationLayer::new(config)),
            );
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
            .layer(PaginationLayer::default())
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
