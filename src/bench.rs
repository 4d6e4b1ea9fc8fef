//! `oversell bench`: detection power and speed, side by side.
//!
//! Three measurements, all in one run on the same machine:
//!
//! - **Throughput.** Wall time per buyer of free-running trials with zero jitter, next to
//!   the raw cost of spawning and waiting as many `oversell __noop` processes
//!   ([`crate::harness::baseline`]). The two are interleaved round by round and each is
//!   the median over the rounds; their ratio is what the harness adds per buyer.
//! - **Controlled speed.** Steps per second of controlled trials through one
//!   [`Runner`] (which reuses buyer processes), and two-buyer schedules per second of an
//!   exhaustive enumeration.
//! - **Detection.** For each lock × strategy (jitter, barrier, random, pct): trials run,
//!   trials with a finding, and the trials and milliseconds to the first finding (median
//!   over a few seeds); for sound locks, false findings. Locks that fail only when a
//!   holder dies (`lockfile`, `posix-sem`) run with kill faults. Sound locks run half
//!   their trials without faults on the lesson's in-place store and half with kill faults
//!   on the atomic store: a kill between truncate and write tears the in-place store
//!   even under a sound lock, which is a real finding (a lock does not make a write
//!   crash-safe), not a false one.
//!
//! Targets are reported ([`BenchReport::targets`]), never asserted. Rendering returns
//! strings; only `cli` prints them.

use crate::check::FindingKind;
use crate::explore::{self, Checked, Runner};
use crate::harness::{baseline, interrupt, HarnessConfig, HarnessError, Launcher};
use crate::lock::{LockKind, Soundness};
use crate::scenario::{Faults, Schedule, Span, StoreMode, Trial, TrialSpace};
use crate::schedule::Dfs;
use serde::Serialize;
use std::collections::BTreeSet;
use std::fmt::Write as _;
use std::time::{Duration, Instant};

/// Target: jitter-mode wall time per buyer at most this many times the raw spawn cost.
pub const TARGET_RATIO: f64 = 1.2;
/// Target: controlled steps per second.
pub const TARGET_STEPS_PER_SEC: f64 = 15_000.0;
/// Target: two-buyer schedules per second.
pub const TARGET_SCHEDULES_PER_SEC: f64 = 500.0;
/// Target: each broken lock's median time to its first finding, best strategy.
pub const TARGET_FIRST_MS: u64 = 1_000;
/// Target: trials on sound locks (with zero false findings), in a full run.
pub const TARGET_SOUND_TRIALS: u64 = 10_000;

/// PCT's bug depth in the bench.
pub const PCT_DEPTH: u32 = 3;
/// Kill probability per buyer for locks that fail only when a holder dies.
pub const BROKEN_KILL: f64 = 0.5;
/// Kill probability per buyer in the faulted half of a sound lock's trials.
pub const SOUND_KILL: f64 = 0.3;
/// Jitter of free-running detection trials, in microseconds.
pub const FREE_JITTER_US: u64 = 1_000;
/// The preemption bound of the two-buyer enumeration.
pub const SCHEDULE_PREEMPTIONS: u32 = 2;

/// The strategies every lock is benched under.
pub fn strategies() -> [Schedule; 4] {
    [
        Schedule::Jitter,
        Schedule::Barrier,
        Schedule::Random,
        Schedule::Pct { depth: PCT_DEPTH },
    ]
}

/// What to bench, and how hard.
#[derive(Debug, Clone)]
pub struct BenchOptions {
    /// A short run (seconds) rather than a full one (minutes).
    pub quick: bool,
    /// The run's seed; a detection cell's `k`th seed is `seed + k`.
    pub seed: u64,
    /// How trials are run; `exe` must be the oversell binary (the baseline runs
    /// `exe __noop`).
    pub harness: HarnessConfig,
    /// The locks to bench, in order.
    pub locks: Vec<LockKind>,
    /// Seeds per detection cell: the time to a first finding is the median over them.
    pub seeds: u32,
    /// Seeds for cells whose every finding waits out a stale lock (kill faults under
    /// jitter or barrier, about 1.5 s each).
    pub slow_seeds: u32,
    /// Trials per seed in a free-running (jitter, barrier) detection cell.
    pub free_trials: u64,
    /// Trials per seed in a controlled (random, pct) detection cell.
    pub controlled_trials: u64,
    /// Most time one seed of a detection cell may take (the trial under way finishes).
    pub seed_budget: Duration,
    /// Trials per free-running cell of a sound lock.
    pub sound_free_trials: u64,
    /// Trials per controlled cell of a sound lock.
    pub sound_controlled_trials: u64,
    /// Most time one cell of a sound lock may take.
    pub sound_budget: Duration,
    /// Rounds of the throughput measurement (each: trials, then as many raw spawns, or
    /// the other way round).
    pub throughput_rounds: u32,
    /// Trials per throughput round.
    pub throughput_trials: u32,
    /// Buyers (and tickets) per throughput trial.
    pub throughput_buyers: u32,
    /// How long each controlled-speed measurement runs.
    pub speed_budget: Duration,
}

impl BenchOptions {
    /// The quick or full settings, seeded with `seed`, over every lock.
    pub fn new(quick: bool, seed: u64, harness: HarnessConfig) -> BenchOptions {
        let locks = LockKind::ALL.to_vec();
        if quick {
            BenchOptions {
                quick,
                seed,
                harness,
                locks,
                seeds: 3,
                slow_seeds: 1,
                free_trials: 6,
                controlled_trials: 40,
                seed_budget: Duration::from_millis(1_200),
                sound_free_trials: 16,
                sound_controlled_trials: 60,
                sound_budget: Duration::from_secs(2),
                throughput_rounds: 5,
                throughput_trials: 3,
                throughput_buyers: 8,
                speed_budget: Duration::from_millis(1_500),
            }
        } else {
            BenchOptions {
                quick,
                seed,
                harness,
                locks,
                seeds: 5,
                slow_seeds: 3,
                free_trials: 40,
                controlled_trials: 300,
                seed_budget: Duration::from_secs(6),
                sound_free_trials: 500,
                sound_controlled_trials: 1_000,
                sound_budget: Duration::from_secs(300),
                throughput_rounds: 15,
                throughput_trials: 5,
                throughput_buyers: 8,
                speed_budget: Duration::from_secs(5),
            }
        }
    }
}

/// Jitter-mode cost per buyer next to the raw spawn-and-wait cost.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Throughput {
    /// The lock the trials used.
    pub lock: String,
    /// Buyers (and tickets) per trial.
    pub buyers_per_trial: u32,
    /// Trials per round.
    pub trials_per_round: u32,
    /// Rounds measured.
    pub rounds: u32,
    /// Median over rounds of a trial's wall time per buyer, in microseconds.
    pub buyer_us: f64,
    /// Median over rounds of one `oversell __noop` spawn and wait, in microseconds.
    pub raw_spawn_us: f64,
    /// `buyer_us / raw_spawn_us`.
    pub ratio: f64,
    /// Each round's cost per buyer, in microseconds.
    pub rounds_buyer_us: Vec<f64>,
    /// Each round's raw cost per spawn, in microseconds.
    pub rounds_raw_spawn_us: Vec<f64>,
    /// Trials with a finding (a sound lock: should be 0).
    pub findings: u64,
}

/// Controlled-schedule speed.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Controlled {
    /// The lock used.
    pub lock: String,
    /// Random-schedule trials run for the step rate.
    pub trials: u64,
    /// Steps those trials took.
    pub steps: u64,
    /// Wall time of those trials, in milliseconds.
    pub steps_elapsed_ms: u64,
    /// Steps per second.
    pub steps_per_sec: f64,
    /// Two-buyer schedules run (exhaustive, tickets 1 and 2).
    pub schedules: u64,
    /// The enumeration's preemption bound.
    pub preemptions: u32,
    /// Complete enumerations of both shapes.
    pub enumerations: u64,
    /// Wall time of the schedules, in milliseconds.
    pub schedules_elapsed_ms: u64,
    /// Two-buyer schedules per second.
    pub schedules_per_sec: f64,
}

/// One lock under one strategy.
#[derive(Debug, Clone, Serialize)]
pub struct LockRow {
    /// The lock.
    pub lock: String,
    /// How far the lock can be trusted.
    pub soundness: Soundness,
    /// The strategy.
    pub schedule: String,
    /// `caught` (findings are the point) or `clean` (any finding is a false one).
    pub expect: String,
    /// The faults injected.
    pub faults: String,
    /// The store mode.
    pub store: String,
    /// Buyers per trial.
    pub buyers: String,
    /// Tickets per trial.
    pub tickets: String,
    /// Seeds run (`seed`, `seed + 1`, ...).
    pub seeds: u32,
    /// Trials run over all seeds.
    pub trials: u64,
    /// Trials run with kill faults.
    pub fault_trials: u64,
    /// Trials with at least one finding.
    pub detected: u64,
    /// `detected / trials`.
    pub detection_rate: f64,
    /// Median over seeds of the milliseconds from the seed's start to its first finding
    /// (a seed without one counts as never); `null` when most seeds found none.
    pub first_ms: Option<u64>,
    /// Median over seeds of the trials run up to and including the first finding.
    pub trials_to_first: Option<u64>,
    /// Each seed's milliseconds to its first finding.
    pub first_ms_each: Vec<Option<u64>>,
    /// Seeds with a finding.
    pub seeds_caught: u32,
    /// For a lock trusted to exclude: trials with a finding it must not have (for
    /// `lockfile` under kills, anything but `stale_lock`); `null` for broken locks.
    pub false_findings: Option<u64>,
    /// Every finding kind seen.
    pub kinds: Vec<String>,
    /// The token of the first finding, for `oversell replay`.
    pub first_token: Option<String>,
    /// Tokens of (up to three) trials with false findings.
    pub false_tokens: Vec<String>,
    /// Wall time of the cell, in milliseconds.
    pub elapsed_ms: u64,
}

/// One lock over all its strategies.
#[derive(Debug, Clone, Serialize)]
pub struct LockSummary {
    /// The lock.
    pub lock: String,
    /// How far the lock can be trusted.
    pub soundness: Soundness,
    /// `caught` or `clean`, as its rows.
    pub expect: String,
    /// Some strategy found something.
    pub caught: bool,
    /// The strategy with the smallest median time to a first finding.
    pub best_schedule: Option<String>,
    /// That strategy's median milliseconds to a first finding.
    pub best_first_ms: Option<u64>,
    /// That strategy's median trials to a first finding.
    pub best_trials_to_first: Option<u64>,
    /// Trials over all strategies.
    pub trials: u64,
    /// False findings over all strategies (`null` for broken locks).
    pub false_findings: Option<u64>,
}

/// One of the bench's targets, measured.
#[derive(Debug, Clone, Serialize)]
pub struct Target {
    /// What is aimed at.
    pub name: String,
    /// The aim.
    pub target: String,
    /// What this run measured.
    pub measured: String,
    /// Whether the measurement meets the aim.
    pub met: bool,
}

/// The result of `oversell bench`.
#[derive(Debug, Clone, Serialize)]
pub struct BenchReport {
    /// oversell's version.
    pub version: String,
    /// `quick` or `full`.
    pub mode: String,
    /// The run's seed.
    pub seed: u64,
    /// Wall time of the whole bench.
    pub elapsed_ms: u64,
    /// Jitter-mode cost per buyer against raw spawns.
    pub throughput: Throughput,
    /// Controlled-schedule speed.
    pub controlled: Controlled,
    /// Every lock × strategy.
    pub locks: Vec<LockRow>,
    /// Every lock, its best strategy.
    pub summary: Vec<LockSummary>,
    /// The targets, measured.
    pub targets: Vec<Target>,
    /// What the numbers mean, and what could not be caught.
    pub notes: Vec<String>,
    /// Set when SIGINT or SIGTERM stopped the bench early: the signal's number.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub interrupted: Option<i32>,
}

/// Runs the bench; `progress` sees one line per finished step.
pub fn run(
    opts: &BenchOptions,
    progress: &mut dyn FnMut(&str),
) -> Result<BenchReport, HarnessError> {
    if opts.harness.launcher != Launcher::Subcommand {
        return Err(HarnessError::Io(
            "the bench's spawn baseline",
            std::io::Error::other("it needs the oversell binary, not a test binary"),
        ));
    }
    let started = Instant::now();
    let mut report = BenchReport {
        version: env!("CARGO_PKG_VERSION").to_string(),
        mode: if opts.quick { "quick" } else { "full" }.to_string(),
        seed: opts.seed,
        elapsed_ms: 0,
        throughput: Throughput::default(),
        controlled: Controlled::default(),
        locks: Vec::new(),
        summary: Vec::new(),
        targets: Vec::new(),
        notes: Vec::new(),
        interrupted: None,
    };
    match stages(opts, &mut report, progress) {
        Ok(()) => {}
        // SIGINT or SIGTERM: the trial's processes are gone; report what ran.
        Err(HarnessError::Interrupted(sig)) => report.interrupted = Some(sig),
        Err(e) => return Err(e),
    }
    report.summary = summarize(&report.locks);
    report.targets = targets(&report);
    report.notes = notes(&report);
    report.elapsed_ms = millis(started.elapsed());
    Ok(report)
}

fn stages(
    opts: &BenchOptions,
    report: &mut BenchReport,
    progress: &mut dyn FnMut(&str),
) -> Result<(), HarnessError> {
    report.throughput = throughput(opts, progress)?;
    report.controlled = controlled(opts, progress)?;
    for &lock in &opts.locks {
        for schedule in strategies() {
            let row = cell(opts, lock, &schedule)?;
            progress(&format!(
                "{} / {}: {} of {} trials with findings{}",
                row.lock,
                row.schedule,
                row.detected,
                row.trials,
                row.first_ms
                    .map_or(String::new(), |ms| format!(", first after {ms} ms"))
            ));
            report.locks.push(row);
        }
    }
    Ok(())
}

fn millis(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

fn per_sec(count: u64, d: Duration) -> f64 {
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

fn throughput(
    opts: &BenchOptions,
    progress: &mut dyn FnMut(&str),
) -> Result<Throughput, HarnessError> {
    let buyers = opts.throughput_buyers.max(1);
    let per_round = opts.throughput_trials.max(1);
    let spawns = (buyers * per_round) as usize;
    let exe = &opts.harness.exe;
    let mut trial = Trial::new(LockKind::Flock, buyers, buyers);
    trial.schedule = Schedule::Jitter;
    trial.jitter_us = 0;
    let mut findings = 0u64;
    let run_trials = |round: u32, findings: &mut u64| -> Result<Duration, HarnessError> {
        let started = Instant::now();
        for k in 0..per_round {
            check_interrupt()?;
            let mut t = trial.clone();
            t.seed = opts.seed ^ (u64::from(round) << 32 | u64::from(k));
            let c = explore::run_one(&t, &opts.harness)?;
            *findings += u64::from(!c.violations.is_empty());
        }
        Ok(started.elapsed())
    };
    // Warm-up, not counted: the binary and the harness's files into the page cache.
    let mut ignored = 0;
    run_trials(u32::MAX, &mut ignored)?;
    baseline::spawn_wait(exe, buyers as usize).map_err(HarnessError::Spawn)?;

    let mut buyer_us = Vec::new();
    let mut raw_us = Vec::new();
    let per = |d: Duration| d.as_secs_f64() * 1e6 / spawns as f64;
    for round in 0..opts.throughput_rounds.max(1) {
        // Alternate the order so neither side always runs on a warmer machine.
        if round % 2 == 0 {
            buyer_us.push(per(run_trials(round, &mut findings)?));
            check_interrupt()?;
            raw_us.push(per(
                baseline::spawn_wait(exe, spawns).map_err(HarnessError::Spawn)?
            ));
        } else {
            raw_us.push(per(
                baseline::spawn_wait(exe, spawns).map_err(HarnessError::Spawn)?
            ));
            buyer_us.push(per(run_trials(round, &mut findings)?));
        }
    }
    let b = median(&buyer_us);
    let r = median(&raw_us);
    let t = Throughput {
        lock: LockKind::Flock.name().to_string(),
        buyers_per_trial: buyers,
        trials_per_round: per_round,
        rounds: buyer_us.len() as u32,
        buyer_us: b,
        raw_spawn_us: r,
        ratio: if r > 0.0 { b / r } else { 0.0 },
        rounds_buyer_us: buyer_us,
        rounds_raw_spawn_us: raw_us,
        findings,
    };
    progress(&format!(
        "throughput: {:.0} µs per buyer, {:.0} µs per raw spawn, ratio {:.2}",
        t.buyer_us, t.raw_spawn_us, t.ratio
    ));
    Ok(t)
}

fn controlled(
    opts: &BenchOptions,
    progress: &mut dyn FnMut(&str),
) -> Result<Controlled, HarnessError> {
    let lock = LockKind::Flock;
    // Steps per second: random schedules through one runner.
    let mut space = TrialSpace::new(lock);
    space.buyers = Span { lo: 2, hi: 6 };
    space.tickets = Span { lo: 1, hi: 3 };
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
    let steps_elapsed = started.elapsed();
    drop(runner);

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
    progress(&format!(
        "controlled: {:.0} steps/s, {:.0} two-buyer schedules/s",
        c.steps_per_sec, c.schedules_per_sec
    ));
    Ok(c)
}

/// What a cell expects of its lock.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Expect {
    /// Findings are the point.
    Caught,
    /// Any finding is false.
    Clean,
    /// Only `stale_lock` is expected (a lock sound until its holder dies, under kills).
    StaleOnly,
}

impl Expect {
    fn of(lock: LockKind) -> Expect {
        match lock.soundness() {
            Soundness::Broken => Expect::Caught,
            Soundness::SoundUntilCrash => Expect::StaleOnly,
            Soundness::Sound => Expect::Clean,
        }
    }

    fn name(self) -> &'static str {
        match self {
            Expect::Caught | Expect::StaleOnly => "caught",
            Expect::Clean => "clean",
        }
    }

    /// True when a trial with these finding kinds has a false finding.
    fn is_false(self, kinds: &BTreeSet<FindingKind>) -> bool {
        match self {
            Expect::Caught => false,
            Expect::Clean => !kinds.is_empty(),
            Expect::StaleOnly => kinds.iter().any(|k| *k != FindingKind::StaleLock),
        }
    }
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

fn cell(opts: &BenchOptions, lock: LockKind, schedule: &Schedule) -> Result<LockRow, HarnessError> {
    let started = Instant::now();
    let expect = Expect::of(lock);
    let free = !schedule.is_controlled();
    let sound = expect == Expect::Clean;
    // Sound locks: one long seed, half without faults, half with kills.
    let (seeds, trials, budget) = if sound {
        let trials = if free {
            opts.sound_free_trials
        } else {
            opts.sound_controlled_trials
        };
        (1, trials, opts.sound_budget)
    } else {
        let seeds = if free && needs_kills(lock) {
            opts.slow_seeds
        } else {
            opts.seeds
        };
        let trials = if free {
            opts.free_trials
        } else {
            opts.controlled_trials
        };
        (seeds, trials, opts.seed_budget)
    };
    let plain = space_of(lock, schedule, false);
    let faulted = space_of(lock, schedule, true);
    let effective_store =
        |s: &TrialSpace| lock.required_store().unwrap_or(s.store).name().to_string();
    let (faults, store) = if sound {
        (
            format!("none, then kill={SOUND_KILL}"),
            format!(
                "{}, then {}",
                effective_store(&plain),
                effective_store(&faulted)
            ),
        )
    } else if needs_kills(lock) {
        (format!("kill={BROKEN_KILL}"), effective_store(&plain))
    } else {
        ("none".to_string(), effective_store(&plain))
    };

    let mut row = LockRow {
        lock: lock.name().to_string(),
        soundness: lock.soundness(),
        schedule: schedule.name().to_string(),
        expect: expect.name().to_string(),
        faults,
        store,
        buyers: plain.buyers.to_string(),
        tickets: plain.tickets.to_string(),
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
    };
    let mut kinds_seen = BTreeSet::new();
    let mut to_first = Vec::new();
    for k in 0..seeds.max(1) {
        let seed = opts.seed.wrapping_add(u64::from(k));
        let mut runner = Runner::new(&opts.harness);
        let seed_started = Instant::now();
        let mut first: Option<(u64, u64)> = None;
        for index in 0..trials.max(1) {
            if index > 0 && seed_started.elapsed() >= budget {
                break;
            }
            check_interrupt()?;
            let space = if sound && index >= trials / 2 {
                &faulted
            } else {
                &plain
            };
            let trial = space.trial(seed, index);
            let c: Checked = runner.run(&trial, None)?;
            row.trials += 1;
            row.fault_trials += u64::from(!trial.faults.is_none());
            if c.violations.is_empty() {
                continue;
            }
            let kinds: BTreeSet<FindingKind> = c.violations.iter().map(|v| v.kind).collect();
            row.detected += 1;
            if first.is_none() {
                first = Some((index + 1, millis(seed_started.elapsed())));
                if row.first_token.is_none() {
                    row.first_token = Some(c.trial.token());
                }
            }
            if expect.is_false(&kinds) {
                if let Some(n) = row.false_findings.as_mut() {
                    *n += 1;
                }
                if row.false_tokens.len() < 3 {
                    row.false_tokens.push(c.trial.token());
                }
            }
            kinds_seen.extend(kinds);
        }
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

fn summarize(rows: &[LockRow]) -> Vec<LockSummary> {
    let mut out: Vec<LockSummary> = Vec::new();
    for row in rows {
        let i = match out.iter().position(|s| s.lock == row.lock) {
            Some(i) => i,
            None => {
                out.push(LockSummary {
                    lock: row.lock.clone(),
                    soundness: row.soundness,
                    expect: row.expect.clone(),
                    caught: false,
                    best_schedule: None,
                    best_first_ms: None,
                    best_trials_to_first: None,
                    trials: 0,
                    false_findings: row.false_findings.map(|_| 0),
                });
                out.len() - 1
            }
        };
        let s = &mut out[i];
        s.trials += row.trials;
        s.caught |= row.detected > 0;
        if let (Some(total), Some(n)) = (s.false_findings.as_mut(), row.false_findings) {
            *total += n;
        }
        if let Some(ms) = row.first_ms {
            if s.best_first_ms.is_none_or(|best| ms < best) {
                s.best_first_ms = Some(ms);
                s.best_schedule = Some(row.schedule.clone());
                s.best_trials_to_first = row.trials_to_first;
            }
        }
    }
    out
}

fn targets(r: &BenchReport) -> Vec<Target> {
    let mut out = Vec::new();
    let broken: Vec<&LockSummary> = r.summary.iter().filter(|s| s.expect == "caught").collect();
    let missed: Vec<&str> = broken
        .iter()
        .filter(|s| !s.caught)
        .map(|s| s.lock.as_str())
        .collect();
    out.push(Target {
        name: "every broken lock caught".into(),
        target: format!("{} of {}", broken.len(), broken.len()),
        measured: if missed.is_empty() {
            format!("{} of {}", broken.len(), broken.len())
        } else {
            format!(
                "{} of {} (missed: {})",
                broken.len() - missed.len(),
                broken.len(),
                missed.join(", ")
            )
        },
        met: missed.is_empty(),
    });
    let slow: Vec<String> = broken
        .iter()
        .filter(|s| s.best_first_ms.is_none_or(|ms| ms >= TARGET_FIRST_MS))
        .map(|s| match s.best_first_ms {
            Some(ms) => format!("{} {ms} ms", s.lock),
            None => format!("{} never", s.lock),
        })
        .collect();
    let worst = broken.iter().filter_map(|s| s.best_first_ms).max();
    out.push(Target {
        name: "median time to first finding, best strategy, each broken lock".into(),
        target: format!("< {TARGET_FIRST_MS} ms"),
        measured: if slow.is_empty() {
            format!("slowest {} ms", worst.unwrap_or(0))
        } else {
            format!("over: {}", slow.join(", "))
        },
        met: slow.is_empty(),
    });
    let sound: Vec<&LockRow> = r
        .locks
        .iter()
        .filter(|l| l.false_findings.is_some())
        .collect();
    let sound_trials: u64 = sound.iter().map(|l| l.trials).sum();
    let false_findings: u64 = sound.iter().filter_map(|l| l.false_findings).sum();
    out.push(Target {
        name: "false findings on sound locks (kill faults included)".into(),
        target: format!("0 over ≥ {TARGET_SOUND_TRIALS} trials"),
        measured: format!("{false_findings} over {sound_trials} trials"),
        met: false_findings == 0 && sound_trials >= TARGET_SOUND_TRIALS,
    });
    let t = &r.throughput;
    out.push(Target {
        name: "jitter-mode cost per buyer / raw spawn-and-wait".into(),
        target: format!("≤ {TARGET_RATIO}×"),
        measured: format!(
            "{:.2}× ({:.0} µs vs {:.0} µs)",
            t.ratio, t.buyer_us, t.raw_spawn_us
        ),
        met: t.ratio > 0.0 && t.ratio <= TARGET_RATIO,
    });
    let c = &r.controlled;
    out.push(Target {
        name: "controlled steps per second".into(),
        target: format!("≥ {TARGET_STEPS_PER_SEC:.0}"),
        measured: format!("{:.0}", c.steps_per_sec),
        met: c.steps_per_sec >= TARGET_STEPS_PER_SEC,
    });
    out.push(Target {
        name: "two-buyer schedules per second".into(),
        target: format!("≥ {TARGET_SCHEDULES_PER_SEC:.0}"),
        measured: format!("{:.0}", c.schedules_per_sec),
        met: c.schedules_per_sec >= TARGET_SCHEDULES_PER_SEC,
    });
    out
}

fn notes(r: &BenchReport) -> Vec<String> {
    let mut out = vec![
        format!(
            "sound locks run half their trials without faults on the in-place store and \
             half with kill={SOUND_KILL} on the atomic store: a kill between truncate and \
             write tears the in-place store even under a sound lock, a real finding (a lock \
             does not make a write crash-safe), not a false one"
        ),
        format!(
            "lockfile and posix-sem fail only when a holder dies: they run with \
             kill={BROKEN_KILL}; under jitter and barrier each such finding waits out the \
             stale-lock delay (about 1.5 s), under random and pct it is immediate; for \
             lockfile any finding but stale_lock counts as false"
        ),
        "first_ms and trials_to_first are medians over seeds, counted from a fresh runner \
         (buyer processes included); a seed with no finding counts as never"
            .to_string(),
        "throughput: each round runs its trials and as many `oversell __noop` spawns (one \
         after another, each waited for), in alternating order; figures are medians over \
         rounds after one warm-up; a trial's buyers run at once, on every core, while the \
         raw spawns run one at a time"
            .to_string(),
    ];
    let missed: Vec<String> = r
        .locks
        .iter()
        .filter(|l| l.expect == "caught" && l.detected == 0)
        .map(|l| format!("{}/{}", l.lock, l.schedule))
        .collect();
    if !missed.is_empty() {
        out.push(format!(
            "not caught in this run: {} (see the per-lock best strategy)",
            missed.join(", ")
        ));
    }
    if r.locks.iter().any(|l| {
        l.lock == LockKind::Toctou.name() && l.schedule != "jitter" && l.schedule != "barrier"
    }) {
        out.push(
            "toctou's test-then-create happens inside one acquire step, so controlled \
             schedules (random, pct) cannot interleave two buyers inside its gap; only \
             free-running schedules can catch it"
                .to_string(),
        );
    }
    if r.mode == "quick" {
        out.push(format!(
            "quick mode runs few trials: the {TARGET_SOUND_TRIALS}-trial target on sound \
             locks needs a full run"
        ));
    }
    out
}

impl BenchReport {
    /// The report as pretty JSON.
    pub fn to_json(&self) -> String {
        // Serialising plain structs of strings and numbers cannot fail.
        serde_json::to_string_pretty(self).unwrap_or_else(|e| format!("{{\"error\":\"{e}\"}}"))
    }

    /// The report as readable tables.
    pub fn to_text(&self) -> String {
        let mut s = String::new();
        let _ = self.write_text(&mut s);
        s
    }

    fn write_text(&self, s: &mut String) -> std::fmt::Result {
        writeln!(
            s,
            "oversell bench ({}, seed {}): {:.1} s",
            self.mode,
            self.seed,
            self.elapsed_ms as f64 / 1000.0
        )?;
        if let Some(sig) = self.interrupted {
            writeln!(s, "interrupted by signal {sig}: the figures cover what ran")?;
        }
        let t = &self.throughput;
        writeln!(s)?;
        writeln!(
            s,
            "throughput (jitter, zero jitter, {}, {} buyers × {} trials × {} rounds; medians)",
            t.lock, t.buyers_per_trial, t.trials_per_round, t.rounds
        )?;
        writeln!(s, "  wall time per buyer      {:>9.0} µs", t.buyer_us)?;
        writeln!(s, "  raw spawn and wait       {:>9.0} µs", t.raw_spawn_us)?;
        writeln!(
            s,
            "  ratio                    {:>9.2} ×   (target ≤ {TARGET_RATIO})",
            t.ratio
        )?;
        let c = &self.controlled;
        writeln!(s)?;
        writeln!(s, "controlled ({}, reused buyers)", c.lock)?;
        writeln!(
            s,
            "  steps per second         {:>9.0}     ({} steps, {} trials, {} ms; target ≥ {TARGET_STEPS_PER_SEC:.0})",
            c.steps_per_sec, c.steps, c.trials, c.steps_elapsed_ms
        )?;
        writeln!(
            s,
            "  2-buyer schedules/s      {:>9.0}     ({} schedules, ≤ {} preemptions, {} ms; target ≥ {TARGET_SCHEDULES_PER_SEC:.0})",
            c.schedules_per_sec, c.schedules, c.preemptions, c.schedules_elapsed_ms
        )?;
        writeln!(s)?;
        writeln!(s, "detection")?;
        writeln!(
            s,
            "  {:<14} {:<8} {:<7} {:>6} {:>7} {:>8} {:>6} {:>9} {:>7} {:>6}  kinds",
            "lock",
            "schedule",
            "expect",
            "trials",
            "w/kills",
            "detected",
            "rate",
            "first ms",
            "trials",
            "false"
        )?;
        for r in &self.locks {
            writeln!(
                s,
                "  {:<14} {:<8} {:<7} {:>6} {:>7} {:>8} {:>5.0}% {:>9} {:>7} {:>6}  {}",
                r.lock,
                r.schedule,
                r.expect,
                r.trials,
                r.fault_trials,
                r.detected,
                r.detection_rate * 100.0,
                opt(r.first_ms),
                opt(r.trials_to_first),
                opt(r.false_findings),
                r.kinds.join(",")
            )?;
        }
        writeln!(s)?;
        writeln!(
            s,
            "per lock (best strategy: smallest median time to a first finding)"
        )?;
        writeln!(
            s,
            "  {:<14} {:<17} {:<7} {:>7} {:<8} {:>9} {:>7} {:>6}",
            "lock", "soundness", "expect", "caught", "best", "first ms", "trials", "false"
        )?;
        for l in &self.summary {
            let soundness = match l.soundness {
                Soundness::Sound => "sound",
                Soundness::SoundUntilCrash => "sound-until-crash",
                Soundness::Broken => "broken",
            };
            writeln!(
                s,
                "  {:<14} {:<17} {:<7} {:>7} {:<8} {:>9} {:>7} {:>6}",
                l.lock,
                soundness,
                l.expect,
                if l.caught { "yes" } else { "no" },
                l.best_schedule.as_deref().unwrap_or("-"),
                opt(l.best_first_ms),
                opt(l.best_trials_to_first),
                opt(l.false_findings)
            )?;
        }
        writeln!(s)?;
        writeln!(s, "targets (reported, not enforced)")?;
        for t in &self.targets {
            writeln!(
                s,
                "  [{}] {}: {} (target {})",
                if t.met { "met   " } else { "missed" },
                t.name,
                t.measured,
                t.target
            )?;
        }
        writeln!(s)?;
        writeln!(s, "notes")?;
        for n in &self.notes {
            writeln!(s, "  - {n}")?;
        }
        Ok(())
    }
}

fn opt(v: Option<u64>) -> String {
    v.map_or_else(|| "-".to_string(), |v| v.to_string())
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
    fn expectations_follow_soundness() {
        let stale: BTreeSet<_> = [FindingKind::StaleLock].into_iter().collect();
        let overlap: BTreeSet<_> = [FindingKind::Overlap].into_iter().collect();
        assert!(!Expect::of(LockKind::None).is_false(&overlap));
        assert!(Expect::of(LockKind::Flock).is_false(&stale));
        assert!(!Expect::of(LockKind::Lockfile).is_false(&stale));
        assert!(Expect::of(LockKind::Lockfile).is_false(&overlap));
        assert!(!Expect::of(LockKind::Flock).is_false(&BTreeSet::new()));
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
