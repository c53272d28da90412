//! `check`: a workload under a seeded schedule of faults, then a verdict.
//!
//! 1. Client threads read, write, delete and compare-and-set a few hot
//!    keys, and `MPUT` and snapshot-read a few groups of keys, in a key
//!    namespace of the run's own ([`crate::check::workload`]), so that
//!    runs never see each other's writes or touch a user's keys.
//! 2. The nemesis injects one fault at a time, from the seed
//!    ([`crate::check::nemesis`]).
//! 3. At the end everything heals, the run waits until the cluster is
//!    healthy, and one last client reads every key.
//! 4. The history is checked for linearizability per key (a register
//!    model), which also catches any lost acknowledged write: the final
//!    reads must be explained by the acknowledged writes. An `MPUT` is a
//!    write per key there. Then every snapshot read is checked for
//!    atomicity ([`crate::check::atomicity`]): it saw all or none of each
//!    `MPUT` whose keys it covers.

use crate::check::atomicity;
use crate::check::history::{History, Outcome};
use crate::check::linearizability::{self, Violation};
use crate::check::nemesis::{FaultKind, FaultRecord, Injected, Nemesis};
use crate::check::workload::Workload;
use crate::cluster::event::Event;
use crate::cluster::Cluster;
use crate::error::Result;
use crate::view::Time;
use serde::Serialize;
use std::time::{Duration, Instant};

/// What to run.
#[derive(Clone, Debug)]
pub struct CheckConfig {
    /// How long to run the workload.
    pub duration: Duration,
    /// Client threads.
    pub clients: u64,
    /// Hot keys.
    pub keys: usize,
    /// Faults to choose from (none: a clean run).
    pub faults: Vec<FaultKind>,
    /// The seed of the workload and the fault schedule.
    pub seed: u64,
}

impl Default for CheckConfig {
    fn default() -> Self {
        CheckConfig {
            duration: Duration::from_secs(10),
            clients: 4,
            keys: 20,
            faults: FaultKind::ALL.to_vec(),
            seed: 1,
        }
    }
}

/// What happened, and the verdict.
#[derive(Clone, Debug, Serialize)]
pub struct CheckReport {
    /// The seed.
    pub seed: u64,
    /// The prefix of the run's keys (`check:<run>:`); they are deleted at
    /// the end.
    pub key_prefix: String,
    /// How long the workload ran, ms.
    pub duration_ms: u64,
    /// Operations.
    pub ops: usize,
    /// Operations that succeeded.
    pub ok: usize,
    /// Operations that certainly did not happen.
    pub failed: usize,
    /// Operations whose outcome is unknown.
    pub unknown: usize,
    /// Percentage of operations that succeeded.
    pub availability: f64,
    /// Faults injected.
    pub faults: Vec<FaultRecord>,
    /// Keys whose history is not linearizable, each with a small history
    /// that proves it, then snapshot reads that saw part of an `MPUT`.
    pub violations: Vec<Violation>,
    /// Keys the checker could not decide within its budget.
    pub gave_up: Vec<String>,
    /// The history.
    #[serde(skip)]
    pub history: History,
    /// The cluster clock when the workload started, ms: the history's and
    /// the faults' time 0, for lining them up with `events`.
    #[serde(skip)]
    pub origin_ms: Time,
    /// The view changes from the start to the end of the run.
    #[serde(skip)]
    pub events: Vec<Event>,
}

/// Runs a check. `tick` is called about every 100 ms with the elapsed time
/// and operations so far (for a progress bar); `cancelled` stops the
/// workload early, and what ran is still checked.
pub fn run(
    cluster: &mut Cluster,
    cfg: &CheckConfig,
    tick: &mut dyn FnMut(Duration, u64),
    cancelled: &dyn Fn() -> bool,
) -> Result<CheckReport> {
    let start = Instant::now();
    let origin_ms = cluster.now();
    let workload = Workload::start(cluster, cfg.clients, cfg.keys, cfg.seed);
    let key_prefix = workload.prefix().to_string();
    let mut nemesis = Nemesis::new(cfg.seed, cfg.faults.clone());
    let mut faults = Vec::new();
    let mut wait = |d: Duration, workload: &Workload| {
        let until = Instant::now() + d;
        while Instant::now() < until && !cancelled() {
            tick(start.elapsed(), workload.done());
            std::thread::sleep(
                Duration::from_millis(20).min(until.saturating_duration_since(Instant::now())),
            );
        }
    };
    let mut outcome = Ok(());
    while start.elapsed() < cfg.duration && !cancelled() {
        wait(
            nemesis
                .rest()
                .min(cfg.duration.saturating_sub(start.elapsed())),
            &workload,
        );
        if start.elapsed() >= cfg.duration || cancelled() || cfg.faults.is_empty() {
            continue;
        }
        let at = start.elapsed();
        match nemesis.inject(cluster) {
            Ok(Some(Injected {
                kind,
                active,
                what,
                hold,
            })) => {
                wait(hold, &workload);
                if let Err(e) = Nemesis::heal(cluster, active) {
                    outcome = Err(e);
                    break;
                }
                let held_ms = (start.elapsed() - at).as_millis() as u64;
                faults.push(FaultRecord {
                    at_ms: at.as_millis() as u64,
                    held_ms,
                    kind,
                    what,
                });
            }
            Ok(None) => {}
            Err(e) => {
                outcome = Err(e);
                break;
            }
        }
    }
    let duration_ms = start.elapsed().as_millis() as u64;
    cluster.faults().heal();
    let healthy = cluster.wait_healthy(Duration::from_secs(30), &|| false);
    let history = workload.finish(cluster);
    outcome?;
    healthy?;
    let report = linearizability::check(&history);
    let mut violations = report.violations;
    violations.extend(atomicity::violations(&history));
    let count = |o: Outcome| history.iter().filter(|op| op.outcome == o).count();
    let ops = history.len();
    let ok = count(Outcome::Ok);
    Ok(CheckReport {
        seed: cfg.seed,
        key_prefix,
        duration_ms,
        ops,
        ok,
        failed: count(Outcome::Failed),
        unknown: count(Outcome::Unknown),
        availability: if ops == 0 {
            0.0
        } else {
            (1000.0 * ok as f64 / ops as f64).round() / 10.0
        },
        faults,
        violations,
        gave_up: report.gave_up,
        history,
        origin_ms,
        events: cluster
            .events()
            .into_iter()
            .filter(|e| e.at >= origin_ms)
            .collect(),
    })
}
