//! `kvsh`: start a cluster and drive it from a shell or a script.

use clap::Parser;
use kvsh::cluster::{Cluster, ClusterConfig, DataDir};
use kvsh::node::disk::Fsync;
use kvsh::node::protocol::{DEFAULT_MAX_FRAME, MAX_KEY_BYTES};
use kvsh::shell::command::{parse_duration, split_commands};
use kvsh::shell::{install_interrupt_handler, repl, script, Shell};
use kvsh::view::placement::{Placement, Strategy, DEFAULT_PARTITIONS, DEFAULT_VNODES};
use std::io::{BufRead, IsTerminal};
use std::path::PathBuf;

/// A replicated, partitioned key-value cluster in one process, and a shell
/// to drive it and break it.
///
/// With no -f or -c and a terminal on stdin, kvsh opens an interactive
/// shell. Otherwise it runs commands as a script: from FILE, from CMDS, or
/// from stdin; errors go to stderr as `line N: Error: ...`, and the exit
/// status is 0 only if every command succeeded.
#[derive(Parser, Debug)]
#[command(name = "kvsh", version, about, long_about = None)]
struct Args {
    /// Nodes to start (1-64).
    #[arg(short = 'n', long, default_value_t = 4, value_parser = clap::value_parser!(u16).range(1..=64))]
    nodes: u16,
    /// Replicas per partition; clamped (with a warning) to the node count.
    #[arg(short = 'r', long, default_value_t = 2, value_parser = clap::value_parser!(u16).range(1..=64))]
    replicas: u16,
    /// Partitions the key space is split into.
    #[arg(short = 'p', long, default_value_t = DEFAULT_PARTITIONS, value_parser = clap::value_parser!(u32).range(1..=65536))]
    partitions: u32,
    /// Placement strategy: ring (consistent hashing with virtual nodes), hrw
    /// (rendezvous hashing) or modulo (the naive baseline).
    #[arg(long, default_value = "ring")]
    placement: Strategy,
    /// Virtual nodes per node on the ring (1-65536).
    #[arg(long, default_value_t = DEFAULT_VNODES, value_parser = clap::value_parser!(u32).range(1..=65536))]
    vnodes: u32,
    /// Address the nodes bind to.
    #[arg(long, default_value = "127.0.0.1")]
    bind: String,
    /// The nodes' client ports: loopback TCP (`tcp`), or Unix-domain
    /// sockets in a private directory (`ipc`: cheaper hops, this user only).
    #[arg(long, default_value = "tcp", value_parser = transport)]
    transport: kvsh::node::endpoint::Transport,
    /// Print every command's output as one line of JSON.
    #[arg(long)]
    json: bool,
    /// Run the commands in FILE.
    #[arg(short = 'f', long = "file", value_name = "FILE")]
    file: Option<PathBuf>,
    /// Run these commands, separated by semicolons.
    #[arg(short = 'c', long = "command", value_name = "CMDS")]
    command: Option<String>,
    /// In script mode, stop at the first failed command.
    #[arg(long)]
    stop_on_error: bool,
    /// In script mode, print each command (after `kvsh> `) and its `#`
    /// narration before running it. A script with a line `#!echo` turns
    /// this on for itself.
    #[arg(long, conflicts_with = "no_echo")]
    echo: bool,
    /// Do not echo, even if the script asks to.
    #[arg(long)]
    no_echo: bool,
    /// The shell's history file [default: ~/.kvsh_history].
    #[arg(long, value_name = "FILE")]
    history: Option<PathBuf>,
    /// Largest request frame a node accepts, in bytes (at least 4096).
    #[arg(long, default_value_t = DEFAULT_MAX_FRAME)]
    max_frame: usize,
    /// Largest value, in bytes [default: half the frame limit]; a PUT of a
    /// value this big with a key at the limit must fit in a frame.
    #[arg(long)]
    max_value: Option<usize>,
    /// Heartbeat interval, e.g. 100ms.
    #[arg(long, default_value = "100ms", value_parser = ms)]
    heartbeat: u64,
    /// Silence after which a node is declared dead, e.g. 600ms. The lease is
    /// two thirds of it.
    #[arg(long, default_value = "600ms", value_parser = ms)]
    failure_timeout: u64,
    /// Log level: error, warn, info, debug (views, promotions, streams) or
    /// trace (every internal message). `set log-level` changes it.
    #[arg(long, default_value = "warn", value_parser = log_level)]
    log_level: tracing_subscriber::filter::LevelFilter,
    /// Write log lines to FILE (appended) instead of above the prompt (or
    /// to stderr in script mode).
    #[arg(long, value_name = "FILE")]
    log_file: Option<PathBuf>,
    /// Turn automatic rebalancing off at start.
    #[arg(long)]
    no_auto_rebalance: bool,
    /// Attach to a cluster of node processes coordinated through ZooKeeper
    /// (zk://HOST:PORT/PATH) instead of starting nodes in this process.
    #[arg(long, value_name = "URL", conflicts_with = "nodes")]
    coord: Option<String>,
    /// With --coord: start this many `kvsh node` processes on this host
    /// first (they need KVSH_SECRET); they stop when the shell exits.
    #[arg(long, value_name = "N", requires = "coord", default_value_t = 0, value_parser = clap::value_parser!(u16).range(0..=64))]
    spawn: u16,
    /// With --coord: the ZooKeeper session timeout, for the shell and the
    /// nodes it starts.
    #[arg(long, default_value = "2000ms", value_parser = ms, requires = "coord")]
    session_timeout: u64,
    /// Keep every node's data on disk in DIR (one directory per node:
    /// DIR/n1, DIR/n2, ...). Started again on the same DIR, the cluster
    /// comes back with its nodes, its view and every acknowledged write.
    /// Without it, data lives in memory only.
    #[arg(long, value_name = "DIR")]
    data_dir: Option<PathBuf>,
    /// With --data-dir: when a node syncs its writes to disk. always: each
    /// write before its acknowledgement; batch: once per batch of requests
    /// drained, before any of its acknowledgements; never: left to the
    /// operating system (survives a crash of kvsh, not of the machine).
    #[arg(long, value_name = "always|batch|never")]
    fsync: Option<Fsync>,
}

/// What a durable cluster found in its directory at start, in one line,
/// if it found anything.
fn restored_line(cluster: &Cluster) -> Option<String> {
    let epoch = cluster.restored_from()?;
    let ids = cluster.node_ids();
    let mut keys = 0;
    let mut slowest = 0.0f64;
    for id in &ids {
        if let Some((r, _)) = cluster.reloaded(*id) {
            keys += r.keys;
            slowest = slowest.max(r.elapsed.as_secs_f64());
        }
    }
    let dir = cluster.config().data.as_ref()?.dir.display().to_string();
    Some(format!(
        "restored the cluster in {dir} from its view of epoch {epoch}: {} reloaded {} in {slowest:.2} s at most",
        kvsh::units::count(ids.len() as u64, "node"),
        kvsh::units::count(keys, "key"),
    ))
}

fn log_level(s: &str) -> Result<tracing_subscriber::filter::LevelFilter, String> {
    kvsh::logging::parse_level(s).map_err(|e| e.to_string())
}

fn transport(s: &str) -> Result<kvsh::node::endpoint::Transport, String> {
    s.parse().map_err(|e: kvsh::error::Error| e.to_string())
}

fn ms(s: &str) -> Result<u64, String> {
    // A bare number here is a trap: `--heartbeat 100` would read as 100
    // seconds, and the cluster would never bootstrap.
    if s.parse::<f64>().is_ok() {
        return Err(format!("give a unit: {s}ms or {s}s"));
    }
    parse_duration(s)
        .map(|d| d.as_millis() as u64)
        .map_err(|e| e.to_string())
}

/// The slowest heartbeat: the cluster must bootstrap, which takes a few
/// heartbeats, well within the 15 s the shell waits for it.
const MAX_HEARTBEAT_MS: u64 = 2_000;

/// The smallest frame limit: room for a request with a key at the limit.
const MIN_MAX_FRAME: usize = 4096;
/// A PUT's bytes besides its key and value: `{"op":"PUT","key":"","value":""}`
/// and an id, with room to spare.
const PUT_OVERHEAD: usize = 128;

fn main() {
    // `kvsh node ...` runs one node as its own process (src/coord/).
    if std::env::args().nth(1).as_deref() == Some("node") {
        std::process::exit(kvsh::coord::cli::node_main(std::env::args().skip(1)));
    }
    let args = match Args::try_parse() {
        Ok(args) => args,
        // A flag with a value out of range is one line, like every kvsh error.
        Err(e) if e.kind() == clap::error::ErrorKind::ValueValidation => {
            let text = e.to_string();
            let first = text.lines().next().unwrap_or_default();
            eprintln!("Error: {}", first.trim_start_matches("error: "));
            std::process::exit(2);
        }
        Err(e) => e.exit(),
    };
    if let Err(why) = check(&args) {
        eprintln!("Error: {why}");
        std::process::exit(2);
    }
    std::process::exit(run(args));
}

/// Refuses flags that would start a cluster that cannot work: the ranges
/// clap checks (nodes, replicas, partitions, vnodes) are not enough where
/// flags depend on each other.
fn check(args: &Args) -> Result<(), String> {
    if args.max_frame < MIN_MAX_FRAME {
        return Err(format!(
            "--max-frame {} is too small: a node needs at least {MIN_MAX_FRAME} bytes for a \
             request with a key at the {MAX_KEY_BYTES}-byte limit",
            args.max_frame
        ));
    }
    let max_value = args.max_value.unwrap_or(args.max_frame / 2);
    if max_value == 0 {
        return Err("--max-value must be at least 1 byte".into());
    }
    let needed = max_value.saturating_add(MAX_KEY_BYTES + PUT_OVERHEAD);
    if needed > args.max_frame {
        return Err(format!(
            "--max-value {max_value} does not fit in --max-frame {}: a PUT of such a value with a \
             key at the {MAX_KEY_BYTES}-byte limit takes up to {needed} bytes",
            args.max_frame
        ));
    }
    if args.heartbeat == 0 || args.heartbeat > MAX_HEARTBEAT_MS {
        return Err(format!(
            "--heartbeat must be from 1ms to {MAX_HEARTBEAT_MS}ms"
        ));
    }
    if args.fsync.is_some() && args.data_dir.is_none() {
        return Err("--fsync needs --data-dir: without it nothing is written to disk".into());
    }
    Ok(())
}

/// `--coord`: the shell attached to node processes (src/coord/attach.rs).
fn attach(
    args: &Args,
    url: &str,
    events_tx: Option<crossbeam_channel::Sender<kvsh::cluster::leader::Event>>,
) -> kvsh::error::Result<Cluster> {
    use kvsh::coord::attach::{attach, AttachOptions};
    let opts = AttachOptions {
        coord: url.parse()?,
        spawn: args.spawn as usize,
        shape: kvsh::coord::Shape {
            partitions: args.partitions,
            replicas: args.replicas as usize,
            expect: args.spawn.max(1) as usize,
        },
        session: std::time::Duration::from_millis(args.session_timeout),
        secret: std::env::var(kvsh::coord::process::SECRET_VAR).ok(),
        exe: std::env::current_exe()?,
        data: args.data_dir.clone().map(|dir| DataDir {
            dir,
            fsync: args.fsync.unwrap_or_default(),
        }),
    };
    attach(opts, events_tx)
}

fn run(args: Args) -> i32 {
    let mut replicas = args.replicas as usize;
    if replicas > args.nodes as usize {
        eprintln!(
            "warning: --replicas {replicas} is more than --nodes {}; using {} replicas",
            args.nodes, args.nodes
        );
        replicas = args.nodes as usize;
    }
    let mut cfg = ClusterConfig {
        nodes: args.nodes as usize,
        replicas,
        partitions: args.partitions,
        bind: args.bind.clone(),
        transport: args.transport,
        max_frame: args.max_frame,
        max_value: args.max_value.unwrap_or(args.max_frame / 2),
        placement: Placement::new(args.placement, args.vnodes),
        auto_rebalance: !args.no_auto_rebalance,
        failure_timeout: args.failure_timeout,
        suspect_timeout: (args.failure_timeout * 5 / 12).max(args.heartbeat * 2),
        data: args.data_dir.clone().map(|dir| DataDir {
            dir,
            fsync: args.fsync.unwrap_or_default(),
        }),
        ..ClusterConfig::default()
    };
    cfg.node.heartbeat_interval = args.heartbeat;
    cfg.node.lease = args.failure_timeout * 2 / 3;
    if cfg.node.lease <= args.heartbeat {
        eprintln!(
            "Error: --failure-timeout must be well over the heartbeat interval (at least 2x)"
        );
        return 2;
    }
    let interactive =
        args.file.is_none() && args.command.is_none() && std::io::stdin().is_terminal();
    if let Err(e) = kvsh::logging::init(args.log_level, args.log_file.as_deref()) {
        eprintln!("Error: {e}");
        return 2;
    }
    let (events_tx, events_rx) = crossbeam_channel::unbounded();
    let started = match &args.coord {
        Some(url) => attach(&args, url, interactive.then_some(events_tx)),
        None => Cluster::start(cfg, interactive.then_some(events_tx)),
    };
    let cluster = match started {
        Ok(c) => c,
        Err(e) => {
            eprintln!("Error: {e}");
            return 2;
        }
    };
    if let Some(line) = restored_line(&cluster) {
        eprintln!("{line}");
    }
    install_interrupt_handler();
    let tty = std::io::stdout().is_terminal();
    let mut shell = Shell::new(cluster, args.json, !interactive, tty);
    let failures = if interactive {
        let history = args.history.or_else(repl::default_history);
        repl::run(&mut shell, history, events_rx)
    } else {
        // Not locked for the whole run: an echoing script's background
        // notices (`load`) print from another thread, a line at a time.
        let mut out = std::io::stdout();
        let mut err = std::io::stderr();
        let echo = |asked: bool, shell: &mut Shell| {
            let on = (args.echo || asked) && !args.no_echo && !args.json;
            on.then(|| {
                let dim = if tty {
                    ("\x1b[2m", "\x1b[0m")
                } else {
                    ("", "")
                };
                shell.set_notices(Box::new(move |l| println!("{}{l}{}", dim.0, dim.1)));
                script::Echo { tty }
            })
        };
        if let Some(cmds) = &args.command {
            let lines = split_commands(cmds)
                .into_iter()
                .enumerate()
                .map(|(i, l)| (i + 1, l));
            let echo = echo(false, &mut shell);
            script::run_echoing(
                &mut shell,
                lines,
                &mut out,
                &mut err,
                args.stop_on_error,
                echo,
            )
        } else if let Some(path) = &args.file {
            match std::fs::read_to_string(path) {
                Ok(text) => {
                    let lines = text
                        .lines()
                        .map(String::from)
                        .enumerate()
                        .map(|(i, l)| (i + 1, l))
                        .collect::<Vec<_>>();
                    let echo = echo(script::wants_echo(&text), &mut shell);
                    script::run_echoing(
                        &mut shell,
                        lines,
                        &mut out,
                        &mut err,
                        args.stop_on_error,
                        echo,
                    )
                }
                Err(e) => {
                    eprintln!("Error: cannot read {}: {e}", path.display());
                    return 2;
                }
            }
        } else {
            let stdin = std::io::stdin();
            let lines = stdin
                .lock()
                .lines()
                .map_while(Result::ok)
                .enumerate()
                .map(|(i, l)| (i + 1, l));
            let echo = echo(false, &mut shell);
            script::run_echoing(
                &mut shell,
                lines,
                &mut out,
                &mut err,
                args.stop_on_error,
                echo,
            )
        }
    };
    drop(shell); // Stops and joins every thread.
    failures.min(255) as i32
}
