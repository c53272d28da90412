//! Cluster tests through the library API: real node threads, real ZeroMQ
//! sockets, the real client.

use kvsh::cluster::{Cluster, ClusterConfig};
use std::collections::BTreeMap;
use std::time::Duration;

fn cluster(nodes: usize, replicas: usize) -> Cluster {
    let cfg = ClusterConfig {
        nodes,
        replicas,
        ..ClusterConfig::default()
    };
    Cluster::start(cfg, None).expect("cluster starts")
}

#[test]
fn put_get_delete_round_trip() {
    let c = cluster(3, 2);
    let mut client = c.client();
    client.put("alpha", "1").unwrap();
    client.put("beta", "two words").unwrap();
    assert_eq!(client.get("alpha").unwrap().as_deref(), Some("1"));
    assert_eq!(client.get("beta").unwrap().as_deref(), Some("two words"));
    assert_eq!(client.get("gamma").unwrap(), None);
    assert!(client.delete("alpha").unwrap());
    assert!(!client.delete("alpha").unwrap());
    assert_eq!(client.get("alpha").unwrap(), None);
    let all = client.get_all(None, None).unwrap();
    assert_eq!(all.len(), 1);
    assert_eq!(all[0].key, "beta");
}

/// 10,000 keys across 4 nodes at R=2: every key reads back, and every
/// key's value is on each of its R replicas.
#[test]
fn ten_thousand_keys_are_on_every_replica() {
    let c = cluster(4, 2);
    let mut client = c.client();
    for i in 0..10_000 {
        client
            .put(&format!("key{i}"), &format!("value{i}"))
            .unwrap();
    }
    for i in (0..10_000).step_by(7) {
        assert_eq!(
            client.get(&format!("key{i}")).unwrap(),
            Some(format!("value{i}"))
        );
    }
    // Every replica holds the data once the cluster is healthy. Under heavy
    // load a slow node can be declared dead and refilled between the wait
    // and the dumps, and a replica still filling holds only part of its
    // partition: so the copies count only if the view did not move while
    // they were taken, and otherwise are taken again.
    let (view, copies) = (0..10)
        .find_map(|_| {
            c.wait_healthy(Duration::from_secs(60), &|| false).unwrap();
            let view = c.status().view.clone();
            let mut copies: BTreeMap<(u32, u32), BTreeMap<String, String>> = BTreeMap::new();
            for (p, info) in view.partitions.iter().enumerate() {
                assert_eq!(info.replicas.len(), 2, "partition {p} has R replicas");
                for r in &info.replicas {
                    // The answer is the event waited for: a running node
                    // answers at once. The bound is only a backstop,
                    // generous because a loaded machine can leave a thread
                    // unscheduled for seconds.
                    let data = c.dump(r.node, p as u32, Duration::from_secs(60)).unwrap();
                    copies.insert((p as u32, r.node), data.into_iter().collect());
                }
            }
            let still = c.status();
            (still.view.epoch == view.epoch && still.degraded == 0).then_some((view, copies))
        })
        .expect("the view stays still while the copies are taken, within 10 tries");
    for i in 0..10_000 {
        let key = format!("key{i}");
        let p = view.partition_of(&key);
        for r in &view.partitions[p as usize].replicas {
            assert_eq!(
                copies[&(p, r.node)].get(&key),
                Some(&format!("value{i}")),
                "{key} is on replica n{} of partition {p}",
                r.node
            );
        }
    }
}

/// Divergence injected behind replication's back (a test-only hook) is
/// found by `verify`'s digest comparison, and `repair` (a fresh resync of
/// the secondaries) removes it.
#[test]
fn verify_catches_divergence_and_repair_fixes_it() {
    use kvsh::node::runtime::Control;
    let c = cluster(3, 2);
    let mut client = c.client();
    for i in 0..200 {
        client.put(&format!("k{i}"), "v").unwrap();
    }
    assert!(
        c.divergent().unwrap().is_empty(),
        "normal operation never diverges"
    );
    let view = c.status().view.clone();
    let p = view.partition_of("k7");
    let secondary = view.partitions[p as usize].replicas[1].node;
    c.control(
        secondary,
        Control::Corrupt {
            partition: p,
            key: "k7".into(),
            value: Some("rotten".into()),
        },
    )
    .unwrap();
    let other = view.partition_of("k8");
    let secondary8 = view.partitions[other as usize].replicas[1].node;
    c.control(
        secondary8,
        Control::Corrupt {
            partition: other,
            key: "k8".into(),
            value: None,
        },
    )
    .unwrap();
    let bad = c.divergent().unwrap();
    assert_eq!(
        bad.get(&p),
        Some(&vec![secondary]),
        "the changed value is found"
    );
    assert_eq!(
        bad.get(&other),
        Some(&vec![secondary8]),
        "the missing key is found"
    );
    c.resync(None).unwrap();
    c.wait_healthy(Duration::from_secs(30), &|| false).unwrap();
    assert!(
        c.divergent().unwrap().is_empty(),
        "repair makes every secondary match its primary"
    );
    assert_eq!(client.get("k7").unwrap().as_deref(), Some("v"));
}

/// A `check` run under faults leaves no divergent replicas behind.
#[test]
fn check_then_verify_finds_no_divergence() {
    use kvsh::check::nemesis::FaultKind;
    use kvsh::check::run::{run, CheckConfig};
    let mut c = cluster(4, 2);
    let cfg = CheckConfig {
        duration: Duration::from_secs(3),
        keys: 8,
        faults: vec![FaultKind::Kill, FaultKind::Partition],
        seed: 5,
        ..CheckConfig::default()
    };
    let report = run(&mut c, &cfg, &mut |_, _| {}, &|| false).unwrap();
    assert!(report.violations.is_empty(), "{:?}", report.violations);
    assert!(
        c.divergent().unwrap().is_empty(),
        "replicas agree after check"
    );
}

/// A batch frame (a JSON array of requests) sent to one node is answered by
/// one array in the same order, whichever nodes own the keys; a bad request
/// in a batch fails alone; an empty or oversized batch is refused whole.
#[test]
fn batch_frames_are_answered_in_order() {
    use serde_json::{json, Value};
    let c = cluster(3, 2);
    let endpoint = c
        .status()
        .view
        .nodes
        .values()
        .next()
        .unwrap()
        .endpoint
        .clone();
    let ctx = zmq::Context::new();
    let d = ctx.socket(zmq::DEALER).unwrap();
    d.set_rcvtimeo(10_000).unwrap();
    d.connect(&endpoint).unwrap();
    let call = |frame: &Value| -> Value {
        d.send(frame.to_string().as_bytes(), 0).unwrap();
        serde_json::from_slice(&d.recv_bytes(0).unwrap()).unwrap()
    };

    // Forty keys spread over every node's partitions.
    let puts: Vec<Value> = (0..40)
        .map(|i| json!({"op": "PUT", "key": format!("b{i}"), "value": format!("v{i}"), "id": i}))
        .collect();
    let replies = call(&Value::Array(puts));
    let replies = replies.as_array().expect("a batch is answered by an array");
    assert_eq!(replies.len(), 40);
    for (i, r) in replies.iter().enumerate() {
        assert_eq!(r["ok"], json!(true), "{r}");
        assert_eq!(r["id"], json!(i), "replies are in request order");
    }

    let mut gets: Vec<Value> = (0..40)
        .rev()
        .map(|i| json!({"op": "GET_ONE", "key": format!("b{i}")}))
        .collect();
    gets.insert(5, json!({"op": "NOPE"}));
    let replies = call(&Value::Array(gets));
    let replies = replies.as_array().unwrap();
    assert_eq!(replies.len(), 41);
    assert!(replies[5]["error"].as_str().unwrap().contains("unknown op"));
    let values: Vec<&str> = replies
        .iter()
        .enumerate()
        .filter(|(i, _)| *i != 5)
        .map(|(_, r)| r["value"].as_str().unwrap())
        .collect();
    let expected: Vec<String> = (0..40).rev().map(|i| format!("v{i}")).collect();
    assert_eq!(values, expected);

    // Every key really is in the cluster, read through the smart client.
    let mut client = c.client();
    assert_eq!(client.get("b17").unwrap().as_deref(), Some("v17"));

    let empty = call(&json!([]));
    assert!(
        empty["error"].as_str().unwrap().contains("empty batch"),
        "{empty}"
    );
    let huge: Vec<Value> = (0..kvsh::node::protocol::MAX_BATCH + 1)
        .map(|_| json!({"op": "GET_ONE", "key": "x"}))
        .collect();
    let refused = call(&Value::Array(huge));
    assert_eq!(refused["code"], json!("too_large"), "{refused}");
    // The node still serves.
    assert_eq!(
        call(&json!({"op": "GET_ONE", "key": "b0"}))["value"],
        json!("v0")
    );
}

/// `GET_ALL` pages (issue #10, finding 2): walking the pages with small
/// limits, through different nodes, while another client writes new keys
/// and overwrites old ones, sees every key that was there throughout
/// exactly once and no key twice.
#[test]
fn pages_see_every_key_once_under_concurrent_writes() {
    use serde_json::{json, Value};
    use std::sync::atomic::{AtomicBool, Ordering};
    let c = cluster(4, 2);
    let mut client = c.client();
    for i in 0..3000 {
        client.put(&format!("base{i:04}"), "v").unwrap();
    }
    let eps: Vec<String> = c
        .status()
        .view
        .nodes
        .values()
        .map(|n| n.endpoint.clone())
        .collect();
    let ctx = zmq::Context::new();
    let sockets: Vec<zmq::Socket> = eps
        .iter()
        .map(|e| {
            let d = ctx.socket(zmq::DEALER).unwrap();
            d.set_rcvtimeo(10_000).unwrap();
            d.connect(e).unwrap();
            d
        })
        .collect();
    let stop = AtomicBool::new(false);
    let mut seen: BTreeMap<String, usize> = BTreeMap::new();
    let mut pages = 0;
    let written = std::thread::scope(|s| {
        let writer = s.spawn(|| {
            let mut w = c.client();
            let mut n = 0;
            while !stop.load(Ordering::Relaxed) {
                w.put(&format!("new{n}"), "v").unwrap();
                w.put(&format!("base{:04}", (n * 7) % 3000), "again")
                    .unwrap();
                n += 1;
            }
            n
        });
        let mut cursor = Value::Null;
        loop {
            let d = &sockets[pages % sockets.len()];
            let mut req = json!({"op": "GET_ALL", "limit": 100, "id": pages});
            if !cursor.is_null() {
                req["cursor"] = cursor.clone();
            }
            d.send(req.to_string().as_bytes(), 0).unwrap();
            let reply: Value = serde_json::from_slice(&d.recv_bytes(0).unwrap()).unwrap();
            let page = reply["collection"]
                .as_array()
                .unwrap_or_else(|| panic!("{reply}"));
            assert!(page.len() <= 100);
            for e in page {
                *seen
                    .entry(e["key"].as_str().unwrap().to_string())
                    .or_default() += 1;
            }
            pages += 1;
            match reply.get("cursor") {
                Some(c) => cursor = c.clone(),
                None => break,
            }
        }
        stop.store(true, Ordering::Relaxed);
        writer.join().unwrap()
    });
    assert!(pages >= 30, "{pages} pages for 3000+ keys");
    for i in 0..3000 {
        assert_eq!(seen.get(&format!("base{i:04}")), Some(&1), "base{i:04}");
    }
    let twice: Vec<_> = seen.iter().filter(|(_, n)| **n > 1).collect();
    assert!(twice.is_empty(), "seen twice: {twice:?}");
    // The kvsh client follows the cursors to the end, and sorts.
    let all = client.get_all(None, None).unwrap();
    assert_eq!(all.len(), 3000 + written);
    assert!(all.windows(2).all(|w| w[0].key < w[1].key));
    let first: Vec<String> = client
        .get_all(Some("base1"), Some(3))
        .unwrap()
        .into_iter()
        .map(|e| e.key)
        .collect();
    assert_eq!(first, ["base1000", "base1001", "base1002"]);
}

/// Issue #10, finding 5: after the primary of a key is cut off from every
/// other component, the client's next put of the key goes to the new
/// primary. The first put may reach the old primary within its lease; it
/// cannot commit there, and its outcome is reported unknown, never retried
/// blindly; but the client refreshes its view, and no later put goes back
/// to the silent node.
#[test]
fn puts_follow_a_primary_partitioned_away() {
    use kvsh::node::message::Address;
    let c = cluster(4, 2);
    let mut client = c.client();
    client.put("k", "v1").unwrap();
    let view = c.status().view.clone();
    let victim = view.primary(view.partition_of("k")).unwrap();
    c.faults().partition(vec![[Address::Node(victim)].into()]);
    // Returns once the write is done, or once the leader declares the old
    // primary dead (no answer is coming): the failover event.
    if let Err(e) = client.put("k", "v2") {
        assert!(e.is_indefinite(), "{e}");
        assert!(
            e.to_string().contains("outcome of this write is unknown"),
            "{e}"
        );
    }
    client.put("k", "v3").unwrap();
    assert_eq!(client.get("k").unwrap().as_deref(), Some("v3"));
    let view = c.status().view.clone();
    assert_ne!(view.primary(view.partition_of("k")), Some(victim));
    c.faults().heal();
    c.wait_healthy(Duration::from_secs(30), &|| false).unwrap();
    assert_eq!(client.get("k").unwrap().as_deref(), Some("v3"));
}

/// Issue #10, finding 5: the node refuses a value over the limit at once,
/// with the request's id, so the client reports `too_large` instead of
/// waiting out its timeout and blaming the node.
#[test]
fn a_value_over_the_limit_fails_with_too_large() {
    let c = cluster(2, 2);
    let mut client = c.client();
    let err = client.put("k", &"x".repeat(600_000)).unwrap_err();
    assert_eq!(err.code(), "too_large", "{err}");
    assert!(err.to_string().contains("value of 600000 bytes"), "{err}");
    client.put("k", "small").unwrap();
}

/// As above with the primary paused, so that it answers nothing at all:
/// the put that got no answer reports an unknown outcome, and the client
/// routes the next one by the view that declared the node dead.
#[test]
fn puts_follow_a_paused_primary() {
    let mut c = cluster(4, 2);
    let mut client = c.client();
    client.put("k", "v1").unwrap();
    let view = c.status().view.clone();
    let victim = view.primary(view.partition_of("k")).unwrap();
    c.pause(victim, Duration::from_secs(3)).unwrap();
    let err = client.put("k", "v2").unwrap_err();
    assert!(err.is_indefinite(), "{err}");
    assert!(err.to_string().contains("was declared dead"), "{err}");
    client.put("k", "v3").unwrap();
    assert_eq!(client.get("k").unwrap().as_deref(), Some("v3"));
    c.wait_healthy(Duration::from_secs(30), &|| false).unwrap();
    assert_eq!(client.get("k").unwrap().as_deref(), Some("v3"));
}

/// Issue #10, §7: each `check` and `bench` run has keys of its own. Three
/// checks with the same seed in one session find no violations (they used
/// to share `hot0..`, and the second read the first's values, "from the
/// future"), and a user's `hot0` and `bench:1` survive check and bench.
#[test]
fn check_and_bench_keep_to_their_own_keys() {
    use kvsh::shell::Shell;
    use serde_json::Value;
    let mut shell = Shell::new(cluster(4, 2), true, true, false);
    let mut run = |line: &str| -> Value {
        let mut out = Vec::new();
        shell
            .execute(line, &mut out)
            .unwrap_or_else(|e| panic!("{line}: {e}"));
        serde_json::from_slice(&out).unwrap_or_else(|e| panic!("{line}: {e}"))
    };
    run("put hot0 mine");
    run("put bench:1 mine-too");
    let mut prefixes = Vec::new();
    for i in 0..3 {
        let report = run("check --duration 2s --keys 5 --seed 7");
        assert_eq!(report["violations_count"], 0, "check {i}: {report}");
        assert!(report["ok"].as_u64().unwrap() > 50, "check {i} did work");
        prefixes.push(report["key_prefix"].as_str().unwrap().to_string());
    }
    prefixes.dedup();
    assert_eq!(prefixes.len(), 3, "each run has its own keys: {prefixes:?}");
    let bench = run("bench mixed --ops 2000 --keys 50");
    assert!(bench["cleaned"].as_u64().unwrap() > 0, "{bench}");
    assert_eq!(run("get hot0")["value"], "mine");
    assert_eq!(run("get bench:1")["value"], "mine-too");
    // Both cleaned up after themselves, and only after themselves.
    let keys = run("keys");
    let names: Vec<&str> = keys
        .as_array()
        .unwrap_or_else(|| panic!("{keys}"))
        .iter()
        .map(|k| k["key"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["bench:1", "hot0"]);
}
