//! JSON Pointers to the array a layer works on, and the walk that copies a document up to it.

use std::fmt;
use std::sync::Arc;

use towerkit_json::scan::{self, Malformed};

use crate::error::ConfigError;

/// A JSON Pointer (RFC 6901) through object members, such as `/data` or `/result/items`;
/// the empty pointer `""` is the whole document. Array indices are not followed.
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct JsonPointer {
    segments: Arc<[String]>,
}

impl JsonPointer {
    /// The pointer to the whole document.
    pub fn root() -> Self {
        Self {
            segments: Arc::from(Vec::new()),
        }
    }

    /// Parses `/a/b` (with `~1` for `/` and `~0` for `~` inside a member name).
    pub fn parse(pointer: &str) -> Result<Self, ConfigError> {
        if pointer.is_empty() {
            return Ok(Self::root());
        }
        let invalid = || ConfigError::InvalidPointer(pointer.to_owned());
        let rest = pointer.strip_prefix('/').ok_or_else(invalid)?;
        let mut segments = Vec::new();
        for raw in rest.split('/') {
            let mut name = String::with_capacity(raw.len());
            let mut chars = raw.chars();
            while let Some(c) = chars.next() {
                if c != '~' {
                    name.push(c);
                    continue;
                }
                match chars.next() {
                    Some('0') => name.push('~'),
                    Some('1') => name.push('/'),
                    _ => return Err(invalid()),
                }
            }
            segments.push(name);
        }
        Ok(Self {
            segments: segments.into(),
        })
    }

    /// The member names from the root down.
    pub fn segments(&self) -> &[String] {
        &self.segments
    }

    /// Whether this is the pointer to the whole document.
    pub fn is_root(&self) -> bool {
        self.segments.is_empty()
    }

    pub(crate) fn from_segments(segments: Vec<String>) -> Self {
        Self {
            segments: segments.into(),
        }
    }
}

impl fmt::Display for JsonPointer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for segment in self.segments.iter() {
            write!(f, "/{}", segment.replace('~', "~0").replace('/', "~1"))?;
        }
        Ok(())
    }
}

impl fmt::Debug for JsonPointer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "JsonPointer({:?})", self.to_string())
    }
}

/// Why a transform left a document alone; the layers then send it unchanged.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum TransformError {
    /// The input is not well-formed JSON.
    Malformed(Malformed),
    /// Nothing to work on: no array at the pointer (or the pointer's member is duplicated).
    NoArray,
    /// The request's cursor holds a position this transform did not issue (a keyset
    /// cursor meant for a handler).
    ForeignCursor,
}

impl From<Malformed> for TransformError {
    fn from(error: Malformed) -> Self {
        Self::Malformed(error)
    }
}

impl fmt::Display for TransformError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Malformed(error) => error.fmt(f),
            Self::NoArray => f.write_str("no array at the configured JSON Pointer"),
            Self::ForeignCursor => f.write_str("the cursor does not hold an array position"),
        }
    }
}

impl std::error::Error for TransformError {}

impl TransformError {
    /// What a layer tells the JSON machinery when a transform left the document alone:
    /// any error sends the original body unchanged.
    pub(crate) fn into_malformed(self) -> Malformed {
        match self {
            Self::Malformed(malformed) => malformed,
            Self::NoArray | Self::ForeignCursor => Malformed { offset: 0 },
        }
    }
}

/// Writes the value at `pos` (whose container has nesting `depth`) and returns its end.
pub(crate) type Target<'a> =
    dyn FnMut(&mut Vec<u8>, usize, usize) -> Result<usize, TransformError> + 'a;

/// Extra members for the object that holds the target: one member name to drop, and a
/// writer for members appended before its closing brace (`"name":value`, no comma).
pub(crate) struct ParentEdit<'a> {
    pub(crate) drop: &'a str,
    pub(crate) append: &'a mut dyn FnMut(&mut Vec<u8>),
}

/// Copies the document `input` to `out`, handing the value at `segments` to `target`.
/// Members along the way are copied verbatim (whitespace between members is not kept).
/// The whole document is validated.
pub(crate) fn rewrite_at(
    input: &[u8],
    out: &mut Vec<u8>,
    segments: &[String],
    target: &mut Target<'_>,
    parent: Option<ParentEdit<'_>>,
) -> Result<(), TransformError> {
    let start = scan::skip_ws(input, 0);
    let mut parent = parent;
    let end = level(input, out, start, 0, segments, target, &mut parent)?;
    scan::expect_end(input, end)?;
    Ok(())
}

fn level(
    input: &[u8],
    out: &mut Vec<u8>,
    pos: usize,
    depth: usize,
    segments: &[String],
    target: &mut Target<'_>,
    parent: &mut Option<ParentEdit<'_>>,
) -> Result<usize, TransformError> {
    let Some((segment, rest)) = segments.split_first() else {
        return target(out, pos, depth);
    };
    if scan::peek(input, pos)? != b'{' {
        return Err(TransformError::NoArray);
    }
    let depth = depth + 1;
    if depth > scan::MAX_DEPTH {
        return Err(Malformed { offset: pos }.into());
    }
    let is_parent = rest.is_empty();
    out.push(b'{');
    let mut kept = 0usize;
    let mut found = false;
    let mut i = scan::skip_ws(input, pos + 1);
    if scan::peek(input, i)? == b'}' {
        return Err(TransformError::NoArray);
    }
    loop {
        if scan::peek(input, i)? != b'"' {
            return Err(Malformed { offset: i }.into());
        }
        let key_start = i;
        let key_end = scan::string_end(input, i)?;
        i = scan::skip_ws(input, key_end);
        i = scan::expect(input, i, b':')?;
        let value = scan::skip_ws(input, i);
        let key = &input[key_start..key_end];
        let end;
        if scan::string_eq(key, segment) {
            if found {
                return Err(TransformError::NoArray);
            }
            found = true;
            separate(out, &mut kept);
            out.extend_from_slice(&input[key_start..value]);
            end = level(input, out, value, depth, rest, target, parent)?;
        } else if is_parent
            && parent
                .as_ref()
                .is_some_and(|edit| scan::string_eq(key, edit.drop))
        {
            end = scan::value_end(input, value, depth)?;
        } else {
            end = scan::value_end(input, value, depth)?;
            separate(out, &mut kept);
            out.extend_from_slice(&input[key_start..end]);
        }
        i = scan::skip_ws(input, end);
        match scan::peek(input, i)? {
            b',' => i = scan::skip_ws(input, i + 1),
            b'}' => break,
            _ => return Err(Malformed { offset: i }.into()),
        }
    }
    if !found {
        return Err(TransformError::NoArray);
    }
    if is_parent && let Some(edit) = parent.as_mut() {
        separate(out, &mut kept);
        (edit.append)(out);
    }
    out.push(b'}');
    Ok(i + 1)
}

/// Writes the `,` before every kept member or element but the first, and counts it: the
/// one separator rule of the transforms that drop members (pagination, projection).
#[inline]
pub(crate) fn separate(out: &mut Vec<u8>, kept: &mut usize) {
    if *kept > 0 {
        out.push(b',');
    }
    *kept += 1;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_and_prints_pointers() {
        let pointer = JsonPointer::parse("/result/a~1b/c~0d").unwrap();
        assert_eq!(pointer.segments(), ["result", "a/b", "c~d"]);
        assert_eq!(pointer.to_string(), "/result/a~1b/c~0d");
        assert!(JsonPointer::parse("").unwrap().is_root());
        assert!(matches!(
            JsonPointer::parse("data"),
            Err(ConfigError::InvalidPointer(_))
        ));
        assert!(matches!(
            JsonPointer::parse("/a~2"),
            Err(ConfigError::InvalidPointer(_))
        ));
    }

    fn run(input: &str, pointer: &str) -> Result<String, TransformError> {
        let pointer = JsonPointer::parse(pointer).unwrap();
        let mut out = Vec::new();
        let mut target = |out: &mut Vec<u8>, pos: usize, depth: usize| {
            let end = scan::value_end(input.as_bytes(), pos, depth)?;
            out.extend_from_slice(b"\"X\"");
            Ok(end)
        };
        let mut append = |out: &mut Vec<u8>| out.extend_from_slice(b"\"meta\":1");
        let parent = ParentEdit {
            drop: "meta",
            append: &mut append,
        };
        rewrite_at(
            input.as_bytes(),
            &mut out,
            pointer.segments(),
            &mut target,
            Some(parent),
        )?;
        Ok(String::from_utf8(out).unwrap())
    }

    #[test]
    fn replaces_the_target_and_edits_its_parent() {
        assert_eq!(
            run(r#"{"a":{"meta":0,"b":[1],"c":2},"meta":3}"#, "/a/b").unwrap(),
            r#"{"a":{"b":"X","c":2,"meta":1},"meta":3}"#
        );
        assert_eq!(
            run(r#"{"b" : [1] , "z":null}"#, "/b").unwrap(),
            r#"{"b" : "X","z":null,"meta":1}"#
        );
    }

    #[test]
    fn missing_or_duplicated_targets_are_no_array() {
        assert_eq!(run(r#"{"a":1}"#, "/b"), Err(TransformError::NoArray));
        assert_eq!(run(r#"[1]"#, "/b"), Err(TransformError::NoArray));
        assert_eq!(run(r#"{}"#, "/b"), Err(TransformError::NoArray));
        assert_eq!(
            run(r#"{"b":[],"b":[]}"#, "/b"),
            Err(TransformError::NoArray)
        );
    }

    #[test]
    fn malformed_documents_are_errors() {
        assert!(matches!(
            run(r#"{"b":[1],"c":}"#, "/b"),
            Err(TransformError::Malformed(_))
        ));
        assert!(matches!(
            run(r#"{"b":[1]} x"#, "/b"),
            Err(TransformError::Malformed(_))
        ));
    }
}
