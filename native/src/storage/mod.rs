//! The embedded storage engine: documents in redb, with a secondary index
//! over every scalar, a query planner, and group-committed writes.
//!
//! [`Store`] is the whole public surface. Reads ([`Store::find`],
//! [`Store::count`], [`Store::collections`]) run on the caller's thread in
//! a redb read transaction (a consistent snapshot, never blocked by
//! writes). Writes ([`Store::insert`], [`Store::update`], [`Store::delete`])
//! are async: they are queued to one writer thread that commits them in
//! groups, and resolve once their group is durable in the write-ahead log
//! and visible to reads.
//!
//! Modules, one job each:
//! * [`schema`] — the tables; [`key_encoding`] — key byte layouts;
//!   [`codec`] — document records; [`replicas`] — interned replica lists;
//!   [`catalog`] — collection ids, counts and sizes.
//! * [`index`] — which index entries a document yields.
//! * [`planner`] — where a query's candidates come from; [`read`] — running
//!   a plan; [`topk`] — ORDER and bounded top-k.
//! * [`apply`] — each write's effect in a transaction; [`writer`] — the
//!   group-commit thread; [`redo`] — effects as logged; [`wal`] — the
//!   write-ahead log file; [`metrics`] — what the writer measures.

mod apply;
mod catalog;
mod codec;
mod error;
mod index;
mod key_encoding;
pub mod metrics;
mod planner;
mod read;
mod redo;
mod replicas;
mod schema;
mod topk;
mod wal;
mod writer;

use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, PoisonError, RwLock};

use canhazdb_core::query::{Order, Query};
use redb::{Database, ReadTransaction, ReadableDatabase, ReadableTable, TableDefinition};
use serde_json::{Map, Value};
use tokio::sync::oneshot;

pub use error::StorageError;

use apply::{PreparedDocument, PreparedMutation};
use key_encoding::CollectionId;
use read::CollectionView;
use replicas::ReplicaSets;
use schema::{
    COLLECTIONS, COLLECTION_BYTES, COLLECTION_COUNTS, DOCUMENTS, INDEX, REPLICA_SETS, REPLICA_SET_COUNTS,
};
use writer::{answer, WriteOp, Writer};

/// The database file inside the store's directory.
const DATABASE_FILE: &str = "canhazdb.redb";

/// Tuning for [`Store::open`].
#[derive(Debug, Clone)]
pub struct StoreOptions {
    /// Memory redb may use to cache pages. This is the store's main memory
    /// cost and does not grow with the amount of data.
    pub cache_bytes: usize,
}

impl Default for StoreOptions {
    fn default() -> StoreOptions {
        StoreOptions {
            cache_bytes: 64 * 1024 * 1024,
        }
    }
}

/// A document as stored: the document itself (with its `id`) and the nodes
/// that hold a replica of it. The replica list is bookkeeping and is never
/// part of `document`.
#[derive(Debug, Clone, PartialEq)]
pub struct StoredDocument {
    pub document: Value,
    pub replicas: Vec<String>,
}

/// What an update does to each matched document. Neither form can change a
/// document's `id`.
#[derive(Debug, Clone, PartialEq)]
pub enum Mutation {
    /// PUT: the value (an object) becomes the document, `id` kept.
    Replace(Value),
    /// PATCH: these top-level keys are set, the others kept.
    Merge(Map<String, Value>),
}

/// A document an update or delete changed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChangedDocument {
    pub id: String,
    pub replicas: Vec<String>,
}

/// The replica filter: given a document's replica list, whether this node
/// reports the document.
pub type ReportedFilter<'a> = &'a (dyn Fn(&[String]) -> bool + Sync);

/// A GET.
#[derive(Clone, Copy)]
pub struct ReadRequest<'a> {
    pub query: &'a Query,
    /// Sort by this (ties by id); without it, results come in an
    /// unspecified but stable order.
    pub order: Option<&'a Order>,
    pub limit: Option<usize>,
    /// The cluster's primary-replica filter: only documents whose replica
    /// list it accepts are returned. Applied before `limit`. `None` = all.
    pub reported: Option<ReportedFilter<'a>>,
}

impl<'a> ReadRequest<'a> {
    /// Every document matching `query`, unordered, unlimited, unfiltered.
    pub fn new(query: &'a Query) -> ReadRequest<'a> {
        ReadRequest {
            query,
            order: None,
            limit: None,
            reported: None,
        }
    }
}

/// An open store. Cheap to clone; all clones share one database and one
/// writer thread.
#[derive(Clone)]
pub struct Store {
    inner: Arc<Inner>,
}

struct Inner {
    path: PathBuf,
    /// `None` once closed.
    database: RwLock<Option<Arc<Database>>>,
    writer: Writer,
}

impl fmt::Debug for Store {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Store").field("path", &self.inner.path).finish()
    }
}

impl Store {
    /// Open (creating if needed) the store in directory `dir`. Takes
    /// milliseconds whatever the amount of data: nothing is scanned. After a
    /// crash, the write-ahead log is replayed first (at most a few seconds
    /// of writes).
    pub fn open(dir: &Path, options: StoreOptions) -> Result<Store, StorageError> {
        std::fs::create_dir_all(dir)?;
        let path = dir.join(DATABASE_FILE);
        let database = Database::builder()
            .set_cache_size(options.cache_bytes)
            .create(&path)?;
        schema::initialise(&database)?;
        let database = Arc::new(database);
        let writer = Writer::start(Arc::clone(&database), &dir.join(wal::WAL_FILE))?;
        Ok(Store {
            inner: Arc::new(Inner {
                path,
                database: RwLock::new(Some(database)),
                writer,
            }),
        })
    }

    /// Store a new document (an object with a string `id`) held by
    /// `replicas`. Fails with [`StorageError::DuplicateId`] if the
    /// collection already has that id. Resolves once durable.
    pub async fn insert(
        &self,
        collection: &str,
        document: Value,
        replicas: Vec<String>,
    ) -> Result<(), StorageError> {
        let document = PreparedDocument::new(document)?;
        let (reply, receiver) = oneshot::channel();
        self.inner
            .writer
            .submit(WriteOp::Insert {
                collection: collection.to_owned(),
                document,
                replicas,
                reply,
            })
            .await?;
        answer(receiver).await
    }

    /// The documents of `collection` matching the request.
    pub fn find(&self, collection: &str, request: &ReadRequest) -> Result<Vec<StoredDocument>, StorageError> {
        let snapshot = self.snapshot()?;
        let tables = snapshot.tables()?;
        let Some(view) = tables.view(collection)? else {
            return Ok(Vec::new());
        };
        let mut sets = ReplicaSets::new(&tables.replica_sets, request.reported);
        let found = view.find(request.query, request.order, request.limit, &mut sets)?;
        found
            .into_iter()
            .map(|found| {
                Ok(StoredDocument {
                    replicas: sets.names(found.replica_set)?,
                    document: found.document,
                })
            })
            .collect()
    }

    /// How many documents of `collection` match `query` (and pass
    /// `reported`). A match-all count is O(1) without a filter, and
    /// O(distinct replica lists) with one.
    pub fn count(
        &self,
        collection: &str,
        query: &Query,
        reported: Option<ReportedFilter<'_>>,
    ) -> Result<u64, StorageError> {
        let snapshot = self.snapshot()?;
        let tables = snapshot.tables()?;
        let Some(view) = tables.view(collection)? else {
            return Ok(0);
        };
        let mut sets = ReplicaSets::new(&tables.replica_sets, reported);
        if !query.is_match_all() {
            return view.count(query, &mut sets);
        }
        if reported.is_none() {
            let counts = snapshot.transaction.open_table(COLLECTION_COUNTS)?;
            return catalog::per_collection(&counts, view.collection);
        }
        let set_counts = snapshot.transaction.open_table(REPLICA_SET_COUNTS)?;
        let mut total = 0;
        for (replica_set, count) in catalog::replica_set_counts(&set_counts, view.collection)? {
            if sets.is_reported(replica_set)? {
                total += count;
            }
        }
        Ok(total)
    }

    /// Apply `mutation` to every document of `collection` matching `query`,
    /// in one transaction. Returns what changed, once durable.
    pub async fn update(
        &self,
        collection: &str,
        query: Query,
        mutation: Mutation,
    ) -> Result<Vec<ChangedDocument>, StorageError> {
        let mutation = PreparedMutation::new(mutation)?;
        let (reply, receiver) = oneshot::channel();
        self.inner
            .writer
            .submit(WriteOp::Update {
                collection: collection.to_owned(),
                query,
                mutation,
                reply,
            })
            .await?;
        answer(receiver).await
    }

    /// Delete every document of `collection` matching `query`, in one
    /// transaction. Returns what was deleted, once durable.
    pub async fn delete(&self, collection: &str, query: Query) -> Result<Vec<ChangedDocument>, StorageError> {
        let (reply, receiver) = oneshot::channel();
        self.inner
            .writer
            .submit(WriteOp::Delete {
                collection: collection.to_owned(),
                query,
                reply,
            })
            .await?;
        answer(receiver).await
    }

    /// Every non-empty collection with its document count, sorted by name.
    pub fn collections(&self) -> Result<Vec<(String, u64)>, StorageError> {
        self.non_zero(COLLECTION_COUNTS)
    }

    /// Every non-empty collection with the bytes its documents take in this
    /// store (keys and records of the documents table, which hold each
    /// document encoded, its id and its replica set; neither index entries
    /// nor the database file's own overhead), sorted by name.
    pub fn collection_bytes(&self) -> Result<Vec<(String, u64)>, StorageError> {
        self.non_zero(COLLECTION_BYTES)
    }

    /// Every collection whose value in the per-collection `table` is not 0.
    fn non_zero(
        &self,
        table: TableDefinition<'static, CollectionId, u64>,
    ) -> Result<Vec<(String, u64)>, StorageError> {
        let snapshot = self.snapshot()?;
        let collections = snapshot.transaction.open_table(COLLECTIONS)?;
        let values = snapshot.transaction.open_table(table)?;
        let mut result = Vec::new();
        for entry in collections.iter()? {
            let (name, id) = entry?;
            let value = catalog::per_collection(&values, id.value())?;
            if value > 0 {
                result.push((name.value().to_owned(), value));
            }
        }
        Ok(result)
    }

    /// Finish every queued write, make it durable, and close the database.
    /// Other clones of this store get [`StorageError::Closed`] afterwards.
    pub async fn close(self) -> Result<(), StorageError> {
        let (reply, done) = oneshot::channel();
        if self.inner.writer.submit(WriteOp::Close { reply }).await.is_ok() {
            // The writer answers after its last commit and after releasing
            // its handle on the database.
            let _ = done.await;
        }
        self.inner
            .database
            .write()
            .unwrap_or_else(PoisonError::into_inner)
            .take();
        Ok(())
    }

    fn snapshot(&self) -> Result<Snapshot, StorageError> {
        let database = self
            .inner
            .database
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
            .ok_or(StorageError::Closed)?;
        let transaction = database.begin_read()?;
        Ok(Snapshot { transaction })
    }
}

/// A read transaction.
struct Snapshot {
    transaction: ReadTransaction,
}

type ReadOnly<K, V> = redb::ReadOnlyTable<K, V>;

/// The tables every read opens.
struct ReadTables {
    collections: ReadOnly<&'static str, u32>,
    documents: ReadOnly<&'static [u8], &'static [u8]>,
    index: ReadOnly<&'static [u8], u32>,
    replica_sets: ReadOnly<u32, &'static [u8]>,
}

impl Snapshot {
    fn tables(&self) -> Result<ReadTables, StorageError> {
        Ok(ReadTables {
            collections: self.transaction.open_table(COLLECTIONS)?,
            documents: self.transaction.open_table(DOCUMENTS)?,
            index: self.transaction.open_table(INDEX)?,
            replica_sets: self.transaction.open_table(REPLICA_SETS)?,
        })
    }
}

type ReadView<'a> = CollectionView<'a, ReadOnly<&'static [u8], &'static [u8]>, ReadOnly<&'static [u8], u32>>;

impl ReadTables {
    /// The view of one collection, or `None` if it never had a document.
    fn view(&self, collection: &str) -> Result<Option<ReadView<'_>>, StorageError> {
        let Some(id) = self.collections.get(collection)?.map(|id| id.value()) else {
            return Ok(None);
        };
        Ok(Some(CollectionView {
            collection: id,
            documents: &self.documents,
            index: &self.index,
        }))
    }
}
