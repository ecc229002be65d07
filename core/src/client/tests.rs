use serde_json::json;

use super::*;
use crate::frame::FrameDecoder;
use crate::message::{CollectionId, ReadOptions};

fn get(collection: &str) -> Request {
    Request::Get {
        collection: CollectionId::new(collection).unwrap(),
        read: ReadOptions::default(),
    }
}

/// Decodes the frames the client wants to send.
fn sent_frames(client: &mut Client) -> Vec<Frame> {
    let mut frames = Vec::new();
    while let Some(bytes) = client.poll_transmit() {
        frames.push(FrameDecoder::default().decode_message(&bytes).unwrap());
    }
    frames
}

fn reply_bytes(id: u16, status: Status, reply: Reply) -> Bytes {
    Frame::new(id, status.as_u8(), reply.encode_payload()).to_bytes()
}

fn events(client: &mut Client) -> Vec<Event> {
    std::iter::from_fn(|| client.poll_event()).collect()
}

#[test]
fn a_request_becomes_a_frame_with_a_fresh_id() {
    let mut client = Client::default();
    let first = client.request(&get("tests")).unwrap();
    let second = client.request(&Request::Info).unwrap();
    assert_eq!((first, second), (3, 4));
    let frames = sent_frames(&mut client);
    assert_eq!(frames[0].id, 3);
    assert_eq!(frames[0].command, Command::Get.as_u8());
    assert_eq!(&frames[0].payload[..], br#"{"10":"tests"}"#);
    assert_eq!(frames[1].command, Command::Info.as_u8());
    assert_eq!(client.in_flight(), 2);
}

#[test]
fn replies_out_of_order_reach_their_requests() {
    let mut client = Client::default();
    let count_id = client
        .request(&Request::Count {
            collection: CollectionId::new("t").unwrap(),
            query: None,
        })
        .unwrap();
    let get_id = client.request(&get("t")).unwrap();
    let mut wire = BytesMut::new();
    wire.extend_from_slice(&reply_bytes(
        get_id,
        Status::Ok,
        Reply::with_data(Status::Ok, json!([{"id": "a"}])),
    ));
    wire.extend_from_slice(&reply_bytes(
        count_id,
        Status::Ok,
        Reply::with_data(Status::Ok, json!(7)),
    ));
    // Split the stream at an awkward place.
    client.receive(&wire[..5]);
    assert!(client.poll_event().is_none());
    client.receive(&wire[5..]);
    assert_eq!(
        events(&mut client),
        vec![
            Event::Reply {
                id: get_id,
                result: Ok(Response::Documents(vec![json!({"id": "a"})]))
            },
            Event::Reply {
                id: count_id,
                result: Ok(Response::Count(7))
            },
        ]
    );
    assert_eq!(client.in_flight(), 0);
}

#[test]
fn failures_carry_status_and_message() {
    let mut client = Client::default();
    let id = client.request(&get("t")).unwrap();
    client.receive(&reply_bytes(
        id,
        Status::BadRequest,
        Reply::error(Status::BadRequest, "unknown operator $x"),
    ));
    let [Event::Reply {
        result: Err(error), ..
    }] = &events(&mut client)[..]
    else {
        panic!()
    };
    assert_eq!(error.status_code(), Some(121));
    assert_eq!(error.to_string(), "STATUS_BAD_REQUEST: unknown operator $x");
}

#[test]
fn unhealthy_replies_have_no_payload() {
    let mut client = Client::default();
    let id = client.request(&get("t")).unwrap();
    client.receive(&Frame::empty(id, Status::ServerUnhealthy.as_u8()).to_bytes());
    let [Event::Reply {
        result: Err(error), ..
    }] = &events(&mut client)[..]
    else {
        panic!()
    };
    assert_eq!(error.to_string(), "STATUS_SERVER_UNHEALTHY");
}

#[test]
fn ready_and_notify_pushes() {
    let mut client = Client::default();
    let mut wire = BytesMut::new();
    Frame::empty(PUSH_ID, Command::Ready.as_u8()).encode(&mut wire);
    Frame::new(
        PUSH_ID,
        Command::Notify.as_u8(),
        &br#"{"20":"POST:/tests/1"}"#[..],
    )
    .encode(&mut wire);
    client.receive(&wire);
    assert!(client.is_ready());
    assert_eq!(
        events(&mut client),
        vec![
            Event::Ready,
            Event::Notify {
                path: "POST:/tests/1".into()
            }
        ]
    );
}

#[test]
fn websocket_messages_hold_one_frame() {
    let mut client = Client::default();
    let id = client.request(&Request::Lock { key: "t".into() }).unwrap();
    client.receive_message(&reply_bytes(id, Status::Ok, Reply::with_lock_id("L1")));
    assert_eq!(
        events(&mut client),
        vec![Event::Reply {
            id,
            result: Ok(Response::LockId("L1".into()))
        }]
    );
    client.receive_message(b"garbage");
    assert!(matches!(client.poll_event(), Some(Event::Fatal { .. })));
}

#[test]
fn disconnect_fails_every_pending_request_and_frees_ids() {
    let mut client = Client::default();
    let ids: Vec<_> = (0..3).map(|_| client.request(&get("t")).unwrap()).collect();
    client.disconnected();
    let failed: Vec<_> = events(&mut client)
        .into_iter()
        .map(|event| match event {
            Event::Reply {
                id,
                result: Err(ClientError::Disconnected),
            } => id,
            other => panic!("{other:?}"),
        })
        .collect();
    assert_eq!(failed, ids);
    assert_eq!(client.in_flight(), 0);
    assert!(client.poll_transmit().is_none());
}

#[test]
fn all_ids_in_flight_is_a_clear_error_and_ids_are_reused_after_reply() {
    let mut client = Client::default();
    for _ in 3..=u16::MAX {
        client.request(&Request::Info).unwrap();
    }
    assert_eq!(client.in_flight(), 65533);
    let error = client.request(&Request::Info).unwrap_err();
    assert_eq!(error, ClientError::TooManyInFlight);
    assert!(error.to_string().contains("65533"));
    client.receive(&reply_bytes(
        1000,
        Status::Ok,
        Reply::with_data(Status::Ok, json!({})),
    ));
    assert_eq!(client.request(&Request::Info).unwrap(), 1000);
}

#[test]
fn ids_wrap_around_and_never_use_reserved_values() {
    let mut ids = IdAllocator::default();
    for expected in 3..=u16::MAX {
        let id = ids.allocate().unwrap();
        assert_eq!(id, expected);
        ids.release(id);
    }
    assert_eq!(ids.allocate(), Some(3));
    assert_eq!(ids.in_use_count(), 1);
}

#[test]
fn unsolicited_replies_are_ignored() {
    let mut client = Client::default();
    client.receive(&reply_bytes(77, Status::Ok, Reply::new(Status::Ok)));
    assert!(client.poll_event().is_none());
}

#[test]
fn a_reply_of_the_wrong_shape_is_a_protocol_error() {
    let mut client = Client::default();
    let id = client.request(&get("t")).unwrap();
    client.receive(&reply_bytes(
        id,
        Status::Ok,
        Reply::with_data(Status::Ok, json!(3)),
    ));
    let [Event::Reply {
        result: Err(ClientError::Protocol(message)),
        ..
    }] = &events(&mut client)[..]
    else {
        panic!()
    };
    assert!(message.contains("GET"), "{message}");
}

#[test]
fn subscriptions_dispatch_like_the_v8_client() {
    let mut subscriptions = Subscriptions::default();
    assert_eq!(subscriptions.add("POST:/tests/", 1), Ok(true));
    assert_eq!(subscriptions.add("POST:/tests/", 2), Ok(false));
    assert_eq!(subscriptions.add(".*", 3), Ok(true));
    assert!(subscriptions.add("(", 4).is_err());
    assert_eq!(
        subscriptions.dispatch("POST:/tests/1"),
        vec![("POST:/tests/", 1), ("POST:/tests/", 2), (".*", 3)]
    );
    assert_eq!(subscriptions.dispatch("DELETE:/tests/1"), vec![(".*", 3)]);
    assert!(!subscriptions.remove("POST:/tests/", Some(&1)));
    assert!(subscriptions.remove("POST:/tests/", Some(&2)));
    assert!(subscriptions.remove(".*", None));
    assert!(subscriptions.is_empty());
}

#[test]
fn raw_requests_get_their_reply_unchecked() {
    let mut client = Client::default();
    let id = client
        .request_raw(80, Bytes::from_static(b"{\"2\":true}"))
        .unwrap();
    let frames = sent_frames(&mut client);
    assert_eq!(
        (frames[0].command, &frames[0].payload[..]),
        (80, &b"{\"2\":true}"[..])
    );
    client.receive(&reply_bytes(
        id,
        Status::ServerError,
        Reply::error(Status::ServerError, "boom"),
    ));
    let [Event::Reply {
        result: Ok(Response::Raw { code, reply }),
        ..
    }] = &events(&mut client)[..]
    else {
        panic!()
    };
    assert_eq!(*code, 124);
    assert_eq!(reply.error.as_deref(), Some("boom"));
}
