//! Measuring: throughput against raw spawns, controlled speed, and each detection cell.

use super::assess::Expect;
use super::{
    BenchOptions, Controlled, LockRow, Throughput, BROKEN_KILL, FREE_JITTER_US,
    SCHEDULE_PREEMPTIONS, SOUND_KILL,
};
use crate::check::FindingKind;
use crate::explore::{Checked, Runner};
use crate::harness::{baseline, interrupt, HarnessError};
use crate::lock::LockKind;
use crate::scenario::{Faults, Schedule, Span, Trial, TrialSpace};
use crate::schedule::Dfs;
use crate::store::StoreMode;
use std::collections::BTreeSet;
use std::time::{Duration, Instant};

pub(super) fn millis(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

pub(super) fn per_sec(count: u64, d: Duration) -> f64 {
    let secs = d.as_secs_f64();
    if secs > 0.0 {
        count as f64 / secs
    } else {
        0.0
    }
}

fn check_interrupt() -> Result<(), HarnessError> {
    match interrupt::pending() {
        Some(sig) => Err(HarnessError::Interrupted(sig)),
        None => Ok(()),
    }
}

/// The median of `xs` (the mean of the middle two for an even count); 0 when empty.
fn median(xs: &[f64]) -> f64 {
    let mut v: Vec<f64> = xs.iter().copied().filter(|x| x.is_finite()).collect();
    if v.is_empty() {
        return 0.0;
    }
    v.sort_by(f64::total_cmp);
    let n = v.len();
    if n % 2 == 1 {
        v[n / 2]
    } else {
        (v[n / 2 - 1] + v[n / 2]) / 2.0
    }
}

/// The median of values where `None` means "never": `None` when half or more are never.
fn median_or_never(xs: &[Option<u64>]) -> Option<u64> {
    if xs.is_empty() {
        return None;
    }
    let mut v: Vec<u64> = xs.iter().map(|x| x.unwrap_or(u64::MAX)).collect();
    v.sort_unstable();
    let n = v.len();
    let m = if n % 2 == 1 {
        v[n / 2]
    } else {
        let (a, b) = (v[n / 2 - 1], v[n / 2]);
        if b == u64::MAX {
            u64::MAX
        } else {
            a / 2 + b / 2 + (a % 2 + b % 2) / 2
        }
    };
    (m != u64::MAX).then_some(m)
}

pub(super) fn throughput(opts: &BenchOptions) -> Result<Throughput, HarnessError> {
    let buyers = opts.throughput_buyers.max(1);
    let per_round = opts.throughput_trials.max(1);
    let spawns = (buyers * per_round) as usize;
    let exe = &opts.harness.exe;
    let mut trial = Trial::new(LockKind::Flock, buyers, buyers);
    trial.schedule = Schedule::Jitter;
    trial.jitter_us = 0;
    let mut findings = 0u64;
    // The pooled path: one runner across every round, as one `explore` run keeps its
    // pool across its trials. The fresh path: new buyer processes for every trial.
    let pooled_cfg = opts.harness.clone().with_fresh(false);
    let fresh_cfg = opts.harness.clone().with_fresh(true);
    let mut pooled = Runner::new(&pooled_cfg);
    let mut fresh = Runner::new(&fresh_cfg);
    let run_trials = |runner: &mut Runner<'_>,
                      round: u32,
                      findings: &mut u64|
     -> Result<Duration, HarnessError> {
        let started = Instant::now();
        for k in 0..per_round {
            check_interrupt()?;
            let mut t = trial.clone();
            t.seed = opts.seed ^ (u64::from(round) << 32 | u64::from(k));
            let c = runner.run(&t, None)?;
            *findings += u64::from(!c.violations.is_empty());
        }
        Ok(started.elapsed())
    };
    // Warm-up, not counted: the binary and the harness's files into the page cache, and
    // the pool's processes started.
    let mut ignored = 0;
    run_trials(&mut pooled, u32::MAX, &mut ignored)?;
    run_trials(&mut fresh, u32::MAX, &mut ignored)?;
    baseline::spawn_wait(exe, buyers as usize).map_err(HarnessError::Spawn)?;

    let (mut buyer_us, mut fresh_us, mut raw_us) = (Vec::new(), Vec::new(), Vec::new());
    let per = |d: Duration| d.as_secs_f64() * 1e6 / spawns as f64;
    for round in 0..opts.throughput_rounds.max(1) {
        // Rotate the order so no side always runs on a warmer machine.
        for side in 0..3 {
            check_interrupt()?;
            match (side + round) % 3 {
                0 => buyer_us.push(per(run_trials(&mut pooled, round, &mut findings)?)),
                1 => fresh_us.push(per(run_trials(&mut fresh, round, &mut findings)?)),
                _ => raw_us.push(per(
                    baseline::spawn_wait(exe, spawns).map_err(HarnessError::Spawn)?
                )),
            }
        }
    }
    let (b, f, r) = (median(&buyer_us), median(&fresh_us), median(&raw_us));
    let ratio = |x: f64| if r > 0.0 { x / r } else { 0.0 };
    let t = Throughput {
        lock: LockKind::Flock.name().to_string(),
        buyers_per_trial: buyers,
        trials_per_round: per_round,
        rounds: buyer_us.len() as u32,
        buyer_us: b,
        raw_spawn_us: r,
        ratio: ratio(b),
        rounds_buyer_us: buyer_us,
        rounds_raw_spawn_us: raw_us,
        findings,
        fresh_buyer_us: f,
        fresh_ratio: ratio(f),
        rounds_fresh_buyer_us: fresh_us,
    };
    Ok(t)
}

/// Random-schedule trials from `space` through one runner until the speed budget is
/// spent (one at the least): how many ran, the steps they took, and the time they took.
pub(super) fn random_steps(
    opts: &BenchOptions,
    mut space: TrialSpace,
) -> Result<(u64, u64, Duration), HarnessError> {
    space.schedule = Schedule::Random;
    let mut runner = Runner::new(&opts.harness);
    let started = Instant::now();
    let (mut trials, mut steps) = (0u64, 0u64);
    while trials == 0 || started.elapsed() < opts.speed_budget {
        check_interrupt()?;
        let c = runner.run(&space.trial(opts.seed, trials), None)?;
        trials += 1;
        steps += c
            .run
            .schedule
            .as_ref()
            .map_or(0, |s| s.choices.len() as u64);
    }
    Ok((trials, steps, started.elapsed()))
}

pub(super) fn controlled(opts: &BenchOptions) -> Result<Controlled, HarnessError> {
    let lock = LockKind::Flock;
    // Steps per second: random schedules through one runner.
    let mut space = TrialSpace::new(lock);
    space.buyers = Span { lo: 2, hi: 6 };
    space.tickets = Span { lo: 1, hi: 3 };
    let (trials, steps, steps_elapsed) = random_steps(opts, space)?;

    // Two-buyer schedules per second: exhaustive enumeration, tickets 1 then 2, again
    // and again until the budget is spent.
    let mut runner = Runner::new(&opts.harness);
    let mut trial = Trial::new(lock, 2, 1);
    trial.schedule = Schedule::Exhaustive {
        preemptions: SCHEDULE_PREEMPTIONS,
    };
    trial.seed = opts.seed;
    let started = Instant::now();
    let (mut schedules, mut enumerations) = (0u64, 0u64);
    'outer: loop {
        for tickets in 1..=2 {
            trial.tickets = tickets;
            let mut prefix = Some(Vec::new());
            while let Some(p) = prefix {
                if schedules > 0 && started.elapsed() >= opts.speed_budget {
                    break 'outer;
                }
                check_interrupt()?;
                let mut dfs = Dfs::new(p, SCHEDULE_PREEMPTIONS);
                runner.run(&trial, Some(&mut dfs))?;
                schedules += 1;
                prefix = dfs.next();
            }
        }
        enumerations += 1;
    }
    let schedules_elapsed = started.elapsed();
    let c = Controlled {
        lock: lock.name().to_string(),
        trials,
        steps,
        steps_elapsed_ms: millis(steps_elapsed),
        steps_per_sec: per_sec(steps, steps_elapsed),
        schedules,
        preemptions: SCHEDULE_PREEMPTIONS,
        enumerations,
        schedules_elapsed_ms: millis(schedules_elapsed),
        schedules_per_sec: per_sec(schedules, schedules_elapsed),
    };
    Ok(c)
}

/// True for locks that fail only when a holder dies: they run with kill faults.
fn needs_kills(lock: LockKind) -> bool {
    matches!(lock, LockKind::Lockfile | LockKind::PosixSem)
}

/// The trial space of a cell; `faulted` picks the kill-fault half of a sound lock's trials.
fn space_of(lock: LockKind, schedule: &Schedule, faulted: bool) -> TrialSpace {
    let mut space = TrialSpace::new(lock);
    space.schedule = schedule.clone();
    if schedule.is_controlled() {
        space.buyers = Span { lo: 2, hi: 6 };
        space.tickets = Span { lo: 1, hi: 3 };
    } else {
        space.buyers = Span { lo: 2, hi: 16 };
        space.tickets = Span { lo: 1, hi: 8 };
        space.jitter_us = FREE_JITTER_US;
    }
    if needs_kills(lock) {
        space.faults = Faults {
            kill: BROKEN_KILL,
            ..Faults::default()
        };
        space.store = StoreMode::Atomic;
    } else if faulted {
        space.faults = Faults {
            kill: SOUND_KILL,
            ..Faults::default()
        };
        space.store = StoreMode::Atomic;
    }
    space
}

/// How one detection cell runs: its seeds, trials per seed, and time per seed.
struct Plan {
    expect: Expect,
    seeds: u32,
    trials: u64,
    budget: Duration,
    plain: TrialSpace,
    faulted: TrialSpace,
}

impl Plan {
    fn of(opts: &BenchOptions, lock: LockKind, schedule: &Schedule) -> Plan {
        let expect = Expect::of(lock);
        let free = !schedule.is_controlled();
        let pick = |free_n: u64, controlled_n: u64| if free { free_n } else { controlled_n };
        // Sound locks: one long seed, half without faults, half with kills.
        let (seeds, trials, budget) = if expect == Expect::Clean {
            let trials = pick(opts.sound_free_trials, opts.sound_controlled_trials);
            (1, trials, opts.sound_budget)
        } else {
            let seeds = if free && needs_kills(lock) {
                opts.slow_seeds
            } else {
                opts.seeds
            };
            let trials = pick(opts.free_trials, opts.controlled_trials);
            (seeds, trials, opts.seed_budget)
        };
        Plan {
            expect,
            seeds,
            trials,
            budget,
            plain: space_of(lock, schedule, false),
            faulted: space_of(lock, schedule, true),
        }
    }

    fn sound(&self) -> bool {
        self.expect == Expect::Clean
    }

    /// The `index`th trial's space: a sound lock's second half runs with kills.
    fn space(&self, index: u64) -> &TrialSpace {
        if self.sound() && index >= self.trials / 2 {
            &self.faulted
        } else {
            &self.plain
        }
    }

    /// The faults and the store a cell's row names.
    fn faults_and_store(&self, lock: LockKind) -> (String, String) {
        let store = |s: &TrialSpace| lock.required_store().unwrap_or(s.store).name().to_string();
        if self.sound() {
            (
                format!("none, then kill={SOUND_KILL}"),
                format!("{}, then {}", store(&self.plain), store(&self.faulted)),
            )
        } else if needs_kills(lock) {
            (format!("kill={BROKEN_KILL}"), store(&self.plain))
        } else {
            ("none".to_string(), store(&self.plain))
        }
    }
}

/// An empty row for `lock` under `schedule`.
fn empty_row(lock: LockKind, schedule: &Schedule, plan: &Plan) -> LockRow {
    let (faults, store) = plan.faults_and_store(lock);
    LockRow {
        lock,
        soundness: lock.soundness(),
        schedule: schedule.clone(),
        expect: plan.expect.aim(),
        faults,
        store,
        buyers: plan.plain.buyers.to_string(),
        tickets: plan.plain.tickets.to_string(),
        seeds: 0,
        trials: 0,
        fault_trials: 0,
        detected: 0,
        detection_rate: 0.0,
        first_ms: None,
        trials_to_first: None,
        first_ms_each: Vec::new(),
        seeds_caught: 0,
        false_findings: lock.is_sound().then_some(0),
        kinds: Vec::new(),
        first_token: None,
        false_tokens: Vec::new(),
        elapsed_ms: 0,
    }
}

/// One lock under one strategy: every seed of its plan.
pub(super) fn cell(
    opts: &BenchOptions,
    lock: LockKind,
    schedule: &Schedule,
) -> Result<LockRow, HarnessError> {
    let started = Instant::now();
    let plan = Plan::of(opts, lock, schedule);
    let mut row = empty_row(lock, schedule, &plan);
    let mut kinds_seen = BTreeSet::new();
    let mut to_first = Vec::new();
    for k in 0..plan.seeds.max(1) {
        let seed = opts.seed.wrapping_add(u64::from(k));
        let first = run_seed(opts, &plan, seed, &mut row, &mut kinds_seen)?;
        row.seeds += 1;
        row.seeds_caught += u32::from(first.is_some());
        row.first_ms_each.push(first.map(|f| f.1));
        to_first.push(first.map(|f| f.0));
    }
    row.detection_rate = if row.trials > 0 {
        row.detected as f64 / row.trials as f64
    } else {
        0.0
    };
    row.first_ms = median_or_never(&row.first_ms_each);
    row.trials_to_first = median_or_never(&to_first);
    row.kinds = kinds_seen.iter().map(|k| k.name().to_string()).collect();
    row.elapsed_ms = millis(started.elapsed());
    Ok(row)
}

/// Runs one seed of a cell into `row`; returns the trials and milliseconds to its first
/// finding, if it had one.
fn run_seed(
    opts: &BenchOptions,
    plan: &Plan,
    seed: u64,
    row: &mut LockRow,
    kinds_seen: &mut BTreeSet<FindingKind>,
) -> Result<Option<(u64, u64)>, HarnessError> {
    let mut runner = Runner::new(&opts.harness);
    let started = Instant::now();
    let mut first: Option<(u64, u64)> = None;
    for index in 0..plan.trials.max(1) {
        if index > 0 && started.elapsed() >= plan.budget {
            break;
        }
        check_interrupt()?;
        let trial = plan.space(index).trial(seed, index);
        let c: Checked = runner.run(&trial, None)?;
        row.trials += 1;
        row.fault_trials += u64::from(!trial.faults.is_none());
        if c.violations.is_empty() {
            continue;
        }
        let kinds: BTreeSet<FindingKind> = c.violations.iter().map(|v| v.kind).collect();
        row.detected += 1;
        if first.is_none() {
            first = Some((index + 1, millis(started.elapsed())));
            row.first_token.get_or_insert_with(|| c.trial.token());
        }
        if plan.expect.is_false(&kinds) {
            if let Some(n) = row.false_findings.as_mut() {
                *n += 1;
            }
            if row.false_tokens.len() < 3 {
                row.false_tokens.push(c.trial.token());
            }
        }
        kinds_seen.extend(kinds);
    }
    Ok(first)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn medians_count_misses_as_never() {
        assert_eq!(median_or_never(&[Some(5), None, Some(3)]), Some(5));
        assert_eq!(median_or_never(&[Some(5), None, None]), None);
        assert_eq!(median_or_never(&[Some(4), Some(6)]), Some(5));
        assert_eq!(median_or_never(&[Some(4), None]), None);
        assert_eq!(median_or_never(&[]), None);
        assert_eq!(median(&[3.0, 1.0, 2.0]), 2.0);
        assert_eq!(median(&[1.0, 2.0, 3.0, 4.0]), 2.5);
        assert_eq!(median(&[]), 0.0);
    }

    #[test]
    fn kill_only_locks_run_with_kills_on_the_atomic_store() {
        for lock in [LockKind::Lockfile, LockKind::PosixSem] {
            let s = space_of(lock, &Schedule::Jitter, false);
            assert_eq!(s.faults.kill, BROKEN_KILL);
            assert_eq!(s.store, StoreMode::Atomic);
        }
        let plain = space_of(LockKind::Flock, &Schedule::Random, false);
        assert!(plain.faults.is_none());
        assert_eq!(plain.store, StoreMode::InPlace);
        let faulted = space_of(LockKind::Flock, &Schedule::Random, true);
        assert_eq!(faulted.faults.kill, SOUND_KILL);
        assert_eq!(faulted.store, StoreMode::Atomic);
    }
}
