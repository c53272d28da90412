//! Rebalance throughput: load KEYS keys of 100 bytes into 4 nodes at R=2,
//! then add a 5th node and time the rebalance until every partition is at
//! its target and in sync, counting the keys copied.
//!
//! Run: `cargo run --release --example rebalance_throughput -- [KEYS] [CLIENTS]`
//! (defaults: 1,000,000 keys, 32 loader threads). Loading goes through the
//! normal replicated write path and is not timed.

use kvsh::cluster::leader::EventKind;
use kvsh::cluster::{Cluster, ClusterConfig};
use std::time::{Duration, Instant};

fn main() {
    let keys: usize = std::env::args()
        .nth(1)
        .and_then(|a| a.parse().ok())
        .unwrap_or(1_000_000);
    let clients: usize = std::env::args()
        .nth(2)
        .and_then(|a| a.parse().ok())
        .unwrap_or(32);
    let mut c = Cluster::start(ClusterConfig::default(), None).expect("cluster starts");
    let value = "x".repeat(100);
    let load = Instant::now();
    std::thread::scope(|s| {
        for t in 0..clients {
            let mut client = c.client();
            let value = &value;
            s.spawn(move || {
                for i in (t..keys).step_by(clients) {
                    client.put(&format!("key{i:08}"), value).expect("load");
                }
            });
        }
    });
    let load_s = load.elapsed().as_secs_f64();
    println!(
        "loaded {keys} keys in {load_s:.1} s ({:.0} puts/s)",
        keys as f64 / load_s
    );
    let since = c.events().len();
    let start = Instant::now();
    let added = c.add(1).expect("add")[0];
    // Healthy alone is not enough: right after `add` the status can still
    // be the one from before the new node had any partition to fill.
    c.status_watch()
        .wait_until(Duration::from_secs(600), &|| false, |s| {
            s.healthy && s.settled && s.view.roles_of(added) != (0, 0)
        })
        .expect("rebalanced");
    let took = start.elapsed().as_secs_f64();
    let (mut copies, mut copied) = (0, 0);
    for e in &c.events()[since..] {
        if let EventKind::CaughtUp { keys, .. } = e.kind {
            copies += 1;
            copied += keys;
        }
    }
    println!(
        "rebalance to 5 nodes: {copies} replicas, {copied} keys copied in {took:.2} s = {:.0} keys/s",
        copied as f64 / took
    );
}
