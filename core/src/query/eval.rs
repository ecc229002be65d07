//! Testing documents against a parsed [`Query`].
//!
//! This is the hot path of every GET/COUNT/PUT/PATCH/DELETE, so it never
//! allocates: paths were split at parse time, `$in` sets were sorted, and
//! each field's value is looked up once for all of its conditions.

use serde_json::Value;

use super::ast::{Condition, FieldTest, Node, Query};
use super::value_order::{compare_values, json_equal, TypeRank};

impl Query {
    /// True when `document` satisfies the query.
    ///
    /// ```
    /// # use canhazdb_core::query::Query;
    /// # use serde_json::json;
    /// let query = Query::parse(&json!({"$or": [{"a": 1}, {"b": {"$exists": true}}]})).unwrap();
    /// assert!(query.matches(&json!({"a": 1.0})));
    /// assert!(query.matches(&json!({"b": null})));
    /// assert!(!query.matches(&json!({"a": 2})));
    /// ```
    pub fn matches(&self, document: &Value) -> bool {
        all_hold(&self.conjuncts, document)
    }
}

fn all_hold(nodes: &[Node], document: &Value) -> bool {
    nodes.iter().all(|node| node_holds(node, document))
}

fn node_holds(node: &Node, document: &Value) -> bool {
    match node {
        Node::Field(test) => field_holds(test, document),
        Node::Or(branches) => branches.iter().any(|branch| all_hold(branch, document)),
    }
}

#[inline]
fn field_holds(test: &FieldTest, document: &Value) -> bool {
    let value = test.path.resolve(document);
    test.conditions
        .iter()
        .all(|condition| condition_holds(condition, value))
}

/// Whether one condition holds for a field's value (`None` when missing).
#[inline]
pub(super) fn condition_holds(condition: &Condition, value: Option<&Value>) -> bool {
    match condition {
        Condition::Eq(operand) => value.is_some_and(|value| json_equal(value, operand)),
        Condition::Ne(operand) => !value.is_some_and(|value| json_equal(value, operand)),
        Condition::Compare { comparison, operand } => value.is_some_and(|value| {
            // Values of different JSON types are never ordered against each
            // other by a comparison operator, only by ORDER.
            TypeRank::of(value) == TypeRank::of(operand) && comparison.accepts(compare_values(value, operand))
        }),
        Condition::In(set) => value.is_some_and(|value| set.contains(value)),
        Condition::Nin(set) => !value.is_some_and(|value| set.contains(value)),
        Condition::Exists(expected) => value.is_some() == *expected,
        Condition::Null(expected) => matches!(value, None | Some(Value::Null)) == *expected,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn matches(query: Value, document: Value) -> bool {
        Query::parse(&query).unwrap().matches(&document)
    }

    #[test]
    fn equality_is_deep_and_numeric() {
        assert!(matches(json!({"a": 1}), json!({"a": 1})));
        assert!(matches(json!({"a": 1}), json!({"a": 1.0})));
        assert!(!matches(json!({"a": 1}), json!({"a": "1"})));
        assert!(matches(
            json!({"a": [1, {"b": 2}]}),
            json!({"a": [1.0, {"b": 2}]})
        ));
        assert!(!matches(json!({"a": [1, 2]}), json!({"a": [2, 1]})));
        assert!(matches(
            json!({"a": {"x": 1, "y": 2}}),
            json!({"a": {"y": 2, "x": 1}})
        ));
        assert!(!matches(json!({"a": {"x": 1}}), json!({"a": {"x": 1, "y": 2}})));
        assert!(matches(json!({"a": "s"}), json!({"a": "s", "b": 0})));
    }

    #[test]
    fn equality_has_no_array_contains_magic() {
        assert!(!matches(json!({"tags": "red"}), json!({"tags": ["red", "blue"]})));
        assert!(matches(json!({"tags": ["red"]}), json!({"tags": ["red"]})));
    }

    #[test]
    fn a_missing_field_equals_nothing_not_even_null() {
        assert!(!matches(json!({"a": null}), json!({})));
        assert!(matches(json!({"a": null}), json!({"a": null})));
        assert!(!matches(json!({"a": {"$eq": null}}), json!({"b": 1})));
    }

    #[test]
    fn dotted_paths_reach_into_nested_objects() {
        let document = json!({"user": {"name": {"first": "Ada"}, "age": 36}});
        assert!(matches(json!({"user.name.first": "Ada"}), document.clone()));
        assert!(matches(json!({"user.age": {"$gt": 30}}), document.clone()));
        assert!(!matches(
            json!({"user.name.last": {"$exists": true}}),
            document.clone()
        ));
        assert!(matches(json!({"user.name": {"first": "Ada"}}), document.clone()));
        assert!(!matches(json!({"user.age.years": 36}), document));
    }

    #[test]
    fn ne_is_true_for_differences_other_types_and_missing() {
        assert!(matches(json!({"a": {"$ne": 1}}), json!({"a": 2})));
        assert!(!matches(json!({"a": {"$ne": 1}}), json!({"a": 1.0})));
        assert!(matches(json!({"a": {"$ne": 1}}), json!({"a": "1"})));
        assert!(matches(json!({"a": {"$ne": 1}}), json!({})));
        assert!(matches(json!({"a": {"$ne": null}}), json!({})));
        assert!(!matches(json!({"a": {"$ne": null}}), json!({"a": null})));
    }

    #[test]
    fn comparisons_within_a_type() {
        let cases = [
            ("$gt", json!(5), json!(6), true),
            ("$gt", json!(5), json!(5.0), false),
            ("$gte", json!(5), json!(5.0), true),
            ("$lt", json!(5), json!(4.5), true),
            ("$lt", json!(5), json!(5), false),
            ("$lte", json!(5), json!(5), true),
            ("$gt", json!("b"), json!("c"), true),
            ("$gt", json!("b"), json!("B"), false),
            ("$lt", json!("b"), json!("a"), true),
            ("$gt", json!(false), json!(true), true),
            ("$lt", json!(true), json!(false), true),
            ("$gte", json!(null), json!(null), true),
            ("$gt", json!(null), json!(null), false),
            ("$gt", json!([1]), json!([1, 0]), true),
            ("$lt", json!([1, 2]), json!([1, 1, 9]), true),
            ("$gt", json!({"a": 1}), json!({"a": 2}), true),
            ("$lte", json!({"a": 1}), json!({"a": 1.0}), true),
        ];
        for (operator, operand, value, expected) in cases {
            let query = json!({"f": {operator: operand}});
            let document = json!({"f": value});
            assert_eq!(
                matches(query.clone(), document.clone()),
                expected,
                "{query} on {document}"
            );
        }
    }

    #[test]
    fn comparisons_across_types_are_false() {
        for operator in ["$gt", "$gte", "$lt", "$lte"] {
            for (operand, value) in [
                (json!(1), json!("2")),
                (json!("1"), json!(2)),
                (json!(1), json!(true)),
                (json!(true), json!(1)),
                (json!(null), json!(0)),
                (json!(0), json!(null)),
                (json!([1]), json!({"a": 1})),
                (json!(1), json!([1])),
            ] {
                let query = json!({"f": {operator: operand}});
                assert!(!matches(query.clone(), json!({"f": value})), "{query} on {value}");
            }
            assert!(!matches(json!({"f": {operator: 1}}), json!({})), "missing");
        }
    }

    #[test]
    fn in_and_nin() {
        assert!(matches(json!({"a": {"$in": [1, "x", null]}}), json!({"a": "x"})));
        assert!(matches(json!({"a": {"$in": [1, "x", null]}}), json!({"a": 1.0})));
        assert!(matches(json!({"a": {"$in": [1, "x", null]}}), json!({"a": null})));
        assert!(!matches(json!({"a": {"$in": [1, "x", null]}}), json!({})));
        assert!(!matches(json!({"a": {"$in": []}}), json!({"a": 1})));
        assert!(matches(json!({"a": {"$in": [[1, 2]]}}), json!({"a": [1, 2]})));
        assert!(!matches(json!({"a": {"$in": [1, 2]}}), json!({"a": [1, 2]})));
        assert!(!matches(json!({"a": {"$nin": [1, "x"]}}), json!({"a": 1})));
        assert!(matches(json!({"a": {"$nin": [1, "x"]}}), json!({"a": 2})));
        assert!(matches(json!({"a": {"$nin": [1, "x"]}}), json!({})));
        assert!(matches(json!({"a": {"$nin": []}}), json!({"a": 1})));
        let many: Vec<Value> = (0..50).map(|n| json!(format!("v{n}"))).collect();
        assert!(matches(json!({"a": {"$in": many.clone()}}), json!({"a": "v42"})));
        assert!(!matches(json!({"a": {"$in": many.clone()}}), json!({"a": "v50"})));
        assert!(matches(json!({"a": {"$nin": many}}), json!({"a": "v50"})));
    }

    #[test]
    fn exists_tests_presence() {
        assert!(matches(json!({"a": {"$exists": true}}), json!({"a": null})));
        assert!(!matches(json!({"a": {"$exists": true}}), json!({})));
        assert!(matches(json!({"a": {"$exists": false}}), json!({})));
        assert!(!matches(json!({"a": {"$exists": false}}), json!({"a": 0})));
        assert!(matches(json!({"a.b": {"$exists": false}}), json!({"a": 5})));
    }

    #[test]
    fn null_tests_null_or_missing() {
        assert!(matches(json!({"a": {"$null": true}}), json!({"a": null})));
        assert!(matches(json!({"a": {"$null": true}}), json!({})));
        assert!(!matches(json!({"a": {"$null": true}}), json!({"a": 0})));
        assert!(!matches(json!({"a": {"$null": false}}), json!({"a": null})));
        assert!(!matches(json!({"a": {"$null": false}}), json!({})));
        assert!(matches(json!({"a": {"$null": false}}), json!({"a": false})));
    }

    #[test]
    fn operators_in_one_object_are_anded() {
        let range = json!({"a": {"$gte": 1, "$lt": 3}});
        assert!(!matches(range.clone(), json!({"a": 0})));
        assert!(matches(range.clone(), json!({"a": 1})));
        assert!(matches(range.clone(), json!({"a": 2.9})));
        assert!(!matches(range, json!({"a": 3})));
        assert!(matches(
            json!({"a": {"$exists": true, "$ne": null}}),
            json!({"a": 1})
        ));
        assert!(!matches(
            json!({"a": {"$exists": true, "$ne": null}}),
            json!({"a": null})
        ));
    }

    #[test]
    fn keys_and_logical_operators_combine() {
        let query = json!({
            "kind": "user",
            "$or": [{"age": {"$lt": 18}}, {"guardian": {"$exists": true}}],
            "$and": [{"active": true}, {"$or": [{"role": "admin"}, {"role": "owner"}]}]
        });
        assert!(matches(
            query.clone(),
            json!({"kind": "user", "age": 12, "active": true, "role": "owner"})
        ));
        assert!(matches(
            query.clone(),
            json!({"kind": "user", "age": 40, "guardian": "x", "active": true, "role": "admin"})
        ));
        assert!(!matches(
            query.clone(),
            json!({"kind": "user", "age": 40, "active": true, "role": "admin"})
        ));
        assert!(!matches(
            query.clone(),
            json!({"kind": "user", "age": 12, "active": false, "role": "admin"})
        ));
        assert!(!matches(
            query,
            json!({"kind": "user", "age": 12, "active": true, "role": "guest"})
        ));
    }

    #[test]
    fn empty_query_matches_everything() {
        for document in [json!({}), json!({"a": 1}), json!(null), json!([1])] {
            assert!(Query::match_all().matches(&document));
            assert!(matches(json!({}), document));
        }
    }

    #[test]
    fn non_object_documents_only_satisfy_absence() {
        assert!(!matches(json!({"a": 1}), json!([1])));
        assert!(matches(json!({"a": {"$exists": false}}), json!("text")));
    }
}
