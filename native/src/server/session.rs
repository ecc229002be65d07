//! One client connection, independent of its transport (TCP or WebSocket):
//! READY on open, requests handled concurrently up to a bound, replies and
//! pushes through one outgoing queue, and cleanup on close.

use std::sync::Arc;

use bytes::Bytes;
use canhazdb_core::frame::{Frame, FrameError};
use canhazdb_core::message::Reply;
use canhazdb_core::protocol::{Command, Status, PUSH_ID};
use tokio::sync::mpsc::error::TrySendError;
use tokio::sync::{mpsc, Semaphore};
use tokio_util::sync::CancellationToken;

use crate::node::connection::{Connection, ConnectionId, Role};
use crate::node::notify::Outlet;
use crate::node::{dispatch, Node};

/// Frames waiting to be written per connection; a full queue slows replies
/// (backpressure) and closes a connection that does not read its pushes.
pub const OUTGOING_QUEUE_FRAMES: usize = 4096;

/// How often a connection opened while the node was unhealthy checks
/// whether it can send READY yet.
const READY_POLL: std::time::Duration = std::time::Duration::from_millis(50);

/// A live connection.
pub struct Session {
    node: Arc<Node>,
    context: Arc<Connection>,
    permits: Arc<Semaphore>,
}

impl Session {
    /// Opens a session; returns it and the receiver of its outgoing frames,
    /// which the transport writes in order. `close` is cancelled when the
    /// session must end (server shutdown or a slow consumer).
    pub fn open(node: Arc<Node>, role: Role, close: CancellationToken) -> (Session, mpsc::Receiver<Bytes>) {
        let (sender, receiver) = mpsc::channel(OUTGOING_QUEUE_FRAMES);
        let context = Arc::new(node.connection(
            role,
            Outlet {
                frames: sender,
                close,
            },
        ));
        let ready = Frame::empty(PUSH_ID, Command::Ready.as_u8()).to_bytes();
        if node.health().is_healthy() {
            let _ = context.outlet.frames.try_send(ready);
        } else {
            // READY means "healthy": send it the moment the node becomes so.
            let (node, outlet) = (node.clone(), context.outlet.clone());
            tokio::spawn(async move {
                let mut poll = tokio::time::interval(READY_POLL);
                loop {
                    tokio::select! {
                        _ = outlet.close.cancelled() => return,
                        _ = poll.tick() => {}
                    }
                    if node.health().is_healthy() {
                        let _ = outlet.frames.send(ready).await;
                        return;
                    }
                }
            });
        }
        let permits = Arc::new(Semaphore::new(node.max_in_flight));
        (
            Session {
                node,
                context,
                permits,
            },
            receiver,
        )
    }

    pub fn connection(&self) -> ConnectionId {
        self.context.id
    }

    /// Handles one request frame concurrently with the others. Waits while
    /// the connection already has its maximum of requests in flight.
    pub async fn dispatch(&self, frame: Frame) {
        let Ok(permit) = self.permits.clone().acquire_owned().await else {
            return;
        };
        let node = self.node.clone();
        let context = self.context.clone();
        self.node.tasks.spawn(async move {
            let handled = dispatch::handle(&node, &context, frame).await;
            // Leave the write's lease before the reply is queued: the writer
            // task may send the reply (on another thread) at once, and by
            // the time the client can ask again system.locks must no longer
            // show the lock. Nobody is granted it before `release` runs, so
            // the client still hears back first. (A client that does not
            // read its replies must not keep the lock meanwhile: when its
            // queue is full, the lock goes first.)
            let release = handled.lease.map(|lease| lease.finish());
            let unsent = match context.outlet.frames.try_send(handled.reply) {
                Err(TrySendError::Full(reply)) => Some(reply),
                _ => None,
            };
            if let Some(release) = release {
                release.run().await;
            }
            if let Some(reply) = unsent {
                let _ = context.outlet.frames.send(reply).await;
            }
            drop(permit);
        });
    }

    /// Answers a frame the transport could not decode.
    pub async fn reject(&self, error: &FrameError, id: u16) {
        let reply = Reply::error(Status::BadRequest, error.to_string());
        let frame = Frame::new(id, Status::BadRequest.as_u8(), reply.encode_payload());
        let _ = self.context.outlet.frames.send(frame.to_bytes()).await;
    }

    /// Releases what the connection held (its locks and its notify
    /// registrations). Requests still running finish on their own.
    pub async fn close(self) {
        self.node.connection_closed(&self.context).await;
    }
}
