//! One workload client's connection to one node: reconnects after the node
//! went away, times every request, and tells a wedge from a node that was
//! frozen or killed.

use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::Value;

use super::history::{History, Outcome, Wedge};
use crate::proto::{status, Reply};
use crate::{RawConn, ReadError};

/// How long any request may take. A paused leader is replaced, and a lock
/// held through a vanished node released, well within this.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(15);
const CONNECT_PAUSE: Duration = Duration::from_millis(250);

/// What a request got back.
pub enum Answer {
    Reply(Reply),
    /// No reply; the outcome says why (never `Ok`).
    Failed(Outcome),
}

pub struct Session {
    pub node: usize,
    address: std::net::SocketAddr,
    conn: Option<RawConn>,
    history: Arc<History>,
}

impl Session {
    pub fn new(node: usize, address: std::net::SocketAddr, history: Arc<History>) -> Session {
        Session {
            node,
            address,
            conn: None,
            history,
        }
    }

    /// Whether a connection is open (it may still break).
    pub fn is_connected(&self) -> bool {
        self.conn.is_some()
    }

    /// Opens a connection if none is open; `false` when the node does not
    /// accept one now (down, or its port not yet open).
    pub async fn connect(&mut self) -> bool {
        if self.conn.is_some() {
            return true;
        }
        match RawConn::try_connect_raw(self.address).await {
            Ok(conn) => {
                self.conn = Some(conn);
                true
            }
            Err(_) => {
                tokio::time::sleep(CONNECT_PAUSE).await;
                false
            }
        }
    }

    pub fn disconnect(&mut self) {
        self.conn = None;
    }

    /// Sends one request and waits for its reply, at most [`REQUEST_TIMEOUT`].
    /// A request left unanswered by a node that was not frozen meanwhile is
    /// recorded as a wedge.
    pub async fn call(&mut self, what: &str, command: u8, payload: Value) -> Answer {
        if !self.connect().await {
            return Answer::Failed(Outcome::NotSent);
        }
        let conn = self.conn.as_mut().expect("connected");
        let sent = Instant::now();
        let id = conn.fresh_id();
        let frame = canhazdb_core::frame::Frame::new(
            id,
            command,
            serde_json::to_vec(&payload).expect("serialisable"),
        );
        let written = tokio::time::timeout(REQUEST_TIMEOUT, async {
            use tokio::io::AsyncWriteExt;
            let stream = conn.stream_mut();
            stream.write_all(&frame.to_bytes()).await?;
            stream.flush().await
        })
        .await;
        let result = match written {
            Ok(Ok(())) => {
                conn.reply_within(id, REQUEST_TIMEOUT.saturating_sub(sent.elapsed()))
                    .await
            }
            Ok(Err(_)) => Err(ReadError::Closed),
            Err(_) => Err(ReadError::Timeout),
        };
        match result {
            Ok(reply) => Answer::Reply(reply),
            Err(ReadError::Timeout) => {
                self.conn = None; // A late reply would only confuse the next request.
                if !self.history.was_frozen(self.node, sent, Instant::now()) {
                    self.history.with(|log| {
                        log.wedges.push(Wedge {
                            node: self.node,
                            what: what.to_owned(),
                            sent,
                        })
                    });
                }
                Answer::Failed(Outcome::Unknown(format!("timeout: {what}")))
            }
            Err(error) => {
                self.conn = None;
                Answer::Failed(Outcome::Unknown(format!("connection lost: {error}")))
            }
        }
    }

    /// Waits for the next NOTIFY frame's path, at most `wait`. `Err` when the
    /// connection broke (it is dropped).
    pub async fn next_notify(&mut self, wait: Duration) -> Result<Option<String>, ()> {
        let Some(conn) = self.conn.as_mut() else {
            return Err(());
        };
        match conn.pushed_within(wait).await {
            Ok(frame) if frame.command == crate::cmd::NOTIFY => {
                let payload: Value = serde_json::from_slice(&frame.payload).unwrap_or_default();
                Ok(payload["20"].as_str().map(str::to_owned))
            }
            Ok(_) => Ok(None), // READY
            Err(ReadError::Timeout) => Ok(None),
            Err(_) => {
                self.conn = None;
                Err(())
            }
        }
    }
}

/// The outcome a reply stands for: success, a refusal that changed
/// nothing, or (STATUS_SERVER_ERROR) maybe applied.
pub fn outcome_of(reply: &Reply, success: u8) -> Outcome {
    match reply.status {
        code if code == success => Outcome::Ok,
        status::SERVER_ERROR => Outcome::Unknown(format!(
            "server error: {}",
            reply.error_message().unwrap_or_default()
        )),
        code => Outcome::Refused(code),
    }
}
