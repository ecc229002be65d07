//! Node-to-node messages (spec section 5): the same frames on the same port,
//! marked INTERNAL. Every internal request uses command byte
//! [`INTERNAL_COMMAND`] (v8's RAFT_SYSTEM_PROTO number, which the spec leaves
//! free for the implementation) with the payload
//! `{"2": true, "20": <InternalRequest>}`; the reply is STATUS_OK with
//! `{"20": <InternalReply>}`, or a failure status with ERROR.

use bytes::Bytes;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::fence::Fence;
use crate::message::{parse_payload, MessageError, Reply};
use crate::protocol::{Key, Status};

/// The command byte of node-to-node requests.
pub const INTERNAL_COMMAND: u8 = 80;

/// A node as its peers know it.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct Member {
    pub name: String,
    /// `host:port` of the node's TCP listener.
    pub address: String,
}

/// What a node tells a peer about itself: exchanged on connect and as the
/// heartbeat.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Hello {
    pub member: Member,
    /// Every node this node knows, itself included.
    pub known: Vec<Member>,
    /// Whether the node serves clients (majority seen, nothing to repair).
    pub healthy: bool,
    /// Whether the node belongs to an initialised Raft cluster.
    pub raft_initialized: bool,
}

/// The change a PUT, PATCH or DELETE makes to each matched document.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum Change {
    /// PUT: replace the document (its `id` kept).
    Replace(Map<String, Value>),
    /// PATCH: merge top-level keys.
    Merge(Map<String, Value>),
    /// DELETE.
    Delete,
}

/// A document a node changed, with its replica list, so the coordinator can
/// tell which replicas missed the change.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChangedReplica {
    pub id: String,
    pub replicas: Vec<String>,
    /// Whether the answering node is the document's primary replica under the
    /// coordinator's online view (it reports the id to the client).
    pub primary: bool,
}

/// A replica that missed a write: `target` must refresh document
/// `document_id` of `collection` from another replica before it serves.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct Repair {
    /// Unique id of the record (coordinator-chosen).
    pub id: String,
    pub target: String,
    pub collection: String,
    pub document_id: String,
    /// The missed write deleted the document: if no serving replica has it
    /// any more, the target removes its copy too.
    #[serde(default)]
    pub deleted: bool,
}

/// A document with its bookkeeping, as one node holds it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ReplicaCopy {
    pub document: Value,
    pub replicas: Vec<String>,
}

/// A node-to-node request.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum InternalRequest {
    /// Membership and health exchange.
    Hello(Hello),
    /// Store a replica of a new document.
    StoreReplica {
        collection: String,
        document: Value,
        replicas: Vec<String>,
    },
    /// This node's share of a GET: documents whose primary replica it is
    /// under `online`, ordered and limited.
    Find {
        collection: String,
        query: Option<Value>,
        order: Option<Value>,
        limit: Option<usize>,
        online: Vec<String>,
    },
    /// This node's share of a COUNT under `online`.
    Count {
        collection: String,
        query: Option<Value>,
        online: Vec<String>,
    },
    /// This node's share of system.collections under `online`: each of its
    /// collections with the number of documents it reports.
    Collections { online: Vec<String> },
    /// This node's notify registrations, as system.notifys documents.
    Notifys,
    /// Apply a PUT/PATCH/DELETE to this node's replicas, if the lock it was
    /// coordinated under is still held ([`Fence`]).
    Update {
        collection: String,
        query: Option<Value>,
        change: Change,
        online: Vec<String>,
        fence: Fence,
    },
    /// Delete this node's replica of a POST that was refused (it was never
    /// acknowledged, so no lock orders it against other writes).
    Withdraw { collection: String, id: String },
    /// Deliver notify paths to this node's matching connections.
    Publish { paths: Vec<String> },
    /// Keep a copy of repair records (for durability beyond the coordinator).
    RecordRepairs { repairs: Vec<Repair> },
    /// Every repair record held for `target`.
    FetchRepairs { target: String },
    /// `target` applied these repairs: forget them.
    AckRepairs { target: String, ids: Vec<String> },
    /// This node's copy of one document, if it has one.
    FetchDocument { collection: String, id: String },
    /// Ask this (Raft member) node to add `member` as a voter.
    JoinRaft { member: Member },
    /// An openraft message, opaque to the core.
    Raft(Value),
}

/// The answer to an [`InternalRequest`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum InternalReply {
    Hello(Hello),
    Done,
    Documents(Vec<Value>),
    Count(u64),
    Collections(Vec<(String, u64)>),
    Changed(Vec<ChangedReplica>),
    Repairs(Vec<Repair>),
    Document(Option<ReplicaCopy>),
    Raft(Value),
}

impl InternalRequest {
    /// The frame payload: `{"2": true, "20": <request>}`.
    pub fn encode_payload(&self) -> Bytes {
        let mut map = Map::new();
        map.insert(Key::Internal.as_str().into(), Value::Bool(true));
        map.insert(
            Key::Data.as_str().into(),
            serde_json::to_value(self).unwrap_or(Value::Null),
        );
        Bytes::from(serde_json::to_vec(&map).unwrap_or_default())
    }

    /// Decodes a payload; `None` if it is not marked INTERNAL.
    pub fn decode_payload(payload: &[u8]) -> Result<Option<InternalRequest>, MessageError> {
        let mut map = parse_payload(payload)?;
        let internal = matches!(map.get(Key::Internal.as_str()), Some(Value::Bool(true)));
        if !internal {
            return Ok(None);
        }
        let data = map.remove(Key::Data.as_str()).unwrap_or(Value::Null);
        serde_json::from_value(data)
            .map(Some)
            .map_err(|error| MessageError::InvalidJson(format!("internal request: {error}")))
    }
}

impl InternalReply {
    /// The reply for a successful internal request.
    pub fn into_reply(self) -> Reply {
        Reply::with_data(Status::Ok, serde_json::to_value(self).unwrap_or(Value::Null))
    }

    /// Reads the reply of an internal request: `Err` carries the failure's
    /// status and message.
    pub fn from_reply(code: u8, reply: Reply) -> Result<InternalReply, (u8, String)> {
        if code != Status::Ok.as_u8() {
            return Err((code, reply.error.unwrap_or_else(|| format!("status {code}"))));
        }
        let data = reply.data.unwrap_or(Value::Null);
        serde_json::from_value(data).map_err(|error| (code, format!("malformed internal reply: {error}")))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn requests_round_trip_through_payloads() {
        let requests = vec![
            InternalRequest::Hello(Hello {
                member: Member {
                    name: "a".into(),
                    address: "127.0.0.1:1".into(),
                },
                known: vec![],
                healthy: true,
                raft_initialized: false,
            }),
            InternalRequest::Find {
                collection: "t".into(),
                query: Some(json!({"a": 1})),
                order: None,
                limit: Some(3),
                online: vec!["a".into()],
            },
            InternalRequest::Update {
                collection: "t".into(),
                query: None,
                change: Change::Merge(json!({"x": 1}).as_object().unwrap().clone()),
                online: vec![],
                fence: crate::fence::Fence {
                    lock_id: "l".into(),
                    coordinator: "a".into(),
                    sequence: 7,
                },
            },
            InternalRequest::Raft(json!({"anything": [1, 2]})),
        ];
        for request in requests {
            let payload = request.encode_payload();
            assert!(payload.starts_with(br#"{"2":true"#));
            assert_eq!(InternalRequest::decode_payload(&payload).unwrap(), Some(request));
        }
    }

    #[test]
    fn unmarked_or_malformed_payloads() {
        assert_eq!(
            InternalRequest::decode_payload(br#"{"20":"Done"}"#).unwrap(),
            None
        );
        assert!(InternalRequest::decode_payload(br#"{"2":true,"20":{"Bogus":1}}"#).is_err());
        assert!(InternalRequest::decode_payload(b"nope").is_err());
    }

    #[test]
    fn replies_round_trip_and_failures_surface() {
        let reply = InternalReply::Count(4).into_reply();
        assert_eq!(InternalReply::from_reply(120, reply), Ok(InternalReply::Count(4)));
        let failure = Reply::error(Status::ServerError, "disk full");
        assert_eq!(
            InternalReply::from_reply(124, failure),
            Err((124, "disk full".into()))
        );
    }
}
