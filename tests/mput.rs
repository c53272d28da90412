//! Atomic multi-key writes under failure: writers `MPUT` one value to every
//! key of a group (only `MPUT`s write those keys), readers read whole
//! groups as snapshots (`Client::get_snapshot`), and meanwhile the
//! coordinators and participants of those `MPUT`s are killed and
//! restarted. Both are recorded in a history, which must pass the
//! atomicity check `check` uses (`kvsh::check::atomicity`: every snapshot
//! saw all or nothing of each `MPUT`) and the register checker; and after
//! a last round of acknowledged `MPUT`s, killing any one node loses none
//! of them.

mod common;

use common::{healthy_cluster, primary_of, wait_for, PATIENCE};
use kvsh::check::history::{OpKind, Recorder};
use kvsh::check::{atomicity, linearizability};
use rand::{Rng, SeedableRng};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;

const GROUPS: usize = 4;
const KEYS: usize = 3;

fn group(g: usize) -> Vec<String> {
    (0..KEYS).map(|i| format!("group{g}:key{i}")).collect()
}

#[test]
fn readers_see_all_or_nothing_of_each_mput_while_nodes_die() {
    let mut cluster = healthy_cluster(4, 2, 16);
    let stop = Arc::new(AtomicBool::new(false));
    let acked = Arc::new(AtomicU64::new(0));
    let snapshots = Arc::new(AtomicU64::new(0));
    let recorder = Recorder::new();
    let mut threads = Vec::new();
    for w in 0..3u64 {
        let mut client = cluster.client();
        let (stop, acked, recorder) = (stop.clone(), acked.clone(), recorder.clone());
        threads.push(std::thread::spawn(move || {
            let mut rng = rand::rngs::SmallRng::seed_from_u64(w);
            let mut n = 0;
            while !stop.load(Ordering::Relaxed) {
                n += 1;
                let value = format!("w{w}-{n}");
                let pairs: Vec<(String, String)> = group(rng.gen_range(0..GROUPS))
                    .into_iter()
                    .map(|k| (k, value.clone()))
                    .collect();
                let writes = pairs
                    .iter()
                    .map(|(k, v)| (k.clone(), OpKind::write(v.clone())))
                    .collect();
                let inv = recorder.invoke_many(w, writes);
                match client.mput(&pairs) {
                    Ok(_) => {
                        inv.ok();
                        acked.fetch_add(1, Ordering::Relaxed);
                    }
                    Err(e) if e.is_indefinite() => inv.unknown(),
                    Err(_) => inv.failed(),
                }
            }
        }));
    }
    for r in 0..3u64 {
        let mut client = cluster.client();
        let (stop, snapshots, recorder) = (stop.clone(), snapshots.clone(), recorder.clone());
        threads.push(std::thread::spawn(move || {
            let mut rng = rand::rngs::SmallRng::seed_from_u64(100 + r);
            while !stop.load(Ordering::Relaxed) {
                let keys = group(rng.gen_range(0..GROUPS));
                let reads = keys.iter().map(|k| (k.clone(), OpKind::read())).collect();
                let inv = recorder.invoke_many(10 + r, reads);
                match client.get_snapshot(&keys) {
                    Ok(values) => {
                        inv.ok_reads(values);
                        snapshots.fetch_add(1, Ordering::Relaxed);
                    }
                    Err(_) => inv.unknown(),
                }
            }
        }));
    }
    // The primary of a group's first key coordinates that group's MPUTs
    // (the client sends them there); the others' primaries participate.
    for round in 0..4 {
        wait_for(&acked, 20, "acknowledged MPUT");
        wait_for(&snapshots, 20, "snapshot");
        let keys = group(round % GROUPS);
        let victim = primary_of(&cluster, &keys[round % KEYS]);
        cluster.kill(victim).unwrap();
        wait_for(&acked, 10, "acknowledged MPUT after a kill");
        cluster.restart(victim).unwrap();
        cluster.wait_healthy(PATIENCE, &|| false).unwrap();
    }
    wait_for(&acked, 20, "acknowledged MPUT");
    stop.store(true, Ordering::Relaxed);
    for t in threads {
        t.join().unwrap();
    }
    let history = recorder.history();
    let torn = atomicity::check(&history);
    assert!(
        torn.is_empty(),
        "snapshots saw part of an MPUT: {:?}",
        &torn[..torn.len().min(5)]
    );
    let report = linearizability::check(&history);
    assert!(report.is_linearizable(), "{report:?}");

    // Every acknowledged MPUT survives the death of any one node.
    let mut client = cluster.client();
    for g in 0..GROUPS {
        let pairs: Vec<(String, String)> = group(g)
            .into_iter()
            .map(|k| (k, format!("final-{g}")))
            .collect();
        client.mput(&pairs).unwrap();
    }
    let victim = primary_of(&cluster, &group(0)[1]);
    cluster.kill(victim).unwrap();
    cluster.wait_healthy(PATIENCE, &|| false).unwrap();
    for g in 0..GROUPS {
        let values = client.get_snapshot(&group(g)).unwrap();
        assert!(
            values
                .iter()
                .all(|v| v.as_deref() == Some(&*format!("final-{g}"))),
            "group {g} after killing n{victim}: {values:?}"
        );
    }
    println!(
        "{} MPUTs acknowledged, {} snapshots over 5 kills: none torn, none lost",
        acked.load(Ordering::Relaxed),
        snapshots.load(Ordering::Relaxed)
    );
}

#[test]
fn an_mput_is_refused_whole_when_it_is_malformed() {
    let cluster = healthy_cluster(2, 2, 8);
    let mut client = cluster.client();
    let twice = vec![("a".to_string(), "1".to_string()), ("a".into(), "2".into())];
    let err = client.mput(&twice).unwrap_err();
    assert_eq!(err.code(), "bad_request", "{err}");
    let many: Vec<(String, String)> = (0..65).map(|i| (format!("k{i}"), "v".into())).collect();
    let err = client.mput(&many).unwrap_err();
    assert_eq!(err.code(), "too_large", "{err}");
    assert_eq!(client.get("a").unwrap(), None, "nothing of a refused MPUT");
    assert_eq!(client.mput(&many[..64]).unwrap(), 64);
    let keys: Vec<String> = many[..64].iter().map(|(k, _)| k.clone()).collect();
    let values = client.get_snapshot(&keys).unwrap();
    assert!(values.iter().all(|v| v.as_deref() == Some("v")));
}
