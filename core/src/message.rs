//! Typed requests and replies, and their numeric-key JSON payloads
//! (`{"10":"tests","20":{...}}`, spec sections 2 and 3).
//!
//! This layer checks the *shape* of a message: required keys, JSON types,
//! collection id rules, read-only system collections. The *meaning* of QUERY,
//! FIELDS, ORDER and LIMIT is the query module's job; [`ReadOptions::parse`]
//! hands them over, so a server parses each of them exactly once.

use bytes::Bytes;
use serde_json::{Map, Value};

use crate::protocol::{Command, Key, LockStrategy, Status};
use crate::query::{parse_limit, Fields, Order, Query, QueryError};

/// A validation failure; the message is what the server sends back as ERROR.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MessageError {
    #[error("payload is not valid JSON: {0}")]
    InvalidJson(String),
    #[error("payload must be a JSON object")]
    NotAnObject,
    #[error("{key} ({number}) is required")]
    Missing { key: &'static str, number: &'static str },
    #[error("{key} ({number}) must be {expected}")]
    WrongType {
        key: &'static str,
        number: &'static str,
        expected: &'static str,
    },
    #[error("collection id {0:?} is invalid: use 1 to 128 characters of A-Z a-z 0-9 - .")]
    InvalidCollectionId(String),
    #[error("collection {0:?} is a read-only system collection")]
    ReadOnlyCollection(String),
    #[error("LOCK_STRATEGY (63) must be LOCK_STRATEGY_FAIL (64) or LOCK_STRATEGY_WAIT (65)")]
    InvalidLockStrategy,
    #[error("{0} is not a request command")]
    NotARequest(Command),
    #[error(transparent)]
    Query(#[from] QueryError),
}

/// A validated collection id: 1 to 128 characters of `A-Z a-z 0-9 - .`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct CollectionId(String);

impl CollectionId {
    pub const MAX_LEN: usize = 128;
    pub const SYSTEM_PREFIX: &'static str = "system.";

    pub fn new(id: impl Into<String>) -> Result<Self, MessageError> {
        let id = id.into();
        let valid_char = |c: char| c.is_ascii_alphanumeric() || c == '-' || c == '.';
        if id.is_empty() || id.len() > Self::MAX_LEN || !id.chars().all(valid_char) {
            return Err(MessageError::InvalidCollectionId(id));
        }
        Ok(CollectionId(id))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// Ids starting with `system.` name the read-only system collections.
    pub fn is_system(&self) -> bool {
        self.0.starts_with(Self::SYSTEM_PREFIX)
    }
}

impl std::fmt::Display for CollectionId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// Who sent a request, from its payload flags.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Origin {
    /// A client.
    External,
    /// `"3": true`: a system request (INFO between nodes, for example).
    System,
    /// A truthy `"2"`: node-to-node traffic.
    Internal,
}

/// LOCK_ID and LOCK_STRATEGY of a write.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct LockOptions {
    /// The id of a lock the caller holds; a write carrying the holder's id proceeds.
    pub lock_id: Option<String>,
    pub strategy: LockStrategy,
}

/// QUERY, FIELDS, ORDER and LIMIT as they arrived, shape-checked only.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct ReadOptions {
    pub query: Option<Value>,
    pub fields: Option<Value>,
    pub order: Option<Value>,
    pub limit: Option<Value>,
}

/// QUERY, FIELDS, ORDER and LIMIT, parsed.
#[derive(Debug, Clone)]
pub struct Selection {
    pub query: Query,
    pub fields: Option<Fields>,
    pub order: Option<Order>,
    pub limit: Option<usize>,
}

impl ReadOptions {
    /// Only a query (COUNT, PUT, PATCH, DELETE).
    pub fn with_query(query: Option<Value>) -> Self {
        ReadOptions {
            query,
            ..ReadOptions::default()
        }
    }

    /// Parses every option; the error names what is wrong.
    pub fn parse(&self) -> Result<Selection, MessageError> {
        Ok(Selection {
            query: self.parse_query()?,
            fields: self.fields.as_ref().map(Fields::parse).transpose()?,
            order: self.order.as_ref().map(Order::parse).transpose()?,
            limit: self.limit.as_ref().map(parse_limit).transpose()?,
        })
    }

    /// Parses QUERY alone; a missing query matches every document.
    pub fn parse_query(&self) -> Result<Query, MessageError> {
        Ok(match &self.query {
            Some(query) => Query::parse(query)?,
            None => Query::match_all(),
        })
    }
}

/// A client request (spec section 3).
#[derive(Debug, Clone, PartialEq)]
pub enum Request {
    Info,
    Post {
        collection: CollectionId,
        document: Map<String, Value>,
        lock: LockOptions,
    },
    Get {
        collection: CollectionId,
        read: ReadOptions,
    },
    Count {
        collection: CollectionId,
        query: Option<Value>,
    },
    Put {
        collection: CollectionId,
        document: Map<String, Value>,
        query: Option<Value>,
        lock: LockOptions,
    },
    Patch {
        collection: CollectionId,
        patch: Map<String, Value>,
        query: Option<Value>,
        lock: LockOptions,
    },
    Delete {
        collection: CollectionId,
        query: Option<Value>,
        lock: LockOptions,
    },
    Lock {
        key: String,
    },
    Unlock {
        lock_id: String,
    },
    NotifyOn {
        pattern: String,
    },
    NotifyOff {
        pattern: String,
    },
}

/// A decoded request with the origin its flags declare.
#[derive(Debug, Clone, PartialEq)]
pub struct Envelope {
    pub origin: Origin,
    pub request: Request,
}

/// Parses a payload into a JSON object; an empty payload is `{}`.
pub fn parse_payload(payload: &[u8]) -> Result<Map<String, Value>, MessageError> {
    if payload.iter().all(u8::is_ascii_whitespace) {
        return Ok(Map::new());
    }
    match serde_json::from_slice::<Value>(payload) {
        Ok(Value::Object(map)) => Ok(map),
        Ok(_) => Err(MessageError::NotAnObject),
        Err(error) => Err(MessageError::InvalidJson(error.to_string())),
    }
}

/// Typed access to a payload's numbered keys; `null` counts as absent.
struct PayloadReader<'a>(&'a Map<String, Value>);

impl PayloadReader<'_> {
    fn optional(&self, key: Key) -> Option<&Value> {
        self.0.get(key.as_str()).filter(|value| !value.is_null())
    }

    fn wrong_type(key: Key, expected: &'static str) -> MessageError {
        MessageError::WrongType {
            key: key.name(),
            number: key.as_str(),
            expected,
        }
    }

    fn required(&self, key: Key) -> Result<&Value, MessageError> {
        self.optional(key).ok_or(MessageError::Missing {
            key: key.name(),
            number: key.as_str(),
        })
    }

    fn required_string(&self, key: Key) -> Result<String, MessageError> {
        match self.required(key)? {
            Value::String(text) => Ok(text.clone()),
            _ => Err(Self::wrong_type(key, "a string")),
        }
    }

    fn optional_string(&self, key: Key) -> Result<Option<String>, MessageError> {
        match self.optional(key) {
            None => Ok(None),
            Some(Value::String(text)) => Ok(Some(text.clone())),
            Some(_) => Err(Self::wrong_type(key, "a string")),
        }
    }

    fn required_object(&self, key: Key) -> Result<Map<String, Value>, MessageError> {
        match self.required(key)? {
            Value::Object(object) => Ok(object.clone()),
            _ => Err(Self::wrong_type(key, "a JSON object")),
        }
    }

    fn optional_query(&self) -> Result<Option<Value>, MessageError> {
        match self.optional(Key::Query) {
            None => Ok(None),
            Some(query @ Value::Object(_)) => Ok(Some(query.clone())),
            Some(_) => Err(Self::wrong_type(Key::Query, "a JSON object")),
        }
    }

    fn collection(&self) -> Result<CollectionId, MessageError> {
        CollectionId::new(self.required_string(Key::CollectionId)?)
    }

    fn writable_collection(&self) -> Result<CollectionId, MessageError> {
        let collection = self.collection()?;
        if collection.is_system() {
            return Err(MessageError::ReadOnlyCollection(collection.0));
        }
        Ok(collection)
    }

    fn lock_options(&self) -> Result<LockOptions, MessageError> {
        let strategy = match self.optional(Key::LockStrategy) {
            None => LockStrategy::default(),
            Some(value) => lock_strategy_from_json(value)?,
        };
        Ok(LockOptions {
            lock_id: self.optional_string(Key::LockId)?,
            strategy,
        })
    }

    fn flag(&self, key: Key) -> bool {
        match self.0.get(key.as_str()) {
            None | Some(Value::Null) | Some(Value::Bool(false)) => false,
            Some(Value::Number(n)) => n.as_f64() != Some(0.0),
            Some(Value::String(s)) => !s.is_empty(),
            Some(_) => true,
        }
    }
}

/// LOCK_STRATEGY is a number on the wire (64/65); v8 clients pass whatever
/// their caller gave, so the names `"fail"`/`"wait"` and numeric strings are
/// accepted too.
fn lock_strategy_from_json(value: &Value) -> Result<LockStrategy, MessageError> {
    let parsed = match value {
        Value::Number(number) => number
            .as_u64()
            .and_then(|n| u8::try_from(n).ok())
            .and_then(LockStrategy::from_u8),
        Value::String(text) => match text.to_ascii_lowercase().as_str() {
            "fail" | "lock_strategy_fail" | "64" => Some(LockStrategy::Fail),
            "wait" | "lock_strategy_wait" | "65" => Some(LockStrategy::Wait),
            _ => None,
        },
        _ => None,
    };
    parsed.ok_or(MessageError::InvalidLockStrategy)
}

impl Request {
    /// Decodes a request frame's command and payload.
    pub fn decode(command: Command, payload: &[u8]) -> Result<Envelope, MessageError> {
        let map = parse_payload(payload)?;
        let fields = PayloadReader(&map);
        let origin = if fields.flag(Key::Internal) {
            Origin::Internal
        } else if fields.flag(Key::System) {
            Origin::System
        } else {
            Origin::External
        };
        let request = match command {
            Command::Info => Request::Info,
            Command::Post => {
                // An `id` that is not a string is replaced by a generated
                // one (spec section 3: "unless DATA carries a string id").
                let document = fields.required_object(Key::Data)?;
                Request::Post {
                    collection: fields.writable_collection()?,
                    document,
                    lock: fields.lock_options()?,
                }
            }
            Command::Get => Request::Get {
                collection: fields.collection()?,
                read: ReadOptions {
                    query: fields.optional_query()?,
                    fields: fields.optional(Key::Fields).cloned(),
                    order: fields.optional(Key::Order).cloned(),
                    limit: fields.optional(Key::Limit).cloned(),
                },
            },
            Command::Count => Request::Count {
                collection: fields.collection()?,
                query: fields.optional_query()?,
            },
            Command::Put => Request::Put {
                collection: fields.writable_collection()?,
                document: fields.required_object(Key::Data)?,
                query: fields.optional_query()?,
                lock: fields.lock_options()?,
            },
            Command::Patch => Request::Patch {
                collection: fields.writable_collection()?,
                patch: fields.required_object(Key::Data)?,
                query: fields.optional_query()?,
                lock: fields.lock_options()?,
            },
            Command::Delete => Request::Delete {
                collection: fields.writable_collection()?,
                query: fields.optional_query()?,
                lock: fields.lock_options()?,
            },
            Command::Lock => Request::Lock {
                key: fields.required_string(Key::LockKey)?,
            },
            Command::Unlock => Request::Unlock {
                lock_id: fields.required_string(Key::LockId)?,
            },
            Command::NotifyOn => Request::NotifyOn {
                pattern: fields.required_string(Key::NotifyPath)?,
            },
            Command::NotifyOff => Request::NotifyOff {
                pattern: fields.required_string(Key::NotifyPath)?,
            },
            Command::Notify | Command::Ready => return Err(MessageError::NotARequest(command)),
        };
        Ok(Envelope { origin, request })
    }

    /// The request's command byte.
    pub fn command(&self) -> Command {
        match self {
            Request::Info => Command::Info,
            Request::Post { .. } => Command::Post,
            Request::Get { .. } => Command::Get,
            Request::Count { .. } => Command::Count,
            Request::Put { .. } => Command::Put,
            Request::Patch { .. } => Command::Patch,
            Request::Delete { .. } => Command::Delete,
            Request::Lock { .. } => Command::Lock,
            Request::Unlock { .. } => Command::Unlock,
            Request::NotifyOn { .. } => Command::NotifyOn,
            Request::NotifyOff { .. } => Command::NotifyOff,
        }
    }

    /// The request's JSON payload as a client sends it.
    pub fn to_payload(&self) -> Map<String, Value> {
        let mut map = Map::new();
        let mut put = |key: Key, value: Value| {
            map.insert(key.as_str().to_owned(), value);
        };
        let put_lock = |put: &mut dyn FnMut(Key, Value), lock: &LockOptions| {
            if let Some(lock_id) = &lock.lock_id {
                put(Key::LockId, Value::String(lock_id.clone()));
            }
            if lock.strategy != LockStrategy::default() {
                put(Key::LockStrategy, Value::from(lock.strategy.as_u8()));
            }
        };
        match self {
            Request::Info => put(Key::System, Value::Bool(true)),
            Request::Post {
                collection,
                document,
                lock,
            } => {
                put(Key::CollectionId, collection.as_str().into());
                put(Key::Data, Value::Object(document.clone()));
                put_lock(&mut put, lock);
            }
            Request::Get { collection, read } => {
                put(Key::CollectionId, collection.as_str().into());
                let options = [
                    (Key::Query, &read.query),
                    (Key::Fields, &read.fields),
                    (Key::Order, &read.order),
                    (Key::Limit, &read.limit),
                ];
                for (key, value) in options {
                    if let Some(value) = value {
                        put(key, value.clone());
                    }
                }
            }
            Request::Count { collection, query } => {
                put(Key::CollectionId, collection.as_str().into());
                if let Some(query) = query {
                    put(Key::Query, query.clone());
                }
            }
            Request::Put {
                collection,
                document: data,
                query,
                lock,
            }
            | Request::Patch {
                collection,
                patch: data,
                query,
                lock,
            } => {
                put(Key::CollectionId, collection.as_str().into());
                put(Key::Data, Value::Object(data.clone()));
                if let Some(query) = query {
                    put(Key::Query, query.clone());
                }
                put_lock(&mut put, lock);
            }
            Request::Delete {
                collection,
                query,
                lock,
            } => {
                put(Key::CollectionId, collection.as_str().into());
                if let Some(query) = query {
                    put(Key::Query, query.clone());
                }
                put_lock(&mut put, lock);
            }
            Request::Lock { key } => put(Key::LockKey, key.as_str().into()),
            Request::Unlock { lock_id } => put(Key::LockId, lock_id.as_str().into()),
            Request::NotifyOn { pattern } | Request::NotifyOff { pattern } => {
                put(Key::NotifyPath, pattern.as_str().into())
            }
        }
        map
    }

    /// The payload bytes as a client sends them.
    pub fn encode_payload(&self) -> Bytes {
        Bytes::from(serde_json::to_vec(&Value::Object(self.to_payload())).unwrap_or_default())
    }
}

/// A reply: its status and the keys its payload may carry.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Reply {
    pub status: Option<Status>,
    /// DATA: a document, a list of documents or ids, a count, a notify path.
    pub data: Option<Value>,
    /// LOCK_ID of LOCK and UNLOCK.
    pub lock_id: Option<String>,
    /// ERROR: the human readable message of a failure.
    pub error: Option<String>,
}

impl Reply {
    pub fn new(status: Status) -> Self {
        Reply {
            status: Some(status),
            ..Reply::default()
        }
    }

    pub fn with_data(status: Status, data: Value) -> Self {
        Reply {
            data: Some(data),
            ..Reply::new(status)
        }
    }

    pub fn with_lock_id(lock_id: impl Into<String>) -> Self {
        Reply {
            lock_id: Some(lock_id.into()),
            ..Reply::new(Status::Ok)
        }
    }

    pub fn error(status: Status, message: impl Into<String>) -> Self {
        Reply {
            error: Some(message.into()),
            ..Reply::new(status)
        }
    }

    /// The payload bytes; empty when there is nothing to say.
    pub fn encode_payload(&self) -> Bytes {
        if self.data.is_none() && self.lock_id.is_none() && self.error.is_none() {
            return Bytes::new();
        }
        /// Borrows the reply's parts, so a large DATA is serialised without a copy.
        #[derive(serde::Serialize)]
        struct Payload<'a> {
            #[serde(rename = "20", skip_serializing_if = "Option::is_none")]
            data: Option<&'a Value>,
            #[serde(rename = "62", skip_serializing_if = "Option::is_none")]
            lock_id: Option<&'a str>,
            #[serde(rename = "100", skip_serializing_if = "Option::is_none")]
            error: Option<&'a str>,
        }
        let payload = Payload {
            data: self.data.as_ref(),
            lock_id: self.lock_id.as_deref(),
            error: self.error.as_deref(),
        };
        Bytes::from(serde_json::to_vec(&payload).unwrap_or_default())
    }

    /// Decodes a reply payload. `status` is `None` when the command byte is
    /// not a known status. A non-string ERROR (v8 sometimes sent objects) is
    /// kept as its JSON text.
    pub fn decode(status: Option<Status>, payload: &[u8]) -> Result<Reply, MessageError> {
        let mut map = parse_payload(payload)?;
        let error = map.remove(Key::Error.as_str()).and_then(|error| match error {
            Value::Null => None,
            Value::String(text) => Some(text),
            other => Some(other.to_string()),
        });
        let lock_id = match map.remove(Key::LockId.as_str()) {
            None | Some(Value::Null) => None,
            Some(Value::String(id)) => Some(id),
            Some(other) => Some(other.to_string()),
        };
        Ok(Reply {
            status,
            data: map.remove(Key::Data.as_str()),
            lock_id,
            error,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn decode(command: Command, payload: Value) -> Result<Envelope, MessageError> {
        Request::decode(command, payload.to_string().as_bytes())
    }

    fn collection(id: &str) -> CollectionId {
        CollectionId::new(id).unwrap()
    }

    #[test]
    fn collection_id_rules() {
        assert!(CollectionId::new("tests").is_ok());
        assert!(CollectionId::new("a-b.C9").is_ok());
        assert!(CollectionId::new("x".repeat(128)).is_ok());
        for bad in ["", "with space", "under_score", "slash/", "é", &"x".repeat(129)] {
            let error = CollectionId::new(bad).unwrap_err();
            assert!(
                error.to_string().contains("1 to 128 characters"),
                "{bad}: {error}"
            );
        }
        assert!(collection("system.locks").is_system());
        assert!(!collection("systemlocks").is_system());
    }

    #[test]
    fn decodes_a_post() {
        let envelope = decode(
            Command::Post,
            json!({"10": "tests", "20": {"a": 1}, "62": "L", "63": 64}),
        )
        .unwrap();
        assert_eq!(envelope.origin, Origin::External);
        assert_eq!(
            envelope.request,
            Request::Post {
                collection: collection("tests"),
                document: json!({"a": 1}).as_object().unwrap().clone(),
                lock: LockOptions {
                    lock_id: Some("L".into()),
                    strategy: LockStrategy::Fail
                },
            }
        );
    }

    #[test]
    fn shape_errors_say_exactly_what_is_wrong() {
        let cases = [
            (Command::Post, json!({"20": {}}), "COLLECTION_ID (10) is required"),
            (
                Command::Post,
                json!({"10": 5, "20": {}}),
                "COLLECTION_ID (10) must be a string",
            ),
            (Command::Post, json!({"10": "tests"}), "DATA (20) is required"),
            (
                Command::Post,
                json!({"10": "tests", "20": [1]}),
                "DATA (20) must be a JSON object",
            ),
            (
                Command::Post,
                json!({"10": "system.locks", "20": {}}),
                "read-only system collection",
            ),
            (
                Command::Delete,
                json!({"10": "system.nodes"}),
                "read-only system collection",
            ),
            (Command::Get, json!({"10": "bad id"}), "is invalid"),
            (
                Command::Get,
                json!({"10": "t", "40": [1]}),
                "QUERY (40) must be a JSON object",
            ),
            (
                Command::Lock,
                json!({"66": ["tests"]}),
                "LOCK_KEY (66) must be a string",
            ),
            (Command::Lock, json!({}), "LOCK_KEY (66) is required"),
            (Command::Unlock, json!({}), "LOCK_ID (62) is required"),
            (
                Command::NotifyOn,
                json!({"53": 1}),
                "NOTIFY_PATH (53) must be a string",
            ),
            (
                Command::Patch,
                json!({"10": "t", "20": {}, "63": 3}),
                "LOCK_STRATEGY (63)",
            ),
        ];
        for (command, payload, expected) in cases {
            let error = decode(command, payload.clone()).unwrap_err().to_string();
            assert!(
                error.contains(expected),
                "{command} {payload}: got {error:?}, want {expected:?}"
            );
        }
    }

    #[test]
    fn bad_payloads_are_errors_not_panics() {
        assert!(matches!(
            Request::decode(Command::Get, b"{nope"),
            Err(MessageError::InvalidJson(_))
        ));
        assert_eq!(
            Request::decode(Command::Get, b"[1,2]"),
            Err(MessageError::NotAnObject)
        );
        assert_eq!(
            Request::decode(Command::Get, b"\"x\""),
            Err(MessageError::NotAnObject)
        );
        assert!(Request::decode(Command::Get, &[0xff, 0xfe]).is_err());
        assert_eq!(
            Request::decode(Command::Ready, b""),
            Err(MessageError::NotARequest(Command::Ready))
        );
    }

    #[test]
    fn empty_payload_is_an_empty_object() {
        assert_eq!(
            Request::decode(Command::Info, b"").unwrap().request,
            Request::Info
        );
    }

    #[test]
    fn null_keys_count_as_absent() {
        let envelope = decode(Command::Get, json!({"10": "t", "40": null, "42": null})).unwrap();
        assert_eq!(
            envelope.request,
            Request::Get {
                collection: collection("t"),
                read: ReadOptions::default()
            }
        );
    }

    #[test]
    fn origin_flags() {
        assert_eq!(
            decode(Command::Info, json!({"3": true})).unwrap().origin,
            Origin::System
        );
        assert_eq!(
            decode(Command::Info, json!({"2": 1, "3": true})).unwrap().origin,
            Origin::Internal
        );
        assert_eq!(
            decode(Command::Info, json!({"2": false})).unwrap().origin,
            Origin::External
        );
    }

    #[test]
    fn lock_strategy_accepts_numbers_and_names() {
        for (value, expected) in [
            (json!(64), LockStrategy::Fail),
            (json!(65), LockStrategy::Wait),
            (json!("fail"), LockStrategy::Fail),
            (json!("WAIT"), LockStrategy::Wait),
        ] {
            let envelope = decode(Command::Delete, json!({"10": "t", "63": value})).unwrap();
            let Request::Delete { lock, .. } = envelope.request else {
                panic!()
            };
            assert_eq!(lock.strategy, expected);
        }
    }

    #[test]
    fn every_request_round_trips_through_its_payload() {
        let object = |v: Value| v.as_object().unwrap().clone();
        let lock = LockOptions {
            lock_id: Some("abc".into()),
            strategy: LockStrategy::Fail,
        };
        let requests = vec![
            Request::Info,
            Request::Post {
                collection: collection("t"),
                document: object(json!({"a": [1, {"b": null}]})),
                lock: lock.clone(),
            },
            Request::Get {
                collection: collection("t"),
                read: ReadOptions {
                    query: Some(json!({"a": {"$gt": 1}})),
                    fields: Some(json!(["a"])),
                    order: Some(json!("desc(a)")),
                    limit: Some(json!(5)),
                },
            },
            Request::Count {
                collection: collection("t"),
                query: Some(json!({"a": 1})),
            },
            Request::Put {
                collection: collection("t"),
                document: object(json!({"x": 1})),
                query: None,
                lock: LockOptions::default(),
            },
            Request::Patch {
                collection: collection("t"),
                patch: object(json!({"x": 2})),
                query: Some(json!({})),
                lock: lock.clone(),
            },
            Request::Delete {
                collection: collection("t"),
                query: None,
                lock,
            },
            Request::Lock { key: "t".into() },
            Request::Unlock {
                lock_id: "abc".into(),
            },
            Request::NotifyOn { pattern: ".*".into() },
            Request::NotifyOff { pattern: ".*".into() },
        ];
        for request in requests {
            let decoded = Request::decode(request.command(), &request.encode_payload()).unwrap();
            assert_eq!(decoded.request, request);
        }
    }

    #[test]
    fn read_options_parse_reports_query_errors() {
        let options = ReadOptions::with_query(Some(json!({"a": {"$bogus": 1}})));
        let error = options.parse().unwrap_err().to_string();
        assert!(error.contains("$bogus"), "{error}");
        let options = ReadOptions {
            limit: Some(json!(0)),
            ..ReadOptions::default()
        };
        assert!(options.parse().is_err());
        assert!(ReadOptions::default().parse().unwrap().query.is_match_all());
    }

    #[test]
    fn replies_round_trip() {
        let replies = vec![
            Reply::new(Status::Ok),
            Reply::with_data(Status::Created, json!({"id": "1"})),
            Reply::with_lock_id("L1"),
            Reply::error(Status::BadRequest, "nope"),
        ];
        for reply in replies {
            let payload = reply.encode_payload();
            assert_eq!(Reply::decode(reply.status, &payload).unwrap(), reply);
        }
        assert!(Reply::new(Status::Ok).encode_payload().is_empty());
        assert_eq!(
            &Reply::error(Status::NotFound, "x").encode_payload()[..],
            br#"{"100":"x"}"#
        );
    }
}
