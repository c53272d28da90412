//! Durable nodes (`--data-dir`, docs/architecture.md "Durable nodes"):
//!
//! - a node killed in the middle of a write load and restarted reloads its
//!   data, every acknowledged write stays readable, and its catch-up copies
//!   only the ranges it missed, far fewer keys than a refill from empty;
//! - a whole cluster stopped and started again on its directory keeps
//!   every acknowledged write, and continues its epochs and terms;
//! - a directory of another node or layout, or a damaged one, is refused
//!   with a one-line error, never a panic.

use kvsh::cluster::leader::EventKind;
use kvsh::cluster::{Cluster, ClusterConfig, DataDir};
use kvsh::node::disk::Fsync;
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

const PATIENCE: Duration = Duration::from_secs(60);

/// A fresh directory under the system's temporary one, removed on drop.
struct TempDir(PathBuf);

impl TempDir {
    fn new(name: &str) -> Self {
        let dir = std::env::temp_dir().join(format!(
            "kvsh-durable-{name}-{}-{:x}",
            std::process::id(),
            rand::random::<u32>()
        ));
        TempDir(dir)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn config(dir: &TempDir, fsync: Fsync) -> ClusterConfig {
    ClusterConfig {
        nodes: 3,
        replicas: 2,
        partitions: 16,
        data: Some(DataDir {
            dir: dir.0.clone(),
            fsync,
        }),
        ..ClusterConfig::default()
    }
}

/// Keys copied into `node` by resyncs that finished after event `from`.
fn copied_into(cluster: &Cluster, node: u32, from: usize) -> u64 {
    cluster.events()[from..]
        .iter()
        .filter_map(|e| match e.kind {
            EventKind::CaughtUp { node: n, keys, .. } if n == node => Some(keys),
            _ => None,
        })
        .sum()
}

#[test]
fn a_restarted_node_reloads_and_catches_up_only_on_what_it_missed() {
    let dir = TempDir::new("restart");
    let mut cluster = Cluster::start(config(&dir, Fsync::Batch), None).unwrap();
    cluster.wait_healthy(PATIENCE, &|| false).unwrap();
    let mut client = cluster.client();
    let prefill: Vec<(String, String)> = (0..12_000)
        .map(|i| (format!("k-{i:06}"), format!("v{i}")))
        .collect();
    client.put_many(&prefill).unwrap();

    // A writer appends keys that sort after the prefill's, as a log or a
    // time series does, and records what was acknowledged.
    let stop = Arc::new(AtomicBool::new(false));
    let acked: Arc<Mutex<BTreeMap<String, String>>> = Arc::default();
    let writer = {
        let (stop, acked) = (stop.clone(), acked.clone());
        let mut client = cluster.client();
        std::thread::spawn(move || {
            let mut i = 0u64;
            while !stop.load(Ordering::Relaxed) {
                let (k, v) = (format!("w-{i:06}"), format!("x{i}"));
                if client.put(&k, &v).is_ok() {
                    acked.lock().unwrap().insert(k, v);
                }
                i += 1;
                std::thread::sleep(Duration::from_millis(5));
            }
        })
    };
    let wait_writes = |n: usize| {
        let start = acked.lock().unwrap().len();
        while acked.lock().unwrap().len() < start + n {
            std::thread::sleep(Duration::from_millis(5));
        }
    };
    wait_writes(20);
    let held: usize = cluster.key_counts(PATIENCE)[&2].values().sum();
    let held = held as u64;
    cluster.kill(2).unwrap();
    cluster.wait_healthy(PATIENCE, &|| false).unwrap();
    wait_writes(20);
    let from = cluster.events().len();
    cluster.restart(2).unwrap();
    let (reloaded, path) = cluster
        .reloaded(2)
        .expect("a durable node reports its reload");
    assert_eq!(path, dir.0.join("n2"));
    assert!(
        reloaded.keys >= held.saturating_sub(50) && reloaded.keys > 1000,
        "n2 held {held} keys and reloaded {}",
        reloaded.keys
    );
    cluster.wait_healthy(PATIENCE, &|| false).unwrap();
    wait_writes(20);
    stop.store(true, Ordering::Relaxed);
    writer.join().unwrap();
    cluster.wait_healthy(PATIENCE, &|| false).unwrap();

    // What it missed: the appended keys' ranges, not its thousands of
    // prefilled ones.
    let copied = copied_into(&cluster, 2, from);
    assert!(
        copied < reloaded.keys / 3,
        "catch-up copied {copied} keys into n2, which reloaded {}",
        reloaded.keys
    );
    let acked = acked.lock().unwrap().clone();
    assert!(acked.len() >= 60);
    let mut client = cluster.client();
    for (k, v) in prefill.iter().map(|(k, v)| (k, v)).chain(acked.iter()) {
        assert_eq!(client.get(k).unwrap().as_deref(), Some(v.as_str()), "{k}");
    }
    assert!(cluster.divergent().unwrap().is_empty(), "replicas diverge");
}

#[test]
fn a_whole_cluster_started_again_on_its_directory_keeps_every_acknowledged_write() {
    let dir = TempDir::new("whole");
    let mut pairs = BTreeMap::new();
    let epoch = {
        let cluster = Cluster::start(config(&dir, Fsync::Batch), None).unwrap();
        cluster.wait_healthy(PATIENCE, &|| false).unwrap();
        let mut client = cluster.client();
        for i in 0..2000 {
            let (k, v) = (format!("key{i}"), format!("value{i}"));
            client.put(&k, &v).unwrap();
            pairs.insert(k, v);
        }
        for i in (0..2000).step_by(7) {
            let k = format!("key{i}");
            assert!(client.delete(&k).unwrap());
            pairs.remove(&k);
        }
        client.lock("l", "me", Duration::from_secs(3600)).unwrap();
        cluster.status().view.epoch
        // Dropped here: every thread stops, as when the shell quits.
    };
    let cluster = Cluster::start(config(&dir, Fsync::Batch), None).unwrap();
    assert_eq!(cluster.restored_from(), Some(epoch));
    assert!(cluster.status().view.epoch > epoch, "epochs go on");
    cluster.wait_healthy(PATIENCE, &|| false).unwrap();
    let mut client = cluster.client();
    let all: BTreeMap<String, String> = client
        .get_all(None, None)
        .unwrap()
        .into_iter()
        .map(|e| (e.key, e.value))
        .collect();
    assert_eq!(all, pairs);
    // The lock survived, and is still held by its owner.
    let other = client.lock("l", "someone", Duration::from_secs(1)).unwrap();
    assert!(!other.locked);
    assert_eq!(other.owner, "me");
}

/// At R=1 a partition's only copy dies with its node. Without a disk the
/// partition starts again empty (`DataLost`); a durable node brings it back
/// from disk, and the leader says so (`Resumed`), not that data was lost.
#[test]
fn a_durable_node_at_r1_resumes_its_partitions_instead_of_losing_them() {
    let dir = TempDir::new("r1");
    let mut cluster = Cluster::start(
        ClusterConfig {
            nodes: 2,
            replicas: 1,
            ..config(&dir, Fsync::Batch)
        },
        None,
    )
    .unwrap();
    cluster.wait_healthy(PATIENCE, &|| false).unwrap();
    let mut client = cluster.client();
    let pairs: Vec<(String, String)> = (0..300)
        .map(|i| (format!("r1-{i}"), format!("v{i}")))
        .collect();
    client.put_many(&pairs).unwrap();
    let view = cluster.status().view.clone();
    let led = view
        .partitions
        .iter()
        .filter(|p| p.primary() == Some(2))
        .count();
    assert!(led > 0, "n2 leads some partitions");
    cluster.kill(2).unwrap();
    let from = cluster.events().len();
    cluster.restart(2).unwrap();
    cluster.wait_healthy(PATIENCE, &|| false).unwrap();
    let events = cluster.events()[from..].to_vec();
    let resumed = events
        .iter()
        .filter(|e| matches!(e.kind, EventKind::Resumed { node: 2, .. }))
        .count();
    let lost = events
        .iter()
        .filter(|e| matches!(e.kind, EventKind::DataLost { .. }))
        .count();
    assert_eq!((resumed, lost), (led, 0), "{events:?}");
    let text = events
        .iter()
        .find(|e| matches!(e.kind, EventKind::Resumed { .. }))
        .unwrap()
        .kind
        .to_string();
    assert!(
        text.contains("from disk") && !text.contains("lost"),
        "{text}"
    );
    for (k, v) in &pairs {
        assert_eq!(client.get(k).unwrap().as_deref(), Some(v.as_str()), "{k}");
    }
}

#[test]
fn a_directory_of_another_layout_or_damaged_is_refused_in_one_line() {
    let dir = TempDir::new("refuse");
    drop(Cluster::start(config(&dir, Fsync::Never), None).unwrap());
    // Another layout.
    let other = ClusterConfig {
        partitions: 32,
        ..config(&dir, Fsync::Never)
    };
    let e = Cluster::start(other, None).unwrap_err().to_string();
    assert!(e.contains("16 partitions") && !e.contains('\n'), "{e}");
    // Another node's directory in n1's place.
    std::fs::remove_dir_all(dir.0.join("n1")).unwrap();
    copy_dir(&dir.0.join("n2"), &dir.0.join("n1"));
    let e = Cluster::start(config(&dir, Fsync::Never), None)
        .unwrap_err()
        .to_string();
    assert!(e.contains("the data of n2, not of n1"), "{e}");
    // A damaged store: every file of n1's store overwritten with garbage.
    std::fs::remove_dir_all(dir.0.join("n1")).unwrap();
    copy_dir(&dir.0.join("n3"), &dir.0.join("n1"));
    let identity = dir.0.join("n1/kvsh-node.json");
    let fixed = std::fs::read_to_string(&identity)
        .unwrap()
        .replace("\"n3\"", "\"n1\"");
    std::fs::write(&identity, fixed).unwrap();
    garble(&dir.0.join("n1/store"));
    let e = Cluster::start(config(&dir, Fsync::Never), None)
        .unwrap_err()
        .to_string();
    assert!(e.contains("n1") && !e.contains('\n'), "{e}");
    // A damaged view.
    std::fs::write(dir.0.join("view.bin"), b"not a view").unwrap();
    let e = Cluster::start(config(&dir, Fsync::Never), None)
        .unwrap_err()
        .to_string();
    assert!(e.contains("view.bin") && e.contains("corrupt"), "{e}");
}

fn copy_dir(from: &std::path::Path, to: &std::path::Path) {
    std::fs::create_dir_all(to).unwrap();
    for e in std::fs::read_dir(from).unwrap() {
        let e = e.unwrap();
        let target = to.join(e.file_name());
        if e.file_type().unwrap().is_dir() {
            copy_dir(&e.path(), &target);
        } else {
            std::fs::copy(e.path(), target).unwrap();
        }
    }
}

fn garble(dir: &std::path::Path) {
    for e in std::fs::read_dir(dir).unwrap() {
        let e = e.unwrap();
        if e.file_type().unwrap().is_dir() {
            garble(&e.path());
        } else {
            let len = e.metadata().unwrap().len().max(64) as usize;
            std::fs::write(e.path(), vec![0xA5; len]).unwrap();
        }
    }
}

/// The `kvsh` binary in script mode with JSON output, on a data directory.
struct Shell {
    child: std::process::Child,
    stdin: Option<std::process::ChildStdin>,
    stdout: std::io::BufReader<std::process::ChildStdout>,
}

impl Shell {
    fn start(dir: &TempDir, fsync: &str) -> Shell {
        use std::process::{Command, Stdio};
        let data = dir.0.to_str().unwrap();
        let mut child = Command::new(env!("CARGO_BIN_EXE_kvsh"))
            .args([
                "--json",
                "-n",
                "3",
                "-r",
                "2",
                "-p",
                "16",
                "--data-dir",
                data,
            ])
            .args(["--fsync", fsync])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("kvsh starts");
        let stdin = child.stdin.take();
        let stdout = std::io::BufReader::new(child.stdout.take().unwrap());
        Shell {
            child,
            stdin,
            stdout,
        }
    }

    /// The next line of output, as JSON; `None` once the output ends.
    fn next(&mut self) -> Option<serde_json::Value> {
        use std::io::BufRead;
        let mut line = String::new();
        match self.stdout.read_line(&mut line) {
            Ok(0) | Err(_) => None,
            Ok(_) => Some(serde_json::from_str(&line).unwrap_or_else(|e| {
                panic!("not JSON: {line:?}: {e}");
            })),
        }
    }

    fn run(&mut self, line: &str) -> serde_json::Value {
        use std::io::Write;
        let stdin = self.stdin.as_mut().unwrap();
        writeln!(stdin, "{line}").unwrap();
        stdin.flush().unwrap();
        self.next().expect("an answer")
    }
}

/// `kill -9` of the whole process (all three nodes at once) while puts
/// stream in, at a random point, several times over the same directory:
/// each restart must come back with every write acknowledged before any
/// kill. A kill lands in the middle of a commit (a node between its store
/// write and its sync, or with a journal entry half written) most of the
/// time, since the shell does nothing else. With `always` and `batch`
/// nothing acknowledged may be lost: an `ok` leaves only after every
/// replica's commit and sync.
#[test]
fn kill_9_in_the_middle_of_commits_loses_nothing_acknowledged() {
    use rand::{Rng, SeedableRng};
    let seed: u64 = rand::random();
    println!("seed {seed}");
    let mut rng = rand::rngs::SmallRng::seed_from_u64(seed);
    for fsync in ["always", "batch"] {
        let dir = TempDir::new(&format!("kill9-{fsync}"));
        let mut acked: BTreeMap<String, String> = BTreeMap::new();
        let mut kills = 0;
        for round in 0..5 {
            let mut shell = Shell::start(&dir, fsync);
            let healthy = shell.run("wait healthy 60s");
            assert_eq!(healthy["healthy"], true, "{fsync} round {round}: {healthy}");
            for (k, v) in &acked {
                let got = shell.run(&format!("get {k}"));
                assert_eq!(
                    got["value"].as_str(),
                    Some(v.as_str()),
                    "{fsync}, after {kills} kills (seed {seed}): acknowledged {k}={v} is gone: {got}"
                );
            }
            if round == 4 {
                drop(shell.stdin.take()); // end of script: the shell quits
                assert!(shell.child.wait().unwrap().success());
                break;
            }
            // A writer streams puts ahead of the answers; the kill comes
            // after a random number of acknowledgements, with more puts
            // queued and one being committed.
            let mut stdin = shell.stdin.take().unwrap();
            let writer = std::thread::spawn(move || {
                use std::io::Write;
                for i in 0.. {
                    if writeln!(stdin, "put r{round}-{i} v{round}-{i}").is_err() {
                        break;
                    }
                }
            });
            let target = rng.gen_range(1..400);
            let mut n = 0;
            let mut answered = 0;
            while n < target {
                let reply = shell.next().expect("the shell answers until it is killed");
                if reply["ok"] == true {
                    let key = reply["key"].as_str().unwrap().to_string();
                    let i = key.rsplit('-').next().unwrap().to_string();
                    acked.insert(key, format!("v{round}-{i}"));
                    n += 1;
                }
                answered += 1;
            }
            shell.child.kill().unwrap(); // SIGKILL
            shell.child.wait().unwrap();
            kills += 1;
            writer.join().unwrap();
            println!(
                "{fsync} round {round}: killed after {n} acknowledged puts ({answered} answered)"
            );
        }
        println!(
            "{fsync}: {} acknowledged puts over {kills} kills, none lost",
            acked.len()
        );
    }
}
