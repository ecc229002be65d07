//! The argument of `$in` / `$nin`: a set of JSON values with fast membership.

use std::cmp::Ordering;

use serde_json::Value;

use super::value_order::{compare_values, json_equal};

/// Up to this many members a linear scan with [`json_equal`] beats binary
/// search (each probe of which walks the full total order).
const LINEAR_SCAN_MAX: usize = 8;

/// Values sorted by the total order with duplicates (under it, so `1` and
/// `1.0` count once) removed. Sorting at parse time makes membership a binary
/// search for long lists and makes two `$in`s with the same members compare
/// equal whatever order the client listed them in.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct ValueSet {
    sorted: Vec<Value>,
}

impl ValueSet {
    pub(crate) fn new(mut values: Vec<Value>) -> ValueSet {
        // Stable, so of two equal values the first one listed is kept.
        values.sort_by(compare_values);
        values.dedup_by(|later, earlier| compare_values(later, earlier) == Ordering::Equal);
        ValueSet { sorted: values }
    }

    /// True when some member equals `value` under the total order.
    #[inline]
    pub(crate) fn contains(&self, value: &Value) -> bool {
        if self.sorted.len() <= LINEAR_SCAN_MAX {
            self.sorted.iter().any(|member| json_equal(member, value))
        } else {
            self.sorted
                .binary_search_by(|member| compare_values(member, value))
                .is_ok()
        }
    }

    /// The members in ascending order.
    pub(crate) fn values(&self) -> &[Value] {
        &self.sorted
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn members_are_sorted_and_deduplicated_numerically() {
        let set = ValueSet::new(vec![json!("b"), json!(2), json!(1), json!(1.0), json!(null)]);
        assert_eq!(set.values(), [json!(null), json!(1), json!(2), json!("b")]);
    }

    #[test]
    fn short_and_long_sets_answer_membership_alike() {
        let short = ValueSet::new(vec![json!(1), json!("x"), json!([1])]);
        let long = ValueSet::new((0..100).map(|n| json!(n * 2)).collect());
        assert!(short.contains(&json!(1.0)));
        assert!(short.contains(&json!([1.0])));
        assert!(!short.contains(&json!("y")));
        assert!(long.contains(&json!(64)));
        assert!(long.contains(&json!(64.0)));
        assert!(!long.contains(&json!(63)));
        assert!(!long.contains(&json!("64")));
        assert!(!ValueSet::new(vec![]).contains(&json!(null)));
    }
}
