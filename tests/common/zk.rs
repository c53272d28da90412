//! What the tests of node processes (`processes/`, `netns.rs`) share: a
//! ZooKeeper server of their own, on a free port with a temporary data
//! directory, stopped and removed when dropped.

// Each test binary compiles this module and uses only part of it.
#![allow(dead_code)]

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// The ZooKeeper jar the server runs from (Debian's `zookeeperd`).
pub const JARS: &str = "/usr/share/java/zookeeper.jar";

/// True if ZooKeeper is installed; if not, says the test is skipped.
pub fn installed() -> bool {
    if std::path::Path::new(JARS).exists() {
        return true;
    }
    eprintln!("SKIPPED: no ZooKeeper at {JARS} (apt-get install zookeeperd)");
    false
}

/// A ZooKeeper server of our own.
pub struct Zk {
    child: Child,
    dir: PathBuf,
    /// `host:port` it serves clients at.
    pub addr: String,
}

impl Zk {
    /// A server on loopback, or `None` (the test skips) where ZooKeeper is
    /// not installed.
    pub fn start() -> Option<Zk> {
        installed().then(|| Zk::start_on("127.0.0.1"))
    }

    /// A server on `host`, once it accepts connections.
    pub fn start_on(host: &str) -> Zk {
        let port = std::net::TcpListener::bind((host, 0))
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let dir = std::env::temp_dir().join(format!("kvsh-zk-{}-{port}", std::process::id()));
        std::fs::create_dir_all(dir.join("data")).unwrap();
        let cfg = dir.join("zoo.cfg");
        std::fs::write(
            &cfg,
            format!(
                "tickTime=250\ndataDir={}\nclientPort={port}\nclientPortAddress={host}\n\
                 minSessionTimeout=500\nmaxSessionTimeout=10000\nadmin.enableServer=false\n",
                dir.join("data").display()
            ),
        )
        .unwrap();
        let child = Command::new("java")
            .args([
                "-Xmx256m",
                "-cp",
                "/usr/share/java/zookeeper.jar:/usr/share/java/*",
                "org.apache.zookeeper.server.ZooKeeperServerMain",
            ])
            .arg(&cfg)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("java runs");
        let zk = Zk {
            child,
            dir,
            addr: format!("{host}:{port}"),
        };
        let deadline = Instant::now() + Duration::from_secs(30);
        while std::net::TcpStream::connect(&zk.addr).is_err() {
            assert!(Instant::now() < deadline, "ZooKeeper did not start in 30 s");
            std::thread::sleep(Duration::from_millis(50));
        }
        zk
    }

    /// The `--coord` URL of `root` on this server.
    pub fn url(&self, root: &str) -> String {
        format!("zk://{}{root}", self.addr)
    }
}

impl Drop for Zk {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}
