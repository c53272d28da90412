//! [`Membership`] on ZooKeeper.
//!
//! The client is `zookeeper-client` (maintained, async), run on a tokio
//! runtime this struct owns: one worker thread, private to this module.
//! Callers block on it; watches run as tasks on it and push [`Notice`]s
//! into a crossbeam channel, so the rest of kvsh stays threads and
//! channels. Why this crate and not the synchronous `zookeeper`:
//! docs/architecture.md §13.
//!
//! Layout under the cluster's root (e.g. `/kvsh/demo`):
//!
//! | znode | kind | holds |
//! |---|---|---|
//! | `shape` | persistent | JSON [`Shape`], written once |
//! | `incarnations/nN-…` | persistent sequential, deleted at once | its sequence number is the next incarnation |
//! | `members/nN` | ephemeral | JSON [`Member`] |
//! | `election/c-…` | ephemeral sequential | the candidate's node id |
//! | `leader` | ephemeral | JSON [`LeaderRecord`] |
//! | `view` | persistent, versioned | postcard [`View`] |
//! | `status` | persistent | postcard [`Status`], for shells |
//! | `events` | persistent | JSON `Vec<Event>`, the leader's latest events, for shells |

use super::{conflict, LeaderRecord, Member, Membership, Notice, Shape, Version};
use crate::cluster::leader::{Event, Status};
use crate::error::{Error, Result};
use crate::view::{Incarnation, NodeId, View};
use crossbeam_channel::{Receiver, Sender};
use std::time::Duration;
use zookeeper_client::{Acls, Client, CreateMode, SessionState};

/// True if the session is over: a watch loop ends. Any other error (a
/// connection lost for a moment) is retried, or the process would stop
/// hearing of views and leaders for good.
fn gone(e: &zookeeper_client::Error) -> bool {
    matches!(
        e,
        zookeeper_client::Error::SessionExpired
            | zookeeper_client::Error::ClientClosed
            | zookeeper_client::Error::AuthFailed
    )
}

fn zk_error(what: &str, e: zookeeper_client::Error) -> Error {
    Error::Unavailable(format!("zookeeper: {what}: {e}"))
}

/// A ZooKeeper session for one process.
pub struct ZkMembership {
    rt: tokio::runtime::Runtime,
    client: Client,
    tx: Sender<Notice>,
    rx: Receiver<Notice>,
    node: std::sync::Mutex<Option<NodeId>>,
    session_ms: u64,
    /// The watch tasks: each holds a clone of the client, and the session
    /// closes only when every clone is gone.
    tasks: std::sync::Mutex<Vec<tokio::task::JoinHandle<()>>>,
}

impl std::fmt::Debug for ZkMembership {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ZkMembership")
            .field("session_ms", &self.session_ms)
            .finish()
    }
}

impl ZkMembership {
    /// Connects to `servers` (`host:port,...`) with this session timeout,
    /// creates the cluster's znodes under `root` if missing, and starts
    /// pushing view and leader changes.
    pub fn connect(servers: &str, root: &str, session: Duration) -> Result<Self> {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .thread_name("kvsh-zk")
            .enable_all()
            .build()?;
        let client = rt.block_on(async {
            let base = tokio::time::timeout(
                Duration::from_secs(10),
                Client::connector()
                    .with_session_timeout(session)
                    .connect(servers),
            )
            .await
            .map_err(|_| Error::Unavailable(format!("zookeeper at {servers}: no answer in 10 s")))?
            .map_err(|e| zk_error(&format!("connect to {servers}"), e))?;
            let dir = CreateMode::Persistent.with_acls(Acls::anyone_all());
            for sub in ["members", "election", "incarnations"] {
                base.mkdir(&format!("{root}/{sub}"), &dir)
                    .await
                    .map_err(|e| zk_error(&format!("create {root}/{sub}"), e))?;
            }
            base.chroot(root.to_string())
                .map_err(|_| Error::BadInput(format!("bad ZooKeeper path {root}")))
        })?;
        let session_ms = client.session_timeout().as_millis() as u64;
        let (tx, rx) = crossbeam_channel::unbounded();
        let zk = ZkMembership {
            rt,
            client,
            tx,
            rx,
            node: std::sync::Mutex::new(None),
            session_ms,
            tasks: std::sync::Mutex::new(Vec::new()),
        };
        zk.start_watches();
        Ok(zk)
    }

    fn start_watches(&self) {
        // The session's state: a lost session is the end of this process's
        // registration and role.
        let mut states = self.client.state_watcher();
        let tx = self.tx.clone();
        self.spawn(async move {
            loop {
                let s = states.changed().await;
                match s {
                    SessionState::Disconnected => {
                        let _ = tx.send(Notice::SessionLost("disconnected from ZooKeeper".into()));
                    }
                    SessionState::Expired | SessionState::Closed | SessionState::AuthFailed => {
                        let _ = tx.send(Notice::SessionLost(format!("ZooKeeper session {s:?}")));
                        return;
                    }
                    _ => {}
                }
            }
        });
        // The view, pushed: read it with a watch, wait for the watch, again.
        let client = self.client.clone();
        let tx = self.tx.clone();
        self.spawn(async move {
            loop {
                match client.get_and_watch_data("/view").await {
                    Ok((data, _, w)) => {
                        if let Ok(view) = postcard::from_bytes::<View>(&data) {
                            let _ = tx.send(Notice::View(Box::new(view)));
                        }
                        w.changed().await;
                    }
                    Err(zookeeper_client::Error::NoNode) => {
                        match client.check_and_watch_stat("/view").await {
                            Ok((None, w)) => {
                                w.changed().await;
                            }
                            Ok((Some(_), _)) => {}
                            Err(e) => {
                                if gone(&e) {
                                    return;
                                }
                                tokio::time::sleep(Duration::from_millis(100)).await;
                            }
                        }
                    }
                    Err(e) => {
                        if gone(&e) {
                            return;
                        }
                        tokio::time::sleep(Duration::from_millis(100)).await;
                    }
                }
            }
        });
        let client = self.client.clone();
        let tx = self.tx.clone();
        self.spawn(async move {
            loop {
                match client.get_and_watch_data("/leader").await {
                    Ok((data, _, w)) => {
                        let rec = serde_json::from_slice::<LeaderRecord>(&data).ok();
                        let _ = tx.send(Notice::Leader(rec));
                        w.changed().await;
                    }
                    Err(zookeeper_client::Error::NoNode) => {
                        let _ = tx.send(Notice::Leader(None));
                        match client.check_and_watch_stat("/leader").await {
                            Ok((None, w)) => {
                                w.changed().await;
                            }
                            Ok((Some(_), _)) => {}
                            Err(e) => {
                                if gone(&e) {
                                    return;
                                }
                                tokio::time::sleep(Duration::from_millis(100)).await;
                            }
                        }
                    }
                    Err(e) => {
                        if gone(&e) {
                            return;
                        }
                        tokio::time::sleep(Duration::from_millis(100)).await;
                    }
                }
            }
        });
    }

    fn spawn(&self, f: impl std::future::Future<Output = ()> + Send + 'static) {
        let h = self.rt.spawn(f);
        self.tasks.lock().unwrap_or_else(|e| e.into_inner()).push(h);
    }

    fn block<T>(&self, f: impl std::future::Future<Output = T>) -> T {
        self.rt.block_on(f)
    }

    /// Writes a persistent znode, creating it if missing; last writer wins.
    fn put(&self, path: &str, data: &[u8]) -> Result<()> {
        self.block(async {
            match self.client.set_data(path, data, None).await {
                Ok(_) => Ok(()),
                Err(zookeeper_client::Error::NoNode) => {
                    let opts = CreateMode::Persistent.with_acls(Acls::anyone_all());
                    match self.client.create(path, data, &opts).await {
                        Ok(_) | Err(zookeeper_client::Error::NodeExists) => Ok(()),
                        Err(e) => Err(zk_error(&format!("store {path}"), e)),
                    }
                }
                Err(e) => Err(zk_error(&format!("store {path}"), e)),
            }
        })
    }

    /// Reads a znode, `None` if missing. Bounded by a third of the session
    /// timeout, so a shell's reader never hangs on a lost server.
    fn get(&self, path: &str) -> Result<Option<Vec<u8>>> {
        self.block(async {
            let read = tokio::time::timeout(
                Duration::from_millis(self.session_ms / 3),
                self.client.get_data(path),
            )
            .await
            .map_err(|_| Error::Unavailable(format!("zookeeper: no answer reading {path}")))?;
            match read {
                Ok((data, _)) => Ok(Some(data)),
                Err(zookeeper_client::Error::NoNode) => Ok(None),
                Err(e) => Err(zk_error(&format!("read {path}"), e)),
            }
        })
    }

    /// Closes the session at once: its ephemeral znodes go now, not at
    /// the session timeout.
    pub fn close(self) {
        let ZkMembership {
            rt, client, tasks, ..
        } = self;
        let tasks = tasks.into_inner().unwrap_or_else(|e| e.into_inner());
        rt.block_on(async move {
            for t in &tasks {
                t.abort();
            }
            for t in tasks {
                let _ = t.await;
            }
            // The last clone gone, the client sends CloseSession.
            drop(client);
            tokio::time::sleep(Duration::from_millis(100)).await;
        });
        rt.shutdown_timeout(Duration::from_millis(200));
    }
}

impl Membership for ZkMembership {
    fn shape(&self, proposed: &Shape) -> Result<Shape> {
        self.block(async {
            let data = serde_json::to_vec(proposed).map_err(|e| Error::Internal(e.to_string()))?;
            let opts = CreateMode::Persistent.with_acls(Acls::anyone_all());
            match self.client.create("/shape", &data, &opts).await {
                Ok(_) | Err(zookeeper_client::Error::NodeExists) => {}
                Err(e) => return Err(zk_error("create /shape", e)),
            }
            let (data, _) = self
                .client
                .get_data("/shape")
                .await
                .map_err(|e| zk_error("read /shape", e))?;
            serde_json::from_slice(&data).map_err(|e| Error::Internal(format!("bad /shape: {e}")))
        })
    }

    fn next_incarnation(&self, id: NodeId) -> Result<Incarnation> {
        self.block(async {
            let opts = CreateMode::PersistentSequential.with_acls(Acls::anyone_all());
            let prefix = format!("/incarnations/n{id}-");
            let (_, seq) = self
                .client
                .create(&prefix, b"", &opts)
                .await
                .map_err(|e| zk_error("allocate an incarnation", e))?;
            let _ = self.client.delete(&format!("{prefix}{seq}"), None).await;
            // Sequence numbers of one parent only grow, deleted or not.
            Ok(seq.into_i64() as Incarnation + 1)
        })
    }

    fn free_id(&self) -> Result<NodeId> {
        let members = self.members()?;
        Ok((1..)
            .find(|i| !members.iter().any(|m| m.id == *i))
            .unwrap_or(1))
    }

    fn register(&self, member: &Member) -> Result<()> {
        *self.node.lock().unwrap_or_else(|e| e.into_inner()) = Some(member.id);
        self.block(async {
            let data = serde_json::to_vec(member).map_err(|e| Error::Internal(e.to_string()))?;
            let opts = CreateMode::Ephemeral.with_acls(Acls::anyone_all());
            let path = format!("/members/n{}", member.id);
            match self.client.create(&path, &data, &opts).await {
                Ok(_) => Ok(()),
                Err(zookeeper_client::Error::NodeExists) => Err(Error::BadInput(format!(
                    "n{} is already registered by a live process (its znode {path} exists)",
                    member.id
                ))),
                Err(e) => Err(zk_error(&format!("register {path}"), e)),
            }
        })
    }

    fn members(&self) -> Result<Vec<Member>> {
        self.block(async {
            let names = self
                .client
                .list_children("/members")
                .await
                .map_err(|e| zk_error("list /members", e))?;
            let mut out = Vec::new();
            for n in names {
                if let Ok((data, _)) = self.client.get_data(&format!("/members/{n}")).await {
                    if let Ok(m) = serde_json::from_slice::<Member>(&data) {
                        out.push(m);
                    }
                }
            }
            out.sort_by_key(|m| m.id);
            Ok(out)
        })
    }

    fn campaign(&self) -> Result<u64> {
        let node = self
            .node
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .unwrap_or(0);
        let opts = CreateMode::EphemeralSequential.with_acls(Acls::anyone_all());
        let (_, seq) = self
            .block(
                self.client
                    .create("/election/c-", node.to_string().as_bytes(), &opts),
            )
            .map_err(|e| zk_error("enter the election", e))?;
        let mine = format!("c-{seq}");
        let number = seq.into_i64() as u64 + 1;
        // The standard recipe: the lowest candidate leads; every other
        // watches the one just below it, so one death wakes one candidate.
        let client = self.client.clone();
        let tx = self.tx.clone();
        self.spawn(async move {
            loop {
                let mut names = match client.list_children("/election").await {
                    Ok(names) => names,
                    Err(e) if gone(&e) => return,
                    Err(_) => {
                        tokio::time::sleep(Duration::from_millis(100)).await;
                        continue;
                    }
                };
                names.sort();
                let Some(at) = names.iter().position(|n| *n == mine) else {
                    return; // Our candidacy ended with the session.
                };
                if at == 0 {
                    let _ = tx.send(Notice::Elected);
                    return;
                }
                match client
                    .check_and_watch_stat(&format!("/election/{}", names[at - 1]))
                    .await
                {
                    Ok((Some(_), w)) => {
                        w.changed().await;
                    }
                    Ok((None, _)) => {}
                    Err(e) => {
                        if gone(&e) {
                            return;
                        }
                        tokio::time::sleep(Duration::from_millis(100)).await;
                    }
                }
            }
        });
        Ok(number)
    }

    fn announce(&self, leader: &LeaderRecord) -> Result<()> {
        self.block(async {
            let data = serde_json::to_vec(leader).map_err(|e| Error::Internal(e.to_string()))?;
            let opts = CreateMode::Ephemeral.with_acls(Acls::anyone_all());
            self.client
                .create("/leader", &data, &opts)
                .await
                .map(|_| ())
                .map_err(|e| zk_error("announce the leader", e))
        })
    }

    fn leader(&self) -> Result<Option<LeaderRecord>> {
        self.block(async {
            match self.client.get_data("/leader").await {
                Ok((data, _)) => Ok(serde_json::from_slice(&data).ok()),
                Err(zookeeper_client::Error::NoNode) => Ok(None),
                Err(e) => Err(zk_error("read /leader", e)),
            }
        })
    }

    fn load_view(&self) -> Result<Option<(View, Version)>> {
        self.block(async {
            match self.client.get_data("/view").await {
                Ok((data, stat)) => {
                    let view = postcard::from_bytes(&data)
                        .map_err(|e| Error::Internal(format!("bad stored view: {e}")))?;
                    Ok(Some((view, stat.version)))
                }
                Err(zookeeper_client::Error::NoNode) => Ok(None),
                Err(e) => Err(zk_error("read /view", e)),
            }
        })
    }

    fn store_view(&self, view: &View, expected: Option<Version>) -> Result<Version> {
        let data = postcard::to_allocvec(view).map_err(|e| Error::Internal(e.to_string()))?;
        self.block(async {
            match expected {
                None => {
                    let opts = CreateMode::Persistent.with_acls(Acls::anyone_all());
                    match self.client.create("/view", &data, &opts).await {
                        Ok((stat, _)) => Ok(stat.version),
                        Err(zookeeper_client::Error::NodeExists) => Err(conflict()),
                        Err(e) => Err(zk_error("store /view", e)),
                    }
                }
                Some(v) => match self.client.set_data("/view", &data, Some(v)).await {
                    Ok(stat) => Ok(stat.version),
                    Err(zookeeper_client::Error::BadVersion) => Err(conflict()),
                    Err(e) => Err(zk_error("store /view", e)),
                },
            }
        })
    }

    fn publish_status(&self, status: &Status) -> Result<()> {
        let data = postcard::to_allocvec(status).map_err(|e| Error::Internal(e.to_string()))?;
        self.put("/status", &data)
    }

    fn load_status(&self) -> Result<Option<Status>> {
        Ok(self
            .get("/status")?
            .and_then(|d| postcard::from_bytes(&d).ok()))
    }

    fn publish_events(&self, events: &[Event]) -> Result<()> {
        // JSON: events are internally tagged, which postcard cannot write.
        let data = serde_json::to_vec(events).map_err(|e| Error::Internal(e.to_string()))?;
        self.put("/events", &data)
    }

    fn load_events(&self) -> Result<Vec<Event>> {
        Ok(self
            .get("/events")?
            .and_then(|d| serde_json::from_slice(&d).ok())
            .unwrap_or_default())
    }

    fn confirm(&self) -> Result<()> {
        self.block(async {
            tokio::time::timeout(
                Duration::from_millis(self.session_ms / 3),
                self.client.check_stat("/members"),
            )
            .await
            .map_err(|_| Error::Unavailable("zookeeper: no answer".into()))?
            .map(|_| ())
            .map_err(|e| zk_error("confirm the session", e))
        })
    }

    fn notices(&self) -> Receiver<Notice> {
        self.rx.clone()
    }

    fn session_ms(&self) -> u64 {
        self.session_ms
    }
}
