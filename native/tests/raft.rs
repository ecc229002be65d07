//! The Raft lock log on three nodes in one process, over an in-memory
//! transport that round-trips every message through serde_json and can cut
//! nodes off ("kill" = cut off + Raft stopped, as after SIGKILL).

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use canhazdb::locks::{BoxFuture, LockManager, LockOwner};
use canhazdb::raft::{
    start_with_locks, FormOutcome, RaftMember, RaftNode, RaftOptions, RaftReply, RaftRequest, RaftTransport,
};
use tempfile::TempDir;

/// Nodes by name, and who is cut off.
#[derive(Default)]
struct Net {
    nodes: Mutex<HashMap<String, Arc<RaftNode>>>,
    down: Mutex<HashSet<String>>,
    snapshot_chunks: AtomicUsize,
}

impl Net {
    fn is_down(&self, name: &str) -> bool {
        self.down.lock().unwrap().contains(name)
    }
}

struct MemTransport {
    from: String,
    net: Arc<Net>,
}

fn roundtrip<T: serde::Serialize + serde::de::DeserializeOwned>(value: &T) -> T {
    serde_json::from_str(&serde_json::to_string(value).expect("serialise")).expect("deserialise")
}

impl RaftTransport for MemTransport {
    fn call(
        &self,
        target: &RaftMember,
        request: RaftRequest,
    ) -> BoxFuture<'static, Result<RaftReply, String>> {
        let net = self.net.clone();
        let from = self.from.clone();
        let target = target.name.clone();
        Box::pin(async move {
            if net.is_down(&from) || net.is_down(&target) {
                return Err(format!("{target} unreachable"));
            }
            let node = net.nodes.lock().unwrap().get(&target).cloned();
            let node = node.ok_or_else(|| format!("{target} unknown"))?;
            if matches!(request, RaftRequest::InstallSnapshot(_)) {
                net.snapshot_chunks.fetch_add(1, Ordering::SeqCst);
            }
            let request = roundtrip(&request);
            let reply = tokio::time::timeout(Duration::from_secs(1), node.handle(request))
                .await
                .map_err(|_| format!("{target} timed out"))?;
            if net.is_down(&from) || net.is_down(&target) {
                return Err(format!("{target} unreachable"));
            }
            Ok(roundtrip(&reply))
        })
    }
}

struct Member {
    raft: Arc<RaftNode>,
    locks: Arc<LockManager>,
}

struct Cluster {
    net: Arc<Net>,
    dirs: HashMap<String, TempDir>,
    members: HashMap<String, Member>,
    options: RaftOptions,
}

impl Cluster {
    fn new(options: RaftOptions) -> Self {
        Cluster {
            net: Arc::new(Net::default()),
            dirs: HashMap::new(),
            members: HashMap::new(),
            options,
        }
    }

    fn address(name: &str) -> String {
        format!("{name}.test:7000")
    }

    /// Starts (or restarts, from its data dir) node `name`.
    async fn start(&mut self, name: &str) {
        let dir = self
            .dirs
            .entry(name.to_owned())
            .or_insert_with(|| tempfile::tempdir().unwrap())
            .path()
            .to_owned();
        let transport = Arc::new(MemTransport {
            from: name.to_owned(),
            net: self.net.clone(),
        });
        let (raft, locks) =
            start_with_locks(name, &Self::address(name), &dir, transport, self.options.clone())
                .await
                .unwrap();
        self.net
            .nodes
            .lock()
            .unwrap()
            .insert(name.to_owned(), raft.clone());
        self.members.insert(name.to_owned(), Member { raft, locks });
    }

    /// Cuts `name` off and stops its Raft, keeping its data dir.
    async fn kill(&mut self, name: &str) {
        self.net.down.lock().unwrap().insert(name.to_owned());
        self.net.nodes.lock().unwrap().remove(name);
        let member = self.members.remove(name).unwrap();
        member.raft.shutdown().await;
    }

    fn isolate(&self, name: &str, cut: bool) {
        let mut down = self.net.down.lock().unwrap();
        if cut {
            down.insert(name.to_owned());
        } else {
            down.remove(name);
        }
    }

    fn raft(&self, name: &str) -> &Arc<RaftNode> {
        &self.members[name].raft
    }

    fn locks(&self, name: &str) -> &Arc<LockManager> {
        &self.members[name].locks
    }

    /// a alone, then b added by a, then c joining through b.
    async fn form(&mut self) {
        for name in ["a", "b", "c"] {
            self.start(name).await;
        }
        assert!(!self.raft("a").is_initialized());
        self.raft("a").initialize_alone().await.unwrap();
        assert!(self.raft("a").is_initialized());
        self.raft("a").add_voter("b", &Self::address("b")).await.unwrap();
        let seed = self.raft("b").member().clone();
        self.raft("c").join_via(&seed).await.unwrap();
        let expected = vec![member("a"), member("b"), member("c")];
        eventually("everyone sees three voters", Duration::from_secs(3), || {
            ["a", "b", "c"]
                .iter()
                .all(|name| self.raft(name).voters() == expected)
        })
        .await;
    }

    /// Waits until every running node holds the same lock table.
    async fn converged(&self) {
        eventually("lock tables converge", Duration::from_secs(5), || {
            let mut tables = self.members.values().map(|member| member.locks.table());
            let first = tables.next().unwrap();
            tables.all(|table| table == first)
        })
        .await;
    }

    /// The leader as the running nodes agree on it.
    async fn leader(&self) -> String {
        let mut found = None;
        eventually("a leader everyone agrees on", Duration::from_secs(5), || {
            let leaders: HashSet<Option<String>> = self
                .members
                .values()
                .map(|member| member.raft.leader().map(|leader| leader.name))
                .collect();
            found = match leaders.into_iter().collect::<Vec<_>>().as_slice() {
                [Some(name)] if self.members.contains_key(name) => Some(name.clone()),
                _ => None,
            };
            found.is_some()
        })
        .await;
        found.unwrap()
    }
}

fn member(name: &str) -> RaftMember {
    RaftMember::new(name, &Cluster::address(name))
}

fn owner(origin: &str, connection: u64) -> LockOwner {
    LockOwner {
        origin: origin.into(),
        connection,
    }
}

async fn eventually(what: &str, within: Duration, mut check: impl FnMut() -> bool) {
    let give_up = Instant::now() + within;
    while !check() {
        assert!(Instant::now() < give_up, "timed out waiting until {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

fn small_snapshots() -> RaftOptions {
    RaftOptions {
        snapshot_logs: 20,
        keep_logs_after_snapshot: 0,
        ..RaftOptions::default()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_nodes_agree_on_locks_submitted_anywhere() {
    let mut cluster = Cluster::new(RaftOptions::default());
    cluster.form().await;
    // Membership changes are idempotent.
    cluster
        .raft("c")
        .add_voter("b", &Cluster::address("b"))
        .await
        .unwrap();
    cluster.raft("a").initialize_alone().await.unwrap();
    assert_eq!(cluster.raft("b").voters().len(), 3);

    let mut held = Vec::new();
    for (i, name) in ["a", "b", "c"].iter().enumerate() {
        let locks = cluster.locks(name);
        let started = Instant::now();
        let entry = locks.lock(&format!("key-{name}"), &owner(name, 1)).await.unwrap();
        println!("lock submitted on {name} in {:?}", started.elapsed());
        held.push(entry);
        // Every node sees the key taken, whoever took it.
        let other = cluster.locks(["a", "b", "c"][(i + 1) % 3]);
        assert!(other.try_lock("key-a", &owner("x", 9)).await.unwrap().is_none());
    }
    cluster.converged().await;
    assert_eq!(cluster.locks("b").entries().len(), 3);
    for name in ["a", "b", "c"] {
        assert!(!cluster.locks(name).permits_write("key-b", None));
        assert!(cluster.locks(name).is_held_by("key-c", Some(&held[2].id)));
    }
    // UNLOCK from another connection is refused, from the owner it works.
    assert!(cluster
        .locks("a")
        .unlock(&held[1].id, &owner("a", 1))
        .await
        .is_err());
    cluster
        .locks("c")
        .unlock(&held[1].id, &owner("b", 1))
        .await
        .unwrap();
    cluster.locks("b").release_origin("a").await.unwrap();
    cluster.converged().await;
    assert_eq!(cluster.locks("a").entries(), vec![held[2].clone()]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_queued_lock_is_granted_on_its_node_when_released_elsewhere() {
    let mut cluster = Cluster::new(RaftOptions::default());
    cluster.form().await;
    let first = cluster.locks("b").lock("shared", &owner("b", 1)).await.unwrap();
    // See `queued_locks_survive_concurrent_commands` for why c must have
    // applied b's lock before it queues its own.
    cluster.converged().await;
    let waiting = {
        let locks = cluster.locks("c").clone();
        tokio::spawn(async move { locks.lock("shared", &owner("c", 2)).await })
    };
    eventually("the second lock is queued", Duration::from_secs(3), || {
        cluster.locks("a").entries().len() == 2
    })
    .await;
    if waiting.is_finished() {
        panic!("the second lock did not wait: {:?}", waiting.await);
    }
    // Released by id from a third node.
    let started = Instant::now();
    cluster.locks("a").release(&first.id).await.unwrap();
    let second = tokio::time::timeout(Duration::from_secs(3), waiting)
        .await
        .expect("the waiter fires")
        .unwrap()
        .unwrap();
    println!("queued lock granted {:?} after the release", started.elapsed());
    cluster.converged().await;
    for name in ["a", "b", "c"] {
        assert!(cluster.locks(name).is_held_by("shared", Some(&second.id)));
    }
    // A closed connection withdraws its locks everywhere.
    cluster
        .locks("a")
        .release_connection(&owner("c", 2))
        .await
        .unwrap();
    cluster.converged().await;
    assert!(cluster.locks("b").permits_write("shared", None));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killing_the_leader_elects_another_quickly() {
    let mut cluster = Cluster::new(RaftOptions::default());
    cluster.form().await;
    cluster.locks("a").lock("before", &owner("a", 1)).await.unwrap();
    let old = cluster.leader().await;
    let killed_at = Instant::now();
    cluster.kill(&old).await;
    let new = cluster.leader().await;
    let elected_in = killed_at.elapsed();
    println!("leader {old} killed; {new} elected in {elected_in:?}");
    assert_ne!(old, new);
    assert!(
        elected_in < Duration::from_secs(2),
        "re-election took {elected_in:?}"
    );
    for name in cluster.members.keys().cloned().collect::<Vec<_>>() {
        let started = Instant::now();
        cluster
            .locks(&name)
            .lock(&format!("after-{name}"), &owner(&name, 2))
            .await
            .unwrap();
        println!(
            "lock submitted on {name} after failover in {:?}",
            started.elapsed()
        );
    }
    cluster.converged().await;
    assert_eq!(cluster.locks(&new).entries().len(), 3);

    // The old leader comes back and catches up.
    cluster.isolate(&old, false);
    cluster.start(&old).await;
    cluster.converged().await;
    assert_eq!(cluster.locks(&old).entries().len(), 3);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restarted_node_recovers_from_snapshot_and_log() {
    let mut cluster = Cluster::new(RaftOptions {
        snapshot_logs: 20,
        keep_logs_after_snapshot: 5,
        ..RaftOptions::default()
    });
    cluster.form().await;
    let mut kept = Vec::new();
    for i in 0..30u64 {
        let name = ["a", "b", "c"][i as usize % 3];
        let entry = cluster
            .locks(name)
            .lock(&format!("k{i}"), &owner(name, i))
            .await
            .unwrap();
        if i % 2 == 0 {
            cluster.locks(name).release(&entry.id).await.unwrap();
        } else {
            kept.push(entry);
        }
    }
    cluster.converged().await;
    let before = cluster.locks("c").table();
    assert_eq!(cluster.locks("c").entries().len(), kept.len());
    let applied = cluster.raft("c").metrics().last_applied;
    assert!(
        cluster.raft("c").metrics().snapshot.is_some(),
        "c built a snapshot"
    );
    cluster.kill("c").await;

    // Restarted while still cut off: its state comes from its own disk.
    cluster.start("c").await;
    assert!(cluster.raft("c").is_initialized());
    assert_eq!(cluster.raft("c").voters().len(), 3);
    assert_eq!(cluster.locks("c").table(), before);
    assert_eq!(cluster.raft("c").metrics().last_applied, applied);

    // More happens meanwhile; once reconnected it catches up.
    let late = cluster.locks("a").lock("late", &owner("a", 99)).await.unwrap();
    cluster.isolate("c", false);
    cluster.converged().await;
    assert!(cluster.locks("c").is_held_by("late", Some(&late.id)));
    // And it serves submissions again.
    cluster.locks("c").release(&late.id).await.unwrap();
    cluster.converged().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_far_behind_node_is_caught_up_with_a_snapshot() {
    let mut cluster = Cluster::new(small_snapshots());
    cluster.form().await;
    cluster.kill("c").await;
    let mut last = None;
    for i in 0..60u64 {
        let name = ["a", "b"][i as usize % 2];
        let entry = cluster
            .locks(name)
            .lock(&format!("k{}", i % 7), &owner(name, i))
            .await;
        if let Ok(entry) = entry {
            cluster.locks(name).release(&entry.id).await.unwrap();
        }
        last = Some(
            cluster
                .locks(name)
                .lock("last", &owner(name, 1000 + i))
                .await
                .unwrap(),
        );
        cluster
            .locks(name)
            .release(&last.as_ref().unwrap().id)
            .await
            .unwrap();
    }
    let keep = cluster.locks("a").lock("keep", &owner("a", 7)).await.unwrap();
    let leader = cluster.leader().await;
    let purged = cluster.raft(&leader).metrics().purged;
    println!("leader {leader} purged its log up to {purged:?}");
    assert!(purged.is_some(), "the leader compacted its log");

    cluster.isolate("c", false);
    cluster.start("c").await;
    cluster.converged().await;
    assert!(cluster.locks("c").is_held_by("keep", Some(&keep.id)));
    assert!(
        cluster.net.snapshot_chunks.load(Ordering::SeqCst) > 0,
        "c got a snapshot"
    );
    let c = cluster.raft("c").metrics();
    assert!(c.snapshot.is_some());
    assert!(c.last_applied >= purged);
    drop(last);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_a_majority_submissions_fail_in_bounded_time() {
    let mut cluster = Cluster::new(RaftOptions {
        submit_timeout: Duration::from_secs(1),
        ..RaftOptions::default()
    });
    cluster.form().await;
    cluster.kill("b").await;
    cluster.kill("c").await;
    let started = Instant::now();
    let result = cluster.locks("a").lock("nobody", &owner("a", 1)).await;
    let took = started.elapsed();
    println!(
        "submission without a majority failed after {took:?}: {:?}",
        result.as_ref().err()
    );
    assert!(result.is_err());
    assert!(took < Duration::from_secs(3), "took {took:?}");
    // The majority comes back: submissions work again.
    cluster.isolate("b", false);
    cluster.start("b").await;
    cluster.locks("a").lock("somebody", &owner("a", 2)).await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_removed_node_leaves_the_membership() {
    let mut cluster = Cluster::new(RaftOptions::default());
    cluster.form().await;
    cluster.kill("c").await;
    cluster.raft("b").remove_node("c").await.unwrap();
    // Idempotent.
    cluster.raft("a").remove_node("c").await.unwrap();
    let expected = vec![member("a"), member("b")];
    eventually("c is gone from the membership", Duration::from_secs(3), || {
        cluster.raft("a").voters() == expected && cluster.raft("b").voters() == expected
    })
    .await;
    assert_eq!(cluster.raft("a").members(), expected);
    for name in ["a", "b"] {
        cluster.locks(name).lock(name, &owner(name, 1)).await.unwrap();
    }
    cluster.converged().await;
}

/// Several connections of one node queue for a key while other nodes keep
/// submitting: every queued lock must eventually be granted.
///
/// `LockManager::lock` registers its grant waiter before its Acquire is
/// applied; commands of other nodes applied in between must not withdraw it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn queued_locks_survive_concurrent_commands() {
    let mut cluster = Cluster::new(RaftOptions::default());
    cluster.form().await;
    let first = cluster.locks("b").lock("shared", &owner("b", 1)).await.unwrap();
    let mut waiting = Vec::new();
    for connection in 0..5u64 {
        let locks = cluster.locks("c").clone();
        waiting.push(tokio::spawn(async move {
            let entry = locks.lock("shared", &owner("c", connection)).await?;
            locks.release(&entry.id).await?;
            Ok::<_, canhazdb::locks::LockFailure>(())
        }));
        let key = format!("noise{connection}");
        cluster
            .locks("a")
            .lock(&key, &owner("a", connection))
            .await
            .unwrap();
    }
    cluster.locks("a").release(&first.id).await.unwrap();
    for waiter in waiting {
        tokio::time::timeout(Duration::from_secs(5), waiter)
            .await
            .expect("granted in time")
            .unwrap()
            .expect("granted, not withdrawn");
    }
}

fn others(name: &str) -> Vec<RaftMember> {
    ["a", "b", "c"]
        .into_iter()
        .filter(|other| *other != name)
        .map(member)
        .collect()
}

/// Regression: two nodes of a starting cluster that each saw a majority
/// (but not each other yet) both started a group; when the leader of one
/// later added the other node, that node's committed log was another
/// history at the same indexes (openraft's `has_log_id` debug assertion
/// fired; a release build would have mixed two lock tables). Nodes that try
/// to start the group at the same moment must start exactly one.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nodes_forming_the_group_at_once_start_only_one() {
    for round in 0..5 {
        let mut cluster = Cluster::new(RaftOptions::default());
        for name in ["a", "b", "c"] {
            cluster.start(name).await;
        }
        // Each round another node starts a moment before the others.
        let attempts: Vec<_> = ["a", "b", "c"]
            .into_iter()
            .enumerate()
            .map(|(index, name)| {
                let raft = cluster.raft(name).clone();
                let delay = Duration::from_millis(((index + round) % 3) as u64);
                tokio::spawn(async move {
                    tokio::time::sleep(delay).await;
                    (name, raft.form_group(&others(name), 2).await.unwrap())
                })
            })
            .collect();
        let mut formers = Vec::new();
        let mut outcomes = Vec::new();
        for attempt in attempts {
            let (name, outcome) = attempt.await.unwrap();
            if outcome == FormOutcome::Formed {
                formers.push(name);
            }
            outcomes.push((name, outcome));
        }
        println!("round {round}: {outcomes:?}");
        assert_eq!(formers.len(), 1, "exactly one group started: {outcomes:?}");
        let former = formers[0];
        for (name, outcome) in &outcomes {
            assert!(
                matches!(
                    outcome,
                    FormOutcome::Formed | FormOutcome::NotNow(_) | FormOutcome::PeerInGroup(_)
                ),
                "{name}: {outcome:?}"
            );
            if *name != former {
                assert!(!cluster.raft(name).is_initialized(), "{name} started no group");
                cluster.raft(name).join_via(&member(former)).await.unwrap();
            }
        }
        let expected = vec![member("a"), member("b"), member("c")];
        eventually("everyone sees three voters", Duration::from_secs(5), || {
            ["a", "b", "c"]
                .iter()
                .all(|name| cluster.raft(name).voters() == expected)
        })
        .await;
        for name in ["a", "b", "c"] {
            cluster
                .locks(name)
                .lock(&format!("key-{name}"), &owner(name, 1))
                .await
                .unwrap();
        }
        cluster.converged().await;
        assert_eq!(cluster.locks("a").entries().len(), 3);
    }
}

/// A node in a group never starts another one, and a former that asks it
/// for a pledge is pointed to its group instead.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_former_finding_a_group_joins_it() {
    let mut cluster = Cluster::new(RaftOptions::default());
    for name in ["a", "b", "c"] {
        cluster.start(name).await;
    }
    cluster.raft("b").initialize_alone().await.unwrap();
    assert_eq!(
        cluster.raft("b").form_group(&others("b"), 2).await.unwrap(),
        FormOutcome::AlreadyInGroup
    );
    let outcome = cluster.raft("a").form_group(&others("a"), 2).await.unwrap();
    assert_eq!(outcome, FormOutcome::PeerInGroup(member("b")));
    assert!(!cluster.raft("a").is_initialized());
    cluster.raft("a").join_via(&member("b")).await.unwrap();
    assert_eq!(cluster.raft("a").voters(), vec![member("a"), member("b")]);
}

/// Without pledges of a majority no group starts, and a node that pledged
/// itself to a former does not start one of its own while the pledge lasts.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_group_starts_only_with_pledges_of_a_majority() {
    let mut cluster = Cluster::new(RaftOptions::default());
    for name in ["a", "b", "c"] {
        cluster.start(name).await;
    }
    cluster.isolate("c", true);
    // A cluster of five (two of them unknown here): a and b are no majority.
    let outcome = cluster.raft("a").form_group(&others("a"), 3).await.unwrap();
    assert!(matches!(outcome, FormOutcome::NotNow(_)), "{outcome:?}");
    assert!(!cluster.raft("a").is_initialized());
    // b pledged itself to a: it does not start a group of its own.
    let outcome = cluster.raft("b").form_group(&others("b"), 2).await.unwrap();
    assert!(
        matches!(&outcome, FormOutcome::NotNow(reason) if reason.contains("pledged to a")),
        "{outcome:?}"
    );
    assert!(!cluster.raft("b").is_initialized());
    // a, with b's pledge, may.
    cluster.isolate("c", false);
    let outcome = cluster.raft("a").form_group(&others("a"), 2).await.unwrap();
    assert_eq!(outcome, FormOutcome::Formed);
    assert!(cluster.raft("a").is_initialized());
    assert_eq!(cluster.raft("a").voters(), vec![member("a")]);
    // c pledged itself to a in that attempt; asked again once that ran
    // out, it finds a's group.
    let outcome = cluster.raft("c").form_group(&others("c"), 2).await.unwrap();
    assert_eq!(outcome, FormOutcome::NotNow("pledged to a".into()));
    assert!(!cluster.raft("c").is_initialized());
}

/// A node keeps its pledge across a restart.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pledge_outlives_a_restart() {
    let mut cluster = Cluster::new(RaftOptions::default());
    for name in ["a", "b", "c"] {
        cluster.start(name).await;
    }
    cluster.isolate("c", true);
    let outcome = cluster.raft("a").form_group(&others("a"), 3).await.unwrap();
    assert!(matches!(outcome, FormOutcome::NotNow(_)), "{outcome:?}");
    // b pledged itself to a; restarted, it still has.
    cluster.kill("b").await;
    cluster.isolate("b", false);
    cluster.start("b").await;
    cluster.isolate("c", false);
    cluster.isolate("a", true);
    let outcome = cluster.raft("c").form_group(&others("c"), 2).await.unwrap();
    assert!(matches!(outcome, FormOutcome::NotNow(_)), "{outcome:?}");
    let outcome = cluster.raft("b").form_group(&others("b"), 2).await.unwrap();
    assert_eq!(outcome, FormOutcome::NotNow("pledged to a".into()));
    for name in ["a", "b", "c"] {
        assert!(!cluster.raft(name).is_initialized(), "{name} started no group");
    }
}
