//! Coordination of node processes (issue #12): membership and view storage.
//!
//! In one process (the default) the view leader is a thread beside the
//! nodes and hands views over in memory. Node processes need a place that
//! outlives each of them: [`Membership`] is that place's interface, and
//! [`zk::ZkMembership`] its ZooKeeper implementation; [`LocalMembership`]
//! keeps the same contract in memory, for one process and for tests. The
//! node core does not see any of it: [`process`] runs a node thread and,
//! when elected, a leader thread, and feeds them what the membership
//! pushes.
//!
//! The contract:
//! - **members** register under their id, ephemerally: a member that dies
//!   disappears when its session ends;
//! - **election**: members campaign; exactly one holds the leader role at a
//!   time (the earliest live candidate), and is told so ([`Notice::Elected`]);
//!   the leader announces where its peer port is ([`LeaderRecord`]);
//! - **the view** is stored with a versioned write: [`Membership::store_view`]
//!   succeeds only against the version last read, so two processes that both
//!   believe they lead cannot both store an epoch; every change is pushed
//!   ([`Notice::View`]);
//! - **incarnations** of an id only grow across processes.

pub mod admin;
pub mod attach;
pub mod cli;
pub mod logs;
pub mod operator;
pub mod process;
pub mod zk;

use crate::cluster::leader::{Event, Status};
use crate::error::{Error, Result};
use crate::view::{Incarnation, NodeId, View};
use crossbeam_channel::{Receiver, Sender};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

/// The shape of a cluster, fixed when its first process starts.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Shape {
    /// Partitions.
    pub partitions: u32,
    /// Replicas per partition.
    pub replicas: usize,
    /// Members the first view waits for.
    pub expect: usize,
}

/// A registered member: where to reach one life of a node.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Member {
    /// Its id.
    pub id: NodeId,
    /// This life's incarnation.
    pub incarnation: Incarnation,
    /// Its client port.
    pub endpoint: String,
    /// Its process id, on its host.
    pub pid: u32,
    /// Its control port (`src/coord/admin.rs`); empty from a process
    /// without one.
    #[serde(default)]
    pub control: String,
}

/// Where the view leader listens, and in which session.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct LeaderRecord {
    /// The node process that holds the role.
    pub node: NodeId,
    /// Its election number: the session its messages carry.
    pub session: u64,
    /// Its peer port.
    pub peer_endpoint: String,
}

/// What the membership pushes.
#[derive(Clone, Debug)]
pub enum Notice {
    /// The stored view changed.
    View(Box<View>),
    /// The leader changed (`None`: nobody announced yet).
    Leader(Option<LeaderRecord>),
    /// This process now holds the leader role.
    Elected,
    /// The session ended (or is in doubt): this process can no longer
    /// count on its registration or its role.
    SessionLost(String),
}

/// The version of a stored view, for the versioned write.
pub type Version = i32;

/// Membership and view storage (see the module docs).
pub trait Membership: Send + Sync {
    /// The cluster's shape: the one stored, or `proposed` if none was.
    fn shape(&self, proposed: &Shape) -> Result<Shape>;
    /// A fresh incarnation for `id`, above every earlier one.
    fn next_incarnation(&self, id: NodeId) -> Result<Incarnation>;
    /// The lowest id no live member holds.
    fn free_id(&self) -> Result<NodeId>;
    /// Registers this process's member, ephemerally.
    fn register(&self, member: &Member) -> Result<()>;
    /// The members registered now.
    fn members(&self) -> Result<Vec<Member>>;
    /// Enters the election; returns this candidate's election number.
    /// [`Notice::Elected`] follows when it leads.
    fn campaign(&self) -> Result<u64>;
    /// Announces this process as the leader (call only once elected).
    fn announce(&self, leader: &LeaderRecord) -> Result<()>;
    /// The leader announced now, if any.
    fn leader(&self) -> Result<Option<LeaderRecord>>;
    /// The stored view and its version.
    fn load_view(&self) -> Result<Option<(View, Version)>>;
    /// Stores `view` if the stored version is still `expected` (`None`: no
    /// view stored yet); returns the new version, or `Error::Conflict`.
    fn store_view(&self, view: &View, expected: Option<Version>) -> Result<Version>;
    /// Publishes the leader's status for shells.
    fn publish_status(&self, status: &Status) -> Result<()>;
    /// The status the leader published last.
    fn load_status(&self) -> Result<Option<Status>>;
    /// Publishes the leader's latest events (a bounded tail), for
    /// attached shells.
    fn publish_events(&self, events: &[Event]) -> Result<()>;
    /// The events the leader published last.
    fn load_events(&self) -> Result<Vec<Event>>;
    /// One round trip to the service: `Ok` means the session was alive
    /// when the call was made.
    fn confirm(&self) -> Result<()>;
    /// The notices pushed to this process.
    fn notices(&self) -> Receiver<Notice>;
    /// The session timeout, ms.
    fn session_ms(&self) -> u64;
}

/// The error for a lost versioned write.
pub fn conflict() -> Error {
    Error::Unavailable("conflict: the stored view changed since it was read".into())
}

/// True for the error [`Membership::store_view`] gives on a lost write.
pub fn is_conflict(e: &Error) -> bool {
    e.to_string().contains("conflict: the stored view changed")
}

#[derive(Debug, Default)]
struct LocalState {
    shape: Option<Shape>,
    incarnations: BTreeMap<NodeId, Incarnation>,
    /// Members by id, with the handle that registered each.
    members: BTreeMap<NodeId, (Member, u64)>,
    /// Candidates: election number to handle.
    candidates: BTreeMap<u64, u64>,
    next_candidate: u64,
    leader: Option<LeaderRecord>,
    view: Option<(View, Version)>,
    status: Option<Status>,
    events: Vec<Event>,
    /// Every handle's notice channel.
    subscribers: BTreeMap<u64, Sender<Notice>>,
    next_handle: u64,
    elected: Option<u64>,
}

impl LocalState {
    fn broadcast(&self, n: Notice) {
        for tx in self.subscribers.values() {
            let _ = tx.send(n.clone());
        }
    }

    fn elect(&mut self) {
        let first = self.candidates.values().next().copied();
        if first != self.elected {
            self.elected = first;
            if let Some(h) = first {
                if let Some(tx) = self.subscribers.get(&h) {
                    let _ = tx.send(Notice::Elected);
                }
            }
        }
    }
}

/// The membership contract kept in memory: every handle made by
/// [`LocalMembership::join`] is one "process"; dropping a handle ends its
/// session, as a process's death does.
#[derive(Debug)]
pub struct LocalMembership {
    state: Arc<Mutex<LocalState>>,
    handle: u64,
    notices: Receiver<Notice>,
}

impl LocalMembership {
    /// A new, empty service, and a first handle on it.
    pub fn new() -> Self {
        Self::attach(Arc::new(Mutex::new(LocalState::default())))
    }

    fn attach(state: Arc<Mutex<LocalState>>) -> Self {
        let (tx, rx) = crossbeam_channel::unbounded();
        let handle = {
            let mut s = state.lock().unwrap_or_else(|e| e.into_inner());
            s.next_handle += 1;
            let h = s.next_handle;
            s.subscribers.insert(h, tx);
            h
        };
        LocalMembership {
            state,
            handle,
            notices: rx,
        }
    }

    /// Another handle on the same service: another process.
    pub fn join(&self) -> Self {
        Self::attach(self.state.clone())
    }

    fn with<T>(&self, f: impl FnOnce(&mut LocalState) -> T) -> T {
        f(&mut self.state.lock().unwrap_or_else(|e| e.into_inner()))
    }
}

impl Default for LocalMembership {
    fn default() -> Self {
        Self::new()
    }
}

impl Drop for LocalMembership {
    fn drop(&mut self) {
        let h = self.handle;
        self.with(|s| {
            s.subscribers.remove(&h);
            s.members.retain(|_, (_, owner)| *owner != h);
            s.candidates.retain(|_, owner| *owner != h);
            if s.elected == Some(h) {
                s.leader = None;
                s.broadcast(Notice::Leader(None));
            }
            s.elect();
        });
    }
}

impl Membership for LocalMembership {
    fn shape(&self, proposed: &Shape) -> Result<Shape> {
        Ok(self.with(|s| s.shape.get_or_insert_with(|| proposed.clone()).clone()))
    }

    fn next_incarnation(&self, id: NodeId) -> Result<Incarnation> {
        Ok(self.with(|s| {
            let i = s.incarnations.entry(id).or_insert(0);
            *i += 1;
            *i
        }))
    }

    fn free_id(&self) -> Result<NodeId> {
        Ok(self.with(|s| (1..).find(|i| !s.members.contains_key(i)).unwrap_or(1)))
    }

    fn register(&self, member: &Member) -> Result<()> {
        let h = self.handle;
        self.with(|s| {
            if s.members.get(&member.id).is_some_and(|(_, o)| *o != h) {
                return Err(Error::BadInput(format!(
                    "n{} is already registered by a live process",
                    member.id
                )));
            }
            s.members.insert(member.id, (member.clone(), h));
            Ok(())
        })
    }

    fn members(&self) -> Result<Vec<Member>> {
        Ok(self.with(|s| s.members.values().map(|(m, _)| m.clone()).collect()))
    }

    fn campaign(&self) -> Result<u64> {
        let h = self.handle;
        Ok(self.with(|s| {
            s.next_candidate += 1;
            let n = s.next_candidate;
            s.candidates.insert(n, h);
            s.elect();
            n
        }))
    }

    fn announce(&self, leader: &LeaderRecord) -> Result<()> {
        let h = self.handle;
        self.with(|s| {
            if s.elected != Some(h) {
                return Err(Error::Unavailable("not elected".into()));
            }
            s.leader = Some(leader.clone());
            s.broadcast(Notice::Leader(Some(leader.clone())));
            Ok(())
        })
    }

    fn leader(&self) -> Result<Option<LeaderRecord>> {
        Ok(self.with(|s| s.leader.clone()))
    }

    fn load_view(&self) -> Result<Option<(View, Version)>> {
        Ok(self.with(|s| s.view.clone()))
    }

    fn store_view(&self, view: &View, expected: Option<Version>) -> Result<Version> {
        self.with(|s| {
            let current = s.view.as_ref().map(|(_, v)| *v);
            if current != expected {
                return Err(conflict());
            }
            let version = current.map_or(0, |v| v + 1);
            s.view = Some((view.clone(), version));
            s.broadcast(Notice::View(Box::new(view.clone())));
            Ok(version)
        })
    }

    fn publish_status(&self, status: &Status) -> Result<()> {
        self.with(|s| s.status = Some(status.clone()));
        Ok(())
    }

    fn load_status(&self) -> Result<Option<Status>> {
        Ok(self.with(|s| s.status.clone()))
    }

    fn publish_events(&self, events: &[Event]) -> Result<()> {
        self.with(|s| s.events = events.to_vec());
        Ok(())
    }

    fn load_events(&self) -> Result<Vec<Event>> {
        Ok(self.with(|s| s.events.clone()))
    }

    fn confirm(&self) -> Result<()> {
        Ok(())
    }

    fn notices(&self) -> Receiver<Notice> {
        self.notices.clone()
    }

    fn session_ms(&self) -> u64 {
        u64::MAX / 4
    }
}

/// A coordination address: `zk://HOST:PORT[,HOST:PORT...]/PATH`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CoordUrl {
    /// The ZooKeeper servers, `host:port,host:port`.
    pub servers: String,
    /// The cluster's root znode, e.g. `/kvsh/demo`.
    pub root: String,
}

impl std::str::FromStr for CoordUrl {
    type Err = Error;

    fn from_str(s: &str) -> Result<Self> {
        let bad = || {
            Error::BadInput(format!(
                "bad coordination address {s:?}: expected zk://HOST:PORT/PATH"
            ))
        };
        let rest = s.strip_prefix("zk://").ok_or_else(bad)?;
        let (servers, path) = rest.split_once('/').ok_or_else(bad)?;
        let path = path.trim_end_matches('/');
        if servers.is_empty() || path.is_empty() || path.split('/').any(str::is_empty) {
            return Err(bad());
        }
        Ok(CoordUrl {
            servers: servers.to_string(),
            root: format!("/{path}"),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn coordination_addresses_parse() {
        let u: CoordUrl = "zk://127.0.0.1:2181/kvsh/demo".parse().unwrap();
        assert_eq!(u.servers, "127.0.0.1:2181");
        assert_eq!(u.root, "/kvsh/demo");
        for bad in [
            "zk://h:1",
            "http://h:1/x",
            "zk:///x",
            "zk://h:1/a//b",
            "zk://h:1/",
        ] {
            assert!(bad.parse::<CoordUrl>().is_err(), "{bad}");
        }
    }

    /// The contract, on any implementation: `a` and `b` are two processes.
    pub fn contract(a: &dyn Membership, b: &dyn Membership) {
        let shape = Shape {
            partitions: 8,
            replicas: 2,
            expect: 2,
        };
        assert_eq!(a.shape(&shape).unwrap(), shape);
        let other = Shape {
            partitions: 9,
            ..shape.clone()
        };
        assert_eq!(b.shape(&other).unwrap(), shape, "the first shape stays");
        let i1 = a.next_incarnation(3).unwrap();
        let i2 = b.next_incarnation(3).unwrap();
        assert!(i2 > i1, "incarnations grow across processes");
        // Versioned writes: a write against a stale version loses.
        assert!(a.load_view().unwrap().is_none());
        let mut view = View {
            epoch: 1,
            ..View::default()
        };
        let v1 = a.store_view(&view, None).unwrap();
        assert!(b.store_view(&view, None).is_err_and(|e| is_conflict(&e)));
        view.epoch = 2;
        let v2 = b.store_view(&view, Some(v1)).unwrap();
        view.epoch = 3;
        let lost = a.store_view(&view, Some(v1));
        assert!(
            lost.is_err_and(|e| is_conflict(&e)),
            "two leaders cannot both store"
        );
        let (stored, version) = a.load_view().unwrap().unwrap();
        assert_eq!((stored.epoch, version), (2, v2));
        // Views are pushed.
        let seen = b
            .notices()
            .iter()
            .find_map(|n| match n {
                Notice::View(v) if v.epoch == 2 => Some(v.epoch),
                _ => None,
            })
            .unwrap();
        assert_eq!(seen, 2);
        // Election: the first candidate leads.
        let na = a.campaign().unwrap();
        let nb = b.campaign().unwrap();
        assert!(nb > na);
        let elected = a.notices().iter().find(|n| matches!(n, Notice::Elected));
        assert!(elected.is_some());
        assert!(
            b.announce(&LeaderRecord {
                node: 2,
                session: nb,
                peer_endpoint: "x".into()
            })
            .is_err()
                || b.notices().try_iter().any(|n| matches!(n, Notice::Elected))
        );
    }

    #[test]
    fn the_in_memory_membership_keeps_the_contract() {
        let a = LocalMembership::new();
        let b = a.join();
        contract(&a, &b);
        // The leader's death elects the next candidate.
        let member = Member {
            id: 1,
            incarnation: 1,
            endpoint: "e".into(),
            pid: 1,
            control: String::new(),
        };
        a.register(&member).unwrap();
        assert!(b.register(&member).is_err(), "one live process per id");
        drop(a);
        assert!(b.notices().iter().any(|n| matches!(n, Notice::Elected)));
        assert!(
            b.members().unwrap().is_empty(),
            "registrations are ephemeral"
        );
    }
}
