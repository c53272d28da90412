//! Node processes on separate hosts (issue #12): each `kvsh node` runs in
//! a network namespace of its own, joined to the others by a bridge
//! (veth pairs, 10.x addresses), bound to its namespace's address, with
//! ZooKeeper on the bridge's address in the test's namespace. Nothing
//! reaches another node over loopback: every peer, client and control
//! connection crosses the bridge, as between hosts.
//!
//! Needs root and `ip netns` (iproute2). Where either is missing, or
//! creating a namespace fails (a container without CAP_SYS_ADMIN), the
//! test says why it skipped and passes. Every namespace, veth pair and the
//! bridge are removed by a Drop guard, so a failing assertion leaves
//! nothing behind.

#[path = "common/node.rs"]
mod node;
#[path = "common/zk.rs"]
mod zk;

use kvsh::cluster::client::ViewSource;
use kvsh::cluster::leader::Status;
use kvsh::cluster::Client;
use kvsh::coord::zk::ZkMembership;
use kvsh::coord::Membership;
use kvsh::view::NodeId;
use node::spawn_node;
use serde_json::json;
use std::collections::BTreeMap;
use std::process::{Child, Command};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use zk::Zk;

const SECRET: &str = "netns test secret, 16 bytes or more";
const NODES: u8 = 3;

/// Runs `ip ARGS`; the error says which command failed and why.
fn ip(args: &[&str]) -> Result<(), String> {
    let out = Command::new("ip")
        .args(args)
        .output()
        .map_err(|e| format!("cannot run ip: {e}"))?;
    if out.status.success() {
        Ok(())
    } else {
        Err(format!(
            "`ip {}` failed: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr).trim()
        ))
    }
}

/// The namespaces and links made so far; Drop removes them all.
struct Net {
    tag: String,
    /// 10.A.B: the bridge is .1, node i is .(10 + i).
    subnet: String,
    namespaces: Vec<String>,
    links: Vec<String>,
}

impl Net {
    /// A bridge and `NODES` namespaces on it, or why not.
    fn build() -> Result<Net, String> {
        if unsafe { libc::geteuid() } != 0 {
            return Err("not root".into());
        }
        let pid = std::process::id();
        let mut net = Net {
            tag: format!("kv{}", pid % 1_000_000),
            subnet: format!("10.213.{}", pid % 250),
            namespaces: Vec::new(),
            links: Vec::new(),
        };
        let first = format!("{}n1", net.tag);
        ip(&["netns", "add", &first])?;
        net.namespaces.push(first);
        let bridge = format!("{}br", net.tag);
        ip(&["link", "add", &bridge, "type", "bridge"])?;
        net.links.push(bridge.clone());
        ip(&[
            "addr",
            "add",
            &format!("{}.1/24", net.subnet),
            "dev",
            &bridge,
        ])?;
        ip(&["link", "set", &bridge, "up"])?;
        for i in 1..=NODES {
            let ns = format!("{}n{i}", net.tag);
            if i > 1 {
                ip(&["netns", "add", &ns])?;
                net.namespaces.push(ns.clone());
            }
            let (outer, inner) = (format!("{}a{i}", net.tag), format!("{}b{i}", net.tag));
            ip(&[
                "link", "add", &outer, "type", "veth", "peer", "name", &inner,
            ])?;
            net.links.push(outer.clone());
            ip(&["link", "set", &outer, "master", &bridge])?;
            ip(&["link", "set", &outer, "up"])?;
            ip(&["link", "set", &inner, "netns", &ns])?;
            let addr = format!("{}/24", net.addr(i));
            ip(&["-n", &ns, "addr", "add", &addr, "dev", &inner])?;
            ip(&["-n", &ns, "link", "set", &inner, "up"])?;
            ip(&["-n", &ns, "link", "set", "lo", "up"])?;
        }
        Ok(net)
    }

    fn host(&self) -> String {
        format!("{}.1", self.subnet)
    }

    fn addr(&self, node: u8) -> String {
        format!("{}.{}", self.subnet, 10 + node)
    }

    fn namespace(&self, node: u8) -> String {
        format!("{}n{node}", self.tag)
    }
}

impl Drop for Net {
    fn drop(&mut self) {
        // Deleting a namespace deletes the veth ends in it, and with them
        // their peers; the bridge goes by name.
        for ns in &self.namespaces {
            let _ = ip(&["netns", "del", ns]);
        }
        for l in self.links.iter().rev() {
            let _ = ip(&["link", "del", l]);
        }
    }
}

/// The node processes; Drop kills what is left.
struct Nodes(BTreeMap<NodeId, Child>);

impl Drop for Nodes {
    fn drop(&mut self) {
        for c in self.0.values_mut() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

fn spawn(net: &Net, zk: &Zk, i: u8) -> Child {
    // `ip netns exec` enters the namespace and execs kvsh: the child's
    // pid is the node's, so kill -9 reaches the node itself.
    let mut cmd = Command::new("ip");
    cmd.args(["netns", "exec", &net.namespace(i)])
        .arg(env!("CARGO_BIN_EXE_kvsh"))
        .args(["node", "--coord", &zk.url("/kvsh/netns")])
        .args(["--id", &format!("n{i}"), "--bind", &net.addr(i)])
        .args(["--partitions", "16", "--replicas", "2", "--expect", "3"])
        .args(["--session-timeout", "3000ms"])
        .env("KVSH_SECRET", SECRET);
    let (child, clients, _) = spawn_node(cmd, false);
    let want = format!("tcp://{}:", net.addr(i));
    assert!(
        clients.starts_with(&want),
        "n{i} serves clients at {clients}"
    );
    child
}

fn wait(zk: &ZkMembership, what: &str, ok: impl Fn(&Status) -> bool) -> Status {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        if let Some(s) = zk.load_status().unwrap() {
            if ok(&s) {
                return s;
            }
        }
        assert!(Instant::now() < deadline, "not {what} after 60 s");
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn call(ctx: &zmq::Context, endpoint: &str, body: &serde_json::Value) -> serde_json::Value {
    let s = ctx.socket(zmq::REQ).unwrap();
    s.set_linger(0).unwrap();
    s.set_rcvtimeo(10_000).unwrap();
    s.connect(endpoint).unwrap();
    s.send(body.to_string().as_bytes(), 0).unwrap();
    let reply = s.recv_bytes(0).expect("a reply within 10 s");
    serde_json::from_slice(&reply).unwrap()
}

#[test]
fn node_processes_in_separate_network_namespaces() {
    if !zk::installed() {
        return;
    }
    let net = match Net::build() {
        Ok(n) => n,
        Err(why) => {
            eprintln!("SKIPPED: no network namespaces here: {why}");
            return;
        }
    };
    // ZooKeeper on the bridge's address, reachable from every namespace.
    let zk = Zk::start_on(&net.host());
    let mut nodes = Nodes(BTreeMap::new());
    for i in 1..=NODES {
        nodes.0.insert(i as NodeId, spawn(&net, &zk, i));
    }
    let membership =
        ZkMembership::connect(&zk.addr, "/kvsh/netns", Duration::from_secs(5)).unwrap();
    let s = wait(&membership, "healthy", |s| {
        s.healthy && s.view.nodes.len() == NODES as usize && s.caught_up()
    });
    // Every port of every node is on its namespace's address.
    for (id, n) in &s.view.nodes {
        let host = format!("tcp://{}:", net.addr(*id as u8));
        assert!(
            n.endpoint.starts_with(&host) && n.peer_endpoint.starts_with(&host),
            "n{id}: {} {}",
            n.endpoint,
            n.peer_endpoint
        );
    }
    let members = membership.members().unwrap();
    assert_eq!(members.len(), NODES as usize);

    // Put through every node, get every key through every node.
    let ctx = zmq::Context::new();
    for (i, m) in members.iter().enumerate() {
        for k in 0..20 {
            let key = format!("ns{i}-{k}");
            let put = json!({"op": "PUT", "key": key, "value": format!("v{k}")});
            assert_eq!(
                call(&ctx, &m.endpoint, &put),
                json!({"ok": true, "key": key})
            );
        }
    }
    for m in &members {
        for i in 0..members.len() {
            for k in 0..20 {
                let key = format!("ns{i}-{k}");
                assert_eq!(
                    call(&ctx, &m.endpoint, &json!({"op": "GET_ONE", "key": key})),
                    json!({"key": key, "value": format!("v{k}")}),
                    "through n{}",
                    m.id
                );
            }
        }
    }

    // kill -9 of a node process (not the leader's) under writes.
    let leader = membership.leader().unwrap().unwrap().node;
    let victim = (1..=NODES as NodeId).find(|n| *n != leader).unwrap();
    let endpoints = members.iter().map(|m| m.endpoint.clone()).collect();
    let mut client = Client::new(zmq::Context::new(), ViewSource::Endpoints(endpoints));
    client.timeout = Duration::from_secs(10);
    let stop = Arc::new(AtomicBool::new(false));
    let count = Arc::new(AtomicUsize::new(0));
    let writer = {
        let (stop, count) = (stop.clone(), count.clone());
        std::thread::spawn(move || {
            let mut acked = BTreeMap::new();
            let mut i = 0u64;
            while !stop.load(Ordering::Relaxed) {
                let (key, value) = (format!("w:{i}"), format!("v{i}"));
                if client.put(&key, &value).is_ok() {
                    acked.insert(key, value);
                    count.fetch_add(1, Ordering::Relaxed);
                }
                i += 1;
            }
            acked
        })
    };
    let wait_count = |n: usize| {
        let deadline = Instant::now() + Duration::from_secs(60);
        while count.load(Ordering::Relaxed) < n {
            assert!(Instant::now() < deadline, "writes stalled");
            std::thread::sleep(Duration::from_millis(10));
        }
    };
    wait_count(100);
    let mut dead = nodes.0.remove(&victim).unwrap();
    dead.kill().unwrap();
    dead.wait().unwrap();
    wait(
        &membership,
        "the victim out and every partition served",
        |s| {
            s.view
                .nodes
                .get(&victim)
                .is_none_or(|n| n.state != kvsh::view::NodeState::Up)
                && s.unavailable == 0
        },
    );
    let at = count.load(Ordering::Relaxed);
    wait_count(at + 100);
    stop.store(true, Ordering::Relaxed);
    let acked = writer.join().unwrap();
    // The victim's member znode lasts until its session expires.
    let alive: Vec<String> = members
        .iter()
        .filter(|m| m.id != victim)
        .map(|m| m.endpoint.clone())
        .collect();
    let mut reader = Client::new(zmq::Context::new(), ViewSource::Endpoints(alive));
    reader.timeout = Duration::from_secs(10);
    for (k, v) in &acked {
        assert_eq!(reader.get(k).unwrap().as_deref(), Some(v.as_str()), "{k}");
    }
    eprintln!(
        "{} acknowledged writes across the kill -9 of n{victim}, all read back",
        acked.len()
    );
}
