//! A raw frame connection to a server, built on the core frame codec.
//!
//! Every read is bounded by a timeout, so a server that hangs fails the test
//! instead of wedging CI. Frames that arrive while the test waits for
//! something else (a pushed NOTIFY, another request's reply) are stashed and
//! handed out by the next read that asks for them.

use std::collections::VecDeque;
use std::fmt;
use std::net::SocketAddr;
use std::time::Duration;

use bytes::BytesMut;
use canhazdb_core::frame::{Frame, FrameDecoder, FrameError};
use serde_json::{Map, Value};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::tls::BoxStream;
use tokio::time::{timeout, Instant};

use crate::proto::{cmd, describe_frame, status, Reply, PUSH_ID};

/// How long a read waits for a frame that must come.
pub const READ_TIMEOUT: Duration = Duration::from_secs(5);
/// How long a test listens to prove that a frame does *not* come.
pub const QUIET: Duration = Duration::from_millis(300);

/// Why no frame could be read.
#[derive(Debug)]
pub enum ReadError {
    /// Nothing arrived in time.
    Timeout,
    /// The server closed the connection (EOF or reset).
    Closed,
    /// An IO error other than a reset.
    Io(std::io::Error),
    /// The server sent bytes that are not a frame.
    Frame(FrameError),
}

impl fmt::Display for ReadError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ReadError::Timeout => f.write_str("timed out waiting for a frame"),
            ReadError::Closed => f.write_str("the server closed the connection"),
            ReadError::Io(error) => write!(f, "io error: {error}"),
            ReadError::Frame(error) => write!(f, "undecodable bytes from the server: {error}"),
        }
    }
}

/// Writes `bytes` and flushes them: a TLS stream may hold bytes back until then.
async fn write_and_flush(stream: &mut BoxStream, bytes: &[u8]) -> std::io::Result<()> {
    stream.write_all(bytes).await?;
    stream.flush().await
}

/// One connection speaking raw frames.
pub struct RawConn {
    stream: BoxStream,
    decoder: FrameDecoder,
    buffer: BytesMut,
    /// Frames read but not yet asked for, in arrival order.
    stash: VecDeque<Frame>,
    next_id: u16,
}

impl RawConn {
    /// Connects and waits for the READY frame (asserting it is exactly
    /// `02 00 a0 01`), so later reads see only replies and NOTIFYs.
    pub async fn connect(addr: SocketAddr) -> RawConn {
        let mut conn = RawConn::connect_raw(addr).await;
        conn.wait_ready().await;
        conn
    }

    /// Connects without reading anything.
    pub async fn connect_raw(addr: SocketAddr) -> RawConn {
        match RawConn::try_connect_raw(addr).await {
            Ok(conn) => conn,
            Err(error) => panic!("{error}"),
        }
    }

    /// Connects as a node would (with the node certificate under TLS) and
    /// reads READY: for tests that speak node-to-node requests themselves.
    pub async fn connect_as_node(addr: SocketAddr) -> RawConn {
        let connected = RawConn::try_connect_presenting(addr, crate::tls::node_client).await;
        let mut conn = connected.unwrap_or_else(|error| panic!("{error}"));
        conn.wait_ready().await;
        conn
    }

    /// Sends a node-to-node request and returns the reply.
    pub async fn internal(&mut self, request: &canhazdb_core::internal::InternalRequest) -> Reply {
        let id = self.fresh_id();
        let frame = Frame::new(
            id,
            canhazdb_core::internal::INTERNAL_COMMAND,
            request.encode_payload().to_vec(),
        );
        self.send_frame(&frame).await;
        self.reply_to(id).await
    }

    /// Connects without reading anything; an error instead of a panic when
    /// the server does not accept (for polling a node that may be down).
    pub async fn try_connect_raw(addr: SocketAddr) -> Result<RawConn, String> {
        RawConn::try_connect_presenting(addr, crate::tls::harness_client).await
    }

    /// [`Self::try_connect_raw`], presenting `client()` under TLS.
    async fn try_connect_presenting(
        addr: SocketAddr,
        client: fn() -> &'static canhazdb::tls::ClientTls,
    ) -> Result<RawConn, String> {
        let stream = match timeout(READ_TIMEOUT, TcpStream::connect(addr)).await {
            Ok(Ok(stream)) => stream,
            Ok(Err(error)) => return Err(format!("cannot connect to {addr}: {error}")),
            Err(_) => return Err(format!("connecting to {addr} timed out")),
        };
        stream.set_nodelay(true).ok();
        let stream = timeout(READ_TIMEOUT, crate::tls::wrap_presenting(stream, client))
            .await
            .map_err(|_| format!("the TLS handshake with {addr} timed out"))?
            .map_err(|error| format!("{addr}: {error}"))?;
        Ok(RawConn::over(stream))
    }

    /// A connection over an established stream (plain or TLS), reading nothing yet.
    pub fn over(stream: BoxStream) -> RawConn {
        RawConn {
            stream,
            decoder: FrameDecoder::new(64 * 1024 * 1024),
            buffer: BytesMut::with_capacity(64 * 1024),
            stash: VecDeque::new(),
            next_id: 3,
        }
    }

    /// Sends a request with a fresh id and returns its reply, or why none
    /// came within `wait` (no panic: for polling).
    pub async fn try_call(&mut self, command: u8, payload: Value, wait: Duration) -> Result<Reply, String> {
        let id = self.fresh_id();
        let bytes = Frame::new(id, command, serde_json::to_vec(&payload).expect("serialisable")).to_bytes();
        match timeout(wait, write_and_flush(&mut self.stream, &bytes)).await {
            Ok(Ok(())) => {}
            Ok(Err(error)) => return Err(format!("writing the request failed: {error}")),
            Err(_) => return Err("writing the request timed out".into()),
        }
        self.reply_within(id, wait)
            .await
            .map_err(|error| error.to_string())
    }

    /// The frames stashed so far (read while waiting for something else).
    pub fn stashed(&self) -> impl Iterator<Item = &Frame> {
        self.stash.iter()
    }

    /// The underlying stream, for tests that need to misbehave.
    pub fn stream_mut(&mut self) -> &mut BoxStream {
        &mut self.stream
    }

    /// Reads the first frame and asserts it is READY: id 2, command 160, no payload.
    #[track_caller]
    pub fn wait_ready(&mut self) -> impl std::future::Future<Output = ()> + '_ {
        let caller = std::panic::Location::caller();
        async move {
            let frame = match self.next_frame(READ_TIMEOUT).await {
                Ok(frame) => frame,
                Err(error) => panic!("{caller}: expected READY (02 00 a0 01) on connect: {error}"),
            };
            assert_eq!(
                frame.to_bytes().as_ref(),
                &[0x02, 0x00, cmd::READY, 0x01],
                "{caller}: expected READY (02 00 a0 01) as the first frame, observed {}",
                describe_frame(&frame)
            );
        }
    }

    /// A fresh correlation id (3..=65535, then around again).
    pub fn fresh_id(&mut self) -> u16 {
        let id = self.next_id;
        self.next_id = if id == u16::MAX { 3 } else { id + 1 };
        id
    }

    /// Writes raw bytes.
    pub async fn send_raw(&mut self, bytes: &[u8]) {
        match timeout(READ_TIMEOUT, write_and_flush(&mut self.stream, bytes)).await {
            Ok(Ok(())) => {}
            Ok(Err(error)) => panic!("writing {} bytes failed: {error}", bytes.len()),
            Err(_) => panic!("writing {} bytes timed out", bytes.len()),
        }
    }

    /// Sends one frame with the given id, command and JSON payload (`None`:
    /// no payload).
    pub async fn send(&mut self, id: u16, command: u8, payload: Option<&Value>) {
        let payload = payload
            .map(|value| serde_json::to_vec(value).expect("serialisable"))
            .unwrap_or_default();
        self.send_frame(&Frame::new(id, command, payload)).await;
    }

    /// Sends one frame.
    pub async fn send_frame(&mut self, frame: &Frame) {
        self.send_raw(&frame.to_bytes()).await;
    }

    /// Reads the next frame off the socket (stashed frames first).
    pub async fn next_frame(&mut self, wait: Duration) -> Result<Frame, ReadError> {
        if let Some(frame) = self.stash.pop_front() {
            return Ok(frame);
        }
        self.read_frame(Instant::now() + wait).await
    }

    /// Reads from the socket until a whole frame is decoded or `deadline`.
    async fn read_frame(&mut self, deadline: Instant) -> Result<Frame, ReadError> {
        loop {
            match self.decoder.decode(&mut self.buffer) {
                Ok(Some(frame)) => return Ok(frame),
                Ok(None) => {}
                Err(error) => return Err(ReadError::Frame(error)),
            }
            let read = tokio::time::timeout_at(deadline, self.stream.read_buf(&mut self.buffer));
            match read.await {
                Err(_) => return Err(ReadError::Timeout),
                Ok(Ok(0)) => return Err(ReadError::Closed),
                Ok(Ok(_)) => {}
                Ok(Err(error)) => {
                    return Err(match error.kind() {
                        std::io::ErrorKind::ConnectionReset
                        | std::io::ErrorKind::ConnectionAborted
                        | std::io::ErrorKind::BrokenPipe => ReadError::Closed,
                        _ => ReadError::Io(error),
                    })
                }
            }
        }
    }

    /// The first frame (stashed or new) that `wanted` accepts; every other
    /// frame read meanwhile is stashed in order.
    pub async fn next_matching(
        &mut self,
        wait: Duration,
        wanted: impl Fn(&Frame) -> bool,
    ) -> Result<Frame, ReadError> {
        if let Some(at) = self.stash.iter().position(&wanted) {
            return Ok(self.stash.remove(at).expect("position is in range"));
        }
        let deadline = Instant::now() + wait;
        loop {
            let frame = self.read_frame(deadline).await?;
            if wanted(&frame) {
                return Ok(frame);
            }
            self.stash.push_back(frame);
        }
    }

    /// The reply to request `id`; panics (with the id) if none comes in time.
    pub async fn reply_to(&mut self, id: u16) -> Reply {
        self.reply_within(id, READ_TIMEOUT)
            .await
            .unwrap_or_else(|error| panic!("no reply to request id {id}: {error}"))
    }

    /// The reply to request `id`, or why none came within `wait`.
    pub async fn reply_within(&mut self, id: u16, wait: Duration) -> Result<Reply, ReadError> {
        self.next_matching(wait, |frame| frame.id == id)
            .await
            .map(Reply::from_frame)
    }

    /// Asserts that no reply to request `id` arrives within `wait`.
    pub async fn assert_no_reply(&mut self, id: u16, wait: Duration, why: &str) {
        match self.reply_within(id, wait).await {
            Err(ReadError::Timeout) => {}
            Ok(reply) => panic!(
                "expected no reply to id {id} yet ({why}), observed {}",
                reply.describe()
            ),
            Err(error) => panic!("expected no reply to id {id} yet ({why}), but: {error}"),
        }
    }

    /// The next pushed frame (id 2, e.g. NOTIFY) within `wait`.
    pub async fn pushed_within(&mut self, wait: Duration) -> Result<Frame, ReadError> {
        self.next_matching(wait, |frame| frame.id == PUSH_ID).await
    }

    /// Sends a request with a fresh id and returns its reply.
    pub async fn call(&mut self, command: u8, payload: Value) -> Reply {
        let id = self.fresh_id();
        self.send(id, command, Some(&payload)).await;
        let reply = self.reply_to(id).await;
        assert_eq!(reply.frame.id, id);
        reply
    }

    /// Sends a request with a fresh id and returns `(status byte, payload)`.
    pub async fn request(&mut self, command: u8, payload: Value) -> (u8, Option<Value>) {
        self.call(command, payload).await.into_tuple()
    }

    /// Sends a request without a payload and returns its reply.
    pub async fn call_empty(&mut self, command: u8) -> Reply {
        let id = self.fresh_id();
        self.send(id, command, None).await;
        self.reply_to(id).await
    }

    /// Waits until the server closes the connection, returning the frames
    /// that came before the close; panics if it stays open past `wait`.
    pub async fn frames_until_closed(&mut self, wait: Duration) -> Vec<Frame> {
        let deadline = Instant::now() + wait;
        let mut frames: Vec<Frame> = self.stash.drain(..).collect();
        loop {
            match self.read_frame(deadline).await {
                Ok(frame) => frames.push(frame),
                Err(ReadError::Closed) => return frames,
                Err(ReadError::Timeout) => panic!(
                    "the server kept the connection open for {wait:?}; frames so far: {:?}",
                    frames.iter().map(describe_frame).collect::<Vec<_>>()
                ),
                // Bytes after a close or reset: treat like a close.
                Err(ReadError::Io(_)) => return frames,
                Err(ReadError::Frame(error)) => {
                    panic!("undecodable bytes from the server: {error}")
                }
            }
        }
    }

    // --- conveniences over `call` -------------------------------------

    /// POSTs `document` to `collection`; asserts CREATED and returns DATA.
    pub async fn post(&mut self, collection: &str, document: Value) -> Value {
        self.call(cmd::POST, serde_json::json!({"10": collection, "20": document}))
            .await
            .expect(status::CREATED)
            .data()
            .clone()
    }

    /// GETs `collection` with extra request keys (e.g. `{"40": query}`);
    /// asserts OK and returns the documents.
    pub async fn get(&mut self, collection: &str, extra: Value) -> Vec<Value> {
        let reply = self
            .call(cmd::GET, with_collection(collection, extra))
            .await
            .expect(status::OK);
        match reply.data().as_array() {
            Some(documents) => documents.clone(),
            None => panic!("GET DATA must be an array, observed {}", reply.describe()),
        }
    }

    /// COUNTs `collection` with extra request keys; asserts OK and returns n.
    pub async fn count(&mut self, collection: &str, extra: Value) -> u64 {
        let reply = self
            .call(cmd::COUNT, with_collection(collection, extra))
            .await
            .expect(status::OK);
        match reply.data().as_u64() {
            Some(n) => n,
            None => panic!("COUNT DATA must be a number, observed {}", reply.describe()),
        }
    }

    /// Sends `command` (PUT/PATCH/DELETE) with extra keys; asserts OK and
    /// returns the sorted ids of DATA.
    pub async fn write_ids(&mut self, command: u8, collection: &str, extra: Value) -> Vec<String> {
        let reply = self
            .call(command, with_collection(collection, extra))
            .await
            .expect(status::OK);
        let ids = crate::proto::ids_of(reply.data());
        let mut unique = ids.clone();
        unique.dedup();
        assert_eq!(ids, unique, "every id must be listed once: {}", reply.describe());
        ids
    }

    /// Sends every write to `collection` (POST, PUT and PATCH with
    /// `document` as DATA, then DELETE); asserts each is refused with
    /// STATUS_BAD_REQUEST.
    pub async fn assert_writes_refused(&mut self, collection: &str, document: Value) {
        for (command, extra) in [
            (cmd::POST, serde_json::json!({"20": document})),
            (cmd::PUT, serde_json::json!({"20": document})),
            (cmd::PATCH, serde_json::json!({"20": document})),
            (cmd::DELETE, serde_json::json!({})),
        ] {
            let reply = self.call(command, with_collection(collection, extra)).await;
            assert_eq!(
                reply.status,
                status::BAD_REQUEST,
                "{collection} command {command}: observed {}",
                reply.describe()
            );
            reply.expect_error(status::BAD_REQUEST);
        }
    }

    /// LOCKs `key`; asserts OK and returns the LOCK_ID.
    pub async fn lock(&mut self, key: &str) -> Value {
        let reply = self
            .call(cmd::LOCK, serde_json::json!({"66": key}))
            .await
            .expect(status::OK);
        lock_id_of(&reply)
    }

    /// UNLOCKs `lock_id`; asserts OK `{"62": lock_id}`.
    pub async fn unlock(&mut self, lock_id: &Value) {
        let reply = self
            .call(cmd::UNLOCK, serde_json::json!({"62": lock_id}))
            .await
            .expect(status::OK);
        assert_eq!(
            reply.payload.as_ref().and_then(|p| p.get("62")),
            Some(lock_id),
            "UNLOCK must answer {{\"62\": <the lock id>}}, observed {}",
            reply.describe()
        );
    }
}

/// The LOCK_ID of a LOCK reply (a non-empty string or a number).
#[track_caller]
pub fn lock_id_of(reply: &Reply) -> Value {
    let id = reply.payload.as_ref().and_then(|p| p.get("62")).cloned();
    match id {
        Some(Value::String(text)) if !text.is_empty() => Value::String(text),
        Some(Value::Number(number)) => Value::Number(number),
        _ => panic!(
            "a granted LOCK must answer OK {{\"62\": <lock id>}}, observed {}",
            reply.describe()
        ),
    }
}

/// `{"10": collection}` plus the keys of `extra` (an object or null).
pub fn with_collection(collection: &str, extra: Value) -> Value {
    let mut map = Map::new();
    map.insert("10".into(), Value::String(collection.into()));
    if let Value::Object(extra) = extra {
        map.extend(extra);
    }
    Value::Object(map)
}
