//! Tests of the checker as a whole: hand-written histories for each kind
//! of violation, long generated histories that must finish, and properties
//! checked against a brute-force oracle.

use std::collections::BTreeMap;

use proptest::prelude::*;
use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};
use test_case::test_case;

use super::register::{Op, Register, Verdict};
use super::search::{search, Search};
use super::*;
use crate::check::history::{OpKind, Operation, Outcome};

fn op(id: u64, kind: OpKind, invoke: u64, complete: u64, outcome: Outcome) -> Operation {
    Operation {
        id,
        process: id % 4,
        key: "k".into(),
        kind,
        invoke,
        complete,
        outcome,
        txn: None,
    }
}

fn w(id: u64, value: &str, invoke: u64, complete: u64) -> Operation {
    op(id, OpKind::write(value), invoke, complete, Outcome::Ok)
}

fn r(id: u64, value: Option<&str>, invoke: u64, complete: u64) -> Operation {
    let kind = OpKind::Read {
        value: value.map(str::to_string),
    };
    op(id, kind, invoke, complete, Outcome::Ok)
}

fn del(id: u64, invoke: u64, complete: u64) -> Operation {
    op(id, OpKind::Delete, invoke, complete, Outcome::Ok)
}

fn with(outcome: Outcome, o: Operation) -> Operation {
    Operation { outcome, ..o }
}

fn on(key: &str, o: Operation) -> Operation {
    Operation {
        key: key.into(),
        ..o
    }
}

fn violation(ops: &[Operation]) -> Violation {
    match check_key(ops) {
        KeyResult::Violation(v) => v,
        other => panic!("expected a violation, got {other:?}"),
    }
}

fn ids(v: &Violation) -> Vec<u64> {
    v.ops.iter().map(|o| o.id).collect()
}

/// The definition, by brute force over every order: an independent
/// oracle for small histories.
fn brute_force(ops: &[Operation]) -> bool {
    let ops: Vec<&Operation> = ops
        .iter()
        .filter(|o| o.outcome != Outcome::Failed)
        .filter(|o| !(o.outcome == Outcome::Unknown && matches!(o.kind, OpKind::Read { .. })))
        .collect();
    fn go(ops: &[&Operation], placed: &mut Vec<bool>, state: Option<&str>) -> bool {
        let done = |i: usize| ops[i].outcome == Outcome::Unknown || placed[i];
        if (0..ops.len()).all(done) {
            return true;
        }
        for i in 0..ops.len() {
            if placed[i] {
                continue;
            }
            // Some other acknowledged op must come first.
            let blocked = (0..ops.len()).any(|j| {
                j != i
                    && !placed[j]
                    && ops[j].outcome == Outcome::Ok
                    && ops[j].complete.max(ops[j].invoke) < ops[i].invoke
            });
            if blocked {
                continue;
            }
            let next = match &ops[i].kind {
                OpKind::Read { value } if value.as_deref() == state => state,
                OpKind::Read { .. } => continue,
                OpKind::Write { value } => Some(value.as_str()),
                OpKind::Delete => None,
                OpKind::Cas {
                    swapped: false,
                    current,
                    ..
                } if ops[i].outcome == Outcome::Ok => {
                    if current.as_deref() != state {
                        continue;
                    }
                    state
                }
                OpKind::Cas {
                    expected, value, ..
                } => {
                    if expected.as_deref() != state {
                        continue;
                    }
                    Some(value.as_str())
                }
            };
            placed[i] = true;
            let ok = go(ops, placed, next);
            placed[i] = false;
            if ok {
                return true;
            }
        }
        false
    }
    go(&ops, &mut vec![false; ops.len()], None)
}

#[test]
fn sequential_history_is_linearizable() {
    let ops = [
        r(0, None, 0, 1),
        w(1, "1", 2, 3),
        r(2, Some("1"), 4, 5),
        w(3, "2", 6, 7),
        r(4, Some("2"), 8, 9),
        del(5, 10, 11),
        r(6, None, 12, 13),
        w(7, "1", 14, 15),
        r(8, Some("1"), 16, 17),
    ];
    assert_eq!(check_key(&ops), KeyResult::Ok);
    assert!(brute_force(&ops));
}

#[test_case(Some("1"), Some("1"), "1" ; "both see the first")]
#[test_case(Some("2"), Some("1"), "1" ; "second then first")]
#[test_case(None, Some("2"), "2" ; "nothing then second")]
#[test_case(Some("1"), Some("2"), "2" ; "first then second")]
fn concurrent_writes_allow_either_order(during: Option<&str>, late: Option<&str>, after: &str) {
    let ops = [
        w(0, "1", 0, 100),
        w(1, "2", 10, 90),
        r(2, during, 20, 30),
        r(3, late, 40, 50),
        r(4, Some(after), 101, 102),
        r(5, Some(after), 103, 104),
    ];
    assert_eq!(check_key(&ops), KeyResult::Ok);
}

#[test]
fn touching_intervals_count_as_concurrent() {
    let ops = [w(0, "1", 0, 5), r(1, None, 5, 6)];
    assert_eq!(check_key(&ops), KeyResult::Ok);
}

#[test]
fn unknown_write_may_take_effect_late() {
    let ops = [
        with(Outcome::Unknown, w(0, "1", 0, 5)),
        r(1, None, 6, 7),
        r(2, Some("1"), 8, 9),
        r(3, Some("1"), 10, 11),
    ];
    assert_eq!(check_key(&ops), KeyResult::Ok);
}

#[test]
fn unknown_write_may_never_take_effect() {
    let ops = [
        w(0, "1", 0, 1),
        with(Outcome::Unknown, w(1, "2", 2, 3)),
        with(Outcome::Unknown, del(2, 2, 3)),
        r(3, Some("1"), 5, 6),
        r(4, Some("1"), 7, 8),
    ];
    assert_eq!(check_key(&ops), KeyResult::Ok);
}

#[test]
fn failed_ops_and_unknown_reads_say_nothing() {
    let ops = [
        w(0, "1", 0, 1),
        with(Outcome::Failed, w(1, "2", 2, 3)),
        with(Outcome::Failed, r(2, Some("zzz"), 4, 5)),
        with(Outcome::Unknown, r(3, Some("yyy"), 6, 7)),
        r(4, Some("1"), 8, 9),
    ];
    assert_eq!(check_key(&ops), KeyResult::Ok);
}

#[test]
fn unknown_write_cannot_be_undone() {
    let ops = [
        w(0, "1", 0, 1),
        with(Outcome::Unknown, w(1, "2", 2, 3)),
        r(2, Some("2"), 4, 5),
        r(3, Some("1"), 6, 7),
    ];
    let v = violation(&ops);
    assert!(v.reason.contains("went back in time"), "{}", v.reason);
    assert_eq!(ids(&v), [0, 1, 2, 3]);
}

#[test]
fn stale_read_is_caught_with_three_ops() {
    let ops = [w(0, "1", 0, 1), w(1, "2", 2, 3), r(2, Some("1"), 4, 5)];
    let v = violation(&ops);
    assert_eq!(v.key, "k");
    assert!(
        v.reason.starts_with("stale read: op 2 read \"1\""),
        "{}",
        v.reason
    );
    assert_eq!(ids(&v), [0, 1, 2]);
}

#[test]
fn stale_read_shrinks_out_of_a_busy_history() {
    let mut ops = Vec::new();
    let mut id = 0;
    let mut next = |o: fn(u64) -> Operation| {
        id += 1;
        o(id)
    };
    // Concurrent noise, then the stale read, then more noise.
    ops.push(next(|i| w(i, "a", 0, 50)));
    ops.push(next(|i| r(i, None, 1, 2)));
    ops.push(next(|i| w(i, "b", 3, 40)));
    ops.push(next(|i| r(i, Some("b"), 41, 45)));
    ops.push(next(|i| r(i, Some("a"), 51, 52)));
    ops.push(next(|i| w(i, "c", 60, 61)));
    ops.push(next(|i| r(i, Some("c"), 62, 63)));
    ops.push(next(|i| w(i, "d", 64, 70)));
    ops.push(next(|i| r(i, Some("c"), 71, 72))); // stale: "d" completed at 70
    ops.push(next(|i| w(i, "e", 73, 74)));
    ops.push(next(|i| r(i, Some("e"), 75, 76)));
    ops.push(next(|i| with(Outcome::Unknown, w(i, "f", 77, 78))));
    ops.push(next(|i| on("other", w(i, "c", 65, 66))));
    let report = check(&ops);
    assert_eq!(report.keys, 2);
    assert!(report.gave_up.is_empty());
    assert_eq!(report.violations.len(), 1);
    let v = &report.violations[0];
    assert!(v.ops.len() <= 3, "{v}");
    assert_eq!(ids(v), [6, 8, 9]);
    assert!(v.reason.starts_with("stale read"), "{}", v.reason);
}

#[test]
fn lost_write_is_caught() {
    let ops = [
        r(0, None, 0, 1),
        w(1, "1", 2, 3),
        r(2, Some("1"), 4, 5),
        r(3, None, 6, 7),
    ];
    let v = violation(&ops);
    assert!(
        v.reason.starts_with("lost write: op 3 read nothing"),
        "{}",
        v.reason
    );
    assert_eq!(ids(&v), [1, 3]);
}

#[test]
fn delete_then_stale_value_is_caught() {
    let ops = [w(0, "1", 0, 1), del(1, 2, 3), r(2, Some("1"), 4, 5)];
    let v = violation(&ops);
    assert!(v.reason.contains("op 1 deleted the key"), "{}", v.reason);
    assert_eq!(ids(&v), [0, 1, 2]);
}

#[test]
fn read_of_a_never_written_value_is_caught() {
    let ops = [
        w(0, "1", 0, 1),
        r(1, Some("1"), 2, 3),
        r(2, Some("zzz"), 4, 5),
    ];
    let v = violation(&ops);
    assert_eq!(v.reason, "op 2 read \"zzz\", which no operation ever wrote");
    assert_eq!(ids(&v), [2]);
}

#[test]
fn read_of_a_failed_write_is_caught() {
    let ops = [
        with(Outcome::Failed, w(0, "1", 0, 1)),
        r(1, Some("1"), 2, 3),
    ];
    let v = violation(&ops);
    assert_eq!(
        v.reason,
        "op 1 read \"1\", which only op 0, a failed write, wrote"
    );
}

#[test]
fn read_from_the_future_is_caught() {
    let ops = [r(0, Some("1"), 0, 1), w(1, "1", 2, 3)];
    let v = violation(&ops);
    assert!(v.reason.starts_with("read from the future"), "{}", v.reason);
    assert_eq!(ids(&v), [0, 1]);
}

#[test]
fn sequential_reads_in_an_impossible_order_are_caught() {
    // Either write may win, but once a read has seen "2" after both
    // completed, "1" cannot come back.
    let ops = [
        w(0, "1", 0, 10),
        w(1, "2", 0, 10),
        r(2, Some("2"), 11, 12),
        r(3, Some("1"), 13, 14),
    ];
    assert!(!brute_force(&ops));
    let v = violation(&ops);
    assert!(
        v.reason
            .starts_with("reads went back in time: op 2 read \"2\", then op 3"),
        "{}",
        v.reason
    );
    assert_eq!(ids(&v), [0, 1, 2, 3]);
}

#[test]
fn violation_without_a_pattern_gets_the_generic_reason() {
    // 1 is seen, then 2, then 1 again, with both writes concurrent with
    // all three reads: only a second write of 1 could explain it.
    let ops = [
        w(0, "1", 0, 100),
        w(1, "2", 0, 100),
        r(2, Some("1"), 10, 20),
        r(3, Some("2"), 30, 40),
        r(4, Some("1"), 50, 60),
    ];
    assert!(!brute_force(&ops));
    let v = violation(&ops);
    assert!(
        v.reason
            .starts_with("no order of these 5 operations is legal"),
        "{}",
        v.reason
    );
    assert_eq!(ids(&v), [0, 1, 2, 3, 4]);
}

#[test]
fn report_separates_keys() {
    let ops = [
        on("a", w(0, "1", 0, 1)),
        on("b", w(1, "1", 0, 1)),
        on("a", r(2, Some("1"), 2, 3)),
        on("b", r(3, None, 2, 3)),
        on("c", r(4, Some("x"), 2, 3)),
    ];
    let report = check(&ops);
    assert_eq!(report.keys, 3);
    let keys: Vec<&str> = report.violations.iter().map(|v| v.key.as_str()).collect();
    assert_eq!(keys, ["b", "c"]);
    assert!(!report.is_linearizable());
    assert!(check(&ops[..3]).is_linearizable());
    assert!(check(&[]).is_linearizable());
}

#[test]
fn out_of_budget_is_neither_ok_nor_a_violation() {
    let ops = process_history(&mut SmallRng::seed_from_u64(7), 200, 5, 0.0, u64::MAX);
    let tight = Budget {
        search_steps: 10,
        shrink_steps: 10,
    };
    assert_eq!(check_key_with(&ops, tight), KeyResult::GaveUp);
    let report = check_with(&ops, tight);
    assert_eq!(report.gave_up, ["k"]);
    assert!(report.violations.is_empty());
    assert!(!report.is_linearizable());
}

/// A linearizable single-key history of `count` operations from
/// `processes` clients, each client one operation at a time: pick each
/// operation's interval, then a linearization point inside it, then run
/// a real register in point order to fill in what reads return.
/// `unknown` is the chance that a write or delete times out; writes
/// cycle through `distinct` values.
fn process_history(
    rng: &mut SmallRng,
    count: usize,
    processes: u64,
    unknown: f64,
    distinct: u64,
) -> Vec<Operation> {
    let mut clocks = vec![0u64; processes as usize];
    let mut ops = Vec::new();
    let mut points = Vec::new();
    for id in 0..count as u64 {
        let p = rng.gen_range(0..processes);
        let invoke = clocks[p as usize] + rng.gen_range(1..20);
        let complete = invoke + rng.gen_range(1..60);
        clocks[p as usize] = complete;
        let kind = match rng.gen_range(0..10) {
            0..=4 => OpKind::read(),
            5..=8 => OpKind::write(format!("v{}", id % distinct)),
            _ => OpKind::Delete,
        };
        let mut outcome = Outcome::Ok;
        if !matches!(kind, OpKind::Read { .. }) && rng.gen_bool(unknown) {
            outcome = Outcome::Unknown;
        }
        // Points are finer than the clock so few of them tie; a tie is
        // harmless anyway, as both points lie in both intervals.
        let point = invoke * 1000 + rng.gen_range(0..=(complete - invoke) * 1000);
        // An unknown write takes effect at its point or never.
        let applies = outcome == Outcome::Ok || rng.gen_bool(0.5);
        points.push((point, ops.len(), applies));
        ops.push(Operation {
            id,
            process: p,
            key: "k".into(),
            kind,
            invoke,
            complete,
            outcome,
            txn: None,
        });
    }
    points.sort();
    let mut register: Option<String> = None;
    for (_, i, applies) in points {
        match &mut ops[i].kind {
            OpKind::Read { value } => *value = register.clone(),
            OpKind::Write { value } if applies => register = Some(value.clone()),
            OpKind::Delete if applies => register = None,
            _ => {}
        }
    }
    ops
}

#[test]
fn two_thousand_ops_from_five_clients_finish() {
    let mut rng = SmallRng::seed_from_u64(1);
    let ops = process_history(&mut rng, 2_000, 5, 0.05, u64::MAX);
    assert_eq!(check_key(&ops), KeyResult::Ok);
}

#[test]
fn ten_thousand_ops_from_eight_clients_finish() {
    let mut rng = SmallRng::seed_from_u64(2);
    let ops = process_history(&mut rng, 10_000, 8, 0.02, u64::MAX);
    assert_eq!(check_key(&ops), KeyResult::Ok);
}

#[test]
fn a_late_stale_read_in_a_long_history_shrinks() {
    let mut rng = SmallRng::seed_from_u64(3);
    let mut ops = process_history(&mut rng, 2_000, 5, 0.0, u64::MAX);
    let end = ops.iter().map(|o| o.complete).max().unwrap();
    ops.push(w(10_000, "late-1", end + 10, end + 11));
    ops.push(w(10_001, "late-2", end + 12, end + 13));
    ops.push(r(10_002, Some("late-1"), end + 14, end + 15));
    let v = violation(&ops);
    assert_eq!(ids(&v), [10_000, 10_001, 10_002]);
    assert!(v.reason.starts_with("stale read"), "{}", v.reason);
}

/// A process history with one read in the middle changed to return
/// the value of a write a few writes back.
fn corrupted(rng: &mut SmallRng, count: usize, processes: u64, unknown: f64) -> Vec<Operation> {
    let mut ops = process_history(rng, count, processes, unknown, u64::MAX);
    let written: Vec<String> = ops[..count / 2]
        .iter()
        .filter(|o| o.outcome == Outcome::Ok)
        .filter_map(|o| match &o.kind {
            OpKind::Write { value } => Some(value.clone()),
            _ => None,
        })
        .collect();
    let read = (count / 2..count)
        .find(|&i| ops[i].outcome == Outcome::Ok && matches!(ops[i].kind, OpKind::Read { .. }))
        .expect("reads are half the ops");
    ops[read].kind = OpKind::Read {
        value: Some(written[written.len() - 5].clone()),
    };
    ops
}

#[test]
fn a_violation_too_deep_for_the_whole_search_is_found_in_a_window() {
    let budget = Budget {
        search_steps: 100_000,
        shrink_steps: DEFAULT_SHRINK_STEPS,
    };
    let ops = corrupted(&mut SmallRng::seed_from_u64(4), 3_000, 8, 0.1);
    // Too much for the whole search at this budget...
    let register = Register::new(&ops);
    assert_eq!(search(&register.ops, budget.search_steps).0, Search::GaveUp);
    // ...but a window finds it, and the witness is a real one.
    let v = match check_key_with(&ops, budget) {
        KeyResult::Violation(v) => v,
        other => panic!("expected a violation, got {other:?}"),
    };
    assert!(v.ops.len() <= 4, "{v}");
    assert!(!brute_force(&v.ops), "{v}");
    // The same history without the corruption is never a violation.
    let clean = process_history(&mut SmallRng::seed_from_u64(4), 3_000, 8, 0.1, u64::MAX);
    assert!(!matches!(
        check_key_with(&clean, budget),
        KeyResult::Violation(_)
    ));
}

/// A history of 1-3 keys whose ops were linearized at points 0, 10, 20…
/// on a real register, then given intervals around their points. Unknown
/// writes apply at their point or never; failed ones never.
fn widened_history() -> impl Strategy<Value = Vec<Operation>> {
    let op = (0..3usize, 0..4u8, 0..5u8, 0..40u64, 0..40u64, 0..6u8);
    prop::collection::vec(op, 1..60).prop_map(|specs| {
        let mut state: BTreeMap<String, Option<String>> = BTreeMap::new();
        let mut ops = Vec::new();
        for (i, (key, kind, value, before, after, fate)) in specs.into_iter().enumerate() {
            let key = format!("k{key}");
            let point = 10 * i as u64 + 40;
            let current = state.entry(key.clone()).or_default();
            let (outcome, applies) = match fate {
                0 => (Outcome::Failed, false),
                1 => (Outcome::Unknown, false),
                2 => (Outcome::Unknown, true),
                _ => (Outcome::Ok, true),
            };
            let kind = match kind {
                0 => OpKind::Read {
                    value: current.clone(),
                },
                1 | 2 => {
                    let value = format!("v{value}");
                    if applies {
                        *current = Some(value.clone());
                    }
                    OpKind::Write { value }
                }
                _ => {
                    if applies {
                        *current = None;
                    }
                    OpKind::Delete
                }
            };
            // A failed or unknown read reports nothing.
            let outcome = match (&kind, outcome) {
                (OpKind::Read { .. }, Outcome::Unknown) => Outcome::Ok,
                (_, o) => o,
            };
            ops.push(Operation {
                id: i as u64,
                process: i as u64 % 5,
                key,
                kind,
                invoke: point - before,
                complete: point + after,
                outcome,
                txn: None,
            });
        }
        ops
    })
}

/// Small single-key histories with few values, anything goes.
fn arbitrary_history() -> impl Strategy<Value = Vec<Operation>> {
    let value = prop::option::of(prop::sample::select(vec!["a", "b"]));
    let kind = prop_oneof![
        value.prop_map(|v| OpKind::Read {
            value: v.map(str::to_string)
        }),
        prop::sample::select(vec!["a", "b"]).prop_map(OpKind::write),
        Just(OpKind::Delete),
    ];
    let outcome = prop_oneof![
        6 => Just(Outcome::Ok),
        1 => Just(Outcome::Failed),
        2 => Just(Outcome::Unknown),
    ];
    let spec = (kind, 0..20u64, 0..8u64, outcome);
    prop::collection::vec(spec, 1..8).prop_map(|specs| {
        specs
            .into_iter()
            .enumerate()
            .map(|(i, (kind, invoke, len, outcome))| {
                op(i as u64, kind, invoke, invoke + len, outcome)
            })
            .collect()
    })
}

/// Small single-key histories with reads, writes and compare-and-sets.
fn arbitrary_cas_history() -> impl Strategy<Value = Vec<Operation>> {
    let value = || prop::option::of(prop::sample::select(vec!["a", "b", "c"]));
    let kind = prop_oneof![
        value().prop_map(|v| OpKind::Read {
            value: v.map(str::to_string)
        }),
        prop::sample::select(vec!["a", "b", "c"]).prop_map(OpKind::write),
        (
            value(),
            prop::sample::select(vec!["a", "b", "c"]),
            any::<bool>(),
            value()
        )
            .prop_map(|(e, v, swapped, current)| OpKind::Cas {
                expected: e.map(str::to_string),
                value: v.to_string(),
                swapped,
                current: current.filter(|_| !swapped).map(str::to_string),
            }),
    ];
    let outcome = prop_oneof![
        6 => Just(Outcome::Ok),
        1 => Just(Outcome::Failed),
        2 => Just(Outcome::Unknown),
    ];
    let spec = (kind, 0..20u64, 0..8u64, outcome);
    prop::collection::vec(spec, 1..8).prop_map(|specs| {
        specs
            .into_iter()
            .enumerate()
            .map(|(i, (kind, invoke, len, outcome))| {
                op(i as u64, kind, invoke, invoke + len, outcome)
            })
            .collect()
    })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(1_000))]

    #[test]
    fn cas_histories_agree_with_brute_force(ops in arbitrary_cas_history()) {
        let expected = brute_force(&ops);
        match check_key(&ops) {
            KeyResult::Ok => prop_assert!(expected, "checker says linearizable"),
            KeyResult::GaveUp => prop_assert!(false, "gave up on {} ops", ops.len()),
            KeyResult::Violation(v) => {
                prop_assert!(!expected, "checker found {}", v);
                prop_assert!(!brute_force(&v.ops), "witness is linearizable: {}", v);
            }
        }
    }

    #[test]
    fn widened_true_histories_are_linearizable(ops in widened_history()) {
        let report = check(&ops);
        prop_assert!(report.is_linearizable(), "{:?}", report);
    }

    #[test]
    fn an_impossible_read_is_caught(
        ops in widened_history(),
        pick in any::<prop::sample::Index>(),
    ) {
        let mut ops = ops;
        let is_read = |o: &Operation| matches!(o.kind, OpKind::Read { .. });
        let reads: Vec<usize> = (0..ops.len())
            .filter(|&i| ops[i].outcome == Outcome::Ok && is_read(&ops[i]))
            .collect();
        prop_assume!(!reads.is_empty());
        let i = reads[pick.index(reads.len())];
        ops[i].kind = OpKind::Read { value: Some("never-written".into()) };
        let report = check(&ops);
        prop_assert_eq!(report.violations.len(), 1);
        prop_assert_eq!(&report.violations[0].key, &ops[i].key);
        prop_assert_eq!(&report.violations[0].ops, &vec![ops[i].clone()]);
        // The search alone, without the shortcut, must agree.
        let key_ops: Vec<Operation> =
            ops.iter().filter(|o| o.key == ops[i].key).cloned().collect();
        let register = Register::new(&key_ops);
        let result = search(&register.ops, DEFAULT_SEARCH_STEPS).0;
        prop_assert!(matches!(result, Search::Stuck(_)));
    }

    #[test]
    fn windows_are_faithful(ops in arbitrary_history()) {
        // A window that is not linearizable must prove the whole is not.
        let register = Register::new(&ops);
        let n = register.ops.len();
        for lo in 0..n {
            for hi in lo + 1..=n {
                for lean in [true, false] {
                    let window = register.window(lo..hi, lean);
                    let sub: Vec<Op> = window.iter().map(|&i| register.ops[i]).collect();
                    if matches!(search(&sub, DEFAULT_SEARCH_STEPS).0, Search::Stuck(_)) {
                        prop_assert!(!brute_force(&ops), "window {lo}..{hi} lean {lean}");
                    }
                }
            }
        }
    }

    #[test]
    fn decide_on_a_shoestring_is_still_right(ops in arbitrary_history(), budget in 0..60u64) {
        // Tiny budgets send the decision through the windows.
        let expected = brute_force(&ops);
        let register = Register::new(&ops);
        match register.decide(budget) {
            Verdict::Linearizable => prop_assert!(expected),
            Verdict::Violation { witness, stuck } => {
                prop_assert!(!expected);
                prop_assert!(stuck.op < witness.len());
            }
            Verdict::GaveUp => {}
        }
    }

    #[test]
    fn agrees_with_brute_force(ops in arbitrary_history()) {
        let expected = brute_force(&ops);
        match check_key(&ops) {
            KeyResult::Ok => prop_assert!(expected, "checker says linearizable"),
            KeyResult::GaveUp => prop_assert!(false, "gave up on {} ops", ops.len()),
            KeyResult::Violation(v) => {
                prop_assert!(!expected, "checker found {}", v);
                prop_assert!(!brute_force(&v.ops), "witness is linearizable: {}", v);
                prop_assert!(v.ops.iter().all(|o| ops.contains(o)));
                prop_assert!(v.ops.len() <= ops.len());
            }
        }
    }
}
