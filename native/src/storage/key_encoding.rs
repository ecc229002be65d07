//! Byte layouts of the keys in the documents and index tables.
//!
//! redb compares `&[u8]` keys byte-wise, so every layout here is designed so
//! that byte order is the order we want to iterate in:
//!
//! * document key: `collection (u32 BE) ++ id bytes` — one collection's
//!   documents are contiguous and in id order (Rust `str` order).
//! * index key: `collection (u32 BE) ++ path length (u16 BE) ++ path ++
//!   value key ++ id bytes` — one path's entries are contiguous, ordered by
//!   value as [`compare_json`](canhazdb_core::query::compare_json) orders
//!   scalars, and equal values are in id order.
//!
//! A *value key* is a tag byte, in the protocol's type order
//! (null < numbers < strings < booleans), followed by:
//!
//! * numbers: the `f64` (which is how compare_json compares numbers, so
//!   `1` and `1.0` share a key) with its sign bit flipped (positives) or all
//!   bits flipped (negatives), big-endian: unsigned byte order = numeric order.
//! * strings: the bytes with `0x00` escaped as `0x00 0xFF`, then the
//!   terminator `0x00 0x01`. Escaping keeps byte order and makes the key
//!   self-delimiting, so the id that follows cannot blur the order.
//!   A string longer than [`MAX_INDEXED_STRING_BYTES`] is cut to that many
//!   bytes and ends with `0x00 0x02` instead: all long strings sharing a
//!   prefix land in one *inexact* group that sorts after the exact prefix
//!   and before every greater string, so the order between groups is still
//!   right; readers re-check and re-sort inside such a group.
//! * booleans: `0x00` or `0x01`; null: nothing.

use std::ops::Bound;

use serde_json::Value;

use super::error::StorageError;

/// The compact number that stands for a collection name in every key.
pub type CollectionId = u32;

const TAG_NULL: u8 = 0x10;
const TAG_NUMBER: u8 = 0x20;
const TAG_STRING: u8 = 0x30;
const TAG_BOOLEAN: u8 = 0x60;

const ESCAPE: u8 = 0x00;
const ESCAPED_ZERO: u8 = 0xFF;
const END_EXACT: u8 = 0x01;
const END_TRUNCATED: u8 = 0x02;

/// Strings longer than this are indexed by their prefix (see module docs).
pub const MAX_INDEXED_STRING_BYTES: usize = 1024;

/// A half-open key range `[start, end)`; `end: None` means "to the end".
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyRange {
    pub start: Vec<u8>,
    pub end: Option<Vec<u8>>,
}

impl KeyRange {
    /// Every key that starts with `prefix`.
    pub fn prefix(prefix: Vec<u8>) -> KeyRange {
        let end = successor(&prefix);
        KeyRange { start: prefix, end }
    }

    pub fn is_empty(&self) -> bool {
        matches!(&self.end, Some(end) if *end <= self.start)
    }

    /// As redb wants it for `table.range(..)`.
    pub fn bounds(&self) -> (Bound<&[u8]>, Bound<&[u8]>) {
        (
            Bound::Included(self.start.as_slice()),
            match &self.end {
                Some(end) => Bound::Excluded(end.as_slice()),
                None => Bound::Unbounded,
            },
        )
    }
}

/// The smallest byte string greater than every string starting with
/// `prefix`, or `None` if there is none (all bytes `0xFF`).
pub fn successor(prefix: &[u8]) -> Option<Vec<u8>> {
    let mut next = prefix.to_vec();
    while let Some(last) = next.pop() {
        if last != 0xFF {
            next.push(last + 1);
            return Some(next);
        }
    }
    None
}

// ---------------------------------------------------------------------------
// Documents table

pub fn document_key(collection: CollectionId, id: &str) -> Vec<u8> {
    let mut key = Vec::with_capacity(4 + id.len());
    key.extend_from_slice(&collection.to_be_bytes());
    key.extend_from_slice(id.as_bytes());
    key
}

/// All documents of a collection.
pub fn collection_documents(collection: CollectionId) -> KeyRange {
    KeyRange::prefix(collection.to_be_bytes().to_vec())
}

/// The id part of a document key.
pub fn document_key_id(key: &[u8]) -> Result<&str, StorageError> {
    key.get(4..)
        .and_then(|id| std::str::from_utf8(id).ok())
        .ok_or_else(|| StorageError::Corrupt("malformed document key".to_owned()))
}

/// Documents whose id lies within string bounds (for range predicates on `id`).
pub fn document_id_range(collection: CollectionId, lower: Bound<&str>, upper: Bound<&str>) -> KeyRange {
    let all = collection_documents(collection);
    let start = match lower {
        Bound::Included(id) => document_key(collection, id),
        // Ids are whole keys, so "just after id" is id ++ 0x00.
        Bound::Excluded(id) => {
            let mut key = document_key(collection, id);
            key.push(0);
            key
        }
        Bound::Unbounded => all.start,
    };
    let end = match upper {
        Bound::Included(id) => {
            let mut key = document_key(collection, id);
            key.push(0);
            Some(key)
        }
        Bound::Excluded(id) => Some(document_key(collection, id)),
        Bound::Unbounded => all.end,
    };
    KeyRange { start, end }
}

// ---------------------------------------------------------------------------
// Index table

/// `collection ++ u16 length ++ path`: the prefix of every entry of one path.
/// The caller guarantees `path` is at most `u16::MAX` bytes (see
/// [`super::index::is_indexable_path`]).
pub fn index_path_prefix(collection: CollectionId, path: &str) -> Vec<u8> {
    let mut key = Vec::with_capacity(6 + path.len() + 16);
    key.extend_from_slice(&collection.to_be_bytes());
    append_path(&mut key, path);
    key
}

/// Append `u16 length ++ path`.
pub fn append_path(key: &mut Vec<u8>, path: &str) {
    let len = u16::try_from(path.len()).expect("indexable paths are short");
    key.extend_from_slice(&len.to_be_bytes());
    key.extend_from_slice(path.as_bytes());
}

/// Append the value key of a scalar. Returns `false` (appending nothing) for
/// arrays and objects, which are not indexed.
pub fn append_value_key(key: &mut Vec<u8>, value: &Value) -> bool {
    match value {
        Value::Null => key.push(TAG_NULL),
        Value::Bool(flag) => {
            key.push(TAG_BOOLEAN);
            key.push(u8::from(*flag));
        }
        Value::Number(number) => {
            key.push(TAG_NUMBER);
            key.extend_from_slice(&ordered_f64(number.as_f64().unwrap_or(f64::NAN)));
        }
        Value::String(text) => {
            key.push(TAG_STRING);
            let bytes = text.as_bytes();
            let truncated = bytes.len() > MAX_INDEXED_STRING_BYTES;
            let kept = if truncated {
                &bytes[..MAX_INDEXED_STRING_BYTES]
            } else {
                bytes
            };
            for &byte in kept {
                key.push(byte);
                if byte == ESCAPE {
                    key.push(ESCAPED_ZERO);
                }
            }
            key.push(ESCAPE);
            key.push(if truncated { END_TRUNCATED } else { END_EXACT });
        }
        Value::Array(_) | Value::Object(_) => return false,
    }
    true
}

/// The value key of a scalar on its own (`None` for arrays/objects).
#[cfg(test)]
pub fn value_key(value: &Value) -> Option<Vec<u8>> {
    let mut key = Vec::new();
    append_value_key(&mut key, value).then_some(key)
}

/// Numbers as big-endian bytes whose unsigned order is numeric order.
fn ordered_f64(number: f64) -> [u8; 8] {
    // compare_json treats -0.0 and 0.0 as equal; so must the key.
    let number = if number == 0.0 { 0.0 } else { number };
    let bits = number.to_bits();
    let ordered = if bits >> 63 == 1 { !bits } else { bits | (1 << 63) };
    ordered.to_be_bytes()
}

/// The length of the value key at the start of `bytes`, and whether it is
/// exact (false for a truncated long string).
pub fn split_value_key(bytes: &[u8]) -> Result<(usize, bool), StorageError> {
    let malformed = || StorageError::Corrupt("malformed index key".to_owned());
    let tag = *bytes.first().ok_or_else(malformed)?;
    let len = match tag {
        TAG_NULL => 1,
        TAG_BOOLEAN => 2,
        TAG_NUMBER => 9,
        TAG_STRING => {
            let mut position = 1;
            loop {
                match bytes.get(position) {
                    None => return Err(malformed()),
                    Some(&ESCAPE) => match bytes.get(position + 1) {
                        Some(&ESCAPED_ZERO) => position += 2,
                        Some(&END_EXACT) => return Ok((position + 2, true)),
                        Some(&END_TRUNCATED) => return Ok((position + 2, false)),
                        _ => return Err(malformed()),
                    },
                    Some(_) => position += 1,
                }
            }
        }
        _ => return Err(malformed()),
    };
    if bytes.len() < len {
        return Err(malformed());
    }
    Ok((len, true))
}

/// The tag byte a value's key starts with, for scalars.
fn tag_of(value: &Value) -> Option<u8> {
    match value {
        Value::Null => Some(TAG_NULL),
        Value::Number(_) => Some(TAG_NUMBER),
        Value::String(_) => Some(TAG_STRING),
        Value::Bool(_) => Some(TAG_BOOLEAN),
        Value::Array(_) | Value::Object(_) => None,
    }
}

/// The index keys (under `path_prefix`) whose value equals `value`.
pub fn equal_range(path_prefix: &[u8], value: &Value) -> Option<KeyRange> {
    let mut group = path_prefix.to_vec();
    append_value_key(&mut group, value).then(|| KeyRange::prefix(group))
}

/// The index keys (under `path_prefix`) whose value lies within the bounds.
/// Only values of the bounds' JSON type are included, as the query language
/// never orders values of different types against each other. Returns
/// `None` when the bounds are not usable (both unbounded, different types,
/// or not scalars).
///
/// The range may include more than the bounds (a whole inexact group of
/// long strings), never less: readers re-check every candidate.
pub fn bounded_range(path_prefix: &[u8], lower: Bound<&Value>, upper: Bound<&Value>) -> Option<KeyRange> {
    fn bound_value(bound: Bound<&Value>) -> Option<&Value> {
        match bound {
            Bound::Included(value) | Bound::Excluded(value) => Some(value),
            Bound::Unbounded => None,
        }
    }
    let tags: Vec<u8> = [bound_value(lower), bound_value(upper)]
        .into_iter()
        .flatten()
        .map(tag_of)
        .collect::<Option<_>>()?;
    let tag = *tags.first()?;
    if tags.iter().any(|other| *other != tag) {
        return None;
    }
    // The key of a bound value, and whether that key stands for exactly it.
    let group_of = |value: &Value| -> (Vec<u8>, bool) {
        let mut group = path_prefix.to_vec();
        append_value_key(&mut group, value);
        let (_, exact) = split_value_key(&group[path_prefix.len()..]).expect("we just encoded it");
        (group, exact)
    };
    let mut type_start = path_prefix.to_vec();
    type_start.push(tag);
    let start = match lower {
        Bound::Unbounded => type_start.clone(),
        Bound::Included(value) => group_of(value).0,
        Bound::Excluded(value) => match group_of(value) {
            (group, true) => successor(&group)?,
            // An inexact group may hold strings greater than the bound.
            (group, false) => group,
        },
    };
    let end = match upper {
        Bound::Unbounded => successor(&type_start),
        Bound::Excluded(value) => match group_of(value) {
            (group, true) => Some(group),
            (group, false) => successor(&group),
        },
        Bound::Included(value) => successor(&group_of(value).0),
    };
    Some(KeyRange { start, end })
}

#[cfg(test)]
mod tests {
    use super::*;
    use canhazdb_core::query::compare_json;
    use serde_json::json;
    use std::cmp::Ordering;

    fn key(value: &Value) -> Vec<u8> {
        value_key(value).unwrap()
    }

    #[test]
    fn value_keys_order_like_compare_json_for_scalars() {
        let long_a = "a".repeat(MAX_INDEXED_STRING_BYTES + 10);
        let values = vec![
            json!(null),
            json!(-1e300),
            json!(-5),
            json!(-0.5),
            json!(0),
            json!(-0.0),
            json!(1e-300),
            json!(1),
            json!(1.0),
            json!(2.5),
            json!(u64::MAX),
            json!(""),
            json!("\u{0}"),
            json!("\u{0}a"),
            json!("a"),
            json!("a\u{0}"),
            json!("ab"),
            json!("b"),
            json!("é"),
            json!(long_a),
            json!(false),
            json!(true),
        ];
        for a in &values {
            for b in &values {
                let expected = compare_json(Some(a), Some(b));
                assert_eq!(key(a).cmp(&key(b)), expected, "{a} vs {b}");
            }
        }
    }

    #[test]
    fn long_strings_share_a_group_that_sorts_between_its_neighbours() {
        let prefix = "x".repeat(MAX_INDEXED_STRING_BYTES);
        let long_1 = json!(format!("{prefix}1"));
        let long_2 = json!(format!("{prefix}2"));
        assert_eq!(key(&long_1), key(&long_2));
        assert!(key(&json!(prefix.clone())) < key(&long_1));
        assert!(key(&long_1) < key(&json!(format!("{}y", &prefix[1..]))));
        let (len, exact) = split_value_key(&key(&long_1)).unwrap();
        assert_eq!((len, exact), (key(&long_1).len(), false));
        let (_, exact) = split_value_key(&key(&json!(prefix))).unwrap();
        assert!(exact);
    }

    #[test]
    fn value_keys_split_off_the_id_that_follows() {
        for value in [json!(null), json!(true), json!(3.5), json!("a\u{0}b"), json!("")] {
            let mut bytes = key(&value);
            let len = bytes.len();
            bytes.extend_from_slice(b"\x00\x01the-id");
            assert_eq!(split_value_key(&bytes).unwrap(), (len, true), "{value}");
        }
        assert!(split_value_key(b"").is_err());
        assert!(split_value_key(&[TAG_STRING, b'a']).is_err());
        assert!(split_value_key(&[TAG_NUMBER, 1, 2]).is_err());
        assert!(split_value_key(&[0x99]).is_err());
    }

    #[test]
    fn bounded_ranges_hold_exactly_the_values_within_them() {
        let prefix = index_path_prefix(1, "p");
        let values: Vec<Value> = vec![
            json!(null),
            json!(-3),
            json!(0),
            json!(1),
            json!(1.5),
            json!(2),
            json!(""),
            json!("a"),
            json!("b"),
            json!(false),
        ];
        let bounds = [json!(1), json!("a")];
        for bound in &bounds {
            let shapes: Vec<(Bound<&Value>, Bound<&Value>)> = vec![
                (Bound::Included(bound), Bound::Unbounded),
                (Bound::Excluded(bound), Bound::Unbounded),
                (Bound::Unbounded, Bound::Included(bound)),
                (Bound::Unbounded, Bound::Excluded(bound)),
                (Bound::Included(bound), Bound::Included(bound)),
                (Bound::Excluded(bound), Bound::Excluded(bound)),
            ];
            for (lower, upper) in shapes {
                let range = bounded_range(&prefix, lower, upper).unwrap();
                for value in &values {
                    let mut entry = prefix.clone();
                    append_value_key(&mut entry, value);
                    entry.extend_from_slice(b"some-id");
                    let in_key_range =
                        entry >= range.start && range.end.as_ref().is_none_or(|end| entry < *end);
                    let same_type = std::mem::discriminant(value) == std::mem::discriminant(bound);
                    // `beyond` is the side of the bound a value must lie on.
                    let within = |bound: Bound<&Value>, beyond: Ordering| match bound {
                        Bound::Unbounded => true,
                        Bound::Included(b) => compare_json(Some(value), Some(b)) != beyond.reverse(),
                        Bound::Excluded(b) => compare_json(Some(value), Some(b)) == beyond,
                    };
                    let expected =
                        same_type && within(lower, Ordering::Greater) && within(upper, Ordering::Less);
                    assert_eq!(in_key_range, expected, "{value} in {lower:?}..{upper:?}");
                }
            }
        }
        assert!(bounded_range(&prefix, Bound::Unbounded, Bound::Unbounded).is_none());
        assert!(bounded_range(&prefix, Bound::Included(&json!(1)), Bound::Included(&json!("z"))).is_none());
    }

    #[test]
    fn document_keys_keep_collections_apart_and_ids_ordered() {
        let a = document_key(1, "b");
        assert!(document_key(1, "a") < a);
        assert!(a < document_key(1, "ba"));
        assert!(document_key(1, "\u{10ffff}") < document_key(2, ""));
        assert_eq!(document_key_id(&a).unwrap(), "b");
        let range = collection_documents(1);
        assert!(range.start <= document_key(1, "") && document_key(1, "zzz") < range.end.unwrap());
        let ids = document_id_range(1, Bound::Excluded("b"), Bound::Included("c"));
        assert!(ids.start > document_key(1, "b") && ids.start <= document_key(1, "b\u{0}"));
        assert!(document_key(1, "c") < ids.end.clone().unwrap());
        assert!(document_key(1, "c\u{0}") >= ids.end.unwrap());
    }

    #[test]
    fn successor_carries_and_gives_up_on_all_ff() {
        assert_eq!(successor(&[1, 2]), Some(vec![1, 3]));
        assert_eq!(successor(&[1, 0xFF]), Some(vec![2]));
        assert_eq!(successor(&[0xFF, 0xFF]), None);
    }
}
