//! External commands on one node (spec section 3): INFO, POST, GET, COUNT,
//! PUT, PATCH, DELETE, their reply shapes and correlation ids.

use canhazdb_tests::proto::{sorted, PUSH_ID};
use canhazdb_tests::{cmd, ids_of, is_uuid_v4, status, RawConn, TestServer, NODE_NAME};
use serde_json::{json, Value};
use tokio::io::AsyncReadExt;

/// Spec 3 "Readiness": a healthy node sends every new connection READY,
/// exactly `02 00 a0 01` (id 2, command 160, no payload).
#[tokio::test]
async fn ready_is_the_first_frame_byte_for_byte() {
    let server = TestServer::start().await;
    for _ in 0..3 {
        let mut conn = RawConn::connect_raw(server.addr()).await;
        let mut bytes = [0u8; 4];
        tokio::time::timeout(
            canhazdb_tests::READ_TIMEOUT,
            conn.stream_mut().read_exact(&mut bytes),
        )
        .await
        .expect("READY must arrive without any request")
        .expect("read READY");
        assert_eq!(
            bytes,
            [PUSH_ID as u8, 0x00, cmd::READY, 0x01],
            "READY frame bytes"
        );
    }
}

#[tokio::test]
async fn info_with_system_reports_the_node() {
    let server = TestServer::start().await;
    let mut conn = RawConn::connect(server.addr()).await;
    let reply = conn.call(cmd::INFO, json!({"3": true})).await.expect(status::OK);
    let data = reply.data();
    assert_eq!(data["nodeName"], json!(NODE_NAME), "{}", reply.describe());
    assert!(
        data["status"].is_string(),
        "status must be a string: {}",
        reply.describe()
    );
    let nodes = data["nodes"]
        .as_array()
        .unwrap_or_else(|| panic!("nodes must be an array: {}", reply.describe()));
    for node in nodes {
        assert!(node["host"].is_string(), "node host: {}", reply.describe());
        assert!(
            node["port"].is_u64(),
            "node port must be a number: {}",
            reply.describe()
        );
    }
    assert!(
        nodes
            .iter()
            .any(|node| node["host"] == json!("127.0.0.1") && node["port"] == json!(server.port())),
        "nodes must list this node as {{host: \"127.0.0.1\", port: {}}}: {}",
        server.port(),
        reply.describe()
    );
}

#[tokio::test]
async fn post_without_id_assigns_a_uuid_v4_and_answers_created_with_the_document() {
    let server = TestServer::start().await;
    let mut conn = RawConn::connect(server.addr()).await;
    let body = json!({"a": 1, "b": "two", "c": {"d": [1, 2, null]}, "e": null, "f": true});
    let reply = conn
        .call(cmd::POST, json!({"10": "tests", "20": body}))
        .await
        .expect(status::CREATED);
    let document = reply.data().clone();
    let id = document["id"]
        .as_str()
        .unwrap_or_else(|| panic!("document id must be a string: {}", reply.describe()))
        .to_owned();
    assert!(is_uuid_v4(&id), "POST must assign a UUID v4, got {id:?}");
    let mut expected = body.clone();
    expected["id"] = json!(id);
    assert_eq!(
        document,
        expected,
        "CREATED DATA must be the document: {}",
        reply.describe()
    );

    let second = conn.post("tests", json!({"a": 1})).await;
    assert_ne!(second["id"], json!(id), "ids must be random");

    let stored = conn.get("tests", json!({"40": {"id": id}})).await;
    assert_eq!(
        stored,
        vec![expected],
        "GET must return the stored document unchanged"
    );
}

/// Spec section 3: "POST assigns a random UUID v4 unless DATA carries a
/// string id" — an id of any other type is replaced.
#[tokio::test]
async fn post_with_an_id_that_is_not_a_string_gets_a_uuid_v4() {
    let server = TestServer::start().await;
    let mut conn = RawConn::connect(server.addr()).await;
    for id in [
        json!(5),
        json!(null),
        json!({"nested": 1}),
        json!([1]),
        json!(true),
    ] {
        let reply = conn
            .call(cmd::POST, json!({"10": "typed", "20": {"id": id, "v": 1}}))
            .await
            .expect(status::CREATED);
        let assigned = reply.data()["id"].as_str().unwrap_or_default().to_owned();
        assert!(
            is_uuid_v4(&assigned),
            "POST with id {id} must assign a UUID v4: {}",
            reply.describe()
        );
        assert_eq!(
            conn.get("typed", json!({"40": {"id": assigned}})).await,
            vec![json!({"id": assigned, "v": 1})]
        );
    }
}

#[tokio::test]
async fn post_with_a_string_id_keeps_it_and_a_duplicate_is_bad_request() {
    let server = TestServer::start().await;
    let mut conn = RawConn::connect(server.addr()).await;
    let created = conn.post("tests", json!({"id": "doc-1", "v": 1})).await;
    assert_eq!(created, json!({"id": "doc-1", "v": 1}));

    conn.call(cmd::POST, json!({"10": "tests", "20": {"id": "doc-1", "v": 2}}))
        .await
        .expect_error_message(status::BAD_REQUEST);
    assert_eq!(
        conn.get("tests", json!({})).await,
        vec![json!({"id": "doc-1", "v": 1})],
        "a refused duplicate must not change or add anything"
    );

    // The same id in another collection is a different document.
    let other = conn.post("others", json!({"id": "doc-1", "v": 3})).await;
    assert_eq!(other, json!({"id": "doc-1", "v": 3}));
}

#[tokio::test]
async fn get_returns_every_document_exactly_without_bookkeeping() {
    let server = TestServer::start().await;
    let mut conn = RawConn::connect(server.addr()).await;
    let mut expected = Vec::new();
    for i in 0..5 {
        expected.push(conn.post("many", json!({"i": i, "name": format!("n{i}")})).await);
    }
    let mut documents = conn.get("many", json!({})).await;
    documents.sort_by_key(|d| d["i"].as_i64());
    assert_eq!(
        documents, expected,
        "GET without QUERY must return every document as stored"
    );
    for document in &documents {
        let keys: Vec<&String> = document.as_object().unwrap().keys().collect();
        assert_eq!(keys.len(), 3, "no replica bookkeeping in replies: {document}");
    }
    assert_eq!(conn.get("never-written", json!({})).await, Vec::<Value>::new());
}

#[tokio::test]
async fn get_with_query_fields_order_and_limit() {
    let server = TestServer::start().await;
    let mut conn = RawConn::connect(server.addr()).await;
    for (id, n, group) in [
        ("a", 5, "x"),
        ("b", 3, "x"),
        ("c", 9, "y"),
        ("d", 1, "x"),
        ("e", 7, "x"),
    ] {
        conn.post("q", json!({"id": id, "n": n, "group": group, "extra": "drop"}))
            .await;
    }
    let documents = conn
        .get(
            "q",
            json!({"40": {"group": "x"}, "41": ["n"], "43": "desc(n)", "42": 3}),
        )
        .await;
    assert_eq!(
        documents,
        vec![
            json!({"id": "e", "n": 7}),
            json!({"id": "a", "n": 5}),
            json!({"id": "b", "n": 3})
        ]
    );
}

#[tokio::test]
async fn count_with_and_without_query() {
    let server = TestServer::start().await;
    let mut conn = RawConn::connect(server.addr()).await;
    assert_eq!(
        conn.count("counted", json!({})).await,
        0,
        "COUNT of an unknown collection"
    );
    for i in 0..7 {
        conn.post("counted", json!({"i": i, "even": i % 2 == 0})).await;
    }
    let reply = conn
        .call(cmd::COUNT, json!({"10": "counted"}))
        .await
        .expect(status::OK);
    assert_eq!(reply.payload, Some(json!({"20": 7})), "{}", reply.describe());
    assert_eq!(conn.count("counted", json!({"40": {"even": true}})).await, 4);
    assert_eq!(conn.count("counted", json!({"40": {"i": {"$gte": 5}}})).await, 2);
    assert_eq!(conn.count("counted", json!({"40": {"i": 100}})).await, 0);
}

#[tokio::test]
async fn put_replaces_matched_documents_and_keeps_their_ids() {
    let server = TestServer::start().await;
    let mut conn = RawConn::connect(server.addr()).await;
    conn.post("p", json!({"id": "a", "tag": "x", "old": 1})).await;
    conn.post("p", json!({"id": "b", "tag": "x", "old": 2})).await;
    conn.post("p", json!({"id": "c", "tag": "y", "old": 3})).await;

    let reply = conn
        .call(
            cmd::PUT,
            json!({"10": "p", "20": {"new": true}, "40": {"tag": "x"}}),
        )
        .await
        .expect(status::OK);
    assert_eq!(ids_of(reply.data()), sorted(&["a", "b"]), "{}", reply.describe());
    assert_eq!(
        reply.data().as_array().unwrap().len(),
        2,
        "each id once: {}",
        reply.describe()
    );

    let mut documents = conn.get("p", json!({})).await;
    documents.sort_by(|x, y| x["id"].as_str().cmp(&y["id"].as_str()));
    assert_eq!(
        documents,
        vec![
            json!({"id": "a", "new": true}),
            json!({"id": "b", "new": true}),
            json!({"id": "c", "tag": "y", "old": 3}),
        ],
        "PUT replaces the whole document but keeps id"
    );
}

#[tokio::test]
async fn put_patch_delete_without_query_match_every_document() {
    let server = TestServer::start().await;
    let mut conn = RawConn::connect(server.addr()).await;
    for id in ["a", "b", "c"] {
        conn.post("all", json!({"id": id, "v": 0})).await;
    }
    let all = sorted(&["a", "b", "c"]);
    assert_eq!(
        conn.write_ids(cmd::PUT, "all", json!({"20": {"v": 1}})).await,
        all
    );
    assert_eq!(conn.count("all", json!({"40": {"v": 1}})).await, 3);
    assert_eq!(
        conn.write_ids(cmd::PATCH, "all", json!({"20": {"w": 2}})).await,
        all
    );
    assert_eq!(conn.count("all", json!({"40": {"v": 1, "w": 2}})).await, 3);
    assert_eq!(conn.write_ids(cmd::DELETE, "all", json!({})).await, all);
    assert_eq!(conn.count("all", json!({})).await, 0);
    assert_eq!(conn.get("all", json!({})).await, Vec::<Value>::new());
}

#[tokio::test]
async fn patch_merges_top_level_keys() {
    let server = TestServer::start().await;
    let mut conn = RawConn::connect(server.addr()).await;
    conn.post(
        "m",
        json!({"id": "a", "keep": 1, "over": "old", "nested": {"x": 1, "y": 2}}),
    )
    .await;
    conn.post("m", json!({"id": "b", "keep": 2})).await;
    let ids = conn
        .write_ids(
            cmd::PATCH,
            "m",
            json!({"20": {"over": "new", "added": [1], "nested": {"x": 9}}, "40": {"id": "a"}}),
        )
        .await;
    assert_eq!(ids, sorted(&["a"]));
    assert_eq!(
        conn.get("m", json!({"40": {"id": "a"}})).await,
        vec![json!({"id": "a", "keep": 1, "over": "new", "added": [1], "nested": {"x": 9}})],
        "PATCH merges top-level keys only (a nested object is replaced whole)"
    );
    assert_eq!(
        conn.get("m", json!({"40": {"id": "b"}})).await,
        vec![json!({"id": "b", "keep": 2})]
    );
}

/// "Neither can change an id": whether the server refuses such a write or
/// ignores the id, the document must keep its id and no other id may appear.
#[tokio::test]
async fn put_and_patch_cannot_change_an_id() {
    let server = TestServer::start().await;
    let mut conn = RawConn::connect(server.addr()).await;
    conn.post("ids", json!({"id": "a", "v": 1})).await;
    for command in [cmd::PUT, cmd::PATCH] {
        let reply = conn
            .call(
                command,
                json!({"10": "ids", "20": {"id": "hijacked", "v": 2}, "40": {"id": "a"}}),
            )
            .await;
        match reply.status {
            status::OK => assert_eq!(ids_of(reply.data()), sorted(&["a"]), "{}", reply.describe()),
            status::BAD_REQUEST => {
                reply.expect_error_message(status::BAD_REQUEST);
            }
            _ => panic!("expected OK or BAD_REQUEST, observed {}", reply.describe()),
        }
        let all = conn.get("ids", json!({})).await;
        assert_eq!(
            ids_of(&Value::Array(all)),
            sorted(&["a"]),
            "the id must not change"
        );
    }
    // And a PUT without an id in DATA keeps the id too.
    conn.write_ids(cmd::PUT, "ids", json!({"20": {"v": 3}, "40": {"id": "a"}}))
        .await;
    assert_eq!(conn.get("ids", json!({})).await, vec![json!({"id": "a", "v": 3})]);
}

#[tokio::test]
async fn delete_returns_each_deleted_id_once() {
    let server = TestServer::start().await;
    let mut conn = RawConn::connect(server.addr()).await;
    for (id, v) in [("a", 1), ("b", 2), ("c", 3), ("d", 4)] {
        conn.post("del", json!({"id": id, "v": v})).await;
    }
    let reply = conn
        .call(cmd::DELETE, json!({"10": "del", "40": {"v": {"$gte": 3}}}))
        .await
        .expect(status::OK);
    assert_eq!(
        reply.data().as_array().map(Vec::len),
        Some(2),
        "{}",
        reply.describe()
    );
    assert_eq!(ids_of(reply.data()), sorted(&["c", "d"]));
    assert_eq!(
        ids_of(&Value::Array(conn.get("del", json!({})).await)),
        sorted(&["a", "b"])
    );
    // Deleting again affects nothing.
    let again = conn
        .call(cmd::DELETE, json!({"10": "del", "40": {"v": {"$gte": 3}}}))
        .await
        .expect(status::OK);
    assert_eq!(again.payload, Some(json!({"20": []})), "{}", again.describe());
    // A deleted id can be POSTed again.
    conn.post("del", json!({"id": "c", "v": 30})).await;
}

#[tokio::test]
async fn writes_matching_nothing_answer_ok_with_an_empty_list() {
    let server = TestServer::start().await;
    let mut conn = RawConn::connect(server.addr()).await;
    conn.post("none", json!({"v": 1})).await;
    for (command, extra) in [
        (cmd::PUT, json!({"20": {"v": 2}, "40": {"v": 99}})),
        (cmd::PATCH, json!({"20": {"v": 2}, "40": {"v": 99}})),
        (cmd::DELETE, json!({"40": {"v": 99}})),
    ] {
        let mut payload = extra;
        payload["10"] = json!("none");
        let reply = conn.call(command, payload).await.expect(status::OK);
        assert_eq!(reply.payload, Some(json!({"20": []})), "{}", reply.describe());
    }
    assert_eq!(conn.count("none", json!({"40": {"v": 1}})).await, 1);
}

/// Ids are little-endian u16; a reply carries its request's id, including
/// ids whose bytes are 0x01 (the terminator value).
#[tokio::test]
async fn replies_carry_the_request_id_including_0x01_bytes() {
    let server = TestServer::start().await;
    let mut conn = RawConn::connect(server.addr()).await;
    for id in [3u16, 0x0101, 0x0103, 0x0301, 0x00ff, 0xff00, 0xfffe, u16::MAX] {
        conn.send(id, cmd::COUNT, Some(&json!({"10": "ids"}))).await;
        let reply = conn.reply_to(id).await.expect(status::OK);
        assert_eq!(reply.frame.id, id);
        let wire = reply.frame.to_bytes();
        assert_eq!(&wire[..2], &id.to_le_bytes(), "id bytes are little-endian");
        assert_eq!(reply.payload, Some(json!({"20": 0})), "{}", reply.describe());
    }
}

/// A document POSTed with unusual but valid JSON content round-trips.
#[tokio::test]
async fn documents_round_trip_unicode_escapes_and_numbers() {
    let server = TestServer::start().await;
    let mut conn = RawConn::connect(server.addr()).await;
    let body = json!({
        "text": "héllo \u{1F600} \"quoted\" \\ back\nline\u{0001}ctrl",
        "big": 9007199254740991i64,
        "neg": -12.5,
        "empty": {},
        "list": [[], {}, "", 0],
    });
    let created = conn.post("uni", body.clone()).await;
    let mut expected = body;
    expected["id"] = created["id"].clone();
    assert_eq!(created, expected);
    assert_eq!(conn.get("uni", json!({})).await, vec![expected]);
}
