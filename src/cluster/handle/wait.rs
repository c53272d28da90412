//! The [`Cluster`] handle's waits: until a removed node has gone and its
//! moves have settled, until the cluster is healthy or settled. Each reads
//! the leader's published [`Status`] (a watch, so no polling) and, when it
//! times out, says which partitions hold it up.

use super::{Cluster, Process};
use crate::cluster::leader::Status;
use crate::error::{Error, Result};
use crate::node::runtime::Control;
use crate::view::{node_name, Epoch, NodeId, NodeState};
use std::sync::Arc;
use std::time::{Duration, Instant};

impl Cluster {
    /// Waits until a decommissioned node has left the view (it holds
    /// nothing), stops its thread, and then waits until the rebalancing its
    /// removal started has settled: nothing moving or degraded, and every
    /// live node has adopted the final view (so its key counts are final).
    ///
    /// Leaving is not the end of it: the node leaves as soon as it holds
    /// nothing, but a step it started can still be finishing, such as a
    /// surplus replica on another node that is removed only once that node
    /// has seen the new primary's term. Returning at that point would show
    /// an operator a replica count that changes a moment later.
    /// Statuses older than `epoch`, the one [`Cluster::decommission`]
    /// returned, predate the removal and are not looked at.
    pub fn wait_removed(
        &mut self,
        id: NodeId,
        epoch: Epoch,
        timeout: Duration,
        cancelled: &dyn Fn() -> bool,
    ) -> Result<()> {
        let deadline = Instant::now() + timeout;
        // A node that dies while leaving stays leaving, and leaves once its
        // partitions have failed over. One that was the only in-sync copy
        // of a partition holds the wait until it comes back; a killed one
        // never will, so that is an error at once rather than at the
        // timeout.
        let killed = self.process(id) == Some(Process::Killed);
        let stuck_dead = |s: &Status| {
            s.view.epoch >= epoch
                && killed
                && s.view
                    .nodes
                    .get(&id)
                    .is_some_and(|n| n.state == NodeState::Dead)
                && s.view.partitions.iter().any(|p| p.primary() == Some(id))
        };
        let s = self.wait_for(
            timeout,
            cancelled,
            |s| s.view.epoch >= epoch && !s.view.nodes.contains_key(&id) || stuck_dead(s),
            |_| {
                format!(
                    "{} has not finished moving its data away after {:.1} s",
                    node_name(id),
                    timeout.as_secs_f64()
                )
            },
        )?;
        if stuck_dead(&s) {
            return Err(Error::Unavailable(format!(
                "{name} was killed while leaving and held the only in-sync copy of some \
                 partitions; `remove {name} --force` removes it anyway and starts them again empty",
                name = node_name(id)
            )));
        }
        if let Some(r) = &mut self.remote {
            r.forget(id)?;
        }
        if let Some(mut h) = self.nodes.remove(&id) {
            if let Some(t) = h.thread.take() {
                let _ = t.control.send(Control::Kill);
                let _ = t.thread.join();
            }
        }
        // Moving and repairable partitions are what unfinished steps leave
        // behind. This is not `settled`, which also wants no other node
        // leaving, nor `healthy`, which a forced removal below R replicas
        // never reaches. A partition an earlier failure left without a live
        // primary cannot reach its target, so it counts as moving and holds
        // the wait until the timeout, as it holds `add` and `rebalance`.
        let settled = |s: &Status| s.moving == 0 && s.repairable == 0 && s.caught_up();
        let left = deadline.saturating_duration_since(Instant::now());
        self.wait_for(left, cancelled, settled, |s| {
            format!(
                "{} left, but the rebalancing it caused has not settled after {:.1} s: \
                 {} under-replicated, {} moving partitions{}",
                node_name(id),
                timeout.as_secs_f64(),
                s.repairable,
                s.moving,
                stuck(s)
            )
        })?;
        Ok(())
    }

    /// Waits until the status satisfies `ready`, and returns that status:
    /// `Cancelled` if `cancelled` says so first, else a `Timeout` that `why`
    /// words from the last status.
    fn wait_for(
        &self,
        timeout: Duration,
        cancelled: &dyn Fn() -> bool,
        ready: impl FnMut(&Status) -> bool,
        why: impl FnOnce(&Status) -> String,
    ) -> Result<Arc<Status>> {
        match self.status.wait_until(timeout, cancelled, ready) {
            Ok(s) => Ok(s),
            Err(_) if cancelled() => Err(Error::Cancelled),
            Err(s) => Err(Error::Timeout(why(&s))),
        }
    }

    /// Waits until every partition has its replicas in sync and nothing is
    /// moving, the leader has caught up with what the operator did (a killed
    /// node is dead in the view, a paused node has woken and been heard
    /// from), and every live node has reported the latest view, so that the
    /// key counts `nodes` shows are from after it. Returns how long it took.
    ///
    /// Healthy means every partition has R in-sync replicas on live nodes,
    /// whatever the reason it does not: a cluster with fewer live nodes
    /// than R is never healthy ([`Cluster::wait_settled`] waits for what
    /// such a cluster can reach).
    pub fn wait_healthy(
        &self,
        timeout: Duration,
        cancelled: &dyn Fn() -> bool,
    ) -> Result<Duration> {
        self.wait_ready(timeout, cancelled, true)
    }

    /// Like [`Cluster::wait_healthy`], but waits only until every move the
    /// leader can make is made ([`Status::settled`]): in a cluster with
    /// fewer live nodes than R, each partition has a replica on every live
    /// node.
    pub fn wait_settled(
        &self,
        timeout: Duration,
        cancelled: &dyn Fn() -> bool,
    ) -> Result<Duration> {
        self.wait_ready(timeout, cancelled, false)
    }

    fn wait_ready(
        &self,
        timeout: Duration,
        cancelled: &dyn Fn() -> bool,
        healthy: bool,
    ) -> Result<Duration> {
        let start = Instant::now();
        let ids = self.node_ids();
        let killed: Vec<NodeId> = ids
            .iter()
            .filter(|id| self.process(**id) == Some(Process::Killed))
            .copied()
            .collect();
        // Paused now, or paused until a moment that has passed but not
        // yet been heard from.
        let paused: Vec<(NodeId, Instant)> = match &self.remote {
            Some(r) => ids
                .iter()
                .filter_map(|id| match r.process(*id) {
                    Some(Process::Paused(t)) => Some((*id, t)),
                    _ => None,
                })
                .collect(),
            None => self
                .nodes
                .iter()
                .filter_map(|(id, h)| h.paused_until.map(|t| (*id, t)))
                .collect(),
        };
        let ready = |s: &Status| {
            let now = Instant::now();
            (if healthy { s.healthy } else { s.settled })
                && s.caught_up()
                && killed.iter().all(|id| {
                    s.view
                        .nodes
                        .get(id)
                        .is_none_or(|n| n.state == NodeState::Dead)
                })
                && paused.iter().all(|(id, until)| {
                    now >= *until
                        && s.members.get(id).is_some_and(|m| !m.suspect)
                        && s.view
                            .nodes
                            .get(id)
                            .is_none_or(|n| n.state != NodeState::Dead)
                })
        };
        self.wait_for(timeout, cancelled, ready, |s| {
            let live = s
                .view
                .nodes
                .values()
                .filter(|n| n.state == NodeState::Up)
                .count();
            let mut why = Vec::new();
            if live < s.view.replication {
                why.push(format!(
                    "{} cannot hold {}",
                    crate::units::count(live, "live node"),
                    crate::units::count(s.view.replication, "replica")
                ));
            }
            for n in &s.no_lease {
                why.push(format!("{} cannot hold a lease", node_name(*n)));
            }
            let why = if why.is_empty() {
                String::new()
            } else {
                format!("; {}", why.join("; "))
            };
            format!(
                "not {} after {:.1} s: {} degraded, {} moving, {} unavailable partitions{why}{}",
                if healthy { "healthy" } else { "settled" },
                timeout.as_secs_f64(),
                s.degraded,
                s.moving,
                s.unavailable,
                stuck(s)
            )
        })?;
        Ok(start.elapsed())
    }
}

/// A few partitions that keep the cluster from being healthy, and why.
fn stuck(s: &Status) -> String {
    let mut out = Vec::new();
    for (p, info) in s.view.partitions.iter().enumerate() {
        let filling: Vec<String> = info
            .replicas
            .iter()
            .filter(|r| !r.in_sync)
            .map(|r| format!("{} filling", node_name(r.node)))
            .collect();
        let target = s.target.get(p).cloned().unwrap_or_default();
        let mut why = filling;
        if info.primary() != target.first().copied() || target.iter().any(|n| !info.holds(*n)) {
            let have: Vec<String> = info.replicas.iter().map(|r| node_name(r.node)).collect();
            let want: Vec<String> = target.iter().map(|n| node_name(*n)).collect();
            why.push(format!(
                "has [{}], target [{}]",
                have.join(" "),
                want.join(" ")
            ));
        }
        if !why.is_empty() {
            out.push(format!("partition {p}: {}", why.join(", ")));
        }
        if out.len() == 3 {
            break;
        }
    }
    if out.is_empty() {
        String::new()
    } else {
        format!(" ({})", out.join("; "))
    }
}
