//! The `fields` grammar: Google's partial-response syntax with exclusions and `**`.
//!
//! ```text
//! expression := term ("," term)*
//! term       := "-"? path ("(" expression ")")?
//! path       := segment ("/" segment)*
//! segment    := name | "*" | "**"
//! name       := one or more characters other than , / ( ) * and whitespace
//! ```
//!
//! Whitespace is allowed around terms, commas and parentheses. `a(b,c/d)` means `a/b` and
//! `a/c/d`; `-a(b,c)` means `-a/b` and `-a/c`; an exclusion cannot contain another.

use std::fmt;

use towerkit_json::scan;

use super::config::FieldsConfig;

/// A parsed `fields` expression: which members of a JSON document to keep.
///
/// - `a` keeps member `a` whole; `a/b` keeps `a` with only its member `b`; `a(b,c)` is
///   `a/b,a/c`. Paths go through arrays: `items/id` keeps `id` in every element of `items`.
/// - `*` is any one member (`*/id`); `**` is any number of members, none included
///   (`**/id` keeps every `id` at any depth, and the objects leading to it).
/// - `-path` removes what `path` matches, after the includes, whatever the order:
///   `a,-a/b` is `a` without `b`. With exclusions only, everything else is kept.
/// - Parents of selected fields keep only the selected children; a scalar where an
///   object was needed is dropped; array elements stay (as `{}` if nothing in them is
///   selected); the document's top level, or each item of a pagination envelope, is
///   always kept. Unknown fields are ignored (strict mode in the layer: 400).
///
/// ```
/// use towerkit_paginate::Selection;
///
/// let selection = Selection::parse("id,name,category(name),-category/id").unwrap();
/// assert!(selection.keeps("category"));
/// assert!(!selection.keeps("price"));
/// assert_eq!(
///     Selection::parse("a(b,c").unwrap_err().to_string(),
///     "invalid fields expression at column 6: expected ')'"
/// );
/// ```
#[derive(Debug, Clone)]
pub struct Selection {
    expression: String,
    pub(crate) include: Trie,
    pub(crate) exclude: Trie,
}

/// A `fields` expression that could not be accepted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FieldsError {
    column: Option<usize>,
    message: String,
}

impl FieldsError {
    /// The 1-based character column where parsing stopped, for syntax errors.
    pub fn column(&self) -> Option<usize> {
        self.column
    }

    /// What is wrong, without the column.
    pub fn message(&self) -> &str {
        &self.message
    }
}

impl fmt::Display for FieldsError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.column {
            Some(column) => write!(
                f,
                "invalid fields expression at column {column}: {}",
                self.message
            ),
            None => write!(f, "invalid fields expression: {}", self.message),
        }
    }
}

impl std::error::Error for FieldsError {}

impl Selection {
    /// Parses `expression` with the default limits.
    pub fn parse(expression: &str) -> Result<Self, FieldsError> {
        Self::parse_with(expression, &FieldsConfig::default())
    }

    /// Parses `expression` with the limits of `config`.
    pub fn parse_with(expression: &str, config: &FieldsConfig) -> Result<Self, FieldsError> {
        let limits = &config.inner;
        if expression.len() > limits.max_length {
            return Err(FieldsError {
                column: None,
                message: format!("longer than {} bytes", limits.max_length),
            });
        }
        let mut parser = Parser {
            text: expression,
            pos: 0,
            max_depth: limits.max_depth,
            max_nodes: limits.max_nodes,
            include: Trie::new(),
            exclude: Trie::new(),
        };
        parser.list(&[], false, false)?;
        let Parser {
            mut include,
            mut exclude,
            ..
        } = parser;
        if include.nodes.len() == 1 {
            // Only exclusions: everything else is kept.
            include.nodes[0].terminal = true;
        }
        include.finish();
        exclude.finish();
        Ok(Self {
            expression: expression.to_owned(),
            include,
            exclude,
        })
    }

    /// The expression as given.
    pub fn expression(&self) -> &str {
        &self.expression
    }

    /// Whether the top-level member `name` is kept, whole or in part: what a handler
    /// checks to decide which columns to read.
    pub fn keeps(&self, name: &str) -> bool {
        let token = serde_json::to_vec(name).unwrap_or_default();
        let raw = &token[1..token.len().saturating_sub(1)];
        let escaped = raw.contains(&b'\\');
        let root = self.include.closure[0];
        let mut ignored = 0;
        let inc = self.include.step(root, &token, raw, escaped, &mut ignored);
        let selected = root & self.include.terminal != 0 || inc & self.include.terminal != 0;
        if !selected && inc == 0 {
            return false;
        }
        let exc = self
            .exclude
            .step(self.exclude.closure[0], &token, raw, escaped, &mut ignored);
        exc & self.exclude.terminal == 0
    }

    /// The names among `available` that [`keeps`](Self::keeps), in their order.
    pub fn columns<'a>(&self, available: impl IntoIterator<Item = &'a str>) -> Vec<&'a str> {
        available
            .into_iter()
            .filter(|name| self.keeps(name))
            .collect()
    }
}

/// One path segment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Seg {
    Root,
    Name(String),
    Any,
    Deep,
}

#[derive(Debug, Clone)]
pub(crate) struct Node {
    pub(crate) seg: Seg,
    pub(crate) terminal: bool,
    pub(crate) children: Vec<u8>,
    /// The path from the root, for messages (`a/b`).
    pub(crate) path: String,
}

/// The paths of one kind (includes or exclusions) as a tree, walked as a set of nodes
/// (a bit set: at most 128 nodes with the root).
#[derive(Debug, Clone)]
pub(crate) struct Trie {
    pub(crate) nodes: Vec<Node>,
    /// Nodes where a path ends.
    pub(crate) terminal: u128,
    /// `**` nodes, which stay matched whatever member follows.
    pub(crate) deep: u128,
    /// Per node: itself and the `**` nodes reachable from it without consuming a member.
    pub(crate) closure: Vec<u128>,
    /// Per node: its children that are names.
    pub(crate) names: Vec<u128>,
}

impl Trie {
    fn new() -> Self {
        let root = Node {
            seg: Seg::Root,
            terminal: false,
            children: Vec::new(),
            path: String::new(),
        };
        Self {
            nodes: vec![root],
            terminal: 0,
            deep: 0,
            closure: Vec::new(),
            names: Vec::new(),
        }
    }

    /// Whether the trie holds any path.
    pub(crate) fn is_empty(&self) -> bool {
        self.nodes.len() == 1 && !self.nodes[0].terminal
    }

    fn finish(&mut self) {
        let count = self.nodes.len();
        self.closure = vec![0; count];
        self.names = vec![0; count];
        // Children are created after their parents, so walking backwards sees them first.
        for n in (0..count).rev() {
            let node = &self.nodes[n];
            let mut closure = 1u128 << n;
            let mut names = 0u128;
            for &child in &node.children {
                let child = usize::from(child);
                match self.nodes[child].seg {
                    Seg::Deep => closure |= self.closure[child],
                    Seg::Name(_) => names |= 1 << child,
                    Seg::Any | Seg::Root => {}
                }
            }
            self.closure[n] = closure;
            self.names[n] = names;
            if node.terminal {
                self.terminal |= 1 << n;
            }
            if node.seg == Seg::Deep {
                self.deep |= 1 << n;
            }
        }
    }

    /// The nodes matched after the member `key` (its JSON token with quotes; `raw` its
    /// content, `escaped` whether that has escapes) from the nodes in `set`.
    #[inline]
    pub(crate) fn step(
        &self,
        set: u128,
        key: &[u8],
        raw: &[u8],
        escaped: bool,
        matched: &mut u128,
    ) -> u128 {
        let mut out = set & self.deep;
        let mut rest = set;
        while rest != 0 {
            let n = rest.trailing_zeros() as usize;
            rest &= rest - 1;
            for &child in &self.nodes[n].children {
                let child = usize::from(child);
                match &self.nodes[child].seg {
                    Seg::Name(name) => {
                        let hit = if escaped {
                            scan::string_eq(key, name)
                        } else {
                            raw == name.as_bytes()
                        };
                        if hit {
                            out |= self.closure[child];
                            *matched |= 1 << child;
                        }
                    }
                    Seg::Any => out |= self.closure[child],
                    Seg::Deep | Seg::Root => {}
                }
            }
        }
        out
    }

    /// The name children of every node in `set`.
    #[inline]
    pub(crate) fn names_below(&self, set: u128) -> u128 {
        let mut out = 0;
        let mut rest = set;
        while rest != 0 {
            let n = rest.trailing_zeros() as usize;
            rest &= rest - 1;
            out |= self.names[n];
        }
        out
    }

    /// The paths of the nodes in `set`, in node order.
    pub(crate) fn paths(&self, set: u128) -> impl Iterator<Item = &str> {
        self.nodes
            .iter()
            .enumerate()
            .filter(move |(n, _)| set & (1 << n) != 0)
            .map(|(_, node)| node.path.as_str())
    }
}

struct Parser<'a> {
    text: &'a str,
    pos: usize,
    max_depth: usize,
    max_nodes: usize,
    include: Trie,
    exclude: Trie,
}

impl Parser<'_> {
    fn error(&self, message: impl Into<String>) -> FieldsError {
        FieldsError {
            column: Some(self.text[..self.pos].chars().count() + 1),
            message: message.into(),
        }
    }

    fn peek(&self) -> Option<char> {
        self.text[self.pos..].chars().next()
    }

    fn skip_ws(&mut self) {
        while let Some(c) = self.peek().filter(|c| c.is_whitespace()) {
            self.pos += c.len_utf8();
        }
    }

    /// `term ("," term)*`, up to the end (top level) or a `)` left for the caller.
    fn list(&mut self, prefix: &[Seg], negated: bool, nested: bool) -> Result<(), FieldsError> {
        loop {
            self.term(prefix, negated)?;
            self.skip_ws();
            match self.peek() {
                Some(',') => self.pos += 1,
                Some(')') if nested => return Ok(()),
                Some(')') => return Err(self.error("unexpected ')'")),
                None if nested => return Err(self.error("expected ')'")),
                None => return Ok(()),
                Some(_) if nested => return Err(self.error("expected ',' or ')'")),
                Some(_) => return Err(self.error("expected ','")),
            }
        }
    }

    fn term(&mut self, prefix: &[Seg], negated: bool) -> Result<(), FieldsError> {
        self.skip_ws();
        let mut negated = negated;
        if self.peek() == Some('-') {
            if negated {
                return Err(self.error("an exclusion cannot contain another exclusion"));
            }
            negated = true;
            self.pos += 1;
        }
        let mut path = prefix.to_vec();
        loop {
            let segment = self.segment()?;
            path.push(segment);
            if path.len() > self.max_depth {
                return Err(self.error(format!(
                    "paths may be at most {} fields deep",
                    self.max_depth
                )));
            }
            if self.peek() != Some('/') {
                break;
            }
            self.pos += 1;
        }
        self.skip_ws();
        if self.peek() == Some('(') {
            self.pos += 1;
            self.list(&path, negated, true)?;
            // `list` returned at the ')'.
            self.pos += 1;
            return Ok(());
        }
        self.insert(&path, negated)
    }

    fn segment(&mut self) -> Result<Seg, FieldsError> {
        let start = self.pos;
        let segment = if self.text[self.pos..].starts_with("**") {
            self.pos += 2;
            Seg::Deep
        } else if self.peek() == Some('*') {
            self.pos += 1;
            Seg::Any
        } else {
            while let Some(c) = self
                .peek()
                .filter(|c| !matches!(c, ',' | '/' | '(' | ')' | '*') && !c.is_whitespace())
            {
                self.pos += c.len_utf8();
            }
            if self.pos == start {
                return Err(self.error("expected a field name"));
            }
            Seg::Name(self.text[start..self.pos].to_owned())
        };
        if self
            .peek()
            .is_some_and(|c| !matches!(c, ',' | '/' | '(' | ')') && !c.is_whitespace())
        {
            return Err(self.error("'*' and '**' must be whole path segments"));
        }
        Ok(segment)
    }

    fn insert(&mut self, path: &[Seg], negated: bool) -> Result<(), FieldsError> {
        let nodes = self.include.nodes.len() + self.exclude.nodes.len() - 2;
        let trie = if negated {
            &mut self.exclude
        } else {
            &mut self.include
        };
        let mut created = 0;
        let mut at = 0usize;
        for segment in path {
            let existing = trie.nodes[at]
                .children
                .iter()
                .map(|&c| usize::from(c))
                .find(|&c| trie.nodes[c].seg == *segment);
            at = match existing {
                Some(child) => child,
                None => {
                    created += 1;
                    if nodes + created > self.max_nodes {
                        return Err(self.error(format!("more than {} fields", self.max_nodes)));
                    }
                    let parent = &trie.nodes[at];
                    let mut path = parent.path.clone();
                    if !path.is_empty() {
                        path.push('/');
                    }
                    path.push_str(match segment {
                        Seg::Name(name) => name,
                        Seg::Any => "*",
                        Seg::Deep => "**",
                        Seg::Root => "",
                    });
                    let index = trie.nodes.len();
                    trie.nodes.push(Node {
                        seg: segment.clone(),
                        terminal: false,
                        children: Vec::new(),
                        path,
                    });
                    // max_nodes is at most 127, so an index fits a u8 and a bit of a u128.
                    trie.nodes[at]
                        .children
                        .push(u8::try_from(index).unwrap_or(u8::MAX));
                    index
                }
            };
        }
        trie.nodes[at].terminal = true;
        Ok(())
    }
}

impl fmt::Display for Selection {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.expression())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::SelectFieldsLayer;

    fn paths(trie: &Trie) -> Vec<&str> {
        trie.paths(trie.terminal).collect()
    }

    #[test]
    fn parses_google_grammar() {
        let selection = Selection::parse("a,b/c,items(id,name),*").unwrap();
        // In node order: a parent before its children.
        assert_eq!(
            paths(&selection.include),
            ["a", "b/c", "items/id", "items/name", "*"]
        );
        assert!(selection.exclude.is_empty());
    }

    #[test]
    fn parses_exclusions_and_double_star() {
        let selection =
            Selection::parse(" -a/b , items( id , -secret ) ,**/x, -**/password").unwrap();
        assert_eq!(paths(&selection.include), ["items/id", "**/x"]);
        assert_eq!(
            paths(&selection.exclude),
            ["a/b", "items/secret", "**/password"]
        );
        let excluded_group = Selection::parse("-a(b,c/d)").unwrap();
        assert_eq!(paths(&excluded_group.exclude), ["a/b", "a/c/d"]);
        assert!(
            excluded_group.include.nodes[0].terminal,
            "exclusions alone keep everything else"
        );
    }

    #[test]
    fn names_may_hold_any_other_character() {
        let selection = Selection::parse("image-url,名前,q\"t,a.b").unwrap();
        assert_eq!(
            paths(&selection.include),
            ["image-url", "名前", "q\"t", "a.b"]
        );
    }

    fn fails(expression: &str, message: &str) {
        assert_eq!(
            Selection::parse(expression).unwrap_err().to_string(),
            message,
            "{expression:?}"
        );
    }

    #[test]
    fn reports_the_column_of_syntax_errors() {
        fails(
            "a(b,c",
            "invalid fields expression at column 6: expected ')'",
        );
        fails(
            "items(id",
            "invalid fields expression at column 9: expected ')'",
        );
        fails(
            "a(b))",
            "invalid fields expression at column 5: unexpected ')'",
        );
        fails(
            "a,,b",
            "invalid fields expression at column 3: expected a field name",
        );
        fails(
            "a,",
            "invalid fields expression at column 3: expected a field name",
        );
        fails(
            "a/",
            "invalid fields expression at column 3: expected a field name",
        );
        fails(
            "()",
            "invalid fields expression at column 1: expected a field name",
        );
        fails(
            "a()",
            "invalid fields expression at column 3: expected a field name",
        );
        fails(
            "a(b)c",
            "invalid fields expression at column 5: expected ','",
        );
        fails("a b", "invalid fields expression at column 3: expected ','");
        fails(
            "a(b c)",
            "invalid fields expression at column 5: expected ',' or ')'",
        );
        fails(
            "a*",
            "invalid fields expression at column 2: '*' and '**' must be whole path segments",
        );
        fails(
            "***",
            "invalid fields expression at column 3: '*' and '**' must be whole path segments",
        );
        fails(
            "-a(-b)",
            "invalid fields expression at column 4: an exclusion cannot contain another exclusion",
        );
        fails(
            "é,(",
            "invalid fields expression at column 3: expected a field name",
        );
    }

    #[test]
    fn enforces_length_depth_and_node_limits() {
        let long = "a,".repeat(600) + "a";
        assert_eq!(
            Selection::parse(&long).unwrap_err().to_string(),
            "invalid fields expression: longer than 1024 bytes"
        );
        assert_eq!(Selection::parse(&long).unwrap_err().column(), None);
        let deep = ["a"; 9].join("/");
        assert_eq!(
            Selection::parse(&deep).unwrap_err().to_string(),
            "invalid fields expression at column 18: paths may be at most 8 fields deep"
        );
        assert!(Selection::parse(&["a"; 8].join("/")).is_ok());
        let nested = "a(".repeat(9) + "b" + &")".repeat(9);
        assert!(
            Selection::parse(&nested)
                .unwrap_err()
                .message()
                .contains("deep")
        );
        let many: Vec<String> = (0..65).map(|n| format!("f{n}")).collect();
        assert_eq!(
            Selection::parse(&many.join(",")).unwrap_err().message(),
            "more than 64 fields"
        );
        assert!(Selection::parse(&many[..64].join(",")).is_ok());
        // Shared prefixes count once.
        let shared: Vec<String> = (0..60).map(|n| format!("a/b/f{n}")).collect();
        assert!(Selection::parse(&shared.join(",")).is_ok());
    }

    #[test]
    fn configured_limits_apply() {
        let config = SelectFieldsLayer::builder()
            .max_length(3)
            .max_depth(1)
            .build()
            .unwrap()
            .config()
            .clone();
        assert!(Selection::parse_with("abcd", &config).is_err());
        assert!(Selection::parse_with("a/b", &config).is_err());
        assert!(Selection::parse_with("a,b", &config).is_ok());
    }

    #[test]
    fn keeps_tells_which_top_level_members_survive() {
        let selection = Selection::parse("id,category/name,-price").unwrap();
        assert_eq!(
            selection.columns(["id", "name", "category", "price"]),
            ["id", "category"]
        );
        let all_but = Selection::parse("-price").unwrap();
        assert_eq!(all_but.columns(["id", "name", "price"]), ["id", "name"]);
        let deep = Selection::parse("**/id").unwrap();
        assert_eq!(deep.columns(["id", "name"]), ["id", "name"]);
        let star = Selection::parse("*,-secret").unwrap();
        assert_eq!(star.columns(["id", "secret"]), ["id"]);
    }
}
