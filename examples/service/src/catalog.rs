//! The catalog's handlers: products (list, read, create, replace, delete) and categories.
//!
//! Handlers stay plain: SQL through `Db` (timed, counted into `Server-Timing`), rows into
//! serde structs, and a `Cache-Tag` response header naming what the response depends on so
//! writes can invalidate exactly that. Everything else (paging the category list, field
//! selection, stripping nulls, compression, caching, timing, `ETag`s of the lists) is done
//! by the layers.
//!
//! # Validators
//!
//! A product is the one resource clients write, so its `ETag` is one a write can check in
//! the same SQL statement as it writes: `"p{id}-v{version}-{view}"`, from the row's
//! `version` column (migration 0003; every `UPDATE` increments it) and the *view*, a hash of
//! whatever else decides the bytes (see [`REPRESENTATION_REVISION`] and `view`). The handler
//! cannot put it in the `ETag` header itself: the JSON layers between it and the client
//! rewrite the body and so weaken any strong tag they pass (`W/"..."`), and a weak tag never
//! satisfies `If-Match` (strong comparison, RFC 9110 §13.1.1). So it travels as a
//! [`RepresentationTag`] response extension, which the layers leave alone, and
//! [`expose_etag`], outside the JSON layers, makes it the `ETag`. That is sound because
//! the layers' rewrite is a deterministic function of the handler's bytes and the request's
//! query string, both of which the tag covers: equal tags mean equal bytes. Compression,
//! further out, gives each coding its own tag (`"...-br"`), and `Preconditions` compares
//! the base tag, so `If-Match` with the tag of any coding of the current version holds.
//! The lists and categories have no version: `ETagLayer` hashes their bytes.

use std::time::{Duration, UNIX_EPOCH};

use axum::Json;
use axum::extract::rejection::{PathRejection, QueryRejection};
use axum::extract::{Path, Query, RawQuery, State};
use axum::http::header::{CONTENT_LOCATION, ETAG, IF_MATCH, LOCATION};
use axum::http::{HeaderMap, HeaderName, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use towerkit::db::DbError;
use towerkit::db::tokio_postgres::Row;
use towerkit::db::tokio_postgres::error::SqlState;
use towerkit::db::tokio_postgres::types::ToSql;
use towerkit::json::Problem;
use towerkit::paginate::{Page, Pagination};
use towerkit::validators::{PreconditionError, Preconditions, etag_of};

use crate::AppState;
use crate::config::Layers;

/// The response header the cache reads tags from (and strips before the client sees it).
pub const CACHE_TAG: HeaderName = HeaderName::from_static("cache-tag");

/// A product as the API shows it. `None` fields serialize as `null`, which the
/// null-stripping layer removes.
#[derive(Debug, Serialize)]
pub struct Product {
    id: i64,
    category_id: i32,
    name: String,
    description: Option<String>,
    price_cents: i64,
    discount_percent: Option<i32>,
    image_url: Option<String>,
    stock: i32,
    created_at: String,
    updated_at: String,
    /// The row's version (counts writes), named by the `ETag` rather than shown in the body.
    #[serde(skip)]
    version: i64,
}

/// A category.
#[derive(Debug, Serialize)]
pub struct Category {
    id: i32,
    name: String,
    description: Option<String>,
}

/// The columns a [`Product`] is read from. A change to what they give for an unchanged row
/// (another date format) changes the product's bytes: bump [`REPRESENTATION_REVISION`].
const PRODUCT_COLUMNS: &str = "id, category_id, name, description, price_cents, discount_percent, image_url, stock, \
     to_char(created_at AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS\"Z\"'), \
     to_char(updated_at AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS\"Z\"'), version";

impl Product {
    fn from_row(row: &Row) -> Self {
        Product {
            id: row.get(0),
            category_id: row.get(1),
            name: row.get(2),
            description: row.get(3),
            price_cents: row.get(4),
            discount_percent: row.get(5),
            image_url: row.get(6),
            stock: row.get(7),
            created_at: row.get(8),
            updated_at: row.get(9),
            version: row.get(10),
        }
    }
}

/// What a handler can fail with: a client mistake or a database failure, both answered
/// as `application/problem+json`.
#[derive(Debug)]
pub enum ApiError {
    /// A 4xx for the client.
    Problem(Problem),
    /// The database failed (503 when unavailable, 500 otherwise, without SQL details).
    Db(DbError),
}

impl From<Problem> for ApiError {
    fn from(problem: Problem) -> Self {
        ApiError::Problem(problem)
    }
}

impl From<DbError> for ApiError {
    fn from(error: DbError) -> Self {
        ApiError::Db(error)
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        match self {
            ApiError::Problem(problem) => problem.into_response(),
            ApiError::Db(error) => {
                tracing::error!(%error, "database error");
                error.problem().into_response()
            }
        }
    }
}

/// The list endpoint's filter parameters (pagination has its own extractor).
#[derive(Debug, Deserialize)]
pub struct ListFilter {
    category: Option<String>,
}

/// `GET /api/products[?category=N][&page=&limit= | &offset=&limit=]`: paged in SQL
/// (`LIMIT`/`OFFSET` from the `Pagination` extractor, the total from `count(*)`).
pub async fn list_products(
    State(state): State<AppState>,
    pagination: Pagination,
    filter: Result<Query<ListFilter>, QueryRejection>,
) -> Result<Response, ApiError> {
    let Query(filter) = filter.map_err(|rejection| bad_param("category", rejection.body_text()))?;
    let category = match filter.category.as_deref() {
        None => None,
        Some(text) => Some(
            text.parse::<i32>()
                .map_err(|_| bad_param("category", "expected a category id"))?,
        ),
    };
    let db = &state.db;
    let total: i64 = db
        .named("count_products")
        .query_one(
            "SELECT count(*) FROM products WHERE ($1::int IS NULL OR category_id = $1)",
            &[&category],
        )
        .await?
        .get(0);
    let sql = format!(
        "SELECT {PRODUCT_COLUMNS} FROM products WHERE ($1::int IS NULL OR category_id = $1) ORDER BY id LIMIT $2 OFFSET $3"
    );
    let rows = db
        .named("list_products")
        .query(
            &sql,
            &[&category, &pagination.limit(), &pagination.offset()],
        )
        .await?;
    let products = rows.iter().map(Product::from_row).collect();
    let page = Page::new(products, u64::try_from(total).unwrap_or(0), &pagination);
    Ok(([(CACHE_TAG, HeaderValue::from_static("products"))], page).into_response())
}

/// `GET /api/products/{id}`, with the product's strong `ETag` (see the [module docs](self)).
/// `If-None-Match` is answered by `ETagLayer` (or the cache) with a `304`.
pub async fn get_product(
    State(state): State<AppState>,
    id: Result<Path<i64>, PathRejection>,
    RawQuery(query): RawQuery,
) -> Result<Response, ApiError> {
    let id = product_id(id)?;
    let sql = format!("SELECT {PRODUCT_COLUMNS} FROM products WHERE id = $1");
    let row = state
        .db
        .named("product_by_id")
        .query_opt(&sql, &[&id])
        .await?;
    let product = row
        .as_ref()
        .map(Product::from_row)
        .ok_or_else(|| not_found(id))?;
    let etag = product_etag(id, product.version, &view(&state, query.as_deref()));
    let response = ([(CACHE_TAG, product_tag(id))], Json(product)).into_response();
    Ok(with_representation_tag(response, etag))
}

/// `POST /api/products`: 201 with the product, its `Location` and its `ETag`, so a client
/// can go on to change it with `If-Match` without reading it first.
pub async fn create_product(
    State(state): State<AppState>,
    RawQuery(query): RawQuery,
    body: Bytes,
) -> Result<Response, ApiError> {
    let input = ProductInput::parse(&body)?;
    let sql = format!(
        "INSERT INTO products (category_id, name, description, price_cents, discount_percent, image_url, stock) \
         VALUES ($1, $2, $3, $4, $5, $6, $7) RETURNING {PRODUCT_COLUMNS}"
    );
    let row = state
        .db
        .named("insert_product")
        .query_one(&sql, &input.params())
        .await
        .map_err(input_error)?;
    let product = Product::from_row(&row);
    state.invalidate(&["products"]).await;
    let location = HeaderValue::try_from(format!("/api/products/{}", product.id))
        .map_err(|_| not_found(product.id))?;
    let (id, version) = (product.id, product.version);
    let content_location = content_location(id, query.as_deref());
    let etag = product_etag(id, version, &view(&state, query.as_deref()));
    let response = (
        StatusCode::CREATED,
        [(LOCATION, location), (CONTENT_LOCATION, content_location)],
        Json(product),
    )
        .into_response();
    Ok(with_representation_tag(response, etag))
}

/// `PUT /api/products/{id}`: replaces every writable field. With `If-Match` (or
/// `If-Unmodified-Since`), only the version the client names: otherwise `412`, never a lost
/// update. The `200` carries the new product, `Content-Location` naming it as the resource's
/// new representation, and its new `ETag`, ready for the next `If-Match`.
pub async fn replace_product(
    State(state): State<AppState>,
    id: Result<Path<i64>, PathRejection>,
    RawQuery(query): RawQuery,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, ApiError> {
    let id = product_id(id)?;
    // Preconditions before the content (RFC 9110 §13.2.1): a stale write is a 412 whatever
    // its body, and a missing product a 404.
    let expected = expected_version(&state, id, &headers).await?;
    let input = ProductInput::parse(&body)?;
    // The version check and the increment are in the statement that writes: a writer that
    // read the same version as another, and lost the race for the row's lock, finds the
    // version changed when PostgreSQL re-evaluates the WHERE clause, and updates nothing.
    // (The migration's trigger bumps `version` on every UPDATE too, to the same value.)
    let sql = format!(
        "UPDATE products SET category_id = $1, name = $2, description = $3, price_cents = $4, discount_percent = $5, \
         image_url = $6, stock = $7, updated_at = now(), version = version + 1 \
         WHERE id = $8 AND ($9::bigint IS NULL OR version = $9) RETURNING {PRODUCT_COLUMNS}"
    );
    let mut params = input.params();
    params.push(&id);
    params.push(&expected);
    let row = state
        .db
        .named("update_product")
        .query_opt(&sql, &params)
        .await
        .map_err(input_error)?;
    let Some(product) = row.as_ref().map(Product::from_row) else {
        return Err(missed_write(&state, id, expected).await);
    };
    state
        .invalidate(&[&format!("product:{id}"), "products"])
        .await;
    let etag = product_etag(id, product.version, &view(&state, query.as_deref()));
    let response = (
        [(CONTENT_LOCATION, content_location(id, query.as_deref()))],
        Json(product),
    )
        .into_response();
    Ok(with_representation_tag(response, etag))
}

/// `DELETE /api/products/{id}`: 204. With `If-Match` (or `If-Unmodified-Since`), only the
/// version the client names: otherwise `412`.
pub async fn delete_product(
    State(state): State<AppState>,
    id: Result<Path<i64>, PathRejection>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let id = product_id(id)?;
    let expected = expected_version(&state, id, &headers).await?;
    let deleted = state
        .db
        .named("delete_product")
        .execute(
            "DELETE FROM products WHERE id = $1 AND ($2::bigint IS NULL OR version = $2)",
            &[&id, &expected],
        )
        .await?;
    if deleted == 0 {
        return Err(missed_write(&state, id, expected).await);
    }
    state
        .invalidate(&[&format!("product:{id}"), "products"])
        .await;
    Ok(StatusCode::NO_CONTENT.into_response())
}

/// `GET /api/categories`: the whole list; `PaginateLayer` pages it.
pub async fn list_categories(State(state): State<AppState>) -> Result<Response, ApiError> {
    let rows = state
        .db
        .named("list_categories")
        .query(
            "SELECT id, name, description FROM categories ORDER BY id",
            &[],
        )
        .await?;
    let categories: Vec<Category> = rows
        .iter()
        .map(|row| Category {
            id: row.get(0),
            name: row.get(1),
            description: row.get(2),
        })
        .collect();
    Ok((
        [(CACHE_TAG, HeaderValue::from_static("categories"))],
        Json(categories),
    )
        .into_response())
}

/// A validated product body.
#[derive(Debug)]
struct ProductInput {
    category_id: i32,
    name: String,
    description: Option<String>,
    price_cents: i64,
    discount_percent: Option<i32>,
    image_url: Option<String>,
    stock: i32,
}

impl ProductInput {
    /// A 400 for a body that is not a JSON object, a 422 naming the first invalid field.
    fn parse(body: &[u8]) -> Result<Self, Problem> {
        let value: Value = serde_json::from_slice(body)
            .map_err(|e| Problem::bad_request(format!("the body is not valid JSON: {e}")))?;
        let Value::Object(object) = value else {
            return Err(Problem::bad_request("the body must be a JSON object"));
        };
        let fields = Fields(&object);
        Ok(ProductInput {
            category_id: fields
                .integer("category_id", 1, i32::MAX.into())?
                .ok_or_else(|| required("category_id"))? as i32,
            name: fields
                .text("name", 1, 200)?
                .ok_or_else(|| required("name"))?,
            description: fields.text("description", 0, 2000)?,
            price_cents: fields
                .integer("price_cents", 0, 100_000_000_000)?
                .ok_or_else(|| required("price_cents"))?,
            discount_percent: fields
                .integer("discount_percent", 0, 100)?
                .map(|n| n as i32),
            image_url: match fields.text("image_url", 1, 2000)? {
                Some(url) if !(url.starts_with("https://") || url.starts_with("http://")) => {
                    return Err(invalid("image_url", "must be an http or https URL"));
                }
                other => other,
            },
            stock: fields.integer("stock", 0, i32::MAX.into())?.unwrap_or(0) as i32,
        })
    }

    fn params(&self) -> Vec<&(dyn ToSql + Sync)> {
        vec![
            &self.category_id,
            &self.name,
            &self.description,
            &self.price_cents,
            &self.discount_percent,
            &self.image_url,
            &self.stock,
        ]
    }
}

/// Typed reads of a JSON object's members, each failure a 422 naming the member.
struct Fields<'a>(&'a Map<String, Value>);

impl Fields<'_> {
    fn integer(&self, name: &str, min: i64, max: i64) -> Result<Option<i64>, Problem> {
        match self.0.get(name) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::Number(n)) => match n.as_i64() {
                Some(n) if (min..=max).contains(&n) => Ok(Some(n)),
                _ => Err(invalid(
                    name,
                    &format!("must be a whole number from {min} to {max}"),
                )),
            },
            Some(_) => Err(invalid(name, "must be a number")),
        }
    }

    fn text(&self, name: &str, min: usize, max: usize) -> Result<Option<String>, Problem> {
        match self.0.get(name) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::String(s)) if (min..=max).contains(&s.chars().count()) => {
                Ok(Some(s.clone()))
            }
            Some(Value::String(_)) => Err(invalid(
                name,
                &format!("must be {min} to {max} characters long"),
            )),
            Some(_) => Err(invalid(name, "must be a string")),
        }
    }
}

fn invalid(field: &str, reason: &str) -> Problem {
    Problem::new(StatusCode::UNPROCESSABLE_ENTITY)
        .with_detail(format!("{field} {reason}"))
        .with_invalid_param(field, reason)
}

fn required(field: &str) -> Problem {
    invalid(field, "is required")
}

fn bad_param(name: &str, reason: impl Into<String>) -> Problem {
    let reason = reason.into();
    Problem::bad_request(format!("invalid {name}: {reason}")).with_invalid_param(name, reason)
}

fn not_found(id: i64) -> Problem {
    Problem::new(StatusCode::NOT_FOUND).with_detail(format!("no product with id {id}"))
}

fn product_id(id: Result<Path<i64>, PathRejection>) -> Result<i64, Problem> {
    match id {
        Ok(Path(id)) if id > 0 => Ok(id),
        _ => Err(bad_param("id", "expected a positive integer")),
    }
}

fn product_tag(id: i64) -> HeaderValue {
    // Digits and ASCII letters only: always a valid header value.
    HeaderValue::try_from(format!("product:{id}")).unwrap_or(HeaderValue::from_static("products"))
}

/// Bump when a product's JSON changes for rows that did not (a field added to [`Product`],
/// another format in `PRODUCT_COLUMNS`, a towerkit upgrade that strips or orders
/// differently): `version` counts writes only, and this is what gives the new bytes new
/// tags, so that a client revalidating a copy in the old format is not told `304`. It
/// also changes every product's tag, so `If-Match` from before the deploy gets a `412`.
pub const REPRESENTATION_REVISION: u32 = 1;

/// The strong `ETag` a handler gives its response, carried as a response extension past
/// the JSON layers (which would weaken an `ETag` header) to [`expose_etag`].
#[derive(Debug, Clone)]
pub struct RepresentationTag(HeaderValue);

/// Makes a handler's [`RepresentationTag`] the response's `ETag`, on a success only (a
/// strict `fields=` turns a `200` into a `400` on the way). `app` runs it just outside the
/// JSON layers and inside `ETagLayer`, which then answers `If-None-Match` with this tag
/// instead of hashing the body, and inside compression, which suffixes it per coding.
pub fn expose_etag<B>(mut response: axum::http::Response<B>) -> axum::http::Response<B> {
    if let Some(RepresentationTag(etag)) = response.extensions_mut().remove::<RepresentationTag>()
        && response.status().is_success()
    {
        response.headers_mut().insert(ETAG, etag);
    }
    response
}

fn with_representation_tag(mut response: Response, etag: HeaderValue) -> Response {
    response.extensions_mut().insert(RepresentationTag(etag));
    response
}

/// The strong `ETag` of product `id` at `version` in `view`: `"p{id}-v{version}-{view}"`.
/// Equal tags mean equal identity bytes: the row is the same (`version` changes with every
/// write; ids are never reused, `bigserial`), and so is everything else that shapes the
/// bytes (`view`). It never ends in a coding suffix (`-br`, `-gzip`, ...): `view` is hex.
fn product_etag(id: i64, version: i64, view: &str) -> HeaderValue {
    // Digits, ASCII letters and `-` in quotes: always a valid header value.
    HeaderValue::try_from(format!("\"p{id}-v{version}-{view}\""))
        .unwrap_or_else(|_| HeaderValue::from_static("\"\""))
}

/// What decides a product's bytes besides its row, as 16 hex digits (64 bits of XXH3): the
/// [`REPRESENTATION_REVISION`]; whether the JSON layers run (`LAYERS=none` keeps the
/// nulls); and the query string, since `fields=` projects the body. Any query string
/// counts, even one no layer reads: a different URL may get a different tag for the same
/// bytes, which costs a revalidation at most, never a wrong `304`. The request headers do
/// not change the identity bytes: `Accept-Encoding` is compression's, which suffixes the
/// tag per coding.
fn view(state: &AppState, query: Option<&str>) -> String {
    let layers = match state.config.layers {
        Layers::All => "all",
        Layers::None => "none",
    };
    let described = format!(
        "{REPRESENTATION_REVISION}\n{layers}\n{}",
        query.unwrap_or_default()
    );
    let hashed = etag_of(described.as_bytes());
    // `"` and 32 hex digits and `"`: the first 16 digits.
    hashed
        .to_str()
        .ok()
        .and_then(|tag| tag.get(1..17))
        .unwrap_or("0")
        .to_owned()
}

/// `Content-Location` of a write's `2xx`: the product's URL (with the request's query, which
/// shaped the body), telling the client that the body is the resource's new
/// representation, and the `ETag` that of this body (RFC 9110 §8.7).
fn content_location(id: i64, query: Option<&str>) -> HeaderValue {
    let location = match query {
        Some(query) if !query.is_empty() => format!("/api/products/{id}?{query}"),
        _ => format!("/api/products/{id}"),
    };
    // The query came in a valid request target: still a valid header value.
    HeaderValue::try_from(location).unwrap_or_else(|_| HeaderValue::from_static("/api/products"))
}

/// Evaluates a write's preconditions (`If-Match`, else `If-Unmodified-Since`) against
/// product `id`'s current version, with `Preconditions` (strong comparison; a coding's
/// suffix matches its base tag): the version the write must still find, or `None` for a
/// write without preconditions (`REQUIRE_PRECONDITIONS=on` answers those with a `428`
/// before this) and for `If-Match: *`, which any current version satisfies. A missing
/// product is a `404`; a stale or malformed precondition a `412` or `400`. The tag it
/// compares with is the one `GET /api/products/{id}` (without a query) shows.
async fn expected_version(
    state: &AppState,
    id: i64,
    headers: &HeaderMap,
) -> Result<Option<i64>, ApiError> {
    let preconditions = Preconditions::from_headers(headers);
    if !preconditions.is_present() {
        return Ok(None);
    }
    let row = state
        .db
        .named("product_version")
        .query_opt(
            "SELECT version, extract(epoch FROM date_trunc('second', updated_at))::bigint \
             FROM products WHERE id = $1",
            &[&id],
        )
        .await?;
    let Some(row) = row else {
        return Err(not_found(id).into());
    };
    let version: i64 = row.get(0);
    let modified_secs: i64 = row.get(1);
    let modified = UNIX_EPOCH + Duration::from_secs(u64::try_from(modified_secs).unwrap_or(0));
    let current = product_etag(id, version, &view(state, None));
    preconditions
        .check(Some(&current), Some(modified))
        .map_err(precondition_problem)?;
    if if_match_is_any(headers) {
        return Ok(None);
    }
    Ok(Some(version))
}

/// Whether `If-Match` is `*` (on every line): the write needs a current version, any one.
fn if_match_is_any(headers: &HeaderMap) -> bool {
    let mut lines = headers.get_all(IF_MATCH).iter().peekable();
    lines.peek().is_some() && lines.all(|line| line.as_bytes().trim_ascii() == b"*")
}

/// A write that found no row to change: the product is gone (`404`), or it changed after
/// `expected_version` checked it (`412`, as if it had changed before).
async fn missed_write(state: &AppState, id: i64, expected: Option<i64>) -> ApiError {
    if expected.is_none() {
        return not_found(id).into();
    }
    match state
        .db
        .named("product_exists")
        .query_opt("SELECT 1 FROM products WHERE id = $1", &[&id])
        .await
    {
        Ok(Some(_)) => precondition_problem(PreconditionError::Failed),
        Ok(None) => not_found(id).into(),
        Err(error) => error.into(),
    }
}

fn precondition_problem(error: PreconditionError) -> ApiError {
    ApiError::Problem(error.to_problem())
}

/// A write rejected by a constraint is the client's mistake: a 422 naming the field.
fn input_error(error: DbError) -> ApiError {
    match error.sqlstate() {
        Some(state) if *state == SqlState::FOREIGN_KEY_VIOLATION => {
            invalid("category_id", "must name an existing category").into()
        }
        Some(state) if *state == SqlState::CHECK_VIOLATION => {
            Problem::new(StatusCode::UNPROCESSABLE_ENTITY)
                .with_detail("a field is out of range")
                .into()
        }
        _ => error.into(),
    }
}
