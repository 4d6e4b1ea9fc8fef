//! The explorer: many trials, each checked; failing controlled trials shrunk to a minimal
//! counterexample; findings collected into a [`Report`].
//!
//! A run stops at its first failing trial, after shrinking it (the report says so in
//! [`Report::stopped_early`]); [`ExploreConfig::keep_going`] runs every trial. [`verdict`]
//! judges whether a replayed finding came back, for `replay` and `gate` alike.

pub mod checkpoint;
mod exhaustive;
pub mod jobs;
pub mod progress;
mod shrink;
mod split;
pub mod verdict;
mod why;

pub use shrink::{shrink_until, Shrunk};
pub use why::explain;

use crate::check::{check, FindingKind, Observation, Violation};
use crate::harness::{self, FreePool, HarnessConfig, HarnessError, Session, TrialRun};
use crate::report::{Finding, Report, StoppedEarly};
use crate::scenario::{Schedule, Trial, TrialSpace};
use crate::schedule::Scheduler;
use std::collections::BTreeSet;
use std::time::{Duration, Instant};

/// What to explore.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct ExploreConfig {
    /// The space trials are drawn from.
    pub space: TrialSpace,
    /// How many trials (under `exhaustive`: schedules, at most) to run.
    pub trials: u64,
    /// The run's seed.
    pub seed: u64,
    /// Stop early once this much time is spent.
    pub time_budget: Option<Duration>,
    /// Shrink failing controlled trials before reporting them.
    pub shrink: bool,
    /// Explain the failing trial a run stops at (its racing pair, `why::explain`); not done
    /// when the run keeps going.
    pub explain: bool,
    /// Run every trial even after one fails (the demo does, to count them). When false,
    /// the default, the run stops at its first failing trial, after shrinking it, as
    /// proptest does. Under `exhaustive`, keeping going also means not shrinking.
    pub keep_going: bool,
    /// Run only shard K of N (1-based): trial `i` when `i mod N = K − 1`.
    pub shard: Option<(u64, u64)>,
    /// How trials are run.
    pub harness: HarnessConfig,
    /// How many jobs run trials side by side (each with its own buyer processes); the
    /// results do not depend on it.
    pub jobs: usize,
    /// Under `exhaustive`: counts each schedule as it ends, on whichever job (a progress
    /// line reads it); `each` then sees only the runs a report records, and the first.
    pub ticks: Option<std::sync::Arc<std::sync::atomic::AtomicU64>>,
    /// Under `exhaustive`: where the search stands (shapes, parts, executions), for a
    /// progress line.
    pub search_progress: Option<std::sync::Arc<progress::SearchProgress>>,
    /// Under `exhaustive`: the frontier to resume from and to keep (`--checkpoint`).
    pub checkpoint: Option<checkpoint::Checkpoint>,
    /// Under `exhaustive`: run one schedule per class of schedules that differ only in
    /// the order of independent steps (partial-order reduction). False runs every
    /// schedule within the bound.
    pub reduction: bool,
}

impl ExploreConfig {
    /// A config for `trials` trials of `space` under `seed`.
    pub fn new(space: TrialSpace, trials: u64, seed: u64, harness: HarnessConfig) -> Self {
        ExploreConfig {
            space,
            trials,
            seed,
            time_budget: None,
            shrink: true,
            explain: true,
            keep_going: false,
            shard: None,
            harness,
            reduction: true,
            jobs: 1,
            checkpoint: None,
            ticks: None,
            search_progress: None,
        }
    }
}

/// One trial's run and verdict.
#[derive(Debug, Clone)]
pub struct Checked {
    /// The trial (under a controlled schedule, with the steps it took).
    pub trial: Trial,
    /// What the harness collected.
    pub run: TrialRun,
    /// What the checker found.
    pub violations: Vec<Violation>,
    /// Set when this run is the result of shrinking a failing trial: from what, to what.
    pub shrunk: Option<Shrunk>,
    /// Why its finding happened, once explained (`why::explain`).
    pub why: Option<crate::report::Why>,
    /// Set when the trial stalled (a `hang`) under a controlled schedule and ran on when
    /// it was run again ([`Runner::run`]): what the stall was, and how the second run
    /// went. The stall is no finding, and the run says "not verified"; a trial run again
    /// whole keeps that run's findings.
    pub unconfirmed: Option<String>,
}

impl Checked {
    fn new(trial: &Trial, run: TrialRun) -> Checked {
        // A schedule that did not fit the program was not run to the end: there is
        // nothing to check, and its callers treat the divergence itself.
        let violations = if run.schedule.as_ref().is_some_and(|r| r.diverged.is_some()) {
            Vec::new()
        } else {
            check(&Observation {
                tickets: trial.tickets,
                // Fresh buyers after a power cut are numbered after the trial's own.
                buyers: trial.buyers
                    + run
                        .history
                        .power_cut
                        .as_ref()
                        .map_or(0, |c| c.fresh.len() as u32),
                history: &run.history,
                final_store: run.final_store.as_ref(),
                leaked: run.leaked,
            })
        };
        let mut trial = trial.clone();
        if let Some(rec) = &run.schedule {
            if rec.diverged.is_none() {
                trial.choices = Some(rec.choices.clone());
            }
        }
        Checked {
            trial,
            run,
            violations,
            shrunk: None,
            why: None,
            unconfirmed: None,
        }
    }

    /// Set when the trial followed steps that no longer fit the program.
    pub fn diverged(&self) -> Option<&crate::schedule::Diverged> {
        self.run.schedule.as_ref().and_then(|r| r.diverged.as_ref())
    }

    fn kinds(&self) -> BTreeSet<FindingKind> {
        self.violations.iter().map(|v| v.kind).collect()
    }
}

/// Runs one trial and checks it.
pub fn run_one(trial: &Trial, harness: &HarnessConfig) -> Result<Checked, HarnessError> {
    let run = harness::run(trial, harness)?;
    Ok(Checked::new(trial, run))
}

/// Keeps one `harness::Session` of reusable buyers across controlled trials, and one
/// `harness::FreePool` across free-running ones.
pub struct Runner<'h> {
    harness: &'h HarnessConfig,
    session: Option<Session>,
    pool: Option<FreePool>,
}

impl<'h> Runner<'h> {
    /// A runner with no session yet.
    pub fn new(harness: &'h HarnessConfig) -> Runner<'h> {
        Runner {
            harness,
            session: None,
            pool: None,
        }
    }

    /// Runs `trial`; controlled trials follow `scheduler` (or the trial's own strategy).
    ///
    /// A `hang` is the one finding a wall clock decides: a buyer that did not reach its
    /// next step in time. Under a controlled schedule it is believed only when it comes
    /// back: the trial is run again — whole when it follows its own strategy (the same
    /// seed draws the same steps), else on the steps it took — and a stall that does not
    /// recur is no finding; the run says "not verified" ([`Checked::unconfirmed`],
    /// [`Report::unconfirmed`]): what stalled it was the machine, or a wait oversell
    /// does not see, and neither proves the lock wrong or right. A trial run again whole
    /// keeps what that run found.
    pub fn run(
        &mut self,
        trial: &Trial,
        scheduler: Option<&mut dyn Scheduler>,
    ) -> Result<Checked, HarnessError> {
        // The trial's own strategy draws the same steps again from its seed: a stalled
        // run of it can be run again whole, not only as far as it stalled.
        let own = scheduler.is_none() && trial.choices.is_none();
        let mut checked = self.run_once(trial, scheduler)?;
        if !stalled_under_control(&checked) {
            return Ok(checked);
        }
        let stall = checked
            .violations
            .iter()
            .map(|v| v.detail.clone())
            .collect::<Vec<_>>()
            .join("; ");
        // Whole, or as far as the steps it took.
        let (how, mut again) = if own {
            ("whole", self.run_once(trial, None)?)
        } else {
            ("on its steps", self.run_once(&checked.trial, None)?)
        };
        let ran_on = again.diverged().is_none();
        if ran_on && again.kinds().contains(&FindingKind::Hang) {
            // It came back: the run that found more is kept.
            let more = again.kinds().len() > checked.kinds().len();
            return Ok(if more { again } else { checked });
        }
        if ran_on {
            // It ran to the end: its verdict is the trial's, and the stall is said.
            let kinds = again.kinds();
            let found = match kinds.is_empty() {
                true => "clean".to_string(),
                false => kinds
                    .iter()
                    .map(|k| k.to_string())
                    .collect::<Vec<_>>()
                    .join(", "),
            };
            again.unconfirmed = Some(format!("{stall}; run again {how}, {found}"));
            if !own {
                // A search's scheduler learnt the stalled run, not this one: what came
                // after the stall is not in its tree.
                note_stall(&mut again);
            }
            return Ok(again);
        }
        let after = again
            .diverged()
            .map_or(String::new(), |d| format!(" ({d})"));
        checked.violations.clear();
        checked.unconfirmed = Some(format!("{stall}; run again {how}, it ran on{after}"));
        note_stall(&mut checked);
        Ok(checked)
    }

    /// Runs `trial` once, as [`Runner::run`] without the second look at a stall (a
    /// replay counts recurrences itself).
    pub fn run_once(
        &mut self,
        trial: &Trial,
        scheduler: Option<&mut dyn Scheduler>,
    ) -> Result<Checked, HarnessError> {
        if let Some(why) = trial.crash_refused() {
            return Err(HarnessError::Refused(why));
        }
        let engine = harness::Engine::of(trial, self.harness);
        let run = match engine {
            harness::Engine::SystemCalls => harness::run_syscall(trial, self.harness, scheduler)?,
            harness::Engine::Steps => {
                let session = reuse(
                    &mut self.session,
                    |s| s.healthy() && s.fits(trial),
                    || Session::new(trial.lock(), trial.store, self.harness),
                )?;
                match scheduler {
                    Some(s) => session.run(trial, s)?,
                    None => {
                        let mut own = crate::schedule::for_trial(trial);
                        session.run(trial, &mut *own)?
                    }
                }
            }
            harness::Engine::Pool => {
                let pool = reuse(
                    &mut self.pool,
                    |p| p.healthy() && p.fits(trial),
                    || FreePool::new(trial, self.harness),
                )?;
                pool.run(trial)?
            }
            harness::Engine::BuyerCommand | harness::Engine::Free => {
                harness::run_on(engine, trial, self.harness)?
            }
        };
        Ok(Checked::new(trial, run))
    }
}

/// Marks `c` as a run a search cannot count as searched ([`crate::report::Verified`]
/// says not verified): a stall came before the schedule's end.
fn note_stall(c: &mut Checked) {
    let note = crate::report::STALL_UNREPEATED.to_string();
    if !c.run.history.unordered.contains(&note) {
        c.run.history.unordered.push(note);
    }
}

/// A controlled trial whose only findings are `hang`s: a stall a wall clock decided.
fn stalled_under_control(c: &Checked) -> bool {
    c.run.schedule.is_some()
        && c.trial.choices.is_some()
        && !c.violations.is_empty()
        && c.violations.iter().all(|v| v.kind == FindingKind::Hang)
}

/// The session or pool in `slot` when `fits` says it can run the next trial; else a new
/// one from `open`, the old one (and its processes) ended first.
fn reuse<T>(
    slot: &mut Option<T>,
    fits: impl FnOnce(&T) -> bool,
    open: impl FnOnce() -> Result<T, HarnessError>,
) -> Result<&mut T, HarnessError> {
    let kept = match slot.take() {
        Some(t) if fits(&t) => t,
        old => {
            drop(old);
            open()?
        }
    };
    Ok(slot.insert(kept))
}

/// Shrinks a failing trial; when SIGINT or SIGTERM cuts the shrink short, the failure
/// as found is recorded first, so the partial report still holds it and its token.
fn shrink_or_keep(
    runner: &mut Runner<'_>,
    checked: Checked,
    cfg: &ExploreConfig,
    report: &mut Report,
    index: u64,
    each: &mut dyn FnMut(u64, &Checked, &[Finding]),
    deadline: Option<Instant>,
) -> Result<Checked, HarnessError> {
    match shrink_until(
        runner,
        checked.clone(),
        floor(cfg),
        deadline,
        same_seed_jobs(&cfg.space.target, cfg.jobs),
    ) {
        Err(HarnessError::Interrupted(sig)) => {
            record(report, index, &checked, each);
            Err(HarnessError::Interrupted(sig))
        }
        // The trial's stall, said of the trial however small its finding shrank.
        Ok(mut shrunk) => {
            if shrunk.unconfirmed.is_none() {
                shrunk.unconfirmed = checked.unconfirmed;
            }
            Ok(shrunk)
        }
        other => other,
    }
}

fn floor(cfg: &ExploreConfig) -> (u32, u32) {
    (cfg.space.buyers.lo, cfg.space.tickets.lo)
}

fn findings_of(c: &Checked, index: u64) -> Vec<Finding> {
    let mut findings = c.trial.findings(&c.violations, index);
    for f in &mut findings {
        f.why = c.why.clone();
    }
    findings
}

/// Explains a failing trial when the run asks for it; a SIGINT or SIGTERM during the
/// explanation leaves the finding unexplained rather than lost (the caller records it,
/// then ends the run as interrupted: [`interrupted`]).
pub(super) fn explained(runner: &mut Runner<'_>, mut c: Checked, cfg: &ExploreConfig) -> Checked {
    if cfg.explain && !c.violations.is_empty() {
        c.why = explain(runner, &c).ok().flatten();
    }
    c
}

/// How many of `jobs` may run schedules of one trial of `target` side by side (a
/// search's schedules, a shrink's candidates, a replay's attempts): one for a whole
/// program. They share the trial's seed, so the
/// program draws the same random names in each (its entropy comes from the seed, for
/// exact replay); two at once would collide in what the machine shares by name (a
/// `multiprocessing.Lock` is a named semaphore in `/dev/shm`, made under a random name
/// with `O_EXCL`), and the loser's retry would make the schedule diverge. Trials of
/// different seeds (a sampled run's) may still run side by side.
pub fn same_seed_jobs(target: &crate::scenario::Target, jobs: usize) -> usize {
    match target {
        crate::scenario::Target::Program(_) => 1,
        _ => jobs,
    }
}

/// Runs the configured trials; `each` sees every trial's index, checked run and findings
/// as it finishes (the CLI prints from there).
pub fn explore(
    cfg: &ExploreConfig,
    each: &mut dyn FnMut(u64, &Checked, &[Finding]),
) -> Result<Report, HarnessError> {
    let started = Instant::now();
    let mut report = Report::new(
        &cfg.space.lock_label(),
        cfg.space.schedule_label(),
        cfg.seed,
    );
    report.shard = cfg.shard.map(|(k, n)| format!("{k}/{n}"));
    let deadline = cfg.time_budget.map(|budget| started + budget);
    let out_of_time = || deadline.is_some_and(|d| Instant::now() >= d);
    let result = if let Schedule::Exhaustive { preemptions } = cfg.space.schedule {
        exhaustive::exhaustive(cfg, preemptions, &mut report, each, &out_of_time, deadline)
    } else {
        sampled(cfg, &mut report, each, &out_of_time, deadline)
    };
    match result {
        Ok(()) => {}
        // SIGINT or SIGTERM: the trial's processes are gone; report what ran.
        Err(HarnessError::Interrupted(sig)) => report.interrupted = Some(sig),
        Err(e) => return Err(e),
    }
    report.elapsed_ms = started.elapsed().as_millis() as u64;
    Ok(report)
}

/// One index of a sampled run, as a job left it.
enum Sampled {
    /// Another shard's.
    Skipped,
    /// The time budget was spent before it started.
    OutOfTime,
    Ran(Box<Result<Checked, HarnessError>>),
}

fn sampled(
    cfg: &ExploreConfig,
    report: &mut Report,
    each: &mut dyn FnMut(u64, &Checked, &[Finding]),
    out_of_time: &(dyn Fn() -> bool + Sync),
    deadline: Option<Instant>,
) -> Result<(), HarnessError> {
    let work = |runner: &mut Runner<'_>, index: u64| {
        if cfg.shard.is_some_and(|(k, n)| index % n != k - 1) {
            return Sampled::Skipped;
        }
        if out_of_time() {
            return Sampled::OutOfTime;
        }
        if let Some(sig) = crate::harness::interrupt::pending() {
            return Sampled::Ran(Box::new(Err(HarnessError::Interrupted(sig))));
        }
        Sampled::Ran(Box::new(
            runner.run(&cfg.space.trial(cfg.seed, index), None),
        ))
    };
    let last = |r: &Sampled| match r {
        Sampled::Skipped => false,
        Sampled::OutOfTime => true,
        Sampled::Ran(run) => match run.as_ref() {
            Err(_) => true,
            Ok(c) => !cfg.keep_going && !c.violations.is_empty(),
        },
    };
    // Shrinking and explaining happen here, on a runner of the caller's own.
    let mut runner = Runner::new(&cfg.harness);
    let mut failure: Option<HarnessError> = None;
    let mut take = |index: u64, r: Sampled| -> jobs::Flow {
        let mut checked = match r {
            Sampled::Skipped => return jobs::Flow::Go,
            Sampled::OutOfTime => return jobs::Flow::Stop,
            Sampled::Ran(run) => match *run {
                Err(e) => {
                    failure = Some(e);
                    return jobs::Flow::Stop;
                }
                Ok(c) => c,
            },
        };
        let shrunk = if cfg.shrink && !checked.violations.is_empty() {
            shrink_or_keep(&mut runner, checked, cfg, report, index, each, deadline)
        } else {
            Ok(checked)
        };
        checked = match shrunk {
            Ok(c) => c,
            Err(e) => {
                failure = Some(e);
                return jobs::Flow::Stop;
            }
        };
        if !cfg.keep_going {
            checked = explained(&mut runner, checked, cfg);
        }
        let failed = !checked.violations.is_empty();
        record(report, index, &checked, each);
        if failed && !cfg.keep_going {
            if let Err(e) = interrupted() {
                failure = Some(e);
                return jobs::Flow::Stop;
            }
            report.stopped_early = Some(StoppedEarly {
                after: report.trials_run,
                of: planned(cfg),
            });
            return jobs::Flow::Stop;
        }
        jobs::Flow::Go
    };
    jobs::ordered(cfg.jobs, &cfg.harness, cfg.trials, &work, &last, &mut take);
    match failure {
        Some(e) => Err(e),
        None => Ok(()),
    }
}

/// How many trials this run (this shard of it) was given; `None` when it had no fixed
/// number (a time budget, or every schedule).
fn planned(cfg: &ExploreConfig) -> Option<u64> {
    if cfg.trials == u64::MAX {
        return None;
    }
    Some(match cfg.shard {
        Some((k, n)) => cfg.trials / n + u64::from(cfg.trials % n >= k),
        None => cfg.trials,
    })
}

/// After a failing trial was recorded: the run ends as interrupted when SIGINT or
/// SIGTERM arrived while it was shrunk or explained.
fn interrupted() -> Result<(), HarnessError> {
    match crate::harness::interrupt::pending() {
        Some(sig) => Err(HarnessError::Interrupted(sig)),
        None => Ok(()),
    }
}

fn record(
    report: &mut Report,
    index: u64,
    checked: &Checked,
    each: &mut dyn FnMut(u64, &Checked, &[Finding]),
) {
    let findings = findings_of(checked, index);
    if let Some(u) = &checked.unconfirmed {
        report.unconfirmed.push(format!(
            "trial {index} stalled, and did not stall when it was run again: {u}"
        ));
    }
    for u in &checked.run.history.unordered {
        let said = [
            crate::report::POWER_CUT_SEEDED,
            crate::report::STALL_UNREPEATED,
        ];
        if !said.contains(&u.as_str())
            && !report.unseen.contains(u)
            && report.unseen.len() < crate::report::MAX_UNSEEN
        {
            report.unseen.push(u.clone());
        }
    }
    report.trials_run += 1;
    if !findings.is_empty() {
        report.trials_failed += 1;
    }
    each(index, checked, &findings);
    report.findings.extend(findings);
}

/// Explains one failing run (see [`explain`]) on a runner of its own.
pub fn explain_one(
    c: &Checked,
    harness: &HarnessConfig,
) -> Result<Option<crate::report::Why>, HarnessError> {
    explain(&mut Runner::new(harness), c)
}

/// Re-runs one trial `attempts` times on `jobs` jobs; returns each attempt's checked
/// run, in attempt order.
pub fn replay(
    trial: &Trial,
    attempts: u32,
    harness: &HarnessConfig,
    jobs: usize,
) -> Result<Vec<Checked>, HarnessError> {
    let work = |runner: &mut Runner<'_>, _: u64| {
        if let Some(sig) = crate::harness::interrupt::pending() {
            return Err(HarnessError::Interrupted(sig));
        }
        runner.run_once(trial, None)
    };
    let last = |r: &Result<Checked, HarnessError>| r.is_err();
    let jobs = same_seed_jobs(&trial.target, jobs);
    let mut out = Vec::new();
    let mut failure = None;
    let mut take = |_: u64, r: Result<Checked, HarnessError>| match r {
        Ok(c) => {
            out.push(c);
            jobs::Flow::Go
        }
        Err(e) => {
            failure = Some(e);
            jobs::Flow::Stop
        }
    };
    jobs::ordered(jobs, harness, u64::from(attempts), &work, &last, &mut take);
    match failure {
        Some(e) => Err(e),
        None => Ok(out),
    }
}
