//! An exhaustive search split by schedule prefix, so that jobs and shards share it.
//!
//! One shape's search at one bound is cut into *parts*: the schedules that begin with
//! one prefix of choices. The prefixes are every choice within the bound at each of the
//! first steps (at most [`MAX_DEPTH`], until there are [`ENOUGH`] parts), learnt from a
//! few probe runs, so the parts are disjoint and together hold every schedule: complete
//! by construction. Each part is searched on its own ([`Dfs::within`], [`Dpor::part`]),
//! which never revisits the fixed steps. The split depends only on the shape and the
//! bound: one job or eight, one shard or four, the same parts run the same schedules.
//!
//! A part's distinct executions are counted within the part: a reduced search under a
//! preemption bound (no sleep sets) may meet one execution in two parts, and then it is
//! counted in each, as it is run in each.

use super::{Checked, ExploreConfig, Runner};
use crate::harness::HarnessError;
use crate::scenario::Trial;
use crate::schedule::{Dfs, Dpor, UNBOUNDED};
use std::sync::atomic::{AtomicU64, Ordering};

/// Parts are made this many steps deep at most.
const MAX_DEPTH: usize = 3;
/// The split deepens until a shape has this many parts.
const ENOUGH: usize = 12;

/// One part: the schedules that begin with `prefix`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Part {
    pub(super) prefix: Vec<u32>,
    /// At each fixed step, the choices of the parts before this one.
    pub(super) siblings: Vec<Vec<u32>>,
    /// Preemptions the prefix makes: parts that made none hold most schedules, so shards
    /// are dealt parts of each count in turn.
    pub(super) preemptions: u32,
}

/// Whether a trial's search is reduced.
pub(super) fn reduced(cfg: &ExploreConfig, trial: &Trial) -> bool {
    cfg.reduction
        && trial.faults.kill <= 0.0
        && trial.faults.stop <= 0.0
        && trial.faults.crash <= 0.0
}

/// The parts of `trial`'s search at `bound`, in the order one search would run them;
/// each deeper level costs one probe run per part above it.
pub(super) fn parts(
    runner: &mut Runner<'_>,
    trial: &Trial,
    bound: u32,
) -> Result<Vec<Part>, HarnessError> {
    let mut level = vec![Part {
        prefix: Vec::new(),
        siblings: Vec::new(),
        preemptions: 0,
    }];
    for depth in 0..MAX_DEPTH {
        if level.len() >= ENOUGH {
            break;
        }
        let mut next = Vec::new();
        for p in &level {
            let mut dfs = Dfs::new(p.prefix.clone(), bound);
            let run = runner.run(trial, Some(&mut dfs))?;
            if let Some(d) = run.diverged() {
                // An effect no step orders may be why: the parts so far are searched,
                // and their search names it (`run_part`).
                if !run.run.history.unordered.is_empty() {
                    return Ok(level);
                }
                return Err(nondeterministic(trial, d));
            }
            match dfs.choices(depth) {
                Some(kids) => {
                    for (n, &(b, preemptions)) in kids.iter().enumerate() {
                        let mut prefix = p.prefix.clone();
                        prefix.push(b);
                        let mut siblings = p.siblings.clone();
                        siblings.push(kids[..n].iter().map(|k| k.0).collect());
                        next.push(Part {
                            prefix,
                            siblings,
                            preemptions,
                        });
                    }
                }
                None => next.push(p.clone()),
            }
        }
        let grew = next.len() > level.len();
        level = next;
        if !grew {
            break;
        }
    }
    Ok(level)
}

pub(super) fn nondeterministic(trial: &Trial, d: &crate::schedule::Diverged) -> HarnessError {
    // The search's own prefix did not replay: the program is not deterministic under
    // control, and the count would be wrong.
    HarnessError::Nondeterministic(format!(
        "{}, {}: {d}",
        crate::report::count(trial.buyers, "buyer"),
        crate::report::count(trial.tickets, "ticket")
    ))
}

/// How one part's search ended.
#[derive(Debug)]
pub(super) enum PartEnd {
    /// Every schedule of the part ran.
    Complete,
    /// A schedule failed and the run stops at its first finding.
    Failed,
    /// Out of trials or time.
    Cut,
    /// The harness failed, or SIGINT or SIGTERM arrived.
    Error(HarnessError),
}

/// What one part's search found.
#[derive(Debug)]
pub(super) struct PartRun {
    pub(super) schedules: u64,
    /// Distinct executions, when reduced.
    pub(super) executions: Option<u64>,
    pub(super) unordered: Vec<String>,
    /// The part's first run (a timeline draws it when nothing fails).
    pub(super) first: Option<Checked>,
    /// Failing runs, by their index within the part.
    pub(super) failing: Vec<(u64, Checked)>,
    pub(super) end: PartEnd,
}

/// What a part's search shares with the others: the schedules run so far (progress, and
/// the cut at `--trials`) and the deadline.
pub(super) struct Shared<'a> {
    pub(super) ran: &'a AtomicU64,
    pub(super) out_of_time: &'a (dyn Fn() -> bool + Sync),
}

/// Searches one part.
pub(super) fn search(
    cfg: &ExploreConfig,
    runner: &mut Runner<'_>,
    trial: &Trial,
    bound: u32,
    part: &Part,
    shared: &Shared<'_>,
) -> PartRun {
    let mut out = PartRun {
        schedules: 0,
        executions: None,
        unordered: Vec::new(),
        first: None,
        failing: Vec::new(),
        end: PartEnd::Complete,
    };
    let floor = part.prefix.len();
    let mut dpor = reduced(cfg, trial).then(|| {
        let b = (bound != UNBOUNDED).then_some(bound);
        Dpor::part(b, part.prefix.clone(), part.siblings.clone())
    });
    let mut plain = Some(part.prefix.clone());
    loop {
        if shared.ran.load(Ordering::SeqCst) >= cfg.trials || (shared.out_of_time)() {
            out.end = PartEnd::Cut;
            break;
        }
        if let Some(sig) = crate::harness::interrupt::pending() {
            out.end = PartEnd::Error(HarnessError::Interrupted(sig));
            break;
        }
        let result = match &mut dpor {
            Some(d) => {
                if out.schedules > 0 && !d.advance() {
                    break;
                }
                runner.run(trial, Some(d))
            }
            None => {
                let Some(prefix) = plain.take() else { break };
                let mut dfs = Dfs::within(prefix, bound, floor);
                let r = runner.run(trial, Some(&mut dfs));
                plain = dfs.next();
                r
            }
        };
        let checked = match result {
            Ok(c) => c,
            Err(e) => {
                out.end = PartEnd::Error(e);
                break;
            }
        };
        if let Some(d) = checked.diverged() {
            // A run that met an effect no step orders (a file opened through an
            // io_uring, memory shared) may not repeat itself: that is no error of the
            // search but the reason it cannot vouch, and the verdict names both.
            for u in &checked.run.history.unordered {
                if !out.unordered.contains(u) {
                    out.unordered.push(u.clone());
                }
            }
            if out.unordered.is_empty() {
                out.end = PartEnd::Error(nondeterministic(trial, d));
            } else {
                out.unordered
                    .push(format!("and so a run did not repeat itself ({d})"));
            }
            break;
        }
        let index = out.schedules;
        out.schedules += 1;
        shared.ran.fetch_add(1, Ordering::SeqCst);
        if let Some(t) = &cfg.ticks {
            t.fetch_add(1, Ordering::Relaxed);
        }
        for u in &checked.run.history.unordered {
            if !out.unordered.contains(u) {
                out.unordered.push(u.clone());
            }
        }
        // A cut that could have left the disk more ways than the one the seed drew: the
        // search covered where cuts fall, not every disk they may leave.
        let seeded = checked
            .run
            .history
            .power_cut
            .as_ref()
            .is_some_and(|c| c.state.is_none() && c.outcomes > 1);
        if seeded
            && !out
                .unordered
                .iter()
                .any(|u| u == crate::report::POWER_CUT_SEEDED)
        {
            out.unordered
                .push(crate::report::POWER_CUT_SEEDED.to_string());
        }
        let failed = !checked.violations.is_empty();
        if failed {
            out.failing.push((index, checked));
            if !cfg.keep_going {
                out.end = PartEnd::Failed;
                break;
            }
        } else if out.first.is_none() {
            out.first = Some(checked);
        }
    }
    out.executions = dpor.map(|d| d.executions());
    out
}
