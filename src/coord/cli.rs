//! `kvsh node --coord zk://HOST:PORT/PATH [--id nN] [--bind ADDR]
//! [--data-dir DIR [--fsync POLICY]] ...`: the
//! flags of one node process, and its exit status.

use super::process::{run_node, NodeOptions, SECRET_VAR};
use super::{CoordUrl, Shape};
use crate::cluster::{ClusterConfig, DataDir};
use crate::view::placement::{Placement, Strategy, DEFAULT_PARTITIONS, DEFAULT_VNODES};
use clap::Parser;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

/// Runs one kvsh node as its own process, coordinated through ZooKeeper.
/// The cluster secret (at least 16 bytes) comes from the KVSH_SECRET
/// environment variable; every process of a cluster needs the same one.
#[derive(Parser, Debug)]
#[command(name = "kvsh node", version)]
struct NodeArgs {
    /// The cluster: zk://HOST:PORT[,HOST:PORT...]/PATH.
    #[arg(long)]
    coord: String,
    /// Run as this node (n3 or 3); default: the lowest id no live process holds.
    #[arg(long)]
    id: Option<String>,
    /// The address the client and peer ports bind (ports are chosen freely).
    #[arg(long, default_value = "127.0.0.1")]
    bind: String,
    /// For a new cluster: partitions.
    #[arg(short = 'p', long, default_value_t = DEFAULT_PARTITIONS, value_parser = clap::value_parser!(u32).range(1..=65536))]
    partitions: u32,
    /// For a new cluster: replicas per partition.
    #[arg(short = 'r', long, default_value_t = 2, value_parser = clap::value_parser!(u16).range(1..=64))]
    replicas: u16,
    /// For a new cluster: members the first view waits for.
    #[arg(long, default_value_t = 1)]
    expect: usize,
    /// The ZooKeeper session timeout (the server may clamp it).
    #[arg(long, default_value = "2000ms", value_parser = ms)]
    session_timeout: u64,
    /// Keep this node's data on disk in DIR (its own directory; needs
    /// --id). Started again with the same id and DIR, the node reloads it
    /// and catches up only on what it missed.
    #[arg(long, value_name = "DIR", requires = "id")]
    data_dir: Option<std::path::PathBuf>,
    /// With --data-dir: when writes are synced to disk (always, batch,
    /// never; as in the shell's --fsync).
    #[arg(long, value_name = "always|batch|never", requires = "data_dir")]
    fsync: Option<crate::node::disk::Fsync>,
}

fn ms(s: &str) -> Result<u64, String> {
    crate::shell::command::parse_duration(s)
        .map(|d| d.as_millis() as u64)
        .map_err(|e| e.to_string())
}

fn parse_id(s: &str) -> Option<crate::view::NodeId> {
    s.strip_prefix('n')
        .unwrap_or(s)
        .parse()
        .ok()
        .filter(|n| *n > 0)
}

/// `kvsh node ...`: `args` starts with "node". Returns the exit status.
pub fn node_main(args: impl Iterator<Item = String>) -> i32 {
    let args = match NodeArgs::try_parse_from(args) {
        Ok(a) => a,
        Err(e) => e.exit(),
    };
    let fail = |why: String| {
        eprintln!("Error: {why}");
        2
    };
    let coord: CoordUrl = match args.coord.parse() {
        Ok(c) => c,
        Err(e) => return fail(e.to_string()),
    };
    let id = match args.id.as_deref().map(|s| parse_id(s).ok_or(s)) {
        None => None,
        Some(Ok(id)) => Some(id),
        Some(Err(s)) => return fail(format!("bad node id {s:?}: expected nN, e.g. n3")),
    };
    let Ok(secret) = std::env::var(SECRET_VAR) else {
        return fail(format!(
            "set {SECRET_VAR} to the cluster secret (at least 16 bytes, the same for every process)"
        ));
    };
    let stop = Arc::new(AtomicBool::new(false));
    let flag = stop.clone();
    // SIGTERM and SIGINT (the `termination` feature) stop the process cleanly.
    if let Err(e) = ctrlc::set_handler(move || flag.store(true, Ordering::Relaxed)) {
        return fail(format!("cannot handle signals: {e}"));
    }
    let opts = NodeOptions {
        coord,
        id,
        shape: Shape {
            partitions: args.partitions,
            replicas: args.replicas as usize,
            expect: args.expect,
        },
        cluster: ClusterConfig {
            bind: args.bind,
            placement: Placement::new(Strategy::Ring, DEFAULT_VNODES),
            // The node's own directory here, not a cluster's (src/coord/process.rs).
            data: args.data_dir.map(|dir| DataDir {
                dir,
                fsync: args.fsync.unwrap_or_default(),
            }),
            ..ClusterConfig::default()
        },
        secret: secret.into_bytes(),
        session: Duration::from_millis(args.session_timeout),
    };
    match run_node(opts, stop) {
        Ok(()) => 0,
        Err(e) => {
            eprintln!("Error: {e}");
            1
        }
    }
}
