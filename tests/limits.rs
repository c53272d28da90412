//! Memory bounds against a hostile client (issue #10, finding 2): a cluster
//! runs in this process, plain ZeroMQ DEALER clients attack it the way the
//! issue did, and the process's peak resident memory (VmHWM) must stay
//! under 512 MiB, after which the cluster must still serve.
//!
//! One test in this file, on purpose: the peak is the whole process's, so
//! nothing else may run beside it. `cargo test --test limits -- --nocapture`
//! prints the figures.

use kvsh::cluster::{Cluster, ClusterConfig};
use kvsh::node::protocol::MAX_EXPENSIVE_PER_BATCH;
use serde_json::{json, Value};
use std::time::Duration;

const KEYS: usize = 10_000;
const BOUND_KB: u64 = 512 * 1024;

/// A field of /proc/self/status, in kB.
fn status_kb(field: &str) -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    status
        .lines()
        .find_map(|l| l.strip_prefix(field))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or_else(|| panic!("{field} in /proc/self/status"))
}

fn dealer(ctx: &zmq::Context, endpoint: &str) -> zmq::Socket {
    let s = ctx.socket(zmq::DEALER).unwrap();
    s.set_linger(0).unwrap();
    s.set_rcvtimeo(60_000).unwrap();
    s.connect(endpoint).unwrap();
    s
}

fn recv(s: &zmq::Socket) -> (Value, usize) {
    let bytes = s.recv_bytes(0).expect("a reply within 60 s");
    (serde_json::from_slice(&bytes).unwrap(), bytes.len())
}

/// Sends one batch frame and returns its reply array and its size.
fn batch(s: &zmq::Socket, requests: &[Value]) -> (Vec<Value>, usize) {
    s.send(Value::from(requests.to_vec()).to_string().as_bytes(), 0)
        .unwrap();
    let (reply, bytes) = recv(s);
    let Value::Array(replies) = reply else {
        panic!("a batch reply is an array: {reply}");
    };
    assert_eq!(replies.len(), requests.len());
    (replies, bytes)
}

fn code(r: &Value) -> &str {
    r["code"].as_str().unwrap_or("")
}

#[test]
fn hostile_clients_cannot_exhaust_memory() {
    let c = Cluster::start(
        ClusterConfig {
            nodes: 4,
            replicas: 2,
            ..ClusterConfig::default()
        },
        None,
    )
    .expect("cluster starts");
    let status = c.status();
    let eps: Vec<String> = status
        .view
        .nodes
        .values()
        .map(|n| n.endpoint.clone())
        .collect();
    let ctx = zmq::Context::new();
    let loader = dealer(&ctx, &eps[0]);
    let value = "v".repeat(200);
    for chunk in (0..KEYS).collect::<Vec<_>>().chunks(500) {
        let puts: Vec<Value> = chunk
            .iter()
            .map(|i| json!({"op": "PUT", "key": format!("key{i}"), "value": value}))
            .collect();
        let (replies, _) = batch(&loader, &puts);
        assert!(
            replies.iter().all(|r| r["ok"] == json!(true)),
            "{replies:?}"
        );
    }
    let loaded = status_kb("VmRSS:");

    // 1. 256 GET_ALLs at once, from 256 clients, spread over the nodes.
    let clients: Vec<zmq::Socket> = (0..256)
        .map(|i| dealer(&ctx, &eps[i % eps.len()]))
        .collect();
    for (i, s) in clients.iter().enumerate() {
        s.send(json!({"op": "GET_ALL", "id": i}).to_string().as_bytes(), 0)
            .unwrap();
    }
    let (mut pages, mut busy) = (0, 0);
    for (i, s) in clients.iter().enumerate() {
        let (r, _) = recv(s);
        assert_eq!(r["id"], json!(i), "{r}");
        if r["collection"].is_array() {
            pages += 1;
        } else {
            assert_eq!(code(&r), "busy", "a page or busy: {r}");
            busy += 1;
        }
    }
    assert!(pages > 0, "some pages were served");
    let after_concurrent = status_kb("VmHWM:");

    // 2. One batch frame of 1024 GET_ALLs.
    let s = dealer(&ctx, &eps[1]);
    let all: Vec<Value> = (0..1024)
        .map(|i| json!({"op": "GET_ALL", "id": i}))
        .collect();
    let (replies, get_all_bytes) = batch(&s, &all);
    let served = replies
        .iter()
        .filter(|r| r["collection"].is_array())
        .count();
    assert!(
        served <= MAX_EXPENSIVE_PER_BATCH,
        "{served} pages in one batch"
    );
    for r in &replies {
        assert!(
            r["collection"].is_array() || ["too_large", "busy"].contains(&code(r)),
            "{r}"
        );
    }
    let after_batch = status_kb("VmHWM:");

    // 3. One batch frame of 1024 VIEWs.
    let views: Vec<Value> = (0..1024).map(|i| json!({"op": "VIEW", "id": i})).collect();
    let (replies, view_bytes) = batch(&s, &views);
    let served = replies.iter().filter(|r| r["view"].is_object()).count();
    assert!(
        served <= MAX_EXPENSIVE_PER_BATCH,
        "{served} views in one batch"
    );
    assert!(view_bytes < 16 << 20, "a reply of {view_bytes} bytes");

    // 4. One batch of 1024 reads of values at the limit (512 KiB), sent to
    // the keys' primary: the reply stays within the batch's budget.
    let big = "b".repeat(512 * 1024);
    let mut client = c.client();
    for i in 0..8 {
        client.put(&format!("big{i}"), &big).unwrap();
    }
    let view = &c.status().view;
    let primary = view.primary(view.partition_of("big0")).unwrap();
    let s = dealer(&ctx, view.endpoint(primary).unwrap());
    let gets: Vec<Value> = (0..1024)
        .map(|i| json!({"op": "GET_ONE", "key": "big0", "id": i}))
        .collect();
    let (replies, big_bytes) = batch(&s, &gets);
    assert!(big_bytes < 16 << 20, "a reply of {big_bytes} bytes");
    assert!(replies.iter().any(|r| r["value"].is_string()));
    assert!(replies
        .iter()
        .all(|r| r["value"].is_string() || code(r) == "too_large"));

    let peak = status_kb("VmHWM:");
    eprintln!(
        "RSS after loading {KEYS} keys: {} MiB; peak after 256 concurrent GET_ALLs \
         ({pages} pages, {busy} busy): {} MiB; after a batch of 1024 GET_ALLs \
         (reply {get_all_bytes} B): {} MiB; after a batch of 1024 VIEWs (reply {view_bytes} B) \
         and 1024 big reads (reply {big_bytes} B): {} MiB",
        loaded / 1024,
        after_concurrent / 1024,
        after_batch / 1024,
        peak / 1024
    );
    assert!(peak < BOUND_KB, "peak RSS {} MiB", peak / 1024);

    // Still serving.
    client.put("after", "attack").unwrap();
    assert_eq!(client.get("after").unwrap().as_deref(), Some("attack"));
    assert_eq!(client.get("key9999").unwrap(), Some(value));
    c.wait_healthy(Duration::from_secs(30), &|| false).unwrap();
}
