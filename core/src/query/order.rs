//! ORDER: `"asc(a) desc(b.c)"`, `"asc(a),desc(b)"` or `["asc(a)", "desc(b)"]`.

use std::cmp::Ordering;

use serde_json::Value;

use super::error::{json_type_name, QueryError};
use super::path::lookup;
use super::value_order::compare_json;

/// Which way one ORDER term sorts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Direction {
    Ascending,
    Descending,
}

/// One `asc(path)` or `desc(path)`.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct OrderTerm {
    /// A (possibly dotted) field path.
    pub path: String,
    pub direction: Direction,
}

/// A parsed ORDER: sort keys, most significant first.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Default)]
pub struct Order {
    pub terms: Vec<OrderTerm>,
}

impl Order {
    /// Parse an ORDER: a string or an array of strings, each holding one or
    /// more `asc(field)`/`desc(field)` terms separated by whitespace and/or
    /// commas. Terms are taken in order across all strings; the first is the
    /// primary key. At least one term is required.
    ///
    /// ```
    /// # use canhazdb_core::query::{Direction, Order};
    /// # use serde_json::json;
    /// let order = Order::parse(&json!(["asc(a) desc(b.c)", "asc(d)"])).unwrap();
    /// assert_eq!(order.terms.len(), 3);
    /// assert_eq!(order.terms[1].path, "b.c");
    /// assert_eq!(order.terms[1].direction, Direction::Descending);
    /// ```
    pub fn parse(order: &Value) -> Result<Order, QueryError> {
        let mut terms = Vec::new();
        match order {
            Value::String(text) => parse_terms(text, &mut terms)?,
            Value::Array(entries) => {
                for (index, entry) in entries.iter().enumerate() {
                    let text = entry.as_str().ok_or_else(|| {
                        QueryError::new(format!(
                            "ORDER entry {index} must be a string like \"asc(field)\", got {}",
                            json_type_name(entry)
                        ))
                    })?;
                    parse_terms(text, &mut terms)?;
                }
            }
            other => {
                return Err(QueryError::new(format!(
                    "ORDER must be a string or an array of strings, got {}",
                    json_type_name(other)
                )))
            }
        }
        if terms.is_empty() {
            return Err(QueryError::new(
                "ORDER needs at least one asc(field) or desc(field) term",
            ));
        }
        Ok(Order { terms })
    }

    /// Compare two documents by the terms in turn, each by the total order
    /// of [`compare_json`] (missing fields first when ascending).
    pub fn compare(&self, a: &Value, b: &Value) -> Ordering {
        for term in &self.terms {
            let ordering = compare_json(lookup(a, &term.path), lookup(b, &term.path));
            let ordering = match term.direction {
                Direction::Ascending => ordering,
                Direction::Descending => ordering.reverse(),
            };
            if ordering != Ordering::Equal {
                return ordering;
            }
        }
        Ordering::Equal
    }

    /// Sort `documents` by [`Order::compare`]. Stable: documents that
    /// compare equal keep their relative order.
    pub fn sort(&self, documents: &mut [Value]) {
        documents.sort_by(|a, b| self.compare(a, b));
    }
}

fn is_separator(c: char) -> bool {
    c.is_whitespace() || c == ','
}

/// Parse every term in `text`, appending them to `terms`.
fn parse_terms(text: &str, terms: &mut Vec<OrderTerm>) -> Result<(), QueryError> {
    let mut rest = text.trim_start_matches(is_separator);
    while !rest.is_empty() {
        let (term, after) = parse_one_term(rest)?;
        terms.push(term);
        if after.starts_with(|c: char| !is_separator(c)) {
            let next = after.split(is_separator).next().unwrap_or(after);
            return Err(QueryError::new(format!(
                "ORDER terms must be separated by spaces or commas, found \"{next}\" \
                 right after a term in \"{text}\""
            )));
        }
        rest = after.trim_start_matches(is_separator);
    }
    Ok(())
}

/// Parse the term at the start of `text` (which starts with a non-separator);
/// returns it and the text after its closing parenthesis.
fn parse_one_term(text: &str) -> Result<(OrderTerm, &str), QueryError> {
    let (direction, inner) = if let Some(inner) = text.strip_prefix("asc(") {
        (Direction::Ascending, inner)
    } else if let Some(inner) = text.strip_prefix("desc(") {
        (Direction::Descending, inner)
    } else {
        let word = text.split(is_separator).next().unwrap_or(text);
        return Err(QueryError::new(format!(
            "ORDER term \"{word}\" is not asc(field) or desc(field)"
        )));
    };
    let opening = text.len() - inner.len();
    let Some(close) = inner.find(')') else {
        return Err(QueryError::new(format!(
            "ORDER term \"{text}\" is missing its closing parenthesis"
        )));
    };
    let term_text = &text[..opening + close + 1];
    let path = inner[..close].trim();
    if path.is_empty() {
        return Err(QueryError::new(format!(
            "ORDER term \"{term_text}\" names no field"
        )));
    }
    if path.contains('(') {
        return Err(QueryError::new(format!(
            "ORDER term \"{term_text}\" has a field name containing \"(\""
        )));
    }
    let term = OrderTerm {
        path: path.to_owned(),
        direction,
    };
    Ok((term, &inner[close + 1..]))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn asc(path: &str) -> OrderTerm {
        OrderTerm {
            path: path.into(),
            direction: Direction::Ascending,
        }
    }

    fn desc(path: &str) -> OrderTerm {
        OrderTerm {
            path: path.into(),
            direction: Direction::Descending,
        }
    }

    fn terms(order: Value) -> Vec<OrderTerm> {
        Order::parse(&order).unwrap().terms
    }

    fn error(order: Value) -> String {
        Order::parse(&order).expect_err("should be rejected").to_string()
    }

    #[test]
    fn single_terms() {
        assert_eq!(terms(json!("asc(a)")), [asc("a")]);
        assert_eq!(terms(json!("desc(a.b)")), [desc("a.b")]);
        assert_eq!(terms(json!(["desc(x)"])), [desc("x")]);
    }

    #[test]
    fn separators_between_terms() {
        let expected = [asc("a"), desc("b")];
        for text in [
            "asc(a) desc(b)",
            "asc(a),desc(b)",
            "asc(a), desc(b)",
            "asc(a) , desc(b)",
            "  asc(a)\t\ndesc(b)  ",
            ",asc(a),,desc(b),",
        ] {
            assert_eq!(terms(json!(text)), expected, "{text:?}");
        }
    }

    #[test]
    fn arrays_concatenate_terms_in_order() {
        assert_eq!(
            terms(json!(["asc(a) desc(b)", "asc(c)", "desc(d),asc(e)"])),
            [asc("a"), desc("b"), asc("c"), desc("d"), asc("e")]
        );
    }

    #[test]
    fn whitespace_inside_parentheses_is_trimmed() {
        assert_eq!(terms(json!("asc( a.b )")), [asc("a.b")]);
    }

    #[test]
    fn malformed_orders_are_named() {
        assert_eq!(
            error(json!(5)),
            "ORDER must be a string or an array of strings, got a number"
        );
        assert_eq!(
            error(json!({})),
            "ORDER must be a string or an array of strings, got an object"
        );
        assert_eq!(
            error(json!(["asc(a)", 1])),
            "ORDER entry 1 must be a string like \"asc(field)\", got a number"
        );
        assert_eq!(
            error(json!("")),
            "ORDER needs at least one asc(field) or desc(field) term"
        );
        assert_eq!(
            error(json!(" , ")),
            "ORDER needs at least one asc(field) or desc(field) term"
        );
        assert_eq!(
            error(json!([])),
            "ORDER needs at least one asc(field) or desc(field) term"
        );
        assert_eq!(
            error(json!("a")),
            "ORDER term \"a\" is not asc(field) or desc(field)"
        );
        assert_eq!(
            error(json!("asc(a) up(b)")),
            "ORDER term \"up(b)\" is not asc(field) or desc(field)"
        );
        assert_eq!(
            error(json!("ASC(a)")),
            "ORDER term \"ASC(a)\" is not asc(field) or desc(field)"
        );
        assert_eq!(
            error(json!("asc (a)")),
            "ORDER term \"asc\" is not asc(field) or desc(field)"
        );
        assert_eq!(
            error(json!("asc(a")),
            "ORDER term \"asc(a\" is missing its closing parenthesis"
        );
        assert_eq!(error(json!("asc()")), "ORDER term \"asc()\" names no field");
        assert_eq!(error(json!("desc(  )")), "ORDER term \"desc(  )\" names no field");
        assert_eq!(
            error(json!("asc(a(b))")),
            "ORDER term \"asc(a(b)\" has a field name containing \"(\""
        );
        assert_eq!(
            error(json!("asc(a)desc(b)")),
            "ORDER terms must be separated by spaces or commas, found \"desc(b)\" \
             right after a term in \"asc(a)desc(b)\""
        );
    }

    #[test]
    fn compare_uses_terms_in_turn() {
        let order = Order::parse(&json!("asc(a) desc(b)")).unwrap();
        let doc = |a: Value, b: Value| json!({"a": a, "b": b});
        assert_eq!(
            order.compare(&doc(json!(1), json!(1)), &doc(json!(2), json!(9))),
            Ordering::Less
        );
        assert_eq!(
            order.compare(&doc(json!(1), json!(1)), &doc(json!(1), json!(9))),
            Ordering::Greater
        );
        assert_eq!(
            order.compare(&doc(json!(1), json!(1)), &doc(json!(1.0), json!(1))),
            Ordering::Equal
        );
    }

    #[test]
    fn missing_fields_sort_first_ascending_and_last_descending() {
        let present = json!({"a": null});
        let missing = json!({});
        let ascending = Order::parse(&json!("asc(a)")).unwrap();
        let descending = Order::parse(&json!("desc(a)")).unwrap();
        assert_eq!(ascending.compare(&missing, &present), Ordering::Less);
        assert_eq!(descending.compare(&missing, &present), Ordering::Greater);
    }

    #[test]
    fn sort_follows_the_total_order_and_is_stable() {
        let order = Order::parse(&json!("asc(v)")).unwrap();
        let mut documents = vec![
            json!({"id": "bool", "v": true}),
            json!({"id": "array", "v": [1]}),
            json!({"id": "object", "v": {"k": 1}}),
            json!({"id": "string", "v": "s"}),
            json!({"id": "two", "v": 2}),
            json!({"id": "one", "v": 1}),
            json!({"id": "one-again", "v": 1.0}),
            json!({"id": "null", "v": null}),
            json!({"id": "missing"}),
        ];
        order.sort(&mut documents);
        let ids: Vec<&str> = documents.iter().map(|d| d["id"].as_str().unwrap()).collect();
        assert_eq!(
            ids,
            [
                "missing",
                "null",
                "one",
                "one-again",
                "two",
                "string",
                "object",
                "array",
                "bool"
            ]
        );
    }

    #[test]
    fn sort_by_dotted_path_descending() {
        let order = Order::parse(&json!("desc(a.b)")).unwrap();
        let mut documents = vec![json!({"a": {"b": 1}}), json!({"a": {"b": 3}}), json!({"a": 5})];
        order.sort(&mut documents);
        assert_eq!(
            documents,
            [json!({"a": {"b": 3}}), json!({"a": {"b": 1}}), json!({"a": 5})]
        );
    }
}
