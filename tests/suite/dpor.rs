//! The partial-order reduction held honest: for every built-in lock and small shapes,
//! the reduced search and the plain one (every schedule within the bound) reach the same
//! verdict and the same set of failing end states.

use oversell::testing::{
    explore, Checked, EventKind, ExploreConfig, HarnessConfig, Span, StoreMode,
};
use oversell::{LockKind, Schedule, TrialSpace};
use std::collections::{BTreeMap, BTreeSet};

const BIN: &str = env!("CARGO_BIN_EXE_oversell");

/// What a failing schedule ended with: its finding kinds, the final store, and each
/// buyer's claim.
type EndState = (Vec<String>, String, BTreeMap<u32, Option<i64>>);

fn end_state(c: &Checked) -> EndState {
    // `leaked_process` speaks of the harness's teardown of a trial already stuck (how
    // fast a killed process was reaped), not of the schedule: it is no end state.
    let mut kinds: Vec<String> = c
        .violations
        .iter()
        .map(|v| v.kind.to_string())
        .filter(|k| k != "leaked_process")
        .collect();
    kinds.sort();
    kinds.dedup();
    let claims = c
        .run
        .history
        .events
        .iter()
        .filter(|e| e.kind == EventKind::Bought)
        .map(|e| (e.buyer, e.num()))
        .collect();
    (kinds, format!("{:?}", c.run.final_store), claims)
}

/// (schedules run, failing end states) of an exhaustive search that keeps going.
fn search(
    lock: LockKind,
    buyers: u32,
    tickets: u32,
    store: StoreMode,
    bound: u32,
    reduction: bool,
) -> (u64, BTreeSet<EndState>) {
    let mut space = TrialSpace::new(lock);
    space.buyers = Span::one(buyers);
    space.tickets = Span::one(tickets);
    space.store = store;
    space.schedule = Schedule::Exhaustive { preemptions: bound };
    let mut cfg = ExploreConfig::new(space, u64::MAX, 7, HarnessConfig::new(BIN));
    cfg.keep_going = true;
    cfg.shrink = false;
    cfg.reduction = reduction;
    let mut failing = BTreeSet::new();
    let report = explore(&cfg, &mut |_, c, _| {
        // A trial whose only finding was its teardown's (see [`end_state`]) ended no
        // differently from a clean one.
        let state = end_state(c);
        if !state.0.is_empty() {
            failing.insert(state);
        }
    })
    .expect("explore");
    (report.trials_run, failing)
}

fn same(lock: LockKind, buyers: u32, tickets: u32, store: StoreMode, bound: u32) {
    let (plain_runs, plain) = search(lock, buyers, tickets, store, bound, false);
    let (reduced_runs, reduced) = search(lock, buyers, tickets, store, bound, true);
    let shape = format!("{} b{buyers} t{tickets} {store:?} P{bound}", lock.name());
    assert_eq!(
        plain.is_empty(),
        reduced.is_empty(),
        "{shape}: the verdicts differ"
    );
    assert_eq!(plain, reduced, "{shape}: the failing end states differ");
    assert!(
        reduced_runs <= plain_runs,
        "{shape}: {reduced_runs} > {plain_runs}"
    );
}

#[test]
fn two_buyers_every_lock_same_verdicts_and_failing_end_states() {
    // Redis locks need a server: tests/suite/redis.rs covers them.
    for &lock in LockKind::ALL.iter().filter(|k| !k.needs_redis()) {
        // A lock that steps at system-call granularity (toctou) searches hundreds of
        // real calls per schedule: one ticket shows its race.
        let most = if lock.acquire_spans_calls() { 1 } else { 2 };
        for tickets in 1..=most {
            same(lock, 2, tickets, StoreMode::InPlace, 2);
        }
    }
}

#[test]
fn three_buyers_every_lock_same_verdicts_and_failing_end_states() {
    // Redis locks need a server: tests/suite/redis.rs covers them.
    // Locks that step at system-call granularity are covered with two buyers above.
    let step_level = |k: &&LockKind| !k.needs_redis() && !k.acquire_spans_calls();
    for &lock in LockKind::ALL.iter().filter(step_level) {
        for tickets in 1..=2 {
            same(lock, 3, tickets, StoreMode::InPlace, 1);
        }
    }
}

#[test]
fn atomic_store_same_verdicts_and_failing_end_states() {
    for lock in [LockKind::None, LockKind::Flock, LockKind::RenamedStore] {
        same(lock, 3, 2, StoreMode::Atomic, 2);
    }
}

#[test]
fn the_broken_locks_are_found_with_the_same_kinds_at_three_buyers_two_preemptions() {
    for lock in [LockKind::None, LockKind::PosixClose, LockKind::EarlyRelease] {
        let kinds = |reduction| {
            let (_, failing) = search(lock, 3, 2, StoreMode::InPlace, 2, reduction);
            failing
                .into_iter()
                .flat_map(|(k, _, _)| k)
                .collect::<BTreeSet<String>>()
        };
        let plain = kinds(false);
        assert!(
            !plain.is_empty(),
            "{}: the plain search finds it",
            lock.name()
        );
        assert_eq!(kinds(true), plain, "{}", lock.name());
    }
}
