//! A validating byte-level JSON scanner: the building block of every streaming transform.
//!
//! The functions here take the whole document as `&[u8]` and a position, and return the
//! position just past the token they recognised. They validate as they go (RFC 8259 grammar,
//! UTF-8 inside strings, nesting depth up to [`MAX_DEPTH`]) but never build values, so a
//! transform can copy spans of the input verbatim: numbers and strings keep the exact bytes
//! the upstream wrote.
//!
//! ```
//! use towerkit_json::scan;
//!
//! let doc = br#"{"a": [1, 2.5e3, "x"], "b": null}"#;
//! assert_eq!(scan::value_end(doc, 0, 0), Ok(doc.len()));
//! assert!(scan::validate(b"{\"a\": }").is_err());
//! ```

use std::fmt;

/// Nesting deeper than this is treated as malformed: the bound serde_json applies, so both
/// accept the same documents.
pub const MAX_DEPTH: usize = 127;

/// The input is not a well-formed JSON document; `offset` is where the scanner gave up.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Malformed {
    /// Byte offset into the input.
    pub offset: usize,
}

impl fmt::Display for Malformed {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "malformed JSON at byte {}", self.offset)
    }
}

impl std::error::Error for Malformed {}

/// The result of a scanning step: the position just past the token.
pub type Scan = Result<usize, Malformed>;

/// Checks that `input` holds exactly one JSON value, with optional surrounding whitespace.
pub fn validate(input: &[u8]) -> Result<(), Malformed> {
    let start = skip_ws(input, 0);
    let end = value_end(input, start, 0)?;
    expect_end(input, end)
}

/// Checks that only whitespace follows `pos`.
pub fn expect_end(input: &[u8], pos: usize) -> Result<(), Malformed> {
    let end = skip_ws(input, pos);
    if end == input.len() {
        Ok(())
    } else {
        Err(Malformed { offset: end })
    }
}

/// Skips JSON whitespace (space, tab, line feed, carriage return) from `pos`.
#[inline]
pub fn skip_ws(input: &[u8], mut pos: usize) -> usize {
    while let Some(&b) = input.get(pos) {
        if !matches!(b, b' ' | b'\n' | b'\r' | b'\t') {
            break;
        }
        pos += 1;
    }
    pos
}

/// Returns the byte at `pos`, or an error at the end of the input.
#[inline]
pub fn peek(input: &[u8], pos: usize) -> Result<u8, Malformed> {
    input.get(pos).copied().ok_or(Malformed { offset: pos })
}

/// Expects `byte` at `pos` and returns the position after it.
#[inline]
pub fn expect(input: &[u8], pos: usize, byte: u8) -> Scan {
    if input.get(pos) == Some(&byte) {
        Ok(pos + 1)
    } else {
        Err(Malformed { offset: pos })
    }
}

/// Scans any JSON value starting exactly at `pos` (no leading whitespace) and returns the
/// position just past it. `depth` is the nesting depth of the value's container.
#[inline]
pub fn value_end(input: &[u8], pos: usize, depth: usize) -> Scan {
    match peek(input, pos)? {
        b'"' => string_end(input, pos),
        b'{' => object_end(input, pos, depth + 1),
        b'[' => array_end(input, pos, depth + 1),
        b't' => literal_end(input, pos, b"true"),
        b'f' => literal_end(input, pos, b"false"),
        b'n' => literal_end(input, pos, b"null"),
        b'-' | b'0'..=b'9' => number_end(input, pos),
        _ => Err(Malformed { offset: pos }),
    }
}

/// Scans the literal `word` (`true`, `false` or `null`) at `pos`.
#[inline]
pub fn literal_end(input: &[u8], pos: usize, word: &[u8]) -> Scan {
    let end = pos + word.len();
    if input.get(pos..end) == Some(word) {
        Ok(end)
    } else {
        Err(Malformed { offset: pos })
    }
}

/// Whether the value at `pos` is the literal `null` (validated).
#[inline]
pub fn is_null(input: &[u8], pos: usize) -> bool {
    input.get(pos..pos + 4) == Some(b"null")
}

/// Scans a string whose opening quote is at `pos`; returns the position after the closing
/// quote. Escapes are checked, raw control characters rejected, and UTF-8 validated.
#[inline]
pub fn string_end(input: &[u8], pos: usize) -> Scan {
    debug_assert_eq!(input.get(pos), Some(&b'"'));
    let mut i = pos + 1;
    let mut non_ascii = 0u64;
    loop {
        // Eight bytes at a time until a quote, a backslash or a control character shows up.
        while let Some(chunk) = input.get(i..i + 8) {
            let mut word = [0u8; 8];
            word.copy_from_slice(chunk);
            let word = u64::from_le_bytes(word);
            non_ascii |= word;
            let special = special_bytes(word);
            if special != 0 {
                i += (special.trailing_zeros() / 8) as usize;
                break;
            }
            i += 8;
        }
        let Some(&b) = input.get(i) else {
            return Err(Malformed { offset: i });
        };
        match b {
            b'"' => {
                if non_ascii & 0x8080_8080_8080_8080 != 0 {
                    std::str::from_utf8(&input[pos + 1..i]).map_err(|e| Malformed {
                        offset: pos + 1 + e.valid_up_to(),
                    })?;
                }
                return Ok(i + 1);
            }
            b'\\' => i = escape_end(input, i)?,
            0..=0x1f => return Err(Malformed { offset: i }),
            _ => {
                non_ascii |= u64::from(b);
                i += 1;
            }
        }
    }
}

/// Scans a number at `pos` per RFC 8259: `-? (0 | [1-9][0-9]*) (.[0-9]+)? ([eE][+-]?[0-9]+)?`.
#[inline]
pub fn number_end(input: &[u8], pos: usize) -> Scan {
    let mut i = pos;
    if input.get(i) == Some(&b'-') {
        i += 1;
    }
    match input.get(i) {
        Some(b'0') => i += 1,
        Some(b'1'..=b'9') => i = digits_end(input, i + 1),
        _ => return Err(Malformed { offset: i }),
    }
    if input.get(i) == Some(&b'.') {
        let start = i + 1;
        i = digits_end(input, start);
        if i == start {
            return Err(Malformed { offset: i });
        }
    }
    if matches!(input.get(i), Some(b'e' | b'E')) {
        i += 1;
        if matches!(input.get(i), Some(b'+' | b'-')) {
            i += 1;
        }
        let start = i;
        i = digits_end(input, start);
        if i == start {
            return Err(Malformed { offset: i });
        }
    }
    Ok(i)
}

/// Scans an object whose `{` is at `pos`. `depth` counts this object.
pub fn object_end(input: &[u8], pos: usize, depth: usize) -> Scan {
    if depth > MAX_DEPTH {
        return Err(Malformed { offset: pos });
    }
    let mut i = skip_ws(input, pos + 1);
    if peek(input, i)? == b'}' {
        return Ok(i + 1);
    }
    loop {
        if peek(input, i)? != b'"' {
            return Err(Malformed { offset: i });
        }
        i = string_end(input, i)?;
        i = skip_ws(input, i);
        i = expect(input, i, b':')?;
        i = skip_ws(input, i);
        i = value_end(input, i, depth)?;
        i = skip_ws(input, i);
        match peek(input, i)? {
            b',' => i = skip_ws(input, i + 1),
            b'}' => return Ok(i + 1),
            _ => return Err(Malformed { offset: i }),
        }
    }
}

/// Scans an array whose `[` is at `pos`. `depth` counts this array.
pub fn array_end(input: &[u8], pos: usize, depth: usize) -> Scan {
    if depth > MAX_DEPTH {
        return Err(Malformed { offset: pos });
    }
    let mut i = skip_ws(input, pos + 1);
    if peek(input, i)? == b']' {
        return Ok(i + 1);
    }
    loop {
        i = value_end(input, i, depth)?;
        i = skip_ws(input, i);
        match peek(input, i)? {
            b',' => i = skip_ws(input, i + 1),
            b']' => return Ok(i + 1),
            _ => return Err(Malformed { offset: i }),
        }
    }
}

/// Compares the raw contents of the string token `token` (quotes included, as found in the
/// input) with `text`, decoding escapes when the token has any.
pub fn string_eq(token: &[u8], text: &str) -> bool {
    let Some(inner) = token.get(1..token.len().saturating_sub(1)) else {
        return false;
    };
    if !inner.contains(&b'\\') {
        return inner == text.as_bytes();
    }
    serde_json::from_slice::<String>(token).is_ok_and(|decoded| decoded == text)
}

/// Bytes that end the fast string loop: `"`, `\` and anything below 0x20.
/// Only the lowest flagged byte is exact, which is all the caller uses.
#[inline]
fn special_bytes(word: u64) -> u64 {
    const ONES: u64 = 0x0101_0101_0101_0101;
    const HIGH: u64 = 0x8080_8080_8080_8080;
    let quote = word ^ (ONES * u64::from(b'"'));
    let backslash = word ^ (ONES * u64::from(b'\\'));
    let zero_quote = quote.wrapping_sub(ONES) & !quote;
    let zero_backslash = backslash.wrapping_sub(ONES) & !backslash;
    let control = word.wrapping_sub(ONES * 0x20) & !word;
    (zero_quote | zero_backslash | control) & HIGH
}

#[inline]
fn digits_end(input: &[u8], mut pos: usize) -> usize {
    while matches!(input.get(pos), Some(b'0'..=b'9')) {
        pos += 1;
    }
    pos
}

fn escape_end(input: &[u8], pos: usize) -> Scan {
    match input.get(pos + 1) {
        Some(b'"' | b'\\' | b'/' | b'b' | b'f' | b'n' | b'r' | b't') => Ok(pos + 2),
        Some(b'u') => {
            // Surrogates must come in pairs (high then low), as serde_json and most JSON
            // decoders require; a lone one makes the document malformed.
            let unit = hex4(input, pos + 2).ok_or(Malformed { offset: pos })?;
            match unit {
                0xD800..=0xDBFF => {
                    let low = (input.get(pos + 6..pos + 8) == Some(b"\\u"))
                        .then(|| hex4(input, pos + 8))
                        .flatten();
                    match low {
                        Some(0xDC00..=0xDFFF) => Ok(pos + 12),
                        _ => Err(Malformed { offset: pos }),
                    }
                }
                0xDC00..=0xDFFF => Err(Malformed { offset: pos }),
                _ => Ok(pos + 6),
            }
        }
        _ => Err(Malformed { offset: pos }),
    }
}

/// The value of four hex digits at `pos`.
fn hex4(input: &[u8], pos: usize) -> Option<u16> {
    let digits = input.get(pos..pos + 4)?;
    digits.iter().try_fold(0u16, |acc, &d| {
        Some(acc << 4 | (d as char).to_digit(16)? as u16)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ok(doc: &str) {
        assert_eq!(validate(doc.as_bytes()), Ok(()), "{doc:?} should be valid");
        assert!(
            serde_json::from_str::<serde_json::Value>(doc).is_ok(),
            "serde disagrees on {doc:?}"
        );
    }

    fn bad(doc: &[u8]) {
        assert!(
            validate(doc).is_err(),
            "{:?} should be malformed",
            String::from_utf8_lossy(doc)
        );
        assert!(
            serde_json::from_slice::<serde_json::Value>(doc).is_err(),
            "serde disagrees on {doc:?}"
        );
    }

    #[test]
    fn accepts_well_formed_documents() {
        for doc in [
            "null",
            " true ",
            "false",
            "0",
            "-0",
            "-12.5e+3",
            "1E5",
            "0.000001",
            r#""""#,
            r#""a\"b\\c\/\b\f\n\r\t\u00e9""#,
            r#""\ud83d\ude00 is a pair""#,
            r#""ünïcødé 😀 and a long enough string to use the word loop""#,
            "[]",
            "{}",
            r#"{"a":[1,{"b":null}],"c":"d"}"#,
            "\n[ 1 , 2 ,\t3 ]\r\n",
        ] {
            ok(doc);
        }
    }

    #[test]
    fn rejects_malformed_documents() {
        for doc in [
            &b""[..],
            b"nul",
            b"01",
            b"1.",
            b"1e",
            b"-",
            b"+1",
            b".5",
            b"\"abc",
            b"\"a\\x\"",
            b"\"\\u12g4\"",
            br#""\ud800""#,
            br#""\udc00\ud800""#,
            br#""\ud800\u0041""#,
            b"\"tab\there\"",
            b"\"\xff\xfe\"",
            b"[1,]",
            b"[1 2]",
            b"{\"a\" 1}",
            b"{\"a\":1,}",
            b"{a:1}",
            b"{} {}",
            b"[",
            b"{\"a\":",
        ] {
            bad(doc);
        }
    }

    #[test]
    fn rejects_nesting_beyond_the_limit() {
        let deep = "[".repeat(MAX_DEPTH + 1) + &"]".repeat(MAX_DEPTH + 1);
        assert!(validate(deep.as_bytes()).is_err());
        let fine = "[".repeat(MAX_DEPTH) + &"]".repeat(MAX_DEPTH);
        assert_eq!(validate(fine.as_bytes()), Ok(()));
    }

    #[test]
    fn finds_specials_at_every_offset_of_the_word_loop() {
        for offset in 0..20 {
            let mut doc = String::from("\"");
            doc.push_str(&"x".repeat(offset));
            doc.push_str("\\n");
            doc.push_str(&"y".repeat(offset));
            doc.push('"');
            assert_eq!(string_end(doc.as_bytes(), 0), Ok(doc.len()), "{doc}");
            let raw = format!("\"{}\u{1}{}\"", "x".repeat(offset), "y".repeat(offset));
            assert!(string_end(raw.as_bytes(), 0).is_err(), "{raw:?}");
        }
    }

    #[test]
    fn compares_escaped_keys_decoded() {
        assert!(string_eq(br#""name""#, "name"));
        assert!(string_eq(br#""n\u0061me""#, "name"));
        assert!(!string_eq(br#""nam""#, "name"));
    }
}
