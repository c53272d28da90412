//! Benchmarks a fresh cluster from the command line, without the shell.
//!
//! Starts an in-process cluster (3 nodes, 2 replicas per partition by
//! default), waits until it is healthy, measures a raw ZeroMQ round trip as
//! the latency anchor, then runs one `bench` (the shell's arguments) and
//! prints both, and their ratio. With `--rss` it also prints the process's
//! resident memory before and after the run and the keys the nodes hold, for
//! the memory-per-key figure in `docs/performance.md`. With `--rounds R` it
//! alternates R raw measurements (of `--raw-samples / R` round trips each)
//! with R bench runs and reports medians, so that the anchor and the bench
//! see the same minutes of a machine whose speed drifts.
//!
//! ```text
//! cargo run --release --example bench -- put
//! cargo run --release --example bench -- get --clients 50 --pipeline 16 --duration 10s
//! cargo run --release --example bench -- --rounds 5 put --clients 1 --ops 4000
//! cargo run --release --example bench -- --rss get --keys 1000000 --ops 1 --keep
//! cargo run --release --example bench -- --json --nodes 3 --replicas 2 mixed
//! ```
//!
//! Options before the bench kind: `--nodes N`, `--replicas R`,
//! `--transport tcp|ipc` (the nodes' client ports; default tcp),
//! `--raw-samples N` (default 10000, 0 to skip), `--rounds R` (default 1),
//! `--json`, `--progress`, `--rss`.

use kvsh::bench::{self, BenchConfig};
use kvsh::cluster::{Cluster, ClusterConfig};
use kvsh::error::{Error, Result};
use std::time::Duration;

struct Options {
    nodes: usize,
    replicas: usize,
    raw_samples: usize,
    json: bool,
    progress: bool,
    rss: bool,
    rounds: usize,
    transport: kvsh::node::endpoint::Transport,
    bench: BenchConfig,
}

fn parse(args: &[String]) -> Result<Options> {
    let mut o = Options {
        nodes: 3,
        replicas: 2,
        raw_samples: 10_000,
        json: false,
        progress: false,
        rss: false,
        rounds: 1,
        transport: Default::default(),
        bench: BenchConfig::default(),
    };
    let mut i = 0;
    let number = |v: Option<&String>, what: &str| -> Result<usize> {
        v.and_then(|v| v.parse().ok())
            .ok_or_else(|| Error::BadInput(format!("{what} needs a number")))
    };
    while i < args.len() {
        match args[i].as_str() {
            "--nodes" => {
                o.nodes = number(args.get(i + 1), "--nodes")?;
                i += 1;
            }
            "--replicas" => {
                o.replicas = number(args.get(i + 1), "--replicas")?;
                i += 1;
            }
            "--raw-samples" => {
                o.raw_samples = number(args.get(i + 1), "--raw-samples")?;
                i += 1;
            }
            "--transport" => {
                o.transport = args
                    .get(i + 1)
                    .ok_or_else(|| Error::BadInput("--transport needs tcp or ipc".into()))?
                    .parse()?;
                i += 1;
            }
            "--rounds" => {
                o.rounds = number(args.get(i + 1), "--rounds")?.max(1);
                i += 1;
            }
            "--json" => o.json = true,
            "--progress" => o.progress = true,
            "--rss" => o.rss = true,
            _ => break,
        }
        i += 1;
    }
    o.bench = bench::bench_parse(&args[i..])?;
    Ok(o)
}

/// The median of some figures, `None` if there are none.
fn median(values: impl Iterator<Item = f64>) -> Option<f64> {
    let mut v: Vec<f64> = values.collect();
    if v.is_empty() {
        return None;
    }
    v.sort_by(f64::total_cmp);
    Some(v[v.len() / 2])
}

/// The process's resident set size in bytes, from /proc (Linux only).
fn rss_bytes() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
    let kb: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb * 1024)
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if let Err(e) = real_main(&args) {
        eprintln!("Error: {e}");
        std::process::exit(1);
    }
}

fn real_main(args: &[String]) -> Result<()> {
    let o = parse(args)?;
    let cluster = Cluster::start(
        ClusterConfig {
            nodes: o.nodes,
            replicas: o.replicas,
            transport: o.transport,
            ..ClusterConfig::default()
        },
        None,
    )?;
    cluster.wait_healthy(Duration::from_secs(30), &|| false)?;
    let rss_before = rss_bytes();
    let events_before = cluster.events().len();
    // Alternate raw round trips and bench runs, so that both are measured
    // in the same minutes of a machine whose speed drifts.
    let mut rounds = Vec::with_capacity(o.rounds);
    for _ in 0..o.rounds {
        let raw = if o.raw_samples > 0 {
            let samples = (o.raw_samples / o.rounds).max(1);
            Some(bench::raw_roundtrip(cluster.context(), samples)?)
        } else {
            None
        };
        let report = bench::run(&cluster, &o.bench, o.progress, &|| false)?;
        rounds.push((raw, report));
    }
    let rss_after = rss_bytes();
    // Failovers or moves during the runs explain failures; say what they were.
    for e in cluster.events().iter().skip(events_before) {
        eprintln!("event at {} ms, epoch {}: {}", e.at, e.epoch, e.kind);
    }
    let stored: usize = cluster
        .key_counts(Duration::from_secs(2))
        .values()
        .flat_map(|parts| parts.values())
        .sum();
    let raw_p50 = median(
        rounds
            .iter()
            .filter_map(|(r, _)| r.as_ref().map(|r| r.p50_us)),
    );
    let p50 = median(rounds.iter().map(|(_, b)| b.latency.p50_us));
    let ops_per_sec = median(rounds.iter().map(|(_, b)| b.ops_per_sec));
    let ratio = median(rounds.iter().filter_map(|(r, b)| {
        r.as_ref()
            .filter(|r| r.p50_us > 0.0)
            .map(|r| b.latency.p50_us / r.p50_us)
    }));
    let (raw, report) = rounds.last().expect("at least one round");
    if o.json {
        // The last round's report, plus medians over the rounds; flat, so
        // that shell scripts can pick fields out with sed.
        let mut j = report.json();
        j["nodes"] = o.nodes.into();
        j["replicas"] = o.replicas.into();
        j["transport"] = format!("{:?}", o.transport).to_lowercase().into();
        j["rounds"] = rounds
            .iter()
            .map(|(r, b)| {
                serde_json::json!({
                    "raw_p50_us": r.as_ref().map(|r| r.p50_us),
                    "p50_us": b.latency.p50_us,
                    "ops_per_sec": b.ops_per_sec,
                })
            })
            .collect();
        j["median_p50_us"] = p50.into();
        j["median_ops_per_sec"] = ops_per_sec.into();
        if raw.is_some() {
            j["median_raw_p50_us"] = raw_p50.into();
            j["p50_over_raw"] = ratio.into();
        }
        if o.rss {
            j["rss_before"] = rss_before.into();
            j["rss_after"] = rss_after.into();
            j["stored_replicas"] = stored.into();
        }
        println!("{j}");
        return Ok(());
    }
    println!(
        "cluster: {} nodes, {} replicas per partition",
        o.nodes, o.replicas
    );
    if o.rounds > 1 {
        for (i, (r, b)) in rounds.iter().enumerate() {
            println!(
                "round {}: raw p50 {} µs, {} p50 {} µs, {:.0} ops/s",
                i + 1,
                r.as_ref()
                    .map_or("-".into(), |r| format!("{:.1}", r.p50_us)),
                b.kind,
                b.latency.p50_us,
                b.ops_per_sec
            );
        }
        println!("last round:");
    }
    if let Some(raw) = raw {
        println!(
            "raw zmq round trip ({} samples): {}",
            raw.samples,
            raw.text()
        );
    }
    println!("{}", report.text());
    if let Some(r) = ratio {
        if o.rounds > 1 {
            println!("median over {} rounds: p50 / raw p50 = {r:.2}", o.rounds);
        } else {
            println!("p50 / raw p50 = {r:.2}");
        }
    }
    if o.rss {
        let mib = |b: Option<u64>| b.map_or("?".into(), |b| format!("{:.1}", b as f64 / 1048576.0));
        println!(
            "rss: {} MiB before the bench, {} MiB after; {} key replicas stored",
            mib(rss_before),
            mib(rss_after),
            stored
        );
        if let (Some(a), Some(b)) = (rss_before, rss_after) {
            if stored > 0 && b > a {
                println!(
                    "rss growth per stored key replica: {:.0} bytes",
                    (b - a) as f64 / stored as f64
                );
            }
        }
    }
    Ok(())
}
