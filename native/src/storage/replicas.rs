//! Interned replica lists.
//!
//! Every document records which nodes hold it. There are only a handful of
//! distinct lists in a cluster (one per choice of R nodes), so each list is
//! stored once in `replica_sets` and documents (and index entries) refer to
//! it by a small number. That keeps records small and lets a read ask the
//! cluster's "is this node the reporting replica?" filter once per list
//! instead of once per document.
//!
//! Set ids are allocated densely from 1 and never freed (a list no document
//! uses any more costs a few bytes), so an id always means the same list.

use std::collections::HashMap;
use std::sync::Arc;

use redb::{ReadableTable, ReadableTableMetadata, Table};

use super::codec::{write_varint, Reader};
use super::error::StorageError;

/// The id of an interned replica list.
pub type ReplicaSetId = u32;

/// The replica filter of a read (see [`super::ReadRequest::reported`]).
pub type ReportedFilter<'a> = &'a (dyn Fn(&[String]) -> bool + Sync);

fn encode_list(replicas: &[String]) -> Vec<u8> {
    let mut out = Vec::new();
    write_varint(&mut out, replicas.len() as u64);
    for name in replicas {
        write_varint(&mut out, name.len() as u64);
        out.extend_from_slice(name.as_bytes());
    }
    out
}

fn decode_list(bytes: &[u8]) -> Result<Vec<String>, StorageError> {
    let mut reader = Reader::new(bytes);
    let count = reader.varint()?;
    let mut names = Vec::new();
    for _ in 0..count {
        names.push(reader.string()?);
    }
    reader.finish()?;
    Ok(names)
}

/// The id of `replicas`, allocating one if this list is new. Runs inside the
/// writer's transaction, so a new id is durable exactly when its first
/// document is.
pub fn intern(
    ids: &mut Table<&'static [u8], ReplicaSetId>,
    sets: &mut Table<ReplicaSetId, &'static [u8]>,
    replicas: &[String],
) -> Result<ReplicaSetId, StorageError> {
    let encoded = encode_list(replicas);
    if let Some(id) = ids.get(encoded.as_slice())? {
        return Ok(id.value());
    }
    let id = ReplicaSetId::try_from(sets.len()? + 1)
        .map_err(|_| StorageError::Io("too many distinct replica lists".to_owned()))?;
    sets.insert(id, encoded.as_slice())?;
    ids.insert(encoded.as_slice(), id)?;
    Ok(id)
}

/// Resolves set ids to lists for one read, remembering each answer (and the
/// replica filter's verdict on it) so both are computed once per list.
pub struct ReplicaSets<'a, T> {
    table: &'a T,
    reported: Option<ReportedFilter<'a>>,
    known: HashMap<ReplicaSetId, (Arc<[String]>, bool)>,
}

impl<'a, T: ReadableTable<ReplicaSetId, &'static [u8]>> ReplicaSets<'a, T> {
    pub fn new(table: &'a T, reported: Option<ReportedFilter<'a>>) -> ReplicaSets<'a, T> {
        ReplicaSets {
            table,
            reported,
            known: HashMap::new(),
        }
    }

    fn entry(&mut self, id: ReplicaSetId) -> Result<&(Arc<[String]>, bool), StorageError> {
        if !self.known.contains_key(&id) {
            let stored = self
                .table
                .get(id)?
                .ok_or_else(|| StorageError::Corrupt(format!("unknown replica set {id}")))?;
            let names: Arc<[String]> = decode_list(stored.value())?.into();
            let reported = self.reported.is_none_or(|filter| filter(&names));
            self.known.insert(id, (names, reported));
        }
        Ok(&self.known[&id])
    }

    /// Whether documents held by this list pass the read's replica filter.
    pub fn is_reported(&mut self, id: ReplicaSetId) -> Result<bool, StorageError> {
        if self.reported.is_none() {
            return Ok(true);
        }
        Ok(self.entry(id)?.1)
    }

    /// The node names of a list.
    pub fn names(&mut self, id: ReplicaSetId) -> Result<Vec<String>, StorageError> {
        Ok(self.entry(id)?.0.to_vec())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lists_round_trip() {
        for list in [
            vec![],
            vec!["a".to_owned()],
            vec!["node-1:7061".to_owned(), "é".to_owned()],
        ] {
            assert_eq!(decode_list(&encode_list(&list)).unwrap(), list);
        }
        assert!(decode_list(&[2, 1, b'a']).is_err());
    }
}
