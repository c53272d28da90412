//! Primary-backup replication of one partition: the primary's [`Leader`]
//! state and the secondary's [`Follower`] state.
//!
//! The primary keeps one ordered stream per secondary ([`StreamId`]). Every
//! stream starts with a resync: chunks that together replace the whole
//! partition on the secondary. Writes are appended to every stream as they
//! arrive, interleaved with the chunks, and a write commits once every
//! secondary in the current replica set has acknowledged it. The streams are
//! reliable and ordered on their own: entries carry sequence numbers, the
//! secondary applies them contiguously and acknowledges cumulatively, and the
//! primary retransmits what is not acknowledged. So message loss or
//! reordering by the network never makes replicas diverge.
//!
//! The primary applies a write to its own store when it appends it, so a
//! chunk cut later always includes it (the chunk follows the write in the
//! stream, so the secondary sees the write, then the chunk that contains it).
//! Reads must not see uncommitted writes, though, so the primary keeps an
//! overlay with the last committed value of every key that has writes in
//! flight, and reads go through it.

use crate::error::Error;
use crate::node::conditional::SYSTEM_PREFIX;
use crate::node::message::{KeyOpResult, KeyRange, Message, RequestId, StreamEntry, StreamId};
use crate::node::store::Store;
use crate::view::{NodeId, PartitionId, Term, Time, View};
use std::collections::{BTreeMap, VecDeque};

/// Who waits for a write to commit: the coordinator that routed it (this
/// node itself when the client is connected to the primary).
#[derive(Clone, Debug, PartialEq)]
pub enum Waiter {
    /// A coordinator node that forwarded the request.
    Forward {
        /// The coordinator.
        node: NodeId,
        /// Its request id.
        request: RequestId,
    },
}

/// A write that finished, or failed, and the waiters to tell.
pub type Completion = (Vec<Waiter>, Result<KeyOpResult, Error>);

/// Tunables of a replication stream.
#[derive(Clone, Copy, Debug)]
pub struct StreamConfig {
    /// Keys per resync chunk.
    pub chunk_keys: usize,
    /// Chunks in flight per stream.
    pub chunk_window: usize,
    /// Retransmit unacknowledged entries after this long.
    pub retransmit: Time,
    /// A required stream that has acknowledged nothing for this long is
    /// reported to the leader as lagging.
    pub lag_timeout: Time,
    /// Durable nodes: a resync sends digests of `digest_keys` keys, and
    /// only the ranges whose digest differs on the secondary as chunks
    /// (docs/architecture.md, "Catching up").
    pub digests: bool,
    /// Keys per catch-up digest.
    pub digest_keys: usize,
    /// Test-only: acknowledge writes without replicating them. This breaks
    /// the durability guarantee on purpose, so tests can prove the checkers
    /// catch lost writes. Never on outside tests.
    pub skip_replication: bool,
}

#[derive(Debug)]
struct LogEntry {
    idx: u64,
    key: String,
    value: Option<String>,
    existed: bool,
    waiters: Vec<Waiter>,
    deadline: Time,
    /// The answer to give on commit, if not the plain one of a put or a
    /// delete (a conditional operation's).
    result: Option<KeyOpResult>,
    /// Writes nothing: an answer that waits for the writes before it.
    noop: bool,
}

#[derive(Debug)]
struct Overlay {
    committed: Option<String>,
    pending: usize,
}

#[derive(Debug)]
struct Inflight {
    seq: u64,
    entry: StreamEntry,
    idx: Option<u64>,
}

/// The resync chunks and digests one node may have in flight over all its
/// streams at once: the slots of one shared count, each taken by a chunk or
/// digest a [`Leader`] sends in its resync and given back when it is acknowledged or
/// its stream ends.
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

/// Resync chunks and digests a node has in flight at most, over all its
/// streams (with 2,000-key chunks of 100-byte values, about 7 MB).
pub const NODE_CHUNKS_IN_FLIGHT: usize = 32;

impl ChunkBudget {
    /// A budget of `slots`.
    pub fn new(slots: usize) -> Self {
        ChunkBudget(std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(
            slots,
        )))
    }

    /// Takes a slot if one is free.
    fn take(&self) -> bool {
        use std::sync::atomic::Ordering::Relaxed;
        self.0
            .fetch_update(Relaxed, Relaxed, |n| n.checked_sub(1))
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
struct Resync {
    cursor: Option<String>,
    sent_last: bool,
    /// Chunks and digests sent and not yet acknowledged.
    chunks_inflight: usize,
    /// Slots of the node's [`ChunkBudget`] this resync holds, given back
    /// as its chunks are acknowledged, and all at once when it is dropped
    /// (done, or its stream replaced or gone).
    held: usize,
    budget: ChunkBudget,
    /// Keys sent in chunks.
    keys: u64,
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

#[derive(Debug)]
struct Stream {
    id: StreamId,
    next_seq: u64,
    inflight: VecDeque<Inflight>,
    /// Every write with an index up to this is acknowledged.
    acked_idx: u64,
    acked_any: bool,
    last_sent: Time,
    resync: Option<Resync>,
    /// Set when the resync's last chunk is acknowledged: the keys it sent.
    caught_up: Option<u64>,
    last_report: Option<Time>,
    /// Commits wait for this stream: its replica is in sync in the view,
    /// or its resync has finished (so it is about to be).
    required: bool,
    /// When the stream last made progress (or last went from idle to busy).
    last_progress: Time,
    /// Acknowledgements in a row that acknowledged nothing new.
    dup_acks: u32,
}

/// The primary's state for one partition in one term.
#[derive(Debug)]
pub struct Leader {
    /// The partition.
    pub partition: PartitionId,
    /// The term this leader serves.
    pub term: Term,
    next_idx: u64,
    log: VecDeque<LogEntry>,
    /// Keyed with foldhash: it is looked up on every read and write, and
    /// SipHash, std's default, costs more than the lookup itself.
    overlay: foldhash::HashMap<String, Overlay>,
    streams: BTreeMap<NodeId, Stream>,
    /// True once every in-sync secondary has finished its resync in this
    /// term: then every secondary has adopted the view that made this node
    /// primary, so no old primary can still be serving reads (see
    /// docs/architecture.md, "Handoff without stale reads"), and holds
    /// everything this primary could return.
    activated: bool,
    cfg: StreamConfig,
    /// The node's budget of resync chunks in flight, shared by its leaders.
    budget: ChunkBudget,
}

impl Leader {
    /// A leader for a new term, with no streams yet.
    pub fn new(partition: PartitionId, term: Term, cfg: StreamConfig) -> Self {
        Leader {
            partition,
            term,
            next_idx: 1,
            log: VecDeque::new(),
            overlay: foldhash::HashMap::default(),
            streams: BTreeMap::new(),
            activated: false,
            cfg,
            budget: ChunkBudget::default(),
        }
    }

    /// Shares the node's budget of resync chunks in flight.
    pub fn with_budget(mut self, budget: ChunkBudget) -> Self {
        self.budget = budget;
        self
    }

    /// True if reads may be served.
    pub fn activated(&self) -> bool {
        self.activated
    }

    /// Resyncs in progress.
    pub fn syncing(&self) -> usize {
        self.streams.values().filter(|s| s.resync.is_some()).count()
    }

    /// Writes waiting to commit.
    pub fn pending_writes(&self) -> usize {
        self.log.len()
    }

    /// Brings the streams in line with the view: one per secondary. A
    /// secondary whose stream identity changed gets a new stream, which
    /// starts with a resync.
    pub fn reconcile(
        &mut self,
        view: &View,
        store: &Store,
        now: Time,
        out: &mut Vec<(NodeId, Message)>,
    ) -> Vec<Completion> {
        let Some(info) = view.partitions.get(self.partition as usize) else {
            return Vec::new();
        };
        let mut wanted = BTreeMap::new();
        for r in info.secondaries() {
            let incarnation = view.nodes.get(&r.node).map_or(0, |n| n.incarnation);
            let id = StreamId {
                term: self.term,
                incarnation,
                since: r.since,
            };
            wanted.insert(r.node, (id, r.in_sync));
        }
        self.streams
            .retain(|node, s| wanted.get(node).is_some_and(|(id, _)| *id == s.id));
        let last_idx = self.next_idx - 1;
        for (node, (id, in_sync)) in wanted {
            let partition = self.partition;
            let stream = self.streams.entry(node).or_insert_with(|| {
                tracing::debug!(partition, to = %crate::view::node_name(node), stream = ?id, "resync stream started");
                Stream {
                id,
                next_seq: 1,
                inflight: VecDeque::new(),
                acked_idx: last_idx,
                acked_any: false,
                last_sent: now,
                resync: Some(Resync {
                    cursor: None,
                    sent_last: false,
                    chunks_inflight: 0,
                    held: 0,
                    budget: self.budget.clone(),
                    keys: 0,
                    requested: Default::default(),
                    digested: Default::default(),
                }),
                caught_up: None,
                last_report: None,
                required: in_sync,
                last_progress: now,
                dup_acks: 0,
            }
            });
            stream.required |= in_sync;
        }
        self.pump(store, now, out);
        self.update_activated();
        self.commit(store)
    }

    /// Appends a write: applies it locally, sends it to every secondary, and
    /// returns the completion at once if there are no secondaries.
    #[allow(clippy::too_many_arguments)]
    pub fn write(
        &mut self,
        key: String,
        value: Option<String>,
        waiter: Waiter,
        deadline: Time,
        store: &mut Store,
        now: Time,
        out: &mut Vec<(NodeId, Message)>,
    ) -> Vec<Completion> {
        self.write_with(key, value, (vec![waiter], None), deadline, store, now, out)
    }

    /// The latest value of a key, writes in flight included: what a
    /// conditional operation decides on, since it commits after them.
    pub fn latest<'s>(&self, key: &str, store: &'s Store) -> Option<&'s str> {
        store.get(self.partition, key)
    }

    /// Appends a conditional operation's write, answered with `result` when
    /// it commits.
    #[allow(clippy::too_many_arguments)]
    pub fn write_conditional(
        &mut self,
        key: String,
        value: String,
        (waiter, result): (Waiter, KeyOpResult),
        deadline: Time,
        store: &mut Store,
        now: Time,
        out: &mut Vec<(NodeId, Message)>,
    ) -> Vec<Completion> {
        self.write_with(
            key,
            Some(value),
            (vec![waiter], Some(result)),
            deadline,
            store,
            now,
            out,
        )
    }

    /// Appends the resolution of an `MPUT` intent: the prepared value
    /// (`Some`, on commit), then the removal of the intent record `record`,
    /// answered when the removal commits. Writes commit in log order, so
    /// by then both have, and readers (refused while the intent is
    /// committed) never see the key between the two.
    #[allow(clippy::too_many_arguments)]
    pub fn resolve_intent(
        &mut self,
        (key, value): (String, Option<String>),
        record: String,
        waiter: Waiter,
        deadline: Time,
        store: &mut Store,
        now: Time,
        out: &mut Vec<(NodeId, Message)>,
    ) -> Vec<Completion> {
        let mut done = Vec::new();
        if let Some(value) = value {
            let apply = (Vec::new(), None);
            done.extend(self.write_with(key, Some(value), apply, deadline, store, now, out));
        }
        let answer = (vec![waiter], Some(KeyOpResult::Written));
        done.extend(self.write_with(record, None, answer, deadline, store, now, out));
        done
    }

    /// Answers a conditional operation that writes nothing, once every
    /// write before it has committed: its answer was decided on the latest
    /// value, which may be a write in flight, and if that write never
    /// committed nobody may have seen it. With nothing in flight for the
    /// key, the answer is the committed state and goes at once.
    pub fn answer_after_pending(
        &mut self,
        key: &str,
        (waiter, result): (Waiter, KeyOpResult),
        deadline: Time,
        store: &Store,
    ) -> Vec<Completion> {
        if !self.overlay.contains_key(key) {
            return vec![(vec![waiter], Ok(result))];
        }
        let idx = self.next_idx;
        self.next_idx += 1;
        self.log.push_back(LogEntry {
            idx,
            key: key.to_string(),
            value: None,
            existed: false,
            waiters: vec![waiter],
            deadline,
            result: Some(result),
            noop: true,
        });
        self.commit(store)
    }

    #[allow(clippy::too_many_arguments)]
    fn write_with(
        &mut self,
        key: String,
        value: Option<String>,
        (waiters, result): (Vec<Waiter>, Option<KeyOpResult>),
        deadline: Time,
        store: &mut Store,
        now: Time,
        out: &mut Vec<(NodeId, Message)>,
    ) -> Vec<Completion> {
        let p = self.partition;
        let idx = self.next_idx;
        self.next_idx += 1;
        let old = match &value {
            Some(v) => store.put(p, key.clone(), v.clone()),
            None => store.delete(p, &key),
        };
        let overlay = self.overlay.entry(key.clone()).or_insert_with(|| Overlay {
            committed: old.clone(),
            pending: 0,
        });
        overlay.pending += 1;
        let existed = old.is_some();
        let entry = match &value {
            Some(v) => StreamEntry::Put {
                key: key.clone(),
                value: v.clone(),
            },
            None => StreamEntry::Delete { key: key.clone() },
        };
        let streams = if self.cfg.skip_replication {
            None
        } else {
            Some(self.streams.iter_mut())
        };
        for (node, s) in streams.into_iter().flatten() {
            let seq = s.next_seq;
            s.next_seq += 1;
            if s.inflight.is_empty() {
                s.last_sent = now;
                s.last_progress = now;
            }
            out.push((*node, replicate(p, s.id, seq, entry.clone())));
            s.inflight.push_back(Inflight {
                seq,
                entry: entry.clone(),
                idx: Some(idx),
            });
        }
        self.log.push_back(LogEntry {
            idx,
            key,
            value,
            existed,
            waiters,
            deadline,
            result,
            noop: false,
        });
        self.commit(store)
    }

    /// Reads a key as committed: writes in flight are invisible.
    pub fn read(&self, key: &str, store: &Store) -> Option<String> {
        // Most of the time no write is in flight: skip hashing the key.
        if self.overlay.is_empty() {
            return store.get(self.partition, key).map(str::to_owned);
        }
        match self.overlay.get(key) {
            Some(o) => o.committed.clone(),
            None => store.get(self.partition, key).map(str::to_owned),
        }
    }

    /// A page of committed pairs after `after`, at most `limit` of them and
    /// about `max_bytes` (see [`Store::page_matching`]), with the key to
    /// continue after if more follow.
    pub fn scan(
        &self,
        store: &Store,
        after: Option<&str>,
        prefix: Option<&str>,
        limit: usize,
        max_bytes: usize,
    ) -> (Vec<(String, String)>, Option<String>) {
        let (page, more) =
            store.page_matching(self.partition, after, prefix, limit.max(1), max_bytes);
        let next = if more {
            page.last().map(|(k, _)| k.clone())
        } else {
            None
        };
        // kvsh's own records are listed only when asked for by their prefix
        // (`LOCKS`); clients cannot ask for it.
        let system = prefix.is_some_and(|pre| pre.starts_with(SYSTEM_PREFIX));
        let hidden = |k: &str| !system && k.starts_with(SYSTEM_PREFIX);
        let mut entries = Vec::with_capacity(page.len());
        for (k, v) in page {
            if prefix.is_some_and(|pre| !k.starts_with(pre)) || hidden(&k) {
                continue;
            }
            match self.overlay.get(&k) {
                Some(o) => {
                    if let Some(c) = &o.committed {
                        entries.push((k, c.clone()));
                    }
                }
                None => entries.push((k, v)),
            }
        }
        // A key whose delete is still in flight is gone from the store but
        // not from committed reads: take it from the overlay, if this page
        // covers it.
        let in_page =
            |k: &str| after.is_none_or(|a| k > a) && next.as_deref().is_none_or(|n| k <= n);
        let mut missing = false;
        for (k, o) in &self.overlay {
            if let Some(c) = &o.committed {
                if in_page(k)
                    && !hidden(k)
                    && prefix.is_none_or(|pre| k.starts_with(pre))
                    && store.get(self.partition, k).is_none()
                {
                    entries.push((k.clone(), c.clone()));
                    missing = true;
                }
            }
        }
        if missing {
            entries.sort_unstable_by(|a, b| a.0.cmp(&b.0));
        }
        (entries, next)
    }

    /// Handles a secondary's acknowledgement, and the catch-up ranges it
    /// still needs.
    #[allow(clippy::too_many_arguments)]
    pub fn on_ack(
        &mut self,
        node: NodeId,
        stream: StreamId,
        (seq, need): (u64, Vec<KeyRange>),
        store: &Store,
        now: Time,
        out: &mut Vec<(NodeId, Message)>,
    ) -> Vec<Completion> {
        let p = self.partition;
        let Some(s) = self.streams.get_mut(&node) else {
            return Vec::new();
        };
        if s.id != stream {
            return Vec::new();
        }
        s.acked_any = true;
        // Ranges whose digest did not match: send each once, as a chunk of
        // what this primary holds there now. The stream puts it after
        // every write already sent, so whatever the secondary applied
        // before it, it ends up with the primary's pairs (see
        // docs/architecture.md, "Catching up").
        if let Some(r) = s.resync.as_mut() {
            for range in need {
                if r.requested.contains(&range) || !r.digested.contains(&range) {
                    continue;
                }
                let entries = store.range(p, range.0.as_deref(), range.1.as_deref());
                r.keys += entries.len() as u64;
                r.chunks_inflight += 1;
                r.requested.insert(range.clone());
                let entry = StreamEntry::Chunk {
                    after: range.0,
                    upto: range.1,
                    entries,
                };
                let seq = s.next_seq;
                s.next_seq += 1;
                if s.inflight.is_empty() {
                    s.last_sent = now;
                    s.last_progress = now;
                }
                out.push((node, replicate(p, s.id, seq, entry.clone())));
                s.inflight.push_back(Inflight {
                    seq,
                    entry,
                    idx: None,
                });
            }
        }
        let progress = s.inflight.front().is_some_and(|e| e.seq <= seq);
        if progress {
            s.last_progress = now;
            s.last_sent = now;
            s.dup_acks = 0;
        } else if !s.inflight.is_empty() {
            // The secondary is missing the front entry and acks what it
            // has for every later one. Only progress may hold off the
            // retransmit timer, or a steady flow of writes would starve
            // the gap forever; three duplicates resend at once.
            s.dup_acks += 1;
            if s.dup_acks == 3 {
                s.last_sent = 0;
            }
        }
        while s.inflight.front().is_some_and(|e| e.seq <= seq) {
            let e = s.inflight.pop_front().expect("front exists");
            if let Some(idx) = e.idx {
                s.acked_idx = s.acked_idx.max(idx);
            }
            if matches!(
                e.entry,
                StreamEntry::Chunk { .. } | StreamEntry::Digest { .. }
            ) {
                if let Some(r) = s.resync.as_mut() {
                    r.chunks_inflight -= 1;
                    if r.held > 0 {
                        r.held -= 1;
                        r.budget.give(1);
                    }
                }
            }
        }
        if s.resync
            .as_ref()
            .is_some_and(|r| r.sent_last && r.chunks_inflight == 0)
        {
            // From now on commits wait for it: it holds everything up to
            // here, and will be in sync.
            s.caught_up = s.resync.take().map(|r| r.keys);
            tracing::debug!(
                partition = p,
                keys = s.caught_up,
                "resync stream finished; the replica is caught up"
            );
            s.required = true;
        }
        // Nothing left in flight: every write sent so far is acknowledged.
        if s.inflight.is_empty() {
            s.acked_idx = self.next_idx - 1;
        }
        self.pump(store, now, out);
        self.update_activated();
        self.commit(store)
    }

    /// Periodic work: retransmits, resync progress, and write deadlines.
    pub fn tick(
        &mut self,
        store: &Store,
        now: Time,
        out: &mut Vec<(NodeId, Message)>,
    ) -> Vec<Completion> {
        let p = self.partition;
        for (node, s) in self.streams.iter_mut() {
            if !s.inflight.is_empty() && now >= s.last_sent + self.cfg.retransmit {
                // Resend what is in flight; a bounded burst, since the
                // secondary buffers out-of-order entries anyway.
                for e in s.inflight.iter().take(256) {
                    out.push((*node, replicate(p, s.id, e.seq, e.entry.clone())));
                }
                s.last_sent = now;
                s.dup_acks = 0;
            }
        }
        self.pump(store, now, out);
        let mut done = Vec::new();
        for e in self.log.iter_mut() {
            if now >= e.deadline && !e.waiters.is_empty() {
                let waiters = std::mem::take(&mut e.waiters);
                done.push((
                    waiters,
                    Err(Error::Timeout(format!(
                        "write to partition {p} not acknowledged by every replica in time; it may still be applied"
                    ))),
                ));
            }
        }
        done
    }

    /// True if [`Leader::tick`] and [`Leader::caught_up_reports`] have
    /// nothing to do until new input arrives: no write awaits
    /// acknowledgement, no stream has anything in flight or left to send,
    /// and no finished resync still needs reporting.
    pub fn quiet(&self, view: &View) -> bool {
        let info = view.partitions.get(self.partition as usize);
        self.log.is_empty()
            && self.streams.iter().all(|(node, s)| {
                s.inflight.is_empty()
                    && s.resync.as_ref().is_none_or(|r| r.sent_last)
                    && (s.caught_up.is_none()
                        || info.is_some_and(|i| i.replica(*node).is_some_and(|r| r.in_sync)))
            })
    }

    /// Streams whose resync finished but whose replica the view does not
    /// show in sync yet: report them to the leader, at most every `every` ms.
    pub fn caught_up_reports(
        &mut self,
        view: &View,
        now: Time,
        every: Time,
    ) -> Vec<(NodeId, StreamId, u64)> {
        let Some(info) = view.partitions.get(self.partition as usize) else {
            return Vec::new();
        };
        // A replica may be called in sync only once it has every write
        // committed so far (commits made while it was filling did not wait
        // for it).
        let committed = self.log.front().map_or(self.next_idx - 1, |e| e.idx - 1);
        let mut reports = Vec::new();
        for (node, s) in self.streams.iter_mut() {
            let Some(keys) = s.caught_up else { continue };
            if info.replica(*node).is_some_and(|r| r.in_sync) || s.acked_idx < committed {
                continue;
            }
            if s.last_report.is_none_or(|t| now >= t + every) {
                s.last_report = Some(now);
                reports.push((*node, s.id, keys));
            }
        }
        reports
    }

    /// Required streams that have made no progress for the lag timeout:
    /// their replicas hold up every commit.
    pub fn lagging(&self, now: Time) -> Vec<(NodeId, StreamId)> {
        self.streams
            .iter()
            .filter(|(_, s)| {
                s.required
                    && !s.inflight.is_empty()
                    && now >= s.last_progress + self.cfg.lag_timeout
            })
            .map(|(n, s)| (*n, s.id))
            .collect()
    }

    /// Gives up the role: every waiting write fails with an indefinite
    /// error, since a secondary may already have applied it.
    pub fn abort(self, why: &str) -> Vec<Completion> {
        let p = self.partition;
        self.log
            .into_iter()
            .filter(|e| !e.waiters.is_empty())
            .map(|e| {
                (
                    e.waiters,
                    Err(Error::Aborted(format!("partition {p} changed primary ({why}); the write may or may not be applied"))),
                )
            })
            .collect()
    }

    fn update_activated(&mut self) {
        // Not just any acknowledgement: the whole resync. This primary may
        // hold writes of the old term that never committed and that some
        // in-sync secondary lacks; once a read here returns one, a failover
        // or handoff to that secondary would take it back. The resync gives
        // every such secondary this primary's data first.
        if !self.activated {
            self.activated = self
                .streams
                .values()
                .filter(|s| s.required)
                .all(|s| s.acked_any && s.resync.is_none());
        }
    }

    /// Sends resync chunks while the window allows.
    fn pump(&mut self, store: &Store, now: Time, out: &mut Vec<(NodeId, Message)>) {
        let p = self.partition;
        for (node, s) in self.streams.iter_mut() {
            let Some(r) = s.resync.as_mut() else { continue };
            // Digests are small: many more of them fly at once.
            let window = if self.cfg.digests {
                self.cfg.chunk_window * 16
            } else {
                self.cfg.chunk_window
            };
            while !r.sent_last && r.chunks_inflight < window && r.budget.take() {
                r.held += 1;
                if self.cfg.digests {
                    let (digest, _, upto) =
                        store.range_digest(p, r.cursor.as_deref(), None, self.cfg.digest_keys);
                    let entry = StreamEntry::Digest {
                        after: r.cursor.clone(),
                        upto: upto.clone(),
                        digest,
                    };
                    r.digested.insert((r.cursor.clone(), upto.clone()));
                    r.cursor.clone_from(&upto);
                    r.sent_last = upto.is_none();
                    r.chunks_inflight += 1;
                    let seq = s.next_seq;
                    s.next_seq += 1;
                    if s.inflight.is_empty() {
                        s.last_sent = now;
                        s.last_progress = now;
                    }
                    out.push((*node, replicate(p, s.id, seq, entry.clone())));
                    s.inflight.push_back(Inflight {
                        seq,
                        entry,
                        idx: None,
                    });
                    continue;
                }
                let (page, more) = store.page(p, r.cursor.as_deref(), self.cfg.chunk_keys);
                let after = r.cursor.clone();
                let upto = if more {
                    page.last().map(|(k, _)| k.clone())
                } else {
                    None
                };
                r.keys += page.len() as u64;
                r.cursor.clone_from(&upto);
                r.sent_last = upto.is_none();
                r.chunks_inflight += 1;
                let entry = StreamEntry::Chunk {
                    after,
                    upto,
                    entries: page,
                };
                let seq = s.next_seq;
                s.next_seq += 1;
                if s.inflight.is_empty() {
                    s.last_sent = now;
                    s.last_progress = now;
                }
                out.push((*node, replicate(p, s.id, seq, entry.clone())));
                s.inflight.push_back(Inflight {
                    seq,
                    entry,
                    idx: None,
                });
            }
        }
    }

    /// Commits the writes every stream has acknowledged, in order.
    fn commit(&mut self, _store: &Store) -> Vec<Completion> {
        let acked = self
            .streams
            .values()
            .filter(|s| s.required)
            .map(|s| s.acked_idx)
            .min()
            .unwrap_or(u64::MAX);
        let mut done = Vec::new();
        // A no-op at the front has nothing of its own to wait for: every
        // write before it has committed.
        while self.log.front().is_some_and(|e| e.idx <= acked || e.noop) {
            let e = self.log.pop_front().expect("front exists");
            if e.noop {
                if !e.waiters.is_empty() {
                    let result = e.result.expect("invariant: a no-op carries its answer");
                    done.push((e.waiters, Ok(result)));
                }
                continue;
            }
            if let Some(o) = self.overlay.get_mut(&e.key) {
                o.committed.clone_from(&e.value);
                o.pending -= 1;
                if o.pending == 0 {
                    self.overlay.remove(&e.key);
                }
            }
            if !e.waiters.is_empty() {
                let result = match (e.result, e.value) {
                    (Some(r), _) => r,
                    (None, Some(_)) => KeyOpResult::Written,
                    (None, None) => KeyOpResult::Deleted(e.existed),
                };
                done.push((e.waiters, Ok(result)));
            }
        }
        done
    }
}

fn replicate(partition: PartitionId, stream: StreamId, seq: u64, entry: StreamEntry) -> Message {
    Message::Replicate {
        partition,
        stream,
        seq,
        entry,
    }
}

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

/// Applies a stream entry to the store.
pub fn apply(p: PartitionId, entry: StreamEntry, store: &mut Store) {
    match entry {
        StreamEntry::Put { key, value } => {
            store.put(p, key, value);
        }
        StreamEntry::Delete { key } => {
            store.delete(p, &key);
        }
        StreamEntry::Chunk {
            after,
            upto,
            entries,
        } => {
            store.replace_range(p, after.as_deref(), upto.as_deref(), entries);
        }
        // Only a follower can judge a digest (`Follower::apply`).
        StreamEntry::Digest { .. } => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::view::{NodeInfo, NodeState, PartitionInfo, Replica};

    /// The node's budget bounds the resync chunks in flight over all its
    /// leaders' streams, and a leader that goes (its partition moved away)
    /// gives back every slot it held.
    #[test]
    fn resync_chunks_share_one_budget_and_a_dropped_leader_gives_its_slots_back() {
        let node = |incarnation| NodeInfo {
            endpoint: String::new(),
            peer_endpoint: String::new(),
            incarnation,
            state: NodeState::Up,
        };
        let replica = |node, in_sync| Replica {
            node,
            in_sync,
            since: 1,
        };
        let partition = || PartitionInfo {
            term: 1,
            term_epoch: 1,
            replicas: vec![replica(1, true), replica(2, false), replica(3, false)],
        };
        let view = View {
            epoch: 1,
            replication: 3,
            nodes: [(1, node(1)), (2, node(2)), (3, node(3))].into(),
            partitions: vec![partition(), partition()],
        };
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
        let budget = ChunkBudget::new(5);
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
        assert_eq!(budget.free(), 5, "a dropped leader gives back what it held");
        out.clear();
        second.tick(&store, 2, &mut out);
        assert_eq!(chunks(&out), 5, "the freed slots carry the second's chunks");
        assert_eq!(budget.free(), 0);
    }

    /// A scan must not show a delete that has not committed, just as a read
    /// must not. (Found by the simulator: a GET_ALL missed a key whose
    /// delete was in flight, then a GET_ONE saw it again.)
    #[test]
    fn scans_do_not_see_uncommitted_deletes() {
        let node = |incarnation| NodeInfo {
            endpoint: String::new(),
            peer_endpoint: String::new(),
            incarnation,
            state: NodeState::Up,
        };
        let replica = |node| Replica {
            node,
            in_sync: true,
            since: 1,
        };
        let view = View {
            epoch: 1,
            replication: 2,
            nodes: [(1, node(1)), (2, node(2))].into(),
            partitions: vec![PartitionInfo {
                term: 1,
                term_epoch: 1,
                replicas: vec![replica(1), replica(2)],
            }],
        };
        let cfg = StreamConfig {
            chunk_keys: 10,
            chunk_window: 1,
            ..crate::node::NodeConfig::default().stream
        };
        let stream = StreamId {
            term: 1,
            incarnation: 2,
            since: 1,
        };
        let (mut store, mut out) = (Store::new(), Vec::new());
        let mut leader = Leader::new(0, 1, cfg);
        leader.reconcile(&view, &store, 0, &mut out);
        let waiter = || Waiter::Forward {
            node: 1,
            request: 1,
        };
        leader.write(
            "a".into(),
            Some("1".into()),
            waiter(),
            100,
            &mut store,
            0,
            &mut out,
        );
        leader.write(
            "b".into(),
            Some("2".into()),
            waiter(),
            100,
            &mut store,
            0,
            &mut out,
        );
        assert_eq!(
            leader
                .on_ack(2, stream, (3, vec![]), &store, 0, &mut out)
                .len(),
            2,
            "both writes commit"
        );
        leader.write("a".into(), None, waiter(), 100, &mut store, 0, &mut out);
        let all = vec![
            ("a".to_string(), "1".to_string()),
            ("b".to_string(), "2".to_string()),
        ];
        assert_eq!(leader.read("a", &store), Some("1".into()));
        assert_eq!(
            leader.scan(&store, None, None, 10, usize::MAX),
            (all.clone(), None)
        );
        assert_eq!(
            leader.scan(&store, None, Some("a"), 10, usize::MAX).0,
            all[..1]
        );
        assert_eq!(
            leader
                .on_ack(2, stream, (4, vec![]), &store, 0, &mut out)
                .len(),
            1,
            "the delete commits"
        );
        assert_eq!(
            leader.scan(&store, None, None, 10, usize::MAX),
            (all[1..].to_vec(), None)
        );
    }
}
