//! One ordered, reliable stream from a primary to one secondary: the
//! entries in flight (retransmitted until acknowledged), the acknowledged
//! write index, and the stream's resync while it runs.

use super::replicate;
use super::resync::Resync;
use crate::node::message::{Message, StreamEntry, StreamId};
use crate::view::{NodeId, PartitionId, Time};
use std::collections::VecDeque;

/// An entry sent and not yet acknowledged.
#[derive(Debug)]
pub(super) struct Inflight {
    pub(super) seq: u64,
    pub(super) entry: StreamEntry,
    /// The write's log index; none for resync chunks and digests.
    pub(super) idx: Option<u64>,
}

/// The primary's stream to one secondary.
#[derive(Debug)]
pub(super) struct Stream {
    pub(super) id: StreamId,
    pub(super) next_seq: u64,
    pub(super) inflight: VecDeque<Inflight>,
    /// Every write with an index up to this is acknowledged.
    pub(super) acked_idx: u64,
    pub(super) acked_any: bool,
    pub(super) last_sent: Time,
    pub(super) resync: Option<Resync>,
    /// Set when the resync's last chunk is acknowledged: the keys it sent.
    pub(super) caught_up: Option<u64>,
    pub(super) last_report: Option<Time>,
    /// Commits wait for this stream: its replica is in sync in the view,
    /// or its resync has finished (so it is about to be).
    pub(super) required: bool,
    /// When the stream last made progress (or last went from idle to busy).
    pub(super) last_progress: Time,
    /// Acknowledgements in a row that acknowledged nothing new.
    pub(super) dup_acks: u32,
    /// Times the stream's entries went again early because they found no
    /// pipe to a secondary that had not acknowledged anything yet.
    pub(super) early_retries: u32,
}

impl Stream {
    /// Sends `entry` to `node` as the stream's next one and keeps it in
    /// flight until acknowledged. `idx` is the write's log index, if it is
    /// a write.
    pub(super) fn send(
        &mut self,
        node: NodeId,
        p: PartitionId,
        entry: StreamEntry,
        idx: Option<u64>,
        now: Time,
        out: &mut Vec<(NodeId, Message)>,
    ) {
        let seq = self.next_seq;
        self.next_seq += 1;
        if self.inflight.is_empty() {
            self.last_sent = now;
            self.last_progress = now;
        }
        out.push((node, replicate(p, self.id, seq, entry.clone())));
        self.inflight.push_back(Inflight { seq, entry, idx });
    }
}
