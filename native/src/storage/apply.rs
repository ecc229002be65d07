//! The effect of each write inside the writer's transaction.
//!
//! Every operation first checks everything that could make it fail for a
//! reason of its own (duplicate id, unknown collection, ...) and only then
//! mutates. So an operation either changes nothing and is *rejected* (its
//! caller gets the error, the rest of the batch commits), or it *fails*
//! part-way for a reason outside its control (I/O, corruption) and the whole
//! batch's transaction is abandoned. redb offers no savepoints once tables
//! are open, so check-then-mutate is what keeps batch members independent.
//!
//! Every mutation also records its effect in the batch's [`RedoLog`], which
//! the writer appends to the write-ahead log; [`WriteTables::replay`] applies
//! such an effect again after a crash.

use std::collections::HashMap;

use canhazdb_core::query::Query;
use redb::{ReadableTable, Table, WriteTransaction};
use serde_json::{Map, Value};

use super::catalog::{self, CountChanges};
use super::codec::{self, encode_body, ID_FIELD};
use super::error::StorageError;
use super::index::{difference, index_entries};
use super::key_encoding::{document_key, CollectionId};
use super::read::CollectionView;
use super::redo::{Effect, RedoLog};
use super::replicas::{self, ReplicaSetId, ReplicaSets};
use super::schema::{COLLECTIONS, DOCUMENTS, INDEX, REPLICA_SETS, REPLICA_SET_IDS};
use super::ChangedDocument;

/// Longest accepted document id, in bytes (ids are part of every key).
pub const MAX_ID_BYTES: usize = 1024;

/// Why an operation did not happen.
pub enum OpError {
    /// Nothing was changed; only this operation fails.
    Rejected(StorageError),
    /// The transaction may be half-changed; the whole batch fails.
    Failed(StorageError),
}

impl From<StorageError> for OpError {
    fn from(error: StorageError) -> OpError {
        OpError::Failed(error)
    }
}

impl From<redb::StorageError> for OpError {
    fn from(error: redb::StorageError) -> OpError {
        OpError::Failed(error.into())
    }
}

/// A document ready to store, prepared by the caller's task (not the
/// writer thread): validated, encoded and with its index entries computed.
pub struct PreparedDocument {
    pub id: String,
    pub body: Vec<u8>,
    pub index_entries: Vec<Vec<u8>>,
}

impl PreparedDocument {
    pub fn new(document: Value) -> Result<PreparedDocument, StorageError> {
        let Value::Object(fields) = document else {
            return Err(StorageError::InvalidDocument(
                "a document must be a JSON object".to_owned(),
            ));
        };
        let id = match fields.get(ID_FIELD) {
            Some(Value::String(id)) => id.clone(),
            Some(_) => {
                return Err(StorageError::InvalidDocument(
                    "the document's id must be a string".to_owned(),
                ))
            }
            None => return Err(StorageError::InvalidDocument("the document has no id".to_owned())),
        };
        if id.len() > MAX_ID_BYTES {
            return Err(StorageError::InvalidDocument(format!(
                "the document's id is longer than {MAX_ID_BYTES} bytes"
            )));
        }
        Self::with_id(id, &fields)
    }

    /// Prepare `fields` to be stored under `id` (any `id` field is ignored).
    fn with_id(id: String, fields: &Map<String, Value>) -> Result<PreparedDocument, StorageError> {
        let mut body = Vec::new();
        encode_body(fields, &mut body)?;
        Ok(PreparedDocument {
            id,
            body,
            index_entries: index_entries(fields),
        })
    }
}

/// A PUT/PATCH, validated and (for PUT) encoded once for all documents.
pub enum PreparedMutation {
    Replace(PreparedDocument),
    Merge(Map<String, Value>),
}

impl PreparedMutation {
    pub fn new(mutation: super::Mutation) -> Result<PreparedMutation, StorageError> {
        match mutation {
            super::Mutation::Replace(Value::Object(fields)) => Ok(PreparedMutation::Replace(
                PreparedDocument::with_id(String::new(), &fields)?,
            )),
            super::Mutation::Replace(_) => Err(StorageError::InvalidDocument(
                "a replacement document must be a JSON object".to_owned(),
            )),
            super::Mutation::Merge(mut fields) => {
                // The id cannot change; drop it here rather than per document.
                fields.remove(ID_FIELD);
                // Encoding checks nesting now, so merging cannot fail later,
                // half-way through a batch.
                encode_body(&fields, &mut Vec::new())?;
                Ok(PreparedMutation::Merge(fields))
            }
        }
    }
}

/// The tables a batch writes, opened once per transaction.
pub struct WriteTables<'txn> {
    collections: Table<'txn, &'static str, CollectionId>,
    documents: Table<'txn, &'static [u8], &'static [u8]>,
    index: Table<'txn, &'static [u8], ReplicaSetId>,
    replica_sets: Table<'txn, ReplicaSetId, &'static [u8]>,
    replica_set_ids: Table<'txn, &'static [u8], ReplicaSetId>,
    counts: CountChanges,
    redo: RedoLog,
    /// Lookups this batch already made: a group of inserts mostly names the
    /// same collection and the same few replica lists.
    collection_ids: HashMap<String, CollectionId>,
    replica_set_ids_seen: HashMap<Vec<String>, ReplicaSetId>,
}

impl<'txn> WriteTables<'txn> {
    pub fn open(transaction: &'txn WriteTransaction) -> Result<WriteTables<'txn>, StorageError> {
        Ok(WriteTables {
            collections: transaction.open_table(COLLECTIONS)?,
            documents: transaction.open_table(DOCUMENTS)?,
            index: transaction.open_table(INDEX)?,
            replica_sets: transaction.open_table(REPLICA_SETS)?,
            replica_set_ids: transaction.open_table(REPLICA_SET_IDS)?,
            counts: CountChanges::default(),
            redo: RedoLog::default(),
            collection_ids: HashMap::new(),
            replica_set_ids_seen: HashMap::new(),
        })
    }

    /// Close the tables, handing back the batch's count changes and the
    /// effects to log.
    pub fn finish(self) -> (CountChanges, RedoLog) {
        (self.counts, self.redo)
    }

    pub fn insert(
        &mut self,
        collection: &str,
        document: &PreparedDocument,
        replicas: &[String],
    ) -> Result<(), OpError> {
        let collection_id = self.collection_id(collection)?;
        let replica_set = self.replica_set(replicas)?;
        let key = document_key(collection_id, &document.id);
        let record = codec::record(replica_set, &document.body);
        // Insert first and look at what was there: one B-tree walk instead
        // of a lookup and an insert. A duplicate is put back as it was
        // (a new collection or replica list left behind is harmless).
        let previous = self
            .documents
            .insert(key.as_slice(), record.as_slice())?
            .map(|previous| previous.value().to_vec());
        if let Some(previous) = previous {
            self.documents.insert(key.as_slice(), previous.as_slice())?;
            return Err(OpError::Rejected(StorageError::DuplicateId {
                collection: collection.to_owned(),
                id: document.id.clone(),
            }));
        }
        for entry in &document.index_entries {
            let key = index_key(collection_id, entry, &document.id);
            self.index.insert(key.as_slice(), replica_set)?;
        }
        self.counts
            .added(collection_id, replica_set, catalog::row_bytes(&key, &record));
        self.redo.put(collection, &document.id, replicas, &document.body);
        Ok(())
    }

    /// The id of `collection`, created if new.
    fn collection_id(&mut self, collection: &str) -> Result<CollectionId, StorageError> {
        if let Some(id) = self.collection_ids.get(collection) {
            return Ok(*id);
        }
        let id = catalog::lookup_or_create(&mut self.collections, collection)?;
        self.collection_ids.insert(collection.to_owned(), id);
        Ok(id)
    }

    /// The id of the replica list `replicas`, interned if new.
    fn replica_set(&mut self, replicas: &[String]) -> Result<ReplicaSetId, StorageError> {
        if let Some(id) = self.replica_set_ids_seen.get(replicas) {
            return Ok(*id);
        }
        let id = replicas::intern(&mut self.replica_set_ids, &mut self.replica_sets, replicas)?;
        self.replica_set_ids_seen.insert(replicas.to_vec(), id);
        Ok(id)
    }

    pub fn update(
        &mut self,
        collection: &str,
        query: &Query,
        mutation: &PreparedMutation,
    ) -> Result<Vec<ChangedDocument>, OpError> {
        let Some(collection_id) = catalog::lookup(&self.collections, collection)? else {
            return Ok(Vec::new());
        };
        let ids = self.matching_ids(collection_id, query)?;
        let mut sets = ReplicaSets::new(&self.replica_sets, None);
        let mut changed = Vec::with_capacity(ids.len());
        for id in ids {
            let key = document_key(collection_id, &id);
            let (replica_set, old, old_bytes) = match self.documents.get(key.as_slice())? {
                Some(record) => {
                    let (replica_set, old) = codec::decode_record(&id, record.value())?;
                    (replica_set, old, catalog::row_bytes(&key, record.value()))
                }
                None => continue,
            };
            let old_entries = index_entries(as_object(&old)?);
            let merged;
            let new = match mutation {
                PreparedMutation::Replace(replacement) => replacement,
                PreparedMutation::Merge(fields) => {
                    let mut document = as_object(&old)?.clone();
                    for (key, value) in fields {
                        document.insert(key.clone(), value.clone());
                    }
                    merged = PreparedDocument::with_id(String::new(), &document)?;
                    &merged
                }
            };
            let record = codec::record(replica_set, &new.body);
            self.documents.insert(key.as_slice(), record.as_slice())?;
            self.counts
                .resize(collection_id, catalog::row_bytes(&key, &record) - old_bytes);
            for gone in difference(&old_entries, &new.index_entries) {
                self.index
                    .remove(index_key(collection_id, gone, &id).as_slice())?;
            }
            for added in difference(&new.index_entries, &old_entries) {
                self.index
                    .insert(index_key(collection_id, added, &id).as_slice(), replica_set)?;
            }
            let replicas = sets.names(replica_set)?;
            self.redo.put(collection, &id, &replicas, &new.body);
            changed.push(ChangedDocument { replicas, id });
        }
        Ok(changed)
    }

    pub fn delete(&mut self, collection: &str, query: &Query) -> Result<Vec<ChangedDocument>, OpError> {
        let Some(collection_id) = catalog::lookup(&self.collections, collection)? else {
            return Ok(Vec::new());
        };
        let ids = self.matching_ids(collection_id, query)?;
        let mut removed = Vec::with_capacity(ids.len());
        for id in ids {
            if let Some(replica_set) = self.remove_document(collection_id, &id)? {
                self.redo.remove(collection, &id);
                removed.push((id, replica_set));
            }
        }
        let mut sets = ReplicaSets::new(&self.replica_sets, None);
        removed
            .into_iter()
            .map(|(id, replica_set)| {
                Ok(ChangedDocument {
                    replicas: sets.names(replica_set)?,
                    id,
                })
            })
            .collect()
    }

    /// Apply a logged effect again (crash recovery). Idempotent: a put
    /// replaces whatever the document was, a remove of a missing document
    /// does nothing. Logs nothing itself.
    pub fn replay(&mut self, effect: Effect) -> Result<(), StorageError> {
        match effect {
            Effect::Put {
                collection,
                id,
                replicas,
                body,
            } => {
                let collection_id = self.collection_id(&collection)?;
                self.remove_document(collection_id, &id)?;
                let entries = index_entries(&codec::decode_body(&body)?);
                let replica_set = self.replica_set(&replicas)?;
                let key = document_key(collection_id, &id);
                let record = codec::record(replica_set, &body);
                self.documents.insert(key.as_slice(), record.as_slice())?;
                for entry in &entries {
                    self.index
                        .insert(index_key(collection_id, entry, &id).as_slice(), replica_set)?;
                }
                self.counts
                    .added(collection_id, replica_set, catalog::row_bytes(&key, &record));
            }
            Effect::Remove { collection, id } => {
                if let Some(collection_id) = catalog::lookup(&self.collections, &collection)? {
                    self.remove_document(collection_id, &id)?;
                }
            }
        }
        Ok(())
    }

    /// Remove a document with its index entries, count and size, if it exists;
    /// the replica set it had, if it did.
    fn remove_document(
        &mut self,
        collection: CollectionId,
        id: &str,
    ) -> Result<Option<ReplicaSetId>, StorageError> {
        let key = document_key(collection, id);
        let Some((replica_set, old, old_bytes)) = self
            .documents
            .remove(key.as_slice())?
            .map(|record| {
                let (replica_set, old) = codec::decode_record(id, record.value())?;
                Ok::<_, StorageError>((replica_set, old, catalog::row_bytes(&key, record.value())))
            })
            .transpose()?
        else {
            return Ok(None);
        };
        for entry in index_entries(as_object(&old)?) {
            self.index.remove(index_key(collection, &entry, id).as_slice())?;
        }
        self.counts.removed(collection, replica_set, old_bytes);
        Ok(Some(replica_set))
    }

    fn matching_ids(&self, collection: CollectionId, query: &Query) -> Result<Vec<String>, StorageError> {
        let view = CollectionView {
            collection,
            documents: &self.documents,
            index: &self.index,
        };
        view.matching_ids(query, &mut ReplicaSets::new(&self.replica_sets, None))
    }
}

fn as_object(document: &Value) -> Result<&Map<String, Value>, StorageError> {
    document
        .as_object()
        .ok_or_else(|| StorageError::Corrupt("stored document is not an object".to_owned()))
}

/// `collection ++ entry ++ id`.
fn index_key(collection: CollectionId, entry: &[u8], id: &str) -> Vec<u8> {
    let mut key = Vec::with_capacity(4 + entry.len() + id.len());
    key.extend_from_slice(&collection.to_be_bytes());
    key.extend_from_slice(entry);
    key.extend_from_slice(id.as_bytes());
    key
}
