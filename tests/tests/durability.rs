//! Acknowledged writes survive `kill -9` (spec section 4: "A write is
//! acknowledged when every online replica has stored it").

use bytes::BytesMut;
use canhazdb_core::frame::Frame;
use canhazdb_tests::{cmd, ids_of, status, RawConn, TestServer};
use serde_json::{json, Value};

/// POSTs `count` documents pipelined in one write; waits for every CREATED.
async fn post_batch(conn: &mut RawConn, collection: &str, first: usize, count: usize) {
    let mut wire = BytesMut::new();
    let mut ids = Vec::new();
    for i in first..first + count {
        let id = conn.fresh_id();
        ids.push(id);
        let document = json!({"id": format!("d{i:04}"), "n": i, "group": i % 5, "name": format!("doc {i}")});
        let payload = serde_json::to_vec(&json!({"10": collection, "20": document})).unwrap();
        Frame::new(id, cmd::POST, payload).encode(&mut wire);
    }
    conn.send_raw(&wire).await;
    for id in ids {
        conn.reply_to(id).await.expect(status::CREATED);
    }
}

fn expected_document(i: usize) -> Value {
    json!({"id": format!("d{i:04}"), "n": i, "group": i % 5, "name": format!("doc {i}")})
}

#[tokio::test]
async fn acknowledged_writes_survive_kill_9() {
    let mut server = TestServer::start().await;
    let total = 300;
    {
        let mut conn = RawConn::connect(server.addr()).await;
        post_batch(&mut conn, "durable", 0, total).await;
        // A PATCH, a PUT and a DELETE, each acknowledged.
        let patched = conn
            .write_ids(
                cmd::PATCH,
                "durable",
                json!({"20": {"patched": true}, "40": {"group": 1}}),
            )
            .await;
        assert_eq!(patched.len(), total / 5);
        conn.write_ids(
            cmd::PUT,
            "durable",
            json!({"20": {"replaced": 7}, "40": {"id": "d0002"}}),
        )
        .await;
        conn.write_ids(
            cmd::PATCH,
            "durable",
            json!({"20": {"name": "renamed"}, "40": {"id": "d0007"}}),
        )
        .await;
        let deleted = conn
            .write_ids(cmd::DELETE, "durable", json!({"40": {"group": 4}}))
            .await;
        assert_eq!(deleted.len(), total / 5);
        // Killed right after the last acknowledgement, no clean shutdown.
        server.kill9();
    }
    server.restart().await;

    let mut conn = RawConn::connect(server.addr()).await;
    let mut expected: Vec<Value> = (0..total)
        .filter(|i| i % 5 != 4)
        .map(|i| {
            let mut document = expected_document(i);
            if i % 5 == 1 {
                document["patched"] = json!(true);
            }
            if i == 2 {
                document = json!({"id": "d0002", "replaced": 7});
            }
            if i == 7 {
                document["name"] = json!("renamed");
            }
            document
        })
        .collect();
    let mut documents = conn.get("durable", json!({})).await;
    documents.sort_by(|a, b| a["id"].as_str().cmp(&b["id"].as_str()));
    expected.sort_by(|a, b| a["id"].as_str().cmp(&b["id"].as_str()));
    assert_eq!(documents.len(), expected.len(), "document count after restart");
    assert_eq!(
        documents, expected,
        "every acknowledged write after kill -9 and restart"
    );

    // Queries by field (served by the indexes) find exactly the right ones.
    let group3 = conn.get("durable", json!({"40": {"group": 3}})).await;
    let want: Vec<String> = (0..total)
        .filter(|i| i % 5 == 3)
        .map(|i| format!("d{i:04}"))
        .collect();
    assert_eq!(
        ids_of(&Value::Array(group3)),
        want,
        "query by group after restart"
    );
    assert_eq!(conn.count("durable", json!({"40": {"group": 4}})).await, 0);
    assert_eq!(
        conn.count("durable", json!({"40": {"patched": true}})).await,
        (total / 5) as u64
    );
    assert_eq!(
        conn.count("durable", json!({"40": {"n": {"$gte": 100, "$lt": 110}}}))
            .await,
        8
    );
    let top = conn
        .get("durable", json!({"43": "desc(n)", "42": 2, "41": ["n"]}))
        .await;
    assert_eq!(
        top,
        vec![json!({"id": "d0298", "n": 298}), json!({"id": "d0297", "n": 297})]
    );
    let byname = conn.get("durable", json!({"40": {"name": "doc 123"}})).await;
    assert_eq!(byname, vec![expected_document(123)]);

    // No stale index entries: old values of replaced or patched fields are gone.
    let group2 = conn.get("durable", json!({"40": {"group": 2}})).await;
    assert!(
        !ids_of(&Value::Array(group2)).contains(&"d0002".to_owned()),
        "d0002 was replaced and has no group any more"
    );
    assert_eq!(
        conn.get("durable", json!({"40": {"name": "doc 7"}})).await,
        Vec::<Value>::new()
    );
    let renamed = conn.get("durable", json!({"40": {"name": "renamed"}})).await;
    assert_eq!(ids_of(&Value::Array(renamed)), vec!["d0007".to_owned()]);
    let replaced = conn
        .get("durable", json!({"40": {"replaced": {"$gte": 7}}}))
        .await;
    assert_eq!(ids_of(&Value::Array(replaced)), vec!["d0002".to_owned()]);
    assert_eq!(
        conn.count("durable", json!({"40": {"group": {"$in": [4]}}}))
            .await,
        0
    );

    // system.collections is exact after the restart too.
    let collections = conn
        .get("system.collections", json!({"40": {"collectionId": "durable"}}))
        .await;
    assert_eq!(collections.len(), 1, "{collections:?}");
    assert_eq!(collections[0]["documentCount"], json!(expected.len()));

    // A duplicate of a recovered id is still refused (the id index survived).
    conn.call(cmd::POST, json!({"10": "durable", "20": {"id": "d0000"}}))
        .await
        .expect_error(status::BAD_REQUEST);
    server.assert_alive();
}

#[tokio::test]
async fn writes_after_a_restart_survive_a_second_kill() {
    let mut server = TestServer::start().await;
    {
        let mut conn = RawConn::connect(server.addr()).await;
        post_batch(&mut conn, "twice", 0, 50).await;
    }
    server.kill9();
    server.restart().await;
    {
        let mut conn = RawConn::connect(server.addr()).await;
        assert_eq!(conn.count("twice", json!({})).await, 50);
        post_batch(&mut conn, "twice", 50, 50).await;
        conn.write_ids(cmd::DELETE, "twice", json!({"40": {"n": {"$lt": 10}}}))
            .await;
        server.kill9();
    }
    server.restart().await;
    let mut conn = RawConn::connect(server.addr()).await;
    assert_eq!(conn.count("twice", json!({})).await, 90);
    assert_eq!(conn.count("twice", json!({"40": {"group": 0}})).await, 18);
    let documents = conn
        .get("twice", json!({"40": {"n": {"$gte": 95}}, "43": "asc(n)"}))
        .await;
    assert_eq!(documents, (95..100).map(expected_document).collect::<Vec<_>>());
}
