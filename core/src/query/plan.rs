//! Which parts of a query a secondary index can answer.
//!
//! The storage engine turns the returned predicates into index scans to pick
//! candidate documents, then re-checks every candidate with
//! [`Query::matches`]. So a predicate may let through documents the query
//! rejects, but must never exclude one it matches. Only top-level conjuncts
//! qualify (a predicate under `$or` holds for just some matches), and only
//! operators whose truth depends on the field holding one particular scalar.

use std::cmp::Ordering;
use std::ops::Bound;

use serde_json::Value;

use super::ast::{Comparison, Condition, Node, Query};
use super::value_order::{compare_values, TypeRank};

/// A condition on one field that an index over scalar values can answer.
#[derive(Debug, Clone, PartialEq)]
pub enum IndexPredicate {
    /// The field is present and equals `value` (null, boolean, number or
    /// string; numbers numerically, so `1` also finds `1.0`).
    Eq { path: String, value: Value },
    /// The field is present and equals one of `values` (all scalars, sorted
    /// by the total order, no duplicates; may be empty, matching nothing).
    In { path: String, values: Vec<Value> },
    /// The field holds a value of the bounds' JSON type (number or string;
    /// every bound given has the same type, and at least one is given)
    /// between the bounds. Values of any other type do not match.
    Range {
        path: String,
        lower: Bound<Value>,
        upper: Bound<Value>,
    },
}

impl Query {
    /// The predicates an index can use to narrow the candidates for this
    /// query; every document the query matches satisfies all of them.
    /// Empty when nothing is indexable (then every document is a candidate).
    ///
    /// Range operators on one field are merged into a single `Range` per
    /// field, also across conjuncts (`{"$and": [{"a": {"$gt": 1}}, {"a":
    /// {"$lt": 5}}]}` gives one `1 < a < 5`).
    ///
    /// ```
    /// # use canhazdb_core::query::{IndexPredicate, Query};
    /// # use serde_json::json;
    /// let query = Query::parse(&json!({"kind": "user", "age": {"$gte": 18}})).unwrap();
    /// assert_eq!(query.index_predicates().len(), 2);
    /// ```
    pub fn index_predicates(&self) -> Vec<IndexPredicate> {
        let mut predicates = Vec::new();
        // Or nodes are skipped: see the module docs.
        for node in &self.conjuncts {
            if let Node::Field(test) = node {
                for condition in &test.conditions {
                    add_predicate(&mut predicates, test.path.dotted(), condition);
                }
            }
        }
        predicates
    }
}

fn add_predicate(predicates: &mut Vec<IndexPredicate>, path: &str, condition: &Condition) {
    match condition {
        Condition::Eq(value) if is_scalar(value) => predicates.push(IndexPredicate::Eq {
            path: path.to_owned(),
            value: value.clone(),
        }),
        Condition::In(set) if set.values().iter().all(is_scalar) => predicates.push(IndexPredicate::In {
            path: path.to_owned(),
            values: set.values().to_vec(),
        }),
        Condition::Compare { comparison, operand } if is_rangeable(operand) => {
            add_range(predicates, path, *comparison, operand)
        }
        // $ne, $nin, $exists and $null all hold for missing fields or for
        // arbitrarily many values; non-scalar equality needs a scalar index
        // to hold the whole object. None of these narrow a scalar index.
        _ => {}
    }
}

/// Merge a comparison into the field's `Range`, or start one.
fn add_range(predicates: &mut Vec<IndexPredicate>, path: &str, comparison: Comparison, operand: &Value) {
    let (new_lower, new_upper) = match comparison {
        Comparison::Greater => (Bound::Excluded(operand.clone()), Bound::Unbounded),
        Comparison::GreaterOrEqual => (Bound::Included(operand.clone()), Bound::Unbounded),
        Comparison::Less => (Bound::Unbounded, Bound::Excluded(operand.clone())),
        Comparison::LessOrEqual => (Bound::Unbounded, Bound::Included(operand.clone())),
    };
    let existing = predicates.iter_mut().find_map(|predicate| match predicate {
        IndexPredicate::Range {
            path: p,
            lower,
            upper,
        } if p == path => Some((lower, upper)),
        _ => None,
    });
    let Some((lower, upper)) = existing else {
        predicates.push(IndexPredicate::Range {
            path: path.to_owned(),
            lower: new_lower,
            upper: new_upper,
        });
        return;
    };
    if range_type(lower, upper) != Some(TypeRank::of(operand)) {
        // A number range and a string range on one field: no value is both,
        // so the query matches nothing, and keeping just the first range
        // still excludes no match.
        return;
    }
    *lower = tighter(
        std::mem::replace(lower, Bound::Unbounded),
        new_lower,
        Ordering::Greater,
    );
    *upper = tighter(
        std::mem::replace(upper, Bound::Unbounded),
        new_upper,
        Ordering::Less,
    );
}

/// Of two bounds on the same side, the more restrictive one. `stricter` is
/// the ordering of the more restrictive value: `Greater` for lower bounds,
/// `Less` for upper bounds. At equal values, an exclusive bound is stricter.
fn tighter(a: Bound<Value>, b: Bound<Value>, stricter: Ordering) -> Bound<Value> {
    let value_of = |bound: &Bound<Value>| match bound {
        Bound::Included(value) | Bound::Excluded(value) => Some(value.clone()),
        Bound::Unbounded => None,
    };
    match (value_of(&a), value_of(&b)) {
        (None, _) => b,
        (_, None) => a,
        (Some(a_value), Some(b_value)) => match compare_values(&a_value, &b_value) {
            Ordering::Equal if matches!(a, Bound::Excluded(_)) => a,
            Ordering::Equal => b,
            ordering if ordering == stricter => a,
            _ => b,
        },
    }
}

/// The JSON type of a range's bounds (at least one is always set).
fn range_type(lower: &Bound<Value>, upper: &Bound<Value>) -> Option<TypeRank> {
    [lower, upper].into_iter().find_map(|bound| match bound {
        Bound::Included(value) | Bound::Excluded(value) => Some(TypeRank::of(value)),
        Bound::Unbounded => None,
    })
}

fn is_scalar(value: &Value) -> bool {
    !matches!(value, Value::Array(_) | Value::Object(_))
}

fn is_rangeable(value: &Value) -> bool {
    matches!(value, Value::Number(_) | Value::String(_))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn predicates(query: Value) -> Vec<IndexPredicate> {
        Query::parse(&query).unwrap().index_predicates()
    }

    fn eq(path: &str, value: Value) -> IndexPredicate {
        IndexPredicate::Eq {
            path: path.into(),
            value,
        }
    }

    fn range(path: &str, lower: Bound<Value>, upper: Bound<Value>) -> IndexPredicate {
        IndexPredicate::Range {
            path: path.into(),
            lower,
            upper,
        }
    }

    #[test]
    fn scalar_equality_is_indexable() {
        assert_eq!(predicates(json!({"a": 1})), [eq("a", json!(1))]);
        assert_eq!(predicates(json!({"a": null})), [eq("a", json!(null))]);
        assert_eq!(predicates(json!({"a": true})), [eq("a", json!(true))]);
        assert_eq!(predicates(json!({"a.b": "x"})), [eq("a.b", json!("x"))]);
        assert_eq!(predicates(json!({"a": {"$eq": 2.5}})), [eq("a", json!(2.5))]);
    }

    #[test]
    fn non_scalar_equality_is_not_indexable() {
        assert_eq!(predicates(json!({"a": [1]})), []);
        assert_eq!(predicates(json!({"a": {"b": 1}})), []);
        assert_eq!(predicates(json!({"a": {"$eq": {}}})), []);
    }

    #[test]
    fn in_with_only_scalars_is_indexable() {
        assert_eq!(
            predicates(json!({"a": {"$in": ["x", 2, null, 1.0, 1]}})),
            [IndexPredicate::In {
                path: "a".into(),
                values: vec![json!(null), json!(1.0), json!(2), json!("x")]
            }]
        );
        assert_eq!(
            predicates(json!({"a": {"$in": []}})),
            [IndexPredicate::In {
                path: "a".into(),
                values: vec![]
            }]
        );
        assert_eq!(predicates(json!({"a": {"$in": [1, [2]]}})), []);
    }

    #[test]
    fn single_comparisons_become_half_open_ranges() {
        let n = || json!(5);
        assert_eq!(
            predicates(json!({"a": {"$gt": 5}})),
            [range("a", Bound::Excluded(n()), Bound::Unbounded)]
        );
        assert_eq!(
            predicates(json!({"a": {"$gte": 5}})),
            [range("a", Bound::Included(n()), Bound::Unbounded)]
        );
        assert_eq!(
            predicates(json!({"a": {"$lt": 5}})),
            [range("a", Bound::Unbounded, Bound::Excluded(n()))]
        );
        assert_eq!(
            predicates(json!({"a": {"$lte": 5}})),
            [range("a", Bound::Unbounded, Bound::Included(n()))]
        );
        assert_eq!(
            predicates(json!({"s": {"$gte": "m"}})),
            [range("s", Bound::Included(json!("m")), Bound::Unbounded)]
        );
    }

    #[test]
    fn comparisons_on_other_types_are_not_indexable() {
        for operand in [json!(null), json!(true), json!([1]), json!({"a": 1})] {
            assert_eq!(predicates(json!({"a": {"$gt": operand}})), []);
        }
    }

    #[test]
    fn ranges_on_one_field_merge_to_the_tightest_bounds() {
        assert_eq!(
            predicates(json!({"a": {"$gt": 1, "$lte": 9}})),
            [range("a", Bound::Excluded(json!(1)), Bound::Included(json!(9)))]
        );
        assert_eq!(
            predicates(json!({"a": {"$gt": 1, "$gte": 3, "$lt": 9, "$lte": 7}})),
            [range("a", Bound::Included(json!(3)), Bound::Included(json!(7)))]
        );
        assert_eq!(
            predicates(
                json!({"$and": [{"a": {"$gte": 2}}, {"a": {"$gt": 2.0}}, {"a": {"$lt": 4}}, {"a": {"$lte": 4}}]})
            ),
            [range("a", Bound::Excluded(json!(2.0)), Bound::Excluded(json!(4)))],
            "at equal values the exclusive bound wins"
        );
        assert_eq!(
            predicates(json!({"$and": [{"a": {"$gt": 2}}, {"a": {"$gte": 2}}]})),
            [range("a", Bound::Excluded(json!(2)), Bound::Unbounded)]
        );
    }

    #[test]
    fn mixed_type_ranges_keep_the_first() {
        assert_eq!(
            predicates(json!({"$and": [{"a": {"$gt": 1}}, {"a": {"$lt": "z"}}]})),
            [range("a", Bound::Excluded(json!(1)), Bound::Unbounded)]
        );
    }

    #[test]
    fn ranges_on_different_fields_stay_separate() {
        assert_eq!(
            predicates(json!({"a": {"$gt": 1}, "b": {"$lt": 2}})),
            [
                range("a", Bound::Excluded(json!(1)), Bound::Unbounded),
                range("b", Bound::Unbounded, Bound::Excluded(json!(2)))
            ]
        );
    }

    #[test]
    fn unindexable_operators_give_nothing() {
        for query in [
            json!({"a": {"$ne": 1}}),
            json!({"a": {"$nin": [1]}}),
            json!({"a": {"$exists": true}}),
            json!({"a": {"$null": false}}),
            json!({"$or": [{"a": 1}, {"b": 2}]}),
            json!({}),
        ] {
            assert_eq!(predicates(query.clone()), [], "{query}");
        }
    }

    #[test]
    fn top_level_and_members_are_conjuncts() {
        assert_eq!(
            predicates(json!({"$and": [{"a": 1}, {"$and": [{"b": 2}]}], "$or": [{"c": 3}, {"d": 4}]})),
            [eq("a", json!(1)), eq("b", json!(2))]
        );
        // A one-branch $or is a conjunction, so it is indexable too.
        assert_eq!(predicates(json!({"$or": [{"a": 1}]})), [eq("a", json!(1))]);
    }

    #[test]
    fn a_field_gives_one_predicate_per_indexable_operator() {
        assert_eq!(
            predicates(json!({"a": {"$eq": 3, "$gt": 1, "$ne": 2}})),
            [
                eq("a", json!(3)),
                range("a", Bound::Excluded(json!(1)), Bound::Unbounded)
            ]
        );
    }
}
