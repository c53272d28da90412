//! The secondary's side of replication: a [`Follower`] applies one
//! stream's entries in sequence order, buffers early ones, and judges
//! catch-up digests against its own store.

use super::apply;
use crate::node::message::{KeyRange, StreamEntry, StreamId};
use crate::node::store::Store;
use crate::view::{Epoch, NodeId, PartitionId, Time};
use std::collections::BTreeMap;

/// Entries a secondary buffers ahead of a gap before it drops them.
const MAX_BUFFERED: usize = 4096;

/// A secondary's state for one partition's stream.
#[derive(Debug)]
pub struct Follower {
    /// The stream being followed.
    pub stream: StreamId,
    expected: u64,
    buffer: BTreeMap<u64, StreamEntry>,
    /// Catch-up ranges whose digest did not match and whose chunk has not
    /// come yet: sent with every acknowledgement.
    pub need: Vec<KeyRange>,
}

impl Follower {
    /// A follower at the start of a stream.
    pub fn new(stream: StreamId) -> Self {
        Follower {
            stream,
            expected: 1,
            buffer: BTreeMap::new(),
            need: Vec::new(),
        }
    }

    /// Applies an entry if it is the next one (and any buffered ones after
    /// it), buffers it if it is early. Returns the sequence number to
    /// acknowledge: the highest applied.
    pub fn on_entry(
        &mut self,
        p: PartitionId,
        seq: u64,
        entry: StreamEntry,
        store: &mut Store,
    ) -> u64 {
        if seq > self.expected {
            if self.buffer.len() < MAX_BUFFERED {
                self.buffer.insert(seq, entry);
            }
        } else if seq == self.expected {
            self.apply(p, entry, store);
            self.expected += 1;
            while let Some(e) = self.buffer.remove(&self.expected) {
                self.apply(p, e, store);
                self.expected += 1;
            }
        }
        self.expected - 1
    }

    fn apply(&mut self, p: PartitionId, entry: StreamEntry, store: &mut Store) {
        match entry {
            StreamEntry::Digest {
                after,
                upto,
                digest,
            } => {
                let (mine, _, _) =
                    store.range_digest(p, after.as_deref(), upto.as_deref(), usize::MAX);
                if mine != digest {
                    self.need.push((after, upto));
                }
            }
            StreamEntry::Chunk {
                ref after,
                ref upto,
                ..
            } if !self.need.is_empty() => {
                let range = (after.clone(), upto.clone());
                self.need.retain(|r| *r != range);
                apply(p, entry, store);
            }
            entry => apply(p, entry, store),
        }
    }
}

/// Stream entries that came from a primary with a newer view than this
/// node's, for a stream this node's view does not know yet: kept until the
/// node adopts that view, then handled as if they came just then.
///
/// The view leader sends a new view to every node at once, but a primary
/// that adopts it first starts its new streams at once: a joining node's
/// first chunks (from four primaries, 128 of them) arrived before the node
/// had adopted the view that made it their secondary, were dropped, and
/// waited for the 200 ms retransmit, which was a fifth of the whole join
/// (docs/performance.md, "Rebalance"). Bounded in entries and bytes, and
/// in time: what does not fit is dropped as before, and retransmitted, and
/// what waits longer than [`EARLY_TTL`] for its view (a node cut off from
/// the view leader) is dropped at the node's next heartbeat.
#[derive(Debug, Default)]
pub struct EarlyEntries {
    /// The entries, each with the time it came.
    held: Vec<(EarlyEntry, Time)>,
    bytes: usize,
}

/// How long an early entry waits for its view at most.
pub const EARLY_TTL: Time = 1_000;

/// One early entry: the sender's epoch, the primary, the partition, the
/// stream, the sequence number, and the entry.
pub type EarlyEntry = (Epoch, NodeId, PartitionId, StreamId, u64, StreamEntry);

/// Early entries kept at most.
const MAX_EARLY: usize = 1024;

/// Bytes of early entries kept at most (a chunk counts its packed pairs):
/// a join's first round of chunks from four primaries of 1M keys is about
/// 9 MB, and one process may run 64 nodes, each with its own.
const MAX_EARLY_BYTES: usize = 16 << 20;

impl EarlyEntries {
    /// Keeps an entry that came at `now`, if there is room.
    pub fn keep(&mut self, e: EarlyEntry, now: Time) {
        let size = entry_bytes(&e.5);
        if self.held.len() < MAX_EARLY && self.bytes + size <= MAX_EARLY_BYTES {
            self.bytes += size;
            self.held.push((e, now));
        }
    }

    /// The entries sent at `epoch` or before, in the order they came.
    pub fn take_upto(&mut self, epoch: Epoch) -> Vec<EarlyEntry> {
        self.take(|(e, _)| e.0 <= epoch)
            .into_iter()
            .map(|(e, _)| e)
            .collect()
    }

    /// Drops the entries that came more than [`EARLY_TTL`] before `now`.
    pub fn expire(&mut self, now: Time) {
        self.take(|(_, at)| now >= at + EARLY_TTL);
    }

    /// Takes out the entries `due` picks.
    fn take(&mut self, due: impl Fn(&(EarlyEntry, Time)) -> bool) -> Vec<(EarlyEntry, Time)> {
        if self.held.is_empty() {
            return Vec::new();
        }
        let (taken, kept): (Vec<_>, Vec<_>) =
            std::mem::take(&mut self.held).into_iter().partition(due);
        self.held = kept;
        self.bytes = self.held.iter().map(|(e, _)| entry_bytes(&e.5)).sum();
        taken
    }

    /// Entries kept.
    pub fn len(&self) -> usize {
        self.held.len()
    }

    /// True if none are kept.
    pub fn is_empty(&self) -> bool {
        self.held.is_empty()
    }
}

/// About what an entry holds in memory.
fn entry_bytes(e: &StreamEntry) -> usize {
    64 + match e {
        StreamEntry::Put { key, value } => key.len() + value.len(),
        StreamEntry::Delete { key } => key.len(),
        StreamEntry::Chunk { entries, .. } => entries.packed_len(),
        StreamEntry::Digest { .. } => 0,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Early entries come back once their epoch is reached, in order, and
    /// the store of them is bounded.
    #[test]
    fn early_entries_wait_for_their_view_and_are_bounded() {
        let stream = StreamId {
            term: 1,
            incarnation: 1,
            since: 1,
        };
        let put = |k: &str| StreamEntry::Put {
            key: k.into(),
            value: "v".into(),
        };
        let mut early = EarlyEntries::default();
        early.keep((3, 1, 0, stream, 1, put("a")), 0);
        early.keep((4, 1, 0, stream, 2, put("b")), 0);
        early.keep((3, 1, 0, stream, 3, put("c")), 0);
        let due: Vec<u64> = early.take_upto(3).iter().map(|e| e.4).collect();
        assert_eq!(due, [1, 3]);
        assert_eq!(early.len(), 1, "the epoch-4 entry waits");
        assert_eq!(early.take_upto(4).len(), 1);
        assert!(early.is_empty());
        for i in 0..MAX_EARLY + 10 {
            early.keep((9, 1, 0, stream, i as u64, put("k")), i as Time);
        }
        assert_eq!(early.len(), MAX_EARLY);
        early.expire(EARLY_TTL + 9);
        assert_eq!(early.len(), MAX_EARLY - 10, "the first ten waited too long");
        let big: crate::node::pairs::Pairs = [("k", "v".repeat(MAX_EARLY_BYTES / 2))]
            .into_iter()
            .collect();
        let chunk = || StreamEntry::Chunk {
            after: None,
            upto: None,
            entries: big.clone(),
        };
        let mut early = EarlyEntries::default();
        for seq in 0..3 {
            early.keep((9, 1, 0, stream, seq, chunk()), 0);
        }
        assert_eq!(
            early.len(),
            1,
            "a second half of the byte bound does not fit"
        );
    }
}
