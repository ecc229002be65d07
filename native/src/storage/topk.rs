//! Ordering of results, and keeping only the best `k` of a stream.
//!
//! Every read that sorts breaks ties by document id, which makes the result
//! identical to "take the documents in id order, stable-sort them by ORDER,
//! cut at LIMIT" whatever order the candidates arrived in.

use std::cmp::Ordering;
use std::collections::BinaryHeap;

use canhazdb_core::query::Order;
use serde_json::Value;

/// Something sortable by ORDER with an id tie-break.
pub trait Ranked {
    fn document(&self) -> &Value;
    fn id(&self) -> &str;
}

/// ORDER, then id.
pub fn compare<T: Ranked>(order: &Order, a: &T, b: &T) -> Ordering {
    order
        .compare(a.document(), b.document())
        .then_with(|| a.id().cmp(b.id()))
}

/// Sort everything (used when there is no LIMIT).
pub fn sort<T: Ranked>(order: &Order, items: &mut [T]) {
    items.sort_by(|a, b| compare(order, a, b));
}

/// The `limit` smallest items under [`compare`], in O(limit) memory: a
/// max-heap whose top is the worst item kept, evicted when a better one
/// arrives.
pub struct TopK<'o, T> {
    order: &'o Order,
    limit: usize,
    heap: BinaryHeap<HeapEntry<'o, T>>,
}

impl<'o, T: Ranked> TopK<'o, T> {
    pub fn new(order: &'o Order, limit: usize) -> TopK<'o, T> {
        TopK {
            order,
            limit,
            heap: BinaryHeap::with_capacity(limit.min(4096) + 1),
        }
    }

    pub fn push(&mut self, item: T) {
        if self.limit == 0 {
            return;
        }
        let entry = HeapEntry {
            order: self.order,
            item,
        };
        if self.heap.len() < self.limit {
            self.heap.push(entry);
        } else if let Some(mut worst) = self.heap.peek_mut() {
            if entry < *worst {
                *worst = entry;
            }
        }
    }

    /// The kept items, best first.
    pub fn into_sorted(self) -> Vec<T> {
        self.heap
            .into_sorted_vec()
            .into_iter()
            .map(|entry| entry.item)
            .collect()
    }
}

struct HeapEntry<'o, T> {
    order: &'o Order,
    item: T,
}

impl<T: Ranked> Ord for HeapEntry<'_, T> {
    fn cmp(&self, other: &Self) -> Ordering {
        compare(self.order, &self.item, &other.item)
    }
}

impl<T: Ranked> PartialOrd for HeapEntry<'_, T> {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl<T: Ranked> PartialEq for HeapEntry<'_, T> {
    fn eq(&self, other: &Self) -> bool {
        self.cmp(other) == Ordering::Equal
    }
}

impl<T: Ranked> Eq for HeapEntry<'_, T> {}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    struct Item(String, Value);

    impl Ranked for Item {
        fn document(&self) -> &Value {
            &self.1
        }
        fn id(&self) -> &str {
            &self.0
        }
    }

    #[test]
    fn keeps_the_best_k_with_id_tie_break() {
        let order = Order::parse(&json!("desc(n)")).unwrap();
        let mut top = TopK::new(&order, 3);
        for (id, n) in [("a", 1), ("b", 3), ("c", 2), ("d", 3), ("e", 0), ("f", 2)] {
            top.push(Item(id.to_owned(), json!({ "n": n })));
        }
        let ids: Vec<String> = top.into_sorted().into_iter().map(|item| item.0).collect();
        assert_eq!(ids, ["b", "d", "c"]);
        let mut none = TopK::new(&order, 0);
        none.push(Item("x".to_owned(), json!({})));
        assert!(none.into_sorted().is_empty());
    }
}
