//! The [`Cluster`] handle's reads of node data: partition digests, key
//! counts, dumps, and `verify`'s search for in-sync replicas whose data
//! differs from their primary's. Each asks a node over its control channel
//! (or, attached, its control port) with a timeout, so a paused node
//! answers with an error rather than blocking the shell.

use super::Cluster;
use crate::error::{Error, Result};
use crate::node::runtime::{Control, PartitionDigest};
use crate::view::{node_name, NodeId, PartitionId};
use std::collections::BTreeMap;
use std::time::{Duration, Instant};

impl Cluster {
    /// A running node's partition digests.
    pub fn digests(
        &self,
        id: NodeId,
        timeout: Duration,
    ) -> Result<BTreeMap<PartitionId, PartitionDigest>> {
        if let Some(r) = &self.remote {
            return r.digests(id, timeout);
        }
        let (tx, rx) = crossbeam_channel::bounded(1);
        self.running(id)?
            .control
            .send(Control::Digests(tx))
            .map_err(|_| Error::Internal("node thread gone".into()))?;
        rx.recv_timeout(timeout)
            .map_err(|e| no_answer(id, timeout, e))
    }

    /// Keys per partition on every running node that answers within
    /// `timeout` (a paused node does not). Attached, none: the shell then
    /// shows the counts the nodes' heartbeats carry.
    pub fn key_counts(&self, timeout: Duration) -> BTreeMap<NodeId, BTreeMap<PartitionId, usize>> {
        let mut pending = Vec::new();
        for (id, h) in &self.nodes {
            if let Some(t) = &h.thread {
                let (tx, rx) = crossbeam_channel::bounded(1);
                if t.control.send(Control::Stats(tx)).is_ok() {
                    pending.push((*id, rx));
                }
            }
        }
        let deadline = Instant::now() + timeout;
        pending
            .into_iter()
            .filter_map(|(id, rx)| rx.recv_deadline(deadline).ok().map(|c| (id, c)))
            .collect()
    }

    /// Partitions whose in-sync secondaries hold different data from their
    /// primary, compared by digest (`verify`). Writes in flight make replicas
    /// differ for a moment, so a partition is reported only if it still
    /// differs after a few looks.
    pub fn divergent(&self) -> Result<BTreeMap<PartitionId, Vec<NodeId>>> {
        let mut bad = self.divergent_once()?;
        for _ in 0..5 {
            if bad.is_empty() {
                break;
            }
            std::thread::sleep(Duration::from_millis(50));
            let again = self.divergent_once()?;
            bad.retain(|p, _| again.contains_key(p));
        }
        Ok(bad)
    }

    /// Partitions whose in-sync secondaries' digests differ from the
    /// primary's, in one pass.
    fn divergent_once(&self) -> Result<BTreeMap<PartitionId, Vec<NodeId>>> {
        let status = self.status();
        let mut digests: BTreeMap<NodeId, BTreeMap<PartitionId, PartitionDigest>> = BTreeMap::new();
        for id in status.view.nodes.keys() {
            match self.digests(*id, Duration::from_secs(2)) {
                Ok(d) => {
                    digests.insert(*id, d);
                }
                // Attached and not asked (no secret), or no answer from a
                // live process's control port (a wrong secret gets none):
                // say so, rather than report that nothing differs.
                Err(e @ (Error::BadInput(_) | Error::Timeout(_))) if self.remote.is_some() => {
                    return Err(e)
                }
                Err(_) => {}
            }
        }
        let empty = PartitionDigest {
            keys: 0,
            digest: crate::node::store::Store::new().digest(0),
        };
        let mut bad = BTreeMap::new();
        for (p, info) in status.view.partitions.iter().enumerate() {
            let p = p as PartitionId;
            let Some(primary) = info.primary() else {
                continue;
            };
            let Some(pd) = digests.get(&primary).map(|d| d.get(&p).unwrap_or(&empty)) else {
                continue;
            };
            for r in info.secondaries().filter(|r| r.in_sync) {
                if let Some(d) = digests.get(&r.node) {
                    if d.get(&p).unwrap_or(&empty) != pd {
                        bad.entry(p).or_insert_with(Vec::new).push(r.node);
                    }
                }
            }
        }
        Ok(bad)
    }

    /// A running node's copy of a partition.
    pub fn dump(
        &self,
        id: NodeId,
        p: PartitionId,
        timeout: Duration,
    ) -> Result<Vec<(String, String)>> {
        if let Some(r) = &self.remote {
            return r.dump(id, p, timeout);
        }
        let (tx, rx) = crossbeam_channel::bounded(1);
        self.running(id)?
            .control
            .send(Control::Dump(p, tx))
            .map_err(|_| Error::Internal("node thread gone".into()))?;
        rx.recv_timeout(timeout)
            .map_err(|e| no_answer(id, timeout, e))
    }
}

/// Why a node's thread did not answer a control request: it stopped (the
/// request was dropped with it), or it did not get to the request in time
/// (paused, or starved of CPU).
fn no_answer(id: NodeId, timeout: Duration, e: crossbeam_channel::RecvTimeoutError) -> Error {
    match e {
        crossbeam_channel::RecvTimeoutError::Disconnected => Error::Internal(format!(
            "{}'s thread stopped before it answered",
            node_name(id)
        )),
        crossbeam_channel::RecvTimeoutError::Timeout => Error::Timeout(format!(
            "{} did not answer within {:.1} s (paused?)",
            node_name(id),
            timeout.as_secs_f64()
        )),
    }
}
