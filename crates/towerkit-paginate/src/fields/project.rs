//! The streaming projection transform: keep the selected members, bytes in, bytes out.

use towerkit_json::scan::{self, Malformed};

use super::parse::Selection;
use crate::pointer::{self, JsonPointer, TransformError, separate};

/// The outcome of [`project`]: which named fields matched nothing.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Projection {
    unknown: Vec<String>,
}

impl Projection {
    /// Fields named in the expression (paths like `a/b`, exclusions as `-a/b`) that no
    /// member matched, among those whose parent objects were examined. A field below a
    /// member kept whole is not examined; a field whose parent never occurred is not
    /// reported either. What strict mode rejects.
    pub fn unknown(&self) -> &[String] {
        &self.unknown
    }
}

/// Writes the members of `input` that `selection` keeps to `out`.
///
/// With `items_at`, only the elements of the array at that pointer are projected (each
/// as a document of its own) and everything else is copied: how fields apply inside a
/// pagination envelope. Kept members are copied byte for byte; dropped subtrees are
/// scanned (validated) but not parsed. `Err` leaves `out` unspecified.
///
/// ```
/// use towerkit_paginate::Selection;
/// use towerkit_paginate::transform::{JsonPointer, project};
///
/// let selection = Selection::parse("id,tags,stock(count)").unwrap();
/// let input = br#"{"id":1,"name":"mug","tags":["a"],"stock":{"count":3,"eta":null}}"#;
/// let mut out = Vec::new();
/// project(input, &mut out, &selection, None).unwrap();
/// assert_eq!(out, br#"{"id":1,"tags":["a"],"stock":{"count":3}}"#);
///
/// let envelope = br#"{"data":[{"id":1,"name":"mug"}],"pagination":{"page":1}}"#;
/// out.clear();
/// let data = JsonPointer::parse("/data").unwrap();
/// project(envelope, &mut out, &Selection::parse("id").unwrap(), Some(&data)).unwrap();
/// assert_eq!(out, br#"{"data":[{"id":1}],"pagination":{"page":1}}"#);
/// ```
pub fn project(
    input: &[u8],
    out: &mut Vec<u8>,
    selection: &Selection,
    items_at: Option<&JsonPointer>,
) -> Result<Projection, TransformError> {
    let mut projector = Projector {
        input,
        selection,
        applied: [0; 2],
        matched: [0; 2],
    };
    let root = projector.root();
    match items_at {
        None => {
            let start = scan::skip_ws(input, 0);
            let end = projector.document(out, start, 0, root)?;
            scan::expect_end(input, end)?;
        }
        Some(pointer) => {
            let mut target = |out: &mut Vec<u8>, pos: usize, depth: usize| {
                if scan::peek(input, pos)? != b'[' {
                    return Err(TransformError::NoArray);
                }
                Ok(projector.document(out, pos, depth, root)?)
            };
            pointer::rewrite_at(input, out, pointer.segments(), &mut target, None)?;
        }
    }
    Ok(projector.report())
}

/// Where the walk is: the include nodes matched so far (unless the path is already
/// selected whole), the exclusion nodes matched so far, and whether an include matched.
#[derive(Clone, Copy)]
struct Ctx {
    include: u128,
    exclude: u128,
    selected: bool,
}

impl Ctx {
    /// Selected, and no exclusion can apply below: copy verbatim.
    #[inline]
    fn whole(self) -> bool {
        self.selected && self.exclude == 0
    }
}

enum Step {
    Drop,
    Whole,
    Into(Ctx),
}

struct Projector<'a> {
    input: &'a [u8],
    selection: &'a Selection,
    /// Name nodes whose parent objects were examined, per trie (include, exclude).
    applied: [u128; 2],
    /// Name nodes some member matched, per trie.
    matched: [u128; 2],
}

impl Projector<'_> {
    fn root(&self) -> Ctx {
        let include = self.selection.include.closure[0];
        let exclude = if self.selection.exclude.is_empty() {
            0
        } else {
            self.selection.exclude.closure[0]
        };
        Ctx {
            include,
            exclude,
            selected: include & self.selection.include.terminal != 0,
        }
    }

    /// A document (or an item of an envelope): containers are projected, a scalar is kept.
    fn document(
        &mut self,
        out: &mut Vec<u8>,
        pos: usize,
        depth: usize,
        ctx: Ctx,
    ) -> Result<usize, Malformed> {
        match scan::peek(self.input, pos)? {
            b'{' | b'[' if !ctx.whole() => self.container(out, pos, depth, ctx, true),
            _ => {
                let end = scan::value_end(self.input, pos, depth)?;
                out.extend_from_slice(&self.input[pos..end]);
                Ok(end)
            }
        }
    }

    /// An object or array at `pos`, its container at nesting `depth`. `top` is whether no
    /// member name leads here (the document or an envelope item, through arrays only).
    fn container(
        &mut self,
        out: &mut Vec<u8>,
        pos: usize,
        depth: usize,
        ctx: Ctx,
        top: bool,
    ) -> Result<usize, Malformed> {
        let depth = depth + 1;
        if depth > scan::MAX_DEPTH {
            return Err(Malformed { offset: pos });
        }
        if self.input[pos] == b'{' {
            self.object(out, pos, depth, ctx)
        } else {
            self.array(out, pos, depth, ctx, top)
        }
    }

    fn object(
        &mut self,
        out: &mut Vec<u8>,
        pos: usize,
        depth: usize,
        ctx: Ctx,
    ) -> Result<usize, Malformed> {
        let input = self.input;
        if !ctx.selected {
            self.applied[0] |= self.selection.include.names_below(ctx.include);
        }
        if ctx.exclude != 0 {
            self.applied[1] |= self.selection.exclude.names_below(ctx.exclude);
        }
        out.push(b'{');
        let mut i = scan::skip_ws(input, pos + 1);
        if scan::peek(input, i)? == b'}' {
            out.push(b'}');
            return Ok(i + 1);
        }
        let mut kept = 0usize;
        loop {
            if scan::peek(input, i)? != b'"' {
                return Err(Malformed { offset: i });
            }
            let key = i;
            let key_end = scan::string_end(input, i)?;
            i = scan::skip_ws(input, key_end);
            i = scan::expect(input, i, b':')?;
            let value = scan::skip_ws(input, i);
            let end = match self.step(ctx, &input[key..key_end]) {
                Step::Drop => scan::value_end(input, value, depth)?,
                Step::Whole => {
                    let end = scan::value_end(input, value, depth)?;
                    separate(out, &mut kept);
                    out.extend_from_slice(&input[key..end]);
                    end
                }
                Step::Into(child) => match input.get(value) {
                    Some(b'{' | b'[') => {
                        separate(out, &mut kept);
                        out.extend_from_slice(&input[key..value]);
                        self.container(out, value, depth, child, false)?
                    }
                    _ => {
                        let end = scan::value_end(input, value, depth)?;
                        if child.selected {
                            separate(out, &mut kept);
                            out.extend_from_slice(&input[key..end]);
                        }
                        end
                    }
                },
            };
            i = scan::skip_ws(input, end);
            match scan::peek(input, i)? {
                b',' => i = scan::skip_ws(input, i + 1),
                b'}' => {
                    out.push(b'}');
                    return Ok(i + 1);
                }
                _ => return Err(Malformed { offset: i }),
            }
        }
    }

    /// Elements take the array's own context: paths go through arrays.
    fn array(
        &mut self,
        out: &mut Vec<u8>,
        pos: usize,
        depth: usize,
        ctx: Ctx,
        top: bool,
    ) -> Result<usize, Malformed> {
        let input = self.input;
        out.push(b'[');
        let mut i = scan::skip_ws(input, pos + 1);
        if scan::peek(input, i)? == b']' {
            out.push(b']');
            return Ok(i + 1);
        }
        let mut kept = 0usize;
        loop {
            let end = match scan::peek(input, i)? {
                b'{' | b'[' => {
                    separate(out, &mut kept);
                    self.container(out, i, depth, ctx, top)?
                }
                _ => {
                    let end = scan::value_end(input, i, depth)?;
                    // A scalar has no members to select: it stays only if selected itself
                    // or if it is an item of the document's top level.
                    if ctx.selected || top {
                        separate(out, &mut kept);
                        out.extend_from_slice(&input[i..end]);
                    }
                    end
                }
            };
            i = scan::skip_ws(input, end);
            match scan::peek(input, i)? {
                b',' => i = scan::skip_ws(input, i + 1),
                b']' => {
                    out.push(b']');
                    return Ok(i + 1);
                }
                _ => return Err(Malformed { offset: i }),
            }
        }
    }

    /// Matches the member `key` (its token, quotes included) below `ctx`.
    #[inline]
    fn step(&mut self, ctx: Ctx, key: &[u8]) -> Step {
        let raw = &key[1..key.len() - 1];
        let escaped = raw.contains(&b'\\');
        let (include, selected) = if ctx.selected {
            (0, true)
        } else {
            let trie = &self.selection.include;
            let include = trie.step(ctx.include, key, raw, escaped, &mut self.matched[0]);
            (include, include & trie.terminal != 0)
        };
        let exclude = if ctx.exclude == 0 {
            0
        } else {
            self.selection
                .exclude
                .step(ctx.exclude, key, raw, escaped, &mut self.matched[1])
        };
        if !selected && include == 0 {
            return Step::Drop;
        }
        if exclude & self.selection.exclude.terminal != 0 {
            return Step::Drop;
        }
        let child = Ctx {
            include,
            exclude,
            selected,
        };
        if child.whole() {
            Step::Whole
        } else {
            Step::Into(child)
        }
    }

    fn report(&self) -> Projection {
        let include = self
            .selection
            .include
            .paths(self.applied[0] & !self.matched[0])
            .map(str::to_owned);
        let exclude = self
            .selection
            .exclude
            .paths(self.applied[1] & !self.matched[1])
            .map(|path| format!("-{path}"));
        Projection {
            unknown: include.chain(exclude).collect(),
        }
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;
    use serde_json::Value;
    use towerkit_test_support::projection::{Pat, Reference};

    use super::*;

    fn apply(fields: &str, input: &str) -> String {
        let mut out = Vec::new();
        project(
            input.as_bytes(),
            &mut out,
            &Selection::parse(fields).unwrap(),
            None,
        )
        .unwrap();
        String::from_utf8(out).unwrap()
    }

    fn check(fields: &str, input: &str, expected: &str) {
        assert_eq!(apply(fields, input), expected, "fields={fields}");
        let reference = reference(fields, input.as_bytes()).unwrap();
        assert_eq!(
            String::from_utf8(reference).unwrap(),
            expected,
            "reference, fields={fields}"
        );
    }

    const PRODUCT: &str = r#"{"id":7,"name":"mug","price":{"amount":12,"currency":"EUR"},"tags":[{"id":1,"label":"new"},{"id":2,"label":"sale"}],"secret":"x"}"#;

    #[test]
    fn projects_nested_paths() {
        check(
            "name,price/amount",
            PRODUCT,
            r#"{"name":"mug","price":{"amount":12}}"#,
        );
        check(
            "price(currency)",
            PRODUCT,
            r#"{"price":{"currency":"EUR"}}"#,
        );
    }

    #[test]
    fn paths_into_arrays_apply_to_every_element() {
        check(
            "tags/label",
            PRODUCT,
            r#"{"tags":[{"label":"new"},{"label":"sale"}]}"#,
        );
        check(
            "id",
            r#"[{"id":1,"x":2},{"x":3},{"id":4}]"#,
            r#"[{"id":1},{},{"id":4}]"#,
        );
    }

    #[test]
    fn excludes_after_includes() {
        check(
            "id,tags,-tags/id",
            PRODUCT,
            r#"{"id":7,"tags":[{"label":"new"},{"label":"sale"}]}"#,
        );
        check(
            "-tags/id,id,tags",
            PRODUCT,
            r#"{"id":7,"tags":[{"label":"new"},{"label":"sale"}]}"#,
        );
        check(
            "-secret,-price",
            PRODUCT,
            r#"{"id":7,"name":"mug","tags":[{"id":1,"label":"new"},{"id":2,"label":"sale"}]}"#,
        );
    }

    #[test]
    fn wildcard_keeps_all() {
        check("*", PRODUCT, PRODUCT);
        check("**", PRODUCT, PRODUCT);
        check(
            "price/*",
            PRODUCT,
            r#"{"price":{"amount":12,"currency":"EUR"}}"#,
        );
        check(
            "*/amount",
            PRODUCT,
            r#"{"price":{"amount":12},"tags":[{},{}]}"#,
        );
    }

    #[test]
    fn double_star_matches_at_any_depth() {
        check(
            "**/id",
            PRODUCT,
            r#"{"id":7,"price":{},"tags":[{"id":1},{"id":2}]}"#,
        );
        check(
            "-**/id",
            PRODUCT,
            r#"{"name":"mug","price":{"amount":12,"currency":"EUR"},"tags":[{"label":"new"},{"label":"sale"}],"secret":"x"}"#,
        );
        check(
            "a/**/z",
            r#"{"a":{"z":1,"b":{"c":{"z":2,"y":3}}}}"#,
            r#"{"a":{"z":1,"b":{"c":{"z":2}}}}"#,
        );
    }

    #[test]
    fn parents_keep_only_selected_children() {
        check("price/missing", PRODUCT, r#"{"price":{}}"#);
        // A scalar cannot hold the selected child, so it goes.
        check("name/first", PRODUCT, "{}");
        check(
            "a/b",
            r#"{"a":[1,{"b":2},[{"b":3}]]}"#,
            r#"{"a":[{"b":2},[{"b":3}]]}"#,
        );
    }

    #[test]
    fn unknown_fields_are_ignored() {
        check("id,nope,nope/deeper", PRODUCT, r#"{"id":7}"#);
        let mut out = Vec::new();
        let projection = project(
            PRODUCT.as_bytes(),
            &mut out,
            &Selection::parse("id,nope,price/x,-zap,tags(k)").unwrap(),
            None,
        )
        .unwrap();
        assert_eq!(projection.unknown(), ["nope", "price/x", "tags/k", "-zap"]);
    }

    #[test]
    fn top_level_scalars_stay() {
        check("a", "5", "5");
        check("a", "[1,{\"a\":2,\"b\":3},[4]]", r#"[1,{"a":2},[4]]"#);
    }

    #[test]
    fn escaped_keys_match_their_decoded_names() {
        // Checked directly: the reference would re-serialize `\u00e9` as `é`.
        assert_eq!(
            apply("né,q\"t", r#"{"n\u00e9":1,"q\"t":2,"x":3}"#),
            r#"{"n\u00e9":1,"q\"t":2}"#
        );
        check(
            "né,q\"t",
            r#"{"né":1,"q\"t":2,"x":3}"#,
            r#"{"né":1,"q\"t":2}"#,
        );
    }

    #[test]
    fn kept_bytes_are_copied_exactly() {
        let input = "{ \"a\" : 1.50E+2 , \"b\":2, \"c\" : [ \"caf\\u00e9\" ] }";
        assert_eq!(
            apply("a,c", input),
            "{\"a\" : 1.50E+2,\"c\" : [ \"caf\\u00e9\" ]}"
        );
    }

    #[test]
    fn malformed_input_is_an_error() {
        let selection = Selection::parse("a").unwrap();
        for bad in [
            &br#"{"a":1,"b":tru}"#[..],
            br#"{"b":[1,2}"#,
            b"{\"a\":1} x",
            b"",
            b"{\"a\":\"\xff\"}",
        ] {
            let mut out = Vec::new();
            assert!(
                matches!(
                    project(bad, &mut out, &selection, None),
                    Err(TransformError::Malformed(_))
                ),
                "{bad:?}"
            );
        }
        let deep = "[".repeat(200) + &"]".repeat(200);
        let mut out = Vec::new();
        assert!(project(deep.as_bytes(), &mut out, &selection, None).is_err());
    }

    #[test]
    fn every_truncation_is_an_error_not_a_panic() {
        let selections =
            ["id,tags(label)", "-secret", "**/id", "*"].map(|s| Selection::parse(s).unwrap());
        let envelope = format!(r#"{{"data":[{PRODUCT},[1,{PRODUCT}]],"pagination":{{"page":1}}}}"#);
        let data = JsonPointer::parse("/data").unwrap();
        for input in [PRODUCT, envelope.as_str()] {
            for cut in 0..input.len() {
                let Some(prefix) = input.as_bytes().get(..cut) else {
                    continue;
                };
                for selection in &selections {
                    let mut out = Vec::new();
                    assert!(project(prefix, &mut out, selection, None).is_err(), "{cut}");
                    assert!(
                        project(prefix, &mut out, selection, Some(&data)).is_err(),
                        "{cut}"
                    );
                }
            }
        }
    }

    #[test]
    fn fields_apply_to_items_inside_envelope() {
        let envelope = r#"{"data":[{"id":1,"name":"a","x":{"y":1}},{"id":2,"name":"b"}],"pagination":{"page":1,"hasNext":false}}"#;
        let mut out = Vec::new();
        let data = JsonPointer::parse("/data").unwrap();
        project(
            envelope.as_bytes(),
            &mut out,
            &Selection::parse("name,x/y").unwrap(),
            Some(&data),
        )
        .unwrap();
        assert_eq!(
            String::from_utf8(out).unwrap(),
            r#"{"data":[{"name":"a","x":{"y":1}},{"name":"b"}],"pagination":{"page":1,"hasNext":false}}"#
        );
        let mut out = Vec::new();
        let missing = project(
            br#"{"items":[]}"#,
            &mut out,
            &Selection::parse("a").unwrap(),
            Some(&data),
        );
        assert_eq!(missing.unwrap_err(), TransformError::NoArray);
    }

    // The slow obvious twin (`towerkit_test_support::projection`): turn the expression into
    // flat patterns independently of the parser's trees, walk a `serde_json::Value` with
    // them, serialize.

    /// One generated term of an expression: `-`? path, optionally with a parenthesised list.
    #[derive(Debug, Clone)]
    struct Term {
        negated: bool,
        path: Vec<Pat>,
        children: Option<Vec<Term>>,
    }

    fn render(terms: &[Term]) -> String {
        let rendered: Vec<String> = terms
            .iter()
            .map(|term| {
                let mut text = if term.negated {
                    "-".to_owned()
                } else {
                    String::new()
                };
                let path: Vec<String> = term
                    .path
                    .iter()
                    .map(|segment| match segment {
                        Pat::Name(name) => name.clone(),
                        Pat::Any => "*".into(),
                        Pat::Deep => "**".into(),
                    })
                    .collect();
                text.push_str(&path.join("/"));
                if let Some(children) = &term.children {
                    text.push('(');
                    text.push_str(&render(children));
                    text.push(')');
                }
                text
            })
            .collect();
        rendered.join(",")
    }

    fn expand(terms: &[Term], prefix: &[Pat], negated: bool, out: &mut Vec<(bool, Vec<Pat>)>) {
        for term in terms {
            let mut path = prefix.to_vec();
            path.extend(term.path.iter().cloned());
            let negated = negated || term.negated;
            match &term.children {
                Some(children) => expand(children, &path, negated, out),
                None => out.push((negated, path)),
            }
        }
    }

    fn reference_with(terms: &[Term], input: &[u8]) -> Option<Vec<u8>> {
        let mut flat = Vec::new();
        expand(terms, &[], false, &mut flat);
        let reference = Reference::new(&flat);
        let value: Value = serde_json::from_slice(input).ok()?;
        serde_json::to_vec(&reference.project(&value)?).ok()
    }

    /// The reference for a hand-written expression, through a tiny flat parser of its own
    /// (tests above only use `a/b` paths, commas, one level of parentheses and `-`).
    fn reference(fields: &str, input: &[u8]) -> Option<Vec<u8>> {
        fn segments(path: &str) -> Vec<Pat> {
            path.split('/')
                .map(|s| match s {
                    "*" => Pat::Any,
                    "**" => Pat::Deep,
                    name => Pat::Name(name.to_owned()),
                })
                .collect()
        }
        let mut terms = Vec::new();
        let mut rest = fields;
        while !rest.is_empty() {
            let (negated, text) = match rest.strip_prefix('-') {
                Some(text) => (true, text),
                None => (false, rest),
            };
            let cut = text.find([',', '(']).unwrap_or(text.len());
            let path = segments(&text[..cut]);
            if text[cut..].starts_with('(') {
                let close = text.find(')')?;
                let children = text[cut + 1..close]
                    .split(',')
                    .map(|child| Term {
                        negated: false,
                        path: segments(child),
                        children: None,
                    })
                    .collect();
                terms.push(Term {
                    negated,
                    path,
                    children: Some(children),
                });
                rest = text[close + 1..].trim_start_matches(',');
            } else {
                terms.push(Term {
                    negated,
                    path,
                    children: None,
                });
                rest = text[cut..].trim_start_matches(',');
            }
        }
        reference_with(&terms, input)
    }

    const NAMES: [&str; 5] = ["a", "b", "c", "q\"t", "é"];

    fn arb_segment() -> impl Strategy<Value = Pat> {
        prop_oneof![
            6 => prop::sample::select(&NAMES[..]).prop_map(|name| Pat::Name(name.to_owned())),
            1 => Just(Pat::Any),
            1 => Just(Pat::Deep),
        ]
    }

    fn arb_term(negated_parent: bool, depth: u32) -> BoxedStrategy<Term> {
        let negated = if negated_parent {
            Just(false).boxed()
        } else {
            prop::bool::weighted(0.3).boxed()
        };
        let path = prop::collection::vec(arb_segment(), 1..3);
        (negated, path)
            .prop_flat_map(move |(negated, path)| {
                let children = if depth > 0 {
                    prop::option::weighted(0.3, arb_terms(negated_parent || negated, depth - 1))
                        .boxed()
                } else {
                    Just(None).boxed()
                };
                children.prop_map(move |children| Term {
                    negated,
                    path: path.clone(),
                    children,
                })
            })
            .boxed()
    }

    fn arb_terms(negated_parent: bool, depth: u32) -> BoxedStrategy<Vec<Term>> {
        prop::collection::vec(arb_term(negated_parent, depth), 1..4).boxed()
    }

    fn arb_value() -> impl Strategy<Value = Value> {
        let leaf = prop_oneof![
            Just(Value::Null),
            any::<bool>().prop_map(Value::from),
            any::<i32>().prop_map(Value::from),
            // Only floats serde_json reads back exactly: the reference re-parses its input.
            any::<f64>()
                .prop_filter("round-trips", |f| {
                    f.is_finite()
                        && serde_json::from_str::<f64>(&serde_json::to_string(f).unwrap()).ok()
                            == Some(*f)
                })
                .prop_map(Value::from),
            "[a-z\"\\\\é]{0,4}".prop_map(Value::from),
        ];
        leaf.prop_recursive(5, 60, 5, |inner| {
            prop_oneof![
                prop::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
                prop::collection::vec(
                    (
                        prop::sample::select(&["a", "b", "c", "d", "q\"t", "é"][..]),
                        inner
                    ),
                    0..5
                )
                .prop_map(|members| Value::Object(
                    members
                        .into_iter()
                        .map(|(k, v)| (k.to_owned(), v))
                        .collect()
                )),
            ]
        })
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(512))]

        #[test]
        fn projection_matches_the_serde_reference(terms in arb_terms(false, 2), value in arb_value()) {
            let expression = render(&terms);
            let selection = Selection::parse(&expression);
            prop_assume!(selection.is_ok());
            let input = serde_json::to_vec(&value).unwrap();
            let expected = reference_with(&terms, &input).unwrap();
            let mut out = Vec::new();
            project(&input, &mut out, &selection.unwrap(), None).unwrap();
            prop_assert_eq!(String::from_utf8(out).unwrap(), String::from_utf8(expected).unwrap(), "fields={}", expression);
        }

        #[test]
        fn projection_inside_an_envelope_matches_per_item(terms in arb_terms(false, 1), items in prop::collection::vec(arb_value(), 0..5)) {
            let expression = render(&terms);
            let selection = Selection::parse(&expression);
            prop_assume!(selection.is_ok());
            let envelope = serde_json::json!({"data": items.clone(), "pagination": {"page": 1}});
            let input = serde_json::to_vec(&envelope).unwrap();
            let expected_items: Vec<Value> = items
                .iter()
                .map(|item| serde_json::from_slice(&reference_with(&terms, &serde_json::to_vec(item).unwrap()).unwrap()).unwrap())
                .collect();
            let expected = serde_json::to_vec(&serde_json::json!({"data": expected_items, "pagination": {"page": 1}})).unwrap();
            let mut out = Vec::new();
            project(&input, &mut out, &selection.unwrap(), Some(&JsonPointer::parse("/data").unwrap())).unwrap();
            prop_assert_eq!(String::from_utf8(out).unwrap(), String::from_utf8(expected).unwrap());
        }

        #[test]
        fn projection_never_accepts_what_serde_rejects(input in prop::collection::vec(any::<u8>(), 0..48)) {
            let mut out = Vec::new();
            if project(&input, &mut out, &Selection::parse("a,-b").unwrap(), None).is_ok() {
                prop_assert!(serde_json::from_slice::<Value>(&input).is_ok());
            }
        }
    }
}
