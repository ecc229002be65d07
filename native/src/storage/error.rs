//! The one error type of the storage engine.
//!
//! redb has a separate error enum per operation (opening, transactions,
//! tables, commits); callers of the [`Store`](super::Store) do not care which
//! step failed, only whether their input was wrong, the data is damaged, the
//! disk failed, or the store is gone. So every redb error is folded into
//! [`StorageError::Corrupt`] or [`StorageError::Io`] here, once.

/// Why a storage operation failed.
///
/// `Clone` because one failed group commit is reported to every caller whose
/// write was in that batch.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum StorageError {
    /// An insert whose id is already taken in the collection.
    #[error("a document with id \"{id}\" already exists in collection \"{collection}\"")]
    DuplicateId { collection: String, id: String },
    /// A document (or a PUT/PATCH body) the store cannot accept.
    #[error("invalid document: {0}")]
    InvalidDocument(String),
    /// The database file holds something this code did not write.
    #[error("storage is corrupt: {0}")]
    Corrupt(String),
    /// The disk, the file system or redb failed.
    #[error("storage failure: {0}")]
    Io(String),
    /// The store was closed (or its writer thread stopped).
    #[error("the store is closed")]
    Closed,
}

impl StorageError {
    /// Whether the caller's input was at fault (a client error, not a
    /// server one).
    pub fn is_bad_input(&self) -> bool {
        matches!(
            self,
            StorageError::DuplicateId { .. } | StorageError::InvalidDocument(_)
        )
    }
}

impl From<redb::StorageError> for StorageError {
    fn from(error: redb::StorageError) -> StorageError {
        match error {
            redb::StorageError::Corrupted(message) => StorageError::Corrupt(message),
            redb::StorageError::DatabaseClosed => StorageError::Closed,
            other => StorageError::Io(other.to_string()),
        }
    }
}

/// The redb errors that merely wrap a [`redb::StorageError`] or describe a
/// misuse of redb (a bug here, reported as `Io` with redb's message).
macro_rules! fold_redb_error {
    ($($error:ty),* $(,)?) => {$(
        impl From<$error> for StorageError {
            fn from(error: $error) -> StorageError {
                match redb::Error::from(error) {
                    redb::Error::Corrupted(message) => StorageError::Corrupt(message),
                    redb::Error::DatabaseClosed => StorageError::Closed,
                    other => StorageError::Io(other.to_string()),
                }
            }
        }
    )*};
}

fold_redb_error!(
    redb::Error,
    redb::DatabaseError,
    redb::TransactionError,
    redb::TableError,
    redb::CommitError,
);

impl From<std::io::Error> for StorageError {
    fn from(error: std::io::Error) -> StorageError {
        StorageError::Io(error.to_string())
    }
}
