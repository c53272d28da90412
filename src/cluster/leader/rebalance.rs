//! Rebalancing: the placement target for the live nodes, and the safe
//! steps that move each partition's replica set towards it (add a replica,
//! wait until it is in sync, hand the primary role over, remove the
//! surplus), one view at a time; and the plan a rebalance would carry out,
//! for `rebalance --dry-run`.

use super::{Plan, ViewLeader};
use crate::cluster::event::EventKind;
use crate::view::{NodeId, NodeState, PartitionId, Replica, View};
use std::collections::BTreeMap;

impl ViewLeader {
    pub(super) fn live_nodes(&self) -> Vec<NodeId> {
        self.view
            .nodes
            .iter()
            .filter(|(_, n)| n.state == NodeState::Up)
            .map(|(id, _)| *id)
            .collect()
    }

    /// The placement target for the live nodes.
    pub(super) fn target(&mut self) -> Vec<Vec<NodeId>> {
        let live = self.live_nodes();
        if let Some((nodes, placement, target)) = &self.target_cache {
            if *nodes == live && *placement == self.cfg.placement {
                return target.clone();
            }
        }
        let target = self
            .cfg
            .placement
            .assign(&live, self.cfg.partitions, self.cfg.replicas);
        self.target_cache = Some((live, self.cfg.placement, target.clone()));
        target
    }

    pub(super) fn rebalancing(&self) -> bool {
        self.cfg.auto_rebalance || self.rebalance_requested || !self.decommissioned.is_empty()
    }

    /// Takes a node out of the view for good; its late heartbeats are
    /// ignored from now on.
    pub(super) fn depart(&mut self, node: NodeId) {
        if let Some(info) = self.view.nodes.remove(&node) {
            self.departed.insert(node, info.incarnation);
        }
        self.members.remove(&node);
        self.decommissioned.remove(&node);
    }

    // Indexing by partition keeps the view, the target and the key counts
    // in step; the loop body also mutates the view.
    #[allow(clippy::needless_range_loop)]
    /// Takes every rebalancing step that is safe now. Each step keeps the
    /// number of in-sync replicas of a partition from falling.
    pub(super) fn plan_step(&mut self) {
        if self.view.epoch == 0 && !self.staged {
            return;
        }
        let live = self.live_nodes();
        if live.is_empty() {
            return;
        }
        let target = self.target();
        let rebalancing = self.rebalancing();
        let goal = self.cfg.replicas.min(live.len());
        let is_live = |view: &View, n: NodeId| {
            view.nodes
                .get(&n)
                .is_some_and(|i| i.state != NodeState::Dead)
        };
        for p in 0..self.view.partitions.len() {
            let pid = p as PartitionId;
            let t = &target[p];
            let info = self.view.partitions[p].clone();
            // Every copy lost: start again, empty, at the target.
            if info.replicas.is_empty() {
                let epoch = self.stage();
                let info = &mut self.view.partitions[p];
                info.term += 1;
                info.term_epoch = epoch;
                info.replicas = t
                    .iter()
                    .map(|&node| Replica {
                        node,
                        in_sync: true,
                        since: epoch,
                    })
                    .collect();
                self.event(EventKind::DataLost { partition: pid });
                continue;
            }
            let primary = info.replicas[0].node;
            if !is_live(&self.view, primary) {
                // A dead primary with no in-sync secondary: wait for it.
                continue;
            }
            // 1. Add replicas: towards the target, or just back up to the goal.
            let mut additions = Vec::new();
            if rebalancing {
                additions.extend(t.iter().copied().filter(|n| !info.holds(*n)));
            } else {
                let have = info.replicas.len();
                let mut candidates: Vec<NodeId> =
                    t.iter().copied().filter(|n| !info.holds(*n)).collect();
                let mut others: Vec<NodeId> = live
                    .iter()
                    .copied()
                    .filter(|n| !info.holds(*n) && !candidates.contains(n))
                    .collect();
                others.sort_by_key(|n| self.view.roles_of(*n).0 + self.view.roles_of(*n).1);
                candidates.extend(others);
                additions.extend(candidates.into_iter().take(goal.saturating_sub(have)));
            }
            for node in additions {
                let epoch = self.stage();
                self.view.partitions[p].replicas.push(Replica {
                    node,
                    in_sync: false,
                    since: epoch,
                });
                self.filling_since.insert((pid, node), self.now);
                let reason = if info.replicas.len() < goal {
                    "re-replication"
                } else {
                    "rebalance"
                };
                self.event(EventKind::ReplicaAdded {
                    partition: pid,
                    node,
                    reason: reason.into(),
                });
            }
            if !rebalancing {
                continue;
            }
            let info = self.view.partitions[p].clone();
            let target_in_sync = t
                .iter()
                .all(|n| info.replica(*n).is_some_and(|r| r.in_sync));
            // 2. Hand the primary role to the target primary once it is in
            //    sync, and if it holds a lease: one that cannot would only
            //    make the partition unavailable.
            if let Some(&want) = t.first() {
                if want != primary
                    && info.replica(want).is_some_and(|r| r.in_sync)
                    && target_in_sync
                    && !self.members.get(&want).is_some_and(|m| m.lease.lost)
                {
                    let epoch = self.stage();
                    let info = &mut self.view.partitions[p];
                    let i = info
                        .replicas
                        .iter()
                        .position(|r| r.node == want)
                        .expect("target is a replica");
                    let r = info.replicas.remove(i);
                    info.replicas.insert(0, r);
                    info.term += 1;
                    info.term_epoch = epoch;
                    self.event(EventKind::Handoff {
                        partition: pid,
                        from: primary,
                        to: want,
                    });
                    continue;
                }
            }
            // 3. Remove the surplus, once the target is in sync and the
            //    surplus replica has seen the view of the current term (so an
            //    old primary knows it is no longer one).
            if target_in_sync && t.first() == Some(&primary) {
                let term_epoch = info.term_epoch;
                let surplus: Vec<NodeId> = info
                    .replicas
                    .iter()
                    .skip(1)
                    .map(|r| r.node)
                    .filter(|n| !t.contains(n))
                    .filter(|n| {
                        self.members
                            .get(n)
                            .is_some_and(|m| m.reported_epoch >= term_epoch)
                    })
                    .collect();
                for node in surplus {
                    self.stage();
                    self.view.partitions[p].replicas.retain(|r| r.node != node);
                    self.filling_since.remove(&(pid, node));
                    self.event(EventKind::ReplicaRemoved {
                        partition: pid,
                        node,
                    });
                }
            }
        }
        // Decommissioned nodes that hold nothing leave, dead or alive: a
        // node that died while leaving has no copy left to move once its
        // partitions failed over.
        let leaving: Vec<NodeId> = self
            .decommissioned
            .iter()
            .copied()
            .filter(|id| !self.view.partitions.iter().any(|p| p.holds(*id)))
            .collect();
        for node in leaving {
            self.stage();
            self.depart(node);
            self.event(EventKind::Left { node });
        }
        let balanced = self.moving(&target) == 0;
        if balanced && !self.was_balanced {
            if self.rebalance_requested || self.cfg.auto_rebalance {
                self.event(EventKind::Balanced);
            }
            self.rebalance_requested = false;
        }
        self.was_balanced = balanced;
    }

    /// Partitions that are filling a replica, or away from their target
    /// while rebalancing.
    pub(super) fn moving(&self, target: &[Vec<NodeId>]) -> usize {
        let rebalancing = self.rebalancing();
        self.view
            .partitions
            .iter()
            .zip(target)
            .filter(|(info, t)| {
                // The primary must match the target's, but the secondaries
                // only as a set: no step reorders them, so comparing their
                // order would leave a partition moving forever.
                info.replicas.iter().any(|r| !r.in_sync)
                    || (rebalancing
                        && (info.replicas.len() != t.len()
                            || info.primary() != t.first().copied()
                            || t.iter().any(|n| !info.holds(*n))))
            })
            .count()
    }

    /// What a rebalance to the current target would do.
    pub fn plan(&mut self) -> Plan {
        let target = self.target();
        let mut plan = Plan::default();
        let current: Vec<Vec<NodeId>> = self
            .view
            .partitions
            .iter()
            .map(|i| i.replicas.iter().map(|r| r.node).collect())
            .collect();
        for (p, (cur, t)) in current.iter().zip(&target).enumerate() {
            let adds = t.iter().filter(|n| !cur.contains(n)).count();
            let handoff = cur.first() != t.first();
            if adds > 0 || handoff || cur.len() != t.len() {
                plan.partitions += 1;
            }
            plan.replica_moves += adds;
            plan.keys += adds as u64 * self.partition_keys.get(p).copied().unwrap_or(0);
            plan.handoffs += handoff as usize;
        }
        let live = self.live_nodes();
        plan.skew_before = skew(&current, &live);
        plan.skew_after = skew(&target, &live);
        // The least any placement must move: replicas above the fair share
        // on live nodes, every replica on a node that is leaving or dead,
        // and every missing replica.
        let total: usize = target.iter().map(|t| t.len()).sum();
        let fair = if live.is_empty() {
            0
        } else {
            total.div_ceil(live.len())
        };
        let mut counts: BTreeMap<NodeId, usize> = BTreeMap::new();
        for cur in &current {
            for n in cur {
                *counts.entry(*n).or_default() += 1;
            }
        }
        let excess: usize = counts
            .iter()
            .map(|(n, c)| {
                if live.contains(n) {
                    c.saturating_sub(fair)
                } else {
                    *c
                }
            })
            .sum();
        let missing: usize = current
            .iter()
            .zip(&target)
            .map(|(c, t)| t.len().saturating_sub(c.len()))
            .sum();
        plan.minimum_moves = excess + missing;
        plan
    }
}

/// The most-loaded live node's replica count over the mean.
fn skew(assign: &[Vec<NodeId>], live: &[NodeId]) -> f64 {
    if live.is_empty() {
        return 0.0;
    }
    let mut counts: BTreeMap<NodeId, usize> = live.iter().map(|n| (*n, 0)).collect();
    let mut total = 0;
    for set in assign {
        for n in set {
            if let Some(c) = counts.get_mut(n) {
                *c += 1;
                total += 1;
            }
        }
    }
    let mean = total as f64 / live.len() as f64;
    if mean == 0.0 {
        return 0.0;
    }
    *counts.values().max().unwrap_or(&0) as f64 / mean
}
