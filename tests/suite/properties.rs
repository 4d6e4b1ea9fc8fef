//! Properties over many generated trials, run as real processes.
//!
//! - Every sound lock gives no finding, for any trial.
//! - With no lock, under the barrier (every read before any write, the lesson's long
//!   sleep made exact), the race is caught every time: deterministic by construction.

use oversell::testing::{run_one, HarnessConfig};
use oversell::{FindingKind, LockKind, Schedule, Trial};
use proptest::prelude::*;

fn harness() -> HarnessConfig {
    HarnessConfig::new(env!("CARGO_BIN_EXE_oversell"))
}

fn sound_lock() -> impl Strategy<Value = LockKind> {
    prop::sample::select(
        LockKind::ALL
            .iter()
            .copied()
            .filter(|k| k.is_sound() && !k.needs_redis())
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

fn any_schedule() -> impl Strategy<Value = Schedule> {
    prop_oneof![
        Just(Schedule::Jitter),
        Just(Schedule::Barrier),
        Just(Schedule::Random),
        (1u32..=10).prop_map(|depth| Schedule::Pct { depth }),
        (0u32..=10).prop_map(|preemptions| Schedule::Exhaustive { preemptions }),
    ]
}

fn any_kinds() -> impl Strategy<Value = Vec<FindingKind>> {
    prop::collection::vec(prop::sample::select(FindingKind::ALL.to_vec()), 0..4).prop_map(
        |mut kinds| {
            kinds.sort_unstable();
            kinds.dedup();
            kinds
        },
    )
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    /// Every trial within the limits prints a token that decodes back to it, and prints
    /// the same token again.
    #[test]
    fn tokens_round_trip(
        lock in prop::sample::select(LockKind::ALL.to_vec()),
        buyers in 1u32..=256,
        tickets in 0u32..=1_000_000,
        jitter_us in 0u64..=10_000_000,
        seed in any::<u64>(),
        schedule in any_schedule(),
        kill in 0u32..=1000,
        stop in 0u32..=1000,
        stop_ms in 0u32..=60_000,
        steps in prop::collection::vec(0u32..4, 0..40),
        found in any_kinds(),
    ) {
        let mut t = Trial::new(lock, buyers, tickets);
        t.jitter_us = jitter_us;
        t.seed = seed;
        t.faults.kill = f64::from(kill) / 1000.0;
        t.faults.stop = f64::from(stop) / 1000.0;
        t.faults.stop_ms = if stop > 0 { stop_ms } else { 0 };
        if schedule.is_controlled() && !steps.is_empty() {
            t.choices = Some(steps.iter().map(|s| s % buyers).collect());
        }
        t.schedule = schedule;
        t.found = found;
        let token = t.token();
        let back = Trial::from_token(&token).map_err(|e| TestCaseError::fail(e.to_string()))?;
        prop_assert_eq!(&back, &t);
        prop_assert_eq!(back.token(), token);
    }

    /// Any string decodes or is refused with one line; none panics.
    #[test]
    fn any_text_decodes_or_is_refused_in_one_line(text in "ov1\\.[a-z]{0,6}(\\.[a-zA-Z][0-9a-fx+_-]{0,14}){0,8}") {
        if let Err(e) = Trial::from_token(&text) {
            prop_assert_eq!(e.to_string().lines().count(), 1);
        }
    }
}
