//! The query language, FIELDS and ORDER (spec section 3, "Queries").

use canhazdb_tests::proto::{ordered_ids, sorted};
use canhazdb_tests::{ids_of, RawConn, TestServer};
use serde_json::{json, Value};

/// Nine documents whose `v` covers every JSON type, plus missing.
fn dataset() -> Vec<Value> {
    vec![
        json!({"id": "d1", "v": 1, "s": "apple", "o": {"x": 1, "y": {"z": "deep"}}, "b": true, "nul": null}),
        json!({"id": "d2", "v": 2.5, "s": "banana", "o": {"x": 2}, "b": false}),
        json!({"id": "d3", "v": 10, "s": "cherry", "o": {"x": 3}}),
        json!({"id": "d4", "v": "10", "s": 5}),
        json!({"id": "d5", "v": null}),
        json!({"id": "d6"}),
        json!({"id": "d7", "v": [1, 2]}),
        json!({"id": "d8", "v": {"k": 1}}),
        json!({"id": "d9", "v": true}),
    ]
}

async fn seeded() -> (TestServer, RawConn) {
    let server = TestServer::start().await;
    let mut conn = RawConn::connect(server.addr()).await;
    for document in dataset() {
        conn.post("qs", document).await;
    }
    (server, conn)
}

/// Runs each query with GET and COUNT and compares the matched ids.
async fn check(conn: &mut RawConn, cases: &[(Value, &[&str])]) {
    let mut failures = Vec::new();
    for (query, expected) in cases {
        let found = ids_of(&Value::Array(conn.get("qs", json!({"40": query})).await));
        let expected = sorted(expected);
        if found != expected {
            failures.push(format!("GET {query}: expected {expected:?}, observed {found:?}"));
        }
        let count = conn.count("qs", json!({"40": query})).await;
        if count != expected.len() as u64 {
            failures.push(format!(
                "COUNT {query}: expected {}, observed {count}",
                expected.len()
            ));
        }
    }
    assert!(failures.is_empty(), "query mismatches:\n{}", failures.join("\n"));
}

#[tokio::test]
async fn equality_and_dotted_paths() {
    let (_server, mut conn) = seeded().await;
    check(
        &mut conn,
        &[
            (json!({"v": 10}), &["d3"]),
            (json!({"v": "10"}), &["d4"]),
            (json!({"v": 2.5}), &["d2"]),
            (json!({"s": "apple"}), &["d1"]),
            (json!({"b": true}), &["d1"]),
            (json!({"b": false}), &["d2"]),
            (json!({"v": true}), &["d9"]),
            (json!({"id": "d7"}), &["d7"]),
            (json!({"o.x": 2}), &["d2"]),
            (json!({"o.y.z": "deep"}), &["d1"]),
            (json!({"o.y.z": "shallow"}), &[]),
            (json!({"missing.path": 1}), &[]),
            (json!({}), &["d1", "d2", "d3", "d4", "d5", "d6", "d7", "d8", "d9"]),
        ],
    )
    .await;
}

#[tokio::test]
async fn eq_and_ne_with_cross_type_values() {
    let (_server, mut conn) = seeded().await;
    check(
        &mut conn,
        &[
            (json!({"v": {"$eq": 1}}), &["d1"]),
            (json!({"v": {"$eq": "10"}}), &["d4"]),
            (json!({"o.x": {"$eq": 3}}), &["d3"]),
            // $ne is true across types; missing values are left out with $exists.
            (
                json!({"$and": [{"v": {"$exists": true}}, {"v": {"$ne": 1}}]}),
                &["d2", "d3", "d4", "d5", "d7", "d8", "d9"],
            ),
            (
                json!({"$and": [{"v": {"$exists": true}}, {"v": {"$ne": "10"}}]}),
                &["d1", "d2", "d3", "d5", "d7", "d8", "d9"],
            ),
        ],
    )
    .await;
}

#[tokio::test]
async fn ordering_operators_compare_only_within_a_type() {
    let (_server, mut conn) = seeded().await;
    check(
        &mut conn,
        &[
            (json!({"v": {"$gt": 2}}), &["d2", "d3"]),
            (json!({"v": {"$gte": 2.5}}), &["d2", "d3"]),
            (json!({"v": {"$lt": 10}}), &["d1", "d2"]),
            (json!({"v": {"$lte": 10}}), &["d1", "d2", "d3"]),
            (json!({"v": {"$gt": 100}}), &[]),
            // strings compare with strings only: "10" > "1", numbers are not strings
            (json!({"v": {"$gt": "1"}}), &["d4"]),
            (json!({"v": {"$lt": "2"}}), &["d4"]),
            (json!({"s": {"$gt": "b"}}), &["d2", "d3"]),
            (json!({"s": {"$lte": "banana"}}), &["d1", "d2"]),
            (json!({"s": {"$lt": 100}}), &["d4"]),
            // several operators on one field are ANDed
            (json!({"v": {"$gt": 1, "$lt": 10}}), &["d2"]),
            (json!({"o.x": {"$gte": 2}}), &["d2", "d3"]),
        ],
    )
    .await;
}

#[tokio::test]
async fn in_and_nin() {
    let (_server, mut conn) = seeded().await;
    check(
        &mut conn,
        &[
            (json!({"v": {"$in": [1, "10"]}}), &["d1", "d4"]),
            (json!({"v": {"$in": [10]}}), &["d3"]),
            (json!({"v": {"$in": []}}), &[]),
            (
                json!({"s": {"$in": ["apple", "cherry", "durian"]}}),
                &["d1", "d3"],
            ),
            (json!({"o.x": {"$in": [1, 3]}}), &["d1", "d3"]),
            (
                json!({"$and": [{"v": {"$exists": true}}, {"v": {"$nin": [1, 10]}}]}),
                &["d2", "d4", "d5", "d7", "d8", "d9"],
            ),
            (
                json!({"$and": [{"s": {"$exists": true}}, {"s": {"$nin": ["apple"]}}]}),
                &["d2", "d3", "d4"],
            ),
        ],
    )
    .await;
}

#[tokio::test]
async fn exists_and_null() {
    let (_server, mut conn) = seeded().await;
    check(
        &mut conn,
        &[
            (json!({"nul": {"$exists": true}}), &["d1"]),
            (
                json!({"nul": {"$exists": false}}),
                &["d2", "d3", "d4", "d5", "d6", "d7", "d8", "d9"],
            ),
            (json!({"v": {"$exists": false}}), &["d6"]),
            (
                json!({"v": {"$exists": true}}),
                &["d1", "d2", "d3", "d4", "d5", "d7", "d8", "d9"],
            ),
            (json!({"o": {"$exists": true}}), &["d1", "d2", "d3"]),
            (json!({"o.y.z": {"$exists": true}}), &["d1"]),
            (
                json!({"o.y": {"$exists": false}}),
                &["d2", "d3", "d4", "d5", "d6", "d7", "d8", "d9"],
            ),
            // $null: a null or missing value
            (json!({"v": {"$null": true}}), &["d5", "d6"]),
            (
                json!({"v": {"$null": false}}),
                &["d1", "d2", "d3", "d4", "d7", "d8", "d9"],
            ),
            (
                json!({"nul": {"$null": true}}),
                &["d1", "d2", "d3", "d4", "d5", "d6", "d7", "d8", "d9"],
            ),
            (json!({"nul": {"$null": false}}), &[]),
            (json!({"o.x": {"$null": false}}), &["d1", "d2", "d3"]),
        ],
    )
    .await;
}

#[tokio::test]
async fn and_or_and_implicit_and() {
    let (_server, mut conn) = seeded().await;
    check(
        &mut conn,
        &[
            (
                json!({"$and": [{"v": {"$gte": 1}}, {"v": {"$lt": 10}}]}),
                &["d1", "d2"],
            ),
            (json!({"$or": [{"v": 1}, {"s": "cherry"}]}), &["d1", "d3"]),
            (json!({"$or": [{"v": 1}, {"v": 1}]}), &["d1"]),
            (json!({"v": {"$gte": 1}, "s": "banana"}), &["d2"]),
            (json!({"v": {"$gte": 1}, "s": "nope"}), &[]),
            (
                json!({"$or": [{"$and": [{"o.x": {"$gte": 2}}, {"b": false}]}, {"v": true}]}),
                &["d2", "d9"],
            ),
            (
                json!({"$and": [{"$or": [{"v": 1}, {"v": 10}]}, {"s": {"$in": ["cherry"]}}]}),
                &["d3"],
            ),
            (
                json!({"$or": [{"v": {"$null": true}}, {"s": 5}]}),
                &["d4", "d5", "d6"],
            ),
        ],
    )
    .await;
}

/// missing < null < numbers < strings < objects < arrays < booleans.
#[tokio::test]
async fn order_uses_the_total_order_over_json_types() {
    let server = TestServer::start().await;
    let mut conn = RawConn::connect(server.addr()).await;
    let values = [
        ("t-missing", None),
        ("t-null", Some(json!(null))),
        ("t-neg", Some(json!(-3))),
        ("t-seven", Some(json!(7))),
        ("t-float", Some(json!(7.5))),
        ("t-apple", Some(json!("apple"))),
        ("t-pear", Some(json!("pear"))),
        ("t-object", Some(json!({"a": 1}))),
        ("t-array", Some(json!([1, 2]))),
        ("t-bool", Some(json!(true))),
    ];
    // Insert in a scrambled order.
    for index in [5, 2, 9, 0, 7, 3, 8, 1, 6, 4] {
        let (id, value) = &values[index];
        let mut document = json!({"id": id});
        if let Some(value) = value {
            document["k"] = value.clone();
        }
        conn.post("total", document).await;
    }
    let ascending: Vec<String> = values.iter().map(|(id, _)| (*id).to_owned()).collect();
    let mut descending = ascending.clone();
    descending.reverse();

    let asc = conn.get("total", json!({"43": "asc(k)"})).await;
    assert_eq!(ordered_ids(&Value::Array(asc)), ascending, "ORDER asc(k)");
    let desc = conn.get("total", json!({"43": "desc(k)"})).await;
    assert_eq!(ordered_ids(&Value::Array(desc)), descending, "ORDER desc(k)");
    let desc_array = conn.get("total", json!({"43": ["desc(k)"]})).await;
    assert_eq!(
        ordered_ids(&Value::Array(desc_array)),
        descending,
        "ORDER [\"desc(k)\"]"
    );
    let limited = conn.get("total", json!({"43": "asc(k)", "42": 3})).await;
    assert_eq!(
        ordered_ids(&Value::Array(limited)),
        ascending[..3].to_vec(),
        "LIMIT after ORDER"
    );
}

#[tokio::test]
async fn order_with_several_terms_and_dotted_fields() {
    let server = TestServer::start().await;
    let mut conn = RawConn::connect(server.addr()).await;
    for (id, g, n) in [("a", 1, 3), ("b", 2, 5), ("c", 1, 1), ("d", 2, 2), ("e", 1, 2)] {
        conn.post("multi", json!({"id": id, "g": g, "n": n, "o": {"n": -n}}))
            .await;
    }
    let cases = [
        (json!(["asc(g)", "desc(n)"]), ["a", "e", "c", "b", "d"]),
        (json!(["desc(g)", "asc(n)"]), ["d", "b", "c", "e", "a"]),
        (json!(["asc(g)", "asc(o.n)"]), ["a", "e", "c", "b", "d"]),
        (json!(["desc(o.n)", "desc(g)"]), ["c", "d", "e", "a", "b"]),
        (json!(["asc(n)", "asc(g)"]), ["c", "e", "d", "a", "b"]),
    ];
    for (order, expected) in cases {
        let documents = conn.get("multi", json!({"43": order})).await;
        assert_eq!(
            ordered_ids(&Value::Array(documents)),
            expected.to_vec(),
            "ORDER {order}"
        );
    }
    let limited = conn
        .get(
            "multi",
            json!({"43": ["asc(g)", "desc(n)"], "42": 2, "40": {"n": {"$gte": 2}}}),
        )
        .await;
    assert_eq!(ordered_ids(&Value::Array(limited)), vec!["a", "e"]);
    let two = conn.get("multi", json!({"42": 2})).await;
    assert_eq!(two.len(), 2, "LIMIT without ORDER: {two:?}");
    let big_limit = conn.get("multi", json!({"42": 100})).await;
    assert_eq!(big_limit.len(), 5, "LIMIT above the count returns everything");
}

#[tokio::test]
async fn fields_select_parts_and_always_keep_id() {
    let (_server, mut conn) = seeded().await;
    let by_id = |documents: Vec<Value>| {
        let mut documents = documents;
        documents.sort_by(|a, b| a["id"].as_str().cmp(&b["id"].as_str()));
        documents
    };
    let query = json!({"id": {"$in": ["d1", "d2", "d6"]}});
    assert_eq!(
        by_id(conn.get("qs", json!({"40": query, "41": ["s"]})).await),
        vec![
            json!({"id": "d1", "s": "apple"}),
            json!({"id": "d2", "s": "banana"}),
            json!({"id": "d6"})
        ],
        "FIELDS [\"s\"]"
    );
    assert_eq!(
        by_id(conn.get("qs", json!({"40": query, "41": ["s", "b"]})).await),
        vec![
            json!({"id": "d1", "s": "apple", "b": true}),
            json!({"id": "d2", "s": "banana", "b": false}),
            json!({"id": "d6"})
        ],
        "FIELDS [\"s\", \"b\"]"
    );
    assert_eq!(
        by_id(conn.get("qs", json!({"40": query, "41": ["o.x"]})).await),
        vec![
            json!({"id": "d1", "o": {"x": 1}}),
            json!({"id": "d2", "o": {"x": 2}}),
            json!({"id": "d6"})
        ],
        "FIELDS [\"o.x\"] (dotted)"
    );
    assert_eq!(
        by_id(
            conn.get("qs", json!({"40": {"id": "d1"}, "41": ["o.y.z", "nul"]}))
                .await
        ),
        vec![json!({"id": "d1", "o": {"y": {"z": "deep"}}, "nul": null})],
        "FIELDS [\"o.y.z\", \"nul\"]"
    );
    assert_eq!(
        by_id(conn.get("qs", json!({"40": {"id": "d1"}, "41": ["id"]})).await),
        vec![json!({"id": "d1"})],
        "FIELDS [\"id\"]"
    );
    assert_eq!(
        by_id(conn.get("qs", json!({"40": {"id": "d3"}, "41": ["o"]})).await),
        vec![json!({"id": "d3", "o": {"x": 3}})],
        "FIELDS [\"o\"] keeps the whole object"
    );
}

/// A dotted path through a value that is not an object reaches nothing.
#[tokio::test]
async fn dotted_paths_through_non_objects_match_nothing() {
    let (_server, mut conn) = seeded().await;
    check(
        &mut conn,
        &[
            (json!({"s.length": 5}), &[]),
            (json!({"v.k": 1}), &["d8"]),
            (json!({"v.k": {"$exists": true}}), &["d8"]),
        ],
    )
    .await;
}
