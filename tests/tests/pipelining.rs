//! Many requests in flight on one connection, answered by id, possibly out
//! of order (spec section 1: "A reply carries the id of its request").

use std::collections::HashMap;
use std::time::Duration;

use bytes::BytesMut;
use canhazdb_core::frame::Frame;
use canhazdb_tests::raw::lock_id_of;
use canhazdb_tests::{cmd, status, RawConn, Reply, TestServer, QUIET, READ_TIMEOUT};
use serde_json::json;

fn frame(id: u16, command: u8, payload: serde_json::Value) -> Frame {
    Frame::new(id, command, serde_json::to_vec(&payload).unwrap())
}

#[tokio::test]
async fn two_hundred_posts_in_one_write_are_all_answered_by_id() {
    let server = TestServer::start().await;
    let mut conn = RawConn::connect(server.addr()).await;
    let mut wire = BytesMut::new();
    for i in 0..200u16 {
        let id = 3 + i;
        frame(
            id,
            cmd::POST,
            json!({"10": "pipe", "20": {"id": format!("doc-{i}"), "i": i}}),
        )
        .encode(&mut wire);
    }
    conn.send_raw(&wire).await;
    let mut seen = HashMap::new();
    while seen.len() < 200 {
        let frame = conn
            .next_frame(READ_TIMEOUT)
            .await
            .unwrap_or_else(|e| panic!("after {} replies: {e}", seen.len()));
        let reply = Reply::from_frame(frame);
        let id = reply.frame.id;
        assert!((3..203).contains(&id), "unexpected reply {}", reply.describe());
        let reply = reply.expect(status::CREATED);
        let i = id - 3;
        assert_eq!(
            reply.data(),
            &json!({"id": format!("doc-{i}"), "i": i}),
            "reply to id {id}"
        );
        assert!(seen.insert(id, ()).is_none(), "two replies to id {id}");
    }
    assert_eq!(conn.count("pipe", json!({})).await, 200);
}

#[tokio::test]
async fn mixed_commands_in_one_write_each_get_exactly_one_reply() {
    let server = TestServer::start().await;
    let mut conn = RawConn::connect(server.addr()).await;
    conn.post("mixed", json!({"id": "x", "v": 1})).await;
    let requests = [
        (
            10u16,
            cmd::GET,
            json!({"10": "mixed", "40": {"id": "x"}}),
            status::OK,
        ),
        (
            11,
            cmd::COUNT,
            json!({"10": "mixed", "40": {"id": "x"}}),
            status::OK,
        ),
        (
            12,
            cmd::POST,
            json!({"10": "mixed", "20": {"id": "y"}}),
            status::CREATED,
        ),
        (13, cmd::INFO, json!({"3": true}), status::OK),
        (14, 99, json!({}), status::NOT_FOUND),
        (15, cmd::GET, json!({"10": "bad/name"}), status::BAD_REQUEST),
        (
            16,
            cmd::PATCH,
            json!({"10": "mixed", "20": {"w": 1}, "40": {"id": "x"}}),
            status::OK,
        ),
        (17, cmd::LOCK, json!({"66": "mixed-key"}), status::OK),
    ];
    let mut wire = BytesMut::new();
    for (id, command, payload, _) in &requests {
        frame(*id, *command, payload.clone()).encode(&mut wire);
    }
    conn.send_raw(&wire).await;
    for (id, _, _, want) in &requests {
        conn.reply_to(*id).await.expect(*want);
    }
    // No extra replies.
    if let Ok(extra) = conn.next_frame(QUIET).await {
        panic!(
            "unexpected extra frame {}",
            canhazdb_tests::describe_frame(&extra)
        );
    }
    assert_eq!(
        conn.get("mixed", json!({"40": {"id": "x"}})).await,
        vec![json!({"id": "x", "v": 1, "w": 1})]
    );
}

/// A LOCK that waits must not hold up a GET sent after it on the same
/// connection: the GET is answered first, the LOCK once it is granted.
#[tokio::test]
async fn a_waiting_lock_does_not_block_a_later_get_on_the_same_connection() {
    let server = TestServer::start().await;
    let mut holder = RawConn::connect(server.addr()).await;
    let mut waiter = RawConn::connect(server.addr()).await;
    let held = holder.lock("pl").await;

    let mut wire = BytesMut::new();
    frame(10, cmd::LOCK, json!({"66": "pl"})).encode(&mut wire);
    frame(11, cmd::GET, json!({"10": "pl"})).encode(&mut wire);
    frame(12, cmd::COUNT, json!({"10": "pl"})).encode(&mut wire);
    waiter.send_raw(&wire).await;

    let get = waiter.reply_to(11).await.expect(status::OK);
    assert_eq!(get.payload, Some(json!({"20": []})), "{}", get.describe());
    waiter.reply_to(12).await.expect(status::OK);
    waiter
        .assert_no_reply(10, QUIET, "the lock is held by another connection")
        .await;

    holder.unlock(&held).await;
    let granted = waiter.reply_to(10).await.expect(status::OK);
    let granted_id = lock_id_of(&granted);
    assert_ne!(granted_id, held, "a new lock gets a new id");
    waiter.unlock(&granted_id).await;
}

/// Likewise a write waiting for a lock does not block later reads.
#[tokio::test]
async fn a_waiting_write_does_not_block_later_reads_on_the_same_connection() {
    let server = TestServer::start().await;
    let mut holder = RawConn::connect(server.addr()).await;
    let mut writer = RawConn::connect(server.addr()).await;
    writer.post("pw", json!({"id": "a", "v": 1})).await;
    let held = holder.lock("pw").await;

    let mut wire = BytesMut::new();
    frame(20, cmd::PUT, json!({"10": "pw", "20": {"v": 2}})).encode(&mut wire);
    frame(21, cmd::GET, json!({"10": "pw"})).encode(&mut wire);
    writer.send_raw(&wire).await;
    let get = writer.reply_to(21).await.expect(status::OK);
    assert_eq!(
        get.payload,
        Some(json!({"20": [{"id": "a", "v": 1}]})),
        "{}",
        get.describe()
    );
    writer
        .assert_no_reply(20, QUIET, "the collection is locked")
        .await;

    holder.unlock(&held).await;
    let put = writer.reply_to(20).await.expect(status::OK);
    assert_eq!(put.payload, Some(json!({"20": ["a"]})), "{}", put.describe());
}

/// Frames split at every possible boundary, and several per write.
#[tokio::test]
async fn frames_split_across_writes_are_reassembled() {
    let server = TestServer::start().await;
    let mut conn = RawConn::connect(server.addr()).await;
    let mut wire = BytesMut::new();
    frame(0x0101, cmd::POST, json!({"10": "split", "20": {"id": "s1"}})).encode(&mut wire);
    frame(0x0201, cmd::POST, json!({"10": "split", "20": {"id": "s2"}})).encode(&mut wire);
    frame(0x0301, cmd::COUNT, json!({"10": "split"})).encode(&mut wire);
    // Byte by byte for the first frame, then odd-sized chunks.
    for chunk in wire.chunks(1).take(10) {
        conn.send_raw(chunk).await;
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    for chunk in wire[10..].chunks(7) {
        conn.send_raw(chunk).await;
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    conn.reply_to(0x0101).await.expect(status::CREATED);
    conn.reply_to(0x0201).await.expect(status::CREATED);
    conn.reply_to(0x0301).await.expect(status::OK);
    assert_eq!(conn.count("split", json!({})).await, 2);
}

/// Many connections pipelining at once.
#[tokio::test]
async fn concurrent_connections_pipelining() {
    let server = TestServer::start().await;
    let addr = server.addr();
    let mut tasks = Vec::new();
    for c in 0..8u16 {
        tasks.push(tokio::spawn(async move {
            let mut conn = RawConn::connect(addr).await;
            let mut wire = BytesMut::new();
            for i in 0..50u16 {
                frame(3 + i, cmd::POST, json!({"10": "conc", "20": {"c": c, "i": i}})).encode(&mut wire);
            }
            conn.send_raw(&wire).await;
            for i in 0..50u16 {
                conn.reply_to(3 + i).await.expect(status::CREATED);
            }
        }));
    }
    for task in tasks {
        task.await.expect("connection task");
    }
    let mut conn = RawConn::connect(addr).await;
    assert_eq!(conn.count("conc", json!({})).await, 400);
}
