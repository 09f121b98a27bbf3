//! Pagination configuration shared by [`PaginateLayer`](crate::PaginateLayer), the
//! [`Pagination`](crate::Pagination) extractor and [`Page`](crate::Page).

use std::fmt;
use std::sync::{Arc, OnceLock};

use hmac::{Hmac, KeyInit};
use sha2::Sha256;

use crate::error::ConfigError;
use crate::pointer::JsonPointer;
use crate::query::is_url_safe;

/// The page size when the request names none: 20.
pub const DEFAULT_PAGE_LIMIT: u64 = 20;

/// The largest page size a client may ask for unless configured otherwise: 100.
pub const DEFAULT_MAX_LIMIT: u64 = 100;

/// The shortest accepted cursor signing key, in bytes.
pub const MIN_CURSOR_KEY_LEN: usize = 32;

pub(crate) type CursorMac = Hmac<Sha256>;

/// How a request without any pagination parameter is answered, and so which kind of
/// links the first page carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Style {
    /// Page numbers: the first page is `page=1`, links carry `page=` (default).
    #[default]
    Pages,
    /// Opaque cursors: the first page carries `nextCursor`, links carry `cursor=`.
    Cursors,
}

/// The names of the members of the pagination envelope. The default is camelCase
/// ([`EnvelopeNames::camel_case`]):
///
/// ```json
/// {"data": [], "pagination": {"page": 1, "limit": 20, "total": 0, "totalPages": 0,
///  "hasNext": false, "hasPrevious": false}}
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EnvelopeNames {
    data: String,
    pagination: String,
    page: String,
    offset: String,
    limit: String,
    total: String,
    total_pages: String,
    has_next: String,
    has_previous: String,
    next_cursor: String,
    prev_cursor: String,
}

impl Default for EnvelopeNames {
    fn default() -> Self {
        Self::camel_case()
    }
}

macro_rules! name_setters {
    ($($field:ident: $doc:literal,)*) => {
        $(
            #[doc = concat!("Sets the name of the ", $doc, " member.")]
            #[must_use]
            pub fn $field(mut self, name: impl Into<String>) -> Self {
                self.$field = name.into();
                self
            }
        )*
    };
}

impl EnvelopeNames {
    /// `data`, `pagination`, `page`, `offset`, `limit`, `total`, `totalPages`, `hasNext`,
    /// `hasPrevious`, `nextCursor`, `prevCursor`.
    pub fn camel_case() -> Self {
        Self {
            data: "data".into(),
            pagination: "pagination".into(),
            page: "page".into(),
            offset: "offset".into(),
            limit: "limit".into(),
            total: "total".into(),
            total_pages: "totalPages".into(),
            has_next: "hasNext".into(),
            has_previous: "hasPrevious".into(),
            next_cursor: "nextCursor".into(),
            prev_cursor: "prevCursor".into(),
        }
    }

    /// The same names in snake_case: `total_pages`, `has_next`, `has_previous`,
    /// `next_cursor`, `prev_cursor`.
    pub fn snake_case() -> Self {
        Self {
            total_pages: "total_pages".into(),
            has_next: "has_next".into(),
            has_previous: "has_previous".into(),
            next_cursor: "next_cursor".into(),
            prev_cursor: "prev_cursor".into(),
            ..Self::camel_case()
        }
    }

    name_setters! {
        data: "items array (`data`)",
        pagination: "metadata object (`pagination`)",
        page: "page number (`page`)",
        offset: "offset (`offset`)",
        limit: "page size (`limit`)",
        total: "total item count (`total`)",
        total_pages: "page count (`totalPages`)",
        has_next: "has-next flag (`hasNext`)",
        has_previous: "has-previous flag (`hasPrevious`)",
        next_cursor: "next cursor (`nextCursor`)",
        prev_cursor: "previous cursor (`prevCursor`)",
    }

    fn check(&self) -> Result<(), ConfigError> {
        let top = [
            ("data member", &self.data),
            ("pagination member", &self.pagination),
        ];
        let meta = [
            ("page member", &self.page),
            ("offset member", &self.offset),
            ("limit member", &self.limit),
            ("total member", &self.total),
            ("total pages member", &self.total_pages),
            ("has-next member", &self.has_next),
            ("has-previous member", &self.has_previous),
            ("next cursor member", &self.next_cursor),
            ("previous cursor member", &self.prev_cursor),
        ];
        for (role, name) in top.iter().chain(meta.iter()) {
            if name.is_empty() {
                return Err(ConfigError::InvalidName {
                    role,
                    name: (*name).clone(),
                });
            }
        }
        distinct(top.iter().map(|(_, name)| name.as_str()))?;
        distinct(meta.iter().map(|(_, name)| name.as_str()))?;
        Ok(())
    }

    fn encode_unchecked(&self) -> EncodedNames {
        let json =
            |name: &str| -> Box<[u8]> { serde_json::to_vec(name).unwrap_or_default().into() };
        EncodedNames {
            data: json(&self.data),
            pagination_raw: self.pagination.clone(),
            pagination: json(&self.pagination),
            page: json(&self.page),
            offset: json(&self.offset),
            limit: json(&self.limit),
            total: json(&self.total),
            total_pages: json(&self.total_pages),
            has_next: json(&self.has_next),
            has_previous: json(&self.has_previous),
            next_cursor: json(&self.next_cursor),
            prev_cursor: json(&self.prev_cursor),
        }
    }
}

/// Envelope names as ready-to-write JSON strings (quotes and escapes included).
#[derive(Debug)]
pub(crate) struct EncodedNames {
    pub(crate) data: Box<[u8]>,
    pub(crate) pagination_raw: String,
    pub(crate) pagination: Box<[u8]>,
    pub(crate) page: Box<[u8]>,
    pub(crate) offset: Box<[u8]>,
    pub(crate) limit: Box<[u8]>,
    pub(crate) total: Box<[u8]>,
    pub(crate) total_pages: Box<[u8]>,
    pub(crate) has_next: Box<[u8]>,
    pub(crate) has_previous: Box<[u8]>,
    pub(crate) next_cursor: Box<[u8]>,
    pub(crate) prev_cursor: Box<[u8]>,
}

/// The names of the query parameters. Defaults: `page`, `limit` (alias `per_page`),
/// `offset`, `cursor`. Names are limited to URL-safe characters (`A-Z a-z 0-9 - . _ ~`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParamNames {
    pub(crate) page: String,
    pub(crate) limit: String,
    pub(crate) per_page: Option<String>,
    pub(crate) offset: String,
    pub(crate) cursor: String,
}

impl Default for ParamNames {
    fn default() -> Self {
        Self {
            page: "page".into(),
            limit: "limit".into(),
            per_page: Some("per_page".into()),
            offset: "offset".into(),
            cursor: "cursor".into(),
        }
    }
}

impl ParamNames {
    /// `page`, `limit`, `per_page`, `offset`, `cursor`.
    pub fn new() -> Self {
        Self::default()
    }

    /// Sets the page number parameter (default `page`).
    #[must_use]
    pub fn page(mut self, name: impl Into<String>) -> Self {
        self.page = name.into();
        self
    }

    /// Sets the page size parameter (default `limit`).
    #[must_use]
    pub fn limit(mut self, name: impl Into<String>) -> Self {
        self.limit = name.into();
        self
    }

    /// Sets the alias of the page size parameter (default `per_page`); `None` for no alias.
    #[must_use]
    pub fn per_page(mut self, name: Option<String>) -> Self {
        self.per_page = name;
        self
    }

    /// Sets the offset parameter (default `offset`).
    #[must_use]
    pub fn offset(mut self, name: impl Into<String>) -> Self {
        self.offset = name.into();
        self
    }

    /// Sets the cursor parameter (default `cursor`).
    #[must_use]
    pub fn cursor(mut self, name: impl Into<String>) -> Self {
        self.cursor = name.into();
        self
    }

    fn validate(&self) -> Result<(), ConfigError> {
        let mut all = vec![
            ("page parameter", &self.page),
            ("limit parameter", &self.limit),
            ("offset parameter", &self.offset),
            ("cursor parameter", &self.cursor),
        ];
        if let Some(per_page) = &self.per_page {
            all.push(("per-page parameter", per_page));
        }
        for (role, name) in &all {
            if !is_url_safe(name) {
                return Err(ConfigError::InvalidName {
                    role,
                    name: (*name).clone(),
                });
            }
        }
        distinct(all.iter().map(|(_, name)| name.as_str()))
    }
}

/// Pagination configuration: page sizes, strictness, the cursor key, parameter and
/// envelope names. Cheap to clone (shared).
///
/// It is set up through [`PaginateLayer::builder`](crate::PaginateLayer::builder) and read
/// with [`PaginateLayer::config`](crate::PaginateLayer::config). The layer inserts it into
/// each request's extensions, where the [`Pagination`](crate::Pagination) extractor finds
/// it. Without a layer the extractor uses [`PaginationConfig::default`].
///
/// ```
/// use towerkit_paginate::{EnvelopeNames, PaginateLayer};
///
/// let layer = PaginateLayer::builder()
///     .default_limit(25)
///     .max_limit(200)
///     .strict(true)
///     .cursor_key(b"0123456789abcdef0123456789abcdef".to_vec())
///     .names(EnvelopeNames::snake_case())
///     .base_url("https://api.example.com")
///     .build()
///     .expect("valid configuration");
/// assert_eq!(layer.config().max_limit(), 200);
/// assert!(PaginateLayer::builder().default_limit(500).build().is_err());
/// ```
#[derive(Clone)]
pub struct PaginationConfig {
    pub(crate) inner: Arc<Inner>,
}

pub(crate) struct Inner {
    pub(crate) default_limit: u64,
    pub(crate) max_limit: u64,
    pub(crate) strict: bool,
    pub(crate) style: Style,
    pub(crate) mac: CursorMac,
    pub(crate) names: EncodedNames,
    pub(crate) params: ParamNames,
    pub(crate) base_url: Option<String>,
    pub(crate) unbound: Vec<String>,
    pub(crate) data_pointer: JsonPointer,
}

impl fmt::Debug for PaginationConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let inner = &self.inner;
        f.debug_struct("PaginationConfig")
            .field("default_limit", &inner.default_limit)
            .field("max_limit", &inner.max_limit)
            .field("strict", &inner.strict)
            .field("style", &inner.style)
            .field("cursor_key", &"<redacted>")
            .field("params", &inner.params)
            .field("base_url", &inner.base_url)
            .field("unbound", &inner.unbound)
            .finish_non_exhaustive()
    }
}

impl Default for PaginationConfig {
    /// The defaults of [`PaginateLayer::builder`](crate::PaginateLayer::builder); every
    /// default configuration shares one process-wide cursor key, so its cursors stay valid
    /// across requests.
    fn default() -> Self {
        static DEFAULT: OnceLock<PaginationConfig> = OnceLock::new();
        DEFAULT
            .get_or_init(|| Settings::default().assemble(process_mac(), None))
            .clone()
    }
}

impl PaginationConfig {
    /// The page size when the request names none.
    pub fn default_limit(&self) -> u64 {
        self.inner.default_limit
    }

    /// The largest page size.
    pub fn max_limit(&self) -> u64 {
        self.inner.max_limit
    }

    /// Whether a page size above the maximum is a 400 rather than clamped.
    pub fn is_strict(&self) -> bool {
        self.inner.strict
    }

    /// The query parameter names.
    pub fn params(&self) -> &ParamNames {
        &self.inner.params
    }

    /// The style of a request without pagination parameters.
    pub fn style(&self) -> Style {
        self.inner.style
    }
}

/// The settings of a [`PaginationConfig`] before they are checked, set by
/// [`PaginateLayerBuilder`](crate::PaginateLayerBuilder), which documents each default.
#[derive(Debug, Clone)]
pub(crate) struct Settings {
    pub(crate) default_limit: u64,
    pub(crate) max_limit: u64,
    pub(crate) strict: bool,
    pub(crate) style: Style,
    pub(crate) cursor_key: Option<Vec<u8>>,
    pub(crate) cursor_key_per_process: bool,
    pub(crate) names: EnvelopeNames,
    pub(crate) params: ParamNames,
    pub(crate) base_url: Option<String>,
    pub(crate) unbound: Vec<String>,
}

impl Default for Settings {
    fn default() -> Self {
        Self {
            default_limit: DEFAULT_PAGE_LIMIT,
            max_limit: DEFAULT_MAX_LIMIT,
            strict: false,
            style: Style::Pages,
            cursor_key: None,
            cursor_key_per_process: false,
            names: EnvelopeNames::camel_case(),
            params: ParamNames::default(),
            base_url: None,
            unbound: vec!["fields".into()],
        }
    }
}

impl Settings {
    /// Checks the settings and builds the configuration.
    pub(crate) fn build(self) -> Result<PaginationConfig, ConfigError> {
        if self.default_limit == 0 || self.max_limit == 0 {
            return Err(ConfigError::ZeroLimit);
        }
        if self.default_limit > self.max_limit {
            return Err(ConfigError::DefaultAboveMax {
                default: self.default_limit,
                max: self.max_limit,
            });
        }
        if self.max_limit >= i64::MAX as u64 {
            return Err(ConfigError::MaxTooLarge(self.max_limit));
        }
        self.params.validate()?;
        self.names.check()?;
        let mac = match &self.cursor_key {
            Some(key) if key.len() < MIN_CURSOR_KEY_LEN => {
                return Err(ConfigError::ShortCursorKey(key.len()));
            }
            Some(key) => CursorMac::new_from_slice(key)
                .map_err(|_| ConfigError::ShortCursorKey(key.len()))?,
            // Cursor pagination signs every page's cursors: with a key of this process
            // alone, another instance (or this one after a restart, or any instance serving
            // a page cached in a shared store) rejects them.
            None if self.style == Style::Cursors && !self.cursor_key_per_process => {
                return Err(ConfigError::MissingCursorKey);
            }
            None => process_mac(),
        };
        let base_url = self.base_url.as_deref().map(parse_origin).transpose()?;
        Ok(self.assemble(mac, base_url))
    }

    /// Builds without checking: for the defaults, which are valid by construction.
    fn assemble(self, mac: CursorMac, base_url: Option<String>) -> PaginationConfig {
        let names = self.names.encode_unchecked();
        let data_pointer = JsonPointer::from_segments(vec![self.names.data.clone()]);
        PaginationConfig {
            inner: Arc::new(Inner {
                default_limit: self.default_limit,
                max_limit: self.max_limit,
                strict: self.strict,
                style: self.style,
                mac,
                names,
                params: self.params,
                base_url,
                unbound: self.unbound,
                data_pointer,
            }),
        }
    }
}

/// The key of configurations that name none: random, made once per process.
fn process_mac() -> CursorMac {
    static KEY: OnceLock<[u8; 32]> = OnceLock::new();
    let key = KEY.get_or_init(|| {
        let mut key = [0u8; 32];
        if getrandom::fill(&mut key).is_err() {
            // No OS randomness: derive the key from std's randomly seeded hasher state
            // rather than fail; hashing a fresh `RandomState` draws on the same seed source.
            use std::hash::BuildHasher;
            for (index, chunk) in key.chunks_mut(8).enumerate() {
                let word = std::collections::hash_map::RandomState::new().hash_one(index);
                chunk.copy_from_slice(&word.to_le_bytes());
            }
        }
        key
    });
    // HMAC accepts keys of any length.
    CursorMac::new_from_slice(key).unwrap_or_else(|_| CursorMac::new(&Default::default()))
}

/// `scheme://authority` with a scheme of http or https and no path beyond `/`.
fn parse_origin(origin: &str) -> Result<String, ConfigError> {
    let invalid = || ConfigError::InvalidBaseUrl(origin.to_owned());
    let uri: http::Uri = origin.parse().map_err(|_| invalid())?;
    let scheme = uri.scheme_str().ok_or_else(invalid)?;
    if !scheme.eq_ignore_ascii_case("http") && !scheme.eq_ignore_ascii_case("https") {
        return Err(invalid());
    }
    let authority = uri.authority().ok_or_else(invalid)?;
    if !matches!(uri.path(), "" | "/") || uri.query().is_some() {
        return Err(invalid());
    }
    Ok(format!("{}://{}", scheme.to_ascii_lowercase(), authority))
}

fn distinct<'a>(names: impl Iterator<Item = &'a str>) -> Result<(), ConfigError> {
    let mut seen: Vec<&str> = Vec::new();
    for name in names {
        if seen.contains(&name) {
            return Err(ConfigError::DuplicateName(name.to_owned()));
        }
        seen.push(name);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::PaginateLayer;

    #[test]
    fn defaults_are_twenty_of_at_most_a_hundred() {
        let config = PaginationConfig::default();
        assert_eq!(config.default_limit(), 20);
        assert_eq!(config.max_limit(), 100);
        assert!(!config.is_strict());
        assert_eq!(config.style(), Style::Pages);
    }

    #[test]
    fn default_above_max_is_a_config_error() {
        let error = PaginateLayer::builder()
            .default_limit(50)
            .max_limit(10)
            .build()
            .unwrap_err();
        assert_eq!(
            error,
            ConfigError::DefaultAboveMax {
                default: 50,
                max: 10
            }
        );
        assert_eq!(
            PaginateLayer::builder()
                .default_limit(0)
                .build()
                .unwrap_err(),
            ConfigError::ZeroLimit
        );
        assert_eq!(
            PaginateLayer::builder()
                .max_limit(u64::MAX)
                .build()
                .unwrap_err(),
            ConfigError::MaxTooLarge(u64::MAX)
        );
    }

    #[test]
    fn short_cursor_key_is_a_config_error() {
        let error = PaginateLayer::builder()
            .cursor_key(b"short".to_vec())
            .build()
            .unwrap_err();
        assert_eq!(error, ConfigError::ShortCursorKey(5));
        assert!(
            PaginateLayer::builder()
                .cursor_key(vec![7u8; 32])
                .build()
                .is_ok()
        );
    }

    #[test]
    fn names_must_be_distinct_and_non_empty() {
        let clash = EnvelopeNames::camel_case().total("limit");
        assert_eq!(
            PaginateLayer::builder().names(clash).build().unwrap_err(),
            ConfigError::DuplicateName("limit".into())
        );
        let empty = EnvelopeNames::camel_case().data("");
        assert!(matches!(
            PaginateLayer::builder().names(empty).build().unwrap_err(),
            ConfigError::InvalidName {
                role: "data member",
                ..
            }
        ));
        let params = ParamNames::new().offset("page");
        assert_eq!(
            PaginateLayer::builder().params(params).build().unwrap_err(),
            ConfigError::DuplicateName("page".into())
        );
        let unsafe_name = ParamNames::new().cursor("a&b");
        assert!(matches!(
            PaginateLayer::builder()
                .params(unsafe_name)
                .build()
                .unwrap_err(),
            ConfigError::InvalidName {
                role: "cursor parameter",
                ..
            }
        ));
    }

    #[test]
    fn base_url_must_be_an_origin() {
        for bad in [
            "api.example.com",
            "ftp://example.com",
            "https://example.com/api",
            "https://x.com/?a=1",
            "",
        ] {
            assert!(
                matches!(
                    PaginateLayer::builder().base_url(bad).build(),
                    Err(ConfigError::InvalidBaseUrl(_))
                ),
                "{bad}"
            );
        }
        let config = PaginateLayer::builder()
            .base_url("HTTPS://api.example.com:8443/")
            .build()
            .unwrap()
            .config()
            .clone();
        assert_eq!(
            config.inner.base_url.as_deref(),
            Some("https://api.example.com:8443")
        );
    }

    #[test]
    fn debug_output_hides_the_cursor_key() {
        let config = PaginateLayer::builder()
            .cursor_key(vec![b'k'; 40])
            .build()
            .unwrap()
            .config()
            .clone();
        let debug = format!("{config:?}");
        assert!(debug.contains("<redacted>"));
        assert!(!debug.contains("kkkk"));
    }

    #[test]
    fn default_configurations_share_one_cursor_key() {
        use hmac::Mac;
        let a = PaginationConfig::default()
            .inner
            .mac
            .clone()
            .chain_update(b"x")
            .finalize()
            .into_bytes();
        let b = PaginateLayer::builder()
            .build()
            .unwrap()
            .config()
            .clone()
            .inner
            .mac
            .clone()
            .chain_update(b"x")
            .finalize()
            .into_bytes();
        assert_eq!(a, b);
    }
}
