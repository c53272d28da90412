//! The ceiling the transport sets, in kvsh's shape, with no kvsh code in
//! the servers, driven by kvsh's own `bench` client.
//!
//! Starts N bare servers (threads) in this process, each the shape of a
//! kvsh node and nothing more: one thread owning a ZeroMQ ROUTER on a
//! loopback TCP port for clients, a ROUTER on an `inproc://` endpoint for
//! its peers and a DEALER to the next server, all on one ZeroMQ context with
//! its default single I/O thread, as `Cluster::start` makes them. Each
//! server parses the JSON requests of the external protocol (`PUT`,
//! `GET_ONE`, `DELETE`; a frame may be a batch array), keeps pairs in a
//! `HashMap`, and answers with the JSON replies `bench` reads. With
//! `--replicas 2` (the default) every write is sent to the next server and
//! acknowledged to the client only when that server has applied it, as
//! kvsh's synchronous replication does: one peer message per pass of the
//! loop, carrying every write of that pass. There are no views, epochs,
//! leases, checks, limits or authentication: what is left is what any server
//! in this shape must do, so what it reaches is the most kvsh's shape can.
//!
//! The load comes from `kvsh::bench::run`, the same event-loop client, the
//! same arguments and the same report as `examples/bench.rs`, pointed at a
//! view that names the bare servers: partition `p` has server `p mod N` as
//! primary and the next server as secondary.
//!
//! ```text
//! cargo run --release --example bare_ceiling -- get --pinned --clients 50 --ops 200000
//! cargo run --release --example bare_ceiling -- --json put --pinned --clients 50
//! ```
//!
//! Options before the bench kind: `--nodes N` (default 3), `--replicas R`
//! (1 or 2, default 2), `--partitions P` (default 1024), `--json`.
//! `scripts/bench-rounds.sh` runs it beside kvsh and Redis in each round.

use kvsh::bench::{self, BenchConfig, Target};
use kvsh::cluster::status::Status;
use kvsh::cluster::watch::Watch;
use kvsh::view::{NodeInfo, NodeState, PartitionInfo, Replica, View};
use serde::Deserialize;
use std::borrow::Cow;
use std::collections::HashMap;
use std::io::Write;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;

/// One request of the external protocol, borrowed from its frame.
#[derive(Deserialize)]
struct Request<'a> {
    #[serde(borrow)]
    op: Cow<'a, str>,
    #[serde(borrow, default)]
    key: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    value: Option<Cow<'a, str>>,
    #[serde(default)]
    id: Option<u64>,
}

/// A frame: one request, or a batch of them.
#[derive(Deserialize)]
#[serde(untagged)]
enum Frame<'a> {
    #[serde(borrow)]
    Many(Vec<Request<'a>>),
    #[serde(borrow)]
    One(Request<'a>),
}

/// A write waiting for the next server's acknowledgement.
struct Pending {
    client: Vec<u8>,
    id: Option<u64>,
}

/// One bare server's state, owned by its thread.
struct Server {
    client: zmq::Socket,
    peer_in: zmq::Socket,
    next: Option<zmq::Socket>,
    store: HashMap<String, String>,
    pending: HashMap<u64, Pending>,
    next_token: u64,
    /// Replies of the frame being answered, and the replication message of
    /// this pass: reused buffers.
    reply: Vec<u8>,
    replicate: Vec<u8>,
    acks: Vec<u8>,
}

impl Server {
    /// Answers one request into `self.reply` (appending, comma-separated if
    /// `first` is false), or queues it for replication and returns false.
    fn serve(&mut self, from: &[u8], r: Request, first: bool) -> bool {
        let key = r.key.as_deref().unwrap_or("");
        let write = match &*r.op {
            "GET_ONE" => {
                if !first {
                    self.reply.push(b',');
                }
                let _ = write!(self.reply, r#"{{"id":{},"key":"#, r.id.unwrap_or(0));
                let _ = serde_json::to_writer(&mut self.reply, key);
                self.reply.extend_from_slice(b",\"value\":");
                let _ = serde_json::to_writer(&mut self.reply, &self.store.get(key));
                self.reply.push(b'}');
                return true;
            }
            "PUT" => {
                let value = r.value.as_deref().unwrap_or("");
                self.store.insert(key.to_owned(), value.to_owned());
                Some(value)
            }
            "DELETE" => {
                self.store.remove(key);
                None
            }
            _ => {
                if !first {
                    self.reply.push(b',');
                }
                let _ = write!(
                    self.reply,
                    r#"{{"id":{},"error":"unknown op","code":"bad_request"}}"#,
                    r.id.unwrap_or(0)
                );
                return true;
            }
        };
        if self.next.is_none() {
            if !first {
                self.reply.push(b',');
            }
            let _ = write!(self.reply, r#"{{"id":{},"ok":true}}"#, r.id.unwrap_or(0));
            return true;
        }
        // token, key, value (or none: a delete), length-prefixed.
        let token = self.next_token;
        self.next_token += 1;
        self.replicate.extend_from_slice(&token.to_le_bytes());
        self.replicate
            .extend_from_slice(&(key.len() as u32).to_le_bytes());
        self.replicate.extend_from_slice(key.as_bytes());
        match write {
            Some(v) => {
                self.replicate
                    .extend_from_slice(&(v.len() as u32).to_le_bytes());
                self.replicate.extend_from_slice(v.as_bytes());
            }
            None => self.replicate.extend_from_slice(&u32::MAX.to_le_bytes()),
        }
        self.pending.insert(
            token,
            Pending {
                client: from.to_vec(),
                id: r.id,
            },
        );
        false
    }

    /// Reads every client frame waiting, answers reads at once, and sends
    /// this pass's writes to the next server in one message.
    fn drain_clients(&mut self) {
        while let Ok(parts) = self.client.recv_multipart(zmq::DONTWAIT) {
            let [from, payload] = &parts[..] else {
                continue;
            };
            self.reply.clear();
            let answered = match serde_json::from_slice::<Frame>(payload) {
                Ok(Frame::One(r)) => usize::from(self.serve(from, r, true)),
                Ok(Frame::Many(rs)) => {
                    self.reply.push(b'[');
                    let mut n = 0;
                    for r in rs {
                        if self.serve(from, r, n == 0) {
                            n += 1;
                        }
                    }
                    self.reply.push(b']');
                    n
                }
                Err(e) => {
                    let _ = write!(
                        self.reply,
                        r#"{{"error":"{}","code":"bad_request"}}"#,
                        e.to_string().replace('"', "'")
                    );
                    1
                }
            };
            if answered > 0 {
                let _ = self
                    .client
                    .send_multipart([from.as_slice(), &self.reply], zmq::DONTWAIT);
            }
        }
        if !self.replicate.is_empty() {
            if let Some(next) = &self.next {
                let _ = next.send(&self.replicate, zmq::DONTWAIT);
            }
            self.replicate.clear();
        }
    }

    /// Applies writes from the previous server and acknowledges them.
    fn drain_peers(&mut self) {
        while let Ok(parts) = self.peer_in.recv_multipart(zmq::DONTWAIT) {
            let [from, body] = &parts[..] else {
                continue;
            };
            self.acks.clear();
            let mut rest = &body[..];
            while rest.len() >= 12 {
                let token = &rest[..8];
                let klen = u32::from_le_bytes(rest[8..12].try_into().unwrap_or_default()) as usize;
                let Some(key) = rest.get(12..12 + klen) else {
                    break;
                };
                let at = 12 + klen;
                let Some(vlen) = rest.get(at..at + 4) else {
                    break;
                };
                let vlen = u32::from_le_bytes(vlen.try_into().unwrap_or_default());
                let key = String::from_utf8_lossy(key).into_owned();
                let mut end = at + 4;
                if vlen == u32::MAX {
                    self.store.remove(&key);
                } else {
                    end += vlen as usize;
                    let Some(v) = rest.get(at + 4..end) else {
                        break;
                    };
                    self.store
                        .insert(key, String::from_utf8_lossy(v).into_owned());
                }
                self.acks.extend_from_slice(token);
                rest = &rest[end..];
            }
            let _ = self
                .peer_in
                .send_multipart([from.as_slice(), &self.acks], zmq::DONTWAIT);
        }
    }

    /// Answers the clients whose writes the next server acknowledged.
    fn drain_acks(&mut self) {
        let Some(next) = &self.next else { return };
        while let Ok(acks) = next.recv_bytes(zmq::DONTWAIT) {
            for t in acks.chunks_exact(8) {
                let token = u64::from_le_bytes(t.try_into().unwrap_or_default());
                if let Some(p) = self.pending.remove(&token) {
                    self.reply.clear();
                    let _ = write!(self.reply, r#"{{"id":{},"ok":true}}"#, p.id.unwrap_or(0));
                    let _ = self
                        .client
                        .send_multipart([p.client.as_slice(), &self.reply], zmq::DONTWAIT);
                }
            }
        }
    }

    fn run(mut self, stop: &AtomicBool) {
        while !stop.load(Ordering::Relaxed) {
            let mut items = vec![
                self.client.as_poll_item(zmq::POLLIN),
                self.peer_in.as_poll_item(zmq::POLLIN),
            ];
            if let Some(next) = &self.next {
                items.push(next.as_poll_item(zmq::POLLIN));
            }
            if zmq::poll(&mut items, 100).is_err() {
                continue;
            }
            drop(items);
            self.drain_peers();
            self.drain_acks();
            self.drain_clients();
        }
    }
}

/// The bare servers as a bench target.
struct Bare {
    watch: Watch<Status>,
    runs: AtomicU64,
}

impl Target for Bare {
    fn status_watch(&self) -> Watch<Status> {
        self.watch.clone()
    }

    fn run_id(&self) -> u64 {
        self.runs.fetch_add(1, Ordering::Relaxed) + 1
    }
}

fn start(
    ctx: &zmq::Context,
    nodes: usize,
    replicas: usize,
    stop: &Arc<AtomicBool>,
) -> Result<Vec<String>, zmq::Error> {
    let tag = std::process::id();
    let mut endpoints = Vec::new();
    let mut servers = Vec::new();
    for i in 0..nodes {
        let client = ctx.socket(zmq::ROUTER)?;
        client.set_linger(0)?;
        client.set_sndhwm(100_000)?;
        client.set_rcvhwm(100_000)?;
        client.bind("tcp://127.0.0.1:*")?;
        endpoints.push(client.get_last_endpoint()?.unwrap_or_default());
        let peer_in = ctx.socket(zmq::ROUTER)?;
        peer_in.set_linger(0)?;
        peer_in.bind(&format!("inproc://bare-{tag}-{i}"))?;
        servers.push((client, peer_in));
    }
    for (i, (client, peer_in)) in servers.into_iter().enumerate() {
        let next = if replicas > 1 {
            let s = ctx.socket(zmq::DEALER)?;
            s.set_linger(0)?;
            s.connect(&format!("inproc://bare-{tag}-{}", (i + 1) % nodes))?;
            Some(s)
        } else {
            None
        };
        let server = Server {
            client,
            peer_in,
            next,
            store: HashMap::new(),
            pending: HashMap::new(),
            next_token: 0,
            reply: Vec::new(),
            replicate: Vec::new(),
            acks: Vec::new(),
        };
        let stop = stop.clone();
        std::thread::Builder::new()
            .name(format!("bare-{i}"))
            .spawn(move || {
                // The nodes' scheduling policy (src/node/sched.rs), so that
                // the two shapes differ only in what the servers do.
                kvsh::node::sched::batch_scheduling();
                server.run(&stop)
            })
            .map_err(|_| zmq::Error::EAGAIN)?;
    }
    Ok(endpoints)
}

/// The view the bench routes by: partition `p` led by server `p mod N`,
/// the next server its secondary.
fn view(endpoints: &[String], replicas: usize, partitions: u32) -> View {
    let n = endpoints.len();
    View {
        epoch: 1,
        replication: replicas,
        nodes: endpoints
            .iter()
            .enumerate()
            .map(|(i, e)| {
                (
                    i as u32 + 1,
                    NodeInfo {
                        endpoint: e.clone(),
                        peer_endpoint: String::new(),
                        incarnation: 1,
                        state: NodeState::Up,
                    },
                )
            })
            .collect(),
        partitions: (0..partitions as usize)
            .map(|p| PartitionInfo {
                term: 1,
                term_epoch: 1,
                replicas: (0..replicas)
                    .map(|r| Replica {
                        node: ((p + r) % n) as u32 + 1,
                        in_sync: true,
                        since: 1,
                    })
                    .collect(),
            })
            .collect(),
    }
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let (mut nodes, mut replicas, mut partitions, mut json) = (3usize, 2usize, 1024u32, false);
    let mut i = 0;
    while i < args.len() {
        let next = || args.get(i + 1).and_then(|v| v.parse::<usize>().ok());
        match args[i].as_str() {
            "--nodes" => nodes = next().filter(|n| *n >= 1).unwrap_or(nodes),
            "--replicas" => replicas = next().filter(|r| (1..=2).contains(r)).unwrap_or(replicas),
            "--partitions" => partitions = next().map_or(partitions, |p| p.max(1) as u32),
            "--json" => {
                json = true;
                i += 1;
                continue;
            }
            _ => break,
        }
        i += 2;
    }
    let replicas = replicas.min(nodes);
    let cfg: BenchConfig = match bench::bench_parse(&args[i..]) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("Error: {e}");
            std::process::exit(2);
        }
    };
    let ctx = zmq::Context::new();
    let stop = Arc::new(AtomicBool::new(false));
    let endpoints = match start(&ctx, nodes, replicas, &stop) {
        Ok(e) => e,
        Err(e) => {
            eprintln!("Error: cannot start the bare servers: {e}");
            std::process::exit(1);
        }
    };
    let target = Bare {
        watch: Watch::new(Status {
            view: view(&endpoints, replicas, partitions),
            ..Status::default()
        }),
        runs: AtomicU64::new(0),
    };
    match bench::run(&target, &cfg, false, &|| false) {
        Ok(report) => {
            if json {
                println!("{}", report.json());
            } else {
                println!("bare servers: {nodes}, {replicas} replicas per write (no kvsh code)");
                println!("{}", report.text());
            }
        }
        Err(e) => {
            eprintln!("Error: {e}");
            std::process::exit(1);
        }
    }
    stop.store(true, Ordering::Relaxed);
}
