//! Shells attached to node processes through ZooKeeper (`--coord`): with
//! `--spawn` they drive their own nodes, and the view leader's commands
//! travel to the node process that leads.

use super::*;

/// True while `pid` names a process that has not exited (a zombie has).
fn alive(pid: u32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .ok()
        .and_then(|s| s.rsplit(')').next().map(|r| r.trim_start().to_string()))
        .is_some_and(|r| !r.starts_with('Z') && !r.starts_with('X'))
}

/// The shell attached with `--coord --spawn 3` drives node processes
/// with the shell's own commands: data commands route by the leader's
/// published view, `kill` is SIGKILL, `pause` SIGSTOP and SIGCONT,
/// `restart` a new process with the same id, `events` the leader's log,
/// and a verb an attached shell cannot do says so in one line. Every
/// acknowledged write is read back after the kill, the restart and the
/// pause.
#[test]
fn a_shell_attached_with_spawn_drives_node_processes() {
    let Some(zk) = Zk::start() else { return };
    let url = zk.url("/kvsh/shell");
    let script = "\
put a 1
put b 2
nodes
table
kill n2
put c 3
wait healthy 60s
get a
get b
get c
restart n2
wait healthy 60s
get a
pause n3 1s
get a
get b
get c
wait healthy 60s
put d 4
get d
verify
partition n1
sleep 1s
heal
wait healthy 60s
events
";
    let (stdout, _) = run_shell(&url, &["--spawn", "3"], script);
    assert!(
        stdout.contains("every replica matches its primary"),
        "verify asks each process for digests: {stdout}"
    );
    assert!(
        stdout.contains("n1 declared dead"),
        "the partition reached the nodes' transports: {stdout}"
    );
    for v in ["\"1\"", "\"2\"", "\"3\"", "\"4\""] {
        assert!(stdout.contains(v), "{v} read back: {stdout}");
    }
    assert_eq!(
        stdout.matches("\"1\"").count(),
        3,
        "a read after each fault"
    );
    assert!(stdout.contains("killed n2"), "{stdout}");
    assert!(stdout.contains("restarted n2"), "{stdout}");
    assert!(stdout.contains("paused n3 for 1.0 s"), "{stdout}");
    assert!(
        stdout.contains("n2 declared dead"),
        "the leader's events: {stdout}"
    );
    assert!(stdout.contains("n2 restarted empty"), "{stdout}");
    // The shell stopped its nodes: no member is left registered.
    let zkm = ZkMembership::connect(&zk.addr, "/kvsh/shell", Duration::from_secs(5)).unwrap();
    let left: Vec<u32> = zkm.members().unwrap().iter().map(|m| m.pid).collect();
    assert!(
        left.iter().all(|p| !alive(*p)),
        "nodes outlived the shell: {left:?}"
    );
}

/// A shell killed with SIGKILL takes its node processes with it (their
/// parent-death signal), so no node is left running orphaned.
#[test]
fn node_processes_die_with_a_killed_shell() {
    let Some(zk) = Zk::start() else { return };
    let url = zk.url("/kvsh/orphans");
    let mut shell = Command::new(env!("CARGO_BIN_EXE_kvsh"))
        .args(["--coord", &url, "--spawn", "2", "-p", "8"])
        .env("KVSH_SECRET", SECRET)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap();
    // Script mode from stdin: one command, answered once the nodes are up.
    use std::io::Write;
    let mut stdin = shell.stdin.take().unwrap();
    writeln!(stdin, "put x 1").unwrap();
    let mut out = BufReader::new(shell.stdout.take().unwrap());
    let mut line = String::new();
    out.read_line(&mut line).unwrap();
    assert!(line.starts_with("OK"), "{line:?}");
    let zkm = ZkMembership::connect(&zk.addr, "/kvsh/orphans", Duration::from_secs(5)).unwrap();
    let pids: Vec<u32> = zkm.members().unwrap().iter().map(|m| m.pid).collect();
    assert_eq!(pids.len(), 2);
    assert!(pids.iter().all(|p| alive(*p)));
    shell.kill().unwrap();
    shell.wait().unwrap();
    // The kernel delivers the parent-death signal as the shell exits;
    // bounded, in case it does not.
    let deadline = Instant::now() + Duration::from_secs(10);
    while pids.iter().any(|p| alive(*p)) {
        assert!(Instant::now() < deadline, "orphaned nodes: {pids:?}");
        std::thread::sleep(Duration::from_millis(20));
    }
    drop(stdin);
}

/// Runs a shell attached to `url` (16 partitions, `extra` arguments such
/// as `--spawn 3`) with `script` (one command a line, or `;`-separated),
/// with the secret; returns its stdout and stderr, asserting it succeeded.
fn run_shell(url: &str, extra: &[&str], script: &str) -> (String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_kvsh"))
        .args(["--coord", url, "-p", "16", "--session-timeout", "3000ms"])
        .args(extra)
        .arg("-c")
        .arg(script.trim().replace('\n', ";"))
        .env("KVSH_SECRET", SECRET)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout).to_string();
    let stderr = String::from_utf8_lossy(&out.stderr).to_string();
    eprintln!("{stdout}\n{stderr}");
    assert!(out.status.success(), "{stderr}");
    (stdout, stderr)
}

/// The view leader's commands from an attached shell: they travel to the
/// node process that leads, over its control port, and answer as in one
/// process. A removed node's process exits by itself.
#[test]
fn an_attached_shell_runs_the_view_leaders_commands() {
    let Some(zk) = Zk::start() else { return };
    let url = zk.url("/kvsh/operator");
    let script = "\
put a 1
put b 2
put c 3
set auto-rebalance off
set
placement
rebalance --dry-run
placement hrw
placement
set auto-rebalance on
rebalance
repair
remove n4
nodes
get a
get b
get c
verify
events
";
    let started = Instant::now();
    let (stdout, _) = run_shell(&url, &["--spawn", "4"], script);
    let ran = started.elapsed().as_secs_f64();
    // Event times count from the shell's start, not the host's boot.
    let times: Vec<f64> = stdout
        .lines()
        .filter_map(|l| {
            l.strip_prefix("| ")?
                .split_once("s ")?
                .0
                .trim()
                .parse()
                .ok()
        })
        .collect();
    assert!(!times.is_empty(), "{stdout}");
    assert!(
        times.iter().all(|t| (0.0..=ran).contains(t)),
        "times within the shell's run of {ran:.1} s: {times:?}"
    );
    assert!(stdout.contains("auto-rebalance off"), "{stdout}");
    assert!(
        stdout
            .lines()
            .any(|l| l.starts_with("| auto-rebalance") && l.contains(" off ")),
        "`set` shows the leader's setting at once: {stdout}"
    );
    assert!(
        stdout.contains("placement ring"),
        "the leader's strategy before the switch: {stdout}"
    );
    assert!(stdout.contains("plan: ") || stdout.contains("target is already met"));
    assert!(
        stdout.matches("placement hrw").count() >= 2,
        "the switch, then the leader's strategy: {stdout}"
    );
    assert!(stdout.contains("rebalancing complete"), "{stdout}");
    assert!(stdout.contains("repair complete"), "{stdout}");
    assert!(stdout.contains("removed n4:"), "{stdout}");
    let nodes_table = stdout
        .split("removed n4:")
        .nth(1)
        .unwrap()
        .split("\"1\"")
        .next()
        .unwrap();
    assert!(
        !nodes_table.contains("n4"),
        "the removed node's process exited and is not listed: {nodes_table}"
    );
    for v in ["\"1\"", "\"2\"", "\"3\""] {
        assert!(stdout.contains(v), "{v} read back: {stdout}");
    }
    assert!(stdout.contains("every replica matches its primary"));
}

/// A leader change mid-request: the shell's command finds the leader's
/// process gone (kill -9), waits for ZooKeeper to name the next one, and
/// sends it there. The operator's settings survive the failover: the new
/// leader takes them from the status the last one published.
#[test]
fn the_leaders_commands_follow_a_leader_change() {
    let Some(zk) = Zk::start() else { return };
    let mut procs = Procs::start(&zk, "/kvsh/failover-ops", 3, 16);
    let first = procs.leader().expect("a leader is announced");
    run_shell(
        &procs.url,
        &[],
        "set auto-rebalance off\nplacement hrw\nwait healthy 60s",
    );
    procs.wait("at hrw, auto-rebalance off", |s| {
        s.strategy == Some(kvsh::view::placement::Strategy::Hrw) && !s.auto_rebalance
    });
    procs.kill9(first.node);
    // At once: the dead process does not answer, and ZooKeeper still names
    // it until its session expires.
    let (out, err) = run_shell(&procs.url, &[], "rebalance\nset");
    assert!(
        err.contains(&format!(
            "the view leader changed during the request (n{} to n{}): sent again",
            first.node,
            procs.leader().unwrap().node
        )),
        "the command went to the dead leader first: {err}"
    );
    let second = procs.leader().expect("a new leader");
    assert_ne!(second.node, first.node);
    assert!(
        out.contains("rebalancing complete") || out.contains("target is already met"),
        "{out}"
    );
    assert!(
        out.lines()
            .any(|l| l.starts_with("| auto-rebalance") && l.contains(" off ")),
        "the setting survived the failover: {out}"
    );
    let s = procs.status().unwrap();
    assert_eq!(s.strategy, Some(kvsh::view::placement::Strategy::Hrw));
    // The new leader refuses as the old one would, in the same words.
    let refused = Command::new(env!("CARGO_BIN_EXE_kvsh"))
        .args([
            "--coord",
            &procs.url,
            "-c",
            &format!("remove n{}", second.node),
        ])
        .env("KVSH_SECRET", SECRET)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&refused.stderr);
    assert!(!refused.status.success());
    assert!(
        stderr.contains(&format!(
            "Error: removing n{} would leave 1 live node for 2 replicas per partition",
            second.node
        )),
        "{stderr}"
    );
}

/// A shell attached with `--coord`, reading commands from a pipe.
struct Attached {
    child: Child,
    stdin: std::process::ChildStdin,
    out: BufReader<std::process::ChildStdout>,
}

impl Attached {
    fn open(url: &str) -> Attached {
        let mut child = Command::new(env!("CARGO_BIN_EXE_kvsh"))
            .args(["--coord", url, "--session-timeout", "3000ms"])
            .env("KVSH_SECRET", SECRET)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap();
        let stdin = child.stdin.take().unwrap();
        let out = BufReader::new(child.stdout.take().unwrap());
        Attached { child, stdin, out }
    }

    /// Runs `commands` (one a line) and returns what they printed.
    fn run(&mut self, commands: &str) -> String {
        use std::io::Write;
        writeln!(self.stdin, "{commands}\necho --end--").unwrap();
        let mut text = String::new();
        loop {
            let mut line = String::new();
            assert!(self.out.read_line(&mut line).unwrap() > 0, "shell ended");
            if line.trim() == "--end--" {
                return text;
            }
            text.push_str(&line);
        }
    }
}

impl Drop for Attached {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// What `wait healthy` then `table` print, without the wait's duration.
fn settled_table(shell: &mut Attached) -> String {
    let out = shell.run("wait healthy 60s\ntable");
    assert!(out.starts_with("healthy"), "{out}");
    out.lines().skip(1).collect::<Vec<_>>().join("\n")
}

/// Two shells attached to one cluster see the same view, before and after
/// a leader change; and the process that held the leader role, stopped
/// (SIGSTOP) past its ZooKeeper session, stops acting as leader: when it
/// runs again it finds its session gone and exits, and ZooKeeper names
/// the process that took over.
#[test]
fn two_attached_shells_see_one_view_and_a_leader_that_lost_its_session_stops() {
    let Some(zk) = Zk::start() else { return };
    let mut procs = Procs::start(&zk, "/kvsh/two-shells", 3, 16);
    let mut a = Attached::open(&procs.url);
    let mut b = Attached::open(&procs.url);
    assert_eq!(a.run("put x 1\nput y 2").trim(), "OK\nOK");
    let (ta, tb) = (settled_table(&mut a), settled_table(&mut b));
    assert!(ta.contains("n1") && ta.contains("n3"), "{ta}");
    assert_eq!(ta, tb, "the two shells see one view");

    let old = procs.leader().unwrap();
    procs.signal(old.node, libc::SIGSTOP);
    let deadline = Instant::now() + leader_bound() + Duration::from_secs(20);
    let new = loop {
        match procs.leader() {
            Some(rec) if rec.node != old.node => break rec,
            _ => assert!(Instant::now() < deadline, "no new leader"),
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    assert!(new.session > old.session, "a later election");
    procs.wait("the stopped leader's node dead", |s| {
        s.view.nodes[&old.node].state == kvsh::view::NodeState::Dead
    });
    procs.signal(old.node, libc::SIGCONT);
    // Running again, it finds its session expired and exits, rather than
    // act on a role it lost.
    let child = procs.nodes.get_mut(&old.node).unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        assert!(Instant::now() < deadline, "the old leader did not stop");
        std::thread::sleep(Duration::from_millis(20));
    };
    assert!(!status.success(), "it ends with its session's error");
    assert_eq!(procs.leader().unwrap(), new, "the new leader holds on");

    let (ta, tb) = (settled_table(&mut a), settled_table(&mut b));
    assert_eq!(ta, tb, "the two shells see one view after the change");
    // Both reach the new leader's commands, and read what was written.
    for shell in [&mut a, &mut b] {
        let out = shell.run("rebalance --dry-run\nget x\nget y");
        assert!(out.contains("\"1\"\n\"2\""), "{out}");
    }
}

/// Issue #12's test list: `check` from a `--coord` shell, with kill, pause
/// and partition faults on node processes, finds no violation (and did
/// work under them).
#[test]
fn check_from_an_attached_shell_under_faults_finds_no_violation() {
    let Some(zk) = Zk::start() else { return };
    let url = zk.url("/kvsh/check");
    let (stdout, _) = run_shell(
        &url,
        &["--spawn", "3", "--json"],
        "wait healthy 60s; check --duration 6s --keys 5 --faults kill,pause,partition --seed 3",
    );
    let report: serde_json::Value = stdout
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .find(|j| j.get("violations_count").is_some())
        .unwrap_or_else(|| panic!("no check report: {stdout}"));
    assert_eq!(report["violations_count"], 0, "{report}");
    assert!(
        report["ok"].as_u64().unwrap_or(0) > 20,
        "check did work: {report}"
    );
}
