//! Redo records: what a group of writes did, in the form the write-ahead
//! log keeps (see [`super::wal`]).
//!
//! The log records *effects*, not requests: "document D of collection C is
//! now this body, held by these replicas" and "document D of collection C is
//! gone". A PATCH that matched 1,000 documents logs 1,000 puts. Replaying an
//! effect needs no query evaluation and gives the same result however often
//! it is applied, so recovery may safely replay records the last checkpoint
//! already holds.
//!
//! Layout of one effect (strings are `varint(len) ++ bytes`):
//! `PUT collection id varint(n) replica* varint(len) body` |
//! `REMOVE collection id`, where `body` is a [`codec`](super::codec) body.

use super::codec::{write_str, write_varint, Reader};
use super::error::StorageError;

const PUT: u8 = 1;
const REMOVE: u8 = 2;

/// One effect read back from the log.
#[derive(Debug, PartialEq, Eq)]
pub enum Effect {
    Put {
        collection: String,
        id: String,
        replicas: Vec<String>,
        body: Vec<u8>,
    },
    Remove {
        collection: String,
        id: String,
    },
}

/// The effects of one group commit, encoded as they happen.
#[derive(Debug, Default)]
pub struct RedoLog {
    bytes: Vec<u8>,
}

impl RedoLog {
    pub fn put(&mut self, collection: &str, id: &str, replicas: &[String], body: &[u8]) {
        self.bytes.push(PUT);
        write_str(&mut self.bytes, collection);
        write_str(&mut self.bytes, id);
        write_varint(&mut self.bytes, replicas.len() as u64);
        for name in replicas {
            write_str(&mut self.bytes, name);
        }
        write_varint(&mut self.bytes, body.len() as u64);
        self.bytes.extend_from_slice(body);
    }

    pub fn remove(&mut self, collection: &str, id: &str) {
        self.bytes.push(REMOVE);
        write_str(&mut self.bytes, collection);
        write_str(&mut self.bytes, id);
    }

    pub fn is_empty(&self) -> bool {
        self.bytes.is_empty()
    }

    /// Encoded bytes.
    pub fn len(&self) -> usize {
        self.bytes.len()
    }

    pub fn into_bytes(self) -> Vec<u8> {
        self.bytes
    }
}

/// The effects encoded in `bytes`, in order.
pub fn decode(bytes: &[u8]) -> Result<Vec<Effect>, StorageError> {
    let mut reader = Reader::new(bytes);
    let mut effects = Vec::new();
    while !reader.is_empty() {
        let tag = reader.byte()?;
        let collection = reader.string()?;
        let id = reader.string()?;
        effects.push(match tag {
            PUT => {
                let count = reader.length()?;
                let replicas = (0..count).map(|_| reader.string()).collect::<Result<_, _>>()?;
                let len = reader.length()?;
                Effect::Put {
                    collection,
                    id,
                    replicas,
                    body: reader.take(len)?.to_vec(),
                }
            }
            REMOVE => Effect::Remove { collection, id },
            other => return Err(StorageError::Corrupt(format!("unknown redo record tag {other}"))),
        });
    }
    Ok(effects)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn effects_round_trip_in_order() {
        let mut log = RedoLog::default();
        assert!(log.is_empty());
        log.put("people", "a", &["n1".to_owned(), "n2".to_owned()], &[1, 2, 3]);
        log.remove("people", "b");
        log.put("other", "c", &[], &[]);
        let effects = decode(&log.into_bytes()).unwrap();
        assert_eq!(
            effects,
            vec![
                Effect::Put {
                    collection: "people".into(),
                    id: "a".into(),
                    replicas: vec!["n1".into(), "n2".into()],
                    body: vec![1, 2, 3],
                },
                Effect::Remove {
                    collection: "people".into(),
                    id: "b".into(),
                },
                Effect::Put {
                    collection: "other".into(),
                    id: "c".into(),
                    replicas: vec![],
                    body: vec![],
                },
            ]
        );
    }

    #[test]
    fn damaged_records_are_errors_not_panics() {
        let mut log = RedoLog::default();
        log.put("people", "a", &["n1".to_owned()], &[1, 2, 3]);
        log.remove("people", "b");
        let bytes = log.into_bytes();
        let whole = decode(&bytes).unwrap().len();
        for len in 1..bytes.len() {
            // A cut inside an effect is an error; a cut between effects
            // simply yields fewer.
            if let Ok(effects) = decode(&bytes[..len]) {
                assert!(effects.len() < whole, "prefix {len}");
            }
        }
        assert!(decode(&[9, 0, 0]).is_err());
        assert!(decode(&[PUT, 1, b'c', 1, b'i', 0xff, 0xff, 0xff, 0x7f]).is_err());
    }
}
