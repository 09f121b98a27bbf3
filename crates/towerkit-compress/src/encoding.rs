//! The content codings the layer can apply, with their levels and features.

use std::fmt;
use std::ops::RangeInclusive;

/// A content coding the layer can apply, in the layer's order of preference when a client
/// accepts several with the same weight.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[non_exhaustive]
pub enum Encoding {
    /// Zstandard (RFC 8878), `zstd`: the cheapest of the four at the default levels.
    /// Applied with the `zstd` feature (on by default).
    Zstd,
    /// Brotli (RFC 7932), `br`. Applied with the `br` feature (on by default).
    Br,
    /// gzip (RFC 1952), `gzip`. Applied with the `gzip` feature (on by default).
    Gzip,
    /// zlib-wrapped deflate (RFC 1950), `deflate`: only for old clients that offer nothing else.
    /// Applied with the `deflate` feature (on by default).
    Deflate,
}

impl Encoding {
    /// Every coding, in order of preference.
    pub const ALL: [Encoding; 4] = [
        Encoding::Zstd,
        Encoding::Br,
        Encoding::Gzip,
        Encoding::Deflate,
    ];

    /// The coding's token in `Accept-Encoding` and `Content-Encoding`.
    pub const fn as_str(self) -> &'static str {
        match self {
            Encoding::Zstd => "zstd",
            Encoding::Br => "br",
            Encoding::Gzip => "gzip",
            Encoding::Deflate => "deflate",
        }
    }

    /// The level the layer uses unless configured otherwise, chosen for responses compressed
    /// on the request path: zstd 3, brotli 4, gzip 6, deflate 6.
    pub const fn default_level(self) -> i32 {
        match self {
            Encoding::Zstd => 3,
            Encoding::Br => 4,
            Encoding::Gzip | Encoding::Deflate => 6,
        }
    }

    /// The levels [`CompressionLayerBuilder::level`](crate::CompressionLayerBuilder::level) accepts:
    /// zstd 1–22, brotli 0–11, gzip and deflate 0–9.
    pub const fn levels(self) -> RangeInclusive<i32> {
        match self {
            Encoding::Zstd => 1..=22,
            Encoding::Br => 0..=11,
            Encoding::Gzip | Encoding::Deflate => 0..=9,
        }
    }

    /// Whether this build supports the coding (its cargo feature is on).
    pub const fn is_compiled(self) -> bool {
        match self {
            Encoding::Zstd => cfg!(feature = "zstd"),
            Encoding::Br => cfg!(feature = "br"),
            Encoding::Gzip => cfg!(feature = "gzip"),
            Encoding::Deflate => cfg!(feature = "deflate"),
        }
    }

    pub(crate) const fn index(self) -> usize {
        match self {
            Encoding::Zstd => 0,
            Encoding::Br => 1,
            Encoding::Gzip => 2,
            Encoding::Deflate => 3,
        }
    }
}

impl fmt::Display for Encoding {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}
