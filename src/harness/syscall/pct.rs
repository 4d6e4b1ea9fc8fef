//! PCT at system-call granularity: the priorities of [`crate::schedule::Pct`], with
//! its `d − 1` change points counted over the steps that change shared state, each
//! buyer's own: a point `j` fires when the buyer on top is about to make its `j`-th
//! change (the first to get there). Counted per buyer, a point falls on a lock's first
//! change (its acquisition) as often with 16 buyers as with 2.
//!
//! A change point lowers the buyer about to make a change, as in PCT, either for good
//! (one point in four) or only until other buyers have made a seeded number of changes
//! (two or three, [`BRIEF`]). The second kind reaches with one point the races a
//! lock wrapper hides behind two orderings: a buyer checks, another checks, gets in and
//! starts its critical section, then the first gets in too.
//!
//! A buyer's reads, stats and closes between two of its changes are invisible to the
//! others until the next change, so lowering a buyer just before a change is what
//! exposes a check-then-act gap; counting change points over every system call (a
//! shell's start alone makes dozens) would spread them too thin to land there.

use crate::rng::{salt, Rng};

/// Changes of shared state one buyer makes, about: PCT draws each change point from a
/// buyer's first this many.
pub(super) const CHANGES_PER_BUYER: usize = 5;

/// The fewest and the most changes by others a brief lowering lasts. One is too few to
/// show anything: the other buyer has just taken the lock, and the lowered one, back on
/// top, runs its whole critical section before the other records that it is in; two or
/// three let the other start its critical section first.
const BRIEF: (u64, u64) = (2, 3);

/// The strategy for one run.
#[derive(Debug, Clone)]
pub(super) struct Pct {
    priorities: Vec<u64>,
    /// Per point, the change of a buyer it falls on (`usize::MAX` once it fired).
    change_points: Vec<usize>,
    /// Per change point: lowered only until other buyers made this many changes (0: for
    /// good).
    brief: Vec<u64>,
    /// A briefly lowered buyer, the priority it gets back, and the changes by others
    /// still to come before it does.
    restore: Option<(u32, u64, u64)>,
    /// Changes each buyer made so far.
    changes: Vec<usize>,
}

impl Pct {
    /// PCT for `buyers` buyers and depth `depth`, from `seed`.
    pub(super) fn new(seed: u64, buyers: u32, depth: u32) -> Pct {
        let mut rng = Rng::derive(seed, salt::PCT);
        let d = depth.max(1) as u64;
        let mut priorities: Vec<u64> = (0..buyers as u64).map(|i| d + i).collect();
        for i in (1..priorities.len()).rev() {
            let j = rng.below(i + 1);
            priorities.swap(i, j);
        }
        let points = depth.saturating_sub(1) as usize;
        let change_points: Vec<usize> = (0..points)
            .map(|_| rng.below(CHANGES_PER_BUYER))
            .collect();
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
        Pct {
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

    /// The buyer to run; `mutates(b)` says whether buyer `b`'s next step is a change.
    pub(super) fn pick(&mut self, runnable: &[u32], mutates: impl Fn(u32) -> bool) -> u32 {
        let top = self.top(runnable);
        let made = |b: u32| self.changes.get(b as usize).copied().unwrap_or(0);
        if mutates(top) {
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
        if mutates(pick) {
            if let Some(c) = self.changes.get_mut(pick as usize) {
                *c += 1;
            }
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

    #[test]
    fn a_change_point_lowers_the_buyer_about_to_change() {
        // Depth 2 over 2 buyers: one change point among each buyer's first 5 changes.
        let mut p = Pct::new(1, 2, 2);
        let (at, brief) = (p.change_points[0], p.brief[0]);
        let first = p.top(&[0, 1]);
        for _ in 0..at {
            assert_eq!(p.pick(&[0, 1], |_| true), first);
        }
        assert_ne!(p.pick(&[0, 1], |_| true), first);
        // A brief point gives the first buyer its place back after `brief` changes by
        // the other; a lasting one never does.
        for _ in 1..brief {
            assert_ne!(p.pick(&[0, 1], |_| true), first);
        }
        assert_eq!(p.pick(&[0, 1], |_| true) == first, brief > 0);
        // Steps that change nothing never move a change point.
        let mut q = Pct::new(1, 2, 2);
        for _ in 0..50 {
            assert_eq!(q.pick(&[0, 1], |_| false), first);
        }
    }
}
