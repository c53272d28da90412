//! Command syntax: the table of commands with their usage, help and
//! examples, and the parsing of a typed line into words.
//!
//! The table is the one source for `help`, usage errors, completion and
//! hints, so they cannot disagree.

use crate::error::{Error, Result};
use std::time::Duration;

/// One shell command's syntax and documentation.
#[derive(Clone, Copy, Debug)]
pub struct CommandSpec {
    /// The command's name.
    pub name: &'static str,
    /// Other names it answers to.
    pub aliases: &'static [&'static str],
    /// Arguments, as shown in usage lines.
    pub args: &'static str,
    /// One line on what it does.
    pub summary: &'static str,
    /// More detail for `help CMD`.
    pub detail: &'static str,
    /// An example line.
    pub example: &'static str,
}

impl CommandSpec {
    /// The usage line: `put KEY VALUE`.
    pub fn usage(&self) -> String {
        if self.args.is_empty() {
            self.name.to_string()
        } else {
            format!("{} {}", self.name, self.args)
        }
    }

    /// A usage error for this command.
    pub fn usage_error(&self) -> Error {
        Error::BadInput(format!("usage: {}", self.usage()))
    }
}

/// Every command, in the order `help` lists them.
pub const COMMANDS: &[CommandSpec] = &[
    CommandSpec {
        name: "put",
        aliases: &[],
        args: "KEY VALUE",
        summary: "write a value, replicated to every replica before it is acknowledged",
        detail: "Quote a value that has spaces. The write goes to the key's primary, which \
                 answers only when every secondary has it.",
        example: "put user:1 \"Ada Lovelace\"",
    },
    CommandSpec {
        name: "get",
        aliases: &[],
        args: "KEY",
        summary: "read a value from the key's primary ((nil) if missing)",
        detail: "Reads go to the primary, which serves them only while it holds a valid lease.",
        example: "get user:1",
    },
    CommandSpec {
        name: "mget",
        aliases: &[],
        args: "KEY ...",
        summary: "read several keys as one snapshot (all or nothing of each mput)",
        detail: "The keys each primary leads go to it as one frame (a JSON array of GET_ONEs), \
                 so N keys cost one round trip per node; then they are all read again, until \
                 two reads in a row agree. The values are what every key held at one moment, \
                 so an mput shows all or none of its pairs. A key being written by an mput is \
                 read again once the mput is decided.",
        example: "mget user:1 user:2 user:3",
    },
    CommandSpec {
        name: "mput",
        aliases: &[],
        args: "KEY VALUE ...",
        summary: "write several pairs atomically: all or none, across primaries",
        detail: "One MPUT request: the node that receives it runs two-phase commit across the \
                 keys' primaries (prepare, a replicated decision, then commit), so every pair \
                 is written or none is, even if nodes die meanwhile. A key may appear once; \
                 at most 64 pairs.",
        example: "mput user:1 ann user:2 bob",
    },
    CommandSpec {
        name: "del",
        aliases: &["delete", "rm"],
        args: "KEY",
        summary: "delete a key",
        detail: "Prints whether the key existed.",
        example: "del user:1",
    },
    CommandSpec {
        name: "cas",
        aliases: &[],
        args: "KEY [EXPECTED] NEW [--absent]",
        summary: "compare-and-set: write NEW only if KEY's value is EXPECTED (or, with --absent, missing)",
        detail: "Decided atomically at the key's primary and replicated before it is acknowledged. \
                 Give EXPECTED, or --absent instead of it for a key that must not exist. Prints OK, \
                 or the current value if it was not the expected one (which fails in scripts).",
        example: "cas counter 41 42",
    },
    CommandSpec {
        name: "lock",
        aliases: &[],
        args: "NAME [--owner O] [--ttl 10s] [--wait 5s]",
        summary: "take (or renew) a lock with a lease; prints its fencing token",
        detail: "The lock is held until `unlock`, or until the lease (--ttl, default 10s) runs out \
                 unless the owner renews it by locking again. --owner defaults to `shell`. The \
                 fencing token grows with every grant, across failovers: hand it to whatever the \
                 lock protects so it can refuse a stale holder. --wait retries until the lock is \
                 free or the wait is over (default: fail at once if held).",
        example: "lock deploy --ttl 30s --wait 5s",
    },
    CommandSpec {
        name: "unlock",
        aliases: &[],
        args: "NAME [--owner O] [--token T]",
        summary: "release a lock this shell took (or name its owner and token)",
        detail: "Only the holder, with the token of its grant, can release a lock.",
        example: "unlock deploy",
    },
    CommandSpec {
        name: "locks",
        aliases: &[],
        args: "",
        summary: "list every lock: holder, fencing token, lease left",
        detail: "A free lock is listed with the last token granted.",
        example: "locks",
    },
    CommandSpec {
        name: "keys",
        aliases: &["scan"],
        args: "[PREFIX] [--limit N]",
        summary: "list keys and values across the cluster, in key order",
        detail:
            "Pages through GET_ALL (each page gathered partition by partition from the primaries) \
                 and keeps the smallest keys. --limit defaults to 100 in text output; --limit 0 \
                 lists everything.",
        example: "keys user: --limit 10",
    },
    CommandSpec {
        name: "where",
        aliases: &[],
        args: "KEY",
        summary: "show a key's partition, primary and secondaries",
        detail:
            "Keys hash with xxh3 to one of the partitions; the view places partitions on nodes.",
        example: "where user:1",
    },
    CommandSpec {
        name: "nodes",
        aliases: &[],
        args: "",
        summary: "list nodes: endpoint, state, partitions led and held, keys",
        detail: "state is what the view leader believes (up, suspect, dead, joining, leaving); \
                 process is what the operator did (running, paused, killed).",
        example: "nodes",
    },
    CommandSpec {
        name: "table",
        aliases: &["partitions"],
        args: "[--by-node] [--all] [--watch [INTERVAL]] [--limit N]",
        summary: "show partitions: replica sets, states and keys, summary first",
        detail: "States: ok, degraded (fewer in-sync replicas than wanted), moving (a replica is \
                 filling, or the set differs from the placement target), unavailable (no live \
                 primary). A * marks a replica that is still filling. Partitions with the same \
                 replica set and state share a row, their ids written as ranges (0-3 17), \
                 problems first. --all lists every partition with its hash range; --limit N \
                 only the first N. --by-node gives each node's share against the ideal. --watch \
                 redraws every INTERVAL (default 1s), fitted to the terminal, until Ctrl-C; a \
                 change stays highlighted for 3 seconds.",
        example: "table --by-node",
    },
    CommandSpec {
        name: "add",
        aliases: &[],
        args: "[COUNT]",
        summary: "start COUNT new nodes (default 1) on auto-allocated ports",
        detail: "With auto-rebalance on (the default) it waits until partitions have moved to the \
                 new nodes; Ctrl-C stops waiting, not the move.",
        example: "add 2",
    },
    CommandSpec {
        name: "remove",
        aliases: &["decommission"],
        args: "NODE [--force]",
        summary: "decommission a node: move its partitions away, then stop it",
        detail:
            "No partition has fewer in-sync replicas at any point; the node leaves only when it \
                 holds nothing. It returns once the moves the removal started have finished, \
                 so the next command sees where the partitions settled. A dead node is removed \
                 at once and its copies re-created from the others. --force allows leaving \
                 fewer live nodes than replicas, or removing a dead node that held the only \
                 copy of a partition (which starts again empty).",
        example: "remove n3",
    },
    CommandSpec {
        name: "kill",
        aliases: &["crash"],
        args: "NODE",
        summary: "crash a node: its thread stops at once, losing its memory, telling no one",
        detail: "The view leader finds out through missed heartbeats and promotes in-sync \
                 secondaries. `restart NODE` brings it back empty.",
        example: "kill n2",
    },
    CommandSpec {
        name: "pause",
        aliases: &["freeze"],
        args: "NODE DURATION",
        summary: "freeze a node (no heartbeats, no replies) for DURATION, e.g. 3s or 500ms",
        detail: "A paused primary's lease runs out before the leader replaces it, so it never \
                 serves from a stale view when it wakes. Pausing a paused node makes its pause \
                 end DURATION from now, sooner or later; `resume` ends it at once.",
        example: "pause n2 3s",
    },
    CommandSpec {
        name: "resume",
        aliases: &[],
        args: "NODE",
        summary: "end a node's pause now",
        detail: "The node wakes as if its pause had run out: it heartbeats and serves again.",
        example: "resume n2",
    },
    CommandSpec {
        name: "restart",
        aliases: &[],
        args: "NODE",
        summary: "bring a killed node back with the same id on a new port",
        detail: "It rejoins empty, as a new incarnation, and is refilled by re-replication and \
                 rebalancing.",
        example: "restart n2",
    },
    CommandSpec {
        name: "rebalance",
        aliases: &[],
        args: "[--dry-run]",
        summary: "move partitions to the placement target; --dry-run prints the plan only",
        detail: "Prints partitions and keys to move, the least a perfectly even spread would need, and skew \
                 before and after; then returns only when the data is in place.",
        example: "rebalance --dry-run",
    },
    CommandSpec {
        name: "placement",
        aliases: &[],
        args: "[ring|hrw|modulo]",
        summary: "show or switch the placement strategy (switching rebalances)",
        detail: "ring: consistent hashing with virtual nodes. hrw: rendezvous hashing. modulo: \
                 the naive hash % N baseline, which moves almost everything when N changes.",
        example: "placement hrw",
    },
    CommandSpec {
        name: "wait",
        aliases: &[],
        args: "healthy [TIMEOUT]",
        summary: "block until every partition has its replicas in sync and nothing moves",
        detail: "TIMEOUT defaults to 30s; the command fails if it passes. Scripts use this \
                 instead of sleeping.",
        example: "wait healthy 10s",
    },
    CommandSpec {
        name: "events",
        aliases: &[],
        args: "[--limit N] [--detail] [--partition P]",
        summary: "the timeline: each fault and its consequences in a few lines",
        detail: "A fault reads as a few lines: what happened to which node, how many partitions \
                 were promoted, copied, handed back, and when everything was at its target \
                 again. --detail gives every event, one a line; --partition P every event of \
                 one partition. Times are seconds since the cluster started. The live notices \
                 above the prompt tell the same story; `set events off` stops them.",
        example: "events --partition 7",
    },
    CommandSpec {
        name: "stats",
        aliases: &["stat"],
        args: "[--watch [INTERVAL]]",
        summary: "per node and in total: requests/s, errors/s, keys, bytes, leases",
        detail: "From the nodes' heartbeats: client requests answered per second (over one \
                 second, or each INTERVAL), errors per second, keys and bytes held (every replica counted), \
                 resyncs a primary is sending, invalid internal messages rejected; and from the \
                 view leader: how long since each node was heard, how many epochs it is behind \
                 the view, whether it holds a lease. --watch redraws every INTERVAL (default \
                 1s) until Ctrl-C, highlighting changes.",
        example: "stats --watch",
    },
    CommandSpec {
        name: "verify",
        aliases: &[],
        args: "",
        summary: "compare every partition's replicas by digest and report differences",
        detail: "The digest is xxh3 over the sorted pairs, computed by each node in a streaming \
                 pass. A differing partition is listed with its missing and differing keys.",
        example: "verify",
    },
    CommandSpec {
        name: "repair",
        aliases: &[],
        args: "[PARTITION]",
        summary: "resync secondaries from their primary (all partitions, or one)",
        detail: "Starts a fresh replication stream to each secondary, which begins with a full \
                 resync, online; then waits until they are in sync.",
        example: "repair 7",
    },
    CommandSpec {
        name: "partition",
        aliases: &[],
        args: "NODES [| NODES ...]",
        summary: "split the cluster's network into groups, e.g. partition n1,n2 | n3,n4",
        detail: "Nodes in different groups cannot reach each other. Unnamed nodes form one more \
                 group; name `leader` to place the view leader, else it joins the largest group. \
                 A lone group (partition n2) isolates those nodes from everyone. Client traffic \
                 is not affected. `heal` undoes it.",
        example: "partition n1 | n2,n3,n4",
    },
    CommandSpec {
        name: "link",
        aliases: &[],
        args: "A [->] B (drop PCT | delay DURATION)",
        summary: "degrade one link: drop a share of messages, or delay them",
        detail: "Both directions unless written A -> B. A and B are nodes or `leader`.",
        example: "link n1 n2 drop 30%",
    },
    CommandSpec {
        name: "heal",
        aliases: &[],
        args: "",
        summary: "remove every partition and link fault",
        detail: "Killed nodes stay killed (restart them); paused nodes wake on their own.",
        example: "heal",
    },
    CommandSpec {
        name: "faults",
        aliases: &[],
        args: "",
        summary: "list the network faults in force",
        detail: "",
        example: "faults",
    },
    CommandSpec {
        name: "check",
        aliases: &[],
        args: "[--duration 10s] [--clients 4] [--keys 20] [--faults kill,pause,partition,link|none] [--seed S]",
        summary: "run clients under a seeded fault schedule and check the history is linearizable",
        detail: "Clients read, write, delete and compare-and-set hot keys of the run's own \
                 (check:<run>:hot<i>, deleted afterwards; your keys are left alone), and mput and \
                 snapshot-read (mget) groups of keys (check:<run>:g<g>.<i>), and walk the run's \
                 keys with GET_ALL in pages of one to three pairs, while faults strike \
                 one at a time, \
                 links to the view leader included; then \
                 everything heals, the cluster becomes healthy, every key is read once more, and \
                 each key's history is checked against a register (linearizability), which also \
                 catches lost acknowledged writes, and every snapshot must hold all or none of each \
                 mput. The same seed gives the same fault schedule. \
                 Ctrl-C stops early and still checks what ran. In scripts, violations fail the command.",
        example: "check --duration 10s --faults kill,partition --seed 7",
    },
    CommandSpec {
        name: "bench",
        aliases: &[],
        args: "put|get|mixed [--ops N | --duration D] [--clients C] [--pipeline P] [--batch N] [--pinned] [--value-size B] [--keys K] [--threads T] [--keep]",
        summary: "measure throughput and latency through the external protocol",
        detail: "Each client has its own DEALER sockets (a connection to every node), routing to \
                 primaries, and T threads (default: one per core) drive the clients in event \
                 loops, as redis-benchmark does; --threads 0 gives each client a thread. Up \
                 to P requests in flight per client, packed up to N to a frame (a JSON array) with --batch N, \
                 as Redis pipelines commands in one write. --pinned ties each client to one node, \
                 with random keys that node is primary for, as redis-benchmark --cluster does. Prints ops/s and latency p50, p90, p99, p99.9 and max \
                 (hdrhistogram). get and mixed (half gets, half puts) load the keys first, untimed. \
                 The keys written are deleted afterwards unless --keep. Defaults: 5s, 50 clients, \
                 one thread per core, pipeline 1, batch 1, 100-byte values, 100000 keys.",
        example: "bench put --duration 5s --clients 50",
    },
    CommandSpec {
        name: "load",
        aliases: &[],
        args: "[start|stop] [--rate N] [--clients C]",
        summary: "run a background write workload while you type; `load stop` checks it",
        detail: "`load start` starts C clients (default 4) writing keys of their own \
                 (load:<run>:...) at N writes/s in all (default 200; 0 for as fast as they go), \
                 through the same client path as `put`. A status line shows writes/s, errors \
                 and partitions waiting, every second while something is wrong. `load` alone \
                 shows the counters. `load stop` prints writes acknowledged, failed and \
                 unknown, the longest stretch a partition was unavailable, then reads every \
                 key back: lost counts acknowledged writes that are not there (it fails if \
                 any are).",
        example: "load start --rate 200 --clients 4",
    },
    CommandSpec {
        name: "history",
        aliases: &[],
        args: "(save | html) FILE",
        summary: "save the last checked history as JSON lines, or draw it as one HTML file",
        detail: "save: one operation per line. html: a self-contained page (no network, no \
                 scripts from elsewhere) with, per key, each client's operations as bars from \
                 invocation to completion, coloured by outcome, the faults and view changes \
                 on the same time axis, and a link to each violation's operations.",
        example: "history html /tmp/run.html",
    },
    CommandSpec {
        name: "set",
        aliases: &[],
        args: "[auto-rebalance|events|log-level on|off|error|warn|info|debug|trace]",
        summary: "list every setting and its value, or change one",
        detail: "auto-rebalance (default on): membership changes rebalance by themselves. \
                 events (default on): print view changes above the prompt as they happen. \
                 log-level (default warn, or --log-level): error, warn, info, debug (each \
                 view a node adopts, each partition it starts or stops leading, each resync \
                 stream) or trace (every internal message); lines go above the prompt, or \
                 to --log-file. \
                 The timings (heartbeat, suspect-timeout, failure-timeout, lease) are shown \
                 but fixed while the cluster runs: every lease must end before the failure \
                 timeout on every node at every instant, which a change made one thread at a \
                 time cannot promise; --heartbeat and --failure-timeout set them at start.",
        example: "set auto-rebalance off",
    },
    CommandSpec {
        name: "echo",
        aliases: &[],
        args: "TEXT ...",
        summary: "print TEXT (for scripts that tell a story)",
        detail: "",
        example: "echo \"now kill the primary\"",
    },
    CommandSpec {
        name: "sleep",
        aliases: &[],
        args: "DURATION",
        summary: "wait DURATION, e.g. 2s or 500ms; Ctrl-C ends it",
        detail: "For demos: scripts that wait for something use `wait healthy` instead.",
        example: "sleep 2s",
    },
    CommandSpec {
        name: "help",
        aliases: &["?"],
        args: "[COMMAND]",
        summary: "list commands, or show one command's usage and example",
        detail: "",
        example: "help put",
    },
    CommandSpec {
        name: "quit",
        aliases: &["exit"],
        args: "",
        summary: "shut the cluster down cleanly and leave",
        detail: "Every thread is stopped and joined. Ctrl-D does the same.",
        example: "quit",
    },
];

/// Finds a command by name or alias, in any case: `PUT k v` works, as SQL
/// shells and redis-cli take commands in any case. Keys and values keep
/// their case.
pub fn lookup(name: &str) -> Option<&'static CommandSpec> {
    COMMANDS.iter().find(|c| {
        c.name.eq_ignore_ascii_case(name) || c.aliases.iter().any(|a| a.eq_ignore_ascii_case(name))
    })
}

/// Commands from other shells (redis-cli, etcdctl) typed from habit, and
/// what to suggest instead: the first of these kvsh has. Edit distance gets
/// these wrong: `exists` is two edits from `exit`, and `mset` one from
/// `set`, but neither is a typo.
const HABITS: &[(&str, &[&str])] = &[
    ("exists", &["get"]),
    ("mset", &["mput", "put"]),
    ("unpause", &["resume"]),
    ("unfreeze", &["resume"]),
    ("info", &["nodes"]),
    ("status", &["nodes"]),
    ("ls", &["keys"]),
];

/// The known command closest to a mistyped one, if it is likely a typo of
/// it: the fewest edits (a swap of neighbours counts as one), at most one
/// edit in words of up to six letters and two in longer ones. Not
/// suggested: anything for one letter (every short name is a letter or
/// two away from it), symbols such as `?`, and a name with letters added in
/// front (`unpause` is not a typo of `pause`, nor `mset` of `set`).
pub fn suggest(name: &str) -> Option<&'static str> {
    let name = name.to_ascii_lowercase();
    if let Some((_, to)) = HABITS.iter().find(|(from, _)| *from == name) {
        return to.iter().find_map(|t| lookup(t)).map(|c| c.name);
    }
    let len = name.chars().count();
    if len < 2 {
        return None;
    }
    let limit = if len <= 6 { 1 } else { 2 };
    let mut best: Option<(usize, &'static str)> = None;
    for c in COMMANDS {
        for n in std::iter::once(&c.name).chain(c.aliases.iter()) {
            if n.len() < 2 || (name.len() > n.len() && name.ends_with(n)) {
                continue;
            }
            let d = strsim::damerau_levenshtein(&name, n);
            if best.is_none_or(|(b, _)| d < b) {
                best = Some((d, c.name));
            }
        }
    }
    best.filter(|(d, _)| *d <= limit).map(|(_, n)| n)
}

/// The error for an unknown command.
pub fn unknown_command(name: &str) -> Error {
    match suggest(name) {
        Some(s) => Error::BadInput(format!(
            "unknown command {name:?}; did you mean {s:?}? (type `help` for a list)"
        )),
        None => Error::BadInput(format!("unknown command {name:?} (type `help` for a list)")),
    }
}

/// Splits a line into words, shell style: quotes group, backslash escapes.
pub fn words(line: &str) -> Result<Vec<String>> {
    shell_words::split(line).map_err(|_| Error::BadInput("unterminated quote".into()))
}

/// Splits a `-c` argument on semicolons outside quotes.
pub fn split_commands(s: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut cur = String::new();
    let mut quote: Option<char> = None;
    let mut escaped = false;
    for ch in s.chars() {
        if escaped {
            cur.push(ch);
            escaped = false;
            continue;
        }
        match (ch, quote) {
            ('\\', _) => {
                cur.push(ch);
                escaped = true;
            }
            ('"' | '\'', None) => {
                quote = Some(ch);
                cur.push(ch);
            }
            (c, Some(q)) if c == q => {
                quote = None;
                cur.push(ch);
            }
            (';', None) => out.push(std::mem::take(&mut cur)),
            _ => cur.push(ch),
        }
    }
    out.push(cur);
    out.into_iter()
        .map(|s| s.trim().to_string())
        .filter(|s| !s.is_empty())
        .collect()
}

/// Parses a duration: `3s`, `500ms`, `1.5s`, `2m`, or a bare number of seconds.
pub fn parse_duration(s: &str) -> Result<Duration> {
    let bad = || {
        Error::BadInput(format!(
            "bad duration {s:?}; use e.g. 500ms, 3s, 1.5s or 2m"
        ))
    };
    let (num, scale) = if let Some(n) = s.strip_suffix("ms") {
        (n, 0.001)
    } else if let Some(n) = s.strip_suffix('s') {
        (n, 1.0)
    } else if let Some(n) = s.strip_suffix('m') {
        (n, 60.0)
    } else {
        (s, 1.0)
    };
    let v: f64 = num.parse().map_err(|_| bad())?;
    if !v.is_finite() || v < 0.0 || v * scale > 86_400.0 {
        return Err(bad());
    }
    Ok(Duration::from_secs_f64(v * scale))
}

/// Parses an on/off setting.
pub fn parse_switch(s: &str) -> Result<bool> {
    match s {
        "on" | "true" | "yes" | "1" => Ok(true),
        "off" | "false" | "no" | "0" => Ok(false),
        _ => Err(Error::BadInput(format!("expected on or off, got {s:?}"))),
    }
}

/// Parses a non-negative count.
pub fn parse_count(s: &str, what: &str) -> Result<usize> {
    s.parse()
        .map_err(|_| Error::BadInput(format!("{what} must be a whole number, got {s:?}")))
}

/// Options given to a command: `--name` and its value, if it takes one.
pub type Options = Vec<(String, Option<String>)>;

/// Splits words into positional arguments and `--flag [value]` options.
/// `valued` names the flags that take a value.
pub fn options(
    words: &[String],
    valued: &[&str],
    flags: &[&str],
) -> Result<(Vec<String>, Options)> {
    let mut pos = Vec::new();
    let mut opts = Vec::new();
    let mut i = 0;
    while i < words.len() {
        let w = &words[i];
        if let Some(name) = w.strip_prefix("--") {
            if valued.contains(&name) {
                let v = words
                    .get(i + 1)
                    .ok_or_else(|| Error::BadInput(format!("--{name} needs a value")))?;
                opts.push((name.to_string(), Some(v.clone())));
                i += 2;
                continue;
            }
            if flags.contains(&name) {
                opts.push((name.to_string(), None));
                i += 1;
                continue;
            }
            return Err(Error::BadInput(format!("unknown option --{name}")));
        }
        pos.push(w.clone());
        i += 1;
    }
    Ok((pos, opts))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_command_has_docs_and_a_unique_name() {
        let mut names = std::collections::BTreeSet::new();
        for c in COMMANDS {
            assert!(
                !c.summary.is_empty() && !c.example.is_empty(),
                "{} is documented",
                c.name
            );
            assert!(
                c.example.starts_with(c.name),
                "{}'s example uses it",
                c.name
            );
            for n in std::iter::once(&c.name).chain(c.aliases) {
                assert!(names.insert(*n), "{n} is unique");
            }
        }
    }

    #[test]
    fn the_bench_help_shows_the_usage_bench_errors_print() {
        let bench = COMMANDS.iter().find(|c| c.name == "bench").unwrap();
        assert_eq!(format!("usage: bench {}", bench.args), crate::bench::USAGE);
    }

    #[test_case::test_case("pt", Some("put"))]
    #[test_case::test_case("gett", Some("get"))]
    #[test_case::test_case("GETT", Some("get"))]
    #[test_case::test_case("nodse", Some("nodes"))]
    #[test_case::test_case("rebalnce", Some("rebalance"))]
    #[test_case::test_case("restrat", Some("restart"))]
    #[test_case::test_case("exits", Some("quit"))]
    #[test_case::test_case("exists", Some("get"); "exists is a redis habit, not a typo of exit")]
    #[test_case::test_case("mset", Some("mput"); "mset is not a typo of set")]
    #[test_case::test_case("unpause", Some("resume"); "unpause is resume, not a typo of pause")]
    #[test_case::test_case("x", None; "one letter is too short for a typo")]
    #[test_case::test_case("g", None; "one letter does not suggest help")]
    #[test_case::test_case("zzzzzzzz", None)]
    fn typos_get_suggestions(typed: &str, expected: Option<&str>) {
        assert_eq!(suggest(typed), expected);
    }

    #[test]
    fn commands_are_case_insensitive() {
        assert_eq!(lookup("PUT").map(|c| c.name), Some("put"));
        assert_eq!(lookup("Get").map(|c| c.name), Some("get"));
        assert_eq!(lookup("EXIT").map(|c| c.name), Some("quit"));
        assert_eq!(lookup("puts").map(|c| c.name), None);
    }

    #[test]
    fn words_respect_quotes() {
        assert_eq!(words(r#"put k "a b""#).unwrap(), ["put", "k", "a b"]);
        assert_eq!(words("put k 'x y'").unwrap(), ["put", "k", "x y"]);
        assert!(words(r#"put k "open"#).is_err());
    }

    #[test]
    fn commands_split_on_unquoted_semicolons() {
        assert_eq!(
            split_commands(r#"put a "x;y"; get a;; nodes"#),
            [r#"put a "x;y""#, "get a", "nodes"]
        );
    }

    #[test]
    fn durations_parse() {
        assert_eq!(parse_duration("3s").unwrap(), Duration::from_secs(3));
        assert_eq!(parse_duration("500ms").unwrap(), Duration::from_millis(500));
        assert_eq!(parse_duration("1.5s").unwrap(), Duration::from_millis(1500));
        assert_eq!(parse_duration("2m").unwrap(), Duration::from_secs(120));
        assert_eq!(parse_duration("2").unwrap(), Duration::from_secs(2));
        assert!(parse_duration("soon").is_err());
        assert!(parse_duration("-1s").is_err());
    }

    #[test]
    fn options_split_from_positionals() {
        let w: Vec<String> = ["user:", "--limit", "5", "--by-node"]
            .iter()
            .map(|s| s.to_string())
            .collect();
        let (pos, opts) = options(&w, &["limit"], &["by-node"]).unwrap();
        assert_eq!(pos, ["user:"]);
        assert_eq!(
            opts,
            [
                ("limit".to_string(), Some("5".to_string())),
                ("by-node".to_string(), None)
            ]
        );
        assert!(options(&w[..2], &["limit"], &[]).is_err());
        assert!(options(&["--frob".to_string()], &[], &[]).is_err());
    }
}
