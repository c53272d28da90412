//! Bench clients: each a DEALER per node, keeping up to P requests in
//! flight and matching replies to requests by their `id`; run one per
//! thread, or many per thread in an event loop.
//!
//! It speaks the wire protocol exactly as an outside client would, over its
//! own ZeroMQ context, and routes each request to the key's primary from the
//! view, as `src/cluster/client.rs` does. Unlike that client it never retries:
//! a failure is counted and the next request goes out, because a load
//! generator that retried would hide the failures it is there to show.
//!
//! Requests are formatted straight into a reused buffer and replies are
//! decoded into a struct that borrows nothing and skips what it does not
//! need. The client shares the machine with the nodes it measures, so every
//! microsecond it spends is one the nodes do not get.

mod client;

use crate::bench::report::latency_histogram;
use crate::cluster::leader::Status;
use crate::cluster::watch::Watch;
use client::{
    expire, send_out, take, unsent, wait_for_replies, Client, InFlightMap, Outgoing, Received,
};
use hdrhistogram::Histogram;
use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};
use std::collections::BTreeMap;
use std::io::Write as _;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Condvar, Mutex};
use std::time::{Duration, Instant};

/// Longest wait for a reply before the client checks the stop flag and
/// expires requests that will never be answered, ms.
const WAIT_MS: i64 = 100;
/// How long a client waits for its sockets to connect before it starts.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(3);

/// One request's operation.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Op {
    /// `PUT`.
    Put,
    /// `GET_ONE`.
    Get,
    /// `DELETE`.
    Delete,
}

/// Which operations a phase issues, on which keys.
#[derive(Clone, Debug)]
pub(crate) enum Workload {
    /// Random keys among `keys`; a read with probability `get_ratio`, else a
    /// write.
    Random {
        /// Keys to choose from.
        keys: u64,
        /// Chance that an operation is a read.
        get_ratio: f64,
    },
    /// Every key in the list once, in order (loading, cleaning up).
    Each {
        /// The operation.
        op: Op,
        /// The key numbers.
        keys: Vec<u32>,
    },
}

/// What one phase does.
#[derive(Clone, Debug)]
pub(crate) struct Plan {
    /// The operations.
    pub workload: Workload,
    /// Stop after this many operations over all clients.
    pub ops: Option<u64>,
    /// Else stop issuing after this long.
    pub duration: Option<Duration>,
    /// Requests in flight per client.
    pub pipeline: usize,
    /// Most requests per frame.
    pub batch: usize,
    /// Each client sends only to one node, choosing keys that node is
    /// primary for (random workloads only).
    pub pinned: bool,
    /// Bytes per value.
    pub value_size: usize,
    /// Keys `0..bitmap_keys` that writes are tracked for, so the cleanup
    /// deletes only what was written.
    pub bitmap_keys: usize,
    /// The run's key namespace: key `k` is `{prefix}{k}`.
    pub prefix: String,
}

/// Counters the clients of a phase share with the thread watching them.
#[derive(Debug, Default)]
pub(crate) struct Shared {
    /// Operations claimed: the next index into an `Each` list, or the count
    /// against an `ops` limit.
    pub claimed: AtomicU64,
    /// Requests answered (or failed), for the progress bar.
    pub done: AtomicU64,
    /// Set to stop issuing requests (Ctrl-C).
    pub stop: AtomicBool,
}

/// Where a phase's clients wait, once connected, until all of them are.
///
/// Not a `std::sync::Barrier`: its party count is fixed up front, and a
/// client thread that fails to spawn would leave the others waiting.
#[derive(Debug, Default)]
pub(crate) struct Gate {
    /// (clients arrived, open).
    state: Mutex<(usize, bool)>,
    cvar: Condvar,
}

impl Gate {
    /// A client is connected: waits until the gate opens.
    pub fn arrive(&self) {
        let mut s = self.state.lock().unwrap_or_else(|e| e.into_inner());
        s.0 += 1;
        self.cvar.notify_all();
        while !s.1 {
            s = self.cvar.wait(s).unwrap_or_else(|e| e.into_inner());
        }
    }

    /// Waits until `clients` have arrived, then lets them all go.
    pub fn open_when(&self, clients: usize) {
        let mut s = self.state.lock().unwrap_or_else(|e| e.into_inner());
        while s.0 < clients {
            s = self.cvar.wait(s).unwrap_or_else(|e| e.into_inner());
        }
        s.1 = true;
        self.cvar.notify_all();
    }
}

/// What one client measured.
#[derive(Debug)]
pub(crate) struct Tally {
    /// Latency of every answered request, in nanoseconds.
    pub latency: Histogram<u64>,
    /// Requests answered or failed.
    pub ops: u64,
    /// Failures.
    pub errors: u64,
    /// Failures by code.
    pub codes: BTreeMap<String, u64>,
    /// The first failure's message.
    pub first_error: Option<String>,
    /// Reads that found no value.
    pub misses: u64,
    /// Bit `i` set: key `i` was (maybe) written.
    pub written: Vec<u64>,
}

impl Tally {
    fn new(bitmap_keys: usize) -> Self {
        Tally {
            latency: latency_histogram(),
            ops: 0,
            errors: 0,
            codes: BTreeMap::new(),
            first_error: None,
            misses: 0,
            written: vec![0; bitmap_keys.div_ceil(64)],
        }
    }

    fn fail(&mut self, code: &str, message: impl FnOnce() -> String) {
        self.errors += 1;
        *self.codes.entry(code.to_string()).or_default() += 1;
        if self.first_error.is_none() {
            self.first_error = Some(message());
        }
    }

    /// Adds another client's tally to this one.
    pub fn merge(&mut self, other: Tally) {
        // Both histograms have the same bounds, so adding cannot fail.
        let _ = self.latency.add(&other.latency);
        self.ops += other.ops;
        self.errors += other.errors;
        for (c, n) in other.codes {
            *self.codes.entry(c).or_default() += n;
        }
        if self.first_error.is_none() {
            self.first_error = other.first_error;
        }
        self.misses += other.misses;
        for (a, b) in self.written.iter_mut().zip(other.written) {
            *a |= b;
        }
    }

    /// An empty tally to merge into.
    pub fn empty(bitmap_keys: usize) -> Self {
        Tally::new(bitmap_keys)
    }
}

/// One client connection: its sockets (a DEALER per node), the requests
/// it has in flight, and what it measured. A thread-per-client run gives
/// each its own thread ([`run_client`]); an event-loop run drives many from
/// one thread ([`run_event_loop`]).
pub(crate) struct Conn<'a> {
    client: Client<'a>,
    tally: Tally,
    rng: SmallRng,
    /// The value every write sends.
    value: String,
    inflight: InFlightMap,
    next_id: u64,
    /// Per socket, the frame being filled and the requests in it.
    outgoing: Vec<Outgoing>,
    key: String,
    msg: zmq::Message,
    /// No more operations to issue.
    exhausted: bool,
    /// Keys to draw from (random workloads).
    keys: Option<u64>,
    last_expire: Instant,
}

impl<'a> Conn<'a> {
    /// Client number `index` of a phase; its sockets connect in the
    /// background.
    pub fn new(
        ctx: &'a zmq::Context,
        watch: &'a Watch<Status>,
        plan: &Plan,
        index: usize,
        seed: u64,
    ) -> Self {
        let pinned = plan.pinned && matches!(plan.workload, Workload::Random { .. });
        let keys = match plan.workload {
            Workload::Random { keys, .. } => Some(keys),
            Workload::Each { .. } => None,
        };
        let mut rng = SmallRng::seed_from_u64(seed);
        // Values are printable ASCII that JSON does not escape.
        let value: String = (0..plan.value_size)
            .map(|_| rng.sample(rand::distributions::Alphanumeric) as char)
            .collect();
        Conn {
            client: Client::new(ctx, watch, pinned.then_some(index)),
            tally: Tally::new(plan.bitmap_keys),
            rng,
            value,
            inflight: InFlightMap::with_capacity_and_hasher(plan.pipeline * 2, Default::default()),
            next_id: 1,
            outgoing: Vec::new(),
            key: String::with_capacity(32),
            msg: zmq::Message::new(),
            exhausted: false,
            keys,
            last_expire: Instant::now(),
        }
    }

    /// True once it has nothing in flight and nothing more to send.
    pub fn finished(&self) -> bool {
        self.inflight.is_empty()
    }

    /// Fills the pipeline and sends what it queued. When batching, waits
    /// until a whole batch fits, as redis-benchmark -P waits for all its
    /// replies before it sends the next commands: refilling one slot at a
    /// time would send batches of one.
    pub fn fill(&mut self, plan: &Plan, shared: &Shared, deadline: Option<Instant>) {
        let batch = plan.batch.max(1);
        let room = plan.pipeline.saturating_sub(self.inflight.len());
        let mut queued = 0;
        while room >= batch.min(plan.pipeline) && queued < room && !self.exhausted {
            let Some((op, mut k)) = next_op(plan, shared, deadline, &mut self.rng) else {
                self.exhausted = true;
                break;
            };
            let s = self.client.choose(
                &plan.prefix,
                &mut k,
                self.keys,
                &mut self.rng,
                &mut self.key,
            );
            let id = self.next_id;
            self.next_id += 1;
            if op == Op::Put {
                if let Some(word) = self.tally.written.get_mut(k as usize / 64) {
                    *word |= 1 << (k % 64);
                }
            }
            if s >= self.client.sockets.len() {
                unsent(&mut self.client, &mut self.tally, shared, 1, || {
                    "no node to send to".into()
                });
                continue;
            }
            if self.outgoing.len() < self.client.sockets.len() {
                self.outgoing
                    .resize_with(self.client.sockets.len(), Outgoing::default);
            }
            let (key, value) = (&self.key, &self.value);
            let out = &mut self.outgoing[s];
            out.frame.push(if out.ids.is_empty() { b'[' } else { b',' });
            let _ = match op {
                Op::Put => write!(
                    out.frame,
                    r#"{{"op":"PUT","key":"{key}","value":"{value}","id":{id}}}"#
                ),
                Op::Get => write!(out.frame, r#"{{"op":"GET_ONE","key":"{key}","id":{id}}}"#),
                Op::Delete => write!(out.frame, r#"{{"op":"DELETE","key":"{key}","id":{id}}}"#),
            };
            out.ids.push((id, op));
            queued += 1;
            if out.ids.len() >= batch {
                send_out(
                    &mut self.client,
                    s,
                    out,
                    &mut self.inflight,
                    &mut self.tally,
                    shared,
                );
            }
        }
        for (s, out) in self.outgoing.iter_mut().enumerate() {
            if !out.ids.is_empty() {
                send_out(
                    &mut self.client,
                    s,
                    out,
                    &mut self.inflight,
                    &mut self.tally,
                    shared,
                );
            }
        }
    }

    /// After a round of replies: re-reads the view if a reply said it is
    /// stale, expires requests that will never be answered, and stops
    /// issuing once told to.
    pub fn after_replies(&mut self, stale: bool, shared: &Shared) {
        if stale {
            self.client.refresh();
        }
        // Expire on a clock, not only when nothing came: with many requests
        // in flight, replies to others keep arriving while one is lost.
        if self.last_expire.elapsed() >= Duration::from_millis(WAIT_MS as u64) {
            expire(
                &mut self.inflight,
                &mut self.client.owed,
                &mut self.tally,
                shared,
            );
            self.last_expire = Instant::now();
        }
        if shared.stop.load(Ordering::Relaxed) {
            self.exhausted = true;
        }
    }

    /// The sockets that owe replies, with their poll items.
    pub fn owing(&self) -> impl Iterator<Item = (usize, zmq::PollItem<'_>)> {
        self.client
            .owed
            .iter()
            .enumerate()
            .filter(|(_, owed)| **owed > 0)
            .map(|(i, _)| (i, self.client.sockets[i].1.as_poll_item(zmq::POLLIN)))
    }

    /// Takes every reply waiting on socket `s`; true if one said the view
    /// is stale.
    pub fn drain(&mut self, s: usize, shared: &Shared) -> bool {
        let mut got = Received {
            answered: 0,
            stale: false,
        };
        while self.client.owed[s] > 0
            && self.client.sockets[s]
                .1
                .recv(&mut self.msg, zmq::DONTWAIT)
                .is_ok()
        {
            take(
                &mut self.client,
                &self.msg,
                &mut self.inflight,
                &mut self.tally,
                shared,
                &mut got,
            );
        }
        got.stale
    }

    /// What it measured.
    pub fn into_tally(self) -> Tally {
        self.tally
    }
}

/// Runs one client for a phase on this thread: connects, waits at the
/// `gate` for the other clients (so connecting is not timed), then issues
/// requests until the plan is done or `shared.stop` is set, and waits for
/// the replies owed.
pub(crate) fn run_client(
    ctx: &zmq::Context,
    watch: &Watch<Status>,
    plan: &Plan,
    shared: &Shared,
    index: usize,
    seed: u64,
    gate: &Gate,
) -> Tally {
    let mut c = Conn::new(ctx, watch, plan, index, seed);
    c.client.connect(CONNECT_TIMEOUT);
    gate.arrive();
    let deadline = plan.duration.map(|d| Instant::now() + d);
    loop {
        c.fill(plan, shared, deadline);
        if c.finished() {
            break;
        }
        let got = wait_for_replies(
            &mut c.client,
            &mut c.msg,
            &mut c.inflight,
            &mut c.tally,
            shared,
        );
        c.after_replies(got.stale, shared);
    }
    c.into_tally()
}

/// Runs clients `indices` of a phase on this one thread, as
/// redis-benchmark does: each client is a set of connections with its own
/// requests in flight, and one `zmq_poll` over every socket that owes a
/// reply waits for all of them. Client `i` is seeded with `seed + i`.
pub(crate) fn run_event_loop(
    ctx: &zmq::Context,
    watch: &Watch<Status>,
    plan: &Plan,
    shared: &Shared,
    indices: &[usize],
    seed: u64,
    gate: &Gate,
) -> Tally {
    let mut conns: Vec<Conn> = indices
        .iter()
        .map(|i| Conn::new(ctx, watch, plan, *i, seed + *i as u64))
        .collect();
    // They connect in the background at once; this waits for the slowest.
    for c in &conns {
        c.client.connect(CONNECT_TIMEOUT);
    }
    gate.arrive();
    let deadline = plan.duration.map(|d| Instant::now() + d);
    let mut total = Tally::new(plan.bitmap_keys);
    let mut stale = vec![false; conns.len()];
    let mut who: Vec<(usize, usize)> = Vec::new();
    loop {
        let mut i = 0;
        while i < conns.len() {
            conns[i].fill(plan, shared, deadline);
            if conns[i].finished() {
                total.merge(conns.swap_remove(i).into_tally());
            } else {
                i += 1;
            }
        }
        if conns.is_empty() {
            break;
        }
        who.clear();
        let mut items = Vec::new();
        for (ci, c) in conns.iter().enumerate() {
            for (si, item) in c.owing() {
                who.push((ci, si));
                items.push(item);
            }
        }
        let _ = zmq::poll(&mut items, WAIT_MS);
        let ready: Vec<bool> = items.iter().map(|item| item.is_readable()).collect();
        drop(items);
        stale.clear();
        stale.resize(conns.len(), false);
        for ((ci, si), r) in who.iter().zip(ready) {
            if r {
                stale[*ci] |= conns[*ci].drain(*si, shared);
            }
        }
        for (c, st) in conns.iter_mut().zip(&stale) {
            c.after_replies(*st, shared);
        }
    }
    total
}

/// The next operation and key number, or `None` when the phase is done.
fn next_op(
    plan: &Plan,
    shared: &Shared,
    deadline: Option<Instant>,
    rng: &mut SmallRng,
) -> Option<(Op, u64)> {
    if shared.stop.load(Ordering::Relaxed) {
        return None;
    }
    match &plan.workload {
        Workload::Each { op, keys } => {
            let i = shared.claimed.fetch_add(1, Ordering::Relaxed);
            keys.get(i as usize).map(|k| (*op, *k as u64))
        }
        Workload::Random { keys, get_ratio } => {
            if let Some(limit) = plan.ops {
                if shared.claimed.fetch_add(1, Ordering::Relaxed) >= limit {
                    return None;
                }
            } else if deadline.is_some_and(|d| Instant::now() >= d) {
                return None;
            }
            let op = if *get_ratio >= 1.0 || (*get_ratio > 0.0 && rng.gen_bool(*get_ratio)) {
                Op::Get
            } else {
                Op::Put
            };
            Some((op, rng.gen_range(0..*keys)))
        }
    }
}
