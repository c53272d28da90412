//! The simulator's agenda: everything that will happen, in time order.
//!
//! Deliveries, ticks, client actions and faults are all events on one
//! queue keyed by (time, sequence number). The sequence number breaks ties
//! in the order events were scheduled, so the run is a pure function of the
//! seed: nothing depends on hash order or on the host's clock.

use super::network::{CutId, Micros};
use crate::node::core::ClientId;
use crate::node::message::Envelope;
use crate::node::protocol::{Request, Response};
use crate::view::{Incarnation, NodeId};
use std::collections::BTreeMap;

/// Something that happens at an instant of virtual time.
#[derive(Debug)]
pub enum Event {
    /// A message reaches the leader, or the node incarnation it was sent
    /// to (a message for an incarnation that has since crashed is dropped:
    /// its connection died with it).
    Deliver {
        /// The message.
        env: Envelope,
        /// The receiving node's incarnation when it was sent (0 for the
        /// leader).
        incarnation: Incarnation,
    },
    /// A client request reaches a node.
    Request {
        /// The node.
        node: NodeId,
        /// Its incarnation when the client sent the request.
        incarnation: Incarnation,
        /// The request's client id, unique over the run.
        client: ClientId,
        /// The request.
        request: Request,
    },
    /// A node's reply reaches its client.
    Reply {
        /// The request's client id.
        client: ClientId,
        /// The reply.
        response: Response,
    },
    /// A node's periodic tick.
    TickNode(NodeId),
    /// The leader's periodic tick.
    TickLeader,
    /// A client is ready to send its next request.
    ClientWake(usize),
    /// A client stops waiting for a request's reply.
    ClientGiveUp(ClientId),
    /// Time to draw the next fault.
    Fault,
    /// A crashed node starts again, empty, as a new incarnation.
    Restart(NodeId),
    /// A paused node resumes.
    Resume(NodeId),
    /// The paused leader resumes.
    ResumeLeader,
    /// A cut heals.
    Heal(CutId),
    /// The loss or delay burst with this number ends (unless a later one
    /// replaced it).
    EndBurst(u64),
    /// A deliberate bug strikes (see [`super::Sabotage`]).
    Sabotage,
    /// The operator stops a node that has left the cluster.
    Stop(NodeId),
}

/// The agenda.
#[derive(Debug, Default)]
pub struct Queue {
    events: BTreeMap<(Micros, u64), Event>,
    next: u64,
}

impl Queue {
    /// Schedules an event.
    pub fn push(&mut self, at: Micros, event: Event) {
        self.events.insert((at, self.next), event);
        self.next += 1;
    }

    /// Takes the earliest event.
    pub fn pop(&mut self) -> Option<(Micros, Event)> {
        self.events.pop_first().map(|((at, _), e)| (at, e))
    }

    /// When the earliest event happens.
    pub fn peek_time(&self) -> Option<Micros> {
        self.events.first_key_value().map(|((at, _), _)| *at)
    }

    /// Events scheduled so far, for statistics.
    pub fn scheduled(&self) -> u64 {
        self.next
    }
}
