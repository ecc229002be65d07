//! Errors of the Raft layer, as the rest of the server sees them.

/// Why a Raft operation failed.
#[derive(Debug, Clone, thiserror::Error)]
pub enum RaftError {
    /// The Raft files in the data directory could not be opened or read.
    #[error("raft storage: {0}")]
    Storage(String),
    /// No leader could be reached in time (election running, no majority).
    #[error("raft unavailable: {0}")]
    Unavailable(String),
    /// The membership could not be changed.
    #[error("raft membership change failed: {0}")]
    Membership(String),
    /// The Raft node has stopped (shut down, or a fatal storage error).
    #[error("raft stopped: {0}")]
    Stopped(String),
    /// The Raft configuration is invalid.
    #[error("raft config: {0}")]
    Config(String),
}

impl RaftError {
    pub(crate) fn storage(error: impl std::fmt::Display) -> Self {
        RaftError::Storage(error.to_string())
    }
}
