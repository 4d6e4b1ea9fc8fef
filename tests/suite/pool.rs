//! The free-running pool: jitter and barrier trials reuse buyer processes across trials
//! (unless `--fresh-processes`), and behave as fresh ones do.

use crate::common;

use common::{leftover_count, oversell_fresh, text};
use oversell::testing::{Checked, HarnessConfig, Runner};
use oversell::{LockKind, Schedule, Trial};
use std::collections::BTreeSet;

fn explore(args: &[&str]) -> (std::process::Output, tempfile::TempDir) {
    let mut all = vec!["explore"];
    all.extend_from_slice(args);
    oversell_fresh(&all, &[])
}

#[test]
fn many_jitter_trials_on_a_sound_lock_are_clean_and_leave_nothing() {
    let (out, tmp) = explore(&[
        "--lock",
        "flock",
        "--schedule",
        "jitter",
        "--trials",
        "60",
        "--seed",
        "5",
        "--jitter-ms",
        "1",
    ]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    assert!(text(&out).contains("60 trials, 0 failed"), "{}", text(&out));
    assert_eq!(
        leftover_count(tmp.path()),
        0,
        "{:?}",
        common::leftovers(tmp.path())
    );
}

#[test]
fn a_broken_lock_is_still_caught_with_the_pool() {
    // Under the read barrier every buyer reads before any writes: `none` oversells by
    // construction.
    let (out, tmp) = explore(&[
        "--lock",
        "none",
        "--schedule",
        "barrier",
        "--buyers",
        "3",
        "--tickets",
        "1",
        "--trials",
        "5",
        "--seed",
        "2",
    ]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert!(text(&out).contains("oversold"), "{}", text(&out));
    assert_eq!(
        leftover_count(tmp.path()),
        0,
        "{:?}",
        common::leftovers(tmp.path())
    );
}

#[test]
fn kill_faults_are_replaced_across_trials() {
    // The atomic store: a holder killed mid-write leaves no torn file, so flock is clean.
    let (out, tmp) = explore(&[
        "--lock",
        "flock",
        "--schedule",
        "jitter",
        "--faults",
        "kill=0.5",
        "--store",
        "atomic",
        "--trials",
        "30",
        "--seed",
        "7",
        "--jitter-ms",
        "1",
    ]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    assert!(text(&out).contains("30 trials, 0 failed"), "{}", text(&out));
    assert_eq!(
        leftover_count(tmp.path()),
        0,
        "{:?}",
        common::leftovers(tmp.path())
    );
}

#[test]
fn fresh_processes_still_work_and_find_the_same() {
    let (out, tmp) = explore(&[
        "--lock",
        "flock",
        "--schedule",
        "barrier",
        "--trials",
        "10",
        "--seed",
        "5",
        "--fresh-processes",
    ]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    assert_eq!(leftover_count(tmp.path()), 0);
    let (out, _tmp) = explore(&[
        "--lock",
        "none",
        "--schedule",
        "barrier",
        "--buyers",
        "3",
        "--tickets",
        "1",
        "--trials",
        "5",
        "--seed",
        "2",
        "--fresh-processes",
    ]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert!(text(&out).contains("oversold"), "{}", text(&out));
}

#[test]
fn buyer_counts_may_vary_across_trials() {
    let (out, tmp) = explore(&[
        "--lock",
        "lockfile",
        "--schedule",
        "barrier",
        "--buyers",
        "2..10",
        "--trials",
        "40",
        "--seed",
        "11",
        "--jitter-ms",
        "1",
    ]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    assert!(text(&out).contains("40 trials, 0 failed"), "{}", text(&out));
    assert_eq!(
        leftover_count(tmp.path()),
        0,
        "{:?}",
        common::leftovers(tmp.path())
    );
}

/// Buyer pids of ten jitter trials of three buyers, each trial's pids in buyer order.
fn pids(fresh: bool) -> Vec<Vec<u32>> {
    let harness = HarnessConfig::new(common::BIN).with_fresh(fresh);
    let mut runner = Runner::new(&harness);
    (0..10)
        .map(|seed| {
            let mut trial = Trial::new(LockKind::Flock, 3, 3);
            trial.schedule = Schedule::Jitter;
            trial.jitter_us = 200;
            trial.seed = seed;
            let c = runner.run(&trial, None).expect("trial");
            assert!(c.violations.is_empty(), "{:?}", c.violations);
            c.run.history.fates.iter().map(|f| f.pid).collect()
        })
        .collect()
}

#[test]
fn the_pool_reuses_buyer_processes_and_fresh_processes_does_not() {
    let pooled = pids(false);
    assert!(pooled.iter().all(|p| p == &pooled[0]), "{pooled:?}");
    let fresh = pids(true);
    let distinct: BTreeSet<u32> = fresh.iter().flatten().copied().collect();
    assert_eq!(distinct.len(), 30, "{fresh:?}");
}

#[test]
fn a_killed_buyer_is_replaced_by_a_new_process() {
    let harness = HarnessConfig::new(common::BIN);
    let mut runner = Runner::new(&harness);
    let mut trial = Trial::new(LockKind::Flock, 2, 2);
    trial.schedule = Schedule::Jitter;
    trial.jitter_us = 0;
    let first = runner.run(&trial, None).expect("trial");
    let mut killing = trial.clone();
    killing.faults = oversell::Faults::parse("kill=1").expect("faults");
    let killed = runner.run(&killing, None).expect("trial");
    assert!(
        killed.run.history.fates.iter().any(|f| f.killed_by_fault),
        "{:?}",
        killed.run.history.fates
    );
    let after = runner.run(&trial, None).expect("trial");
    let pid = |c: &Checked| -> Vec<u32> { c.run.history.fates.iter().map(|f| f.pid).collect() };
    assert_eq!(pid(&first), pid(&killed), "the pool ran the second trial");
    for p in pid(&after) {
        assert!(
            !pid(&first).contains(&p),
            "{:?} then {:?}",
            pid(&first),
            pid(&after)
        );
    }
    assert!(after.violations.is_empty(), "{:?}", after.violations);
}

#[test]
fn a_holder_killed_with_the_pool_is_a_stale_lock_and_leaves_nothing() {
    // `lockfile` names its holder: a holder killed inside the critical section leaves
    // every other buyer blocked on a lock nobody can free.
    let (out, tmp) = explore(&[
        "--lock",
        "lockfile",
        "--schedule",
        "barrier",
        "--faults",
        "kill=0.5",
        "--store",
        "atomic",
        "--jitter-ms",
        "1",
        "--trials",
        "30",
        "--seed",
        "3",
    ]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert!(text(&out).contains("stale_lock"), "{}", text(&out));
    assert_eq!(
        leftover_count(tmp.path()),
        0,
        "{:?}",
        common::leftovers(tmp.path())
    );
}
