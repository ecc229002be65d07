//! A small HTTP/1.1 client for the HTTP port (hyper's), over the same
//! streams as [`RawConn`](crate::raw::RawConn): plain TCP, or mutual TLS
//! with the harness's client certificate when the TLS switch is on. Every
//! request and every read is bounded in time.

use std::net::SocketAddr;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::Request;
use hyper_util::rt::TokioIo;
use serde_json::Value;

use crate::tls::BoxStream;

/// How long a request may take, from connecting to its last body byte.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(20);

/// A reply: status, headers and the whole body.
#[derive(Debug)]
pub struct HttpReply {
    pub status: u16,
    pub headers: hyper::HeaderMap,
    pub body: Bytes,
}

impl HttpReply {
    /// The body as JSON; panics, showing it, if it is not.
    #[track_caller]
    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.body)
            .unwrap_or_else(|error| panic!("not JSON ({error}): {}", String::from_utf8_lossy(&self.body)))
    }

    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    /// Panics unless the status is `status`, showing the body.
    #[track_caller]
    pub fn expect(self, status: u16) -> HttpReply {
        assert_eq!(self.status, status, "unexpected status; body: {}", self.text());
        self
    }

    /// Asserts the JSON error body of a failure: the protocol status
    /// number and name.
    #[track_caller]
    pub fn expect_error(self, http: u16, status: u8, code: &str) -> HttpReply {
        let reply = self.expect(http);
        let body = reply.json();
        assert_eq!(body["status"], status, "{body}");
        assert_eq!(body["code"], code, "{body}");
        assert!(body["error"].as_str().is_some_and(|e| !e.is_empty()), "{body}");
        reply
    }
}

/// A request to send.
pub struct HttpRequest {
    pub method: &'static str,
    pub path: String,
    pub headers: Vec<(&'static str, String)>,
    pub body: Vec<u8>,
}

impl HttpRequest {
    pub fn new(method: &'static str, path: impl Into<String>) -> HttpRequest {
        HttpRequest {
            method,
            path: path.into(),
            headers: Vec::new(),
            body: Vec::new(),
        }
    }

    pub fn json(mut self, body: &Value) -> Self {
        self.body = body.to_string().into_bytes();
        self
    }

    pub fn body(mut self, body: impl Into<Vec<u8>>) -> Self {
        self.body = body.into();
        self
    }

    pub fn header(mut self, name: &'static str, value: impl Into<String>) -> Self {
        self.headers.push((name, value.into()));
        self
    }

    fn build(self) -> Request<Full<Bytes>> {
        let mut request = Request::builder()
            .method(self.method)
            .uri(self.path.as_str())
            .header("host", "127.0.0.1");
        for (name, value) in self.headers {
            request = request.header(name, value);
        }
        request
            .body(Full::new(Bytes::from(self.body)))
            .expect("a valid request")
    }
}

/// Sends `request` on a connection of its own to `addr`.
pub async fn send(addr: SocketAddr, request: HttpRequest) -> Result<HttpReply, String> {
    let stream = crate::tls::connect(addr).await?;
    send_over(stream, request).await
}

/// Sends `request` over an open stream (TLS or not).
pub async fn send_over(stream: BoxStream, request: HttpRequest) -> Result<HttpReply, String> {
    let exchange = async {
        let response = open_over(stream, request).await?;
        let status = response.status().as_u16();
        let headers = response.headers().clone();
        let body = response
            .into_body()
            .collect()
            .await
            .map_err(|error| format!("reading the body failed: {error}"))?
            .to_bytes();
        Ok(HttpReply {
            status,
            headers,
            body,
        })
    };
    tokio::time::timeout(REQUEST_TIMEOUT, exchange)
        .await
        .map_err(|_| format!("no complete reply within {REQUEST_TIMEOUT:?}"))?
}

/// Sends `request` and returns the response once its head arrived; its body
/// is read as it comes (a change feed).
async fn open_over(stream: BoxStream, request: HttpRequest) -> Result<hyper::Response<Incoming>, String> {
    let (mut sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .map_err(|error| format!("HTTP handshake failed: {error}"))?;
    // Ends when the response is done and the sender gone.
    tokio::spawn(connection);
    sender
        .send_request(request.build())
        .await
        .map_err(|error| format!("the request failed: {error}"))
}

pub async fn get(addr: SocketAddr, path: impl Into<String>) -> HttpReply {
    call(addr, HttpRequest::new("GET", path)).await
}

/// Sends `request`; panics if there is no reply.
pub async fn call(addr: SocketAddr, request: HttpRequest) -> HttpReply {
    let (method, path) = (request.method, request.path.clone());
    send(addr, request)
        .await
        .unwrap_or_else(|error| panic!("{method} {path}: {error}"))
}

/// `text` percent-encoded for a URL parameter.
pub fn encode(text: &str) -> String {
    let mut encoded = String::new();
    for byte in text.bytes() {
        if byte.is_ascii_alphanumeric() || b"-._~".contains(&byte) {
            encoded.push(byte as char);
        } else {
            encoded.push_str(&format!("%{byte:02X}"));
        }
    }
    encoded
}

/// A Server-Sent Events stream being read.
pub struct EventStream {
    body: Incoming,
    pending: String,
}

impl EventStream {
    /// Opens `GET path` on `addr` as an event stream; the response's status
    /// and the stream (`None` when the status is not 200, with the body).
    pub async fn open(addr: SocketAddr, path: impl Into<String>) -> Result<EventStream, HttpReply> {
        let stream = crate::tls::connect(addr).await.expect("connect to the HTTP port");
        let request = HttpRequest::new("GET", path).header("accept", "text/event-stream");
        let response = tokio::time::timeout(REQUEST_TIMEOUT, open_over(stream, request))
            .await
            .expect("the event stream answers in time")
            .expect("the event stream answers");
        let status = response.status().as_u16();
        if status != 200 {
            let headers = response.headers().clone();
            let body = response
                .into_body()
                .collect()
                .await
                .map(|b| b.to_bytes())
                .unwrap_or_default();
            return Err(HttpReply {
                status,
                headers,
                body,
            });
        }
        Ok(EventStream {
            body: response.into_body(),
            pending: String::new(),
        })
    }

    /// The data of the next event named `change` (keep-alive comments are
    /// skipped), `None` if none came within `wait`; panics if the stream
    /// ended.
    pub async fn next_change(&mut self, wait: Duration) -> Option<String> {
        let deadline = tokio::time::Instant::now() + wait;
        loop {
            if let Some(end) = self.pending.find("\n\n") {
                let event: String = self.pending.drain(..end + 2).collect();
                let mut name = None;
                let mut data = None;
                for line in event.lines() {
                    if let Some(value) = line.strip_prefix("event: ") {
                        name = Some(value.to_owned());
                    } else if let Some(value) = line.strip_prefix("data: ") {
                        data = Some(value.to_owned());
                    }
                }
                if name.as_deref() == Some("change") {
                    return data;
                }
                continue;
            }
            let frame = match tokio::time::timeout_at(deadline, self.body.frame()).await {
                Err(_) => return None,
                Ok(None) => panic!("the event stream ended"),
                Ok(Some(Err(error))) => panic!("the event stream failed: {error}"),
                Ok(Some(Ok(frame))) => frame,
            };
            if let Ok(data) = frame.into_data() {
                self.pending.push_str(&String::from_utf8_lossy(&data));
            }
        }
    }

    /// Every change that arrives within `wait`.
    pub async fn changes_within(&mut self, wait: Duration) -> Vec<String> {
        let deadline = tokio::time::Instant::now() + wait;
        let mut changes = Vec::new();
        loop {
            let left = deadline.saturating_duration_since(tokio::time::Instant::now());
            match self.next_change(left).await {
                Some(change) => changes.push(change),
                None => return changes,
            }
        }
    }
}
