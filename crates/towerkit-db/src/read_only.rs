//! [`is_plain_read`]: whether a statement only reads, so that explaining it is harmless.
//!
//! The check reads the statement's words outside comments, string literals, quoted
//! identifiers and dollar-quoted bodies. It is deliberately conservative: a statement is a
//! plain read when it starts with `SELECT` or `WITH` and no word in it writes, locks or
//! creates (`INSERT`, `UPDATE`, `DELETE`, `MERGE`, `INTO`, `COPY`, ...). A read it refuses
//! (a column really named `update`, `FOR UPDATE`) only goes unexplained.

/// Words that make a statement anything but a plain read: data-modifying CTEs, `SELECT
/// INTO`, locking clauses (`FOR UPDATE`, `FOR NO KEY UPDATE`, `FOR SHARE`, `FOR KEY
/// SHARE`), and statements that are not queries.
const REFUSED: &[&str] = &[
    "INSERT", "UPDATE", "DELETE", "MERGE", "INTO", "COPY", "SHARE", "TRUNCATE", "CALL", "DO",
    "EXECUTE", "LOCK", "ALTER", "CREATE", "DROP", "GRANT", "REVOKE", "NOTIFY", "VACUUM", "ANALYZE",
    "EXPLAIN", "SET", "RESET",
];

/// Whether `sql` is one plain `SELECT` (or `WITH ... SELECT` without data-modifying
/// parts): the only statements a plan is captured for.
pub(crate) fn is_plain_read(sql: &str) -> bool {
    let Some(words) = words(sql) else {
        return false;
    };
    let mut words = words.into_iter();
    match words.next() {
        Some(first)
            if first.eq_ignore_ascii_case("SELECT") || first.eq_ignore_ascii_case("WITH") => {}
        _ => return false,
    }
    words.all(|word| {
        !REFUSED
            .iter()
            .any(|refused| word.eq_ignore_ascii_case(refused))
    })
}

/// The bare words of `sql` (keywords and unquoted identifiers), or `None` when it cannot
/// be read with confidence: an unterminated literal or comment, or a second statement
/// after a `;`.
fn words(sql: &str) -> Option<Vec<&str>> {
    let bytes = sql.as_bytes();
    let mut words = Vec::new();
    let mut ended = false;
    let mut i = 0;
    while i < bytes.len() {
        let byte = bytes[i];
        if byte.is_ascii_whitespace() {
            i += 1;
            continue;
        }
        if ended {
            // Only blanks and comments may follow the statement's `;`.
            if !(byte == b'-' || byte == b'/') {
                return None;
            }
        }
        match byte {
            b'-' if bytes.get(i + 1) == Some(&b'-') => {
                i = sql[i..].find('\n').map_or(bytes.len(), |end| i + end + 1);
            }
            b'/' if bytes.get(i + 1) == Some(&b'*') => i = block_comment_end(bytes, i)?,
            b'\'' => i = quoted_end(bytes, i, b'\'', escapes_backslash(bytes, i))?,
            b'"' => i = quoted_end(bytes, i, b'"', false)?,
            b'$' => i = dollar_end(sql, i)?,
            b';' => {
                ended = true;
                i += 1;
            }
            _ if ended => return None,
            _ if byte.is_ascii_alphabetic() || byte == b'_' || !byte.is_ascii() => {
                let start = i;
                while i < bytes.len()
                    && (bytes[i].is_ascii_alphanumeric()
                        || bytes[i] == b'_'
                        || bytes[i] == b'$'
                        || !bytes[i].is_ascii())
                {
                    i += 1;
                }
                // `E'...'` and `U&'...'` prefixes belong to the literal that follows.
                words.push(&sql[start..i]);
            }
            _ => i += 1,
        }
    }
    Some(words)
}

/// Whether the literal at `quote` is an `E'...'` string, where a backslash escapes.
fn escapes_backslash(bytes: &[u8], quote: usize) -> bool {
    quote > 0
        && matches!(bytes[quote - 1], b'E' | b'e')
        && (quote < 2 || !(bytes[quote - 2].is_ascii_alphanumeric() || bytes[quote - 2] == b'_'))
}

/// The index after the literal or identifier opened by `quote` at `start` (a doubled quote
/// stands for itself).
fn quoted_end(bytes: &[u8], start: usize, quote: u8, backslash: bool) -> Option<usize> {
    let mut i = start + 1;
    while i < bytes.len() {
        match bytes[i] {
            b'\\' if backslash => i += 2,
            byte if byte == quote => {
                if bytes.get(i + 1) == Some(&quote) {
                    i += 2;
                } else {
                    return Some(i + 1);
                }
            }
            _ => i += 1,
        }
    }
    None
}

/// The index after the (nested) block comment at `start`.
fn block_comment_end(bytes: &[u8], start: usize) -> Option<usize> {
    let mut depth = 0_usize;
    let mut i = start;
    while i + 1 < bytes.len() {
        match (bytes[i], bytes[i + 1]) {
            (b'/', b'*') => {
                depth += 1;
                i += 2;
            }
            (b'*', b'/') => {
                depth -= 1;
                i += 2;
                if depth == 0 {
                    return Some(i);
                }
            }
            _ => i += 1,
        }
    }
    None
}

/// The index after the dollar-quoted body at `start` (`$tag$ ... $tag$`), or after a
/// parameter (`$1`).
fn dollar_end(sql: &str, start: usize) -> Option<usize> {
    let rest = &sql[start + 1..];
    let tag_len = rest
        .bytes()
        .take_while(|b| b.is_ascii_alphanumeric() || *b == b'_')
        .count();
    let tag = &rest[..tag_len];
    if rest.as_bytes().get(tag_len) != Some(&b'$')
        || tag.bytes().next().is_some_and(|b| b.is_ascii_digit())
    {
        // A parameter such as `$1`, or a lone `$`.
        return Some(start + 1 + tag_len);
    }
    let delimiter = &sql[start..start + tag_len + 2];
    let body = start + delimiter.len();
    sql[body..]
        .find(delimiter)
        .map(|end| body + end + delimiter.len())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_reads_are_explained() {
        for sql in [
            "SELECT * FROM products WHERE id = $1",
            "  select name from products order by name limit $1",
            "WITH recent AS (SELECT * FROM orders WHERE at > now() - interval '1 day') SELECT count(*) FROM recent",
            "SELECT 'INSERT INTO t VALUES (1)' AS text, \"update\" FROM t",
            "SELECT $$ DELETE FROM t $$, $body$ UPDATE $body$ -- DELETE\n FROM t /* MERGE /* nested */ INTO */",
            "SELECT E'it\\'s INTO' FROM t;",
            "SELECT * FROM t; -- done",
        ] {
            assert!(is_plain_read(sql), "{sql}");
        }
    }

    #[test]
    fn writes_locks_and_other_statements_are_not() {
        for sql in [
            "INSERT INTO t VALUES ($1)",
            "UPDATE t SET a = $1",
            "DELETE FROM t",
            "MERGE INTO t USING s ON t.id = s.id WHEN MATCHED THEN DELETE",
            "WITH gone AS (DELETE FROM t RETURNING *) SELECT * FROM gone",
            "with moved as (insert into t select * from s returning id) select count(*) from moved",
            "WITH x AS (UPDATE t SET a = 1 RETURNING a) SELECT a FROM x",
            "SELECT * INTO new_table FROM t",
            "SELECT * FROM t FOR UPDATE",
            "SELECT * FROM t FOR SHARE",
            "CREATE TABLE t (a int)",
            "EXPLAIN SELECT 1",
            "VALUES (1)",
            "BEGIN",
            "SELECT 1; DELETE FROM t",
            "SELECT 'unterminated",
            "SELECT /* unterminated",
            "SELECT $x$ unterminated",
            "",
        ] {
            assert!(!is_plain_read(sql), "{sql}");
        }
    }
}
