//! Executing a [`Plan`] against one collection of a snapshot.
//!
//! Generic over redb's `ReadableTable`, so the same code serves reads (a
//! read transaction) and the matching phase of updates and deletes (inside
//! the writer's transaction, where earlier writes of the batch are visible).
//!
//! Every candidate goes through the same funnel: replica filter (decided
//! per replica set, before anything is decoded), then decode, then
//! [`Query::matches`]. COUNT skips the last two steps when the plan is
//! exact.

use std::ops::ControlFlow;

use canhazdb_core::query::{Direction, Order, Query};
use redb::ReadableTable;
use serde_json::Value;

use super::codec::{decode_record, record_replica_set};
use super::error::StorageError;
use super::key_encoding::{
    document_key, document_key_id, split_value_key, successor, CollectionId, KeyRange,
};
use super::planner::{plan, Plan, Source};
use super::replicas::{ReplicaSetId, ReplicaSets};
use super::topk::{self, Ranked, TopK};

/// The documents table, as either transaction kind sees it.
pub trait DocumentsTable: ReadableTable<&'static [u8], &'static [u8]> {}
impl<T: ReadableTable<&'static [u8], &'static [u8]>> DocumentsTable for T {}

/// The index table, as either transaction kind sees it.
pub trait IndexTable: ReadableTable<&'static [u8], ReplicaSetId> {}
impl<T: ReadableTable<&'static [u8], ReplicaSetId>> IndexTable for T {}

/// The replica set table, as either transaction kind sees it.
pub trait ReplicaSetTable: ReadableTable<ReplicaSetId, &'static [u8]> {}
impl<T: ReadableTable<ReplicaSetId, &'static [u8]>> ReplicaSetTable for T {}

/// The tables a read needs, narrowed to one collection.
pub struct CollectionView<'a, D, I> {
    pub collection: CollectionId,
    pub documents: &'a D,
    pub index: &'a I,
}

/// A document that matched.
pub struct Found {
    pub id: String,
    pub replica_set: ReplicaSetId,
    pub document: Value,
}

impl Ranked for Found {
    fn document(&self) -> &Value {
        &self.document
    }
    fn id(&self) -> &str {
        &self.id
    }
}

/// What a visitor tells the walk: keep going or stop.
type Flow = ControlFlow<()>;

impl<D: DocumentsTable, I: IndexTable> CollectionView<'_, D, I> {
    /// Matching documents: ordered by `order` (ties by id) when given, else
    /// in the order the plan's source yields them; at most `limit`.
    pub fn find<R: ReplicaSetTable>(
        &self,
        query: &Query,
        order: Option<&Order>,
        limit: Option<usize>,
        sets: &mut ReplicaSets<'_, R>,
    ) -> Result<Vec<Found>, StorageError> {
        if limit == Some(0) {
            return Ok(Vec::new());
        }
        let plan = plan(self.collection, query, order, limit);
        let mut found = Vec::new();
        match (order, limit) {
            (Some(order), Some(limit)) if plan.follows_order => {
                self.stream_in_order(&plan, query, order, limit, sets, &mut found)?;
            }
            (Some(order), Some(limit)) => {
                let mut top = TopK::new(order, limit);
                self.visit(&plan, query, sets, |item| {
                    top.push(item);
                    ControlFlow::Continue(())
                })?;
                found = top.into_sorted();
            }
            (Some(order), None) => {
                self.visit(&plan, query, sets, |item| {
                    found.push(item);
                    ControlFlow::Continue(())
                })?;
                topk::sort(order, &mut found);
            }
            (None, limit) => {
                let limit = limit.unwrap_or(usize::MAX);
                self.visit(&plan, query, sets, |item| {
                    found.push(item);
                    if found.len() >= limit {
                        ControlFlow::Break(())
                    } else {
                        ControlFlow::Continue(())
                    }
                })?;
            }
        }
        Ok(found)
    }

    /// The ids of every matching document (for updates and deletes).
    pub fn matching_ids<R: ReplicaSetTable>(
        &self,
        query: &Query,
        sets: &mut ReplicaSets<'_, R>,
    ) -> Result<Vec<String>, StorageError> {
        let plan = plan(self.collection, query, None, None);
        let mut ids = Vec::new();
        self.visit(&plan, query, sets, |item| {
            ids.push(item.id);
            ControlFlow::Continue(())
        })?;
        Ok(ids)
    }

    /// How many documents match, decoding documents only where the index
    /// cannot decide alone.
    pub fn count<R: ReplicaSetTable>(
        &self,
        query: &Query,
        sets: &mut ReplicaSets<'_, R>,
    ) -> Result<u64, StorageError> {
        let plan = plan(self.collection, query, None, None);
        let mut count = 0u64;
        match &plan.source {
            Source::Nothing => {}
            Source::Ids(ids) => {
                for id in ids {
                    let key = document_key(self.collection, id);
                    let Some(record) = self.documents.get(key.as_slice())? else {
                        continue;
                    };
                    if self.counts(&plan, query, sets, id, record.value())? {
                        count += 1;
                    }
                }
            }
            Source::Documents(range) => {
                for entry in self.documents.range::<&[u8]>(range.bounds())? {
                    let (key, record) = entry?;
                    let id = document_key_id(key.value())?;
                    if self.counts(&plan, query, sets, id, record.value())? {
                        count += 1;
                    }
                }
            }
            Source::Index {
                ranges,
                path_prefix_len,
            } => {
                for range in ranges {
                    for entry in self.index.range::<&[u8]>(range.bounds())? {
                        let (key, replica_set) = entry?;
                        if !sets.is_reported(replica_set.value())? {
                            continue;
                        }
                        let (id, exact_value) = split_index_key(key.value(), *path_prefix_len)?;
                        // Only an exact plan over an exact value needs no document.
                        let matches =
                            (plan.exact && exact_value) || self.load_match(query, sets, id)?.is_some();
                        if matches {
                            count += 1;
                        }
                    }
                }
            }
        }
        Ok(count)
    }

    /// COUNT's test of one stored document.
    fn counts<R: ReplicaSetTable>(
        &self,
        plan: &Plan,
        query: &Query,
        sets: &mut ReplicaSets<'_, R>,
        id: &str,
        record: &[u8],
    ) -> Result<bool, StorageError> {
        if plan.exact {
            sets.is_reported(record_replica_set(record)?)
        } else {
            Ok(check_record(query, sets, id, record)?.is_some())
        }
    }

    /// Feed every matching candidate of the plan's source to `visitor`, in
    /// the source's order, until it says stop.
    fn visit<R: ReplicaSetTable>(
        &self,
        plan: &Plan,
        query: &Query,
        sets: &mut ReplicaSets<'_, R>,
        mut visitor: impl FnMut(Found) -> Flow,
    ) -> Result<(), StorageError> {
        match &plan.source {
            Source::Nothing => {}
            Source::Ids(ids) => {
                for id in ids {
                    if let Some(found) = self.load_match(query, sets, id)? {
                        if visitor(found).is_break() {
                            break;
                        }
                    }
                }
            }
            Source::Documents(range) => {
                let entries = self.documents.range::<&[u8]>(range.bounds())?;
                let entries: Box<dyn Iterator<Item = _>> = match plan.direction {
                    Direction::Ascending => Box::new(entries),
                    Direction::Descending => Box::new(entries.rev()),
                };
                for entry in entries {
                    let (key, record) = entry?;
                    let id = document_key_id(key.value())?;
                    if let Some(found) = check_record(query, sets, id, record.value())? {
                        if visitor(found).is_break() {
                            break;
                        }
                    }
                }
            }
            Source::Index {
                ranges,
                path_prefix_len,
            } => {
                'ranges: for range in ranges {
                    for entry in self.index.range::<&[u8]>(range.bounds())? {
                        let (key, replica_set) = entry?;
                        if !sets.is_reported(replica_set.value())? {
                            continue;
                        }
                        let (id, _) = split_index_key(key.value(), *path_prefix_len)?;
                        if let Some(found) = self.load_match(query, sets, id)? {
                            if visitor(found).is_break() {
                                break 'ranges;
                            }
                        }
                    }
                }
            }
        }
        Ok(())
    }

    /// ORDER + LIMIT over a source that yields ORDER's primary key in order.
    ///
    /// The documents table (primary term `id`) has no ties: take the first
    /// `limit` matches. An index is walked one *group* (one value key) at a
    /// time, in `direction`; inside a group candidates are read in id order.
    /// When the group holds exactly one value and ORDER has one term, id
    /// order *is* the result order, so matches are emitted directly and the
    /// walk stops at LIMIT. Otherwise (more terms to break ties, or a group
    /// of truncated long strings whose values differ) the group's best
    /// `limit - emitted` are chosen with a bounded heap.
    fn stream_in_order<R: ReplicaSetTable>(
        &self,
        plan: &Plan,
        query: &Query,
        order: &Order,
        limit: usize,
        sets: &mut ReplicaSets<'_, R>,
        out: &mut Vec<Found>,
    ) -> Result<(), StorageError> {
        let (ranges, path_prefix_len) = match &plan.source {
            Source::Index {
                ranges,
                path_prefix_len,
            } => (ranges, *path_prefix_len),
            // Ids are unique, so the source order is already the result order.
            _ => {
                return self.visit(plan, query, sets, |found| {
                    out.push(found);
                    if out.len() >= limit {
                        ControlFlow::Break(())
                    } else {
                        ControlFlow::Continue(())
                    }
                })
            }
        };
        let single_term = order.terms.len() == 1;
        let ranges: Box<dyn Iterator<Item = &KeyRange>> = match plan.direction {
            Direction::Ascending => Box::new(ranges.iter()),
            Direction::Descending => Box::new(ranges.iter().rev()),
        };
        for range in ranges {
            let mut remaining = range.clone();
            while !remaining.is_empty() {
                let Some((group, exact)) = self.next_group(&remaining, plan.direction, path_prefix_len)?
                else {
                    break;
                };
                if exact && single_term {
                    let walked = self.visit_group(&group, path_prefix_len, query, sets, |found| {
                        out.push(found);
                        if out.len() >= limit {
                            ControlFlow::Break(())
                        } else {
                            ControlFlow::Continue(())
                        }
                    })?;
                    if walked.is_break() {
                        return Ok(());
                    }
                } else {
                    let mut top = TopK::new(order, limit - out.len());
                    // The heap takes every match: this walk never breaks.
                    let _ = self.visit_group(&group, path_prefix_len, query, sets, |found| {
                        top.push(found);
                        ControlFlow::Continue(())
                    })?;
                    out.extend(top.into_sorted());
                    if out.len() >= limit {
                        return Ok(());
                    }
                }
                // Step past the group.
                match plan.direction {
                    Direction::Ascending => match group.end {
                        Some(end) => remaining.start = end,
                        None => break,
                    },
                    Direction::Descending => remaining.end = Some(group.start),
                }
            }
        }
        Ok(())
    }

    /// The first (ascending) or last (descending) group of index entries
    /// within `range`: the key range of one value key, clipped to `range`,
    /// and whether that value key is exact.
    fn next_group(
        &self,
        range: &KeyRange,
        direction: Direction,
        path_prefix_len: usize,
    ) -> Result<Option<(KeyRange, bool)>, StorageError> {
        let mut entries = self.index.range::<&[u8]>(range.bounds())?;
        let entry = match direction {
            Direction::Ascending => entries.next(),
            Direction::Descending => entries.next_back(),
        };
        let Some(entry) = entry else {
            return Ok(None);
        };
        let (key, _) = entry?;
        let key = key.value();
        let value_part = key
            .get(path_prefix_len..)
            .ok_or_else(|| StorageError::Corrupt("index key shorter than its path".to_owned()))?;
        let (value_len, exact) = split_value_key(value_part)?;
        let group_prefix = key[..path_prefix_len + value_len].to_vec();
        let group_end = successor(&group_prefix);
        // Clip to the range (ranges start and end on group boundaries, but
        // clipping keeps this correct even if one did not).
        let start = group_prefix.max(range.start.clone());
        let end = match (group_end, &range.end) {
            (Some(group_end), Some(range_end)) => Some(group_end.min(range_end.clone())),
            (Some(group_end), None) => Some(group_end),
            (None, range_end) => range_end.clone(),
        };
        Ok(Some((KeyRange { start, end }, exact)))
    }

    /// Feeds `each` the reported documents of one index group that match
    /// `query`, in id order, until it breaks; says whether it broke.
    fn visit_group<R: ReplicaSetTable>(
        &self,
        group: &KeyRange,
        path_prefix_len: usize,
        query: &Query,
        sets: &mut ReplicaSets<'_, R>,
        mut each: impl FnMut(Found) -> ControlFlow<()>,
    ) -> Result<ControlFlow<()>, StorageError> {
        for entry in self.index.range::<&[u8]>(group.bounds())? {
            let (key, replica_set) = entry?;
            if !sets.is_reported(replica_set.value())? {
                continue;
            }
            let (id, _) = split_index_key(key.value(), path_prefix_len)?;
            if let Some(found) = self.load_match(query, sets, id)? {
                if each(found).is_break() {
                    return Ok(ControlFlow::Break(()));
                }
            }
        }
        Ok(ControlFlow::Continue(()))
    }
    /// Fetch a document by id and test it.
    fn load_match<R: ReplicaSetTable>(
        &self,
        query: &Query,
        sets: &mut ReplicaSets<'_, R>,
        id: &str,
    ) -> Result<Option<Found>, StorageError> {
        let key = document_key(self.collection, id);
        match self.documents.get(key.as_slice())? {
            Some(record) => check_record(query, sets, id, record.value()),
            None => Ok(None),
        }
    }
}

/// Test one stored record: replica filter first (no decoding), then the query.
fn check_record<T: ReplicaSetTable>(
    query: &Query,
    sets: &mut ReplicaSets<'_, T>,
    id: &str,
    record: &[u8],
) -> Result<Option<Found>, StorageError> {
    if !sets.is_reported(record_replica_set(record)?)? {
        return Ok(None);
    }
    let (replica_set, document) = decode_record(id, record)?;
    Ok(query.matches(&document).then(|| Found {
        id: id.to_owned(),
        replica_set,
        document,
    }))
}

/// The document id at the end of an index key, and whether its value key
/// is exact.
fn split_index_key(key: &[u8], path_prefix_len: usize) -> Result<(&str, bool), StorageError> {
    let malformed = || StorageError::Corrupt("malformed index key".to_owned());
    let value_part = key.get(path_prefix_len..).ok_or_else(malformed)?;
    let (value_len, exact) = split_value_key(value_part)?;
    let id = std::str::from_utf8(&value_part[value_len..]).map_err(|_| malformed())?;
    Ok((id, exact))
}
