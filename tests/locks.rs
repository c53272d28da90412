//! Locks under failover: many clients contend for one lock, renewing and
//! releasing it, while the primary of its partition is killed, restarted
//! and paused. From the recorded history (each grant with its fencing
//! token) the test checks that no two clients ever believed they held the
//! lock at once, and that tokens never went backwards.
//!
//! A client believes it holds the lock from the moment a grant's reply
//! arrives until the lease it asked for, counted from when it *sent* the
//! request, runs out, or until it sends an `UNLOCK`, whichever is first; a
//! renewal that is granted extends it the same way. That is what a careful
//! client can know, and it is what the cluster must honour.

mod common;

use common::{healthy_cluster, primary_of, wait_for, PATIENCE};
use kvsh::cluster::Cluster;
use kvsh::node::conditional::lock_key;
use rand::{Rng, SeedableRng};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

const LOCK: &str = "contended";
const CLIENTS: u64 = 6;
const TTL: Duration = Duration::from_millis(250);

/// One holding of the lock, as its client saw it.
#[derive(Clone, Debug)]
struct Holding {
    owner: String,
    token: u64,
    /// When the grant's reply arrived.
    from: Instant,
    /// When the client stopped believing it held the lock.
    until: Instant,
}

fn run_client(
    cluster: &Cluster,
    c: u64,
    stop: Arc<AtomicBool>,
    grants: Arc<AtomicU64>,
    log: Arc<Mutex<Vec<Holding>>>,
) -> impl FnOnce() + Send + 'static {
    let mut client = cluster.client();
    move || {
        let owner = format!("c{c}");
        let mut rng = rand::rngs::SmallRng::seed_from_u64(c);
        while !stop.load(Ordering::Relaxed) {
            let sent = Instant::now();
            let Ok(reply) = client.lock(LOCK, &owner, TTL) else {
                // Unknown outcome: the client does not believe it holds it.
                continue;
            };
            if !reply.locked {
                std::thread::sleep(Duration::from_millis(rng.gen_range(1..10)));
                continue;
            }
            assert_eq!(reply.owner, owner);
            let mut held = Holding {
                owner: owner.clone(),
                token: reply.token,
                from: Instant::now(),
                until: sent + TTL,
            };
            grants.fetch_add(1, Ordering::Relaxed);
            // Work a little under the lock, renewing it now and then.
            for _ in 0..rng.gen_range(0..3) {
                std::thread::sleep(Duration::from_millis(rng.gen_range(5..60)));
                let sent = Instant::now();
                match client.lock(LOCK, &owner, TTL) {
                    Ok(r) if r.locked && r.token == held.token => {
                        held.until = held.until.max(sent + TTL);
                    }
                    Ok(r) if r.locked => {
                        // The lease ran out before the renewal (a slow
                        // machine) and nobody took the lock meanwhile: a
                        // new holding, with a new token.
                        log.lock().unwrap().push(held.clone());
                        held = Holding {
                            owner: owner.clone(),
                            token: r.token,
                            from: Instant::now(),
                            until: sent + TTL,
                        };
                    }
                    _ => break,
                }
            }
            std::thread::sleep(Duration::from_millis(rng.gen_range(0..40)));
            let release = Instant::now();
            held.until = held.until.min(release);
            log.lock().unwrap().push(held.clone());
            let _ = client.unlock(LOCK, &owner, held.token);
        }
    }
}

/// No two holdings overlap, and tokens grow from one holding to the next.
fn check(log: &[Holding]) {
    let mut log: Vec<&Holding> = log.iter().filter(|h| h.from < h.until).collect();
    log.sort_by_key(|h| h.from);
    for w in log.windows(2) {
        let (a, b) = (w[0], w[1]);
        assert!(
            a.until <= b.from,
            "{} (token {}) still held the lock {:?} after {} (token {}) got it",
            a.owner,
            a.token,
            a.until - b.from,
            b.owner,
            b.token
        );
        assert!(
            a.token < b.token,
            "token went from {} ({}) to {} ({})",
            a.token,
            a.owner,
            b.token,
            b.owner
        );
    }
}

#[test]
fn one_holder_at_a_time_and_tokens_only_grow_while_primaries_fail() {
    let mut cluster = healthy_cluster(4, 2, 16);
    let stop = Arc::new(AtomicBool::new(false));
    let grants = Arc::new(AtomicU64::new(0));
    let log = Arc::new(Mutex::new(Vec::new()));
    let threads: Vec<_> = (0..CLIENTS)
        .map(|c| {
            std::thread::spawn(run_client(
                &cluster,
                c,
                stop.clone(),
                grants.clone(),
                log.clone(),
            ))
        })
        .collect();
    let wait_grants = |n: u64| wait_for(&grants, n, "lock grants");
    let primary = |cluster: &Cluster| primary_of(cluster, &lock_key(LOCK));
    let failed_over = |cluster: &Cluster, p| {
        let watch = cluster.status_watch();
        let partition = cluster.status().view.partition_of(&lock_key(LOCK));
        watch
            .wait_until(PATIENCE, &|| false, |s| {
                s.view.primary(partition).is_some_and(|q| q != p)
            })
            .is_ok()
    };
    let mut failovers = 0;
    for round in 0..4 {
        wait_grants(10);
        let p = primary(&cluster);
        // Kill the lock's primary, or pause it for longer than the failure
        // timeout; either way the cluster fails over while clients contend,
        // and the clients must go on getting the lock from the new primary.
        if round % 2 == 0 {
            cluster.kill(p).unwrap();
        } else {
            cluster.pause(p, Duration::from_millis(1500)).unwrap();
        }
        if failed_over(&cluster, p) {
            failovers += 1;
        }
        wait_grants(5);
        if round % 2 == 0 {
            cluster.restart(p).unwrap();
        }
        cluster.wait_healthy(PATIENCE, &|| false).unwrap();
    }
    wait_grants(10);
    stop.store(true, Ordering::Relaxed);
    for t in threads {
        t.join().unwrap();
    }
    assert_eq!(failovers, 4, "the lock's primary failed over every time");
    let log = log.lock().unwrap();
    assert!(
        log.len() >= 50,
        "the clients took the lock often ({})",
        log.len()
    );
    check(&log);
    println!(
        "{} holdings by {CLIENTS} clients over {failovers} failovers: no overlap, tokens grew",
        log.len()
    );
}

#[test]
fn the_checker_catches_an_overlap_and_a_token_going_back() {
    let t0 = Instant::now();
    let at = |ms: u64| t0 + Duration::from_millis(ms);
    let h = |owner: &str, token, from, until| Holding {
        owner: owner.into(),
        token,
        from: at(from),
        until: at(until),
    };
    check(&[h("a", 1, 0, 10), h("b", 2, 10, 20)]);
    let overlap = std::panic::catch_unwind(|| check(&[h("a", 1, 0, 10), h("b", 2, 9, 20)]));
    assert!(overlap.is_err());
    let back = std::panic::catch_unwind(|| check(&[h("a", 2, 0, 10), h("b", 1, 10, 20)]));
    assert!(back.is_err());
}
