//! Submitting lock commands: to the leader, from any node.

use std::time::Instant;

use canhazdb_core::lock::LockError;

use super::error::RaftError;
use super::node::{RaftNode, Route, RETRY_PAUSE};
use super::transport::{RaftReply, RaftRequest};
use super::types::RaftMember;
use crate::locks::{LockCommand, LockManager, LockResponse};

impl RaftNode {
    /// Orders `command` through the Raft log and returns what applying it
    /// answered.
    ///
    /// On the leader this is a client write; elsewhere the command is
    /// forwarded to the leader ([`RaftRequest::ClientWrite`]), retrying
    /// while a leader is being elected, for at most
    /// [`RaftOptions::submit_timeout`](super::RaftOptions::submit_timeout).
    /// It resolves only once *this* node's state machine has applied the
    /// command's log index (bounded by the same timeout again), so the
    /// lock waiters of this node have been fired.
    ///
    /// If an attempt failed in a way that leaves it unknown whether the
    /// command was committed (a timeout, a lost connection) and a retry then
    /// finds the command's own effect already in place, the retry's answer
    /// is corrected to what the first attempt answered (see `reconcile`).
    pub async fn submit(&self, command: LockCommand) -> Result<LockResponse, RaftError> {
        let timeout = self.options.submit_timeout;
        let deadline = Instant::now() + timeout;
        let mut ambiguous = false;
        let mut hint: Option<RaftMember> = None;
        let mut last_error = String::from("no leader known");
        let (response, log_index) = loop {
            self.check_running()?;
            let remaining = deadline.saturating_duration_since(Instant::now());
            if remaining.is_zero() {
                return Err(RaftError::Unavailable(format!(
                    "lock command not committed within {timeout:?}: {last_error}"
                )));
            }
            let request = RaftRequest::ClientWrite(command.clone());
            let attempt = match self.route(hint.as_ref()) {
                Route::Local => Some(
                    tokio::time::timeout(remaining, self.handle(request))
                        .await
                        .map_err(|_| "timed out".to_string()),
                ),
                Route::Remote(leader) => {
                    let call = self.transport.call(&leader, request);
                    Some(match tokio::time::timeout(remaining, call).await {
                        Ok(reply) => reply.map_err(|error| format!("leader {leader}: {error}")),
                        Err(_) => Err(format!("leader {leader}: timed out")),
                    })
                }
                Route::Unknown => None,
            };
            match attempt {
                None => {}
                Some(Ok(RaftReply::ClientWrite { response, log_index })) => break (response, log_index),
                Some(Ok(RaftReply::ForwardToLeader { leader })) => {
                    // Refused before it was appended: safe to retry.
                    last_error = "the leader changed".into();
                    hint = leader;
                }
                Some(Ok(RaftReply::Error(error))) | Some(Err(error)) => {
                    ambiguous = true;
                    last_error = error;
                    hint = None;
                }
                Some(Ok(other)) => {
                    ambiguous = true;
                    last_error = format!("unexpected reply {other:?}");
                    hint = None;
                }
            }
            tokio::time::sleep(RETRY_PAUSE).await;
        };
        self.wait_applied(log_index).await?;
        if ambiguous {
            if let Some(locks) = self.locks.upgrade() {
                return Ok(reconcile(&command, response, &locks));
            }
        }
        Ok(response)
    }

    /// Waits until this node's state machine has applied `log_index`.
    async fn wait_applied(&self, log_index: u64) -> Result<(), RaftError> {
        let timeout = self.options.submit_timeout;
        self.raft
            .wait(Some(timeout))
            .applied_index_at_least(Some(log_index), "lock command applied")
            .await
            .map(|_| ())
            .map_err(|_| {
                RaftError::Unavailable(format!(
                    "lock command committed at index {log_index} but not applied on this node within {timeout:?}"
                ))
            })
    }
}

/// The answer to a command that was submitted again after an attempt whose
/// outcome was unknown: if the retry's answer shows that the first attempt
/// was applied (its lock id is already in the table, or already gone for a
/// release), the first attempt's answer, [`LockResponse::Done`]. Lock ids
/// are random UUIDs, so finding one's own id means finding one's own
/// command.
pub(crate) fn reconcile(command: &LockCommand, response: LockResponse, locks: &LockManager) -> LockResponse {
    match (command, &response) {
        (LockCommand::Acquire(entry), LockResponse::Failed(LockError::DuplicateId(id)))
            if *id == entry.id =>
        {
            // Still in the table: the first attempt queued it. Gone: it was
            // applied and released since (its connection closed, its node
            // left), and the table refused the late copy: withdrawn.
            if locks.entries().iter().any(|held| held.id == entry.id) {
                LockResponse::Done
            } else {
                LockResponse::Busy
            }
        }
        (LockCommand::AcquireIfFree(entry), LockResponse::Busy)
            if locks.entries().iter().any(|held| held.id == entry.id) =>
        {
            LockResponse::Done
        }
        (
            LockCommand::Release { .. } | LockCommand::ReleaseIfHeldBy { .. },
            LockResponse::Failed(LockError::NotFound(_)),
        ) => LockResponse::Done,
        _ => response,
    }
}
