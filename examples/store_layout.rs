//! The measurement behind the store's layout (docs/performance.md, "Memory
//! per key"): memory and lookup time of four ways to hold a node's pairs,
//! 2,000,000 pairs of 100-byte values under keys like the bench's
//! (`bench:1:12345`), spread over 1,024 partitions by xxh3.
//!
//! - `string`: `BTreeMap<CompactString, String>`, the layout before;
//! - `boxed`: `BTreeMap<CompactString, Box<str>>`, the layout before the
//!   packed store;
//! - `entry`: a `BTreeSet` of one heap block per pair (key length, key,
//!   value), 16 bytes in the tree node, the key no longer inline;
//! - `packed`: kvsh's [`Partition`] now, one arena of records behind an
//!   index of key hashes (`src/node/store/partition.rs`).
//!
//! ```text
//! cargo run --release --example store_layout -- boxed          # random order
//! cargo run --release --example store_layout -- boxed ascending # the bench's order
//! ```
//!
//! Each layout runs in a process of its own, so that one's freed memory is
//! not the next one's. It prints the RSS growth per pair and the mean time
//! of a lookup of every key, in a random order, reading the value's last
//! byte (a get reads the value). With `TRIM=1`, `packed` also prints the
//! RSS after `malloc_trim(0)`, which gives back the heap's free holes:
//! the difference is fragmentation, not data.

use compact_str::CompactString;
use kvsh::node::store::Partition;
use ref_cast::RefCast;
use std::borrow::Borrow;
use std::cmp::Ordering;
use std::collections::{BTreeMap, BTreeSet};
use std::time::Instant;

const PAIRS: u64 = 2_000_000;
const PARTITIONS: u64 = 1024;

fn rss() -> u64 {
    let s = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    s.lines()
        .find(|l| l.starts_with("VmRSS:"))
        .and_then(|l| l.split_whitespace().nth(1)?.parse::<u64>().ok())
        .unwrap_or(0)
        * 1024
}

/// A pair in one block: the key's length (2 bytes), the key, the value.
#[derive(PartialEq, Eq)]
struct Entry(Box<[u8]>);

/// The bytes of an entry, or of a probe (length and key only), ordered by
/// the key alone.
#[derive(RefCast, PartialEq, Eq)]
#[repr(transparent)]
struct Keyed([u8]);

impl Keyed {
    fn key(&self) -> &[u8] {
        let n = u16::from_le_bytes([self.0[0], self.0[1]]) as usize;
        &self.0[2..2 + n]
    }
}

impl Ord for Keyed {
    fn cmp(&self, o: &Self) -> Ordering {
        self.key().cmp(o.key())
    }
}

impl PartialOrd for Keyed {
    fn partial_cmp(&self, o: &Self) -> Option<Ordering> {
        Some(self.cmp(o))
    }
}

impl Borrow<Keyed> for Entry {
    fn borrow(&self) -> &Keyed {
        Keyed::ref_cast(&self.0)
    }
}

impl Ord for Entry {
    fn cmp(&self, o: &Self) -> Ordering {
        let a: &Keyed = self.borrow();
        a.cmp(o.borrow())
    }
}

impl PartialOrd for Entry {
    fn partial_cmp(&self, o: &Self) -> Option<Ordering> {
        Some(self.cmp(o))
    }
}

fn framed(key: &str, value: &str) -> Vec<u8> {
    let mut b = Vec::with_capacity(2 + key.len() + value.len());
    b.extend_from_slice(&(key.len() as u16).to_le_bytes());
    b.extend_from_slice(key.as_bytes());
    b.extend_from_slice(value.as_bytes());
    b
}

fn partition(key: &str) -> usize {
    (xxhash_rust::xxh3::xxh3_64(key.as_bytes()) % PARTITIONS) as usize
}

/// A fixed shuffle (xorshift), so every run sees the same order.
fn shuffled(n: u64) -> Vec<u64> {
    let mut v: Vec<u64> = (0..n).collect();
    let mut s = 0x9e37_79b9_7f4a_7c15u64;
    for i in (1..v.len()).rev() {
        s ^= s << 13;
        s ^= s >> 7;
        s ^= s << 17;
        v.swap(i, (s % (i as u64 + 1)) as usize);
    }
    v
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let layout = args.first().map_or("boxed", String::as_str);
    let ascending = args.iter().any(|a| a == "ascending");
    let inserts = if ascending {
        (0..PAIRS).collect()
    } else {
        shuffled(PAIRS)
    };
    let lookups = shuffled(PAIRS);
    let value = "x".repeat(100);
    let base = rss();
    let key = |k: u64| format!("bench:1:{k}");
    let (grown, hits, took) = match layout {
        "string" | "boxed" => {
            let boxed = layout == "boxed";
            let mut a: Vec<BTreeMap<CompactString, String>> =
                (0..PARTITIONS).map(|_| BTreeMap::new()).collect();
            let mut b: Vec<BTreeMap<CompactString, Box<str>>> =
                (0..PARTITIONS).map(|_| BTreeMap::new()).collect();
            for k in &inserts {
                let key = key(*k);
                let p = partition(&key);
                if boxed {
                    b[p].insert(key.into(), value.clone().into_boxed_str());
                } else {
                    a[p].insert(key.into(), value.clone());
                }
            }
            let grown = rss() - base;
            let start = Instant::now();
            let mut hits = 0;
            for k in &lookups {
                let key = key(*k);
                let p = partition(&key);
                let found = if boxed {
                    b[p].get(key.as_str())
                        .is_some_and(|v| v.as_bytes()[99] == b'x')
                } else {
                    a[p].get(key.as_str())
                        .is_some_and(|v| v.as_bytes()[99] == b'x')
                };
                hits += usize::from(found);
            }
            (grown, hits, start.elapsed())
        }
        "entry" => {
            let mut m: Vec<BTreeSet<Entry>> = (0..PARTITIONS).map(|_| BTreeSet::new()).collect();
            for k in &inserts {
                let key = key(*k);
                let p = partition(&key);
                m[p].insert(Entry(framed(&key, &value).into_boxed_slice()));
            }
            let grown = rss() - base;
            let start = Instant::now();
            let mut hits = 0;
            for k in &lookups {
                let key = key(*k);
                let probe = framed(&key, "");
                hits += usize::from(m[partition(&key)].contains(Keyed::ref_cast(&probe)));
            }
            (grown, hits, start.elapsed())
        }
        "packed" => {
            let mut m: Vec<Partition> = (0..PARTITIONS).map(|_| Partition::default()).collect();
            for k in &inserts {
                let key = key(*k);
                m[partition(&key)].insert(&key, &value);
            }
            let grown = rss() - base;
            if std::env::var_os("TRIM").is_some() {
                #[allow(unsafe_code)]
                unsafe {
                    libc::malloc_trim(0)
                };
                eprintln!("after trim: {} per pair", (rss() - base) / PAIRS);
            }
            let start = Instant::now();
            let mut hits = 0;
            for k in &lookups {
                let key = key(*k);
                hits += usize::from(
                    m[partition(&key)]
                        .get(&key)
                        .is_some_and(|v| v.as_bytes()[99] == b'x'),
                );
            }
            (grown, hits, start.elapsed())
        }
        other => {
            eprintln!("Error: no layout {other:?}: string, boxed, entry or packed");
            std::process::exit(2);
        }
    };
    println!(
        "{layout} ({}): {} bytes per pair, lookup {:.2} µs ({hits} found)",
        if ascending {
            "ascending"
        } else {
            "random order"
        },
        grown / PAIRS,
        took.as_secs_f64() * 1e6 / PAIRS as f64
    );
}
