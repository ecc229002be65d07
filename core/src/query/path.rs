//! Dotted field paths: `"a.b.c"` reaches into nested objects.
//!
//! Paths only descend through objects; a path segment never indexes into an
//! array (there is no MongoDB-style array traversal). A key that itself
//! contains a dot is therefore unreachable, which is the price of the dotted
//! syntax the protocol prescribes.

use serde_json::Value;

/// Look up a dotted `path` in `document`.
///
/// Returns `None` when any segment is missing or a non-final segment is not
/// an object. Splitting is lazy, so this never allocates.
///
/// ```
/// # use canhazdb_core::query::lookup;
/// # use serde_json::json;
/// let document = json!({"a": {"b": 1}});
/// assert_eq!(lookup(&document, "a.b"), Some(&json!(1)));
/// assert_eq!(lookup(&document, "a.c"), None);
/// ```
pub fn lookup<'a>(document: &'a Value, path: &str) -> Option<&'a Value> {
    path.split('.')
        .try_fold(document, |current, segment| current.as_object()?.get(segment))
}

/// A dotted path split once, at parse time, so evaluating a query against
/// many documents does not rescan the string for dots each time.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct FieldPath {
    /// The path as the client wrote it, for error messages and predicates.
    dotted: String,
    /// `dotted` split on `.`; never empty (`"".split('.')` yields one `""`).
    segments: Box<[String]>,
}

impl FieldPath {
    pub(crate) fn new(dotted: &str) -> FieldPath {
        FieldPath {
            dotted: dotted.to_owned(),
            segments: dotted.split('.').map(str::to_owned).collect(),
        }
    }

    /// The path as written, e.g. `"a.b"`.
    pub(crate) fn dotted(&self) -> &str {
        &self.dotted
    }

    /// Same result as [`lookup`], without splitting.
    #[inline]
    pub(crate) fn resolve<'a>(&self, document: &'a Value) -> Option<&'a Value> {
        let mut current = document;
        for segment in self.segments.iter() {
            current = current.as_object()?.get(segment.as_str())?;
        }
        Some(current)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn lookup_reads_top_level_and_nested_fields() {
        let document = json!({"a": 1, "b": {"c": {"d": "deep"}}, "n": null});
        assert_eq!(lookup(&document, "a"), Some(&json!(1)));
        assert_eq!(lookup(&document, "b.c.d"), Some(&json!("deep")));
        assert_eq!(lookup(&document, "b.c"), Some(&json!({"d": "deep"})));
        assert_eq!(lookup(&document, "n"), Some(&json!(null)));
    }

    #[test]
    fn lookup_misses_absent_fields_and_non_objects() {
        let document = json!({"a": 1, "list": [{"x": 1}], "s": "text"});
        assert_eq!(lookup(&document, "missing"), None);
        assert_eq!(lookup(&document, "a.b"), None, "a number has no fields");
        assert_eq!(lookup(&document, "s.len"), None);
        assert_eq!(lookup(&document, "list.0"), None, "arrays are not indexed");
        assert_eq!(lookup(&document, "list.x"), None);
        assert_eq!(lookup(&json!([1]), "0"), None);
    }

    #[test]
    fn empty_segments_are_ordinary_keys() {
        let document = json!({"": {"": 7}, "a": {"": 8}});
        assert_eq!(lookup(&document, ""), Some(&json!({"": 7})));
        assert_eq!(lookup(&document, "."), Some(&json!(7)));
        assert_eq!(lookup(&document, "a."), Some(&json!(8)));
    }

    #[test]
    fn field_path_resolves_like_lookup() {
        let document = json!({"a": {"b": [1, 2]}, "c": 3});
        for path in ["a", "a.b", "c", "c.d", "x", "", "a.b.c"] {
            let field_path = FieldPath::new(path);
            assert_eq!(field_path.resolve(&document), lookup(&document, path), "{path}");
            assert_eq!(field_path.dotted(), path);
        }
        assert_eq!(*FieldPath::new("a.b").segments, ["a", "b"]);
    }
}
