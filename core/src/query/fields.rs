//! FIELDS: which parts of each document a GET returns.

use std::collections::BTreeMap;

use serde_json::{Map, Value};

use super::error::{json_type_name, QueryError};

/// The maximum number of dot-separated segments in one FIELDS name.
/// Projection recurses once per segment; no document nests this deep.
pub const MAX_FIELD_SEGMENTS: usize = 64;

/// A parsed FIELDS list. `id` is always kept.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Fields {
    /// The names as listed, for callers that want to show or forward them.
    names: Vec<String>,
    /// The names merged into a tree of path segments, rooted at the document.
    tree: FieldTree,
}

/// One object level of the projection.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
struct FieldTree {
    /// Keys to visit at this level. A child that is `whole` is copied as is;
    /// otherwise only its own selected children are.
    children: BTreeMap<String, FieldTree>,
    /// This path was named itself, so its entire value is kept (and a longer
    /// name under it, `a.b` next to `a`, adds nothing).
    whole: bool,
}

impl FieldTree {
    fn insert(&mut self, segments: &[&str]) {
        let Some((first, rest)) = segments.split_first() else {
            self.whole = true;
            self.children.clear();
            return;
        };
        if self.whole {
            return;
        }
        self.children.entry((*first).to_owned()).or_default().insert(rest);
    }

    /// The selected parts of `source`; keys with nothing selected in them are
    /// left out entirely rather than kept as empty objects.
    fn project(&self, source: &Map<String, Value>) -> Map<String, Value> {
        let mut projected = Map::new();
        for (key, child) in &self.children {
            let Some(value) = source.get(key) else {
                continue;
            };
            if child.whole {
                projected.insert(key.clone(), value.clone());
            } else if let Value::Object(inner) = value {
                let inner = child.project(inner);
                if !inner.is_empty() {
                    projected.insert(key.clone(), Value::Object(inner));
                }
            }
        }
        projected
    }
}

impl Fields {
    /// Parse FIELDS: an array of (possibly dotted) field names. An empty
    /// array is allowed and returns only `id`.
    ///
    /// ```
    /// # use canhazdb_core::query::Fields;
    /// # use serde_json::json;
    /// let fields = Fields::parse(&json!(["name.first", "age"])).unwrap();
    /// let document = json!({"id": "1", "name": {"first": "Ada", "last": "L"}, "age": 36, "x": 0});
    /// assert_eq!(
    ///     fields.project(&document),
    ///     json!({"id": "1", "name": {"first": "Ada"}, "age": 36})
    /// );
    /// ```
    pub fn parse(fields: &Value) -> Result<Fields, QueryError> {
        let Value::Array(entries) = fields else {
            return Err(QueryError::new(format!(
                "FIELDS must be an array of field names, got {}",
                json_type_name(fields)
            )));
        };
        let mut names = Vec::with_capacity(entries.len());
        let mut tree = FieldTree::default();
        tree.insert(&["id"]);
        for (index, entry) in entries.iter().enumerate() {
            let Value::String(name) = entry else {
                return Err(QueryError::new(format!(
                    "FIELDS entry {index} must be a field name string, got {}",
                    json_type_name(entry)
                )));
            };
            if name.is_empty() {
                return Err(QueryError::new(format!(
                    "FIELDS entry {index} is an empty field name"
                )));
            }
            let segments: Vec<&str> = name.split('.').collect();
            if segments.len() > MAX_FIELD_SEGMENTS {
                return Err(QueryError::new(format!(
                    "FIELDS entry {index} has more than {MAX_FIELD_SEGMENTS} dotted segments"
                )));
            }
            tree.insert(&segments);
            names.push(name.clone());
        }
        Ok(Fields { names, tree })
    }

    /// The field names as listed (without the implicit `id`).
    pub fn names(&self) -> &[String] {
        &self.names
    }

    /// A copy of `document` holding only the listed paths and `id`. Dotted
    /// names keep their nesting (`a.b` gives `{"a": {"b": ..}}`); paths the
    /// document lacks are left out. A non-object document has no fields, so
    /// it projects to `{}`.
    pub fn project(&self, document: &Value) -> Value {
        match document {
            Value::Object(object) => Value::Object(self.tree.project(object)),
            _ => Value::Object(Map::new()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn project(fields: Value, document: Value) -> Value {
        Fields::parse(&fields).unwrap().project(&document)
    }

    fn error(fields: Value) -> String {
        Fields::parse(&fields)
            .expect_err("should be rejected")
            .to_string()
    }

    #[test]
    fn keeps_only_listed_fields_and_id() {
        let document = json!({"id": "7", "a": 1, "b": [2], "c": {"d": 3}});
        assert_eq!(
            project(json!(["a"]), document.clone()),
            json!({"id": "7", "a": 1})
        );
        assert_eq!(
            project(json!(["b", "c"]), document.clone()),
            json!({"id": "7", "b": [2], "c": {"d": 3}})
        );
        assert_eq!(project(json!([]), document.clone()), json!({"id": "7"}));
        assert_eq!(project(json!(["id"]), document), json!({"id": "7"}));
    }

    #[test]
    fn dotted_fields_keep_their_nesting() {
        let document = json!({"id": "1", "a": {"b": {"c": 1, "d": 2}, "e": 3}, "f": 4});
        assert_eq!(
            project(json!(["a.b.c"]), document.clone()),
            json!({"id": "1", "a": {"b": {"c": 1}}})
        );
        assert_eq!(
            project(json!(["a.b.d", "a.e"]), document.clone()),
            json!({"id": "1", "a": {"b": {"d": 2}, "e": 3}})
        );
    }

    #[test]
    fn a_whole_field_subsumes_paths_under_it() {
        let document = json!({"id": "1", "a": {"b": 1, "c": 2}});
        let whole = json!({"id": "1", "a": {"b": 1, "c": 2}});
        assert_eq!(project(json!(["a.b", "a"]), document.clone()), whole);
        assert_eq!(project(json!(["a", "a.b"]), document), whole);
    }

    #[test]
    fn missing_paths_are_left_out() {
        let document = json!({"id": "1", "a": {"x": 1}, "s": "text", "n": null});
        assert_eq!(project(json!(["a.b"]), document.clone()), json!({"id": "1"}));
        assert_eq!(project(json!(["s.len"]), document.clone()), json!({"id": "1"}));
        assert_eq!(project(json!(["nope"]), document.clone()), json!({"id": "1"}));
        assert_eq!(project(json!(["n"]), document), json!({"id": "1", "n": null}));
        assert_eq!(
            project(json!(["a"]), json!({"a": 1})),
            json!({"a": 1}),
            "no id, none added"
        );
    }

    #[test]
    fn non_object_documents_project_to_empty() {
        assert_eq!(project(json!(["a"]), json!([1])), json!({}));
    }

    #[test]
    fn names_are_kept_as_listed() {
        let fields = Fields::parse(&json!(["b", "a.c"])).unwrap();
        assert_eq!(fields.names(), ["b", "a.c"]);
    }

    #[test]
    fn malformed_fields_are_named() {
        assert_eq!(
            error(json!("a")),
            "FIELDS must be an array of field names, got a string"
        );
        assert_eq!(
            error(json!(["a", 2])),
            "FIELDS entry 1 must be a field name string, got a number"
        );
        assert_eq!(error(json!([""])), "FIELDS entry 0 is an empty field name");
        let deep = vec!["x"; MAX_FIELD_SEGMENTS + 1].join(".");
        assert_eq!(
            error(json!([deep])),
            "FIELDS entry 0 has more than 64 dotted segments"
        );
        let ok = vec!["x"; MAX_FIELD_SEGMENTS].join(".");
        assert!(Fields::parse(&json!([ok])).is_ok());
    }
}
