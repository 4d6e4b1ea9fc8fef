//! `oversell bench`: detection power and speed, side by side.
//!
//! Three measurements, all in one run on the same machine:
//!
//! - **Throughput.** Wall time per buyer of free-running trials with zero jitter, next to
//!   the raw cost of spawning and waiting as many `oversell __noop` processes
//!   ([`crate::harness::baseline`]): once with the buyer processes reused across trials
//!   (the default pool, one runner across the rounds) and once with new processes for
//!   every trial (`--fresh-processes`). The three are interleaved round by round and each
//!   is the median over the rounds; the ratios are cost per buyer over a raw spawn.
//! - **Controlled speed.** Steps per second of controlled trials through one
//!   [`Runner`](crate::explore::Runner) (which reuses buyer processes), and two-buyer schedules per second of an
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
//!
//! `measure` runs trials and takes the figures; `assess` turns them into the per-lock
//! summary, the targets and the notes; `render` writes the text and JSON.

mod assess;
pub mod jobs;
mod measure;
pub mod pause;
mod render;
pub mod syscall;

use crate::harness::{HarnessConfig, HarnessError, Launcher};
use crate::lock::{LockKind, Soundness};
use crate::scenario::Schedule;
use serde::{Serialize, Serializer};
use std::time::{Duration, Instant};

/// Target: jitter-mode wall time per buyer, with the reused pool, at most this many
/// times the raw spawn cost.
pub const TARGET_RATIO: f64 = 0.5;
/// Target: controlled steps per second, on a quiet machine.
pub const TARGET_STEPS_PER_SEC: f64 = 60_000.0;
/// Target: two-buyer schedules per second, on a quiet machine.
pub const TARGET_SCHEDULES_PER_SEC: f64 = 3_000.0;
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

/// How long a bench runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Mode {
    /// Seconds: few trials per cell.
    Quick,
    /// Minutes: enough trials for the targets.
    Full,
}

impl Mode {
    /// `quick` or `full`.
    pub fn name(self) -> &'static str {
        match self {
            Mode::Quick => "quick",
            Mode::Full => "full",
        }
    }
}

/// What a lock's rows expect: findings, or none.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Aim {
    /// Findings are the point: a broken lock, or one sound only until its holder dies.
    Caught,
    /// Any finding is a false one.
    Clean,
}

impl Aim {
    /// `caught` or `clean`.
    pub fn name(self) -> &'static str {
        match self {
            Aim::Caught => "caught",
            Aim::Clean => "clean",
        }
    }
}

fn lock_name<S: Serializer>(lock: &LockKind, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(lock.name())
}

fn schedule_name<S: Serializer>(schedule: &Schedule, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(schedule.name())
}

/// What to bench, and how hard.
#[derive(Debug, Clone)]
pub struct BenchOptions {
    /// A short run (seconds) or a full one (minutes).
    pub mode: Mode,
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
    /// The jobs `jobs_speedup` compares with one.
    pub jobs: usize,
    /// `jobs_speedup`'s sizes: jitter trials, pct trials, and the preemption bound of its
    /// exhaustive shape.
    pub speedup_sizes: [u64; 3],
    /// How long `paused_trial` freezes each buyer, ms (3 s in both modes).
    pub pause_ms: u32,
}

impl BenchOptions {
    /// The quick or full settings, seeded with `seed`, over every lock.
    pub fn new(quick: bool, seed: u64, harness: HarnessConfig) -> BenchOptions {
        // A Redis lock needs a server: without one its rows are left out (`oversell locks`
        // and `demo` say why), never measured as failures.
        let locks: Vec<LockKind> = LockKind::ALL
            .iter()
            .copied()
            .filter(|k| !k.needs_redis() || crate::harness::redis::available().is_ok())
            .collect();
        if quick {
            BenchOptions {
                mode: Mode::Quick,
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
                jobs: crate::explore::jobs::available(),
                speedup_sizes: [100, 2_000, 2],
                pause_ms: pause::PAUSE_MS,
            }
        } else {
            BenchOptions {
                mode: Mode::Full,
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
                jobs: crate::explore::jobs::available(),
                speedup_sizes: [400, 6_000, 2],
                pause_ms: pause::PAUSE_MS,
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
    /// Median over rounds of a trial's wall time per buyer, in microseconds, with the
    /// buyer processes reused across trials (the default pool).
    pub buyer_us: f64,
    /// Median over rounds of one `oversell __noop` spawn and wait, in microseconds.
    pub raw_spawn_us: f64,
    /// `buyer_us / raw_spawn_us`: the pooled path.
    pub ratio: f64,
    /// Each round's cost per buyer, in microseconds.
    pub rounds_buyer_us: Vec<f64>,
    /// Each round's raw cost per spawn, in microseconds.
    pub rounds_raw_spawn_us: Vec<f64>,
    /// Trials with a finding (a sound lock: should be 0).
    pub findings: u64,
    /// The same trials with new buyer processes for every trial (`--fresh-processes`):
    /// median over rounds of the wall time per buyer, in microseconds.
    pub fresh_buyer_us: f64,
    /// `fresh_buyer_us / raw_spawn_us`.
    pub fresh_ratio: f64,
    /// Each round's fresh cost per buyer, in microseconds.
    pub rounds_fresh_buyer_us: Vec<f64>,
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
    #[serde(serialize_with = "lock_name")]
    pub lock: LockKind,
    /// How far the lock can be trusted.
    pub soundness: Soundness,
    /// The strategy.
    #[serde(serialize_with = "schedule_name")]
    pub schedule: Schedule,
    /// `caught` (findings are the point) or `clean` (any finding is a false one).
    pub expect: Aim,
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
    #[serde(serialize_with = "lock_name")]
    pub lock: LockKind,
    /// How far the lock can be trusted.
    pub soundness: Soundness,
    /// `caught` or `clean`, as its rows.
    pub expect: Aim,
    /// Some strategy found something.
    pub caught: bool,
    /// The strategy with the smallest median time to a first finding.
    pub best_schedule: Option<&'static str>,
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
    pub mode: Mode,
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
    /// Speed under the syscall-level scheduler (absent where system calls cannot be
    /// intercepted).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub syscall: Option<syscall::SyscallSpeed>,
    /// The same trials on one job and on several.
    pub jobs_speedup: jobs::JobsSpeedup,
    /// A paused trial's wall time, with virtual time and with real time.
    pub paused_trial: pause::PausedTrial,
}

/// Runs the bench; `progress` sees one line as each step starts (no figures: those are
/// the report's).
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
        mode: opts.mode,
        seed: opts.seed,
        elapsed_ms: 0,
        throughput: Throughput::default(),
        controlled: Controlled::default(),
        locks: Vec::new(),
        summary: Vec::new(),
        targets: Vec::new(),
        notes: Vec::new(),
        interrupted: None,
        syscall: None,
        jobs_speedup: jobs::JobsSpeedup::default(),
        paused_trial: pause::PausedTrial::default(),
    };
    match stages(opts, &mut report, progress) {
        Ok(()) => {}
        // SIGINT or SIGTERM: the trial's processes are gone; report what ran.
        Err(HarnessError::Interrupted(sig)) => report.interrupted = Some(sig),
        Err(e) => return Err(e),
    }
    report.summary = assess::summarize(&report.locks);
    report.targets = assess::targets(&report);
    report.notes = assess::notes(&report);
    report.elapsed_ms = measure::millis(started.elapsed());
    Ok(report)
}

fn stages(
    opts: &BenchOptions,
    report: &mut BenchReport,
    progress: &mut dyn FnMut(&str),
) -> Result<(), HarnessError> {
    // Progress says what is under way; the figures are the report's, printed once.
    progress("bench: measuring throughput");
    report.throughput = measure::throughput(opts)?;
    progress("bench: measuring controlled speed");
    report.controlled = measure::controlled(opts)?;
    // Part of the controlled stage: no progress line of its own.
    report.syscall = syscall::measure(opts)?;
    progress(&format!(
        "bench: measuring jobs_speedup (1 job vs {})",
        opts.jobs
    ));
    report.jobs_speedup = jobs::measure(opts, opts.jobs)?;
    progress(&format!(
        "bench: measuring paused_trial ({} ms pause, virtual vs real time)",
        opts.pause_ms
    ));
    report.paused_trial = pause::measure(opts)?;
    let cells = opts.locks.len() * strategies().len();
    for (i, &lock) in opts.locks.iter().enumerate() {
        for (j, schedule) in strategies().iter().enumerate() {
            let at = i * strategies().len() + j + 1;
            progress(&format!(
                "bench: detection {at} of {cells}: {} under {}",
                lock.name(),
                schedule.name()
            ));
            report.locks.push(measure::cell(opts, lock, schedule)?);
        }
    }
    Ok(())
}
