//! What a bench run does: [`BenchConfig`], and [`bench_parse`] for the
//! shell's `bench put|get|mixed [--ops N | --duration D] ...` arguments.

use crate::error::{Error, Result};
use crate::shell::command::parse_duration;
use serde::Serialize;
use std::time::Duration;

/// The usage line, printed (as one line) for any argument mistake.
pub const USAGE: &str = "usage: bench put|get|mixed [--ops N | --duration D] [--clients C] \
[--pipeline P] [--batch N] [--pinned] [--value-size B] [--keys K] [--threads T] [--keep]";

/// Most client threads a run may start.
pub const MAX_CLIENTS: usize = 1024;
/// Most event-loop threads a run may start.
pub const MAX_THREADS: usize = 64;
/// Most requests one client may keep in flight.
pub const MAX_PIPELINE: usize = 4096;

/// The operation mix.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum BenchKind {
    /// Every operation is a `PUT` of a random key among the K.
    Put,
    /// Every operation is a `GET_ONE` of a random key among the K, which are
    /// loaded (untimed) first.
    Get,
    /// Each operation is a `GET_ONE` or a `PUT` with even odds, on a random
    /// key among the K, which are loaded first.
    Mixed,
}

impl BenchKind {
    /// The name the shell and the JSON use.
    pub fn name(self) -> &'static str {
        match self {
            BenchKind::Put => "put",
            BenchKind::Get => "get",
            BenchKind::Mixed => "mixed",
        }
    }

    /// True if the keys must exist before the timed run.
    pub fn needs_load(self) -> bool {
        !matches!(self, BenchKind::Put)
    }
}

impl std::fmt::Display for BenchKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

impl std::str::FromStr for BenchKind {
    type Err = Error;

    fn from_str(s: &str) -> Result<Self> {
        match s {
            "put" => Ok(BenchKind::Put),
            "get" => Ok(BenchKind::Get),
            "mixed" => Ok(BenchKind::Mixed),
            other => Err(Error::BadInput(format!(
                "unknown bench kind {other:?}; {USAGE}"
            ))),
        }
    }
}

/// One bench run.
#[derive(Clone, Debug, PartialEq)]
pub struct BenchConfig {
    /// The operation mix.
    pub kind: BenchKind,
    /// Stop after this many operations (over all clients); `None` runs for
    /// `duration` instead.
    pub ops: Option<u64>,
    /// How long to run when `ops` is `None`.
    pub duration: Duration,
    /// Clients, each with its own DEALER per node (a connection to every
    /// node, as each redis-benchmark client has its own connection).
    pub clients: usize,
    /// Threads that drive the clients, each an event loop over its share
    /// of them (redis-benchmark's shape); 0 gives each client a thread of
    /// its own instead. Default: the number of cores.
    pub threads: usize,
    /// Requests each client keeps in flight.
    pub pipeline: usize,
    /// Most requests a client packs into one frame (a JSON array) for one
    /// node; 1 sends each request in a frame of its own.
    pub batch: usize,
    /// Pin each client to one node, with keys drawn from those the node is
    /// primary for, as `redis-benchmark --cluster` does with hash tags.
    pub pinned: bool,
    /// Bytes per value.
    pub value_size: usize,
    /// Keys `bench:<run>:0` .. `bench:<run>:{K-1}`, chosen uniformly at
    /// random (a namespace of the run's own: see [`crate::bench`]).
    pub keys: usize,
    /// Leave the keys in place instead of deleting them afterwards.
    pub keep: bool,
}

impl Default for BenchConfig {
    fn default() -> Self {
        BenchConfig {
            kind: BenchKind::Put,
            ops: None,
            duration: Duration::from_secs(5),
            clients: 50,
            threads: default_threads(),
            pipeline: 1,
            batch: 1,
            pinned: false,
            value_size: 100,
            keys: 100_000,
            keep: false,
        }
    }
}

/// One event-loop thread per core.
pub fn default_threads() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get().min(MAX_THREADS))
}

impl BenchConfig {
    /// Checks the numbers are in range.
    pub fn validate(&self) -> Result<()> {
        let bad = |what: String| Err(Error::BadInput(format!("{what}; {USAGE}")));
        if self.ops == Some(0) {
            return bad("--ops must be at least 1".into());
        }
        if self.ops.is_none() && self.duration.is_zero() {
            return bad("--duration must be more than 0".into());
        }
        if !(1..=MAX_CLIENTS).contains(&self.clients) {
            return bad(format!("--clients must be 1 to {MAX_CLIENTS}"));
        }
        if self.threads > MAX_THREADS {
            return bad(format!(
                "--threads must be 0 (a thread per client) to {MAX_THREADS}"
            ));
        }
        if !(1..=MAX_PIPELINE).contains(&self.pipeline) {
            return bad(format!("--pipeline must be 1 to {MAX_PIPELINE}"));
        }
        if !(1..=crate::node::protocol::MAX_BATCH).contains(&self.batch) {
            return bad(format!(
                "--batch must be 1 to {}",
                crate::node::protocol::MAX_BATCH
            ));
        }
        if self.keys == 0 || self.keys > u32::MAX as usize {
            return bad("--keys must be 1 to 4294967295".into());
        }
        Ok(())
    }
}

/// Parses the shell's arguments: the kind, then options in any order. A
/// leading `bench` is skipped, so both the whole line and the words after
/// the command name work. Options take `--opt V` or `--opt=V`.
pub fn bench_parse(args: &[String]) -> Result<BenchConfig> {
    let usage = || Error::BadInput(USAGE.into());
    let mut args = args.iter().map(String::as_str).peekable();
    if args.peek() == Some(&"bench") {
        args.next();
    }
    let kind: BenchKind = args.next().ok_or_else(usage)?.parse()?;
    let mut cfg = BenchConfig {
        kind,
        ..BenchConfig::default()
    };
    let mut duration_given = false;
    while let Some(arg) = args.next() {
        let (name, inline) = match arg.split_once('=') {
            Some((n, v)) if n.starts_with("--") => (n, Some(v)),
            _ => (arg, None),
        };
        if name == "--keep" || name == "--pinned" {
            if inline.is_some() {
                return Err(Error::BadInput(format!("{name} takes no value; {USAGE}")));
            }
            if name == "--keep" {
                cfg.keep = true;
            } else {
                cfg.pinned = true;
            }
            continue;
        }
        if !matches!(
            name,
            "--ops"
                | "--duration"
                | "--clients"
                | "--pipeline"
                | "--batch"
                | "--value-size"
                | "--keys"
                | "--threads"
        ) {
            return Err(Error::BadInput(format!("unknown option {arg:?}; {USAGE}")));
        }
        let value = match inline {
            Some(v) => v,
            None => args
                .next()
                .ok_or_else(|| Error::BadInput(format!("{name} needs a value; {USAGE}")))?,
        };
        let number = |v: &str| -> Result<u64> {
            // Accept 100000 and 100_000 (and 100,000) alike.
            let digits: String = v.chars().filter(|c| !matches!(c, '_' | ',')).collect();
            digits
                .parse()
                .map_err(|_| Error::BadInput(format!("{name} needs a number, got {v:?}; {USAGE}")))
        };
        match name {
            "--ops" => cfg.ops = Some(number(value)?),
            "--duration" => {
                cfg.duration = parse_duration(value)
                    .map_err(|e| Error::BadInput(format!("--duration: {e}; {USAGE}")))?;
                duration_given = true;
            }
            "--clients" => cfg.clients = number(value)? as usize,
            "--pipeline" => cfg.pipeline = number(value)? as usize,
            "--batch" => cfg.batch = number(value)? as usize,
            "--value-size" => cfg.value_size = number(value)? as usize,
            "--keys" => cfg.keys = number(value)? as usize,
            "--threads" => cfg.threads = number(value)? as usize,
            _ => unreachable!("option names are checked above"),
        }
    }
    if cfg.ops.is_some() && duration_given {
        return Err(Error::BadInput(format!(
            "--ops and --duration exclude each other; {USAGE}"
        )));
    }
    cfg.validate()?;
    Ok(cfg)
}

#[cfg(test)]
mod tests {
    use super::*;
    use test_case::test_case;

    fn parse(line: &str) -> Result<BenchConfig> {
        let words: Vec<String> = line.split_whitespace().map(String::from).collect();
        bench_parse(&words)
    }

    #[test]
    fn defaults_match_the_issue() {
        let cfg = parse("put").unwrap();
        assert_eq!(cfg, BenchConfig::default());
        assert_eq!(cfg.clients, 50);
        assert_eq!(cfg.pipeline, 1);
        assert_eq!(cfg.value_size, 100);
        assert_eq!(cfg.keys, 100_000);
        assert_eq!(cfg.duration, Duration::from_secs(5));
        assert_eq!(cfg.ops, None);
        assert!(!cfg.keep && !cfg.pinned);
        assert_eq!(cfg.threads, default_threads());
        assert!(cfg.threads >= 1, "event loops by default");
    }

    #[test]
    fn every_option_parses() {
        let cfg = parse(
            "bench mixed --ops 1_000 --clients 8 --pipeline=16 --batch 4 --pinned --value-size 10 --keys 500 --threads 0 --keep",
        )
        .unwrap();
        assert_eq!(
            cfg,
            BenchConfig {
                kind: BenchKind::Mixed,
                ops: Some(1000),
                duration: Duration::from_secs(5),
                clients: 8,
                threads: 0,
                pipeline: 16,
                batch: 4,
                pinned: true,
                value_size: 10,
                keys: 500,
                keep: true,
            }
        );
        assert_eq!(
            parse("get --duration 500ms").unwrap().duration,
            Duration::from_millis(500)
        );
        assert_eq!(
            parse("get --duration=2m").unwrap().duration,
            Duration::from_secs(120)
        );
        assert_eq!(parse("put --value-size 0").unwrap().value_size, 0);
    }

    #[test_case("", "usage: bench put|get|mixed"; "no kind")]
    #[test_case("bench", "usage: bench put|get|mixed"; "only the command")]
    #[test_case("scan", "unknown bench kind \"scan\""; "unknown kind")]
    #[test_case("put --ops", "--ops needs a value"; "missing value")]
    #[test_case("put --ops many", "--ops needs a number, got \"many\""; "not a number")]
    #[test_case("put --ops 0", "--ops must be at least 1"; "zero ops")]
    #[test_case("put --duration 5x", "--duration: bad duration"; "bad duration")]
    #[test_case("put --duration 0s", "--duration must be more than 0"; "zero duration")]
    #[test_case("put --ops 10 --duration 1s", "--ops and --duration exclude each other"; "both limits")]
    #[test_case("put --clients 0", "--clients must be 1 to 1024"; "no clients")]
    #[test_case("put --pipeline 0", "--pipeline must be 1 to 4096"; "no pipeline")]
    #[test_case("put --batch 0", "--batch must be 1 to 1024"; "no batch")]
    #[test_case("put --keys 0", "--keys must be 1"; "no keys")]
    #[test_case("put --threads 65", "--threads must be 0 (a thread per client) to 64"; "too many threads")]
    #[test_case("put --keep=yes", "--keep takes no value"; "keep with a value")]
    #[test_case("put --pinned=1", "--pinned takes no value"; "pinned with a value")]
    #[test_case("put --fast", "unknown option \"--fast\""; "unknown option")]
    #[test_case("put 100", "unknown option \"100\""; "stray word")]
    fn mistakes_get_one_line_with_the_usage(line: &str, expected: &str) {
        let err = parse(line).unwrap_err();
        let msg = err.to_string();
        assert!(
            msg.starts_with(expected),
            "{msg:?} should start with {expected:?}"
        );
        assert!(msg.contains(USAGE), "{msg:?} should carry the usage line");
        assert!(!msg.contains('\n'), "errors are one line");
        assert_eq!(err.code(), "bad_request");
    }

    #[test]
    fn kinds_round_trip_through_their_names() {
        for kind in [BenchKind::Put, BenchKind::Get, BenchKind::Mixed] {
            assert_eq!(kind.name().parse::<BenchKind>().unwrap(), kind);
            assert_eq!(
                serde_json::to_value(kind).unwrap(),
                serde_json::Value::from(kind.name())
            );
        }
        assert!(!BenchKind::Put.needs_load());
        assert!(BenchKind::Get.needs_load() && BenchKind::Mixed.needs_load());
    }
}
