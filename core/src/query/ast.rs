//! The parsed form of a QUERY, shared by the parser, the evaluator and the
//! index planner. Kept deliberately small: `$and` is flattened away at parse
//! time, so only fields and `$or` remain.

use serde_json::Value;

use super::path::FieldPath;
use super::value_set::ValueSet;

/// A parsed QUERY. Build one with [`Query::parse`] or [`Query::match_all`];
/// test documents with [`Query::matches`].
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Query {
    /// All must hold; empty means "match every document".
    pub(super) conjuncts: Vec<Node>,
}

impl Query {
    /// The query `{}`, which matches every document.
    pub fn match_all() -> Query {
        Query::default()
    }

    /// True for `{}` and anything that reduces to it (such as `{"$and": [{}]}`).
    pub fn is_match_all(&self) -> bool {
        self.conjuncts.is_empty()
    }
}

/// One conjunct of a query.
#[derive(Debug, Clone, PartialEq)]
pub(super) enum Node {
    /// Conditions on one field, all of which must hold.
    Field(FieldTest),
    /// At least one branch must hold; a branch holds when all its nodes do.
    /// Always two or more branches, none empty (the parser simplifies the rest).
    Or(Vec<Vec<Node>>),
}

/// `{"a.b": value}` or `{"a.b": {"$gt": 1, "$lt": 5}}`.
#[derive(Debug, Clone, PartialEq)]
pub(super) struct FieldTest {
    pub(super) path: FieldPath,
    /// Never empty; all must hold.
    pub(super) conditions: Vec<Condition>,
}

/// One operator applied to a field's (possibly missing) value.
#[derive(Debug, Clone, PartialEq)]
pub(super) enum Condition {
    /// Present and equal (plain `{"field": value}` is this too).
    Eq(Value),
    /// Not `Eq`: true for a missing field and for a value of another type.
    Ne(Value),
    /// Present, of the same JSON type as `operand`, and ordered as `comparison` says.
    Compare { comparison: Comparison, operand: Value },
    /// Present and equal to a member.
    In(ValueSet),
    /// Not `In`: true for a missing field.
    Nin(ValueSet),
    /// Presence equals the flag.
    Exists(bool),
    /// "Missing or null" equals the flag.
    Null(bool),
}

/// `$gt`, `$gte`, `$lt`, `$lte`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Comparison {
    Greater,
    GreaterOrEqual,
    Less,
    LessOrEqual,
}

impl Comparison {
    /// Whether `field_value.cmp(operand)` resulting in `ordering` satisfies it.
    #[inline]
    pub(super) fn accepts(self, ordering: std::cmp::Ordering) -> bool {
        use std::cmp::Ordering::*;
        match self {
            Comparison::Greater => ordering == Greater,
            Comparison::GreaterOrEqual => ordering != Less,
            Comparison::Less => ordering == Less,
            Comparison::LessOrEqual => ordering != Greater,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::cmp::Ordering;

    #[test]
    fn comparisons_accept_the_right_orderings() {
        let table = [
            (Comparison::Greater, [false, false, true]),
            (Comparison::GreaterOrEqual, [false, true, true]),
            (Comparison::Less, [true, false, false]),
            (Comparison::LessOrEqual, [true, true, false]),
        ];
        for (comparison, expected) in table {
            let actual = [Ordering::Less, Ordering::Equal, Ordering::Greater].map(|o| comparison.accepts(o));
            assert_eq!(actual, expected, "{comparison:?}");
        }
    }

    #[test]
    fn match_all_is_empty() {
        assert!(Query::match_all().is_match_all());
        assert_eq!(Query::match_all(), Query::default());
    }
}
