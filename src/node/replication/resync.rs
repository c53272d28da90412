//! The resync that starts every replication stream: chunks that together
//! replace the whole partition on the secondary, or, for a secondary that
//! already holds it (in sync under the last primary, or a durable node's
//! reloaded copy), digests and the chunks of the ranges whose digests
//! differ; bounded per stream by a window and per node by a shared
//! [`ChunkBudget`].

use super::StreamConfig;
use crate::node::message::{KeyRange, StreamEntry};
use crate::node::store::Store;
use crate::view::PartitionId;

/// The resync chunks and digests one node may have in flight over all its
/// streams at once: the slots of one shared count, taken by each chunk
/// ([`CHUNK_SLOTS`]) or digest (one) a [`Leader`](super::Leader) sends in
/// its resync and given back when it is acknowledged or its stream ends.
///
/// Without it, a node that became the primary of many partitions' new
/// replicas at once (a fifth node joining four that hold a million keys:
/// 424 streams) cut and sent a chunk for every one of them in a single pass
/// of its thread, and the new node took them all in in one pass of its own:
/// both were silent for longer than the failure timeout, and the view
/// leader declared them dead, again and again (docs/performance.md,
/// "Rebalance"). Each stream still keeps its own window; this bounds their
/// sum, so a pass of the sender does a bounded amount of copying, and the
/// receiver's inflow is bounded by its senders' budgets.
#[derive(Clone, Debug)]
pub struct ChunkBudget(std::sync::Arc<std::sync::atomic::AtomicUsize>);

/// Resync chunks a node has in flight at most, over all its streams (with
/// 2,000-key chunks of 100-byte values, about 7 MB).
pub const NODE_CHUNKS_IN_FLIGHT: usize = 32;

/// The slots of a [`ChunkBudget`] a chunk takes; a digest takes one. A
/// digest of 128 keys only hashes them, at each end, where a chunk of up
/// to 2,000 copies them into a message and into the secondary's store; so
/// the node's budget allows 16 digests for each chunk it allows. Without
/// the weight, a primary of many in-sync secondaries (a fifth node that
/// has just taken over 204 partitions, with 408 streams of about 5
/// digests each) would send its digests 32 at a time.
pub const CHUNK_SLOTS: usize = 16;

/// The slots of a node's [`ChunkBudget`].
pub const NODE_RESYNC_SLOTS: usize = NODE_CHUNKS_IN_FLIGHT * CHUNK_SLOTS;

impl ChunkBudget {
    /// A budget of `slots`.
    pub fn new(slots: usize) -> Self {
        ChunkBudget(std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(
            slots,
        )))
    }

    /// Takes `n` slots if that many are free.
    fn take(&self, n: usize) -> bool {
        use std::sync::atomic::Ordering::Relaxed;
        self.0
            .fetch_update(Relaxed, Relaxed, |free| free.checked_sub(n))
            .is_ok()
    }

    /// Gives back `n` slots.
    fn give(&self, n: usize) {
        self.0.fetch_add(n, std::sync::atomic::Ordering::Relaxed);
    }

    /// Slots free now.
    pub fn free(&self) -> usize {
        self.0.load(std::sync::atomic::Ordering::Relaxed)
    }
}

impl Default for ChunkBudget {
    /// No practical limit: a leader on its own, as in unit tests.
    fn default() -> Self {
        ChunkBudget::new(usize::MAX / 2)
    }
}

#[derive(Debug)]
pub(super) struct Resync {
    cursor: Option<String>,
    pub(super) sent_last: bool,
    /// Digests first: the secondary holds the partition already (a
    /// replica in sync under the last primary, or a durable node).
    digests: bool,
    /// The chunks and digests sent and not yet acknowledged, in the order
    /// sent (which is the order they are acknowledged in): the budget
    /// slots each holds, none for a chunk the secondary asked for.
    inflight: std::collections::VecDeque<usize>,
    /// Slots of the node's [`ChunkBudget`] this resync holds, given back
    /// as its chunks are acknowledged, and all at once when it is dropped
    /// (done, or its stream replaced or gone).
    held: usize,
    budget: ChunkBudget,
    /// Keys sent in chunks.
    pub(super) keys: u64,
    /// Catch-up: the ranges the secondary asked for, each sent once.
    requested: std::collections::BTreeSet<KeyRange>,
    /// Catch-up: the ranges digests were sent for, the only ones a
    /// secondary may ask for (so one resync copies a partition once at
    /// most, whatever a peer asks).
    digested: std::collections::BTreeSet<KeyRange>,
}

impl Drop for Resync {
    fn drop(&mut self) {
        self.budget.give(self.held);
    }
}

impl Resync {
    /// A resync from the start of the partition, by digests or by chunks,
    /// taking its slots from `budget`.
    pub(super) fn new(budget: ChunkBudget, digests: bool) -> Self {
        Resync {
            cursor: None,
            sent_last: false,
            digests,
            inflight: Default::default(),
            held: 0,
            budget,
            keys: 0,
            requested: Default::default(),
            digested: Default::default(),
        }
    }

    /// The next chunk or digest to send, if there is one and the stream's
    /// window and the node's budget allow it.
    pub(super) fn next_entry(
        &mut self,
        p: PartitionId,
        store: &Store,
        cfg: &StreamConfig,
    ) -> Option<StreamEntry> {
        // Digests are small: many more of them fly at once.
        let (window, slots) = if self.digests {
            (cfg.chunk_window * 16, 1)
        } else {
            (cfg.chunk_window, CHUNK_SLOTS)
        };
        if self.sent_last || self.inflight.len() >= window || !self.budget.take(slots) {
            return None;
        }
        self.held += slots;
        self.inflight.push_back(slots);
        if self.digests {
            let (digest, _, upto) =
                store.range_digest(p, self.cursor.as_deref(), None, cfg.digest_keys);
            let entry = StreamEntry::Digest {
                after: self.cursor.clone(),
                upto: upto.clone(),
                digest,
            };
            self.digested.insert((self.cursor.clone(), upto.clone()));
            self.cursor.clone_from(&upto);
            self.sent_last = upto.is_none();
            return Some(entry);
        }
        let (page, upto) = store.pack_page(p, self.cursor.as_deref(), cfg.chunk_keys);
        let after = self.cursor.clone();
        self.keys += page.len() as u64;
        self.cursor.clone_from(&upto);
        self.sent_last = upto.is_none();
        Some(StreamEntry::Chunk {
            after,
            upto,
            entries: page,
        })
    }

    /// The chunk for a catch-up range whose digest did not match on the
    /// secondary: what this primary holds there now, once per range, and
    /// only for ranges a digest was sent for.
    pub(super) fn requested_chunk(
        &mut self,
        p: PartitionId,
        range: KeyRange,
        store: &Store,
    ) -> Option<StreamEntry> {
        if self.requested.contains(&range) || !self.digested.contains(&range) {
            return None;
        }
        let entries = store.pack_range(p, range.0.as_deref(), range.1.as_deref());
        self.keys += entries.len() as u64;
        self.inflight.push_back(0);
        self.requested.insert(range.clone());
        Some(StreamEntry::Chunk {
            after: range.0,
            upto: range.1,
            entries,
        })
    }

    /// The oldest chunk or digest in flight was acknowledged: its budget
    /// slots go back.
    pub(super) fn acked(&mut self) {
        let slots = self.inflight.pop_front().unwrap_or(0).min(self.held);
        self.held -= slots;
        self.budget.give(slots);
    }

    /// Everything is sent and acknowledged.
    pub(super) fn finished(&self) -> bool {
        self.sent_last && self.inflight.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::node::message::Message;
    use crate::node::replication::Leader;
    use crate::view::NodeId;

    /// The node's budget bounds the resync chunks in flight over all its
    /// leaders' streams, and a leader that goes (its partition moved away)
    /// gives back every slot it held.
    #[test]
    fn resync_chunks_share_one_budget_and_a_dropped_leader_gives_its_slots_back() {
        let view = crate::node::replication::test_view(2, 1, [false, false]);
        let cfg = StreamConfig {
            chunk_keys: 10,
            chunk_window: 4,
            digests: false,
            ..crate::node::NodeConfig::default().stream
        };
        let mut store = Store::new();
        for p in 0..2 {
            for k in 0..100 {
                store.put(p, format!("k{k:03}"), "v".into());
            }
        }
        let budget = ChunkBudget::new(5 * CHUNK_SLOTS);
        let mut out = Vec::new();
        let mut first = Leader::new(0, 1, cfg).with_budget(budget.clone());
        first.reconcile(&view, &store, 0, &mut out);
        let mut second = Leader::new(1, 1, cfg).with_budget(budget.clone());
        second.reconcile(&view, &store, 0, &mut out);
        let chunks = |out: &[(NodeId, Message)]| {
            out.iter()
                .filter(|(_, m)| format!("{m:?}").contains("Chunk"))
                .count()
        };
        // Four streams want 4 chunks each; the node may have 5 in flight.
        assert_eq!(chunks(&out), 5, "{out:?}");
        assert_eq!(budget.free(), 0);
        second.tick(&store, 1, &mut out);
        assert_eq!(chunks(&out), 5, "no slot, no more chunks");
        // The first leader took every slot (its streams come first).
        drop(first);
        assert_eq!(
            budget.free(),
            5 * CHUNK_SLOTS,
            "a dropped leader gives back what it held"
        );
        out.clear();
        second.tick(&store, 2, &mut out);
        assert_eq!(chunks(&out), 5, "the freed slots carry the second's chunks");
        assert_eq!(budget.free(), 0);
    }
}
