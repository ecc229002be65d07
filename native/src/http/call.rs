//! Runs one protocol request for an HTTP request: the same payload a
//! binary-protocol client sends, through the node's dispatch, so validation,
//! health, locks, counts and notify are exactly those of the TCP port.

use std::sync::Arc;

use bytes::Bytes;
use canhazdb_core::frame::Frame;
use canhazdb_core::message::Reply;
use canhazdb_core::protocol::{Command, Status, FIRST_REQUEST_ID};
use serde_json::{Map, Value};
use tokio::sync::mpsc;

use super::errors::ApiError;
use crate::node::connection::{Connection, Role};
use crate::node::notify::Outlet;
use crate::node::{dispatch, Node};

/// A connection of the node's for HTTP requests: always a client
/// connection, whatever certificate the HTTP client presented, so nothing
/// sent over HTTP is ever taken for node-to-node traffic. `pushes` holds
/// what the node pushes to it (notify paths), `capacity` at most.
pub fn connection(node: &Node, capacity: usize) -> (Arc<Connection>, mpsc::Receiver<Bytes>) {
    let (frames, pushes) = mpsc::channel(capacity);
    let outlet = Outlet {
        frames,
        close: node.shutdown.child_token(),
    };
    (Arc::new(node.connection(Role::Client, outlet)), pushes)
}

/// A connection for one request that receives no pushes.
pub fn one_off(node: &Node) -> Arc<Connection> {
    connection(node, 1).0
}

/// The payload of a request: `(key, value)` pairs of the protocol's numbers.
pub type Payload = Map<String, Value>;

/// Runs `command` with `payload` on `connection`; the reply when it
/// succeeded, its failure as an [`ApiError`] otherwise.
///
/// The request runs in a task of the node's own, like a frame of the TCP
/// port: an HTTP client that hangs up cannot cut a write short half-way
/// through its replicas, and the node's shutdown waits for it.
pub async fn run(
    node: &Arc<Node>,
    connection: Arc<Connection>,
    command: Command,
    payload: Payload,
) -> Result<Reply, ApiError> {
    let payload = serde_json::to_vec(&Value::Object(payload))
        .map_err(|error| ApiError::bad_request(error.to_string()))?;
    let frame = Frame::new(FIRST_REQUEST_ID, command.as_u8(), Bytes::from(payload));
    let task_node = node.clone();
    let task = node.tasks.spawn(async move {
        let answered = dispatch::answer(&task_node, &connection, &frame).await;
        let status = answered.status();
        if let Some(lease) = answered.lease {
            // The write is done: let whoever waits for the collection in.
            lease.finish().run().await;
        }
        (status, answered.reply)
    });
    let (status, reply) = task
        .await
        .map_err(|error| ApiError::new(Status::ServerError, error.to_string()))?;
    if status.is_success() {
        return Ok(reply);
    }
    Err(ApiError::from_reply(reply, || {
        match (status, node.health().reason()) {
            (Status::ServerUnhealthy, Some(reason)) => format!("the node is unhealthy: {reason}"),
            _ => status.name().to_owned(),
        }
    }))
}

/// Stops `connection`: releases its locks and notify registrations, like a
/// TCP connection that closed.
pub fn close(node: &Arc<Node>, connection: Arc<Connection>) {
    let node_for_task = node.clone();
    node.tasks
        .spawn(async move { node_for_task.connection_closed(&connection).await });
}
