//! The explorer: many trials, each checked, findings collected into a [`Report`].

use crate::check::{check, Observation, Violation};
use crate::harness::{self, HarnessConfig, HarnessError, TrialRun};
use crate::report::{Finding, Report};
use crate::scenario::{Trial, TrialSpace};
use std::time::{Duration, Instant};

/// What to explore.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct ExploreConfig {
    /// The space trials are drawn from.
    pub space: TrialSpace,
    /// How many trials to run.
    pub trials: u64,
    /// The run's seed.
    pub seed: u64,
    /// Stop early once this much time is spent.
    pub time_budget: Option<Duration>,
    /// How trials are run.
    pub harness: HarnessConfig,
}

impl ExploreConfig {
    /// A config for `trials` trials of `space` under `seed`.
    pub fn new(space: TrialSpace, trials: u64, seed: u64, harness: HarnessConfig) -> Self {
        ExploreConfig {
            space,
            trials,
            seed,
            time_budget: None,
            harness,
        }
    }
}

/// One trial's run and verdict.
#[derive(Debug, Clone)]
pub struct Checked {
    /// The trial.
    pub trial: Trial,
    /// What the harness collected.
    pub run: TrialRun,
    /// What the checker found.
    pub violations: Vec<Violation>,
}

/// Runs one trial and checks it.
pub fn run_one(trial: &Trial, harness: &HarnessConfig) -> Result<Checked, HarnessError> {
    let run = harness::run(trial, harness)?;
    let violations = check(&Observation {
        tickets: trial.tickets,
        buyers: trial.buyers,
        history: &run.history,
        final_store: run.final_store.as_ref(),
        leaked: run.leaked,
    });
    Ok(Checked {
        trial: trial.clone(),
        run,
        violations,
    })
}

/// Runs the configured trials; `each` sees every trial's index, trial and findings as it
/// finishes (the CLI prints from there).
pub fn explore(
    cfg: &ExploreConfig,
    each: &mut dyn FnMut(u64, &Checked, &[Finding]),
) -> Result<Report, HarnessError> {
    let started = Instant::now();
    let mut report = Report::new(cfg.space.lock.name(), cfg.space.schedule.name(), cfg.seed);
    for index in 0..cfg.trials {
        if cfg
            .time_budget
            .is_some_and(|budget| started.elapsed() >= budget)
        {
            break;
        }
        let trial = cfg.space.trial(cfg.seed, index);
        let checked = run_one(&trial, &cfg.harness)?;
        let token = trial.token();
        let findings: Vec<Finding> = checked
            .violations
            .iter()
            .map(|v| Finding::new(v, index, trial.buyers, trial.tickets, &token))
            .collect();
        report.trials_run += 1;
        if !findings.is_empty() {
            report.trials_failed += 1;
        }
        each(index, &checked, &findings);
        report.findings.extend(findings);
    }
    report.elapsed_ms = started.elapsed().as_millis() as u64;
    Ok(report)
}

/// Re-runs one trial `attempts` times; returns each attempt's checked run.
pub fn replay(
    trial: &Trial,
    attempts: u32,
    harness: &HarnessConfig,
) -> Result<Vec<Checked>, HarnessError> {
    (0..attempts).map(|_| run_one(trial, harness)).collect()
}
