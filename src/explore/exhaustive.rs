//! `exhaustive`: every trial shape in the space, every schedule within the preemption
//! bound, or (the default) one schedule per class of schedules that differ only in the
//! order of independent steps ([`Dpor`]; the relation is in `schedule::conflict`).
//!
//! The preemption bound deepens: every shape is searched with no preemption, then with
//! at most one, and so on up to the asked bound ([`bounds`]), so a shallow bug comes
//! first; a shape is reported verified only at the full bound. Under `--keep-going`,
//! which runs every schedule, each shape is searched once, at the full bound.
//!
//! A trial with kill or stop faults runs the plain search: a dead holder's span ends at
//! whatever step it last took, and a frozen one's lease runs out in real time; the
//! conflict relation orders neither.

use super::{
    explained, interrupted, planned, record, shrink_or_keep, Checked, ExploreConfig, Runner,
};
use crate::harness::HarnessError;
use crate::report::{Finding, Report, StoppedEarly, Verified};
use crate::scenario::Trial;
use crate::schedule::{Dfs, Dpor, UNBOUNDED};
use std::time::Instant;

/// One shape's search: plain depth-first, or partial-order reduced.
enum Search {
    Plain {
        prefix: Option<Vec<u32>>,
        bound: u32,
    },
    Reduced {
        dpor: Box<Dpor>,
        started: bool,
    },
}

impl Search {
    fn new(cfg: &ExploreConfig, trial: &Trial, bound: u32) -> Search {
        if cfg.reduction && trial.faults.kill <= 0.0 && trial.faults.stop <= 0.0 {
            let bound = (bound != UNBOUNDED).then_some(bound);
            Search::Reduced {
                dpor: Box::new(Dpor::new(bound)),
                started: false,
            }
        } else {
            Search::Plain {
                prefix: Some(Vec::new()),
                bound,
            }
        }
    }

    /// Runs the next schedule; `None` when the search is complete.
    fn run(
        &mut self,
        runner: &mut Runner<'_>,
        trial: &Trial,
    ) -> Option<Result<Checked, HarnessError>> {
        match self {
            Search::Plain { prefix, bound } => {
                let mut dfs = Dfs::new(prefix.take()?, *bound);
                let out = runner.run(trial, Some(&mut dfs));
                *prefix = dfs.next();
                Some(out)
            }
            Search::Reduced { dpor, started } => {
                if *started && !dpor.advance() {
                    return None;
                }
                *started = true;
                Some(runner.run(trial, Some(&mut **dpor)))
            }
        }
    }

    /// Distinct executions covered, when the search is reduced.
    fn executions(&self) -> Option<u64> {
        match self {
            Search::Plain { .. } => None,
            Search::Reduced { dpor, .. } => Some(dpor.executions()),
        }
    }
}

/// The preemption bounds searched in turn up to `bound`: 0, 1, … `bound`, so a shallow
/// bug is met before the deep searches start; `--preemptions unbounded` deepens through
/// 0, 1 and 2 before the search without a bound.
pub(super) fn bounds(bound: u32) -> Vec<u32> {
    if bound == UNBOUNDED {
        vec![0, 1, 2, UNBOUNDED]
    } else {
        (0..=bound).collect()
    }
}

pub(super) fn exhaustive(
    cfg: &ExploreConfig,
    bound: u32,
    runner: &mut Runner<'_>,
    report: &mut Report,
    each: &mut dyn FnMut(u64, &Checked, &[Finding]),
    out_of_time: &dyn Fn() -> bool,
    deadline: Option<Instant>,
) -> Result<(), HarnessError> {
    let mut index = 0u64;
    // Deepening pays where the search stops at its first finding; `--keep-going` wants
    // every schedule once, at the full bound.
    let levels = if cfg.keep_going {
        vec![bound]
    } else {
        bounds(bound)
    };
    for level in levels {
        let last = level == bound;
        for buyers in cfg.space.buyers.lo..=cfg.space.buyers.hi {
            for tickets in cfg.space.tickets.lo..=cfg.space.tickets.hi {
                let mut trial = cfg.space.trial(cfg.seed, index);
                trial.buyers = buyers;
                trial.tickets = tickets;
                let mut search = Search::new(cfg, &trial, level);
                let shape = Shape { trial: &trial };
                let failed = shape.search(
                    &mut search,
                    (cfg, runner, report, each),
                    &mut index,
                    out_of_time,
                    deadline,
                )?;
                match failed {
                    Ended::Failed if !cfg.keep_going => {
                        report.stopped_early = Some(StoppedEarly {
                            after: report.trials_run,
                            of: planned(cfg),
                        });
                        return Ok(());
                    }
                    Ended::Complete {
                        schedules,
                        unordered,
                    } if last => report.verified.push(Verified {
                        buyers,
                        tickets,
                        preemptions: bound,
                        schedules,
                        executions: search.executions(),
                        granularity: granularity(&trial),
                        verified: unordered.is_empty(),
                        unordered,
                    }),
                    _ => {}
                }
                if index >= cfg.trials || out_of_time() {
                    return Ok(());
                }
            }
        }
    }
    Ok(())
}

/// The yield points a verified search stepped between, as its line names them.
fn granularity(trial: &Trial) -> String {
    if trial.syscall_level() || trial.external.is_some() {
        "system-call".into()
    } else {
        "step".into()
    }
}

/// How one shape's search ended.
enum Ended {
    /// Every schedule ran, none failed; the effects no step ordered, if any met.
    Complete {
        schedules: u64,
        unordered: Vec<String>,
    },
    /// Some schedule failed.
    Failed,
    /// Out of trials or time.
    Cut,
}

struct Shape<'t> {
    trial: &'t Trial,
}

type Sinks<'a, 'h> = (
    &'a ExploreConfig,
    &'a mut Runner<'h>,
    &'a mut Report,
    &'a mut dyn FnMut(u64, &Checked, &[Finding]),
);

impl Shape<'_> {
    fn search(
        &self,
        search: &mut Search,
        (cfg, runner, report, each): Sinks<'_, '_>,
        index: &mut u64,
        out_of_time: &dyn Fn() -> bool,
        deadline: Option<Instant>,
    ) -> Result<Ended, HarnessError> {
        let trial = self.trial;
        let mut schedules = 0u64;
        let mut failed = false;
        let mut unordered: Vec<String> = Vec::new();
        loop {
            if *index >= cfg.trials || out_of_time() {
                return Ok(Ended::Cut);
            }
            if let Some(sig) = crate::harness::interrupt::pending() {
                return Err(HarnessError::Interrupted(sig));
            }
            let Some(out) = search.run(runner, trial) else {
                break;
            };
            let mut checked = out?;
            if let Some(d) = checked.diverged() {
                // The search's own prefix did not replay: the program is not
                // deterministic under control, and the count would be wrong.
                return Err(HarnessError::Nondeterministic(format!(
                    "{}, {}: {d}",
                    crate::report::count(trial.buyers, "buyer"),
                    crate::report::count(trial.tickets, "ticket")
                )));
            }
            schedules += 1;
            for u in &checked.run.history.unordered {
                if !unordered.contains(u) {
                    unordered.push(u.clone());
                }
            }
            if !checked.violations.is_empty() {
                failed = true;
                if !cfg.keep_going {
                    if cfg.shrink {
                        checked =
                            shrink_or_keep(runner, checked, cfg, report, *index, each, deadline)?;
                    }
                    checked = explained(runner, checked, cfg);
                    record(report, *index, &checked, each);
                    interrupted()?;
                    return Ok(Ended::Failed);
                }
            }
            record(report, *index, &checked, each);
            *index += 1;
        }
        Ok(if failed {
            Ended::Failed
        } else {
            Ended::Complete {
                schedules,
                unordered,
            }
        })
    }
}
