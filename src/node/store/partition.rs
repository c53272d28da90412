//! One partition's pairs, packed: every pair is one record in an arena
//! ([`super::arena`]), found through an ordered index of 64-bit key hashes.
//!
//! A pair costs its key and value, a length byte each (for keys and
//! values under 64 bytes; two up to 4 KiB) and 12 bytes in a B-tree node
//! (an 8-byte hash, a 4-byte offset), where a key-ordered
//! `BTreeMap<CompactString, Box<str>>` cost a 40-byte slot and a heap
//! block for the value, with its allocator header and rounding
//! (docs/performance.md, "Memory per key"). Keys arrive in hash order
//! whatever order clients write them in, so the index's nodes fill as they
//! do under random insertion (about 69%), not the 55% that ascending keys
//! left in the key-ordered tree.
//!
//! **The order.** A partition's pairs are ordered by [`Place`]: kvsh's own
//! records (keys under [`SYSTEM_PREFIX`]) first, in key order, so that a
//! probe for intents or locks is one ordered lookup; then every other key
//! by its hash, and by the key itself among keys of one hash. A key's place
//! depends on nothing but the key, so every replica walks the same ranges
//! in the same order, whatever else it holds. Resync chunks and digests
//! name ranges in this order; a client's pages come in it too (each page is
//! sorted by key before it is sent). A range that starts inside a side map
//! (below) seeks its start there, so keys crafted to share a hash cost a
//! lookup each, not a walk of them all.
//!
//! **Collisions** (two keys of one 64-bit hash in one partition), pairs
//! too big for the arena's segments ([`super::arena::MAX_RECORD`], 4 KiB)
//! and pairs that no longer fit a full arena (4 GiB) go to a key-ordered
//! side map under their hash, marked in the index; they keep their place.
//! Unit tests use a 10-bit hash and a small arena, so that the side maps
//! are exercised everywhere.
//!
//! **Garbage.** A value overwritten by one of the same length is written in
//! place; any other overwrite or delete leaves its old record dead in the
//! arena, and the arena is compacted when a quarter of it is dead.

use super::arena::Arena;
use crate::node::conditional::SYSTEM_PREFIX;
use compact_str::CompactString;
use std::collections::btree_map::{self, BTreeMap, Entry};
use std::ops::Bound;

/// Where a key sits in its partition's order (see the module's docs).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Place<'a> {
    /// One of kvsh's own records: first, in key order.
    System(&'a str),
    /// Any other key: by its hash, then by the key.
    Hashed(u64, &'a str),
}

/// The place of `key`.
pub fn place(key: &str) -> Place<'_> {
    if key.starts_with(SYSTEM_PREFIX) {
        Place::System(key)
    } else {
        Place::Hashed(order_hash(key), key)
    }
}

/// The hash that orders keys: xxh3 with a seed of its own, so that it is
/// independent of the hash that chose the partition. Unit tests keep 10
/// bits of it, so that collisions are common.
fn order_hash(key: &str) -> u64 {
    const SEED: u64 = 0x6b76_7368_5f6f_7264; // "kvsh_ord"
    let h = xxhash_rust::xxh3::xxh3_64_with_seed(key.as_bytes(), SEED);
    if cfg!(test) {
        h & 0x3ff
    } else {
        h
    }
}

/// The index's mark for a hash whose pairs are in the side map.
const SIDE: u32 = u32::MAX;

/// A side map's pairs, in key order.
type Side = BTreeMap<CompactString, Box<str>>;

/// The pairs of one partition.
#[derive(Debug, Default)]
pub struct Partition {
    /// Keys under [`SYSTEM_PREFIX`], in key order.
    system: Side,
    /// Hash → offset of the key's record in `arena`, or [`SIDE`].
    index: BTreeMap<u64, u32>,
    /// The records of the pairs the index points to.
    arena: Arena,
    /// The pairs of hashes marked [`SIDE`].
    side: BTreeMap<u64, Side>,
    len: usize,
}

impl Partition {
    /// Pairs held.
    pub fn len(&self) -> usize {
        self.len
    }

    /// True if no pair is held.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The value at `key`.
    pub fn get(&self, key: &str) -> Option<&str> {
        match place(key) {
            Place::System(k) => self.system.get(k).map(|v| &**v),
            Place::Hashed(h, k) => match *self.index.get(&h)? {
                SIDE => self.side.get(&h)?.get(k).map(|v| &**v),
                off => {
                    let (rk, rv, _) = self.arena.record(off);
                    (rk == k).then_some(rv)
                }
            },
        }
    }

    /// Sets `key` to `value`, returning the old value.
    pub fn insert(&mut self, key: &str, value: &str) -> Option<String> {
        let (h, key) = match place(key) {
            Place::System(k) => {
                let old = self.system.insert(k.into(), value.into());
                self.len += usize::from(old.is_none());
                return old.map(String::from);
            }
            Place::Hashed(h, k) => (h, k),
        };
        let old = match self.index.entry(h) {
            Entry::Vacant(e) => {
                match self.arena.append(key, value) {
                    Some(off) => {
                        e.insert(off);
                    }
                    None => {
                        e.insert(SIDE);
                        self.side
                            .entry(h)
                            .or_default()
                            .insert(key.into(), value.into());
                    }
                }
                None
            }
            Entry::Occupied(mut e) => match *e.get() {
                SIDE => self
                    .side
                    .entry(h)
                    .or_default()
                    .insert(key.into(), value.into())
                    .map(String::from),
                off => {
                    let (rk, rv, size) = self.arena.record(off);
                    if rk == key {
                        let old = rv.to_string();
                        if rv.len() == value.len() {
                            self.arena.overwrite(off, size, value);
                        } else {
                            self.arena.kill(size);
                            match self.arena.append(key, value) {
                                Some(new) => *e.get_mut() = new,
                                None => {
                                    *e.get_mut() = SIDE;
                                    self.side
                                        .entry(h)
                                        .or_default()
                                        .insert(key.into(), value.into());
                                }
                            }
                        }
                        Some(old)
                    } else {
                        // A second key of this hash: both go to the side.
                        let side = self.side.entry(h).or_default();
                        side.insert(rk.into(), rv.into());
                        side.insert(key.into(), value.into());
                        self.arena.kill(size);
                        *e.get_mut() = SIDE;
                        None
                    }
                }
            },
        };
        self.len += usize::from(old.is_none());
        self.maybe_compact();
        old
    }

    /// Removes `key`, returning its value.
    pub fn remove(&mut self, key: &str) -> Option<String> {
        let old = match place(key) {
            Place::System(k) => self.system.remove(k).map(String::from),
            Place::Hashed(h, k) => match *self.index.get(&h)? {
                SIDE => {
                    let side = self.side.get_mut(&h)?;
                    let old = side.remove(k).map(String::from);
                    if side.is_empty() {
                        self.side.remove(&h);
                        self.index.remove(&h);
                    }
                    old
                }
                off => {
                    let (rk, rv, size) = self.arena.record(off);
                    if rk != k {
                        return None;
                    }
                    let old = rv.to_string();
                    self.index.remove(&h);
                    self.arena.kill(size);
                    Some(old)
                }
            },
        };
        if old.is_some() {
            self.len -= 1;
            self.maybe_compact();
        }
        old
    }

    /// The pairs in `(after, upto]` (either bound open when `None`), in
    /// order.
    pub fn range<'a>(&'a self, after: Option<&'a str>, upto: Option<&'a str>) -> Iter<'a> {
        let after = after.map(place);
        let system = match after {
            None => Some(self.system.range::<str, _>(..)),
            Some(Place::System(a)) => Some(
                self.system
                    .range::<str, _>((Bound::Excluded(a), Bound::Unbounded)),
            ),
            Some(Place::Hashed(..)) => None,
        };
        let index = match after {
            Some(Place::Hashed(h, _)) => self.index.range(h..),
            _ => self.index.range(..),
        };
        Iter {
            part: self,
            system,
            index,
            side: None,
            after,
            upto: upto.map(place),
            done: false,
        }
    }

    /// The pairs after `after` that are not kvsh's own records, in order.
    pub fn users_after<'a>(&'a self, after: Option<&'a str>) -> Iter<'a> {
        let mut iter = self.range(after, None);
        iter.system = None;
        iter
    }

    /// Every pair, in order.
    pub fn iter(&self) -> Iter<'_> {
        self.range(None, None)
    }

    /// kvsh's own records whose keys start with `prefix` (which starts
    /// with [`SYSTEM_PREFIX`]), after `after` if given, in key order: one
    /// ordered lookup.
    pub fn system_prefixed<'a>(
        &'a self,
        prefix: &'a str,
        after: Option<&'a str>,
    ) -> impl Iterator<Item = (&'a str, &'a str)> + 'a {
        let lower = match after {
            Some(a) if a >= prefix => Bound::Excluded(a),
            _ => Bound::Included(prefix),
        };
        self.system
            .range::<str, _>((lower, Bound::Unbounded))
            .take_while(move |(k, _)| k.starts_with(prefix))
            .map(|(k, v)| (k.as_str(), &**v))
    }

    /// Compacts the arena once a quarter of it is dead: the live records
    /// are copied, in order, to a fresh arena.
    fn maybe_compact(&mut self) {
        if self.len == 0 {
            self.arena = Arena::default();
            return;
        }
        if !self.arena.wants_compaction() {
            return;
        }
        let old = std::mem::take(&mut self.arena);
        for (h, off) in self.index.iter_mut() {
            if *off == SIDE {
                continue;
            }
            let (k, v, _) = old.record(*off);
            match self.arena.append(k, v) {
                Some(new) => *off = new,
                None => {
                    *off = SIDE;
                    self.side.entry(*h).or_default().insert(k.into(), v.into());
                }
            }
        }
    }
}

/// The pairs of a range of a partition, in order ([`Partition::range`]).
#[derive(Debug)]
pub struct Iter<'a> {
    part: &'a Partition,
    /// The system records still to walk, if the range starts among them.
    system: Option<btree_map::Range<'a, CompactString, Box<str>>>,
    index: btree_map::Range<'a, u64, u32>,
    /// The side map of the hash being walked, from where the range starts
    /// in it.
    side: Option<(u64, btree_map::Range<'a, CompactString, Box<str>>)>,
    after: Option<Place<'a>>,
    upto: Option<Place<'a>>,
    done: bool,
}

impl<'a> Iter<'a> {
    /// The next pair at or after the start, and its place.
    fn step(&mut self) -> Option<(Place<'a>, &'a str, &'a str)> {
        if let Some(system) = &mut self.system {
            if let Some((k, v)) = system.next() {
                return Some((Place::System(k.as_str()), k.as_str(), &**v));
            }
            self.system = None;
        }
        loop {
            if let Some((h, side)) = &mut self.side {
                if let Some((k, v)) = side.next() {
                    return Some((Place::Hashed(*h, k.as_str()), k.as_str(), &**v));
                }
                self.side = None;
            }
            let (&h, &off) = self.index.next()?;
            if off == SIDE {
                let side = self.part.side.get(&h)?;
                // Seek the start in the side map rather than skip to it:
                // keys crafted to share a hash must not make every
                // resumed range walk them all.
                let lower = match self.after {
                    Some(Place::Hashed(ah, a)) if ah == h => Bound::Excluded(a),
                    _ => Bound::Unbounded,
                };
                self.side = Some((h, side.range::<str, _>((lower, Bound::Unbounded))));
                continue;
            }
            let (k, v, _) = self.part.arena.record(off);
            return Some((Place::Hashed(h, k), k, v));
        }
    }
}

impl<'a> Iterator for Iter<'a> {
    type Item = (&'a str, &'a str);

    fn next(&mut self) -> Option<Self::Item> {
        while !self.done {
            let Some((at, k, v)) = self.step() else {
                self.done = true;
                break;
            };
            // Only the first hash's pairs can fall at or before the start.
            if let Some(a) = self.after {
                if at <= a {
                    continue;
                }
                self.after = None;
            }
            if self.upto.is_some_and(|u| at > u) {
                self.done = true;
                break;
            }
            return Some((k, v));
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// The partition against a `BTreeMap` ordered by place.
    #[derive(Debug, Clone)]
    enum Op {
        Put(String, String),
        Delete(String),
    }

    fn key() -> impl Strategy<Value = String> {
        prop_oneof![
            8 => "[a-e]{1,3}",
            1 => "\0kvsh:[a-c]{0,2}",
            1 => "[a-z0-9]{20,40}",
            1 => "\\PC{1,6}",
        ]
    }

    fn op() -> impl Strategy<Value = Op> {
        prop_oneof![
            3 => (key(), "[a-z]{0,12}|x{150,200}|\\PC{0,30}").prop_map(|(k, v)| Op::Put(k, v)),
            1 => key().prop_map(Op::Delete),
        ]
    }

    fn model_range<'a>(
        m: &'a BTreeMap<String, String>,
        after: Option<&str>,
        upto: Option<&str>,
    ) -> Vec<(&'a str, &'a str)> {
        let mut all: Vec<_> = m.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
        all.sort_by(|a, b| place(a.0).cmp(&place(b.0)));
        all.retain(|(k, _)| {
            after.is_none_or(|a| place(k) > place(a)) && upto.is_none_or(|u| place(k) <= place(u))
        });
        all
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(300))]
        #[test]
        fn a_partition_holds_what_a_map_does(
            ops in proptest::collection::vec(op(), 0..400),
            bounds in proptest::collection::vec((proptest::option::of(key()), proptest::option::of(key())), 4),
        ) {
            let mut part = Partition::default();
            let mut model = BTreeMap::new();
            for op in ops {
                match op {
                    Op::Put(k, v) => {
                        prop_assert_eq!(part.insert(&k, &v), model.insert(k, v));
                    }
                    Op::Delete(k) => {
                        prop_assert_eq!(part.remove(&k), model.remove(&k));
                    }
                }
                prop_assert_eq!(part.len(), model.len());
            }
            for (k, v) in &model {
                prop_assert_eq!(part.get(k), Some(v.as_str()));
            }
            prop_assert_eq!(part.iter().collect::<Vec<_>>(), model_range(&model, None, None));
            for (after, upto) in &bounds {
                prop_assert_eq!(
                    part.range(after.as_deref(), upto.as_deref()).collect::<Vec<_>>(),
                    model_range(&model, after.as_deref(), upto.as_deref())
                );
            }
        }
    }

    /// Overwrites and deletes leave dead records; the arena is compacted
    /// and every pair survives it.
    #[test]
    fn the_arena_is_compacted_and_keeps_every_pair() {
        let mut part = Partition::default();
        for round in 0..20 {
            for i in 0..500 {
                let value = "v".repeat(1 + (i + round) % 7);
                part.insert(&format!("key{i}"), &value);
            }
        }
        assert!(!part.arena.wants_compaction(), "compacted");
        assert_eq!(part.len(), 500);
        for i in 0..500 {
            assert_eq!(
                part.get(&format!("key{i}")).map(str::len),
                Some(1 + (i + 19) % 7)
            );
        }
        for i in 0..500 {
            part.remove(&format!("key{i}"));
        }
        assert!(part.is_empty());
        assert_eq!(
            part.arena.capacity(),
            0,
            "an empty partition holds no arena"
        );
        assert_eq!(part.arena.dead(), 0);
    }

    /// A pair that no longer fits the arena goes to the side map, in its
    /// place.
    #[test]
    fn a_full_arena_sends_pairs_to_the_side() {
        let mut part = Partition::default();
        let big = "x".repeat(3000);
        for i in 0..100 {
            part.insert(&format!("k{i}"), &big);
        }
        part.insert("huge", &"y".repeat(super::super::arena::MAX_RECORD));
        assert!(!part.side.is_empty());
        assert_eq!(part.len(), 101);
        let mut keys: Vec<_> = part.iter().map(|(k, _)| place(k)).collect();
        let sorted = {
            let mut s = keys.clone();
            s.sort();
            s
        };
        assert_eq!(keys, sorted);
        keys.dedup();
        assert_eq!(keys.len(), 101);
        assert_eq!(
            part.get("huge").map(str::len),
            Some(super::super::arena::MAX_RECORD)
        );
    }
}
