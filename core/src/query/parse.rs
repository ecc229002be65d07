//! QUERY JSON → [`Query`]. All validation happens here, so evaluation never
//! has to fail.

use serde_json::{Map, Value};

use super::ast::{Comparison, Condition, FieldTest, Node, Query};
use super::error::{json_type_name, QueryError};
use super::path::FieldPath;
use super::value_set::ValueSet;

/// How deep `$and`/`$or` may nest, and how deep a literal value in a query
/// may nest. The parser and evaluator recurse over both, so a cap keeps a
/// hostile query from overflowing the stack; real queries come nowhere near.
pub const MAX_QUERY_DEPTH: usize = 64;

impl Query {
    /// Parse a QUERY. It must be a JSON object; see the module docs of
    /// [`query`](super) for the language.
    ///
    /// ```
    /// # use canhazdb_core::query::Query;
    /// # use serde_json::json;
    /// let query = Query::parse(&json!({"age": {"$gte": 18}, "name.first": "Ada"})).unwrap();
    /// assert!(query.matches(&json!({"age": 36, "name": {"first": "Ada"}})));
    /// assert!(Query::parse(&json!({"age": {"$foo": 1}})).is_err());
    /// ```
    pub fn parse(query: &Value) -> Result<Query, QueryError> {
        let Value::Object(query) = query else {
            return Err(QueryError::new(format!(
                "a query must be a JSON object, got {}",
                json_type_name(query)
            )));
        };
        let mut conjuncts = Vec::new();
        parse_query_object(query, 0, &mut conjuncts)?;
        Ok(Query { conjuncts })
    }
}

/// Parse one query object (the top level or a member of `$and`/`$or`) at
/// `depth` levels of logical nesting, appending its conjuncts to `out`.
fn parse_query_object(
    query: &Map<String, Value>,
    depth: usize,
    out: &mut Vec<Node>,
) -> Result<(), QueryError> {
    if depth > MAX_QUERY_DEPTH {
        return Err(QueryError::new(format!(
            "query nests $and/$or deeper than {MAX_QUERY_DEPTH} levels"
        )));
    }
    for (key, value) in query {
        match key.as_str() {
            // AND inside AND is just more conjuncts: flatten it.
            "$and" => {
                for member in logical_members("$and", value)? {
                    parse_query_object(member, depth + 1, out)?;
                }
            }
            "$or" => {
                let mut branches = Vec::new();
                for member in logical_members("$or", value)? {
                    let mut branch = Vec::new();
                    parse_query_object(member, depth + 1, &mut branch)?;
                    branches.push(branch);
                }
                push_or(branches, out);
            }
            operator if operator.starts_with('$') => {
                return Err(QueryError::new(format!(
                    "unknown top-level operator {operator} (only $and and $or are allowed outside a field)"
                )));
            }
            field => out.push(Node::Field(parse_field(field, value)?)),
        }
    }
    Ok(())
}

/// The members of `$and`/`$or`: a non-empty array of query objects.
fn logical_members<'a>(operator: &str, value: &'a Value) -> Result<Vec<&'a Map<String, Value>>, QueryError> {
    let members = match value {
        Value::Array(members) if !members.is_empty() => members,
        other => {
            let got = match other {
                Value::Array(_) => "an empty array",
                other => json_type_name(other),
            };
            return Err(QueryError::new(format!(
                "{operator} needs a non-empty array of query objects, got {got}"
            )));
        }
    };
    members
        .iter()
        .enumerate()
        .map(|(index, member)| {
            member.as_object().ok_or_else(|| {
                QueryError::new(format!(
                    "{operator} member {index} must be a query object, got {}",
                    json_type_name(member)
                ))
            })
        })
        .collect()
}

/// Add an OR of `branches` to the conjunction `out`, simplified so the
/// evaluator and planner see as little `Or` as possible.
fn push_or(branches: Vec<Vec<Node>>, out: &mut Vec<Node>) {
    if branches.iter().any(Vec::is_empty) {
        // One branch matches everything, so the OR always holds.
        return;
    }
    let mut branches = branches;
    if branches.len() == 1 {
        // A one-branch OR is that branch's conjunction.
        out.append(&mut branches[0]);
    } else {
        out.push(Node::Or(branches));
    }
}

/// `"field": value`: an operator object (every key starts with `$`) or a
/// literal compared for equality (no key starts with `$`).
fn parse_field(field: &str, value: &Value) -> Result<FieldTest, QueryError> {
    let conditions = match value {
        Value::Object(object) if object.keys().any(|key| key.starts_with('$')) => {
            parse_operator_object(field, object)?
        }
        literal => vec![Condition::Eq(literal_operand(field, None, literal)?)],
    };
    Ok(FieldTest {
        path: FieldPath::new(field),
        conditions,
    })
}

fn parse_operator_object(field: &str, object: &Map<String, Value>) -> Result<Vec<Condition>, QueryError> {
    if let Some(plain) = object.keys().find(|key| !key.starts_with('$')) {
        return Err(QueryError::new(format!(
            "the value of field \"{field}\" mixes operators with the plain key \"{plain}\": \
             use either only $operators or a literal object"
        )));
    }
    object
        .iter()
        .map(|(operator, argument)| parse_operator(field, operator, argument))
        .collect()
}

fn parse_operator(field: &str, operator: &str, argument: &Value) -> Result<Condition, QueryError> {
    let compare = |comparison| -> Result<Condition, QueryError> {
        Ok(Condition::Compare {
            comparison,
            operand: literal_operand(field, Some(operator), argument)?,
        })
    };
    match operator {
        "$eq" => Ok(Condition::Eq(literal_operand(field, Some(operator), argument)?)),
        "$ne" => Ok(Condition::Ne(literal_operand(field, Some(operator), argument)?)),
        "$gt" => compare(Comparison::Greater),
        "$gte" => compare(Comparison::GreaterOrEqual),
        "$lt" => compare(Comparison::Less),
        "$lte" => compare(Comparison::LessOrEqual),
        "$in" => Ok(Condition::In(value_set(field, operator, argument)?)),
        "$nin" => Ok(Condition::Nin(value_set(field, operator, argument)?)),
        "$exists" => Ok(Condition::Exists(boolean(field, operator, argument)?)),
        "$null" => Ok(Condition::Null(boolean(field, operator, argument)?)),
        unknown => Err(QueryError::new(format!(
            "unknown operator {unknown} on field \"{field}\""
        ))),
    }
}

fn boolean(field: &str, operator: &str, argument: &Value) -> Result<bool, QueryError> {
    argument.as_bool().ok_or_else(|| {
        QueryError::new(format!(
            "{operator} on field \"{field}\" needs a boolean (true or false), got {}",
            json_type_name(argument)
        ))
    })
}

fn value_set(field: &str, operator: &str, argument: &Value) -> Result<ValueSet, QueryError> {
    let Value::Array(members) = argument else {
        return Err(QueryError::new(format!(
            "{operator} on field \"{field}\" needs an array, got {}",
            json_type_name(argument)
        )));
    };
    for member in members {
        literal_operand(field, Some(operator), member)?;
    }
    Ok(ValueSet::new(members.clone()))
}

/// A value the evaluator will compare documents against, after checking it
/// is not nested so deeply that comparing could overflow the stack.
/// (Comparison recursion is bounded by the shallower side, i.e. by this.)
fn literal_operand(field: &str, operator: Option<&str>, value: &Value) -> Result<Value, QueryError> {
    if nests_deeper_than(value, MAX_QUERY_DEPTH) {
        let what = match operator {
            Some(operator) => format!("the {operator} value"),
            None => "the value".to_owned(),
        };
        return Err(QueryError::new(format!(
            "{what} on field \"{field}\" nests deeper than {MAX_QUERY_DEPTH} levels"
        )));
    }
    Ok(value.clone())
}

/// True when `value` has more than `limit` levels of arrays/objects.
/// Recursion stops at `limit`, so this is safe on any input.
fn nests_deeper_than(value: &Value, limit: usize) -> bool {
    match value {
        Value::Array(items) => limit == 0 || items.iter().any(|item| nests_deeper_than(item, limit - 1)),
        Value::Object(object) => limit == 0 || object.values().any(|item| nests_deeper_than(item, limit - 1)),
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn error(query: Value) -> String {
        Query::parse(&query).expect_err("should be rejected").to_string()
    }

    fn conditions(query: Value) -> Vec<Condition> {
        let parsed = Query::parse(&query).unwrap();
        match parsed.conjuncts.as_slice() {
            [Node::Field(test)] => test.conditions.clone(),
            other => panic!("expected one field test, got {other:?}"),
        }
    }

    #[test]
    fn a_query_must_be_an_object() {
        assert_eq!(error(json!([])), "a query must be a JSON object, got an array");
        assert_eq!(error(json!("x")), "a query must be a JSON object, got a string");
        assert_eq!(error(json!(null)), "a query must be a JSON object, got null");
    }

    #[test]
    fn empty_queries_match_all() {
        assert!(Query::parse(&json!({})).unwrap().is_match_all());
        assert!(Query::parse(&json!({"$and": [{}]})).unwrap().is_match_all());
        assert!(Query::parse(&json!({"$and": [{}, {"$and": [{}]}]}))
            .unwrap()
            .is_match_all());
        assert!(Query::parse(&json!({"$or": [{}, {"a": 1}]}))
            .unwrap()
            .is_match_all());
        assert!(!Query::parse(&json!({"a": 1})).unwrap().is_match_all());
        assert_eq!(Query::parse(&json!({})).unwrap(), Query::match_all());
    }

    #[test]
    fn every_operator_parses() {
        let all = conditions(json!({"f": {
            "$eq": 1, "$ne": 2, "$gt": 3, "$gte": 4, "$lt": 5, "$lte": 6,
            "$in": [7], "$nin": [8], "$exists": true, "$null": false
        }}));
        assert_eq!(all.len(), 10);
        assert!(all.contains(&Condition::Eq(json!(1))));
        assert!(all.contains(&Condition::Ne(json!(2))));
        assert!(all.contains(&Condition::Compare {
            comparison: Comparison::Greater,
            operand: json!(3)
        }));
        assert!(all.contains(&Condition::Compare {
            comparison: Comparison::GreaterOrEqual,
            operand: json!(4)
        }));
        assert!(all.contains(&Condition::Compare {
            comparison: Comparison::Less,
            operand: json!(5)
        }));
        assert!(all.contains(&Condition::Compare {
            comparison: Comparison::LessOrEqual,
            operand: json!(6)
        }));
        assert!(all.contains(&Condition::In(ValueSet::new(vec![json!(7)]))));
        assert!(all.contains(&Condition::Nin(ValueSet::new(vec![json!(8)]))));
        assert!(all.contains(&Condition::Exists(true)));
        assert!(all.contains(&Condition::Null(false)));
    }

    #[test]
    fn plain_values_and_literal_objects_are_equality() {
        assert_eq!(conditions(json!({"f": 1})), [Condition::Eq(json!(1))]);
        assert_eq!(conditions(json!({"f": null})), [Condition::Eq(json!(null))]);
        assert_eq!(conditions(json!({"f": {}})), [Condition::Eq(json!({}))]);
        assert_eq!(
            conditions(json!({"f": {"a": {"$gt": 1}}})),
            [Condition::Eq(json!({"a": {"$gt": 1}}))],
            "only the outermost object decides operator-or-literal"
        );
        assert_eq!(
            conditions(json!({"f": {"$eq": {"$gt": 1}}})),
            [Condition::Eq(json!({"$gt": 1}))]
        );
    }

    #[test]
    fn unknown_operators_are_named() {
        assert_eq!(
            error(json!({"age": {"$foo": 1}})),
            "unknown operator $foo on field \"age\""
        );
        assert_eq!(
            error(json!({"age": {"$and": []}})),
            "unknown operator $and on field \"age\""
        );
        assert_eq!(
            error(json!({"age": {"$regex": "x"}})),
            "unknown operator $regex on field \"age\""
        );
        assert_eq!(
            error(json!({"$not": {"a": 1}})),
            "unknown top-level operator $not (only $and and $or are allowed outside a field)"
        );
        assert_eq!(
            error(json!({"$and": [{"$where": 1}]})),
            "unknown top-level operator $where (only $and and $or are allowed outside a field)"
        );
    }

    #[test]
    fn wrong_argument_kinds_are_named() {
        assert_eq!(
            error(json!({"x": {"$in": 1}})),
            "$in on field \"x\" needs an array, got a number"
        );
        assert_eq!(
            error(json!({"x": {"$nin": {}}})),
            "$nin on field \"x\" needs an array, got an object"
        );
        assert_eq!(
            error(json!({"x": {"$exists": 1}})),
            "$exists on field \"x\" needs a boolean (true or false), got a number"
        );
        assert_eq!(
            error(json!({"x": {"$null": "yes"}})),
            "$null on field \"x\" needs a boolean (true or false), got a string"
        );
    }

    #[test]
    fn mixing_operators_and_plain_keys_is_an_error() {
        assert_eq!(
            error(json!({"a": {"$gt": 1, "b": 2}})),
            "the value of field \"a\" mixes operators with the plain key \"b\": \
             use either only $operators or a literal object"
        );
    }

    #[test]
    fn logical_operators_need_non_empty_arrays_of_objects() {
        assert_eq!(
            error(json!({"$and": []})),
            "$and needs a non-empty array of query objects, got an empty array"
        );
        assert_eq!(
            error(json!({"$or": {"a": 1}})),
            "$or needs a non-empty array of query objects, got an object"
        );
        assert_eq!(
            error(json!({"$or": [{}, 3]})),
            "$or member 1 must be a query object, got a number"
        );
        assert_eq!(
            error(json!({"$and": [[]]})),
            "$and member 0 must be a query object, got an array"
        );
    }

    #[test]
    fn and_is_flattened_and_single_branch_or_is_unwrapped() {
        let nested = Query::parse(&json!({"$and": [{"a": 1}, {"$and": [{"b": 2}]}], "c": 3})).unwrap();
        assert_eq!(nested.conjuncts.len(), 3);
        assert!(nested.conjuncts.iter().all(|node| matches!(node, Node::Field(_))));
        let single = Query::parse(&json!({"$or": [{"a": 1, "b": 2}]})).unwrap();
        assert_eq!(single, Query::parse(&json!({"a": 1, "b": 2})).unwrap());
        let two = Query::parse(&json!({"$or": [{"a": 1}, {"b": 2}]})).unwrap();
        assert!(matches!(two.conjuncts.as_slice(), [Node::Or(branches)] if branches.len() == 2));
    }

    #[test]
    fn in_lists_are_order_insensitive() {
        assert_eq!(
            Query::parse(&json!({"a": {"$in": [3, 1, 2]}})).unwrap(),
            Query::parse(&json!({"a": {"$in": [1, 2, 3, 1.0]}})).unwrap()
        );
    }

    fn nested_logic(levels: usize) -> Value {
        let mut query = json!({"a": 1});
        for level in 0..levels {
            let operator = if level % 2 == 0 { "$and" } else { "$or" };
            query = json!({ operator: [query] });
        }
        query
    }

    fn nested_array(levels: usize) -> Value {
        let mut value = json!(1);
        for _ in 0..levels {
            value = json!([value]);
        }
        value
    }

    #[test]
    fn logical_nesting_is_capped() {
        assert!(Query::parse(&nested_logic(MAX_QUERY_DEPTH)).is_ok());
        assert_eq!(
            error(nested_logic(MAX_QUERY_DEPTH + 1)),
            "query nests $and/$or deeper than 64 levels"
        );
    }

    #[test]
    fn literal_nesting_is_capped() {
        assert!(Query::parse(&json!({"a": nested_array(MAX_QUERY_DEPTH)})).is_ok());
        assert_eq!(
            error(json!({"a": nested_array(MAX_QUERY_DEPTH + 1)})),
            "the value on field \"a\" nests deeper than 64 levels"
        );
        assert_eq!(
            error(json!({"a": {"$in": [nested_array(MAX_QUERY_DEPTH + 1)]}})),
            "the $in value on field \"a\" nests deeper than 64 levels"
        );
        assert_eq!(
            error(json!({"a": {"$gt": nested_array(500)}})),
            "the $gt value on field \"a\" nests deeper than 64 levels"
        );
    }

    #[test]
    fn nesting_check_counts_levels() {
        assert!(!nests_deeper_than(&json!(1), 0));
        assert!(nests_deeper_than(&json!([]), 0));
        assert!(!nests_deeper_than(&json!([]), 1));
        assert!(!nests_deeper_than(&json!({"a": [1]}), 2));
        assert!(nests_deeper_than(&json!({"a": [[]]}), 2));
    }
}
