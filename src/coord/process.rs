//! One node as its own process (`kvsh node --coord zk://…`).
//!
//! The process runs the same node thread as an in-process cluster, with
//! its peer port on TCP, every connection to it checked by a handshake
//! (`src/node/handshake.rs`: the process runs its gate) and every peer
//! message MACed (`src/node/auth.rs`), and, while it holds the leader
//! role, the same view-leader thread. This module only wires them to the [`Membership`]:
//!
//! - it takes an id (or the lowest free one) and a fresh incarnation,
//!   starts the node thread and its control port (`admin.rs`: what an
//!   attached shell asks of it), registers the member ephemerally and
//!   enters the election;
//! - what the membership pushes goes to the node thread as control
//!   messages: a new leader endpoint is linked, a stored view adopted;
//! - once elected it starts the leader thread from the stored view (or,
//!   for a new cluster, once the expected members have registered, from
//!   scratch), stores each new view with a versioned write before the
//!   leader lets any node see it, confirms its session every sixth of the
//!   session timeout (the leader sends nothing once half a timeout has
//!   passed unconfirmed), announces itself, and publishes the leader's
//!   status for shells;
//! - a conflict on the versioned write, or a session in doubt while it
//!   leads, ends the process: another process may lead, and a process
//!   that exits is the simplest one not to act on a stale role;
//! - with `--data-dir DIR` (its own directory) the node thread keeps its
//!   data there, as an in-process node does in `DIR/nN`: started again with
//!   the same id it reloads, and catches up only on what it missed;
//! - a member that a stored view no longer lists (`remove`) exits;
//! - SIGTERM (or SIGINT) stops it cleanly: threads joined, session closed
//!   so its znodes go at once.

use super::admin;
use super::operator::LeaderSlot;
use super::zk::ZkMembership;
use super::{is_conflict, CoordUrl, LeaderRecord, Member, Membership, Notice, Shape, Version};
use crate::cluster::leader::{LeaderConfig, Status};
use crate::cluster::runtime::{spawn_remote, EventLog, LeaderControl, LeaderThread, RemoteLeader};
use crate::cluster::watch::Watch;
use crate::cluster::ClusterConfig;
use crate::error::{Error, Result};
use crate::node::auth::derive_key;
use crate::node::disk::DiskSpec;
use crate::node::faults::Faults;
use crate::node::handshake::{handshake_key, Gate};
use crate::node::runtime::{spawn, Control, NodeSpec, NodeThread};
use crate::node::transport::Clock;
use crate::view::{node_name, NodeId, View};
use crossbeam_channel::RecvTimeoutError;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

/// The most events a leader publishes (the newest).
const EVENTS_PUBLISHED: usize = 2000;

/// The environment variable that holds the cluster secret.
pub const SECRET_VAR: &str = "KVSH_SECRET";

/// How one node process is configured.
#[derive(Clone, Debug)]
pub struct NodeOptions {
    /// Where the coordination service is.
    pub coord: CoordUrl,
    /// The id to run as, or `None` for the lowest free one.
    pub id: Option<NodeId>,
    /// The shape proposed, used if this is the cluster's first process.
    pub shape: Shape,
    /// The cluster's tunables (bind address, frames, timeouts, placement).
    pub cluster: ClusterConfig,
    /// The cluster secret, from which peer messages' MAC key is derived.
    pub secret: Vec<u8>,
    /// The ZooKeeper session timeout asked for.
    pub session: Duration,
}

/// Runs one node process until `stop` is set or the process must end.
pub fn run_node(opts: NodeOptions, stop: Arc<AtomicBool>) -> Result<()> {
    let zk = ZkMembership::connect(&opts.coord.servers, &opts.coord.root, opts.session)?;
    let result = run_with(&zk, &opts, &stop);
    zk.close();
    result
}

/// What the process runs while it leads.
struct Leading {
    thread: LeaderThread,
    status: Watch<Status>,
    events: EventLog,
    /// Events published so far.
    published: usize,
    stored: Arc<AtomicU64>,
    alive_until: Arc<AtomicU64>,
    store_rx: crossbeam_channel::Receiver<View>,
    version: Option<Version>,
    last_confirm: u64,
    last_status: u64,
}

/// Runs one node process against any [`Membership`].
pub fn run_with(m: &dyn Membership, opts: &NodeOptions, stop: &AtomicBool) -> Result<()> {
    if opts.secret.len() < 16 {
        return Err(Error::BadInput(format!(
            "the cluster secret must be at least 16 bytes (set {SECRET_VAR})"
        )));
    }
    let shape = m.shape(&opts.shape)?;
    let key = derive_key(&opts.secret);
    let clock = Clock::host();
    let ctx = zmq::Context::new();
    // Checks every connection to this process's peer ports before it gets
    // a name (`node/handshake.rs`); declared after `ctx`, so dropped first.
    let _gate = Gate::start(&ctx, handshake_key(&key))?;
    let cfg = &opts.cluster;
    let notices = m.notices();
    // An id, a life, a node thread, a registration: retried on the next
    // free id if another process took this one meanwhile.
    let mut attempt = 0;
    let faults = Arc::new(Faults::new());
    let leader_slot = LeaderSlot::default();
    let (id, incarnation, node, admin) = loop {
        let id = match opts.id {
            Some(id) => id,
            None => m.free_id()?,
        };
        let incarnation = m.next_incarnation(id)?;
        let spec = NodeSpec {
            id,
            incarnation,
            bind: cfg.bind.clone(),
            cluster: String::new(),
            partitions: shape.partitions,
            leader_endpoint: String::new(),
            config: cfg.node,
            max_frame: cfg.max_frame,
            max_value: cfg.max_value,
            clock,
            faults: faults.clone(),
            remote_peers: Some((format!("tcp://{}:*", cfg.bind), key)),
            // `--data-dir` names this node's own directory.
            disk: cfg.data.as_ref().map(|d| DiskSpec {
                dir: d.dir.clone(),
                fsync: d.fsync,
                replicas: shape.replicas,
            }),
            ipc_dir: None,
        };
        let node = spawn(&ctx, spec)?;
        let admin = match admin::serve(
            &ctx,
            &format!("tcp://{}:*", cfg.bind),
            admin::admin_key(&opts.secret),
            node.control.clone(),
            (faults.clone(), leader_slot.clone()),
        ) {
            Ok(a) => a,
            Err(e) => {
                stop_node(node);
                return Err(e);
            }
        };
        let member = Member {
            id,
            incarnation,
            endpoint: node.endpoint.clone(),
            pid: std::process::id(),
            control: admin.endpoint.clone(),
        };
        match m.register(&member) {
            Ok(()) => break (id, incarnation, node, admin),
            Err(e) => {
                admin.stop();
                stop_node(node);
                attempt += 1;
                // A restart with the id of a process just killed finds its
                // znode until that session expires: wait that long. A live
                // process holding the id holds it for good.
                let patience = (2 * m.session_ms() / 200).clamp(8, 150);
                if attempt >= patience {
                    return Err(e);
                }
                if opts.id.is_some() {
                    std::thread::sleep(Duration::from_millis(200));
                }
            }
        }
    };
    println!(
        "kvsh node {} (incarnation {incarnation}, pid {}): clients at {}",
        node_name(id),
        std::process::id(),
        node.endpoint
    );
    if let (Some(r), Some(d)) = (&node.reloaded, &cfg.data) {
        println!(
            "kvsh node {}: reloaded {} from {} in {:.2} s",
            node_name(id),
            crate::units::count(r.keys as usize, "key"),
            d.dir.display(),
            r.elapsed.as_secs_f64()
        );
    }
    let election = m.campaign()?;
    let mut leading: Option<Leading> = None;
    // Whether a stored view has listed this life.
    let mut member_of = false;
    let result = loop {
        if stop.load(Ordering::Relaxed) {
            break Ok(());
        }
        // A leader's chores (storing views) want a short wait.
        let wait = if leading.is_some() { 2 } else { 20 };
        match notices.recv_timeout(Duration::from_millis(wait)) {
            Ok(Notice::View(view)) => {
                // A member that a stored view no longer lists was removed
                // (`remove`): its life in this cluster is over, and a
                // process that stayed would be admitted again by the next
                // leader, which does not know it left.
                let listed = view
                    .nodes
                    .get(&id)
                    .is_some_and(|n| n.incarnation == incarnation);
                if member_of && !view.nodes.contains_key(&id) {
                    println!(
                        "kvsh node {}: removed from the cluster (epoch {}); exiting",
                        node_name(id),
                        view.epoch
                    );
                    break Ok(());
                }
                member_of |= listed;
                let _ = node.control.send(Control::View(view));
            }
            Ok(Notice::Leader(Some(rec))) => {
                let _ = node
                    .control
                    .send(Control::LinkLeader(rec.peer_endpoint, rec.session));
            }
            Ok(Notice::Leader(None)) => {}
            Ok(Notice::Elected) => match lead(
                m,
                opts,
                &shape,
                (id, election),
                (&ctx, &faults),
                clock,
                stop,
            ) {
                Ok(Some(l)) => {
                    // Operator commands from attached shells reach it now.
                    *leader_slot.lock().unwrap_or_else(|e| e.into_inner()) =
                        Some((election, l.thread.control.clone()));
                    leading = Some(l);
                }
                Ok(None) => break Ok(()),
                Err(e) => break Err(e),
            },
            Ok(Notice::SessionLost(why)) => {
                // A node keeps serving while the service is away (its leases
                // come from the leader's acks, not from here); a leader
                // cannot know whether another process leads.
                if leading.is_some() || !why.starts_with("disconnected") {
                    break Err(Error::Unavailable(format!("{why}; this process stops")));
                }
                eprintln!("kvsh node {}: {why}", node_name(id));
            }
            Err(RecvTimeoutError::Timeout) => {}
            Err(RecvTimeoutError::Disconnected) => {
                break Err(Error::Internal("the membership went away".into()))
            }
        }
        if let Some(l) = leading.as_mut() {
            if let Err(e) = maintain(m, l, clock) {
                break Err(e);
            }
        }
    };
    leader_slot.lock().unwrap_or_else(|e| e.into_inner()).take();
    if let Some(l) = leading {
        let _ = l.thread.control.send(LeaderControl::Stop);
        let _ = l.thread.thread.join();
    }
    admin.stop();
    stop_node(node);
    result
}

fn stop_node(node: NodeThread) {
    let _ = node.control.send(Control::Kill);
    let _ = node.thread.join();
}

/// Takes up the leader role: `Ok(None)` if asked to stop while waiting
/// for the first members.
fn lead(
    m: &dyn Membership,
    opts: &NodeOptions,
    shape: &Shape,
    (id, election): (NodeId, u64),
    (ctx, faults): (&zmq::Context, &Arc<Faults>),
    clock: Clock,
    stop: &AtomicBool,
) -> Result<Option<Leading>> {
    let cfg = &opts.cluster;
    let confirmed_at = clock.now();
    let stored_view = m.load_view()?;
    let bootstrap = match &stored_view {
        Some(_) => Vec::new(),
        None => loop {
            // A new cluster: its first view waits for the members expected.
            let members = m.members()?;
            if members.len() >= shape.expect.max(1) {
                break members.iter().map(|m| m.id).collect();
            }
            if stop.load(Ordering::Relaxed) {
                return Ok(None);
            }
            std::thread::sleep(Duration::from_millis(20));
        },
    };
    // The operator's settings live in the leader; a new leader of an
    // existing cluster takes them from the status the last one published,
    // so `placement`, the ring's virtual nodes and `set auto-rebalance`
    // survive a failover (another vnode count would be another ring, and
    // a failover would move partitions).
    let last = match &stored_view {
        Some(_) => m.load_status().ok().flatten(),
        None => None,
    };
    let placement = inherited_placement(cfg.placement, last.as_ref());
    let leader_cfg = LeaderConfig {
        partitions: shape.partitions,
        replicas: shape.replicas,
        placement,
        suspect_timeout: cfg.suspect_timeout,
        failure_timeout: cfg.failure_timeout,
        auto_rebalance: last.map_or(cfg.auto_rebalance, |s| s.auto_rebalance),
        bootstrap,
    };
    let half = m.session_ms() / 2;
    let stored = Arc::new(AtomicU64::new(
        stored_view.as_ref().map_or(0, |(v, _)| v.epoch),
    ));
    let alive_until = Arc::new(AtomicU64::new(confirmed_at + half));
    let (store_tx, store_rx) = crossbeam_channel::unbounded();
    let status = Watch::new(Status::default());
    let events: EventLog = Arc::default();
    let version = stored_view.as_ref().map(|(_, v)| *v);
    let thread = spawn_remote(
        ctx,
        leader_cfg,
        clock,
        (status.clone(), events.clone(), faults.clone()),
        RemoteLeader {
            bind: format!("tcp://{}:*", cfg.bind),
            key: derive_key(&opts.secret),
            session: election,
            resume: stored_view.map(|(v, _)| v),
            store: store_tx,
            stored: stored.clone(),
            alive_until: alive_until.clone(),
        },
    )?;
    m.announce(&LeaderRecord {
        node: id,
        session: election,
        peer_endpoint: thread.endpoint.clone(),
    })?;
    println!(
        "kvsh node {}: view leader (election {election}) at {}",
        node_name(id),
        thread.endpoint
    );
    Ok(Some(Leading {
        thread,
        status,
        events,
        published: 0,
        stored,
        alive_until,
        store_rx,
        version,
        last_confirm: confirmed_at,
        last_status: 0,
    }))
}

/// The leader's chores: store new views, confirm the session, publish the
/// status.
fn maintain(m: &dyn Membership, l: &mut Leading, clock: Clock) -> Result<()> {
    // Only the newest view matters: storing it covers the ones before.
    if let Some(view) = l.store_rx.try_iter().last() {
        match m.store_view(&view, l.version) {
            Ok(v) => {
                l.version = Some(v);
                l.stored.store(view.epoch, Ordering::Release);
            }
            Err(e) if is_conflict(&e) => {
                return Err(Error::Unavailable(format!(
                    "another process stored a view first; this one no longer leads ({e})"
                )))
            }
            Err(e) => return Err(e),
        }
    }
    let now = clock.now();
    let session = m.session_ms();
    if now >= l.last_confirm + session / 6 {
        let asked = clock.now();
        m.confirm()?;
        l.last_confirm = asked;
        l.alive_until.store(asked + session / 2, Ordering::Release);
    }
    if now >= l.last_status + 200 {
        l.last_status = now;
        m.publish_status(&l.status.get())?;
        // The latest events, for attached shells: a bounded tail, so the
        // znode stays far below ZooKeeper's 1 MB.
        let tail: Vec<_> = {
            let log = l.events.lock().unwrap_or_else(|e| e.into_inner());
            if log.len() == l.published {
                Vec::new()
            } else {
                l.published = log.len();
                log[log.len().saturating_sub(EVENTS_PUBLISHED)..].to_vec()
            }
        };
        // For shells only: a failure here must not end the leader.
        if !tail.is_empty() {
            if let Err(e) = m.publish_events(&tail) {
                eprintln!("kvsh node: events not published: {e}");
            }
        }
    }
    Ok(())
}

/// The placement a new leader runs: the last leader's strategy and vnodes
/// where its status names them, this process's options otherwise.
fn inherited_placement(
    own: crate::view::placement::Placement,
    last: Option<&crate::cluster::status::Status>,
) -> crate::view::placement::Placement {
    crate::view::placement::Placement {
        strategy: last.and_then(|s| s.strategy).unwrap_or(own.strategy),
        vnodes: last.and_then(|s| s.vnodes).unwrap_or(own.vnodes),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cluster::status::Status;
    use crate::view::placement::{Placement, Strategy};

    /// A new leader keeps the last leader's ring, not its own options: a
    /// process started with other `--vnodes` would otherwise move
    /// partitions on a failover.
    #[test]
    fn a_new_leader_inherits_strategy_and_vnodes() {
        let own = Placement::new(Strategy::Ring, 256);
        let last = Status {
            strategy: Some(Strategy::Ring),
            vnodes: Some(16),
            ..Status::default()
        };
        // Through JSON, as the status is stored.
        let stored: Status = serde_json::from_str(&serde_json::to_string(&last).unwrap()).unwrap();
        assert_eq!(
            inherited_placement(own, Some(&stored)),
            Placement::new(Strategy::Ring, 16)
        );
        // A status from an older leader names no vnodes: keep our own.
        let older = Status {
            strategy: Some(Strategy::Hrw),
            ..Status::default()
        };
        assert_eq!(
            inherited_placement(own, Some(&older)),
            Placement::new(Strategy::Hrw, 256)
        );
        assert_eq!(inherited_placement(own, None), own);
    }
}
