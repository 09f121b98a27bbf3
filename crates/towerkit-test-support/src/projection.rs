//! The slow, obvious projection of a `fields` selection on a `serde_json::Value`: the one
//! reference that towerkit-paginate's property tests and the `project` and `fields_parser`
//! fuzz properties (towerkit-fuzz) hold the streaming transform and the parser to.
//!
//! It works from flat terms (an exclusion flag and a whole path of patterns), so each
//! caller turns an expression into terms its own way, apart from the real parser's trees.
//! The meaning follows `towerkit_paginate::Selection`'s docs: a path selects what it
//! matches and everything below; ancestors of a selection are kept with only the selected
//! children; `-path` removes what it matches; with exclusions only, everything else is
//! kept; array elements are walked through at the same path and stay (as `{}` when nothing
//! in them is selected); a scalar is kept only where it is selected (or at the top).
//!
//! ```
//! use serde_json::json;
//! use towerkit_test_support::projection::{Pat, Reference};
//!
//! // `items/id,-items/secret`
//! let items = |last: &str| vec![Pat::Name("items".into()), Pat::Name(last.into())];
//! let reference = Reference::new(&[(false, items("id")), (true, items("secret"))]);
//! let value = json!({"items": [{"id": 1, "name": "a", "secret": "s"}], "total": 1});
//! assert_eq!(reference.project(&value), Some(json!({"items": [{"id": 1}]})));
//! assert!(reference.keeps("items") && !reference.keeps("total"));
//! ```

use serde_json::{Map, Value};

/// One segment of a path pattern.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Pat {
    /// A member with this exact name.
    Name(String),
    /// `*`: any one member.
    Any,
    /// `**`: any number of members, none included.
    Deep,
}

/// A flat term: whether it excludes (`-`), and its whole path from the top.
pub type Term = (bool, Vec<Pat>);

/// A selection's meaning on a `Value`, from its flat terms.
#[derive(Debug, Clone)]
pub struct Reference {
    include: Vec<Vec<Pat>>,
    exclude: Vec<Vec<Pat>>,
}

impl Reference {
    /// The selection made of `terms`.
    pub fn new(terms: &[Term]) -> Self {
        let paths = |excluded: bool| {
            terms
                .iter()
                .filter(|(negated, _)| *negated == excluded)
                .map(|(_, path)| path.clone())
                .collect()
        };
        Reference {
            include: paths(false),
            exclude: paths(true),
        }
    }

    /// `Selection::keeps`: whether the top-level member `name` is kept, whole or in part.
    pub fn keeps(&self, name: &str) -> bool {
        let path = [name];
        !self.excluded(&path) && (self.selected(&path) || self.ancestor(&path))
    }

    /// The projection of the whole document `value`; `None` only when an exclusion removes
    /// everything, which no top-level term can do.
    pub fn project(&self, value: &Value) -> Option<Value> {
        self.project_at(value, &mut Vec::new())
    }

    fn project_at(&self, value: &Value, path: &mut Vec<String>) -> Option<Value> {
        let keys: Vec<&str> = path.iter().map(String::as_str).collect();
        if self.excluded(&keys) {
            return None;
        }
        let selected = self.selected(&keys);
        if !keys.is_empty() && !selected && !self.ancestor(&keys) {
            return None;
        }
        let top = keys.is_empty();
        match value {
            Value::Object(map) => {
                let mut kept = Map::new();
                for (key, child) in map {
                    path.push(key.clone());
                    if let Some(child) = self.project_at(child, path) {
                        kept.insert(key.clone(), child);
                    }
                    path.pop();
                }
                Some(Value::Object(kept))
            }
            Value::Array(items) => Some(Value::Array(
                items
                    .iter()
                    .filter_map(|item| self.project_at(item, path))
                    .collect(),
            )),
            scalar => (selected || top).then(|| scalar.clone()),
        }
    }

    fn selected(&self, path: &[&str]) -> bool {
        self.include.is_empty()
            || (0..=path.len()).any(|n| {
                self.include
                    .iter()
                    .any(|pattern| full_match(pattern, &path[..n]))
            })
    }

    fn excluded(&self, path: &[&str]) -> bool {
        (1..=path.len()).any(|n| {
            self.exclude
                .iter()
                .any(|pattern| full_match(pattern, &path[..n]))
        })
    }

    fn ancestor(&self, path: &[&str]) -> bool {
        self.include.iter().any(|pattern| extends(pattern, path))
    }
}

/// Whether `pattern` matches exactly `path`.
fn full_match(pattern: &[Pat], path: &[&str]) -> bool {
    match (pattern.split_first(), path.split_first()) {
        (None, None) => true,
        (Some((Pat::Deep, rest)), _) => {
            full_match(rest, path) || (!path.is_empty() && full_match(pattern, &path[1..]))
        }
        (Some((Pat::Any, rest)), Some((_, tail))) => full_match(rest, tail),
        (Some((Pat::Name(name), rest)), Some((key, tail))) => name == key && full_match(rest, tail),
        _ => false,
    }
}

/// Whether `pattern` can match some path strictly longer than `path` that starts with it.
fn extends(pattern: &[Pat], path: &[&str]) -> bool {
    match (pattern.split_first(), path.split_first()) {
        (None, _) => false,
        (Some(_), None) => true,
        (Some((Pat::Deep, rest)), Some(_)) => extends(rest, path) || extends(pattern, &path[1..]),
        (Some((Pat::Any, rest)), Some((_, tail))) => extends(rest, tail),
        (Some((Pat::Name(name), rest)), Some((key, tail))) => name == key && extends(rest, tail),
    }
}
