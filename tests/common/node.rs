//! What the tests of node processes (`processes/`, `netns.rs`) share to
//! start one: a `kvsh node` child whose first line of output, which it
//! prints once it serves, says where it serves clients.

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};

/// Starts `cmd`, a `kvsh node` command line (directly, or under `ip netns
/// exec`, which execs it), with stdout piped and stderr inherited, and
/// waits for its first line, which must name its client endpoint. A
/// `durable` node's second line must say what it reloaded. A thread
/// drains the rest, so the node never blocks on a full pipe.
///
/// Returns the process, its client endpoint (`tcp://HOST:PORT`) and, for
/// a durable node, its reloaded line as printed.
pub fn spawn_node(mut cmd: Command, durable: bool) -> (Child, String, Option<String>) {
    let name = cmd
        .get_args()
        .skip_while(|a| *a != "--id")
        .nth(1)
        .map_or("the node".into(), |a| a.to_string_lossy().into_owned());
    let mut child = cmd
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap();
    let mut out = BufReader::new(child.stdout.take().unwrap());
    let mut line = String::new();
    out.read_line(&mut line).unwrap();
    let Some((_, clients)) = line.trim_end().split_once("clients at ") else {
        panic!("{name} said {line:?}");
    };
    let clients = clients.to_string();
    assert!(clients.starts_with("tcp://"), "{name} said {line:?}");
    let reloaded = durable.then(|| {
        let mut line = String::new();
        out.read_line(&mut line).unwrap();
        assert!(line.contains(": reloaded "), "{name} said {line:?}");
        line
    });
    std::thread::spawn(move || for _ in out.lines() {});
    (child, clients, reloaded)
}
