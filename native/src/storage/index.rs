//! Which index entries a document yields.
//!
//! Every scalar (null, boolean, number, string) is indexed at its top-level
//! field and at every dotted path into nested objects, so any equality,
//! `$in` or range predicate can be answered from the index. Not indexed:
//!
//! * the top-level `id` (the documents table is already keyed by it);
//! * anything inside an array (the query language never looks into arrays);
//! * keys containing `.` (a dotted path can never address them);
//! * paths deeper than [`MAX_INDEX_DEPTH`] segments or longer than
//!   [`MAX_INDEXED_PATH_BYTES`] (bounded key size and work per document).
//!
//! The planner consults [`is_indexable_path`] so it never relies on the
//! index for a path that is not in it.

use serde_json::{Map, Value};

use super::codec::ID_FIELD;
use super::key_encoding::{append_path, append_value_key};

/// Deepest indexed path, in segments (`a.b.c` is 3).
pub const MAX_INDEX_DEPTH: usize = 8;

/// Longest indexed path, in bytes.
pub const MAX_INDEXED_PATH_BYTES: usize = 512;

/// Whether the index holds every scalar a document has at `path`.
pub fn is_indexable_path(path: &str) -> bool {
    path != ID_FIELD && path.len() <= MAX_INDEXED_PATH_BYTES && path.split('.').count() <= MAX_INDEX_DEPTH
}

/// The index entries of a document, each as `u16 path length ++ path ++
/// value key` (the caller adds the collection in front and the id behind).
/// Sorted and free of duplicates, so two documents' entries can be diffed.
pub fn index_entries(document: &Map<String, Value>) -> Vec<Vec<u8>> {
    let mut entries = Vec::new();
    let mut path = String::new();
    collect(document, &mut path, 1, &mut entries);
    entries.sort_unstable();
    entries.dedup();
    entries
}

fn collect(object: &Map<String, Value>, path: &mut String, depth: usize, out: &mut Vec<Vec<u8>>) {
    for (key, value) in object {
        if key.contains('.') || (depth == 1 && key == ID_FIELD) {
            continue;
        }
        let parent_len = path.len();
        if depth > 1 {
            path.push('.');
        }
        path.push_str(key);
        if path.len() <= MAX_INDEXED_PATH_BYTES {
            match value {
                Value::Object(child) if depth < MAX_INDEX_DEPTH => collect(child, path, depth + 1, out),
                Value::Object(_) | Value::Array(_) => {}
                scalar => {
                    let mut entry = Vec::with_capacity(2 + path.len() + 16);
                    append_path(&mut entry, path);
                    append_value_key(&mut entry, scalar);
                    out.push(entry);
                }
            }
        }
        path.truncate(parent_len);
    }
}

/// `entries` minus `others`; both sorted as [`index_entries`] returns them.
pub fn difference<'a>(entries: &'a [Vec<u8>], others: &'a [Vec<u8>]) -> impl Iterator<Item = &'a Vec<u8>> {
    entries
        .iter()
        .filter(move |entry| others.binary_search(entry).is_err())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::storage::key_encoding::value_key;
    use canhazdb_core::query::lookup;
    use serde_json::json;

    fn paths(document: Value) -> Vec<String> {
        let mut paths: Vec<String> = index_entries(document.as_object().unwrap())
            .iter()
            .map(|entry| {
                let len = u16::from_be_bytes([entry[0], entry[1]]) as usize;
                String::from_utf8(entry[2..2 + len].to_vec()).unwrap()
            })
            .collect();
        paths.sort();
        paths
    }

    #[test]
    fn scalars_at_every_object_path_are_indexed() {
        let document = json!({
            "id": "x", "a": 1, "b": {"c": "s", "d": {"e": null, "f": true}},
            "list": [1, 2, {"g": 3}], "empty": {}, "dotted.key": 5, "": {"": 6},
            "nested": {"id": 7}
        });
        assert_eq!(paths(document), [".", "a", "b.c", "b.d.e", "b.d.f", "nested.id"]);
    }

    #[test]
    fn every_entry_is_what_lookup_finds_at_its_path() {
        let document = json!({"a": {"b": {"c": 2.5}}, "s": "text", "": {"x": false}});
        for entry in index_entries(document.as_object().unwrap()) {
            let len = u16::from_be_bytes([entry[0], entry[1]]) as usize;
            let path = std::str::from_utf8(&entry[2..2 + len]).unwrap();
            let found = lookup(&document, path).unwrap();
            assert_eq!(value_key(found).unwrap(), entry[2 + len..], "{path}");
            assert!(is_indexable_path(path));
        }
    }

    #[test]
    fn depth_is_capped() {
        let mut value = json!(1);
        for _ in 0..MAX_INDEX_DEPTH + 2 {
            value = json!({"k": value});
        }
        let indexed = paths(json!({"root": value}));
        assert!(indexed.is_empty(), "{indexed:?}");
        let deepest = ["k"; MAX_INDEX_DEPTH].join(".");
        assert!(is_indexable_path(&deepest));
        assert!(!is_indexable_path(&format!("{deepest}.k")));
        assert_eq!(
            paths(json!({"k": {"k": {"k": {"k": {"k": {"k": {"k": {"k": 1}}}}}}}})),
            [deepest]
        );
    }

    #[test]
    fn difference_keeps_what_the_other_lacks() {
        let old = index_entries(json!({"a": 1, "b": 2}).as_object().unwrap());
        let new = index_entries(json!({"a": 1, "b": 3}).as_object().unwrap());
        assert_eq!(difference(&old, &new).count(), 1);
        assert_eq!(difference(&old, &old).count(), 0);
    }
}
