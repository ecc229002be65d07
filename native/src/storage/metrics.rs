//! What the writer thread measures, through the `metrics` facade (a no-op
//! until a recorder is installed; the HTTP port's /metrics installs one).

use std::time::Duration;

pub const GROUP_COMMIT_OPERATIONS: &str = "canhazdb_storage_group_commit_operations";
pub const WAL_SYNC_SECONDS: &str = "canhazdb_storage_wal_sync_seconds";
pub const WAL_BYTES: &str = "canhazdb_storage_wal_bytes";
pub const CHECKPOINT_SECONDS: &str = "canhazdb_storage_checkpoint_seconds";

/// Gives each metric its help text and unit.
pub fn describe() {
    metrics::describe_histogram!(GROUP_COMMIT_OPERATIONS, "Writes committed together in one group.");
    metrics::describe_histogram!(
        WAL_SYNC_SECONDS,
        metrics::Unit::Seconds,
        "Time to append a group's record to the write-ahead log and sync it."
    );
    metrics::describe_gauge!(WAL_BYTES, metrics::Unit::Bytes, "Size of the write-ahead log.");
    metrics::describe_histogram!(
        CHECKPOINT_SECONDS,
        metrics::Unit::Seconds,
        "Time to make the database durable and empty the write-ahead log."
    );
}

/// One group committed: how many writes, and how long its log append took.
pub(crate) fn group_committed(operations: usize, wal_sync: Duration, wal_bytes: u64) {
    metrics::histogram!(GROUP_COMMIT_OPERATIONS).record(operations as f64);
    metrics::histogram!(WAL_SYNC_SECONDS).record(wal_sync.as_secs_f64());
    metrics::gauge!(WAL_BYTES).set(wal_bytes as f64);
}

/// A checkpoint done in `elapsed`; the log is empty now.
pub(crate) fn checkpointed(elapsed: Duration) {
    metrics::histogram!(CHECKPOINT_SECONDS).record(elapsed.as_secs_f64());
    metrics::gauge!(WAL_BYTES).set(0.0);
}
