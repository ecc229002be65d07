//! Notify (spec section 3, "Notify"; section 6, system.notifys).

use std::time::Duration;

use canhazdb_core::frame::Frame;
use canhazdb_tests::proto::PUSH_ID;
use canhazdb_tests::{cmd, describe_frame, status, RawConn, ReadError, TestServer, QUIET};
use serde_json::{json, Value};
use tokio::time::{sleep, Instant};

/// Asserts that `frame` is exactly NOTIFY `{"20": "<path>"}` with id 2 and
/// returns the path.
#[track_caller]
fn notify_path(frame: &Frame) -> String {
    assert_eq!(
        frame.id,
        PUSH_ID,
        "NOTIFY must carry id 2: {}",
        describe_frame(frame)
    );
    assert_eq!(
        frame.command,
        cmd::NOTIFY,
        "expected NOTIFY (50): {}",
        describe_frame(frame)
    );
    let payload: Value = serde_json::from_slice(&frame.payload)
        .unwrap_or_else(|e| panic!("NOTIFY payload is not JSON ({e}): {}", describe_frame(frame)));
    let object = payload.as_object().expect("NOTIFY payload must be an object");
    assert_eq!(
        object.keys().collect::<Vec<_>>(),
        vec!["20"],
        "NOTIFY payload is exactly {{\"20\": path}}: {}",
        describe_frame(frame)
    );
    object["20"].as_str().expect("the path is a string").to_owned()
}

/// The next NOTIFY path, failing if none comes in time.
async fn next_notify(conn: &mut RawConn) -> String {
    match conn.pushed_within(Duration::from_secs(5)).await {
        Ok(frame) => notify_path(&frame),
        Err(error) => panic!("expected a NOTIFY frame: {error}"),
    }
}

/// Asserts that no pushed frame arrives for a while.
async fn no_notify(conn: &mut RawConn, why: &str) {
    match conn.pushed_within(QUIET).await {
        Err(ReadError::Timeout) => {}
        Ok(frame) => panic!("expected no NOTIFY ({why}), observed {}", describe_frame(&frame)),
        Err(error) => panic!("expected no NOTIFY ({why}), but: {error}"),
    }
}

/// `n` NOTIFY paths, sorted.
async fn notifies(conn: &mut RawConn, n: usize) -> Vec<String> {
    let mut paths = Vec::new();
    for _ in 0..n {
        paths.push(next_notify(conn).await);
    }
    paths.sort();
    paths
}

async fn notify_on(conn: &mut RawConn, path: &str) {
    let reply = conn
        .call(cmd::NOTIFY_ON, json!({"53": path}))
        .await
        .expect(status::OK);
    if let Some(payload) = &reply.payload {
        assert!(
            payload.get("100").is_none(),
            "NOTIFY_ON succeeded with an error: {}",
            reply.describe()
        );
    }
}

async fn notify_off(conn: &mut RawConn, path: &str) {
    conn.call(cmd::NOTIFY_OFF, json!({"53": path}))
        .await
        .expect(status::OK);
}

#[tokio::test]
async fn every_mutation_method_is_notified_once_with_id_2() {
    let server = TestServer::start().await;
    let mut listener = RawConn::connect(server.addr()).await;
    let mut writer = RawConn::connect(server.addr()).await;
    notify_on(&mut listener, "/nt/").await;

    writer.post("nt", json!({"id": "x1", "v": 1})).await;
    assert_eq!(next_notify(&mut listener).await, "POST:/nt/x1");
    writer
        .write_ids(cmd::PUT, "nt", json!({"20": {"v": 2}, "40": {"id": "x1"}}))
        .await;
    assert_eq!(next_notify(&mut listener).await, "PUT:/nt/x1");
    writer
        .write_ids(cmd::PATCH, "nt", json!({"20": {"w": 3}, "40": {"id": "x1"}}))
        .await;
    assert_eq!(next_notify(&mut listener).await, "PATCH:/nt/x1");
    writer
        .write_ids(cmd::DELETE, "nt", json!({"40": {"id": "x1"}}))
        .await;
    assert_eq!(next_notify(&mut listener).await, "DELETE:/nt/x1");
    no_notify(&mut listener, "four mutations, four notifies").await;

    // A POSTed document with a generated id is notified with that id.
    let created = writer.post("nt", json!({"v": 9})).await;
    let id = created["id"].as_str().unwrap();
    assert_eq!(next_notify(&mut listener).await, format!("POST:/nt/{id}"));
}

#[tokio::test]
async fn one_notify_per_changed_document() {
    let server = TestServer::start().await;
    let mut listener = RawConn::connect(server.addr()).await;
    let mut writer = RawConn::connect(server.addr()).await;
    for id in ["a", "b", "c"] {
        writer.post("many", json!({"id": id, "v": 1})).await;
    }
    writer.post("many", json!({"id": "d", "v": 2})).await;
    notify_on(&mut listener, "^[A-Z]+:/many/").await;

    writer
        .write_ids(cmd::PUT, "many", json!({"20": {"v": 5}, "40": {"v": 1}}))
        .await;
    assert_eq!(
        notifies(&mut listener, 3).await,
        ["PUT:/many/a", "PUT:/many/b", "PUT:/many/c"]
    );
    no_notify(&mut listener, "PUT changed three documents").await;

    writer
        .write_ids(cmd::PATCH, "many", json!({"20": {"w": 1}}))
        .await;
    assert_eq!(
        notifies(&mut listener, 4).await,
        ["PATCH:/many/a", "PATCH:/many/b", "PATCH:/many/c", "PATCH:/many/d"]
    );
    no_notify(&mut listener, "PATCH changed four documents").await;

    writer
        .write_ids(cmd::DELETE, "many", json!({"40": {"id": {"$in": ["a", "d"]}}}))
        .await;
    assert_eq!(
        notifies(&mut listener, 2).await,
        ["DELETE:/many/a", "DELETE:/many/d"]
    );
    no_notify(&mut listener, "DELETE removed two documents").await;

    // A write that matches nothing notifies nothing.
    writer
        .write_ids(cmd::DELETE, "many", json!({"40": {"id": "zzz"}}))
        .await;
    no_notify(&mut listener, "nothing changed").await;
}

#[tokio::test]
async fn the_writing_connection_is_notified_too() {
    let server = TestServer::start().await;
    let mut conn = RawConn::connect(server.addr()).await;
    notify_on(&mut conn, "self").await;
    let id = conn.fresh_id();
    conn.send(id, cmd::POST, Some(&json!({"10": "self", "20": {"id": "me"}})))
        .await;
    // The reply and the NOTIFY may come in either order.
    conn.reply_to(id).await.expect(status::CREATED);
    assert_eq!(next_notify(&mut conn).await, "POST:/self/me");
}

#[tokio::test]
async fn notify_off_stops_notifications() {
    let server = TestServer::start().await;
    let mut listener = RawConn::connect(server.addr()).await;
    let mut writer = RawConn::connect(server.addr()).await;
    notify_on(&mut listener, "off-test").await;
    writer.post("off-test", json!({"id": "1"})).await;
    assert_eq!(next_notify(&mut listener).await, "POST:/off-test/1");
    notify_off(&mut listener, "off-test").await;
    writer.post("off-test", json!({"id": "2"})).await;
    writer.write_ids(cmd::DELETE, "off-test", json!({})).await;
    no_notify(&mut listener, "after NOTIFY_OFF").await;
}

#[tokio::test]
async fn two_matching_patterns_on_one_connection_deliver_once() {
    let server = TestServer::start().await;
    let mut listener = RawConn::connect(server.addr()).await;
    let mut writer = RawConn::connect(server.addr()).await;
    notify_on(&mut listener, "twice").await;
    notify_on(&mut listener, "POST:").await;
    notify_on(&mut listener, ".*").await;
    writer.post("twice", json!({"id": "one"})).await;
    assert_eq!(next_notify(&mut listener).await, "POST:/twice/one");
    no_notify(&mut listener, "one mutation, however many patterns match").await;

    // Turning one pattern off keeps the others.
    notify_off(&mut listener, "twice").await;
    writer.post("twice", json!({"id": "two"})).await;
    assert_eq!(next_notify(&mut listener).await, "POST:/twice/two");
    no_notify(&mut listener, "still one NOTIFY per mutation").await;
}

#[tokio::test]
async fn patterns_are_unanchored_regex_searches() {
    let server = TestServer::start().await;
    let mut listener = RawConn::connect(server.addr()).await;
    let mut writer = RawConn::connect(server.addr()).await;
    notify_on(&mut listener, "^DELETE:/rx/").await;
    notify_on(&mut listener, "x[0-9]+$").await;
    writer.post("rx", json!({"id": "plain"})).await;
    writer.post("rx", json!({"id": "x42"})).await;
    assert_eq!(next_notify(&mut listener).await, "POST:/rx/x42");
    no_notify(&mut listener, "POST:/rx/plain matches neither pattern").await;
    writer
        .write_ids(cmd::DELETE, "rx", json!({"40": {"id": "plain"}}))
        .await;
    assert_eq!(next_notify(&mut listener).await, "DELETE:/rx/plain");
    // Another collection's paths do not match ^DELETE:/rx/.
    writer.post("other", json!({"id": "y"})).await;
    writer.write_ids(cmd::DELETE, "other", json!({})).await;
    no_notify(&mut listener, "other collection").await;
}

#[tokio::test]
async fn failed_writes_are_not_notified() {
    let server = TestServer::start().await;
    let mut listener = RawConn::connect(server.addr()).await;
    notify_on(&mut listener, "fw").await;
    let mut writer = RawConn::connect(server.addr()).await;
    writer.post("fw", json!({"id": "dup"})).await;
    assert_eq!(next_notify(&mut listener).await, "POST:/fw/dup");
    writer
        .call(cmd::POST, json!({"10": "fw", "20": {"id": "dup"}}))
        .await
        .expect_error(status::BAD_REQUEST);
    writer
        .call(cmd::DELETE, json!({"10": "fw", "40": {"v": {"$bogus": 1}}}))
        .await
        .expect_error(status::BAD_REQUEST);
    no_notify(&mut listener, "refused writes change nothing").await;
}

#[tokio::test]
async fn many_listeners_each_get_the_notify() {
    let server = TestServer::start().await;
    let mut listeners = Vec::new();
    for _ in 0..5 {
        let mut listener = RawConn::connect(server.addr()).await;
        notify_on(&mut listener, "fan").await;
        listeners.push(listener);
    }
    let mut bystander = RawConn::connect(server.addr()).await;
    notify_on(&mut bystander, "nothing-matches-this").await;
    let mut writer = RawConn::connect(server.addr()).await;
    writer.post("fan", json!({"id": "f"})).await;
    for listener in listeners.iter_mut() {
        assert_eq!(next_notify(listener).await, "POST:/fan/f");
    }
    no_notify(&mut bystander, "its pattern does not match").await;
}

/// Polls system.notifys until `done` holds (bounded).
async fn wait_for_notifys(conn: &mut RawConn, done: impl Fn(&[Value]) -> bool) -> Vec<Value> {
    let deadline = Instant::now() + Duration::from_secs(3);
    loop {
        let documents = conn.get("system.notifys", json!({})).await;
        if done(&documents) || Instant::now() >= deadline {
            return documents;
        }
        sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test]
async fn system_notifys_lists_registrations() {
    let server = TestServer::start().await;
    let mut observer = RawConn::connect(server.addr()).await;
    assert_eq!(
        observer.get("system.notifys", json!({})).await,
        Vec::<Value>::new()
    );

    let mut listener = RawConn::connect(server.addr()).await;
    notify_on(&mut listener, "abc.*").await;
    notify_on(&mut listener, "^POST:/x/").await;
    let mut paths: Vec<String> = observer
        .get("system.notifys", json!({}))
        .await
        .iter()
        .map(|d| {
            d["notifyPath"]
                .as_str()
                .unwrap_or_else(|| panic!("notifyPath: {d}"))
                .to_owned()
        })
        .collect();
    paths.sort();
    assert_eq!(paths, ["^POST:/x/", "abc.*"]);
    let queried = observer
        .get("system.notifys", json!({"40": {"notifyPath": "abc.*"}}))
        .await;
    assert_eq!(
        queried.len(),
        1,
        "system.notifys is queried like any collection: {queried:?}"
    );

    notify_off(&mut listener, "abc.*").await;
    let left = observer.get("system.notifys", json!({})).await;
    assert_eq!(left.len(), 1, "{left:?}");
    assert_eq!(left[0]["notifyPath"], json!("^POST:/x/"));

    // Registrations vanish when their connection closes.
    drop(listener);
    let left = wait_for_notifys(&mut observer, |documents| documents.is_empty()).await;
    assert_eq!(
        left,
        Vec::<Value>::new(),
        "registrations of a closed connection must vanish"
    );
}
