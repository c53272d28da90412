//! End-to-end tests: the real `kvsh` binary with piped stdin, and plain
//! ZeroMQ clients (REQ and DEALER) speaking the seed-001 JSON protocol to
//! its nodes.

use serde_json::{json, Value};
use std::io::{BufRead, BufReader, Write};
use std::process::{Child, ChildStdin, ChildStdout, Command, Stdio};

struct Kvsh {
    child: Child,
    stdin: ChildStdin,
    stdout: BufReader<ChildStdout>,
}

impl Kvsh {
    fn start(args: &[&str]) -> Kvsh {
        let mut child = Command::new(env!("CARGO_BIN_EXE_kvsh"))
            .args(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("kvsh starts");
        let stdin = child.stdin.take().unwrap();
        let stdout = BufReader::new(child.stdout.take().unwrap());
        Kvsh {
            child,
            stdin,
            stdout,
        }
    }

    /// Runs one command and returns its one line of JSON output.
    fn json(&mut self, line: &str) -> Value {
        writeln!(self.stdin, "{line}").unwrap();
        self.stdin.flush().unwrap();
        let mut out = String::new();
        self.stdout.read_line(&mut out).unwrap();
        serde_json::from_str(&out)
            .unwrap_or_else(|e| panic!("{line:?} printed {out:?}, not JSON: {e}"))
    }

    fn quit(mut self) -> std::process::ExitStatus {
        writeln!(self.stdin, "quit").unwrap();
        drop(self.stdin);
        self.child.wait().unwrap()
    }
}

fn req(ctx: &zmq::Context, endpoint: &str) -> zmq::Socket {
    let s = ctx.socket(zmq::REQ).unwrap();
    s.set_linger(0).unwrap();
    s.set_rcvtimeo(10_000).unwrap();
    s.connect(endpoint).unwrap();
    s
}

fn call(s: &zmq::Socket, request: &[u8]) -> Value {
    s.send(request, 0).unwrap();
    let reply = s.recv_bytes(0).expect("a reply within 10 s");
    serde_json::from_slice(&reply).unwrap()
}

fn endpoints(kvsh: &mut Kvsh) -> Vec<String> {
    let nodes = kvsh.json("nodes");
    nodes
        .as_array()
        .unwrap()
        .iter()
        .map(|n| n["endpoint"].as_str().unwrap().to_string())
        .collect()
}

#[test]
fn seed_protocol_through_any_node() {
    seed_protocol_over("tcp", "tcp://127.0.0.1:");
}

/// The same over Unix-domain sockets (`--transport ipc`): the protocol and
/// every answer are the same, and the sockets live in a private directory
/// that is gone when kvsh ends.
#[test]
fn seed_protocol_through_any_node_over_ipc() {
    let dir = seed_protocol_over("ipc", "ipc:///");
    let dir = dir.expect("ipc endpoints are paths");
    assert!(!dir.exists(), "{} is removed when kvsh ends", dir.display());
}

/// Runs the seed protocol against every node of a `--transport T` cluster
/// whose endpoints start with `prefix`; returns the sockets' directory.
fn seed_protocol_over(transport: &str, prefix: &str) -> Option<std::path::PathBuf> {
    let mut kvsh = Kvsh::start(&[
        "--json",
        "--nodes",
        "4",
        "--partitions",
        "32",
        "--transport",
        transport,
    ]);
    let eps = endpoints(&mut kvsh);
    assert_eq!(eps.len(), 4);
    assert!(
        eps.iter().all(|e| e.starts_with(prefix)),
        "nodes bind {prefix}: {eps:?}"
    );
    let dir = eps[0]
        .strip_prefix("ipc://")
        .and_then(|p| std::path::Path::new(p).parent())
        .map(|d| d.to_path_buf());
    if let Some(d) = &dir {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(d).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o700, "only this user can reach the sockets");
    }
    let ctx = zmq::Context::new();
    let a = req(&ctx, &eps[0]);
    let b = req(&ctx, &eps[2]);
    // PUT through one node, GET_ONE through another: nodes forward.
    for i in 0..50 {
        let put = json!({"op": "PUT", "key": format!("k{i}"), "value": format!("v{i}")});
        assert_eq!(
            call(&a, put.to_string().as_bytes()),
            json!({"ok": true, "key": format!("k{i}")})
        );
    }
    for i in 0..50 {
        let get = json!({"op": "GET_ONE", "key": format!("k{i}")});
        assert_eq!(
            call(&b, get.to_string().as_bytes()),
            json!({"key": format!("k{i}"), "value": format!("v{i}")})
        );
    }
    assert_eq!(
        call(&b, br#"{"op":"GET_ONE","key":"nope"}"#),
        json!({"key": "nope", "value": null})
    );
    // GET_ALL covers the whole cluster, from any node.
    for ep in &eps {
        let all = call(&req(&ctx, ep), br#"{"op":"GET_ALL"}"#);
        let collection = all["collection"].as_array().unwrap();
        assert_eq!(collection.len(), 50, "GET_ALL through {ep} sees every key");
        assert!(collection
            .iter()
            .any(|e| e == &json!({"key": "k7", "value": "v7"})));
    }
    // DELETE.
    assert_eq!(
        call(&a, br#"{"op":"DELETE","key":"k1"}"#)["existed"],
        json!(true)
    );
    assert_eq!(
        call(&b, br#"{"op":"GET_ONE","key":"k1"}"#)["value"],
        Value::Null
    );
    // The shell sees the same data.
    assert_eq!(kvsh.json("get k2"), json!({"key": "k2", "value": "v2"}));
    assert!(kvsh.quit().success());
    dir
}

#[test]
fn bad_frames_get_errors_and_the_node_keeps_serving() {
    let mut kvsh = Kvsh::start(&[
        "--json",
        "--nodes",
        "2",
        "--partitions",
        "8",
        "--max-frame",
        "4096",
    ]);
    let eps = endpoints(&mut kvsh);
    let ctx = zmq::Context::new();
    let s = req(&ctx, &eps[0]);
    let big_value = format!(r#"{{"op":"PUT","key":"k","value":"{}"}}"#, "x".repeat(3000));
    let cases: Vec<(Vec<u8>, &str)> = vec![
        (b"{not json".to_vec(), "malformed JSON"),
        (b"\xff\xfe\xfd".to_vec(), "not valid UTF-8"),
        (br#"{"op":"EXPLODE"}"#.to_vec(), "unknown op"),
        (
            br#"{"op":"PUT","key":"k"}"#.to_vec(),
            "missing field `value`",
        ),
        (
            br#"{"op":"PUT","key":"k","value":7}"#.to_vec(),
            "invalid type",
        ),
        (br#"{"op":"GET_ONE"}"#.to_vec(), "missing field `key`"),
        (br#""just a string""#.to_vec(), "expected a JSON object"),
        (vec![b'a'; 10_000], "exceeds the limit of 4096 bytes"),
        (
            big_value.into_bytes(),
            "value of 3000 bytes exceeds the limit of 2048 bytes",
        ),
        (
            br#"{"op":"PUT","op":"GET_ONE","key":"k","value":"v"}"#.to_vec(),
            "field `op` appears twice",
        ),
        (
            br#"{"op":"PUT","key":"","value":"v"}"#.to_vec(),
            "the key is empty",
        ),
        (br#"{"op":"GET_ALL","cursor":"no"}"#.to_vec(), "bad cursor"),
        // Over four times the limit but under the connection's drop limit
        // (four times plus 1 MiB): an error reply, not a dropped connection.
        (vec![b'a'; 5 * 4096], "exceeds the limit of 4096 bytes"),
    ];
    for (frame, expected) in cases {
        let reply = call(&s, &frame);
        let err = reply["error"]
            .as_str()
            .unwrap_or_else(|| panic!("an error reply, got {reply}"));
        assert!(err.contains(expected), "{err:?} mentions {expected:?}");
        // Still serving after each one.
        assert_eq!(
            call(&s, br#"{"op":"PUT","key":"alive","value":"yes"}"#)["ok"],
            json!(true)
        );
    }
    // A DEALER client sending two frames gets an error too.
    let d = ctx.socket(zmq::DEALER).unwrap();
    d.set_rcvtimeo(10_000).unwrap();
    d.connect(&eps[1]).unwrap();
    d.send_multipart([&b"one"[..], b"two", b"three"], 0)
        .unwrap();
    let reply: Value = serde_json::from_slice(&d.recv_bytes(0).unwrap()).unwrap();
    assert!(reply["error"]
        .as_str()
        .unwrap()
        .contains("expected one frame"));
    // DEALER clients may pipeline, matching replies by id.
    for i in 0..20 {
        d.send(
            json!({"op": "GET_ONE", "key": "alive", "id": i})
                .to_string()
                .as_bytes(),
            0,
        )
        .unwrap();
    }
    let mut ids: Vec<i64> = (0..20)
        .map(|_| {
            let r: Value = serde_json::from_slice(&d.recv_bytes(0).unwrap()).unwrap();
            assert_eq!(r["value"], json!("yes"));
            r["id"].as_i64().unwrap()
        })
        .collect();
    ids.sort();
    assert_eq!(ids, (0..20).collect::<Vec<_>>());
    // Error replies carry the request's id whenever the frame held one, so
    // a client matching replies by id is not left waiting.
    let with_ids: Vec<(Vec<u8>, Value, &str)> = vec![
        (
            format!(
                r#"{{"op":"PUT","key":"k","value":"{}","id":"big"}}"#,
                "x".repeat(5000)
            )
            .into_bytes(),
            json!("big"),
            "too_large",
        ),
        (
            format!(
                r#"{{"op":"PUT","key":"k","value":"{}","id":2}}"#,
                "x".repeat(3000)
            )
            .into_bytes(),
            json!(2),
            "too_large",
        ),
        (
            br#"{"op":"PUT","key":"k","value":7,"id":3}"#.to_vec(),
            json!(3),
            "bad_request",
        ),
        (
            br#"{"op":"FROB","id":[4]}"#.to_vec(),
            json!([4]),
            "bad_request",
        ),
        (
            br#"{"op":"GET_ONE","key":"k","key":"j","id":5}"#.to_vec(),
            json!(5),
            "bad_request",
        ),
        (
            br#"{"op":"GET_ONE","key":"","id":6}"#.to_vec(),
            json!(6),
            "bad_request",
        ),
        (
            br#"{"op":"GET_ALL","cursor":"999999","id":7}"#.to_vec(),
            json!(7),
            "bad_request",
        ),
    ];
    for (frame, id, code) in with_ids {
        d.send(&frame[..], 0).unwrap();
        let r: Value = serde_json::from_slice(&d.recv_bytes(0).unwrap()).unwrap();
        assert_eq!((&r["id"], &r["code"]), (&id, &json!(code)), "{r}");
    }
    d.send(&br#"{"op":"GET_ONE","key":"k","id":8"#[..], 0)
        .unwrap();
    let r: Value = serde_json::from_slice(&d.recv_bytes(0).unwrap()).unwrap();
    assert!(
        r.get("id").is_none(),
        "no id can be read from broken JSON: {r}"
    );
    // Keys may hold NUL: a distinct key, stored, replicated and listed.
    let nul = json!({"op": "PUT", "key": "a\u{0}b", "value": "nul"});
    assert_eq!(call(&s, nul.to_string().as_bytes())["ok"], json!(true));
    let get = |k: &str| {
        call(
            &s,
            json!({"op": "GET_ONE", "key": k}).to_string().as_bytes(),
        )
    };
    assert_eq!(get("a\u{0}b")["value"], json!("nul"));
    assert_eq!(get("a")["value"], Value::Null);
    let all = call(
        &s,
        json!({"op": "GET_ALL", "prefix": "a\u{0}"})
            .to_string()
            .as_bytes(),
    );
    assert_eq!(
        all["collection"],
        json!([{"key": "a\u{0}b", "value": "nul"}])
    );
    assert!(kvsh.quit().success());
}

/// A value over the limit typed in the shell fails at once with the
/// node's `too_large`, not after the client's timeout with a blame on the
/// node (issue #10, finding 5).
#[test]
fn the_shell_reports_too_large_values() {
    let mut kvsh = Kvsh::start(&["--json", "--nodes", "2", "--partitions", "8"]);
    let reply = kvsh.json(&format!("put big {}", "x".repeat(600_000)));
    let err = reply["error"].as_str().unwrap_or_else(|| panic!("{reply}"));
    assert!(err.starts_with("too large: value of 600000 bytes"), "{err}");
    assert_eq!(
        kvsh.json("put small v"),
        json!({"ok": true, "key": "small"})
    );
    assert_eq!(kvsh.quit().code(), Some(1), "one failed command");
}

/// Flags that would start a cluster that cannot work are refused with one
/// line on stderr (issue #10, finding 8).
#[test]
fn useless_flags_are_refused_in_one_line() {
    for (flags, why) in [
        (&["--max-frame", "0"][..], "--max-frame 0 is too small"),
        (
            &["--max-frame", "4095"][..],
            "--max-frame 4095 is too small",
        ),
        (
            &["--max-value", "0"][..],
            "--max-value must be at least 1 byte",
        ),
        (
            &["--max-frame", "4096", "--max-value", "4000"][..],
            "--max-value 4000 does not fit in --max-frame 4096",
        ),
        (&["--vnodes", "0"][..], "'--vnodes <VNODES>'"),
        (&["--partitions", "0"][..], "'--partitions <PARTITIONS>'"),
        (&["--replicas", "0"][..], "'--replicas <REPLICAS>'"),
        (&["--nodes", "0"][..], "'--nodes <NODES>'"),
        (&["--nodes", "65"][..], "'--nodes <NODES>'"),
        (
            &["--heartbeat", "0ms"][..],
            "--heartbeat must be from 1ms to 2000ms",
        ),
        (
            &["--heartbeat", "5s"][..],
            "--heartbeat must be from 1ms to 2000ms",
        ),
        // A bare number would be seconds: 100 of them, and the cluster
        // never bootstraps.
        (&["--heartbeat", "100"][..], "give a unit: 100ms or 100s"),
        (
            &["--failure-timeout", "600"][..],
            "give a unit: 600ms or 600s",
        ),
    ] {
        let out = Command::new(env!("CARGO_BIN_EXE_kvsh"))
            .args(flags)
            .args(["-c", "put a 1"])
            .output()
            .unwrap();
        let stderr = String::from_utf8(out.stderr).unwrap();
        assert_eq!(out.status.code(), Some(2), "{flags:?}: {stderr}");
        assert_eq!(stderr.lines().count(), 1, "{flags:?}: one line: {stderr}");
        assert!(stderr.starts_with("Error: "), "{flags:?}: {stderr}");
        assert!(stderr.contains(why), "{flags:?}: {stderr}");
        assert!(out.stdout.is_empty(), "{flags:?}: no cluster ran");
    }
}

#[test]
fn script_mode_reports_errors_by_line_and_exit_status() {
    let out = Command::new(env!("CARGO_BIN_EXE_kvsh"))
        .args([
            "--nodes",
            "2",
            "--partitions",
            "8",
            "-c",
            "put a 1; get a; frob; get missing; kill n5",
        ])
        .output()
        .unwrap();
    let stdout = String::from_utf8(out.stdout).unwrap();
    let stderr = String::from_utf8(out.stderr).unwrap();
    assert_eq!(stdout, "OK\n\"1\"\n(nil)\n");
    assert!(
        stderr.contains("line 3: Error: unknown command \"frob\""),
        "{stderr}"
    );
    assert!(
        stderr.contains("line 5: Error: unknown node \"n5\"; known nodes: n1, n2"),
        "{stderr}"
    );
    assert_eq!(out.status.code(), Some(2), "two commands failed");

    let out = Command::new(env!("CARGO_BIN_EXE_kvsh"))
        .args([
            "--nodes",
            "1",
            "--partitions",
            "4",
            "--stop-on-error",
            "-c",
            "frob; put a 1",
        ])
        .output()
        .unwrap();
    assert_eq!(
        String::from_utf8(out.stdout).unwrap(),
        "",
        "stopped at the first error"
    );
    assert_eq!(out.status.code(), Some(1));

    let out = Command::new(env!("CARGO_BIN_EXE_kvsh"))
        .args([
            "--json",
            "--nodes",
            "3",
            "--replicas",
            "5",
            "-c",
            "get nothing; frob",
        ])
        .output()
        .unwrap();
    let stdout = String::from_utf8(out.stdout).unwrap();
    let lines: Vec<Value> = stdout
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines[0], json!({"key": "nothing", "value": null}));
    assert!(lines[1]["error"]
        .as_str()
        .unwrap()
        .contains("unknown command"));
    let stderr = String::from_utf8(out.stderr).unwrap();
    assert!(
        stderr.contains("warning: --replicas 5 is more than --nodes 3"),
        "{stderr}"
    );
}

#[test]
fn examples_run_clean() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("examples");
    // Over both transports: the failover demo kills, restarts and checks
    // every acknowledged write.
    for transport in ["tcp", "ipc"] {
        for name in ["quickstart.kvsh", "failover.kvsh"] {
            let path = dir.join(name);
            let out = Command::new(env!("CARGO_BIN_EXE_kvsh"))
                .args(["--transport", transport, "-f"])
                .arg(&path)
                .output()
                .unwrap();
            let stderr = String::from_utf8_lossy(&out.stderr);
            assert!(
                out.status.success(),
                "{name} over {transport} failed: {stderr}"
            );
            assert!(
                stderr.is_empty(),
                "{name} over {transport} reported errors: {stderr}"
            );
        }
    }
}

/// `--log-level debug --log-file F`: a kill's consequences are in the file
/// (views adopted, promotions, resync streams), nothing of them on the
/// terminal; `set log-level` changes the level, and a bad level is refused.
#[test]
fn debug_logs_go_to_the_log_file() {
    let dir = std::env::temp_dir().join(format!("kvsh-log-test-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("kvsh.log");
    let out = Command::new(env!("CARGO_BIN_EXE_kvsh"))
        .args(["-p", "16", "--log-level", "debug", "--log-file"])
        .arg(&file)
        .args([
            "-c",
            "kill n2; wait healthy 30s; set log-level error; restart n2; wait healthy 30s; \
             set log-level loud",
        ])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(
        out.status.code(),
        Some(1),
        "only the bad level fails: {stderr}"
    );
    assert!(stderr.contains("no log level \"loud\""), "{stderr}");
    assert!(!stdout.contains("DEBUG") && !stderr.contains("DEBUG"));
    let log = std::fs::read_to_string(&file).unwrap();
    for what in ["adopted a view", "primary now", "resync stream started"] {
        assert!(log.contains(what), "{what:?} is logged:\n{log}");
    }
    // After `set log-level error`, the restart's views are not logged: n2
    // adopted views only before it was killed, older than the kill's view
    // that n1 adopted.
    let newest = |node: &str| {
        log.lines()
            .filter(|l| l.contains("adopted a view") && l.contains(&format!("node={node} ")))
            .filter_map(|l| {
                l.split("epoch=")
                    .nth(1)?
                    .split(' ')
                    .next()?
                    .parse::<u64>()
                    .ok()
            })
            .max()
    };
    let (n1, n2) = (newest("n1").unwrap(), newest("n2").unwrap());
    assert!(
        n2 < n1,
        "n2's views after its restart are not logged at level error (n2 {n2}, n1 {n1}):\n{log}"
    );
    let _ = std::fs::remove_dir_all(&dir);
}
