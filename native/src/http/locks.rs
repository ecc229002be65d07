//! Locks over HTTP: `POST /locks` `{"key":…}` takes one (LOCK, answered
//! once granted), `DELETE /locks/{id}` gives it back (UNLOCK), and
//! `POST /locks/{id}/renew` extends its lease. A write carries the id in
//! its `Lock-Id` header.
//!
//! On the binary protocol a lock belongs to a connection and goes when the
//! connection closes. HTTP has no such connection, so each HTTP lock gets a
//! connection of its own, held by a lease: unless renewed within the lease
//! (`--http-lock-lease`), the connection is closed as a TCP one would be,
//! which releases the lock cluster-wide.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, post};
use axum::{Json, Router};
use bytes::Bytes;
use canhazdb_core::protocol::{Command, Key, Status};
use serde::Deserialize;
use serde_json::{json, Value};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio::time::Instant;

use super::call::{self, Payload};
use super::errors::ApiError;
use super::Http;
use crate::node::connection::Connection;
use crate::node::Node;

/// HTTP locks (held or waiting) one node keeps at most: each is a lock
/// entry of the cluster's and a timer.
pub const MAX_HTTP_LOCKS: usize = 1024;

/// A lock taken over HTTP, and when its lease runs out.
struct Leased {
    connection: Arc<Connection>,
    expires: Instant,
    _slot: OwnedSemaphorePermit,
}

/// This node's HTTP locks by lock id.
pub struct HttpLocks {
    lease: Duration,
    slots: Arc<Semaphore>,
    leased: Mutex<HashMap<String, Leased>>,
}

impl HttpLocks {
    pub fn new(lease: Duration) -> HttpLocks {
        HttpLocks {
            lease,
            slots: Arc::new(Semaphore::new(MAX_HTTP_LOCKS)),
            leased: Mutex::default(),
        }
    }

    fn leased(&self) -> MutexGuard<'_, HashMap<String, Leased>> {
        self.leased
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Takes `id` out of the table: its lease is over.
    fn take(&self, id: &str) -> Option<Leased> {
        self.leased().remove(id)
    }
}

pub fn routes() -> Router<Arc<Http>> {
    Router::new()
        .route("/locks", post(lock))
        .route("/locks/{id}", delete(unlock))
        .route("/locks/{id}/renew", post(renew))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct LockBody {
    key: String,
}

/// The connection of a LOCK still waiting: closed (its queued entry
/// withdrawn) if the HTTP client hangs up before the grant.
struct Waiting<'a> {
    node: &'a Arc<Node>,
    connection: Option<Arc<Connection>>,
}

impl Drop for Waiting<'_> {
    fn drop(&mut self) {
        if let Some(connection) = self.connection.take() {
            call::close(self.node, connection);
        }
    }
}

fn lease_reply(id: &str, http: &Http) -> Response {
    Json(json!({"lockId": id, "leaseSeconds": http.locks.lease.as_secs_f64()})).into_response()
}

async fn lock(State(http): State<Arc<Http>>, body: Bytes) -> Result<Response, ApiError> {
    let body: LockBody = serde_json::from_slice(&body)
        .map_err(|error| ApiError::bad_request(format!("the body must be {{\"key\": \"…\"}}: {error}")))?;
    let slot = http.locks.slots.clone().try_acquire_owned().map_err(|_| {
        ApiError::new(
            Status::ServerError,
            format!("this node holds {MAX_HTTP_LOCKS} HTTP locks already"),
        )
        .with_http(StatusCode::TOO_MANY_REQUESTS)
    })?;
    let node = &http.node;
    let connection = call::one_off(node);
    let mut waiting = Waiting {
        node,
        connection: Some(connection.clone()),
    };
    let mut payload = Payload::new();
    payload.insert(Key::LockKey.as_str().to_owned(), Value::String(body.key));
    let reply = call::run(node, connection.clone(), Command::Lock, payload).await?;
    let id = reply
        .lock_id
        .ok_or_else(|| ApiError::new(Status::ServerError, "LOCK was granted without a lock id"))?;
    waiting.connection = None;
    http.locks.leased().insert(
        id.clone(),
        Leased {
            connection,
            expires: Instant::now() + http.locks.lease,
            _slot: slot,
        },
    );
    node.tasks.spawn(expire(http.clone(), id.clone()));
    Ok(lease_reply(&id, &http))
}

/// Closes the lock's connection once its lease has run out unrenewed.
async fn expire(http: Arc<Http>, id: String) {
    loop {
        let expires = match http.locks.leased().get(&id) {
            Some(leased) => leased.expires,
            None => return, // unlocked
        };
        if Instant::now() >= expires {
            break;
        }
        tokio::select! {
            _ = http.node.shutdown.cancelled() => return,
            _ = tokio::time::sleep_until(expires) => {}
        }
    }
    if let Some(leased) = http.locks.take(&id) {
        tracing::info!(lock = id, "HTTP lock lease expired: releasing the lock");
        http.node.connection_closed(&leased.connection).await;
    }
}

fn no_such_lock(id: &str) -> ApiError {
    ApiError::not_found(format!("no HTTP lock {id:?} is held on this node"))
}

async fn unlock(State(http): State<Arc<Http>>, Path(id): Path<String>) -> Result<Response, ApiError> {
    let leased = http.locks.take(&id).ok_or_else(|| no_such_lock(&id))?;
    let mut payload = Payload::new();
    payload.insert(Key::LockId.as_str().to_owned(), Value::String(id.clone()));
    let unlocked = call::run(&http.node, leased.connection.clone(), Command::Unlock, payload).await;
    // Whatever UNLOCK said, the lease is over: nothing of it may stay behind.
    call::close(&http.node, leased.connection);
    unlocked?;
    Ok(Json(json!({"lockId": id})).into_response())
}

async fn renew(State(http): State<Arc<Http>>, Path(id): Path<String>) -> Result<Response, ApiError> {
    let node = &http.node;
    let mut leased = http.locks.leased();
    let entry = leased.get_mut(&id).ok_or_else(|| no_such_lock(&id))?;
    if !node.locks.is_owned_by(&id, &entry.connection.owner) {
        // Released meanwhile by the cluster (this node was cut off, say).
        if let Some(gone) = leased.remove(&id) {
            call::close(node, gone.connection);
        }
        return Err(no_such_lock(&id));
    }
    entry.expires = Instant::now() + http.locks.lease;
    drop(leased);
    Ok(lease_reply(&id, &http))
}
