//! Failover time: from the kill of a primary to the first successful write
//! on one of its partitions, at default settings (4 nodes, R=2, heartbeat
//! 100 ms, failure timeout 600 ms), over many runs.
//!
//! Run: `cargo run --release --example failover_time -- [RUNS]` (default 20).
//! Each run starts a fresh cluster, writes a probe key, kills the probe's
//! primary, and times a write to the probe key: the client retries until the
//! view leader has promoted a secondary.

use kvsh::cluster::{Cluster, ClusterConfig};
use std::time::Instant;

fn main() {
    let runs: usize = std::env::args()
        .nth(1)
        .and_then(|a| a.parse().ok())
        .unwrap_or(20);
    let mut times = Vec::new();
    for run in 0..runs {
        let mut c = Cluster::start(ClusterConfig::default(), None).expect("cluster starts");
        let mut client = c.client();
        client.put("probe", "before").expect("first write");
        let s = c.status();
        let victim = s
            .view
            .primary(s.view.partition_of("probe"))
            .expect("a primary");
        let endpoint = c.endpoint(victim).unwrap_or_default();
        let start = Instant::now();
        c.kill(victim).expect("kill");
        client.disconnect(&endpoint);
        loop {
            if client.put("probe", &format!("after-{run}")).is_ok() {
                break;
            }
        }
        let took = start.elapsed();
        assert_eq!(
            client.get("probe").unwrap().as_deref(),
            Some(format!("after-{run}").as_str())
        );
        println!(
            "run {:>2}: {:>4} ms (killed n{victim})",
            run + 1,
            took.as_millis()
        );
        times.push(took.as_millis() as u64);
    }
    times.sort_unstable();
    let median = if times.len() % 2 == 1 {
        times[times.len() / 2]
    } else {
        (times[times.len() / 2 - 1] + times[times.len() / 2]) / 2
    };
    println!(
        "failover over {} runs: median {} ms, min {} ms, max {} ms",
        times.len(),
        median,
        times.first().unwrap_or(&0),
        times.last().unwrap_or(&0)
    );
}
