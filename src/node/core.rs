//! The node's state machine: everything a node decides, with no I/O and no
//! clock of its own. The transport (ZeroMQ in [`crate::node::runtime`], or the
//! simulator in [`crate::sim`]) feeds it client requests, peer messages and
//! ticks with the current time, and carries out the [`Output`]s it returns.
//!
//! A node plays three roles at once:
//! - **coordinator** for the client requests it receives: it serves them if
//!   it is the key's primary, and otherwise forwards them to the primary and
//!   keeps them in a pending table until the answer, a retry or the deadline;
//! - **primary** of some partitions ([`Leader`]);
//! - **secondary** of others ([`Follower`]).
//!
//! It never waits on another node: everything in flight sits in a table and
//! moves on when a message or a tick arrives.

use crate::error::Error;
use crate::node::message::{
    AckTiming, Address, Envelope, KeyOp, KeyOpResult, Message, NodeStats, RequestId, Served,
    StreamEntry, StreamId,
};
use crate::node::protocol::{Request, Response};
use crate::node::replication::{Completion, Follower, Leader, StreamConfig, Waiter};
use crate::node::store::Store;
use crate::view::{node_name, Incarnation, NodeId, NodeState, PartitionId, Time, View};
use std::collections::{BTreeMap, BTreeSet, VecDeque};

/// Most heartbeats remembered as awaiting an ack. At one per heartbeat
/// interval this covers far more than a lease.
const HEARTBEATS_REMEMBERED: usize = 64;

mod atomic;
mod cleanup;
mod peer;
mod scan;
#[cfg(test)]
mod tests;
mod time;
mod txn;

use self::scan::Scan;
use self::txn::{Txn, TxnStep};

/// Most `VIEW` requests a node answers per tick; more get `busy` at once. A
/// view is the biggest reply there is (tens to hundreds of KB), and a batch
/// or a burst of them would make the node copy it without bound.
pub const MAX_VIEWS_PER_TICK: usize = 8;

/// What a primary is asked to serve, for [`Node::may_serve`]'s checks.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Serve {
    /// A `GET_ONE`.
    Read,
    /// A `PUT` or `DELETE`.
    Write,
    /// A conditional operation, decided on the key's latest value.
    Decide,
    /// A step of an `MPUT`, decided on the key's latest intent.
    TxnStep,
}

/// The error for a partition this node leads by the checks but has no
/// state for: a broken invariant, reported rather than panicked on.
fn no_leader(p: PartitionId) -> Error {
    Error::Internal(format!("no leader state for partition {p}"))
}

/// A client of this node, as the transport identifies it.
pub type ClientId = u64;

/// Node tunables. Times are milliseconds.
#[derive(Clone, Copy, Debug)]
pub struct NodeConfig {
    /// How often to heartbeat the view leader.
    pub heartbeat_interval: Time,
    /// How long a heartbeat acknowledgement lets the node act as primary,
    /// counted from when the heartbeat was sent. Must be shorter than the
    /// leader's failure timeout: see docs/architecture.md, "Leases".
    pub lease: Time,
    /// How long a client request may take before it fails.
    pub request_timeout: Time,
    /// Resend a forwarded read that got no answer after this long.
    pub forward_retry: Time,
    /// Wait this long before retrying a request that failed retryably.
    pub retry_backoff: Time,
    /// Replication stream tunables.
    pub stream: StreamConfig,
    /// Test-only sabotage: serve reads of keys an `MPUT` holds, as if
    /// intents did not block reads. The simulator shows its snapshot
    /// check catches the torn reads this allows.
    pub read_through_intents: bool,
}

impl Default for NodeConfig {
    fn default() -> Self {
        NodeConfig {
            heartbeat_interval: 100,
            lease: 400,
            request_timeout: 3000,
            forward_retry: 500,
            retry_backoff: 25,
            stream: StreamConfig {
                chunk_keys: 2000,
                chunk_window: 4,
                retransmit: 200,
                lag_timeout: 1000,
                digests: false,
                digest_keys: 32,
                skip_replication: false,
            },
            read_through_intents: false,
        }
    }
}

/// What the node asks its transport to do.
#[derive(Clone, Debug, PartialEq)]
pub enum Output {
    /// Send an internal message.
    Send(Envelope),
    /// Answer a client.
    Reply {
        /// The client.
        client: ClientId,
        /// The answer.
        response: Response,
    },
}

#[derive(Debug)]
enum PendingState {
    /// Forwarded to a primary at this time.
    Forwarded { to: NodeId, at: Time },
    /// Waiting to be routed again.
    Retry { at: Time },
    /// Being served by this node's own primary role.
    Local,
}

#[derive(Debug)]
struct Pending {
    client: ClientId,
    id: Option<serde_json::Value>,
    op: KeyOp,
    deadline: Time,
    state: PendingState,
    last_error: Option<Error>,
    /// Set for a step of an `MPUT` this node coordinates or recovers: its
    /// outcome goes there, not to a client.
    step: Option<TxnStep>,
}

/// A node.
#[derive(Debug)]
pub struct Node {
    id: NodeId,
    incarnation: Incarnation,
    endpoint: String,
    peer_endpoint: String,
    partitions: u32,
    cfg: NodeConfig,
    max_value: usize,
    view: View,
    lease_until: Time,
    /// Send times of recent heartbeats: only an ack echoing one of these
    /// extends the lease.
    heartbeats_sent: VecDeque<Time>,
    /// Internal messages dropped as invalid.
    rejected: u64,
    /// Client requests answered, for `stats`.
    served: Served,
    /// Peers the transport could not open a socket to.
    unreachable: Vec<NodeId>,
    /// The newest heartbeat acknowledgement, reported to the leader.
    last_ack: Option<AckTiming>,
    /// The statistics the last heartbeat that carried any carried, and
    /// that heartbeat's send time. A heartbeat carries them only when they
    /// changed or the leader has not acknowledged them yet, so an idle
    /// node's heartbeats are small (see [`Message::Heartbeat`]).
    stats_sent: Option<(NodeStats, Time)>,
    /// Whether the leader acknowledged a heartbeat carrying `stats_sent`.
    stats_acked: bool,
    /// Input came since the statistics were last computed.
    stats_dirty: bool,
    /// Heartbeats sent since the last that carried statistics.
    heartbeats_since_stats: u32,
    /// Heartbeat ticks since the last that walked every primary role.
    heartbeats_since_walk: u32,
    store: Store,
    // Ordered maps, not hash maps: the node walks these when it ticks and
    // adopts views, and the order of its outputs must depend only on its
    // inputs, or a simulated run would not replay from its seed.
    leaders: BTreeMap<PartitionId, Leader>,
    /// The primary roles the next tick walks: those input touched since
    /// the last tick, and those its walk found with work left (not
    /// [`Leader::quiet`]). A tick walks only these, so its cost follows
    /// the partitions in use, not the partitions held.
    active: BTreeSet<PartitionId>,
    /// Resync chunks in flight over all of `leaders`' streams.
    chunk_budget: crate::node::replication::ChunkBudget,
    followers: BTreeMap<PartitionId, Follower>,
    /// Stream entries from primaries with a newer view, for streams this
    /// node will follow once it adopts that view.
    early: crate::node::replication::EarlyEntries,
    pending: BTreeMap<RequestId, Pending>,
    scans: BTreeMap<RequestId, Scan>,
    /// Scan page request id → (scan id, partition).
    scan_pages: BTreeMap<RequestId, (RequestId, PartitionId)>,
    /// `VIEW`s answered since the last tick.
    views_this_tick: usize,
    /// `MPUT`s this node coordinates, by local number.
    txns: BTreeMap<u64, Txn>,
    next_txn: u64,
    /// Keys whose intent this node is recovering (as their primary).
    recovering: std::collections::BTreeSet<String>,
    /// Decision records this node is collecting, by transaction.
    cleanups: BTreeMap<String, cleanup::Cleanup>,
    /// When to look for stale intents next.
    next_recovery: Time,
    /// Set by every input, and after a tick while some primary role has
    /// work left (`active`): the node does not sleep to its next heartbeat
    /// while it is set.
    sweep: bool,
    /// See [`Node::keep_reloaded`].
    keep_reloaded_until: Time,
    next_request: RequestId,
    next_heartbeat: Time,
    now: Time,
    out: Vec<Output>,
}

impl Node {
    /// A new node with no view, in a cluster of `partitions` partitions,
    /// reachable by clients at `endpoint` and by peers at `peer_endpoint`.
    /// It heartbeats the leader on its first tick.
    pub fn new(
        id: NodeId,
        incarnation: Incarnation,
        (endpoint, peer_endpoint): (String, String),
        partitions: u32,
        cfg: NodeConfig,
        max_value: usize,
    ) -> Self {
        Node {
            id,
            incarnation,
            endpoint,
            peer_endpoint,
            partitions,
            cfg,
            max_value,
            view: View::default(),
            lease_until: 0,
            heartbeats_sent: VecDeque::new(),
            rejected: 0,
            served: Served::default(),
            unreachable: Vec::new(),
            last_ack: None,
            stats_sent: None,
            stats_acked: false,
            stats_dirty: true,
            heartbeats_since_stats: 0,
            heartbeats_since_walk: 0,
            store: Store::new(),
            leaders: BTreeMap::new(),
            active: BTreeSet::new(),
            chunk_budget: crate::node::replication::ChunkBudget::new(
                crate::node::replication::NODE_RESYNC_SLOTS,
            ),
            followers: BTreeMap::new(),
            early: Default::default(),
            pending: BTreeMap::new(),
            scans: BTreeMap::new(),
            scan_pages: BTreeMap::new(),
            views_this_tick: 0,
            txns: BTreeMap::new(),
            next_txn: 1,
            recovering: Default::default(),
            cleanups: BTreeMap::new(),
            next_recovery: 0,
            sweep: true,
            keep_reloaded_until: 0,
            next_request: 1,
            next_heartbeat: 0,
            now: 0,
            out: Vec::new(),
        }
    }

    /// The node's id.
    pub fn id(&self) -> NodeId {
        self.id
    }

    /// The node's current view.
    pub fn view(&self) -> &View {
        &self.view
    }

    /// The node's store, for inspection by tests and `verify`.
    pub fn store(&self) -> &Store {
        &self.store
    }

    /// Mutable access to the store, for test hooks that inject divergence.
    pub fn store_mut(&mut self) -> &mut Store {
        &mut self.store
    }

    /// True if this node would serve a read of partition `p` at time `now`:
    /// it holds a lease and its activated primary role for the view's term.
    /// For inspection: the simulator checks that no two nodes ever could.
    pub fn serves_reads(&self, p: PartitionId, now: Time) -> bool {
        let term = self.view.partitions.get(p as usize).map(|i| i.term);
        self.view.is_live_incarnation(self.id, self.incarnation)
            && now < self.lease_until
            && self
                .leaders
                .get(&p)
                .is_some_and(|l| Some(l.term) == term && l.activated())
    }

    /// Until when this node holds a lease, on its clock. For inspection:
    /// the simulator checks it against the acknowledgements it delivered.
    pub fn lease_until(&self) -> Time {
        self.lease_until
    }

    /// The largest value accepted.
    pub fn max_value(&self) -> usize {
        self.max_value
    }

    /// Takes the outputs produced so far.
    pub fn take_outputs(&mut self) -> Vec<Output> {
        std::mem::take(&mut self.out)
    }

    /// True if outputs wait to be taken.
    pub fn has_outputs(&self) -> bool {
        !self.out.is_empty()
    }

    /// Counts an internal message dropped as invalid. Peers are trusted
    /// only to be members of the cluster, not to be correct, so nothing
    /// they send is acted on before it is checked; what fails is counted
    /// (reported in heartbeats, shown by `nodes`), never a panic.
    pub fn count_rejected(&mut self, _why: &str) {
        self.rejected += 1;
    }

    /// Internal messages dropped as invalid so far.
    pub fn rejected(&self) -> u64 {
        self.rejected
    }

    /// Records the peers the transport has no socket to; heartbeats report
    /// them, and the leader does not call the cluster healthy meanwhile.
    pub fn set_unreachable(&mut self, peers: Vec<NodeId>) {
        self.unreachable = peers;
    }

    /// True if this node may act as primary now: its incarnation is live in
    /// the view and its lease has not run out.
    fn has_lease(&self) -> bool {
        self.view.is_live_incarnation(self.id, self.incarnation) && self.now < self.lease_until
    }

    fn send(&mut self, to: Address, message: Message) {
        let env = Envelope {
            from: Address::Node(self.id),
            to,
            epoch: self.view.epoch,
            message,
        };
        self.out.push(Output::Send(env));
    }

    fn reply(&mut self, client: ClientId, response: Response) {
        let counter = match &response {
            Response::Error { .. } => &mut self.served.errors,
            Response::Value { .. } => &mut self.served.reads,
            Response::Done {
                existed: Some(_), ..
            } => &mut self.served.deletes,
            Response::Done { .. } => &mut self.served.writes,
            Response::Collection { .. } => &mut self.served.scans,
            Response::View { .. } | Response::Locks { .. } => &mut self.served.reads,
            Response::Swapped { .. }
            | Response::Lock { .. }
            | Response::Unlocked { .. }
            | Response::Written { .. } => &mut self.served.writes,
        };
        *counter += 1;
        self.out.push(Output::Reply { client, response });
    }

    fn flush(&mut self, msgs: Vec<(NodeId, Message)>) {
        for (to, m) in msgs {
            self.send(Address::Node(to), m);
        }
    }

    // ---- Client requests ------------------------------------------------

    /// Handles a client request.
    pub fn on_client(&mut self, now: Time, client: ClientId, request: Request) {
        self.sweep = true;
        self.now = now;
        match request {
            Request::Put { key, value, id } => {
                if value.len() > self.max_value {
                    let err = Error::TooLarge(format!(
                        "value of {} bytes exceeds the limit of {} bytes",
                        value.len(),
                        self.max_value
                    ));
                    self.reply(client, Response::error(&err, id));
                    return;
                }
                self.start(client, id, KeyOp::Put { key, value })
            }
            Request::GetOne { key, id } => self.start(client, id, KeyOp::Get { key }),
            Request::Delete { key, id } => self.start(client, id, KeyOp::Delete { key }),
            Request::View { id } => {
                if self.views_this_tick >= MAX_VIEWS_PER_TICK {
                    let err = Error::Busy(format!(
                        "{} answers at most {MAX_VIEWS_PER_TICK} VIEW requests at once",
                        node_name(self.id)
                    ));
                    return self.reply(client, Response::error(&err, id));
                }
                self.views_this_tick += 1;
                let view = Box::new(self.view.clone());
                self.reply(client, Response::View { view, id })
            }
            Request::GetAll {
                prefix,
                limit,
                cursor,
                id,
            } => self.start_scan(client, id, prefix, limit, cursor),
            Request::Cas { .. }
            | Request::Lock { .. }
            | Request::Unlock { .. }
            | Request::Locks { .. } => self.on_atomic_request(client, request),
            Request::Mput { pairs, id } => self.on_mput(client, pairs, id),
        }
    }

    fn start(&mut self, client: ClientId, id: Option<serde_json::Value>, op: KeyOp) {
        // A read this node can serve as primary is answered at once, with no
        // pending entry and no copy of the key: the common case under load.
        // Anything else (not the primary, no lease, taking over) takes the
        // general path below, which retries and forwards.
        if let KeyOp::Get { key } = &op {
            let p = self.view.partition_of(key);
            if matches!(self.primary_for(p), Ok(n) if n == self.id) {
                if let Ok(value) = self.read_local(p, key) {
                    if let KeyOp::Get { key } = op {
                        self.reply(client, Response::Value { key, value, id });
                    }
                    return;
                }
            }
        }
        self.enqueue(client, id, op, None);
    }

    /// Puts a request in the pending table and routes it: a client's, or
    /// a step of an `MPUT` (then `client` and `id` are unused).
    fn enqueue(
        &mut self,
        client: ClientId,
        id: Option<serde_json::Value>,
        op: KeyOp,
        step: Option<TxnStep>,
    ) {
        let request = self.next_request;
        self.next_request += 1;
        let deadline = self.now + self.cfg.request_timeout;
        self.pending.insert(
            request,
            Pending {
                client,
                id,
                op,
                deadline,
                state: PendingState::Retry { at: self.now },
                last_error: None,
                step,
            },
        );
        self.route(request);
    }

    /// Routes a pending request: serve it here, or forward it to the primary.
    fn route(&mut self, request: RequestId) {
        let Some(pending) = self.pending.get(&request) else {
            return;
        };
        let op = pending.op.clone();
        let p = self.view.partition_of(op.key());
        match self.primary_for(p) {
            Err(e) => self.retry_later(request, e),
            Ok(primary) if primary == self.id && !self.has_lease() => {
                // Retrying here cannot help: a node cut off from the view
                // leader gets no lease until the fault heals, long after the
                // cluster has failed over without it, and until then it
                // does not hear of the new primary either. So it says so at
                // once, and a client with a newer view goes there. Nothing
                // was applied: this is the first thing a primary checks.
                self.finish(request, Err(self.no_lease()));
            }
            Ok(primary) if primary == self.id => {
                if let Some(pd) = self.pending.get_mut(&request) {
                    pd.state = PendingState::Local;
                }
                let waiter = Waiter::Forward {
                    node: self.id,
                    request,
                };
                match self.serve(p, op, waiter) {
                    Some(Ok(result)) => self.finish(request, Ok(result)),
                    Some(Err(e)) => self.on_forward_result(request, Err(e)),
                    None => {} // A write waits to commit.
                }
            }
            Ok(primary) => {
                if let Some(pd) = self.pending.get_mut(&request) {
                    pd.state = PendingState::Forwarded {
                        to: primary,
                        at: self.now,
                    };
                }
                self.send(Address::Node(primary), Message::Forward { request, op });
            }
        }
    }

    /// The primary to send a partition's requests to, or why there is none.
    fn primary_for(&self, p: PartitionId) -> Result<NodeId, Error> {
        if self.view.epoch == 0 {
            return Err(Error::Unavailable(
                "the cluster is starting: no view yet".into(),
            ));
        }
        let Some(primary) = self.view.primary(p) else {
            return Err(Error::Unavailable(format!(
                "partition {p} has no live replica"
            )));
        };
        if self
            .view
            .nodes
            .get(&primary)
            .is_none_or(|n| n.state == NodeState::Dead)
        {
            return Err(Error::Unavailable(format!(
                "partition {p} has no live replica"
            )));
        }
        Ok(primary)
    }

    fn retry_later(&mut self, request: RequestId, error: Error) {
        let now = self.now;
        let backoff = self.cfg.retry_backoff;
        if let Some(p) = self.pending.get_mut(&request) {
            p.state = PendingState::Retry { at: now + backoff };
            p.last_error = Some(error);
        }
    }

    /// The outcome of a forward (or a local attempt): finish, or retry if
    /// that is safe. A write is retried only if it was certainly not applied:
    /// applying it twice could make a later read see its value come back.
    fn on_forward_result(&mut self, request: RequestId, result: Result<KeyOpResult, Error>) {
        let Some(pending) = self.pending.get(&request) else {
            return;
        };
        match result {
            Ok(r) => self.finish(request, Ok(r)),
            // A prepare that meets another MPUT's intent votes no at once
            // rather than wait: two MPUTs each holding a key the other
            // wants would otherwise wait for each other.
            Err(Error::Busy(m)) if matches!(pending.step, Some(TxnStep::Prepare(..))) => {
                self.finish(request, Err(Error::Busy(m)))
            }
            Err(e) if e.is_retryable() && (!e.is_indefinite() || !pending.op.is_write()) => {
                if self.now < pending.deadline {
                    self.retry_later(request, e);
                } else {
                    self.finish(request, Err(e));
                }
            }
            Err(e) => self.finish(request, Err(e)),
        }
    }

    fn finish(&mut self, request: RequestId, result: Result<KeyOpResult, Error>) {
        let Some(p) = self.pending.remove(&request) else {
            return;
        };
        if let Some(step) = p.step {
            return self.on_txn_step(step, result);
        }
        let key = p.op.key().to_string();
        let response = match result {
            Ok(KeyOpResult::Written) => Response::Done {
                ok: true,
                key,
                existed: None,
                id: p.id,
            },
            Ok(KeyOpResult::Deleted(existed)) => Response::Done {
                ok: true,
                key,
                existed: Some(existed),
                id: p.id,
            },
            Ok(KeyOpResult::Value(value)) => Response::Value {
                key,
                value,
                id: p.id,
            },
            Ok(r) => atomic::response(key, r, p.id),
            Err(e) => Response::error(&e, p.id),
        };
        self.reply(p.client, response);
    }

    /// Serves an operation as the partition's primary. Returns the result
    /// now, or `None` if a write is waiting for its replicas.
    fn serve(
        &mut self,
        p: PartitionId,
        op: KeyOp,
        waiter: Waiter,
    ) -> Option<Result<KeyOpResult, Error>> {
        let (key, value) = match op {
            KeyOp::Get { key } => return Some(self.read_local(p, &key).map(KeyOpResult::Value)),
            KeyOp::Put { key, value } => (key, Some(value)),
            KeyOp::Delete { key } => (key, None),
            KeyOp::Conditional { key, op } => return self.serve_conditional(p, key, op, waiter),
            KeyOp::Txn { key, op } => return self.serve_txn(p, key, op, waiter),
        };
        if let Err(e) = self.may_serve(p, &key, Serve::Write) {
            return Some(Err(e));
        }
        let deadline = self.now + self.cfg.request_timeout;
        let mut msgs = Vec::new();
        self.active.insert(p);
        let Some(leader) = self.leaders.get_mut(&p) else {
            return Some(Err(no_leader(p)));
        };
        let done = leader.write(
            key,
            value,
            waiter,
            deadline,
            &mut self.store,
            self.now,
            &mut msgs,
        );
        self.flush(msgs);
        self.complete(done);
        None
    }

    /// Reads `key` of partition `p` as its primary: the committed value,
    /// without asking the secondaries (the lease says no other node can
    /// have accepted a write since).
    fn read_local(&self, p: PartitionId, key: &str) -> Result<Option<String>, Error> {
        self.may_serve(p, key, Serve::Read)?;
        let leader = self.leaders.get(&p).ok_or_else(|| no_leader(p))?;
        Ok(leader.read(key, &self.store))
    }

    /// Whether this node may serve `what` on `key` of partition `p` as its
    /// primary now: the checks every read, write, conditional operation
    /// and `MPUT` step makes first, in one place.
    ///
    /// 1. It holds its lease and leads `p` at the view's term.
    /// 2. No prepared `MPUT` holds the key (except for the `MPUT`'s own
    ///    steps, which are decided on the intent itself). A write checks
    ///    the latest intent, in flight or committed; a read only the
    ///    committed one: reading the old value now and the new one of
    ///    another key of the `MPUT` a moment later would show part of it.
    /// 3. Anything that reads (a read, or a decision on the latest value)
    ///    waits for a new primary's resync (docs/architecture.md §4): the
    ///    latest value may be an old term's write that an in-sync
    ///    secondary lacks.
    fn may_serve(&self, p: PartitionId, key: &str, what: Serve) -> Result<(), Error> {
        self.check_primary(p)?;
        let held = match what {
            Serve::Write | Serve::Decide => self.held_by(p, key, true),
            Serve::Read => self.held_by(p, key, false),
            Serve::TxnStep => None,
        };
        if let Some(txn) = held {
            return Err(crate::node::txn::conflict(key, &txn));
        }
        let leader = self.leaders.get(&p).ok_or_else(|| no_leader(p))?;
        if what != Serve::Write && !leader.activated() {
            return Err(Error::Unavailable(format!(
                "partition {p} has a new primary that is still taking over"
            )));
        }
        Ok(())
    }

    /// Why this node may not act as the primary of partition `p` now, if it
    /// may not: its lease ran out, or it does not lead `p` at the view's term.
    fn check_primary(&self, p: PartitionId) -> Result<(), Error> {
        if !self.has_lease() {
            return Err(self.no_lease());
        }
        let term = self.view.partitions.get(p as usize).map(|i| i.term);
        if self.leaders.get(&p).is_none_or(|l| Some(l.term) != term) {
            return Err(Error::NotPrimary(format!(
                "{} is not the primary of partition {p} at epoch {}",
                node_name(self.id),
                self.view.epoch
            )));
        }
        Ok(())
    }

    fn no_lease(&self) -> Error {
        Error::Unavailable(format!(
            "{} has no valid lease at epoch {}",
            node_name(self.id),
            self.view.epoch
        ))
    }

    /// Delivers finished writes to their waiters.
    fn complete(&mut self, done: Vec<Completion>) {
        for (waiters, result) in done {
            for w in waiters {
                match w {
                    Waiter::Forward { node, request } if node == self.id => {
                        self.on_forward_result(request, result.clone());
                    }
                    Waiter::Forward { node, request } => {
                        self.send(
                            Address::Node(node),
                            Message::ForwardResponse {
                                request,
                                result: result.clone(),
                            },
                        );
                    }
                }
            }
        }
    }
}
