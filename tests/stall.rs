//! A stall of the whole process (SIGSTOP, a debugger, a laptop lid) must
//! not make the view leader declare every node dead when it wakes (issue
//! #10, §6). The test stops its own process for two seconds, more than
//! three failure timeouts, from a child shell.
//!
//! This file holds one test on purpose: stopping the process stops every
//! test running in it.

use kvsh::cluster::leader::EventKind;
use kvsh::cluster::{Cluster, ClusterConfig};
use std::process::Command;
use std::time::Duration;

#[test]
fn a_stopped_process_wakes_with_every_node_alive() {
    let c = Cluster::start(
        ClusterConfig {
            nodes: 4,
            replicas: 2,
            partitions: 16,
            ..ClusterConfig::default()
        },
        None,
    )
    .expect("cluster starts");
    let mut client = c.client();
    client.put("before", "the stall").unwrap();
    let epoch = c.status().view.epoch;

    // The child stops this process, and continues it two seconds later.
    let status = Command::new("sh")
        .arg("-c")
        .arg(format!(
            "kill -STOP {pid}; sleep 2; kill -CONT {pid}",
            pid = std::process::id()
        ))
        .status()
        .expect("sh runs");
    assert!(status.success());

    // The leader says it stalled, and blames nobody.
    c.status_watch()
        .wait_until(Duration::from_secs(10), &|| false, |_| {
            c.events()
                .iter()
                .any(|e| matches!(e.kind, EventKind::Stalled { .. }))
        })
        .expect("a Stalled event");
    c.wait_healthy(Duration::from_secs(10), &|| false).unwrap();
    let events = c.events();
    let blamed: Vec<String> = events
        .iter()
        .filter(|e| {
            matches!(
                e.kind,
                EventKind::Dead { .. } | EventKind::Suspected { .. } | EventKind::LeaseLost { .. }
            )
        })
        .map(|e| e.kind.to_string())
        .collect();
    assert!(blamed.is_empty(), "{blamed:?}\n{events:?}");
    assert_eq!(c.status().view.epoch, epoch, "no view change");
    assert_eq!(client.get("before").unwrap().as_deref(), Some("the stall"));
    client.put("after", "the stall").unwrap();
}
