//! What a simulated run reports: counts of what happened, and every
//! violation the checks found. Two runs of the same seed and configuration
//! produce equal reports, history included.

use crate::check::history::{History, OpKind, Outcome};
use crate::check::linearizability;
use crate::view::{node_name, Epoch, NodeId, PartitionId, Time};
use std::fmt;

/// Client operations by outcome.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct OpCounts {
    /// Acknowledged.
    pub ok: usize,
    /// Certainly not applied.
    pub failed: usize,
    /// May or may not have been applied.
    pub unknown: usize,
    /// Reads, whatever their outcome.
    pub reads: usize,
    /// Writes and deletes, whatever their outcome.
    pub writes: usize,
}

impl OpCounts {
    /// Counts a history.
    pub fn of(history: &History) -> Self {
        let mut c = OpCounts::default();
        for op in history.iter() {
            match op.outcome {
                Outcome::Ok => c.ok += 1,
                Outcome::Failed => c.failed += 1,
                Outcome::Unknown => c.unknown += 1,
            }
            match op.kind {
                OpKind::Read { .. } => c.reads += 1,
                _ => c.writes += 1,
            }
        }
        c
    }

    /// Every operation.
    pub fn total(&self) -> usize {
        self.ok + self.failed + self.unknown
    }
}

/// Faults injected, by kind.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct FaultCounts {
    /// Nodes crashed (memory lost).
    pub crashes: usize,
    /// Crashed nodes started again as new incarnations.
    pub restarts: usize,
    /// Nodes frozen for a while.
    pub pauses: usize,
    /// Times the view leader was frozen.
    pub leader_pauses: usize,
    /// Nodes cut off from everyone.
    pub isolations: usize,
    /// The cluster split in two groups.
    pub splits: usize,
    /// One-way cuts of one link.
    pub one_way_cuts: usize,
    /// Links between a node and the leader made slow (up to several times
    /// the lease) or cut one way (acknowledgements lost, heartbeats not).
    pub leader_links: usize,
    /// Periods of heavy message loss.
    pub loss_bursts: usize,
    /// Periods of long delays (and so heavy reordering).
    pub delay_bursts: usize,
    /// Nodes decommissioned and replaced by a new node.
    pub replacements: usize,
    /// Faults drawn but not injected because the survival budget did not
    /// allow them.
    pub skipped: usize,
    /// Deliberate bugs that struck.
    pub sabotage: usize,
}

impl FaultCounts {
    /// Every fault injected.
    pub fn total(&self) -> usize {
        self.crashes
            + self.pauses
            + self.leader_pauses
            + self.isolations
            + self.splits
            + self.one_way_cuts
            + self.leader_links
            + self.loss_bursts
            + self.delay_bursts
            + self.replacements
    }
}

/// What happened to the messages between nodes and the leader.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct MessageCounts {
    /// Handed to the network.
    pub sent: u64,
    /// Reached a running receiver.
    pub delivered: u64,
    /// Lost at random.
    pub lost: u64,
    /// Dropped by a cut.
    pub cut: u64,
    /// Sent to, or arrived at, a crashed node.
    pub undeliverable: u64,
}

/// A broken guarantee.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SimViolation {
    /// A key's history is not linearizable.
    NotLinearizable(linearizability::Violation),
    /// A key's final value is older than an acknowledged write: the write
    /// was lost.
    LostWrite {
        /// The key.
        key: String,
        /// What was read and which write it should have reflected.
        detail: String,
    },
    /// After healing and quiescing, an in-sync replica's data differs from
    /// its primary's.
    Diverged {
        /// The partition.
        partition: PartitionId,
        /// The primary.
        primary: NodeId,
        /// The replica.
        replica: NodeId,
        /// Key counts on both.
        detail: String,
    },
    /// A node could serve reads of a partition after its lease ran out, by
    /// the simulator's clock: the lease runs from the real send time of a
    /// heartbeat the leader acknowledged.
    ExpiredLease {
        /// The partition.
        partition: PartitionId,
        /// The node.
        node: NodeId,
        /// When (virtual ms).
        at: Time,
    },
    /// The leader called the cluster healthy while a node it lists as the
    /// primary of some partition held no lease, for longer than failure
    /// detection can explain: those partitions failed every request.
    HealthyWithoutLease {
        /// The node.
        node: NodeId,
        /// Since when (virtual ms).
        since: Time,
        /// When it was found (virtual ms).
        at: Time,
    },
    /// Two nodes could serve reads of a partition at the same instant.
    TwoReadServers {
        /// The partition.
        partition: PartitionId,
        /// The nodes.
        nodes: Vec<NodeId>,
        /// When (virtual ms).
        at: Time,
    },
    /// After every fault healed, the cluster did not become healthy in
    /// time.
    NotRecovered {
        /// What was still wrong.
        detail: String,
    },
    /// After recovery, no read of a key succeeded.
    NoFinalRead {
        /// The key.
        key: String,
    },
    /// Two different entries went out under the same sequence number of
    /// the same replication stream: a stream id was reused, so a secondary
    /// can acknowledge entries it never applied.
    StreamReused {
        /// The partition.
        partition: PartitionId,
        /// The stream and sequence number.
        detail: String,
    },
    /// A snapshot read of an `MPUT` group saw part of an `MPUT`, or an
    /// `MPUT`'s intent was still holding a key after recovery.
    NotAtomic {
        /// What was seen.
        detail: String,
    },
    /// A reply did not fit its request.
    BadReply {
        /// What was wrong.
        detail: String,
    },
    /// The node or leader code panicked (a broken invariant).
    Panic {
        /// The panic message.
        message: String,
    },
}

impl fmt::Display for SimViolation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SimViolation::NotLinearizable(v) => write!(f, "not linearizable: {v}"),
            SimViolation::LostWrite { key, detail } => {
                write!(f, "lost write on key {key:?}: {detail}")
            }
            SimViolation::Diverged {
                partition,
                primary,
                replica,
                detail,
            } => write!(
                f,
                "partition {partition}: in-sync replica {} differs from primary {} ({detail})",
                node_name(*replica),
                node_name(*primary)
            ),
            SimViolation::TwoReadServers {
                partition,
                nodes,
                at,
            } => {
                let names: Vec<String> = nodes.iter().map(|n| node_name(*n)).collect();
                write!(
                    f,
                    "partition {partition}: {} could all serve reads at {at} ms",
                    names.join(" and ")
                )
            }
            SimViolation::ExpiredLease {
                partition,
                node,
                at,
            } => write!(
                f,
                "partition {partition}: {} could serve reads at {at} ms with its lease run out",
                node_name(*node)
            ),
            SimViolation::HealthyWithoutLease { node, since, at } => write!(
                f,
                "{} led partitions without a lease from {since} ms to {at} ms while the leader \
                 called the cluster healthy",
                node_name(*node)
            ),
            SimViolation::NotRecovered { detail } => {
                write!(f, "did not recover after healing: {detail}")
            }
            SimViolation::NoFinalRead { key } => {
                write!(f, "no final read of key {key:?} succeeded")
            }
            SimViolation::StreamReused { partition, detail } => {
                write!(
                    f,
                    "partition {partition}: replication stream reused: {detail}"
                )
            }
            SimViolation::NotAtomic { detail } => write!(f, "not atomic: {detail}"),
            SimViolation::BadReply { detail } => write!(f, "bad reply: {detail}"),
            SimViolation::Panic { message } => write!(f, "panic: {message}"),
        }
    }
}

/// The outcome of one simulated run.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct SimReport {
    /// The seed.
    pub seed: u64,
    /// Client operations by outcome, final reads included.
    pub ops: OpCounts,
    /// Faults injected.
    pub faults: FaultCounts,
    /// Messages.
    pub messages: MessageCounts,
    /// Events processed.
    pub events: u64,
    /// Leader events (failovers, re-replication, ...).
    pub leader_events: usize,
    /// Failovers among them.
    pub promotions: usize,
    /// Failovers of a primary that could not hold a lease.
    pub lease_failovers: usize,
    /// The view's epoch at the end.
    pub epoch: Epoch,
    /// Virtual time at the end, ms.
    pub end: Time,
    /// When the cluster was healthy again after healing, ms (`None`: never).
    pub recovered_at: Option<Time>,
    /// Partitions whose every in-sync copy was lost at some point (only
    /// aggressive faults do that). Their keys are checked only up to the
    /// loss.
    pub lost_partitions: Vec<PartitionId>,
    /// Keys the linearizability checker ran out of budget on.
    pub gave_up: Vec<String>,
    /// Snapshot reads of `MPUT` groups that finished (each checked for
    /// atomicity).
    pub snapshots: u64,
    /// `MPUT` decision records left in the primaries' stores once the run
    /// was quiet (`None`: it never recovered). Collected ones are gone;
    /// those left belong to coordinators that crashed.
    pub decisions_left: Option<usize>,
    /// Every violation found.
    pub violations: Vec<SimViolation>,
    /// The history of client operations.
    pub history: History,
}

impl SimReport {
    /// True if no check failed.
    pub fn passed(&self) -> bool {
        self.violations.is_empty()
    }
}

impl fmt::Display for SimReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let o = &self.ops;
        let x = &self.faults;
        let m = &self.messages;
        writeln!(
            f,
            "seed {}: {} ({} violations)",
            self.seed,
            if self.passed() { "passed" } else { "FAILED" },
            self.violations.len()
        )?;
        writeln!(
            f,
            "  ops: {} ({} reads, {} writes): {} ok, {} failed, {} unknown",
            o.total(),
            o.reads,
            o.writes,
            o.ok,
            o.failed,
            o.unknown
        )?;
        writeln!(
            f,
            "  faults: {} crashes, {} restarts, {} pauses, {} leader pauses, {} isolations, {} splits, \
             {} one-way cuts, {} slow or one-way leader links, {} loss bursts, {} delay bursts, \
             {} replacements ({} skipped by the budget, {} sabotage)",
            x.crashes,
            x.restarts,
            x.pauses,
            x.leader_pauses,
            x.isolations,
            x.splits,
            x.one_way_cuts,
            x.leader_links,
            x.loss_bursts,
            x.delay_bursts,
            x.replacements,
            x.skipped,
            x.sabotage
        )?;
        writeln!(
            f,
            "  messages: {} sent, {} delivered, {} lost, {} cut, {} undeliverable; {} events",
            m.sent, m.delivered, m.lost, m.cut, m.undeliverable, self.events
        )?;
        let recovered = match self.recovered_at {
            Some(t) => format!("healthy again at {t} ms"),
            None => "never healthy again".into(),
        };
        write!(
            f,
            "  cluster: epoch {}, {} leader events, {} promotions ({} for want of a lease), \
             {recovered}, ended at {} ms",
            self.epoch,
            self.leader_events,
            self.promotions + self.lease_failovers,
            self.lease_failovers,
            self.end
        )?;
        if !self.lost_partitions.is_empty() {
            write!(
                f,
                "\n  partitions that lost every in-sync copy (checked up to the loss): {:?}",
                self.lost_partitions
            )?;
        }
        if !self.gave_up.is_empty() {
            write!(f, "\n  checker gave up on keys: {:?}", self.gave_up)?;
        }
        for v in &self.violations {
            write!(f, "\n  VIOLATION: {v}")?;
        }
        Ok(())
    }
}
