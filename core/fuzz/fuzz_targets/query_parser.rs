//! Parses arbitrary bytes as JSON and then as QUERY, ORDER, FIELDS and LIMIT;
//! a parsed query is evaluated against a few documents. Nothing may panic.
#![no_main]

use canhazdb_core::query::{parse_limit, Fields, Order, Query};
use libfuzzer_sys::fuzz_target;
use serde_json::{json, Value};

fuzz_target!(|data: &[u8]| {
    let Ok(value) = serde_json::from_slice::<Value>(data) else { return };
    let documents = [json!({}), json!({"id": "1", "a": 1, "b": {"c": "x"}, "d": [1, 2], "e": null, "f": true})];
    if let Ok(query) = Query::parse(&value) {
        for document in &documents {
            let _ = query.matches(document);
        }
        let _ = query.index_predicates();
    }
    if let Ok(order) = Order::parse(&value) {
        let _ = order.compare(&documents[0], &documents[1]);
    }
    if let Ok(fields) = Fields::parse(&value) {
        let _ = fields.project(&documents[1]);
    }
    let _ = parse_limit(&value);
});
