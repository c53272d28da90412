//! A node's storage: one [`Partition`] per partition it holds.
//!
//! A map per partition, rather than one map for the node, makes the
//! operations that rebalancing and failover need cheap: dropping a partition
//! the node no longer holds, streaming a partition in order in chunks, and
//! replacing a range with a chunk from the primary. A partition packs its
//! pairs into one arena behind an index of key hashes, and orders them by
//! [`Place`] (kvsh's own records first, then by hash); see
//! [`partition`] for the layout and why.
//!
//! A durable node (`--data-dir`, [`crate::node::disk`]) turns on the store's
//! journal: every key a change touches is noted, and the node thread writes
//! those keys' current values to disk before it sends any acknowledgement.
//! A node in memory has no journal and pays one branch per change.

pub mod arena;
pub mod partition;

use crate::node::conditional::SYSTEM_PREFIX;
use crate::node::pairs::{Pairs, PairsBuilder};
use crate::view::PartitionId;
use compact_str::CompactString;
pub use partition::{place, Partition, Place};

/// The most pairs a client's page with a prefix reads past without a match
/// before it returns (with the key to go on after): a partition is ordered
/// by hash, so a prefix's keys are spread through it, and the cost of one
/// request stays bounded whatever the prefix.
pub const MAX_EXAMINED: usize = 4096;

/// A page of [`Store::page_matching`].
#[derive(Debug, Default, PartialEq)]
pub struct MatchPage {
    /// The matching pairs, in the partition's order.
    pub pairs: Vec<(String, String)>,
    /// The key to go on after, if more may follow.
    pub next: Option<String>,
    /// The pairs read, matching or not.
    pub examined: usize,
}

/// A node's data.
#[derive(Debug, Default)]
pub struct Store {
    /// foldhash rather than std's SipHash: every read and write looks up
    /// its partition here first.
    partitions: foldhash::HashMap<PartitionId, Partition>,
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
        self.partitions.get(&p)?.get(key)
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
        self.insert(p, &key, &value)
    }

    /// Sets `key` in partition `p`: notes it for the journal, keeps the
    /// counts, and returns the old value. The key and value are copied
    /// into the partition's arena.
    fn insert(&mut self, p: PartitionId, key: &str, value: &str) -> Option<String> {
        if let Some(d) = &mut self.dirty {
            d.push((p, CompactString::from(key)));
        }
        let old = self.partitions.entry(p).or_default().insert(key, value);
        match &old {
            Some(v) => self.bytes -= (key.len() + v.len()) as u64,
            None => self.keys += 1,
        }
        self.bytes += (key.len() + value.len()) as u64;
        old
    }

    /// Removes `key` from partition `p`, returning the old value.
    pub fn delete(&mut self, p: PartitionId, key: &str) -> Option<String> {
        let old = self.partitions.get_mut(&p)?.remove(key);
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
        let doomed: Vec<String> = self
            .partitions
            .get(&p)
            .map(|data| {
                data.range(after, upto)
                    .map(|(k, _)| k.to_string())
                    .collect()
            })
            .unwrap_or_default();
        for k in doomed {
            self.delete(p, &k);
        }
        for (k, v) in entries.iter() {
            self.insert(p, k, v);
        }
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
        let doomed: Vec<String> = self
            .partitions
            .get(&p)
            .map(|data| {
                data.range(after, upto)
                    .filter(|(k, _)| !wanted.contains(k))
                    .map(|(k, _)| k.to_string())
                    .collect()
            })
            .unwrap_or_default();
        drop(wanted);
        for k in doomed {
            self.delete(p, &k);
        }
        for (k, v) in entries.iter() {
            if self.get(p, k) != Some(v) {
                self.insert(p, k, v);
            }
        }
    }

    /// Up to `limit` pairs of partition `p` after `after` (exclusive), in
    /// order, packed for a resync chunk; the last key, if more pairs follow
    /// it.
    pub fn pack_page(
        &self,
        p: PartitionId,
        after: Option<&str>,
        limit: usize,
    ) -> (Pairs, Option<String>) {
        let Some(data) = self.partitions.get(&p) else {
            return (Pairs::default(), None);
        };
        // Sized exactly, from a first walk that reads only lengths: a
        // guess too large for a small partition cost a fresh mapping (and
        // its page faults) per chunk, one too small a copy per doubling.
        let bytes = data
            .range(after, None)
            .take(limit)
            .map(|(k, v)| k.len() + v.len() + 8)
            .sum();
        let mut page = PairsBuilder::with_capacity(bytes);
        let mut iter = data.range(after, None);
        let mut last = None;
        for (k, v) in iter.by_ref().take(limit) {
            page.push(k, v);
            last = Some(k);
        }
        let more = iter.next().is_some();
        (page.finish(), last.filter(|_| more).map(|k| k.to_string()))
    }

    /// Up to `limit` pairs of partition `p` after `after` whose keys start
    /// with `prefix`, in the partition's order, and the key to go on after
    /// if more may follow. The page also stops once its keys and values
    /// reach `max_bytes` (it holds at least one pair if any match), so that
    /// a page of big values stays small, and once it has read
    /// [`MAX_EXAMINED`] pairs that do not match, so that a prefix that
    /// matches little does not read the whole partition in one request.
    /// Also returns the pairs read. A prefix of kvsh's own records is one
    /// ordered lookup; any other prefix (or none) skips those records, so
    /// the key to go on after is never one of them (an intent record lives
    /// in its data key's partition, not its own).
    pub fn page_matching(
        &self,
        p: PartitionId,
        after: Option<&str>,
        prefix: Option<&str>,
        limit: usize,
        max_bytes: usize,
    ) -> MatchPage {
        let Some(data) = self.partitions.get(&p) else {
            return MatchPage::default();
        };
        let prefix = prefix.unwrap_or("");
        let mut iter: Box<dyn Iterator<Item = (&str, &str)>> = if prefix.starts_with(SYSTEM_PREFIX)
        {
            Box::new(data.system_prefixed(prefix, after))
        } else {
            Box::new(data.users_after(after))
        };
        let mut page = Vec::new();
        let mut bytes = 0;
        let mut examined = 0;
        let mut last = None;
        for (k, v) in iter.by_ref() {
            last = Some(k);
            examined += 1;
            if !k.starts_with(prefix) {
                if examined - page.len() >= MAX_EXAMINED {
                    break;
                }
                continue;
            }
            page.push((k.to_string(), v.to_string()));
            bytes += k.len() + v.len();
            if page.len() >= limit || bytes >= max_bytes {
                break;
            }
        }
        let more = iter.next().is_some();
        MatchPage {
            pairs: page,
            next: last.filter(|_| more).map(str::to_string),
            examined,
        }
    }

    /// Every pair of partition `p` in `(after, upto]`, in order, packed for
    /// a resync chunk.
    pub fn pack_range(&self, p: PartitionId, after: Option<&str>, upto: Option<&str>) -> Pairs {
        let Some(data) = self.partitions.get(&p) else {
            return Pairs::default();
        };
        data.range(after, upto).collect()
    }

    /// Drops partition `p` entirely.
    pub fn drop_partition(&mut self, p: PartitionId) {
        if let Some(data) = self.partitions.remove(&p) {
            for (k, v) in data.iter() {
                self.keys -= 1;
                self.bytes -= (k.len() + v.len()) as u64;
                if let Some(d) = &mut self.dirty {
                    d.push((p, k.into()));
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
            let mut iter = data.range(after, upto);
            for (k, v) in iter.by_ref() {
                hash_pair(&mut hasher, k, v);
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
    pub fn partition(&self, p: PartitionId) -> Option<&Partition> {
        self.partitions.get(&p)
    }

    /// kvsh's own records in partition `p` whose keys start with `prefix`
    /// (which starts with [`crate::node::conditional::SYSTEM_PREFIX`]), in
    /// key order: one ordered lookup.
    pub fn system_prefixed<'a>(
        &'a self,
        p: PartitionId,
        prefix: &'a str,
    ) -> impl Iterator<Item = (&'a str, &'a str)> + 'a {
        self.partitions
            .get(&p)
            .into_iter()
            .flat_map(move |data| data.system_prefixed(prefix, None))
    }

    /// Keys in partition `p`.
    pub fn partition_len(&self, p: PartitionId) -> usize {
        self.partitions.get(&p).map_or(0, Partition::len)
    }

    /// Keys over all partitions.
    pub fn keys(&self) -> u64 {
        self.keys
    }

    /// Bytes of keys and values over all partitions.
    pub fn bytes(&self) -> u64 {
        self.bytes
    }

    /// A digest of partition `p`: xxh3 over its pairs in order, fed through
    /// a streaming hasher, so the partition is never copied.
    pub fn digest(&self, p: PartitionId) -> u64 {
        let mut hasher = xxhash_rust::xxh3::Xxh3::new();
        if let Some(data) = self.partitions.get(&p) {
            for (k, v) in data.iter() {
                hash_pair(&mut hasher, k, v);
            }
        }
        hasher.digest()
    }
}

/// Feeds one pair to a digest. Length prefixes keep ("ab","c") and
/// ("a","bc") apart.
fn hash_pair(hasher: &mut xxhash_rust::xxh3::Xxh3, k: &str, v: &str) {
    hasher.update(&(k.len() as u64).to_le_bytes());
    hasher.update(k.as_bytes());
    hasher.update(&(v.len() as u64).to_le_bytes());
    hasher.update(v.as_bytes());
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

    /// The keys of partition `p`, sorted by key.
    fn held(s: &Store, p: PartitionId) -> Vec<String> {
        let mut keys: Vec<String> = s
            .partition(p)
            .map(|d| d.iter().map(|(k, _)| k.to_string()).collect())
            .unwrap_or_default();
        keys.sort();
        keys
    }

    /// `keys` in the store's order.
    fn ordered<'a>(keys: &[&'a str]) -> Vec<&'a str> {
        let mut keys = keys.to_vec();
        keys.sort_by(|a, b| place(a).cmp(&place(b)));
        keys
    }

    #[test]
    fn replace_range_replaces_only_the_range() {
        let mut s = Store::new();
        let all = ordered(&["a", "b", "c", "d", "e"]);
        for k in &all {
            s.put(0, k.to_string(), "old".into());
        }
        // (all[0], all[2]] holds all[1] and all[2].
        s.replace_range(0, Some(all[0]), Some(all[2]), &pairs(&[(all[1], "new")]));
        let mut want = vec![all[0], all[1], all[3], all[4]];
        want.sort();
        assert_eq!(held(&s, 0), want);
        assert_eq!(s.get(0, all[1]), Some("new"));
        s.replace_range(0, Some(all[3]), None, &Pairs::default());
        let mut want = vec![all[0], all[1], all[3]];
        want.sort();
        assert_eq!(held(&s, 0), want);
        s.replace_range(0, None, None, &pairs(&[("z", "1")]));
        assert_eq!(s.keys(), 1);
    }

    #[test]
    fn pages_walk_the_partition() {
        let mut s = Store::new();
        let names: Vec<String> = (0..10).map(|i| format!("k{i}")).collect();
        let all = ordered(&names.iter().map(String::as_str).collect::<Vec<_>>());
        for k in &all {
            s.put(0, k.to_string(), "v".into());
        }
        let (p1, last) = s.pack_page(0, None, 4);
        let keys: Vec<_> = p1.iter().map(|(k, _)| k).collect();
        assert_eq!(keys, all[..4]);
        assert_eq!(last.as_deref(), Some(all[3]), "more follow");
        let (p2, last) = s.pack_page(0, last.as_deref(), 10);
        assert_eq!(p2.len(), 6);
        assert_eq!(last, None, "the last page");
        assert_eq!(
            s.pack_range(0, Some(all[3]), Some(all[5])),
            pairs(&[(all[4], "v"), (all[5], "v")])
        );
    }

    /// Client pages read only the prefix's keys, and stop at the byte
    /// bound, with at least one pair per page.
    #[test]
    fn matching_pages_find_the_prefix_and_bound_bytes() {
        let mut s = Store::new();
        for k in ["a1", "b1", "b2", "b3", "c1"] {
            s.put(0, k.into(), "v".repeat(10));
        }
        let keys = |page: &[(String, String)]| {
            let mut keys = page.iter().map(|(k, _)| k.clone()).collect::<Vec<_>>();
            keys.sort();
            keys
        };
        let first = s.page_matching(0, None, Some("b"), 2, usize::MAX);
        assert_eq!(first.pairs.len(), 2);
        let rest = s.page_matching(0, first.next.as_deref(), Some("b"), 10, usize::MAX);
        let mut both = [first.pairs, rest.pairs].concat();
        both.sort();
        assert_eq!(keys(&both), ["b1", "b2", "b3"]);
        // 12 bytes a pair: a 25-byte bound stops after the third.
        let page = s.page_matching(0, None, None, 10, 25);
        assert_eq!((page.pairs.len(), page.next.is_some()), (3, true));
        let page = s.page_matching(0, None, None, 10, 1);
        assert_eq!(page.pairs.len(), 1, "a page always holds one pair");
    }

    /// A prefix that matches nothing reads at most [`MAX_EXAMINED`] pairs
    /// a page, and its pages still cover the whole partition.
    #[test]
    fn matching_pages_are_bounded_when_little_matches() {
        let mut s = Store::new();
        for i in 0..(MAX_EXAMINED * 2 + 10) {
            s.put(0, format!("k{i}"), "v".into());
        }
        s.put(0, "zz".into(), "v".into());
        let mut after: Option<String> = None;
        let mut found = Vec::new();
        let mut pages = 0;
        loop {
            let page = s.page_matching(0, after.as_deref(), Some("zz"), 10, usize::MAX);
            assert!(page.examined <= MAX_EXAMINED + 1);
            found.extend(page.pairs);
            pages += 1;
            match page.next {
                Some(n) => after = Some(n),
                None => break,
            }
        }
        assert_eq!(found, [("zz".to_string(), "v".to_string())]);
        assert!((2..=4).contains(&pages), "{pages} pages");
    }

    /// kvsh's own records come first, in key order, and a prefix of them is
    /// found without reading the rest.
    #[test]
    fn system_records_come_first_in_key_order() {
        let mut s = Store::new();
        s.put(0, "user".into(), "v".into());
        for k in ["\0kvsh:lock:b", "\0kvsh:intent:x", "\0kvsh:lock:a"] {
            s.put(0, k.into(), "r".into());
        }
        let order: Vec<_> = s.partition(0).unwrap().iter().map(|(k, _)| k).collect();
        assert_eq!(
            order,
            ["\0kvsh:intent:x", "\0kvsh:lock:a", "\0kvsh:lock:b", "user"]
        );
        let locks: Vec<_> = s
            .system_prefixed(0, "\0kvsh:lock:")
            .map(|(k, _)| k)
            .collect();
        assert_eq!(locks, ["\0kvsh:lock:a", "\0kvsh:lock:b"]);
        let page = s.page_matching(0, Some("\0kvsh:lock:a"), Some("\0kvsh:lock:"), 10, 100);
        assert_eq!(page.pairs, [("\0kvsh:lock:b".to_string(), "r".to_string())]);
        // A client's page never stops on (or returns) one of kvsh's records.
        let page = s.page_matching(0, None, None, 10, 100);
        assert_eq!(page.pairs, [("user".to_string(), "v".to_string())]);
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
            None,
            None,
            &pairs(&[("c", "old"), ("d", "new"), ("f", "x")]),
        );
        let mut dirty = keys(s.take_dirty());
        dirty.sort();
        assert_eq!(dirty, ["b", "d", "e", "f"]);
        assert_eq!(held(&s, 0), ["c", "d", "f"]);
        s.drop_partition(0);
        assert_eq!(s.dirty_len(), 3);
    }

    /// Range digests cut the partition in ranges of `limit` keys, and the
    /// same range hashes the same on a store with the same pairs there,
    /// whatever it holds elsewhere.
    #[test]
    fn range_digests_compare_ranges() {
        let mut a = Store::new();
        let mut b = Store::new();
        let names: Vec<String> = (0..10).map(|i| format!("k{i}")).collect();
        let all = ordered(&names.iter().map(String::as_str).collect::<Vec<_>>());
        for k in &all {
            a.put(0, k.to_string(), "v".into());
            b.put(0, k.to_string(), "v".into());
        }
        // A key of b's alone, in the last range.
        let extra = (0..)
            .map(|i| format!("x{i}"))
            .find(|x| place(x) > place(all[7]))
            .unwrap();
        b.put(0, extra, "extra".into());
        let (d1, n1, upto) = a.range_digest(0, None, None, 4);
        assert_eq!((n1, upto.as_deref()), (4, Some(all[3])));
        assert_eq!(b.range_digest(0, None, upto.as_deref(), usize::MAX).0, d1);
        let (_, n2, upto2) = a.range_digest(0, upto.as_deref(), None, 4);
        assert_eq!((n2, upto2.as_deref()), (4, Some(all[7])));
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
