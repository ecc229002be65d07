//! The WebSocket transport, for browsers: each binary message is exactly one
//! frame (spec section 1), with the same semantics as TCP — READY on open,
//! pipelining, NOTIFY pushes, locks released when the socket closes. It
//! serves `--ws-port` and `GET /ws` on the HTTP port ([`serve_upgraded`]).
//!
//! * A text message is answered with STATUS_BAD_REQUEST ("send binary
//!   messages"); the connection stays usable. Its first two bytes are taken
//!   as the id, so a client that sent a frame as text can match the error.
//! * A binary message that is not one frame (no terminator, no command byte,
//!   bytes after the terminator) gets STATUS_BAD_REQUEST naming the problem;
//!   the connection stays usable.
//! * A message longer than `--max-frame-bytes` is refused by tungstenite
//!   before it is buffered, so its id is never seen: STATUS_BAD_REQUEST with
//!   id 0, then the socket is closed with code 1009 (message too big).
//! * Every outgoing frame (reply or push) is one binary message.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use canhazdb_core::frame::{Frame, FrameDecoder, FrameError};
use canhazdb_core::message::Reply;
use canhazdb_core::protocol::Status;
use futures_util::stream::{SplitSink, StreamExt};
use futures_util::SinkExt;
use tokio::sync::mpsc;
use tokio_tungstenite::tungstenite::error::CapacityError;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::protocol::{CloseFrame, WebSocketConfig};
use tokio_tungstenite::tungstenite::{Error as WsError, Message};
use tokio_tungstenite::WebSocketStream;
use tokio_util::sync::CancellationToken;

use super::accept::BoxStream;
use super::session::Session;
use crate::node::connection::Role;
use crate::node::Node;

/// What a text message is told.
pub const TEXT_MESSAGE_ERROR: &str =
    "text messages are not accepted: send each frame as one binary WebSocket message";

/// The id of an error about a message whose id was never read.
pub const UNKNOWN_ID: u16 = 0;

/// How long a new connection may take to complete the WebSocket handshake.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

type Sink = SplitSink<WebSocketStream<BoxStream>, Message>;

/// An error reply built by the transport itself (not by a request handler).
fn error_frame(id: u16, message: &str) -> Bytes {
    let reply = Reply::error(Status::BadRequest, message);
    Frame::new(id, Status::BadRequest.as_u8(), reply.encode_payload()).to_bytes()
}

/// The id bytes at the front of a message that may hold a frame.
fn leading_id(message: &[u8]) -> u16 {
    match message {
        [lo, hi, ..] => u16::from_le_bytes([*lo, *hi]),
        _ => UNKNOWN_ID,
    }
}

/// Messages and frames of at most `limit` bytes (`--max-frame-bytes`).
fn config(limit: usize) -> WebSocketConfig {
    WebSocketConfig::default()
        .max_message_size(Some(limit))
        .max_frame_size(Some(limit))
}

/// Serves a connection whose WebSocket handshake the HTTP port answered
/// (`GET /ws`): a client connection, like every connection of that port.
pub async fn serve_upgraded(node: Arc<Node>, stream: BoxStream, close: CancellationToken) {
    let config = config(node.max_frame_bytes);
    let socket = WebSocketStream::from_raw_socket(
        stream,
        tokio_tungstenite::tungstenite::protocol::Role::Server,
        Some(config),
    )
    .await;
    serve_socket(node, socket, Role::Client, close).await;
}

/// Serves one WebSocket connection until the peer closes it, sends an
/// oversized message, or the server shuts down.
pub async fn serve(node: Arc<Node>, stream: BoxStream, role: Role, close: CancellationToken) {
    let config = config(node.max_frame_bytes);
    let handshake = tokio::time::timeout(
        HANDSHAKE_TIMEOUT,
        tokio_tungstenite::accept_async_with_config(stream, Some(config)),
    );
    let socket = tokio::select! {
        _ = close.cancelled() => return,
        handshake = handshake => match handshake {
            Ok(Ok(socket)) => socket,
            Ok(Err(error)) => {
                tracing::debug!(%error, "WebSocket handshake failed");
                return;
            }
            Err(_) => {
                tracing::debug!("WebSocket handshake timed out");
                return;
            }
        },
    };
    serve_socket(node, socket, role, close).await;
}

/// Serves an open WebSocket: READY, then requests and replies.
async fn serve_socket(
    node: Arc<Node>,
    socket: WebSocketStream<BoxStream>,
    role: Role,
    close: CancellationToken,
) {
    let limit = node.max_frame_bytes;
    let (sink, mut source) = socket.split();
    let (session, outgoing) = Session::open(node.clone(), role, close.clone());
    // Errors the transport answers itself (text messages); the session's
    // queue carries everything else.
    let (transport_errors, transport_error_queue) = mpsc::channel(64);
    // Cancelled when the writer should send what is queued and stop, without
    // waiting for the replies of requests still running.
    let finish = CancellationToken::new();
    let writer_task = tokio::spawn(write_messages(
        sink,
        outgoing,
        transport_error_queue,
        finish.clone(),
        close.clone(),
    ));

    let decoder = FrameDecoder::new(limit);
    let mut goodbye: Option<CloseFrame> = None;
    loop {
        let message = tokio::select! {
            _ = close.cancelled() => {
                goodbye = Some(CloseFrame { code: CloseCode::Away, reason: "server shutting down".into() });
                break;
            }
            message = source.next() => message,
        };
        let message = match message {
            None => break,
            Some(Ok(message)) => message,
            Some(Err(WsError::Capacity(error))) => {
                let error = match error {
                    CapacityError::MessageTooLong { .. } => FrameError::TooLarge { limit },
                    other => {
                        tracing::warn!(connection = session.connection(), error = %other, "closing WebSocket");
                        break;
                    }
                };
                tracing::warn!(connection = session.connection(), %error, "closing WebSocket");
                session.reject(&error, UNKNOWN_ID).await;
                goodbye = Some(CloseFrame {
                    code: CloseCode::Size,
                    reason: error.to_string().into(),
                });
                break;
            }
            Some(Err(error)) => {
                tracing::debug!(connection = session.connection(), %error, "WebSocket read failed");
                break;
            }
        };
        match message {
            Message::Binary(data) => match decoder.decode_message(&data) {
                Ok(frame) => session.dispatch(frame).await,
                Err(error @ FrameError::TooLarge { .. }) => {
                    tracing::warn!(connection = session.connection(), %error, "closing WebSocket");
                    session.reject(&error, leading_id(&data)).await;
                    goodbye = Some(CloseFrame {
                        code: CloseCode::Size,
                        reason: error.to_string().into(),
                    });
                    break;
                }
                Err(error) => session.reject(&error, leading_id(&data)).await,
            },
            Message::Text(text) => {
                let reply = error_frame(leading_id(text.as_bytes()), TEXT_MESSAGE_ERROR);
                let _ = transport_errors.send(reply).await;
            }
            // tungstenite answers pings and the closing handshake itself;
            // after a Close the next read ends the stream.
            Message::Ping(_) | Message::Pong(_) | Message::Close(_) | Message::Frame(_) => {}
        }
    }
    let shutting_down = close.is_cancelled();
    session.close().await;
    drop(transport_errors);
    if !shutting_down {
        // The peer is gone, or is being sent away: write what is queued (an
        // error reply, say) and stop; a request still running (a write
        // waiting for a lock) must not keep the socket open.
        finish.cancel();
    }
    // On server shutdown the writer drains what is queued, replies of
    // requests still running included, and ends once every sender is gone.
    // Then say goodbye and drop the connection.
    if let Ok(Some(mut sink)) = writer_task.await {
        if let Some(frame) = goodbye {
            let _ = sink.send(Message::Close(Some(frame))).await;
        }
        let _ = sink.close().await;
    }
}

/// Writes every outgoing frame as one binary message; returns the sink once
/// the session is done with it, or `None` when the peer is gone.
async fn write_messages(
    mut sink: Sink,
    mut outgoing: mpsc::Receiver<Bytes>,
    mut transport_errors: mpsc::Receiver<Bytes>,
    finish: CancellationToken,
    close: CancellationToken,
) -> Option<Sink> {
    let mut transport_open = true;
    loop {
        let frame = tokio::select! {
            biased;
            _ = finish.cancelled() => break,
            frame = outgoing.recv() => match frame {
                Some(frame) => frame,
                None => break,
            },
            frame = transport_errors.recv(), if transport_open => match frame {
                Some(frame) => frame,
                None => {
                    transport_open = false;
                    continue;
                }
            },
        };
        if sink.feed(Message::Binary(frame)).await.is_err() {
            close.cancel();
            return None;
        }
        // Coalesce whatever else is ready into the same flush.
        while let Ok(frame) = outgoing.try_recv() {
            if sink.feed(Message::Binary(frame)).await.is_err() {
                close.cancel();
                return None;
            }
        }
        if sink.flush().await.is_err() {
            close.cancel();
            return None;
        }
    }
    // What is still queued: replies that are ready, transport errors.
    while let Ok(frame) = outgoing.try_recv().or_else(|_| transport_errors.try_recv()) {
        if sink.feed(Message::Binary(frame)).await.is_err() {
            return None;
        }
    }
    let _ = sink.flush().await;
    Some(sink)
}
