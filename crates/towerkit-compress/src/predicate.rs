//! Which responses are worth compressing, and the header checks behind it.

use std::sync::Arc;

use http::header::{CACHE_CONTROL, CONTENT_LENGTH, CONTENT_TYPE};
use http::{HeaderMap, HeaderValue};
use http_body::Body;
use tower_http::compression::Predicate;

use towerkit_http::{is_token, media_type_essence};

use crate::error::ConfigError;

/// The smallest body compressed by default: see [`DefaultPredicate::MIN_SIZE`].
const MIN_SIZE: u64 = 1024;

/// The media types skipped by default: see [`DefaultPredicate::SKIPPED_MEDIA_TYPES`].
const SKIPPED_MEDIA_TYPES: [&str; 23] = [
    "image/png",
    "image/jpeg",
    "image/gif",
    "image/webp",
    "image/avif",
    "image/apng",
    "image/heic",
    "image/heif",
    "image/jxl",
    "video/*",
    "audio/*",
    "font/woff",
    "font/woff2",
    "application/zip",
    "application/gzip",
    "application/x-gzip",
    "application/zstd",
    "application/x-bzip2",
    "application/x-xz",
    "application/x-7z-compressed",
    "application/vnd.rar",
    "application/pdf",
    "text/event-stream",
];

/// Media types skipped for their own protocol reasons; always part of
/// [`DefaultPredicate`]'s list, whatever the configuration.
const GRPC: [&str; 3] = [
    "application/grpc",
    "application/grpc+proto",
    "application/grpc+json",
];

/// The layer's default [`Predicate`]: compress a response unless its size is known (from
/// `Content-Length`, else the body's exact size hint) and below the minimum (default 1 KiB,
/// [`DefaultPredicate::MIN_SIZE`]), or its media type is one of the skipped types (default
/// [`DefaultPredicate::SKIPPED_MEDIA_TYPES`], plus gRPC).
///
/// Whatever the predicate, the layer never compresses a response that already has a
/// `Content-Encoding` or a `Content-Range`, carries `Cache-Control: no-transform`, or has no
/// content (1xx, 204, 304).
///
/// Combine it with tower-http's predicates through [`Predicate::and`]:
///
/// ```
/// use towerkit_compress::{CompressionLayer, DefaultPredicate, Predicate};
/// use tower_http::compression::predicate::NotForContentType;
///
/// let layer = CompressionLayer::builder()
///     .compress_when(DefaultPredicate::new().and(NotForContentType::new("application/x-ndjson")))
///     .build()?;
/// # let _ = layer;
/// # Ok::<(), towerkit_compress::ConfigError>(())
/// ```
#[derive(Debug, Clone)]
pub struct DefaultPredicate {
    min_size: u64,
    skipped: Arc<[MediaRange]>,
}

impl Default for DefaultPredicate {
    fn default() -> Self {
        Self::new()
    }
}

impl DefaultPredicate {
    /// The smallest body compressed by default: 1 KiB. Below it the coding's framing and the
    /// lost `Content-Length` cost more than the bytes saved.
    pub const MIN_SIZE: u64 = MIN_SIZE;

    /// Media types never compressed by default: formats that are compressed already (raster
    /// images, video, audio, archives, WOFF fonts, PDF) and server-sent events (each event is
    /// meant to reach the client when sent). `type/*` matches every subtype. SVG, BMP and
    /// icons are not listed: they are text or uncompressed and shrink well. gRPC (it has its
    /// own message compression) is always skipped, whatever the list.
    pub const SKIPPED_MEDIA_TYPES: [&str; 23] = SKIPPED_MEDIA_TYPES;

    /// Skips bodies under 1 KiB ([`Self::MIN_SIZE`]) and [`Self::SKIPPED_MEDIA_TYPES`].
    pub fn new() -> Self {
        let skipped = SKIPPED_MEDIA_TYPES
            .iter()
            .chain(GRPC.iter())
            .filter_map(|t| MediaRange::parse(t))
            .collect();
        Self {
            min_size: MIN_SIZE,
            skipped,
        }
    }

    /// The smallest body compressed, in bytes. Default: 1024. A body of unknown size (a
    /// stream) is always compressed.
    #[must_use]
    pub fn min_size(mut self, bytes: u64) -> Self {
        self.min_size = bytes;
        self
    }

    /// Media types (`type/subtype` or `type/*`, compared case-insensitively, parameters
    /// ignored) never compressed. Replaces [`Self::SKIPPED_MEDIA_TYPES`]; gRPC stays
    /// skipped. Fails on an entry that is not a media range.
    pub fn skip_media_types<I, T>(mut self, types: I) -> Result<Self, ConfigError>
    where
        I: IntoIterator<Item = T>,
        T: AsRef<str>,
    {
        let mut skipped = Vec::new();
        for t in types {
            let t = t.as_ref();
            skipped.push(
                MediaRange::parse(t).ok_or_else(|| ConfigError::InvalidMediaType(t.to_owned()))?,
            );
        }
        skipped.extend(GRPC.iter().filter_map(|t| MediaRange::parse(t)));
        self.skipped = skipped.into();
        Ok(self)
    }

    fn is_skipped(&self, content_type: &HeaderValue) -> bool {
        let essence = media_type_essence(content_type);
        self.skipped.iter().any(|range| range.matches(essence))
    }
}

impl Predicate for DefaultPredicate {
    fn should_compress<B>(&self, response: &http::Response<B>) -> bool
    where
        B: Body,
    {
        // Content-Length first: a HEAD response keeps the length of the body GET would send
        // while its own body is empty, and must get the same headers as that GET.
        let size =
            content_length(response.headers()).or_else(|| response.body().size_hint().exact());
        if size.is_some_and(|size| size < self.min_size) {
            return false;
        }
        !response
            .headers()
            .get(CONTENT_TYPE)
            .is_some_and(|value| self.is_skipped(value))
    }
}

/// A `type/subtype` or `type/*` pattern, lower-cased.
#[derive(Debug, Clone, PartialEq, Eq)]
struct MediaRange {
    kind: Box<str>,
    subtype: Option<Box<str>>,
}

impl MediaRange {
    fn parse(text: &str) -> Option<Self> {
        let (kind, subtype) = text.trim().split_once('/')?;
        if !is_token(kind) || kind == "*" {
            return None;
        }
        let subtype = match subtype {
            "*" => None,
            s if is_token(s) => Some(s.to_ascii_lowercase().into()),
            _ => return None,
        };
        Some(Self {
            kind: kind.to_ascii_lowercase().into(),
            subtype,
        })
    }

    fn matches(&self, essence: &str) -> bool {
        let Some((kind, subtype)) = essence.split_once('/') else {
            return false;
        };
        kind.eq_ignore_ascii_case(&self.kind)
            && self
                .subtype
                .as_ref()
                .is_none_or(|s| subtype.eq_ignore_ascii_case(s))
    }
}

fn content_length(headers: &HeaderMap) -> Option<u64> {
    headers
        .get(CONTENT_LENGTH)?
        .to_str()
        .ok()?
        .trim()
        .parse()
        .ok()
}

/// Whether `Cache-Control` carries the `no-transform` directive (RFC 9111 §5.2.2.6), in any of
/// its field lines.
pub(crate) fn has_no_transform(headers: &HeaderMap) -> bool {
    headers
        .get_all(CACHE_CONTROL)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .flat_map(|value| value.split(','))
        .any(|directive| {
            let name = directive.split('=').next().unwrap_or_default().trim();
            name.eq_ignore_ascii_case("no-transform")
        })
}

#[cfg(test)]
mod tests {
    use bytes::Bytes;
    use http::Response;
    use http_body_util::{Empty, Full};

    use super::*;

    fn response(content_type: Option<&str>, len: usize) -> Response<Full<Bytes>> {
        let mut response = Response::new(Full::new(Bytes::from(vec![b'a'; len])));
        if let Some(content_type) = content_type {
            response
                .headers_mut()
                .insert(CONTENT_TYPE, HeaderValue::from_str(content_type).unwrap());
        }
        response
    }

    fn check(content_type: &str, compressed: bool) {
        let predicate = DefaultPredicate::new();
        assert_eq!(
            predicate.should_compress(&response(Some(content_type), 4096)),
            compressed,
            "{content_type}"
        );
    }

    #[test]
    fn compresses_text_json_and_svg() {
        check("application/json", true);
        check("application/problem+json; charset=utf-8", true);
        check("text/html; charset=utf-8", true);
        check("image/svg+xml", true);
        check("application/javascript", true);
        check("application/grpc-web", true);
    }

    #[test]
    fn skips_already_compressed_types() {
        for content_type in [
            "image/png",
            "IMAGE/JPEG",
            "image/webp; q=1",
            "video/mp4",
            "audio/ogg",
            "application/zip",
            "application/gzip",
            "font/woff2",
            "application/pdf",
        ] {
            check(content_type, false);
        }
    }

    #[test]
    fn skips_event_streams_and_grpc() {
        check("text/event-stream", false);
        check("application/grpc", false);
        check("application/grpc+proto", false);
    }

    #[test]
    fn compresses_a_response_without_content_type() {
        assert!(DefaultPredicate::new().should_compress(&response(None, 4096)));
    }

    #[test]
    fn skips_bodies_under_one_kib() {
        let predicate = DefaultPredicate::new();
        assert!(!predicate.should_compress(&response(Some("application/json"), 1023)));
        assert!(predicate.should_compress(&response(Some("application/json"), 1024)));
    }

    #[test]
    fn content_length_decides_over_an_empty_head_body() {
        let mut head = Response::new(Empty::<Bytes>::new());
        head.headers_mut()
            .insert(CONTENT_LENGTH, HeaderValue::from_static("5000"));
        assert!(DefaultPredicate::new().should_compress(&head));
        head.headers_mut()
            .insert(CONTENT_LENGTH, HeaderValue::from_static("500"));
        assert!(!DefaultPredicate::new().should_compress(&head));
    }

    #[test]
    fn compresses_a_stream_of_unknown_size() {
        /// A body whose size is unknown until it ends.
        struct Unsized;
        impl Body for Unsized {
            type Data = Bytes;
            type Error = std::convert::Infallible;
            fn poll_frame(
                self: std::pin::Pin<&mut Self>,
                _: &mut std::task::Context<'_>,
            ) -> std::task::Poll<Option<Result<http_body::Frame<Bytes>, Self::Error>>> {
                std::task::Poll::Ready(None)
            }
        }
        assert!(Unsized.size_hint().exact().is_none());
        assert!(DefaultPredicate::new().should_compress(&Response::new(Unsized)));
    }

    #[test]
    fn min_size_is_configurable() {
        let predicate = DefaultPredicate::new().min_size(0);
        assert!(predicate.should_compress(&response(Some("application/json"), 10)));
    }

    #[test]
    fn skip_list_replaces_the_default_but_keeps_grpc() {
        let predicate = DefaultPredicate::new()
            .skip_media_types(["application/x-ndjson", "text/*"])
            .unwrap();
        assert!(!predicate.should_compress(&response(Some("application/x-ndjson"), 4096)));
        assert!(!predicate.should_compress(&response(Some("text/csv"), 4096)));
        assert!(predicate.should_compress(&response(Some("image/png"), 4096)));
        assert!(!predicate.should_compress(&response(Some("application/grpc"), 4096)));
    }

    #[test]
    fn malformed_skip_entries_are_a_config_error() {
        for bad in [
            "json",
            "*/*",
            "text/",
            "/json",
            "text/html; charset=utf-8",
            "te xt/html",
        ] {
            let error = DefaultPredicate::new().skip_media_types([bad]).unwrap_err();
            assert_eq!(error, ConfigError::InvalidMediaType(bad.to_owned()));
        }
    }

    #[test]
    fn no_transform_is_found_in_any_field_line() {
        let mut headers = HeaderMap::new();
        assert!(!has_no_transform(&headers));
        headers.append(CACHE_CONTROL, HeaderValue::from_static("max-age=60"));
        assert!(!has_no_transform(&headers));
        headers.append(
            CACHE_CONTROL,
            HeaderValue::from_static("public, No-Transform"),
        );
        assert!(has_no_transform(&headers));
    }
}
