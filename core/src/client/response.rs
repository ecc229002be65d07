//! Interpreting a reply according to the request it answers.

use serde_json::Value;

use crate::message::Reply;
use crate::protocol::{Command, Status};

/// What a successful request returns.
#[derive(Debug, Clone, PartialEq)]
pub enum Response {
    /// POST: the stored document.
    Document(Value),
    /// GET: the matching documents.
    Documents(Vec<Value>),
    /// COUNT.
    Count(u64),
    /// PUT, PATCH, DELETE: the id of each changed document, once.
    Ids(Vec<String>),
    /// LOCK and UNLOCK.
    LockId(String),
    /// INFO: `{nodeName, status, nodes}`.
    Info(Value),
    /// NOTIFY_ON, NOTIFY_OFF.
    Done,
    /// The reply to [`Client::request_raw`](super::Client::request_raw),
    /// whatever its status: `code` is the status byte.
    Raw { code: u8, reply: Reply },
}

/// Why a request failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ClientError {
    /// The server answered with a failure status.
    #[error("{}{}", status_label(*.status, *.code), message.as_ref().map(|m| format!(": {m}")).unwrap_or_default())]
    Server {
        /// The status, if it is one the protocol defines.
        status: Option<Status>,
        /// The raw status byte.
        code: u8,
        message: Option<String>,
    },
    /// All 65,533 correlation ids are waiting for replies.
    #[error("too many requests in flight: all 65533 correlation ids are in use")]
    TooManyInFlight,
    /// The connection closed before the reply arrived.
    #[error("connection closed before the reply arrived")]
    Disconnected,
    /// The reply did not have the shape its request promises.
    #[error("unexpected reply: {0}")]
    Protocol(String),
}

fn status_label(status: Option<Status>, code: u8) -> String {
    match status {
        Some(status) => status.name().to_owned(),
        None => format!("status {code}"),
    }
}

impl ClientError {
    /// The status byte of a server failure.
    pub fn status_code(&self) -> Option<u8> {
        match self {
            ClientError::Server { code, .. } => Some(*code),
            _ => None,
        }
    }
}

impl Response {
    /// Interprets `reply` as the answer to `command`.
    pub fn from_reply(command: Command, reply: Reply, code: u8) -> Result<Response, ClientError> {
        let expected = super::success_status(command);
        if reply.status != Some(expected) {
            return Err(ClientError::Server {
                status: reply.status,
                code,
                message: reply.error,
            });
        }
        let data = reply.data;
        let shape_error = |what: &str| ClientError::Protocol(format!("{command} reply without {what}"));
        match command {
            Command::Post => data
                .map(Response::Document)
                .ok_or_else(|| shape_error("a document")),
            Command::Get => match data {
                Some(Value::Array(documents)) => Ok(Response::Documents(documents)),
                _ => Err(shape_error("a document array")),
            },
            Command::Count => data
                .as_ref()
                .and_then(Value::as_u64)
                .map(Response::Count)
                .ok_or_else(|| shape_error("a count")),
            Command::Put | Command::Patch | Command::Delete => match data {
                Some(Value::Array(ids)) => ids
                    .into_iter()
                    .map(|id| match id {
                        Value::String(id) => Ok(id),
                        other => Ok(other.to_string()),
                    })
                    .collect::<Result<_, _>>()
                    .map(Response::Ids),
                _ => Err(shape_error("an id array")),
            },
            Command::Lock | Command::Unlock => reply
                .lock_id
                .map(Response::LockId)
                .ok_or_else(|| shape_error("a LOCK_ID")),
            Command::Info => Ok(Response::Info(data.unwrap_or(Value::Null))),
            Command::NotifyOn | Command::NotifyOff | Command::Notify | Command::Ready => Ok(Response::Done),
        }
    }
}
