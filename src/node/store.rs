//! A node's storage: one ordered map per partition it holds.
//!
//! A `BTreeMap` per partition, rather than one map for the node, makes the
//! operations that rebalancing and failover need cheap: dropping a partition
//! the node no longer holds, streaming a partition in key order in chunks,
//! and replacing a key range with a chunk from the primary.
//!
//! Keys are [`CompactString`]s, which hold a key of up to 24 bytes inside
//! the B-tree node itself. A lookup compares the wanted key with several
//! keys on each level; with heap `String` keys every comparison followed a
//! pointer to another cache line, and those misses were the largest single
//! cost of a read (docs/performance.md). Short keys also save their own heap
//! block.
//!
//! A durable node (`--data-dir`, [`crate::node::disk`]) turns on the store's
//! journal: every key a change touches is noted, and the node thread writes
//! those keys' current values to disk before it sends any acknowledgement.
//! A node in memory has no journal and pays one branch per change.

use crate::node::pairs::{Pairs, PairsBuilder};
use crate::view::PartitionId;
use compact_str::CompactString;
use std::collections::BTreeMap;
use std::ops::Bound;

/// The pairs of one partition, in key order. Values are `Box<str>`, 16
/// bytes in the tree node where a `String` takes 24 (its capacity is never
/// used: a stored value does not grow); with 11 pairs to a node that is 88
/// bytes a node, and about 8% of the memory per key (docs/performance.md,
/// "Memory per key"). Values come in as `String`s with no spare capacity
/// (decoded from a frame), so `into_boxed_str` does not copy them, and the
/// old value goes back out as a `String` without a copy either.
pub type PartitionData = BTreeMap<CompactString, Box<str>>;

/// A node's data.
#[derive(Debug, Default)]
pub struct Store {
    /// foldhash rather than std's SipHash: every read and write looks up
    /// its partition here first.
    partitions: foldhash::HashMap<PartitionId, PartitionData>,
    keys: u64,
    bytes: u64,
    /// The keys changed since [`Store::take_dirty`], when durable.
    dirty: Option<Vec<(PartitionId, CompactString)>>,
}

impl Store {
    /// An empty store.
    pub fn new() -> Self {
        Self::default()
    }

    /// The value at `key` in partition `p`.
    pub fn get(&self, p: PartitionId, key: &str) -> Option<&str> {
        self.partitions.get(&p)?.get(key).map(|v| &**v)
    }

    /// Starts noting the keys every change touches (a durable node).
    pub fn journal(&mut self) {
        self.dirty.get_or_insert_with(Vec::new);
    }

    /// True if the store notes its changes for the disk.
    pub fn journaled(&self) -> bool {
        self.dirty.is_some()
    }

    /// The keys changed since the last call, in the order they changed (a
    /// key may appear more than once), for the disk to write their current
    /// values. Empty when the store has no journal.
    pub fn take_dirty(&mut self) -> Vec<(PartitionId, CompactString)> {
        match &mut self.dirty {
            Some(d) => std::mem::take(d),
            None => Vec::new(),
        }
    }

    /// Changes waiting to be written to disk.
    pub fn dirty_len(&self) -> usize {
        self.dirty.as_ref().map_or(0, Vec::len)
    }

    /// Sets `key` in partition `p`, returning the old value.
    pub fn put(&mut self, p: PartitionId, key: String, value: String) -> Option<String> {
        self.insert(p, CompactString::from(key), value.into_boxed_str())
            .map(String::from)
    }

    /// Sets `key` in partition `p`: notes it for the journal, keeps the
    /// counts, and returns the old value.
    fn insert(&mut self, p: PartitionId, key: CompactString, value: Box<str>) -> Option<Box<str>> {
        if let Some(d) = &mut self.dirty {
            d.push((p, key.clone()));
        }
        let key_len = key.len();
        let size = (key_len + value.len()) as u64;
        let old = self.partitions.entry(p).or_default().insert(key, value);
        match &old {
            Some(v) => self.bytes -= (key_len + v.len()) as u64,
            None => self.keys += 1,
        }
        self.bytes += size;
        old
    }

    /// Removes `key` from partition `p`, returning the old value.
    pub fn delete(&mut self, p: PartitionId, key: &str) -> Option<String> {
        let old = self.partitions.get_mut(&p)?.remove(key).map(String::from);
        if let Some(v) = &old {
            if let Some(d) = &mut self.dirty {
                d.push((p, CompactString::from(key)));
            }
            self.keys -= 1;
            self.bytes -= (key.len() + v.len()) as u64;
        }
        old
    }

    /// Replaces every pair in the range `(after, upto]` of partition `p` with
    /// `entries`. See [`crate::node::message::StreamEntry::Chunk`].
    pub fn replace_range(
        &mut self,
        p: PartitionId,
        after: Option<&str>,
        upto: Option<&str>,
        entries: &Pairs,
    ) {
        if self.dirty.is_some() {
            return self.replace_range_journaled(p, after, upto, entries);
        }
        let data = self.partitions.entry(p).or_default();
        let lower = after.map_or(Bound::Unbounded, Bound::Excluded);
        let upper = upto.map_or(Bound::Unbounded, Bound::Included);
        let doomed: Vec<CompactString> = data
            .range::<str, _>((lower, upper))
            .map(|(k, _)| k.clone())
            .collect();
        for k in doomed {
            if let Some(v) = data.remove(&k) {
                self.keys -= 1;
                self.bytes -= (k.len() + v.len()) as u64;
            }
        }
        for (k, v) in entries.iter() {
            self.put_copy(p, k, v);
        }
    }

    /// [`Store::put`] of borrowed strings: the key is copied into the tree
    /// (inline if short) and the value into one block of its own, with no
    /// intermediate `String`s.
    fn put_copy(&mut self, p: PartitionId, key: &str, value: &str) {
        self.insert(p, CompactString::from(key), Box::from(value));
    }

    /// [`Store::replace_range`] on a durable store: only what differs is
    /// changed, so only that is written to disk (a catch-up chunk that
    /// mostly matches what a reloaded node holds costs little).
    fn replace_range_journaled(
        &mut self,
        p: PartitionId,
        after: Option<&str>,
        upto: Option<&str>,
        entries: &Pairs,
    ) {
        let wanted: std::collections::HashSet<&str> = entries.iter().map(|(k, _)| k).collect();
        let lower = after.map_or(Bound::Unbounded, Bound::Excluded);
        let upper = upto.map_or(Bound::Unbounded, Bound::Included);
        let doomed: Vec<CompactString> = self
            .partitions
            .get(&p)
            .map(|data| {
                data.range::<str, _>((lower, upper))
                    .filter(|(k, _)| !wanted.contains(k.as_str()))
                    .map(|(k, _)| k.clone())
                    .collect()
            })
            .unwrap_or_default();
        drop(wanted);
        for k in doomed {
            self.delete(p, &k);
        }
        for (k, v) in entries.iter() {
            if self.get(p, k) != Some(v) {
                self.put_copy(p, k, v);
            }
        }
    }

    /// Up to `limit` pairs of partition `p` after `after` (exclusive), in
    /// key order, packed for a resync chunk; the last key, if more pairs
    /// follow it.
    pub fn pack_page(
        &self,
        p: PartitionId,
        after: Option<&str>,
        limit: usize,
    ) -> (Pairs, Option<String>) {
        let Some(data) = self.partitions.get(&p) else {
            return (Pairs::default(), None);
        };
        let lower = after.map_or(Bound::Unbounded, Bound::Excluded);
        let range = || data.range::<str, _>((lower, Bound::Unbounded)).take(limit);
        // Sized exactly, from a first walk that reads only lengths: a
        // guess too large for a small partition cost a fresh mapping (and
        // its page faults) per chunk, one too small a copy per doubling.
        let bytes = range().map(|(k, v)| k.len() + v.len() + 8).sum();
        let mut page = PairsBuilder::with_capacity(bytes);
        let mut iter = data.range::<str, _>((lower, Bound::Unbounded));
        let mut last = None;
        for (k, v) in iter.by_ref().take(limit) {
            page.push(k, v);
            last = Some(k);
        }
        let more = iter.next().is_some();
        (page.finish(), last.filter(|_| more).map(|k| k.to_string()))
    }

    /// Up to `limit` pairs of partition `p` after `after` whose keys start
    /// with `prefix`, in key order, and whether more such pairs follow. The
    /// page also stops once its keys and values reach `max_bytes` (it holds
    /// at least one pair if any match), so that a page of big values stays
    /// small. Keys with a prefix are contiguous in the tree, so the page
    /// starts at the prefix and stops at the first key without it rather
    /// than reading the partition.
    pub fn page_matching(
        &self,
        p: PartitionId,
        after: Option<&str>,
        prefix: Option<&str>,
        limit: usize,
        max_bytes: usize,
    ) -> (Vec<(String, String)>, bool) {
        let Some(data) = self.partitions.get(&p) else {
            return (Vec::new(), false);
        };
        let prefix = prefix.unwrap_or("");
        let lower = match after {
            Some(a) if a >= prefix => Bound::Excluded(a),
            _ => Bound::Included(prefix),
        };
        let mut iter = data
            .range::<str, _>((lower, Bound::Unbounded))
            .take_while(|(k, _)| k.starts_with(prefix));
        let mut page = Vec::new();
        let mut bytes = 0;
        for (k, v) in iter.by_ref() {
            page.push((k.to_string(), v.to_string()));
            bytes += k.len() + v.len();
            if page.len() >= limit || bytes >= max_bytes {
                break;
            }
        }
        let more = iter.next().is_some();
        (page, more)
    }

    /// Every pair of partition `p` in `(after, upto]`, in key order, packed
    /// for a resync chunk.
    pub fn pack_range(&self, p: PartitionId, after: Option<&str>, upto: Option<&str>) -> Pairs {
        let Some(data) = self.partitions.get(&p) else {
            return Pairs::default();
        };
        let lower = after.map_or(Bound::Unbounded, Bound::Excluded);
        let upper = upto.map_or(Bound::Unbounded, Bound::Included);
        data.range::<str, _>((lower, upper))
            .map(|(k, v)| (k.as_str(), &**v))
            .collect()
    }

    /// Drops partition `p` entirely.
    pub fn drop_partition(&mut self, p: PartitionId) {
        if let Some(data) = self.partitions.remove(&p) {
            for (k, v) in data {
                self.keys -= 1;
                self.bytes -= (k.len() + v.len()) as u64;
                if let Some(d) = &mut self.dirty {
                    d.push((p, k));
                }
            }
        }
    }

    /// A catch-up digest (docs/architecture.md, "Catching up"): xxh3-128
    /// over the pairs of partition `p` in `(after, upto]`, at most `limit`
    /// of them when `upto` is `None`. Returns the digest, the pairs hashed,
    /// and the last key hashed if more pairs follow it (the range's end).
    pub fn range_digest(
        &self,
        p: PartitionId,
        after: Option<&str>,
        upto: Option<&str>,
        limit: usize,
    ) -> (u128, usize, Option<String>) {
        let mut hasher = xxhash_rust::xxh3::Xxh3::new();
        let mut count = 0;
        let mut last = None;
        let mut more = false;
        if let Some(data) = self.partitions.get(&p) {
            let lower = after.map_or(Bound::Unbounded, Bound::Excluded);
            let upper = upto.map_or(Bound::Unbounded, Bound::Included);
            let mut iter = data.range::<str, _>((lower, upper));
            for (k, v) in iter.by_ref() {
                hasher.update(&(k.len() as u64).to_le_bytes());
                hasher.update(k.as_bytes());
                hasher.update(&(v.len() as u64).to_le_bytes());
                hasher.update(v.as_bytes());
                count += 1;
                if count == limit {
                    last = Some(k.to_string());
                    break;
                }
            }
            more = last.is_some() && iter.next().is_some();
        }
        (hasher.digest128(), count, if more { last } else { None })
    }

    /// The partitions with data.
    pub fn partition_ids(&self) -> Vec<PartitionId> {
        self.partitions.keys().copied().collect()
    }

    /// The data of partition `p`, if any.
    pub fn partition(&self, p: PartitionId) -> Option<&PartitionData> {
        self.partitions.get(&p)
    }

    /// Keys in partition `p`.
    pub fn partition_len(&self, p: PartitionId) -> usize {
        self.partitions.get(&p).map_or(0, |d| d.len())
    }

    /// Keys over all partitions.
    pub fn keys(&self) -> u64 {
        self.keys
    }

    /// Bytes of keys and values over all partitions.
    pub fn bytes(&self) -> u64 {
        self.bytes
    }

    /// A digest of partition `p`: xxh3 over its sorted pairs, fed in order
    /// through a streaming hasher, so the partition is never copied.
    pub fn digest(&self, p: PartitionId) -> u64 {
        let mut hasher = xxhash_rust::xxh3::Xxh3::new();
        if let Some(data) = self.partitions.get(&p) {
            for (k, v) in data {
                // Length prefixes keep ("ab","c") and ("a","bc") apart.
                hasher.update(&(k.len() as u64).to_le_bytes());
                hasher.update(k.as_bytes());
                hasher.update(&(v.len() as u64).to_le_bytes());
                hasher.update(v.as_bytes());
            }
        }
        hasher.digest()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pairs(s: &[(&str, &str)]) -> Pairs {
        s.iter().copied().collect()
    }

    #[test]
    fn counts_follow_puts_and_deletes() {
        let mut s = Store::new();
        s.put(1, "a".into(), "xx".into());
        s.put(1, "a".into(), "y".into());
        s.put(2, "b".into(), "z".into());
        assert_eq!((s.keys(), s.bytes()), (2, 4));
        assert_eq!(s.delete(1, "a"), Some("y".into()));
        assert_eq!(s.delete(1, "a"), None);
        assert_eq!((s.keys(), s.bytes()), (1, 2));
        s.drop_partition(2);
        assert_eq!((s.keys(), s.bytes()), (0, 0));
    }

    #[test]
    fn replace_range_replaces_only_the_range() {
        let mut s = Store::new();
        for k in ["a", "b", "c", "d", "e"] {
            s.put(0, k.into(), "old".into());
        }
        s.replace_range(0, Some("a"), Some("c"), &pairs(&[("bb", "new")]));
        let keys: Vec<_> = s.partition(0).unwrap().keys().cloned().collect();
        assert_eq!(keys, ["a", "bb", "d", "e"]);
        s.replace_range(0, Some("d"), None, &Pairs::default());
        let keys: Vec<_> = s.partition(0).unwrap().keys().cloned().collect();
        assert_eq!(keys, ["a", "bb", "d"]);
        s.replace_range(0, None, None, &pairs(&[("z", "1")]));
        assert_eq!(s.keys(), 1);
    }

    #[test]
    fn pages_walk_the_partition() {
        let mut s = Store::new();
        for i in 0..10 {
            s.put(0, format!("k{i}"), "v".into());
        }
        let (p1, last) = s.pack_page(0, None, 4);
        let keys: Vec<_> = p1.iter().map(|(k, _)| k).collect();
        assert_eq!(keys, ["k0", "k1", "k2", "k3"]);
        assert_eq!(last.as_deref(), Some("k3"), "more follow");
        let (p2, last) = s.pack_page(0, last.as_deref(), 10);
        assert_eq!(p2.len(), 6);
        assert_eq!(last, None, "the last page");
        assert_eq!(
            s.pack_range(0, Some("k3"), Some("k5")),
            pairs(&[("k4", "v"), ("k5", "v")])
        );
    }

    /// Client pages read only the prefix's keys, and stop at the byte
    /// bound, with at least one pair per page.
    #[test]
    fn matching_pages_seek_the_prefix_and_bound_bytes() {
        let mut s = Store::new();
        for k in ["a1", "b1", "b2", "b3", "c1"] {
            s.put(0, k.into(), "v".repeat(10));
        }
        let keys =
            |page: &[(String, String)]| page.iter().map(|(k, _)| k.clone()).collect::<Vec<_>>();
        let (page, more) = s.page_matching(0, None, Some("b"), 2, usize::MAX);
        assert_eq!((keys(&page), more), (vec!["b1".into(), "b2".into()], true));
        let (page, more) = s.page_matching(0, Some("b2"), Some("b"), 2, usize::MAX);
        assert_eq!((keys(&page), more), (vec!["b3".into()], false));
        let (page, more) = s.page_matching(0, Some("a1"), Some("b"), 10, usize::MAX);
        assert_eq!(keys(&page), ["b1", "b2", "b3"]);
        assert!(!more);
        let (page, _) = s.page_matching(0, Some("b9"), Some("b"), 10, usize::MAX);
        assert!(page.is_empty());
        // 12 bytes a pair: a 25-byte bound stops after the third.
        let (page, more) = s.page_matching(0, None, None, 10, 25);
        assert_eq!((page.len(), more), (3, true));
        let (page, _) = s.page_matching(0, None, None, 10, 1);
        assert_eq!(page.len(), 1, "a page always holds one pair");
    }

    /// A durable store notes exactly the keys that changed, and a chunk
    /// that mostly matches changes (and so writes) only what differs.
    #[test]
    fn the_journal_notes_only_what_changed() {
        let mut s = Store::new();
        s.put(0, "a".into(), "1".into());
        assert!(s.take_dirty().is_empty(), "no journal, nothing noted");
        s.journal();
        s.put(0, "b".into(), "2".into());
        s.delete(0, "zz");
        s.delete(0, "a");
        let keys = |d: Vec<(PartitionId, CompactString)>| {
            d.into_iter()
                .map(|(_, k)| k.to_string())
                .collect::<Vec<_>>()
        };
        assert_eq!(keys(s.take_dirty()), ["b", "a"]);
        for k in ["c", "d", "e"] {
            s.put(0, k.into(), "old".into());
        }
        s.take_dirty();
        s.replace_range(
            0,
            Some("b"),
            None,
            &pairs(&[("c", "old"), ("d", "new"), ("f", "x")]),
        );
        assert_eq!(keys(s.take_dirty()), ["e", "d", "f"]);
        let held: Vec<_> = s.partition(0).unwrap().keys().cloned().collect();
        assert_eq!(held, ["b", "c", "d", "f"]);
        s.drop_partition(0);
        assert_eq!(s.dirty_len(), 4);
    }

    /// Range digests cut the partition in ranges of `limit` keys, and the
    /// same range hashes the same on a store with the same pairs there,
    /// whatever it holds elsewhere.
    #[test]
    fn range_digests_compare_ranges() {
        let mut a = Store::new();
        let mut b = Store::new();
        for i in 0..10 {
            a.put(0, format!("k{i}"), "v".into());
            b.put(0, format!("k{i}"), "v".into());
        }
        b.put(0, "k8x".into(), "extra".into());
        let (d1, n1, upto) = a.range_digest(0, None, None, 4);
        assert_eq!((n1, upto.as_deref()), (4, Some("k3")));
        assert_eq!(b.range_digest(0, None, upto.as_deref(), usize::MAX).0, d1);
        let (_, n2, upto2) = a.range_digest(0, upto.as_deref(), None, 4);
        assert_eq!((n2, upto2.as_deref()), (4, Some("k7")));
        let (last, n3, end) = a.range_digest(0, upto2.as_deref(), None, 4);
        assert_eq!((n3, end), (2, None));
        assert_ne!(
            b.range_digest(0, upto2.as_deref(), None, usize::MAX).0,
            last
        );
    }

    #[test]
    fn digests_differ_exactly_when_data_does() {
        let mut a = Store::new();
        let mut b = Store::new();
        a.put(0, "k".into(), "v".into());
        b.put(0, "k".into(), "v".into());
        assert_eq!(a.digest(0), b.digest(0));
        b.put(0, "k".into(), "w".into());
        assert_ne!(a.digest(0), b.digest(0));
        a.put(1, "ab".into(), "c".into());
        b.put(1, "a".into(), "bc".into());
        assert_ne!(a.digest(1), b.digest(1));
    }
}
