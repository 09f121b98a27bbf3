//! The pagination envelope's metadata object and the `Link` / `X-Total-Count` headers.

use std::fmt::Write as _;

use http::header::{HeaderName, LINK};
use http::{HeaderMap, HeaderValue};

use crate::config::EncodedNames;
use crate::request::{Pagination, Position};

/// The name of the header carrying the total item count.
pub const X_TOTAL_COUNT: HeaderName = HeaderName::from_static("x-total-count");

/// What one page turned out to be: written as the envelope's `pagination` object and as
/// `Link` and `X-Total-Count` headers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PageInfo {
    kind: Kind,
    limit: u64,
    total: Option<u64>,
    has_next: bool,
    has_previous: bool,
    link: Option<HeaderValue>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Kind {
    Page(u64),
    Offset(u64),
    Cursor {
        next: Option<String>,
        prev: Option<String>,
    },
}

impl PageInfo {
    /// A page found by number or offset. A cursor request answered this way (the handler
    /// ignored the cursor) is described as page 1.
    pub(crate) fn numbered(pagination: &Pagination, total: Option<u64>, has_next: bool) -> Self {
        let kind = match pagination.position {
            Position::Page(page) => Kind::Page(page),
            Position::Offset(offset) => Kind::Offset(offset),
            Position::Cursor(_) => Kind::Page(1),
        };
        let has_previous = match kind {
            Kind::Page(page) => page > 1,
            Kind::Offset(offset) => offset > 0,
            Kind::Cursor { .. } => false,
        };
        Self::finish(pagination, kind, total, has_next, has_previous)
    }

    /// A page found by cursor, with the cursors of its neighbours.
    pub(crate) fn cursor(
        pagination: &Pagination,
        total: Option<u64>,
        next: Option<String>,
        prev: Option<String>,
    ) -> Self {
        let (has_next, has_previous) = (next.is_some(), prev.is_some());
        Self::finish(
            pagination,
            Kind::Cursor { next, prev },
            total,
            has_next,
            has_previous,
        )
    }

    fn finish(
        pagination: &Pagination,
        kind: Kind,
        total: Option<u64>,
        has_next: bool,
        has_previous: bool,
    ) -> Self {
        let mut info = Self {
            kind,
            limit: pagination.limit,
            total,
            has_next,
            has_previous,
            link: None,
        };
        info.link = info.link_header(pagination);
        info
    }

    /// The total number of items, when known.
    pub fn total(&self) -> Option<u64> {
        self.total
    }

    /// Whether a page follows.
    pub fn has_next(&self) -> bool {
        self.has_next
    }

    /// Whether a page precedes.
    pub fn has_previous(&self) -> bool {
        self.has_previous
    }

    /// The cursor of the next page, on a cursor-paged listing.
    pub fn next_cursor(&self) -> Option<&str> {
        match &self.kind {
            Kind::Cursor { next, .. } => next.as_deref(),
            Kind::Page(_) | Kind::Offset(_) => None,
        }
    }

    /// The cursor of the previous page, on a cursor-paged listing.
    pub fn prev_cursor(&self) -> Option<&str> {
        match &self.kind {
            Kind::Cursor { prev, .. } => prev.as_deref(),
            Kind::Page(_) | Kind::Offset(_) => None,
        }
    }

    /// The RFC 8288 `Link` header value: first, prev, next and last, those that apply.
    pub fn link(&self) -> Option<&HeaderValue> {
        self.link.as_ref()
    }

    /// The number of pages, when the total is known (0 for an empty listing).
    pub fn total_pages(&self) -> Option<u64> {
        self.total.map(|total| total.div_ceil(self.limit))
    }

    /// Sets `Link` and, when the total is known, `X-Total-Count`.
    pub fn set_headers(&self, headers: &mut HeaderMap) {
        if let Some(link) = &self.link {
            headers.insert(LINK, link.clone());
        }
        if let Some(total) = self.total {
            headers.insert(X_TOTAL_COUNT, HeaderValue::from(total));
        }
    }

    /// Writes the metadata object (`{"page":1,...}`).
    pub(crate) fn write(&self, out: &mut Vec<u8>, names: &EncodedNames) {
        let mut first = true;
        let mut member = |out: &mut Vec<u8>, name: &[u8]| {
            out.push(if first { b'{' } else { b',' });
            first = false;
            out.extend_from_slice(name);
            out.push(b':');
        };
        match &self.kind {
            Kind::Page(page) => {
                member(out, &names.page);
                number(out, *page);
            }
            Kind::Offset(offset) => {
                member(out, &names.offset);
                number(out, *offset);
            }
            Kind::Cursor { .. } => {}
        }
        member(out, &names.limit);
        number(out, self.limit);
        if let Some(total) = self.total {
            member(out, &names.total);
            number(out, total);
            if let Kind::Page(_) = self.kind {
                member(out, &names.total_pages);
                number(out, total.div_ceil(self.limit));
            }
        }
        if let Kind::Cursor { next, prev } = &self.kind {
            member(out, &names.next_cursor);
            string_or_null(out, next.as_deref());
            member(out, &names.prev_cursor);
            string_or_null(out, prev.as_deref());
        }
        member(out, &names.has_next);
        out.extend_from_slice(if self.has_next { b"true" } else { b"false" });
        member(out, &names.has_previous);
        out.extend_from_slice(if self.has_previous { b"true" } else { b"false" });
        out.push(b'}');
    }

    fn link_header(&self, pagination: &Pagination) -> Option<HeaderValue> {
        let params = &pagination.config.inner.params;
        let mut links: Vec<(&str, String)> = Vec::with_capacity(4);
        let limit = self.limit;
        match &self.kind {
            Kind::Page(page) => {
                let last = self.total.map(|total| total.div_ceil(limit).max(1));
                let name = params.page.as_str();
                links.push(("first", pagination.link(Some((name, "1")))));
                if self.has_previous {
                    let prev = (page - 1).min(last.unwrap_or(u64::MAX));
                    links.push(("prev", pagination.link(Some((name, &prev.to_string())))));
                }
                if self.has_next {
                    links.push((
                        "next",
                        pagination.link(Some((name, &(page + 1).to_string()))),
                    ));
                }
                if let Some(last) = last {
                    links.push(("last", pagination.link(Some((name, &last.to_string())))));
                }
            }
            Kind::Offset(offset) => {
                let last = self.total.map(|total| total.saturating_sub(limit));
                let name = params.offset.as_str();
                links.push(("first", pagination.link(Some((name, "0")))));
                if self.has_previous {
                    let prev = offset.saturating_sub(limit).min(last.unwrap_or(u64::MAX));
                    links.push(("prev", pagination.link(Some((name, &prev.to_string())))));
                }
                if self.has_next {
                    links.push((
                        "next",
                        pagination.link(Some((name, &(offset + limit).to_string()))),
                    ));
                }
                if let Some(last) = last {
                    links.push(("last", pagination.link(Some((name, &last.to_string())))));
                }
            }
            Kind::Cursor { next, prev } => {
                let name = params.cursor.as_str();
                links.push(("first", pagination.link(None)));
                if let Some(prev) = prev {
                    links.push(("prev", pagination.link(Some((name, prev)))));
                }
                if let Some(next) = next {
                    links.push(("next", pagination.link(Some((name, next)))));
                }
            }
        }
        let mut value = String::new();
        for (rel, url) in links {
            if !value.is_empty() {
                value.push_str(", ");
            }
            let _ = write!(value, "<{url}>; rel=\"{rel}\"");
        }
        HeaderValue::from_str(&value).ok()
    }
}

fn number(out: &mut Vec<u8>, n: u64) {
    let mut buffer = [0u8; 20];
    let mut i = buffer.len();
    let mut n = n;
    loop {
        i -= 1;
        buffer[i] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            break;
        }
    }
    out.extend_from_slice(&buffer[i..]);
}

fn string_or_null(out: &mut Vec<u8>, value: Option<&str>) {
    match value {
        // Cursors are base64url: nothing to escape.
        Some(value) => {
            out.push(b'"');
            out.extend_from_slice(value.as_bytes());
            out.push(b'"');
        }
        None => out.extend_from_slice(b"null"),
    }
}

#[cfg(test)]
mod tests {
    use http::Request;

    use super::*;
    use crate::config::EnvelopeNames;
    use crate::{PaginateLayer, PaginationConfig};

    fn pagination(target: &str) -> Pagination {
        pagination_with(target, &PaginationConfig::default())
    }

    fn pagination_with(target: &str, config: &PaginationConfig) -> Pagination {
        let request = Request::get(target)
            .header("host", "api.test")
            .body(())
            .unwrap();
        Pagination::from_request(&request, config).unwrap()
    }

    fn written(info: &PageInfo, config: &PaginationConfig) -> String {
        let mut out = Vec::new();
        info.write(&mut out, &config.inner.names);
        String::from_utf8(out).unwrap()
    }

    #[test]
    fn page_metadata_has_every_member() {
        let config = PaginationConfig::default();
        let info = PageInfo::numbered(&pagination("/items?page=3&limit=50"), Some(5000), true);
        assert_eq!(
            written(&info, &config),
            r#"{"page":3,"limit":50,"total":5000,"totalPages":100,"hasNext":true,"hasPrevious":true}"#
        );
        assert_eq!(info.total_pages(), Some(100));
    }

    #[test]
    fn envelope_names_are_configurable() {
        let config = PaginateLayer::builder()
            .names(EnvelopeNames::snake_case().page("p"))
            .build()
            .unwrap()
            .config()
            .clone();
        let info = PageInfo::numbered(&pagination_with("/items", &config), Some(0), false);
        assert_eq!(
            written(&info, &config),
            r#"{"p":1,"limit":20,"total":0,"total_pages":0,"has_next":false,"has_previous":false}"#
        );
    }

    #[test]
    fn unknown_total_is_left_out() {
        let config = PaginationConfig::default();
        let info = PageInfo::numbered(&pagination("/items?offset=10&limit=5"), None, true);
        assert_eq!(
            written(&info, &config),
            r#"{"offset":10,"limit":5,"hasNext":true,"hasPrevious":true}"#
        );
        let mut headers = HeaderMap::new();
        info.set_headers(&mut headers);
        assert!(!headers.contains_key(X_TOTAL_COUNT));
        assert_eq!(
            headers[LINK],
            "</items?offset=0&limit=5>; rel=\"first\", \
             </items?offset=5&limit=5>; rel=\"prev\", \
             </items?offset=15&limit=5>; rel=\"next\""
        );
    }

    #[test]
    fn link_header_keeps_other_params() {
        let info = PageInfo::numbered(
            &pagination("/items?category=tea&page=2&sort=-price"),
            Some(45),
            true,
        );
        assert_eq!(
            info.link().unwrap(),
            "</items?category=tea&sort=-price&page=1>; rel=\"first\", \
             </items?category=tea&sort=-price&page=1>; rel=\"prev\", \
             </items?category=tea&sort=-price&page=3>; rel=\"next\", \
             </items?category=tea&sort=-price&page=3>; rel=\"last\""
        );
        let mut headers = HeaderMap::new();
        info.set_headers(&mut headers);
        assert_eq!(headers[X_TOTAL_COUNT], "45");
    }

    #[test]
    fn link_header_has_only_the_relations_that_apply() {
        let first = PageInfo::numbered(&pagination("/items"), Some(5), false);
        assert_eq!(
            first.link().unwrap(),
            "</items?page=1>; rel=\"first\", </items?page=1>; rel=\"last\""
        );
        // Past the end: prev points at the last page that exists.
        let past = PageInfo::numbered(&pagination("/items?page=9&per_page=10"), Some(25), false);
        assert_eq!(
            past.link().unwrap(),
            "</items?page=1&per_page=10>; rel=\"first\", \
             </items?page=3&per_page=10>; rel=\"prev\", \
             </items?page=3&per_page=10>; rel=\"last\""
        );
    }

    #[test]
    fn cursor_metadata_carries_cursors_instead_of_pages() {
        let config = PaginationConfig::default();
        let pagination = pagination("/items?sort=name&limit=2");
        let info = PageInfo::cursor(&pagination, None, Some("bmV4dA".into()), None);
        assert_eq!(
            written(&info, &config),
            r#"{"limit":2,"nextCursor":"bmV4dA","prevCursor":null,"hasNext":true,"hasPrevious":false}"#
        );
        assert_eq!(
            info.link().unwrap(),
            "</items?sort=name&limit=2>; rel=\"first\", \
             </items?sort=name&cursor=bmV4dA&limit=2>; rel=\"next\""
        );
        assert_eq!(info.next_cursor(), Some("bmV4dA"));
        assert_eq!(info.prev_cursor(), None);
    }

    #[test]
    fn numbers_are_written_in_decimal() {
        for n in [0u64, 7, 10, 1234567890, u64::MAX] {
            let mut out = Vec::new();
            number(&mut out, n);
            assert_eq!(out, n.to_string().as_bytes());
        }
    }
}
