//! Delivers notify paths to the connections whose patterns match them.

use std::collections::HashMap;
use std::sync::{Mutex, MutexGuard};

use bytes::Bytes;
use canhazdb_core::frame::Frame;
use canhazdb_core::message::Reply;
use canhazdb_core::notify::{NotifyError, NotifyRegistry};
use canhazdb_core::protocol::{Command, Status, PUSH_ID};
use serde_json::Value;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use super::connection::ConnectionId;
use crate::cluster::LocalSubscribers;

/// Where a connection's pushed frames go, and how to close it when it cannot
/// keep up.
#[derive(Clone)]
pub struct Outlet {
    pub frames: mpsc::Sender<Bytes>,
    pub close: CancellationToken,
}

#[derive(Default)]
struct Inner {
    registry: NotifyRegistry<ConnectionId>,
    outlets: HashMap<ConnectionId, Outlet>,
}

/// Notify registrations of every connection of this node.
#[derive(Default)]
pub struct NotifyHub {
    inner: Mutex<Inner>,
}

impl NotifyHub {
    fn inner(&self) -> MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// NOTIFY_ON for `connection`.
    pub fn register(
        &self,
        connection: ConnectionId,
        pattern: &str,
        outlet: &Outlet,
    ) -> Result<(), NotifyError> {
        let mut inner = self.inner();
        inner.registry.register(connection, pattern)?;
        inner.outlets.entry(connection).or_insert_with(|| outlet.clone());
        Ok(())
    }

    /// NOTIFY_OFF for `connection`.
    pub fn unregister(&self, connection: ConnectionId, pattern: &str) {
        let mut inner = self.inner();
        inner.registry.unregister(&connection, pattern);
        if inner.registry.patterns_of(&connection).next().is_none() {
            inner.outlets.remove(&connection);
        }
    }

    /// Forgets every registration of a closed connection.
    pub fn remove_connection(&self, connection: ConnectionId) {
        let mut inner = self.inner();
        inner.registry.remove_subscriber(&connection);
        inner.outlets.remove(&connection);
    }
}

impl LocalSubscribers for NotifyHub {
    /// Pushes `path` once to every connection with a matching pattern.
    ///
    /// A connection whose outgoing queue is full is not reading its socket;
    /// rather than buffer without bound or drop notifications silently, it is
    /// closed (like Redis' client output buffer limit).
    fn deliver(&self, path: &str) {
        let inner = self.inner();
        if inner.registry.is_empty() {
            return;
        }
        let subscribers = inner.registry.subscribers_matching(path);
        if subscribers.is_empty() {
            return;
        }
        let payload = Reply::with_data(Status::Ok, Value::String(path.to_owned())).encode_payload();
        let frame = Frame::new(PUSH_ID, Command::Notify.as_u8(), payload).to_bytes();
        for connection in subscribers {
            if let Some(outlet) = inner.outlets.get(&connection) {
                if outlet.frames.try_send(frame.clone()).is_err() {
                    tracing::warn!(
                        connection,
                        "closing a connection that does not read its notifications"
                    );
                    outlet.close.cancel();
                } else {
                    super::metrics::notify_delivered();
                }
            }
        }
    }

    fn registrations(&self) -> Vec<(ConnectionId, String)> {
        let inner = self.inner();
        inner
            .registry
            .patterns()
            .map(|(connection, pattern)| (*connection, pattern.to_owned()))
            .collect()
    }
}
