//! Where a node's client port listens: loopback TCP (the default), or a
//! Unix-domain socket (ZeroMQ `ipc://`) in a directory private to the
//! cluster, which saves the TCP stack's work on every hop on one machine.
//!
//! The socket directory is made with mode 0700, so only the user who runs
//! kvsh can connect over `ipc://`: a tighter boundary than loopback TCP,
//! which any local user can reach. A node's socket is named by its id and
//! incarnation (`n3.7`), so a restarted node never answers on its past
//! life's socket. The directory and the sockets in it are removed when the
//! cluster ends.

use crate::error::{Error, Result};
use crate::view::{node_name, Incarnation, NodeId};
use std::path::{Path, PathBuf};

/// The transport of the nodes' client ports.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Transport {
    /// `tcp://ADDR:PORT`, the port chosen by the kernel.
    #[default]
    Tcp,
    /// `ipc://DIR/nN.I`, in a private directory.
    Ipc,
}

impl std::str::FromStr for Transport {
    type Err = Error;

    fn from_str(s: &str) -> Result<Transport> {
        match s {
            "tcp" => Ok(Transport::Tcp),
            "ipc" => Ok(Transport::Ipc),
            _ => Err(Error::BadInput(format!(
                "no transport {s:?}; use tcp or ipc"
            ))),
        }
    }
}

/// The longest path a Unix-domain socket can have (`sun_path`, less its
/// terminating NUL).
const MAX_SOCKET_PATH: usize = 107;

/// The client endpoint a node binds: `tcp://ADDR:*`, or its socket in
/// `ipc_dir`.
pub fn client_bind(bind: &str, ipc_dir: Option<&Path>, id: NodeId, inc: Incarnation) -> String {
    match ipc_dir {
        None => format!("tcp://{bind}:*"),
        Some(dir) => format!("ipc://{}/{}.{inc}", dir.display(), node_name(id)),
    }
}

/// A directory private to one cluster, for its nodes' sockets; removed,
/// with everything in it, when dropped.
#[derive(Debug)]
pub struct SocketDir {
    path: PathBuf,
}

impl SocketDir {
    /// Makes a fresh directory with mode 0700 under the system's temporary
    /// directory. Fails with a clear message if it cannot, or if the path
    /// leaves no room for a socket name.
    pub fn create() -> Result<SocketDir> {
        use std::os::unix::fs::DirBuilderExt;
        let base = std::env::temp_dir();
        for attempt in 0..100u32 {
            let name = format!(
                "kvsh-{}-{:08x}",
                std::process::id(),
                rand::random::<u32>().wrapping_add(attempt)
            );
            let path = base.join(name);
            // Room for "/n64.4294967295" after the directory.
            if path.as_os_str().len() + 16 > MAX_SOCKET_PATH {
                return Err(Error::BadInput(format!(
                    "--transport ipc: the temporary directory {} is too long for a \
                     Unix-domain socket path; set TMPDIR to a shorter one",
                    base.display()
                )));
            }
            match std::fs::DirBuilder::new().mode(0o700).create(&path) {
                Ok(()) => return Ok(SocketDir { path }),
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => continue,
                Err(e) => {
                    return Err(Error::Io(format!(
                        "--transport ipc: cannot make a socket directory in {}: {e}",
                        base.display()
                    )))
                }
            }
        }
        Err(Error::Io(
            "--transport ipc: no free socket directory name".into(),
        ))
    }

    /// The directory.
    pub fn path(&self) -> &Path {
        &self.path
    }
}

impl Drop for SocketDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.path);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn endpoints_name_the_node_and_its_incarnation() {
        assert_eq!(client_bind("127.0.0.1", None, 3, 7), "tcp://127.0.0.1:*");
        assert_eq!(
            client_bind("127.0.0.1", Some(Path::new("/tmp/d")), 3, 7),
            "ipc:///tmp/d/n3.7"
        );
    }

    #[test]
    fn the_socket_directory_is_private_and_removed() {
        use std::os::unix::fs::PermissionsExt;
        let dir = SocketDir::create().unwrap();
        let path = dir.path().to_path_buf();
        let mode = std::fs::metadata(&path).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o700, "only the owner may connect");
        std::fs::write(path.join("n1.1"), b"").unwrap();
        drop(dir);
        assert!(!path.exists(), "removed with what it holds");
    }

    #[test]
    fn transports_parse() {
        assert_eq!("tcp".parse::<Transport>().unwrap(), Transport::Tcp);
        assert_eq!("ipc".parse::<Transport>().unwrap(), Transport::Ipc);
        assert!("udp".parse::<Transport>().is_err());
    }
}
