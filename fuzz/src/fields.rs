//! The `fields` expression parser and the projection transform, against an independent
//! parser of the grammar and a projection of `serde_json::Value` trees.

use serde_json::Value;
use towerkit_paginate::transform::{self, JsonPointer};
use towerkit_paginate::{
    DEFAULT_MAX_DEPTH, DEFAULT_MAX_LENGTH, DEFAULT_MAX_NODES, FieldsConfig, MAX_NODES,
    SelectFieldsLayer, Selection,
};
use towerkit_test_support::projection::{Pat, Reference, Term};

use crate::json::{Parsed, canonical, has_duplicate_keys, parse};
use crate::split_line;

/// `Selection::parse` never panics and accepts exactly what the reference parser accepts,
/// under the default limits and under the widest ones; an error's column lies within the
/// expression; an accepted expression reads back as written, and `keeps` agrees with the
/// reference for every name the expression mentions.
pub fn fields_parser(data: &[u8]) {
    let expression = String::from_utf8_lossy(data);
    let wide = Limits {
        max_length: 64 * 1024,
        max_depth: 64,
        max_nodes: MAX_NODES,
    };
    let wide_config = SelectFieldsLayer::builder()
        .max_length(wide.max_length)
        .max_depth(wide.max_depth)
        .max_nodes(wide.max_nodes)
        .build()
        .expect("valid limits")
        .config()
        .clone();
    for (limits, config) in [
        (Limits::DEFAULT, FieldsConfig::default()),
        (wide, wide_config),
    ] {
        let ours = Selection::parse_with(&expression, &config);
        let theirs = reference_parse(&expression, &limits);
        match (&ours, &theirs) {
            (Ok(selection), Some(terms)) => {
                assert_eq!(selection.expression(), expression);
                assert_eq!(selection.to_string(), expression);
                let reference = Reference::new(terms);
                let mut names: Vec<&str> = expression
                    .split(|c: char| matches!(c, ',' | '/' | '(' | ')') || c.is_whitespace())
                    .flat_map(|token| [token, token.trim_start_matches('-')])
                    .collect();
                names.extend(["", "id", "*", "**", "a"]);
                for name in names {
                    assert_eq!(
                        selection.keeps(name),
                        reference.keeps(name),
                        "keeps({name:?}) for {expression:?}"
                    );
                }
            }
            (Err(error), None) => {
                if let Some(column) = error.column() {
                    assert!(
                        (1..=expression.chars().count() + 1).contains(&column),
                        "column {column} outside {expression:?}"
                    );
                }
                assert!(!error.message().is_empty());
            }
            _ => panic!(
                "{expression:?} (limits {limits:?}): towerkit says {:?}, the reference parser {theirs:?}",
                ours.as_ref().map(Selection::expression)
            ),
        }
    }
}

/// The first line is a `fields` expression, the rest a document. `project` never panics;
/// on a well-formed document and an accepted expression its output is well-formed and
/// equals projecting the parsed value; on a malformed document it fails. When the document
/// is an object with a `data` array, projecting its items (`items_at = /data`) equals
/// projecting each item of the parsed value and leaving the rest alone.
pub fn project(data: &[u8]) {
    let (expression, document) = split_line(data);
    let expression = String::from_utf8_lossy(expression);
    let Ok(selection) = Selection::parse(&expression) else {
        return;
    };
    let terms = reference_parse(&expression, &Limits::DEFAULT)
        .unwrap_or_else(|| panic!("the reference parser rejects {expression:?}"));
    let reference = Reference::new(&terms);

    let mut out = Vec::new();
    let result = transform::project(document, &mut out, &selection, None);
    let value = match parse(document) {
        Parsed::OutOfRange => return,
        Parsed::Malformed => {
            assert!(
                result.is_err(),
                "accepted malformed {:?}",
                String::from_utf8_lossy(document)
            );
            return;
        }
        Parsed::Value(value) => value,
    };
    assert!(
        result.is_ok(),
        "rejected well-formed {:?}: {result:?}",
        String::from_utf8_lossy(document)
    );
    let got: Value = serde_json::from_slice(&out).expect("output is JSON");
    if has_duplicate_keys(document) {
        return;
    }
    let expected = reference.project(&value).unwrap_or(Value::Null);
    assert_eq!(
        canonical(&got),
        canonical(&expected),
        "fields {expression:?}, input {:?}",
        String::from_utf8_lossy(document)
    );

    let Some(Value::Array(items)) = value.get("data") else {
        return;
    };
    let pointer = JsonPointer::parse("/data").expect("valid pointer");
    out.clear();
    let result = transform::project(document, &mut out, &selection, Some(&pointer));
    assert!(result.is_ok(), "rejected an envelope: {result:?}");
    let got: Value = serde_json::from_slice(&out).expect("output is JSON");
    let mut expected = value.clone();
    let projected = items
        .iter()
        .map(|item| reference.project(item).unwrap_or(Value::Null));
    expected["data"] = Value::Array(projected.collect());
    assert_eq!(
        canonical(&got),
        canonical(&expected),
        "fields {expression:?} on the items of /data"
    );
}

/// The parser's limits.
#[derive(Debug, Clone, Copy)]
struct Limits {
    max_length: usize,
    max_depth: usize,
    max_nodes: usize,
}

impl Limits {
    const DEFAULT: Limits = Limits {
        max_length: DEFAULT_MAX_LENGTH,
        max_depth: DEFAULT_MAX_DEPTH,
        max_nodes: DEFAULT_MAX_NODES,
    };
}

/// Parses the grammar written in `towerkit_paginate::Selection`'s docs, written apart from
/// the real parser: a segment is the longest run of characters that are not `,` `/` `(`
/// `)` or whitespace, and is then `*`, `**`, or a name without `*`. Whitespace may stand
/// before a term, between a path and `(`, and before `,` or `)`.
fn reference_parse(text: &str, limits: &Limits) -> Option<Vec<Term>> {
    if text.len() > limits.max_length {
        return None;
    }
    let mut parser = RefParser {
        chars: text.chars().collect(),
        at: 0,
        max_depth: limits.max_depth,
        terms: Vec::new(),
    };
    parser.list(&[], false, false)?;
    let terms = parser.terms;
    // Nodes are the distinct non-empty prefixes of the include paths plus those of the
    // exclusion paths.
    let mut nodes = std::collections::HashSet::new();
    for (negated, path) in &terms {
        for end in 1..=path.len() {
            nodes.insert((*negated, path[..end].to_vec()));
        }
    }
    (nodes.len() <= limits.max_nodes).then_some(terms)
}

struct RefParser {
    chars: Vec<char>,
    at: usize,
    max_depth: usize,
    terms: Vec<Term>,
}

impl RefParser {
    fn peek(&self) -> Option<char> {
        self.chars.get(self.at).copied()
    }

    fn skip_whitespace(&mut self) {
        while self.peek().is_some_and(char::is_whitespace) {
            self.at += 1;
        }
    }

    fn list(&mut self, prefix: &[Pat], negated: bool, nested: bool) -> Option<()> {
        loop {
            self.term(prefix, negated)?;
            self.skip_whitespace();
            match self.peek() {
                Some(',') => self.at += 1,
                Some(')') if nested => return Some(()),
                None if !nested => return Some(()),
                _ => return None,
            }
        }
    }

    fn term(&mut self, prefix: &[Pat], negated: bool) -> Option<()> {
        self.skip_whitespace();
        let mut negated = negated;
        if self.peek() == Some('-') {
            if negated {
                return None;
            }
            negated = true;
            self.at += 1;
        }
        let mut path = prefix.to_vec();
        loop {
            path.push(self.segment()?);
            if path.len() > self.max_depth {
                return None;
            }
            if self.peek() != Some('/') {
                break;
            }
            self.at += 1;
        }
        self.skip_whitespace();
        if self.peek() == Some('(') {
            self.at += 1;
            self.list(&path, negated, true)?;
            self.at += 1;
            return Some(());
        }
        self.terms.push((negated, path));
        Some(())
    }

    fn segment(&mut self) -> Option<Pat> {
        let start = self.at;
        while self
            .peek()
            .is_some_and(|c| !matches!(c, ',' | '/' | '(' | ')') && !c.is_whitespace())
        {
            self.at += 1;
        }
        let text: String = self.chars[start..self.at].iter().collect();
        match text.as_str() {
            "" => None,
            "*" => Some(Pat::Any),
            "**" => Some(Pat::Deep),
            name if name.contains('*') => None,
            name => Some(Pat::Name(name.to_owned())),
        }
    }
}
