//! Starting a durable cluster again from its data directory
//! (docs/architecture.md, "Durable nodes"): the first view continues the
//! last one the previous run published, rather than placing every
//! partition afresh on empty nodes.

use super::ViewLeader;
use crate::cluster::event::EventKind;
use crate::view::{PartitionInfo, Replica, View};

impl ViewLeader {
    /// A leader whose first view continues `saved`, the last view an
    /// earlier run of this cluster published (it was on disk before any
    /// node saw it). The nodes to wait for are the configuration's
    /// `bootstrap`: the shell starts every node `saved` names.
    pub fn restoring(mut self, saved: View) -> Self {
        self.restore = Some(saved);
        self
    }

    /// The first view of a restored cluster, once every node is here:
    ///
    /// - its epoch follows the saved one, so epochs never repeat;
    /// - every partition keeps its replica set, primary first, and each
    ///   replica whether it was in sync: an in-sync replica had every
    ///   acknowledged write on disk before acknowledging it (§ "What each
    ///   --fsync promises"), so its primary, which was in sync, holds them
    ///   all, exactly as after a failover;
    /// - every partition's term rises by one, as after a failover: new
    ///   streams, a resync (a digest catch-up, which copies only what
    ///   differs) of every secondary before the primary serves a read, and
    ///   lock tokens (`term << 32`) that keep growing.
    pub(super) fn bootstrap_restored(&mut self, saved: View) {
        self.view.epoch = saved.epoch;
        let epoch = self.stage();
        let nodes = self.admit_bootstrap_nodes();
        self.view.partitions = saved
            .partitions
            .into_iter()
            .map(|info| PartitionInfo {
                term: info.term + 1,
                term_epoch: epoch,
                replicas: info
                    .replicas
                    .into_iter()
                    .filter(|r| nodes.contains(&r.node))
                    .map(|r| Replica {
                        node: r.node,
                        in_sync: r.in_sync,
                        since: epoch,
                    })
                    .collect(),
            })
            .collect();
        self.event(EventKind::Bootstrapped { nodes: nodes.len() });
    }
}
