//! The readiness rule (spec section 3, "Readiness and health").
//!
//! A node is healthy when it sees more than half of the cluster's known nodes
//! online (itself included) and has no unrepaired writes of its own. Only a
//! healthy node sends READY and answers external commands; an unhealthy one
//! answers them with STATUS_SERVER_UNHEALTHY. Requiring a strict majority
//! means two halves of a partitioned cluster can never both accept writes.

use std::fmt;

/// Whether `online_nodes` is a strict majority of `known_nodes`.
///
/// Both counts include this node, so a cluster of one whose only node is
/// online has a majority, and a cluster of two needs both.
pub fn has_majority(known_nodes: usize, online_nodes: usize) -> bool {
    // Same as `online * 2 > known`, without overflow.
    online_nodes > known_nodes / 2
}

/// Whether a node may serve external commands: it sees a majority and has
/// applied every repair recorded for it.
pub fn is_healthy(known_nodes: usize, online_nodes: usize, pending_repairs: usize) -> bool {
    assess(known_nodes, online_nodes, pending_repairs).is_healthy()
}

/// A node's health, with the reason when it is unhealthy.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Health {
    Healthy,
    Unhealthy(UnhealthyReason),
}

/// Why a node is unhealthy. When several reasons hold, the missing majority
/// is reported: repairs cannot finish without it anyway.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum UnhealthyReason {
    /// Only `online` of `known` nodes (this one included) are online.
    NoMajority { online: usize, known: usize },
    /// This many writes this node missed still have to be applied.
    PendingRepairs(usize),
    /// The node has not joined the cluster's lock group (Raft) yet, so it
    /// could not honour locks.
    NotInLockGroup,
}

/// Judges a node's health from what it knows (see the module docs).
pub fn assess(known_nodes: usize, online_nodes: usize, pending_repairs: usize) -> Health {
    if !has_majority(known_nodes, online_nodes) {
        Health::Unhealthy(UnhealthyReason::NoMajority {
            online: online_nodes,
            known: known_nodes,
        })
    } else if pending_repairs > 0 {
        Health::Unhealthy(UnhealthyReason::PendingRepairs(pending_repairs))
    } else {
        Health::Healthy
    }
}

impl Health {
    /// Whether this is [`Health::Healthy`].
    pub fn is_healthy(&self) -> bool {
        matches!(self, Health::Healthy)
    }

    /// The reason, if unhealthy.
    pub fn reason(&self) -> Option<UnhealthyReason> {
        match self {
            Health::Healthy => None,
            Health::Unhealthy(reason) => Some(*reason),
        }
    }
}

impl fmt::Display for Health {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Health::Healthy => f.write_str("healthy"),
            Health::Unhealthy(reason) => write!(f, "unhealthy: {reason}"),
        }
    }
}

impl fmt::Display for UnhealthyReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            UnhealthyReason::NoMajority { online, known } => {
                let verb = if online == 1 { "is" } else { "are" };
                let needed = known / 2 + 1;
                write!(
                    f,
                    "only {online} of {known} known {} {verb} online, a majority needs {needed}",
                    plural(known, "node", "nodes"),
                )
            }
            UnhealthyReason::PendingRepairs(count) => write!(
                f,
                "{count} missed {} still to be repaired",
                plural(count, "write is", "writes are"),
            ),
            UnhealthyReason::NotInLockGroup => f.write_str("not yet part of the cluster's lock group"),
        }
    }
}

fn plural<'a>(count: usize, one: &'a str, many: &'a str) -> &'a str {
    if count == 1 {
        one
    } else {
        many
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn majority_is_strictly_more_than_half() {
        assert!(has_majority(1, 1), "a lone node that is up");
        assert!(!has_majority(1, 0));
        assert!(!has_majority(2, 1), "half is not a majority");
        assert!(has_majority(2, 2));
        assert!(!has_majority(3, 1));
        assert!(has_majority(3, 2));
        assert!(!has_majority(4, 2));
        assert!(has_majority(4, 3));
        assert!(has_majority(5, 3));
        assert!(!has_majority(5, 2));
    }

    #[test]
    fn no_known_nodes_is_no_majority() {
        assert!(!has_majority(0, 0));
    }

    #[test]
    fn huge_counts_do_not_overflow() {
        assert!(has_majority(usize::MAX, usize::MAX));
        assert!(!has_majority(usize::MAX, usize::MAX / 2));
        assert!(has_majority(usize::MAX, usize::MAX / 2 + 1));
    }

    #[test]
    fn healthy_needs_majority_and_no_repairs() {
        assert!(is_healthy(3, 2, 0));
        assert!(!is_healthy(3, 2, 1));
        assert!(!is_healthy(3, 1, 0));
        assert!(!is_healthy(3, 1, 4));
        assert!(is_healthy(1, 1, 0));
    }

    #[test]
    fn assess_reports_the_reason() {
        assert_eq!(assess(3, 3, 0), Health::Healthy);
        assert_eq!(
            assess(3, 1, 0),
            Health::Unhealthy(UnhealthyReason::NoMajority { online: 1, known: 3 })
        );
        assert_eq!(
            assess(3, 2, 5),
            Health::Unhealthy(UnhealthyReason::PendingRepairs(5))
        );
        // Without a majority that is the reason given, repairs or not.
        assert_eq!(
            assess(4, 2, 5),
            Health::Unhealthy(UnhealthyReason::NoMajority { online: 2, known: 4 })
        );
    }

    #[test]
    fn health_helpers() {
        assert!(Health::Healthy.is_healthy());
        assert_eq!(Health::Healthy.reason(), None);
        let unhealthy = assess(3, 2, 1);
        assert!(!unhealthy.is_healthy());
        assert_eq!(unhealthy.reason(), Some(UnhealthyReason::PendingRepairs(1)));
    }

    #[test]
    fn display_reads_as_a_sentence() {
        assert_eq!(Health::Healthy.to_string(), "healthy");
        assert_eq!(
            assess(3, 1, 0).to_string(),
            "unhealthy: only 1 of 3 known nodes is online, a majority needs 2"
        );
        assert_eq!(
            assess(4, 2, 0).to_string(),
            "unhealthy: only 2 of 4 known nodes are online, a majority needs 3"
        );
        assert_eq!(
            assess(1, 0, 0).to_string(),
            "unhealthy: only 0 of 1 known node are online, a majority needs 1"
        );
        assert_eq!(
            assess(3, 3, 1).to_string(),
            "unhealthy: 1 missed write is still to be repaired"
        );
        assert_eq!(
            assess(3, 3, 7).to_string(),
            "unhealthy: 7 missed writes are still to be repaired"
        );
    }

    proptest! {
        #[test]
        fn assess_agrees_with_the_predicates(
            known in prop_oneof![0usize..20, any::<usize>()],
            online in prop_oneof![0usize..20, any::<usize>()],
            repairs in 0usize..3,
        ) {
            let health = assess(known, online, repairs);
            prop_assert_eq!(health.is_healthy(), is_healthy(known, online, repairs));
            prop_assert_eq!(has_majority(known, online), online as u128 * 2 > known as u128);
            prop_assert_eq!(
                is_healthy(known, online, repairs),
                has_majority(known, online) && repairs == 0
            );
        }
    }
}
