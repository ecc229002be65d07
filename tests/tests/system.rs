//! System collections (spec section 6).

use canhazdb_tests::{cmd, RawConn, TestServer, NODE_NAME};
use serde_json::{json, Value};

/// The system.collections document of `collection`, if any.
async fn collection_doc(conn: &mut RawConn, collection: &str) -> Option<Value> {
    let documents = conn.get("system.collections", json!({})).await;
    let matching: Vec<&Value> = documents
        .iter()
        .filter(|d| d["collectionId"] == json!(collection))
        .collect();
    assert!(matching.len() <= 1, "one document per collection: {documents:?}");
    matching.first().map(|d| (*d).clone())
}

#[tokio::test]
async fn system_collections_has_an_exact_document_count() {
    let server = TestServer::start().await;
    let mut conn = RawConn::connect(server.addr()).await;
    for i in 0..3 {
        conn.post("sc-one", json!({"i": i})).await;
    }
    conn.post("sc-two", json!({"id": "only"})).await;

    let one = collection_doc(&mut conn, "sc-one")
        .await
        .expect("sc-one is listed");
    assert_eq!(one["documentCount"], json!(3), "{one}");
    assert!(one["id"].is_string(), "every document has a string id: {one}");
    let two = collection_doc(&mut conn, "sc-two")
        .await
        .expect("sc-two is listed");
    assert_eq!(two["documentCount"], json!(1), "{two}");

    // Counts follow acknowledged writes at once.
    conn.post("sc-one", json!({"i": 3})).await;
    conn.write_ids(cmd::DELETE, "sc-one", json!({"40": {"i": {"$lt": 2}}}))
        .await;
    let one = collection_doc(&mut conn, "sc-one")
        .await
        .expect("sc-one is listed");
    assert_eq!(one["documentCount"], json!(2), "3 + 1 - 2: {one}");
    conn.write_ids(cmd::PATCH, "sc-one", json!({"20": {"p": 1}}))
        .await;
    conn.write_ids(cmd::PUT, "sc-one", json!({"20": {"q": 1}})).await;
    let one = collection_doc(&mut conn, "sc-one")
        .await
        .expect("sc-one is listed");
    assert_eq!(
        one["documentCount"],
        json!(2),
        "PUT/PATCH do not change the count: {one}"
    );

    // It is queried like any collection.
    let queried = conn
        .get("system.collections", json!({"40": {"collectionId": "sc-two"}}))
        .await;
    assert_eq!(queried.len(), 1, "{queried:?}");
    assert_eq!(queried[0]["documentCount"], json!(1));
    let projected = conn
        .get(
            "system.collections",
            json!({"40": {"collectionId": "sc-two"}, "41": ["documentCount"]}),
        )
        .await;
    assert_eq!(projected.len(), 1);
    let keys: Vec<&String> = projected[0].as_object().unwrap().keys().collect();
    let mut keys: Vec<&str> = keys.iter().map(|k| k.as_str()).collect();
    keys.sort();
    assert_eq!(keys, ["documentCount", "id"], "{projected:?}");
    let ordered = conn
        .get(
            "system.collections",
            json!({"40": {"collectionId": {"$in": ["sc-one", "sc-two"]}}, "43": "desc(documentCount)"}),
        )
        .await;
    let order: Vec<&Value> = ordered.iter().map(|d| &d["collectionId"]).collect();
    assert_eq!(order, [&json!("sc-one"), &json!("sc-two")]);
}

#[tokio::test]
async fn system_collections_counts_many_documents_exactly() {
    let server = TestServer::start().await;
    let mut conn = RawConn::connect(server.addr()).await;
    for i in 0..150 {
        conn.post("sc-many", json!({"i": i})).await;
    }
    let doc = collection_doc(&mut conn, "sc-many").await.expect("listed");
    assert_eq!(doc["documentCount"], json!(150), "{doc}");
    assert_eq!(conn.count("sc-many", json!({})).await, 150);
}

#[tokio::test]
async fn system_nodes_describes_this_node() {
    let server = TestServer::start().await;
    let mut conn = RawConn::connect(server.addr()).await;
    let nodes = conn.get("system.nodes", json!({})).await;
    assert_eq!(nodes.len(), 1, "a single node knows one node: {nodes:?}");
    let node = &nodes[0];
    assert_eq!(node["name"], json!(NODE_NAME), "{node}");
    assert_eq!(node["host"], json!("127.0.0.1"), "{node}");
    assert_eq!(node["port"], json!(server.port()), "{node}");
    assert!(
        node["connected"].is_boolean(),
        "connected must be a boolean: {node}"
    );
    assert_eq!(
        node["online"],
        json!(true),
        "a healthy single node is online: {node}"
    );
    assert!(
        node.get("status").is_some_and(|s| !s.is_null()),
        "status must be present: {node}"
    );
    let by_name = conn
        .get("system.nodes", json!({"40": {"name": NODE_NAME}, "41": ["port"]}))
        .await;
    assert_eq!(by_name.len(), 1);
    assert_eq!(by_name[0]["port"], json!(server.port()));
}

#[tokio::test]
async fn system_collections_are_read_only() {
    let server = TestServer::start().await;
    let mut conn = RawConn::connect(server.addr()).await;
    conn.post("ro", json!({"v": 1})).await;
    for collection in [
        "system.collections",
        "system.nodes",
        "system.locks",
        "system.notifys",
    ] {
        conn.assert_writes_refused(collection, json!({"documentCount": 0}))
            .await;
    }
    let doc = collection_doc(&mut conn, "ro").await.expect("listed");
    assert_eq!(doc["documentCount"], json!(1), "{doc}");
    assert_eq!(conn.get("system.nodes", json!({})).await.len(), 1);
}
