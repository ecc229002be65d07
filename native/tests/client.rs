//! The async client against an in-process fake server: a TcpListener task
//! in each test that decodes frames with the core's FrameDecoder and answers
//! what the test scripts.

use std::time::Duration;

use bytes::BytesMut;
use canhazdb::client::{Client, Error, GetOptions, LockStrategy, Status, WriteOptions};
use canhazdb_core::frame::{Frame, FrameDecoder};
use canhazdb_core::message::Reply;
use canhazdb_core::protocol::{Command, PUSH_ID};
use serde_json::{json, Value};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// Bounds every wait, so a broken client fails a test instead of hanging it.
const PATIENCE: Duration = Duration::from_secs(5);

/// The server side of one accepted connection.
struct FakeConnection {
    stream: TcpStream,
    decoder: FrameDecoder,
    inbox: BytesMut,
}

impl FakeConnection {
    /// The next frame the client sent, or `None` at EOF.
    async fn next_frame(&mut self) -> Option<Frame> {
        loop {
            if let Some(frame) = self
                .decoder
                .decode(&mut self.inbox)
                .expect("client sent a bad frame")
            {
                return Some(frame);
            }
            let read = tokio::time::timeout(PATIENCE, self.stream.read_buf(&mut self.inbox))
                .await
                .expect("timed out waiting for the client")
                .expect("read failed");
            if read == 0 {
                return None;
            }
        }
    }

    /// The next frame, which must exist, with its payload as JSON.
    async fn expect_request(&mut self) -> (Frame, Value) {
        let frame = self.next_frame().await.expect("client closed the connection");
        let payload = if frame.payload.is_empty() {
            json!({})
        } else {
            serde_json::from_slice(&frame.payload).expect("payload is JSON")
        };
        (frame, payload)
    }

    async fn send(&mut self, frame: Frame) {
        self.stream
            .write_all(&frame.to_bytes())
            .await
            .expect("write failed");
    }

    async fn reply(&mut self, id: u16, reply: Reply) {
        let status = reply.status.expect("scripted replies have a status");
        self.send(Frame::new(id, status.as_u8(), reply.encode_payload()))
            .await;
    }

    async fn push_ready(&mut self) {
        self.send(Frame::empty(PUSH_ID, Command::Ready.as_u8())).await;
    }

    async fn push_notify(&mut self, path: &str) {
        let payload = json!({"20": path}).to_string();
        self.send(Frame::new(PUSH_ID, Command::Notify.as_u8(), payload))
            .await;
    }

    /// Waits for the client to close the connection, failing on any frame.
    async fn expect_eof(&mut self) {
        if let Some(frame) = self.next_frame().await {
            panic!("expected EOF, got {frame:?}");
        }
    }
}

/// A client connected to a fresh fake server, and the server's end.
async fn connected() -> (Client, FakeConnection) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    let (client, accepted) = tokio::join!(Client::connect(address), listener.accept());
    let (stream, _) = accepted.unwrap();
    let connection = FakeConnection {
        stream,
        decoder: FrameDecoder::default(),
        inbox: BytesMut::new(),
    };
    (client.unwrap(), connection)
}

async fn within<T>(future: impl std::future::Future<Output = T>) -> T {
    tokio::time::timeout(PATIENCE, future).await.expect("timed out")
}

#[tokio::test]
async fn replies_out_of_order_reach_their_callers() {
    let (client, mut server) = connected().await;
    let script = async {
        let mut frames = Vec::new();
        for _ in 0..3 {
            frames.push(server.expect_request().await);
        }
        // Answer in reverse order, each with the collection it was asked about.
        for (frame, payload) in frames.into_iter().rev() {
            let collection = payload["10"].as_str().unwrap().to_owned();
            assert_eq!(frame.command, Command::Count.as_u8());
            let count = collection.trim_start_matches('c').parse::<u64>().unwrap();
            server
                .reply(frame.id, Reply::with_data(Status::Ok, json!(count)))
                .await;
        }
    };
    let calls = async {
        tokio::join!(
            client.count("c1", None),
            client.count("c2", None),
            client.count("c3", None)
        )
    };
    let ((), (one, two, three)) = within(async { tokio::join!(script, calls) }).await;
    assert_eq!((one.unwrap(), two.unwrap(), three.unwrap()), (1, 2, 3));
}

#[tokio::test]
async fn many_pipelined_requests_from_many_tasks() {
    let (client, mut server) = connected().await;
    const TASKS: u64 = 16;
    const PER_TASK: u64 = 200;
    let server_task = tokio::spawn(async move {
        let mut answered = 0;
        while answered < TASKS * PER_TASK {
            let (frame, payload) = server.expect_request().await;
            // Echo the query's number back as the count.
            let n = payload["40"]["n"].as_u64().unwrap();
            server
                .reply(frame.id, Reply::with_data(Status::Ok, json!(n)))
                .await;
            answered += 1;
        }
    });
    // Every request is its own task; all of them are in flight at once.
    let mut callers = tokio::task::JoinSet::new();
    for task in 0..TASKS {
        for i in 0..PER_TASK {
            let n = task * 1000 + i;
            let client = client.clone();
            callers.spawn(async move { (n, client.count("t", Some(json!({"n": n}))).await) });
        }
    }
    within(async {
        while let Some(joined) = callers.join_next().await {
            let (n, result) = joined.unwrap();
            assert_eq!(result.unwrap(), n);
        }
        server_task.await.unwrap();
    })
    .await;
}

#[tokio::test]
async fn ready_is_awaited_and_remembered() {
    let (client, mut server) = connected().await;
    assert!(!client.is_ready());
    let waiting = client.wait_ready();
    let ((), ready) = within(async { tokio::join!(server.push_ready(), waiting) }).await;
    ready.unwrap();
    assert!(client.is_ready());
    within(client.wait_ready()).await.unwrap();
}

#[tokio::test]
async fn connect_ready_waits_for_ready_and_times_out_without_it() {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    let server = tokio::spawn(async move {
        // First connection: READY right away. Second: never.
        let (mut first, _) = listener.accept().await.unwrap();
        first
            .write_all(&Frame::empty(PUSH_ID, Command::Ready.as_u8()).to_bytes())
            .await
            .unwrap();
        let (second, _) = listener.accept().await.unwrap();
        (first, second)
    });
    let client = within(Client::connect_ready(address, PATIENCE)).await.unwrap();
    assert!(client.is_ready());
    let error = Client::connect_ready(address, Duration::from_millis(200))
        .await
        .unwrap_err();
    assert!(matches!(error, Error::Timeout), "{error:?}");
    drop(server.await.unwrap());
}

#[tokio::test]
async fn failures_carry_the_status_and_message() {
    let (client, mut server) = connected().await;
    let script = async {
        let (frame, payload) = server.expect_request().await;
        assert_eq!(payload, json!({"10": "t", "40": {"a": {"$bogus": 1}}}));
        server
            .reply(
                frame.id,
                Reply::error(Status::BadRequest, "unknown operator $bogus"),
            )
            .await;
    };
    let call = client.get("t", GetOptions::query(json!({"a": {"$bogus": 1}})));
    let ((), result) = within(async { tokio::join!(script, call) }).await;
    let error = result.unwrap_err();
    assert_eq!(error.status_code(), Some(121));
    assert_eq!(error.status(), Some(Status::BadRequest));
    assert!(matches!(&error, Error::Server { message: Some(m), .. } if m == "unknown operator $bogus"));
    assert_eq!(error.to_string(), "STATUS_BAD_REQUEST: unknown operator $bogus");
}

#[tokio::test]
async fn invalid_arguments_fail_without_a_round_trip() {
    let (client, mut server) = connected().await;
    let bad_collection = client.post("no spaces", json!({}), WriteOptions::default()).await;
    assert!(matches!(bad_collection, Err(Error::InvalidArgument(_))));
    assert_eq!(bad_collection.unwrap_err().status_code(), Some(121));
    let not_an_object = client.post("t", json!([1, 2]), WriteOptions::default()).await;
    assert!(matches!(not_an_object, Err(Error::InvalidArgument(_))));
    let bad_query = client.count("t", Some(json!("x"))).await;
    assert!(matches!(bad_query, Err(Error::InvalidArgument(_))));
    let bad_regex = client.on("(unclosed").await;
    assert!(matches!(bad_regex, Err(Error::InvalidArgument(_))));

    // None of them reached the server: the first frame it sees is this one.
    let script = async {
        let (frame, _) = server.expect_request().await;
        assert_eq!(frame.command, Command::Info.as_u8());
        server
            .reply(frame.id, Reply::with_data(Status::Ok, json!({"nodeName": "n1"})))
            .await;
    };
    let ((), info) = within(async { tokio::join!(script, client.info()) }).await;
    assert_eq!(info.unwrap(), json!({"nodeName": "n1"}));
}

#[tokio::test]
async fn every_command_sends_its_payload_and_reads_its_reply() {
    let (client, mut server) = connected().await;
    let script = async {
        let expectations: Vec<(Command, Value, Reply)> = vec![
            (
                Command::Post,
                json!({"10": "t", "20": {"a": 1}, "62": "L1", "63": 64}),
                Reply::with_data(Status::Created, json!({"id": "x", "a": 1})),
            ),
            (
                Command::Get,
                json!({"10": "t", "40": {"a": 1}, "42": 1}),
                Reply::with_data(Status::Ok, json!([{"id": "x", "a": 1}])),
            ),
            (
                Command::Put,
                json!({"10": "t", "20": {"b": 2}, "40": {"id": "x"}}),
                Reply::with_data(Status::Ok, json!(["x"])),
            ),
            (
                Command::Patch,
                json!({"10": "t", "20": {"c": 3}}),
                Reply::with_data(Status::Ok, json!(["x", "y"])),
            ),
            (
                Command::Delete,
                json!({"10": "t"}),
                Reply::with_data(Status::Ok, json!([])),
            ),
            (Command::Lock, json!({"66": "t"}), Reply::with_lock_id("L2")),
            (Command::Unlock, json!({"62": "L2"}), Reply::with_lock_id("L2")),
            (
                Command::Info,
                json!({"3": true}),
                Reply::with_data(Status::Ok, json!({"nodes": []})),
            ),
        ];
        for (command, payload, reply) in expectations {
            let (frame, sent) = server.expect_request().await;
            assert_eq!(Command::from_u8(frame.command), Some(command));
            assert_eq!(sent, payload, "{command}");
            server.reply(frame.id, reply).await;
        }
    };
    let calls = async {
        let locked = WriteOptions {
            lock_id: Some("L1".into()),
            lock_strategy: Some(LockStrategy::Fail),
            ..WriteOptions::default()
        };
        let posted = client.post("t", json!({"a": 1}), locked).await.unwrap();
        assert_eq!(posted, json!({"id": "x", "a": 1}));
        let found = client
            .get_one("t", GetOptions::query(json!({"a": 1})))
            .await
            .unwrap();
        assert_eq!(found, Some(json!({"id": "x", "a": 1})));
        let put = client
            .put("t", json!({"b": 2}), WriteOptions::query(json!({"id": "x"})))
            .await;
        assert_eq!(put.unwrap(), vec!["x"]);
        let patched = client.patch("t", json!({"c": 3}), WriteOptions::default()).await;
        assert_eq!(patched.unwrap(), vec!["x", "y"]);
        assert!(client
            .delete("t", WriteOptions::default())
            .await
            .unwrap()
            .is_empty());
        assert_eq!(client.lock("t").await.unwrap(), "L2");
        assert_eq!(client.unlock("L2").await.unwrap(), "L2");
        assert_eq!(client.info().await.unwrap(), json!({"nodes": []}));
    };
    within(async { tokio::join!(script, calls) }).await;
}

#[tokio::test]
async fn notify_pushes_reach_matching_subscriptions() {
    let (client, mut server) = connected().await;
    // First subscription of a pattern: NOTIFY_ON, answered by the server.
    let script = async {
        let (frame, payload) = server.expect_request().await;
        assert_eq!(frame.command, Command::NotifyOn.as_u8());
        assert_eq!(payload, json!({"53": "^POST:/tests/"}));
        server.reply(frame.id, Reply::new(Status::Ok)).await;
    };
    let ((), first) = within(async { tokio::join!(script, client.on("^POST:/tests/")) }).await;
    let mut first = first.unwrap();
    assert_eq!(first.pattern(), "^POST:/tests/");
    // Second subscription of the same pattern: nothing is sent.
    let mut second = within(client.on("^POST:/tests/")).await.unwrap();

    server.push_notify("DELETE:/tests/skipped").await;
    server.push_notify("POST:/tests/abc").await;
    for subscription in [&mut first, &mut second] {
        let notification = within(subscription.recv()).await.unwrap();
        assert_eq!(notification.path, "POST:/tests/abc");
        assert_eq!(notification.method, "POST");
        assert_eq!(notification.collection_id, "tests");
        assert_eq!(notification.document_id, "abc");
        assert_eq!(notification.pattern, "^POST:/tests/");
        assert!(
            subscription.try_recv().is_none(),
            "the DELETE path does not match"
        );
    }

    // Dropping one of two sends nothing; removing the last sends NOTIFY_OFF.
    drop(second);
    let script = async {
        let (frame, payload) = server.expect_request().await;
        assert_eq!(frame.command, Command::NotifyOff.as_u8());
        assert_eq!(payload, json!({"53": "^POST:/tests/"}));
        server.reply(frame.id, Reply::new(Status::Ok)).await;
    };
    let ((), off) = within(async { tokio::join!(script, client.off(first)) }).await;
    off.unwrap();
}

#[tokio::test]
async fn dropping_the_last_subscription_sends_notify_off() {
    let (client, mut server) = connected().await;
    let script = async {
        let (frame, _) = server.expect_request().await;
        server.reply(frame.id, Reply::new(Status::Ok)).await;
    };
    let ((), subscription) = within(async { tokio::join!(script, client.on("x")) }).await;
    drop(subscription.unwrap());
    let (frame, payload) = server.expect_request().await;
    assert_eq!(frame.command, Command::NotifyOff.as_u8());
    assert_eq!(payload, json!({"53": "x"}));
}

#[tokio::test]
async fn a_refused_pattern_fails_on_and_can_be_retried() {
    let (client, mut server) = connected().await;
    let script = async {
        let (frame, _) = server.expect_request().await;
        server
            .reply(frame.id, Reply::error(Status::BadRequest, "pattern too large"))
            .await;
        // The retry must send NOTIFY_ON again: the refusal left nothing registered.
        let (frame, payload) = server.expect_request().await;
        assert_eq!(frame.command, Command::NotifyOn.as_u8());
        assert_eq!(payload, json!({"53": "p"}));
        server.reply(frame.id, Reply::new(Status::Ok)).await;
    };
    let calls = async {
        let refused = client.on("p").await.unwrap_err();
        assert_eq!(refused.status(), Some(Status::BadRequest));
        client.on("p").await.unwrap()
    };
    let ((), subscription) = within(async { tokio::join!(script, calls) }).await;
    assert_eq!(subscription.pattern(), "p");
}

#[tokio::test]
async fn a_dropped_connection_fails_pending_requests() {
    let (client, mut server) = connected().await;
    let script = async {
        server.expect_request().await;
        server.expect_request().await;
        drop(server);
    };
    let calls = async { tokio::join!(client.count("a", None), client.get("b", GetOptions::default())) };
    let ((), (count, get)) = within(async { tokio::join!(script, calls) }).await;
    assert!(matches!(count, Err(Error::Closed)), "{count:?}");
    assert!(matches!(get, Err(Error::Closed)), "{get:?}");
    assert!(client.is_closed());
    assert!(matches!(client.info().await, Err(Error::Closed)));
}

#[tokio::test]
async fn subscriptions_end_when_the_connection_does() {
    let (client, mut server) = connected().await;
    let script = async {
        let (frame, _) = server.expect_request().await;
        server.reply(frame.id, Reply::new(Status::Ok)).await;
        server.push_notify("PUT:/t/1").await;
        server
    };
    let (server, subscription) = within(async { tokio::join!(script, client.on(".*")) }).await;
    let mut subscription = subscription.unwrap();
    drop(server);
    // What arrived before the close is still delivered, then the end.
    assert_eq!(within(subscription.recv()).await.unwrap().path, "PUT:/t/1");
    assert!(within(subscription.recv()).await.is_none());
}

#[tokio::test]
async fn close_fails_pending_requests_and_closes_the_socket() {
    let (client, mut server) = connected().await;
    let pending = {
        let client = client.clone();
        tokio::spawn(async move { client.lock("t").await })
    };
    server.expect_request().await;
    within(client.close()).await;
    assert!(client.is_closed());
    assert!(matches!(within(pending).await.unwrap(), Err(Error::Closed)));
    server.expect_eof().await;
    within(client.close()).await; // Closing twice is fine.
}

#[tokio::test]
async fn dropping_every_handle_closes_the_socket() {
    let (client, mut server) = connected().await;
    let other = client.clone();
    drop(client);
    drop(other);
    within(server.expect_eof()).await;
}

#[tokio::test]
async fn a_garbled_push_fails_the_connection_with_a_protocol_error() {
    let (client, mut server) = connected().await;
    let script = async {
        server.expect_request().await;
        // A NOTIFY whose DATA is not a path string breaks the protocol.
        server
            .send(Frame::new(PUSH_ID, Command::Notify.as_u8(), &b"{\"20\":5}"[..]))
            .await;
        server
    };
    let (_server, result) = within(async { tokio::join!(script, client.count("t", None)) }).await;
    assert!(matches!(result, Err(Error::Protocol(_))), "{result:?}");
    assert!(client.is_closed());
}

#[tokio::test]
async fn a_reply_of_the_wrong_shape_is_a_protocol_error() {
    let (client, mut server) = connected().await;
    let script = async {
        let (frame, _) = server.expect_request().await;
        server
            .reply(frame.id, Reply::with_data(Status::Ok, json!("not a number")))
            .await;
    };
    let ((), result) = within(async { tokio::join!(script, client.count("t", None)) }).await;
    assert!(matches!(result, Err(Error::Protocol(_))), "{result:?}");
    assert!(!client.is_closed(), "one bad reply does not end the connection");
}

#[tokio::test]
async fn a_cancelled_subscribe_is_unregistered_once_the_server_confirms() {
    let (client, mut server) = connected().await;
    // Give up on `on` before the server answers its NOTIFY_ON.
    let cancelled = tokio::time::timeout(Duration::from_millis(50), client.on("gone")).await;
    assert!(cancelled.is_err(), "the fake server has not answered yet");
    let (frame, _) = server.expect_request().await;
    assert_eq!(frame.command, Command::NotifyOn.as_u8());
    server.reply(frame.id, Reply::new(Status::Ok)).await;
    // Nobody holds the subscription, so the client takes the pattern back.
    let (frame, payload) = server.expect_request().await;
    assert_eq!(frame.command, Command::NotifyOff.as_u8());
    assert_eq!(payload, json!({"53": "gone"}));
}

#[tokio::test]
async fn subscribers_of_a_pattern_being_registered_wait_for_the_server() {
    let (client, mut server) = connected().await;
    let (first, second) = (client.clone(), client.clone());
    let first = tokio::spawn(async move { first.on("p").await });
    let (frame, _) = server.expect_request().await;
    let second = tokio::spawn(async move { second.on("p").await });
    tokio::time::sleep(Duration::from_millis(50)).await;
    assert!(
        !second.is_finished(),
        "confirmed before the server accepted the pattern"
    );
    server.reply(frame.id, Reply::new(Status::Ok)).await;
    assert_eq!(within(first).await.unwrap().unwrap().pattern(), "p");
    assert_eq!(within(second).await.unwrap().unwrap().pattern(), "p");
}

#[test]
fn handles_can_be_shared_between_threads() {
    fn assert_send_sync<T: Send + Sync + Clone>() {}
    assert_send_sync::<Client>();
    fn assert_send<T: Send>() {}
    assert_send::<canhazdb::client::Subscription>();
    assert_send::<Error>();
}
