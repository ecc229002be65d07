//! Failures as JavaScript sees them.
//!
//! Every promise of the package rejects with a plain `Error` whose `message`
//! is the server's message (or a description of what went wrong locally),
//! with two extra properties:
//!
//! * `status`: the protocol status number (121 BAD_REQUEST … 127 LOCKED), for
//!   answers of the server and for arguments the server would refuse with
//!   that status; `undefined` for transport failures.
//! * `code`: a string for `switch`ing on: the status name
//!   (`STATUS_LOCKED`), an errno-style name for socket failures
//!   (`ECONNREFUSED`), or `ERR_CANHAZDB_*` (`ERR_CANHAZDB_TLS` for bad
//!   certificates and failed or refused TLS handshakes).

use canhazdb::client::Error as ClientError;
use canhazdb::node::NodeError;
use canhazdb::server::ServerError;
use canhazdb_core::protocol::Status;
use napi::bindgen_prelude::{Env, JsObjectValue, Object};
use napi::JsValue;

/// A failure on its way to JavaScript.
#[derive(Debug, Clone)]
pub struct Failure {
    pub message: String,
    pub status: Option<u8>,
    pub code: String,
}

impl Failure {
    /// Arguments the server would answer with STATUS_BAD_REQUEST.
    pub fn invalid(message: impl Into<String>) -> Self {
        Failure {
            message: message.into(),
            status: Some(Status::BadRequest.as_u8()),
            code: Status::BadRequest.name().to_owned(),
        }
    }

    /// An option of `createServer` / `createClient` that makes no sense.
    pub fn argument(message: impl Into<String>) -> Self {
        Failure {
            message: message.into(),
            status: None,
            code: "ERR_INVALID_ARG_VALUE".to_owned(),
        }
    }

    /// The embedded server could not do what was asked.
    pub fn server(message: impl Into<String>) -> Self {
        Failure {
            message: message.into(),
            status: None,
            code: "ERR_CANHAZDB_SERVER".to_owned(),
        }
    }

    /// TLS could not be set up: bad PEM, or a handshake that failed or was refused.
    pub fn tls(message: impl Into<String>) -> Self {
        Failure {
            message: message.into(),
            status: None,
            code: "ERR_CANHAZDB_TLS".to_owned(),
        }
    }

    /// The same failure, described differently.
    pub fn with_message(self, message: impl Into<String>) -> Self {
        Failure {
            message: message.into(),
            ..self
        }
    }

    /// Builds the JS `Error` (on the JS thread) and wraps it so that napi
    /// rejects the promise with exactly that object.
    pub fn into_napi(self, env: &Env) -> napi::Error {
        match self.to_js(env) {
            Ok(error) => napi::Error::from(error.to_unknown()),
            // Building the object failed (the environment is going away):
            // fall back to napi's own error, which still carries the text.
            Err(_) => napi::Error::new(napi::Status::GenericFailure, self.message),
        }
    }

    fn to_js<'env>(&self, env: &'env Env) -> napi::Result<Object<'env>> {
        let mut error = env.create_error(napi::Error::new(napi::Status::GenericFailure, &self.message))?;
        match self.status {
            Some(status) => error.set_named_property("status", u32::from(status))?,
            None => error.set_named_property("status", ())?,
        }
        error.set_named_property("code", self.code.as_str())?;
        Ok(error)
    }
}

impl From<ClientError> for Failure {
    fn from(error: ClientError) -> Self {
        let status = error.status_code();
        let code = match &error {
            ClientError::Server { code, .. } => match Status::from_u8(*code) {
                Some(status) => status.name().to_owned(),
                None => format!("STATUS_{code}"),
            },
            ClientError::InvalidArgument(_) => Status::BadRequest.name().to_owned(),
            ClientError::Io(io) => io_code(io),
            ClientError::Closed => "ERR_CANHAZDB_CLOSED".to_owned(),
            ClientError::TooManyInFlight => "ERR_CANHAZDB_TOO_MANY_IN_FLIGHT".to_owned(),
            ClientError::Timeout => "ERR_CANHAZDB_TIMEOUT".to_owned(),
            ClientError::Tls(_) => "ERR_CANHAZDB_TLS".to_owned(),
            // Protocol, and whatever the client's error may grow.
            _ => "ERR_CANHAZDB_PROTOCOL".to_owned(),
        };
        let message = match error {
            // The server's own words when it sent some; otherwise the
            // status name ("STATUS_LOCKED").
            ClientError::Server {
                message: Some(message),
                ..
            } => message,
            ClientError::InvalidArgument(message) => message,
            other => other.to_string(),
        };
        Failure {
            message,
            status,
            code,
        }
    }
}

impl From<ServerError> for Failure {
    fn from(error: ServerError) -> Self {
        let code = match &error {
            ServerError::Listen { source, .. } => io_code(source),
            ServerError::Node(NodeError::Storage(_)) => "ERR_CANHAZDB_STORAGE".to_owned(),
            ServerError::Tls(_) => "ERR_CANHAZDB_TLS".to_owned(),
            ServerError::Insecure { .. } => "ERR_CANHAZDB_INSECURE".to_owned(),
            #[allow(unreachable_patterns)] // ServerError may grow.
            _ => "ERR_CANHAZDB_SERVER".to_owned(),
        };
        Failure {
            message: error.to_string(),
            status: None,
            code,
        }
    }
}

/// The errno-style name Node.js uses for the common socket failures.
fn io_code(error: &std::io::Error) -> String {
    use std::io::ErrorKind::*;
    let code = match error.kind() {
        ConnectionRefused => "ECONNREFUSED",
        ConnectionReset => "ECONNRESET",
        ConnectionAborted => "ECONNABORTED",
        AddrInUse => "EADDRINUSE",
        AddrNotAvailable => "EADDRNOTAVAIL",
        PermissionDenied => "EACCES",
        TimedOut => "ETIMEDOUT",
        BrokenPipe => "EPIPE",
        NotFound => "ENOTFOUND",
        _ => "ERR_CANHAZDB_IO",
    };
    code.to_owned()
}
