//! Failure detection: nodes that go silent are suspected, then declared
//! dead and failed over; nodes that keep heartbeating but cannot hold a
//! lease are fenced and failed over; and a stall of the leader's own
//! process is not taken for silence of the nodes. The safety argument for
//! each failover is in docs/architecture.md, section 6.

use super::{PlanInputs, ViewLeader, REPLAN_MS, STALL_MS};
use crate::cluster::event::EventKind;
use crate::cluster::status::is_live;
use crate::node::message::AckTiming;
use crate::view::{Epoch, NodeId, NodeState, PartitionId, Time};

impl ViewLeader {
    /// Advances time: suspects and declares dead silent nodes, and takes the
    /// next rebalancing steps.
    pub fn tick(&mut self, now: Time) {
        self.observe(now);
        if self.view.epoch == 0 && !self.staged {
            return;
        }
        let mut newly_suspect = Vec::new();
        let mut dead = Vec::new();
        for (id, info) in &self.view.nodes {
            if info.state == NodeState::Dead {
                continue;
            }
            let Some(m) = self.members.get(id) else {
                continue;
            };
            let silent = now.saturating_sub(m.last_heard);
            if silent >= self.cfg.failure_timeout {
                dead.push((*id, silent));
            } else if silent >= self.cfg.suspect_timeout && !m.suspect {
                newly_suspect.push((*id, silent));
            }
        }
        for (node, silent_ms) in newly_suspect {
            if let Some(m) = self.members.get_mut(&node) {
                m.suspect = true;
            }
            self.event(EventKind::Suspected { node, silent_ms });
        }
        for (node, silent) in dead {
            self.mark_dead(node, silent);
        }
        self.check_leases();
        // Planning walks every partition; an idle leader that planned on
        // every tick spent most of an idle cluster's CPU doing it. So a
        // tick plans only when something planning reads has changed, and
        // at least every REPLAN_MS for what depends on the time alone.
        let inputs = self.plan_inputs();
        let due = match &self.planned {
            Some((last, at)) => *last != inputs || now >= at + REPLAN_MS,
            None => true,
        };
        if due {
            self.plan_step();
            self.planned = Some((self.plan_inputs(), now));
        }
        self.publish();
    }

    /// The earliest time a tick could find something to do that no message
    /// brings: a member falling silent long enough to be suspected or
    /// declared dead, a lease running out, or the periodic replan. An idle
    /// leader sleeps until then (its runtime also bounds the sleep, so the
    /// stall detector keeps seeing it tick).
    pub fn next_due(&self) -> Option<Time> {
        let mut due = self.planned.as_ref().map(|(_, at)| at + REPLAN_MS);
        let mut at = |t: Time| due = Some(due.map_or(t, |d: Time| d.min(t)));
        for (id, info) in &self.view.nodes {
            if info.state == NodeState::Dead {
                continue;
            }
            let Some(m) = self.members.get(id) else {
                continue;
            };
            if !m.suspect {
                at(m.last_heard + self.cfg.suspect_timeout);
            }
            at(m.last_heard + self.cfg.failure_timeout);
            if !m.lease.lost && m.incarnation == info.incarnation {
                at(m.lease.held_until + self.cfg.failure_timeout);
            }
            // A fenced node's partitions fail over once every lease it
            // could hold has run out (see `check_leases`).
            if m.lease.lost && m.lease.fenced {
                at(m.lease.granted_from + self.cfg.failure_timeout);
            }
        }
        due
    }

    /// The runtime is about to sleep until `t` with nothing to do: the
    /// stall detector counts only lateness past `t`, so an idle leader's
    /// sleep cannot be taken for a stall of its process.
    pub fn sleeping_until(&mut self, t: Time) {
        self.sleeping_until = Some(t);
    }

    /// A fingerprint of everything [`ViewLeader::plan_step`] reads, but the
    /// time: the view (its epoch, and whether a change is staged), the
    /// placement, whether rebalancing is on, and each member's reported
    /// epoch and lease.
    fn plan_inputs(&self) -> PlanInputs {
        let mut members = 0u64;
        for (id, m) in &self.members {
            for x in [u64::from(*id), m.reported_epoch, u64::from(m.lease.lost)] {
                members = (members ^ x).wrapping_mul(0x9E37_79B9_7F4A_7C15);
            }
        }
        PlanInputs {
            epoch: self.view.epoch,
            staged: self.staged,
            placement: self.cfg.placement,
            rebalancing: self.rebalancing(),
            members,
        }
    }

    /// Takes the time, and notices a stall of the leader's own process: a
    /// gap since the time it was last given far beyond the tick interval
    /// (it ticks every few milliseconds). Every node was silent for the gap
    /// only because nobody listened (in a stall of the whole process, the
    /// nodes were stopped too), so the gap does not count as silence: every
    /// failure-detection timer, all of which were set before the stall,
    /// moves on by the gap, as if no time had passed. Whatever arrives after
    /// the stall, whether a message or a tick comes first, is news.
    ///
    /// This cannot weaken the lease argument (docs/architecture.md,
    /// "Leases"): moving a timer later only delays a verdict, and a node's
    /// lease runs on the same clock, which did not stop. A node that really
    /// died during the stall is declared dead one failure timeout after it.
    pub(super) fn observe(&mut self, now: Time) {
        self.now = now;
        let seen = self.last_seen.unwrap_or(now);
        // A sleep the runtime chose is not a stall: only lateness past its
        // end counts (a message that ends the sleep early is no stall).
        let mut last = seen;
        if let Some(t) = self.sleeping_until.take() {
            last = last.max(t.min(now));
        }
        self.last_seen = Some(last.max(now));
        if now.saturating_sub(last) <= STALL_MS {
            return;
        }
        // But once there was a stall, the whole time since the leader last
        // looked is time nobody was heard: the stall may have begun at the
        // start of the sleep, and the nodes, stopped with it, were silent
        // all along. Moving the timers by the sleep too delays a verdict
        // on a node that really fell silent in it by at most the sleep.
        let gap = now.saturating_sub(seen);
        for m in self.members.values_mut() {
            m.last_heard += gap;
            // The lease it reported ran out in the stall only because the
            // leader could not acknowledge: it has as long left as then.
            m.lease.held_until += gap;
        }
        if self.view.epoch > 0 {
            self.event(EventKind::Stalled { gap_ms: gap });
        }
    }

    /// Finds the nodes that keep heartbeating but hold no lease, and fails
    /// over the partitions they lead.
    ///
    /// A node whose acknowledgements arrive after the lease they grant has
    /// run out (a slow link to the leader), or not at all (a one-way cut),
    /// is never silent, so the failure detector would never replace it,
    /// and every partition it leads would fail each request. Once it has
    /// held no lease for the failure timeout, it counts as failed for
    /// primaryship:
    ///
    /// 1. The leader stops acknowledging its heartbeats (it is *fenced*),
    ///    so it can get no new lease. It still gets views.
    /// 2. Once every acknowledgement the leader sent it is a failure timeout
    ///    old, every lease it could hold has run out (a lease lasts less
    ///    than the failure timeout from the heartbeat it acknowledges), as
    ///    after a silence. Then each partition it leads that has an in-sync
    ///    secondary which holds a lease (and is not suspected) gets that
    ///    secondary as primary, in a new term. The node stays in the
    ///    replica set as a filling secondary: it has the data, and is in
    ///    sync again after a resync once it has the new view, but commits
    ///    and the new primary do not wait for it, since a node that hears
    ///    nothing from the leader may never get that view. The fence lifts:
    ///    from the new view on, a lease gives it no primary role it lost.
    ///
    /// The node is not healthy until it reports a lease again; then the
    /// rebalancer may hand its partitions back.
    pub(super) fn check_leases(&mut self) {
        let now = self.now;
        let timeout = self.cfg.failure_timeout;
        let mut lost = Vec::new();
        for (id, info) in &self.view.nodes {
            let Some(m) = self.members.get(id) else {
                continue;
            };
            if info.state == NodeState::Dead || m.lease.lost || m.incarnation != info.incarnation {
                continue;
            }
            if now.saturating_sub(m.lease.held_until) >= timeout {
                // An acknowledgement that arrived after its last lease ended
                // granted nothing: acknowledgements arrive, too late. If none
                // did, the newest is the one that granted that lease.
                let rtt_ms = m
                    .lease
                    .last_ack
                    .filter(|a| a.received_at >= m.lease.held_until)
                    .map(|a: AckTiming| a.received_at.saturating_sub(a.sent_at));
                lost.push((*id, rtt_ms, m.lease.heartbeat_delay));
            }
        }
        for (node, rtt_ms, heartbeat_ms) in lost {
            if let Some(m) = self.members.get_mut(&node) {
                m.lease.lost = true;
            }
            self.event(EventKind::LeaseLost {
                node,
                rtt_ms,
                heartbeat_ms,
            });
        }
        let leaseless: Vec<NodeId> = self
            .members
            .iter()
            .filter(|(id, m)| m.lease.lost && is_live(&self.view, **id))
            .map(|(id, _)| *id)
            .collect();
        for node in leaseless {
            let movable: Vec<(usize, NodeId)> = self
                .view
                .partitions
                .iter()
                .enumerate()
                .filter(|(_, info)| info.primary() == Some(node))
                .filter_map(|(p, _)| self.successor(p, node, true).map(|to| (p, to)))
                .collect();
            let m = self.members.get_mut(&node).expect("listed above");
            if movable.is_empty() {
                m.lease.fenced = false;
                continue;
            }
            if !m.lease.fenced {
                m.lease.fenced = true;
                continue;
            }
            if now < m.lease.granted_from + timeout {
                continue;
            }
            m.lease.fenced = false;
            let epoch = self.stage();
            for (p, to) in movable {
                let term = self.promote(p, node, to, epoch, true);
                self.event(EventKind::LeaseFailover {
                    partition: p as PartitionId,
                    from: node,
                    to,
                    term,
                });
            }
        }
    }

    /// The secondary of partition `p` to promote in place of `from`: the
    /// first that is in sync, live, heard from lately (not suspected) and
    /// holds a lease. Unless `sound_only`, any in-sync live one will do
    /// when there is no such: it has the data, and serves once it is heard
    /// from with a lease; or it is declared dead too.
    pub(super) fn successor(&self, p: usize, from: NodeId, sound_only: bool) -> Option<NodeId> {
        let info = &self.view.partitions[p];
        let sound = |n: NodeId| {
            self.members
                .get(&n)
                .is_some_and(|m| !m.lease.lost && !m.suspect)
        };
        let candidates: Vec<NodeId> = info
            .secondaries()
            .filter(|r| r.node != from && r.in_sync && is_live(&self.view, r.node))
            .map(|r| r.node)
            .collect();
        match candidates.iter().find(|n| sound(**n)) {
            Some(n) => Some(*n),
            None if !sound_only => candidates.first().copied(),
            None => None,
        }
    }

    /// Makes `to` the primary of partition `p` in a new term that starts at
    /// `epoch`. `from` leaves the replica set, or with `keep` stays in it as
    /// a filling secondary. Returns the term.
    pub(super) fn promote(
        &mut self,
        p: usize,
        from: NodeId,
        to: NodeId,
        epoch: Epoch,
        keep: bool,
    ) -> u64 {
        let info = &mut self.view.partitions[p];
        if keep {
            if let Some(r) = info.replicas.iter_mut().find(|r| r.node == from) {
                r.in_sync = false;
                r.since = epoch;
            }
        } else {
            info.replicas.retain(|r| r.node != from);
        }
        let i = info
            .replicas
            .iter()
            .position(|r| r.node == to)
            .expect("the successor is a replica");
        let r = info.replicas.remove(i);
        info.replicas.insert(0, r);
        info.term += 1;
        info.term_epoch = epoch;
        let term = info.term;
        if keep {
            self.filling_since
                .insert((p as PartitionId, from), self.now);
        } else {
            self.filling_since.remove(&(p as PartitionId, from));
        }
        term
    }

    /// Declares a node dead: promotes in-sync secondaries of the partitions
    /// it led and drops it from the others.
    pub(super) fn mark_dead(&mut self, node: NodeId, silent_ms: Time) {
        let epoch = self.stage();
        if let Some(n) = self.view.nodes.get_mut(&node) {
            n.state = NodeState::Dead;
        }
        if let Some(m) = self.members.get_mut(&node) {
            m.suspect = false;
            m.lease.lost = false;
            m.lease.fenced = false;
        }
        self.event(EventKind::Dead { node, silent_ms });
        for p in 0..self.view.partitions.len() {
            let info = &self.view.partitions[p];
            if !info.holds(node) {
                continue;
            }
            if info.primary() == Some(node) {
                match self.successor(p, node, false) {
                    Some(to) => {
                        let term = self.promote(p, node, to, epoch, false);
                        self.event(EventKind::Promoted {
                            partition: p as PartitionId,
                            from: node,
                            to,
                            term,
                        });
                    }
                    None => {
                        // Keep the dead primary: if it was only paused it
                        // still has the data, and nobody else does.
                        self.event(EventKind::Unavailable {
                            partition: p as PartitionId,
                        });
                    }
                }
            } else {
                self.view.partitions[p].replicas.retain(|r| r.node != node);
                self.filling_since.remove(&(p as PartitionId, node));
            }
        }
    }
}
