//! What each test sends, and what counts as a good answer.
//!
//! The dataset documents look like
//! `{"id":"b000000042","seq":42,"group":42,"pad":"xxx…"}`: the id is derived
//! from `seq`, so a test can address any of them without first fetching ids.
//! The server indexes every scalar field, so `seq` (unique) serves the
//! indexed-equality GET and `group` (`seq % 100`) the COUNT by query.
//! Documents of the POST test get server-assigned ids and a `post` field
//! instead of `seq`, so they never disturb the dataset's queries.

use canhazdb::client::{Error, Status};
use canhazdb_core::client::Response;
use canhazdb_core::message::{CollectionId, LockOptions, ReadOptions, Request};
use serde_json::{json, Map, Value};

use super::rng::Rng;

/// Distinct values of the `group` field.
pub const GROUPS: u64 = 100;

/// A test of the benchmark.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum TestKind {
    /// POST a new document.
    Post,
    /// GET one dataset document by id.
    Get,
    /// GET one dataset document by equality on an indexed field.
    Query,
    /// COUNT the whole collection.
    Count,
    /// COUNT the documents of one group (1/100 of the dataset).
    CountQuery,
    /// PATCH one dataset document by id.
    Patch,
}

impl TestKind {
    pub fn label(self) -> &'static str {
        match self {
            TestKind::Post => "POST",
            TestKind::Get => "GET by id",
            TestKind::Query => "GET by query",
            TestKind::Count => "COUNT",
            TestKind::CountQuery => "COUNT by query",
            TestKind::Patch => "PATCH by id",
        }
    }

    /// Whether the test works on the preloaded dataset.
    pub fn needs_dataset(self) -> bool {
        self != TestKind::Post
    }
}

/// What a run sends: a test, or the loading of the dataset.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Operation {
    /// POST dataset document number `index`.
    Load,
    Test(TestKind),
}

impl Operation {
    pub fn label(self) -> &'static str {
        match self {
            Operation::Load => "LOAD",
            Operation::Test(kind) => kind.label(),
        }
    }
}

/// How one reply counts.
#[derive(Debug)]
pub enum Outcome {
    Ok,
    /// A read that found nothing, or a LOAD of a document that already exists.
    Miss,
    Failed(Error),
}

/// Builds the requests of one operation; shared by every worker of a run.
pub struct Workload {
    operation: Operation,
    collection: CollectionId,
    /// Dataset documents are numbered `0..dataset_size`.
    dataset_size: u64,
    /// Padding of dataset documents and of POST-test documents (which have
    /// no id of their own), so that both serialise to about `doc_bytes`.
    pad: String,
    post_pad: String,
}

impl Workload {
    pub fn new(operation: Operation, collection: CollectionId, dataset_size: u64, doc_bytes: usize) -> Self {
        let typical = dataset_size.saturating_sub(1).max(1);
        Workload {
            operation,
            collection,
            dataset_size: dataset_size.max(1),
            pad: padding(document_without_pad(typical), doc_bytes),
            post_pad: padding(post_document_without_pad(typical), doc_bytes),
        }
    }

    pub fn operation(&self) -> Operation {
        self.operation
    }

    /// The request for the `index`-th operation of the run.
    pub fn request(&self, index: u64, rng: &mut Rng) -> Request {
        let collection = self.collection.clone();
        match self.operation {
            Operation::Load => Request::Post {
                collection,
                document: self.dataset_document(index),
                lock: LockOptions::default(),
            },
            Operation::Test(TestKind::Post) => {
                let mut document = post_document_without_pad(index);
                document.insert("pad".into(), self.post_pad.as_str().into());
                Request::Post {
                    collection,
                    document,
                    lock: LockOptions::default(),
                }
            }
            Operation::Test(TestKind::Get) => Request::Get {
                collection,
                read: ReadOptions::with_query(Some(json!({"id": dataset_id(self.pick(rng))}))),
            },
            Operation::Test(TestKind::Query) => Request::Get {
                collection,
                read: ReadOptions::with_query(Some(json!({"seq": self.pick(rng)}))),
            },
            Operation::Test(TestKind::Count) => Request::Count {
                collection,
                query: None,
            },
            Operation::Test(TestKind::CountQuery) => Request::Count {
                collection,
                query: Some(json!({"group": rng.below(GROUPS)})),
            },
            Operation::Test(TestKind::Patch) => {
                let mut patch = Map::with_capacity(1);
                patch.insert("n".into(), index.into());
                Request::Patch {
                    collection,
                    patch,
                    query: Some(json!({"id": dataset_id(self.pick(rng))})),
                    lock: LockOptions::default(),
                }
            }
        }
    }

    /// How a reply counts: reads must find their document, a PATCH must
    /// change one.
    pub fn outcome(&self, result: Result<Response, Error>) -> Outcome {
        match (self.operation, result) {
            (_, Ok(Response::Documents(documents))) if documents.is_empty() => Outcome::Miss,
            (_, Ok(Response::Ids(ids))) if ids.is_empty() => Outcome::Miss,
            (_, Ok(_)) => Outcome::Ok,
            // Reloading a partly loaded dataset: the document is already there.
            (Operation::Load, Err(error)) if error.status() == Some(Status::BadRequest) => Outcome::Miss,
            (_, Err(error)) => Outcome::Failed(error),
        }
    }

    /// A random dataset document number.
    fn pick(&self, rng: &mut Rng) -> u64 {
        rng.below(self.dataset_size)
    }

    fn dataset_document(&self, seq: u64) -> Map<String, Value> {
        let mut document = document_without_pad(seq);
        document.insert("pad".into(), self.pad.as_str().into());
        document
    }
}

/// The id of dataset document `seq`.
pub fn dataset_id(seq: u64) -> String {
    format!("b{seq:09}")
}

fn document_without_pad(seq: u64) -> Map<String, Value> {
    let mut document = Map::with_capacity(4);
    document.insert("id".into(), dataset_id(seq).into());
    document.insert("seq".into(), seq.into());
    document.insert("group".into(), (seq % GROUPS).into());
    document
}

fn post_document_without_pad(index: u64) -> Map<String, Value> {
    let mut document = Map::with_capacity(3);
    document.insert("post".into(), index.into());
    document.insert("group".into(), (index % GROUPS).into());
    document
}

/// The `pad` value that makes `document` serialise to about `doc_bytes`.
fn padding(document: Map<String, Value>, doc_bytes: usize) -> String {
    let base_len = Value::Object(document).to_string().len() + r#","pad":"""#.len();
    "x".repeat(doc_bytes.saturating_sub(base_len))
}

/// The query matching exactly the dataset of `size` documents.
pub fn dataset_query(size: u64) -> Value {
    json!({"seq": {"$gte": 0, "$lt": size}})
}

#[cfg(test)]
mod tests {
    use super::*;

    fn workload(operation: Operation) -> Workload {
        Workload::new(operation, CollectionId::new("bench").unwrap(), 1000, 100)
    }

    #[test]
    fn documents_are_about_the_requested_size() {
        for operation in [Operation::Load, Operation::Test(TestKind::Post)] {
            let Request::Post { document, .. } = workload(operation).request(999, &mut Rng::new(1)) else {
                panic!()
            };
            let len = Value::Object(document).to_string().len();
            assert!((90..=110).contains(&len), "{operation:?}: {len}");
        }
    }

    #[test]
    fn reads_address_dataset_documents() {
        let mut rng = Rng::new(3);
        let Request::Get { read, .. } = workload(Operation::Test(TestKind::Get)).request(0, &mut rng) else {
            panic!()
        };
        let id = read.query.unwrap()["id"].as_str().unwrap().to_owned();
        assert!(id.starts_with('b') && id.len() == 10, "{id}");
        let Request::Get { read, .. } = workload(Operation::Test(TestKind::Query)).request(0, &mut rng)
        else {
            panic!()
        };
        assert!(read.query.unwrap()["seq"].as_u64().unwrap() < 1000);
    }

    #[test]
    fn outcomes() {
        let get = workload(Operation::Test(TestKind::Get));
        assert!(matches!(
            get.outcome(Ok(Response::Documents(vec![]))),
            Outcome::Miss
        ));
        assert!(matches!(
            get.outcome(Ok(Response::Documents(vec![json!({})]))),
            Outcome::Ok
        ));
        let load = workload(Operation::Load);
        let duplicate = Error::Server {
            status: Some(Status::BadRequest),
            code: 121,
            message: None,
        };
        assert!(matches!(load.outcome(Err(duplicate)), Outcome::Miss));
        assert!(matches!(get.outcome(Err(Error::Closed)), Outcome::Failed(_)));
    }
}
