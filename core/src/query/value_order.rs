//! The protocol's single total order over JSON values (spec section 3):
//!
//! `missing < null < numbers < strings < objects < arrays < booleans`
//!
//! Within a type: numbers compare numerically with `f64` semantics (so
//! `1 == 1.0`, and integers beyond 2^53 compare by their `f64` rounding —
//! exactly what an index that stores numbers as `f64` sees, which keeps index
//! candidate selection and [`Query::matches`](super::Query::matches) in
//! agreement); strings compare by bytes; `false < true`; arrays compare
//! element by element, then by length; objects compare as their
//! key-sorted `(key, value)` sequences, element by element, then by length.
//!
//! ORDER sorts by it, `$gt`/`$gte`/`$lt`/`$lte` compare same-type values by
//! it, and "equal" throughout the query language means "`Ordering::Equal`
//! under it" ([`json_equal`] is a faster way to ask that).

use std::cmp::Ordering;

use serde_json::{Map, Number, Value};

/// Where a JSON type sits in the total order. "Missing" is not a type of
/// value; it is modelled as `None` and sorts before all of these.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub(crate) enum TypeRank {
    Null,
    Number,
    String,
    Object,
    Array,
    Boolean,
}

impl TypeRank {
    pub(crate) fn of(value: &Value) -> TypeRank {
        match value {
            Value::Null => TypeRank::Null,
            Value::Number(_) => TypeRank::Number,
            Value::String(_) => TypeRank::String,
            Value::Object(_) => TypeRank::Object,
            Value::Array(_) => TypeRank::Array,
            Value::Bool(_) => TypeRank::Boolean,
        }
    }
}

/// Compare two possibly-missing values by the protocol's total order
/// (`None`, a missing field, sorts first).
pub fn compare_json(a: Option<&Value>, b: Option<&Value>) -> Ordering {
    match (a, b) {
        (None, None) => Ordering::Equal,
        (None, Some(_)) => Ordering::Less,
        (Some(_), None) => Ordering::Greater,
        (Some(a), Some(b)) => compare_values(a, b),
    }
}

/// [`compare_json`] for two present values.
pub(crate) fn compare_values(a: &Value, b: &Value) -> Ordering {
    match (a, b) {
        (Value::Null, Value::Null) => Ordering::Equal,
        (Value::Number(a), Value::Number(b)) => compare_numbers(a, b),
        // `str`'s `Ord` is byte-wise, which is what the spec asks for.
        (Value::String(a), Value::String(b)) => a.cmp(b),
        (Value::Bool(a), Value::Bool(b)) => a.cmp(b),
        (Value::Array(a), Value::Array(b)) => compare_arrays(a, b),
        (Value::Object(a), Value::Object(b)) => compare_objects(a, b),
        _ => TypeRank::of(a).cmp(&TypeRank::of(b)),
    }
}

/// True when `compare_values(a, b) == Ordering::Equal`, but cheaper: it
/// stops at the first difference and looks objects up by key instead of
/// walking them in sorted order.
pub(crate) fn json_equal(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::Null, Value::Null) => true,
        (Value::Number(a), Value::Number(b)) => compare_numbers(a, b) == Ordering::Equal,
        (Value::String(a), Value::String(b)) => a == b,
        (Value::Bool(a), Value::Bool(b)) => a == b,
        (Value::Array(a), Value::Array(b)) => {
            a.len() == b.len() && a.iter().zip(b).all(|(a, b)| json_equal(a, b))
        }
        (Value::Object(a), Value::Object(b)) => {
            a.len() == b.len()
                && a.iter()
                    .all(|(key, a)| b.get(key).is_some_and(|b| json_equal(a, b)))
        }
        _ => false,
    }
}

/// A number as the `f64` the order uses. With serde_json's default features
/// every number converts; should a build enable `arbitrary_precision`, an
/// unrepresentable number falls back to NaN, which `total_cmp` still places
/// consistently (after every other number), so the order stays total.
fn number_key(number: &Number) -> f64 {
    let key = number.as_f64().unwrap_or(f64::NAN);
    // `total_cmp` tells -0.0 from 0.0; numerically they are equal.
    if key == 0.0 {
        0.0
    } else {
        key
    }
}

fn compare_numbers(a: &Number, b: &Number) -> Ordering {
    number_key(a).total_cmp(&number_key(b))
}

fn compare_arrays(a: &[Value], b: &[Value]) -> Ordering {
    for (a, b) in a.iter().zip(b) {
        let ordering = compare_values(a, b);
        if ordering != Ordering::Equal {
            return ordering;
        }
    }
    a.len().cmp(&b.len())
}

fn compare_objects(a: &Map<String, Value>, b: &Map<String, Value>) -> Ordering {
    // serde_json's default map is a BTreeMap, already sorted by key; with the
    // `preserve_order` feature (which any crate in a build can switch on) it
    // keeps insertion order, so sort a copy of the entries only then.
    if a.keys().is_sorted() && b.keys().is_sorted() {
        compare_entries(a.iter(), b.iter())
    } else {
        compare_entries(sorted_entries(a).into_iter(), sorted_entries(b).into_iter())
    }
}

fn sorted_entries(object: &Map<String, Value>) -> Vec<(&String, &Value)> {
    let mut entries: Vec<_> = object.iter().collect();
    entries.sort_unstable_by_key(|&(key, _)| key);
    entries
}

/// Lexicographic comparison of two key-sorted entry sequences: key, then
/// value, entry by entry; a proper prefix sorts first.
fn compare_entries<'a>(
    mut a: impl Iterator<Item = (&'a String, &'a Value)>,
    mut b: impl Iterator<Item = (&'a String, &'a Value)>,
) -> Ordering {
    loop {
        match (a.next(), b.next()) {
            (None, None) => return Ordering::Equal,
            (None, Some(_)) => return Ordering::Less,
            (Some(_), None) => return Ordering::Greater,
            (Some((a_key, a_value)), Some((b_key, b_value))) => {
                let ordering = a_key.cmp(b_key).then_with(|| compare_values(a_value, b_value));
                if ordering != Ordering::Equal {
                    return ordering;
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    /// One representative per rank, in ascending order.
    fn ladder() -> Vec<Option<Value>> {
        vec![
            None,
            Some(json!(null)),
            Some(json!(-5)),
            Some(json!(1)),
            Some(json!(2.5)),
            Some(json!("")),
            Some(json!("a")),
            Some(json!({})),
            Some(json!({"a": 1})),
            Some(json!([])),
            Some(json!([1])),
            Some(json!(false)),
            Some(json!(true)),
        ]
    }

    #[test]
    fn types_are_ranked_missing_null_number_string_object_array_boolean() {
        let ladder = ladder();
        for (i, a) in ladder.iter().enumerate() {
            for (j, b) in ladder.iter().enumerate() {
                assert_eq!(compare_json(a.as_ref(), b.as_ref()), i.cmp(&j), "{a:?} vs {b:?}");
            }
        }
    }

    #[test]
    fn numbers_compare_numerically_across_representations() {
        let cmp = |a: Value, b: Value| compare_json(Some(&a), Some(&b));
        assert_eq!(cmp(json!(1), json!(1.0)), Ordering::Equal);
        assert_eq!(cmp(json!(-1), json!(-1.0)), Ordering::Equal);
        assert_eq!(cmp(json!(0.0), json!(-0.0)), Ordering::Equal);
        assert_eq!(cmp(json!(2), json!(10)), Ordering::Less, "not textual");
        assert_eq!(cmp(json!(-3), json!(2u64)), Ordering::Less);
        assert_eq!(cmp(json!(1.5), json!(1)), Ordering::Greater);
        assert_eq!(cmp(json!(u64::MAX), json!(i64::MIN)), Ordering::Greater);
        assert!(json_equal(&json!(1), &json!(1.0)));
        assert!(json_equal(&json!(0.0), &json!(-0.0)));
        assert!(!json_equal(&json!(1), &json!(1.5)));
    }

    #[test]
    fn strings_compare_by_bytes() {
        let cmp = |a: &str, b: &str| compare_json(Some(&json!(a)), Some(&json!(b)));
        assert_eq!(cmp("B", "a"), Ordering::Less, "uppercase bytes sort first");
        assert_eq!(cmp("a", "ab"), Ordering::Less);
        assert_eq!(cmp("é", "z"), Ordering::Greater, "UTF-8 bytes, not locale");
        assert_eq!(cmp("same", "same"), Ordering::Equal);
    }

    #[test]
    fn arrays_compare_element_wise_then_by_length() {
        let cmp = |a: Value, b: Value| compare_json(Some(&a), Some(&b));
        assert_eq!(cmp(json!([1, 2]), json!([1, 3])), Ordering::Less);
        assert_eq!(cmp(json!([1, 2]), json!([1, 2, 0])), Ordering::Less);
        assert_eq!(cmp(json!([2]), json!([1, 9, 9])), Ordering::Greater);
        assert_eq!(cmp(json!([1, "a"]), json!([1.0, "a"])), Ordering::Equal);
        assert_eq!(cmp(json!([null]), json!([false])), Ordering::Less);
    }

    #[test]
    fn objects_compare_by_sorted_key_then_value() {
        let cmp = |a: Value, b: Value| compare_json(Some(&a), Some(&b));
        assert_eq!(
            cmp(json!({"a": 1, "b": 2}), json!({"b": 2, "a": 1})),
            Ordering::Equal
        );
        assert_eq!(cmp(json!({"a": 1}), json!({"a": 2})), Ordering::Less);
        assert_eq!(cmp(json!({"a": 9}), json!({"b": 0})), Ordering::Less, "key first");
        assert_eq!(cmp(json!({"a": 1}), json!({"a": 1, "b": 0})), Ordering::Less);
        assert_eq!(cmp(json!({"a": 1.0}), json!({"a": 1})), Ordering::Equal);
        assert!(json_equal(
            &json!({"a": [1, {"b": 2}]}),
            &json!({"a": [1.0, {"b": 2.0}]})
        ));
        assert!(!json_equal(&json!({"a": 1}), &json!({"b": 1})));
        assert!(!json_equal(&json!({"a": 1}), &json!({"a": 1, "b": 1})));
    }

    #[test]
    fn unsorted_entry_sequences_are_sorted_before_comparing() {
        // Exercises the `preserve_order` fallback directly.
        let a = json!(1);
        let b = json!(2);
        let (x, y) = (String::from("x"), String::from("y"));
        let unsorted = [(&y, &a), (&x, &b)];
        let mut sorted = unsorted;
        sorted.sort_by_key(|&(key, _)| key);
        let other = [(&x, &b), (&y, &a)];
        assert_eq!(
            compare_entries(sorted.into_iter(), other.into_iter()),
            Ordering::Equal
        );
    }

    #[test]
    fn booleans_sort_false_before_true() {
        assert_eq!(
            compare_json(Some(&json!(false)), Some(&json!(true))),
            Ordering::Less
        );
    }

    #[test]
    fn json_equal_agrees_with_compare_on_samples() {
        let samples = [
            json!(null),
            json!(0),
            json!(-0.0),
            json!(1),
            json!(1.0),
            json!("1"),
            json!([]),
            json!({}),
            json!([1, {"a": null}]),
            json!([1.0, {"a": null}]),
            json!({"a": [true]}),
            json!(true),
        ];
        for a in &samples {
            for b in &samples {
                assert_eq!(
                    json_equal(a, b),
                    compare_values(a, b) == Ordering::Equal,
                    "{a} vs {b}"
                );
            }
        }
    }
}
