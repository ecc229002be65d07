//! Answers one request frame (spec section 3). Every request gets exactly
//! one reply frame carrying its id. Client commands are coordinated across
//! the cluster ([`crate::cluster::coordinator`]); node-to-node requests go to
//! [`crate::cluster::internal`]; system collections are built here.

use std::sync::Arc;

use bytes::Bytes;
use canhazdb_core::frame::Frame;
use canhazdb_core::internal::{Change, InternalRequest, INTERNAL_COMMAND};
use canhazdb_core::message::{CollectionId, LockOptions, MessageError, Origin, ReadOptions, Reply, Request};
use canhazdb_core::notify::{notify_path, Method};
use canhazdb_core::protocol::{Code, Command, LockStrategy, Status};
use serde_json::Value;

use super::connection::{Connection, Role};
use super::{metrics, system, Node};
use crate::cluster::coordinator::{self, CoordinatorError};
use crate::cluster::internal;
use crate::locks::lease::WriteGuard;
use crate::locks::{LockFailure, Wait};
use crate::storage::StorageError;

/// A failed request: the status and message of its reply.
struct Failure(Status, Option<String>);

impl Failure {
    fn bad_request(message: impl ToString) -> Self {
        Failure(Status::BadRequest, Some(message.to_string()))
    }

    fn server_error(message: impl ToString) -> Self {
        Failure(Status::ServerError, Some(message.to_string()))
    }
}

impl From<MessageError> for Failure {
    fn from(error: MessageError) -> Self {
        Failure::bad_request(error)
    }
}

impl From<StorageError> for Failure {
    fn from(error: StorageError) -> Self {
        if error.is_bad_input() {
            return Failure::bad_request(error);
        }
        tracing::error!(%error, "storage failed");
        Failure::server_error(error)
    }
}

impl From<CoordinatorError> for Failure {
    fn from(error: CoordinatorError) -> Self {
        match error {
            CoordinatorError::BadRequest(message) => Failure::bad_request(message),
            CoordinatorError::Unavailable(message) => Failure::server_error(message),
            CoordinatorError::Storage(error) => error.into(),
        }
    }
}

impl From<LockFailure> for Failure {
    fn from(error: LockFailure) -> Self {
        Failure::server_error(error)
    }
}

type Outcome = Result<Reply, Failure>;

/// A request's reply frame, and the collection lock its write held.
pub struct Handled {
    pub reply: Bytes,
    /// To be finished once the reply is queued, so the client hears back
    /// before anyone waiting is granted the lock.
    pub lease: Option<WriteGuard>,
}

/// A request's reply (its status always set), and the collection lock its
/// write held, to be finished as [`Handled::lease`] says.
pub struct Answered {
    pub reply: Reply,
    pub lease: Option<WriteGuard>,
}

impl Answered {
    pub fn status(&self) -> Status {
        self.reply.status.unwrap_or(Status::ServerError)
    }
}

/// The reply frame for `frame`.
pub async fn handle(node: &Arc<Node>, connection: &Connection, frame: Frame) -> Handled {
    let answered = answer(node, connection, &frame).await;
    let status = answered.status();
    Handled {
        reply: Frame::new(frame.id, status.as_u8(), answered.reply.encode_payload()).to_bytes(),
        lease: answered.lease,
    }
}

/// The reply to `frame`, whatever the transport that brought it (frames
/// from TCP and WebSocket sessions, requests of the HTTP port). Every
/// request's count and latency are recorded here, and only here.
pub async fn answer(node: &Arc<Node>, connection: &Connection, frame: &Frame) -> Answered {
    let in_flight = metrics::RequestInFlight::start(frame.command);
    let mut lease = None;
    let mut reply = match outcome(node, connection, frame, &mut lease).await {
        Ok(reply) => reply,
        Err(Failure(status, Some(message))) => Reply::error(status, message),
        Err(Failure(status, None)) => Reply::new(status),
    };
    let status = *reply.status.get_or_insert(Status::ServerError);
    in_flight.finish(status);
    Answered { reply, lease }
}

async fn outcome(
    node: &Arc<Node>,
    connection: &Connection,
    frame: &Frame,
    lease: &mut Option<WriteGuard>,
) -> Outcome {
    let from_node = connection.role == Role::Node;
    if frame.command == INTERNAL_COMMAND {
        // Node-to-node traffic from anyone but a node is an unknown command
        // (spec section 7): nothing of it is even decoded.
        if !from_node {
            return Err(Failure(Status::NotFound, None));
        }
        return answer_internal(node, &frame.payload).await;
    }
    let command = match Code::from(frame.command) {
        Code::Command(command) if !matches!(command, Command::Notify | Command::Ready) => command,
        _ => return Err(Failure(Status::NotFound, None)),
    };
    let mut envelope = Request::decode(command, &frame.payload)?;
    if !from_node {
        match envelope.origin {
            Origin::Internal => return Err(Failure(Status::NotFound, None)),
            // A client cannot make itself a system request either: the
            // flag would skip the health check.
            Origin::System => envelope.origin = Origin::External,
            Origin::External => {}
        }
    }
    // INFO always works; so does giving back a lock this connection holds
    // (a node that is repairing may be waiting for exactly that lock).
    let always_served = match &envelope.request {
        Request::Info => true,
        Request::Unlock { lock_id } => node.locks.is_owned_by(lock_id, &connection.owner),
        _ => false,
    };
    if envelope.origin == Origin::External && !always_served && !node.health().is_healthy() {
        return Err(Failure(Status::ServerUnhealthy, None));
    }
    match envelope.request {
        Request::Info => Ok(info(node)),
        Request::Get { collection, read } => get(node, &collection, &read).await,
        Request::Count { collection, query } => count(node, &collection, query).await,
        Request::Post {
            collection,
            document,
            lock,
        } => {
            *lease = wait_for_lock(node, &collection, &lock).await?;
            let document = coordinator::post(&node.cluster, collection.as_str(), document).await?;
            let id = document.get("id").and_then(Value::as_str).unwrap_or_default();
            coordinator::publish(
                &node.cluster,
                vec![notify_path(Method::Post, collection.as_str(), id)],
            );
            Ok(Reply::with_data(Status::Created, document))
        }
        Request::Put {
            collection,
            document,
            query,
            lock,
        } => update(node, &collection, query, &lock, Change::Replace(document), lease).await,
        Request::Patch {
            collection,
            patch,
            query,
            lock,
        } => update(node, &collection, query, &lock, Change::Merge(patch), lease).await,
        Request::Delete {
            collection,
            query,
            lock,
        } => update(node, &collection, query, &lock, Change::Delete, lease).await,
        Request::Lock { key } => lock(node, connection, &key).await,
        Request::Unlock { lock_id } => match node.locks.unlock(&lock_id, &connection.owner).await {
            Ok(()) => Ok(Reply::with_lock_id(lock_id)),
            Err(LockFailure::Table(_)) => Err(Failure(
                Status::NotFound,
                Some(format!("this connection holds no lock {lock_id:?}")),
            )),
            Err(other) => Err(other.into()),
        },
        Request::NotifyOn { pattern } => {
            node.notify
                .register(connection.id, &pattern, &connection.outlet)
                .map_err(Failure::bad_request)?;
            Ok(Reply::new(Status::Ok))
        }
        Request::NotifyOff { pattern } => {
            node.notify.unregister(connection.id, &pattern);
            Ok(Reply::new(Status::Ok))
        }
    }
}

async fn answer_internal(node: &Arc<Node>, payload: &[u8]) -> Outcome {
    let Some(request) = InternalRequest::decode_payload(payload)? else {
        return Err(Failure(Status::NotFound, None));
    };
    match internal::handle(&node.cluster, request).await {
        Ok(reply) => Ok(reply.into_reply()),
        Err(failure) if failure.bad_request => Err(Failure::bad_request(failure.message)),
        Err(failure) => Err(Failure::server_error(failure.message)),
    }
}

fn info(node: &Node) -> Reply {
    let nodes: Vec<Value> = node
        .cluster
        .view
        .node_views(node.health().is_healthy())
        .into_iter()
        .map(|view| {
            let (host, port) = super::split_address(&view.member.address);
            serde_json::json!({"host": host, "port": port})
        })
        .collect();
    let data = serde_json::json!({
        "nodeName": node.name,
        "status": node.status_text(),
        "nodes": nodes,
    });
    Reply::with_data(Status::Ok, data)
}

async fn get(node: &Arc<Node>, collection: &CollectionId, read: &ReadOptions) -> Outcome {
    if collection.is_system() {
        let selection = read.parse()?;
        let documents = system::documents(node, collection.as_str())
            .await?
            .unwrap_or_default();
        return Ok(Reply::with_data(
            Status::Ok,
            Value::Array(system::select(documents, &selection)),
        ));
    }
    let documents = coordinator::get(&node.cluster, collection.as_str(), read).await?;
    Ok(Reply::with_data(Status::Ok, Value::Array(documents)))
}

async fn count(node: &Arc<Node>, collection: &CollectionId, query: Option<Value>) -> Outcome {
    if collection.is_system() {
        let query = ReadOptions::with_query(query).parse_query()?;
        let documents = system::documents(node, collection.as_str())
            .await?
            .unwrap_or_default();
        let count = documents.iter().filter(|d| query.matches(d)).count();
        return Ok(Reply::with_data(Status::Ok, Value::from(count)));
    }
    let count = coordinator::count(&node.cluster, collection.as_str(), query).await?;
    Ok(Reply::with_data(Status::Ok, Value::from(count)))
}

/// A POST takes no lock of its own while the collection is free. While
/// someone else holds the collection's lock, it fails at once
/// (LOCK_STRATEGY_FAIL) or waits in line for the lock like every other
/// write, first come first served, holding it while it runs.
async fn wait_for_lock(
    node: &Arc<Node>,
    collection: &CollectionId,
    lock: &LockOptions,
) -> Result<Option<WriteGuard>, Failure> {
    let key = collection.as_str();
    // A lease of this node's own whose writes are answered counts as gone.
    let releasing = |lock_id: &str| node.write_leases.is_releasing(lock_id);
    if node
        .locks
        .permits_write_ignoring(key, lock.lock_id.as_deref(), releasing)
    {
        return Ok(None);
    }
    if lock.strategy == LockStrategy::Fail {
        return Err(locked(collection));
    }
    let one_at_a_time = !node.cluster.view.is_alone();
    let lease = node.write_leases.enter(key, one_at_a_time, false);
    Ok(unless_in_minority(node, lease).await??)
}

fn locked(collection: &CollectionId) -> Failure {
    Failure(
        Status::Locked,
        Some(format!("collection \"{collection}\" is locked")),
    )
}

/// PUT, PATCH and DELETE: each takes the collection's lock for its own
/// duration unless it carries the holder's id (left in `lease`, released
/// once the reply is on its way).
async fn update(
    node: &Arc<Node>,
    collection: &CollectionId,
    query: Option<Value>,
    lock: &LockOptions,
    change: Change,
    lease: &mut Option<WriteGuard>,
) -> Outcome {
    // Validate before waiting for a lock.
    ReadOptions::with_query(query.clone()).parse_query()?;
    let key = collection.as_str();
    *lease = if node.locks.is_held_by(key, lock.lock_id.as_deref()) {
        None
    } else {
        let one_at_a_time = !node.cluster.view.is_alone();
        let fail_if_locked = lock.strategy == LockStrategy::Fail;
        let lease = node.write_leases.enter(key, one_at_a_time, fail_if_locked);
        let lease = unless_in_minority(node, lease).await??;
        Some(lease.ok_or_else(|| locked(collection))?)
    };
    let method = match change {
        Change::Replace(_) => Method::Put,
        Change::Merge(_) => Method::Patch,
        Change::Delete => Method::Delete,
    };
    tracing::debug!(key, "coordinating an update");
    // The lock the write runs under fences it on every replica.
    let lock_id = match lease {
        Some(lease) => lease.lock_id().to_owned(),
        None => lock.lock_id.clone().unwrap_or_default(),
    };
    let ids = coordinator::update(&node.cluster, key, query, change, &lock_id).await?;
    coordinator::publish(
        &node.cluster,
        ids.iter().map(|id| notify_path(method, key, id)).collect(),
    );
    Ok(Reply::with_data(
        Status::Ok,
        Value::Array(ids.into_iter().map(Value::String).collect()),
    ))
}

async fn lock(node: &Node, connection: &Connection, key: &str) -> Outcome {
    if connection.outlet.close.is_cancelled() {
        return Err(Failure(Status::ServerClosed, None));
    }
    let entry = crate::locks::new_entry(key, &connection.owner);
    let lock_id = entry.id.clone();
    tracing::debug!(id = entry.id, key, connection = connection.id, "LOCK requested");
    let mut gave_up = None;
    let give_up = async {
        gave_up = Some(must_give_up(node).await);
    };
    let entry = match node.locks.acquire_unless(entry, give_up).await {
        Ok(Wait::Granted(entry)) => {
            tracing::debug!(id = entry.id, "LOCK granted");
            entry
        }
        Ok(Wait::GaveUp(entry)) => {
            tracing::debug!(id = entry.id, "LOCK given up: no majority, or stopping");
            // In a minority nothing is granted, and the majority drops this
            // node's locks once it has been silent a while: fail fast
            // instead of leaving the client waiting for the heal. The
            // entry goes as soon as a majority is back (or, when the node
            // stops, when it starts again).
            node.locks.withdraw(entry.id);
            return Err(gave_up.unwrap_or(Failure(Status::ServerUnhealthy, None)));
        }
        Err(error) => {
            tracing::debug!(%error, id = lock_id, "LOCK failed");
            if let LockFailure::Log(_) = error {
                // The acquire may have been applied all the same: a lock
                // nobody knows of would block the key for as long as this
                // connection lives.
                node.locks.withdraw(lock_id);
            }
            return Err(Failure(Status::ServerClosed, Some(error.to_string())));
        }
    };
    if connection.outlet.close.is_cancelled() {
        // The connection closed while this LOCK waited: nobody could unlock it.
        let _ = node.locks.release(&entry.id).await;
        return Err(Failure(Status::ServerClosed, None));
    }
    Ok(Reply::with_lock_id(entry.id))
}

/// Waits for `wait` (a write waiting its turn for a collection's lock), but
/// answers STATUS_SERVER_UNHEALTHY as soon as this node is in a minority
/// (nothing is granted there until the partition heals), and
/// STATUS_SERVER_CLOSED once it stops (a stop must not wait for grants).
/// Dropping the wait leaves its place in the queue, so the refused write
/// changed nothing.
async fn unless_in_minority<T>(
    node: &Node,
    wait: impl std::future::Future<Output = T>,
) -> Result<T, Failure> {
    tokio::select! {
        done = wait => Ok(done),
        failure = must_give_up(node) => Err(failure),
    }
}

/// Resolves, with the answer to give, once a wait for a lock must end
/// without it: the node lost its majority, or it is stopping.
async fn must_give_up(node: &Node) -> Failure {
    tokio::select! {
        biased;
        () = node.shutdown.cancelled() => Failure(Status::ServerClosed, None),
        () = lost_majority(node) => Failure(Status::ServerUnhealthy, None),
    }
}

/// Resolves once this node no longer sees a majority of the cluster.
async fn lost_majority(node: &Node) {
    const POLL: std::time::Duration = std::time::Duration::from_millis(100);
    loop {
        if let Some(canhazdb_core::health::UnhealthyReason::NoMajority { .. }) = node.health().reason() {
            return;
        }
        tokio::time::sleep(POLL).await;
    }
}
