//! The demo and the load: `examples/failover.kvsh` runs through the real
//! binary and must tell its story (so it cannot rot), and `load`, whose
//! numbers change from run to run, is checked for its shape and for the
//! one number that must not change: lost 0.

use kvsh::cluster::{Cluster, ClusterConfig};
use kvsh::shell::Shell;
use regex::Regex;
use serde_json::Value;
use std::process::Command;

/// The failover demo echoes itself, shows the write after the kill waiting
/// for failover, and ends with the load's summary: writes acknowledged,
/// lost 0, and how long the partitions were unavailable.
#[test]
fn the_failover_demo_tells_its_story() {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/failover.kvsh");
    let out = Command::new(env!("CARGO_BIN_EXE_kvsh"))
        .arg("-f")
        .arg(&path)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "the demo failed: {stderr}\n{stdout}");
    assert!(stderr.is_empty(), "the demo reported errors: {stderr}");
    // Echoed: the commands after a prompt, the narration as written. The
    // load's status lines print from their own thread, so one may come
    // between a command and its output.
    for line in [
        "kvsh> kill n2",
        "# 3. Kill the primary of order:1's partition",
        "== 3. Kill n2 while the load writes",
        "kvsh> load stop",
    ] {
        assert!(stdout.contains(line), "{line:?} is shown:\n{stdout}");
    }
    assert!(
        !stdout.lines().any(|l| l.trim() == "#!echo"),
        "the pragma is not shown"
    );
    let waited =
        Regex::new(r"kvsh> put order:1 paid\n(load .*\n)*OK \(waited \d+\.\d\d s for failover\)")
            .unwrap();
    assert!(
        waited.is_match(&stdout),
        "the write after the kill says it waited:\n{stdout}"
    );
    let summary = Regex::new(concat!(
        r"load stopped after \d+\.\d s: ([\d,]+) writes?: ([\d,]+) acknowledged, ([\d,]+) failed, ([\d,]+) unknown\n",
        r"longest unavailable: (\d+\.\d\d) s, partition \d+, from \d+\.\d{3}s to \d+\.\d{3}s .*\n",
        r"checked ([\d,]+) keys?: each holds its latest acknowledged write; lost 0",
    ))
    .unwrap();
    let caps = summary
        .captures(&stdout)
        .unwrap_or_else(|| panic!("the summary ends the demo:\n{stdout}"));
    let n = |i: usize| caps[i].replace(',', "").parse::<f64>().unwrap();
    assert!(
        n(2) > 100.0,
        "the load wrote through the kill: {}",
        &caps[0]
    );
    assert_eq!(n(1), n(2) + n(3) + n(4), "every write is counted once");
    assert!(n(6) > 0.0, "keys were checked");
    // The partitions n2 led were unavailable for at least the time it took
    // to declare n2 dead, and the writers saw it.
    assert!(
        n(5) >= 0.3,
        "failover shows as unavailability: {}",
        &caps[0]
    );
    assert!(
        stdout.contains("\"paid\""),
        "the write after the kill reads back"
    );
}

fn shell() -> Shell {
    let cfg = ClusterConfig {
        partitions: 64,
        ..ClusterConfig::default()
    };
    Shell::new(Cluster::start(cfg, None).unwrap(), true, true, false)
}

fn run(shell: &mut Shell, line: &str) -> Value {
    let mut out = Vec::new();
    shell
        .execute(line, &mut out)
        .unwrap_or_else(|e| panic!("{line}: {e}"));
    serde_json::from_slice(&out).unwrap()
}

/// `load` in JSON: counters while it runs, and a summary that adds up and
/// finds nothing lost, through a kill and a pause. Then text: the shape of
/// each line.
#[test]
fn load_reports_what_its_writers_saw_and_loses_nothing() {
    let mut s = shell();
    let started = run(&mut s, "load start --rate 300 --clients 3");
    assert_eq!(started["clients"], 3);
    assert!(started["prefix"].as_str().unwrap().starts_with("load:"));
    let mut out = Vec::new();
    assert!(
        s.execute("load start", &mut out).is_err(),
        "one load at a time"
    );
    // Event-based: wait until the writers have written, not a fixed time.
    let status = loop {
        let st = run(&mut s, "load");
        if st["acknowledged"].as_u64().unwrap() >= 50 {
            break st;
        }
        run(&mut s, "sleep 20ms");
    };
    assert_eq!(status["running"], true);
    for field in [
        "writes",
        "failed",
        "unknown",
        "ops_per_sec",
        "longest_unavailable_ms",
    ] {
        assert!(status.get(field).is_some(), "{field} in {status}");
    }
    run(&mut s, "kill n3");
    run(&mut s, "put after-kill v");
    run(&mut s, "pause n1 700ms");
    run(&mut s, "restart n3");
    run(&mut s, "wait healthy 30s");
    let before = run(&mut s, "load")["acknowledged"].as_u64().unwrap();
    let sum = run(&mut s, "load stop");
    let n = |f: &str| sum[f].as_u64().unwrap_or_else(|| panic!("{f} in {sum}"));
    assert!(n("acknowledged") >= before);
    assert_eq!(n("writes"), n("acknowledged") + n("failed") + n("unknown"));
    assert_eq!(n("lost"), 0, "{sum}");
    assert_eq!(n("unreadable"), 0, "{sum}");
    assert!(n("keys_checked") > 0 && n("keys_checked") <= 3 * 256);
    assert!(
        n("longest_unavailable_ms") >= 300,
        "the kill made some partition wait: {sum}"
    );
    assert!(n("longest_to_ms") > n("longest_from_ms"));
    assert!(n("stalled_partitions") >= 1);
    assert_eq!(run(&mut s, "load")["running"], false);

    // Text.
    s.json = false;
    let mut out = Vec::new();
    s.execute("load start --rate 100 --clients 2", &mut out)
        .unwrap();
    let text = String::from_utf8(std::mem::take(&mut out)).unwrap();
    assert!(
        Regex::new(r"^load started: 2 clients writing load:\d+:\* at 100 writes/s in all;")
            .unwrap()
            .is_match(&text),
        "{text}"
    );
    s.execute("load", &mut out).unwrap();
    let text = String::from_utf8(std::mem::take(&mut out)).unwrap();
    assert!(
        Regex::new(r"^load running \d+\.\d s: [\d,]+ writes/s; [\d,]+ writes?: [\d,]+ acknowledged, [\d,]+ failed, [\d,]+ unknown; longest unavailable \d+\.\d\d s\n$")
            .unwrap()
            .is_match(&text),
        "{text}"
    );
    s.execute("load stop", &mut out).unwrap();
    let text = String::from_utf8(out).unwrap();
    assert!(
        Regex::new(r"^load stopped after \d+\.\d s: [\d,]+ writes?: [\d,]+ acknowledged, 0 failed, 0 unknown\nlongest unavailable: \d+\.\d\d s.*\nchecked [\d,]+ keys?: each holds its latest acknowledged write; lost 0\n$")
            .unwrap()
            .is_match(&text),
        "{text}"
    );
}
