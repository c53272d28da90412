//! The fault schedule: at random gaps it draws a fault, checks it against
//! the survival budget, injects it, and schedules its end.
//!
//! Faults: crash a node (its memory is lost; it restarts later, empty, as a
//! new incarnation), pause a node or the leader (a frozen thread: inputs
//! wait and are handled when it resumes), isolate a node, split the cluster
//! in two, cut one link one way, slow a node's link to the leader (up to
//! four leases) or cut its acknowledgements, lose many messages for a
//! while, delay them a lot (which reorders them), or replace a node:
//! decommission it, start a new one, and stop the old one once it has left.
//!
//! In [`FaultMode::Tolerated`] the budget keeps the cluster inside what it
//! promises to survive. At most `replicas - 1` nodes are down at once, where
//! down means crashed, paused, cut off from the leader either way, on a slow
//! link to it, without a lease, or not heard from by it for two heartbeat
//! intervals: the nodes the leader may be about to declare dead or fail
//! over. A decommission counts as taking its node down, since the
//! node's copies go away once the others hold them. And a node is crashed
//! only if every partition it holds has another in-sync replica on a node
//! that is up and has its memory: a crash is the only fault that destroys
//! data, and this keeps one good copy of everything. (Only a loss burst
//! that gets a healthy node declared dead at the worst moment can still
//! break the budget; the world notices from ground truth, see
//! [`super::invariants`], and such seeds are rare.)
//!
//! [`FaultMode::Aggressive`] has no budget beyond keeping one node
//! uncrashed, and its faults last twice as long.

use super::config::{FaultMode, Sabotage};
use super::events::Event;
use super::network::{Burst, Cut, Micros, SlowLink};
use super::world::World;
use crate::node::message::Address;
use crate::view::{node_name, NodeId, NodeState, PartitionId};
use rand::seq::SliceRandom;
use rand::Rng;
use std::collections::BTreeSet;

const MS: Micros = 1000;

/// The kinds of fault, with their weights in each mode.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Kind {
    Crash,
    Pause,
    PauseLeader,
    Isolate,
    Split,
    OneWay,
    LeaderLink,
    LossBurst,
    DelayBurst,
    Replace,
}

const KINDS: [(Kind, u32, u32); 10] = [
    // (kind, tolerated weight, aggressive weight)
    (Kind::Crash, 20, 25),
    (Kind::Pause, 20, 20),
    (Kind::PauseLeader, 5, 8),
    (Kind::Isolate, 15, 15),
    (Kind::Split, 10, 10),
    (Kind::OneWay, 10, 10),
    (Kind::LeaderLink, 10, 10),
    (Kind::LossBurst, 12, 8),
    (Kind::DelayBurst, 8, 4),
    (Kind::Replace, 6, 6),
];

impl World<'_> {
    /// A random gap before the next fault.
    pub fn fault_gap(&mut self) -> Micros {
        let mean = self.cfg.fault_gap.max(1) * MS;
        self.rng.gen_range(mean / 2..=mean * 3 / 2)
    }

    /// Draws and injects a fault, and schedules the next one while the
    /// workload runs.
    pub fn on_fault(&mut self) {
        if self.now >= self.cfg.duration * MS {
            return;
        }
        let aggressive = self.cfg.faults == FaultMode::Aggressive;
        let total: u32 = KINDS
            .iter()
            .map(|(_, t, a)| if aggressive { *a } else { *t })
            .sum();
        let mut pick = self.rng.gen_range(0..total);
        let mut kind = Kind::Crash;
        for (k, t, a) in KINDS {
            let w = if aggressive { a } else { t };
            if pick < w {
                kind = k;
                break;
            }
            pick -= w;
        }
        if !self.inject(kind, aggressive) {
            self.report.faults.skipped += 1;
        }
        let gap = self.fault_gap();
        self.queue.push(self.now + gap, Event::Fault);
    }

    /// Injects a fault of this kind if the budget allows one; returns
    /// whether it did.
    fn inject(&mut self, kind: Kind, aggressive: bool) -> bool {
        // Longer faults in aggressive mode: past every timeout, often.
        let long = if aggressive { 2 } else { 1 };
        match kind {
            Kind::Crash => {
                let alive: Vec<NodeId> = self
                    .slots
                    .iter()
                    .filter(|(_, s)| !s.crashed())
                    .map(|(id, _)| *id)
                    .collect();
                let candidates: Vec<NodeId> = alive
                    .into_iter()
                    .filter(|id| self.may_crash(*id, aggressive))
                    .collect();
                let Some(&id) = candidates.choose(&mut self.rng) else {
                    return false;
                };
                self.crash(id);
                let back = self.rng.gen_range(100 * MS..=3000 * MS * long);
                self.queue.push(self.now + back, Event::Restart(id));
                true
            }
            Kind::Pause => {
                let up: Vec<NodeId> = self
                    .slots
                    .iter()
                    .filter(|(_, s)| s.up())
                    .map(|(id, _)| *id)
                    .collect();
                let candidates: Vec<NodeId> = up
                    .into_iter()
                    .filter(|id| self.may_take_down(&[*id].into(), aggressive))
                    .collect();
                let Some(&id) = candidates.choose(&mut self.rng) else {
                    return false;
                };
                self.pause(id);
                // From shorter than a lease to longer than the failure timeout.
                let back = self.rng.gen_range(20 * MS..=1500 * MS * long);
                self.queue.push(self.now + back, Event::Resume(id));
                true
            }
            Kind::PauseLeader => {
                if self.leader_inbox.is_some() {
                    return false;
                }
                self.pause_leader();
                let back = self.rng.gen_range(20 * MS..=800 * MS * long);
                self.queue.push(self.now + back, Event::ResumeLeader);
                true
            }
            Kind::Isolate => {
                let ids: Vec<NodeId> = self.slots.keys().copied().collect();
                let id = ids[self.rng.gen_range(0..ids.len())];
                if !self.may_take_down(&[id].into(), aggressive) {
                    return false;
                }
                let me: BTreeSet<Address> = [Address::Node(id)].into();
                let rest: BTreeSet<Address> = self
                    .addresses()
                    .into_iter()
                    .filter(|a| !me.contains(a))
                    .collect();
                self.report.faults.isolations += 1;
                self.trace(|| format!("FAULT isolate {}", node_name(id)));
                self.cut_for(me, rest, true, long);
                true
            }
            Kind::Split => {
                let mut all = self.addresses();
                all.shuffle(&mut self.rng);
                let k = self.rng.gen_range(1..all.len());
                let side: BTreeSet<Address> = all[..k].iter().copied().collect();
                let other: BTreeSet<Address> = all[k..].iter().copied().collect();
                let away = if side.contains(&Address::Leader) {
                    &other
                } else {
                    &side
                };
                let down: BTreeSet<NodeId> = away
                    .iter()
                    .filter_map(|a| match a {
                        Address::Node(n) => Some(*n),
                        Address::Leader => None,
                    })
                    .collect();
                if !self.may_take_down(&down, aggressive) {
                    return false;
                }
                self.report.faults.splits += 1;
                self.trace(|| format!("FAULT split {side:?} | {other:?}"));
                self.cut_for(side, other, true, long);
                true
            }
            Kind::OneWay => {
                let all = self.addresses();
                let from = all[self.rng.gen_range(0..all.len())];
                let to = all[self.rng.gen_range(0..all.len())];
                if from == to {
                    return false;
                }
                // Either way, a cut between a node and the leader takes the
                // node down: without heartbeats it is declared dead, without
                // acknowledgements it holds no lease and fails over.
                if let (Address::Node(n), Address::Leader) | (Address::Leader, Address::Node(n)) =
                    (from, to)
                {
                    if !self.may_take_down(&[n].into(), aggressive) {
                        return false;
                    }
                }
                self.report.faults.one_way_cuts += 1;
                self.trace(|| format!("FAULT cut {from:?} -> {to:?}"));
                self.cut_for([from].into(), [to].into(), false, long);
                true
            }
            Kind::LeaderLink => {
                // A node whose link to the leader is slow, up to several
                // times the lease (in either direction or both: the round
                // trip is what counts), or whose acknowledgements are all
                // lost. It keeps heartbeating, so it is never declared dead,
                // but it cannot hold a lease: the leader must fail it over.
                let ids: Vec<NodeId> = self.slots.keys().copied().collect();
                let id = ids[self.rng.gen_range(0..ids.len())];
                if !self.may_take_down(&[id].into(), aggressive) {
                    return false;
                }
                let (node, leader) = (Address::Node(id), Address::Leader);
                let heal = self.now + self.rng.gen_range(300 * MS..=3000 * MS * long);
                self.report.faults.leader_links += 1;
                if self.rng.gen_bool(0.3) {
                    self.trace(|| format!("FAULT cut leader -> {}", node_name(id)));
                    let cut = self.net.cut(Cut {
                        from: [leader].into(),
                        to: [node].into(),
                    });
                    self.queue.push(heal, Event::Heal(cut));
                    return true;
                }
                let lease = self.cfg.node.lease * MS;
                let extra_us = self.rng.gen_range(lease / 4..=lease * 4);
                let links = match self.rng.gen_range(0..3) {
                    0 => vec![(node, leader)],
                    1 => vec![(leader, node)],
                    _ => vec![(node, leader), (leader, node)],
                };
                for (from, to) in links {
                    self.trace(|| format!("FAULT slow {from:?} -> {to:?} by {} ms", extra_us / MS));
                    let slow = self.net.slow(SlowLink { from, to, extra_us });
                    self.queue.push(heal, Event::Heal(slow));
                }
                true
            }
            Kind::Replace => {
                // The operator decommissions a node and starts a new one in
                // its place; the departed one is stopped once it has left.
                if self.leader_inbox.is_some() || self.slots.len() > self.cfg.nodes {
                    return false;
                }
                let view = self.leader.view();
                let up: Vec<NodeId> = self
                    .slots
                    .iter()
                    .filter(|(id, s)| {
                        s.up() && view.nodes.get(id).is_some_and(|n| n.state == NodeState::Up)
                    })
                    .map(|(id, _)| *id)
                    .collect();
                let Some(&id) = up.choose(&mut self.rng) else {
                    return false;
                };
                // Its copies go away once others hold them: that is as safe
                // as the others are, so it counts against the budget.
                if !self.may_take_down(&[id].into(), aggressive)
                    || self.leader.decommission(id, false).is_err()
                {
                    return false;
                }
                self.report.faults.replacements += 1;
                self.trace(|| format!("FAULT decommission {}", node_name(id)));
                self.flush_leader();
                self.add_node();
                true
            }
            Kind::LossBurst | Kind::DelayBurst => {
                if self.net.burst().is_some() {
                    return false;
                }
                let burst = if kind == Kind::LossBurst {
                    self.report.faults.loss_bursts += 1;
                    let loss = if aggressive {
                        self.rng.gen_range(20.0..80.0)
                    } else {
                        self.rng.gen_range(10.0..40.0)
                    };
                    Burst {
                        loss_pct: loss,
                        max_delay_us: self.cfg.max_delay_us,
                    }
                } else {
                    self.report.faults.delay_bursts += 1;
                    let delay = self.rng.gen_range(20 * MS..=100 * MS);
                    Burst {
                        loss_pct: self.cfg.loss_pct,
                        max_delay_us: delay,
                    }
                };
                self.trace(|| {
                    format!(
                        "FAULT burst: {:.0}% loss, delays up to {} ms",
                        burst.loss_pct,
                        burst.max_delay_us / MS
                    )
                });
                self.net.start_burst(burst);
                self.burst_id += 1;
                let end = self.rng.gen_range(100 * MS..=1000 * MS * long);
                self.queue
                    .push(self.now + end, Event::EndBurst(self.burst_id));
                true
            }
        }
    }

    /// Every address on the network, in order.
    fn addresses(&self) -> Vec<Address> {
        std::iter::once(Address::Leader)
            .chain(self.slots.keys().map(|id| Address::Node(*id)))
            .collect()
    }

    /// Cuts `a` from `b` (both ways if `both`) and schedules the heal.
    fn cut_for(&mut self, a: BTreeSet<Address>, b: BTreeSet<Address>, both: bool, long: u64) {
        let heal = self.now + self.rng.gen_range(100 * MS..=2500 * MS * long);
        if both {
            let id = self.net.cut(Cut {
                from: b.clone(),
                to: a.clone(),
            });
            self.queue.push(heal, Event::Heal(id));
        }
        let id = self.net.cut(Cut { from: a, to: b });
        self.queue.push(heal, Event::Heal(id));
    }

    /// True if the budget allows these nodes to go down as well.
    fn may_take_down(&mut self, extra: &BTreeSet<NodeId>, aggressive: bool) -> bool {
        if aggressive {
            return true;
        }
        let mut down = self.down_nodes();
        down.extend(extra.iter().copied());
        down.len() < self.cfg.replicas
    }

    /// True if crashing `id` keeps the cluster inside the budget.
    fn may_crash(&mut self, id: NodeId, aggressive: bool) -> bool {
        if aggressive {
            // Keep one node with memory, so that something is left to run.
            return self.slots.iter().any(|(n, s)| *n != id && !s.crashed());
        }
        if !self.may_take_down(&[id].into(), false) {
            return false;
        }
        let down = self.down_nodes();
        let view = self.leader.view();
        view.partitions
            .iter()
            .filter(|info| info.holds(id))
            .all(|info| {
                info.replicas.iter().any(|r| {
                    r.node != id
                        && r.in_sync
                        && self.intact(r.node)
                        && !down.contains(&r.node)
                        && view
                            .nodes
                            .get(&r.node)
                            .is_some_and(|n| n.state == NodeState::Up)
                })
            })
    }

    /// Ends every fault: heals the network, resumes paused nodes and the
    /// leader, and restarts crashed nodes.
    pub fn heal_everything(&mut self) {
        self.trace(|| "heal everything".into());
        self.net.heal_all();
        self.resume_leader();
        let ids: Vec<NodeId> = self.slots.keys().copied().collect();
        for id in ids {
            self.resume(id);
            self.restart(id);
        }
    }

    /// The sabotage event: wipe one partition on one secondary, behind
    /// replication's back.
    pub fn sabotage(&mut self) {
        if self.cfg.sabotage != Some(Sabotage::WipeSecondary) || self.now >= self.cfg.duration * MS
        {
            return;
        }
        let next = self.now + self.rng.gen_range(500 * MS..=1500 * MS);
        self.queue.push(next, Event::Sabotage);
        let mut targets: Vec<(NodeId, PartitionId)> = Vec::new();
        for (id, slot) in &self.slots {
            let Some(node) = slot.node() else { continue };
            for (p, info) in node.view().partitions.iter().enumerate() {
                let p = p as PartitionId;
                if info.primary() != Some(*id)
                    && info.holds(*id)
                    && node.store().partition_len(p) > 0
                {
                    targets.push((*id, p));
                }
            }
        }
        let Some(&(id, p)) = targets.choose(&mut self.rng) else {
            return;
        };
        if let Some(node) = self.slots.get_mut(&id).and_then(|s| s.node_mut()) {
            node.store_mut().drop_partition(p);
        }
        self.report.faults.sabotage += 1;
        self.trace(|| format!("SABOTAGE wipe partition {p} on {}", node_name(id)));
    }
}
