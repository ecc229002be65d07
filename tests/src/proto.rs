//! The spec's numbers as plain bytes, the [`Reply`] of a request with the
//! assertions every test needs, and small helpers.

use canhazdb_core::frame::Frame;
use canhazdb_core::protocol::{Code, Command, Status};
use serde_json::Value;

/// Command bytes (spec section 2).
pub mod cmd {
    use super::Command;

    pub const INFO: u8 = Command::Info as u8;
    pub const COUNT: u8 = Command::Count as u8;
    pub const GET: u8 = Command::Get as u8;
    pub const POST: u8 = Command::Post as u8;
    pub const PUT: u8 = Command::Put as u8;
    pub const PATCH: u8 = Command::Patch as u8;
    pub const DELETE: u8 = Command::Delete as u8;
    pub const NOTIFY: u8 = Command::Notify as u8;
    pub const NOTIFY_ON: u8 = Command::NotifyOn as u8;
    pub const NOTIFY_OFF: u8 = Command::NotifyOff as u8;
    pub const LOCK: u8 = Command::Lock as u8;
    pub const UNLOCK: u8 = Command::Unlock as u8;
    pub const READY: u8 = Command::Ready as u8;
}

/// Status bytes (spec section 2).
pub mod status {
    use super::Status;

    pub const OK: u8 = Status::Ok as u8;
    pub const BAD_REQUEST: u8 = Status::BadRequest as u8;
    pub const NOT_FOUND: u8 = Status::NotFound as u8;
    pub const CREATED: u8 = Status::Created as u8;
    pub const SERVER_ERROR: u8 = Status::ServerError as u8;
    pub const SERVER_UNHEALTHY: u8 = Status::ServerUnhealthy as u8;
    pub const SERVER_CLOSED: u8 = Status::ServerClosed as u8;
    pub const LOCKED: u8 = Status::Locked as u8;
}

/// LOCK_STRATEGY_FAIL: a write on a locked collection fails at once.
pub const LOCK_STRATEGY_FAIL: u8 = 64;
/// LOCK_STRATEGY_WAIT: a write on a locked collection waits (the default).
pub const LOCK_STRATEGY_WAIT: u8 = 65;
/// The id of frames the server pushes on its own (READY, NOTIFY).
pub const PUSH_ID: u16 = 2;

/// The name of a command or status byte, for messages: `121 (STATUS_BAD_REQUEST)`.
pub fn code_name(byte: u8) -> String {
    match Code::from(byte) {
        Code::Command(command) => format!("{byte} ({command})"),
        Code::Status(status) => format!("{byte} ({status})"),
        Code::Unknown(_) => format!("{byte} (unknown)"),
    }
}

/// A frame as a bug report shows it: id, command and the exact payload text.
pub fn describe_frame(frame: &Frame) -> String {
    let wire = frame.to_bytes();
    let head: Vec<String> = wire.iter().take(3).map(|b| format!("{b:02x}")).collect();
    let payload = String::from_utf8_lossy(&frame.payload);
    let payload = if payload.len() > 600 {
        format!("{}… ({} bytes)", &payload[..600], frame.payload.len())
    } else {
        payload.into_owned()
    };
    format!(
        "frame id={} command={} bytes=[{} …] payload=`{}`",
        frame.id,
        code_name(frame.command),
        head.join(" "),
        payload
    )
}

/// A reply to one request.
#[derive(Debug, Clone)]
pub struct Reply {
    /// The frame exactly as it arrived.
    pub frame: Frame,
    /// The status byte.
    pub status: u8,
    /// The payload parsed as JSON; `None` when the frame has no payload.
    pub payload: Option<Value>,
}

impl Reply {
    /// Parses a reply frame. A payload that is not JSON is a protocol
    /// violation and panics with the exact bytes.
    pub fn from_frame(frame: Frame) -> Reply {
        let payload = if frame.payload.is_empty() {
            None
        } else {
            match serde_json::from_slice::<Value>(&frame.payload) {
                Ok(value) => Some(value),
                Err(error) => panic!(
                    "server sent a payload that is not JSON ({error}): {}",
                    describe_frame(&frame)
                ),
            }
        };
        Reply {
            status: frame.command,
            payload,
            frame,
        }
    }

    /// The reply as `(status byte, payload)`.
    pub fn into_tuple(self) -> (u8, Option<Value>) {
        (self.status, self.payload)
    }

    pub fn describe(&self) -> String {
        describe_frame(&self.frame)
    }

    /// Asserts the status and returns the reply.
    #[track_caller]
    pub fn expect(self, want: u8) -> Reply {
        assert_eq!(
            self.status,
            want,
            "expected status {}, observed {}",
            code_name(want),
            self.describe()
        );
        self
    }

    /// Asserts STATUS_OK (or STATUS_CREATED for `want_created`) and returns DATA.
    #[track_caller]
    pub fn data(&self) -> &Value {
        match self.payload.as_ref().and_then(|p| p.get("20")) {
            Some(data) => data,
            None => panic!("expected a DATA (\"20\") key, observed {}", self.describe()),
        }
    }

    /// The ERROR message, if the payload carries one as a string.
    pub fn error_message(&self) -> Option<&str> {
        self.payload.as_ref()?.get("100")?.as_str()
    }

    /// Asserts a failure status whose payload, if present, is an object with
    /// ERROR as a string (spec: "errors always as a string").
    #[track_caller]
    pub fn expect_error(self, want: u8) -> Reply {
        let reply = self.expect(want);
        if let Some(payload) = &reply.payload {
            assert!(
                payload.get("100").is_some_and(Value::is_string),
                "an error payload must carry ERROR (\"100\") as a string, observed {}",
                reply.describe()
            );
        }
        reply
    }

    /// Asserts a failure status with an ERROR string; returns the message.
    #[track_caller]
    pub fn expect_error_message(self, want: u8) -> String {
        let reply = self.expect(want);
        match reply.error_message() {
            Some(message) => message.to_owned(),
            None => panic!(
                "expected {} with {{\"100\": \"<message>\"}}, observed {}",
                code_name(want),
                reply.describe()
            ),
        }
    }

    /// Asserts the status and that the frame has no payload at all.
    #[track_caller]
    pub fn expect_empty(self, want: u8) -> Reply {
        let reply = self.expect(want);
        assert!(
            reply.frame.payload.is_empty(),
            "expected {} with no payload, observed {}",
            code_name(want),
            reply.describe()
        );
        reply
    }
}

/// The `id`s of a list of documents (or of a list of ids), sorted.
#[track_caller]
pub fn ids_of(value: &Value) -> Vec<String> {
    let mut ids = raw_ids(value);
    ids.sort();
    ids
}

/// The ids of documents (or of an id list), in reply order, repeats kept.
#[track_caller]
pub fn raw_ids(value: &Value) -> Vec<String> {
    let Some(items) = value.as_array() else {
        panic!("expected an array, observed {value}");
    };
    items
        .iter()
        .map(|item| {
            let id = if item.is_object() { &item["id"] } else { item };
            id.as_str()
                .unwrap_or_else(|| panic!("expected a string id in {item}"))
                .to_owned()
        })
        .collect()
}

/// The `id`s of a list of documents in reply order.
#[track_caller]
pub fn ordered_ids(value: &Value) -> Vec<String> {
    let Some(items) = value.as_array() else {
        panic!("expected an array, observed {value}");
    };
    items
        .iter()
        .map(|item| {
            item["id"]
                .as_str()
                .unwrap_or_else(|| panic!("expected a string id in {item}"))
                .to_owned()
        })
        .collect()
}

/// Sorted owned strings, for comparing against [`ids_of`].
pub fn sorted(ids: &[&str]) -> Vec<String> {
    let mut ids: Vec<String> = ids.iter().map(|id| (*id).to_owned()).collect();
    ids.sort();
    ids
}

/// Whether `text` is a UUID v4 in its canonical 8-4-4-4-12 hex form.
pub fn is_uuid_v4(text: &str) -> bool {
    let bytes = text.as_bytes();
    if bytes.len() != 36 {
        return false;
    }
    for (index, byte) in bytes.iter().enumerate() {
        let dash = matches!(index, 8 | 13 | 18 | 23);
        if dash != (*byte == b'-') || (!dash && !byte.is_ascii_hexdigit()) {
            return false;
        }
    }
    bytes[14] == b'4' && matches!(bytes[19], b'8' | b'9' | b'a' | b'b' | b'A' | b'B')
}

/// A tiny deterministic PRNG for hostile input (no dependency, reproducible).
#[derive(Debug, Clone)]
pub struct XorShift(u64);

impl XorShift {
    pub fn new(seed: u64) -> Self {
        XorShift(seed.max(1))
    }

    pub fn next_u64(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        self.0 = x;
        x
    }

    pub fn fill(&mut self, buffer: &mut [u8]) {
        for chunk in buffer.chunks_mut(8) {
            let bytes = self.next_u64().to_le_bytes();
            chunk.copy_from_slice(&bytes[..chunk.len()]);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn uuid_check() {
        assert!(is_uuid_v4("1f0c2a4e-8b7d-4c3a-9e2f-0123456789ab"));
        assert!(!is_uuid_v4("1f0c2a4e-8b7d-1c3a-9e2f-0123456789ab"));
        assert!(!is_uuid_v4("1f0c2a4e-8b7d-4c3a-7e2f-0123456789ab"));
        assert!(!is_uuid_v4("doc-1"));
    }

    #[test]
    fn numbers() {
        assert_eq!(cmd::POST, 33);
        assert_eq!(cmd::READY, 160);
        assert_eq!(status::LOCKED, 127);
    }
}
