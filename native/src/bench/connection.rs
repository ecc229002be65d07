//! What a run drives: a binary-protocol client (many requests in flight on
//! it) or one REST connection of `--http` (one at a time).

use std::sync::Arc;

use canhazdb::client::{Client, Error};
use canhazdb_core::client::Response;
use canhazdb_core::message::Request;

use super::rest::RestConnection;

/// One connection of the bench; clones share it.
#[derive(Clone)]
pub enum Connection {
    Binary(Client),
    Rest(Arc<RestConnection>),
}

impl Connection {
    pub async fn request(&self, request: Request) -> Result<Response, Error> {
        match self {
            Connection::Binary(client) => client.request(request).await,
            Connection::Rest(rest) => rest.request(request).await,
        }
    }
}
