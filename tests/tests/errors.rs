//! Error replies (spec sections 1-3): statuses, `{"100": "<string>"}`, and the
//! connection staying usable after a bad request.

use canhazdb_core::frame::Frame;
use canhazdb_tests::{cmd, status, RawConn, TestServer};
use serde_json::{json, Value};

/// The connection still answers a normal request.
async fn still_usable(conn: &mut RawConn) {
    let reply = conn.call(cmd::COUNT, json!({"10": "usable"})).await;
    reply.expect(status::OK);
}

#[tokio::test]
async fn unknown_command_is_not_found_without_payload() {
    let server = TestServer::start().await;
    let mut conn = RawConn::connect(server.addr()).await;
    for (id, command) in [(3u16, 99u8), (4, 200), (5, 7), (6, 255), (7, 37), (8, 29)] {
        conn.send(id, command, Some(&json!({"10": "x"}))).await;
        conn.reply_to(id).await.expect_empty(status::NOT_FOUND);
        conn.send(id, command, None).await;
        conn.reply_to(id).await.expect_empty(status::NOT_FOUND);
    }
    still_usable(&mut conn).await;
}

#[tokio::test]
async fn invalid_json_is_bad_request_with_a_string_error_and_the_connection_stays_usable() {
    let server = TestServer::start().await;
    let mut conn = RawConn::connect(server.addr()).await;
    let payloads: [&[u8]; 7] = [
        b"{\"10\":",
        b"{10: \"tests\"}",
        b"not json",
        b"{\"10\":\"tests\"} trailing",
        b"{\"10\":\"tests\",}",
        b"\xff\xfe{}",
        b"{\"10\":\"t\xc3\"}",
    ];
    for (index, payload) in payloads.iter().enumerate() {
        let id = 100 + index as u16;
        conn.send_frame(&Frame::new(id, cmd::GET, payload.to_vec())).await;
        let reply = conn.reply_to(id).await;
        let message = reply.expect_error_message(status::BAD_REQUEST);
        assert!(!message.is_empty(), "the error message must say something");
        still_usable(&mut conn).await;
    }
}

#[tokio::test]
async fn non_object_payloads_are_bad_request() {
    let server = TestServer::start().await;
    let mut conn = RawConn::connect(server.addr()).await;
    for payload in [json!([1, 2]), json!("tests"), json!(5), json!(null), json!(true)] {
        for command in [cmd::GET, cmd::POST, cmd::COUNT, cmd::LOCK, cmd::NOTIFY_ON] {
            conn.call(command, payload.clone())
                .await
                .expect_error_message(status::BAD_REQUEST);
        }
    }
    still_usable(&mut conn).await;
}

#[tokio::test]
async fn invalid_collection_ids_are_bad_request() {
    let server = TestServer::start().await;
    let mut conn = RawConn::connect(server.addr()).await;
    let too_long = "a".repeat(129);
    let bad: Vec<Value> = vec![
        json!(""),
        json!(too_long),
        json!("a/b"),
        json!("a b"),
        json!("a_b"),
        json!("tést"),
        json!("a\u{0}b"),
        json!("../etc"),
        json!("a:b"),
        json!(5),
        json!(null),
        json!(["tests"]),
    ];
    for collection in &bad {
        for (command, extra) in [
            (cmd::GET, json!({})),
            (cmd::COUNT, json!({})),
            (cmd::POST, json!({"20": {"v": 1}})),
            (cmd::PUT, json!({"20": {"v": 1}})),
            (cmd::PATCH, json!({"20": {"v": 1}})),
            (cmd::DELETE, json!({})),
        ] {
            let mut payload = extra;
            payload["10"] = collection.clone();
            let reply = conn.call(command, payload).await;
            assert_eq!(
                reply.status,
                status::BAD_REQUEST,
                "collection id {collection} with command {command}: observed {}",
                reply.describe()
            );
            reply.expect_error(status::BAD_REQUEST);
        }
    }
    // A missing collection id is bad too.
    for command in [cmd::GET, cmd::COUNT, cmd::POST, cmd::DELETE] {
        conn.call(command, json!({"20": {"v": 1}}))
            .await
            .expect_error(status::BAD_REQUEST);
    }
    // The valid edge cases are accepted.
    let longest = "b".repeat(128);
    for good in ["Ab-9.x", longest.as_str(), "A", ".", "-"] {
        conn.post(good, json!({"v": 1})).await;
        assert_eq!(conn.count(good, json!({})).await, 1, "collection {good:?}");
    }
}

#[tokio::test]
async fn writes_to_system_collections_are_bad_request() {
    let server = TestServer::start().await;
    let mut conn = RawConn::connect(server.addr()).await;
    for collection in [
        "system.collections",
        "system.nodes",
        "system.locks",
        "system.notifys",
        "system.other",
    ] {
        conn.assert_writes_refused(collection, json!({"v": 1})).await;
    }
    // Nothing was written: system.nodes still lists exactly one node.
    assert_eq!(conn.get("system.nodes", json!({})).await.len(), 1);
}

#[tokio::test]
async fn unknown_operators_and_wrong_arguments_are_named_in_the_error() {
    let server = TestServer::start().await;
    let mut conn = RawConn::connect(server.addr()).await;
    conn.post("ops", json!({"v": 1})).await;
    let cases = [
        (json!({"v": {"$foo": 1}}), "$foo"),
        (json!({"$xor": [{"v": 1}]}), "$xor"),
        (json!({"v": {"$regex": "a"}}), "$regex"),
        (json!({"v": {"$in": 5}}), "$in"),
        (json!({"v": {"$nin": "abc"}}), "$nin"),
        (json!({"$and": {"v": 1}}), "$and"),
        (json!({"$or": 5}), "$or"),
        (json!({"v": {"$exists": "yes"}}), "$exists"),
        (json!({"v": {"$null": 1}}), "$null"),
    ];
    for (query, operator) in cases {
        for command in [cmd::GET, cmd::COUNT, cmd::DELETE] {
            let reply = conn.call(command, json!({"10": "ops", "40": query})).await;
            let described = reply.describe();
            let message = reply.expect_error_message(status::BAD_REQUEST);
            assert!(
                message.contains(operator),
                "the error must name {operator} (query {query}, command {command}), observed {described}"
            );
        }
        let reply = conn
            .call(cmd::PUT, json!({"10": "ops", "20": {"v": 2}, "40": query}))
            .await;
        let described = reply.describe();
        let message = reply.expect_error_message(status::BAD_REQUEST);
        assert!(message.contains(operator), "PUT with {query}: {described}");
    }
    // Nothing was deleted or replaced by the refused requests.
    assert_eq!(conn.count("ops", json!({"40": {"v": 1}})).await, 1);
}

/// QUERY must be an object, FIELDS an array of strings, ORDER asc()/desc()
/// terms, LIMIT a positive integer, DATA an object.
#[tokio::test]
async fn malformed_request_keys_are_bad_request() {
    let server = TestServer::start().await;
    let mut conn = RawConn::connect(server.addr()).await;
    conn.post("mal", json!({"v": 1})).await;
    let gets = [
        json!({"40": "v=1"}),
        json!({"40": [1]}),
        json!({"41": "v"}),
        json!({"41": [1]}),
        json!({"43": 5}),
        json!({"43": "sideways(v)"}),
        json!({"42": 0}),
        json!({"42": -1}),
        json!({"42": "2"}),
        json!({"42": 1.5}),
    ];
    for extra in gets {
        let mut payload = extra.clone();
        payload["10"] = json!("mal");
        let reply = conn.call(cmd::GET, payload).await;
        assert_eq!(
            reply.status,
            status::BAD_REQUEST,
            "GET with {extra}: {}",
            reply.describe()
        );
        reply.expect_error(status::BAD_REQUEST);
    }
    let writes = [
        (cmd::POST, json!({})),
        (cmd::POST, json!({"20": [1]})),
        (cmd::POST, json!({"20": "doc"})),
        (cmd::PUT, json!({})),
        (cmd::PUT, json!({"20": 5})),
        (cmd::PATCH, json!({})),
        (cmd::PATCH, json!({"20": [1]})),
    ];
    for (command, extra) in writes {
        let mut payload = extra.clone();
        payload["10"] = json!("mal");
        let reply = conn.call(command, payload).await;
        assert_eq!(
            reply.status,
            status::BAD_REQUEST,
            "command {command} with {extra}: {}",
            reply.describe()
        );
        reply.expect_error(status::BAD_REQUEST);
    }
    assert_eq!(conn.get("mal", json!({})).await.len(), 1);
    assert_eq!(conn.count("mal", json!({"40": {"v": 1}})).await, 1);
}

#[tokio::test]
async fn lock_key_must_be_a_string() {
    let server = TestServer::start().await;
    let mut conn = RawConn::connect(server.addr()).await;
    for payload in [
        json!({"66": 5}),
        json!({"66": null}),
        json!({"66": {"k": 1}}),
        json!({"66": ["k"]}),
        json!({}),
    ] {
        let reply = conn.call(cmd::LOCK, payload.clone()).await;
        assert_eq!(
            reply.status,
            status::BAD_REQUEST,
            "LOCK {payload}: {}",
            reply.describe()
        );
        reply.expect_error(status::BAD_REQUEST);
    }
    // A good LOCK still works on this connection.
    let lock_id = conn.lock("fine").await;
    conn.unlock(&lock_id).await;
}

#[tokio::test]
async fn invalid_notify_regex_is_bad_request() {
    let server = TestServer::start().await;
    let mut conn = RawConn::connect(server.addr()).await;
    for payload in [
        json!({"53": "("}),
        json!({"53": "[a-"}),
        json!({"53": "a{2,1}"}),
        json!({"53": 5}),
        json!({}),
    ] {
        let reply = conn.call(cmd::NOTIFY_ON, payload.clone()).await;
        assert_eq!(
            reply.status,
            status::BAD_REQUEST,
            "NOTIFY_ON {payload}: {}",
            reply.describe()
        );
        reply.expect_error(status::BAD_REQUEST);
    }
    // The refused regexes were not registered.
    let registered = conn.get("system.notifys", json!({})).await;
    assert!(registered.is_empty(), "system.notifys: {registered:?}");
    still_usable(&mut conn).await;
}

#[tokio::test]
async fn unlock_of_a_lock_this_connection_does_not_hold_is_not_found() {
    let server = TestServer::start().await;
    let mut holder = RawConn::connect(server.addr()).await;
    let mut other = RawConn::connect(server.addr()).await;

    // A lock that never existed.
    other
        .call(cmd::UNLOCK, json!({"62": "00000000-0000-4000-8000-000000000000"}))
        .await
        .expect_error(status::NOT_FOUND);

    // A lock another connection holds: NOT_FOUND, and it stays held.
    let lock_id = holder.lock("held").await;
    other
        .call(cmd::UNLOCK, json!({"62": lock_id}))
        .await
        .expect_error(status::NOT_FOUND);
    let fail = other
        .call(cmd::POST, json!({"10": "held", "20": {"v": 1}, "63": 64}))
        .await;
    fail.expect_error(status::LOCKED);

    // The holder unlocks once; a second UNLOCK is NOT_FOUND.
    holder.unlock(&lock_id).await;
    holder
        .call(cmd::UNLOCK, json!({"62": lock_id}))
        .await
        .expect_error(status::NOT_FOUND);
    still_usable(&mut holder).await;
}

/// A failure reply carries the request's id too.
#[tokio::test]
async fn error_replies_carry_the_request_id() {
    let server = TestServer::start().await;
    let mut conn = RawConn::connect(server.addr()).await;
    conn.send_frame(&Frame::new(0x0101, cmd::GET, b"{bad".to_vec()))
        .await;
    let reply = conn.reply_to(0x0101).await;
    assert_eq!(reply.frame.id, 0x0101);
    reply.expect_error_message(status::BAD_REQUEST);
    conn.send(0xfffe, 99, None).await;
    conn.reply_to(0xfffe).await.expect_empty(status::NOT_FOUND);
}
