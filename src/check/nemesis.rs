//! The nemesis: a seeded schedule of faults for `check`.
//!
//! Faults come one at a time: inject, hold for a while, heal, rest, next.
//! One at a time keeps the cluster within what R ≥ 2 promises to survive
//! (one node down, or one node cut off), so a violation is a real bug, not
//! an overreach of the schedule. The same seed gives the same schedule of
//! choices (which fault, which node, how long); wall-clock timing varies.
//!
//! Link faults strike between two nodes or between a node and the view
//! leader. On a link to the leader, a delay of up to four times the lease
//! (in one direction or both), or the loss of every acknowledgement (one
//! way: heartbeats still arrive), leaves a node that is never silent but
//! cannot hold a lease; it is held for one to four failure timeouts, so
//! the leader must fail the node over.

use crate::cluster::Cluster;
use crate::error::{Error, Result};
use crate::node::faults::LinkFault;
use crate::node::message::Address;
use crate::view::{node_name, NodeId};
use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};
use serde::Serialize;
use std::time::Duration;

/// The kinds of fault.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum FaultKind {
    /// Kill a node, then restart it.
    Kill,
    /// Pause a node past the failure timeout.
    Pause,
    /// Cut a node (or half the cluster) off.
    Partition,
    /// Drop or delay messages on one link, between two nodes or between a
    /// node and the view leader.
    Link,
}

impl FaultKind {
    /// Every kind.
    pub const ALL: [FaultKind; 4] = [
        FaultKind::Kill,
        FaultKind::Pause,
        FaultKind::Partition,
        FaultKind::Link,
    ];
}

impl std::str::FromStr for FaultKind {
    type Err = Error;

    fn from_str(s: &str) -> Result<Self> {
        match s {
            "kill" => Ok(FaultKind::Kill),
            "pause" => Ok(FaultKind::Pause),
            "partition" => Ok(FaultKind::Partition),
            "link" => Ok(FaultKind::Link),
            _ => Err(Error::BadInput(format!(
                "unknown fault {s:?}; faults: kill, pause, partition, link"
            ))),
        }
    }
}

/// One fault as it happened.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct FaultRecord {
    /// Milliseconds into the run when it started.
    pub at_ms: u64,
    /// How long it was held, ms.
    pub held_ms: u64,
    /// The kind.
    pub kind: FaultKind,
    /// What exactly.
    pub what: String,
}

/// A fault just injected.
#[derive(Debug)]
pub struct Injected {
    /// The kind.
    pub kind: FaultKind,
    /// What to heal.
    pub active: Active,
    /// What exactly, for the report.
    pub what: String,
    /// How long to hold it.
    pub hold: Duration,
}

/// A fault in force, to heal.
#[derive(Debug)]
pub enum Active {
    /// A killed node, to restart.
    Killed(NodeId),
    /// A paused node; it wakes by itself.
    Paused,
    /// Network rules, to clear.
    Network,
}

/// The seeded chooser.
#[derive(Debug)]
pub struct Nemesis {
    rng: SmallRng,
    kinds: Vec<FaultKind>,
}

impl Nemesis {
    /// A nemesis choosing among `kinds`, seeded.
    pub fn new(seed: u64, kinds: Vec<FaultKind>) -> Self {
        Nemesis {
            rng: SmallRng::seed_from_u64(seed),
            kinds,
        }
    }

    /// How long to rest before the next fault.
    pub fn rest(&mut self) -> Duration {
        Duration::from_millis(self.rng.gen_range(300..800))
    }

    /// How long to hold a fault: past the failure timeout half the time.
    pub fn hold(&mut self, failure_timeout: u64) -> Duration {
        Duration::from_millis(
            self.rng
                .gen_range(failure_timeout / 2..failure_timeout * 2 + 1),
        )
    }

    /// Injects the next fault, returning what to heal, a description and
    /// how long to hold it.
    pub fn inject(&mut self, cluster: &mut Cluster) -> Result<Option<Injected>> {
        if self.kinds.is_empty() {
            return Ok(None);
        }
        let failure_timeout = cluster.config().failure_timeout;
        let mut hold = self.hold(failure_timeout);
        let kind = self.kinds[self.rng.gen_range(0..self.kinds.len())];
        let nodes = cluster.node_ids();
        if nodes.len() < 2 {
            return Ok(None);
        }
        let victim = nodes[self.rng.gen_range(0..nodes.len())];
        let (kind, active, what) = match kind {
            FaultKind::Kill => {
                cluster.kill(victim)?;
                (
                    kind,
                    Active::Killed(victim),
                    format!("kill {}", node_name(victim)),
                )
            }
            FaultKind::Pause => {
                cluster.pause(victim, hold)?;
                (
                    kind,
                    Active::Paused,
                    format!("pause {} {} ms", node_name(victim), hold.as_millis()),
                )
            }
            FaultKind::Partition => {
                if self.rng.gen_bool(0.5) || nodes.len() < 4 {
                    cluster
                        .faults()
                        .partition(vec![[Address::Node(victim)].into()]);
                    (
                        kind,
                        Active::Network,
                        format!("partition {} | everyone else", node_name(victim)),
                    )
                } else {
                    let mut shuffled = nodes.clone();
                    for i in (1..shuffled.len()).rev() {
                        shuffled.swap(i, self.rng.gen_range(0..=i));
                    }
                    // The minority side: fewer than half, so the leader's
                    // side keeps a majority of the replicas.
                    let minority: Vec<NodeId> = shuffled[..(nodes.len() - 1) / 2].to_vec();
                    cluster
                        .faults()
                        .partition(vec![minority.iter().map(|n| Address::Node(*n)).collect()]);
                    let names: Vec<String> = minority.iter().map(|n| node_name(*n)).collect();
                    (
                        kind,
                        Active::Network,
                        format!("partition {} | everyone else", names.join(",")),
                    )
                }
            }
            FaultKind::Link if self.rng.gen_bool(0.5) => {
                // Long enough for the leader to notice the node holds no
                // lease and fail it over: past the failure timeout twice.
                hold = Duration::from_millis(
                    self.rng.gen_range(failure_timeout..=failure_timeout * 4),
                );
                let lease = cluster.config().node.lease;
                let (a, leader) = (Address::Node(victim), Address::Leader);
                let what = match self.rng.gen_range(0..4) {
                    0 => {
                        cluster.faults().link(
                            leader,
                            a,
                            true,
                            LinkFault {
                                drop: 1.0,
                                delay_ms: 0,
                            },
                        );
                        format!("link leader -> {} drop 100%", node_name(victim))
                    }
                    way => {
                        let delay_ms = self.rng.gen_range(lease / 4..=lease * 4);
                        let fault = LinkFault {
                            drop: 0.0,
                            delay_ms,
                        };
                        match way {
                            1 => cluster.faults().link(a, leader, true, fault),
                            2 => cluster.faults().link(leader, a, true, fault),
                            _ => cluster.faults().link(a, leader, false, fault),
                        }
                        // As the shell's `link` writes it.
                        let how = match way {
                            1 => format!("{} -> leader", node_name(victim)),
                            2 => format!("leader -> {}", node_name(victim)),
                            _ => format!("{} leader", node_name(victim)),
                        };
                        format!("link {how} delay {delay_ms}ms")
                    }
                };
                (kind, Active::Network, what)
            }
            FaultKind::Link => {
                let mut other = nodes[self.rng.gen_range(0..nodes.len())];
                if other == victim {
                    other = *nodes.iter().find(|n| **n != victim).expect("two nodes");
                }
                let (a, b) = (Address::Node(victim), Address::Node(other));
                let what = if self.rng.gen_bool(0.5) {
                    let drop = self.rng.gen_range(20..=60) as f64 / 100.0;
                    cluster
                        .faults()
                        .link(a, b, false, LinkFault { drop, delay_ms: 0 });
                    format!(
                        "link {} {} drop {:.0}%",
                        node_name(victim),
                        node_name(other),
                        drop * 100.0
                    )
                } else {
                    let delay_ms = self.rng.gen_range(10..=80);
                    cluster.faults().link(
                        a,
                        b,
                        false,
                        LinkFault {
                            drop: 0.0,
                            delay_ms,
                        },
                    );
                    format!(
                        "link {} {} delay {delay_ms}ms",
                        node_name(victim),
                        node_name(other)
                    )
                };
                (kind, Active::Network, what)
            }
        };
        if matches!(active, Active::Network) {
            // Attached to node processes, the rules are sent to each.
            cluster.change_faults(|_| ())?;
        }
        Ok(Some(Injected {
            kind,
            active,
            what,
            hold,
        }))
    }

    /// Heals a fault.
    pub fn heal(cluster: &mut Cluster, active: Active) -> Result<()> {
        match active {
            Active::Killed(n) => cluster.restart(n),
            Active::Paused => Ok(()),
            Active::Network => cluster.change_faults(|f| f.heal()),
        }
    }
}
