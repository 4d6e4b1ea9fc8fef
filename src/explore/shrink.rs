//! Shrinking a failing controlled trial to a minimal counterexample, and saying from what
//! to what.

use super::{Checked, Runner};
use crate::check::FindingKind;
use crate::harness::HarnessError;
use crate::report::count;
use crate::rng::{salt, Rng};
use crate::scenario::Trial;
use crate::schedule::Dfs;
use std::collections::BTreeSet;
use std::fmt;
use std::time::Instant;

/// The size of a controlled trial, as shrinking sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Shape {
    /// Buyers.
    pub buyers: u32,
    /// Tickets.
    pub tickets: u32,
    /// Preemptions its schedule made (`None` when it recorded no schedule).
    pub preemptions: Option<u32>,
}

impl Shape {
    fn of(c: &Checked) -> Shape {
        Shape {
            buyers: c.trial.buyers,
            tickets: c.trial.tickets,
            preemptions: c.run.schedule.as_ref().map(|r| r.preemptions),
        }
    }
}

impl fmt::Display for Shape {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&count_pair(*self))?;
        match self.preemptions {
            Some(p) => write!(f, ", {}", count(p, "preemption")),
            None => Ok(()),
        }
    }
}

/// What shrinking a failing trial did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Shrunk {
    /// The failing trial as found.
    pub from: Shape,
    /// The failing trial reported (equal to `from` when nothing smaller failed).
    pub to: Shape,
    /// How many candidate runs shrinking tried.
    pub tried: usize,
    /// True when the shrink's budget or deadline ran out before its search ended.
    pub cut_short: bool,
    /// True when `from` already had the fewest buyers and tickets the asked space allows,
    /// so only fewer preemptions could be tried.
    pub at_floor: bool,
}

impl fmt::Display for Shrunk {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let tried = count(self.tried as u64, "run");
        let why = if self.cut_short {
            "; the shrink budget ran out"
        } else {
            ""
        };
        if self.from == self.to && self.at_floor {
            write!(
                f,
                "not shrunk: {} is the smallest --buyers/--tickets allow, and no schedule \
                 with fewer preemptions showed the finding ({tried} tried{why})",
                count_pair(self.from)
            )
        } else if self.from == self.to {
            write!(
                f,
                "not shrunk: no smaller trial showed the finding ({tried} tried{why})"
            )
        } else {
            write!(
                f,
                "shrunk from {} to {} ({tried} tried{why})",
                self.from, self.to
            )
        }
    }
}

/// `B buyers, T tickets`.
fn count_pair(s: Shape) -> String {
    format!(
        "{}, {}",
        count(s.buyers, "buyer"),
        count(s.tickets, "ticket")
    )
}

/// Most runs one shrink may spend.
const SHRINK_BUDGET: usize = 1_500;
/// Most schedules tried per (buyers, tickets, preemption bound) while shrinking.
const SHRINK_PER_SHAPE: usize = 300;
/// With faults every run that kills restarts its buyers: a smaller budget.
const SHRINK_BUDGET_FAULTS: usize = 150;
/// With kill faults, which buyer dies where is drawn from the trial's seed per buyer
/// index, so a smaller trial keeps only the first buyers' plans: this many seeds are
/// tried for each shape and bound (the first is the original's).
const SHRINK_SEEDS_KILL: usize = 8;
/// With kill faults, most schedules tried per seed, shape and bound.
const SHRINK_PER_SHAPE_KILL: usize = 4;
/// With stop faults every run pays its pauses in real time: a budget of a few runs.
const SHRINK_BUDGET_PAUSES: usize = 12;

/// Shrinks a failing controlled trial: the fewest buyers, then tickets, then preemptions
/// whose bounded search still shows the original's gravest finding kind (an `oversold`
/// stays an `oversold`, rather than shrinking to a mere `overlap`). With kill faults each
/// shape and bound is also tried under a few other seeds, since the seed places the kills
/// (the shrunk trial's token carries the seed it ran with). Returns the smallest failing
/// run found (the original when nothing smaller fails), with [`Checked::shrunk`] saying
/// from what to what; gives up (keeping the smallest failure found so far) at `deadline`.
///
/// `floor` is the smallest (buyers, tickets) the shrunk trial may have: the bottom of the
/// space the user asked for. The candidates run on `jobs` jobs; the answer is the one a
/// shrink trying them one by one gives.
pub fn shrink_until(
    runner: &mut Runner<'_>,
    failing: Checked,
    floor: (u32, u32),
    deadline: Option<Instant>,
    jobs: usize,
) -> Result<Checked, HarnessError> {
    if !failing.trial.schedule.is_controlled() || failing.violations.is_empty() {
        return Ok(failing);
    }
    let from = Shape::of(&failing);
    let mut search = Search {
        target: failing.kinds().into_iter().take(1).collect(),
        spent: 0,
        budget: if failing.trial.faults.is_none() {
            SHRINK_BUDGET
        } else if failing.trial.faults.stop > 0.0 {
            SHRINK_BUDGET_PAUSES
        } else {
            SHRINK_BUDGET_FAULTS
        },
        deadline,
        seeds: 1,
        per_shape: SHRINK_PER_SHAPE,
    };
    if failing.trial.faults.kill > 0.0 && failing.trial.faults.stop <= 0.0 {
        search.seeds = SHRINK_SEEDS_KILL;
        search.per_shape = SHRINK_PER_SHAPE_KILL;
    }
    let found = search.run(runner.harness, jobs, &failing.trial, floor)?;
    let (mut smallest, cut_short) = match found {
        Found::Smaller(c) => (*c, false),
        Found::Nothing => (failing, false),
        Found::OutOfBudget => (failing, true),
    };
    smallest.shrunk = Some(Shrunk {
        from,
        to: Shape::of(&smallest),
        tried: search.spent,
        cut_short,
        at_floor: from.buyers <= floor.0 && from.tickets <= floor.1,
    });
    Ok(smallest)
}

/// One shrink's search: what it looks for and what it may spend.
struct Search {
    target: BTreeSet<FindingKind>,
    spent: usize,
    budget: usize,
    deadline: Option<Instant>,
    /// Seeds tried per shape and bound (1: the original's only).
    seeds: usize,
    /// Most schedules tried per seed, shape and bound.
    per_shape: usize,
}

enum Found {
    Smaller(Box<Checked>),
    Nothing,
    OutOfBudget,
}

/// One candidate of a shrink: a shape, a bound and a seed, searched up to `per_shape`
/// schedules.
struct Candidate {
    trial: Trial,
    bound: u32,
}

/// What one candidate's search came to.
enum Tried {
    /// Runs made, the first failing run among them, if any, and whether it stopped at
    /// `per_shape` with schedules left.
    Ran(usize, Option<Box<Checked>>, bool),
    /// The deadline passed before it ended.
    Late,
    Failed(HarnessError),
}

impl Search {
    /// The candidates in the order one shrink tries them: fewest buyers, then tickets,
    /// then preemptions, then seeds; none past the original's shape.
    fn candidates(&self, orig: &Trial, floor: (u32, u32)) -> Vec<Candidate> {
        let mut out = Vec::new();
        for buyers in floor.0.clamp(1, orig.buyers)..=orig.buyers {
            for tickets in floor.1.min(orig.tickets)..=orig.tickets {
                for bound in 0..=2u32 {
                    for variant in 0..self.seeds {
                        let mut t = orig.clone();
                        t.buyers = buyers;
                        t.tickets = tickets;
                        t.choices = None;
                        if variant > 0 {
                            t.seed =
                                Rng::derive(orig.seed ^ salt::SHRINK, variant as u64).next_u64();
                        }
                        out.push(Candidate { trial: t, bound });
                    }
                }
                if buyers == orig.buyers && tickets == orig.tickets {
                    return out;
                }
            }
        }
        out
    }

    /// Tries the candidates on `jobs` jobs and takes their results in order: the first
    /// that fails within the budget is the shrink's answer, as when they run one by one.
    fn run(
        &mut self,
        harness: &crate::harness::HarnessConfig,
        jobs: usize,
        orig: &Trial,
        floor: (u32, u32),
    ) -> Result<Found, HarnessError> {
        let candidates = self.candidates(orig, floor);
        let (per_shape, deadline, budget) = (self.per_shape, self.deadline, self.budget);
        let target = self.target.clone();
        let work = |runner: &mut Runner<'_>, i: u64| {
            let c = &candidates[i as usize];
            try_one(runner, c, per_shape, deadline, &target)
        };
        let last = |r: &Tried| !matches!(r, Tried::Ran(_, None, _));
        let mut out: Result<Found, HarnessError> = Ok(Found::Nothing);
        let spent = &mut self.spent;
        let mut take = |_: u64, r: Tried| -> super::jobs::Flow {
            let (runs, found, capped) = match r {
                Tried::Ran(runs, found, capped) => (runs, found, capped),
                Tried::Late => {
                    out = Ok(Found::OutOfBudget);
                    return super::jobs::Flow::Stop;
                }
                Tried::Failed(e) => {
                    out = Err(e);
                    return super::jobs::Flow::Stop;
                }
            };
            // One by one, the budget would have cut this candidate after `budget − spent`
            // runs (a candidate stopped at `per_shape` looks at the budget once more).
            let left = budget.saturating_sub(*spent);
            if runs > left || (found.is_none() && capped && runs >= left) {
                *spent += left;
                out = Ok(Found::OutOfBudget);
                return super::jobs::Flow::Stop;
            }
            *spent += runs;
            match found {
                Some(c) => {
                    out = Ok(Found::Smaller(c));
                    super::jobs::Flow::Stop
                }
                None => super::jobs::Flow::Go,
            }
        };
        super::jobs::ordered(
            jobs,
            harness,
            candidates.len() as u64,
            &work,
            &last,
            &mut take,
        );
        out
    }
}

/// Searches the schedules of one candidate, at most `per_shape` of them.
fn try_one(
    runner: &mut Runner<'_>,
    c: &Candidate,
    per_shape: usize,
    deadline: Option<Instant>,
    target: &BTreeSet<FindingKind>,
) -> Tried {
    let mut prefix = Some(Vec::new());
    let mut runs = 0;
    while let Some(p) = prefix {
        if deadline.is_some_and(|d| Instant::now() >= d) {
            return Tried::Late;
        }
        if runs >= per_shape {
            return Tried::Ran(runs, None, true);
        }
        if let Some(sig) = crate::harness::interrupt::pending() {
            return Tried::Failed(HarnessError::Interrupted(sig));
        }
        let mut dfs = Dfs::new(p, c.bound);
        let checked = match runner.run(&c.trial, Some(&mut dfs)) {
            Ok(checked) => checked,
            Err(e) => return Tried::Failed(e),
        };
        runs += 1;
        if !checked.kinds().is_disjoint(target) {
            return Tried::Ran(runs, Some(Box::new(checked)), false);
        }
        prefix = dfs.next();
    }
    Tried::Ran(runs, None, false)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_failure_at_the_asked_floor_says_so() {
        let s = Shape {
            buyers: 3,
            tickets: 2,
            preemptions: Some(1),
        };
        let mut shrunk = Shrunk {
            from: s,
            to: s,
            tried: 9,
            cut_short: false,
            at_floor: true,
        };
        assert_eq!(
            shrunk.to_string(),
            "not shrunk: 3 buyers, 2 tickets is the smallest --buyers/--tickets allow, and \
             no schedule with fewer preemptions showed the finding (9 runs tried)"
        );
        shrunk.at_floor = false;
        shrunk.to = Shape {
            buyers: 2,
            tickets: 1,
            preemptions: Some(0),
        };
        assert_eq!(
            shrunk.to_string(),
            "shrunk from 3 buyers, 2 tickets, 1 preemption to 2 buyers, 1 ticket, \
             0 preemptions (9 runs tried)"
        );
    }
}
