//! `Pagination`, `Page` and `Fields` in an axum service over a real PostgreSQL table: paging
//! with LIMIT/OFFSET and with a keyset cursor, and reading only the selected columns.
//!
//! Each test creates its own schema in `DATABASE_URL` (default
//! `postgres://postgres@127.0.0.1:5432/postgres`) and drops it at the end, even on failure.

use std::sync::Arc;

use axum::Router;
use axum::body::Body;
use axum::extract::{Query, State};
use axum::http::{HeaderMap, HeaderValue, Request, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use http_body_util::BodyExt;
use serde::Deserialize;
use serde_json::{Map, Value};
use tokio_postgres::types::ToSql;
use tokio_postgres::{Client, NoTls};
use tower::{ServiceBuilder, ServiceExt};
use towerkit_paginate::{
    Fields, Keyset, Page, PaginateLayer, Pagination, Problem, SelectFieldsLayer,
};

const ROWS: i64 = 57;
const COLUMNS: [&str; 4] = ["id", "name", "category", "price"];

fn database_url() -> String {
    std::env::var("DATABASE_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".to_owned())
}

async fn connect() -> Client {
    let (client, connection) = tokio_postgres::connect(&database_url(), NoTls)
        .await
        .expect("PostgreSQL at DATABASE_URL");
    tokio::spawn(connection);
    client
}

/// A schema of its own holding `products`, dropped when this goes out of scope.
struct Fixture {
    schema: String,
    client: Arc<Client>,
}

impl Fixture {
    async fn new() -> Self {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .subsec_nanos();
        let schema = format!("tk_paginate_{}_{nanos}", std::process::id());
        let client = connect().await;
        client
            .batch_execute(&format!(
                "CREATE SCHEMA {schema};
                 CREATE TABLE {schema}.products (
                     id bigint PRIMARY KEY, name text NOT NULL, category int NOT NULL, price int NOT NULL);
                 INSERT INTO {schema}.products
                     SELECT n, 'product ' || n, n % 3, n * 100 FROM generate_series(1, {ROWS}) AS n;"
            ))
            .await
            .expect("create the test schema");
        Self {
            schema,
            client: Arc::new(client),
        }
    }
}

impl Drop for Fixture {
    fn drop(&mut self) {
        // Drop may run inside a runtime: clean up from a thread with one of its own.
        let schema = self.schema.clone();
        let cleanup = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()?;
            runtime.block_on(async {
                let client = connect().await;
                client
                    .batch_execute(&format!("DROP SCHEMA IF EXISTS {schema} CASCADE"))
                    .await
            })?;
            Ok::<_, Box<dyn std::error::Error + Send + Sync>>(())
        });
        if let Ok(Err(error)) = cleanup.join() {
            eprintln!("could not drop schema {}: {error}", self.schema);
        }
    }
}

#[derive(Clone)]
struct AppState {
    client: Arc<Client>,
    table: String,
}

#[derive(Deserialize)]
struct Filter {
    category: Option<i32>,
}

fn internal(error: tokio_postgres::Error) -> Response {
    (StatusCode::INTERNAL_SERVER_ERROR, error.to_string()).into_response()
}

/// The selected columns (always with `id`, which the cursor needs), for SQL and for
/// turning rows into JSON. Only names from `COLUMNS` ever reach the query text.
fn columns(fields: &Fields) -> Vec<&'static str> {
    let mut columns = fields.columns(COLUMNS);
    if !columns.contains(&"id") {
        columns.insert(0, "id");
    }
    columns
}

fn to_json(row: &tokio_postgres::Row, columns: &[&str]) -> Value {
    let mut object = Map::new();
    for (index, column) in columns.iter().enumerate() {
        let value = match *column {
            "id" => Value::from(row.get::<_, i64>(index)),
            "name" => Value::from(row.get::<_, String>(index)),
            _ => Value::from(row.get::<_, i32>(index)),
        };
        object.insert((*column).to_owned(), value);
    }
    Value::Object(object)
}

/// `LIMIT $1 OFFSET $2` and a count.
async fn by_offset(
    State(state): State<AppState>,
    pagination: Pagination,
    fields: Fields,
    Query(filter): Query<Filter>,
) -> Response {
    let columns = columns(&fields);
    let sql = format!(
        "SELECT {} FROM {} WHERE ($3::int IS NULL OR category = $3) ORDER BY id LIMIT $1 OFFSET $2",
        columns.join(", "),
        state.table
    );
    let params: [&(dyn ToSql + Sync); 3] =
        [&pagination.limit(), &pagination.offset(), &filter.category];
    let rows = match state.client.query(&sql, &params).await {
        Ok(rows) => rows,
        Err(error) => return internal(error),
    };
    let count = format!(
        "SELECT count(*) FROM {} WHERE ($1::int IS NULL OR category = $1)",
        state.table
    );
    let total: i64 = match state.client.query_one(&count, &[&filter.category]).await {
        Ok(row) => row.get(0),
        Err(error) => return internal(error),
    };
    let items = rows.iter().map(|row| to_json(row, &columns)).collect();
    let mut response = Page::<Value>::new(items, total as u64, &pagination).into_response();
    let queried = HeaderValue::from_str(&columns.join(",")).unwrap();
    response.headers_mut().insert("x-queried-columns", queried);
    response
}

/// `WHERE id > $2 ORDER BY id LIMIT $1` (or `<` and `DESC` going back).
async fn by_keyset(
    State(state): State<AppState>,
    pagination: Pagination,
    Query(filter): Query<Filter>,
) -> Result<Page<Value>, Problem> {
    let limit = pagination.fetch_limit();
    let (condition, order, after) = match pagination.keyset::<i64>()? {
        Keyset::First => ("TRUE", "ASC", None),
        Keyset::After(id) => ("id > $3", "ASC", Some(id)),
        Keyset::Before(id) => ("id < $3", "DESC", Some(id)),
    };
    let sql = format!(
        "SELECT id, name, category, price FROM {} \
         WHERE ($2::int IS NULL OR category = $2) AND ($3::bigint IS NULL OR {condition}) \
         ORDER BY id {order} LIMIT $1",
        state.table
    );
    let rows = state
        .client
        .query(&sql, &[&limit, &filter.category, &after])
        .await
        .map_err(|error| {
            Problem::new(StatusCode::INTERNAL_SERVER_ERROR).with_detail(error.to_string())
        })?;
    let items = rows.iter().map(|row| to_json(row, &COLUMNS)).collect();
    Ok(Page::keyset(items, &pagination, |item: &Value| {
        item["id"].as_i64()
    }))
}

fn app(fixture: &Fixture) -> Router {
    let pages = PaginateLayer::builder()
        .cursor_key(b"integration-test-key-of-32-bytes".to_vec())
        .max_limit(25)
        .build()
        .unwrap();
    let state = AppState {
        client: fixture.client.clone(),
        table: format!("{}.products", fixture.schema),
    };
    Router::new()
        .route("/products", get(by_offset))
        .route("/products/keyset", get(by_keyset))
        .with_state(state)
        .layer(
            ServiceBuilder::new()
                .layer(SelectFieldsLayer::default())
                .layer(pages),
        )
}

struct Answer {
    status: StatusCode,
    headers: HeaderMap,
    body: Value,
}

async fn get_json(app: &Router, target: &str) -> Answer {
    let request = Request::get(target)
        .header("host", "shop.test")
        .body(Body::empty())
        .unwrap();
    let response = app.clone().oneshot(request).await.unwrap();
    let (head, body) = response.into_parts();
    let bytes = body.collect().await.unwrap().to_bytes();
    let body = serde_json::from_slice(&bytes)
        .unwrap_or_else(|_| panic!("{target}: {}", String::from_utf8_lossy(&bytes)));
    Answer {
        status: head.status,
        headers: head.headers,
        body,
    }
}

fn ids(body: &Value) -> Vec<i64> {
    body["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|item| item["id"].as_i64().unwrap())
        .collect()
}

/// The URL of relation `rel` in a `Link` header, made relative for the next request.
fn link(answer: &Answer, rel: &str) -> Option<String> {
    let header = answer.headers.get("link")?.to_str().unwrap();
    header.split(", ").find_map(|part| {
        let (url, relation) = part.split_once("; ")?;
        (relation == format!("rel=\"{rel}\"")).then(|| {
            url.trim_matches(|c| c == '<' || c == '>')
                .trim_start_matches("http://shop.test")
                .to_owned()
        })
    })
}

#[tokio::test]
async fn pages_a_table_with_limit_and_offset() {
    let fixture = Fixture::new().await;
    let app = app(&fixture);

    let page = get_json(&app, "/products?page=2&per_page=10").await;
    assert_eq!(page.status, 200);
    assert_eq!(ids(&page.body), (11..=20).collect::<Vec<_>>());
    assert_eq!(page.headers["x-total-count"], "57");
    assert_eq!(page.body["pagination"]["totalPages"], 6);

    // Following `next` from the first page visits every row once, in order.
    let mut target = Some("/products?limit=25".to_owned());
    let mut seen = Vec::new();
    while let Some(url) = target {
        let answer = get_json(&app, &url).await;
        assert_eq!(answer.status, 200, "{url}");
        seen.extend(ids(&answer.body));
        target = link(&answer, "next");
    }
    assert_eq!(seen, (1..=ROWS).collect::<Vec<_>>());

    // Filters stay in the links; the offset form works the same way.
    let filtered = get_json(&app, "/products?category=1&offset=5&limit=5").await;
    assert_eq!(ids(&filtered.body), vec![16, 19, 22, 25, 28]);
    assert_eq!(filtered.headers["x-total-count"], "19");
    assert_eq!(
        link(&filtered, "next").as_deref(),
        Some("/products?category=1&offset=10&limit=5")
    );
    assert_eq!(
        link(&filtered, "last").as_deref(),
        Some("/products?category=1&offset=14&limit=5")
    );

    // Past the end: empty, not an error. Over the maximum: clamped to 25.
    let past = get_json(&app, "/products?page=40&limit=10").await;
    assert_eq!(past.status, 200);
    assert_eq!(ids(&past.body), Vec::<i64>::new());
    assert_eq!(past.body["pagination"]["hasPrevious"], true);
    let clamped = get_json(&app, "/products?limit=1000").await;
    assert_eq!(clamped.body["pagination"]["limit"], 25);
    assert_eq!(ids(&clamped.body).len(), 25);

    let bad = get_json(&app, "/products?page=0").await;
    assert_eq!(bad.status, 400);
    assert_eq!(bad.body["invalid-params"][0]["name"], "page");
}

#[tokio::test]
async fn pages_a_table_with_a_keyset_cursor() {
    let fixture = Fixture::new().await;
    let app = app(&fixture);

    let mut target = "/products/keyset?category=2&limit=4".to_owned();
    let mut seen = Vec::new();
    let mut last = None;
    for _ in 0..20 {
        let answer = get_json(&app, &target).await;
        assert_eq!(answer.status, 200, "{target}: {}", answer.body);
        seen.extend(ids(&answer.body));
        match answer.body["pagination"]["nextCursor"].as_str() {
            Some(next) => {
                assert_eq!(
                    link(&answer, "next"),
                    Some(format!("/products/keyset?category=2&cursor={next}&limit=4"))
                );
                target = format!("/products/keyset?category=2&limit=4&cursor={next}");
            }
            None => {
                last = Some(answer);
                break;
            }
        }
    }
    let expected: Vec<i64> = (1..=ROWS).filter(|id| id % 3 == 2).collect();
    assert_eq!(seen, expected);

    // And back again with prevCursor, page by page: everything before the last page.
    let mut answer = last.expect("a last page");
    let last_page = ids(&answer.body);
    assert_eq!(
        last_page,
        expected[expected.len() - last_page.len()..].to_vec()
    );
    let mut back = Vec::new();
    while let Some(prev) = answer.body["pagination"]["prevCursor"].as_str() {
        let url = format!("/products/keyset?category=2&limit=4&cursor={prev}");
        answer = get_json(&app, &url).await;
        assert_eq!(ids(&answer.body).len(), 4, "{url}");
        let mut page = ids(&answer.body);
        page.extend(back);
        back = page;
    }
    assert_eq!(back, expected[..expected.len() - last_page.len()].to_vec());
    assert_eq!(answer.body["pagination"]["hasPrevious"], false);
    assert_eq!(answer.body["pagination"]["hasNext"], true);

    // A cursor is bound to its filter, and signed.
    let first = get_json(&app, "/products/keyset?category=2&limit=4").await;
    let next = first.body["pagination"]["nextCursor"]
        .as_str()
        .unwrap()
        .to_owned();
    let reused = get_json(
        &app,
        &format!("/products/keyset?category=0&limit=4&cursor={next}"),
    )
    .await;
    assert_eq!(reused.status, 400);
    assert_eq!(reused.body["invalid-params"][0]["name"], "cursor");
    let mut tampered = next.clone().into_bytes();
    tampered[3] = if tampered[3] == b'A' { b'B' } else { b'A' };
    let tampered = String::from_utf8(tampered).unwrap();
    let answer = get_json(
        &app,
        &format!("/products/keyset?category=2&limit=4&cursor={tampered}"),
    )
    .await;
    assert_eq!(answer.status, 400);
    // Page numbers are not how this listing pages.
    let numbered = get_json(&app, "/products/keyset?page=2").await;
    assert_eq!(numbered.status, 400);
    assert_eq!(numbered.body["invalid-params"][0]["name"], "page");
}

#[tokio::test]
async fn reads_only_the_selected_columns() {
    let fixture = Fixture::new().await;
    let app = app(&fixture);

    let answer = get_json(&app, "/products?limit=2&fields=name,price").await;
    assert_eq!(answer.headers["x-queried-columns"], "id,name,price");
    // The layer trims `id`, which the handler read only for itself.
    assert_eq!(
        answer.body["data"],
        serde_json::json!([{"name": "product 1", "price": 100}, {"name": "product 2", "price": 200}])
    );
    assert_eq!(answer.body["pagination"]["total"], ROWS);

    let everything = get_json(&app, "/products?limit=1").await;
    assert_eq!(
        everything.headers["x-queried-columns"],
        "id,name,category,price"
    );

    let bad = get_json(&app, "/products?fields=name(").await;
    assert_eq!(bad.status, 400);
    assert_eq!(bad.body["invalid-params"][0]["name"], "fields");
}
