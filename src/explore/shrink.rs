//! Shrinking a failing controlled trial to a minimal counterexample, and saying from what
//! to what.

use super::{Checked, Runner};
use crate::check::FindingKind;
use crate::harness::HarnessError;
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
        write!(
            f,
            "{}, {}",
            count(self.buyers.into(), "buyer"),
            count(self.tickets.into(), "ticket")
        )?;
        match self.preemptions {
            Some(p) => write!(f, ", {}", count(p.into(), "preemption")),
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
}

impl fmt::Display for Shrunk {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let tried = count(self.tried as u64, "run");
        let why = if self.cut_short {
            "; the shrink budget ran out"
        } else {
            ""
        };
        if self.from == self.to {
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

/// `n thing` or `n things`.
fn count(n: u64, thing: &str) -> String {
    if n == 1 {
        format!("1 {thing}")
    } else {
        format!("{n} {thing}s")
    }
}

/// Most runs one shrink may spend.
const SHRINK_BUDGET: usize = 1_500;
/// Most schedules tried per (buyers, tickets, preemption bound) while shrinking.
const SHRINK_PER_SHAPE: usize = 300;
/// With faults every run that kills restarts its buyers: a smaller budget.
const SHRINK_BUDGET_FAULTS: usize = 150;
/// With stop faults every run pays its pauses in real time: a budget of a few runs.
const SHRINK_BUDGET_PAUSES: usize = 12;

/// Shrinks a failing controlled trial: the fewest buyers, then tickets, then preemptions
/// whose bounded search still shows the original's gravest finding kind (an `oversold`
/// stays an `oversold`, rather than shrinking to a mere `overlap`). Returns the
/// smallest failing run found (the original when nothing smaller fails), with
/// [`Checked::shrunk`] saying from what to what; gives up (keeping the smallest failure
/// found so far) at `deadline`.
///
/// `floor` is the smallest (buyers, tickets) the shrunk trial may have: the bottom of the
/// space the user asked for.
pub fn shrink_until(
    runner: &mut Runner<'_>,
    failing: Checked,
    floor: (u32, u32),
    deadline: Option<Instant>,
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
    };
    let found = search.run(runner, &failing.trial, floor)?;
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
    });
    Ok(smallest)
}

/// One shrink's search: what it looks for and what it may spend.
struct Search {
    target: BTreeSet<FindingKind>,
    spent: usize,
    budget: usize,
    deadline: Option<Instant>,
}

enum Found {
    Smaller(Box<Checked>),
    Nothing,
    OutOfBudget,
}

impl Search {
    fn run(
        &mut self,
        runner: &mut Runner<'_>,
        orig: &Trial,
        floor: (u32, u32),
    ) -> Result<Found, HarnessError> {
        for buyers in floor.0.clamp(1, orig.buyers)..=orig.buyers {
            for tickets in floor.1.min(orig.tickets)..=orig.tickets {
                for bound in 0..=2u32 {
                    let mut t = orig.clone();
                    t.buyers = buyers;
                    t.tickets = tickets;
                    t.choices = None;
                    match self.shape(runner, &t, bound)? {
                        Found::Nothing => {}
                        other => return Ok(other),
                    }
                }
                if buyers == orig.buyers && tickets == orig.tickets {
                    return Ok(Found::Nothing);
                }
            }
        }
        Ok(Found::Nothing)
    }

    /// Searches the schedules of one shape within `bound` preemptions.
    fn shape(
        &mut self,
        runner: &mut Runner<'_>,
        t: &Trial,
        bound: u32,
    ) -> Result<Found, HarnessError> {
        let mut prefix = Some(Vec::new());
        let mut here = 0;
        while let Some(p) = prefix {
            if self.spent >= self.budget || self.deadline.is_some_and(|d| Instant::now() >= d) {
                return Ok(Found::OutOfBudget);
            }
            if here >= SHRINK_PER_SHAPE {
                break;
            }
            let mut dfs = Dfs::new(p, bound);
            let c = runner.run(t, Some(&mut dfs))?;
            self.spent += 1;
            here += 1;
            if !c.kinds().is_disjoint(&self.target) {
                return Ok(Found::Smaller(Box::new(c)));
            }
            prefix = dfs.next();
        }
        Ok(Found::Nothing)
    }
}
