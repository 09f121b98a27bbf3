//! The one error of bad pagination or projection configuration.

/// Bad pagination or projection configuration, reported when a layer is built
/// ([`PaginateLayerBuilder::build`](crate::PaginateLayerBuilder::build),
/// [`SelectFieldsLayerBuilder::build`](crate::SelectFieldsLayerBuilder::build)) or a
/// [`JsonPointer`](crate::transform::JsonPointer) is parsed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ConfigError {
    /// A page size of zero.
    #[error("invalid `default_limit` or `max_limit`: must be at least 1")]
    ZeroLimit,
    /// The default page size is larger than the maximum.
    #[error("invalid `default_limit`: {default} is larger than `max_limit` {max}")]
    DefaultAboveMax {
        /// The configured default.
        default: u64,
        /// The configured maximum.
        max: u64,
    },
    /// The maximum page size does not fit SQL's `bigint` with room for one more row.
    #[error("invalid `max_limit`: {0} is too large")]
    MaxTooLarge(u64),
    /// The cursor signing key is shorter than [`MIN_CURSOR_KEY_LEN`](crate::MIN_CURSOR_KEY_LEN) bytes.
    #[error("invalid `cursor_key`: {0} bytes, at least 32 are required")]
    ShortCursorKey(usize),
    /// Cursor pagination ([`Style::Cursors`](crate::Style::Cursors)) without a
    /// [`cursor_key`](crate::PaginateLayerBuilder::cursor_key): cursors signed with a key of
    /// this process alone are rejected by every other instance and after a restart. Set the
    /// same key on every instance, or opt out on a single instance with
    /// [`cursor_key_per_process`](crate::PaginateLayerBuilder::cursor_key_per_process).
    #[error(
        "missing `cursor_key`: cursor pagination needs a key shared by every instance (or `cursor_key_per_process()` on a single instance)"
    )]
    MissingCursorKey,
    /// A query parameter or envelope member name is empty or uses characters it may not.
    #[error("invalid {role} name {name:?}")]
    InvalidName {
        /// What the name is for (`"page parameter"`, `"data member"`, ...).
        role: &'static str,
        /// The rejected name.
        name: String,
    },
    /// Two query parameters, or two members of one envelope object, share a name.
    #[error("invalid `names` or `params`: {0:?} is used twice")]
    DuplicateName(String),
    /// The base URL is not an `http` or `https` origin.
    #[error("invalid `base_url`: {0:?} is not an http or https origin")]
    InvalidBaseUrl(String),
    /// A JSON Pointer (RFC 6901) that does not parse, or an `array_at` pointer that ends in
    /// the envelope's `pagination` member.
    #[error("invalid JSON Pointer {0:?}")]
    InvalidPointer(String),
    /// A projection limit out of range.
    #[error("invalid `{limit}`: {value} is out of range")]
    InvalidLimit {
        /// Which limit.
        limit: &'static str,
        /// The rejected value.
        value: usize,
    },
}
