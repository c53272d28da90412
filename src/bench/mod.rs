//! The `bench` command: load generation against a running cluster, through
//! the same sockets and JSON an outside client would use.
//!
//! A run has up to three phases, each a set of client threads:
//!
//! 1. **Load** (`get` and `mixed` only, not timed): write `bench:<run>:0`
//!    .. `bench:<run>:{K-1}` once each, so reads find values. Each run has
//!    a key namespace of its own, with a run id unique in the cluster
//!    ([`crate::cluster::Cluster::run_id`]): a user's `bench:1` is never
//!    overwritten or deleted, and two runs never share keys.
//! 2. **Timed run**: C clients (`worker/`), each with its own DEALER to
//!    every node, in a ZeroMQ context of the bench's own (as an outside
//!    client's process would have). T threads (`--threads`, default one per
//!    core) each drive their share of the clients in an event loop, one
//!    `zmq_poll` over every socket that owes a reply, as redis-benchmark
//!    drives its connections; `--threads 0` gives each client a thread of
//!    its own instead (50 client threads cost the machine 10-13 µs of CPU
//!    per request against about 4 µs for an event loop, and the machine is
//!    shared with the nodes being measured). Each keeps up to P requests in
//!    flight, sends each to the key's primary from the view, and matches
//!    replies to requests by the echoed `id` (replies to different nodes, or
//!    forwarded ones, can come back out of order). With `--pinned` each
//!    client sends only to one node, drawing keys until it finds one that
//!    node leads, as `redis-benchmark --cluster` ties each client to one
//!    master. Client threads run under `SCHED_BATCH`, as the nodes do
//!    (`src/node/sched.rs`), so that the load generator's own wake-ups
//!    cost the machine less. Keys are uniform at
//!    random among the K. `put` writes, `get` reads, `mixed` reads or writes
//!    with even odds (50% `GET_ONE`, 50% `PUT`). The run stops after `--ops`
//!    requests over all clients, or after `--duration`; then the clients
//!    wait for the replies they are owed.
//! 3. **Cleanup** (not timed, skipped with `--keep`): delete every key the
//!    run wrote, and only those.
//!
//! Every request's latency, from just before the send to the moment its
//! reply is read, goes into an HDR histogram (nanoseconds, three significant
//! digits), reported in microseconds. Failures are counted by code, never
//! fatal, and never retried: error replies, sends to a node that is not
//! connected, and requests with no reply after 5 s. Throughput counts every
//! request answered, failed ones included, over the time from the moment
//! every client is connected to the last reply. A client that hears its view
//! is stale re-reads the leader's [`crate::cluster::leader::Status`], so a
//! bench survives failovers, with the failures they cause counted.
//!
//! [`raw_roundtrip`] measures a bare ZeroMQ round trip, the anchor the
//! latency targets are stated against. `docs/performance.md` has the figures
//! and how they compare with Redis.
//!
//! The shell's `bench` parses its arguments with [`bench_parse`], calls
//! [`run`] with a progress bar and Ctrl-C as `cancelled`, and prints
//! [`BenchReport::text`] or [`BenchReport::json`].

mod config;
mod raw;
mod report;
mod runner;
mod worker;

pub use config::{bench_parse, BenchConfig, BenchKind, MAX_CLIENTS, MAX_PIPELINE, USAGE};
pub use raw::{raw_roundtrip, Echo};
pub use report::{BenchReport, LatencySummary};
pub use runner::{run, Target};
