//! Script tests of the shell: each file in `tests/scripts/` holds shell
//! commands and the output they must produce (goldenscript format: commands,
//! then `---`, then output; `!` marks a command expected to fail). Every
//! line goes through `Shell::execute`, the function the REPL calls.
//!
//! Shell lines are written after `>`, which makes goldenscript take the
//! rest of the line literally (its own argument syntax has no room for
//! `--flags` or `user:1`).
//!
//! Runner commands, not shell commands:
//! - `cluster [nodes=N] [replicas=R] [partitions=P] [placement=S]` starts a
//!   fresh cluster (the first shell command starts a default one: 4 nodes,
//!   R=2, 16 partitions);
//! - `json on|off` switches `--json` output;
//! - `cluster ... data=on` keeps the nodes' data in a fresh temporary
//!   directory (`--data-dir`), shown as `DIR`, and `reopen` stops the
//!   whole cluster and starts it again on that directory.
//!
//! Ports and timings change from run to run, so they are masked in the
//! output: `tcp://127.0.0.1:PORT`, `N.NN s`, `N ms`, `epoch N`.
//!
//! `UPDATE_GOLDENFILES=1 cargo test --test scripts` rewrites the expected
//! output, to review as a diff.

use kvsh::cluster::{Cluster, ClusterConfig};
use kvsh::shell::Shell;
use kvsh::view::placement::{Placement, Strategy, DEFAULT_VNODES};
use std::error::Error;

#[derive(Default)]
struct Runner {
    shell: Option<Shell>,
    json: bool,
    /// The configuration of the running cluster, for `reopen`.
    cfg: Option<ClusterConfig>,
    /// The data directory of a `data=on` cluster, removed at the end.
    data: Option<std::path::PathBuf>,
}

impl Drop for Runner {
    fn drop(&mut self) {
        self.shell = None;
        if let Some(dir) = &self.data {
            let _ = std::fs::remove_dir_all(dir);
        }
    }
}

impl Runner {
    fn start(&mut self, cfg: ClusterConfig) -> Result<(), Box<dyn Error>> {
        self.shell = None; // Stop the old cluster first.
        self.cfg = Some(cfg.clone());
        let cluster = Cluster::start(cfg, None)?;
        let mut shell = Shell::new(cluster, self.json, true, false);
        shell.json = self.json;
        self.shell = Some(shell);
        Ok(())
    }
}

fn default_config() -> ClusterConfig {
    ClusterConfig {
        partitions: 16,
        ..ClusterConfig::default()
    }
}

/// Rebuilds the typed line from goldenscript's parsed command. Lines
/// written as `> put k "v"` arrive whole, as the command name.
fn line(command: &goldenscript::Command) -> String {
    if command.args.is_empty() {
        return command.name.clone();
    }
    let mut words = vec![command.name.clone()];
    for a in &command.args {
        let w = match &a.key {
            Some(k) => format!("{k}={}", a.value),
            None => a.value.clone(),
        };
        words.push(shell_words::quote(&w).into_owned());
    }
    words.join(" ")
}

fn redact(s: &str) -> String {
    let port = regex::Regex::new(r"tcp://127\.0\.0\.1:\d+").unwrap();
    let secs = regex::Regex::new(r"\d+\.\d+ s\b").unwrap();
    let ms = regex::Regex::new(r"\b\d+ ms\b").unwrap();
    let rate = regex::Regex::new(r"\(\d+ keys/s\)").unwrap();
    let ms_json = regex::Regex::new(r#""(took_ms|waited_ms)":\d+"#).unwrap();
    // How many epochs a change takes depends on how messages batch.
    let epoch = regex::Regex::new(r"; epoch \d+,").unwrap();
    let s = port.replace_all(s, "tcp://127.0.0.1:PORT");
    let s = secs.replace_all(&s, "N.NN s");
    let s = ms.replace_all(&s, "N ms");
    let s = rate.replace_all(&s, "(N keys/s)");
    let s = epoch.replace_all(&s, "; epoch N,");
    ms_json.replace_all(&s, "\"$1\":N").into_owned()
}

impl goldenscript::Runner for Runner {
    fn run(&mut self, command: &goldenscript::Command) -> Result<String, Box<dyn Error>> {
        match command.name.as_str() {
            "cluster" => {
                let mut cfg = default_config();
                let mut args = command.consume_args();
                if let Some(n) = args.lookup_parse("nodes")? {
                    cfg.nodes = n;
                }
                if let Some(r) = args.lookup_parse("replicas")? {
                    cfg.replicas = r;
                }
                if let Some(p) = args.lookup_parse("partitions")? {
                    cfg.partitions = p;
                }
                if let Some(s) = args.lookup_parse::<String>("placement")? {
                    let strategy: Strategy = s.parse()?;
                    cfg.placement = Placement::new(strategy, DEFAULT_VNODES);
                }
                if args.lookup_parse::<String>("data")?.as_deref() == Some("on") {
                    let dir = std::env::temp_dir().join(format!(
                        "kvsh-script-{}-{:x}",
                        std::process::id(),
                        rand::random::<u32>()
                    ));
                    self.data = Some(dir.clone());
                    cfg.data = Some(kvsh::cluster::DataDir {
                        dir,
                        fsync: Default::default(),
                    });
                }
                args.reject_rest()?;
                self.start(cfg)?;
                Ok(String::new())
            }
            "reopen" => {
                let cfg = self.cfg.clone().ok_or("no cluster to reopen")?;
                self.start(cfg)?;
                let cluster = self.shell.as_ref().expect("started").cluster();
                let mut out = format!(
                    "restored from a saved view: {}\n",
                    cluster.restored_from().is_some()
                );
                for id in cluster.node_ids() {
                    if let Some((r, _)) = cluster.reloaded(id) {
                        out += &format!("{} reloaded {} keys\n", kvsh::view::node_name(id), r.keys);
                    }
                }
                Ok(out)
            }
            "json" => {
                let on = command.args.first().is_some_and(|a| a.value == "on");
                self.json = on;
                if let Some(s) = self.shell.as_mut() {
                    s.json = on;
                }
                Ok(String::new())
            }
            _ => {
                if self.shell.is_none() {
                    self.start(default_config())?;
                }
                let shell = self.shell.as_mut().expect("started");
                let mut out = Vec::new();
                let result = shell.execute(&line(command), &mut out);
                let mut out = redact(&String::from_utf8(out)?);
                if let Some(dir) = &self.data {
                    out = out.replace(&dir.display().to_string(), "DIR");
                }
                match result {
                    Ok(()) => Ok(out),
                    Err(e) => Err(format!("{out}{}", redact(&e.to_string())).into()),
                }
            }
        }
    }
}

#[test]
fn scripts() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/scripts");
    let mut paths: Vec<_> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    paths.sort();
    assert!(!paths.is_empty(), "there are scripts in {}", dir.display());
    for path in paths {
        eprintln!("running {}", path.display());
        goldenscript::run(&mut Runner::default(), &path)
            .unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    }
}

/// Runs one line through the shell; returns its output.
fn run(shell: &mut Shell, line: &str) -> String {
    let mut out = Vec::new();
    shell
        .execute(line, &mut out)
        .unwrap_or_else(|e| panic!("{line}: {e}"));
    String::from_utf8(out).unwrap()
}

/// A pause at 1024 partitions is hundreds of events; `events` tells it in
/// a few lines, `--detail` and `--partition` give every event, and the
/// JSON names nodes as every other shape does.
#[test]
fn a_fault_reads_as_a_few_lines() {
    let cluster = Cluster::start(
        ClusterConfig {
            partitions: 1024,
            ..ClusterConfig::default()
        },
        None,
    )
    .unwrap();
    let mut shell = Shell::new(cluster, false, true, false);
    run(&mut shell, "pause n3 2s");
    run(&mut shell, "wait healthy 60s");
    let rows = |text: &str| text.lines().filter(|l| l.starts_with("| ")).count() - 1;
    let summary = run(&mut shell, "events");
    let detail = run(&mut shell, "events --detail");
    assert!(summary.contains("n3 declared dead"), "{summary}");
    assert!(
        // After n3 died, or before, when it could not hold a lease.
        summary.contains("partitions promoted new primaries"),
        "{summary}"
    );
    assert!(
        summary.contains("all done: every partition is at its target"),
        "{summary}"
    );
    assert!(rows(&summary) <= 16, "{} lines:\n{summary}", rows(&summary));
    assert!(rows(&detail) >= 10 * rows(&summary), "{detail}");

    shell.json = true;
    let events: serde_json::Value = serde_json::from_str(&run(&mut shell, "events")).unwrap();
    let events = events.as_array().unwrap();
    assert_eq!(events.len(), rows(&detail));
    let mut partition = None;
    for e in events {
        for field in ["node", "from", "to"] {
            if let Some(v) = e.get(field) {
                assert!(v.as_str().is_some_and(|s| s.starts_with('n')), "{e}");
            }
        }
        if e["kind"] == "promoted" {
            partition = e["partition"].as_u64();
        }
    }
    let p = partition.expect("the pause promoted partitions");
    let one: serde_json::Value =
        serde_json::from_str(&run(&mut shell, &format!("events --partition {p}"))).unwrap();
    let one = one.as_array().unwrap();
    assert!(!one.is_empty());
    assert!(
        one.iter().all(|e| e["partition"].as_u64() == Some(p)),
        "{one:?}"
    );
}

/// Pausing a paused node moves the end of its pause for real: a 300 ms
/// pause, extended to 3 s, outlasts the failure timeout, so the node is
/// declared dead (a 300 ms pause alone is at most suspected).
#[test]
fn pausing_a_paused_node_extends_the_pause() {
    let cluster = Cluster::start(default_config(), None).unwrap();
    let mut shell = Shell::new(cluster, true, true, false);
    run(&mut shell, "pause n2 300ms");
    let again: serde_json::Value = serde_json::from_str(&run(&mut shell, "pause n2 3s")).unwrap();
    assert_eq!(again["was_paused"], true, "{again}");
    run(&mut shell, "wait healthy 60s");
    let events: serde_json::Value = serde_json::from_str(&run(&mut shell, "events")).unwrap();
    assert!(
        events
            .as_array()
            .unwrap()
            .iter()
            .any(|e| e["kind"] == "dead" && e["node"] == "n2"),
        "{events}"
    );
}

/// `stats` counts the requests each node answered, from its heartbeats.
#[test]
fn stats_count_what_the_nodes_served() {
    let cluster = Cluster::start(default_config(), None).unwrap();
    let mut shell = Shell::new(cluster, true, true, false);
    for i in 0..5 {
        run(&mut shell, &format!("put k{i} v"));
    }
    run(&mut shell, "get k1");
    run(&mut shell, "del k2");
    let stats: serde_json::Value = serde_json::from_str(&run(&mut shell, "stats")).unwrap();
    let served = &stats["total"]["served"];
    assert!(served["writes"].as_u64().unwrap() >= 5, "{stats}");
    assert!(served["reads"].as_u64().unwrap() >= 1, "{stats}");
    assert!(served["deletes"].as_u64().unwrap() >= 1, "{stats}");
    assert_eq!(
        stats["total"]["keys"], 8,
        "4 keys, 2 replicas each: {stats}"
    );
    assert_eq!(stats["nodes"].as_array().unwrap().len(), 4, "{stats}");
}
