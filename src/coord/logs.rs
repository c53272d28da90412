//! Where the node processes a shell spawns (`--spawn`, `add`) write their
//! output: `$TMPDIR/kvsh-nodes/<shell pid>/nN.log`.
//!
//! The logs outlive the shell, since they are what tells why a node
//! exited; but each shell made one more directory, for ever. So every
//! shell's directory sits under one known directory, and a shell that
//! starts removes the directories of shells that have exited beyond the
//! newest [`KEEP`] (directories of shells still running are never
//! touched). Directories of the older layout, `$TMPDIR/kvsh-nodes-<pid>`,
//! count among them, so they go too.

use crate::error::Result;
use std::path::{Path, PathBuf};
use std::time::SystemTime;

/// How many exited shells' logs are kept.
pub const KEEP: usize = 5;

/// This shell's log directory (not yet created), after pruning the
/// directories of exited shells past the newest [`KEEP`].
pub fn shell_log_dir() -> Result<PathBuf> {
    let tmp = std::env::temp_dir();
    let root = tmp.join("kvsh-nodes");
    std::fs::create_dir_all(&root)?;
    prune(&[&root, &tmp], KEEP, &|pid| {
        Path::new(&format!("/proc/{pid}")).exists()
    });
    Ok(root.join(std::process::id().to_string()))
}

/// The shell pid a log directory is named after: `<pid>` under the root,
/// or `kvsh-nodes-<pid>` (the older layout) beside it.
fn shell_pid(name: &str) -> Option<u32> {
    name.strip_prefix("kvsh-nodes-")
        .unwrap_or(name)
        .parse()
        .ok()
}

/// Removes the log directories in `dirs` of shells for which `running` is
/// false, all but the newest `keep`.
fn prune(dirs: &[&Path], keep: usize, running: &dyn Fn(u32) -> bool) {
    let mut exited: Vec<(SystemTime, PathBuf)> = Vec::new();
    for dir in dirs {
        let Ok(entries) = std::fs::read_dir(dir) else {
            continue;
        };
        for e in entries.flatten() {
            let name = e.file_name().to_string_lossy().into_owned();
            let ours = *dir != dirs[0] && name.starts_with("kvsh-nodes-")
                || *dir == dirs[0] && !name.starts_with("kvsh-nodes-");
            let Some(pid) = shell_pid(&name).filter(|_| ours) else {
                continue;
            };
            if running(pid) || !e.file_type().is_ok_and(|t| t.is_dir()) {
                continue;
            }
            let at = e
                .metadata()
                .and_then(|m| m.modified())
                .unwrap_or(SystemTime::UNIX_EPOCH);
            exited.push((at, e.path()));
        }
    }
    exited.sort();
    let remove = exited.len().saturating_sub(keep);
    for (_, path) in exited.into_iter().take(remove) {
        let _ = std::fs::remove_dir_all(path);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn only_the_newest_exited_shells_logs_are_kept() {
        let tmp = std::env::temp_dir().join(format!("kvsh-logs-test-{}", std::process::id()));
        let root = tmp.join("kvsh-nodes");
        std::fs::create_dir_all(&root).unwrap();
        // Exited shells 101..=108, oldest first (one in the older
        // layout), a running one (7), and files that are not logs.
        let old = SystemTime::now() - Duration::from_secs(3600);
        let mut made = Vec::new();
        for pid in 101..=108u32 {
            let dir = if pid == 101 {
                tmp.join(format!("kvsh-nodes-{pid}"))
            } else {
                root.join(pid.to_string())
            };
            std::fs::create_dir_all(&dir).unwrap();
            std::fs::write(dir.join("n1.log"), "x").unwrap();
            let t = old + Duration::from_secs(pid as u64);
            std::fs::File::open(&dir).unwrap().set_modified(t).unwrap();
            made.push(dir);
        }
        std::fs::create_dir_all(root.join("7")).unwrap();
        std::fs::create_dir_all(tmp.join("unrelated")).unwrap();
        std::fs::create_dir_all(root.join("kvsh-nodes-99")).unwrap();
        prune(&[&root, &tmp], 5, &|pid| pid == 7);
        let left: Vec<bool> = made.iter().map(|d| d.exists()).collect();
        assert_eq!(left, [false, false, false, true, true, true, true, true]);
        assert!(root.join("7").exists(), "a running shell's logs stay");
        assert!(tmp.join("unrelated").exists());
        assert!(root.join("kvsh-nodes-99").exists(), "not a name of ours");
        std::fs::remove_dir_all(&tmp).unwrap();
    }
}
