//! Replica selection and the primary-replica rule (spec section 4).
//!
//! * A POST stores its document on `min(R, n)` nodes chosen uniformly at
//!   random: [`choose_replicas`].
//! * Every fan-out read or write has exactly one node answer for each
//!   document: the first node, in sorted order of the document's replica list,
//!   that the coordinator considers online: [`primary_replica`] /
//!   [`is_primary`]. Because every node applies the coordinator's view of who
//!   is online, a document is never reported twice nor lost.
//! * [`read_may_be_incomplete`] tells a coordinator whether the nodes that did
//!   not answer a fan-out could have been holding every copy of a document.
//!
//! Randomness is injected through [`RandomSource`] so that this module stays
//! free of IO and deterministic under test ([`SeededRandom`]); the server uses
//! `OsRandom` (behind the default `os-random` feature).

/// A source of uniformly distributed 64-bit numbers.
///
/// Injected rather than global so the core crate does no IO and tests can be
/// reproduced exactly.
pub trait RandomSource {
    /// The next uniformly distributed `u64`.
    fn next_u64(&mut self) -> u64;
}

impl<R: RandomSource + ?Sized> RandomSource for &mut R {
    fn next_u64(&mut self) -> u64 {
        (**self).next_u64()
    }
}

/// Randomness from the operating system (or the browser's crypto on wasm),
/// through `getrandom`.
#[cfg(feature = "os-random")]
#[derive(Clone, Copy, Debug, Default)]
pub struct OsRandom;

#[cfg(feature = "os-random")]
impl RandomSource for OsRandom {
    /// # Panics
    ///
    /// If the operating system cannot provide randomness at all; there is no
    /// sensible way for a database node to carry on without it.
    fn next_u64(&mut self) -> u64 {
        let mut bytes = [0u8; 8];
        getrandom::fill(&mut bytes).expect("the operating system failed to provide randomness");
        u64::from_le_bytes(bytes)
    }
}

/// A small deterministic PRNG (SplitMix64) for tests and simulations.
///
/// Not cryptographically secure; its only job is to be fast, well spread and
/// exactly reproducible from a seed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SeededRandom(u64);

impl SeededRandom {
    /// A generator whose whole output is determined by `seed`.
    pub fn new(seed: u64) -> Self {
        SeededRandom(seed)
    }
}

impl RandomSource for SeededRandom {
    fn next_u64(&mut self) -> u64 {
        // SplitMix64 (Steele, Lea & Flood), as used to seed xoshiro.
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
}

/// A uniformly distributed number in `0..bound`, without modulo bias.
///
/// Plain `next_u64() % bound` favours small results whenever `bound` does not
/// divide 2^64; this rejects the few draws below `2^64 mod bound`, so the
/// accepted range is an exact multiple of `bound`.
///
/// # Panics
///
/// If `bound` is zero (there is no number below zero).
pub fn uniform_below(random: &mut (impl RandomSource + ?Sized), bound: u64) -> u64 {
    assert!(bound > 0, "uniform_below needs a positive bound");
    // 2^64 mod bound, computed without 128-bit arithmetic.
    let rejected_below = bound.wrapping_neg() % bound;
    loop {
        let draw = random.next_u64();
        if draw >= rejected_below {
            return draw % bound;
        }
    }
}

/// Chooses the nodes that will hold a new document.
///
/// Returns `min(replicas, distinct nodes)` distinct node names, chosen
/// uniformly at random and returned in sorted order (the order the primary
/// rule uses). A name listed twice in `nodes` counts once. The candidates are
/// sorted before drawing, so for a given random sequence the choice does not
/// depend on the order of `nodes`.
///
/// Uses a partial Fisher–Yates shuffle: only the first `replicas` positions
/// are shuffled, each with an unbiased bounded draw.
pub fn choose_replicas(
    nodes: &[String],
    replicas: usize,
    random: &mut (impl RandomSource + ?Sized),
) -> Vec<String> {
    let mut candidates: Vec<&str> = nodes.iter().map(String::as_str).collect();
    candidates.sort_unstable();
    candidates.dedup();

    let chosen_count = replicas.min(candidates.len());
    for position in 0..chosen_count {
        let remaining = (candidates.len() - position) as u64;
        let pick = position + uniform_below(random, remaining) as usize;
        candidates.swap(position, pick);
    }

    let mut chosen: Vec<String> = candidates[..chosen_count]
        .iter()
        .map(|name| (*name).to_owned())
        .collect();
    chosen.sort_unstable();
    chosen
}

/// The node that answers for a document: the first of its replicas, in sorted
/// order, that is online. `None` when every replica is offline.
///
/// The replica list is normally stored sorted, but the smallest online name
/// is taken whatever the order, so an unsorted list cannot make two nodes
/// disagree.
pub fn primary_replica(replicas: &[String], is_online: impl Fn(&str) -> bool) -> Option<&str> {
    replicas
        .iter()
        .map(String::as_str)
        .filter(|name| is_online(name))
        .min()
}

/// Whether `node` is the one that answers for a document with these replicas
/// (see [`primary_replica`]).
pub fn is_primary(node: &str, replicas: &[String], is_online: impl Fn(&str) -> bool) -> bool {
    primary_replica(replicas, is_online) == Some(node)
}

/// Whether a fan-out read may be missing documents because `failed_nodes`
/// nodes did not answer (offline, timed out or errored).
///
/// A document is lost from the reply only if *all* of its replicas are among
/// the failed nodes, which is possible exactly when at least
/// `replicas_per_document` (that is `min(R, n)`) nodes failed. When no node
/// failed nothing can be missing, even in the degenerate case of
/// `replicas_per_document == 0` (a cluster without nodes holds no documents).
pub fn read_may_be_incomplete(replicas_per_document: usize, failed_nodes: usize) -> bool {
    failed_nodes > 0 && failed_nodes >= replicas_per_document
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use std::collections::{BTreeMap, BTreeSet};

    fn names(list: &[&str]) -> Vec<String> {
        list.iter().map(|name| (*name).to_owned()).collect()
    }

    /// A source that replays fixed numbers, to test the rejection step.
    struct Scripted(Vec<u64>);

    impl RandomSource for Scripted {
        fn next_u64(&mut self) -> u64 {
            self.0.remove(0)
        }
    }

    #[test]
    fn seeded_random_is_reproducible_and_seed_dependent() {
        let mut a = SeededRandom::new(42);
        let mut b = SeededRandom::new(42);
        let mut c = SeededRandom::new(43);
        let from_a: Vec<u64> = (0..8).map(|_| a.next_u64()).collect();
        let from_b: Vec<u64> = (0..8).map(|_| b.next_u64()).collect();
        let from_c: Vec<u64> = (0..8).map(|_| c.next_u64()).collect();
        assert_eq!(from_a, from_b);
        assert_ne!(from_a, from_c);
    }

    #[test]
    fn seeded_random_matches_reference_splitmix64() {
        // First outputs of SplitMix64 seeded with 0 (reference implementation).
        let mut random = SeededRandom::new(0);
        assert_eq!(random.next_u64(), 0xE220_A839_7B1D_CDAF);
        assert_eq!(random.next_u64(), 0x6E78_9E6A_A1B9_65F4);
        assert_eq!(random.next_u64(), 0x06C4_5D18_8009_454F);
    }

    #[cfg(feature = "os-random")]
    #[test]
    fn os_random_produces_varied_numbers() {
        let mut random = OsRandom;
        let draws: BTreeSet<u64> = (0..16).map(|_| random.next_u64()).collect();
        assert!(draws.len() > 1, "16 OS random numbers were all equal");
        let chosen = choose_replicas(&names(&["a", "b", "c"]), 2, &mut OsRandom);
        assert_eq!(chosen.len(), 2);
    }

    #[test]
    fn random_source_works_through_references_and_trait_objects() {
        let mut seeded = SeededRandom::new(7);
        let dynamic: &mut dyn RandomSource = &mut seeded;
        let chosen = choose_replicas(&names(&["a", "b", "c"]), 2, dynamic);
        assert_eq!(chosen.len(), 2);
        let mut by_ref = &mut seeded;
        assert!(uniform_below(&mut by_ref, 10) < 10);
    }

    #[test]
    fn uniform_below_rejects_the_biased_low_draws() {
        // bound 3: 2^64 mod 3 == 1, so a draw of 0 must be rejected.
        let mut random = Scripted(vec![0, 1, 5]);
        assert_eq!(uniform_below(&mut random, 3), 1);
        let mut random = Scripted(vec![5]);
        assert_eq!(uniform_below(&mut random, 3), 2);
    }

    #[test]
    fn uniform_below_one_is_always_zero() {
        let mut random = SeededRandom::new(1);
        for _ in 0..100 {
            assert_eq!(uniform_below(&mut random, 1), 0);
        }
    }

    #[test]
    fn uniform_below_handles_the_largest_bound() {
        let mut random = Scripted(vec![u64::MAX]);
        assert_eq!(uniform_below(&mut random, u64::MAX), 0);
    }

    #[test]
    #[should_panic(expected = "positive bound")]
    fn uniform_below_zero_panics() {
        uniform_below(&mut SeededRandom::new(1), 0);
    }

    #[test]
    fn choose_from_no_nodes_is_empty() {
        let mut random = SeededRandom::new(1);
        assert!(choose_replicas(&[], 3, &mut random).is_empty());
    }

    #[test]
    fn choose_zero_replicas_is_empty() {
        let mut random = SeededRandom::new(1);
        assert!(choose_replicas(&names(&["a", "b"]), 0, &mut random).is_empty());
    }

    #[test]
    fn choose_more_replicas_than_nodes_takes_every_node_sorted() {
        let mut random = SeededRandom::new(1);
        let chosen = choose_replicas(&names(&["c", "a", "b"]), 5, &mut random);
        assert_eq!(chosen, names(&["a", "b", "c"]));
    }

    #[test]
    fn choose_counts_duplicate_nodes_once() {
        let mut random = SeededRandom::new(1);
        let nodes = names(&["b", "a", "b", "a", "b"]);
        assert_eq!(choose_replicas(&nodes, 3, &mut random), names(&["a", "b"]));
        for seed in 0..50 {
            let chosen = choose_replicas(&nodes, 1, &mut SeededRandom::new(seed));
            assert_eq!(chosen.len(), 1);
        }
    }

    #[test]
    fn choose_returns_sorted_distinct_members() {
        let nodes = names(&["n5", "n1", "n4", "n2", "n3"]);
        for seed in 0..100 {
            let chosen = choose_replicas(&nodes, 3, &mut SeededRandom::new(seed));
            assert_eq!(chosen.len(), 3);
            assert!(chosen.windows(2).all(|pair| pair[0] < pair[1]));
            assert!(chosen.iter().all(|name| nodes.contains(name)));
        }
    }

    #[test]
    fn choose_does_not_depend_on_input_order() {
        let forwards = names(&["a", "b", "c", "d", "e"]);
        let backwards = names(&["e", "d", "c", "b", "a"]);
        for seed in 0..50 {
            assert_eq!(
                choose_replicas(&forwards, 2, &mut SeededRandom::new(seed)),
                choose_replicas(&backwards, 2, &mut SeededRandom::new(seed)),
            );
        }
    }

    #[test]
    fn choose_is_roughly_uniform() {
        const DRAWS: u32 = 30_000;
        let nodes = names(&["a", "b", "c", "d", "e"]);
        let mut random = SeededRandom::new(0x5EED);
        let mut per_node: BTreeMap<String, u32> = BTreeMap::new();
        let mut per_set: BTreeMap<Vec<String>, u32> = BTreeMap::new();
        for _ in 0..DRAWS {
            let chosen = choose_replicas(&nodes, 3, &mut random);
            for name in &chosen {
                *per_node.entry(name.clone()).or_default() += 1;
            }
            *per_set.entry(chosen).or_default() += 1;
        }

        // Each node is in 3 of every 5 draws.
        let expected_per_node = f64::from(DRAWS) * 3.0 / 5.0;
        assert_eq!(per_node.len(), 5);
        for (name, count) in &per_node {
            let deviation = (f64::from(*count) - expected_per_node).abs() / expected_per_node;
            assert!(deviation < 0.05, "{name} chosen {count} times");
        }

        // Each of the C(5,3) = 10 sets is equally likely.
        let expected_per_set = f64::from(DRAWS) / 10.0;
        assert_eq!(per_set.len(), 10);
        for (set, count) in &per_set {
            let deviation = (f64::from(*count) - expected_per_set).abs() / expected_per_set;
            assert!(deviation < 0.10, "{set:?} chosen {count} times");
        }
    }

    #[test]
    fn primary_is_first_online_in_sorted_order() {
        let replicas = names(&["a", "b", "c"]);
        assert_eq!(primary_replica(&replicas, |_| true), Some("a"));
        assert_eq!(primary_replica(&replicas, |name| name != "a"), Some("b"));
        assert_eq!(primary_replica(&replicas, |name| name == "c"), Some("c"));
        assert_eq!(primary_replica(&replicas, |_| false), None);
        assert_eq!(primary_replica(&[], |_| true), None);
    }

    #[test]
    fn primary_ignores_the_stored_order() {
        let replicas = names(&["c", "a", "b"]);
        assert_eq!(primary_replica(&replicas, |_| true), Some("a"));
        assert_eq!(primary_replica(&replicas, |name| name != "a"), Some("b"));
    }

    #[test]
    fn exactly_one_node_is_primary() {
        let replicas = names(&["a", "b", "c"]);
        let online = |name: &str| name != "a";
        assert!(!is_primary("a", &replicas, online));
        assert!(is_primary("b", &replicas, online));
        assert!(!is_primary("c", &replicas, online));
        assert!(!is_primary("z", &replicas, online));
        assert!(!is_primary("a", &replicas, |_| false));
    }

    #[test]
    fn incomplete_read_needs_as_many_failures_as_replicas() {
        assert!(!read_may_be_incomplete(3, 0));
        assert!(!read_may_be_incomplete(3, 2));
        assert!(read_may_be_incomplete(3, 3));
        assert!(read_may_be_incomplete(3, 4));
        assert!(!read_may_be_incomplete(1, 0));
        assert!(read_may_be_incomplete(1, 1));
    }

    #[test]
    fn nothing_is_missing_when_no_node_failed() {
        assert!(!read_may_be_incomplete(0, 0));
        assert!(read_may_be_incomplete(0, 1));
    }

    proptest! {
        #[test]
        fn choose_returns_min_of_replicas_and_distinct_nodes(
            nodes in proptest::collection::vec("[a-e]{1,2}", 0..12),
            replicas in 0usize..8,
            seed: u64,
        ) {
            let distinct: BTreeSet<&String> = nodes.iter().collect();
            let chosen = choose_replicas(&nodes, replicas, &mut SeededRandom::new(seed));
            prop_assert_eq!(chosen.len(), replicas.min(distinct.len()));
            prop_assert!(chosen.windows(2).all(|pair| pair[0] < pair[1]));
            prop_assert!(chosen.iter().all(|name| distinct.contains(name)));
        }

        #[test]
        fn uniform_below_stays_below(bound in 1u64.., seed: u64) {
            prop_assert!(uniform_below(&mut SeededRandom::new(seed), bound) < bound);
        }

        #[test]
        fn at_most_one_primary_and_it_is_online(
            replicas in proptest::collection::btree_set("[a-f]", 0..6),
            online in proptest::collection::btree_set("[a-f]", 0..6),
        ) {
            let replicas: Vec<String> = replicas.into_iter().collect();
            let is_online = |name: &str| online.contains(name);
            let primaries: Vec<&String> = replicas
                .iter()
                .filter(|name| is_primary(name, &replicas, is_online))
                .collect();
            let any_online = replicas.iter().any(|name| is_online(name));
            prop_assert_eq!(primaries.len(), usize::from(any_online));
            if let Some(primary) = primaries.first() {
                prop_assert!(is_online(primary));
            }
        }
    }
}
