//! Per-call options, and turning a call's arguments into a core [`Request`].
//!
//! Arguments the server would certainly refuse (an invalid collection id, a
//! document that is not an object, a query that is not an object, a
//! non-string document id) fail here with [`Error::InvalidArgument`],
//! without a round trip.

use canhazdb_core::message::{CollectionId, LockOptions, ReadOptions, Request};
use canhazdb_core::protocol::LockStrategy;
use canhazdb_core::query::json_type_name;
use serde_json::{Map, Value};

use super::error::Error;

/// QUERY, FIELDS, ORDER and LIMIT of a GET.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct GetOptions {
    /// A MongoDB-style query object; `None` matches every document.
    pub query: Option<Value>,
    /// Field names (dotted paths allowed) to return; `id` is always returned.
    pub fields: Option<Vec<String>>,
    /// A string or an array of strings of `asc(field)` / `desc(field)` terms.
    pub order: Option<Value>,
    /// At most this many documents (the server requires it to be positive).
    pub limit: Option<u64>,
}

impl GetOptions {
    /// Options with only a query.
    pub fn query(query: Value) -> Self {
        GetOptions {
            query: Some(query),
            ..GetOptions::default()
        }
    }
}

/// QUERY, LOCK_ID and LOCK_STRATEGY of a write. POST ignores `query`.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct WriteOptions {
    /// Which documents PUT, PATCH and DELETE change; `None` means all.
    pub query: Option<Value>,
    /// The id of a lock this connection holds on the collection.
    pub lock_id: Option<String>,
    /// What to do when someone else holds the collection's lock; the
    /// server's default is [`LockStrategy::Wait`].
    pub lock_strategy: Option<LockStrategy>,
}

impl WriteOptions {
    /// Options with only a query.
    pub fn query(query: Value) -> Self {
        WriteOptions {
            query: Some(query),
            ..WriteOptions::default()
        }
    }

    fn lock(&self) -> LockOptions {
        LockOptions {
            lock_id: self.lock_id.clone(),
            strategy: self.lock_strategy.unwrap_or_default(),
        }
    }
}

fn collection_id(collection: &str) -> Result<CollectionId, Error> {
    Ok(CollectionId::new(collection)?)
}

/// A write's DATA must be an object.
fn object(value: Value, what: &str) -> Result<Map<String, Value>, Error> {
    match value {
        Value::Object(map) => Ok(map),
        other => Err(Error::InvalidArgument(format!(
            "{what} must be a JSON object, not {}",
            json_type_name(&other)
        ))),
    }
}

/// QUERY must be an object when present.
fn query(query: Option<Value>) -> Result<Option<Value>, Error> {
    match query {
        None | Some(Value::Object(_)) => Ok(query),
        Some(other) => Err(Error::InvalidArgument(format!(
            "query must be a JSON object, not {}",
            json_type_name(&other)
        ))),
    }
}

pub(crate) fn post(collection: &str, document: Value, options: WriteOptions) -> Result<Request, Error> {
    let document = object(document, "document")?;
    Ok(Request::Post {
        collection: collection_id(collection)?,
        lock: options.lock(),
        document,
    })
}

pub(crate) fn get(collection: &str, options: GetOptions) -> Result<Request, Error> {
    Ok(Request::Get {
        collection: collection_id(collection)?,
        read: ReadOptions {
            query: query(options.query)?,
            fields: options
                .fields
                .map(|fields| Value::Array(fields.into_iter().map(Value::String).collect())),
            order: options.order,
            limit: options.limit.map(Value::from),
        },
    })
}

pub(crate) fn count(collection: &str, filter: Option<Value>) -> Result<Request, Error> {
    Ok(Request::Count {
        collection: collection_id(collection)?,
        query: query(filter)?,
    })
}

pub(crate) fn put(collection: &str, document: Value, options: WriteOptions) -> Result<Request, Error> {
    Ok(Request::Put {
        collection: collection_id(collection)?,
        document: object(document, "document")?,
        lock: options.lock(),
        query: query(options.query)?,
    })
}

pub(crate) fn patch(collection: &str, patch: Value, options: WriteOptions) -> Result<Request, Error> {
    Ok(Request::Patch {
        collection: collection_id(collection)?,
        patch: object(patch, "patch")?,
        lock: options.lock(),
        query: query(options.query)?,
    })
}

pub(crate) fn delete(collection: &str, options: WriteOptions) -> Result<Request, Error> {
    Ok(Request::Delete {
        collection: collection_id(collection)?,
        lock: options.lock(),
        query: query(options.query)?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn invalid(result: Result<Request, Error>) -> String {
        match result {
            Err(Error::InvalidArgument(message)) => message,
            other => panic!("expected InvalidArgument, got {other:?}"),
        }
    }

    #[test]
    fn bad_arguments_fail_locally() {
        assert!(invalid(post("bad id", json!({}), WriteOptions::default())).contains("collection id"));
        assert!(invalid(post("t", json!([1]), WriteOptions::default()))
            .contains("document must be a JSON object"));
        assert!(invalid(get("t", GetOptions::query(json!([1])))).contains("query must be a JSON object"));
        assert!(invalid(patch("t", json!("x"), WriteOptions::default())).contains("patch must be"));
        assert!(invalid(count("", None)).contains("collection id"));
    }

    #[test]
    fn options_reach_the_request() {
        let request = get(
            "t",
            GetOptions {
                query: Some(json!({"a": 1})),
                fields: Some(vec!["a".into()]),
                order: Some(json!("desc(a)")),
                limit: Some(3),
            },
        )
        .unwrap();
        let payload = request.to_payload();
        assert_eq!(
            Value::Object(payload),
            json!({"10": "t", "40": {"a": 1}, "41": ["a"], "43": "desc(a)", "42": 3})
        );

        let options = WriteOptions {
            query: Some(json!({"a": 1})),
            lock_id: Some("L".into()),
            lock_strategy: Some(LockStrategy::Fail),
        };
        let payload = delete("t", options).unwrap().to_payload();
        assert_eq!(
            Value::Object(payload),
            json!({"10": "t", "40": {"a": 1}, "62": "L", "63": 64})
        );
    }
}
