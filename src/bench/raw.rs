//! The anchor for the latency targets: a bare ZeroMQ round trip, with no
//! kvsh code on either side.
//!
//! A ROUTER echo thread in the given context (the cluster's, where the nodes
//! live) answers a DEALER in a context of its own (as a bench client has, and
//! as an outside client's process would), over loopback TCP. That is the path
//! of one client request to a node and its reply, minus everything kvsh
//! does: so "put p50 ≤ 2.5 × raw" reads as "a replicated put costs at most
//! two and a half bare round trips".

use crate::bench::report::{latency_histogram, LatencySummary};
use crate::error::{Error, Result};
use crate::node::transport::{client_router, dealer};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Round trips made and thrown away first, to warm connections and caches.
const WARMUP: usize = 200;
/// The echoed payload: about the size of a `GET_ONE` request.
const PAYLOAD: &[u8] = br#"{"op":"GET_ONE","key":"bench:12345","id":123456}"#;

/// Measures `samples` sequential DEALER → ROUTER → DEALER round trips over
/// loopback TCP: the ROUTER (an [`Echo`]) in `ctx`, the DEALER in a context
/// of its own.
pub fn raw_roundtrip(ctx: &zmq::Context, samples: usize) -> Result<LatencySummary> {
    let echo = Echo::start(ctx)?;
    let endpoint = echo.endpoint().to_string();
    // In a thread scheduled as a bench client is, whose first socket starts
    // the new context's I/O thread, so that inherits the policy too.
    std::thread::scope(|s| {
        s.spawn(|| {
            crate::node::sched::batch_scheduling();
            measure(&zmq::Context::new(), &endpoint, samples)
        })
        .join()
        .unwrap_or_else(|_| Err(Error::Internal("the raw round trip thread panicked".into())))
    })
}

/// A thread with a ROUTER on a loopback port that sends every message back
/// to where it came from. Dropping it stops and joins the thread.
#[derive(Debug)]
pub struct Echo {
    endpoint: String,
    stop: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Echo {
    /// Starts the echo thread, with its socket in `ctx`; returns once the
    /// socket is bound.
    pub fn start(ctx: &zmq::Context) -> Result<Echo> {
        let (ready_tx, ready_rx) = crossbeam_channel::bounded(1);
        let stop = Arc::new(AtomicBool::new(false));
        let echo_ctx = ctx.clone();
        let echo_stop = stop.clone();
        // The socket is made, used and dropped in its own thread, like every
        // socket in kvsh. It polls and drains like a node thread does, so
        // the anchor pays the same wake-ups a node does.
        let thread = std::thread::Builder::new()
            .name("kvsh-bench-echo".into())
            .spawn(move || {
                // Scheduled as a node thread is (and, if this makes the
                // context's first socket, so is its I/O thread).
                crate::node::sched::batch_scheduling();
                let echo = match client_router(&echo_ctx, "tcp://127.0.0.1:*", 1 << 20) {
                    Ok((s, endpoint)) => {
                        let _ = ready_tx.send(Ok(endpoint));
                        s
                    }
                    Err(e) => {
                        let _ = ready_tx.send(Err(e));
                        return;
                    }
                };
                while !echo_stop.load(Ordering::Relaxed) {
                    if !matches!(echo.poll(zmq::POLLIN, 20), Ok(n) if n > 0) {
                        continue;
                    }
                    while let Ok(frames) = echo.recv_multipart(zmq::DONTWAIT) {
                        let _ = echo.send_multipart(frames, zmq::DONTWAIT);
                    }
                }
            })?;
        let mut echo = Echo {
            endpoint: String::new(),
            stop,
            thread: Some(thread),
        };
        match ready_rx.recv() {
            Ok(Ok(endpoint)) => {
                echo.endpoint = endpoint;
                Ok(echo)
            }
            Ok(Err(e)) => Err(e),
            Err(_) => Err(Error::Internal("the echo thread exited early".into())),
        }
    }

    /// The ROUTER's endpoint, `tcp://127.0.0.1:PORT`.
    pub fn endpoint(&self) -> &str {
        &self.endpoint
    }
}

impl Drop for Echo {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

fn measure(ctx: &zmq::Context, endpoint: &str, samples: usize) -> Result<LatencySummary> {
    let socket = dealer(ctx, endpoint)?;
    if socket.poll(zmq::POLLOUT, 2000)? == 0 {
        return Err(Error::Io(format!("could not connect to {endpoint}")));
    }
    // Block in `recv`, as a bench client with one request in flight does,
    // so that the anchor pays the same system calls on the client side.
    socket.set_rcvtimeo(2000)?;
    let mut h = latency_histogram();
    let mut msg = zmq::Message::new();
    for i in 0..WARMUP + samples {
        let start = Instant::now();
        socket.send(PAYLOAD, 0)?;
        socket
            .recv(&mut msg, 0)
            .map_err(|_| Error::Timeout(format!("no echo from {endpoint} within 2 s")))?;
        let took = start.elapsed().max(Duration::from_nanos(1));
        if i >= WARMUP {
            let _ = h.record(took.as_nanos() as u64);
        }
    }
    Ok(LatencySummary::from_histogram(&h))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_raw_round_trip_is_measured() {
        let ctx = zmq::Context::new();
        let l = raw_roundtrip(&ctx, 50).unwrap();
        assert_eq!(l.samples, 50);
        assert!(l.p50_us > 0.0 && l.p50_us <= l.max_us, "{l:?}");
    }
}
