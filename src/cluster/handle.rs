//! The [`Cluster`] handle: starts the view leader and node threads, and
//! carries out the operator's verbs on them (add, kill, pause, restart,
//! remove, wait). The shell holds one; tests and examples use it directly.
//!
//! The handle owns the threads' join handles and control channels. It owns
//! none of their state: it reads the leader's published [`Status`] and asks
//! nodes for digests over their control channels, with timeouts, so a paused
//! node never blocks the shell.
//!
//! A handle made by [`Cluster::attached`] drives nodes that run as processes
//! of their own (issue #12): the status and events come from the
//! coordination service, and every verb that touches a node or the leader
//! goes through [`RemoteNodes`]. The shell, `check` and `bench` use one
//! handle either way.

use crate::cluster::client::{Client, ViewSource};
use crate::cluster::leader::{Event, LeaderConfig, Plan, Status};
use crate::cluster::remote::RemoteNodes;
use crate::cluster::runtime::ViewSaver;
use crate::cluster::runtime::{self, EventLog, LeaderControl, LeaderThread};
use crate::cluster::watch::Watch;
use crate::error::{Error, Result};
use crate::node::core::NodeConfig;
use crate::node::disk::{load_clock, load_view, node_dir, DiskSpec, Fsync, Reloaded};
use crate::node::endpoint::{SocketDir, Transport};
use crate::node::faults::Faults;
use crate::node::protocol::DEFAULT_MAX_FRAME;
use crate::node::runtime::{spawn, Control, NodeSpec, NodeThread};
use crate::node::transport::Clock;
use crate::view::placement::{Placement, Strategy, DEFAULT_PARTITIONS, DEFAULT_VNODES};
use crate::view::{
    node_name, parse_node_name, Epoch, Incarnation, NodeId, NodeState, PartitionId, Time,
};
use crossbeam_channel::Sender;
use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

mod inspect;
mod wait;

/// Most nodes a cluster may have.
pub const MAX_NODES: usize = 64;

/// Everything that shapes a cluster.
#[derive(Clone, Debug)]
pub struct ClusterConfig {
    /// Nodes at start.
    pub nodes: usize,
    /// Replicas per partition.
    pub replicas: usize,
    /// Partitions.
    pub partitions: u32,
    /// Address the nodes bind.
    pub bind: String,
    /// Largest request frame.
    pub max_frame: usize,
    /// Largest value.
    pub max_value: usize,
    /// Placement strategy and virtual nodes.
    pub placement: Placement,
    /// Node tunables.
    pub node: NodeConfig,
    /// Silence before a node is suspected, ms.
    pub suspect_timeout: Time,
    /// Silence before a node is declared dead, ms.
    pub failure_timeout: Time,
    /// Whether membership changes rebalance by themselves.
    pub auto_rebalance: bool,
    /// The transport of the client ports.
    pub transport: Transport,
    /// `--data-dir` and `--fsync`: keep every node's data on disk, in
    /// one directory per node inside this one. `None`: memory only.
    pub data: Option<DataDir>,
}

/// A durable cluster's directory and fsync policy.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DataDir {
    /// The cluster's directory.
    pub dir: std::path::PathBuf,
    /// When nodes sync their writes.
    pub fsync: Fsync,
}

impl Default for ClusterConfig {
    fn default() -> Self {
        ClusterConfig {
            nodes: 4,
            replicas: 2,
            partitions: DEFAULT_PARTITIONS,
            bind: "127.0.0.1".into(),
            max_frame: DEFAULT_MAX_FRAME,
            max_value: DEFAULT_MAX_FRAME / 2,
            placement: Placement::new(Strategy::Ring, DEFAULT_VNODES),
            node: NodeConfig::default(),
            suspect_timeout: 250,
            failure_timeout: 600,
            auto_rebalance: true,
            data: None,
            transport: Transport::Tcp,
        }
    }
}

/// The operator's view of a node's thread.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Process {
    /// Running.
    Running,
    /// Frozen until this instant.
    Paused(Instant),
    /// Killed; `restart` brings it back.
    Killed,
}

#[derive(Debug)]
struct NodeHandle {
    thread: Option<NodeThread>,
    endpoint: String,
    incarnation: Incarnation,
    paused_until: Option<Instant>,
    /// What the node read back from disk at its latest start.
    reloaded: Option<Reloaded>,
}

/// A running cluster.
pub struct Cluster {
    cfg: ClusterConfig,
    /// A name unique in this process, for the cluster's `inproc://` peer
    /// endpoints: two clusters in one process (tests) never meet.
    name: String,
    ctx: zmq::Context,
    clock: Clock,
    leader: Option<LeaderThread>,
    status: Watch<Status>,
    events: EventLog,
    nodes: BTreeMap<NodeId, NodeHandle>,
    next_id: NodeId,
    next_incarnation: Incarnation,
    faults: Arc<Faults>,
    /// The next [`Cluster::run_id`]. Atomic, as `bench` takes `&Cluster`.
    next_run: AtomicU64,
    /// See [`Cluster::restored_from`].
    restored: Option<Epoch>,
    /// `--transport ipc`: the private directory of the nodes' sockets,
    /// removed (after the nodes have stopped) when the cluster is dropped.
    sockets: Option<SocketDir>,
    /// Set when the nodes are processes of their own ([`Cluster::attached`]).
    remote: Option<Box<dyn RemoteNodes>>,
}

impl std::fmt::Debug for Cluster {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Cluster")
            .field("nodes", &self.nodes.keys())
            .finish()
    }
}

impl Cluster {
    /// Starts a cluster and waits until its first view is out. Events are
    /// also sent to `events_tx` as they happen, if given.
    pub fn start(cfg: ClusterConfig, events_tx: Option<Sender<Event>>) -> Result<Cluster> {
        if cfg.nodes == 0 || cfg.nodes > MAX_NODES {
            return Err(Error::BadInput(format!(
                "--nodes must be 1 to {MAX_NODES}, got {}",
                cfg.nodes
            )));
        }
        if cfg.replicas == 0 {
            return Err(Error::BadInput("--replicas must be at least 1".into()));
        }
        if cfg.partitions == 0 || cfg.partitions > 65_536 {
            return Err(Error::BadInput(format!(
                "--partitions must be 1 to 65536, got {}",
                cfg.partitions
            )));
        }
        if cfg.node.lease >= cfg.failure_timeout {
            return Err(Error::BadInput(
                "the lease must be shorter than the failure timeout".into(),
            ));
        }
        // A durable cluster started again on its directory continues from
        // the last view it published, with the nodes that view names, and
        // its clock from where it stopped.
        let restore = match &cfg.data {
            None => None,
            Some(d) => {
                std::fs::create_dir_all(&d.dir)
                    .map_err(|e| Error::Io(format!("{}: {e}", d.dir.display())))?;
                load_view(&d.dir, cfg.partitions, cfg.replicas)?
            }
        };
        let initial: Vec<NodeId> = match &restore {
            Some(view) => view.nodes.keys().copied().collect(),
            None => (1..=cfg.nodes as NodeId).collect(),
        };
        let ctx = zmq::Context::new();
        let clock = match (&cfg.data, &restore) {
            (Some(d), Some(_)) => Clock::starting_at(load_clock(&d.dir)),
            _ => Clock::new(),
        };
        let status = Watch::new(Status::default());
        let events: EventLog = Arc::default();
        let leader_cfg = LeaderConfig {
            partitions: cfg.partitions,
            replicas: cfg.replicas,
            placement: cfg.placement,
            suspect_timeout: cfg.suspect_timeout,
            failure_timeout: cfg.failure_timeout,
            auto_rebalance: cfg.auto_rebalance,
            bootstrap: initial.clone(),
        };
        let saver = cfg
            .data
            .as_ref()
            .map(|d| ViewSaver::new(d.dir.clone(), cfg.replicas, d.fsync, restore.clone()));
        let faults = Arc::new(Faults::new());
        let name = format!("{:016x}", rand::random::<u64>());
        let leader = runtime::spawn(
            &ctx,
            &name,
            leader_cfg,
            clock,
            status.clone(),
            events.clone(),
            events_tx,
            (faults.clone(), saver),
        )?;
        let sockets = match cfg.transport {
            Transport::Tcp => None,
            Transport::Ipc => Some(SocketDir::create()?),
        };
        let mut cluster = Cluster {
            cfg,
            name,
            ctx,
            clock,
            leader: Some(leader),
            status,
            events,
            nodes: BTreeMap::new(),
            next_id: 1,
            next_incarnation: 1,
            faults,
            next_run: AtomicU64::new(1),
            restored: None,
            sockets,
            remote: None,
        };
        cluster.restored = restore.as_ref().map(|v| v.epoch);
        cluster.next_id = initial.iter().max().map_or(1, |m| m + 1);
        for id in initial {
            if let Err(e) = cluster.spawn_node(Some(id)) {
                cluster.shutdown();
                return Err(e);
            }
        }
        // Ready means more than a first view: every node has adopted it
        // and reported a lease it holds in it, and every partition is in
        // sync, so the first request does not race the start. Settled, not
        // healthy: a cluster started with fewer nodes than replicas is
        // degraded until it grows, and works meanwhile.
        let ok = cluster
            .status
            .wait_until(Duration::from_secs(15), &|| false, |s| {
                s.view.epoch > 0
                    && s.settled
                    && s.members
                        .values()
                        .all(|m| m.reported_epoch >= s.view.epoch && m.lease.held_until > s.now)
            });
        if ok.is_err() {
            return Err(Error::Unavailable(
                "the cluster did not bootstrap within 15 s".into(),
            ));
        }
        Ok(cluster)
    }

    /// A handle on a cluster of node processes: `status` and `events` are
    /// fed by the caller (from the coordination service), and `remote`
    /// reaches the nodes. The clock is the host's, the one the processes'
    /// leaders stamp events with.
    pub fn attached(
        cfg: ClusterConfig,
        status: Watch<Status>,
        events: EventLog,
        remote: Box<dyn RemoteNodes>,
    ) -> Cluster {
        Cluster {
            cfg,
            name: String::new(),
            ctx: zmq::Context::new(),
            clock: Clock::host(),
            leader: None,
            status,
            events,
            nodes: BTreeMap::new(),
            next_id: 1,
            next_incarnation: 1,
            faults: Arc::new(Faults::new()),
            next_run: AtomicU64::new(rand::random::<u32>() as u64 * 1000 + 1),
            sockets: None,
            remote: Some(remote),
            restored: None,
        }
    }

    /// True for a handle made by [`Cluster::attached`].
    pub fn is_attached(&self) -> bool {
        self.remote.is_some()
    }

    /// Changes the network faults with `f`, and applies them to every
    /// node. In one process the nodes read the rules themselves; attached,
    /// they are sent to each node process, and if that cannot be done the
    /// change is undone, so `faults` never lists a fault not in force.
    pub fn change_faults(&self, f: impl FnOnce(&Faults)) -> Result<()> {
        f(&self.faults);
        match &self.remote {
            None => Ok(()),
            Some(r) => r
                .apply_faults(&self.faults)
                .inspect_err(|_| self.faults.heal()),
        }
    }

    fn spawn_node(&mut self, id: Option<NodeId>) -> Result<NodeId> {
        let id = id.unwrap_or_else(|| {
            let id = self.next_id;
            self.next_id += 1;
            id
        });
        let incarnation = self.next_incarnation;
        self.next_incarnation += 1;
        let leader_endpoint = self
            .leader
            .as_ref()
            .map(|l| l.endpoint.clone())
            .unwrap_or_default();
        let spec = NodeSpec {
            id,
            incarnation,
            bind: self.cfg.bind.clone(),
            cluster: self.name.clone(),
            partitions: self.cfg.partitions,
            leader_endpoint,
            config: self.cfg.node,
            max_frame: self.cfg.max_frame,
            max_value: self.cfg.max_value,
            clock: self.clock,
            faults: self.faults.clone(),
            remote_peers: None,
            disk: self.cfg.data.as_ref().map(|d| DiskSpec {
                dir: node_dir(&d.dir, id),
                fsync: d.fsync,
                replicas: self.cfg.replicas,
            }),
            ipc_dir: self.sockets.as_ref().map(|d| d.path().to_path_buf()),
        };
        let thread = spawn(&self.ctx, spec)?;
        let endpoint = thread.endpoint.clone();
        let reloaded = thread.reloaded.clone();
        self.nodes.insert(
            id,
            NodeHandle {
                thread: Some(thread),
                endpoint,
                incarnation,
                paused_until: None,
                reloaded,
            },
        );
        Ok(id)
    }

    /// What node `id` read back from its data directory at its latest
    /// start (a durable cluster), and the directory.
    pub fn reloaded(&self, id: NodeId) -> Option<(Reloaded, std::path::PathBuf)> {
        let d = self.cfg.data.as_ref()?;
        let r = self.nodes.get(&id)?.reloaded.clone()?;
        Some((r, node_dir(&d.dir, id)))
    }

    /// The epoch of the saved view this cluster continued from, if it was
    /// started again on a data directory that had one.
    pub fn restored_from(&self) -> Option<Epoch> {
        self.restored
    }

    /// The network faults in force; change them to inject faults.
    pub fn faults(&self) -> &Faults {
        &self.faults
    }

    /// The configuration.
    pub fn config(&self) -> &ClusterConfig {
        &self.cfg
    }

    /// The ZeroMQ context, for clients in this process.
    pub fn context(&self) -> &zmq::Context {
        &self.ctx
    }

    /// A number no other call on this cluster returns, for the key
    /// namespace of a `check` or `bench` run (`check:<id>:hot3`,
    /// `bench:<id>:17`): two runs never share a key, even with the same
    /// seed, and neither touches a user's keys. Unique per cluster rather
    /// than per process: the keys live in one cluster, and a per-process
    /// number would make a test's key names, and so which node leads each
    /// key, depend on the order the tests in its process ran in.
    pub fn run_id(&self) -> u64 {
        self.next_run.fetch_add(1, Ordering::Relaxed)
    }

    /// Milliseconds since the cluster started.
    pub fn now(&self) -> Time {
        self.clock.now()
    }

    /// The instant shown event times count from (0 in one process; an
    /// attached shell's start, see [`RemoteNodes::time_origin`]).
    pub fn time_origin(&self) -> Time {
        self.remote.as_ref().map_or(0, |r| r.time_origin())
    }

    /// The leader's latest status.
    pub fn status(&self) -> Arc<Status> {
        self.status.get()
    }

    /// The leader's status watch.
    pub fn status_watch(&self) -> Watch<Status> {
        self.status.clone()
    }

    /// Every event so far.
    pub fn events(&self) -> Vec<Event> {
        self.events
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// A client for this cluster.
    pub fn client(&self) -> Client {
        Client::new(self.ctx.clone(), ViewSource::Watch(self.status.clone()))
    }

    /// Node ids the operator knows, in order.
    pub fn node_ids(&self) -> Vec<NodeId> {
        match &self.remote {
            Some(r) => r.node_ids(),
            None => self.nodes.keys().copied().collect(),
        }
    }

    /// A node's endpoint (its latest, for a restarted node).
    pub fn endpoint(&self, id: NodeId) -> Option<String> {
        match &self.remote {
            Some(r) => r.endpoint(id),
            None => self.nodes.get(&id).map(|n| n.endpoint.clone()),
        }
    }

    /// A node's process state.
    pub fn process(&self, id: NodeId) -> Option<Process> {
        if let Some(r) = &self.remote {
            return r.process(id);
        }
        let n = self.nodes.get(&id)?;
        Some(match (&n.thread, n.paused_until) {
            (None, _) => Process::Killed,
            (Some(_), Some(t)) if t > Instant::now() => Process::Paused(t),
            (Some(_), _) => Process::Running,
        })
    }

    /// Resolves a user's node name, or explains which names exist.
    pub fn resolve(&self, name: &str) -> Result<NodeId> {
        let ids = self.node_ids();
        match parse_node_name(name) {
            Some(id) if ids.contains(&id) => Ok(id),
            _ => {
                let known: Vec<String> = ids.iter().map(|n| node_name(*n)).collect();
                Err(Error::UnknownNode(format!(
                    "unknown node {name:?}; known nodes: {}",
                    known.join(", ")
                )))
            }
        }
    }

    fn running(&self, id: NodeId) -> Result<&NodeThread> {
        self.nodes
            .get(&id)
            .and_then(|n| n.thread.as_ref())
            .ok_or_else(|| {
                Error::BadInput(format!(
                    "{} is not running; `restart {}` brings it back",
                    node_name(id),
                    node_name(id)
                ))
            })
    }

    /// Starts `count` new nodes and waits until the view has them.
    pub fn add(&mut self, count: usize) -> Result<Vec<NodeId>> {
        if count == 0 {
            return Err(Error::BadInput("add needs a count of at least 1".into()));
        }
        if let Some(r) = &mut self.remote {
            return r.add(count);
        }
        if self.nodes.len() + count > MAX_NODES {
            return Err(Error::BadInput(format!(
                "a cluster has at most {MAX_NODES} nodes; it has {}",
                self.nodes.len()
            )));
        }
        let mut ids = Vec::new();
        for _ in 0..count {
            ids.push(self.spawn_node(None)?);
        }
        let wanted = ids.clone();
        self.status
            .wait_until(Duration::from_secs(5), &|| false, |s| {
                wanted.iter().all(|n| s.view.nodes.contains_key(n))
            })
            .map_err(|_| Error::Timeout("the new nodes did not join within 5 s".into()))?;
        Ok(ids)
    }

    /// Crashes a node: its thread stops at once, dropping its sockets and
    /// memory, and tells no one.
    pub fn kill(&mut self, id: NodeId) -> Result<()> {
        if let Some(r) = &mut self.remote {
            return r.kill(id);
        }
        let handle = self
            .nodes
            .get_mut(&id)
            .ok_or_else(|| Error::UnknownNode(node_name(id)))?;
        let Some(thread) = handle.thread.take() else {
            return Err(Error::BadInput(format!(
                "{} is already killed",
                node_name(id)
            )));
        };
        let _ = thread.control.send(Control::Kill);
        let _ = thread.thread.join();
        handle.paused_until = None;
        Ok(())
    }

    /// Freezes a node for a while; pausing a paused node sets when its
    /// pause ends to `d` from now, longer or shorter.
    pub fn pause(&mut self, id: NodeId, d: Duration) -> Result<()> {
        if let Some(r) = &mut self.remote {
            return r.pause(id, d);
        }
        self.running(id)?
            .control
            .send(Control::Pause(d))
            .map_err(|_| Error::Internal("node thread gone".into()))?;
        if let Some(h) = self.nodes.get_mut(&id) {
            h.paused_until = Some(Instant::now() + d);
        }
        Ok(())
    }

    /// Ends a node's pause now. Fails if it is not paused.
    pub fn resume(&mut self, id: NodeId) -> Result<()> {
        if !matches!(self.process(id), Some(Process::Paused(_))) {
            return Err(Error::BadInput(format!("{} is not paused", node_name(id))));
        }
        if let Some(r) = &mut self.remote {
            return r.resume(id);
        }
        self.pause(id, Duration::ZERO)?;
        if let Some(h) = self.nodes.get_mut(&id) {
            h.paused_until = None;
        }
        Ok(())
    }

    /// Brings a killed node back: same id, new incarnation, new port, empty.
    pub fn restart(&mut self, id: NodeId) -> Result<()> {
        if let Some(r) = &mut self.remote {
            return r.restart(id);
        }
        let handle = self
            .nodes
            .get(&id)
            .ok_or_else(|| Error::UnknownNode(node_name(id)))?;
        if handle.thread.is_some() {
            return Err(Error::BadInput(format!(
                "{} is running; kill it first",
                node_name(id)
            )));
        }
        self.spawn_node(Some(id))?;
        let incarnation = self.nodes[&id].incarnation;
        self.status
            .wait_until(Duration::from_secs(5), &|| false, |s| {
                s.view
                    .nodes
                    .get(&id)
                    .is_some_and(|n| n.incarnation == incarnation && n.state == NodeState::Up)
            })
            .map_err(|_| Error::Timeout(format!("{} did not rejoin within 5 s", node_name(id))))?;
        Ok(())
    }

    fn leader_control(&self, c: LeaderControl) -> Result<()> {
        self.leader
            .as_ref()
            .ok_or_else(|| Error::Internal("the leader is stopped".into()))?
            .control
            .send(c)
            .map_err(|_| Error::Internal("the leader thread is gone".into()))
    }

    /// Starts decommissioning a node, or removes a dead one from the view;
    /// [`Cluster::wait_removed`] waits for the end of it. `force` allows
    /// what would leave partitions with fewer than R copies (see
    /// [`crate::cluster::leader::ViewLeader::decommission`]). Returns the
    /// epoch of the view with the change.
    pub fn decommission(&mut self, id: NodeId, force: bool) -> Result<Epoch> {
        if let Some(r) = &mut self.remote {
            return r.decommission(id, force);
        }
        let (tx, rx) = crossbeam_channel::bounded(1);
        self.leader_control(LeaderControl::Decommission(id, force, tx))?;
        rx.recv_timeout(Duration::from_secs(2))
            .map_err(|_| Error::Timeout("the leader did not answer".into()))?
    }

    /// Decommissions a node and waits until it is gone and the data moves
    /// it caused have settled (see [`Cluster::wait_removed`]).
    pub fn remove(
        &mut self,
        id: NodeId,
        force: bool,
        timeout: Duration,
        cancelled: &dyn Fn() -> bool,
    ) -> Result<()> {
        let epoch = self.decommission(id, force)?;
        self.wait_removed(id, epoch, timeout, cancelled)
    }

    /// Starts a rebalance to the current target.
    pub fn rebalance(&self) -> Result<()> {
        if let Some(r) = &self.remote {
            return r.rebalance();
        }
        self.leader_control(LeaderControl::Rebalance)
    }

    /// Resyncs the secondaries of one partition, or of all, from their
    /// primaries (`repair`).
    pub fn resync(&self, partition: Option<PartitionId>) -> Result<()> {
        if let Some(r) = &self.remote {
            return r.resync(partition);
        }
        self.leader_control(LeaderControl::Resync(partition))
    }

    /// What a rebalance would do.
    pub fn plan(&self) -> Result<Plan> {
        if let Some(r) = &self.remote {
            return r.plan();
        }
        let (tx, rx) = crossbeam_channel::bounded(1);
        self.leader_control(LeaderControl::Plan(tx))?;
        rx.recv_timeout(Duration::from_secs(2))
            .map_err(|_| Error::Timeout("the leader did not answer".into()))
    }

    /// Switches the placement strategy (and rebalances to it).
    pub fn set_placement(&mut self, placement: Placement) -> Result<()> {
        if let Some(r) = &mut self.remote {
            return r.set_placement(placement);
        }
        self.cfg.placement = placement;
        self.leader_control(LeaderControl::SetPlacement(placement))
    }

    /// Turns automatic rebalancing on or off.
    pub fn set_auto_rebalance(&mut self, on: bool) -> Result<()> {
        if let Some(r) = &mut self.remote {
            return r.set_auto_rebalance(on);
        }
        self.cfg.auto_rebalance = on;
        self.leader_control(LeaderControl::SetAutoRebalance(on))
    }

    /// Sends a control command to a running node.
    pub fn control(&self, id: NodeId, c: Control) -> Result<()> {
        self.running(id)?
            .control
            .send(c)
            .map_err(|_| Error::Internal("node thread gone".into()))
    }

    /// Stops every thread and waits for them.
    pub fn shutdown(&mut self) {
        if let Some(r) = &mut self.remote {
            r.shutdown();
        }
        // The leader first: it must not see the nodes stop one by one and
        // publish (and, with a data directory, save) views that fail them
        // over. A cluster started again continues from the view it ran on.
        if let Some(l) = self.leader.take() {
            let _ = l.control.send(LeaderControl::Stop);
            let _ = l.thread.join();
        }
        for h in self.nodes.values_mut() {
            if let Some(t) = h.thread.take() {
                let _ = t.control.send(Control::Kill);
                let _ = t.thread.join();
            }
        }
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        self.shutdown();
    }
}
