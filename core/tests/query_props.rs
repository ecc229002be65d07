//! Property tests for `canhazdb_core::query`.
//!
//! The query engine is checked against `reference`, a deliberately naive
//! re-implementation of spec section 3 that favours obviousness over speed
//! (it re-splits paths, sorts object entries on every comparison and walks
//! the raw query JSON). Generators draw from small alphabets of keys and
//! values so that fields collide, values repeat and queries actually match.

use std::cmp::Ordering;
use std::ops::Bound;

use canhazdb_core::query::{compare_json, parse_limit, Direction, Fields, IndexPredicate, Order, Query};
use proptest::prelude::*;
use serde_json::{Map, Number, Value};

/// The spec, written as plainly as possible.
mod reference {
    use super::*;

    fn rank(value: Option<&Value>) -> u8 {
        match value {
            None => 0,
            Some(Value::Null) => 1,
            Some(Value::Number(_)) => 2,
            Some(Value::String(_)) => 3,
            Some(Value::Object(_)) => 4,
            Some(Value::Array(_)) => 5,
            Some(Value::Bool(_)) => 6,
        }
    }

    pub fn same_type(a: &Value, b: &Value) -> bool {
        rank(Some(a)) == rank(Some(b))
    }

    /// missing < null < numbers < strings < objects < arrays < booleans.
    pub fn compare(a: Option<&Value>, b: Option<&Value>) -> Ordering {
        let by_rank = rank(a).cmp(&rank(b));
        if by_rank != Ordering::Equal {
            return by_rank;
        }
        match (a, b) {
            (Some(Value::Number(a)), Some(Value::Number(b))) => {
                let (a, b) = (a.as_f64().unwrap(), b.as_f64().unwrap());
                a.partial_cmp(&b).unwrap()
            }
            (Some(Value::String(a)), Some(Value::String(b))) => a.as_bytes().cmp(b.as_bytes()),
            (Some(Value::Bool(a)), Some(Value::Bool(b))) => a.cmp(b),
            (Some(Value::Array(a)), Some(Value::Array(b))) => {
                for i in 0..a.len().min(b.len()) {
                    let ordering = compare(Some(&a[i]), Some(&b[i]));
                    if ordering != Ordering::Equal {
                        return ordering;
                    }
                }
                a.len().cmp(&b.len())
            }
            (Some(Value::Object(a)), Some(Value::Object(b))) => {
                let mut a: Vec<(&String, &Value)> = a.iter().collect();
                let mut b: Vec<(&String, &Value)> = b.iter().collect();
                a.sort_by_key(|(key, _)| key.as_bytes());
                b.sort_by_key(|(key, _)| key.as_bytes());
                for i in 0..a.len().min(b.len()) {
                    let ordering = a[i].0.as_bytes().cmp(b[i].0.as_bytes());
                    if ordering != Ordering::Equal {
                        return ordering;
                    }
                    let ordering = compare(Some(a[i].1), Some(b[i].1));
                    if ordering != Ordering::Equal {
                        return ordering;
                    }
                }
                a.len().cmp(&b.len())
            }
            // Same rank and not one of the above: both missing or both null.
            _ => Ordering::Equal,
        }
    }

    pub fn equal(a: &Value, b: &Value) -> bool {
        compare(Some(a), Some(b)) == Ordering::Equal
    }

    pub fn get<'a>(document: &'a Value, path: &str) -> Option<&'a Value> {
        let mut current = document;
        for segment in path.split('.') {
            current = current.as_object()?.get(segment)?;
        }
        Some(current)
    }

    pub fn matches(query: &Value, document: &Value) -> bool {
        query
            .as_object()
            .unwrap()
            .iter()
            .all(|(key, value)| match key.as_str() {
                "$and" => value.as_array().unwrap().iter().all(|q| matches(q, document)),
                "$or" => value.as_array().unwrap().iter().any(|q| matches(q, document)),
                field => field_matches(get(document, field), value),
            })
    }

    fn field_matches(value: Option<&Value>, condition: &Value) -> bool {
        match condition {
            Value::Object(operators) if operators.keys().any(|k| k.starts_with('$')) => operators
                .iter()
                .all(|(operator, argument)| operator_matches(value, operator, argument)),
            literal => value.is_some_and(|v| equal(v, literal)),
        }
    }

    fn operator_matches(value: Option<&Value>, operator: &str, argument: &Value) -> bool {
        let is_equal = value.is_some_and(|v| equal(v, argument));
        let in_list = || {
            let list = argument.as_array().unwrap();
            value.is_some_and(|v| list.iter().any(|member| equal(v, member)))
        };
        let ordered = |accept: &dyn Fn(Ordering) -> bool| {
            value.is_some_and(|v| same_type(v, argument) && accept(compare(Some(v), Some(argument))))
        };
        match operator {
            "$eq" => is_equal,
            "$ne" => !is_equal,
            "$gt" => ordered(&|o| o == Ordering::Greater),
            "$gte" => ordered(&|o| o != Ordering::Less),
            "$lt" => ordered(&|o| o == Ordering::Less),
            "$lte" => ordered(&|o| o != Ordering::Greater),
            "$in" => in_list(),
            "$nin" => !in_list(),
            "$exists" => value.is_some() == argument.as_bool().unwrap(),
            "$null" => {
                let null_or_missing = matches!(value, None | Some(Value::Null));
                null_or_missing == argument.as_bool().unwrap()
            }
            other => panic!("generator produced unknown operator {other}"),
        }
    }

    /// Does `document` satisfy `predicate`, read straight from its docs?
    pub fn satisfies(document: &Value, predicate: &IndexPredicate) -> bool {
        match predicate {
            IndexPredicate::Eq { path, value } => get(document, path).is_some_and(|v| equal(v, value)),
            IndexPredicate::In { path, values } => {
                get(document, path).is_some_and(|v| values.iter().any(|m| equal(v, m)))
            }
            IndexPredicate::Range { path, lower, upper } => {
                let Some(v) = get(document, path) else {
                    return false;
                };
                let within_lower = match lower {
                    Bound::Unbounded => true,
                    Bound::Included(b) => same_type(v, b) && compare(Some(v), Some(b)) != Ordering::Less,
                    Bound::Excluded(b) => same_type(v, b) && compare(Some(v), Some(b)) == Ordering::Greater,
                };
                let within_upper = match upper {
                    Bound::Unbounded => true,
                    Bound::Included(b) => same_type(v, b) && compare(Some(v), Some(b)) != Ordering::Greater,
                    Bound::Excluded(b) => same_type(v, b) && compare(Some(v), Some(b)) == Ordering::Less,
                };
                within_lower && within_upper
            }
        }
    }
}

// ---- generators ---------------------------------------------------------

const DOCUMENT_KEYS: &[&str] = &["a", "b", "c", "x", "y"];
const PATHS: &[&str] = &["a", "b", "c", "a.x", "a.y", "b.x", "a.x.y", "missing"];

fn number() -> impl Strategy<Value = Value> {
    prop_oneof![
        (-3i64..4).prop_map(Value::from),
        (0u64..4).prop_map(Value::from),
        prop::sample::select(vec![-1.5, -0.0, 0.0, 1.0, 2.0, 2.5, 1e300])
            .prop_map(|f| Value::Number(Number::from_f64(f).unwrap())),
        Just(Value::from(u64::MAX)),
        Just(Value::from(i64::MIN)),
    ]
}

fn scalar() -> impl Strategy<Value = Value> {
    prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        number(),
        prop::sample::select(vec!["", "a", "b", "ab", "B", "é"]).prop_map(Value::from),
    ]
}

/// Values with small, plain-keyed nested objects and arrays.
fn value() -> impl Strategy<Value = Value> {
    scalar().prop_recursive(3, 24, 3, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..3).prop_map(Value::Array),
            prop::collection::btree_map(prop::sample::select(DOCUMENT_KEYS), inner, 0..3)
                .prop_map(|map| Value::Object(map.into_iter().map(|(k, v)| (k.to_owned(), v)).collect())),
        ]
    })
}

fn document() -> impl Strategy<Value = Value> {
    prop::collection::btree_map(prop::sample::select(DOCUMENT_KEYS), value(), 0..5)
        .prop_map(|map| Value::Object(map.into_iter().map(|(k, v)| (k.to_owned(), v)).collect()))
}

/// Documents whose queried fields mostly hold scalars from the same pool
/// the queries compare against, so equalities and range edges are hit often.
fn flat_document() -> impl Strategy<Value = Value> {
    let a = prop_oneof![
        scalar(),
        prop::option::of(scalar()).prop_map(|x| {
            let mut inner = Map::new();
            if let Some(x) = x {
                inner.insert("x".into(), x);
            }
            Value::Object(inner)
        }),
    ];
    (prop::option::of(a), prop::option::of(scalar())).prop_map(|(a, b)| {
        let mut document = Map::new();
        if let Some(a) = a {
            document.insert("a".into(), a);
        }
        if let Some(b) = b {
            document.insert("b".into(), b);
        }
        Value::Object(document)
    })
}

/// Either shape of document.
fn some_document() -> impl Strategy<Value = Value> {
    prop_oneof![document(), flat_document()]
}

fn operator() -> impl Strategy<Value = (String, Value)> {
    let named =
        |name: &'static str, argument: BoxedStrategy<Value>| argument.prop_map(move |a| (name.to_owned(), a));
    let list = || {
        prop::collection::vec(value(), 0..4)
            .prop_map(Value::Array)
            .boxed()
    };
    let boolean = || any::<bool>().prop_map(Value::Bool).boxed();
    // Mostly scalars for comparisons, so ranges line up with document values.
    let operand = || prop_oneof![3 => scalar(), 1 => value()].boxed();
    prop_oneof![
        named("$eq", operand()),
        named("$ne", operand()),
        named("$gt", operand()),
        named("$gte", operand()),
        named("$lt", operand()),
        named("$lte", operand()),
        named("$in", list()),
        named("$nin", list()),
        named("$exists", boolean()),
        named("$null", boolean()),
    ]
}

/// A field's condition: a literal (equality) or an operator object.
fn condition() -> impl Strategy<Value = Value> {
    prop_oneof![
        value(),
        prop::collection::vec(operator(), 1..4).prop_map(|ops| Value::Object(ops.into_iter().collect())),
    ]
}

fn field_query() -> impl Strategy<Value = Map<String, Value>> {
    prop::collection::btree_map(prop::sample::select(PATHS), condition(), 0..3)
        .prop_map(|map| map.into_iter().map(|(k, v)| (k.to_owned(), v)).collect())
}

/// Queries using every operator, nested `$and`/`$or` included.
fn query() -> impl Strategy<Value = Value> {
    field_query()
        .prop_map(Value::Object)
        .prop_recursive(3, 16, 3, |inner| {
            (
                field_query(),
                prop::option::of(prop::collection::vec(inner.clone(), 1..3)),
                prop::option::of(prop::collection::vec(inner, 1..3)),
            )
                .prop_map(|(mut fields, and, or)| {
                    if let Some(and) = and {
                        fields.insert("$and".into(), Value::Array(and));
                    }
                    if let Some(or) = or {
                        fields.insert("$or".into(), Value::Array(or));
                    }
                    Value::Object(fields)
                })
        })
}

/// Arbitrary JSON, biased towards the query language's own keys.
fn any_json() -> impl Strategy<Value = Value> {
    let key = prop_oneof![
        prop::sample::select(vec![
            "$and", "$or", "$eq", "$ne", "$gt", "$gte", "$lt", "$lte", "$in", "$nin", "$exists", "$null",
            "$not", "a", "a.b", "", ".", "id",
        ])
        .prop_map(str::to_owned),
        "[a-z$.]{0,4}",
    ];
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(Value::from),
        any::<u64>().prop_map(Value::from),
        any::<f64>().prop_filter_map("finite", |f| Number::from_f64(f).map(Value::Number)),
        ".{0,8}".prop_map(Value::String),
        "(asc|desc)?\\(?[a-z.]{0,3}\\)?[ ,]?".prop_map(Value::String),
    ];
    leaf.prop_recursive(6, 64, 4, move |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
            prop::collection::vec((key.clone(), inner), 0..4)
                .prop_map(|entries| Value::Object(entries.into_iter().collect())),
        ]
    })
}

fn order_text() -> impl Strategy<Value = String> {
    prop::collection::vec((any::<bool>(), prop::sample::select(PATHS)), 1..4).prop_map(|terms| {
        terms
            .into_iter()
            .map(|(ascending, path)| format!("{}({path})", if ascending { "asc" } else { "desc" }))
            .collect::<Vec<_>>()
            .join(", ")
    })
}

// ---- properties ---------------------------------------------------------

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    /// (1) The engine agrees with the reference on every generated query.
    #[test]
    fn matches_agrees_with_reference(query in query(), documents in prop::collection::vec(some_document(), 1..8)) {
        let parsed = Query::parse(&query).map_err(|e| TestCaseError::fail(format!("{e}")))?;
        for document in &documents {
            prop_assert_eq!(
                parsed.matches(document),
                reference::matches(&query, document),
                "query {} on {}", query, document
            );
        }
    }

    /// (2) compare_json is a total order, and it is the spec's order.
    #[test]
    fn compare_json_is_a_total_order(
        a in prop::option::of(value()),
        b in prop::option::of(value()),
        c in prop::option::of(value()),
    ) {
        let (a, b, c) = (a.as_ref(), b.as_ref(), c.as_ref());
        let ab = compare_json(a, b);
        prop_assert_eq!(ab, reference::compare(a, b));
        prop_assert_eq!(compare_json(a, a), Ordering::Equal);
        prop_assert_eq!(compare_json(b, a), ab.reverse(), "antisymmetric");
        if a == b {
            prop_assert_eq!(ab, Ordering::Equal, "consistent with ==");
        }
        let bc = compare_json(b, c);
        let ac = compare_json(a, c);
        if ab != Ordering::Greater && bc != Ordering::Greater {
            prop_assert_ne!(ac, Ordering::Greater, "transitive (<=)");
        }
        if ab == Ordering::Equal && bc == Ordering::Equal {
            prop_assert_eq!(ac, Ordering::Equal, "transitive (==)");
        }
        if ab == Ordering::Less && bc == Ordering::Less {
            prop_assert_eq!(ac, Ordering::Less, "transitive (<)");
        }
    }

    /// (3) Order::sort sorts by Order::compare, stably, losing nothing.
    #[test]
    fn order_sort_is_sorted_and_stable(text in order_text(), documents in prop::collection::vec(document(), 0..20)) {
        let order = Order::parse(&Value::String(text.clone())).unwrap();
        prop_assert!(!order.terms.is_empty());
        let mut tagged: Vec<Value> = documents
            .into_iter()
            .enumerate()
            .map(|(index, mut document)| {
                document.as_object_mut().unwrap().insert("id".into(), Value::from(index));
                document
            })
            .collect();
        let count = tagged.len();
        order.sort(&mut tagged);
        prop_assert_eq!(tagged.len(), count);
        for pair in tagged.windows(2) {
            let ordering = order.compare(&pair[0], &pair[1]);
            prop_assert_ne!(ordering, Ordering::Greater, "{} sorted before {}", &pair[0], &pair[1]);
            if ordering == Ordering::Equal {
                prop_assert!(pair[0]["id"].as_u64() < pair[1]["id"].as_u64(), "stable");
            }
            // And each term agrees with the reference order.
            let first = order.terms.iter().map(|term| {
                let o = reference::compare(reference::get(&pair[0], &term.path), reference::get(&pair[1], &term.path));
                if term.direction == Direction::Descending { o.reverse() } else { o }
            }).find(|o| *o != Ordering::Equal).unwrap_or(Ordering::Equal);
            prop_assert_eq!(first, ordering);
        }
    }

    /// (4) Index predicates never exclude a matching document.
    #[test]
    fn index_predicates_hold_for_every_match(query in query(), documents in prop::collection::vec(some_document(), 1..16)) {
        let parsed = Query::parse(&query).unwrap();
        let predicates = parsed.index_predicates();
        for predicate in &predicates {
            check_predicate_shape(predicate)?;
        }
        for document in documents.iter().filter(|d| parsed.matches(d)) {
            for predicate in &predicates {
                prop_assert!(
                    reference::satisfies(document, predicate),
                    "{} matches {} but not {:?}", document, query, predicate
                );
            }
        }
    }

    /// (4, focused) Dense range/equality queries, where merging matters.
    #[test]
    fn merged_ranges_hold_for_every_match(
        conjuncts in prop::collection::vec(
            (prop::sample::select(vec!["a", "b", "a.x"]),
             prop::sample::select(vec!["$gt", "$gte", "$lt", "$lte", "$eq", "$in"]),
             scalar()),
            1..6),
        documents in prop::collection::vec(flat_document(), 1..24),
    ) {
        let members: Vec<Value> = conjuncts.into_iter().map(|(path, operator, operand)| {
            let argument = if operator == "$in" { Value::Array(vec![operand]) } else { operand };
            serde_json::json!({ path: { operator: argument } })
        }).collect();
        let query = serde_json::json!({"$and": members});
        let parsed = Query::parse(&query).unwrap();
        let predicates = parsed.index_predicates();
        for predicate in &predicates {
            check_predicate_shape(predicate)?;
        }
        for document in documents.iter().filter(|d| parsed.matches(d)) {
            for predicate in &predicates {
                prop_assert!(reference::satisfies(document, predicate), "{} / {} / {:?}", document, query, predicate);
            }
        }
    }

    /// (5) Parsing arbitrary JSON never panics, and whatever parses evaluates.
    #[test]
    fn parsers_never_panic(input in any_json(), document in document()) {
        if let Ok(query) = Query::parse(&input) {
            let _ = query.matches(&document);
            let _ = query.matches(&input);
            let _ = query.index_predicates();
        }
        if let Ok(order) = Order::parse(&input) {
            order.sort(&mut [document.clone(), input.clone()]);
        }
        if let Ok(fields) = Fields::parse(&input) {
            let _ = fields.project(&document);
        }
        if let Ok(limit) = parse_limit(&input) {
            prop_assert!(limit >= 1);
        }
    }

    /// (5, strings) ORDER strings of any shape never panic the term parser.
    #[test]
    fn order_parse_never_panics_on_strings(text in "[a-z(), \t.é]{0,24}") {
        if let Ok(order) = Order::parse(&Value::String(text)) {
            prop_assert!(order.terms.iter().all(|term| !term.path.is_empty()));
        }
    }
}

/// The documented shape: Eq/In carry scalars; a Range has at least one
/// bound, and its bounds are numbers or strings of one type.
fn check_predicate_shape(predicate: &IndexPredicate) -> Result<(), TestCaseError> {
    let scalar = |v: &Value| !matches!(v, Value::Array(_) | Value::Object(_));
    match predicate {
        IndexPredicate::Eq { value, .. } => prop_assert!(scalar(value)),
        IndexPredicate::In { values, .. } => prop_assert!(values.iter().all(scalar)),
        IndexPredicate::Range { lower, upper, .. } => {
            let bounds: Vec<&Value> = [lower, upper]
                .into_iter()
                .filter_map(|bound| match bound {
                    Bound::Included(v) | Bound::Excluded(v) => Some(v),
                    Bound::Unbounded => None,
                })
                .collect();
            prop_assert!(!bounds.is_empty());
            prop_assert!(bounds.iter().all(|v| v.is_number()) || bounds.iter().all(|v| v.is_string()));
        }
    }
    Ok(())
}
