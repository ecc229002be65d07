//! The one error type of the query language.
//!
//! Every problem with a QUERY, ORDER, FIELDS or LIMIT becomes a
//! `STATUS_BAD_REQUEST` on the wire, so callers need nothing but a clear,
//! human-readable message that names the offending operator or field.

/// A QUERY, ORDER, FIELDS or LIMIT the client sent is malformed.
///
/// `Display` is the message to hand back to the client, for example
/// `unknown operator $foo on field "age"`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct QueryError(String);

impl QueryError {
    /// An error with this message.
    pub fn new(message: impl Into<String>) -> QueryError {
        QueryError(message.into())
    }

    /// The message, the same text `Display` shows.
    pub fn message(&self) -> &str {
        &self.0
    }
}

/// The name of a JSON value's type, for error messages ("got a string").
pub fn json_type_name(value: &serde_json::Value) -> &'static str {
    use serde_json::Value;
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn display_is_the_message() {
        let error = QueryError::new("unknown operator $foo on field \"age\"");
        assert_eq!(error.to_string(), "unknown operator $foo on field \"age\"");
        assert_eq!(error.message(), "unknown operator $foo on field \"age\"");
    }

    #[test]
    fn type_names_read_naturally() {
        assert_eq!(json_type_name(&json!(null)), "null");
        assert_eq!(json_type_name(&json!(true)), "a boolean");
        assert_eq!(json_type_name(&json!(1.5)), "a number");
        assert_eq!(json_type_name(&json!("s")), "a string");
        assert_eq!(json_type_name(&json!([])), "an array");
        assert_eq!(json_type_name(&json!({})), "an object");
    }
}
