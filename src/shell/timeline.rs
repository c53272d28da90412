//! The timeline as a story: a fault and its consequences in a few lines.
//!
//! One fault at 1024 partitions is hundreds of events: a promotion per
//! partition the node led, a copy started and finished per replica it held,
//! a hand-back per partition when it returns, a surplus replica removed per
//! copy made meanwhile. They interleave, so grouping only adjacent events
//! of one kind still printed hundreds of lines (`pause n3 2s` printed 378).
//!
//! So events come in two sorts. *Headlines* happen to a node or to the
//! cluster (suspected, declared dead, recovered, joined, stalled, balanced)
//! and each is a line of its own. *Consequences* happen to partitions
//! (promoted, handed over, copied, removed, dropped) and are tallied, by
//! kind, between one headline and the next; the tally reads as one line per
//! kind, with counts per node, keys copied and the slowest copy. The
//! `Balanced` headline says how long after the fault that started the
//! episode everything was back at its target.
//!
//! [`summary`] tells a whole timeline this way (`events`); [`Story`] is
//! the same, fed event by event, for the live notices; [`detail`] is every
//! event on its own line (`events --detail`, `events --partition P`).

use crate::cluster::leader::{Event, EventKind};
use crate::units::{count, group};
use crate::view::{node_name, NodeId, Time};
use std::collections::BTreeMap;

/// One line of the timeline.
#[derive(Clone, Debug, PartialEq)]
pub struct TimelineLine {
    /// When its first event happened, ms on the cluster clock.
    pub at: Time,
    /// The epoch of its first event.
    pub epoch: u64,
    /// What happened.
    pub text: String,
}

/// Every event on its own line.
pub fn detail(events: &[Event]) -> Vec<TimelineLine> {
    events
        .iter()
        .map(|e| TimelineLine {
            at: e.at,
            epoch: e.epoch,
            text: e.kind.to_string(),
        })
        .collect()
}

/// The whole timeline as a story: headlines, and the consequences between
/// them summed up.
pub fn summary(events: &[Event]) -> Vec<TimelineLine> {
    let mut story = Story::default();
    let mut lines = Vec::new();
    for e in events {
        lines.extend(story.push(e));
    }
    lines.extend(story.flush());
    lines
}

/// What a partition-level event is tallied under.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
enum Kind {
    Promoted(NodeId),
    LeaseFailover(NodeId),
    Unavailable,
    DataLost,
    Resumed,
    Dropped,
    Added(String),
    CaughtUp,
    Handoff,
    Removed,
}

/// A tally of one kind of consequence.
#[derive(Clone, Debug)]
struct Tally {
    at: Time,
    epoch: u64,
    /// The first event's own text, used when it is the only one.
    first: String,
    n: usize,
    per_node: BTreeMap<NodeId, usize>,
    keys: u64,
    slowest: Time,
}

/// The timeline told as it happens: [`Story::push`] each event, and
/// [`Story::flush`] when a pause in the events makes the tally worth
/// printing.
#[derive(Clone, Debug, Default)]
pub struct Story {
    pending: Vec<(Kind, Tally)>,
    /// When the episode started, and what started it: the first fault
    /// since the cluster was last at its target.
    episode: Option<(Time, String)>,
}

impl Story {
    /// Takes one event; returns the lines it completes (a headline, after
    /// the tally it ends).
    pub fn push(&mut self, e: &Event) -> Vec<TimelineLine> {
        if let Some((kind, node)) = consequence(&e.kind) {
            let tally = match self.pending.iter_mut().find(|(k, _)| *k == kind) {
                Some((_, t)) => t,
                None => {
                    self.pending.push((
                        kind,
                        Tally {
                            at: e.at,
                            epoch: e.epoch,
                            first: e.kind.to_string(),
                            n: 0,
                            per_node: BTreeMap::new(),
                            keys: 0,
                            slowest: 0,
                        },
                    ));
                    &mut self.pending.last_mut().expect("just pushed").1
                }
            };
            tally.n += 1;
            *tally.per_node.entry(node).or_default() += 1;
            if let EventKind::CaughtUp { keys, took_ms, .. } = &e.kind {
                tally.keys += keys;
                tally.slowest = tally.slowest.max(*took_ms);
            }
            return Vec::new();
        }
        let mut lines = self.flush();
        let mut text = e.kind.to_string();
        match (&e.kind, &self.episode) {
            (EventKind::Balanced, Some((at, what))) => {
                text = format!(
                    "all done: every partition is at its target, {:.2} s after {what}",
                    e.at.saturating_sub(*at) as f64 / 1000.0
                );
                self.episode = None;
            }
            (EventKind::Balanced, None) => {}
            (_, None) => self.episode = cause(&e.kind).map(|c| (e.at, c)),
            (_, Some(_)) => {}
        }
        lines.push(TimelineLine {
            at: e.at,
            epoch: e.epoch,
            text,
        });
        lines
    }

    /// True if consequences wait to be told.
    pub fn is_pending(&self) -> bool {
        !self.pending.is_empty()
    }

    /// Tells the consequences tallied so far, one line per kind.
    pub fn flush(&mut self) -> Vec<TimelineLine> {
        let mut pending = std::mem::take(&mut self.pending);
        pending.sort_by(|a, b| a.0.cmp(&b.0));
        pending
            .into_iter()
            .map(|(kind, t)| TimelineLine {
                at: t.at,
                epoch: t.epoch,
                text: if t.n == 1 {
                    t.first.clone()
                } else {
                    tell(&kind, &t)
                },
            })
            .collect()
    }
}

/// The kind a partition-level event is tallied under, and the node it
/// counts for; None for a headline.
fn consequence(kind: &EventKind) -> Option<(Kind, NodeId)> {
    use EventKind::*;
    Some(match kind {
        Promoted { from, to, .. } => (Kind::Promoted(*from), *to),
        LeaseFailover { from, to, .. } => (Kind::LeaseFailover(*from), *to),
        Handoff { to, .. } => (Kind::Handoff, *to),
        Unavailable { .. } => (Kind::Unavailable, 0),
        DataLost { .. } => (Kind::DataLost, 0),
        Resumed { node, .. } => (Kind::Resumed, *node),
        ReplicaAdded { node, reason, .. } => (Kind::Added(reason.clone()), *node),
        CaughtUp { node, .. } => (Kind::CaughtUp, *node),
        ReplicaRemoved { node, .. } => (Kind::Removed, *node),
        ReplicaDropped { node, .. } => (Kind::Dropped, *node),
        _ => return None,
    })
}

/// What starts an episode, as the `all done` line names it.
fn cause(kind: &EventKind) -> Option<String> {
    use EventKind::*;
    Some(match kind {
        Suspected { node, .. } => format!("{} was suspected", node_name(*node)),
        Dead { node, .. } => format!("{} was declared dead", node_name(*node)),
        LeaseLost { node, .. } => format!("{} lost its lease", node_name(*node)),
        Joined { node } => format!("{} joined", node_name(*node)),
        Restarted { node, keys: 0 } => format!("{} restarted", node_name(*node)),
        Restarted { node, keys } => format!(
            "{} restarted with {} from disk",
            node_name(*node),
            crate::units::count(*keys, "key")
        ),
        Recovered { node } => format!("{} recovered", node_name(*node)),
        Left { node } => format!("{} left", node_name(*node)),
        Removed { node } => format!("{} was removed", node_name(*node)),
        Stalled { .. } => "the view leader stalled".to_string(),
        _ => return None,
    })
}

/// `(n1 82, n3 82, n4 87)`: the count per node, at most six nodes named.
fn per_node(t: &Tally) -> String {
    const SHOWN: usize = 6;
    let mut parts: Vec<String> = t
        .per_node
        .iter()
        .take(SHOWN)
        .map(|(n, c)| format!("{} {}", node_name(*n), group(*c as u64)))
        .collect();
    if t.per_node.len() > SHOWN {
        parts.push(format!("{} more", t.per_node.len() - SHOWN));
    }
    format!("({})", parts.join(", "))
}

/// A tally of more than one event, as one line.
fn tell(kind: &Kind, t: &Tally) -> String {
    let nodes = per_node(t);
    let n = t.n;
    match kind {
        Kind::Promoted(from) => format!(
            "{} promoted new primaries after {} died {nodes}",
            count(n, "partition"),
            node_name(*from)
        ),
        Kind::LeaseFailover(from) => format!(
            "{} promoted new primaries: {} cannot hold a lease {nodes}",
            count(n, "partition"),
            node_name(*from)
        ),
        Kind::Unavailable => format!(
            "{} unavailable: their primary died with no in-sync replica",
            count(n, "partition")
        ),
        Kind::DataLost => format!(
            "{} lost every copy and restart empty",
            count(n, "partition")
        ),
        Kind::Resumed => format!(
            "{} go on from the only copy, reloaded from disk {nodes}",
            count(n, "partition")
        ),
        Kind::Dropped => format!(
            "{} dropped: they stopped acknowledging writes {nodes}",
            count(n, "replica")
        ),
        Kind::Added(reason) => format!("{reason}: {} to fill {nodes}", count(n, "replica")),
        Kind::CaughtUp => format!(
            "{} in sync, {} copied, slowest in {} ms {nodes}",
            count(n, "replica"),
            count(t.keys, "key"),
            t.slowest
        ),
        Kind::Handoff => format!("{} handed over {nodes}", count(n, "primary")),
        Kind::Removed => format!("{} removed {nodes}", count(n, "surplus replica")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(at: Time, kind: EventKind) -> Event {
        Event { at, epoch: 1, kind }
    }

    /// A pause at many partitions: hundreds of events, a handful of lines.
    #[test]
    fn a_fault_reads_as_a_few_lines() {
        let mut events = vec![
            at(
                0,
                EventKind::Suspected {
                    node: 3,
                    silent_ms: 250,
                },
            ),
            at(
                350,
                EventKind::Dead {
                    node: 3,
                    silent_ms: 600,
                },
            ),
        ];
        for p in 0..200 {
            events.push(at(
                350,
                EventKind::Promoted {
                    partition: p,
                    from: 3,
                    to: 1 + p % 2,
                    term: 2,
                },
            ));
            events.push(at(
                351,
                EventKind::ReplicaAdded {
                    partition: p,
                    node: 4,
                    reason: "re-replication".into(),
                },
            ));
            events.push(at(
                400,
                EventKind::CaughtUp {
                    partition: p,
                    node: 4,
                    keys: 10,
                    took_ms: p as u64,
                },
            ));
        }
        events.push(at(2000, EventKind::Recovered { node: 3 }));
        for p in 0..200 {
            events.push(at(
                2010,
                EventKind::Handoff {
                    partition: p,
                    from: 1,
                    to: 3,
                },
            ));
            events.push(at(
                2010,
                EventKind::ReplicaRemoved {
                    partition: p,
                    node: 4,
                },
            ));
        }
        events.push(at(2500, EventKind::Balanced));
        let lines: Vec<String> = summary(&events).into_iter().map(|l| l.text).collect();
        assert_eq!(
            lines,
            vec![
                "n3 suspected: silent for 250 ms",
                "n3 declared dead: silent for 600 ms",
                "200 partitions promoted new primaries after n3 died (n1 100, n2 100)",
                "re-replication: 200 replicas to fill (n4 200)",
                "200 replicas in sync, 2,000 keys copied, slowest in 199 ms (n4 200)",
                "n3 recovered with its data",
                "200 primaries handed over (n3 200)",
                "200 surplus replicas removed (n4 200)",
                "all done: every partition is at its target, 2.50 s after n3 was suspected",
            ]
        );
        assert_eq!(detail(&events).len(), events.len());
    }

    #[test]
    fn one_event_keeps_its_own_words() {
        let events = vec![at(
            5,
            EventKind::CaughtUp {
                partition: 7,
                node: 2,
                keys: 1,
                took_ms: 3,
            },
        )];
        let lines = summary(&events);
        assert_eq!(
            lines[0].text,
            "partition 7: n2 in sync, 1 key copied in 3 ms"
        );
    }
}
