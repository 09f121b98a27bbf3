//! A small SQL tokenizer that derives a query's low-cardinality summary (`SELECT products`)
//! and a normalized text with literals replaced by `?`, for labels and slow-query logs.
//!
//! It is not a parser: it knows PostgreSQL's lexical rules (comments, string and
//! dollar-quoted literals, quoted identifiers, `$n` parameters) and a handful of statement
//! shapes, which is all a summary needs.

/// The longest collection name kept in a summary; longer names are cut (at a character
/// boundary) so a label stays short.
const MAX_COLLECTION_LEN: usize = 64;

/// The longest normalized SQL text kept for logs; longer texts end in `…`.
pub(crate) const MAX_NORMALIZED_LEN: usize = 2048;

/// What a SQL statement does, derived from its text: the operation keyword and the main
/// table, as OpenTelemetry's `db.operation.name` and `db.collection.name`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct SqlSummary {
    /// The statement's keyword, upper-cased (`SELECT`, `INSERT`, …); `OTHER` when the text
    /// has none.
    pub(crate) operation: String,
    /// The main table (`products`, `shop.orders`), if the statement names one. Unquoted
    /// identifiers are lower-cased as PostgreSQL folds them.
    pub(crate) collection: Option<String>,
}

impl SqlSummary {
    /// `OPERATION collection`, or just `OPERATION`: the `db.query.summary` label.
    pub(crate) fn text(&self) -> String {
        match &self.collection {
            Some(collection) => format!("{} {collection}", self.operation),
            None => self.operation.clone(),
        }
    }
}

/// Derives the summary of `sql`.
pub(crate) fn summarize(sql: &str) -> SqlSummary {
    let tokens: Vec<(Token<'_>, usize)> = Tokens::new(sql).with_depth().collect();
    let Some(first) = tokens
        .iter()
        .position(|(token, _)| matches!(token, Token::Word(_)))
    else {
        return SqlSummary {
            operation: "OTHER".to_owned(),
            collection: None,
        };
    };
    let depth = tokens[first].1;
    let mut index = first;
    let mut operation = keyword(&tokens[first].0);
    if operation == "WITH" {
        // The main statement is the first statement keyword outside the CTE bodies, which
        // are all in parentheses.
        let main = (first + 1..tokens.len()).find(|&i| {
            tokens[i].1 == depth
                && matches!(
                    keyword(&tokens[i].0).as_str(),
                    "SELECT" | "INSERT" | "UPDATE" | "DELETE" | "MERGE"
                )
        });
        if let Some(main) = main {
            index = main;
            operation = keyword(&tokens[main].0);
        }
    }
    let collection = match operation.as_str() {
        "SELECT" | "DELETE" => after_keyword(&tokens, index, depth, "FROM"),
        "INSERT" | "MERGE" => after_keyword(&tokens, index, depth, "INTO"),
        "UPDATE" | "TRUNCATE" | "COPY" => name_at(&tokens, index + 1),
        _ => None,
    };
    if operation.len() > 16 || !operation.bytes().all(|b| b.is_ascii_alphabetic()) {
        operation = "OTHER".to_owned();
    }
    SqlSummary {
        operation,
        collection,
    }
}

/// Rewrites `sql` for logs: comments dropped, whitespace collapsed, string and numeric
/// literals replaced by `?` (so no inline value reaches a log), `$n` parameters kept.
/// The result is cut at [`MAX_NORMALIZED_LEN`] bytes.
pub(crate) fn normalize(sql: &str) -> String {
    let mut out = String::with_capacity(sql.len().min(MAX_NORMALIZED_LEN));
    let mut tokens = Tokens::new(sql);
    while let Some(token) = tokens.next() {
        let text = match token {
            Token::Word(text) | Token::Quoted(text) | Token::Param(text) | Token::Punct(text) => {
                text
            }
            Token::Literal => "?",
        };
        // Whitespace and comments between two tokens become one space.
        if tokens.gap && !out.is_empty() {
            out.push(' ');
        }
        out.push_str(text);
        if out.len() > MAX_NORMALIZED_LEN {
            let mut cut = MAX_NORMALIZED_LEN;
            while !out.is_char_boundary(cut) {
                cut -= 1;
            }
            out.truncate(cut);
            out.push('…');
            break;
        }
    }
    out
}

/// One lexical token of SQL text.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Token<'a> {
    /// A keyword or unquoted identifier.
    Word(&'a str),
    /// A quoted identifier, quotes included.
    Quoted(&'a str),
    /// A string, bit-string or numeric literal.
    Literal,
    /// A positional parameter, `$1`.
    Param(&'a str),
    /// Any other character or operator.
    Punct(&'a str),
}

fn keyword(token: &Token<'_>) -> String {
    match token {
        Token::Word(word) => word.to_ascii_uppercase(),
        _ => String::new(),
    }
}

/// The table named after the first `keyword` at `depth` following `start`, within the
/// statement at that depth.
fn after_keyword(
    tokens: &[(Token<'_>, usize)],
    start: usize,
    depth: usize,
    wanted: &str,
) -> Option<String> {
    for i in start + 1..tokens.len() {
        let (token, token_depth) = &tokens[i];
        if *token_depth < depth || matches!(token, Token::Punct(";")) {
            return None;
        }
        if *token_depth == depth
            && matches!(token, Token::Word(word) if word.eq_ignore_ascii_case(wanted))
        {
            return name_at(tokens, i + 1);
        }
    }
    None
}

/// The (possibly schema-qualified) name starting at `index`, skipping `ONLY`, `TABLE` and
/// `LATERAL`; `None` for a subquery or anything that is not a name.
fn name_at(tokens: &[(Token<'_>, usize)], mut index: usize) -> Option<String> {
    while let Some((Token::Word(word), _)) = tokens.get(index) {
        if ["ONLY", "TABLE", "LATERAL"]
            .iter()
            .any(|skip| word.eq_ignore_ascii_case(skip))
        {
            index += 1;
        } else {
            break;
        }
    }
    let mut name = String::new();
    loop {
        match tokens.get(index) {
            Some((Token::Word(word), _)) => name.push_str(&word.to_lowercase()),
            Some((Token::Quoted(quoted), _)) => {
                let inner = quoted.strip_prefix('"').unwrap_or(quoted);
                let inner = inner.strip_suffix('"').unwrap_or(inner);
                name.push_str(&inner.replace("\"\"", "\""));
            }
            _ => break,
        }
        if !matches!(tokens.get(index + 1), Some((Token::Punct("."), _))) {
            break;
        }
        name.push('.');
        index += 2;
    }
    if name.is_empty() || name.ends_with('.') {
        return None;
    }
    if name.len() > MAX_COLLECTION_LEN {
        let mut cut = MAX_COLLECTION_LEN;
        while !name.is_char_boundary(cut) {
            cut -= 1;
        }
        name.truncate(cut);
    }
    Some(name)
}

/// Splits SQL text into tokens, skipping whitespace and comments. Unterminated literals and
/// comments run to the end of the text.
struct Tokens<'a> {
    sql: &'a str,
    pos: usize,
    /// Whether whitespace or a comment came before the token last returned.
    gap: bool,
}

impl<'a> Tokens<'a> {
    fn new(sql: &'a str) -> Self {
        Self {
            sql,
            pos: 0,
            gap: false,
        }
    }

    /// Pairs each token with its parenthesis depth.
    fn with_depth(self) -> impl Iterator<Item = (Token<'a>, usize)> {
        let mut depth = 0usize;
        self.map(move |token| match token {
            Token::Punct("(") => {
                depth += 1;
                (token, depth - 1)
            }
            Token::Punct(")") => {
                depth = depth.saturating_sub(1);
                (token, depth)
            }
            _ => (token, depth),
        })
    }

    fn skip_trivia(&mut self) {
        let bytes = self.sql.as_bytes();
        loop {
            match bytes.get(self.pos) {
                Some(b) if b.is_ascii_whitespace() => self.pos += 1,
                Some(b'-') if bytes.get(self.pos + 1) == Some(&b'-') => {
                    self.pos = memchr_newline(bytes, self.pos);
                }
                Some(b'/') if bytes.get(self.pos + 1) == Some(&b'*') => {
                    // Block comments nest in PostgreSQL.
                    let mut level = 0usize;
                    while self.pos < bytes.len() {
                        if bytes[self.pos] == b'/' && bytes.get(self.pos + 1) == Some(&b'*') {
                            level += 1;
                            self.pos += 2;
                        } else if bytes[self.pos] == b'*' && bytes.get(self.pos + 1) == Some(&b'/')
                        {
                            level -= 1;
                            self.pos += 2;
                            if level == 0 {
                                break;
                            }
                        } else {
                            self.pos += 1;
                        }
                    }
                }
                _ => return,
            }
        }
    }

    /// Ends the quoted run opened at `start` by `quote`, where a doubled quote is an escaped
    /// one, and with `backslash` escapes when set (E'' strings).
    fn quoted_end(&self, start: usize, quote: u8, backslash: bool) -> usize {
        let bytes = self.sql.as_bytes();
        let mut i = start + 1;
        while i < bytes.len() {
            if backslash && bytes[i] == b'\\' {
                i += 2;
                continue;
            }
            if bytes[i] == quote {
                if bytes.get(i + 1) == Some(&quote) {
                    i += 2;
                    continue;
                }
                return i + 1;
            }
            i += 1;
        }
        bytes.len()
    }

    fn word_end(&self, start: usize) -> usize {
        let bytes = self.sql.as_bytes();
        let mut i = start;
        while i < bytes.len()
            && (bytes[i].is_ascii_alphanumeric()
                || bytes[i] == b'_'
                || bytes[i] == b'$'
                || bytes[i] >= 0x80)
        {
            i += 1;
        }
        i
    }
}

fn memchr_newline(bytes: &[u8], from: usize) -> usize {
    bytes[from..]
        .iter()
        .position(|&b| b == b'\n')
        .map_or(bytes.len(), |offset| from + offset)
}

fn is_word_start(b: u8) -> bool {
    b.is_ascii_alphabetic() || b == b'_' || b >= 0x80
}

impl<'a> Iterator for Tokens<'a> {
    type Item = Token<'a>;

    fn next(&mut self) -> Option<Token<'a>> {
        let before = self.pos;
        self.skip_trivia();
        self.gap = self.pos > before;
        let bytes = self.sql.as_bytes();
        let start = self.pos;
        let first = *bytes.get(start)?;
        let (end, token) = match first {
            b'\'' => (self.quoted_end(start, b'\'', false), Token::Literal),
            b'"' => {
                let end = self.quoted_end(start, b'"', false);
                (end, Token::Quoted(&self.sql[start..end]))
            }
            b'$' if bytes.get(start + 1).is_some_and(u8::is_ascii_digit) => {
                let mut end = start + 1;
                while end < bytes.len() && bytes[end].is_ascii_digit() {
                    end += 1;
                }
                (end, Token::Param(&self.sql[start..end]))
            }
            b'$' => match dollar_tag(bytes, start) {
                Some(tag_end) => {
                    let tag = &bytes[start..tag_end];
                    let body = &bytes[tag_end..];
                    let end = body
                        .windows(tag.len())
                        .position(|window| window == tag)
                        .map_or(bytes.len(), |offset| tag_end + offset + tag.len());
                    (end, Token::Literal)
                }
                None => (start + 1, Token::Punct(&self.sql[start..start + 1])),
            },
            b'0'..=b'9' => (number_end(bytes, start), Token::Literal),
            b'.' if bytes.get(start + 1).is_some_and(u8::is_ascii_digit) => {
                (number_end(bytes, start), Token::Literal)
            }
            b if is_word_start(b) => {
                let end = self.word_end(start);
                let word = &self.sql[start..end];
                // A one-letter prefix glued to a quote makes a string: E'..', B'..', X'..', N'..'.
                if end - start == 1 && bytes.get(end) == Some(&b'\'') && b"eEbBxXnN".contains(&b) {
                    (
                        self.quoted_end(end, b'\'', b == b'e' || b == b'E'),
                        Token::Literal,
                    )
                } else {
                    (end, Token::Word(word))
                }
            }
            b':' if bytes.get(start + 1) == Some(&b':') => {
                (start + 2, Token::Punct(&self.sql[start..start + 2]))
            }
            _ => {
                let len = self.sql[start..].chars().next().map_or(1, char::len_utf8);
                (start + len, Token::Punct(&self.sql[start..start + len]))
            }
        };
        self.pos = end.min(bytes.len());
        Some(token)
    }
}

/// The end of a dollar-quote opening tag (`$$` or `$tag$`) starting at `start`.
fn dollar_tag(bytes: &[u8], start: usize) -> Option<usize> {
    let mut i = start + 1;
    if bytes.get(i).is_some_and(|&b| is_word_start(b)) {
        while i < bytes.len()
            && (bytes[i].is_ascii_alphanumeric() || bytes[i] == b'_' || bytes[i] >= 0x80)
        {
            i += 1;
        }
    }
    (bytes.get(i) == Some(&b'$')).then_some(i + 1)
}

fn number_end(bytes: &[u8], start: usize) -> usize {
    let mut i = start;
    while i < bytes.len() {
        let b = bytes[i];
        let exponent_sign =
            (b == b'+' || b == b'-') && i > start && matches!(bytes[i - 1], b'e' | b'E');
        if b.is_ascii_alphanumeric() || b == b'.' || b == b'_' || exponent_sign {
            i += 1;
        } else {
            break;
        }
    }
    i
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn summarize_examples() {
        let summary = summarize("select id, name from Products where id = $1");
        assert_eq!(summary.text(), "SELECT products");
        assert_eq!(
            summarize("WITH t AS (SELECT 1) DELETE FROM shop.orders WHERE id IN (SELECT * FROM t)")
                .text(),
            "DELETE shop.orders"
        );
        assert_eq!(summarize("SELECT 1").text(), "SELECT");
    }

    #[test]
    fn normalize_example() {
        assert_eq!(
            normalize(
                "SELECT *\n  FROM users -- by mail\n WHERE email = 'bob@example.com' AND age > 40 AND id = $1"
            ),
            "SELECT * FROM users WHERE email = ? AND age > ? AND id = $1",
        );
    }

    fn check(sql: &str, expected: &str) {
        assert_eq!(summarize(sql).text(), expected, "summary of {sql:?}");
    }

    #[test]
    fn summarizes_common_statements() {
        check(
            "SELECT id, name FROM products WHERE id = $1",
            "SELECT products",
        );
        check(
            "select * from Products p join categories c on c.id = p.category_id",
            "SELECT products",
        );
        check("SELECT count(*) FROM shop.orders", "SELECT shop.orders");
        check("SELECT * FROM \"Order Items\"", "SELECT Order Items");
        check(
            "INSERT INTO products (name) VALUES ($1) RETURNING id",
            "INSERT products",
        );
        check("UPDATE ONLY products SET price = $1", "UPDATE products");
        check(
            "DELETE FROM sessions WHERE expires < now()",
            "DELETE sessions",
        );
        check(
            "MERGE INTO stock s USING incoming i ON s.id = i.id WHEN MATCHED THEN DO NOTHING",
            "MERGE stock",
        );
        check("TRUNCATE TABLE audit_log", "TRUNCATE audit_log");
        check("COPY products FROM STDIN", "COPY products");
        check("BEGIN", "BEGIN");
        check("SET statement_timeout = 5000", "SET");
    }

    #[test]
    fn select_without_a_table_is_just_the_operation() {
        check("SELECT 1", "SELECT");
        check("SELECT now()", "SELECT");
    }

    #[test]
    fn from_inside_parentheses_is_not_the_main_table() {
        check(
            "SELECT extract(year FROM created_at) FROM orders",
            "SELECT orders",
        );
        check("SELECT (SELECT max(id) FROM a) AS m FROM b", "SELECT b");
        check("SELECT * FROM (SELECT * FROM inner_t) sub", "SELECT");
    }

    #[test]
    fn with_statements_use_the_main_statement() {
        check(
            "WITH recent AS (SELECT * FROM orders) SELECT * FROM recent",
            "SELECT recent",
        );
        check(
            "with x as (select 1) insert into log select * from x",
            "INSERT log",
        );
        check(
            "WITH RECURSIVE t(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM t) SELECT n FROM t",
            "SELECT t",
        );
    }

    #[test]
    fn comments_and_literals_do_not_confuse_the_summary() {
        check(
            "/* from x */ -- from y\nSELECT 'FROM z' FROM real_table",
            "SELECT real_table",
        );
        check("SELECT $tag$ FROM fake $tag$ FROM t", "SELECT t");
        check("SELECT E'it\\'s FROM x' FROM t", "SELECT t");
        check(
            "/* nested /* comment */ FROM x */ SELECT 1 FROM t",
            "SELECT t",
        );
    }

    #[test]
    fn garbage_is_other() {
        check("", "OTHER");
        check("   ;  ", "OTHER");
        check("42", "OTHER");
        check("ünïcode FROM x", "OTHER");
    }

    #[test]
    fn long_collection_names_are_cut() {
        let name = "t".repeat(200);
        let summary = summarize(&format!("SELECT * FROM {name}"));
        assert_eq!(
            summary.collection.map(|c| c.len()),
            Some(MAX_COLLECTION_LEN)
        );
    }

    #[test]
    fn normalize_replaces_literals_and_keeps_parameters() {
        assert_eq!(
            normalize("INSERT INTO t (a, b, c) VALUES ('x''y', 3.5e-2, $2) -- c"),
            "INSERT INTO t (a, b, c) VALUES (?, ?, $2)"
        );
        assert_eq!(
            normalize("SELECT count(*)::int FROM t WHERE n IN (1, 2)"),
            "SELECT count(*)::int FROM t WHERE n IN (?, ?)"
        );
        assert_eq!(
            normalize("SELECT $$secret$$, E'pw\\'x', X'1F'"),
            "SELECT ?, ?, ?"
        );
    }

    #[test]
    fn normalize_never_echoes_a_string_literal() {
        let sql = "UPDATE users SET password = 'hunter2', note = $$also secret$$ WHERE id = 7";
        let normalized = normalize(sql);
        assert!(
            !normalized.contains("hunter2")
                && !normalized.contains("secret")
                && !normalized.contains('7'),
            "{normalized}"
        );
    }

    #[test]
    fn normalize_bounds_its_output() {
        let sql = format!("SELECT {} FROM t", "a, ".repeat(5000));
        let normalized = normalize(&sql);
        assert!(normalized.len() <= MAX_NORMALIZED_LEN + '…'.len_utf8());
        assert!(normalized.ends_with('…'));
    }

    #[test]
    fn unterminated_input_does_not_panic() {
        for sql in [
            "SELECT 'abc",
            "SELECT \"abc",
            "SELECT $q$ abc",
            "/* abc",
            "SELECT E'\\",
            "SELECT 1e+",
            "$",
            "::",
        ] {
            let _ = summarize(sql);
            let _ = normalize(sql);
        }
    }
}
