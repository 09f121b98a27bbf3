//! Pagination parameters, the pagination transform, and keyset cursors.

use std::sync::OnceLock;

use http::Request;
use serde_json::{Value, json};
use towerkit_paginate::transform::{self, JsonPointer};
use towerkit_paginate::{Keyset, Page, PaginateLayer, Pagination, PaginationConfig, Style};

use crate::json::{Parsed, canonical, has_duplicate_keys, parse};
use crate::split_line;

/// The first line is a query string, the rest a document (an array, or an object whose
/// `items` member is paged in place). `Pagination::from_request` never panics and rejects
/// with a 400; `paginate` never panics, fails on malformed documents, and on well-formed
/// ones equals slicing the parsed value and building the envelope by hand.
pub fn paginate(data: &[u8]) {
    let (query, document) = split_line(data);
    let Ok(query) = std::str::from_utf8(query) else {
        return;
    };
    let Ok(request) = Request::get(format!("/items?{query}")).body(()) else {
        return;
    };
    let pagination = match Pagination::from_request(&request, &PaginationConfig::default()) {
        Ok(pagination) => pagination,
        Err(problem) => {
            assert_eq!(problem.status(), 400, "{query:?}");
            return;
        }
    };
    let in_place = document.iter().find(|b| !b.is_ascii_whitespace()) == Some(&b'{');
    let pointer = if in_place {
        JsonPointer::parse("/items").expect("valid pointer")
    } else {
        JsonPointer::root()
    };

    let mut out = Vec::new();
    let result = transform::paginate(document, &mut out, &pagination, &pointer);
    let value = match parse(document) {
        Parsed::OutOfRange => return,
        Parsed::Malformed => {
            assert!(
                result.is_err(),
                "accepted malformed {:?}",
                String::from_utf8_lossy(document)
            );
            return;
        }
        Parsed::Value(value) => value,
    };
    if has_duplicate_keys(document) {
        return;
    }
    let expected = reference_page(value, &pagination, in_place);
    match (result, expected) {
        (Ok(info), Some((expected, total))) => {
            let got: Value = serde_json::from_slice(&out).expect("output is JSON");
            assert_eq!(canonical(&got), canonical(&expected), "query {query:?}");
            assert_eq!(info.total(), Some(total));
        }
        (Err(_), None) => {}
        (result, expected) => {
            panic!("query {query:?}: towerkit says {result:?}, the reference {expected:?}")
        }
    }
}

/// The first line is an item key (text), the rest drives tampering. A cursor sealed by
/// `Page::keyset` decodes to the same key on the same listing; the same cursor on a listing
/// with another filter, any other cursor text (tampered with, or arbitrary), and a cursor
/// with a page number are 400s. Following `nextCursor` from the first page of
/// `[0, 1, ..., n-1]` visits every item once, in order; following `prevCursor` back from
/// the last page visits the rest.
pub fn cursor(data: &[u8]) {
    let (key, rest) = split_line(data);
    let key = String::from_utf8_lossy(key).into_owned();
    let config = cursor_config();
    let first = pagination(config, "/items?limit=2&sort=name").expect("a valid first request");
    let page = Page::keyset(
        vec![key.clone(), key.clone(), key.clone()],
        &first,
        Clone::clone,
    );
    let token = page
        .info()
        .next_cursor()
        .expect("a full page has a next cursor")
        .to_owned();
    assert!(
        token
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_'),
        "{token}"
    );

    let next = pagination(config, &format!("/items?limit=2&sort=name&cursor={token}"))
        .expect("its own cursor is valid");
    assert_eq!(
        next.keyset::<String>().expect("the key decodes"),
        Keyset::After(key.clone())
    );
    rejected(config, &format!("/items?limit=2&sort=price&cursor={token}"));
    rejected(config, &format!("/other?limit=2&sort=name&cursor={token}"));
    rejected(config, &format!("/items?page=2&cursor={token}"));

    if let [at, flip, ..] = rest {
        let mut tampered = token.clone().into_bytes();
        let index = usize::from(*at) % tampered.len();
        tampered[index] ^= flip;
        let tampered = String::from_utf8_lossy(&tampered).into_owned();
        if tampered != token {
            rejected(
                config,
                &format!("/items?limit=2&sort=name&cursor={}", encode(&tampered)),
            );
        }
    }
    let arbitrary = String::from_utf8_lossy(rest).into_owned();
    if arbitrary != token {
        rejected(
            config,
            &format!("/items?limit=2&sort=name&cursor={}", encode(&arbitrary)),
        );
    }

    let count = key.len() % 40;
    let limit = 1 + rest.first().map_or(0, |b| usize::from(*b) % 6);
    walk(config, count, limit);
}

fn cursor_config() -> &'static PaginationConfig {
    static CONFIG: OnceLock<PaginationConfig> = OnceLock::new();
    CONFIG.get_or_init(|| {
        PaginateLayer::builder()
            .style(Style::Cursors)
            .cursor_key(*b"towerkit fuzz cursor key, 32 B!!")
            .build()
            .expect("valid configuration")
            .config()
            .clone()
    })
}

fn pagination(
    config: &PaginationConfig,
    uri: &str,
) -> Result<Pagination, towerkit_paginate::Problem> {
    let request = Request::get(uri).body(()).expect("a valid URI");
    Pagination::from_request(&request, config)
}

fn rejected(config: &PaginationConfig, uri: &str) {
    match pagination(config, uri) {
        Ok(_) => panic!("{uri} was accepted"),
        Err(problem) => assert_eq!(problem.status(), 400, "{uri}"),
    }
}

fn encode(text: &str) -> String {
    form_urlencoded::byte_serialize(text.as_bytes()).collect()
}

/// Pages through `[0, ..., count-1]` by cursors, forwards then backwards.
fn walk(config: &PaginationConfig, count: usize, limit: usize) {
    let document = serde_json::to_vec(&(0..count).collect::<Vec<_>>()).expect("numbers serialize");
    let fetch = |cursor: Option<&str>| -> (Vec<Value>, Option<String>, Option<String>) {
        let uri = match cursor {
            Some(cursor) => format!("/items?limit={limit}&cursor={cursor}"),
            None => format!("/items?limit={limit}"),
        };
        let pagination = pagination(config, &uri).expect("cursors this transform issued are valid");
        let mut out = Vec::new();
        let info = transform::paginate(&document, &mut out, &pagination, &JsonPointer::root())
            .expect("a page of a well-formed array");
        let page: Value = serde_json::from_slice(&out).expect("output is JSON");
        let items = page["data"].as_array().cloned().unwrap_or_default();
        (
            items,
            info.next_cursor().map(str::to_owned),
            info.prev_cursor().map(str::to_owned),
        )
    };

    let mut seen = Vec::new();
    let (mut items, mut next, _) = fetch(None);
    let mut last_page = (items.clone(), None);
    for _ in 0..=count {
        seen.extend(items);
        let Some(cursor) = next.take() else {
            break;
        };
        let (page, following, previous) = fetch(Some(&cursor));
        assert!(
            previous.is_some(),
            "a page reached by nextCursor has a prevCursor"
        );
        last_page = (page.clone(), previous);
        items = page;
        next = following;
    }
    let expected: Vec<Value> = (0..count).map(Value::from).collect();
    assert_eq!(seen, expected, "forwards with limit {limit}");

    let (mut backwards, mut previous) = last_page;
    for _ in 0..=count {
        let Some(cursor) = previous.take() else {
            break;
        };
        let (page, _, before) = fetch(Some(&cursor));
        assert!(!page.is_empty(), "prevCursor led to an empty page");
        backwards.splice(0..0, page);
        previous = before;
    }
    assert_eq!(backwards, expected, "backwards with limit {limit}");
}

/// The paginated document, sliced by hand, and the total.
fn reference_page(
    mut document: Value,
    pagination: &Pagination,
    in_place: bool,
) -> Option<(Value, u64)> {
    let limit = u64::try_from(pagination.limit()).ok()?;
    let offset = u64::try_from(pagination.offset()).ok()?;
    let slice = |items: &[Value]| -> (Vec<Value>, Value, u64) {
        let total = items.len() as u64;
        let start = offset.min(total);
        let end = offset.saturating_add(limit).min(total);
        let data =
            items[usize::try_from(start).unwrap_or(0)..usize::try_from(end).unwrap_or(0)].to_vec();
        let meta = match pagination.page() {
            Some(page) => json!({
                "page": page, "limit": limit, "total": total, "totalPages": total.div_ceil(limit),
                "hasNext": end < total, "hasPrevious": page > 1,
            }),
            None => json!({
                "offset": offset, "limit": limit, "total": total, "hasNext": end < total, "hasPrevious": offset > 0,
            }),
        };
        (data, meta, total)
    };
    if !in_place {
        let (data, meta, total) = slice(document.as_array()?);
        return Some((json!({"data": data, "pagination": meta}), total));
    }
    let parent = document.as_object_mut()?;
    let (data, meta, total) = slice(parent.get("items")?.as_array()?);
    parent.insert("items".to_owned(), Value::Array(data));
    parent.shift_remove("pagination");
    parent.insert("pagination".to_owned(), meta);
    Some((document, total))
}
