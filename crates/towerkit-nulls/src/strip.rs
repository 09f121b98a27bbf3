//! The streaming null-stripping transform: bytes in, bytes out, no value tree.

use std::sync::Arc;

use towerkit_json::scan::{self, Malformed};

use crate::error::ConfigError;

/// What [`strip_nulls`] removes. The default removes object members whose value is `null`,
/// at any depth, and nothing else.
#[derive(Debug, Clone, Default)]
pub struct StripOptions {
    pub(crate) arrays: bool,
    pub(crate) empty: bool,
    pub(crate) keep: Arc<[Vec<Segment>]>,
}

/// One step of a keep path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Segment {
    /// An object member name, or an array index written in decimal.
    Key(String),
    /// `*`: any member or any array element.
    Any,
}

/// At most this many keep paths (they are tracked as a bit set while scanning).
pub const MAX_KEEP_PATHS: usize = 64;

impl StripOptions {
    /// The defaults: object members with `null` values are removed, array elements are not.
    pub fn new() -> Self {
        Self::default()
    }

    /// Also remove `null` elements of arrays (this shifts the indices of later elements).
    /// Default: off.
    #[must_use]
    pub fn arrays(mut self, on: bool) -> Self {
        self.arrays = on;
        self
    }

    /// Also remove object members whose value is an empty object or array once stripped
    /// (`{"a": {"b": null}}` becomes `{}`). Default: off.
    #[must_use]
    pub fn empty(mut self, on: bool) -> Self {
        self.empty = on;
        self
    }

    /// Nulls at or below these locations are kept. Paths are JSON Pointers (RFC 6901,
    /// `/user/middle_name`, `~1` for `/` and `~0` for `~`), where a segment `*` matches any
    /// member or array element and a decimal segment matches that array index. Default: none.
    /// Fails on a malformed pointer or more than [`MAX_KEEP_PATHS`] paths.
    pub fn keep<I, P>(mut self, paths: I) -> Result<Self, ConfigError>
    where
        I: IntoIterator<Item = P>,
        P: AsRef<str>,
    {
        let mut parsed = Vec::new();
        for path in paths {
            parsed.push(parse_pointer(path.as_ref())?);
        }
        if parsed.len() > MAX_KEEP_PATHS {
            return Err(ConfigError::TooManyKeepPaths {
                count: parsed.len(),
            });
        }
        self.keep = parsed.into();
        Ok(self)
    }
}

/// Removes `null` members from the JSON document `input`, writing the result to `out`.
///
/// Everything else is copied byte for byte: member order, numbers, strings and escapes stay
/// exactly as written, and so does whitespace outside removed members. A malformed document
/// is an error and leaves `out` in an unspecified state.
///
/// ```
/// use towerkit_nulls::{StripOptions, strip_nulls};
///
/// let mut out = Vec::new();
/// strip_nulls(br#"{"id":1,"note":null,"tags":[null,{"x":null}]}"#, &mut out, &StripOptions::new()).unwrap();
/// assert_eq!(out, br#"{"id":1,"tags":[null,{}]}"#);
/// ```
pub fn strip_nulls(
    input: &[u8],
    out: &mut Vec<u8>,
    options: &StripOptions,
) -> Result<(), Malformed> {
    let mut stripper = Stripper {
        input,
        out,
        mark: 0,
        options,
    };
    let start = scan::skip_ws(input, 0);
    let all = if options.keep.len() >= 64 {
        u64::MAX
    } else {
        (1u64 << options.keep.len()) - 1
    };
    let keep_all = options.keep.iter().any(Vec::is_empty);
    let end = if keep_all {
        scan::value_end(input, start, 0)?
    } else {
        stripper.value(start, 0, all)?.0
    };
    scan::expect_end(input, end)?;
    stripper.flush(input.len());
    Ok(())
}

/// Copies the input to `out` lazily: bytes from `mark` on are owed to the output and copied
/// in one go when something is dropped or the document ends.
struct Stripper<'a> {
    input: &'a [u8],
    out: &'a mut Vec<u8>,
    mark: usize,
    options: &'a StripOptions,
}

impl Stripper<'_> {
    #[inline]
    fn flush(&mut self, to: usize) {
        self.out.extend_from_slice(&self.input[self.mark..to]);
        self.mark = to;
    }

    /// Drops `from..to`, which must lie at or after `mark`.
    #[inline]
    fn drop_span(&mut self, from: usize, to: usize) {
        self.flush(from);
        self.mark = to;
    }

    /// Strips the value at `pos`; returns its end and whether it is an empty container
    /// once stripped. `live` is the set of keep paths that match the path so far.
    fn value(&mut self, pos: usize, depth: usize, live: u64) -> Result<(usize, bool), Malformed> {
        match scan::peek(self.input, pos)? {
            b'{' => self.object(pos, depth + 1, live),
            b'[' => self.array(pos, depth + 1, live),
            _ => Ok((scan::value_end(self.input, pos, depth)?, false)),
        }
    }

    fn object(&mut self, pos: usize, depth: usize, live: u64) -> Result<(usize, bool), Malformed> {
        if depth > scan::MAX_DEPTH {
            return Err(Malformed { offset: pos });
        }
        let input = self.input;
        let mut i = scan::skip_ws(input, pos + 1);
        if scan::peek(input, i)? == b'}' {
            return Ok((i + 1, true));
        }
        let mut kept = 0usize;
        let mut comma = 0usize;
        loop {
            if scan::peek(input, i)? != b'"' {
                return Err(Malformed { offset: i });
            }
            let member = i;
            let key_end = scan::string_end(input, i)?;
            i = scan::skip_ws(input, key_end);
            i = scan::expect(input, i, b':')?;
            i = scan::skip_ws(input, i);
            let (child, keep_here) = if live == 0 {
                (0, false)
            } else {
                self.descend(live, depth - 1, Step::Key(&input[member..key_end]))
            };
            // A dropped member takes the comma before it, or, if it is the first one kept so
            // far, nothing: the comma after it goes when that comma is reached.
            let drop_from = if kept > 0 { comma } else { member };
            let dropped;
            if keep_here {
                i = scan::value_end(input, i, depth)?;
                dropped = false;
            } else if scan::is_null(input, i) {
                self.drop_span(drop_from, i + 4);
                i += 4;
                dropped = true;
            } else if self.options.empty && matches!(input.get(i), Some(b'{' | b'[')) {
                self.flush(drop_from);
                let written = self.out.len();
                let (end, empty) = self.value(i, depth, child)?;
                if empty {
                    self.out.truncate(written);
                    self.mark = end;
                }
                i = end;
                dropped = empty;
            } else {
                i = self.value(i, depth, child)?.0;
                dropped = false;
            }
            if !dropped {
                kept += 1;
            }
            i = scan::skip_ws(input, i);
            match scan::peek(input, i)? {
                b',' => {
                    if kept == 0 {
                        self.drop_span(i, i + 1);
                    }
                    comma = i;
                    i = scan::skip_ws(input, i + 1);
                }
                b'}' => return Ok((i + 1, kept == 0)),
                _ => return Err(Malformed { offset: i }),
            }
        }
    }

    fn array(&mut self, pos: usize, depth: usize, live: u64) -> Result<(usize, bool), Malformed> {
        if depth > scan::MAX_DEPTH {
            return Err(Malformed { offset: pos });
        }
        let input = self.input;
        let mut i = scan::skip_ws(input, pos + 1);
        if scan::peek(input, i)? == b']' {
            return Ok((i + 1, true));
        }
        let mut kept = 0usize;
        let mut comma = 0usize;
        let mut index = 0usize;
        loop {
            let (child, keep_here) = if live == 0 {
                (0, false)
            } else {
                self.descend(live, depth - 1, Step::Index(index))
            };
            let dropped;
            if keep_here {
                i = scan::value_end(input, i, depth)?;
                dropped = false;
            } else if self.options.arrays && scan::is_null(input, i) {
                let drop_from = if kept > 0 { comma } else { i };
                self.drop_span(drop_from, i + 4);
                i += 4;
                dropped = true;
            } else {
                i = self.value(i, depth, child)?.0;
                dropped = false;
            }
            if !dropped {
                kept += 1;
            }
            index += 1;
            i = scan::skip_ws(input, i);
            match scan::peek(input, i)? {
                b',' => {
                    if kept == 0 {
                        self.drop_span(i, i + 1);
                    }
                    comma = i;
                    i = scan::skip_ws(input, i + 1);
                }
                b']' => return Ok((i + 1, kept == 0)),
                _ => return Err(Malformed { offset: i }),
            }
        }
    }

    /// Matches one step against the live keep paths: the paths still live below it, and
    /// whether one of them ends here (everything below is kept as is).
    fn descend(&self, live: u64, level: usize, step: Step<'_>) -> (u64, bool) {
        let mut child = 0u64;
        let mut keep_here = false;
        for (n, path) in self.options.keep.iter().enumerate() {
            if live & (1 << n) == 0 {
                continue;
            }
            let matched = match (&path[level], step) {
                (Segment::Any, _) => true,
                (Segment::Key(key), Step::Key(token)) => scan::string_eq(token, key),
                (Segment::Key(key), Step::Index(index)) => key.parse::<usize>() == Ok(index),
            };
            if !matched {
                continue;
            }
            if path.len() == level + 1 {
                keep_here = true;
            } else {
                child |= 1 << n;
            }
        }
        (child, keep_here)
    }
}

#[derive(Clone, Copy)]
enum Step<'a> {
    Key(&'a [u8]),
    Index(usize),
}

fn parse_pointer(path: &str) -> Result<Vec<Segment>, ConfigError> {
    if path.is_empty() {
        return Ok(Vec::new());
    }
    let Some(rest) = path.strip_prefix('/') else {
        return Err(ConfigError::InvalidKeepPath {
            path: path.to_owned(),
            reason: "a JSON Pointer starts with '/'",
        });
    };
    let mut segments = Vec::new();
    for raw in rest.split('/') {
        if raw == "*" {
            segments.push(Segment::Any);
            continue;
        }
        let mut key = String::with_capacity(raw.len());
        let mut chars = raw.chars();
        while let Some(c) = chars.next() {
            if c != '~' {
                key.push(c);
                continue;
            }
            match chars.next() {
                Some('0') => key.push('~'),
                Some('1') => key.push('/'),
                _ => {
                    return Err(ConfigError::InvalidKeepPath {
                        path: path.to_owned(),
                        reason: "'~' must be followed by 0 or 1",
                    });
                }
            }
        }
        segments.push(Segment::Key(key));
    }
    Ok(segments)
}
