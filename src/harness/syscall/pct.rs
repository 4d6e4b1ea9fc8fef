//! PCT at system-call granularity: the priorities of [`crate::schedule::Pct`], with
//! its `d − 1` change points counted over the steps where a buyer's effect on the others
//! can show, each buyer's own: a point `j` fires when the buyer on top is about to take
//! its `j`-th such step (the first to get there). Counted per buyer, a point falls on a
//! lock's first change (its acquisition) as often with 16 buyers as with 2.
//!
//! Those steps are the changes of shared state and the sleeps. A buyer's reads, stats
//! and closes between two of its changes are invisible to the others until the next
//! change, so lowering a buyer just before a change is what exposes a check-then-act
//! gap; counting change points over every system call (a shell's start alone makes
//! dozens) would spread them too thin to land there. A sleep is the one step of a
//! program whose test and set are both plain memory (a flag in a shared mapping): its
//! gap holds no change, only, at best, the sleep where it yields.
//!
//! A change point lowers the buyer about to take the step, as in PCT, either for good
//! (one point in four) or only until another buyer is inside its critical section
//! ([`BRIEF`]). The second kind reaches with one point the races a lock wrapper hides
//! behind two orderings: a buyer checks, another checks, gets in and starts its critical
//! section, then the first gets in too. Inside is told by the store: a buyer changes it
//! only in its critical section, whatever its lock took before (a wrapper's
//! `mkdir -p`, its failed tries, the removal of a lock it took for stale), so the
//! lowering lasts a seeded number of changes of the store by others — not of changes of
//! anything, whose number before the critical section depends on the wrapper.

use super::call::Step;
use crate::rng::{salt, Rng};
use std::path::Path;

/// Changes of shared state (and sleeps) one buyer makes, about: PCT draws each change
/// point from a buyer's first this many.
pub(super) const CHANGES_PER_BUYER: usize = 5;

/// The fewest and the most changes of the store by others a brief lowering lasts: the
/// other buyer is then in its critical section (it truncated the store, or wrote it),
/// and the lowered one, back on top, goes in too before the other records that it left.
const BRIEF: (u64, u64) = (1, 2);

/// Whether `step` is one a change point may fall on: a change of shared state, or a
/// sleep.
fn point(step: &Step) -> bool {
    step.mutates || step.sleep()
}

/// Whether `step` changes the store: the store file itself or the temporary file an
/// atomic write renames over it (`store.tmp.PID`).
fn changes_store(step: &Step) -> bool {
    let stem = crate::store::FILE_NAME
        .split('.')
        .next()
        .unwrap_or(crate::store::FILE_NAME);
    step.mutates
        && Path::new(&step.path)
            .file_name()
            .and_then(|n| n.to_str())
            .is_some_and(|n| {
                n == crate::store::FILE_NAME
                    || n.strip_prefix(stem).is_some_and(|r| r.starts_with(".tmp."))
            })
}

/// The strategy for one run.
#[derive(Debug, Clone)]
pub(super) struct CallPct {
    priorities: Vec<u64>,
    /// Per point, the step of a buyer it falls on (`usize::MAX` once it fired).
    change_points: Vec<usize>,
    /// Per change point: lowered only until other buyers changed the store this many
    /// times (0: for good).
    brief: Vec<u64>,
    /// A briefly lowered buyer, the priority it gets back, and the changes of the store
    /// by others still to come before it does.
    restore: Option<(u32, u64, u64)>,
    /// Steps a change point may fall on that each buyer took so far.
    changes: Vec<usize>,
}

impl CallPct {
    /// PCT for `buyers` buyers and depth `depth`, from `seed`.
    pub(super) fn new(seed: u64, buyers: u32, depth: u32) -> CallPct {
        let mut rng = Rng::derive(seed, salt::PCT);
        let priorities = crate::schedule::pct_priorities(&mut rng, buyers, depth);
        let points = depth.saturating_sub(1) as usize;
        let change_points: Vec<usize> = (0..points).map(|_| rng.below(CHANGES_PER_BUYER)).collect();
        let brief: Vec<u64> = change_points
            .iter()
            .map(|_| {
                if rng.chance(0.25) {
                    0
                } else {
                    BRIEF.0 + rng.below((BRIEF.1 - BRIEF.0 + 1) as usize) as u64
                }
            })
            .collect();
        CallPct {
            priorities,
            change_points,
            brief,
            restore: None,
            changes: vec![0; buyers as usize],
        }
    }

    fn top(&self, runnable: &[u32]) -> u32 {
        crate::schedule::pct_highest(&self.priorities, runnable)
    }

    /// The buyer to run; `next(b)` is buyer `b`'s next step.
    pub(super) fn pick<'s>(
        &mut self,
        runnable: &[u32],
        next: impl Fn(u32) -> Option<&'s Step>,
    ) -> u32 {
        let top = self.top(runnable);
        let made = |b: u32| self.changes.get(b as usize).copied().unwrap_or(0);
        if next(top).is_some_and(point) {
            let at = made(top);
            if let Some(j) = self.change_points.iter().position(|&s| s == at) {
                // Each point fires once, even when the next top's step is the same change.
                self.change_points[j] = usize::MAX;
                if let Some(p) = self.priorities.get_mut(top as usize) {
                    if self.brief[j] > 0 {
                        self.restore = Some((top, *p, self.brief[j]));
                    }
                    *p = (self.change_points.len() - j) as u64 - 1;
                }
            }
        }
        let pick = self.top(runnable);
        let Some(step) = next(pick) else {
            return pick;
        };
        if point(step) {
            if let Some(c) = self.changes.get_mut(pick as usize) {
                *c += 1;
            }
        }
        if changes_store(step) {
            if let Some((b, p, left)) = self.restore.filter(|&(b, _, _)| b != pick) {
                self.restore = (left > 1).then_some((b, p, left - 1));
                if left <= 1 {
                    if let Some(q) = self.priorities.get_mut(b as usize) {
                        *q = p;
                    }
                }
            }
        }
        pick
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn step(name: &'static str, path: &str, mutates: bool) -> Step {
        let effect = match name {
            "SYS_clock_nanosleep" => crate::seccomp::Effect::Sleep,
            _ if mutates => crate::seccomp::Effect::Change,
            _ => crate::seccomp::Effect::Look,
        };
        Step::new(name, path.into(), effect, mutates)
    }

    #[test]
    fn a_change_point_lowers_the_buyer_about_to_change() {
        // Depth 2 over 2 buyers: one change point among each buyer's first 5 changes.
        let lock = step("SYS_mkdir", "/tmp/t/lock.d", true);
        let store = step("SYS_write", "/tmp/t/store.json", true);
        let kinds: Vec<bool> = (1..20)
            .map(|seed| CallPct::new(seed, 2, 2).brief[0] > 0)
            .collect();
        assert!(
            kinds.contains(&true) && kinds.contains(&false),
            "both kinds drawn"
        );
        for seed in 1..20 {
            let mut p = CallPct::new(seed, 2, 2);
            let (at, brief) = (p.change_points[0], p.brief[0]);
            let first = p.top(&[0, 1]);
            for _ in 0..at {
                assert_eq!(p.pick(&[0, 1], |_| Some(&lock)), first);
            }
            assert_ne!(p.pick(&[0, 1], |_| Some(&lock)), first);
            // Changes by the other that leave the store alone (a wrapper's setup, its
            // lock) never bring the first buyer back.
            for _ in 0..20 {
                assert_ne!(p.pick(&[0, 1], |_| Some(&lock)), first);
            }
            // A brief point gives the first buyer its place back once the other changed
            // the store `brief` times; a lasting one never does.
            for _ in 0..brief {
                assert_ne!(p.pick(&[0, 1], |_| Some(&store)), first);
            }
            assert_eq!(p.pick(&[0, 1], |_| Some(&store)) == first, brief > 0);
            // Steps that change nothing never move a change point.
            let look = step("SYS_newfstatat", "/tmp/t/lock.d", false);
            let mut q = CallPct::new(seed, 2, 2);
            for _ in 0..50 {
                assert_eq!(q.pick(&[0, 1], |_| Some(&look)), first);
            }
        }
    }

    #[test]
    fn a_sleep_may_take_a_change_point() {
        // A test and a set in shared memory leave only a sleep between them.
        let sleep = step("SYS_clock_nanosleep", "", false);
        for seed in 1..50 {
            let mut p = CallPct::new(seed, 2, 2);
            let at = p.change_points[0];
            let first = p.top(&[0, 1]);
            for _ in 0..at {
                assert_eq!(p.pick(&[0, 1], |_| Some(&sleep)), first);
            }
            assert_ne!(p.pick(&[0, 1], |_| Some(&sleep)), first, "seed {seed}");
        }
    }

    #[test]
    fn the_store_and_its_temporary_file_are_the_store() {
        assert!(changes_store(&step(
            "SYS_openat",
            "/tmp/t/store.json",
            true
        )));
        assert!(changes_store(&step(
            "SYS_rename",
            "/tmp/t/store.tmp.42",
            true
        )));
        assert!(!changes_store(&step(
            "SYS_openat",
            "/tmp/t/store.json",
            false
        )));
        assert!(!changes_store(&step("SYS_write", "/tmp/t/ledger", false)));
        assert!(!changes_store(&step("SYS_mkdir", "/tmp/t/store.d", true)));
    }
}
