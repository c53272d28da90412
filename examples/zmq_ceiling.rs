//! The ceiling the transport sets: how many requests per second bare
//! ZeroMQ carries in the shape of a `bench` run, with no kvsh code at all.
//!
//! Starts E echo threads (a ROUTER each that sends every message back, in
//! one context, as the nodes share the cluster's) and C client threads (a
//! DEALER each, in a second context, as the bench's clients have), each
//! client tied to one echo (`bench --pinned`) and keeping P messages of
//! the size of a `GET_ONE` in flight. Echoes and clients run under
//! `SCHED_BATCH`, as kvsh's nodes and bench clients do. With one message in
//! flight per client, a `bench get --pinned` run can go no faster than
//! this: the ratio of the two is how much of the budget kvsh's own work
//! takes, and the ratio of this to `redis-benchmark` is how much the
//! transport leaves for any ZeroMQ store on this machine. (With a pipeline,
//! `bench --batch` packs requests into one frame where this sends a message
//! each, so there it is no ceiling.)
//!
//! ```text
//! cargo run --release --example zmq_ceiling -- --clients 50 --pipeline 1 --duration 5
//! cargo run --release --example zmq_ceiling -- --clients 50 --pipeline 16 --json
//! ```
//!
//! Options: `--clients C` (50), `--echoes E` (3), `--pipeline P` (1),
//! `--duration D` in seconds (5), `--json`.

use kvsh::bench::Echo;
use kvsh::node::transport::dealer;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Barrier};
use std::time::{Duration, Instant};

/// About the size of a bench `GET_ONE` request.
const PAYLOAD: &[u8] = br#"{"op":"GET_ONE","key":"bench:12345","id":123456}"#;

struct Options {
    clients: usize,
    echoes: usize,
    pipeline: usize,
    duration: f64,
    json: bool,
}

fn parse(args: &[String]) -> Result<Options, String> {
    let mut o = Options {
        clients: 50,
        echoes: 3,
        pipeline: 1,
        duration: 5.0,
        json: false,
    };
    let mut it = args.iter();
    while let Some(a) = it.next() {
        let mut num = |name: &str| -> Result<f64, String> {
            it.next()
                .and_then(|v| v.parse::<f64>().ok())
                .filter(|v| *v > 0.0)
                .ok_or(format!("{name} needs a positive number"))
        };
        match a.as_str() {
            "--clients" => o.clients = num("--clients")? as usize,
            "--echoes" => o.echoes = num("--echoes")? as usize,
            "--pipeline" => o.pipeline = num("--pipeline")? as usize,
            "--duration" => o.duration = num("--duration")?,
            "--json" => o.json = true,
            other => return Err(format!("unknown option {other:?}")),
        }
    }
    if o.clients == 0 || o.echoes == 0 || o.pipeline == 0 {
        return Err("--clients, --echoes and --pipeline must be at least 1".into());
    }
    Ok(o)
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let o = match parse(&args) {
        Ok(o) => o,
        Err(e) => {
            eprintln!("Error: {e}");
            std::process::exit(2);
        }
    };
    let server_ctx = zmq::Context::new();
    let echoes: Vec<Echo> = match (0..o.echoes).map(|_| Echo::start(&server_ctx)).collect() {
        Ok(e) => e,
        Err(e) => {
            eprintln!("Error: {e}");
            std::process::exit(1);
        }
    };
    let client_ctx = zmq::Context::new();
    let stop = Arc::new(AtomicBool::new(false));
    let total = Arc::new(AtomicU64::new(0));
    // Clients that could not connect, or lost a message: their share of
    // the figure is missing, so the run says so.
    let failed = Arc::new(AtomicU64::new(0));
    let start = Arc::new(Barrier::new(o.clients + 1));
    let mut threads = Vec::with_capacity(o.clients);
    for c in 0..o.clients {
        let endpoint = echoes[c % echoes.len()].endpoint().to_string();
        let (ctx, stop, total, start, failed) = (
            client_ctx.clone(),
            stop.clone(),
            total.clone(),
            start.clone(),
            failed.clone(),
        );
        let pipeline = o.pipeline;
        threads.push(std::thread::spawn(move || {
            // Scheduled as bench clients are.
            kvsh::node::sched::batch_scheduling();
            let socket = dealer(&ctx, &endpoint).and_then(|s| {
                s.set_rcvtimeo(2000)?;
                Ok(s)
            });
            if let Ok(s) = &socket {
                let _ = s.poll(zmq::POLLOUT, 2000);
            }
            start.wait();
            let Ok(socket) = socket else {
                failed.fetch_add(1, Ordering::Relaxed);
                return;
            };
            let mut n = 0u64;
            let mut msg = zmq::Message::new();
            // Send P, wait for P: the shape of `bench --batch P`, without
            // the batch (each message is its own ZeroMQ frame).
            while !stop.load(Ordering::Relaxed) {
                let sent = (0..pipeline)
                    .take_while(|_| socket.send(PAYLOAD, 0).is_ok())
                    .count();
                let got = (0..sent)
                    .take_while(|_| socket.recv(&mut msg, 0).is_ok())
                    .count();
                n += got as u64;
                if got < pipeline {
                    failed.fetch_add(1, Ordering::Relaxed);
                    break;
                }
            }
            total.fetch_add(n, Ordering::Relaxed);
        }));
    }
    start.wait();
    let began = Instant::now();
    std::thread::sleep(Duration::from_secs_f64(o.duration));
    stop.store(true, Ordering::Relaxed);
    for t in threads {
        let _ = t.join();
    }
    let secs = began.elapsed().as_secs_f64();
    let rate = total.load(Ordering::Relaxed) as f64 / secs;
    let failed = failed.load(Ordering::Relaxed);
    if failed > 0 {
        eprintln!("warning: {failed} clients stopped early (no connection, or a lost message)");
    }
    if o.json {
        println!(
            "{}",
            serde_json::json!({
                "clients": o.clients,
                "echoes": o.echoes,
                "pipeline": o.pipeline,
                "msgs": total.load(Ordering::Relaxed),
                "msgs_per_sec": (rate * 10.0).round() / 10.0,
                "failed_clients": failed,
            })
        );
    } else {
        println!(
            "bare ZeroMQ echo: {:.0} round trips/s ({} clients x {} in flight, {} echo threads, {:.2} s)",
            rate, o.clients, o.pipeline, o.echoes, secs
        );
    }
}
