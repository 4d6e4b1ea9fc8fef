//! Schedule strategies for controlled trials: one file each, behind [`Scheduler`].
//!
//! Under a controlled schedule exactly one buyer runs between yield points. At each step
//! the harness hands the strategy the sorted list of buyers that can run and the buyer
//! that ran last (when it can run again), and the strategy picks one. The harness records
//! every pick, so a run's schedule is a list of buyer indices that replays exactly.
//!
//! Adding a strategy means one new file here, one arm in [`for_trial`], a variant of
//! [`Schedule`] with its token spelling (`scenario`), and its `--schedule` value (`cli`);
//! the bench and `trials()` pick strategies from their own lists.

pub mod conflict;
mod dpor;
mod exhaustive;
mod pct;
mod random;
mod replay;

pub use conflict::{Access, Touch};
pub use dpor::Dpor;
pub use exhaustive::Dfs;
pub use pct::Pct;
pub use random::Random;
pub use replay::Replay;

use crate::scenario::{Schedule, Trial};
use std::fmt;

/// Picks which buyer runs next under a controlled schedule.
pub trait Scheduler {
    /// Chooses the buyer for step `step` (counted from 0). `runnable` is sorted and never
    /// empty; `current` is the buyer that ran the previous step, when it can run again.
    fn pick(
        &mut self,
        step: usize,
        runnable: &[u32],
        current: Option<u32>,
    ) -> Result<u32, Diverged>;

    /// True when the strategy wants [`Scheduler::ahead`] and [`Scheduler::ran`]: what
    /// each step touches (the partial-order reduction does; the others need not pay).
    fn wants_accesses(&self) -> bool {
        false
    }

    /// Called before each `pick` when [`Scheduler::wants_accesses`]: what the pending
    /// step of each buyer (by index) touches, `None` for a buyer that cannot run.
    fn ahead(&mut self, pending: &[Option<Access>]) {
        let _ = pending;
    }

    /// Called after each step when [`Scheduler::wants_accesses`]: buyer `buyer` ran it,
    /// and `died` when it did not come back.
    fn ran(&mut self, buyer: u32, died: bool) {
        let _ = (buyer, died);
    }

    /// Called once buyer `buyer`'s last step, and what it did before its next one, are
    /// over, when [`Scheduler::wants_accesses`]: all it touched, `access`, which may be
    /// less than its pending step was said to touch ([`Scheduler::ahead`]: memory a
    /// process may write between two calls is known only once it has run).
    fn executed(&mut self, buyer: u32, access: Access) {
        let _ = (buyer, access);
    }

    /// Called after [`Scheduler::ran`] when [`Scheduler::wants_accesses`] and the step was
    /// an acquire attempt that came back `blocked`: it found the lock busy and changed
    /// nothing ([`Access::blocked`]).
    fn blocked(&mut self, buyer: u32) {
        let _ = buyer;
    }

    /// True when the strategy wants [`Scheduler::hints`]: what kind of step each buyer
    /// is about to take (PCT over system calls counts only some).
    fn wants_hints(&self) -> bool {
        false
    }

    /// Called before each `pick` when [`Scheduler::wants_hints`]: each buyer's pending
    /// step (by index), `None` for a buyer that cannot run.
    fn hints(&mut self, next: &[Option<StepHint>]) {
        let _ = next;
    }

    /// True when the strategy searches or follows a recorded schedule: a power cut is
    /// then one more choice at each step (the virtual unit
    /// `CRASH_CHOICE`, written `c` in a token), which it may pick; otherwise the
    /// cut falls at the trial's seeded step.
    fn places_crash(&self) -> bool {
        false
    }

    /// True when the strategy searches: each power cut it places is offered once per
    /// state the disk could be left in (`cK`), not as the seed's draw.
    fn searches_disk_states(&self) -> bool {
        false
    }

    /// Called once the run has ended after `steps` steps; a strategy that follows a
    /// recorded schedule reports steps it never reached.
    fn finish(&mut self, steps: usize) -> Result<(), Diverged> {
        let _ = steps;
        Ok(())
    }
}

/// What kind of step a buyer is about to take, as a strategy that counts steps needs
/// it ([`Scheduler::hints`]).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct StepHint {
    /// The step is one whose effect on the others can show: a change of shared state,
    /// or a sleep.
    pub counts: bool,
    /// The step changes the store (a buyer does only inside its critical section).
    pub store: bool,
}

/// A recorded schedule that no longer fits the program it is replayed against.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Diverged {
    /// The step at which it stopped fitting.
    pub step: usize,
    /// What the schedule said to do there.
    pub wanted: Option<u32>,
    /// Which buyers could run.
    pub runnable: Vec<u32>,
    /// Which buyers could run there in the recorded run, when the strategy kept it
    /// (empty otherwise).
    pub recorded: Vec<u32>,
}

impl fmt::Display for Diverged {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.wanted {
            Some(b) if !self.recorded.is_empty() && self.recorded != self.runnable => write!(
                f,
                "the schedule diverges at step {}: buyers {:?} can run there, where the \
                 recorded run had {:?} (and ran buyer {b})",
                self.step, self.runnable, self.recorded
            ),
            Some(b) => write!(
                f,
                "the schedule diverges at step {}: it runs buyer {b}, but only {:?} can run",
                self.step, self.runnable
            ),
            None if self.runnable.is_empty() => write!(
                f,
                "the schedule diverges: the run ended at step {} with steps of the schedule left",
                self.step
            ),
            None => write!(
                f,
                "the schedule diverges: it ends at step {} while buyers {:?} can still run",
                self.step, self.runnable
            ),
        }
    }
}

impl std::error::Error for Diverged {}

pub use crate::limits::UNBOUNDED;

/// Yield points a buyer passes at most (check, acquire, read, write, truncated, release,
/// record): PCT draws each change point from a buyer's first this many steps.
pub const POINTS_PER_BUYER: usize = 7;

/// The strategy a trial asks for: its recorded steps when it carries them, else a fresh
/// strategy seeded by the trial.
pub fn for_trial(trial: &Trial) -> Box<dyn Scheduler> {
    if let Some(choices) = &trial.choices {
        return Box::new(Replay::strict(choices.clone()));
    }
    match trial.schedule {
        Schedule::Pct { depth } if trial.steps_are_calls() => {
            Box::new(Pct::over_changes(trial.seed, trial.schedule_units(), depth))
        }
        Schedule::Pct { depth } => {
            Box::new(Pct::new(trial.seed, trial.buyers, depth, POINTS_PER_BUYER))
        }
        Schedule::Exhaustive { preemptions } => Box::new(Dfs::new(Vec::new(), preemptions)),
        _ => Box::new(Random::new(trial.seed)),
    }
}
