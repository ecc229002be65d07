//! Choosing how to find a query's documents.
//!
//! The planner only decides *where candidates come from* and in what order;
//! the executor ([`super::read`]) re-checks every candidate with
//! [`Query::matches`], so a plan may be generous but never miss a match.
//!
//! Rules, in order:
//! 1. `id` equality / `$in` → point lookups in the documents table; a
//!    predicate nothing can satisfy (`$in: []`) → no candidates at all.
//! 2. ORDER + LIMIT whose primary term's path carries an Eq/In/Range
//!    predicate → walk that path's index in ORDER's direction and stop at
//!    LIMIT (every match has a scalar there, so every match is in the index).
//!    Primary term `id` → walk the documents table itself, which is in id
//!    order (unless an equality elsewhere is likely more selective).
//! 3. Otherwise the most selective-looking predicate (see [`selectivity`])
//!    → its index ranges (or an id range of the documents table).
//! 4. Otherwise the whole collection.

use std::ops::Bound;

use canhazdb_core::query::{Direction, IndexPredicate, Order, Query};
use serde_json::{json, Map, Value};

use super::codec::ID_FIELD;
use super::index::is_indexable_path;
use super::key_encoding::{
    bounded_range, collection_documents, document_id_range, equal_range, index_path_prefix, CollectionId,
    KeyRange,
};

/// Where candidates come from.
#[derive(Debug, Clone, PartialEq)]
pub enum Source {
    /// No document can match (`$in: []`, a non-string id, ...).
    Nothing,
    /// These ids, ascending, deduplicated.
    Ids(Vec<String>),
    /// A key range of the documents table (the collection, or an id range).
    Documents(KeyRange),
    /// Key ranges of the index (ascending, disjoint), all under one path
    /// prefix of `path_prefix_len` bytes.
    Index {
        ranges: Vec<KeyRange>,
        path_prefix_len: usize,
    },
}

#[derive(Debug, Clone, PartialEq)]
pub struct Plan {
    pub source: Source,
    /// Which way to walk the source.
    pub direction: Direction,
    /// The source yields candidates in the order of ORDER's primary term
    /// (when walked in `direction`), so a read may stop at LIMIT.
    pub follows_order: bool,
    /// The query is exactly the predicate the source was built from: every
    /// candidate matches, except those in an inexact index group (long
    /// strings), which must still be re-checked. Lets COUNT skip documents.
    pub exact: bool,
}

impl Plan {
    fn unordered(source: Source, exact: bool) -> Plan {
        Plan {
            source,
            direction: Direction::Ascending,
            follows_order: false,
            exact,
        }
    }
}

/// Plan a read of `collection`. `order`/`limit` only matter together: a
/// limited ordered read may stream an index in order.
pub fn plan(collection: CollectionId, query: &Query, order: Option<&Order>, limit: Option<usize>) -> Plan {
    // Every predicate we can turn into a source, with that source.
    let usable: Vec<(IndexPredicate, Source)> = query
        .index_predicates()
        .into_iter()
        .filter_map(|predicate| {
            let source = source_for(collection, &predicate)?;
            Some((predicate, source))
        })
        .collect();
    let exact = |predicate: &IndexPredicate| is_exactly(query, predicate);
    let most_selective = |candidates: &mut dyn Iterator<Item = &(IndexPredicate, Source)>| {
        candidates
            .min_by_key(|(predicate, _)| selectivity(predicate))
            .cloned()
    };

    // 1. Point lookups by id (or nothing at all, when some predicate can
    //    never hold, e.g. `$in: []`).
    if let Some((predicate, source)) = usable
        .iter()
        .find(|(_, source)| matches!(source, Source::Ids(_)) || matches!(source, Source::Nothing))
    {
        return Plan::unordered(source.clone(), exact(predicate));
    }

    // 2. Stream in ORDER's order.
    if let (Some(primary), Some(_)) = (order.and_then(|order| order.terms.first()), limit) {
        let on_primary = most_selective(&mut usable.iter().filter(|(p, _)| path_of(p) == primary.path));
        let equality_elsewhere = usable
            .iter()
            .any(|(p, _)| matches!(p, IndexPredicate::Eq { .. }) && path_of(p) != primary.path);
        let streamed = match on_primary {
            Some((predicate, source)) => Some((source, exact(&predicate))),
            // The documents table is in id order already.
            None if primary.path == ID_FIELD && !equality_elsewhere => Some((
                Source::Documents(collection_documents(collection)),
                query.is_match_all(),
            )),
            None => None,
        };
        if let Some((source, exact)) = streamed {
            return Plan {
                source,
                direction: primary.direction,
                follows_order: true,
                exact,
            };
        }
    }

    // 3. The most selective-looking predicate.
    if let Some((predicate, source)) = most_selective(&mut usable.iter()) {
        return Plan::unordered(source, exact(&predicate));
    }

    // 4. Everything.
    Plan::unordered(
        Source::Documents(collection_documents(collection)),
        query.is_match_all(),
    )
}

fn path_of(predicate: &IndexPredicate) -> &str {
    match predicate {
        IndexPredicate::Eq { path, .. }
        | IndexPredicate::In { path, .. }
        | IndexPredicate::Range { path, .. } => path,
    }
}

/// Lower is (probably) more selective. Without statistics this is a guess:
/// equality on a number or string usually picks few documents; a short
/// `$in` a few more; equality on a boolean or null may pick half the
/// collection; a closed range is better than an open one.
fn selectivity(predicate: &IndexPredicate) -> u8 {
    match predicate {
        IndexPredicate::Eq { value, .. } => match value {
            Value::Number(_) | Value::String(_) => 0,
            _ => 3,
        },
        IndexPredicate::In { values, .. } if values.len() <= 16 => 1,
        IndexPredicate::In { .. } => 2,
        IndexPredicate::Range { lower, upper, .. } => {
            if matches!(lower, Bound::Unbounded) || matches!(upper, Bound::Unbounded) {
                5
            } else {
                4
            }
        }
    }
}

/// Candidates for one predicate, or `None` if it cannot be served (a path
/// the index does not cover, or bounds that make no key range).
fn source_for(collection: CollectionId, predicate: &IndexPredicate) -> Option<Source> {
    let path = path_of(predicate);
    if path == ID_FIELD {
        return Some(match predicate {
            IndexPredicate::Range { lower, upper, .. } => id_range(collection, lower, upper),
            other => id_lookup(other),
        });
    }
    if !is_indexable_path(path) {
        return None;
    }
    let prefix = index_path_prefix(collection, path);
    let mut ranges: Vec<KeyRange> = match predicate {
        IndexPredicate::Eq { value, .. } => vec![equal_range(&prefix, value)?],
        IndexPredicate::In { values, .. } => values
            .iter()
            .map(|value| equal_range(&prefix, value))
            .collect::<Option<_>>()?,
        IndexPredicate::Range { lower, upper, .. } => {
            vec![bounded_range(&prefix, lower.as_ref(), upper.as_ref())?]
        }
    };
    ranges.retain(|range| !range.is_empty());
    ranges.sort_by(|a, b| a.start.cmp(&b.start));
    ranges.dedup();
    Some(if ranges.is_empty() {
        Source::Nothing
    } else {
        Source::Index {
            ranges,
            path_prefix_len: prefix.len(),
        }
    })
}

/// Point lookups for `id` equality or `$in` (ids are always strings).
fn id_lookup(predicate: &IndexPredicate) -> Source {
    let values: &[Value] = match predicate {
        IndexPredicate::Eq { value, .. } => std::slice::from_ref(value),
        IndexPredicate::In { values, .. } => values,
        IndexPredicate::Range { .. } => unreachable!("ranges are not point lookups"),
    };
    let mut ids: Vec<String> = values
        .iter()
        .filter_map(|value| value.as_str().map(str::to_owned))
        .collect();
    ids.sort_unstable();
    ids.dedup();
    if ids.is_empty() {
        Source::Nothing
    } else {
        Source::Ids(ids)
    }
}

/// A range over ids; only string bounds can match a (string) id.
fn id_range(collection: CollectionId, lower: &Bound<Value>, upper: &Bound<Value>) -> Source {
    let as_str = |bound: &Bound<Value>| -> Option<Bound<String>> {
        match bound {
            Bound::Included(value) => value.as_str().map(|id| Bound::Included(id.to_owned())),
            Bound::Excluded(value) => value.as_str().map(|id| Bound::Excluded(id.to_owned())),
            Bound::Unbounded => Some(Bound::Unbounded),
        }
    };
    match (as_str(lower), as_str(upper)) {
        (Some(lower), Some(upper)) => {
            let range = document_id_range(
                collection,
                lower.as_ref().map(String::as_str),
                upper.as_ref().map(String::as_str),
            );
            if range.is_empty() {
                Source::Nothing
            } else {
                Source::Documents(range)
            }
        }
        _ => Source::Nothing,
    }
}

/// Whether `query` says exactly what `predicate` says, so that a candidate
/// of the predicate's source needs no re-check. Decided by rebuilding the
/// query the predicate came from and comparing parsed forms; any doubt
/// (a differently written but equivalent query) only costs a re-check.
fn is_exactly(query: &Query, predicate: &IndexPredicate) -> bool {
    let mut operators = Map::new();
    match predicate {
        IndexPredicate::Eq { value, .. } => {
            operators.insert("$eq".to_owned(), value.clone());
        }
        IndexPredicate::In { values, .. } => {
            operators.insert("$in".to_owned(), Value::Array(values.clone()));
        }
        IndexPredicate::Range { lower, upper, .. } => {
            for (bound, inclusive, exclusive) in [(lower, "$gte", "$gt"), (upper, "$lte", "$lt")] {
                match bound {
                    Bound::Included(value) => operators.insert(inclusive.to_owned(), value.clone()),
                    Bound::Excluded(value) => operators.insert(exclusive.to_owned(), value.clone()),
                    Bound::Unbounded => None,
                };
            }
        }
    }
    let rebuilt = json!({ path_of(predicate): operators });
    Query::parse(&rebuilt).is_ok_and(|rebuilt| rebuilt == *query)
}

#[cfg(test)]
mod tests {
    use super::*;
    use canhazdb_core::query::OrderTerm;

    fn query(value: Value) -> Query {
        Query::parse(&value).unwrap()
    }

    fn order(path: &str, direction: Direction) -> Order {
        Order {
            terms: vec![OrderTerm {
                path: path.to_owned(),
                direction,
            }],
        }
    }

    #[test]
    fn id_equality_is_a_point_lookup() {
        let plan = plan(1, &query(json!({"id": "a", "x": 1})), None, None);
        assert_eq!(plan.source, Source::Ids(vec!["a".to_owned()]));
        assert!(!plan.exact);
        let plan = super::plan(1, &query(json!({"id": {"$in": ["b", "a", 3]}})), None, None);
        assert_eq!(plan.source, Source::Ids(vec!["a".to_owned(), "b".to_owned()]));
        assert!(plan.exact);
        assert_eq!(
            super::plan(1, &query(json!({"id": 3})), None, None).source,
            Source::Nothing
        );
    }

    #[test]
    fn equality_beats_in_beats_range() {
        let q = query(json!({"r": {"$gt": 1}, "i": {"$in": [1, 2]}, "e": "x"}));
        let Source::Index { ranges, .. } = plan(1, &q, None, None).source else {
            panic!("expected an index plan");
        };
        assert!(ranges[0].start.starts_with(&index_path_prefix(1, "e")));
        let q = query(json!({"r": {"$gt": 1}, "i": {"$in": [1, 2]}}));
        let Source::Index { ranges, .. } = plan(1, &q, None, None).source else {
            panic!("expected an index plan");
        };
        assert_eq!(ranges.len(), 2);
        assert!(ranges[0].start.starts_with(&index_path_prefix(1, "i")));
    }

    #[test]
    fn ordered_limited_reads_stream_the_primary_path() {
        let q = query(json!({"age": {"$gt": 30}, "kind": {"$in": ["a", "b"]}}));
        let desc = order("age", Direction::Descending);
        let plan = plan(1, &q, Some(&desc), Some(10));
        assert!(plan.follows_order);
        assert_eq!(plan.direction, Direction::Descending);
        let Source::Index { ranges, .. } = &plan.source else {
            panic!("expected an index plan");
        };
        assert!(ranges[0].start.starts_with(&index_path_prefix(1, "age")));
        // Without LIMIT there is nothing to stop early for.
        assert!(!super::plan(1, &q, Some(&desc), None).follows_order);
        // Ordered by id: the documents table is in id order.
        let by_id = super::plan(
            1,
            &query(json!({"x": {"$gt": 1}})),
            Some(&order("id", Direction::Ascending)),
            Some(5),
        );
        assert!(by_id.follows_order);
        assert!(matches!(by_id.source, Source::Documents(_)));
    }

    #[test]
    fn exactness_is_recognised_only_for_single_predicate_queries() {
        assert!(plan(1, &query(json!({"a": 1})), None, None).exact);
        assert!(plan(1, &query(json!({"a": {"$gte": 1, "$lt": 5}})), None, None).exact);
        assert!(plan(1, &query(json!({"a": {"$in": [1, "x"]}})), None, None).exact);
        assert!(plan(1, &query(json!({})), None, None).exact);
        assert!(!plan(1, &query(json!({"a": 1, "b": {"$ne": 2}})), None, None).exact);
        assert!(!plan(1, &query(json!({"a": {"$exists": true}})), None, None).exact);
        assert!(!plan(1, &query(json!({"a": 1, "b": 2})), None, None).exact);
    }

    #[test]
    fn unindexable_paths_are_scanned() {
        let deep = ["k"; 9].join(".");
        let plan = plan(1, &query(json!({ deep: 1 })), None, None);
        assert!(matches!(plan.source, Source::Documents(_)));
        assert!(!plan.exact);
        assert_eq!(
            super::plan(1, &query(json!({"a": {"$in": []}})), None, None).source,
            Source::Nothing
        );
    }
}
