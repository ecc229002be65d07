//! The documents of a collection under `/c/{collection}`: each route builds
//! the payload of one protocol command (spec section 3) and answers with
//! the reply's DATA as JSON.
//!
//! | route | command | reply |
//! |---|---|---|
//! | `GET /c/{c}?query=&fields=&order=&limit=` | GET | 200, the documents |
//! | `GET /c/{c}/_count?query=` | COUNT | 200, the number |
//! | `GET /c/{c}/{id}?fields=` | GET by id | 200, the document; 404 |
//! | `POST /c/{c}` | POST | 201, the document |
//! | `PUT`, `PATCH`, `DELETE /c/{c}?query=` | PUT, PATCH, DELETE | 200, the ids |
//! | `PUT`, `PATCH`, `DELETE /c/{c}/{id}` | the same by id | 200, the ids; 404 |
//!
//! URL parameters hold what the protocol's keys hold: `query` is JSON,
//! `fields`, `order` and `limit` are JSON or, when they do not parse as
//! JSON, a string (`order=desc(n)`). A write carries the `Lock-Id` and
//! `Lock-Strategy` (`fail` or `wait`) headers as LOCK_ID and LOCK_STRATEGY.

use std::sync::Arc;

use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use bytes::Bytes;
use canhazdb_core::protocol::{Command, Key, Status};
use serde::Deserialize;
use serde_json::{json, Value};

use super::call::{self, Payload};
use super::errors::{http_status, ApiError};
use super::Http;

/// The request header that carries LOCK_ID.
pub const LOCK_ID_HEADER: &str = "lock-id";
/// The request header that carries LOCK_STRATEGY.
pub const LOCK_STRATEGY_HEADER: &str = "lock-strategy";

pub fn routes() -> Router<Arc<Http>> {
    Router::new()
        .route(
            "/c/{collection}",
            get(list)
                .post(post)
                .put(put_matching)
                .patch(patch_matching)
                .delete(delete_matching),
        )
        .route("/c/{collection}/_count", get(count))
        .route(
            "/c/{collection}/{id}",
            get(get_one).put(put_one).patch(patch_one).delete(delete_one),
        )
}

/// URL parameters of GET.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ReadParams {
    query: Option<String>,
    fields: Option<String>,
    order: Option<String>,
    limit: Option<String>,
}

/// URL parameters of COUNT and of writes.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct QueryParam {
    query: Option<String>,
}

/// URL parameters of GET by id.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FieldsParam {
    fields: Option<String>,
}

/// A payload naming `collection`.
fn payload(collection: String) -> Payload {
    let mut payload = Payload::new();
    payload.insert(Key::CollectionId.as_str().to_owned(), Value::String(collection));
    payload
}

fn put(payload: &mut Payload, key: Key, value: Value) {
    payload.insert(key.as_str().to_owned(), value);
}

/// The `query` parameter, which must be JSON.
fn put_query(payload: &mut Payload, query: Option<String>) -> Result<(), ApiError> {
    if let Some(query) = query {
        let query = serde_json::from_str(&query).map_err(|error| {
            ApiError::bad_request(format!("the query parameter is not valid JSON: {error}"))
        })?;
        put(payload, Key::Query, query);
    }
    Ok(())
}

/// A parameter that is JSON, or else a string (`order=desc(n)`).
fn put_json_or_string(payload: &mut Payload, key: Key, value: Option<String>) {
    if let Some(value) = value {
        let value = serde_json::from_str(&value).unwrap_or(Value::String(value));
        put(payload, key, value);
    }
}

/// The query of one document.
fn by_id(payload: &mut Payload, id: String) {
    put(payload, Key::Query, json!({ "id": id }));
}

/// The request body: one JSON object. Any content type is accepted, so
/// that `curl -d` works as it is.
fn put_document(payload: &mut Payload, body: Bytes) -> Result<(), ApiError> {
    let document: Value = serde_json::from_slice(&body)
        .map_err(|error| ApiError::bad_request(format!("the body is not valid JSON: {error}")))?;
    put(payload, Key::Data, document);
    Ok(())
}

/// The lock headers of a write.
fn put_lock(payload: &mut Payload, headers: &HeaderMap) -> Result<(), ApiError> {
    for (header, key) in [
        (LOCK_ID_HEADER, Key::LockId),
        (LOCK_STRATEGY_HEADER, Key::LockStrategy),
    ] {
        if let Some(value) = headers.get(header) {
            let value = value
                .to_str()
                .map_err(|_| ApiError::bad_request(format!("the {header} header must be visible ASCII")))?;
            put(payload, key, Value::String(value.to_owned()));
        }
    }
    Ok(())
}

/// Runs `command`; answers with the reply's status and DATA.
async fn answer(http: &Http, command: Command, payload: Payload) -> Result<Response, ApiError> {
    let reply = call::run(&http.node, call::one_off(&http.node), command, payload).await?;
    let status = http_status(reply.status.unwrap_or(Status::Ok));
    Ok((status, Json(reply.data.unwrap_or(Value::Null))).into_response())
}

/// Runs a command on one document; 404 when there is no such document.
async fn answer_one(
    http: &Http,
    command: Command,
    payload: Payload,
    collection: &str,
    id: &str,
) -> Result<Response, ApiError> {
    let reply = call::run(&http.node, call::one_off(&http.node), command, payload).await?;
    let data = reply.data.unwrap_or(Value::Null);
    let found = match &data {
        Value::Array(items) => items.first().cloned(),
        _ => None,
    };
    match found {
        // GET by id answers the document itself; a write, its id list.
        Some(document) if command == Command::Get => Ok(Json(document).into_response()),
        Some(_) => Ok((StatusCode::OK, Json(data)).into_response()),
        None => Err(ApiError::not_found(format!(
            "collection \"{collection}\" has no document \"{id}\""
        ))),
    }
}

async fn list(
    State(http): State<Arc<Http>>,
    Path(collection): Path<String>,
    Query(params): Query<ReadParams>,
) -> Result<Response, ApiError> {
    let mut payload = payload(collection);
    put_query(&mut payload, params.query)?;
    put_json_or_string(&mut payload, Key::Fields, params.fields);
    put_json_or_string(&mut payload, Key::Order, params.order);
    put_json_or_string(&mut payload, Key::Limit, params.limit);
    answer(&http, Command::Get, payload).await
}

async fn count(
    State(http): State<Arc<Http>>,
    Path(collection): Path<String>,
    Query(params): Query<QueryParam>,
) -> Result<Response, ApiError> {
    let mut payload = payload(collection);
    put_query(&mut payload, params.query)?;
    answer(&http, Command::Count, payload).await
}

async fn get_one(
    State(http): State<Arc<Http>>,
    Path((collection, id)): Path<(String, String)>,
    Query(params): Query<FieldsParam>,
) -> Result<Response, ApiError> {
    let mut payload = payload(collection.clone());
    by_id(&mut payload, id.clone());
    put_json_or_string(&mut payload, Key::Fields, params.fields);
    answer_one(&http, Command::Get, payload, &collection, &id).await
}

async fn post(
    State(http): State<Arc<Http>>,
    Path(collection): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, ApiError> {
    let mut payload = payload(collection);
    put_document(&mut payload, body)?;
    put_lock(&mut payload, &headers)?;
    answer(&http, Command::Post, payload).await
}

/// PUT, PATCH or DELETE of every document `query` matches.
async fn write_matching(
    http: &Http,
    command: Command,
    collection: String,
    params: QueryParam,
    headers: &HeaderMap,
    body: Option<Bytes>,
) -> Result<Response, ApiError> {
    let mut payload = payload(collection);
    put_query(&mut payload, params.query)?;
    if let Some(body) = body {
        put_document(&mut payload, body)?;
    }
    put_lock(&mut payload, headers)?;
    answer(http, command, payload).await
}

/// PUT, PATCH or DELETE of the document `id`.
async fn write_one(
    http: &Http,
    command: Command,
    (collection, id): (String, String),
    headers: &HeaderMap,
    body: Option<Bytes>,
) -> Result<Response, ApiError> {
    let mut payload = payload(collection.clone());
    by_id(&mut payload, id.clone());
    if let Some(body) = body {
        put_document(&mut payload, body)?;
    }
    put_lock(&mut payload, headers)?;
    answer_one(http, command, payload, &collection, &id).await
}

async fn put_matching(
    State(http): State<Arc<Http>>,
    Path(collection): Path<String>,
    Query(params): Query<QueryParam>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, ApiError> {
    write_matching(&http, Command::Put, collection, params, &headers, Some(body)).await
}

async fn patch_matching(
    State(http): State<Arc<Http>>,
    Path(collection): Path<String>,
    Query(params): Query<QueryParam>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, ApiError> {
    write_matching(&http, Command::Patch, collection, params, &headers, Some(body)).await
}

async fn delete_matching(
    State(http): State<Arc<Http>>,
    Path(collection): Path<String>,
    Query(params): Query<QueryParam>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    write_matching(&http, Command::Delete, collection, params, &headers, None).await
}

async fn put_one(
    State(http): State<Arc<Http>>,
    Path(path): Path<(String, String)>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, ApiError> {
    write_one(&http, Command::Put, path, &headers, Some(body)).await
}

async fn patch_one(
    State(http): State<Arc<Http>>,
    Path(path): Path<(String, String)>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, ApiError> {
    write_one(&http, Command::Patch, path, &headers, Some(body)).await
}

async fn delete_one(
    State(http): State<Arc<Http>>,
    Path(path): Path<(String, String)>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    write_one(&http, Command::Delete, path, &headers, None).await
}
