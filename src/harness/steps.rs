//! The one controlled-step loop. Whatever a step is (a yield point of oversell's buyer,
//! `round.rs`; a system call stopped by seccomp, `syscall/stepper.rs`), a controlled
//! trial is this loop over a [`Steps`] backend: wait until the trial can step, tell the
//! scheduler what each buyer is about to touch, let it pick, count the preemption, record
//! the choice, send the buyer on, and tell the scheduler how the step went. Nothing else
//! in the harness calls a [`Scheduler`] during a trial, records a choice or counts a
//! preemption.

use crate::schedule::{Access, Diverged, Scheduler, StepHint};

/// Steps one trial may take at most: a program that never stops stepping ends as a
/// timeout, not an endless trial.
pub(crate) const MAX_STEPS: usize = 200_000;

/// What the loop keeps of a trial: the same for every backend.
#[derive(Debug, Default)]
pub(crate) struct Walk {
    /// Each step's pick, in order (what a token's steps replay).
    pub choices: Vec<u32>,
    /// Picks that took the step away from a buyer that could have gone on.
    pub preemptions: u32,
    /// The buyer that took the last step, while it may take the next.
    pub current: Option<u32>,
    /// Where a recorded schedule stopped fitting the run.
    pub diverged: Option<Diverged>,
}

/// How a buyer came back from its step.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Moved {
    /// It took its step and is at (or on its way to) its next one.
    Ran,
    /// Its acquire attempt found the lock busy and changed nothing.
    Blocked,
    /// It did not come back.
    Died,
}

/// How the loop ended.
#[derive(Debug)]
pub(crate) enum Ended<S> {
    /// The trial is over (the scheduler was asked whether it expected more steps).
    Over,
    /// The scheduler picked what cannot run, or gave up: `Walk::diverged` says where.
    Diverged,
    /// [`MAX_STEPS`] steps were taken.
    TooLong,
    /// The backend stopped the trial.
    Stopped(S),
}

/// A kind of step the loop can take: one implementation per backend.
pub(crate) trait Steps {
    /// Why a backend stops a trial at once.
    type Stop;

    /// The loop's record, kept by the backend (whose steps read it too).
    fn walk(&mut self) -> &mut Walk;

    /// Waits until the trial can take its next step and gives what may take it, sorted:
    /// buyers, and choices that are no buyer's step ([`Steps::is_virtual`]); `None` when
    /// the trial is over. `done` receives a step whose effects are known in full only
    /// now (the buyer that took it, all it touched).
    fn ready(&mut self, done: &mut Option<(u32, Access)>) -> Result<Option<Vec<u32>>, Self::Stop>;

    /// What the pending step of each buyer (by index) touches; `None` for one that
    /// cannot run.
    fn pending(&mut self, runnable: &[u32]) -> Vec<Option<Access>>;

    /// What kind of step each buyer of `runnable` is about to take, by index; asked only
    /// by a strategy that counts some steps and not others (PCT over system calls). None
    /// by default: at oversell's yield points every step counts.
    fn hints(&mut self, runnable: &[u32]) -> Vec<Option<StepHint>> {
        let _ = runnable;
        Vec::new()
    }

    /// True for a choice that is no buyer's step (a power cut): it counts as no
    /// preemption and is recorded by [`Steps::advance`] itself.
    fn is_virtual(&self, choice: u32) -> bool {
        let _ = choice;
        false
    }

    /// Takes the step of `b` (already recorded in [`Walk::choices`], unless virtual);
    /// `watched` when the scheduler wants to know what it touches.
    fn advance(&mut self, b: u32, watched: bool) -> Result<Moved, Self::Stop>;
}

/// Runs `steps` under `scheduler` until the trial is over or stops.
pub(crate) fn run<B: Steps>(steps: &mut B, scheduler: &mut dyn Scheduler) -> Ended<B::Stop> {
    loop {
        let mut done = None;
        let ready = steps.ready(&mut done);
        if let Some((b, access)) = done {
            scheduler.executed(b, access);
        }
        let runnable = match ready {
            Ok(Some(r)) => r,
            Ok(None) => {
                let walk = steps.walk();
                if walk.diverged.is_none() {
                    walk.diverged = scheduler.finish(walk.choices.len()).err();
                }
                return Ended::Over;
            }
            Err(stop) => return Ended::Stopped(stop),
        };
        if steps.walk().choices.len() >= MAX_STEPS {
            return Ended::TooLong;
        }
        let cur = steps.walk().current.filter(|c| runnable.contains(c));
        let watched = scheduler.wants_accesses();
        if watched {
            scheduler.ahead(&steps.pending(&runnable));
        }
        if scheduler.wants_hints() {
            scheduler.hints(&steps.hints(&runnable));
        }
        let step = steps.walk().choices.len();
        let b = match scheduler.pick(step, &runnable, cur) {
            Ok(b) if runnable.contains(&b) => b,
            Ok(b) => {
                steps.walk().diverged = Some(Diverged {
                    step,
                    wanted: Some(b),
                    runnable,
                    recorded: Vec::new(),
                });
                return Ended::Diverged;
            }
            Err(d) => {
                steps.walk().diverged = Some(d);
                return Ended::Diverged;
            }
        };
        if steps.is_virtual(b) {
            if watched {
                scheduler.ran(b, false);
            }
            if let Err(stop) = steps.advance(b, watched) {
                return Ended::Stopped(stop);
            }
            continue;
        }
        let walk = steps.walk();
        if cur.is_some_and(|c| c != b) {
            walk.preemptions += 1;
        }
        walk.choices.push(b);
        let moved = match steps.advance(b, watched) {
            Ok(m) => m,
            Err(stop) => return Ended::Stopped(stop),
        };
        if watched {
            scheduler.ran(b, moved == Moved::Died);
            if moved == Moved::Blocked {
                scheduler.blocked(b);
            }
        }
        steps.walk().current = Some(b);
    }
}
