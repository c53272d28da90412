//! redb against fjall on kvsh's own write pattern, to choose the durable
//! store (issue #14; the figures and the choice are in
//! docs/architecture.md, "Durable nodes").
//!
//! kvsh's node thread drains a batch of requests from its sockets, applies
//! them, and must have them on disk before it sends a single
//! acknowledgement. So the pattern is: small values (100 B), one key per
//! write, and one commit either per write (`--fsync always`), per drained
//! batch (`batch`), or with no fsync at all (`never`). A restarted node
//! then reads its whole store back into memory.
//!
//! ```text
//! cargo run --release --features store-compare --example store_compare [DIR]
//! ```

#[cfg(feature = "store-compare")]
fn main() {
    use std::time::Instant;
    let base = std::env::args()
        .nth(1)
        .map(std::path::PathBuf::from)
        .unwrap_or_else(std::env::temp_dir)
        .join(format!("kvsh-store-compare-{}", std::process::id()));
    let value = vec![b'v'; 100];
    let key = |i: u64| {
        let mut k = ((i % 64) as u32).to_be_bytes().to_vec();
        k.extend_from_slice(format!("key-{i:08}").as_bytes());
        k
    };
    // (mode, writes, writes per commit)
    let runs: [(&str, u64, u64); 3] = [
        ("always", 2_000, 1),
        ("batch (64 a commit)", 64_000, 64),
        ("never", 100_000, 64),
    ];
    println!("{:<8} {:<22} {:>12}", "store", "fsync", "puts/s");
    for store in ["redb", "fjall"] {
        for (mode, n, per) in runs {
            let dir = base.join(format!("{store}-{}", mode.split(' ').next().unwrap()));
            std::fs::create_dir_all(&dir).unwrap();
            let sync = mode != "never";
            let t = Instant::now();
            match store {
                "redb" => redb_puts(&dir, n, per, sync, &key, &value),
                _ => fjall_puts(&dir, n, per, sync, &key, &value),
            }
            let rate = n as f64 / t.elapsed().as_secs_f64();
            println!("{store:<8} {mode:<22} {rate:>12.0}");
            std::fs::remove_dir_all(&dir).unwrap();
        }
    }
    println!();
    println!("{:<8} {:>10} {:>14}", "store", "keys", "reload (s)");
    for store in ["redb", "fjall"] {
        let dir = base.join(format!("{store}-reload"));
        std::fs::create_dir_all(&dir).unwrap();
        match store {
            "redb" => redb_puts(&dir, 100_000, 1000, true, &key, &value),
            _ => fjall_puts(&dir, 100_000, 1000, true, &key, &value),
        }
        let t = Instant::now();
        let keys = match store {
            "redb" => redb_reload(&dir),
            _ => fjall_reload(&dir),
        };
        println!("{store:<8} {keys:>10} {:>14.3}", t.elapsed().as_secs_f64());
        std::fs::remove_dir_all(&dir).unwrap();
    }
    let _ = std::fs::remove_dir_all(&base);
}

#[cfg(feature = "store-compare")]
const TABLE: redb::TableDefinition<&[u8], &[u8]> = redb::TableDefinition::new("data");

#[cfg(feature = "store-compare")]
fn redb_puts(
    dir: &std::path::Path,
    n: u64,
    per: u64,
    sync: bool,
    key: &dyn Fn(u64) -> Vec<u8>,
    value: &[u8],
) {
    let db = redb::Database::create(dir.join("data.redb")).unwrap();
    let mut i = 0;
    while i < n {
        let mut tx = db.begin_write().unwrap();
        if !sync {
            tx.set_durability(redb::Durability::None).unwrap();
        }
        {
            let mut t = tx.open_table(TABLE).unwrap();
            for j in i..(i + per).min(n) {
                t.insert(key(j).as_slice(), value).unwrap();
            }
        }
        tx.commit().unwrap();
        i += per;
    }
}

#[cfg(feature = "store-compare")]
fn redb_reload(dir: &std::path::Path) -> usize {
    use redb::{ReadableDatabase, ReadableTable};
    let db = redb::Database::create(dir.join("data.redb")).unwrap();
    let tx = db.begin_read().unwrap();
    let t = tx.open_table(TABLE).unwrap();
    let mut map = std::collections::BTreeMap::new();
    for e in t.iter().unwrap() {
        let (k, v) = e.unwrap();
        map.insert(k.value().to_vec(), v.value().to_vec());
    }
    map.len()
}

#[cfg(feature = "store-compare")]
fn fjall_puts(
    dir: &std::path::Path,
    n: u64,
    per: u64,
    sync: bool,
    key: &dyn Fn(u64) -> Vec<u8>,
    value: &[u8],
) {
    let db = fjall::Database::builder(dir).open().unwrap();
    let ks = db
        .keyspace("data", fjall::KeyspaceCreateOptions::default)
        .unwrap();
    let mut i = 0;
    while i < n {
        let mut b = db.batch();
        for j in i..(i + per).min(n) {
            b.insert(&ks, key(j), value.to_vec());
        }
        b.commit().unwrap();
        let mode = if sync {
            fjall::PersistMode::SyncData
        } else {
            fjall::PersistMode::Buffer
        };
        db.persist(mode).unwrap();
        i += per;
    }
}

#[cfg(feature = "store-compare")]
fn fjall_reload(dir: &std::path::Path) -> usize {
    let db = fjall::Database::builder(dir).open().unwrap();
    let ks = db
        .keyspace("data", fjall::KeyspaceCreateOptions::default)
        .unwrap();
    let mut map = std::collections::BTreeMap::new();
    for g in ks.iter() {
        let (k, v) = g.into_inner().unwrap();
        map.insert(k.to_vec(), v.to_vec());
    }
    map.len()
}

#[cfg(not(feature = "store-compare"))]
fn main() {
    eprintln!("build with --features store-compare");
}
