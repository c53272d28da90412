//! Time: the node's tick. Heartbeats to the view leader, request deadlines
//! and retries, the primaries' replication work, lagging and caught-up
//! reports, and scans; and whether the node is idle enough to sleep until
//! its next heartbeat.

use super::*;

/// Every how many heartbeat ticks a node walks every primary role, not
/// only the active ones, as a guard (see [`Node::tick`]).
const QUIET_CHECK_EVERY: u32 = 50;
/// Every how many heartbeats a node sends its statistics unchanged.
const STATS_REFRESH_EVERY: u32 = 10;

impl Node {
    /// True if a tick has nothing to do but send the next heartbeat: no
    /// input since the last tick, no partition busy, no request or scan
    /// waiting. The runtime then ticks less often, so an idle cluster
    /// costs almost nothing.
    pub fn idle(&self) -> bool {
        !self.sweep
            && self.active.is_empty()
            && self.pending.is_empty()
            && self.scans.is_empty()
            && !self.txn_busy()
    }

    /// True if a primary role has a write, or a resync entry, not yet
    /// acknowledged by every secondary, or work left to send.
    pub fn replicating(&self) -> bool {
        self.leaders.values().any(|l| !l.quiet(&self.view))
    }

    /// A new view leader took over (another process won the election): it
    /// has none of this node's statistics, so the next heartbeat carries
    /// them.
    pub fn leader_changed(&mut self) {
        self.stats_acked = false;
    }

    /// When the next heartbeat is due: the latest an idle node must tick.
    pub fn next_heartbeat(&self) -> Time {
        self.next_heartbeat
    }

    /// The statistics for a heartbeat, or `None` when the leader has them
    /// already: they go only when they changed, when the leader has not
    /// acknowledged them, and every [`STATS_REFRESH_EVERY`]th heartbeat (a
    /// new leader, or one that forgot this node, has them again within a
    /// second). The figures that walk every primary role are recomputed
    /// only after input, so an idle node's heartbeat tick touches none.
    fn heartbeat_stats(&mut self, now: Time) -> Option<NodeStats> {
        self.heartbeats_since_stats += 1;
        // The leader has what was last sent, and it is not time to send it
        // again anyway.
        let held = self.stats_acked && self.heartbeats_since_stats < STATS_REFRESH_EVERY;
        let cheap_same = |s: &NodeStats| {
            s.keys == self.store.keys()
                && s.bytes == self.store.bytes()
                && s.rejected == self.rejected
                && s.unreachable == self.unreachable
                && s.served == self.served
        };
        if held && !self.stats_dirty && self.stats_sent.as_ref().is_some_and(|(s, _)| cheap_same(s))
        {
            return None;
        }
        self.stats_dirty = false;
        let stats = NodeStats {
            keys: self.store.keys(),
            bytes: self.store.bytes(),
            syncing: self.leaders.values().map(|l| l.syncing() as u32).sum(),
            led_keys: self
                .leaders
                .keys()
                .map(|p| (*p, self.store.partition_len(*p) as u64))
                .collect(),
            rejected: self.rejected,
            unreachable: self.unreachable.clone(),
            served: self.served,
        };
        if held && self.stats_sent.as_ref().is_some_and(|(s, _)| *s == stats) {
            return None;
        }
        self.heartbeats_since_stats = 0;
        self.stats_acked = false;
        self.stats_sent = Some((stats.clone(), now));
        Some(stats)
    }

    /// Advances time: heartbeats, retries, retransmits, deadlines.
    pub fn tick(&mut self, now: Time) {
        self.now = now;
        // Any input may change the statistics that walk the primary roles.
        self.stats_dirty |= self.sweep;
        if self.keep_reloaded_until != 0 && now >= self.keep_reloaded_until {
            self.keep_reloaded_until = 0;
            self.drop_unheld();
        }
        let heartbeat_tick = now >= self.next_heartbeat;
        if heartbeat_tick {
            self.early.expire(now);
            // On a grid of the interval, on a clock every node of a process
            // shares: the nodes heartbeat together, so the view leader
            // wakes once for all of their heartbeats, not once for each.
            let every = self.cfg.heartbeat_interval.max(1);
            self.next_heartbeat = (now / every + 1) * every;
            let stats = self.heartbeat_stats(now);
            if self.heartbeats_sent.len() == HEARTBEATS_REMEMBERED {
                self.heartbeats_sent.pop_front();
            }
            self.heartbeats_sent.push_back(now);
            let message = Message::Heartbeat {
                sent_at: now,
                incarnation: self.incarnation,
                endpoint: self.endpoint.clone(),
                peer_endpoint: self.peer_endpoint.clone(),
                stats,
                lease_until: self.lease_until,
                last_ack: self.last_ack,
            };
            self.send(Address::Leader, message);
        }
        // Pending client requests.
        let mut retry = Vec::new();
        let mut expired = Vec::new();
        for (r, p) in &self.pending {
            if now >= p.deadline && !matches!(p.state, PendingState::Local) {
                expired.push(*r);
                continue;
            }
            match p.state {
                PendingState::Retry { at } if now >= at => retry.push(*r),
                PendingState::Forwarded { at, .. }
                    if !p.op.is_write() && now >= at + self.cfg.forward_retry =>
                {
                    retry.push(*r)
                }
                _ => {}
            }
        }
        for r in expired {
            let p = &self.pending[&r];
            let err = match (&p.last_error, p.op.is_write(), &p.state) {
                (Some(e), _, PendingState::Retry { .. }) => e.clone(),
                (_, true, PendingState::Forwarded { .. }) => Error::Timeout(
                    "no answer from the primary in time; the write may or may not be applied"
                        .into(),
                ),
                _ => Error::Timeout("no answer in time".into()),
            };
            self.finish(r, Err(err));
        }
        for r in retry {
            self.route(r);
        }
        // Primary work.
        let mut msgs = Vec::new();
        let mut done = Vec::new();
        let mut reports = Vec::new();
        // Lagging replicas are reported on heartbeat ticks, not every tick.
        if heartbeat_tick {
            self.recover_intents();
            self.retry_cleanups();
        }
        // Input since the last tick marked what it touched in `active`;
        // `sweep` only kept the node from sleeping until this tick.
        self.sweep = false;
        // Every input that touches a primary role marks it active. As a
        // guard, every [`QUIET_CHECK_EVERY`]th heartbeat tick walks every
        // role all the same.
        if heartbeat_tick {
            self.heartbeats_since_walk += 1;
            if self.heartbeats_since_walk >= QUIET_CHECK_EVERY {
                self.heartbeats_since_walk = 0;
                self.active.extend(self.leaders.keys());
            }
        }
        let view = &self.view;
        for p in std::mem::take(&mut self.active) {
            let Some(leader) = self.leaders.get_mut(&p) else {
                continue;
            };
            done.extend(leader.tick(&self.store, now, &mut msgs));
            if heartbeat_tick {
                for (node, stream) in leader.lagging(now) {
                    reports.push(Message::Lagging {
                        partition: p,
                        node,
                        stream,
                    });
                }
            }
            for (node, stream, keys) in
                leader.caught_up_reports(view, now, self.cfg.heartbeat_interval)
            {
                reports.push(Message::CaughtUp {
                    partition: p,
                    node,
                    stream,
                    keys,
                });
            }
            if !leader.quiet(view) {
                self.active.insert(p);
            }
        }
        self.flush(msgs);
        self.complete(done);
        for m in reports {
            self.send(Address::Leader, m);
        }
        self.views_this_tick = 0;
        // Scans: retries and deadlines.
        self.tick_scans();
    }
}
