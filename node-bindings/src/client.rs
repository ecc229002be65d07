//! `createClient`: the native canhazdb client (`canhazdb::client`).
//!
//! Requests run on napi's tokio runtime and settle their promises on the JS
//! thread. `on(pattern, handler)` subscribes through the Rust client; a task
//! per subscription forwards each notification to a thread-safe function
//! that calls the handler on the JS thread. Those thread-safe functions are
//! weak (they never keep the process alive); an open client keeps the
//! process alive through its [`KeepAlive`], like a connected socket, until
//! `close()` (or the server closing the connection) releases it.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use canhazdb::client::{
    Client as NativeClient, ClientTls, Error as ClientError, GetOptions as NativeGetOptions, LockStrategy,
    Notification, Subscription, TlsConnector, WriteOptions as NativeWriteOptions,
};
use napi::bindgen_prelude::{Buffer, Either, FnArgs, Function, FunctionRef, PromiseRaw, Unknown};
use napi::threadsafe_function::{ThreadsafeCallContext, ThreadsafeFunction, ThreadsafeFunctionCallMode};
use napi::{Env, JsValue, ValueType};
use napi_derive::napi;
use serde_json::Value;
use tokio::sync::oneshot;

use canhazdb_core::query::json_type_name;

use crate::convert;
use crate::error::Failure;
use crate::keepalive::KeepAlive;
use crate::{settle, settle_value};

/// How often a client checks whether the server closed its connection, to
/// stop keeping the process alive.
const CLOSED_POLL: Duration = Duration::from_millis(200);
/// How long the first connection waits for READY before reconnecting.
const FIRST_READY_WAIT: Duration = Duration::from_millis(250);
/// The longest wait for READY on one connection.
const LONGEST_READY_WAIT: Duration = Duration::from_secs(2);
/// Default for `createClient({ timeout })`, in milliseconds.
const DEFAULT_CONNECT_TIMEOUT_MS: u32 = 10_000;

/// Options of `createClient` (all optional).
#[napi(object)]
pub struct ClientOptions {
    /// The server's address. Default `"127.0.0.1"`.
    pub host: Option<String>,
    /// The server's port. Default 7060.
    pub port: Option<u32>,
    /// Milliseconds to wait for the connection and the server's READY. Default 10000.
    pub timeout: Option<u32>,
    /// The CA certificate(s) (PEM) the server's certificate must chain to.
    /// With `ca` the client connects over TLS and checks that the server's
    /// certificate names `host`; without it, plain TCP.
    #[napi(ts_type = "Pem")]
    pub ca: Option<Either<String, Buffer>>,
    /// This client's certificate (PEM), signed by the cluster's CA; a
    /// server with TLS requires one. Needs `key` (and `ca`).
    #[napi(ts_type = "Pem")]
    pub cert: Option<Either<String, Buffer>>,
    /// The private key (PEM) of `cert`.
    #[napi(ts_type = "Pem")]
    pub key: Option<Either<String, Buffer>>,
}

/// Options of `get` and `getOne`.
#[napi(object)]
pub struct GetOptions<'env> {
    /// Which documents (MongoDB-style); all of them when left out.
    #[napi(ts_type = "Query")]
    pub query: Option<Unknown<'env>>,
    /// Field names (dotted paths allowed) to return; `id` always comes back.
    pub fields: Option<Vec<String>>,
    /// `asc(field)` / `desc(field)` terms, e.g. `'desc(score)'` or `['asc(a)', 'desc(b)']`.
    #[napi(ts_type = "string | string[]")]
    pub order: Option<Either<String, Vec<String>>>,
    /// At most this many documents (a positive integer).
    pub limit: Option<f64>,
}

/// Options of `count`.
#[napi(object)]
pub struct CountOptions<'env> {
    /// Which documents to count; all of them when left out.
    #[napi(ts_type = "Query")]
    pub query: Option<Unknown<'env>>,
}

/// Options of `post`, `put`, `patch` and `delete`.
#[napi(object)]
pub struct WriteOptions<'env> {
    /// Which documents `put`, `patch` and `delete` change; all of them when
    /// left out. `post` ignores it.
    #[napi(ts_type = "Query")]
    pub query: Option<Unknown<'env>>,
    /// The id of a lock this client holds on the collection (from `lock`).
    pub lock_id: Option<String>,
    /// When someone else holds the collection's lock: `'wait'` (default,
    /// `LOCK_STRATEGY_WAIT`) or `'fail'` at once with STATUS_LOCKED
    /// (`LOCK_STRATEGY_FAIL`).
    #[napi(ts_type = "LockStrategy")]
    pub lock_strategy: Option<Unknown<'env>>,
}

/// A connection to a canhazdb server. Created by `createClient`.
///
/// Every method returns a promise. Failures reject with an `Error` that has
/// `status` (the protocol status, e.g. 121 for a bad request, 127 when
/// locked) and `code` (`'STATUS_LOCKED'`, `'ECONNREFUSED'`, ...).
#[napi]
pub struct Client {
    inner: NativeClient,
    host: String,
    port: u32,
    keep_alive: KeepAlive,
    handlers: Vec<Handler>,
}

/// One `on(pattern, handler)` registration.
struct Handler {
    pattern: String,
    /// To find the registration again in `off(pattern, handler)`.
    function: Arc<FunctionRef<NotifyArgs, Unknown<'static>>>,
    /// Cleared (on the JS thread) by `off` and `close`: notifications
    /// already queued for the handler are then dropped, not delivered.
    active: Arc<AtomicBool>,
    /// Tells the subscription's task to unsubscribe and report back.
    stop: Option<oneshot::Sender<StopReply>>,
}

type NotifyArgs = FnArgs<(String, String, String, String)>;

#[napi]
impl Client {
    /// The server address this client connected to.
    #[napi(getter)]
    pub fn host(&self) -> String {
        self.host.clone()
    }

    /// The server port this client connected to.
    #[napi(getter)]
    pub fn port(&self) -> u32 {
        self.port
    }

    /// Whether the connection is closed (by `close()` or by the server).
    #[napi(getter)]
    pub fn closed(&self) -> bool {
        self.inner.is_closed()
    }

    /// Stores `document` in `collectionId` and resolves to it as stored,
    /// with its `id` (a new UUID unless the document had a string `id`).
    #[napi(ts_return_type = "Promise<Document>")]
    pub fn post<'env>(
        &self,
        env: &'env Env,
        collection_id: String,
        #[napi(ts_arg_type = "DocumentInput")] document: Unknown<'env>,
        options: Option<WriteOptions<'env>>,
    ) -> napi::Result<PromiseRaw<'env, Value>> {
        let client = self.inner.clone();
        let arguments = write_arguments(env, document, "document", options);
        settle_value(env, async move {
            let (document, options) = arguments?;
            Ok(client.post(&collection_id, document, options).await?)
        })
    }

    /// The documents of `collectionId` matching `options.query`, in
    /// `options.order`, at most `options.limit` of them.
    #[napi(ts_return_type = "Promise<Document[]>")]
    pub fn get<'env>(
        &self,
        env: &'env Env,
        collection_id: String,
        options: Option<GetOptions<'env>>,
    ) -> napi::Result<PromiseRaw<'env, Vec<Value>>> {
        let client = self.inner.clone();
        let options = get_options(env, options);
        settle_value(
            env,
            async move { Ok(client.get(&collection_id, options?).await?) },
        )
    }

    /// The first document matching `options` (as `get` with `limit: 1`), or `null`.
    #[napi(ts_return_type = "Promise<Document | null>")]
    pub fn get_one<'env>(
        &self,
        env: &'env Env,
        collection_id: String,
        options: Option<GetOptions<'env>>,
    ) -> napi::Result<PromiseRaw<'env, Option<Value>>> {
        let client = self.inner.clone();
        let options = get_options(env, options);
        settle_value(
            env,
            async move { Ok(client.get_one(&collection_id, options?).await?) },
        )
    }

    /// How many documents of `collectionId` match `options.query`.
    #[napi(ts_return_type = "Promise<number>")]
    pub fn count<'env>(
        &self,
        env: &'env Env,
        collection_id: String,
        options: Option<CountOptions<'env>>,
    ) -> napi::Result<PromiseRaw<'env, f64>> {
        let client = self.inner.clone();
        let query = match options {
            Some(options) => convert::to_object(env, options.query, "query"),
            None => Ok(None),
        };
        settle_value(env, async move {
            // Counts are far below 2^53.
            Ok(client.count(&collection_id, query?).await? as f64)
        })
    }

    /// Replaces every document matching `options.query` with `document`
    /// (each keeps its `id`); resolves to the ids replaced.
    #[napi(ts_return_type = "Promise<string[]>")]
    pub fn put<'env>(
        &self,
        env: &'env Env,
        collection_id: String,
        #[napi(ts_arg_type = "DocumentInput")] document: Unknown<'env>,
        options: Option<WriteOptions<'env>>,
    ) -> napi::Result<PromiseRaw<'env, Vec<String>>> {
        let client = self.inner.clone();
        let arguments = write_arguments(env, document, "document", options);
        settle_value(env, async move {
            let (document, options) = arguments?;
            Ok(client.put(&collection_id, document, options).await?)
        })
    }

    /// Merges the top-level fields of `patch` into every document matching
    /// `options.query`; resolves to the ids changed.
    #[napi(ts_return_type = "Promise<string[]>")]
    pub fn patch<'env>(
        &self,
        env: &'env Env,
        collection_id: String,
        #[napi(ts_arg_type = "DocumentInput")] patch: Unknown<'env>,
        options: Option<WriteOptions<'env>>,
    ) -> napi::Result<PromiseRaw<'env, Vec<String>>> {
        let client = self.inner.clone();
        let arguments = write_arguments(env, patch, "patch", options);
        settle_value(env, async move {
            let (patch, options) = arguments?;
            Ok(client.patch(&collection_id, patch, options).await?)
        })
    }

    /// Deletes every document matching `options.query` (all of the
    /// collection when left out); resolves to the ids deleted.
    #[napi(ts_return_type = "Promise<string[]>")]
    pub fn delete<'env>(
        &self,
        env: &'env Env,
        collection_id: String,
        options: Option<WriteOptions<'env>>,
    ) -> napi::Result<PromiseRaw<'env, Vec<String>>> {
        let client = self.inner.clone();
        let options = write_options(env, options);
        settle_value(
            env,
            async move { Ok(client.delete(&collection_id, options?).await?) },
        )
    }

    /// Waits until the lock on `key` (by convention a collection id) is
    /// granted and resolves to its lock id. Writes to that collection by
    /// anyone not passing the lock id wait (or fail, with
    /// `lockStrategy: 'fail'`) until `unlock`, or until this client closes.
    #[napi(ts_return_type = "Promise<string>")]
    pub fn lock<'env>(&self, env: &'env Env, key: String) -> napi::Result<PromiseRaw<'env, String>> {
        let client = self.inner.clone();
        settle_value(env, async move { Ok(client.lock(&key).await?) })
    }

    /// Releases a lock this client holds; resolves to its id. Rejects with
    /// status 122 (NOT_FOUND) if this client holds no such lock.
    #[napi(ts_return_type = "Promise<string>")]
    pub fn unlock<'env>(&self, env: &'env Env, lock_id: String) -> napi::Result<PromiseRaw<'env, String>> {
        let client = self.inner.clone();
        settle_value(env, async move { Ok(client.unlock(&lock_id).await?) })
    }

    /// Calls `handler(path, collectionId, documentId, pattern)` for every
    /// change whose path (`METHOD:/collection/documentId`, e.g.
    /// `POST:/users/1f0…`) matches the regex `pattern` (unanchored), made by
    /// anyone anywhere in the cluster. Resolves once the server accepted the
    /// pattern; rejects (status 121) for an invalid regex.
    #[napi(ts_return_type = "Promise<void>")]
    pub fn on<'env>(
        &mut self,
        env: &'env Env,
        pattern: String,
        #[napi(ts_arg_type = "NotifyHandler")] handler: Unknown<'env>,
    ) -> napi::Result<PromiseRaw<'env, ()>> {
        self.forget_ended_handlers();
        let function = Arc::new(as_function(handler)?.create_ref()?);
        let active = Arc::new(AtomicBool::new(true));
        let notify = notifier(env, function.clone(), active.clone())?;
        let (stop, stop_signal) = oneshot::channel();
        self.handlers.push(Handler {
            pattern: pattern.clone(),
            function,
            active,
            stop: Some(stop),
        });
        let client = self.inner.clone();
        settle_value(env, async move {
            let subscription = client.on(&pattern).await?;
            tokio::spawn(forward(client, subscription, notify, stop_signal));
            Ok(())
        })
    }

    /// Removes `handler` from `pattern` (every handler of `pattern` when
    /// `handler` is left out). No handler removed is called after this
    /// returns; the promise resolves once the server has been told, when it
    /// was the pattern's last handler.
    #[napi(ts_return_type = "Promise<void>")]
    pub fn off<'env>(
        &mut self,
        env: &'env Env,
        pattern: String,
        #[napi(ts_arg_type = "NotifyHandler")] handler: Option<Unknown<'env>>,
    ) -> napi::Result<PromiseRaw<'env, ()>> {
        self.forget_ended_handlers();
        let handler = handler
            .filter(|handler| !matches!(handler.get_type(), Ok(ValueType::Undefined | ValueType::Null)))
            .map(as_function)
            .transpose()?;
        let mut stops = Vec::new();
        let mut index = 0;
        while index < self.handlers.len() {
            let candidate = &self.handlers[index];
            let matches = candidate.pattern == pattern
                && match &handler {
                    None => true,
                    Some(handler) => {
                        same_value(env, candidate.function.borrow_back(env)?.raw(), handler.raw())?
                    }
                };
            if matches {
                let mut removed = self.handlers.remove(index);
                removed.active.store(false, Ordering::Release);
                stops.extend(removed.stop.take());
            } else {
                index += 1;
            }
        }
        settle_value(env, async move {
            for stop in stops {
                let (done, outcome) = oneshot::channel();
                if stop.send(done).is_ok() {
                    if let Ok(outcome) = outcome.await {
                        outcome?;
                    }
                }
            }
            Ok(())
        })
    }

    /// Closes the connection. Requests still waiting reject (code
    /// `ERR_CANHAZDB_CLOSED`), locks this client holds are released, no
    /// handler is called any more, and the client stops keeping the process
    /// alive.
    #[napi(ts_return_type = "Promise<void>")]
    pub fn close<'env>(&mut self, env: &'env Env) -> napi::Result<PromiseRaw<'env, ()>> {
        for handler in self.handlers.drain(..) {
            handler.active.store(false, Ordering::Release);
        }
        let client = self.inner.clone();
        let keep_alive = self.keep_alive.clone();
        settle_value(env, async move {
            client.close().await;
            keep_alive.close();
            Ok(())
        })
    }

    /// Lets the process exit while this client is still open (like `net.Socket#unref`).
    #[napi]
    pub fn unref(&self) {
        self.keep_alive.unref();
    }

    /// Undoes `unref()`: the open client keeps the process alive again.
    #[napi(js_name = "ref")]
    pub fn refer(&self, env: &Env) -> napi::Result<()> {
        if self.inner.is_closed() {
            return Ok(());
        }
        self.keep_alive.refer(env)
    }

    /// Drops registrations whose subscription is over (its `on` failed, or
    /// the connection closed).
    fn forget_ended_handlers(&mut self) {
        self.handlers
            .retain(|handler| handler.stop.as_ref().is_some_and(|stop| !stop.is_closed()));
    }
}

/// Connects to a canhazdb server and resolves once it is ready (it sent
/// READY); while the node is not healthy yet it reconnects until it is, for
/// at most `options.timeout` milliseconds.
///
/// ```js
/// const client = await createClient({ host: '127.0.0.1', port: 7060 })
/// const stored = await client.post('users', { name: 'Ada' })
/// await client.close()
/// ```
#[napi(ts_return_type = "Promise<Client>")]
pub fn create_client<'env>(
    env: &'env Env,
    options: Option<ClientOptions>,
) -> napi::Result<PromiseRaw<'env, Client>> {
    let options = options.unwrap_or(ClientOptions {
        host: None,
        port: None,
        timeout: None,
        ca: None,
        cert: None,
        key: None,
    });
    let host = options.host.unwrap_or_else(|| "127.0.0.1".to_owned());
    let port = options.port.unwrap_or(7060);
    let timeout = Duration::from_millis(u64::from(options.timeout.unwrap_or(DEFAULT_CONNECT_TIMEOUT_MS)));
    let has_certificate = options.cert.is_some();
    let tls = client_tls(options.ca, options.cert, options.key);
    let target = u16::try_from(port)
        .map_err(|_| Failure::argument(format!("port must be between 0 and 65535, not {port}")))
        .and_then(|port| {
            Ok(Target {
                host: host.clone(),
                port,
                tls: tls?,
                has_certificate,
            })
        });
    settle(
        env,
        async move { connect_when_ready(target?, timeout).await },
        move |env, inner: NativeClient| {
            let keep_alive = KeepAlive::new(env)?;
            napi::bindgen_prelude::spawn(release_when_closed(inner.clone(), keep_alive.clone()));
            Ok(Client {
                inner,
                host,
                port,
                keep_alive,
                handlers: Vec::new(),
            })
        },
    )
}

/// Where `createClient` connects, and how.
struct Target {
    host: String,
    port: u16,
    /// `Some` when `ca` was given: TLS, verifying the server against it.
    tls: Option<TlsConnector>,
    /// Whether the connector presents a client certificate.
    has_certificate: bool,
}

impl Target {
    /// `host:port`, with brackets around an IPv6 address.
    fn address(&self) -> String {
        if self.host.contains(':') && !self.host.starts_with('[') {
            format!("[{}]:{}", self.host, self.port)
        } else {
            format!("{}:{}", self.host, self.port)
        }
    }
}

fn pem_bytes(pem: &Either<String, Buffer>) -> &[u8] {
    match pem {
        Either::A(text) => text.as_bytes(),
        Either::B(bytes) => bytes.as_ref(),
    }
}

/// The TLS connector of `ca`, `cert` and `key`, or `None` without `ca`.
fn client_tls(
    ca: Option<Either<String, Buffer>>,
    cert: Option<Either<String, Buffer>>,
    key: Option<Either<String, Buffer>>,
) -> Result<Option<TlsConnector>, Failure> {
    let identity = match (&cert, &key) {
        (Some(cert), Some(key)) => Some((pem_bytes(cert), pem_bytes(key))),
        (None, None) => None,
        (Some(_), None) => return Err(Failure::argument("cert needs its private key: give key too")),
        (None, Some(_)) => return Err(Failure::argument("key needs its certificate: give cert too")),
    };
    let Some(ca) = ca else {
        return match identity {
            Some(_) => Err(Failure::argument(
                "cert and key need ca: the CA certificate (PEM) the server's certificate must chain to",
            )),
            None => Ok(None),
        };
    };
    let tls =
        ClientTls::from_pem(pem_bytes(&ca), identity).map_err(|error| Failure::tls(error.to_string()))?;
    Ok(Some(tls.connector()))
}

/// Connects and waits for READY, for at most `timeout` in all.
///
/// A node sends READY only to connections made while it is healthy, so a
/// connection made while it was not (a cluster still forming) would never
/// see it: when READY does not come within a short wait, this reconnects,
/// waiting longer each time, until the node is ready or `timeout` passed.
///
/// With TLS 1.3 the server checks the client's certificate after the
/// client has finished its side of the handshake, so a refused certificate
/// shows up as the connection failing before READY: that becomes an
/// `ERR_CANHAZDB_TLS` failure saying so.
async fn connect_when_ready(target: Target, timeout: Duration) -> Result<NativeClient, Failure> {
    let address = target.address();
    let deadline = tokio::time::Instant::now() + timeout;
    let mut patience = FIRST_READY_WAIT;
    loop {
        let remaining = deadline.saturating_duration_since(tokio::time::Instant::now());
        let connect = match &target.tls {
            Some(connector) => {
                tokio::time::timeout(remaining, NativeClient::connect_tls(&address, connector)).await
            }
            None => {
                tokio::time::timeout(
                    remaining,
                    NativeClient::connect((target.host.clone(), target.port)),
                )
                .await
            }
        };
        let client = match connect {
            Ok(Ok(client)) => client,
            Ok(Err(ClientError::Tls(reason))) => {
                return Err(Failure::tls(format!(
                    "TLS handshake with {address} failed: {reason}"
                )))
            }
            Ok(Err(error)) => return Err(error.into()),
            Err(_) => break,
        };
        let remaining = deadline.saturating_duration_since(tokio::time::Instant::now());
        match tokio::time::timeout(patience.min(remaining), client.wait_ready()).await {
            Ok(Ok(())) => return Ok(client),
            Ok(Err(error)) if target.tls.is_some() => {
                let hint = if target.has_certificate {
                    "is the client certificate (cert, key) signed by the cluster's CA, and valid now?"
                } else {
                    "the server requires a client certificate: give cert and key, signed by the cluster's CA"
                };
                return Err(Failure::tls(format!(
                    "{address} refused the TLS connection ({error}): {hint}"
                )));
            }
            Ok(Err(error)) => return Err(error.into()),
            Err(_) => client.close().await,
        }
        if tokio::time::Instant::now() >= deadline {
            break;
        }
        patience = (patience * 2).min(LONGEST_READY_WAIT);
    }
    let hint = if target.tls.is_none() {
        " (a server with TLS says nothing to a plain connection: give ca, cert and key if it uses TLS)"
    } else {
        ""
    };
    Err(Failure::from(ClientError::Timeout).with_message(format!(
        "{address} did not become ready within {} ms{hint}",
        timeout.as_millis()
    )))
}

/// Stops keeping the process alive once the connection is closed, whoever
/// closed it.
async fn release_when_closed(client: NativeClient, keep_alive: KeepAlive) {
    let mut ticks = tokio::time::interval(CLOSED_POLL);
    while !client.is_closed() {
        ticks.tick().await;
    }
    keep_alive.close();
}

/// The thread-safe function that delivers one registration's notifications:
/// it calls a small native function on the JS thread that checks the
/// registration is still active before calling the handler.
fn notifier(
    env: &Env,
    handler: Arc<FunctionRef<NotifyArgs, Unknown<'static>>>,
    active: Arc<AtomicBool>,
) -> napi::Result<Notifier> {
    let dispatch: Function<NotifyArgs, ()> =
        env.create_function_from_closure("canhazdbNotify", move |call| {
            if !active.load(Ordering::Acquire) {
                return Ok(());
            }
            let arguments = (call.get(0)?, call.get(1)?, call.get(2)?, call.get(3)?);
            handler.borrow_back(call.env)?.call(arguments.into())?;
            Ok(())
        })?;
    dispatch
        .build_threadsafe_function::<Notification>()
        .weak::<true>()
        .build_callback(|call: ThreadsafeCallContext<Notification>| {
            let notification = call.value;
            Ok(FnArgs::from((
                notification.path,
                notification.collection_id,
                notification.document_id,
                notification.pattern,
            )))
        })
}

type Notifier = ThreadsafeFunction<Notification, (), NotifyArgs, napi::Status, false, true>;

/// One registration's task: hands each notification to the JS thread until
/// `off()` removes the registration (then it unsubscribes and reports back)
/// or the connection closes.
///
/// When the registration is dropped without `off()` (the `Client` object was
/// garbage-collected while open) the handler keeps receiving, as the
/// listeners of an open socket do, until the connection closes.
async fn forward(
    client: NativeClient,
    mut subscription: Subscription,
    notify: Notifier,
    stop: oneshot::Receiver<StopReply>,
) {
    let mut stop = Some(stop);
    loop {
        let event = tokio::select! {
            biased;
            stopped = stop_requested(&mut stop) => Event::Stop(stopped),
            notification = subscription.recv() => Event::Notification(notification),
        };
        match event {
            Event::Stop(Some(done)) => {
                let _ = done.send(client.off(subscription).await);
                return;
            }
            Event::Stop(None) => stop = None,
            Event::Notification(Some(notification)) => {
                // Fails only while Node.js is shutting down.
                let _ = notify.call(notification, ThreadsafeFunctionCallMode::NonBlocking);
            }
            Event::Notification(None) => return,
        }
    }
}

/// Where `forward` reports the outcome of unsubscribing.
type StopReply = oneshot::Sender<Result<(), ClientError>>;

enum Event {
    /// `off()` asked to stop (`Some`), or the registration was dropped (`None`).
    Stop(Option<StopReply>),
    /// A notification, or `None` once the connection is closed.
    Notification(Option<Notification>),
}

/// The next stop request; never resolves once the registration is gone.
async fn stop_requested(stop: &mut Option<oneshot::Receiver<StopReply>>) -> Option<StopReply> {
    match stop {
        Some(receiver) => receiver.await.ok(),
        None => std::future::pending().await,
    }
}

/// A handler argument, which must be a function (checked at once, like
/// the other argument types).
fn as_function(value: Unknown) -> napi::Result<Function<NotifyArgs, Unknown<'static>>> {
    if value.get_type()? != ValueType::Function {
        return Err(napi::Error::new(
            napi::Status::FunctionExpected,
            "the handler must be a function".to_owned(),
        ));
    }
    unsafe { value.cast() }
}

/// `a === b`.
fn same_value(env: &Env, a: napi::sys::napi_value, b: napi::sys::napi_value) -> napi::Result<bool> {
    let mut equal = false;
    napi::check_status!(unsafe { napi::sys::napi_strict_equals(env.raw(), a, b, &mut equal) })?;
    Ok(equal)
}

/// A document or patch argument: a JSON object.
fn document_argument(env: &Env, value: Unknown, what: &str) -> Result<Value, Failure> {
    match convert::to_json(env, value, what)? {
        Some(object @ Value::Object(_)) => Ok(object),
        Some(other) => Err(Failure::invalid(format!(
            "{what} must be an object, not {}",
            json_type_name(&other)
        ))),
        None => Err(Failure::invalid(format!("{what} must be an object"))),
    }
}

/// The document (or patch) and the options of `post`, `put` and `patch`.
fn write_arguments(
    env: &Env,
    document: Unknown,
    what: &str,
    options: Option<WriteOptions>,
) -> Result<(Value, NativeWriteOptions), Failure> {
    Ok((
        document_argument(env, document, what)?,
        write_options(env, options)?,
    ))
}

fn get_options(env: &Env, options: Option<GetOptions>) -> Result<NativeGetOptions, Failure> {
    let Some(options) = options else {
        return Ok(NativeGetOptions::default());
    };
    let limit = match options.limit {
        None => None,
        Some(limit) if limit.fract() == 0.0 && limit >= 0.0 && limit <= u32::MAX as f64 => Some(limit as u64),
        Some(limit) => {
            return Err(Failure::invalid(format!(
                "limit must be a positive integer, not {limit}"
            )))
        }
    };
    Ok(NativeGetOptions {
        query: convert::to_object(env, options.query, "query")?,
        fields: options.fields,
        order: options.order.map(|order| match order {
            Either::A(one) => Value::String(one),
            Either::B(many) => Value::Array(many.into_iter().map(Value::String).collect()),
        }),
        limit,
    })
}

fn write_options(env: &Env, options: Option<WriteOptions>) -> Result<NativeWriteOptions, Failure> {
    let Some(options) = options else {
        return Ok(NativeWriteOptions::default());
    };
    Ok(NativeWriteOptions {
        query: convert::to_object(env, options.query, "query")?,
        lock_id: options.lock_id,
        lock_strategy: options.lock_strategy.map(lock_strategy).transpose()?.flatten(),
    })
}

/// `'fail'` / `'wait'`, or the wire numbers 64 / 65.
fn lock_strategy(value: Unknown) -> Result<Option<LockStrategy>, Failure> {
    let invalid = || Failure::invalid("lockStrategy must be 'fail', 'wait', 64 or 65");
    match value.get_type().map_err(|_| invalid())? {
        ValueType::Undefined | ValueType::Null => Ok(None),
        ValueType::String => match unsafe { value.cast::<String>() }.map_err(|_| invalid())?.as_str() {
            "fail" => Ok(Some(LockStrategy::Fail)),
            "wait" => Ok(Some(LockStrategy::Wait)),
            _ => Err(invalid()),
        },
        ValueType::Number => {
            let number = unsafe { value.cast::<f64>() }.map_err(|_| invalid())?;
            if number == f64::from(LockStrategy::Fail.as_u8()) {
                Ok(Some(LockStrategy::Fail))
            } else if number == f64::from(LockStrategy::Wait.as_u8()) {
                Ok(Some(LockStrategy::Wait))
            } else {
                Err(invalid())
            }
        }
        _ => Err(invalid()),
    }
}
