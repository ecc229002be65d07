//! `--http`: the same requests through the HTTP port's REST routes
//! (`/c/…`), over HTTP/1.1 keep-alive connections.
//!
//! HTTP/1.1 has no usable pipelining, so a connection carries one request
//! at a time; the bench opens one connection per request in flight instead
//! (see [`super::cli::Args::http_connections`]). Each request becomes the
//! route a REST client would use for it, and each response the reply the
//! binary client would have given, so the workloads and their outcomes are
//! the same for both transports.

use std::sync::Arc;

use bytes::Bytes;
use canhazdb::client::{Error, Status};
use canhazdb_core::client::Response;
use canhazdb_core::message::{ReadOptions, Request};
use http_body_util::{BodyExt, Full};
use hyper::client::conn::http1::{self, SendRequest};
use hyper::header::{CONTENT_TYPE, HOST};
use hyper::{Method, StatusCode};
use hyper_util::rt::TokioIo;
use percent_encoding::{utf8_percent_encode, NON_ALPHANUMERIC};
use serde_json::Value;

/// One keep-alive connection to the HTTP port.
pub struct RestConnection {
    host: String,
    /// HTTP/1.1 allows one exchange at a time on a connection; the lock
    /// makes a second worker on the same connection wait its turn.
    sender: tokio::sync::Mutex<SendRequest<Full<Bytes>>>,
}

/// What a response should hold, by the request it answers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Expect {
    /// POST: the stored document.
    Document,
    /// GET by id: the document, or 404 (a miss, as an empty result).
    OneDocument,
    /// GET by query: the documents.
    Documents,
    /// COUNT: the number.
    Count,
    /// PATCH by id: its id list, or 404 (a miss, as an empty list).
    OneId,
    /// PATCH by query: the ids.
    Ids,
}

/// The REST form of a request.
#[derive(Debug, PartialEq)]
struct Route {
    method: Method,
    path: String,
    body: Option<Value>,
    expect: Expect,
}

impl RestConnection {
    pub async fn connect(address: &str) -> Result<RestConnection, Error> {
        let stream = tokio::net::TcpStream::connect(address).await.map_err(io_error)?;
        // Small requests and replies: do not let Nagle hold them back.
        stream.set_nodelay(true).map_err(io_error)?;
        let (sender, connection) = http1::handshake(TokioIo::new(stream))
            .await
            .map_err(hyper_error)?;
        tokio::spawn(async move {
            // Ends when the sender is dropped or the server closes; the
            // next request on it reports the error.
            let _ = connection.await;
        });
        Ok(RestConnection {
            host: address.to_owned(),
            sender: tokio::sync::Mutex::new(sender),
        })
    }

    /// Sends `request` as its REST route and waits for the whole response.
    pub async fn request(&self, request: Request) -> Result<Response, Error> {
        let route = Route::of(request)?;
        let body = match &route.body {
            Some(body) => {
                Bytes::from(serde_json::to_vec(body).map_err(|e| Error::InvalidArgument(e.to_string()))?)
            }
            None => Bytes::new(),
        };
        let http_request = hyper::Request::builder()
            .method(route.method.clone())
            .uri(&route.path)
            .header(HOST, &self.host)
            .header(CONTENT_TYPE, "application/json")
            .body(Full::new(body))
            .map_err(|error| Error::InvalidArgument(error.to_string()))?;
        let mut sender = self.sender.lock().await;
        sender.ready().await.map_err(hyper_error)?;
        let response = sender.send_request(http_request).await.map_err(hyper_error)?;
        let status = response.status();
        let body = response
            .into_body()
            .collect()
            .await
            .map_err(hyper_error)?
            .to_bytes();
        drop(sender);
        route.expect.response(status, &body)
    }
}

impl Route {
    /// The route of `request`: by id (`/c/{c}/{id}`) when its query is
    /// exactly `{"id": "…"}`, else with a `query` parameter.
    fn of(request: Request) -> Result<Route, Error> {
        let collection_path = |collection: &str| format!("/c/{}", encode(collection));
        let route = match request {
            Request::Post {
                collection, document, ..
            } => Route {
                method: Method::POST,
                path: collection_path(collection.as_str()),
                body: Some(Value::Object(document)),
                expect: Expect::Document,
            },
            Request::Get { collection, read } => {
                let ReadOptions {
                    query,
                    fields: None,
                    order: None,
                    limit: None,
                } = read
                else {
                    return Err(unsupported("GET with fields, order or limit"));
                };
                let collection = collection_path(collection.as_str());
                match id_of(query.as_ref()) {
                    Some(id) => Route {
                        method: Method::GET,
                        path: format!("{collection}/{}", encode(id)),
                        body: None,
                        expect: Expect::OneDocument,
                    },
                    None => Route {
                        method: Method::GET,
                        path: with_query(collection, query.as_ref()),
                        body: None,
                        expect: Expect::Documents,
                    },
                }
            }
            Request::Count { collection, query } => Route {
                method: Method::GET,
                path: with_query(
                    format!("{}/_count", collection_path(collection.as_str())),
                    query.as_ref(),
                ),
                body: None,
                expect: Expect::Count,
            },
            Request::Patch {
                collection,
                patch,
                query,
                ..
            } => {
                let collection = collection_path(collection.as_str());
                let (path, expect) = match id_of(query.as_ref()) {
                    Some(id) => (format!("{collection}/{}", encode(id)), Expect::OneId),
                    None => (with_query(collection, query.as_ref()), Expect::Ids),
                };
                Route {
                    method: Method::PATCH,
                    path,
                    body: Some(Value::Object(patch)),
                    expect,
                }
            }
            _ => return Err(unsupported("this command")),
        };
        Ok(route)
    }
}

impl Expect {
    /// The reply the binary client would have given for this response.
    fn response(self, status: StatusCode, body: &[u8]) -> Result<Response, Error> {
        let missing = status == StatusCode::NOT_FOUND;
        match self {
            Expect::OneDocument if missing => return Ok(Response::Documents(Vec::new())),
            Expect::OneId if missing => return Ok(Response::Ids(Vec::new())),
            _ if !status.is_success() => return Err(server_error(status, body)),
            _ => {}
        }
        let value: Value =
            serde_json::from_slice(body).map_err(|error| protocol(format!("{status}: {error}")))?;
        let response = match (self, value) {
            (Expect::Document, document) => Response::Document(document),
            (Expect::OneDocument, document) => Response::Documents(vec![document]),
            (Expect::Documents, Value::Array(documents)) => Response::Documents(documents),
            (Expect::Count, Value::Number(count)) => {
                Response::Count(count.as_u64().ok_or_else(|| protocol(format!("count {count}")))?)
            }
            (Expect::OneId | Expect::Ids, Value::Array(ids)) => Response::Ids(
                ids.into_iter()
                    .map(|id| match id {
                        Value::String(id) => Ok(id),
                        other => Err(protocol(format!("id {other}"))),
                    })
                    .collect::<Result<_, _>>()?,
            ),
            (expect, other) => return Err(protocol(format!("{expect:?} expected, got {other}"))),
        };
        Ok(response)
    }
}

/// The id of a query that is exactly `{"id": "…"}`.
fn id_of(query: Option<&Value>) -> Option<&str> {
    let query = query?.as_object()?;
    match query.len() {
        1 => query.get("id")?.as_str(),
        _ => None,
    }
}

/// `path` with the `query` URL parameter, if there is a query.
fn with_query(path: String, query: Option<&Value>) -> String {
    match query {
        Some(query) => format!("{path}?query={}", encode(&query.to_string())),
        None => path,
    }
}

fn encode(text: &str) -> String {
    utf8_percent_encode(text, NON_ALPHANUMERIC).to_string()
}

/// A failure response, `{"status":121,"code":"STATUS_BAD_REQUEST","error":"…"}`,
/// as the binary client's error for that status.
fn server_error(status: StatusCode, body: &[u8]) -> Error {
    let error: Value = serde_json::from_slice(body).unwrap_or(Value::Null);
    match error["status"].as_u64().and_then(|code| u8::try_from(code).ok()) {
        Some(code) => Error::Server {
            status: Status::from_u8(code),
            code,
            message: error["error"].as_str().map(str::to_owned),
        },
        None => protocol(format!("HTTP {status} without a protocol status")),
    }
}

fn unsupported(what: &str) -> Error {
    Error::InvalidArgument(format!("--http does not send {what}"))
}

fn protocol(message: String) -> Error {
    Error::Protocol(message)
}

fn io_error(error: std::io::Error) -> Error {
    Error::Io(Arc::new(error))
}

/// A failed exchange: the connection is unusable, as a closed socket is to
/// the binary client.
fn hyper_error(error: impl std::error::Error + Send + Sync + 'static) -> Error {
    io_error(std::io::Error::other(error))
}

#[cfg(test)]
mod tests {
    use canhazdb_core::message::{CollectionId, LockOptions};
    use serde_json::json;

    use super::*;

    fn collection() -> CollectionId {
        CollectionId::new("bench").unwrap()
    }

    #[test]
    fn requests_take_the_route_a_rest_client_would() {
        let get_by_id = Route::of(Request::Get {
            collection: collection(),
            read: ReadOptions::with_query(Some(json!({"id": "b000000042"}))),
        })
        .unwrap();
        assert_eq!(
            (get_by_id.method, get_by_id.path.as_str()),
            (Method::GET, "/c/bench/b000000042")
        );
        assert_eq!(get_by_id.expect, Expect::OneDocument);
        let get_by_query = Route::of(Request::Get {
            collection: collection(),
            read: ReadOptions::with_query(Some(json!({"seq": 42}))),
        })
        .unwrap();
        assert_eq!(get_by_query.path, "/c/bench?query=%7B%22seq%22%3A42%7D");
        let count = Route::of(Request::Count {
            collection: collection(),
            query: None,
        })
        .unwrap();
        assert_eq!(
            (count.path.as_str(), count.expect),
            ("/c/bench/_count", Expect::Count)
        );
        let post = Route::of(Request::Post {
            collection: collection(),
            document: json!({"n": 1}).as_object().unwrap().clone(),
            lock: LockOptions::default(),
        })
        .unwrap();
        assert_eq!((post.method, post.body), (Method::POST, Some(json!({"n": 1}))));
        let ordered = ReadOptions {
            order: Some(json!("desc(n)")),
            ..ReadOptions::default()
        };
        assert!(Route::of(Request::Get {
            collection: collection(),
            read: ordered
        })
        .is_err());
    }

    #[test]
    fn responses_become_the_binary_clients_replies() {
        let found = Expect::OneDocument
            .response(StatusCode::OK, br#"{"id":"a"}"#)
            .unwrap();
        assert_eq!(found, Response::Documents(vec![json!({"id": "a"})]));
        let missing = Expect::OneDocument
            .response(StatusCode::NOT_FOUND, br#"{"status":122}"#)
            .unwrap();
        assert_eq!(missing, Response::Documents(Vec::new()));
        assert_eq!(
            Expect::Count.response(StatusCode::OK, b"7").unwrap(),
            Response::Count(7)
        );
        let refused = Expect::Document
            .response(
                StatusCode::BAD_REQUEST,
                br#"{"status":121,"code":"STATUS_BAD_REQUEST","error":"duplicate"}"#,
            )
            .unwrap_err();
        assert_eq!(refused.status(), Some(Status::BadRequest));
    }
}
