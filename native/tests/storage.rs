//! Integration tests of the storage engine's public API ([`Store`]).

use std::collections::{BTreeMap, HashSet};
use std::sync::Arc;

use canhazdb::storage::{
    ChangedDocument, Mutation, ReadRequest, ReportedFilter, StorageError, Store, StoreOptions, StoredDocument,
};
use canhazdb_core::query::{Order, Query};
use serde_json::{json, Map, Value};

fn open(dir: &tempfile::TempDir) -> Store {
    Store::open(dir.path(), StoreOptions::default()).unwrap()
}

fn query(value: Value) -> Query {
    Query::parse(&value).unwrap()
}

fn replicas(names: &[&str]) -> Vec<String> {
    names.iter().map(|name| name.to_string()).collect()
}

fn find(store: &Store, collection: &str, q: Value) -> Vec<StoredDocument> {
    store.find(collection, &ReadRequest::new(&query(q))).unwrap()
}

fn ids(documents: &[StoredDocument]) -> Vec<String> {
    documents
        .iter()
        .map(|stored| stored.document["id"].as_str().unwrap().to_owned())
        .collect()
}

fn sorted_ids(documents: &[StoredDocument]) -> Vec<String> {
    let mut ids = ids(documents);
    ids.sort();
    ids
}

fn changed_ids(changed: &[ChangedDocument]) -> Vec<String> {
    let mut ids: Vec<String> = changed.iter().map(|c| c.id.clone()).collect();
    ids.sort();
    ids
}

fn count(store: &Store, collection: &str, q: Value) -> u64 {
    store.count(collection, &query(q), None).unwrap()
}

#[tokio::test]
async fn insert_find_count_update_delete() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(&dir);
    for (id, age, kind) in [("a", 30, "cat"), ("b", 40, "dog"), ("c", 50, "cat")] {
        store
            .insert(
                "pets",
                json!({"id": id, "age": age, "kind": kind, "owner": {"name": id}}),
                replicas(&["n1", "n2"]),
            )
            .await
            .unwrap();
    }

    let all = find(&store, "pets", json!({}));
    assert_eq!(ids(&all), ["a", "b", "c"]);
    assert_eq!(
        all[0].document,
        json!({"id": "a", "age": 30, "kind": "cat", "owner": {"name": "a"}})
    );
    assert_eq!(all[0].replicas, replicas(&["n1", "n2"]));
    assert_eq!(
        sorted_ids(&find(&store, "pets", json!({"kind": "cat"}))),
        ["a", "c"]
    );
    assert_eq!(ids(&find(&store, "pets", json!({"id": "b"}))), ["b"]);
    assert_eq!(ids(&find(&store, "pets", json!({"owner.name": "c"}))), ["c"]);
    assert_eq!(
        sorted_ids(&find(&store, "pets", json!({"age": {"$gte": 40}}))),
        ["b", "c"]
    );
    assert!(find(&store, "pets", json!({"kind": "cow"})).is_empty());
    assert!(find(&store, "nothing-here", json!({})).is_empty());

    assert_eq!(count(&store, "pets", json!({})), 3);
    assert_eq!(count(&store, "pets", json!({"kind": "cat"})), 2);
    assert_eq!(
        count(&store, "pets", json!({"age": {"$lt": 45}, "kind": "dog"})),
        1
    );
    assert_eq!(count(&store, "nothing-here", json!({})), 0);

    let changed = store
        .update(
            "pets",
            query(json!({"kind": "cat"})),
            Mutation::Merge(json!({"age": 1}).as_object().unwrap().clone()),
        )
        .await
        .unwrap();
    assert_eq!(changed_ids(&changed), ["a", "c"]);
    assert_eq!(changed[0].replicas, replicas(&["n1", "n2"]));
    assert_eq!(count(&store, "pets", json!({"age": 1})), 2);

    let deleted = store.delete("pets", query(json!({"age": 1}))).await.unwrap();
    assert_eq!(changed_ids(&deleted), ["a", "c"]);
    assert_eq!(ids(&find(&store, "pets", json!({}))), ["b"]);
    assert_eq!(count(&store, "pets", json!({})), 1);
    assert!(store
        .update("nothing-here", Query::match_all(), Mutation::Replace(json!({})))
        .await
        .unwrap()
        .is_empty());
    assert!(store
        .delete("nothing-here", Query::match_all())
        .await
        .unwrap()
        .is_empty());
    store.close().await.unwrap();
}

#[tokio::test]
async fn duplicate_ids_are_refused_per_collection() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(&dir);
    store
        .insert("a", json!({"id": "x", "v": 1}), vec![])
        .await
        .unwrap();
    let error = store
        .insert("a", json!({"id": "x", "v": 2}), vec![])
        .await
        .unwrap_err();
    assert_eq!(
        error,
        StorageError::DuplicateId {
            collection: "a".into(),
            id: "x".into()
        }
    );
    assert!(error.to_string().contains("\"x\""), "{error}");
    // Same id in another collection is fine.
    store
        .insert("b", json!({"id": "x", "v": 3}), vec![])
        .await
        .unwrap();
    assert_eq!(find(&store, "a", json!({}))[0].document["v"], 1);
    assert_eq!(count(&store, "a", json!({})), 1);
    assert!(
        find(&store, "a", json!({"v": 2})).is_empty(),
        "the refused document left no index entry"
    );
}

#[tokio::test]
async fn bad_input_is_an_error_not_a_panic() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(&dir);
    for document in [
        json!([1]),
        json!("text"),
        json!({"v": 1}),
        json!({"id": 5}),
        json!({"id": null}),
    ] {
        let error = store.insert("c", document.clone(), vec![]).await.unwrap_err();
        assert!(
            matches!(error, StorageError::InvalidDocument(_)),
            "{document}: {error:?}"
        );
    }
    let long_id = "i".repeat(5000);
    assert!(matches!(
        store.insert("c", json!({"id": long_id}), vec![]).await,
        Err(StorageError::InvalidDocument(_))
    ));
    let mut deep = json!(1);
    for _ in 0..200 {
        deep = json!({ "d": deep });
    }
    assert!(matches!(
        store
            .insert("c", json!({"id": "deep", "v": deep.clone()}), vec![])
            .await,
        Err(StorageError::InvalidDocument(_))
    ));
    store.insert("c", json!({"id": "ok"}), vec![]).await.unwrap();
    assert!(matches!(
        store
            .update("c", Query::match_all(), Mutation::Replace(json!([1])))
            .await,
        Err(StorageError::InvalidDocument(_))
    ));
    assert!(matches!(
        store
            .update(
                "c",
                Query::match_all(),
                Mutation::Merge(json!({"v": deep}).as_object().unwrap().clone())
            )
            .await,
        Err(StorageError::InvalidDocument(_))
    ));
    assert_eq!(find(&store, "c", json!({}))[0].document, json!({"id": "ok"}));
    // Odd but valid: empty collection name, empty id, keys with dots and NULs.
    store
        .insert("", json!({"id": "", "a.b": 1, "\u{0}": "\u{0}"}), vec![])
        .await
        .unwrap();
    assert_eq!(count(&store, "", json!({"\u{0}": "\u{0}"})), 1);
    assert_eq!(
        count(&store, "", json!({"a.b": 1})),
        0,
        "a dotted path cannot reach a dotted key"
    );
}

#[tokio::test]
async fn replace_keeps_the_id_and_rewrites_the_index() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(&dir);
    store
        .insert(
            "c",
            json!({"id": "1", "color": "red", "nested": {"size": 3}}),
            replicas(&["n1"]),
        )
        .await
        .unwrap();
    store
        .insert("c", json!({"id": "2", "color": "red"}), replicas(&["n2"]))
        .await
        .unwrap();

    let changed = store
        .update(
            "c",
            query(json!({"id": "1"})),
            Mutation::Replace(json!({"id": "hijack", "color": "blue", "shape": "round"})),
        )
        .await
        .unwrap();
    assert_eq!(
        changed,
        [ChangedDocument {
            id: "1".into(),
            replicas: replicas(&["n1"])
        }]
    );
    let stored = find(&store, "c", json!({"id": "1"}));
    assert_eq!(
        stored[0].document,
        json!({"id": "1", "color": "blue", "shape": "round"})
    );
    assert!(find(&store, "c", json!({"id": "hijack"})).is_empty());
    // Old index entries are gone, new ones are there.
    assert_eq!(ids(&find(&store, "c", json!({"color": "red"}))), ["2"]);
    assert_eq!(count(&store, "c", json!({"color": "red"})), 1);
    assert!(find(&store, "c", json!({"nested.size": 3})).is_empty());
    assert_eq!(count(&store, "c", json!({"nested.size": {"$gt": 0}})), 0);
    assert_eq!(ids(&find(&store, "c", json!({"color": "blue"}))), ["1"]);
    assert_eq!(count(&store, "c", json!({"shape": {"$gte": "r"}})), 1);
    assert_eq!(count(&store, "c", json!({})), 2);
}

#[tokio::test]
async fn merge_sets_top_level_keys_and_keeps_the_rest() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(&dir);
    store
        .insert(
            "c",
            json!({"id": "1", "a": 1, "b": {"x": 1}, "c": "keep"}),
            vec![],
        )
        .await
        .unwrap();
    let patch = json!({"id": "other", "a": 2, "b": {"y": 2}, "d": null});
    let changed = store
        .update(
            "c",
            query(json!({"a": 1})),
            Mutation::Merge(patch.as_object().unwrap().clone()),
        )
        .await
        .unwrap();
    assert_eq!(changed_ids(&changed), ["1"]);
    assert_eq!(
        find(&store, "c", json!({}))[0].document,
        json!({"id": "1", "a": 2, "b": {"y": 2}, "c": "keep", "d": null})
    );
    assert_eq!(count(&store, "c", json!({"a": 1})), 0);
    assert_eq!(count(&store, "c", json!({"b.x": 1})), 0);
    assert_eq!(count(&store, "c", json!({"b.y": 2})), 1);
    assert_eq!(count(&store, "c", json!({"d": null})), 1);
    assert_eq!(count(&store, "c", json!({"c": "keep"})), 1);
    // A no-op merge still reports the document.
    let changed = store
        .update("c", Query::match_all(), Mutation::Merge(Map::new()))
        .await
        .unwrap();
    assert_eq!(changed_ids(&changed), ["1"]);
}

#[tokio::test]
async fn delete_removes_index_entries_and_counts() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(&dir);
    for i in 0..20 {
        store
            .insert(
                "c",
                json!({"id": format!("{i:02}"), "even": i % 2 == 0, "n": i}),
                replicas(&["a", "b"]),
            )
            .await
            .unwrap();
    }
    let deleted = store.delete("c", query(json!({"even": true}))).await.unwrap();
    assert_eq!(deleted.len(), 10);
    assert!(deleted.iter().all(|d| d.replicas == replicas(&["a", "b"])));
    assert_eq!(count(&store, "c", json!({})), 10);
    assert_eq!(count(&store, "c", json!({"even": true})), 0);
    assert_eq!(count(&store, "c", json!({"n": {"$lt": 10}})), 5);
    assert_eq!(store.collections().unwrap(), [("c".to_owned(), 10)]);
    // Re-inserting a deleted id works.
    store
        .insert("c", json!({"id": "00", "even": true}), vec![])
        .await
        .unwrap();
    assert_eq!(count(&store, "c", json!({"even": true})), 1);
    store.delete("c", Query::match_all()).await.unwrap();
    assert_eq!(count(&store, "c", json!({})), 0);
    assert!(
        store.collections().unwrap().is_empty(),
        "empty collections are not listed"
    );
}

#[tokio::test]
async fn collections_are_listed_sorted_with_counts() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(&dir);
    for (collection, n) in [("zebras", 3), ("ants", 1), ("Moles", 2)] {
        for i in 0..n {
            store
                .insert(collection, json!({"id": i.to_string()}), vec![])
                .await
                .unwrap();
        }
    }
    assert_eq!(
        store.collections().unwrap(),
        [
            ("Moles".to_owned(), 2),
            ("ants".to_owned(), 1),
            ("zebras".to_owned(), 3)
        ]
    );
}

#[tokio::test]
async fn everything_survives_close_and_reopen() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(&dir);
    for i in 0..100 {
        store
            .insert(
                "c",
                json!({"id": format!("{i:03}"), "n": i, "f": i as f64 / 4.0}),
                replicas(&["x", "y"]),
            )
            .await
            .unwrap();
    }
    store
        .delete("c", query(json!({"n": {"$gte": 90}})))
        .await
        .unwrap();
    store
        .update(
            "c",
            query(json!({"n": 5})),
            Mutation::Merge(json!({"tag": "five"}).as_object().unwrap().clone()),
        )
        .await
        .unwrap();
    let before = find(&store, "c", json!({}));
    let clone = store.clone();
    store.close().await.unwrap();
    assert_eq!(
        clone.count("c", &Query::match_all(), None),
        Err(StorageError::Closed)
    );
    assert_eq!(
        clone.insert("c", json!({"id": "late"}), vec![]).await,
        Err(StorageError::Closed)
    );
    drop(clone);

    let store = open(&dir);
    assert_eq!(find(&store, "c", json!({})), before);
    assert_eq!(count(&store, "c", json!({})), 90);
    assert_eq!(ids(&find(&store, "c", json!({"tag": "five"}))), ["005"]);
    assert_eq!(count(&store, "c", json!({"f": {"$gt": 20.0}})), 9);
    assert_eq!(store.collections().unwrap(), [("c".to_owned(), 90)]);
    store.insert("c", json!({"id": "new"}), vec![]).await.unwrap();
    drop(store);
    // Dropping the last handle (without close) also releases the file.
    let store = open(&dir);
    assert_eq!(count(&store, "c", json!({})), 91);
}

#[tokio::test]
async fn reported_filter_applies_to_find_and_count_before_limit() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(&dir);
    let lists = [
        replicas(&["a", "b"]),
        replicas(&["b", "c"]),
        replicas(&["c", "a"]),
    ];
    for i in 0..30 {
        let replicas = lists[i % 3].clone();
        store
            .insert(
                "c",
                json!({"id": format!("{i:02}"), "n": i, "group": i % 2}),
                replicas,
            )
            .await
            .unwrap();
    }
    // This node reports documents whose first replica is "a".
    let first_is_a = |replicas: &[String]| replicas.first().map(String::as_str) == Some("a");
    let all = Query::match_all();
    let request = ReadRequest {
        query: &all,
        order: None,
        limit: None,
        reported: Some(&first_is_a),
    };
    let found = store.find("c", &request).unwrap();
    assert_eq!(found.len(), 10);
    assert!(found.iter().all(|stored| stored.replicas[0] == "a"));
    assert_eq!(store.count("c", &all, Some(&first_is_a)).unwrap(), 10);

    let even = query(json!({"group": 0}));
    assert_eq!(store.count("c", &even, Some(&first_is_a)).unwrap(), 5);
    let order = Order::parse(&json!("desc(n)")).unwrap();
    let request = ReadRequest {
        query: &even,
        order: Some(&order),
        limit: Some(3),
        reported: Some(&first_is_a),
    };
    assert_eq!(ids(&store.find("c", &request).unwrap()), ["24", "18", "12"]);
    let range = query(json!({"n": {"$gte": 10}}));
    let request = ReadRequest {
        query: &range,
        order: Some(&order),
        limit: Some(2),
        reported: Some(&first_is_a),
    };
    assert_eq!(ids(&store.find("c", &request).unwrap()), ["27", "24"]);
    assert_eq!(store.count("c", &range, Some(&first_is_a)).unwrap(), 6);
    let nobody = |_: &[String]| false;
    assert_eq!(store.count("c", &all, Some(&nobody)).unwrap(), 0);
    assert!(store
        .find(
            "c",
            &ReadRequest {
                reported: Some(&nobody),
                ..ReadRequest::new(&all)
            }
        )
        .unwrap()
        .is_empty());
}

#[tokio::test]
async fn long_strings_are_found_and_ordered_despite_index_truncation() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(&dir);
    let prefix = "p".repeat(1100);
    let values = [
        format!("{prefix}c"),
        format!("{prefix}a"),
        format!("{prefix}b"),
        "short".to_owned(),
        prefix.clone(),
    ];
    for (i, value) in values.iter().enumerate() {
        store
            .insert("c", json!({"id": i.to_string(), "s": value}), vec![])
            .await
            .unwrap();
    }
    assert_eq!(ids(&find(&store, "c", json!({"s": format!("{prefix}b")}))), ["2"]);
    assert_eq!(count(&store, "c", json!({"s": format!("{prefix}b")})), 1);
    // "short" sorts after every "p…" string.
    assert_eq!(count(&store, "c", json!({"s": {"$gt": format!("{prefix}a")}})), 3);
    assert_eq!(count(&store, "c", json!({"s": {"$gte": prefix.clone()}})), 5);
    assert_eq!(count(&store, "c", json!({"s": {"$lt": format!("{prefix}b")}})), 2);
    assert_eq!(
        count(
            &store,
            "c",
            json!({"s": {"$in": [format!("{prefix}c"), "short"]}})
        ),
        2
    );
    let all = query(json!({"s": {"$gte": ""}}));
    for (direction, expected) in [
        ("asc", ["4", "1", "2", "0", "3"]),
        ("desc", ["3", "0", "2", "1", "4"]),
    ] {
        let order = Order::parse(&json!(format!("{direction}(s)"))).unwrap();
        let request = ReadRequest {
            query: &all,
            order: Some(&order),
            limit: Some(5),
            reported: None,
        };
        assert_eq!(ids(&store.find("c", &request).unwrap()), expected, "{direction}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_inserts_are_all_durable_and_duplicates_fail_alone() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(&dir);
    let tasks = 100;
    let per_task = 20;
    let mut handles = Vec::new();
    for task in 0..tasks {
        let store = store.clone();
        handles.push(tokio::spawn(async move {
            let mut results = Vec::new();
            for i in 0..per_task {
                let n = task * per_task + i;
                // Every 20th insert reuses an id another insert also uses.
                let id = if n % 20 == 19 {
                    format!("doc-{}", n - 1)
                } else {
                    format!("doc-{n}")
                };
                let result = store
                    .insert("c", json!({"id": id, "n": n}), vec![format!("node-{}", n % 3)])
                    .await;
                results.push((id, result));
            }
            results
        }));
    }
    let mut succeeded = HashSet::new();
    let mut duplicates = 0;
    for handle in handles {
        for (id, result) in handle.await.unwrap() {
            match result {
                Ok(()) => assert!(succeeded.insert(id.clone()), "{id} inserted twice"),
                Err(StorageError::DuplicateId { id: dup, .. }) => {
                    assert_eq!(dup, id);
                    duplicates += 1;
                }
                Err(other) => panic!("unexpected {other}"),
            }
        }
    }
    assert_eq!(succeeded.len(), 1900);
    assert_eq!(duplicates, 100);
    assert_eq!(count(&store, "c", json!({})), 1900);
    assert_eq!(count(&store, "c", json!({"n": {"$gte": 0}})), 1900);
    store.close().await.unwrap();
    let store = open(&dir);
    assert_eq!(sorted_ids(&find(&store, "c", json!({}))).len(), 1900);
    for id in &succeeded {
        assert_eq!(find(&store, "c", json!({"id": id})).len(), 1, "{id}");
    }
}

// ---------------------------------------------------------------------------
// Planner correctness against a reference implementation on random data.

/// xorshift64*: deterministic, dependency-free.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
    fn chance(&mut self, percent: usize) -> bool {
        self.below(100) < percent
    }
    fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        &items[self.below(items.len())]
    }
}

const WORDS: [&str; 6] = ["apple", "berry", "cherry", "date", "elder", ""];

fn long_word(rng: &mut Rng) -> String {
    format!("{}{}", "L".repeat(1030), rng.pick(&["a", "b", "c"]))
}

fn random_scalar(rng: &mut Rng) -> Value {
    match rng.below(10) {
        0 => Value::Null,
        1 => json!(rng.chance(50)),
        2 => json!(rng.below(10) as f64 + 0.5),
        3..=5 => json!(rng.below(12) as i64 - 2),
        6 => json!(long_word(rng)),
        _ => json!(rng.pick(&WORDS)),
    }
}

fn random_document(rng: &mut Rng, id: &str) -> Value {
    let mut document = Map::new();
    document.insert("id".into(), json!(id));
    if rng.chance(90) {
        document.insert(
            "n".into(),
            if rng.chance(80) {
                json!(rng.below(12) as i64 - 2)
            } else {
                random_scalar(rng)
            },
        );
    }
    if rng.chance(85) {
        document.insert(
            "s".into(),
            if rng.chance(85) {
                json!(rng.pick(&WORDS))
            } else {
                random_scalar(rng)
            },
        );
    }
    if rng.chance(60) {
        document.insert("b".into(), json!(rng.chance(50)));
    }
    match rng.below(4) {
        0 => {}
        1 => {
            document.insert("o".into(), random_scalar(rng));
        }
        _ => {
            document.insert("o".into(), json!({"x": rng.below(5), "y": random_scalar(rng)}));
        }
    }
    if rng.chance(20) {
        document.insert("arr".into(), json!([rng.below(3), random_scalar(rng)]));
    }
    Value::Object(document)
}

fn random_condition(rng: &mut Rng, ids: &[String]) -> Value {
    let path = *rng.pick(&["n", "s", "b", "o.x", "o.y", "o", "arr", "missing", "id"]);
    let value = |rng: &mut Rng| match path {
        "id" => json!(rng.pick(ids)),
        "o.x" => json!(rng.below(5)),
        "s" if rng.chance(70) => json!(rng.pick(&WORDS)),
        _ => random_scalar(rng),
    };
    let condition = match rng.below(11) {
        0..=2 => value(rng),
        3 => json!({"$gt": value(rng)}),
        4 => json!({"$lte": value(rng)}),
        5 => json!({"$gte": value(rng), "$lt": value(rng)}),
        6 => {
            let members: Vec<Value> = (0..rng.below(4)).map(|_| value(rng)).collect();
            json!({ "$in": members })
        }
        7 => json!({"$ne": value(rng)}),
        8 => json!({"$exists": rng.chance(50)}),
        9 => json!({"$null": rng.chance(50)}),
        _ => json!({"$nin": [value(rng)]}),
    };
    json!({ path: condition })
}

fn random_query(rng: &mut Rng, ids: &[String]) -> Value {
    match rng.below(8) {
        0 => json!({}),
        1 => json!({"$or": [random_condition(rng, ids), random_condition(rng, ids)]}),
        2 | 3 => {
            let mut merged = random_condition(rng, ids).as_object().unwrap().clone();
            merged.extend(random_condition(rng, ids).as_object().unwrap().clone());
            Value::Object(merged)
        }
        _ => random_condition(rng, ids),
    }
}

fn random_order(rng: &mut Rng) -> Option<Order> {
    if rng.chance(25) {
        return None;
    }
    let terms: Vec<String> = (0..1 + rng.below(3))
        .map(|_| {
            let direction = if rng.chance(50) { "asc" } else { "desc" };
            let path = rng.pick(&["n", "s", "b", "o.x", "o", "id", "missing"]);
            format!("{direction}({path})")
        })
        .collect();
    Some(Order::parse(&json!(terms)).unwrap())
}

/// The model: documents by id, with their replicas.
type Model = BTreeMap<String, (Value, Vec<String>)>;

fn reference(
    model: &Model,
    q: &Query,
    order: Option<&Order>,
    limit: Option<usize>,
    reported: Option<ReportedFilter>,
) -> Vec<String> {
    let mut matches: Vec<&Value> = model
        .values()
        .filter(|(document, replicas)| q.matches(document) && reported.is_none_or(|f| f(replicas)))
        .map(|(document, _)| document)
        .collect();
    if let Some(order) = order {
        matches.sort_by(|a, b| order.compare(a, b));
    }
    matches
        .into_iter()
        .take(limit.unwrap_or(usize::MAX))
        .map(|document| document["id"].as_str().unwrap().to_owned())
        .collect()
}

fn check_reads(store: &Store, collection: &str, model: &Model, rng: &mut Rng, rounds: usize) {
    let ids: Vec<String> = model.keys().cloned().collect();
    let first_is_a = |replicas: &[String]| replicas.first().map(String::as_str) == Some("a");
    for _ in 0..rounds {
        let (raw, order) = if rng.chance(40) {
            streamable_read(rng, &ids)
        } else {
            (random_query(rng, &ids), random_order(rng))
        };
        let q = query(raw.clone());
        let limit = if rng.chance(30) {
            None
        } else {
            Some(*rng.pick(&[1, 2, 5, 20, 100]))
        };
        let reported: Option<ReportedFilter> = if rng.chance(30) { Some(&first_is_a) } else { None };
        let request = ReadRequest {
            query: &q,
            order: order.as_ref(),
            limit,
            reported,
        };
        let got = ids_of(store.find(collection, &request).unwrap());
        let all = reference(model, &q, None, None, reported);
        let context = format!(
            "{collection}: query {raw} order {order:?} limit {limit:?} filtered {}",
            reported.is_some()
        );
        if let Some(order) = &order {
            let mut sorted: Vec<&Value> = all.iter().map(|id| &model[id].0).collect();
            sorted.sort_by(|a, b| order.compare(a, b));
            let expected: Vec<&str> = sorted
                .iter()
                .take(limit.unwrap_or(usize::MAX))
                .map(|document| document["id"].as_str().unwrap())
                .collect();
            assert_eq!(got, expected, "{context}");
        } else {
            // Without ORDER any stable order will do, and LIMIT may pick any matches.
            assert_eq!(got.len(), all.len().min(limit.unwrap_or(usize::MAX)), "{context}");
            assert_eq!(
                got.iter().collect::<HashSet<_>>().len(),
                got.len(),
                "{context}: duplicates"
            );
            assert!(
                got.iter().all(|id| all.binary_search(id).is_ok()),
                "{context}: non-match returned"
            );
        }
        let counted = store.count(collection, &q, reported).unwrap();
        assert_eq!(counted as usize, all.len(), "count {context}");
    }
}

/// A query with an index predicate on ORDER's primary path: the planner
/// streams the index in order for these.
fn streamable_read(rng: &mut Rng, ids: &[String]) -> (Value, Option<Order>) {
    let path = *rng.pick(&["n", "s", "o.x", "id", "b"]);
    let value = |rng: &mut Rng| match path {
        "n" => json!(rng.below(12) as i64 - 3),
        "s" if rng.chance(30) => json!(long_word(rng)),
        "s" => json!(rng.pick(&WORDS)),
        "o.x" => json!(rng.below(5)),
        "b" => json!(rng.chance(50)),
        _ => json!(rng.pick(ids)),
    };
    let condition = match rng.below(5) {
        0 => value(rng),
        1 => {
            let members: Vec<Value> = (0..1 + rng.below(3)).map(|_| value(rng)).collect();
            json!({ "$in": members })
        }
        2 => json!({"$gt": value(rng)}),
        3 => json!({"$lte": value(rng)}),
        _ => json!({"$gte": value(rng), "$lt": value(rng)}),
    };
    let mut raw = json!({ path: condition });
    if rng.chance(40) {
        raw = json!({"$and": [raw, random_condition(rng, ids)]});
    }
    let direction = if rng.chance(50) { "asc" } else { "desc" };
    let mut terms = vec![format!("{direction}({path})")];
    if rng.chance(40) {
        terms.push(format!(
            "{}({})",
            if rng.chance(50) { "asc" } else { "desc" },
            rng.pick(&["n", "s", "o.y", "b"])
        ));
    }
    (raw, Some(Order::parse(&json!(terms)).unwrap()))
}

fn ids_of(documents: Vec<StoredDocument>) -> Vec<String> {
    ids(&documents)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn planner_agrees_with_a_reference_on_random_data() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(&dir);
    let mut rng = Rng(0x5eed_1234_abcd_0001);
    let lists = [
        replicas(&["a", "b"]),
        replicas(&["b", "a"]),
        replicas(&["c"]),
        replicas(&["a"]),
    ];
    let mut model = Model::new();
    let mut pending = Vec::new();
    for i in 0..3000 {
        let id = format!("d{:05}", rng.below(1_000_000));
        let id = if model.contains_key(&id) {
            format!("{id}-{i}")
        } else {
            id
        };
        let document = random_document(&mut rng, &id);
        let replicas = rng.pick(&lists).clone();
        model.insert(id.clone(), (document.clone(), replicas.clone()));
        let store = store.clone();
        pending.push(tokio::spawn(async move {
            store.insert("c", document, replicas).await
        }));
    }
    for task in pending {
        task.await.unwrap().unwrap();
    }
    let started = std::time::Instant::now();
    check_reads(&store, "c", &model, &mut rng, 400);
    eprintln!("reads: {:?}", started.elapsed());

    // Mutate through the store and the model alike, then check again.
    let ids: Vec<String> = model.keys().cloned().collect();
    for round in 0..60 {
        let (raw, q, expected) = loop {
            let raw = random_query(&mut rng, &ids);
            let q = query(raw.clone());
            let expected: Vec<String> = reference(&model, &q, None, None, None);
            // Deletes must leave something to read.
            if round % 3 != 0 || expected.len() <= model.len() / 10 {
                break (raw, q, expected);
            }
        };
        let changed = match round % 3 {
            0 => {
                for id in &expected {
                    model.remove(id);
                }
                store.delete("c", q).await.unwrap()
            }
            1 => {
                let patch = random_document(&mut rng, "ignored").as_object().unwrap().clone();
                for id in &expected {
                    let document = model.get_mut(id).unwrap().0.as_object_mut().unwrap();
                    for (key, value) in &patch {
                        if key != "id" {
                            document.insert(key.clone(), value.clone());
                        }
                    }
                }
                store.update("c", q, Mutation::Merge(patch)).await.unwrap()
            }
            _ => {
                let replacement = random_document(&mut rng, "ignored");
                for id in &expected {
                    let mut document = replacement.clone();
                    document["id"] = json!(id);
                    model.get_mut(id).unwrap().0 = document;
                }
                store
                    .update("c", q, Mutation::Replace(replacement))
                    .await
                    .unwrap()
            }
        };
        let mut expected = expected;
        expected.sort();
        assert_eq!(changed_ids(&changed), expected, "round {round}: {raw}");
        for change in &changed {
            if let Some((_, replicas)) = model.get(&change.id) {
                assert_eq!(&change.replicas, replicas);
            }
        }
        if round % 10 == 9 {
            check_reads(&store, "c", &model, &mut rng, 30);
        }
    }
    assert!(
        model.len() > 100,
        "the mutations left something to read ({})",
        model.len()
    );
    check_reads(&store, "c", &model, &mut rng, 250);
    let stored: Vec<Value> = find(&store, "c", json!({}))
        .into_iter()
        .map(|s| s.document)
        .collect();
    let modelled: Vec<Value> = model.values().map(|(document, _)| document.clone()).collect();
    assert_eq!(stored, modelled);
    assert_eq!(
        store.collections().unwrap(),
        [("c".to_owned(), model.len() as u64)]
    );
}

#[tokio::test]
async fn store_handles_are_send_and_sync() {
    fn assert_send_sync<T: Send + Sync + Clone>() {}
    assert_send_sync::<Store>();
    let dir = tempfile::tempdir().unwrap();
    let store = Arc::new(open(&dir));
    let reader = {
        let store = Arc::clone(&store);
        std::thread::spawn(move || store.count("c", &Query::match_all(), None).unwrap())
    };
    assert_eq!(reader.join().unwrap(), 0);
}

/// Runs in a child process (see `acknowledged_writes_survive_kill_9`):
/// inserts from many tasks, patches every 3rd document and deletes every
/// 5th right after inserting it, and prints each id once its write resolved.
async fn insert_until_killed(dir: &str) {
    use std::io::Write;
    let store = Store::open(std::path::Path::new(dir), StoreOptions::default()).unwrap();
    let (acked, mut acks) = tokio::sync::mpsc::unbounded_channel::<String>();
    for task in 0..32 {
        let store = store.clone();
        let acked = acked.clone();
        tokio::spawn(async move {
            for i in 0.. {
                let id = format!("t{task}-{i}");
                store
                    .insert("c", json!({"id": id, "n": i, "task": task}), vec!["n1".into()])
                    .await
                    .unwrap();
                let mut line = format!("acked {id}");
                if i % 3 == 0 {
                    let patch = json!({"patched": true, "n": -1}).as_object().unwrap().clone();
                    store
                        .update("c", query(json!({"id": id})), Mutation::Merge(patch))
                        .await
                        .unwrap();
                    line = format!("patched {id}");
                }
                if i % 5 == 0 {
                    store.delete("c", query(json!({"id": id}))).await.unwrap();
                    line = format!("deleted {id}");
                }
                if acked.send(line).is_err() {
                    return;
                }
            }
        });
    }
    drop(acked);
    let mut out = std::io::stdout().lock();
    while let Some(line) = acks.recv().await {
        writeln!(out, "{line}").unwrap();
        out.flush().unwrap();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn acknowledged_writes_survive_kill_9() {
    use std::io::BufRead;
    if let Ok(dir) = std::env::var("CANHAZDB_STORAGE_CHILD_DIR") {
        insert_until_killed(&dir).await;
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let mut child = std::process::Command::new(std::env::current_exe().unwrap())
        .args([
            "--exact",
            "acknowledged_writes_survive_kill_9",
            "--nocapture",
            "--test-threads=1",
        ])
        .env("CANHAZDB_STORAGE_CHILD_DIR", dir.path())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    // What the child acknowledged: (kind, id), kind = acked|patched|deleted.
    let mut acked: Vec<(String, String)> = Vec::new();
    let mut lines = std::io::BufReader::new(child.stdout.take().unwrap()).lines();
    let parse = |line: String| {
        let (kind, id) = line.split_once(' ')?;
        ["acked", "patched", "deleted"]
            .contains(&kind)
            .then(|| (kind.to_owned(), id.to_owned()))
    };
    while acked.len() < 1500 {
        let line = lines.next().expect("the child stopped early").unwrap();
        acked.extend(parse(line));
    }
    child.kill().unwrap(); // SIGKILL: no chance to flush or close anything
    child.wait().unwrap();
    // Acks that were printed before the kill but not yet read count too.
    acked.extend(lines.map_while(Result::ok).filter_map(parse));

    let log = std::fs::metadata(dir.path().join("canhazdb.wal")).map_or(0, |meta| meta.len());
    let started = std::time::Instant::now();
    let store = open(&dir);
    eprintln!(
        "reopened after kill -9 in {:?}, replaying {log} bytes of write-ahead log",
        started.elapsed()
    );
    let stored: HashSet<String> = ids(&find(&store, "c", json!({}))).into_iter().collect();
    let patched: HashSet<String> = ids(&find(&store, "c", json!({"patched": true})))
        .into_iter()
        .collect();
    let lost: Vec<&(String, String)> = acked
        .iter()
        .filter(|(kind, id)| match kind.as_str() {
            "acked" => !stored.contains(id),
            // Found through the index entry the patch added.
            "patched" => !patched.contains(id),
            _ => stored.contains(id),
        })
        .collect();
    assert!(
        lost.is_empty(),
        "{} acknowledged writes lost: {:?}",
        lost.len(),
        &lost[..lost.len().min(5)]
    );
    assert_eq!(
        count(&store, "c", json!({"n": -1})),
        patched.len() as u64,
        "the index holds the patched values"
    );
    assert_eq!(
        count(
            &store,
            "c",
            json!({"patched": {"$exists": false}, "n": {"$gte": 0}})
        ),
        stored.len() as u64 - patched.len() as u64,
        "the index holds the values of unpatched documents"
    );
    assert_eq!(
        count(&store, "c", json!({})),
        stored.len() as u64,
        "count matches the documents"
    );
    assert_eq!(
        count(&store, "c", json!({"task": {"$gte": 0}})),
        stored.len() as u64,
        "index matches the documents"
    );
}

// ---------------------------------------------------------------------------
// Crash consistency: kill -9 at random moments during mixed
// insert/PATCH/PUT/DELETE load, over several crash/reopen cycles, and compare
// every document, every count, the replica-set counts and index-backed
// queries with a model of what was acknowledged.

const CRASH_TASKS: usize = 8;
const CRASH_CYCLES: usize = 5;

fn crash_collections(cycle: usize) -> Vec<String> {
    // A brand-new collection every cycle: recovery must create it.
    vec!["c0".to_owned(), "c1".to_owned(), format!("new{cycle}")]
}

fn crash_replica_lists(cycle: usize) -> Vec<Vec<String>> {
    // A brand-new replica list every cycle: recovery must intern it.
    vec![
        replicas(&["a", "b"]),
        replicas(&["b", "a"]),
        replicas(&["c"]),
        replicas(&["a"]),
        vec![format!("n{cycle}"), "a".to_owned()],
    ]
}

/// Collection -> id -> (document, replicas).
type CrashModel = BTreeMap<String, Model>;

/// Apply one logged op (as the child printed it) to a model.
fn crash_apply(model: &mut CrashModel, op: &Value) {
    let collection = op["coll"].as_str().unwrap().to_owned();
    let docs = model.entry(collection).or_default();
    match op["kind"].as_str().unwrap() {
        "insert" => {
            let id = op["doc"]["id"].as_str().unwrap().to_owned();
            let replicas: Vec<String> = serde_json::from_value(op["replicas"].clone()).unwrap();
            docs.entry(id).or_insert_with(|| (op["doc"].clone(), replicas));
        }
        kind => {
            let q = query(op["query"].clone());
            let matched: Vec<String> = docs
                .iter()
                .filter(|(_, (document, _))| q.matches(document))
                .map(|(id, _)| id.clone())
                .collect();
            for id in matched {
                match kind {
                    "delete" => {
                        docs.remove(&id);
                    }
                    "merge" => {
                        let document = docs.get_mut(&id).unwrap().0.as_object_mut().unwrap();
                        for (key, value) in op["patch"].as_object().unwrap() {
                            if key != "id" {
                                document.insert(key.clone(), value.clone());
                            }
                        }
                    }
                    "replace" => {
                        let mut document = op["doc"].clone();
                        document["id"] = json!(id);
                        docs.get_mut(&id).unwrap().0 = document;
                    }
                    other => panic!("unknown op {other}"),
                }
            }
        }
    }
}

/// The part of a model owned by one task.
fn crash_task_part(model: &CrashModel, task: usize) -> CrashModel {
    model
        .iter()
        .map(|(collection, docs)| {
            let docs: Model = docs
                .iter()
                .filter(|(_, (document, _))| document["task"] == json!(task))
                .map(|(id, entry)| (id.clone(), entry.clone()))
                .collect();
            (collection.clone(), docs)
        })
        .filter(|(_, docs)| !docs.is_empty())
        .collect()
}

/// Everything the store holds in `collections`.
fn crash_read_all(store: &Store, collections: &[String]) -> CrashModel {
    let mut all = CrashModel::new();
    for collection in collections {
        let docs: Model = find(store, collection, json!({}))
            .into_iter()
            .map(|stored| {
                let id = stored.document["id"].as_str().unwrap().to_owned();
                (id, (stored.document, stored.replicas))
            })
            .collect();
        if !docs.is_empty() {
            all.insert(collection.clone(), docs);
        }
    }
    all
}

fn crash_random_op(rng: &mut Rng, task: usize, cycle: usize, serial: usize, own: &CrashModel) -> Value {
    let collections = crash_collections(cycle);
    let own_ids: Vec<(String, String)> = own
        .iter()
        .flat_map(|(c, docs)| docs.keys().map(move |id| (c.clone(), id.clone())))
        .collect();
    let roll = rng.below(100);
    if own_ids.is_empty() || roll < 40 || (own_ids.len() < 20 && roll < 60) {
        let collection = rng.pick(&collections).clone();
        let id = format!("y{cycle}-t{task}-{serial}");
        let mut document = random_document(rng, &id);
        document["task"] = json!(task);
        let replicas = rng.pick(&crash_replica_lists(cycle)).clone();
        return json!({"kind": "insert", "coll": collection, "doc": document, "replicas": replicas});
    }
    let (collection, id) = rng.pick(&own_ids).clone();
    if roll < 45 {
        // A duplicate: rejected, changes nothing.
        let mut document = random_document(rng, &id);
        document["task"] = json!(task);
        return json!({"kind": "insert", "coll": collection, "doc": document, "replicas": ["dup"]});
    }
    let q = match rng.below(4) {
        0 => json!({"task": task, "b": true}),
        1 => json!({"task": task, "n": {"$gte": rng.below(12) as i64 - 2}}),
        _ => json!({"task": task, "id": id}),
    };
    match roll {
        45..=64 => {
            let mut patch = Map::new();
            if rng.chance(70) {
                patch.insert("n".into(), json!(rng.below(12) as i64 - 2));
            }
            if rng.chance(50) {
                patch.insert("s".into(), random_scalar(rng));
            }
            if rng.chance(30) {
                patch.insert("o".into(), json!({"x": rng.below(5), "z": random_scalar(rng)}));
            }
            if rng.chance(10) {
                patch.insert("id".into(), json!("ignored"));
            }
            json!({"kind": "merge", "coll": collection, "query": q, "patch": patch})
        }
        65..=79 => {
            let mut document = random_document(rng, "ignored");
            document.as_object_mut().unwrap().remove("id");
            document["task"] = json!(task);
            json!({"kind": "replace", "coll": collection, "query": q, "doc": document})
        }
        _ => json!({"kind": "delete", "coll": collection, "query": q}),
    }
}

/// Child process: load until killed. Prints `S task op` before submitting an
/// op and `A task` once it resolved, each line flushed at once.
async fn crash_child(dir: &str, cycle: usize, seed: u64) {
    use std::io::Write;
    let store = Store::open(std::path::Path::new(dir), StoreOptions::default()).unwrap();
    let mut every = vec![];
    for c in 0..=cycle {
        every.extend(crash_collections(c));
    }
    every.sort();
    every.dedup();
    let existing = crash_read_all(&store, &every);
    // libtest has printed "test ... " without a newline.
    println!();
    let out = Arc::new(std::sync::Mutex::new(()));
    let mut tasks = vec![];
    for task in 0..CRASH_TASKS {
        let store = store.clone();
        let out = Arc::clone(&out);
        let mut own = crash_task_part(&existing, task);
        tasks.push(tokio::spawn(async move {
            let mut rng =
                Rng((seed ^ (task as u64 + 1).wrapping_mul(0x9E37_79B9_7F4A_7C15) ^ cycle as u64) | 1);
            for serial in 0.. {
                let op = crash_random_op(&mut rng, task, cycle, serial, &own);
                {
                    let _guard = out.lock().unwrap();
                    let mut stdout = std::io::stdout().lock();
                    writeln!(stdout, "S {task} {op}").unwrap();
                    stdout.flush().unwrap();
                }
                let collection = op["coll"].as_str().unwrap();
                let result = match op["kind"].as_str().unwrap() {
                    "insert" => store
                        .insert(
                            collection,
                            op["doc"].clone(),
                            serde_json::from_value(op["replicas"].clone()).unwrap(),
                        )
                        .await
                        .map(|()| vec![]),
                    "merge" => {
                        store
                            .update(
                                collection,
                                query(op["query"].clone()),
                                Mutation::Merge(op["patch"].as_object().unwrap().clone()),
                            )
                            .await
                    }
                    "replace" => {
                        store
                            .update(
                                collection,
                                query(op["query"].clone()),
                                Mutation::Replace(op["doc"].clone()),
                            )
                            .await
                    }
                    _ => store.delete(collection, query(op["query"].clone())).await,
                };
                let ok = match result {
                    Ok(_) => true,
                    Err(StorageError::DuplicateId { .. }) => true,
                    Err(error) => {
                        let _guard = out.lock().unwrap();
                        let mut stdout = std::io::stdout().lock();
                        writeln!(stdout, "E {task} {error}").unwrap();
                        stdout.flush().unwrap();
                        return;
                    }
                };
                if ok {
                    crash_apply(&mut own, &op);
                    own.retain(|_, docs| !docs.is_empty());
                }
                let _guard = out.lock().unwrap();
                let mut stdout = std::io::stdout().lock();
                writeln!(stdout, "A {task}").unwrap();
                stdout.flush().unwrap();
            }
        }));
    }
    for task in tasks {
        let _ = task.await;
    }
    // Every task stopped on an error: stay alive until killed.
    std::future::pending::<()>().await;
}

fn check_counts_and_reads(store: &Store, collection: &str, model: &Model, rng: &mut Rng, rounds: usize) {
    let first_is_a = |replicas: &[String]| replicas.first().map(String::as_str) == Some("a");
    let filters: [Option<ReportedFilter>; 2] = [None, Some(&first_is_a)];
    for reported in filters {
        assert_eq!(
            store.count(collection, &Query::match_all(), reported).unwrap() as usize,
            model
                .values()
                .filter(|(_, r)| reported.is_none_or(|f| f(r)))
                .count(),
            "{collection}: match-all count, filtered {}",
            reported.is_some()
        );
    }
    if !model.is_empty() {
        check_reads(store, collection, model, rng, rounds);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mixed_writes_survive_repeated_kill_9() {
    use std::io::BufRead;
    if let Ok(dir) = std::env::var("CANHAZDB_CRASH_CHILD_DIR") {
        let cycle: usize = std::env::var("CANHAZDB_CRASH_CYCLE").unwrap().parse().unwrap();
        let seed: u64 = std::env::var("CANHAZDB_CRASH_SEED").unwrap().parse().unwrap();
        crash_child(&dir, cycle, seed).await;
        return;
    }
    let seed: u64 = std::env::var("CANHAZDB_CRASH_TEST_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| {
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap()
                .as_nanos() as u64
                | 1
        });
    eprintln!("seed {seed} (set CANHAZDB_CRASH_TEST_SEED to repeat the child's ops)");
    let mut rng = Rng(seed);
    let dir = tempfile::tempdir().unwrap();
    let mut model = CrashModel::new();
    let mut every: Vec<String> = vec![];
    for cycle in 0..CRASH_CYCLES {
        every.extend(crash_collections(cycle));
        every.sort();
        every.dedup();
        let mut child = std::process::Command::new(std::env::current_exe().unwrap())
            .args([
                "--exact",
                "mixed_writes_survive_repeated_kill_9",
                "--nocapture",
                "--test-threads=1",
            ])
            .env("CANHAZDB_CRASH_CHILD_DIR", dir.path())
            .env("CANHAZDB_CRASH_CYCLE", cycle.to_string())
            .env("CANHAZDB_CRASH_SEED", rng.next().to_string())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap();
        let stdout = child.stdout.take().unwrap();
        let reader = std::thread::spawn(move || {
            std::io::BufReader::new(stdout)
                .lines()
                .map_while(Result::ok)
                .collect::<Vec<String>>()
        });
        // Random moments, often around the 2 s checkpoints.
        let delay = std::time::Duration::from_millis(300 + rng.below(3000) as u64);
        std::thread::sleep(delay);
        child.kill().unwrap();
        child.wait().unwrap();
        let lines = reader.join().unwrap();

        // Acknowledged ops go into the model; each task's last op may be in flight.
        let mut pending: Vec<Option<Value>> = vec![None; CRASH_TASKS];
        let mut acks = 0;
        for line in &lines {
            let mut parts = line.splitn(3, ' ');
            let (Some(kind), Some(task)) = (parts.next(), parts.next()) else {
                continue;
            };
            let Ok(task) = task.parse::<usize>() else { continue };
            match kind {
                "S" => {
                    assert!(pending[task].is_none(), "task {task}: two ops in flight");
                    let op: Value = serde_json::from_str(parts.next().unwrap()).unwrap();
                    pending[task] = Some(op);
                }
                "A" => {
                    let op = pending[task]
                        .take()
                        .unwrap_or_else(|| panic!("ack without op: {line}"));
                    crash_apply(&mut model, &op);
                    acks += 1;
                }
                "E" => panic!("cycle {cycle}: child write failed: {line}"),
                _ => {}
            }
        }
        model.retain(|_, docs| !docs.is_empty());

        let log = std::fs::metadata(dir.path().join("canhazdb.wal")).map_or(0, |m| m.len());
        let store = open(&dir);
        let stored = crash_read_all(&store, &every);
        // Each task's documents are as after its acknowledged ops, or also
        // after its one op in flight (all of that op or none of it).
        let mut resolved = CrashModel::new();
        for (task, in_flight) in pending.iter().enumerate() {
            let before = crash_task_part(&model, task);
            let after = in_flight.as_ref().map(|op| {
                let mut after = model.clone();
                crash_apply(&mut after, op);
                crash_task_part(&after, task)
            });
            let actual = crash_task_part(&stored, task);
            let chosen = if actual == before {
                before
            } else if after.as_ref() == Some(&actual) {
                after.unwrap()
            } else {
                let describe = |m: &CrashModel| -> Vec<(String, String, Value)> {
                    m.iter()
                        .flat_map(|(c, docs)| {
                            docs.iter()
                                .map(move |(id, (d, _))| (c.clone(), id.clone(), d.clone()))
                        })
                        .collect()
                };
                let b = describe(&before);
                let a = describe(&actual);
                let missing: Vec<_> = b.iter().filter(|x| !a.contains(x)).take(3).collect();
                let extra: Vec<_> = a.iter().filter(|x| !b.contains(x)).take(3).collect();
                panic!(
                    "cycle {cycle} (killed after {delay:?}, {acks} acks, {log} log bytes): task {task} \
                     matches neither the acknowledged state nor that plus its op in flight {:?}\n\
                     missing vs acknowledged: {missing:?}\nextra vs acknowledged: {extra:?}",
                    in_flight
                );
            };
            for (collection, docs) in chosen {
                resolved.entry(collection).or_default().extend(docs);
            }
        }
        model = resolved;
        assert_eq!(stored, model, "cycle {cycle}: the store holds exactly the model");
        let listed: Vec<(String, u64)> = model
            .iter()
            .map(|(collection, docs)| (collection.clone(), docs.len() as u64))
            .collect();
        assert_eq!(
            store.collections().unwrap(),
            listed,
            "cycle {cycle}: collection counts"
        );
        for collection in &every {
            let empty = Model::new();
            let docs = model.get(collection).unwrap_or(&empty);
            check_counts_and_reads(&store, collection, docs, &mut rng, 40);
            for task in 0..CRASH_TASKS {
                let expected = docs.values().filter(|(d, _)| d["task"] == json!(task)).count();
                assert_eq!(
                    count(&store, collection, json!({"task": task})) as usize,
                    expected
                );
            }
        }
        eprintln!(
            "cycle {cycle}: killed after {delay:?}, {acks} acks, {log} bytes of log replayed, {} documents",
            model.values().map(|docs| docs.len()).sum::<usize>()
        );
        drop(store);
    }
}

/// Bytes of `collection` in [`Store::collection_bytes`] (0 when absent).
fn stored_bytes(store: &Store, collection: &str) -> u64 {
    store
        .collection_bytes()
        .unwrap()
        .into_iter()
        .find(|(name, _)| name == collection)
        .map_or(0, |(_, bytes)| bytes)
}

/// Makes the store in `dir` look as format version 1 left it: no
/// `collection_bytes` table.
fn downgrade_to_version_1(dir: &tempfile::TempDir) {
    let database = redb::Database::create(dir.path().join("canhazdb.redb")).unwrap();
    let write = database.begin_write().unwrap();
    let bytes: redb::TableDefinition<u32, u64> = redb::TableDefinition::new("collection_bytes");
    assert!(write.delete_table(bytes).unwrap());
    let meta: redb::TableDefinition<&str, u64> = redb::TableDefinition::new("meta");
    write
        .open_table(meta)
        .unwrap()
        .insert("format_version", 1)
        .unwrap();
    write.commit().unwrap();
}

#[tokio::test]
async fn collection_bytes_follow_writes_and_match_a_full_measure() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(&dir);
    assert!(store.collection_bytes().unwrap().is_empty());
    for n in 0..20 {
        let document = json!({"id": format!("d{n}"), "n": n});
        store.insert("sized", document, replicas(&["a"])).await.unwrap();
    }
    store
        .insert("other", json!({"id": "x"}), replicas(&["a", "b"]))
        .await
        .unwrap();
    let inserted = stored_bytes(&store, "sized");
    assert!(inserted > 20 * 8, "{inserted}");

    let mut pad = Map::new();
    pad.insert("pad".into(), "x".repeat(500).into());
    store
        .update("sized", query(json!({"id": "d0"})), Mutation::Merge(pad))
        .await
        .unwrap();
    let padded = stored_bytes(&store, "sized");
    assert!(padded >= inserted + 500, "{inserted} → {padded}");
    store
        .delete("sized", query(json!({"n": {"$lt": 10}})))
        .await
        .unwrap();
    let halved = stored_bytes(&store, "sized");
    assert!(halved < inserted / 2 + 50, "{padded} → {halved}");
    let kept = store.collection_bytes().unwrap();
    store.close().await.unwrap();

    // Opening a version 1 store measures every collection from its rows:
    // the same figures the writes kept.
    downgrade_to_version_1(&dir);
    let store = open(&dir);
    assert_eq!(store.collection_bytes().unwrap(), kept);
    store.delete("sized", query(json!({}))).await.unwrap();
    assert_eq!(stored_bytes(&store, "sized"), 0);
    assert_eq!(store.collection_bytes().unwrap().len(), 1, "only `other` is left");
}
