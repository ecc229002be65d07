//! What client handles ask of the connection's driver task, and the little
//! the handles may read without asking.

use std::sync::atomic::{AtomicBool, AtomicU64};

use canhazdb_core::client::Response;
use canhazdb_core::message::Request;
use tokio::sync::{mpsc, oneshot};

use super::error::Error;
use super::notification::Notification;

/// Identifies one [`Subscription`](super::Subscription) within its connection.
pub(crate) type HandlerId = u64;

/// Where the driver sends the outcome of a command.
pub(crate) type ReplyTo<T> = oneshot::Sender<Result<T, Error>>;

/// What a [`Client`](super::Client) handle asks of the driver.
pub(crate) enum Command {
    /// Send a request and hand its reply back.
    Request {
        request: Request,
        reply: ReplyTo<Response>,
    },
    /// Send a frame with any command byte and hand its reply back unchecked
    /// (node-to-node traffic).
    RequestRaw {
        command: u8,
        payload: bytes::Bytes,
        reply: ReplyTo<Response>,
    },
    /// Register a handler for a pattern (NOTIFY_ON if it is the pattern's first).
    Subscribe {
        pattern: String,
        handler: HandlerId,
        notifications: mpsc::UnboundedSender<Notification>,
        reply: ReplyTo<()>,
    },
    /// Unregister a handler (NOTIFY_OFF if it was the pattern's last).
    /// `reply` is `None` when a dropped subscription asks: nobody waits.
    Unsubscribe {
        pattern: String,
        handler: HandlerId,
        reply: Option<ReplyTo<()>>,
    },
    /// Answer once the server has sent READY.
    WaitReady { reply: ReplyTo<()> },
    /// Close the connection; answered once it is closed.
    Close { done: oneshot::Sender<()> },
}

/// What the handles can read without asking the driver.
#[derive(Debug, Default)]
pub(crate) struct ConnectionState {
    pub(crate) closed: AtomicBool,
    pub(crate) ready: AtomicBool,
    pub(crate) next_handler: AtomicU64,
}
