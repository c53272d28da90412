//! Runs the deterministic cluster simulator (`kvsh::sim`) over many seeds:
//! each seed is a random schedule of crashes, pauses, partitions, message
//! loss and reordering against a live workload, checked for linearizability,
//! lost acknowledged writes and replica divergence. Any failing seed replays
//! exactly, with a trace of every message.
//!
//! ```text
//! cargo run --release --example simulate -- --seeds 10000
//! cargo run --release --example simulate -- --seeds 2000 --nodes 5 --replicas 3 --loss 5
//! cargo run --release --example simulate -- --seeds 2000 --aggressive
//! cargo run --release --example simulate -- --seed 1234 --verbose    # replay one seed, with its trace
//! cargo run --release --example simulate -- --seed 1234 --history    # ... and print its history as JSON lines
//! cargo run --release --example simulate -- --seeds 200 --sabotage wipe   # a deliberate bug: expect failures
//! cargo run --release --example simulate -- --seeds 200 --sabotage skip-replication
//! cargo run --release --example simulate -- --seeds 200 --sabotage slow-clock
//! cargo run --release --example simulate -- --seeds 200 --sabotage hide-lease-loss
//! cargo run --release --example simulate -- --seeds 200 --sabotage read-through-intents
//! ```
//!
//! Seeds run in parallel on `--jobs` threads (one seed per thread at a
//! time; each seed is single-threaded and deterministic). The exit status
//! is 1 if any seed failed.

use clap::Parser;
use kvsh::sim::{self, FaultMode, Sabotage, SimConfig, SimReport};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc;
use std::time::Instant;

/// Run the kvsh cluster simulator over many seeds.
#[derive(Parser, Debug, Clone)]
struct Args {
    /// How many seeds to run.
    #[arg(long, default_value_t = 1000)]
    seeds: u64,
    /// The first seed.
    #[arg(long, default_value_t = 0)]
    start: u64,
    /// Run only this seed (and print its report).
    #[arg(long)]
    seed: Option<u64>,
    /// With --seed: print the event trace.
    #[arg(long)]
    verbose: bool,
    /// With --seed: print the history as JSON lines.
    #[arg(long)]
    history: bool,
    /// Nodes.
    #[arg(long, default_value_t = 4)]
    nodes: usize,
    /// Replicas per partition.
    #[arg(long, default_value_t = 2)]
    replicas: usize,
    /// Partitions.
    #[arg(long, default_value_t = 8)]
    partitions: u32,
    /// Clients.
    #[arg(long, default_value_t = 4)]
    clients: usize,
    /// Hot keys.
    #[arg(long, default_value_t = 6)]
    keys: usize,
    /// Background message loss, percent.
    #[arg(long, default_value_t = 1.0)]
    loss: f64,
    /// Virtual milliseconds of workload with faults.
    #[arg(long, default_value_t = 8000)]
    duration: u64,
    /// Faults with no survival budget; only safety is checked.
    #[arg(long)]
    aggressive: bool,
    /// No faults at all (the network still loses and reorders).
    #[arg(long, conflicts_with = "aggressive")]
    no_faults: bool,
    /// A deliberate bug: `wipe` (a secondary silently loses a partition),
    /// `slow-clock` (node 1's clock runs at half speed) or `skip-replication`
    /// (primaries acknowledge writes they never replicated).
    #[arg(long)]
    sabotage: Option<String>,
    /// Threads.
    #[arg(long, default_value_t = std::thread::available_parallelism().map_or(1, |n| n.get()))]
    jobs: usize,
    /// Stop after this many failing seeds.
    #[arg(long, default_value_t = 20)]
    max_failures: usize,
}

impl Args {
    fn config(&self) -> Result<SimConfig, String> {
        let mut cfg = SimConfig {
            nodes: self.nodes,
            replicas: self.replicas,
            partitions: self.partitions,
            clients: self.clients,
            keys: self.keys,
            loss_pct: self.loss,
            duration: self.duration,
            ..SimConfig::default()
        };
        if self.aggressive {
            cfg = cfg.aggressive();
        }
        if self.no_faults {
            cfg.faults = FaultMode::None;
        }
        cfg.sabotage = match self.sabotage.as_deref() {
            None => None,
            Some("wipe") => Some(Sabotage::WipeSecondary),
            Some("slow-clock") => Some(Sabotage::SlowClock(1)),
            Some("skip-replication") => Some(Sabotage::SkipReplication),
            Some("hide-lease-loss") => Some(Sabotage::HideLeaseLoss),
            Some("read-through-intents") => Some(Sabotage::ReadThroughIntents),
            Some(other) => {
                return Err(format!(
                    "unknown sabotage {other:?}: expected wipe, slow-clock, skip-replication, \
                     hide-lease-loss or read-through-intents"
                ))
            }
        };
        cfg.validate()?;
        Ok(cfg)
    }

    /// The flags that reproduce this configuration, for replay commands.
    fn config_flags(&self) -> String {
        let d = Args::parse_from(["simulate"]);
        let mut f = String::new();
        let mut add = |name: &str, v: String, dv: String| {
            if v != dv {
                f.push_str(&format!(" --{name} {v}"));
            }
        };
        add("nodes", self.nodes.to_string(), d.nodes.to_string());
        add(
            "replicas",
            self.replicas.to_string(),
            d.replicas.to_string(),
        );
        add(
            "partitions",
            self.partitions.to_string(),
            d.partitions.to_string(),
        );
        add("clients", self.clients.to_string(), d.clients.to_string());
        add("keys", self.keys.to_string(), d.keys.to_string());
        add("loss", self.loss.to_string(), d.loss.to_string());
        add(
            "duration",
            self.duration.to_string(),
            d.duration.to_string(),
        );
        if let Some(s) = &self.sabotage {
            f.push_str(&format!(" --sabotage {s}"));
        }
        if self.aggressive {
            f.push_str(" --aggressive");
        }
        if self.no_faults {
            f.push_str(" --no-faults");
        }
        f
    }

    fn replay(&self, seed: u64) -> String {
        format!(
            "cargo run --release --example simulate -- --seed {seed}{} --verbose",
            self.config_flags()
        )
    }
}

fn main() {
    let args = Args::parse();
    let cfg = match args.config() {
        Ok(c) => c,
        Err(e) => {
            eprintln!("Error: {e}");
            std::process::exit(2);
        }
    };
    let ok = match args.seed {
        Some(seed) => run_one(&args, &cfg, seed),
        None => run_many(&args, &cfg),
    };
    std::process::exit(if ok { 0 } else { 1 });
}

/// Replays one seed, with its trace if asked.
fn run_one(args: &Args, cfg: &SimConfig, seed: u64) -> bool {
    let report = if args.verbose {
        sim::run_traced(seed, cfg, &mut |line| emit(line))
    } else {
        sim::run(seed, cfg)
    };
    if args.history {
        emit(report.history.to_jsonl().trim_end());
    }
    emit(&report.to_string());
    if !report.passed() {
        emit(&format!("replay: {}", args.replay(seed)));
    }
    report.passed()
}

/// Prints a line of a replay. A trace runs to many thousands of lines and
/// is often piped into `head` or `less`: when the reader goes away, stop
/// quietly rather than panic.
fn emit(line: &str) {
    use std::io::Write;
    if writeln!(std::io::stdout().lock(), "{line}").is_err() {
        std::process::exit(0);
    }
}

/// What the summary needs of a report (histories are large).
struct Outcome {
    seed: u64,
    passed: bool,
    text: String,
    ops: usize,
    unknown: usize,
    faults: usize,
    lost_partitions: usize,
    gave_up: usize,
    virtual_ms: u64,
}

impl From<&SimReport> for Outcome {
    fn from(r: &SimReport) -> Self {
        Outcome {
            seed: r.seed,
            passed: r.passed(),
            text: r.to_string(),
            ops: r.ops.total(),
            unknown: r.ops.unknown,
            faults: r.faults.total(),
            lost_partitions: r.lost_partitions.len(),
            gave_up: r.gave_up.len(),
            virtual_ms: r.end,
        }
    }
}

fn run_many(args: &Args, cfg: &SimConfig) -> bool {
    let started = Instant::now();
    let next = AtomicU64::new(args.start);
    let end = args.start + args.seeds;
    let stop = AtomicU64::new(0);
    let (tx, rx) = mpsc::channel::<Outcome>();
    println!(
        "simulating seeds {}..{end} on {} threads: {} nodes, R={}, {} partitions, {} clients, {} keys, {}% loss, {} ms, {:?} faults{}",
        args.start,
        args.jobs,
        cfg.nodes,
        cfg.replicas,
        cfg.partitions,
        cfg.clients,
        cfg.keys,
        cfg.loss_pct,
        cfg.duration,
        cfg.faults,
        cfg.sabotage.map_or(String::new(), |s| format!(", sabotage {s:?}"))
    );
    let mut outcomes = Vec::new();
    std::thread::scope(|scope| {
        for _ in 0..args.jobs.max(1) {
            let tx = tx.clone();
            let (next, stop) = (&next, &stop);
            scope.spawn(move || loop {
                if stop.load(Ordering::Relaxed) >= args.max_failures as u64 {
                    return;
                }
                let seed = next.fetch_add(1, Ordering::Relaxed);
                if seed >= end {
                    return;
                }
                let report = sim::run(seed, cfg);
                if !report.passed() {
                    stop.fetch_add(1, Ordering::Relaxed);
                }
                if tx.send(Outcome::from(&report)).is_err() {
                    return;
                }
            });
        }
        drop(tx);
        let every = (args.seeds / 20).max(1);
        for o in rx {
            if !o.passed {
                println!("\n{}\nreplay: {}\n", o.text, args.replay(o.seed));
            }
            outcomes.push(o);
            let done = outcomes.len() as u64;
            if done.is_multiple_of(every) || done == args.seeds {
                let failed = outcomes.iter().filter(|o| !o.passed).count();
                let rate = done as f64 / started.elapsed().as_secs_f64();
                println!(
                    "[{done:>7}/{}] {failed} failed, {rate:.0} seeds/s",
                    args.seeds
                );
            }
        }
    });
    outcomes.sort_by_key(|o| o.seed);
    let failed: Vec<u64> = outcomes
        .iter()
        .filter(|o| !o.passed)
        .map(|o| o.seed)
        .collect();
    let sum = |f: fn(&Outcome) -> usize| outcomes.iter().map(f).sum::<usize>();
    let virtual_s = outcomes.iter().map(|o| o.virtual_ms).sum::<u64>() as f64 / 1000.0;
    println!(
        "\n{} seeds in {:.1} s ({:.0} s of virtual time): {} passed, {} failed",
        outcomes.len(),
        started.elapsed().as_secs_f64(),
        virtual_s,
        outcomes.len() - failed.len(),
        failed.len()
    );
    println!(
        "{} client operations ({} unknown), {} faults injected, {} seeds with partitions that lost every in-sync copy, \
         {} keys the checker gave up on",
        sum(|o| o.ops),
        sum(|o| o.unknown),
        sum(|o| o.faults),
        outcomes.iter().filter(|o| o.lost_partitions > 0).count(),
        sum(|o| o.gave_up)
    );
    let lost: Vec<u64> = outcomes
        .iter()
        .filter(|o| o.lost_partitions > 0)
        .map(|o| o.seed)
        .take(10)
        .collect();
    if cfg.faults != FaultMode::Aggressive && !lost.is_empty() {
        // Only crashes destroy data and the budget keeps an in-sync copy of
        // everything, but a loss burst can still get a node declared dead
        // at the wrong moment. Those seeds are worth a look.
        println!("seeds that lost a partition despite the budget (first 10): {lost:?}");
    }
    if !failed.is_empty() {
        println!("failing seeds: {failed:?}");
        println!("replay the first: {}", args.replay(failed[0]));
    }
    failed.is_empty()
}
