//! The view leader thread: runs a [`ViewLeader`] over ZeroMQ.
//!
//! Like a node thread, it owns a peer port (one ROUTER, which every node
//! connects to, see [`crate::node::transport::Outbox`]) and loops over
//! poll, step, tick and send. It has no client port: it listens on
//! `inproc://` only, so nothing outside the process can reach it. It publishes a [`Status`] snapshot to
//! a [`Watch`] after every change (and every 50 ms, for statistics) and appends
//! events to the shared log. Operator commands arrive on a control channel.

use crate::cluster::leader::{Event, LeaderConfig, Plan, Status, ViewLeader};
use crate::cluster::watch::Watch;
use crate::error::{Error, Result};
use crate::node::faults::Faults;
use crate::node::message::{decode, Address, Message};
use crate::node::transport::{classify_peer, peer_endpoint, Clock, Outbox};
use crate::view::placement::Placement;
use crate::view::{Epoch, NodeId};
use crossbeam_channel::{Receiver, Sender};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;

const TICK_MS: u64 = 5;
/// The tick when nothing but heartbeats arrived since the last one: failure
/// detection is then late by at most this, against a timeout of hundreds
/// of milliseconds.
const IDLE_TICK_MS: u64 = 20;
/// Statistics are republished this often; any change at once.
const PUBLISH_EVERY_MS: u64 = 200;

/// Operator commands to the leader.
#[derive(Debug)]
pub enum LeaderControl {
    /// Decommission a node, or remove a dead one; `true` forces it below
    /// R replicas (see [`ViewLeader::decommission`]). Answers with the
    /// epoch of the view that has the change.
    Decommission(NodeId, bool, Sender<Result<Epoch>>),
    /// Switch placement and rebalance.
    SetPlacement(Placement),
    /// Turn automatic rebalancing on or off.
    SetAutoRebalance(bool),
    /// Rebalance to the current target.
    Rebalance,
    /// Start a fresh stream, with a full resync, to every secondary of one
    /// partition or of all.
    Resync(Option<crate::view::PartitionId>),
    /// Compute the rebalancing plan.
    Plan(Sender<Plan>),
    /// Stop the thread.
    Stop,
}

/// The shared, append-only event log.
pub type EventLog = Arc<Mutex<Vec<Event>>>;

/// A running leader thread.
#[derive(Debug)]
pub struct LeaderThread {
    /// The leader's peer endpoint.
    pub endpoint: String,
    /// Its control channel.
    pub control: Sender<LeaderControl>,
    /// The thread.
    pub thread: JoinHandle<()>,
}

/// Starts the leader thread of the cluster named `cluster` in this process;
/// returns once its socket is bound.
#[allow(clippy::too_many_arguments)] // Each is a distinct shared handle.
pub fn spawn(
    ctx: &zmq::Context,
    cluster: &str,
    cfg: LeaderConfig,
    clock: Clock,
    status: Watch<Status>,
    events: EventLog,
    events_tx: Option<Sender<Event>>,
    faults: Arc<Faults>,
) -> Result<LeaderThread> {
    let (control_tx, control_rx) = crossbeam_channel::unbounded();
    let (ready_tx, ready_rx) = crossbeam_channel::bounded(1);
    let ctx = ctx.clone();
    let bind = peer_endpoint(cluster, Address::Leader, 0);
    let thread = std::thread::Builder::new()
        .name("kvsh-leader".into())
        .spawn(move || {
            run(
                ctx, bind, cfg, clock, status, events, events_tx, faults, control_rx, ready_tx,
            )
        })?;
    match ready_rx.recv() {
        Ok(Ok(endpoint)) => Ok(LeaderThread {
            endpoint,
            control: control_tx,
            thread,
        }),
        Ok(Err(e)) => Err(e),
        Err(_) => Err(Error::Internal(
            "leader thread exited before binding".into(),
        )),
    }
}

#[allow(clippy::too_many_arguments)]
fn run(
    ctx: zmq::Context,
    bind: String,
    cfg: LeaderConfig,
    clock: Clock,
    status: Watch<Status>,
    events: EventLog,
    events_tx: Option<Sender<Event>>,
    faults: Arc<Faults>,
    control: Receiver<LeaderControl>,
    ready: Sender<Result<String>>,
) {
    // Before the first socket of the cluster's context: libzmq starts the
    // context's I/O thread from here, and it inherits the policy.
    crate::node::sched::batch_scheduling();
    let mut outbox = match Outbox::bind(&ctx, Address::Leader, 0, &bind, faults, clock) {
        Ok(x) => x,
        Err(e) => {
            let _ = ready.send(Err(e));
            return;
        }
    };
    let _ = ready.send(Ok(bind));
    let mut leader = ViewLeader::new(cfg);
    let mut next_tick: u64 = 0;
    let mut last_publish: u64 = 0;
    let mut published_epoch = u64::MAX;
    // Anything but a heartbeat since the last tick.
    let mut news = true;
    loop {
        let wait = next_tick.saturating_sub(clock.now()).min(IDLE_TICK_MS) as i64;
        let mut items = [outbox.socket().as_poll_item(zmq::POLLIN)];
        if zmq::poll(&mut items, wait).is_err() {
            return;
        }
        while let Ok(frames) = outbox.socket().recv_multipart(zmq::DONTWAIT) {
            // Only envelopes from the node their socket names are read: no
            // node can heartbeat, or report a catch-up, for another.
            let Some(msg) = classify_peer(frames) else {
                continue;
            };
            for payload in msg.batch {
                let Ok(env) = decode(&payload) else { continue };
                if env.from != msg.from || env.to != Address::Leader {
                    continue;
                }
                if let (
                    Address::Node(n),
                    Message::Heartbeat {
                        peer_endpoint,
                        incarnation,
                        ..
                    },
                ) = (env.from, &env.message)
                {
                    if *incarnation != msg.incarnation {
                        continue;
                    }
                    // The node connected to the leader; this names its pipe.
                    let _ = outbox.link(Address::Node(n), *incarnation, peer_endpoint);
                } else {
                    news = true;
                }
                leader.on_message(clock.now(), env);
            }
        }
        if news {
            next_tick = next_tick.min(clock.now() + TICK_MS);
        }
        send(&mut leader, &mut outbox);
        while let Ok(c) = control.try_recv() {
            match c {
                LeaderControl::Decommission(n, force, tx) => {
                    let result = leader.decommission(n, force);
                    let _ = tx.send(result.map(|()| leader.view().epoch));
                }
                LeaderControl::SetPlacement(p) => leader.set_placement(p),
                LeaderControl::SetAutoRebalance(on) => leader.set_auto_rebalance(on),
                LeaderControl::Rebalance => leader.rebalance(),
                LeaderControl::Resync(p) => leader.resync(p),
                LeaderControl::Plan(tx) => {
                    let _ = tx.send(leader.plan());
                }
                LeaderControl::Stop => return,
            }
            last_publish = 0; // Show the effect at once.
            news = true;
        }
        let now = clock.now();
        if now >= next_tick {
            leader.tick(now);
            let idle = !std::mem::take(&mut news) && leader.quiet() && outbox.nothing_delayed();
            next_tick = now + if idle { IDLE_TICK_MS } else { TICK_MS };
        }
        send(&mut leader, &mut outbox);
        outbox.flush_due();
        let new_events = leader.take_events();
        let changed = !new_events.is_empty() || leader.view().epoch != published_epoch;
        if !new_events.is_empty() {
            if let Some(tx) = &events_tx {
                for e in &new_events {
                    let _ = tx.send(e.clone());
                }
            }
            events
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .extend(new_events);
        }
        if changed {
            // Close the sockets of nodes that left (a decommission), so a
            // cluster that grows and shrinks for ever holds no more sockets
            // than it has members.
            outbox.retain(|a| match a {
                Address::Node(n) => leader.peer_endpoint(*n).is_some(),
                Address::Leader => false,
            });
        }
        if changed || now >= last_publish + PUBLISH_EVERY_MS {
            published_epoch = leader.view().epoch;
            last_publish = now;
            status.publish(leader.status());
        }
    }
}

fn send(leader: &mut ViewLeader, outbox: &mut Outbox) {
    for env in leader.take_outputs() {
        let nodes: Vec<NodeId> = leader.view().nodes.keys().copied().collect();
        // The leader's messages are repeated until acknowledged, so a lost
        // one needs no handling here.
        let _ = outbox.send(env, &|| nodes.clone());
    }
    let _ = outbox.flush();
}
