//! Change notifications (spec section 3, "Notify").
//!
//! After every successful mutation the cluster emits one path per mutated
//! document, `METHOD:/collection/documentId` ([`notify_path`]). Connections
//! register regexes with NOTIFY_ON; every connection with at least one
//! matching regex gets the path once ([`NotifyRegistry::subscribers_matching`]).
//!
//! A write reaches several nodes and each reports the ids it changed;
//! [`merge_changed_ids`] turns those reports into one list so that a document
//! is announced once, never once per replica.

use std::collections::{BTreeMap, BTreeSet, HashSet};
use std::fmt;

use regex::{Regex, RegexBuilder};
use serde::{Deserialize, Serialize};

/// The mutating methods that produce notifications.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "UPPERCASE")]
pub enum Method {
    Post,
    Put,
    Patch,
    Delete,
}

impl Method {
    /// Every method, in protocol order.
    pub const ALL: [Method; 4] = [Method::Post, Method::Put, Method::Patch, Method::Delete];

    /// The upper-case name used in notify paths: `"POST"`, `"PUT"`, ...
    pub fn as_str(self) -> &'static str {
        match self {
            Method::Post => "POST",
            Method::Put => "PUT",
            Method::Patch => "PATCH",
            Method::Delete => "DELETE",
        }
    }

    /// The method named by `name` (exactly as [`Method::as_str`] spells it).
    pub fn from_name(name: &str) -> Option<Method> {
        Method::ALL.into_iter().find(|method| method.as_str() == name)
    }
}

impl fmt::Display for Method {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The path announced for one mutated document, e.g. `POST:/tests/1f0…`.
pub fn notify_path(method: Method, collection_id: &str, document_id: &str) -> String {
    format!("{method}:/{collection_id}/{document_id}")
}

/// Splits a notify path back into method, collection id and document id.
///
/// Collection ids never contain `/` (spec: `A-Z a-z 0-9 - .`), but document
/// ids are arbitrary strings, so the path is split at the first `/` after the
/// collection and the document id is everything after it (it may contain `/`
/// and may be empty). Returns `None` for an unknown method, a missing
/// `:/` or `/` separator, or an empty collection id.
pub fn parse_notify_path(path: &str) -> Option<(Method, &str, &str)> {
    let (method, rest) = path.split_once(":/")?;
    let method = Method::from_name(method)?;
    let (collection_id, document_id) = rest.split_once('/')?;
    if collection_id.is_empty() {
        return None;
    }
    Some((method, collection_id, document_id))
}

/// Longest accepted pattern, in bytes. Paths are short; this only stops a
/// client from making the server parse megabytes of regex.
pub const MAX_PATTERN_BYTES: usize = 64 * 1024;

/// Most memory one compiled pattern may take (regex's compiled program size
/// limit, and its lazy DFA cache). Ordinary patterns use a few KiB; a hostile
/// one such as `(\w{100}){100}` is refused with a clear error instead.
pub const MAX_COMPILED_PATTERN_BYTES: usize = 1024 * 1024;

/// Why a NOTIFY_ON registration was refused (answered with BAD_REQUEST).
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum NotifyError {
    /// Not a valid regex, or too large; holds the reason.
    #[error("invalid notify path regex: {0}")]
    InvalidPattern(String),
}

/// Compiles a notify regex with the size limits above.
pub fn compile_pattern(pattern: &str) -> Result<Regex, NotifyError> {
    if pattern.len() > MAX_PATTERN_BYTES {
        return Err(NotifyError::InvalidPattern(format!(
            "pattern is {} bytes long, the limit is {MAX_PATTERN_BYTES}",
            pattern.len()
        )));
    }
    RegexBuilder::new(pattern)
        .size_limit(MAX_COMPILED_PATTERN_BYTES)
        .dfa_size_limit(MAX_COMPILED_PATTERN_BYTES)
        .build()
        .map_err(|error| NotifyError::InvalidPattern(error.to_string()))
}

/// One distinct pattern, compiled once, and everyone registered for it.
#[derive(Clone, Debug)]
struct SharedPattern<S> {
    regex: Regex,
    subscribers: BTreeSet<S>,
}

/// Which subscribers (typically connection ids) listen for which regexes.
///
/// Each distinct pattern text is compiled once and shared by all of its
/// subscribers, and dropped when its last subscriber goes. Everything is kept
/// in ordered maps so listings and match results come out sorted.
#[derive(Clone, Debug)]
pub struct NotifyRegistry<S> {
    /// Pattern text -> compiled regex and its subscribers.
    by_pattern: BTreeMap<String, SharedPattern<S>>,
    /// Subscriber -> its pattern texts, for listing and for closing a
    /// connection without scanning every pattern.
    by_subscriber: BTreeMap<S, BTreeSet<String>>,
}

impl<S: Clone + Ord> Default for NotifyRegistry<S> {
    fn default() -> Self {
        Self::new()
    }
}

impl<S: Clone + Ord> NotifyRegistry<S> {
    /// An empty registry.
    pub fn new() -> Self {
        NotifyRegistry {
            by_pattern: BTreeMap::new(),
            by_subscriber: BTreeMap::new(),
        }
    }

    /// NOTIFY_ON: `subscriber` wants paths matching `pattern`.
    ///
    /// Registering the same pattern twice is a no-op. The pattern is compiled
    /// only if no one has registered it yet.
    pub fn register(&mut self, subscriber: S, pattern: &str) -> Result<(), NotifyError> {
        match self.by_pattern.get_mut(pattern) {
            Some(shared) => {
                shared.subscribers.insert(subscriber.clone());
            }
            None => {
                let regex = compile_pattern(pattern)?;
                self.by_pattern.insert(
                    pattern.to_owned(),
                    SharedPattern {
                        regex,
                        subscribers: BTreeSet::from([subscriber.clone()]),
                    },
                );
            }
        }
        self.by_subscriber
            .entry(subscriber)
            .or_default()
            .insert(pattern.to_owned());
        Ok(())
    }

    /// NOTIFY_OFF: removes one registration. Returns whether it existed.
    pub fn unregister(&mut self, subscriber: &S, pattern: &str) -> bool {
        let Some(patterns) = self.by_subscriber.get_mut(subscriber) else {
            return false;
        };
        if !patterns.remove(pattern) {
            return false;
        }
        if patterns.is_empty() {
            self.by_subscriber.remove(subscriber);
        }
        self.drop_subscriber_from_pattern(subscriber, pattern);
        true
    }

    /// Removes every registration of `subscriber` (its connection closed).
    /// Returns how many there were.
    pub fn remove_subscriber(&mut self, subscriber: &S) -> usize {
        let Some(patterns) = self.by_subscriber.remove(subscriber) else {
            return 0;
        };
        for pattern in &patterns {
            self.drop_subscriber_from_pattern(subscriber, pattern);
        }
        patterns.len()
    }

    /// Everyone to notify about `path`: each subscriber with at least one
    /// pattern found anywhere in the path (unanchored search), once, sorted.
    pub fn subscribers_matching(&self, path: &str) -> Vec<S> {
        let mut matching = BTreeSet::new();
        for shared in self.by_pattern.values() {
            if shared.regex.is_match(path) {
                matching.extend(shared.subscribers.iter().cloned());
            }
        }
        matching.into_iter().collect()
    }

    /// Every registration, sorted by subscriber then pattern (for
    /// `system.notifys`).
    pub fn patterns(&self) -> impl Iterator<Item = (&S, &str)> {
        self.by_subscriber.iter().flat_map(|(subscriber, patterns)| {
            patterns.iter().map(move |pattern| (subscriber, pattern.as_str()))
        })
    }

    /// The patterns of one subscriber, sorted.
    pub fn patterns_of(&self, subscriber: &S) -> impl Iterator<Item = &str> {
        self.by_subscriber
            .get(subscriber)
            .into_iter()
            .flatten()
            .map(String::as_str)
    }

    /// How many distinct patterns are compiled (each shared by its
    /// subscribers).
    pub fn compiled_pattern_count(&self) -> usize {
        self.by_pattern.len()
    }

    /// Whether nobody is registered.
    pub fn is_empty(&self) -> bool {
        self.by_subscriber.is_empty()
    }

    fn drop_subscriber_from_pattern(&mut self, subscriber: &S, pattern: &str) {
        if let Some(shared) = self.by_pattern.get_mut(pattern) {
            shared.subscribers.remove(subscriber);
            if shared.subscribers.is_empty() {
                self.by_pattern.remove(pattern);
            }
        }
    }
}

/// Merges the changed-id lists reported by the nodes of one write into one
/// list holding each id once, in the order ids were first seen.
pub fn merge_changed_ids<I, L>(lists: I) -> Vec<String>
where
    I: IntoIterator<Item = L>,
    L: IntoIterator<Item = String>,
{
    let mut seen = HashSet::new();
    let mut merged = Vec::new();
    for id in lists.into_iter().flatten() {
        if seen.insert(id.clone()) {
            merged.push(id);
        }
    }
    merged
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn strings(list: &[&str]) -> Vec<String> {
        list.iter().map(|s| (*s).to_owned()).collect()
    }

    #[test]
    fn method_names() {
        assert_eq!(Method::Post.as_str(), "POST");
        assert_eq!(Method::Put.as_str(), "PUT");
        assert_eq!(Method::Patch.as_str(), "PATCH");
        assert_eq!(Method::Delete.as_str(), "DELETE");
        assert_eq!(Method::Patch.to_string(), "PATCH");
        for method in Method::ALL {
            assert_eq!(Method::from_name(method.as_str()), Some(method));
        }
        assert_eq!(Method::from_name("post"), None);
        assert_eq!(Method::from_name("GET"), None);
    }

    #[test]
    fn method_serialises_as_its_name() {
        assert_eq!(serde_json::to_string(&Method::Delete).unwrap(), "\"DELETE\"");
        let method: Method = serde_json::from_str("\"PUT\"").unwrap();
        assert_eq!(method, Method::Put);
    }

    #[test]
    fn notify_path_format() {
        assert_eq!(notify_path(Method::Post, "tests", "1f0a"), "POST:/tests/1f0a");
        assert_eq!(notify_path(Method::Delete, "a.b-c", "x"), "DELETE:/a.b-c/x");
    }

    #[test]
    fn parse_notify_path_inverts_notify_path() {
        assert_eq!(
            parse_notify_path("POST:/tests/1f0a"),
            Some((Method::Post, "tests", "1f0a"))
        );
        assert_eq!(
            parse_notify_path("PATCH:/tests/a/b:c"),
            Some((Method::Patch, "tests", "a/b:c"))
        );
        assert_eq!(parse_notify_path("PUT:/tests/"), Some((Method::Put, "tests", "")));
    }

    #[test]
    fn parse_notify_path_rejects_malformed_paths() {
        for bad in [
            "",
            "POST",
            "POST:",
            "POST:/",
            "POST:/tests",
            "POST://id",
            "POST:tests/id",
            "GET:/tests/id",
            "post:/tests/id",
            ":/tests/id",
        ] {
            assert_eq!(parse_notify_path(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn a_matching_subscriber_is_returned() {
        let mut registry = NotifyRegistry::new();
        registry.register(1u64, "POST:/tests/").unwrap();
        assert_eq!(registry.subscribers_matching("POST:/tests/abc"), vec![1]);
        assert!(registry.subscribers_matching("PUT:/tests/abc").is_empty());
    }

    #[test]
    fn matching_is_an_unanchored_search() {
        let mut registry = NotifyRegistry::new();
        registry.register(1u64, "tests").unwrap();
        registry.register(2u64, "^tests").unwrap();
        registry.register(3u64, "abc$").unwrap();
        assert_eq!(registry.subscribers_matching("POST:/tests/abc"), vec![1, 3]);
    }

    #[test]
    fn each_subscriber_is_notified_once_however_many_patterns_match() {
        let mut registry = NotifyRegistry::new();
        registry.register(1u64, ".*").unwrap();
        registry.register(1u64, "POST").unwrap();
        registry.register(1u64, "tests").unwrap();
        registry.register(2u64, "tests").unwrap();
        assert_eq!(registry.subscribers_matching("POST:/tests/1"), vec![1, 2]);
    }

    #[test]
    fn results_are_sorted() {
        let mut registry = NotifyRegistry::new();
        for subscriber in [5u64, 3, 9, 1] {
            registry.register(subscriber, "x").unwrap();
        }
        registry.register(4u64, "y").unwrap();
        assert_eq!(registry.subscribers_matching("xy"), vec![1, 3, 4, 5, 9]);
    }

    #[test]
    fn registering_twice_is_idempotent() {
        let mut registry = NotifyRegistry::new();
        registry.register(1u64, "a").unwrap();
        registry.register(1u64, "a").unwrap();
        assert_eq!(registry.patterns().count(), 1);
        assert!(registry.unregister(&1, "a"));
        assert!(registry.is_empty());
        assert_eq!(registry.compiled_pattern_count(), 0);
    }

    #[test]
    fn an_invalid_regex_is_refused_with_the_reason() {
        let mut registry = NotifyRegistry::new();
        let error = registry.register(1u64, "(unclosed").unwrap_err();
        let NotifyError::InvalidPattern(reason) = &error;
        assert!(reason.contains("unclosed group"), "{reason}");
        assert!(error.to_string().starts_with("invalid notify path regex: "));
        assert!(registry.is_empty());
        assert_eq!(registry.compiled_pattern_count(), 0);
    }

    #[test]
    fn an_invalid_regex_leaves_other_registrations_alone() {
        let mut registry = NotifyRegistry::new();
        registry.register(1u64, "a").unwrap();
        assert!(registry.register(1u64, "[").is_err());
        assert_eq!(registry.patterns_of(&1).collect::<Vec<_>>(), vec!["a"]);
    }

    #[test]
    fn a_regex_that_compiles_too_large_is_refused() {
        let error = compile_pattern(r"(\w{100}){100}").unwrap_err();
        let NotifyError::InvalidPattern(reason) = error;
        assert!(reason.contains("size limit"), "{reason}");
    }

    #[test]
    fn an_overlong_pattern_is_refused_before_parsing() {
        let long = "a".repeat(MAX_PATTERN_BYTES + 1);
        let NotifyError::InvalidPattern(reason) = compile_pattern(&long).unwrap_err();
        assert!(reason.contains("limit"), "{reason}");
        assert!(compile_pattern(&"a".repeat(1000)).is_ok());
    }

    #[test]
    fn one_pattern_is_compiled_once_for_many_subscribers() {
        let mut registry = NotifyRegistry::new();
        for subscriber in 0..1000u64 {
            registry.register(subscriber, "POST:/tests/.*").unwrap();
        }
        assert_eq!(registry.compiled_pattern_count(), 1);
        assert_eq!(registry.subscribers_matching("POST:/tests/1").len(), 1000);
        for subscriber in 0..999u64 {
            registry.remove_subscriber(&subscriber);
        }
        assert_eq!(registry.compiled_pattern_count(), 1);
        registry.remove_subscriber(&999);
        assert_eq!(registry.compiled_pattern_count(), 0);
    }

    #[test]
    fn unregister_removes_only_that_registration() {
        let mut registry = NotifyRegistry::new();
        registry.register(1u64, "a").unwrap();
        registry.register(1u64, "b").unwrap();
        registry.register(2u64, "a").unwrap();
        assert!(registry.unregister(&1, "a"));
        assert!(!registry.unregister(&1, "a"));
        assert!(!registry.unregister(&3, "a"));
        assert!(!registry.unregister(&2, "b"));
        assert_eq!(registry.subscribers_matching("a"), vec![2]);
        assert_eq!(registry.subscribers_matching("b"), vec![1]);
        assert_eq!(registry.compiled_pattern_count(), 2);
    }

    #[test]
    fn remove_subscriber_counts_and_forgets_its_patterns() {
        let mut registry = NotifyRegistry::new();
        registry.register(1u64, "a").unwrap();
        registry.register(1u64, "b").unwrap();
        registry.register(2u64, "b").unwrap();
        assert_eq!(registry.remove_subscriber(&1), 2);
        assert_eq!(registry.remove_subscriber(&1), 0);
        assert!(registry.subscribers_matching("a").is_empty());
        assert_eq!(registry.subscribers_matching("ab"), vec![2]);
        assert_eq!(registry.compiled_pattern_count(), 1);
        assert_eq!(registry.remove_subscriber(&2), 1);
        assert!(registry.is_empty());
    }

    #[test]
    fn patterns_lists_every_registration_sorted() {
        let mut registry: NotifyRegistry<String> = NotifyRegistry::default();
        assert!(registry.is_empty());
        registry.register("c2".to_owned(), "z").unwrap();
        registry.register("c1".to_owned(), "y").unwrap();
        registry.register("c1".to_owned(), "x").unwrap();
        let listed: Vec<(&String, &str)> = registry.patterns().collect();
        let c1 = "c1".to_owned();
        let c2 = "c2".to_owned();
        assert_eq!(listed, vec![(&c1, "x"), (&c1, "y"), (&c2, "z")]);
        assert_eq!(registry.patterns_of(&c1).collect::<Vec<_>>(), vec!["x", "y"]);
        assert_eq!(registry.patterns_of(&"none".to_owned()).count(), 0);
        assert!(!registry.is_empty());
    }

    #[test]
    fn merge_keeps_first_seen_order_without_duplicates() {
        let merged = merge_changed_ids(vec![
            strings(&["b", "a"]),
            strings(&["a", "c", "b"]),
            strings(&[]),
            strings(&["d", "d"]),
        ]);
        assert_eq!(merged, strings(&["b", "a", "c", "d"]));
    }

    #[test]
    fn merge_of_nothing_is_empty() {
        assert!(merge_changed_ids(Vec::<Vec<String>>::new()).is_empty());
        assert!(merge_changed_ids(vec![Vec::<String>::new(); 3]).is_empty());
    }

    proptest! {
        #[test]
        fn parse_inverts_notify_path(
            method_index in 0usize..4,
            collection in "[A-Za-z0-9.-]{1,20}",
            document in "\\PC{0,20}",
        ) {
            let method = Method::ALL[method_index];
            let path = notify_path(method, &collection, &document);
            prop_assert_eq!(
                parse_notify_path(&path),
                Some((method, collection.as_str(), document.as_str()))
            );
        }

        #[test]
        fn merge_holds_each_id_once_in_first_seen_order(
            lists in proptest::collection::vec(
                proptest::collection::vec("[a-f]", 0..6), 0..6)
        ) {
            let merged = merge_changed_ids(lists.clone());
            let mut expected: Vec<String> = Vec::new();
            for id in lists.into_iter().flatten() {
                if !expected.contains(&id) {
                    expected.push(id);
                }
            }
            prop_assert_eq!(merged, expected);
        }

        #[test]
        fn registry_agrees_with_matching_each_registration(
            registrations in proptest::collection::vec((0u8..5, "[ab.]{1,3}"), 0..12),
            removals in proptest::collection::vec((0u8..5, "[ab.]{1,3}"), 0..6),
            closed in proptest::collection::vec(0u8..5, 0..2),
            path in "[ab]{0,6}",
        ) {
            let mut registry = NotifyRegistry::new();
            let mut naive: BTreeSet<(u8, String)> = BTreeSet::new();
            for (subscriber, pattern) in registrations {
                registry.register(subscriber, &pattern).unwrap();
                naive.insert((subscriber, pattern));
            }
            for (subscriber, pattern) in removals {
                let existed = naive.remove(&(subscriber, pattern.clone()));
                prop_assert_eq!(registry.unregister(&subscriber, &pattern), existed);
            }
            for subscriber in closed {
                let before = naive.len();
                naive.retain(|(s, _)| *s != subscriber);
                prop_assert_eq!(registry.remove_subscriber(&subscriber), before - naive.len());
            }

            let expected: BTreeSet<u8> = naive
                .iter()
                .filter(|(_, pattern)| Regex::new(pattern).unwrap().is_match(&path))
                .map(|(subscriber, _)| *subscriber)
                .collect();
            prop_assert_eq!(
                registry.subscribers_matching(&path),
                expected.into_iter().collect::<Vec<_>>()
            );
            let listed: Vec<(u8, String)> = registry
                .patterns()
                .map(|(s, p)| (*s, p.to_owned()))
                .collect();
            prop_assert_eq!(listed, naive.iter().cloned().collect::<Vec<_>>());
            let distinct: BTreeSet<&String> = naive.iter().map(|(_, p)| p).collect();
            prop_assert_eq!(registry.compiled_pattern_count(), distinct.len());
            prop_assert_eq!(registry.is_empty(), naive.is_empty());
        }
    }
}
