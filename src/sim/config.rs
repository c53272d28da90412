//! What a simulation runs: the cluster's shape, the workload, the network,
//! which faults the schedule may draw, and deliberate bugs for proving that
//! the checks can fail.

use crate::node::core::NodeConfig;
use crate::node::replication::StreamConfig;
use crate::view::{NodeId, Time};

/// How hard the fault schedule hits the cluster.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FaultMode {
    /// No faults: the network still delays, reorders and loses messages at
    /// the background rate.
    None,
    /// Faults the cluster promises to survive without losing an
    /// acknowledged write: at most `replicas - 1` nodes crashed, paused or
    /// cut off from the view leader at once, and a node is crashed only
    /// while every partition it holds has another in-sync replica that is
    /// up. Every check applies, availability after healing included.
    Tolerated,
    /// Anything goes: many nodes down at once, long leader pauses, heavy
    /// loss. Partitions whose every in-sync copy was lost are expected to
    /// lose writes and are left out of the history checks; everything else
    /// must stay linearizable. Availability is not checked.
    Aggressive,
}

/// A deliberate bug, so a test can show that the checks catch one.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Sabotage {
    /// Every so often, wipe a partition on one of its secondaries behind
    /// replication's back, as a disk that silently lost a file would. The
    /// view still counts the replica in sync, so a later failover to it
    /// loses acknowledged writes.
    WipeSecondary,
    /// This node's clock runs at half speed, so its leases last twice as
    /// long in real time as it thinks: longer than the leader's failure
    /// timeout, which the lease design rules out. It can go on serving
    /// reads after the leader has promoted someone else.
    SlowClock(NodeId),
    /// Primaries acknowledge writes without replicating them (the node's
    /// test-only `skip_replication` switch), so a failover loses them.
    SkipReplication,
    /// Heartbeats claim a fresh lease whatever the node holds, as they did
    /// before nodes reported their leases: the leader cannot see a node
    /// whose acknowledgements come too late, and calls the cluster healthy
    /// while that node's partitions fail every request.
    HideLeaseLoss,
    /// Primaries serve reads of keys an `MPUT` holds (the node's test-only
    /// `read_through_intents` switch), so a reader can see one key of an
    /// `MPUT` applied and another not yet.
    ReadThroughIntents,
}

/// Everything that shapes one simulated run. Times are milliseconds of
/// virtual time unless a name says otherwise.
#[derive(Clone, Debug)]
pub struct SimConfig {
    /// Nodes, with ids `1..=nodes`.
    pub nodes: usize,
    /// Replicas per partition.
    pub replicas: usize,
    /// Partitions.
    pub partitions: u32,
    /// Concurrent clients, each with one request in flight at a time.
    pub clients: usize,
    /// Hot keys the clients share.
    pub keys: usize,
    /// How long the clients run and faults are injected.
    pub duration: Time,
    /// Background message loss, in percent.
    pub loss_pct: f64,
    /// Largest one-way message delay, in microseconds. Each message draws
    /// its own delay, so messages overtake each other.
    pub max_delay_us: u64,
    /// Mean gap between two faults.
    pub fault_gap: Time,
    /// Which faults may be drawn.
    pub faults: FaultMode,
    /// A deliberate bug, for testing the checks.
    pub sabotage: Option<Sabotage>,
    /// Node tunables.
    pub node: NodeConfig,
    /// View leader: silence before a node is suspected.
    pub suspect_timeout: Time,
    /// View leader: silence before a node is declared dead.
    pub failure_timeout: Time,
    /// After healing, how long the cluster may take to become healthy.
    pub recovery_limit: Time,
}

impl Default for SimConfig {
    fn default() -> Self {
        SimConfig {
            nodes: 4,
            replicas: 2,
            partitions: 8,
            clients: 4,
            keys: 6,
            duration: 8_000,
            loss_pct: 1.0,
            max_delay_us: 5_000,
            fault_gap: 700,
            faults: FaultMode::Tolerated,
            sabotage: None,
            // One key per resync chunk: partitions hold only a few keys, and
            // a resync of several chunks is where handoffs get interesting.
            node: NodeConfig {
                stream: StreamConfig {
                    chunk_keys: 1,
                    chunk_window: 2,
                    retransmit: 200,
                    ..NodeConfig::default().stream
                },
                ..NodeConfig::default()
            },
            suspect_timeout: 250,
            failure_timeout: 600,
            recovery_limit: 30_000,
        }
    }
}

impl SimConfig {
    /// The aggressive variant of this configuration: more faults, more
    /// often, with no survival budget.
    pub fn aggressive(mut self) -> Self {
        self.faults = FaultMode::Aggressive;
        self.fault_gap = self.fault_gap.min(400);
        self
    }

    /// Checks that the configuration can run.
    pub fn validate(&self) -> Result<(), String> {
        if self.nodes == 0 || self.nodes > 64 {
            return Err(format!("nodes must be 1 to 64, got {}", self.nodes));
        }
        if self.replicas == 0 || self.replicas > self.nodes {
            return Err(format!(
                "replicas must be 1 to nodes ({}), got {}",
                self.nodes, self.replicas
            ));
        }
        if self.partitions == 0 {
            return Err("partitions must be at least 1".into());
        }
        if self.keys == 0 {
            return Err("keys must be at least 1".into());
        }
        if !(0.0..100.0).contains(&self.loss_pct) {
            return Err(format!(
                "loss must be at least 0 and under 100 percent, got {}",
                self.loss_pct
            ));
        }
        if let Some(Sabotage::SlowClock(n)) = self.sabotage {
            if n == 0 || n as usize > self.nodes {
                return Err(format!("the slow clock's node n{n} does not exist"));
            }
        }
        Ok(())
    }
}
