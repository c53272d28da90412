//! The simulated world: one view leader, N nodes, the network between
//! them, the clients, and the agenda that drives them all.
//!
//! The world owns every state machine and is the only thing that calls
//! them. Processing an event means handing one input to one state machine
//! (a message, a client request or a tick, with the time), then routing
//! whatever it outputs: messages go through the [`Network`] and come back as
//! later deliveries, replies go to the clients. A node's inputs are held,
//! not lost, while it is paused, and everything sent to a crashed
//! incarnation is gone.
//!
//! After every event the world checks the invariants of
//! [`super::invariants`].

use super::config::{FaultMode, Sabotage, SimConfig};
use super::events::{Event, Queue};
use super::network::{Fate, Micros, Network};
use super::report::{SimReport, SimViolation};
use super::trace::describe;
use super::workload::{Next, Workload};
use crate::cluster::leader::{EventKind, LeaderConfig, ViewLeader};
use crate::node::core::{ClientId, Node, Output};
use crate::node::message::{Address, Envelope, Message};
use crate::node::protocol::{Request, Response};
use crate::view::placement::{Placement, Strategy, DEFAULT_VNODES};
use crate::view::{node_name, Incarnation, NodeId, PartitionId, Time};
use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};
use std::collections::{BTreeMap, BTreeSet};

/// Both the nodes and the leader tick this often, as the ZeroMQ runtime
/// does.
pub const TICK_US: Micros = 5_000;
/// Largest value a client may write.
pub const MAX_VALUE: usize = 1024;
/// Largest delay between a client and its node, each way.
const CLIENT_DELAY_US: Micros = 500;

/// An input held for a paused node.
#[derive(Debug)]
pub(super) enum Held {
    Message(Envelope),
    Request(ClientId, Request),
}

/// What a node id is running now.
#[derive(Debug)]
pub(super) enum SlotState {
    /// Running.
    Up(Box<Node>),
    /// Frozen: inputs wait in the inbox.
    Paused { node: Box<Node>, inbox: Vec<Held> },
    /// Crashed: memory gone until a restart.
    Crashed,
}

/// One node id and the incarnation it runs.
#[derive(Debug)]
pub(super) struct Slot {
    pub incarnation: Incarnation,
    pub state: SlotState,
}

impl Slot {
    pub fn node(&self) -> Option<&Node> {
        match &self.state {
            SlotState::Up(n) | SlotState::Paused { node: n, .. } => Some(n),
            SlotState::Crashed => None,
        }
    }

    pub fn node_mut(&mut self) -> Option<&mut Node> {
        match &mut self.state {
            SlotState::Up(n) | SlotState::Paused { node: n, .. } => Some(n),
            SlotState::Crashed => None,
        }
    }

    pub fn crashed(&self) -> bool {
        matches!(self.state, SlotState::Crashed)
    }

    pub fn up(&self) -> bool {
        matches!(self.state, SlotState::Up(_))
    }
}

/// The world. See the module docs.
pub(super) struct World<'t> {
    pub cfg: SimConfig,
    pub rng: SmallRng,
    pub now: Micros,
    pub queue: Queue,
    pub leader: ViewLeader,
    /// `Some` while the leader is paused: its held messages.
    pub leader_inbox: Option<Vec<Envelope>>,
    pub slots: BTreeMap<NodeId, Slot>,
    pub next_incarnation: Incarnation,
    /// The id the next new node gets.
    pub next_node: NodeId,
    pub net: Network,
    /// Numbers bursts, so that each ends only itself.
    pub burst_id: u64,
    pub workload: Workload,
    pub report: SimReport,
    /// Partitions whose every in-sync copy was lost, and when.
    pub lost: BTreeMap<PartitionId, Micros>,
    /// Partitions already reported with two read servers.
    pub two_servers: BTreeSet<PartitionId>,
    /// A digest of the entry sent under each (partition, stream, sequence
    /// number): resends must repeat it exactly.
    pub stream_entries: BTreeMap<(PartitionId, [u64; 4]), u64>,
    /// Partitions already reported with a reused stream.
    pub reused: BTreeSet<PartitionId>,
    /// When each heartbeat really left, by (node, incarnation, its
    /// `sent_at`): a lease runs from there, whatever the node's clock says.
    pub heartbeats_sent: BTreeMap<(NodeId, Incarnation, Time), Time>,
    /// The end of the latest lease each incarnation's acknowledgements can
    /// have granted, on the simulator's clock.
    pub granted: BTreeMap<(NodeId, Incarnation), Time>,
    /// Nodes already reported serving with an expired lease.
    pub expired: BTreeSet<NodeId>,
    /// Since when each node the leader lists as a primary has held no
    /// lease, while the leader called the cluster healthy.
    pub leaseless_since: BTreeMap<NodeId, Micros>,
    /// Nodes already reported leading without a lease while healthy.
    pub leaseless_reported: BTreeSet<NodeId>,
    pub leader_epoch: u64,
    pub trace: Option<&'t mut dyn FnMut(&str)>,
}

impl std::fmt::Debug for World<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("World")
            .field("now", &self.now)
            .field("slots", &self.slots.len())
            .finish()
    }
}

impl<'t> World<'t> {
    /// A world at time zero: every node started, nothing scheduled yet.
    pub fn new(seed: u64, mut cfg: SimConfig, trace: Option<&'t mut dyn FnMut(&str)>) -> Self {
        if cfg.sabotage == Some(Sabotage::SkipReplication) {
            cfg.node.stream.skip_replication = true;
        }
        if cfg.sabotage == Some(Sabotage::ReadThroughIntents) {
            cfg.node.read_through_intents = true;
        }
        let bootstrap: Vec<NodeId> = (1..=cfg.nodes as NodeId).collect();
        let leader = ViewLeader::new(LeaderConfig {
            partitions: cfg.partitions,
            replicas: cfg.replicas,
            placement: Placement::new(Strategy::Ring, DEFAULT_VNODES),
            suspect_timeout: cfg.suspect_timeout,
            failure_timeout: cfg.failure_timeout,
            auto_rebalance: true,
            bootstrap: bootstrap.clone(),
        });
        let mut world = World {
            rng: SmallRng::seed_from_u64(seed),
            now: 0,
            queue: Queue::default(),
            leader,
            leader_inbox: None,
            slots: BTreeMap::new(),
            next_incarnation: 1,
            next_node: cfg.nodes as NodeId + 1,
            net: Network::new(cfg.loss_pct, cfg.max_delay_us),
            burst_id: 0,
            workload: Workload::new(cfg.clients, cfg.keys),
            report: SimReport {
                seed,
                ..SimReport::default()
            },
            lost: BTreeMap::new(),
            two_servers: BTreeSet::new(),
            stream_entries: BTreeMap::new(),
            reused: BTreeSet::new(),
            heartbeats_sent: BTreeMap::new(),
            granted: BTreeMap::new(),
            expired: BTreeSet::new(),
            leaseless_since: BTreeMap::new(),
            leaseless_reported: BTreeSet::new(),
            leader_epoch: 0,
            trace,
            cfg,
        };
        for id in bootstrap {
            let incarnation = world.take_incarnation();
            let node = world.make_node(id, incarnation);
            world.slots.insert(
                id,
                Slot {
                    incarnation,
                    state: SlotState::Up(node),
                },
            );
        }
        world
    }

    pub fn take_incarnation(&mut self) -> Incarnation {
        let i = self.next_incarnation;
        self.next_incarnation += 1;
        i
    }

    pub fn make_node(&self, id: NodeId, incarnation: Incarnation) -> Box<Node> {
        let endpoint = format!("sim://{}/inc{incarnation}", node_name(id));
        let peer_endpoint = format!("sim://{}/peer/inc{incarnation}", node_name(id));
        Box::new(Node::new(
            id,
            incarnation,
            (endpoint, peer_endpoint),
            self.cfg.partitions,
            self.cfg.node,
            MAX_VALUE,
        ))
    }

    /// Virtual time in milliseconds, as the leader sees it.
    pub fn now_ms(&self) -> Time {
        self.now / 1000
    }

    /// A node's clock. Every clock is the simulator's, except a sabotaged
    /// slow one.
    pub fn node_now(&self, id: NodeId) -> Time {
        match self.cfg.sabotage {
            Some(Sabotage::SlowClock(n)) if n == id => self.now_ms() / 2,
            _ => self.now_ms(),
        }
    }

    /// Writes a trace line, if tracing.
    pub fn trace(&mut self, line: impl FnOnce() -> String) {
        if let Some(t) = self.trace.as_mut() {
            let now = self.now;
            t(&format!("{:>6}.{:03} {}", now / 1000, now % 1000, line()));
        }
    }

    // ---- The loop ---------------------------------------------------------

    /// Schedules the first ticks, client requests, faults and sabotage.
    pub fn start(&mut self) {
        let ids: Vec<NodeId> = self.slots.keys().copied().collect();
        for id in ids {
            let phase = self.rng.gen_range(0..TICK_US);
            self.queue.push(phase, Event::TickNode(id));
        }
        let phase = self.rng.gen_range(0..TICK_US);
        self.queue.push(phase, Event::TickLeader);
        for c in 0..self.workload.clients() {
            let at = self.rng.gen_range(0..100_000);
            self.queue.push(at, Event::ClientWake(c));
        }
        if self.cfg.faults != FaultMode::None {
            let at = 500_000 + self.fault_gap();
            self.queue.push(at, Event::Fault);
        }
        if self.cfg.sabotage == Some(Sabotage::WipeSecondary) {
            self.queue.push(1_000_000, Event::Sabotage);
        }
    }

    /// Processes every event before `until`, then sets the clock to it.
    pub fn run_until(&mut self, until: Micros) {
        while self.queue.peek_time().is_some_and(|t| t < until) {
            let (at, event) = self.queue.pop().expect("peeked");
            self.now = at;
            self.report.events += 1;
            self.handle(event);
            self.check_read_servers();
        }
        self.now = until;
    }

    fn handle(&mut self, event: Event) {
        match event {
            Event::Deliver { env, incarnation } => self.deliver(env, incarnation),
            Event::Request {
                node,
                incarnation,
                client,
                request,
            } => self.on_request(node, incarnation, client, request),
            Event::Reply { client, response } => self.on_reply(client, response),
            Event::TickNode(id) => {
                if !self.slots.contains_key(&id) {
                    return; // Stopped for good.
                }
                self.queue.push(self.now + TICK_US, Event::TickNode(id));
                let now = self.node_now(id);
                if let Some(Slot {
                    state: SlotState::Up(node),
                    ..
                }) = self.slots.get_mut(&id)
                {
                    node.tick(now);
                    self.flush_node(id);
                }
            }
            Event::TickLeader => {
                self.queue.push(self.now + TICK_US, Event::TickLeader);
                if self.leader_inbox.is_none() {
                    self.leader.tick(self.now_ms());
                    self.flush_leader();
                    self.check_leased_primaries();
                }
            }
            Event::ClientWake(c) => self.client_wake(c),
            Event::ClientGiveUp(id) => {
                let what = self.workload.describe(id);
                if let Next::Wake(c) = self.workload.give_up(id, self.now) {
                    self.trace(|| format!("client gives up: {}", what.unwrap_or_default()));
                    self.schedule_wake(c, false);
                }
            }
            Event::Fault => self.on_fault(),
            Event::Restart(id) => self.restart(id),
            Event::Resume(id) => self.resume(id),
            Event::ResumeLeader => self.resume_leader(),
            Event::Heal(cut) => {
                if self.net.cuts() > 0 {
                    self.trace(|| format!("heal cut #{cut}"));
                }
                self.net.heal(cut);
            }
            Event::EndBurst(id) => {
                if id == self.burst_id && self.net.burst().is_some() {
                    self.trace(|| "burst ends".into());
                    self.net.end_burst();
                }
            }
            Event::Sabotage => self.sabotage(),
            Event::Stop(id) => self.stop(id),
        }
    }

    // ---- Messages ---------------------------------------------------------

    /// Hands a message to the network. Returns it if the sender should hear
    /// that it certainly did not leave (its receiver is crashed, so there is
    /// no connection to send on).
    fn transmit(&mut self, mut env: Envelope) -> Option<Envelope> {
        self.report.messages.sent += 1;
        if self.cfg.sabotage == Some(Sabotage::HideLeaseLoss) {
            if let Message::Heartbeat {
                sent_at,
                lease_until,
                ..
            } = &mut env.message
            {
                *lease_until = *sent_at + self.cfg.node.lease;
            }
        }
        if let Message::Replicate {
            partition,
            stream,
            seq,
            entry,
        } = &env.message
        {
            self.check_stream_entry(*partition, *stream, *seq, entry);
        }
        if let (
            Address::Node(n),
            Message::Heartbeat {
                sent_at,
                incarnation,
                ..
            },
        ) = (env.from, &env.message)
        {
            self.note_heartbeat(n, *incarnation, *sent_at);
        }
        let incarnation = match env.to {
            Address::Leader => 0,
            Address::Node(n) => match self.slots.get(&n) {
                Some(s) if !s.crashed() => s.incarnation,
                _ => {
                    self.report.messages.undeliverable += 1;
                    // Whether the sender's socket notices depends on timing.
                    return self.rng.gen_bool(0.5).then_some(env);
                }
            },
        };
        match self.net.send(&mut self.rng, env.from, env.to) {
            Fate::Deliver(delay) => self
                .queue
                .push(self.now + delay, Event::Deliver { env, incarnation }),
            Fate::Lost => {
                self.report.messages.lost += 1;
                self.trace(|| format!("lost {}", describe(&env)));
            }
            Fate::Cut => {
                self.report.messages.cut += 1;
                self.trace(|| format!("cut {}", describe(&env)));
            }
        }
        None
    }

    fn deliver(&mut self, env: Envelope, incarnation: Incarnation) {
        match env.to {
            Address::Leader => {
                if let Some(inbox) = self.leader_inbox.as_mut() {
                    inbox.push(env);
                    return;
                }
                self.report.messages.delivered += 1;
                self.trace(|| format!("deliver {}", describe(&env)));
                self.leader.on_message(self.now_ms(), env);
                self.flush_leader();
            }
            Address::Node(id) => {
                let now = self.node_now(id);
                let Some(slot) = self.slots.get_mut(&id) else {
                    return;
                };
                if slot.incarnation != incarnation || slot.crashed() {
                    self.report.messages.undeliverable += 1;
                    return;
                }
                match &mut slot.state {
                    SlotState::Paused { inbox, .. } => inbox.push(Held::Message(env)),
                    SlotState::Up(node) => {
                        let line = self
                            .trace
                            .is_some()
                            .then(|| format!("deliver {}", describe(&env)));
                        Self::note_ack(
                            &self.heartbeats_sent,
                            &mut self.granted,
                            self.cfg.node.lease,
                            id,
                            incarnation,
                            &env,
                        );
                        node.on_message(now, env);
                        self.report.messages.delivered += 1;
                        if let Some(line) = line {
                            self.trace(|| line);
                        }
                        self.flush_node(id);
                    }
                    SlotState::Crashed => {}
                }
            }
        }
    }

    /// Routes a node's outputs until it has none.
    pub fn flush_node(&mut self, id: NodeId) {
        loop {
            let outputs = match self.slots.get_mut(&id).map(|s| &mut s.state) {
                Some(SlotState::Up(node)) => node.take_outputs(),
                _ => return,
            };
            if outputs.is_empty() {
                return;
            }
            for o in outputs {
                match o {
                    Output::Send(env) => {
                        if let Some(env) = self.transmit(env) {
                            self.trace(|| format!("send failed: {}", describe(&env)));
                            if let Some(SlotState::Up(node)) =
                                self.slots.get_mut(&id).map(|s| &mut s.state)
                            {
                                node.on_send_failed(&env);
                            }
                        }
                    }
                    Output::Reply { client, response } => {
                        let delay = self.rng.gen_range(0..=CLIENT_DELAY_US);
                        self.queue
                            .push(self.now + delay, Event::Reply { client, response });
                    }
                }
            }
        }
    }

    /// Routes the leader's outputs and takes note of its events.
    pub fn flush_leader(&mut self) {
        for env in self.leader.take_outputs() {
            self.transmit(env);
        }
        for e in self.leader.take_events() {
            self.report.leader_events += 1;
            match e.kind {
                EventKind::Promoted { .. } => self.report.promotions += 1,
                EventKind::LeaseFailover { .. } => self.report.lease_failovers += 1,
                EventKind::DataLost { partition } => {
                    self.mark_lost(partition, "the leader declared it lost")
                }
                EventKind::Left { node } => {
                    // The operator stops it once it sees it gone, as
                    // `Cluster::wait_removed` does, after a poll or two.
                    let delay = self.rng.gen_range(0..=20_000);
                    self.queue.push(self.now + delay, Event::Stop(node));
                }
                _ => {}
            }
            self.trace(|| format!("leader: epoch {}: {}", e.epoch, e.kind));
        }
        if self.leader.view().epoch != self.leader_epoch {
            self.leader_epoch = self.leader.view().epoch;
            self.track_lost();
        }
    }

    // ---- Clients ----------------------------------------------------------

    fn client_wake(&mut self, c: usize) {
        let candidates: Vec<NodeId> = self
            .slots
            .iter()
            .filter(|(_, s)| !s.crashed())
            .map(|(id, _)| *id)
            .collect();
        if candidates.is_empty() {
            self.schedule_wake(c, true);
            return;
        }
        let node = candidates[self.rng.gen_range(0..candidates.len())];
        let incarnation = self.slots[&node].incarnation;
        let Some((id, request)) = self.workload.next_request(c, node, self.now, &mut self.rng)
        else {
            return;
        };
        let what = self.workload.describe(id).unwrap_or_default();
        self.trace(|| format!("client -> {}: {what}", node_name(node)));
        let delay = self.rng.gen_range(0..=CLIENT_DELAY_US);
        self.queue.push(
            self.now + delay,
            Event::Request {
                node,
                incarnation,
                client: id,
                request,
            },
        );
        let give_up = (self.cfg.node.request_timeout + 1000) * 1000;
        self.queue.push(self.now + give_up, Event::ClientGiveUp(id));
    }

    /// Wakes a client after its think time (longer after a failed final
    /// read, or when there was no node to talk to).
    pub fn schedule_wake(&mut self, c: usize, backoff: bool) {
        let delay = if backoff || self.workload.is_final_reader(c) {
            50_000
        } else {
            self.rng.gen_range(0..=10_000)
        };
        self.queue.push(self.now + delay, Event::ClientWake(c));
    }

    fn on_request(
        &mut self,
        id: NodeId,
        incarnation: Incarnation,
        client: ClientId,
        request: Request,
    ) {
        let now = self.node_now(id);
        let Some(slot) = self.slots.get_mut(&id) else {
            return;
        };
        if slot.incarnation != incarnation {
            return; // The connection died with the incarnation.
        }
        match &mut slot.state {
            SlotState::Up(node) => {
                node.on_client(now, client, request);
                self.flush_node(id);
            }
            SlotState::Paused { inbox, .. } => inbox.push(Held::Request(client, request)),
            SlotState::Crashed => {}
        }
    }

    fn on_reply(&mut self, client: ClientId, response: Response) {
        let ops = self.workload.ops_of(client);
        match self.workload.on_reply(client, response, self.now) {
            Ok(Next::Wake(c)) => {
                if let Some(ops) = ops {
                    let line = self.workload.describe_ops(ops);
                    self.trace(|| format!("client <- {line}"));
                }
                self.schedule_wake(c, false);
            }
            Ok(Next::Idle) => {}
            Err(detail) => {
                self.trace(|| format!("VIOLATION: bad reply: {detail}"));
                self.report
                    .violations
                    .push(SimViolation::BadReply { detail });
            }
        }
    }

    // ---- Node lifecycle ---------------------------------------------------

    /// Crashes a node: its memory, inbox and connections are gone.
    pub fn crash(&mut self, id: NodeId) {
        let Some(slot) = self.slots.get_mut(&id) else {
            return;
        };
        slot.state = SlotState::Crashed;
        self.report.faults.crashes += 1;
        self.trace(|| format!("FAULT crash {}", node_name(id)));
        for c in self.workload.node_crashed(id, self.now) {
            self.schedule_wake(c, false);
        }
        self.track_lost();
    }

    /// Starts a node with a new id, which joins the cluster.
    pub fn add_node(&mut self) -> NodeId {
        let id = self.next_node;
        self.next_node += 1;
        let incarnation = self.take_incarnation();
        let node = self.make_node(id, incarnation);
        self.slots.insert(
            id,
            Slot {
                incarnation,
                state: SlotState::Up(node),
            },
        );
        let phase = self.rng.gen_range(0..TICK_US);
        self.queue.push(self.now + phase, Event::TickNode(id));
        self.trace(|| format!("start new node {}", node_name(id)));
        id
    }

    /// Stops a node for good: it left the cluster.
    pub fn stop(&mut self, id: NodeId) {
        if self.slots.remove(&id).is_none() {
            return;
        }
        self.trace(|| format!("stop {}: it left the cluster", node_name(id)));
        for c in self.workload.node_crashed(id, self.now) {
            self.schedule_wake(c, false);
        }
    }

    /// Starts a crashed node again, empty, as a new incarnation.
    pub fn restart(&mut self, id: NodeId) {
        if !self.slots.get(&id).is_some_and(|s| s.crashed()) {
            return;
        }
        let incarnation = self.take_incarnation();
        let node = self.make_node(id, incarnation);
        self.slots.insert(
            id,
            Slot {
                incarnation,
                state: SlotState::Up(node),
            },
        );
        self.report.faults.restarts += 1;
        self.trace(|| format!("restart {} as incarnation {incarnation}", node_name(id)));
    }

    /// Freezes a node.
    pub fn pause(&mut self, id: NodeId) {
        let Some(slot) = self.slots.get_mut(&id) else {
            return;
        };
        let state = std::mem::replace(&mut slot.state, SlotState::Crashed);
        slot.state = match state {
            SlotState::Up(node) => SlotState::Paused {
                node,
                inbox: Vec::new(),
            },
            other => other,
        };
        self.report.faults.pauses += 1;
        self.trace(|| format!("FAULT pause {}", node_name(id)));
    }

    /// Resumes a paused node: it handles what waited for it, then ticks
    /// with the clock that jumped meanwhile.
    pub fn resume(&mut self, id: NodeId) {
        let now = self.node_now(id);
        let Some(slot) = self.slots.get_mut(&id) else {
            return;
        };
        let state = std::mem::replace(&mut slot.state, SlotState::Crashed);
        let (mut node, inbox) = match state {
            SlotState::Paused { node, inbox } => (node, inbox),
            other => {
                slot.state = other;
                return;
            }
        };
        let held = inbox.len();
        let incarnation = self.slots[&id].incarnation;
        for h in inbox {
            match h {
                Held::Message(env) => {
                    self.report.messages.delivered += 1;
                    Self::note_ack(
                        &self.heartbeats_sent,
                        &mut self.granted,
                        self.cfg.node.lease,
                        id,
                        incarnation,
                        &env,
                    );
                    node.on_message(now, env);
                }
                Held::Request(client, request) => node.on_client(now, client, request),
            }
        }
        node.tick(now);
        self.slots.get_mut(&id).expect("slot exists").state = SlotState::Up(node);
        self.trace(|| format!("resume {} ({held} inputs waited)", node_name(id)));
        self.flush_node(id);
    }

    /// Freezes the leader.
    pub fn pause_leader(&mut self) {
        if self.leader_inbox.is_none() {
            self.leader_inbox = Some(Vec::new());
            self.leaseless_since.clear();
            self.report.faults.leader_pauses += 1;
            self.trace(|| "FAULT pause the leader".into());
        }
    }

    /// Resumes the leader.
    pub fn resume_leader(&mut self) {
        let Some(inbox) = self.leader_inbox.take() else {
            return;
        };
        self.leaseless_since.clear();
        self.trace(|| format!("resume the leader ({} messages waited)", inbox.len()));
        for env in inbox {
            self.report.messages.delivered += 1;
            self.leader.on_message(self.now_ms(), env);
        }
        self.leader.tick(self.now_ms());
        self.flush_leader();
    }
}
