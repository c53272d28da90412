//! A seeded, deterministic simulator for the whole cluster.
//!
//! The node ([`crate::node::Node`]) and the view leader
//! ([`crate::cluster::leader::ViewLeader`]) are state machines with no I/O
//! and no clock: they take inputs with the time and return outputs. The
//! ZeroMQ runtime is one way to run them; this module is another. It runs
//! one leader and N nodes in a single thread on a virtual clock, with a
//! simulated network between them, simulated clients in front of them, and
//! a random schedule of faults, all drawn from one seed. The same seed and
//! configuration always produce the same run, event for event, so a failure
//! found among thousands of seeds replays exactly, as often as needed, with
//! a trace of every message.
//!
//! # How a run goes
//!
//! 1. **Workload with faults** ([`SimConfig::duration`]). Clients send
//!    `GET_ONE`, `GET_ALL` (half of them walked in pages of one to three
//!    pairs), `PUT` and `DELETE` requests on a few hot keys to random
//!    nodes, one request at a time each, and record a history
//!    ([`workload`]). Meanwhile the fault schedule ([`faults`]) crashes,
//!    restarts, pauses and replaces nodes, pauses the leader, partitions the
//!    network and degrades it ([`network`]), and slows or cuts one way the
//!    links between nodes and the leader, up to several times the lease.
//! 2. **Healing.** Every fault ends; crashed nodes restart. The cluster must
//!    become healthy (every partition fully replicated and in place, every
//!    node on the newest view) within [`SimConfig::recovery_limit`].
//! 3. **Final reads.** One reader per key reads it until a read succeeds.
//! 4. **Quiet.** A second and a half with no client traffic, so every
//!    replication stream drains.
//! 5. **Checks** ([`verify`]): the history is linearizable per key, no
//!    acknowledged write was lost, and every in-sync replica holds its
//!    primary's data.
//!
//! Throughout the run, after every event, the world also checks invariants
//! that only a simulator can see ([`invariants`]): no two nodes could serve
//! reads of one partition at the same instant, none could serve them past
//! its lease by the simulator's clock, the leader does not call the cluster
//! healthy for long while a primary it lists holds no lease, and no
//! replication stream carries two different entries under one sequence
//! number.
//!
//! # Time, order and determinism
//!
//! The agenda ([`events`]) holds every delivery, tick, client action and
//! fault, keyed by (virtual microsecond, sequence number); the world
//! ([`world`]) pops them in order and feeds each to its state machine. Nodes
//! and the leader see milliseconds and tick every 5 ms, each at its own
//! phase. Each message draws its own delay, so messages overtake each other.
//! Nothing iterates a hash map in an order that matters, reads the host
//! clock or spawns a thread (the node and leader keep ordered maps for the
//! same reason), and all randomness comes from one `SmallRng` seeded from
//! the seed. `SmallRng` is not portable across `rand` versions or platforms,
//! so a seed replays on the same build, which is what debugging needs.
//!
//! # Faults the cluster must survive, and faults it need not
//!
//! In the default [`FaultMode::Tolerated`] the schedule keeps to what the
//! cluster promises to survive: at most `replicas - 1` nodes down at once
//! (crashed, paused, cut off from the leader or on a slow link to it, or
//! not heard from by it lately), and never a crash or decommission that would leave a partition
//! without an in-sync copy on a node that is up. Every check applies,
//! recovery after healing included. [`FaultMode::Aggressive`] drops the
//! budget. The world tracks, from ground truth, when a partition loses
//! every in-sync copy; its keys are checked only up to that moment, and
//! every other key must still be linearizable.
//!
//! # Proving the checks can fail
//!
//! [`Sabotage`] injects a deliberate bug: a secondary that silently loses a
//! partition, a node whose clock runs slow, primaries that acknowledge
//! writes they never replicated, or heartbeats that hide a lost lease from
//! the leader. The tests show that the checks catch each.
//!
//! # Running it
//!
//! `cargo test --test sim` runs several hundred seeds in a few configurations.
//! For thousands, and to replay one with its trace:
//!
//! ```text
//! cargo run --release --example simulate -- --seeds 10000
//! cargo run --release --example simulate -- --seeds 2000 --nodes 5 --replicas 3 --partitions 4 --keys 40 --clients 8
//! cargo run --release --example simulate -- --seeds 2000 --aggressive
//! cargo run --release --example simulate -- --seed 1234 --verbose
//! ```
//!
//! Or from code:
//!
//! ```
//! use kvsh::sim::{self, SimConfig};
//!
//! let cfg = SimConfig { duration: 2_000, ..SimConfig::default() };
//! let report = sim::run(42, &cfg);
//! assert!(report.passed(), "{report}");
//! assert_eq!(report, sim::run(42, &cfg), "a seed replays exactly");
//! ```

pub mod config;
pub mod events;
pub mod faults;
pub mod fuzz;
pub mod invariants;
pub mod network;
pub mod report;
pub mod trace;
pub mod verify;
pub mod workload;
pub mod world;

pub use config::{FaultMode, Sabotage, SimConfig};
pub use report::{FaultCounts, MessageCounts, OpCounts, SimReport, SimViolation};

use crate::check::history::History;
use network::Micros;
use std::panic::{catch_unwind, AssertUnwindSafe};
use world::World;

const MS: Micros = 1000;
/// Attempts each final reader makes, 50 ms apart.
const FINAL_READ_ATTEMPTS: u32 = 200;
/// How long replication gets to drain before replicas are compared.
const QUIET: Micros = 1500 * MS;

/// Runs one seed. The same seed and configuration always give the same
/// report.
pub fn run(seed: u64, cfg: &SimConfig) -> SimReport {
    run_inner(seed, cfg, None)
}

/// Runs one seed and passes every step of it to `trace`, one line at a
/// time: deliveries, losses, faults, client operations, leader events.
pub fn run_traced(seed: u64, cfg: &SimConfig, trace: &mut dyn FnMut(&str)) -> SimReport {
    run_inner(seed, cfg, Some(trace))
}

fn run_inner(seed: u64, cfg: &SimConfig, trace: Option<&mut dyn FnMut(&str)>) -> SimReport {
    if let Err(e) = cfg.validate() {
        let message = format!("bad configuration: {e}");
        return SimReport {
            seed,
            violations: vec![SimViolation::Panic { message }],
            ..SimReport::default()
        };
    }
    // A panic in the node or leader is a broken invariant: report it as a
    // violation of this seed rather than tear down a run of thousands.
    match catch_unwind(AssertUnwindSafe(|| simulate(seed, cfg.clone(), trace))) {
        Ok(report) => report,
        Err(panic) => {
            let message = panic
                .downcast_ref::<String>()
                .cloned()
                .or_else(|| panic.downcast_ref::<&str>().map(|s| s.to_string()))
                .unwrap_or_else(|| "unknown panic".into());
            SimReport {
                seed,
                violations: vec![SimViolation::Panic { message }],
                ..SimReport::default()
            }
        }
    }
}

fn simulate(seed: u64, cfg: SimConfig, trace: Option<&mut dyn FnMut(&str)>) -> SimReport {
    let tolerated = cfg.faults != FaultMode::Aggressive;
    let mut w = World::new(seed, cfg, trace);
    w.start();

    // 1. Workload with faults.
    w.run_until(w.cfg.duration * MS);
    w.workload.stop();

    // 2. Heal, and wait for the cluster to be whole again.
    w.heal_everything();
    let limit = w.now + w.cfg.recovery_limit * MS;
    while w.now < limit && !w.recovered() {
        w.run_until(w.now + 50 * MS);
    }
    let recovered = w.recovered();
    if recovered {
        w.report.recovered_at = Some(w.now_ms());
        w.trace(|| "recovered: the cluster is healthy".into());
    } else if tolerated {
        let detail = w.recovery_detail();
        w.report
            .violations
            .push(SimViolation::NotRecovered { detail });
    }

    // 3. Final reads.
    for c in w.workload.start_final_reads(FINAL_READ_ATTEMPTS) {
        w.queue.push(w.now, events::Event::ClientWake(c));
    }
    let limit = w.now + (FINAL_READ_ATTEMPTS as u64 * 60 + 5000) * MS;
    while w.now < limit && !w.workload.final_reads_finished() {
        w.run_until(w.now + 50 * MS);
    }
    if tolerated {
        for key in w.workload.unread_keys() {
            w.report.violations.push(SimViolation::NoFinalRead { key });
        }
    }

    // 4. Quiet, then 5. checks.
    w.run_until(w.now + QUIET);
    // A node may start a write of its own in the quiet window (the cleanup
    // of an intent record) and lose it to the network: the replicas differ
    // until its retransmit, which is not a divergence. Such writes get a
    // bounded time to finish; one that never does is still checked.
    let limit = w.now + QUIET;
    while w.now < limit && w.writes_in_flight() {
        w.run_until(w.now + 50 * MS);
    }
    if recovered {
        let diverged = w.check_convergence();
        w.report.violations.extend(diverged);
    }
    // Once a partition has lost every in-sync copy (aggressive faults
    // only), an intent or a decision record may be gone with it, and an
    // MPUT can end up applied in part: snapshots are checked up to then.
    let first_loss = w.lost.values().min().copied().unwrap_or(Micros::MAX);
    for torn in crate::check::atomicity::check(w.workload.ops()) {
        if torn.at < first_loss {
            w.report.violations.push(SimViolation::NotAtomic {
                detail: torn.to_string(),
            });
        }
    }
    if recovered {
        let held = w.check_intents();
        w.report.violations.extend(held);
        // Decision records are collected by their coordinators' cleanups,
        // which wait out a lost message's timeout and then
        // `RECOVER_AFTER`: count what is left once they had 10 s more.
        let until = w.now + 10_000 * MS;
        while w.decision_records() > 0 && w.now < until {
            w.run_until(w.now + 500 * MS);
        }
        w.report.decisions_left = Some(w.decision_records());
    }
    w.report.snapshots = w.workload.snapshots();
    let now = w.now;
    let lost = w.lost.clone();
    let workload = std::mem::replace(&mut w.workload, workload::Workload::new(0, 1));
    let history = History::new(workload.into_history(now));
    // An MPUT's writes depend on its decision record too, which lives in
    // some other partition: after the first loss of a whole partition they
    // are checked no further, as snapshots are not.
    let checked = History::new(
        history
            .ops
            .iter()
            .filter_map(|op| match workload::is_group_key(&op.key) {
                true => verify::before_loss(op, first_loss),
                false => Some(op.clone()),
            })
            .collect(),
    );
    let (violations, gave_up) = verify::check_history(&checked, &lost, w.cfg.partitions);
    for v in &violations {
        w.trace(|| format!("VIOLATION: {v}"));
    }
    w.report.violations.extend(violations);
    w.report.gave_up = gave_up;
    w.report.lost_partitions = lost.into_keys().collect();
    w.report.ops = OpCounts::of(&history);
    w.report.history = history;
    w.report.epoch = w.leader.view().epoch;
    w.report.end = w.now_ms();
    w.report.clone()
}
