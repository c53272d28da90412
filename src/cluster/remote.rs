//! [`RemoteNodes`]: what a [`crate::cluster::Cluster`] handle does through
//! when its nodes are not threads of this process but processes of their
//! own (issue #12: `kvsh --coord zk://…`, implemented in
//! `src/coord/attach.rs`).
//!
//! The handle keeps everything that works the same either way: the
//! leader's [`crate::cluster::leader::Status`] in a watch (fed here from
//! the coordination service instead of by a leader thread), the event
//! log, the client, the waits. Only what touches a node or the leader
//! directly goes through this trait: which nodes exist and where, the
//! operator's faults (signals to the processes this shell started), and
//! the leader's operator commands. Each has a default that says plainly,
//! in one line, that an attached shell cannot do it, so an implementation
//! adds verbs one at a time and a command never half-works.

use crate::cluster::handle::Process;
use crate::cluster::leader::Plan;
use crate::error::{Error, Result};
use crate::node::runtime::PartitionDigest;
use crate::view::placement::Placement;
use crate::view::{Epoch, NodeId, PartitionId, Time};
use std::collections::BTreeMap;
use std::time::Duration;

/// The error for a verb an attached shell cannot carry out.
pub fn not_attached(what: &str, why: &str) -> Error {
    Error::BadInput(format!(
        "{what} is not available in a shell attached with --coord: {why}"
    ))
}

const LEADER_ELSEWHERE: &str =
    "the view leader runs in a node process, and takes operator commands only from its own process";

/// The nodes of a cluster whose nodes run in other processes.
pub trait RemoteNodes: Send + Sync {
    /// Node ids the operator knows (in the view, registered, or started
    /// here), in order.
    fn node_ids(&self) -> Vec<NodeId>;
    /// A node's client endpoint, if known.
    fn endpoint(&self, id: NodeId) -> Option<String>;
    /// Where event times count from, on the cluster clock: attached, the
    /// host's monotonic clock reads as time since boot, so the shell shows
    /// event times from its own start instead.
    fn time_origin(&self) -> Time {
        0
    }
    /// A node's process state: `None` if unknown.
    fn process(&self, id: NodeId) -> Option<Process>;
    /// Starts `count` node processes and waits until the view has them.
    fn add(&mut self, _count: usize) -> Result<Vec<NodeId>> {
        Err(not_attached("add", "no node binary to start"))
    }
    /// Crashes a node's process.
    fn kill(&mut self, id: NodeId) -> Result<()>;
    /// Freezes a node's process for `d` (extends a pause in force).
    fn pause(&mut self, id: NodeId, d: Duration) -> Result<()>;
    /// Ends a pause now.
    fn resume(&mut self, id: NodeId) -> Result<()>;
    /// Starts a new process with a killed node's id.
    fn restart(&mut self, id: NodeId) -> Result<()>;
    /// A node's partition digests (`verify`).
    fn digests(
        &self,
        _id: NodeId,
        _timeout: Duration,
    ) -> Result<BTreeMap<PartitionId, PartitionDigest>> {
        Err(not_attached(
            "verify",
            "the nodes' digests are asked over their control channels, which only their own process holds",
        ))
    }
    /// A node's copy of one partition.
    fn dump(
        &self,
        _id: NodeId,
        _p: PartitionId,
        _timeout: Duration,
    ) -> Result<Vec<(String, String)>> {
        Err(not_attached(
            "reading a replica",
            "only a node's own process can read its copy",
        ))
    }
    /// Applies the network faults in force to every node's transport.
    fn apply_faults(&self, _faults: &crate::node::faults::Faults) -> Result<()> {
        Err(not_attached(
            "partition, link and heal",
            "the faults live in each node process's transport",
        ))
    }
    /// Decommissions a node (`remove`).
    fn decommission(&mut self, _id: NodeId, _force: bool) -> Result<Epoch> {
        Err(not_attached("remove", LEADER_ELSEWHERE))
    }
    /// A removed node has left the view: wait until its process is gone
    /// too (it exits once a stored view no longer lists it), and forget it.
    fn forget(&mut self, _id: NodeId) -> Result<()> {
        Ok(())
    }
    /// Starts a rebalance.
    fn rebalance(&self) -> Result<()> {
        Err(not_attached("rebalance", LEADER_ELSEWHERE))
    }
    /// Resyncs secondaries (`repair`).
    fn resync(&self, _p: Option<PartitionId>) -> Result<()> {
        Err(not_attached("repair", LEADER_ELSEWHERE))
    }
    /// What a rebalance would do.
    fn plan(&self) -> Result<Plan> {
        Err(not_attached("rebalance --dry-run", LEADER_ELSEWHERE))
    }
    /// Switches placement.
    fn set_placement(&mut self, _p: Placement) -> Result<()> {
        Err(not_attached("placement", LEADER_ELSEWHERE))
    }
    /// Turns automatic rebalancing on or off.
    fn set_auto_rebalance(&mut self, _on: bool) -> Result<()> {
        Err(not_attached("set auto-rebalance", LEADER_ELSEWHERE))
    }
    /// Stops what this shell started (its node processes, its threads).
    fn shutdown(&mut self);
}
