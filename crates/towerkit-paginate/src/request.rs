//! The validated pagination parameters of one request.

use std::borrow::Cow;
use std::fmt::Write as _;

use axum::extract::OriginalUri;
use http::{Extensions, Request, Uri};
use serde::de::DeserializeOwned;
use towerkit_json::Problem;

use crate::config::{PaginationConfig, Style};
use crate::cursor::{self, BINDING_LEN, CursorError, Direction};
use crate::query;

/// Where a keyset page starts, decoded from the request's cursor.
///
/// A handler turns it into a `WHERE` clause; see [`Pagination::keyset`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Keyset<K> {
    /// No cursor: the first page.
    First,
    /// The page after the item with this key (`WHERE key > $1 ORDER BY key`).
    After(K),
    /// The page before the item with this key (`WHERE key < $1 ORDER BY key DESC`, rows
    /// given to [`Page::keyset`](crate::Page::keyset) in that descending order).
    Before(K),
}

/// The validated pagination parameters of a request: the page size and where the page
/// starts, ready for `LIMIT $1 OFFSET $2` or a keyset query.
///
/// Read from the query string with the [`PaginationConfig`] found in the request's
/// extensions (put there by [`PaginateLayer`](crate::PaginateLayer)), or
/// [`PaginationConfig::default`] when there is none. As an axum extractor it rejects bad
/// input with a 400 `application/problem+json` naming the parameter.
///
/// Accepted parameters (names configurable):
/// - `page` (1-based) and `limit` (alias `per_page`); or `offset` and `limit`; or `cursor`
///   and `limit`. Without any of them: page 1, or the first cursor page in
///   [`Style::Cursors`].
/// - `limit` defaults to 20; above the maximum (100) it is clamped, or a 400 in strict mode.
/// - A 400 for: a value that is not a plain decimal integer (`abc`, `-1`, `+1`, empty),
///   `page=0`, `limit=0`, a page or offset beyond `i64::MAX` items, a parameter given
///   twice, `page` with `offset`, `limit` with `per_page`, a cursor with `page` or
///   `offset`, and a cursor that is malformed, tampered with, signed with another key, or
///   issued for another path or other filter and sort parameters.
///
/// ```
/// use http::Request;
/// use towerkit_paginate::{Pagination, PaginationConfig};
///
/// let request = Request::get("/products?page=3&per_page=25&sort=name").body(()).unwrap();
/// let pagination = Pagination::from_request(&request, &PaginationConfig::default()).unwrap();
/// assert_eq!((pagination.limit(), pagination.offset()), (25, 50));
///
/// let request = Request::get("/products?limit=abc").body(()).unwrap();
/// let problem = Pagination::from_request(&request, &PaginationConfig::default()).unwrap_err();
/// assert_eq!(problem.status(), 400);
/// assert_eq!(problem.members()["invalid-params"][0]["name"], "limit");
/// ```
#[derive(Clone, Debug)]
pub struct Pagination {
    pub(crate) config: PaginationConfig,
    pub(crate) position: Position,
    /// Whether the client named a page or an offset (rather than getting the default).
    pub(crate) explicit: bool,
    pub(crate) limit: u64,
    /// The name under which the client gave the page size, repeated in links.
    pub(crate) limit_param: Option<String>,
    /// Origin and path of links, or the path alone when no origin is known.
    pub(crate) link_prefix: String,
    /// The query parameters that links keep, as the client wrote them.
    pub(crate) link_params: Vec<String>,
    pub(crate) binding: [u8; BINDING_LEN],
}

/// Where the requested page starts.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Position {
    /// A 1-based page number.
    Page(u64),
    /// An item offset.
    Offset(u64),
    /// A cursor; `None` for the first page of a cursor-paged listing.
    Cursor(Option<(Direction, Vec<u8>)>),
}

impl Pagination {
    /// Reads and validates the pagination parameters of `request` under `config`.
    pub fn from_request<B>(
        request: &Request<B>,
        config: &PaginationConfig,
    ) -> Result<Self, Problem> {
        Self::parse(request.uri(), request.extensions(), config)
    }

    /// The page size, at least 1 and at most the configured maximum: `LIMIT $1`.
    pub fn limit(&self) -> i64 {
        // The configuration keeps the maximum below i64::MAX.
        i64::try_from(self.limit).unwrap_or(i64::MAX)
    }

    /// One more than [`limit`](Self::limit): fetch this many rows to learn whether another
    /// page follows, then hand them to [`Page::from_overfetch`](crate::Page::from_overfetch)
    /// or [`Page::keyset`](crate::Page::keyset).
    pub fn fetch_limit(&self) -> i64 {
        self.limit().saturating_add(1)
    }

    /// The number of items before the page: `OFFSET $2`. Always 0 for a cursor request
    /// (use [`keyset`](Self::keyset) there).
    pub fn offset(&self) -> i64 {
        // Parsing rejects pages and offsets beyond i64::MAX.
        i64::try_from(self.offset_u64()).unwrap_or(i64::MAX)
    }

    /// The 1-based page number for a `page` request or one without parameters; `None` for
    /// `offset` and cursor requests.
    pub fn page(&self) -> Option<u64> {
        match self.position {
            Position::Page(page) => Some(page),
            Position::Offset(_) | Position::Cursor(_) => None,
        }
    }

    /// Whether the request carries a cursor.
    pub fn has_cursor(&self) -> bool {
        matches!(self.position, Position::Cursor(Some(_)))
    }

    /// The configuration the parameters were read with.
    pub fn config(&self) -> &PaginationConfig {
        &self.config
    }

    /// The keyset position of a cursor request, its key decoded as `K` (the type the
    /// handler gave [`Page::keyset`](crate::Page::keyset)); [`Keyset::First`] without a
    /// cursor. A 400 when the request named a `page` or `offset` (this listing pages with
    /// cursors) or the cursor's key does not decode as `K`.
    ///
    /// ```
    /// use http::Request;
    /// use towerkit_paginate::{Keyset, Pagination, PaginationConfig};
    ///
    /// let config = PaginationConfig::default();
    /// let first = Pagination::from_request(&Request::get("/items").body(()).unwrap(), &config).unwrap();
    /// assert_eq!(first.keyset::<i64>().unwrap(), Keyset::First);
    /// let paged = Pagination::from_request(&Request::get("/items?page=2").body(()).unwrap(), &config).unwrap();
    /// assert_eq!(paged.keyset::<i64>().unwrap_err().status(), 400);
    /// ```
    pub fn keyset<K: DeserializeOwned>(&self) -> Result<Keyset<K>, Problem> {
        let params = &self.config.inner.params;
        match &self.position {
            Position::Cursor(None) => Ok(Keyset::First),
            Position::Page(_) | Position::Offset(_) if !self.explicit => Ok(Keyset::First),
            Position::Page(_) => Err(cursor_only(&params.page, &params.cursor)),
            Position::Offset(_) => Err(cursor_only(&params.offset, &params.cursor)),
            Position::Cursor(Some((direction, key))) => {
                let key =
                    serde_json::from_slice(key).map_err(|_| invalid_cursor(&params.cursor))?;
                Ok(match direction {
                    Direction::After => Keyset::After(key),
                    Direction::Before => Keyset::Before(key),
                })
            }
        }
    }

    pub(crate) fn offset_u64(&self) -> u64 {
        match self.position {
            Position::Page(page) => page.saturating_sub(1).saturating_mul(self.limit),
            Position::Offset(offset) => offset,
            Position::Cursor(_) => 0,
        }
    }

    /// Signs a cursor for the page on `direction`'s side of `key` (JSON).
    pub(crate) fn seal(&self, direction: Direction, key: &[u8]) -> String {
        cursor::seal(&self.config.inner.mac, direction, &self.binding, key)
    }

    /// The URL of another page of this listing: the request's other parameters as the
    /// client wrote them, then `position` (if any) and the page size (if the client named one).
    pub(crate) fn link(&self, position: Option<(&str, &str)>) -> String {
        let mut url = self.link_prefix.clone();
        let mut separator = '?';
        let mut push = |url: &mut String, part: &str| {
            url.push(separator);
            url.push_str(part);
            separator = '&';
        };
        for param in &self.link_params {
            push(&mut url, param);
        }
        if let Some((name, value)) = position {
            push(&mut url, &format!("{name}={value}"));
        }
        if let Some(name) = &self.limit_param {
            push(&mut url, &format!("{name}={}", self.limit));
        }
        url
    }

    pub(crate) fn parse(
        uri: &Uri,
        extensions: &Extensions,
        config: &PaginationConfig,
    ) -> Result<Self, Problem> {
        // Behind axum's `nest` the URI has lost its prefix; links and cursors use the original.
        let uri = extensions
            .get::<OriginalUri>()
            .map_or(uri, |original| &original.0);
        let inner = &config.inner;
        let params = &inner.params;
        let mut page = None;
        let mut offset = None;
        let mut cursor = None;
        let mut limit: Option<(&str, Cow<'_, str>)> = None;
        let mut link_params = Vec::new();
        let mut bound = Vec::new();
        for (segment, name, value) in query::pairs(uri.query()) {
            let slot = if name == params.page {
                &mut page
            } else if name == params.offset {
                &mut offset
            } else if name == params.cursor {
                &mut cursor
            } else if name == params.limit || params.per_page.as_deref() == Some(&*name) {
                let name = if name == params.limit {
                    params.limit.as_str()
                } else {
                    params.per_page.as_deref().unwrap_or_default()
                };
                if let Some((previous, _)) = limit {
                    return Err(if previous == name {
                        repeated(name)
                    } else {
                        conflict(previous, name)
                    });
                }
                limit = Some((name, value));
                continue;
            } else {
                link_params.push(link_safe(segment));
                if !inner.unbound.iter().any(|unbound| *unbound == name) {
                    bound.push((name, value));
                }
                continue;
            };
            if slot.is_some() {
                return Err(repeated(&name));
            }
            *slot = Some(value);
        }

        let limit_param = limit.as_ref().map(|(name, _)| (*name).to_owned());
        let limit = match limit {
            None => inner.default_limit,
            Some((name, value)) => {
                let limit = positive(name, &value)?;
                if limit > inner.max_limit && inner.strict {
                    return Err(Problem::bad_request(format!(
                        "{name} must be at most {}",
                        inner.max_limit
                    ))
                    .with_invalid_param(
                        name,
                        format!("at most {} items per page, got {limit}", inner.max_limit),
                    ));
                }
                limit.min(inner.max_limit)
            }
        };

        let path = uri.path();
        let binding = cursor::binding(if path.is_empty() { "/" } else { path }, &mut bound);
        let explicit = page.is_some() || offset.is_some();
        let position = match (page, offset, cursor) {
            (Some(_), Some(_), _) => return Err(conflict(&params.page, &params.offset)),
            (Some(_), None, Some(_)) => return Err(conflict(&params.page, &params.cursor)),
            (None, Some(_), Some(_)) => return Err(conflict(&params.offset, &params.cursor)),
            (Some(page), None, None) => {
                let page = positive(&params.page, &page)?;
                let fits = (page - 1)
                    .checked_mul(limit)
                    .is_some_and(|offset| offset <= i64::MAX as u64);
                if !fits {
                    return Err(
                        Problem::bad_request(format!("{} is too large", params.page))
                            .with_invalid_param(
                                &params.page,
                                format!(
                                    "page {page} of {limit} items is beyond the last possible item"
                                ),
                            ),
                    );
                }
                Position::Page(page)
            }
            (None, Some(offset), None) => Position::Offset(non_negative(&params.offset, &offset)?),
            (None, None, Some(token)) => match cursor::open(&inner.mac, &token, &binding) {
                Ok(opened) => Position::Cursor(Some(opened)),
                Err(CursorError::Invalid) => return Err(invalid_cursor(&params.cursor)),
                Err(CursorError::OtherQuery) => {
                    return Err(Problem::bad_request(format!("{} was issued for other query parameters", params.cursor))
                        .with_invalid_param(&params.cursor, "the cursor belongs to a listing with another path, filter or sort; start again from the first page"));
                }
            },
            (None, None, None) => match inner.style {
                Style::Pages => Position::Page(1),
                Style::Cursors => Position::Cursor(None),
            },
        };

        Ok(Self {
            config: config.clone(),
            position,
            explicit,
            limit,
            limit_param,
            link_prefix: link_prefix(config, uri),
            link_params,
            binding,
        })
    }
}

/// Origin and path for links: the configured base URL, else none (a relative reference,
/// path and query, as RFC 8288 allows). Never the request's `Host` header or absolute URI:
/// both come from the client, and a cache in front would serve one client's forged origin
/// to everyone.
fn link_prefix(config: &PaginationConfig, uri: &Uri) -> String {
    let path = link_safe(if uri.path().is_empty() {
        "/"
    } else {
        uri.path()
    });
    match &config.inner.base_url {
        Some(base) => format!("{base}{path}"),
        None => path,
    }
}

/// Percent-encodes the few bytes a URI may carry that would break a `Link` header's `<...>`.
fn link_safe(part: &str) -> String {
    let mut out = String::with_capacity(part.len());
    for c in part.chars() {
        match c {
            '<' | '>' | '"' | '\\' | ' ' | '^' | '`' | '{' | '|' | '}' => {
                let _ = write!(out, "%{:02X}", c as u32);
            }
            c => out.push(c),
        }
    }
    out
}

/// A positive decimal integer, digits only.
fn positive(name: &str, value: &str) -> Result<u64, Problem> {
    match digits(value) {
        Some(0) | None => Err(
            Problem::bad_request(format!("{name} must be a positive integer")).with_invalid_param(
                name,
                format!("expected a positive integer, got {}", quoted(value)),
            ),
        ),
        Some(n) => Ok(n),
    }
}

/// A non-negative decimal integer up to `i64::MAX`, digits only.
fn non_negative(name: &str, value: &str) -> Result<u64, Problem> {
    digits(value).ok_or_else(|| {
        Problem::bad_request(format!("{name} must be a non-negative integer")).with_invalid_param(
            name,
            format!(
                "expected an integer from 0 to {}, got {}",
                i64::MAX,
                quoted(value)
            ),
        )
    })
}

/// Parses plain decimal digits up to `i64::MAX`; `None` for anything else.
fn digits(value: &str) -> Option<u64> {
    if value.is_empty() || !value.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    value.parse::<u64>().ok().filter(|n| *n <= i64::MAX as u64)
}

/// The client's value for a problem detail, cut short if long.
fn quoted(value: &str) -> String {
    const MAX: usize = 40;
    match value.char_indices().nth(MAX) {
        Some((cut, _)) => format!("{:?}…", &value[..cut]),
        None => format!("{value:?}"),
    }
}

fn repeated(name: &str) -> Problem {
    Problem::bad_request(format!("{name} is given more than once"))
        .with_invalid_param(name, "give the parameter once")
}

fn conflict(first: &str, second: &str) -> Problem {
    Problem::bad_request(format!("{first} and {second} cannot be combined"))
        .with_invalid_param(first, format!("cannot be combined with {second}"))
        .with_invalid_param(second, format!("cannot be combined with {first}"))
}

fn invalid_cursor(name: &str) -> Problem {
    Problem::bad_request(format!("{name} is not a valid cursor")).with_invalid_param(
        name,
        "the cursor is malformed, altered, or expired; start again from the first page",
    )
}

fn cursor_only(name: &str, cursor: &str) -> Problem {
    Problem::bad_request(format!("this listing pages with {cursor}, not {name}"))
        .with_invalid_param(
            name,
            format!("follow the {cursor} links of the previous page instead"),
        )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::PaginateLayer;

    fn parse(target: &str) -> Result<Pagination, Problem> {
        parse_with(target, &PaginationConfig::default())
    }

    fn parse_with(target: &str, config: &PaginationConfig) -> Result<Pagination, Problem> {
        let request = Request::get(target)
            .header("host", "api.test")
            .body(())
            .unwrap();
        Pagination::from_request(&request, config)
    }

    /// Asserts a 400 problem naming `param`.
    fn rejects(target: &str, param: &str) {
        rejects_with(target, param, &PaginationConfig::default());
    }

    fn rejects_with(target: &str, param: &str, config: &PaginationConfig) {
        let problem = parse_with(target, config).expect_err(target);
        assert_eq!(problem.status(), 400, "{target}");
        let names: Vec<_> = problem.members()["invalid-params"]
            .as_array()
            .unwrap()
            .iter()
            .map(|p| p["name"].as_str().unwrap().to_owned())
            .collect();
        assert!(
            names.iter().any(|name| name == param),
            "{target}: {names:?}"
        );
    }

    #[test]
    fn defaults_to_the_first_page_of_twenty() {
        let pagination = parse("/items").unwrap();
        assert_eq!(
            (pagination.page(), pagination.limit(), pagination.offset()),
            (Some(1), 20, 0)
        );
        assert_eq!(pagination.fetch_limit(), 21);
        assert!(!pagination.has_cursor());
    }

    #[test]
    fn page_and_limit_give_the_offset() {
        let pagination = parse("/items?page=3&limit=50").unwrap();
        assert_eq!(
            (pagination.page(), pagination.limit(), pagination.offset()),
            (Some(3), 50, 100)
        );
    }

    #[test]
    fn per_page_is_an_alias_for_limit() {
        let pagination = parse("/items?per_page=7&page=2").unwrap();
        assert_eq!((pagination.limit(), pagination.offset()), (7, 7));
        assert_eq!(pagination.limit_param.as_deref(), Some("per_page"));
    }

    #[test]
    fn offset_and_limit_are_accepted() {
        let pagination = parse("/items?offset=35&limit=10").unwrap();
        assert_eq!(
            (pagination.page(), pagination.limit(), pagination.offset()),
            (None, 10, 35)
        );
    }

    #[test]
    fn over_max_limit_is_clamped() {
        let pagination = parse("/items?limit=500").unwrap();
        assert_eq!(pagination.limit(), 100);
    }

    #[test]
    fn over_max_limit_is_400_in_strict_mode() {
        let strict = PaginateLayer::builder()
            .strict(true)
            .build()
            .unwrap()
            .config()
            .clone();
        rejects_with("/items?limit=101", "limit", &strict);
        assert_eq!(
            parse_with("/items?limit=100", &strict).unwrap().limit(),
            100
        );
    }

    #[test]
    fn bad_page_values_are_400_naming_page() {
        for value in [
            "0",
            "-1",
            "abc",
            "99999999999999999999",
            "",
            "+2",
            "1.5",
            "%201",
            "9223372036854775808",
        ] {
            rejects(&format!("/items?page={value}"), "page");
        }
    }

    #[test]
    fn bad_limit_values_are_400_naming_limit() {
        for value in ["-1", "abc", "0", "", "1e3"] {
            rejects(&format!("/items?limit={value}"), "limit");
        }
        rejects("/items?per_page=x", "per_page");
    }

    #[test]
    fn bad_offsets_are_400_naming_offset() {
        for value in ["-1", "x", "9223372036854775808"] {
            rejects(&format!("/items?offset={value}"), "offset");
        }
        assert_eq!(parse("/items?offset=0").unwrap().offset(), 0);
        assert_eq!(
            parse("/items?offset=9223372036854775807").unwrap().offset(),
            i64::MAX
        );
    }

    #[test]
    fn page_beyond_the_last_possible_item_is_400() {
        rejects("/items?page=9223372036854775807&limit=100", "page");
        assert_eq!(
            parse("/items?page=92233720368547759&limit=100")
                .unwrap()
                .offset(),
            9_223_372_036_854_775_800
        );
    }

    #[test]
    fn conflicting_and_repeated_parameters_are_400() {
        rejects("/items?page=1&offset=0", "offset");
        rejects("/items?page=1&page=2", "page");
        rejects("/items?limit=1&per_page=2", "per_page");
        rejects("/items?limit=1&limit=1", "limit");
        rejects("/items?page=1&cursor=abc", "cursor");
        rejects("/items?offset=1&cursor=abc", "cursor");
    }

    #[test]
    fn problem_details_name_the_value() {
        let problem = parse("/items?limit=abc").unwrap_err();
        assert_eq!(
            problem.members()["detail"],
            "limit must be a positive integer"
        );
        assert_eq!(
            problem.members()["invalid-params"][0]["reason"],
            "expected a positive integer, got \"abc\""
        );
        let long = parse(&format!("/items?page={}", "9".repeat(200))).unwrap_err();
        assert!(
            long.members()["invalid-params"][0]["reason"]
                .as_str()
                .unwrap()
                .len()
                < 120
        );
    }

    #[test]
    fn percent_encoded_names_and_values_are_decoded() {
        let pagination = parse("/items?%70age=%32&lim%69t=5").unwrap();
        assert_eq!((pagination.page(), pagination.limit()), (Some(2), 5));
    }

    #[test]
    fn configured_parameter_names_are_used() {
        let config = PaginateLayer::builder()
            .params(
                crate::ParamNames::new()
                    .page("p")
                    .limit("size")
                    .per_page(None),
            )
            .build()
            .unwrap()
            .config()
            .clone();
        let pagination = parse_with("/items?p=4&size=5&page=9&per_page=1", &config).unwrap();
        assert_eq!((pagination.page(), pagination.limit()), (Some(4), 5));
        assert_eq!(pagination.link_params, ["page=9", "per_page=1"]);
    }

    #[test]
    fn tampered_cursor_is_400() {
        let first = parse("/items?sort=name").unwrap();
        let token = first.seal(Direction::After, b"41");
        let ok = parse(&format!("/items?sort=name&cursor={token}")).unwrap();
        assert_eq!(ok.keyset::<u64>().unwrap(), Keyset::After(41));
        let mut tampered = token.into_bytes();
        let last = tampered.len() - 1;
        tampered[last] = if tampered[last] == b'A' { b'B' } else { b'A' };
        let tampered = String::from_utf8(tampered).unwrap();
        rejects(&format!("/items?sort=name&cursor={tampered}"), "cursor");
        rejects("/items?cursor=not-a-cursor", "cursor");
        rejects(&format!("/items?cursor={}", "A".repeat(2000)), "cursor");
    }

    #[test]
    fn reused_cursor_with_other_filters_is_400() {
        let first = parse("/items?category=3&sort=name").unwrap();
        let token = first.seal(Direction::After, b"41");
        rejects(
            &format!("/items?category=4&sort=name&cursor={token}"),
            "cursor",
        );
        rejects(&format!("/items?category=3&cursor={token}"), "cursor");
        rejects(
            &format!("/orders?category=3&sort=name&cursor={token}"),
            "cursor",
        );
        // Page size, field selection and parameter order do not matter.
        let same = parse(&format!(
            "/items?limit=5&sort=name&fields=id&category=3&cursor={token}"
        ))
        .unwrap();
        assert_eq!(same.keyset::<u64>().unwrap(), Keyset::After(41));
    }

    #[test]
    fn cursor_signed_with_another_key_is_400() {
        let other = PaginateLayer::builder()
            .cursor_key(vec![9u8; 32])
            .build()
            .unwrap()
            .config()
            .clone();
        let token = parse_with("/items", &other)
            .unwrap()
            .seal(Direction::After, b"1");
        rejects(&format!("/items?cursor={token}"), "cursor");
    }

    #[test]
    fn cursor_key_of_another_type_is_400() {
        let token = parse("/items")
            .unwrap()
            .seal(Direction::Before, br#""text""#);
        let pagination = parse(&format!("/items?cursor={token}")).unwrap();
        assert_eq!(
            pagination.keyset::<String>().unwrap(),
            Keyset::Before("text".to_owned())
        );
        assert_eq!(pagination.keyset::<u64>().unwrap_err().status(), 400);
        assert_eq!(pagination.offset(), 0);
    }

    #[test]
    fn keyset_listing_rejects_page_numbers() {
        assert_eq!(
            parse("/items").unwrap().keyset::<u64>().unwrap(),
            Keyset::First
        );
        assert_eq!(
            parse("/items?page=2")
                .unwrap()
                .keyset::<u64>()
                .unwrap_err()
                .status(),
            400
        );
        assert_eq!(
            parse("/items?offset=2")
                .unwrap()
                .keyset::<u64>()
                .unwrap_err()
                .status(),
            400
        );
    }

    #[test]
    fn cursor_style_starts_without_page_numbers() {
        let config = PaginateLayer::builder()
            .style(Style::Cursors)
            .cursor_key(vec![7u8; 32])
            .build()
            .unwrap()
            .config()
            .clone();
        let pagination = parse_with("/items", &config).unwrap();
        assert_eq!(pagination.page(), None);
        assert_eq!(pagination.position, Position::Cursor(None));
    }

    #[test]
    fn links_keep_other_parameters_as_written() {
        let pagination =
            parse("/items?sort=-price&q=caf%C3%A9+au+lait&page=2&limit=10&fields=id").unwrap();
        assert_eq!(
            pagination.link(Some(("page", "3"))),
            "/items?sort=-price&q=caf%C3%A9+au+lait&fields=id&page=3&limit=10"
        );
    }

    #[test]
    fn link_origin_comes_from_config_else_links_are_relative() {
        let config = PaginateLayer::builder()
            .base_url("https://api.example.com")
            .build()
            .unwrap()
            .config()
            .clone();
        assert_eq!(
            parse_with("/items", &config).unwrap().link(None),
            "https://api.example.com/items"
        );
        // Neither an absolute request URI nor `Host` sets the origin: both come from the
        // client.
        let request = Request::get("https://other.example:8443/items")
            .body(())
            .unwrap();
        let pagination = Pagination::from_request(&request, &PaginationConfig::default()).unwrap();
        assert_eq!(pagination.link(None), "/items");
        let request = Request::get("/items").body(()).unwrap();
        let pagination = Pagination::from_request(&request, &PaginationConfig::default()).unwrap();
        assert_eq!(pagination.link(None), "/items");
        for host in ["evil@x", "evil.example"] {
            let request = Request::get("/items")
                .header("host", host)
                .body(())
                .unwrap();
            let pagination =
                Pagination::from_request(&request, &PaginationConfig::default()).unwrap();
            assert_eq!(pagination.link(None), "/items");
        }
    }

    #[test]
    fn nested_routers_link_to_the_original_uri() {
        let mut request = Request::get("/items?page=2")
            .header("host", "api.test")
            .body(())
            .unwrap();
        request
            .extensions_mut()
            .insert(OriginalUri("/v1/items?page=2".parse().unwrap()));
        let pagination = Pagination::from_request(&request, &PaginationConfig::default()).unwrap();
        assert_eq!(pagination.link(Some(("page", "1"))), "/v1/items?page=1");
    }
}
