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
use crate::node::transport::{peer_endpoint, Clock, Outbox};
use crate::node::wake::{ControlReceiver, ControlSender};
use crate::view::placement::Placement;
use crate::view::{Epoch, NodeId, View};
use crossbeam_channel::Sender;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;

const TICK_MS: u64 = 5;
/// The longest an idle leader sleeps, when nothing but heartbeats arrived
/// since its last tick: the stall bound ([`crate::cluster::leader::STALL_MS`]),
/// so a stall of the process that begins in a sleep and lasts past the
/// suspect timeout is always found. It wakes
/// sooner when a member could fall silent for the suspect or failure
/// timeout, a lease could run out ([`ViewLeader::next_due`]), or a tick
/// is due for the periodic replan, so detection is never late for the
/// sleep. The stall detector is told of each sleep
/// ([`ViewLeader::sleeping_until`]), so it does not take one for a stall.
const IDLE_TICK_MS: u64 = 100;
/// An idle leader that a heartbeat woke ticks at once if its tick is at
/// most this far off, rather than waking again for it.
const EARLY_TICK_MS: u64 = 25;
/// Statistics are republished this often; any change at once.
const PUBLISH_EVERY_MS: u64 = 200;
/// The same for an idle leader that no node sent new figures. A status
/// clones the view and the placement target (a vector per partition), so
/// publishing one every 200 ms was most of an idle leader's CPU; nothing
/// but heartbeat times changes then, and any change is published at once.
const IDLE_PUBLISH_MS: u64 = 1000;

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

/// What a view leader running in a node process adds (issue #12,
/// `src/coord/`): its peer port is TCP and authenticated, it may take over
/// a view stored by an earlier leader, and no view reaches a node before
/// the coordination service has stored it.
#[derive(Debug)]
pub struct RemoteLeader {
    /// Where to bind the peer port: `tcp://ADDR:*`.
    pub bind: String,
    /// The MAC key of the cluster's peer traffic.
    pub key: [u8; 32],
    /// This leader's election number: its session in authenticated
    /// messages, so nodes refuse an earlier leader's.
    pub session: u64,
    /// The view an earlier leader stored, to carry on from.
    pub resume: Option<View>,
    /// Views to store. The leader sends nothing of a view (no update, no
    /// acknowledgement carrying its epoch) until `stored` reaches it.
    pub store: Sender<View>,
    /// The newest epoch the coordination service has stored.
    pub stored: Arc<AtomicU64>,
    /// Until when (on the cluster clock) the coordination session is
    /// certainly alive, so this process certainly still leads. Past it the
    /// leader sends nothing, and so grants no lease.
    pub alive_until: Arc<AtomicU64>,
}

/// The shared, append-only event log.
pub type EventLog = Arc<Mutex<Vec<Event>>>;

/// A running leader thread.
#[derive(Debug)]
pub struct LeaderThread {
    /// The leader's peer endpoint.
    pub endpoint: String,
    /// Its control channel.
    pub control: ControlSender<LeaderControl>,
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
    (faults, saver): (Arc<Faults>, Option<ViewSaver>),
) -> Result<LeaderThread> {
    let bind = peer_endpoint(cluster, Address::Leader, 0);
    start(
        ctx,
        (bind, None),
        cfg,
        clock,
        (status, events, events_tx),
        (faults, saver),
    )
}

/// A durable cluster's leader (`--data-dir`): every view goes to disk
/// before any node sees it, so a cluster started again on the directory
/// continues from the last view any node acted on; and the clock's reading
/// goes there every second, so the next run's clock starts past every
/// time this one used (lock expiries are times on it).
#[derive(Debug)]
pub struct ViewSaver {
    /// The cluster's directory.
    pub dir: std::path::PathBuf,
    /// Replicas per partition, part of the saved layout.
    pub replicas: usize,
    /// The fsync policy.
    pub fsync: crate::node::disk::Fsync,
    /// A view restored from the directory, to continue from.
    pub restore: Option<crate::view::View>,
    saved: Epoch,
    clock_saved: u64,
}

impl ViewSaver {
    /// A saver for the cluster's directory `dir`.
    pub fn new(
        dir: std::path::PathBuf,
        replicas: usize,
        fsync: crate::node::disk::Fsync,
        restore: Option<crate::view::View>,
    ) -> Self {
        ViewSaver {
            dir,
            replicas,
            fsync,
            restore,
            saved: 0,
            clock_saved: 0,
        }
    }

    /// Saves the leader's view if it is newer than the last saved, and the
    /// clock if a second has passed. Returns the newest epoch on disk.
    fn save(&mut self, leader: &ViewLeader, now: u64) -> Epoch {
        let view = leader.view();
        if view.epoch > self.saved
            && crate::node::disk::save_view(&self.dir, view, self.replicas, self.fsync).is_ok()
        {
            self.saved = view.epoch;
        }
        if now >= self.clock_saved + 1000 {
            self.clock_saved = now;
            let _ = crate::node::disk::save_clock(&self.dir, now);
        }
        self.saved
    }
}

/// Starts the view leader of a cluster of node processes (`src/coord/`),
/// on an authenticated TCP peer port; returns once its socket is bound,
/// with the endpoint it got. `faults` are the rules in force in this
/// process (an attached shell sets them through the control port): the
/// leader's own sends pass them, as in one process.
pub fn spawn_remote(
    ctx: &zmq::Context,
    cfg: LeaderConfig,
    clock: Clock,
    (status, events, faults): (Watch<Status>, EventLog, Arc<Faults>),
    remote: RemoteLeader,
) -> Result<LeaderThread> {
    let bind = remote.bind.clone();
    start(
        ctx,
        (bind, Some(remote)),
        cfg,
        clock,
        (status, events, None),
        (faults, None),
    )
}

type Outlets = (Watch<Status>, EventLog, Option<Sender<Event>>);

fn start(
    ctx: &zmq::Context,
    (bind, remote): (String, Option<RemoteLeader>),
    cfg: LeaderConfig,
    clock: Clock,
    (status, events, events_tx): Outlets,
    (faults, saver): (Arc<Faults>, Option<ViewSaver>),
) -> Result<LeaderThread> {
    let (control_tx, control_rx) = crate::node::wake::channel()?;
    let (ready_tx, ready_rx) = crossbeam_channel::bounded(1);
    let ctx = ctx.clone();
    let thread = std::thread::Builder::new()
        .name("kvsh-leader".into())
        .spawn(move || {
            run(
                ctx,
                (bind, remote),
                cfg,
                clock,
                (status, events, events_tx),
                (faults, saver),
                control_rx,
                ready_tx,
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
    (bind, remote): (String, Option<RemoteLeader>),
    cfg: LeaderConfig,
    clock: Clock,
    (status, events, events_tx): Outlets,
    (faults, mut saver): (Arc<Faults>, Option<ViewSaver>),
    control: ControlReceiver<LeaderControl>,
    ready: Sender<Result<String>>,
) {
    // Before the first socket of the cluster's context: libzmq starts the
    // context's I/O thread from here, and it inherits the policy.
    crate::node::sched::batch_scheduling();
    let session = remote.as_ref().map_or(0, |r| r.session);
    let bound = match &remote {
        None => Outbox::bind(&ctx, Address::Leader, session, &bind, faults, clock),
        Some(r) => Outbox::bind_authenticated(
            &ctx,
            (Address::Leader, session),
            &bind,
            (faults, clock),
            crate::node::auth::PeerAuth::new(r.key, r.session),
        ),
    }
    .and_then(|o| {
        let endpoint = o.bound_endpoint()?;
        Ok((o, endpoint))
    });
    let (mut outbox, endpoint) = match bound {
        Ok(x) => x,
        Err(e) => {
            let _ = ready.send(Err(e));
            return;
        }
    };
    let _ = ready.send(Ok(endpoint));
    let mut leader = match remote.as_ref().and_then(|r| r.resume.clone()) {
        Some(view) => ViewLeader::resume(cfg, view, clock.now()),
        None => match saver.as_mut().and_then(|s| s.restore.take()) {
            Some(view) => ViewLeader::new(cfg).restoring(view),
            None => ViewLeader::new(cfg),
        },
    };
    let mut store_asked: Epoch = remote
        .as_ref()
        .and_then(|r| r.resume.as_ref())
        .map_or(0, |v| v.epoch);
    let mut next_tick: u64 = 0;
    let mut last_publish: u64 = 0;
    let mut published_epoch = u64::MAX;
    // Anything but a heartbeat since the last tick.
    let mut news = true;
    // Whether the last tick found the leader idle, and whether this pass
    // read anything.
    let mut idle = false;
    loop {
        let wait = next_tick.saturating_sub(clock.now()).min(IDLE_TICK_MS) as i64;
        if idle {
            leader.sleeping_until(next_tick);
        }
        let mut items = [
            outbox.socket().as_poll_item(zmq::POLLIN),
            control.poll_item(),
        ];
        if zmq::poll(&mut items, wait).is_err() {
            return;
        }
        if items[1].is_readable() {
            control.clear();
        }
        let mut woken = false;
        while let Ok(frames) = outbox.recv(zmq::DONTWAIT) {
            woken = true;
            // Only envelopes from the node their socket names are read: no
            // node can heartbeat, or report a catch-up, for another.
            let Some(msg) = outbox.open(frames) else {
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
        send(
            &mut leader,
            &mut outbox,
            (remote.as_ref(), saver.as_mut()),
            clock,
        );
        while let Some(c) = control.try_recv() {
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
        // An idle leader that a heartbeat woke anyway ticks now if its tick
        // is near, rather than waking again for it: its checks are of
        // deadlines, which a tick a little early cannot miss (the next one
        // is set from them).
        let early = idle && woken && next_tick <= now + EARLY_TICK_MS;
        // The status a leader takes as it turns idle is the one that shows
        // the cluster settled, which the shell's waits end on: it goes out
        // at once, not a second later.
        let mut became_idle = false;
        if now >= next_tick || early {
            leader.tick(now);
            let was_idle = idle;
            idle = !std::mem::take(&mut news) && leader.quiet() && outbox.nothing_delayed();
            became_idle = idle && !was_idle;
            next_tick = if idle {
                let publish = last_publish + publish_every(idle, &leader);
                let due = leader.next_due().unwrap_or(u64::MAX).min(publish);
                due.clamp(now + 1, now + IDLE_TICK_MS)
            } else {
                now + TICK_MS
            };
        }
        if let Some(r) = &remote {
            // Store every new view before anyone sees it (`send` holds it
            // back until then): of two processes that both believe they
            // lead, only one can store an epoch.
            if leader.view().epoch > store_asked {
                store_asked = leader.view().epoch;
                let _ = r.store.send(leader.view().clone());
            }
        }
        send(
            &mut leader,
            &mut outbox,
            (remote.as_ref(), saver.as_mut()),
            clock,
        );
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
        if changed || became_idle || now >= last_publish + publish_every(idle, &leader) {
            published_epoch = leader.view().epoch;
            last_publish = now;
            status.publish(leader.status());
        }
    }
}

/// How often the status is republished with no change of view or events:
/// every [`PUBLISH_EVERY_MS`] while anything moves or nodes report new
/// figures (under client load an idle leader still gets new key counts
/// and request counts, which `stats` and `table` show), else every
/// [`IDLE_PUBLISH_MS`].
fn publish_every(idle: bool, leader: &ViewLeader) -> u64 {
    if idle && !leader.fresh_stats() {
        IDLE_PUBLISH_MS
    } else {
        PUBLISH_EVERY_MS
    }
}

fn send(
    leader: &mut ViewLeader,
    outbox: &mut Outbox,
    (remote, saver): (Option<&RemoteLeader>, Option<&mut ViewSaver>),
    clock: Clock,
) {
    // A durable cluster: no view goes out before it is on disk.
    let saved = saver.map(|s| s.save(leader, clock.now()));
    let outputs = leader.take_outputs();
    let outputs = match remote {
        None => match saved {
            None => outputs,
            Some(saved) => outputs.into_iter().filter(|e| e.epoch <= saved).collect(),
        },
        Some(r) => {
            // Nothing of a view not yet stored, and nothing at all once
            // the coordination session may have ended (another process
            // may lead). Dropped messages are repeated: views and acks
            // answer the next heartbeat.
            let stored = r.stored.load(Ordering::Acquire);
            if clock.now() >= r.alive_until.load(Ordering::Acquire) {
                Vec::new()
            } else {
                outputs.into_iter().filter(|e| e.epoch <= stored).collect()
            }
        }
    };
    for env in outputs {
        let nodes: Vec<NodeId> = leader.view().nodes.keys().copied().collect();
        // The leader's messages are repeated until acknowledged, so a lost
        // one needs no handling here.
        let _ = outbox.send(env, &|| nodes.clone());
    }
    let _ = outbox.flush();
}
