//! `GET /changes?path=REGEX`: the notify feed as Server-Sent Events. The
//! stream is a connection of the node's that sent NOTIFY_ON with the regex,
//! so it gets what a binary-protocol subscriber gets: one `change` event per
//! mutated document (`POST:/tests/1f0…`), wherever in the cluster it
//! changed, and the registration (system.notifys) goes when the stream
//! does.
//!
//! The events wait in the connection's bounded push queue; a consumer too
//! slow to keep it from filling up loses its stream, as a TCP connection
//! that does not read its pushes is closed, rather than miss events
//! silently or make the node buffer without bound.

use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::{Query, State};
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use bytes::Bytes;
use canhazdb_core::frame::FrameDecoder;
use canhazdb_core::message::Reply;
use canhazdb_core::protocol::{Command, Key, Status};
use futures_util::stream::{self, Stream};
use serde::Deserialize;
use serde_json::Value;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use super::call::{self, Payload};
use super::errors::ApiError;
use super::Http;
use crate::node::connection::Connection;
use crate::node::Node;

/// Events a stream may have waiting before it is closed as too slow.
pub const CHANGE_QUEUE_EVENTS: usize = 1024;

/// How often an idle stream gets a comment line, so proxies keep it open
/// and a vanished client is noticed.
pub const KEEP_ALIVE: Duration = Duration::from_secs(5);

pub fn routes() -> Router<Arc<Http>> {
    Router::new().route("/changes", get(changes))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct PathParam {
    path: Option<String>,
}

/// The feed's connection: closed when the stream is dropped (the client
/// went away, the stream ended).
struct Subscription {
    node: Arc<Node>,
    connection: Option<Arc<Connection>>,
}

impl Drop for Subscription {
    fn drop(&mut self) {
        if let Some(connection) = self.connection.take() {
            call::close(&self.node, connection);
        }
    }
}

async fn changes(
    State(http): State<Arc<Http>>,
    Query(params): Query<PathParam>,
) -> Result<Response, ApiError> {
    let pattern = params.path.ok_or_else(|| {
        ApiError::bad_request("the path parameter (a regex over METHOD:/collection/id) is required")
    })?;
    let node = http.node.clone();
    let (connection, pushes) = call::connection(&node, CHANGE_QUEUE_EVENTS);
    let subscription = Subscription {
        node: node.clone(),
        connection: Some(connection.clone()),
    };
    let mut payload = Payload::new();
    payload.insert(Key::NotifyPath.as_str().to_owned(), Value::String(pattern));
    // A bad regex or an unhealthy node: answered here, and the subscription
    // closes with this handler.
    call::run(&node, connection.clone(), Command::NotifyOn, payload).await?;
    let closed = connection.outlet.close.clone();
    let events = events(pushes, closed, node.max_frame_bytes, subscription);
    Ok(Sse::new(events)
        .keep_alive(KeepAlive::new().interval(KEEP_ALIVE))
        .into_response())
}

/// One `change` event per pushed NOTIFY frame, until the connection is
/// closed (too slow a consumer, the node's shutdown). `subscription` is
/// dropped when the stream ends or is dropped.
fn events<Guard: Send + 'static>(
    pushes: mpsc::Receiver<Bytes>,
    closed: CancellationToken,
    max_frame_bytes: usize,
    subscription: Guard,
) -> impl Stream<Item = Result<Event, Infallible>> {
    let decoder = FrameDecoder::new(max_frame_bytes);
    stream::unfold((pushes, subscription), move |(mut pushes, subscription)| {
        let closed = closed.clone();
        let decoder = decoder.clone();
        async move {
            loop {
                let frame = tokio::select! {
                    // A closed subscription ends now, events still queued or not.
                    biased;
                    _ = closed.cancelled() => return None,
                    frame = pushes.recv() => frame?,
                };
                if let Some(path) = notify_path(&decoder, &frame) {
                    return Some((
                        Ok(Event::default().event("change").data(path)),
                        (pushes, subscription),
                    ));
                }
            }
        }
    })
}

/// The path of a pushed NOTIFY frame.
fn notify_path(decoder: &FrameDecoder, frame: &[u8]) -> Option<String> {
    let frame = decoder.decode_message(frame).ok()?;
    if frame.command != Command::Notify.as_u8() {
        return None;
    }
    match Reply::decode(Some(Status::Ok), &frame.payload).ok()?.data? {
        Value::String(path) => Some(path),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicBool, Ordering};

    use canhazdb_core::frame::Frame;
    use canhazdb_core::protocol::PUSH_ID;
    use futures_util::StreamExt;

    use super::*;

    /// A NOTIFY frame as the notify hub pushes it.
    fn pushed(path: &str) -> Bytes {
        let payload = Reply::with_data(Status::Ok, Value::String(path.to_owned())).encode_payload();
        Frame::new(PUSH_ID, Command::Notify.as_u8(), payload).to_bytes()
    }

    struct Dropped(Arc<AtomicBool>);

    impl Drop for Dropped {
        fn drop(&mut self) {
            self.0.store(true, Ordering::SeqCst);
        }
    }

    #[test]
    fn a_pushed_frame_gives_its_path() {
        let decoder = FrameDecoder::new(1024);
        assert_eq!(
            notify_path(&decoder, &pushed("POST:/tests/1")).as_deref(),
            Some("POST:/tests/1")
        );
        let ready = Frame::empty(PUSH_ID, Command::Ready.as_u8()).to_bytes();
        assert_eq!(
            notify_path(&decoder, &ready),
            None,
            "only NOTIFY frames are changes"
        );
        assert_eq!(notify_path(&decoder, b"garbage"), None);
    }

    #[tokio::test]
    async fn the_stream_ends_when_its_connection_is_closed() {
        let (frames, pushes) = mpsc::channel(2);
        let closed = CancellationToken::new();
        let dropped = Arc::new(AtomicBool::new(false));
        let mut stream = Box::pin(events(pushes, closed.clone(), 1024, Dropped(dropped.clone())));
        frames.try_send(pushed("POST:/tests/1")).unwrap();
        assert!(stream.next().await.is_some(), "a queued change is an event");
        // The hub closes a connection whose queue is full, events still waiting.
        frames.try_send(pushed("POST:/tests/2")).unwrap();
        frames.try_send(pushed("POST:/tests/3")).unwrap();
        assert!(
            frames.try_send(pushed("POST:/tests/4")).is_err(),
            "the queue is bounded"
        );
        assert!(
            !dropped.load(Ordering::SeqCst),
            "the subscription lives while the stream runs"
        );
        closed.cancel();
        let ended = tokio::time::timeout(Duration::from_secs(5), stream.next()).await;
        assert!(matches!(ended, Ok(None)), "a closed subscription ends its stream");
        assert!(
            dropped.load(Ordering::SeqCst),
            "the subscription goes when the stream ends"
        );
    }

    #[tokio::test]
    async fn dropping_the_stream_drops_the_subscription() {
        let (_frames, pushes) = mpsc::channel::<Bytes>(2);
        let dropped = Arc::new(AtomicBool::new(false));
        let stream = events(pushes, CancellationToken::new(), 1024, Dropped(dropped.clone()));
        assert!(!dropped.load(Ordering::SeqCst));
        drop(stream);
        assert!(
            dropped.load(Ordering::SeqCst),
            "a client that hangs up closes the subscription"
        );
    }
}
