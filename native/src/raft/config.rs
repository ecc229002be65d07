//! Timing and compaction settings of a Raft node.

use std::time::Duration;

use openraft::{Config, SnapshotPolicy};

use super::error::RaftError;

/// Settings of one [`RaftNode`](super::RaftNode); [`Default`] is what a
/// server uses, tests shrink the snapshot threshold.
#[derive(Debug, Clone)]
pub struct RaftOptions {
    /// Leader heartbeat period; also the AppendEntries RPC timeout.
    pub heartbeat: Duration,
    /// A follower that hears no leader for a random time in this range
    /// (inclusive bounds) starts an election.
    pub election_timeout: (Duration, Duration),
    /// Build a snapshot after this many log entries since the last one.
    pub snapshot_logs: u64,
    /// Log entries kept (not purged) behind a snapshot, so a slightly
    /// lagging follower is caught up from the log rather than a snapshot.
    pub keep_logs_after_snapshot: u64,
    /// How long [`RaftNode::submit`](super::RaftNode::submit) keeps trying
    /// to get a command committed (leader elections included), and then
    /// again how long it waits for this node to apply it.
    pub submit_timeout: Duration,
    /// How long a membership change (add or remove a node) may take,
    /// including a new node catching up as a learner.
    pub membership_timeout: Duration,
}

impl Default for RaftOptions {
    fn default() -> Self {
        RaftOptions {
            heartbeat: Duration::from_millis(100),
            election_timeout: (Duration::from_millis(300), Duration::from_millis(600)),
            snapshot_logs: 1000,
            keep_logs_after_snapshot: 100,
            submit_timeout: Duration::from_secs(5),
            membership_timeout: Duration::from_secs(10),
        }
    }
}

impl RaftOptions {
    /// The openraft config for these options.
    pub(crate) fn openraft_config(&self) -> Result<Config, RaftError> {
        let config = Config {
            cluster_name: "canhazdb-locks".into(),
            heartbeat_interval: millis(self.heartbeat),
            election_timeout_min: millis(self.election_timeout.0),
            election_timeout_max: millis(self.election_timeout.1),
            // Per snapshot chunk; chunks are small, see below.
            install_snapshot_timeout: 1000,
            // JSON carries the chunk bytes as a number array: keep frames modest.
            snapshot_max_chunk_size: 256 * 1024,
            snapshot_policy: SnapshotPolicy::LogsSinceLast(self.snapshot_logs.max(1)),
            max_in_snapshot_log_to_keep: self.keep_logs_after_snapshot,
            // A learner counts as caught up (and may become a voter) once it
            // is within this many entries of the leader.
            replication_lag_threshold: 100,
            ..Config::default()
        };
        config
            .validate()
            .map_err(|error| RaftError::Config(error.to_string()))
    }
}

fn millis(duration: Duration) -> u64 {
    u64::try_from(duration.as_millis()).unwrap_or(u64::MAX).max(1)
}
