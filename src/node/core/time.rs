//! Time: the node's tick. Heartbeats to the view leader, request deadlines
//! and retries, the primaries' replication work, lagging and caught-up
//! reports, and scans; and whether the node is idle enough to sleep until
//! its next heartbeat.

use super::*;

impl Node {
    /// True if a tick has nothing to do but send the next heartbeat: no
    /// input since the last tick, no partition busy, no request or scan
    /// waiting. The runtime then ticks less often, so an idle cluster
    /// costs almost nothing.
    pub fn idle(&self) -> bool {
        !self.sweep && self.pending.is_empty() && self.scans.is_empty() && !self.txn_busy()
    }

    /// Advances time: heartbeats, retries, retransmits, deadlines.
    /// When the next heartbeat is due: the latest an idle node must tick.
    pub fn next_heartbeat(&self) -> Time {
        self.next_heartbeat
    }

    pub fn tick(&mut self, now: Time) {
        self.now = now;
        if self.keep_reloaded_until != 0 && now >= self.keep_reloaded_until {
            self.keep_reloaded_until = 0;
            self.drop_unheld();
        }
        if now >= self.next_heartbeat {
            self.next_heartbeat = now + self.cfg.heartbeat_interval;
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
        let heartbeat_tick = self.next_heartbeat == now + self.cfg.heartbeat_interval;
        if heartbeat_tick {
            self.recover_intents();
            self.retry_cleanups();
        }
        let sweep = std::mem::take(&mut self.sweep);
        let walk = sweep || heartbeat_tick;
        // A heartbeat tick with nothing else to do walks only the
        // partitions with work: a quiet one has no write in flight, so
        // nothing lags, and no resync to report.
        let view = &self.view;
        let mut busy = false;
        for leader in self
            .leaders
            .values_mut()
            .filter(|l| sweep || (heartbeat_tick && !l.quiet(view)))
        {
            done.extend(leader.tick(&self.store, now, &mut msgs));
            if heartbeat_tick {
                for (node, stream) in leader.lagging(now) {
                    reports.push(Message::Lagging {
                        partition: leader.partition,
                        node,
                        stream,
                    });
                }
            }
            for (node, stream, keys) in
                leader.caught_up_reports(&self.view, now, self.cfg.heartbeat_interval)
            {
                reports.push(Message::CaughtUp {
                    partition: leader.partition,
                    node,
                    stream,
                    keys,
                });
            }
            busy |= !leader.quiet(view);
        }
        // The partitions not walked were quiet, and nothing has changed
        // them since.
        if walk {
            self.sweep = busy;
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
