//! canhazdb for browsers (and Node.js): the core's sans-IO [`Client`] driven
//! by the platform's `WebSocket`, behind a promise API shaped like the v8-era
//! JavaScript client.
//!
//! ```js
//! import { connect } from './pkg/canhazdb_wasm.js';
//! const db = await connect('ws://127.0.0.1:7061');
//! const doc = await db.post('notes', { text: 'hello' });
//! const notes = await db.get('notes', { query: { text: 'hello' }, limit: 10 });
//! await db.on('POST:/notes/', (path, collectionId, documentId, pattern) => console.log(path));
//! ```
//!
//! Each WebSocket binary message is one protocol frame (spec section 1).
//! Requests are pipelined on the one socket and matched to their replies by
//! correlation id. Arguments are checked with the same code the server uses
//! ([`Request::decode`]), so a malformed call rejects with exactly the
//! STATUS_BAD_REQUEST message the server would have sent.
//!
//! Ownership: the socket's `message` handler keeps the connection's state
//! alive while the socket is open; the `close` handler (a one-shot closure)
//! breaks that cycle, so a closed connection is garbage once the page drops
//! its `Database`.

use std::cell::RefCell;
use std::collections::HashMap;
use std::rc::Rc;

use canhazdb_core::client::{Client, ClientError, Event, RequestId, Response};
use canhazdb_core::frame::FrameDecoder;
use canhazdb_core::message::{Reply, Request};
use canhazdb_core::notify::parse_notify_path;
use canhazdb_core::protocol::{Command, Key, Status, FIRST_REQUEST_ID};
use js_sys::{Array, ArrayBuffer, Function, Object, Promise, Reflect, Uint8Array, JSON};
use serde_json::{Map, Value};
use wasm_bindgen::prelude::*;
use wasm_bindgen::JsCast;
use web_sys::{BinaryType, CloseEvent, CustomEvent, CustomEventInit, EventTarget, MessageEvent, WebSocket};

#[wasm_bindgen(typescript_custom_section)]
const TYPES: &'static str = r#"
/** Any JSON value. */
export type Json = null | boolean | number | string | Json[] | { [key: string]: Json };
/** A JSON object. */
export type JsonObject = { [key: string]: Json };
/** A stored document: a JSON object with a string `id`. */
export type Document = { id: string; [key: string]: Json };

/** Operators on one field (spec section 3, "Queries"). */
export interface FieldOperators {
  $eq?: Json;
  $ne?: Json;
  $gt?: Json;
  $gte?: Json;
  $lt?: Json;
  $lte?: Json;
  $in?: Json[];
  $nin?: Json[];
  $exists?: boolean;
  $null?: boolean;
}
/**
 * A MongoDB-style query: `{ field: value }` is equality, dotted keys reach into
 * nested objects, `{ field: { $gt: 1 } }` applies operators, `$and`/`$or` combine.
 */
export type Query = {
  $and?: Query[];
  $or?: Query[];
  [field: string]: Json | FieldOperators | Query[] | undefined;
};
/** `'asc(field)'` / `'desc(field)'` terms; the first term is the primary sort key. */
export type Order = string | string[];

/** What a write does when its collection is locked by someone else: fail at once (STATUS_LOCKED) or wait (the default). */
export type LockStrategy = 'fail' | 'wait' | 64 | 65;
export interface LockOptions {
  /** The id of a lock this connection holds: the write proceeds despite the lock. */
  lockId?: string;
  lockStrategy?: LockStrategy;
}
export interface QueryOptions {
  /** Which documents; none means every document of the collection. */
  query?: Query;
}
export interface GetOptions extends QueryOptions {
  /** Fields to return (dotted names allowed); `id` is always returned. */
  fields?: string[];
  order?: Order;
  /** A positive integer. */
  limit?: number;
}
export interface WriteOptions extends QueryOptions, LockOptions {}
export interface PostOptions extends LockOptions {}

export interface ConnectOptions {
  /** Milliseconds to wait for the socket to open and the server's READY; 0 waits forever. Default 10000. */
  timeout?: number;
}

/** `(path, collectionId, documentId, pattern)`, e.g. `('POST:/notes/1f0…', 'notes', '1f0…', '^POST:/notes/')`. */
export type NotifyHandler = (path: string, collectionId: string, documentId: string, pattern: string) => void;

/** The `detail` of the `close` event. */
export interface CloseDetail {
  /** The WebSocket close code (1000 normal, 1006 dropped, 1009 message too big, ...). */
  code: number;
  reason: string;
  wasClean: boolean;
  /** Whether `db.close()` asked for it. */
  requested: boolean;
  /** Why the connection ended, when the server or the client said why. */
  error?: CanhazdbError;
}
export type CloseListener = (event: CustomEvent<CloseDetail>) => void;

/** What failed requests reject with. */
export interface CanhazdbError extends Error {
  /**
   * `'server'`: the server answered with a failure status; `'invalid'`: the
   * call was refused before sending, with the status and message the server
   * would have given; `'disconnected'`: the connection closed first;
   * `'protocol'`: the server sent something that is not the protocol.
   */
  kind: 'server' | 'invalid' | 'disconnected' | 'protocol';
  /** The status byte: 121 BAD_REQUEST, 122 NOT_FOUND, 124 SERVER_ERROR, 125 SERVER_UNHEALTHY, 126 SERVER_CLOSED, 127 LOCKED. */
  status?: number;
  /** The status's name in the spec, e.g. `'STATUS_LOCKED'`. */
  statusName?: string;
}

/** INFO: the node's view of the cluster. */
export interface NodeInfo {
  nodeName: string;
  status: string;
  nodes: { host: string; port: number }[];
}
"#;

#[wasm_bindgen]
extern "C" {
    #[wasm_bindgen(js_name = setTimeout)]
    fn set_timeout(handler: &Function, milliseconds: f64) -> JsValue;
    #[wasm_bindgen(js_name = clearTimeout)]
    fn clear_timeout(id: &JsValue);
    #[wasm_bindgen(js_namespace = console, js_name = error)]
    fn console_error(message: &str, error: &JsValue);
}

/// How long `connect` waits for READY unless told otherwise.
const DEFAULT_CONNECT_TIMEOUT_MS: f64 = 10_000.0;

/// How a successful reply becomes the promise's value.
#[derive(Clone, Copy)]
enum Shape {
    /// The reply's value as it is.
    Value,
    /// GET for `getOne`: the first document or `null`.
    First,
    /// `undefined` (UNLOCK, NOTIFY_ON, NOTIFY_OFF).
    Nothing,
}

struct Pending {
    resolve: Function,
    reject: Function,
    shape: Shape,
    /// A NOTIFY_ON: on failure its handlers are dropped again.
    subscribing: Option<String>,
}

/// Work for JavaScript, run once the state is no longer borrowed (a notify
/// handler may call back into the same `Database`).
enum Action {
    Call(Function, JsValue),
    Notify(Function, [JsValue; 4]),
    Dispatch(EventTarget, web_sys::Event),
}

fn run(actions: Vec<Action>) {
    for action in actions {
        match action {
            Action::Call(function, value) => {
                let _ = function.call1(&JsValue::UNDEFINED, &value);
            }
            Action::Notify(handler, [path, collection, document, pattern]) => {
                let arguments = Array::of4(&path, &collection, &document, &pattern);
                if let Err(error) = handler.apply(&JsValue::UNDEFINED, &arguments) {
                    console_error("canhazdb: a notify handler threw", &error);
                }
            }
            Action::Dispatch(target, event) => {
                let _ = target.dispatch_event(&event);
            }
        }
    }
}

/// A notify pattern compiled as a JavaScript `RegExp`, for routing pushed
/// paths to handlers. The server compiles the same pattern with Rust's
/// `regex` and is the authority: it refuses invalid patterns and sends only
/// paths that match one of the connection's patterns. Rust's `regex` would
/// add ~780 KB to the `.wasm`, so routing uses the platform's engine, which
/// agrees with it on the patterns notify paths need (literals, anchors,
/// classes, groups, alternation, repetition, leading `(?i)`/`(?m)`/`(?s)`).
struct Pattern {
    text: String,
    /// `None` when JavaScript cannot compile it (Rust-only syntax such as
    /// `(?P<name>…)` or `[[:alpha:]]`): such a pattern gets every path that
    /// no compiled pattern claims (the server matched at least one).
    regexp: Option<JsRegExp>,
    handlers: Vec<Function>,
}

#[wasm_bindgen]
extern "C" {
    #[wasm_bindgen(js_name = RegExp)]
    type JsRegExp;
    #[wasm_bindgen(constructor, catch, js_class = "RegExp")]
    fn new(pattern: &str, flags: &str) -> Result<JsRegExp, JsValue>;
    #[wasm_bindgen(method, js_class = "RegExp")]
    fn test(this: &JsRegExp, text: &str) -> bool;
}

/// Compiles a Rust-syntax pattern as a JavaScript RegExp, if it can.
fn js_regexp(pattern: &str) -> Option<JsRegExp> {
    // Leading inline flags, e.g. `(?i)`, become RegExp flags.
    let (flags, body) = match pattern.strip_prefix("(?").and_then(|rest| rest.split_once(')')) {
        Some((flags, body)) if !flags.is_empty() && flags.chars().all(|c| matches!(c, 'i' | 'm' | 's')) => {
            (flags, body)
        }
        _ => ("", pattern),
    };
    // Unicode mode first (code points, strict syntax like Rust's), then
    // the lenient mode for escapes Rust allows and Unicode mode refuses.
    JsRegExp::new(body, &format!("{flags}u"))
        .or_else(|_| JsRegExp::new(body, flags))
        .ok()
}

/// Notify handlers by pattern, as the v8 client kept them: the first
/// handler of a pattern needs a NOTIFY_ON, removing the last a NOTIFY_OFF.
#[derive(Default)]
struct Handlers {
    patterns: Vec<Pattern>,
}

impl Handlers {
    /// Adds `handler`; `true` when it is the pattern's first.
    fn add(&mut self, pattern: &str, handler: Function) -> bool {
        if let Some(existing) = self.patterns.iter_mut().find(|p| p.text == pattern) {
            existing.handlers.push(handler);
            return false;
        }
        self.patterns.push(Pattern {
            text: pattern.to_owned(),
            regexp: js_regexp(pattern),
            handlers: vec![handler],
        });
        true
    }

    /// Removes `handler` (every handler without one); `true` when the
    /// pattern has none left.
    fn remove(&mut self, pattern: &str, handler: Option<&Function>) -> bool {
        let Some(index) = self.patterns.iter().position(|p| p.text == pattern) else {
            return false;
        };
        let handlers = &mut self.patterns[index].handlers;
        match handler {
            Some(handler) => handlers.retain(|h| h != handler),
            None => handlers.clear(),
        }
        if handlers.is_empty() {
            self.patterns.remove(index);
            return true;
        }
        false
    }

    /// Every (pattern, handler) for `path`, in registration order.
    fn dispatch(&self, path: &str) -> Vec<(&str, Function)> {
        let matches = |p: &&Pattern| p.regexp.as_ref().is_some_and(|regexp| regexp.test(path));
        let mut chosen: Vec<&Pattern> = self.patterns.iter().filter(matches).collect();
        if chosen.is_empty() {
            chosen = self.patterns.iter().filter(|p| p.regexp.is_none()).collect();
        }
        chosen
            .into_iter()
            .flat_map(|p| p.handlers.iter().map(move |h| (p.text.as_str(), h.clone())))
            .collect()
    }
}

struct Connection {
    client: Client,
    socket: WebSocket,
    url: String,
    events: EventTarget,
    pending: HashMap<RequestId, Pending>,
    subscriptions: Handlers,
    /// NOTIFY_ON requests in flight, by pattern: a second `on` for the same
    /// pattern waits for the same acknowledgement.
    subscribing: HashMap<String, Promise>,
    /// The `connect` promise, until READY (or failure).
    connecting: Option<(Function, Function)>,
    connect_timer: Option<(JsValue, Closure<dyn FnMut()>)>,
    /// Why the connection is ending, when someone said: an error the server
    /// sent without a request id (e.g. an oversized message) or a protocol
    /// violation seen here. Pending requests are rejected with it.
    failure: Option<JsValue>,
    close_requested: bool,
    closed: bool,
    close_waiters: Vec<Function>,
    on_message: Option<Closure<dyn FnMut(MessageEvent)>>,
    on_error: Option<Closure<dyn FnMut(web_sys::Event)>>,
    /// A handle to give to `connect`'s caller; set once the state is shared.
    this: Option<std::rc::Weak<RefCell<Connection>>>,
}

fn set(target: &JsValue, key: &str, value: &JsValue) {
    let _ = Reflect::set(target, &JsValue::from_str(key), value);
}

fn get(source: &JsValue, key: &str) -> JsValue {
    if source.is_object() {
        Reflect::get(source, &JsValue::from_str(key)).unwrap_or(JsValue::UNDEFINED)
    } else {
        JsValue::UNDEFINED
    }
}

fn make_error(message: &str, kind: &str, status: Option<u8>) -> JsValue {
    let error: JsValue = js_sys::Error::new(message).into();
    set(&error, "kind", &JsValue::from_str(kind));
    if let Some(code) = status {
        set(&error, "status", &JsValue::from(code));
        let name = Status::from_u8(code).map(Status::name);
        set(
            &error,
            "statusName",
            &name.map(JsValue::from_str).unwrap_or(JsValue::UNDEFINED),
        );
    }
    error
}

/// A call refused before sending: STATUS_BAD_REQUEST, as the server would say it.
fn invalid(message: impl std::fmt::Display) -> JsValue {
    make_error(&message.to_string(), "invalid", Some(Status::BadRequest.as_u8()))
}

fn client_error(error: ClientError) -> JsValue {
    match error {
        ClientError::Server {
            status,
            code,
            message,
        } => {
            let message = message.unwrap_or_else(|| match status {
                Some(status) => status.name().to_owned(),
                None => format!("status {code}"),
            });
            make_error(&message, "server", Some(code))
        }
        ClientError::Disconnected => make_error(&error.to_string(), "disconnected", None),
        ClientError::Protocol(_) => make_error(&error.to_string(), "protocol", None),
        ClientError::TooManyInFlight => make_error(&error.to_string(), "invalid", None),
    }
}

/// JavaScript value to JSON, through `JSON.stringify`; `undefined`/`null` is absent.
fn to_json(value: &JsValue) -> Result<Option<Value>, JsValue> {
    if value.is_undefined() || value.is_null() {
        return Ok(None);
    }
    let text = JSON::stringify(value)?;
    match JsValue::from(text).as_string() {
        None => Ok(None),
        Some(text) => serde_json::from_str(&text)
            .map(Some)
            .map_err(|error| invalid(format!("not JSON: {error}"))),
    }
}

fn from_json(value: &Value) -> JsValue {
    match value {
        Value::Null => JsValue::NULL,
        Value::Bool(b) => JsValue::from_bool(*b),
        Value::String(s) => JsValue::from_str(s),
        _ => JSON::parse(&value.to_string()).unwrap_or(JsValue::NULL),
    }
}

fn response_value(response: Response, shape: Shape) -> JsValue {
    match shape {
        Shape::Nothing => return JsValue::UNDEFINED,
        Shape::First => {
            return match response {
                Response::Documents(documents) => documents.first().map(from_json).unwrap_or(JsValue::NULL),
                _ => JsValue::NULL,
            }
        }
        Shape::Value => {}
    }
    match response {
        Response::Document(document) | Response::Info(document) => from_json(&document),
        Response::Documents(documents) => from_json(&Value::Array(documents)),
        Response::Count(count) => JsValue::from_f64(count as f64),
        Response::Ids(ids) => ids
            .iter()
            .map(|id| JsValue::from_str(id))
            .collect::<Array>()
            .into(),
        Response::LockId(id) => JsValue::from_str(&id),
        Response::Done => JsValue::UNDEFINED,
        Response::Raw { reply, .. } => reply.data.as_ref().map(from_json).unwrap_or(JsValue::UNDEFINED),
    }
}

/// A request payload under construction, from JavaScript arguments by option name.
struct Payload(Map<String, Value>);

impl Payload {
    fn new() -> Self {
        Payload(Map::new())
    }

    fn put(&mut self, key: Key, value: &JsValue) -> Result<&mut Self, JsValue> {
        if let Some(value) = to_json(value)? {
            self.0.insert(key.as_str().to_owned(), value);
        }
        Ok(self)
    }

    fn option(&mut self, key: Key, options: &JsValue, name: &str) -> Result<&mut Self, JsValue> {
        self.put(key, &get(options, name))
    }

    /// `query`, `fields` and `order`: which documents, which of their fields, in what order.
    fn selection(&mut self, options: &JsValue) -> Result<&mut Self, JsValue> {
        self.option(Key::Query, options, "query")?
            .option(Key::Fields, options, "fields")?
            .option(Key::Order, options, "order")
    }

    fn lock_options(&mut self, options: &JsValue) -> Result<&mut Self, JsValue> {
        self.option(Key::LockId, options, "lockId")?
            .option(Key::LockStrategy, options, "lockStrategy")
    }

    /// Checks the payload exactly as the server would.
    fn request(&self, command: Command) -> Result<Request, JsValue> {
        let bytes = serde_json::to_vec(&self.0).map_err(invalid)?;
        Request::decode(command, &bytes)
            .map(|envelope| envelope.request)
            .map_err(invalid)
    }
}

fn deferred() -> (Promise, Function, Function) {
    let mut callbacks = None;
    let promise = Promise::new(&mut |resolve, reject| callbacks = Some((resolve, reject)));
    let (resolve, reject) = callbacks.expect("the Promise executor runs at once");
    (promise, resolve, reject)
}

impl Connection {
    fn is_open(&self) -> bool {
        !self.closed && !self.close_requested && self.connecting.is_none()
    }

    /// Writes every queued frame, one binary message each.
    fn flush(&mut self) {
        while let Some(frame) = self.client.poll_transmit() {
            // A copy owned by JavaScript: a WebSocket implementation may keep
            // the buffer after `send` returns, and wasm memory is reused.
            let message = Uint8Array::from(frame.as_ref());
            if let Err(error) = self.socket.send_with_array_buffer_view(&message) {
                console_error("canhazdb: WebSocket send failed", &error);
            }
        }
    }

    fn not_open(&self) -> Promise {
        let message = if self.connecting.is_some() {
            "the connection is not ready yet"
        } else {
            "the connection is closed"
        };
        Promise::reject(&make_error(message, "disconnected", None))
    }

    fn send(&mut self, request: &Request, shape: Shape, subscribing: Option<String>) -> Promise {
        if !self.is_open() {
            return self.not_open();
        }
        let id = match self.client.request(request) {
            Ok(id) => id,
            Err(error) => return Promise::reject(&client_error(error)),
        };
        let (promise, resolve, reject) = deferred();
        self.pending.insert(
            id,
            Pending {
                resolve,
                reject,
                shape,
                subscribing,
            },
        );
        self.flush();
        promise
    }

    /// A message from the server.
    fn receive(&mut self, data: JsValue, actions: &mut Vec<Action>) {
        let Some(buffer) = data.dyn_ref::<ArrayBuffer>() else {
            self.fail_protocol("the server sent a text message; frames are binary messages");
            return;
        };
        let bytes = Uint8Array::new(buffer).to_vec();
        self.note_connection_error(&bytes);
        self.client.receive_message(&bytes);
        self.drain_events(actions);
    }

    /// The server answers a message it could not attribute to a request (an
    /// oversized one: only its length was read) with id 0, then closes.
    /// Remember what it said, to reject the pending requests with it.
    fn note_connection_error(&mut self, bytes: &[u8]) {
        if bytes.len() < 4 || u16::from_le_bytes([bytes[0], bytes[1]]) >= FIRST_REQUEST_ID {
            return;
        }
        let Ok(frame) = FrameDecoder::new(bytes.len()).decode_message(bytes) else {
            return;
        };
        let Some(status) = Status::from_u8(frame.command).filter(|status| !status.is_success()) else {
            return;
        };
        let message = Reply::decode(Some(status), &frame.payload)
            .ok()
            .and_then(|reply| reply.error)
            .unwrap_or_else(|| status.name().to_owned());
        self.failure = Some(make_error(&message, "server", Some(status.as_u8())));
    }

    fn fail_protocol(&mut self, message: &str) {
        if self.failure.is_none() {
            self.failure = Some(make_error(
                &format!("protocol error: {message}"),
                "protocol",
                None,
            ));
        }
        // 4002: an application close code (browsers refuse 1002 from a page).
        let _ = self.socket.close_with_code_and_reason(4002, "protocol error");
    }

    fn drain_events(&mut self, actions: &mut Vec<Action>) {
        while let Some(event) = self.client.poll_event() {
            match event {
                Event::Ready => self.ready(actions),
                Event::Reply { id, result } => self.reply(id, result, actions),
                Event::Notify { path } => self.notify(path, actions),
                Event::Fatal { message } => self.fail_protocol(&message),
            }
        }
    }

    fn ready(&mut self, actions: &mut Vec<Action>) {
        let Some((resolve, _)) = self.connecting.take() else {
            return;
        };
        if let Some((timer, _closure)) = self.connect_timer.take() {
            clear_timeout(&timer);
        }
        let inner = self.this.as_ref().and_then(std::rc::Weak::upgrade);
        if let Some(inner) = inner {
            actions.push(Action::Call(resolve, Database { inner }.into()));
        }
    }

    fn reply(&mut self, id: RequestId, result: Result<Response, ClientError>, actions: &mut Vec<Action>) {
        let Some(pending) = self.pending.remove(&id) else {
            return;
        };
        if let Some(pattern) = &pending.subscribing {
            self.subscribing.remove(pattern);
            if result.is_err() {
                self.subscriptions.remove(pattern, None);
            }
        }
        match result {
            Ok(response) => actions.push(Action::Call(
                pending.resolve,
                response_value(response, pending.shape),
            )),
            Err(ClientError::Disconnected) if self.failure.is_some() => actions.push(Action::Call(
                pending.reject,
                self.failure.clone().unwrap_or_default(),
            )),
            Err(error) => actions.push(Action::Call(pending.reject, client_error(error))),
        }
    }

    fn notify(&mut self, path: String, actions: &mut Vec<Action>) {
        let (collection, document) = match parse_notify_path(&path) {
            Some((_, collection, document)) => (JsValue::from_str(collection), JsValue::from_str(document)),
            None => (JsValue::UNDEFINED, JsValue::UNDEFINED),
        };
        let path_value = JsValue::from_str(&path);
        for (pattern, handler) in self.subscriptions.dispatch(&path) {
            let arguments = [
                path_value.clone(),
                collection.clone(),
                document.clone(),
                JsValue::from_str(pattern),
            ];
            actions.push(Action::Notify(handler, arguments));
        }
    }

    /// The socket closed: fail what is pending, tell the page, release the handlers.
    fn closed(&mut self, code: u16, reason: String, was_clean: bool, actions: &mut Vec<Action>) {
        if self.closed {
            return;
        }
        self.closed = true;
        self.socket.set_onmessage(None);
        self.socket.set_onerror(None);
        self.socket.set_onclose(None);
        // Not run by these handlers, so dropping them is safe.
        self.on_message = None;
        self.on_error = None;
        if let Some((timer, _closure)) = self.connect_timer.take() {
            clear_timeout(&timer);
        }
        if self.failure.is_none() && !self.close_requested && code != 1000 && code != 1005 {
            let reason = if reason.is_empty() {
                String::new()
            } else {
                format!(": {reason}")
            };
            let message = format!("connection to {} lost (close code {code}{reason})", self.url);
            self.failure = Some(make_error(&message, "disconnected", None));
        }
        if let Some((_, reject)) = self.connecting.take() {
            let error = self.failure.clone().unwrap_or_else(|| {
                make_error(
                    &format!("could not connect to {}", self.url),
                    "disconnected",
                    None,
                )
            });
            actions.push(Action::Call(reject, error));
        }
        self.client.disconnected();
        self.drain_events(actions);
        self.subscribing.clear();

        let detail = Object::new();
        set(&detail, "code", &JsValue::from(code));
        set(&detail, "reason", &JsValue::from_str(&reason));
        set(&detail, "wasClean", &JsValue::from_bool(was_clean));
        set(&detail, "requested", &JsValue::from_bool(self.close_requested));
        if let Some(failure) = &self.failure {
            set(&detail, "error", failure);
        }
        let init = CustomEventInit::new();
        init.set_detail(&detail);
        let event = match CustomEvent::new_with_event_init_dict("close", &init) {
            Ok(event) => Some(event.into()),
            // Node.js 18 has Event but no CustomEvent.
            Err(_) => web_sys::Event::new("close")
                .ok()
                .inspect(|event| set(event, "detail", &detail)),
        };
        if let Some(event) = event {
            actions.push(Action::Dispatch(self.events.clone(), event));
        }
        for waiter in self.close_waiters.drain(..) {
            actions.push(Action::Call(waiter, JsValue::UNDEFINED));
        }
    }
}

/// A connection to a canhazdb server. Get one with `connect`.
#[wasm_bindgen]
pub struct Database {
    inner: Rc<RefCell<Connection>>,
}

/// Opens a WebSocket to a canhazdb server (`ws://host:port`, the server's
/// `--ws-port`) and resolves once the server sent READY.
#[wasm_bindgen(unchecked_return_type = "Promise<Database>")]
pub fn connect(
    url: &str,
    #[wasm_bindgen(unchecked_optional_param_type = "ConnectOptions")] options: Option<Object>,
) -> Promise {
    let options: JsValue = options.map(Into::into).unwrap_or(JsValue::UNDEFINED);
    let timeout = get(&options, "timeout")
        .as_f64()
        .unwrap_or(DEFAULT_CONNECT_TIMEOUT_MS);
    let socket = match WebSocket::new(url) {
        Ok(socket) => socket,
        Err(error) => return Promise::reject(&error),
    };
    socket.set_binary_type(BinaryType::Arraybuffer);
    let events = match EventTarget::new() {
        Ok(events) => events,
        Err(error) => return Promise::reject(&error),
    };
    let (promise, resolve, reject) = deferred();
    let inner = Rc::new(RefCell::new(Connection {
        client: Client::default(),
        socket: socket.clone(),
        url: url.to_owned(),
        events,
        pending: HashMap::new(),
        subscriptions: Handlers::default(),
        subscribing: HashMap::new(),
        connecting: Some((resolve, reject)),
        connect_timer: None,
        failure: None,
        close_requested: false,
        closed: false,
        close_waiters: Vec::new(),
        on_message: None,
        on_error: None,
        this: None,
    }));
    inner.borrow_mut().this = Some(Rc::downgrade(&inner));

    let state = inner.clone();
    let on_message = Closure::<dyn FnMut(MessageEvent)>::new(move |event: MessageEvent| {
        let mut actions = Vec::new();
        state.borrow_mut().receive(event.data(), &mut actions);
        run(actions);
    });
    socket.set_onmessage(Some(on_message.as_ref().unchecked_ref()));
    inner.borrow_mut().on_message = Some(on_message);

    let state = inner.clone();
    let on_close = Closure::once_into_js(move |event: CloseEvent| {
        let mut actions = Vec::new();
        state
            .borrow_mut()
            .closed(event.code(), event.reason(), event.was_clean(), &mut actions);
        run(actions);
    });
    socket.set_onclose(Some(on_close.unchecked_ref()));

    // Browsers follow an error with a close event; some WebSocket
    // implementations (Node.js 20's, for a connection that never opened) do
    // not. If no close event came by the next task, act as if one did.
    let state = inner.clone();
    let on_error = Closure::<dyn FnMut(web_sys::Event)>::new(move |_event: web_sys::Event| {
        let state = state.clone();
        let fallback = Closure::once_into_js(move || {
            let mut actions = Vec::new();
            state
                .borrow_mut()
                .closed(1006, String::new(), false, &mut actions);
            run(actions);
        });
        set_timeout(fallback.unchecked_ref(), 0.0);
    });
    socket.set_onerror(Some(on_error.as_ref().unchecked_ref()));
    inner.borrow_mut().on_error = Some(on_error);

    if timeout > 0.0 {
        let state = Rc::downgrade(&inner);
        let on_timeout = Closure::<dyn FnMut()>::new(move || {
            let Some(state) = state.upgrade() else { return };
            let mut actions = Vec::new();
            {
                let mut state = state.borrow_mut();
                if state.connecting.is_some() && !state.closed {
                    let message = format!("no READY from {} within {timeout} ms", state.url);
                    state.failure = Some(make_error(&message, "disconnected", None));
                    let _ = state.socket.close();
                    state.closed(1006, String::new(), false, &mut actions);
                }
            }
            run(actions);
        });
        let timer = set_timeout(on_timeout.as_ref().unchecked_ref(), timeout);
        inner.borrow_mut().connect_timer = Some((timer, on_timeout));
    }
    promise
}

impl Database {
    fn send(&self, request: Result<Request, JsValue>, shape: Shape) -> Promise {
        match request {
            Ok(request) => self.inner.borrow_mut().send(&request, shape, None),
            Err(error) => Promise::reject(&error),
        }
    }

    /// PUT or PATCH.
    fn write(
        &self,
        command: Command,
        collection: JsValue,
        data: JsValue,
        options: Option<Object>,
    ) -> Promise {
        let options = JsValue::from(options);
        self.send_on(&collection, command, Shape::Value, |payload| {
            payload
                .put(Key::Data, &data)?
                .option(Key::Query, &options, "query")?
                .lock_options(&options)
        })
    }

    /// Sends `command` with a payload of `collection` and what `build` adds.
    fn send_on(
        &self,
        collection: &JsValue,
        command: Command,
        shape: Shape,
        build: impl FnOnce(&mut Payload) -> Result<&mut Payload, JsValue>,
    ) -> Promise {
        self.send_with(Key::CollectionId, collection, command, shape, build)
    }

    /// Sends `command` with a payload of `key` = `value` and what `build` adds.
    fn send_with(
        &self,
        key: Key,
        value: &JsValue,
        command: Command,
        shape: Shape,
        build: impl FnOnce(&mut Payload) -> Result<&mut Payload, JsValue>,
    ) -> Promise {
        let mut payload = Payload::new();
        let request = (|| build(payload.put(key, value)?)?.request(command))();
        self.send(request, shape)
    }
}

#[wasm_bindgen]
impl Database {
    /// Stores a document; resolves to it as stored (with its `id`, a random
    /// UUID unless `doc` has a string `id`).
    #[wasm_bindgen(unchecked_return_type = "Promise<Document>")]
    pub fn post(
        &self,
        #[wasm_bindgen(unchecked_param_type = "string")] collection: JsValue,
        #[wasm_bindgen(unchecked_param_type = "JsonObject")] doc: JsValue,
        #[wasm_bindgen(unchecked_optional_param_type = "PostOptions")] options: Option<Object>,
    ) -> Promise {
        let options = JsValue::from(options);
        self.send_on(&collection, Command::Post, Shape::Value, |payload| {
            payload.put(Key::Data, &doc)?.lock_options(&options)
        })
    }

    /// The documents matching `options.query` (all without one).
    #[wasm_bindgen(unchecked_return_type = "Promise<Document[]>")]
    pub fn get(
        &self,
        #[wasm_bindgen(unchecked_param_type = "string")] collection: JsValue,
        #[wasm_bindgen(unchecked_optional_param_type = "GetOptions")] options: Option<Object>,
    ) -> Promise {
        let options = JsValue::from(options);
        self.send_on(&collection, Command::Get, Shape::Value, |payload| {
            payload.selection(&options)?.option(Key::Limit, &options, "limit")
        })
    }

    /// The first document matching (in `options.order`), or `null`.
    #[wasm_bindgen(js_name = getOne, unchecked_return_type = "Promise<Document | null>")]
    pub fn get_one(
        &self,
        #[wasm_bindgen(unchecked_param_type = "string")] collection: JsValue,
        #[wasm_bindgen(unchecked_optional_param_type = "Omit<GetOptions, 'limit'>")] options: Option<Object>,
    ) -> Promise {
        let options = JsValue::from(options);
        self.send_on(&collection, Command::Get, Shape::First, |payload| {
            payload.selection(&options)?.put(Key::Limit, &JsValue::from(1))
        })
    }

    /// How many documents match `options.query`.
    #[wasm_bindgen(unchecked_return_type = "Promise<number>")]
    pub fn count(
        &self,
        #[wasm_bindgen(unchecked_param_type = "string")] collection: JsValue,
        #[wasm_bindgen(unchecked_optional_param_type = "QueryOptions")] options: Option<Object>,
    ) -> Promise {
        let options = JsValue::from(options);
        self.send_on(&collection, Command::Count, Shape::Value, |payload| {
            payload.option(Key::Query, &options, "query")
        })
    }

    /// Replaces every matching document with `data` (keeping its `id`);
    /// resolves to the changed ids.
    #[wasm_bindgen(unchecked_return_type = "Promise<string[]>")]
    pub fn put(
        &self,
        #[wasm_bindgen(unchecked_param_type = "string")] collection: JsValue,
        #[wasm_bindgen(unchecked_param_type = "JsonObject")] data: JsValue,
        #[wasm_bindgen(unchecked_optional_param_type = "WriteOptions")] options: Option<Object>,
    ) -> Promise {
        self.write(Command::Put, collection, data, options)
    }

    /// Merges the top-level keys of `data` into every matching document;
    /// resolves to the changed ids.
    #[wasm_bindgen(unchecked_return_type = "Promise<string[]>")]
    pub fn patch(
        &self,
        #[wasm_bindgen(unchecked_param_type = "string")] collection: JsValue,
        #[wasm_bindgen(unchecked_param_type = "JsonObject")] data: JsValue,
        #[wasm_bindgen(unchecked_optional_param_type = "WriteOptions")] options: Option<Object>,
    ) -> Promise {
        self.write(Command::Patch, collection, data, options)
    }

    /// Deletes every matching document; resolves to the deleted ids.
    #[wasm_bindgen(unchecked_return_type = "Promise<string[]>")]
    pub fn delete(
        &self,
        #[wasm_bindgen(unchecked_param_type = "string")] collection: JsValue,
        #[wasm_bindgen(unchecked_optional_param_type = "WriteOptions")] options: Option<Object>,
    ) -> Promise {
        let options = JsValue::from(options);
        self.send_on(&collection, Command::Delete, Shape::Value, |payload| {
            payload
                .option(Key::Query, &options, "query")?
                .lock_options(&options)
        })
    }

    /// Takes the lock on `key` (by convention a collection id), waiting for
    /// it if someone else holds it; resolves to the lock id. The lock is
    /// released by `unlock` or when this connection closes.
    #[wasm_bindgen(unchecked_return_type = "Promise<string>")]
    pub fn lock(&self, #[wasm_bindgen(unchecked_param_type = "string")] key: JsValue) -> Promise {
        self.send_with(Key::LockKey, &key, Command::Lock, Shape::Value, |payload| {
            Ok(payload)
        })
    }

    /// Releases a lock this connection holds (NOT_FOUND otherwise).
    #[wasm_bindgen(unchecked_return_type = "Promise<void>")]
    pub fn unlock(
        &self,
        #[wasm_bindgen(js_name = lockId, unchecked_param_type = "string")] lock_id: JsValue,
    ) -> Promise {
        self.send_with(
            Key::LockId,
            &lock_id,
            Command::Unlock,
            Shape::Nothing,
            |payload| Ok(payload),
        )
    }

    /// The node's view of the cluster (INFO).
    #[wasm_bindgen(unchecked_return_type = "Promise<NodeInfo>")]
    pub fn info(&self) -> Promise {
        self.send(Ok(Request::Info), Shape::Value)
    }

    /// Calls `handler(path, collectionId, documentId, pattern)` for every
    /// change whose path (`METHOD:/collection/documentId`) matches the regex
    /// `pattern` (unanchored). Resolves once the server confirmed it.
    #[wasm_bindgen(unchecked_return_type = "Promise<void>")]
    pub fn on(
        &self,
        pattern: &str,
        #[wasm_bindgen(unchecked_param_type = "NotifyHandler")] handler: Function,
    ) -> Promise {
        let mut inner = self.inner.borrow_mut();
        if !inner.is_open() {
            return inner.not_open();
        }
        // The server checks the pattern: a refused one rejects with its message.
        if !inner.subscriptions.add(pattern, handler) {
            return match inner.subscribing.get(pattern) {
                Some(acknowledged) => acknowledged.clone(),
                None => Promise::resolve(&JsValue::UNDEFINED),
            };
        }
        let request = Request::NotifyOn {
            pattern: pattern.to_owned(),
        };
        let promise = inner.send(&request, Shape::Nothing, Some(pattern.to_owned()));
        inner.subscribing.insert(pattern.to_owned(), promise.clone());
        promise
    }

    /// Removes `handler` from `pattern` (every handler of it without one);
    /// the last one gone, the server stops sending its changes.
    #[wasm_bindgen(unchecked_return_type = "Promise<void>")]
    pub fn off(
        &self,
        pattern: &str,
        #[wasm_bindgen(unchecked_optional_param_type = "NotifyHandler")] handler: Option<Function>,
    ) -> Promise {
        let mut inner = self.inner.borrow_mut();
        if !inner.subscriptions.remove(pattern, handler.as_ref()) || !inner.is_open() {
            return Promise::resolve(&JsValue::UNDEFINED);
        }
        let request = Request::NotifyOff {
            pattern: pattern.to_owned(),
        };
        inner.send(&request, Shape::Nothing, None)
    }

    /// Closes the connection; requests still pending reject. Resolves once
    /// the socket is closed (the `close` event has fired by then).
    #[wasm_bindgen(unchecked_return_type = "Promise<void>")]
    pub fn close(&self) -> Promise {
        let mut inner = self.inner.borrow_mut();
        if inner.closed {
            return Promise::resolve(&JsValue::UNDEFINED);
        }
        let (promise, resolve, _) = deferred();
        inner.close_waiters.push(resolve);
        if !inner.close_requested {
            inner.close_requested = true;
            let _ = inner.socket.close_with_code(1000);
        }
        promise
    }

    /// Listens for `close`: the connection ended (dropped, closed by the
    /// server, or by `close()`); `event.detail` says how.
    #[wasm_bindgen(js_name = addEventListener)]
    pub fn add_event_listener(
        &self,
        #[wasm_bindgen(js_name = type, unchecked_param_type = "'close'")] kind: &str,
        #[wasm_bindgen(unchecked_param_type = "CloseListener")] listener: Function,
    ) {
        let _ = self
            .inner
            .borrow()
            .events
            .add_event_listener_with_callback(kind, &listener);
    }

    #[wasm_bindgen(js_name = removeEventListener)]
    pub fn remove_event_listener(
        &self,
        #[wasm_bindgen(js_name = type, unchecked_param_type = "'close'")] kind: &str,
        #[wasm_bindgen(unchecked_param_type = "CloseListener")] listener: Function,
    ) {
        let _ = self
            .inner
            .borrow()
            .events
            .remove_event_listener_with_callback(kind, &listener);
    }

    /// Whether the connection has closed.
    #[wasm_bindgen(getter)]
    pub fn closed(&self) -> bool {
        self.inner.borrow().closed
    }

    /// The server's address as given to `connect`.
    #[wasm_bindgen(getter)]
    pub fn url(&self) -> String {
        self.inner.borrow().url.clone()
    }

    /// Requests waiting for their reply.
    #[wasm_bindgen(getter, js_name = inFlight)]
    pub fn in_flight(&self) -> usize {
        self.inner.borrow().client.in_flight()
    }
}
