//! The streaming pagination transform: slice a JSON array and wrap it, bytes in, bytes out.

use std::cell::Cell;

use towerkit_json::scan::{self, Malformed};

use crate::cursor::Direction;
use crate::envelope::PageInfo;
use crate::pointer::{self, JsonPointer, ParentEdit, TransformError};
use crate::request::{Pagination, Position};

/// Slices the array at `array_at` per `pagination` and writes the paginated document to
/// `out`; returns what the page turned out to be, for the headers.
///
/// - At the root (`JsonPointer::root()`), the array becomes the envelope
///   `{"data":[...],"pagination":{...}}` (member names from the configuration).
/// - At a pointer such as `/items`, the array is sliced in place and the `pagination`
///   member is added to the object holding it (replacing one already there).
///
/// The page's elements are copied byte for byte; the rest of the array is scanned (and
/// validated) only to count it. A page past the end is an empty array with correct
/// metadata. `Err` leaves `out` unspecified: the input is malformed, there is no array at
/// the pointer, or the request's cursor is a keyset cursor not issued by this transform.
///
/// ```
/// use http::Request;
/// use towerkit_paginate::transform::{JsonPointer, paginate};
/// use towerkit_paginate::{Pagination, PaginationConfig};
///
/// let request = Request::get("/n?page=2&limit=2").body(()).unwrap();
/// let pagination = Pagination::from_request(&request, &PaginationConfig::default()).unwrap();
/// let mut out = Vec::new();
/// let info = paginate(b"[1,2,3,4,5]", &mut out, &pagination, &JsonPointer::root()).unwrap();
/// assert_eq!(
///     String::from_utf8(out).unwrap(),
///     r#"{"data":[3,4],"pagination":{"page":2,"limit":2,"total":5,"totalPages":3,"hasNext":true,"hasPrevious":true}}"#
/// );
/// assert_eq!(info.total(), Some(5));
/// ```
pub fn paginate(
    input: &[u8],
    out: &mut Vec<u8>,
    pagination: &Pagination,
    array_at: &JsonPointer,
) -> Result<PageInfo, TransformError> {
    let window = Window::of(pagination)?;
    let names = &pagination.config.inner.names;
    if array_at.is_root() {
        let start = scan::skip_ws(input, 0);
        if scan::peek(input, start)? != b'[' {
            return Err(TransformError::NoArray);
        }
        let counted = count(input, start, 0, &window)?;
        scan::expect_end(input, counted.end)?;
        let info = window.info(pagination, counted.total);
        out.push(b'{');
        out.extend_from_slice(&names.data);
        out.extend_from_slice(b":[");
        if let Some((from, to)) = counted.span {
            out.extend_from_slice(&input[from..to]);
        }
        out.extend_from_slice(b"],");
        out.extend_from_slice(&names.pagination);
        out.push(b':');
        info.write(out, names);
        out.push(b'}');
        return Ok(info);
    }

    let total = Cell::new(None);
    let info = Cell::new(None);
    let mut target = |out: &mut Vec<u8>, pos: usize, depth: usize| {
        if scan::peek(input, pos)? != b'[' {
            return Err(TransformError::NoArray);
        }
        let counted = count(input, pos, depth, &window)?;
        out.push(b'[');
        if let Some((from, to)) = counted.span {
            out.extend_from_slice(&input[from..to]);
        }
        out.push(b']');
        total.set(Some(counted.total));
        Ok(counted.end)
    };
    let mut append = |out: &mut Vec<u8>| {
        // The target is inside the parent, so it has been counted by now.
        let page = window.info(pagination, total.get().unwrap_or_default());
        out.extend_from_slice(&names.pagination);
        out.push(b':');
        page.write(out, names);
        info.set(Some(page));
    };
    let parent = ParentEdit {
        drop: &names.pagination_raw,
        append: &mut append,
    };
    pointer::rewrite_at(input, out, array_at.segments(), &mut target, Some(parent))?;
    info.take().ok_or(TransformError::NoArray)
}

/// The element indices `[start, end)` a request asks for.
struct Window {
    start: u64,
    end: u64,
    cursor: bool,
}

impl Window {
    fn of(pagination: &Pagination) -> Result<Self, TransformError> {
        let limit = pagination.limit;
        Ok(match &pagination.position {
            Position::Page(_) | Position::Offset(_) => {
                let start = pagination.offset_u64();
                Self {
                    start,
                    end: start.saturating_add(limit),
                    cursor: false,
                }
            }
            Position::Cursor(None) => Self {
                start: 0,
                end: limit,
                cursor: true,
            },
            Position::Cursor(Some((direction, key))) => {
                let index: u64 =
                    serde_json::from_slice(key).map_err(|_| TransformError::ForeignCursor)?;
                match direction {
                    Direction::After => {
                        let start = index.saturating_add(1);
                        Self {
                            start,
                            end: start.saturating_add(limit),
                            cursor: true,
                        }
                    }
                    Direction::Before => Self {
                        start: index.saturating_sub(limit),
                        end: index,
                        cursor: true,
                    },
                }
            }
        })
    }

    fn info(&self, pagination: &Pagination, total: u64) -> PageInfo {
        let start = self.start.min(total);
        let end = self.end.min(total);
        if !self.cursor {
            return PageInfo::numbered(pagination, Some(total), end < total);
        }
        let index = |n: u64| {
            let mut key = Vec::new();
            key.extend_from_slice(n.to_string().as_bytes());
            key
        };
        let next = (end > start && end < total)
            .then(|| pagination.seal(Direction::After, &index(end - 1)));
        let prev = (start > 0).then(|| pagination.seal(Direction::Before, &index(start)));
        PageInfo::cursor(pagination, Some(total), next, prev)
    }
}

struct Counted {
    /// Just past the array.
    end: usize,
    total: u64,
    /// From the first selected element's start to the last one's end.
    span: Option<(usize, usize)>,
}

/// Scans the array at `pos` (its container at nesting `depth`), counting elements and
/// locating those in `window`.
fn count(input: &[u8], pos: usize, depth: usize, window: &Window) -> Result<Counted, Malformed> {
    let depth = depth + 1;
    if depth > scan::MAX_DEPTH {
        return Err(Malformed { offset: pos });
    }
    let mut i = scan::skip_ws(input, pos + 1);
    if scan::peek(input, i)? == b']' {
        return Ok(Counted {
            end: i + 1,
            total: 0,
            span: None,
        });
    }
    let mut index = 0u64;
    let mut span: Option<(usize, usize)> = None;
    loop {
        let end = scan::value_end(input, i, depth)?;
        if index >= window.start && index < window.end {
            span = Some((span.map_or(i, |(from, _)| from), end));
        }
        index += 1;
        i = scan::skip_ws(input, end);
        match scan::peek(input, i)? {
            b',' => i = scan::skip_ws(input, i + 1),
            b']' => {
                return Ok(Counted {
                    end: i + 1,
                    total: index,
                    span,
                });
            }
            _ => return Err(Malformed { offset: i }),
        }
    }
}

#[cfg(test)]
mod tests {
    use http::Request;
    use proptest::prelude::*;
    use serde_json::{Map, Value, json};

    use super::*;
    use crate::{PaginateLayer, PaginationConfig, Style};

    fn request(target: &str, config: &PaginationConfig) -> Pagination {
        let request = Request::get(target)
            .header("host", "api.test")
            .body(())
            .unwrap();
        Pagination::from_request(&request, config).unwrap()
    }

    fn run(input: &str, target: &str, pointer: &str) -> Result<(String, PageInfo), TransformError> {
        run_with(input, target, pointer, &PaginationConfig::default())
    }

    fn run_with(
        input: &str,
        target: &str,
        pointer: &str,
        config: &PaginationConfig,
    ) -> Result<(String, PageInfo), TransformError> {
        let mut out = Vec::new();
        let info = paginate(
            input.as_bytes(),
            &mut out,
            &request(target, config),
            &JsonPointer::parse(pointer).unwrap(),
        )?;
        Ok((String::from_utf8(out).unwrap(), info))
    }

    fn numbers(n: usize) -> String {
        serde_json::to_string(&(0..n).collect::<Vec<_>>()).unwrap()
    }

    #[test]
    fn slices_page_three_of_fifty() {
        let (out, info) = run(&numbers(5000), "/items?page=3&limit=50", "").unwrap();
        let value: Value = serde_json::from_str(&out).unwrap();
        assert_eq!(value["data"], json!((100..150).collect::<Vec<_>>()));
        assert_eq!(
            value["pagination"],
            json!({"page": 3, "limit": 50, "total": 5000, "totalPages": 100, "hasNext": true, "hasPrevious": true})
        );
        assert!(info.has_next() && info.has_previous());
    }

    #[test]
    fn page_past_the_end_is_empty_with_metadata() {
        let (out, info) = run("[1,2,3]", "/items?page=5&limit=2", "").unwrap();
        assert_eq!(
            out,
            r#"{"data":[],"pagination":{"page":5,"limit":2,"total":3,"totalPages":2,"hasNext":false,"hasPrevious":true}}"#
        );
        assert_eq!(info.total(), Some(3));
        let (out, _) = run(" [ ] ", "/items", "").unwrap();
        assert_eq!(
            out,
            r#"{"data":[],"pagination":{"page":1,"limit":20,"total":0,"totalPages":0,"hasNext":false,"hasPrevious":false}}"#
        );
    }

    #[test]
    fn elements_are_copied_byte_for_byte() {
        let input = "[ 1.50 , \"caf\\u00e9\" ,{\"a\" : 1e3} , 4 ]";
        let (out, _) = run(input, "/items?offset=1&limit=2", "").unwrap();
        assert!(
            out.starts_with(r#"{"data":["caf\u00e9" ,{"a" : 1e3}],"pagination":{"offset":1,"#),
            "{out}"
        );
    }

    #[test]
    fn slices_array_at_pointer_and_adds_pagination_beside_it() {
        let input = r#"{"result":{"pagination":"old","items":[1,2,3],"count":3},"ok":true}"#;
        let (out, _) = run(input, "/x?limit=2", "/result/items").unwrap();
        assert_eq!(
            out,
            r#"{"result":{"items":[1,2],"count":3,"pagination":{"page":1,"limit":2,"total":3,"totalPages":2,"hasNext":true,"hasPrevious":false}},"ok":true}"#
        );
    }

    #[test]
    fn documents_without_the_array_are_left_alone() {
        assert_eq!(
            run(r#"{"a":1}"#, "/x", "").unwrap_err(),
            TransformError::NoArray
        );
        assert_eq!(run("7", "/x", "").unwrap_err(), TransformError::NoArray);
        assert_eq!(
            run(r#"{"items":{}}"#, "/x", "/items").unwrap_err(),
            TransformError::NoArray
        );
        assert_eq!(
            run(r#"[1,2]"#, "/x", "/items").unwrap_err(),
            TransformError::NoArray
        );
        assert!(matches!(
            run("[1,2", "/x", ""),
            Err(TransformError::Malformed(_))
        ));
        assert!(matches!(
            run("[1,2] [3]", "/x", ""),
            Err(TransformError::Malformed(_))
        ));
        assert!(matches!(
            run(r#"{"items":[1,}"#, "/x", "/items"),
            Err(TransformError::Malformed(_))
        ));
    }

    #[test]
    fn every_truncation_is_an_error_not_a_panic() {
        let input = r#"{"x":{"items":[{"a":[1,"s"]},2,null,{"b":{}}],"pagination":1},"y":[true]}"#;
        for cut in 0..input.len() {
            let prefix = &input[..cut];
            for pointer in ["", "/x/items"] {
                for target in ["/x?page=1&limit=2", "/x?page=2&limit=2"] {
                    assert!(run(prefix, target, pointer).is_err(), "{prefix}");
                }
            }
        }
    }

    #[test]
    fn keyset_cursors_of_handlers_are_foreign() {
        let config = PaginationConfig::default();
        let token = request("/x", &config).seal(Direction::After, br#""name""#);
        let result = run_with("[1,2]", &format!("/x?cursor={token}"), "", &config);
        assert_eq!(result.unwrap_err(), TransformError::ForeignCursor);
    }

    /// Follows `nextCursor` from the first page to the end, then `prevCursor` back.
    #[test]
    fn cursors_walk_the_whole_array_both_ways() {
        let config = PaginateLayer::builder()
            .style(Style::Cursors)
            .cursor_key(vec![7u8; 32])
            .build()
            .unwrap()
            .config()
            .clone();
        let input = numbers(23);
        let mut target = "/x?limit=5".to_owned();
        let mut seen = Vec::new();
        let last;
        loop {
            let (out, info) = run_with(&input, &target, "", &config).unwrap();
            let value: Value = serde_json::from_str(&out).unwrap();
            assert_eq!(value["pagination"]["total"], 23);
            seen.extend(
                value["data"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|v| v.as_u64().unwrap()),
            );
            match info.next_cursor() {
                Some(next) => target = format!("/x?limit=5&cursor={next}"),
                None => {
                    last = Some(info);
                    break;
                }
            }
        }
        assert_eq!(seen, (0..23).collect::<Vec<_>>());
        let mut info = last.unwrap();
        let mut back = Vec::new();
        while let Some(prev) = info.prev_cursor() {
            let (out, page) =
                run_with(&input, &format!("/x?limit=5&cursor={prev}"), "", &config).unwrap();
            let value: Value = serde_json::from_str(&out).unwrap();
            let mut items: Vec<u64> = value["data"]
                .as_array()
                .unwrap()
                .iter()
                .map(|v| v.as_u64().unwrap())
                .collect();
            items.extend(back);
            back = items;
            info = page;
        }
        assert_eq!(back, (0..20).collect::<Vec<_>>());
        assert!(!info.has_previous());
    }

    #[test]
    fn cursor_past_a_shrunken_array_points_back_to_the_last_items() {
        let config = PaginationConfig::default();
        let token = request("/x", &config).seal(Direction::After, b"40");
        let (out, info) = run_with(
            &numbers(10),
            &format!("/x?limit=3&cursor={token}"),
            "",
            &config,
        )
        .unwrap();
        assert!(out.starts_with(r#"{"data":[],"#));
        assert!(!info.has_next());
        let prev = info.prev_cursor().unwrap();
        let (out, _) = run_with(
            &numbers(10),
            &format!("/x?limit=3&cursor={prev}"),
            "",
            &config,
        )
        .unwrap();
        assert!(out.starts_with(r#"{"data":[7,8,9],"#), "{out}");
    }

    /// The slow obvious twin: parse, slice, build the envelope, serialize.
    fn reference(input: &[u8], page: u64, limit: u64, pointer: &[String]) -> Option<Vec<u8>> {
        let mut doc: Value = serde_json::from_slice(input).ok()?;
        let slice = |items: &Vec<Value>| -> (Vec<Value>, Value) {
            let total = items.len() as u64;
            let start = ((page - 1) * limit).min(total);
            let end = (start + limit).min(total);
            let data = items[start as usize..end as usize].to_vec();
            let meta = json!({
                "page": page, "limit": limit, "total": total, "totalPages": total.div_ceil(limit),
                "hasNext": end < total, "hasPrevious": page > 1,
            });
            (data, meta)
        };
        if pointer.is_empty() {
            let (data, meta) = slice(doc.as_array()?);
            return serde_json::to_vec(&json!({"data": data, "pagination": meta})).ok();
        }
        let (last, path) = pointer.split_last()?;
        let mut parent = &mut doc;
        for segment in path {
            parent = parent.as_object_mut()?.get_mut(segment)?;
        }
        let parent: &mut Map<String, Value> = parent.as_object_mut()?;
        let (data, meta) = slice(parent.get(last)?.as_array()?);
        parent.insert(last.clone(), Value::Array(data));
        parent.shift_remove("pagination");
        parent.insert("pagination".into(), meta);
        serde_json::to_vec(&doc).ok()
    }

    fn arb_value() -> impl Strategy<Value = Value> {
        let leaf = prop_oneof![
            Just(Value::Null),
            any::<bool>().prop_map(Value::from),
            any::<i64>().prop_map(Value::from),
            // Only floats serde_json reads back exactly: the reference re-parses its input.
            any::<f64>()
                .prop_filter("round-trips", |f| {
                    f.is_finite()
                        && serde_json::from_str::<f64>(&serde_json::to_string(f).unwrap()).ok()
                            == Some(*f)
                })
                .prop_map(Value::from),
            "[a-z\"\\\\é\u{1}]{0,6}".prop_map(Value::from),
        ];
        leaf.prop_recursive(4, 40, 6, |inner| {
            prop_oneof![
                prop::collection::vec(inner.clone(), 0..6).prop_map(Value::Array),
                prop::collection::vec(("[a-c]{1,2}|items|pagination", inner), 0..6)
                    .prop_map(|members| Value::Object(members.into_iter().collect())),
            ]
        })
    }

    fn arb_document() -> impl Strategy<Value = (Value, Vec<String>)> {
        let array = || prop::collection::vec(arb_value(), 0..30).prop_map(Value::Array);
        prop_oneof![
            array().prop_map(|array| (array, Vec::new())),
            (
                array(),
                prop::collection::vec(("[a-c]{1,2}|pagination", arb_value()), 0..4)
            )
                .prop_map(|(array, others)| {
                    let mut map: Map<String, Value> = others.into_iter().collect();
                    map.insert("items".into(), array);
                    (Value::Object(map), vec!["items".to_owned()])
                }),
            (array(), arb_value()).prop_map(|(array, other)| {
                let doc = json!({"x": other, "outer": {"items": array, "pagination": 1}});
                (doc, vec!["outer".to_owned(), "items".to_owned()])
            }),
            arb_value().prop_map(|value| (value, Vec::new())),
        ]
    }

    proptest! {
        #[test]
        fn paginate_matches_the_serde_reference((doc, pointer) in arb_document(), page in 1u64..8, limit in 1u64..12) {
            let input = serde_json::to_vec(&doc).unwrap();
            let expected = reference(&input, page, limit, &pointer);
            let pagination = request(&format!("/x?page={page}&limit={limit}"), &PaginationConfig::default());
            let mut out = Vec::new();
            let result = paginate(&input, &mut out, &pagination, &JsonPointer::from_segments(pointer));
            match expected {
                Some(expected) => {
                    prop_assert!(result.is_ok(), "{result:?}");
                    prop_assert_eq!(String::from_utf8(out).unwrap(), String::from_utf8(expected).unwrap());
                }
                None => prop_assert_eq!(result.unwrap_err(), TransformError::NoArray),
            }
        }

        #[test]
        fn paginate_never_accepts_what_serde_rejects(input in prop::collection::vec(any::<u8>(), 0..64), page in 1u64..3) {
            let pagination = request(&format!("/x?page={page}&limit=2"), &PaginationConfig::default());
            let mut out = Vec::new();
            if paginate(&input, &mut out, &pagination, &JsonPointer::root()).is_ok() {
                prop_assert!(serde_json::from_slice::<Value>(&input).is_ok());
            }
        }
    }
}
