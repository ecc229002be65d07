//! A sans-IO client: it turns calls into frames and incoming bytes into
//! events, and never touches a socket. Every transport (tokio TCP, the
//! browser's WebSocket, Node.js) drives this same state machine:
//!
//! ```text
//!   request() ──► poll_transmit() ──► write to the socket
//!   socket bytes ──► receive() / receive_message() ──► poll_event()
//!   socket closed ──► disconnected() ──► every pending request fails
//! ```
//!
//! Correlation ids run from 3 to 65535 and an id is reused only after its
//! reply arrived (spec section 1).

mod ids;
mod response;
mod subscriptions;

use std::collections::{HashMap, VecDeque};

use bytes::{Bytes, BytesMut};

pub use ids::IdAllocator;
pub use response::{ClientError, Response};
pub use subscriptions::Subscriptions;

use crate::frame::{Frame, FrameDecoder, DEFAULT_MAX_FRAME_BYTES};
use crate::message::{Reply, Request};
use crate::protocol::{Code, Command, Key, Status, PUSH_ID};

/// The correlation id of a request.
pub type RequestId = u16;

/// Something the transport should hand to the application.
#[derive(Debug, Clone, PartialEq)]
pub enum Event {
    /// The server is healthy and ready for requests.
    Ready,
    /// The reply (or failure) of request `id`.
    Reply {
        id: RequestId,
        result: Result<Response, ClientError>,
    },
    /// A pushed notification path, `METHOD:/collection/id`.
    Notify { path: String },
    /// The connection cannot go on (the server sent bytes that are not
    /// frames); the transport should close it and call [`Client::disconnected`].
    Fatal { message: String },
}

/// How to interpret a reply.
#[derive(Debug, Clone, Copy)]
enum Expect {
    /// The reply of a typed request: checked and turned into a [`Response`].
    Typed(Command),
    /// A raw request's reply, handed over as it came ([`Response::Raw`]).
    Raw,
}

/// The client state machine.
#[derive(Debug)]
pub struct Client {
    decoder: FrameDecoder,
    inbox: BytesMut,
    ids: IdAllocator,
    /// What each request awaiting its reply expects, by correlation id.
    pending: HashMap<RequestId, Expect>,
    transmit: VecDeque<Bytes>,
    events: VecDeque<Event>,
    ready: bool,
}

impl Default for Client {
    fn default() -> Self {
        Client::new(DEFAULT_MAX_FRAME_BYTES)
    }
}

impl Client {
    /// A client that accepts reply frames up to `max_frame_bytes`.
    pub fn new(max_frame_bytes: usize) -> Self {
        Client {
            decoder: FrameDecoder::new(max_frame_bytes),
            inbox: BytesMut::new(),
            ids: IdAllocator::default(),
            pending: HashMap::new(),
            transmit: VecDeque::new(),
            events: VecDeque::new(),
            ready: false,
        }
    }

    /// Queues a request; its frame is then taken with [`poll_transmit`](Self::poll_transmit).
    pub fn request(&mut self, request: &Request) -> Result<RequestId, ClientError> {
        let command = request.command();
        self.queue(Expect::Typed(command), command.as_u8(), request.encode_payload())
    }

    /// Queues a frame with any command byte and payload; its reply comes back
    /// unchecked as [`Response::Raw`]. Node-to-node traffic uses this.
    pub fn request_raw(&mut self, command: u8, payload: Bytes) -> Result<RequestId, ClientError> {
        self.queue(Expect::Raw, command, payload)
    }

    fn queue(&mut self, expect: Expect, command: u8, payload: Bytes) -> Result<RequestId, ClientError> {
        let id = self.ids.allocate().ok_or(ClientError::TooManyInFlight)?;
        self.pending.insert(id, expect);
        self.transmit
            .push_back(Frame::new(id, command, payload).to_bytes());
        Ok(id)
    }

    /// The next frame to write (one WebSocket message, or bytes for a stream).
    pub fn poll_transmit(&mut self) -> Option<Bytes> {
        self.transmit.pop_front()
    }

    /// Feeds bytes read from a stream transport.
    pub fn receive(&mut self, bytes: &[u8]) {
        self.inbox.extend_from_slice(bytes);
        loop {
            match self.decoder.decode(&mut self.inbox) {
                Ok(Some(frame)) => self.handle_frame(frame),
                Ok(None) => break,
                Err(error) if error.is_recoverable() => continue,
                Err(error) => {
                    self.inbox.clear();
                    self.events.push_back(Event::Fatal {
                        message: error.to_string(),
                    });
                    break;
                }
            }
        }
    }

    /// Feeds one message of a message transport (a WebSocket binary message
    /// holds exactly one frame).
    pub fn receive_message(&mut self, message: &[u8]) {
        match self.decoder.decode_message(message) {
            Ok(frame) => self.handle_frame(frame),
            Err(error) => self.events.push_back(Event::Fatal {
                message: error.to_string(),
            }),
        }
    }

    /// The next event for the application.
    pub fn poll_event(&mut self) -> Option<Event> {
        self.events.pop_front()
    }

    /// The transport lost its connection: every pending request fails with
    /// [`ClientError::Disconnected`], queued frames are dropped, and the
    /// client can be reused for a new connection.
    pub fn disconnected(&mut self) {
        let mut failed: Vec<RequestId> = self.pending.drain().map(|(id, _)| id).collect();
        failed.sort_unstable();
        for id in failed {
            self.ids.release(id);
            self.events.push_back(Event::Reply {
                id,
                result: Err(ClientError::Disconnected),
            });
        }
        self.transmit.clear();
        self.inbox.clear();
        self.decoder = FrameDecoder::new(self.decoder.max_frame_bytes());
        self.ready = false;
    }

    /// Whether the server sent READY on this connection.
    pub fn is_ready(&self) -> bool {
        self.ready
    }

    /// Requests awaiting their reply.
    pub fn in_flight(&self) -> usize {
        self.pending.len()
    }

    fn handle_frame(&mut self, frame: Frame) {
        if frame.id == PUSH_ID {
            self.handle_push(frame);
            return;
        }
        let Some(expect) = self.pending.remove(&frame.id) else {
            // A reply to nothing we asked: ignore it rather than fail the connection.
            return;
        };
        self.ids.release(frame.id);
        let status = match Code::from(frame.command) {
            Code::Status(status) => Some(status),
            _ => None,
        };
        let result = Reply::decode(status, &frame.payload)
            .map_err(|error| ClientError::Protocol(error.to_string()))
            .and_then(|reply| match expect {
                Expect::Typed(command) => Response::from_reply(command, reply, frame.command),
                Expect::Raw => Ok(Response::Raw {
                    code: frame.command,
                    reply,
                }),
            });
        self.events.push_back(Event::Reply { id: frame.id, result });
    }

    fn handle_push(&mut self, frame: Frame) {
        match Command::from_u8(frame.command) {
            Some(Command::Ready) => {
                self.ready = true;
                self.events.push_back(Event::Ready);
            }
            Some(Command::Notify) => {
                let path = Reply::decode(None, &frame.payload)
                    .ok()
                    .and_then(|reply| reply.data)
                    .and_then(|data| data.as_str().map(str::to_owned));
                match path {
                    Some(path) => self.events.push_back(Event::Notify { path }),
                    None => self.events.push_back(Event::Fatal {
                        message: format!("NOTIFY without a string {} path", Key::Data.name()),
                    }),
                }
            }
            // Other pushes are not part of the external protocol; ignore them.
            _ => {}
        }
    }
}

/// The status a successful reply to `command` carries.
pub fn success_status(command: Command) -> Status {
    match command {
        Command::Post => Status::Created,
        _ => Status::Ok,
    }
}

#[cfg(test)]
mod tests;
