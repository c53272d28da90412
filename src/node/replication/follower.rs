//! The secondary's side of replication: a [`Follower`] applies one
//! stream's entries in sequence order, buffers early ones, and judges
//! catch-up digests against its own store.

use super::apply;
use crate::node::message::{KeyRange, StreamEntry, StreamId};
use crate::node::store::Store;
use crate::view::PartitionId;
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
