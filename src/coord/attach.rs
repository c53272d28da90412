//! The shell attached to a cluster of node processes (`kvsh --coord
//! zk://…`), and the node processes it starts (`--spawn N`, `add`).
//!
//! [`attach`] returns an ordinary [`Cluster`] handle, so every shell
//! command, `check` and `bench` run unchanged:
//!
//! - **finding the nodes**: the shell opens its own ZooKeeper session, but
//!   registers nothing and never campaigns. A reader thread copies the
//!   status and the event tail the view leader publishes (every 200 ms,
//!   `src/coord/process.rs`) into the handle's status watch and event log,
//!   so `nodes`, `table`, `wait healthy` and the client's routing read the
//!   leader's view as in one process; each node's client endpoint is in
//!   that view, and the registered members name the rest (pid, endpoint).
//! - **node processes of its own**: `--spawn N` and `add` start
//!   `kvsh node --coord URL --id nN` children of this executable, each in a
//!   process group of its own (Ctrl-C at the shell reaches the shell, not
//!   the nodes) with `PR_SET_PDEATHSIG` set to SIGKILL (if the shell dies,
//!   panics or is killed, its nodes die with it: no orphans), output in a
//!   log file per node, and, with `--data-dir DIR`, its data in `DIR/nN`.
//!   On `quit` they get SIGTERM (their ZooKeeper
//!   sessions close at once), then SIGKILL after 3 s.
//! - **faults by signal**: for its own children `kill` is SIGKILL,
//!   `pause` is SIGSTOP and a SIGCONT when the pause ends (one timer
//!   thread), `resume` an early SIGCONT, `restart` a new process with the
//!   same id (it registers once the killed one's session has expired).
//! - **everything else through the node's control port**
//!   (`src/coord/admin.rs`, MACed with a key from `KVSH_SECRET`): `verify`
//!   asks each node for its digests (and pairs, where replicas differ), `partition`/`link`/`heal` send the
//!   whole rule set to every node's transport, and `kill`/`pause` of a
//!   node this shell did not start ask its process to SIGKILL itself or
//!   to freeze its node thread. Without the secret these say so.

use super::admin::{self, AdminReply, AdminRequest};
use super::operator::{LeaderCommand, LeaderLink};
use super::process::SECRET_VAR;
use super::zk::ZkMembership;
use super::{CoordUrl, Member, Membership, Shape};
use crate::cluster::handle::{Cluster, ClusterConfig, DataDir, Process};
use crate::cluster::leader::{Event, Plan, Status};
use crate::cluster::remote::RemoteNodes;
use crate::cluster::runtime::EventLog;
use crate::cluster::watch::Watch;
use crate::error::{Error, Result};
use crate::node::disk::node_dir;
use crate::node::faults::Faults;
use crate::node::runtime::PartitionDigest;
use crate::node::transport::Clock;
use crate::view::placement::Placement;
use crate::view::{node_name, Epoch, NodeId, NodeState, PartitionId};
use crossbeam_channel::{Receiver, RecvTimeoutError, Sender};
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// How often the reader looks at the published status. The leader
/// publishes every 200 ms, so this adds at most 100 ms to what a shell
/// sees; one small read of one znode.
const READ_EVERY: Duration = Duration::from_millis(100);

/// How the shell attaches.
#[derive(Clone, Debug)]
pub struct AttachOptions {
    /// Where the cluster is.
    pub coord: CoordUrl,
    /// Node processes to start now.
    pub spawn: usize,
    /// The shape proposed to a new cluster (an existing one keeps its own).
    pub shape: Shape,
    /// The ZooKeeper session timeout, for the shell and its nodes.
    pub session: Duration,
    /// The cluster secret, needed only to start nodes.
    pub secret: Option<String>,
    /// The `kvsh` executable that children run.
    pub exe: PathBuf,
    /// `--data-dir` and `--fsync`: each child keeps its data in its own
    /// directory inside this one (`DIR/nN`, as in one process), so a
    /// `restart` reloads what the killed process held.
    pub data: Option<DataDir>,
}

/// Attaches to the cluster at `opts.coord`, starting `opts.spawn` node
/// processes first if asked, and returns a handle the shell drives.
/// Events also go to `events_tx` as they arrive, if given.
pub fn attach(opts: AttachOptions, events_tx: Option<Sender<Event>>) -> Result<Cluster> {
    if opts.spawn > 0 && opts.secret.is_none() {
        return Err(Error::BadInput(format!(
            "--spawn needs the cluster secret in {SECRET_VAR} (at least 16 bytes), for the nodes"
        )));
    }
    let zk = Arc::new(ZkMembership::connect(
        &opts.coord.servers,
        &opts.coord.root,
        opts.session,
    )?);
    let status = Watch::new(zk.load_status()?.unwrap_or_default());
    let events: EventLog = Arc::default();
    let (stop_tx, stop_rx) = crossbeam_channel::bounded::<()>(0);
    let reader = {
        let (zk, status, events) = (zk.clone(), status.clone(), events.clone());
        std::thread::Builder::new()
            .name("kvsh-attach".into())
            .spawn(move || read_loop(&*zk, &status, &events, events_tx, stop_rx))?
    };
    let (wake_tx, wake_rx) = crossbeam_channel::unbounded();
    let waker = std::thread::Builder::new()
        .name("kvsh-sigcont".into())
        .spawn(move || wake_loop(wake_rx))?;
    let logs = super::logs::shell_log_dir()?;
    let mut nodes = AttachedNodes {
        zk,
        opts: opts.clone(),
        status: status.clone(),
        children: Mutex::new(BTreeMap::new()),
        paused: BTreeMap::new(),
        killed_here: Default::default(),
        logs,
        ctx: zmq::Context::new(),
        started: Clock::host().now(),
        threads: Some((stop_tx, reader, wake_tx, waker)),
    };
    let shape = nodes.zk.shape(&opts.shape)?;
    let cfg = ClusterConfig {
        nodes: opts.spawn,
        replicas: shape.replicas,
        partitions: shape.partitions,
        ..ClusterConfig::default()
    };
    if opts.spawn > 0 {
        nodes.add(opts.spawn)?;
    } else {
        let found = status.wait_until(Duration::from_secs(5), &|| false, |s| s.view.epoch > 0);
        if found.is_err() {
            nodes.shutdown();
            return Err(Error::Unavailable(format!(
                "no cluster at {}: no view leader has published a view (start nodes with \
                 `kvsh node --coord ...`, or add --spawn N)",
                opts.coord.root
            )));
        }
    }
    Ok(Cluster::attached(cfg, status, events, Box::new(nodes)))
}

/// Copies the leader's published status and events into the handle's,
/// until stopped.
fn read_loop(
    zk: &dyn Membership,
    status: &Watch<Status>,
    events: &EventLog,
    events_tx: Option<Sender<Event>>,
    stop: Receiver<()>,
) {
    let mut last_now = None;
    loop {
        if let Ok(Some(s)) = zk.load_status() {
            // The leader stamps each status; republish only news.
            if last_now != Some((s.now, s.view.epoch)) {
                last_now = Some((s.now, s.view.epoch));
                status.publish(s);
            }
        }
        if let Ok(published) = zk.load_events() {
            let mut log = events.lock().unwrap_or_else(|e| e.into_inner());
            for e in published {
                // New leaders start new logs; events are told apart by
                // content among those at the same instant or later.
                let known = log
                    .iter()
                    .rev()
                    .take_while(|x| x.at >= e.at)
                    .any(|x| *x == e);
                let newer = log.last().is_none_or(|x| e.at >= x.at);
                if !known && newer {
                    if let Some(tx) = &events_tx {
                        let _ = tx.send(e.clone());
                    }
                    log.push(e);
                }
            }
        }
        match stop.recv_timeout(READ_EVERY) {
            Err(RecvTimeoutError::Timeout) => {}
            _ => return,
        }
    }
}

/// A pause's end: SIGCONT to `pid` at the instant, unless replaced.
enum Wake {
    At(NodeId, u32, Instant),
    Cancel(NodeId),
}

/// Sends each SIGCONT when its pause ends, until the sender is dropped.
fn wake_loop(rx: Receiver<Wake>) {
    let mut due: BTreeMap<NodeId, (u32, Instant)> = BTreeMap::new();
    loop {
        let next = due.values().map(|(_, t)| *t).min();
        let got = match next {
            Some(t) => rx.recv_deadline(t),
            None => rx.recv().map_err(|_| RecvTimeoutError::Disconnected),
        };
        match got {
            Ok(Wake::At(id, pid, t)) => {
                due.insert(id, (pid, t));
            }
            Ok(Wake::Cancel(id)) => {
                due.remove(&id);
            }
            Err(RecvTimeoutError::Timeout) => {}
            Err(RecvTimeoutError::Disconnected) => return,
        }
        let now = Instant::now();
        due.retain(|_, (pid, t)| {
            if *t <= now {
                signal(*pid, libc::SIGCONT);
                false
            } else {
                true
            }
        });
    }
}

/// Sends `sig` to one process.
#[allow(unsafe_code)] // One libc call.
fn signal(pid: u32, sig: libc::c_int) -> bool {
    // SAFETY: kill(2) with a pid of a child this shell started and has not
    // reaped (so the pid is not reused), and a valid signal number.
    unsafe { libc::kill(pid as libc::pid_t, sig) == 0 }
}

/// One node process this shell started.
struct Life {
    /// `None` once killed (and reaped).
    child: Option<Child>,
}

/// The nodes of an attached cluster (see the module docs).
struct AttachedNodes {
    zk: Arc<ZkMembership>,
    opts: AttachOptions,
    status: Watch<Status>,
    /// Behind a lock so that reading a child's state (`&self`) can reap
    /// one that exited by itself (a leader whose session lapsed while it
    /// was stopped exits, by design).
    children: Mutex<BTreeMap<NodeId, Life>>,
    /// Pauses in force, by the shell's clock.
    paused: BTreeMap<NodeId, Instant>,
    /// Nodes this shell did not start but killed through their control
    /// ports: killed, and `restart` starts them again as children.
    killed_here: std::collections::BTreeSet<NodeId>,
    /// Where children write their output: `nN.log`.
    logs: PathBuf,
    /// For control requests.
    ctx: zmq::Context,
    /// When the shell attached, on the host clock: shown event times
    /// count from here.
    started: u64,
    /// The reader's stop channel and thread, the waker's channel and
    /// thread; taken by shutdown.
    #[allow(clippy::type_complexity)]
    threads: Option<(Sender<()>, JoinHandle<()>, Sender<Wake>, JoinHandle<()>)>,
}

impl AttachedNodes {
    fn members(&self) -> Vec<Member> {
        self.zk.members().unwrap_or_default()
    }

    /// The children, each that has exited by itself reaped and marked
    /// killed.
    fn lives(&self) -> MutexGuard<'_, BTreeMap<NodeId, Life>> {
        let mut lives = self.children.lock().unwrap_or_else(|e| e.into_inner());
        for life in lives.values_mut() {
            if let Some(c) = &mut life.child {
                if !matches!(c.try_wait(), Ok(None)) {
                    life.child = None;
                }
            }
        }
        lives
    }

    fn child_pid(&self, id: NodeId) -> Option<u32> {
        self.lives().get(&id)?.child.as_ref().map(|c| c.id())
    }

    /// Refuses a node this shell did not start, saying so.
    fn own(&self, id: NodeId, verb: &str) -> Result<u32> {
        match self.lives().get(&id) {
            Some(Life { child: Some(c) }) => Ok(c.id()),
            Some(Life { child: None }) => Err(Error::BadInput(format!(
                "{} is killed; `restart {}` starts it again",
                node_name(id),
                node_name(id)
            ))),
            None => {
                let pid = self
                    .members()
                    .into_iter()
                    .find(|m| m.id == id)
                    .map_or(String::new(), |m| format!(" (pid {})", m.pid));
                Err(Error::BadInput(format!(
                    "cannot {verb} {}: it runs in a process this shell did not start{pid}; \
                     signal it on its own host",
                    node_name(id)
                )))
            }
        }
    }

    /// Asks node `id`'s process, through its control port.
    fn ask(&self, id: NodeId, request: AdminRequest, timeout: Duration) -> Result<AdminReply> {
        let Some(secret) = &self.opts.secret else {
            return Err(Error::BadInput(format!(
                "asking a node process needs the cluster secret: set {SECRET_VAR}"
            )));
        };
        let member = self
            .members()
            .into_iter()
            .find(|m| m.id == id)
            .ok_or_else(|| {
                Error::Unavailable(format!("{} has no live process registered", node_name(id)))
            })?;
        if member.control.is_empty() {
            return Err(Error::Unavailable(format!(
                "{}'s process has no control port (an older kvsh)",
                node_name(id)
            )));
        }
        let key = admin::admin_key(secret.as_bytes());
        match admin::ask(&self.ctx, &member.control, &key, request, timeout)? {
            AdminReply::Failed(why) => Err(Error::Unavailable(format!("{}: {why}", node_name(id)))),
            reply => Ok(reply),
        }
    }

    /// The way to the view leader's process (`operator.rs`).
    fn leader(&self) -> Result<LeaderLink<'_>> {
        let Some(secret) = &self.opts.secret else {
            return Err(Error::BadInput(format!(
                "the view leader's commands go to its node process, which needs the cluster \
                 secret: set {SECRET_VAR}"
            )));
        };
        Ok(LeaderLink {
            membership: &*self.zk,
            ctx: &self.ctx,
            key: admin::admin_key(secret.as_bytes()),
        })
    }

    /// Sends the leader a command with no answer, and returns once a
    /// status taken after it has been read, as in one process, where the
    /// leader publishes its effect at once: `set` and `nodes` then show it.
    fn order(&self, command: LeaderCommand) -> Result<()> {
        let asked = Clock::host().now();
        self.leader()?.order(command)?;
        self.published_since(asked);
        Ok(())
    }

    /// Waits (up to 2 s) for a status the leader took at or after `t`.
    /// Processes share the host's monotonic clock, as leases require.
    fn published_since(&self, t: u64) {
        let _ = self
            .status
            .wait_until(Duration::from_secs(2), &|| false, |s| s.now >= t);
    }

    /// Starts `kvsh node` as node `id` (see the module docs).
    fn start_child(&mut self, id: NodeId, expect: usize) -> Result<()> {
        std::fs::create_dir_all(&self.logs)?;
        let log_path = self.logs.join(format!("{}.log", node_name(id)));
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&log_path)?;
        let secret = self.opts.secret.clone().unwrap_or_default();
        let url = format!("zk://{}{}", self.opts.coord.servers, self.opts.coord.root);
        let mut cmd = Command::new(&self.opts.exe);
        cmd.args(["node", "--coord", &url, "--id", &node_name(id)])
            .args(["--partitions", &self.opts.shape.partitions.to_string()])
            .args(["--replicas", &self.opts.shape.replicas.to_string()])
            .args(["--expect", &expect.to_string()])
            .args([
                "--session-timeout",
                &format!("{}ms", self.opts.session.as_millis()),
            ])
            .env(SECRET_VAR, secret)
            .stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log);
        if let Some(d) = &self.opts.data {
            cmd.arg("--data-dir")
                .arg(node_dir(&d.dir, id))
                .args(["--fsync", &d.fsync.to_string()]);
        }
        die_with_parent(&mut cmd);
        let child = cmd.spawn()?;
        let pid = child.id();
        self.lives().insert(id, Life { child: Some(child) });
        // Registered: its znode names this pid. A restart waits here until
        // the killed life's session has expired.
        let deadline = Instant::now() + Duration::from_millis(2 * self.zk.session_ms()) + SLACK;
        loop {
            if self.members().iter().any(|m| m.id == id && m.pid == pid) {
                return Ok(());
            }
            if self.child_pid(id).is_none() {
                return Err(Error::Unavailable(format!(
                    "{} exited before it registered; see {}",
                    node_name(id),
                    log_path.display()
                )));
            }
            if Instant::now() > deadline {
                return Err(Error::Timeout(format!(
                    "{} did not register in ZooKeeper; see {}",
                    node_name(id),
                    log_path.display()
                )));
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Waits until the view has `ids` up, with these incarnations or newer
    /// than `older`.
    fn wait_up(&self, ids: &[NodeId], older: &BTreeMap<NodeId, u64>, what: &str) -> Result<()> {
        let timeout = Duration::from_millis(2 * self.zk.session_ms()) + SLACK;
        self.status
            .wait_until(timeout, &|| false, |s| {
                ids.iter().all(|id| {
                    s.view.nodes.get(id).is_some_and(|n| {
                        n.state == NodeState::Up && older.get(id).is_none_or(|i| n.incarnation > *i)
                    })
                })
            })
            .map(|_| ())
            .map_err(|_| {
                Error::Timeout(format!(
                    "{what} not in the view after {:.0} s; logs in {}",
                    timeout.as_secs_f64(),
                    self.logs.display()
                ))
            })
    }
}

/// What waits on node processes allow beyond the session timeouts, for a
/// loaded machine.
const SLACK: Duration = Duration::from_secs(15);

/// Puts a child in a process group of its own, and has the kernel kill
/// it when this process dies.
#[allow(unsafe_code)] // prctl and getppid between fork and exec.
fn die_with_parent(cmd: &mut Command) {
    use std::os::unix::process::CommandExt;
    let parent = std::process::id() as libc::pid_t;
    cmd.process_group(0);
    // SAFETY: only async-signal-safe calls between fork and exec.
    unsafe {
        cmd.pre_exec(move || {
            libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL);
            // The parent may have died before the prctl.
            if libc::getppid() != parent {
                libc::_exit(1);
            }
            Ok(())
        });
    }
}

impl RemoteNodes for AttachedNodes {
    fn node_ids(&self) -> Vec<NodeId> {
        let view = self.status.get().view.clone();
        let mut ids: Vec<NodeId> = view.nodes.keys().copied().collect();
        // A child that exited and is not in the view was removed (it
        // exits once a view no longer lists it); it is gone, not killed.
        ids.extend(
            self.lives()
                .iter()
                .filter(|(id, l)| l.child.is_some() || view.nodes.contains_key(id))
                .map(|(id, _)| *id),
        );
        ids.extend(self.members().iter().map(|m| m.id));
        ids.sort_unstable();
        ids.dedup();
        ids
    }

    fn endpoint(&self, id: NodeId) -> Option<String> {
        if let Some(m) = self.members().into_iter().find(|m| m.id == id) {
            return Some(m.endpoint);
        }
        self.status
            .get()
            .view
            .nodes
            .get(&id)
            .map(|n| n.endpoint.clone())
    }

    fn time_origin(&self) -> u64 {
        self.started
    }

    fn process(&self, id: NodeId) -> Option<Process> {
        let lives = self.lives();
        let Some(life) = lives.get(&id) else {
            // Not ours: killed or paused through its control port, or
            // running if a live process serves it.
            if self.killed_here.contains(&id) {
                return Some(Process::Killed);
            }
            if let Some(t) = self.paused.get(&id).filter(|t| **t > Instant::now()) {
                return Some(Process::Paused(*t));
            }
            let registered = self.members().iter().any(|m| m.id == id);
            return registered.then_some(Process::Running);
        };
        Some(match (&life.child, self.paused.get(&id)) {
            (None, _) => Process::Killed,
            (Some(_), Some(t)) if *t > Instant::now() => Process::Paused(*t),
            (Some(_), _) => Process::Running,
        })
    }

    fn add(&mut self, count: usize) -> Result<Vec<NodeId>> {
        if self.opts.secret.is_none() {
            return Err(Error::BadInput(format!(
                "add starts node processes, which need the cluster secret: set {SECRET_VAR}"
            )));
        }
        let taken = self.node_ids();
        let first = taken.iter().max().copied().unwrap_or(0) + 1;
        let ids: Vec<NodeId> = (first..first + count as NodeId).collect();
        // A new cluster's first view waits for all of them.
        let expect = if self.status.get().view.epoch == 0 {
            count
        } else {
            1
        };
        for id in &ids {
            self.start_child(*id, expect)?;
        }
        self.wait_up(&ids, &BTreeMap::new(), "the new nodes are")?;
        Ok(ids)
    }

    fn kill(&mut self, id: NodeId) -> Result<()> {
        if !self.lives().contains_key(&id) {
            // Not ours: its process kills itself when asked.
            self.ask(id, AdminRequest::Kill, Duration::from_secs(2))
                .map_err(|e| {
                    self.own(id, "kill")
                        .err()
                        .map_or(e.clone(), |own| refuse(own, e))
                })?;
            self.paused.remove(&id);
            self.killed_here.insert(id);
            return Ok(());
        }
        let pid = self.own(id, "kill")?;
        signal(pid, libc::SIGKILL);
        let child = self.lives().get_mut(&id).and_then(|l| l.child.take());
        if let Some(mut c) = child {
            let _ = c.wait();
        }
        self.paused.remove(&id);
        if let Some((_, _, wake, _)) = &self.threads {
            let _ = wake.send(Wake::Cancel(id));
        }
        Ok(())
    }

    fn pause(&mut self, id: NodeId, d: Duration) -> Result<()> {
        if !self.lives().contains_key(&id) {
            // Not ours: its node thread freezes, as in one process.
            let ms = d.as_millis() as u64;
            self.ask(id, AdminRequest::Pause(ms), Duration::from_secs(2))
                .map_err(|e| {
                    self.own(id, "pause")
                        .err()
                        .map_or(e.clone(), |own| refuse(own, e))
                })?;
            self.paused.insert(id, Instant::now() + d);
            return Ok(());
        }
        let pid = self.own(id, "pause")?;
        let until = Instant::now() + d;
        signal(pid, libc::SIGSTOP);
        self.paused.insert(id, until);
        if let Some((_, _, wake, _)) = &self.threads {
            let _ = wake.send(Wake::At(id, pid, until));
        }
        Ok(())
    }

    fn resume(&mut self, id: NodeId) -> Result<()> {
        if !self.lives().contains_key(&id) {
            self.ask(id, AdminRequest::Pause(0), Duration::from_secs(2))?;
            self.paused.remove(&id);
            return Ok(());
        }
        let pid = self.own(id, "resume")?;
        signal(pid, libc::SIGCONT);
        self.paused.remove(&id);
        if let Some((_, _, wake, _)) = &self.threads {
            let _ = wake.send(Wake::Cancel(id));
        }
        Ok(())
    }

    fn restart(&mut self, id: NodeId) -> Result<()> {
        let view = self.status.get().view.clone();
        let ours = self.lives().contains_key(&id);
        let dead_elsewhere = !ours
            && (self.killed_here.contains(&id)
                || view
                    .nodes
                    .get(&id)
                    .is_some_and(|n| n.state == NodeState::Dead));
        if self.child_pid(id).is_some() {
            return Err(Error::BadInput(format!(
                "{} is running; kill it first",
                node_name(id)
            )));
        }
        if !ours && !dead_elsewhere {
            self.own(id, "restart")?;
        }
        if self.opts.secret.is_none() {
            return Err(Error::BadInput(format!(
                "restart starts a node process, which needs the cluster secret: set {SECRET_VAR}"
            )));
        }
        let older: BTreeMap<NodeId, u64> = view
            .nodes
            .get(&id)
            .map(|n| (id, n.incarnation))
            .into_iter()
            .collect();
        self.start_child(id, 1)?;
        self.killed_here.remove(&id);
        self.wait_up(&[id], &older, &node_name(id))
    }

    fn digests(
        &self,
        id: NodeId,
        timeout: Duration,
    ) -> Result<BTreeMap<PartitionId, PartitionDigest>> {
        match self.ask(id, AdminRequest::Digests, timeout)? {
            AdminReply::Digests(d) => Ok(d
                .into_iter()
                .map(|(p, (keys, digest))| (p, PartitionDigest { keys, digest }))
                .collect()),
            other => Err(Error::Io(format!("unexpected control reply {other:?}"))),
        }
    }

    fn dump(&self, id: NodeId, p: PartitionId, timeout: Duration) -> Result<Vec<(String, String)>> {
        match self.ask(id, AdminRequest::Dump(p), timeout)? {
            AdminReply::Pairs(pairs) => Ok(pairs),
            other => Err(Error::Io(format!("unexpected control reply {other:?}"))),
        }
    }

    fn apply_faults(&self, faults: &Faults) -> Result<()> {
        let rules = faults.snapshot();
        let mut failed = Vec::new();
        for m in self.members() {
            if let Err(e) = self.ask(
                m.id,
                AdminRequest::Faults(rules.clone()),
                Duration::from_secs(2),
            ) {
                failed.push(e.to_string());
            }
        }
        if failed.is_empty() {
            Ok(())
        } else {
            // Undo what some nodes took, so none keeps a rule `faults`
            // does not list.
            for m in self.members() {
                let _ = self.ask(
                    m.id,
                    AdminRequest::Faults(Default::default()),
                    Duration::from_secs(2),
                );
            }
            Err(Error::Unavailable(format!(
                "the faults were not applied: {}",
                failed.join("; ")
            )))
        }
    }

    fn decommission(&mut self, id: NodeId, force: bool) -> Result<Epoch> {
        let asked = Clock::host().now();
        let epoch = self.leader()?.decommission(id, force)?;
        self.published_since(asked);
        Ok(epoch)
    }

    fn forget(&mut self, id: NodeId) -> Result<()> {
        // Its process exits and closes its session, so its registration
        // goes at once; a process that is paused or cut off keeps it until
        // its session expires.
        let deadline = Instant::now() + Duration::from_millis(2 * self.zk.session_ms()) + SLACK;
        while let Some(m) = self.members().into_iter().find(|m| m.id == id) {
            if Instant::now() > deadline {
                return Err(Error::Timeout(format!(
                    "{} left the view, but its process (pid {}) is still registered",
                    node_name(id),
                    m.pid
                )));
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        if let Some(mut c) = self.lives().remove(&id).and_then(|l| l.child) {
            let _ = c.wait();
        }
        self.paused.remove(&id);
        self.killed_here.remove(&id);
        Ok(())
    }

    fn rebalance(&self) -> Result<()> {
        self.order(LeaderCommand::Rebalance)
    }

    fn resync(&self, p: Option<PartitionId>) -> Result<()> {
        self.order(LeaderCommand::Resync(p))
    }

    fn plan(&self) -> Result<Plan> {
        self.leader()?.plan()
    }

    fn set_placement(&mut self, p: Placement) -> Result<()> {
        self.order(LeaderCommand::SetPlacement {
            strategy: p.strategy,
            vnodes: p.vnodes,
        })
    }

    fn set_auto_rebalance(&mut self, on: bool) -> Result<()> {
        self.order(LeaderCommand::SetAutoRebalance(on))
    }

    fn shutdown(&mut self) {
        // SIGTERM: each closes its session, so its znodes go at once.
        let lives = self.children.get_mut().unwrap_or_else(|e| e.into_inner());
        for life in lives.values() {
            if let Some(c) = &life.child {
                signal(c.id(), libc::SIGCONT);
                signal(c.id(), libc::SIGTERM);
            }
        }
        let deadline = Instant::now() + Duration::from_secs(3);
        for life in lives.values_mut() {
            if let Some(mut c) = life.child.take() {
                while Instant::now() < deadline && matches!(c.try_wait(), Ok(None)) {
                    std::thread::sleep(Duration::from_millis(10));
                }
                let _ = c.kill();
                let _ = c.wait();
            }
        }
        if let Some((stop, reader, wake, waker)) = self.threads.take() {
            drop(stop);
            drop(wake);
            let _ = reader.join();
            let _ = waker.join();
        }
    }
}

impl Drop for AttachedNodes {
    fn drop(&mut self) {
        self.shutdown();
    }
}

/// The error for a node the shell cannot reach: why it is not ours, and why
/// its control port did not do it.
fn refuse(own: Error, asked: Error) -> Error {
    Error::BadInput(format!("{own} (its control port: {asked})"))
}
