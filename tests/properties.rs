//! Properties over many generated trials, run as real processes.
//!
//! - Every sound lock gives no finding, for any trial.
//! - With no lock, under the barrier (every read before any write, the lesson's long
//!   sleep made exact), the race is caught every time: deterministic by construction.

use oversell::explore::run_one;
use oversell::scenario::{Schedule, Trial};
use oversell::{FindingKind, HarnessConfig, LockKind};
use proptest::prelude::*;

fn harness() -> HarnessConfig {
    HarnessConfig::new(env!("CARGO_BIN_EXE_oversell"))
}

fn sound_lock() -> impl Strategy<Value = LockKind> {
    prop::sample::select(
        LockKind::ALL
            .iter()
            .copied()
            .filter(|k| k.is_sound())
            .collect::<Vec<_>>(),
    )
}

fn schedule() -> impl Strategy<Value = Schedule> {
    prop_oneof![Just(Schedule::Jitter), Just(Schedule::Barrier)]
}

proptest! {
    #![proptest_config(ProptestConfig {
        cases: 48,
        max_shrink_iters: 32,
        ..ProptestConfig::default()
    })]

    #[test]
    fn sound_locks_never_oversell(
        lock in sound_lock(),
        buyers in 1u32..=12,
        tickets in 0u32..=8,
        jitter_us in 0u64..=3_000,
        seed in any::<u64>(),
        schedule in schedule(),
    ) {
        let mut trial = Trial::new(lock, buyers, tickets);
        trial.jitter_us = jitter_us;
        trial.seed = seed;
        trial.schedule = schedule;
        let checked = run_one(&trial, &harness()).map_err(|e| TestCaseError::fail(e.to_string()))?;
        prop_assert!(
            checked.violations.is_empty(),
            "{} found {:?}",
            trial.token(),
            checked.violations
        );
    }

    #[test]
    fn no_lock_under_the_barrier_is_always_caught(
        buyers in 2u32..=12,
        tickets in 1u32..=8,
        jitter_us in 0u64..=3_000,
        seed in any::<u64>(),
    ) {
        let mut trial = Trial::new(LockKind::None, buyers, tickets);
        trial.jitter_us = jitter_us;
        trial.seed = seed;
        trial.schedule = Schedule::Barrier;
        let checked = run_one(&trial, &harness()).map_err(|e| TestCaseError::fail(e.to_string()))?;
        let kinds: Vec<FindingKind> = checked.violations.iter().map(|v| v.kind).collect();
        // Every buyer read the same count before anyone wrote: all claim one ticket.
        prop_assert!(kinds.contains(&FindingKind::DoubleSale), "{}: {:?}", trial.token(), kinds);
        if buyers > tickets {
            prop_assert!(kinds.contains(&FindingKind::Oversold), "{}: {:?}", trial.token(), kinds);
        }
    }
}
