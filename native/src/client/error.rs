//! The one error type of the async client.

use std::sync::Arc;

use canhazdb_core::client::ClientError;
use canhazdb_core::message::MessageError;
use canhazdb_core::protocol::Status;

/// Why a client call failed.
///
/// `Clone` so that one connection failure can be handed to every request
/// that was waiting on that connection.
#[derive(Debug, Clone, thiserror::Error)]
pub enum Error {
    /// The server answered with a failure status.
    #[error("{}{}", status_label(*.status, *.code), message.as_ref().map(|m| format!(": {m}")).unwrap_or_default())]
    Server {
        /// The status, if it is one the protocol defines.
        status: Option<Status>,
        /// The raw status byte.
        code: u8,
        /// The server's ERROR text, if it sent one.
        message: Option<String>,
    },
    /// Reading from or writing to the socket failed, or connecting did.
    #[error("i/o error: {0}")]
    Io(Arc<std::io::Error>),
    /// The connection is closed (by [`Client::close`](super::Client::close),
    /// by the server, or because every client handle was dropped) and the
    /// request got no reply.
    #[error("connection closed")]
    Closed,
    /// All 65,533 correlation ids of the connection are waiting for replies.
    #[error("too many requests in flight: all 65533 correlation ids are in use")]
    TooManyInFlight,
    /// The server sent something that breaks the protocol.
    #[error("protocol error: {0}")]
    Protocol(String),
    /// The call's arguments are invalid; nothing was sent. The server would
    /// have answered STATUS_BAD_REQUEST.
    #[error("invalid argument: {0}")]
    InvalidArgument(String),
    /// The TLS handshake failed (the message says why), or the address has
    /// no host name a certificate could name.
    #[error("TLS: {0}")]
    Tls(String),
    /// A deadline given to the call (e.g. [`Client::connect_ready`](super::Client::connect_ready)) passed.
    #[error("timed out")]
    Timeout,
}

fn status_label(status: Option<Status>, code: u8) -> String {
    match status {
        Some(status) => status.name().to_owned(),
        None => format!("status {code}"),
    }
}

impl Error {
    /// The status byte of the failure: the server's status for
    /// [`Error::Server`], and STATUS_BAD_REQUEST (121) for
    /// [`Error::InvalidArgument`], which is what the server answers to the
    /// same arguments — so callers can treat local and remote validation
    /// alike. `None` for transport failures.
    pub fn status_code(&self) -> Option<u8> {
        match self {
            Error::Server { code, .. } => Some(*code),
            Error::InvalidArgument(_) => Some(Status::BadRequest.as_u8()),
            _ => None,
        }
    }

    /// The protocol status of the failure, when it has one (see [`Error::status_code`]).
    pub fn status(&self) -> Option<Status> {
        self.status_code().and_then(Status::from_u8)
    }
}

impl From<ClientError> for Error {
    fn from(error: ClientError) -> Self {
        match error {
            ClientError::Server {
                status,
                code,
                message,
            } => Error::Server {
                status,
                code,
                message,
            },
            ClientError::TooManyInFlight => Error::TooManyInFlight,
            ClientError::Disconnected => Error::Closed,
            ClientError::Protocol(message) => Error::Protocol(message),
        }
    }
}

impl From<std::io::Error> for Error {
    fn from(error: std::io::Error) -> Self {
        Error::Io(Arc::new(error))
    }
}

impl From<MessageError> for Error {
    /// Building a request locally failed (e.g. an invalid collection id).
    fn from(error: MessageError) -> Self {
        Error::InvalidArgument(error.to_string())
    }
}
