//! A durable node's disk (`--data-dir`): its pairs in an embedded,
//! crash-safe store, fjall (an LSM tree with a write-ahead journal; chosen
//! over redb on kvsh's own write pattern, docs/architecture.md "Durable
//! nodes"), and the view a whole cluster restarts from.
//!
//! The node thread owns its [`Disk`]. The node's [`Store`] stays the
//! in-memory copy every read is served from; with a disk, the store notes
//! the keys each change touches ([`Store::journal`]), and before the thread
//! sends anything at the end of a loop pass it writes those keys' current
//! values here ([`Disk::commit`]), with the fsync policy the operator chose
//! ([`Fsync`]). So no acknowledgement (to a client, or a secondary's to its
//! primary) leaves before what it acknowledges is written.
//!
//! A node's directory holds `kvsh-node.json` (which node of which cluster
//! layout it belongs to; a directory of another node or layout is refused)
//! and `store/` (fjall). A key is stored as its partition (4 bytes, big
//! endian) followed by the key's bytes; the value as its bytes.
//!
//! A cluster's directory (the shell's `--data-dir`) holds one such
//! directory per node (`n1`, `n2`, ...) and `view.bin`, the last view the
//! view leader published, written (and synced, unless `--fsync never`)
//! before any node sees it ([`save_view`]). A cluster started again on the
//! directory starts from that view ([`load_view`]).

use crate::error::{Error, Result};
use crate::node::store::Store;
use crate::view::{node_name, NodeId, PartitionId, View};
use serde::{Deserialize, Serialize};
use std::fmt;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// When a durable node syncs its writes to the device. What each promises
/// with R replicas is in docs/architecture.md, "What each --fsync promises".
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Fsync {
    /// One commit and fsync per write, before its acknowledgement.
    Always,
    /// One commit and fsync per loop pass (every request drained from the
    /// sockets at once), before any acknowledgement of the pass is sent.
    #[default]
    Batch,
    /// Written to the operating system before acknowledging, never synced
    /// by kvsh: survives the process, not the machine.
    Never,
}

impl std::str::FromStr for Fsync {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        match s {
            "always" => Ok(Fsync::Always),
            "batch" => Ok(Fsync::Batch),
            "never" => Ok(Fsync::Never),
            _ => Err(Error::BadInput(format!(
                "--fsync must be always, batch or never, got {s:?}"
            ))),
        }
    }
}

impl fmt::Display for Fsync {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Fsync::Always => "always",
            Fsync::Batch => "batch",
            Fsync::Never => "never",
        })
    }
}

/// Where and how a node keeps its data.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DiskSpec {
    /// The node's own directory.
    pub dir: PathBuf,
    /// The fsync policy.
    pub fsync: Fsync,
    /// Replicas per partition: part of the layout a directory belongs to.
    pub replicas: usize,
}

/// What a node found on disk when it started.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Reloaded {
    /// Pairs read back.
    pub keys: u64,
    /// How long reading them took.
    pub elapsed: Duration,
}

/// The identity file: which node of which layout a directory belongs to.
#[derive(Debug, PartialEq, Eq, Serialize, Deserialize)]
struct Identity {
    kvsh_data: u32,
    node: String,
    partitions: u32,
    replicas: usize,
}

const IDENTITY: &str = "kvsh-node.json";
const FORMAT: u32 = 1;

/// A node's open store on disk.
pub struct Disk {
    db: fjall::Database,
    data: fjall::Keyspace,
    fsync: Fsync,
}

impl fmt::Debug for Disk {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Disk").field("fsync", &self.fsync).finish()
    }
}

fn io(dir: &Path, what: impl fmt::Display) -> Error {
    Error::Io(format!("{}: {what}", dir.display()))
}

impl Disk {
    /// Opens (or creates) node `node`'s directory, checks it belongs to
    /// this node and layout, reads every pair into `store` and turns the
    /// store's journal on. Never panics: a directory that cannot be read
    /// is a one-line error.
    pub fn open(
        spec: &DiskSpec,
        node: NodeId,
        partitions: u32,
        store: &mut Store,
    ) -> Result<(Disk, Reloaded)> {
        let started = Instant::now();
        let dir = &spec.dir;
        check_identity(dir, node, partitions, spec.replicas)?;
        // fjall reports a damaged file as an error, but a store that
        // damaged in a way it does not expect must not take the process
        // down with it either.
        let opened = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            open_and_load(dir, partitions, store)
        }));
        let (db, data) = match opened {
            Ok(r) => r?,
            Err(_) => return Err(io(dir, "the store is corrupt (its reader gave up)")),
        };
        store.journal();
        let reloaded = Reloaded {
            keys: store.keys(),
            elapsed: started.elapsed(),
        };
        Ok((
            Disk {
                db,
                data,
                fsync: spec.fsync,
            },
            reloaded,
        ))
    }

    /// Writes the current value of every key the store changed since the
    /// last commit (or removes it), then syncs as the policy says. Must
    /// return before anything that acknowledges those changes is sent.
    pub fn commit(&mut self, store: &mut Store) -> Result<()> {
        let dirty = store.take_dirty();
        if dirty.is_empty() {
            return Ok(());
        }
        let fail = |e: fjall::Error| Error::Io(format!("cannot write the data directory: {e}"));
        match self.fsync {
            Fsync::Always => {
                for (p, key) in dirty {
                    let mut batch = self.db.batch();
                    self.stage(&mut batch, store, p, &key);
                    batch.commit().map_err(fail)?;
                    self.db
                        .persist(fjall::PersistMode::SyncData)
                        .map_err(fail)?;
                }
            }
            Fsync::Batch | Fsync::Never => {
                let mut batch = self.db.batch();
                for (p, key) in dirty {
                    self.stage(&mut batch, store, p, &key);
                }
                batch.commit().map_err(fail)?;
                let mode = match self.fsync {
                    Fsync::Batch => fjall::PersistMode::SyncData,
                    _ => fjall::PersistMode::Buffer,
                };
                self.db.persist(mode).map_err(fail)?;
            }
        }
        Ok(())
    }

    fn stage(&self, batch: &mut fjall::OwnedWriteBatch, store: &Store, p: PartitionId, key: &str) {
        let k = encode_key(p, key);
        match store.get(p, key) {
            Some(v) => batch.insert(&self.data, k, v.as_bytes()),
            None => batch.remove(&self.data, k),
        }
    }
}

fn encode_key(p: PartitionId, key: &str) -> Vec<u8> {
    let mut k = Vec::with_capacity(4 + key.len());
    k.extend_from_slice(&p.to_be_bytes());
    k.extend_from_slice(key.as_bytes());
    k
}

fn open_and_load(
    dir: &Path,
    partitions: u32,
    store: &mut Store,
) -> Result<(fjall::Database, fjall::Keyspace)> {
    let path = dir.join("store");
    let db = fjall::Database::builder(&path)
        .worker_threads(1)
        .open()
        .map_err(|e| {
            io(
                &path,
                format_args!("cannot open the store (damaged, or not a kvsh store): {e}"),
            )
        })?;
    let data = db
        .keyspace("data", fjall::KeyspaceCreateOptions::default)
        .map_err(|e| {
            io(
                &path,
                format_args!("cannot open the store (damaged, or not a kvsh store): {e}"),
            )
        })?;
    for guard in data.iter() {
        let (k, v) = guard
            .into_inner()
            .map_err(|e| io(&path, format_args!("the store is corrupt: {e}")))?;
        let bad = || io(&path, "the store is corrupt: a record is not a kvsh pair");
        if k.len() < 4 {
            return Err(bad());
        }
        let p = PartitionId::from_be_bytes([k[0], k[1], k[2], k[3]]);
        if p >= partitions {
            return Err(bad());
        }
        let key = std::str::from_utf8(&k[4..]).map_err(|_| bad())?;
        let value = std::str::from_utf8(&v).map_err(|_| bad())?;
        store.put(p, key.to_string(), value.to_string());
    }
    Ok((db, data))
}

/// Creates the identity file of a new directory, or checks an existing
/// one's: a directory of another node or layout is refused, and so is a
/// non-empty directory that is not a kvsh node's.
fn check_identity(dir: &Path, node: NodeId, partitions: u32, replicas: usize) -> Result<()> {
    let want = Identity {
        kvsh_data: FORMAT,
        node: node_name(node),
        partitions,
        replicas,
    };
    let file = dir.join(IDENTITY);
    match std::fs::read(&file) {
        Ok(bytes) => {
            let have: Identity = serde_json::from_slice(&bytes)
                .map_err(|_| io(&file, "corrupt: not a kvsh node's identity"))?;
            if have.kvsh_data != FORMAT {
                return Err(io(
                    dir,
                    format_args!("data format {} is not {FORMAT}", have.kvsh_data),
                ));
            }
            if have.node != want.node {
                return Err(io(
                    dir,
                    format_args!("this is the data of {}, not of {}", have.node, want.node),
                ));
            }
            if (have.partitions, have.replicas) != (partitions, replicas) {
                return Err(io(
                    dir,
                    format_args!(
                        "this data belongs to a cluster of {} partitions and {} replicas; \
                         this one has {partitions} and {replicas}",
                        have.partitions, have.replicas
                    ),
                ));
            }
            Ok(())
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            std::fs::create_dir_all(dir).map_err(|e| io(dir, e))?;
            let mut entries = std::fs::read_dir(dir).map_err(|e| io(dir, e))?;
            if entries.next().is_some() {
                return Err(io(dir, "not empty and not a kvsh node's data directory"));
            }
            let json = serde_json::to_vec_pretty(&want).expect("an identity encodes");
            write_synced(&file, &json, true).map_err(|e| io(&file, e))
        }
        Err(e) => Err(io(&file, e)),
    }
}

/// Writes `bytes` to `path` atomically: a temporary file, synced if asked,
/// renamed over it, and the directory synced.
fn write_synced(path: &Path, bytes: &[u8], sync: bool) -> std::io::Result<()> {
    use std::io::Write;
    let tmp = path.with_extension("tmp");
    let mut f = std::fs::File::create(&tmp)?;
    f.write_all(bytes)?;
    if sync {
        f.sync_data()?;
    }
    std::fs::rename(&tmp, path)?;
    if sync {
        if let Some(parent) = path.parent() {
            std::fs::File::open(parent)?.sync_all()?;
        }
    }
    Ok(())
}

/// The saved view of a cluster's directory.
#[derive(Debug, Serialize, Deserialize)]
struct SavedView {
    kvsh_view: u32,
    partitions: u32,
    replicas: usize,
    view: View,
}

const VIEW_FILE: &str = "view.bin";

/// Saves the view the leader is about to publish into the cluster's
/// directory `dir`; synced unless `fsync` is `never`.
pub fn save_view(dir: &Path, view: &View, replicas: usize, fsync: Fsync) -> Result<()> {
    let saved = SavedView {
        kvsh_view: FORMAT,
        partitions: view.partitions.len() as u32,
        replicas,
        view: view.clone(),
    };
    let bytes = postcard::to_stdvec(&saved).map_err(|e| io(dir, e))?;
    write_synced(&dir.join(VIEW_FILE), &bytes, fsync != Fsync::Never).map_err(|e| io(dir, e))
}

/// The view saved in the cluster's directory `dir`, if there is one,
/// checked against the layout asked for.
pub fn load_view(dir: &Path, partitions: u32, replicas: usize) -> Result<Option<View>> {
    let file = dir.join(VIEW_FILE);
    let bytes = match std::fs::read(&file) {
        Ok(b) => b,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(io(&file, e)),
    };
    let saved: SavedView = postcard::from_bytes(&bytes)
        .map_err(|_| io(&file, "corrupt: not a kvsh cluster's view"))?;
    if saved.kvsh_view != FORMAT {
        return Err(io(
            &file,
            format_args!("view format {} is not {FORMAT}", saved.kvsh_view),
        ));
    }
    if (saved.partitions, saved.replicas) != (partitions, replicas) {
        return Err(io(
            dir,
            format_args!(
                "this data belongs to a cluster of {} partitions and {} replicas; \
                 start it with --partitions {} --replicas {}",
                saved.partitions, saved.replicas, saved.partitions, saved.replicas
            ),
        ));
    }
    saved
        .view
        .validate(partitions)
        .map_err(|e| io(&file, format_args!("corrupt: {e}")))?;
    Ok(Some(saved.view))
}

/// A node's directory inside a cluster's.
pub fn node_dir(cluster_dir: &Path, node: NodeId) -> PathBuf {
    cluster_dir.join(node_name(node))
}

const CLOCK_FILE: &str = "clock";

/// Records the cluster clock's reading `now` in the cluster's directory.
pub fn save_clock(dir: &Path, now: crate::view::Time) -> Result<()> {
    write_synced(&dir.join(CLOCK_FILE), &now.to_le_bytes(), false).map_err(|e| io(dir, e))
}

/// The last clock reading saved in the cluster's directory, plus a second
/// (it is saved every second), or 0.
pub fn load_clock(dir: &Path) -> crate::view::Time {
    std::fs::read(dir.join(CLOCK_FILE))
        .ok()
        .and_then(|b| <[u8; 8]>::try_from(b.as_slice()).ok())
        .map_or(0, |b| crate::view::Time::from_le_bytes(b) + 1000)
}
