//! An async Rust client for canhazdb over TCP (tokio).
//!
//! A [`Client`] is a cheap, cloneable handle to one connection. Every method
//! takes `&self` and may be called from many tasks at once: requests are
//! pipelined on the one connection (up to 65,533 in flight) and each reply is
//! matched to its request by correlation id, so replies may arrive in any
//! order.
//!
//! ```no_run
//! # async fn demo() -> Result<(), canhazdb::client::Error> {
//! use canhazdb::client::{Client, GetOptions, WriteOptions};
//! use serde_json::json;
//! use std::time::Duration;
//!
//! let client = Client::connect_ready("127.0.0.1:7060", Duration::from_secs(5)).await?;
//! let stored = client.post("tests", json!({"a": 1}), WriteOptions::default()).await?;
//! let found = client.get("tests", GetOptions::query(json!({"a": 1}))).await?;
//! let mut changes = client.on("^POST:/tests/").await?;
//! let next = changes.recv().await;
//! # Ok(()) }
//! ```
//!
//! Modules: [`driver`] is the task that owns the socket and every piece of
//! connection state (pending replies, subscriptions); handles talk to it
//! only through [`command`]s. [`options`] turns call arguments into
//! requests; [`subscription`] hands a pattern's [`notification`]s to the
//! application; [`error`] is the error type.

mod command;
mod driver;
mod error;
mod notification;
mod options;
mod subscription;

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use canhazdb_core::client::{Client as CoreClient, Response};
use canhazdb_core::message::Request;
use rustls_pki_types::ServerName;
use serde_json::Value;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::{TcpStream, ToSocketAddrs};
use tokio::sync::{mpsc, oneshot};

pub use canhazdb_core::protocol::{LockStrategy, Status};
pub use error::Error;
pub use notification::Notification;
pub use options::{GetOptions, WriteOptions};
pub use tokio_rustls::TlsConnector;

pub use crate::tls::ClientTls;

/// How long a TLS handshake may take.
const TLS_HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
pub use subscription::Subscription;

use command::{Command, ConnectionState, ReplyTo};
use driver::Driver;

/// A handle to one connection; clone it freely. The connection closes when
/// [`close`](Client::close) is called, when the server closes it, or when
/// the last handle is dropped.
#[derive(Clone, Debug)]
pub struct Client {
    commands: mpsc::UnboundedSender<Command>,
    state: Arc<ConnectionState>,
}

impl Client {
    /// Connects over TCP (with TCP_NODELAY: requests are small and latency
    /// matters). Does not wait for the server's READY; see [`wait_ready`](Client::wait_ready).
    pub async fn connect(addr: impl ToSocketAddrs) -> Result<Client, Error> {
        let stream = TcpStream::connect(addr).await?;
        Client::over_tcp(stream, None).await
    }

    /// Connects over TLS with `connector` (from [`ClientTls`] for a client,
    /// or a node's own): the server's certificate must chain to the
    /// connector's CA and name the host of `addr` (`host:port`); the
    /// connector's client certificate is presented (the server requires one).
    pub async fn connect_tls(addr: &str, connector: &TlsConnector) -> Result<Client, Error> {
        let stream = TcpStream::connect(addr).await?;
        Client::over_tcp(stream, Some((addr, connector))).await
    }

    /// Serves a TCP connection made by the caller (who may have set socket
    /// options of its own): sets TCP_NODELAY and, given `(addr, connector)`,
    /// does the TLS handshake for the host of `addr` first, as
    /// [`connect_tls`](Client::connect_tls) does.
    pub async fn over_tcp(stream: TcpStream, tls: Option<(&str, &TlsConnector)>) -> Result<Client, Error> {
        stream.set_nodelay(true)?;
        let Some((addr, connector)) = tls else {
            return Ok(Client::from_stream(stream));
        };
        let host = match addr.rsplit_once(':') {
            Some((host, _port)) => host.trim_matches(['[', ']']),
            None => addr,
        };
        let name = ServerName::try_from(host.to_owned())
            .map_err(|_| Error::Tls(format!("{host:?} is not a host name or IP address")))?;
        let stream = crate::tls::connect(connector, name, stream, TLS_HANDSHAKE_TIMEOUT)
            .await
            .map_err(|error| Error::Tls(error.to_string()))?;
        Ok(Client::from_stream(stream))
    }

    /// [`connect`](Client::connect), or [`connect_tls`](Client::connect_tls) when `tls` is given.
    pub async fn connect_with(addr: &str, tls: Option<&TlsConnector>) -> Result<Client, Error> {
        match tls {
            Some(connector) => Client::connect_tls(addr, connector).await,
            None => Client::connect(addr).await,
        }
    }

    /// Connects and waits until the server sent READY (it does once it is
    /// healthy), for at most `timeout` in all.
    pub async fn connect_ready(addr: impl ToSocketAddrs, timeout: Duration) -> Result<Client, Error> {
        let connect = async {
            let client = Client::connect(addr).await?;
            client.wait_ready().await?;
            Ok(client)
        };
        tokio::time::timeout(timeout, connect)
            .await
            .map_err(|_| Error::Timeout)?
    }

    /// Serves an already connected stream. Must be called within a tokio
    /// runtime: it spawns the connection's driver task.
    pub fn from_stream<S>(stream: S) -> Client
    where
        S: AsyncRead + AsyncWrite + Send + Unpin + 'static,
    {
        let (commands, receiver) = mpsc::unbounded_channel();
        let state = Arc::new(ConnectionState::default());
        let driver = Driver::new(CoreClient::default(), receiver, state.clone());
        tokio::spawn(driver.run(stream));
        Client { commands, state }
    }

    /// Waits until the server has sent READY on this connection.
    pub async fn wait_ready(&self) -> Result<(), Error> {
        if self.is_ready() {
            return Ok(());
        }
        self.call(|reply| Command::WaitReady { reply }).await
    }

    /// Whether the server has sent READY on this connection.
    pub fn is_ready(&self) -> bool {
        self.state.ready.load(Ordering::Acquire)
    }

    /// Sends any request and returns its interpreted reply; the other
    /// methods are shorthands for this one.
    pub async fn request(&self, request: Request) -> Result<Response, Error> {
        self.call(|reply| Command::Request { request, reply }).await
    }

    /// Sends a frame with any command byte and payload and returns the reply's
    /// status byte and payload as they came, whatever the status. Nodes use
    /// this for their internal traffic.
    pub async fn request_raw(
        &self,
        command: u8,
        payload: bytes::Bytes,
    ) -> Result<(u8, canhazdb_core::message::Reply), Error> {
        let response = self
            .call(|reply| Command::RequestRaw {
                command,
                payload,
                reply,
            })
            .await?;
        match response {
            Response::Raw { code, reply } => Ok((code, reply)),
            other => Err(unexpected("raw request", other)),
        }
    }

    /// INFO: `{nodeName, status, nodes: [{host, port}]}`.
    pub async fn info(&self) -> Result<Value, Error> {
        match self.request(Request::Info).await? {
            Response::Info(info) => Ok(info),
            other => Err(unexpected("INFO", other)),
        }
    }

    /// POST: stores `document` (an object; its `id`, if any, a string) and
    /// returns it as stored, with its `id`.
    pub async fn post(
        &self,
        collection: &str,
        document: Value,
        options: WriteOptions,
    ) -> Result<Value, Error> {
        match self
            .request(options::post(collection, document, options)?)
            .await?
        {
            Response::Document(document) => Ok(document),
            other => Err(unexpected("POST", other)),
        }
    }

    /// GET: the matching documents.
    pub async fn get(&self, collection: &str, options: GetOptions) -> Result<Vec<Value>, Error> {
        match self.request(options::get(collection, options)?).await? {
            Response::Documents(documents) => Ok(documents),
            other => Err(unexpected("GET", other)),
        }
    }

    /// GET with LIMIT 1: the first matching document, if any.
    pub async fn get_one(&self, collection: &str, options: GetOptions) -> Result<Option<Value>, Error> {
        let options = GetOptions {
            limit: Some(1),
            ..options
        };
        Ok(self.get(collection, options).await?.into_iter().next())
    }

    /// COUNT: how many documents match `query` (all of them when `None`).
    pub async fn count(&self, collection: &str, query: Option<Value>) -> Result<u64, Error> {
        match self.request(options::count(collection, query)?).await? {
            Response::Count(count) => Ok(count),
            other => Err(unexpected("COUNT", other)),
        }
    }

    /// PUT: replaces each matching document with `document` (keeping its
    /// id); returns the ids replaced.
    pub async fn put(
        &self,
        collection: &str,
        document: Value,
        options: WriteOptions,
    ) -> Result<Vec<String>, Error> {
        self.ids("PUT", options::put(collection, document, options)?)
            .await
    }

    /// PATCH: merges the top-level keys of `patch` into each matching
    /// document; returns the ids changed.
    pub async fn patch(
        &self,
        collection: &str,
        patch: Value,
        options: WriteOptions,
    ) -> Result<Vec<String>, Error> {
        self.ids("PATCH", options::patch(collection, patch, options)?)
            .await
    }

    /// DELETE: removes the matching documents; returns their ids.
    pub async fn delete(&self, collection: &str, options: WriteOptions) -> Result<Vec<String>, Error> {
        self.ids("DELETE", options::delete(collection, options)?).await
    }

    /// LOCK: waits until the lock on `key` is granted; returns its lock id.
    /// The lock is released by [`unlock`](Client::unlock) or when this
    /// connection closes.
    pub async fn lock(&self, key: &str) -> Result<String, Error> {
        let request = Request::Lock { key: key.to_owned() };
        match self.request(request).await? {
            Response::LockId(lock_id) => Ok(lock_id),
            other => Err(unexpected("LOCK", other)),
        }
    }

    /// UNLOCK: releases a lock this connection holds; returns its id.
    pub async fn unlock(&self, lock_id: &str) -> Result<String, Error> {
        let request = Request::Unlock {
            lock_id: lock_id.to_owned(),
        };
        match self.request(request).await? {
            Response::LockId(lock_id) => Ok(lock_id),
            other => Err(unexpected("UNLOCK", other)),
        }
    }

    /// Subscribes to the notify paths matching the regex `pattern`
    /// (unanchored search). The first subscription of a pattern on this
    /// connection sends NOTIFY_ON and returns once the server accepted it;
    /// an invalid regex is [`Error::InvalidArgument`] without a round trip.
    pub async fn on(&self, pattern: &str) -> Result<Subscription, Error> {
        let handler = self.state.next_handler.fetch_add(1, Ordering::Relaxed);
        let (sender, notifications) = mpsc::unbounded_channel();
        self.call(|reply| Command::Subscribe {
            pattern: pattern.to_owned(),
            handler,
            notifications: sender,
            reply,
        })
        .await?;
        Ok(Subscription::new(
            pattern.to_owned(),
            handler,
            notifications,
            self.commands.downgrade(),
        ))
    }

    /// Unregisters `subscription`; when it was its pattern's last on this
    /// connection, returns once the server confirmed the NOTIFY_OFF.
    pub async fn off(&self, mut subscription: Subscription) -> Result<(), Error> {
        let Some((commands, pattern, handler)) = subscription.detach() else {
            return Ok(()); // Its connection is already gone, and with it the registration.
        };
        let (reply, outcome) = oneshot::channel();
        let unsubscribe = Command::Unsubscribe {
            pattern,
            handler,
            reply: Some(reply),
        };
        if commands.send(unsubscribe).is_err() {
            return Ok(());
        }
        outcome.await.unwrap_or(Ok(()))
    }

    /// Closes the connection and returns once it is closed. Requests still
    /// waiting fail with [`Error::Closed`]; so does every later call.
    pub async fn close(&self) {
        let (done, closed) = oneshot::channel();
        if self.commands.send(Command::Close { done }).is_ok() {
            let _ = closed.await;
        }
    }

    /// Whether the connection is closed.
    pub fn is_closed(&self) -> bool {
        self.state.closed.load(Ordering::Acquire) || self.commands.is_closed()
    }

    /// Sends a command built around a fresh oneshot and awaits its answer.
    async fn call<T>(&self, command: impl FnOnce(ReplyTo<T>) -> Command) -> Result<T, Error> {
        let (reply, outcome) = oneshot::channel();
        self.commands.send(command(reply)).map_err(|_| Error::Closed)?;
        // The driver drops the oneshot unanswered only if it ends abruptly.
        outcome.await.unwrap_or(Err(Error::Closed))
    }

    async fn ids(&self, command: &str, request: Request) -> Result<Vec<String>, Error> {
        match self.request(request).await? {
            Response::Ids(ids) => Ok(ids),
            other => Err(unexpected(command, other)),
        }
    }
}

fn unexpected(command: &str, response: Response) -> Error {
    Error::Protocol(format!("unexpected reply to {command}: {response:?}"))
}
