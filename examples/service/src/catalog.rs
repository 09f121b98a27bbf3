//! The catalog's handlers: products (list, read, create, replace, delete) and categories.
//!
//! Handlers stay plain: SQL through `Db` (timed, counted into `Server-Timing`), rows into
//! serde structs, and a `Cache-Tag` response header naming what the response depends on so
//! writes can invalidate exactly that. Everything else (paging the category list, field
//! selection, stripping nulls, compression, caching, timing) is done by the layers.

use axum::Json;
use axum::extract::rejection::{PathRejection, QueryRejection};
use axum::extract::{Path, Query, State};
use axum::http::header::LOCATION;
use axum::http::{HeaderName, HeaderValue, StatusCode};
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

use crate::AppState;

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
}

/// A category.
#[derive(Debug, Serialize)]
pub struct Category {
    id: i32,
    name: String,
    description: Option<String>,
}

const PRODUCT_COLUMNS: &str = "id, category_id, name, description, price_cents, discount_percent, image_url, stock, \
     to_char(created_at AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS\"Z\"'), \
     to_char(updated_at AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS\"Z\"')";

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

/// `GET /api/products/{id}`.
pub async fn get_product(
    State(state): State<AppState>,
    id: Result<Path<i64>, PathRejection>,
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
    Ok(([(CACHE_TAG, product_tag(id))], Json(product)).into_response())
}

/// `POST /api/products`: 201 with the product and its `Location`.
pub async fn create_product(
    State(state): State<AppState>,
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
    Ok((StatusCode::CREATED, [(LOCATION, location)], Json(product)).into_response())
}

/// `PUT /api/products/{id}`: replaces every writable field.
pub async fn replace_product(
    State(state): State<AppState>,
    id: Result<Path<i64>, PathRejection>,
    body: Bytes,
) -> Result<Response, ApiError> {
    let id = product_id(id)?;
    let input = ProductInput::parse(&body)?;
    let sql = format!(
        "UPDATE products SET category_id = $1, name = $2, description = $3, price_cents = $4, discount_percent = $5, \
         image_url = $6, stock = $7, updated_at = now() WHERE id = $8 RETURNING {PRODUCT_COLUMNS}"
    );
    let mut params = input.params();
    params.push(&id);
    let row = state
        .db
        .named("update_product")
        .query_opt(&sql, &params)
        .await
        .map_err(input_error)?;
    let product = row
        .as_ref()
        .map(Product::from_row)
        .ok_or_else(|| not_found(id))?;
    state
        .invalidate(&[&format!("product:{id}"), "products"])
        .await;
    Ok(Json(product).into_response())
}

/// `DELETE /api/products/{id}`: 204.
pub async fn delete_product(
    State(state): State<AppState>,
    id: Result<Path<i64>, PathRejection>,
) -> Result<Response, ApiError> {
    let id = product_id(id)?;
    let deleted = state
        .db
        .named("delete_product")
        .execute("DELETE FROM products WHERE id = $1", &[&id])
        .await?;
    if deleted == 0 {
        return Err(not_found(id).into());
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
