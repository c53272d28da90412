//! The operator's side of the view leader: the shell's commands (remove a
//! node, switch placement, turn auto-rebalance on or off, rebalance,
//! repair), which publish what they change at once rather than on the next
//! tick, and the [`Status`] snapshot the leader thread publishes for the
//! shell to read and wait on (docs/architecture.md, section 5).

use super::{EventKind, Status, ViewLeader};
use crate::cluster::status::{in_sync_live, is_live};
use crate::error::{Error, Result};
use crate::view::placement::Placement;
use crate::view::{node_name, NodeId, NodeState, PartitionId};

impl ViewLeader {
    /// Removes a node. A live node is decommissioned: it is marked leaving,
    /// its partitions move away, and it leaves the view once it holds
    /// nothing. A dead node is removed at once (nodetool's `removenode`):
    /// it leaves every replica set and the view, and re-replication copies
    /// what it held from the other replicas.
    ///
    /// Without `force`, it refuses what would leave partitions with fewer
    /// copies than asked for: decommissioning when fewer than R live nodes
    /// would remain, and removing a dead node that holds the only in-sync
    /// copy of a partition (that partition starts again empty).
    pub fn decommission(&mut self, node: NodeId, force: bool) -> Result<()> {
        let Some(info) = self.view.nodes.get(&node) else {
            return Err(Error::UnknownNode(format!(
                "{} is not in the view",
                node_name(node)
            )));
        };
        let name = node_name(node);
        match info.state {
            NodeState::Leaving => return Ok(()),
            NodeState::Dead => return self.remove_dead(node, force),
            NodeState::Up => {}
        }
        let others = self.live_nodes().len() - 1;
        if others == 0 {
            return Err(Error::BadInput(format!(
                "cannot remove {name}: it is the last live node"
            )));
        }
        if others < self.cfg.replicas && !force {
            return Err(Error::BadInput(format!(
                "removing {name} would leave {} for {} per partition, \
                 so every partition would be degraded; `remove {name} --force` removes it anyway",
                crate::units::count(others, "live node"),
                crate::units::count(self.cfg.replicas, "replica")
            )));
        }
        // With fewer nodes than replicas, each partition keeps one replica
        // per node: the operator asked for a smaller cluster.
        self.stage();
        if let Some(n) = self.view.nodes.get_mut(&node) {
            n.state = NodeState::Leaving;
        }
        self.decommissioned.insert(node);
        // While a node is leaving, every partition moves towards the target,
        // and the node can leave while steps it started elsewhere are half
        // done (a replica added, the surplus not yet removed). Counting the
        // decommission as a requested rebalance keeps the leader going until
        // every partition is at its target, even with auto-rebalance off;
        // otherwise those partitions would keep a surplus replica until the
        // next `rebalance`, and `remove` could not wait for an end state.
        self.rebalance_requested = true;
        self.was_balanced = false;
        self.plan_step();
        self.publish();
        Ok(())
    }

    /// Removes a dead node from the view. A partition it still leads had no
    /// in-sync replica to take over when it died; unless `force`, that
    /// refuses the removal, since the node, if it was only paused, has the
    /// only copy. With `force`, such a partition starts again empty.
    fn remove_dead(&mut self, node: NodeId, force: bool) -> Result<()> {
        let only: Vec<String> = self
            .view
            .partitions
            .iter()
            .enumerate()
            .filter(|(_, p)| p.primary() == Some(node))
            .map(|(p, _)| p.to_string())
            .collect();
        let name = node_name(node);
        if !only.is_empty() && !force {
            let mut list = only.iter().take(8).cloned().collect::<Vec<_>>().join(", ");
            if only.len() > 8 {
                list.push_str(", ...");
            }
            return Err(Error::BadInput(format!(
                "{name} is dead and holds the only in-sync copy of {} ({list}); \
                 restart it, or wake it, to keep them, or `remove {name} --force` to remove it \
                 anyway and start them again empty",
                crate::units::count(only.len(), "partition")
            )));
        }
        self.stage();
        for p in self.view.partitions.iter_mut() {
            if p.primary() == Some(node) {
                // Every copy goes: `plan_step` starts it again, empty, in a
                // new term (`DataLost`). A filling replica holds only part
                // of the data, so it cannot carry on as primary.
                p.replicas.clear();
            } else {
                p.replicas.retain(|r| r.node != node);
            }
        }
        self.filling_since.retain(|(_, n), _| *n != node);
        self.depart(node);
        self.event(EventKind::Removed { node });
        self.plan_step();
        self.publish();
        Ok(())
    }

    /// Switches placement strategy and rebalances to it.
    pub fn set_placement(&mut self, placement: Placement) {
        self.cfg.placement = placement;
        self.rebalance_requested = true;
        self.was_balanced = false;
        self.plan_step();
        self.publish();
    }

    /// Turns automatic rebalancing on or off.
    pub fn set_auto_rebalance(&mut self, on: bool) {
        self.cfg.auto_rebalance = on;
        self.plan_step();
        self.publish();
    }

    /// Starts a rebalance to the current target.
    pub fn rebalance(&mut self) {
        self.rebalance_requested = true;
        self.was_balanced = false;
        self.plan_step();
        self.publish();
    }

    /// Gives every secondary of a partition (or of all) a new stream
    /// identity, so its primary starts a fresh stream with a full resync;
    /// the replica counts as filling until it is done. This is `repair`.
    pub fn resync(&mut self, partition: Option<PartitionId>) {
        let epoch = self.stage();
        for (p, info) in self.view.partitions.iter_mut().enumerate() {
            if partition.is_some_and(|only| only as usize != p) {
                continue;
            }
            for r in info.replicas.iter_mut().skip(1) {
                r.since = epoch;
                r.in_sync = false;
                self.filling_since
                    .insert((p as PartitionId, r.node), self.now);
            }
        }
        self.was_balanced = false;
        self.publish();
    }

    /// A snapshot for the shell.
    pub fn status(&mut self) -> Status {
        self.fresh_stats = false;
        let target = if self.view.epoch > 0 {
            self.target()
        } else {
            Vec::new()
        };
        let no_lease: Vec<NodeId> = self
            .members
            .iter()
            .filter(|(id, m)| m.lease.lost && is_live(&self.view, **id))
            .map(|(id, _)| *id)
            .collect();
        // Degraded is measured against R, whatever the reason; repairable
        // against what the live nodes can hold, which is what the leader
        // can still do something about.
        let goal = self.cfg.replicas;
        let reachable = goal.min(self.live_nodes().len().max(1));
        let mut degraded = 0;
        let mut repairable = 0;
        let mut unavailable = 0;
        for info in &self.view.partitions {
            let serving = info
                .primary()
                .is_some_and(|p| is_live(&self.view, p) && !no_lease.contains(&p));
            if !serving {
                unavailable += 1;
                continue;
            }
            let in_sync = in_sync_live(&self.view, info);
            degraded += usize::from(in_sync < goal);
            repairable += usize::from(in_sync < reachable);
        }
        let moving = if target.is_empty() {
            0
        } else {
            self.moving(&target)
        };
        let leaving = !self.decommissioned.is_empty();
        let settled =
            self.view.epoch > 0 && repairable == 0 && moving == 0 && unavailable == 0 && !leaving;
        Status {
            view: self.view.clone(),
            members: self.members.clone(),
            partition_keys: self.partition_keys.clone(),
            target,
            degraded,
            repairable,
            moving,
            unavailable,
            healthy: settled && degraded == 0 && no_lease.is_empty() && !self.unreachable_peers(),
            settled,
            no_lease,
            auto_rebalance: self.cfg.auto_rebalance,
            strategy: Some(self.cfg.placement.strategy),
            vnodes: Some(self.cfg.placement.vnodes),
            now: self.now,
        }
    }

    /// True if a live node reports a peer it cannot send to (a socket that
    /// could not be opened, or a pipe gone): the cluster is not healthy.
    fn unreachable_peers(&self) -> bool {
        self.members.iter().any(|(n, m)| {
            !m.stats.unreachable.is_empty()
                && self
                    .view
                    .nodes
                    .get(n)
                    .is_some_and(|i| i.incarnation == m.incarnation && i.state != NodeState::Dead)
        })
    }
}
