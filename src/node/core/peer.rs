//! Peer messages: what a node does with an envelope from another node or
//! the view leader (checked first: epoch, sender, incarnation), adopting a
//! new view (roles start and end, pending requests move), and a send that
//! failed before it left.

use super::*;

impl Node {
    /// Handles a message from a peer or the leader.
    pub fn on_message(&mut self, now: Time, env: Envelope) {
        if tracing::enabled!(tracing::Level::TRACE) {
            let text = format!("{:?}", env.message);
            tracing::trace!(
                node = %node_name(self.id),
                from = ?env.from,
                epoch = env.epoch,
                "{}",
                crate::logging::clip(&text, 300)
            );
        }
        // A heartbeat's acknowledgement gives no partition work.
        self.sweep |= !matches!(env.message, Message::HeartbeatAck { .. });
        self.now = now;
        if let Err(why) = self.check(&env) {
            self.count_rejected(&why);
            return;
        }
        let from = env.from;
        match env.message {
            Message::HeartbeatAck { sent_at, view } => {
                if let Some(v) = view {
                    self.adopt(*v);
                }
                if self
                    .stats_sent
                    .as_ref()
                    .is_some_and(|(_, at)| sent_at >= *at)
                {
                    self.stats_acked = true;
                }
                if self.last_ack.is_none_or(|a| a.sent_at < sent_at) {
                    self.last_ack = Some(AckTiming {
                        sent_at,
                        received_at: now,
                    });
                }
                // The lease runs from the send time of a heartbeat this
                // node really sent (checked above), and holds only for the
                // view it was granted in. An acknowledgement that arrives
                // after the lease it would grant has run out grants
                // nothing, and the heartbeats do not report it as a lease:
                // the leader must see that this node cannot hold one.
                if env.epoch == self.view.epoch && env.epoch > 0 && sent_at + self.cfg.lease > now {
                    self.heartbeats_sent.retain(|t| *t > sent_at);
                    self.lease_until = self.lease_until.max(sent_at + self.cfg.lease);
                }
            }
            Message::ViewUpdate { view } => self.adopt(*view),
            Message::Forward { request, op } => {
                let Address::Node(coordinator) = from else {
                    return;
                };
                if env.epoch < self.view.epoch {
                    self.reject_stale(coordinator);
                    let result = Err(Error::StaleEpoch {
                        current: self.view.epoch,
                    });
                    self.send(from, Message::ForwardResponse { request, result });
                    return;
                }
                let p = self.view.partition_of(op.key());
                let waiter = Waiter::Forward {
                    node: coordinator,
                    request,
                };
                if let Some(result) = self.serve(p, op, waiter) {
                    self.send(from, Message::ForwardResponse { request, result });
                }
            }
            Message::ForwardResponse { request, result } => {
                let expected = self
                    .pending
                    .get(&request)
                    .is_some_and(|p| matches!(p.state, PendingState::Forwarded { to, .. } if Address::Node(to) == from));
                if expected {
                    self.on_forward_result(request, result);
                }
            }
            Message::Replicate {
                partition,
                stream,
                seq,
                entry,
            } => {
                let Address::Node(primary) = from else { return };
                self.on_replicate(env.epoch, primary, partition, stream, seq, entry);
            }
            Message::ReplicateAck {
                partition,
                stream,
                seq,
                need,
            } => {
                let Address::Node(secondary) = from else {
                    return;
                };
                let mut msgs = Vec::new();
                self.active.insert(partition);
                let done = match self.leaders.get_mut(&partition) {
                    Some(l) => {
                        l.on_ack(secondary, stream, (seq, need), &self.store, now, &mut msgs)
                    }
                    None => Vec::new(),
                };
                self.flush(msgs);
                self.complete(done);
            }
            Message::Scan {
                request,
                partition,
                after,
                prefix,
                limit,
            } => self.on_scan_request(
                from,
                env.epoch,
                request,
                partition,
                after.as_deref(),
                prefix.as_deref(),
                limit,
            ),
            Message::ScanResponse {
                request,
                partition,
                result,
            } => self.on_scan_response(request, partition, result),
            // For the leader only.
            Message::Heartbeat { .. } | Message::CaughtUp { .. } | Message::Lagging { .. } => {}
        }
    }

    /// Checks an internal message before it touches any state: it is for
    /// this node, it comes from whoever may send that kind of message, and
    /// what it carries is something its sender could know. A view must
    /// pass [`View::validate`] and be no newer than its envelope says its
    /// sender is (only the leader makes views; a node passing one on holds
    /// it); a heartbeat ack must echo the send time of a heartbeat this
    /// node sent, so no ack can grant a lease from the future.
    pub(super) fn check(&self, env: &Envelope) -> Result<(), String> {
        if env.to != Address::Node(self.id) {
            return Err("an envelope for another node".into());
        }
        if env.from == Address::Node(self.id) {
            return Err("an envelope from this node itself".into());
        }
        let view = match &env.message {
            Message::HeartbeatAck { sent_at, view } => {
                if env.from != Address::Leader {
                    return Err("a heartbeat ack not from the leader".into());
                }
                if !self.heartbeats_sent.contains(sent_at) {
                    return Err(format!("an ack of a heartbeat never sent (at {sent_at})"));
                }
                view.as_deref()
            }
            Message::ViewUpdate { view } => Some(&**view),
            Message::Heartbeat { .. } | Message::CaughtUp { .. } | Message::Lagging { .. } => {
                return Err(format!("a {} sent to a node", env.message.name()));
            }
            _ if env.from == Address::Leader => {
                return Err(format!("a {} from the leader", env.message.name()));
            }
            Message::Scan { limit, .. } if *limit > crate::node::protocol::MAX_PAGE_LIMIT => {
                return Err(format!("a scan page of {limit} pairs"));
            }
            _ => None,
        };
        if let Some(view) = view {
            if view.epoch > env.epoch {
                return Err(format!(
                    "a view of epoch {} from a sender at epoch {}",
                    view.epoch, env.epoch
                ));
            }
            view.validate(self.partitions)?;
        }
        Ok(())
    }

    /// Tells a peer with an older epoch about the current view, ahead of the
    /// rejection, so it can retry at once.
    pub(super) fn reject_stale(&mut self, peer: NodeId) {
        let view = Box::new(self.view.clone());
        self.send(Address::Node(peer), Message::ViewUpdate { view });
    }

    pub(super) fn on_replicate(
        &mut self,
        epoch: crate::view::Epoch,
        primary: NodeId,
        p: PartitionId,
        stream: StreamId,
        seq: u64,
        entry: StreamEntry,
    ) {
        // Accept only the stream the view says this node should follow.
        let Some(info) = self.view.partitions.get(p as usize) else {
            return;
        };
        let expected = info.replica(self.id).map(|me| StreamId {
            term: info.term,
            incarnation: self.incarnation,
            since: me.since,
        });
        if info.primary() != Some(primary) || primary == self.id || Some(stream) != expected {
            // The primary's view is newer: this may be a stream that view
            // gives this node. Kept until this node adopts it.
            if epoch > self.view.epoch {
                self.early
                    .keep((epoch, primary, p, stream, seq, entry), self.now);
            }
            return;
        }
        let follower = self
            .followers
            .entry(p)
            .or_insert_with(|| Follower::new(stream));
        if follower.stream != stream {
            *follower = Follower::new(stream);
        }
        let acked = follower.on_entry(p, seq, entry, &mut self.store);
        let need = follower.need.clone();
        self.send(
            Address::Node(primary),
            Message::ReplicateAck {
                partition: p,
                stream,
                seq: acked,
                need,
            },
        );
    }

    /// Adopts a newer view: takes up and gives up primary and secondary
    /// roles, and drops the data of partitions it no longer holds.
    pub fn adopt(&mut self, view: View) {
        self.sweep = true;
        if view.epoch <= self.view.epoch {
            return;
        }
        self.view = view;
        let me = self.id;
        let live = self.view.is_live_incarnation(me, self.incarnation);
        tracing::debug!(
            node = %node_name(me),
            epoch = self.view.epoch,
            live,
            "adopted a view"
        );
        let mut done = Vec::new();
        // Leaders whose role ended.
        let ended: Vec<PartitionId> = self
            .leaders
            .iter()
            .filter(|(p, l)| {
                let info = &self.view.partitions[**p as usize];
                !live || info.primary() != Some(me) || info.term != l.term
            })
            .map(|(p, _)| *p)
            .collect();
        for p in ended {
            tracing::debug!(node = %node_name(me), partition = p, "no longer primary");
            let leader = self.leaders.remove(&p).expect("leader exists");
            done.extend(leader.abort("a newer view took the role away"));
        }
        let mut msgs = Vec::new();
        if live {
            for (p, info) in self.view.partitions.iter().enumerate() {
                let p = p as PartitionId;
                if info.primary() == Some(me) {
                    let leader = self.leaders.entry(p).or_insert_with(|| {
                        tracing::debug!(
                            node = %node_name(me),
                            partition = p,
                            term = info.term,
                            "primary now"
                        );
                        Leader::new(p, info.term, self.cfg.stream)
                            .with_budget(self.chunk_budget.clone())
                    });
                    done.extend(leader.reconcile(&self.view, &self.store, self.now, &mut msgs));
                }
            }
        }
        // A new view can change what every primary role has to do (which
        // replicas are in sync): the next tick looks at each.
        self.active.extend(self.leaders.keys());
        self.followers.retain(|p, _| {
            self.view
                .partitions
                .get(*p as usize)
                .is_some_and(|i| i.holds(me) && i.primary() != Some(me))
        });
        self.drop_unheld();
        self.flush(msgs);
        self.complete(done);
        for (epoch, primary, p, stream, seq, entry) in self.early.take_upto(self.view.epoch) {
            self.on_replicate(epoch, primary, p, stream, seq, entry);
        }
        // Forwards to a node the view now says is dead will get no answer.
        // A read goes elsewhere; a write may have been applied before the
        // node died, so its outcome is unknown, and the client hears so now
        // rather than at the deadline.
        let orphaned: Vec<(RequestId, bool)> = self
            .pending
            .iter()
            .filter_map(|(r, p)| match p.state {
                PendingState::Forwarded { to, .. }
                    if self
                        .view
                        .nodes
                        .get(&to)
                        .is_some_and(|n| n.state == NodeState::Dead) =>
                {
                    Some((*r, p.op.is_write()))
                }
                _ => None,
            })
            .collect();
        for (r, write) in orphaned {
            if write {
                let err = Error::Timeout(
                    "the primary died before answering; the write may or may not be applied".into(),
                );
                self.finish(r, Err(err));
            } else if let Some(p) = self.pending.get_mut(&r) {
                p.state = PendingState::Retry { at: self.now };
            }
        }
        // Requests waiting for a view can go now.
        let waiting: Vec<RequestId> = self
            .pending
            .iter()
            .filter(|(_, p)| matches!(p.state, PendingState::Retry { .. }))
            .map(|(r, _)| *r)
            .collect();
        for r in waiting {
            self.route(r);
        }
    }

    /// Drops the data of partitions this node holds no replica of, unless
    /// it reloaded them from disk moments ago ([`Node::keep_reloaded`]).
    pub(super) fn drop_unheld(&mut self) {
        if self.now < self.keep_reloaded_until {
            return;
        }
        let me = self.id;
        for p in self.store.partition_ids() {
            if !self
                .view
                .partitions
                .get(p as usize)
                .is_some_and(|i| i.holds(me))
            {
                self.store.drop_partition(p);
            }
        }
    }

    /// A durable node that reloaded its data keeps the partitions no view
    /// gives it until `until`: after a restart, the first views it adopts
    /// may not hold it yet (it was declared dead and its replicas removed),
    /// and the rebalancer gives them back moments later, when the reloaded
    /// data makes the catch-up copy only what it missed. Past `until`,
    /// whatever it still does not hold is dropped.
    pub fn keep_reloaded(&mut self, until: Time) {
        self.keep_reloaded_until = until;
    }

    /// A send failed before the message left (the peer is not connected):
    /// the request certainly was not delivered, so it can be retried.
    pub fn on_send_failed(&mut self, env: &Envelope) {
        match &env.message {
            Message::Forward { request, .. } => {
                if let Address::Node(n) = env.to {
                    self.retry_later(
                        *request,
                        Error::Unavailable(format!("{} is not reachable", node_name(n))),
                    );
                }
            }
            Message::Scan {
                request, partition, ..
            } => self.on_scan_send_failed(*request, *partition),
            Message::Replicate { partition, .. } => {
                if let (Address::Node(n), Some(l)) = (env.to, self.leaders.get_mut(partition)) {
                    l.send_failed(n, self.now);
                    self.active.insert(*partition);
                }
            }
            _ => {}
        }
    }
}
