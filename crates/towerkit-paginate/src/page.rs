//! `Page<T>`: a handler's already-paginated answer, and the marker that says so.

use axum::body::Body;
use axum::response::{IntoResponse, Response};
use http::header::CONTENT_TYPE;
use http::{HeaderValue, StatusCode};
use serde::Serialize;

use crate::cursor::Direction;
use crate::envelope::PageInfo;
use crate::pointer::JsonPointer;
use crate::request::{Pagination, Position};

/// A response extension marking a body that is already a pagination envelope, with the
/// location of its items.
///
/// [`Page`] and [`PaginateLayer`](crate::PaginateLayer) set it;
/// `PaginateLayer` leaves marked responses alone (no second slicing), and
/// [`SelectFieldsLayer`](crate::SelectFieldsLayer) applies the selection to each item at
/// [`items`](Self::items) instead of to the whole document. Set it yourself on an
/// envelope built by hand.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Paginated {
    items: JsonPointer,
}

impl Paginated {
    /// Marks an envelope whose items are the array at `items`.
    pub fn new(items: JsonPointer) -> Self {
        Self { items }
    }

    /// Where the items are.
    pub fn items(&self) -> &JsonPointer {
        &self.items
    }
}

/// A page of items a handler fetched itself (with `LIMIT`/`OFFSET` or a keyset query),
/// answered as the pagination envelope with `Link` and `X-Total-Count` headers.
///
/// ```json
/// {"data": [...], "pagination": {"page": 2, "limit": 20, "total": 45, "totalPages": 3,
///  "hasNext": true, "hasPrevious": true}}
/// ```
///
/// The response is marked [`Paginated`], so a [`PaginateLayer`](crate::PaginateLayer)
/// around the handler does not slice it again. An item that fails to serialize makes a 500,
/// as with axum's `Json`.
///
/// ```
/// use axum::{Router, routing::get};
/// use towerkit_paginate::{Page, Pagination};
/// # use http_body_util::BodyExt;
/// # use tower::ServiceExt;
///
/// async fn list(pagination: Pagination) -> Page<u64> {
///     // SELECT ... LIMIT $1 OFFSET $2, and SELECT count(*) ...
///     let total = 45;
///     let start = pagination.offset() as u64;
///     let items = (start..(start + pagination.limit() as u64).min(total)).collect();
///     Page::new(items, total, &pagination)
/// }
///
/// let app = Router::new().route("/numbers", get(list));
/// # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
/// let request = http::Request::get("/numbers?page=3&limit=20").header("host", "api.test");
/// let response = app.oneshot(request.body(axum::body::Body::empty()).unwrap()).await.unwrap();
/// assert_eq!(response.headers()["x-total-count"], "45");
/// let body = response.into_body().collect().await.unwrap().to_bytes();
/// let body: serde_json::Value = serde_json::from_slice(&body).unwrap();
/// assert_eq!(body["data"], serde_json::json!([40, 41, 42, 43, 44]));
/// assert_eq!(body["pagination"]["hasNext"], false);
/// # });
/// ```
#[derive(Debug, Clone)]
pub struct Page<T> {
    items: Vec<T>,
    pagination: Pagination,
    info: PageInfo,
}

impl<T> Page<T> {
    /// The page `items` of a listing of `total` items, fetched with
    /// [`Pagination::limit`] and [`Pagination::offset`].
    pub fn new(items: Vec<T>, total: u64, pagination: &Pagination) -> Self {
        let has_next = pagination.offset_u64().saturating_add(pagination.limit) < total;
        let info = PageInfo::numbered(pagination, Some(total), has_next);
        Self {
            items,
            pagination: pagination.clone(),
            info,
        }
    }

    /// A page fetched with [`Pagination::fetch_limit`] rows (one more than the page size)
    /// instead of counting: an extra row means another page follows. The total stays
    /// unknown (no `total`, `totalPages`, `last` link or `X-Total-Count`).
    pub fn from_overfetch(mut rows: Vec<T>, pagination: &Pagination) -> Self {
        let limit = usize::try_from(pagination.limit).unwrap_or(usize::MAX);
        let has_next = rows.len() > limit;
        rows.truncate(limit);
        let info = PageInfo::numbered(pagination, None, has_next);
        Self {
            items: rows,
            pagination: pagination.clone(),
            info,
        }
    }

    /// A keyset page: `rows` fetched with [`Pagination::fetch_limit`] according to
    /// [`Pagination::keyset`] (for [`Keyset::Before`](crate::Keyset::Before), in descending
    /// key order as the query returned them); `key` gives an item's key, which goes into
    /// the signed `nextCursor` / `prevCursor`.
    ///
    /// On an empty page the cursor that would continue from it is left out (its key is
    /// unknown); the `first` link always remains.
    pub fn keyset<K: Serialize>(
        mut rows: Vec<T>,
        pagination: &Pagination,
        key: impl Fn(&T) -> K,
    ) -> Self {
        let limit = usize::try_from(pagination.limit).unwrap_or(usize::MAX);
        let direction = match &pagination.position {
            Position::Cursor(Some((direction, _))) => Some(*direction),
            Position::Cursor(None) | Position::Page(_) | Position::Offset(_) => None,
        };
        let overflow = rows.len() > limit;
        rows.truncate(limit);
        if direction == Some(Direction::Before) {
            rows.reverse();
        }
        let (has_next, has_previous) = match direction {
            None => (overflow, false),
            Some(Direction::After) => (overflow, true),
            Some(Direction::Before) => (true, overflow),
        };
        let seal = |direction: Direction, item: Option<&T>| {
            let item = item?;
            let key = serde_json::to_vec(&key(item)).ok()?;
            Some(pagination.seal(direction, &key))
        };
        let next = if has_next {
            seal(Direction::After, rows.last())
        } else {
            None
        };
        let prev = if has_previous {
            seal(Direction::Before, rows.first())
        } else {
            None
        };
        let info = PageInfo::cursor(pagination, None, next, prev);
        Self {
            items: rows,
            pagination: pagination.clone(),
            info,
        }
    }

    /// The items of the page.
    pub fn items(&self) -> &[T] {
        &self.items
    }

    /// What the page is: total, neighbours, cursors, links.
    pub fn info(&self) -> &PageInfo {
        &self.info
    }
}

impl<T: Serialize> IntoResponse for Page<T> {
    fn into_response(self) -> Response {
        let inner = &self.pagination.config.inner;
        let names = &inner.names;
        let mut body = Vec::with_capacity(128 + 64 * self.items.len());
        body.push(b'{');
        body.extend_from_slice(&names.data);
        body.extend_from_slice(b":[");
        for (index, item) in self.items.iter().enumerate() {
            if index > 0 {
                body.push(b',');
            }
            if let Err(error) = serde_json::to_writer(&mut body, item) {
                return (
                    StatusCode::INTERNAL_SERVER_ERROR,
                    format!("Failed to serialize page item: {error}"),
                )
                    .into_response();
            }
        }
        body.extend_from_slice(b"],");
        body.extend_from_slice(&names.pagination);
        body.push(b':');
        self.info.write(&mut body, names);
        body.push(b'}');
        let mut response = Response::new(Body::from(body));
        response
            .headers_mut()
            .insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
        self.info.set_headers(response.headers_mut());
        response
            .extensions_mut()
            .insert(Paginated::new(inner.data_pointer.clone()));
        response
    }
}
